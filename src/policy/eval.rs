//! The policy engine: one image reference against one policy, every rule, synchronously.
//!
//! The engine reports an [`Outcome`] per rule, pass or fail, so that `explain` can show why an
//! image passes, and checks can turn failures into findings. It never touches the network:
//! rules that need the registry are reported as not evaluated here.

use jiff::Timestamp;

use super::{ImageKey, Level, Policy, RuleId};
use crate::reference::{ImageRef, WrittenImage};

/// Everything the engine needs besides the policy and the image.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The namespace the image will run in.
    pub namespace: &'a str,
    /// The clock, for exemption expiry.
    pub now: Timestamp,
}

/// A rule violation: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong, in one line without a trailing period.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// What a rule concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The rule was evaluated and holds.
    Pass,
    /// The rule was evaluated and is violated, whatever its level; exemptions are applied later.
    Fail(Violation),
    /// The rule was not evaluated: it is off, it needs the registry, or the reference is invalid.
    NotEvaluated(&'static str),
}

/// An exemption that matched a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExemptionUse {
    /// Index into [`Policy::exemptions`].
    pub index: usize,
    /// An expired exemption matched but no longer exempts.
    pub expired: bool,
}

/// One rule's outcome for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The rule this is the outcome of; an image has one outcome per rule.
    pub rule: RuleId,
    /// The level the policy gives the rule; `off` comes with [`Status::NotEvaluated`].
    pub level: Level,
    /// What the rule concluded.
    pub status: Status,
    /// Set on failures that an exemption covers (expired or not).
    pub exemption: Option<ExemptionUse>,
}

impl Outcome {
    /// A failure that no live exemption covers.
    pub fn is_enforced_failure(&self) -> bool {
        matches!(self.status, Status::Fail(_)) && self.exemption.is_none_or(|e| e.expired)
    }
}

/// An image's verdict: every rule's outcome.
#[derive(Debug, Clone)]
pub struct ImageVerdict {
    /// `reference-invalid` first, then every rule of the image in report order, evaluated or
    /// not.
    pub outcomes: Vec<Outcome>,
}

/// The rules evaluated on a parsed reference, in report order.
const IMAGE_RULES: &[RuleId] = &[
    RuleId::RegistryNotApproved,
    RuleId::RepositoryNotDeployable,
    RuleId::TagMissing,
    RuleId::TagLatest,
    RuleId::TagForbidden,
    RuleId::DigestMissing,
    RuleId::DigestUntagged,
    RuleId::ImageUnavailable,
    RuleId::TagMoved,
    RuleId::BaseNotApproved,
    RuleId::SignatureUnverified,
];

/// Rules decided by the registry: offline they are reported as not evaluated.
pub const REGISTRY_RULES: &[RuleId] = &[
    RuleId::ImageUnavailable,
    RuleId::TagMoved,
    RuleId::BaseNotApproved,
    RuleId::SignatureUnverified,
];

/// Evaluate `image` (as written in a pod spec) against every rule of `policy`.
pub fn evaluate_image(policy: &Policy, image: &WrittenImage, ctx: Context<'_>) -> ImageVerdict {
    // Every rule is decided by the policy as it applies in the image's namespace.
    let policy = &*policy.in_namespace(ctx.namespace);
    let mut outcomes = Vec::with_capacity(IMAGE_RULES.len() + 1);
    match image.parsed() {
        Err(e) => {
            let violation = Violation {
                message: format!("invalid image reference {image:?}: {e}"),
                hint: "write the reference as [registry[:port]/]repository[:tag][@sha256:digest], \
                       e.g. docker-registry.wikimedia.org/app:1.2.3@sha256:<digest>"
                    .to_owned(),
            };
            outcomes.push(outcome(
                policy,
                RuleId::ReferenceInvalid,
                Status::Fail(violation),
                ctx,
                None,
            ));
            for &rule in IMAGE_RULES {
                outcomes.push(Outcome {
                    rule,
                    level: policy.level(rule),
                    status: Status::NotEvaluated("the reference is invalid"),
                    exemption: None,
                });
            }
        }
        Ok(r) => {
            outcomes.push(outcome(
                policy,
                RuleId::ReferenceInvalid,
                Status::Pass,
                ctx,
                None,
            ));
            let canonical = policy.canonical_name(r);
            for &rule in IMAGE_RULES {
                let status = if policy.level(rule) == Level::Off {
                    Status::NotEvaluated("the rule is off in this policy")
                } else {
                    check_rule(policy, rule, r, &canonical)
                };
                outcomes.push(outcome(policy, rule, status, ctx, Some(key(r, &canonical))));
            }
        }
    }
    ImageVerdict { outcomes }
}

/// The exemption key of a parsed reference whose canonical name is `canonical`.
fn key<'a>(r: &'a ImageRef, canonical: &'a str) -> ImageKey<'a> {
    ImageKey {
        canonical,
        tag: r.tag(),
        digest: r.digest(),
    }
}

fn outcome(
    policy: &Policy,
    rule: RuleId,
    status: Status,
    ctx: Context<'_>,
    image: Option<ImageKey<'_>>,
) -> Outcome {
    let exemption = match status {
        Status::Fail(_) => find_exemption(policy, rule, ctx, image),
        _ => None,
    };
    Outcome {
        rule,
        level: level_of(policy, rule, image),
        status,
        exemption,
    }
}

/// A rule's level for `image`. A signature rule's is the highest `level` of the
/// `spec.signatures` rules that cover the image (none: off), unless `spec.rules` turns
/// `signature-unverified` off.
fn level_of(policy: &Policy, rule: RuleId, image: Option<ImageKey<'_>>) -> Level {
    let level = policy.level(rule);
    if rule != RuleId::SignatureUnverified || level == Level::Off {
        return level;
    }
    image
        .and_then(|i| policy.signature_level(i.canonical, |_| true))
        .unwrap_or(Level::Off)
}

/// The first live exemption covering the failure; failing that, the first expired one (so the
/// report can say an exemption would have applied had it not expired).
fn find_exemption(
    policy: &Policy,
    rule: RuleId,
    ctx: Context<'_>,
    image: Option<ImageKey<'_>>,
) -> Option<ExemptionUse> {
    let mut expired = None;
    for (index, e) in policy.exemptions().iter().enumerate() {
        if e.covers(rule, ctx.namespace, image) {
            if !e.is_expired(ctx.now) {
                return Some(ExemptionUse {
                    index,
                    expired: false,
                });
            }
            expired.get_or_insert(ExemptionUse {
                index,
                expired: true,
            });
        }
    }
    expired
}

fn check_rule(policy: &Policy, rule: RuleId, r: &ImageRef, canonical: &str) -> Status {
    let fail = |message: String, hint: String| Status::Fail(Violation { message, hint });
    // Only failures need the printed form; passing rules must stay allocation-free.
    let shown = || r.familiar();
    let pin_hint = |tag: &str| {
        format!(
            "pin it by digest: {name}:{tag}@sha256:<digest> (`crane digest {name}:{tag}` prints it)",
            name = familiar_name(r)
        )
    };
    match rule {
        RuleId::RegistryNotApproved => {
            if policy.approved_registry(r).is_some() {
                return Status::Pass;
            }
            let same_host: Vec<String> = policy
                .registries()
                .iter()
                .filter(|a| a.matches_host(r.registry()))
                .map(|a| {
                    if a.is_exact() {
                        format!("exactly {}", a.shown())
                    } else {
                        format!("under {}", a.shown())
                    }
                })
                .collect();
            if !same_host.is_empty() {
                return fail(
                    format!(
                        "{} is outside the approved path of registry {}",
                        r.name(),
                        r.registry()
                    ),
                    format!(
                        "images from {} must be {}",
                        r.registry(),
                        same_host.join(" or ")
                    ),
                );
            }
            fail(
                format!("registry {} is not approved", r.registry()),
                format!(
                    "push the image to an approved registry and reference it from there; approved: {}",
                    approved_list(policy)
                ),
            )
        }
        RuleId::RepositoryNotDeployable => {
            match policy.not_deployable.iter().find(|p| p.is_match(canonical)) {
                None => Status::Pass,
                Some(p) => {
                    let is_base = policy.bases().iter().any(|b| b.name() == canonical);
                    let (what, hint) = if is_base {
                        (
                            "is a base image and must never be deployed directly",
                            "deploy a production or service image built FROM it instead",
                        )
                    } else {
                        (
                            "must never be deployed",
                            "deploy an image built for this service instead",
                        )
                    };
                    fail(
                        format!("{canonical} {what} (policy pattern {:?})", p.as_str()),
                        hint.to_owned(),
                    )
                }
            }
        }
        RuleId::TagMissing => {
            if r.tag().is_some() || r.digest().is_some() {
                return Status::Pass;
            }
            fail(
                format!(
                    "{} has no tag and no digest, so the runtime pulls `latest`",
                    shown()
                ),
                format!(
                    "name a version and pin its digest: {}:<version>@sha256:<digest>",
                    familiar_name(r)
                ),
            )
        }
        RuleId::TagLatest => match r.tag() {
            Some(t) if t.as_str() == "latest" => {
                let also = if r.digest().is_some() {
                    " Even with a digest, `latest` moves on the next push and leaves the digest untagged, \
                     and delete-untagged garbage collection then removes it."
                } else {
                    ""
                };
                fail(
                    format!(
                        "{} uses the tag `latest`, which moves with every push.{also}",
                        shown()
                    ),
                    format!(
                        "use a version tag and pin its digest: {}:<version>@sha256:<digest>",
                        familiar_name(r)
                    ),
                )
            }
            _ => Status::Pass,
        },
        RuleId::TagForbidden => {
            let Some(tag) = r.tag() else {
                return Status::Pass;
            };
            match policy
                .forbidden_tags
                .iter()
                .find(|p| p.is_match(tag.as_str()))
            {
                None => Status::Pass,
                Some(p) => fail(
                    format!(
                        "tag `{tag}` of {} matches the forbidden tag pattern {:?}",
                        r.name(),
                        p.as_str()
                    ),
                    "deploy a release tag that the policy allows".to_owned(),
                ),
            }
        }
        RuleId::DigestMissing => {
            if r.digest().is_some() {
                return Status::Pass;
            }
            let tag = r.tag().map_or("<version>", |t| t.as_str());
            fail(
                format!("{} is not pinned by digest", shown()),
                pin_hint(tag),
            )
        }
        RuleId::DigestUntagged => match (r.tag(), r.digest()) {
            (None, Some(d)) => fail(
                format!("{} is pinned by digest but names no tag", shown()),
                format!(
                    "keep the tag with the digest, {}:<tag>@{d}, and keep that tag in the registry: \
                     delete-untagged garbage collection removes a digest no tag points at",
                    familiar_name(r)
                ),
            ),
            _ => Status::Pass,
        },
        RuleId::ImageUnavailable | RuleId::TagMoved => Status::NotEvaluated(
            "needs the registry; not evaluated offline (`tollgate verify` evaluates it)",
        ),
        RuleId::BaseNotApproved => Status::NotEvaluated(
            "needs the image's config and layers from the registry; not evaluated offline (`tollgate verify` and `check --resolve` evaluate it)",
        ),
        RuleId::SignatureUnverified if policy.signature_rules_for(canonical).next().is_none() => {
            Status::NotEvaluated("no signature rule covers this image")
        }
        RuleId::SignatureUnverified => Status::NotEvaluated(
            "needs the image's signatures from the registry; not evaluated offline (`tollgate verify` and `check --resolve` evaluate it)",
        ),
        RuleId::ReferenceInvalid
        | RuleId::ImageMissing
        | RuleId::ExemptionExpired
        | RuleId::NotAnObject
        | RuleId::NoObjects => Status::Pass,
    }
}

/// The familiar name without tag or digest.
fn familiar_name(r: &ImageRef) -> String {
    let f = r.familiar();
    let end = f.find('@').unwrap_or(f.len());
    let f = &f[..end];
    let last_slash = f.rfind('/').map_or(0, |i| i + 1);
    match f[last_slash..].find(':') {
        Some(i) => f[..last_slash + i].to_owned(),
        None => f.to_owned(),
    }
}

fn approved_list(policy: &Policy) -> String {
    policy
        .registries()
        .iter()
        .map(|a| {
            if a.aliases().is_empty() {
                a.shown()
            } else {
                let aliases: Vec<String> = a.aliases().iter().map(ToString::to_string).collect();
                format!("{} (also reachable as {})", a.shown(), aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a passing rule passed, for `explain`.
pub fn pass_reason(policy: &Policy, rule: RuleId, r: &ImageRef) -> String {
    match rule {
        RuleId::ReferenceInvalid => "the reference is valid".to_owned(),
        RuleId::RegistryNotApproved => match policy.approved_registry(r) {
            Some(a) if !a.host().matches(r.registry()) => {
                format!(
                    "{} is an alias of approved registry {}",
                    r.registry(),
                    a.prefix()
                )
            }
            Some(a) => format!("{} is approved by registry entry {}", r.name(), a.shown()),
            None => String::new(),
        },
        RuleId::RepositoryNotDeployable => "the repository is deployable".to_owned(),
        RuleId::TagMissing => "the reference names a tag or a digest".to_owned(),
        RuleId::TagLatest => "the tag is not `latest`".to_owned(),
        RuleId::TagForbidden => match r.tag() {
            Some(t) => format!("tag `{t}` matches no forbidden tag pattern"),
            None => "no tag to check".to_owned(),
        },
        RuleId::DigestMissing => "pinned by digest".to_owned(),
        RuleId::DigestUntagged => match (r.tag(), r.digest()) {
            (Some(_), Some(_)) => "the digest is reachable from a tag".to_owned(),
            _ => "no digest without a tag".to_owned(),
        },
        RuleId::ImageUnavailable => "resolves end to end in the registry".to_owned(),
        RuleId::TagMoved => "the tag still points at the digest".to_owned(),
        RuleId::BaseNotApproved
        | RuleId::SignatureUnverified
        | RuleId::ImageMissing
        | RuleId::ExemptionExpired
        | RuleId::NotAnObject
        | RuleId::NoObjects => String::new(),
    }
}

/// The outcome of a registry-decided rule, with the policy's level and exemptions applied
/// exactly as for the offline rules.
pub fn registry_outcome(
    policy: &Policy,
    rule: RuleId,
    status: Status,
    r: &ImageRef,
    ctx: Context<'_>,
) -> Outcome {
    let policy = &*policy.in_namespace(ctx.namespace);
    let status = if policy.level(rule) == Level::Off {
        Status::NotEvaluated("the rule is off in this policy")
    } else {
        status
    };
    let canonical = policy.canonical_name(r);
    outcome(policy, rule, status, ctx, Some(key(r, &canonical)))
}
