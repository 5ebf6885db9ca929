//! Segment-safe patterns over image names: the one matcher behind registry entries, exemptions,
//! `notDeployable` and retention.
//!
//! A pattern is `host[:port]/path`, matched against an image's canonical name:
//! - in the host, `*` is exactly one DNS label: never empty, never across a `.`
//!   (`*.azurecr.io` approves `team.azurecr.io`, not `azurecr.io` nor `a.b.azurecr.io`); the
//!   last two labels are always literal, so no pattern approves a whole top-level domain of one
//!   label (`*.io`); a public suffix of two (`*.co.uk`) is the policy author's to avoid;
//! - in the path, a segment is a literal, a glob within that one segment (`team-*`, whose `*`
//!   never crosses a `/`), or `**`, whole segments: zero or more in the middle, one or more
//!   at the end (`team/**` is what is under `team`, not `team` itself).
//!
//! Nothing is matched as a string prefix: appending `.evil.com`, `-x` or `/x` to an approved
//! name never keeps it approved unless the pattern itself says so (property-tested below).

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

use crate::reference::{Digest, RegistryHost, Tag};

/// Why a pattern cannot be used. Messages say what to write instead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PatternError {
    /// The host part does not parse as a registry host.
    #[error("host {host:?} is not a registry host")]
    NotAHost {
        /// The host part as written.
        host: String,
        /// The reference parser's reason.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// A segment glob does not compile.
    #[error("path segment {segment:?} is not a valid glob")]
    Glob {
        /// The segment as written.
        segment: String,
        /// globset's reason.
        #[source]
        source: globset::Error,
    },
    /// The host part is not a host or a label-safe host pattern.
    #[error("host {host:?} {reason}")]
    Host {
        /// The host part as written.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path segment cannot be a repository path component or a segment glob.
    #[error("path segment {segment:?} {reason}")]
    Segment {
        /// The segment as written.
        segment: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A host in a pattern: exactly one registry host, or labels some of which are `*`.
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// One host[:port], compared as [`RegistryHost`] compares (case-insensitive host).
    Exact(RegistryHost),
    /// Labels left to right, `None` for a `*` label, and the port, which must match exactly.
    Wildcard {
        /// The pattern as written, lowercased.
        text: String,
        /// Each label, lowercased; `None` is `*`.
        labels: Vec<Option<String>>,
        /// The port's digits, when the pattern names one; none matches only hosts without one.
        port: Option<String>,
    },
}

impl HostPattern {
    /// Parse `host[:port]`, where whole labels may be `*`.
    pub fn parse(text: &str) -> Result<HostPattern, PatternError> {
        let err = |reason: &str| PatternError::Host {
            host: text.to_owned(),
            reason: reason.to_owned(),
        };
        if !text.contains('*') {
            return text
                .parse::<RegistryHost>()
                .map(HostPattern::Exact)
                .map_err(|source| PatternError::NotAHost {
                    host: text.to_owned(),
                    source,
                });
        }
        if text.starts_with('[') {
            return Err(err("is an IPv6 literal, which cannot hold a wildcard"));
        }
        let (host, port) = match text.split_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, Some(p.to_owned()))
            }
            Some(_) => return Err(err("has a port that is not a number")),
            None => (text, None),
        };
        let labels: Vec<Option<String>> = host
            .split('.')
            .map(|l| (l != "*").then(|| l.to_ascii_lowercase()))
            .collect();
        if labels.iter().flatten().any(|l| l.contains('*')) {
            return Err(err(
                "has a '*' inside a label: in a host, '*' stands for one whole label \
                 (*.example.org), never part of one",
            ));
        }
        if labels.len() < 3 || labels[labels.len() - 2..].iter().any(Option::is_none) {
            return Err(err(
                "must end in two literal labels (*.azurecr.io, *.dkr.ecr.*.amazonaws.com): a \
                 wildcard there would approve every host of a top-level domain",
            ));
        }
        // Every literal label must be a valid one; check them as the host they would form.
        let literal = labels
            .iter()
            .map(|l| l.as_deref().unwrap_or("x"))
            .collect::<Vec<_>>()
            .join(".");
        literal
            .parse::<RegistryHost>()
            .map_err(|source| PatternError::NotAHost {
                host: text.to_owned(),
                source,
            })?;
        Ok(HostPattern::Wildcard {
            text: text.to_ascii_lowercase(),
            labels,
            port,
        })
    }

    /// Whether `host` is this host, or matches its labels.
    pub fn matches(&self, host: &RegistryHost) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard { labels, port, .. } => {
                host.port() == port.as_deref() && labels_match(labels, host.host())
            }
        }
    }

    /// Whether the host part of a canonical name (`host[:port]`, host lowercased) matches.
    fn matches_canonical(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.is_canonical(host),
            // A wildcard never matches an IPv6 literal, so a ':' here is the port's.
            HostPattern::Wildcard { .. } if host.starts_with('[') => false,
            HostPattern::Wildcard { labels, port, .. } => {
                let (name, p) = match host.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (host, None),
                };
                p == port.as_deref() && labels_match(labels, name)
            }
        }
    }

    /// The one host this pattern names, when it has no wildcard.
    pub fn exact(&self) -> Option<&RegistryHost> {
        match self {
            HostPattern::Exact(h) => Some(h),
            HostPattern::Wildcard { .. } => None,
        }
    }
}

fn labels_match(labels: &[Option<String>], host: &str) -> bool {
    let mut parts = host.split('.');
    let all = labels.iter().all(|l| match (l, parts.next()) {
        (Some(l), Some(p)) => l == p,
        (None, Some(p)) => !p.is_empty(),
        (_, None) => false,
    });
    all && parts.next().is_none()
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => h.fmt(f),
            HostPattern::Wildcard { text, .. } => f.write_str(text),
        }
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Exactly this component.
    Literal(String),
    /// A glob within one component (`team-*`); never crosses a `/`.
    Glob(GlobMatcher),
    /// `**`: whole components, zero or more in the middle of a pattern, one or more at its end.
    AnyDepth,
}

impl Segment {
    /// Parse one `/`-separated segment of a path pattern.
    pub fn parse(text: &str) -> Result<Segment, PatternError> {
        let err = |reason: &str| PatternError::Segment {
            segment: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(err("is empty (a doubled or leading '/')"));
        }
        if text == "**" {
            return Ok(Segment::AnyDepth);
        }
        if text.contains("**") {
            return Err(err(
                "has '**' inside it: '**' stands for whole path segments only (team/**/app); \
                 within one segment write '*'",
            ));
        }
        if text.contains(['*', '?', '[', '{']) {
            return GlobBuilder::new(text)
                .literal_separator(true)
                .build()
                .map(|g| Segment::Glob(g.compile_matcher()))
                .map_err(|source| PatternError::Glob {
                    segment: text.to_owned(),
                    source,
                });
        }
        // A literal that no repository component can equal would match nothing, silently.
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = text.as_bytes();
        if !bytes
            .iter()
            .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
            || !alnum(bytes[0])
            || !alnum(bytes[bytes.len() - 1])
        {
            return Err(err(
                "can never match: a repository path component is lowercase letters and digits, \
                 separated by '.', '_' or '-'",
            ));
        }
        Ok(Segment::Literal(text.to_owned()))
    }

    fn matches_one(&self, component: &str) -> bool {
        match self {
            Segment::Literal(l) => l == component,
            Segment::Glob(g) => g.is_match(component),
            Segment::AnyDepth => true,
        }
    }

    /// Whether it is a literal component.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Segment::Literal(l) => Some(l),
            _ => None,
        }
    }
}

/// The lengths `j` such that `segments` matches `components[..j]` wholly. Dynamic programming
/// over (segment, component): linear in their product, whatever the pattern (no backtracking
/// blow-up on `**/**/**`).
pub fn matched_lengths(segments: &[Segment], components: &[&str]) -> Vec<bool> {
    let n = components.len();
    // reach[j]: the segments so far match components[..j].
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    // Two rows, swapped: a pattern is matched for every image an admission names.
    let mut next = vec![false; n + 1];
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        next.fill(false);
        match seg {
            Segment::AnyDepth => {
                // Zero or more components; at the end of a pattern, one or more.
                let mut any = false;
                for j in 0..=n {
                    if last {
                        next[j] = any;
                        any |= reach[j];
                    } else {
                        any |= reach[j];
                        next[j] = any;
                    }
                }
            }
            _ => {
                for j in 0..n {
                    if reach[j] && seg.matches_one(components[j]) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach
}

/// A pattern over canonical image names (`host[:port]/path`), with where it was written.
#[derive(Debug, Clone)]
pub struct NamePattern {
    text: String,
    host: HostPattern,
    path: Vec<Segment>,
}

impl NamePattern {
    /// Parse `host[:port]/path-pattern`. The caller has checked that it names a host.
    pub fn parse(text: &str) -> Result<NamePattern, PatternError> {
        let (host, path) = text.split_once('/').unwrap_or((text, ""));
        // Docker Hub's official images are `library/NAME`: `docker.io/nginx` is never a
        // canonical name, so it would match nothing.
        if host == "docker.io" && !path.is_empty() && !path.contains('/') && !path.contains("**") {
            return Err(PatternError::Segment {
                segment: path.to_owned(),
                reason: format!(
                    "is a Docker Hub name without its namespace, which matches nothing; did you \
                     mean docker.io/library/{path}?"
                ),
            });
        }
        let host = HostPattern::parse(host)?;
        let path = path
            .split('/')
            .map(Segment::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NamePattern {
            text: text.to_owned(),
            host,
            path,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the canonical name `name` (`host[:port]/path`, host lowercased) matches.
    pub fn is_match(&self, name: &str) -> bool {
        let Some((host, path)) = name.split_once('/') else {
            return false;
        };
        if !self.host.matches_canonical(host) {
            return false;
        }
        let n = path.bytes().filter(|b| *b == b'/').count() + 1;
        if n < 63 {
            return matches_in_bits(&self.path, path, n);
        }
        let components: Vec<&str> = path.split('/').collect();
        matched_lengths(&self.path, &components)[components.len()]
    }
}

/// [`matched_lengths`] for a path of `n` < 63 components, with the row as the bits of a
/// `u64` and no allocation: patterns are matched several times for every image an admission
/// names, and real paths are a few components long.
fn matches_in_bits(segments: &[Segment], path: &str, n: usize) -> bool {
    let all: u64 = (1 << (n + 1)) - 1;
    // Bit j: the segments so far match the first j components.
    let mut reach: u64 = 1;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        reach = match seg {
            Segment::AnyDepth => {
                // Zero or more components (every length from the shortest reached on); at the
                // end of a pattern, one or more.
                let lowest = reach & reach.wrapping_neg();
                let from = if last { lowest << 1 } else { lowest };
                all & !(from - 1)
            }
            _ => {
                let mut next = 0;
                for (j, component) in path.split('/').enumerate() {
                    if reach >> j & 1 == 1 && seg.matches_one(component) {
                        next |= 1 << (j + 1);
                    }
                }
                next
            }
        };
        if reach == 0 {
            return false;
        }
    }
    reach >> n & 1 == 1
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An image as exemptions match it: its canonical name, and the tag and digest as written.
#[derive(Debug, Clone, Copy)]
pub struct ImageKey<'a> {
    /// `host[:port]/path`, as [`crate::policy::Policy::canonical_name`] gives it.
    pub canonical: &'a str,
    /// The tag the reference names.
    pub tag: Option<&'a Tag>,
    /// The digest the reference names.
    pub digest: Option<&'a Digest>,
}

/// An exemption's image selector: a name pattern, optionally narrowed to tags (a glob,
/// `app:nightly`, `app:pr-*`) or to one digest (`app@sha256:…`).
#[derive(Debug, Clone)]
pub struct ImagePattern {
    text: String,
    name: NamePattern,
    tag: Option<GlobMatcher>,
    digest: Option<Digest>,
}

impl ImagePattern {
    /// Parse `name-pattern[:tag-glob]` or `name-pattern@digest`.
    pub fn parse(text: &str) -> Result<ImagePattern, ImagePatternError> {
        let (rest, digest) = match text.split_once('@') {
            Some((name, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ImagePatternError::Digest {
                        digest: d.to_owned(),
                        source,
                    })?;
                (name, Some(digest))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/').unwrap_or(0);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) if digest.is_none() => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            Some(_) => return Err(ImagePatternError::TagAndDigest),
            None => (rest, None),
        };
        let tag = match tag {
            None => None,
            Some("") => return Err(ImagePatternError::EmptyTag),
            Some(t) => Some(
                GlobBuilder::new(t)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| ImagePatternError::Tag {
                        tag: t.to_owned(),
                        source,
                    })?
                    .compile_matcher(),
            ),
        };
        Ok(ImagePattern {
            text: text.to_owned(),
            name: NamePattern::parse(name).map_err(ImagePatternError::Name)?,
            tag,
            digest,
        })
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `image` is selected: its name matches, and its tag (or digest) too when the
    /// selector names one. A selector with a tag never selects a reference without one.
    pub fn is_match(&self, image: ImageKey<'_>) -> bool {
        self.name.is_match(image.canonical)
            && self
                .tag
                .as_ref()
                .is_none_or(|t| image.tag.is_some_and(|tag| t.is_match(tag.as_str())))
            && self.digest.as_ref().is_none_or(|d| image.digest == Some(d))
    }
}

/// Why an exemption's image selector cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImagePatternError {
    /// The name part.
    #[error(transparent)]
    Name(PatternError),
    /// The tag is empty (`name:`).
    #[error("the tag after ':' is empty")]
    EmptyTag,
    /// The tag glob does not compile.
    #[error("tag {tag:?} is not a valid glob")]
    Tag {
        /// As written.
        tag: String,
        /// globset's reason.
        #[source]
        source: globset::Error,
    },
    /// The digest does not parse.
    #[error("digest {digest:?} is not a digest")]
    Digest {
        /// As written.
        digest: String,
        /// Why.
        #[source]
        source: crate::reference::DigestError,
    },
    /// Both a tag and a digest.
    #[error(
        "names a tag and a digest; a digest names one image whatever its tag: write \
         name@digest, or name:tag for a tag"
    )]
    TagAndDigest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case::one_label("*.azurecr.io", "team.azurecr.io", true)]
    #[case::not_the_bare_domain("*.azurecr.io", "azurecr.io", false)]
    #[case::never_across_a_dot("*.azurecr.io", "a.b.azurecr.io", false)]
    #[case::suffix_attack("*.azurecr.io", "team.azurecr.io.evil.com", false)]
    #[case::label_suffix_attack("*.azurecr.io", "team.azurecr.iox", false)]
    #[case::case_insensitive("*.AzureCR.io", "TEAM.azurecr.io", true)]
    #[case::ecr_region(
        "*.dkr.ecr.*.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        true
    )]
    #[case::ecr_other_service("*.dkr.ecr.*.amazonaws.com", "123.s3.eu-west-1.amazonaws.com", false)]
    #[case::port_must_match("*.example.org:5000", "r.example.org:5000", true)]
    #[case::no_port_in_pattern("*.example.org", "r.example.org:5000", false)]
    #[case::exact("registry.example.org", "Registry.Example.Org", true)]
    fn host_patterns(#[case] pattern: &str, #[case] host: &str, #[case] matches: bool) {
        let p = HostPattern::parse(pattern).unwrap();
        assert_eq!(
            p.matches(&host.parse().unwrap()),
            matches,
            "{pattern} vs {host}"
        );
    }

    #[rstest]
    #[case::tld("*.io")]
    #[case::second_to_last("registry.*.org")]
    #[case::partial_label("registry-*.example.org")]
    #[case::ipv6("[*::1]")]
    #[case::bad_label("*.exa_mple.org")]
    #[case::double_star("**.example.org")]
    fn host_patterns_refused(#[case] pattern: &str) {
        assert!(HostPattern::parse(pattern).is_err(), "{pattern}");
    }

    #[rstest]
    #[case::literal("r.example.org/team/app", "r.example.org/team/app", true)]
    #[case::segment_glob("r.example.org/team-*/app", "r.example.org/team-a/app", true)]
    #[case::glob_never_crosses_slash("r.example.org/team-*", "r.example.org/team-a/app", false)]
    #[case::under("r.example.org/team/**", "r.example.org/team/a/b", true)]
    #[case::under_is_not_itself("r.example.org/team/**", "r.example.org/team", false)]
    #[case::under_is_whole_segments("r.example.org/team/**", "r.example.org/teamx/a", false)]
    #[case::middle_zero("r.example.org/team/**/app", "r.example.org/team/app", true)]
    #[case::middle_many("r.example.org/team/**/app", "r.example.org/team/a/b/app", true)]
    #[case::middle_not_suffix("r.example.org/team/**/app", "r.example.org/team/a/app-x", false)]
    #[case::host_wildcard("*.azurecr.io/**", "t.azurecr.io/x", true)]
    #[case::host_wildcard_is_one_label("*.azurecr.io/**", "a.b.azurecr.io/x", false)]
    #[case::port("localhost:5000/**", "localhost:5000/x", true)]
    #[case::other_port("localhost:5000/**", "localhost:5001/x", false)]
    fn name_patterns(#[case] pattern: &str, #[case] name: &str, #[case] matches: bool) {
        let p = NamePattern::parse(pattern).unwrap();
        assert_eq!(p.is_match(name), matches, "{pattern} vs {name}");
    }

    #[rstest]
    #[case::any_tag("r.example.org/app", "r.example.org/app:dev", true)]
    #[case::that_tag("r.example.org/app:nightly", "r.example.org/app:nightly", true)]
    #[case::not_another_tag("r.example.org/app:nightly", "r.example.org/app:dev", false)]
    #[case::tag_glob("r.example.org/app:pr-*", "r.example.org/app:pr-12", true)]
    #[case::tag_needs_a_tag("r.example.org/app:nightly", "r.example.org/app", false)]
    #[case::tag_with_port("localhost:5000/app:nightly", "localhost:5000/app:nightly", true)]
    #[case::port_is_not_a_tag("localhost:5000/app", "localhost:5000/app:x", true)]
    #[case::digest(
        "r.example.org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "r.example.org/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        true
    )]
    #[case::other_digest(
        "r.example.org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "r.example.org/app@sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        false
    )]
    #[case::digest_needs_a_digest(
        "r.example.org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "r.example.org/app:1",
        false
    )]
    fn image_patterns(#[case] pattern: &str, #[case] image: &str, #[case] matches: bool) {
        let p = ImagePattern::parse(pattern).unwrap();
        let r: crate::reference::ImageRef = image.parse().unwrap();
        let canonical = r.canonical_name();
        let key = ImageKey {
            canonical,
            tag: r.tag(),
            digest: r.digest(),
        };
        assert_eq!(p.is_match(key), matches, "{pattern} vs {image}");
    }

    #[rstest]
    #[case::tag_and_digest(
        "r.example.org/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )]
    #[case::bad_digest("r.example.org/app@sha256:abc")]
    #[case::empty_tag("r.example.org/app:")]
    fn image_patterns_refused(#[case] pattern: &str) {
        assert!(ImagePattern::parse(pattern).is_err(), "{pattern}");
    }

    #[rstest]
    #[case::uppercase("registry.example.org/Team/**", "can never match")]
    #[case::trailing_dash("registry.example.org/team-/**", "can never match")]
    #[case::hub_without_library("docker.io/nginx", "did you mean docker.io/library/nginx?")]
    fn name_patterns_that_could_never_match_are_refused(#[case] text: &str, #[case] message: &str) {
        let e = NamePattern::parse(text).unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }

    #[test]
    fn many_double_stars_stay_linear() {
        let pattern = format!("r.example.org/{}x", "**/".repeat(60));
        let p = NamePattern::parse(&pattern).unwrap();
        let name = format!("r.example.org/{}y", "a/".repeat(120));
        assert!(!p.is_match(&name));
    }

    /// A DNS label or path component: lower-case alphanumerics, inner dashes.
    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    /// A name (host labels, path components) and a pattern made from it by turning some
    /// labels and components into wildcards, with which positions stayed literal.
    fn named() -> impl Strategy<Value = (Vec<String>, Vec<String>, Vec<bool>, Vec<bool>)> {
        (
            proptest::collection::vec(label(), 3..5),
            proptest::collection::vec(label(), 1..5),
        )
            .prop_flat_map(|(host, path)| {
                let hl = host.len();
                let pl = path.len();
                (
                    Just(host),
                    Just(path),
                    // The last two host labels stay literal: the pattern grammar requires it.
                    proptest::collection::vec(any::<bool>(), hl - 2).prop_map(|mut v| {
                        v.extend([false, false]);
                        v
                    }),
                    proptest::collection::vec(any::<bool>(), pl),
                )
            })
    }

    fn pattern_of(host: &[String], path: &[String], wild_h: &[bool], wild_p: &[bool]) -> String {
        let h: Vec<&str> = host
            .iter()
            .zip(wild_h)
            .map(|(l, w)| if *w { "*" } else { l.as_str() })
            .collect();
        let p: Vec<&str> = path
            .iter()
            .zip(wild_p)
            .map(|(c, w)| if *w { "*" } else { c.as_str() })
            .collect();
        format!("{}/{}", h.join("."), p.join("/"))
    }

    proptest! {
        /// The allocation-free matcher agrees with the table ([`matched_lengths`]) on every
        /// mix of literals, globs and `**`, in any position.
        #[test]
        fn the_bit_matcher_agrees_with_the_table(
            segments in proptest::collection::vec(
                prop_oneof![Just("a"), Just("b"), Just("*"), Just("a*"), Just("**")], 1..7),
            components in proptest::collection::vec(
                prop_oneof![Just("a"), Just("b"), Just("ab"), Just("")], 1..9),
        ) {
            let pattern = format!("r.example.org/{}", segments.join("/"));
            let p = NamePattern::parse(&pattern).unwrap();
            let path = components.join("/");
            let table = matched_lengths(&p.path, &components)[components.len()];
            prop_assert_eq!(
                matches_in_bits(&p.path, &path, components.len()), table, "{} on {}", pattern, path
            );
            prop_assert_eq!(p.is_match(&format!("r.example.org/{path}")), table);
        }

        /// The name a pattern is made from matches it; appending to any part of the name never
        /// does: `.evil.com` or `-x` after the host, `-x` after a component, `/x` or `/x/../y`
        /// after the path, a label before the host.
        #[test]
        fn appended_names_are_never_approved((host, path, wild_h, wild_p) in named()) {
            let pattern = pattern_of(&host, &path, &wild_h, &wild_p);
            let p = NamePattern::parse(&pattern).unwrap();
            let name = format!("{}/{}", host.join("."), path.join("/"));
            prop_assert!(p.is_match(&name), "{} should match {}", pattern, name);
            let h = host.join(".");
            let r = path.join("/");
            let attacks = [
                format!("{h}.evil.com/{r}"),
                format!("{h}-x/{r}"),
                format!("evil.{h}/{r}"),
                format!("{h}/{r}/x"),
                format!("{h}/{r}/x/../y"),
                format!("{h}/x/{r}"),
            ];
            for a in &attacks {
                prop_assert!(!p.is_match(a), "{} must not match {}", pattern, a);
            }
            // A `-x` on a literal label or component is a different name; on a wildcard one
            // it is what the wildcard allows.
            for (i, wild) in wild_h.iter().enumerate() {
                let mut h2 = host.clone();
                h2[i].push_str("-x");
                let n = format!("{}/{r}", h2.join("."));
                prop_assert_eq!(p.is_match(&n), *wild, "{} vs {}", pattern, n);
            }
            for (i, wild) in wild_p.iter().enumerate() {
                let mut p2 = path.clone();
                p2[i].push_str("-x");
                let n = format!("{h}/{}", p2.join("/"));
                prop_assert_eq!(p.is_match(&n), *wild, "{} vs {}", pattern, n);
            }
        }

        /// `**` at the end approves exactly the names strictly under the literal part.
        #[test]
        fn under_means_strictly_under(
            host in proptest::collection::vec(label(), 2..4),
            path in proptest::collection::vec(label(), 1..4),
            below in proptest::collection::vec(label(), 0..3),
        ) {
            let base = format!("{}/{}", host.join("."), path.join("/"));
            let p = NamePattern::parse(&format!("{base}/**")).unwrap();
            let name = if below.is_empty() { base.clone() } else { format!("{base}/{}", below.join("/")) };
            prop_assert_eq!(p.is_match(&name), !below.is_empty());
            let sibling = format!("{base}x/{}", below.join("/"));
            prop_assert!(!p.is_match(&sibling));
        }
    }
}
