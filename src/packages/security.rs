//! Security data for Debian packages, from its two public formats, and what it says about one
//! installed source package.
//!
//! - The Debian Security Tracker's JSON export (`security-tracker.debian.org/tracker/data/json`):
//!   source package → vulnerability id → `releases` → codename → `{status, fixed_version,
//!   urgency, nodsa, nodsa_reason}`. `fixed_version: "0"` means the release was never affected;
//!   `status: open` is a known issue without a fix in that release.
//! - OSV records (`ecosystem: "Debian:12"`), whose `fixed` events name the fixed version.
//!
//! Both become [`Advisory`] rows keyed by (release codename, source package, id). The tracker's
//! export is read as a stream, one source package at a time, so a 60 MB file is never held as
//! a whole document.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde::de::{DeserializeSeed, MapAccess, Visitor};

use super::version::DebVersion;

/// What an advisory says about a source package in one release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "version")]
pub enum Fix {
    /// Fixed in this version: anything older needs the update.
    Fixed(DebVersion),
    /// The release was never affected (the tracker's `fixed_version: "0"`).
    NotAffected,
    /// Affected, and no fix is in the release yet (`open`): reported apart, never as "needs
    /// update".
    NoFixYet,
    /// Not yet known whether the release is affected (`undetermined`).
    Undetermined,
}

impl Fix {
    /// The stored name of the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fix::Fixed(_) => "fixed",
            Fix::NotAffected => "not-affected",
            Fix::NoFixYet => "no-fix-yet",
            Fix::Undetermined => "undetermined",
        }
    }
}

/// One advisory row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advisory {
    /// The release codename (`bookworm`).
    pub release: String,
    /// The source package.
    pub package: String,
    /// The vulnerability (`CVE-2024-5535`, `DSA-5678-1`, `TEMP-…`).
    pub id: String,
    /// What is known about a fix.
    pub fix: Fix,
    /// The tracker's urgency (`unimportant`, `low`, `medium`, `high`, `not yet assigned`, …).
    pub urgency: Option<String>,
    /// Why no advisory (DSA) will be issued, when the tracker says so: shown, never hidden.
    pub nodsa: Option<String>,
    /// The tracker's class of that reason (`postponed`, `ignored`).
    pub nodsa_reason: Option<String>,
}

/// An entry that could not be read: the rest was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdvisoryError {
    /// `package/id/release`, or the record's id.
    pub at: String,
    /// Why.
    pub message: String,
}

/// What a file gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advisories {
    /// The rows, in file order.
    pub rows: Vec<Advisory>,
    /// Entries that could not be read.
    pub errors: Vec<AdvisoryError>,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("not the Debian security tracker's JSON: {0}")]
pub struct TrackerError(#[source] serde_json::Error);

#[derive(Deserialize)]
struct TrackerCve {
    #[serde(default)]
    releases: BTreeMap<String, TrackerRelease>,
}

#[derive(Deserialize)]
struct TrackerRelease {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    nodsa: Option<String>,
    #[serde(default)]
    nodsa_reason: Option<String>,
}

/// Read the tracker's JSON from `input`, keeping the releases `keep` accepts.
pub fn read_tracker<R: Read>(
    input: R,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Advisories, TrackerError> {
    let mut out = Advisories::default();
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, input));
    Packages {
        out: &mut out,
        keep,
    }
    .deserialize(&mut de)
    .map_err(TrackerError)?;
    de.end().map_err(TrackerError)?;
    Ok(out)
}

/// The top-level map, one source package at a time.
struct Packages<'a> {
    out: &'a mut Advisories,
    keep: &'a dyn Fn(&str) -> bool,
}

impl<'de> DeserializeSeed<'de> for Packages<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Packages<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of source packages")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(package) = map.next_key::<String>()? {
            let cves: BTreeMap<String, TrackerCve> = map.next_value()?;
            for (id, cve) in cves {
                for (release, r) in cve.releases {
                    if !(self.keep)(&release) {
                        continue;
                    }
                    match tracker_fix(&r) {
                        Ok(fix) => self.out.rows.push(Advisory {
                            release,
                            package: package.clone(),
                            id: id.clone(),
                            fix,
                            urgency: r.urgency.filter(|u| !u.is_empty()),
                            nodsa: r.nodsa.filter(|n| !n.is_empty()),
                            nodsa_reason: r.nodsa_reason.filter(|n| !n.is_empty()),
                        }),
                        Err(message) => self.out.errors.push(AdvisoryError {
                            at: format!("{package}/{id}/{release}"),
                            message,
                        }),
                    }
                }
            }
        }
        Ok(())
    }
}

fn tracker_fix(r: &TrackerRelease) -> Result<Fix, String> {
    let fixed = r
        .fixed_version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (r.status.as_deref(), fixed) {
        (_, Some("0")) => Ok(Fix::NotAffected),
        (Some("resolved"), Some(v)) => v
            .parse()
            .map(Fix::Fixed)
            .map_err(|e| format!("fixed_version: {e}")),
        (Some("resolved"), None) => Err("resolved without a fixed_version".into()),
        (Some("open"), _) => Ok(Fix::NoFixYet),
        (Some("undetermined"), _) => Ok(Fix::Undetermined),
        (Some(other), _) => Err(format!("unknown status {other:?}")),
        (None, _) => Err("no status".into()),
    }
}

/// Debian's release numbers and codenames, for OSV's `Debian:12`.
pub const RELEASES: &[(&str, &str)] = &[
    ("7", "wheezy"),
    ("8", "jessie"),
    ("9", "stretch"),
    ("10", "buster"),
    ("11", "bullseye"),
    ("12", "bookworm"),
    ("13", "trixie"),
    ("14", "forky"),
    ("15", "duke"),
];

/// The codename of OSV ecosystem `Debian:N` (or `Debian:codename`); `None` for another
/// ecosystem or an unknown number.
pub fn osv_release(ecosystem: &str) -> Option<&'static str> {
    let n = ecosystem.strip_prefix("Debian:")?.trim();
    RELEASES
        .iter()
        .find(|(num, name)| *num == n || *name == n)
        .map(|(_, name)| *name)
}

#[derive(Deserialize)]
struct OsvRecord {
    id: String,
    #[serde(default)]
    affected: Vec<OsvAffected>,
}

#[derive(Deserialize)]
struct OsvAffected {
    package: OsvPackage,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<BTreeMap<String, String>>,
}

/// Read one OSV record (or a JSON array of them), keeping its Debian entries whose release
/// `keep` accepts.
pub fn read_osv(text: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<Advisories, TrackerError> {
    let records: Vec<OsvRecord> =
        match serde_json::from_slice::<serde_json::Value>(text).map_err(TrackerError)? {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(TrackerError)?,
            one => vec![serde_json::from_value(one).map_err(TrackerError)?],
        };
    let mut out = Advisories::default();
    for r in records {
        for a in r.affected {
            let Some(release) = osv_release(&a.package.ecosystem) else {
                continue;
            };
            if !keep(release) {
                continue;
            }
            let urgency = [&a.ecosystem_specific, &a.database_specific]
                .into_iter()
                .flatten()
                .find_map(|v| v.get("urgency").and_then(|u| u.as_str()).map(str::to_owned));
            let fixed: Vec<&str> = a
                .ranges
                .iter()
                .filter(|r| r.kind == "ECOSYSTEM")
                .flat_map(|r| r.events.iter())
                .filter_map(|e| e.get("fixed").map(String::as_str))
                .collect();
            let fix = match fixed.as_slice() {
                [] => Ok(Fix::NoFixYet),
                ["0"] => Ok(Fix::NotAffected),
                [v] => v.parse().map(Fix::Fixed).map_err(|e| format!("fixed: {e}")),
                _ => Err("more than one fixed version in one release: not read".to_owned()),
            };
            match fix {
                Ok(fix) => out.rows.push(Advisory {
                    release: release.to_owned(),
                    package: a.package.name.clone(),
                    id: r.id.clone(),
                    fix,
                    urgency,
                    nodsa: None,
                    nodsa_reason: None,
                }),
                Err(message) => out.errors.push(AdvisoryError {
                    at: format!("{}/{}", r.id, a.package.name),
                    message,
                }),
            }
        }
    }
    Ok(out)
}

/// The tracker's urgencies, least first; `not yet assigned` and unknown words rank as medium
/// (unknown is not unimportant), `end-of-life` lowest. A trailing `*` or `**` (the tracker's
/// mark for an urgency taken from elsewhere) is ignored.
pub fn urgency_rank(urgency: Option<&str>) -> u8 {
    match urgency.map(|u| u.trim_end_matches('*').trim()) {
        Some("end-of-life") => 0,
        Some("unimportant") => 1,
        Some("low") => 2,
        Some("high") => 4,
        Some("critical") => 5,
        _ => 3,
    }
}

/// What one advisory means for an installed source version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A fixed version exists and the installed one is older.
    NeedsUpdate,
    /// Affected, and no fix exists in the release.
    NoFixYet,
    /// The installed version has the fix, or the release was never affected.
    Fine,
    /// Not known yet.
    Undetermined,
}

/// Judge `installed` (a source version) against `fix`.
pub fn judge(installed: &DebVersion, fix: &Fix) -> Verdict {
    match fix {
        Fix::Fixed(v) if installed < v => Verdict::NeedsUpdate,
        Fix::Fixed(_) | Fix::NotAffected => Verdict::Fine,
        Fix::NoFixYet => Verdict::NoFixYet,
        Fix::Undetermined => Verdict::Undetermined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const TRACKER: &str = r#"{
      "openssl": {
        "CVE-2024-5535": {"description": "x", "scope": "remote", "releases": {
          "bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.14-1~deb12u1"}, "fixed_version": "3.0.14-1~deb12u1", "urgency": "not yet assigned"},
          "bullseye": {"status": "resolved", "repositories": {}, "fixed_version": "0", "urgency": "unimportant"},
          "trixie": {"status": "open", "repositories": {}, "urgency": "low", "nodsa": "Minor issue", "nodsa_reason": "postponed"}
        }},
        "CVE-2099-0001": {"releases": {"bookworm": {"status": "undetermined", "urgency": "not yet assigned"}}},
        "CVE-2099-0002": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "not a version!", "urgency": "low"}}}
      },
      "zlib": {"CVE-2023-45853": {"releases": {"bookworm": {"status": "open", "fixed_version": "", "urgency": "unimportant", "nodsa": "", "nodsa_reason": ""}}}}
    }"#;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn the_tracker_export_becomes_rows_and_each_edge_case_keeps_its_meaning() {
        let a = read_tracker(TRACKER.as_bytes(), &all).unwrap();
        let got: Vec<(String, String, String, Fix)> = a
            .rows
            .iter()
            .map(|r| {
                (
                    r.package.clone(),
                    r.id.clone(),
                    r.release.clone(),
                    r.fix.clone(),
                )
            })
            .collect();
        let v = |s: &str| s.parse::<DebVersion>().unwrap();
        assert_eq!(
            got,
            [
                (
                    "openssl".into(),
                    "CVE-2024-5535".into(),
                    "bookworm".into(),
                    Fix::Fixed(v("3.0.14-1~deb12u1"))
                ),
                (
                    "openssl".into(),
                    "CVE-2024-5535".into(),
                    "bullseye".into(),
                    Fix::NotAffected
                ),
                (
                    "openssl".into(),
                    "CVE-2024-5535".into(),
                    "trixie".into(),
                    Fix::NoFixYet
                ),
                (
                    "openssl".into(),
                    "CVE-2099-0001".into(),
                    "bookworm".into(),
                    Fix::Undetermined
                ),
                (
                    "zlib".into(),
                    "CVE-2023-45853".into(),
                    "bookworm".into(),
                    Fix::NoFixYet
                ),
            ]
        );
        let trixie = &a.rows[2];
        assert_eq!(trixie.nodsa.as_deref(), Some("Minor issue"));
        assert_eq!(trixie.nodsa_reason.as_deref(), Some("postponed"));
        assert_eq!(a.rows[4].nodsa, None, "an empty nodsa is none");
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].at, "openssl/CVE-2099-0002/bookworm");
    }

    #[test]
    fn releases_not_kept_are_not_read() {
        let a = read_tracker(TRACKER.as_bytes(), &|r| r == "bookworm").unwrap();
        assert!(a.rows.iter().all(|r| r.release == "bookworm"));
        assert_eq!(a.rows.len(), 3);
    }

    #[rstest]
    #[case::not_json("<html>rate limited</html>")]
    #[case::array("[1, 2]")]
    #[case::truncated(r#"{"openssl": {"CVE-1": {"releases": {"bookworm": {"status": "open""#)]
    #[case::trailing(r#"{} {}"#)]
    fn a_file_that_is_not_the_export_is_an_error(#[case] text: &str) {
        assert!(read_tracker(text.as_bytes(), &all).is_err());
    }

    #[test]
    fn osv_records_map_debian_numbers_to_codenames() {
        let osv = r#"{
          "id": "DEBIAN-CVE-2024-5535", "modified": "2024-07-01T00:00:00Z",
          "affected": [
            {"package": {"ecosystem": "Debian:12", "name": "openssl"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.14-1~deb12u1"}]}],
             "ecosystem_specific": {"urgency": "low"}},
            {"package": {"ecosystem": "Debian:13", "name": "openssl"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]},
            {"package": {"ecosystem": "PyPI", "name": "cryptography"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "42"}]}]}
          ]}"#;
        let a = read_osv(osv.as_bytes(), &all).unwrap();
        assert_eq!(a.rows.len(), 2);
        assert_eq!(a.rows[0].release, "bookworm");
        assert_eq!(
            a.rows[0].fix,
            Fix::Fixed("3.0.14-1~deb12u1".parse().unwrap())
        );
        assert_eq!(a.rows[0].urgency.as_deref(), Some("low"));
        assert_eq!(a.rows[1].release, "trixie");
        assert_eq!(a.rows[1].fix, Fix::NoFixYet);
    }

    #[rstest]
    #[case("Debian:12", Some("bookworm"))]
    #[case("Debian:11", Some("bullseye"))]
    #[case("Debian:trixie", Some("trixie"))]
    #[case("Debian:99", None)]
    #[case("Ubuntu:22.04", None)]
    fn osv_ecosystems(#[case] eco: &str, #[case] want: Option<&str>) {
        assert_eq!(osv_release(eco), want);
    }

    #[rstest]
    #[case("3.0.11-1~deb12u2", "3.0.14-1~deb12u1", Verdict::NeedsUpdate)]
    #[case("3.0.14-1~deb12u1", "3.0.14-1~deb12u1", Verdict::Fine)]
    #[case("3.0.14-1~deb12u2", "3.0.14-1~deb12u1", Verdict::Fine)]
    #[case("3.0.14-1~deb12u1~pre1", "3.0.14-1~deb12u1", Verdict::NeedsUpdate)]
    #[case("1:1.0-1", "2.0-1", Verdict::Fine)]
    fn fixed_versions_are_compared_in_debian_order(
        #[case] installed: &str,
        #[case] fixed: &str,
        #[case] want: Verdict,
    ) {
        let fix = Fix::Fixed(fixed.parse().unwrap());
        assert_eq!(judge(&installed.parse().unwrap(), &fix), want);
    }

    #[test]
    fn urgencies_rank_unknown_as_medium() {
        assert!(urgency_rank(Some("high")) > urgency_rank(Some("not yet assigned")));
        assert_eq!(urgency_rank(Some("low**")), urgency_rank(Some("low")));
        assert_eq!(urgency_rank(None), urgency_rank(Some("medium")));
        assert!(urgency_rank(Some("unimportant")) < urgency_rank(Some("low")));
    }
}
