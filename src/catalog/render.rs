//! The query answers as text for people (times in RFC 3339, full digests so that they can be
//! pasted into the next question). Pure: data in, text out. JSON is the answers' own serde
//! form, written by the caller.

use std::fmt::Write as _;

use super::history::{History, run_place};
use super::packages::{ImageInventory, InstalledRow, PackagesAnswer, WhereAnswer};
use super::query::{Base, ManifestInfo, Repository};
use super::runs::Run;
use super::security::{AdvisoryRef, GroupKind, RebuildGroup, SecurityReport};
use super::who_uses::WhoUses;
use crate::report::{html_escape, plural, visible};

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

fn advisory_list(advisories: &[AdvisoryRef]) -> String {
    advisories
        .iter()
        .map(|a| {
            let mut s = visible(&a.id);
            let mut notes = Vec::new();
            if let Some(u) = &a.urgency {
                notes.push(visible(u));
            }
            if let Some(n) = &a.nodsa {
                let reason = a
                    .nodsa_reason
                    .as_deref()
                    .map(|r| format!(" ({})", visible(r)))
                    .unwrap_or_default();
                notes.push(format!("no DSA: {}{reason}", visible(n)));
            }
            if !notes.is_empty() {
                s.push_str(&format!(" [{}]", notes.join("; ")));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_title(g: &RebuildGroup) -> String {
    let what = match g.kind {
        GroupKind::Base => "rebuild base",
        GroupKind::Image => "rebuild image",
        GroupKind::Layer => "rebuild whatever builds layer",
    };
    let name = if g.names.is_empty() {
        g.image
            .as_ref()
            .map_or_else(|| g.layer.to_string(), ToString::to_string)
    } else {
        g.names.join(", ")
    };
    format!(
        "{what} {name}: fixes {} running in {}",
        plural(g.images.len(), "image", "images"),
        plural(g.pods as usize, "pod", "pods")
    )
}

fn data_lines(r: &SecurityReport) -> Vec<String> {
    if r.data.is_empty() {
        return vec!["no security data imported (`tollgate catalog import-advisories`)".into()];
    }
    r.data
        .iter()
        .map(|d| {
            format!(
                "security data: {} imported {} from {}, {} for {}",
                d.origin,
                d.imported_at,
                visible(&d.location),
                plural(d.advisories as usize, "advisory", "advisories"),
                d.releases.join(", ")
            )
        })
        .collect()
}

/// `catalog security`, as text.
pub fn security(r: &SecurityReport) -> String {
    let mut out = String::new();
    for l in data_lines(r) {
        let _ = writeln!(out, "{l}");
    }
    let _ = writeln!(
        out,
        "{} need a security update",
        plural(r.images_needing_update, "image", "images")
    );
    for g in &r.groups {
        let _ = writeln!(out, "\n{}", group_title(g));
        if let Some(d) = &g.image {
            let _ = writeln!(out, "  {d} (layer {})", g.layer.short());
        }
        for f in &g.fixes {
            let _ = writeln!(
                out,
                "  {} {} -> {}  ({})  {}",
                visible(&f.source),
                f.installed,
                f.fixed,
                f.binaries
                    .iter()
                    .map(|b| visible(b))
                    .collect::<Vec<_>>()
                    .join(", "),
                advisory_list(&f.advisories)
            );
        }
        for i in &g.images {
            let _ = write!(out, "  image {}", i.digest);
            if !i.names.is_empty() {
                let _ = write!(out, "  {}", i.names.join(", "));
            }
            out.push('\n');
            if i.running.is_empty() {
                out.push_str("    not running\n");
            }
            for run in &i.running {
                running_line(&mut out, "    runs ", run);
            }
        }
    }
    if !r.no_fix_yet.is_empty() {
        out.push_str("\nno fix yet (known issues, not counted as needing an update):\n");
        for n in &r.no_fix_yet {
            let _ = writeln!(
                out,
                "  {} {} in {}: {} ({})",
                visible(&n.source),
                n.installed,
                n.release,
                advisory_list(&n.advisories),
                plural(n.images, "image", "images")
            );
        }
    }
    if !r.not_checked.is_empty() {
        out.push_str("\nnot checked (never counted as up to date):\n");
        for n in &r.not_checked {
            let _ = writeln!(out, "  {}: {}", n.digest, n.why);
        }
    }
    out
}

/// Markdown table cells: `|` and line breaks would end the cell, backticks and HTML would be
/// markup.
fn md(s: &str) -> String {
    html_escape(&visible(s))
        .replace('|', "\\|")
        .replace('`', "\\`")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

/// `catalog security`, as Markdown (a pull request comment, a wiki page).
pub fn security_markdown(r: &SecurityReport) -> String {
    let mut out = String::from("# Images needing a security update\n\n");
    for l in data_lines(r) {
        let _ = writeln!(out, "- {}", md(&l));
    }
    let _ = writeln!(
        out,
        "\n**{} need a security update.**",
        plural(r.images_needing_update, "image", "images")
    );
    for g in &r.groups {
        let _ = writeln!(out, "\n## {}\n", md(&group_title(g)));
        out.push_str(
            "| source | installed | fixed | binaries | advisories |\n|---|---|---|---|---|\n",
        );
        for f in &g.fixes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                md(&f.source),
                md(&f.installed.to_string()),
                md(&f.fixed.to_string()),
                md(&f.binaries.join(", ")),
                md(&advisory_list(&f.advisories))
            );
        }
        out.push('\n');
        for i in &g.images {
            let pods: u64 = i.running.iter().map(|r| u64::from(r.pods)).sum();
            let _ = writeln!(
                out,
                "- `{}` {} ({})",
                i.digest,
                md(&i.names.join(", ")),
                plural(pods as usize, "pod", "pods")
            );
        }
    }
    if !r.no_fix_yet.is_empty() {
        out.push_str("\n## No fix yet\n\n| release | source | installed | advisories | images |\n|---|---|---|---|---|\n");
        for n in &r.no_fix_yet {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                md(&n.release),
                md(&n.source),
                md(&n.installed.to_string()),
                md(&advisory_list(&n.advisories)),
                n.images
            );
        }
    }
    if !r.not_checked.is_empty() {
        out.push_str("\n## Not checked\n\n");
        for n in &r.not_checked {
            let _ = writeln!(out, "- `{}`: {}", n.digest, md(&n.why));
        }
    }
    out
}

/// `catalog security`, as a standalone HTML page: every value escaped, no script.
pub fn security_html(r: &SecurityReport) -> String {
    let e = |s: &str| html_escape(&visible(s));
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Images needing a security update</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{font-size:.9em}</style></head><body>\n\
         <h1>Images needing a security update</h1>\n<ul>",
    );
    for l in data_lines(r) {
        let _ = write!(out, "<li>{}</li>", e(&l));
    }
    let _ = writeln!(
        out,
        "</ul>\n<p><strong>{}</strong> need a security update.</p>",
        plural(r.images_needing_update, "image", "images")
    );
    for g in &r.groups {
        let _ = writeln!(
            out,
            "<section class=\"group\"><h2>{}</h2>",
            e(&group_title(g))
        );
        out.push_str("<table><tr><th>source</th><th>installed</th><th>fixed</th><th>binaries</th><th>advisories</th></tr>\n");
        for f in &g.fixes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&f.source),
                e(&f.installed.to_string()),
                e(&f.fixed.to_string()),
                e(&f.binaries.join(", ")),
                e(&advisory_list(&f.advisories))
            );
        }
        out.push_str("</table>\n<ul>");
        for i in &g.images {
            let pods: u64 = i.running.iter().map(|r| u64::from(r.pods)).sum();
            let _ = write!(
                out,
                "<li><code>{}</code> {} ({})</li>",
                e(&i.digest.to_string()),
                e(&i.names.join(", ")),
                plural(pods as usize, "pod", "pods")
            );
        }
        out.push_str("</ul></section>\n");
    }
    if !r.no_fix_yet.is_empty() {
        out.push_str("<h2>No fix yet</h2><table><tr><th>release</th><th>source</th><th>installed</th><th>advisories</th><th>images</th></tr>\n");
        for n in &r.no_fix_yet {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&n.release),
                e(&n.source),
                e(&n.installed.to_string()),
                e(&advisory_list(&n.advisories)),
                n.images
            );
        }
        out.push_str("</table>\n");
    }
    if !r.not_checked.is_empty() {
        out.push_str("<h2>Not checked</h2><ul>");
        for n in &r.not_checked {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                e(&n.digest.to_string()),
                e(&n.why)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}
