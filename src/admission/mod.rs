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
//! - [`tls`], [`metrics`], [`server`]: HTTPS with certificate reload, Prometheus metrics, the
//!   HTTP endpoints, policy reload and graceful shutdown (and the periodic audit of
//!   [`crate::audit::periodic`] on its own task, exported as gauges).

pub mod certs;
pub mod decide;
pub mod metrics;
pub mod patch;
pub mod review;
pub mod server;
pub mod tls;
pub mod walk;

/// A request that is not an AdmissionReview this webhook can answer. These are the only
/// requests answered with an HTTP error; everything else gets an AdmissionReview response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("the request body is larger than {limit} bytes (--max-body-bytes)")]
    TooLarge { limit: usize },
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not an AdmissionReview admission.k8s.io/v1: {0}")]
    NotAdmissionReview(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("cannot read the request body: {0}")]
    Body(String),
}

impl AdmissionError {
    /// The HTTP status: the one place these errors become responses.
    pub fn status(&self) -> u16 {
        match self {
            AdmissionError::TooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::TooLarge { .. } => "too-large",
            AdmissionError::NotJson(_) => "not-json",
            AdmissionError::NotAdmissionReview(_) => "not-admission-review",
            AdmissionError::NoRequest => "no-request",
            AdmissionError::Body(_) => "body",
        }
    }
}
