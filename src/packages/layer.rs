//! One layer's part of the dpkg database, read from its blob as a stream: the status file,
//! distroless `status.d` entries, os-release, and the whiteouts that delete lower layers' copies.
//!
//! Pure over a `Read`: the caller streams the blob from the registry into it, and nothing is held
//! whole in memory but the few files read. Every read is bounded: the layer's expanded size (a
//! small gzip can expand enormously), and each file kept.

use std::io::{self, BufRead, BufReader, Read};

use super::dpkg::{StatusFile, parse_status};

/// The dpkg database's status file.
pub const STATUS: &str = "var/lib/dpkg/status";
/// distroless's one-file-per-package directory.
pub const STATUS_D: &str = "var/lib/dpkg/status.d";
/// Where os-release may be: `etc/os-release` (usually a link on Debian) wins over
/// `usr/lib/os-release`.
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// How much one layer may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The layer's uncompressed tar, in bytes.
    pub expanded: u64,
    /// One status file (a full Debian system's is a few MB).
    pub status_file: u64,
    /// One `status.d` entry or os-release.
    pub small_file: u64,
    /// `status.d` entries kept from one layer.
    pub status_d_entries: usize,
}

/// Generous for real images, small enough that a hostile layer cannot exhaust memory.
pub const DEFAULT_LIMITS: Limits = Limits {
    expanded: 8 << 30,
    status_file: 64 << 20,
    small_file: 1 << 20,
    status_d_entries: 20_000,
};

/// What one layer says about the dpkg database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerScan {
    /// The status file, when this layer writes one (the last copy in the tar wins).
    pub status: Option<StatusFile>,
    /// `status.d/<file>` entries this layer writes (`*.md5sums` skipped), by file name.
    pub status_d: Vec<(String, StatusFile)>,
    /// os-release files this layer writes as regular files: (path, text).
    pub os_release: Vec<(String, String)>,
    /// Paths this layer deletes from lower layers (`.wh.<name>`), kept when they touch the dpkg
    /// database or os-release.
    pub deleted: Vec<String>,
    /// Directories this layer makes opaque (`.wh..wh..opq`), kept on the same condition.
    pub opaque: Vec<String>,
}

impl LayerScan {
    /// Whether the layer changes anything the inventory reads.
    pub fn touches_dpkg(&self) -> bool {
        self.status.is_some()
            || !self.status_d.is_empty()
            || !self.deleted.is_empty()
            || !self.opaque.is_empty()
    }
}

/// A layer that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// gzip or zstd refused the stream.
    #[error("cannot decompress the layer: {0}")]
    Decompress(String),
    /// Not a tar archive, or a corrupt entry.
    #[error("not a readable tar archive: {0}")]
    Tar(String),
    /// The uncompressed layer is larger than allowed.
    #[error("the layer expands to more than {0} bytes; not read")]
    Expanded(u64),
    /// A file kept is larger than allowed.
    #[error("{path} is larger than {limit} bytes; not read")]
    FileTooLarge {
        /// The path in the layer.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// More `status.d` entries than allowed.
    #[error("more than {0} status.d entries in one layer; not read")]
    TooManyEntries(usize),
}

/// Read one layer blob (gzip, zstd or plain tar, told apart by their magic bytes).
pub fn read_layer<R: Read>(blob: R, limits: Limits) -> Result<LayerScan, LayerError> {
    let tar = decompressor(BufReader::with_capacity(64 << 10, blob))?;
    let capped = Capped {
        inner: tar,
        left: limits.expanded,
    };
    scan_tar(capped, limits)
}

/// A layer blob's tar stream: gzip (every member: some builders write several, and a decoder
/// that stops after the first reads a short layer), zstd, or the blob itself, told apart by the
/// magic bytes. Uncapped: callers bound the expanded size. The base-image check
/// (`registry::base::decompress`) reads its layers through this too.
pub fn decompressor<'a, R: BufRead + 'a>(mut blob: R) -> Result<Box<dyn Read + 'a>, LayerError> {
    let head = blob
        .fill_buf()
        .map_err(|e| LayerError::Decompress(e.to_string()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(blob))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(blob)
                .map_err(|e| LayerError::Decompress(e.to_string()))?,
        )
    } else {
        Box::new(blob)
    })
}

/// A reader that fails, rather than ends, past its limit: a truncated tar would read as a
/// short layer, and a short layer as a missing package.
struct Capped<R> {
    inner: R,
    left: u64,
}

const EXPANDED: &str = "tollgate: expansion limit";

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(EXPANDED));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn io_error(e: io::Error, limits: Limits) -> LayerError {
    let text = e.to_string();
    if text.contains(EXPANDED) {
        LayerError::Expanded(limits.expanded)
    } else {
        LayerError::Tar(text)
    }
}

fn scan_tar<R: Read>(tar: R, limits: Limits) -> Result<LayerScan, LayerError> {
    let mut scan = LayerScan::default();
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| io_error(e, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_error(e, limits))?;
        let raw = entry.path().map_err(|e| io_error(e, limits))?;
        let path = normalise(&raw.to_string_lossy());
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if let Some(target) = name.strip_prefix(".wh.") {
            if target == ".wh..opq" {
                if relevant(dir) {
                    scan.opaque.push(dir.to_owned());
                }
            } else {
                let deleted = join(dir, target);
                if relevant(&deleted) {
                    scan.deleted.push(deleted);
                }
            }
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if path == STATUS {
            let text = read_text(&mut entry, &path, limits.status_file, limits)?;
            scan.status = Some(parse_status(&text));
        } else if dir == STATUS_D && !name.ends_with(".md5sums") {
            if scan.status_d.len() >= limits.status_d_entries {
                return Err(LayerError::TooManyEntries(limits.status_d_entries));
            }
            let text = read_text(&mut entry, &path, limits.small_file, limits)?;
            scan.status_d.retain(|(n, _)| n != name);
            scan.status_d.push((name.to_owned(), parse_status(&text)));
        } else if OS_RELEASE.contains(&path.as_str()) {
            let text = read_text(&mut entry, &path, limits.small_file, limits)?;
            scan.os_release.retain(|(p, _)| *p != path);
            scan.os_release.push((path.clone(), text));
        }
    }
    Ok(scan)
}

fn read_text<R: Read>(
    entry: &mut R,
    path: &str,
    limit: u64,
    limits: Limits,
) -> Result<String, LayerError> {
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e, limits))?;
    if bytes.len() as u64 > limit {
        return Err(LayerError::FileTooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    // dpkg's files are UTF-8 in practice; a stray byte must not hide the package around it.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `./var/lib/` and `/var/lib` are `var/lib`.
pub fn normalise(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_owned()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `path` is, or is a whole-segment ancestor or descendant of, something read.
fn relevant(path: &str) -> bool {
    let read = ["var/lib/dpkg", OS_RELEASE[0], OS_RELEASE[1]];
    read.iter().any(|r| covers(path, r) || covers(r, path))
}

/// Whether `ancestor` is `path` or one of its directories, by whole segments (`var/li` does
/// not cover `var/lib`). The root (`""`) covers everything.
pub fn covers(ancestor: &str, path: &str) -> bool {
    ancestor.is_empty()
        || path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    /// A tar of `(path, contents)`; `None` contents makes a directory.
    pub(crate) fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    const SSL: &[u8] = b"Package: libssl3\nStatus: install ok installed\nSource: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_status_status_d_os_release_and_whiteouts() {
        let tar = tar_of(&[
            ("./var/lib/dpkg/", None),
            ("./var/lib/dpkg/status", Some(SSL)),
            (
                "var/lib/dpkg/status.d/tzdata",
                Some(b"Package: tzdata\nVersion: 2024a-0+deb12u1\n"),
            ),
            (
                "var/lib/dpkg/status.d/tzdata.md5sums",
                Some(b"abc  usr/share/zoneinfo/UTC\n"),
            ),
            (
                "usr/lib/os-release",
                Some(b"ID=debian\nVERSION_CODENAME=bookworm\n"),
            ),
            ("var/lib/dpkg/status.d/.wh.base-files", Some(b"")),
            ("var/lib/.wh..wh..opq", Some(b"")),
            ("usr/share/.wh.doc", Some(b"")),
        ]);
        let scan = read_layer(&tar[..], DEFAULT_LIMITS).unwrap();
        assert_eq!(scan.status.unwrap().packages[0].name, "libssl3");
        assert_eq!(scan.status_d.len(), 1, "md5sums skipped");
        assert_eq!(scan.status_d[0].0, "tzdata");
        assert_eq!(scan.os_release[0].0, "usr/lib/os-release");
        assert_eq!(scan.deleted, ["var/lib/dpkg/status.d/base-files"]);
        assert_eq!(
            scan.opaque,
            ["var/lib"],
            "usr/share/doc is not kept: it touches nothing read"
        );
    }

    #[test]
    fn gzip_zstd_and_plain_tar_read_the_same() {
        let tar = tar_of(&[("var/lib/dpkg/status", Some(SSL))]);
        let zst = {
            let mut out = Vec::new();
            ruzstd::encoding::compress(
                &tar[..],
                &mut out,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            out
        };
        let plain = read_layer(&tar[..], DEFAULT_LIMITS).unwrap();
        assert!(plain.status.is_some());
        assert_eq!(read_layer(&gzip(&tar)[..], DEFAULT_LIMITS).unwrap(), plain);
        assert_eq!(read_layer(&zst[..], DEFAULT_LIMITS).unwrap(), plain);
    }

    #[test]
    fn an_expanding_layer_is_refused_not_truncated() {
        let big = vec![0u8; 1 << 20];
        let tar = tar_of(&[("filler", Some(&big)), ("var/lib/dpkg/status", Some(SSL))]);
        let limits = Limits {
            expanded: 64 << 10,
            ..DEFAULT_LIMITS
        };
        assert_eq!(
            read_layer(&gzip(&tar)[..], limits),
            Err(LayerError::Expanded(64 << 10))
        );
    }

    #[test]
    fn a_huge_status_file_is_refused() {
        let tar = tar_of(&[("var/lib/dpkg/status", Some(&vec![b'x'; 4096]))]);
        let limits = Limits {
            status_file: 1024,
            ..DEFAULT_LIMITS
        };
        assert!(matches!(
            read_layer(&tar[..], limits),
            Err(LayerError::FileTooLarge { limit: 1024, .. })
        ));
    }

    #[test]
    fn garbage_is_a_tar_error_not_a_panic() {
        let e = read_layer(&b"\x1f\x8bnot gzip at all"[..], DEFAULT_LIMITS).unwrap_err();
        assert!(
            matches!(e, LayerError::Tar(_) | LayerError::Decompress(_)),
            "{e:?}"
        );
    }

    #[rstest]
    #[case("", "var/lib/dpkg/status", true)]
    #[case("var/lib", "var/lib/dpkg/status", true)]
    #[case("var/lib/dpkg/status", "var/lib/dpkg/status", true)]
    #[case("var/li", "var/lib/dpkg/status", false)]
    #[case("var/lib/dpkg/status.d", "var/lib/dpkg/status", false)]
    fn covers_by_whole_segments(#[case] a: &str, #[case] p: &str, #[case] want: bool) {
        assert_eq!(covers(a, p), want);
    }
}
