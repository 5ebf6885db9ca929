//! tollgate: a GitOps pre-deploy admission and policy checker for container images.
//!
//! The library is a pure core (references, workloads, policy, checks, reports, the rollout
//! comparison) with IO at its edges: files, git, the API server, registries, the webhook's
//! sockets. Every subcommand of the `tollgate` binary is an adapter over it, so a rule behaves
//! the same in the pre-push hook, in CI, at admission and in the audit.
//!
//! Purity holds by construction: `clippy.toml` forbids the clock, the filesystem, the network,
//! processes and the environment everywhere, and each shell module says it is one with an
//! `#[allow]` where it is declared. A leak into the core fails CI.

#![deny(missing_docs)]

pub mod admission;
pub mod audit;
/// Shell: the catalog's databases (SQLite files, PostgreSQL servers).
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod catalog;
pub mod check;
pub mod cluster;
pub mod config;
pub mod error_text;
/// Shell: git through git2.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod git;
pub mod packages;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod signature;
pub mod workload;
pub mod yaml;
