//! Container image references, parsed and normalised exactly as the distribution reference
//! library (`github.com/distribution/reference`) does, because that is what Docker, containerd
//! and the kubelet do with the string in a Pod spec. Parsing is the only place that looks at the
//! string; everything downstream works on the typed [`ImageRef`], or on a [`WrittenImage`]
//! that keeps the text as written beside its parse.
//!
//! Pure, and at the bottom of the tree: depends on no other room; no IO, no clock.
//!
//! Grammar (from the distribution library):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port-number]
//! port-number      := [0-9]+          (no range; kept as written)
//! host             := domain-name | IPv4address | '[' IPv6address ']'
//! IPv6address      := [a-fA-F0-9:]+   (no embedded IPv4, no zone id, groups unchecked)
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := [a-z0-9]+
//! separator        := [_.] | '__' | [-]+
//! tag              := [\w][\w.-]{0,127}
//! digest           := algorithm ':' hex
//! ```

mod digest;

pub use digest::{Digest, DigestAlgorithm, DigestError};

use std::fmt;
use std::str::FromStr;

/// The registry Docker Hub references normalise to.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy name; normalised to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The namespace one-component Docker Hub names live in (`nginx` is `library/nginx`).
const DOCKER_HUB_OFFICIAL: &str = "library";
/// `RepositoryNameTotalLengthMax` in the distribution library: the longest repository path,
/// measured after normalisation (the `library/` that `nginx` gains counts, the registry does
/// not).
pub const REPOSITORY_MAX_LEN: usize = 255;
/// A tag is one word character followed by at most 127 more.
pub const TAG_MAX_LEN: usize = 128;

/// Why a string is not a valid image reference. Each variant says precisely what is wrong so
/// that a denial can tell the engineer what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string is empty.
    #[error("the image reference is empty")]
    Empty,
    /// The string starts or ends with whitespace.
    #[error("the image reference has leading or trailing whitespace")]
    Whitespace,
    /// A character that is not printable ASCII: inner whitespace, a control character, or
    /// anything non-ASCII.
    #[error("character {ch:?} at position {position} is not allowed in an image reference")]
    InvalidCharacter {
        /// The first such character.
        ch: char,
        /// Its byte offset in the string, from 0.
        position: usize,
    },
    /// Nothing before the tag or digest (`:1.0`, `@sha256:…`), or nothing after the registry
    /// (`registry.example.org/`).
    #[error("the repository name is empty")]
    EmptyRepository,
    /// Two `/` in a row, or a `/` at the end of the repository.
    #[error("repository path component {index} is empty (a doubled or trailing '/')")]
    EmptyPathComponent {
        /// Which component of the repository path (after the registry), from 0.
        index: usize,
    },
    /// A repository path component has an uppercase letter. (An uppercase first component
    /// followed by `/` is read as a registry host instead, as the distribution library does.)
    /// Checked before anything else in the reference but the image id, as distribution does.
    #[error("repository name must be lowercase: {component:?}")]
    Uppercase {
        /// The component, as written.
        component: String,
    },
    /// A repository path component breaks the grammar's `path-component` rule.
    #[error(
        "repository path component {component:?} is invalid: it must be lowercase letters and \
         digits, separated by '.', '_', '__' or dashes, and start and end with a letter or digit"
    )]
    InvalidPathComponent {
        /// The component, as written.
        component: String,
    },
    /// The registry host is not a DNS name, an IPv4 address or a bracketed IPv6 address.
    #[error("registry host {host:?} is invalid: {reason}")]
    InvalidHost {
        /// The host as written, without its port.
        host: String,
        /// Which rule it breaks, as a clause for the message.
        reason: &'static str,
    },
    /// The text after the registry host's `:` is not a port: distribution's `port-number` is
    /// one or more decimal digits.
    #[error("registry port {port:?} must be one or more digits 0-9")]
    InvalidPort {
        /// The text after the `:`, as written (possibly empty).
        port: String,
    },
    /// The repository path, after normalisation, is longer than [`REPOSITORY_MAX_LEN`].
    #[error(
        "the repository path is {len} characters long (after the registry, with Docker Hub's \
         'library/' counted); at most {REPOSITORY_MAX_LEN} are allowed"
    )]
    RepositoryTooLong {
        /// The normalised path's length in bytes.
        len: usize,
    },
    /// A `:` with nothing after it.
    #[error("the tag is empty")]
    EmptyTag,
    /// The tag is longer than [`TAG_MAX_LEN`].
    #[error("the tag is {len} characters long; at most {TAG_MAX_LEN} are allowed")]
    TagTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The tag breaks the grammar's `tag` rule (`[\w][\w.-]*`).
    #[error(
        "tag {tag:?} is invalid: it must start with a letter, digit or '_' and contain only \
         letters, digits, '_', '.' and '-'"
    )]
    InvalidTag {
        /// The tag, as written.
        tag: String,
    },
    /// The whole reference is 64 lowercase hex characters: an image id, which the distribution
    /// library refuses to read as `docker.io/library/<hex>`.
    #[error(
        "repository name {name:?} cannot be a 64-character hexadecimal string (it looks like an image id)"
    )]
    HexRepository {
        /// The reference, as written.
        name: String,
    },
    /// The text after `@` is not a valid digest.
    #[error(transparent)]
    Digest(#[from] digest::DigestError),
}

/// A registry host with an optional port, as written in a reference (`docker.io`,
/// `registry.example.org:5000`, `[::1]:5000`, `localhost`). Host names compare
/// case-insensitively (DNS), so equality uses the lowercased host; the host is printed as
/// written, because an uppercase first component is what marks `Registry/app` as a registry.
///
/// The port is kept as the digits written: distribution's `port-number` is `[0-9]+`, with no
/// range, and docker and containerd key their host configuration and credentials by the
/// domain as written, so `:05000` is not `:5000` to them either.
#[derive(Debug, Clone)]
pub struct RegistryHost {
    host: String,
    written: String,
    port: Option<String>,
}

impl PartialEq for RegistryHost {
    fn eq(&self, other: &Self) -> bool {
        // `Docker.io` is the DNS name `docker.io` but not Docker Hub (see `from_str`): docker
        // pulls it from that host itself, Docker Hub from registry-1.docker.io.
        self.host == other.host
            && self.port == other.port
            && self.is_docker_hub() == other.is_docker_hub()
    }
}

impl Eq for RegistryHost {}

impl std::hash::Hash for RegistryHost {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.host.hash(state);
        self.port.hash(state);
        self.is_docker_hub().hash(state);
    }
}

impl RegistryHost {
    /// The host part without the port, lowercased (IPv6 literals keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port's digits as written, when one was given.
    pub fn port(&self) -> Option<&str> {
        self.port.as_deref()
    }

    /// `host[:port]` with the host lowercased: the one form policy patterns are matched
    /// against, whatever case the reference was written in.
    pub fn canonical(&self) -> String {
        match &self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// Whether `name` is [`RegistryHost::canonical`], without making that string: patterns
    /// compare hosts for every image they are asked about.
    pub fn is_canonical(&self, name: &str) -> bool {
        match &self.port {
            Some(port) => {
                name.strip_prefix(self.host.as_str())
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(port.as_str())
            }
            None => name == self.host,
        }
    }

    /// Whether this is Docker Hub: written exactly `docker.io` or `index.docker.io`, without a
    /// port (`index.docker.io` is then printed as `docker.io`).
    pub fn is_docker_hub(&self) -> bool {
        self.port.is_none() && self.written == DOCKER_HUB
    }

    fn docker_hub() -> Self {
        RegistryHost {
            host: DOCKER_HUB.to_owned(),
            written: DOCKER_HUB.to_owned(),
            port: None,
        }
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(port) => write!(f, "{}:{port}", self.written),
            None => f.write_str(&self.written),
        }
    }
}

impl FromStr for RegistryHost {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = split_port(s)?;
        validate_host(host)?;
        // `index.docker.io` is an alias kept for compatibility; the distribution library
        // rewrites it to `docker.io` and so must we, or a policy on one would miss the other.
        // Both are compared as written, case and all, as `splitDockerDomain` and containerd's
        // resolver do: `Docker.io/nginx` is the path `nginx` on the host `Docker.io`, not
        // `library/nginx` on Docker Hub.
        if (host == DOCKER_HUB_LEGACY || host == DOCKER_HUB) && port.is_none() {
            return Ok(RegistryHost::docker_hub());
        }
        Ok(RegistryHost {
            host: host.to_ascii_lowercase(),
            written: host.to_owned(),
            port: port.map(str::to_owned),
        })
    }
}

/// A repository path inside a registry: one or more `/`-separated path components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// The path as a string (`library/nginx`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components (`["library", "nginx"]`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate_tag(s)?;
        Ok(Tag(s.to_owned()))
    }
}

/// A parsed, normalised image reference.
///
/// Normalisation follows the distribution library: a name without a registry is on Docker Hub
/// (`docker.io`), a one-component Docker Hub name is in `library/`, and `index.docker.io` is
/// `docker.io`. A reference may carry a tag, a digest, both or neither.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: RegistryHost,
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
    /// `host[:port]/path` with the host lowercased, made once at parse time: every policy
    /// pattern is matched against it, several times per image at admission. Shared, so that a
    /// clone of the reference does not copy it.
    canonical: std::sync::Arc<str>,
}

impl ImageRef {
    /// The registry the image is pulled from.
    pub fn registry(&self) -> &RegistryHost {
        &self.registry
    }

    /// The repository path inside the registry.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest, the registry as written (for display).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository` with the registry's host lowercased: the form every match against
    /// a policy pattern uses (DNS names are case-insensitive, so `Registry.Example.Org/base`
    /// is the same repository as `registry.example.org/base` and must meet the same rules).
    pub fn canonical_name(&self) -> &str {
        &self.canonical
    }

    /// The short form Docker prints: `nginx:1.25` rather than `docker.io/library/nginx:1.25`.
    ///
    /// It always parses back to this reference. distribution's `FamiliarString` drops
    /// `docker.io/` and `library/` regardless, and two kinds of Docker Hub reference then name
    /// something else; for those this is the fully-qualified form instead:
    /// - a path whose first component looks like a registry (`docker.io/foo.com/app`,
    ///   `docker.io/localhost/app`): `foo.com/app` would name the registry `foo.com`;
    /// - `docker.io/library/<64 hex>` without tag or digest: the bare hex is refused as an
    ///   image id.
    pub fn familiar(&self) -> String {
        if !self.registry.is_docker_hub() {
            return self.to_string();
        }
        let path = self.repository.as_str();
        let short = match path.strip_prefix(DOCKER_HUB_OFFICIAL) {
            Some(rest) if rest.starts_with('/') && !rest[1..].contains('/') => &rest[1..],
            _ => path,
        };
        let mut out = short.to_owned();
        self.push_suffix(&mut out);
        let names_a_registry = short
            .split_once('/')
            .is_some_and(|(first, _)| looks_like_registry(first));
        if names_a_registry || is_image_id(&out) {
            return self.to_string();
        }
        out
    }

    /// The same image with the given digest and this reference's tag: the `name:tag@digest`
    /// form that pins the content while keeping it reachable from a tag.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(&tag.0);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

/// The fully-qualified form: `docker.io/library/nginx:1.25@sha256:…`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// An image reference as a manifest, a pod or a command line wrote it, parsed once where it
/// entered. The written text is what reports show and what a patch rewrites; the parse (or why
/// it failed) is what every rule and every registry walk uses, so nothing downstream parses the
/// string again. Ordered, compared and hashed by the written text.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    text: String,
    parsed: Result<ImageRef, ReferenceError>,
}

impl WrittenImage {
    /// Parse `text`; a text that does not parse is kept with its error.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let parsed = parse(&text);
        WrittenImage { text, parsed }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed reference, when the text is a valid reference.
    pub fn reference(&self) -> Option<&ImageRef> {
        self.parsed.as_ref().ok()
    }

    /// The parsed reference, or why the text is not one.
    pub fn parsed(&self) -> Result<&ImageRef, &ReferenceError> {
        self.parsed.as_ref()
    }

    /// Whether both name the same image once normalised (`nginx:1` is
    /// `docker.io/library/nginx:1`); compared as written when either does not parse.
    pub fn same_image(&self, other: &WrittenImage) -> bool {
        match (self.reference(), other.reference()) {
            (Some(a), Some(b)) => a == b,
            _ => self.text == other.text,
        }
    }
}

impl From<ImageRef> for WrittenImage {
    fn from(r: ImageRef) -> Self {
        WrittenImage {
            text: r.to_string(),
            parsed: Ok(r),
        }
    }
}

impl PartialEq for WrittenImage {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for WrittenImage {}

impl PartialEq<str> for WrittenImage {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for WrittenImage {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialOrd for WrittenImage {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WrittenImage {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for WrittenImage {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Display for WrittenImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Serialized as written.
impl serde::Serialize for WrittenImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Serialized in the fully-qualified form.
impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if input.trim() != input {
        return Err(ReferenceError::Whitespace);
    }
    if let Some((position, ch)) = input.char_indices().find(|&(_, c)| !(c.is_ascii_graphic())) {
        return Err(ReferenceError::InvalidCharacter { ch, position });
    }

    // The distribution library refuses a bare 64-hex string: it is an image id, and treating
    // it as `docker.io/library/<hex>` would pull something else entirely.
    if is_image_id(input) {
        return Err(ReferenceError::HexRepository {
            name: input.to_owned(),
        });
    }

    // Split first, check after, in distribution's order: after the image id, the case of the
    // repository path comes before anything else, so `Foo@md5:x` is told its name must be
    // lowercase, as docker would tell it.
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    // The tag is after the last ':' that follows the last '/'; a ':' before it belongs to
    // the registry's port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
        }
        None => (name_and_tag, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::EmptyRepository);
    }
    let (domain, path) = split_domain(name);
    if let Some(component) = path
        .split('/')
        .find(|c| c.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(ReferenceError::Uppercase {
            component: component.to_owned(),
        });
    }
    let registry = match domain {
        Some(domain) => domain.parse::<RegistryHost>()?,
        None => RegistryHost::docker_hub(),
    };
    validate_path(path)?;
    let tag = tag.map(str::parse::<Tag>).transpose()?;
    let digest = digest.map(str::parse::<Digest>).transpose()?;

    let repository = if registry.is_docker_hub() && !path.contains('/') {
        format!("{DOCKER_HUB_OFFICIAL}/{path}")
    } else {
        path.to_owned()
    };
    // distribution limits the path it stores, after `library/` is added, and never the
    // registry: measuring the name as written would refuse a long path on a long host that
    // docker pulls, and accept a Docker Hub name whose stored path docker refuses.
    if repository.len() > REPOSITORY_MAX_LEN {
        return Err(ReferenceError::RepositoryTooLong {
            len: repository.len(),
        });
    }
    let canonical = format!("{}/{repository}", registry.canonical()).into();
    Ok(ImageRef {
        registry,
        repository: Repository(repository),
        tag,
        digest,
        canonical,
    })
}

/// A whole reference that is 64 lowercase hex characters: an image id, never a name.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `splitDockerDomain`: the first component is a registry only if it looks like one; without
/// one, the name is a path on Docker Hub.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => (Some(first), rest),
        _ => (None, name),
    }
}

/// Whether a first component followed by `/` is read as a registry: it has a '.' or ':', is
/// `localhost`, or has an uppercase letter, which a path cannot have. A bracket alone does not
/// make one (`[abc]/x` is a Docker Hub path, and invalid): distribution looks for these marks
/// only, and every IPv6 literal has a ':'.
pub fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn split_port(s: &str) -> Result<(&str, Option<&str>), ReferenceError> {
    // An IPv6 literal's own colons are inside the brackets.
    let port_sep = if s.starts_with('[') {
        s.find(']')
            .and_then(|end| s[end..].find(':').map(|i| end + i))
    } else {
        s.find(':')
    };
    match port_sep {
        None => Ok((s, None)),
        Some(i) => {
            let port = &s[i + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReferenceError::InvalidPort {
                    port: port.to_owned(),
                });
            }
            Ok((&s[..i], Some(port)))
        }
    }
}

fn validate_host(host: &str) -> Result<(), ReferenceError> {
    let invalid = |reason| {
        Err(ReferenceError::InvalidHost {
            host: host.to_owned(),
            reason,
        })
    };
    if host.is_empty() {
        return invalid("it is empty");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(addr) = inner.strip_suffix(']') else {
            return invalid("an IPv6 address must be enclosed in '[' and ']'");
        };
        // distribution's `ipv6address` is `\[[a-fA-F0-9:]+\]`: it refuses the IPv4-embedded
        // and IPv4-mapped forms (`[::ffff:1.2.3.4]`) that an RFC 4291 parser such as
        // `Ipv6Addr`'s accepts, and zone ids, and it does not count the groups, so neither
        // do we.
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return invalid(
                "an IPv6 address in brackets may contain only hex digits and ':' \
                 (no embedded IPv4 address, no zone id)",
            );
        }
        return Ok(());
    }
    for component in host.split('.') {
        if component.is_empty() {
            return invalid("it has an empty label (a leading, trailing or doubled '.')");
        }
        if !component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid("a label may contain only letters, digits and '-'");
        }
        if component.starts_with('-') || component.ends_with('-') {
            return invalid("a label may not start or end with '-'");
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::EmptyRepository);
    }
    for (index, component) in path.split('/').enumerate() {
        if component.is_empty() {
            return Err(ReferenceError::EmptyPathComponent { index });
        }
        if !valid_path_component(component.as_bytes()) {
            return Err(ReferenceError::InvalidPathComponent {
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

/// `alpha-numeric [separator alpha-numeric]*` with separator `[_.] | __ | -+`.
fn valid_path_component(c: &[u8]) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !c.first().copied().is_some_and(alnum) || !c.last().copied().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < c.len() {
        if alnum(c[i]) {
            i += 1;
            continue;
        }
        let start = i;
        match c[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if c.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while c.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        // A separator must be followed by an alpha-numeric character.
        if i == start || !c.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if tag.is_empty() {
        return Err(ReferenceError::EmptyTag);
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong { len: tag.len() });
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if !word(bytes[0]) || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
        return Err(ReferenceError::InvalidTag {
            tag: tag.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
