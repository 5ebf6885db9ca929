//! A fault-injecting HTTP proxy for tests: it sits on a loopback port the OS picks, in front of
//! a [`TestRegistry`](super::registry::TestRegistry), forwards every request to it, and breaks
//! the answers that a [`Rule`] selects (by method and path substring, for the first N matching
//! requests or always): a slow answer, no answer at all, a 500, a 429 with `Retry-After`, a body whose bytes are
//! not the registry's, or a wrong `Content-Length` on a HEAD.
//!
//! With [`FaultProxy::serve_referrers`] it also answers the OCI 1.1 referrers API itself (the
//! registry behind it, Debian's distribution 2.8, predates it and answers 404): each answer is
//! built from the registry's referrers tag schema index, in the distribution spec's shape.
//!
//! It records every request it saw, so tests can assert that a retry happened and that nothing
//! was asked twice. It speaks just enough HTTP/1.1 for tollgate's client: one request per
//! connection, answered with `Connection: close`. It runs as a tokio task (so it must be
//! started inside a runtime) and stops when the handle drops: the accept task is aborted, and
//! with it every connection task it owns. Every loop and wait in it is bounded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head read (request line and headers).
const MAX_HEAD: usize = 64 << 10;
/// Largest request body read (tollgate only sends GET and HEAD).
const MAX_REQUEST_BODY: usize = 1 << 20;
/// Longest one connection may take, delays included.
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);
/// Longest the proxy lives, in case a handle is leaked.
const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// Most connections one proxy accepts over its life.
const MAX_CONNECTIONS: usize = 100_000;

/// What goes wrong with a selected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally, but only after this long (nothing is sent before).
    Delay(Duration),
    /// Never answer: the connection stays open and silent until the proxy drops (or its
    /// connection limit passes). The client's own timeouts are what end the request.
    Stall,
    /// Answer with this status and a registry-style JSON error body, without asking upstream.
    Status(u16),
    /// Answer 429 with `Retry-After: <secs>`, without asking upstream.
    TooManyRequests { retry_after_secs: u64 },
    /// Forward, then serve the upstream body with one bit flipped ([`corrupt`]): same length,
    /// same status and headers, different hash.
    CorruptBody,
    /// Forward, then announce a `Content-Length` of upstream's plus `add` (for HEAD answers,
    /// which carry no body; on a GET the body stays upstream's and the client sees it cut
    /// short).
    WrongContentLength { add: u64 },
    /// Answer `status` (a 3xx) with `Location: location`, without asking upstream.
    Redirect { status: u16, location: String },
    /// Forward, then add the header `name: value` to the answer (a `Link`, say).
    AddHeader { name: String, value: String },
    /// Forward, and answer without a `Content-Length` (the body, if any, ends with the
    /// connection).
    NoContentLength,
}

/// Which of the matching requests a rule breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The first N; later ones pass untouched.
    First(u32),
    Always,
}

/// Selects requests and breaks their answers.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `HEAD`…; `None` matches any method.
    pub method: Option<String>,
    /// A substring of the request path (`/v2/team/app/manifests/1.0`, a digest…).
    pub path_contains: String,
    pub fault: Fault,
    pub times: Times,
}

/// A request the proxy saw, and the fault it injected into the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub fault: Option<Fault>,
    /// The request's `Authorization` header, to show whose credentials reached this host.
    pub authorization: Option<String>,
}

struct ActiveRule {
    rule: Rule,
    hits: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<ActiveRule>,
    seen: Vec<Seen>,
    bearer: Option<Bearer>,
    referrers: Option<Referrers>,
}

/// How the proxy serves the referrers API.
#[derive(Clone, Copy)]
struct Referrers {
    /// Descriptors per page; `None`: all on one page.
    per_page: Option<usize>,
}

/// Token authentication as Docker Hub and Harbor do it: a 401 with a `Bearer` challenge that
/// names a token endpoint, which hands out a token for basic credentials.
#[derive(Clone)]
struct Bearer {
    realm: String,
    user: String,
    password: String,
    token: String,
}

impl State {
    /// Record a request and pick the fault of the first rule that still applies to it.
    fn admit(&mut self, method: &str, path: &str, authorization: Option<&str>) -> Option<Fault> {
        let mut fault = None;
        for active in &mut self.rules {
            let rule = &active.rule;
            let method_ok = rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !method_ok || !path.contains(&rule.path_contains) {
                continue;
            }
            let applies = match rule.times {
                Times::Always => true,
                Times::First(n) => active.hits < n,
            };
            if applies {
                active.hits += 1;
                fault = Some(rule.fault.clone());
                break;
            }
        }
        self.seen.push(Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            fault: fault.clone(),
            authorization: authorization.map(str::to_owned),
        });
        fault
    }
}

/// The running proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Start a proxy forwarding to `upstream` (`http://127.0.0.1:5000`). Must be called inside
    /// a tokio runtime.
    pub fn start(upstream: &str) -> FaultProxy {
        // tollgate hands reqwest its own rustls config; this plain client needs the process-wide
        // provider (installing it twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("proxy HTTP client");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).expect("proxy listener");
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let task = tokio::spawn(serve(listener, upstream, http, state.clone()));
        FaultProxy { addr, state, task }
    }

    /// Require a bearer token for every registry request, handed out by the proxy's `/token`
    /// endpoint for these basic credentials.
    pub fn require_bearer(&self, user: &str, password: &str) {
        self.state.lock().unwrap().bearer = Some(Bearer {
            realm: format!("{}/token", self.base_url()),
            user: user.to_owned(),
            password: password.to_owned(),
            token: "tok-0123456789".to_owned(),
        });
    }

    /// Like [`Self::require_bearer`], with the challenge naming `realm` as the token service:
    /// a registry that sends its clients, and their credentials, somewhere else.
    pub fn require_bearer_from(&self, realm: &str, user: &str, password: &str) {
        self.state.lock().unwrap().bearer = Some(Bearer {
            realm: realm.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            token: "tok-0123456789".to_owned(),
        });
    }

    /// Answer `GET /v2/<name>/referrers/<digest>` here, as a registry with the OCI 1.1
    /// referrers API does ("Listing Referrers"): an image index of the referring manifests'
    /// descriptors (with their `artifactType` and annotations), read from the registry's
    /// referrers tag schema index (`<alg>-<hex>`); an empty index when there is none; the
    /// `artifactType` query filter applied and announced with `OCI-Filters-Applied`. Without
    /// this the registry's own 404 passes through: the API unsupported. Fault rules still come
    /// first.
    pub fn serve_referrers(&self) {
        self.state.lock().unwrap().referrers = Some(Referrers { per_page: None });
    }

    /// [`Self::serve_referrers`], `per_page` descriptors a page, each page linking the next
    /// with `Link: <…>; rel="next"` (a path on the proxy itself).
    pub fn serve_referrers_paged(&self, per_page: usize) {
        self.state.lock().unwrap().referrers = Some(Referrers {
            per_page: Some(per_page.max(1)),
        });
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host:port` as written in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// A policy file approving the proxy (plain HTTP: it is on loopback). The registry behind
    /// it is not approved, so nothing can bypass the proxy.
    pub fn policy(&self, extra_spec: &str) -> String {
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: fault-proxy\nspec:\n  registries:\n    - prefix: {}\n      insecure: true\n{extra_spec}",
            self.host()
        )
    }

    /// Add a rule; earlier rules win when several match.
    pub fn add(&self, rule: Rule) {
        self.state
            .lock()
            .unwrap()
            .rules
            .push(ActiveRule { rule, hits: 0 });
    }

    /// Break the answers to `method` requests whose path contains `path_contains`.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: Times) {
        self.add(Rule {
            method: Some(method.to_owned()),
            path_contains: path_contains.to_owned(),
            fault,
            times,
        });
    }

    /// Remove every rule: from now on the proxy is transparent.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests seen so far.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    /// Requests seen so far with this method and a path containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.method.eq_ignore_ascii_case(method) && s.path.contains(path_contains))
            .count()
    }

    /// Requests whose answer was broken by a rule.
    pub fn faults_injected(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    }

    /// `(method, path, times)` of every request seen more than once, sorted.
    pub fn repeated(&self) -> Vec<(String, String, usize)> {
        let mut counts = std::collections::BTreeMap::<(String, String), usize>::new();
        for s in self.state.lock().unwrap().seen.iter() {
            *counts
                .entry((s.method.clone(), s.path.clone()))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((m, p), n)| (m, p, n))
            .collect()
    }

    /// Forget the requests seen so far (rules and their hit counts stay).
    pub fn reset_counts(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// The body served for [`Fault::CorruptBody`]: the upstream bytes with the lowest bit of the
/// middle byte flipped (same length, so `Content-Length` stays right), or one byte if empty.
pub fn corrupt(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.is_empty() {
        out.push(b'x');
    } else {
        let mid = out.len() / 2;
        out[mid] ^= 1;
    }
    out
}

async fn serve(
    listener: TcpListener,
    upstream: String,
    http: reqwest::Client,
    state: Arc<Mutex<State>>,
) {
    let mut connections = JoinSet::new();
    let accept_all = async {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // Reap finished connections so the set does not grow without bound.
            while connections.try_join_next().is_some() {}
            let (upstream, http, state) = (upstream.clone(), http.clone(), state.clone());
            connections.spawn(async move {
                let _ =
                    tokio::time::timeout(CONNECTION_LIMIT, handle(stream, upstream, http, state))
                        .await;
            });
        }
    };
    let _ = tokio::time::timeout(MAX_LIFETIME, accept_all).await;
    connections.abort_all();
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An answer to write back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    /// The `Content-Length` announced (for HEAD: what a GET would carry).
    content_length: u64,
    /// Written only when the request was not a HEAD.
    body: Vec<u8>,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
];

async fn handle(
    mut stream: TcpStream,
    upstream: String,
    http: reqwest::Client,
    state: Arc<Mutex<State>>,
) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    let authorization = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());
    let fault = state
        .lock()
        .unwrap()
        .admit(&req.method, &req.path, authorization.as_deref());
    let (bearer, referrers) = {
        let s = state.lock().unwrap();
        (s.bearer.clone(), s.referrers)
    };
    if let Some(b) = bearer
        && let Some(answer) = bearer_gate(&b, &req)
    {
        let _ = write_answer(&mut stream, &req.method, answer).await;
        return;
    }
    let answer = match &fault {
        Some(Fault::Status(code)) => error_answer(*code, Vec::new()),
        Some(Fault::TooManyRequests { retry_after_secs }) => error_answer(
            429,
            vec![("Retry-After".to_owned(), retry_after_secs.to_string())],
        ),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(*d).await;
            upstream_answer(&http, &upstream, &req, referrers).await
        }
        Some(Fault::Stall) => std::future::pending().await,
        Some(Fault::CorruptBody) => {
            let mut a = upstream_answer(&http, &upstream, &req, referrers).await;
            if req.method != "HEAD" {
                a.body = corrupt(&a.body);
                a.content_length = a.body.len() as u64;
            }
            a
        }
        Some(Fault::WrongContentLength { add }) => {
            let mut a = upstream_answer(&http, &upstream, &req, referrers).await;
            a.content_length += add;
            a
        }
        Some(Fault::Redirect { status, location }) => Answer {
            status: *status,
            headers: vec![("Location".to_owned(), location.clone())],
            content_length: 0,
            body: Vec::new(),
        },
        Some(Fault::NoContentLength) => {
            let a = upstream_answer(&http, &upstream, &req, referrers).await;
            let _ = write_answer_without_length(&mut stream, &req.method, a).await;
            return;
        }
        Some(Fault::AddHeader { name, value }) => {
            let mut a = upstream_answer(&http, &upstream, &req, referrers).await;
            a.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            a.headers.push((name.clone(), value.clone()));
            a
        }
        None => upstream_answer(&http, &upstream, &req, referrers).await,
    };
    let _ = write_answer(&mut stream, &req.method, answer).await;
}

/// The token endpoint, or a 401 challenge for a request without the token; `None` lets the
/// request through.
fn bearer_gate(b: &Bearer, req: &Request) -> Option<Answer> {
    use base64::Engine as _;
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if req.path.starts_with("/token") {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.user, b.password))
        );
        if header("authorization") != Some(expected.as_str()) {
            return Some(error_answer(401, Vec::new()));
        }
        let body = format!(r#"{{"token":"{}"}}"#, b.token).into_bytes();
        let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        return Some(Answer {
            status: 200,
            headers,
            content_length: body.len() as u64,
            body,
        });
    }
    if header("authorization") == Some(format!("Bearer {}", b.token).as_str()) {
        return None;
    }
    let repo = req
        .path
        .strip_prefix("/v2/")
        .and_then(|p| p.split("/manifests/").next())
        .and_then(|p| p.split("/blobs/").next())
        .and_then(|p| p.split("/referrers/").next())
        .unwrap_or("");
    let challenge = format!(
        r#"Bearer realm="{}",service="tollgate-test",scope="repository:{repo}:pull""#,
        b.realm
    );
    Some(error_answer(
        401,
        vec![("WWW-Authenticate".to_owned(), challenge)],
    ))
}

/// What the registry would answer: the referrers API's answer when the proxy serves it and
/// `req` asks it, else upstream's.
async fn upstream_answer(
    http: &reqwest::Client,
    upstream: &str,
    req: &Request,
    referrers: Option<Referrers>,
) -> Answer {
    if let Some(mode) = referrers
        && req.method == "GET"
        && let Some(a) = referrers_answer(http, upstream, req, mode).await
    {
        return a;
    }
    forward(http, upstream, req).await
}

/// The referrers API's answer to `req`, if it is a referrers request
/// (`/v2/<name>/referrers/<alg>:<hex>[?artifactType=…][&page=…]`); `None` otherwise.
async fn referrers_answer(
    http: &reqwest::Client,
    upstream: &str,
    req: &Request,
    mode: Referrers,
) -> Option<Answer> {
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let (name, digest) = path.strip_prefix("/v2/")?.rsplit_once("/referrers/")?;
    let (alg, hex) = digest.split_once(':')?;
    let mut artifact_type = None;
    let mut page = 0usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "artifactType" => artifact_type = Some(v),
            "page" => page = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    // The referrers tag schema: `<alg>-<ref>`, the reference cut to 64 characters.
    let tag = format!("{alg}-{}", hex.get(..64).unwrap_or(hex));
    let mut ask = http
        .get(format!("{upstream}/v2/{name}/manifests/{tag}"))
        .header("Accept", OCI_INDEX);
    if let Some((_, auth)) = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        ask = ask.header("Authorization", auth.as_str());
    }
    let mut manifests: Vec<serde_json::Value> = match ask.send().await {
        Ok(r) if r.status().as_u16() == 404 => Vec::new(),
        Ok(r) if r.status().is_success() => {
            let Ok(body) = r.bytes().await else {
                return Some(error_answer(502, Vec::new()));
            };
            let Ok(index) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return Some(error_answer(502, Vec::new()));
            };
            index["manifests"].as_array().cloned().unwrap_or_default()
        }
        Ok(r) => return Some(error_answer(r.status().as_u16(), Vec::new())),
        Err(_) => return Some(error_answer(502, Vec::new())),
    };
    let mut headers = vec![("Content-Type".to_owned(), OCI_INDEX.to_owned())];
    if let Some(t) = &artifact_type {
        manifests.retain(|d| d["artifactType"].as_str() == Some(t.as_str()));
        headers.push(("OCI-Filters-Applied".to_owned(), "artifactType".to_owned()));
    }
    if let Some(per_page) = mode.per_page {
        let total = manifests.len();
        manifests = manifests
            .into_iter()
            .skip(page * per_page)
            .take(per_page)
            .collect();
        if (page + 1) * per_page < total {
            let mut next = format!("/v2/{name}/referrers/{digest}?page={}", page + 1);
            if let Some(t) = &artifact_type {
                next.push_str("&artifactType=");
                next.extend(percent_encoding::utf8_percent_encode(
                    t,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            headers.push(("Link".to_owned(), format!("<{next}>; rel=\"next\"")));
        }
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    Some(Answer {
        status: 200,
        headers,
        content_length: body.len() as u64,
        body,
    })
}

/// Read the request head (and a body, if one is announced). `None` on EOF, oversize or junk.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST_BODY {
        return None;
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A registry-style error answer made up by the proxy.
fn error_answer(status: u16, mut headers: Vec<(String, String)>) -> Answer {
    let code = if status == 429 {
        "TOOMANYREQUESTS"
    } else {
        "UNAVAILABLE"
    };
    let body = format!(
        r#"{{"errors":[{{"code":"{code}","message":"fault injected by the test proxy","detail":null}}]}}"#
    )
    .into_bytes();
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    Answer {
        status,
        headers,
        content_length: body.len() as u64,
        body,
    }
}

/// Ask the registry; a 502 if it cannot be reached.
async fn forward(http: &reqwest::Client, upstream: &str, req: &Request) -> Answer {
    let Ok(method) = reqwest::Method::from_bytes(req.method.as_bytes()) else {
        return error_answer(400, Vec::new());
    };
    let mut out = http.request(method, format!("{upstream}{}", req.path));
    for (k, v) in &req.headers {
        if !HOP_BY_HOP.iter().any(|h| k.eq_ignore_ascii_case(h)) {
            out = out.header(k.as_str(), v.as_str());
        }
    }
    if !req.body.is_empty() {
        out = out.body(req.body.clone());
    }
    let res = match out.send().await {
        Ok(r) => r,
        Err(_) => return error_answer(502, Vec::new()),
    };
    let status = res.status().as_u16();
    let announced: Option<u64> = res
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = match res.bytes().await {
        Ok(b) => b.to_vec(),
        Err(_) => return error_answer(502, Vec::new()),
    };
    let content_length = if req.method == "HEAD" {
        announced.unwrap_or(0)
    } else {
        body.len() as u64
    };
    Answer {
        status,
        headers,
        content_length,
        body,
    }
}

async fn write_answer_without_length(
    stream: &mut TcpStream,
    method: &str,
    a: Answer,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} OK\r\n", a.status);
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(&a.body).await?;
    }
    stream.flush().await?;
    stream.shutdown().await
}

async fn write_answer(stream: &mut TcpStream, method: &str, a: Answer) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(a.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", a.status);
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        a.content_length
    ));
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(&a.body).await?;
    }
    stream.flush().await?;
    stream.shutdown().await
}
