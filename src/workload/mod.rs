//! Finding every container image in Kubernetes objects.
//!
//! Pure: takes a `serde_json::Value` (a manifest document or an AdmissionReview object) and
//! returns each image with the identity of the object that carries it and the JSON pointer of
//! its field. Objects without a pod spec are counted and otherwise skipped; values that are not
//! Kubernetes objects at all are listed, for the caller to report.
//!
//! Must not touch: the policy (what an image is, not whether it is allowed), IO, the clock.

use std::fmt;

pub mod kinds;

pub use kinds::{FieldPath, KindEntry, Site, WorkloadKinds};

use crate::reference::WrittenImage;
use serde::Serialize;
use serde_json::Value;

/// Which Kubernetes object an image belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion` as written, or inherited from a typed list (`PodList` items carry none).
    pub api_version: String,
    /// `kind`, likewise.
    pub kind: String,
    /// `None` when the manifest does not say; the caller's default namespace applies.
    pub namespace: Option<String>,
    /// `metadata.name`; `generateName` followed by `*` when only that is set, `<unnamed>`
    /// when neither is.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where in a pod spec an image is pulled for: the three container lists, and image volumes
/// (`volumes[].image.reference`, an OCI image the kubelet pulls and mounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerKind {
    /// `containers`.
    Container,
    /// `initContainers`, native sidecars (`restartPolicy: Always`) included.
    InitContainer,
    /// `ephemeralContainers`, added to a running pod (`kubectl debug`).
    EphemeralContainer,
    /// An image volume; its "container" name is the volume's name.
    ImageVolume,
}

impl ContainerKind {
    const ALL: [(ContainerKind, &'static str); 3] = [
        (ContainerKind::InitContainer, "initContainers"),
        (ContainerKind::Container, "containers"),
        (ContainerKind::EphemeralContainer, "ephemeralContainers"),
    ];

    /// The pod spec field that holds this list.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::InitContainer => "initContainers",
            ContainerKind::EphemeralContainer => "ephemeralContainers",
            ContainerKind::ImageVolume => "volumes",
        }
    }
}

impl fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerKind::Container => "container",
            ContainerKind::InitContainer => "init container",
            ContainerKind::EphemeralContainer => "ephemeral container",
            ContainerKind::ImageVolume => "image volume",
        })
    }
}

/// A container of a pod-bearing object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRef {
    /// The container's `name`; `#N` (its index in the list) when it has none. A container of
    /// a Helm values file is named by the image's key path.
    pub name: String,
    /// Which list of the pod spec it is in.
    pub kind: ContainerKind,
}

/// An image as written in a container, not yet parsed (parsing is the policy's first rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Index into [`Workloads::objects`] of the object it is in.
    pub object: usize,
    /// The container that names it.
    pub container: ContainerRef,
    /// JSON pointer of the `image` field, e.g. `/spec/template/spec/initContainers/0/image`.
    pub pointer: String,
    /// The image as written, parsed once here.
    pub image: WrittenImage,
}

/// A pod-bearing object whose containers cannot be read: a missing or non-string image, a
/// container list that is not a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Index into [`Workloads::objects`] of the object it is in.
    pub object: usize,
    /// The container whose image is missing or not a string; `None` when the problem is the
    /// pod spec, a container list or a list entry that is not a mapping.
    pub container: Option<ContainerRef>,
    /// JSON pointer of what is wrong: the `image` field, the list, the entry or the pod spec.
    pub pointer: String,
    /// What is wrong, in one line.
    pub message: String,
}

/// What a document holds: its pod-bearing objects, their images and what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workloads {
    /// Pod-bearing objects, each with the pointer of the object within the document.
    pub objects: Vec<(ObjectRef, String)>,
    /// Every image, object by object in document order; within one, init containers, then
    /// containers, then ephemeral containers.
    pub images: Vec<ImageUse>,
    /// Every pod spec, container list or container that could not be read.
    pub malformed: Vec<Malformed>,
    /// Kubernetes objects of any kind seen (a `List` counts its items, not itself), pod-bearing
    /// or not: a stream with none is reported, since it usually means the step that rendered it
    /// failed.
    pub kube_objects: usize,
    /// Values where an object was expected that are not one: the document itself or a `List`
    /// item. kubectl refuses them, so they are reported, never skipped silently.
    pub not_objects: Vec<NotAnObject>,
}

/// A value where a Kubernetes object was expected that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnObject {
    /// JSON pointer of the value (empty for the whole document).
    pub pointer: String,
    /// What it is instead, in one line.
    pub message: String,
}

/// Where the pod spec of a kind is, for the API groups that really define that kind. A custom
/// resource that reuses a kind name in another group is not a workload.
fn pod_spec_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    core_pod_spec(group, kind)
}

/// Whether `group`/`kind` is one of Kubernetes' own pod-bearing kinds, read without a table.
pub fn is_core_workload(group: &str, kind: &str) -> bool {
    core_pod_spec(group, kind).is_some()
}

fn core_pod_spec(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        ("", "Pod") => Some(&["spec"]),
        ("", "PodTemplate") => Some(&["template", "spec"]),
        ("", "ReplicationController") => Some(&["spec", "template", "spec"]),
        ("apps" | "extensions", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            Some(&["spec", "template", "spec"])
        }
        ("apps", "StatefulSet") => Some(&["spec", "template", "spec"]),
        ("batch", "Job") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Extract every image of every pod-bearing object in `doc`, including the items of `List`
/// and `*List` objects (nested lists too), with the built-in table of custom kinds.
pub fn extract(doc: &Value) -> Workloads {
    extract_with(doc, WorkloadKinds::builtin())
}

/// [`extract`], with `kinds` saying where custom kinds keep their images (a policy's table).
pub fn extract_with(doc: &Value, kinds: &WorkloadKinds) -> Workloads {
    let mut out = Workloads::default();
    // An explicit stack rather than recursion: a List nested in a List is legal, and a hostile
    // input nesting them deeply must not exhaust the stack.
    // (value, its pointer, the apiVersion and kind its list gives items that carry none)
    type Pending<'a> = (&'a Value, String, Option<(&'a str, &'a str)>);
    let mut pending: Vec<Pending<'_>> = vec![(doc, String::new(), None)];
    while let Some((value, pointer, inherited)) = pending.pop() {
        let what = if pointer.is_empty() {
            "this document"
        } else {
            "this List item"
        };
        let obj = match value {
            Value::Object(obj) => obj,
            // An explicit `null` document (`--- ~`) holds nothing, as for kubectl.
            Value::Null if pointer.is_empty() => continue,
            other => {
                out.not_objects.push(NotAnObject {
                    pointer,
                    message: format!(
                        "{what} is not a Kubernetes object: it is {}, where a mapping with \
                         apiVersion and kind belongs",
                        json_type(other)
                    ),
                });
                continue;
            }
        };
        let str_field = |k: &str| obj.get(k).and_then(Value::as_str);
        let (api_version, kind) = match (str_field("apiVersion"), str_field("kind"), inherited) {
            (Some(a), Some(k), _) => (a, k),
            // Items of a typed list (`PodList` from the API) carry no apiVersion/kind.
            (a, k, Some((la, lk))) => (a.unwrap_or(la), k.unwrap_or(lk)),
            (_, _, None) => {
                let field = |k: &str| match obj.get(k) {
                    None | Some(Value::Null) => format!("no {k}"),
                    Some(v) => format!("a {k} that is {}, not a string", json_type(v)),
                };
                let why = match (str_field("apiVersion"), str_field("kind")) {
                    (None, None) if obj.is_empty() => "it is an empty mapping".to_owned(),
                    (None, None) => {
                        format!("it has {} and {}", field("apiVersion"), field("kind"))
                    }
                    (None, Some(_)) => format!("it has {}", field("apiVersion")),
                    _ => format!("it has {}", field("kind")),
                };
                out.not_objects.push(NotAnObject {
                    pointer,
                    message: format!("{what} is not a Kubernetes object: {why}"),
                });
                continue;
            }
        };
        if kind == "List" || (kind.ends_with("List") && kind.len() > 4) {
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            match obj.get("items") {
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        let inherit = item_kind.map(|k| (api_version, k));
                        pending.push((item, format!("{pointer}/items/{i}"), inherit));
                    }
                }
                // An empty List is what `kubectl get -o yaml` prints when nothing matches.
                None | Some(Value::Null) => {}
                Some(other) => out.not_objects.push(NotAnObject {
                    message: format!(
                        "the items of this {kind} must be a list, found {}",
                        json_type(other)
                    ),
                    pointer: format!("{pointer}/items"),
                }),
            }
            continue;
        }
        out.kube_objects += 1;
        let core = pod_spec_path(api_version, kind);
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let custom = match core {
            Some(_) => None,
            None => match kinds.sites(group, kind) {
                Some(sites) => Some(sites),
                None => continue,
            },
        };
        let meta = obj.get("metadata");
        let meta_str = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let name = meta_str("name")
            .map(str::to_owned)
            .or_else(|| meta_str("generateName").map(|g| format!("{g}*")))
            .unwrap_or_else(|| "<unnamed>".to_owned());
        let object = ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: meta_str("namespace").map(str::to_owned),
            name,
        };
        let index = out.objects.len();
        out.objects.push((object, pointer.clone()));
        if let Some(sites) = custom {
            for site in sites {
                custom_site(value, &pointer, kind, site, index, &mut out);
            }
            continue;
        }
        let path = core.unwrap_or_default();
        let mut spec_pointer = pointer;
        let mut spec = Some(value);
        for seg in path {
            spec = spec.and_then(|v| v.get(seg));
            spec_pointer.push('/');
            spec_pointer.push_str(seg);
        }
        match spec {
            Some(Value::Object(spec)) => {
                containers(spec, &spec_pointer, index, &mut out);
                image_volumes(spec, &spec_pointer, index, &mut out);
            }
            _ => out.malformed.push(Malformed {
                object: index,
                container: None,
                pointer: spec_pointer,
                message: format!(
                    "a {kind} needs a pod spec here, and it is missing or not a mapping"
                ),
            }),
        }
    }
    out
}

/// One site of a custom kind: every value its path leads to. An absent path is no site; a
/// value of the wrong type on the way is malformed.
fn custom_site(
    value: &Value,
    pointer: &str,
    kind: &str,
    site: &Site,
    object: usize,
    out: &mut Workloads,
) {
    let path = match site {
        Site::PodSpec(p) | Site::Containers(p, _) | Site::ContainersImageOptional(p) => p,
    };
    // (value, its pointer, the `name` of the nearest list entry on the way)
    let mut found: Vec<(&Value, String, Option<String>)> = vec![(value, pointer.to_owned(), None)];
    for step in path.steps() {
        let mut next = Vec::new();
        for (v, at, hint) in found {
            match (step, v) {
                (kinds::Step::Key(k), Value::Object(m)) => match m.get(k) {
                    None | Some(Value::Null) => {}
                    Some(child) => next.push((child, format!("{at}/{k}"), hint)),
                },
                (kinds::Step::Each, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let name = item
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .or_else(|| hint.clone());
                        next.push((item, format!("{at}/{i}"), name));
                    }
                }
                (step, other) => out.malformed.push(Malformed {
                    object,
                    container: None,
                    message: format!(
                        "a {kind} needs {} here (on the way along {}), found {}",
                        match step {
                            kinds::Step::Key(_) => "a mapping",
                            kinds::Step::Each => "a list",
                        },
                        path.as_str(),
                        json_type(other)
                    ),
                    pointer: at,
                }),
            }
        }
        found = next;
    }
    for (v, at, hint) in found {
        match (site, v) {
            (Site::PodSpec(_), Value::Object(spec)) => {
                containers(spec, &at, object, out);
                image_volumes(spec, &at, object, out);
            }
            (Site::Containers(_, ck), Value::Array(list)) => {
                container_list(list, &at, *ck, true, object, out);
            }
            (Site::ContainersImageOptional(_), Value::Array(list)) => {
                container_list(list, &at, ContainerKind::Container, false, object, out);
            }
            (Site::Containers(_, ck), Value::Object(_)) => {
                // A lone container is named by its own `name`, else by the list entry it is in
                // (an Argo template's name), else by its field (`stepTemplate`).
                let fallback = hint.unwrap_or_else(|| last_key(&at));
                one_container(v, &at, *ck, fallback, true, object, out);
            }
            (Site::ContainersImageOptional(_), Value::Object(_)) => {
                let fallback = hint.unwrap_or_else(|| last_key(&at));
                one_container(
                    v,
                    &at,
                    ContainerKind::Container,
                    fallback,
                    false,
                    object,
                    out,
                );
            }
            (site, other) => out.malformed.push(Malformed {
                object,
                container: None,
                message: format!(
                    "a {kind} needs {} at {}, found {}",
                    match site {
                        Site::PodSpec(_) => "a pod spec (a mapping)",
                        Site::Containers(..) | Site::ContainersImageOptional(_) => {
                            "a container or a list of containers"
                        }
                    },
                    path.as_str(),
                    json_type(other)
                ),
                pointer: at,
            }),
        }
    }
}

/// What a pod spec (or a controller's pod template) says about its pull credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodPullSecrets {
    /// `imagePullSecrets[].name`, in order, without repeats.
    pub secrets: Vec<String>,
    /// `serviceAccountName` (else the deprecated `serviceAccount`, else `default`, as the
    /// service account admission plugin sets it).
    pub service_accounts: Vec<String>,
}

/// The pull secrets and service account of `object`'s pod spec, `None` when it is not a
/// pod-bearing kind. Entries that are not `{name: string}` are skipped: the API server
/// rejects them, and they name no secret to read.
pub fn pull_secrets(object: &Value) -> Option<PodPullSecrets> {
    pull_secrets_with(object, WorkloadKinds::builtin())
}

/// [`pull_secrets`], with `kinds` for the custom kinds: the first pod spec site of a custom
/// kind (an Argo Rollout's template) whose path has no list step says it.
pub fn pull_secrets_with(object: &Value, kinds: &WorkloadKinds) -> Option<PodPullSecrets> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let spec = match pod_spec_path(api_version, kind) {
        Some(path) => path.iter().try_fold(object, |v, seg| v.get(seg))?,
        None => {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            kinds
                .sites(group, kind)?
                .iter()
                .find_map(|site| match site {
                    Site::PodSpec(p) => p.steps().iter().try_fold(object, |v, step| match step {
                        kinds::Step::Key(k) => v.get(k),
                        kinds::Step::Each => None,
                    }),
                    _ => None,
                })?
        }
    };
    let mut out = PodPullSecrets::default();
    for entry in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = entry.get("name").and_then(Value::as_str)
            && !name.is_empty()
            && !out.secrets.iter().any(|s| s == name)
        {
            out.secrets.push(name.to_owned());
        }
    }
    let account = ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|k| {
            spec.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default");
    out.service_accounts.push(account.to_owned());
    Some(out)
}

fn containers(
    spec: &serde_json::Map<String, Value>,
    spec_pointer: &str,
    object: usize,
    out: &mut Workloads,
) {
    for (kind, field) in ContainerKind::ALL {
        let list_pointer = format!("{spec_pointer}/{field}");
        match spec.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                container_list(list, &list_pointer, kind, true, object, out);
            }
            Some(_) => out.malformed.push(Malformed {
                object,
                container: None,
                pointer: list_pointer,
                message: format!("{field} must be a list of containers"),
            }),
        }
    }
}

fn last_key(pointer: &str) -> String {
    pointer.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Every container of a list at `list_pointer`; `needs_image`: a container without an image
/// is malformed.
fn container_list(
    list: &[Value],
    list_pointer: &str,
    kind: ContainerKind,
    needs_image: bool,
    object: usize,
    out: &mut Workloads,
) {
    for (i, c) in list.iter().enumerate() {
        let pointer = format!("{list_pointer}/{i}");
        if !c.is_object() {
            let field = list_pointer.rsplit('/').next().unwrap_or_default();
            out.malformed.push(Malformed {
                object,
                container: None,
                pointer,
                message: format!(
                    "each entry of {field} must be a mapping, found {}",
                    json_type(c)
                ),
            });
            continue;
        }
        one_container(c, &pointer, kind, format!("#{i}"), needs_image, object, out);
    }
}

/// One container (a mapping) at `pointer`; `fallback` names it when it has no `name`.
fn one_container(
    c: &Value,
    pointer: &str,
    kind: ContainerKind,
    fallback: String,
    needs_image: bool,
    object: usize,
    out: &mut Workloads,
) {
    let name = c
        .get("name")
        .and_then(Value::as_str)
        .map_or(fallback, str::to_owned);
    let container = ContainerRef { name, kind };
    match c.get("image") {
        Some(Value::String(image)) => out.images.push(ImageUse {
            object,
            pointer: format!("{pointer}/image"),
            image: WrittenImage::new(image.as_str()),
            container,
        }),
        None | Some(Value::Null) if !needs_image => {}
        None | Some(Value::Null) => out.malformed.push(Malformed {
            object,
            pointer: format!("{pointer}/image"),
            message: format!("{kind} {:?} has no image", container.name),
            container: Some(container),
        }),
        Some(other) => out.malformed.push(Malformed {
            object,
            container: Some(container),
            pointer: format!("{pointer}/image"),
            message: format!("image must be a string, found {}", json_type(other)),
        }),
    }
}

/// Image volumes: every volume with an `image` source pulls `image.reference`. A volume that
/// names an image source without a reference is malformed: the API server refuses it, and
/// tollgate must not pass it as imageless.
fn image_volumes(
    spec: &serde_json::Map<String, Value>,
    spec_pointer: &str,
    object: usize,
    out: &mut Workloads,
) {
    let Some(Value::Array(volumes)) = spec.get("volumes") else {
        return;
    };
    for (i, v) in volumes.iter().enumerate() {
        let Some(source) = v.get("image") else {
            continue;
        };
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{i}"), str::to_owned);
        let container = ContainerRef {
            name,
            kind: ContainerKind::ImageVolume,
        };
        let pointer = format!("{spec_pointer}/volumes/{i}/image/reference");
        match source.get("reference") {
            Some(Value::String(image)) => out.images.push(ImageUse {
                object,
                pointer,
                image: WrittenImage::new(image.as_str()),
                container,
            }),
            other => out.malformed.push(Malformed {
                object,
                pointer,
                message: format!(
                    "image volume {:?} must name its image in image.reference, found {}",
                    container.name,
                    other.map_or("nothing", json_type)
                ),
                container: Some(container),
            }),
        }
    }
}

/// How a JSON value's type is named in messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
