//! A pull secret's data as a workload's owner writes it (`.dockerconfigjson`, `.dockercfg`):
//! read for one approved registry, in both formats. The entries are for that registry only,
//! and a secret that cannot be used says why without quoting its passwords.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::reference::RegistryHost;
use tollgate::registry::pull::{RawSecret, secret_entries};

static APPROVED: LazyLock<Vec<RegistryHost>> = LazyLock::new(|| {
    vec![
        "registry.example.org".parse().unwrap(),
        "docker.io".parse().unwrap(),
    ]
});

/// Every `password` and `auth` string in `v` (the secret parts of an entry), and every key.
fn secrets_and_keys(v: &Value, secrets: &mut Vec<String>, keys: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                keys.push(k.clone());
                if let (true, Value::String(s)) = (k == "password" || k == "auth", v) {
                    secrets.push(s.clone());
                }
                secrets_and_keys(v, secrets, keys);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| secrets_and_keys(v, secrets, keys)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    for (type_, key) in [
        ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
        ("kubernetes.io/dockercfg", ".dockercfg"),
    ] {
        let secret = RawSecret {
            type_: type_.to_owned(),
            resource_version: "1".to_owned(),
            data: HashMap::from([(key.to_owned(), data.to_vec())]),
        };
        match secret_entries("ns", "pull", &secret, &APPROVED) {
            Ok(entries) => {
                assert!(!entries.is_empty());
                for (host, _) in &entries {
                    assert!(APPROVED.contains(host), "{host} is not approved");
                }
            }
            Err(why) => {
                let Ok(v) = serde_json::from_slice::<Value>(data) else {
                    continue;
                };
                let (mut secrets, mut keys) = (Vec::new(), Vec::new());
                secrets_and_keys(&v, &mut secrets, &mut keys);
                for s in secrets {
                    // The messages' own words are ASCII letters, digits, spaces and a few
                    // marks; a password with another character can only appear in one by
                    // being quoted. Keys (registry names) are printed on purpose.
                    let plain = |c: char| c.is_ascii_alphanumeric() || " .:/(),`@_-'".contains(c);
                    if s.chars().all(plain)
                        || keys
                            .iter()
                            .any(|k| k.to_ascii_lowercase().contains(&s.to_ascii_lowercase()))
                    {
                        continue;
                    }
                    // Keys are printed on purpose, so a secret that only appears where the
                    // message joins a key to its own words (`of =/ is` holds ` =`) is not
                    // quoted: look for it with the keys taken out.
                    let scrubbed = keys
                        .iter()
                        .filter(|k| !k.is_empty())
                        .fold(why.clone(), |w, k| w.replace(k.as_str(), "\u{0}"));
                    assert!(!scrubbed.contains(&s), "{why:?} quotes {s:?}");
                }
            }
        }
    }
});
