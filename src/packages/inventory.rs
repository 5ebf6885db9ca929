//! An image's installed packages from its layers' scans, applied in order as the container
//! runtime would: each layer's whiteouts delete what lower layers wrote, then its own files are
//! added. Each package version remembers the layer that brought it in, so a finding can name
//! the base rather than the service image.

use std::collections::BTreeMap;

use super::dpkg::{Package, StatusFile};
use super::layer::{LayerScan, OS_RELEASE, STATUS, STATUS_D, covers};

/// One installed package and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The package.
    pub package: Package,
    /// The index (0 = bottom) of the layer that brought this version in.
    pub layer: usize,
}

/// What an image has installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Installed packages, by name then architecture.
    pub packages: Vec<Installed>,
    /// The os-release text the image ends with, if any.
    pub os_release: Option<String>,
    /// Whether any layer left a dpkg database: an image without one is not Debian-packaged
    /// (or is distroless without `status.d`) and has nothing to report, which is not the same as
    /// having nothing vulnerable.
    pub has_dpkg: bool,
    /// Stanzas that could not be read, as `layer N: line L: message`.
    pub errors: Vec<String>,
}

type Key = (String, String);

/// Apply `layers` (bottom first).
pub fn inventory(layers: &[&LayerScan]) -> Inventory {
    let mut status: Option<(usize, &StatusFile)> = None;
    let mut status_d: BTreeMap<&str, (usize, &StatusFile)> = BTreeMap::new();
    let mut os: BTreeMap<&str, &str> = BTreeMap::new();
    let mut current: BTreeMap<Key, Installed> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        let gone = |path: &str| {
            layer.deleted.iter().any(|d| covers(d, path))
                || layer.opaque.iter().any(|o| covers(o, path) && o != path)
        };
        if gone(STATUS) {
            status = None;
        }
        status_d.retain(|name, _| !gone(&format!("{STATUS_D}/{name}")));
        os.retain(|path, _| !gone(path));
        if let Some(s) = &layer.status {
            status = Some((i, s));
        }
        for (name, s) in &layer.status_d {
            status_d.insert(name, (i, s));
        }
        for (path, text) in &layer.os_release {
            os.insert(path, text);
        }
        if !layer.touches_dpkg() {
            continue;
        }
        // The set after this layer; a package keeps its layer while its version is unchanged.
        let mut next: BTreeMap<Key, Installed> = BTreeMap::new();
        let files = status
            .iter()
            .map(|(_, s)| *s)
            .chain(status_d.values().map(|(_, s)| *s));
        for p in files.flat_map(|f| &f.packages) {
            if !p.status.is_installed() {
                continue;
            }
            let key = (p.name.clone(), p.architecture.clone());
            let layer = match current.get(&key) {
                Some(old) if old.package.version == p.version => old.layer,
                _ => i,
            };
            next.insert(
                key,
                Installed {
                    package: p.clone(),
                    layer,
                },
            );
        }
        current = next;
    }
    let mut errors = Vec::new();
    let files = status.iter().chain(status_d.values());
    for (layer, f) in files {
        for e in &f.errors {
            errors.push(format!("layer {layer}: line {}: {}", e.line, e.message));
        }
    }
    Inventory {
        has_dpkg: status.is_some() || !status_d.is_empty(),
        packages: current.into_values().collect(),
        os_release: OS_RELEASE
            .iter()
            .find_map(|p| os.get(p).map(|t| (*t).to_owned())),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::super::layer::{DEFAULT_LIMITS, read_layer, tests::tar_of};
    use super::*;

    fn scan(entries: &[(&str, Option<&[u8]>)]) -> LayerScan {
        read_layer(&tar_of(entries)[..], DEFAULT_LIMITS).unwrap()
    }

    fn stanza(name: &str, version: &str, status: &str) -> String {
        format!("Package: {name}\nStatus: {status}\nArchitecture: amd64\nVersion: {version}\n\n")
    }

    fn names(inv: &Inventory) -> Vec<(String, String, usize)> {
        inv.packages
            .iter()
            .map(|i| {
                (
                    i.package.name.clone(),
                    i.package.version.to_string(),
                    i.layer,
                )
            })
            .collect()
    }

    const OK: &str = "install ok installed";

    #[test]
    fn an_upgrade_in_an_upper_layer_is_that_layers_and_the_rest_stays_the_bases() {
        let base = format!(
            "{}{}",
            stanza("libssl3", "3.0.11-1~deb12u2", OK),
            stanza("bash", "5.2.15-2+b2", OK)
        );
        let service = format!(
            "{}{}",
            stanza("libssl3", "3.0.14-1~deb12u2", OK),
            stanza("bash", "5.2.15-2+b2", OK)
        );
        let layers = [
            scan(&[
                ("var/lib/dpkg/status", Some(base.as_bytes())),
                ("etc/os-release", Some(b"ID=debian\n")),
            ]),
            scan(&[("app/server", Some(b"binary"))]),
            scan(&[("var/lib/dpkg/status", Some(service.as_bytes()))]),
        ];
        let inv = inventory(&layers.iter().collect::<Vec<_>>());
        assert_eq!(
            names(&inv),
            [
                ("bash".into(), "5.2.15-2+b2".into(), 0),
                ("libssl3".into(), "3.0.14-1~deb12u2".into(), 2)
            ]
        );
        assert_eq!(inv.os_release.as_deref(), Some("ID=debian\n"));
        assert!(inv.has_dpkg);
    }

    #[test]
    fn whiteouts_remove_packages_and_opaque_directories_hide_lower_entries() {
        let layers = [
            scan(&[
                (
                    "var/lib/dpkg/status.d/base-files",
                    Some(stanza("base-files", "12.4+deb12u5", OK).as_bytes()),
                ),
                (
                    "var/lib/dpkg/status.d/tzdata",
                    Some(stanza("tzdata", "2024a-0+deb12u1", OK).as_bytes()),
                ),
            ]),
            scan(&[("var/lib/dpkg/status.d/.wh.tzdata", Some(b""))]),
        ];
        let inv = inventory(&layers.iter().collect::<Vec<_>>());
        assert_eq!(
            names(&inv),
            [("base-files".into(), "12.4+deb12u5".into(), 0)]
        );

        let opaque = [
            layers[0].clone(),
            scan(&[
                ("var/lib/dpkg/status.d/.wh..wh..opq", Some(b"")),
                (
                    "var/lib/dpkg/status.d/libc6",
                    Some(stanza("libc6", "2.36-9+deb12u7", OK).as_bytes()),
                ),
            ]),
        ];
        let inv = inventory(&opaque.iter().collect::<Vec<_>>());
        assert_eq!(
            names(&inv),
            [("libc6".into(), "2.36-9+deb12u7".into(), 1)],
            "the layer's own entry survives its opaque marker"
        );
    }

    #[test]
    fn a_deleted_database_leaves_nothing_and_removed_packages_do_not_count() {
        let db = format!(
            "{}{}",
            stanza("curl", "7.88.1-10+deb12u5", OK),
            stanza("old", "1.0", "deinstall ok config-files")
        );
        let first = scan(&[("var/lib/dpkg/status", Some(db.as_bytes()))]);
        let inv = inventory(&[&first]);
        assert_eq!(
            names(&inv),
            [("curl".into(), "7.88.1-10+deb12u5".into(), 0)]
        );
        let wiped = scan(&[("var/lib/.wh.dpkg", Some(b""))]);
        let inv = inventory(&[&first, &wiped]);
        assert!(inv.packages.is_empty());
        assert!(!inv.has_dpkg);
    }
}
