//! Where `audit` and `rollout` read live state from: a kubectl List file, or the API server.

use std::path::PathBuf;

use anyhow::Context as _;
use tollgate::cluster::LiveState;
use tollgate::cluster::kube::Cluster;

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
                anyhow::Ok(cluster.list(&self.namespaces, self.page_size).await?)
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
