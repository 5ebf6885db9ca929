//! Reloading the serving certificate and the policy when their files change, by content: a
//! mounted ConfigMap or Secret changes by swapping a symlink, which leaves the files' own
//! modification times as they were. A change that cannot be used is refused and counted, and
//! what is in force stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::state::{AppState, BoxError, engine};
use super::tls::ServingCert;
use crate::policy::{PolicyError, parse_policy_with, read_beside};
use crate::report::error_text;

/// Why a changed policy file is not applied.
#[derive(Debug, thiserror::Error)]
enum PolicyReloadError {
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    #[error("it is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Invalid(PolicyError),
    #[error("cannot build the registry client for it")]
    Registry(#[source] BoxError),
}

pub(super) fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Reads the certificate, key and policy files every interval and applies what changed. By
/// content, not modification time: a mounted ConfigMap or Secret changes by swapping a
/// symlink, which leaves the files' own times as they were.
pub(super) struct Reloader {
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    /// Of the last certificate and key read, applied or not (a bad pair is reported once).
    pub(super) cert_hash: [u8; 32],
    pub(super) policy: Option<PathBuf>,
    /// Of the policy file and the files it names, as last read.
    pub(super) policy_hash: Option<[u8; 32]>,
    /// The files the policy in force names (`spec.trustedRoot`): a change to one of them is a
    /// change to the policy.
    pub(super) policy_files: Vec<String>,
}

/// The hash of a policy file's read and of the files it names, as read now (an unreadable
/// file hashes its error, so that it becoming readable is a change).
pub(super) async fn policy_hash(
    path: &std::path::Path,
    text: &Result<Vec<u8>, std::io::Error>,
    files: &[String],
) -> [u8; 32] {
    let mut parts: Vec<Vec<u8>> = vec![match text {
        Ok(t) => t.clone(),
        Err(e) => e.to_string().into_bytes(),
    }];
    for name in files {
        parts.push(
            match tokio::fs::read(crate::policy::files::beside(path, name)).await {
                Ok(b) => b,
                Err(e) => e.to_string().into_bytes(),
            },
        );
    }
    hash(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

impl Reloader {
    /// Check the files every `interval` until `stop` changes.
    pub(super) async fn run(
        mut self,
        state: Arc<AppState>,
        mut stop: watch::Receiver<bool>,
        interval: Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.certificate(&state).await;
            self.policy(&state).await;
        }
    }

    async fn certificate(&mut self, state: &AppState) {
        let (cert, key) = match (
            tokio::fs::read(&self.cert).await,
            tokio::fs::read(&self.key).await,
        ) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                let h = hash(&[e.to_string().as_bytes()]);
                if h != self.cert_hash {
                    self.cert_hash = h;
                    state.metrics.certificate_reload(false);
                    tracing::error!(cert = %self.cert.display(), key = %self.key.display(), error = %e,
                        "cannot read the serving certificate; the previous one stays in use");
                }
                return;
            }
        };
        let h = hash(&[&cert, &key]);
        if h == self.cert_hash {
            return;
        }
        self.cert_hash = h;
        match ServingCert::from_pem(&cert, &key, &self.provider) {
            Ok(c) => {
                tracing::info!(cert = %self.cert.display(), not_after = %c.not_after,
                    "serving certificate reloaded; new connections use it");
                state.certs.replace(c);
                state.metrics.certificate_reload(true);
            }
            Err(e) => {
                // A certificate and key written one after the other are seen half-done once;
                // the next read, with both written, applies them.
                tracing::error!(cert = %self.cert.display(), key = %self.key.display(), error = %e,
                    "the new serving certificate is not used; the previous one stays in use");
                state.metrics.certificate_reload(false);
            }
        }
    }

    async fn policy(&mut self, state: &AppState) {
        let Some(path) = &self.policy else {
            return;
        };
        let text = tokio::fs::read(path).await;
        let h = policy_hash(path, &text, &self.policy_files).await;
        if Some(h) == self.policy_hash {
            return;
        }
        self.policy_hash = Some(h);
        let origin = path.display().to_string();
        let parsed = text
            .map_err(PolicyReloadError::Read)
            .and_then(|t| String::from_utf8(t).map_err(|_| PolicyReloadError::NotUtf8))
            .and_then(|t| {
                parse_policy_with(&t, &origin, &|name: &str| read_beside(path, name))
                    .map_err(PolicyReloadError::Invalid)
            });
        if let Ok(p) = &parsed
            && p.files() != self.policy_files.as_slice()
        {
            // The new policy names other files: watch those, and hash what was just read.
            self.policy_files = p.files().to_vec();
            let again = tokio::fs::read(path).await;
            self.policy_hash = Some(policy_hash(path, &again, &self.policy_files).await);
        }
        let current = state.engine();
        let next = parsed.and_then(|p| {
            engine(
                Arc::new(p),
                state.resolvers.as_ref(),
                &state.observer,
                Some(&current),
            )
            .map_err(PolicyReloadError::Registry)
        });
        match next {
            Ok(next) => {
                tracing::info!(policy = %origin, name = next.policy.name(), "policy reloaded");
                *state.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                state.metrics.policy_reload(true);
            }
            Err(e) => {
                tracing::error!(policy = %origin, error = %error_text(&e),
                    "the new policy is rejected; the previous policy stays in force");
                state.metrics.policy_reload(false);
            }
        }
    }
}
