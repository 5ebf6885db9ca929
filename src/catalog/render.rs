//! The query answers as text for people (times in RFC 3339, full digests so that they can be
//! pasted into the next question). Pure: data in, text out. JSON is the answers' own serde
//! form, written by the caller.

use std::fmt::Write as _;

use super::history::{History, run_place};
use super::packages::{ImageInventory, InstalledRow, PackagesAnswer, WhereAnswer};
use super::query::{Base, ManifestInfo, Repository};
use super::runs::Run;
use super::who_uses::WhoUses;
use crate::report::{plural, visible};

fn bases(b: &[Base]) -> String {
    b.iter()
        .map(|b| format!("{} ({})", b.image, b.by))
        .collect::<Vec<_>>()
        .join(", ")
}

fn running_line(out: &mut String, indent: &str, r: &Run) {
    let _ = write!(out, "{indent}{}  ", run_place(r));
    pods_since(out, r);
}

fn pods_since(out: &mut String, r: &Run) {
    let _ = write!(
        out,
        "{} pod{}  since {}",
        r.pods,
        if r.pods == 1 { "" } else { "s" },
        r.first_seen
    );
    match r.closed_at {
        None => {
            let _ = writeln!(out, ", last seen {}", r.last_seen);
        }
        Some(closed) => {
            let _ = writeln!(out, ", last seen {}, gone at {closed}", r.last_seen);
        }
    }
}

/// `catalog images`.
pub fn images(repos: &[Repository]) -> String {
    let mut out = String::new();
    if repos.is_empty() {
        out.push_str("no images in the catalog\n");
    }
    for repo in repos {
        let _ = writeln!(out, "{}", repo.name);
        for v in &repo.versions {
            let tags = if v.tags.is_empty() {
                "(untagged)".to_owned()
            } else {
                v.tags.join(", ")
            };
            let _ = write!(out, "  {}  {tags}", v.digest);
            manifest_summary(&mut out, v.manifest.as_ref());
            if !v.base.is_empty() {
                let _ = writeln!(out, "    base {}", bases(&v.base));
            }
            for r in &v.running {
                running_line(&mut out, "    runs ", r);
            }
        }
    }
    out
}

/// The end of a version's line: what sync knows of its manifest (kind, platform, created).
fn manifest_summary(out: &mut String, m: Option<&ManifestInfo>) {
    if let Some(m) = m {
        let _ = write!(out, "  {}", m.kind);
        if let Some(p) = &m.platform {
            let _ = write!(out, " {p}");
        }
        if let Some(c) = m.created_at {
            let _ = write!(out, "  created {c}");
        }
    }
    out.push('\n');
}

/// `catalog history`.
pub fn history(h: &History) -> String {
    let mut out = format!("history of {}\n", h.subject);
    for d in &h.digests {
        let _ = write!(out, "  {}", d.digest);
        manifest_summary(&mut out, d.manifest.as_ref());
        if !d.base.is_empty() {
            let _ = writeln!(out, "    base {}", bases(&d.base));
        }
        if let Some(m) = &d.manifest {
            for (k, v) in &m.labels {
                let _ = writeln!(out, "    label {k:?}={v:?}");
            }
        }
    }
    if h.timeline.is_empty() {
        out.push_str("nothing recorded\n");
        return out;
    }
    for e in &h.timeline {
        let _ = writeln!(out, "{}  {:<9}  {}  {}", e.at, e.what, e.digest, e.subject);
    }
    for b in &h.builds {
        let _ = write!(
            out,
            "build {} from {} at {} by {}",
            b.digest, b.source_repository, b.commit, b.builder
        );
        if !b.parents.is_empty() {
            let parents: Vec<String> = b.parents.iter().map(ToString::to_string).collect();
            let _ = write!(out, " on {}", parents.join(", "));
        }
        out.push('\n');
    }
    out
}

/// `catalog running`.
pub fn running(at: jiff::Timestamp, runs: &[Run]) -> String {
    let mut out = format!("running at {at}\n");
    if runs.is_empty() {
        out.push_str("nothing recorded as running then\n");
    }
    for r in runs {
        let _ = writeln!(out, "  {}  {}", run_place(r), r.image);
        out.push_str("    ");
        pods_since(&mut out, r);
    }
    out
}

/// `catalog who-uses`.
pub fn who_uses(w: &WhoUses) -> String {
    let mut out = format!("built on {}", w.base);
    if w.base_digests.is_empty() {
        out.push_str(" (no digest of it in the catalog)");
    }
    out.push('\n');
    for d in &w.base_digests {
        let _ = writeln!(out, "  base {d}");
    }
    if w.users.is_empty() {
        out.push_str("no image in the catalog is built on it\n");
    }
    for u in &w.users {
        let by: Vec<String> = u.by.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "{}  on {} ({})", u.digest, u.on, by.join(", "));
        if !u.repositories.is_empty() {
            let _ = writeln!(out, "  in {}", u.repositories.join(", "));
        }
        if !u.tags.is_empty() {
            let _ = writeln!(out, "  tags {}", u.tags.join(", "));
        }
        if u.running.is_empty() {
            out.push_str("  not running\n");
        }
        for r in &u.running {
            running_line(&mut out, "  runs ", r);
        }
    }
    out
}

/// One package as a line: name, version, architecture, source when it differs, and the layer
/// that brought it in.
fn package_line(out: &mut String, p: &InstalledRow) {
    let _ = write!(
        out,
        "  {}  {}  {}",
        visible(&p.name),
        p.version,
        visible(&p.architecture)
    );
    if p.source != p.name || p.source_version != p.version {
        let _ = write!(out, "  source {} {}", visible(&p.source), p.source_version);
    }
    let _ = writeln!(
        out,
        "  layer {} {}",
        p.layer_position,
        p.layer_digest.short()
    );
}

fn os_line(i: &ImageInventory) -> String {
    let os = i.os.as_ref().map(|o| {
        o.pretty_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", o.id, o.version_id.clone().unwrap_or_default()))
    });
    match os {
        Some(name) => visible(&name),
        None => "no os-release".to_owned(),
    }
}

/// `catalog packages`.
pub fn packages(a: &PackagesAnswer) -> String {
    let mut out = String::new();
    if a.images.is_empty() && a.not_inventoried.is_empty() {
        let _ = writeln!(out, "{}: no image of that name in the catalog", a.subject);
    }
    for i in &a.images {
        let _ = write!(out, "{}", i.digest);
        if let Some(p) = &i.platform {
            let _ = write!(out, "  {p}");
        }
        let _ = writeln!(out, "  {}", os_line(i));
        if !i.has_dpkg {
            out.push_str("  no dpkg database: not Debian-packaged (nothing to report is not nothing vulnerable)\n");
        } else {
            let _ = writeln!(
                out,
                "  {} installed",
                plural(i.packages.len(), "package", "packages")
            );
        }
        if !i.complete {
            out.push_str("  incomplete: a layer could not be read, packages may be missing\n");
        }
        for p in &i.problems {
            let _ = writeln!(out, "  problem: {}", visible(p));
        }
        for p in &i.packages {
            package_line(&mut out, p);
        }
    }
    for d in &a.not_inventoried {
        let _ = writeln!(
            out,
            "{d}  not inventoried yet (run `tollgate catalog inventory`)"
        );
    }
    out
}

/// `catalog where`.
pub fn where_installed(a: &WhereAnswer) -> String {
    let mut out = format!("images with {}", visible(&a.package));
    if let Some(c) = &a.constraint {
        let _ = write!(out, " {c}");
    }
    let _ = writeln!(out, ": {}", a.images.len());
    for h in &a.images {
        let _ = write!(out, "{}", h.digest);
        if let Some(p) = &h.platform {
            let _ = write!(out, "  {p}");
        }
        out.push('\n');
        if !h.repositories.is_empty() {
            let _ = writeln!(out, "  in {}", h.repositories.join(", "));
        }
        if !h.tags.is_empty() {
            let _ = writeln!(out, "  tags {}", h.tags.join(", "));
        }
        for p in &h.packages {
            package_line(&mut out, p);
        }
        if h.running.is_empty() {
            out.push_str("  not running\n");
        }
        for r in &h.running {
            running_line(&mut out, "  runs ", r);
        }
    }
    if a.not_inventoried > 0 {
        let _ = writeln!(
            out,
            "{} without an inventory not covered (run `tollgate catalog inventory`)",
            plural(a.not_inventoried, "image", "images")
        );
    }
    out
}
