//! `tollgate catalog serve`: the JSON API and the read-only web page over one catalog, plain
//! HTTP (meant for loopback or behind an ingress that terminates TLS), and the one write:
//! `POST /v1/builds`, with a bearer token.
//!
//! Bounded: bodies (64 KiB), rows per page, each query's time, the time a client may take to
//! send its request head, and the connections open at once. Domain errors become responses in
//! one place ([`ApiError`]). The token is never logged, and compared in constant time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::builds::BuildRequest;
use super::error::CatalogError;
use super::query::{Repository, RunFilter, Subject};
use super::security::SecurityFilter;
use super::store::Catalog;
use super::web;

/// Largest `POST /v1/builds` body: a build with its 64 parents is a few KiB.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// Most rows one page may ask for.
pub const MAX_PER_PAGE: usize = 500;
/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// A bearer token, kept only as its SHA-256: comparing two fixed-length hashes byte by byte
/// with no early exit takes the same time whatever the guess, and the token itself is not
/// held where a debug print could reach it.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the builds token file holds no token (it is empty or only whitespace)")]
pub struct EmptyToken;

/// Largest token file read: a token is a few dozen bytes.
const MAX_TOKEN_FILE: u64 = 4096;

/// Why the builds token cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("cannot read the builds token file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is larger than a token.
    #[error("the builds token file {path} is larger than {MAX_TOKEN_FILE} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// It holds nothing.
    #[error("the builds token file {path}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// That it is empty.
        #[source]
        source: EmptyToken,
    },
}

/// Read the token from its file, at most [`MAX_TOKEN_FILE`] bytes.
pub async fn read_token(path: &Path) -> Result<Token, TokenError> {
    use tokio::io::AsyncReadExt as _;
    let read = |source| TokenError::Read {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(read)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(TokenError::TooLarge {
            path: path.to_owned(),
        });
    }
    Token::from_file_contents(&bytes).map_err(|source| TokenError::Empty {
        path: path.to_owned(),
        source,
    })
}

impl Token {
    /// The token from a file's contents (a mounted Secret): surrounding whitespace, such as
    /// the newline an editor or `echo` adds, is not part of it.
    pub fn from_file_contents(contents: &[u8]) -> Result<Token, EmptyToken> {
        let t = contents.trim_ascii();
        if t.is_empty() {
            return Err(EmptyToken);
        }
        Ok(Token(sha2::Sha256::digest(t).into()))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let h: [u8; 32] = sha2::Sha256::digest(presented).into();
        h.iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0: any free port; [`CatalogServer::local_addr`] says which).
    pub listen: SocketAddr,
    /// The file holding the token `POST /v1/builds` needs (a mounted Secret), read at each
    /// write so that a rotated Secret takes effect without a restart; None: writes are
    /// refused.
    pub builds_token_file: Option<PathBuf>,
    /// Rows per page when the request does not say.
    pub page_size: usize,
    /// Longest one request's queries may take.
    pub query_timeout: Duration,
}

struct AppState {
    catalog: Catalog,
    token_file: Option<PathBuf>,
    page_size: usize,
    query_timeout: Duration,
}

/// A bound server.
pub struct CatalogServer {
    listener: TcpListener,
    router: Router,
}

impl CatalogServer {
    /// Bind the port.
    pub async fn bind(catalog: Catalog, config: ServeConfig) -> std::io::Result<CatalogServer> {
        let listener = TcpListener::bind(config.listen).await?;
        let state = Arc::new(AppState {
            catalog,
            token_file: config.builds_token_file,
            page_size: config.page_size.clamp(1, MAX_PER_PAGE),
            query_timeout: config.query_timeout,
        });
        Ok(CatalogServer {
            listener,
            router: router(state),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes; connections in flight are then dropped.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let builder = builder.clone();
            let router = self.router.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router))
                    .await;
            });
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(list_page))
        .route("/image", get(image_page))
        .route("/security", get(security_page))
        .route("/v1/security", get(security))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/images", get(images))
        .route("/v1/history", get(history))
        .route("/v1/history/{*subject}", get(history_at))
        .route("/v1/running", get(running))
        .route("/v1/who-uses", get(who_uses))
        .route("/v1/builds", axum::routing::post(post_build))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What a request may fail with, mapped to a response in one place.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("POST /v1/builds needs `Authorization: Bearer TOKEN`")]
    NoToken,
    #[error("the bearer token is not the builds token")]
    WrongToken,
    #[error("this server takes no writes: it was started without --builds-token-file")]
    WritesDisabled,
    #[error("the builds token cannot be read")]
    Token(#[source] TokenError),
    #[error("the catalog did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the catalog failed")]
    Catalog(#[source] CatalogError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NoToken | ApiError::WrongToken => StatusCode::UNAUTHORIZED,
            ApiError::WritesDisabled => StatusCode::FORBIDDEN,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Catalog(_) | ApiError::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            // The cause chain names the query, never the URL's password.
            ApiError::Catalog(e) => {
                tracing::error!(error = %crate::error_text::error_text(e), "catalog request failed");
            }
            // It names the file, never its contents.
            ApiError::Token(e) => {
                tracing::error!(error = %crate::error_text::error_text(e), "builds token unreadable");
            }
            _ => {}
        }
        self.to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut r = (
            status,
            axum::Json(serde_json::json!({ "error": self.message() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate-catalog\""),
            );
        }
        r
    }
}

/// The same error as a page.
struct PageError(ApiError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        html(status, web::error(status.as_u16(), &self.0.message()))
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, Html(body)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&web::content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn bounded<T>(
    state: &AppState,
    f: impl std::future::Future<Output = Result<T, CatalogError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.query_timeout, f).await {
        Ok(r) => r.map_err(ApiError::Catalog),
        Err(_) => Err(ApiError::Timeout(state.query_timeout)),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    repository: Option<String>,
    cluster: Option<String>,
    namespace: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

fn filter(cluster: &Option<String>, namespace: &Option<String>) -> RunFilter {
    RunFilter {
        cluster: cluster.clone().filter(|c| !c.is_empty()),
        namespace: namespace.clone().filter(|n| !n.is_empty()),
    }
}

fn glob(pattern: Option<&str>) -> Result<Option<globset::GlobMatcher>, ApiError> {
    pattern
        .filter(|p| !p.is_empty())
        .map(|p| {
            globset::Glob::new(p)
                .map(|g| g.compile_matcher())
                .map_err(|e| ApiError::BadRequest(format!("repository {p:?} is not a glob: {e}")))
        })
        .transpose()
}

/// The page's slice of `items` and whether more follow.
fn paged<T>(items: Vec<T>, page: usize, per_page: usize) -> (Vec<T>, bool) {
    let start = (page - 1).saturating_mul(per_page);
    let total = items.len();
    let slice: Vec<T> = items.into_iter().skip(start).take(per_page).collect();
    (slice, start.saturating_add(per_page) < total)
}

fn page_args(state: &AppState, page: Option<usize>, per_page: Option<usize>) -> (usize, usize) {
    (
        page.unwrap_or(1).max(1),
        per_page.unwrap_or(state.page_size).clamp(1, MAX_PER_PAGE),
    )
}

/// One page of `catalog images` for the API and the list page alike: the page number, its
/// size, the repositories on it, and whether more follow.
async fn images_of(
    state: &AppState,
    q: &ListQuery,
) -> Result<(usize, usize, Vec<Repository>, bool), ApiError> {
    let g = glob(q.repository.as_deref())?;
    let (page, per_page) = page_args(state, q.page, q.per_page);
    let (repos, more) = bounded(
        state,
        state.catalog.images_page(
            g.as_ref(),
            &filter(&q.cluster, &q.namespace),
            Some(((page - 1).saturating_mul(per_page), per_page)),
        ),
    )
    .await?;
    Ok((page, per_page, repos, more))
}

async fn images(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (page, per_page, repos, more) = images_of(&state, &q).await?;
    Ok(axum::Json(serde_json::json!({
        "page": page, "per_page": per_page, "more": more, "repositories": repos,
    }))
    .into_response())
}

#[derive(Debug, serde::Deserialize)]
struct SubjectQuery {
    #[serde(alias = "ref", alias = "base")]
    subject: Option<String>,
    cluster: Option<String>,
    namespace: Option<String>,
}

fn subject(s: Option<&str>, name: &str) -> Result<Subject, ApiError> {
    let s = s
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("give ?{name}=IMAGE|DIGEST")))?;
    s.parse()
        .map_err(|e| ApiError::BadRequest(crate::error_text::error_text(&e)))
}

async fn history(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SubjectQuery>,
) -> Result<Response, ApiError> {
    let s = subject(q.subject.as_deref(), "subject")?;
    let h = bounded(
        &state,
        state.catalog.history(&s, &filter(&q.cluster, &q.namespace)),
    )
    .await?;
    Ok(axum::Json(h).into_response())
}

/// `/v1/history/registry/app:1.0`, `/v1/history/sha256:…`: the subject in the path.
async fn history_at(
    state: State<Arc<AppState>>,
    axum::extract::Path(subject): axum::extract::Path<String>,
    Query(mut q): Query<SubjectQuery>,
) -> Result<Response, ApiError> {
    q.subject = Some(subject);
    history(state, Query(q)).await
}

async fn who_uses(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SubjectQuery>,
) -> Result<Response, ApiError> {
    let s = subject(q.subject.as_deref(), "base")?;
    let w = bounded(
        &state,
        state
            .catalog
            .who_uses(&s, &filter(&q.cluster, &q.namespace)),
    )
    .await?;
    Ok(axum::Json(w).into_response())
}

#[derive(Debug, serde::Deserialize)]
struct RunningQuery {
    at: Option<String>,
    cluster: Option<String>,
    namespace: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn running(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RunningQuery>,
) -> Result<Response, ApiError> {
    let at = match q.at.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => a
            .parse::<jiff::Timestamp>()
            .map_err(|e| ApiError::BadRequest(format!("at {a:?} is not an RFC 3339 time: {e}")))?,
        None => jiff::Timestamp::now(),
    };
    let f = filter(&q.cluster, &q.namespace);
    let runs = bounded(
        &state,
        state
            .catalog
            .running_at(at, f.cluster.as_deref(), f.namespace.as_deref()),
    )
    .await?;
    let (page, per_page) = page_args(&state, q.page, q.per_page);
    let (runs, more) = paged(runs, page, per_page);
    Ok(axum::Json(serde_json::json!({
        "at": at, "page": page, "per_page": per_page, "more": more, "runs": runs,
    }))
    .into_response())
}

async fn post_build(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(token_file) = &state.token_file else {
        return Err(ApiError::WritesDisabled);
    };
    let token = read_token(token_file).await.map_err(ApiError::Token)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(ApiError::NoToken)?;
    if !token.matches(presented) {
        return Err(ApiError::WrongToken);
    }
    let request: BuildRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a build: {e}")))?;
    let build = request
        .validate()
        .map_err(|e| ApiError::BadRequest(crate::error_text::error_text(&e)))?;
    let id = bounded(
        &state,
        state.catalog.record_build(&build, jiff::Timestamp::now()),
    )
    .await?;
    tracing::info!(digest = %build.digest, builder = %build.builder, id, "build registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "id": id, "digest": build.digest })),
    )
        .into_response())
}

async fn list_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let (page, _, repos, more) = images_of(&state, &q).await.map_err(PageError)?;
    Ok(html(
        StatusCode::OK,
        web::list(
            &repos,
            q.repository.as_deref().filter(|r| !r.is_empty()),
            web::Paging { page, more },
        ),
    ))
}

async fn image_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SubjectQuery>,
) -> Result<Response, PageError> {
    let s = subject(q.subject.as_deref(), "ref").map_err(PageError)?;
    let h = bounded(
        &state,
        state.catalog.history(&s, &filter(&q.cluster, &q.namespace)),
    )
    .await
    .map_err(PageError)?;
    Ok(html(StatusCode::OK, web::image(&h)))
}

#[derive(Debug, serde::Deserialize)]
struct SecurityQuery {
    cluster: Option<String>,
    namespace: Option<String>,
    running: Option<bool>,
    urgency: Option<String>,
}

impl SecurityQuery {
    fn filter(&self) -> SecurityFilter {
        SecurityFilter {
            runs: filter(&self.cluster, &self.namespace),
            running: self.running.unwrap_or(false),
            min_urgency: self.urgency.clone().filter(|u| !u.is_empty()),
        }
    }
}

async fn security(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SecurityQuery>,
) -> Result<Response, ApiError> {
    let r = bounded(&state, state.catalog.security_report(&q.filter())).await?;
    Ok(axum::Json(r).into_response())
}

async fn security_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SecurityQuery>,
) -> Result<Response, PageError> {
    let r = bounded(&state, state.catalog.security_report(&q.filter()))
        .await
        .map_err(PageError)?;
    Ok(html(StatusCode::OK, web::security(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::same(b"s3cret".as_slice(), true)]
    #[case::prefix(b"s3cre".as_slice(), false)]
    #[case::longer(b"s3cret!".as_slice(), false)]
    #[case::empty(b"".as_slice(), false)]
    fn a_token_matches_only_itself(#[case] presented: &[u8], #[case] want: bool) {
        let t = Token::from_file_contents(b"s3cret\n").unwrap();
        assert_eq!(t.matches(presented), want);
    }

    #[test]
    fn an_empty_token_file_is_refused_and_a_token_never_prints() {
        assert!(Token::from_file_contents(b" \n").is_err());
        let t = Token::from_file_contents(b"s3cret").unwrap();
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[rstest]
    #[case::first(1, 2, vec![1, 2], true)]
    #[case::last(3, 2, vec![5], false)]
    #[case::past_the_end(9, 2, vec![], false)]
    fn pages_slice_the_answer(
        #[case] page: usize,
        #[case] per: usize,
        #[case] want: Vec<i32>,
        #[case] more: bool,
    ) {
        assert_eq!(paged(vec![1, 2, 3, 4, 5], page, per), (want, more));
    }
}
