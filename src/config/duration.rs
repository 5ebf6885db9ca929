//! The one duration syntax of every flag and config field: a number and a unit, or several
//! (`250ms`, `5s`, `1m30s`, `1h`, `2d`); decimals are allowed (`1.5s`). A bare number is a
//! number of seconds: still accepted, and reported as deprecated, because `30` reads as
//! minutes to some and as seconds to others.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration like 250ms, 5s, 1m30s or 1h")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
}

/// A parsed duration, and whether it was written the deprecated way (a bare number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The duration.
    pub duration: Duration,
    /// It was a bare number of seconds.
    pub bare_seconds: bool,
}

/// What a bare number of seconds is told, where `text` was written.
pub fn deprecation(text: &str) -> String {
    format!(
        "a duration without a unit ({text:?}) is deprecated; write {}",
        suggestion(text)
    )
}

fn suggestion(text: &str) -> String {
    format!("{}s", text.trim())
}

/// Parse `text`. Zero is a duration (`0s` turns some things off); callers that need a positive
/// one say so.
pub fn parse(text: &str) -> Result<Parsed, DurationError> {
    let fail = || DurationError {
        text: text.to_owned(),
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(fail());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(Parsed {
            duration: seconds(secs).ok_or_else(fail)?,
            bare_seconds: true,
        });
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(fail)?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let n: f64 = number.parse().map_err(|_| fail())?;
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(fail()),
        };
        total += n * scale;
        rest = after;
    }
    Ok(Parsed {
        duration: seconds(total).ok_or_else(fail)?,
        bare_seconds: false,
    })
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..1e12).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::milliseconds("250ms", 0.25, false)]
    #[case::seconds("5s", 5.0, false)]
    #[case::decimal_seconds("1.5s", 1.5, false)]
    #[case::minutes("2m", 120.0, false)]
    #[case::compound("1h30m", 5400.0, false)]
    #[case::compound_with_seconds("2m30s", 150.0, false)]
    #[case::days("1d", 86_400.0, false)]
    #[case::zero("0s", 0.0, false)]
    #[case::bare_seconds("10", 10.0, true)]
    #[case::bare_decimal("2.5", 2.5, true)]
    #[case::surrounding_space(" 30s ", 30.0, false)]
    fn durations(#[case] text: &str, #[case] secs: f64, #[case] bare: bool) {
        let p = parse(text).unwrap();
        assert_eq!(p.duration.as_secs_f64(), secs, "{text}");
        assert_eq!(p.bare_seconds, bare, "{text}");
    }

    #[rstest]
    #[case::empty("")]
    #[case::negative("-1s")]
    #[case::unknown_unit("10 parsecs")]
    #[case::word("soon")]
    #[case::unit_only("s")]
    #[case::space_inside("1 h")]
    #[case::not_finite("inf")]
    fn not_durations(#[case] text: &str) {
        let e = parse(text).unwrap_err();
        assert!(
            e.to_string().contains("is not a duration like 250ms"),
            "{e}"
        );
    }

    #[test]
    fn the_deprecation_says_what_to_write() {
        assert_eq!(
            deprecation("30"),
            "a duration without a unit (\"30\") is deprecated; write 30s"
        );
    }
}
