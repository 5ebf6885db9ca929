//! Which exposition format `/metrics` answers in, chosen from the scraper's `Accept`, and the
//! Prometheus text format 0.0.4 made from the OpenMetrics text prometheus-client encodes.
//!
//! prometheus-client encodes OpenMetrics text only. The two formats write the same samples,
//! and differ in the metadata:
//! - A counter's family is named without `_total` in OpenMetrics (`# TYPE x counter`, sample
//!   `x_total`), with it in the text format, where the family is the sample's name. A text
//!   parser given OpenMetrics sees `x_total` as a family of its own, without help or type:
//!   what `promtool check metrics` reported for every counter.
//! - `# UNIT` and `# EOF` are OpenMetrics only; `unknown` is the text format's `untyped`; an
//!   `info` family `x` is the gauge `x_info`.
//!
//! Pure: text in, text out.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics text 1.0.0, for clients that ask for it (Prometheus does by default).
    OpenMetrics,
    /// The Prometheus text format 0.0.4: what every client reads, the default.
    Text,
}

impl Exposition {
    /// The format to answer an `Accept` header with: OpenMetrics 1.0.0 when the client asks for
    /// it (`application/openmetrics-text`, with no version or 1.0.0) and prefers it to the
    /// text format; else the text format, which is also the answer to no header, `*/*`, and
    /// anything this server does not speak (it never answers 406: a scraper that asked for
    /// something else still reads the text format, or says why it cannot).
    ///
    /// Preference is by `q` (1 when not given), then by the order in the header; `q=0`
    /// refuses a format.
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        let mut best: Option<(f32, Exposition)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0_f32;
            let mut version = None;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse().unwrap_or(0.0),
                    "version" => version = Some(v.to_owned()),
                    _ => {}
                }
            }
            let offer = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0")) => Exposition::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Exposition::Text,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, offer));
            }
        }
        best.map_or(Exposition::Text, |(_, e)| e)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The text format 0.0.4 of an OpenMetrics exposition as prometheus-client writes it: the
/// metadata of each family renamed to what its samples are called, OpenMetrics-only lines
/// dropped; samples are written alike in both.
pub fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let Some(rest) = line.strip_prefix("# HELP ") else {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                // A TYPE without its HELP (prometheus-client always writes both).
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                let (name, kind) = text_family(name, kind);
                push_line(&mut out, &format!("# TYPE {name} {kind}"));
            } else {
                push_line(&mut out, line);
            }
            continue;
        };
        // HELP comes before TYPE, and the name depends on the type.
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        let kind = lines
            .peek()
            .and_then(|next| next.strip_prefix("# TYPE "))
            .and_then(|t| t.split_once(' '))
            .filter(|(n, _)| *n == name)
            .map(|(_, kind)| kind);
        let Some(kind) = kind else {
            push_line(&mut out, line);
            continue;
        };
        lines.next();
        let (name, kind) = text_family(name, kind);
        push_line(&mut out, &format!("# HELP {name} {help}"));
        push_line(&mut out, &format!("# TYPE {name} {kind}"));
    }
    out
}

/// A family's name and type in the text format.
fn text_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_owned(), "gauge"),
        "histogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        _ => (name.to_owned(), "untyped"),
    }
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::no_header(None, Exposition::Text)]
    #[case::anything("*/*", Exposition::Text)]
    #[case::text_plain("text/plain", Exposition::Text)]
    #[case::text_0_0_4("text/plain; version=0.0.4", Exposition::Text)]
    #[case::openmetrics("application/openmetrics-text", Exposition::OpenMetrics)]
    #[case::openmetrics_1_0_0(
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        Exposition::OpenMetrics
    )]
    #[case::prometheus_2_default(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        Exposition::OpenMetrics
    )]
    #[case::prometheus_text_first(
        "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1",
        Exposition::Text
    )]
    #[case::only_openmetrics_0_0_1_is_not_served(
        "application/openmetrics-text;version=0.0.1",
        Exposition::Text
    )]
    #[case::refused_openmetrics("application/openmetrics-text;q=0, */*", Exposition::Text)]
    #[case::equal_q_the_first_wins(
        "application/openmetrics-text, text/plain",
        Exposition::OpenMetrics
    )]
    #[case::case_and_spaces(
        " Application/OpenMetrics-Text ; Version=1.0.0 ; Q=0.9 , text/plain;q=0.8",
        Exposition::OpenMetrics
    )]
    #[case::protobuf_only(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
        Exposition::Text
    )]
    #[case::garbage("\u{0};;==,", Exposition::Text)]
    fn the_text_format_unless_openmetrics_is_asked_for(
        #[case] accept: impl Into<Option<&'static str>>,
        #[case] want: Exposition,
    ) {
        assert_eq!(Exposition::negotiate(accept.into()), want);
    }

    #[test]
    fn counters_are_named_for_their_samples_and_openmetrics_only_lines_go() {
        let om = "\
# HELP tollgate_findings Findings.
# TYPE tollgate_findings counter
tollgate_findings_total{rule=\"tag-latest\",level=\"deny\"} 1
# HELP tollgate_certificate_expiry_seconds Time until it expires.
# TYPE tollgate_certificate_expiry_seconds gauge
# UNIT tollgate_certificate_expiry_seconds seconds
tollgate_certificate_expiry_seconds 3600.0
# HELP tollgate_admission_duration_seconds Time.
# TYPE tollgate_admission_duration_seconds histogram
# UNIT tollgate_admission_duration_seconds seconds
tollgate_admission_duration_seconds_sum{webhook=\"validate\"} 0.0
tollgate_admission_duration_seconds_count{webhook=\"validate\"} 0
tollgate_admission_duration_seconds_bucket{le=\"+Inf\",webhook=\"validate\"} 0
# HELP build Build.
# TYPE build info
build_info{version=\"1\"} 1
# HELP odd Odd.
# TYPE odd unknown
odd 2
# EOF
";
        assert_eq!(
            to_text(om),
            "\
# HELP tollgate_findings_total Findings.
# TYPE tollgate_findings_total counter
tollgate_findings_total{rule=\"tag-latest\",level=\"deny\"} 1
# HELP tollgate_certificate_expiry_seconds Time until it expires.
# TYPE tollgate_certificate_expiry_seconds gauge
tollgate_certificate_expiry_seconds 3600.0
# HELP tollgate_admission_duration_seconds Time.
# TYPE tollgate_admission_duration_seconds histogram
tollgate_admission_duration_seconds_sum{webhook=\"validate\"} 0.0
tollgate_admission_duration_seconds_count{webhook=\"validate\"} 0
tollgate_admission_duration_seconds_bucket{le=\"+Inf\",webhook=\"validate\"} 0
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1\"} 1
# HELP odd Odd.
# TYPE odd untyped
odd 2
"
        );
    }
}
