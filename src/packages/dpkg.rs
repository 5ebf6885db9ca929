//! The dpkg database as an image carries it: `/var/lib/dpkg/status`, and distroless's
//! `/var/lib/dpkg/status.d/<name>` (one stanza file per package). Read, never executed: the
//! text is attacker input, so a stanza that cannot be read is reported with its line and the
//! rest is still read.

use super::version::DebVersion;

/// One package of a status file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// `Package:`.
    pub name: String,
    /// `Version:`, parsed.
    pub version: DebVersion,
    /// `Architecture:` (`amd64`, `all`, …); empty when the stanza has none.
    pub architecture: String,
    /// The source package: `Source:`'s name, else the package's own name.
    pub source: String,
    /// The source version: the one in `Source: name (version)` (binNMUs and renamed binaries
    /// carry their own), else `Version:`. Security data is keyed by source version.
    pub source_version: DebVersion,
    /// `Status:`.
    pub status: Status,
}

/// `Status: want flag state`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// `install`, `hold`, `deinstall`, `purge` or `unknown`.
    pub want: String,
    /// `installed`, `config-files`, `half-installed`, `unpacked`, …
    pub state: String,
}

impl Status {
    /// Whether the package's files are on disk, and so whether its vulnerabilities are the
    /// image's. `config-files` and `not-installed` (a removed or purged package) and
    /// `half-installed` (an interrupted unpack, which dpkg itself will not configure) do not
    /// count. The *state* decides, not the *want*: `deinstall ok installed` (`dpkg -l`'s `ri`)
    /// is still installed, because a removal that was only requested removed nothing, and
    /// missing it would be a vulnerable package reported as absent.
    pub fn is_installed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "installed" | "unpacked" | "half-configured" | "triggers-awaited" | "triggers-pending"
        )
    }
}

/// A stanza that was skipped, with why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StanzaError {
    /// The stanza's first line (1-based) in the file.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// What a status file held.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusFile {
    /// Every readable stanza, installed or not (callers filter with [`Status::is_installed`]).
    pub packages: Vec<Package>,
    /// The stanzas that could not be read.
    pub errors: Vec<StanzaError>,
}

/// Read a status file (or one `status.d` entry: the same format).
pub fn parse_status(text: &str) -> StatusFile {
    let mut out = StatusFile::default();
    let mut stanza: Vec<(&str, &str)> = Vec::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                push(&mut out, start, &stanza);
                stanza.clear();
            }
            continue;
        }
        if stanza.is_empty() {
            start = i + 1;
        }
        // Continuation lines (descriptions, conffiles) carry no field we read.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => stanza.push((k.trim(), v.trim())),
            None => {
                // Keep the stanza: a stray line is noted, the fields around it still count.
                out.errors.push(StanzaError {
                    line: i + 1,
                    message: format!("not a `Field: value` line: {:?}", clip(line)),
                });
            }
        }
    }
    if !stanza.is_empty() {
        push(&mut out, start, &stanza);
    }
    out
}

fn push(out: &mut StatusFile, line: usize, fields: &[(&str, &str)]) {
    match package(fields) {
        Ok(p) => out.packages.push(p),
        Err(message) => out.errors.push(StanzaError { line, message }),
    }
}

fn package(fields: &[(&str, &str)]) -> Result<Package, String> {
    // Field names are case-insensitive in deb822.
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let name = get("Package")
        .filter(|n| !n.is_empty())
        .ok_or("a stanza without `Package:`")?;
    let version_text = get("Version").ok_or_else(|| format!("{name}: no `Version:`"))?;
    let version: DebVersion = version_text.parse().map_err(|e| format!("{name}: {e}"))?;
    let status = match get("Status").map(|s| s.split_whitespace().collect::<Vec<_>>()) {
        Some(words) if words.len() == 3 => Status {
            want: words[0].to_owned(),
            state: words[2].to_owned(),
        },
        // distroless's status.d entries have no `Status:`: a file there is an installed package.
        None => Status {
            want: "install".to_owned(),
            state: "installed".to_owned(),
        },
        Some(words) => {
            return Err(format!(
                "{name}: `Status:` must be three words (want flag state), not {:?}",
                words.join(" ")
            ));
        }
    };
    let (source, source_version) = match get("Source") {
        None | Some("") => (name.to_owned(), version.clone()),
        Some(s) => match s.split_once('(') {
            Some((src, rest)) => {
                let v = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("{name}: `Source: {s}` has no closing parenthesis"))?;
                let v: DebVersion = v.parse().map_err(|e| format!("{name}: Source: {e}"))?;
                (src.trim().to_owned(), v)
            }
            None => (s.to_owned(), version.clone()),
        },
    };
    Ok(Package {
        name: name.to_owned(),
        version,
        architecture: get("Architecture").unwrap_or("").to_owned(),
        source,
        source_version,
        status,
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const STATUS: &str = "\
Package: libssl3
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit - shared libraries
 This package is part of the OpenSSL project's implementation.
 .
 It provides the libssl and libcrypto shared libraries.

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0-1

Package: broken
Status: install ok installed
Version: not a version

Package: halfway
Status: install reinstreq half-installed
Version: 2.0-1
";

    #[test]
    fn reads_a_real_shaped_status_file() {
        let f = parse_status(STATUS);
        let names: Vec<_> = f.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libssl3", "libgcc-s1", "oldpkg", "halfway"]);
        let ssl = &f.packages[0];
        assert_eq!(ssl.source, "openssl");
        assert_eq!(ssl.source_version.to_string(), "3.0.11-1~deb12u2");
        assert_eq!(ssl.architecture, "amd64");
        assert!(ssl.status.is_installed());
        let gcc = &f.packages[1];
        assert_eq!(
            (gcc.source.as_str(), gcc.source_version.to_string()),
            ("gcc-12", "12.2.0-14".into())
        );
        assert!(
            !f.packages[2].status.is_installed(),
            "config-files is removed"
        );
        assert!(
            !f.packages[3].status.is_installed(),
            "half-installed does not count"
        );
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.errors[0].line, 24);
        assert!(f.errors[0].message.starts_with("broken:"), "{:?}", f.errors);
    }

    #[rstest]
    #[case::installed("install ok installed", true)]
    #[case::requested_removal_removes_nothing("deinstall ok installed", true)]
    #[case::removed("deinstall ok config-files", false)]
    #[case::purged("purge ok not-installed", false)]
    #[case::half_installed("install reinstreq half-installed", false)]
    #[case::unpacked("install ok unpacked", true)]
    #[case::triggers("install ok triggers-pending", true)]
    fn the_state_decides_installed(#[case] status: &str, #[case] want: bool) {
        let f = parse_status(&format!("Package: p\nStatus: {status}\nVersion: 1.0\n"));
        assert_eq!(f.packages[0].status.is_installed(), want);
    }

    #[test]
    fn a_distroless_entry_without_status_is_installed() {
        let f = parse_status("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
        assert!(f.packages[0].status.is_installed());
        assert_eq!(f.packages[0].source, "tzdata");
    }

    #[rstest]
    #[case::no_package("Version: 1.0\n", "without `Package:`")]
    #[case::no_version("Package: x\n", "x: no `Version:`")]
    #[case::bad_status("Package: x\nVersion: 1\nStatus: installed\n", "three words")]
    #[case::unclosed_source("Package: x\nVersion: 1\nSource: y (1.0\n", "closing parenthesis")]
    fn a_bad_stanza_is_reported_with_its_line(#[case] text: &str, #[case] want: &str) {
        let f = parse_status(&format!("Package: ok\nVersion: 1\n\n{text}"));
        assert_eq!(f.packages.len(), 1, "the good stanza is still read");
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.errors[0].line, 4);
        assert!(f.errors[0].message.contains(want), "{:?}", f.errors[0]);
    }

    #[test]
    fn crlf_and_missing_final_newline_are_read() {
        let f = parse_status("Package: a\r\nVersion: 1.0\r\n\r\nPackage: b\r\nVersion: 2.0");
        assert_eq!(f.packages.len(), 2);
        assert_eq!(f.packages[1].version.to_string(), "2.0");
    }
}
