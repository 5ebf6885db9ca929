//! The report for people: findings grouped by file, then a one-line summary. Colour only when
//! the caller says so (the CLI enables it on a terminal).

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::{Finding, Location, Report, plural};
use crate::policy::Level;
use crate::reference::WrittenImage;

/// Render `report` as text; `color` adds ANSI styles.
pub fn render(report: &Report, color: bool) -> String {
    let paint = |style: Style, s: &str| {
        if color {
            format!("{}{s}{}", style.render(), style.render_reset())
        } else {
            s.to_owned()
        }
    };
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let level_style = |l: Level| match l {
        Level::Deny => AnsiColor::Red.on_default().bold(),
        Level::Warn => AnsiColor::Yellow.on_default().bold(),
        Level::Audit | Level::Off => AnsiColor::Cyan.on_default(),
    };

    let mut out = String::new();
    let mut current_file: Option<Option<&str>> = None;
    let mut current_subject: Option<(&Location, &str)> = None;
    for f in &report.findings {
        let file = f.location.file.as_deref();
        if current_file != Some(file) {
            if current_file.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}", paint(bold, file.unwrap_or("<input>")));
            current_file = Some(file);
            current_subject = None;
        }
        // Findings of one image share a heading: where, which object and container, the image.
        let image = f.image.as_ref().map(WrittenImage::as_str).unwrap_or("");
        if current_subject != Some((&f.location, image)) {
            write_subject(&mut out, f);
            current_subject = Some((&f.location, image));
        }
        let level = paint(level_style(f.level), &format!("{:<4}", f.level.as_str()));
        let _ = writeln!(out, "      {level}  {}  {}", f.rule_id, f.message);
        let _ = writeln!(
            out,
            "            {}",
            paint(dim, &format!("fix: {}", f.hint))
        );
    }
    if !report.exempted.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", paint(bold, "exempted"));
        for e in &report.exempted {
            let f = &e.finding;
            let at = f.location.file_line().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {at}  {}  {}: exempted by {} ({}{})",
                f.rule_id,
                f.image.as_ref().map(WrittenImage::as_str).unwrap_or(""),
                e.exemption.source,
                e.exemption.reason,
                e.exemption
                    .expires
                    .as_deref()
                    .map(|d| format!(", until {d}"))
                    .unwrap_or_default()
            );
        }
    }
    if !report.errors.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        for e in &report.errors {
            let at = match (e.line, e.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", e.file),
                (Some(l), None) => format!("{}:{l}", e.file),
                _ => e.file.clone(),
            };
            let _ = writeln!(
                out,
                "{} {at}: {}",
                paint(level_style(Level::Deny), "error:"),
                e.message
            );
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let s = report.summary();
    let mut line = format!(
        "{}, {} in {} with {} ({}); policy {} ({})",
        plural(s.deny, "denial", "denials"),
        plural(s.warn, "warning", "warnings"),
        plural(s.objects, "object", "objects"),
        plural(s.images, "image", "images"),
        plural(s.files, "file", "files"),
        report.policy.name,
        report.policy.origin
    );
    if s.exempted > 0 {
        line.push_str(&format!("; {} exempted", s.exempted));
    }
    if s.errors > 0 {
        line.push_str(&format!(
            "; {}",
            plural(s.errors, "input error", "input errors")
        ));
    }
    let verdict = if s.errors > 0 || s.deny > 0 {
        level_style(Level::Deny)
    } else {
        AnsiColor::Green.on_default().bold()
    };
    let mark = if s.errors > 0 {
        "error"
    } else if s.deny > 0 {
        "fail"
    } else {
        "pass"
    };
    let _ = writeln!(out, "{} {line}", paint(verdict, mark));
    out
}

fn write_subject(out: &mut String, f: &Finding) {
    let at = match (f.location.line, f.location.column) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => format!("{l}"),
        _ => String::new(),
    };
    let mut subject = String::new();
    if let Some(o) = &f.object {
        subject.push_str(&o.to_string());
    }
    if let Some(c) = &f.container {
        let _ = write!(subject, ", {} {}", c.kind, c.name);
    }
    if let Some(image) = &f.image {
        let _ = write!(subject, ": {image}");
    }
    // A finding about the file itself (no-objects) has neither: the file's heading is enough.
    if !at.is_empty() || !subject.is_empty() {
        let line = format!("  {at:<8}{subject}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
