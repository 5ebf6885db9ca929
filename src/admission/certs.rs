//! Webhook certificates: a CA and a serving certificate for the webhook's Service name.
//!
//! The API server calls a webhook at `https://NAME.NS.svc:PORT/...` and verifies the serving
//! certificate against the `caBundle` of the webhook configuration. [`generate`] makes both: a
//! CA (whose certificate is the caBundle) and a serving certificate signed by it, with the four
//! names a Service answers to in a cluster. Keys are ECDSA P-256.
//!
//! Pure apart from the random number generator: the current time is passed in, and nothing is
//! written here; `tollgate certs generate` writes [`Generated::files`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The longest label Kubernetes accepts for a Service or Namespace name (RFC 1123 §2.1).
pub const LABEL_MAX_LEN: usize = 63;
/// The longest validity accepted, in days. Keeps `not_after` far inside X.509's and the date
/// library's range, and a certificate meant to be rotated from being minted for ever.
pub const MAX_DAYS: u32 = 36_500;
/// How far `not_before` is set before `now`: a node whose clock runs a little behind the
/// generating machine's must not see a certificate that is not yet valid.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why certificates could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertsError {
    /// The Service or Namespace name is not the DNS label Kubernetes requires.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// Which name: `service name` or `namespace`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// The label rule it breaks.
        reason: LabelError,
    },
    /// The serving certificate's validity (`--days`, given here) is 0 or above [`MAX_DAYS`].
    #[error("--days must be between 1 and {MAX_DAYS}, not {0}")]
    Days(u32),
    /// The CA's validity (`--ca-days`, given here) is 0 or above [`MAX_DAYS`].
    #[error("--ca-days must be between 1 and {MAX_DAYS}, not {0}")]
    CaDays(u32),
    /// The serving certificate would still be valid after its CA expires, and be rejected by
    /// the API server for the rest of its validity.
    #[error(
        "the serving certificate ({days} days) would outlive its CA ({ca_days} days); \
         raise --ca-days or lower --days"
    )]
    OutlivesCa {
        /// Validity asked for the serving certificate, in days.
        days: u32,
        /// Validity asked for the CA, in days.
        ca_days: u32,
    },
    /// `now` (given here) is before the Unix epoch, from which validity dates are counted.
    #[error("the current time {0} is before 1970")]
    Clock(jiff::Timestamp),
    /// rcgen could not make a key or a certificate.
    #[error("cannot make the {what}")]
    Rcgen {
        /// What was being made: `CA key`, `CA certificate`, `serving key`, ...
        what: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
}

/// Why a name is not a DNS label of the kind Kubernetes requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The name is empty.
    #[error("it is empty")]
    Empty,
    /// The name is longer than [`LABEL_MAX_LEN`]; its length in characters.
    #[error("it is {0} characters long; at most {LABEL_MAX_LEN} are allowed")]
    TooLong(usize),
    /// The first character outside `a-z`, `0-9` and `-` (checked before the length).
    #[error("character {0:?} is not allowed (only lowercase a-z, 0-9 and '-')")]
    Character(char),
    /// A Service name (DNS-1035) starts with a digit or `-`.
    #[error("it must start with a lowercase letter")]
    StartLetter,
    /// A Namespace name (DNS-1123) starts with `-`.
    #[error("it must start with a lowercase letter or a digit")]
    StartAlnum,
    /// The name ends with `-`.
    #[error("it must end with a lowercase letter or a digit")]
    End,
}

/// A Service name: a DNS-1035 label (lowercase alphanumerics and '-', starting with a letter,
/// ending with an alphanumeric, at most 63 characters), as the API server requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceName(String);

/// A Namespace name: a DNS-1123 label (like a DNS-1035 label, but it may start with a digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl FromStr for ServiceName {
    type Err = LabelError;
    fn from_str(s: &str) -> Result<Self, LabelError> {
        check_label(s, true).map(|()| ServiceName(s.to_owned()))
    }
}

impl FromStr for Namespace {
    type Err = LabelError;
    fn from_str(s: &str) -> Result<Self, LabelError> {
        check_label(s, false).map(|()| Namespace(s.to_owned()))
    }
}

impl ServiceName {
    /// The validated name, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Namespace {
    /// The validated name, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// DNS-1035 (`letter_first`) or DNS-1123 label, the rules of Kubernetes' validation package.
fn check_label(s: &str, letter_first: bool) -> Result<(), LabelError> {
    let Some(first) = s.chars().next() else {
        return Err(LabelError::Empty);
    };
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(LabelError::Character(bad));
    }
    // Only ASCII from here on, so the byte length is the character count.
    if s.len() > LABEL_MAX_LEN {
        return Err(LabelError::TooLong(s.len()));
    }
    if letter_first && !first.is_ascii_lowercase() {
        return Err(LabelError::StartLetter);
    }
    if !letter_first && first == '-' {
        return Err(LabelError::StartAlnum);
    }
    if s.ends_with('-') {
        return Err(LabelError::End);
    }
    Ok(())
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The webhook's Service: the first label of every name in the serving certificate.
    pub service: ServiceName,
    /// The Service's namespace: the second label of the qualified names.
    pub namespace: Namespace,
    /// Validity of the serving certificate, in days.
    pub days: u32,
    /// Validity of the CA, in days.
    pub ca_days: u32,
}

impl Request {
    /// A request from unvalidated command-line input; every name is checked.
    pub fn new(
        service: &str,
        namespace: &str,
        days: u32,
        ca_days: u32,
    ) -> Result<Self, CertsError> {
        let service = service.parse().map_err(|reason| CertsError::InvalidName {
            what: "service name",
            name: service.to_owned(),
            reason,
        })?;
        let namespace = namespace
            .parse()
            .map_err(|reason| CertsError::InvalidName {
                what: "namespace",
                name: namespace.to_owned(),
                reason,
            })?;
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(CertsError::Days(days));
        }
        if !(1..=MAX_DAYS).contains(&ca_days) {
            return Err(CertsError::CaDays(ca_days));
        }
        if days > ca_days {
            return Err(CertsError::OutlivesCa { days, ca_days });
        }
        Ok(Request {
            service,
            namespace,
            days,
            ca_days,
        })
    }

    /// The names the Service answers to: `NAME`, `NAME.NS`, `NAME.NS.svc` (what the API server
    /// dials for a `service` webhook reference) and `NAME.NS.svc.cluster.local`.
    pub fn dns_names(&self) -> Vec<String> {
        let (s, n) = (&self.service, &self.namespace);
        vec![
            format!("{s}"),
            format!("{s}.{n}"),
            format!("{s}.{n}.svc"),
            format!("{s}.{n}.svc.cluster.local"),
        ]
    }
}

/// One file of [`Generated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    /// The file name, as the Secret key of a `kubernetes.io/tls` Secret expects it.
    pub name: &'static str,
    /// The PEM text.
    pub pem: &'a str,
    /// A private key: to be written readable by its owner only.
    pub secret: bool,
}

/// A CA and a serving certificate signed by it, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Generated {
    /// The self-signed CA certificate, whose base64 is the `caBundle` ([`Generated::ca_bundle`]).
    pub ca_cert_pem: String,
    /// The CA's private key (PKCS#8); only needed to sign a later serving certificate.
    pub ca_key_pem: String,
    /// The serving certificate, signed by the CA, for the names of [`Request::dns_names`].
    pub tls_cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub tls_key_pem: String,
}

// The keys stay out of debug output (and so out of logs and panic messages).
impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("tls_cert_pem", &self.tls_cert_pem)
            .finish_non_exhaustive()
    }
}

impl Generated {
    /// The files, with the names the chart, `kubectl create secret tls` and cert-manager use.
    pub fn files(&self) -> [File<'_>; 4] {
        [
            File {
                name: "ca.crt",
                pem: &self.ca_cert_pem,
                secret: false,
            },
            File {
                name: "ca.key",
                pem: &self.ca_key_pem,
                secret: true,
            },
            File {
                name: "tls.crt",
                pem: &self.tls_cert_pem,
                secret: false,
            },
            File {
                name: "tls.key",
                pem: &self.tls_key_pem,
                secret: true,
            },
        ]
    }

    /// The webhook configuration's `caBundle`: base64 of the CA certificate's PEM.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_cert_pem)
    }
}

/// Make a CA valid for `ca_days` and a serving certificate valid for `days` from `now` (each
/// backdated by [`BACKDATE`]).
pub fn generate(req: &Request, now: jiff::Timestamp) -> Result<Generated, CertsError> {
    let secs = u64::try_from(now.as_second()).map_err(|_| CertsError::Clock(now))?;
    let not_before =
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs).saturating_sub(BACKDATE);
    let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
    let rcgen = |what| move |source| CertsError::Rcgen { what, source };

    let ca_key = KeyPair::generate().map_err(rcgen("CA key"))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("tollgate webhook CA for {}.{}", req.service, req.namespace),
    );
    // Path length 0: the CA signs serving certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_before + days(req.ca_days);
    let ca_cert = ca.self_signed(&ca_key).map_err(rcgen("CA certificate"))?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(rcgen("serving key"))?;
    let names = req.dns_names();
    let mut leaf =
        CertificateParams::new(names.clone()).map_err(rcgen("serving certificate names"))?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, names[2].clone());
    leaf.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys sign the handshake; they never encipher a key, so keyEncipherment is absent.
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_before + days(req.days);
    let cert = leaf
        .signed_by(&key, &issuer)
        .map_err(rcgen("serving certificate"))?;

    Ok(Generated {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem,
        tls_cert_pem: cert.pem(),
        tls_key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::plain("tollgate")]
    #[case::with_dash("tollgate-webhook")]
    #[case::with_digits("web1-2")]
    #[case::one_letter("a")]
    #[case::longest(&"a".repeat(63))]
    fn service_names_accepted(#[case] name: &str) {
        assert_eq!(name.parse::<ServiceName>().unwrap().as_str(), name);
    }

    #[rstest]
    #[case::empty("", LabelError::Empty)]
    #[case::too_long(&"a".repeat(64), LabelError::TooLong(64))]
    #[case::uppercase("Tollgate", LabelError::Character('T'))]
    #[case::dot_would_add_a_dns_level("tollgate.x", LabelError::Character('.'))]
    #[case::underscore("toll_gate", LabelError::Character('_'))]
    #[case::non_ascii("tollgäte", LabelError::Character('ä'))]
    #[case::space("toll gate", LabelError::Character(' '))]
    #[case::digit_first_is_dns_1123_only("1tollgate", LabelError::StartLetter)]
    #[case::dash_first("-tollgate", LabelError::StartLetter)]
    #[case::dash_last("tollgate-", LabelError::End)]
    fn service_names_rejected(#[case] name: &str, #[case] why: LabelError) {
        assert_eq!(name.parse::<ServiceName>(), Err(why));
    }

    #[rstest]
    #[case::plain("webhooks")]
    #[case::digit_first("1team")]
    #[case::all_digits("42")]
    #[case::longest(&"n".repeat(63))]
    fn namespaces_accepted(#[case] name: &str) {
        assert_eq!(name.parse::<Namespace>().unwrap().as_str(), name);
    }

    #[rstest]
    #[case::empty("", LabelError::Empty)]
    #[case::too_long(&"n".repeat(64), LabelError::TooLong(64))]
    #[case::uppercase("Default", LabelError::Character('D'))]
    #[case::dot("a.b", LabelError::Character('.'))]
    #[case::dash_first("-ns", LabelError::StartAlnum)]
    #[case::dash_last("ns-", LabelError::End)]
    fn namespaces_rejected(#[case] name: &str, #[case] why: LabelError) {
        assert_eq!(name.parse::<Namespace>(), Err(why));
    }

    #[rstest]
    #[case::zero_days(0, 10, CertsError::Days(0))]
    #[case::zero_ca_days(1, 0, CertsError::CaDays(0))]
    #[case::too_many_days(MAX_DAYS + 1, MAX_DAYS + 1, CertsError::Days(MAX_DAYS + 1))]
    #[case::leaf_outlives_ca(30, 10, CertsError::OutlivesCa { days: 30, ca_days: 10 })]
    fn validity_rejected(#[case] days: u32, #[case] ca_days: u32, #[case] why: CertsError) {
        assert_eq!(Request::new("tollgate", "ns", days, ca_days), Err(why));
    }

    #[test]
    fn a_bad_name_error_says_which_name_and_why() {
        let e = Request::new("tollgate", "Prod", 1, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid namespace \"Prod\": character 'P' is not allowed (only lowercase a-z, 0-9 \
             and '-')"
        );
    }

    #[test]
    fn the_four_service_names() {
        let req = Request::new("tollgate", "webhooks", 365, 3650).unwrap();
        assert_eq!(
            req.dns_names(),
            [
                "tollgate",
                "tollgate.webhooks",
                "tollgate.webhooks.svc",
                "tollgate.webhooks.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn generated_pems_and_ca_bundle() {
        let req = Request::new("tollgate", "webhooks", 1, MAX_DAYS).unwrap();
        let g = generate(&req, "2026-01-01T00:00:00Z".parse().unwrap()).unwrap();
        assert!(g.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(g.tls_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(g.ca_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(g.tls_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(g.ca_key_pem, g.tls_key_pem);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(g.ca_bundle())
            .unwrap();
        assert_eq!(decoded, g.ca_cert_pem.as_bytes());
        let secret: Vec<&str> = g
            .files()
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        assert_eq!(secret, ["ca.key", "tls.key"]);
        assert!(!format!("{g:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_clock_before_1970_is_an_error_not_a_panic() {
        let req = Request::new("tollgate", "webhooks", 1, 1).unwrap();
        let then: jiff::Timestamp = "1969-12-31T00:00:00Z".parse().unwrap();
        assert_eq!(generate(&req, then), Err(CertsError::Clock(then)));
    }
}
