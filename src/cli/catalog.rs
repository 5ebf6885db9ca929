//! `tollgate catalog migrate` and `catalog status`: the catalog's schema and what it holds
//! ([`tollgate::catalog`]). The clock is read here, once.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Subcommand;
use tollgate::catalog::{Catalog, CatalogUrl, Create, SCHEMA_VERSION};

use super::{Exit, now, print, runtime};

#[path = "catalog_build.rs"]
mod build;
#[path = "catalog_query.rs"]
mod query;
#[path = "catalog_serve.rs"]
mod serve;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done
  2  usage error, an invalid or unreachable catalog, a failed migration, or a schema newer
     than this binary knows";

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create the catalog's tables, or bring an older schema up to date, in one transaction.
    /// Prints each version applied. Refuses a schema newer than this binary knows.
    #[command(after_help = EXIT_CODES_HELP)]
    Migrate(CatalogArgs),
    /// The catalog's schema version and the rows in each table.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(CatalogArgs),
    /// Record what the cluster runs now (live state as `tollgate audit` reads it) as one
    /// snapshot: runs seen again are extended, new ones opened, gone ones closed. Prints what
    /// changed, and the containers that report no digest yet.
    #[command(after_help = super::catalog_record::RECORD_EXIT_CODES_HELP)]
    Record(super::catalog_record::RecordArgs),
    /// Delete the history older than --keep: closed runs, moved tag rows, registry events, in
    /// small batches, safe next to writers. Prints the counts.
    #[command(after_help = super::catalog_record::PRUNE_EXIT_CODES_HELP)]
    Prune(super::catalog_record::PruneArgs),
    /// Record a build (digest, source, commit, builder, parents) straight into the catalog:
    /// the CI system's way in, next to `POST /v1/builds`.
    #[command(after_help = build::EXIT_CODES_HELP)]
    RegisterBuild(build::RegisterBuildArgs),
    /// Repositories, their versions and tags, the base of each, and where each runs now.
    #[command(after_help = query::EXIT_CODES_HELP)]
    Images(query::ImagesArgs),
    /// A tag's moves, the builds, where and when each digest ran, and what the registry did,
    /// on one timeline.
    #[command(after_help = query::EXIT_CODES_HELP)]
    History(query::HistoryArgs),
    /// What ran at a time (default now), by cluster and namespace.
    #[command(after_help = query::EXIT_CODES_HELP)]
    Running(query::RunningArgs),
    /// The images built on a base (by their layers or their declared parents), and where they
    /// run.
    #[command(after_help = query::EXIT_CODES_HELP)]
    WhoUses(query::WhoUsesArgs),
    /// The JSON API, `POST /v1/builds` and the read-only web page, over plain HTTP.
    #[command(after_help = serve::EXIT_CODES_HELP)]
    Serve(serve::ServeArgs),
    /// Record what a registry holds: repositories, tag history, and every manifest not yet in
    /// the catalog (index children and platforms; config created time, labels, os/arch;
    /// layers with sizes). A digest already recorded is never fetched again.
    #[command(after_help = super::catalog_sync::SYNC_EXIT_CODES_HELP)]
    Sync(super::catalog_sync::SyncArgs),
    /// Read the Debian packages of every image the catalog holds without an inventory, from
    /// its layers (never run): each layer is downloaded at most once across the catalog,
    /// streamed and hash-checked. Prints what was read.
    #[command(after_help = super::catalog_packages::INVENTORY_EXIT_CODES_HELP)]
    Inventory(super::catalog_packages::InventoryArgs),
    /// The installed packages of an image (each platform), and the layer that brought each
    /// version in.
    #[command(after_help = super::catalog_packages::PACKAGES_EXIT_CODES_HELP)]
    Packages(super::catalog_packages::PackagesArgs),
    /// The images that have a package (binary or source), optionally within a version
    /// constraint (`'<< 3.0.14-1~deb12u2'`), with their tags and where they run.
    #[command(after_help = super::catalog_packages::WHERE_EXIT_CODES_HELP)]
    Where(super::catalog_packages::WhereArgs),
    /// Import security data (the Debian Security Tracker's JSON export, or OSV records) into
    /// the catalog, replacing the previous import of that source, for the releases the
    /// catalog's images run.
    #[command(after_help = super::catalog_packages::IMPORT_EXIT_CODES_HELP)]
    ImportAdvisories(super::catalog_packages::ImportArgs),
    /// Which images need a rebuild for a security fix, grouped by the base (or layer) to
    /// rebuild first, with where each runs; known issues without a fix, and images not
    /// checked, listed apart.
    #[command(after_help = super::catalog_packages::SECURITY_EXIT_CODES_HELP)]
    Security(super::catalog_packages::SecurityArgs),
}

#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// `sqlite:PATH`, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (a password is better
    /// passed in the variable than on a command line, which other users can read).
    // A String, parsed in `run`: clap would echo a refused value, password included.
    #[arg(
        long,
        env = "TOLLGATE_CATALOG",
        value_name = "URL",
        hide_env_values = true
    )]
    pub catalog: String,
}

impl CatalogArgs {
    pub(super) fn url(&self) -> anyhow::Result<CatalogUrl> {
        Ok(self.catalog.parse::<CatalogUrl>()?)
    }
}

pub fn run(cmd: CatalogCommand) -> anyhow::Result<Exit> {
    match cmd {
        CatalogCommand::Migrate(args) => migrate(&args),
        CatalogCommand::Status(args) => status(&args),
        CatalogCommand::Record(args) => super::catalog_record::run_record(args),
        CatalogCommand::Prune(args) => super::catalog_record::run_prune(args),
        CatalogCommand::RegisterBuild(args) => build::run(&args),
        CatalogCommand::Images(args) => query::images(&args),
        CatalogCommand::History(args) => query::history(&args),
        CatalogCommand::Running(args) => query::running(&args),
        CatalogCommand::WhoUses(args) => query::who_uses(&args),
        CatalogCommand::Serve(args) => serve::run(&args),
        CatalogCommand::Sync(args) => super::catalog_sync::run(&args),
        CatalogCommand::Inventory(args) => super::catalog_packages::inventory(&args),
        CatalogCommand::Packages(args) => super::catalog_packages::packages(&args),
        CatalogCommand::Where(args) => super::catalog_packages::where_installed(&args),
        CatalogCommand::ImportAdvisories(args) => super::catalog_packages::import(&args),
        CatalogCommand::Security(args) => super::catalog_packages::security(&args),
    }
}

fn migrate(args: &CatalogArgs) -> anyhow::Result<Exit> {
    let url = args.url()?;
    let applied_at = now();
    let applied = runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::IfMissing).await?;
        let applied = catalog.migrate(applied_at).await;
        catalog.close().await;
        applied
    });
    let applied = applied.with_context(|| format!("cannot migrate the catalog {url}"))?;
    let mut out = String::new();
    for a in &applied {
        writeln!(out, "applied migration {} ({})", a.version, a.name)?;
    }
    if applied.is_empty() {
        writeln!(out, "{url}: schema version {SCHEMA_VERSION}, up to date")?;
    } else {
        writeln!(out, "{url}: schema version {SCHEMA_VERSION}")?;
    }
    print(&out)?;
    Ok(Exit::Clean)
}

fn status(args: &CatalogArgs) -> anyhow::Result<Exit> {
    let url = args.url()?;
    let status = runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::No).await?;
        let status = catalog.status().await;
        catalog.close().await;
        status
    });
    let status = status.with_context(|| format!("cannot read the catalog {url}"))?;
    let mut out = format!(
        "{url} ({}): schema version {}\n",
        url.backend(),
        status.schema_version
    );
    let width = status.rows.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    for (table, rows) in &status.rows {
        writeln!(out, "  {table:<width$}  {rows}")?;
    }
    print(&out)?;
    Ok(Exit::Clean)
}
