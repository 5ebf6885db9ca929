//! Target: evaluating one ~10 KB Deployment against the embedded default policy costs at most
//! 20 µs. Run with `cargo bench --bench eval`; results are recorded in docs/BENCHMARKS.md.
//! Timings are never asserted: a shared CI machine is too noisy for that.

// Benchmarks set up their own files, servers and clocks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// The warm signature check (`signatures::warm_*`) needs a registry once, to fill the resolver's
// caches; the timed calls send no request.
#[allow(dead_code)]
#[path = "../tests/common/registry.rs"]
mod registry;

// oci.rs imports `super::registry::sha256`: both modules sit at the crate root.
#[allow(dead_code)]
#[path = "../tests/common/oci.rs"]
mod oci;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::LazyLock;

use divan::Bencher;
use serde_json::Value;
use tollgate::check::{self, Options, Source};
use tollgate::policy::{self, Policy};
use tollgate::report::Report;
use tollgate::yaml::{self, Record};

fn main() {
    // `TOLLGATE_COUNT=WORKLOAD:N` runs one workload N times and exits, without divan's timing
    // loop: benches/instructions.sh counts its instructions under callgrind at two values of N,
    // and the difference is the cost of N2 - N1 runs, set-up taken out.
    if let Ok(spec) = std::env::var("TOLLGATE_COUNT") {
        counted(&spec);
        return;
    }
    let f = &*FIXTURE;
    eprintln!(
        "fixture: {} bytes of YAML, {} images, {} findings",
        f.yaml.len(),
        images().len(),
        check::check_text(&f.policy, "bench.yaml", &f.yaml, &f.opts)
            .findings
            .len()
    );
    divan::main();
    // Statics are never dropped: stop the warm benches' registry, if they started one.
    drop(signatures::REGISTRY.lock().unwrap().take());
}

const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Images of the containers, in order: approved (pinned by tag and digest) mixed with
/// violations (another registry, `latest`, no tag, a base image), so the engine produces
/// findings of several rules, as a real repository would.
fn images() -> Vec<String> {
    let wmf = "docker-registry.wikimedia.org";
    vec![
        format!("{wmf}/wikimedia/mediawiki-multiversion:2026-11-20-101500-publish@{DIGEST}"),
        format!("{wmf}/envoy:1.31.2-3@{DIGEST}"),
        "docker.io/library/nginx:latest".into(),
        format!("{wmf}/prometheus-statsd-exporter:0.26.1-2@{DIGEST}"),
        "docker.io/bitnami/redis".into(),
        // init containers
        format!("{wmf}/bookworm:20261115"),
        "quay.io/prometheus/busybox:latest".into(),
    ]
}

/// A realistic production Deployment (MediaWiki-on-Kubernetes style): 5 containers and 2 init
/// containers, each with env, ports, probes, resources and volume mounts.
fn deployment_yaml() -> String {
    let mut y = String::from(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: mediawiki-main-web
  namespace: mw-web
  labels:
    app: mediawiki
    chart: mediawiki-0.9.12
    release: main
    heritage: Helm
    app.kubernetes.io/component: web
  annotations:
    checksum/configuration: 3c1b1e4e2f0d8e58b0b4a3b5d4f2c1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4
    checksum/secrets: 0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
    deployment.kubernetes.io/revision: \"42\"
spec:
  replicas: 8
  revisionHistoryLimit: 10
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 10%
  selector:
    matchLabels:
      app: mediawiki
      release: main
  template:
    metadata:
      labels:
        app: mediawiki
        release: main
        routed_via: main
      annotations:
        prometheus.io/scrape: \"true\"
        prometheus.io/port: \"9102\"
        container.apparmor.security.beta.kubernetes.io/mediawiki-main-app: localhost/wikifunctions-orchestrator
    spec:
      serviceAccountName: mediawiki-main
      terminationGracePeriodSeconds: 30
      securityContext:
        fsGroup: 65534
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    app: mediawiki
",
    );
    let images = images();
    let (containers, inits) = images.split_at(5);
    for (section, list, prefix) in [
        ("initContainers", inits, "init"),
        ("containers", containers, "main"),
    ] {
        writeln!(y, "      {section}:").unwrap();
        for (i, image) in list.iter().enumerate() {
            container(&mut y, &format!("mediawiki-{prefix}-{i}"), image, i);
        }
    }
    y.push_str(
        "      volumes:
        - name: php-config
          configMap:
            name: mediawiki-main-php-config
        - name: httpd-sites
          configMap:
            name: mediawiki-main-httpd-sites-config
        - name: shared-socket
          emptyDir:
            medium: Memory
        - name: tls-certs
          secret:
            secretName: mediawiki-main-tls-proxy-certs
",
    );
    y
}

/// One container block, about 1 KB.
fn container(y: &mut String, name: &str, image: &str, i: usize) {
    write!(
        y,
        "        - name: {name}
          image: {image}
          imagePullPolicy: IfNotPresent
          env:
            - name: SERVERGROUP
              value: kube-mw-web
            - name: PHP__opcache__memory_consumption
              value: \"1024\"
            - name: FCGI_URL
              value: unix:///run/shared/fpm-www.sock
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          ports:
            - name: port-{i}
              containerPort: {port}
              protocol: TCP
          livenessProbe:
            tcpSocket:
              port: {port}
            initialDelaySeconds: 10
            periodSeconds: 5
          resources:
            requests:
              cpu: 500m
              memory: 600Mi
            limits:
              cpu: \"2\"
              memory: 1400Mi
          volumeMounts:
            - name: php-config
              mountPath: /etc/php/8.1/fpm/conf.d/FF-wmf.ini
              subPath: FF-wmf.ini
            - name: shared-socket
              mountPath: /run/shared
",
        port = 8080 + i
    )
    .unwrap();
}

struct Fixture {
    policy: Policy,
    opts: Options,
    yaml: String,
    json: String,
    value: Value,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let yaml = deployment_yaml();
    assert!(
        (9 * 1024..=11 * 1024).contains(&yaml.len()),
        "the Deployment should be ~10 KB, is {} bytes",
        yaml.len()
    );
    let policy = policy::default_policy();
    let opts = Options::enforce("default", jiff::Timestamp::UNIX_EPOCH);
    // Sanity: the fixture must exercise the engine (7 images, some findings), or the bench
    // would measure an early exit.
    let report = check::check_text(&policy, "bench.yaml", &yaml, &opts);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.objects.len(), 1);
    assert_eq!(report.objects[0].images, 7);
    assert!(
        report.findings.len() >= 5,
        "{} findings",
        report.findings.len()
    );
    let value = yaml::load_one(&yaml, Record::ImageFields)
        .expect("the fixture is valid YAML")
        .value;
    // The admission webhook receives the object as JSON inside an AdmissionReview.
    let json = serde_json::to_string(&value).expect("a Value serializes");
    Fixture {
        policy,
        opts,
        yaml,
        json,
        value,
    }
});

/// Extraction + policy evaluation of an already-parsed document. The empty report is made
/// outside the timed region (`with_inputs`); it is dropped after timing as well.
#[divan::bench(sample_count = 1000)]
fn evaluate_only(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher
        .with_inputs(|| Report::new(check::policy_info(&f.policy)))
        .bench_local_refs(|report| evaluate(f, report));
}

fn evaluate(f: &Fixture, report: &mut Report) {
    let source = Source {
        file: Some("bench.yaml"),
        positions: None,
        start_line: Some(1),
    };
    check::check_document(&f.policy, black_box(&f.value), source, &f.opts, report);
}

/// What `tollgate check` does per file: parse with positions, then evaluate.
#[divan::bench(sample_count = 1000)]
fn parse_and_evaluate(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| parse_and_evaluate_once(f));
}

fn parse_and_evaluate_once(f: &Fixture) -> Report {
    check::check_text(&f.policy, "bench.yaml", black_box(&f.yaml), &f.opts)
}

/// Parsing alone (YAML events -> serde_json::Value + image positions).
#[divan::bench(sample_count = 1000)]
fn parse_only(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| parse_once(f));
}

fn parse_once(f: &Fixture) -> usize {
    yaml::load_all(black_box(&f.yaml), Record::ImageFields).count()
}

/// The same document through yaml-rust2's event parser alone, the path every document took
/// before the fast path (src/yaml/fast.rs) and the one it still leaves the rest to: the
/// fast path's baseline, in the same run.
#[divan::bench(sample_count = 1000)]
fn parse_full_only(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| parse_full_once(f));
}

fn parse_full_once(f: &Fixture) -> usize {
    usize::from(yaml::load_full(black_box(&f.yaml), Record::ImageFields).is_ok())
}

/// The admission path: the object arrives as JSON (no positions needed), parsed with
/// serde_json, then evaluated.
#[divan::bench(sample_count = 1000)]
fn json_parse_and_evaluate(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| json_parse_and_evaluate_once(f));
}

fn json_parse_and_evaluate_once(f: &Fixture) -> Report {
    let value: Value = serde_json::from_str(black_box(&f.json)).expect("valid JSON");
    let mut report = Report::new(check::policy_info(&f.policy));
    let source = Source {
        file: None,
        positions: None,
        start_line: None,
    };
    check::check_document(&f.policy, &value, source, &f.opts, &mut report);
    report
}

/// `WORKLOAD:N` ([`main`]): the same bodies as the timed benches above, run N times.
fn counted(spec: &str) {
    let (workload, n) = spec
        .split_once(':')
        .and_then(|(w, n)| Some((w, n.parse::<u64>().ok()?)))
        .expect("TOLLGATE_COUNT is WORKLOAD:N");
    let f = &*FIXTURE;
    for _ in 0..n {
        match workload {
            "parse_only" => drop(black_box(parse_once(f))),
            "parse_full_only" => drop(black_box(parse_full_once(f))),
            "evaluate_only" => {
                let mut report = Report::new(check::policy_info(&f.policy));
                evaluate(f, &mut report);
                drop(black_box(report));
            }
            "parse_and_evaluate" => drop(black_box(parse_and_evaluate_once(f))),
            "json_parse_and_evaluate" => drop(black_box(json_parse_and_evaluate_once(f))),
            other => panic!(
                "unknown workload {other}: parse_only, parse_full_only, evaluate_only, parse_and_evaluate, json_parse_and_evaluate"
            ),
        }
    }
}

/// Issue 14: one cosign signature checked against one trusted ECDSA P-256 key (payload
/// digest, payload document, signature), what a verdict-cache miss costs in memory after the
/// registry answered; and against four keys, as a rule with several signers does. Then the
/// warm path, a cache hit (`warm_*`).
mod signatures {
    use std::hint::black_box;
    use std::sync::{Arc, LazyLock, Mutex};
    use std::time::Duration;

    use divan::Bencher;
    use rcgen::{KeyPair, SigningKey as _};
    use sha2::{Digest as _, Sha256};
    use tollgate::policy::eval::Status;
    use tollgate::policy::{Policy, parse_policy};
    use tollgate::reference::{Digest, ImageRef};
    use tollgate::registry::facts::signature_status;
    use tollgate::registry::{ClientOptions, RegistryClient, Resolution, ResolveOptions, Resolver};
    use tollgate::signature::{Fetched, PublicKey, SignatureLayer, Signer, Trusted, verify};

    const SIGNED: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    struct Case {
        digest: Digest,
        fetched: Vec<Fetched>,
        one: Vec<Signer>,
        four: Vec<Signer>,
    }

    static CASE: LazyLock<Case> = LazyLock::new(|| {
        let keys: Vec<KeyPair> = (0..4)
            .map(|_| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
            .collect();
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"registry.example.org/app"}},"image":{{"docker-manifest-digest":"{SIGNED}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes();
        let hex: String = Sha256::digest(&payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signer = |i: usize| Signer {
            name: format!("k{i}"),
            trusted: Trusted::Key(PublicKey::from_pem(&keys[i].public_key_pem()).unwrap()),
        };
        Case {
            digest: SIGNED.parse().unwrap(),
            fetched: vec![Fetched {
                layer: SignatureLayer {
                    payload: format!("sha256:{hex}").parse().unwrap(),
                    size: payload.len() as u64,
                    // Signed by the last key: the four-key case tries every key.
                    signature: keys[3].sign(&payload).unwrap(),
                    certificate: None,
                    chain: None,
                    bundle: None,
                },
                payload: Ok(payload),
            }],
            one: vec![signer(3)],
            four: (0..4).map(signer).collect(),
        }
    });

    #[divan::bench(sample_count = 1000)]
    fn verify_one_signature_one_key(bencher: Bencher) {
        let c = &*CASE;
        bencher.bench_local(|| verify(black_box(&c.digest), &c.fetched, &c.one, 1, None));
    }

    #[divan::bench(sample_count = 1000)]
    fn verify_one_signature_four_keys(bencher: Bencher) {
        let c = &*CASE;
        bencher.bench_local(|| verify(black_box(&c.digest), &c.fetched, &c.four, 1, None));
    }

    /// Issue 14's target, "a warm verification (cache hit) costs at most 50 µs of the admission
    /// path": `signature_status` for one image whose `.sig` tag, signature manifest, payload
    /// and verdict are all in the resolver's caches, as the webhook calls it for each image of
    /// a review once a first review has verified it. It runs on a real loopback registry
    /// (Debian's docker-registry), which is asked only while the caches are filled: the tag TTL
    /// is an hour, so the timed calls send no request (checked after the run). The runtime is
    /// a current-thread tokio runtime; `warm_no_signature_rule` is the same call under a policy
    /// without a signature rule, the floor (the runtime's `block_on` and the rule lookup).
    struct Warm {
        rt: tokio::runtime::Runtime,
        signed: Policy,
        plain: Policy,
        resolver: Resolver,
        plain_resolver: Resolver,
        image: ImageRef,
        resolution: Resolution,
    }

    /// The registry behind [`WARM`], stopped at the end of `main`.
    pub static REGISTRY: Mutex<Option<crate::registry::TestRegistry>> = Mutex::new(None);

    static WARM: LazyLock<Warm> = LazyLock::new(|| {
        use base64::Engine as _;
        use serde_json::json;
        let reg = crate::registry::TestRegistry::start();
        let host = reg.host();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = format!("{host}/svc/app");
        let digest = rt.block_on(async {
            let p = crate::oci::Pusher::new(reg.base_url());
            let l = crate::oci::layer(&[("srv/app", b"app")]);
            let digest = p
                .image("svc/app", Some("1.0"), &[l], "linux/amd64")
                .await
                .digest;
            // One cosign signature in the tag scheme (as tests/it/signatures.rs makes them).
            let config = p.blob("svc/app", b"{}").await;
            let body = json!({
                "critical": {
                    "identity": {"docker-reference": name},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature"
                },
                "optional": null
            })
            .to_string()
            .into_bytes();
            let payload = p.blob("svc/app", &body).await;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": crate::oci::OCI_MANIFEST,
                "config": {"mediaType": crate::oci::OCI_CONFIG, "size": 2, "digest": config},
                "layers": [{
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": body.len(),
                    "digest": payload,
                    "annotations": {"dev.cosignproject.cosign/signature":
                        base64::engine::general_purpose::STANDARD.encode(key.sign(&body).unwrap())}
                }],
            });
            p.manifest(
                "svc/app",
                &format!("{}.sig", digest.replace(':', "-")),
                crate::oci::OCI_MANIFEST,
                manifest.to_string().as_bytes(),
            )
            .await;
            digest
        });
        let pem: String = key
            .public_key_pem()
            .lines()
            .map(|l| format!("            {l}\n"))
            .collect();
        let signed = parse_policy(
            &reg.policy(&format!(
                "  signatures:\n    - images: [\"{host}/svc/**\"]\n      keys:\n        - name: bench\n          publicKey: |\n{pem}"
            )),
            "bench-signed.yaml",
        )
        .unwrap();
        let plain = parse_policy(&reg.policy(""), "bench-plain.yaml").unwrap();
        let opts = || ResolveOptions {
            tag_ttl: Duration::from_secs(3600),
            blob_ttl: Duration::from_secs(3600),
            ..ResolveOptions::default()
        };
        let client = Arc::new(RegistryClient::new(ClientOptions::default()).unwrap());
        let resolver = Resolver::new(client.clone(), Arc::new(signed.clone()), opts());
        let plain_resolver = Resolver::new(client, Arc::new(plain.clone()), opts());
        let image: ImageRef = format!("{name}:1.0@{digest}").parse().unwrap();
        let resolution = rt.block_on(resolver.resolve(&image)).unwrap();
        // The cold check fills the caches and the verdict.
        let (status, _) = rt
            .block_on(signature_status(&signed, &resolver, &image, &resolution))
            .unwrap();
        assert!(matches!(status, Status::Pass), "{status:?}");
        *REGISTRY.lock().unwrap() = Some(reg);
        Warm {
            rt,
            signed,
            plain,
            resolver,
            plain_resolver,
            image,
            resolution,
        }
    });

    fn requests(r: &Resolver) -> u64 {
        r.client()
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[divan::bench(sample_count = 1000)]
    fn warm_signature_status_one_key(bencher: Bencher) {
        let w = &*WARM;
        let before = requests(&w.resolver);
        bencher.bench_local(|| {
            w.rt.block_on(signature_status(
                &w.signed,
                &w.resolver,
                black_box(&w.image),
                &w.resolution,
            ))
            .unwrap()
        });
        assert_eq!(
            requests(&w.resolver),
            before,
            "a warm check sent a registry request"
        );
    }

    #[divan::bench(sample_count = 1000)]
    fn warm_no_signature_rule(bencher: Bencher) {
        let w = &*WARM;
        bencher.bench_local(|| {
            w.rt.block_on(signature_status(
                &w.plain,
                &w.plain_resolver,
                black_box(&w.image),
                &w.resolution,
            ))
            .unwrap()
        });
    }
}
