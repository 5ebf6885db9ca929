//! How an error prints for people: its message, then each cause it carries (`#[source]`),
//! joined by `: `. Every room prints errors this way, so this sits at the bottom of the tree and
//! depends on nothing (the report re-exports it).

/// An error and its causes, each once, joined by `: ` (as anyhow's `{:#}` prints them). A
/// cause whose text the error above it already shows is left out: tollgate's own errors never
/// repeat their source, but some of the libraries' errors do (kube's kubeconfig errors).
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut above = s.clone();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !above.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        above = text;
        source = cause.source();
    }
    s
}
