//! The registry side: resolving an image end to end (index, every child manifest, config, every
//! layer blob), checking every piece against its digest, with caching. This is the IO shell
//! around the pure core; `manifest` holds the pure format parsing.

pub mod auth;
pub mod base;
pub mod http;
pub mod manifest;
pub mod resolve;
pub mod rules;
pub mod scan;
pub mod sites;

pub use http::{ClientOptions, Endpoint, RegistryClient};
pub use resolve::{
    Node, NodeKind, NodeStatus, Problem, Resolution, ResolveOptions, Resolver, TagState,
};

/// Why a registry operation could not be done. A missing manifest or blob is not an error: it
/// is a finding of the walk ([`Resolution::problems`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} is not approved by the policy, so tollgate did not contact it \
         (image references are untrusted input)"
    )]
    NotApproved { registry: String },
    #[error(
        "registry {registry} refused access (HTTP {status}); add credentials for it to the registry config (docker config.json)"
    )]
    Unauthorized { registry: String, status: u16 },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: {message} (HTTP {status})")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: the response is larger than {limit} bytes; not downloaded")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "the registry did not answer within the {millis} ms deadline; if it is slow but healthy, \
         raise --deadline"
    )]
    Deadline { millis: u64 },
    #[error("registry protocol error: {0}")]
    Protocol(String),
    #[error("registry client configuration: {0}")]
    Config(String),
}
