//! The image catalog's storage: where every image version ran and when, and what each tag
//! pointed at, kept in SQLite or PostgreSQL through one code path (sqlx's Any driver).
//!
//! Holds the catalog's URL (`url.rs`, pure: passwords never printed), the versioned schema
//! (`migrations/`, applied by `migrate.rs`), opening and status (`store.rs`), tag history
//! (`tags.rs`) and runs as intervals (`runs.rs`). A shell module: it talks to databases, and the
//! server to its clients. Apart from `periodic.rs` and the server (which reads it once per
//! request that needs "now": a build's arrival, `running` without `at`), it reads no clock:
//! every time is passed in by the caller, once per run. It reaches the registry only through
//! `sync.rs`, and the cluster only through `periodic.rs`.
//!
//! Recording: live state turned into run sightings (`sightings.rs`, pure), registry events
//! (`events.rs`, fed by `crate::audit::servability`), retention (`prune.rs`), and the periodic
//! recording of `serve --catalog` (`periodic.rs`, the one part that reads the clock and lists
//! the cluster).
//!
//! Reading: builds (`builds.rs`); the questions `images` (`query.rs`), `history`
//! (`history.rs`) and `who-uses` (`who_uses.rs`), their text (`render.rs`) and their web page
//! (`web.rs`, pure), and `catalog serve` (`server.rs`).
//!
//! Registry contents: manifests as rows (`manifest_rows.rs`, pure) and recorded
//! (`manifests.rs`), and `catalog sync` (`sync.rs`), which feeds them from a registry through
//! [`crate::registry::contents`] and the resolver: it speaks no HTTP of its own.
//!
//! Packages (issue 16): layer scans kept by layer digest, image inventories and the questions
//! `packages` and `where` (`packages.rs`), `catalog inventory` (`inventory.rs`, which streams
//! layers through [`crate::registry::layers`]), and security data with the needs-update report
//! (`security.rs`).

mod builds;
mod error;
mod events;
mod history;
pub mod inventory;
mod manifest_rows;
mod manifests;
mod migrate;
mod packages;
pub mod periodic;
mod prune;
mod query;
pub mod render;
mod runs;
mod security;
pub mod server;
mod sightings;
mod store;
pub mod sync;
mod tags;
mod url;
pub mod web;
mod who_uses;

pub use builds::{Build, BuildError, BuildRequest, MAX_PARENTS, NewBuild};
pub use error::CatalogError;
pub use events::{EventKind, EventsRecorded, RegistryEvent, Servability};
pub use history::{DigestInfo, Entry, History, TagInterval, What, run_place};
pub use manifest_rows::{
    ChildRow, LayerRow, ManifestKind, ManifestRecord, PlatformRow, manifest_record,
};
pub use migrate::{Applied, SCHEMA_VERSION};
pub use packages::{
    Holder, ImageInventory, InstalledRow, LayerKind, PackagesAnswer, PendingImage, PendingLayer,
    SCANNER_VERSION, StoredScan, WhereAnswer, layer_kind,
};
pub use prune::Pruned;
pub use query::{
    Base, BaseBy, ManifestInfo, Repository, RunFilter, Subject, SubjectError, Version,
};
pub use runs::{Recorded, Run, RunSighting};
pub use security::{
    AdvisoryRef, AffectedImage, Fixable, GroupKind, Import, NoFix, NotChecked, Origin,
    RebuildGroup, SecurityFilter, SecurityReport,
};
pub use sightings::{Pending, Sightings, sightings};
pub use store::{Catalog, Create, Status, TABLES};
pub use tags::TagSighting;
pub use url::{CatalogUrl, CatalogUrlError};
pub use who_uses::{User, WhoUses};
