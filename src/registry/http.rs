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

use super::RegistryError;
use super::auth::{CredentialStore, Credentials, Tokens};
use super::pull::PullAuth;
use super::slots::FairSlots;
use crate::policy::HostPattern;
use crate::reference::RegistryHost;

/// The largest manifest read: distribution itself refuses to store a larger one, so anything
/// bigger is not a manifest it served honestly, and is not read into memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Credentials by registry `host[:port]`, used to answer that registry's 401 challenges;
    /// empty: every registry is asked anonymously.
    pub credentials: CredentialStore,
    /// PEM bundle of extra CA certificates, trusted besides the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Requests in flight to one registry at a time.
    pub per_registry_concurrency: usize,
    /// How many of one registry's requests in flight one tenant (a walk's
    /// [`super::Tenant`], at admission the namespace) may hold; the rest wait, and a freed slot
    /// goes to the waiting tenant holding the fewest ([`super::slots`]). The default, all of
    /// them, suits one caller; `serve` gives a namespace half.
    pub tenant_share: usize,
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
    /// For each registry host, the other hosts its redirects may lead to (the policy's
    /// `redirectHosts`). A redirect anywhere else is refused.
    pub redirect_hosts: Vec<(HostPattern, Vec<RegistryHost>)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: CredentialStore::anonymous(),
            extra_ca_pem: None,
            per_registry_concurrency: 8,
            tenant_share: 8,
            request_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
            page_size: 1000,
            redirect_hosts: Vec::new(),
        }
    }
}

impl ClientOptions {
    /// Read an extra CA bundle from a PEM file.
    pub fn with_extra_ca_file(mut self, path: &Path) -> Result<Self, RegistryError> {
        let pem = std::fs::read(path).map_err(|e| RegistryError::CaFile {
            path: path.to_owned(),
            source: Arc::new(e),
        })?;
        self.extra_ca_pem = Some(pem);
        Ok(self)
    }
}

/// Where a registry is, how to reach it, and whose credentials to use there.
///
/// It is part of every cache key of the resolver, so an answer fetched with a workload's pull
/// secret ([`super::pull`]) is kept apart from answers fetched with the server's own
/// credentials, and from another secret's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The registry as references name it; Docker Hub's API is reached at
    /// `registry-1.docker.io`.
    pub host: RegistryHost,
    /// Plain HTTP: only for registries the policy marks insecure.
    pub insecure: bool,
    /// A pull secret's credentials for this host, used instead of the configured ones; `None`:
    /// the configured credentials (`--registry-config`), or anonymous access.
    pub auth: Option<PullAuth>,
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
    /// The HTTP status, after any redirects.
    pub status: StatusCode,
    /// `Content-Type`, without its parameters.
    pub content_type: Option<String>,
    /// `Docker-Content-Digest`: the manifest's digest as the registry computed it (the digest
    /// a tag points at, from a HEAD).
    pub docker_digest: Option<String>,
    /// `Content-Length`, in bytes: what a HEAD reports as a blob's size.
    pub content_length: Option<u64>,
    /// The target of a `Link: <…>; rel="next"` header, as sent (absolute or a path); `None` on
    /// the last page.
    pub link_next: Option<String>,
    /// `OCI-Filters-Applied`: the filters a referrers answer applied (`artifactType`).
    pub filters_applied: Option<String>,
    /// The body; empty for a HEAD. Never larger than the request's cap: a larger one is a
    /// [`RegistryError::TooLarge`] instead.
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

/// The longest a streamed blob may take in all: an 8 GiB cap at a slow but honest 15 MB/s.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// A blob being read: the answer's headers, then its body chunk by chunk. Each chunk must
/// arrive within the client's request timeout (a registry that stalls mid-body is an error,
/// not a wait), and all of them within [`STREAM_TIMEOUT`] and the byte cap.
#[derive(Debug)]
pub struct BlobStream {
    /// The status and headers; `body` is empty (a failure's is read).
    pub response: Response,
    body: Option<reqwest::Response>,
    url: String,
    left: u64,
    limit: u64,
    idle: Duration,
}

impl BlobStream {
    /// The next chunk of a success's body, `None` at its end (or for a failure status).
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, RegistryError> {
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        let next = tokio::time::timeout(self.idle, body.chunk())
            .await
            .map_err(|_| RegistryError::Stalled {
                url: self.url.clone(),
                secs: self.idle.as_secs(),
            })?
            .map_err(|e| transport(&self.url, e))?;
        match next {
            Some(chunk) => {
                if chunk.len() as u64 > self.left {
                    self.body = None;
                    return Err(RegistryError::TooLarge {
                        url: self.url.clone(),
                        limit: self.limit,
                    });
                }
                self.left -= chunk.len() as u64;
                Ok(Some(chunk))
            }
            None => {
                self.body = None;
                Ok(None)
            }
        }
    }
}

/// Counts of requests, for reports and the benchmark (no request may repeat in one walk).
#[derive(Debug, Default)]
pub struct Stats {
    /// Every request sent: retries and token requests included.
    pub requests: AtomicU64,
    /// Requests sent again after a transient failure (connection error, timeout, 429, 5xx).
    pub retries: AtomicU64,
    /// Requests to a token realm, answering a bearer challenge.
    pub token_requests: AtomicU64,
}

/// Told about every registry request the client sends (the webhook's metrics): the registry,
/// how long the request took (headers and body), and the HTTP status, or `None` when no answer
/// came (connection refused, timeout, TLS error).
pub trait RequestObserver: Send + Sync {
    /// Called once per request to the registry, each retry included (token requests to the
    /// realm are not observed).
    fn observe(&self, registry: &RegistryHost, elapsed: Duration, status: Option<u16>);
}

/// A distribution API client shared by every walk.
pub struct RegistryClient {
    http: reqwest::Client,
    opts: ClientOptions,
    /// Authorization headers by registry and scope.
    tokens: Tokens,
    limits: std::sync::Mutex<HashMap<RegistryHost, Arc<FairSlots>>>,
    /// Requests sent since the client was built, by all walks together.
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
            let cert = cert.map_err(|e| RegistryError::CaPem(Arc::new(e)))?;
            roots
                .add(cert)
                .map_err(|e| RegistryError::CaCertificate(Arc::new(e)))?;
            added += 1;
        }
        if added == 0 {
            return Err(RegistryError::CaEmpty);
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls(Arc::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl RegistryClient {
    /// A client trusting the system roots and `opts.extra_ca_pem` (rustls, ring provider),
    /// following at most 5 redirects per request (registries redirect blob GETs to storage).
    /// Fails when the extra CA bundle holds no usable certificate.
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let tls = tls_config(opts.extra_ca_pem.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy(opts.redirect_hosts.clone()))
            .build()
            .map_err(|e| RegistryError::HttpClient(Arc::new(e)))?;
        Ok(RegistryClient {
            http,
            opts,
            tokens: Tokens::default(),
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

    /// Count one request about to be sent: charged to the walk it is sent for (refused once
    /// that walk has spent its budget), and counted in the client's total. Every request,
    /// retries and token requests included, comes through here.
    fn count_request(&self) -> Result<(), RegistryError> {
        super::scope::charge()?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn limit(&self, host: &RegistryHost) -> Arc<FairSlots> {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slots) = limits.get(host) {
            return slots.clone();
        }
        let slots = FairSlots::new(self.opts.per_registry_concurrency, self.opts.tenant_share);
        limits.insert(host.clone(), slots.clone());
        slots
    }

    /// The credentials for `ep`: its pull secret's when it has one (never another host's: the
    /// endpoint only carries an entry for its own host), else the configured ones.
    fn credentials<'a>(&'a self, ep: &'a Endpoint) -> Option<&'a Credentials> {
        match &ep.auth {
            Some(a) => Some(&a.credentials),
            None => self.opts.credentials.get(&ep.host.to_string()),
        }
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
            Some(super::oci::ACCEPT_MANIFESTS),
            Some(MAX_MANIFEST_BYTES),
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

    /// `GET` a blob for reading as a stream, refusing more than `max_bytes`: the answer's
    /// headers, and for a success its body, chunk by chunk ([`BlobStream::chunk`]). A failure
    /// status comes back with its (bounded) body read, as from [`Self::blob_get`].
    pub async fn blob_stream(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        max_bytes: u64,
    ) -> Result<BlobStream, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base());
        let (response, body) = self
            .send_with(ep, repo, Method::GET, &url, None, Some(max_bytes), true)
            .await?;
        Ok(BlobStream {
            response,
            body,
            url,
            left: max_bytes,
            limit: max_bytes,
            idle: self.opts.request_timeout,
        })
    }

    /// `GET` one page of the referrers of `digest` (distribution-spec v1.1, "Listing
    /// Referrers"): the first page, filtered by `artifact_type` if given, or the page a previous
    /// one's `Link: rel="next"` names (`next`), which must be on the registry's own origin.
    /// The body is bounded as a manifest's: the answer is an image index.
    pub async fn referrers(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        artifact_type: Option<&str>,
        next: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let url = match next {
            Some(link) => join_link(&ep.base(), link)?,
            None => {
                let mut url = format!("{}/v2/{repo}/referrers/{digest}", ep.base());
                if let Some(t) = artifact_type {
                    // Media types hold `/`, `+`, `;` and `=`: all encoded, so the query stays
                    // one parameter.
                    const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                        .remove(b'-')
                        .remove(b'.')
                        .remove(b'_')
                        .remove(b'~');
                    url.push_str("?artifactType=");
                    url.extend(percent_encoding::utf8_percent_encode(t, QUERY));
                }
                url
            }
        };
        self.send(
            ep,
            repo,
            Method::GET,
            &url,
            Some(super::oci::OCI_INDEX),
            Some(MAX_MANIFEST_BYTES),
        )
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
        what: &'static str,
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
            let page: P = serde_json::from_slice(&r.body).map_err(|e| RegistryError::Json {
                url: url.clone(),
                what,
                source: Arc::new(e),
            })?;
            all.extend(items(page));
            match r.link_next {
                Some(next) => url = join_link(&ep.base(), &next)?,
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
        let (response, _) = self
            .send_with(ep, repo, method, url, accept, max_body, false)
            .await?;
        Ok(response)
    }

    /// [`Self::send`], and with `stream`, a success's body left unread for the caller: retries
    /// and auth happen before the first byte of it, never after (a body half delivered cannot
    /// be taken back).
    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
        stream: bool,
    ) -> Result<(Response, Option<reqwest::Response>), RegistryError> {
        let scope = if repo.is_empty() {
            "registry:catalog:*".to_owned()
        } else {
            format!("repository:{repo}:pull")
        };
        let mut attempt = 0u32;
        let mut authenticated_once = false;
        loop {
            // Charged before waiting for a slot: a walk over its budget does not queue.
            self.count_request()?;
            let result = {
                let limit = self.limit(&ep.host);
                let _slot = limit.acquire(super::scope::tenant()).await;
                self.send_once(ep, &scope, method.clone(), url, accept, max_body, stream)
                    .await
            };
            let retry_after = match result {
                Ok((r, _)) if r.status == StatusCode::UNAUTHORIZED && !authenticated_once => {
                    authenticated_once = true;
                    let creds = self.credentials(ep);
                    let on_request = || {
                        self.count_request()?;
                        self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    };
                    self.tokens
                        .answer(
                            &self.http,
                            creds,
                            &ep.host,
                            ep.auth.as_ref().map(|a| &a.principal),
                            &scope,
                            r.challenge.as_deref(),
                            r.sent_auth.as_deref(),
                            |realm| realm_allowed(ep, &self.opts.redirect_hosts, realm),
                            on_request,
                        )
                        .await?;
                    continue;
                }
                Ok((r, _))
                    if r.status == StatusCode::UNAUTHORIZED
                        || r.status == StatusCode::FORBIDDEN =>
                {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.host.to_string(),
                        status: r.status.as_u16(),
                    });
                }
                Ok((r, _))
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
                Ok(answer) => return Ok(answer),
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

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
        stream: bool,
    ) -> Result<(Response, Option<reqwest::Response>), RegistryError> {
        let started = Instant::now();
        let result = self
            .send_once_unobserved(ep, scope, method, url, accept, max_body, stream)
            .await;
        if let Some(o) = &self.observer {
            let status = match &result {
                Ok((r, _)) => Some(r.status.as_u16()),
                Err(_) => None,
            };
            o.observe(&ep.host, started.elapsed(), status);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once_unobserved(
        &self,
        ep: &Endpoint,
        scope: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        max_body: Option<u64>,
        stream: bool,
    ) -> Result<(Response, Option<reqwest::Response>), RegistryError> {
        let mut req = self.http.request(method.clone(), url);
        if stream {
            // The client's whole-request timeout would cut a large layer; a streamed body is
            // bounded per chunk instead ([`BlobStream::chunk`]), and in total by this.
            req = req.timeout(STREAM_TIMEOUT);
        }
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let token = self
            .tokens
            .header(&ep.host, ep.auth.as_ref().map(|a| &a.principal), scope)
            .await;
        if let Some(t) = &token {
            req = req.header(AUTHORIZATION, t);
        }
        let transport = |e| transport(url, e);
        let mut res = req.send().await.map_err(transport)?;
        let headers = res.headers().clone();
        let content_length = header_u64(&headers, CONTENT_LENGTH.as_str());
        let mut body = Vec::new();
        let mut unread = None;
        let limit = max_body.unwrap_or(u64::MAX);
        if method != Method::HEAD && content_length.is_some_and(|n| n > limit) {
            return Err(RegistryError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        let status = res.status();
        if stream && status.is_success() && method != Method::HEAD {
            unread = Some(res);
        } else if method != Method::HEAD {
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
        let response = Response {
            status,
            content_type: header_str(&headers, CONTENT_TYPE.as_str())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned()),
            docker_digest: header_str(&headers, "docker-content-digest").map(str::to_owned),
            content_length,
            link_next: header_str(&headers, LINK.as_str()).and_then(parse_link_next),
            filters_applied: header_str(&headers, "oci-filters-applied").map(str::to_owned),
            body,
            retry_after_secs: None,
            challenge: None,
            sent_auth: None,
        }
        .with_retry_after(header_str(&headers, RETRY_AFTER.as_str()))
        .with_challenge(header_str(&headers, WWW_AUTHENTICATE.as_str()))
        .with_sent_auth(token);
        Ok((response, unread))
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

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// Redirects are followed (at most 5) only within the registry's own origin, or to the hosts the
/// policy names for it (`redirectHosts`: the blob storage a registry hands downloads to).
/// Anything else is an error naming the refused host: a registry's answer must never make
/// tollgate contact a host the policy does not approve. reqwest drops the `Authorization`
/// header on a redirect to another host, so credentials never follow one.
fn redirect_policy(allowed: Vec<(HostPattern, Vec<RegistryHost>)>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let next = attempt.url();
        if same_origin(first, next) {
            return attempt.follow();
        }
        let host_of = |u: &reqwest::Url| -> Option<RegistryHost> {
            let host = u.host_str()?;
            match u.port() {
                Some(p) => format!("{host}:{p}").parse().ok(),
                None => host.parse().ok(),
            }
        };
        let ok = match (host_of(first), host_of(next)) {
            (Some(from), Some(to)) => allowed
                .iter()
                .any(|(host, hosts)| host.matches(&from) && hosts.contains(&to)),
            _ => false,
        };
        // A registry reached over plain HTTP (a loopback test registry) may name plain-HTTP
        // storage; any other registry's redirects must stay on HTTPS.
        if ok && (next.scheme() == "https" || first.scheme() == "http") {
            attempt.follow()
        } else {
            let refused = next.host_str().unwrap_or("?").to_owned();
            attempt.error(format!(
                "redirect to {refused} refused: it is not the registry, and not among the \
                 policy's redirectHosts for it"
            ))
        }
    })
}

/// Docker Hub's token service, on a host of its own.
const DOCKER_HUB_AUTH: &str = "auth.docker.io";

/// Whether a bearer challenge's realm may be asked for a token: on the registry's own host
/// (HTTPS, or plain HTTP for a registry the policy marks insecure), Docker Hub's
/// `auth.docker.io` for Docker Hub, or a host the policy's `redirectHosts` name for this
/// registry, over HTTPS.
fn realm_allowed(
    ep: &Endpoint,
    redirect_hosts: &[(HostPattern, Vec<RegistryHost>)],
    realm: &str,
) -> bool {
    let Ok(url) = reqwest::Url::parse(realm) else {
        return false;
    };
    let https = url.scheme() == "https";
    let Some(host) = url.host_str().and_then(|h| match url.port() {
        Some(p) => format!("{h}:{p}").parse::<RegistryHost>().ok(),
        None => h.parse::<RegistryHost>().ok(),
    }) else {
        return false;
    };
    if host.canonical() == ep.host.canonical() {
        return https || (ep.insecure && url.scheme() == "http");
    }
    https
        && ((ep.host.is_docker_hub() && host.canonical() == DOCKER_HUB_AUTH)
            || redirect_hosts
                .iter()
                .any(|(from, to)| from.matches(&ep.host) && to.contains(&host)))
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The target of the `rel="next"` link of a `Link` header
/// (`</v2/_catalog?last=x&n=100>; rel="next"`), if it has one. Any bytes give an answer.
pub fn parse_link_next(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.trim().strip_prefix('<')?.split_once('>')?;
        params
            .split(';')
            .map(str::trim)
            .any(|p| p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next"))
            .then(|| target.to_owned())
    })
}

/// The next page's URL: a link relative to the registry, or an absolute one on the registry's
/// own origin. A link elsewhere is refused: following it would send the registry's credentials
/// to a host the policy does not approve.
fn join_link(base: &str, next: &str) -> Result<String, RegistryError> {
    let foreign = || RegistryError::ForeignLink {
        base: base.to_owned(),
        link: next.to_owned(),
    };
    if next.starts_with('/') && !next.starts_with("//") {
        return Ok(format!("{base}{next}"));
    }
    let (Ok(b), Ok(n)) = (reqwest::Url::parse(base), reqwest::Url::parse(next)) else {
        return Err(foreign());
    };
    if same_origin(&b, &n) {
        Ok(next.to_owned())
    } else {
        Err(foreign())
    }
}

/// No answer from `url`. The client's own message names the URL too; it is left out there so
/// that the URL is printed once.
pub(super) fn transport(url: &str, e: reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        url: url.to_owned(),
        source: Arc::new(e.without_url()),
    }
}

/// The wall clock, seconds since the Unix epoch: the verification time of notation signatures
/// (their `notary.x509` scheme judges certificates and expiry now, since the signing time a
/// signature claims proves nothing). Read here, in the shell, and passed into the pure check.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
        assert_eq!(join_link("http://h:1", "/v2/x").unwrap(), "http://h:1/v2/x");
        assert_eq!(
            join_link("http://h:1", "http://h:1/v2/x?last=a").unwrap(),
            "http://h:1/v2/x?last=a"
        );
        for foreign in [
            "http://other:1/v2/x",
            "https://h:1/v2/x",
            "http://h:2/v2/x",
            "//other/v2/x",
            "v2/x",
        ] {
            assert!(
                matches!(
                    join_link("http://h:1", foreign),
                    Err(RegistryError::ForeignLink { .. })
                ),
                "{foreign}"
            );
        }
        assert_eq!(parse_link_next(">x<; rel=\"next\""), None);
        assert_eq!(
            parse_link_next(r#"<https://x/a>; rel="prev", </b>; rel="next""#),
            Some("/b".into())
        );
    }

    proptest::proptest! {
        /// A registry's header is attacker input: any bytes give an answer, never a panic.
        #[test]
        fn the_link_parser_never_panics(v in "\\PC{0,200}") {
            let _ = parse_link_next(&v);
        }

        #[test]
        fn the_link_parser_never_panics_on_link_shaped_text(
            v in "([<>;,= \"]|rel|next|/v2/x|http://h){0,40}"
        ) {
            if let Some(next) = parse_link_next(&v) {
                let _ = join_link("http://h:1", &next);
            }
        }
    }

    #[test]
    fn tls_config_refuses_an_empty_ca_bundle() {
        assert!(tls_config(Some(b"not a certificate")).is_err());
        assert!(tls_config(None).is_ok());
    }
}
