//! Trusted identities as notation's trust policies write them (trust-store-trust-policy.md):
//! `*`, or `x509.subject: ` and a distinguished name whose attributes a signing certificate's
//! subject must carry.

use super::x509;

/// One of a notation signer's `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any certificate that chains to the trust store.
    Any,
    /// `x509.subject: <DN>`: a certificate whose subject has each of these attributes, with
    /// these values (it may have more: trust-store-trust-policy.md matches the DN's
    /// attributes, not its text).
    Subject(Vec<(String, String)>),
}

impl std::fmt::Display for TrustedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustedIdentity::Any => f.write_str("*"),
            TrustedIdentity::Subject(dn) => write!(f, "x509.subject: {}", x509::shown_dn(dn)),
        }
    }
}

impl TrustedIdentity {
    /// Whether a certificate of subject `dn` is this identity.
    pub fn matches(&self, dn: &[(String, String)]) -> bool {
        match self {
            TrustedIdentity::Any => true,
            TrustedIdentity::Subject(want) => want
                .iter()
                .all(|(k, v)| dn.iter().any(|(dk, dv)| dk == k && dv == v)),
        }
    }
}

/// The prefix of a subject identity.
pub const SUBJECT_PREFIX: &str = "x509.subject:";

/// Parse one trusted identity as a policy writes it: `*`, or `x509.subject: ` and a
/// distinguished name. The error says what is wrong, with a suggestion where one fits.
pub fn parse_identity(text: &str) -> Result<TrustedIdentity, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(TrustedIdentity::Any);
    }
    let Some((kind, dn)) = text.split_once(':') else {
        return Err(format!(
            "{text:?} is neither \"*\" nor \"{SUBJECT_PREFIX} <distinguished name>\""
        ));
    };
    if kind.trim() != "x509.subject" {
        let hint = if strsim::jaro_winkler(kind.trim(), "x509.subject") > 0.8 {
            " (did you mean x509.subject?)"
        } else {
            ""
        };
        return Err(format!(
            "identity type {:?} is not supported: write \"{SUBJECT_PREFIX} <distinguished \
             name>\" or \"*\"{hint}",
            kind.trim()
        ));
    }
    parse_dn(dn).map(TrustedIdentity::Subject)
}

/// A distinguished name as notation's trust policies write it (RFC 4514 text,
/// `C=US, ST=WA, O=acme`, `\` escaping a special character). It must name C, ST and O
/// (trust-store-trust-policy.md: the minimum an x509.subject identity names), each
/// attribute at most once.
pub fn parse_dn(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => return Err("the distinguished name ends in a lone \\".into()),
            },
            ',' => parts.push(std::mem::take(&mut cur)),
            '+' => {
                return Err("multi-valued RDNs (+) are not supported in a trusted identity".into());
            }
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut out: Vec<(String, String)> = Vec::new();
    for part in parts {
        let part = part.trim();
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("{part:?} is not an attribute=value pair"));
        };
        let k = k.trim().to_ascii_uppercase();
        if !x509::DN_ATTRIBUTES.iter().any(|(n, _)| *n == k) {
            // Attribute names are one to a dozen letters: an edit away, and of the same
            // length first (CM is CN, not C).
            let best = x509::DN_ATTRIBUTES
                .iter()
                .map(|(n, _)| (*n, strsim::levenshtein(n, &k), n.len().abs_diff(k.len())))
                .filter(|(_, d, _)| *d <= (k.len() / 3).max(1))
                .min_by_key(|(_, d, l)| (*d, *l));
            let names: Vec<&str> = x509::DN_ATTRIBUTES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "attribute {k:?} is not one of {}{}",
                names.join(", "),
                best.map_or_else(String::new, |(n, _, _)| format!(" (did you mean {n}?)"))
            ));
        }
        let value = unescape(v.trim());
        if value.is_empty() {
            return Err(format!("attribute {k} has an empty value"));
        }
        if out.iter().any(|(o, _)| *o == k) {
            return Err(format!("attribute {k} is given twice"));
        }
        out.push((k, value));
    }
    let missing: Vec<&str> = ["C", "ST", "O"]
        .into_iter()
        .filter(|m| !out.iter().any(|(k, _)| k == m))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the distinguished name must name C, ST and O at least; it has no {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}
