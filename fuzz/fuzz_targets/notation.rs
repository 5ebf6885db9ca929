//! Notation JWS and COSE envelopes as a registry serves them (a referrer's layer blob, attacker-written):
//! never a panic, whether read whole or for its claimed signing time, and an envelope that
//! verifies at all names the digest it was checked against.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::signature::notation::{
    FetchedNotation, check_cose_envelope, check_envelope, check_jws_envelope, verify,
};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let digest = DIGEST.parse().unwrap();
    let _ = check_envelope(data, &digest, 1_800_000_000);
    // Each parser on every input, whichever format its first byte says.
    let _ = check_jws_envelope(data, &digest, 1_800_000_000);
    let _ = check_cose_envelope(data, &digest, 1_800_000_000);
    let fetched = [FetchedNotation {
        manifest: digest.clone(),
        envelope: Ok(data.to_vec()),
    }];
    // No signers: the envelope is read, nothing can be trusted.
    let v = verify(&digest, &fetched, &[], None);
    assert!(v.signed.is_empty());
});
