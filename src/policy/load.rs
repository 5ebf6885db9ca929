//! Reading a policy file: deserialize, then validate, reporting every problem at once with its
//! file and line.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::Value;

use super::RetentionRule;
use super::eval::REGISTRY_RULES;
use super::pattern::Segment;
use super::{
    ApprovedRegistry, BaseFamily, BaseImage, Exemption, Expiry, HostPattern, ImagePattern, Level,
    NamePattern, OnUnavailable, Override, Pattern, Policy, RuleId, SignatureRule, SignedDigests,
};
use crate::config::{self, Validator};
use crate::policy::retention::OrderBy;
use crate::reference::{ImageRef, RegistryHost};
use crate::signature::attestation::{RefPattern, Requirement, SLSA_PROVENANCE_V1, SlsaConditions};
use crate::signature::{Identity, Matcher, PublicKey, Signer, Trusted, TrustedRoot};
use crate::workload::{self, ContainerKind, FieldPath, KindEntry, Site, WorkloadKinds};
use crate::yaml::Pos;

/// The policy format version this build reads.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The policy document kind.
pub const KIND: &str = "Policy";
/// The embedded default policy (`policies/default.yaml`): the production realm (only the
/// production registry, Debian or approved distroless bases, bases never deployed).
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.yaml");

pub use crate::config::Problem;

/// A policy file that cannot be used, with every problem found in it.
pub type PolicyError = config::Invalid;

/// The embedded default policy.
pub fn default_policy() -> Policy {
    parse_policy(DEFAULT_POLICY, "<embedded default>")
        .expect("the embedded default policy is valid (tested)")
}

/// Parse and validate a policy from `text`; `origin` names it in messages (usually the path).
/// A policy that names other files (`spec.trustedRoot`) is refused: it must be read with
/// [`parse_policy_with`], which can read them.
pub fn parse_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    parse_policy_with(text, origin, &|name: &str| {
        Err(format!(
            "{name} cannot be read: this policy was not loaded from a file, so the files it \
             names have no place to be read from"
        ))
    })
}

/// Reads a file the policy names, by the name it gives (relative to the policy's own
/// place: its directory, or its commit's tree); `Err`: why not, in one line. The loader stays
/// pure: whoever loads the policy does the reading.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, String>;

/// [`parse_policy`], reading the files the policy names with `read`.
pub fn parse_policy_with(
    text: &str,
    origin: &str,
    read: ReadFile<'_>,
) -> Result<Policy, PolicyError> {
    let fail = |problems| PolicyError {
        what: "policy",
        origin: origin.to_owned(),
        problems,
    };
    let (file, v) = config::read::<PolicyFile>(text).map_err(fail)?;
    let mut checker = Checker {
        v,
        read,
        files: Vec::new(),
    };
    let policy = checker.policy(file, origin);
    checker.v.finish().map_err(fail)?;
    Ok(policy)
}

// ---- the file format -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyFile {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    /// Rule id -> level. Values are validated here rather than by serde so that a bad level
    /// does not hide the other problems of the file.
    #[serde(default)]
    rules: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    registries: Vec<RegistrySpec>,
    #[serde(default)]
    tags: TagsSpec,
    #[serde(default)]
    bases: BasesSpec,
    #[serde(default)]
    not_deployable: Vec<String>,
    #[serde(default)]
    exemptions: Vec<ExemptionSpec>,
    /// Registry-backed rule id -> `allow` | `deny`, validated like `rules`.
    #[serde(default)]
    registry_unavailable: BTreeMap<String, serde_json::Value>,
    /// The registry's tag retention rules, for the audit to simulate.
    #[serde(default)]
    retention: Vec<RetentionSpec>,
    /// Custom kinds and where they keep their pod specs and containers.
    #[serde(default)]
    workloads: Vec<WorkloadSpec>,
    /// What changes for some namespaces.
    #[serde(default)]
    overrides: Vec<OverrideSpec>,
    /// Rules no override may loosen.
    #[serde(default)]
    locked: Vec<String>,
    /// Which images must be signed, and by whom.
    #[serde(default)]
    signatures: Vec<SignatureSpec>,
    /// The Sigstore trusted_root.json keyless signers are checked against: a file name,
    /// relative to the policy.
    trusted_root: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureSpec {
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    keys: Vec<KeySpec>,
    #[serde(default)]
    keyless: Vec<KeylessSpec>,
    /// Notary Project (notation) signers.
    #[serde(default)]
    notation: Vec<NotationSpec>,
    #[serde(default)]
    attestations: Vec<AttestationSpec>,
    threshold: Option<usize>,
    /// `deny`, `warn` or `audit`; a Value so that YAML's bare `off` (a boolean) gets its own
    /// message.
    level: Option<Value>,
    registry_unavailable: Option<String>,
    digests: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttestationSpec {
    name: Option<String>,
    predicate_type: Option<String>,
    builder_id: Option<String>,
    #[serde(rename = "builderIdRegExp")]
    builder_id_regexp: Option<String>,
    source_repository: Option<String>,
    #[serde(rename = "sourceRepositoryRegExp")]
    source_repository_regexp: Option<String>,
    #[serde(default)]
    source_refs: Vec<String>,
}

#[derive(Deserialize)]
struct KeylessSpec {
    name: Option<String>,
    issuer: Option<String>,
    #[serde(rename = "issuerRegExp")]
    issuer_regexp: Option<String>,
    subject: Option<String>,
    #[serde(rename = "subjectRegExp")]
    subject_regexp: Option<String>,
    #[serde(rename = "insecureIgnoreSCT", default)]
    insecure_ignore_sct: bool,
}

/// A notation signer: a trust store file beside the policy, and its trusted identities.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotationSpec {
    name: Option<String>,
    trust_store: Option<String>,
    #[serde(default)]
    identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeySpec {
    name: Option<String>,
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverrideSpec {
    #[serde(default)]
    namespaces: Vec<String>,
    /// Rule id -> level, validated like `spec.rules`.
    #[serde(default)]
    rules: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    registries: Vec<RegistrySpec>,
    #[serde(default)]
    tags: TagsSpec,
    #[serde(default)]
    exemptions: Vec<ExemptionSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    api_group: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    pod_specs: Vec<String>,
    #[serde(default)]
    containers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionSpec {
    repositories: Vec<String>,
    keep: usize,
    #[serde(default)]
    order_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrySpec {
    /// Repositories under this `host[:port][/path]`.
    prefix: Option<String>,
    /// Exactly this one repository, `host[:port]/path`.
    repository: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    insecure: bool,
    /// Hosts the registry may redirect to (its blob storage); none by default.
    #[serde(default)]
    redirect_hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
struct TagsSpec {
    #[serde(default)]
    forbidden: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BasesSpec {
    #[serde(default)]
    debian: Vec<BaseSpec>,
    #[serde(default)]
    distroless: Vec<BaseSpec>,
    /// Whether the bases themselves may be deployed (the production policy: never).
    #[serde(default)]
    deployable: bool,
}

#[derive(Deserialize)]
struct BaseSpec {
    repository: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct ExemptionSpec {
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    reason: Option<String>,
    expires: Option<String>,
}

// ---- validation ------------------------------------------------------------------------------

/// The policy's own checks, reported through the shared validator.
struct Checker<'r> {
    v: Validator,
    /// Reads the files the policy names.
    read: ReadFile<'r>,
    /// The names of the files read, in order (a reload watches them).
    files: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.v.problem(pointer, message);
    }

    fn policy(&mut self, file: PolicyFile, origin: &str) -> Policy {
        match file.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => self.problem(
                "/apiVersion".into(),
                format!("unsupported apiVersion {other:?}; this tollgate reads {API_VERSION:?}"),
            ),
            None => self.problem(
                String::new(),
                format!("apiVersion is missing; write `apiVersion: {API_VERSION}`"),
            ),
        }
        match file.kind.as_deref() {
            Some(KIND) => {}
            Some(other) => self.problem(
                "/kind".into(),
                format!("kind must be {KIND:?}, not {other:?}"),
            ),
            None => self.problem(
                String::new(),
                format!("kind is missing; write `kind: {KIND}`"),
            ),
        }
        let name = match file.metadata.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                self.problem("/metadata".into(), "metadata.name is missing or empty");
                String::new()
            }
        };
        let spec = file.spec;

        let mut levels: Vec<Level> = RuleId::ALL.iter().map(|r| r.default_level()).collect();
        for (rule, level) in self.levels("/spec/rules", &spec.rules) {
            levels[rule as usize] = level;
        }

        let on_unavailable = self.on_unavailable(&spec.registry_unavailable);

        let listed_registries = spec.registries.len();
        let registries: Vec<ApprovedRegistry> = spec
            .registries
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.registry(&format!("/spec/registries/{i}"), r))
            .collect();
        // An entry read past for a wrong type was reported already; its absence is no news.
        if listed_registries == 0
            && levels[RuleId::RegistryNotApproved as usize] != Level::Off
            && !self.v.read_past("/spec/registries")
        {
            self.problem(
                "/spec/registries".into(),
                "no approved registry: list at least one under spec.registries, or set rule registry-not-approved to off",
            );
        }
        for (i, r) in registries.iter().enumerate() {
            if registries[..i].iter().any(|o| o.prefix() == r.prefix()) {
                self.problem(
                    format!("/spec/registries/{i}"),
                    format!("registry {} is listed twice", r.prefix()),
                );
            }
        }

        let forbidden_tags = self.patterns("/spec/tags/forbidden", spec.tags.forbidden);
        let mut bases = Vec::new();
        for (family, list, field) in [
            (BaseFamily::Debian, spec.bases.debian, "debian"),
            (BaseFamily::Distroless, spec.bases.distroless, "distroless"),
        ] {
            for (i, b) in list.into_iter().enumerate() {
                let pointer = format!("/spec/bases/{field}/{i}");
                if let Some(base) = self.base(&pointer, family, b, &registries) {
                    bases.push(base);
                }
            }
        }
        let mut not_deployable = self.name_patterns("/spec/notDeployable", spec.not_deployable);
        if !spec.bases.deployable {
            // The bases themselves are never deployed; the rule covers them without the policy
            // having to list them twice.
            for b in &bases {
                if let Ok(p) = NamePattern::parse(&b.name) {
                    not_deployable.push(p);
                }
            }
        }

        let retention = spec
            .retention
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.retention(i, r))
            .collect();
        let exemptions = spec
            .exemptions
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| self.exemption(format!("/spec/exemptions/{i}"), e))
            .collect();

        let workloads = self.workloads(spec.workloads);
        let locked = self.locked(&spec.locked);
        let root = spec
            .trusted_root
            .and_then(|name| self.trusted_root(&name))
            .map(Arc::new);
        let signatures = spec
            .signatures
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.signature_rule(i, r, root.as_ref()))
            .collect();
        let overrides = self.overrides(spec.overrides, &locked, &levels);

        Policy {
            signatures,
            files: std::mem::take(&mut self.files),
            workloads,
            overrides,
            locked,
            applied: Vec::new(),
            resolved: Default::default(),
            name,
            description: file.metadata.description,
            origin: origin.to_owned(),
            levels,
            registries,
            forbidden_tags,
            bases,
            not_deployable,
            exemptions,
            on_unavailable,
            retention,
        }
    }

    /// `spec.workloads`: the built-in table of custom kinds, plus (or replaced per kind by)
    /// these entries.
    fn workloads(&mut self, specs: Vec<WorkloadSpec>) -> WorkloadKinds {
        let mut entries: Vec<KindEntry> = Vec::new();
        for (i, w) in specs.into_iter().enumerate() {
            let at = format!("/spec/workloads/{i}");
            let (Some(group), Some(kind)) = (w.api_group, w.kind.filter(|k| !k.is_empty())) else {
                self.problem(
                    at,
                    "a workload entry needs apiGroup (argoproj.io; \"\" for the core group) \
                     and kind (Rollout)",
                );
                continue;
            };
            if workload::is_core_workload(&group, &kind) {
                self.problem(
                    format!("{at}/kind"),
                    format!(
                        "{kind} ({}) is one of Kubernetes' own kinds, which tollgate reads \
                         without an entry; take this entry out",
                        if group.is_empty() { "core" } else { &group }
                    ),
                );
                continue;
            }
            if entries.iter().any(|e| e.group == group && e.kind == kind) {
                self.problem(
                    format!("{at}/kind"),
                    format!("{group}/{kind} is listed twice; give it one entry with every path"),
                );
                continue;
            }
            if w.pod_specs.is_empty() && w.containers.is_empty() {
                self.problem(
                    at,
                    format!(
                        "the entry for {kind} lists no podSpecs and no containers, so its \
                         images would pass unchecked; list where they are"
                    ),
                );
                continue;
            }
            let mut sites = Vec::new();
            for (field, paths) in [("podSpecs", w.pod_specs), ("containers", w.containers)] {
                for (j, p) in paths.iter().enumerate() {
                    match FieldPath::parse(p) {
                        Ok(path) if field == "podSpecs" => sites.push(Site::PodSpec(path)),
                        Ok(path) => sites.push(Site::Containers(path, ContainerKind::Container)),
                        Err(e) => self.problem(format!("{at}/{field}/{j}"), e.to_string()),
                    }
                }
            }
            entries.push(KindEntry { group, kind, sites });
        }
        WorkloadKinds::with(entries)
    }

    fn retention(&mut self, i: usize, spec: RetentionSpec) -> Option<RetentionRule> {
        let at = format!("/spec/retention/{i}");
        if spec.repositories.is_empty() {
            self.problem(
                format!("{at}/repositories"),
                "list the repositories the rule applies to (globs, e.g. registry.example.org/team/**)",
            );
        }
        if spec.keep == 0 {
            self.problem(
                format!("{at}/keep"),
                "keep must be at least 1 (a rule that keeps nothing deletes every tag)",
            );
        }
        let order_by = match spec.order_by.as_deref() {
            None | Some("version") => OrderBy::Version,
            Some("pushTime") => OrderBy::PushTime,
            Some(other) => {
                self.problem(
                    format!("{at}/orderBy"),
                    format!("orderBy {other:?} is not one of version, pushTime"),
                );
                OrderBy::Version
            }
        };
        let repositories = self.name_patterns(&format!("{at}/repositories"), spec.repositories);
        Some(RetentionRule {
            repositories,
            keep: spec.keep,
            order_by,
        })
    }

    /// A map of rule id -> level at `at` (`spec.rules`, an override's `rules`).
    fn levels(&mut self, at: &str, map: &BTreeMap<String, Value>) -> Vec<(RuleId, Level)> {
        let mut out = Vec::new();
        for (id, level) in map {
            let pointer = format!("{at}/{id}");
            let parsed = match level {
                Value::String(s) => serde_json::from_value::<Level>(Value::String(s.clone())).ok(),
                // YAML 1.1 reads a bare `off` as the boolean false.
                Value::Bool(false) => Some(Level::Off),
                _ => None,
            };
            let Some(parsed) = parsed else {
                self.problem(
                    pointer,
                    format!("level {level} is not one of deny, warn, audit, off"),
                );
                continue;
            };
            match id.parse::<RuleId>() {
                Ok(rule) => out.push((rule, parsed)),
                Err(_) => self.problem(pointer, unknown_rule(id)),
            }
        }
        out
    }

    /// `spec.trustedRoot`: read and parsed once, for every rule's keyless signers.
    fn trusted_root(&mut self, name: &str) -> Option<TrustedRoot> {
        let at = "/spec/trustedRoot".to_owned();
        self.files.push(name.to_owned());
        let bytes = match (self.read)(name) {
            Ok(b) => b,
            Err(why) => {
                self.problem(at, format!("trustedRoot {name:?}: {why}"));
                return None;
            }
        };
        match crate::signature::trust::parse(&bytes) {
            Ok(root) => Some(root),
            Err(e) => {
                self.problem(at, format!("trustedRoot {name:?}: {e}"));
                None
            }
        }
    }

    /// A keyless signer's issuer or subject: exactly one of the exact and the pattern form.
    fn matcher(
        &mut self,
        at: &str,
        field: &str,
        exact: Option<String>,
        pattern: Option<String>,
    ) -> Option<Matcher> {
        match (exact, pattern) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{at}/{field}"),
                    format!("give {field} or {field}RegExp, not both"),
                );
                None
            }
            (Some(e), None) if !e.trim().is_empty() => Some(Matcher::Exact(e)),
            (None, Some(p)) => match Matcher::pattern(&p) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.problem(
                        format!("{at}/{field}RegExp"),
                        format!("{field}RegExp {p:?} is not a regular expression: {e}"),
                    );
                    None
                }
            },
            _ => {
                self.problem(
                    at.to_owned(),
                    format!(
                        "a keyless signer needs `{field}` (exact) or `{field}RegExp` (a regular \
                         expression over the whole value)"
                    ),
                );
                None
            }
        }
    }

    /// One `spec.signatures` entry.
    fn signature_rule(
        &mut self,
        i: usize,
        spec: SignatureSpec,
        root: Option<&Arc<TrustedRoot>>,
    ) -> Option<SignatureRule> {
        let at = format!("/spec/signatures/{i}");
        let before = self.v.problem_count();
        if spec.images.is_empty() {
            self.problem(
                at.clone(),
                "a signature rule needs `images` (name patterns) to say which images must be signed",
            );
        }
        let images = self.name_patterns(&format!("{at}/images"), spec.images);
        if spec.keys.is_empty() && spec.keyless.is_empty() && spec.notation.is_empty() {
            self.problem(
                at.clone(),
                "a signature rule needs `keys`, `keyless` or `notation`: the signers whose \
                 signature counts",
            );
        }
        let mut signers: Vec<Signer> = Vec::new();
        for (j, k) in spec.keys.into_iter().enumerate() {
            let kat = format!("{at}/keys/{j}");
            let Some(name) = k.name.filter(|n| !n.trim().is_empty()) else {
                self.problem(kat, "a key needs a `name` for reports (release-pipeline)");
                continue;
            };
            if signers.iter().any(|s| s.name == name) {
                self.problem(
                    format!("{kat}/name"),
                    format!("key name {name:?} is used twice"),
                );
                continue;
            }
            let Some(pem) = k.public_key else {
                self.problem(
                    kat,
                    "a key needs `publicKey`: the PEM block of cosign.pub (-----BEGIN PUBLIC KEY-----)",
                );
                continue;
            };
            match PublicKey::from_pem(&pem) {
                Ok(key) => {
                    self.signer(
                        &mut signers,
                        format!("{kat}/publicKey"),
                        name,
                        Trusted::Key(key),
                    );
                }
                Err(e) => self.problem(format!("{kat}/publicKey"), format!("key {name:?}: {e}")),
            }
        }
        if !spec.keyless.is_empty() && root.is_none() {
            self.problem(
                format!("{at}/keyless"),
                "keyless signers need `spec.trustedRoot`: the Sigstore trusted_root.json their \
                 certificates and Rekor entries are checked against (tollgate never fetches one)",
            );
        }
        for (j, k) in spec.keyless.into_iter().enumerate() {
            let kat = format!("{at}/keyless/{j}");
            let Some(name) = k.name.filter(|n| !n.trim().is_empty()) else {
                self.problem(
                    kat,
                    "a keyless signer needs a `name` for reports (release-workflow)",
                );
                continue;
            };
            if signers.iter().any(|s| s.name == name) {
                self.problem(
                    format!("{kat}/name"),
                    format!("signer name {name:?} is used twice"),
                );
                continue;
            }
            let issuer = self.matcher(&kat, "issuer", k.issuer, k.issuer_regexp);
            let subject = self.matcher(&kat, "subject", k.subject, k.subject_regexp);
            if let (Some(issuer), Some(subject)) = (issuer, subject) {
                let id = Trusted::Keyless(Identity {
                    issuer,
                    subject,
                    insecure_ignore_sct: k.insecure_ignore_sct,
                });
                self.signer(&mut signers, kat, name, id);
            }
        }
        for (j, n) in spec.notation.into_iter().enumerate() {
            self.notation_signer(&mut signers, &format!("{at}/notation/{j}"), n);
        }
        let attestations: Vec<Requirement> = spec
            .attestations
            .into_iter()
            .enumerate()
            .filter_map(|(j, a)| self.attestation(&format!("{at}/attestations/{j}"), a))
            .collect();
        let threshold = spec.threshold.unwrap_or(1);
        // 0 is "attestations only": the image itself need not be signed.
        let lowest = usize::from(attestations.is_empty());
        if threshold < lowest || (threshold > signers.len() && !signers.is_empty()) {
            self.problem(
                format!("{at}/threshold"),
                format!(
                    "threshold {threshold} must be between {lowest} and the number of signers ({}){}",
                    signers.len(),
                    if lowest == 1 {
                        " (0 is for rules that require attestations only)"
                    } else {
                        ""
                    }
                ),
            );
        }
        let level = match spec.level.as_ref() {
            None => Level::Deny,
            Some(Value::String(s)) if s == "deny" => Level::Deny,
            Some(Value::String(s)) if s == "warn" => Level::Warn,
            Some(Value::String(s)) if s == "audit" => Level::Audit,
            Some(other) => {
                let shown = match other {
                    Value::Bool(false) => "off".to_owned(),
                    v => v.to_string(),
                };
                self.problem(
                    format!("{at}/level"),
                    format!(
                        "level {shown} is not one of deny, warn, audit (to turn a signature rule \
                         off, remove it)"
                    ),
                );
                Level::Deny
            }
        };
        let on_unavailable = match spec.registry_unavailable.as_deref() {
            None | Some("allow") => OnUnavailable::Allow,
            Some("deny") => OnUnavailable::Deny,
            Some(other) => {
                self.problem(
                    format!("{at}/registryUnavailable"),
                    format!("{other:?} is not one of allow, deny"),
                );
                OnUnavailable::Allow
            }
        };
        let digests = match spec.digests.as_deref() {
            None | Some("image") => SignedDigests::Image,
            Some("platforms") => SignedDigests::Platforms,
            Some("imageOrPlatforms") => SignedDigests::ImageOrPlatforms,
            Some(other) => {
                self.problem(
                    format!("{at}/digests"),
                    format!("digests {other:?} is not one of image, platforms, imageOrPlatforms"),
                );
                SignedDigests::Image
            }
        };
        let mut keys: Vec<String> = signers.iter().map(|s| s.trusted.fingerprint()).collect();
        keys.sort();
        let fingerprint = format!(
            "{threshold}|{digests:?}|{}|{}|{}",
            keys.join(","),
            root.map_or("", |r| &r.fingerprint),
            attestations
                .iter()
                .map(Requirement::fingerprint)
                .collect::<Vec<_>>()
                .join(";")
        );
        (self.v.problem_count() == before).then_some(SignatureRule {
            attestations,
            root: root.cloned(),
            fingerprint,
            digests,
            images,
            signers,
            threshold,
            level,
            on_unavailable,
        })
    }

    /// One required attestation.
    fn attestation(&mut self, at: &str, a: AttestationSpec) -> Option<Requirement> {
        let before = self.v.problem_count();
        let name = a.name.filter(|n| !n.trim().is_empty());
        if name.is_none() {
            self.problem(
                at.to_owned(),
                "an attestation needs a `name` for reports (provenance)",
            );
        }
        let predicate_type = a.predicate_type.filter(|p| !p.trim().is_empty());
        if predicate_type.is_none() {
            self.problem(
                at.to_owned(),
                format!(
                    "an attestation needs `predicateType` (SLSA provenance v1 is \
                     {SLSA_PROVENANCE_V1})"
                ),
            );
        }
        let conditions = a.builder_id.is_some()
            || a.builder_id_regexp.is_some()
            || a.source_repository.is_some()
            || a.source_repository_regexp.is_some()
            || !a.source_refs.is_empty();
        let mut slsa = None;
        if conditions {
            if predicate_type.as_deref() != Some(SLSA_PROVENANCE_V1) {
                self.problem(
                    at.to_owned(),
                    format!(
                        "builderId, sourceRepository and sourceRefs are conditions on SLSA \
                         provenance v1: they need `predicateType: {SLSA_PROVENANCE_V1}`"
                    ),
                );
            }
            let optional = |c: &mut Self, field: &str, e: Option<String>, p: Option<String>| {
                if e.is_none() && p.is_none() {
                    None
                } else {
                    c.matcher(at, field, e, p)
                }
            };
            let builder_id = optional(self, "builderId", a.builder_id, a.builder_id_regexp);
            let source_repository = optional(
                self,
                "sourceRepository",
                a.source_repository,
                a.source_repository_regexp,
            );
            let mut source_refs = Vec::new();
            for (k, r) in a.source_refs.iter().enumerate() {
                match RefPattern::parse(r) {
                    Ok(p) => source_refs.push(p),
                    Err(e) => self.problem(
                        format!("{at}/sourceRefs/{k}"),
                        format!("sourceRefs pattern {r:?} is not a glob: {e}"),
                    ),
                }
            }
            slsa = Some(SlsaConditions {
                builder_id,
                source_repository,
                source_refs,
            });
        }
        (self.v.problem_count() == before).then(|| Requirement {
            name: name.unwrap_or_default(),
            predicate_type: predicate_type.unwrap_or_default(),
            slsa,
        })
    }

    /// One notation signer (`spec.signatures[].notation[]`): its trust store read through
    /// the loader's reader like `spec.trustedRoot`, and its identities parsed.
    fn notation_signer(&mut self, signers: &mut Vec<Signer>, at: &str, n: NotationSpec) {
        use crate::signature::notation::{self, NotationSigner, TrustedIdentity};
        let before = self.v.problem_count();
        let Some(name) = n.name.filter(|n| !n.trim().is_empty()) else {
            self.problem(
                at.to_owned(),
                "a notation signer needs a `name` for reports (release-signing)",
            );
            return;
        };
        if signers.iter().any(|s| s.name == name) {
            self.problem(
                format!("{at}/name"),
                format!("signer name {name:?} is used twice"),
            );
            return;
        }
        let store = match n.trust_store.filter(|f| !f.trim().is_empty()) {
            None => {
                self.problem(
                    at.to_owned(),
                    "a notation signer needs `trustStore`: a PEM file of the root certificates \
                     its signing certificates chain to, relative to the policy",
                );
                None
            }
            Some(file) => {
                if !self.files.contains(&file) {
                    self.files.push(file.clone());
                }
                match (self.read)(&file) {
                    Err(why) => {
                        self.problem(
                            format!("{at}/trustStore"),
                            format!("trustStore {file:?}: {why}"),
                        );
                        None
                    }
                    Ok(bytes) => match notation::trust_store(&file, &bytes) {
                        Ok(store) => Some(store),
                        Err(e) => {
                            self.problem(
                                format!("{at}/trustStore"),
                                format!("trustStore {file:?}: {e}"),
                            );
                            None
                        }
                    },
                }
            }
        };
        if n.identities.is_empty() {
            self.problem(
                at.to_owned(),
                "a notation signer needs `identities`: \"x509.subject: C=US, ST=WA, O=acme, \
                 CN=release\" entries, or [\"*\"] for any certificate of the trust store",
            );
        }
        let mut identities = Vec::new();
        for (k, text) in n.identities.iter().enumerate() {
            match notation::parse_identity(text) {
                Ok(id) => identities.push(id),
                Err(why) => self.problem(format!("{at}/identities/{k}"), why),
            }
        }
        // trust-store-trust-policy.md: "*" stands alone; beside names it would hide them.
        if identities.len() > 1 && identities.contains(&TrustedIdentity::Any) {
            self.problem(
                format!("{at}/identities"),
                "\"*\" trusts every certificate of the trust store: give it alone, or list \
                 subjects only",
            );
        }
        if let (Some(store), true) = (store, self.v.problem_count() == before) {
            let trusted = Trusted::Notation(NotationSigner {
                store: Arc::new(store),
                identities,
            });
            self.signer(signers, at.to_owned(), name, trusted);
        }
    }

    /// Add a signer, unless it is one already listed: one key (or identity) under two names
    /// would count twice towards the threshold.
    fn signer(&mut self, signers: &mut Vec<Signer>, at: String, name: String, trusted: Trusted) {
        if let Some(same) = signers.iter().find(|s| s.trusted == trusted) {
            let what = match trusted {
                Trusted::Key(_) => "key",
                Trusted::Keyless(_) => "identity",
                Trusted::Notation(_) => "trust store and identities",
            };
            self.problem(
                at,
                format!(
                    "{name:?} is the same {what} as {:?}; a threshold counts signers, so list \
                     each once",
                    same.name
                ),
            );
            return;
        }
        signers.push(Signer { name, trusted });
    }

    /// `spec.locked`: rule ids.
    fn locked(&mut self, ids: &[String]) -> Vec<RuleId> {
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match id.parse::<RuleId>() {
                Ok(rule) => out.push(rule),
                Err(_) => self.problem(format!("/spec/locked/{i}"), unknown_rule(id)),
            }
        }
        out
    }

    /// `spec.overrides`, each checked against `locked` and the cluster-wide `levels`: an
    /// override may tighten a locked rule, never loosen it, so it cannot approve a registry,
    /// exempt an image or lower a level where a locked rule forbids it.
    fn overrides(
        &mut self,
        specs: Vec<OverrideSpec>,
        locked: &[RuleId],
        levels: &[Level],
    ) -> Vec<Override> {
        let mut out = Vec::new();
        for (i, o) in specs.into_iter().enumerate() {
            let at = format!("/spec/overrides/{i}");
            let pos = self.v.pos(&at).unwrap_or(Pos { line: 1, column: 1 });
            let before = self.v.problem_count();
            if o.namespaces.is_empty() {
                self.problem(
                    at.clone(),
                    "an override needs `namespaces` (names or globs) to say where it applies",
                );
            }
            let namespaces = self.patterns(&format!("{at}/namespaces"), o.namespaces);
            let rules_at = format!("{at}/rules");
            let mut override_levels = Vec::new();
            for (rule, level) in self.levels(&rules_at, &o.rules) {
                if locked.contains(&rule) && level < levels[rule as usize] {
                    self.problem(
                        format!("{rules_at}/{rule}"),
                        format!(
                            "rule {rule} is locked cluster-wide (spec.locked): an override may \
                             tighten it but not lower it from {} to {level}",
                            levels[rule as usize]
                        ),
                    );
                    continue;
                }
                override_levels.push((rule, level));
            }
            if !o.registries.is_empty() && locked.contains(&RuleId::RegistryNotApproved) {
                self.problem(
                    format!("{at}/registries"),
                    "registry-not-approved is locked cluster-wide (spec.locked): an override \
                     cannot approve more registries; add them to spec.registries, or unlock \
                     the rule",
                );
            }
            for (j, r) in o.registries.iter().enumerate() {
                if !r.aliases.is_empty() {
                    // An alias renames images to the primary host for every pattern: in an
                    // override it would move a namespace's images out from under the
                    // cluster-wide rules (signatures, notDeployable, locked rules).
                    self.problem(
                        format!("{at}/registries/{j}/aliases"),
                        "an override's registry cannot have aliases: they would rename the \
                         namespace's images for every cluster-wide pattern; give the alias its \
                         own entry, or put the aliases in spec.registries",
                    );
                }
            }
            let registries: Vec<ApprovedRegistry> = o
                .registries
                .into_iter()
                .enumerate()
                .filter_map(|(j, r)| self.registry(&format!("{at}/registries/{j}"), r))
                .collect();
            let forbidden_tags = self.patterns(&format!("{at}/tags/forbidden"), o.tags.forbidden);
            let mut exemptions = Vec::new();
            for (j, e) in o.exemptions.into_iter().enumerate() {
                let pointer = format!("{at}/exemptions/{j}");
                let Some(e) = self.exemption(pointer.clone(), e) else {
                    continue;
                };
                let covered: Vec<RuleId> = locked
                    .iter()
                    .copied()
                    .filter(|r| e.rules.is_empty() || e.rules.contains(r))
                    .collect();
                if !covered.is_empty() {
                    let names: Vec<&str> = covered.iter().map(|r| r.as_str()).collect();
                    self.problem(
                        pointer,
                        format!(
                            "this exemption would cover {}, locked cluster-wide \
                             (spec.locked); list the rules it exempts under `rules`, without \
                             the locked ones, or exempt cluster-wide in spec.exemptions",
                            names.join(", ")
                        ),
                    );
                    continue;
                }
                exemptions.push(e);
            }
            if self.v.problem_count() == before {
                out.push(Override {
                    namespaces,
                    levels: override_levels,
                    registries,
                    forbidden_tags,
                    exemptions,
                    pos,
                });
            }
        }
        out
    }

    /// `spec.registryUnavailable`: only the registry-backed rules, each `allow` or `deny`.
    fn on_unavailable(&mut self, spec: &BTreeMap<String, Value>) -> Vec<OnUnavailable> {
        let mut out = vec![OnUnavailable::Allow; RuleId::ALL.len()];
        let registry_rules = || {
            REGISTRY_RULES
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (id, value) in spec {
            let pointer = format!("/spec/registryUnavailable/{id}");
            let rule = match id.parse::<RuleId>() {
                Ok(rule) if REGISTRY_RULES.contains(&rule) => rule,
                Ok(_) => {
                    self.problem(
                        pointer,
                        format!(
                            "rule {id} does not use the registry; registryUnavailable applies to {}",
                            registry_rules()
                        ),
                    );
                    continue;
                }
                Err(_) => {
                    self.problem(
                        pointer,
                        format!(
                            "unknown rule id {id:?}; registryUnavailable applies to {}",
                            registry_rules()
                        ),
                    );
                    continue;
                }
            };
            match value.as_str() {
                Some("allow") => out[rule as usize] = OnUnavailable::Allow,
                Some("deny") => out[rule as usize] = OnUnavailable::Deny,
                _ => self.problem(pointer, format!("{value} is not one of allow, deny")),
            }
        }
        out
    }

    /// One registry entry at `at` (`/spec/registries/0`, or an override's).
    fn registry(&mut self, at: &str, spec: RegistrySpec) -> Option<ApprovedRegistry> {
        let (written, exact, pointer) = match (&spec.prefix, &spec.repository) {
            (Some(p), None) => (p.clone(), false, format!("{at}/prefix")),
            (None, Some(r)) => (r.clone(), true, format!("{at}/repository")),
            (Some(_), Some(_)) => {
                self.problem(
                    at.to_owned(),
                    "give prefix (the repositories under a path) or repository (exactly one \
                     repository), not both: list them as two entries",
                );
                return None;
            }
            // A prefix of the wrong type was reported and read past: nothing more to say.
            (None, None) if self.v.read_past(at) => return None,
            (None, None) => {
                self.problem(
                    at.to_owned(),
                    "an entry needs prefix: host[:port][/path] (the repositories under it) or \
                     repository: host[:port]/path (exactly that one)",
                );
                return None;
            }
        };
        if written.contains("://") {
            self.problem(
                pointer,
                format!(
                    "{written:?} is a URL; write the registry as host[:port][/path], without a \
                     scheme"
                ),
            );
            return None;
        }
        let trimmed = written.trim_end_matches('/');
        let (host_text, path_text) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        // `openpolicyagent/` (Gatekeeper's spelling) names a Docker Hub namespace: a reference
        // can only have a host with a dot or a port, or localhost, so this approves nothing.
        if !crate::reference::looks_like_registry(host_text) && !host_text.contains('*') {
            self.problem(
                pointer,
                format!(
                    "{host_text:?} is not a registry host (a host has a dot or a port, or is \
                     localhost), so this approves nothing; did you mean \"docker.io/{}\"?",
                    written.trim_start_matches('/')
                ),
            );
            return None;
        }
        let host = match HostPattern::parse(host_text) {
            Ok(h) => h,
            Err(e) => {
                self.problem(
                    pointer,
                    format!(
                        "registry {written:?}: {}",
                        crate::error_text::error_text(&e)
                    ),
                );
                return None;
            }
        };
        let mut path = Vec::new();
        if !path_text.is_empty() {
            for seg in path_text.split('/') {
                match Segment::parse(seg) {
                    // A literal segment must be a valid repository component; the reference
                    // parser says why when it is not.
                    Ok(Segment::Literal(l)) => {
                        if let Err(e) = format!("example.org/{l}").parse::<ImageRef>() {
                            self.problem(pointer, format!("registry path {written:?}: {e}"));
                            return None;
                        }
                        path.push(Segment::Literal(l));
                    }
                    Ok(other) => path.push(other),
                    Err(e) => {
                        self.problem(
                            pointer,
                            format!(
                                "registry path {written:?}: {}",
                                crate::error_text::error_text(&e)
                            ),
                        );
                        return None;
                    }
                }
            }
        }
        if exact && (path.is_empty() || written.ends_with('/')) {
            self.problem(
                pointer,
                format!(
                    "repository {written:?} must name one repository, host[:port]/path without \
                     a trailing /; for a whole registry or everything under a path, write \
                     prefix: {written}"
                ),
            );
            return None;
        }
        // `prefix: docker.io/library/ubuntu` approves what is under it, not ubuntu itself:
        // ambiguous, so it must be said one way or the other.
        if !exact && !path.is_empty() && !written.ends_with('/') {
            self.problem(
                pointer,
                format!(
                    "prefix {written:?} approves the repositories under {trimmed}/, not \
                     {trimmed} itself; write repository: {trimmed} for exactly that \
                     repository, or prefix: {trimmed}/ for what is under it"
                ),
            );
            return None;
        }
        if !exact && matches!(path.last(), Some(Segment::AnyDepth)) {
            let under = trimmed.trim_end_matches("/**");
            self.problem(
                pointer,
                format!(
                    "prefix {written:?} ends in **, which a prefix already means: write \
                     prefix: {under}/ for everything under {under}"
                ),
            );
            return None;
        }
        if host.exact().is_none() && !spec.aliases.is_empty() {
            self.problem(
                format!("{at}/aliases"),
                format!(
                    "registry {written:?} has a wildcard host, and aliases name other spellings \
                     of one host; list each host as its own entry instead"
                ),
            );
            return None;
        }
        let mut aliases = Vec::new();
        for (j, a) in spec.aliases.iter().enumerate() {
            let alias_pointer = format!("{at}/aliases/{j}");
            if a.contains('/') {
                self.problem(
                    alias_pointer,
                    format!("alias {a:?} must be a host[:port] without a path"),
                );
                continue;
            }
            match a.parse::<RegistryHost>() {
                Ok(h) => aliases.push(h),
                Err(e) => self.problem(alias_pointer, format!("alias {a:?}: {e}")),
            }
        }
        let mut redirect_hosts = Vec::new();
        for (j, h) in spec.redirect_hosts.iter().enumerate() {
            let at = format!("{at}/redirectHosts/{j}");
            if h.contains(['/', '*']) {
                self.problem(
                    at,
                    format!(
                        "redirect host {h:?} must be one host[:port], without a path or wildcard"
                    ),
                );
                continue;
            }
            match h.parse::<RegistryHost>() {
                Ok(host) => redirect_hosts.push(host),
                Err(e) => self.problem(at, format!("redirect host {h:?}: {e}")),
            }
        }
        Some(ApprovedRegistry {
            host,
            aliases,
            path,
            path_text: path_text.to_owned(),
            exact,
            insecure: spec.insecure,
            redirect_hosts,
        })
    }

    fn base(
        &mut self,
        pointer: &str,
        family: BaseFamily,
        spec: BaseSpec,
        registries: &[ApprovedRegistry],
    ) -> Option<BaseImage> {
        let repo_pointer = format!("{pointer}/repository");
        let image = match spec.repository.parse::<ImageRef>() {
            Ok(r) => r,
            Err(e) => {
                self.problem(
                    repo_pointer,
                    format!("base repository {:?}: {e}", spec.repository),
                );
                return None;
            }
        };
        if image.tag().is_some() || image.digest().is_some() {
            self.problem(
                repo_pointer,
                format!("base repository {:?} must not have a tag or digest; list allowed tags under `tags`", spec.repository),
            );
            return None;
        }
        if !spec.repository.starts_with(&image.registry().to_string()) {
            self.problem(
                repo_pointer,
                format!(
                    "base repository {:?} must be fully qualified ({})",
                    spec.repository,
                    image.name()
                ),
            );
            return None;
        }
        if !registries.iter().any(|r| r.matches(&image)) {
            // Resolving the base means contacting its registry, and tollgate never contacts a
            // registry the policy does not approve.
            self.problem(
                repo_pointer,
                format!(
                    "base repository {} is not in an approved registry",
                    image.name()
                ),
            );
            return None;
        }
        let tags = self.patterns(&format!("{pointer}/tags"), spec.tags);
        Some(BaseImage {
            family,
            name: image.canonical_name().to_owned(),
            tags,
        })
    }

    /// One exemption at `pointer` (`/spec/exemptions/0`, or an override's).
    fn exemption(&mut self, pointer: String, spec: ExemptionSpec) -> Option<Exemption> {
        let pos = self.v.pos(&pointer).unwrap_or(Pos { line: 1, column: 1 });
        let mut ok = true;
        let reason = match spec.reason {
            Some(r) if !r.trim().is_empty() => r,
            _ => {
                self.problem(pointer.clone(), "an exemption needs a non-empty `reason`");
                ok = false;
                String::new()
            }
        };
        if spec.namespaces.is_empty() && spec.images.is_empty() {
            self.problem(
                pointer.clone(),
                "an exemption needs `namespaces` or `images` (or both) to say what it exempts",
            );
            ok = false;
        }
        let mut rules = Vec::new();
        for (j, r) in spec.rules.iter().enumerate() {
            match r.parse::<RuleId>() {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    self.problem(format!("{pointer}/rules/{j}"), e.to_string());
                    ok = false;
                }
            }
        }
        let expires = match spec.expires {
            None => None,
            Some(text) => match parse_expiry(&text) {
                Some(e) => Some(e),
                None => {
                    self.problem(
                        format!("{pointer}/expires"),
                        format!("expires {text:?} is not a date (2026-12-31) or an RFC 3339 timestamp (2026-12-31T18:00:00Z)"),
                    );
                    ok = false;
                    None
                }
            },
        };
        let before = self.v.problem_count();
        let namespaces = self.patterns(&format!("{pointer}/namespaces"), spec.namespaces);
        let images = self.image_patterns(&format!("{pointer}/images"), spec.images);
        ok &= self.v.problem_count() == before;
        ok.then_some(Exemption {
            namespaces,
            images,
            rules,
            reason,
            expires,
            pos,
        })
    }

    /// Compile plain globs (tags, namespaces).
    fn patterns(&mut self, pointer: &str, globs: Vec<String>) -> Vec<Pattern> {
        let mut out = Vec::new();
        for (i, g) in globs.into_iter().enumerate() {
            let p = format!("{pointer}/{i}");
            let pos = self.v.exact_pos(&p);
            if let Some(glob) = self.v.glob(&p, &g, false) {
                out.push(Pattern {
                    matcher: glob.compile_matcher(),
                    text: g,
                    pos,
                });
            }
        }
        out
    }

    /// Whether `g` is written as a fully-qualified name pattern; reports it when not.
    fn qualified(&mut self, p: &str, g: &str) -> bool {
        let first = g.split('/').next().unwrap_or_default();
        let host_like = first.contains(['.', ':']) || first == "localhost" || first.contains('*');
        let ok = host_like && g.contains('/');
        if !ok {
            self.problem(
                p.to_owned(),
                format!(
                    "image pattern {g:?} must be a fully-qualified name, e.g. \
                     docker.io/library/{g} or registry.example.org/team/**"
                ),
            );
        }
        ok
    }

    /// Repository name patterns (`notDeployable`, retention, signature rules): fully
    /// qualified, no tag or digest, segment-safe.
    fn name_patterns(&mut self, pointer: &str, globs: Vec<String>) -> Vec<NamePattern> {
        self.image_name_patterns(pointer, globs, |v, p, g| {
            if g.contains('@') || g.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                v.problem(
                    p.to_owned(),
                    format!(
                        "image pattern {g:?} matches repository names; leave out the tag and \
                         digest"
                    ),
                );
                return None;
            }
            Some(NamePattern::parse(g).map_err(|e| crate::error_text::error_text(&e)))
        })
    }

    /// Exemption image selectors: a name pattern, optionally with a tag glob or a digest.
    fn image_patterns(&mut self, pointer: &str, globs: Vec<String>) -> Vec<ImagePattern> {
        self.image_name_patterns(pointer, globs, |_, _, g| {
            Some(ImagePattern::parse(g).map_err(|e| crate::error_text::error_text(&e)))
        })
    }

    /// Each of `globs` at `pointer/i`, fully qualified, through `parse` (`None`: it reported
    /// the problem itself; `Err`: the parser's reason, reported here).
    fn image_name_patterns<T>(
        &mut self,
        pointer: &str,
        globs: Vec<String>,
        parse: impl Fn(&mut Self, &str, &str) -> Option<Result<T, String>>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, g) in globs.into_iter().enumerate() {
            let p = format!("{pointer}/{i}");
            if !self.qualified(&p, &g) {
                continue;
            }
            match parse(self, &p, &g) {
                Some(Ok(n)) => out.push(n),
                Some(Err(why)) => self.problem(p, format!("image pattern {g:?}: {why}")),
                None => {}
            }
        }
        out
    }
}

/// The message for a rule id that is not one, with a "did you mean".
fn unknown_rule(id: &str) -> String {
    let ids: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
    format!(
        "unknown rule id {id:?}{}; the rules are: {}",
        config::suggest_key(id, &ids),
        ids.join(", ")
    )
}

/// A date means "valid through that day (UTC)"; a timestamp is exact.
fn parse_expiry(text: &str) -> Option<Expiry> {
    if let Ok(date) = text.parse::<Date>() {
        // The last day the calendar has (9999-12-31) has no next day: valid through it means
        // valid for as long as time can be told.
        let at = match date.tomorrow() {
            Ok(next) => next.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp(),
            Err(_) => Timestamp::MAX,
        };
        return Some(Expiry { at, written: date });
    }
    let at = text.parse::<Timestamp>().ok()?;
    Some(Expiry {
        at,
        written: at.to_zoned(jiff::tz::TimeZone::UTC).date(),
    })
}
