//! JUnit XML: one test case per checked object, failed by its deny-level findings; warnings go
//! to the case's system-out. Input errors are test cases in error. CI systems (GitLab, Jenkins,
//! Azure) render this natively.

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::Report;
use crate::policy::Level;
use crate::reference::WrittenImage;

/// Render `report` as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let mut junit = JUnit::new("tollgate");
    let mut suite = TestSuite::new(format!("tollgate policy {}", report.policy.name));
    for o in &report.objects {
        let findings: Vec<_> = report.findings_of(o).collect();
        let denials: Vec<_> = findings.iter().filter(|f| f.level == Level::Deny).collect();
        let status = if denials.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(
                denials
                    .iter()
                    .map(|f| f.rule_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            s.set_type("policy violation");
            s.set_description(describe(&denials.iter().map(|f| **f).collect::<Vec<_>>()));
            s
        };
        let mut case = TestCase::new(o.object.to_string(), status);
        case.set_classname(o.location.file_line().unwrap_or_else(|| "<input>".into()));
        let warnings: Vec<_> = findings
            .iter()
            .filter(|f| f.level != Level::Deny)
            .copied()
            .collect();
        if !warnings.is_empty() {
            case.set_system_out(describe(&warnings));
        }
        suite.add_test_case(case);
    }
    // Findings about a file or the policy rather than an object (no-objects, not-an-object,
    // exemption-expired): one case each, so that no finding is missing from the report.
    for f in report.findings.iter().filter(|f| f.object.is_none()) {
        let status = if f.level == Level::Deny {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(f.rule_id.as_str());
            s.set_type("policy violation");
            s.set_description(describe(&[f]));
            s
        } else {
            TestCaseStatus::success()
        };
        let at = f.location.file_line().unwrap_or_else(|| "<input>".into());
        let mut case = TestCase::new(format!("{} {at}", f.rule_id), status);
        case.set_classname(at);
        if f.level != Level::Deny {
            case.set_system_out(describe(&[f]));
        }
        suite.add_test_case(case);
    }
    for e in &report.errors {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(e.message.clone());
        s.set_type("input error");
        let mut case = TestCase::new(format!("parse {}", e.file), s);
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", e.file),
            (Some(l), None) => format!("{}:{l}", e.file),
            _ => e.file.clone(),
        };
        case.set_classname(at);
        suite.add_test_case(case);
    }
    junit.add_test_suite(suite);
    junit
        .to_string()
        .expect("JUnit serialization to a string does not fail")
}

fn describe(findings: &[&super::Finding]) -> String {
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
