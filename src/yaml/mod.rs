//! A YAML (and JSON) loader that keeps source positions.
//!
//! Findings must point at a file and line, so the loader turns yaml-rust2's marked event stream
//! into a `serde_json::Value` (the shape Kubernetes objects have on the wire and in an
//! AdmissionReview) together with a [`Positions`] index from JSON pointer to line and column.
//!
//! Decisions that differ from a plain `from_str`:
//! - A stream is split into documents at `---` / `...` lines first. YAML forbids those markers
//!   at column 0 inside any content (`c-forbidden`), so the split is exact, and a syntax error
//!   in one document does not hide the documents after it.
//! - Duplicate mapping keys are an error. Tools disagree on which duplicate wins; if tollgate
//!   read the first `image:` and the API server the last, a bad image would pass the check.
//! - Plain scalars resolve like Kubernetes' YAML library (YAML 1.1 core types: `yes`/`no`/`on`/
//!   `off` are booleans), so that `image: 1.10` is a number here as it is for `kubectl`.
//! - Aliases are expanded, `<<` merge keys applied, and the expansion is capped so an alias
//!   bomb is an error rather than an out-of-memory kill.
//! - The builder is iterative: arbitrarily deep nesting cannot overflow the stack.
//!
//! Two readers feed the one builder. `fast.rs` reads the block YAML that manifests are written
//! in a line at a time, and leaves every document it is not sure of to yaml-rust2 (`mod.rs`),
//! which stays the reference: the fuzz target `yaml` checks that whatever the fast path reads,
//! it reads as yaml-rust2 does, value and positions alike.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

mod fast;

/// The most values one document may expand to through aliases before it is refused.
pub const MAX_NODES: usize = 1_000_000;
/// How many times its own size one document may expand to through aliases (a billion laughs
/// by bytes: a long string aliased over and over)...
pub const MAX_EXPANSION: usize = 64;
/// ...but never less than this (small documents with a few honest aliases)...
pub const MIN_EXPANDED_BYTES: usize = 16 << 20;
/// ...and never more than this, whatever the input's size.
pub const MAX_EXPANDED_BYTES: usize = 256 << 20;
/// The deepest nesting accepted; deeper input is refused, not recursed into by later stages.
pub const MAX_DEPTH: usize = 256;

/// A line and column in a source, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, counted in characters.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a document could not be loaded, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    /// Where, in the whole source (not relative to the document).
    pub pos: Pos,
    /// What is wrong, without the position (yaml-rust2's text, or tollgate's own: a duplicate
    /// key, an alias expanding past [`MAX_NODES`], nesting past [`MAX_DEPTH`]).
    pub message: String,
}

/// Which positions to record while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every node (policy files: any field may need a position for an error).
    All,
    /// Only the values of `image` keys and the entries of container lists (manifests: the
    /// fields findings point into).
    ImageFields,
}

/// JSON pointer → position of the value at that pointer.
#[derive(Debug, Clone, Default)]
pub struct Positions(HashMap<String, Pos>);

impl Positions {
    /// Every recorded position.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Pos)> {
        self.0.iter()
    }

    /// The position of the value at `pointer`, if recorded.
    pub fn get(&self, pointer: &str) -> Option<Pos> {
        self.0.get(pointer).copied()
    }

    /// The position of the value at `pointer`, or of its nearest recorded ancestor.
    pub fn nearest(&self, pointer: &str) -> Option<Pos> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.0.get(p) {
                return Some(*pos);
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// The value; `Null` for an empty document.
    pub value: Value,
    /// Where the document starts (its first line of content, or its `---`).
    pub start: Pos,
    /// Positions of recorded nodes.
    pub positions: Positions,
}

/// The largest document accepted, in bytes of text. The API server refuses objects over a few
/// MiB (etcd's request limit is 1.5 MiB), so a bigger document is no manifest; refusing it keeps
/// memory bounded by this, whatever the size of the stream.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Load every document of `source`, lazily: each is parsed when the iterator reaches it, so a
/// caller that checks and drops one document at a time holds one in memory, not the stream.
/// A document that fails to load is an `Err` in its slot; the others are still loaded. Empty
/// documents (only comments, or nothing between two `---`) are left out.
pub fn load_all(source: &str, record: Record) -> Documents<'_> {
    // kubectl strips a UTF-8 byte order mark; left in, it would be part of the first key
    // (`\u{feff}apiVersion`) and the object would not be recognised at all.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    Documents {
        source,
        lines: source.split_inclusive('\n'),
        cuts: Cuts::default(),
        record,
    }
}

/// The documents of a source, in order (see [`load_all`]).
pub struct Documents<'a> {
    source: &'a str,
    lines: std::str::SplitInclusive<'a, char>,
    cuts: Cuts,
    record: Record,
}

impl Iterator for Documents<'_> {
    type Item = Result<Document, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let cut = match self.lines.next() {
                Some(line) => self.cuts.line(line),
                None => Some(self.cuts.end()?),
            };
            if let Some(cut) = cut {
                let text = &self.source[cut.start..cut.end];
                if let Some(doc) = load_text(text, cut.first_line, self.record) {
                    return Some(doc);
                }
            }
        }
    }
}

/// Documents fed a line at a time, for streams read from a file or a pipe: only the document
/// being read is held. A line the reader cannot pass (longer than it holds, or not text) is
/// marked with [`Splitter::skip_line`] instead.
#[derive(Debug, Default)]
pub struct Splitter {
    cuts: Cuts,
    /// The text of the document being read, from [`Cuts::start`].
    buf: String,
    /// The document being read will not be loaded; its text is no longer kept.
    skipped: Option<Skipped>,
    /// The first line has been seen (a byte order mark can only be there).
    started: bool,
}

impl Splitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Self {
        Splitter::default()
    }

    /// Feed the next line, with its line ending if it has one. Returns the document this line
    /// completes, if any (`None` also for an empty document).
    pub fn push(&mut self, line: &str, record: Record) -> Option<Result<Document, YamlError>> {
        let line = if self.started {
            line
        } else {
            self.started = true;
            let stripped = line.strip_prefix('\u{feff}').unwrap_or(line);
            // The mark is not content: offsets count from after it, as in `load_all`.
            stripped
        };
        match line_marker(line) {
            Some(DocMarker::Start) => {
                let done = self.cuts.line(line).and_then(|c| self.take(&c, record));
                self.append(line);
                done
            }
            _ => {
                self.append(line);
                let cut = self.cuts.line(line)?;
                self.take(&cut, record)
            }
        }
    }

    /// A line of `len` bytes was read here and not passed: it counts as a line of the
    /// document, which is not loaded. `why` says whether the caller reported it already.
    pub fn skip_line(&mut self, len: usize, why: Skipped) {
        self.started = true;
        self.skipped.get_or_insert(why);
        self.buf.clear();
        self.cuts.skip(len);
    }

    /// The end of the stream: the last document, if any.
    pub fn finish(&mut self, record: Record) -> Option<Result<Document, YamlError>> {
        let cut = self.cuts.end()?;
        self.take(&cut, record)
    }

    fn append(&mut self, line: &str) {
        if self.skipped.is_some() {
            return;
        }
        if self.buf.len() + line.len() > MAX_DOCUMENT_BYTES {
            self.skipped = Some(Skipped::TooBig);
            self.buf.clear();
        } else {
            self.buf.push_str(line);
        }
    }

    fn take(&mut self, cut: &Cut, record: Record) -> Option<Result<Document, YamlError>> {
        let len = cut.end - cut.start;
        let doc = match self.skipped.take() {
            Some(Skipped::TooBig) => Some(Err(too_big(cut.first_line))),
            Some(Skipped::Reported) => None,
            None => load_text(&self.buf[..len.min(self.buf.len())], cut.first_line, record),
        };
        self.buf.drain(..len.min(self.buf.len()));
        // One big document must not keep its memory for the rest of the stream.
        if self.buf.capacity() > 1 << 20 {
            self.buf.shrink_to(64 << 10);
        }
        doc
    }
}

/// A `---` or `...` line: YAML forbids both at column 0 inside any content (`c-forbidden`), so
/// splitting a stream at them is exact, and a syntax error in one document does not hide the
/// documents after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocMarker {
    /// `---`: a document starts on this line.
    Start,
    /// `...`: the document ends with this line.
    End,
}

fn line_marker(line: &str) -> Option<DocMarker> {
    let content = line.trim_end_matches(['\n', '\r']);
    let is = |m: &str| {
        content
            .strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    };
    if is("---") {
        Some(DocMarker::Start)
    } else if is("...") {
        Some(DocMarker::End)
    } else {
        None
    }
}

/// Where documents begin and end in a stream read line by line: byte offsets and line numbers
/// only, so the same cutting serves a borrowed source and a stream read in pieces.
#[derive(Debug, Default)]
struct Cuts {
    /// Offset where the current document starts.
    start: usize,
    /// Its first line, 1-based (0: not started, taken as 1).
    start_line: u32,
    /// Offset of the next line.
    offset: usize,
    /// Lines seen so far.
    lines: u32,
}

/// One document's byte range in the stream, and its first line.
#[derive(Debug)]
struct Cut {
    start: usize,
    end: usize,
    first_line: u32,
}

impl Cuts {
    fn line(&mut self, line: &str) -> Option<Cut> {
        let line_no = self.lines + 1;
        let first_line = self.start_line.max(1);
        let cut = match line_marker(line) {
            Some(DocMarker::Start) if self.offset > self.start => {
                let cut = Cut {
                    start: self.start,
                    end: self.offset,
                    first_line,
                };
                self.start = self.offset;
                self.start_line = line_no;
                Some(cut)
            }
            Some(DocMarker::End) => {
                let end = self.offset + line.len();
                let cut = Cut {
                    start: self.start,
                    end,
                    first_line,
                };
                self.start = end;
                self.start_line = line_no + 1;
                Some(cut)
            }
            _ => None,
        };
        self.offset += line.len();
        self.lines = line_no;
        cut
    }

    /// A line that is not a marker and whose text is not kept.
    fn skip(&mut self, len: usize) {
        self.offset += len;
        self.lines += 1;
    }

    fn end(&mut self) -> Option<Cut> {
        if self.offset <= self.start {
            return None;
        }
        let cut = Cut {
            start: self.start,
            end: self.offset,
            first_line: self.start_line.max(1),
        };
        self.start = self.offset;
        Some(cut)
    }
}

/// Why a [`Splitter`] does not load a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// It is over [`MAX_DOCUMENT_BYTES`]: the document becomes an error.
    TooBig,
    /// The caller reported what is wrong with it (bytes that are not UTF-8): nothing more.
    Reported,
}

fn too_big(first_line: u32) -> YamlError {
    YamlError {
        pos: Pos {
            line: first_line,
            column: 1,
        },
        message: format!(
            "this document is over {} MiB, far more than any Kubernetes object can be; it was \
             not read",
            MAX_DOCUMENT_BYTES >> 20
        ),
    }
}

/// Load one document's text; `None` when it is empty (only blank lines, comments and
/// markers), which is skipped silently, unlike an explicit `null`.
fn load_text(text: &str, first_line: u32, record: Record) -> Option<Result<Document, YamlError>> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Some(Err(too_big(first_line)));
    }
    match load_chunk(text, first_line, record) {
        Ok(d) if d.value.is_null() && is_blank(text) => None,
        other => Some(other),
    }
}

/// Load a single-document source (a policy file). More than one document is an error.
pub fn load_one(source: &str, record: Record) -> Result<Document, YamlError> {
    let mut docs = load_all(source, record);
    let first = docs.next().unwrap_or_else(|| {
        Ok(Document {
            value: Value::Null,
            start: Pos { line: 1, column: 1 },
            positions: Positions::default(),
        })
    })?;
    if let Some(second) = docs.next() {
        let pos = match second {
            Ok(d) => d.start,
            Err(e) => e.pos,
        };
        return Err(YamlError {
            pos,
            message: "expected a single YAML document, found another one here".into(),
        });
    }
    Ok(first)
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..." || t.starts_with("--- #")
    })
}

fn load_chunk(text: &str, first_line: u32, record: Record) -> Result<Document, YamlError> {
    if let Some(doc) = fast::load(text, first_line, record) {
        return Ok(doc);
    }
    load_chunk_full(text, first_line, record)
}

/// One document's text through the fast path alone: `None` where it leaves the document to
/// the full parser. For the fuzz target and the tests, which compare the two paths.
pub fn load_fast(text: &str, record: Record) -> Option<Document> {
    fast::load(text, 1, record)
}

/// One document's text through the full parser alone (see [`load_fast`]).
pub fn load_full(text: &str, record: Record) -> Result<Document, YamlError> {
    load_chunk_full(text, 1, record)
}

/// yaml-rust2's event parser: the reference for meaning, positions and messages.
fn load_chunk_full(text: &str, first_line: u32, record: Record) -> Result<Document, YamlError> {
    if let Some(at) = not_printable(text) {
        return Err(control_character(text, at, first_line));
    }
    let to_pos = |m: &Marker| Pos {
        line: first_line + m.line().saturating_sub(1) as u32,
        column: m.col() as u32 + 1,
    };
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::new(record, text.len());
    // A document's line is that of its first node; an explicit `---` counts only for an empty
    // document.
    let mut start = None;
    let mut doc_marker = None;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            pos: to_pos(e.marker()),
            message: e.info().to_owned(),
        })?;
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart => {
                if builder.finished() {
                    return Err(YamlError {
                        pos: to_pos(&mark),
                        message: "a second document starts here without a '---' line".into(),
                    });
                }
                doc_marker.get_or_insert(to_pos(&mark));
            }
            event => {
                start.get_or_insert(to_pos(&mark));
                builder
                    .event(event, to_pos(&mark))
                    .map_err(|message| YamlError {
                        pos: to_pos(&mark),
                        message,
                    })?;
            }
        }
    }
    let start = start.or(doc_marker).unwrap_or(Pos {
        line: first_line,
        column: 1,
    });
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        start,
        positions: builder.positions,
    })
}

/// The byte offset of the first character YAML does not allow in a stream (`c-printable`: C0
/// controls other than tab, line feed and carriage return, DEL, C1 controls other than NEL,
/// U+FFFE and U+FFFF). yaml-rust2 takes a NUL for the end of the input and reads nothing after
/// it, so a document could hide what follows a NUL from tollgate while other readers refuse it
/// (go-yaml, which kubectl uses: "control characters are not allowed"); tollgate refuses it too.
fn not_printable(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\t' | b'\n' | b'\r' => {}
            0..0x20 | 0x7f => return Some(i),
            // U+0080..U+009F, except U+0085 (NEL)
            0xc2 if b
                .get(i + 1)
                .is_some_and(|&c| (0x80..0xa0).contains(&c) && c != 0x85) =>
            {
                return Some(i);
            }
            // U+FFFE, U+FFFF
            0xef if b.get(i + 1) == Some(&0xbf) && matches!(b.get(i + 2), Some(0xbe | 0xbf)) => {
                return Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn control_character(text: &str, at: usize, first_line: u32) -> YamlError {
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let newlines = before.bytes().filter(|&c| c == b'\n').count();
    let c = text[at..].chars().next().unwrap_or('\0');
    YamlError {
        pos: Pos {
            line: first_line.saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX)),
            column: u32::try_from(before[line_start..].chars().count() + 1).unwrap_or(u32::MAX),
        },
        message: format!(
            "control character U+{:04X} is not allowed in YAML (kubectl refuses it too; a NUL \
             would hide the rest of the document from some readers)",
            u32::from(c)
        ),
    }
}

/// A collection under construction.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        /// Keys, where they were first seen (for the duplicate-key error) and their place among
        /// the mapping's entries (for the merge-order error).
        seen: HashMap<String, (Pos, usize)>,
        /// The key whose value comes next; `None` when a key comes next.
        key: Option<String>,
        /// The key that comes next is a `<<` merge key.
        merging: bool,
        /// Each `<<` value, with its place among the entries.
        merges: Vec<(Value, usize)>,
        /// Entries so far.
        entries: usize,
        anchor: usize,
    },
}

struct Builder {
    record: Record,
    stack: Vec<Frame>,
    root: Option<Value>,
    /// Anchored values and how much each expands to.
    anchors: HashMap<usize, (Value, Size)>,
    /// What the document has expanded to so far.
    size: Size,
    /// The most bytes it may expand to.
    max_bytes: usize,
    /// Keys are checked for duplicates against the mapping itself, and their places are not
    /// kept: the fast path (`fast.rs`) reads no merge keys and hands any error to the full
    /// parser, whose builder keeps them for its messages.
    untracked_keys: bool,
    positions: Positions,
}

impl Builder {
    fn new(record: Record, source_len: usize) -> Self {
        Builder {
            record,
            stack: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            size: Size::default(),
            max_bytes: source_len
                .saturating_mul(MAX_EXPANSION)
                .clamp(MIN_EXPANDED_BYTES, MAX_EXPANDED_BYTES),
            untracked_keys: false,
            positions: Positions::default(),
        }
    }

    fn finished(&self) -> bool {
        self.root.is_some()
    }

    /// Record the position of the node about to start, when it is one the record keeps. The
    /// JSON pointer is built only then, from the stack: most nodes of a manifest are never
    /// recorded, and keeping a pointer up to date for each of them was a tenth of the loading.
    fn enter(&mut self, pos: Pos) {
        let wanted = match self.record {
            Record::All => true,
            Record::ImageFields => self.at_image_field(),
        };
        if wanted {
            let mut pointer = String::new();
            for frame in &self.stack {
                match frame {
                    Frame::Seq { items, .. } => {
                        pointer.push('/');
                        pointer.push_str(&items.len().to_string());
                    }
                    Frame::Map { key: Some(k), .. } => {
                        pointer.push('/');
                        push_escaped(&mut pointer, k);
                    }
                    Frame::Map { key: None, .. } => {}
                }
            }
            self.positions.0.entry(pointer).or_insert(pos);
        }
    }

    /// The node about to start is the root, the value of an `image` key, of `image.reference`,
    /// or an entry of a container (or volume, or `List` item) list.
    fn at_image_field(&self) -> bool {
        fn key_of(frame: Option<&Frame>) -> Option<&str> {
            match frame {
                Some(Frame::Map { key: Some(k), .. }) => Some(k),
                _ => None,
            }
        }
        let n = self.stack.len();
        let Some(last) = self.stack.last() else {
            return true;
        };
        let parent = n.checked_sub(2).and_then(|i| self.stack.get(i));
        match last {
            Frame::Map { .. } => match key_of(Some(last)) {
                Some("image") => true,
                Some("reference") => key_of(parent) == Some("image"),
                _ => false,
            },
            Frame::Seq { .. } => matches!(
                key_of(parent),
                Some("containers" | "initContainers" | "ephemeralContainers" | "volumes" | "items")
            ),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn event(&mut self, event: Event, pos: Pos) -> Result<(), String> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    // A merge key as go-yaml reads it: a plain `<<`, or one tagged `!!merge`;
                    // a quoted "<<" is an ordinary key.
                    let merge = text == "<<"
                        && (style == TScalarStyle::Plain
                            || tag.as_ref().is_some_and(|t| {
                                (t.handle == "!!" || t.handle == "tag:yaml.org,2002:")
                                    && t.suffix == "merge"
                            }));
                    return self.key(text, pos, merge);
                }
                self.enter(pos);
                let size = Size {
                    nodes: 1,
                    bytes: text.len(),
                };
                self.grow(size)?;
                let value = resolve_scalar(text, style, tag.as_ref())?;
                self.finish(value, anchor)
            }
            Event::Alias(id) => {
                // Counted before it is copied: the copy is what a bomb would exhaust memory on.
                let Some(&(_, size)) = self.anchors.get(&id) else {
                    return Err("alias refers to an unknown anchor".into());
                };
                self.grow(size)?;
                let value = self.anchors[&id].0.clone();
                if self.expecting_key() {
                    return match value {
                        Value::String(s) => self.key(s, pos, false),
                        _ => Err("only a string alias can be used as a mapping key".into()),
                    };
                }
                self.enter(pos);
                self.finish(value, 0)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    return Err(
                        "complex mapping keys (a list or mapping used as a key) are not supported"
                            .into(),
                    );
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                self.enter(pos);
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq {
                            items: Vec::new(),
                            anchor,
                        }
                    } else {
                        Frame::Map {
                            map: Map::new(),
                            seen: HashMap::new(),
                            key: None,
                            merging: false,
                            merges: Vec::new(),
                            entries: 0,
                            anchor,
                        }
                    });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                    Some(Frame::Map {
                        mut map,
                        seen,
                        merges,
                        anchor,
                        ..
                    }) => {
                        apply_merges(&mut map, &seen, merges)?;
                        (Value::Object(map), anchor)
                    }
                    None => return Err("unbalanced end of collection".into()),
                };
                self.grow(Size { nodes: 1, bytes: 0 })?;
                self.finish(value, anchor)
            }
            _ => Ok(()),
        }
    }

    fn key(&mut self, text: String, pos: Pos, merge: bool) -> Result<(), String> {
        let Some(Frame::Map {
            map,
            seen,
            key,
            merging,
            entries,
            ..
        }) = self.stack.last_mut()
        else {
            unreachable!()
        };
        *entries += 1;
        if self.untracked_keys {
            // Every earlier entry's value is complete, so it is in the map already.
            if merge || map.contains_key(&text) {
                return Err("a duplicate key or a merge key, for the full parser".into());
            }
        } else if !merge {
            if let Some((first, _)) = seen.get(&text) {
                return Err(format!(
                    "duplicate key {text:?} (first defined at line {})",
                    first.line
                ));
            }
            seen.insert(text.clone(), (pos, *entries));
        }
        *merging = merge;
        *key = Some(text);
        Ok(())
    }

    /// Count `size` more of the document, refusing it past the limits.
    fn grow(&mut self, size: Size) -> Result<(), String> {
        self.size.nodes += size.nodes;
        self.size.bytes = self.size.bytes.saturating_add(size.bytes);
        if self.size.nodes > MAX_NODES {
            return Err(format!(
                "the document expands to more than {MAX_NODES} values through aliases"
            ));
        }
        if self.size.bytes > self.max_bytes {
            return Err(format!(
                "the document expands to more than {} MiB through aliases ({MAX_EXPANSION} \
                 times its own size, at most {} MiB); refused as an alias bomb",
                self.max_bytes >> 20,
                MAX_EXPANDED_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Store a completed value in its parent (or as the root), and under its anchor.
    fn finish(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        if anchor != 0 {
            let size = size_of(&value);
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map,
                key,
                merging,
                merges,
                entries,
                ..
            }) => {
                let k = key.take().expect("a value follows its key");
                if std::mem::take(merging) {
                    merges.push((value, *entries));
                } else {
                    map.insert(k, value);
                }
            }
        }
        Ok(())
    }
}

/// `<<` merge keys (YAML 1.1 merge type). The spec has explicit keys win, and earlier mappings
/// of a merge list win over later ones; go-yaml v2, which kubectl and the API server's YAML go
/// through, applies entries in document order instead, so a key written before a merge that
/// sets it too is overwritten there. Where the two readings differ (an explicit key before a
/// merge setting it, or two merges setting one key) the document is refused: tollgate must read
/// the image kubectl will send, and cannot tell which reader will be used. An explicit key
/// after the merge wins in both readings (the usual override idiom) and is accepted.
fn apply_merges(
    map: &mut Map<String, Value>,
    seen: &HashMap<String, (Pos, usize)>,
    merges: Vec<(Value, usize)>,
) -> Result<(), String> {
    let mut merged: HashSet<String> = HashSet::new();
    for (merge, place) in merges {
        let sources = match merge {
            Value::Object(m) => vec![m],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err("a '<<' merge list may contain only mappings".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("a '<<' merge key needs a mapping or a list of mappings".into()),
        };
        let mut group = Map::new();
        for source in sources {
            for (k, v) in source {
                group.entry(k).or_insert(v);
            }
        }
        for (k, v) in group {
            match seen.get(&k) {
                Some((pos, at)) if *at < place => {
                    return Err(format!(
                        "key {k:?} at line {} is set again by a later '<<' merge: YAML readers \
                         disagree on which wins (kubectl takes the merge), so tollgate refuses \
                         to guess; set {k:?} once, or after the merge",
                        pos.line
                    ));
                }
                Some(_) => continue,
                None => {}
            }
            if !merged.insert(k.clone()) {
                return Err(format!(
                    "key {k:?} is set by two '<<' merges of one mapping: YAML readers disagree \
                     on which wins, so tollgate refuses to guess; merge it once"
                ));
            }
            map.insert(k, v);
        }
    }
    Ok(())
}

/// What a value expands to: its nodes, and the bytes of its strings and keys.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

fn size_of(v: &Value) -> Size {
    match v {
        Value::Array(a) => a.iter().map(size_of).fold(Size { nodes: 1, bytes: 0 }, add),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let s = size_of(v);
                Size {
                    nodes: s.nodes,
                    bytes: s.bytes.saturating_add(k.len()),
                }
            })
            .fold(Size { nodes: 1, bytes: 0 }, add),
        Value::String(s) => Size {
            nodes: 1,
            bytes: s.len(),
        },
        _ => Size { nodes: 1, bytes: 8 },
    }
}

fn add(a: Size, b: Size) -> Size {
    Size {
        nodes: a.nodes.saturating_add(b.nodes),
        bytes: a.bytes.saturating_add(b.bytes),
    }
}

/// RFC 6901: `~` is `~0` and `/` is `~1` inside a reference token.
pub fn push_escaped(out: &mut String, token: &str) {
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        // `!!str 1.0` and friends: the standard tags force a type.
        if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" {
            return match tag.suffix.as_str() {
                "str" | "binary" | "timestamp" => Ok(Value::String(text)),
                "null" => Ok(Value::Null),
                "bool" => resolve_plain(&text)
                    .filter(Value::is_boolean)
                    .ok_or_else(|| format!("{text:?} is not a !!bool")),
                "int" => resolve_plain(&text)
                    .filter(|v| v.is_i64() || v.is_u64())
                    .ok_or_else(|| format!("{text:?} is not an !!int")),
                "float" => resolve_plain(&text)
                    .filter(Value::is_number)
                    .ok_or_else(|| format!("{text:?} is not a !!float")),
                other => Err(format!("unsupported tag !!{other}")),
            };
        }
        return Ok(Value::String(text));
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(resolve_plain(&text).unwrap_or(Value::String(text)))
}

/// Resolution of plain scalars as in go-yaml v2, which Kubernetes' `sigs.k8s.io/yaml` uses.
fn resolve_plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            return Some(Value::Bool(true));
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Some(Value::Bool(false));
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            // JSON has no infinities; Kubernetes rejects them in objects too. Keep the text.
            return Some(Value::String(s.to_owned()));
        }
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    let plain = s.replace('_', "");
    let (neg, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(p, r)| digits.strip_prefix(p).map(|d| (d, *r)));
    let int = match radix {
        Some((d, r)) => i128::from_str_radix(d, r).ok(),
        // go-yaml v2 reads a leading 0 as octal (YAML 1.1).
        None if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            i128::from_str_radix(&digits[1..], 8).ok()
        }
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse::<i128>().ok()
        }
        None => None,
    };
    if let Some(i) = int {
        let i = if neg { -i } else { i };
        if let Ok(v) = i64::try_from(i) {
            return Some(Value::Number(v.into()));
        }
        if let Ok(v) = u64::try_from(i) {
            return Some(Value::Number(v.into()));
        }
    }
    let is_float = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if is_float && let Ok(f) = plain.parse::<f64>() {
        return Number::from_f64(f).map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use serde_json::json;

    fn one(s: &str) -> Document {
        load_one(s, Record::All).unwrap()
    }

    #[rstest]
    #[case::string("a: hello", json!({"a": "hello"}))]
    #[case::int("a: 10", json!({"a": 10}))]
    #[case::float_tag_like("a: 1.10", json!({"a": 1.1}))]
    #[case::quoted_number("a: '1.10'", json!({"a": "1.10"}))]
    #[case::yaml11_bool("a: yes", json!({"a": true}))]
    #[case::null_tilde("a: ~", json!({"a": null}))]
    #[case::empty_value("a:", json!({"a": null}))]
    #[case::hex("a: 0x1F", json!({"a": 31}))]
    #[case::octal_11("a: 010", json!({"a": 8}))]
    #[case::str_tag("a: !!str 10", json!({"a": "10"}))]
    #[case::flow("{a: [1, x, {b: c}]}", json!({"a": [1, "x", {"b": "c"}]}))]
    #[case::json("{\"a\": {\"b\": [true, null]}}", json!({"a": {"b": [true, null]}}))]
    #[case::anchor_alias("a: &x {k: v}\nb: *x", json!({"a": {"k": "v"}, "b": {"k": "v"}}))]
    #[case::merge_key("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3", json!({"base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 3}}))]
    #[case::merge_list("a: &a {x: 1}\nb: &b {x: 2, z: 3}\nm: {<<: [*a, *b]}", json!({"a": {"x": 1}, "b": {"x": 2, "z": 3}, "m": {"x": 1, "z": 3}}))]
    #[case::block_literal("a: |\n  line1\n  line2\n", json!({"a": "line1\nline2\n"}))]
    #[case::version_string("a: v1.2.3", json!({"a": "v1.2.3"}))]
    #[case::date_like("a: 2024-01-01", json!({"a": "2024-01-01"}))]
    fn loads_values_as_kubernetes_reads_them(#[case] src: &str, #[case] expected: Value) {
        assert_eq!(one(src).value, expected);
    }

    #[rstest]
    #[case::nul_hides_the_rest("image: ok\n\0\nsidecar:\n  image: evil\n", 2, 1)]
    #[case::nul_in_a_scalar("a:\n  image: x\u{0}y\n", 2, 11)]
    #[case::escape_character("a: \u{1b}[31m\n", 1, 4)]
    #[case::delete("a: b\u{7f}\n", 1, 5)]
    #[case::c1_control("a: \u{9b}x\n", 1, 4)]
    #[case::non_character("a: \u{ffff}\n", 1, 4)]
    #[case::after_non_ascii("a: é\u{0}\n", 1, 5)]
    fn control_characters_are_refused_where_they_are(
        #[case] src: &str,
        #[case] line: u32,
        #[case] column: u32,
    ) {
        for record in [Record::All, Record::ImageFields] {
            let err = load_one(src, record).unwrap_err();
            assert_eq!((err.pos.line, err.pos.column), (line, column), "{err}");
            assert!(err.message.contains("control character"), "{err}");
        }
    }

    #[rstest]
    #[case::tab("a: 'x\ty'\n")]
    #[case::crlf("a: b\r\n")]
    #[case::nel("a: x\u{85}y\n")]
    #[case::bom_later("a: \u{feff}b\n")]
    fn printable_characters_are_not_refused(#[case] src: &str) {
        assert!(load_one(src, Record::All).is_ok(), "{src:?}");
    }

    #[test]
    fn splits_documents_and_keeps_their_lines() {
        let src = "# leading comment\na: 1\n---\nb: 2\n---\n# empty\n---\nc:\n  image: x\n...\n";
        let docs: Vec<_> = load_all(src, Record::ImageFields)
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].start.line, 2);
        assert_eq!(docs[1].start.line, 4);
        assert_eq!(docs[2].start.line, 8);
        assert_eq!(
            docs[2].positions.get("/c/image"),
            Some(Pos {
                line: 9,
                column: 10
            })
        );
    }

    #[test]
    fn a_broken_document_does_not_hide_the_next_one() {
        let src = "a: [1, 2\n---\nb: 2\n";
        let docs: Vec<_> = load_all(src, Record::All).collect();
        assert_eq!(docs.len(), 2);
        let err = docs[0].as_ref().unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
        assert_eq!(docs[1].as_ref().unwrap().value, json!({"b": 2}));
    }

    #[test]
    fn error_lines_are_relative_to_the_whole_file() {
        let src = "a: 1\n---\nb: 2\nc: [\n";
        let docs: Vec<_> = load_all(src, Record::All).collect();
        let err = docs[1].as_ref().unwrap_err();
        assert!(err.pos.line >= 4, "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let err = load_one("spec:\n  image: a\n  image: b\n", Record::All).unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(
            err.message
                .contains("duplicate key \"image\" (first defined at line 2)"),
            "{err}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = load_one(&src, Record::All).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let src = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // yaml-rust2's own limit (or ours, whichever is lower) turns it into an error.
        let err = load_one(&src, Record::All).unwrap_err();
        assert!(
            err.message.contains("nesting deeper") || err.message.contains("recursion limit"),
            "{err}"
        );
    }

    #[test]
    fn positions_point_at_values_and_nearest_ancestor() {
        let d = one("spec:\n  containers:\n    - name: a\n      image: nginx\n");
        assert_eq!(
            d.positions.get("/spec/containers/0/image"),
            Some(Pos {
                line: 4,
                column: 14
            })
        );
        assert_eq!(
            d.positions
                .nearest("/spec/containers/0/missing")
                .map(|p| p.line),
            Some(3)
        );
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        let d = one("a/b:\n  c~d: 1\n");
        assert!(d.positions.get("/a~1b/c~0d").is_some());
    }

    /// What a [`Splitter`] fed `src` line by line yields, as `load_all` reports it.
    fn split_by_lines(src: &str) -> Vec<Result<(Value, Pos), YamlError>> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for line in src.split_inclusive('\n') {
            out.extend(s.push(line, Record::All));
        }
        out.extend(s.finish(Record::All));
        out.into_iter()
            .map(|d| d.map(|d| (d.value, d.start)))
            .collect()
    }

    fn split_at_once(src: &str) -> Vec<Result<(Value, Pos), YamlError>> {
        load_all(src, Record::All)
            .map(|d| d.map(|d| (d.value, d.start)))
            .collect()
    }

    #[rstest]
    #[case::markers("a: 1\n---\nb: 2\n...\n---\nc: [\n...\nd: 4")]
    #[case::bom("\u{feff}apiVersion: v1\nkind: Pod\n---\nx: 1\n")]
    #[case::leading_marker("---\na: 1\n---\n")]
    #[case::crlf("a: 1\r\n---\r\nb: 2\r\n")]
    #[case::only_comments("# x\n---\n# y\n")]
    fn a_stream_read_line_by_line_splits_as_a_whole_source(#[case] src: &str) {
        assert_eq!(split_by_lines(src), split_at_once(src));
    }

    #[test]
    fn a_document_over_the_limit_is_refused_and_the_next_one_still_loads() {
        let mut s = Splitter::new();
        let line = format!("k: {}\n", "x".repeat(1 << 20));
        let mut out = Vec::new();
        for _ in 0..(MAX_DOCUMENT_BYTES >> 20) + 1 {
            out.extend(s.push(&line, Record::ImageFields));
        }
        assert!(out.is_empty(), "nothing completes before the next marker");
        out.extend(s.push("---\n", Record::ImageFields));
        out.extend(s.push("b: 2\n", Record::ImageFields));
        out.extend(s.finish(Record::ImageFields));
        assert_eq!(out.len(), 2);
        let err = out[0].as_ref().unwrap_err();
        assert_eq!(err.pos.line, 1);
        assert!(err.message.contains("over 64 MiB"), "{err}");
        assert!(s.buf.capacity() <= MAX_DOCUMENT_BYTES + (2 << 20));
        let b = out[1].as_ref().unwrap();
        assert_eq!((b.value.clone(), b.start.line), (json!({"b": 2}), 67));
    }

    #[test]
    fn a_skipped_line_keeps_the_lines_after_it_in_place() {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        out.extend(s.push("a: 1\n", Record::All));
        s.skip_line(10, Skipped::Reported);
        out.extend(s.push("---\n", Record::All));
        out.extend(s.push("b: 2\n", Record::All));
        out.extend(s.finish(Record::All));
        assert_eq!(
            out.len(),
            1,
            "the document holding the skipped line is left out"
        );
        assert_eq!(out[0].as_ref().unwrap().start.line, 4);
    }

    proptest! {
        #[test]
        fn loader_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = load_all(&s, Record::All).count();
        }

        #[test]
        fn line_by_line_agrees_with_the_whole_source(s in "([ a-z:\\-\\[\\]{},&*#\\n]|---\\n|\\.\\.\\.\\n|\\r\\n){0,120}") {
            prop_assert_eq!(split_by_lines(&s), split_at_once(&s));
        }

        #[test]
        fn loader_never_panics_on_yaml_shaped_text(s in "([ a-z:\\-\\[\\]{},&*!|>'\"#\\n<]|---\\n|\\.\\.\\.\\n){0,200}") {
            let _ = load_all(&s, Record::All).count();
            let _ = load_all(&s, Record::ImageFields).count();
        }
    }
}
