//! `tollgate catalog register-build`: a CI system records what it built, straight into the
//! catalog (the same validation as `POST /v1/builds`).

use anyhow::Context as _;
use tollgate::catalog::{BuildRequest, Catalog, Create};

use super::super::{Exit, now, print, runtime};
use super::CatalogArgs;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  recorded
  2  usage error, an invalid field (each named), or an invalid, unreachable or unmigrated
     catalog";

#[derive(Debug, clap::Args)]
pub struct RegisterBuildArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The image's digest (`sha256:…`), as the registry has it.
    #[arg(long, value_name = "DIGEST")]
    pub digest: String,
    /// Where its source lives.
    #[arg(long, value_name = "URL")]
    pub source_repository: String,
    /// The commit it was built from.
    #[arg(long, value_name = "SHA")]
    pub commit: String,
    /// Who built it (the CI system or job).
    #[arg(long, value_name = "NAME")]
    pub builder: String,
    /// When it was built, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME")]
    pub built_at: Option<String>,
    /// A parent image, `IMAGE@DIGEST` (repeatable).
    #[arg(long = "parent", value_name = "IMAGE@DIGEST")]
    pub parents: Vec<String>,
}

pub fn run(args: &RegisterBuildArgs) -> anyhow::Result<Exit> {
    let build = BuildRequest {
        digest: args.digest.clone(),
        source_repository: args.source_repository.clone(),
        commit: args.commit.clone(),
        builder: args.builder.clone(),
        built_at: args.built_at.clone(),
        parents: args.parents.clone(),
    }
    .validate()
    .context("cannot register the build")?;
    let url = args.catalog.url()?;
    let registered_at = now();
    let id = runtime()?.block_on(async {
        let catalog = Catalog::open(&url, Create::No).await?;
        let id = match catalog.check_schema().await {
            Ok(()) => catalog.record_build(&build, registered_at).await,
            Err(e) => Err(e),
        };
        catalog.close().await;
        id
    });
    let id = id.with_context(|| format!("cannot register the build in {url}"))?;
    print(&format!("registered build {id} of {}\n", build.digest))?;
    Ok(Exit::Clean)
}
