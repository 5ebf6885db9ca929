//! A Notary Project signer of the tests' own making: an ECDSA P-256 root CA (the trust store's
//! one certificate), code-signing leaf certificates from it, and JWS envelopes in notation's
//! exact shape (signature-envelope-jws.md), with knobs to get each part wrong. Shared by the
//! library's unit tests and the integration tests (`#[path]`), so both check one format.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

/// 2026-11-01T00:00:00Z: the test CA's start.
pub const EPOCH: i64 = 1_793_491_200;
/// 2026-11-15T00:00:00Z: when the test signatures say they were signed.
pub const SIGNED_AT: i64 = EPOCH + 14 * 86_400;

/// An RSA 2048 key for PS256 signatures, made once with `openssl genpkey` (neither ring nor
/// rcgen makes RSA keys). A test key: it signs nothing but these tests' envelopes.
pub const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCV+mcqDwLlHhdV
p+8SiJESSgdGyPEmFVLEmA7pYtWBOpe1N9GGVhVGDPDs22DBy3e+TYqh8QcxaGrT
GXqZGYASg4cxkdGUdBfBwJizjmCsD02D3HqpmapyZf4jA0b+EXgBX5w2S4doB12k
cO590/7kUsopZko36kmkrlj/OCMgwfv8xUTSUwxhTeK4nPCWN5qmjgRV1DUxrP4u
lzASsw0GoY1BqBUeKKVNrGZ+ElNTUek7fDyCKGdm+Am9eiSNgRT6wsJqLrXONKl2
QUazGtef3/coCCqhtnRqn4T/9pCgHkg+tE2oEtWuCOr2r9qCggDFiRE3RVtgFEsg
3THZV5p3AgMBAAECggEAST+q8xexykUQEH2cfejFMbGGLEQnwvnXGr1JSyNCM4Ny
ZMeGRZ31dekMIiJi90NwkDk+5Cjb4n2k7sUa43tY2bHzbXpSabbpg2+VJNz8ygwP
R79/CSZL4ON/Y4pOOfg+LC2OFdZ9o4k1awLc+Ad6DfmBUwbqaLS8kvmz7bJ1NaHI
lNixn7+DwXxMVMjmomBRg700Cwy+7O7b+qYfrVbq7mkGVjsZG1XO+i6xMg7D8d3E
7dvWxm4wxU1KzTK/BnXqI67Yqd5tSukOVqxQGhe+vfniV4K9yo2aa4/VRjEFHW3n
+PP/998jntgyhe2xv/KmvhsQHKylHB1Ld2XG+WhrwQKBgQDSdjhacVlN6dXvqYGH
n5PtNCE+qnkBTnEL2Ph2dtIqXDBscipA4CH66tkdo0OBqP0iBOFfdAseb4iTLq+u
n0H5bHjj+zTFuS7j/Y3Nj1HGRquRIgrn7COsBAoIsScYVhbXuAhySQfa0s+bJWOC
sT7QMI8ryePCG7M7kv0IlhBxvQKBgQC2begKfshyw/40kemaZZiTwcZ6vfgjwA+I
0BGOxqGKAV1Rs0NaXYPMvtpcG5++JSqvs8BiklRhs07UmCbyoDXjnvsBfbMtn8DJ
YG4Pc3Jc3iiPFwhJk8M+L5qIm8v9ASCKxMScggydlXNl+JUoztwfPHjKbZlg5CDC
m59LX2+OQwKBgH3sVhNnNnOzsVlQJjwrcqq+QhXokbYCZQkdrKvUtDK8Lgz00es3
L52d3oIpKT7vCWXNXbtrBywSt7i4ek0U5LiD+mEN8KlM/41SLAIN+nOT3RtdLwFM
/JrzX72LoUSiXdB8QDGBGL4I3EaLvFp6CocuRruAdFGzmS3P6K22e+hRAoGAPGd/
4ZnBPV7wGPAHbXweXS5YTeQA+bVqb16VsbTLYCq7f4Xf01gLgAvhuYXcCtW7oJng
JcNV9VOt0m7e1o99yHSnoALDBWRULVmkl7EeOOnGfDqgH9yxVTHl9T3A+XEaGVi1
0SyuiK8nmqgIm46DDES1qjFIC/D9d/KXeBmNkokCgYEAzCHgKplWVL5YyLr24B9X
o6CgGqK0mwdKPu2vi+r8iejNVciJI5teuOJzqu0jUeGbFdTYkEpZJ3I4vyue3P7L
E+wAizzptf1io8q71fohbL0oFxCX32vW0Jou+VgLnACuXs2gBCOlClMrrch9h6BB
pftXDUG2UGzIrLEzMjC1YWI=
-----END PRIVATE KEY-----";

/// The subject the test leaf certificates carry by default, in notation's form.
pub const SUBJECT: &str = "C=US, ST=WA, L=Seattle, O=acme, CN=release";

pub struct TestNotary {
    root: rcgen::Certificate,
    root_key: KeyPair,
    root_params: CertificateParams,
}

/// What to get wrong in one signature.
#[derive(Debug, Clone, Default)]
pub struct Notation {
    /// The leaf's subject as (C, ST, L, O, CN); default [`SUBJECT`]'s.
    pub subject: Option<[&'static str; 5]>,
    /// The leaf's validity, as offsets from [`SIGNED_AT`] (default -60 s .. +30 days).
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    /// `io.cncf.notary.signingTime` (default [`SIGNED_AT`]).
    pub signing_time: Option<i64>,
    /// `io.cncf.notary.expiry`, if any.
    pub expiry: Option<i64>,
    /// An extra critical attribute (carried in the header too).
    pub extra_crit: Option<&'static str>,
    /// Another `cty`.
    pub cty: Option<&'static str>,
    /// Issue the leaf from a CA the trust store does not hold.
    pub foreign_ca: bool,
    /// Leave out the code-signing extended key usage.
    pub no_code_signing: bool,
    /// Sign with [`RSA_KEY`], PS256 (RSASSA-PSS with SHA-256), instead of a fresh P-256 key.
    pub rsa: bool,
    /// The header's `alg`, when it should lie about the key.
    pub alg: Option<&'static str>,
}

fn at(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).unwrap().to_string()
}

fn ca(key: &KeyPair, name: &str) -> (rcgen::Certificate, CertificateParams) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CountryName, "US");
    p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
    p.distinguished_name.push(DnType::OrganizationName, "acme");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(EPOCH);
    p.not_after = at(EPOCH + 10 * 365 * 86_400);
    (p.self_signed(key).unwrap(), p)
}

impl TestNotary {
    pub fn new() -> TestNotary {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (root, root_params) = ca(&root_key, "acme-root");
        TestNotary {
            root,
            root_key,
            root_params,
        }
    }

    /// The trust store: the root, PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// A fresh key and a code-signing certificate for it, as `n` says.
    fn issue(&self, n: &Notation) -> (KeyPair, rcgen::Certificate) {
        let key = if n.rsa {
            KeyPair::from_pkcs8_pem_and_sign_algo(RSA_KEY, &rcgen::PKCS_RSA_SHA256).unwrap()
        } else {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
        };
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let [c, st, l, o, cn] = n
            .subject
            .unwrap_or(["US", "WA", "Seattle", "acme", "release"]);
        for (t, v) in [
            (DnType::CountryName, c),
            (DnType::StateOrProvinceName, st),
            (DnType::LocalityName, l),
            (DnType::OrganizationName, o),
            (DnType::CommonName, cn),
        ] {
            p.distinguished_name.push(t, v);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if !n.no_code_signing {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        p.not_before = at(SIGNED_AT + n.valid_from.unwrap_or(-60));
        p.not_after = at(SIGNED_AT + n.valid_until.unwrap_or(30 * 86_400));
        let cert = if n.foreign_ca {
            let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let (_, other) = ca(&other_key, "someone-elses-root");
            p.signed_by(&key, &Issuer::from_params(&other, &other_key))
                .unwrap()
        } else {
            p.signed_by(
                &key,
                &Issuer::from_params(&self.root_params, &self.root_key),
            )
            .unwrap()
        };
        (key, cert)
    }

    /// A JWS envelope signing `digest` (a manifest of `size` bytes), as notation writes it.
    pub fn sign(&self, digest: &str, size: u64, n: &Notation) -> Vec<u8> {
        let (key, cert) = self.issue(n);
        let mut crit = vec![json!("io.cncf.notary.signingScheme")];
        let mut header = json!({
            "alg": n.alg.unwrap_or(if n.rsa { "PS256" } else { "ES256" }),
            "cty": n.cty.unwrap_or("application/vnd.cncf.notary.payload.v1+json"),
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": rfc3339(n.signing_time.unwrap_or(SIGNED_AT)),
        });
        if let Some(e) = n.expiry {
            header["io.cncf.notary.expiry"] = json!(rfc3339(e));
            crit.push(json!("io.cncf.notary.expiry"));
        }
        if let Some(extra) = n.extra_crit {
            header[extra] = json!("1.0.0");
            crit.push(json!(extra));
        }
        header["crit"] = Value::Array(crit);
        let payload = json!({
            "targetArtifact": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
            }
        });
        let protected = URL_SAFE_NO_PAD.encode(header.to_string());
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let input = format!("{protected}.{payload}");
        let rng = ring::rand::SystemRandom::new();
        let signature = if n.rsa {
            let signer = ring::signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
            let mut sig = vec![0; signer.public().modulus_len()];
            signer
                .sign(
                    &ring::signature::RSA_PSS_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            sig
        } else {
            // JWS ECDSA signatures are r||s (RFC 7518 §3.4); rcgen signs DER, so sign with ring.
            let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .unwrap();
            signer
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        };
        json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [STANDARD.encode(cert.der())],
                "io.cncf.notary.signingAgent": "notation-go/1.3.0 (tollgate tests)",
            },
            "signature": URL_SAFE_NO_PAD.encode(&signature),
        })
        .to_string()
        .into_bytes()
    }
}

impl TestNotary {
    /// A COSE envelope (signature-envelope-cose.md) signing `digest`: a tagged COSE_Sign1
    /// with the same attributes and payload as [`TestNotary::sign`]'s JWS.
    pub fn sign_cose(&self, digest: &str, size: u64, n: &Notation) -> Vec<u8> {
        use coset::cbor::value::Value as Cbor;
        use coset::{Label, RegisteredLabelWithPrivate as L, TaggedCborSerializable as _, iana};
        let (key, cert) = self.issue(n);
        let text = |s: &str| Label::Text(s.to_owned());
        let time = |t: i64| Cbor::Tag(1, Box::new(Cbor::Integer(t.into())));
        let mut protected = coset::Header {
            alg: Some(L::Assigned(if n.rsa {
                iana::Algorithm::PS256
            } else {
                match n.alg {
                    Some("ES384") => iana::Algorithm::ES384,
                    _ => iana::Algorithm::ES256,
                }
            })),
            crit: vec![L::Text("io.cncf.notary.signingScheme".into())],
            content_type: Some(coset::RegisteredLabel::Text(
                n.cty
                    .unwrap_or("application/vnd.cncf.notary.payload.v1+json")
                    .into(),
            )),
            ..Default::default()
        };
        protected.rest.push((
            text("io.cncf.notary.signingScheme"),
            Cbor::Text("notary.x509".into()),
        ));
        protected.rest.push((
            text("io.cncf.notary.signingTime"),
            time(n.signing_time.unwrap_or(SIGNED_AT)),
        ));
        if let Some(e) = n.expiry {
            protected.crit.push(L::Text("io.cncf.notary.expiry".into()));
            protected
                .rest
                .push((text("io.cncf.notary.expiry"), time(e)));
        }
        if let Some(extra) = n.extra_crit {
            protected.crit.push(L::Text(extra.into()));
            protected
                .rest
                .push((text(extra), Cbor::Text("1.0.0".into())));
        }
        let mut unprotected = coset::Header::default();
        unprotected.rest.push((
            Label::Int(33),
            Cbor::Array(vec![Cbor::Bytes(cert.der().to_vec())]),
        ));
        unprotected.rest.push((
            text("io.cncf.notary.signingAgent"),
            Cbor::Text("notation-go/1.3.0 (tollgate tests)".into()),
        ));
        let payload = json!({
            "targetArtifact": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
            }
        });
        let rng = ring::rand::SystemRandom::new();
        coset::CoseSign1Builder::new()
            .protected(protected)
            .unprotected(unprotected)
            .payload(payload.to_string().into_bytes())
            .create_signature(b"", |input| {
                if n.rsa {
                    let signer =
                        ring::signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
                    let mut sig = vec![0; signer.public().modulus_len()];
                    signer
                        .sign(&ring::signature::RSA_PSS_SHA256, &rng, input, &mut sig)
                        .unwrap();
                    sig
                } else {
                    // COSE ECDSA signatures are r||s (RFC 9053 §2.1), as ring's FIXED signs.
                    ring::signature::EcdsaKeyPair::from_pkcs8(
                        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &key.serialize_der(),
                        &rng,
                    )
                    .unwrap()
                    .sign(&rng, input)
                    .unwrap()
                    .as_ref()
                    .to_vec()
                }
            })
            .build()
            .to_tagged_vec()
            .unwrap()
    }
}
