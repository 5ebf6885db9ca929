//! The fast path: a line scanner for the block YAML that Kubernetes manifests are written in,
//! feeding the same [`Builder`] as yaml-rust2's event parser.
//!
//! It reads only what it is sure of, and gives up (`None`) on everything else, so the caller
//! runs the full parser on that document instead: the full parser stays the reference for
//! meaning, positions and error messages. What it reads:
//! - block mappings and sequences by indentation, including a sequence at its key's indentation
//!   and `- key: value` entries;
//! - keys and values as plain scalars, or single- or double-quoted on one line (double-quoted
//!   without escapes);
//! - flow collections on one line (`{app: web}`, `["--port", "80"]`);
//! - literal block scalars (`|`, `|-`), as ConfigMaps hold files;
//! - comments; one leading `---` line.
//!
//! It gives up on: anchors, aliases, tags, merge keys, flow collections over several lines,
//! folded and kept block scalars (`>`, `|+`, an indentation indicator), other scalars over
//! several lines, escapes, directives, `...`, tabs, carriage returns, non-ASCII text, and
//! anything the builder refuses (a duplicate key, nesting too deep). The fuzz target `yaml_fast` checks that whatever it reads, it reads as the
//! full parser does: the same value, the same positions.

use serde_json::Value;
use yaml_rust2::parser::Event;
use yaml_rust2::scanner::TScalarStyle;

use super::{Builder, Document, Pos, Record};

/// An open block collection: its kind and the column of its entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Map(usize),
    Seq(usize),
}

impl Open {
    fn indent(self) -> usize {
        match self {
            Open::Map(i) | Open::Seq(i) => i,
        }
    }
}

/// `None`: not a document this scanner is sure of; run the full parser.
pub(super) fn load(text: &str, first_line: u32, record: Record) -> Option<Document> {
    // One pass over the bytes rules out what the line scanner never handles.
    // Control characters are refused by the full parser, with their position.
    if text
        .bytes()
        .any(|b| (b < 0x20 && b != b'\n') || b == 0x7f || b >= 0x80)
    {
        return None;
    }
    let mut b = Builder::new(record, text.len());
    b.untracked_keys = true;
    let mut s = Scan {
        b,
        block: None,
        stack: Vec::new(),
        // The root is a value waiting for its first line.
        pending: true,
        start: None,
        doc_marker: None,
        done: false,
    };
    for (n, line) in text.split('\n').enumerate() {
        let line_no = first_line.checked_add(u32::try_from(n).ok()?)?;
        s.line(line, line_no)?;
    }
    if s.block.is_some() {
        // The full parser ends a text without a final line break with one; so would this,
        // but only the full parser is sure of what that means for the last line.
        if !text.ends_with('\n') {
            return None;
        }
        s.finish_block()?;
    }
    if s.pending {
        // A last key with no value: null, marked at the start of the line after the text (the
        // full parser ends every text with a line break).
        let breaks =
            text.bytes().filter(|&c| c == b'\n').count() + usize::from(!text.ends_with('\n'));
        let line = first_line.checked_add(u32::try_from(breaks).ok()?)?;
        // Without that line break the mark depends on what the last line holds.
        if s.stack.is_empty() || !text.ends_with('\n') {
            return None;
        }
        let pos = at(line, 0)?;
        s.b.event(Event::Scalar("~".into(), TScalarStyle::Plain, 0, None), pos)
            .ok()?;
    }
    while let Some(open) = s.stack.pop() {
        s.close(open)?;
    }
    let start = s.start.or(s.doc_marker).unwrap_or(Pos {
        line: first_line,
        column: 1,
    });
    Some(Document {
        value: s.b.root.unwrap_or(Value::Null),
        start,
        positions: s.b.positions,
    })
}

/// A literal block scalar being read.
struct Block {
    /// `|-`: no final line break.
    strip: bool,
    /// The indentation of the collection it is in: its content is more indented.
    above: usize,
    /// The content's indentation, from its first line.
    indent: Option<usize>,
    text: String,
    /// Empty lines since the last content line.
    empty: usize,
    /// Where its content starts (the full parser marks it there).
    pos: Option<Pos>,
}

struct Scan {
    b: Builder,
    block: Option<Block>,
    stack: Vec<Open>,
    /// The last key, or the root, waits for a block value on a later line.
    pending: bool,
    start: Option<Pos>,
    doc_marker: Option<Pos>,
    /// The root node is complete: any more content is a second document.
    done: bool,
}

fn at(line: u32, col: usize) -> Option<Pos> {
    Some(Pos {
        line,
        column: u32::try_from(col).ok()?.checked_add(1)?,
    })
}

impl Scan {
    fn emit(&mut self, event: Event, pos: Pos) -> Option<()> {
        self.start.get_or_insert(pos);
        self.b.event(event, pos).ok()
    }

    fn close(&mut self, open: Open) -> Option<()> {
        let end = match open {
            Open::Map(_) => Event::MappingEnd,
            Open::Seq(_) => Event::SequenceEnd,
        };
        // The end's position is never recorded; only a builder error would use it, and on an
        // error this scanner gives up anyway.
        self.b.event(end, Pos { line: 0, column: 0 }).ok()?;
        if self.stack.is_empty() {
            self.done = true;
        }
        Some(())
    }

    /// A line of a literal block scalar: `Some(true)` when it was one, `Some(false)` when it
    /// ends the scalar (and is to be read as usual).
    fn block_line(&mut self, line: &str, line_no: u32) -> Option<bool> {
        let Some(block) = &mut self.block else {
            return Some(false);
        };
        let spaces = line.bytes().take_while(|&c| c == b' ').count();
        let blank = spaces == line.len();
        match block.indent {
            None => {
                // Leading empty lines, and an empty scalar, are the full parser's.
                if blank || spaces <= block.above {
                    return None;
                }
                block.indent = Some(spaces);
                block.pos = Some(at(line_no, spaces)?);
                block.text.push_str(&line[spaces..]);
                Some(true)
            }
            Some(n) if blank => {
                // Spaces past the indentation would be content.
                if spaces > n {
                    return None;
                }
                block.empty += 1;
                Some(true)
            }
            Some(n) if spaces >= n => {
                for _ in 0..=block.empty {
                    block.text.push('\n');
                }
                block.empty = 0;
                block.text.push_str(&line[n..]);
                Some(true)
            }
            Some(_) => {
                self.finish_block()?;
                Some(false)
            }
        }
    }

    fn finish_block(&mut self) -> Option<()> {
        let block = self.block.take()?;
        let mut text = block.text;
        if !block.strip {
            text.push('\n');
        }
        self.emit(
            Event::Scalar(text, TScalarStyle::Literal, 0, None),
            block.pos?,
        )
    }

    fn line(&mut self, line: &str, line_no: u32) -> Option<()> {
        if self.block_line(line, line_no)? {
            return Some(());
        }
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&c| c == b' ').count();
        let rest = &line[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            return Some(());
        }
        if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
            let is_marker = rest.len() == 3 || rest.as_bytes()[3] == b' ';
            if !is_marker {
                // `---x` is a plain scalar; the full parser decides.
                return None;
            }
            if rest.starts_with("---")
                && self.start.is_none()
                && self.doc_marker.is_none()
                && matches!(
                    rest[3..].trim_start_matches(' ').as_bytes().first(),
                    None | Some(b'#')
                )
            {
                self.doc_marker = at(line_no, 0);
                return Some(());
            }
            return None;
        }
        if indent == 0 && rest.starts_with('%') {
            return None;
        }
        if self.done {
            return None;
        }
        let entry = is_entry(rest);
        let mut nested = self.pending;
        if self.pending {
            self.pending = false;
            match self.stack.last().copied() {
                // A block value of the last key, more indented.
                Some(o) if indent > o.indent() => {
                    if entry {
                        self.open(Open::Seq(indent), at(line_no, indent)?)?;
                    } else {
                        self.open_map(rest, indent, line_no)?;
                    }
                }
                // A sequence at its key's indentation (`containers:` then `- name:`); the full
                // parser marks it where its first entry's content starts.
                Some(Open::Map(m)) if indent == m && entry => {
                    let spaces = rest[1..].bytes().take_while(|&c| c == b' ').count();
                    self.open(Open::Seq(indent), at(line_no, indent + 1 + spaces)?)?;
                }
                // The root, on the first content line.
                None => {
                    if entry {
                        self.open(Open::Seq(indent), at(line_no, indent)?)?;
                    } else {
                        self.open_map(rest, indent, line_no)?;
                    }
                }
                // An empty value (`key:` and then the next key): null, marked where the next
                // content starts, as the full parser marks it.
                Some(Open::Map(_)) => {
                    let pos = at(line_no, indent)?;
                    self.b
                        .event(Event::Scalar("~".into(), TScalarStyle::Plain, 0, None), pos)
                        .ok()?;
                    nested = false;
                }
                Some(Open::Seq(_)) => return None,
            }
        }
        if !nested {
            // Close what this line is less indented than.
            while let Some(&top) = self.stack.last() {
                if top.indent() > indent {
                    self.stack.pop();
                    self.close(top)?;
                } else {
                    break;
                }
            }
            match self.stack.last().copied() {
                Some(Open::Seq(i)) if i == indent && !entry => {
                    // A key after a sequence at its key's indentation ends the sequence.
                    let below = self.stack.len().checked_sub(2).map(|k| self.stack[k]);
                    if below != Some(Open::Map(indent)) {
                        return None;
                    }
                    self.stack.pop();
                    self.close(Open::Seq(i))?;
                }
                Some(Open::Seq(i)) if i == indent => {}
                Some(Open::Map(i)) if i == indent && !entry => {}
                // More indented than the open collection with nothing pending (a scalar
                // continued on the next line), or between two levels: the full parser.
                _ => return None,
            }
        }
        self.content(rest, indent, line_no)
    }

    fn open(&mut self, open: Open, pos: Pos) -> Option<()> {
        let event = match open {
            Open::Map(_) => Event::MappingStart(0, None),
            Open::Seq(_) => Event::SequenceStart(0, None),
        };
        self.emit(event, pos)?;
        self.stack.push(open);
        Some(())
    }

    /// A block mapping whose first key starts `text`, at column `col`. yaml-rust2 marks a block
    /// mapping where its first key's `:` is; the positions must be the full parser's.
    fn open_map(&mut self, text: &str, col: usize, line_no: u32) -> Option<()> {
        let colon = col + key_end(text)?;
        self.open(Open::Map(col), at(line_no, colon)?)
    }

    /// The content of a line at column `col`, in the collection on top of the stack.
    fn content(&mut self, rest: &str, col: usize, line_no: u32) -> Option<()> {
        if is_entry(rest) {
            let after = &rest[1..];
            let spaces = after.bytes().take_while(|&c| c == b' ').count();
            let item = &after[spaces..];
            if item.is_empty() || item.starts_with('#') || is_entry(item) {
                return None;
            }
            let item_col = col + 1 + spaces;
            if let Some(key_len) = key_end(item) {
                // Marked at the first key's `:`, as `open_map` does.
                self.open(Open::Map(item_col), at(line_no, item_col + key_len)?)?;
                return self.pair(item, key_len, item_col, line_no);
            }
            return self.value(item, item_col, line_no);
        }
        let key_len = key_end(rest)?;
        self.pair(rest, key_len, col, line_no)
    }

    /// `key: value`, or `key:` with its value on later lines.
    fn pair(&mut self, text: &str, key_len: usize, col: usize, line_no: u32) -> Option<()> {
        let (key, style) = scalar(&text[..key_len])?;
        if style == TScalarStyle::Plain && key == "<<" {
            return None;
        }
        self.emit(Event::Scalar(key, style, 0, None), at(line_no, col)?)?;
        let after = &text[key_len + 1..];
        let spaces = after.bytes().take_while(|&c| c == b' ').count();
        let value = &after[spaces..];
        if value.is_empty() || value.starts_with('#') {
            self.pending = true;
            return Some(());
        }
        self.value(value, col + key_len + 1 + spaces, line_no)
    }

    /// A value that starts and ends on this line.
    fn value(&mut self, text: &str, col: usize, line_no: u32) -> Option<()> {
        let pos = at(line_no, col)?;
        if matches!(text.as_bytes()[0], b'{' | b'[') {
            return self.flow(text, col, line_no);
        }
        if text.starts_with('|') {
            // `|` or `|-`, and perhaps a comment; `|+` and indentation indicators are the full
            // parser's.
            let header = strip_comment(text);
            let strip = match header {
                "|" => false,
                "|-" => true,
                _ => return None,
            };
            let above = self.stack.last()?.indent();
            self.block = Some(Block {
                strip,
                above,
                indent: None,
                text: String::new(),
                empty: 0,
                pos: None,
            });
            return Some(());
        }
        let content = strip_comment(text);
        let (value, style) = scalar(content)?;
        self.emit(Event::Scalar(value, style, 0, None), pos)
    }
}

impl Scan {
    /// A flow collection that opens and closes on this line (`{app: web}`, `["sleep", "1d"]`),
    /// with nothing but a comment after it.
    fn flow(&mut self, text: &str, col: usize, line_no: u32) -> Option<()> {
        /// Where a flow mapping is: before a key, before its value, or after the value.
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum At {
            Key,
            Value,
            After,
        }
        let b = text.as_bytes();
        // Each open bracket, and for a mapping where it is.
        let mut open: Vec<(u8, At)> = Vec::new();
        let mut i = 0;
        loop {
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            let c = *b.get(i)?;
            let pos = at(line_no, col + i)?;
            match c {
                b'{' | b'[' => {
                    if matches!(open.last(), Some((b'{', At::Key))) {
                        // A collection as a key.
                        return None;
                    }
                    let event = if c == b'{' {
                        Event::MappingStart(0, None)
                    } else {
                        Event::SequenceStart(0, None)
                    };
                    self.emit(event, pos)?;
                    open.push((c, At::Key));
                    i += 1;
                    continue;
                }
                b'}' | b']' => {
                    let want = if c == b'}' { b'{' } else { b'[' };
                    match open.last() {
                        // `{a: }` is left to the full parser.
                        Some((o, at)) if *o == want && *at != At::Value => {}
                        _ => return None,
                    }
                    let event = if c == b'}' {
                        Event::MappingEnd
                    } else {
                        Event::SequenceEnd
                    };
                    self.emit(event, pos)?;
                    open.pop();
                    i += 1;
                }
                _ => {
                    let len = flow_scalar_len(&text[i..])?;
                    let (value, style) = scalar(text[i..i + len].trim_end_matches(' '))?;
                    let is_key = matches!(open.last(), Some((b'{', At::Key)));
                    if is_key && style == TScalarStyle::Plain && value == "<<" {
                        return None;
                    }
                    self.emit(Event::Scalar(value, style, 0, None), pos)?;
                    i += len;
                    if is_key {
                        // `key: value` only: `{a}` and `{a, b}` are the full parser's.
                        if b.get(i) != Some(&b':') || b.get(i + 1) != Some(&b' ') {
                            return None;
                        }
                        i += 2;
                        if let Some(t) = open.last_mut() {
                            t.1 = At::Value;
                        }
                        continue;
                    }
                }
            }
            // A node is complete: the value of the mapping around it, if it is in one.
            if let Some(t) = open.last_mut()
                && t.0 == b'{'
            {
                t.1 = At::After;
            }
            if open.is_empty() {
                let rest = &text[i..];
                let tail = rest.trim_start_matches(' ');
                return (tail.is_empty() || (tail.starts_with('#') && rest.starts_with(' ')))
                    .then_some(());
            }
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            match b.get(i)? {
                b',' => {
                    i += 1;
                    if let Some(t) = open.last_mut() {
                        t.1 = At::Key;
                    }
                    // A trailing `,` before the bracket is the full parser's.
                    let next = b[i..].iter().find(|&&c| c != b' ');
                    if matches!(next, Some(b'}' | b']') | None) {
                        return None;
                    }
                }
                b'}' | b']' => {}
                _ => return None,
            }
        }
    }
}

/// The length of a scalar inside a flow collection: quoted to its closing quote, plain up to a
/// `,`, a bracket or a `: `. `None` for what the full parser should read.
fn flow_scalar_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    if matches!(b[0], b'"' | b'\'') {
        return Some(quoted_end(text, b[0])? + 1);
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b',' | b'[' | b']' | b'{' | b'}' => break,
            b':' if matches!(
                b.get(i + 1),
                None | Some(b' ' | b',' | b'[' | b']' | b'{' | b'}')
            ) =>
            {
                break;
            }
            b'#' if i > 0 && b[i - 1] == b' ' => return None,
            b'\'' | b'"' => return None,
            // After a space, an indicator may start something else in a flow collection.
            b' ' if matches!(
                b.get(i + 1),
                Some(
                    b'-' | b'?'
                        | b':'
                        | b'#'
                        | b'!'
                        | b'&'
                        | b'*'
                        | b'|'
                        | b'>'
                        | b'%'
                        | b'@'
                        | b'`'
                )
            ) =>
            {
                return None;
            }
            _ => i += 1,
        }
    }
    (i > 0).then_some(i)
}

/// `- ` or a lone `-`: a sequence entry.
fn is_entry(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.first() == Some(&b'-') && (b.len() == 1 || b[1] == b' ')
}

/// Where the `:` that ends a key on this line is, if the line is a `key: value` or `key:`.
fn key_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    match b.first()? {
        // A flow collection as a key, or an entry that is one.
        b'{' | b'[' => None,
        q @ (b'"' | b'\'') => {
            let close = quoted_end(text, *q)?;
            let after = &b[close + 1..];
            let colon = after.iter().take_while(|&&c| c == b' ').count();
            if after.get(colon) != Some(&b':') {
                return None;
            }
            // A space before the colon is part of neither; keep the key exact.
            if colon != 0 {
                return None;
            }
            let next = after.get(colon + 1);
            (next.is_none() || next == Some(&b' ')).then_some(close + 1)
        }
        _ => {
            let mut i = 0;
            while i < b.len() {
                if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
                    return Some(i);
                }
                if b[i] == b'#' && i > 0 && b[i - 1] == b' ' {
                    return None;
                }
                i += 1;
            }
            None
        }
    }
}

/// The index of the quote closing the quoted scalar that `text` starts with (`''` inside single
/// quotes is a quote); `None` if it does not close on this line or holds an escape.
fn quoted_end(text: &str, quote: u8) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote == b'"' => return None,
            c if c == quote => {
                if quote == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Some(i);
            }
            _ => i += 1,
        }
    }
    None
}

/// The text before a trailing ` # comment`, without trailing spaces.
fn strip_comment(text: &str) -> &str {
    let b = text.as_bytes();
    let mut end = b.len();
    if !matches!(b.first(), Some(b'"' | b'\'')) {
        for i in 1..b.len() {
            if b[i] == b'#' && b[i - 1] == b' ' {
                end = i;
                break;
            }
        }
    }
    text[..end].trim_end_matches(' ')
}

/// One scalar, the whole of `text` (a key, or a value without its comment): plain, or quoted
/// and closed with nothing but a comment after it.
fn scalar(text: &str) -> Option<(String, TScalarStyle)> {
    let b = text.as_bytes();
    match *b.first()? {
        q @ (b'"' | b'\'') => {
            let close = quoted_end(text, q)?;
            let after = &text[close + 1..];
            let tail = after.trim_start_matches(' ');
            // A comment needs a space before its `#`.
            if !(tail.is_empty() || (tail.starts_with('#') && after.starts_with(' '))) {
                return None;
            }
            let inner = &text[1..close];
            if q == b'"' {
                Some((inner.to_owned(), TScalarStyle::DoubleQuoted))
            } else {
                Some((inner.replace("''", "'"), TScalarStyle::SingleQuoted))
            }
        }
        // Indicators a plain scalar cannot start with, or that start what this scanner does
        // not read.
        b'[' | b']' | b'{' | b'}' | b',' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%'
        | b'@' | b'`' => None,
        b'-' | b'?' | b':' if b.len() == 1 || b[1] == b' ' => None,
        _ => {
            let plain = text.trim_end_matches(' ');
            // `: ` or ` #` inside is a mapping or a comment the caller did not expect; a
            // trailing `:` is a key.
            if plain.contains(": ") || plain.contains(" #") || plain.ends_with(':') {
                return None;
            }
            Some((plain.to_owned(), TScalarStyle::Plain))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rstest::rstest;

    use super::super::{Record, YamlError, load_fast, load_full};

    type Seen = Result<(serde_json::Value, (u32, u32), BTreeMap<String, (u32, u32)>), String>;

    fn seen(doc: Result<super::Document, YamlError>) -> Seen {
        doc.map(|d| {
            let positions = d
                .positions
                .iter()
                .map(|(k, p)| (k.clone(), (p.line, p.column)))
                .collect();
            (d.value, (d.start.line, d.start.column), positions)
        })
        .map_err(|e| e.to_string())
    }

    /// Whatever the fast path reads, it reads as the full parser does, in both record modes.
    fn same_as_full(text: &str) -> bool {
        let mut read = false;
        for record in [Record::All, Record::ImageFields] {
            if let Some(fast) = load_fast(text, record) {
                read = true;
                assert_eq!(
                    seen(Ok(fast)),
                    seen(load_full(text, record)),
                    "{text:?} in {record:?}"
                );
            }
        }
        read
    }

    #[rstest]
    #[case::deployment(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web # the name\n  labels: {app: web, tier: \"front\"}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: docker-registry.wikimedia.org/app:1.0@sha256:ab\n        args: [\"--port\", '8080']\n        resources: {}\n      volumes:\n        - name: data\n          emptyDir: {}\n"
    )]
    #[case::document_marker("--- # first\nkind: Pod\n")]
    #[case::empty_values("on:\n  pull_request:\n\njobs:\n  x: 1\n")]
    #[case::last_key_empty("a: 1\nb:\n")]
    #[case::quoted_keys("'a b': 1\n\"c\": 'it''s'\n")]
    #[case::nested_flow("a: {b: [1, {c: d}], e: []}\n")]
    #[case::root_sequence("- a\n- b: 1\n  c: 2\n")]
    #[case::resolution("a: yes\nb: 010\nc: 0x1f\nd: ~\ne: 1.5\nf: '1.5'\n")]
    #[case::literal_block(
        "data:\n  app.conf: |\n    a = 1\n\n    # not a comment\n      indented\n  other: x\n"
    )]
    #[case::stripped_block("a: |- # header comment\n  x\n\n  y\n\nb: 1\n")]
    #[case::block_in_sequence("- |\n  x\n- k: |\n    y\n  j: 1\n")]
    #[case::image_volume(
        "spec:\n  volumes:\n  - name: v\n    image:\n      reference: quay.io/x/y:1\n"
    )]
    fn reads_manifests_as_the_full_parser(#[case] text: &str) {
        assert!(same_as_full(text), "the fast path should read {text:?}");
    }

    #[rstest]
    #[case::anchor_and_alias("a: &x 1\nb: *x\n")]
    #[case::merge_key("a: {x: 1}\nb:\n  <<: {x: 2}\n")]
    #[case::merge_after_image("image: a\n<<: {image: b}\n")]
    #[case::tag("a: !!str 1\n")]
    #[case::kept_block("a: |+\n  text\n\n")]
    #[case::indentation_indicator("a: |2\n   text\n")]
    #[case::block_leading_empty_line("a: |\n\n  text\n")]
    #[case::block_without_final_break("a: |\n  text")]
    #[case::empty_block("a: |\nb: 1\n")]
    #[case::folded("a: >-\n  text\n")]
    #[case::multi_line_plain("a: one\n  two\n")]
    #[case::multi_line_flow("a: [1,\n  2]\n")]
    #[case::escape("a: \"x\\ny\"\n")]
    #[case::duplicate_key("a: 1\na: 2\n")]
    #[case::duplicate_in_flow("a: {b: 1, b: 2}\n")]
    #[case::tab("a:\tb\n")]
    #[case::crlf("a: b\r\n")]
    #[case::non_ascii("a: é\n")]
    #[case::nul("a: b\0\n")]
    #[case::escape_character("a: \u{1b}\n")]
    #[case::bom_inside("a: \u{feff}b\n")]
    #[case::second_document("a: 1\n---\nb: 2\n")]
    #[case::directive("%YAML 1.1\n---\na: 1\n")]
    #[case::document_end("a: 1\n...\n")]
    #[case::complex_key("? a\n: b\n")]
    #[case::empty_entry("- \n- a\n")]
    #[case::nested_entry("- - a\n")]
    #[case::root_scalar("hello\n")]
    #[case::json("{\"a\": 1}\n")]
    #[case::flow_key_only("a: {b}\n")]
    #[case::trailing_comma("a: [1, 2,]\n")]
    #[case::mapping_in_value("a: b: c\n")]
    #[case::last_key_without_newline("a:")]
    fn leaves_the_rest_to_the_full_parser(#[case] text: &str) {
        assert!(load_fast(text, Record::All).is_none(), "{text:?}");
        assert!(load_fast(text, Record::ImageFields).is_none(), "{text:?}");
    }

    /// Lines of YAML-ish pieces: indentation, keys, entries, scalars of every style, flow
    /// collections and the characters that change what a line means.
    fn line() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a",
            "image",
            "containers",
            "reference",
            "x/y",
            "a~b",
            "- ",
            "-",
            ": ",
            ":",
            " #c",
            "#",
            "'q'",
            "'it''s'",
            "\"d\"",
            "\"e\\n\"",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "{}",
            "[]",
            "{a: b}",
            "[a, b]",
            "&a ",
            "*a",
            "!!str ",
            "|",
            "|-",
            "|+",
            ">",
            "<<",
            "1",
            "010",
            "yes",
            "~",
            "1.5",
            "nginx:1.25",
            "h:5000/r@sha256:ab",
            " ",
            "---",
            "...",
            "? ",
            "%",
            "@",
            "a b",
        ]);
        (0usize..7, prop::collection::vec(piece, 1..5))
            .prop_map(|(indent, pieces)| format!("{}{}\n", " ".repeat(indent), pieces.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn never_reads_a_document_differently(lines in prop::collection::vec(line(), 1..8)) {
            same_as_full(&lines.concat());
        }
    }
}
