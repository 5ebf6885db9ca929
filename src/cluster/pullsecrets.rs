//! Pull secrets and service accounts read from the API server, one by name (`get`, never
//! `list` or `watch`: the RBAC this needs is `get` on secrets and serviceaccounts), for
//! [`crate::registry::pull`], which parses them.
//!
//! What the API server said is cached for [`TTL`], by namespace and name: a secret's
//! credentials are stamped with its resourceVersion ([`crate::registry::pull::Principal`]), so
//! a rotated secret is a new principal as soon as it is read again. Only objects found are
//! cached; a 404 or a failure is asked again next time. Concurrent reads of one object (the
//! pods of one rollout) share one request. Nothing here logs a secret's data.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use moka::future::Cache;

use super::kube::Cluster;
use crate::registry::pull::{PullSecretSource, RawSecret, SourceError};

/// How long a secret or service account read is reused: a burst of pods of one Deployment
/// reads each secret once, and a rotated password is picked up within a minute.
pub const TTL: Duration = Duration::from_secs(60);

/// (namespace, name).
type Key = (String, String);

/// Why a secret or service account could not be read. Says what the API server answered, never
/// what the object held: a response that does not parse is named as such, without the parser's
/// message, which could quote a secret's data.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The API server refused or failed (403 without `get`, 5xx): its own status message.
    #[error("the API server answered {code} {reason}: {message}")]
    Status {
        /// The HTTP status.
        code: u16,
        /// The Status's reason (`Forbidden`, `ServiceUnavailable`).
        reason: String,
        /// The Status's message.
        message: String,
    },
    /// An answer that is not the object asked for.
    #[error("the API server's answer is not a {0}")]
    Shape(&'static str),
    /// No answer: connection refused, TLS, timeout.
    #[error("the API server could not be reached")]
    Transport(#[source] kube::Error),
}

fn read_error(what: &'static str, e: kube::Error) -> ReadError {
    match e {
        kube::Error::Api(s) => ReadError::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        kube::Error::SerdeError(_) => ReadError::Shape(what),
        other => ReadError::Transport(other),
    }
}

/// Reads pull secrets through one API client, with a short cache.
pub struct ApiPullSecrets {
    client: kube::Client,
    secrets: Cache<Key, Arc<RawSecret>>,
    accounts: Cache<Key, Arc<Vec<String>>>,
}

impl ApiPullSecrets {
    /// Read through `cluster`'s client.
    pub fn new(cluster: &Cluster) -> Self {
        ApiPullSecrets {
            client: cluster.client(),
            secrets: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TTL)
                .build(),
            accounts: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TTL)
                .build(),
        }
    }

    async fn read_secret(&self, ns: &str, name: &str) -> Result<Option<RawSecret>, SourceError> {
        let fetch = async {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| Miss::Failed(read_error("Secret", e)))?
                .ok_or(Miss::NotFound)?;
            Ok(Arc::new(RawSecret {
                type_: secret.type_.unwrap_or_default(),
                resource_version: secret.metadata.resource_version.unwrap_or_default(),
                data: secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            }))
        };
        let key = (ns.to_owned(), name.to_owned());
        answer(self.secrets.try_get_with(key, fetch).await).map(|s| s.map(|s| (*s).clone()))
    }

    async fn read_account(&self, ns: &str, name: &str) -> Result<Option<Vec<String>>, SourceError> {
        let fetch = async {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
            let account = api
                .get_opt(name)
                .await
                .map_err(|e| Miss::Failed(read_error("ServiceAccount", e)))?
                .ok_or(Miss::NotFound)?;
            Ok(Arc::new(
                account
                    .image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .filter(|n| !n.is_empty())
                    .collect::<Vec<String>>(),
            ))
        };
        let key = (ns.to_owned(), name.to_owned());
        answer(self.accounts.try_get_with(key, fetch).await).map(|a| a.map(|a| (*a).clone()))
    }
}

/// A read that found nothing to cache. Concurrent reads of one object share one request
/// (moka's `try_get_with`), and share its miss too; a miss is never cached.
#[derive(Debug)]
enum Miss {
    NotFound,
    Failed(ReadError),
}

/// The shared miss of a read, for each caller that waited for it.
#[derive(Debug)]
struct SharedMiss(Arc<Miss>);

impl std::fmt::Display for SharedMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Miss::NotFound => f.write_str("not found"),
            Miss::Failed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SharedMiss {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            Miss::NotFound => None,
            Miss::Failed(e) => std::error::Error::source(e),
        }
    }
}

fn answer<T>(found: Result<T, Arc<Miss>>) -> Result<Option<T>, SourceError> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(miss) if matches!(*miss, Miss::NotFound) => Ok(None),
        Err(miss) => Err(Box::new(SharedMiss(miss))),
    }
}

impl PullSecretSource for ApiPullSecrets {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RawSecret>, SourceError>> {
        Box::pin(self.read_secret(namespace, name))
    }

    fn service_account_secrets<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, SourceError>> {
        Box::pin(self.read_account(namespace, name))
    }
}
