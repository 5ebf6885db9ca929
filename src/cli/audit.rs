//! `tollgate audit`: what the cluster really runs, checked against the policy and the registry.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;
use tollgate::audit::run::{self, AuditReport};
use tollgate::audit::{self, openreports, render};
use tollgate::git::DeployRepo;
use tollgate::policy::Level;
use tollgate::rollout::{self, RolloutReport};

use super::LiveArgs;
use super::args::any_duration;
use super::{Exit, RegistryArgs, load_policy, now, print};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Also compare the deploy repository with live state (`tollgate rollout`) and include
    /// the commits merged but not rolled out.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// With --repo: the branch that says what should run (default: the remote's default
    /// branch, else HEAD).
    #[arg(long, value_name = "REV", requires = "repo")]
    pub branch: Option<String>,
    /// With --repo: how long a merged commit may wait for its rollout.
    #[arg(long, default_value = "1h", requires = "repo", value_name = "DURATION", value_parser = any_duration)]
    pub grace: std::time::Duration,
    /// With --format openreports: results listed per Report at most; the summary still counts
    /// every result, and the annotation tollgate.dev/omitted-results says how many were left
    /// out (failures and errors are listed first, passes dropped first).
    #[arg(long, default_value_t = openreports::DEFAULT_MAX_RESULTS, value_name = "N", value_parser = at_least_one)]
    pub report_max_results: usize,
    /// Policy rules only: do not walk images in the registry.
    #[arg(long)]
    pub no_resolve: bool,
    /// Record this snapshot into the catalog as cluster NAME, as `tollgate catalog record`
    /// does, with the running digests the registry walk found unservable (or servable again)
    /// as registry events. A catalog that fails is a warning: the audit's report and exit code
    /// stay.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// With --cluster: the catalog, `sqlite:PATH` or `postgres://...`.
    // A String, parsed when used: clap would echo a refused value, password included.
    #[arg(
        long,
        env = "TOLLGATE_CATALOG",
        value_name = "URL",
        hide_env_values = true
    )]
    pub catalog: Option<String>,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `--format` of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Markdown,
    /// One self-contained page (no external assets): the summary first, a table per finding
    /// kind.
    Html,
    /// OpenReports `Report` objects (openreports.io/v1alpha1), one per workload, as a v1 List
    /// in JSON that `kubectl apply -f -` applies.
    Openreports,
}

/// A count of at least 1.
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

pub fn run(args: AuditArgs) -> anyhow::Result<Exit> {
    let record = match (&args.cluster, &args.catalog) {
        (Some(cluster), Some(catalog)) => {
            super::catalog_record::whole_cluster(&args.live.namespaces)?;
            Some((catalog.clone(), cluster.clone()))
        }
        (Some(_), None) => anyhow::bail!("--cluster records into a catalog: give --catalog"),
        (None, _) => None,
    };
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let runtime = super::runtime()?;
    let state = args.live.load()?;
    // One instant for the whole run: the rollout report and the images are judged at once.
    let now = now();
    let rollout = match &args.repo {
        Some(path) => {
            let repo = DeployRepo::discover(path)?;
            let branch = match &args.branch {
                Some(b) => b.clone(),
                None => repo.remote_head("origin").unwrap_or_else(|| "HEAD".into()),
            };
            let head = repo.commit(&branch)?;
            Some(rollout::report(
                &repo,
                &state,
                &rollout::Options {
                    branch,
                    head,
                    now,
                    grace: args.grace,
                    namespaces: &args.live.namespaces,
                },
            )?)
        }
        None => None,
    };
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
        // `tollgate audit` uses the credentials of --registry-config only.
        &Default::default(),
        inventory,
        now,
        args.registry.jobs,
        &tick,
    ));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let view = render::View {
        report: &report,
        pods: state.pods.len(),
        controllers: state.controllers.len(),
        policy: policy.name(),
        rollout: rollout.as_ref(),
    };
    let out = match args.format {
        AuditFormat::Json => render::json(&view),
        AuditFormat::Text => render::text(&view),
        AuditFormat::Markdown => render::markdown(&view),
        AuditFormat::Html => render::html(&view),
        AuditFormat::Openreports => openreports::list(&openreports::reports(
            &report,
            &state,
            &openreports::Options {
                policy: policy.name(),
                now,
                max_results: args.report_max_results,
            },
        )),
    };
    print(&out)?;
    if let Some((catalog, cluster)) = &record {
        super::catalog_record::after_audit(catalog, cluster, &state, &report, now);
    }
    Ok(exit_code(&report, rollout.as_ref()))
}

fn exit_code(report: &AuditReport, rollout: Option<&RolloutReport>) -> Exit {
    if !report.errors.is_empty() {
        Exit::Error
    } else if rollout.is_some_and(RolloutReport::has_overdue)
        || report
            .images
            .iter()
            .any(|i| i.findings.iter().any(|f| f.level == Level::Deny))
    {
        Exit::Violations
    } else {
        Exit::Clean
    }
}
