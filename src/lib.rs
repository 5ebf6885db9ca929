//! tollgate: a GitOps pre-deploy admission and policy checker for container images.
//!
//! The library is a pure core (references, workloads, policy, reports) with IO at its edges
//! (reading manifest files). Every subcommand of the `tollgate` binary is an adapter over it, so
//! a rule behaves the same in the pre-push hook, in CI, at admission and in the audit.

pub mod admission;
pub mod audit;
pub mod check;
pub mod cluster;
pub mod config;
pub mod git;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod workload;
pub mod yaml;
