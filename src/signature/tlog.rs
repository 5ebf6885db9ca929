//! Transparency-log evidence, checked offline: RFC 6962 / RFC 9162 Merkle inclusion proofs, and
//! the signed-note checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) that commit a
//! log to a tree head. Pure: the caller passes the entry's body, the proof and the log's key.

use sha2::{Digest as _, Sha256};

use super::bundle::InclusionProof;
use super::dsse::decode_base64;
use super::keys::{KeyError, PublicKey};

/// The largest checkpoint read: a tree head and a few signatures fit in a few hundred bytes;
/// the signed-note spec asks verifiers to bound a note, and to accept at least 16 signatures
/// (post-quantum ones near 5 kB each).
pub const MAX_CHECKPOINT_BYTES: usize = 96 << 10;
/// The most signature lines of one checkpoint read (the signed-note spec's minimum).
pub const MAX_NOTE_SIGNATURES: usize = 16;

/// A checkpoint's tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first line: the log's origin (`rekor.sigstore.dev - 1193050959916656506`).
    pub origin: String,
    /// The second line: the tree size.
    pub size: u64,
    /// The third line, decoded: the tree's root hash.
    pub root_hash: [u8; 32],
}

/// A log's checkpoint-signing key, its signed-note key ID, and optionally its key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    key: PublicKey,
    hint: [u8; 4],
    name: Option<String>,
}

impl LogKey {
    /// A key from its DER SubjectPublicKeyInfo (as trusted_root.json gives a log's key), with
    /// the key ID Rekor v1 and the ECDSA signed-note type use: the first 4 bytes of the
    /// SHA-256 of that DER.
    pub fn from_spki_der(der: &[u8]) -> Result<LogKey, KeyError> {
        let key = PublicKey::from_spki_der(der)?;
        let h = Sha256::digest(der);
        Ok(LogKey {
            key,
            hint: [h[0], h[1], h[2], h[3]],
            name: None,
        })
    }

    /// A key with a key ID computed elsewhere (an Ed25519 note key's ID covers its name).
    pub fn new(key: PublicKey, hint: [u8; 4]) -> LogKey {
        LogKey {
            key,
            hint,
            name: None,
        }
    }

    /// Only signature lines of this key name count. The signed-note spec identifies a key by
    /// name and ID together; without a name (Rekor v1 signs as its host, which a trusted root
    /// does not spell out), the ID alone selects the lines.
    pub fn with_name(mut self, name: &str) -> LogKey {
        self.name = Some(name.to_owned());
        self
    }

    /// The 4-byte key ID its signatures start with.
    pub fn hint(&self) -> [u8; 4] {
        self.hint
    }
}

/// Why a proof or a checkpoint proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// RFC 9162 §2.1.3.2 step 1: the leaf is not in a tree of that size.
    #[error("the inclusion proof's leaf index {index} is not below its tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The audit path is not as long as the leaf's position in that tree needs.
    #[error("the inclusion proof has {got} hashes; leaf {index} of a tree of {size} needs {want}")]
    PathLength {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        want: usize,
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The path does not lead from the entry to the root.
    #[error("the inclusion proof does not lead from the entry to the root hash")]
    RootMismatch,
    /// The checkpoint is not a signed note, or its text is not a checkpoint.
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(&'static str),
    /// No signature line carries the log key's ID.
    #[error("the checkpoint has no signature by the log's key (key ID {hint})")]
    NotSignedByKey {
        /// The key ID, hex.
        hint: String,
    },
    /// A signature with the log key's ID does not verify: the note is refused whole.
    #[error("the checkpoint's signature by the log's key (key ID {hint}) does not verify")]
    BadSignature {
        /// The key ID, hex.
        hint: String,
    },
    /// The checkpoint commits to another tree than the proof's.
    #[error(
        "the checkpoint is for a tree of {checkpoint_size} with another root than the proof's \
         tree of {proof_size}"
    )]
    CheckpointMismatch {
        /// The checkpoint's size.
        checkpoint_size: u64,
        /// The proof's size.
        proof_size: u64,
    },
}

/// RFC 6962 §2.1: a leaf's hash, `SHA-256(0x00 || entry)`.
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

/// RFC 6962 §2.1: an interior node's hash, `SHA-256(0x01 || left || right)`; the prefixes keep
/// a leaf from passing for a node (second preimages).
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// How many hashes the audit path of leaf `index` in a tree of `size` has (`index < size`): it
/// depends on the two numbers only, so a path of another length is refused before hashing.
fn path_length(index: u64, size: u64) -> usize {
    // The loop of [`verify_inclusion`] without the hashing: it takes one hash per turn.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut n = 0;
    while sn > 0 {
        n += 1;
        if fn_ & 1 == 0 && fn_ == sn {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    n
}

/// Verify that `body` is the leaf at `proof.log_index` of the tree `proof.root_hash` heads:
/// RFC 9162 §2.1.3.2's algorithm. The checkpoint is not looked at (see [`verify_checkpoint`]).
pub fn verify_inclusion(body: &[u8], proof: &InclusionProof) -> Result<(), ProofError> {
    let (index, size) = (proof.log_index, proof.tree_size);
    // Step 1.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let want = path_length(index, size);
    if proof.hashes.len() != want {
        return Err(ProofError::PathLength {
            got: proof.hashes.len(),
            want,
            index,
            size,
        });
    }
    // Steps 2 to 5.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf_hash(body);
    for p in &proof.hashes {
        if sn == 0 {
            return Err(ProofError::RootMismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                // fn_ == sn: the node is the right border's, and has no right sibling on the
                // levels it skips.
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && r == proof.root_hash {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// A signed note split into its text and its signature lines (name, decoded signature with
/// its 4-byte key ID still in front).
struct Note<'a> {
    text: &'a str,
    signatures: Vec<(&'a str, Vec<u8>)>,
}

/// Split a signed note (c2sp.org/signed-note): the text is everything up to and including the
/// newline before the last blank line; each line after it is `— <name> <base64>`.
fn split_note(note: &str) -> Result<Note<'_>, ProofError> {
    let bad = ProofError::Checkpoint;
    if note.len() > MAX_CHECKPOINT_BYTES {
        return Err(bad("longer than tollgate reads"));
    }
    // The spec: valid UTF-8 (a &str is), no control characters but newline.
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad("it holds control characters"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(bad("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(bad("the signature lines do not end in a newline"));
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() == MAX_NOTE_SIGNATURES {
            return Err(bad("more signatures than tollgate reads"));
        }
        let rest = line.strip_prefix("\u{2014} ").ok_or(bad(
            "a signature line does not start with an em dash and a space",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(bad("a signature line has no signature"))?;
        if name.is_empty() || name.contains('+') {
            return Err(bad("a signature line has an invalid key name"));
        }
        let sig = decode_base64(b64).map_err(|_| bad("a signature is not base64"))?;
        if sig.len() < 5 {
            return Err(bad("a signature is shorter than its key ID"));
        }
        signatures.push((name, sig));
    }
    Ok(Note { text, signatures })
}

/// Parse a checkpoint's text (c2sp.org/tlog-checkpoint): origin, decimal size, base64 root
/// hash, each on its line, then optional extension lines. `text` may be the whole signed note:
/// the signatures are ignored here (and nothing parsed this way is trusted).
pub fn parse_checkpoint(text: &str) -> Result<Checkpoint, ProofError> {
    let bad = ProofError::Checkpoint;
    let body = match text.find("\n\n") {
        Some(i) => &text[..i + 1],
        None => text,
    };
    let mut lines = body.split('\n');
    let origin = lines.next().unwrap_or_default();
    if origin.is_empty() {
        return Err(bad("no origin line"));
    }
    let size = lines.next().ok_or(bad("no tree size line"))?;
    // ASCII decimal, without a sign or leading zeros: one tree size has one spelling.
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(bad("the tree size is not a decimal number"));
    }
    let size = size
        .parse::<u64>()
        .map_err(|_| bad("the tree size is out of range"))?;
    let root = lines.next().ok_or(bad("no root hash line"))?;
    let root = decode_base64(root).map_err(|_| bad("the root hash is not base64"))?;
    let root_hash =
        <[u8; 32]>::try_from(root.as_slice()).map_err(|_| bad("the root hash is not 32 bytes"))?;
    if !body.ends_with('\n') {
        return Err(bad("the text does not end in a newline"));
    }
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root_hash,
    })
}

/// Verify a signed checkpoint with the log's key and parse it. The signatures carrying the
/// key's ID are verified over the note text; one that fails refuses the note (the spec's
/// SHOULD), and a note with none is refused (its MUST). Signatures of other keys (witnesses)
/// are ignored, as are lines of another key name when the key has one ([`LogKey::with_name`]).
pub fn verify_checkpoint(note: &str, key: &LogKey) -> Result<Checkpoint, ProofError> {
    let parsed = split_note(note)?;
    let hint_hex: String = key.hint.iter().map(|b| format!("{b:02x}")).collect();
    let mut verified = false;
    for (name, sig) in &parsed.signatures {
        if sig[..4] != key.hint || key.name.as_deref().is_some_and(|n| n != *name) {
            continue;
        }
        if !key.key.verify(parsed.text.as_bytes(), &sig[4..]) {
            return Err(ProofError::BadSignature { hint: hint_hex });
        }
        verified = true;
    }
    if !verified {
        return Err(ProofError::NotSignedByKey { hint: hint_hex });
    }
    parse_checkpoint(parsed.text)
}

/// Verify `body`'s inclusion proof and its checkpoint together: the proof leads to its root,
/// the log's key signed the checkpoint, and the checkpoint heads that same tree.
pub fn verify_proof_and_checkpoint(
    body: &[u8],
    proof: &InclusionProof,
    key: &LogKey,
) -> Result<Checkpoint, ProofError> {
    verify_inclusion(body, proof)?;
    let checkpoint = verify_checkpoint(&proof.checkpoint, key)?;
    if checkpoint.size != proof.tree_size || checkpoint.root_hash != proof.root_hash {
        return Err(ProofError::CheckpointMismatch {
            checkpoint_size: checkpoint.size,
            proof_size: proof.tree_size,
        });
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests;
