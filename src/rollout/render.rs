//! The rollout report for people. `tollgate rollout` prints [`text`]; the audit's rollout
//! section (text, Markdown, HTML) is made of the same lines, so a commit reads the same in both.
//! Pure: a report in, strings out.

use std::fmt::Write as _;

use crate::reference::WrittenImage;
use crate::report::plural;

use super::{ImagePair, ReportCommit, RolloutReport, Status, WorkloadReport};

/// The whole report: each workload that is not in sync, then a summary line.
pub fn text(report: &RolloutReport) -> String {
    let mut out = String::new();
    for w in behind(report) {
        write_workload(&mut out, w, &report.branch, "");
    }
    let in_sync = report.workloads.len() - behind(report).len();
    let _ = writeln!(
        out,
        "{} on {} ({}): {} in sync, {} behind; {} not rolled out after the {:#} grace period",
        plural(report.workloads.len(), "workload", "workloads"),
        report.branch,
        short_sha(&report.head),
        in_sync,
        report.workloads.len() - in_sync,
        plural(report.overdue_commits(), "commit", "commits"),
        jiff::SignedDuration::from_secs(i64::try_from(report.grace_seconds).unwrap_or(i64::MAX)),
    );
    out
}

/// One workload that is not in sync: a heading line, then its images and commits one level
/// deeper, every line starting with `indent`.
pub fn write_workload(out: &mut String, w: &WorkloadReport, branch: &str, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}{}: {} ({})",
        w.workload,
        state(w),
        w.files.join(", ")
    );
    for p in &w.images {
        let _ = writeln!(out, "{indent}  {}", pair_line(p));
    }
    for c in &w.not_rolled_out {
        let _ = writeln!(out, "{indent}  {}", commit_entry(c));
    }
    let _ = writeln!(out, "{indent}  deployed revision: {}", deployed(w, branch));
}

/// The workloads of a report that are not in sync, in report order.
pub fn behind(r: &RolloutReport) -> Vec<&WorkloadReport> {
    r.workloads
        .iter()
        .filter(|w| w.status != Status::InSync)
        .collect()
}

/// How a workload that is not in sync stands.
pub fn state(w: &WorkloadReport) -> &'static str {
    match w.status {
        Status::NotLive => "declared but not running",
        Status::Behind => "not rolled out",
        Status::InSync => "in sync",
    }
}

/// `api: desired r.org/api:2, live r.org/api:1`.
pub fn pair_line(p: &ImagePair) -> String {
    format!(
        "{}desired {}, live {}",
        p.container
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default(),
        p.desired,
        p.live.as_ref().map_or("-", WrittenImage::as_str),
    )
}

/// A commit not rolled out, marked by whether the grace period is over.
pub fn commit_entry(c: &ReportCommit) -> String {
    let mark = if c.overdue {
        "not rolled out"
    } else {
        "pending (within grace)"
    };
    format!("{mark}: {}", commit_line(c))
}

/// The deployed revision's commit, or that none was found on the branch.
pub fn deployed(w: &WorkloadReport, branch: &str) -> String {
    match &w.deployed_revision {
        Some(c) => commit_line(c),
        None => format!("none found on {branch}"),
    }
}

/// `0123456789ab "subject" by Name <email> at 2026-01-01T00:00:00Z (3d 4h ago)`.
pub fn commit_line(c: &ReportCommit) -> String {
    format!(
        "{} {:?} by {} at {} ({} ago)",
        short_sha(&c.sha),
        c.subject,
        c.author,
        c.time,
        age(c.age_seconds)
    )
}

/// The first 12 hex digits of a commit id.
pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// A rounded age for people: 3d 4h, 2h 5m, 12m, 40s.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::seconds(40, "40s")]
    #[case::minutes(12 * 60 + 5, "12m")]
    #[case::hours(2 * 3600 + 5 * 60, "2h 5m")]
    #[case::days(3 * 86_400 + 4 * 3600 + 59, "3d 4h")]
    #[case::future_commit(-30, "0s")]
    fn ages(#[case] secs: i64, #[case] text: &str) {
        assert_eq!(age(secs), text);
    }
}
