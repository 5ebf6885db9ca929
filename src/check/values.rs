//! Images in Helm values files, the GitOps layout where a deploy repository changes
//! `image.tag` in a values file rather than a manifest (a helmfile deploy repository). Where the
//! images are and how they are written comes from `.tollgate.yaml` ([`ValuesSpec`]). Pure: text
//! in, report out.

use serde_json::Value;

use crate::check::{self, Options};
use crate::config::repo::{ImageKeys, Segment, ValuesSpec};
use crate::policy::eval::{self, Context};
use crate::policy::{Policy, RuleId};
use crate::reference::WrittenImage;
use crate::report::{CheckedObject, Finding, ImageSite, InputError, Location, Report};
use crate::workload::{ContainerKind, ContainerRef, ObjectRef, json_type};
use crate::yaml::{self, Positions, Record};

/// The kind shown for a values file in findings (it is not a Kubernetes object).
pub const KIND: &str = "HelmValues";

/// One image found in a values file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesImage {
    /// Dotted key path of the image (`api.image`, `sidecars.0.image`).
    pub key_path: String,
    /// JSON pointer of the field a finding points at.
    pub pointer: String,
    /// The reference, composed from its parts when written as a mapping.
    pub image: WrittenImage,
}

/// An image field that is there but cannot be read as an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Dotted key path of the image field (`api.image`, `sidecars.0.image`).
    pub key_path: String,
    /// JSON pointer of the image field, where the finding points.
    pub pointer: String,
    /// What is wrong with it (a mapping part that is not a string, a list where an image
    /// belongs), without the key path.
    pub message: String,
}

/// Every image `spec` locates in `doc`. A key path that matches several ways is reported once.
/// Empty strings and mappings without a repository are left alone: they are the usual partial
/// overrides of layered values files (`image: {tag: 1.2.3}` over the chart's own repository),
/// which cannot be checked without the layer below.
pub fn extract(doc: &Value, spec: &ValuesSpec) -> (Vec<ValuesImage>, Vec<Malformed>) {
    let mut found: Vec<(Vec<String>, &Value)> = Vec::new();
    for path in &spec.images {
        walk(doc, &path.segments, &mut Vec::new(), &mut found);
    }
    let mut images = Vec::new();
    let mut malformed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (keys, value) in found {
        if !seen.insert(keys.clone()) {
            continue;
        }
        let path = spec
            .images
            .iter()
            .find(|p| matches(&p.segments, &keys))
            .expect("found through one of the paths");
        let pointer = pointer_of(&keys);
        let key_path = keys.join(".");
        match read_image(value, &path.keys) {
            Read::Image { image, field } => images.push(ValuesImage {
                key_path,
                pointer: field.map_or(pointer.clone(), |f| {
                    let mut p = pointer.clone();
                    p.push('/');
                    yaml::push_escaped(&mut p, f);
                    p
                }),
                image: WrittenImage::new(image),
            }),
            Read::Unset => {}
            Read::Malformed(message) => malformed.push(Malformed {
                key_path,
                pointer,
                message,
            }),
        }
    }
    (images, malformed)
}

enum Read<'a> {
    /// An image, and the mapping field a finding should point at (the tag, else the repository).
    Image {
        image: String,
        field: Option<&'a str>,
    },
    Unset,
    Malformed(String),
}

fn read_image<'a>(value: &Value, keys: &'a ImageKeys) -> Read<'a> {
    match value {
        Value::String(s) if s.trim().is_empty() => Read::Unset,
        Value::String(s) => Read::Image {
            image: s.clone(),
            field: None,
        },
        Value::Null => Read::Unset,
        Value::Object(m) => {
            let part = |k: &str| -> Result<Option<String>, String> {
                match m.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if s.is_empty() => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    // `tag: 1.10` is a number in YAML; Helm renders it as 1.1, and so do we, so
                    // that the finding shows what the cluster would be asked to pull.
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(other) => Err(format!("`{k}` must be a string, not {}", json_type(other))),
                }
            };
            let parts = (
                part(&keys.registry),
                part(&keys.repository),
                part(&keys.tag),
                part(&keys.digest),
            );
            let (registry, repository, tag, digest) = match parts {
                (Ok(r), Ok(repo), Ok(t), Ok(d)) => (r, repo, t, d),
                (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
                    return Read::Malformed(e);
                }
            };
            let Some(repository) = repository else {
                return Read::Unset;
            };
            let mut image = match registry {
                Some(r) => format!("{}/{repository}", r.trim_end_matches('/')),
                None => repository,
            };
            if let Some(t) = &tag {
                image.push(':');
                image.push_str(t);
            }
            if let Some(d) = &digest {
                image.push('@');
                image.push_str(d);
            }
            Read::Image {
                image,
                field: Some(if tag.is_some() {
                    &keys.tag
                } else {
                    &keys.repository
                }),
            }
        }
        other => Read::Malformed(format!(
            "an image must be a string or a mapping with `{}`, not {}",
            keys.repository,
            json_type(other)
        )),
    }
}

/// Collect every value whose key path matches `segments`.
fn walk<'v>(
    value: &'v Value,
    segments: &[Segment],
    keys: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'v Value)>,
) {
    let Some((first, rest)) = segments.split_first() else {
        out.push((keys.clone(), value));
        return;
    };
    let children = || -> Box<dyn Iterator<Item = (String, &'v Value)> + 'v> {
        match value {
            Value::Object(m) => Box::new(m.iter().map(|(k, v)| (k.clone(), v))),
            Value::Array(a) => Box::new(a.iter().enumerate().map(|(i, v)| (i.to_string(), v))),
            _ => Box::new(std::iter::empty()),
        }
    };
    match first {
        Segment::Key(k) => {
            if let Value::Object(m) = value
                && let Some(v) = m.get(k)
            {
                keys.push(k.clone());
                walk(v, rest, keys, out);
                keys.pop();
            }
        }
        Segment::Any => {
            for (k, v) in children() {
                keys.push(k);
                walk(v, rest, keys, out);
                keys.pop();
            }
        }
        Segment::AnyDepth => {
            // Zero segments here, then one more level with `**` still in force.
            walk(value, rest, keys, out);
            for (k, v) in children() {
                keys.push(k);
                walk(v, segments, keys, out);
                keys.pop();
            }
        }
    }
}

/// Whether a concrete key path matches a pattern (to find which [`ImagePath`] located it).
fn matches(segments: &[Segment], keys: &[String]) -> bool {
    match (segments.split_first(), keys.split_first()) {
        (None, None) => true,
        (Some((Segment::AnyDepth, rest)), _) => {
            matches(rest, keys) || (!keys.is_empty() && matches(segments, &keys[1..]))
        }
        (Some((Segment::Any, rest)), Some((_, krest))) => matches(rest, krest),
        (Some((Segment::Key(s), rest)), Some((k, krest))) => s == k && matches(rest, krest),
        _ => false,
    }
}

fn pointer_of(keys: &[String]) -> String {
    let mut p = String::new();
    for k in keys {
        p.push('/');
        yaml::push_escaped(&mut p, k);
    }
    p
}

/// Check every image of a values file. The file is one object in the report (kind
/// [`KIND`], named for the file), each image one container named for its key path.
pub fn check_values_text(
    policy: &Policy,
    file: &str,
    text: &str,
    spec: &ValuesSpec,
    opts: &Options,
) -> Report {
    let mut report = Report::new(check::policy_info(policy));
    report.files = 1;
    let object = ObjectRef {
        api_version: String::new(),
        kind: KIND.to_owned(),
        namespace: spec.namespace.clone(),
        name: file.to_owned(),
    };
    let namespace = spec
        .namespace
        .clone()
        .unwrap_or_else(|| opts.default_namespace.clone());
    let mut count = 0;
    let mut first_line = None;
    for doc in yaml::load_all(text, Record::All) {
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                report.errors.push(InputError {
                    file: file.to_owned(),
                    line: Some(e.pos.line),
                    column: Some(e.pos.column),
                    message: format!("not valid YAML: {}", e.message),
                });
                continue;
            }
        };
        first_line.get_or_insert(doc.start.line);
        let (images, malformed) = extract(&doc.value, spec);
        for img in images {
            count += 1;
            let site = ImageSite {
                image: img.image.clone(),
                namespace: namespace.clone(),
                location: locate(file, &doc.positions, &img.pointer),
                object: object.clone(),
                container: ContainerRef {
                    name: img.key_path,
                    kind: ContainerKind::Container,
                },
            };
            let verdict = eval::evaluate_image(
                policy,
                &img.image,
                Context {
                    namespace: &namespace,
                    now: opts.now,
                },
            );
            for outcome in verdict.outcomes {
                check::record_outcome(policy, outcome, &site, opts, &mut report);
            }
            if opts.collect_sites {
                report.sites.push(site);
            }
        }
        for m in malformed {
            let level = policy.level(RuleId::ImageMissing);
            if level < opts.min_level {
                continue;
            }
            report.findings.push(Finding {
                rule_id: RuleId::ImageMissing,
                level,
                message: format!("{}: {}", m.key_path, m.message),
                hint: "write the image as a reference string, or as a mapping with repository, \
                       tag and digest (or map your key names in .tollgate.yaml helmValues[].images[].keys)"
                    .into(),
                location: locate(file, &doc.positions, &m.pointer),
                object: Some(object.clone()),
                container: Some(ContainerRef {
                    name: m.key_path,
                    kind: ContainerKind::Container,
                }),
                image: None,
            });
        }
    }
    if count > 0 {
        report.objects.push(CheckedObject {
            object,
            location: Location {
                file: Some(file.to_owned()),
                line: first_line,
                column: None,
                pointer: None,
            },
            images: count,
        });
    }
    report
}

fn locate(file: &str, positions: &Positions, pointer: &str) -> Location {
    let pos = positions.nearest(pointer);
    Location {
        file: Some(file.to_owned()),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        pointer: Some(pointer.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use rstest::rstest;

    use super::*;
    use crate::config::repo::{FileKind, RepoConfig};
    use crate::policy::default_policy;

    fn spec(config: &str) -> ValuesSpec {
        let c = RepoConfig::parse(config, ".tollgate.yaml").unwrap();
        match c.classify("values.yaml") {
            FileKind::Values(s) => s.clone(),
            other => panic!("values.yaml is {other:?}"),
        }
    }

    fn images(config: &str, values: &str) -> Vec<(String, String)> {
        let doc = yaml::load_one(values, Record::All).unwrap();
        let (images, malformed) = extract(&doc.value, &spec(config));
        assert!(malformed.is_empty(), "{malformed:?}");
        images
            .into_iter()
            .map(|i| (i.key_path, i.image.to_string()))
            .collect()
    }

    const DEFAULTS: &str = "{}";

    #[rstest]
    #[case::string("image: r.example/a:1\n", &[("image", "r.example/a:1")])]
    #[case::mapping(
        "image:\n  repository: r.example/a\n  tag: 0.0.131\n",
        &[("image", "r.example/a:0.0.131")]
    )]
    #[case::mapping_with_registry_and_digest(
        "image: {registry: r.example, repository: a, tag: '1', digest: 'sha256:abc'}\n",
        &[("image", "r.example/a:1@sha256:abc")]
    )]
    #[case::nested_and_in_lists(
        "api:\n  image: r.example/a:1\nsidecars:\n  - name: s\n    image: r.example/s:2\n",
        &[("api.image", "r.example/a:1"), ("sidecars.0.image", "r.example/s:2")]
    )]
    #[case::a_number_tag_renders_as_helm_does("image: {repository: r.example/a, tag: 1.10}\n", &[("image", "r.example/a:1.1")])]
    #[case::partial_override_is_left_alone("image: {tag: 0.0.131}\n", &[])]
    #[case::empty_placeholder_is_left_alone("image: ''\n", &[])]
    #[case::no_images("replicas: 3\n", &[])]
    fn default_image_paths(#[case] values: &str, #[case] expected: &[(&str, &str)]) {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(images(DEFAULTS, values), expected);
    }

    #[test]
    fn custom_key_paths_and_key_names() {
        let config = "helmValues:\n  - files: ['values.yaml']\n    images:\n      - path: api.container\n        keys: {repository: name, tag: version}\n      - path: 'workers.*.ref'\n";
        let values = "api:\n  container: {name: r.example/api, version: '2'}\n  image: r.example/ignored:1\nworkers:\n  a: {ref: r.example/wa:1}\n  b: {ref: r.example/wb:1}\n";
        assert_eq!(
            images(config, values),
            vec![
                ("api.container".to_owned(), "r.example/api:2".to_owned()),
                ("workers.a.ref".to_owned(), "r.example/wa:1".to_owned()),
                ("workers.b.ref".to_owned(), "r.example/wb:1".to_owned()),
            ]
        );
    }

    #[test]
    fn findings_point_at_the_tag_line_of_the_values_file() {
        let values = "# builds-api\nimage:\n  repository: docker-registry.wikimedia.org/builds-api\n  tag: latest\n";
        let r = check_values_text(
            &default_policy(),
            "components/builds-api/values.yaml",
            values,
            &spec(DEFAULTS),
            &Options::enforce("default", Timestamp::UNIX_EPOCH),
        );
        let f = r
            .findings
            .iter()
            .find(|f| f.rule_id == RuleId::TagLatest)
            .expect("tag-latest");
        assert_eq!(f.location.line, Some(4));
        assert_eq!(f.location.pointer.as_deref(), Some("/image/tag"));
        assert_eq!(f.container.as_ref().unwrap().name, "image");
        assert_eq!(f.object.as_ref().unwrap().kind, KIND);
        assert_eq!(r.objects.len(), 1);
    }

    #[test]
    fn a_malformed_image_field_is_a_finding_not_a_crash() {
        let r = check_values_text(
            &default_policy(),
            "values.yaml",
            "image:\n  repository: [a, b]\n",
            &spec(DEFAULTS),
            &Options::enforce("default", Timestamp::UNIX_EPOCH),
        );
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].rule_id, RuleId::ImageMissing);
        assert!(r.findings[0].message.contains("must be a string"));
    }

    #[test]
    fn broken_yaml_is_an_input_error_with_its_line() {
        let r = check_values_text(
            &default_policy(),
            "values.yaml",
            "image:\n  tag: [\n",
            &spec(DEFAULTS),
            &Options::enforce("default", Timestamp::UNIX_EPOCH),
        );
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].line.is_some());
    }

    #[rstest]
    #[case::exact(&["a", "image"], "a.image", true)]
    #[case::any_depth_zero(&["image"], "**.image", true)]
    #[case::any_depth_many(&["a", "0", "b", "image"], "**.image", true)]
    #[case::any_one(&["workers", "x", "ref"], "workers.*.ref", true)]
    #[case::any_one_not_two(&["workers", "x", "y", "ref"], "workers.*.ref", false)]
    #[case::different_key(&["a", "img"], "**.image", false)]
    fn key_path_matching(#[case] keys: &[&str], #[case] pattern: &str, #[case] expected: bool) {
        let config =
            format!("helmValues: [{{files: ['values.yaml'], images: [{{path: '{pattern}'}}]}}]\n");
        let s = spec(&config);
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(matches(&s.images[0].segments, &keys), expected);
    }
}
