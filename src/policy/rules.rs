//! The rule catalogue: every rule's stable id, default level and documentation, in one place,
//! so the engine, the SARIF rule metadata, `explain` and `policies/README.md` agree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happens when a rule is violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Not evaluated.
    Off,
    /// Reported only in audit reports (`tollgate audit`), never in checks or at admission.
    Audit,
    /// Reported; does not fail a check or deny admission (an admission warning).
    Warn,
    /// Fails the check (exit code 1) and denies admission.
    Deny,
}

impl Level {
    /// The level as policy files, reports and metrics labels write it (`deny`, `warn`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Audit => "audit",
            Level::Warn => "warn",
            Level::Deny => "deny",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $level:ident, $summary:literal,
        $description:literal; )*) => {
        /// A rule's stable identifier. The kebab-case id is a contract: it appears in reports,
        /// SARIF, exemptions and policy files, and never changes meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId { $( $(#[$doc])* $variant, )* }

        impl RuleId {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [RuleId] = &[ $( RuleId::$variant, )* ];

            /// The stable kebab-case id.
            pub fn as_str(self) -> &'static str {
                match self { $( RuleId::$variant => $id, )* }
            }

            /// The level a policy gets when it does not set one.
            pub fn default_level(self) -> Level {
                match self { $( RuleId::$variant => Level::$level, )* }
            }

            /// One line on what the rule enforces.
            pub fn summary(self) -> &'static str {
                match self { $( RuleId::$variant => $summary, )* }
            }

            /// The full description, in Markdown: the rule's row of policies/README.md, word
            /// for word (a test keeps the two equal).
            pub fn description(self) -> &'static str {
                match self { $( RuleId::$variant => $description, )* }
            }

            /// The id in PascalCase (`tag-latest` is `TagLatest`), for tools that want a name
            /// distinct from the id (SARIF's `name`).
            pub fn pascal_name(self) -> &'static str {
                match self { $( RuleId::$variant => stringify!($variant), )* }
            }
        }
    };
}

rules! {
    /// The image reference does not parse.
    ReferenceInvalid = "reference-invalid", Deny,
        "The image reference must be valid (distribution reference grammar).",
        "The image reference parses with the distribution reference grammar (what Docker, containerd and the kubelet use). The finding says precisely what is wrong: uppercase repository, empty path component, tag over 128 characters, digest of the wrong length, unsupported algorithm...";
    /// A container of a pod-bearing object has no image, or a non-string one.
    ImageMissing = "image-missing", Deny,
        "Every container of a workload must name its image as a string.",
        "Every container of a workload names its image as a string (not missing, null, a number or a list).";
    /// The image is not in an approved registry (host[:port] and path segments).
    RegistryNotApproved = "registry-not-approved", Deny,
        "Images must come from an approved registry, matched by exact host[:port] and whole path segments.",
        "The image is in an approved registry (`spec.registries`), matched by exact host[:port] and whole path segments.";
    /// The tag is `latest`.
    TagLatest = "tag-latest", Deny,
        "The tag must not be `latest`: it moves, so what runs is not what was reviewed.",
        "The tag is not `latest`. Flagged even with a digest: the next push moves `latest`, leaving the digest untagged, and delete-untagged garbage collection then removes it (seed 000).";
    /// No tag and no digest: the runtime pulls `latest` implicitly.
    TagMissing = "tag-missing", Deny,
        "An image must have a tag or a digest; without both the runtime pulls `latest`.",
        "The reference has a tag or a digest. Without both, the runtime pulls `latest` implicitly.";
    /// The tag matches one of the policy's forbidden tag patterns.
    TagForbidden = "tag-forbidden", Deny,
        "The tag must not match the policy's forbidden tag patterns.",
        "The tag matches none of `spec.tags.forbidden`.";
    /// The reference has no digest.
    DigestMissing = "digest-missing", Warn,
        "The image must be pinned by digest (`@sha256:…`).",
        "The reference is pinned by digest (`@sha256:...`).";
    /// The reference has a digest but no tag.
    DigestUntagged = "digest-untagged", Off,
        "A pinned image must keep its tag (`name:tag@sha256:…`): an untagged digest is removed by delete-untagged garbage collection.",
        "A pinned reference keeps its tag: `name:tag@sha256:...`, not `name@sha256:...`. A digest that no tag points at is deleted by a registry's delete-untagged garbage collection while nodes keep running it from cache (seed 000).";
    /// The repository is one that must never be deployed (a base image).
    RepositoryNotDeployable = "repository-not-deployable", Deny,
        "Base images (and other repositories the policy lists) must never be deployed directly.",
        "The repository is not one that must never be deployed: the bases (unless `spec.bases.deployable`) and `spec.notDeployable`.";
    /// The image does not resolve end to end in the registry.
    ImageUnavailable = "image-unavailable", Deny,
        "The image must resolve end to end in the registry: index, every child manifest, config and every layer blob (needs the registry).",
        "The image resolves end to end in the registry: the tag or digest, the index, every child manifest, each config and every layer blob, each checked against its digest and declared size. An index whose children are all gone is named an orphan index (seed 004). Registry-backed: `verify`, `check --resolve`.";
    /// A `name:tag@digest` whose tag no longer points at the digest.
    TagMoved = "tag-moved", Warn,
        "For name:tag@digest the tag must still point at the digest; otherwise nothing keeps the digest alive (needs the registry).",
        "For `name:tag@digest`, the tag still points at the digest. If it moved (or is gone), nothing keeps the pinned digest alive, and garbage collection will remove it. Registry-backed.";
    /// The image is not built on an approved Debian or distroless base.
    BaseNotApproved = "base-not-approved", Deny,
        "The image must be built on an approved Debian or distroless base (needs the registry).",
        "The image (every platform of it) is built on an approved Debian or distroless base (`spec.bases`). Decided by lineage: the image's layer diff_ids start with the complete diff_ids of an approved base (tag patterns honoured); the only way distroless images are recognised. Where lineage cannot decide, the image's own os-release (topmost layer holding `etc/os-release` or `usr/lib/os-release`, whiteouts honoured, gzip/zstd/tar, layers over 32 MiB not downloaded) must say `ID=debian` or list debian in `ID_LIKE`. The `org.opencontainers.image.base.name` label is reported as a hint only. Registry-backed.";
    /// The image's digest is not signed by enough of the signers a signature rule trusts.
    SignatureUnverified = "signature-unverified", Deny,
        "Images a signature rule covers must be signed, over the digest they resolve to, by enough of the rule's signers (needs the registry).",
        "The digest the reference resolves to carries cosign signatures (the `sha256-<hex>.sig` tag scheme) by at least `threshold` of the signers (public keys, or keyless Fulcio identities checked offline against `spec.trustedRoot` at the time Rekor proves) of each `spec.signatures` rule whose `images` match, and the rule's in-toto attestations (`.att`; SLSA provenance v1 conditions on builder, source repository and ref). Each signature's payload must be a simple-signing document naming exactly that digest; a signature over another digest, a tampered payload or an unknown signer does not count. The level is each rule's `level`; `off` in `spec.rules` turns every signature rule off. Registry-backed.";
    /// An exemption in the policy has expired.
    ExemptionExpired = "exemption-expired", Warn,
        "Exemptions expire; an expired one no longer exempts anything and should be renewed or removed.",
        "An exemption of the policy has passed its `expires` date. It no longer exempts anything; this finding is located at the exemption's line in the policy file.";
    /// A document (or `List` item) of a manifest file is not a Kubernetes object.
    NotAnObject = "not-an-object", Warn,
        "Every document of a manifest file must be a Kubernetes object, with apiVersion and kind; kubectl refuses anything else.",
        "Every document of a manifest file (and every item of a `List`) is a Kubernetes object: a mapping with `apiVersion` and `kind` as strings. kubectl refuses anything else, so a stray `spec:` mapping, a bare list or a scalar is reported at its line rather than skipped. At most 20 per file are listed, and one more finding counts the rest. `check`, `ci` and the hook; with `--require-objects` (or `manifests.requireObjects`) it is an input error instead.";
    /// A manifest file or stream holds no Kubernetes object at all.
    NoObjects = "no-objects", Warn,
        "A manifest file or stream must hold at least one Kubernetes object; an empty one usually means the step that rendered it failed.",
        "A manifest file or stream holds at least one Kubernetes object (of any kind). An empty one usually means the step that rendered it failed (`helm template`, `kustomize build`) and nothing was checked. Located at the file; not reported for a file that already has an input error. With `--require-objects` it is an input error instead.";
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The id is not one of [`RuleId::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule id {0:?}")]
pub struct UnknownRule(pub String);

impl FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRule(s.to_owned()))
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What the audit reports besides the policy's rules: images the registry can no longer serve,
/// by what pulls them next, and images the registry's retention rule deletes on its next run.
/// Their kebab-case ids are as stable as rule ids (reports, metrics labels, alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKind {
    /// Pods run it and the registry cannot serve it: the next restart fails to pull.
    RunningUnservable,
    /// A Deployment's rollback target the registry cannot serve.
    RollbackTargetUnservable,
    /// A controller declares it, no pod runs it, and the registry cannot serve it.
    DeclaredUnservable,
    /// The retention rule deletes its tag on its next run while it runs or is a rollback target.
    RetentionRisk,
}

impl AuditKind {
    /// Every audit kind, in report order.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::RunningUnservable,
        AuditKind::RollbackTargetUnservable,
        AuditKind::DeclaredUnservable,
        AuditKind::RetentionRisk,
    ];

    /// The stable kebab-case id.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::RunningUnservable => "running-unservable",
            AuditKind::RollbackTargetUnservable => "rollback-target-unservable",
            AuditKind::DeclaredUnservable => "declared-unservable",
            AuditKind::RetentionRisk => "retention-risk",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The kind of an audit finding: a policy rule, or one of the audit's own. Serialized as its id;
/// the two id sets never overlap (tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// A policy rule failed.
    Rule(RuleId),
    /// One of the audit's own findings.
    Audit(AuditKind),
}

impl FindingKind {
    /// The stable kebab-case id.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Rule(r) => r.as_str(),
            FindingKind::Audit(a) => a.as_str(),
        }
    }
}

impl From<RuleId> for FindingKind {
    fn from(r: RuleId) -> Self {
        FindingKind::Rule(r)
    }
}

impl From<AuditKind> for FindingKind {
    fn from(a: AuditKind) -> Self {
        FindingKind::Audit(a)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for FindingKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// policies/README.md documents each rule with the same words the reports give tools.
    #[test]
    fn descriptions_are_the_rows_of_the_policy_reference() {
        let readme = include_str!("../../policies/README.md");
        for r in RuleId::ALL {
            let row = format!(
                "| <a id=\"{id}\"></a>`{id}` | {} | {} |",
                r.default_level(),
                r.description(),
                id = r.as_str()
            );
            assert!(readme.contains(&row), "policies/README.md has no row {row}");
        }
    }

    #[test]
    fn ids_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in RuleId::ALL {
            assert!(seen.insert(r.as_str()));
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
            assert_eq!(r.as_str().parse::<RuleId>().unwrap(), *r);
        }
    }

    #[test]
    fn audit_kinds_are_kebab_case_and_never_a_rule_id() {
        for a in AuditKind::ALL {
            assert!(
                a.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
            assert!(
                a.as_str().parse::<RuleId>().is_err(),
                "{a} is also a rule id"
            );
            assert_eq!(
                serde_json::to_value(FindingKind::from(*a)).unwrap(),
                a.as_str()
            );
        }
    }
}
