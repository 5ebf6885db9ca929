//! Where custom kinds keep their pod specs and containers: the built-in table for the projects
//! platform teams run (Argo Rollouts, Knative Serving, OpenKruise, Argo Workflows, Tekton), and
//! the entries a policy adds with `spec.workloads`.
//!
//! A path is dot-separated keys, where `key[*]` steps into every entry of a list:
//! `spec.templates[*].container`. A path that is absent in an object is no site (a Rollout with
//! a `workloadRef` has no template); a value of the wrong type where one is expected is
//! malformed and reported, never skipped.

use std::sync::LazyLock;

use super::ContainerKind;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// Every entry of a list.
    Each,
}

/// A path into an object, as written in a policy (`spec.templates[*].container`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    steps: Vec<Step>,
}

/// Why a field path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field path {path:?} {reason}")]
pub struct FieldPathError {
    path: String,
    reason: &'static str,
}

impl FieldPath {
    /// Parse `key.key[*].key`.
    pub fn parse(text: &str) -> Result<FieldPath, FieldPathError> {
        let err = |reason| FieldPathError {
            path: text.to_owned(),
            reason,
        };
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (key, each) = match part.strip_suffix("[*]") {
                Some(k) => (k, true),
                None => (part, false),
            };
            if key.is_empty() {
                return Err(err(
                    "has an empty key: write dot-separated keys, `[*]` after a list's key \
                     (spec.templates[*].container)",
                ));
            }
            if !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(err(
                    "has a key with characters other than letters, digits, '_' and '-' (a \
                     list step is written `key[*]`, every entry)",
                ));
            }
            steps.push(Step::Key(key.to_owned()));
            if each {
                steps.push(Step::Each);
            }
        }
        Ok(FieldPath {
            text: text.to_owned(),
            steps,
        })
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What a path leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// A pod spec (or a pod-spec-like mapping): its container lists and image volumes.
    PodSpec(FieldPath),
    /// One container (a mapping with `image`) or a list of them, of this kind.
    Containers(FieldPath, ContainerKind),
    /// Like [`Site::Containers`], where a container may leave out its image because another
    /// field supplies it (a Tekton step takes its `stepTemplate`'s); the one it names is
    /// checked, a missing one is not malformed.
    ContainersImageOptional(FieldPath),
}

/// Where one kind keeps its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindEntry {
    /// The API group (`argoproj.io`; empty for the core group).
    pub group: String,
    /// The kind (`Rollout`).
    pub kind: String,
    /// Its pod specs and containers.
    pub sites: Vec<Site>,
}

/// The kinds beyond Kubernetes' own that carry images: built in, plus a policy's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadKinds {
    entries: Vec<KindEntry>,
}

impl WorkloadKinds {
    /// The built-in table alone.
    pub fn builtin() -> &'static WorkloadKinds {
        &BUILTIN
    }

    /// The built-in table, with `extra` entries added; an extra entry for a kind the table
    /// has replaces that entry (a project's newer layout, say).
    pub fn with(extra: Vec<KindEntry>) -> WorkloadKinds {
        let mut entries: Vec<KindEntry> = BUILTIN
            .entries
            .iter()
            .filter(|b| !extra.iter().any(|e| e.group == b.group && e.kind == b.kind))
            .cloned()
            .collect();
        entries.extend(extra);
        WorkloadKinds { entries }
    }

    /// Where `group`/`kind` keeps its images, if it is in the table.
    pub fn sites(&self, group: &str, kind: &str) -> Option<&[Site]> {
        self.entries
            .iter()
            .find(|e| e.group == group && e.kind == kind)
            .map(|e| e.sites.as_slice())
    }

    /// Every entry.
    pub fn entries(&self) -> &[KindEntry] {
        &self.entries
    }

    /// Whether `group`/`kind` is in the table (the built-ins or the policy's).
    pub fn contains(&self, group: &str, kind: &str) -> bool {
        self.sites(group, kind).is_some()
    }
}

fn pod(path: &str) -> Site {
    Site::PodSpec(FieldPath::parse(path).expect("built-in paths parse (tested)"))
}

fn containers(path: &str, kind: ContainerKind) -> Site {
    Site::Containers(
        FieldPath::parse(path).expect("built-in paths parse (tested)"),
        kind,
    )
}

fn entry(group: &str, kind: &str, sites: Vec<Site>) -> KindEntry {
    KindEntry {
        group: group.to_owned(),
        kind: kind.to_owned(),
        sites,
    }
}

/// An Argo Workflows template list at `at` (`spec.templates`): each template's `container`,
/// `script`, `containerSet.containers`, `initContainers` and `sidecars`.
fn argo_templates(at: &str) -> Vec<Site> {
    use ContainerKind::{Container, InitContainer};
    vec![
        containers(&format!("{at}[*].initContainers"), InitContainer),
        containers(&format!("{at}[*].container"), Container),
        containers(&format!("{at}[*].script"), Container),
        containers(&format!("{at}[*].containerSet.containers"), Container),
        containers(&format!("{at}[*].sidecars"), Container),
    ]
}

/// A Tekton task spec at `at`: its `steps`, `sidecars` and `stepTemplate`. A step without an
/// image runs its `stepTemplate`'s, so neither needs one of its own.
fn tekton_task(at: &str) -> Vec<Site> {
    let optional = |p: String| {
        Site::ContainersImageOptional(FieldPath::parse(&p).expect("built-in paths parse (tested)"))
    };
    vec![
        optional(format!("{at}.stepTemplate")),
        optional(format!("{at}.steps")),
        containers(&format!("{at}.sidecars"), ContainerKind::Container),
    ]
}

/// A Tekton pipeline spec at `at`: the embedded task specs of `tasks` and `finally`.
fn tekton_pipeline(at: &str) -> Vec<Site> {
    let mut sites = tekton_task(&format!("{at}.tasks[*].taskSpec"));
    sites.extend(tekton_task(&format!("{at}.finally[*].taskSpec")));
    sites
}

static BUILTIN: LazyLock<WorkloadKinds> = LazyLock::new(|| {
    let template = || vec![pod("spec.template.spec")];
    let mut entries = vec![
        // Argo Rollouts: a Deployment's shape (or a workloadRef to one, checked as itself).
        entry("argoproj.io", "Rollout", template()),
        // Knative Serving: the revision template; a Revision is the spec itself.
        entry("serving.knative.dev", "Service", template()),
        entry("serving.knative.dev", "Configuration", template()),
        entry("serving.knative.dev", "Revision", vec![pod("spec")]),
        // OpenKruise: CloneSet, Advanced StatefulSet and DaemonSet (apps.kruise.io), and the
        // SidecarSet, whose containers are injected into other pods.
        entry("apps.kruise.io", "CloneSet", template()),
        entry("apps.kruise.io", "StatefulSet", template()),
        entry("apps.kruise.io", "DaemonSet", template()),
        entry("apps.kruise.io", "SidecarSet", vec![pod("spec")]),
        entry("argoproj.io", "Workflow", argo_templates("spec.templates")),
        entry(
            "argoproj.io",
            "WorkflowTemplate",
            argo_templates("spec.templates"),
        ),
        entry(
            "argoproj.io",
            "ClusterWorkflowTemplate",
            argo_templates("spec.templates"),
        ),
        entry(
            "argoproj.io",
            "CronWorkflow",
            argo_templates("spec.workflowSpec.templates"),
        ),
        entry("tekton.dev", "Task", tekton_task("spec")),
        entry("tekton.dev", "TaskRun", tekton_task("spec.taskSpec")),
        entry("tekton.dev", "Pipeline", tekton_pipeline("spec")),
        entry(
            "tekton.dev",
            "PipelineRun",
            tekton_pipeline("spec.pipelineSpec"),
        ),
    ];
    // Argo Rollouts' Experiment runs a pod template per template; analysis with the job
    // provider runs a Job.
    entries.push(entry(
        "argoproj.io",
        "Experiment",
        vec![pod("spec.templates[*].template.spec")],
    ));
    for kind in ["AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"] {
        entries.push(entry(
            "argoproj.io",
            kind,
            vec![pod("spec.metrics[*].provider.job.spec.template.spec")],
        ));
    }
    // OpenKruise's UnitedDeployment holds one workload template of four kinds; an EphemeralJob
    // adds ephemeral containers to running pods; an ImagePullJob pulls `spec.image` onto nodes.
    entries.push(entry(
        "apps.kruise.io",
        "UnitedDeployment",
        [
            "statefulSetTemplate",
            "advancedStatefulSetTemplate",
            "cloneSetTemplate",
            "deploymentTemplate",
        ]
        .iter()
        .map(|t| pod(&format!("spec.template.{t}.spec.template.spec")))
        .collect(),
    ));
    entries.push(entry(
        "apps.kruise.io",
        "EphemeralJob",
        vec![containers(
            "spec.template.ephemeralContainers",
            ContainerKind::EphemeralContainer,
        )],
    ));
    entries.push(entry(
        "apps.kruise.io",
        "ImagePullJob",
        vec![containers("spec", ContainerKind::Container)],
    ));
    // Tekton's StepAction is one step: its spec names the image.
    entries.push(entry(
        "tekton.dev",
        "StepAction",
        vec![containers("spec", ContainerKind::Container)],
    ));
    // OpenKruise's BroadcastJob and AdvancedCronJob carry Job-shaped templates.
    entries.push(entry("apps.kruise.io", "BroadcastJob", template()));
    entries.push(entry(
        "apps.kruise.io",
        "AdvancedCronJob",
        vec![
            pod("spec.template.jobTemplate.spec.template.spec"),
            pod("spec.template.broadcastJobTemplate.spec.template.spec"),
        ],
    ));
    WorkloadKinds { entries }
});

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn the_builtin_table_builds() {
        // Its paths are parsed when it is first used; a typo would panic here, not in a user's
        // admission request.
        assert!(WorkloadKinds::builtin().contains("argoproj.io", "Rollout"));
        assert!(!WorkloadKinds::builtin().contains("apps", "Deployment"));
    }

    #[rstest]
    #[case::keys("spec.template.spec", 3)]
    #[case::each("spec.templates[*].container", 4)]
    #[case::dashes_and_underscores("spec.my_field.other-field", 3)]
    fn field_paths_parse(#[case] text: &str, #[case] steps: usize) {
        assert_eq!(FieldPath::parse(text).unwrap().steps().len(), steps);
    }

    #[rstest]
    #[case::empty("")]
    #[case::double_dot("spec..template")]
    #[case::index("spec.templates[0].container")]
    #[case::slash("spec/template")]
    #[case::leading_each("[*].container")]
    fn bad_field_paths_are_refused(#[case] text: &str) {
        assert!(FieldPath::parse(text).is_err(), "{text}");
    }

    #[test]
    fn a_policy_entry_replaces_the_builtin_one_for_its_kind() {
        let mine = KindEntry {
            group: "argoproj.io".into(),
            kind: "Rollout".into(),
            sites: vec![pod("spec.podSpec")],
        };
        let kinds = WorkloadKinds::with(vec![mine.clone()]);
        assert_eq!(
            kinds.sites("argoproj.io", "Rollout"),
            Some(mine.sites.as_slice())
        );
        assert!(kinds.contains("tekton.dev", "Task"));
    }
}
