//! The deploy repository's own configuration, `.tollgate.yaml` at the repository's root: which
//! policy applies, which files hold Kubernetes manifests, which hold Helm values and how images
//! are written in them, and whether the git gates use the registry. Every field is optional; an
//! absent file means the defaults. Unknown keys are errors, reported with their line.
//!
//! Pure: the text comes in, a validated [`RepoConfig`] goes out. The git gates read the file from
//! the commit being checked, not from the working tree.

use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::{Invalid, Problem, Validator};

/// The file name, at the repository's root.
pub const FILE_NAME: &str = ".tollgate.yaml";
/// The format version this build reads.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The document kind.
pub const KIND: &str = "RepoConfig";

/// Manifest files when the config does not say.
const DEFAULT_MANIFESTS: &[&str] = &["**/*.yaml", "**/*.yml", "**/*.json"];
/// Never manifests by default: Helm chart templates are Go templates, not YAML, and CI and tool
/// configs are not Kubernetes objects (checking them would only produce parse noise).
const DEFAULT_EXCLUDE: &[&str] = &[
    "**/templates/**",
    "**/*.gotmpl",
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    ".tollgate.yaml",
];
/// Helm values files when the config does not say: the chart convention (`values.yaml`,
/// `values-prod.yaml`, `values.prod.yaml`) and a `values/` folder of per-environment files.
const DEFAULT_VALUES: &[&str] = &[
    "**/values.yaml",
    "**/values.yml",
    "**/values-*.yaml",
    "**/values.*.yaml",
    "**/values/**/*.yaml",
    "**/values/**/*.yml",
];
/// Where images are in Helm values when the config does not say: any key named `image`.
const DEFAULT_IMAGE_PATH: &str = "**.image";

/// A validated `.tollgate.yaml`.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    origin: String,
    policy: Option<String>,
    namespace: Option<String>,
    manifests: GlobSet,
    exclude: GlobSet,
    require_objects: bool,
    values: Vec<ValuesSpec>,
    registry: RegistryGate,
    notes: Vec<Problem>,
}

/// One group of Helm values files and how images are written in them.
#[derive(Debug, Clone)]
pub struct ValuesSpec {
    files: GlobSet,
    /// The namespace the release runs in, for namespace-scoped exemptions.
    pub namespace: Option<String>,
    /// Where the images are in these files (`**.image` unless the config says otherwise); a
    /// field matched by several paths is read once.
    pub images: Vec<ImagePath>,
    /// The live workload these values deploy (`tollgate rollout` compares its images).
    pub workload: Option<WorkloadTarget>,
}

/// The workload a group of Helm values files deploys: the chart renders it, so the values
/// cannot name it themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadTarget {
    /// One of [`WORKLOAD_KINDS`].
    pub kind: String,
    /// `None`: the values group's namespace, else the repository's.
    pub namespace: Option<String>,
    /// The workload's `metadata.name`, as the chart renders it.
    pub name: String,
}

/// The kinds a values group may name as its workload: those whose live pod template the
/// rollout report can read.
pub const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"];

/// Where an image is in a values file, and the names of its parts when it is a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePath {
    /// Dotted key path; `*` is one key or list index, `**` any number of them.
    pub segments: Vec<Segment>,
    /// The path as the config writes it (`sidecars.*.image`).
    pub written: String,
    /// The key names of an image written as a mapping there.
    pub keys: ImageKeys,
}

/// One segment of an [`ImagePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key, literally; it never matches a list index (`*` does).
    Key(String),
    /// `*`: any one key or list index.
    Any,
    /// `**`: any number of keys or list indexes, including none.
    AnyDepth,
}

/// The keys of an image written as a mapping (`image: {repository, tag, digest}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageKeys {
    /// Key of the registry host, prefixed to the repository with a `/` (default `registry`).
    pub registry: String,
    /// Key of the repository (default `repository`); a mapping without it is a partial
    /// override and is not read as an image.
    pub repository: String,
    /// Key of the tag, appended after a `:` (default `tag`).
    pub tag: String,
    /// Key of the digest, appended after an `@` (default `digest`).
    pub digest: String,
}

impl Default for ImageKeys {
    fn default() -> Self {
        ImageKeys {
            registry: "registry".into(),
            repository: "repository".into(),
            tag: "tag".into(),
            digest: "digest".into(),
        }
    }
}

/// Whether and how the git gates use the registry-backed rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryGate {
    /// Walk images in the registry (image-unavailable, tag-moved, base-not-approved).
    pub resolve: bool,
    /// For the whole registry part of one run.
    pub deadline: Duration,
    /// Whether a registry that cannot answer in time blocks (exit 2) or only warns.
    pub block_when_unreachable: bool,
}

impl Default for RegistryGate {
    fn default() -> Self {
        RegistryGate {
            resolve: false,
            deadline: Duration::from_secs(30),
            block_when_unreachable: false,
        }
    }
}

/// What a repository path holds.
#[derive(Debug, Clone, Copy)]
pub enum FileKind<'a> {
    /// Kubernetes manifests: matched by `manifests.include`, not by `manifests.exclude`, and
    /// by no Helm values group.
    Manifest,
    /// Helm values files of this group (the first group whose files match).
    Values(&'a ValuesSpec),
    /// Neither: not checked.
    Other,
}

/// A `.tollgate.yaml` that cannot be used, with every problem found in it.
pub type RepoConfigError = Invalid;

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig::parse("{}", "<defaults>").expect("the defaults are valid (tested)")
    }
}

impl RepoConfig {
    /// Parse and validate `.tollgate.yaml`; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<RepoConfig, RepoConfigError> {
        let fail = |problems| Invalid {
            what: "repository config",
            origin: origin.to_owned(),
            problems,
        };
        let (file, mut v) = super::read::<File>(text).map_err(fail)?;
        let mut config = config(&mut v, file, origin);
        config.notes = v.finish().map_err(fail)?;
        Ok(config)
    }

    /// What the file writes in a deprecated way (accepted, to be told to the user).
    pub fn notes(&self) -> &[Problem] {
        &self.notes
    }

    /// Where the config came from (`.tollgate.yaml`, or `<defaults>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The policy file, relative to the repository's root; `None` for the embedded default.
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }

    /// The namespace of objects that do not name one.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Whether a manifest file with no Kubernetes object, or a document that is not one, is an
    /// input error (`manifests.requireObjects`) rather than a warning.
    pub fn require_objects(&self) -> bool {
        self.require_objects
    }

    /// Whether and how the git gates walk images in the registry (`registry:`).
    pub fn registry(&self) -> RegistryGate {
        self.registry
    }

    /// What `path` (relative to the repository's root, `/`-separated) holds. A Helm values
    /// pattern wins over the manifest patterns: a values file is not a Kubernetes object.
    pub fn classify(&self, path: &str) -> FileKind<'_> {
        if let Some(spec) = self.values.iter().find(|s| s.files.is_match(path)) {
            return FileKind::Values(spec);
        }
        if self.manifests.is_match(path) && !self.exclude.is_match(path) {
            FileKind::Manifest
        } else {
            FileKind::Other
        }
    }
}

// ---- the file format -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    api_version: Option<String>,
    kind: Option<String>,
    policy: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    manifests: ManifestsSpec,
    helm_values: Option<Vec<ValuesFileSpec>>,
    #[serde(default)]
    registry: RegistrySpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ManifestsSpec {
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    require_objects: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValuesFileSpec {
    files: Vec<String>,
    namespace: Option<String>,
    images: Option<Vec<ImagePathSpec>>,
    workload: Option<WorkloadSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    kind: String,
    namespace: Option<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImagePathSpec {
    path: String,
    #[serde(default)]
    keys: KeysSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KeysSpec {
    registry: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegistrySpec {
    resolve: Option<bool>,
    deadline: Option<serde_json::Value>,
    block_when_unreachable: Option<bool>,
}

// ---- validation ------------------------------------------------------------------------------

fn config(v: &mut Validator, file: File, origin: &str) -> RepoConfig {
    if let Some(version) = &file.api_version
        && version != API_VERSION
    {
        v.problem(
            "/apiVersion",
            format!("apiVersion must be {API_VERSION:?}, not {version:?}"),
        );
    }
    if let Some(k) = &file.kind
        && k != KIND
    {
        v.problem("/kind", format!("kind must be {KIND:?}, not {k:?}"));
    }
    if let Some(p) = &file.policy
        && (p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == ".."))
    {
        v.problem(
            "/policy",
            "policy must be a path inside the repository, relative to its root \
             (no leading /, no ..)",
        );
    }
    let manifests = match &file.manifests.include {
        Some(list) => globs(v, "/manifests/include", list),
        None => defaults().manifests.clone(),
    };
    let exclude = match &file.manifests.exclude {
        Some(list) => globs(v, "/manifests/exclude", list),
        None => defaults().exclude.clone(),
    };
    let values = match file.helm_values {
        Some(specs) => specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| values(v, i, s))
            .collect(),
        None => vec![ValuesSpec {
            files: defaults().values.clone(),
            namespace: None,
            images: vec![
                parse_image_path(DEFAULT_IMAGE_PATH, ImageKeys::default())
                    .expect("the default image path is valid"),
            ],
            workload: None,
        }],
    };
    let deadline = match &file.registry.deadline {
        None => None,
        // YAML reads a bare `30` as a number: the deprecated number of seconds.
        Some(serde_json::Value::Number(n)) => {
            v.duration("/registry/deadline", &n.to_string(), true)
        }
        Some(serde_json::Value::String(text)) => v.duration("/registry/deadline", text, true),
        Some(other) => {
            v.problem(
                "/registry/deadline",
                format!("deadline must be a duration like \"30s\" or \"2m\", not {other}"),
            );
            None
        }
    }
    .unwrap_or(RegistryGate::default().deadline);
    RepoConfig {
        origin: origin.to_owned(),
        notes: Vec::new(),
        policy: file.policy,
        namespace: file.namespace,
        manifests,
        exclude,
        require_objects: file.manifests.require_objects.unwrap_or(false),
        values,
        registry: RegistryGate {
            resolve: file.registry.resolve.unwrap_or(false),
            deadline,
            block_when_unreachable: file.registry.block_when_unreachable.unwrap_or(false),
        },
    }
}

fn values(v: &mut Validator, i: usize, spec: ValuesFileSpec) -> ValuesSpec {
    let at = format!("/helmValues/{i}");
    if spec.files.is_empty() {
        v.problem(format!("{at}/files"), "files must list at least one glob");
    }
    let files = globs(v, &format!("{at}/files"), &spec.files);
    let images = match spec.images {
        None => vec![
            parse_image_path(DEFAULT_IMAGE_PATH, ImageKeys::default())
                .expect("the default image path is valid"),
        ],
        Some(list) => list
            .into_iter()
            .enumerate()
            .filter_map(|(j, p)| {
                let d = ImageKeys::default();
                let keys = ImageKeys {
                    registry: p.keys.registry.unwrap_or(d.registry),
                    repository: p.keys.repository.unwrap_or(d.repository),
                    tag: p.keys.tag.unwrap_or(d.tag),
                    digest: p.keys.digest.unwrap_or(d.digest),
                };
                match parse_image_path(&p.path, keys) {
                    Ok(path) => Some(path),
                    Err(message) => {
                        v.problem(format!("{at}/images/{j}/path"), message);
                        None
                    }
                }
            })
            .collect(),
    };
    let workload = spec.workload.map(|w| {
        if !WORKLOAD_KINDS.contains(&w.kind.as_str()) {
            v.problem(
                format!("{at}/workload/kind"),
                format!(
                    "workload kind {:?} is not one of {}",
                    w.kind,
                    WORKLOAD_KINDS.join(", ")
                ),
            );
        }
        for (field, value) in [("name", Some(&w.name)), ("namespace", w.namespace.as_ref())] {
            if let Some(name) = value
                && !is_dns_label_like(name)
            {
                v.problem(
                    format!("{at}/workload/{field}"),
                    format!(
                        "workload {field} {name:?} is not a Kubernetes object name (lower-case \
                         letters, digits, '-' and '.')"
                    ),
                );
            }
        }
        WorkloadTarget {
            kind: w.kind,
            namespace: w.namespace,
            name: w.name,
        }
    });
    ValuesSpec {
        files,
        namespace: spec.namespace,
        images,
        workload,
    }
}

fn globs(v: &mut Validator, pointer: &str, globs: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for (i, g) in globs.iter().enumerate() {
        // `*` stays within one path segment, as in .gitignore; `**` crosses them.
        if let Some(glob) = v.glob(&format!("{pointer}/{i}"), g, true) {
            b.add(glob);
        }
    }
    b.build()
        .unwrap_or_else(|_| GlobSetBuilder::new().build().expect("an empty set builds"))
}

/// A DNS-1123 subdomain as Kubernetes requires of object names (and, more strictly, of
/// namespaces; the API server reports the finer difference).
fn is_dns_label_like(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The default glob sets, compiled once per process: compiling them (globset, then a regex
/// automaton) cost most of a `.tollgate.yaml` parse, paid again for every commit a gate reads.
struct Defaults {
    manifests: GlobSet,
    exclude: GlobSet,
    values: GlobSet,
}

fn defaults() -> &'static Defaults {
    static DEFAULTS: std::sync::LazyLock<Defaults> = std::sync::LazyLock::new(|| {
        // As `globs` builds them; that they are valid is tested by `RepoConfig::default`.
        let set = |list: &[&str]| {
            let mut b = GlobSetBuilder::new();
            for g in list {
                let glob = globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .expect("the default globs are valid");
                b.add(glob);
            }
            b.build().expect("the default globs build")
        };
        Defaults {
            manifests: set(DEFAULT_MANIFESTS),
            exclude: set(DEFAULT_EXCLUDE),
            values: set(DEFAULT_VALUES),
        }
    });
    &DEFAULTS
}

/// Parse a dotted key path (`**.image`, `api.image`, `sidecars.*.image`).
fn parse_image_path(text: &str, keys: ImageKeys) -> Result<ImagePath, String> {
    if text.trim().is_empty() {
        return Err("path must not be empty".into());
    }
    let mut segments = Vec::new();
    for s in text.split('.') {
        segments.push(match s {
            "" => return Err(format!("path {text:?} has an empty segment")),
            "*" => Segment::Any,
            "**" => Segment::AnyDepth,
            k if k.contains('*') => {
                return Err(format!(
                    "path {text:?}: `*` and `**` must be whole segments (a.*.b, **.image)"
                ));
            }
            k => Segment::Key(k.to_owned()),
        });
    }
    if matches!(segments.last(), Some(Segment::AnyDepth)) {
        return Err(format!("path {text:?} must end with a key, not **"));
    }
    Ok(ImagePath {
        segments,
        written: text.to_owned(),
        keys,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::plain_manifest("apps/api/deployment.yaml", "manifest")]
    #[case::json_manifest("apps/api/pod.json", "manifest")]
    #[case::chart_template("charts/api/templates/deployment.yaml", "other")]
    #[case::chart_values("charts/api/values.yaml", "values")]
    #[case::env_values("helmfile.d/services/api/values-production.yaml", "values")]
    #[case::values_folder("components/builds-api/values/tools.yaml", "values")]
    #[case::ci_config(".gitlab-ci.yml", "other")]
    #[case::github_workflow(".github/workflows/ci.yaml", "other")]
    #[case::readme("README.md", "other")]
    #[case::the_config_itself(".tollgate.yaml", "other")]
    fn default_classification(#[case] path: &str, #[case] expected: &str) {
        let c = RepoConfig::default();
        let got = match c.classify(path) {
            FileKind::Manifest => "manifest",
            FileKind::Values(_) => "values",
            FileKind::Other => "other",
        };
        assert_eq!(got, expected, "{path}");
    }

    #[test]
    fn a_full_config_is_read() {
        let c = RepoConfig::parse(
            "apiVersion: tollgate.dev/v1alpha1\nkind: RepoConfig\npolicy: policy/prod.yaml\nnamespace: tools\nmanifests:\n  include: ['k8s/**/*.yaml']\n  exclude: ['k8s/test/**']\nhelmValues:\n  - files: ['components/*/values/*.yaml']\n    namespace: builds\n    images:\n      - path: api.container\n        keys: {repository: name, tag: version}\nregistry:\n  resolve: true\n  deadline: 2m\n  blockWhenUnreachable: true\n",
            ".tollgate.yaml",
        )
        .unwrap();
        assert_eq!(c.policy(), Some("policy/prod.yaml"));
        assert_eq!(c.namespace(), Some("tools"));
        assert!(matches!(c.classify("k8s/a/b.yaml"), FileKind::Manifest));
        assert!(matches!(c.classify("k8s/test/b.yaml"), FileKind::Other));
        assert!(matches!(c.classify("other/b.yaml"), FileKind::Other));
        let FileKind::Values(spec) = c.classify("components/api/values/prod.yaml") else {
            panic!("values expected");
        };
        assert_eq!(spec.namespace.as_deref(), Some("builds"));
        assert_eq!(
            spec.images[0].segments,
            vec![Segment::Key("api".into()), Segment::Key("container".into())]
        );
        assert_eq!(spec.images[0].keys.repository, "name");
        assert_eq!(spec.images[0].keys.tag, "version");
        assert_eq!(spec.images[0].keys.digest, "digest");
        assert_eq!(
            c.registry(),
            RegistryGate {
                resolve: true,
                deadline: Duration::from_secs(120),
                block_when_unreachable: true
            }
        );
    }

    #[test]
    fn a_values_group_maps_to_its_workload() {
        let c = RepoConfig::parse(
            "namespace: tools\nhelmValues:\n  - files: ['api/values.yaml']\n    workload: {kind: Deployment, namespace: builds-api, name: builds-api}\n",
            ".tollgate.yaml",
        )
        .unwrap();
        let FileKind::Values(spec) = c.classify("api/values.yaml") else {
            panic!("values expected");
        };
        assert_eq!(
            spec.workload,
            Some(WorkloadTarget {
                kind: "Deployment".into(),
                namespace: Some("builds-api".into()),
                name: "builds-api".into()
            })
        );
    }

    #[rstest]
    #[case::a_number("registry:\n  deadline: 45\n")]
    #[case::a_number_in_a_string("registry:\n  deadline: '45'\n")]
    fn a_bare_number_of_seconds_is_accepted_with_a_note(#[case] text: &str) {
        let c = RepoConfig::parse(text, ".tollgate.yaml").unwrap();
        assert_eq!(c.registry().deadline, Duration::from_secs(45));
        let notes: Vec<String> = c
            .notes()
            .iter()
            .map(|n| n.located(".tollgate.yaml"))
            .collect();
        assert_eq!(
            notes,
            [
                ".tollgate.yaml:2:13: a duration without a unit (\"45\") is deprecated; write 45s (at /registry/deadline)"
            ]
        );
        let unit = RepoConfig::parse("registry:\n  deadline: 45s\n", ".tollgate.yaml").unwrap();
        assert!(unit.notes().is_empty());
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        let c = RepoConfig::parse("# nothing yet\n", ".tollgate.yaml").unwrap();
        assert_eq!(c.policy(), None);
        assert_eq!(c.registry(), RegistryGate::default());
        assert!(matches!(c.classify("a/deploy.yaml"), FileKind::Manifest));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let e = RepoConfig::parse(
            "kind: RepoConfig\npolicyy: x.yaml\nmanifests:\n  includes: ['*.yaml']\nhelmValues:\n  - files: []\n    images:\n      - path: 'a.b*'\nregistry:\n  deadline: soon\n",
            ".tollgate.yaml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                ".tollgate.yaml:2:10: unknown key \"policyy\" (did you mean \"policy\"?)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                ".tollgate.yaml:4:13: unknown key \"includes\" (did you mean \"include\"?)"
            ),
            "{text}"
        );
        assert!(
            text.contains(":6:12: files must list at least one glob"),
            "{text}"
        );
        assert!(text.contains(":8:15: path \"a.b*\""), "{text}");
        assert!(
            text.contains(":10:13: \"soon\" is not a duration like 250ms"),
            "{text}"
        );
        assert_eq!(e.problems.len(), 5, "{text}");
    }

    #[rstest]
    #[case::wrong_kind("kind: Policy\n", "kind must be \"RepoConfig\"")]
    #[case::wrong_version("apiVersion: v1\n", "apiVersion must be")]
    #[case::escaping_policy_path("policy: ../p.yaml\n", "inside the repository")]
    #[case::absolute_policy_path("policy: /etc/p.yaml\n", "inside the repository")]
    #[case::wrong_type("registry: {resolve: maybe}\n", "invalid type")]
    #[case::trailing_any_depth(
        "helmValues: [{files: ['*.yaml'], images: [{path: 'a.**'}]}]\n",
        "must end with a key"
    )]
    #[case::bad_glob("manifests: {include: ['a/[b']}\n", "invalid pattern \"a/[b\"")]
    #[case::workload_of_unknown_kind(
        "helmValues: [{files: ['*.yaml'], workload: {kind: Service, name: api}}]\n",
        "workload kind \"Service\" is not one of"
    )]
    #[case::workload_with_a_bad_name(
        "helmValues: [{files: ['*.yaml'], workload: {kind: Deployment, name: Api_1}}]\n",
        "workload name \"Api_1\" is not a Kubernetes object name"
    )]
    #[case::workload_without_a_name(
        "helmValues: [{files: ['*.yaml'], workload: {kind: Deployment}}]\n",
        "missing field `name`"
    )]
    #[case::not_yaml("policy: [\n", "")]
    fn invalid_configs_are_refused(#[case] text: &str, #[case] message: &str) {
        let e = RepoConfig::parse(text, ".tollgate.yaml").unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
    }
}
