//! The end-to-end walk: tag → digest → index → every child manifest → config → every layer.
//!
//! Nothing the registry says is trusted: every manifest and config is hashed and compared with
//! its digest, and every layer must answer HEAD with the size its manifest declares. The result
//! is a tree of what was checked, and for each missing piece the path to it.
//!
//! Caching: content fetched by digest is immutable and cached (bounded by bytes); tag → digest
//! answers and blob existence are cached with short TTLs, not-found answers shorter still;
//! errors are never cached. Concurrent lookups of the same key share one request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use moka::future::Cache;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};

use super::RegistryError;
use super::http::{Endpoint, RegistryClient, Response};
use super::manifest::{self, Descriptor, Manifest};
use crate::policy::Policy;
use crate::reference::{Digest, DigestAlgorithm, ImageRef, RegistryHost};

/// How the walk behaves.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Platforms to walk (`linux/amd64`, `linux/arm64/v8`); empty means all.
    pub platforms: Vec<String>,
    /// Deadline for one whole resolution.
    pub deadline: Duration,
    /// How long a tag → digest answer is reused.
    pub tag_ttl: Duration,
    /// How long a blob's existence is reused.
    pub blob_ttl: Duration,
    /// How long a not-found answer is reused.
    pub not_found_ttl: Duration,
    /// Bytes of manifests and configs kept in memory.
    pub cache_bytes: u64,
    /// Largest manifest or config fetched.
    pub max_document_bytes: u64,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            platforms: Vec::new(),
            deadline: Duration::from_secs(20),
            tag_ttl: Duration::from_secs(30),
            blob_ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(5),
            cache_bytes: 64 << 20,
            max_document_bytes: 4 << 20,
        }
    }
}

/// What a node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Index,
    Manifest,
    Config,
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
    Ok,
    /// The registry does not serve it (404 and the registry's error code).
    Missing {
        answer: String,
    },
    /// The content's hash is not its digest.
    DigestMismatch {
        actual: String,
    },
    /// The blob's size is not the one its manifest declares.
    SizeMismatch {
        declared: u64,
        actual: u64,
    },
    /// A foreign / non-distributable layer: fetched from its URLs, not from the registry.
    Foreign,
    /// An attestation or other non-runnable child of an index (not walked, not a failure).
    Attestation,
    /// Not in the selected platforms.
    Skipped,
    /// The content is not a valid manifest or config.
    Invalid {
        message: String,
    },
    /// The registry failed to answer (after retries).
    Error {
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

    fn describe(&self) -> String {
        match self {
            NodeStatus::Ok => "ok".into(),
            NodeStatus::Missing { answer } => answer.clone(),
            NodeStatus::DigestMismatch { actual } => {
                format!("content hashes to {actual}, not to its digest")
            }
            NodeStatus::SizeMismatch { declared, actual } => {
                format!("{actual} bytes, the manifest declares {declared}")
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
    pub kind: NodeKind,
    pub digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub status: NodeStatus,
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

    /// An index whose runnable children are all gone: seed 004's orphan index.
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
    Moved { current: String },
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
pub struct Problem {
    /// `index sha256:a… → manifest sha256:b… (linux/arm64) → layer sha256:c…: 404 blob unknown`
    pub path: String,
    pub digest: String,
    pub kind: NodeKind,
    pub message: String,
}

/// The outcome of one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// The fully-qualified reference.
    pub reference: String,
    /// The digest the reference resolves to, if it resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub tag: TagState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Node>,
    /// Set when the reference itself does not resolve (tag or digest unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    pub orphan_index: bool,
    pub problems: Vec<Problem>,
    /// HTTP requests this resolution sent (0 when everything came from the cache).
    pub requests: u64,
}

impl Resolution {
    /// Whether everything behind the reference is there and intact.
    pub fn is_pullable(&self) -> bool {
        self.unresolved.is_none() && self.problems.is_empty()
    }
}

#[derive(Clone)]
struct Document {
    content_type: Option<String>,
    body: Arc<Vec<u8>>,
    /// Set when the body does not hash to its digest: such an answer is never cached.
    mismatch: Option<String>,
}

/// A fetch outcome worth caching: found content, or not found (with the registry's words).
#[derive(Clone)]
enum Fetched<T> {
    Found(T),
    NotFound(String),
}

type RepoKey = (Endpoint, String, String);

/// Resolves images against the registries a policy approves, caching across calls.
pub struct Resolver {
    client: Arc<RegistryClient>,
    policy: Arc<Policy>,
    opts: ResolveOptions,
    documents: Cache<RepoKey, Fetched<Document>>,
    tags: Cache<RepoKey, Fetched<String>>,
    blobs: Cache<RepoKey, Fetched<Option<u64>>>,
    /// Not-found answers (the registry's words), kept only briefly: a push may be on its way.
    not_found: Cache<RepoKey, String>,
}

impl Resolver {
    pub fn new(client: Arc<RegistryClient>, policy: Arc<Policy>, opts: ResolveOptions) -> Self {
        let documents = Cache::builder()
            .max_capacity(opts.cache_bytes)
            .weigher(|_k: &RepoKey, v: &Fetched<Document>| match v {
                Fetched::Found(d) => u32::try_from(d.body.len()).unwrap_or(u32::MAX).max(1),
                Fetched::NotFound(_) => 1,
            })
            .time_to_live(Duration::from_secs(24 * 3600))
            .build();
        Resolver {
            tags: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(opts.tag_ttl)
                .build(),
            blobs: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(opts.blob_ttl)
                .build(),
            not_found: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(opts.not_found_ttl)
                .build(),
            documents,
            client,
            policy,
            opts,
        }
    }

    /// The shared HTTP client (for its request counters).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The endpoint for `image`, or `NotApproved` without any network IO.
    pub fn endpoint(&self, image: &ImageRef) -> Result<Endpoint, RegistryError> {
        match self.policy.approved_registry(image) {
            Some(approved) => Ok(Endpoint {
                host: image.registry().clone(),
                insecure: approved.insecure(),
            }),
            None => Err(RegistryError::NotApproved {
                registry: image.registry().to_string(),
            }),
        }
    }

    /// The endpoint for a whole registry (catalog scans): approved when the host, or an alias of
    /// it, is approved for at least one path.
    pub fn endpoint_for_host(&self, host: &RegistryHost) -> Result<Endpoint, RegistryError> {
        self.policy
            .registries()
            .iter()
            .find(|r| r.host() == host || r.aliases().contains(host))
            .map(|r| Endpoint {
                host: host.clone(),
                insecure: r.insecure(),
            })
            .ok_or_else(|| RegistryError::NotApproved {
                registry: host.to_string(),
            })
    }

    /// Resolve `image` end to end under the deadline.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolution, RegistryError> {
        let ep = self.endpoint(image)?;
        let deadline = self.opts.deadline;
        let (outcome, requests) = super::http::counting_requests(tokio::time::timeout(
            deadline,
            self.resolve_inner(&ep, image),
        ))
        .await;
        let mut resolution = outcome.map_err(|_| RegistryError::Deadline {
            millis: deadline.as_millis() as u64,
        })??;
        resolution.requests = requests;
        Ok(resolution)
    }

    async fn resolve_inner(
        &self,
        ep: &Endpoint,
        image: &ImageRef,
    ) -> Result<Resolution, RegistryError> {
        let repo = image.repository().as_str();
        let mut resolution = Resolution {
            reference: image.to_string(),
            digest: None,
            tag: TagState::NotPinned,
            root: None,
            unresolved: None,
            orphan_index: false,
            problems: Vec::new(),
            requests: 0,
        };
        let tag_digest = match image.tag() {
            Some(tag) => Some(self.tag_digest(ep, repo, tag.as_str()).await?),
            None => None,
        };
        let top = match (image.digest(), tag_digest) {
            (Some(pinned), tag) => {
                resolution.tag = match tag {
                    None => TagState::Untagged,
                    Some(Fetched::Found(current)) if current == pinned.to_string() => TagState::Ok,
                    Some(Fetched::Found(current)) => TagState::Moved { current },
                    Some(Fetched::NotFound(_)) => TagState::Gone,
                };
                pinned.to_string()
            }
            (None, Some(Fetched::Found(d))) => d,
            (None, Some(Fetched::NotFound(answer))) => {
                resolution.unresolved = Some(format!(
                    "tag {} not found: {answer}",
                    image.tag().map(|t| t.as_str()).unwrap_or("")
                ));
                return Ok(resolution);
            }
            (None, None) => {
                // No tag and no digest: the runtime would pull `latest`, and so do we.
                match self.tag_digest(ep, repo, "latest").await? {
                    Fetched::Found(d) => d,
                    Fetched::NotFound(answer) => {
                        resolution.unresolved =
                            Some(format!("implicit tag latest not found: {answer}"));
                        return Ok(resolution);
                    }
                }
            }
        };
        resolution.digest = Some(top.clone());
        let root = self.walk_manifest(ep, repo, &top, None, None, 0).await;
        if matches!(root.status, NodeStatus::Missing { .. }) && image.digest().is_some() {
            resolution.unresolved = Some(format!(
                "digest {top} not found: {}",
                root.status.describe()
            ));
        }
        resolution.orphan_index = root.is_orphan_index();
        collect_problems(&root, &mut Vec::new(), &mut resolution.problems);
        resolution.root = Some(root);
        Ok(resolution)
    }

    /// The digest a tag points at. HEAD first (no body needed); a registry that sends no
    /// `Docker-Content-Digest` gets a GET, and the body's hash is the digest.
    async fn tag_digest(
        &self,
        ep: &Endpoint,
        repo: &str,
        tag: &str,
    ) -> Result<Fetched<String>, RegistryError> {
        // Tags and digests share the key space of one repository, so mark the tag's key.
        let key = (ep.clone(), repo.to_owned(), format!("tag:{tag}"));
        if let Some(answer) = self.not_found.get(&key).await {
            return Ok(Fetched::NotFound(answer));
        }
        let fetched = self
            .tags
            .try_get_with(key.clone(), async {
                let head = self.client.manifest(ep, repo, tag, Method::HEAD).await?;
                if head.status == StatusCode::NOT_FOUND {
                    return Ok(Fetched::NotFound(head.error_text()));
                }
                check_status(&head, ep, repo, tag)?;
                if let Some(d) = head.docker_digest.filter(|d| d.parse::<Digest>().is_ok()) {
                    return Ok(Fetched::Found(d));
                }
                let get = self.client.manifest(ep, repo, tag, Method::GET).await?;
                check_status(&get, ep, repo, tag)?;
                Ok(Fetched::Found(format!(
                    "sha256:{}",
                    hex(&Sha256::digest(&get.body))
                )))
            })
            .await
            .map_err(|e: Arc<RegistryError>| (*e).clone())?;
        if let Fetched::NotFound(answer) = &fetched {
            self.tags.invalidate(&key).await;
            self.not_found.insert(key, answer.clone()).await;
        }
        Ok(fetched)
    }

    /// A manifest or config by digest, hash-checked. Not-found answers are cached briefly;
    /// errors are not cached.
    async fn document(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        is_manifest: bool,
    ) -> Result<Fetched<Document>, RegistryError> {
        let key = (ep.clone(), repo.to_owned(), digest.to_owned());
        if let Some(answer) = self.not_found.get(&key).await {
            return Ok(Fetched::NotFound(answer));
        }
        let max = self.opts.max_document_bytes;
        let fetched = self
            .documents
            .try_get_with(key.clone(), async {
                let r = if is_manifest {
                    self.client.manifest(ep, repo, digest, Method::GET).await?
                } else {
                    self.client.blob_get(ep, repo, digest, max).await?
                };
                if r.status == StatusCode::NOT_FOUND {
                    return Ok(Fetched::NotFound(r.error_text()));
                }
                check_status(&r, ep, repo, digest)?;
                // Verified before it is cached: content keyed by digest must be that content.
                let mismatch = hash_mismatch(digest, &r.body);
                Ok(Fetched::Found(Document {
                    content_type: r.content_type,
                    body: Arc::new(r.body),
                    mismatch,
                }))
            })
            .await
            .map_err(|e: Arc<RegistryError>| (*e).clone())?;
        match &fetched {
            Fetched::NotFound(answer) => {
                self.documents.invalidate(&key).await;
                self.not_found.insert(key, answer.clone()).await;
            }
            Fetched::Found(doc) if doc.mismatch.is_some() => self.documents.invalidate(&key).await,
            Fetched::Found(_) => {}
        }
        Ok(fetched)
    }

    /// HEAD a layer: its size, or not found.
    async fn blob_size(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
    ) -> Result<Fetched<Option<u64>>, RegistryError> {
        let key = (ep.clone(), repo.to_owned(), digest.to_owned());
        if let Some(answer) = self.not_found.get(&key).await {
            return Ok(Fetched::NotFound(answer));
        }
        let fetched = self
            .blobs
            .try_get_with(key.clone(), async {
                let r = self.client.blob_head(ep, repo, digest).await?;
                if r.status == StatusCode::NOT_FOUND {
                    // A HEAD has no body: name the registry's usual code.
                    return Ok(Fetched::NotFound("404 blob unknown".to_owned()));
                }
                check_status(&r, ep, repo, digest)?;
                Ok(Fetched::Found(r.content_length))
            })
            .await
            .map_err(|e: Arc<RegistryError>| (*e).clone())?;
        if let Fetched::NotFound(answer) = &fetched {
            self.blobs.invalidate(&key).await;
            self.not_found.insert(key, answer.clone()).await;
        }
        Ok(fetched)
    }

    fn walk_manifest<'a>(
        &'a self,
        ep: &'a Endpoint,
        repo: &'a str,
        digest: &'a str,
        declared: Option<&'a Descriptor>,
        platform: Option<String>,
        depth: usize,
    ) -> futures_util::future::BoxFuture<'a, Node> {
        Box::pin(async move {
            let mut node = Node {
                kind: NodeKind::Manifest,
                digest: digest.to_owned(),
                media_type: declared.map(|d| d.media_type.clone()).unwrap_or_default(),
                size: declared.map(|d| d.size),
                platform,
                status: NodeStatus::Ok,
                children: Vec::new(),
            };
            let doc = match self.document(ep, repo, digest, true).await {
                Ok(Fetched::Found(doc)) => doc,
                Ok(Fetched::NotFound(answer)) => {
                    node.status = NodeStatus::Missing { answer };
                    return node;
                }
                Err(e) => {
                    node.status = NodeStatus::Error {
                        message: e.to_string(),
                    };
                    return node;
                }
            };
            if let Some(status) = content_status(&doc, declared.map(|d| d.size)) {
                node.status = status;
                return node;
            }
            let parsed = match manifest::parse(&doc.body, doc.content_type.as_deref()) {
                Ok(m) => m,
                Err(message) => {
                    node.status = NodeStatus::Invalid { message };
                    return node;
                }
            };
            if node.media_type.is_empty() {
                node.media_type = doc.content_type.clone().unwrap_or_default();
            }
            match parsed {
                Manifest::Index { manifests } => {
                    node.kind = NodeKind::Index;
                    if depth >= 3 {
                        node.status = NodeStatus::Invalid {
                            message: "indexes nested deeper than 3 levels".into(),
                        };
                        return node;
                    }
                    let children = manifests.iter().map(|child| async move {
                        let platform = child.platform.as_ref().map(ToString::to_string);
                        let skip = |status| Node {
                            kind: NodeKind::Manifest,
                            digest: child.digest.clone(),
                            media_type: child.media_type.clone(),
                            size: Some(child.size),
                            platform: platform.clone(),
                            status,
                            children: Vec::new(),
                        };
                        if child.is_attestation() {
                            return skip(NodeStatus::Attestation);
                        }
                        if !self.opts.platforms.is_empty()
                            && !platform
                                .as_ref()
                                .is_some_and(|p| self.opts.platforms.iter().any(|want| want == p))
                        {
                            return skip(NodeStatus::Skipped);
                        }
                        if let Err(message) = child.parsed_digest() {
                            return skip(NodeStatus::Invalid { message });
                        }
                        self.walk_manifest(
                            ep,
                            repo,
                            &child.digest,
                            Some(child),
                            platform.clone(),
                            depth + 1,
                        )
                        .await
                    });
                    node.children = join_all(children).await;
                }
                Manifest::Image { config, layers } => {
                    let config_node = self.walk_config(ep, repo, &config).await;
                    let layer_nodes =
                        join_all(layers.iter().map(|l| self.walk_layer(ep, repo, l))).await;
                    node.children.push(config_node);
                    node.children.extend(layer_nodes);
                }
            }
            node
        })
    }

    async fn walk_config(&self, ep: &Endpoint, repo: &str, d: &Descriptor) -> Node {
        let mut node = leaf(NodeKind::Config, d);
        if let Err(message) = d.parsed_digest() {
            node.status = NodeStatus::Invalid { message };
            return node;
        }
        node.status = match self.document(ep, repo, &d.digest, false).await {
            Ok(Fetched::Found(doc)) => match content_status(&doc, Some(d.size)) {
                Some(bad) => bad,
                None => match manifest::parse_config(&doc.body) {
                    Ok(_) => NodeStatus::Ok,
                    Err(message) => NodeStatus::Invalid { message },
                },
            },
            Ok(Fetched::NotFound(answer)) => NodeStatus::Missing { answer },
            Err(e) => NodeStatus::Error {
                message: e.to_string(),
            },
        };
        node
    }

    async fn walk_layer(&self, ep: &Endpoint, repo: &str, d: &Descriptor) -> Node {
        let mut node = leaf(NodeKind::Layer, d);
        if manifest::is_foreign_layer(&d.media_type) {
            node.status = NodeStatus::Foreign;
            return node;
        }
        if let Err(message) = d.parsed_digest() {
            node.status = NodeStatus::Invalid { message };
            return node;
        }
        node.status = match self.blob_size(ep, repo, &d.digest).await {
            Ok(Fetched::Found(Some(actual))) if actual != d.size => NodeStatus::SizeMismatch {
                declared: d.size,
                actual,
            },
            Ok(Fetched::Found(_)) => NodeStatus::Ok,
            Ok(Fetched::NotFound(answer)) => NodeStatus::Missing { answer },
            Err(e) => NodeStatus::Error {
                message: e.to_string(),
            },
        };
        if matches!(node.status, NodeStatus::SizeMismatch { .. }) {
            // A wrong size is a failure: ask again next time rather than keep it for the TTL.
            self.blobs
                .invalidate(&(ep.clone(), repo.to_owned(), d.digest.clone()))
                .await;
        }
        node
    }

    /// The raw config of an image manifest node, from the cache (for base-image checks).
    pub async fn cached_document(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
    ) -> Option<Arc<Vec<u8>>> {
        match self
            .documents
            .get(&(ep.clone(), repo.to_owned(), digest.to_owned()))
            .await
        {
            Some(Fetched::Found(d)) if d.mismatch.is_none() => Some(d.body),
            _ => None,
        }
    }
}

fn leaf(kind: NodeKind, d: &Descriptor) -> Node {
    Node {
        kind,
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: Some(d.size),
        platform: None,
        status: NodeStatus::Ok,
        children: Vec::new(),
    }
}

fn check_status(r: &Response, ep: &Endpoint, repo: &str, what: &str) -> Result<(), RegistryError> {
    if r.status.is_success() {
        Ok(())
    } else {
        Err(RegistryError::Status {
            url: format!("{}/{repo}@{what}", ep.host),
            status: r.status.as_u16(),
            message: r.error_text(),
        })
    }
}

/// A fetched document's hash and size against its descriptor; `None` when both match.
fn content_status(doc: &Document, declared_size: Option<u64>) -> Option<NodeStatus> {
    if let Some(actual) = &doc.mismatch {
        return Some(NodeStatus::DigestMismatch {
            actual: actual.clone(),
        });
    }
    match declared_size {
        Some(declared) if declared != doc.body.len() as u64 => Some(NodeStatus::SizeMismatch {
            declared,
            actual: doc.body.len() as u64,
        }),
        _ => None,
    }
}

/// The actual digest of `body` when it is not `digest`; `None` when it matches.
fn hash_mismatch(digest: &str, body: &[u8]) -> Option<String> {
    let Ok(parsed) = digest.parse::<Digest>() else {
        return Some(format!("an unparsable digest {digest:?}"));
    };
    let actual = match parsed.algorithm() {
        DigestAlgorithm::Sha256 => format!("sha256:{}", hex(&Sha256::digest(body))),
        DigestAlgorithm::Sha384 => format!("sha384:{}", hex(&sha2::Sha384::digest(body))),
        DigestAlgorithm::Sha512 => format!("sha512:{}", hex(&Sha512::digest(body))),
    };
    (actual != digest).then_some(actual)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn collect_problems(node: &Node, path: &mut Vec<String>, out: &mut Vec<Problem>) {
    path.push(node.label());
    if node.status.is_failure() {
        out.push(Problem {
            path: format!("{}: {}", path.join(" → "), node.status.describe()),
            digest: node.digest.clone(),
            kind: node.kind,
            message: node.status.describe(),
        });
    }
    for c in &node.children {
        collect_problems(c, path, out);
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
        collect_problems(&root, &mut Vec::new(), &mut out);
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

    #[test]
    fn content_is_checked_against_its_digest_and_size() {
        let body = b"{}";
        let digest = format!("sha256:{}", hex(&Sha256::digest(body)));
        assert_eq!(hash_mismatch(&digest, body), None);
        assert!(hash_mismatch(&digest, b"{ }").is_some_and(|a| a.starts_with("sha256:")));
        let doc = |mismatch| Document {
            content_type: None,
            body: Arc::new(body.to_vec()),
            mismatch,
        };
        assert_eq!(content_status(&doc(None), Some(2)), None);
        assert_eq!(
            content_status(&doc(None), Some(3)),
            Some(NodeStatus::SizeMismatch {
                declared: 3,
                actual: 2
            })
        );
        assert!(matches!(
            content_status(&doc(Some("sha256:x".into())), Some(2)),
            Some(NodeStatus::DigestMismatch { .. })
        ));
    }
}
