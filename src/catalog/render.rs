//! The query answers as text for people (times in RFC 3339, full digests so that they can be
//! pasted into the next question). Pure: data in, text out. JSON is the answers' own serde
//! form, written by the caller.

use std::fmt::Write as _;

use super::history::{History, run_place};
use super::query::{Base, ManifestInfo, Repository};
use super::runs::Run;
use super::who_uses::WhoUses;

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
