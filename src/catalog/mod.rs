//! The image catalog's storage: where every image version ran and when, and what each tag
//! pointed at, kept in SQLite or PostgreSQL through one code path (sqlx's Any driver).
//!
//! Holds the catalog's URL (`url.rs`, pure: passwords never printed), the versioned schema
//! (`migrations/`, applied by `migrate.rs`), opening and status (`store.rs`), tag history
//! (`tags.rs`) and runs as intervals (`runs.rs`). A shell module: it talks to databases. Apart
//! from `periodic.rs`, it reads no clock (every time is passed in by the caller, once per run)
//! and does not reach the registry or the cluster.
//!
//! Recording: live state turned into run sightings (`sightings.rs`, pure), registry events
//! (`events.rs`, fed by `crate::audit::servability`), retention (`prune.rs`), and the periodic
//! recording of `serve --catalog` (`periodic.rs`, the one part that reads the clock and lists
//! the cluster).

mod error;
mod events;
mod migrate;
pub mod periodic;
mod prune;
mod runs;
mod sightings;
mod store;
mod tags;
mod url;

pub use error::CatalogError;
pub use events::{EventKind, EventsRecorded, RegistryEvent, Servability};
pub use migrate::{Applied, SCHEMA_VERSION};
pub use prune::Pruned;
pub use runs::{Recorded, Run, RunSighting};
pub use sightings::{Pending, Sightings, sightings};
pub use store::{Catalog, Create, Status, TABLES};
pub use tags::TagSighting;
pub use url::{CatalogUrl, CatalogUrlError};
