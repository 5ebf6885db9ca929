use super::*;
use proptest::prelude::*;
use rstest::rstest;

const IPV6_HEX_ONLY: &str = "an IPv6 address in brackets may contain only hex digits and ':' (no embedded IPv4 address, no zone id)";

const D256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[rstest]
#[case::official_image("nginx", "docker.io", "library/nginx", None, false)]
#[case::official_with_tag("nginx:1.25", "docker.io", "library/nginx", Some("1.25"), false)]
#[case::hub_user_repo("bitnami/redis:7", "docker.io", "bitnami/redis", Some("7"), false)]
#[case::legacy_hub_alias("index.docker.io/nginx", "docker.io", "library/nginx", None, false)]
#[case::explicit_hub(
    "docker.io/library/nginx:latest",
    "docker.io",
    "library/nginx",
    Some("latest"),
    false
)]
#[case::wikimedia(
    "docker-registry.wikimedia.org/wikimedia/mediawiki:2024-01-01-1",
    "docker-registry.wikimedia.org",
    "wikimedia/mediawiki",
    Some("2024-01-01-1"),
    false
)]
#[case::host_with_port(
    "registry.example.org:5000/team/app:v1",
    "registry.example.org:5000",
    "team/app",
    Some("v1"),
    false
)]
// distribution's port-number is `[0-9]+`, without a range: docker accepts these (and then
// fails to connect to the first two), so refusing them would be a verdict docker does not
// share. The digits are kept as written.
#[case::port_past_u16("example.org:99999/app", "example.org:99999", "app", None, false)]
#[case::port_zero("example.org:0/app", "example.org:0", "app", None, false)]
#[case::port_leading_zero("example.org:05000/app", "example.org:05000", "app", None, false)]
// Docker Hub is recognised by its exact spelling, as distribution does: these are other
// hosts, and a one-component path on them gains no `library/`.
#[case::hub_spelled_in_uppercase_is_another_host(
    "Docker.io/nginx",
    "Docker.io",
    "nginx",
    None,
    false
)]
#[case::legacy_hub_in_uppercase_is_another_host(
    "INDEX.DOCKER.IO/nginx",
    "INDEX.DOCKER.IO",
    "nginx",
    None,
    false
)]
#[case::hub_with_port_is_another_host("docker.io:443/nginx", "docker.io:443", "nginx", None, false)]
#[case::localhost("localhost/app", "localhost", "app", None, false)]
#[case::localhost_port("localhost:5000/app:1", "localhost:5000", "app", Some("1"), false)]
#[case::ipv4("10.0.0.1:5000/app", "10.0.0.1:5000", "app", None, false)]
#[case::ipv6_port("[::1]:5000/app:1", "[::1]:5000", "app", Some("1"), false)]
#[case::ipv6_no_port("[2001:db8::1]/app", "[2001:db8::1]", "app", None, false)]
#[case::ipv6_full_form(
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "[fc00:1:2:3:4:5:6:7]:5000",
    "library/debian",
    None,
    false
)]
// distribution checks the characters, not the groups: this is not an address, and docker
// accepts it as written (and then fails to connect), so it parses here too.
#[case::ipv6_groups_unchecked("[1:2:3:4:5:6:7:8:9]/x", "[1:2:3:4:5:6:7:8:9]", "x", None, false)]
#[case::ipv6_uppercase_hex("[FC00::1]:5000/x", "[FC00::1]:5000", "x", None, false)]
// An uppercase first component is a registry whatever else it holds, in distribution too.
#[case::brackets_with_uppercase_are_a_registry("[ABC]/x", "[ABC]", "x", None, false)]
#[case::uppercase_host_is_registry(
    "Registry.Example.org/app",
    "Registry.Example.org",
    "app",
    None,
    false
)]
#[case::digest_only(
    "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "docker.io",
    "library/nginx",
    None,
    true
)]
#[case::tag_and_digest(
    "docker-registry.wikimedia.org/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "docker-registry.wikimedia.org",
    "app",
    Some("1.0"),
    true
)]
#[case::separators(
    "example.org/a.b_c__d-e---f/g:tag",
    "example.org",
    "a.b_c__d-e---f/g",
    Some("tag"),
    false
)]
#[case::long_host_is_not_counted(
    &format!("example.com/{}", "a".repeat(255)),
    "example.com",
    &*"a".repeat(255),
    None,
    false
)]
#[case::hub_name_normalised_to_exactly_255(
    &"a".repeat(247),
    "docker.io",
    &*format!("library/{}", "a".repeat(247)),
    None,
    false
)]
#[case::hub_name_of_238_normalises_to_246(
    include_str!("../../fuzz/regressions/reference/hub-name-normalised-past-255"),
    "docker.io",
    &*format!("library/{}", "a".repeat(238)),
    None,
    false
)]
#[case::max_tag_len(&format!("app:{}", "a".repeat(128)), "docker.io", "library/app", Some(&*"a".repeat(128)), false)]
fn parses_valid_references(
    #[case] input: &str,
    #[case] registry: &str,
    #[case] repository: &str,
    #[case] tag: Option<&str>,
    #[case] has_digest: bool,
) {
    let r: ImageRef = input.parse().unwrap();
    assert_eq!(r.registry().to_string(), registry);
    assert_eq!(r.repository().as_str(), repository);
    assert_eq!(r.tag().map(Tag::as_str), tag);
    assert_eq!(r.digest().is_some(), has_digest);
}

#[rstest]
#[case::empty("", ReferenceError::Empty)]
#[case::whitespace(" nginx", ReferenceError::Whitespace)]
#[case::inner_space("ng inx", ReferenceError::InvalidCharacter { ch: ' ', position: 2 })]
#[case::uppercase_repo("docker-registry.wikimedia.org/Foo", ReferenceError::Uppercase { component: "Foo".into() })]
#[case::uppercase_hub_repo("library/Nginx", ReferenceError::Uppercase { component: "Nginx".into() })]
// distribution checks the path's case before the rest of the reference.
#[case::uppercase_before_path_grammar("example.org/a.-b/Foo", ReferenceError::Uppercase { component: "Foo".into() })]
#[case::uppercase_before_host("Bad_Host/Foo", ReferenceError::Uppercase { component: "Foo".into() })]
#[case::uppercase_before_digest("Nginx@md5:x", ReferenceError::Uppercase { component: "Nginx".into() })]
#[case::uppercase_before_tag("nginX:.bad", ReferenceError::Uppercase { component: "nginX".into() })]
#[case::double_slash("example.org//app", ReferenceError::EmptyPathComponent { index: 0 })]
#[case::trailing_slash("example.org/app/", ReferenceError::EmptyPathComponent { index: 1 })]
#[case::leading_separator("example.org/-app", ReferenceError::InvalidPathComponent { component: "-app".into() })]
#[case::triple_underscore("example.org/a___b", ReferenceError::InvalidPathComponent { component: "a___b".into() })]
#[case::dot_dash("example.org/a.-b", ReferenceError::InvalidPathComponent { component: "a.-b".into() })]
#[case::tag_too_long(&format!("app:{}", "a".repeat(129)), ReferenceError::TagTooLong { len: 129 })]
#[case::tag_leading_dot("app:.x", ReferenceError::InvalidTag { tag: ".x".into() })]
#[case::empty_tag("app:", ReferenceError::EmptyTag)]
#[case::port_not_digits("example.org:http/app", ReferenceError::InvalidPort { port: "http".into() })]
#[case::port_empty("example.org:/app", ReferenceError::InvalidPort { port: "".into() })]
#[case::port_signed("example.org:+5000/app", ReferenceError::InvalidPort { port: "+5000".into() })]
#[case::trailing_dot_host("docker-registry.wikimedia.org./x", ReferenceError::InvalidHost { host: "docker-registry.wikimedia.org.".into(), reason: "it has an empty label (a leading, trailing or doubled '.')" })]
#[case::bad_ipv6("[::g]:5000/app", ReferenceError::InvalidHost { host: "[::g]".into(), reason: IPV6_HEX_ONLY })]
#[case::ipv6_embedding_ipv4("[2001:db8:3:4::192.0.2.33]:5000/x", ReferenceError::InvalidHost { host: "[2001:db8:3:4::192.0.2.33]".into(), reason: IPV6_HEX_ONLY })]
#[case::ipv6_mapping_ipv4("[::ffff:1.2.3.4]/x", ReferenceError::InvalidHost { host: "[::ffff:1.2.3.4]".into(), reason: IPV6_HEX_ONLY })]
#[case::ipv6_zone_id("[fe80::1%eth0]:5000/x", ReferenceError::InvalidHost { host: "[fe80::1%eth0]".into(), reason: IPV6_HEX_ONLY })]
#[case::ipv6_empty_brackets("[]:5000/x", ReferenceError::InvalidHost { host: "[]".into(), reason: IPV6_HEX_ONLY })]
#[case::ipv6_without_a_path("[fc00::1]:5000", ReferenceError::InvalidPathComponent { component: "[fc00::1]".into() })]
#[case::brackets_without_colon_are_a_hub_path("[abc]/x", ReferenceError::InvalidPathComponent { component: "[abc]".into() })]
#[case::hex_name("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ReferenceError::HexRepository { name: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into() })]
#[case::path_past_255_on_any_host(&format!("example.org/{}", "a".repeat(256)), ReferenceError::RepositoryTooLong { len: 256 })]
#[case::hub_name_normalised_past_255(&"a".repeat(248), ReferenceError::RepositoryTooLong { len: 256 })]
#[case::hub_name_normalised_to_258(&"a".repeat(250), ReferenceError::RepositoryTooLong { len: 258 })]
#[case::explicit_hub_name_normalised_past_255(&format!("docker.io/{}", "a".repeat(248)), ReferenceError::RepositoryTooLong { len: 256 })]
#[case::hub_name_normalised_past_255_found(include_str!("../../fuzz/regressions/reference/hub-name-normalised-past-255-found"), ReferenceError::RepositoryTooLong { len: 259 })]
#[case::short_sha256("app@sha256:abc", ReferenceError::Digest(digest::DigestError::Length { algorithm: DigestAlgorithm::Sha256, expected: 64, actual: 3 }))]
#[case::sha512_with_sha256_length(&format!("app@sha512:{}", "a".repeat(64)), ReferenceError::Digest(digest::DigestError::Length { algorithm: DigestAlgorithm::Sha512, expected: 128, actual: 64 }))]
#[case::uppercase_hex(&format!("app@sha256:{}", "A".repeat(64)), ReferenceError::Digest(digest::DigestError::NotHex { ch: 'A' }))]
#[case::unknown_algorithm(&format!("app@md5:{}", "a".repeat(32)), ReferenceError::Digest(digest::DigestError::UnsupportedAlgorithm { algorithm: "md5".into() }))]
#[case::digest_without_colon("app@sha256", ReferenceError::Digest(digest::DigestError::MissingSeparator { digest: "sha256".into() }))]
#[case::only_tag(":latest", ReferenceError::EmptyRepository)]
// distribution's Parse, when the first component fails the domain grammar, matches the whole
// name as a path with no registry at all; tollgate has no such reference and refuses it.
#[case::domain_like_first_component_with_underscore("a_b.com/x", ReferenceError::InvalidHost { host: "a_b.com".into(), reason: "a label may contain only letters, digits and '-'" })]
fn rejects_invalid_references_with_precise_reason(
    #[case] input: &str,
    #[case] expected: ReferenceError,
) {
    assert_eq!(input.parse::<ImageRef>().unwrap_err(), expected);
}

/// Look-alike registries must not be mistaken for the approved one: the host is compared
/// whole, so these parse to hosts other than docker-registry.wikimedia.org.
#[rstest]
#[case::suffix_domain(
    "docker-registry.wikimedia.org.evil.com/x",
    "docker-registry.wikimedia.org.evil.com"
)]
#[case::dash_suffix("docker-registry.wikimedia.org-x/y", "docker-registry.wikimedia.org-x")]
#[case::port_differs(
    "docker-registry.wikimedia.org:8443/x",
    "docker-registry.wikimedia.org:8443"
)]
#[case::userinfo_is_not_a_host_part("evil.com/docker-registry.wikimedia.org/x", "evil.com")]
fn look_alike_hosts_parse_as_their_real_host(#[case] input: &str, #[case] host: &str) {
    let r: ImageRef = input.parse().unwrap();
    assert_eq!(r.registry().to_string(), host);
}

#[test]
fn hosts_compare_case_insensitively_but_print_as_written() {
    let upper: ImageRef = "Registry.Example.org/app".parse().unwrap();
    let lower: ImageRef = "registry.example.org/app".parse().unwrap();
    assert_eq!(upper.registry(), lower.registry());
    assert_eq!(upper.registry().host(), "registry.example.org");
    // Printing it lowercased would turn a registry into a Docker Hub path on re-parse.
    let single: ImageRef = "A/b".parse().unwrap();
    assert_eq!(single.to_string().parse::<ImageRef>().unwrap(), single);
}

#[test]
fn hub_spelled_otherwise_is_not_docker_hub() {
    // A policy that approves Docker Hub must not approve a pull from the host `Docker.io`.
    let hub: ImageRef = "docker.io/library/nginx".parse().unwrap();
    let other: ImageRef = "Docker.io/library/nginx".parse().unwrap();
    assert!(hub.registry().is_docker_hub());
    assert!(!other.registry().is_docker_hub());
    assert_ne!(hub.registry(), other.registry());
    assert_ne!(hub, other);
    assert_eq!(other.familiar(), "Docker.io/library/nginx");
}

#[test]
fn ports_compare_as_written() {
    // docker and containerd look up a registry's hosts.toml and credentials by the domain as
    // written, so a policy on `:5000` must not approve `:05000`.
    let short: ImageRef = "example.org:5000/app".parse().unwrap();
    let padded: ImageRef = "example.org:05000/app".parse().unwrap();
    assert_ne!(short.registry(), padded.registry());
    assert_eq!(padded.registry().port(), Some("05000"));
    assert_eq!(padded.registry().canonical(), "example.org:05000");
}

#[test]
fn userinfo_in_reference_is_invalid() {
    // `user@host/x` would be a URL trick; in a reference '@' starts a digest.
    assert!(
        "docker-registry.wikimedia.org@evil.com/x"
            .parse::<ImageRef>()
            .is_err()
    );
}

#[rstest]
#[case::official("nginx:1.25", "nginx:1.25", "docker.io/library/nginx:1.25")]
#[case::hub_user("bitnami/redis", "bitnami/redis", "docker.io/bitnami/redis")]
#[case::hub_nested_library("library/a/b", "library/a/b", "docker.io/library/a/b")]
#[case::other_registry("quay.io/org/app:1", "quay.io/org/app:1", "quay.io/org/app:1")]
#[case::digest(&format!("app:1@{D256}"), &format!("app:1@{D256}"), &format!("docker.io/library/app:1@{D256}"))]
// Where distribution's FamiliarString would name something else, the familiar form is the
// fully-qualified one.
#[case::hub_path_starting_with_a_domain_keeps_docker_io(
    "docker.io/foo.com/app",
    "docker.io/foo.com/app",
    "docker.io/foo.com/app"
)]
#[case::hub_path_starting_with_localhost_keeps_docker_io(
    "docker.io/localhost/app:1",
    "docker.io/localhost/app:1",
    "docker.io/localhost/app:1"
)]
#[case::hub_path_starting_with_the_legacy_hub_keeps_docker_io(
    "docker.io/index.docker.io/app",
    "docker.io/index.docker.io/app",
    "docker.io/index.docker.io/app"
)]
#[case::familiar_form_is_an_image_id(
    include_str!("../../fuzz/regressions/reference/familiar-form-is-an-image-id"),
    "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)]
#[case::explicit_hub_hex_name(
    "docker.io/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)]
// With a tag the string is no longer an image id, and the short form reads back.
#[case::hex_name_with_tag(
    "library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:1",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:1",
    "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:1"
)]
// A single component after library/ is a Docker Hub path again, whatever it looks like.
#[case::library_domain_like_name(
    "docker.io/library/foo.com",
    "foo.com",
    "docker.io/library/foo.com"
)]
#[case::hub_path_with_underscore_first("foo_bar/app", "foo_bar/app", "docker.io/foo_bar/app")]
fn familiar_and_fully_qualified_forms(
    #[case] input: &str,
    #[case] familiar: &str,
    #[case] full: &str,
) {
    let r: ImageRef = input.parse().unwrap();
    assert_eq!(r.familiar(), familiar);
    assert_eq!(r.to_string(), full);
    assert_eq!(
        familiar.parse::<ImageRef>().unwrap(),
        r,
        "the familiar form reads back"
    );
}

/// `docker.io/foo:5000/app` is not a reference at all (a path component has no ':'), so it
/// has no familiar form to get wrong.
#[test]
fn hub_path_with_a_port_does_not_parse() {
    assert_eq!(
        "docker.io/foo:5000/app".parse::<ImageRef>().unwrap_err(),
        ReferenceError::InvalidPathComponent {
            component: "foo:5000".into()
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics_on_any_string(s in "\\PC*") {
        let _ = s.parse::<ImageRef>();
    }

    #[test]
    fn parser_never_panics_on_reference_shaped_strings(s in "[a-zA-Z0-9.:/@_\\[\\]-]{0,80}") {
        let _ = s.parse::<ImageRef>();
    }

    #[test]
    fn printed_reference_parses_to_the_same_reference(
        host in prop::option::of("[a-z][a-z0-9-]{0,10}[a-z0-9]\\.[a-z]{2,5}(:[1-9][0-9]{0,3})?"),
        path in "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}(/[a-z0-9]{1,8}){0,3}",
        tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        digest in prop::option::of("[0-9a-f]{64}"),
    ) {
        let mut s = match host { Some(h) => format!("{h}/{path}"), None => path };
        if let Some(t) = tag { s.push(':'); s.push_str(&t); }
        if let Some(d) = digest { s.push_str("@sha256:"); s.push_str(&d); }
        if let Ok(first) = s.parse::<ImageRef>() {
            let again: ImageRef = first.to_string().parse().unwrap();
            prop_assert_eq!(&again, &first);
            let familiar: ImageRef = first.familiar().parse().unwrap();
            prop_assert_eq!(familiar, first);
        }
    }

    #[test]
    fn any_parsed_reference_round_trips(s in "[a-zA-Z0-9.:/@_\\[\\]-]{0,80}") {
        if let Ok(first) = s.parse::<ImageRef>() {
            let again: ImageRef = first.to_string().parse().unwrap();
            prop_assert_eq!(&again, &first);
            let familiar: ImageRef = first.familiar().parse().unwrap();
            prop_assert_eq!(familiar, first);
        }
    }

    /// Docker Hub paths whose first component looks like a registry, and hex names: the two
    /// kinds whose distribution familiar form names something else.
    #[test]
    fn familiar_form_reads_back_on_docker_hub(
        first in "(localhost|[a-z0-9]{1,6}(\\.[a-z0-9]{1,6}){0,2}|[0-9a-f]{64})",
        rest in prop::option::of("[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}"),
        library in any::<bool>(),
        tag in prop::option::of("[a-z0-9]{1,4}"),
    ) {
        let mut s = String::from("docker.io/");
        if library { s.push_str("library/"); }
        s.push_str(&first);
        if let Some(r) = rest { s.push('/'); s.push_str(&r); }
        if let Some(t) = tag { s.push(':'); s.push_str(&t); }
        if let Ok(parsed) = s.parse::<ImageRef>() {
            let familiar = parsed.familiar();
            let back: ImageRef = familiar.parse().unwrap();
            prop_assert_eq!(back, parsed, "{} familiar as {}", s, familiar);
        }
    }
}

/// `is_canonical` says exactly what comparing with `canonical()` says, without the string.
#[rstest]
#[case::plain("Registry.Example.Org/app", "registry.example.org", true)]
#[case::as_written_is_not_canonical("Registry.Example.Org/app", "Registry.Example.Org", false)]
#[case::port("example.org:5000/app", "example.org:5000", true)]
#[case::padded_port_is_another_host("example.org:05000/app", "example.org:5000", false)]
#[case::port_missing("example.org:5000/app", "example.org", false)]
#[case::port_not_named("example.org/app", "example.org:5000", false)]
#[case::longer_host("example.org/app", "example.org.evil", false)]
#[case::no_colon("example.org:5000/app", "example.org5000", false)]
#[case::ipv6("[::1]:5000/app", "[::1]:5000", true)]
fn is_canonical_agrees_with_canonical(#[case] image: &str, #[case] name: &str, #[case] same: bool) {
    let host = image.parse::<ImageRef>().unwrap().registry().clone();
    assert_eq!(host.is_canonical(name), same);
    assert_eq!(host.canonical() == name, same);
}
