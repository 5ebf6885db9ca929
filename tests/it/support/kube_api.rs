//! A stand-in for the Kubernetes API server, the one peer that cannot run here: it serves
//! responses in the exact shape the API server sends (tests/fixtures/kube/, modelled on real
//! list responses, including the API server's own 410 Expired status), pages lists with
//! continue tokens, and can expire a continue token. Plain HTTP on 127.0.0.1, port from the OS.

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

impl FakeApiServer {
    pub async fn start(behaviour: Behaviour) -> FakeApiServer {
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            requests: Vec::new(),
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
