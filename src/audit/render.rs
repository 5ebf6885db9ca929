//! The audit report rendered: text for people, JSON with a documented schema (docs/audit.md),
//! Markdown, and one self-contained HTML page (no external assets; summary first, a table per
//! finding kind). Pure: a report in, a string out.

use std::fmt::Write as _;

use super::Role;
use super::run::{self, AuditReport, ImageResult};
use crate::rollout::{self, RolloutReport, WorkloadReport};

/// What a renderer needs besides the report.
pub struct View<'a> {
    pub report: &'a AuditReport,
    pub pods: usize,
    pub controllers: usize,
    pub policy: &'a str,
    /// The rollout report, with `audit --repo`.
    pub rollout: Option<&'a RolloutReport>,
}

/// The workloads of a rollout report that are not in sync, and their commits.
fn behind(r: Option<&RolloutReport>) -> Vec<&WorkloadReport> {
    r.map(|r| {
        r.workloads
            .iter()
            .filter(|w| w.status != rollout::Status::InSync)
            .collect()
    })
    .unwrap_or_default()
}

fn commit_line(c: &rollout::ReportCommit) -> String {
    let hours = c.age_seconds / 3600;
    format!(
        "{} {} ({}, {}h {}m ago{})",
        &c.sha[..c.sha.len().min(12)],
        c.subject,
        c.author,
        hours,
        (c.age_seconds % 3600) / 60,
        if c.overdue {
            ""
        } else {
            ", within the grace period"
        }
    )
}

fn images_line(w: &WorkloadReport) -> String {
    w.images
        .iter()
        .map(|p| {
            format!(
                "{}{} (live {})",
                p.container
                    .as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default(),
                p.desired,
                p.live.as_deref().unwrap_or("none")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The finding kinds with a section of their own, in report order, with their titles.
pub const SECTIONS: &[(&str, &str)] = &[
    (
        run::RUNNING_UNSERVABLE,
        "Running images the registry can no longer serve (the next restart fails)",
    ),
    (
        run::ROLLBACK_UNSERVABLE,
        "Rollback targets the registry can no longer serve",
    ),
    (
        run::DECLARED_UNSERVABLE,
        "Declared images the registry cannot serve (the next pod fails)",
    ),
    (
        run::RETENTION_RISK,
        "Images the registry's retention rule deletes on its next run",
    ),
];

fn is_policy_kind(kind: &str) -> bool {
    !SECTIONS.iter().any(|(k, _)| *k == kind)
}

fn usage_line(u: &super::Usage) -> String {
    let role = match u.role {
        Role::Running => format!("{} pods", u.pods),
        Role::RollbackTarget => "rollback target".to_owned(),
        Role::Declared => "declared".to_owned(),
    };
    format!(
        "{}/{} container {} ({role})",
        u.namespace, u.workload, u.container
    )
}

fn shown(i: &ImageResult) -> &str {
    i.image.running.as_deref().unwrap_or(&i.image.image)
}

pub fn count(report: &AuditReport, kind: &str) -> usize {
    report
        .images
        .iter()
        .filter(|i| i.findings.iter().any(|f| f.kind == kind))
        .count()
}

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
            "runningUnservable": count(report, run::RUNNING_UNSERVABLE),
            "rollbackTargetsUnservable": count(report, run::ROLLBACK_UNSERVABLE),
            "declaredUnservable": count(report, run::DECLARED_UNSERVABLE),
            "retentionRisk": count(report, run::RETENTION_RISK),
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

pub fn text(v: &View<'_>) -> String {
    let (report, policy) = (v.report, v.policy);
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tollgate audit: {} distinct images in {} pods and {} controllers; policy {policy}",
        report.images.len(),
        v.pods,
        v.controllers
    );
    let sections = SECTIONS;
    for &(kind, title) in sections {
        let hits: Vec<_> = report
            .images
            .iter()
            .filter_map(|i| Some((i, i.findings.iter().find(|f| f.kind == kind)?)))
            .collect();
        let _ = writeln!(out, "\n{title}: {}", hits.len());
        for (i, f) in hits {
            let _ = writeln!(
                out,
                "  {}",
                i.image.running.as_deref().unwrap_or(&i.image.image)
            );
            for u in &i.image.usages {
                let _ = writeln!(out, "    {}", usage_line(u));
            }
            let _ = writeln!(out, "    {}\n    fix: {}", f.message, f.hint);
        }
    }
    let policy_hits: Vec<_> = report
        .images
        .iter()
        .flat_map(|i| {
            i.findings
                .iter()
                .filter(|f| is_policy_kind(&f.kind))
                .map(move |f| (i, f))
        })
        .collect();
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
        let ws = behind(Some(r));
        let _ = writeln!(
            out,
            "\nMerged but not rolled out ({} at {}): {} workloads, {} overdue commits",
            r.branch,
            &r.head[..r.head.len().min(12)],
            ws.len(),
            r.overdue_commits()
        );
        for w in ws {
            let _ = writeln!(
                out,
                "  {} ({})\n    {}",
                w.workload,
                w.files.join(", "),
                images_line(w)
            );
            for c in &w.not_rolled_out {
                let _ = writeln!(out, "    not rolled out: {}", commit_line(c));
            }
            if let Some(c) = &w.deployed_revision {
                let _ = writeln!(out, "    deployed revision: {}", commit_line(c));
            }
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

/// Markdown: a summary table, then one table per finding kind.
pub fn markdown(v: &View<'_>) -> String {
    let mut out = String::new();
    let r = v.report;
    let _ = writeln!(out, "# tollgate audit\n");
    let _ = writeln!(
        out,
        "{} distinct images in {} pods and {} controllers; policy `{}`.\n",
        r.images.len(),
        v.pods,
        v.controllers,
        md(v.policy)
    );
    let _ = writeln!(out, "| finding | images |\n| --- | --- |");
    for &(kind, title) in SECTIONS {
        let _ = writeln!(out, "| {title} | {} |", count(r, kind));
    }
    let _ = writeln!(out, "| Policy findings | {} |", policy_findings(r).len());
    if let Some(ro) = v.rollout {
        let _ = writeln!(
            out,
            "| Commits merged but not rolled out (overdue) | {} |",
            ro.overdue_commits()
        );
    }
    let _ = writeln!(out, "| Could not be checked | {} |", r.errors.len());
    for &(kind, title) in SECTIONS {
        let hits = hits(r, kind);
        if hits.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n## {title}\n\n| image | used by | finding | fix |\n| --- | --- | --- | --- |"
        );
        for (i, f) in hits {
            let uses: Vec<String> = i.image.usages.iter().map(|u| md(&usage_line(u))).collect();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                md(shown(i)),
                uses.join("<br>"),
                md(&f.message),
                md(&f.hint)
            );
        }
    }
    let policy = policy_findings(r);
    if !policy.is_empty() {
        let _ = writeln!(
            out,
            "\n## Policy findings\n\n| level | rule | image | finding | fix |\n| --- | --- | --- | --- | --- |"
        );
        for (i, f) in policy {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} |",
                f.level.as_str(),
                f.kind,
                md(&i.image.image),
                md(&f.message),
                md(&f.hint)
            );
        }
    }
    if let Some(ro) = v.rollout {
        let _ = writeln!(
            out,
            "\n## Merged but not rolled out ({} at `{}`)\n\n| workload | images | not rolled out | deployed revision |\n| --- | --- | --- | --- |",
            md(&ro.branch),
            &ro.head[..ro.head.len().min(12)]
        );
        for w in behind(Some(ro)) {
            let commits: Vec<String> = w
                .not_rolled_out
                .iter()
                .map(|c| md(&commit_line(c)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md(&w.workload.to_string()),
                md(&images_line(w)),
                commits.join("<br>"),
                w.deployed_revision
                    .as_ref()
                    .map(|c| md(&commit_line(c)))
                    .unwrap_or_default()
            );
        }
    }
    if !r.errors.is_empty() {
        let _ = writeln!(out, "\n## Could not be checked\n");
        for e in &r.errors {
            let _ = writeln!(out, "- {}", md(e));
        }
    }
    out
}

/// One self-contained HTML page: inline style, no script, no external asset; every string from
/// the cluster or the registry is escaped (image references are untrusted input).
pub fn html(v: &View<'_>) -> String {
    let r = v.report;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tollgate audit</title>\n<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}code{{font-size:.9em}}.deny{{color:#b00020;font-weight:bold}}.warn{{color:#a05a00}}.ok{{color:#1b5e20}}</style></head><body>\n<h1>tollgate audit</h1>\n<p>{} distinct images in {} pods and {} controllers; policy <code>{}</code>.</p>\n<h2>Summary</h2>\n<table><tr><th>finding</th><th>images</th></tr>\n",
        r.images.len(),
        v.pods,
        v.controllers,
        esc(v.policy)
    );
    let row = |out: &mut String, title: &str, n: usize| {
        let class = if n == 0 { "ok" } else { "deny" };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{n}</td></tr>",
            esc(title)
        );
    };
    for &(kind, title) in SECTIONS {
        row(&mut out, title, count(r, kind));
    }
    row(&mut out, "Policy findings", policy_findings(r).len());
    if let Some(ro) = v.rollout {
        row(
            &mut out,
            "Commits merged but not rolled out (overdue)",
            ro.overdue_commits(),
        );
    }
    row(&mut out, "Could not be checked", r.errors.len());
    out.push_str("</table>\n");
    for &(kind, title) in SECTIONS {
        let hits = hits(r, kind);
        if hits.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<h2>{}</h2>\n<table><tr><th>image</th><th>used by</th><th>finding</th><th>fix</th></tr>",
            esc(title)
        );
        for (i, f) in hits {
            let uses: Vec<String> = i.image.usages.iter().map(|u| esc(&usage_line(u))).collect();
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(shown(i)),
                uses.join("<br>"),
                f.level.as_str(),
                esc(&f.message),
                esc(&f.hint)
            );
        }
        out.push_str("</table>\n");
    }
    let policy = policy_findings(r);
    if !policy.is_empty() {
        out.push_str("<h2>Policy findings</h2>\n<table><tr><th>level</th><th>rule</th><th>image</th><th>finding</th><th>fix</th></tr>\n");
        for (i, f) in policy {
            let _ = writeln!(
                out,
                "<tr><td class=\"{0}\">{0}</td><td><code>{1}</code></td><td><code>{2}</code></td><td>{3}</td><td>{4}</td></tr>",
                f.level.as_str(),
                esc(&f.kind),
                esc(&i.image.image),
                esc(&f.message),
                esc(&f.hint)
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(ro) = v.rollout {
        let _ = writeln!(
            out,
            "<h2>Merged but not rolled out ({} at <code>{}</code>)</h2>\n<table><tr><th>workload</th><th>images</th><th>not rolled out</th><th>deployed revision</th></tr>",
            esc(&ro.branch),
            esc(&ro.head[..ro.head.len().min(12)])
        );
        for w in behind(Some(ro)) {
            let commits: Vec<String> = w
                .not_rolled_out
                .iter()
                .map(|c| esc(&commit_line(c)))
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.workload.to_string()),
                esc(&images_line(w)),
                commits.join("<br>"),
                w.deployed_revision
                    .as_ref()
                    .map(|c| esc(&commit_line(c)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</table>\n");
    }
    if !r.errors.is_empty() {
        out.push_str("<h2>Could not be checked</h2>\n<ul>\n");
        for e in &r.errors {
            let _ = writeln!(out, "<li>{}</li>", esc(e));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn hits<'a>(r: &'a AuditReport, kind: &str) -> Vec<(&'a ImageResult, &'a run::AuditFinding)> {
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
                .filter(|f| is_policy_kind(&f.kind))
                .map(move |f| (i, f))
        })
        .collect()
}

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

    fn report(image: &str) -> AuditReport {
        AuditReport {
            images: vec![ImageResult {
                image: AuditImage {
                    image: image.to_owned(),
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
                    kind: run::RUNNING_UNSERVABLE.into(),
                    level: Level::Deny,
                    message: "the next restart of these 2 pods will fail to pull it".into(),
                    hint: "push it again".into(),
                }],
                registry_requests: 3,
            }],
            errors: vec![],
            registry_requests: 3,
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
}
