//! `tollgate catalog sync REGISTRY`: record what a registry holds in the catalog
//! ([`tollgate::catalog::sync`]). The clock is read here, once.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use tollgate::catalog::inventory::{InventoryReport, inventory_images};
use tollgate::catalog::sync::{self, SyncProblem, SyncReport};
use tollgate::catalog::{Catalog, Create};
use tollgate::reference::RegistryHost;
use tollgate::report::json::SCHEMA_VERSION;
use tollgate::report::{plural, visible};

use super::catalog::CatalogArgs;
use super::registry::{Bar, Format, repository_patterns};
use super::{Exit, RegistryArgs, load_policy, now, print, runtime};

pub const SYNC_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  every repository, tag and manifest was read and recorded
  2  usage error, invalid policy, a registry the policy does not approve or that did not
     answer, an invalid or unreachable catalog, or something that could not be read (a tag
     or manifest the registry no longer serves, a broken manifest, with --packages a layer):
     the rest was recorded";

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The registry, host[:port]; the policy must approve it.
    pub registry: String,
    /// Only repositories matching these globs (`team/*`, `**`); default all.
    #[arg(long = "repository", value_name = "PATTERN")]
    pub repositories: Vec<String>,
    /// Policy file (default: the embedded policy).
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
    /// Then read the Debian packages of every image of this registry without an inventory
    /// (`catalog inventory --registry REGISTRY`).
    #[arg(long)]
    pub packages: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a SyncReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    packages: Option<&'a InventoryReport>,
}

pub fn run(args: &SyncArgs) -> anyhow::Result<Exit> {
    if !args.registry_args.platforms.is_empty() {
        anyhow::bail!("--platform does not apply to `catalog sync`: it records every platform");
    }
    let url = args.catalog.url()?;
    let policy = Arc::new(load_policy(args.policy.as_deref())?);
    let host: RegistryHost = args
        .registry
        .parse()
        .with_context(|| format!("registry {:?}", args.registry))?;
    let patterns = repository_patterns(&args.repositories)?;
    let resolver = args.registry_args.resolver(policy)?;
    let bar = Bar::tags("synced");
    let synced_at = now();
    let jobs = args.registry_args.jobs;
    let packages = args.packages;
    let (report, inventory) = runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::No)
            .await
            .with_context(|| format!("cannot open the catalog {url}"))?;
        let report = async {
            catalog
                .check_schema()
                .await
                .with_context(|| format!("cannot use the catalog {url}"))?;
            let report = sync::sync(&catalog, &resolver, &host, &patterns, jobs, &bar, synced_at)
                .await
                .with_context(|| format!("cannot sync {host} into the catalog {url}"))?;
            let inventory = if packages {
                bar.0.finish_and_clear();
                let bar = Bar::counting("images", "inventoried");
                let inventory =
                    inventory_images(&catalog, &resolver, Some(&host), jobs, &bar, synced_at)
                        .await
                        .with_context(|| {
                            format!("cannot record packages into the catalog {url}")
                        })?;
                bar.0.finish_and_clear();
                Some(inventory)
            } else {
                None
            };
            Ok::<_, anyhow::Error>((report, inventory))
        }
        .await;
        catalog.close().await;
        report
    })?;
    bar.0.finish_and_clear();
    match args.format {
        Format::Json => print(
            &(serde_json::to_string_pretty(&SyncDoc {
                schema_version: SCHEMA_VERSION,
                report: &report,
                packages: inventory.as_ref(),
            })? + "\n"),
        )?,
        Format::Text => {
            let mut text = render_text(&report);
            if let Some(i) = &inventory {
                text.push_str(&super::catalog_packages::render_inventory(i));
            }
            print(&text)?
        }
    }
    Ok(
        if report.errors.is_empty() && inventory.is_none_or(|i| i.errors.is_empty()) {
            Exit::Clean
        } else {
            Exit::Error
        },
    )
}

/// One `error: SUBJECT: MESSAGE` line per problem, the registry's text spelled out.
pub(super) fn error_lines(out: &mut String, errors: &[SyncProblem]) {
    for e in errors {
        let _ = writeln!(
            out,
            "error: {}: {}",
            visible(&e.subject),
            visible(&e.message)
        );
    }
}

fn render_text(r: &SyncReport) -> String {
    let mut out = String::new();
    for m in &r.moved_tags {
        let _ = writeln!(out, "{}: moved from {} to {}", m.image, m.from, m.to);
    }
    error_lines(&mut out, &r.errors);
    let _ = writeln!(
        out,
        "{}: {}, {} ({} new), {}, {}, {} ({})",
        r.registry,
        plural(r.repositories, "repository", "repositories"),
        plural(r.tags, "tag", "tags"),
        r.new_tags,
        plural(r.new_manifests, "new manifest", "new manifests"),
        plural(r.moved_tags.len(), "moved tag", "moved tags"),
        plural(r.errors.len(), "error", "errors"),
        plural(r.requests as usize, "request", "requests")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_the_registry_are_spelled_out() {
        assert_eq!(visible("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(visible("team/app:1.0 ünïcode"), "team/app:1.0 ünïcode");
    }
}
