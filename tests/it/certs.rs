//! `tollgate certs generate` through the real binary; the certificates it writes are checked the
//! way the API server uses them: a TLS client that trusts only ca.crt completes a real handshake
//! with a server presenting tls.crt, for the Service's names and for no other.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rstest::rstest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::support;
use crate::support::run;

const SERVICE: &str = "tollgate";
const NAMESPACE: &str = "tollgate-system";
const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// The provider is named, never left to whichever one the process happens to install.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Run `certs generate` for SERVICE.NAMESPACE into `dir`, with `extra` arguments.
fn generate(dir: &Path, extra: &[&str]) -> support::Run {
    let out = dir.to_str().unwrap();
    let mut args = vec![
        "certs",
        "generate",
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = generate(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    dir
}

fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn roots(ca: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(cert(ca)).unwrap();
    Arc::new(roots)
}

/// A real TLS handshake over loopback TCP: a server presenting `server_dir`'s tls.crt/tls.key,
/// a client trusting only `ca` and dialling `name`. Returns the client's verdict.
async fn handshake(
    server_dir: &Path,
    ca: &Path,
    name: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), rustls::Error> {
    let chain = vec![cert(&server_dir.join("tls.crt"))];
    let key = PrivateKeyDer::from_pem_file(server_dir.join("tls.key")).unwrap();
    let server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("tls.key matches tls.crt");
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let serve = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // The client's rejection shows up here as an alert; the client's side is what counts.
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let _ = tls.write_all(b"ok").await;
            let _ = tls.shutdown().await;
        }
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let result = match TlsConnector::from(Arc::new(client))
        .connect(server_name, tcp)
        .await
    {
        Ok(mut tls) => {
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"ok");
            Ok(())
        }
        Err(e) => Err(e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .unwrap_or_else(|| panic!("not a TLS error: {e}"))
            .clone()),
    };
    serve.await.unwrap();
    result
}

fn is_wrong_name(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

#[rstest]
#[case::svc_tls13("tollgate.tollgate-system.svc", &rustls::version::TLS13)]
#[case::svc_tls12("tollgate.tollgate-system.svc", &rustls::version::TLS12)]
#[case::cluster_local("tollgate.tollgate-system.svc.cluster.local", &rustls::version::TLS13)]
#[case::service_dot_namespace("tollgate.tollgate-system", &rustls::version::TLS13)]
#[case::bare_service("tollgate", &rustls::version::TLS13)]
#[tokio::test(flavor = "multi_thread")]
async fn a_client_trusting_ca_crt_accepts_tls_crt_for_the_service_names(
    #[case] name: &str,
    #[case] version: &'static rustls::SupportedProtocolVersion,
) {
    let dir = generated();
    let ca = dir.path().join("ca.crt");
    handshake(dir.path(), &ca, name, version).await.unwrap();
}

#[rstest]
#[case::another_service("other.tollgate-system.svc")]
#[case::another_namespace("tollgate.default.svc")]
#[case::a_subdomain("x.tollgate.tollgate-system.svc")]
#[case::truncated_cluster_domain("tollgate.tollgate-system.svc.cluster")]
#[case::localhost("localhost")]
#[tokio::test(flavor = "multi_thread")]
async fn another_name_is_rejected(#[case] name: &str) {
    let dir = generated();
    let ca = dir.path().join("ca.crt");
    let e = handshake(dir.path(), &ca, name, &rustls::version::TLS13)
        .await
        .unwrap_err();
    assert!(is_wrong_name(&e), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_makes_a_new_ca_that_does_not_trust_the_other_runs_certificates() {
    let first = generated();
    let second = generated();
    assert_ne!(
        fs::read(first.path().join("ca.crt")).unwrap(),
        fs::read(second.path().join("ca.crt")).unwrap()
    );
    let e = handshake(
        first.path(),
        &second.path().join("ca.crt"),
        "tollgate.tollgate-system.svc",
        &rustls::version::TLS13,
    )
    .await
    .unwrap_err();
    // Both CAs have the same subject, so the verifier finds the other CA and its signature
    // check fails; with another subject it would be UnknownIssuer. Either is a rejection.
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::BadSignature | CertificateError::UnknownIssuer
            )
        ),
        "{e:?}"
    );
}

/// The serving certificate's validity, checked by the verifier at chosen instants (no clock
/// is read besides the one `generate` reads; the margins are a day wide).
#[rstest]
#[case::a_day_before_it_ends(30, 29, true)]
#[case::a_day_after_it_ends(30, 31, false)]
#[case::default_days_a_day_before(365, 364, true)]
#[case::default_days_a_day_after(365, 366, false)]
fn the_serving_certificate_lasts_days(#[case] days: u32, #[case] at_day: u64, #[case] valid: bool) {
    let dir = tempfile::tempdir().unwrap();
    let start = UnixTime::now().as_secs();
    let days_arg = days.to_string();
    let extra: Vec<&str> = if days == 365 {
        vec![]
    } else {
        vec!["--days", &days_arg]
    };
    let r = generate(dir.path(), &extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots(&dir.path().join("ca.crt")), provider())
            .build()
            .unwrap();
    let at = UnixTime::since_unix_epoch(Duration::from_secs(start + at_day * 86_400));
    let result = verifier.verify_server_cert(
        &cert(&dir.path().join("tls.crt")),
        &[],
        &ServerName::try_from("tollgate.tollgate-system.svc").unwrap(),
        &[],
        at,
    );
    match (valid, result) {
        (true, r) => {
            r.unwrap();
        }
        (false, Err(rustls::Error::InvalidCertificate(e))) => assert!(
            matches!(
                e,
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ),
            "{e:?}"
        ),
        (false, r) => panic!("expected expiry, got {r:?}"),
    }
}

#[test]
fn the_ca_bundle_on_stdout_is_base64_of_ca_crt_and_stderr_says_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = generate(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bundle = r.stdout.strip_suffix('\n').expect("one line");
    assert!(!bundle.contains('\n'), "{bundle}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    assert_eq!(decoded, fs::read(dir.path().join("ca.crt")).unwrap());
    for name in FILES {
        assert!(r.stderr.contains(name), "{}", r.stderr);
    }
    assert!(
        r.stderr
            .contains("tollgate.tollgate-system.svc.cluster.local"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("PRIVATE KEY") && !r.stdout.contains("PRIVATE KEY"));
}

#[test]
fn the_keys_parse_and_only_the_owner_can_read_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = generated();
    let mode = |name: &str| {
        fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(mode("tls.key"), 0o600);
    assert_eq!(mode("ca.crt"), 0o644);
    assert_eq!(mode("tls.crt"), 0o644);
    for key in ["ca.key", "tls.key"] {
        PrivateKeyDer::from_pem_file(dir.path().join(key)).unwrap();
    }
}

#[test]
fn existing_files_are_not_overwritten_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("tls.key"), "an old key\n").unwrap();
    let r = generate(dir.path(), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    assert!(r.stderr.contains("tls.key"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(
        fs::read_to_string(dir.path().join("tls.key")).unwrap(),
        "an old key\n"
    );
    // A refusal leaves no new file next to the old one.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["tls.key"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn force_replaces_every_file_and_tightens_an_old_keys_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = generated();
    let old: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| fs::read(dir.path().join(f)).unwrap())
        .collect();
    fs::set_permissions(
        dir.path().join("tls.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let r = generate(dir.path(), &["--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (name, old) in FILES.iter().zip(&old) {
        assert_ne!(&fs::read(dir.path().join(name)).unwrap(), old, "{name}");
    }
    let mode = fs::metadata(dir.path().join("tls.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    // And the replaced set still belongs together.
    let ca = dir.path().join("ca.crt");
    handshake(
        dir.path(),
        &ca,
        "tollgate.tollgate-system.svc",
        &rustls::version::TLS13,
    )
    .await
    .unwrap();
}

#[test]
fn a_missing_output_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b");
    let r = generate(&out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in FILES {
        assert!(out.join(name).is_file(), "{name}");
    }
}

#[rstest]
#[case::uppercase_service("--service", "Tollgate", "invalid service name \"Tollgate\"")]
#[case::dotted_service("--service", "tollgate.evil", "character '.' is not allowed")]
#[case::service_starting_with_a_digit(
    "--service",
    "1tollgate",
    "must start with a lowercase letter"
)]
#[case::empty_namespace("--namespace", "", "invalid namespace \"\": it is empty")]
#[case::namespace_ending_with_a_dash("--namespace", "team-", "must end with")]
#[case::long_namespace("--namespace", &"n".repeat(64), "64 characters long; at most 63")]
#[case::zero_days("--days", "0", "--days must be between 1")]
#[case::leaf_outlives_ca("--days", "4000", "would outlive its CA")]
fn bad_input_is_exit_2_with_a_clear_message_and_nothing_written(
    #[case] flag: &str,
    #[case] value: &str,
    #[case] message: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut args = vec![
        "certs",
        "generate",
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--out",
        out.to_str().unwrap(),
    ];
    // A later occurrence would be a clap usage error; replace the flag's value instead.
    match args.iter().position(|a| *a == flag) {
        Some(i) => args[i + 1] = value,
        None => args.extend([flag, value]),
    }
    let r = run(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(message), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(
        fs::metadata(&out).map_err(|e| e.kind()).unwrap_err(),
        ErrorKind::NotFound
    );
}

#[rstest]
#[case::out_is_a_file("file", "cannot create directory")]
#[case::parent_is_a_file("file/sub", "cannot create directory")]
fn an_unwritable_output_is_exit_2(#[case] out: &str, #[case] message: &str) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("file"), "").unwrap();
    let r = generate(&dir.path().join(out), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(message), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn a_file_that_cannot_be_replaced_is_exit_2_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where ca.crt should go: even --force cannot rename a file over it.
    fs::create_dir(dir.path().join("ca.crt")).unwrap();
    fs::write(dir.path().join("ca.crt/keep"), "").unwrap();
    let r = generate(dir.path(), &["--force"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot write"), "{}", r.stderr);
    assert!(r.stderr.contains("ca.crt"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ca.crt"]);
}
