//! The Helm chart `charts/tollgate`, linted and rendered by real Helm (the Helm v4 SDK from
//! PyPI, `helm-python-sdk`, through tests/helm/render.py), and its rendered Deployment checked by
//! the real `tollgate check`.
//!
//! Helm is a prerequisite like the test registry: tests/run.sh installs it, and without it these
//! tests fail with a message that says how to install it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use rstest::rstest;
use serde_json::{Value, json};
use tollgate::yaml::{Record, load_all, load_one};

use crate::support;
use crate::support::run;

const CHART: &str = "charts/tollgate";
const RELEASE: &str = "tollgate";
const NAMESPACE: &str = "tollgate-system";

/// What Helm made of the chart with some values.
struct Helm {
    /// `helm lint` messages of severity warning (2) or error (3), and its errors.
    lint_problems: Vec<String>,
    schema_error: Option<String>,
    render_error: Option<String>,
    /// Template path → rendered YAML (what `helm template` prints).
    manifests: BTreeMap<String, String>,
}

impl Helm {
    /// Every rendered object.
    fn objects(&self) -> Vec<Value> {
        self.manifests
            .iter()
            .filter(|(path, _)| path.ends_with(".yaml"))
            .flat_map(|(path, text)| {
                load_all(text, Record::ImageFields)
                    .map(move |doc| doc.unwrap_or_else(|e| panic!("{path}: {e}\n{text}")).value)
            })
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The objects of `kind`.
    fn all(&self, kind: &str) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    /// The one object of `kind`.
    fn one(&self, kind: &str) -> Value {
        let mut found = self.all(kind);
        assert_eq!(found.len(), 1, "exactly one {kind}: {found:#?}");
        found.remove(0)
    }

    /// The rendered stream, as `helm template` prints it.
    fn stream(&self) -> String {
        self.manifests
            .iter()
            .filter(|(path, _)| path.ends_with(".yaml"))
            .map(|(path, text)| format!("---\n# Source: {path}\n{text}\n"))
            .collect()
    }

    /// Lint and render passed, with nothing worse than an info message.
    fn assert_clean(&self) {
        assert!(self.lint_problems.is_empty(), "{:#?}", self.lint_problems);
        assert_eq!(self.schema_error, None);
        assert_eq!(self.render_error, None);
    }
}

/// Lint and render the chart as release RELEASE in NAMESPACE with `values`.
fn helm(values: &Value) -> Helm {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(Path::new(root).join("tests/helm/render.py"))
        .arg(Path::new(root).join(CHART))
        .args([RELEASE, NAMESPACE, &values.to_string()])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): install Python 3 and the Helm v4 SDK \
                 (`apt-get install python3 python3-pip && python3 -m pip install \
                 helm-python-sdk`), or run tests/run.sh, which installs both"
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/helm/render.py failed ({}):\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("render.py printed no JSON ({e}):\n{stderr}"));
    let lint = &report["lint"];
    let mut lint_problems: Vec<String> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_u64().unwrap() >= 2)
        .map(|m| format!("{}: {}", m["path"], m["error"]))
        .collect();
    lint_problems.extend(
        lint["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned()),
    );
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Helm {
        lint_problems,
        schema_error: text(&report["schema_error"]),
        render_error: text(&report["render_error"]),
        manifests: serde_json::from_value(report["manifests"].clone()).unwrap(),
    }
}

/// Render with `values`, asserting that lint and render pass.
fn rendered(values: Value) -> Helm {
    let h = helm(&values);
    h.assert_clean();
    h
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The value of `--flag=` in the server's arguments.
fn arg<'a>(deployment: &'a Value, flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
        .into_iter()
        .find_map(|a| a.strip_prefix(prefix.as_str()))
}

fn args(deployment: &Value) -> Vec<&str> {
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
}

// ---------------------------------------------------------------------------------------------
// Lint and schema.

#[rstest]
#[case::defaults(json!({}))]
#[case::mutating_on(json!({"mutating": {"enabled": true}}))]
#[case::mutating_on_more_kinds(json!({"mutating": {"enabled": true, "kinds": ["Pod", "Job"], "failurePolicy": "Fail", "timeoutSeconds": 3}}))]
#[case::existing_secret(json!({"certificates": {"mode": "secret", "existingSecret": "tollgate-certs", "caBundle": "LS0tLS1CRUdJTg=="}}))]
#[case::own_cluster_issuer(json!({"certificates": {"certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "internal-ca"}}}}))]
#[case::monitoring_and_network_policy(json!({"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}, "prometheusRule": {"enabled": true, "alertLabels": {"team": "sre"}}, "networkPolicy": {"enabled": true}}))]
#[case::ignore_and_a_longer_timeout(json!({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 10}}))]
#[case::shortest_timeout(json!({"webhook": {"timeoutSeconds": 1}}))]
#[case::static_rules_only(json!({"registry": {"resolve": false}}))]
#[case::registry_credentials_and_ca(json!({"registry": {"credentialsSecret": "regcred", "ca": {"configMap": "registry-ca", "key": "ca.pem"}, "deadlineSeconds": 2.5}}))]
#[case::existing_policy(json!({"policy": {"existingConfigMap": "my-policy", "key": "prod.yaml"}}))]
#[case::one_replica_and_no_pdb(json!({"replicaCount": 1, "podDisruptionBudget": {"enabled": false}}))]
#[case::pinned_image(json!({"image": {"digest": format!("sha256:{}", "a".repeat(64))}}))]
#[case::scheduling(json!({"priorityClassName": "system-cluster-critical", "nodeSelector": {"kubernetes.io/os": "linux"}, "tolerations": [{"operator": "Exists"}], "topologySpreadConstraints": []}))]
#[case::server_tuning(json!({"server": {"maxBodyBytes": 1048576, "unchangedImages": "enforce", "logFormat": "text", "shutdownGraceSeconds": 5, "exemptNamespaces": ["kube-system", "cert-manager"], "env": [{"name": "RUST_LOG", "value": "info"}], "extraArgs": ["--ca-file=/x"]}}))]
#[case::audit_cronjob(json!({"audit": {"cronJob": {"enabled": true}}}))]
#[case::audit_cronjob_in_namespaces(json!({"audit": {"namespaces": ["shop", "payments"], "cronJob": {"enabled": true, "schedule": "@daily", "timeZone": "Europe/Berlin", "args": ["--no-resolve"], "activeDeadlineSeconds": null}}, "registry": {"credentialsSecret": "regcred", "ca": {"configMap": "registry-ca"}}}))]
#[case::pull_secrets(json!({"registry": {"pullSecrets": {"enabled": true}}}))]
#[case::pull_secrets_and_periodic_audit(json!({"registry": {"pullSecrets": {"enabled": true}}, "audit": {"periodic": {"enabled": true}}}))]
#[case::periodic_audit_and_alerts(json!({"audit": {"periodic": {"enabled": true, "intervalSeconds": 900}}, "prometheusRule": {"enabled": true}}))]
#[case::periodic_audit_in_namespaces_and_cronjob(json!({"audit": {"namespaces": ["shop"], "periodic": {"enabled": true}, "cronJob": {"enabled": true}}}))]
#[case::custom_kinds(json!({"webhook": {"customKinds": {"argoRollouts": true, "knative": true, "openKruise": true, "argoWorkflows": true, "tekton": true}, "extraRules": [{"apiGroups": ["ci.example.com"], "apiVersions": ["v1"], "resources": ["runners"], "scope": "Cluster"}]}}))]
#[case::openreports(json!({"audit": {"periodic": {"enabled": true, "openReports": {"enabled": true, "maxResults": 50}}}}))]
#[case::openreports_in_namespaces(json!({"audit": {"namespaces": ["shop", "payments"], "periodic": {"enabled": true, "openReports": {"enabled": true}}}}))]
#[case::catalog_on_sqlite(json!({"replicaCount": 1, "catalog": {"enabled": true, "clusterName": "prod", "sqlite": {"size": "5Gi", "storageClassName": "fast"}}, "audit": {"periodic": {"enabled": true}, "cronJob": {"enabled": true}}}))]
#[case::catalog_on_postgres(json!({"catalog": {"enabled": true, "clusterName": "prod", "recordIntervalSeconds": 300, "postgres": {"existingSecret": "catalog-db"}}, "audit": {"cronJob": {"enabled": true}}}))]
fn lint_and_render_pass(#[case] values: Value) {
    let h = rendered(values);
    assert!(!h.objects().is_empty());
}

#[rstest]
#[case::replicas_as_a_word(json!({"replicaCount": "two"}), "/replicaCount")]
#[case::zero_replicas(json!({"replicaCount": 0}), "/replicaCount")]
#[case::unknown_top_level_key(json!({"replicas": 2}), "additional properties 'replicas'")]
#[case::unknown_nested_key(json!({"image": {"tagg": "1.0"}}), "additional properties 'tagg'")]
#[case::failure_policy_misspelt(json!({"webhook": {"failurePolicy": "fail"}}), "/webhook/failurePolicy")]
#[case::timeout_over_the_api_servers_limit(json!({"webhook": {"timeoutSeconds": 31}}), "/webhook/timeoutSeconds")]
#[case::mutating_a_kind_that_has_no_pods(json!({"mutating": {"enabled": true, "kinds": ["Service"]}}), "/mutating/kinds/0")]
#[case::short_digest(json!({"image": {"digest": "sha256:abc"}}), "/image/digest")]
#[case::secret_mode_without_a_secret(json!({"certificates": {"mode": "secret"}}), "/certificates/existingSecret")]
#[case::secret_mode_without_a_ca_bundle(json!({"certificates": {"mode": "secret", "existingSecret": "s"}}), "/certificates/caBundle")]
#[case::unknown_certificate_mode(json!({"certificates": {"mode": "vault"}}), "/certificates/mode")]
#[case::log_format(json!({"server": {"logFormat": "xml"}}), "/server/logFormat")]
#[case::schedule_as_a_number(json!({"audit": {"cronJob": {"enabled": true, "schedule": 5}}}), "/audit/cronJob/schedule")]
#[case::schedule_with_four_fields(json!({"audit": {"cronJob": {"schedule": "* * * *"}}}), "/audit/cronJob/schedule")]
#[case::unknown_audit_key(json!({"audit": {"cronJob": {"enabled": true, "verbs": ["delete"]}}}), "additional properties 'verbs'")]
#[case::audit_interval_too_short(json!({"audit": {"periodic": {"enabled": true, "intervalSeconds": 0}}}), "/audit/periodic/intervalSeconds")]
#[case::audit_namespace_not_a_name(json!({"audit": {"namespaces": ["Shop_1"]}}), "/audit/namespaces/0")]
#[case::unknown_custom_kind(json!({"webhook": {"customKinds": {"flux": true}}}), "additional properties 'flux'")]
#[case::extra_rule_without_resources(json!({"webhook": {"extraRules": [{"apiGroups": ["x"], "apiVersions": ["v1"]}]}}), "resources")]
#[case::openreports_without_results(json!({"audit": {"periodic": {"enabled": true, "openReports": {"enabled": true, "maxResults": 0}}}}), "/audit/periodic/openReports/maxResults")]
#[case::openreports_unknown_key(json!({"audit": {"periodic": {"openReports": {"clusterReports": true}}}}), "additional properties 'clusterReports'")]
#[case::catalog_interval_zero(json!({"catalog": {"recordIntervalSeconds": 0}}), "/catalog/recordIntervalSeconds")]
#[case::catalog_size_not_a_quantity(json!({"catalog": {"sqlite": {"size": "lots"}}}), "/catalog/sqlite/size")]
fn the_schema_rejects_bad_values(#[case] values: Value, #[case] message: &str) {
    let h = helm(&values);
    let schema = h.schema_error.as_deref().expect("the schema rejects it");
    assert!(schema.contains(message), "{schema}");
    // `helm lint` and `helm template` refuse it too.
    assert!(
        h.lint_problems.iter().any(|p| p.contains(message)),
        "{:#?}",
        h.lint_problems
    );
    assert!(h.render_error.is_some());
}

#[rstest]
#[case::deadline_not_below_the_timeout(
    json!({"registry": {"deadlineSeconds": 5}}),
    "must be above 0 and below webhook.timeoutSeconds"
)]
#[case::pull_secrets_without_the_registry(
    json!({"registry": {"resolve": false, "pullSecrets": {"enabled": true}}}),
    "it needs registry.resolve: true"
)]
#[case::grace_not_longer_than_the_drain(
    json!({"terminationGracePeriodSeconds": 20, "server": {"shutdownGraceSeconds": 20}}),
    "must be longer than server.shutdownGraceSeconds"
)]
#[case::openreports_without_the_periodic_audit(
    json!({"audit": {"periodic": {"openReports": {"enabled": true}}}}),
    "audit.periodic.openReports.enabled needs audit.periodic.enabled"
)]
#[case::catalog_without_a_cluster_name(
    json!({"replicaCount": 1, "catalog": {"enabled": true}}),
    "catalog.enabled needs catalog.clusterName"
)]
#[case::sqlite_catalog_with_two_replicas(
    json!({"catalog": {"enabled": true, "clusterName": "prod"}}),
    "replicaCount must be 1, or use PostgreSQL"
)]
#[case::catalog_of_some_namespaces(
    json!({"catalog": {"enabled": true, "clusterName": "prod", "postgres": {"existingSecret": "db"}}, "audit": {"namespaces": ["shop"]}}),
    "audit.namespaces must be empty"
)]
fn render_refuses_inconsistent_values(#[case] values: Value, #[case] message: &str) {
    let h = helm(&values);
    assert_eq!(h.schema_error, None);
    let e = h.render_error.expect("render fails");
    assert!(e.contains(message), "{e}");
}

#[test]
fn the_schema_covers_every_default_value() {
    // Every key of values.yaml is declared, at every level where the schema is closed; a new
    // value without a schema entry fails here (and the chart's additionalProperties: false
    // would refuse it).
    let text = std::fs::read_to_string(Path::new(CHART).join("values.yaml")).unwrap();
    let values = load_one(&text, Record::ImageFields).unwrap().value;
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(CHART).join("values.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    fn walk(value: &Value, schema: &Value, path: &str) {
        let Some(map) = value.as_object() else { return };
        if schema["additionalProperties"] != false {
            return;
        }
        for (key, v) in map {
            let sub = &schema["properties"][key];
            assert!(!sub.is_null(), "{path}/{key} has no schema");
            assert!(
                sub.get("type").is_some() || sub.get("enum").is_some(),
                "{path}/{key} has no type"
            );
            walk(v, sub, &format!("{path}/{key}"));
        }
    }
    walk(&values, &schema, "");
}

// ---------------------------------------------------------------------------------------------
// What the default values render.

#[test]
fn the_deployment_is_hardened_and_probed() {
    let h = rendered(json!({}));
    let d = h.one("Deployment");
    assert_eq!(d["metadata"]["namespace"], NAMESPACE);
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path);
        assert_eq!(get["scheme"], "HTTPS");
        assert_eq!(get["port"], "https");
    }
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, BTreeMap::from([("https", 8443), ("metrics", 9090)]));

    let env = &c["env"][0];
    assert_eq!(env["name"], "POD_NAMESPACE");
    assert_eq!(
        env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );

    // The server's command line: exactly the flags of `tollgate serve`.
    assert_eq!(args(&d)[0], "serve");
    assert_eq!(arg(&d, "--tls-cert"), Some("/etc/tollgate/tls/tls.crt"));
    assert_eq!(arg(&d, "--tls-key"), Some("/etc/tollgate/tls/tls.key"));
    assert_eq!(
        arg(&d, "--policy"),
        Some("/etc/tollgate/policy/policy.yaml")
    );
    assert_eq!(arg(&d, "--listen"), Some("0.0.0.0:8443"));
    assert_eq!(arg(&d, "--metrics-listen"), Some("0.0.0.0:9090"));
    assert_eq!(arg(&d, "--unchanged-images"), Some("warn"));
    assert_eq!(arg(&d, "--log-format"), Some("json"));
    assert!(!args(&d).contains(&"--mutate"));
    assert!(!args(&d).contains(&"--no-resolve"));
    let exempt: Vec<&str> = args(&d)
        .into_iter()
        .filter_map(|a| a.strip_prefix("--exempt-namespace="))
        .collect();
    assert_eq!(exempt, ["kube-system", NAMESPACE]);

    // The kubelet waits longer than the server drains.
    let grace: f64 = arg(&d, "--shutdown-grace")
        .unwrap()
        .strip_suffix('s')
        .unwrap()
        .parse()
        .unwrap();
    assert!(pod["terminationGracePeriodSeconds"].as_f64().unwrap() > grace);

    // The registry deadline is below the webhook's timeout.
    let deadline: f64 = arg(&d, "--registry-deadline")
        .unwrap()
        .strip_suffix('s')
        .unwrap()
        .parse()
        .unwrap();
    let timeout = h.one("ValidatingWebhookConfiguration")["webhooks"][0]["timeoutSeconds"]
        .as_f64()
        .unwrap();
    assert!(0.0 < deadline && deadline < timeout, "{deadline} {timeout}");

    // Mounted as whole directories: a subPath mount would never see a renewed certificate or
    // an edited policy.
    for m in c["volumeMounts"].as_array().unwrap() {
        assert!(m.get("subPath").is_none(), "{m}");
    }
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spread.len(), 2);
    for s in spread {
        assert_eq!(
            s["labelSelector"]["matchLabels"],
            d["spec"]["selector"]["matchLabels"]
        );
    }
}

#[test]
fn the_service_and_the_disruption_budget_select_the_pods() {
    let h = rendered(json!({}));
    let d = h.one("Deployment");
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    let selector = d["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in selector {
        assert_eq!(&labels[k], v);
    }

    let svc = h.one("Service");
    assert_eq!(svc["metadata"]["name"], RELEASE);
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    let ports: BTreeSet<(u64, &str)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["targetPort"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, BTreeSet::from([(443, "https"), (9090, "metrics")]));

    let pdb = h.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"], d["spec"]["selector"]);

    let sa = h.one("ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
}

#[test]
fn the_validating_webhook_covers_every_pod_bearing_kind_and_leaves_out_kube_system() {
    let h = rendered(json!({}));
    let vwc = h.one("ValidatingWebhookConfiguration");
    let hooks = vwc["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let w = &hooks[0];
    assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["timeoutSeconds"], 5);
    assert_eq!(
        w["clientConfig"]["service"],
        json!({"name": RELEASE, "namespace": NAMESPACE, "path": "/validate", "port": 443})
    );
    assert!(w["clientConfig"].get("caBundle").is_none());

    let exprs = w["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap();
    let name_rule = exprs
        .iter()
        .find(|e| e["key"] == "kubernetes.io/metadata.name")
        .unwrap();
    assert_eq!(name_rule["operator"], "NotIn");
    assert_eq!(strings(&name_rule["values"]), ["kube-system", NAMESPACE]);

    let mut covered = BTreeSet::new();
    for rule in w["rules"].as_array().unwrap() {
        assert_eq!(strings(&rule["operations"]), ["CREATE", "UPDATE"]);
        assert_eq!(strings(&rule["apiVersions"]), ["v1"]);
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                covered.insert(format!("{group}/{resource}"));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "/pods",
        "/pods/ephemeralcontainers",
        "/podtemplates",
        "/replicationcontrollers",
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(covered, expected);

    assert!(h.all("MutatingWebhookConfiguration").is_empty());
}

/// group/version/resource (scope) of every rule of the validating webhook.
fn webhook_rules(h: &Helm) -> BTreeSet<String> {
    let vwc = h.one("ValidatingWebhookConfiguration");
    let mut covered = BTreeSet::new();
    for rule in vwc["webhooks"][0]["rules"].as_array().unwrap() {
        assert_eq!(strings(&rule["operations"]), ["CREATE", "UPDATE"], "{rule}");
        for group in strings(&rule["apiGroups"]) {
            for version in strings(&rule["apiVersions"]) {
                for resource in strings(&rule["resources"]) {
                    covered.insert(format!(
                        "{group}/{version}/{resource} ({})",
                        rule["scope"].as_str().unwrap()
                    ));
                }
            }
        }
    }
    covered
}

#[test]
fn custom_kinds_are_registered_per_project_and_extra_rules_as_written() {
    let base = webhook_rules(&rendered(json!({})));
    let all = rendered(json!({"webhook": {
        "customKinds": {"argoRollouts": true, "knative": true, "openKruise": true,
                        "argoWorkflows": true, "tekton": true},
        "extraRules": [{"apiGroups": ["ci.example.com"], "apiVersions": ["v1"], "resources": ["runners"]}]
    }}));
    let added: BTreeSet<String> = webhook_rules(&all).difference(&base).cloned().collect();
    // Every kind of the built-in table (src/workload/kinds.rs), by its plural, in each version
    // the project serves; ClusterWorkflowTemplate is cluster-scoped, hence "*".
    for expected in [
        "argoproj.io/v1alpha1/rollouts (*)",
        "argoproj.io/v1alpha1/experiments (*)",
        "apps.kruise.io/v1alpha1/imagepulljobs (*)",
        "tekton.dev/v1beta1/stepactions (Namespaced)",
        "serving.knative.dev/v1/services (Namespaced)",
        "serving.knative.dev/v1/configurations (Namespaced)",
        "serving.knative.dev/v1/revisions (Namespaced)",
        "apps.kruise.io/v1alpha1/clonesets (*)",
        "apps.kruise.io/v1beta1/statefulsets (*)",
        "apps.kruise.io/v1alpha1/daemonsets (*)",
        "apps.kruise.io/v1alpha1/sidecarsets (*)",
        "argoproj.io/v1alpha1/workflows (*)",
        "argoproj.io/v1alpha1/workflowtemplates (*)",
        "argoproj.io/v1alpha1/clusterworkflowtemplates (*)",
        "argoproj.io/v1alpha1/cronworkflows (*)",
        "tekton.dev/v1/tasks (Namespaced)",
        "tekton.dev/v1/pipelines (Namespaced)",
        "tekton.dev/v1/taskruns (Namespaced)",
        "tekton.dev/v1/pipelineruns (Namespaced)",
        "ci.example.com/v1/runners (Namespaced)",
    ] {
        assert!(
            added.contains(expected),
            "{expected} missing from {added:#?}"
        );
    }
    let one = rendered(json!({"webhook": {"customKinds": {"tekton": true}}}));
    let added: Vec<String> = webhook_rules(&one).difference(&base).cloned().collect();
    assert!(
        added.iter().all(|r| r.starts_with("tekton.dev/")),
        "{added:#?}"
    );
}

#[test]
fn cert_manager_issues_the_serving_certificate_from_the_charts_ca_and_injects_it() {
    let h = rendered(json!({}));
    let issuers = h.all("Issuer");
    let certs = h.all("Certificate");
    let by_name = |objs: &[Value], name: &str| -> Value {
        objs.iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {objs:#?}"))
            .clone()
    };
    assert_eq!(issuers.len(), 2);
    assert_eq!(certs.len(), 2);

    let selfsigned = by_name(&issuers, "tollgate-selfsigned");
    assert_eq!(selfsigned["spec"]["selfSigned"], json!({}));
    let ca = by_name(&certs, "tollgate-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "tollgate-selfsigned");
    let ca_issuer = by_name(&issuers, "tollgate-ca");
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca["spec"]["secretName"]
    );

    let serving = by_name(&certs, "tollgate-tls");
    assert_eq!(serving["spec"]["issuerRef"]["name"], "tollgate-ca");
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    assert!(strings(&serving["spec"]["usages"]).contains(&"server auth"));
    // The same names `tollgate certs generate` puts in its certificate.
    let req = tollgate::admission::certs::Request::new(RELEASE, NAMESPACE, 1, 1).unwrap();
    assert_eq!(strings(&serving["spec"]["dnsNames"]), req.dns_names());

    // The Deployment mounts the Secret the serving Certificate fills.
    let d = h.one("Deployment");
    let tls = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap()
        .clone();
    assert_eq!(tls["secret"]["secretName"], serving["spec"]["secretName"]);

    // cainjector fills the caBundle from that Certificate.
    let vwc = h.one("ValidatingWebhookConfiguration");
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{NAMESPACE}/tollgate-tls")
    );
}

#[test]
fn an_own_issuer_replaces_the_charts_ca() {
    let h = rendered(json!({"certificates": {"certManager": {
        "issuerRef": {"kind": "ClusterIssuer", "name": "internal-ca"}}}}));
    assert!(h.all("Issuer").is_empty());
    let serving = h.one("Certificate");
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "internal-ca"})
    );
    let vwc = h.one("ValidatingWebhookConfiguration");
    assert!(vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string());
}

#[test]
fn generated_certificates_go_into_a_secret_and_the_ca_bundle_value() {
    // The flow of webhook-certs/README.md: `tollgate certs generate` for the chart's Service,
    // then the chart with mode secret and the printed caBundle.
    let dir = tempfile::tempdir().unwrap();
    let r = run(&[
        "certs",
        "generate",
        "--service",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bundle = r.stdout.trim();
    let h = rendered(json!({
        "mutating": {"enabled": true},
        "certificates": {"mode": "secret", "existingSecret": "tollgate-certs", "caBundle": bundle},
    }));
    assert!(h.all("Certificate").is_empty());
    assert!(h.all("Issuer").is_empty());
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let wc = h.one(kind);
        assert_eq!(
            wc["webhooks"][0]["clientConfig"]["caBundle"], bundle,
            "{kind}"
        );
        assert!(
            wc["metadata"]
                .get("annotations")
                .is_none_or(|a| a.get("cert-manager.io/inject-ca-from").is_none()),
            "{kind}"
        );
    }
    let d = h.one("Deployment");
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let tls = volumes.iter().find(|v| v["name"] == "tls").unwrap();
    assert_eq!(tls["secret"]["secretName"], "tollgate-certs");
}

#[test]
fn the_mutating_webhook_is_off_by_default_and_on_pods_only_when_on() {
    let h = rendered(json!({"mutating": {"enabled": true}}));
    let mwc = h.one("MutatingWebhookConfiguration");
    let w = &mwc["webhooks"][0];
    assert_eq!(w["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(
        w["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}])
    );
    assert_eq!(
        w["namespaceSelector"],
        h.one("ValidatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"]
    );
    let d = h.one("Deployment");
    assert!(args(&d).contains(&"--mutate"));
    assert_eq!(arg(&d, "--mutate-kind"), Some("Pod"));

    let more = rendered(
        json!({"mutating": {"enabled": true, "kinds": ["Pod", "PodTemplate", "Deployment"]}}),
    );
    let resources: Vec<Value> = more.one("MutatingWebhookConfiguration")["webhooks"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["apiGroups"][0], r["resources"][0]]))
        .collect();
    assert_eq!(
        resources,
        [
            json!(["", "pods"]),
            json!(["", "podtemplates"]),
            json!(["apps", "deployments"])
        ]
    );
}

#[rstest]
#[case::fail_5(json!({}), "Fail", 5, Some("3s"))]
#[case::ignore_10(json!({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 10}}), "Ignore", 10, Some("8s"))]
#[case::timeout_2(json!({"webhook": {"timeoutSeconds": 2}}), "Fail", 2, Some("1s"))]
#[case::timeout_1(json!({"webhook": {"timeoutSeconds": 1}}), "Fail", 1, Some("0.5s"))]
#[case::explicit_deadline(json!({"webhook": {"timeoutSeconds": 10}, "registry": {"deadlineSeconds": 4}}), "Fail", 10, Some("4s"))]
#[case::no_resolve(json!({"registry": {"resolve": false}}), "Fail", 5, None)]
fn failure_policy_timeout_and_registry_deadline(
    #[case] values: Value,
    #[case] policy: &str,
    #[case] timeout: u64,
    #[case] deadline: Option<&str>,
) {
    let h = rendered(values);
    let w = &h.one("ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(w["failurePolicy"], policy);
    assert_eq!(w["timeoutSeconds"], timeout);
    let d = h.one("Deployment");
    assert_eq!(arg(&d, "--registry-deadline"), deadline);
    assert_eq!(args(&d).contains(&"--no-resolve"), deadline.is_none());
}

#[test]
fn the_policy_configmap_holds_the_default_policy_and_is_passed_with_policy() {
    let h = rendered(json!({}));
    let cm = h.one("ConfigMap");
    assert_eq!(cm["data"]["policy.yaml"], tollgate::policy::DEFAULT_POLICY);
    let d = h.one("Deployment");
    let spec = &d["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "policy")
        .unwrap()
        .clone();
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "policy")
        .unwrap()
        .clone();
    assert_eq!(
        arg(&d, "--policy").unwrap(),
        format!("{}/policy.yaml", mount["mountPath"].as_str().unwrap())
    );

    let own = "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: mine\n";
    let h = rendered(json!({"policy": {"content": own}}));
    assert_eq!(h.one("ConfigMap")["data"]["policy.yaml"], own);

    let h = rendered(json!({"policy": {"existingConfigMap": "prod-policy", "key": "prod.yaml"}}));
    assert!(h.all("ConfigMap").is_empty());
    let d = h.one("Deployment");
    assert_eq!(arg(&d, "--policy"), Some("/etc/tollgate/policy/prod.yaml"));
}

#[test]
fn the_charts_policy_copy_is_byte_identical_to_policies_default_yaml() {
    // Helm reads files inside the chart only, so the chart carries a copy; this keeps it from
    // drifting. Fix with: cp policies/default.yaml charts/tollgate/files/policy.yaml
    let copy = std::fs::read(Path::new(CHART).join("files/policy.yaml")).unwrap();
    let original = std::fs::read("policies/default.yaml").unwrap();
    assert!(
        copy == original,
        "charts/tollgate/files/policy.yaml differs from policies/default.yaml; \
         run: cp policies/default.yaml charts/tollgate/files/policy.yaml"
    );
    assert_eq!(copy, tollgate::policy::DEFAULT_POLICY.as_bytes());
}

#[test]
fn monitoring_and_network_policy_are_off_by_default() {
    let h = rendered(json!({}));
    for kind in ["ServiceMonitor", "PrometheusRule", "NetworkPolicy"] {
        assert!(h.all(kind).is_empty(), "{kind}");
    }
}

#[test]
fn the_service_monitor_scrapes_the_plain_http_metrics_port() {
    let h = rendered(json!({"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}}));
    let sm = h.one("ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], "metrics");
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["scheme"], "http");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        h.one("Deployment")["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_alerts_use_the_metric_names_from_values() {
    let h = rendered(json!({"prometheusRule": {"enabled": true}}));
    let rule = h.one("PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alerts: BTreeMap<&str, &str> = rules
        .iter()
        .map(|r| (r["alert"].as_str().unwrap(), r["expr"].as_str().unwrap()))
        .collect();
    assert_eq!(
        alerts.keys().copied().collect::<Vec<_>>(),
        [
            "TollgateCertificateExpiringSoon",
            "TollgatePolicyReloadFailed",
            "TollgateWebhookDown",
            "TollgateWebhookErrors",
            "TollgateWebhookSlow"
        ]
    );
    assert!(alerts["TollgateWebhookErrors"].contains("tollgate_admission_requests_total{"));
    assert!(alerts["TollgateWebhookSlow"].contains("tollgate_admission_duration_seconds_bucket{"));
    assert!(
        alerts["TollgateCertificateExpiringSoon"].contains("tollgate_certificate_expiry_seconds{")
    );
    assert!(alerts["TollgateCertificateExpiringSoon"].contains(&(14 * 86_400).to_string()));
    assert!(alerts["TollgatePolicyReloadFailed"].contains("tollgate_policy_reloads_total{"));
    for (alert, expr) in &alerts {
        assert!(
            expr.contains(&format!("namespace=\"{NAMESPACE}\",service=\"{RELEASE}\"")),
            "{alert}: {expr}"
        );
    }

    let renamed = rendered(json!({"prometheusRule": {"enabled": true},
        "metrics": {"names": {"requests": "tg_requests_total"}}}));
    let rule = renamed.one("PrometheusRule");
    let errors = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "TollgateWebhookErrors")
        .unwrap()["expr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(errors.contains("tg_requests_total{"), "{errors}");
    assert!(
        !errors.contains("tollgate_admission_requests_total"),
        "{errors}"
    );
}

#[test]
fn the_network_policy_opens_the_webhook_port_to_all_and_metrics_to_the_selector() {
    let h = rendered(json!({"networkPolicy": {"enabled": true}}));
    let np = h.one("NetworkPolicy");
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress"]);
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        h.one("Deployment")["spec"]["selector"]["matchLabels"]
    );
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 2);
    assert!(ingress[0].get("from").is_none());
    assert_eq!(ingress[0]["ports"][0]["port"], "https");
    assert_eq!(ingress[1]["ports"][0]["port"], "metrics");
    assert_eq!(
        ingress[1]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
}

// ---------------------------------------------------------------------------------------------
// The chart against tollgate's own policy.

/// `tollgate check` on the whole rendered chart.
fn check_rendered(values: Value) -> (support::Run, Value) {
    let h = rendered(values);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.yaml");
    std::fs::write(&file, h.stream()).unwrap();
    let r = run(&["check", "--format", "json", file.to_str().unwrap()]);
    let report: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    (r, report)
}

fn rule_ids(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["ruleId"].as_str().unwrap().to_owned(),
                f["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[rstest]
#[case::default_image(json!({}), vec![("digest-missing", "warn")])]
#[case::through_the_registry_alias(json!({"image": {"registry": "docker-registry.discovery.wmnet"}}), vec![("digest-missing", "warn")])]
#[case::pinned_by_digest(json!({"image": {"tag": "0.1.0", "digest": format!("sha256:{}", "b".repeat(64))}}), vec![])]
fn the_rendered_chart_passes_tollgate_check_with_an_approved_image(
    #[case] values: Value,
    #[case] findings: Vec<(&str, &str)>,
) {
    let (r, report) = check_rendered(values);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The Deployment was read and its image checked.
    assert_eq!(report["summary"]["images"], 1, "{report:#}");
    let expected: Vec<(String, String)> = findings
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(rule_ids(&report), expected);
}

#[rstest]
#[case::another_registry(json!({"image": {"registry": "ghcr.io", "repository": "tollgate-dev/tollgate"}}), "registry-not-approved")]
#[case::a_look_alike_host(json!({"image": {"registry": "docker-registry.wikimedia.org.evil.com"}}), "registry-not-approved")]
#[case::docker_hub(json!({"image": {"registry": "", "repository": "tollgate"}}), "registry-not-approved")]
#[case::a_base_image(json!({"image": {"repository": "bookworm", "tag": "20250101"}}), "repository-not-deployable")]
#[case::latest(json!({"image": {"tag": "latest"}}), "tag-latest")]
fn the_rendered_chart_fails_tollgate_check_with_another_image(
    #[case] values: Value,
    #[case] rule: &str,
) {
    let (r, report) = check_rendered(values);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        rule_ids(&report).contains(&(rule.to_owned(), "deny".to_owned())),
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// The audit: CronJob, periodic audit in the server, their read-only RBAC and alerts.

/// What the audit may do, and all it may do: (apiGroup, resource) → verbs.
fn audit_permissions() -> BTreeMap<(String, String), Vec<String>> {
    [
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ]
    .into_iter()
    .map(|(g, r)| {
        (
            (g.to_owned(), r.to_owned()),
            vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
        )
    })
    .collect()
}

/// The permissions a (Cluster)Role grants, exactly: every rule's groups × resources, with its
/// verbs. Fails on anything that is not a plain group/resource/verb rule.
fn permissions(role: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiGroups", "resources", "verbs"]),
            "no resourceNames, nonResourceURLs or anything else: {rule}"
        );
        let mut verbs: Vec<String> = strings(&rule["verbs"])
            .into_iter()
            .map(str::to_owned)
            .collect();
        verbs.sort();
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                let prev = out.insert((g.to_owned(), r.to_owned()), verbs.clone());
                assert!(prev.is_none(), "{g}/{r} granted twice");
            }
        }
    }
    out
}

fn subjects(binding: &Value) -> Vec<(String, String, String)> {
    binding["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["name"].as_str().unwrap().to_owned(),
                s["namespace"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sa(name: &str) -> (String, String, String) {
    (
        "ServiceAccount".to_owned(),
        name.to_owned(),
        NAMESPACE.to_owned(),
    )
}

fn cronjob_args(cj: &Value) -> Vec<&str> {
    strings(&cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])
}

#[test]
fn the_audit_is_off_by_default_and_nothing_reads_the_cluster() {
    let h = rendered(json!({}));
    for kind in [
        "CronJob",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        assert!(h.all(kind).is_empty(), "{kind}");
    }
    let d = h.one("Deployment");
    assert!(arg(&d, "--audit-interval").is_none());
    assert!(!args(&d).iter().any(|a| a.starts_with("--audit")));
    assert_eq!(
        d["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
}

#[test]
fn the_audit_cronjob_runs_tollgate_audit_with_read_only_rbac() {
    let h = rendered(json!({"audit": {"cronJob": {"enabled": true}}}));
    let cj = h.one("CronJob");
    assert_eq!(cj["metadata"]["namespace"], NAMESPACE);
    assert_eq!(cj["spec"]["schedule"], "17 * * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    let job = &cj["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 0);
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        cronjob_args(&cj),
        [
            "audit",
            "--policy=/etc/tollgate/policy/policy.yaml",
            "--format=json"
        ]
    );

    // The same image, security context and policy as the server.
    let d = h.one("Deployment");
    let server = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], server["containers"][0]["image"]);
    assert_eq!(pod["securityContext"], server["securityContext"]);
    assert_eq!(
        c["securityContext"],
        server["containers"][0]["securityContext"]
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(c["resources"]["limits"]["memory"].is_string());
    let volume = |spec: &Value, name: &str| -> Value {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {spec:#}"))
            .clone()
    };
    assert_eq!(volume(pod, "policy"), volume(server, "policy"));
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "policy")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/tollgate/policy");
    assert_eq!(mount["readOnly"], true);

    // A ServiceAccount of its own, whose token only the audit pods mount.
    assert_eq!(pod["serviceAccountName"], "tollgate-audit");
    assert_eq!(pod["automountServiceAccountToken"], true);
    let accounts = h.all("ServiceAccount");
    assert_eq!(accounts.len(), 2);
    assert!(
        accounts
            .iter()
            .any(|a| a["metadata"]["name"] == "tollgate-audit")
    );
    // The server still gets no token.
    assert_eq!(server["automountServiceAccountToken"], false);

    // The audit pods are not webhook endpoints: the Service and the PodDisruptionBudget do
    // not select them.
    let labels = job["template"]["metadata"]["labels"].as_object().unwrap();
    let selector = h.one("Service")["spec"]["selector"].clone();
    assert!(
        selector
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| labels.get(k) != Some(v)),
        "{selector} selects the audit pods {labels:?}"
    );

    // Read-only RBAC over all namespaces, bound to the audit's ServiceAccount only.
    assert!(h.all("Role").is_empty());
    let role = h.one("ClusterRole");
    assert_eq!(permissions(&role), audit_permissions());
    let binding = h.one("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]})
    );
    assert_eq!(subjects(&binding), [sa("tollgate-audit")]);
}

#[test]
fn the_audit_in_namespaces_gets_a_role_in_each_and_passes_namespace() {
    let h = rendered(json!({"audit": {"namespaces": ["shop", "payments"],
        "cronJob": {"enabled": true, "schedule": "@hourly", "args": ["--page-size=100"]}},
        "registry": {"credentialsSecret": "regcred"}}));
    let cj = h.one("CronJob");
    assert_eq!(cj["spec"]["schedule"], "@hourly");
    assert_eq!(
        cronjob_args(&cj),
        [
            "audit",
            "--policy=/etc/tollgate/policy/policy.yaml",
            "--format=json",
            "--namespace=shop",
            "--namespace=payments",
            "--registry-config=/etc/tollgate/registry/config.json",
            "--page-size=100"
        ]
    );
    assert!(h.all("ClusterRole").is_empty());
    assert!(h.all("ClusterRoleBinding").is_empty());
    let roles = h.all("Role");
    let bindings = h.all("RoleBinding");
    let namespaces = |objs: &[Value]| -> Vec<String> {
        objs.iter()
            .map(|o| o["metadata"]["namespace"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(namespaces(&roles), ["shop", "payments"]);
    assert_eq!(namespaces(&bindings), ["shop", "payments"]);
    for role in &roles {
        assert_eq!(permissions(role), audit_permissions());
    }
    for b in &bindings {
        assert_eq!(b["roleRef"]["kind"], "Role");
        assert_eq!(b["roleRef"]["name"], roles[0]["metadata"]["name"]);
        assert_eq!(subjects(b), [sa("tollgate-audit")]);
    }
}

#[test]
fn the_periodic_audit_adds_audit_interval_and_binds_the_servers_account() {
    let h = rendered(json!({"audit": {"periodic": {"enabled": true}}}));
    let d = h.one("Deployment");
    assert_eq!(arg(&d, "--audit-interval"), Some("3600s"));
    assert!(arg(&d, "--audit-namespace").is_none());
    // The server now lists workloads: its pods mount the token.
    assert_eq!(
        d["spec"]["template"]["spec"]["automountServiceAccountToken"],
        true
    );
    assert!(h.all("CronJob").is_empty());
    assert_eq!(permissions(&h.one("ClusterRole")), audit_permissions());
    let server_account = d["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    assert_eq!(server_account, h.one("ServiceAccount")["metadata"]["name"]);
    assert_eq!(subjects(&h.one("ClusterRoleBinding")), [sa(server_account)]);

    // Both, in namespaces: each Role is bound to both accounts.
    let h = rendered(json!({"audit": {"namespaces": ["shop", "payments"],
        "periodic": {"enabled": true, "intervalSeconds": 600}, "cronJob": {"enabled": true}}}));
    let d = h.one("Deployment");
    assert_eq!(arg(&d, "--audit-interval"), Some("600s"));
    let audit_ns: Vec<&str> = args(&d)
        .into_iter()
        .filter_map(|a| a.strip_prefix("--audit-namespace="))
        .collect();
    assert_eq!(audit_ns, ["shop", "payments"]);
    let bindings = h.all("RoleBinding");
    assert_eq!(bindings.len(), 2);
    for b in &bindings {
        assert_eq!(subjects(b), [sa("tollgate-audit"), sa(RELEASE)]);
    }
    for role in h.all("Role") {
        assert_eq!(permissions(&role), audit_permissions());
    }
}

/// What the OpenReports writer may do: its Reports, nothing else.
fn openreports_permissions() -> BTreeMap<(String, String), Vec<String>> {
    BTreeMap::from([(
        ("openreports.io".to_owned(), "reports".to_owned()),
        ["create", "delete", "get", "list", "patch"]
            .map(str::to_owned)
            .to_vec(),
    )])
}

#[test]
fn openreports_add_the_flags_and_their_own_rbac_for_the_server_only_when_enabled() {
    // The periodic audit alone writes nothing and may write nothing.
    let h = rendered(json!({"audit": {"periodic": {"enabled": true}}}));
    let d = h.one("Deployment");
    assert!(!args(&d).contains(&"--audit-reports"), "{:?}", args(&d));
    assert!(arg(&d, "--report-max-results").is_none());
    for role in h.all("ClusterRole").iter().chain(&h.all("Role")) {
        assert!(
            !permissions(role).keys().any(|(g, _)| g == "openreports.io"),
            "{role}"
        );
    }

    let h = rendered(json!({"audit": {"periodic": {"enabled": true,
        "openReports": {"enabled": true, "maxResults": 50}}}}));
    let d = h.one("Deployment");
    assert!(args(&d).contains(&"--audit-reports"), "{:?}", args(&d));
    assert_eq!(arg(&d, "--report-max-results"), Some("50"));
    let roles = h.all("ClusterRole");
    assert_eq!(roles.len(), 2);
    let writer = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "tollgate-openreports")
        .expect("the writer's ClusterRole");
    assert_eq!(permissions(writer), openreports_permissions());
    // The read-only audit role stays read-only.
    let reader = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "tollgate-audit")
        .unwrap();
    assert_eq!(permissions(reader), audit_permissions());
    let binding = h
        .all("ClusterRoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "tollgate-openreports")
        .unwrap();
    assert_eq!(binding["roleRef"]["name"], "tollgate-openreports");
    assert_eq!(subjects(&binding), [sa(RELEASE)]);

    // In namespaces: a Role in each, bound to the server's account alone (not the CronJob's).
    let h = rendered(json!({"audit": {"namespaces": ["shop", "payments"],
        "cronJob": {"enabled": true},
        "periodic": {"enabled": true, "openReports": {"enabled": true}}}}));
    assert_eq!(
        arg(&h.one("Deployment"), "--report-max-results"),
        Some("100")
    );
    let writers: Vec<Value> = h
        .all("Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "tollgate-openreports")
        .collect();
    let namespaces: Vec<&str> = writers
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["shop", "payments"]);
    for r in &writers {
        assert_eq!(permissions(r), openreports_permissions());
    }
    let bindings: Vec<Value> = h
        .all("RoleBinding")
        .into_iter()
        .filter(|b| b["metadata"]["name"] == "tollgate-openreports")
        .collect();
    assert_eq!(bindings.len(), 2);
    for b in &bindings {
        assert_eq!(b["roleRef"]["kind"], "Role");
        assert_eq!(subjects(b), [sa(RELEASE)]);
    }
    assert!(h.all("ClusterRole").is_empty());
}

#[test]
fn the_audit_alerts_come_with_the_periodic_audit() {
    // Without the periodic audit, no audit gauges and no audit alerts.
    let h = rendered(
        json!({"prometheusRule": {"enabled": true}, "audit": {"cronJob": {"enabled": true}}}),
    );
    let groups = h.one("PrometheusRule")["spec"]["groups"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1);

    let h = rendered(
        json!({"prometheusRule": {"enabled": true, "alertLabels": {"team": "sre"}},
        "audit": {"periodic": {"enabled": true, "intervalSeconds": 1800}}}),
    );
    let rule = h.one("PrometheusRule");
    let groups = rule["spec"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "tollgate.rules");
    assert_eq!(groups[1]["name"], "tollgate.audit");
    let rules = groups[1]["rules"].as_array().unwrap();
    let alerts: BTreeMap<&str, &Value> = rules
        .iter()
        .map(|r| (r["alert"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        alerts.keys().copied().collect::<Vec<_>>(),
        [
            "TollgateAuditFailing",
            "TollgateCommitsNotRolledOut",
            "TollgateImagesAtRetentionRisk",
            "TollgateRollbackTargetsUnservable",
            "TollgateRunningImagesUnservable"
        ]
    );
    let sel = format!("namespace=\"{NAMESPACE}\",service=\"{RELEASE}\"");
    for (alert, metric, severity) in [
        (
            "TollgateRunningImagesUnservable",
            "tollgate_audit_running_unservable_images",
            "critical",
        ),
        (
            "TollgateRollbackTargetsUnservable",
            "tollgate_audit_rollback_targets_unservable_images",
            "warning",
        ),
        (
            "TollgateImagesAtRetentionRisk",
            "tollgate_audit_retention_risk_images",
            "warning",
        ),
        (
            "TollgateCommitsNotRolledOut",
            "tollgate_audit_not_rolled_out_commits",
            "warning",
        ),
    ] {
        let r = alerts[alert];
        let expr = r["expr"].as_str().unwrap();
        assert_eq!(expr, format!("max({metric}{{{sel}}}) > 0"), "{alert}");
        assert_eq!(r["labels"]["severity"], severity, "{alert}");
        assert_eq!(r["labels"]["team"], "sre", "{alert}");
    }
    let running = alerts["TollgateRunningImagesUnservable"]["annotations"]["description"]
        .as_str()
        .unwrap();
    assert!(running.starts_with("{{ $value }} "), "{running}");
    assert!(
        running.contains("the next restart of these pods will fail to pull"),
        "{running}"
    );

    let failing = alerts["TollgateAuditFailing"]["expr"].as_str().unwrap();
    assert!(
        failing.contains(&format!(
            "sum(increase(tollgate_audit_runs_total{{{sel},result=\"failure\"}}[7200s])) > 0"
        )),
        "{failing}"
    );
    assert!(
        failing.contains(&format!(
            "time() - max(tollgate_audit_last_success_timestamp_seconds{{{sel}}})) > {}",
            3 * 1800
        )),
        "{failing}"
    );

    // The names come from metrics.names, and a long interval widens the failure window.
    let h = rendered(json!({"prometheusRule": {"enabled": true},
        "audit": {"periodic": {"enabled": true, "intervalSeconds": 21600}},
        "metrics": {"names": {"auditRunningUnservable": "tg_running_unservable"}}}));
    let rule = h.one("PrometheusRule");
    let rules = rule["spec"]["groups"][1]["rules"].as_array().unwrap();
    let expr = |name: &str| -> String {
        rules.iter().find(|r| r["alert"] == name).unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        expr("TollgateRunningImagesUnservable"),
        format!("max(tg_running_unservable{{{sel}}}) > 0")
    );
    let failing = expr("TollgateAuditFailing");
    assert!(failing.contains("[43200s]"), "{failing}");
    assert!(failing.contains(&format!("> {}", 3 * 21600)), "{failing}");
}

#[test]
fn the_audit_cronjob_passes_tollgate_check_too() {
    let (r, report) = check_rendered(json!({
        "image": {"tag": "0.1.0", "digest": format!("sha256:{}", "b".repeat(64))},
        "audit": {"cronJob": {"enabled": true}, "periodic": {"enabled": true}},
    }));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(rule_ids(&report), Vec::<(String, String)>::new());
    let kinds: BTreeSet<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["CronJob", "Deployment"]),
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// The alerts under promtool (Debian's prometheus package).

/// Values that render every alert the chart has.
fn every_alert() -> Value {
    json!({"prometheusRule": {"enabled": true}, "audit": {"periodic": {"enabled": true}},
        "catalog": {"enabled": true, "clusterName": "prod", "postgres": {"existingSecret": "catalog-db"}}})
}

/// The PrometheusRule's `spec.groups` as a Prometheus rules file (JSON is YAML), in `dir`.
fn rules_file(values: Value, dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let groups = rendered(values).one("PrometheusRule")["spec"]["groups"].clone();
    let alerts = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect();
    let path = dir.join("rules.yaml");
    std::fs::write(&path, json!({ "groups": groups }).to_string()).unwrap();
    (path, alerts)
}

fn promtool(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let promtool = support::tools::debian("/usr/bin/promtool", "prometheus");
    let out = Command::new(promtool)
        .args(args)
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// `promtool check rules` on the rendered groups: the defaults, every alert, and every alert
/// with extra labels, renamed metrics and a long audit interval.
#[test]
fn the_rendered_alert_rules_pass_promtool_check_rules() {
    for values in [
        json!({"prometheusRule": {"enabled": true}}),
        every_alert(),
        json!({"prometheusRule": {"enabled": true, "alertLabels": {"team": "sre"}, "errorRatio": 0.01},
            "audit": {"periodic": {"enabled": true, "intervalSeconds": 21600}},
            "metrics": {"names": {"requests": "tg_requests_total"}}}),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (rules, alerts) = rules_file(values.clone(), dir.path());
        let (ok, said) = promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);
        assert!(
            ok && said.contains(&format!("SUCCESS: {} rules found", alerts.len())),
            "{values}:\n{said}"
        );
        assert!(!said.contains("WARNING"), "{values}:\n{said}");
    }
}

/// tests/prometheus/alerts_test.yaml under `promtool test rules`, against the rendered alerts;
/// an alert of the chart without a test there fails this test.
#[test]
fn every_alert_of_the_chart_passes_its_promtool_unit_test() {
    let dir = tempfile::tempdir().unwrap();
    let (_, alerts) = rules_file(every_alert(), dir.path());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prometheus/alerts_test.yaml");
    let text = std::fs::read_to_string(&source).unwrap();
    let tests = load_one(&text, Record::ImageFields).unwrap().value;
    // The alerts each test is about: one per test, and a test that fires it.
    let mut tested = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        let names: BTreeSet<&str> = t["alert_rule_test"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["alertname"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "one alert per test: {}", t["name"]);
        let fires = t["alert_rule_test"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| !a["exp_alerts"].as_array().unwrap().is_empty());
        assert!(fires, "{} never expects the alert to fire", t["name"]);
        tested.extend(names.into_iter().map(str::to_owned));
    }
    let alerts: BTreeSet<String> = alerts.into_iter().collect();
    let untested: Vec<_> = alerts.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "alerts without a test in tests/prometheus/alerts_test.yaml: {untested:?}"
    );
    let unknown: Vec<_> = tested.difference(&alerts).collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts the chart does not have: {unknown:?}"
    );

    let copy = dir.path().join("alerts_test.yaml");
    std::fs::write(&copy, &text).unwrap();
    let (ok, said) = promtool(&["test".as_ref(), "rules".as_ref(), copy.as_os_str()]);
    assert!(ok && said.contains("SUCCESS"), "{said}");
}

// ---------------------------------------------------------------------------------------------
// Pull secrets.

#[test]
fn pull_secrets_are_off_by_default_and_when_on_the_server_may_only_get_secrets_and_service_accounts()
 {
    let off = rendered(json!({}));
    assert!(!args(&off.one("Deployment")).contains(&"--pull-secrets"));
    assert!(off.all("ClusterRole").is_empty());

    let h = rendered(json!({"registry": {"pullSecrets": {"enabled": true}}}));
    let d = h.one("Deployment");
    assert!(args(&d).contains(&"--pull-secrets"), "{:?}", args(&d));
    assert_eq!(
        d["spec"]["template"]["spec"]["automountServiceAccountToken"], true,
        "the server needs its token to read the secrets"
    );
    let role = h.one("ClusterRole");
    assert_eq!(role["metadata"]["name"], "tollgate-pull-secrets");
    // `get` by name only: no list or watch, which would hand the server every secret.
    assert_eq!(
        permissions(&role),
        BTreeMap::from([
            (
                ("".to_owned(), "secrets".to_owned()),
                vec!["get".to_owned()]
            ),
            (
                ("".to_owned(), "serviceaccounts".to_owned()),
                vec!["get".to_owned()]
            ),
        ])
    );
    let binding = h.one("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "tollgate-pull-secrets");
    assert_eq!(subjects(&binding), [sa(RELEASE)]);
}

// ---------------------------------------------------------------------------------------------
// The image catalog.

/// SQLite: a kept claim mounted by the migrating init container and the server, the file's
/// URL in the arguments, one pod replaced at a time, a token for the recording's read-only
/// RBAC; the audit CronJob does not write the server's file.
#[test]
fn a_sqlite_catalog_is_a_kept_claim_written_by_one_server() {
    let h = rendered(
        json!({"replicaCount": 1, "catalog": {"enabled": true, "clusterName": "prod-eqiad"},
        "audit": {"cronJob": {"enabled": true}}}),
    );
    let d = h.one("Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(pod["automountServiceAccountToken"], true);
    let url = "sqlite:/var/lib/tollgate/catalog/catalog.db";
    assert_eq!(arg(&d, "--catalog"), Some(url));
    assert_eq!(arg(&d, "--cluster-name"), Some("prod-eqiad"));
    assert_eq!(arg(&d, "--catalog-record-interval"), Some("600s"));
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "catalog-migrate");
    assert_eq!(
        strings(&init["args"]),
        ["catalog", "migrate", &format!("--catalog={url}")]
    );
    assert_eq!(
        init["securityContext"],
        pod["containers"][0]["securityContext"]
    );
    for c in [init, &pod["containers"][0]] {
        assert!(
            c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "catalog" && m["mountPath"] == "/var/lib/tollgate/catalog"),
            "{c}"
        );
    }
    let claim = h.one("PersistentVolumeClaim");
    assert_eq!(claim["metadata"]["name"], "tollgate-catalog");
    assert_eq!(
        claim["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "tollgate-catalog")
    );
    // The server's ServiceAccount reads the cluster (the recording lists every pod).
    let binding = h.one("ClusterRoleBinding");
    assert!(
        binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "tollgate"),
        "{binding}"
    );
    let cron = h.one("CronJob");
    let audit = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert!(
        !strings(&audit["args"])
            .iter()
            .any(|a| a.starts_with("--cluster"))
    );
}

/// PostgreSQL: the URL from the Secret in the environment (never in argv), for the init
/// container, the server and the audit CronJob, which records as the same cluster; replicas
/// roll one by one as without a catalog, and no claim is made.
#[test]
fn a_postgres_catalog_comes_from_a_secret_for_every_writer() {
    let h = rendered(
        json!({"catalog": {"enabled": true, "clusterName": "prod", "postgres": {"existingSecret": "catalog-db", "key": "dsn"}},
        "audit": {"cronJob": {"enabled": true}}}),
    );
    let d = h.one("Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(h.all("PersistentVolumeClaim").is_empty());
    assert_eq!(arg(&d, "--catalog"), None);
    let env = json!({"name": "TOLLGATE_CATALOG", "valueFrom": {"secretKeyRef": {"name": "catalog-db", "key": "dsn"}}});
    let cron = h.one("CronJob");
    let audit = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    for c in [&pod["initContainers"][0], &pod["containers"][0], audit] {
        assert!(c["env"].as_array().unwrap().contains(&env), "{}", c["env"]);
    }
    assert!(strings(&audit["args"]).contains(&"--cluster=prod"));
}
