//! `tollgate audit`: what the cluster really runs, checked against the policy and the registry.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::Value;
use tollgate::audit::run::{self, AuditReport};
use tollgate::audit::{self, Role};
use tollgate::cluster::LiveState;
use tollgate::cluster::kube::Cluster;
use tollgate::policy::Level;

use super::{Exit, RegistryArgs, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Live state from a file: the JSON of `kubectl get pods,deployments,replicasets,
    /// statefulsets,daemonsets,jobs,cronjobs -A -o json` (a List), for offline and CI use.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub live_file: Option<PathBuf>,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, else the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Only these namespaces (repeatable; default all).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Objects per page when listing from the API server.
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Policy rules only: do not walk images in the registry.
    #[arg(long)]
    pub no_resolve: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `--format` of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
}

pub fn run(args: AuditArgs) -> anyhow::Result<Exit> {
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let runtime = super::runtime()?;
    let objects: Vec<Value> = match &args.live_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let v: Value = serde_json::from_str(&text).with_context(|| {
                format!("{} is not JSON (`kubectl get ... -o json`)", path.display())
            })?;
            vec![v]
        }
        None => runtime.block_on(async {
            let cluster =
                Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
            anyhow::Ok(cluster.list(&args.namespaces, args.page_size).await?)
        })?,
    };
    let (mut state, skipped) = LiveState::from_objects(&objects);
    for s in &skipped {
        eprintln!(
            "tollgate: warning: object {} skipped: {}",
            s.index, s.reason
        );
    }
    if args.live_file.is_some() && !args.namespaces.is_empty() {
        state
            .pods
            .retain(|p| args.namespaces.contains(&p.namespace));
        state.controllers.retain(|c| {
            c.object
                .namespace
                .as_ref()
                .is_some_and(|n| args.namespaces.contains(n))
        });
    }
    let inventory = audit::inventory(&state);
    let resolver = if args.no_resolve {
        None
    } else {
        Some(Arc::new(args.registry.resolver(policy.clone())?))
    };
    let bar = (std::io::stderr().is_terminal() && inventory.len() > 1).then(|| {
        indicatif::ProgressBar::new(inventory.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed}")
                .expect("a valid template"),
        )
    });
    let tick = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let report = runtime.block_on(run::audit(
        &policy,
        resolver.as_ref(),
        inventory,
        now(),
        args.registry.jobs,
        &tick,
    ));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let out = match args.format {
        AuditFormat::Json => json(&report, &state, policy.name()),
        AuditFormat::Text => text(&report, &state, policy.name()),
    };
    print(&out)?;
    Ok(exit_code(&report))
}

fn exit_code(report: &AuditReport) -> Exit {
    if !report.errors.is_empty() {
        Exit::Error
    } else if report
        .images
        .iter()
        .any(|i| i.findings.iter().any(|f| f.level == Level::Deny))
    {
        Exit::Violations
    } else {
        Exit::Clean
    }
}

fn count(report: &AuditReport, kind: &str) -> usize {
    report
        .images
        .iter()
        .filter(|i| i.findings.iter().any(|f| f.kind == kind))
        .count()
}

fn json(report: &AuditReport, state: &LiveState, policy: &str) -> String {
    let v = serde_json::json!({
        "schemaVersion": 1,
        "tool": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
        "policy": policy,
        "summary": {
            "pods": state.pods.len(),
            "controllers": state.controllers.len(),
            "images": report.images.len(),
            "runningUnservable": count(report, run::RUNNING_UNSERVABLE),
            "rollbackTargetsUnservable": count(report, run::ROLLBACK_UNSERVABLE),
            "declaredUnservable": count(report, run::DECLARED_UNSERVABLE),
            "retentionRisk": count(report, run::RETENTION_RISK),
            "registryRequests": report.registry_requests,
            "errors": report.errors.len(),
        },
        "images": report.images,
        "errors": report.errors,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("the report serializes");
    s.push('\n');
    s
}

fn text(report: &AuditReport, state: &LiveState, policy: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tollgate audit: {} distinct images in {} pods and {} controllers; policy {policy}",
        report.images.len(),
        state.pods.len(),
        state.controllers.len()
    );
    let sections = [
        (
            run::RUNNING_UNSERVABLE,
            "Running images the registry can no longer serve (the next restart fails)",
        ),
        (
            run::ROLLBACK_UNSERVABLE,
            "Rollback targets the registry can no longer serve",
        ),
        (
            run::DECLARED_UNSERVABLE,
            "Declared images the registry cannot serve (the next pod fails)",
        ),
        (
            run::RETENTION_RISK,
            "Images the registry's retention rule deletes on its next run",
        ),
    ];
    for (kind, title) in sections {
        let hits: Vec<_> = report
            .images
            .iter()
            .filter_map(|i| Some((i, i.findings.iter().find(|f| f.kind == kind)?)))
            .collect();
        let _ = writeln!(out, "\n{title}: {}", hits.len());
        for (i, f) in hits {
            let _ = writeln!(
                out,
                "  {}",
                i.image.running.as_deref().unwrap_or(&i.image.image)
            );
            for u in &i.image.usages {
                let role = match u.role {
                    Role::Running => format!("{} pods", u.pods),
                    Role::RollbackTarget => "rollback target".to_owned(),
                    Role::Declared => "declared".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "    {}/{} container {} ({role})",
                    u.namespace, u.workload, u.container
                );
            }
            let _ = writeln!(out, "    {}\n    fix: {}", f.message, f.hint);
        }
    }
    let policy_hits: Vec<_> = report
        .images
        .iter()
        .flat_map(|i| {
            i.findings
                .iter()
                .filter(|f| !f.kind.ends_with("-unservable") && f.kind != run::RETENTION_RISK)
                .map(move |f| (i, f))
        })
        .collect();
    let _ = writeln!(out, "\nPolicy findings: {}", policy_hits.len());
    for (i, f) in policy_hits {
        let _ = writeln!(
            out,
            "  {:<5} {:<26} {} ({} use{})",
            f.level.as_str(),
            f.kind,
            i.image.image,
            i.image.usages.len(),
            if i.image.usages.len() == 1 { "" } else { "s" }
        );
    }
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nCould not be checked: {}", report.errors.len());
        for e in &report.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}
