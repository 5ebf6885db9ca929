//! Merged but never rolled out: the deploy repository against live state.
//!
//! For each workload the repository declares at a branch's head (in Kubernetes manifests, or in
//! Helm values files mapped to a workload through `.tollgate.yaml`), the desired images are
//! compared with the images of the live controller's pod template. Where they differ, the
//! commits merged since the deployed revision (the newest commit whose images match what runs)
//! are the ones not rolled out: a registry's retention rule may prune the image that actually
//! runs while they wait.
//!
//! - this module: what a file declares and how desired images pair with live ones, and the
//!   report model; pure;
//! - [`walk`]: the comparison at the branch's head and the walk of its history, reading git
//!   through [`crate::git::DeployRepo`];
//! - [`render`]: the report as text, shared by `tollgate rollout` and the audit's rollout
//!   section (JSON is the model's serde form).

pub mod render;
mod walk;

pub use walk::{Options, RolloutError, report};

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::values;
use crate::cluster::LiveState;
use crate::config::repo::{FileKind, RepoConfig};
use crate::reference::{RegistryHost, Repository, WrittenImage};
use crate::workload;
use crate::yaml::{self, Record};

/// A workload as the cluster names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadKey {
    /// The object's `kind` (`Deployment`, `CronJob`, ...).
    pub kind: String,
    /// The object's namespace: as the file or `.tollgate.yaml` says, else the repository's
    /// default namespace, else `default`.
    pub namespace: String,
    /// The object's `metadata.name`.
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One image a workload should run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DesiredImage {
    /// The container, when the file says (manifests do; Helm values do not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image as the file writes it (composed from its parts in a values file).
    pub image: WrittenImage,
}

/// The workloads a file declares, with their images. `None` when the file is neither a
/// manifest nor a mapped values file. A document that is not YAML declares nothing (the git
/// gates are what refuse broken files).
pub fn declared(
    config: &RepoConfig,
    path: &str,
    text: &str,
) -> Option<BTreeMap<WorkloadKey, Vec<DesiredImage>>> {
    let default_ns = config.namespace().unwrap_or("default");
    let mut out: BTreeMap<WorkloadKey, Vec<DesiredImage>> = BTreeMap::new();
    match config.classify(path) {
        FileKind::Other => return None,
        FileKind::Values(spec) => {
            let target = spec.workload.as_ref()?;
            let key = WorkloadKey {
                kind: target.kind.clone(),
                namespace: target
                    .namespace
                    .clone()
                    .or_else(|| spec.namespace.clone())
                    .unwrap_or_else(|| default_ns.to_owned()),
                name: target.name.clone(),
            };
            let images = out.entry(key).or_default();
            for doc in yaml::load_all(text, Record::ImageFields).flatten() {
                let (found, _) = values::extract(&doc.value, spec);
                images.extend(found.into_iter().map(|i| DesiredImage {
                    container: None,
                    image: i.image,
                }));
            }
        }
        FileKind::Manifest => {
            for doc in yaml::load_all(text, Record::ImageFields).flatten() {
                let w = workload::extract(&doc.value);
                for (i, (object, _)) in w.objects.iter().enumerate() {
                    let key = WorkloadKey {
                        kind: object.kind.clone(),
                        namespace: object
                            .namespace
                            .clone()
                            .unwrap_or_else(|| default_ns.to_owned()),
                        name: object.name.clone(),
                    };
                    let images = out.entry(key).or_default();
                    images.extend(w.images.iter().filter(|u| u.object == i).map(|u| {
                        DesiredImage {
                            container: Some(u.container.name.clone()),
                            image: u.image.clone(),
                        }
                    }));
                }
            }
        }
    }
    for images in out.values_mut() {
        images.sort();
        images.dedup();
    }
    Some(out)
}

/// The (container, image) pairs of a live workload's pod template; `None` when it does not run.
pub fn live_images(live: &LiveState, key: &WorkloadKey) -> Option<Vec<(String, WrittenImage)>> {
    if key.kind == "Pod" {
        let pod = live
            .pods
            .iter()
            .find(|p| p.namespace == key.namespace && p.name == key.name)?;
        return Some(
            pod.containers
                .iter()
                .map(|c| (c.container.name.clone(), c.image.clone()))
                .collect(),
        );
    }
    let c = live.controllers.iter().find(|c| {
        c.object.kind == key.kind
            && c.object.name == key.name
            && c.object.namespace.as_deref() == Some(key.namespace.as_str())
    })?;
    Some(
        c.images
            .iter()
            .map(|(c, image)| (c.name.clone(), image.clone()))
            .collect(),
    )
}

/// A desired image and the live image of the same container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePair {
    /// The container: the one the file names, else the live one it was paired with; `None`
    /// when neither is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image the branch declares.
    pub desired: WrittenImage,
    /// `None`: no live container matches.
    pub live: Option<WrittenImage>,
}

impl ImagePair {
    /// Whether the live container runs the desired image.
    pub fn in_sync(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| self.desired.same_image(live))
    }
}

/// Pair each desired image with a live container: by container name where the file names it,
/// else by image repository (Helm values say which image, not which container), else the only
/// container there is.
pub fn pair(desired: &[DesiredImage], live: &[(String, WrittenImage)]) -> Vec<ImagePair> {
    desired
        .iter()
        .map(|d| {
            let by_name = d
                .container
                .as_deref()
                .and_then(|name| live.iter().find(|(c, _)| c == name));
            let by_repo = || {
                let want = repository(&d.image)?;
                live.iter().find(|(_, i)| repository(i) == Some(want))
            };
            let only = || (live.len() == 1).then(|| &live[0]);
            let found = by_name.or_else(by_repo).or_else(only);
            ImagePair {
                container: d
                    .container
                    .clone()
                    .or_else(|| found.map(|(c, _)| c.clone())),
                desired: d.image.clone(),
                live: found.map(|(_, i)| i.clone()),
            }
        })
        .collect()
}

/// Whether a set of desired images is what runs (`live` `None`: nothing runs).
fn matches_live(desired: Option<&[DesiredImage]>, live: Option<&[(String, WrittenImage)]>) -> bool {
    match (desired, live) {
        (None, None) => true,
        (Some(d), Some(l)) => !d.is_empty() && pair(d, l).iter().all(ImagePair::in_sync),
        _ => false,
    }
}

/// The image's registry and repository, once normalised (`nginx` is `docker.io/library/nginx`).
fn repository(image: &WrittenImage) -> Option<(&RegistryHost, &Repository)> {
    image.reference().map(|r| (r.registry(), r.repository()))
}

/// A commit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCommit {
    /// The full commit id (40 hex characters).
    pub sha: String,
    /// The first line of the message.
    pub subject: String,
    /// `Name <email>`.
    pub author: String,
    /// Committer time (when it landed on the branch), RFC 3339, UTC.
    pub time: String,
    /// Seconds between the commit and `now` (negative for a commit from the future).
    pub age_seconds: i64,
    /// Older than the grace period: it counts as not rolled out.
    pub overdue: bool,
}

/// How a workload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The live images are the desired ones.
    InSync,
    /// It runs other images than the branch declares.
    Behind,
    /// The branch declares it but it does not run.
    NotLive,
}

/// One workload's standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    /// The workload.
    pub workload: WorkloadKey,
    /// Whether it runs what the branch declares.
    pub status: Status,
    /// The files that declare it at the branch's head.
    pub files: Vec<String>,
    /// Each desired image with the live image of the same container (none when not live).
    pub images: Vec<ImagePair>,
    /// Commits that changed its images since the deployed revision, newest first.
    pub not_rolled_out: Vec<ReportCommit>,
    /// The newest commit whose images match what runs (the one that introduced them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_revision: Option<ReportCommit>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    /// The branch compared, as the user named it.
    pub branch: String,
    /// The full id of the branch's head commit.
    pub head: String,
    /// How old a not-rolled-out commit may be before it is overdue, in whole seconds.
    pub grace_seconds: u64,
    /// Every workload the head declares with an image to compare, in sync or not, sorted by
    /// kind, namespace and name.
    pub workloads: Vec<WorkloadReport>,
}

impl RolloutReport {
    /// Whether a commit older than the grace period is not rolled out (exit code 1).
    pub fn has_overdue(&self) -> bool {
        self.overdue_commits() > 0
    }

    /// Not-rolled-out commits past the grace period, counted once per workload.
    pub fn overdue_commits(&self) -> usize {
        self.workloads
            .iter()
            .flat_map(|w| &w.not_rolled_out)
            .filter(|c| c.overdue)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn d(container: Option<&str>, image: &str) -> DesiredImage {
        DesiredImage {
            container: container.map(str::to_owned),
            image: WrittenImage::new(image),
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, WrittenImage)> {
        pairs
            .iter()
            .map(|(c, i)| ((*c).to_owned(), WrittenImage::new(*i)))
            .collect()
    }

    #[rstest]
    #[case::same_container_same_image(d(Some("api"), "r.org/api:1"), &[("api", "r.org/api:1")], true)]
    #[case::same_container_other_tag(d(Some("api"), "r.org/api:2"), &[("api", "r.org/api:1")], false)]
    #[case::docker_hub_short_name(d(Some("web"), "nginx:1.25"), &[("web", "docker.io/library/nginx:1.25")], true)]
    #[case::values_image_by_repository(d(None, "r.org/api:1"), &[("sidecar", "r.org/proxy:3"), ("main", "r.org/api:1")], true)]
    #[case::values_image_the_only_container(d(None, "r.org/api:2"), &[("main", "r.org/other:2")], false)]
    #[case::no_live_container(d(Some("api"), "r.org/api:1"), &[("sidecar", "r.org/proxy:3"), ("x", "r.org/y:1")], false)]
    fn pairing(#[case] desired: DesiredImage, #[case] live: &[(&str, &str)], #[case] ok: bool) {
        let pairs = pair(std::slice::from_ref(&desired), &l(live));
        assert_eq!(pairs[0].in_sync(), ok, "{pairs:?}");
    }

    #[test]
    fn a_manifest_declares_its_workloads_with_the_default_namespace() {
        let config = RepoConfig::parse("namespace: tools\n", ".tollgate.yaml").unwrap();
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers: [{name: api, image: 'r.org/api:1'}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api}\n";
        let found = declared(&config, "k8s/api.yaml", text).unwrap();
        let key = WorkloadKey {
            kind: "Deployment".into(),
            namespace: "tools".into(),
            name: "api".into(),
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[&key], vec![d(Some("api"), "r.org/api:1")]);
    }

    #[test]
    fn values_declare_a_workload_only_when_mapped() {
        let mapped = RepoConfig::parse(
            "helmValues: [{files: ['api/values.yaml'], namespace: builds, workload: {kind: Deployment, name: builds-api}}]\n",
            ".tollgate.yaml",
        )
        .unwrap();
        let text = "image: {repository: r.org/builds-api, tag: 0.0.131}\n";
        let found = declared(&mapped, "api/values.yaml", text).unwrap();
        let (key, images) = found.iter().next().unwrap();
        assert_eq!(key.to_string(), "Deployment builds/builds-api");
        assert_eq!(images, &vec![d(None, "r.org/builds-api:0.0.131")]);
        assert_eq!(
            declared(&RepoConfig::default(), "api/values.yaml", text),
            None
        );
    }

    #[rstest]
    #[case::nothing_runs_and_nothing_declared(None, None, true)]
    #[case::declared_not_running(Some(vec![d(Some("a"), "r/a:1")]), None, false)]
    #[case::running_not_declared(None, Some(l(&[("a", "r/a:1")])), false)]
    #[case::empty_declaration_never_matches(Some(vec![]), Some(l(&[("a", "r/a:1")])), false)]
    fn matching_live(
        #[case] desired: Option<Vec<DesiredImage>>,
        #[case] live: Option<Vec<(String, WrittenImage)>>,
        #[case] ok: bool,
    ) {
        assert_eq!(matches_live(desired.as_deref(), live.as_deref()), ok);
    }
}
