//! A stand-in for the Kubernetes API server, the one peer that cannot run here: it serves
//! responses in the exact shape the API server sends (tests/fixtures/kube/, modelled on real
//! list responses, including the API server's own 410 Expired status), pages lists with
//! continue tokens, and can expire a continue token. It also keeps OpenReports Reports
//! (reports.openreports.io): lists them by label selector, takes server-side applies and
//! deletes, answering with the API server's object and Status shapes, and records every write.
//! And it serves Secrets and ServiceAccounts by name (`GET /api/v1/namespaces/NS/secrets/NAME`,
//! `.../serviceaccounts/NAME`) as the API server does, with its 404 Status for a missing one;
//! every namespace has a `default` service account without pull secrets unless a test adds
//! another. Plain HTTP on 127.0.0.1, port from the OS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// How the fake answers.
#[derive(Default)]
pub struct Behaviour {
    /// Answer 410 Gone to this many requests that carry a continue token.
    pub expire_continue: usize,
    /// Answer every request 503, as an overloaded API server does.
    pub unavailable: bool,
    /// Never answer.
    pub stall: bool,
    /// OpenReports `Report` objects (reports.openreports.io) present from the start.
    pub reports: Vec<serde_json::Value>,
    /// The OpenReports CRD is not installed: its endpoints are 404, as the API server answers
    /// for a group it does not serve.
    pub no_report_crd: bool,
}

/// A request that wrote something (PATCH, DELETE), as received.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: String,
    /// Path and query, as sent (percent-encoded).
    pub uri: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The body, parsed as JSON (`Null` when empty).
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Shared {
    behaviour: Behaviour,
    /// Every request's path and query, in order.
    requests: Vec<String>,
    /// Every PATCH and DELETE, in order.
    writes: Vec<Write>,
    /// The Reports stored, by (namespace, name).
    reports: BTreeMap<(String, String), serde_json::Value>,
    /// Secret objects by (namespace, name), as the API server serializes them.
    secrets: BTreeMap<(String, String), String>,
    /// ServiceAccount objects by (namespace, name).
    accounts: BTreeMap<(String, String), String>,
    /// Serve these pods (one page) and no controllers, instead of the fixtures.
    pods: Option<Vec<serde_json::Value>>,
    /// With `pods`: the controllers listed beside them, by plural resource (`replicasets`).
    controllers: BTreeMap<String, Vec<serde_json::Value>>,
    /// The next resourceVersion handed out.
    resource_version: u64,
}

const REPORTS: &str = "/apis/openreports.io/v1alpha1/";

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        json(
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason,
                "code": code.as_u16()})
            .to_string(),
        ),
    )
        .into_response()
}

/// The reports.openreports.io endpoints: list (all namespaces or one, by label selector),
/// server-side apply (PATCH application/apply-patch+yaml) and delete, answered as the API
/// server answers them.
fn reports(
    s: &mut Shared,
    method: &axum::http::Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &serde_json::Value,
) -> Response {
    let rest = &path[REPORTS.len()..];
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, name) = match parts.as_slice() {
        ["reports"] => (None, None),
        ["namespaces", ns, "reports"] => (Some(*ns), None),
        ["namespaces", ns, "reports", name] => (Some(*ns), Some(*name)),
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    s.resource_version += 1;
    let rv = (48213390 + s.resource_version).to_string();
    match (method.as_str(), name) {
        ("GET", None) => {
            let selector = query.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<&serde_json::Value> = s
                .reports
                .iter()
                .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                .filter(|(_, r)| {
                    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
                        let (k, v) = term.split_once('=').unwrap_or((term, ""));
                        r["metadata"]["labels"][k].as_str() == Some(v)
                    })
                })
                .map(|(_, r)| r)
                .collect();
            json(
                serde_json::json!({"apiVersion": "openreports.io/v1alpha1", "kind": "ReportList",
                    "metadata": {"resourceVersion": rv}, "items": items})
                .to_string(),
            )
        }
        ("PATCH", Some(name)) => {
            let ns = namespace.expect("a named report has a namespace");
            if query.get("fieldManager").is_none() {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                );
            }
            if body["metadata"]["name"].as_str() != Some(name) {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                );
            }
            let key = (ns.to_owned(), name.to_owned());
            let created = !s.reports.contains_key(&key);
            let mut object = body.clone();
            let meta = &mut object["metadata"];
            meta["namespace"] = ns.into();
            meta["uid"] = "7c0e8a55-3f2d-4b1a-9e6c-5d4b3a291807".into();
            meta["resourceVersion"] = rv.into();
            meta["generation"] = 1.into();
            meta["creationTimestamp"] = "2026-11-30T12:00:00Z".into();
            meta["managedFields"] = serde_json::json!([{"manager": query["fieldManager"],
                "operation": "Apply", "apiVersion": "openreports.io/v1alpha1",
                "time": "2026-11-30T12:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
            s.reports.insert(key, object.clone());
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, json(object.to_string())).into_response()
        }
        ("DELETE", Some(name)) => {
            let ns = namespace.expect("a named report has a namespace");
            match s.reports.remove(&(ns.to_owned(), name.to_owned())) {
                Some(r) => json(
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "details": {"name": name, "group": "openreports.io",
                        "kind": "reports", "uid": r["metadata"]["uid"]}})
                    .to_string(),
                ),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("reports.openreports.io \"{name}\" not found"),
                ),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

/// The API server's Status for a named object that does not exist.
fn not_found(resource: &str, name: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("{resource} \"{name}\" not found"),
        "reason": "NotFound",
        "details": {"name": name, "kind": resource},
        "code": 404
    });
    (StatusCode::NOT_FOUND, json(body.to_string())).into_response()
}

/// A namespaced object by name: `/api/v1/namespaces/NS/RESOURCE/NAME`.
fn named(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    let (ns, resource, name) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((ns, resource, name))
}

pub struct FakeApiServer {
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
    _kubeconfig_dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kube")
            .join(name),
    )
    .unwrap()
}

fn empty_list(kind: &str, api_version: &str) -> String {
    format!(
        r#"{{"kind":"{kind}List","apiVersion":"{api_version}","metadata":{{"resourceVersion":"48213390"}},"items":[]}}"#
    )
}

async fn answer(State(shared): State<Arc<Mutex<Shared>>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect();
    if path.starts_with(REPORTS) {
        let method = req.method().clone();
        let uri = req.uri().to_string();
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let mut s = shared.lock().unwrap();
        s.requests.push(uri.clone());
        if s.behaviour.unavailable {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        }
        if s.behaviour.no_report_crd {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        if method != axum::http::Method::GET {
            s.writes.push(Write {
                method: method.to_string(),
                uri,
                query: query.clone(),
                content_type,
                body: body.clone(),
            });
        }
        return reports(&mut s, &method, &path, &query, &body);
    }
    let continue_ = query.get("continue").cloned();
    if shared.lock().unwrap().behaviour.stall {
        shared.lock().unwrap().requests.push(req.uri().to_string());
        std::future::pending::<()>().await;
    }
    {
        let mut s = shared.lock().unwrap();
        s.requests.push(req.uri().to_string());
        if s.behaviour.unavailable {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json(r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server is currently unable to handle the request","reason":"ServiceUnavailable","code":503}"#.to_owned()),
            )
                .into_response();
        }
        if continue_.is_some() && s.behaviour.expire_continue > 0 {
            s.behaviour.expire_continue -= 1;
            return (StatusCode::GONE, json(fixture("gone.json"))).into_response();
        }
    }
    if let Some((ns, resource, name)) = named(&path) {
        let key = (ns.to_owned(), name.to_owned());
        let s = shared.lock().unwrap();
        let found = match resource {
            "secrets" => s.secrets.get(&key).cloned(),
            "serviceaccounts" => s
                .accounts
                .get(&key)
                .cloned()
                .or_else(|| (name == "default").then(|| service_account(ns, name, &[], "1"))),
            _ => None,
        };
        return match found {
            Some(body) => json(body).into_response(),
            None => not_found(resource, name),
        };
    }
    let (pods, controllers) = {
        let s = shared.lock().unwrap();
        (s.pods.clone(), s.controllers.clone())
    };
    if let Some(pods) = pods {
        let listed = |resource: &str, kind: &str, api_version: &str| match controllers.get(resource)
        {
            Some(items) => serde_json::json!({
                "kind": format!("{kind}List"),
                "apiVersion": api_version,
                "metadata": {"resourceVersion": "48213390"},
                "items": items
            })
            .to_string(),
            None => empty_list(kind, api_version),
        };
        let body = match path.as_str() {
            "/api/v1/pods" => serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "48213390"},
                "items": pods
            })
            .to_string(),
            "/apis/apps/v1/deployments" => listed("deployments", "Deployment", "apps/v1"),
            "/apis/apps/v1/replicasets" => listed("replicasets", "ReplicaSet", "apps/v1"),
            "/apis/apps/v1/statefulsets" => empty_list("StatefulSet", "apps/v1"),
            "/apis/apps/v1/daemonsets" => empty_list("DaemonSet", "apps/v1"),
            "/apis/batch/v1/jobs" => empty_list("Job", "batch/v1"),
            "/apis/batch/v1/cronjobs" => empty_list("CronJob", "batch/v1"),
            _ => return not_found("", ""),
        };
        return json(body).into_response();
    }
    let body = match (path.as_str(), continue_.is_some()) {
        ("/api/v1/pods", false) => fixture("pods-page1.json"),
        ("/api/v1/pods", true) => fixture("pods-page2.json"),
        ("/apis/apps/v1/deployments", _) => fixture("deployments.json"),
        ("/apis/apps/v1/replicasets", _) => fixture("replicasets.json"),
        ("/apis/apps/v1/statefulsets", _) => empty_list("StatefulSet", "apps/v1"),
        ("/apis/apps/v1/daemonsets", _) => empty_list("DaemonSet", "apps/v1"),
        ("/apis/batch/v1/jobs", _) => empty_list("Job", "batch/v1"),
        ("/apis/batch/v1/cronjobs", _) => empty_list("CronJob", "batch/v1"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                json(r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#.to_owned()),
            )
                .into_response();
        }
    };
    json(body).into_response()
}

fn json(body: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A ServiceAccount as the API server serializes it (no `secrets` list: since Kubernetes 1.24
/// no token secret is made for it).
fn service_account(ns: &str, name: &str, pull_secrets: &[&str], rv: &str) -> String {
    let mut sa = serde_json::json!({
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": "0b9c1a4e-2f3d-4c5b-8e6f-7a8b9c0d1e2f",
            "resourceVersion": rv,
            "creationTimestamp": "2026-01-05T10:00:00Z"
        }
    });
    if !pull_secrets.is_empty() {
        sa["imagePullSecrets"] = pull_secrets
            .iter()
            .map(|n| serde_json::json!({"name": n}))
            .collect();
    }
    sa.to_string()
}

impl FakeApiServer {
    /// Serve `namespace`'s secret `name` of `type_` with `data` (raw bytes, base64-encoded on
    /// the wire as the API server does); a new resourceVersion each time.
    pub fn add_secret(&self, namespace: &str, name: &str, type_: &str, data: &[(&str, &[u8])]) {
        use base64::Engine as _;
        let mut s = self.shared.lock().unwrap();
        s.resource_version += 1;
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(v).into(),
                )
            })
            .collect();
        let body = serde_json::json!({
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": "5f0c8a7e-9d1b-4e2a-b3c4-d5e6f7a8b9c0",
                "resourceVersion": s.resource_version.to_string(),
                "creationTimestamp": "2026-01-05T10:00:00Z",
                "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": "2026-01-05T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}}, "f:type": {}}}]
            },
            "data": data,
            "type": type_
        });
        s.secrets
            .insert((namespace.to_owned(), name.to_owned()), body.to_string());
    }

    /// Serve `namespace`'s service account `name`, listing `pull_secrets`.
    pub fn add_service_account(&self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        let mut s = self.shared.lock().unwrap();
        s.resource_version += 1;
        let body = service_account(
            namespace,
            name,
            pull_secrets,
            &s.resource_version.to_string(),
        );
        s.accounts
            .insert((namespace.to_owned(), name.to_owned()), body);
    }

    /// List these pods (items as the API server lists them: without kind and apiVersion) and no
    /// controllers, instead of the fixtures.
    pub fn set_pods(&self, pods: Vec<serde_json::Value>) {
        self.shared.lock().unwrap().pods = Some(pods);
    }

    /// With [`FakeApiServer::set_pods`]: list these `deployments` or `replicasets` (items as
    /// the API server lists them) beside the pods.
    pub fn set_controllers(&self, resource: &str, items: Vec<serde_json::Value>) {
        self.shared
            .lock()
            .unwrap()
            .controllers
            .insert(resource.to_owned(), items);
    }

    /// Never answer from now on.
    pub fn stall(&self) {
        self.shared.lock().unwrap().behaviour.stall = true;
    }

    pub async fn start(behaviour: Behaviour) -> FakeApiServer {
        let reports = behaviour
            .reports
            .iter()
            .map(|r| {
                let meta = |k: &str| r["metadata"][k].as_str().unwrap().to_owned();
                ((meta("namespace"), meta("name")), r.clone())
            })
            .collect();
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            reports,
            ..Shared::default()
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: viewer\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: viewer\ncurrent-context: fake\n"
            ),
        )
        .unwrap();
        FakeApiServer {
            shared,
            task,
            _kubeconfig_dir: dir,
            kubeconfig,
        }
    }

    /// The requests so far (path and query).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The PATCH and DELETE requests so far.
    pub fn writes(&self) -> Vec<Write> {
        self.shared.lock().unwrap().writes.clone()
    }

    /// (namespace, name) of the Reports stored now.
    pub fn report_names(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .unwrap()
            .reports
            .keys()
            .cloned()
            .collect()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
