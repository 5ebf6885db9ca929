//! The arguments several subcommands share: the policy, registry access, live state, how a
//! report is shown, and the one duration syntax of every duration flag.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use tollgate::cluster::LiveState;
use tollgate::cluster::kube::Cluster;
use tollgate::config::duration;
use tollgate::policy::{HostPattern, Policy};
use tollgate::reference::RegistryHost;
use tollgate::registry::auth::CredentialStore;
use tollgate::registry::{
    ClientOptions, MAX_WALK_REQUESTS, RegistryClient, ResolveOptions, Resolver,
};

/// A duration flag's value (`250ms`, `5s`, `1m30s`, `1h`; zero allowed). A bare number of
/// seconds is still accepted, with a note on stderr that it is deprecated.
pub fn any_duration(text: &str) -> Result<Duration, String> {
    let parsed = duration::parse(text).map_err(|e| e.to_string())?;
    if parsed.bare_seconds {
        eprintln!("tollgate: warning: {}", duration::deprecation(text));
    }
    Ok(parsed.duration)
}

/// [`any_duration`], longer than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = any_duration(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(d)
}

/// The policy from `--policy`, or the embedded default.
pub fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(tollgate::policy::default_policy());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy {}", path.display()))?;
    let policy =
        tollgate::policy::parse_policy_with(&text, &path.display().to_string(), &|name: &str| {
            tollgate::policy::read_beside(path, name)
        })?;
    tracing::debug!(
        policy = policy.name(),
        origin = policy.origin(),
        "policy loaded"
    );
    Ok(policy)
}

/// `--color`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set (https://no-color.org).
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    /// [`Self::enabled`], for output written to stderr.
    pub fn enabled_on_stderr(self) -> bool {
        match self {
            ColorChoice::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
            other => other.enabled(),
        }
    }
}

/// How a report is shown, and whether warnings fail: shared by `check`, `ci` and `hook pre-push`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Exit 1 on warn-level findings too (for the hook: block the push on warnings).
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// With --format sarif: each rule's helpUri is URI#rule-id (for example the address of
    /// policies/README.md where your team publishes it).
    #[arg(long, value_name = "URI")]
    pub help_base_uri: Option<String>,
}

/// `--format` of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Sarif,
    Junit,
    Github,
}

/// Registry access options shared by the registry-backed commands.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json, then
    /// ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// Extra CA certificates (PEM), trusted besides the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Walk only these platforms of an index (os/arch[/variant]; repeatable; default all).
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// Deadline for one image's whole walk (250ms, 5s, 1m) [default: 20s; for `ci` and `hook`,
    /// the repository config's registry.deadline].
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub deadline: Option<Duration>,
    /// Images walked at the same time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Registry requests one image's walk may send (index, child manifests, configs, layers,
    /// base check; retries included); past it the image is "could not check". Raise it only for
    /// images larger than 256 platforms of 13 layers.
    // A flag and not only the constant: a registry whose images really are larger needs a way
    // to check them without a rebuild, and lowering it shows the limit on a small real image.
    #[arg(long, default_value_t = MAX_WALK_REQUESTS, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_walk_requests: u64,
}

impl RegistryArgs {
    /// A resolver for `policy`, with credentials and CA bundle read here, at the edge.
    pub fn resolver(&self, policy: Arc<Policy>) -> anyhow::Result<Resolver> {
        let client = RegistryClient::new(self.client_options(&policy)?)?;
        Ok(Resolver::new(
            Arc::new(client),
            policy,
            self.resolve_options()?,
        ))
    }

    /// The HTTP client's options: credentials for the registries `policy` approves (and only
    /// those) and the extra CA bundle.
    pub fn client_options(&self, policy: &Policy) -> anyhow::Result<ClientOptions> {
        let credentials = match CredentialStore::default_path(self.registry_config.as_deref()) {
            Some(path) => {
                // Credential helpers are asked about the approved registries only.
                let hosts: Vec<String> = policy
                    .all_registries()
                    .flat_map(|r| r.host().exact().into_iter().chain(r.aliases()))
                    .map(ToString::to_string)
                    .collect();
                // A wildcard entry (`*.dkr.ecr.*.amazonaws.com`) names no host to ask about:
                // its helpers are asked about the credHelpers keys it approves.
                let approved = |key: &str| {
                    key.parse::<RegistryHost>()
                        .is_ok_and(|h| policy.all_registries().any(|r| r.matches_host(&h)))
                };
                CredentialStore::from_docker_config_for(&path, &hosts, &approved)?
            }
            None => CredentialStore::anonymous(),
        };
        // Each name of a registry may redirect to the hosts the policy names for it.
        let redirect_hosts = policy
            .all_registries()
            .flat_map(|r| {
                std::iter::once(r.host().clone())
                    .chain(r.aliases().iter().cloned().map(HostPattern::Exact))
                    .map(move |h| (h, r.redirect_hosts().to_vec()))
            })
            .collect();
        let mut client = ClientOptions {
            credentials,
            redirect_hosts,
            ..ClientOptions::default()
        };
        if let Some(ca) = &self.ca_file {
            client = client.with_extra_ca_file(ca)?;
        }
        Ok(client)
    }

    /// The walk's options: platforms and the per-image deadline.
    pub fn resolve_options(&self) -> anyhow::Result<ResolveOptions> {
        self.resolve_options_with(Duration::from_secs(20))
    }

    /// [`Self::resolve_options`], with `default_deadline` unless `--deadline` is given.
    pub fn resolve_options_with(
        &self,
        default_deadline: Duration,
    ) -> anyhow::Result<ResolveOptions> {
        Ok(ResolveOptions {
            platforms: self.platforms.clone(),
            deadline: self.deadline.unwrap_or(default_deadline),
            max_walk_requests: self.max_walk_requests,
            ..ResolveOptions::default()
        })
    }
}

/// Live-state options shared by `audit` and `rollout`.
#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Live state from a file: the JSON of `kubectl get pods,deployments,replicasets,
    /// statefulsets,daemonsets,jobs,cronjobs -A -o json` (a List), for offline and CI use.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub live_file: Option<PathBuf>,
    /// Live state from the API server with this kubeconfig (default: $KUBECONFIG,
    /// ~/.kube/config, else the in-cluster service account), when no --live-file is given.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Only these namespaces (repeatable; default all).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Objects per page when listing from the API server.
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// How long listing from the API server may take in all; past it, the listing fails and
    /// names the resource it was at.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = positive_duration)]
    pub list_deadline: Duration,
}

impl LiveArgs {
    /// Read live state; objects that cannot be used are skipped with a warning, and with a file
    /// only the selected namespaces are kept (the API server is asked for them alone).
    pub fn load(&self) -> anyhow::Result<LiveState> {
        let objects = match &self.live_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read live state {}", path.display()))?;
                let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "live state {} is not JSON (`kubectl get ... -A -o json` writes it)",
                        path.display()
                    )
                })?;
                vec![value]
            }
            None => super::runtime()?.block_on(async {
                let cluster =
                    Cluster::connect(self.kubeconfig.as_deref(), self.context.as_deref()).await?;
                anyhow::Ok(
                    cluster
                        .list(&self.namespaces, self.page_size, self.list_deadline)
                        .await?,
                )
            })?,
        };
        let (mut state, skipped) = LiveState::from_objects(&objects);
        for s in &skipped {
            eprintln!(
                "tollgate: warning: live object {} skipped: {}",
                s.index, s.reason
            );
        }
        if self.live_file.is_some() {
            state.retain_namespaces(&self.namespaces);
        }
        Ok(state)
    }
}
