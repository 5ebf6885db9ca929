//! What a resolution found: the tree of every piece behind a reference (index, child
//! manifests, config, layers), each with what the registry answered, and the path to each
//! broken piece. Pure data; the walk that builds it is [`super::resolve`].

use std::fmt;

use serde::Serialize;

use crate::reference::{Digest, ImageRef};

/// What a node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// An image index or Docker manifest list (a manifest whose children are manifests).
    Index,
    /// An image manifest: one platform's config and layers.
    Manifest,
    /// An image config blob.
    Config,
    /// A layer blob.
    Layer,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Index => "index",
            NodeKind::Manifest => "manifest",
            NodeKind::Config => "config",
            NodeKind::Layer => "layer",
        })
    }
}

/// What the registry answered for a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum NodeStatus {
    /// Served, with the declared size and (for documents) the right digest.
    Ok,
    /// The registry does not serve it (404 and the registry's error code).
    Missing {
        /// The registry's answer (`404 manifest unknown`), for the report.
        answer: String,
    },
    /// The content's hash is not its digest.
    DigestMismatch {
        /// What the content hashes to (`sha256:…`).
        actual: String,
    },
    /// The blob's size is not the one its manifest declares.
    SizeMismatch {
        /// The size the parent's descriptor declares, in bytes.
        declared: u64,
        /// The size served (`Content-Length` of a layer, length of a document), in bytes.
        actual: u64,
    },
    /// The blob answers, but without a `Content-Length`: there, and of a size not checked.
    SizeUnverified,
    /// A foreign / non-distributable layer: fetched from its URLs, not from the registry.
    Foreign,
    /// An attestation or other non-runnable child of an index (not walked, not a failure).
    Attestation,
    /// Not in the selected platforms.
    Skipped,
    /// The content is not a valid manifest or config.
    Invalid {
        /// What is wrong with it (not JSON, schema 1, an unparsable digest, nested too deep).
        message: String,
    },
    /// The registry failed to answer (after retries).
    Error {
        /// The error, with its causes.
        message: String,
    },
}

impl NodeStatus {
    /// The state's name, as in JSON (`missing`, `digest-mismatch`…).
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeStatus::Ok => "ok",
            NodeStatus::Missing { .. } => "missing",
            NodeStatus::DigestMismatch { .. } => "digest-mismatch",
            NodeStatus::SizeMismatch { .. } => "size-mismatch",
            NodeStatus::SizeUnverified => "size-unverified",
            NodeStatus::Foreign => "foreign",
            NodeStatus::Attestation => "attestation",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Invalid { .. } => "invalid",
            NodeStatus::Error { .. } => "error",
        }
    }

    /// A status that makes the image unpullable.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            NodeStatus::Missing { .. }
                | NodeStatus::DigestMismatch { .. }
                | NodeStatus::SizeMismatch { .. }
                | NodeStatus::Invalid { .. }
                | NodeStatus::Error { .. }
        )
    }

    pub(super) fn describe(&self) -> String {
        match self {
            NodeStatus::Ok => "ok".into(),
            NodeStatus::Missing { answer } => answer.clone(),
            NodeStatus::DigestMismatch { actual } => {
                format!("content hashes to {actual}, not to its digest")
            }
            NodeStatus::SizeMismatch { declared, actual } => {
                format!("{actual} bytes, the manifest declares {declared}")
            }
            NodeStatus::SizeUnverified => {
                "there, but the registry gave no Content-Length, so its size is not verified".into()
            }
            NodeStatus::Foreign => "foreign layer (not served by the registry)".into(),
            NodeStatus::Attestation => "attestation (not runnable)".into(),
            NodeStatus::Skipped => "platform not selected".into(),
            NodeStatus::Invalid { message } | NodeStatus::Error { message } => message.clone(),
        }
    }
}

/// One checked piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// What the piece is: from the parent for blobs, from the content for manifests.
    pub kind: NodeKind,
    /// The digest it was asked for, as the reference or the parent's descriptor writes it.
    pub digest: String,
    /// The parent's declared media type, else the registry's `Content-Type`; empty when
    /// neither says.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The size the parent's descriptor declares, in bytes; `None` for the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `os/arch[/variant]` of an index's child; `None` elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// What the registry answered for it.
    pub status: NodeStatus,
    /// An index's manifests; a manifest's config, then its layers; empty for blobs and for a
    /// node that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

impl Node {
    fn label(&self) -> String {
        let short = self.digest.get(..19).unwrap_or(&self.digest);
        match &self.platform {
            Some(p) => format!("{} {short}… ({p})", self.kind),
            None => format!("{} {short}…", self.kind),
        }
    }

    /// An index whose runnable children are all gone: the index still answers, so a pull by
    /// tag starts, and fails on every platform.
    pub fn is_orphan_index(&self) -> bool {
        self.kind == NodeKind::Index && {
            let runnable: Vec<&Node> = self
                .children
                .iter()
                .filter(|c| !matches!(c.status, NodeStatus::Attestation | NodeStatus::Skipped))
                .collect();
            !runnable.is_empty()
                && runnable
                    .iter()
                    .all(|c| matches!(c.status, NodeStatus::Missing { .. }))
        }
    }
}

/// State of the tag of a `name:tag@digest` or `name@digest` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum TagState {
    /// The tag points at the digest.
    Ok,
    /// The tag now points at another digest: nothing keeps the pinned one alive.
    Moved {
        /// The digest the tag points at now.
        current: Digest,
    },
    /// The tag no longer exists.
    Gone,
    /// A digest with no tag: delete-untagged garbage collection removes it.
    Untagged,
    /// A tag without digest: resolved, nothing to compare.
    NotPinned,
}

/// A broken piece and the path to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Broken {
    /// `index sha256:a… → manifest sha256:b… (linux/arm64) → layer sha256:c…: 404 blob unknown`
    pub path: String,
    /// The broken piece's digest.
    pub digest: String,
    /// What the broken piece is.
    pub kind: NodeKind,
    /// What is wrong with it: the end of `path`, after the colon.
    pub message: String,
}

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// The reference, serialized fully qualified.
    pub reference: ImageRef,
    /// The digest the reference resolves to, if it resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// What the tag says about the pinned digest ([`TagState::NotPinned`] without one).
    pub tag: TagState,
    /// The tree walked from [`Resolution::digest`]; `None` when the tag was not found, so
    /// there was nothing to walk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Node>,
    /// Set when the reference itself does not resolve (tag or digest unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    /// The root is an index whose runnable children are all gone ([`Node::is_orphan_index`]).
    pub orphan_index: bool,
    /// Every broken piece of the tree, root first (depth first, in the tree's order).
    pub problems: Vec<Broken>,
    /// HTTP requests this resolution sent (0 when everything came from the cache).
    pub requests: u64,
}

impl Resolution {
    /// Whether everything behind the reference is there and intact.
    pub fn is_pullable(&self) -> bool {
        self.unresolved.is_none() && self.problems.is_empty()
    }
}

/// Every broken piece under `node`, with the path to it from the root.
pub(super) fn collect_broken(node: &Node, path: &mut Vec<String>, out: &mut Vec<Broken>) {
    path.push(node.label());
    if node.status.is_failure() {
        out.push(Broken {
            path: format!("{}: {}", path.join(" → "), node.status.describe()),
            digest: node.digest.clone(),
            kind: node.kind,
            message: node.status.describe(),
        });
    }
    for c in &node.children {
        collect_broken(c, path, out);
    }
    path.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, status: NodeStatus, children: Vec<Node>) -> Node {
        Node {
            kind,
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: String::new(),
            size: None,
            platform: None,
            status,
            children,
        }
    }

    #[test]
    fn state_names_are_the_json_tags() {
        for status in [
            NodeStatus::Ok,
            NodeStatus::Missing {
                answer: String::new(),
            },
            NodeStatus::DigestMismatch {
                actual: String::new(),
            },
            NodeStatus::SizeMismatch {
                declared: 1,
                actual: 2,
            },
            NodeStatus::SizeUnverified,
            NodeStatus::Foreign,
            NodeStatus::Attestation,
            NodeStatus::Skipped,
            NodeStatus::Invalid {
                message: String::new(),
            },
            NodeStatus::Error {
                message: String::new(),
            },
        ] {
            assert_eq!(
                serde_json::to_value(&status).unwrap()["state"],
                status.as_str()
            );
        }
    }

    #[test]
    fn problems_carry_the_path_from_the_root() {
        let missing = NodeStatus::Missing {
            answer: "404 blob unknown".into(),
        };
        let mut manifest = node(
            NodeKind::Manifest,
            NodeStatus::Ok,
            vec![node(NodeKind::Layer, missing, vec![])],
        );
        manifest.platform = Some("linux/arm64".into());
        let root = node(NodeKind::Index, NodeStatus::Ok, vec![manifest]);
        let mut out = Vec::new();
        collect_broken(&root, &mut Vec::new(), &mut out);
        assert_eq!(
            out[0].path,
            "index sha256:aaaaaaaaaaaa… → manifest sha256:aaaaaaaaaaaa… (linux/arm64) → layer sha256:aaaaaaaaaaaa…: 404 blob unknown"
        );
    }

    #[test]
    fn an_index_whose_runnable_children_are_gone_is_an_orphan() {
        let gone = || {
            node(
                NodeKind::Manifest,
                NodeStatus::Missing {
                    answer: "404".into(),
                },
                vec![],
            )
        };
        let attestation = node(NodeKind::Manifest, NodeStatus::Attestation, vec![]);
        assert!(
            node(
                NodeKind::Index,
                NodeStatus::Ok,
                vec![gone(), gone(), attestation.clone()]
            )
            .is_orphan_index()
        );
        let ok = node(NodeKind::Manifest, NodeStatus::Ok, vec![]);
        assert!(!node(NodeKind::Index, NodeStatus::Ok, vec![gone(), ok]).is_orphan_index());
        assert!(!node(NodeKind::Index, NodeStatus::Ok, vec![attestation]).is_orphan_index());
    }
}
