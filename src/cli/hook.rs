//! `tollgate hook`: the deploy repository's git pre-push hook, and its installation.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tollgate::git::DeployRepo;
use tollgate::git::push::{self, Plan};
use tollgate::report::sarif::{Paths, SarifOptions as Sarif};

use super::ReportArgs;
use super::check as check_cmd;
use super::gate::{self, GateOptions, Target};
use super::{Exit, RegistryArgs, load_policy};

/// The line that marks a hook as tollgate's own, so that `install` rewrites only hooks it wrote.
const MARKER: &str = "# tollgate-managed pre-push hook";

#[derive(Debug, clap::Subcommand)]
pub enum HookCommand {
    /// Write the repository's pre-push hook (in core.hooksPath when set). A hook that tollgate
    /// did not write is left alone unless --force is given (then it is kept as
    /// pre-push.tollgate-backup).
    Install(InstallArgs),
    /// Remove the pre-push hook, if tollgate wrote it.
    Uninstall(RepoArg),
    /// Run as git's pre-push hook: read git's pre-push input on stdin and check the files
    /// changed in what is being pushed, as they are in the pushed commits. Deny-level findings
    /// and files that cannot be checked block the push; warnings are shown and the push goes on.
    #[command(after_help = super::EXIT_CODES_HELP)]
    PrePush(PrePushArgs),
}

#[derive(Debug, clap::Args)]
pub struct RepoArg {
    /// The deploy repository (any path inside it).
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Replace an existing pre-push hook that tollgate did not write.
    #[arg(long)]
    pub force: bool,
    /// The command the hook runs [default: the absolute path of this tollgate binary]; e.g.
    /// `tollgate` to use whichever is on PATH.
    #[arg(long, value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PrePushArgs {
    /// The remote's name, as git passes it (its remote-tracking refs give the default branch
    /// that new branches are compared with).
    #[arg(default_value = "origin")]
    pub remote: String,
    /// The remote's URL, as git passes it (not used).
    pub url: Option<String>,
    #[command(flatten)]
    pub repo: RepoArg,
    /// Policy file, instead of the one .tollgate.yaml names or the embedded default.
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

pub fn run(command: HookCommand) -> anyhow::Result<Exit> {
    match command {
        HookCommand::Install(a) => install(a),
        HookCommand::Uninstall(a) => uninstall(a),
        HookCommand::PrePush(a) => pre_push(a),
    }
}

fn hook_path(repo: &Path) -> anyhow::Result<PathBuf> {
    let repo = DeployRepo::discover(repo)?;
    Ok(repo.hooks_dir()?.join("pre-push"))
}

fn is_ours(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(MARKER))
}

fn install(args: InstallArgs) -> anyhow::Result<Exit> {
    let path = hook_path(&args.repo.repo)?;
    let command = match args.command {
        Some(c) => c,
        None => std::env::current_exe()
            .context("cannot find this tollgate binary's path; pass --command")?
            .display()
            .to_string(),
    };
    if path.exists() && !is_ours(&path) {
        if !args.force {
            eprintln!(
                "tollgate: {} exists and was not written by tollgate; left as it is. Call \
                 `{} hook pre-push \"$@\"` from it (git's input is on its stdin), or run \
                 `tollgate hook install --force` to replace it (the old hook is kept as \
                 pre-push.tollgate-backup).",
                path.display(),
                shell_quote(&command)
            );
            return Ok(Exit::Error);
        }
        let backup = path.with_file_name("pre-push.tollgate-backup");
        std::fs::rename(&path, &backup)
            .with_context(|| format!("cannot move {} aside", path.display()))?;
        eprintln!("tollgate: kept the previous hook as {}", backup.display());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let script = format!(
        "#!/bin/sh\n{MARKER} (written by `tollgate hook install`;\n# \
         `tollgate hook uninstall` removes it). git passes the remote's name and URL as\n# \
         arguments and the pushed refs on stdin.\nexec {} hook pre-push \"$@\"\n",
        shell_quote(&command)
    );
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    make_executable(&path)?;
    eprintln!(
        "tollgate: installed the pre-push hook at {}",
        path.display()
    );
    Ok(Exit::Clean)
}

fn uninstall(args: RepoArg) -> anyhow::Result<Exit> {
    let path = hook_path(&args.repo)?;
    if !path.exists() {
        eprintln!("tollgate: no pre-push hook at {}", path.display());
        return Ok(Exit::Clean);
    }
    if !is_ours(&path) {
        eprintln!(
            "tollgate: {} was not written by tollgate; left as it is",
            path.display()
        );
        return Ok(Exit::Error);
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    eprintln!("tollgate: removed {}", path.display());
    Ok(Exit::Clean)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Quote for a POSIX shell: single quotes, with embedded ones closed, escaped and reopened.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn pre_push(args: PrePushArgs) -> anyhow::Result<Exit> {
    let repo = DeployRepo::discover(&args.repo.repo)?;
    let mut pushed = Vec::new();
    if !std::io::stdin().is_terminal() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read git's pre-push input from stdin")?;
        pushed = push::parse(&input)?;
    }
    let mut remote = args.remote.clone();
    if pushed.is_empty()
        && let Some(p) = push::from_pre_commit_env(|k| std::env::var(k).ok())
    {
        pushed.push(p.resolve(&repo)?);
        if let Ok(r) = std::env::var("PRE_COMMIT_REMOTE_NAME") {
            remote = r;
        }
    }
    let mut targets = Vec::new();
    for p in &pushed {
        match push::plan(&repo, &remote, p)? {
            Plan::Skip { reason } => eprintln!("tollgate: {reason}: nothing to check"),
            Plan::Check {
                label,
                head,
                base,
                base_from,
            } => {
                tracing::debug!(%label, %head, ?base, ?base_from, "pushed ref");
                targets.push(Target { label, head, base });
            }
        }
    }
    let policy = args
        .policy
        .as_deref()
        .map(|p| load_policy(Some(p)))
        .transpose()?;
    let outcome = gate::check(
        &repo,
        &targets,
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
    // The report goes where git writes its own messages to the person pushing: stderr (git
    // passes a pre-push hook's stdout through to its own stdout, which scripts may parse).
    eprint!(
        "{}",
        check_cmd::render(
            &outcome.report,
            args.output.format,
            args.output.color.enabled_on_stderr(),
            &Sarif {
                command: "hook",
                help_base_uri: args.output.help_base_uri.as_deref(),
                paths: Some(Paths {
                    cwd: repo.root(),
                    src_root: repo.root(),
                }),
            },
        )
    );
    let exit = check_cmd::exit_code(&outcome.report, args.output.fail_on_warn);
    match exit {
        Exit::Violations => eprintln!(
            "tollgate: push blocked: deny-level findings above. Fix them and push again (the \
             admission webhook would refuse these images too); `tollgate explain IMAGE` shows \
             why an image fails. To push anyway: git push --no-verify."
        ),
        Exit::Error => eprintln!(
            "tollgate: push blocked: some files could not be checked (see above). Fix them and \
             push again; to push anyway: git push --no-verify."
        ),
        Exit::Clean => {}
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::plain("/usr/local/bin/tollgate", "/usr/local/bin/tollgate")]
    #[case::space("/opt/my tools/tollgate", "'/opt/my tools/tollgate'")]
    #[case::quote("/o'neil/tollgate", r"'/o'\''neil/tollgate'")]
    #[case::dollar("/x/$HOME/t", "'/x/$HOME/t'")]
    fn shell_quoting(#[case] raw: &str, #[case] quoted: &str) {
        assert_eq!(shell_quote(raw), quoted);
    }
}
