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
use tollgate::catalog::{Catalog, Create, RunFilter, Subject, render};
use tollgate::packages::Constraint;
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
    for e in &r.errors {
        let _ = writeln!(
            out,
            "error: {}: {}",
            visible(&e.subject),
            visible(&e.message)
        );
    }
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
