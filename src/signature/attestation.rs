//! in-toto attestations: what a rule requires of them, and whether a digest's attestations
//! meet it.
//!
//! An attestation is a DSSE envelope ([`super::dsse`]) whose payload is an in-toto Statement
//! (in-toto/attestation spec v1, `statement.md`): `_type`, the `subject` it is about (names and
//! digests), a `predicateType`, and the `predicate`. cosign stores them under the tag scheme's
//! `sha256-<hex>.att` tag, one envelope per layer (`application/vnd.dsse.envelope.v1+json`),
//! with the certificate, chain and Rekor bundle of keyless signing in the layer annotations as
//! for signatures.
//!
//! The first predicate with conditions is SLSA provenance v1 (slsa.dev/spec/v1.0/provenance):
//! the builder's id (`runDetails.builder.id`), and the source repository and ref. Where the
//! source is depends on the build type; tollgate reads
//! `buildDefinition.externalParameters.workflow.{repository, ref}` (GitHub Actions' build
//! types, as both GitHub's artifact attestations and slsa-github-generator write them), else
//! the first `buildDefinition.resolvedDependencies[].uri` of the form `git+<repo>@<ref>`.

use serde::Deserialize;

use super::Matcher;
use crate::reference::Digest;

/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// The media type of a cosign attestation layer.
pub const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
/// SLSA provenance v1's predicate type.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The largest envelope read: provenance with many dependencies runs to tens of KB.
pub const MAX_ENVELOPE_BYTES: u64 = 1 << 20;

/// A glob over a git ref (`refs/tags/v*`): `*` never crosses a `/`.
#[derive(Debug, Clone)]
pub struct RefPattern {
    glob: globset::GlobMatcher,
    text: String,
}

impl PartialEq for RefPattern {
    fn eq(&self, other: &RefPattern) -> bool {
        self.text == other.text
    }
}

impl Eq for RefPattern {}

impl RefPattern {
    /// Compile `text`; the error says why it is not a glob.
    pub fn parse(text: &str) -> Result<RefPattern, String> {
        globset::GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map(|g| RefPattern {
                glob: g.compile_matcher(),
                text: text.to_owned(),
            })
            .map_err(|e| e.to_string())
    }

    /// Whether `git_ref` matches.
    pub fn matches(&self, git_ref: &str) -> bool {
        self.glob.is_match(git_ref)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Conditions on SLSA provenance v1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlsaConditions {
    /// `runDetails.builder.id`.
    pub builder_id: Option<Matcher>,
    /// The source repository (`https://github.com/acme/app`); a `git+` prefix in the
    /// provenance is dropped before comparing.
    pub source_repository: Option<Matcher>,
    /// The source ref must match one of these (`refs/heads/main`, `refs/tags/v*`).
    pub source_refs: Vec<RefPattern>,
}

/// An attestation a rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// For reports (`provenance`).
    pub name: String,
    /// The predicate type it must have.
    pub predicate_type: String,
    /// Conditions on the predicate, for SLSA provenance v1.
    pub slsa: Option<SlsaConditions>,
}

impl Requirement {
    /// What verdicts of this requirement depend on, as text.
    pub fn fingerprint(&self) -> String {
        let mut s = format!("{}|{}", self.name, self.predicate_type);
        if let Some(c) = &self.slsa {
            let m = |m: &Option<Matcher>| m.as_ref().map(Matcher::shown).unwrap_or_default();
            s.push_str(&format!(
                "|{}|{}|{}",
                m(&c.builder_id),
                m(&c.source_repository),
                c.source_refs
                    .iter()
                    .map(RefPattern::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        s
    }
}

/// An in-toto statement, as much as tollgate reads of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `predicateType`.
    pub predicate_type: String,
    /// `subject[].digest.sha256`, lowercase hex.
    pub subjects: Vec<String>,
    /// `predicate`.
    pub predicate: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementJson {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<SubjectJson>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct SubjectJson {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Parse an envelope's payload as an in-toto statement (v0.1 or v1).
pub fn parse_statement(payload_type: &str, payload: &[u8]) -> Result<Statement, String> {
    if payload_type != IN_TOTO_PAYLOAD {
        return Err(format!(
            "its payloadType is {payload_type:?}, not {IN_TOTO_PAYLOAD:?}"
        ));
    }
    let s: StatementJson = serde_json::from_slice(payload)
        .map_err(|e| format!("its payload is not an in-toto statement: {e}"))?;
    if !matches!(
        s.kind.as_str(),
        "https://in-toto.io/Statement/v1" | "https://in-toto.io/Statement/v0.1"
    ) {
        return Err(format!(
            "its _type is {:?}, not an in-toto Statement v1 or v0.1",
            s.kind
        ));
    }
    Ok(Statement {
        predicate_type: s.predicate_type,
        subjects: s
            .subject
            .into_iter()
            .filter_map(|d| d.digest.get("sha256").map(|h| h.to_ascii_lowercase()))
            .collect(),
        predicate: s.predicate,
    })
}

/// What SLSA provenance v1 says of the build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provenance {
    /// `runDetails.builder.id`.
    pub builder_id: Option<String>,
    /// The source repository, without `git+`.
    pub source_repository: Option<String>,
    /// The source ref.
    pub source_ref: Option<String>,
}

/// Read the builder and source of a SLSA provenance v1 predicate.
pub fn provenance(predicate: &serde_json::Value) -> Provenance {
    let s = |p: &str| {
        predicate
            .pointer(p)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut out = Provenance {
        builder_id: s("/runDetails/builder/id"),
        source_repository: s("/buildDefinition/externalParameters/workflow/repository"),
        source_ref: s("/buildDefinition/externalParameters/workflow/ref"),
    };
    if out.source_repository.is_none() || out.source_ref.is_none() {
        let git = predicate
            .pointer("/buildDefinition/resolvedDependencies")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("uri").and_then(|u| u.as_str()))
            .find_map(|u| u.strip_prefix("git+")?.rsplit_once('@'));
        if let Some((repo, git_ref)) = git {
            out.source_repository.get_or_insert_with(|| repo.to_owned());
            out.source_ref.get_or_insert_with(|| git_ref.to_owned());
        }
    }
    if let Some(r) = &mut out.source_repository
        && let Some(stripped) = r.strip_prefix("git+")
    {
        *r = stripped.to_owned();
    }
    out
}

/// Whether `statement` meets `req` for `digest`: it is about the digest, of the predicate
/// type, and its predicate meets the conditions. `Err`: why not, in one line.
pub fn check(req: &Requirement, statement: &Statement, digest: &Digest) -> Result<(), String> {
    let text = digest.to_string();
    let hex = text.strip_prefix("sha256:").unwrap_or(&text);
    if !statement.subjects.iter().any(|s| s == hex) {
        return Err(format!("its subject is not {digest}"));
    }
    if statement.predicate_type != req.predicate_type {
        return Err(format!(
            "its predicateType is {}, not {}",
            statement.predicate_type, req.predicate_type
        ));
    }
    let Some(c) = &req.slsa else {
        return Ok(());
    };
    let p = provenance(&statement.predicate);
    let field = |name: &str, want: &Option<Matcher>, got: &Option<String>| match (want, got) {
        (None, _) => Ok(()),
        (Some(m), Some(v)) if m.matches(v) => Ok(()),
        (Some(m), Some(v)) => Err(format!("its {name} is {v}, not {}", m.shown())),
        (Some(_), None) => Err(format!("its provenance names no {name}")),
    };
    field("builder id", &c.builder_id, &p.builder_id)?;
    field(
        "source repository",
        &c.source_repository,
        &p.source_repository,
    )?;
    if !c.source_refs.is_empty() {
        match &p.source_ref {
            Some(r) if c.source_refs.iter().any(|g| g.matches(r)) => {}
            Some(r) => {
                return Err(format!(
                    "its source ref {r} matches none of {}",
                    c.source_refs
                        .iter()
                        .map(RefPattern::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            None => return Err("its provenance names no source ref".into()),
        }
    }
    Ok(())
}
