//! Checking manifests against the policy: every image of every workload in a document, each
//! finding placed at its file:line and JSON pointer.
//!
//! - [`document`]: one parsed document (a manifest object, a List, anything else skipped), and
//!   the placing of a rule outcome at an image's site; pure;
//! - [`explain`]: one reference against every rule, with why it passes or fails; pure;
//! - [`values`]: Helm values files, whose images are keys of a mapping rather than container
//!   fields; pure;
//! - [`files`]: the IO edge: files, directories and stdin read, then checked in parallel.
//!
//! Everything but [`files`] is pure: text in, a report out; no filesystem, network or clock.

mod document;
pub mod explain;
/// Shell: files, directories and stdin.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod files;
pub mod values;

pub use document::{
    FileCheck, MAX_NOT_OBJECT_FINDINGS, Options, Shape, Source, check_document, check_text,
    policy_findings, policy_info, record_outcome,
};
