//! A stand-in for the Kubernetes API server, the one peer that cannot run here: it serves
//! responses in the exact shape the API server sends (tests/fixtures/kube/, modelled on real
//! list responses, including the API server's own 410 Expired status), pages lists with
//! continue tokens, and can expire a continue token. It also serves Secrets and ServiceAccounts
//! by name (`GET /api/v1/namespaces/NS/secrets/NAME`, `.../serviceaccounts/NAME`) as the API
//! server does, with its 404 Status for a missing one; every namespace has a `default` service
//! account without pull secrets unless a test adds another. Plain HTTP on 127.0.0.1, port from
//! the OS.

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
}

#[derive(Default)]
struct Shared {
    behaviour: Behaviour,
    /// Every request's path and query, in order.
    requests: Vec<String>,
    /// Secret objects by (namespace, name), as the API server serializes them.
    secrets: BTreeMap<(String, String), String>,
    /// ServiceAccount objects by (namespace, name).
    accounts: BTreeMap<(String, String), String>,
    /// The last resourceVersion handed out.
    resource_version: u64,
    /// Serve these pods (one page) and no controllers, instead of the fixtures.
    pods: Option<Vec<serde_json::Value>>,
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
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
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
    if let Some(pods) = shared.lock().unwrap().pods.clone() {
        let body = match path.as_str() {
            "/api/v1/pods" => serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "48213390"},
                "items": pods
            })
            .to_string(),
            "/apis/apps/v1/deployments" => empty_list("Deployment", "apps/v1"),
            "/apis/apps/v1/replicasets" => empty_list("ReplicaSet", "apps/v1"),
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

    /// Never answer from now on.
    pub fn stall(&self) {
        self.shared.lock().unwrap().behaviour.stall = true;
    }

    pub async fn start(behaviour: Behaviour) -> FakeApiServer {
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
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
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
