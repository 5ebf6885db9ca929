//! Registry credentials (docker `config.json` and credential helpers), `WWW-Authenticate`
//! challenges and the token exchange they ask for, and the tokens it yields, cached per scope.
//! Credentials never reach a log or a report: their `Debug` is redacted, and they have no
//! `Display`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::RegistryError;
use super::pull::Principal;
use crate::reference::RegistryHost;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (`<token>` for an identity token, which tollgate does not use).
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials by registry host[:port].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialStore {
    by_host: HashMap<String, Credentials>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hosts: Vec<&String> = self.by_host.keys().collect();
        hosts.sort();
        f.debug_struct("CredentialStore")
            .field("hosts", &hosts)
            .finish()
    }
}

/// Why a docker config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read registry config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a docker config.
    #[error("registry config {path} is not valid JSON")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` entry that is not `base64(user:password)`.
    #[error("registry config {path}: the `auth` of {host} is not base64 of user:password")]
    Auth {
        /// The file.
        path: PathBuf,
        /// The registry of the entry.
        host: String,
    },
    /// A credential helper that could not be run, or did not answer.
    #[error("credential helper {helper}: cannot run it")]
    Helper {
        /// `docker-credential-<name>`.
        helper: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper whose answer is not the JSON docker's protocol specifies.
    #[error("credential helper {helper}: its answer for {host} is not the expected JSON")]
    HelperAnswer {
        /// `docker-credential-<name>`.
        helper: String,
        /// The registry asked about.
        host: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    /// The default credential helper (`docker-credential-<name>`).
    #[serde(default)]
    creds_store: Option<String>,
    /// Credential helpers per registry.
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl CredentialStore {
    /// No credentials: anonymous access everywhere.
    pub fn anonymous() -> Self {
        CredentialStore::default()
    }

    /// Add credentials for `host` (host[:port]).
    pub fn insert(&mut self, host: &str, credentials: Credentials) {
        self.by_host.insert(normalize_key(host), credentials);
    }

    /// The credentials for `host`, if any.
    pub fn get(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(&host.to_ascii_lowercase())
    }

    /// Read a docker `config.json`. Entries are keyed by host, with or without a scheme and
    /// path (`https://index.docker.io/v1/` is Docker Hub).
    pub fn from_docker_config(path: &Path) -> Result<Self, ConfigError> {
        Self::from_docker_config_for(path, &[], &|_| false)
    }

    /// Read a docker `config.json`, and ask its credential helpers (`credHelpers`, `credsStore`)
    /// for the credentials of `hosts` only: the registries the policy approves. A host the
    /// policy does not approve is never named to a helper. `approved` says which other
    /// `credHelpers` keys a helper may be asked about (the hosts a wildcard entry approves).
    pub fn from_docker_config_for(
        path: &Path,
        hosts: &[String],
        approved: &dyn Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: DockerConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
        let mut store = CredentialStore::default();
        for (key, creds) in entries(config.auths).map_err(|host| ConfigError::Auth {
            path: path.to_owned(),
            host,
        })? {
            store.insert(&key, creds);
        }
        let wildcard_hosts: Vec<String> = config
            .cred_helpers
            .keys()
            .filter(|k| approved(&normalize_key(k)))
            .cloned()
            .collect();
        for host in hosts.iter().chain(&wildcard_hosts) {
            let key = normalize_key(host);
            if store.by_host.contains_key(&key) {
                continue;
            }
            let helper = config
                .cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k) == key)
                .map(|(_, v)| v)
                .or(config.creds_store.as_ref());
            if let Some(helper) = helper
                && let Some(creds) = run_helper(helper, host)?
            {
                store.by_host.insert(key, creds);
            }
        }
        Ok(store)
    }

    /// The config file docker would read: `--registry-config`, else `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`. `None` when there is none (anonymous access).
    pub fn default_path(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_owned());
        }
        let candidate = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
        };
        candidate.exists().then_some(candidate)
    }
}

/// The usable entries of an `auths` map, by key as written: `auth` (base64 of
/// `user:password`) wins over `username`/`password`; an entry with neither (written by a
/// credential helper) holds no secret and is skipped. `Err` names the key of an `auth` that is
/// not base64 of `user:password`.
fn entries(auths: HashMap<String, AuthEntry>) -> Result<Vec<(String, Credentials)>, String> {
    let mut out = Vec::new();
    for (key, entry) in auths {
        let creds = match (entry.auth, entry.username, entry.password) {
            (Some(auth), _, _) if !auth.is_empty() => {
                let decoded = STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
                let Some((username, password)) = decoded else {
                    return Err(key);
                };
                Credentials { username, password }
            }
            (_, Some(username), Some(password)) => Credentials { username, password },
            _ => continue,
        };
        out.push((key, creds));
    }
    Ok(out)
}

/// The format of a pull secret's data, by the secret's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// `kubernetes.io/dockerconfigjson`: `.dockerconfigjson` holds a `config.json`
    /// (`{"auths": {host: entry}}`).
    DockerConfigJson,
    /// `kubernetes.io/dockercfg`: `.dockercfg` holds the legacy `~/.dockercfg`
    /// (`{host: entry}`, without the `auths` level).
    DockerCfg,
}

impl SecretFormat {
    /// The format of a secret of `type_`, `None` for a type that holds no registry credentials.
    pub fn of_type(type_: &str) -> Option<Self> {
        match type_ {
            "kubernetes.io/dockerconfigjson" => Some(SecretFormat::DockerConfigJson),
            "kubernetes.io/dockercfg" => Some(SecretFormat::DockerCfg),
            _ => None,
        }
    }

    /// The data key the credentials are under.
    pub fn data_key(self) -> &'static str {
        match self {
            SecretFormat::DockerConfigJson => ".dockerconfigjson",
            SecretFormat::DockerCfg => ".dockercfg",
        }
    }
}

/// Why a pull secret's data holds no usable credentials. Never carries the data itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretDataError {
    /// Not the JSON the format says. Only where and what kind of error: serde_json's own
    /// message quotes the offending value (`invalid type: string "..."`), which may be a
    /// password.
    #[error("its {key} is not valid JSON: {what} at line {line} column {column}")]
    Json {
        /// `.dockerconfigjson` or `.dockercfg`.
        key: &'static str,
        /// The kind of error.
        what: &'static str,
        /// Where, 1-based.
        line: usize,
        /// Where, 1-based.
        column: usize,
    },
    /// An `auth` entry that is not `base64(user:password)`.
    #[error("the `auth` of {host} is not base64 of user:password")]
    Auth {
        /// The entry's key, as written.
        host: String,
    },
}

/// The credentials of a pull secret's data, by registry key as written
/// (`https://index.docker.io/v1/`, `registry.example.org:5000`). Pure: no credential helper is
/// ever run for a pull secret.
pub fn parse_secret_data(
    format: SecretFormat,
    data: &[u8],
) -> Result<Vec<(String, Credentials)>, SecretDataError> {
    let json = |e: serde_json::Error| SecretDataError::Json {
        key: format.data_key(),
        what: match e.classify() {
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Eof => "it ends too early",
            serde_json::error::Category::Data => "a value of the wrong type",
            serde_json::error::Category::Io => "it cannot be read",
        },
        line: e.line(),
        column: e.column(),
    };
    let auths = match format {
        SecretFormat::DockerConfigJson => {
            serde_json::from_slice::<DockerConfig>(data)
                .map_err(json)?
                .auths
        }
        SecretFormat::DockerCfg => {
            serde_json::from_slice::<HashMap<String, AuthEntry>>(data).map_err(json)?
        }
    };
    entries(auths).map_err(|host| SecretDataError::Auth { host })
}

/// The registry a credentials key names: the key without its scheme and path, lowercased, and
/// Docker Hub's API and index hosts as `docker.io`. `None` for a key that names no single host
/// (a wildcard, an empty key).
pub fn key_host(key: &str) -> Option<RegistryHost> {
    normalize_key(key).parse().ok()
}

/// `docker-credential-<helper> get`, with the server on stdin, as docker runs it. "Not found"
/// (a non-zero exit) means anonymous access; a helper that cannot be run is an error.
fn run_helper(helper: &str, host: &str) -> Result<Option<Credentials>, ConfigError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{helper}");
    let fail = |source| ConfigError::Helper {
        helper: program.clone(),
        source,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(host.as_bytes())
        .map_err(fail)?;
    let out = child.wait_with_output().map_err(fail)?;
    if !out.status.success() {
        tracing::debug!(
            helper = program,
            host,
            "credential helper has no credentials for this registry"
        );
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|source| ConfigError::HelperAnswer {
            helper: program.clone(),
            host: host.to_owned(),
            source,
        })?;
    if answer.username == "<token>" {
        // An identity token needs the OAuth2 refresh flow, which tollgate does not do.
        tracing::warn!(
            helper = program,
            host,
            "credential helper returned an identity token, which is not supported; trying anonymous access"
        );
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match k.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => k,
    }
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: send the credentials themselves with every request.
    Basic,
    /// `Bearer`: get a token from `realm` (the distribution token protocol), then send it.
    Bearer {
        /// The token endpoint's URL.
        realm: String,
        /// The `service` to ask the token for, when the registry names one.
        service: Option<String>,
        /// The scope the registry asks for (`repository:team/app:pull`); `None`: the scope of
        /// the refused request is asked for.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value (RFC 7235 auth-params, quoted or not).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_owned());
        s = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// A registry, whose credentials (a pull secret's principal, `None` for the configured ones)
/// and an auth scope (`repository:team/app:pull`). A token got with one namespace's secret is
/// never sent for another's walk.
type ScopeKey = (RegistryHost, Option<Principal>, String);

/// How long an unused header is kept. Bearer tokens expire within minutes anyway (a stale one
/// is answered with a 401 and replaced); the bound is for the keys: with pull secrets there is
/// one per principal, and a rotated secret is a new principal, so without it the map only grows.
const TOKEN_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The `Authorization` header to send per registry and scope, got by answering the registry's
/// 401 challenges. Concurrent 401s for one scope exchange one token: the others wait, then use
/// the header the first one stored.
pub struct Tokens {
    headers: moka::future::Cache<ScopeKey, String>,
    /// Held while a scope's token is fetched. Evicting one that is held only lets a later
    /// request fetch a second token concurrently: harmless.
    locks: moka::future::Cache<ScopeKey, Arc<Mutex<()>>>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            headers: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(TOKEN_IDLE)
                .build(),
            locks: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(TOKEN_IDLE)
                .build(),
        }
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// The header to send to `host` for `scope` with `principal`'s credentials, if a challenge
    /// was answered.
    pub async fn header(
        &self,
        host: &RegistryHost,
        principal: Option<&Principal>,
        scope: &str,
    ) -> Option<String> {
        self.headers
            .get(&(host.clone(), principal.cloned(), scope.to_owned()))
            .await
    }

    /// Answer a 401 from `host` for `scope`: a bearer token from the challenge's realm (sent
    /// our basic credentials if we have them), or the basic credentials themselves.
    /// `sent` is the header the refused request carried: when another request has stored a
    /// different one meanwhile, that one is used and no token is fetched. `on_request` is told
    /// of each request sent.
    #[allow(clippy::too_many_arguments)]
    pub async fn answer(
        &self,
        http: &reqwest::Client,
        credentials: Option<&Credentials>,
        host: &RegistryHost,
        principal: Option<&Principal>,
        scope: &str,
        challenge: Option<&str>,
        sent: Option<&str>,
        realm_allowed: impl Fn(&str) -> bool,
        on_request: impl Fn() -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let key = (host.clone(), principal.cloned(), scope.to_owned());
        let lock = self
            .locks
            .get_with(key.clone(), async { Arc::default() })
            .await;
        let _guard = lock.lock().await;
        let current = self.headers.get(&key).await;
        if current.is_some() && current.as_deref() != sent {
            return Ok(());
        }
        let refused = |status| RegistryError::Unauthorized {
            registry: host.to_string(),
            status,
        };
        let header = match challenge.and_then(parse_challenge) {
            Some(Challenge::Basic) => {
                let c = credentials.ok_or_else(|| refused(401))?;
                basic_header(&c.username, &c.password)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                // The realm is attacker-chosen: a registry's answer must never send tollgate,
                // with the registry's credentials, to a host the policy does not approve.
                if !realm_allowed(&realm) {
                    return Err(RegistryError::ForeignRealm {
                        registry: host.to_string(),
                        realm,
                    });
                }
                let scope = asked.unwrap_or_else(|| scope.to_owned());
                let mut req = http.get(&realm).query(&[("scope", scope.as_str())]);
                if let Some(s) = &service {
                    req = req.query(&[("service", s.as_str())]);
                }
                if let Some(c) = credentials {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
                on_request()?;
                // The realm URL is the registry's; its error text may echo the request, never
                // our credentials, which travel only in the Authorization header.
                let res = req
                    .send()
                    .await
                    .map_err(|e| super::http::transport(&realm, e))?;
                if !res.status().is_success() {
                    return Err(refused(res.status().as_u16()));
                }
                #[derive(Deserialize)]
                struct Token {
                    #[serde(default)]
                    token: Option<String>,
                    #[serde(default)]
                    access_token: Option<String>,
                }
                let body = res
                    .bytes()
                    .await
                    .map_err(|e| super::http::transport(&realm, e))?;
                let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Json {
                    url: realm.clone(),
                    what: "token response",
                    source: Arc::new(e),
                })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| RegistryError::NoToken {
                        realm: realm.clone(),
                    })?;
                format!("Bearer {token}")
            }
            None => return Err(refused(401)),
        };
        // Stored under the scope tollgate looks it up by, whatever words the registry used.
        self.headers.insert(key, header).await;
        Ok(())
    }
}

fn basic_header(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::docker_hub(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        Some(Challenge::Bearer { realm: "https://auth.docker.io/token".into(), service: Some("registry.docker.io".into()), scope: Some("repository:library/nginx:pull".into()) })
    )]
    #[case::unquoted_and_spaced("Bearer realm=https://r/token, service=r", Some(Challenge::Bearer { realm: "https://r/token".into(), service: Some("r".into()), scope: None }))]
    #[case::basic(r#"Basic realm="Registry""#, Some(Challenge::Basic))]
    #[case::bearer_without_realm("Bearer service=x", None)]
    #[case::unknown_scheme("Negotiate abc", None)]
    fn parses_challenges(#[case] header: &str, #[case] expected: Option<Challenge>) {
        assert_eq!(parse_challenge(header), expected);
    }

    proptest::proptest! {
        /// `WWW-Authenticate` is the registry's to write: any text gives an answer, no panic.
        #[test]
        fn the_challenge_parser_never_panics(v in "\\PC{0,200}") {
            let _ = parse_challenge(&v);
        }

        #[test]
        fn the_challenge_parser_never_panics_on_challenge_shaped_text(
            v in "(Bearer |Basic |realm|service|scope|=|\"|,| |x){0,40}"
        ) {
            let _ = parse_challenge(&v);
        }
    }

    #[test]
    fn reads_docker_config_and_never_prints_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = STANDARD.encode("robot:s3cret-token");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"Registry.Example.org:5000":{{"username":"u","password":"p4ss"}},"helper.example.org":{{}}}}}}"#
            ),
        )
        .unwrap();
        let store = CredentialStore::from_docker_config(&path).unwrap();
        assert_eq!(store.get("docker.io").unwrap().password, "s3cret-token");
        assert_eq!(
            store.get("registry.example.org:5000").unwrap().username,
            "u"
        );
        assert!(store.get("helper.example.org").is_none());
        let debug = format!("{store:?} {:?}", store.get("docker.io").unwrap());
        assert!(
            !debug.contains("s3cret") && !debug.contains("p4ss"),
            "{debug}"
        );
    }

    #[test]
    fn a_bad_auth_field_is_an_error_naming_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"r.example.org":{"auth":"!!!"}}}"#).unwrap();
        let e = CredentialStore::from_docker_config(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.example.org") && e.contains("not base64"),
            "{e}"
        );
    }
}
