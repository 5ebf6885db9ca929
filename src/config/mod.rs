//! Reading tollgate's own YAML files (policies, `.tollgate.yaml`) strictly: every unknown key and
//! the first type error are reported with their line, all in one run, so that a file with three
//! typos gets three messages rather than three round trips.

pub mod repo;

use std::fmt;

use serde::de::DeserializeOwned;

use crate::yaml::{self, Document, Pos, YamlError};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<Pos>,
    /// JSON pointer of the offending field (`/spec/registries/0/prefix`).
    pub pointer: String,
    pub message: String,
}

impl From<YamlError> for Problem {
    /// A file that is not YAML at all: one problem, at the position the parser stopped.
    fn from(e: YamlError) -> Self {
        Problem {
            pos: Some(e.pos),
            pointer: String::new(),
            message: e.message,
        }
    }
}

/// `{what} {origin} is invalid (N problems):` and every problem of the file, one per line as
/// `origin:line:column: message (at pointer)`.
pub fn fmt_invalid(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    origin: &str,
    problems: &[Problem],
) -> fmt::Result {
    let n = problems.len();
    write!(
        f,
        "{what} {origin} is invalid ({n} problem{}):",
        if n == 1 { "" } else { "s" }
    )?;
    for p in problems {
        match p.pos {
            Some(pos) => write!(f, "\n  {origin}:{}:{}: {}", pos.line, pos.column, p.message)?,
            None => write!(f, "\n  {origin}: {}", p.message)?,
        }
        if !p.pointer.is_empty() {
            write!(f, " (at {})", p.pointer)?;
        }
    }
    Ok(())
}

/// Deserialize `doc` into `T`. Unknown keys are collected as problems (with a "did you mean"
/// among `known_keys`) rather than failing at the first; a type error ends deserialization and
/// is the last problem. Returns the value when it deserialized, and the problems either way.
pub fn deserialize_strict<T: DeserializeOwned>(
    doc: &Document,
    known_keys: &[&str],
) -> (Option<T>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_pointer(&path));
    let de = serde_ignored::Deserializer::new(&doc.value, &mut on_unknown);
    let value: Result<T, _> = serde_path_to_error::deserialize(de);
    for pointer in unknown {
        let key = pointer.rsplit('/').next().unwrap_or_default().to_owned();
        problems.push(Problem {
            pos: doc.positions.nearest(&pointer),
            message: format!("unknown key {key:?}{}", suggest_key(&key, known_keys)),
            pointer,
        });
    }
    match value {
        Ok(v) => (Some(v), problems),
        Err(e) => {
            let pointer = error_pointer(e.path());
            problems.push(Problem {
                pos: doc.positions.nearest(&pointer),
                message: e.into_inner().to_string(),
                pointer,
            });
            problems.sort_by_key(|p| p.pos);
            (None, problems)
        }
    }
}

fn ignored_pointer(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}/{index}", ignored_pointer(parent)),
        P::Map { parent, key } => {
            let mut s = ignored_pointer(parent);
            s.push('/');
            yaml::push_escaped(&mut s, key);
            s
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_pointer(parent)
        }
    }
}

fn error_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                s.push('/');
                yaml::push_escaped(&mut s, key);
            }
            Segment::Unknown => {}
        }
    }
    s
}

/// "did you mean" for a misspelt key: the closest key the format has, if it is close.
pub fn suggest_key(key: &str, known_keys: &[&str]) -> String {
    known_keys
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}
