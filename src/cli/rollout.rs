//! `tollgate rollout`: deploy-repo commits merged but not rolled out. Reads the repository and
//! the live state (a file or the API server) here, at the edge; the comparison is the library's.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueEnum;
use tollgate::git::DeployRepo;
use tollgate::rollout::{self, ReportCommit, RolloutReport, Status};

use super::Exit;
use super::live::LiveArgs;

pub const ROLLOUT_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  every commit is rolled out, or only within the grace period
  1  a commit older than the grace period is not rolled out
  2  usage error, unreadable repository or live-state file, unreachable API server";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = ROLLOUT_EXIT_CODES_HELP)]
pub struct RolloutArgs {
    /// The deploy repository.
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (or any revision) that declares what should run [default: the remote's default
    /// branch, from refs/remotes/origin/HEAD, else HEAD].
    #[arg(long, value_name = "REV")]
    pub branch: Option<String>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// How long a merged commit may wait for its rollout before it counts (30m, 1h, 2h30m...).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub grace: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: RolloutArgs) -> anyhow::Result<Exit> {
    let grace = parse_grace(&args.grace)?;
    let repo = DeployRepo::discover(&args.repo)?;
    let branch = match &args.branch {
        Some(b) => b.clone(),
        None => repo.remote_head("origin").unwrap_or_else(|| "HEAD".into()),
    };
    let head = repo.commit(&branch)?;
    let live = args.live.load()?;
    let report = rollout::report(
        &repo,
        &live,
        &rollout::Options {
            branch,
            head,
            now: super::now(),
            grace,
            namespaces: &args.live.namespaces,
        },
    )?;
    match args.format {
        Format::Json => super::print(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        Format::Text => super::print(&render_text(&report))?,
    }
    Ok(if report.has_overdue() {
        Exit::Violations
    } else {
        Exit::Clean
    })
}

pub(super) fn parse_grace(text: &str) -> anyhow::Result<std::time::Duration> {
    let d: jiff::SignedDuration = text
        .parse()
        .with_context(|| format!("--grace {text:?} is not a duration like 30m or 1h"))?;
    std::time::Duration::try_from(d)
        .ok()
        .with_context(|| format!("--grace {text:?} must not be negative"))
}

fn render_text(report: &RolloutReport) -> String {
    let mut out = String::new();
    let short = |sha: &str| sha[..sha.len().min(12)].to_owned();
    for w in report
        .workloads
        .iter()
        .filter(|w| w.status != Status::InSync)
    {
        let state = match w.status {
            Status::NotLive => "declared but not running",
            _ => "not rolled out",
        };
        let _ = writeln!(out, "{}: {state} ({})", w.workload, w.files.join(", "));
        for p in &w.images {
            let _ = writeln!(
                out,
                "  {}desired {}, live {}",
                p.container
                    .as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default(),
                p.desired,
                p.live.as_deref().unwrap_or("-"),
            );
        }
        for c in &w.not_rolled_out {
            let mark = if c.overdue {
                "not rolled out"
            } else {
                "pending (within grace)"
            };
            let _ = writeln!(out, "  {mark}: {}", commit_line(c, &short));
        }
        match &w.deployed_revision {
            Some(c) => {
                let _ = writeln!(out, "  deployed revision: {}", commit_line(c, &short));
            }
            None => {
                let _ = writeln!(out, "  deployed revision: none found on {}", report.branch);
            }
        }
    }
    let in_sync = report
        .workloads
        .iter()
        .filter(|w| w.status == Status::InSync)
        .count();
    let _ = writeln!(
        out,
        "{} workloads on {} ({}): {} in sync, {} behind; {} commits not rolled out after the \
         {:#} grace period",
        report.workloads.len(),
        report.branch,
        short(&report.head),
        in_sync,
        report.workloads.len() - in_sync,
        report.overdue_commits(),
        jiff::SignedDuration::from_secs(report.grace_seconds as i64),
    );
    out
}

fn commit_line(c: &ReportCommit, short: &impl Fn(&str) -> String) -> String {
    format!(
        "{} {:?} by {} at {} ({} ago)",
        short(&c.sha),
        c.subject,
        c.author,
        c.time,
        age(c.age_seconds)
    )
}

/// A rounded age for people: 3d 4h, 2h 5m, 12m, 40s.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::seconds(40, "40s")]
    #[case::minutes(12 * 60 + 5, "12m")]
    #[case::hours(2 * 3600 + 5 * 60, "2h 5m")]
    #[case::days(3 * 86_400 + 4 * 3600 + 59, "3d 4h")]
    #[case::future_commit(-30, "0s")]
    fn ages(#[case] secs: i64, #[case] text: &str) {
        assert_eq!(age(secs), text);
    }

    #[rstest]
    #[case("1h", Some(3600))]
    #[case("30m", Some(1800))]
    #[case("2h30m", Some(9000))]
    #[case("soon", None)]
    #[case("-1h", None)]
    fn grace_periods(#[case] text: &str, #[case] secs: Option<u64>) {
        assert_eq!(parse_grace(text).ok().map(|d| d.as_secs()), secs);
    }
}
