//! `tollgate catalog inventory`, `catalog packages IMAGE` and `catalog where PACKAGE
//! [CONSTRAINT]`: the Debian packages inside the catalog's images, read from their layers
//! ([`tollgate::catalog::inventory`]), and the questions asked of them. The clock is read here,
//! once.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use tollgate::catalog::inventory::{InventoryReport, inventory_images};
use tollgate::catalog::{Catalog, Create, Origin, RunFilter, SecurityFilter, Subject, render};
use tollgate::packages::{Advisories, Constraint, read_osv, read_tracker};
use tollgate::reference::RegistryHost;
use tollgate::report::json::SCHEMA_VERSION;
use tollgate::report::{plural, visible};

use super::catalog::CatalogArgs;
use super::registry::{Bar, Format};
use super::{Exit, RegistryArgs, load_policy, now, print, runtime};

pub const INVENTORY_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  every image without an inventory got one
  2  usage error, invalid policy, an invalid or unreachable catalog, or a layer that could
     not be downloaded (the registry did not answer, does not serve it, or served other
     bytes): those images were left without an inventory, to be read again; the rest was
     recorded";

pub const PACKAGES_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  answered (an empty answer too)
  2  usage error, an invalid argument, or an invalid, unreachable or unmigrated catalog";

pub const WHERE_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no image in the catalog has the package (within the constraint and filters)
  1  some image has it: listed
  2  usage error, an invalid constraint, or an invalid, unreachable or unmigrated catalog";

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Only images held in this registry (host[:port]); default every registry the catalog
    /// holds images of. The policy must approve each registry read.
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct PackagesArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// A digest, an image by digest, a tag (what it points at now) or a repository (what its
    /// tags point at now); an index stands for each of its platforms.
    #[arg(value_name = "IMAGE|DIGEST")]
    pub image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct WhereArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// A binary package (`libssl3`) or a source package (`openssl`: each binary built from
    /// it).
    pub package: String,
    /// A version constraint as dpkg writes it: `<< 3.0.14-1~deb12u2`, `<=`, `=`, `>=`, `>>`
    /// (one argument: quote it). A binary match compares the binary's version, a source
    /// match the source version.
    pub constraint: Option<String>,
    /// Only images running now (in the catalog's latest snapshots).
    #[arg(long)]
    pub running: bool,
    /// Only images running in this cluster.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Only images running in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a, T> {
    schema_version: u32,
    #[serde(flatten)]
    answer: &'a T,
}

fn json<T: Serialize>(answer: &T) -> anyhow::Result<()> {
    print(
        &(serde_json::to_string_pretty(&Doc {
            schema_version: SCHEMA_VERSION,
            answer,
        })? + "\n"),
    )
}

/// Open, check the schema, do, close.
fn with_catalog<T>(
    args: &CatalogArgs,
    f: impl AsyncFnOnce(&Catalog) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let url = args.url()?;
    runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::No)
            .await
            .with_context(|| format!("cannot open the catalog {url}"))?;
        let answer = async {
            catalog
                .check_schema()
                .await
                .with_context(|| format!("cannot use the catalog {url}"))?;
            f(&catalog).await
        }
        .await;
        catalog.close().await;
        answer
    })
}

pub fn inventory(args: &InventoryArgs) -> anyhow::Result<Exit> {
    if !args.registry_args.platforms.is_empty() {
        anyhow::bail!("--platform does not apply to `catalog inventory`: it reads every platform");
    }
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let host: Option<RegistryHost> = args
        .registry
        .as_deref()
        .map(|r| r.parse().with_context(|| format!("--registry {r:?}")))
        .transpose()?;
    let resolver = args.registry_args.resolver(policy)?;
    let bar = Bar::counting("images", "inventoried");
    let at = now();
    let jobs = args.registry_args.jobs;
    let url = args.catalog.url()?;
    let report = with_catalog(&args.catalog, async |c| {
        inventory_images(c, &resolver, host.as_ref(), jobs, &bar, at)
            .await
            .with_context(|| format!("cannot record packages into the catalog {url}"))
    })?;
    bar.0.finish_and_clear();
    match args.format {
        Format::Json => json(&report)?,
        Format::Text => print(&render_inventory(&report))?,
    }
    Ok(if report.errors.is_empty() {
        Exit::Clean
    } else {
        Exit::Error
    })
}

pub(super) fn render_inventory(r: &InventoryReport) -> String {
    let mut out = String::new();
    super::catalog_sync::error_lines(&mut out, &r.errors);
    let _ = writeln!(
        out,
        "inventory: {} of {} ({} with a dpkg database), {} read ({} bytes), {} already known, {} unreadable, {} ({})",
        plural(r.inventoried, "image", "images"),
        r.pending,
        r.with_dpkg,
        plural(r.layers_read, "layer", "layers"),
        r.bytes_read,
        r.layers_known,
        r.layers_unreadable,
        plural(r.errors.len(), "error", "errors"),
        plural(r.requests as usize, "request", "requests")
    );
    out
}

pub fn packages(args: &PackagesArgs) -> anyhow::Result<Exit> {
    let subject: Subject = args.image.parse()?;
    let answer = with_catalog(&args.catalog, async |c| Ok(c.packages_of(&subject).await?))?;
    match args.format {
        Format::Json => json(&answer)?,
        Format::Text => print(&render::packages(&answer))?,
    }
    Ok(Exit::Clean)
}

pub fn where_installed(args: &WhereArgs) -> anyhow::Result<Exit> {
    let constraint: Option<Constraint> = args
        .constraint
        .as_deref()
        .map(|c| c.parse().with_context(|| format!("constraint {c:?}")))
        .transpose()?;
    let filter = RunFilter {
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
    };
    let answer = with_catalog(&args.catalog, async |c| {
        Ok(
            c.where_installed(&args.package, constraint.as_ref(), &filter, args.running)
                .await?,
        )
    })?;
    match args.format {
        Format::Json => json(&answer)?,
        Format::Text => print(&render::where_installed(&answer))?,
    }
    Ok(if answer.images.is_empty() {
        Exit::Clean
    } else {
        Exit::Violations
    })
}

pub const IMPORT_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  imported, every entry read
  2  usage error, a file that is not the format named, an invalid or unreachable catalog,
     or entries that could not be read (listed; the rest was imported)";

pub const SECURITY_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no image needs a security update (images not checked are listed)
  1  some images need a security update: listed, grouped by the base to rebuild first
  2  usage error, or an invalid, unreachable or unmigrated catalog";

/// The largest OSV record read: real ones are a few KB.
const MAX_OSV_RECORD: u64 = 16 << 20;
/// The most OSV files read from one directory.
const MAX_OSV_FILES: usize = 1_000_000;

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// The Debian Security Tracker's JSON export (`security-tracker.debian.org/tracker/data/json`).
    #[arg(long, value_name = "FILE")]
    pub tracker: Option<PathBuf>,
    /// OSV records for the Debian ecosystem: one JSON file (a record or an array), or a
    /// directory of `*.json` records.
    #[arg(long, value_name = "PATH")]
    pub osv: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub source: Source,
    /// Keep these release codenames (`bookworm`); default: the releases of the catalog's
    /// inventoried images.
    #[arg(long = "release", value_name = "CODENAME")]
    pub releases: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `catalog security --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct SecurityArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only images running now.
    #[arg(long)]
    pub running: bool,
    /// Only images running in this cluster.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Only images running in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only advisories at least this urgent: unimportant, low, medium, high (the tracker's
    /// `not yet assigned` counts as medium).
    #[arg(long, value_name = "URGENCY", value_parser = ["end-of-life", "unimportant", "low", "medium", "high", "critical"])]
    pub urgency: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportDoc<'a> {
    origin: &'static str,
    location: String,
    releases: &'a [String],
    advisories: usize,
    errors: &'a [tollgate::packages::security::AdvisoryError],
}

fn read_osv_path(
    path: &std::path::Path,
    keep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Advisories> {
    use std::io::Read as _;
    let read_one = |p: &std::path::Path| -> anyhow::Result<Advisories> {
        let file =
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut text = Vec::new();
        file.take(MAX_OSV_RECORD + 1)
            .read_to_end(&mut text)
            .with_context(|| format!("cannot read {}", p.display()))?;
        if text.len() as u64 > MAX_OSV_RECORD {
            anyhow::bail!(
                "{} is larger than {MAX_OSV_RECORD} bytes; not read",
                p.display()
            );
        }
        read_osv(&text, keep).with_context(|| p.display().to_string())
    };
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return read_one(path);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "json") {
            files.push(p);
            if files.len() > MAX_OSV_FILES {
                anyhow::bail!(
                    "{} holds more than {MAX_OSV_FILES} records; not read",
                    path.display()
                );
            }
        }
    }
    files.sort();
    let mut all = Advisories::default();
    for f in files {
        match read_one(&f) {
            Ok(a) => {
                all.rows.extend(a.rows);
                all.errors.extend(a.errors);
            }
            // One broken record is reported; the others are still imported.
            Err(e) => all
                .errors
                .push(tollgate::packages::security::AdvisoryError {
                    at: f.display().to_string(),
                    message: format!("{e:#}"),
                }),
        }
    }
    Ok(all)
}

pub fn import(args: &ImportArgs) -> anyhow::Result<Exit> {
    let at = now();
    let (origin, path) = match (&args.source.tracker, &args.source.osv) {
        (Some(p), _) => (Origin::DebianTracker, p.clone()),
        (None, Some(p)) => (Origin::Osv, p.clone()),
        (None, None) => anyhow::bail!("name --tracker FILE or --osv PATH"),
    };
    let (releases, advisories) = with_catalog(&args.catalog, async |c| {
        let releases = if args.releases.is_empty() {
            c.inventoried_releases().await?
        } else {
            args.releases.clone()
        };
        if releases.is_empty() {
            anyhow::bail!(
                "no release to import: the catalog has no inventoried Debian image yet; run \
                 `tollgate catalog inventory` first, or name --release CODENAME"
            );
        }
        let keep = |r: &str| releases.iter().any(|k| k == r);
        let advisories = match origin {
            Origin::DebianTracker => {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                read_tracker(file, &keep).with_context(|| path.display().to_string())?
            }
            Origin::Osv => read_osv_path(&path, &keep)?,
        };
        c.import_advisories(
            origin,
            &path.display().to_string(),
            &releases,
            &advisories,
            at,
        )
        .await?;
        Ok((releases, advisories))
    })?;
    match args.format {
        Format::Json => json(&ImportDoc {
            origin: origin.as_str(),
            location: path.display().to_string(),
            releases: &releases,
            advisories: advisories.rows.len(),
            errors: &advisories.errors,
        })?,
        Format::Text => {
            let mut out = String::new();
            for e in &advisories.errors {
                let _ = writeln!(out, "error: {}: {}", visible(&e.at), visible(&e.message));
            }
            let _ = writeln!(
                out,
                "{}: {} for {} from {}, {}",
                origin.as_str(),
                plural(advisories.rows.len(), "advisory", "advisories"),
                releases.join(", "),
                path.display(),
                plural(
                    advisories.errors.len(),
                    "entry not read",
                    "entries not read"
                )
            );
            print(&out)?;
        }
    }
    Ok(if advisories.errors.is_empty() {
        Exit::Clean
    } else {
        Exit::Error
    })
}

pub fn security(args: &SecurityArgs) -> anyhow::Result<Exit> {
    let filter = SecurityFilter {
        runs: RunFilter {
            cluster: args.cluster.clone(),
            namespace: args.namespace.clone(),
        },
        running: args.running,
        min_urgency: args.urgency.clone(),
    };
    let report = with_catalog(&args.catalog, async |c| {
        Ok(c.security_report(&filter).await?)
    })?;
    match args.format {
        ReportFormat::Json => json(&report)?,
        ReportFormat::Text => print(&render::security(&report))?,
        ReportFormat::Markdown => print(&render::security_markdown(&report))?,
        ReportFormat::Html => print(&render::security_html(&report))?,
    }
    Ok(if report.images_needing_update == 0 {
        Exit::Clean
    } else {
        Exit::Violations
    })
}
