//! The audit report rendered: text for people, JSON with a documented schema (docs/audit.md),
//! Markdown, and one self-contained HTML page (no external assets; summary first, a table per
//! finding kind). Pure: a report in, a string out.

use std::fmt::Write as _;

use super::Role;
use super::run::{self, AuditReport, ImageResult};
use crate::policy::{AuditKind, FindingKind};
use crate::report::{html_escape as esc, plural};
use crate::rollout::RolloutReport;
use crate::rollout::render::{self as rollout, behind, short_sha};

/// What a renderer needs besides the report.
pub struct View<'a> {
    /// The audit's results.
    pub report: &'a AuditReport,
    /// Pods listed from the cluster, for the summary line.
    pub pods: usize,
    /// Pod controllers listed (ReplicaSets, Deployments, Jobs, ...), for the summary line.
    pub controllers: usize,
    /// `metadata.name` of the policy the images were checked against.
    pub policy: &'a str,
    /// The rollout report, with `audit --repo`.
    pub rollout: Option<&'a RolloutReport>,
}

/// The finding kinds with a section of their own, in report order, with their titles.
pub const SECTIONS: &[(AuditKind, &str)] = &[
    (
        AuditKind::RunningUnservable,
        "Running images the registry can no longer serve (the next restart fails)",
    ),
    (
        AuditKind::RollbackTargetUnservable,
        "Rollback targets the registry can no longer serve",
    ),
    (
        AuditKind::DeclaredUnservable,
        "Declared images the registry cannot serve (the next pod fails)",
    ),
    (
        AuditKind::RetentionRisk,
        "Images the registry's retention rule deletes on its next run",
    ),
];

fn usage_line(u: &super::Usage) -> String {
    let role = match u.role {
        Role::Running => plural(u.pods, "pod", "pods"),
        Role::RollbackTarget => "rollback target".to_owned(),
        Role::Declared => "declared".to_owned(),
    };
    format!(
        "{}/{} container {} ({role})",
        u.namespace, u.workload, u.container
    )
}

/// What a restart pulls: the running `repository@digest`, else the reference as written.
fn shown(i: &ImageResult) -> String {
    match &i.image.running {
        Some(r) => r.to_string(),
        None => i.image.image.to_string(),
    }
}

/// Images with at least one finding of `kind`.
pub fn count(report: &AuditReport, kind: impl Into<FindingKind>) -> usize {
    let kind = kind.into();
    report
        .images
        .iter()
        .filter(|i| i.findings.iter().any(|f| f.kind == kind))
        .count()
}

/// What a renderer says instead of a count for a section the registry decides, when the
/// registry was not asked: a 0 there would read as a clean bill.
pub const NOT_CHECKED: &str = "not checked (--no-resolve)";

/// The count of `kind`, or `null` when the registry was not asked and `kind` needs it.
fn checked(report: &AuditReport, kind: AuditKind) -> serde_json::Value {
    if report.registry_checked {
        count(report, kind).into()
    } else {
        serde_json::Value::Null
    }
}

/// JSON, pretty-printed, with a trailing newline: `schemaVersion` 1 as docs/audit.md
/// documents it (a summary of counts, then every image with its usages and findings).
pub fn json(v: &View<'_>) -> String {
    let (report, policy) = (v.report, v.policy);
    let doc = serde_json::json!({
        "schemaVersion": 1,
        "tool": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
        "policy": policy,
        "summary": {
            "pods": v.pods,
            "controllers": v.controllers,
            "images": report.images.len(),
            "runningUnservable": checked(report, AuditKind::RunningUnservable),
            "rollbackTargetsUnservable": checked(report, AuditKind::RollbackTargetUnservable),
            "declaredUnservable": checked(report, AuditKind::DeclaredUnservable),
            "retentionRisk": checked(report, AuditKind::RetentionRisk),
            "registryChecked": report.registry_checked,
            "retentionNotSimulated": report.retention_not_simulated,
            "commitsNotRolledOut": v.rollout.map(RolloutReport::overdue_commits),
            "registryRequests": report.registry_requests,
            "errors": report.errors.len(),
        },
        "images": report.images,
        "errors": report.errors,
        "rollout": v.rollout,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("the report serializes");
    s.push('\n');
    s
}

/// Text for a terminal: a summary line, each finding kind's images with their usages and
/// fixes, the policy findings one line each, then the rollout report and what could not be
/// checked.
pub fn text(v: &View<'_>) -> String {
    let report = v.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tollgate audit: {} in {} and {}; policy {}",
        plural(report.images.len(), "distinct image", "distinct images"),
        plural(v.pods, "pod", "pods"),
        plural(v.controllers, "controller", "controllers"),
        v.policy
    );
    for &(kind, title) in SECTIONS {
        let hits = hits(report, kind);
        if report.registry_checked {
            let _ = writeln!(out, "\n{title}: {}", hits.len());
        } else {
            let _ = writeln!(out, "\n{title}: {NOT_CHECKED}");
        }
        if kind == AuditKind::RetentionRisk {
            for repo in &report.retention_not_simulated {
                let _ = writeln!(out, "  {}", not_simulated(repo));
            }
        }
        for (i, f) in hits {
            let _ = writeln!(out, "  {}", shown(i));
            for u in &i.image.usages {
                let _ = writeln!(out, "    {}", usage_line(u));
            }
            let _ = writeln!(out, "    {}\n    fix: {}", f.message, f.hint);
        }
    }
    let policy_hits = policy_findings(report);
    let _ = writeln!(out, "\nPolicy findings: {}", policy_hits.len());
    for (i, f) in policy_hits {
        let _ = writeln!(
            out,
            "  {:<5} {:<26} {} ({} use{})",
            f.level.as_str(),
            f.kind,
            i.image.image,
            i.image.usages.len(),
            if i.image.usages.len() == 1 { "" } else { "s" }
        );
    }
    if let Some(r) = v.rollout {
        let ws = behind(r);
        let _ = writeln!(
            out,
            "\nMerged but not rolled out ({} at {}): {}, {}",
            r.branch,
            short_sha(&r.head),
            plural(ws.len(), "workload", "workloads"),
            plural(r.overdue_commits(), "overdue commit", "overdue commits")
        );
        for w in ws {
            rollout::write_workload(&mut out, w, &r.branch, "  ");
        }
    }
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nCould not be checked: {}", report.errors.len());
        for e in &report.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// Why a retention rule by push time has no count: never to be read as "none at risk".
fn not_simulated(repo: &str) -> String {
    format!(
        "not simulated for {repo}: its retention rule orders by push time, which the registry API does not expose"
    )
}

/// One cell of the Markdown and HTML tables.
enum Cell {
    Text(String),
    Code(String),
    /// Several lines in one cell.
    Lines(Vec<String>),
    /// Text with an HTML class (a level, or ok/deny in the summary); plain text in Markdown.
    Styled(&'static str, String),
}

/// A section of the Markdown and HTML reports: a heading and a table.
struct Table {
    heading: Vec<Cell>,
    header: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
}

/// What the Markdown and HTML reports show, built once for both: the summary, a table per
/// finding kind that has findings, the policy findings, and the rollout report.
fn tables(v: &View<'_>) -> Vec<Table> {
    let r = v.report;
    let summary_row = |title: &str, n: usize| {
        vec![
            Cell::Text(title.to_owned()),
            Cell::Styled(if n == 0 { "ok" } else { "deny" }, n.to_string()),
        ]
    };
    let mut summary: Vec<Vec<Cell>> = SECTIONS
        .iter()
        .map(|&(kind, title)| {
            let shown = match r.registry_checked {
                true => count(r, kind).to_string(),
                false => NOT_CHECKED.to_owned(),
            };
            let mut row = match r.registry_checked {
                true => summary_row(title, count(r, kind)),
                false => vec![
                    Cell::Text(title.to_owned()),
                    Cell::Styled("warn", shown.clone()),
                ],
            };
            if kind == AuditKind::RetentionRisk && !r.retention_not_simulated.is_empty() {
                row[1] = Cell::Lines(
                    std::iter::once(shown)
                        .chain(r.retention_not_simulated.iter().map(|n| not_simulated(n)))
                        .collect(),
                );
            }
            row
        })
        .collect();
    let policy = policy_findings(r);
    summary.push(summary_row("Policy findings", policy.len()));
    if let Some(ro) = v.rollout {
        summary.push(summary_row(
            "Commits merged but not rolled out (overdue)",
            ro.overdue_commits(),
        ));
    }
    summary.push(summary_row("Could not be checked", r.errors.len()));
    let mut tables = vec![Table {
        heading: vec![Cell::Text("Summary".into())],
        header: &["finding", "images"],
        rows: summary,
    }];
    for &(kind, title) in SECTIONS {
        let hits = hits(r, kind);
        if hits.is_empty() {
            continue;
        }
        tables.push(Table {
            heading: vec![Cell::Text(title.to_owned())],
            header: &["image", "used by", "finding", "fix"],
            rows: hits
                .into_iter()
                .map(|(i, f)| {
                    vec![
                        Cell::Code(shown(i)),
                        Cell::Lines(i.image.usages.iter().map(usage_line).collect()),
                        Cell::Styled(f.level.as_str(), f.message.clone()),
                        Cell::Text(f.hint.clone()),
                    ]
                })
                .collect(),
        });
    }
    if !policy.is_empty() {
        tables.push(Table {
            heading: vec![Cell::Text("Policy findings".into())],
            header: &["level", "rule", "image", "finding", "fix"],
            rows: policy
                .into_iter()
                .map(|(i, f)| {
                    vec![
                        Cell::Styled(f.level.as_str(), f.level.as_str().to_owned()),
                        Cell::Code(f.kind.to_string()),
                        Cell::Code(i.image.image.to_string()),
                        Cell::Text(f.message.clone()),
                        Cell::Text(f.hint.clone()),
                    ]
                })
                .collect(),
        });
    }
    if let Some(ro) = v.rollout {
        tables.push(Table {
            heading: vec![
                Cell::Text(format!("Merged but not rolled out ({} at ", ro.branch)),
                Cell::Code(short_sha(&ro.head).to_owned()),
                Cell::Text(")".into()),
            ],
            header: &["workload", "images", "not rolled out", "deployed revision"],
            rows: behind(ro)
                .into_iter()
                .map(|w| {
                    vec![
                        Cell::Text(format!("{} ({})", w.workload, rollout::state(w))),
                        Cell::Lines(w.images.iter().map(rollout::pair_line).collect()),
                        Cell::Lines(w.not_rolled_out.iter().map(rollout::commit_entry).collect()),
                        Cell::Text(rollout::deployed(w, &ro.branch)),
                    ]
                })
                .collect(),
        });
    }
    tables
}

/// Markdown: a summary table, then one table per finding kind.
pub fn markdown(v: &View<'_>) -> String {
    let cell = |c: &Cell| match c {
        Cell::Text(s) | Cell::Styled(_, s) => md(s),
        Cell::Code(s) => format!("`{}`", md(s)),
        Cell::Lines(l) => l.iter().map(|s| md(s)).collect::<Vec<_>>().join("<br>"),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tollgate audit\n\n{} in {} and {}; policy `{}`.",
        plural(v.report.images.len(), "distinct image", "distinct images"),
        plural(v.pods, "pod", "pods"),
        plural(v.controllers, "controller", "controllers"),
        md(v.policy)
    );
    for t in tables(v) {
        let heading: String = t.heading.iter().map(cell).collect();
        let _ = writeln!(out, "\n## {heading}\n\n| {} |", t.header.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(t.header.len()));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(cell).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    if !v.report.errors.is_empty() {
        let _ = writeln!(out, "\n## Could not be checked\n");
        for e in &v.report.errors {
            let _ = writeln!(out, "- {}", md(e));
        }
    }
    out
}

/// One self-contained HTML page: inline style, no script, no external asset; every string from
/// the cluster or the registry is escaped (image references are untrusted input).
pub fn html(v: &View<'_>) -> String {
    let content = |c: &Cell| match c {
        Cell::Text(s) | Cell::Styled(_, s) => esc(s),
        Cell::Code(s) => format!("<code>{}</code>", esc(s)),
        Cell::Lines(l) => l.iter().map(|s| esc(s)).collect::<Vec<_>>().join("<br>"),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tollgate audit</title>\n<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}code{{font-size:.9em}}.deny{{color:#b00020;font-weight:bold}}.warn{{color:#a05a00}}.ok{{color:#1b5e20}}</style></head><body>\n<h1>tollgate audit</h1>\n<p>{} in {} and {}; policy <code>{}</code>.</p>",
        plural(v.report.images.len(), "distinct image", "distinct images"),
        plural(v.pods, "pod", "pods"),
        plural(v.controllers, "controller", "controllers"),
        esc(v.policy)
    );
    for t in tables(v) {
        let heading: String = t.heading.iter().map(content).collect();
        let _ = write!(out, "<h2>{heading}</h2>\n<table><tr>");
        for h in t.header {
            let _ = write!(out, "<th>{h}</th>");
        }
        out.push_str("</tr>\n");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                match c {
                    Cell::Styled(class, _) => {
                        let _ = write!(out, "<td class=\"{class}\">{}</td>", content(c));
                    }
                    _ => {
                        let _ = write!(out, "<td>{}</td>", content(c));
                    }
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    if !v.report.errors.is_empty() {
        out.push_str("<h2>Could not be checked</h2>\n<ul>\n");
        for e in &v.report.errors {
            let _ = writeln!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn hits(r: &AuditReport, kind: AuditKind) -> Vec<(&ImageResult, &run::AuditFinding)> {
    let kind = FindingKind::Audit(kind);
    r.images
        .iter()
        .filter_map(|i| Some((i, i.findings.iter().find(|f| f.kind == kind)?)))
        .collect()
}

fn policy_findings(r: &AuditReport) -> Vec<(&ImageResult, &run::AuditFinding)> {
    r.images
        .iter()
        .flat_map(|i| {
            i.findings
                .iter()
                .filter(|f| matches!(f.kind, FindingKind::Rule(_)))
                .map(move |f| (i, f))
        })
        .collect()
}

/// Keep text inside a Markdown table cell: pipes and newlines would end the cell or the row,
/// and HTML would be rendered.
fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditImage, Usage};
    use crate::policy::Level;
    use crate::reference::WrittenImage;

    fn report(image: &str) -> AuditReport {
        AuditReport {
            images: vec![ImageResult {
                image: AuditImage {
                    image: WrittenImage::new(image),
                    running: None,
                    usages: vec![Usage {
                        role: Role::Running,
                        namespace: "ns".into(),
                        workload: "Deployment/web".into(),
                        container: "app".into(),
                        pods: 2,
                    }],
                },
                findings: vec![run::AuditFinding {
                    kind: AuditKind::RunningUnservable.into(),
                    level: Level::Deny,
                    message: "the next restart of these 2 pods will fail to pull it".into(),
                    hint: "push it again".into(),
                }],
                registry_requests: 3,
                checks: vec![],
            }],
            errors: vec![],
            registry_requests: 3,
            retention_not_simulated: vec![],
            registry_checked: true,
        }
    }

    #[test]
    fn html_is_self_contained_and_escapes_what_the_cluster_wrote() {
        let r = report("r.example/<script>alert(1)</script>:1");
        let page = html(&View {
            report: &r,
            pods: 2,
            controllers: 1,
            policy: "p",
            rollout: None,
        });
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
        // The summary comes before the sections.
        let summary = page.find("<h2>Summary</h2>").unwrap();
        let section = page.find("<h2>Running images").unwrap();
        assert!(summary < section);
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        let r = report("r.example/a|b:1");
        let text = markdown(&View {
            report: &r,
            pods: 2,
            controllers: 1,
            policy: "p",
            rollout: None,
        });
        assert!(text.contains("`r.example/a\\|b:1`"), "{text}");
        assert!(text.contains(
            "| Running images the registry can no longer serve (the next restart fails) | 1 |"
        ));
    }

    /// `--no-resolve` asks no registry: no format may show those sections as 0.
    #[test]
    fn without_the_registry_the_registry_sections_say_not_checked_in_every_format() {
        let mut r = report("r.example/a:1");
        r.images[0].findings.clear();
        r.registry_checked = false;
        let v = View {
            report: &r,
            pods: 2,
            controllers: 1,
            policy: "p",
            rollout: None,
        };
        for (format, out) in [
            ("text", text(&v)),
            ("markdown", markdown(&v)),
            ("html", html(&v)),
        ] {
            for (_, title) in SECTIONS {
                assert!(
                    !out.contains(&format!("{title}: 0")),
                    "{format}: {title}\n{out}"
                );
            }
            assert_eq!(
                out.matches(NOT_CHECKED).count(),
                SECTIONS.len(),
                "{format}:\n{out}"
            );
        }
        let j: serde_json::Value = serde_json::from_str(&json(&v)).unwrap();
        assert_eq!(j["summary"]["runningUnservable"], serde_json::Value::Null);
        assert_eq!(j["summary"]["registryChecked"], false);
    }
}
