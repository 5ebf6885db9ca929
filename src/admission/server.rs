//! The webhook server: HTTPS (rustls, TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2) with `/validate`,
//! `/mutate`, `/healthz` and `/readyz`; Prometheus `/metrics` on a separate plain-HTTP port; the
//! certificate and the policy reloaded when their files change; graceful shutdown.
//!
//! Per request: the body is read once (bounded), parsed once ([`review::parse`]), the static
//! rules run synchronously ([`decide::plan`]), the registry-backed ones under the deadline
//! ([`walk`]), and [`decide::decide`] makes the answer. One log line and a few counters per
//! decision.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use kube_core::Status;
use kube_core::admission::{AdmissionResponse, Operation};
use rustls::crypto::CryptoProvider;
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::decide::{self, Decision, Plan, Settings, Verdict};
use super::metrics::{Metrics, RegistryObserver, kind_label};
use super::tls::{self, ReloadingCert, ServingCert, TlsError};
use super::walk::{self, Answer, RegistryEngine};
use super::{AdmissionError, patch, review};
use crate::audit::periodic::{self, AuditConfig, Recorder};
use crate::policy::{Policy, parse_policy};
use crate::registry::base::BaseChecker;
use crate::registry::http::RequestObserver;
use crate::registry::{Resolver, sites};

/// An error from outside the library (the binary's resolver factory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the resolver for a policy (credentials are read for its approved registries only),
/// reporting every request to the observer. Called at start, and again when a reloaded policy
/// changes the approved registries; otherwise the resolver, and its warm cache, is kept.
pub type ResolverFactory =
    Arc<dyn Fn(Arc<Policy>, Arc<dyn RequestObserver>) -> Result<Resolver, BoxError> + Send + Sync>;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest reading a request body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an oversized body read and thrown away before the 413, so that the client, which
/// is still sending, reads the answer instead of a connection reset.
const DRAIN_LIMIT: usize = 16 << 20;

/// How the server runs.
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The policy in force at start.
    pub policy: Policy,
    /// Its file, watched for changes; `None` for the embedded policy.
    pub policy_path: Option<PathBuf>,
    pub settings: Settings,
    /// `None`: static rules only.
    pub resolvers: Option<ResolverFactory>,
    /// How long registry-backed rules may take, from the request's arrival.
    pub registry_deadline: Duration,
    /// Images walked at the same time for one request.
    pub jobs: usize,
    /// Serve `/mutate` for these kinds (`None`: no mutating webhook).
    pub mutate_kinds: Option<Vec<String>>,
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub shutdown_grace: Duration,
    /// How often the certificate, key and policy files are read for changes.
    pub reload_interval: Duration,
    /// The periodic audit (`None`: off).
    pub audit: Option<AuditConfig>,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving certificate {cert} with key {key}: {source}")]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: TlsError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("registry client: {0}")]
    Registry(String),
}

/// The policy and the registry side, swapped as one when the policy is reloaded.
struct Engine {
    policy: Arc<Policy>,
    registry: Option<RegistryEngine>,
}

/// What decides whether a reloaded policy can keep the resolver: the resolver only uses the
/// policy to find (and approve) registries.
fn registries_key(p: &Policy) -> Vec<String> {
    p.registries()
        .iter()
        .map(|r| {
            let aliases: Vec<String> = r.aliases().iter().map(ToString::to_string).collect();
            format!("{} {} {}", r.prefix(), aliases.join(","), r.insecure())
        })
        .collect()
}

fn engine(
    policy: Arc<Policy>,
    resolvers: Option<&ResolverFactory>,
    observer: &Arc<dyn RequestObserver>,
    previous: Option<&Engine>,
) -> Result<Engine, String> {
    let Some(factory) = resolvers else {
        return Ok(Engine {
            policy,
            registry: None,
        });
    };
    let kept = previous.and_then(|e| {
        e.registry
            .as_ref()
            .filter(|_| registries_key(&e.policy) == registries_key(&policy))
            .map(|r| r.resolver.clone())
    });
    let resolver = match kept {
        Some(r) => r,
        None => Arc::new(factory(policy.clone(), observer.clone()).map_err(|e| e.to_string())?),
    };
    Ok(Engine {
        registry: Some(RegistryEngine {
            bases: Arc::new(BaseChecker::new(resolver.clone(), policy.clone())),
            resolver,
        }),
        policy,
    })
}

/// What the handlers share.
struct AppState {
    engine: RwLock<Arc<Engine>>,
    certs: Arc<ReloadingCert>,
    metrics: Arc<Metrics>,
    observer: Arc<dyn RequestObserver>,
    resolvers: Option<ResolverFactory>,
    settings: Settings,
    registry_deadline: Duration,
    jobs: usize,
    mutate_kinds: Vec<String>,
    max_body_bytes: usize,
    draining: AtomicBool,
}

impl AppState {
    fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A bound server, ready to run.
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    metrics_listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    reloader: Reloader,
    shutdown_grace: Duration,
    reload_interval: Duration,
    audit: Option<AuditConfig>,
}

impl Server {
    /// Load the certificate, build the engine and bind both ports.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = |path: PathBuf| async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| ServeError::Read { path, source })
        };
        let cert_pem = read(config.tls_cert.clone()).await?;
        let key_pem = read(config.tls_key.clone()).await?;
        let cert_error = |source| ServeError::Certificate {
            cert: config.tls_cert.clone(),
            key: config.tls_key.clone(),
            source,
        };
        let serving = ServingCert::from_pem(&cert_pem, &key_pem, &provider).map_err(cert_error)?;
        let certs = Arc::new(ReloadingCert::new(serving));
        let tls = tls::server_config(provider.clone(), certs.clone()).map_err(cert_error)?;

        let metrics = Arc::new(Metrics::with_audit(
            config.audit.is_some(),
            config.audit.as_ref().is_some_and(|a| a.repo.is_some()),
        ));
        let observer: Arc<dyn RequestObserver> = Arc::new(RegistryObserver(metrics.clone()));
        let policy_hash = match &config.policy_path {
            Some(p) => Some(hash(&[&read(p.clone()).await?])),
            None => None,
        };
        let engine = engine(
            Arc::new(config.policy),
            config.resolvers.as_ref(),
            &observer,
            None,
        )
        .map_err(ServeError::Registry)?;
        let state = Arc::new(AppState {
            engine: RwLock::new(Arc::new(engine)),
            certs,
            metrics,
            observer,
            resolvers: config.resolvers,
            settings: config.settings,
            registry_deadline: config.registry_deadline,
            jobs: config.jobs.max(1),
            mutate_kinds: config.mutate_kinds.clone().unwrap_or_default(),
            max_body_bytes: config.max_body_bytes,
            draining: AtomicBool::new(false),
        });
        let mut router = Router::new()
            .route("/validate", post(validate))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
        if config.mutate_kinds.is_some() {
            router = router.route("/mutate", post(mutate));
        }
        let router = router.with_state(state.clone());

        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let listener = bind(config.listen).await?;
        let metrics_listener = bind(config.metrics_listen).await?;
        Ok(Server {
            state,
            listener,
            metrics_listener,
            tls: Arc::new(tls),
            router,
            reloader: Reloader {
                provider,
                cert: config.tls_cert,
                key: config.tls_key,
                cert_hash: hash(&[&cert_pem, &key_pem]),
                policy: config.policy_path,
                policy_hash,
            },
            shutdown_grace: config.shutdown_grace,
            reload_interval: config.reload_interval,
            audit: config.audit,
        })
    }

    /// The HTTPS address (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight requests finish
    /// (for at most the shutdown grace), and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            state,
            listener,
            metrics_listener,
            tls,
            router,
            reloader,
            shutdown_grace,
            reload_interval,
            audit,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let reload = tokio::spawn(reloader.run(state.clone(), stop_rx.clone(), reload_interval));
        // On its own task: admission requests never wait for it; it shares the resolver.
        let auditor = audit.map(|config| {
            let current = {
                let state = state.clone();
                Arc::new(move || {
                    let engine = state.engine();
                    let resolver = engine.registry.as_ref().map(|r| r.resolver.clone());
                    (engine.policy.clone(), resolver)
                })
            };
            let recorder: Arc<dyn Recorder> = state.metrics.clone();
            tokio::spawn(periodic::run_periodically(
                config,
                current,
                recorder,
                stop_rx.clone(),
            ))
        });
        let metrics_router = Router::new()
            .route("/metrics", get(metrics))
            .with_state(state.clone());
        let mut metrics_stop = stop_rx.clone();
        let metrics_server = tokio::spawn(
            axum::serve(metrics_listener, metrics_router)
                .with_graceful_shutdown(async move {
                    let _ = metrics_stop.changed().await;
                })
                .into_future(),
        );

        let acceptor = TlsAcceptor::from(tls);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // One buffer per response: head and body in one TLS record and one write.
        builder.http1().timer(TokioTimer::new()).writev(false);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let tcp = match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(e) => {
                            // Out of file descriptors, most likely: wait rather than spin.
                            tracing::warn!(error = %e, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    while connections.try_join_next().is_some() {}
                    connections.spawn(connection(
                        tcp,
                        acceptor.clone(),
                        builder.clone(),
                        router.clone(),
                        stop_rx.clone(),
                    ));
                }
            }
        }
        // Refuse new connections at once; finish what is in flight.
        drop(listener);
        state.draining.store(true, Ordering::SeqCst);
        while connections.try_join_next().is_some() {}
        tracing::info!(
            connections = connections.len(),
            grace_seconds = shutdown_grace.as_secs_f64(),
            "shutting down: no new connections, draining in-flight requests"
        );
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                connections = connections.len(),
                "the shutdown grace ran out; closing the remaining connections"
            );
            connections.abort_all();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), metrics_server).await;
        reload.abort();
        if let Some(a) = auditor {
            a.abort();
        }
        tracing::info!("stopped");
    }
}

/// One TLS connection, HTTP/1.1 or HTTP/2 as ALPN chose; on shutdown, hyper finishes the
/// requests in flight and closes the connection (GOAWAY on HTTP/2).
async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        _ = stop.changed() => return,
    };
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

// ---- handlers ---------------------------------------------------------------------------------

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

async fn validate(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    admit(&s, Webhook::Validate, &headers, body).await
}

async fn mutate(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    admit(&s, Webhook::Mutate, &headers, body).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the policy is loaded (it is from the start: an invalid one stops the server) and
/// the certificate is valid now. The registry's health is not the webhook's: a registry outage
/// is what the deadline and `registryUnavailable` are for.
async fn readyz(State(s): State<Arc<AppState>>) -> Response {
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

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let not_after = s.certs.current().not_after;
    let expires_in = (not_after.as_millisecond() - Timestamp::now().as_millisecond()) as f64 / 1e3;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(expires_in),
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
    tracing::warn!(error = %e, "request refused: not an AdmissionReview this webhook answers");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("{e}\n")).into_response()
}

async fn admit(s: &AppState, webhook: Webhook, headers: &HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = match read_body(body, declared, s.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return reject(s, webhook, started, e),
    };
    let request = match review::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return reject(s, webhook, started, e),
    };
    drop(bytes);
    let engine = s.engine();
    let subject = Subject::of(&request);
    let mut response = AdmissionResponse::from(&request);
    let plan = decide::plan(
        &engine.policy,
        request,
        &s.settings,
        Timestamp::now(),
        engine.registry.is_some(),
    );
    let mut patch = None;
    let mut unavailable = 0usize;
    let decision = match plan {
        Plan::Done(d) => d,
        Plan::Checked(mut checked) => {
            if let Some(registry) = &engine.registry {
                let mut todo = std::mem::take(&mut checked.report.sites);
                if webhook == Webhook::Mutate {
                    todo.retain(|site| patch::wants_pin(&checked, site, &s.mutate_kinds));
                }
                let walked = walk::walk(
                    &engine.policy,
                    registry,
                    todo,
                    s.jobs,
                    started,
                    s.registry_deadline,
                )
                .await;
                for w in &walked {
                    match &w.answer {
                        Answer::Facts(facts) => {
                            s.metrics.cache(facts.resolution.requests == 0);
                            sites::record(
                                &engine.policy,
                                &w.reference,
                                &w.sites,
                                facts,
                                &checked.opts,
                                &mut checked.report,
                            );
                        }
                        Answer::Failed(e) => {
                            unavailable += 1;
                            s.metrics.unavailable("error");
                            let reason = format!("the registry could not answer ({e})");
                            decide::record_unavailable(
                                &engine.policy,
                                &mut checked,
                                &w.reference,
                                &w.sites,
                                &reason,
                            );
                        }
                        Answer::TimedOut(d) => {
                            unavailable += 1;
                            s.metrics.unavailable("timeout");
                            let reason = format!(
                                "the registry did not answer within {} s (--registry-deadline)",
                                d.as_secs_f64()
                            );
                            decide::record_unavailable(
                                &engine.policy,
                                &mut checked,
                                &w.reference,
                                &w.sites,
                                &reason,
                            );
                        }
                    }
                }
                if webhook == Webhook::Mutate {
                    patch = patch::pin_digests(&checked, &walked, &s.mutate_kinds);
                }
            }
            decide::decide(checked, &s.settings)
        }
    };

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
        unavailable,
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
        // kube-core takes its own json-patch version's Patch; the wire format is RFC 6902 in
        // both, so the conversion goes through JSON (and the type is inferred from the call).
        let converted = serde_json::to_value(p).and_then(serde_json::from_value);
        match converted.map(|p| response.clone().with_patch(p)) {
            Ok(Ok(patched)) => {
                *response = patched;
                return "patch";
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot serialize the patch"),
            Err(e) => tracing::error!(error = %e, "cannot convert the patch"),
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
    unavailable: usize,
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
) -> Result<Bytes, AdmissionError> {
    let read = async {
        let mut too_large = declared.is_some_and(|n| n > limit);
        let mut first: Option<Bytes> = None;
        let mut rest: Vec<u8> = Vec::new();
        let mut seen = 0usize;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| AdmissionError::Body(e.to_string()))?;
            seen += chunk.len();
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
            Ok(first.unwrap_or_else(|| Bytes::from(rest)))
        }
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(AdmissionError::Body("timed out".into())))
}

// ---- reloading --------------------------------------------------------------------------------

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Reads the certificate, key and policy files every interval and applies what changed. By
/// content, not modification time: a mounted ConfigMap or Secret changes by swapping a
/// symlink, which leaves the files' own times as they were.
struct Reloader {
    provider: Arc<CryptoProvider>,
    cert: PathBuf,
    key: PathBuf,
    /// Of the last certificate and key read, applied or not (a bad pair is reported once).
    cert_hash: [u8; 32],
    policy: Option<PathBuf>,
    policy_hash: Option<[u8; 32]>,
}

impl Reloader {
    async fn run(
        mut self,
        state: Arc<AppState>,
        mut stop: watch::Receiver<bool>,
        interval: Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.certificate(&state).await;
            self.policy(&state).await;
        }
    }

    async fn certificate(&mut self, state: &AppState) {
        let (cert, key) = match (
            tokio::fs::read(&self.cert).await,
            tokio::fs::read(&self.key).await,
        ) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                let h = hash(&[e.to_string().as_bytes()]);
                if h != self.cert_hash {
                    self.cert_hash = h;
                    state.metrics.certificate_reload(false);
                    tracing::error!(cert = %self.cert.display(), key = %self.key.display(), error = %e,
                        "cannot read the serving certificate; the previous one stays in use");
                }
                return;
            }
        };
        let h = hash(&[&cert, &key]);
        if h == self.cert_hash {
            return;
        }
        self.cert_hash = h;
        match ServingCert::from_pem(&cert, &key, &self.provider) {
            Ok(c) => {
                tracing::info!(cert = %self.cert.display(), not_after = %c.not_after,
                    "serving certificate reloaded; new connections use it");
                state.certs.replace(c);
                state.metrics.certificate_reload(true);
            }
            Err(e) => {
                // A certificate and key written one after the other are seen half-done once;
                // the next read, with both written, applies them.
                tracing::error!(cert = %self.cert.display(), key = %self.key.display(), error = %e,
                    "the new serving certificate is not used; the previous one stays in use");
                state.metrics.certificate_reload(false);
            }
        }
    }

    async fn policy(&mut self, state: &AppState) {
        let Some(path) = &self.policy else {
            return;
        };
        let text = tokio::fs::read(path).await;
        let h = match &text {
            Ok(t) => hash(&[t]),
            Err(e) => hash(&[e.to_string().as_bytes()]),
        };
        if Some(h) == self.policy_hash {
            return;
        }
        self.policy_hash = Some(h);
        let origin = path.display().to_string();
        let parsed = text
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|t| String::from_utf8(t).map_err(|_| "it is not UTF-8".to_owned()))
            .and_then(|t| parse_policy(&t, &origin).map_err(|e| e.to_string()));
        let current = state.engine();
        let next = parsed.and_then(|p| {
            engine(
                Arc::new(p),
                state.resolvers.as_ref(),
                &state.observer,
                Some(&current),
            )
        });
        match next {
            Ok(next) => {
                tracing::info!(policy = %origin, name = next.policy.name(), "policy reloaded");
                *state.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                state.metrics.policy_reload(true);
            }
            Err(e) => {
                tracing::error!(policy = %origin, error = %e,
                    "the new policy is rejected; the previous policy stays in force");
                state.metrics.policy_reload(false);
            }
        }
    }
}
