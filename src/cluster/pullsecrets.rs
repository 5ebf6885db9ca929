//! Pull secrets and service accounts read from the API server, one by name (`get`, never
//! `list` or `watch`: the RBAC this needs is `get` on secrets and serviceaccounts), for
//! [`crate::registry::pull`], which parses them.
//!
//! What the API server said is cached for [`TTL`], by namespace and name: a secret's
//! credentials are stamped with its resourceVersion ([`crate::registry::pull::Principal`]), so
//! a rotated secret is a new principal as soon as it is read again. Only objects found are
//! cached; a 404 or a failure is asked again next time. Nothing here logs a secret's data.

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

fn read_error(what: &'static str, e: kube::Error) -> SourceError {
    Box::new(match e {
        kube::Error::Api(s) => ReadError::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        kube::Error::SerdeError(_) => ReadError::Shape(what),
        other => ReadError::Transport(other),
    })
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
        let key = (ns.to_owned(), name.to_owned());
        if let Some(s) = self.secrets.get(&key).await {
            return Ok(Some((*s).clone()));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(secret) = api
            .get_opt(name)
            .await
            .map_err(|e| read_error("Secret", e))?
        else {
            return Ok(None);
        };
        let raw = RawSecret {
            type_: secret.type_.unwrap_or_default(),
            resource_version: secret.metadata.resource_version.unwrap_or_default(),
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        };
        self.secrets.insert(key, Arc::new(raw.clone())).await;
        Ok(Some(raw))
    }

    async fn read_account(&self, ns: &str, name: &str) -> Result<Option<Vec<String>>, SourceError> {
        let key = (ns.to_owned(), name.to_owned());
        if let Some(a) = self.accounts.get(&key).await {
            return Ok(Some((*a).clone()));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let Some(account) = api
            .get_opt(name)
            .await
            .map_err(|e| read_error("ServiceAccount", e))?
        else {
            return Ok(None);
        };
        let names: Vec<String> = account
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        self.accounts.insert(key, Arc::new(names.clone())).await;
        Ok(Some(names))
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
