//! The webhook server: HTTPS (rustls, TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2) with `/validate`,
//! `/mutate`, `/healthz` and `/readyz` ([`super::handlers`]); Prometheus `/metrics` on a separate
//! plain-HTTP port; the certificate and the policy reloaded when their files change
//! ([`super::reload`]); the periodic audit on its own task; graceful shutdown. This file binds,
//! accepts and drains.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::connections::{Limits, Open, Slot, Tracked};
use super::decide::Settings;
use super::handlers::{healthz, metrics, mutate, readyz, validate};
use super::metrics::{Metrics, RegistryObserver};
use super::reload::{Reloader, hash, policy_hash};
use super::state::{AppState, engine};
pub use super::state::{BoxError, ResolverFactory};
use super::tls::{self, ReloadingCert, ServingCert, TlsError};
use crate::audit::periodic::{self, AuditConfig, Recorder};
use crate::catalog::periodic::{RecordConfig, RecordObserver};
use crate::policy::Policy;
use crate::registry::http::RequestObserver;
use crate::registry::pull::PullSecretSource;

/// How long a connection being closed (idle, shed) may take to finish what is in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server runs.
pub struct Config {
    /// HTTPS address of `/validate`, `/mutate`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Plain-HTTP address of `/metrics`.
    pub metrics_listen: SocketAddr,
    /// Serving certificate chain (PEM, leaf first); reloaded when the file changes.
    pub tls_cert: PathBuf,
    /// The serving certificate's private key (PEM); reloaded when the file changes.
    pub tls_key: PathBuf,
    /// The policy in force at start.
    pub policy: Policy,
    /// Its file, watched for changes; `None` for the embedded policy.
    pub policy_path: Option<PathBuf>,
    /// What shapes decisions: the exempt namespaces and unchanged images on UPDATE.
    pub settings: Settings,
    /// `None`: static rules only.
    pub resolvers: Option<ResolverFactory>,
    /// How long registry-backed rules may take, from the request's arrival.
    pub registry_deadline: Duration,
    /// Images walked at the same time for one request.
    pub jobs: usize,
    /// Serve `/mutate` for these kinds (`None`: no mutating webhook).
    pub mutate_kinds: Option<Vec<String>>,
    /// Largest request body accepted, in bytes; a larger one is answered with HTTP 413.
    pub max_body_bytes: usize,
    /// What all request bodies in flight may take together.
    pub max_inflight_body_bytes: usize,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub shutdown_grace: Duration,
    /// How often the certificate, key and policy files are read for changes.
    pub reload_interval: Duration,
    /// The periodic audit (`None`: off).
    pub audit: Option<AuditConfig>,
    /// The periodic catalog recording (`None`: off).
    pub record: Option<RecordConfig>,
    /// First-request and idle timeouts, and the connection cap.
    pub connections: Limits,
    /// Where the workloads' pull secrets are read (`--pull-secrets`); `None`: only the
    /// server's own registry credentials are used.
    pub pull_secrets: Option<Arc<dyn PullSecretSource>>,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A certificate, key or policy file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The serving certificate cannot be used.
    #[error("serving certificate {cert} with key {key}")]
    Certificate {
        /// The certificate file ([`Config::tls_cert`]).
        cert: PathBuf,
        /// The key file ([`Config::tls_key`]).
        key: PathBuf,
        /// What is wrong with them.
        #[source]
        source: TlsError,
    },
    /// A port cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// [`Config::listen`] or [`Config::metrics_listen`].
        addr: SocketAddr,
        /// The operating system's refusal (typically: the address is in use).
        #[source]
        source: std::io::Error,
    },
    /// The resolver factory failed.
    #[error("cannot build the registry client")]
    Registry(#[source] BoxError),
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
    connections: Limits,
    audit: Option<AuditConfig>,
    record: Option<RecordConfig>,
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

        let mut metrics = Metrics::with_audit_reports(
            config.audit.is_some(),
            config.audit.as_ref().is_some_and(|a| a.repo.is_some()),
            config.audit.as_ref().is_some_and(|a| a.reports.is_some()),
        );
        if config.record.is_some() {
            metrics = metrics.with_catalog_record();
        }
        let metrics = Arc::new(metrics);
        let observer: Arc<dyn RequestObserver> = Arc::new(RegistryObserver(metrics.clone()));
        let policy_files = config.policy.files().to_vec();
        let policy_hash = match &config.policy_path {
            Some(p) => {
                let text = Ok(read(p.clone()).await?);
                Some(policy_hash(p, &text, &policy_files).await)
            }
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
            pull_secrets: config.pull_secrets.clone(),
            jobs: config.jobs.max(1),
            mutate_kinds: config.mutate_kinds.clone().unwrap_or_default(),
            max_body_bytes: config.max_body_bytes,
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                config
                    .max_inflight_body_bytes
                    .div_ceil(1024)
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
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
                policy_files,
            },
            shutdown_grace: config.shutdown_grace,
            reload_interval: config.reload_interval,
            connections: config.connections,
            audit: config.audit,
            record: config.record,
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
            record,
            connections: limits,
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
                state.pull_secrets.clone(),
                stop_rx.clone(),
            ))
        });
        // On its own task too: a catalog that is down never holds up an admission.
        let recorder = record.map(|config| {
            let observer: Arc<dyn RecordObserver> = state.metrics.clone();
            tokio::spawn(crate::catalog::periodic::run_periodically(
                config,
                observer,
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
        let open = Arc::new(Open::new(limits));
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
                    let slot = open.enter();
                    connections.spawn(connection(
                        tcp,
                        acceptor.clone(),
                        builder.clone(),
                        router.clone(),
                        stop_rx.clone(),
                        slot,
                        open.limits(),
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
        if let Some(r) = recorder {
            r.abort();
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
    slot: Slot,
    limits: Limits,
) {
    let opened = tokio::time::Instant::now();
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
    let activity = slot.activity.clone();
    let io = TokioIo::new(Tracked::new(tls, activity.clone()));
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    loop {
        let deadline = activity.deadline(opened, &limits);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
                return;
            }
            _ = stop.changed() => break,
            () = activity.shed() => break,
            () = tokio::time::sleep_until(deadline) => {
                // Read since the deadline was set: not idle, wait for the new one.
                if activity.deadline(opened, &limits) > deadline {
                    continue;
                }
                tracing::debug!("closing a connection that sent nothing in time");
                break;
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    // A silent client does not get to hold the connection through the graceful close either.
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}
