//! `tollgate catalog images`, `history`, `running` and `who-uses`: the questions asked after
//! an incident, answered from the catalog ([`tollgate::catalog`]), as text or JSON.

use anyhow::Context as _;
use clap::ValueEnum;
use tollgate::catalog::{Catalog, Create, RunFilter, Subject, render};

use super::super::{Exit, now, print, runtime};
use super::CatalogArgs;

pub const EXIT_CODES_HELP: &str = "\
Times are RFC 3339 (UTC). Exit codes:
  0  answered (an empty answer too)
  2  usage error, an invalid argument, or an invalid, unreachable or unmigrated catalog";

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Filters {
    /// Only runs in this cluster.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Only runs in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl Filters {
    fn runs(&self) -> RunFilter {
        RunFilter {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only repositories matching this glob (`team/*`), by path or `registry/path`.
    #[arg(long, value_name = "GLOB")]
    pub repository: Option<String>,
    #[command(flatten)]
    pub filters: Filters,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// A digest (`sha256:…`), an image by digest, a tag (`registry/app:1.2`: every digest it
    /// pointed at) or a repository (`registry/app`: every tag and version).
    #[arg(value_name = "IMAGE|DIGEST")]
    pub subject: String,
    #[command(flatten)]
    pub filters: Filters,
}

#[derive(Debug, clap::Args)]
pub struct RunningArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The time, RFC 3339 (`2026-03-10T14:00:00Z`); default now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub filters: Filters,
}

#[derive(Debug, clap::Args)]
pub struct WhoUsesArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The base: a digest, an image by digest, a tag (every digest it pointed at) or a
    /// repository (every version, and every build that declared it by name).
    #[arg(value_name = "BASE|DIGEST")]
    pub base: String,
    #[command(flatten)]
    pub filters: Filters,
}

/// Open, check the schema, ask, close.
fn ask<T>(
    args: &CatalogArgs,
    f: impl AsyncFnOnce(&Catalog) -> Result<T, tollgate::catalog::CatalogError>,
) -> anyhow::Result<T> {
    let url = args.url()?;
    let answer = runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::No).await?;
        let answer = match catalog.check_schema().await {
            Ok(()) => f(&catalog).await,
            Err(e) => Err(e),
        };
        catalog.close().await;
        answer
    });
    answer.with_context(|| format!("cannot read the catalog {url}"))
}

fn emit<T: serde::Serialize>(
    format: Format,
    answer: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<Exit> {
    match format {
        Format::Text => print(&text(answer))?,
        Format::Json => print(&(serde_json::to_string_pretty(answer)? + "\n"))?,
    }
    Ok(Exit::Clean)
}

fn subject(s: &str) -> anyhow::Result<Subject> {
    Ok(s.parse::<Subject>()?)
}

pub fn images(args: &ImagesArgs) -> anyhow::Result<Exit> {
    let glob = args
        .repository
        .as_deref()
        .map(|g| {
            globset::Glob::new(g)
                .map(|g| g.compile_matcher())
                .with_context(|| format!("--repository {g:?} is not a glob"))
        })
        .transpose()?;
    let filter = args.filters.runs();
    let repos = ask(&args.catalog, async |c| {
        c.images(glob.as_ref(), &filter).await
    })?;
    emit(args.filters.format, &repos, |r| render::images(r))
}

pub fn history(args: &HistoryArgs) -> anyhow::Result<Exit> {
    let s = subject(&args.subject)?;
    let filter = args.filters.runs();
    let h = ask(&args.catalog, async |c| c.history(&s, &filter).await)?;
    emit(args.filters.format, &h, render::history)
}

#[derive(serde::Serialize)]
struct Running {
    at: jiff::Timestamp,
    runs: Vec<tollgate::catalog::Run>,
}

pub fn running(args: &RunningArgs) -> anyhow::Result<Exit> {
    let at = match &args.at {
        Some(a) => a
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--at {a:?} is not an RFC 3339 time"))?,
        None => now(),
    };
    let f = &args.filters;
    let runs = ask(&args.catalog, async |c| {
        c.running_at(at, f.cluster.as_deref(), f.namespace.as_deref())
            .await
    })?;
    emit(f.format, &Running { at, runs }, |r| {
        render::running(r.at, &r.runs)
    })
}

pub fn who_uses(args: &WhoUsesArgs) -> anyhow::Result<Exit> {
    let s = subject(&args.base)?;
    let filter = args.filters.runs();
    let w = ask(&args.catalog, async |c| c.who_uses(&s, &filter).await)?;
    emit(args.filters.format, &w, render::who_uses)
}
