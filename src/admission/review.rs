//! Reading an AdmissionReview from the bytes the API server sends, once.
//!
//! The request is kube-core's [`AdmissionRequest`]; its object is a [`ReviewObject`]: the part
//! of the Kubernetes object the policy reads, as a `serde_json::Value` in the object's own shape
//! (so workload extraction and JSON pointers work unchanged), with everything else skipped while
//! parsing. A Pod's env, probes, annotations and managedFields are most of its bytes and none
//! of its images; skipping them without allocating is what keeps a 10 KB review cheap.
//!
//! kube-core's `AdmissionReview` itself is not used to parse: it flattens its type fields, which
//! makes serde buffer the whole body into an intermediate tree before reading it a second time.
//! The envelope here has the same fields without that.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::admission::{AdmissionRequest, META_API_VERSION_V1, META_KIND};
use kube_core::{ApiResource, DynamicResourceScope, Resource};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::AdmissionError;

/// The object of an admission request, reduced to what the policy reads: `apiVersion`, `kind`,
/// `metadata.name`/`generateName`/`namespace`, and below `spec`, `template` and `jobTemplate`
/// (at any depth, from the top) the container lists with each container's `name` and `image`,
/// the volumes with each volume's `name` and `image` (image volumes pull an image too), and
/// `imagePullSecrets` and the service account's name (whose pull secrets the walk may use).
/// Lists keep every entry, so JSON pointers into it are pointers into the real object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewObject {
    /// Filled from the kept metadata fields (kube-core's [`Resource`] needs it).
    pub metadata: ObjectMeta,
    /// The kept fields, in the object's shape.
    pub value: Value,
}

impl<'de> Deserialize<'de> for ReviewObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ReviewObject::of(Prune(Level::Root).deserialize(d)?))
    }
}

impl ReviewObject {
    /// The object `value` (pruned or whole), with its metadata read out.
    fn of(value: Value) -> ReviewObject {
        let meta = |k: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let metadata = ObjectMeta {
            name: meta("name"),
            generate_name: meta("generateName"),
            namespace: meta("namespace"),
            ..ObjectMeta::default()
        };
        ReviewObject { metadata, value }
    }
}

/// The request's objects, whole.
#[derive(Deserialize)]
struct WholeEnvelope {
    request: WholeRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WholeRequest {
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
}

/// Read `request`'s objects again from `body`, whole: for a custom kind (`spec.workloads`, the
/// built-in table) whose images sit where the pruning parser does not look
/// (`spec.templates[*].container`). Only those kinds pay for the second read.
pub fn keep_whole(body: &[u8], request: &mut Request) -> Result<(), AdmissionError> {
    let whole: WholeEnvelope = serde_json::from_slice(body).map_err(|e| describe(body, e))?;
    request.object = whole.request.object.map(ReviewObject::of);
    request.old_object = whole.request.old_object.map(ReviewObject::of);
    Ok(())
}

impl Resource for ReviewObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An admission request whose objects are [`ReviewObject`]s.
pub type Request = AdmissionRequest<ReviewObject>;

/// The AdmissionReview envelope: kube-core's fields, without the flattening.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    request: Option<Request>,
}

/// Parse an `admission.k8s.io/v1` AdmissionReview. Anything else is an [`AdmissionError`] that
/// says what is wrong, for a 400.
pub fn parse(body: &[u8]) -> Result<Request, AdmissionError> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => return Err(describe(body, e)),
    };
    match (envelope.api_version.as_deref(), envelope.kind.as_deref()) {
        (Some(META_API_VERSION_V1), Some(META_KIND)) => {}
        (api_version, kind) => {
            return Err(AdmissionError::WrongVersion {
                expected_version: META_API_VERSION_V1,
                expected_kind: META_KIND,
                api_version: shown(api_version),
                kind: shown(kind),
            });
        }
    }
    let mut request = envelope.request.ok_or(AdmissionError::NoRequest)?;
    request.types = kube_core::TypeMeta {
        api_version: META_API_VERSION_V1.to_owned(),
        kind: META_KIND.to_owned(),
    };
    Ok(request)
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "(none)".to_owned(), |s| format!("{s:?}"))
}

/// The error for a body that did not parse: syntax errors as such, shape errors with the path
/// of the offending field. The path costs a second parse, paid only for bad input.
fn describe(body: &[u8], e: serde_json::Error) -> AdmissionError {
    if !matches!(e.classify(), serde_json::error::Category::Data) {
        return AdmissionError::NotJson(e);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, Envelope>(&mut de) {
        Err(e) if !e.path().to_string().is_empty() && e.path().to_string() != "." => {
            AdmissionError::NotAdmissionReview {
                at: Some(e.path().to_string()),
                source: e.into_inner(),
            }
        }
        _ => AdmissionError::NotAdmissionReview {
            at: None,
            source: e,
        },
    }
}

// ---- the pruning parser ----------------------------------------------------------------------

/// Scalars where a map or list belongs are kept as they are.
macro_rules! forward_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_none<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    };
}

/// Where in the object the parser is, which decides the fields it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The object: `apiVersion`, `kind`, `metadata`, `spec`, `template` (a PodTemplate's), and
    /// the `ephemeralContainers` of the old `EphemeralContainers` kind (Kubernetes before 1.22).
    Root,
    /// `metadata`: `name`, `generateName`, `namespace`.
    Metadata,
    /// Anything that leads to a pod spec or is one: `spec`, `template`, `jobTemplate`, the
    /// container lists and the volumes.
    Spec,
    /// One container: `name` and `image`.
    Container,
    /// One volume: `name`, and `image` (an image volume's source, kept whole: it is small).
    Volume,
}

impl Level {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Level::Root => &[
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "template",
                "ephemeralContainers",
            ],
            Level::Metadata => &["name", "generateName", "namespace"],
            Level::Spec => &[
                "spec",
                "template",
                "jobTemplate",
                "containers",
                "initContainers",
                "ephemeralContainers",
                "volumes",
                // Read only with --pull-secrets, and small: the names of the secrets and of
                // the service account whose credentials the walk may use.
                "imagePullSecrets",
                "serviceAccountName",
                "serviceAccount",
            ],
            Level::Container | Level::Volume => &["name", "image"],
        }
    }

    /// How to read the value of the kept key `key`.
    fn child(self, key: &str) -> Child {
        match (self, key) {
            (Level::Root, "metadata") => Child::Prune(Level::Metadata),
            (Level::Root | Level::Spec, "spec" | "template" | "jobTemplate") => {
                Child::Prune(Level::Spec)
            }
            (_, "containers" | "initContainers" | "ephemeralContainers") => {
                Child::Entries(Level::Container)
            }
            (Level::Spec, "volumes") => Child::Entries(Level::Volume),
            _ => Child::Whole,
        }
    }
}

enum Child {
    /// Keep the whole value (a name, an image: whatever type it has, for the error message).
    Whole,
    Prune(Level),
    /// A container or volume list: each entry pruned at its level; anything else kept whole.
    Entries(Level),
}

/// Reads a value at `Level`; a map is pruned, anything else (which the policy will report as
/// malformed where a map belongs) is kept whole.
struct Prune(Level);

impl<'de> DeserializeSeed<'de> for Prune {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Matches a map key against the level's kept keys without allocating.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|k| *k == v))
    }
}

struct Entries(Level);

impl<'de> DeserializeSeed<'de> for Entries {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entries {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of containers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(v) = seq.next_element_seed(Prune(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    // Not a list: kept whole, so the policy can say "containers must be a list".
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Prune(self.0).visit_map(map)
    }

    forward_scalars!();
}

impl<'de> Visitor<'de> for Prune {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let level = self.0;
        while let Some(key) = map.next_key_seed(Key(level.keys()))? {
            let Some(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = match level.child(key) {
                Child::Whole => map.next_value::<Value>()?,
                Child::Prune(l) => map.next_value_seed(Prune(l))?,
                Child::Entries(level) => map.next_value_seed(Entries(level))?,
            };
            out.insert(key.to_owned(), value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    forward_scalars!();
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    fn review(object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "namespace": "web",
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": null,
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_the_fields_the_policy_reads_are_kept_and_lists_keep_their_indexes() {
        let object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "web", "labels": {"a": "b"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "initContainers": [{"name": "init", "image": "r.io/i:1", "env": [{"name": "X"}]}],
                        "containers": [
                            {"name": "a", "image": "r.io/a:1", "ports": [{"containerPort": 80}]},
                            "not a mapping",
                            {"name": "c", "image": 7}
                        ],
                        "volumes": [{"name": "v", "emptyDir": {}},
                                    {"name": "w", "image": {"reference": "r.io/w:1", "pullPolicy": "Always"}}]
                    }
                }
            },
            "status": {"replicas": 3}
        });
        let r = parse(&review(object)).unwrap();
        let got = r.object.unwrap();
        assert_eq!(
            got.value,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "web"},
                "spec": {"template": {"spec": {
                    "initContainers": [{"name": "init", "image": "r.io/i:1"}],
                    "containers": [{"name": "a", "image": "r.io/a:1"}, "not a mapping", {"name": "c", "image": 7}],
                    "volumes": [{"name": "v"}, {"name": "w", "image": {"reference": "r.io/w:1", "pullPolicy": "Always"}}]
                }}}
            })
        );
        assert_eq!(got.metadata.name.as_deref(), Some("web"));
        assert_eq!(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r.types.api_version, "admission.k8s.io/v1");
    }

    #[test]
    fn a_pod_templates_template_is_kept() {
        let object = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                            "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "a", "image": "r.io/a:1", "tty": true}]}}});
        let r = parse(&review(object)).unwrap();
        assert_eq!(
            r.object.unwrap().value["template"],
            json!({"spec": {"containers": [{"name": "a", "image": "r.io/a:1"}]}})
        );
    }

    #[test]
    fn a_pod_templates_pull_secrets_and_service_account_are_kept_for_pull_secrets() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                            "spec": {"template": {"spec": {
                                "serviceAccountName": "builder",
                                "imagePullSecrets": [{"name": "team-pull"}],
                                "nodeSelector": {"a": "b"},
                                "containers": [{"name": "a", "image": "r.io/a:1"}]}}}});
        let value = parse(&review(object)).unwrap().object.unwrap().value;
        assert_eq!(
            crate::workload::pull_secrets(&value),
            Some(crate::workload::PodPullSecrets {
                secrets: vec!["team-pull".into()],
                service_accounts: vec!["builder".into()],
            })
        );
        assert!(
            value["spec"]["template"]["spec"]
                .get("nodeSelector")
                .is_none()
        );
    }

    #[test]
    fn malformed_pod_specs_are_kept_for_the_policy_to_report() {
        let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                            "spec": {"containers": {"name": "a"}}});
        let r = parse(&review(object)).unwrap();
        assert_eq!(
            r.object.unwrap().value["spec"]["containers"],
            json!({"name": "a"})
        );
        let object =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": "x"});
        assert_eq!(
            parse(&review(object)).unwrap().object.unwrap().value["spec"],
            "x"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_on_any_bytes(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse(&body);
        }

        #[test]
        fn parsing_never_panics_on_a_damaged_review(cut in 0usize..2000, byte in proptest::num::u8::ANY) {
            let mut body = review(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "r.io/a:1"}], "initContainers": 3}}));
            let at = cut % body.len();
            body[at] = byte;
            let _ = parse(&body);
            let _ = parse(&body[..at]);
        }
    }

    #[rstest]
    #[case::not_json(b"{\"apiVersion\": ".as_slice(), "the body is not JSON")]
    #[case::json_but_a_list(b"[1, 2]".as_slice(), "not an AdmissionReview")]
    #[case::old_version(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#.as_slice(), "expected apiVersion \"admission.k8s.io/v1\"")]
    #[case::other_kind(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.as_slice(), "got apiVersion \"admission.k8s.io/v1\" and kind \"Pod\"")]
    #[case::no_request(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.as_slice(), "has no request")]
    #[case::no_uid(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"group":"","version":"v1","kind":"Pod"}}}"#.as_slice(), "missing field `uid`")]
    #[case::bad_operation(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"PATCH","userInfo":{}}}"#.as_slice(), "request.operation: unknown variant `PATCH`")]
    fn bad_bodies_say_what_is_wrong(#[case] body: &[u8], #[case] expected: &str) {
        let e = crate::report::error_text(&parse(body).unwrap_err());
        assert!(e.contains(expected), "{e}");
    }
}
