//! Manifest and image config bodies as a registry sends them, under every `Content-Type` the
//! walk asks for (and none): never a panic, and every descriptor's accessors are safe to call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::registry::oci::{self, Descriptor, Manifest};

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some(oci::OCI_INDEX),
    Some(oci::OCI_MANIFEST),
    Some(oci::DOCKER_LIST),
    Some(oci::DOCKER_MANIFEST),
];

fn touch(d: &Descriptor) {
    let _ = d.parsed_digest();
    let _ = d.is_attestation();
    let _ = oci::is_foreign_layer(&d.media_type);
    if let Some(p) = &d.platform {
        let _ = p.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    for content_type in CONTENT_TYPES {
        match oci::parse(data, content_type) {
            Ok(Manifest::Index { manifests }) => manifests.iter().for_each(touch),
            Ok(Manifest::Image { config, layers }) => {
                touch(&config);
                layers.iter().for_each(touch);
            }
            Err(_) => {}
        }
    }
    let _ = oci::parse_config(data);
});
