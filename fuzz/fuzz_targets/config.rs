//! tollgate's own YAML files, which a deploy repository's authors write: policies and
//! `.tollgate.yaml`. Never a panic, and every problem found renders.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use tollgate::check::{Options, policy_findings, policy_info};
use tollgate::config::repo::RepoConfig;
use tollgate::policy::parse_policy;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match parse_policy(&text, "p.yaml") {
        Ok(policy) => {
            let opts = Options::enforce("default", Timestamp::UNIX_EPOCH);
            let _ = policy_findings(&policy, &opts);
            let _ = policy_info(&policy);
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }

    match RepoConfig::parse(&text, ".tollgate.yaml") {
        Ok(config) => {
            for path in [
                "values.yaml",
                "apps/web/deployment.yaml",
                "charts/x/values-prod.yaml",
            ] {
                let _ = config.classify(path);
            }
            for note in config.notes() {
                let _ = note.located(config.origin());
            }
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
});
