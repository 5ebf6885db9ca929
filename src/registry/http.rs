//! The distribution API over HTTPS (rustls), with auth, bounded concurrency and retries.
//!
//! tollgate speaks the few endpoints it needs itself rather than through a registry client
//! library, because the walk needs what those do not expose: a blob HEAD's Content-Length (to
//! check the size a manifest declares), a count of every request (no request may repeat), and
//! retries that honour `Retry-After` under a deadline.
//!
//! This layer never decides what a 404 means: it returns the status and the walk decides.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use tokio::sync::{Mutex, Semaphore};

use super::RegistryError;
use super::auth::{Challenge, CredentialStore, parse_challenge};
use crate::reference::RegistryHost;

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credentials: CredentialStore,
    /// PEM bundle of extra CA certificates, trusted besides the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Requests in flight to one registry at a time.
    pub per_registry_concurrency: usize,
    /// Limit for one HTTP request (connect, headers and body).
    pub request_timeout: Duration,
    /// Attempts after the first one, for transient failures only.
    pub retries: u32,
    /// First backoff; doubled per attempt.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured; a registry asking for more is an error now.
    pub max_retry_after: Duration,
    /// Entries asked for per page of the catalog and tag lists (`?n=`).
    pub page_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: CredentialStore::anonymous(),
            extra_ca_pem: None,
            per_registry_concurrency: 8,
            request_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
            page_size: 1000,
        }
    }
}

impl ClientOptions {
    /// Read an extra CA bundle from a PEM file.
    pub fn with_extra_ca_file(mut self, path: &Path) -> Result<Self, RegistryError> {
        let pem = std::fs::read(path).map_err(|e| {
            RegistryError::Config(format!("cannot read CA bundle {}: {e}", path.display()))
        })?;
        self.extra_ca_pem = Some(pem);
        Ok(self)
    }
}

/// Where a registry is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: RegistryHost,
    /// Plain HTTP: only for registries the policy marks insecure.
    pub insecure: bool,
}

impl Endpoint {
    fn base(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        // Docker Hub's API is not served on docker.io itself.
        let host = if self.host.is_docker_hub() {
            "registry-1.docker.io".to_owned()
        } else {
            self.host.to_string()
        };
        format!("{scheme}://{host}")
    }
}

/// A response, with the headers the walk uses.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub docker_digest: Option<String>,
    pub content_length: Option<u64>,
    pub link_next: Option<String>,
    pub body: Vec<u8>,
    retry_after_secs: Option<u64>,
    challenge: Option<String>,
    /// The Authorization header this request carried (to tell a stale token from a new one).
    sent_auth: Option<String>,
}

impl Response {
    /// The registry's error code and message (`{"errors":[{"code":"BLOB_UNKNOWN",...}]}`),
    /// or the HTTP reason.
    pub fn error_text(&self) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(Deserialize)]
        struct ErrorEntry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let reason = format!(
            "{} {}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        );
        match serde_json::from_slice::<Errors>(&self.body) {
            Ok(e) if !e.errors.is_empty() => {
                let first = &e.errors[0];
                format!(
                    "{} {}",
                    reason.trim(),
                    if first.message.is_empty() {
                        &first.code
                    } else {
                        &first.message
                    }
                )
            }
            _ => reason.trim().to_owned(),
        }
    }
}

/// Counts of requests, for reports and the benchmark (no request may repeat in one walk).
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub token_requests: AtomicU64,
}

tokio::task_local! {
    /// The request counter of the walk running in this task. Walks share one client and run
    /// concurrently, so a delta of the client's total would count other walks' requests.
    static WALK_REQUESTS: Arc<AtomicU64>;
}

/// Run `fut` with its own request counter; returns its output and the requests it sent.
pub async fn counting_requests<F: std::future::Future>(fut: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = WALK_REQUESTS.scope(counter.clone(), fut).await;
    (out, counter.load(Ordering::Relaxed))
}

/// Told about every registry request the client sends (the webhook's metrics): the registry,
/// how long the request took (headers and body), and the HTTP status, or `None` when no answer
/// came (connection refused, timeout, TLS error).
pub trait RequestObserver: Send + Sync {
    fn observe(&self, registry: &RegistryHost, elapsed: Duration, status: Option<u16>);
}

/// A registry and an auth scope (`repository:team/app:pull`).
type ScopeKey = (RegistryHost, String);

/// A distribution API client shared by every walk.
pub struct RegistryClient {
    http: reqwest::Client,
    opts: ClientOptions,
    /// Authorization header by (registry, scope).
    tokens: Mutex<HashMap<ScopeKey, String>>,
    /// Held while a scope's token is fetched, so concurrent 401s fetch it once.
    auth_locks: std::sync::Mutex<HashMap<ScopeKey, Arc<Mutex<()>>>>,
    limits: std::sync::Mutex<HashMap<RegistryHost, Arc<Semaphore>>>,
    pub stats: Stats,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The rustls configuration: the ring provider installed explicitly, TLS 1.2 and 1.3, system
/// roots plus the extra bundle.
fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system store with a certificate rustls cannot parse must not stop tollgate.
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| RegistryError::Config(format!("CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| RegistryError::Config(format!("CA bundle: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(RegistryError::Config(
                "CA bundle holds no PEM certificate".into(),
            ));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl RegistryClient {
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let tls = tls_config(opts.extra_ca_pem.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            // Registries redirect blob GETs to storage; the walk follows a few.
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| RegistryError::Config(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            opts,
            tokens: Mutex::new(HashMap::new()),
            auth_locks: Default::default(),
            limits: Default::default(),
            stats: Stats::default(),
            observer: None,
        })
    }

    /// Report every request to `observer` as well.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Requests sent so far (including retries and token requests).
    pub fn request_count(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// Count one request: in the client's total, and in the walk it was sent for.
    fn count_request(&self) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let _ = WALK_REQUESTS.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
    }

    fn limit(&self, host: &RegistryHost) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().expect("limits lock");
        limits
            .entry(host.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.opts.per_registry_concurrency.max(1))))
            .clone()
    }

    /// `HEAD` or `GET` a manifest by tag or digest.
    pub async fn manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
        method: Method,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", ep.base());
        self.send(
            ep,
            repo,
            method,
            &url,
            Some(super::manifest::ACCEPT_MANIFESTS),
            None,
        )
        .await
    }

    /// `HEAD` a blob.
    pub async fn blob_head(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base());
        self.send(ep, repo, Method::HEAD, &url, None, None).await
    }

    /// `GET` a blob, refusing more than `max_bytes`.
    pub async fn blob_get(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        max_bytes: u64,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base());
        self.send(ep, repo, Method::GET, &url, None, Some(max_bytes))
            .await
    }

    /// Every tag of `repo`, following `Link` pagination; `None` when the repository is unknown.
    pub async fn tags(
        &self,
        ep: &Endpoint,
        repo: &str,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let url = format!(
            "{}/v2/{repo}/tags/list?n={}",
            ep.base(),
            self.opts.page_size
        );
        self.pages(ep, repo, url, 16 << 20, "tag list", |p: Tags| {
            p.tags.unwrap_or_default()
        })
        .await
    }

    /// Every repository of the registry (`/v2/_catalog`), following pagination.
    pub async fn catalog(&self, ep: &Endpoint) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let url = format!("{}/v2/_catalog?n={}", ep.base(), self.opts.page_size);
        self.pages(ep, "", url.clone(), 64 << 20, "catalog", |p: Catalog| {
            p.repositories
        })
        .await?
        .ok_or_else(|| RegistryError::Status {
            url,
            status: 404,
            message: "the registry does not serve the catalog API (/v2/_catalog)".into(),
        })
    }

    /// GET `url` and every page its `Link: rel="next"` headers name, each page at most
    /// `max_bytes`, `items` taking what a page lists. `None` for a 404.
    async fn pages<P: serde::de::DeserializeOwned, T>(
        &self,
        ep: &Endpoint,
        scope: &str,
        mut url: String,
        max_bytes: u64,
        what: &str,
        items: impl Fn(P) -> Vec<T>,
    ) -> Result<Option<Vec<T>>, RegistryError> {
        let mut all = Vec::new();
        loop {
            let r = self
                .send(ep, scope, Method::GET, &url, None, Some(max_bytes))
                .await?;
            if r.status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !r.status.is_success() {
                return Err(RegistryError::Status {
                    url,
                    status: r.status.as_u16(),
                    message: r.error_text(),
                });
            }
            let page: P = serde_json::from_slice(&r.body).map_err(|e| {
                RegistryError::Protocol(format!("{url}: {what} is not valid JSON: {e}"))
            })?;
            all.extend(items(page));
            match r.link_next {
                Some(next) => url = join_link(&ep.base(), &next),
                None => return Ok(Some(all)),
            }
        }
    }

    /// One request with auth and retries. Transient failures (connection errors, timeouts,
    /// 429, 5xx) are retried with exponential backoff, `Retry-After` honoured; 4xx are final.
    async fn send(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
    ) -> Result<Response, RegistryError> {
        let scope = if repo.is_empty() {
            "registry:catalog:*".to_owned()
        } else {
            format!("repository:{repo}:pull")
        };
        let mut attempt = 0u32;
        let mut authenticated_once = false;
        loop {
            let result = {
                let limit = self.limit(&ep.host);
                let _permit = limit.acquire().await.expect("semaphores are never closed");
                self.send_once(ep, &scope, method.clone(), url, accept, max_body)
                    .await
            };
            let retry_after = match result {
                Ok(r) if r.status == StatusCode::UNAUTHORIZED && !authenticated_once => {
                    authenticated_once = true;
                    self.authenticate(ep, &scope, &r).await?;
                    continue;
                }
                Ok(r)
                    if r.status == StatusCode::UNAUTHORIZED
                        || r.status == StatusCode::FORBIDDEN =>
                {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.host.to_string(),
                        status: r.status.as_u16(),
                    });
                }
                Ok(r)
                    if r.status == StatusCode::TOO_MANY_REQUESTS || r.status.is_server_error() =>
                {
                    if attempt >= self.opts.retries {
                        return Err(RegistryError::Status {
                            url: url.to_owned(),
                            status: r.status.as_u16(),
                            message: r.error_text(),
                        });
                    }
                    r.retry_after()
                }
                Ok(r) => return Ok(r),
                Err(e @ RegistryError::Transport { .. }) if attempt < self.opts.retries => {
                    tracing::debug!(url, error = %e, "transient error, retrying");
                    None
                }
                Err(e) => return Err(e),
            };
            let backoff = self.opts.backoff * 2u32.saturating_pow(attempt);
            let wait = match retry_after {
                Some(ra) if ra > self.opts.max_retry_after => {
                    return Err(RegistryError::Status {
                        url: url.to_owned(),
                        status: 429,
                        message: format!(
                            "the registry asks to retry after {}s, longer than tollgate waits",
                            ra.as_secs()
                        ),
                    });
                }
                Some(ra) => ra.max(backoff),
                None => backoff,
            };
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
    ) -> Result<Response, RegistryError> {
        let started = Instant::now();
        let result = self
            .send_once_unobserved(ep, scope, method, url, accept, max_body)
            .await;
        if let Some(o) = &self.observer {
            let status = match &result {
                Ok(r) => Some(r.status.as_u16()),
                Err(_) => None,
            };
            o.observe(&ep.host, started.elapsed(), status);
        }
        result
    }

    async fn send_once_unobserved(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
    ) -> Result<Response, RegistryError> {
        let mut req = self.http.request(method.clone(), url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let token = self
            .tokens
            .lock()
            .await
            .get(&(ep.host.clone(), scope.to_owned()))
            .cloned();
        if let Some(t) = &token {
            req = req.header(AUTHORIZATION, t);
        }
        self.count_request();
        let transport = |e: reqwest::Error| RegistryError::Transport {
            url: url.to_owned(),
            message: error_chain(&e),
        };
        let mut res = req.send().await.map_err(transport)?;
        let headers = res.headers().clone();
        let content_length = header_u64(&headers, CONTENT_LENGTH.as_str());
        let mut body = Vec::new();
        if method != Method::HEAD {
            let limit = max_body.unwrap_or(u64::MAX);
            if content_length.is_some_and(|n| n > limit) {
                return Err(RegistryError::TooLarge {
                    url: url.to_owned(),
                    limit,
                });
            }
            while let Some(chunk) = res.chunk().await.map_err(transport)? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    return Err(RegistryError::TooLarge {
                        url: url.to_owned(),
                        limit,
                    });
                }
            }
        }
        let status = res.status();
        Ok(Response {
            status,
            content_type: header_str(&headers, CONTENT_TYPE.as_str())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned()),
            docker_digest: header_str(&headers, "docker-content-digest").map(str::to_owned),
            content_length,
            link_next: header_str(&headers, LINK.as_str()).and_then(parse_link_next),
            body,
            retry_after_secs: None,
            challenge: None,
            sent_auth: None,
        }
        .with_retry_after(header_str(&headers, RETRY_AFTER.as_str()))
        .with_challenge(header_str(&headers, WWW_AUTHENTICATE.as_str()))
        .with_sent_auth(token))
    }

    /// Answer a 401: a bearer token from the realm (with basic credentials if we have them),
    /// or basic credentials directly.
    async fn authenticate(
        &self,
        ep: &Endpoint,
        scope: &str,
        unauthorized: &Response,
    ) -> Result<(), RegistryError> {
        let key = (ep.host.clone(), scope.to_owned());
        // One token request per scope, however many requests got the 401 at once: the others
        // wait here, then find the token the first one stored.
        let lock = {
            let mut locks = self.auth_locks.lock().expect("auth locks");
            locks.entry(key.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let current = self.tokens.lock().await.get(&key).cloned();
        if current.is_some() && current != unauthorized.sent_auth {
            return Ok(());
        }
        let creds = self.opts.credentials.get(&ep.host.to_string()).cloned();
        let challenge = unauthorized.challenge.as_deref().and_then(parse_challenge);
        let header = match challenge {
            Some(Challenge::Basic) => {
                let Some(c) = creds else {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.host.to_string(),
                        status: 401,
                    });
                };
                basic_header(&c.username, &c.password)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let scope = asked.unwrap_or_else(|| scope.to_owned());
                let mut req = self.http.get(&realm).query(&[("scope", scope.as_str())]);
                if let Some(s) = &service {
                    req = req.query(&[("service", s.as_str())]);
                }
                if let Some(c) = &creds {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
                self.count_request();
                self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
                // The realm URL is the registry's; its error text may echo the request, never
                // our credentials, which travel only in the Authorization header.
                let res = req.send().await.map_err(|e| RegistryError::Transport {
                    url: realm.clone(),
                    message: error_chain(&e),
                })?;
                if !res.status().is_success() {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.host.to_string(),
                        status: res.status().as_u16(),
                    });
                }
                #[derive(Deserialize)]
                struct Token {
                    #[serde(default)]
                    token: Option<String>,
                    #[serde(default)]
                    access_token: Option<String>,
                }
                let body = res.bytes().await.map_err(|e| RegistryError::Transport {
                    url: realm.clone(),
                    message: error_chain(&e),
                })?;
                let t: Token = serde_json::from_slice(&body).map_err(|e| {
                    RegistryError::Protocol(format!(
                        "token response from {realm} is not valid JSON: {e}"
                    ))
                })?;
                let token = t.token.or(t.access_token).ok_or_else(|| {
                    RegistryError::Protocol(format!("token response from {realm} has no token"))
                })?;
                format!("Bearer {token}")
            }
            None => {
                return Err(RegistryError::Unauthorized {
                    registry: ep.host.to_string(),
                    status: 401,
                });
            }
        };
        // Stored under the scope tollgate looks it up by, whatever words the registry used.
        self.tokens.lock().await.insert(key, header);
        Ok(())
    }
}

impl Response {
    fn with_retry_after(mut self, v: Option<&str>) -> Self {
        self.retry_after_secs = v.and_then(|s| s.trim().parse::<u64>().ok());
        self
    }

    fn with_sent_auth(mut self, v: Option<String>) -> Self {
        self.sent_auth = v;
        self
    }

    fn with_challenge(mut self, v: Option<&str>) -> Self {
        self.challenge = v.map(str::to_owned);
        self
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs.map(Duration::from_secs)
    }
}

fn basic_header(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// `Link: </v2/_catalog?last=x&n=100>; rel="next"`.
fn parse_link_next(v: &str) -> Option<String> {
    v.split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_owned())
        })
}

fn join_link(base: &str, next: &str) -> String {
    if next.starts_with("http://") || next.starts_with("https://") {
        next.to_owned()
    } else {
        format!("{base}{next}")
    }
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_pagination() {
        assert_eq!(
            parse_link_next(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
            Some("/v2/_catalog?last=b&n=2".into())
        );
        assert_eq!(parse_link_next(r#"<https://x/y>; rel="prev""#), None);
        assert_eq!(join_link("http://h:1", "/v2/x"), "http://h:1/v2/x");
    }

    #[test]
    fn tls_config_refuses_an_empty_ca_bundle() {
        assert!(tls_config(Some(b"not a certificate")).is_err());
        assert!(tls_config(None).is_ok());
    }
}
