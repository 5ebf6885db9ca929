//! Security data as it arrives from outside: the bytes read as the Debian security tracker's
//! JSON export (streamed) and as OSV records, keeping every release, then each advisory judged
//! against a fixed installed version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::packages::{DebVersion, Fix, judge, read_osv, read_tracker};

fuzz_target!(|data: &[u8]| {
    let installed: DebVersion = "1.0-1".parse().unwrap();
    let all = |_: &str| true;
    for advisories in [read_tracker(data, &all), read_osv(data, &all)]
        .into_iter()
        .flatten()
    {
        for a in &advisories.rows {
            let _ = judge(&installed, &a.fix);
            if let Fix::Fixed(v) = &a.fix {
                // A stored fixed version reads back as itself.
                assert_eq!(v.to_string().parse::<DebVersion>().as_ref(), Ok(v), "{a:?}");
            }
        }
    }
});
