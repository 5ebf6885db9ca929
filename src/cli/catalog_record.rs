//! `tollgate catalog record` and `catalog prune`, and the recording `tollgate audit --cluster`
//! does after its run: live state into the catalog as one snapshot, registry events from the
//! audit's walk, and retention. The clock is read here, once per command.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::json;
use tollgate::audit::run::AuditReport;
use tollgate::audit::servability;
use tollgate::catalog::{
    Catalog, CatalogUrl, Create, EventsRecorded, Pending, Pruned, Recorded, sightings,
};
use tollgate::cluster::LiveState;

use super::args::positive_duration;
use super::catalog::CatalogArgs;
use super::{Exit, LiveArgs, now, print, runtime};

pub const RECORD_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the snapshot was recorded (or was stale: the catalog holds a later one of this cluster)
  2  usage error, unreadable live state, an API server that did not answer, or an invalid or
     unreachable catalog";

pub const PRUNE_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  pruned (or counted, with --dry-run)
  2  usage error, or an invalid or unreachable catalog";

/// Output format of `record` and `prune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The name the cluster is recorded under (`prod-eqiad`): one catalog holds many clusters.
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Keep this much history (`400d`): closed runs, moved tag rows and registry events that
    /// ended longer ago are deleted. Open runs, current tags and each digest's latest event
    /// are never deleted.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub keep: Duration,
    /// Count what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A snapshot is the whole cluster: one of some namespaces would close the runs of the others.
pub fn whole_cluster(namespaces: &[String]) -> anyhow::Result<()> {
    if !namespaces.is_empty() {
        anyhow::bail!(
            "a catalog snapshot is the whole cluster: drop --namespace (a snapshot of some \
             namespaces would close the runs of all the others)"
        );
    }
    Ok(())
}

/// What one recording did, for the output.
struct Snapshot {
    recorded: Recorded,
    pending: Vec<Pending>,
    events: Option<EventsRecorded>,
}

/// Record `state` (and, with a report, the registry events its walks found) as cluster
/// `cluster` at `at`.
fn record(
    url: &CatalogUrl,
    cluster: &str,
    state: &LiveState,
    report: Option<&AuditReport>,
    at: jiff::Timestamp,
) -> anyhow::Result<Snapshot> {
    let seen = sightings(state);
    let found = report.map(servability);
    let (recorded, events) = runtime()?.block_on(async {
        let catalog = Catalog::open(url, Create::No).await?;
        let done = async {
            catalog.check_schema().await?;
            let recorded = catalog.record_runs(cluster, &seen.runs, at).await?;
            let events = match &found {
                Some(f) => Some(catalog.record_servability(f, at).await?),
                None => None,
            };
            Ok::<_, tollgate::catalog::CatalogError>((recorded, events))
        }
        .await;
        catalog.close().await;
        done
    })?;
    Ok(Snapshot {
        recorded,
        pending: seen.pending,
        events,
    })
}

/// `t` to the second: what the catalog stores, so that the time printed is the time recorded.
fn to_second(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(cluster: &str, at: jiff::Timestamp, s: &Snapshot) -> String {
    let r = &s.recorded;
    if r.stale {
        return format!(
            "cluster {cluster} at {at}: stale, the catalog holds a later snapshot of it; nothing changed\n"
        );
    }
    let mut out = format!(
        "cluster {cluster} at {at}: {} opened, {} extended, {} closed\n",
        plural(r.opened, "run", "runs"),
        r.extended,
        r.closed
    );
    if let Some(e) = &s.events {
        let _ = writeln!(
            out,
            "registry events: {} newly unservable, {} still unservable, {} servable again",
            e.unservable, e.still_unservable, e.servable
        );
    }
    if !s.pending.is_empty() {
        let pods: u32 = s.pending.iter().map(|p| p.pods).sum();
        let _ = writeln!(
            out,
            "{} without a digest yet (not recorded):",
            plural(pods as usize, "container", "containers")
        );
        for p in &s.pending {
            let _ = writeln!(
                out,
                "  {} {}/{} {}: {}",
                p.namespace,
                p.controller_kind,
                p.controller_name,
                p.container,
                plural(p.pods as usize, "pod", "pods")
            );
        }
    }
    out
}

fn snapshot_json(cluster: &str, at: jiff::Timestamp, s: &Snapshot) -> serde_json::Value {
    let r = &s.recorded;
    let mut v = json!({
        "cluster": cluster,
        "recordedAt": at.to_string(),
        "stale": r.stale,
        "opened": r.opened,
        "extended": r.extended,
        "closed": r.closed,
        "pending": s.pending,
    });
    if let Some(e) = &s.events {
        v["registryEvents"] = json!(e);
    }
    v
}

pub fn run_record(args: RecordArgs) -> anyhow::Result<Exit> {
    whole_cluster(&args.live.namespaces)?;
    let url = args.catalog.url()?;
    let state = args.live.load()?;
    let at = to_second(now());
    let s = record(&url, &args.cluster, &state, None, at)
        .with_context(|| format!("cannot record into the catalog {url}"))?;
    let out = match args.format {
        Format::Text => summary(&args.cluster, at, &s),
        Format::Json => format!("{:#}\n", snapshot_json(&args.cluster, at, &s)),
    };
    print(&out)?;
    Ok(Exit::Clean)
}

/// After `tollgate audit --cluster NAME`: record the snapshot it read and what its walks found.
/// A catalog that fails does not fail the audit: its report is out already; the failure is
/// one warning line on stderr.
pub fn after_audit(
    catalog: &str,
    cluster: &str,
    state: &LiveState,
    report: &AuditReport,
    at: jiff::Timestamp,
) {
    let at = to_second(at);
    let done = catalog
        .parse::<CatalogUrl>()
        .map_err(anyhow::Error::from)
        .and_then(|url| {
            record(&url, cluster, state, Some(report), at)
                .with_context(|| format!("cannot record into the catalog {url}"))
        });
    match done {
        Ok(s) => {
            for line in summary(cluster, at, &s).lines() {
                eprintln!("tollgate: catalog: {line}");
            }
        }
        Err(e) => eprintln!("tollgate: warning: {e:#}"),
    }
}

pub fn run_prune(args: PruneArgs) -> anyhow::Result<Exit> {
    let url = args.catalog.url()?;
    let at = now();
    let keep = jiff::SignedDuration::try_from(args.keep)
        .ok()
        .and_then(|d| at.checked_sub(d).ok())
        .context("--keep reaches before the year -9999")?;
    let pruned: Pruned = runtime()?
        .block_on(async {
            let catalog = Catalog::open(&url, Create::No).await?;
            let done = async {
                catalog.check_schema().await?;
                catalog.prune(keep, args.dry_run).await
            }
            .await;
            catalog.close().await;
            done
        })
        .with_context(|| format!("cannot prune the catalog {url}"))?;
    let out = match args.format {
        Format::Json => format!(
            "{:#}\n",
            json!({"cutoff": keep.to_string(), "dryRun": args.dry_run, "deleted": pruned})
        ),
        Format::Text => {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            format!(
                "history that ended before {keep}: {verb} {} closed runs, {} moved tag rows, {} registry events\n",
                pruned.runs, pruned.tag_history, pruned.registry_events
            )
        }
    };
    print(&out)?;
    Ok(Exit::Clean)
}
