//! `tollgate check --resolve`: manifests checked with the registry-backed rules, against a real
//! registry.

use serde_json::Value;

use crate::support::oci::{Pusher, layer, os_release};
use crate::support::registry::{TestRegistry, policy_file};
use crate::support::run;

#[tokio::test(flavor = "multi_thread")]
async fn registry_findings_are_placed_at_every_use_of_the_image() {
    let mut reg = TestRegistry::start();
    let host = reg.host();
    let (_dir, policy) = policy_file(&reg, "");
    let p = Pusher::new(reg.base_url());
    let good = p
        .image(
            "svc/good",
            Some("1.0"),
            &[layer(&[("etc/os-release", &os_release("debian"))])],
            "linux/amd64",
        )
        .await;
    let broken = p
        .image(
            "svc/broken",
            Some("2.0"),
            &[layer(&[("a", b"1")]), layer(&[("b", b"2")])],
            "linux/amd64",
        )
        .await;
    p.delete_blob("svc/broken", &broken.layers[1]).await;

    let manifests = tempfile::tempdir().unwrap();
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: web}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: good\n          image: {host}/svc/good:1.0\n        - name: broken\n          image: {host}/svc/broken:2.0@{}\n        - name: outside\n          image: docker.io/library/nginx:1.25\n",
        broken.digest
    );
    let cron = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: job, namespace: jobs}}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: again\n              image: {host}/svc/broken:2.0@{}\n",
        broken.digest
    );
    std::fs::write(manifests.path().join("deploy.yaml"), deployment).unwrap();
    std::fs::write(manifests.path().join("cron.yaml"), cron).unwrap();
    let dir = manifests.path().to_str().unwrap();

    let offline = run(&["check", "--policy", &policy, "--format", "json", dir]);
    let v: Value = serde_json::from_str(&offline.stdout).unwrap();
    assert!(
        !v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["ruleId"] == "image-unavailable"),
        "offline: no registry rules"
    );

    let r = run(&[
        "check",
        "--resolve",
        "--policy",
        &policy,
        "--format",
        "json",
        dir,
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let unavailable: Vec<(String, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ruleId"] == "image-unavailable")
        .map(|f| {
            (
                f["location"]["file"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                f["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unavailable,
        vec![("cron.yaml".to_owned(), 11), ("deploy.yaml".to_owned(), 11)],
        "both uses, each at its line"
    );
    // The pin hint for the unpinned good image names the digest the registry resolved.
    let pin = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ruleId"] == "digest-missing" && f["container"]["name"] == "good")
        .unwrap();
    assert_eq!(
        pin["hint"],
        format!("pin it by digest: {host}/svc/good:1.0@{}", good.digest)
    );

    // The registry going away is an input error (exit 2) at the image's line, not a pass.
    reg.stop();
    let r = run(&[
        "check",
        "--resolve",
        "--deadline",
        "5s",
        "--policy",
        &policy,
        "--format",
        "json",
        dir,
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let e = &v["errors"][0];
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot check {host}/svc/")),
        "{e}"
    );
    assert!(e["line"].as_u64().is_some());
}
