//! Debian packages inside images (issue 16), the pure part: Debian version order and
//! constraints (`version.rs`), and the dpkg database as image layers carry it (`dpkg.rs`).
//!
//! Reading layers, the security data and the catalog's tables build on these; see
//! docs/packages.md for what exists and what does not yet.

pub mod dpkg;
pub mod version;

pub use dpkg::{Package, StanzaError, Status, StatusFile, parse_status};
pub use version::{Constraint, ConstraintError, DebVersion, Relation, VersionError};
