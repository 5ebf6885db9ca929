//! The HTTP handlers: `/validate` and `/mutate` (read the body once, bounded; parse; decide;
//! answer; one log line and a few counters), `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use jiff::Timestamp;
use kube_core::Status;
use kube_core::admission::{AdmissionResponse, Operation};
use tokio::time::Instant;

use super::decide::{self, Decision, Plan, Verdict};
use super::exposition::Exposition;
use super::metrics::kind_label;
use super::state::AppState;
use super::{AdmissionError, patch, pull, review, walk};
use crate::registry::Tenant;
use crate::report::error_text;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest reading a request body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an oversized body read and thrown away before the 413, so that the client, which
/// is still sending, reads the answer instead of a connection reset.
const DRAIN_LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

pub(super) async fn validate(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    admit(&s, Webhook::Validate, &headers, body).await
}

pub(super) async fn mutate(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    admit(&s, Webhook::Mutate, &headers, body).await
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the policy is loaded (it is from the start: an invalid one stops the server) and
/// the certificate is valid now. The registry's health is not the webhook's: a registry outage
/// is what the deadline and `registryUnavailable` are for.
pub(super) async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let cert = s.certs.current();
    let now = Timestamp::now();
    if s.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if !cert.is_valid_at(now) {
        let why = format!(
            "the serving certificate is not valid now (valid from {} to {})\n",
            cert.not_before, cert.not_after
        );
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    } else {
        let policy = s.engine().policy.name().to_owned();
        (StatusCode::OK, format!("ready (policy {policy})\n")).into_response()
    }
}

/// The metrics, in the format the scraper's `Accept` asks for.
pub(super) async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let not_after = s.certs.current().not_after;
    let expires_in = (not_after.as_millisecond() - Timestamp::now().as_millisecond()) as f64 / 1e3;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        s.metrics.encode(expires_in, format),
    )
        .into_response()
}

/// The parts of a request the log line names (no object, no user).
struct Subject {
    uid: String,
    operation: &'static str,
    kind: String,
    subresource: String,
    namespace: String,
    name: String,
    dry_run: bool,
}

impl Subject {
    fn of(r: &review::Request) -> Self {
        let name = match (&r.name, &r.object) {
            (n, Some(o)) if n.is_empty() => o
                .metadata
                .generate_name
                .as_deref()
                .map(|g| format!("{g}*"))
                .unwrap_or_default(),
            (n, _) => n.clone(),
        };
        Subject {
            uid: r.uid.clone(),
            operation: match r.operation {
                Operation::Create => "CREATE",
                Operation::Update => "UPDATE",
                Operation::Delete => "DELETE",
                Operation::Connect => "CONNECT",
            },
            kind: r.kind.kind.clone(),
            subresource: r.sub_resource.clone().unwrap_or_default(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name,
            dry_run: r.dry_run,
        }
    }
}

/// The one place an [`AdmissionError`] becomes an HTTP response. Counted with the answered
/// requests too (decision `error`), so that an error ratio needs one metric.
fn reject(s: &AppState, webhook: Webhook, started: Instant, e: AdmissionError) -> Response {
    s.metrics.invalid(e.reason());
    s.metrics.request(
        webhook.as_str(),
        "unknown",
        "unknown",
        "error",
        started.elapsed(),
    );
    let why = error_text(&e);
    tracing::warn!(error = %why, "request refused: not an AdmissionReview this webhook answers");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("{why}\n")).into_response()
}

async fn admit(s: &AppState, webhook: Webhook, headers: &HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (bytes, budget) = match read_body(body, declared, s.max_body_bytes, &s.body_budget).await {
        Ok(b) => b,
        Err(e) => return reject(s, webhook, started, e),
    };
    let mut request = match review::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return reject(s, webhook, started, e),
    };
    let engine = s.engine();
    if engine
        .policy
        .workloads()
        .contains(&request.kind.group, &request.kind.kind)
        && let Err(e) = review::keep_whole(&bytes, &mut request)
    {
        return reject(s, webhook, started, e);
    }
    drop(bytes);
    drop(budget);
    let subject = Subject::of(&request);
    // Read before the object is handed to the plan; only with --pull-secrets.
    let wants = s
        .pull_secrets
        .as_ref()
        .and(request.object.as_ref())
        .and_then(|o| crate::workload::pull_secrets_with(&o.value, engine.policy.workloads()));
    let mut response = AdmissionResponse::from(&request);
    let plan = decide::plan(
        &engine.policy,
        request,
        &s.settings,
        Timestamp::now(),
        engine.registry.is_some(),
    );
    let mut patch = None;
    let mut answers = decide::Answers::default();
    let mut pull_warnings = Vec::new();
    let mut decision = match plan {
        Plan::Done(d) => d,
        Plan::Checked(mut checked) => {
            if let Some(registry) = &engine.registry {
                let mut todo = std::mem::take(&mut checked.report.sites);
                if webhook == Webhook::Mutate {
                    todo.retain(|site| patch::wants_pin(&checked, site, &s.mutate_kinds));
                }
                let creds = match (&s.pull_secrets, &wants) {
                    (Some(source), Some(wants)) if !subject.namespace.is_empty() => {
                        let approved = pull::approved_hosts(&engine.policy, &todo);
                        let (creds, warnings) = pull::credentials(
                            source.as_ref(),
                            &subject.namespace,
                            wants,
                            &approved,
                            started,
                            s.registry_deadline,
                        )
                        .await;
                        pull_warnings = warnings;
                        creds
                    }
                    _ => None,
                };
                let walked = walk::walk(
                    &engine.policy,
                    registry,
                    walk::Requester {
                        namespace: Tenant::new(&subject.namespace),
                        pull: creds,
                    },
                    todo,
                    s.jobs,
                    started,
                    s.registry_deadline,
                )
                .await;
                answers = decide::merge(&engine.policy, &mut checked, &walked);
                s.metrics.registry_answers(&answers);
                if webhook == Webhook::Mutate {
                    patch = patch::pin_digests(&checked, &walked, &s.mutate_kinds);
                }
            }
            decide::decide(checked, &s.settings)
        }
    };
    for w in pull_warnings {
        // The namespace and secret names only: a warning never holds a credential.
        tracing::warn!(uid = %subject.uid, namespace = %subject.namespace, "{w}");
        decision.warnings.push(w);
    }

    let label = match webhook {
        Webhook::Validate => {
            answer_validate(&mut response, &decision);
            decision.verdict.as_str()
        }
        Webhook::Mutate => answer_mutate(&mut response, &decision, patch.as_ref()),
    };
    let elapsed = started.elapsed();
    s.metrics.request(
        webhook.as_str(),
        subject.operation,
        kind_label(&subject.kind),
        label,
        elapsed,
    );
    if webhook == Webhook::Validate {
        for f in &decision.findings {
            s.metrics.finding(f.rule_id.as_str(), f.level.as_str());
        }
        for e in &decision.exempted {
            s.metrics.exemption("policy", e.finding.rule_id.as_str());
        }
        if decision.verdict == Verdict::Exempt {
            s.metrics.exemption("namespace", "all");
        }
    }
    log_decision(
        &subject,
        webhook,
        label,
        &decision,
        patch.as_ref(),
        answers.unavailable(),
        elapsed,
    );

    match serde_json::to_vec(&response.into_review()) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the AdmissionReview response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn answer_validate(response: &mut AdmissionResponse, d: &Decision) {
    if !d.verdict.allowed() {
        response.allowed = false;
        let message = d.message.as_deref().unwrap_or("denied by tollgate");
        response.result = Status::failure(message, "Forbidden").with_code(403);
    }
    if !d.warnings.is_empty() {
        response.warnings = Some(d.warnings.clone());
    }
    if let (Verdict::Exempt | Verdict::Skip, Some(why)) = (d.verdict, &d.message) {
        response
            .audit_annotations
            .insert("not-evaluated".into(), why.clone());
    }
    for e in &d.exempted {
        response.audit_annotations.insert(
            format!("exempted-{}", e.finding.rule_id),
            format!("{} ({})", e.exemption.source, e.exemption.reason),
        );
    }
}

/// The mutating webhook never denies: it pins what it could resolve, and the validating
/// webhook decides.
fn answer_mutate(
    response: &mut AdmissionResponse,
    d: &Decision,
    patch: Option<&json_patch::Patch>,
) -> &'static str {
    if let Some(p) = patch {
        match response.clone().with_patch(p.clone()) {
            Ok(patched) => {
                *response = patched;
                return "patch";
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize the patch"),
        }
    }
    match d.verdict {
        Verdict::Exempt | Verdict::Skip => d.verdict.as_str(),
        _ => "allow",
    }
}

fn log_decision(
    subject: &Subject,
    webhook: Webhook,
    decision_label: &str,
    d: &Decision,
    patch: Option<&json_patch::Patch>,
    unavailable: u64,
    elapsed: Duration,
) {
    let rules = d
        .rule_ids()
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let exemptions = d
        .exempted
        .iter()
        .map(|e| format!("{}@{}", e.finding.rule_id, e.exemption.source))
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(
        target: "tollgate::admission",
        uid = %subject.uid,
        webhook = webhook.as_str(),
        operation = subject.operation,
        kind = %subject.kind,
        subresource = %subject.subresource,
        namespace = %subject.namespace,
        name = %subject.name,
        dry_run = subject.dry_run,
        decision = decision_label,
        rules = %rules,
        exemptions = %exemptions,
        registry_unavailable = unavailable,
        patched = patch.map_or(0, |p| p.0.len()),
        duration_ms = elapsed.as_secs_f64() * 1e3,
        "admission decision"
    );
}

/// The body, at most `limit` bytes. A body that arrives in one piece (the usual case: a review
/// fits in one TLS record) is used as it is, without a copy. An oversized body is read on (up to
/// [`DRAIN_LIMIT`]) and dropped before the 413, so the client gets the answer rather than a
/// reset connection.
async fn read_body(
    body: Body,
    declared: Option<usize>,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Held), AdmissionError> {
    let read = async {
        let mut too_large = declared.is_some_and(|n| n > limit);
        let mut first: Option<Bytes> = None;
        let mut rest: Vec<u8> = Vec::new();
        let mut seen = 0usize;
        let mut held = Held::default();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(AdmissionError::Body)?;
            seen += chunk.len();
            if !too_large {
                // The memory this body takes (its declared size is reserved up front) counts
                // against what all bodies in flight may take together.
                held.grow(budget, seen.max(declared.unwrap_or(0).min(limit)))?;
            }
            if too_large || seen > limit {
                too_large = true;
                first = None;
                rest = Vec::new();
                if seen > DRAIN_LIMIT {
                    break;
                }
                continue;
            }
            match &first {
                None if rest.is_empty() => first = Some(chunk),
                _ => {
                    if let Some(f) = first.take() {
                        rest.reserve(declared.unwrap_or(0).max(f.len() + chunk.len()));
                        rest.extend_from_slice(&f);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        if too_large {
            Err(AdmissionError::TooLarge { limit })
        } else {
            Ok((first.unwrap_or_else(|| Bytes::from(rest)), held))
        }
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(AdmissionError::BodyTimeout(BODY_TIMEOUT)))
}

/// The KiB of the body budget one request body holds; given back when dropped.
#[derive(Default)]
pub(super) struct Held {
    permit: Option<OwnedSemaphorePermit>,
    kib: u32,
}

impl Held {
    /// Hold enough of `budget` for `bytes` in all, or refuse: the budget is spent by bodies in
    /// flight, and waiting for it would let slow clients hold the server's memory.
    fn grow(&mut self, budget: &Arc<Semaphore>, bytes: usize) -> Result<(), AdmissionError> {
        let want = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if want <= self.kib {
            return Ok(());
        }
        let more = budget
            .clone()
            .try_acquire_many_owned(want - self.kib)
            .map_err(|_| AdmissionError::Busy)?;
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        self.kib = want;
        Ok(())
    }
}
