//! Opening a catalog: the pool over either engine, the schema's version and the row counts.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, Connection as _, Pool};

use super::error::{CatalogError, query};
use super::migrate::{self, Applied, SCHEMA_VERSION};
use super::url::CatalogUrl;

/// Which engine a catalog runs on (the SQL is shared; this picks the few spellings that are
/// not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Whether opening a SQLite catalog may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the file when missing (`migrate`).
    IfMissing,
    /// The file must exist (`status`, and everything that reads).
    No,
}

/// Every table, in the order `status` lists them.
pub const TABLES: &[&str] = &[
    "repositories",
    "manifests",
    "repository_manifests",
    "index_children",
    "layers",
    "manifest_layers",
    "tags",
    "tag_history",
    "builds",
    "build_dependencies",
    "clusters",
    "runs",
    "registry_events",
    "layer_scans",
    "package_sets",
    "package_set_entries",
    "image_inventories",
    "security_imports",
    "advisories",
];

/// At most this many connections per process: a catalog is written by one recorder and read
/// by a few requests, and PostgreSQL's own limit is shared by every replica.
const MAX_CONNECTIONS: u32 = 8;
/// How long a caller waits for a free connection before it is an error.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// An open catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) pool: Pool<Any>,
    pub(crate) backend: Backend,
    url: CatalogUrl,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The database's schema version.
    pub schema_version: i64,
    /// The newest version this binary knows.
    pub binary_version: i64,
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, i64)>,
}

fn sqlite_url(path: &std::path::Path, create: Create) -> String {
    // sqlx reads `sqlite:` + a percent-decoded path + `?mode=`: encode what would end the path
    // or start an escape, so that any file name round-trips.
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let path = path.to_string_lossy();
    let mode = match create {
        Create::IfMissing => "rwc",
        Create::No => "rw",
    };
    format!(
        "sqlite:{}?mode={mode}",
        percent_encoding::utf8_percent_encode(&path, PATH)
    )
}

impl Catalog {
    /// Connect: one connection is made now, so that a wrong URL or a server that is down fails
    /// here with the driver's own reason.
    pub async fn open(url: &CatalogUrl, create: Create) -> Result<Catalog, CatalogError> {
        sqlx::any::install_default_drivers();
        let (text, backend) = match url.sqlite_path() {
            Some(path) => {
                if create == Create::No && std::fs::symlink_metadata(path).is_err() {
                    return Err(CatalogError::Missing {
                        path: path.display().to_string(),
                    });
                }
                (sqlite_url(path, create), Backend::Sqlite)
            }
            None => (
                url.secret_url().unwrap_or_default().to_owned(),
                Backend::Postgres,
            ),
        };
        let opened = |source| CatalogError::Open {
            url: url.clone(),
            source,
        };
        let options: AnyConnectOptions = text.parse().map_err(opened)?;
        // One connection first, outside the pool: the pool retries a refused or unreachable
        // server until its timeout and then reports only that it timed out.
        let first = AnyConnection::connect_with(&options)
            .await
            .map_err(opened)?;
        first.close().await.map_err(opened)?;
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Catalog {
            pool,
            backend,
            url: url.clone(),
        })
    }

    /// Where this catalog is (password redacted when printed).
    pub fn url(&self) -> &CatalogUrl {
        &self.url
    }

    /// Apply the pending migrations in one transaction; `applied_at` is recorded with each.
    /// Refuses a database whose schema is newer than this binary's.
    pub async fn migrate(&self, applied_at: jiff::Timestamp) -> Result<Vec<Applied>, CatalogError> {
        if self.backend == Backend::Sqlite {
            // Readers never block the writer, nor the writer readers. Persistent in the file,
            // and cannot change inside a transaction.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&self.pool)
                .await
                .map_err(query("switching to write-ahead logging"))?;
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("starting the migration"))?;
        let applied = migrate::apply(&mut tx, self.backend, applied_at.as_second()).await?;
        tx.commit()
            .await
            .map_err(query("committing the migration"))?;
        Ok(applied)
    }

    /// The database's schema version: 0 before the first `migrate`.
    pub async fn schema_version(&self) -> Result<i64, CatalogError> {
        let exists_sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql)
            .fetch_one(&self.pool)
            .await
            .map_err(query("looking for schema_version"))?;
        if exists == 0 {
            return Ok(0);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("reading the schema version"))?;
        let v = migrate::current(&mut tx).await?;
        tx.rollback()
            .await
            .map_err(query("reading the schema version"))?;
        Ok(v)
    }

    /// Fail unless the schema is exactly this binary's. Every command that reads or writes the
    /// catalog calls it after opening (`status` does), so that an older binary never writes
    /// into a newer schema; `record_*` and the queries do not repeat it on each call.
    pub async fn check_schema(&self) -> Result<(), CatalogError> {
        match self.schema_version().await? {
            0 => Err(CatalogError::NotMigrated),
            v if v > SCHEMA_VERSION => Err(CatalogError::SchemaNewer {
                database: v,
                binary: SCHEMA_VERSION,
            }),
            v if v < SCHEMA_VERSION => Err(CatalogError::SchemaOlder {
                database: v,
                binary: SCHEMA_VERSION,
            }),
            _ => Ok(()),
        }
    }

    /// The schema version and the rows of every table.
    pub async fn status(&self) -> Result<Status, CatalogError> {
        self.check_schema().await?;
        let mut rows = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            // Table names come from the constant list above, never from input.
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(query(format!("counting the rows of {table}")))?;
            rows.push((*table, n));
        }
        Ok(Status {
            schema_version: SCHEMA_VERSION,
            binary_version: SCHEMA_VERSION,
            rows,
        })
    }

    /// Close every connection (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("catalog.db", Create::IfMissing, "sqlite:catalog.db?mode=rwc")]
    #[case::absolute("/var/lib/c.db", Create::No, "sqlite:/var/lib/c.db?mode=rw")]
    #[case::characters_that_end_a_path(
        "a b/c?d#e%f.db",
        Create::No,
        "sqlite:a%20b/c%3Fd%23e%25f.db?mode=rw"
    )]
    fn sqlite_paths_reach_the_driver_intact(
        #[case] path: &str,
        #[case] create: Create,
        #[case] want: &str,
    ) {
        assert_eq!(sqlite_url(std::path::Path::new(path), create), want);
    }
}
