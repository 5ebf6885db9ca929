//! A manifest as the catalog's rows: its `manifests` row, an index's `index_children`, an
//! image's `layers` and `manifest_layers`, and the config's created time, labels and platform.
//! Pure: the documents come in as bytes already checked against their digests (by
//! [`crate::registry::contents`]); nothing here reads the network or a clock.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::reference::Digest;
use crate::registry::oci::{Descriptor, Manifest, Platform};

/// Whether a manifest is an index or an image (the `manifests.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image index / Docker manifest list.
    Index,
    /// An image manifest (or an artifact shaped as one).
    Image,
}

impl ManifestKind {
    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestKind::Index => "index",
            ManifestKind::Image => "image",
        }
    }
}

/// An image's platform, as the `os`, `architecture` and `variant` columns hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub architecture: String,
    /// `v8`, when given.
    pub variant: Option<String>,
}

impl From<&Platform> for PlatformRow {
    fn from(p: &Platform) -> Self {
        PlatformRow {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
        }
    }
}

/// One child of an index (`index_children`), in the index's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRow {
    /// The child manifest.
    pub digest: Digest,
    /// The size the index declares for it.
    pub size: u64,
    /// The platform the index declares for it.
    pub platform: Option<PlatformRow>,
}

/// One layer of an image (`layers`, and its position in `manifest_layers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// The (compressed) blob's digest.
    pub digest: Digest,
    /// Its size as the manifest declares it: the manifest's digest covers it, so it is the
    /// size, and the blob itself is never downloaded.
    pub size: u64,
    /// `mediaType`, as the manifest declares it (empty when left out).
    pub media_type: String,
}

/// Everything the catalog records of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Its digest (checked against its bytes before it got here).
    pub digest: Digest,
    /// The document's own `mediaType`, else the registry's `Content-Type`.
    pub media_type: String,
    /// Index or image.
    pub kind: ManifestKind,
    /// Its size in bytes.
    pub size: u64,
    /// An image's platform: its config's, else the one its index declares for it.
    pub platform: Option<PlatformRow>,
    /// An image's config blob.
    pub config_digest: Option<Digest>,
    /// The config's `created`, in unix seconds.
    pub created_at: Option<i64>,
    /// The config's labels, as a JSON object (sorted keys); `None` without labels.
    pub labels: Option<String>,
    /// An index's children, in order.
    pub children: Vec<ChildRow>,
    /// An image's layers, base first.
    pub layers: Vec<LayerRow>,
}

/// The parts of an image config the catalog keeps, read leniently: a field of the wrong
/// shape is left out rather than failing the manifest (configs are written by many builders).
#[derive(Debug, Default, Deserialize)]
struct Config {
    #[serde(default)]
    created: Option<serde_json::Value>,
    #[serde(default)]
    os: Option<serde_json::Value>,
    #[serde(default)]
    architecture: Option<serde_json::Value>,
    #[serde(default)]
    variant: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

fn text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref()
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// The document's own `mediaType`, when it has one.
fn own_media_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MediaType {
        #[serde(default)]
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaType>(body)
        .ok()
        .and_then(|m| m.media_type)
}

fn descriptor_digest(d: &Descriptor, what: &str) -> Result<Digest, String> {
    d.parsed_digest().map_err(|e| format!("{what}: {e}"))
}

/// The rows of one manifest: `body` its bytes (hashed to `digest` already), `manifest` them
/// parsed, `config` the bytes of an image's config when it was fetched, `declared` the
/// platform an index names for it. Refuses what the catalog could not hold honestly: a digest
/// that does not parse, a size past `i64`, more children than
/// [`crate::registry::resolve::MAX_INDEX_CHILDREN`].
pub fn manifest_record(
    digest: &Digest,
    content_type: Option<&str>,
    body: &[u8],
    manifest: &Manifest,
    config: Option<&[u8]>,
    declared: Option<&PlatformRow>,
) -> Result<ManifestRecord, String> {
    let media_type = own_media_type(body)
        .or_else(|| content_type.map(str::to_owned))
        .unwrap_or_default();
    let fits = |n: u64, what: &str| {
        i64::try_from(n).map(|_| n).map_err(|_| {
            format!("{what} declares a size of {n} bytes, more than the catalog holds")
        })
    };
    let mut record = ManifestRecord {
        digest: digest.clone(),
        media_type,
        kind: ManifestKind::Image,
        size: body.len() as u64,
        platform: declared.cloned(),
        config_digest: None,
        created_at: None,
        labels: None,
        children: Vec::new(),
        layers: Vec::new(),
    };
    match manifest {
        Manifest::Index { manifests } => {
            record.kind = ManifestKind::Index;
            record.platform = None;
            let max = crate::registry::resolve::MAX_INDEX_CHILDREN;
            if manifests.len() > max {
                return Err(format!(
                    "an index of {} child manifests, more than the {max} tollgate reads",
                    manifests.len()
                ));
            }
            for (i, child) in manifests.iter().enumerate() {
                record.children.push(ChildRow {
                    digest: descriptor_digest(child, &format!("child {i}"))?,
                    size: fits(child.size, &format!("child {i}"))?,
                    platform: child.platform.as_ref().map(PlatformRow::from),
                });
            }
        }
        Manifest::Image {
            config: config_descriptor,
            layers,
        } => {
            record.config_digest = Some(descriptor_digest(config_descriptor, "config")?);
            for (i, layer) in layers.iter().enumerate() {
                record.layers.push(LayerRow {
                    digest: descriptor_digest(layer, &format!("layer {i}"))?,
                    size: fits(layer.size, &format!("layer {i}"))?,
                    media_type: layer.media_type.clone(),
                });
            }
            if let Some(bytes) = config {
                apply_config(&mut record, bytes)?;
            }
        }
    }
    Ok(record)
}

fn apply_config(record: &mut ManifestRecord, bytes: &[u8]) -> Result<(), String> {
    let config: Config = serde_json::from_slice(bytes)
        .map_err(|e| format!("image config is not valid JSON: {e}"))?;
    // RFC 3339, as Go's time marshals it; anything else says nothing about when.
    record.created_at = text(&config.created)
        .and_then(|c| c.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second());
    if let (Some(os), Some(architecture)) = (text(&config.os), text(&config.architecture)) {
        record.platform = Some(PlatformRow {
            os,
            architecture,
            variant: text(&config.variant),
        });
    }
    let labels: BTreeMap<String, String> = config
        .config
        .as_ref()
        .and_then(|c| c.get("Labels"))
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if !labels.is_empty() {
        record.labels = Some(serde_json::to_string(&labels).map_err(|e| e.to_string())?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::oci;
    use rstest::rstest;

    fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
        oci::parse(body, content_type)
    }

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn record(body: &str, config: Option<&str>, declared: Option<&PlatformRow>) -> ManifestRecord {
        let m = parse_manifest(body.as_bytes(), None).unwrap();
        manifest_record(
            &d(0xee).parse().unwrap(),
            None,
            body.as_bytes(),
            &m,
            config.map(str::as_bytes),
            declared,
        )
        .unwrap()
    }

    fn image(config: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},
               "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":10}},
                         {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":20}}]}}"#,
            oci::OCI_MANIFEST,
            d(1),
            config.len(),
            d(2),
            d(3)
        )
    }

    #[test]
    fn an_image_gives_its_config_facts_and_layers_in_order() {
        let config = r#"{"created":"2024-05-06T07:08:09.123456789Z","os":"linux","architecture":"arm64","variant":"v8",
                         "config":{"Labels":{"z":"last","a":"<b>first</b>","n":7}},"rootfs":{"diff_ids":[]}}"#;
        let r = record(&image(config), Some(config), None);
        assert_eq!(r.kind, ManifestKind::Image);
        assert_eq!(r.media_type, oci::OCI_MANIFEST);
        assert_eq!(r.config_digest, Some(d(1).parse().unwrap()));
        assert_eq!(r.created_at, Some(1_714_979_289));
        assert_eq!(
            r.platform,
            Some(PlatformRow {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: Some("v8".into())
            })
        );
        // Sorted keys, values kept as written (escaping is the renderer's job); a label that
        // is not a string is not a label.
        assert_eq!(
            r.labels.as_deref(),
            Some(r#"{"a":"<b>first</b>","z":"last"}"#)
        );
        let layers: Vec<(String, u64)> = r
            .layers
            .iter()
            .map(|l| (l.digest.to_string(), l.size))
            .collect();
        assert_eq!(layers, vec![(d(2), 10), (d(3), 20)]);
    }

    #[rstest]
    #[case::no_created_no_labels(r#"{"os":"linux","architecture":"amd64"}"#, None, None)]
    #[case::created_not_rfc3339(r#"{"created":"yesterday"}"#, None, None)]
    #[case::created_a_number(r#"{"created":17}"#, None, None)]
    #[case::labels_null(r#"{"config":{"Labels":null}}"#, None, None)]
    #[case::unix_epoch(
        r#"{"created":"1970-01-01T00:00:00Z","config":{"Labels":{"k":"v"}}}"#,
        Some(0),
        Some(r#"{"k":"v"}"#)
    )]
    fn a_config_is_read_leniently(
        #[case] config: &str,
        #[case] created: Option<i64>,
        #[case] labels: Option<&str>,
    ) {
        let r = record(&image(config), Some(config), None);
        assert_eq!(r.created_at, created);
        assert_eq!(r.labels.as_deref(), labels);
    }

    #[test]
    fn a_config_that_is_not_json_is_refused() {
        let body = image("{}");
        let m = parse_manifest(body.as_bytes(), None).unwrap();
        let e = manifest_record(
            &d(0xee).parse().unwrap(),
            None,
            body.as_bytes(),
            &m,
            Some(b"<html>"),
            None,
        )
        .unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn the_index_entry_s_platform_stands_in_for_a_config_without_one() {
        let declared = PlatformRow {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        let r = record(&image("{}"), Some("{}"), Some(&declared));
        assert_eq!(r.platform, Some(declared.clone()));
        // Not fetched (an artifact's config): the same.
        let r = record(&image("{}"), None, Some(&declared));
        assert_eq!(r.platform, Some(declared));
    }

    #[test]
    fn an_index_gives_its_children_with_their_platforms() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
                {{"mediaType":"{m}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"{m}","digest":"{}","size":6,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
                {{"mediaType":"{m}","digest":"{}","size":7}}]}}"#,
            oci::OCI_INDEX,
            d(4),
            d(5),
            d(6),
            m = oci::OCI_MANIFEST
        );
        let r = record(&body, None, None);
        assert_eq!(r.kind, ManifestKind::Index);
        assert_eq!(r.media_type, oci::OCI_INDEX);
        assert_eq!(r.size, body.len() as u64);
        let children: Vec<(String, Option<String>)> = r
            .children
            .iter()
            .map(|c| {
                (
                    c.digest.to_string(),
                    c.platform.as_ref().map(|p| {
                        format!(
                            "{}/{}/{}",
                            p.os,
                            p.architecture,
                            p.variant.as_deref().unwrap_or("-")
                        )
                    }),
                )
            })
            .collect();
        assert_eq!(
            children,
            vec![
                (d(4), Some("linux/amd64/-".into())),
                (d(5), Some("linux/arm/v7".into())),
                (d(6), None)
            ]
        );
        assert!(r.layers.is_empty() && r.config_digest.is_none());
    }

    #[rstest]
    #[case::bad_layer_digest(
        format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":2}},"layers":[{{"digest":"sha256:nothex","size":1}}]}}"#, d(1)),
        "layer 0"
    )]
    #[case::size_past_i64(
        format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":2}},"layers":[{{"digest":"{}","size":18446744073709551615}}]}}"#, d(1), d(2)),
        "more than the catalog holds"
    )]
    #[case::bad_child_digest(
        format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"digest":"md5:00","size":1}}]}}"#, oci::OCI_INDEX),
        "child 0"
    )]
    fn what_the_catalog_cannot_hold_is_refused(#[case] body: String, #[case] says: &str) {
        let m = parse_manifest(body.as_bytes(), None).unwrap();
        let e = manifest_record(
            &d(0xee).parse().unwrap(),
            None,
            body.as_bytes(),
            &m,
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}
