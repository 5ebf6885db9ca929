//! Listing live state from the API server through kube: in-cluster config or a kubeconfig and
//! context, every pod and pod controller in all namespaces (or a selection), page by page. The
//! listed objects are the same JSON the file input reads, so both feed [`super::LiveState`].

use std::path::Path;
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

/// The kinds the reports need: what runs (Pods) and what declares it (their controllers).
pub const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

/// The OpenReports `Report` (namespaced): what `serve --audit-reports` writes.
const REPORTS: (&str, &str, &str, &str) = ("openreports.io", "v1alpha1", "Report", "reports");
/// The field manager of tollgate's server-side applies.
pub const FIELD_MANAGER: &str = "tollgate";

/// How many times a listing starts over after its continue token expired (HTTP 410).
const RESTARTS: usize = 3;

/// Why live state could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig cannot be read or has no such context.
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        /// The file given, or `$KUBECONFIG or ~/.kube/config` when only a context was.
        path: String,
        /// kube's reason.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given and none could be inferred: no usable `$KUBECONFIG` or
    /// `~/.kube/config`, and not running in a cluster.
    #[error(
        "no cluster configuration: no kubeconfig and not running in a cluster; pass a \
         kubeconfig (--kubeconfig, $KUBECONFIG) or read live state from a file (--live-file)"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// The client cannot be built from the configuration.
    #[error("cannot build the API client")]
    Client(#[source] kube::Error),
    /// A listing failed.
    #[error("cannot list {resource}")]
    List {
        /// The plural resource, with its namespace when listed per namespace (`pods in web`).
        resource: String,
        /// kube's reason (the API server's status, or the connection's failure).
        #[source]
        source: kube::Error,
    },
    /// The listing did not finish within its deadline.
    #[error(
        "cannot list {resource}: the API server did not answer within the {}s listing deadline \
         (--list-deadline)",
        .deadline.as_secs()
    )]
    Deadline {
        /// The resource being listed when the deadline passed.
        resource: String,
        /// The deadline.
        deadline: Duration,
    },
    /// A server-side apply of a Report was refused or failed.
    #[error("cannot apply report {namespace}/{name}")]
    Apply {
        /// The Report's namespace.
        namespace: String,
        /// The Report's name.
        name: String,
        /// kube's reason (the API server's status, or the connection's failure).
        #[source]
        source: kube::Error,
    },
    /// A stale Report could not be deleted.
    #[error("cannot delete report {namespace}/{name}")]
    Delete {
        /// The Report's namespace.
        namespace: String,
        /// The Report's name.
        name: String,
        /// kube's reason.
        #[source]
        source: kube::Error,
    },
    /// The continue token expired (HTTP 410) on every attempt: the listing started over as
    /// many times as it may and never reached the last page.
    #[error(
        "cannot list {resource}: the continue token kept expiring ({RESTARTS} restarts); the \
         list changes faster than it can be paged, try a larger --page-size"
    )]
    KeptExpiring {
        /// The plural resource, with its namespace when listed per namespace (`pods in web`).
        resource: String,
    },
}

/// A connection to the API server.
pub struct Cluster {
    client: Client,
}

impl Cluster {
    /// Connect with `kubeconfig` (else $KUBECONFIG / ~/.kube/config, else the in-cluster service
    /// account) and `context` (else the current context).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Cluster, ClusterError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let err = |source| ClusterError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                };
                let kc = Kubeconfig::read_from(path).map_err(err)?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(err)?
            }
            None if context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|source| {
                    ClusterError::Kubeconfig {
                        path: "$KUBECONFIG or ~/.kube/config".into(),
                        source,
                    }
                })?
            }
            None => Config::infer().await.map_err(ClusterError::Infer)?,
        };
        // kube retries a failing API server up to 15 times with backoff, for minutes; the
        // caller's deadline bounds the listing instead, and a failed audit run is retried at
        // the next interval.
        let mut config = config;
        config.default_retry = false;
        let client = Client::try_from(config).map_err(ClusterError::Client)?;
        Ok(Cluster { client })
    }

    /// The API client (cheap to clone), for reads other than listings.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Every object of [`KINDS`] in `namespaces` (all when empty), `page_size` per request,
    /// within `deadline` for the whole listing. Each object gets its `kind` and `apiVersion`
    /// (list items come without them).
    pub async fn list(
        &self,
        namespaces: &[String],
        page_size: u32,
        deadline: Duration,
    ) -> Result<Vec<Value>, ClusterError> {
        let until = tokio::time::Instant::now() + deadline;
        let mut out = Vec::new();
        for &(group, version, kind, plural) in KINDS {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
            let apis: Vec<(String, Api<DynamicObject>)> = if namespaces.is_empty() {
                vec![(plural.to_owned(), Api::all_with(self.client.clone(), &ar))]
            } else {
                namespaces
                    .iter()
                    .map(|ns| {
                        (
                            format!("{plural} in {ns}"),
                            Api::namespaced_with(self.client.clone(), ns, &ar),
                        )
                    })
                    .collect()
            };
            for (resource, api) in apis {
                let pages =
                    tokio::time::timeout_at(until, list_pages(&api, &resource, page_size, None))
                        .await
                        .map_err(|_| ClusterError::Deadline {
                            resource: resource.clone(),
                            deadline,
                        })??;
                for mut v in pages {
                    v["kind"] = Value::String(kind.to_owned());
                    v["apiVersion"] = Value::String(gvk.api_version());
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    fn reports(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let (group, version, kind, plural) = REPORTS;
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Server-side apply of the Report `body` (`PATCH` with `application/apply-patch+yaml`,
    /// `fieldManager=tollgate`, `force=true`): created when missing, replaced field by field
    /// when present. Forced, because tollgate owns these objects and a conflict with another
    /// manager must not leave a stale report.
    pub async fn apply_report(
        &self,
        namespace: &str,
        name: &str,
        body: &Value,
    ) -> Result<(), ClusterError> {
        self.reports(Some(namespace))
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .map(|_| ())
            .map_err(|source| ClusterError::Apply {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            })
    }

    /// (namespace, name) of every Report matching the label `selector` in `namespaces` (all
    /// when empty).
    pub async fn list_reports(
        &self,
        namespaces: &[String],
        selector: &str,
        page_size: u32,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let apis: Vec<(String, Api<DynamicObject>)> = if namespaces.is_empty() {
            vec![(REPORTS.3.to_owned(), self.reports(None))]
        } else {
            namespaces
                .iter()
                .map(|ns| (format!("{} in {ns}", REPORTS.3), self.reports(Some(ns))))
                .collect()
        };
        let mut out = Vec::new();
        for (resource, api) in apis {
            for v in list_pages(&api, &resource, page_size, Some(selector)).await? {
                let meta = |k: &str| {
                    v.pointer(&format!("/metadata/{k}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                if let (Some(ns), Some(name)) = (meta("namespace"), meta("name")) {
                    out.push((ns, name));
                }
            }
        }
        Ok(out)
    }

    /// Delete the Report `namespace`/`name`; one already gone (404) counts as deleted.
    pub async fn delete_report(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        match self
            .reports(Some(namespace))
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ClusterError::Delete {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }),
        }
    }
}

/// One resource, page by page. A continue token expires when the list is paged slower than
/// the API server compacts its history (HTTP 410 Gone); the listing then starts over, because
/// the pages already read may be inconsistent with the rest.
async fn list_pages(
    api: &Api<DynamicObject>,
    resource: &str,
    page_size: u32,
    selector: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    'restart: for attempt in 0..=RESTARTS {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(page_size);
            if let Some(s) = selector {
                lp = lp.labels(s);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = match api.list(&lp).await {
                Ok(page) => page,
                Err(kube::Error::Api(status)) if status.code == 410 && token.is_some() => {
                    tracing::warn!(
                        resource,
                        attempt,
                        "continue token expired (410 Gone); listing again from the start"
                    );
                    continue 'restart;
                }
                Err(source) => {
                    return Err(ClusterError::List {
                        resource: resource.to_owned(),
                        source,
                    });
                }
            };
            for item in page.items {
                items.push(serde_json::to_value(item).expect("an API object serializes"));
            }
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(items),
            }
        }
    }
    Err(ClusterError::KeptExpiring {
        resource: resource.to_owned(),
    })
}
