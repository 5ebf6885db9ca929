//! A registry's tag retention rule, simulated: which tags its next run would delete. A rule
//! that keeps the newest tags of each repository (Harbor's, for one) prunes a version the
//! cluster may still run; to see that coming, tollgate orders tags the way such a rule does and
//! asks whether a running image or a rollback target is among the pruned ones. Pure: tags in,
//! verdicts out.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use jiff::Timestamp;

/// How a rule orders a repository's tags, newest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderBy {
    /// Version-aware: `0.0.99 < 0.0.100 < 0.0.131` (not the string order, where 0.0.99 is the
    /// newest of the three).
    Version,
    /// By push time (Harbor's "most recently pushed").
    PushTime,
}

/// One tag of a repository, as the rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    /// The tag, as the registry's tag list gives it.
    pub tag: String,
    /// When it was pushed, when known (for [`OrderBy::PushTime`]).
    pub pushed: Option<Timestamp>,
}

/// Compare two tags as versions. Two semantic versions (with or without a leading `v`) compare
/// by semver precedence (`1.0.0-rc.1 < 1.0.0`); otherwise by runs: digit runs as numbers, other
/// runs as text, so `build-9 < build-10` and dates in tags order by date. To sort a set, use
/// [`sort_versions`]: mixing the two orders pair by pair is not transitive.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semantic(a), semantic(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => natural(a, b),
    }
}

fn semantic(s: &str) -> Option<semver::Version> {
    semver::Version::parse(s.strip_prefix('v').unwrap_or(s)).ok()
}

/// Sort tags oldest first: by semver precedence when every tag is a semantic version, else by
/// runs for all of them (one total order for the whole set).
pub fn sort_versions<T>(items: &mut [T], tag: impl Fn(&T) -> &str) {
    if items.iter().all(|t| semantic(tag(t)).is_some()) {
        items.sort_by_cached_key(|t| (semantic(tag(t)).expect("checked above"), tag(t).to_owned()));
    } else {
        items.sort_by(|a, b| natural(tag(a), tag(b)));
    }
}

fn natural(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u128>(), q.parse::<u128>()) {
                    // Equal numbers with different zero padding fall back to the text order.
                    (Ok(m), Ok(n)) => m.cmp(&n).then_with(|| p.len().cmp(&q.len())),
                    // A number sorts before text at the same position (1.0 < 1.0a is not
                    // decidable in general; this keeps the order total and stable).
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Maximal runs of ASCII digits and of everything else.
fn runs(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digit = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digit)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

/// The tags a "keep the newest `keep`" rule deletes from `tags`, ordered by `order`. With
/// [`OrderBy::PushTime`], tags whose push time is unknown are treated as the oldest (a rule
/// cannot keep what it cannot date), and ties are broken by version.
pub fn would_delete(tags: &[TagInfo], keep: usize, order: OrderBy) -> BTreeSet<String> {
    let mut sorted: Vec<&TagInfo> = tags.iter().collect();
    // Sorting by version first and then stably by push time breaks push-time ties by version.
    sort_versions(&mut sorted, |t| &t.tag);
    if order == OrderBy::PushTime {
        sorted.sort_by_key(|t| t.pushed);
    }
    let cut = sorted.len().saturating_sub(keep);
    sorted[..cut].iter().map(|t| t.tag.clone()).collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::seed_001_three_digits("0.0.99", "0.0.100")]
    #[case::seed_001_newest("0.0.130", "0.0.131")]
    #[case::v_prefix("v1.9.0", "v1.10.0")]
    #[case::prerelease_before_release("1.0.0-rc.1", "1.0.0")]
    #[case::build_numbers("build-9", "build-10")]
    #[case::dated_tags("2024-01-09-0900", "2024-01-10-0800")]
    #[case::wikimedia_style("1.2.3-20240105", "1.2.3-20240112")]
    #[case::two_part("1.9", "1.10")]
    fn ordered(#[case] older: &str, #[case] newer: &str) {
        assert_eq!(compare_versions(older, newer), Ordering::Less);
        assert_eq!(compare_versions(newer, older), Ordering::Greater);
    }

    #[test]
    fn the_string_order_would_get_seed_001_wrong() {
        // What a lexical sort would keep as "newest": the reason for version-aware ordering.
        assert!("0.0.99" > "0.0.131");
        let mut tags = vec!["0.0.131", "0.0.99", "0.0.100", "0.0.130"];
        sort_versions(&mut tags, |t| t);
        assert_eq!(tags, ["0.0.99", "0.0.100", "0.0.130", "0.0.131"]);
    }

    fn tags(names: &[&str]) -> Vec<TagInfo> {
        names
            .iter()
            .map(|t| TagInfo {
                tag: (*t).to_owned(),
                pushed: None,
            })
            .collect()
    }

    #[test]
    fn keep_one_by_version_prunes_what_seed_001_ran() {
        let deleted = would_delete(
            &tags(&["0.0.130", "0.0.131", "0.0.99"]),
            1,
            OrderBy::Version,
        );
        assert_eq!(
            deleted.into_iter().collect::<Vec<_>>(),
            ["0.0.130", "0.0.99"]
        );
    }

    #[test]
    fn keep_by_push_time_uses_the_push_time_not_the_name() {
        let t = |tag: &str, secs: i64| TagInfo {
            tag: tag.into(),
            pushed: Some(Timestamp::from_second(secs).unwrap()),
        };
        // A hotfix of an old line pushed last is the newest by push time.
        let all = vec![t("2.0.0", 100), t("1.9.1", 300), t("2.1.0", 200)];
        let deleted = would_delete(&all, 2, OrderBy::PushTime);
        assert_eq!(deleted.into_iter().collect::<Vec<_>>(), ["2.0.0"]);
    }

    #[test]
    fn keeping_more_than_there_are_deletes_nothing() {
        assert!(would_delete(&tags(&["1", "2"]), 5, OrderBy::Version).is_empty());
        assert!(would_delete(&[], 1, OrderBy::Version).is_empty());
    }

    #[test]
    fn a_mixed_set_sorts_without_a_cycle() {
        // Pairwise, semver says 1.0.0-rc.1 < 1.0.0 and runs say 1.0.0 < 1.0.0- < 1.0.0-rc.1:
        // a cycle. The set is sorted by one order.
        let mut tags = vec!["1.0.0-rc.1", "1.0.0-", "1.0.0"];
        sort_versions(&mut tags, |t| t);
        assert_eq!(tags, ["1.0.0", "1.0.0-", "1.0.0-rc.1"]);
    }

    proptest::proptest! {
        #[test]
        fn sorting_any_set_never_panics_and_is_deterministic(
            mut v in proptest::collection::vec("v?[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(-[a-z0-9.]{0,4})?", 0..12)
        ) {
            let mut w = v.clone();
            w.reverse();
            sort_versions(&mut v, |t| t.as_str());
            sort_versions(&mut w, |t| t.as_str());
            proptest::prop_assert_eq!(v, w);
        }

        #[test]
        fn the_order_is_total_and_antisymmetric(a in "[a-z0-9.\\-]{0,12}", b in "[a-z0-9.\\-]{0,12}") {
            let ab = compare_versions(&a, &b);
            proptest::prop_assert_eq!(ab, compare_versions(&b, &a).reverse());
            if ab == Ordering::Equal { proptest::prop_assert_eq!(&a, &b); }
        }
    }
}
