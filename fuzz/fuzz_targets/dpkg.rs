//! What an image layer says about its Debian packages: the blob read as gzip, zstd or plain tar
//! (small limits, so an expansion bomb is cut short), its status file and `status.d` entries
//! parsed, and the inventory of the layer applied twice; and the bytes read as a status file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::packages::{Limits, inventory, parse_status, read_layer};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = parse_status(&text);
    // An error points at a line of the file (lines count from 1).
    for e in &file.errors {
        assert!(e.line >= 1, "{e:?}");
    }
    let limits = Limits {
        expanded: 4 << 20,
        status_file: 1 << 20,
        small_file: 64 << 10,
        status_d_entries: 1_000,
    };
    if let Ok(scan) = read_layer(data, limits) {
        let inv = inventory(&[&scan, &scan]);
        for p in &inv.packages {
            assert!(p.package.status.is_installed(), "{p:?}");
            assert!(p.layer < 2);
        }
    }
});
