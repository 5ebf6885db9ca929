//! Debian-based or approved distroless: the base-image rule, evaluated against the registry.
//!
//! Two methods, in order:
//! 1. Lineage: the image's layer diff_ids (from its config) start with the complete diff_id list
//!    of an approved base image. This is what "built FROM it" means in content terms, and it is
//!    the only method that recognises distroless images.
//! 2. OS release, when lineage cannot decide: the topmost layer holding `etc/os-release` or
//!    `usr/lib/os-release` (whiteouts honoured; gzip, zstd or plain tar; layers over a size cap
//!    are not downloaded) must say `ID=debian` or list debian in `ID_LIKE`.
//!
//! Labels such as `org.opencontainers.image.base.name` are reported as a hint only: any image
//! can claim any label.
//!
//! The functions at the top of this file are pure (bytes in, verdicts out); [`BaseChecker`] does
//! the registry IO.

use std::io::Read;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Mutex;

use super::RegistryError;
use super::http::Endpoint;
use super::oci::{self, ImageConfig};
use super::resolution::{Node, NodeKind, NodeStatus};
use super::resolve::Resolver;
use crate::policy::{BaseFamily, BaseImage, Policy};
use crate::reference::ImageRef;

/// The label images use to name their base; reported, never trusted.
pub const BASE_NAME_LABEL: &str = "org.opencontainers.image.base.name";

/// How a verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The image's first layers are exactly an approved base's (by diff_id).
    Lineage,
    /// No lineage matched; the topmost layer holding an os-release file decided.
    OsRelease,
    /// Neither could decide (no os-release file, a layer over the size cap, an unreadable
    /// config or layer); the image is not approved.
    Undecided,
}

impl Method {
    /// The method's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Lineage => "lineage",
            Method::OsRelease => "os-release",
            Method::Undecided => "undecided",
        }
    }
}

/// The base-image verdict for one image manifest (one platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseVerdict {
    /// Whether the image counts as built on an approved base; never when undecided.
    pub approved: bool,
    /// How the verdict was reached.
    pub method: Method,
    /// The matched base's family (lineage), or Debian (os-release); `None` when not approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<BaseFamily>,
    /// The approved base that matched (`registry/repo:tag`), for lineage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// `os/arch[/variant]` of the image manifest; `None` for a single-platform image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// What decided it, or why nothing could.
    pub detail: String,
    /// The base the image's labels claim (a hint, not evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_hint: Option<String>,
}

// ---- pure helpers -----------------------------------------------------------------------------

/// Whether `base` is a complete, non-empty prefix of `image` (layer diff_ids).
pub fn is_lineage_prefix(base: &[String], image: &[String]) -> bool {
    !base.is_empty() && image.len() >= base.len() && image[..base.len()] == *base
}

pub use crate::packages::os_release::{OsRelease, parse_os_release};

/// What one layer says about the os-release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOsRelease {
    /// The layer has the file (path, content).
    Found(String, String),
    /// The layer deletes it (a whiteout, or an opaque directory above it).
    Deleted(String),
    /// The layer has `etc/os-release` as a link (Debian links it to `../usr/lib/os-release`):
    /// the target must be looked up in this and lower layers.
    Link(String),
    /// The layer does not touch it.
    Absent,
}

const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Decompress a layer by sniffing its magic bytes (gzip, zstd, or plain tar).
pub fn decompress(blob: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let reader = crate::packages::layer::decompressor(blob).map_err(|e| e.to_string())?;
    // The uncompressed size is capped too: a small gzip can expand enormously.
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress layer: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "layer expands to more than {limit} bytes; not read"
        ));
    }
    Ok(out)
}

/// Look for the os-release file in one uncompressed layer tar. `want` is the path still
/// sought (after following a link, only `usr/lib/os-release`).
pub fn scan_layer(tar_bytes: &[u8], want: &[&str]) -> Result<LayerOsRelease, String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut result = LayerOsRelease::Absent;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tar entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad tar path: {e}"))?
            .to_string_lossy()
            .into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned();
        for target in want {
            let (dir, file) = target.rsplit_once('/').unwrap_or(("", target));
            // `.wh.<name>` deletes <name>; `.wh..wh..opq` in a directory hides everything below.
            if path == format!("{dir}/.wh.{file}") || path == format!("{dir}/.wh..wh..opq") {
                result = LayerOsRelease::Deleted((*target).to_owned());
            }
            if path == *target {
                let kind = entry.header().entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    result = LayerOsRelease::Link((*target).to_owned());
                } else if kind.is_file() {
                    let mut text = String::new();
                    entry
                        .by_ref()
                        .take(64 * 1024)
                        .read_to_string(&mut text)
                        .map_err(|e| format!("{target}: {e}"))?;
                    return Ok(LayerOsRelease::Found((*target).to_owned(), text));
                }
            }
        }
    }
    Ok(result)
}

/// Label hint from a config.
pub fn label_hint(config: &ImageConfig) -> Option<String> {
    config
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(BASE_NAME_LABEL)
        .cloned()
}

// ---- registry IO ------------------------------------------------------------------------------

/// Largest layer downloaded for the os-release fallback (compressed size).
pub const DEFAULT_LAYER_CAP: u64 = 32 << 20;
/// Most tags of one base repository considered for lineage.
pub const MAX_BASE_TAGS: usize = 200;

/// An approved base as resolved: its name:tag and diff_ids per platform.
#[derive(Debug, Clone)]
struct ResolvedBase {
    family: BaseFamily,
    name: String,
    /// (platform or None for a single-platform image, diff_ids)
    variants: Vec<(Option<String>, Vec<String>)>,
}

/// Evaluates the base-image rule, caching the approved bases' diff_ids.
pub struct BaseChecker {
    resolver: Arc<Resolver>,
    policy: Arc<Policy>,
    layer_cap: u64,
    bases: Mutex<Option<Arc<Vec<ResolvedBase>>>>,
}

impl BaseChecker {
    /// A checker for `policy`'s approved bases, through `resolver`. The bases are resolved on
    /// first use and kept for the checker's life; layers over [`DEFAULT_LAYER_CAP`] bytes are
    /// not downloaded for their os-release.
    pub fn new(resolver: Arc<Resolver>, policy: Arc<Policy>) -> Self {
        BaseChecker {
            resolver,
            policy,
            layer_cap: DEFAULT_LAYER_CAP,
            bases: Mutex::new(None),
        }
    }

    /// Verdicts for every runnable image manifest under `root` (one per platform). A registry
    /// that does not answer (for the image's layers or for the approved bases) is an `Err`:
    /// "could not check", never "not built on an approved base".
    pub async fn check(
        &self,
        image: &ImageRef,
        root: &Node,
    ) -> Result<Vec<BaseVerdict>, RegistryError> {
        let ep = self.resolver.endpoint(image)?;
        let repo = image.repository().as_str();
        let mut manifests = Vec::new();
        collect_manifests(root, &mut manifests);
        let mut out = Vec::new();
        for m in manifests {
            out.push(self.check_manifest(&ep, repo, m).await?);
        }
        Ok(out)
    }

    async fn check_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        m: &Node,
    ) -> Result<BaseVerdict, RegistryError> {
        let platform = m.platform.clone();
        let Some(config_node) = m.children.iter().find(|c| c.kind == NodeKind::Config) else {
            return Ok(undecided(platform, "the manifest has no config".into()));
        };
        let Some(config_bytes) = self
            .resolver
            .cached_document(ep, repo, &config_node.digest)
            .await
        else {
            return Ok(undecided(
                platform,
                "the image config could not be read".into(),
            ));
        };
        let config = match oci::parse_config(&config_bytes) {
            Ok(c) => c,
            Err(e) => return Ok(undecided(platform, e)),
        };
        let hint = label_hint(&config);
        let diff_ids = &config.rootfs.diff_ids;

        // 1. Lineage.
        let bases = self.resolved_bases().await?;
        let mut best: Option<(&ResolvedBase, usize)> = None;
        for b in bases.iter() {
            for (p, ids) in &b.variants {
                let same_platform = p.is_none() || platform.is_none() || *p == platform;
                if same_platform
                    && is_lineage_prefix(ids, diff_ids)
                    && best.is_none_or(|(_, n)| ids.len() > n)
                {
                    best = Some((b, ids.len()));
                }
            }
        }
        if let Some((b, n)) = best {
            return Ok(BaseVerdict {
                approved: true,
                method: Method::Lineage,
                family: Some(b.family),
                base: Some(b.name.clone()),
                platform,
                detail: format!(
                    "the image's first {n} layers are exactly the layers of approved base {}",
                    b.name
                ),
                label_hint: hint,
            });
        }

        // 2. OS release, topmost layer first.
        let layers: Vec<&Node> = m
            .children
            .iter()
            .filter(|c| c.kind == NodeKind::Layer)
            .collect();
        let mut want: Vec<&str> = OS_RELEASE_PATHS.to_vec();
        for layer in layers.iter().rev() {
            if layer.status != NodeStatus::Ok {
                continue;
            }
            if layer.size.is_some_and(|s| s > self.layer_cap) {
                return Ok(BaseVerdict {
                    detail: format!(
                        "no approved base's layers start this image, and layer {} is {} bytes, over the {}-byte cap, so its OS release was not read",
                        short(&layer.digest),
                        layer.size.unwrap_or(0),
                        self.layer_cap
                    ),
                    ..undecided(platform, String::new())
                }
                .with_hint(hint));
            }
            let blob = match self
                .resolver
                .client()
                .blob_get(ep, repo, &layer.digest, self.layer_cap)
                .await
            {
                Ok(r) if r.status.is_success() => r.body,
                // A layer the registry does not serve: the walk reports it; nothing to read.
                Ok(r) if r.status.is_client_error() => {
                    return Ok(undecided(
                        platform,
                        format!("layer {}: {}", short(&layer.digest), r.error_text()),
                    )
                    .with_hint(hint));
                }
                Ok(r) => {
                    return Err(RegistryError::Status {
                        url: format!("{}/{repo}@{}", ep.host, layer.digest),
                        status: r.status.as_u16(),
                        message: r.error_text(),
                    });
                }
                Err(e) => return Err(e),
            };
            let tar = match decompress(&blob, self.layer_cap * 8) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(
                        undecided(platform, format!("layer {}: {e}", short(&layer.digest)))
                            .with_hint(hint),
                    );
                }
            };
            match scan_layer(&tar, &want) {
                Ok(LayerOsRelease::Found(path, text)) => {
                    let os = parse_os_release(&text);
                    let name = os.pretty_name.clone().unwrap_or_else(|| os.id.clone());
                    return Ok(BaseVerdict {
                        approved: os.is_debian(),
                        method: Method::OsRelease,
                        family: os.is_debian().then_some(BaseFamily::Debian),
                        base: None,
                        platform,
                        detail: if os.is_debian() {
                            format!(
                                "{path} in layer {} says {name} (ID={})",
                                short(&layer.digest),
                                os.id
                            )
                        } else {
                            format!(
                                "{path} in layer {} says {name} (ID={}), which is not Debian, and no approved base's layers start this image",
                                short(&layer.digest),
                                os.id
                            )
                        },
                        label_hint: hint,
                    });
                }
                Ok(LayerOsRelease::Deleted(path)) => {
                    return Ok(BaseVerdict {
                        detail: format!(
                            "layer {} deletes {path}; no approved base's layers start this image",
                            short(&layer.digest)
                        ),
                        ..undecided(platform, String::new())
                    }
                    .with_hint(hint));
                }
                Ok(LayerOsRelease::Link(_)) => want = vec!["usr/lib/os-release"],
                Ok(LayerOsRelease::Absent) => {}
                Err(e) => {
                    return Ok(
                        undecided(platform, format!("layer {}: {e}", short(&layer.digest)))
                            .with_hint(hint),
                    );
                }
            }
        }
        Ok(BaseVerdict {
            detail:
                "no approved base's layers start this image, and no layer has an os-release file"
                    .into(),
            ..undecided(platform, String::new())
        }
        .with_hint(hint))
    }

    /// The approved bases, resolved once (their tags listed, filtered by the policy's tag
    /// patterns, each resolved end to end for its diff_ids per platform).
    /// Only a complete answer is kept: a registry that failed to answer for one base is an
    /// error now, and asked again next time, never a list with that base missing for the
    /// server's lifetime.
    async fn resolved_bases(&self) -> Result<Arc<Vec<ResolvedBase>>, RegistryError> {
        let mut guard = self.bases.lock().await;
        if let Some(b) = guard.as_ref() {
            return Ok(b.clone());
        }
        let mut out = Vec::new();
        for base in self.policy.bases() {
            // The bases serve every image checked later, so they are not charged to the walk
            // that needs them first: each base's tag list, and each of its tags, is a walk of
            // its own.
            out.extend(self.resolver.separate_walk(self.resolve_base(base)).await?);
        }
        let out = Arc::new(out);
        *guard = Some(out.clone());
        Ok(out)
    }

    async fn resolve_base(&self, base: &BaseImage) -> Result<Vec<ResolvedBase>, RegistryError> {
        let Ok(name) = base.name().parse::<ImageRef>() else {
            return Ok(Vec::new());
        };
        let ep = self.resolver.endpoint(&name)?;
        let tags = match self
            .resolver
            .client()
            .tags(&ep, name.repository().as_str())
            .await?
        {
            Some(tags) => tags,
            None => {
                tracing::warn!(
                    base = base.name(),
                    "an approved base image's repository does not exist in the registry"
                );
                return Ok(Vec::new());
            }
        };
        let mut tags: Vec<String> = tags
            .into_iter()
            .filter(|t| base.tags().is_empty() || base.tags().iter().any(|p| p.is_match(t)))
            .collect();
        tags.truncate(MAX_BASE_TAGS);
        let mut out = Vec::new();
        for tag in tags {
            let Ok(r) = format!("{}:{tag}", base.name()).parse::<ImageRef>() else {
                continue;
            };
            let res = self
                .resolver
                .separate_walk(self.resolver.resolve(&r))
                .await?;
            let Some(root) = res.root else { continue };
            let mut manifests = Vec::new();
            collect_manifests(&root, &mut manifests);
            let mut variants = Vec::new();
            for m in manifests {
                let Some(cfg) = m.children.iter().find(|c| c.kind == NodeKind::Config) else {
                    continue;
                };
                let Some(bytes) = self
                    .resolver
                    .cached_document(&ep, r.repository().as_str(), &cfg.digest)
                    .await
                else {
                    continue;
                };
                if let Ok(c) = oci::parse_config(&bytes) {
                    variants.push((m.platform.clone(), c.rootfs.diff_ids));
                }
            }
            out.push(ResolvedBase {
                family: base.family(),
                name: format!("{}:{tag}", base.name()),
                variants,
            });
        }
        Ok(out)
    }
}

impl BaseVerdict {
    fn with_hint(mut self, hint: Option<String>) -> Self {
        self.label_hint = hint;
        self
    }
}

fn undecided(platform: Option<String>, detail: String) -> BaseVerdict {
    BaseVerdict {
        approved: false,
        method: Method::Undecided,
        family: None,
        base: None,
        platform,
        detail,
        label_hint: None,
    }
}

fn short(digest: &str) -> String {
    format!("{}…", digest.get(..19).unwrap_or(digest))
}

/// Runnable image manifests under a node (an image manifest itself, or an index's children).
fn collect_manifests<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    match node.kind {
        NodeKind::Manifest if node.status == NodeStatus::Ok => out.push(node),
        NodeKind::Index => node.children.iter().for_each(|c| collect_manifests(c, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_size(c.len() as u64);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_cksum();
                    b.append_data(&mut h, path, *c).unwrap();
                }
                None => {
                    h.set_size(0);
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_cksum();
                    b.append_link(&mut h, path, "../usr/lib/os-release")
                        .unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[rstest]
    #[case::debian("ID=debian\nVERSION_ID=\"12\"\n", true)]
    #[case::ubuntu_is_like_debian("ID=ubuntu\nID_LIKE=debian\n", true)]
    #[case::quoted("ID=\"debian\"\n", true)]
    #[case::alpine("ID=alpine\n", false)]
    #[case::rhel_like("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n", false)]
    fn os_release_decides_debian(#[case] text: &str, #[case] debian: bool) {
        assert_eq!(parse_os_release(text).is_debian(), debian);
    }

    #[test]
    fn lineage_is_a_complete_prefix() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_lineage_prefix(&ids(&["a", "b"]), &ids(&["a", "b", "c"])));
        assert!(is_lineage_prefix(&ids(&["a"]), &ids(&["a"])));
        assert!(!is_lineage_prefix(
            &ids(&["a", "b"]),
            &ids(&["a", "x", "c"])
        ));
        assert!(!is_lineage_prefix(&ids(&["a", "b"]), &ids(&["a"])));
        assert!(!is_lineage_prefix(&[], &ids(&["a"])));
    }

    #[rstest]
    #[case::file(&[("etc/os-release", Some(b"ID=debian" as &[u8]))], LayerOsRelease::Found("etc/os-release".into(), "ID=debian".into()))]
    #[case::dot_slash(&[("./usr/lib/os-release", Some(b"ID=debian" as &[u8]))], LayerOsRelease::Found("usr/lib/os-release".into(), "ID=debian".into()))]
    #[case::whiteout(&[("etc/.wh.os-release", Some(b"" as &[u8]))], LayerOsRelease::Deleted("etc/os-release".into()))]
    #[case::opaque_dir(&[("etc/.wh..wh..opq", Some(b"" as &[u8]))], LayerOsRelease::Deleted("etc/os-release".into()))]
    #[case::debian_symlink(&[("etc/os-release", None)], LayerOsRelease::Link("etc/os-release".into()))]
    #[case::absent(&[("bin/app", Some(b"x" as &[u8]))], LayerOsRelease::Absent)]
    fn scans_a_layer_for_os_release(
        #[case] entries: &[(&str, Option<&[u8]>)],
        #[case] expected: LayerOsRelease,
    ) {
        assert_eq!(
            scan_layer(&tar_of(entries), &OS_RELEASE_PATHS).unwrap(),
            expected
        );
    }

    #[test]
    fn decompresses_gzip_zstd_and_plain_tar_and_caps_expansion() {
        use std::io::Write;
        let tar = tar_of(&[("etc/os-release", Some(b"ID=debian"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(&gz, 1 << 20).unwrap(), tar);
        assert_eq!(decompress(&tar, 1 << 20).unwrap(), tar);
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(decompress(&zst, 1 << 20).unwrap(), tar);
        assert!(
            decompress(&gz, 100)
                .unwrap_err()
                .contains("expands to more than 100 bytes")
        );
    }

    #[test]
    fn a_gzip_layer_in_several_members_is_read_whole() {
        use std::io::Write;
        let tar = tar_of(&[("etc/os-release", Some(b"ID=debian"))]);
        let (head, tail) = tar.split_at(512);
        let mut members = Vec::new();
        for part in [head, tail] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            members.extend(gz.finish().unwrap());
        }
        assert_eq!(decompress(&members, 1 << 20).unwrap(), tar);
    }
}
