use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use rcgen::{KeyPair, PublicKeyData as _, SigningKey as _};
use rstest::rstest;

use super::*;

/// RFC 6962 §2.1's MTH, the Merkle tree hash of `leaves`, written recursively as the RFC
/// defines it (the verifier under test is iterative).
fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// The largest power of two below `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1.1's PATH(m, D[n]), leaf to root.
fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

fn proof(m: usize, leaves: &[Vec<u8>]) -> InclusionProof {
    InclusionProof {
        log_index: m as u64,
        root_hash: mth(leaves),
        tree_size: leaves.len() as u64,
        hashes: path(m, leaves),
        checkpoint: String::new(),
    }
}

#[test]
fn every_leaf_of_every_tree_up_to_nine_verifies() {
    for n in 1..=9 {
        let ls = leaves(n);
        for m in 0..n {
            let p = proof(m, &ls);
            assert_eq!(verify_inclusion(&ls[m], &p), Ok(()), "leaf {m} of {n}");
            assert_eq!(
                path_length(m as u64, n as u64),
                p.hashes.len(),
                "leaf {m} of {n}"
            );
        }
    }
}

#[test]
fn any_flipped_byte_in_body_hashes_or_root_fails() {
    for n in 1..=9 {
        let ls = leaves(n);
        for m in 0..n {
            let good = proof(m, &ls);
            let mut body = ls[m].clone();
            for i in 0..body.len() {
                body[i] ^= 1;
                assert!(
                    verify_inclusion(&body, &good).is_err(),
                    "body byte {i}, {m}/{n}"
                );
                body[i] ^= 1;
            }
            for h in 0..good.hashes.len() {
                for i in 0..32 {
                    let mut p = good.clone();
                    p.hashes[h][i] ^= 0x80;
                    assert_eq!(verify_inclusion(&ls[m], &p), Err(ProofError::RootMismatch));
                }
            }
            for i in 0..32 {
                let mut p = good.clone();
                p.root_hash[i] ^= 1;
                assert_eq!(verify_inclusion(&ls[m], &p), Err(ProofError::RootMismatch));
            }
        }
    }
}

#[test]
fn another_leafs_body_or_index_fails() {
    let ls = leaves(7);
    let p = proof(3, &ls);
    assert!(verify_inclusion(&ls[4], &p).is_err());
    for other in [0, 1, 2, 4, 5, 6] {
        let mut q = p.clone();
        q.log_index = other;
        assert!(verify_inclusion(&ls[3], &q).is_err(), "{other}");
    }
}

#[test]
fn a_node_does_not_pass_for_a_leaf() {
    // The second-preimage the 0x00/0x01 prefixes prevent: the concatenated children of a node,
    // given as an entry of the tree one level up.
    let ls = leaves(4);
    let left = node_hash(&leaf_hash(&ls[0]), &leaf_hash(&ls[1]));
    let right = node_hash(&leaf_hash(&ls[2]), &leaf_hash(&ls[3]));
    let fake = [leaf_hash(&ls[0]), leaf_hash(&ls[1])].concat();
    let p = InclusionProof {
        log_index: 0,
        root_hash: node_hash(&left, &right),
        tree_size: 2,
        hashes: vec![right],
        checkpoint: String::new(),
    };
    assert_eq!(verify_inclusion(&fake, &p), Err(ProofError::RootMismatch));
}

#[rstest]
#[case::index_at_size(5, 5, 3, "leaf index 5 is not below its tree size 5")]
#[case::empty_tree(0, 0, 0, "leaf index 0 is not below its tree size 0")]
#[case::path_too_short(0, 5, 2, "has 2 hashes; leaf 0 of a tree of 5 needs 3")]
#[case::path_too_long(4, 5, 2, "has 2 hashes; leaf 4 of a tree of 5 needs 1")]
#[case::hashes_for_a_single_leaf(0, 1, 1, "needs 0")]
#[case::huge_tree_short_path(0, u64::MAX, 3, "needs 64")]
fn refuses_impossible_proofs(
    #[case] index: u64,
    #[case] size: u64,
    #[case] hashes: usize,
    #[case] why: &str,
) {
    let p = InclusionProof {
        log_index: index,
        root_hash: [0; 32],
        tree_size: size,
        hashes: vec![[0; 32]; hashes],
        checkpoint: String::new(),
    };
    let e = verify_inclusion(b"x", &p).unwrap_err();
    assert!(e.to_string().contains(why), "{e}");
}

// Checkpoints.

const ORIGIN: &str = "rekor.example.org - 1193050959916656506";

fn checkpoint_text(size: u64, root: &[u8; 32]) -> String {
    format!("{ORIGIN}\n{size}\n{}\n", STANDARD.encode(root))
}

fn log_key(key: &KeyPair) -> LogKey {
    LogKey::from_spki_der(&key.subject_public_key_info()).unwrap()
}

fn named_log_key(key: &KeyPair) -> LogKey {
    log_key(key).with_name("rekor.example.org")
}

/// `text` signed as Rekor signs it: `— <name> base64(key ID || ASN.1 ECDSA signature)`.
fn sign_note(text: &str, key: &KeyPair) -> String {
    let hint = log_key(key).hint();
    let sig = key.sign(text.as_bytes()).unwrap();
    format!(
        "{text}\n\u{2014} rekor.example.org {}\n",
        STANDARD.encode([&hint[..], &sig].concat())
    )
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

#[test]
fn the_key_id_is_the_start_of_the_der_keys_sha256() {
    let key = p256();
    let h = Sha256::digest(key.subject_public_key_info());
    assert_eq!(log_key(&key).hint(), [h[0], h[1], h[2], h[3]]);
}

#[test]
fn a_signed_checkpoint_verifies_and_parses() {
    let key = p256();
    let text = checkpoint_text(9, &[7; 32]);
    let note = sign_note(&text, &key);
    let c = verify_checkpoint(&note, &log_key(&key)).unwrap();
    assert_eq!(
        c,
        Checkpoint {
            origin: ORIGIN.into(),
            size: 9,
            root_hash: [7; 32]
        }
    );
    assert_eq!(parse_checkpoint(&note).unwrap(), c);
}

#[test]
fn extension_lines_and_witness_signatures_are_kept_out_of_the_way() {
    let key = p256();
    let witness = p256();
    let text = format!(
        "{}Timestamp: 1689748607742585419\n",
        checkpoint_text(3, &[1; 32])
    );
    let note = sign_note(&text, &key);
    // A witness's cosignature first: another key ID, ignored.
    let other = sign_note(&text, &witness);
    let witness_line = other.rsplit_once("\n\n").unwrap().1;
    let note = format!("{note}{witness_line}");
    assert_eq!(verify_checkpoint(&note, &log_key(&key)).unwrap().size, 3);
}

#[test]
fn other_keys_tampered_text_and_bad_signatures_are_refused() {
    let key = p256();
    let text = checkpoint_text(9, &[7; 32]);
    let note = sign_note(&text, &key);
    assert!(matches!(
        verify_checkpoint(&note, &log_key(&p256())),
        Err(ProofError::NotSignedByKey { .. })
    ));
    let tampered = note.replacen("\n9\n", "\n8\n", 1);
    assert!(matches!(
        verify_checkpoint(&tampered, &log_key(&key)),
        Err(ProofError::BadSignature { .. })
    ));
    // The right key ID in front of another key's signature.
    let impostor = p256();
    let sig = impostor.sign(text.as_bytes()).unwrap();
    let forged = format!(
        "{text}\n\u{2014} rekor.example.org {}\n",
        STANDARD.encode([&log_key(&key).hint()[..], &sig].concat())
    );
    assert!(matches!(
        verify_checkpoint(&forged, &log_key(&key)),
        Err(ProofError::BadSignature { .. })
    ));
    // A failing signature with the key's ID refuses the note even beside a good one.
    let both = format!("{note}{}", forged.rsplit_once("\n\n").unwrap().1);
    assert!(matches!(
        verify_checkpoint(&both, &log_key(&key)),
        Err(ProofError::BadSignature { .. })
    ));
}

#[rstest]
#[case::no_blank_line("o\n1\nAAAA\n\u{2014} n AAAAAAAA\n", "no blank line")]
#[case::no_signatures("o\n1\nAAAA\n\n", "do not end in a newline")]
#[case::unterminated_signature("o\n1\nAAAA\n\n\u{2014} n AAAAAAAA", "do not end in a newline")]
#[case::hyphen_not_em_dash("o\n1\nAAAA\n\n- n AAAAAAAA\n", "em dash")]
#[case::no_signature_after_the_name("o\n1\nAAAA\n\n\u{2014} n\n", "has no signature")]
#[case::plus_in_the_name("o\n1\nAAAA\n\n\u{2014} a+b AAAAAAAA\n", "invalid key name")]
#[case::signature_not_base64("o\n1\nAAAA\n\n\u{2014} n ***\n", "not base64")]
#[case::signature_only_a_key_id("o\n1\nAAAA\n\n\u{2014} n AAAAAA==\n", "shorter than its key ID")]
#[case::control_character("o\n1\nAAAA\r\n\n\u{2014} n AAAAAAAA\n", "control characters")]
fn malformed_notes(#[case] note: &str, #[case] why: &str) {
    let e = verify_checkpoint(note, &log_key(&p256())).unwrap_err();
    assert!(e.to_string().contains(why), "{e}");
}

#[test]
fn a_named_key_counts_only_lines_of_its_name() {
    let key = p256();
    let note = sign_note(&checkpoint_text(2, &[3; 32]), &key);
    assert!(verify_checkpoint(&note, &named_log_key(&key)).is_ok());
    let renamed = note.replace("\u{2014} rekor.example.org ", "\u{2014} witness.example ");
    assert!(verify_checkpoint(&renamed, &log_key(&key)).is_ok());
    assert!(matches!(
        verify_checkpoint(&renamed, &named_log_key(&key)),
        Err(ProofError::NotSignedByKey { .. })
    ));
}

#[test]
fn too_many_signature_lines_are_refused() {
    let line = "\u{2014} n AAAAAAAA\n";
    let note = format!("o\n1\nAAAA\n\n{}", line.repeat(MAX_NOTE_SIGNATURES + 1));
    let e = verify_checkpoint(&note, &log_key(&p256())).unwrap_err();
    assert!(e.to_string().contains("more signatures"), "{e}");
}

#[rstest]
#[case::empty("", "no origin")]
#[case::no_size("o\n", "not a decimal")]
#[case::leading_zero(
    "o\n01\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    "not a decimal"
)]
#[case::signed_size(
    "o\n+1\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    "not a decimal"
)]
#[case::size_too_big(
    "o\n18446744073709551616\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
    "out of range"
)]
#[case::no_root("o\n1\n", "root hash is not 32 bytes")]
#[case::short_root("o\n1\nAQID\n", "root hash is not 32 bytes")]
#[case::root_not_base64("o\n1\n!!\n", "root hash is not base64")]
#[case::no_final_newline(
    "o\n1\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    "does not end in a newline"
)]
fn malformed_checkpoint_texts(#[case] text: &str, #[case] why: &str) {
    let e = parse_checkpoint(text).unwrap_err();
    assert!(e.to_string().contains(why), "{e}");
}

#[test]
fn size_zero_parses() {
    let c = parse_checkpoint("o\n0\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n").unwrap();
    assert_eq!(c.size, 0);
}

/// A proof of leaf `m` of `n` whose checkpoint `key` signed.
fn signed_proof(m: usize, n: usize, key: &KeyPair) -> (Vec<u8>, InclusionProof) {
    let ls = leaves(n);
    let mut p = proof(m, &ls);
    p.checkpoint = sign_note(&checkpoint_text(n as u64, &p.root_hash), key);
    (ls[m].clone(), p)
}

#[test]
fn a_proof_and_its_checkpoint_verify_together() {
    let key = p256();
    let (body, p) = signed_proof(5, 9, &key);
    assert_eq!(
        verify_proof_and_checkpoint(&body, &p, &log_key(&key))
            .unwrap()
            .size,
        9
    );
}

#[test]
fn a_checkpoint_of_another_tree_is_refused() {
    let key = p256();
    let (body, mut p) = signed_proof(2, 6, &key);
    p.checkpoint = sign_note(&checkpoint_text(6, &[9; 32]), &key);
    assert!(matches!(
        verify_proof_and_checkpoint(&body, &p, &log_key(&key)),
        Err(ProofError::CheckpointMismatch { .. })
    ));
    p.checkpoint = sign_note(&checkpoint_text(7, &p.root_hash), &key);
    assert!(matches!(
        verify_proof_and_checkpoint(&body, &p, &log_key(&key)),
        Err(ProofError::CheckpointMismatch { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No single flipped byte anywhere in a proof (body, index, size, path, root, checkpoint)
    /// verifies.
    #[test]
    fn no_single_byte_flip_verifies(n in 1usize..=9, m in 0usize..9, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let m = m % n;
        let key = p256();
        // Named: the name is the one part of a signature line the signature does not cover.
        let lk = named_log_key(&key);
        let (body, p) = signed_proof(m, n, &key);
        prop_assert!(verify_proof_and_checkpoint(&body, &p, &lk).is_ok());
        let mut bytes: Vec<u8> = body.clone();
        bytes.extend(p.log_index.to_be_bytes());
        bytes.extend(p.tree_size.to_be_bytes());
        for h in &p.hashes { bytes.extend(h); }
        bytes.extend(p.root_hash);
        bytes.extend(p.checkpoint.as_bytes());
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let mut off = 0;
        let mut take = |n: usize| { let s = bytes[off..off + n].to_vec(); off += n; s };
        let body2 = take(body.len());
        let index = u64::from_be_bytes(take(8).try_into().unwrap());
        let size = u64::from_be_bytes(take(8).try_into().unwrap());
        let hashes = (0..p.hashes.len()).map(|_| take(32).try_into().unwrap()).collect();
        let root_hash = take(32).try_into().unwrap();
        let rest = take(p.checkpoint.len());
        // A flip that breaks UTF-8 is refused before any verification.
        let Ok(checkpoint) = String::from_utf8(rest) else { return Ok(()) };
        let q = InclusionProof { log_index: index, root_hash, tree_size: size, hashes, checkpoint };
        prop_assert!(verify_proof_and_checkpoint(&body2, &q, &lk).is_err());
    }

    /// A checkpoint is attacker input: any text gives an answer, never a panic.
    #[test]
    fn notes_never_panic(note in "(\\PC|\n|\u{2014} ){0,200}") {
        let key = p256();
        let _ = verify_checkpoint(&note, &log_key(&key));
        let _ = parse_checkpoint(&note);
    }

    /// Any index and size, with a path of any length up to the bound, gives an answer.
    #[test]
    fn proofs_never_panic(index in any::<u64>(), size in any::<u64>(), len in 0usize..=64) {
        let p = InclusionProof {
            log_index: index, root_hash: [0; 32], tree_size: size,
            hashes: vec![[0; 32]; len], checkpoint: String::new(),
        };
        let _ = verify_inclusion(b"x", &p);
    }
}
