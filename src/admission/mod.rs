//! The admission webhook (`tollgate serve`): AdmissionReview in, decision out.
//!
//! - [`review`]: the AdmissionReview read from the request bytes, once, keeping only what the
//!   policy reads;
//! - [`decide`]: the decision, pure: the same policy engine as `tollgate check`, plus what is
//!   particular to admission (operations, subresources, exempt namespaces, unchanged images on
//!   UPDATE, a registry that did not answer in time);
//! - [`walk`]: the registry-backed rules under the webhook's deadline, through one long-lived
//!   resolver and its caches;
//! - [`patch`]: the mutating webhook's `tag` → `tag@digest` JSON patch;
//! - `pull`: the workload's pull secrets (`--pull-secrets`), under a share of the deadline;
//! - [`certs`], [`tls`]: the webhook's certificates (generated for `tollgate certs`) and the
//!   serving certificate, reloaded in place;
//! - [`metrics`]: Prometheus metrics, and [`exposition`]: the format `/metrics` answers in (the
//!   text format 0.0.4, or OpenMetrics when asked for), pure;
//! - `state`, `handlers`, `reload`, [`server`]: what the handlers share, the HTTP endpoints,
//!   certificate and policy reload, and binding, accepting and draining (the periodic audit of
//!   [`crate::audit::periodic`] runs on its own task, exported as gauges).
//!
//! `review`, `decide` and `patch` are pure; the rest is the shell around them. Must not touch
//! git or the API server (the periodic audit does, in its own room); pull secrets come through
//! the [`crate::registry::pull::PullSecretSource`] the binary hands in.

pub mod certs;
/// Shell: the clock, per connection.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod connections;
pub mod decide;
pub mod exposition;
/// Shell: the clock, per request.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod handlers;
pub mod metrics;
pub mod patch;
mod pull;
/// Shell: reads the certificate and policy files.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod reload;
pub mod review;
/// Shell: binds and accepts.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod server;
mod state;
pub mod tls;
pub mod walk;

/// A request that is not an AdmissionReview this webhook can answer. These are the only
/// requests answered with an HTTP error; everything else gets an AdmissionReview response.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// Over `--max-body-bytes`.
    #[error("the request body is larger than {limit} bytes (--max-body-bytes)")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Not JSON at all.
    #[error("the body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not in the AdmissionReview's shape.
    #[error("the body is not an AdmissionReview admission.k8s.io/v1{}", .at.as_ref().map(|a| format!(": {a}")).unwrap_or_default())]
    NotAdmissionReview {
        /// Where in the body the shape is wrong.
        at: Option<String>,
        /// What is wrong there.
        #[source]
        source: serde_json::Error,
    },
    /// An AdmissionReview of another version or kind.
    #[error(
        "the body is not an AdmissionReview admission.k8s.io/v1: expected apiVersion \
         {expected_version:?} and kind {expected_kind:?}, got apiVersion {api_version} and kind \
         {kind} (set admissionReviewVersions: [v1] in the webhook configuration)"
    )]
    WrongVersion {
        /// What this webhook reads.
        expected_version: &'static str,
        /// What this webhook reads.
        expected_kind: &'static str,
        /// As sent (quoted), or `(none)`.
        api_version: String,
        /// As sent (quoted), or `(none)`.
        kind: String,
    },
    /// An AdmissionReview without `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// The body could not be read.
    #[error("cannot read the request body")]
    Body(#[source] axum::Error),
    /// The request bodies in flight already take the memory they may
    /// (`--max-inflight-body-bytes`).
    #[error("too many request bytes in flight (--max-inflight-body-bytes); the API server retries")]
    Busy,
    /// The body did not arrive in time.
    #[error("cannot read the request body: it did not arrive within {} s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
}

impl AdmissionError {
    /// The HTTP status: the one place these errors become responses.
    pub fn status(&self) -> u16 {
        match self {
            AdmissionError::TooLarge { .. } => 413,
            AdmissionError::Busy => 503,
            _ => 400,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::TooLarge { .. } => "too-large",
            AdmissionError::NotJson(_) => "not-json",
            AdmissionError::NotAdmissionReview { .. } | AdmissionError::WrongVersion { .. } => {
                "not-admission-review"
            }
            AdmissionError::NoRequest => "no-request",
            AdmissionError::Body(_) | AdmissionError::BodyTimeout(_) => "body",
            AdmissionError::Busy => "busy",
        }
    }
}
