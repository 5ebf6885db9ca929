//! Real git repositories for the git gate tests: a working repository and a bare remote in
//! temporary directories, driven by the real `git` command (so `git push` runs the real hook).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// `git` with a config that ignores the machine's and the user's settings.
pub fn git_command(dir: &Path) -> Command {
    assert!(
        Command::new("git").arg("--version").output().is_ok(),
        "git is not installed; run tests/run.sh, or `apt-get install git`"
    );
    let mut cmd = Command::new("git");
    cmd.current_dir(dir);
    hermetic(&mut cmd);
    cmd
}

/// The environment of [`git_command`], for a program that runs git itself (pre-commit).
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.org")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("NO_COLOR", "1")
        .env_remove("TOLLGATE_POLICY")
        .env_remove("RUST_LOG")
}

/// What a git command printed, and whether it succeeded.
pub struct GitRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for GitRun {
    fn from(o: Output) -> Self {
        GitRun {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A repository in a temporary directory (working or bare).
pub struct GitRepo {
    _dir: TempDir,
    pub path: PathBuf,
}

impl GitRepo {
    /// A new working repository on branch `main`.
    pub fn init() -> GitRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work");
        std::fs::create_dir(&path).unwrap();
        let r = GitRepo { _dir: dir, path };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    /// A new bare repository (a remote) whose default branch is `main`.
    pub fn bare() -> GitRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remote.git");
        std::fs::create_dir(&path).unwrap();
        let r = GitRepo { _dir: dir, path };
        r.git(&["init", "-q", "--bare", "-b", "main"]);
        r
    }

    /// A clone of `url` with extra `git clone` arguments (`--depth 1`...).
    pub fn clone_from(url: &str, args: &[&str]) -> GitRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clone");
        let mut all = vec!["clone", "-q"];
        all.extend_from_slice(args);
        all.push(url);
        all.push(path.to_str().unwrap());
        let out = GitRun::from(git_command(dir.path()).args(&all).output().unwrap());
        assert!(out.ok, "git clone failed: {}", out.stderr);
        GitRepo { _dir: dir, path }
    }

    /// `file://` URL of this repository (for shallow clones, which need a transport).
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Run git; panics when it fails.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.try_git(args);
        assert!(
            out.ok,
            "git {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Run git and return what happened.
    pub fn try_git(&self, args: &[&str]) -> GitRun {
        GitRun::from(git_command(&self.path).args(args).output().unwrap())
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.path.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Stage everything and commit; returns the new commit's sha.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.rev("HEAD")
    }

    pub fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }
}

/// A Deployment manifest with one container.
pub fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )
}

/// An image the embedded default policy accepts without any finding.
pub const GOOD: &str = "docker-registry.wikimedia.org/builds-api:0.0.131@sha256:9f2a4c0e7b1d3f5a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a";
/// An image the embedded default policy denies (registry-not-approved).
pub const BAD: &str = "docker.io/library/nginx:1.25";
/// An image that passes with a warning only (digest-missing).
pub const WARN_ONLY: &str = "docker-registry.wikimedia.org/builds-api:0.0.131";
