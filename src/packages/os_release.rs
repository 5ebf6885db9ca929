//! os-release(5): which distribution and release an image is, from the file its layers end
//! with. The release's codename is what the security tracker keys its data by (`bookworm`).

/// What an os-release file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsRelease {
    /// `ID`, lowercased; empty when the file has none.
    pub id: String,
    /// `ID_LIKE`, split on whitespace, lowercased.
    pub id_like: Vec<String>,
    /// `PRETTY_NAME` without its quotes, for messages.
    pub pretty_name: Option<String>,
    /// `VERSION_ID` (`12`); Debian testing and sid have none.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`), lowercased.
    pub version_codename: Option<String>,
}

impl OsRelease {
    /// Whether `ID` is `debian` or `ID_LIKE` lists it: Debian and its derivatives (Ubuntu's
    /// `ID_LIKE` is `debian`).
    pub fn is_debian(&self) -> bool {
        self.id == "debian" || self.id_like.iter().any(|l| l == "debian")
    }
}

/// Parse os-release(5): `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        let some = |v: String| (!v.is_empty()).then_some(v);
        match key.trim() {
            "ID" => out.id = value.to_ascii_lowercase(),
            "ID_LIKE" => {
                out.id_like = value
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            }
            "PRETTY_NAME" => out.pretty_name = Some(value),
            "VERSION_ID" => out.version_id = some(value),
            "VERSION_CODENAME" => out.version_codename = some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_release_fields_are_read() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        assert!(os.is_debian());
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn sid_has_no_version() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nVERSION_CODENAME=\nID=debian\n",
        );
        assert_eq!(os.version_id, None);
        assert_eq!(os.version_codename, None);
    }
}
