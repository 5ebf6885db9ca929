//! `tollgate rollout`: deploy-repo commits merged but not rolled out. Reads the repository and
//! the live state (a file or the API server) here, at the edge; the comparison is the library's.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use tollgate::git::DeployRepo;
use tollgate::rollout;

use super::Exit;
use super::LiveArgs;
use super::args::any_duration;

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
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = any_duration)]
    pub grace: Duration,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: RolloutArgs) -> anyhow::Result<Exit> {
    let grace = args.grace;
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
        Format::Text => super::print(&rollout::render::text(&report))?,
    }
    Ok(if report.has_overdue() {
        Exit::Violations
    } else {
        Exit::Clean
    })
}
