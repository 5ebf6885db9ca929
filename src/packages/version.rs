//! Debian version numbers and the relations `catalog where` filters by.
//!
//! The order is Debian policy §5.6.12 (epoch, then upstream, then revision, each compared as
//! alternating non-digit and digit runs, `~` before everything, even the end). It is the
//! `debversion` crate's, not ours: a comparison written here would be one more place for the
//! "openssl older than 3.0.14-1~deb12u2" question to be answered wrongly. The tests hold it to
//! the real `dpkg --compare-versions` (tests/it/packages.rs).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parsed Debian version (`[epoch:]upstream[-revision]`), ordered as dpkg orders it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DebVersion(debversion::Version);

/// A version string dpkg would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Empty, or only blanks.
    #[error("empty version")]
    Empty,
    /// Not `[epoch:]upstream[-revision]` with Debian's characters.
    #[error("{0:?} is not a Debian version ([epoch:]upstream[-revision])")]
    Syntax(String),
    /// Upstream versions must start with a digit (policy §5.6.12); dpkg warns, we refuse, so a
    /// typo in a constraint does not silently match everything.
    #[error("{0:?}: the upstream version must start with a digit")]
    NoLeadingDigit(String),
}

impl FromStr for DebVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let v: debversion::Version = text
            .parse()
            .map_err(|_| VersionError::Syntax(text.to_owned()))?;
        // dpkg splits at the first colon: whatever precedes one is the epoch, and must be a
        // number. The crate would read `x:1.0` as an upstream version with a colon.
        if v.epoch.is_none() && text.contains(':') {
            return Err(VersionError::Syntax(text.to_owned()));
        }
        if !v.upstream_version.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(VersionError::NoLeadingDigit(text.to_owned()));
        }
        Ok(DebVersion(v))
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Kept as its text (in the catalog's stored scans and in JSON output), read back through
/// [`FromStr`], so a stored version is held to the same rules as a parsed one.
impl serde::Serialize for DebVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DebVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One of dpkg's relations, as written in `Depends:` and `dpkg --compare-versions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `<<`: strictly older.
    Older,
    /// `<=`: older or equal.
    OlderOrEqual,
    /// `=`: equal.
    Equal,
    /// `>=`: newer or equal.
    NewerOrEqual,
    /// `>>`: strictly newer.
    Newer,
}

impl Relation {
    /// The operator as dpkg writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Older => "<<",
            Relation::OlderOrEqual => "<=",
            Relation::Equal => "=",
            Relation::NewerOrEqual => ">=",
            Relation::Newer => ">>",
        }
    }

    /// Whether `ordering` (installed compared with the constraint's version) satisfies it.
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            Relation::Older => ordering == Ordering::Less,
            Relation::OlderOrEqual => ordering != Ordering::Greater,
            Relation::Equal => ordering == Ordering::Equal,
            Relation::NewerOrEqual => ordering != Ordering::Less,
            Relation::Newer => ordering == Ordering::Greater,
        }
    }
}

/// `<< 3.0.14-1~deb12u2`: a relation and a version, the filter of `catalog where`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// How the installed version must relate to `version`.
    pub relation: Relation,
    /// The version compared with.
    pub version: DebVersion,
}

/// A constraint that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// No operator, or one dpkg does not have.
    #[error(
        "{0:?}: a constraint is an operator (<<, <=, =, >=, >>) and a version, as in \"<< 3.0.14-1~deb12u2\""
    )]
    Operator(String),
    /// `<` and `>` meant "or equal" in old dpkg and are deprecated; refused, not guessed.
    #[error(
        "{0:?}: `<` and `>` are ambiguous in dpkg (they once meant <= and >=); write << or <=, >> or >="
    )]
    Ambiguous(String),
    /// The version part.
    #[error(transparent)]
    Version(#[from] VersionError),
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        // Longest operators first: `<<` before `<`.
        let ops = [
            ("<<", Relation::Older),
            ("<=", Relation::OlderOrEqual),
            (">=", Relation::NewerOrEqual),
            (">>", Relation::Newer),
            ("=", Relation::Equal),
        ];
        for (op, relation) in ops {
            if let Some(rest) = t.strip_prefix(op) {
                return Ok(Constraint {
                    relation,
                    version: rest.parse()?,
                });
            }
        }
        if t.starts_with('<') || t.starts_with('>') {
            return Err(ConstraintError::Ambiguous(t.to_owned()));
        }
        Err(ConstraintError::Operator(t.to_owned()))
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.relation.as_str(), self.version)
    }
}

impl Constraint {
    /// Whether `installed` satisfies the constraint.
    pub fn matches(&self, installed: &DebVersion) -> bool {
        self.relation.holds(installed.cmp(&self.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn v(s: &str) -> DebVersion {
        s.parse().unwrap()
    }

    #[rstest]
    #[case::tilde_before_release("3.0.14-1~deb12u1", "3.0.14-1", Ordering::Less)]
    #[case::tilde_before_end("1.0~rc1", "1.0", Ordering::Less)]
    #[case::double_tilde("1.0~~", "1.0~", Ordering::Less)]
    #[case::security_update("3.0.14-1~deb12u2", "3.0.14-1~deb12u1", Ordering::Greater)]
    #[case::epoch_wins("1:0.1", "9.9", Ordering::Greater)]
    #[case::zero_epoch_is_none("0:1.0-1", "1.0-1", Ordering::Equal)]
    #[case::numeric_not_lexical("1.10", "1.9", Ordering::Greater)]
    #[case::leading_zeros("1.001", "1.1", Ordering::Equal)]
    #[case::letters_before_non_letters("1.0a", "1.0+", Ordering::Less)]
    #[case::plus_after_end("1.0+dfsg", "1.0", Ordering::Greater)]
    #[case::hyphen_in_upstream("1.0-2-3", "1.0-2-2", Ordering::Greater)]
    #[case::no_revision_is_older("1.0", "1.0-0", Ordering::Equal)]
    #[case::huge_digits(
        "1.99999999999999999999999",
        "1.99999999999999999999998",
        Ordering::Greater
    )]
    fn orders_as_dpkg(#[case] a: &str, #[case] b: &str, #[case] want: Ordering) {
        assert_eq!(v(a).cmp(&v(b)), want, "{a} vs {b}");
        assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
    }

    #[rstest]
    #[case::empty("", VersionError::Empty)]
    #[case::space_inside("1.0 2", VersionError::Syntax("1.0 2".into()))]
    #[case::letter_first("abc", VersionError::NoLeadingDigit("abc".into()))]
    #[case::bad_epoch("x:1.0", VersionError::Syntax("x:1.0".into()))]
    fn refuses_what_dpkg_refuses(#[case] text: &str, #[case] want: VersionError) {
        assert_eq!(text.parse::<DebVersion>(), Err(want));
    }

    #[rstest]
    #[case("<< 3.0.14-1~deb12u2", "3.0.11-1~deb12u2", true)]
    #[case("<< 3.0.14-1~deb12u2", "3.0.14-1~deb12u2", false)]
    #[case("<=3.0.14-1~deb12u2", "3.0.14-1~deb12u2", true)]
    #[case("= 1:2.0", "1:2.0", true)]
    #[case(">= 2.0", "1:1.0", true)]
    #[case(">> 2.0", "2.0", false)]
    fn constraints_match(#[case] c: &str, #[case] installed: &str, #[case] want: bool) {
        let c: Constraint = c.parse().unwrap();
        assert_eq!(c.matches(&v(installed)), want, "{installed} {c}");
    }

    #[rstest]
    #[case("< 1.0")]
    #[case("> 1.0")]
    fn deprecated_operators_are_refused(#[case] c: &str) {
        assert!(matches!(
            c.parse::<Constraint>(),
            Err(ConstraintError::Ambiguous(_))
        ));
    }

    #[test]
    fn a_constraint_without_operator_says_what_one_is() {
        let e = "3.0".parse::<Constraint>().unwrap_err();
        assert!(e.to_string().contains("<< 3.0.14-1~deb12u2"), "{e}");
    }
}
