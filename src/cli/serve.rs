//! `tollgate serve`: the validating (and optional mutating) admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use tollgate::admission::connections::Limits;
use tollgate::admission::decide::{Settings, UnchangedImages};
use tollgate::admission::server::{Config, ResolverFactory, Server};
use tollgate::admission::walk::namespace_share;
use tollgate::audit::openreports;
use tollgate::audit::periodic::{AuditConfig, RolloutSource};
use tollgate::audit::publish::ReportsConfig;
use tollgate::catalog::CatalogUrl;
use tollgate::catalog::periodic::RecordConfig;
use tollgate::cluster::kube::Cluster;
use tollgate::cluster::pullsecrets::ApiPullSecrets;
use tollgate::registry::{RegistryClient, Resolver};

use super::args::{any_duration, positive_duration};
use super::{Exit, RegistryArgs, load_policy};

/// How often the certificate, key and policy files are read for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Longest one periodic audit may take, at least (a longer interval allows as long).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest one catalog recording may take, at least (a longer interval allows as long).
const RECORD_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The registry flags: --registry-config, --ca-file and --platform as for `verify`; --jobs is the
number of images walked at once for one request; --deadline bounds each image's walk, which
goes on in the background after --registry-deadline has passed, so that a retry finds the
answer cached. See docs/webhook.md.

With --pull-secrets, each workload's imagePullSecrets (and its service account's) give the
credentials for the approved registries they name, for that workload's walks only (and, with
--audit-interval, for each namespace's images in the audit); answers fetched with them are
cached apart from the server's own. See docs/webhook.md.

With --audit-interval, the audit of `tollgate audit` runs in the background every interval
(live state through --audit-kubeconfig/--audit-context, else in-cluster or $KUBECONFIG) and its
results are gauges on the metrics port (tollgate_audit_*); admission never waits for it. With
--audit-reports it also writes them as OpenReports Reports (one per workload) for Policy
Reporter and other dashboards. See docs/audit.md.

With --catalog and --cluster-name, what the cluster runs is recorded into the catalog every
--catalog-record-interval (tollgate_catalog_* on the metrics port); a catalog that is down
never affects admission. See docs/catalog.md.

Exit codes:
  0  stopped by SIGTERM or SIGINT after draining in-flight requests
  2  cannot start: unreadable or invalid certificate, key or policy, address in use, or
     --pull-secrets without a usable kubeconfig or in-cluster configuration")]
pub struct ServeArgs {
    /// Serving certificate chain (PEM, leaf first); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// Private key of the serving certificate (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// Policy file (default: the embedded policy); reloaded when it changes, and a new policy
    /// that does not validate is rejected (the previous one stays in force).
    #[arg(long, env = "TOLLGATE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// HTTPS address for /validate, /mutate, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Plain-HTTP address for /metrics (Prometheus).
    #[arg(long, default_value = "0.0.0.0:9090", value_name = "ADDR")]
    pub metrics_listen: SocketAddr,
    /// Namespace whose requests are admitted without evaluation (repeatable; giving it replaces
    /// the default).
    #[arg(long = "exempt-namespace", value_name = "NS", default_values_t = [String::from("kube-system")])]
    pub exempt_namespaces: Vec<String>,
    /// tollgate's own namespace, exempt too (so that tollgate can always be redeployed).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    pub own_namespace: Option<String>,
    /// Time the registry-backed rules may take, from the request's arrival; keep it below the
    /// webhook's timeoutSeconds. What happens past it is the policy's spec.registryUnavailable.
    #[arg(long, default_value = "3s", value_name = "DURATION", value_parser = positive_duration)]
    pub registry_deadline: Duration,
    /// Static rules only: never ask a registry.
    #[arg(long)]
    pub no_resolve: bool,
    /// On UPDATE, images unchanged from oldObject: `warn` turns their denials into warnings,
    /// `enforce` denies them like new ones.
    #[arg(long, value_enum, default_value_t = Unchanged::Warn, value_name = "MODE")]
    pub unchanged_images: Unchanged,
    /// Serve POST /mutate: pin tag references to tag@digest (without it, /mutate is 404).
    #[arg(long)]
    pub mutate: bool,
    /// Kinds /mutate pins (repeatable; giving it replaces the default).
    #[arg(long = "mutate-kind", value_name = "KIND", default_values_t = [String::from("Pod")])]
    pub mutate_kinds: Vec<String>,
    /// How long after the TLS handshake a client may take to start its first request; a
    /// connection that says nothing by then is closed.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = positive_duration)]
    pub first_request_timeout: Duration,
    /// How long a connection may stay silent between requests before it is closed (HTTP/1.1
    /// and HTTP/2 alike; an HTTP/2 ping counts as activity).
    #[arg(long, default_value = "90s", value_name = "DURATION", value_parser = positive_duration)]
    pub idle_timeout: Duration,
    /// Connections open at once; past it, the one idle the longest is closed to make room.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// What all request bodies being read at once may take together; a request past it gets a
    /// 503 at once (the API server retries), so slow clients cannot hold the server's memory.
    #[arg(long, default_value_t = 64 << 20, value_name = "N")]
    pub max_inflight_body_bytes: usize,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = 4 << 20, value_name = "N")]
    pub max_body_bytes: usize,
    /// After SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "20s", value_name = "DURATION", value_parser = any_duration)]
    pub shutdown_grace: Duration,
    /// Run the audit this often (10m, 1h) and export its results on /metrics
    /// (tollgate_audit_*); 0s turns it off.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = any_duration)]
    pub audit_interval: Duration,
    /// Kubeconfig for the periodic audit (default: $KUBECONFIG, ~/.kube/config, else the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub audit_kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for the periodic audit (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub audit_context: Option<String>,
    /// Namespace the periodic audit lists (repeatable; default all).
    #[arg(long = "audit-namespace", value_name = "NS")]
    pub audit_namespaces: Vec<String>,
    /// With --audit-interval: a checkout of the deploy repository (kept current beside the
    /// server, e.g. by git-sync) to compare with live state, exporting
    /// tollgate_audit_not_rolled_out_commits and tollgate_audit_oldest_not_rolled_out_age_seconds.
    #[arg(long, value_name = "PATH")]
    pub audit_repo: Option<PathBuf>,
    /// With --audit-repo: the branch that says what should run (default: the remote's default
    /// branch, else HEAD).
    #[arg(long, value_name = "REV", requires = "audit_repo")]
    pub audit_branch: Option<String>,
    /// With --audit-interval: write the results as OpenReports Reports
    /// (reports.openreports.io, one per workload) by server-side apply, and delete the
    /// tollgate-managed Reports of workloads that are gone. Needs the CRD and RBAC to get,
    /// list, create, patch and delete reports.openreports.io.
    #[arg(long)]
    pub audit_reports: bool,
    /// With --audit-reports: results listed per Report at most (the summary counts all).
    #[arg(long, default_value_t = openreports::DEFAULT_MAX_RESULTS, value_name = "N", value_parser = super::audit::at_least_one)]
    pub report_max_results: usize,
    /// With --audit-repo: how long a merged commit may wait for its rollout (30m, 1h).
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = any_duration)]
    pub audit_grace: Duration,
    /// Use each workload's own registry credentials: the pod spec's imagePullSecrets and its
    /// service account's (default `default`), read from the API server by name (RBAC: `get`
    /// on secrets and serviceaccounts), for the approved registries they name only. Without a
    /// usable secret, or when the API server does not answer within half of
    /// --registry-deadline, the images are checked with --registry-config's credentials and
    /// the response carries a warning.
    #[arg(long)]
    pub pull_secrets: bool,
    /// Kubeconfig for --pull-secrets (default: $KUBECONFIG, ~/.kube/config, else the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE", requires = "pull_secrets")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --pull-secrets (default: the current one).
    #[arg(long, value_name = "NAME", requires = "pull_secrets")]
    pub context: Option<String>,
    /// Record what the cluster runs into this catalog (`sqlite:PATH` or `postgres://...`)
    /// every --catalog-record-interval, as `tollgate catalog record` does, with live state
    /// through --audit-kubeconfig/--audit-context (else in-cluster or $KUBECONFIG). Needs
    /// --cluster-name (without it, nothing is recorded). A catalog that is down is a warning
    /// and a failure counted in tollgate_catalog_records_total; admission never waits for it.
    // A String, parsed here: clap would echo a refused value, password included.
    #[arg(
        long,
        env = "TOLLGATE_CATALOG",
        value_name = "URL",
        hide_env_values = true
    )]
    pub catalog: Option<String>,
    /// With --catalog: time between two recordings.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = positive_duration)]
    pub catalog_record_interval: Duration,
    /// With --catalog: the name this cluster is recorded under.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `--unchanged-images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unchanged {
    Warn,
    Enforce,
}

/// Bind, print the addresses, serve until SIGTERM or SIGINT, drain, exit 0.
pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    let (registry_deadline, shutdown_grace, audit_interval, audit_grace) = (
        args.registry_deadline,
        args.shutdown_grace,
        args.audit_interval,
        args.audit_grace,
    );
    let audit = (!audit_interval.is_zero()).then(|| AuditConfig {
        interval: audit_interval,
        kubeconfig: args.audit_kubeconfig.clone(),
        context: args.audit_context.clone(),
        namespaces: args.audit_namespaces.clone(),
        timeout: audit_interval.max(AUDIT_TIMEOUT),
        repo: args.audit_repo.clone().map(|path| RolloutSource {
            path,
            branch: args.audit_branch.clone(),
            grace: audit_grace,
        }),
        jobs: args.registry.jobs.max(1),
        reports: args.audit_reports.then_some(ReportsConfig {
            max_results: args.report_max_results,
        }),
        catalog: None,
    });
    let record = match (&args.catalog, &args.cluster_name) {
        (Some(url), Some(cluster)) => Some(RecordConfig {
            catalog: url.parse::<CatalogUrl>()?,
            cluster: cluster.clone(),
            interval: args.catalog_record_interval,
            kubeconfig: args.audit_kubeconfig.clone(),
            context: args.audit_context.clone(),
            timeout: args.catalog_record_interval.max(RECORD_TIMEOUT),
        }),
        (None, Some(_)) => {
            anyhow::bail!("--cluster-name names what --catalog records: give --catalog")
        }
        (Some(_), None) => {
            // Not an error: the catalog's read-only routes need no cluster name.
            eprintln!(
                "tollgate: warning: --catalog without --cluster-name: this cluster is not recorded"
            );
            None
        }
        (None, None) => None,
    };
    // The periodic audit records its registry events where the recording writes.
    let audit = audit.map(|a| AuditConfig {
        catalog: record.as_ref().map(|r| r.catalog.clone()),
        ..a
    });
    if args.audit_reports && audit_interval.is_zero() {
        anyhow::bail!("--audit-reports needs the periodic audit: give --audit-interval");
    }
    if args.pull_secrets && args.no_resolve {
        anyhow::bail!("--pull-secrets gives credentials for the registry; drop --no-resolve");
    }
    if args.mutate && args.no_resolve {
        anyhow::bail!("--mutate needs the registry to find digests; drop --no-resolve");
    }
    if args.max_inflight_body_bytes < args.max_body_bytes {
        anyhow::bail!(
            "--max-inflight-body-bytes ({}) must be at least --max-body-bytes ({}), or the largest body could never be read",
            args.max_inflight_body_bytes,
            args.max_body_bytes
        );
    }
    if args.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    if args.max_body_bytes == 0 {
        anyhow::bail!("--max-body-bytes must be at least 1");
    }
    let policy = load_policy(args.policy.as_deref())?;
    let pull_secrets = args
        .pull_secrets
        .then(|| (args.kubeconfig.clone(), args.context.clone()));
    let jobs = args.registry.jobs.max(1);
    let resolvers: Option<ResolverFactory> = if args.no_resolve {
        None
    } else {
        // Checked now, so that a bad --deadline or CA file stops the start, not a reload.
        args.registry.resolve_options()?;
        let registry = Arc::new(args.registry);
        let factory: ResolverFactory = Arc::new(move |policy, observer| {
            let mut options = registry.client_options(&policy)?;
            // Namespaces share each registry's slots fairly: one holds at most its share.
            options.tenant_share = namespace_share(options.per_registry_concurrency);
            let client = RegistryClient::new(options)?;
            Ok(Resolver::new(
                Arc::new(client.with_observer(observer)),
                policy,
                registry.resolve_options()?,
            ))
        });
        Some(factory)
    };
    let mut exempt = args.exempt_namespaces;
    exempt.extend(args.own_namespace.filter(|ns| !ns.is_empty()));
    let config = Config {
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        policy,
        policy_path: args.policy,
        settings: Settings {
            exempt_namespaces: exempt,
            unchanged_images: match args.unchanged_images {
                Unchanged::Warn => UnchangedImages::Warn,
                Unchanged::Enforce => UnchangedImages::Enforce,
            },
        },
        resolvers,
        registry_deadline,
        jobs,
        mutate_kinds: args.mutate.then_some(args.mutate_kinds),
        max_body_bytes: args.max_body_bytes,
        max_inflight_body_bytes: args.max_inflight_body_bytes,
        shutdown_grace,
        reload_interval: RELOAD_INTERVAL,
        audit,
        record,
        connections: Limits {
            first_request: args.first_request_timeout,
            idle: args.idle_timeout,
            max: args.max_connections,
        },
        pull_secrets: None,
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let mut config = config;
        if let Some((kubeconfig, context)) = pull_secrets {
            let cluster = Cluster::connect(kubeconfig.as_deref(), context.as_deref())
                .await
                .context("--pull-secrets needs the API server")?;
            config.pull_secrets = Some(Arc::new(ApiPullSecrets::new(&cluster)));
        }
        let server = Server::bind(config).await?;
        eprintln!(
            "tollgate serve: listening on https://{}, metrics on http://{}",
            server.local_addr(),
            server.metrics_addr()
        );
        server.run(shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    Ok(Exit::Clean)
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
