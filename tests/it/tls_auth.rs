//! Real HTTPS through rustls and real credentials: the registry serves TLS with a certificate
//! from a CA made at test time, and asks for basic credentials (htpasswd); tollgate reads the CA
//! bundle and a docker config.json, and never prints the password.

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::support;
use crate::support::oci::{Pusher, layer};
use crate::support::registry::{Security, TestRegistry};
use crate::support::run;

pub(crate) const USER: &str = "robot";
pub(crate) const PASSWORD: &str = "s3cret-registry-passw0rd";

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A CA and a serving certificate for 127.0.0.1, made now (no key is committed).
pub(crate) fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A registry serving HTTPS with a certificate from `pki()`'s CA and asking for USER/PASSWORD,
/// holding `team/app:1.0`.
pub(crate) async fn secured_registry_with_image() -> (Pki, TestRegistry) {
    let pki = pki();
    let htpasswd = format!("{USER}:{}\n", bcrypt::hash(PASSWORD, 4).unwrap());
    let reg = TestRegistry::start_with(Security {
        tls: Some((pki.cert_pem.clone(), pki.key_pem.clone())),
        htpasswd: Some(htpasswd),
    });
    let p = Pusher::secured(reg.base_url(), &pki.ca_pem, USER, PASSWORD);
    p.image(
        "team/app",
        Some("1.0"),
        &[layer(&[("a", b"1")])],
        "linux/amd64",
    )
    .await;
    (pki, reg)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_over_https_with_a_ca_bundle_and_basic_credentials_and_never_prints_them() {
    let (pki, reg) = secured_registry_with_image().await;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let config = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let (policy, ca, config) = (
        policy.to_str().unwrap(),
        ca.to_str().unwrap(),
        config.to_str().unwrap(),
    );
    let image = format!("{}/team/app:1.0", reg.host());

    // Everything right: pullable. With trace logs on, the secret still appears nowhere.
    let mut cmd = support::tollgate(&[
        "verify",
        "--policy",
        policy,
        "--ca-file",
        ca,
        "--registry-config",
        config,
        &image,
    ]);
    let out = cmd
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("{image}: pullable")),
        "{stdout}"
    );
    for secret in [PASSWORD, auth.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a credential was printed"
        );
    }

    // No CA bundle: the registry's certificate is not trusted, and that is a runtime error.
    let r = run(&[
        "verify",
        "--policy",
        policy,
        "--registry-config",
        config,
        &image,
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.contains("error: cannot reach https://"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.to_lowercase().contains("certificate"),
        "{}",
        r.stdout
    );

    // No credentials: refused, and the message says what to do.
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let r = run(&[
        "verify",
        "--policy",
        policy,
        "--ca-file",
        ca,
        "--registry-config",
        empty.to_str().unwrap(),
        &image,
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "registry {} refused access (HTTP 401); add credentials",
            reg.host()
        )),
        "{}",
        r.stdout
    );

    // Wrong password: refused too, and the wrong password is not printed either.
    let bad = dir.path().join("bad.json");
    let wrong =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong-passw0rd-xyz"));
    std::fs::write(
        &bad,
        format!(r#"{{"auths":{{"{}":{{"auth":"{wrong}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let r = run(&[
        "verify",
        "--policy",
        policy,
        "--ca-file",
        ca,
        "--registry-config",
        bad.to_str().unwrap(),
        &image,
    ]);
    assert_eq!(r.code, 2);
    assert!(!r.stdout.contains("wrong-passw0rd-xyz") && !r.stderr.contains("wrong-passw0rd-xyz"));
}

/// Credential helpers (`credsStore`, `credHelpers`) are asked for the approved registry only.
#[tokio::test(flavor = "multi_thread")]
async fn credential_helpers_are_asked_about_approved_registries_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let (pki, reg) = secured_registry_with_image().await;

    let dir = tempfile::tempdir().unwrap();
    let asked = dir.path().join("asked.log");
    let helper = dir.path().join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread host\necho \"$1 $host\" >> {}\nif [ \"$host\" = \"{}\" ]; then printf '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
            asked.display(),
            reg.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"credsStore":"fake","credHelpers":{"other.example.org":"fake"}}"#,
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, reg.policy("")).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();

    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let image = format!("{}/team/app:1.0", reg.host());
    let out = support::tollgate(&[
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        "--ca-file",
        ca.to_str().unwrap(),
        "--registry-config",
        config.to_str().unwrap(),
        &image,
        "other.example.org/x:1",
    ])
    .env("PATH", path)
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{image}: pullable")),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("other.example.org/x:1: refused"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD));
    let log = std::fs::read_to_string(&asked).unwrap();
    assert_eq!(
        log,
        format!("get {}\n", reg.host()),
        "only the approved registry was named to the helper"
    );
}
