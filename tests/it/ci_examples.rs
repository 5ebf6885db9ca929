//! The CI examples of examples/ci/, run as their CI system would run them: the `tollgate` lines
//! of each file (for the workflow files, the `run:` and `script:` entries that invoke tollgate,
//! read from the parsed YAML; the shell step whole) in a real clone of a merge-request-shaped
//! history, with the variables the CI system sets. The reports they write must be where the
//! file tells the CI system to pick them up, and parse.

use std::path::Path;

use serde_json::Value;

use crate::support;
use crate::support::git::{BAD, GOOD, GitRepo, WARN_ONLY, deployment};
use crate::support::tools;

fn example(name: &str) -> (String, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let value = if name.ends_with(".yml") {
        tollgate::yaml::load_one(&text, tollgate::yaml::Record::All)
            .unwrap()
            .value
    } else {
        Value::Null
    };
    (text, value)
}

/// Whether a script runs tollgate: a line that starts with the command (installing it with
/// cargo does not count).
fn invokes_tollgate(script: &str) -> bool {
    script
        .lines()
        .any(|l| l.split_whitespace().next() == Some("tollgate"))
}

/// A clone of a repository whose `main` moves on (with a denied image of its own) after
/// `feature` branches off it with `change`; `feature` is checked out, `origin/main` known.
struct MergeRequest {
    _origin: GitRepo,
    clone: GitRepo,
}

impl MergeRequest {
    fn new(change: &[(&str, &str)]) -> MergeRequest {
        let origin = GitRepo::init();
        origin.write("apps/api.yaml", &deployment("api", GOOD));
        origin.commit("initial");
        origin.git(&["checkout", "-q", "-b", "feature"]);
        for (path, image) in change {
            let name = path.rsplit('/').next().unwrap().trim_end_matches(".yaml");
            origin.write(path, &deployment(name, image));
        }
        origin.commit("the merge request's change");
        origin.git(&["checkout", "-q", "main"]);
        origin.write("apps/legacy.yaml", &deployment("legacy", BAD));
        origin.commit("main moves on; not the merge request's");
        let clone = GitRepo::clone_from(&origin.url(), &[]);
        clone.git(&["checkout", "-q", "feature"]);
        MergeRequest {
            _origin: origin,
            clone,
        }
    }

    /// The one that adds a denied image, and an unpinned one.
    fn violating() -> MergeRequest {
        MergeRequest::new(&[("apps/web.yaml", BAD), ("apps/api.yaml", WARN_ONLY)])
    }

    /// The one that brings warnings only.
    fn clean() -> MergeRequest {
        MergeRequest::new(&[("apps/api.yaml", WARN_ONLY)])
    }

    fn merge_base(&self) -> String {
        self.clone
            .git(&["merge-base", "origin/main", "HEAD"])
            .trim()
            .to_owned()
    }

    /// Run `script` with `shell` (and its flags) in the clone, with `vars` set and the tollgate
    /// under test on PATH.
    fn sh(&self, shell: &[&str], script: &str, vars: &[(&str, &str)]) -> support::Run {
        let mut cmd = std::process::Command::new(shell[0]);
        cmd.args(&shell[1..])
            .arg(script)
            .current_dir(&self.clone.path)
            .env("PATH", support::path_with_tollgate())
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null());
        support::git::hermetic(&mut cmd);
        let out = cmd.output().unwrap();
        support::Run {
            code: out.status.code().expect("the step exited by signal"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.clone.path.join(path))
            .unwrap_or_else(|e| panic!("{path} was not written: {e}"))
    }
}

/// The SARIF log at `path`: it parses, and the rule ids of its results.
fn sarif_rules(mr: &MergeRequest, path: &str) -> Vec<String> {
    let text = mr.read(path);
    let _: serde_sarif::sarif::Sarif =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not SARIF: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut rules: Vec<String> = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

/// The JUnit report at `path`: valid under the Jenkins schema, read by junitparser as CI
/// plugins read it; its failure count.
fn junit_failures(mr: &MergeRequest, path: &str) -> usize {
    let text = mr.read(path);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, &text).unwrap();
    let xmllint = tools::debian("/usr/bin/xmllint", "libxml2-utils");
    let out = std::process::Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(tools::junit_xsd())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path} is not valid JUnit XML: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = tools::python_with("junitparser", "junitparser==5.0.3");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys; from junitparser import JUnitXml\n\
             x = JUnitXml.fromfile(sys.argv[1])\n\
             print(sum(s.tests for s in x), sum(s.failures for s in x))",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let counts = String::from_utf8_lossy(&out.stdout);
    let mut n = counts
        .split_whitespace()
        .map(|w| w.parse::<usize>().unwrap());
    let (tests, failures) = (n.next().unwrap(), n.next().unwrap());
    assert!(tests > 0, "{text}");
    failures
}

// ---- GitHub Actions ----------------------------------------------------------------------------

/// The workflow's steps that run tollgate, in order, as GitHub runs a `run:` step on Linux
/// (`bash -e`), on a pull request into main: (step name, what it printed, exit code).
fn github_steps(mr: &MergeRequest) -> Vec<(String, support::Run)> {
    let (_, wf) = example("github-actions.yml");
    let steps = wf["jobs"]["tollgate"]["steps"].as_array().unwrap();
    let mut runs = Vec::new();
    for step in steps {
        let Some(script) = step["run"].as_str().filter(|s| invokes_tollgate(s)) else {
            continue;
        };
        let run = mr.sh(
            &["bash", "-e", "-c"],
            script,
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_NAME", "pull_request"),
                ("GITHUB_BASE_REF", "main"),
                ("GITHUB_HEAD_REF", "feature"),
            ],
        );
        runs.push((step["name"].as_str().unwrap().to_owned(), run));
    }
    runs
}

/// The file the workflow uploads to code scanning, checking that the upload runs also when the
/// gate failed, and that the checkout has the history the merge base needs.
fn github_upload() -> String {
    let (_, wf) = example("github-actions.yml");
    let steps = wf["jobs"]["tollgate"]["steps"].as_array().unwrap();
    let uses = |s: &Value, action: &str| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{action}@")))
    };
    let checkout = steps.iter().find(|s| uses(s, "actions/checkout")).unwrap();
    assert_eq!(checkout["with"]["fetch-depth"], 0);
    let upload = steps
        .iter()
        .find(|s| uses(s, "github/codeql-action/upload-sarif"))
        .expect("the workflow uploads SARIF");
    assert_eq!(upload["if"], "${{ !cancelled() }}");
    assert_eq!(
        wf["jobs"]["tollgate"]["permissions"]["security-events"],
        "write"
    );
    upload["with"]["sarif_file"].as_str().unwrap().to_owned()
}

#[test]
fn the_github_actions_example_annotates_blocks_and_writes_the_sarif_it_uploads() {
    let sarif = github_upload();
    let mr = MergeRequest::violating();
    let steps = github_steps(&mr);
    let codes: Vec<(&str, i32)> = steps.iter().map(|(n, r)| (n.as_str(), r.code)).collect();
    assert_eq!(codes, [("tollgate (SARIF)", 0), ("tollgate", 1)]);
    let annotations = &steps[1].1.stdout;
    assert!(
        annotations.contains("::error file=apps/web.yaml,line=11"),
        "{annotations}"
    );
    assert!(
        annotations.contains("::warning file=apps/api.yaml"),
        "{annotations}"
    );
    assert!(!annotations.contains("apps/legacy.yaml"), "{annotations}");
    assert_eq!(
        sarif_rules(&mr, &sarif),
        ["digest-missing", "registry-not-approved"]
    );
}

#[test]
fn the_github_actions_example_passes_a_change_with_warnings_only() {
    let sarif = github_upload();
    let mr = MergeRequest::clean();
    let steps = github_steps(&mr);
    let codes: Vec<i32> = steps.iter().map(|(_, r)| r.code).collect();
    assert_eq!(codes, [0, 0], "{}", steps[1].1.stderr);
    assert!(steps[1].1.stdout.contains("::warning file=apps/api.yaml"));
    assert_eq!(sarif_rules(&mr, &sarif), ["digest-missing"]);
}

// ---- GitLab CI ---------------------------------------------------------------------------------

/// The job's `script:` entries that run tollgate, as a merge request pipeline runs them: in
/// order, the first that fails ends the job. Returns each entry's exit code and output.
fn gitlab_script(mr: &MergeRequest) -> Vec<support::Run> {
    let (_, ci) = example("gitlab-ci.yml");
    let job = &ci["tollgate"];
    assert_eq!(job["variables"]["GIT_DEPTH"], 0);
    let base = mr.merge_base();
    let mut runs = Vec::new();
    for entry in job["script"].as_array().unwrap() {
        let script = entry.as_str().unwrap();
        if !invokes_tollgate(script) {
            continue;
        }
        let run = mr.sh(
            &["bash", "-e", "-c"],
            script,
            &[
                ("GITLAB_CI", "true"),
                ("CI_PIPELINE_SOURCE", "merge_request_event"),
                ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
                ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
                ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"),
            ],
        );
        let failed = run.code != 0;
        runs.push(run);
        if failed {
            break;
        }
    }
    runs
}

/// The JUnit report the job hands GitLab, checking that it is kept also when the job fails.
fn gitlab_junit() -> String {
    let (_, ci) = example("gitlab-ci.yml");
    let artifacts = &ci["tollgate"]["artifacts"];
    assert_eq!(artifacts["when"], "always");
    artifacts["reports"]["junit"].as_str().unwrap().to_owned()
}

#[test]
fn the_gitlab_ci_example_blocks_and_keeps_the_junit_report() {
    let junit = gitlab_junit();
    let mr = MergeRequest::violating();
    let runs = gitlab_script(&mr);
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    assert_eq!(codes, [0, 1]);
    assert!(
        runs[1].stdout.contains("registry-not-approved"),
        "{}",
        runs[1].stdout
    );
    assert!(
        !runs[1].stdout.contains("apps/legacy.yaml"),
        "{}",
        runs[1].stdout
    );
    assert!(junit_failures(&mr, &junit) > 0);
}

#[test]
fn the_gitlab_ci_example_passes_a_change_with_warnings_only() {
    let junit = gitlab_junit();
    let mr = MergeRequest::clean();
    let runs = gitlab_script(&mr);
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    assert_eq!(codes, [0, 0], "{}", runs[1].stderr);
    assert!(
        runs[1].stdout.contains("digest-missing"),
        "{}",
        runs[1].stdout
    );
    assert_eq!(junit_failures(&mr, &junit), 0);
}

// ---- a generic shell step ----------------------------------------------------------------------

/// examples/ci/ci.sh, run whole by a POSIX shell, as a CI system's script step would.
fn shell_step(mr: &MergeRequest) -> support::Run {
    let (text, _) = example("ci.sh");
    assert!(invokes_tollgate(&text));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/ci.sh");
    mr.sh(&["sh"], script.to_str().unwrap(), &[])
}

#[test]
fn the_shell_step_example_blocks_and_writes_every_report() {
    let mr = MergeRequest::violating();
    let run = shell_step(&mr);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("registry-not-approved"),
        "{}",
        run.stdout
    );
    assert!(junit_failures(&mr, "tollgate-reports/tollgate.xml") > 0);
    assert_eq!(
        sarif_rules(&mr, "tollgate-reports/tollgate.sarif"),
        ["digest-missing", "registry-not-approved"]
    );
    let json: Value = serde_json::from_str(&mr.read("tollgate-reports/tollgate.json")).unwrap();
    assert_eq!(json["summary"]["files"], 2);
}

#[test]
fn the_shell_step_example_passes_a_clean_change_and_fails_on_a_base_not_in_the_clone() {
    let mr = MergeRequest::clean();
    let run = shell_step(&mr);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(junit_failures(&mr, "tollgate-reports/tollgate.xml"), 0);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/ci.sh");
    let run = mr.sh(
        &["sh"],
        script.to_str().unwrap(),
        &[("TOLLGATE_BASE", "origin/release")],
    );
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("\"origin/release\" is not in this repository"),
        "{}",
        run.stderr
    );
}
