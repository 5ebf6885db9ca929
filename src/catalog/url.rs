//! Where the catalog lives: `sqlite:PATH` or a PostgreSQL URL, parsed once into a
//! [`CatalogUrl`] whose `Display` and `Debug` never show a password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The database a catalog is kept in: parsed with `FromStr`, printed without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct CatalogUrl(Location);

// Private, so that the password's byte ranges always come from the parser.
#[derive(Clone, PartialEq, Eq)]
enum Location {
    /// One SQLite file (created by `migrate` when missing), as written: relative to the working
    /// directory, or absolute.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server, as a `postgres://` or `postgresql://` URL.
    Postgres {
        /// The URL as written, password included: handed to the driver, never printed.
        url: String,
        /// Byte ranges of the passwords inside `url` (userinfo, `password=` parameter).
        password: Vec<(usize, usize)>,
    },
}

/// Why a catalog URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogUrlError {
    /// Neither `sqlite:` nor `postgres://` / `postgresql://`.
    #[error(
        "a catalog is `sqlite:PATH` or `postgres://USER@HOST/DB`, not `{scheme}`: the scheme is not supported"
    )]
    UnsupportedScheme {
        /// What came before the first `:` (the whole text when there is none).
        scheme: String,
    },
    /// `sqlite:` with no path after it.
    #[error("`sqlite:` needs a file path after it (`sqlite:catalog.db`)")]
    MissingPath,
    /// A PostgreSQL URL without a host (in the authority or as `?host=`).
    #[error("a PostgreSQL catalog URL names a host (`postgres://USER@HOST/DB`)")]
    MissingHost,
}

impl CatalogUrl {
    /// The backend's name, for messages (`SQLite`, `PostgreSQL`).
    pub fn backend(&self) -> &'static str {
        match &self.0 {
            Location::Sqlite { .. } => "SQLite",
            Location::Postgres { .. } => "PostgreSQL",
        }
    }

    /// The SQLite file, for a SQLite catalog.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.0 {
            Location::Sqlite { path } => Some(path),
            Location::Postgres { .. } => None,
        }
    }

    /// The URL with its password, for the driver only.
    pub(crate) fn secret_url(&self) -> Option<&str> {
        match &self.0 {
            Location::Sqlite { .. } => None,
            Location::Postgres { url, .. } => Some(url),
        }
    }
}

impl FromStr for CatalogUrl {
    type Err = CatalogUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("sqlite:") {
            // `sqlite://x.db` is `x.db` (and `sqlite:///abs` is `/abs`), as sqlx and SQLAlchemy
            // read it.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(CatalogUrlError::MissingPath);
            }
            return Ok(CatalogUrl(Location::Sqlite { path: path.into() }));
        }
        let Some(rest) = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
        else {
            let scheme = s.split_once(':').map_or(s, |(scheme, _)| scheme);
            return Err(CatalogUrlError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        };
        let start = s.len() - rest.len();
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        let mut password = Vec::new();
        // The last `@` ends the userinfo: a password may contain `@` only percent-encoded, but
        // people write it raw, and libpq splits at the last one too.
        let host = match authority.rfind('@') {
            Some(at) => {
                if let Some(colon) = authority[..at].find(':') {
                    password.push((start + colon + 1, start + at));
                }
                &authority[at + 1..]
            }
            None => authority,
        };
        // libpq's `postgres:///db?host=/run/postgresql` names a socket directory instead.
        let host_parameter = rest
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("host=")));
        if host.is_empty() && !host_parameter {
            return Err(CatalogUrlError::MissingHost);
        }
        if let Some(q) = rest.find('?') {
            let query_start = start + q + 1;
            let mut offset = query_start;
            for pair in s[query_start..].split('&') {
                if let Some(value) = pair.strip_prefix("password=") {
                    let value_start = offset + "password=".len();
                    password.push((value_start, value_start + value.len()));
                }
                offset += pair.len() + 1;
            }
        }
        password.retain(|(a, b)| a < b);
        Ok(CatalogUrl(Location::Postgres {
            url: s.to_owned(),
            password,
        }))
    }
}

/// The URL as written, each password replaced by `***`.
impl fmt::Display for CatalogUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Location::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            Location::Postgres { url, password } => {
                let mut at = 0;
                for &(a, b) in password {
                    f.write_str(&url[at..a])?;
                    f.write_str("***")?;
                    at = b;
                }
                f.write_str(&url[at..])
            }
        }
    }
}

/// Redacted like `Display`: a derived `Debug` would print the password in a log line.
impl fmt::Debug for CatalogUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CatalogUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::relative_file("sqlite:catalog.db", "catalog.db")]
    #[case::absolute_file("sqlite:/var/lib/tollgate/catalog.db", "/var/lib/tollgate/catalog.db")]
    #[case::double_slash_is_relative_as_in_sqlx("sqlite://catalog.db", "catalog.db")]
    #[case::triple_slash_is_absolute("sqlite:///tmp/c.db", "/tmp/c.db")]
    #[case::odd_characters_kept("sqlite:dir with space/c?#%.db", "dir with space/c?#%.db")]
    fn sqlite_urls_name_a_file(#[case] url: &str, #[case] path: &str) {
        let parsed: CatalogUrl = url.parse().unwrap();
        assert_eq!(parsed.sqlite_path(), Some(Path::new(path)));
        assert_eq!(parsed.backend(), "SQLite");
    }

    #[rstest]
    #[case::userinfo_password(
        "postgres://tollgate:s3cret@db.example.org:5432/catalog",
        "postgres://tollgate:***@db.example.org:5432/catalog"
    )]
    #[case::postgresql_scheme("postgresql://u:p@h/db", "postgresql://u:***@h/db")]
    #[case::at_sign_in_password_splits_at_the_last(
        "postgres://u:p@ss@h/db",
        "postgres://u:***@h/db"
    )]
    #[case::password_parameter(
        "postgres://u@h/db?sslmode=require&password=hunter2",
        "postgres://u@h/db?sslmode=require&password=***"
    )]
    #[case::both("postgres://u:a@h/db?password=b", "postgres://u:***@h/db?password=***")]
    #[case::no_password("postgres://u@h/db", "postgres://u@h/db")]
    #[case::empty_password_stays_empty("postgres://u:@h/db", "postgres://u:@h/db")]
    #[case::socket_directory_as_host_parameter(
        "postgres:///db?host=/run/postgresql",
        "postgres:///db?host=/run/postgresql"
    )]
    #[case::colon_in_host_part_is_a_port("postgres://h:5432/db", "postgres://h:5432/db")]
    fn postgres_urls_print_without_their_password(#[case] url: &str, #[case] shown: &str) {
        let parsed: CatalogUrl = url.parse().unwrap();
        assert_eq!(parsed.to_string(), shown);
        assert_eq!(format!("{parsed:?}"), format!("CatalogUrl({shown})"));
        assert_eq!(parsed.secret_url(), Some(url));
        assert_eq!(parsed.backend(), "PostgreSQL");
    }

    #[rstest]
    #[case::mysql("mysql://u@h/db", CatalogUrlError::UnsupportedScheme { scheme: "mysql".into() })]
    #[case::bare_path("catalog.db", CatalogUrlError::UnsupportedScheme { scheme: "catalog.db".into() })]
    #[case::empty_sqlite("sqlite:", CatalogUrlError::MissingPath)]
    #[case::no_host("postgres:///db", CatalogUrlError::MissingHost)]
    #[case::only_userinfo("postgres://u:p@/db", CatalogUrlError::MissingHost)]
    fn refused_urls_say_why(#[case] url: &str, #[case] want: CatalogUrlError) {
        assert_eq!(url.parse::<CatalogUrl>().unwrap_err(), want);
    }

    #[test]
    fn a_refused_url_never_echoes_a_password() {
        let e = "mysql://u:hunter2@h/db".parse::<CatalogUrl>().unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
