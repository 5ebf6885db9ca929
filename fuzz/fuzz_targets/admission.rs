//! An AdmissionReview body as the API server (or anyone who can reach the webhook) sends it:
//! parsed, planned against the default policy and decided, with both settings for unchanged
//! images, and with the registry-backed rules recorded as unavailable, which is what the webhook
//! does when the registry does not answer in time.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use tollgate::admission::decide::{self, Answer, Plan, Settings, UnchangedImages, Verdict, Walked};
use tollgate::admission::{patch, review};
use tollgate::policy::{Policy, default_policy};

static POLICY: LazyLock<Policy> = LazyLock::new(default_policy);

fuzz_target!(|data: &[u8]| {
    let Ok(request) = review::parse(data) else {
        return;
    };
    for unchanged_images in [UnchangedImages::Warn, UnchangedImages::Enforce] {
        let settings = Settings {
            exempt_namespaces: vec!["kube-system".into()],
            unchanged_images,
        };
        let plan = decide::plan(
            &POLICY,
            request.clone(),
            &settings,
            Timestamp::UNIX_EPOCH,
            true,
        );
        let Plan::Checked(mut checked) = plan else {
            continue;
        };
        // One walk per image that parses, as the webhook groups its sites, each timed out.
        let mut walked: Vec<Walked> = Vec::new();
        for site in &checked.report.sites {
            let Some(reference) = site.image.reference() else {
                continue;
            };
            match walked.iter_mut().find(|w| &w.reference == reference) {
                Some(w) => w.sites.push(site.clone()),
                None => walked.push(Walked {
                    reference: reference.clone(),
                    sites: vec![site.clone()],
                    answer: Answer::TimedOut(Duration::from_secs(2)),
                }),
            }
        }
        let answers = decide::merge(&POLICY, &mut checked, &walked);
        assert_eq!(answers.timed_out, walked.len() as u64);
        // Nothing resolved, so nothing to pin.
        assert!(patch::pin_digests(&checked, &walked, &["Pod".into()]).is_none());
        let decision = decide::decide(checked, &settings);
        // A denial always says why; an admission carries no denial message.
        assert_eq!(
            decision.message.is_some(),
            decision.verdict == Verdict::Deny,
            "{decision:#?}"
        );
    }
});
