//! OCI and Docker manifest formats: what the walk needs of them, parsed from bytes whose digest
//! has already been checked. Pure.

use serde::Deserialize;

use crate::reference::Digest;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (the index of Docker's v2 schema 2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header for manifest requests: every format the walk understands. Without it a
/// registry may down-convert, and the digest of what it sends would not be the one pushed.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Layers that a registry is not expected to hold (Windows base layers): they are fetched from
/// the URLs in the descriptor, and the walk reports them rather than treating them as missing.
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// `mediaType` of the content; empty when the descriptor leaves it out.
    #[serde(default)]
    pub media_type: String,
    /// `digest`, unvalidated as it came ([`Descriptor::parsed_digest`] validates it).
    pub digest: String,
    /// `size` the content must have, in bytes.
    pub size: u64,
    /// `urls` a foreign layer is fetched from instead of the registry.
    #[serde(default)]
    pub urls: Vec<String>,
    /// `platform` of an index's child; `None` elsewhere, or when the index does not say.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// `annotations` (BuildKit marks attestation children here).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `artifactType` (OCI 1.1): what a referrer is, in a referrers index
    /// (`application/vnd.dev.sigstore.bundle.v0.3+json`); `None` elsewhere.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The digest, validated.
    pub fn parsed_digest(&self) -> Result<Digest, String> {
        self.digest
            .parse::<Digest>()
            .map_err(|e| format!("descriptor digest {:?}: {e}", self.digest))
    }

    /// Attestations and other children that are not runnable images: BuildKit writes its
    /// provenance and SBOM manifests as `unknown/unknown` children, annotated with the
    /// reference type.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

/// An image's platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `architecture`, in Go's `GOARCH` terms (`amd64`, `arm64`).
    pub architecture: String,
    /// `os`, in Go's `GOOS` terms (`linux`, `windows`).
    pub os: String,
    /// `variant` of the CPU (`v7`, `v8`), when given.
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{}/{v}", self.os, self.architecture),
            None => write!(f, "{}/{}", self.os, self.architecture),
        }
    }
}

/// What a manifest document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An image index / manifest list: one child manifest per platform (and attestations).
    Index {
        /// `manifests`: the children, in the index's order.
        manifests: Vec<Descriptor>,
    },
    /// An image manifest: a config blob and layers.
    Image {
        /// `config`: the image config blob.
        config: Descriptor,
        /// `layers`, base layer first.
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// Parse a manifest. `content_type` is the registry's `Content-Type`; the document's own
/// `mediaType` wins when present (OCI allows it to be absent).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    if raw.schema_version == Some(1) {
        return Err(
            "Docker schema 1 manifests are not supported (deprecated; push the image again)".into(),
        );
    }
    let media_type = raw
        .media_type
        .as_deref()
        .or(content_type)
        .unwrap_or_default();
    let is_index = media_type == OCI_INDEX
        || media_type == DOCKER_LIST
        || (raw.manifests.is_some() && raw.config.is_none());
    if is_index {
        return Ok(Manifest::Index {
            manifests: raw.manifests.unwrap_or_default(),
        });
    }
    match raw.config {
        Some(config) => Ok(Manifest::Image {
            config,
            layers: raw.layers.unwrap_or_default(),
        }),
        None => Err(format!(
            "manifest of type {media_type:?} has neither `manifests` nor `config`"
        )),
    }
}

/// The parts of an image config the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// `rootfs`: the layers' uncompressed digests, for lineage.
    #[serde(default)]
    pub rootfs: RootFs,
    /// `config`: the container defaults, for the labels; `None` when the config has none.
    #[serde(default)]
    pub config: Option<ContainerConfig>,
}

/// `rootfs.diff_ids`: the uncompressed layer digests, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// Base layer first; an image built FROM another starts with all of the other's.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// `config.Labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerConfig {
    /// Label name to value; `None` when the config has `Labels: null` or none at all.
    #[serde(rename = "Labels", default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Parse an image config blob.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("image config is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_an_index_with_an_attestation_child() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":10,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":10,"platform":{{"architecture":"unknown","os":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        let Manifest::Index { manifests } = parse(doc.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert_eq!(
            manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(!manifests[0].is_attestation());
        assert!(manifests[1].is_attestation());
    }

    #[test]
    fn parses_a_docker_manifest_by_content_type() {
        let doc = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{D}","size":2}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(doc.as_bytes(), Some(DOCKER_MANIFEST)).unwrap(),
            Manifest::Image { .. }
        ));
    }

    #[test]
    fn refuses_schema_1_and_garbage() {
        assert!(
            parse(br#"{"schemaVersion":1}"#, None)
                .unwrap_err()
                .contains("schema 1")
        );
        assert!(
            parse(b"<html>", None)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
