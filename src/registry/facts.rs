//! The registry-backed rules (`image-unavailable`, `tag-moved`, `base-not-approved`,
//! `signature-unverified`): one resolution of an image turned into rule statuses, shared by
//! `verify`, `check --resolve`, the git gates and admission. A rule is asked when any namespace
//! turns it on; levels and exemptions are applied by the caller per namespace, through
//! [`RegistryFacts::outcome`], exactly as for the offline rules.

use serde::Serialize;

use super::RegistryError;
use super::base::{BaseChecker, BaseVerdict};
use super::resolution::{NodeKind, NodeStatus, Resolution, TagState};
use super::resolve::Resolver;
use super::signatures::{AttestationSet, SignatureSet};
use crate::policy::SignedDigests;
use crate::policy::eval::{Status, Violation};
use crate::policy::{Level, Policy, RuleId};
use crate::reference::{Digest, ImageRef};
use crate::signature::attestation::Statement;
use crate::signature::referred::{FetchedBundle, verify_bundles};
use std::collections::HashMap;

/// What the registry says about one image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryFacts {
    /// The end-to-end walk of the image, which decides `image-unavailable` and `tag-moved`.
    pub resolution: Resolution,
    /// Per-platform base verdicts, when the rule was evaluated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseVerdict>,
    /// The status of each registry-backed rule.
    #[serde(skip)]
    pub statuses: Vec<(RuleId, Status)>,
    /// When `signature-unverified` failed: the highest `level` of the signature rules that
    /// failed (not of every rule that covers the image), which the outcome takes.
    #[serde(skip)]
    pub signature_level: Option<Level>,
}

impl RegistryFacts {
    /// The outcome of `rule` from `status`, as [`crate::policy::eval::registry_outcome`]
    /// makes it, with a failed signature check at the level of the rules that failed.
    pub fn outcome(
        &self,
        policy: &Policy,
        rule: RuleId,
        status: Status,
        reference: &ImageRef,
        ctx: crate::policy::eval::Context<'_>,
    ) -> crate::policy::eval::Outcome {
        let mut o = crate::policy::eval::registry_outcome(policy, rule, status, reference, ctx);
        if rule == RuleId::SignatureUnverified
            && o.level != Level::Off
            && let Some(l) = self.signature_level
        {
            o.level = l;
        }
        o
    }
}

impl RegistryFacts {
    /// The `name:tag@digest` the registry resolved `reference` to, when it was not pinned.
    pub fn pinned_form(&self, reference: &ImageRef) -> Option<String> {
        if reference.digest().is_some() {
            return None;
        }
        let digest = self.resolution.digest.clone()?;
        Some(reference.with_digest(digest).familiar())
    }
}

/// Resolve `reference` and evaluate the registry-backed rules, as one walk: the resolution and
/// the base check share one request budget. The caller has checked that the registry is
/// approved (the resolver refuses otherwise, without network IO).
pub async fn evaluate(
    policy: &Policy,
    resolver: &Resolver,
    bases: &BaseChecker,
    reference: &ImageRef,
) -> Result<RegistryFacts, RegistryError> {
    resolver
        .walk(evaluate_in_walk(policy, resolver, bases, reference))
        .await
}

async fn evaluate_in_walk(
    policy: &Policy,
    resolver: &Resolver,
    bases: &BaseChecker,
    reference: &ImageRef,
) -> Result<RegistryFacts, RegistryError> {
    let res = resolver.resolve(reference).await?;
    let unavailable = if res.is_pullable() {
        Status::Pass
    } else {
        let detail = res.unresolved.clone().unwrap_or_else(|| {
            let paths = res
                .problems
                .iter()
                .map(|p| p.path.clone())
                .collect::<Vec<_>>()
                .join("; ");
            if res.orphan_index {
                format!("orphan index (every child manifest is gone): {paths}")
            } else {
                paths
            }
        });
        Status::Fail(Violation {
            message: format!("{} cannot be pulled: {detail}", reference.familiar()),
            hint: "push the image again (every platform), and check the registry's garbage collection and retention rules"
                .into(),
        })
    };
    let tag = reference.tag().map(|t| t.to_string()).unwrap_or_default();
    let moved = match &res.tag {
        TagState::Moved { current } => Status::Fail(Violation {
            message: format!("tag {tag} now points at {current}, not at the pinned digest"),
            hint: "pin the tag's current digest, or re-tag the pinned digest so that a tag keeps it alive".into(),
        }),
        TagState::Gone => Status::Fail(Violation {
            message: format!("tag {tag} no longer exists; nothing keeps the pinned digest alive"),
            hint: "push the tag again for this digest, or deploy a tag that exists".into(),
        }),
        _ => Status::Pass,
    };
    let mut verdicts = Vec::new();
    let base = match (
        &res.root,
        // Asked when some namespace needs it; each namespace's level applies afterwards.
        policy.level_anywhere(RuleId::BaseNotApproved),
        policy.bases().is_empty(),
    ) {
        (_, Level::Off, _) => Status::NotEvaluated("the rule is off in this policy"),
        (_, _, true) => Status::NotEvaluated("the policy lists no approved base images"),
        (None, _, _) => Status::NotEvaluated("the image does not resolve"),
        (Some(root), _, _) => {
            verdicts = bases.check(reference, root).await?;
            base_status(&verdicts)
        }
    };
    let (signed, signature_level) = signature_status(policy, resolver, reference, &res).await?;
    Ok(RegistryFacts {
        resolution: res,
        bases: verdicts,
        statuses: vec![
            (RuleId::ImageUnavailable, unavailable),
            (RuleId::TagMoved, moved),
            (RuleId::BaseNotApproved, base),
            (RuleId::SignatureUnverified, signed),
        ],
        signature_level,
    })
}

/// `signature-unverified` for a resolved image: the digests each covering signature rule
/// names (`digests`) must be signed by its threshold of keys. Also the audit's check of what
/// runs. The signatures are read once, whatever the number of rules and
/// keys; an unanswered registry is an error, never "unsigned".
pub async fn signature_status(
    policy: &Policy,
    resolver: &Resolver,
    reference: &ImageRef,
    res: &Resolution,
) -> Result<(Status, Option<Level>), RegistryError> {
    let canonical = policy.canonical_name(reference);
    let rules: Vec<&crate::policy::SignatureRule> =
        policy.signature_rules_for(&canonical).collect();
    if rules.is_empty() || policy.level_anywhere(RuleId::SignatureUnverified) == Level::Off {
        return Ok((
            Status::NotEvaluated("no signature rule covers this image"),
            None,
        ));
    }
    let Some(digest) = &res.digest else {
        return Ok((Status::NotEvaluated("the image does not resolve"), None));
    };
    let image = [(None, digest.clone())];
    // Only rules over platforms need them.
    let platforms = if rules.iter().any(|r| r.digests != SignedDigests::Image) {
        platform_digests(res)
    } else {
        Vec::new()
    };
    let mut sets = Sets::default();
    let mut failed = Vec::new();
    let mut failed_level: Option<Level> = None;
    for rule in rules {
        let problems = match rule.digests {
            SignedDigests::Image => {
                check_targets(resolver, reference, &image, rule, &mut sets).await?
            }
            SignedDigests::Platforms => {
                check_targets(resolver, reference, &platforms, rule, &mut sets).await?
            }
            SignedDigests::ImageOrPlatforms => {
                let first = check_targets(resolver, reference, &image, rule, &mut sets).await?;
                if first.is_empty() {
                    first
                } else {
                    let each =
                        check_targets(resolver, reference, &platforms, rule, &mut sets).await?;
                    if each.is_empty() {
                        each
                    } else {
                        vec![format!(
                            "neither the image nor every platform is signed: {}; {}",
                            first.join("; "),
                            each.join("; ")
                        )]
                    }
                }
            }
        };
        if !problems.is_empty() {
            failed_level = failed_level.max(Some(rule.level));
        }
        failed.extend(problems);
    }
    if failed.is_empty() {
        return Ok((Status::Pass, None));
    }
    let violation = Violation {
        message: failed.join("; "),
        hint: format!(
            "sign the digest as a signer the policy trusts (`cosign sign --key cosign.key {}@{digest}`, \
             or keyless from the pipeline the policy names; --recursive for an index's platforms \
             too; attest with `cosign attest --type slsaprovenance1`; tollgate reads cosign's .sig \
             and .att tags and cosign 3's bundles among the referrers)",
            reference.name()
        ),
    };
    Ok((Status::Fail(violation), failed_level))
}

/// The runnable platform manifests of an index (attestations and platforms not selected left
/// out), with their platforms; a single manifest is its own platform.
fn platform_digests(res: &Resolution) -> Vec<(Option<String>, Digest)> {
    let Some(root) = &res.root else {
        return Vec::new();
    };
    if root.kind != NodeKind::Index {
        return res.digest.iter().map(|d| (None, d.clone())).collect();
    }
    root.children
        .iter()
        .filter(|c| {
            c.kind == NodeKind::Manifest
                && !matches!(c.status, NodeStatus::Attestation | NodeStatus::Skipped)
        })
        .filter_map(|c| Some((c.platform.clone(), c.digest.parse().ok()?)))
        .collect()
}

/// Each of `targets` against one rule: why each that is not verified is not, prefixed with its
/// platform.
async fn check_targets(
    resolver: &Resolver,
    reference: &ImageRef,
    targets: &[(Option<String>, Digest)],
    rule: &crate::policy::SignatureRule,
    sets: &mut Sets,
) -> Result<Vec<String>, RegistryError> {
    let mut problems = Vec::new();
    if targets.is_empty() {
        problems.push("the index has no runnable platform to check".to_owned());
    }
    for (platform, d) in targets {
        if let Some(why) = check_digest(resolver, reference, d, rule, sets).await? {
            problems.push(match platform {
                Some(p) => format!("{p}: {why}"),
                None => why,
            });
        }
    }
    Ok(problems)
}

/// A walk's signature and attestation sets, read once per digest whatever the number of rules.
#[derive(Default)]
struct Sets {
    signatures: HashMap<Digest, SignatureSet>,
    attestations: HashMap<Digest, AttestationSet>,
    bundles: HashMap<Digest, Vec<FetchedBundle>>,
    notation: HashMap<Digest, super::notation::NotationSet>,
}

/// One digest against one rule: `None` when verified, else why not. A rule of cosign signers
/// only, without attestations, is first asked of this thread's recent verdicts
/// ([`super::verdicts`]), then of the shared caches ([`check_digest_shared`]).
async fn check_digest(
    resolver: &Resolver,
    reference: &ImageRef,
    digest: &Digest,
    rule: &crate::policy::SignatureRule,
    sets: &mut Sets,
) -> Result<Option<String>, RegistryError> {
    let reads = Reads::of(rule);
    let cosign_only = reads.cosign && !reads.notation && !reads.attestations;
    let endpoint = cosign_only
        .then(|| resolver.endpoint(reference).ok())
        .flatten();
    let about = endpoint.as_ref().map(|endpoint| super::verdicts::About {
        resolver: resolver.id,
        endpoint,
        repository: reference.repository().as_str(),
        digest,
        fingerprint: &rule.fingerprint,
    });
    if let Some(about) = &about
        && super::verdicts::verified(about)
    {
        return Ok(None);
    }
    let why = check_digest_shared(resolver, reference, digest, rule, &reads, sets).await?;
    if why.is_none()
        && let Some(about) = &about
    {
        super::verdicts::remember(about);
    }
    Ok(why)
}

/// What checking a digest against a rule reads from the registry.
struct Reads {
    /// Signatures of any kind: a rule that requires attestations only (threshold 0) reads
    /// none.
    signatures: bool,
    /// Attestations (cosign's `.att` tag).
    attestations: bool,
    /// Notation signatures, which are OCI referrers: read whenever the rule has notation
    /// signers (the referrers listing is cached like a tag), and part of what a verdict is
    /// remembered by.
    notation: bool,
    /// cosign's `.sig` tag and Sigstore bundles, which hold what key and keyless signers sign:
    /// a rule whose signers are all notation signers never reads them.
    cosign: bool,
}

impl Reads {
    fn of(rule: &crate::policy::SignatureRule) -> Reads {
        let signatures = rule.threshold > 0;
        let notation_signer = |s: &crate::signature::Signer| {
            matches!(s.trusted, crate::signature::Trusted::Notation(_))
        };
        Reads {
            signatures,
            attestations: !rule.attestations.is_empty(),
            notation: signatures && rule.signers.iter().any(notation_signer),
            cosign: signatures && !rule.signers.iter().all(notation_signer),
        }
    }
}

/// [`check_digest`] from the shared caches and the registry. The digest's signatures (and
/// attestations, when the rule requires some) are read once per walk (`sets`), and a verified
/// (digest, manifests, rule) is remembered by the resolver.
async fn check_digest_shared(
    resolver: &Resolver,
    reference: &ImageRef,
    digest: &Digest,
    rule: &crate::policy::SignatureRule,
    reads: &Reads,
    sets: &mut Sets,
) -> Result<Option<String>, RegistryError> {
    // The registry reads below are boxed: their futures (HTTP and cache included) would
    // otherwise make this one, and every future that awaits it, several kilobytes that are
    // copied each time an admission starts a check, warm or not.
    let &Reads {
        signatures: wants_signatures,
        attestations: wants_attestations,
        notation: wants_notation,
        cosign: wants_cosign,
    } = reads;
    if wants_notation && !sets.notation.contains_key(digest) {
        let set = Box::pin(resolver.notation_signatures(reference, digest)).await?;
        sets.notation.insert(digest.clone(), set);
    }
    let notation = sets.notation.get(digest).filter(|_| wants_notation);
    let with_notation = |key: Option<(Digest, Digest, String)>| {
        key.map(|(d, m, f)| match notation {
            Some(n) => (d, m, format!("{f}|notation:{}", n.manifests())),
            None => (d, m, f),
        })
    };
    // Only success is remembered: a failure is checked again, and its message needs the
    // details anyway. The key names every manifest the verdict was made from, and is looked
    // up from the tags alone (cached lookups), before any manifest is parsed or payload
    // copied: the warm path of a scale-up.
    let (sig_manifest, att_manifest) = match (
        sets.signatures.get(digest).map(|s| s.manifest.clone()),
        sets.attestations.get(digest).map(|a| a.manifest.clone()),
    ) {
        (Some(s), Some(a)) => (s, a),
        (Some(s), None) if !wants_attestations => (s, None),
        (None, Some(a)) if !wants_cosign => (None, a),
        _ if !wants_cosign && !wants_attestations => (None, None),
        _ => {
            Box::pin(resolver.artifact_tags(reference, digest, wants_cosign, wants_attestations))
                .await?
        }
    };
    let key = match (
        wants_cosign,
        &sig_manifest,
        wants_attestations,
        &att_manifest,
    ) {
        (true, None, _, _) | (_, _, true, None) => None,
        (true, Some(s), _, a) => Some((
            digest.clone(),
            s.clone(),
            format!("{}|{:?}", rule.fingerprint, a),
        )),
        (false, _, true, Some(a)) => Some((
            digest.clone(),
            a.clone(),
            format!("{}|att", rule.fingerprint),
        )),
        // Notation signers only: the verdict is made from the referrers alone.
        (false, _, false, _) if wants_notation => Some((
            digest.clone(),
            digest.clone(),
            format!("{}|notation-only", rule.fingerprint),
        )),
        (false, _, false, _) => None,
    };
    let key = with_notation(key);
    if let Some(k) = &key
        && resolver.signature_verdicts.get(k).await == Some(true)
    {
        return Ok(None);
    }
    if wants_cosign && !sets.signatures.contains_key(digest) {
        let set = Box::pin(resolver.signatures(reference, digest)).await?;
        sets.signatures.insert(digest.clone(), set);
    }
    if wants_attestations && !sets.attestations.contains_key(digest) {
        let set = Box::pin(resolver.attestations(reference, digest)).await?;
        sets.attestations.insert(digest.clone(), set);
    }
    let sig = sets.signatures.get(digest).filter(|_| wants_cosign);
    let att = sets.attestations.get(digest).filter(|_| wants_attestations);
    // What is remembered names the manifests the verdict is made from, as read now (a tag
    // moved between the two reads is the newer manifest's verdict).
    let key = match (sig.map(|s| &s.manifest), att.map(|a| &a.manifest)) {
        (Some(None), _) | (_, Some(None)) => None,
        (Some(Some(s)), a) => Some((
            digest.clone(),
            s.clone(),
            format!("{}|{:?}", rule.fingerprint, a.cloned().flatten()),
        )),
        (None, Some(Some(a))) => Some((
            digest.clone(),
            a.clone(),
            format!("{}|att", rule.fingerprint),
        )),
        (None, None) => key,
    };
    let key = with_notation(key);
    let cosign = match sig {
        Some(set) => Some(match &set.problem {
            Some(p) => crate::signature::Verdict {
                signed_by: Vec::new(),
                threshold: rule.threshold,
                signatures: set.signatures.len(),
                problems: vec![crate::report::error_text(p)],
            },
            None => crate::signature::verify(
                digest,
                &set.signatures,
                &rule.signers,
                rule.threshold,
                rule.root.as_deref(),
            ),
        }),
        // Notation signers only: nothing was read from the tag scheme, and the verdict is
        // notation's alone (never "no verdict", which would pass).
        None => wants_signatures.then(|| crate::signature::Verdict {
            signed_by: Vec::new(),
            threshold: rule.threshold,
            signatures: 0,
            problems: Vec::new(),
        }),
    };
    let verdict = cosign.map(|verdict| {
        // Notation signers count towards the same threshold. Their certificates and expiry
        // are judged now, as the `notary.x509` scheme says (a claimed signing time proves
        // nothing).
        match notation {
            Some(n) => crate::signature::notation::merge(
                verdict,
                crate::signature::notation::verify(
                    digest,
                    &n.signatures,
                    &rule.signers,
                    Some(super::http::unix_now()),
                ),
                &rule.signers,
            ),
            None => verdict,
        }
    });
    let attestations = |bundled: &[(Vec<String>, Statement)]| match att {
        None => Vec::new(),
        Some(AttestationSet {
            problem: Some(p), ..
        }) => vec![format!(
            "the attestations of {digest} cannot be read: {}",
            crate::report::error_text(p)
        )],
        Some(set) => crate::signature::verify_attestations(
            digest,
            &set.attestations,
            &rule.attestations,
            &rule.signers,
            rule.root.as_deref(),
            bundled,
        ),
    };
    let signed = verdict.as_ref().is_none_or(|v| v.is_verified());
    if signed && attestations(&[]).is_empty() {
        if let Some(k) = key {
            resolver.signature_verdicts.insert(k, true).await;
        }
        return Ok(None);
    }

    // The tag scheme did not prove it: cosign 3 keeps signatures and attestations as Sigstore
    // bundles among the digest's referrers. Read only now, so that a digest signed the
    // cosign 2 way costs no referrers lookup.
    if !wants_cosign && !wants_attestations {
        // Notation signers only: no bundle can be theirs.
        let Some(v) = verdict.filter(|v| !v.is_verified()) else {
            return Ok(None);
        };
        return Ok(Some(if v.signatures == 0 {
            format!("{digest} has no signature (no notation signature among its referrers)")
        } else {
            v.summary(digest)
        }));
    }
    if !sets.bundles.contains_key(digest) {
        let bundles = Box::pin(resolver.bundles(reference, digest)).await?;
        sets.bundles.insert(digest.clone(), bundles);
    }
    let bundles = &sets.bundles[digest];
    // Keyed by everything the verdict is made from: the tag-scheme manifests (or their
    // absence) and the bundle referrers, so a cosign 3 image is remembered too.
    let bundle_key = {
        let referrers: Vec<&str> = bundles.iter().map(|b| b.referrer.as_str()).collect();
        Some((
            digest.clone(),
            digest.clone(),
            format!(
                "{}|sig:{:?}|att:{:?}|notation:{}|bundles:{}",
                rule.fingerprint,
                sig.and_then(|s| s.manifest.as_ref()),
                att.and_then(|a| a.manifest.as_ref()),
                notation.map(|n| n.manifests()).unwrap_or_default(),
                referrers.join(",")
            ),
        ))
    };
    if let Some(k) = &bundle_key
        && !bundles.is_empty()
        && resolver.signature_verdicts.get(k).await == Some(true)
    {
        return Ok(None);
    }
    let found = verify_bundles(digest, bundles, &rule.signers, rule.root.as_deref());
    let mut problems = Vec::new();
    if let Some(v) = &verdict
        && !v.is_verified()
    {
        let by: Vec<&String> = rule
            .signers
            .iter()
            .map(|s| &s.name)
            .filter(|n| v.signed_by.contains(n) || found.signed_by.contains(n))
            .collect();
        if by.len() < rule.threshold {
            let mut why = if v.signatures == 0 && found.read == 0 {
                // Say every place that was looked in, once.
                format!(
                    "{digest} has no signature (no cosign signature manifest, no Sigstore \
                     bundle{} among its referrers)",
                    if notation.is_some() {
                        " or notation signature"
                    } else {
                        ""
                    }
                )
            } else {
                match notation {
                    Some(_) => crate::signature::notation::summary(v, digest),
                    None => v.summary(digest),
                }
            };
            if found.read > 0 && !found.problems.is_empty() {
                why.push_str("; ");
                why.push_str(&found.problems.join("; "));
            }
            problems.push(why);
        }
    }
    problems.extend(attestations(&found.attested));
    if problems.is_empty() {
        if let Some(k) = bundle_key {
            resolver.signature_verdicts.insert(k, true).await;
        }
        return Ok(None);
    }
    Ok(Some(problems.join("; ")))
}

/// The rule fails when any platform is not on an approved base.
fn base_status(verdicts: &[BaseVerdict]) -> Status {
    if verdicts.is_empty() {
        return Status::NotEvaluated("no runnable image manifest to check");
    }
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.approved)
        .map(|v| match &v.platform {
            Some(p) => format!("{p}: {}", v.detail),
            None => v.detail.clone(),
        })
        .collect();
    if failed.is_empty() {
        return Status::Pass;
    }
    let claim = verdicts
        .iter()
        .find_map(|v| v.label_hint.clone())
        .map(|c| format!(" (its label claims base {c}, which is not evidence)"))
        .unwrap_or_default();
    Status::Fail(Violation {
        message: format!("not built on an approved Debian or distroless base{claim}: {}", failed.join("; ")),
        hint: "rebuild the image FROM one of the policy's approved bases (`tollgate policy default` lists them)".into(),
    })
}
