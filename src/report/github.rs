//! GitHub Actions workflow commands (`::error file=…,line=…::message`), which the Actions
//! runner turns into annotations on the pull request's changed lines.

use std::fmt::Write;

use super::Report;
use crate::policy::Level;

/// Render `report` as workflow commands, one per finding and input error, then a summary line.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let command = match f.level {
            Level::Deny => "error",
            Level::Warn => "warning",
            Level::Audit | Level::Off => "notice",
        };
        let mut props = Vec::new();
        if let Some(file) = &f.location.file {
            props.push(format!("file={}", escape_property(file)));
        }
        if let Some(line) = f.location.line {
            props.push(format!("line={line}"));
        }
        if let Some(col) = f.location.column {
            props.push(format!("col={col}"));
        }
        props.push(format!(
            "title={}",
            escape_property(&format!("tollgate {}", f.rule_id))
        ));
        let mut text = f.message.clone();
        if let Some(o) = &f.object {
            let _ = write!(text, " [{o}]");
        }
        let _ = write!(text, "\nhow to fix: {}", f.hint);
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            props.join(","),
            escape_data(&text)
        );
    }
    for e in &report.errors {
        let mut props = vec![format!("file={}", escape_property(&e.file))];
        if let Some(line) = e.line {
            props.push(format!("line={line}"));
        }
        if let Some(col) = e.column {
            props.push(format!("col={col}"));
        }
        props.push("title=tollgate input error".to_owned());
        let _ = writeln!(
            out,
            "::error {}::{}",
            props.join(","),
            escape_data(&e.message)
        );
    }
    let s = report.summary();
    let _ = writeln!(
        out,
        "tollgate: {} denied, {}, {} exempted, {} in {} ({})",
        s.deny,
        super::plural(s.warn, "warning", "warnings"),
        s.exempted,
        super::plural(s.errors, "input error", "input errors"),
        super::plural(s.objects, "object", "objects"),
        super::plural(s.files, "file", "files")
    );
    out
}

/// Message text: `%`, CR and LF are escaped (the runner's `escapeData`).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Property values also escape `:` and `,` (the runner's `escapeProperty`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_the_actions_runner_expects() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}
