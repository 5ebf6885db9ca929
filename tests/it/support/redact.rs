//! Rendered output made stable for a snapshot: what changes from run to run becomes a
//! placeholder, so the snapshot holds only what the renderer decides.

/// The replacements for one output: the strings a test names (a port, a temporary path, a
/// commit sha, a digest pushed at test time), then, everywhere, RFC 3339 timestamps, ages
/// (`3h 0m ago`, `4d 4h ago`) and the numbers of the JSON keys named by [`Redact::json_number`].
#[derive(Default)]
pub struct Redact {
    texts: Vec<(String, String)>,
    json_numbers: Vec<String>,
}

impl Redact {
    pub fn new() -> Redact {
        Redact::default()
    }

    /// `found` becomes `placeholder` wherever it appears; earlier replacements go first.
    pub fn text(mut self, found: impl Into<String>, placeholder: &str) -> Redact {
        let found = found.into();
        assert!(!found.is_empty(), "an empty string cannot be redacted");
        self.texts.push((found, placeholder.to_owned()));
        self
    }

    /// A digest (`sha256:` and 64 hex digits) becomes `[name]`, and so does its short form
    /// (`sha256:` and 12 hex digits), which reports print before an ellipsis.
    pub fn digest(self, digest: &str, name: &str) -> Redact {
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        let placeholder = format!("[{name}]");
        self.text(digest, &placeholder)
            .text(&digest[..19], &placeholder)
    }

    /// A commit sha becomes `[name]`, and so does its short form (12 hex digits).
    pub fn commit(self, sha: &str, name: &str) -> Redact {
        assert_eq!(sha.len(), 40, "{sha}");
        let placeholder = format!("[{name}]");
        self.text(sha, &placeholder).text(&sha[..12], &placeholder)
    }

    /// The number after `"key": ` becomes `"[key]"` (pretty-printed JSON).
    pub fn json_number(mut self, key: &str) -> Redact {
        self.json_numbers.push(key.to_owned());
        self
    }

    pub fn apply(&self, output: &str) -> String {
        let mut out = output.to_owned();
        for (found, placeholder) in &self.texts {
            out = out.replace(found, placeholder);
        }
        for key in &self.json_numbers {
            let prefix = format!("\"{key}\": ");
            out = replace_after(&out, &prefix, &format!("\"[{key}]\""), |rest| {
                rest.bytes().take_while(u8::is_ascii_digit).count()
            });
        }
        out = replace_matches(&out, "[time]", timestamp_len);
        replace_matches(&out, "[age] ago", age_len)
    }
}

/// Every `prefix` followed by text of `len(rest) > 0` bytes keeps the prefix and has that text
/// replaced.
fn replace_after(s: &str, prefix: &str, with: &str, len: impl Fn(&str) -> usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let after = i + prefix.len();
        out.push_str(&rest[..after]);
        let n = len(&rest[after..]);
        if n > 0 {
            out.push_str(with);
        }
        rest = &rest[after + n..];
    }
    out.push_str(rest);
    out
}

/// Every place where `len` matches (a length in bytes, 0 for no match) becomes `with`.
fn replace_matches(s: &str, with: &str, len: impl Fn(&[u8]) -> usize) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        // Matches start at a digit that does not continue a number.
        let starts = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        match if starts { len(&bytes[i..]) } else { 0 } {
            0 => i += 1,
            n => {
                out.push_str(&s[copied..i]);
                out.push_str(with);
                i += n;
                copied = i;
            }
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Length of `b`'s leading digits.
fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `2026-04-19T10:00:00Z`, with optional fractional seconds and a `Z` or `±hh:mm` offset.
fn timestamp_len(b: &[u8]) -> usize {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len()
        || !shape.iter().zip(b).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            s => s == c,
        })
    {
        return 0;
    }
    let mut n = shape.len();
    if b.get(n) == Some(&b'.') && digits(&b[n + 1..]) > 0 {
        n += 1 + digits(&b[n + 1..]);
    }
    match b.get(n) {
        Some(b'Z') => n + 1,
        Some(b'+' | b'-') if b.len() >= n + 6 && b[n + 3] == b':' => n + 6,
        _ => 0,
    }
}

/// `3h 0m ago`, `4d 4h ago`: one or more amounts of days, hours, minutes or seconds, as
/// reports print an age.
fn age_len(b: &[u8]) -> usize {
    let mut n = 0;
    loop {
        let d = digits(&b[n..]);
        if d == 0 || !matches!(b.get(n + d), Some(b'd' | b'h' | b'm' | b's')) {
            return 0;
        }
        n += d + 1;
        if b[n..].starts_with(b" ago") {
            return n + 4;
        }
        if b.get(n) != Some(&b' ') {
            return 0;
        }
        n += 1;
    }
}
