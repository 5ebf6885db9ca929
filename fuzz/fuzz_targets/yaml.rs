//! The YAML/JSON loader on any text, then the whole manifest check and the Helm values check on
//! it: never a panic, the two position-recording modes load the same values, and a stream fed
//! line by line (as files and stdin are read) splits into the same documents as the whole text,
//! and whatever the fast path reads it reads as yaml-rust2 does: the same value, start and
//! positions, in both modes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use tollgate::check::values::check_values_text;
use tollgate::check::{Options, check_text};
use tollgate::config::repo::{FileKind, RepoConfig};
use tollgate::policy::{Policy, default_policy};
use tollgate::yaml::{Record, Splitter, load_all, load_fast, load_full};

// Parsed once: parsing the embedded policy per input would be most of each run.
static POLICY: LazyLock<Policy> = LazyLock::new(default_policy);
static REPO: LazyLock<RepoConfig> = LazyLock::new(RepoConfig::default);

fuzz_target!(|data: &[u8]| {
    // Files that are not UTF-8 are refused before the loader (check::files::utf8_text); lossy
    // decoding lets byte-level mutations still reach it.
    let text = String::from_utf8_lossy(data);

    let images: Vec<_> = load_all(&text, Record::ImageFields).collect();
    // The other mode, through the streaming splitter.
    let mut splitter = Splitter::new();
    let mut all = Vec::new();
    for line in text.split_inclusive('\n') {
        all.extend(splitter.push(line, Record::All));
    }
    all.extend(splitter.finish(Record::All));
    // Record only chooses which positions are kept, never what is loaded or refused.
    assert_eq!(images.len(), all.len());
    for (a, b) in images.iter().zip(&all) {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.value, b.value);
                assert_eq!(a.start, b.start);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("the recording modes disagree: {a:?} / {b:?}"),
        }
    }

    // The fast path against the reference, on the whole text as one document.
    for record in [Record::All, Record::ImageFields] {
        if let Some(fast) = load_fast(&text, record) {
            let full = load_full(&text, record)
                .unwrap_or_else(|e| panic!("the fast path read what yaml-rust2 refuses: {e}"));
            assert_eq!(fast.value, full.value, "fast and full values differ");
            assert_eq!(fast.start, full.start, "fast and full starts differ");
            let positions = |d: &tollgate::yaml::Document| {
                d.positions.iter().map(|(k, p)| (k.clone(), *p)).collect::<BTreeMap<_, _>>()
            };
            assert_eq!(positions(&fast), positions(&full), "fast and full positions differ");
        }
    }

    let opts = Options::enforce("default", Timestamp::UNIX_EPOCH);
    let _ = check_text(&POLICY, "f", &text, &opts);
    let FileKind::Values(spec) = REPO.classify("values.yaml") else {
        unreachable!("the default config reads values.yaml as Helm values")
    };
    let _ = check_values_text(&POLICY, "values.yaml", &text, spec, &opts);
});
