use jiff::Timestamp;
use rstest::rstest;

use super::eval::{Context, Status, evaluate_image};
use super::*;
use crate::reference::{ImageRef, WrittenImage};
use std::sync::Arc;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn policy(spec: &str) -> Policy {
    let text =
        format!("apiVersion: {API_VERSION}\nkind: Policy\nmetadata:\n  name: t\nspec:\n{spec}");
    parse_policy(&text, "p.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> Timestamp {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

/// The rules `image` fails (and that are not exempted) under `p` in namespace `ns`.
fn failures_in(p: &Policy, image: &str, ns: &str) -> Vec<RuleId> {
    evaluate_image(
        p,
        &WrittenImage::new(image),
        Context {
            namespace: ns,
            now: now(),
        },
    )
    .outcomes
    .into_iter()
    .filter(|o| o.is_enforced_failure())
    .map(|o| o.rule)
    .collect()
}

fn failures(p: &Policy, image: &str) -> Vec<RuleId> {
    failures_in(p, image, "default")
}

#[test]
fn the_embedded_default_policy_is_valid() {
    let p = default_policy();
    assert_eq!(p.name(), "wikimedia-production");
    assert_eq!(p.level(RuleId::DigestMissing), Level::Warn);
    assert_eq!(p.level(RuleId::TagLatest), Level::Deny);
}

#[rstest]
#[case::shipped_default("../../policies/default.yaml")]
#[case::toolforge_example("../../policies/toolforge.yaml")]
#[case::team_example("../../policies/team-path.yaml")]
#[case::multi_team_example("../../policies/multi-team.yaml")]
fn every_shipped_policy_is_valid(#[case] path: &str) {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/policy")
        .join(path);
    let text = std::fs::read_to_string(&full).unwrap();
    parse_policy(&text, path).unwrap_or_else(|e| panic!("{e}"));
}

#[rstest]
#[case::approved_host(&format!("docker-registry.wikimedia.org/app:1@{D}"), vec![])]
#[case::alias_host(&format!("docker-registry.discovery.wmnet/app:1@{D}"), vec![])]
#[case::uppercase_host(&format!("Docker-Registry.Wikimedia.org/app:1@{D}"), vec![])]
#[case::suffix_look_alike(&format!("docker-registry.wikimedia.org.evil.com/x:1@{D}"), vec![RuleId::RegistryNotApproved])]
#[case::dash_look_alike(&format!("docker-registry.wikimedia.org-x/y:1@{D}"), vec![RuleId::RegistryNotApproved])]
#[case::other_port(&format!("docker-registry.wikimedia.org:5000/x:1@{D}"), vec![RuleId::RegistryNotApproved])]
#[case::host_in_path(&format!("evil.com/docker-registry.wikimedia.org/x:1@{D}"), vec![RuleId::RegistryNotApproved])]
#[case::docker_hub(&format!("nginx:1.25@{D}"), vec![RuleId::RegistryNotApproved])]
#[case::latest(&format!("docker-registry.wikimedia.org/app:latest@{D}"), vec![RuleId::TagLatest])]
#[case::implicit_latest("docker-registry.wikimedia.org/app", vec![RuleId::TagMissing, RuleId::DigestMissing])]
#[case::unpinned("docker-registry.wikimedia.org/app:1.0", vec![RuleId::DigestMissing])]
#[case::digest_only(&format!("docker-registry.wikimedia.org/app@{D}"), vec![RuleId::DigestUntagged])]
#[case::base_image(&format!("docker-registry.wikimedia.org/bookworm:20240101@{D}"), vec![RuleId::RepositoryNotDeployable])]
#[case::base_via_alias(&format!("docker-registry.discovery.wmnet/bookworm:20240101@{D}"), vec![RuleId::RepositoryNotDeployable])]
#[case::distroless_base(&format!("docker-registry.wikimedia.org/distroless/static:1@{D}"), vec![RuleId::RepositoryNotDeployable])]
#[case::base_name_as_prefix_is_fine(&format!("docker-registry.wikimedia.org/bookworm-tools:1@{D}"), vec![])]
#[case::invalid("docker-registry.wikimedia.org/App:1", vec![RuleId::ReferenceInvalid])]
fn default_policy_rules(#[case] image: &str, #[case] expected: Vec<RuleId>) {
    assert_eq!(failures(&default_policy(), image), expected);
}

#[rstest]
#[case::under_path("registry.example.org/team/app:1", true)]
#[case::nested_under_path("registry.example.org/team/sub/app:1", true)]
#[case::segment_prefix_is_not_a_segment("registry.example.org/teamx/app:1", false)]
#[case::the_path_itself_is_no_repository("registry.example.org/team:1", false)]
#[case::other_path("registry.example.org/other/app:1", false)]
fn registry_paths_match_whole_segments(#[case] image: &str, #[case] approved: bool) {
    let p = policy("  registries:\n    - prefix: registry.example.org/team/\n");
    assert_eq!(
        !failures(&p, image).contains(&RuleId::RegistryNotApproved),
        approved
    );
}

#[test]
fn outside_the_approved_path_says_which_path() {
    let p = policy("  registries:\n    - prefix: registry.example.org/team/\n");
    let v = evaluate_image(
        &p,
        &WrittenImage::new("registry.example.org/other/app:1"),
        Context {
            namespace: "d",
            now: now(),
        },
    );
    let Status::Fail(f) = &v
        .outcomes
        .iter()
        .find(|o| o.rule == RuleId::RegistryNotApproved)
        .unwrap()
        .status
    else {
        panic!()
    };
    assert_eq!(
        f.message,
        "registry.example.org/other/app is outside the approved path of registry registry.example.org"
    );
    assert_eq!(
        f.hint,
        "images from registry.example.org must be under registry.example.org/team/"
    );
}

#[rstest]
#[case::dev_suffix("r.example.org/app:1.0-dev", true)]
#[case::nightly("r.example.org/app:nightly-2026", true)]
#[case::release("r.example.org/app:1.0", false)]
#[case::digest_only_has_no_tag(&format!("r.example.org/app@{D}"), false)]
fn forbidden_tag_patterns(#[case] image: &str, #[case] forbidden: bool) {
    let p = policy(
        "  registries: [{prefix: r.example.org}]\n  tags:\n    forbidden: ['*-dev', 'nightly*']\n",
    );
    assert_eq!(
        failures(&p, image).contains(&RuleId::TagForbidden),
        forbidden
    );
}

#[rstest]
#[case::deny(Level::Deny)]
#[case::warn(Level::Warn)]
#[case::audit(Level::Audit)]
fn levels_are_configurable_per_rule(#[case] level: Level) {
    let p = policy(&format!(
        "  rules:\n    tag-latest: {level}\n  registries: [{{prefix: r.example.org}}]\n"
    ));
    let v = evaluate_image(
        &p,
        &WrittenImage::new("r.example.org/a:latest"),
        Context {
            namespace: "d",
            now: now(),
        },
    );
    let o = v
        .outcomes
        .iter()
        .find(|o| o.rule == RuleId::TagLatest)
        .unwrap();
    assert_eq!(o.level, level);
    assert!(matches!(o.status, Status::Fail(_)));
}

#[test]
fn a_rule_that_is_off_is_not_evaluated() {
    let p = policy("  rules:\n    tag-latest: 'off'\n  registries: [{prefix: r.example.org}]\n");
    assert!(!failures(&p, "r.example.org/a:latest").contains(&RuleId::TagLatest));
}

const EXEMPTIONS: &str = "  registries: [{prefix: r.example.org}]
  exemptions:
    - namespaces: [kube-system]
      reason: control plane
    - images: [docker.io/library/*]
      rules: [registry-not-approved]
      reason: official images during migration
      expires: 2026-12-31
    - namespaces: [legacy-*]
      images: [r.example.org/old/**]
      reason: legacy
      expires: 2026-01-01
";

#[rstest]
#[case::namespace_exempts_everything("kube-system", "nginx", vec![])]
#[case::image_exempts_only_its_rules("default", "nginx:1", vec![RuleId::DigestMissing])]
#[case::single_star_stays_in_one_segment("default", "bitnami/redis:1", vec![RuleId::RegistryNotApproved, RuleId::DigestMissing])]
#[case::expired_exemption_no_longer_exempts("legacy-app", "r.example.org/old/x/y:latest", vec![RuleId::TagLatest, RuleId::DigestMissing])]
#[case::both_selectors_must_match("default", "r.example.org/old/x:latest", vec![RuleId::TagLatest, RuleId::DigestMissing])]
fn exemptions(#[case] ns: &str, #[case] image: &str, #[case] expected: Vec<RuleId>) {
    assert_eq!(failures_in(&policy(EXEMPTIONS), image, ns), expected);
}

#[test]
fn an_exemption_through_the_last_day_of_the_calendar_is_valid() {
    let p = policy(
        "  registries: [{prefix: r.example.org}]\n  exemptions:\n    - namespaces: [legacy]\n      reason: forever\n      expires: 9999-12-31\n",
    );
    assert!(!p.exemptions()[0].is_expired(now()));
}

#[test]
fn exemption_with_a_date_is_valid_through_that_day() {
    let p = policy(EXEMPTIONS);
    let e = &p.exemptions()[1];
    assert!(!e.is_expired("2026-12-31T23:59:59Z".parse().unwrap()));
    assert!(e.is_expired("2027-01-01T00:00:00Z".parse().unwrap()));
}

#[test]
fn an_expired_exemption_is_marked_on_the_outcome() {
    let p = policy(EXEMPTIONS);
    let v = evaluate_image(
        &p,
        &WrittenImage::new("r.example.org/old/x:latest"),
        Context {
            namespace: "legacy-a",
            now: now(),
        },
    );
    let o = v
        .outcomes
        .iter()
        .find(|o| o.rule == RuleId::TagLatest)
        .unwrap();
    assert_eq!(o.exemption.map(|e| (e.index, e.expired)), Some((2, true)));
}

fn problems(text: &str) -> Vec<(Option<u32>, String)> {
    let e = parse_policy(text, "p.yaml").unwrap_err();
    e.problems
        .into_iter()
        .map(|p| (p.pos.map(|p| p.line), p.message))
        .collect()
}

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let text = "\
apiVersion: tollgate.dev/v1alpha1
kind: Policy
metadata:
  name: t
  colour: blue
spec:
  rules:
    tag-lastest: deny
  registries:
    - prefix: https://r.example.org
    - prefix: r.example.org
      aliasses: [x]
  bases:
    debian:
      - repository: docker.io/library/debian
      - repository: r.example.org/debian:12
  notDeployable: [debian]
  exemptions:
    - namespaces: [a]
    - images: ['r.example.org/[']
      reason: x
      expires: next week
";
    let got = problems(text);
    let expected: Vec<(Option<u32>, &str)> = vec![
        (Some(5), "unknown key \"colour\""),
        (Some(8), "unknown rule id \"tag-lastest\""),
        (Some(10), "\"https://r.example.org\" is a URL"),
        (
            Some(12),
            "unknown key \"aliasses\" (did you mean \"aliases\"?)",
        ),
        (
            Some(15),
            "base repository docker.io/library/debian is not in an approved registry",
        ),
        (Some(16), "must not have a tag or digest"),
        (
            Some(17),
            "image pattern \"debian\" must be a fully-qualified name",
        ),
        (Some(19), "an exemption needs a non-empty `reason`"),
        (Some(20), "path segment \"[\" is not a valid glob"),
        (Some(22), "expires \"next week\" is not a date"),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((line, msg), (eline, emsg)) in got.iter().zip(&expected) {
        assert_eq!(line, eline, "{msg}");
        assert!(msg.contains(emsg), "{msg:?} should contain {emsg:?}");
    }
}

#[rstest]
#[case::wrong_api_version(
    "apiVersion: tollgate.dev/v9\nkind: Policy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}]}\n",
    "unsupported apiVersion"
)]
#[case::wrong_kind(
    "apiVersion: tollgate.dev/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}]}\n",
    "kind must be \"Policy\""
)]
#[case::no_registry(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {}\n",
    "no approved registry"
)]
#[case::wrong_type(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {registries: {prefix: r.io}}\n",
    "invalid type: map, expected a sequence"
)]
#[case::bad_level(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {rules: {tag-latest: block}}\n",
    "level \"block\" is not one of deny, warn, audit, off"
)]
#[case::registry_unavailable_for_a_static_rule(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}], registryUnavailable: {tag-latest: deny}}\n",
    "rule tag-latest does not use the registry"
)]
#[case::registry_unavailable_unknown_rule(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}], registryUnavailable: {image-gone: deny}}\n",
    "unknown rule id \"image-gone\"; registryUnavailable applies to image-unavailable, tag-moved, base-not-approved"
)]
#[case::registry_unavailable_bad_value(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}], registryUnavailable: {tag-moved: warn}}\n",
    "\"warn\" is not one of allow, deny"
)]
#[case::not_yaml("apiVersion: [\n", "")]
#[case::two_documents("a: 1\n---\nb: 2\n", "expected a single YAML document")]
#[case::missing_reason(
    "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec: {registries: [{prefix: r.io}], exemptions: [{namespaces: [x], reason: ' '}]}\n",
    "non-empty `reason`"
)]
fn invalid_policies_are_refused_with_a_reason(#[case] text: &str, #[case] expected: &str) {
    let got = problems(text);
    assert!(
        got.iter()
            .any(|(line, m)| line.is_some() && m.contains(expected)),
        "{got:#?}"
    );
}

/// A key misspelt at one place is told the keys valid there, and only those: every struct field
/// of the format (derived from the types, so none can be forgotten), never a key of another
/// place, never the typo itself.
#[rstest]
#[case::retention_keep(
    "retention: [{repositories: ['r.example.org/**'], keeep: 3}]",
    "keeep",
    Some("keep")
)]
#[case::retention_order_by(
    "retention: [{repositories: ['r.example.org/**'], keep: 3, ordrBy: version}]",
    "ordrBy",
    Some("orderBy")
)]
#[case::retention_repositories(
    "retention: [{repositorys: ['r.example.org/**'], keep: 3}]",
    "repositorys",
    Some("repositories")
)]
#[case::base_repository(
    "bases: {debian: [{repositry: r.example.org/debian}]}",
    "repositry",
    Some("repository")
)]
#[case::a_key_of_another_place("registries: [{prefix: r.example.org, keep: 3}]", "keep", None)]
#[case::a_spec_key_at_the_top(
    "registries: [{prefix: r.example.org, notDeployable: []}]",
    "notDeployable",
    None
)]
fn did_you_mean_offers_only_keys_valid_there(
    #[case] spec_line: &str,
    #[case] typo: &str,
    #[case] suggestion: Option<&str>,
) {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org}}]\n  {spec_line}\n"
    )
    .replace("  registries: [{prefix: r.example.org}]\n  registries:", "  registries:");
    let got = problems(&text);
    let unknown = got
        .iter()
        .find(|(_, m)| m.starts_with(&format!("unknown key {typo:?}")))
        .unwrap_or_else(|| panic!("no unknown-key problem for {typo}: {got:#?}"));
    match suggestion {
        Some(k) => assert!(
            unknown.1.ends_with(&format!("(did you mean {k:?}?)")),
            "{unknown:?}"
        ),
        None => assert!(!unknown.1.contains("did you mean"), "{unknown:?}"),
    }
}

#[test]
fn policy_error_display_lists_file_line_and_pointer() {
    let e = parse_policy("apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  registries: [{prefix: 'a b'}]\n", "p.yaml").unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("policy p.yaml is invalid (1 problem):\n  p.yaml:5:"),
        "{s}"
    );
    assert!(s.ends_with("(at /spec/registries/0/prefix)"), "{s}");
}

#[test]
fn registry_unavailable_defaults_to_allow_and_is_set_per_rule() {
    let p = policy(
        "  registries: [{prefix: r.example.org}]\n  registryUnavailable:\n    image-unavailable: deny\n    tag-moved: allow\n",
    );
    assert_eq!(
        p.on_registry_unavailable(RuleId::ImageUnavailable),
        OnUnavailable::Deny
    );
    assert_eq!(
        p.on_registry_unavailable(RuleId::TagMoved),
        OnUnavailable::Allow
    );
    assert_eq!(
        p.on_registry_unavailable(RuleId::BaseNotApproved),
        OnUnavailable::Allow
    );
    assert_eq!(
        default_policy().on_registry_unavailable(RuleId::ImageUnavailable),
        OnUnavailable::Allow
    );
}

/// A `repository:` entry approves exactly one repository: not what is under it, not a sibling,
/// not a name built by appending to it.
#[rstest]
#[case::itself("docker.io/library/ubuntu:24.04", true)]
#[case::familiar_form("ubuntu:24.04", true)]
#[case::pinned(
    "ubuntu:24.04@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    true
)]
#[case::under_it("docker.io/library/ubuntu/extra:1", false)]
#[case::a_longer_name("docker.io/library/ubuntu-evil:1", false)]
#[case::a_sibling("docker.io/library/debian:12", false)]
#[case::another_host("registry.example.org/library/ubuntu:1", false)]
fn an_exact_repository_entry_approves_that_repository_only(
    #[case] image: &str,
    #[case] approved: bool,
) {
    let p = policy("  registries:\n    - repository: docker.io/library/ubuntu\n");
    assert_eq!(
        !failures(&p, image).contains(&RuleId::RegistryNotApproved),
        approved,
        "{image}"
    );
}

#[rstest]
#[case::hostless_prefix(
    "- prefix: openpolicyagent/",
    "\"openpolicyagent\" is not a registry host (a host has a dot or a port, or is localhost), so this approves nothing; did you mean \"docker.io/openpolicyagent/\"?"
)]
#[case::hostless_repository("- repository: team/app", "did you mean \"docker.io/team/app\"?")]
#[case::ambiguous_path_prefix(
    "- prefix: docker.io/library/ubuntu",
    "prefix \"docker.io/library/ubuntu\" approves the repositories under docker.io/library/ubuntu/, not docker.io/library/ubuntu itself; write repository: docker.io/library/ubuntu for exactly that repository, or prefix: docker.io/library/ubuntu/ for what is under it"
)]
#[case::repository_of_a_whole_host(
    "- repository: registry.example.org",
    "must name one repository"
)]
#[case::both(
    "- {prefix: registry.example.org, repository: registry.example.org/a}",
    "not both"
)]
#[case::neither("- {insecure: true}", "an entry needs prefix")]
#[case::wildcard_tld("- prefix: \"*.io/\"", "must end in two literal labels")]
#[case::wildcard_inside_a_label("- prefix: registry-*.example.org/", "'*' inside a label")]
#[case::double_star_inside_a_segment(
    "- prefix: r.example.org/team**/",
    "'**' stands for whole path segments"
)]
#[case::prefix_ending_in_double_star(
    "- prefix: r.example.org/team/**/",
    "write prefix: r.example.org/team/ for everything under"
)]
#[case::aliases_of_a_wildcard(
    "- {prefix: \"*.azurecr.io/\", aliases: [x.example.org]}",
    "has a wildcard host"
)]
fn registry_entries_say_what_they_approve_or_are_refused(
    #[case] entry: &str,
    #[case] message: &str,
) {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries:\n    {entry}\n"
    );
    let got = problems(&text);
    assert!(
        got.iter().any(|(_, m)| m.contains(message)),
        "{message}\n{got:#?}"
    );
}

#[rstest]
#[case::one_label(&format!("team.azurecr.io/app:1@{D}"), true)]
#[case::not_the_bare_domain(&format!("azurecr.io/app:1@{D}"), false)]
#[case::never_two_labels(&format!("a.b.azurecr.io/app:1@{D}"), false)]
#[case::suffix_look_alike(&format!("team.azurecr.io.evil.com/app:1@{D}"), false)]
#[case::ecr(&format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc:1@{D}"), true)]
#[case::ecr_other_service(&format!("123456789012.s3.eu-west-1.amazonaws.com/svc:1@{D}"), false)]
#[case::team_segment(&format!("r.example.org/team-pay/app:1@{D}"), true)]
#[case::team_segment_is_one_segment(&format!("r.example.org/team-pay/x/app:1@{D}"), true)]
#[case::team_glob_never_crosses_a_slash(&format!("r.example.org/team/app:1@{D}"), false)]
#[case::exact_with_a_glob(&format!("r.example.org/tools/lint-go:1@{D}"), true)]
#[case::exact_with_a_glob_not_under(&format!("r.example.org/tools/lint-go/x:1@{D}"), false)]
#[case::middle_double_star(&format!("r.example.org/mirror/a/b/base/debian:1@{D}"), true)]
#[case::middle_double_star_zero(&format!("r.example.org/mirror/base/debian:1@{D}"), true)]
#[case::middle_double_star_needs_the_segment(&format!("r.example.org/mirror/a/basex/debian:1@{D}"), false)]
fn wildcard_registry_entries_stay_label_and_segment_safe(
    #[case] image: &str,
    #[case] approved: bool,
) {
    let p = policy(
        "  registries:
    - prefix: \"*.azurecr.io/\"
    - prefix: \"*.dkr.ecr.*.amazonaws.com/\"
    - prefix: r.example.org/team-*/
    - repository: r.example.org/tools/lint-*
    - prefix: r.example.org/mirror/**/base/
",
    );
    assert_eq!(
        !failures(&p, image).contains(&RuleId::RegistryNotApproved),
        approved,
        "{image}"
    );
}

const TAG_EXEMPTIONS: &str = "  registries: [{prefix: r.example.org/}]
  tags:
    forbidden: [\"nightly\", \"dev\", \"pr-*\"]
  exemptions:
    - images: [\"r.example.org/app:nightly\"]
      rules: [tag-forbidden]
      reason: the nightly soak test
    - images: [\"r.example.org/app:pr-*\"]
      rules: [tag-forbidden]
      reason: preview environments
    - images: [\"r.example.org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]
      reason: the hotfix build, until Friday
      expires: 2026-12-04
";

#[rstest]
#[case::that_tag("r.example.org/app:nightly", vec![RuleId::DigestMissing])]
#[case::not_another_tag("r.example.org/app:dev", vec![RuleId::TagForbidden, RuleId::DigestMissing])]
#[case::a_tag_glob("r.example.org/app:pr-12", vec![RuleId::DigestMissing])]
#[case::not_another_repository("r.example.org/other:nightly", vec![RuleId::TagForbidden, RuleId::DigestMissing])]
#[case::that_digest(&format!("r.example.org/app:dev@{D}"), vec![])]
#[case::not_another_digest("r.example.org/app:dev@sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", vec![RuleId::TagForbidden])]
fn exemptions_by_tag_and_digest(#[case] image: &str, #[case] expected: Vec<RuleId>) {
    assert_eq!(
        failures(&policy(TAG_EXEMPTIONS), image),
        expected,
        "{image}"
    );
}

#[test]
fn a_digest_exemption_expires_like_any_other() {
    let p = policy(TAG_EXEMPTIONS);
    let image = format!("r.example.org/app:dev@{D}");
    let after: Timestamp = "2026-12-05T00:00:00Z".parse().unwrap();
    let outcomes = evaluate_image(
        &p,
        &WrittenImage::new(image.as_str()),
        Context {
            namespace: "default",
            now: after,
        },
    )
    .outcomes;
    let forbidden = outcomes
        .iter()
        .find(|o| o.rule == RuleId::TagForbidden)
        .unwrap();
    assert!(forbidden.is_enforced_failure());
    assert!(forbidden.exemption.is_some_and(|e| e.expired));
}

#[rstest]
#[case::tag_and_digest(
    "r.example.org/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "names a tag and a digest"
)]
#[case::short_digest("r.example.org/app@sha256:abc", "digest \"sha256:abc\"")]
fn exemption_selectors_are_validated(#[case] selector: &str, #[case] message: &str) {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org/}}]\n  exemptions:\n    - images: [\"{selector}\"]\n      reason: x\n"
    );
    let got = problems(&text);
    assert!(
        got.iter()
            .any(|(line, m)| m.contains(message) && *line == Some(7)),
        "{message}\n{got:#?}"
    );
}

const OVERRIDES: &str = "  rules: {digest-missing: off}
  locked: [registry-not-approved, tag-latest]
  registries: [{prefix: r.example.org/shared/}]
  tags: {forbidden: [\"*-dev\"]}
  overrides:
    - namespaces: [payments, \"payments-*\"]
      rules: {digest-missing: deny, tag-latest: deny}
      tags: {forbidden: [\"pr-*\"]}
    - namespaces: [\"payments-eu\"]
      rules: {digest-missing: off}
    - namespaces: [\"data-*\"]
      exemptions:
        - images: [\"r.example.org/shared/notebook:nightly-dev\"]
          rules: [tag-forbidden]
          reason: nightly notebooks
";

#[rstest]
#[case::cluster_wide("web", "r.example.org/shared/app:1", vec![])]
#[case::tightened("payments", "r.example.org/shared/app:1", vec![RuleId::DigestMissing])]
#[case::tags_added("payments", &format!("r.example.org/shared/app:pr-1@{D}"), vec![RuleId::TagForbidden])]
#[case::tags_added_only_there("web", &format!("r.example.org/shared/app:pr-1@{D}"), vec![])]
#[case::later_override_wins("payments-eu", "r.example.org/shared/app:1", vec![])]
#[case::glob_selects("payments-us", "r.example.org/shared/app:1", vec![RuleId::DigestMissing])]
#[case::exemption_added("data-lake", "r.example.org/shared/notebook:nightly-dev", vec![])]
#[case::exemption_only_there("web", "r.example.org/shared/notebook:nightly-dev", vec![RuleId::TagForbidden])]
fn overrides_apply_in_file_order_to_the_namespaces_they_select(
    #[case] ns: &str,
    #[case] image: &str,
    #[case] expected: Vec<RuleId>,
) {
    assert_eq!(
        failures_in(&policy(OVERRIDES), image, ns),
        expected,
        "{ns} {image}"
    );
}

#[test]
fn a_namespace_resolves_to_the_same_policy_each_time_and_says_what_applied() {
    let p = policy(OVERRIDES);
    assert!(matches!(p.in_namespace("web"), Scoped::Base(_)));
    let a = p.in_namespace("payments-eu");
    let b = p.in_namespace("payments-eu");
    match (&a, &b) {
        (Scoped::Overlaid(a), Scoped::Overlaid(b)) => assert!(Arc::ptr_eq(a, b)),
        _ => panic!("payments-eu has overrides"),
    }
    let lines: Vec<u32> = a.applied().iter().map(|x| x.pos.line).collect();
    assert_eq!(lines, [11, 14]);
    assert_eq!(a.level(RuleId::DigestMissing), Level::Off);
    assert_eq!(
        p.in_namespace("payments").level(RuleId::DigestMissing),
        Level::Deny
    );
    assert_eq!(p.level(RuleId::DigestMissing), Level::Off);
}

#[test]
fn an_override_adds_registries_for_its_namespaces_only() {
    let p = policy(
        "  registries: [{prefix: r.example.org/shared/}]
  overrides:
    - namespaces: [ml]
      registries: [{prefix: \"*.azurecr.io/\"}]
",
    );
    let image = format!("team.azurecr.io/model:1@{D}");
    assert_eq!(failures_in(&p, &image, "ml"), Vec::<RuleId>::new());
    assert_eq!(
        failures_in(&p, &image, "web"),
        [RuleId::RegistryNotApproved]
    );
    // Contacting the registry is approved (some namespace may use it); the verdict is not.
    let r: ImageRef = image.parse().unwrap();
    assert!(p.approved_registry(&r).is_none());
    assert!(p.contactable_registry(&r).is_some());
}

#[rstest]
#[case::lower_a_locked_level(
    "      rules: {tag-latest: warn}\n",
    Some(9),
    "rule tag-latest is locked cluster-wide (spec.locked): an override may tighten it but not lower it from deny to warn"
)]
#[case::approve_a_registry_when_locked(
    "      registries: [{prefix: docker.io/library/}]\n",
    Some(9),
    "registry-not-approved is locked cluster-wide"
)]
#[case::exempt_every_rule(
    "      exemptions: [{images: [\"docker.io/library/*\"], reason: x}]\n",
    Some(9),
    "this exemption would cover registry-not-approved, tag-latest, locked cluster-wide"
)]
#[case::exempt_a_locked_rule(
    "      exemptions: [{images: [\"docker.io/library/*\"], rules: [tag-latest], reason: x}]\n",
    Some(9),
    "would cover tag-latest"
)]
#[case::unknown_rule(
    "      rules: {tag-lates: deny}\n",
    Some(9),
    "did you mean \"tag-latest\""
)]
fn overrides_cannot_loosen_what_is_locked(
    #[case] body: &str,
    #[case] line: Option<u32>,
    #[case] message: &str,
) {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  locked: [registry-not-approved, tag-latest]\n  registries: [{{prefix: r.example.org/}}]\n  overrides:\n    - namespaces: [team]\n{body}"
    );
    let got = problems(&text);
    assert!(
        got.iter()
            .any(|(l, m)| m.contains(message) && (line.is_none() || *l == line)),
        "{message}\n{got:#?}"
    );
}

#[test]
fn an_override_may_tighten_a_locked_rule_and_loosen_an_unlocked_one() {
    let p = policy(
        "  locked: [digest-missing]
  registries: [{prefix: r.example.org/}]
  overrides:
    - namespaces: [team]
      rules: {digest-missing: deny, tag-latest: warn}
",
    );
    let team = p.in_namespace("team");
    assert_eq!(team.level(RuleId::DigestMissing), Level::Deny);
    assert_eq!(team.level(RuleId::TagLatest), Level::Warn);
}

#[test]
fn an_override_needs_namespaces() {
    let text = "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  registries: [{prefix: r.example.org/}]\n  overrides:\n    - rules: {tag-latest: warn}\n";
    let got = problems(text);
    assert!(
        got.iter()
            .any(|(l, m)| *l == Some(7) && m.contains("an override needs `namespaces`")),
        "{got:#?}"
    );
}

fn pem_key() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .public_key_pem()
}

/// `key` indented as a YAML block scalar under `publicKey: |`.
fn block(key: &str) -> String {
    key.lines().map(|l| format!("            {l}\n")).collect()
}

#[test]
fn signature_rules_are_read_and_matched_segment_safely() {
    let p = policy(&format!(
        "  registries: [{{prefix: r.example.org/}}]
  signatures:
    - images: [\"r.example.org/payments/**\"]
      threshold: 1
      level: warn
      registryUnavailable: deny
      keys:
        - name: release-pipeline
          publicKey: |
{}",
        block(&pem_key())
    ));
    let rules: Vec<_> = p
        .signature_rules_for("r.example.org/payments/api")
        .collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].signers[0].name, "release-pipeline");
    assert_eq!(
        (rules[0].level, rules[0].on_unavailable),
        (Level::Warn, OnUnavailable::Deny)
    );
    assert_eq!(
        p.signature_rules_for("r.example.org/paymentsx/api").count(),
        0
    );
}

#[rstest]
#[case::no_images("    - keys: [{name: a, publicKey: x}]\n", "needs `images`")]
#[case::no_keys(
    "    - images: [\"r.example.org/**\"]\n",
    "needs `keys`, `keyless` or `notation`"
)]
#[case::not_a_key(
    "    - images: [\"r.example.org/**\"]\n      keys: [{name: a, publicKey: \"ssh-ed25519 AAAA\"}]\n",
    "key \"a\": not a PEM public key"
)]
#[case::no_name(
    "    - images: [\"r.example.org/**\"]\n      keys: [{publicKey: x}]\n",
    "a key needs a `name`"
)]
#[case::threshold_too_high(&format!("    - images: [\"r.example.org/**\"]\n      threshold: 2\n      keys:\n        - name: a\n          publicKey: |\n{}", block(&pem_key())), "threshold 2 must be between 1 and the number of signers (1)")]
#[case::bad_level(&format!("    - images: [\"r.example.org/**\"]\n      level: off\n      keys:\n        - name: a\n          publicKey: |\n{}", block(&pem_key())), "is not one of deny, warn, audit")]
fn signature_rules_are_validated(#[case] entry: &str, #[case] message: &str) {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org/}}]\n  signatures:\n{entry}"
    );
    let got = problems(&text);
    assert!(
        got.iter().any(|(_, m)| m.contains(message)),
        "{message}\n{got:#?}"
    );
}

#[test]
fn the_same_key_under_two_names_is_refused() {
    let key = pem_key();
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org/}}]\n  signatures:\n    - images: [\"r.example.org/**\"]\n      threshold: 2\n      keys:\n        - name: a\n          publicKey: |\n{k}        - name: b\n          publicKey: |\n{k}",
        k = block(&key)
    );
    let got = problems(&text);
    assert!(
        got.iter()
            .any(|(_, m)| m.contains("\"b\" is the same key as \"a\"")),
        "{got:#?}"
    );
}

#[test]
fn an_overrides_registry_cannot_rename_images_with_aliases() {
    let text = "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  registries: [{prefix: r.example.org/}]\n  overrides:\n    - namespaces: [team]\n      registries: [{prefix: mirror.example.org/, aliases: [ghcr.io]}]\n";
    let got = problems(text);
    assert!(
        got.iter()
            .any(|(l, m)| *l == Some(8) && m.contains("cannot have aliases")),
        "{got:#?}"
    );
}

#[test]
fn a_rule_an_override_turns_on_is_on_somewhere() {
    let p = policy(
        "  rules: {base-not-approved: 'off'}
  registries: [{prefix: r.example.org/}]
  overrides:
    - namespaces: [\"prod-*\"]
      rules: {base-not-approved: deny}
",
    );
    assert_eq!(p.level(RuleId::BaseNotApproved), Level::Off);
    assert_eq!(p.level_anywhere(RuleId::BaseNotApproved), Level::Deny);
    assert_eq!(
        p.in_namespace("prod-eu").level(RuleId::BaseNotApproved),
        Level::Deny
    );
}

/// A trusted root the keyless tests can name: one CA (its own certificate) and no log.
fn test_trusted_root() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    use base64::Engine as _;
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "certificateAuthorities": [{
            "uri": "https://fulcio.example",
            "certChain": {"certificates": [{"rawBytes": base64::engine::general_purpose::STANDARD.encode(cert.der())}]},
            "validFor": {"start": "2026-01-01T00:00:00Z"}
        }]
    })
    .to_string()
    .into_bytes()
}

fn keyless_problems(spec: &str, root: Option<Vec<u8>>) -> Vec<(Option<u32>, String)> {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org/}}]\n{spec}"
    );
    let read = |name: &str| match (&root, name) {
        (Some(r), "trusted_root.json") => Ok(r.clone()),
        _ => Err(format!("cannot read {name}: No such file or directory")),
    };
    match crate::policy::parse_policy_with(&text, "p.yaml", &read) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| (p.pos.map(|p| p.line), p.message))
            .collect(),
    }
}

const KEYLESS_RULE: &str = "  signatures:\n    - images: [\"r.example.org/**\"]\n      keyless:\n        - name: release\n";

#[rstest]
#[case::valid(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://token.actions.githubusercontent.com\n          subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main\n",
    None
)]
#[case::pattern(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://token.actions.githubusercontent.com\n          subjectRegExp: 'https://github\\.com/acme/.+'\n",
    None
)]
#[case::no_trusted_root(
    "",
    "          issuer: https://a.example\n          subject: s\n",
    Some("keyless signers need `spec.trustedRoot`")
)]
#[case::missing_file(
    "  trustedRoot: nowhere.json\n",
    "          issuer: https://a.example\n          subject: s\n",
    Some("trustedRoot \"nowhere.json\": cannot read nowhere.json")
)]
#[case::no_issuer(
    "  trustedRoot: trusted_root.json\n",
    "          subject: s\n",
    Some("needs `issuer` (exact) or `issuerRegExp`")
)]
#[case::both_forms(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://a.example\n          subject: s\n          subjectRegExp: s.*\n",
    Some("give subject or subjectRegExp, not both")
)]
#[case::bad_pattern(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://a.example\n          subjectRegExp: '(unclosed'\n",
    Some("subjectRegExp \"(unclosed\" is not a regular expression")
)]
#[case::ignoring_sct(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://a.example\n          subject: s\n          insecureIgnoreSCT: true\n",
    None
)]
#[case::ignoring_sct_not_a_boolean(
    "  trustedRoot: trusted_root.json\n",
    "          issuer: https://a.example\n          subject: s\n          insecureIgnoreSCT: sometimes\n",
    Some("expected a boolean")
)]
fn keyless_signers_are_validated(
    #[case] root_line: &str,
    #[case] signer: &str,
    #[case] message: Option<&str>,
) {
    let got = keyless_problems(
        &format!("{root_line}{KEYLESS_RULE}{signer}"),
        Some(test_trusted_root()),
    );
    match message {
        None => assert!(got.is_empty(), "{got:#?}"),
        Some(m) => assert!(
            got.iter()
                .any(|(line, text)| line.is_some() && text.contains(m)),
            "{m}\n{got:#?}"
        ),
    }
}

#[rstest]
#[case::not_json(b"{".to_vec(), "not a Sigstore trusted_root.json")]
#[case::other_media_type(br#"{"mediaType":"application/json"}"#.to_vec(), "mediaType \"application/json\" is not")]
#[case::empty(br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#.to_vec(), "names no certificate authority")]
#[case::bad_key(br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{"publicKey":{"rawBytes":"AAAA"},"logId":{"keyId":"AAAA"}}]}"#.to_vec(), "tlogs[0].publicKey")]
#[case::bad_ct_log_key(br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"ctlogs":[{"publicKey":{"rawBytes":"AAAA"},"logId":{"keyId":"AAAA"}}]}"#.to_vec(), "ctlogs[0].publicKey")]
fn broken_trusted_roots_say_why(#[case] root: Vec<u8>, #[case] message: &str) {
    let got = keyless_problems(
        &format!(
            "  trustedRoot: trusted_root.json\n{KEYLESS_RULE}          issuer: https://a.example\n          subject: s\n"
        ),
        Some(root),
    );
    assert!(
        got.iter()
            .any(|(line, text)| line.is_some() && text.contains(message)),
        "{message}\n{got:#?}"
    );
}

#[test]
fn a_policy_read_without_files_says_it_cannot_read_its_trusted_root() {
    let got = problems(&format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  trustedRoot: trusted_root.json\n  registries: [{{prefix: r.example.org/}}]\n{KEYLESS_RULE}          issuer: https://a.example\n          subject: s\n"
    ));
    assert!(
        got.iter()
            .any(|(_, m)| m.contains("was not loaded from a file")),
        "{got:#?}"
    );
}

const ATTESTING_RULE: &str = "  signatures:\n    - images: [\"r.example.org/**\"]\n      keyless:\n        - {name: ci, issuer: https://a.example, subject: s}\n      attestations:\n";

#[rstest]
#[case::slsa(
    "        - name: provenance\n          predicateType: https://slsa.dev/provenance/v1\n          builderId: https://github.com/actions/runner/github-hosted\n          sourceRepositoryRegExp: 'https://github\\.com/acme/.+'\n          sourceRefs: [refs/heads/main, 'refs/tags/v*']\n",
    None
)]
#[case::any_predicate(
    "        - name: sbom\n          predicateType: https://spdx.dev/Document\n",
    None
)]
#[case::no_name(
    "        - predicateType: https://spdx.dev/Document\n",
    Some("an attestation needs a `name`")
)]
#[case::no_type(
    "        - name: provenance\n",
    Some("an attestation needs `predicateType`")
)]
#[case::conditions_on_another_type(
    "        - name: sbom\n          predicateType: https://spdx.dev/Document\n          builderId: b\n",
    Some("they need `predicateType: https://slsa.dev/provenance/v1`")
)]
#[case::bad_ref_glob(
    "        - name: provenance\n          predicateType: https://slsa.dev/provenance/v1\n          sourceRefs: ['refs/tags/[v']\n",
    Some("sourceRefs pattern \"refs/tags/[v\" is not a glob")
)]
fn attestation_requirements_are_validated(#[case] entry: &str, #[case] message: Option<&str>) {
    let got = keyless_problems(
        &format!("  trustedRoot: trusted_root.json\n{ATTESTING_RULE}{entry}"),
        Some(test_trusted_root()),
    );
    match message {
        None => assert!(got.is_empty(), "{got:#?}"),
        Some(m) => assert!(
            got.iter()
                .any(|(line, text)| line.is_some() && text.contains(m)),
            "{m}\n{got:#?}"
        ),
    }
}

#[rstest]
#[case::zero_without_attestations(
    "      threshold: 0\n",
    "",
    Some(
        "threshold 0 must be between 1 and the number of signers (1) (0 is for rules that require attestations only)"
    )
)]
#[case::zero_with_attestations(
    "      threshold: 0\n",
    "      attestations:\n        - {name: sbom, predicateType: https://spdx.dev/Document}\n",
    None
)]
fn threshold_zero_is_for_attestation_only_rules(
    #[case] threshold: &str,
    #[case] attestations: &str,
    #[case] message: Option<&str>,
) {
    let got = keyless_problems(
        &format!(
            "  trustedRoot: trusted_root.json\n  signatures:\n    - images: [\"r.example.org/**\"]\n{threshold}      keyless:\n        - {{name: ci, issuer: https://a.example, subject: s}}\n{attestations}"
        ),
        Some(test_trusted_root()),
    );
    match message {
        None => assert!(got.is_empty(), "{got:#?}"),
        Some(m) => assert!(
            got.iter().any(|(_, text)| text.contains(m)),
            "{m}\n{got:#?}"
        ),
    }
}

/// A PEM root certificate for notation trust stores.
fn notation_root_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// A policy of one rule with the notation signer `signer` (its lines under `- name: release`),
/// `trust/root.pem` reading as `store`; the policy, or its problems with their lines.
fn notation_policy(
    signer: &str,
    store: &[u8],
) -> Result<crate::policy::Policy, Vec<(Option<u32>, String)>> {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  registries: [{{prefix: r.example.org/}}]\n  signatures:\n    - images: [\"r.example.org/**\"]\n      notation:\n        - name: release\n{signer}"
    );
    let read = |name: &str| match name {
        "trust/root.pem" => Ok(store.to_vec()),
        _ => Err(format!("cannot read {name}: No such file or directory")),
    };
    crate::policy::parse_policy_with(&text, "p.yaml", &read).map_err(|e| {
        e.problems
            .into_iter()
            .map(|p| (p.pos.map(|p| p.line), p.message))
            .collect()
    })
}

#[rstest]
#[case::valid(
    "          trustStore: trust/root.pem\n          identities: [\"x509.subject: C=US, ST=WA, O=acme, CN=release\"]\n",
    None
)]
#[case::any_identity(
    "          trustStore: trust/root.pem\n          identities: [\"*\"]\n",
    None
)]
#[case::no_trust_store(
    "          identities: [\"*\"]\n",
    Some("a notation signer needs `trustStore`")
)]
#[case::missing_trust_store(
    "          trustStore: trust/nowhere.pem\n          identities: [\"*\"]\n",
    Some("trustStore \"trust/nowhere.pem\": cannot read trust/nowhere.pem")
)]
#[case::no_identities(
    "          trustStore: trust/root.pem\n",
    Some("a notation signer needs `identities`")
)]
#[case::a_dn_without_state(
    "          trustStore: trust/root.pem\n          identities: [\"x509.subject: C=US, O=acme\"]\n",
    Some("must name C, ST and O at least; it has no ST")
)]
#[case::a_misspelt_kind(
    "          trustStore: trust/root.pem\n          identities: [\"x509.subjet: C=US, ST=WA, O=acme\"]\n",
    Some("did you mean x509.subject?")
)]
#[case::star_beside_names(
    "          trustStore: trust/root.pem\n          identities: [\"*\", \"x509.subject: C=US, ST=WA, O=acme\"]\n",
    Some("give it alone")
)]
#[case::a_misspelt_key(
    "          trustStor: trust/root.pem\n          identities: [\"*\"]\n",
    Some("did you mean \"trustStore\"?")
)]
fn notation_signers_are_validated(#[case] signer: &str, #[case] message: Option<&str>) {
    let got = notation_policy(signer, notation_root_pem().as_bytes());
    match (message, got) {
        (None, Ok(p)) => {
            assert_eq!(p.files(), ["trust/root.pem"]);
            assert!(matches!(
                p.signature_rules()[0].signers[0].trusted,
                crate::signature::Trusted::Notation(_)
            ));
        }
        (Some(m), Err(got)) => assert!(
            got.iter()
                .any(|(line, text)| line.is_some() && text.contains(m)),
            "{m}\n{got:#?}"
        ),
        (m, got) => panic!("{m:?}: {:?}", got.map(|_| "a policy")),
    }
}

#[test]
fn a_notation_trust_store_that_is_no_pem_says_so_at_its_line() {
    let got = notation_policy(
        "          trustStore: trust/root.pem\n          identities: [\"*\"]\n",
        b"hello",
    )
    .err()
    .unwrap();
    assert!(
        got.iter().any(
            |(line, m)| *line == Some(10) && m.contains("no -----BEGIN CERTIFICATE----- block")
        ),
        "{got:#?}"
    );
}

#[test]
fn a_rules_fingerprint_changes_with_its_notation_trust_store() {
    let signer = "          trustStore: trust/root.pem\n          identities: [\"*\"]\n";
    let a = notation_policy(signer, notation_root_pem().as_bytes()).unwrap();
    let b = notation_policy(signer, notation_root_pem().as_bytes()).unwrap();
    assert_ne!(
        a.signature_rules()[0].fingerprint,
        b.signature_rules()[0].fingerprint
    );
}
