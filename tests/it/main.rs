//! The integration tests: one binary, so the library and the `tollgate` binary are linked once
//! for all of them, with a module per area. Each runs the real binary against real peers
//! (support/): a registry, git repositories, HTTPS, Helm; a stand-in only for the Kubernetes API
//! server.

// Tests are the outermost shell: they write files, start servers and run the binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod audit;
mod base_image;
mod catalog;
mod catalog_packages;
mod catalog_read;
mod catalog_record;
mod catalog_sync;
mod catalog_web;
mod certs;
mod chart;
mod check;
mod check_resolve;
mod ci_examples;
mod cluster_api;
mod explain_policy;
mod faults;
mod git_gates;
mod hardening;
mod image;
mod layout;
mod packages;
mod policy_reach;
mod pull_secrets;
mod referrers;
mod registry;
mod report_tools;
mod rollout;
mod scan;
mod signatures;
mod support;
mod tls_auth;
mod verify;
mod webhook;
