//! A workload's own registry credentials: the pull secrets its pod spec and service account
//! name, read from the API server by the caller, turned into the credentials one walk may use.
//! Pure, apart from the [`PullSecretSource`] the shell implements.
//!
//! The rules, each a security property:
//! - an entry is used only for the registry host it names, matched in canonical form
//!   ([`super::auth::key_host`]), and only when the policy approves that host: an entry for
//!   another host is never sent anywhere;
//! - each credential carries its [`Principal`] (namespace, secret, resourceVersion), and every
//!   cached registry answer fetched with it is keyed by that principal too (through
//!   [`super::Endpoint`]): a tag resolved with namespace A's secret is never an answer for a pod
//!   of namespace B, which does not hold that secret; the node-level credentials (the server's
//!   `--registry-config`) share one cache, as before;
//! - a secret that cannot be used (missing, wrong type, bad JSON, no entry for an approved
//!   registry) is a warning, and the walk falls back to the node-level credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::{BoxFuture, join_all};

use super::auth::{self, Credentials, SecretFormat};
use crate::reference::RegistryHost;
pub use crate::workload::PodPullSecrets;

/// The most pull secrets read for one workload (or one namespace in the audit); a pod spec
/// rarely names more than two or three.
pub const MAX_SECRETS: usize = 16;
/// The most service accounts read for one workload (one per pod template in practice; the
/// audit merges a namespace's).
pub const MAX_SERVICE_ACCOUNTS: usize = 16;

/// Whose credentials a registry answer was fetched with: `namespace/secret@resourceVersion`.
/// A rotated secret (a new resourceVersion) is a new principal, so answers fetched with the old
/// password are not reused for the new one. Holds no secret; printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(Arc<str>);

impl Principal {
    /// The principal of `namespace`'s secret `name` at `resource_version`.
    pub fn new(namespace: &str, name: &str, resource_version: &str) -> Self {
        Principal(Arc::from(format!("{namespace}/{name}@{resource_version}")))
    }

    /// `namespace/secret@resourceVersion`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The credentials one registry host gets in one walk, and whose they are. Compared and hashed
/// by principal only (it is part of cache keys); its `Debug` never shows the password.
#[derive(Clone)]
pub struct PullAuth {
    /// Whose credentials these are.
    pub principal: Principal,
    /// The credentials themselves.
    pub credentials: Arc<Credentials>,
}

impl PartialEq for PullAuth {
    fn eq(&self, other: &Self) -> bool {
        self.principal == other.principal
    }
}

impl Eq for PullAuth {}

impl std::hash::Hash for PullAuth {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.principal.hash(state);
    }
}

impl fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullAuth")
            .field("principal", &self.principal)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The credentials of one workload's pull secrets, by canonical registry host: approved hosts
/// only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PullCredentials {
    by_host: HashMap<RegistryHost, PullAuth>,
}

impl fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hosts: Vec<String> = self
            .by_host
            .iter()
            .map(|(h, a)| format!("{h} ({})", a.principal))
            .collect();
        hosts.sort();
        f.debug_struct("PullCredentials")
            .field("hosts", &hosts)
            .finish()
    }
}

impl PullCredentials {
    /// The credentials for `host`, if a pull secret has an entry for it.
    pub fn get(&self, host: &RegistryHost) -> Option<&PullAuth> {
        self.by_host.get(host)
    }

    /// Credentials for `host` from `auth` (tests and callers that assemble their own).
    pub fn insert(&mut self, host: RegistryHost, auth: PullAuth) {
        self.by_host.insert(host, auth);
    }

    /// Whether no secret gave credentials for any approved host.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// The hosts there are credentials for, sorted (for warnings and tests).
    pub fn hosts(&self) -> Vec<String> {
        let mut h: Vec<String> = self.by_host.keys().map(ToString::to_string).collect();
        h.sort();
        h
    }
}

/// A secret as the API server holds it, reduced to what pull credentials need.
#[derive(Clone)]
pub struct RawSecret {
    /// `type`.
    pub type_: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `data`, base64-decoded, by key.
    pub data: HashMap<String, Vec<u8>>,
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.data.keys().collect();
        keys.sort();
        f.debug_struct("RawSecret")
            .field("type", &self.type_)
            .field("resource_version", &self.resource_version)
            .field("keys", &keys)
            .finish()
    }
}

/// An error from the shell that reads secrets (the API server's status, a transport failure).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Reads secrets and service accounts, one by name (the webhook's RBAC is `get`, never `list`).
/// `Ok(None)`: the API server says there is no such object (404).
pub trait PullSecretSource: Send + Sync {
    /// `namespace`'s secret `name`.
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RawSecret>, SourceError>>;

    /// The `imagePullSecrets[].name` of `namespace`'s service account `name`.
    fn service_account_secrets<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, SourceError>>;
}

/// What a lookup found: the credentials, and a warning for each secret it could not use (no
/// credentials in them, ever).
#[derive(Debug, Default)]
pub struct Lookup {
    /// Credentials for approved hosts.
    pub credentials: PullCredentials,
    /// One sentence each, for the admission response's warnings and the log.
    pub warnings: Vec<String>,
}

/// One secret's contribution: its entries for the `approved` hosts (the approved registries of
/// the images to check), or why it has none.
pub fn secret_entries(
    namespace: &str,
    name: &str,
    secret: &RawSecret,
    approved: &[RegistryHost],
) -> Result<Vec<(RegistryHost, PullAuth)>, String> {
    let what = format!("pull secret {namespace}/{name}");
    let Some(format) = SecretFormat::of_type(&secret.type_) else {
        return Err(format!(
            "{what} is of type {}, not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
            secret.type_
        ));
    };
    let Some(data) = secret.data.get(format.data_key()) else {
        return Err(format!("{what} has no {} key", format.data_key()));
    };
    let entries = auth::parse_secret_data(format, data)
        .map_err(|e| format!("{what}: {}", crate::report::error_text(&e)))?;
    let principal = Principal::new(namespace, name, &secret.resource_version);
    let mut named = Vec::new();
    let mut out = Vec::new();
    for (key, credentials) in entries {
        let Some(host) = auth::key_host(&key) else {
            continue;
        };
        if approved.contains(&host) {
            out.push((
                host,
                PullAuth {
                    principal: principal.clone(),
                    credentials: Arc::new(credentials),
                },
            ));
        } else {
            named.push(host.to_string());
        }
    }
    if out.is_empty() {
        named.sort();
        named.dedup();
        return Err(if named.is_empty() {
            format!("{what} holds no credentials")
        } else {
            // `approved` is what the walks need (the approved registries of the images
            // checked), so a secret for another approved registry is named here too.
            let wanted: Vec<String> = approved.iter().map(ToString::to_string).collect();
            format!(
                "{what} has no entry for {} (it names {}); it is not used",
                wanted.join(", "),
                named.join(", ")
            )
        });
    }
    Ok(out)
}

/// The credentials `wants` gives in `namespace`, for the `approved` hosts: the pod's own
/// `imagePullSecrets` first, then its service accounts', the first secret naming a host
/// winning (as the kubelet tries them in that order). Every failure is a warning, never an
/// error: the walk then uses the node-level credentials.
pub async fn lookup(
    source: &dyn PullSecretSource,
    namespace: &str,
    wants: &PodPullSecrets,
    approved: &[RegistryHost],
) -> Lookup {
    let mut out = Lookup::default();
    let mut names = wants.secrets.clone();
    // Each round's reads go out together: a slow API server costs two round trips, not one
    // per object.
    let accounts = join_all(
        wants
            .service_accounts
            .iter()
            .take(MAX_SERVICE_ACCOUNTS)
            .map(|sa| source.service_account_secrets(namespace, sa)),
    )
    .await;
    for (sa, answer) in wants
        .service_accounts
        .iter()
        .take(MAX_SERVICE_ACCOUNTS)
        .zip(accounts)
    {
        match answer {
            Ok(Some(list)) => names.extend(list),
            // A pod whose service account does not exist is not admitted by the API server;
            // a controller's may be created later. Either way nothing to read.
            Ok(None) => out.warnings.push(format!(
                "service account {namespace}/{sa} was not found; its pull secrets are not used"
            )),
            Err(e) => out.warnings.push(format!(
                "cannot read service account {namespace}/{sa} for its pull secrets: {}",
                crate::report::error_text(&*e)
            )),
        }
    }
    let mut unique: Vec<String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    // A pod (attacker input) may name any number of secrets: each is a request to the API
    // server, so only the first few are read.
    if unique.len() > MAX_SECRETS {
        out.warnings.push(format!(
            "{} pull secrets are named for {namespace}; only the first {MAX_SECRETS} are read",
            unique.len()
        ));
        unique.truncate(MAX_SECRETS);
    }
    let secrets = join_all(unique.iter().map(|name| source.secret(namespace, name))).await;
    for (name, answer) in unique.iter().zip(secrets) {
        let secret = match answer {
            Ok(Some(s)) => s,
            Ok(None) => {
                out.warnings.push(format!(
                    "pull secret {namespace}/{name} was not found; images are checked with the \
                     server's own registry credentials"
                ));
                continue;
            }
            Err(e) => {
                out.warnings.push(format!(
                    "cannot read pull secret {namespace}/{name}: {}; images are checked with the \
                     server's own registry credentials",
                    crate::report::error_text(&*e)
                ));
                continue;
            }
        };
        match secret_entries(namespace, name, &secret, approved) {
            Ok(entries) => {
                for (host, auth) in entries {
                    out.credentials.by_host.entry(host).or_insert(auth);
                }
            }
            Err(why) => out.warnings.push(why),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use rstest::rstest;

    use super::*;

    fn secret(type_: &str, key: &str, data: &str) -> RawSecret {
        RawSecret {
            type_: type_.into(),
            resource_version: "7".into(),
            data: HashMap::from([(key.to_owned(), data.as_bytes().to_vec())]),
        }
    }

    fn hosts(list: &[&str]) -> Vec<RegistryHost> {
        list.iter().map(|h| h.parse().unwrap()).collect()
    }

    fn json_auth(user: &str, pass: &str) -> String {
        STANDARD.encode(format!("{user}:{pass}"))
    }

    #[rstest]
    #[case::auth_field(
        "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
        format!(r#"{{"auths":{{"registry.example.org":{{"auth":"{}"}}}}}}"#, json_auth("robot", "pa:ss-w0rd")),
        "registry.example.org", "robot", "pa:ss-w0rd"
    )]
    #[case::username_and_password_fields(
        "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
        r#"{"auths":{"registry.example.org":{"username":"u","password":"pl41n-pass","email":"x@y"}}}"#.to_owned(),
        "registry.example.org", "u", "pl41n-pass"
    )]
    #[case::scheme_and_path_are_not_the_host(
        "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
        format!(r#"{{"auths":{{"https://Registry.Example.org:5000/v2/":{{"auth":"{}"}}}}}}"#, json_auth("a", "p0rt-pass")),
        "registry.example.org:5000", "a", "p0rt-pass"
    )]
    #[case::docker_hub_index_url(
        "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
        format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#, json_auth("hub", "hub-t0ken")),
        "docker.io", "hub", "hub-t0ken"
    )]
    #[case::legacy_dockercfg_has_no_auths_level(
        "kubernetes.io/dockercfg", ".dockercfg",
        format!(r#"{{"http://registry.example.org":{{"auth":"{}","email":"x@y"}}}}"#, json_auth("old", "legacy-pass")),
        "registry.example.org", "old", "legacy-pass"
    )]
    fn reads_pull_secret_entries_for_their_canonical_host(
        #[case] type_: &str,
        #[case] key: &str,
        #[case] data: String,
        #[case] host: &str,
        #[case] user: &str,
        #[case] pass: &str,
    ) {
        let s = secret(type_, key, &data);
        let approved = hosts(&[host]);
        let entries = secret_entries("team-a", "pull", &s, &approved).unwrap();
        assert_eq!(entries.len(), 1);
        let (h, auth) = &entries[0];
        assert_eq!(h, &approved[0]);
        assert_eq!(auth.credentials.username, user);
        assert_eq!(auth.credentials.password, pass);
        assert_eq!(auth.principal.as_str(), "team-a/pull@7");
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains(pass) && debug.contains("<redacted>"),
            "{debug}"
        );
    }

    #[rstest]
    #[case::wrong_type("Opaque", ".dockerconfigjson", "{}", "is of type Opaque")]
    #[case::no_data_key(
        "kubernetes.io/dockerconfigjson",
        "config.json",
        "{}",
        "has no .dockerconfigjson key"
    )]
    #[case::malformed_json(
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        "{\"auths\":",
        "is not valid JSON"
    )]
    #[case::a_string_where_an_entry_belongs_is_not_quoted(
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"registry.example.org":"hunter2"}}"#,
        "not valid JSON: a value of the wrong type at line 1 column"
    )]
    #[case::bad_auth(
        "kubernetes.io/dockercfg",
        ".dockercfg",
        r#"{"registry.example.org":{"auth":"!!"}}"#,
        "not base64"
    )]
    #[case::another_registry(
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"other.example.org":{"username":"u","password":"hunter2"}}}"#,
        "has no entry for registry.example.org (it names other.example.org); it is not used"
    )]
    #[case::lookalike_host_is_another_registry(
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"registry.example.org.evil.com":{"username":"u","password":"hunter2"}}}"#,
        "(it names registry.example.org.evil.com)"
    )]
    #[case::only_helper_entries(
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"registry.example.org":{}}}"#,
        "holds no credentials"
    )]
    fn an_unusable_secret_says_why_without_its_data(
        #[case] type_: &str,
        #[case] key: &str,
        #[case] data: &str,
        #[case] why: &str,
    ) {
        let s = secret(type_, key, data);
        let e =
            secret_entries("team-a", "pull", &s, &hosts(&["registry.example.org"])).unwrap_err();
        assert!(e.starts_with("pull secret team-a/pull"), "{e}");
        assert!(e.contains(why), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    proptest::proptest! {
        /// A secret's data is the workload owner's to write: any bytes give entries for
        /// approved hosts only, or a reason, never a panic.
        #[test]
        fn any_secret_data_gives_approved_entries_or_a_reason(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            legacy in proptest::bool::ANY,
        ) {
            let (type_, key) = if legacy {
                ("kubernetes.io/dockercfg", ".dockercfg")
            } else {
                (DOCKERCONFIGJSON_TYPE, ".dockerconfigjson")
            };
            let s = RawSecret {
                type_: type_.into(),
                resource_version: "1".into(),
                data: HashMap::from([(key.to_owned(), data)]),
            };
            let approved = hosts(&["registry.example.org", "docker.io"]);
            if let Ok(entries) = secret_entries("ns", "s", &s, &approved) {
                proptest::prop_assert!(entries.iter().all(|(h, _)| approved.contains(h)));
            }
        }

        #[test]
        fn config_shaped_secret_data_gives_approved_entries_or_a_reason(
            v in r#"(\{|\}|"auths"|:|,|"auth"|"username"|"password"|"registry.example.org"|"https://docker.io/v1/"|"Registry.Example.Org:5000"|"cm9ib3Q6cGFzcw=="|"!!"|\[|\]|1| ){0,40}"#
        ) {
            let s = RawSecret {
                type_: DOCKERCONFIGJSON_TYPE.into(),
                resource_version: "1".into(),
                data: HashMap::from([(".dockerconfigjson".to_owned(), v.into_bytes())]),
            };
            let approved = hosts(&["registry.example.org"]);
            if let Ok(entries) = secret_entries("ns", "s", &s, &approved) {
                proptest::prop_assert!(entries.iter().all(|(h, _)| approved.contains(h)));
            }
        }
    }

    const DOCKERCONFIGJSON_TYPE: &str = "kubernetes.io/dockerconfigjson";

    struct Fixed {
        secrets: HashMap<String, RawSecret>,
        accounts: HashMap<String, Vec<String>>,
    }

    impl PullSecretSource for Fixed {
        fn secret<'a>(
            &'a self,
            _ns: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<RawSecret>, SourceError>> {
            Box::pin(async move { Ok(self.secrets.get(name).cloned()) })
        }

        fn service_account_secrets<'a>(
            &'a self,
            _ns: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<Vec<String>>, SourceError>> {
            Box::pin(async move { Ok(self.accounts.get(name).cloned()) })
        }
    }

    #[tokio::test]
    async fn the_pods_own_secret_wins_over_its_service_accounts_and_missing_ones_warn() {
        let entry = |u: &str| {
            secret(
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                &format!(
                    r#"{{"auths":{{"registry.example.org":{{"username":"{u}","password":"p"}}}}}}"#
                ),
            )
        };
        let source = Fixed {
            secrets: HashMap::from([("own".into(), entry("own")), ("sa".into(), entry("sa"))]),
            accounts: HashMap::from([("default".into(), vec!["sa".into(), "gone".into()])]),
        };
        let wants = PodPullSecrets {
            secrets: vec!["own".into()],
            service_accounts: vec!["default".into(), "builder".into()],
        };
        let approved = hosts(&["registry.example.org"]);
        let found = lookup(&source, "team-a", &wants, &approved).await;
        let auth = found.credentials.get(&approved[0]).unwrap();
        assert_eq!(auth.credentials.username, "own");
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
        assert!(found.warnings[0].contains("service account team-a/builder was not found"));
        assert!(found.warnings[1].contains("pull secret team-a/gone was not found"));
    }
}
