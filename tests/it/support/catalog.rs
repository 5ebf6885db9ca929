//! One test's own catalog database, on either engine: a SQLite file in a temporary directory,
//! or a fresh database on the shared PostgreSQL server (`postgres.rs`). The catalog test
//! modules add their own helpers to [`Db`] (it is this crate's type, so they can).

use super::{postgres, run};

/// The engine a case runs on; every catalog test runs on both.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of one test's own; a SQLite file is removed with it.
pub struct Db {
    pub url: String,
    pub _dir: Option<tempfile::TempDir>,
}

/// An empty database, without the catalog's schema.
pub fn empty(backend: Backend) -> Db {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
            Db {
                url,
                _dir: Some(dir),
            }
        }
        Backend::Postgres => Db {
            url: postgres::server().database(),
            _dir: None,
        },
    }
}

/// An empty catalog, migrated by the binary's `catalog migrate`.
pub fn migrated(backend: Backend) -> Db {
    let db = empty(backend);
    let m = run(&["catalog", "migrate", "--catalog", &db.url]);
    assert_eq!(m.code, 0, "{}", m.stderr);
    db
}

impl Db {
    /// SQL straight to the database, past the catalog's API (a newer binary's schema, or rows
    /// a test needs as they are).
    pub fn raw(&self, sql: &str) {
        use sqlx::Connection as _;
        let url = self.url.clone();
        let sql = sql.to_owned();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                sqlx::any::install_default_drivers();
                let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            });
    }
}
