//! `tollgate explain` and `tollgate policy` through the real binary.

use rstest::rstest;
use serde_json::Value;

use crate::support::run;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn explain_shows_the_parts_and_every_rule() {
    let r = run(&["explain", "nginx:latest"]);
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("explain_nginx_latest", r.stdout);
    let r = run(&["explain", "--format", "json", "nginx:latest"]);
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("explain_nginx_latest_json", r.stdout);
}

#[rstest]
#[case::compliant(&format!("docker-registry.wikimedia.org/svc/app:1.0@{D}"), 0)]
#[case::warn_only("docker-registry.wikimedia.org/svc/app:1.0", 0)]
#[case::denied("docker.io/library/nginx:1.25", 1)]
#[case::invalid("docker-registry.wikimedia.org/App", 1)]
fn explain_exit_codes(#[case] image: &str, #[case] code: i32) {
    assert_eq!(run(&["explain", image]).code, code);
}

#[test]
fn explain_json_follows_the_documented_schema() {
    let alias = format!("docker-registry.discovery.wmnet/svc/app:1.0@{D}");
    let r = run(&["explain", "--format", "json", &alias, "UPPER/Case"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["namespace"], "default");
    let img = &v["images"][0];
    assert_eq!(img["valid"], true);
    assert_eq!(
        img["reference"]["registry"],
        "docker-registry.discovery.wmnet"
    );
    assert_eq!(
        img["reference"]["canonicalName"],
        "docker-registry.wikimedia.org/svc/app"
    );
    assert_eq!(img["reference"]["tag"], "1.0");
    assert_eq!(img["reference"]["digest"], D);
    let results: Vec<(&str, &str)> = img["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ruleId"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert!(results.contains(&("registry-not-approved", "pass")));
    assert!(results.contains(&("base-not-approved", "not-evaluated")));
    let bad = &v["images"][1];
    assert_eq!(bad["valid"], false);
    assert!(bad["error"].as_str().unwrap().contains("must be lowercase"));
    assert_eq!(bad["rules"][0]["result"], "fail");
}

#[test]
fn explain_shows_which_exemption_applies() {
    let r = run(&[
        "explain",
        "--policy",
        "tests/fixtures/policies/exemptions.yaml",
        "--namespace",
        "kube-system",
        "nginx",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("exempted"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("exemption at tests/fixtures/policies/exemptions.yaml:"),
        "{}",
        r.stdout
    );
}

#[test]
fn policy_default_prints_the_embedded_policy_which_validates() {
    let r = run(&["policy", "default"]);
    assert_eq!(r.code, 0);
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.yaml"
    ))
    .unwrap();
    assert_eq!(r.stdout, shipped);
    let r = run(&[
        "policy",
        "validate",
        "policies/default.yaml",
        "policies/toolforge.yaml",
        "policies/team-path.yaml",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3);
}

#[test]
fn policy_validate_reports_every_problem_with_file_and_line() {
    let r = run(&["policy", "validate", "tests/fixtures/policies/invalid.yaml"]);
    assert_eq!(r.code, 2);
    insta::assert_snapshot!("policy_invalid", r.stderr);
}

/// A value of the wrong type does not end the validation: every problem after it, the policy's
/// own checks included, is reported in the same run, at the line as written.
#[test]
fn policy_validate_reads_past_wrong_types_and_reports_the_rest() {
    let r = run(&[
        "policy",
        "validate",
        "tests/fixtures/policies/type-errors.yaml",
    ]);
    assert_eq!(r.code, 2);
    insta::assert_snapshot!("policy_type_errors", r.stderr);
}

#[test]
fn a_policy_file_that_does_not_exist_is_exit_2() {
    let r = run(&["policy", "validate", "no/such/policy.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot read policy no/such/policy.yaml"),
        "{}",
        r.stderr
    );
}
