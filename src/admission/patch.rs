//! The mutating webhook's patch: tag references rewritten to `tag@digest`, the digest being the
//! one the registry resolved the tag to during this request's walk. Pure.
//!
//! Only the kinds asked for (Pods by default: pinning the templates of Deployments and other
//! controllers fights GitOps tools, whose users report endless drift loops with webhooks that do
//! it), only images that are new or changed (rewriting an unchanged image on UPDATE would restart
//! its container), and never an image that already has a digest.

use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, ReplaceOperation};
use serde_json::Value;

use super::decide::Checked;
use super::decide::{Answer, Walked};
use crate::report::ImageSite;

/// Whether the image at `site` is one the mutating webhook would pin (before asking the
/// registry): a tag without digest, in a kind of `kinds`, that may change.
pub fn wants_pin(checked: &Checked, site: &ImageSite, kinds: &[String]) -> bool {
    kinds.contains(&site.object.kind)
        && checked.may_patch(site)
        && site
            .image
            .reference()
            .is_some_and(|r| r.tag().is_some() && r.digest().is_none())
}

/// The patch pinning every pinnable image the registry resolved; `None` when there is nothing
/// to change.
pub fn pin_digests(checked: &Checked, walked: &[Walked], kinds: &[String]) -> Option<Patch> {
    let mut ops = Vec::new();
    for w in walked {
        let Answer::Facts(facts) = &w.answer else {
            continue;
        };
        let Some(digest) = &facts.resolution.digest else {
            continue;
        };
        for site in &w.sites {
            if !wants_pin(checked, site, kinds) {
                continue;
            }
            let Some(path) = site
                .location
                .pointer
                .as_deref()
                .and_then(|p| PointerBuf::parse(p).ok())
            else {
                continue;
            };
            ops.push(PatchOperation::Replace(ReplaceOperation {
                path,
                value: Value::String(format!("{}@{digest}", site.image)),
            }));
        }
    }
    // Stable order, whatever order the walks finished in.
    ops.sort_by(|a, b| a.path().cmp(b.path()));
    (!ops.is_empty()).then_some(Patch(ops))
}
