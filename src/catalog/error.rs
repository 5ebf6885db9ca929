//! The catalog's errors: each names what it was doing, the database's own error kept as the
//! source.

use super::CatalogUrl;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database could not be opened or reached (the caller names the URL).
    #[error("cannot connect to the {} database", url.backend())]
    Open {
        /// Where (password redacted).
        url: CatalogUrl,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A `sqlite:` catalog that `status` (or anything but `migrate`) was asked to read is not
    /// there.
    #[error("no catalog at {path} (`tollgate catalog migrate --catalog sqlite:{path}` creates it)")]
    Missing {
        /// The file.
        path: String,
    },
    /// The database holds a schema newer than this binary knows: an older binary must not write
    /// into it.
    #[error(
        "the catalog's schema is version {database}, newer than this binary knows (version {binary}): upgrade tollgate"
    )]
    SchemaNewer {
        /// The database's version.
        database: i64,
        /// The newest version this binary carries.
        binary: i64,
    },
    /// The database has no schema yet.
    #[error("the catalog has no schema yet (run `tollgate catalog migrate`)")]
    NotMigrated,
    /// The database has an older schema: `migrate` brings it up to date.
    #[error(
        "the catalog's schema is version {database}, older than this binary's (version {binary}): run `tollgate catalog migrate`"
    )]
    SchemaOlder {
        /// The database's version.
        database: i64,
        /// The newest version this binary carries.
        binary: i64,
    },
    /// Applying a migration failed; its transaction was rolled back.
    #[error("cannot apply catalog migration {version} ({name})")]
    Migration {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("catalog query failed while {doing}")]
    Query {
        /// What the catalog was doing (`recording runs of cluster prod`).
        doing: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A row held a value the catalog cannot read back.
    #[error("the catalog's {column} holds {value:?}, which is not valid")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        /// The value.
        value: String,
        /// Why it does not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A run to record has no digest (the runtime reported no pullable image id).
    #[error("a run of {image} has no digest: only runs by digest are recorded")]
    RunWithoutDigest {
        /// The reference.
        image: String,
    },
    /// A time outside what the catalog stores (unix seconds in an i64 always fit; this guards
    /// values read back).
    #[error("the catalog's {column} holds {value}, which is not a time")]
    BadTime {
        /// `table.column`.
        column: &'static str,
        /// The stored seconds.
        value: i64,
        /// jiff's error.
        #[source]
        source: jiff::Error,
    },
}

/// `Query { doing, source }` for `map_err`.
pub(crate) fn query(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> CatalogError {
    let doing = doing.into();
    move |source| CatalogError::Query { doing, source }
}
