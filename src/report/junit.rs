//! JUnit XML: one test case per checked object, failed by its deny-level findings; warnings go
//! to the case's system-out. Findings about a file or the policy rather than an object
//! (no-objects, not-an-object, exemption-expired) are cases of their own, and input errors are
//! cases in error, so that nothing found is missing from the report. CI systems (GitLab,
//! Jenkins, Azure) render this natively.
//!
//! The document is valid under the Jenkins xunit `junit-10.xsd` (the schema Jenkins and pytest
//! validate against), and that schema decides its shape:
//! - `<testsuites>` carries only name, time, tests, failures and errors: the schema has no
//!   `skipped` there.
//! - One `<testsuite>` per checked file, `file=` naming it: `<testsuite>` is the only element
//!   the schema gives a `file` attribute; `<testcase>` has neither `file` nor `line`. The
//!   policy is a suite property.
//! - A case's `classname` is its file, without a line; the lines are in the failure and
//!   system-out text, one `file:line:column` per finding. An object's case name is the object
//!   alone (`Deployment web/api`): CI systems track a test's history by classname and name,
//!   and a name that held the line would make every edit above an object a new test (the
//!   reason SARIF's fingerprints leave the line out too). A finding without an object has no
//!   other identity than its place, so its case name keeps `file:line:column`.
//! - `time` is on every case and suite, and is 0: evaluating an object takes microseconds,
//!   which the schema's millisecond precision writes as 0, and the pure core reads no clock.
//!
//! Written by hand rather than with a JUnit crate: the one in reach always writes `skipped` on
//! `<testsuites>`, and XML 1.0 cannot carry some characters a file or object name may hold
//! (control characters), which are spelled out visibly instead (`\u{1b}`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Finding, Report};
use crate::policy::Level;
use crate::reference::WrittenImage;

/// How a case ended.
enum Outcome {
    Passed,
    /// A deny-level finding: `message` lists the rules, `body` each finding.
    Failed {
        message: String,
        body: String,
    },
    /// An input that could not be read or parsed.
    Error {
        message: String,
        body: String,
    },
}

struct Case {
    name: String,
    outcome: Outcome,
    /// Warn-level findings, for system-out.
    out: Option<String>,
}

/// Render `report` as a JUnit XML document.
pub fn render(report: &Report) -> String {
    // Suites by file, in file order; `None` holds anything without a file.
    let mut suites: BTreeMap<Option<&str>, Vec<Case>> = BTreeMap::new();
    for o in &report.objects {
        let findings: Vec<&Finding> = report.findings_of(o).collect();
        suites
            .entry(o.location.file.as_deref())
            .or_default()
            .push(case(o.object.to_string(), &findings));
    }
    for f in report.findings.iter().filter(|f| f.object.is_none()) {
        let at = f.location.file_line().unwrap_or_else(|| "<input>".into());
        suites
            .entry(f.location.file.as_deref())
            .or_default()
            .push(case(format!("{} {at}", f.rule_id), &[f]));
    }
    for e in &report.errors {
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", e.file),
            (Some(l), None) => format!("{}:{l}", e.file),
            _ => e.file.clone(),
        };
        suites.entry(Some(&e.file)).or_default().push(Case {
            name: format!("parse {}", e.file),
            outcome: Outcome::Error {
                message: e.message.clone(),
                body: format!("{at}: {}", e.message),
            },
            out: None,
        });
    }

    let count = |cases: &[Case], pick: fn(&Outcome) -> bool| -> usize {
        cases.iter().filter(|c| pick(&c.outcome)).count()
    };
    let failed = |o: &Outcome| matches!(o, Outcome::Failed { .. });
    let errored = |o: &Outcome| matches!(o, Outcome::Error { .. });
    let all: Vec<&Case> = suites.values().flatten().collect();
    let mut xml = String::with_capacity(4096);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"tollgate\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"0.000\">",
        all.len(),
        all.iter().filter(|c| failed(&c.outcome)).count(),
        all.iter().filter(|c| errored(&c.outcome)).count(),
    );
    for (file, cases) in &suites {
        let classname = file.unwrap_or("<input>");
        let _ = write!(xml, "    <testsuite name=\"{}\"", attr(classname));
        if let Some(file) = file {
            let _ = write!(xml, " file=\"{}\"", attr(file));
        }
        let _ = writeln!(
            xml,
            " tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"0.000\">",
            cases.len(),
            count(cases, failed),
            count(cases, errored),
        );
        let _ = writeln!(
            xml,
            "        <properties>\n            <property name=\"policy\" value=\"{}\"/>\n            <property name=\"policy-origin\" value=\"{}\"/>\n        </properties>",
            attr(&report.policy.name),
            attr(&report.policy.origin),
        );
        for c in cases {
            write_case(&mut xml, c, classname);
        }
        xml.push_str("    </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// The case of an object (or of one finding without one), from its findings.
fn case(name: String, findings: &[&Finding]) -> Case {
    let (denials, warnings): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.level == Level::Deny);
    let outcome = if denials.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed {
            message: denials
                .iter()
                .map(|f| f.rule_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            body: describe(&denials),
        }
    };
    Case {
        name,
        outcome,
        out: (!warnings.is_empty()).then(|| describe(&warnings)),
    }
}

fn write_case(xml: &mut String, c: &Case, classname: &str) {
    let _ = write!(
        xml,
        "        <testcase name=\"{}\" classname=\"{}\" time=\"0.000\"",
        attr(&c.name),
        attr(classname)
    );
    if matches!(c.outcome, Outcome::Passed) && c.out.is_none() {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    let (tag, kind, message, body) = match &c.outcome {
        Outcome::Passed => ("", "", "", ""),
        Outcome::Failed { message, body } => ("failure", "policy violation", &**message, &**body),
        Outcome::Error { message, body } => ("error", "input error", &**message, &**body),
    };
    if !tag.is_empty() {
        let _ = writeln!(
            xml,
            "            <{tag} message=\"{}\" type=\"{kind}\">{}</{tag}>",
            attr(message),
            text(body)
        );
    }
    if let Some(out) = &c.out {
        let _ = writeln!(xml, "            <system-out>{}</system-out>", text(out));
    }
    xml.push_str("        </testcase>\n");
}

fn describe(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let at = f.location.file_line().unwrap_or_default();
            let image = f
                .image
                .as_ref()
                .map(WrittenImage::as_str)
                .map(|i| format!(" image {i}"))
                .unwrap_or_default();
            format!(
                "{} {} at {at}{image}: {}\n  how to fix: {}",
                f.level, f.rule_id, f.message, f.hint
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether XML 1.0 can carry `c` at all, even as a character reference (its `Char`
/// production): no C0 control but tab, newline and carriage return, and not U+FFFE or U+FFFF.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` as element content: markup characters escaped, characters XML cannot carry written as
/// `\u{1b}`, so that a name holding one stays readable and the document stays well-formed.
fn text(s: &str) -> String {
    escape(s, false)
}

/// `s` as a double-quoted attribute value; also keeps tabs and line breaks, which a parser
/// would otherwise normalise to spaces.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attr => out.push_str("&quot;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\n' if in_attr => out.push_str("&#10;"),
            // A literal carriage return is read back as a newline even in content.
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::policy::RuleId;
    use crate::report::{CheckedObject, InputError, Location, PolicyInfo};
    use crate::workload::ObjectRef;

    #[rstest]
    #[case::plain("apps/web.yaml", "apps/web.yaml", "apps/web.yaml")]
    #[case::markup("a<b>&c", "a&lt;b&gt;&amp;c", "a&lt;b&gt;&amp;c")]
    #[case::quotes("say \"hi\" 'x'", "say \"hi\" 'x'", "say &quot;hi&quot; 'x'")]
    #[case::line_breaks("a\tb\nc\rd", "a\tb\nc&#13;d", "a&#9;b&#10;c&#13;d")]
    #[case::control_characters(
        "esc\u{1b}[31m nul\u{0}",
        "esc\\u{1b}[31m nul\\u{0}",
        "esc\\u{1b}[31m nul\\u{0}"
    )]
    #[case::non_characters("\u{FFFE}\u{FFFF}", "\\u{fffe}\\u{ffff}", "\\u{fffe}\\u{ffff}")]
    #[case::replacement_and_astral("\u{FFFD}😀ü", "\u{FFFD}😀ü", "\u{FFFD}😀ü")]
    #[case::cdata_end("]]>", "]]&gt;", "]]&gt;")]
    fn escaping_keeps_the_document_well_formed(
        #[case] raw: &str,
        #[case] as_text: &str,
        #[case] as_attr: &str,
    ) {
        assert_eq!((text(raw), attr(raw)), (as_text.into(), as_attr.into()));
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn at(file: &str, line: u32) -> Location {
        Location {
            file: Some(file.into()),
            line: Some(line),
            column: Some(3),
            pointer: None,
        }
    }

    fn finding(rule_id: RuleId, level: Level, location: Location, o: Option<&str>) -> Finding {
        Finding {
            rule_id,
            level,
            message: "m".into(),
            hint: "h".into(),
            location,
            object: o.map(object),
            container: None,
            image: None,
        }
    }

    fn report() -> Report {
        let mut r = Report::new(PolicyInfo {
            name: "p".into(),
            origin: "<embedded default>".into(),
        });
        r.files = 3;
        for (file, name) in [("a.yaml", "one"), ("a.yaml", "two"), ("b.yaml", "three")] {
            r.objects.push(CheckedObject {
                object: object(name),
                location: at(file, 1),
                images: 1,
            });
        }
        r.findings = vec![
            finding(RuleId::TagLatest, Level::Deny, at("a.yaml", 4), Some("one")),
            finding(
                RuleId::DigestMissing,
                Level::Warn,
                at("a.yaml", 4),
                Some("one"),
            ),
            finding(
                RuleId::DigestMissing,
                Level::Warn,
                at("b.yaml", 9),
                Some("three"),
            ),
            finding(RuleId::NotAnObject, Level::Deny, at("b.yaml", 12), None),
        ];
        r.errors.push(InputError {
            file: "c.yaml".into(),
            line: Some(2),
            column: None,
            message: "not valid YAML".into(),
        });
        r
    }

    #[test]
    fn one_suite_per_file_with_the_counts_of_its_cases() {
        let xml = render(&report());
        let tags: Vec<&str> = xml
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("<testsuite"))
            .collect();
        assert_eq!(
            tags,
            [
                r#"<testsuites name="tollgate" tests="5" failures="2" errors="1" time="0.000">"#,
                r#"<testsuite name="a.yaml" file="a.yaml" tests="2" failures="1" errors="0" skipped="0" time="0.000">"#,
                r#"<testsuite name="b.yaml" file="b.yaml" tests="2" failures="1" errors="0" skipped="0" time="0.000">"#,
                r#"<testsuite name="c.yaml" file="c.yaml" tests="1" failures="0" errors="1" skipped="0" time="0.000">"#,
            ]
        );
    }

    #[test]
    fn classnames_are_files_and_lines_stay_out_of_object_case_names() {
        let xml = render(&report());
        assert!(
            xml.contains(r#"<testcase name="Pod ns/one" classname="a.yaml" time="0.000">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="not-an-object b.yaml:12:3" classname="b.yaml""#),
            "{xml}"
        );
        assert!(xml.contains("deny tag-latest at a.yaml:4:3"), "{xml}");
        assert!(xml.contains(">c.yaml:2: not valid YAML</error>"), "{xml}");
        assert!(!xml.contains("classname=\"a.yaml:"), "{xml}");
    }

    #[test]
    fn an_empty_report_is_an_empty_but_valid_document() {
        let r = Report::new(PolicyInfo {
            name: "p".into(),
            origin: "x".into(),
        });
        assert_eq!(
            render(&r),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tollgate\" tests=\"0\" failures=\"0\" errors=\"0\" time=\"0.000\">\n</testsuites>\n"
        );
    }
}
