//! The registry response headers that tollgate parses itself: `WWW-Authenticate` challenges and
//! `Docker-Content-Digest` (read as a `Digest`). A digest that parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::reference::Digest;
use tollgate::registry::auth::{Challenge, parse_challenge};

fuzz_target!(|data: &[u8]| {
    // reqwest hands header values over as bytes; the client reads them with to_str(), so only
    // visible ASCII reaches the parsers. Lossy decoding is a superset of that.
    let text = String::from_utf8_lossy(data);

    if let Some(Challenge::Bearer { realm, .. }) = parse_challenge(&text) {
        // The realm is taken from inside the header, never invented.
        assert!(
            text.contains(realm.as_str()),
            "{text:?} gave realm {realm:?}"
        );
    }

    if let Ok(digest) = text.parse::<Digest>() {
        let shown = digest.to_string();
        assert_eq!(shown, text, "a digest prints as it was written");
        assert_eq!(shown.parse::<Digest>().as_ref(), Ok(&digest));
        let _ = digest.short();
    }
});
