//! What an audit says of each running digest, for the catalog's registry events: the registry
//! could serve it end to end, could not, or did not answer. Pure: the report in, a
//! [`Servability`] out.

use crate::audit::run::{AuditReport, CheckOutcome};
use crate::catalog::Servability;
use crate::policy::{AuditKind, FindingKind};
use crate::reference::ImageRef;

/// Longest detail kept with an event: the walk's message names the missing pieces, and a
/// registry's answer is attacker input that must not grow the table without bound.
const DETAIL_MAX: usize = 1000;

/// The running digests of `report` the registry could and could not serve. A digest whose
/// walk could not finish (the registry did not answer) is in neither list: nothing is claimed
/// about it. Pure.
pub fn servability(report: &AuditReport) -> Servability {
    let running_unservable = FindingKind::from(AuditKind::RunningUnservable);
    let mut out = Servability::default();
    for image in &report.images {
        let Some(running) = image
            .image
            .running
            .as_ref()
            .filter(|r| r.digest().is_some())
        else {
            continue;
        };
        let seen = |r: &ImageRef| r.digest() == running.digest();
        if let Some(f) = image.findings.iter().find(|f| f.kind == running_unservable) {
            if !out.unservable.iter().any(|(r, _)| seen(r)) {
                let mut detail = f.message.clone();
                if detail.len() > DETAIL_MAX {
                    let mut end = DETAIL_MAX;
                    while !detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    detail.truncate(end);
                    detail.push('…');
                }
                out.unservable.push((running.clone(), detail));
            }
        } else if image
            .checks
            .iter()
            .any(|c| c.kind == running_unservable && c.outcome == CheckOutcome::Passed)
            && !out.servable.iter().any(seen)
        {
            out.servable.push(running.clone());
        }
    }
    // One digest found unservable under one name and servable under another (pushed to two
    // repositories): the loss is what matters.
    out.servable
        .retain(|r| !out.unservable.iter().any(|(u, _)| u.digest() == r.digest()));
    out
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::audit::run::{AuditFinding, Check, ImageResult};
    use crate::audit::{AuditImage, Role, Usage};
    use crate::policy::Level;
    use crate::reference::WrittenImage;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[derive(Clone, Copy)]
    enum Walk {
        Unservable,
        Passed,
        Unchecked,
    }

    fn result(running: Option<&str>, walk: Walk) -> ImageResult {
        let kind = FindingKind::from(AuditKind::RunningUnservable);
        let check = |outcome| Check {
            kind,
            level: Level::Deny,
            outcome,
            message: String::new(),
        };
        let (findings, checks) = match walk {
            Walk::Unservable => (
                vec![AuditFinding {
                    kind,
                    level: Level::Deny,
                    message: "the next restart of this pod will fail to pull it: 404".into(),
                    hint: String::new(),
                }],
                vec![],
            ),
            Walk::Passed => (vec![], vec![check(CheckOutcome::Passed)]),
            Walk::Unchecked => (vec![], vec![check(CheckOutcome::Unchecked)]),
        };
        ImageResult {
            image: AuditImage {
                image: WrittenImage::new("r.example.org/app:1"),
                running: running.map(|r| r.parse().unwrap()),
                usages: vec![Usage {
                    role: Role::Running,
                    namespace: "web".into(),
                    workload: "Deployment/app".into(),
                    container: "app".into(),
                    pods: 1,
                }],
            },
            findings,
            registry_requests: 0,
            checks,
        }
    }

    fn report(images: Vec<ImageResult>) -> AuditReport {
        AuditReport {
            images,
            errors: vec![],
            registry_requests: 0,
            retention_not_simulated: vec![],
            registry_checked: true,
        }
    }

    #[rstest]
    #[case::lost(vec![(Some("r.example.org/app"), Walk::Unservable)], 1, 0)]
    #[case::served(vec![(Some("r.example.org/app"), Walk::Passed)], 0, 1)]
    #[case::unanswered_claims_nothing(vec![(Some("r.example.org/app"), Walk::Unchecked)], 0, 0)]
    #[case::no_running_digest_claims_nothing(vec![(None, Walk::Unservable)], 0, 0)]
    #[case::one_digest_under_two_names_lost_in_one(
        vec![(Some("r.example.org/app"), Walk::Passed), (Some("r.example.org/mirror"), Walk::Unservable)],
        1, 0
    )]
    #[case::one_digest_under_two_tags_is_one(
        vec![(Some("r.example.org/app"), Walk::Unservable), (Some("r.example.org/app"), Walk::Unservable)],
        1, 0
    )]
    fn what_an_audit_says_of_running_digests(
        #[case] images: Vec<(Option<&str>, Walk)>,
        #[case] unservable: usize,
        #[case] servable: usize,
    ) {
        let images = images
            .into_iter()
            .map(|(repo, walk)| result(repo.map(|r| format!("{r}@{A}")).as_deref(), walk))
            .collect();
        let s = servability(&report(images));
        assert_eq!(
            (s.unservable.len(), s.servable.len()),
            (unservable, servable)
        );
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        let mut r = result(Some(&format!("r.example.org/app@{A}")), Walk::Unservable);
        r.findings[0].message = "é".repeat(DETAIL_MAX);
        let s = servability(&report(vec![r]));
        let detail = &s.unservable[0].1;
        assert!(
            detail.len() <= DETAIL_MAX + '…'.len_utf8(),
            "{}",
            detail.len()
        );
        assert!(detail.ends_with('…'));
    }
}
