//! The catalog's read-only web page, rendered on the server: the list of images, versions and
//! where each runs, and an image's page with its timeline (inline SVG), tags, builds, runs,
//! base and registry events. Pure: answers in, HTML out.
//!
//! Every string from the catalog is untrusted (labels and build fields come from builders and
//! image authors) and goes through [`escape`]. The page has no external asset; its one style
//! sheet and one small script (the list's filter box) are inline, allowed by their hashes in
//! [`content_security_policy`], so no other script can run even if escaping were missed.

use super::security::{GroupKind, SecurityReport};
use std::fmt::Write as _;

use base64::Engine as _;
use sha2::Digest as _;

use super::history::{History, run_place};
use super::query::{Base, Repository};
use super::runs::Run;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#eee}code{font-size:.9em}.running{color:#060}.gone{color:#888}\
svg text{font-size:11px;font-family:monospace}nav{margin:.5em 0}h1{overflow-wrap:anywhere}";

/// Shows the filter box (hidden without JavaScript: the GET form above it works without) and
/// hides the list's rows that do not contain what is typed.
const SCRIPT: &str = "(function(){var f=document.getElementById('filter');if(!f)return;\
f.hidden=false;f.addEventListener('input',function(){var q=f.value.toLowerCase();\
document.querySelectorAll('tr.version').forEach(function(r){\
r.hidden=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;});});})();";

fn hash(text: &str) -> String {
    let d = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(d)
    )
}

/// The header every page is sent with: nothing loads from anywhere, only the page's own style
/// and script run, it cannot be framed, and forms go only back to the server.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
}

/// HTML-escape text for element content and quoted attribute values.
pub use crate::report::html_escape as escape;

/// A query-string value, percent-encoded (then escaped where it lands in an attribute).
fn query_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn image_link(subject: &str, text: &str) -> String {
    format!(
        "<a class=\"image-link\" href=\"/image?ref={}\">{}</a>",
        escape(&query_value(subject)),
        escape(text)
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n\
         <script>{SCRIPT}</script></body></html>\n",
        escape(title)
    )
}

fn runs_cell(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "<span class=\"gone\">not running</span>".to_owned();
    }
    runs.iter()
        .map(|r| {
            format!(
                "<span class=\"running\">{}</span> ({} pods since {})",
                escape(&run_place(r)),
                r.pods,
                r.first_seen
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn bases_cell(bases: &[Base]) -> String {
    bases
        .iter()
        .map(|b| format!("{} ({})", image_link(&b.image, &b.image), b.by))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Paging of the list: which page this is and whether there are more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    /// Whether a next page exists.
    pub more: bool,
}

/// The list page: every repository, its versions, their tags, base and where each runs.
pub fn list(repos: &[Repository], filter: Option<&str>, paging: Paging) -> String {
    let mut b = String::from(
        "<h1>Image catalog</h1>\n<p><a id=\"needs-update\" href=\"/security\">images needing a security update</a></p>\n",
    );
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/\"><label>Repository (glob) \
         <input name=\"repository\" value=\"{}\"></label> <button>Show</button></form>\n\
         <p><input id=\"filter\" type=\"search\" placeholder=\"filter rows\" hidden></p>\n",
        escape(filter.unwrap_or(""))
    );
    if repos.is_empty() {
        b.push_str("<p>No images in the catalog.</p>\n");
    } else {
        b.push_str(
            "<table id=\"images\"><thead><tr><th>repository</th><th>version</th><th>tags</th>\
             <th>created</th><th>base</th><th>where it runs now</th></tr></thead><tbody>\n",
        );
        for repo in repos {
            for v in &repo.versions {
                let created = v
                    .manifest
                    .as_ref()
                    .and_then(|m| m.created_at)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    b,
                    "<tr class=\"version\"><td>{}</td><td><code title=\"{}\">{}</code></td><td>{}</td>\
                     <td>{created}</td><td>{}</td><td>{}</td></tr>",
                    image_link(&repo.name, &repo.name),
                    v.digest,
                    image_link(&format!("{}@{}", repo.name, v.digest), &v.digest.short()),
                    escape(&v.tags.join(", ")),
                    bases_cell(&v.base),
                    runs_cell(&v.running)
                );
            }
        }
        b.push_str("</tbody></table>\n");
    }
    let here = filter
        .map(|f| format!("repository={}&", query_value(f)))
        .unwrap_or_default();
    b.push_str("<nav>");
    if paging.page > 1 {
        let _ = write!(
            b,
            "<a href=\"/?{}page={}\">previous</a> ",
            escape(&here),
            paging.page - 1
        );
    }
    let _ = write!(b, "page {}", paging.page);
    if paging.more {
        let _ = write!(
            b,
            " <a href=\"/?{}page={}\">next</a>",
            escape(&here),
            paging.page + 1
        );
    }
    b.push_str("</nav>");
    page("Image catalog", &b)
}

/// Horizontal position of `t` on a timeline from `start` to `end`, `width` pixels wide.
fn x(t: i64, start: i64, end: i64, left: f64, width: f64) -> f64 {
    if end <= start {
        return left;
    }
    left + (t - start) as f64 / (end - start) as f64 * width
}

/// The timeline: a row per tag interval and per run (bars from first to last sighting, to the
/// end for those still current), and marks for builds and registry events. Open intervals end
/// at the latest time the catalog knows, since the page reads no clock.
fn timeline(h: &History) -> String {
    let mut times: Vec<i64> = h.timeline.iter().map(|e| e.at.as_second()).collect();
    times.extend(h.tags.iter().map(|t| t.last_seen.as_second()));
    times.extend(h.runs.iter().map(|r| r.last_seen.as_second()));
    let (Some(&start), Some(&end)) = (times.iter().min(), times.iter().max()) else {
        return "<p>Nothing recorded.</p>".to_owned();
    };
    const LEFT: f64 = 330.0;
    const WIDTH: f64 = 560.0;
    const ROW: f64 = 18.0;
    let rows = h.tags.len() + h.runs.len() + 2;
    let height = (rows as f64 + 1.0) * ROW + 20.0;
    let mut s = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"{height}\" \
         role=\"img\" aria-label=\"timeline\">\n"
    );
    let mut y = ROW;
    let mut bar = |s: &mut String, label: &str, from: i64, to: i64, colour: &str, tip: &str| {
        let x0 = x(from, start, end, LEFT, WIDTH);
        let x1 = x(to, start, end, LEFT, WIDTH).max(x0 + 3.0);
        let _ = writeln!(
            s,
            "<g class=\"bar\"><title>{}</title><text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"/></g>",
            escape(tip),
            y + 4.0,
            escape(label),
            y - 8.0,
            x1 - x0,
            ROW - 6.0
        );
        y += ROW;
    };
    for t in &h.tags {
        let to = t.moved_at.unwrap_or(t.last_seen).as_second();
        let to = if t.moved_at.is_none() { end } else { to };
        let tip = format!(
            "{} -> {} from {} to {}",
            t.tag,
            t.digest,
            t.first_seen,
            t.moved_at
                .map_or("now (current)".to_owned(), |m| m.to_string())
        );
        let label = format!("tag {} {}", short_name(&t.tag), t.digest.short());
        bar(
            &mut s,
            &label,
            t.first_seen.as_second(),
            to,
            "#4a7bd0",
            &tip,
        );
    }
    for r in &h.runs {
        let to = match r.closed_at {
            Some(c) => c.as_second(),
            None => end,
        };
        let tip = format!(
            "{} ran {} from {} to {}",
            run_place(r),
            r.digest,
            r.first_seen,
            r.closed_at
                .map_or("now (running)".to_owned(), |c| c.to_string())
        );
        let label = format!("run {}", run_place(r));
        bar(
            &mut s,
            &label,
            r.first_seen.as_second(),
            to,
            "#3a9a50",
            &tip,
        );
    }
    let marks_y = y;
    for b in &h.builds {
        let _ = writeln!(
            s,
            "<g class=\"mark build\"><title>{}</title><circle cx=\"{:.1}\" cy=\"{}\" r=\"5\" fill=\"#c07a10\"/></g>",
            escape(&format!(
                "built {} at {} by {} from {} {}",
                b.digest, b.built_at, b.builder, b.source_repository, b.commit
            )),
            x(b.built_at.as_second(), start, end, LEFT, WIDTH),
            marks_y - 4.0
        );
    }
    for e in &h.events {
        let _ = writeln!(
            s,
            "<g class=\"mark event\"><title>{}</title><rect x=\"{:.1}\" y=\"{}\" width=\"8\" height=\"8\" fill=\"#c03030\"/></g>",
            escape(&format!(
                "{} {} noticed {}",
                e.kind.as_str(),
                e.digest,
                e.noticed_at
            )),
            x(e.noticed_at.as_second(), start, end, LEFT - 4.0, WIDTH),
            marks_y - 8.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"0\" y=\"{}\">builds, registry events</text>\
         <text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        marks_y,
        marks_y + ROW + 4.0,
        jiff::Timestamp::from_second(start).map_or_else(|_| String::new(), |t| t.to_string()),
        LEFT + WIDTH,
        marks_y + ROW + 4.0,
        jiff::Timestamp::from_second(end).map_or_else(|_| String::new(), |t| t.to_string()),
    );
    s.push_str("</svg>");
    s
}

/// `repository:tag` without the registry, for the timeline's narrow labels.
fn short_name(tag: &str) -> &str {
    tag.split_once('/').map_or(tag, |(_, rest)| rest)
}

/// An image's page: its digests (with labels and base), the timeline, and every tag
/// interval, build, run and registry event.
pub fn image(h: &History) -> String {
    let mut b = format!(
        "<nav><a href=\"/\">all images</a></nav>\n<h1>{}</h1>\n",
        escape(&h.subject)
    );
    b.push_str("<h2>Timeline</h2>\n");
    b.push_str(&timeline(h));
    b.push_str("\n<h2>Versions</h2>\n");
    if h.digests.is_empty() {
        b.push_str("<p>The catalog knows no digest of it.</p>\n");
    } else {
        b.push_str(
            "<table id=\"versions\"><thead><tr><th>digest</th><th>kind</th><th>platform</th>\
             <th>created</th><th>base</th><th>labels</th></tr></thead><tbody>\n",
        );
        for d in &h.digests {
            let m = d.manifest.as_ref();
            let labels = m
                .map(|m| {
                    m.labels
                        .iter()
                        .map(|(k, v)| {
                            format!("<code>{}</code> = <code>{}</code>", escape(k), escape(v))
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"labels\">{labels}</td></tr>",
                image_link(&d.digest.to_string(), &d.digest.to_string()),
                escape(m.map_or("", |m| m.kind.as_str())),
                escape(m.and_then(|m| m.platform.as_deref()).unwrap_or("")),
                m.and_then(|m| m.created_at)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                bases_cell(&d.base),
            );
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str("<h2>Tag history</h2>\n");
    if h.tags.is_empty() {
        b.push_str("<p>No tag was seen pointing at it.</p>\n");
    } else {
        b.push_str(
            "<table id=\"tags\"><thead><tr><th>tag</th><th>digest</th><th>first seen</th>\
             <th>last seen</th><th>moved</th></tr></thead><tbody>\n",
        );
        for t in &h.tags {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&t.tag),
                escape(&t.digest.to_string()),
                t.first_seen,
                t.last_seen,
                t.moved_at.map_or("current".to_owned(), |m| m.to_string())
            );
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str("<h2>Builds</h2>\n");
    if h.builds.is_empty() {
        b.push_str("<p>No build registered.</p>\n");
    } else {
        b.push_str(
            "<table id=\"builds\"><thead><tr><th>digest</th><th>built</th><th>builder</th>\
             <th>source</th><th>commit</th><th>parents</th></tr></thead><tbody>\n",
        );
        for x in &h.builds {
            let parents: Vec<String> = x
                .parents
                .iter()
                .map(|p| image_link(&p.to_string(), &p.to_string()))
                .collect();
            let _ = writeln!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                x.digest.short(),
                x.built_at,
                escape(&x.builder),
                escape(&x.source_repository),
                escape(&x.commit),
                parents.join("<br>")
            );
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str("<h2>Runs</h2>\n");
    if h.runs.is_empty() {
        b.push_str("<p>Not seen running.</p>\n");
    } else {
        b.push_str(
            "<table id=\"runs\"><thead><tr><th>where</th><th>digest</th><th>pods</th>\
             <th>first seen</th><th>last seen</th><th>gone</th></tr></thead><tbody>\n",
        );
        for r in &h.runs {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&run_place(r)),
                r.digest.short(),
                r.pods,
                r.first_seen,
                r.last_seen,
                r.closed_at.map_or("running".to_owned(), |c| c.to_string())
            );
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str("<h2>Registry events</h2>\n");
    if h.events.is_empty() {
        b.push_str("<p>None noticed.</p>\n");
    } else {
        b.push_str(
            "<table id=\"events\"><thead><tr><th>noticed</th><th>what</th><th>digest</th>\
             <th>repository</th><th>detail</th></tr></thead><tbody>\n",
        );
        for e in &h.events {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                e.noticed_at,
                escape(e.kind.as_str()),
                e.digest.short(),
                escape(e.repository.as_deref().unwrap_or("")),
                escape(e.detail.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>\n");
    }
    page(&h.subject, &b)
}

/// A page for an error (a bad reference, a catalog that did not answer).
pub fn error(status: u16, message: &str) -> String {
    page(
        "Image catalog: error",
        &format!(
            "<nav><a href=\"/\">all images</a></nav><h1>Error {status}</h1><p>{}</p>",
            escape(message)
        ),
    )
}

/// The "needs update" page: each rebuild (bases first), what it fixes and where its images
/// run; then known issues without a fix, and images not checked. Every value from images and
/// security data is escaped: package names come from an image's own dpkg database.
pub fn security(r: &SecurityReport) -> String {
    let mut b = String::from("<h1>Images needing a security update</h1>\n<ul id=\"data\">");
    if r.data.is_empty() {
        b.push_str("<li>No security data imported.</li>");
    }
    for d in &r.data {
        let _ = write!(
            b,
            "<li>{} imported {} ({} advisories for {})</li>",
            escape(&d.origin),
            d.imported_at,
            d.advisories,
            escape(&d.releases.join(", "))
        );
    }
    let _ = writeln!(
        b,
        "</ul>\n<p id=\"summary\">{} image{} need a security update.</p>",
        r.images_needing_update,
        if r.images_needing_update == 1 {
            ""
        } else {
            "s"
        }
    );
    for g in &r.groups {
        let kind = match g.kind {
            GroupKind::Base => "rebuild base",
            GroupKind::Image => "rebuild image",
            GroupKind::Layer => "rebuild whatever builds layer",
        };
        let name = match (&g.image, g.names.first()) {
            (_, Some(n)) => image_link(n, &g.names.join(", ")),
            (Some(d), None) => image_link(&d.to_string(), &d.short()),
            (None, None) => format!("<code>{}</code>", escape(&g.layer.to_string())),
        };
        let _ = writeln!(
            b,
            "<section class=\"rebuild {}\"><h2>{kind} {name}</h2><p>fixes {} image{} running in {} pod{}</p>",
            match g.kind {
                GroupKind::Base => "base",
                GroupKind::Image => "image",
                GroupKind::Layer => "layer",
            },
            g.images.len(),
            if g.images.len() == 1 { "" } else { "s" },
            g.pods,
            if g.pods == 1 { "" } else { "s" }
        );
        b.push_str(
            "<table class=\"fixes\"><thead><tr><th>source</th><th>installed</th><th>fixed</th>\
             <th>binaries</th><th>advisories</th></tr></thead><tbody>\n",
        );
        for f in &g.fixes {
            let advisories = f
                .advisories
                .iter()
                .map(|a| {
                    format!(
                        "{}{}",
                        escape(&a.id),
                        a.urgency
                            .as_deref()
                            .map(|u| format!(" ({})", escape(u)))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                b,
                "<tr class=\"fix\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{advisories}</td></tr>",
                escape(&f.source),
                escape(&f.installed.to_string()),
                escape(&f.fixed.to_string()),
                escape(&f.binaries.join(", "))
            );
        }
        b.push_str("</tbody></table>\n<table class=\"images\"><tbody>\n");
        for i in &g.images {
            let _ = writeln!(
                b,
                "<tr class=\"image\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                image_link(&i.digest.to_string(), &i.digest.short()),
                escape(&i.names.join(", ")),
                runs_cell(&i.running)
            );
        }
        b.push_str("</tbody></table></section>\n");
    }
    if !r.no_fix_yet.is_empty() {
        b.push_str(
            "<h2>No fix yet</h2><table id=\"nofix\"><thead><tr><th>release</th><th>source</th>\
             <th>installed</th><th>advisories</th><th>images</th></tr></thead><tbody>\n",
        );
        for n in &r.no_fix_yet {
            let advisories = n
                .advisories
                .iter()
                .map(|a| {
                    let nodsa = a
                        .nodsa
                        .as_deref()
                        .map(|x| format!(" — no DSA: {}", escape(x)))
                        .unwrap_or_default();
                    format!("{}{nodsa}", escape(&a.id))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{advisories}</td><td>{}</td></tr>",
                escape(&n.release),
                escape(&n.source),
                escape(&n.installed.to_string()),
                n.images
            );
        }
        b.push_str("</tbody></table>\n");
    }
    if !r.not_checked.is_empty() {
        b.push_str("<h2>Not checked</h2><ul id=\"notchecked\">");
        for n in &r.not_checked {
            let _ = write!(
                b,
                "<li>{}: {}</li>",
                image_link(&n.digest.to_string(), &n.digest.short()),
                escape(&n.why)
            );
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<nav><a href=\"/\">all images</a></nav>");
    page("Needs update", &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::script("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;")]
    #[case::attribute("\" onerror=\"x", "&quot; onerror=&quot;x")]
    #[case::single_quote("it's", "it&#39;s")]
    #[case::ampersand("a&b", "a&amp;b")]
    fn untrusted_text_is_escaped(#[case] input: &str, #[case] want: &str) {
        assert_eq!(escape(input), want);
    }

    #[test]
    fn the_policy_allows_exactly_the_page_s_own_style_and_script() {
        let csp = content_security_policy();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        let page = list(
            &[],
            None,
            Paging {
                page: 1,
                more: false,
            },
        );
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
    }
}
