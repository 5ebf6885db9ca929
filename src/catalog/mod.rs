//! The image catalog's storage: where every image version ran and when, and what each tag
//! pointed at, kept in SQLite or PostgreSQL through one code path (sqlx's Any driver).
//!
//! Holds the catalog's URL (`url.rs`, pure: passwords never printed), the versioned schema
//! (`migrations/`, applied by `migrate.rs`), opening and status (`store.rs`), tag history
//! (`tags.rs`) and runs as intervals (`runs.rs`); builds (`builds.rs`); the questions
//! `images` (`query.rs`), `history` (`history.rs`) and `who-uses` (`who_uses.rs`), their text
//! (`render.rs`) and their web page (`web.rs`, pure), and `catalog serve` (`server.rs`). A
//! shell module: it talks to databases, and the server to its clients. The library reads no
//! clock: every time is passed in by the caller, once per run (the server reads it once per
//! request that needs "now": a build's arrival, `running` without `at`). It does not reach the
//! registry or the cluster; sync and recording from live state will feed it from outside.

mod builds;
mod error;
mod history;
mod migrate;
mod query;
pub mod render;
mod runs;
pub mod server;
mod store;
mod tags;
mod url;
pub mod web;
mod who_uses;

pub use builds::{Build, BuildError, BuildRequest, MAX_PARENTS, NewBuild};
pub use error::CatalogError;
pub use history::{DigestInfo, Entry, History, RegistryEvent, TagInterval, What, run_place};
pub use migrate::{Applied, SCHEMA_VERSION};
pub use query::{
    Base, BaseBy, ManifestInfo, Repository, RunFilter, Subject, SubjectError, Version,
};
pub use runs::{Recorded, Run, RunSighting};
pub use store::{Catalog, Create, Status, TABLES};
pub use tags::TagSighting;
pub use url::{CatalogUrl, CatalogUrlError};
pub use who_uses::{User, WhoUses};
