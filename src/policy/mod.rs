//! The policy: what is approved, what is forbidden, and how hard each rule bites.
//!
//! - [`rules`]: the catalogue of rule ids, levels and the audit's finding kinds;
//! - `load`: a policy file turned into a validated [`Policy`] (through [`crate::config`]);
//! - [`eval`]: one image against the policy, every rule, with an outcome each;
//! - [`retention`]: the registry's retention rules, simulated.
//!
//! Pure: the caller reads the file and passes the clock in. Must not touch the registry (the
//! registry-backed rules are decided in [`crate::registry`] and merged by the callers), IO, the
//! clock.

pub mod eval;
/// Shell: the files a policy names, read beside it.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod files;
mod load;
pub mod pattern;
pub mod retention;
pub mod rules;
pub mod show;

pub use files::read_beside;
pub use load::{
    API_VERSION, DEFAULT_POLICY, KIND, PolicyError, Problem, ReadFile, default_policy,
    parse_policy, parse_policy_with,
};
pub use pattern::{HostPattern, ImageKey, ImagePattern, NamePattern, PatternError};
pub use rules::{AuditKind, FindingKind, Level, RuleId};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use globset::GlobMatcher;
use jiff::Timestamp;

use crate::reference::{ImageRef, RegistryHost};
use crate::workload::WorkloadKinds;
use crate::yaml::Pos;

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    description: Option<String>,
    /// Where it came from, for reports: a file path or `<embedded default>`.
    origin: String,
    levels: Vec<Level>,
    registries: Vec<ApprovedRegistry>,
    forbidden_tags: Vec<Pattern>,
    bases: Vec<BaseImage>,
    not_deployable: Vec<NamePattern>,
    exemptions: Vec<Exemption>,
    /// Per rule (indexed like `levels`): what admission does when the registry cannot answer.
    on_unavailable: Vec<OnUnavailable>,
    /// The registry's tag retention rules (`spec.retention`), simulated by the audit.
    retention: Vec<RetentionRule>,
    /// Where custom kinds keep their images: the built-in table and `spec.workloads`.
    workloads: WorkloadKinds,
    /// `spec.overrides`, in file order; empty in a policy resolved for a namespace.
    overrides: Vec<Override>,
    /// `spec.locked`: rules no override may loosen.
    locked: Vec<RuleId>,
    /// `spec.signatures`: which images must be signed, by whom.
    signatures: Vec<SignatureRule>,
    /// The files the policy named and that were read with it (`spec.trustedRoot`), by the
    /// names it gives: a reload watches them too.
    files: Vec<String>,
    /// In a policy resolved for a namespace: the overrides applied, in order.
    applied: Vec<Applied>,
    /// Resolved policies by the set of overrides that apply, shared by the clones of this
    /// policy (a policy is never changed once loaded; a reload makes a new one).
    resolved: Arc<Mutex<HashMap<Vec<usize>, Arc<Policy>>>>,
}

/// How many resolved policies are kept per policy: one per distinct set of matching
/// overrides, so at most one per namespace; past this, each is built again when needed.
const MAX_RESOLVED: usize = 1024;

/// One entry of `spec.signatures`: the images it covers must be signed by `threshold` of
/// its signers.
#[derive(Debug, Clone)]
pub struct SignatureRule {
    /// Name patterns over canonical repository names, segment-safe as the registries'.
    pub images: Vec<NamePattern>,
    /// The signers whose signatures count.
    pub signers: Vec<crate::signature::Signer>,
    /// How many distinct signers must have signed (1 to `signers.len()`; 0 when the rule
    /// requires attestations only).
    pub threshold: usize,
    /// The attestations each covered digest must carry, each signed by one of `signers`.
    pub attestations: Vec<crate::signature::attestation::Requirement>,
    /// How hard a failure bites.
    pub level: Level,
    /// What admission does when the registry cannot say in time.
    pub on_unavailable: OnUnavailable,
    /// Which digests of the image must be signed.
    pub digests: SignedDigests,
    /// The trusted root its keyless signers are checked against (`spec.trustedRoot`).
    pub root: Option<Arc<crate::signature::TrustedRoot>>,
    /// What a verdict of this rule depends on (its signers, threshold, digests and trusted
    /// root): the key of remembered verdicts, so that a reloaded policy with other signers
    /// never reuses one.
    pub fingerprint: String,
}

/// Which digests a signature rule requires signatures on (`spec.signatures[].digests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedDigests {
    /// `image` (default): the digest the reference resolves to; for a multi-arch tag, the
    /// index (what `cosign sign` of the tag signs).
    Image,
    /// `platforms`: every runnable platform manifest of an index (attestations left out); a
    /// single-platform image is its own platform.
    Platforms,
    /// `imageOrPlatforms`: the image's digest, or else every platform.
    ImageOrPlatforms,
}

/// One entry of `spec.overrides`: what changes for the namespaces it selects.
#[derive(Debug, Clone)]
pub struct Override {
    namespaces: Vec<Pattern>,
    levels: Vec<(RuleId, Level)>,
    registries: Vec<ApprovedRegistry>,
    forbidden_tags: Vec<Pattern>,
    exemptions: Vec<Exemption>,
    pos: Pos,
}

impl Override {
    /// Whether it applies in `namespace`.
    pub fn selects(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|p| p.is_match(namespace))
    }
}

/// An override applied to a resolved policy, for `policy show` and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its index in `spec.overrides`.
    pub index: usize,
    /// Where it is in the policy file.
    pub pos: Pos,
    /// Its namespace globs, as written.
    pub namespaces: Vec<String>,
}

/// A policy as it applies in one namespace: the policy itself when no override selects the
/// namespace, else the policy with the matching overrides applied.
#[derive(Debug, Clone)]
pub enum Scoped<'a> {
    /// No override applies.
    Base(&'a Policy),
    /// The resolved policy.
    Overlaid(Arc<Policy>),
}

impl std::ops::Deref for Scoped<'_> {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        match self {
            Scoped::Base(p) => p,
            Scoped::Overlaid(p) => p,
        }
    }
}

/// A registry's tag retention rule, as the policy declares it: keep the newest `keep` tags of
/// each matching repository, ordered by version or push time; the rest are deleted on its next
/// run (Harbor's "retain the most recently pushed N" rule, for one).
#[derive(Debug, Clone)]
pub struct RetentionRule {
    /// Globs over canonical repository names (`registry.example.org/team/**`); the first rule
    /// that matches a repository is its rule.
    pub repositories: Vec<NamePattern>,
    /// How many tags each repository keeps; at least 1.
    pub keep: usize,
    /// Which tags count as the newest. By push time the audit cannot simulate the rule: the
    /// distribution API does not give push times.
    pub order_by: crate::policy::retention::OrderBy,
}

impl Policy {
    /// The policy as it applies in `namespace`: each override whose `namespaces` select it is
    /// applied in file order over the cluster-wide policy (levels set, registries, forbidden
    /// tags and exemptions added; a later override's level wins). `spec.locked` rules cannot
    /// be loosened: the loader refuses an override that tries.
    pub fn in_namespace(&self, namespace: &str) -> Scoped<'_> {
        if self.overrides.is_empty() {
            return Scoped::Base(self);
        }
        let matching: Vec<usize> = (0..self.overrides.len())
            .filter(|&i| self.overrides[i].selects(namespace))
            .collect();
        if matching.is_empty() {
            return Scoped::Base(self);
        }
        // A panic elsewhere while holding the lock leaves the map intact: it only ever holds
        // complete entries.
        let mut cache = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&matching) {
            return Scoped::Overlaid(Arc::clone(p));
        }
        let resolved = Arc::new(self.overlay(&matching));
        if cache.len() < MAX_RESOLVED {
            cache.insert(matching, Arc::clone(&resolved));
        }
        Scoped::Overlaid(resolved)
    }

    fn overlay(&self, which: &[usize]) -> Policy {
        let mut p = Policy {
            overrides: Vec::new(),
            resolved: Arc::default(),
            ..self.clone()
        };
        for &i in which {
            let o = &self.overrides[i];
            for &(rule, level) in &o.levels {
                p.levels[rule as usize] = level;
            }
            p.registries.extend(o.registries.iter().cloned());
            p.forbidden_tags.extend(o.forbidden_tags.iter().cloned());
            p.exemptions.extend(o.exemptions.iter().cloned());
            p.applied.push(Applied {
                index: i,
                pos: o.pos,
                namespaces: o.namespaces.iter().map(|n| n.as_str().to_owned()).collect(),
            });
        }
        p
    }

    /// In a policy resolved for a namespace, the overrides applied; empty otherwise.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// Every `spec.overrides` entry, described as [`Applied`] describes the ones applied.
    pub fn overrides(&self) -> Vec<Applied> {
        self.overrides
            .iter()
            .enumerate()
            .map(|(index, o)| Applied {
                index,
                pos: o.pos,
                namespaces: o.namespaces.iter().map(|n| n.as_str().to_owned()).collect(),
            })
            .collect()
    }

    /// The signature rules that cover the repository `canonical_name`, in file order.
    pub fn signature_rules_for<'a>(
        &'a self,
        canonical_name: &'a str,
    ) -> impl Iterator<Item = &'a SignatureRule> + 'a {
        self.signatures
            .iter()
            .filter(move |r| r.images.iter().any(|p| p.is_match(canonical_name)))
    }

    /// The highest `level` of the signature rules that cover `canonical_name` and that `keep`
    /// selects; `None` when none does.
    pub fn signature_level(
        &self,
        canonical_name: &str,
        keep: impl Fn(&SignatureRule) -> bool,
    ) -> Option<Level> {
        self.signature_rules_for(canonical_name)
            .filter(|r| keep(r))
            .map(|r| r.level)
            .max()
    }

    /// `spec.signatures`.
    pub fn signature_rules(&self) -> &[SignatureRule] {
        &self.signatures
    }

    /// The files the policy named and that were read with it, by the names it gives.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// `spec.locked`.
    pub fn locked(&self) -> &[RuleId] {
        &self.locked
    }

    /// The forbidden tag globs.
    pub fn forbidden_tags(&self) -> &[Pattern] {
        &self.forbidden_tags
    }

    /// Every exemption of the policy and of its overrides: what `exemption-expired` reports.
    pub fn all_exemptions(&self) -> impl Iterator<Item = &Exemption> {
        self.exemptions
            .iter()
            .chain(self.overrides.iter().flat_map(|o| o.exemptions.iter()))
    }

    /// Every registry entry of the policy and of its overrides: the registries tollgate may
    /// contact (a registry one namespace may use is approved to be contacted; whether an
    /// image is approved is decided per namespace).
    pub fn all_registries(&self) -> impl Iterator<Item = &ApprovedRegistry> {
        self.registries
            .iter()
            .chain(self.overrides.iter().flat_map(|o| o.registries.iter()))
    }

    /// The entry, of the policy or of any override, that lets tollgate contact `image`'s
    /// registry for it.
    pub fn contactable_registry(&self, image: &ImageRef) -> Option<&ApprovedRegistry> {
        self.all_registries().find(|r| r.matches(image))
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Where the policy was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The level the policy gives `rule`.
    pub fn level(&self, rule: RuleId) -> Level {
        self.levels[rule as usize]
    }

    /// The highest level `rule` has cluster-wide or in any override: whether the registry must
    /// be asked at all (each namespace's level is applied to the outcome afterwards).
    pub fn level_anywhere(&self, rule: RuleId) -> Level {
        self.overrides
            .iter()
            .flat_map(|o| o.levels.iter())
            .filter(|(r, _)| *r == rule)
            .map(|(_, l)| *l)
            .fold(self.level(rule), Level::max)
    }

    /// The approved registries.
    pub fn registries(&self) -> &[ApprovedRegistry] {
        &self.registries
    }

    /// The approved Debian and distroless base images.
    pub fn bases(&self) -> &[BaseImage] {
        &self.bases
    }

    /// Where custom kinds (Argo Rollouts, Tekton, a policy's own) keep their images.
    pub fn workloads(&self) -> &WorkloadKinds {
        &self.workloads
    }

    /// The exemptions, in file order.
    pub fn exemptions(&self) -> &[Exemption] {
        &self.exemptions
    }

    /// What admission does when `rule` needs the registry and the registry did not answer in
    /// time (`spec.registryUnavailable`; `allow` unless the policy says otherwise).
    pub fn on_registry_unavailable(&self, rule: RuleId) -> OnUnavailable {
        self.on_unavailable[rule as usize]
    }

    /// The retention rule for the repository `canonical_name` (the first that matches).
    pub fn retention_for(&self, canonical_name: &str) -> Option<&RetentionRule> {
        self.retention
            .iter()
            .find(|r| r.repositories.iter().any(|p| p.is_match(canonical_name)))
    }

    /// The approved registry entry `image` falls under, if any.
    pub fn approved_registry(&self, image: &ImageRef) -> Option<&ApprovedRegistry> {
        self.registries.iter().find(|r| r.matches(image))
    }

    /// `image`'s name as every policy pattern is matched against it: the host lowercased, an
    /// alias host replaced by the registry's primary host, so that one pattern covers every
    /// name and every spelling of a registry. The written form is for display only.
    pub fn canonical_name<'a>(&self, image: &'a ImageRef) -> std::borrow::Cow<'a, str> {
        match self
            .registries
            .iter()
            .find(|r| r.aliases.contains(image.registry()))
            .and_then(|r| r.host.exact())
        {
            // Only an entry with one exact host has aliases (the loader refuses them on a
            // wildcard host: an alias maps to one primary name).
            Some(host) => format!("{}/{}", host.canonical(), image.repository()).into(),
            None => image.canonical_name().into(),
        }
    }
}

/// What admission does with a registry-backed rule that could not be evaluated because the
/// registry did not answer before the webhook's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnUnavailable {
    /// Admit, with a warning that the rule could not be checked.
    Allow,
    /// Deny, as if the rule had failed (a rule whose level is `warn` only warns).
    Deny,
}

impl OnUnavailable {
    /// The value as `spec.registryUnavailable` writes it: `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Allow => "allow",
            OnUnavailable::Deny => "deny",
        }
    }
}

/// One approved registry: a host (or a label-safe host pattern) with its aliases, optionally
/// narrowed to a path (whose segments may be segment globs or `**`).
#[derive(Debug, Clone)]
pub struct ApprovedRegistry {
    host: HostPattern,
    aliases: Vec<RegistryHost>,
    /// Path segments an image's repository must start with (a prefix entry) or be (an exact
    /// one); empty for the whole registry.
    path: Vec<pattern::Segment>,
    /// The path as written, without a trailing `/`, for messages.
    path_text: String,
    /// The repository must be exactly `path` (a `repository:` entry), not under it.
    exact: bool,
    insecure: bool,
    redirect_hosts: Vec<RegistryHost>,
}

impl ApprovedRegistry {
    /// Whether `image` is in this registry, under its path. Compared by exact host[:port] and
    /// whole path segments: `registry.example.org/team` does not approve
    /// `registry.example.org/teamx/app`, and no string prefix of the host counts.
    pub fn matches(&self, image: &ImageRef) -> bool {
        if !self.matches_host(image.registry()) {
            return false;
        }
        // Literal segments, the common case, are compared in place: admission checks every
        // image against every entry, and this stays allocation-free.
        if self.path.iter().all(|s| s.literal().is_some()) {
            let mut components = image.repository().components();
            let under = self
                .path
                .iter()
                .all(|seg| components.next() == seg.literal());
            // A prefix needs at least one component below its path; an exact entry none.
            return under && (components.next().is_some() != self.exact);
        }
        let components: Vec<&str> = image.repository().components().collect();
        let n = components.len();
        let lengths = pattern::matched_lengths(&self.path, &components);
        if self.exact {
            lengths[n]
        } else {
            lengths[..n].iter().any(|&m| m)
        }
    }

    /// Whether `host` is this entry's host (or matches its pattern) or one of its aliases.
    pub fn matches_host(&self, host: &RegistryHost) -> bool {
        self.host.matches(host) || self.aliases.contains(host)
    }

    /// Whether this is a `repository:` entry: exactly one repository.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// How reports name what this entry approves: `host/path/` for a prefix (what is under it),
    /// `host/path` for one repository.
    pub fn shown(&self) -> String {
        if self.exact {
            self.prefix()
        } else {
            format!("{}/", self.prefix())
        }
    }

    /// `host[/path]` as written in the policy.
    pub fn prefix(&self) -> String {
        if self.path.is_empty() {
            self.host.to_string()
        } else {
            format!("{}/{}", self.host, self.path_text)
        }
    }

    /// The primary host, or the host pattern.
    pub fn host(&self) -> &HostPattern {
        &self.host
    }

    /// Other names of the same registry.
    pub fn aliases(&self) -> &[RegistryHost] {
        &self.aliases
    }

    /// Whether the registry is reached over plain HTTP (a loopback test registry only).
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Hosts other than the registry's own that its redirects may lead to (blob storage the
    /// registry hands downloads to); empty unless the policy names some.
    pub fn redirect_hosts(&self) -> &[RegistryHost] {
        &self.redirect_hosts
    }
}

/// A glob as written in the policy, compiled, with where it was written.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
    pos: Option<Pos>,
}

impl Pattern {
    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }

    /// Where in the policy file it was written.
    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }
}

/// Which family of base image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseFamily {
    /// `spec.bases.debian`: an image is approved by the layers of one of these, or, when no
    /// base's layers match, by an os-release that says Debian or a derivative (whatever this
    /// list holds).
    Debian,
    /// `spec.bases.distroless`: an image is approved by the layers of one of these only.
    Distroless,
}

/// An approved base image repository, optionally limited to some tags.
#[derive(Debug, Clone)]
pub struct BaseImage {
    family: BaseFamily,
    /// `registry/repository`, fully qualified.
    name: String,
    /// Empty: every tag.
    tags: Vec<Pattern>,
}

impl BaseImage {
    /// The list of `spec.bases` it is written in.
    pub fn family(&self) -> BaseFamily {
        self.family
    }

    /// `registry/repository`, fully qualified: compared with canonical names.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag globs it is approved with; empty: every tag.
    pub fn tags(&self) -> &[Pattern] {
        &self.tags
    }
}

/// When an exemption stops exempting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The instant from which the exemption no longer applies.
    pub at: Timestamp,
    /// The day shown in messages: the date as written, or a timestamp's day in UTC.
    pub written: jiff::civil::Date,
}

/// An exemption: some rules (or all) do not apply to some namespaces and/or images.
#[derive(Debug, Clone)]
pub struct Exemption {
    namespaces: Vec<Pattern>,
    images: Vec<ImagePattern>,
    /// Empty: every rule.
    rules: Vec<RuleId>,
    reason: String,
    expires: Option<Expiry>,
    pos: Pos,
}

impl Exemption {
    /// Why the exemption exists (mandatory in the policy).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When it expires, if it does.
    pub fn expires(&self) -> Option<Expiry> {
        self.expires
    }

    /// Where in the policy file it is.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| now >= e.at)
    }

    /// Whether it covers `rule` for `image` (`None`: a reference that does not parse) in
    /// `namespace`, ignoring expiry. Every selector given must match.
    pub fn covers(&self, rule: RuleId, namespace: &str, image: Option<ImageKey<'_>>) -> bool {
        (self.rules.is_empty() || self.rules.contains(&rule))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|p| p.is_match(namespace)))
            && (self.images.is_empty()
                || image.is_some_and(|i| self.images.iter().any(|p| p.is_match(i))))
    }

    /// A short description for reports: `namespaces kube-system; images docker.io/**`.
    pub fn selector(&self) -> String {
        let join = |ps: &[Pattern]| {
            ps.iter()
                .map(Pattern::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.namespaces.is_empty() {
            parts.push(format!("namespaces {}", join(&self.namespaces)));
        }
        if !self.images.is_empty() {
            let images: Vec<&str> = self.images.iter().map(ImagePattern::as_str).collect();
            parts.push(format!("images {}", images.join(", ")));
        }
        if !self.rules.is_empty() {
            parts.push(format!(
                "rules {}",
                self.rules
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod tests;
