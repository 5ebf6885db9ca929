//! The registry: an image resolved end to end (index, every child manifest, config, every layer
//! blob), every piece checked against its digest, with caching; the registry-backed rules on
//! top of that walk. Only registries the policy approves are ever contacted.
//!
//! - [`error`]: why an operation could not be done (never a verdict on an image);
//! - [`resolution`]: what a walk found, a tree with the path to each broken piece; pure;
//! - [`oci`]: the OCI and Docker manifest formats; pure;
//! - [`http`], [`auth`]: the distribution API over HTTPS, credentials and token exchange;
//! - [`pull`]: a workload's own credentials, from its pull secrets, for its walks only; pure;
//! - [`cache`], [`resolve`]: the cached fetches and the walk;
//! - [`signatures`], [`referrers`]: cosign's signature tags, and OCI 1.1 referrers (the API, or
//!   its tag fallback) with their artifacts; [`notation`]: notation signatures among them;
//! - [`scope`]: one walk's request budget and whose walk it is; [`slots`]: each registry's
//!   request slots, shared fairly between tenants (pure decision, and its lock);
//! - [`facts`], [`base`], [`sites`]: the registry-backed rules, the base-image check, and
//!   their findings placed at every use of an image;
//! - [`verify`], [`scan`]: `tollgate verify` and `tollgate registry scan`;
//! - [`contents`]: tag digests and manifests with their configs, for `tollgate catalog sync`;
//!   [`layers`]: a layer blob streamed into the dpkg scanner, for `tollgate catalog inventory`.

/// Shell: the docker config file and credential helpers.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod auth;
pub mod base;
/// Shell: the clock that says when a kept answer is due to be asked again (moka's time to live
/// reads its own).
#[allow(clippy::disallowed_methods)]
mod cache;
pub mod contents;
mod error;
pub mod facts;
/// Shell: HTTPS, the CA bundle file, request timing.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod http;
pub mod layers;
pub mod notation;
pub mod oci;
pub mod pull;
pub mod referrers;
pub mod resolution;
pub mod resolve;
pub mod scan;
pub mod scope;
pub mod signatures;
pub mod sites;
pub mod slots;
/// Shell: the clock that ends a thread's copy of a verdict.
#[allow(clippy::disallowed_methods)]
mod verdicts;
pub mod verify;

pub use error::RegistryError;
pub use http::{ClientOptions, Endpoint, RegistryClient};
pub use resolution::{Broken, Node, NodeKind, NodeStatus, Resolution, TagState};
pub use resolve::{ResolveOptions, Resolver};
pub use scope::{MAX_WALK_REQUESTS, Tenant};
