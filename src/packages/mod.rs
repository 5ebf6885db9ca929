//! Debian packages inside images (issue 16), the pure part: Debian version order and
//! constraints (`version.rs`), the dpkg database as image layers carry it (`dpkg.rs`), one
//! layer's part of it read from a blob stream (`layer.rs`), an image's installed packages
//! from its layers in order, with the layer that brought each version in (`inventory.rs`),
//! os-release (`os_release.rs`), and the security data of the Debian tracker and OSV with
//! what it says about an installed version (`security.rs`).
//!
//! The registry streams layers into these (`crate::registry::layers`) and the catalog keeps
//! their results (`crate::catalog`); see docs/packages.md.

pub mod dpkg;
pub mod inventory;
pub mod layer;
pub mod os_release;
pub mod security;
pub mod version;

pub use dpkg::{Package, StanzaError, Status, StatusFile, parse_status};
pub use inventory::{Installed, Inventory, inventory};
pub use layer::{DEFAULT_LIMITS, LayerError, LayerScan, Limits, read_layer};
pub use os_release::{OsRelease, parse_os_release};
pub use security::{Advisories, Advisory, Fix, Verdict, judge, read_osv, read_tracker};
pub use version::{Constraint, ConstraintError, DebVersion, Relation, VersionError};
