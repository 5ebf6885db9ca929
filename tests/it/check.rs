//! `tollgate check` through the real binary: formats, exit codes, bad input.

use rstest::rstest;
use serde_json::Value;

use crate::support::{run, run_stdin, tollgate};

#[rstest]
#[case::violations("tests/fixtures/mixed", 1)]
#[case::clean_with_a_warning("tests/fixtures/clean", 0)]
#[case::compliant_file("tests/fixtures/clean/ok.yml", 0)]
#[case::parse_errors_win_over_findings("tests/fixtures/broken", 2)]
#[case::missing_path("tests/fixtures/does-not-exist", 2)]
fn exit_codes(#[case] path: &str, #[case] code: i32) {
    let r = run(&["check", path]);
    assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
}

#[test]
fn fail_on_warn_turns_warnings_into_exit_1() {
    assert_eq!(run(&["check", "tests/fixtures/clean"]).code, 0);
    assert_eq!(
        run(&["check", "--fail-on-warn", "tests/fixtures/clean"]).code,
        1
    );
}

#[rstest]
#[case::text("text")]
#[case::json("json")]
#[case::sarif("sarif")]
#[case::junit("junit")]
#[case::github("github")]
fn each_format_renders_the_mixed_fixtures(#[case] format: &str) {
    let r = run(&["check", "--format", format, "tests/fixtures/mixed"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // SARIF names the checkout's root (%SRCROOT%), which differs from machine to machine.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let out = r
        .stdout
        .replace(&format!("file://{}/", root.display()), "file://[ROOT]/");
    insta::assert_snapshot!(format!("mixed_{format}"), out);
}

#[test]
fn the_sample_deploy_repo_shows_its_known_incidents() {
    let r = run(&["check", "examples/deploy-repo"]);
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("deploy_repo_text", r.stdout);
}

#[test]
fn a_broken_file_is_reported_with_line_and_column_and_the_rest_is_checked() {
    let r = run(&["check", "--format", "json", "tests/fixtures/broken"]);
    assert_eq!(r.code, 2);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let errors: Vec<(String, u64, u64)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_owned(),
                e["line"].as_u64().unwrap(),
                e["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("tests/fixtures/broken/a-bad.yaml".to_owned(), 16, 5),
            (
                "tests/fixtures/broken/b-duplicate-key.yaml".to_owned(),
                8,
                7
            ),
        ]
    );
    // The documents before and after the broken one, and the other files, are still checked.
    let objects: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(objects, vec!["fine", "after-the-break", "other-file"]);
    assert!(
        report["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"image\"")
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clean/warn-only.yaml"
    ))
    .unwrap();
    let r = run_stdin(&["check", "--format", "json", "-"], &manifest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["findings"][0]["location"]["file"], "<stdin>");
    assert_eq!(report["findings"][0]["location"]["line"], 7);
    assert_eq!(report["findings"][0]["ruleId"], "digest-missing");
}

#[test]
fn a_directory_walk_takes_yaml_yml_and_json_but_an_explicit_file_is_read_whatever_its_name() {
    let r = run(&["check", "--format", "json", "tests/fixtures/mixed"]);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["summary"]["files"], 2, "notes.txt is skipped");
    let r = run(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/mixed/notes.txt",
    ]);
    assert_eq!(
        r.code, 0,
        "a plain-text file holds no workload: {}",
        r.stdout
    );
}

#[test]
fn objects_without_a_namespace_take_the_namespace_flag() {
    let policy = "tests/fixtures/policies/exemptions.yaml";
    let r = run(&[
        "check",
        "--policy",
        policy,
        "--format",
        "json",
        "tests/fixtures/mixed/workloads.yaml",
    ]);
    let before: Value = serde_json::from_str(&r.stdout).unwrap();
    let r = run(&[
        "check",
        "--policy",
        policy,
        "--namespace",
        "kube-system",
        "--format",
        "json",
        "tests/fixtures/mixed/workloads.yaml",
    ]);
    let after: Value = serde_json::from_str(&r.stdout).unwrap();
    // The Pod "debug" has no namespace: in kube-system the exemption covers it.
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["object"]["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(names(&before, "findings").contains(&"debug".to_owned()));
    assert!(!names(&after, "findings").contains(&"debug".to_owned()));
    assert!(names(&after, "exempted").contains(&"debug".to_owned()));
    assert_eq!(
        after["exempted"][0]["exemption"]["reason"],
        "control plane components"
    );
}

#[test]
fn exemptions_and_expired_exemptions_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: legacy}\nspec:\n  containers:\n    - {name: a, image: nginx}\n",
    )
    .unwrap();
    let r = run(&[
        "check",
        "--policy",
        "tests/fixtures/policies/exemptions.yaml",
        "--format",
        "json",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "both remaining findings are warn-level");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ruleId"].as_str().unwrap())
        .collect();
    // The image exemption (until 2099) covers registry and tag; the expired namespace
    // exemption no longer covers digest-missing, and is itself reported.
    assert_eq!(rules, vec!["digest-missing", "exemption-expired"]);
    let expired = &report["findings"][1];
    assert_eq!(
        expired["location"]["file"],
        "tests/fixtures/policies/exemptions.yaml"
    );
    assert_eq!(expired["location"]["line"], 15);
    assert!(
        report["findings"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("expired on 2020-01-01")
    );
    assert_eq!(report["summary"]["exempted"], 2);
}

#[test]
fn an_invalid_policy_is_exit_2_with_every_problem() {
    let r = run(&[
        "check",
        "--policy",
        "tests/fixtures/policies/invalid.yaml",
        "tests/fixtures/clean",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty());
    for needle in [
        ":7:17: level \"block\"",
        ":8:21: level [\"deny\"]",
        ":9:19: unknown rule id \"no-such-rule\"",
        ":13:14: unknown key \"extra\"",
    ] {
        assert!(
            r.stderr.contains(needle),
            "{needle} missing from:\n{}",
            r.stderr
        );
    }
}

#[rstest]
#[case::no_paths(&["check"])]
#[case::unknown_format(&["check", "--format", "xml", "."])]
#[case::unknown_flag(&["check", "--frobnicate", "."])]
#[case::no_subcommand(&[])]
fn usage_errors_exit_2(#[case] args: &[&str]) {
    assert_eq!(run(args).code, 2);
}

#[test]
fn help_documents_the_exit_codes() {
    let r = run(&["check", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit codes:"));
    assert!(r.stdout.contains("1  deny-level findings"));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    // Enough findings to fill the pipe buffer, and a reader that goes away at once.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  containers:\n    - {{name: a, image: nginx}}\n"));
    }
    std::fs::write(dir.path().join("many.yaml"), text).unwrap();
    let mut child = tollgate(&["check", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sarif_has_the_structure_code_scanning_needs() {
    let r = run(&[
        "check",
        "--format",
        "sarif",
        "tests/fixtures/mixed",
        "tests/fixtures/broken",
    ]);
    assert_eq!(r.code, 2);
    // serde-sarif's types are generated from the SARIF 2.1.0 schema: the log must deserialize.
    let log: serde_sarif::sarif::Sarif =
        serde_json::from_str(&r.stdout).expect("valid SARIF 2.1.0 structure");
    assert_eq!(log.version, serde_json::json!("2.1.0"));
    let raw: Value = serde_json::from_str(&r.stdout).unwrap();
    let run = &raw["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            rules[index]["id"], res["ruleId"],
            "ruleIndex points at the rule"
        );
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("tests/fixtures/"),
            "relative URI for code scanning: {uri}"
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(!res["message"]["text"].as_str().unwrap().is_empty());
    }
    let inv = &run["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(
        inv["toolExecutionNotifications"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn json_report_follows_the_documented_schema() {
    let r = run(&["check", "--format", "json", "tests/fixtures/mixed"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schemaVersion"], 1);
    for key in [
        "tool", "policy", "summary", "findings", "exempted", "errors", "objects",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
        "files", "objects", "images", "deny", "warn", "audit", "exempted", "errors",
    ] {
        assert!(v["summary"][key].is_u64(), "summary.{key}");
    }
    let f = &v["findings"][0];
    for key in [
        "ruleId",
        "level",
        "message",
        "hint",
        "location",
        "object",
        "container",
        "image",
    ] {
        assert!(f.get(key).is_some(), "finding.{key}");
    }
    assert!(f["location"]["pointer"].as_str().unwrap().starts_with('/'));
}

/// The README shows real output: each `console` block's `$ tollgate ...` command, run from the
/// repository's root, prints exactly the lines under it.
#[test]
fn the_readme_shows_the_binary_s_real_output() {
    let readme = include_str!("../../README.md");
    let mut blocks = 0;
    for block in readme.split("```console\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        let (command, expected) = block.split_once('\n').unwrap();
        let args: Vec<&str> = command
            .strip_prefix("$ tollgate ")
            .unwrap_or_else(|| panic!("{command}"))
            .split_whitespace()
            .collect();
        let r = run(&args);
        assert_eq!(r.stdout, expected, "README: {command}");
        blocks += 1;
    }
    assert!(blocks > 0, "the README has no console example");
}

/// Logs redirected to a file or a pipe carry no colour codes (a `serve` log in a file did).
#[test]
fn logs_on_a_pipe_carry_no_ansi_colour() {
    let repo = crate::support::git::GitRepo::init();
    repo.write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    repo.commit("a");
    let dir = repo.path.to_str().unwrap();
    let out = crate::support::tollgate(&["ci", "--base", "HEAD", "--repo", dir])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "no log lines to judge:\n{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}
