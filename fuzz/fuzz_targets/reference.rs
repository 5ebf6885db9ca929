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

    // The familiar form is what `explain` shows and what a pinning hint suggests: it reads
    // back as the same image, including where distribution's FamiliarString would not.
    let familiar = parsed.familiar();
    let back: ImageRef = familiar
        .parse()
        .unwrap_or_else(|e| panic!("{familiar:?}, the familiar form of {text:?}: {e}"));
    assert_eq!(back, parsed, "{text:?} familiar as {familiar:?}");
});
