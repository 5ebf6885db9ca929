//! The registry response headers that tollgate parses itself: `WWW-Authenticate` challenges,
//! `Docker-Content-Digest` (read as a `Digest`) and `Link` (the next page of a listing). A
//! digest that parses prints back to itself; a next link is text from inside the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::reference::Digest;
use tollgate::registry::auth::{Challenge, parse_challenge};
use tollgate::registry::http::parse_link_next;

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

    if let Some(link) = parse_link_next(&text) {
        // The link is what one element of the header holds between its '<' and '>', never
        // text the parser made up or joined across elements: it is followed to fetch the next
        // page, so it must be exactly what the registry sent.
        assert!(
            text.contains(&format!("<{link}>")),
            "{text:?} gave link {link:?}"
        );
        assert!(!link.contains(['>', ',']), "{text:?} gave link {link:?}");
        // The same link alone in a header is found again.
        let alone = format!("<{link}>; rel=\"next\"");
        assert_eq!(parse_link_next(&alone).as_deref(), Some(link.as_str()));
    }

    if let Ok(digest) = text.parse::<Digest>() {
        let shown = digest.to_string();
        assert_eq!(shown, text, "a digest prints as it was written");
        assert_eq!(shown.parse::<Digest>().as_ref(), Ok(&digest));
        let _ = digest.short();
    }
});
