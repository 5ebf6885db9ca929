//! tollgate's own YAML files (policies, `.tollgate.yaml`), read strictly by one reader and one
//! validator: every unknown key and every invalid value is reported with its line, all in one
//! run, so that a file with three typos gets three messages rather than three round trips.
//!
//! - this module: [`read`] (YAML, then serde with unknown keys collected), the shared
//!   [`Validator`] the formats' second step reports through, and the error that lists it all;
//! - [`keys`]: the keys each place accepts, derived from the types (for "did you mean");
//! - [`duration`]: the one duration syntax of every flag and config field;
//! - [`repo`]: the deploy repository's `.tollgate.yaml`. The policy format is in
//!   [`crate::policy`].
//!
//! Pure: text in, values or problems out.

pub mod duration;
pub mod keys;
pub mod repo;

use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobBuilder};
use serde::de::DeserializeOwned;

use crate::yaml::{self, Pos, Positions, Record, YamlError};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is, when the file says.
    pub pos: Option<Pos>,
    /// JSON pointer of the offending field (`/spec/registries/0/prefix`).
    pub pointer: String,
    /// What is wrong, and what to write instead where that is known.
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

impl Problem {
    /// `origin:line:column: message (at pointer)`.
    pub fn located(&self, origin: &str) -> String {
        let mut s = match self.pos {
            Some(pos) => format!("{origin}:{}:{}: {}", pos.line, pos.column, self.message),
            None => format!("{origin}: {}", self.message),
        };
        if !self.pointer.is_empty() {
            s.push_str(&format!(" (at {})", self.pointer));
        }
        s
    }
}

/// A config file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// What the file is, for the message (`policy`, `repository config`).
    pub what: &'static str,
    /// Where it came from (a path, or `<embedded default>`).
    pub origin: String,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

/// `{what} {origin} is invalid (N problems):` and every problem of the file, one per line as
/// `origin:line:column: message (at pointer)`.
impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} {} is invalid ({n} problem{}):",
            self.what,
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", p.located(&self.origin))?;
        }
        Ok(())
    }
}

/// How many values with the wrong type one read removes and reads past before it stops: a file
/// is not expected to have more, and each retry deserializes the whole file again.
const MAX_TYPE_ERRORS: usize = 64;

/// Read `text` as a `T`: YAML first (an empty file is an empty mapping), then serde, with every
/// unknown key collected as a problem (with a "did you mean" among the keys valid at that
/// place) rather than failing at the first. A value of the wrong type is reported, removed, and
/// the file read again without it, so that one type error does not hide the problems after it
/// (the format's own checks among them); a required field it leaves missing is not reported
/// twice. The [`Validator`] carries the positions and every problem found so far, for the
/// format's own checks; [`Validator::finish`] fails if there is any.
pub fn read<T: DeserializeOwned>(text: &str) -> Result<(T, Validator), Vec<Problem>> {
    let doc = yaml::load_one(text, Record::All).map_err(|e| vec![Problem::from(e)])?;
    let doc = if doc.value.is_null() {
        yaml::load_one("{}", Record::All).expect("an empty mapping loads")
    } else {
        doc
    };
    let keys = keys::of::<T>();
    let mut problems = Vec::new();
    let mut value = doc.value;
    // What was taken out, as pointers into the file as written.
    let mut removed: Vec<String> = Vec::new();
    // Sequence entries taken out, in order, to map later pointers back to the file.
    let mut shifts: Vec<(String, usize)> = Vec::new();
    let mut unknown_seen: Vec<String> = Vec::new();
    let parsed = loop {
        let mut unknown = Vec::new();
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_pointer(&path));
        let de = serde_ignored::Deserializer::new(&value, &mut on_unknown);
        let result: Result<T, _> = serde_path_to_error::deserialize(de);
        let failed = result.as_ref().err().map(|e| error_pointer(e.path()));
        // Every pass sees the unknown keys still in; each is reported once. A pass stops at its
        // type error, so later passes find the keys after it.
        for pointer in unknown {
            let pointer = as_written(&pointer, &shifts);
            if !unknown_seen.contains(&pointer) {
                unknown_seen.push(pointer.clone());
                let key = pointer.rsplit('/').next().unwrap_or_default().to_owned();
                let valid = keys
                    .get(&keys::place_of(&pointer))
                    .copied()
                    .unwrap_or_default();
                problems.push(Problem {
                    pos: doc.positions.nearest(&pointer),
                    message: format!("unknown key {key:?}{}", suggest_key(&key, valid)),
                    pointer,
                });
            }
        }
        match result {
            Ok(v) => break Some(v),
            Err(e) => {
                let here = failed.unwrap_or_default();
                let pointer = as_written(&here, &shifts);
                let message = e.into_inner().to_string();
                // A struct missing a field because a wrong-typed value of it was removed.
                let echo = message.starts_with("missing field")
                    && removed.iter().any(|r| parent_of(r) == pointer);
                if !echo {
                    problems.push(Problem {
                        pos: doc.positions.nearest(&pointer),
                        message,
                        pointer: pointer.clone(),
                    });
                }
                if here.is_empty() || removed.len() >= MAX_TYPE_ERRORS {
                    break None;
                }
                if let Some(index) = remove(&mut value, &here) {
                    shifts.push((parent_of(&here).to_owned(), index));
                }
                removed.push(pointer);
            }
        }
    };
    problems.sort_by_key(|p| p.pos);
    match parsed {
        Some(v) => Ok((
            v,
            Validator {
                positions: doc.positions,
                problems,
                notes: Vec::new(),
                removed,
            },
        )),
        None => Err(problems),
    }
}

fn parent_of(pointer: &str) -> &str {
    &pointer[..pointer.rfind('/').unwrap_or(0)]
}

/// Take the value at `pointer` out of `value`; for a sequence entry, returns its index.
fn remove(value: &mut serde_json::Value, pointer: &str) -> Option<usize> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent)? {
        serde_json::Value::Object(m) => {
            m.remove(&last);
            None
        }
        serde_json::Value::Array(a) => {
            let i: usize = last.parse().ok()?;
            (i < a.len()).then(|| {
                a.remove(i);
                i
            })
        }
        _ => None,
    }
}

/// A pointer into the value after sequence entries were removed, as a pointer into the file.
fn as_written(pointer: &str, shifts: &[(String, usize)]) -> String {
    let mut p = pointer.to_owned();
    for (seq, removed) in shifts.iter().rev() {
        let Some(rest) = p.strip_prefix(&format!("{seq}/")) else {
            continue;
        };
        let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if let Ok(i) = index.parse::<usize>()
            && i >= *removed
        {
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("/{tail}")
            };
            p = format!("{seq}/{}{tail}", i + 1);
        }
    }
    p
}

/// The second step of reading a config file, shared by every format: problems and notes placed
/// at their line, and the checks several formats make (globs, durations).
#[derive(Debug)]
pub struct Validator {
    positions: Positions,
    problems: Vec<Problem>,
    notes: Vec<Problem>,
    /// Values read past because their type was wrong (already reported).
    removed: Vec<String>,
}

impl Validator {
    /// Where `pointer` is written (or its nearest written parent).
    pub fn pos(&self, pointer: &str) -> Option<Pos> {
        self.positions.nearest(pointer)
    }

    /// Whether something at or under `pointer` was read past for its type (and reported): a
    /// check that would then find the place empty must not report that too.
    pub fn read_past(&self, pointer: &str) -> bool {
        self.removed
            .iter()
            .any(|r| r == pointer || r.starts_with(&format!("{pointer}/")))
    }

    /// Where exactly `pointer` is written.
    pub fn exact_pos(&self, pointer: &str) -> Option<Pos> {
        self.positions.get(pointer)
    }

    /// Report a problem with the field at `pointer`.
    pub fn problem(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        let pointer = pointer.into();
        self.problems.push(Problem {
            pos: self.positions.nearest(&pointer),
            pointer,
            message: message.into(),
        });
    }

    /// Note something accepted but deprecated at `pointer`: not a problem, told to the user.
    pub fn note(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        let pointer = pointer.into();
        self.notes.push(Problem {
            pos: self.positions.nearest(&pointer),
            pointer,
            message: message.into(),
        });
    }

    /// Problems reported so far.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// A glob at `pointer`; `*` stays within one path segment when `literal_separator`, as in
    /// a path or an image name, and `**` crosses them. A bad glob is a problem (and `None`).
    pub fn glob(&mut self, pointer: &str, text: &str, literal_separator: bool) -> Option<Glob> {
        match GlobBuilder::new(text)
            .literal_separator(literal_separator)
            .build()
        {
            Ok(g) => Some(g),
            Err(e) => {
                self.problem(pointer, format!("invalid pattern {text:?}: {}", e.kind()));
                None
            }
        }
    }

    /// A duration at `pointer` in the one syntax of [`duration`]; a bare number of seconds is
    /// accepted with a note. `positive` refuses zero.
    pub fn duration(&mut self, pointer: &str, text: &str, positive: bool) -> Option<Duration> {
        match duration::parse(text) {
            Ok(p) if positive && p.duration.is_zero() => {
                self.problem(pointer, format!("{text:?} must be longer than zero"));
                None
            }
            Ok(p) => {
                if p.bare_seconds {
                    self.note(pointer, duration::deprecation(text));
                }
                Some(p.duration)
            }
            Err(e) => {
                self.problem(pointer, e.to_string());
                None
            }
        }
    }

    /// The notes, and every problem in file order: `Err` when there is any problem.
    pub fn finish(mut self) -> Result<Vec<Problem>, Vec<Problem>> {
        if self.problems.is_empty() {
            self.notes.sort_by_key(|p| p.pos);
            Ok(self.notes)
        } else {
            self.problems.sort_by_key(|p| p.pos);
            Err(self.problems)
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

/// "did you mean" for a misspelt key: the closest of the keys valid at its place, if close.
pub fn suggest_key(key: &str, valid: &[&str]) -> String {
    valid
        .iter()
        .filter(|k| **k != key)
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
