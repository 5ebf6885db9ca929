//! Building and pushing real images from test code: gzip tar layers, configs with diff_ids,
//! OCI manifests and indexes (with an attestation child), and deleting them again, all through
//! the registry's HTTP API.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::registry::sha256;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The empty descriptor's media type (image-spec 1.1): an artifact's config when it has none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A built layer.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The blob as pushed (gzip unless made by [`layer_zstd`]).
    pub gz: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: &'static str,
}

/// A gzip tar layer holding `files` (path, content).
pub fn layer(files: &[(&str, &[u8])]) -> Layer {
    let raw = tar_of(files);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    Layer {
        digest: sha256(&gz),
        diff_id: sha256(&raw),
        gz,
        media_type: OCI_LAYER_GZIP,
    }
}

/// A zstd tar layer holding `files`.
pub fn layer_zstd(files: &[(&str, &[u8])]) -> Layer {
    let raw = tar_of(files);
    let blob =
        ruzstd::encoding::compress_to_vec(&raw[..], ruzstd::encoding::CompressionLevel::Fastest);
    Layer {
        digest: sha256(&blob),
        diff_id: sha256(&raw),
        gz: blob,
        media_type: OCI_LAYER_ZSTD,
    }
}

/// A layer of `bytes` as they are, declared as `media_type` (a broken or hostile layer).
pub fn raw_layer(bytes: &[u8], media_type: &'static str) -> Layer {
    Layer {
        digest: sha256(bytes),
        diff_id: sha256(bytes),
        gz: bytes.to_vec(),
        media_type,
    }
}

/// A tar of `files` (path, content), in order.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, *content).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A pushed image manifest.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: String,
    pub size: u64,
    pub config: String,
    pub layers: Vec<String>,
}

/// What an artifact refers to: a manifest's descriptor.
#[derive(Clone, Debug)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl From<&Pushed> for Subject {
    fn from(p: &Pushed) -> Subject {
        Subject {
            media_type: OCI_MANIFEST.to_owned(),
            digest: p.digest.clone(),
            size: p.size,
        }
    }
}

/// An OCI 1.1 artifact to push: one layer, and the annotations of its manifest (what a
/// referrers list shows of it).
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    pub artifact_type: &'a str,
    pub layer_media_type: &'a str,
    pub layer: &'a [u8],
    pub annotations: &'a [(&'a str, &'a str)],
}

/// Pushes to one registry over plain HTTP (it is on loopback).
pub struct Pusher {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
}

impl Pusher {
    pub fn new(base_url: String) -> Self {
        // tollgate passes its own rustls config to reqwest; this plain test client needs the
        // process-wide provider instead (installing it twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Pusher {
            base: base_url,
            http: reqwest::Client::builder().build().unwrap(),
            auth: None,
        }
    }

    /// A pusher for a registry with TLS (trusting `ca_pem`) and basic auth.
    pub fn secured(base_url: String, ca_pem: &str, user: &str, password: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_merge([ca])
            .build()
            .unwrap();
        Pusher {
            base: base_url,
            http,
            auth: Some((user.to_owned(), password.to_owned())),
        }
    }

    fn req(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Upload a blob (monolithic: POST then PUT with the digest).
    pub async fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r = self
            .req(
                reqwest::Method::POST,
                format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "start upload");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = self
            .req(reqwest::Method::PUT, format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "finish upload: {}",
            r.text().await.unwrap()
        );
        digest
    }

    /// Put a manifest under a tag or digest; returns its digest.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self
            .req(
                reqwest::Method::PUT,
                format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "put manifest: {}",
            r.text().await.unwrap()
        );
        sha256(body)
    }

    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        let r = self
            .req(
                reqwest::Method::DELETE,
                format!("{}/v2/{repo}/manifests/{digest}", self.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "delete manifest {digest}");
    }

    pub async fn delete_blob(&self, repo: &str, digest: &str) {
        let r = self
            .req(
                reqwest::Method::DELETE,
                format!("{}/v2/{repo}/blobs/{digest}", self.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "delete blob {digest}");
    }

    /// Push `artifact` as an OCI 1.1 artifact manifest (image-spec 1.1: `artifactType`, the
    /// empty config `{}`, one layer, `subject`) referring to `subject`, by digest, and add its
    /// descriptor to the subject's referrers tag schema index (tag `sha256-<hex>`, created or
    /// updated), as clients do for registries without the referrers API. Returns the artifact
    /// manifest's digest.
    pub async fn artifact(&self, repo: &str, subject: &Subject, artifact: &Artifact<'_>) -> String {
        let config = self.blob(repo, b"{}").await;
        let layer = self.blob(repo, artifact.layer).await;
        let annotations: serde_json::Map<String, Value> = artifact
            .annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact.artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
            "layers": [{
                "mediaType": artifact.layer_media_type,
                "digest": layer,
                "size": artifact.layer.len(),
            }],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        });
        if !annotations.is_empty() {
            manifest["annotations"] = Value::Object(annotations.clone());
        }
        let body = serde_json::to_vec(&manifest).unwrap();
        let digest = self
            .manifest(repo, &sha256(&body), OCI_MANIFEST, &body)
            .await;
        let mut descriptor = json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": body.len(),
            "artifactType": artifact.artifact_type,
        });
        if !annotations.is_empty() {
            descriptor["annotations"] = Value::Object(annotations);
        }
        let tag = subject.digest.replacen(':', "-", 1);
        let mut manifests = match self.get_manifest(repo, &tag, OCI_INDEX).await {
            Some(index) => serde_json::from_slice::<Value>(&index).unwrap()["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        manifests.retain(|d| d["digest"] != json!(digest));
        manifests.push(descriptor);
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.manifest(repo, &tag, OCI_INDEX, &serde_json::to_vec(&index).unwrap())
            .await;
        digest
    }

    /// A manifest's bytes by tag or digest, asked for as `accept`; `None` when not found.
    pub async fn get_manifest(&self, repo: &str, reference: &str, accept: &str) -> Option<Vec<u8>> {
        let r = self
            .req(
                reqwest::Method::GET,
                format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 404 {
            return None;
        }
        assert_eq!(r.status().as_u16(), 200, "get manifest {reference}");
        Some(r.bytes().await.unwrap().to_vec())
    }

    /// Build and push an image of `layers` for `platform` (`linux/amd64`), tagged if `tag`.
    pub async fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        layers: &[Layer],
        platform: &str,
    ) -> Pushed {
        let (os, arch) = platform.split_once('/').unwrap();
        let config = json!({
            "architecture": arch, "os": os,
            "config": {"Labels": {"org.opencontainers.image.base.name": "claimed-by-label"}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        });
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = self.blob(repo, &config_bytes).await;
        let mut layer_descs = Vec::new();
        for l in layers {
            self.blob(repo, &l.gz).await;
            layer_descs
                .push(json!({"mediaType": l.media_type, "digest": l.digest, "size": l.gz.len()}));
        }
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": layer_descs,
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let reference = tag.map(str::to_owned).unwrap_or_else(|| sha256(&body));
        let digest = self.manifest(repo, &reference, OCI_MANIFEST, &body).await;
        Pushed {
            digest,
            size: body.len() as u64,
            config: config_digest,
            layers: layers.iter().map(|l| l.digest.clone()).collect(),
        }
    }

    /// Push an index of `children` (with their platforms), plus an attestation child when
    /// `attestation`, tagged `tag`. Returns the index digest.
    pub async fn index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(&Pushed, &str)],
        attestation: bool,
    ) -> String {
        let mut manifests: Vec<Value> = children
            .iter()
            .map(|(p, platform)| {
                let (os, arch) = platform.split_once('/').unwrap();
                json!({"mediaType": OCI_MANIFEST, "digest": p.digest, "size": p.size, "platform": {"os": os, "architecture": arch}})
            })
            .collect();
        if attestation {
            let att = self
                .image(
                    repo,
                    None,
                    &[layer(&[("provenance.json", b"{}")])],
                    "unknown/unknown",
                )
                .await;
            manifests.push(json!({
                "mediaType": OCI_MANIFEST, "digest": att.digest, "size": att.size,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": children[0].0.digest},
            }));
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.manifest(repo, tag, OCI_INDEX, &serde_json::to_vec(&index).unwrap())
            .await
    }
}

/// An os-release file.
pub fn os_release(id: &str) -> Vec<u8> {
    format!("PRETTY_NAME=\"test\"\nID={id}\nVERSION_ID=\"12\"\n").into_bytes()
}
