//! Why a registry operation could not be done. A missing manifest or blob is not an error: it
//! is a finding of the walk ([`super::Resolution::problems`]).
//!
//! The causes (transport, TLS, JSON) are kept as sources, behind `Arc` so that the error stays
//! `Clone` (the resolver's caches share one failed fetch between the lookups that waited for
//! it). Print with `{:#}` (anyhow) or [`crate::report::error_text`] to see each cause once.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a registry operation could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The policy does not approve the registry; nothing was sent.
    #[error(
        "registry {registry} is not approved by the policy, so tollgate did not contact it \
         (image references are untrusted input)"
    )]
    NotApproved {
        /// The registry as the reference names it.
        registry: String,
    },
    /// The registry refused our credentials, or asked for some we do not have.
    #[error(
        "registry {registry} refused access (HTTP {status}); add credentials for it to the registry config (docker config.json)"
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// 401 or 403.
        status: u16,
    },
    /// No HTTP answer: connection refused, reset, TLS failure, timeout.
    #[error("cannot reach {url}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What the HTTP client saw (its own message leaves the URL out).
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// An answer that is neither success nor not-found, after retries.
    #[error("{url}: {message} (HTTP {status})")]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own error text, or the HTTP reason.
        message: String,
    },
    /// A streamed body that stopped arriving: the registry sent nothing for a whole request
    /// timeout in the middle of it.
    #[error("{url}: the registry sent nothing for {secs} s in the middle of the body")]
    Stalled {
        /// The request's URL.
        url: String,
        /// The request timeout, in seconds.
        secs: u64,
    },
    /// An answer larger than tollgate reads for its kind.
    #[error("{url}: the response is larger than {limit} bytes; not downloaded")]
    TooLarge {
        /// The request's URL.
        url: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The whole walk of one image took longer than its deadline.
    #[error(
        "the registry did not answer within the {millis} ms deadline; if it is slow but healthy, \
         raise --deadline"
    )]
    Deadline {
        /// The deadline, in milliseconds.
        millis: u64,
    },
    /// One image's walk needed more registry requests than one walk may send: stopped, so not
    /// checked (never a verdict on the image).
    #[error(
        "the walk of this image needed more than {limit} registry requests, the most one walk \
         sends (--max-walk-requests); it was stopped before it could check the image"
    )]
    WalkRequests {
        /// The budget.
        limit: u64,
    },
    /// An answer that is not the JSON the distribution API specifies.
    #[error("{url}: the {what} is not valid JSON")]
    Json {
        /// The request's URL.
        url: String,
        /// What was read (`tag list`, `catalog`, `token response`).
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A listing longer than tollgate reads (a referrers list of more pages or descriptors than
    /// its bound): not read in part, since what was left out could be what decides.
    #[error("{url}: the {what} has more than {limit} {unit}; tollgate reads no more")]
    TooMany {
        /// The request's URL (the first page's).
        url: String,
        /// What was listed (`referrers list`).
        what: &'static str,
        /// The bound.
        limit: usize,
        /// What the bound counts (`pages`, `descriptors`).
        unit: &'static str,
    },
    /// An answer that is not what it must be (an index that is not one, bytes that do not hash
    /// to their digest), where the caller cannot go on without it.
    #[error("{url}: the {what} is invalid: {message}")]
    Invalid {
        /// The request's URL.
        url: String,
        /// What was read (`referrers index`).
        what: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// A pagination link to another origin: not followed, it would carry the credentials away.
    #[error(
        "the registry at {base} links its next page to {link}, another origin; tollgate follows \
         only links on the registry's own origin"
    )]
    ForeignLink {
        /// The registry's base URL.
        base: String,
        /// The link as sent.
        link: String,
    },
    /// A bearer challenge whose token realm is on a host the policy does not approve for this
    /// registry: not contacted, it would be sent the registry's credentials.
    #[error(
        "the registry {registry} asks for a token from {realm}, which is neither the registry \
         nor among the policy's redirectHosts for it (and HTTPS); tollgate does not contact it"
    )]
    ForeignRealm {
        /// The registry.
        registry: String,
        /// The realm URL as the challenge named it.
        realm: String,
    },
    /// A token endpoint that answered without a token.
    #[error("the token response from {realm} has no token")]
    NoToken {
        /// The token endpoint.
        realm: String,
    },
    /// The `--ca-file` bundle cannot be read.
    #[error("cannot read CA bundle {path}")]
    CaFile {
        /// The bundle's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The CA bundle is not PEM certificates.
    #[error("the CA bundle is not valid PEM")]
    CaPem(#[source] Arc<rustls_pki_types::pem::Error>),
    /// A certificate of the CA bundle cannot be used as a trust anchor.
    #[error("a certificate of the CA bundle cannot be trusted")]
    CaCertificate(#[source] Arc<rustls::Error>),
    /// The CA bundle holds no certificate at all.
    #[error("the CA bundle holds no PEM certificate")]
    CaEmpty,
    /// The TLS configuration cannot be built.
    #[error("TLS configuration")]
    Tls(#[source] Arc<rustls::Error>),
    /// The HTTP client cannot be built.
    #[error("HTTP client")]
    HttpClient(#[source] Arc<reqwest::Error>),
}
