//! The image catalog's storage: where every image version ran and when, and what each tag
//! pointed at, kept in SQLite or PostgreSQL through one code path (sqlx's Any driver).
//!
//! Holds the catalog's URL (`url.rs`, pure: passwords never printed), the versioned schema
//! (`migrations/`, applied by `migrate.rs`), opening and status (`store.rs`), tag history
//! (`tags.rs`) and runs as intervals (`runs.rs`); manifests as rows (`manifest_rows.rs`, pure)
//! and recorded (`manifests.rs`), and `catalog sync` (`sync.rs`), which feeds them from a
//! registry through [`crate::registry::contents`] and the resolver: it speaks no HTTP of its
//! own. A shell module: it talks to databases. It reads no clock: every time is passed in by
//! the caller, once per run. It does not reach the cluster; recording from live state will
//! feed it from outside.

mod error;
mod manifest_rows;
mod manifests;
mod migrate;
mod runs;
mod store;
pub mod sync;
mod tags;
mod url;

pub use error::CatalogError;
pub use manifest_rows::{
    ChildRow, LayerRow, ManifestKind, ManifestRecord, PlatformRow, manifest_record,
};
pub use migrate::{Applied, SCHEMA_VERSION};
pub use runs::{Recorded, Run, RunSighting};
pub use store::{Catalog, Create, Status, TABLES};
pub use tags::TagSighting;
pub use url::{CatalogUrl, CatalogUrlError};
