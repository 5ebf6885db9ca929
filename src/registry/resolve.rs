//! The end-to-end walk: tag → digest → index → every child manifest → config → every layer.
//!
//! Nothing the registry says is trusted: every manifest and config is hashed and compared with
//! its digest, and every layer must answer HEAD with the size its manifest declares. The result
//! ([`super::resolution`]) is a tree of what was checked, and for each broken piece the path to
//! it.
//!
//! Caching ([`super::cache`]): content fetched by digest is immutable and cached (bounded by
//! bytes); tag → digest answers and blob existence are cached with short TTLs, not-found answers
//! shorter still; errors are never cached.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::join_all;
use moka::future::Cache;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256, Sha512};

use super::RegistryError;
use super::cache::{Cached, Entry, Fetched, Key, NotFound};
use super::http::{Endpoint, RegistryClient, Response};
use super::oci::{self, Descriptor, Manifest};
use super::pull::PullCredentials;
use super::resolution::{Node, NodeKind, NodeStatus, Resolution, TagState, collect_broken};
use super::scope::{self, Tenant};
use crate::policy::Policy;
use crate::reference::{Digest, DigestAlgorithm, ImageRef, RegistryHost};
use crate::report::error_text;

/// The most child manifests of one index walked: real indexes have a few platforms and their
/// attestations; an index of thousands is an attack on the walk, not an image.
pub const MAX_INDEX_CHILDREN: usize = 256;

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
    /// Registry requests one image's walk may send ([`super::scope::MAX_WALK_REQUESTS`]).
    pub max_walk_requests: u64,
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
            max_walk_requests: super::scope::MAX_WALK_REQUESTS,
        }
    }
}

#[derive(Clone)]
pub(super) struct Document {
    pub(super) content_type: Option<String>,
    pub(super) body: Arc<Vec<u8>>,
    /// Set when the body does not hash to its digest: such an answer is never cached.
    pub(super) mismatch: Option<String>,
}

/// Resolves images against the registries a policy approves, caching across calls.
pub struct Resolver {
    client: Arc<RegistryClient>,
    policy: Arc<Policy>,
    pub(super) opts: ResolveOptions,
    documents: Cached<Document>,
    tags: Cached<Digest>,
    blobs: Cached<Option<u64>>,
    /// Referrers lists by subject digest and artifact type: they change as artifacts are pushed,
    /// so they are kept as briefly as tags.
    pub(super) referrers: Cached<Arc<Vec<Descriptor>>>,
    /// Not-found answers (the registry's words), kept only briefly: a push may be on its way.
    pub(super) not_found: NotFound,
    /// Signature verdicts by (digest, signature manifest digest, rule fingerprint): a
    /// signature set is immutable under its digest, and the fingerprint covers the rule's keys,
    /// threshold and digests, so a verdict holds as long as all three, across policy reloads
    /// that keep this resolver; a new signature moves the `.sig` tag to another manifest.
    pub(super) signature_verdicts: Cache<(Digest, Digest, String), bool>,
    /// This resolver among every one the process made: what threads' copies of its verdicts
    /// are remembered under ([`super::verdicts`]).
    pub(super) id: u64,
}

/// The next [`Resolver::id`].
static RESOLVERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Resolver {
    /// A resolver for the registries `policy` approves, through `client`.
    pub fn new(client: Arc<RegistryClient>, policy: Arc<Policy>, opts: ResolveOptions) -> Self {
        let documents = Cache::builder()
            .max_capacity(opts.cache_bytes)
            .weigher(|_k: &Key, v: &Entry<Document>| match v.fetched() {
                Fetched::Found(d) => u32::try_from(d.body.len()).unwrap_or(u32::MAX).max(1),
                Fetched::NotFound(_) => 1,
            })
            .time_to_live(Duration::from_secs(24 * 3600))
            .build();
        Resolver {
            tags: Cached::refreshed(short_lived(opts.tag_ttl), opts.tag_ttl),
            blobs: Cached::refreshed(short_lived(opts.blob_ttl), opts.blob_ttl),
            referrers: Cached::refreshed(short_lived(opts.tag_ttl), opts.tag_ttl),
            not_found: short_lived(opts.not_found_ttl),
            documents: Cached::new(documents),
            // Kept ten minutes at most: a verdict of notation signatures is judged at the time
            // it was made (certificates and expiry), so one whose certificate has since
            // expired is made again within that. Cosign verdicts do not depend on the clock.
            signature_verdicts: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            id: RESOLVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            client,
            policy,
            opts,
        }
    }

    /// The policy whose registries this resolver may contact.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The shared HTTP client (for its request counters).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The endpoint for `image`, or `NotApproved` without any network IO.
    pub fn endpoint(&self, image: &ImageRef) -> Result<Endpoint, RegistryError> {
        // Approved in some namespace is approved to be contacted; whether the image is
        // approved where it runs is the policy's registry-not-approved, per namespace.
        match self.policy.contactable_registry(image) {
            Some(approved) => Ok(Endpoint {
                host: image.registry().clone(),
                insecure: approved.insecure(),
                // Looked up by the approved host itself: a secret's entry for another host is
                // never this endpoint's.
                auth: scope::pull_auth(image.registry()),
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
            .all_registries()
            .find(|r| r.matches_host(host))
            .map(|r| Endpoint {
                host: host.clone(),
                insecure: r.insecure(),
                auth: scope::pull_auth(host),
            })
            .ok_or_else(|| RegistryError::NotApproved {
                registry: host.to_string(),
            })
    }

    /// Run `fut`, the registry work for one image, as one walk: its requests share one budget
    /// (`max_walk_requests`). Inside a walk already, `fut` is part of that walk.
    pub fn walk<'a, F: Future + Send + 'a>(&self, fut: F) -> impl Future<Output = F::Output> + 'a {
        scope::in_walk(self.opts.max_walk_requests, fut).map(|(out, _)| out)
    }

    /// Run `fut` as a new walk for `tenant`, whose requests wait for registry slots as that
    /// tenant's ([`super::slots`]): at admission, the review's namespace.
    pub fn walk_for<'a, F: Future + Send + 'a>(
        &self,
        tenant: Tenant,
        fut: F,
    ) -> impl Future<Output = F::Output> + 'a {
        scope::new_walk(self.opts.max_walk_requests, Some(tenant), fut).map(|(out, _)| out)
    }

    /// [`Resolver::walk_for`] (`None`: no tenant, as the audit's walks), with the workload's
    /// own credentials (its pull secrets, [`super::pull`]): the walk's requests to the hosts
    /// they name use them, and its cached answers are kept under their principal.
    pub fn walk_with<'a, F: Future + Send + 'a>(
        &self,
        tenant: Option<Tenant>,
        pull: Option<Arc<PullCredentials>>,
        fut: F,
    ) -> impl Future<Output = F::Output> + 'a {
        scope::new_walk_with(self.opts.max_walk_requests, tenant, pull, fut).map(|(out, _)| out)
    }

    /// Run `fut` as a walk of its own even inside another one (for the same tenant): work that
    /// serves every later walk, not the one that happens to need it first. It never has the
    /// current walk's pull secrets: what it finds (the approved bases) is shared by every
    /// namespace, so it is found with the server's own credentials.
    pub fn separate_walk<'a, F: Future + Send + 'a>(
        &self,
        fut: F,
    ) -> impl Future<Output = F::Output> + 'a {
        scope::new_walk(self.opts.max_walk_requests, scope::tenant(), fut).map(|(out, _)| out)
    }

    /// Resolve `image` end to end under the deadline, as one walk (part of the current walk,
    /// if there is one).
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolution, RegistryError> {
        let ep = self.endpoint(image)?;
        let deadline = self.opts.deadline;
        let (outcome, requests) = scope::in_walk(
            self.opts.max_walk_requests,
            tokio::time::timeout(deadline, self.resolve_inner(&ep, image)),
        )
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
            reference: image.clone(),
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
                    Some(Fetched::Found(current)) if current == *pinned => TagState::Ok,
                    Some(Fetched::Found(current)) => TagState::Moved { current },
                    Some(Fetched::NotFound(_)) => TagState::Gone,
                };
                pinned.clone()
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
        let failed = Mutex::new(None);
        let at = At {
            ep,
            repo,
            failed: &failed,
        };
        let root = self
            .walk_manifest(&at, &top.to_string(), None, None, 0)
            .await;
        // A piece the registry did not answer for is not a verdict: unless something else is
        // definitely broken (missing, corrupt), the whole image could not be checked.
        let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = failed
            && !has_definite_failure(&root)
        {
            return Err(e);
        }
        if matches!(root.status, NodeStatus::Missing { .. }) && image.digest().is_some() {
            resolution.unresolved = Some(format!(
                "digest {top} not found: {}",
                root.status.describe()
            ));
        }
        resolution.orphan_index = root.is_orphan_index();
        collect_broken(&root, &mut Vec::new(), &mut resolution.problems);
        resolution.root = Some(root);
        Ok(resolution)
    }

    /// The digest a tag points at. HEAD first (no body needed); a registry that sends no
    /// `Docker-Content-Digest` gets a GET, and the body's hash is the digest.
    pub(super) async fn tag_digest(
        &self,
        ep: &Endpoint,
        repo: &str,
        tag: &str,
    ) -> Result<Fetched<Digest>, RegistryError> {
        // Tags and digests share the key space of one repository, so mark the tag's key.
        let key = (ep.clone(), repo.to_owned(), format!("tag:{tag}"));
        let fetch = move || async move {
            let head = self.client.manifest(ep, repo, tag, Method::HEAD).await?;
            if head.status == StatusCode::NOT_FOUND {
                return Ok(Fetched::NotFound(head.error_text()));
            }
            check_status(&head, ep, repo, tag)?;
            if let Some(d) = head.docker_digest.and_then(|d| d.parse::<Digest>().ok()) {
                return Ok(Fetched::Found(d));
            }
            // No usable Docker-Content-Digest: the digest is the hash of the manifest's bytes.
            let get = self.client.manifest(ep, repo, tag, Method::GET).await?;
            check_status(&get, ep, repo, tag)?;
            let sha256 = format!("sha256:{}", hex(&Sha256::digest(&get.body)));
            Ok(Fetched::Found(
                sha256.parse().expect("a sha256 digest parses"),
            ))
        };
        self.tags.get(&self.not_found, key, fetch, |_| true).await
    }

    /// A manifest or config by digest, hash-checked. Not-found answers are cached briefly;
    /// errors are not cached.
    pub(super) async fn document(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
        is_manifest: bool,
    ) -> Result<Fetched<Document>, RegistryError> {
        let key = (ep.clone(), repo.to_owned(), digest.to_owned());
        let max = self.opts.max_document_bytes;
        let fetch = move || async move {
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
        };
        self.documents
            .get(&self.not_found, key, fetch, |doc| doc.mismatch.is_none())
            .await
    }

    /// HEAD a layer: its size, or not found.
    async fn blob_size(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &str,
    ) -> Result<Fetched<Option<u64>>, RegistryError> {
        let key = (ep.clone(), repo.to_owned(), digest.to_owned());
        let fetch = move || async move {
            let r = self.client.blob_head(ep, repo, digest).await?;
            if r.status == StatusCode::NOT_FOUND {
                // A HEAD has no body: name the registry's usual code.
                return Ok(Fetched::NotFound("404 blob unknown".to_owned()));
            }
            check_status(&r, ep, repo, digest)?;
            Ok(Fetched::Found(r.content_length))
        };
        self.blobs.get(&self.not_found, key, fetch, |_| true).await
    }

    fn walk_manifest<'a>(
        &'a self,
        at: &'a At<'a>,
        digest: &'a str,
        declared: Option<&'a Descriptor>,
        platform: Option<String>,
        depth: usize,
    ) -> futures_util::future::BoxFuture<'a, Node> {
        let (ep, repo, failed) = (at.ep, at.repo, at.failed);
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
                        message: error_text(&e),
                    };
                    keep_first(failed, e);
                    return node;
                }
            };
            if let Some(status) = content_status(&doc, declared.map(|d| d.size)) {
                node.status = status;
                return node;
            }
            let parsed = match oci::parse(&doc.body, doc.content_type.as_deref()) {
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
                    if manifests.len() > MAX_INDEX_CHILDREN {
                        node.status = NodeStatus::Invalid {
                            message: format!(
                                "an index of {} child manifests, more than the {MAX_INDEX_CHILDREN} tollgate walks",
                                manifests.len()
                            ),
                        };
                        return node;
                    }
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
                            at,
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
                    let config_node = self.walk_config(at, &config).await;
                    let layer_nodes = join_all(layers.iter().map(|l| self.walk_layer(at, l))).await;
                    node.children.push(config_node);
                    node.children.extend(layer_nodes);
                }
            }
            node
        })
    }

    async fn walk_config(&self, at: &At<'_>, d: &Descriptor) -> Node {
        let (ep, repo, failed) = (at.ep, at.repo, at.failed);
        let mut node = leaf(NodeKind::Config, d);
        if let Err(message) = d.parsed_digest() {
            node.status = NodeStatus::Invalid { message };
            return node;
        }
        node.status = match self.document(ep, repo, &d.digest, false).await {
            Ok(Fetched::Found(doc)) => match content_status(&doc, Some(d.size)) {
                Some(bad) => bad,
                None => match oci::parse_config(&doc.body) {
                    Ok(_) => NodeStatus::Ok,
                    Err(message) => NodeStatus::Invalid { message },
                },
            },
            Ok(Fetched::NotFound(answer)) => NodeStatus::Missing { answer },
            Err(e) => {
                let status = NodeStatus::Error {
                    message: error_text(&e),
                };
                keep_first(failed, e);
                status
            }
        };
        node
    }

    async fn walk_layer(&self, at: &At<'_>, d: &Descriptor) -> Node {
        let (ep, repo, failed) = (at.ep, at.repo, at.failed);
        let mut node = leaf(NodeKind::Layer, d);
        if oci::is_foreign_layer(&d.media_type) {
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
            Ok(Fetched::Found(Some(_))) => NodeStatus::Ok,
            Ok(Fetched::Found(None)) => NodeStatus::SizeUnverified,
            Ok(Fetched::NotFound(answer)) => NodeStatus::Missing { answer },
            Err(e) => {
                let status = NodeStatus::Error {
                    message: error_text(&e),
                };
                keep_first(failed, e);
                status
            }
        };
        if matches!(node.status, NodeStatus::SizeMismatch { .. }) {
            // A wrong size is a failure: ask again next time rather than keep it for the TTL.
            self.blobs
                .forget(&(ep.clone(), repo.to_owned(), d.digest.clone()))
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
            .peek(&(ep.clone(), repo.to_owned(), digest.to_owned()))
            .await
        {
            Some(Fetched::Found(d)) if d.mismatch.is_none() => Some(d.body),
            _ => None,
        }
    }
}

/// A cache of small answers (tag digests, blob sizes, not-found texts) kept for `ttl`.
fn short_lived<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<Key, V> {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(ttl)
        .build()
}

/// Where one walk is: the registry, the repository, and the first error any piece met.
struct At<'a> {
    ep: &'a Endpoint,
    repo: &'a str,
    failed: &'a Mutex<Option<RegistryError>>,
}

/// Keep the first error of a walk (the one that decides "could not check").
fn keep_first(slot: &Mutex<Option<RegistryError>>, e: RegistryError) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(e);
}

/// Whether anything under `node` is definitely broken: missing, corrupt, of the wrong size or
/// invalid (a verdict), as opposed to unanswered (not one).
fn has_definite_failure(node: &Node) -> bool {
    (node.status.is_failure() && !matches!(node.status, NodeStatus::Error { .. }))
        || node.children.iter().any(has_definite_failure)
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

#[cfg(test)]
mod tests {
    use super::*;

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
