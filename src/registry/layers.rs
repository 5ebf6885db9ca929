//! Reading one layer blob for its dpkg database: streamed from the registry into the pure
//! scanner ([`crate::packages::read_layer`]) on a blocking thread, through a bounded channel,
//! so that a layer of any size costs a few chunks of memory. The bytes are hashed as they pass
//! and the scan is kept only when they are the digest the manifest names: a registry that
//! serves other bytes under a digest cannot plant packages.

use std::io::{self, Read};

use bytes::Bytes;
use reqwest::StatusCode;
use sha2::Digest as _;
use sha2::digest::DynDigest;

use super::resolve::hex;
use super::{Endpoint, RegistryClient, RegistryError};
use crate::packages::{LayerError, LayerScan, Limits, read_layer};
use crate::reference::{Digest, DigestAlgorithm};

/// Chunks queued between the download and the scanner: enough to keep both busy, few enough
/// that a slow scanner holds back the download rather than filling memory.
const QUEUED_CHUNKS: usize = 16;

/// What reading one layer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRead {
    /// The bytes are the digest, and the scanner read them.
    Scanned(LayerScan),
    /// The bytes are the digest, and they are not a layer the scanner can read (not a tar, too
    /// large expanded): a fact about this digest, which another download would not change.
    Unreadable(LayerError),
}

/// Read layer `digest` of `repo`, declared `size` bytes by its manifest.
///
/// An error is something about this download, not about the layer (the registry did not
/// answer, does not serve it, or served other bytes): nothing is known, and the caller tries
/// again later.
pub async fn read_layer_blob(
    client: &RegistryClient,
    ep: &Endpoint,
    repo: &str,
    digest: &Digest,
    size: u64,
    limits: Limits,
) -> Result<LayerRead, RegistryError> {
    let url = format!("{}/{repo}@{digest}", ep.host);
    let invalid = |message: String| RegistryError::Invalid {
        url: url.clone(),
        what: "layer",
        message,
    };
    let mut stream = client
        .blob_stream(ep, repo, &digest.to_string(), size)
        .await?;
    let status = stream.response.status;
    if !status.is_success() {
        return Err(if status == StatusCode::NOT_FOUND {
            invalid(format!(
                "the registry does not serve it: {}",
                stream.response.error_text()
            ))
        } else {
            RegistryError::Status {
                url: url.clone(),
                status: status.as_u16(),
                message: stream.response.error_text(),
            }
        });
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let scanner = tokio::task::spawn_blocking(move || {
        read_layer(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            limits,
        )
    });
    let mut hasher = hasher(digest.algorithm());
    let mut received = 0u64;
    let mut tx = Some(tx);
    let download = async {
        while let Some(chunk) = stream.chunk().await? {
            hasher.update(&chunk);
            received += chunk.len() as u64;
            // The scanner may be done before the blob is (a tar's end comes before its
            // padding, or it failed): the rest is still hashed, so the verdict is on the
            // digest's bytes.
            if let Some(sender) = &tx
                && sender.send(chunk).await.is_err()
            {
                tx = None;
            }
        }
        Ok::<(), RegistryError>(())
    };
    let downloaded = download.await;
    drop(tx);
    // Joined before the download's error is returned, so the thread never outlives the call.
    let scanned = scanner.await;
    downloaded?;
    if received != size {
        return Err(invalid(format!(
            "the manifest declares {size} bytes and the registry sent {received}"
        )));
    }
    let actual = format!(
        "{}:{}",
        digest.algorithm().as_str(),
        hex(&hasher.finalize())
    );
    if actual != digest.to_string() {
        return Err(invalid(format!("its bytes hash to {actual}")));
    }
    match scanned {
        Ok(Ok(scan)) => Ok(LayerRead::Scanned(scan)),
        Ok(Err(e)) => Ok(LayerRead::Unreadable(e)),
        // The scanner is pure and does not panic on any input (fuzzed); a panic is a bug, and
        // the layer is left unknown rather than reported as empty.
        Err(e) => Err(invalid(format!("the layer scanner failed: {e}"))),
    }
}

fn hasher(algorithm: DigestAlgorithm) -> Box<dyn DynDigest + Send> {
    match algorithm {
        DigestAlgorithm::Sha256 => Box::new(sha2::Sha256::new()),
        DigestAlgorithm::Sha384 => Box::new(sha2::Sha384::new()),
        DigestAlgorithm::Sha512 => Box::new(sha2::Sha512::new()),
    }
}

/// The scanner's side of the channel: a `Read` that waits for the next chunk, and ends when
/// the download does.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
