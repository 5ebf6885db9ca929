//! Image references as manifests, pods and command lines write them: parsing never panics, a
//! parsed reference prints to a form that parses back to the same reference, and `WrittenImage`
//! agrees with `ImageRef`'s own parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::reference::{ImageRef, WrittenImage};

fuzz_target!(|data: &[u8]| {
    // References arrive inside YAML or JSON strings, so always as UTF-8; lossy decoding keeps
    // the fuzzer's byte mutations useful instead of discarding every non-UTF-8 input.
    let text = String::from_utf8_lossy(data);
    let written = WrittenImage::new(text.as_ref());
    assert_eq!(written.as_str(), text);
    let parsed = match text.parse::<ImageRef>() {
        Ok(r) => r,
        Err(e) => {
            assert!(written.reference().is_none(), "{text:?}: {e}");
            // Rendering the error is what a finding shows; it must not panic either.
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(written.reference(), Some(&parsed));
    assert!(written.same_image(&WrittenImage::from(parsed.clone())));

    let shown = parsed.to_string();
    let again: ImageRef = shown
        .parse()
        .unwrap_or_else(|e| panic!("{shown:?}, printed from {text:?}, does not parse: {e}"));
    assert_eq!(again, parsed, "{text:?} printed as {shown:?}");
    assert_eq!(again.to_string(), shown);

    // The familiar form is what `explain` shows. Two kinds of Docker Hub name have no familiar
    // form that reads back, in distribution's FamiliarString as here:
    // - a repository whose first component looks like a registry (`docker.io/foo.com/app`,
    //   `docker.io/localhost/app`) prints as `foo.com/app`, which names another registry;
    // - `library/` and 64 hex digits prints as the bare hex, which is refused as an image id
    //   (fuzz/regressions/reference holds one).
    // Only the other forms must read back as the same image.
    let familiar = parsed.familiar();
    let repository = parsed.repository().as_str();
    let first = repository.split('/').next().unwrap_or("");
    let hex_id =
        |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let ambiguous = parsed.registry().is_docker_hub()
        && ((repository.contains('/') && (first.contains(['.', ':']) || first == "localhost"))
            || repository.strip_prefix("library/").is_some_and(hex_id));
    if !ambiguous {
        let back: ImageRef = familiar
            .parse()
            .unwrap_or_else(|e| panic!("{familiar:?}, the familiar form of {text:?}: {e}"));
        assert_eq!(back, parsed, "{text:?} familiar as {familiar:?}");
    }
});
