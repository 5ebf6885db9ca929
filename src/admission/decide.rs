//! The admission decision, pure: a parsed request, the policy and the clock in; findings and a
//! verdict out. The static rules run in [`plan`]; what the registry answered for each image
//! (walked by [`super::walk`]) is merged into the [`Checked`] plan by [`merge`], once, for both
//! webhooks; [`decide`] makes the answer.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use kube_core::admission::Operation;
use serde_json::{Map, Value};

use crate::check::{self, Options, Source};
use crate::policy::eval::{self, Context, REGISTRY_RULES, Status, Violation};
use crate::policy::{Level, OnUnavailable, Policy, RuleId};
use crate::reference::{ImageRef, WrittenImage};
use crate::registry::facts::RegistryFacts;
use crate::registry::{RegistryError, sites};
use crate::report::{Exempted, Finding, ImageSite, Report, error_text};
use crate::workload::{self, ContainerKind, ContainerRef};

use super::review::Request;

/// The subresource through which ephemeral containers are added (`kubectl debug`): the object is
/// the whole Pod, and its `ephemeralContainers` must be checked like any container.
pub const EPHEMERAL_CONTAINERS: &str = "ephemeralcontainers";

/// What an UPDATE does with images that were already in the old object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnchangedImages {
    /// Their deny-level findings become warnings: scaling or relabelling a legacy workload
    /// during an incident is not blocked. Changed and new images are enforced.
    Warn,
    /// Every image is enforced, changed or not.
    Enforce,
}

/// The server's settings that shape decisions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in these namespaces are admitted without evaluation (and counted).
    pub exempt_namespaces: Vec<String>,
    /// What an UPDATE does with the images its old object already ran (`--unchanged-images`).
    pub unchanged_images: UnchangedImages,
}

/// The kind of answer, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Evaluated, nothing to report.
    Allow,
    /// Evaluated, admitted with warnings.
    Warn,
    /// Evaluated, denied.
    Deny,
    /// Admitted because the namespace is exempt.
    Exempt,
    /// Admitted without evaluation: the operation or subresource cannot start a container.
    Skip,
}

impl Verdict {
    /// The label in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Warn => "warn",
            Verdict::Deny => "deny",
            Verdict::Exempt => "exempt",
            Verdict::Skip => "skip",
        }
    }

    /// Whether the request is admitted.
    pub fn allowed(self) -> bool {
        self != Verdict::Deny
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The kind of answer; the request is admitted unless it is [`Verdict::Deny`].
    pub verdict: Verdict,
    /// The denial message (every violation, readable in `kubectl` output), or why the request
    /// was not evaluated.
    pub message: Option<String>,
    /// One line per warn-level finding, for the AdmissionResponse warnings.
    pub warnings: Vec<String>,
    /// The findings reported (deny and warn), after exemptions and the unchanged-image rule.
    pub findings: Vec<Finding>,
    /// Findings a policy exemption suppressed.
    pub exempted: Vec<Exempted>,
}

impl Decision {
    fn unevaluated(verdict: Verdict, why: String) -> Self {
        Decision {
            verdict,
            message: Some(why),
            warnings: Vec::new(),
            findings: Vec::new(),
            exempted: Vec::new(),
        }
    }

    /// The rule ids of the reported findings, sorted, each once.
    pub fn rule_ids(&self) -> Vec<RuleId> {
        let mut ids: Vec<RuleId> = self.findings.iter().map(|f| f.rule_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Where a request stands after the static rules.
#[derive(Debug)]
pub enum Plan {
    /// Decided without evaluating an object.
    Done(Decision),
    /// The object was checked against the static rules.
    Checked(Checked),
}

/// An object checked against the static rules, waiting for the registry-backed ones (if any).
#[derive(Debug)]
pub struct Checked {
    /// The object's findings so far: the static rules', then the registry's once [`merge`]d.
    /// Its `sites` are the images left for the registry walk, when sites were collected.
    pub report: Report,
    /// The options the static rules ran with (the request's namespace, `now`, every finding
    /// from warn up); the registry-backed findings are recorded with the same.
    pub opts: Options,
    /// `(container kind, container name, image)` of every container of the old object.
    old_images: HashSet<(ContainerKind, String, WrittenImage)>,
    /// The ephemeral containers subresource: only ephemeral containers may change.
    pub ephemeral_only: bool,
}

impl Checked {
    /// Whether the container ran the same image in the old object (UPDATE only).
    pub fn is_unchanged(&self, container: &ContainerRef, image: &WrittenImage) -> bool {
        !self.old_images.is_empty()
            && self
                .old_images
                .contains(&(container.kind, container.name.clone(), image.clone()))
    }

    /// Whether a digest may be written into the image at `site` by the mutating webhook: the
    /// container is new or changed (rewriting an unchanged image would restart it), and through
    /// the ephemeral containers subresource only ephemeral containers may change.
    pub fn may_patch(&self, site: &ImageSite) -> bool {
        (!self.ephemeral_only || site.container.kind == ContainerKind::EphemeralContainer)
            && !self.is_unchanged(&site.container, &site.image)
    }
}

/// Run the static rules on the request's object, or decide without it.
pub fn plan(
    policy: &Policy,
    request: Request,
    settings: &Settings,
    now: Timestamp,
    collect_sites: bool,
) -> Plan {
    match request.operation {
        Operation::Delete | Operation::Connect => {
            return Plan::Done(Decision::unevaluated(
                Verdict::Skip,
                format!(
                    "{} is not evaluated: it cannot start a container",
                    operation_str(&request.operation)
                ),
            ));
        }
        Operation::Create | Operation::Update => {}
    }
    let sub = request.sub_resource.as_deref().unwrap_or("");
    let ephemeral_only = sub == EPHEMERAL_CONTAINERS;
    if !sub.is_empty() && !ephemeral_only {
        // status, scale, binding, eviction...: the API server ignores image changes through them.
        return Plan::Done(Decision::unevaluated(
            Verdict::Skip,
            format!("the {sub} subresource cannot change container images"),
        ));
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    if !namespace.is_empty() && settings.exempt_namespaces.contains(&namespace) {
        return Plan::Done(Decision::unevaluated(
            Verdict::Exempt,
            format!("namespace {namespace} is exempt"),
        ));
    }
    let Some(object) = request.object else {
        // Never admit what was not evaluated: a CREATE or UPDATE without its object is denied.
        return Plan::Done(Decision::unevaluated(
            Verdict::Deny,
            format!(
                "tollgate cannot evaluate this {}: the AdmissionReview has no request.object",
                operation_str(&request.operation)
            ),
        ));
    };
    let opts = Options {
        default_namespace: namespace.clone(),
        now,
        min_level: Level::Warn,
        collect_sites,
        // request.kind decides what the object is; it is never a stray document.
        require_objects: false,
    };
    let doc = admission_object(object.value, &namespace);
    let op = operation_str(&request.operation);
    let refuse = |why: String| {
        Plan::Done(Decision::unevaluated(
            Verdict::Deny,
            format!("tollgate cannot evaluate this {op}: {why}"),
        ))
    };
    // The API server's word on what the object is decides what it must look like: an object
    // that does not fit is never admitted as if it had no images.
    if let Err(why) = fits(&request.kind, &doc) {
        return refuse(why);
    }
    let mut report = Report::new(check::policy_info(policy));
    let source = Source {
        file: None,
        positions: None,
        start_line: None,
    };
    check::check_document(policy, &doc, source, &opts, &mut report);
    if report.objects.is_empty() {
        return refuse(format!(
            "tollgate does not know where a {} keeps its images; take the kind out of the \
             webhook's rules, or ask for it to be supported",
            request.kind.kind
        ));
    }
    let old_images = match (&request.operation, request.old_object) {
        (Operation::Update, Some(old)) => {
            let old = admission_object(old.value, &namespace);
            let w = workload::extract_with(&old, policy.workloads());
            w.images
                .into_iter()
                .map(|u| (u.container.kind, u.container.name, u.image))
                .collect()
        }
        _ => HashSet::new(),
    };
    Plan::Checked(Checked {
        report,
        opts,
        old_images,
        ephemeral_only,
    })
}

/// Whether `doc` is an object of the kind the request names (`{group, version, kind}`).
fn fits(expected: &kube_core::GroupVersionKind, doc: &Value) -> Result<(), String> {
    let Some(obj) = doc.as_object() else {
        return Err(format!(
            "request.object is {}, not a {} object",
            crate::workload::json_type(doc),
            expected.kind
        ));
    };
    let api_version = if expected.group.is_empty() {
        expected.version.clone()
    } else {
        format!("{}/{}", expected.group, expected.version)
    };
    // Before Kubernetes 1.22 the ephemeral containers subresource had a kind of its own; its
    // object is read as the Pod it belongs to (admission_object).
    let kind = match expected.kind.as_str() {
        "EphemeralContainers" => "Pod",
        k => k,
    };
    let got = |k: &str| obj.get(k).and_then(Value::as_str);
    if got("apiVersion") != Some(api_version.as_str()) || got("kind") != Some(kind) {
        return Err(format!(
            "request.kind says {api_version} {}, but the object is apiVersion {} kind {}",
            expected.kind,
            got("apiVersion").map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}")),
            got("kind").map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}")),
        ));
    }
    Ok(())
}

fn operation_str(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The object as the policy reads it. The request's namespace is authoritative (an object may
/// leave it out on CREATE), and the `EphemeralContainers` kind of Kubernetes before 1.22 is
/// read as the Pod it belongs to.
fn admission_object(mut value: Value, namespace: &str) -> Value {
    let Some(obj) = value.as_object_mut() else {
        return value;
    };
    if obj.get("kind").and_then(Value::as_str) == Some("EphemeralContainers") {
        let mut spec = Map::new();
        if let Some(list) = obj.remove("ephemeralContainers") {
            spec.insert("ephemeralContainers".into(), list);
        }
        obj.insert("kind".into(), "Pod".into());
        obj.insert("spec".into(), Value::Object(spec));
    }
    if !namespace.is_empty() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
    }
    value
}

/// What became of one image's registry walk.
#[derive(Debug)]
pub enum Answer {
    /// The registry answered.
    Facts(Box<RegistryFacts>),
    /// The registry answered, but not usefully (refused, 5xx after retries, unreachable).
    Failed(RegistryError),
    /// No answer before the deadline.
    TimedOut(Duration),
    /// Not walked: the review names this many distinct images, more than one review may have
    /// walked.
    TooMany(usize),
}

/// One distinct image, every site that uses it, and what the registry said.
#[derive(Debug)]
pub struct Walked {
    /// The image.
    pub reference: ImageRef,
    /// Every use of it in the object.
    pub sites: Vec<ImageSite>,
    /// The registry's answer.
    pub answer: Answer,
}

/// How the registry answered for the images of one request, for the metrics and the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    /// Walks answered entirely from the resolver's cache.
    pub cached: u64,
    /// Walks that sent requests.
    pub fetched: u64,
    /// Images the registry answered for, but not usefully.
    pub failed: u64,
    /// Images the registry did not answer for before the deadline.
    pub timed_out: u64,
}

impl Answers {
    /// Images whose registry-backed rules could not be evaluated.
    pub fn unavailable(&self) -> u64 {
        self.failed + self.timed_out
    }
}

/// Record what the registry said about each walked image at each of its sites: the facts as
/// findings, and a registry that did not answer as the policy's `registryUnavailable` says.
pub fn merge(policy: &Policy, checked: &mut Checked, walked: &[Walked]) -> Answers {
    let mut answers = Answers::default();
    for w in walked {
        let reason = match &w.answer {
            Answer::Facts(facts) => {
                if facts.resolution.requests == 0 {
                    answers.cached += 1;
                } else {
                    answers.fetched += 1;
                }
                sites::record(
                    policy,
                    &w.reference,
                    &w.sites,
                    facts,
                    &checked.opts,
                    &mut checked.report,
                );
                continue;
            }
            Answer::Failed(e) => {
                answers.failed += 1;
                format!("the registry could not answer ({})", error_text(e))
            }
            Answer::TimedOut(d) => {
                answers.timed_out += 1;
                format!(
                    "the registry did not answer within {} s (--registry-deadline)",
                    d.as_secs_f64()
                )
            }
            Answer::TooMany(n) => {
                answers.failed += 1;
                format!(
                    "the object names {n} distinct images, more than the {} tollgate walks for \
                     one request",
                    super::walk::MAX_IMAGES_PER_REVIEW
                )
            }
        };
        record_unavailable(policy, checked, &w.reference, &w.sites, &reason);
    }
    answers
}

/// The registry could not say anything about `reference` in time: each registry-backed rule
/// that could fail for it is recorded at each site as the policy's `registryUnavailable` says:
/// a warning (`allow`) or a failure at the rule's level (`deny`). Levels and exemptions apply
/// as for any finding.
pub fn record_unavailable(
    policy: &Policy,
    checked: &mut Checked,
    reference: &ImageRef,
    sites: &[ImageSite],
    reason: &str,
) {
    // Signature rules are cluster-wide (overrides cannot change them): decided once per image.
    // Each says for itself what an unanswered registry means: the rules that deny then deny
    // at their own level; the others only warn.
    let canonical = policy.canonical_name(reference);
    let signed_by_rule = policy.signature_level(&canonical, |_| true).is_some();
    let deny_level =
        policy.signature_level(&canonical, |r| r.on_unavailable == OnUnavailable::Deny);
    for site in sites {
        let ctx = Context {
            namespace: &site.namespace,
            now: checked.opts.now,
        };
        for &rule in REGISTRY_RULES {
            let applies = match rule {
                // Only a tag pinned to a digest can have moved.
                RuleId::TagMoved => reference.tag().is_some() && reference.digest().is_some(),
                RuleId::BaseNotApproved => !policy.bases().is_empty(),
                RuleId::SignatureUnverified => signed_by_rule,
                _ => true,
            };
            if !applies {
                continue;
            }
            let on = match rule {
                RuleId::SignatureUnverified if deny_level.is_some() => OnUnavailable::Deny,
                RuleId::SignatureUnverified => OnUnavailable::Allow,
                _ => policy.on_registry_unavailable(rule),
            };
            let (effect, hint) = match on {
                OnUnavailable::Allow => (
                    "admitted anyway: the policy allows it (spec.registryUnavailable)",
                    "nothing to do if the registry is back; if it is healthy but slow, raise --registry-deadline (keep it below the webhook's timeoutSeconds)",
                ),
                OnUnavailable::Deny => (
                    "denied: the policy requires it (spec.registryUnavailable)",
                    "retry once the registry answers; tollgate keeps walking the image in the background, so a retry usually finds it cached",
                ),
            };
            let status = Status::Fail(Violation {
                message: format!(
                    "{rule} could not be checked for {}: {reason}; {effect}",
                    site.image
                ),
                hint: hint.to_owned(),
            });
            let mut outcome = eval::registry_outcome(policy, rule, status, reference, ctx);
            if rule == RuleId::SignatureUnverified
                && outcome.level != Level::Off
                && let Some(l) = deny_level
            {
                outcome.level = l;
            }
            if on == OnUnavailable::Allow {
                outcome.level = outcome.level.min(Level::Warn);
            }
            check::record_outcome(policy, outcome, site, &checked.opts, &mut checked.report);
        }
    }
}

/// The verdict, the denial message and the warnings for a checked object.
pub fn decide(mut checked: Checked, settings: &Settings) -> Decision {
    let mut findings = std::mem::take(&mut checked.report.findings);
    findings.sort_by(|a, b| (&a.location, a.rule_id).cmp(&(&b.location, b.rule_id)));
    if settings.unchanged_images == UnchangedImages::Warn {
        for f in &mut findings {
            let unchanged = match (&f.container, &f.image) {
                (Some(c), Some(image)) => checked.is_unchanged(c, image),
                _ => false,
            };
            if f.level == Level::Deny && unchanged {
                f.level = Level::Warn;
                f.message
                    .push_str(" (the image is unchanged by this UPDATE, so it is not enforced)");
            }
        }
    }
    let object = checked.report.objects.first().map(|o| &o.object);
    let denials: Vec<&Finding> = findings.iter().filter(|f| f.level == Level::Deny).collect();
    let warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Warn)
        .map(warning_line)
        .collect();
    let verdict = if !denials.is_empty() {
        Verdict::Deny
    } else if !warnings.is_empty() {
        Verdict::Warn
    } else {
        Verdict::Allow
    };
    let message = (!denials.is_empty()).then(|| {
        let mut m = format!(
            "tollgate denied {}: {} policy violation{} (policy {})",
            object.map_or_else(|| "the object".to_owned(), ToString::to_string),
            denials.len(),
            if denials.len() == 1 { "" } else { "s" },
            checked.report.policy.name
        );
        for f in &denials {
            let _ = write!(
                m,
                "\n- [{}] {}: {}\n  fix: {}",
                f.rule_id,
                subject(f),
                f.message,
                f.hint
            );
        }
        m
    });
    Decision {
        verdict,
        message,
        warnings,
        findings,
        exempted: checked.report.exempted,
    }
}

/// `container "app" (r.io/app:1)`, or where in the pod spec a finding without container is.
fn subject(f: &Finding) -> String {
    match (&f.container, &f.image) {
        (Some(c), Some(image)) => format!("{} {:?} ({image})", c.kind, c.name),
        (Some(c), None) => format!("{} {:?}", c.kind, c.name),
        _ => f
            .location
            .pointer
            .as_deref()
            .map_or_else(|| "the object".to_owned(), |p| format!("at {p}")),
    }
}

fn warning_line(f: &Finding) -> String {
    format!(
        "tollgate: [{}] {}: {} (fix: {})",
        f.rule_id,
        subject(f),
        f.message,
        f.hint
    )
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;
    use crate::admission::review;
    use crate::policy::{default_policy, parse_policy};

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request(operation: &str, sub: Option<&str>, object: Value, old: Value) -> Request {
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": sub,
                "namespace": "web",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": old,
            }
        });
        review::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn pod(containers: &[(&str, &str)]) -> Value {
        let list: Vec<Value> = containers
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": list}})
    }

    fn settings(unchanged: UnchangedImages) -> Settings {
        Settings {
            exempt_namespaces: vec!["kube-system".into()],
            unchanged_images: unchanged,
        }
    }

    fn run(req: Request, unchanged: UnchangedImages) -> Decision {
        let s = settings(unchanged);
        match plan(&default_policy(), req, &s, Timestamp::UNIX_EPOCH, false) {
            Plan::Done(d) => d,
            Plan::Checked(c) => decide(c, &s),
        }
    }

    fn good() -> String {
        format!("docker-registry.wikimedia.org/app:1.0@{D}")
    }

    #[rstest]
    #[case::clean_create("CREATE", None, pod(&[("a", &good())]), Value::Null, Verdict::Allow)]
    #[case::latest_is_denied("CREATE", None, pod(&[("a", "docker-registry.wikimedia.org/app:latest")]), Value::Null, Verdict::Deny)]
    #[case::unpinned_is_a_warning("CREATE", None, pod(&[("a", "docker-registry.wikimedia.org/app:1.0")]), Value::Null, Verdict::Warn)]
    #[case::delete_is_not_evaluated("DELETE", None, Value::Null, pod(&[("a", "nginx")]), Verdict::Skip)]
    #[case::connect_is_not_evaluated("CONNECT", Some("exec"), json!({"kind": "PodExecOptions"}), Value::Null, Verdict::Skip)]
    #[case::status_updates_are_not_evaluated("UPDATE", Some("status"), pod(&[("a", "nginx")]), pod(&[("a", "nginx")]), Verdict::Skip)]
    #[case::unchanged_image_only_warns("UPDATE", None, pod(&[("a", "nginx")]), pod(&[("a", "nginx")]), Verdict::Warn)]
    #[case::changed_image_is_enforced("UPDATE", None, pod(&[("a", "nginx:2")]), pod(&[("a", "nginx")]), Verdict::Deny)]
    #[case::renamed_container_is_new("UPDATE", None, pod(&[("b", "nginx")]), pod(&[("a", "nginx")]), Verdict::Deny)]
    #[case::no_object_is_denied("CREATE", None, Value::Null, Value::Null, Verdict::Deny)]
    fn verdicts(
        #[case] op: &str,
        #[case] sub: Option<&str>,
        #[case] object: Value,
        #[case] old: Value,
        #[case] expected: Verdict,
    ) {
        let d = run(request(op, sub, object, old), UnchangedImages::Warn);
        assert_eq!(d.verdict, expected, "{d:#?}");
    }

    #[test]
    fn enforce_mode_denies_unchanged_images_too() {
        let d = run(
            request(
                "UPDATE",
                None,
                pod(&[("a", "nginx")]),
                pod(&[("a", "nginx")]),
            ),
            UnchangedImages::Enforce,
        );
        assert_eq!(d.verdict, Verdict::Deny);
    }

    #[test]
    fn ephemeral_containers_are_checked_and_existing_containers_only_warn() {
        let mut object = pod(&[("a", "nginx")]);
        object["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger", "image": "busybox:latest"}]);
        let d = run(
            request(
                "UPDATE",
                Some(EPHEMERAL_CONTAINERS),
                object,
                pod(&[("a", "nginx")]),
            ),
            UnchangedImages::Warn,
        );
        assert_eq!(d.verdict, Verdict::Deny);
        let m = d.message.unwrap();
        assert!(
            m.contains("ephemeral container \"debugger\" (busybox:latest)"),
            "{m}"
        );
        assert!(!m.contains("container \"a\""), "{m}");
        assert!(d.warnings.iter().any(|w| w.contains("container \"a\"")));
    }

    #[test]
    fn the_old_ephemeral_containers_kind_is_read_as_its_pod() {
        let object = json!({"apiVersion": "v1", "kind": "EphemeralContainers", "metadata": {"name": "p"},
                            "ephemeralContainers": [{"name": "d", "image": "busybox"}]});
        let d = run(
            request("UPDATE", Some(EPHEMERAL_CONTAINERS), object, Value::Null),
            UnchangedImages::Warn,
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(d.message.unwrap().contains("tollgate denied Pod web/p"));
    }

    #[test]
    fn the_denial_lists_every_violation_with_its_fix() {
        let d = run(
            request(
                "CREATE",
                None,
                pod(&[
                    ("a", "docker-registry.wikimedia.org/app:latest"),
                    ("b", "nginx:1.25"),
                ]),
                Value::Null,
            ),
            UnchangedImages::Warn,
        );
        let m = d.message.clone().unwrap();
        assert!(
            m.starts_with("tollgate denied Pod web/p: 2 policy violations (policy wikimedia-production)\n- [tag-latest] container \"a\" (docker-registry.wikimedia.org/app:latest): "),
            "{m}"
        );
        assert!(m.contains("- [registry-not-approved] container \"b\" (nginx:1.25): registry docker.io is not approved\n  fix: push the image"), "{m}");
        assert_eq!(
            d.rule_ids(),
            vec![
                RuleId::RegistryNotApproved,
                RuleId::TagLatest,
                RuleId::DigestMissing
            ]
        );
    }

    #[test]
    fn exempt_namespaces_are_admitted_without_evaluation() {
        let mut req = request("CREATE", None, pod(&[("a", "nginx")]), Value::Null);
        req.namespace = Some("kube-system".into());
        assert_eq!(run(req, UnchangedImages::Warn).verdict, Verdict::Exempt);
    }

    #[rstest]
    #[case::allow_warns(OnUnavailable::Allow, Verdict::Warn)]
    #[case::deny_denies(OnUnavailable::Deny, Verdict::Deny)]
    fn an_unavailable_registry_follows_the_policy(
        #[case] on: OnUnavailable,
        #[case] expected: Verdict,
    ) {
        let p = parse_policy(
            &format!(
                "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org}}]\n  registryUnavailable: {{image-unavailable: {}}}\n",
                on.as_str()
            ),
            "p.yaml",
        )
        .unwrap();
        let image = format!("r.example.org/app:1@{D}");
        let s = settings(UnchangedImages::Warn);
        let req = request("CREATE", None, pod(&[("a", &image)]), Value::Null);
        let Plan::Checked(mut c) = plan(&p, req, &s, Timestamp::UNIX_EPOCH, true) else {
            panic!()
        };
        let sites = std::mem::take(&mut c.report.sites);
        let reference: ImageRef = image.parse().unwrap();
        record_unavailable(
            &p,
            &mut c,
            &reference,
            &sites,
            "the registry did not answer within 3 s",
        );
        let d = decide(c, &s);
        assert_eq!(d.verdict, expected, "{d:#?}");
        let text = d.message.clone().unwrap_or_else(|| d.warnings.join("\n"));
        assert!(
            text.contains("image-unavailable could not be checked for r.example.org/app:1@"),
            "{text}"
        );
        // tag-moved (warn by default) only ever warns.
        assert!(
            d.warnings.iter().any(|w| w.contains("[tag-moved]")),
            "{d:#?}"
        );
    }
}
