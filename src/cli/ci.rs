//! `tollgate ci`: the pre-merge check of a merge request or pull request. It checks the files
//! that changed between the merge base of `--base` and `--head`, and `--head`, as they are at
//! `--head`, exactly as `check` would check them.

use std::path::PathBuf;

use tollgate::git::DeployRepo;
use tollgate::report::sarif::{Paths, SarifOptions as Sarif};

use super::ReportArgs;
use super::check as check_cmd;
use super::gate::{self, GateOptions, Target};
use super::{Exit, RegistryArgs, load_policy, print};

#[derive(Debug, clap::Args)]
pub struct CiArgs {
    /// The branch the change will be merged into (e.g. origin/main, $CI_MERGE_REQUEST_DIFF_BASE_SHA).
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The change's head.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// The deploy repository (any path inside it).
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// Policy file, instead of the one .tollgate.yaml names (read from the head commit) or the
    /// embedded default. Pass a policy from outside the change when the change must not be able to
    /// loosen its own policy.
    #[arg(long, env = "TOLLGATE_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub output: ReportArgs,
    /// Evaluate the registry-backed rules even if .tollgate.yaml does not enable them.
    #[arg(long)]
    pub resolve: bool,
    /// A changed manifest file that holds no Kubernetes object, or a document that is not one,
    /// is an input error (exit 2) rather than a warning, even if .tollgate.yaml does not set
    /// manifests.requireObjects.
    #[arg(long)]
    pub require_objects: bool,
    /// Registry access, when the registry-backed rules run.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: CiArgs) -> anyhow::Result<Exit> {
    let repo = DeployRepo::discover(&args.repo)?;
    let head = repo.commit(&args.head)?;
    let base = repo.commit(&args.base)?;
    let merge_base = repo.merge_base(base, head, &args.base, &args.head)?;
    tracing::debug!(%base, %head, %merge_base, "ci range");
    let policy = args
        .policy
        .as_deref()
        .map(|p| load_policy(Some(p)))
        .transpose()?;
    let outcome = gate::check(
        &repo,
        &[Target {
            label: args.head.clone(),
            head,
            base: Some(merge_base),
        }],
        &GateOptions {
            policy: policy.as_ref(),
            resolve: args.resolve,
            registry: &args.registry,
            require_objects: args.require_objects,
        },
    )?;
    for w in &outcome.warnings {
        eprintln!("tollgate: warning: {w}");
    }
    print(&check_cmd::render(
        &outcome.report,
        args.output.format,
        args.output.color.enabled(),
        &Sarif {
            command: "ci",
            help_base_uri: args.output.help_base_uri.as_deref(),
            paths: Some(Paths {
                cwd: repo.root(),
                src_root: repo.root(),
            }),
        },
    ))?;
    Ok(check_cmd::exit_code(
        &outcome.report,
        args.output.fail_on_warn,
    ))
}
