//! Stage 1: YAML text to a tree of spanned nodes.
//!
//! Input: a [`SourceFile`]. Output: the first document as a [`Node`] tree
//! (or `None`), plus diagnostics. Every node carries the byte span it was
//! written at; the parser's character positions are converted here, once.
//!
//! Invariants, whatever the input:
//! - the tree is at most [`MAX_YAML_DEPTH`] deep and holds at most
//!   [`MAX_YAML_NODES`] nodes with aliases expanded (alias bombs stop here);
//! - a syntax error yields exactly one `D4C0002` and no tree, because the
//!   parser cannot resume and a partial tree would only produce noise;
//! - a second document is reported (`D4C0004`) and ignored; an empty file
//!   yields no tree and one `D4C0004`.

use crate::codes::Code;
use crate::diag::{Diagnostic, Diagnostics};
use crate::limits::{MAX_YAML_DEPTH, MAX_YAML_NODES};
use crate::source::{CharToByte, Embedding, EmbeddingBuilder, SourceFile, StringStyle};
use crate::span::Span;
use saphyr_parser::{Event, Parser, ScalarStyle, SpannedEventReceiver};
use std::collections::HashMap;

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Where it was written. For a collection, from its first to its last
    /// child (or its opening token when empty).
    pub span: Span,
}

/// The three kinds of YAML node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar, resolved by the YAML 1.2 core schema.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order, duplicates kept (the next stage reports them).
    Map(Vec<(Node, Node)>),
}

/// What the YAML 1.2 core schema makes of a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// A string: quoted, tagged `!!str`, or plain text that is nothing else.
    Str,
    /// `true` or `false` (plain).
    Bool(bool),
    /// An integer (plain).
    Int,
    /// A floating-point number (plain).
    Float,
    /// `null`, `~` or nothing (plain).
    Null,
}

/// A scalar's text and type.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The value after YAML unescaping and folding.
    pub value: String,
    /// Its type under the core schema.
    pub ty: ScalarType,
    /// Byte offset of `value` in the source when the value is written there
    /// verbatim (plain, or quoted without escapes on one line); `None`
    /// otherwise. Lets diagnostics underline characters inside a value.
    pub verbatim_at: Option<usize>,
}

impl Node {
    /// The scalar, if this is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the node's type for messages: `a map`,
    /// `a list`, `the string "x"`, `the number 3`, `null` ...
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Map(_) => "a map".into(),
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Scalar(s) => match s.ty {
                ScalarType::Str => format!("the string `{}`", s.value),
                ScalarType::Bool(b) => format!("the boolean `{b}`"),
                ScalarType::Int | ScalarType::Float => format!("the number `{}`", s.value),
                ScalarType::Null => "an empty value".into(),
            },
        }
    }

    /// The span of bytes `range` of this scalar's value, when the value is
    /// written verbatim; the whole node's span otherwise.
    pub fn sub_span(&self, range: std::ops::Range<usize>) -> Span {
        match self.as_scalar().and_then(|s| s.verbatim_at) {
            Some(at) => Span::new(at + range.start, at + range.end),
            None => self.span,
        }
    }
}

/// Parses the first YAML document of `source`.
///
/// Returns the document's root (or `None` when the file is empty, not YAML,
/// or over a limit), with every diagnostic found.
pub fn parse(source: &SourceFile, diagnostics: &mut Diagnostics) -> Option<Node> {
    let text = source.text.as_str();
    let mut builder = Builder {
        text,
        positions: CharToByte::new(text),
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: 0,
        root: None,
        nodes: 0,
        too_deep_at: None,
        too_many_at: None,
        second_document: None,
        first_document: None,
    };
    let mut parser = Parser::new_from_str(text);
    let result = parser.load(&mut builder, true);
    // A limit of ours takes precedence over a later parser error: saphyr's
    // own flow-nesting guard (255 levels) trips after ours (64) on the same
    // input, and "too deep" is the better message.
    if let Some(at) = builder.too_deep_at {
        diagnostics.push(too_deep(at));
        return None;
    }
    if let Some(at) = builder.too_many_at {
        diagnostics.push(
            Diagnostic::new(
                Code::InputLimit,
                at,
                format!("the YAML holds more than {MAX_YAML_NODES} nodes once its aliases are expanded"),
            )
            .label("the limit is reached here")
            .help("write the policy out without aliases, or make it smaller"),
        );
        return None;
    }
    if let Err(err) = result {
        let at = builder.positions.byte(err.marker().index());
        let end = text.get(at..).and_then(|r| r.chars().next()).map_or(at, |c| at + c.len_utf8());
        // saphyr's scanner reads flow collections ahead of the events we
        // count, so its guard can trip before ours: it is the same limit.
        if err.info().contains("recursion limit") {
            diagnostics.push(too_deep(Span::new(at, end)));
            return None;
        }
        diagnostics.push(syntax_error(text, at, end, err.info()));
        return None;
    }
    if let Some(at) = builder.second_document {
        diagnostics.push(
            Diagnostic::new(Code::DocumentCount, at, "a policy file holds one YAML document; this is a second one")
                .label("second document starts here")
                .help("put each policy in a file of its own"),
        );
    }
    let root = builder.root.filter(|n| !is_null(n));
    if root.is_none() {
        // Point at an explicit `---` when there is one: it is what the user wrote.
        let at = builder.first_document.filter(|s| s.end > s.start).unwrap_or(Span::point(0));
        diagnostics.push(
            Diagnostic::new(Code::DocumentCount, at, "the file holds no policy")
                .help("a policy has a `file:` or `process:` section, or both"),
        );
    }
    root
}

/// The diagnostic for a YAML syntax error at byte `at..end`, with a help
/// line for the mistakes people make most.
fn syntax_error(text: &str, at: usize, end: usize, info: &str) -> Diagnostic {
    let mut span = Span::new(at, end);
    let help = if info.contains("tab") {
        // saphyr reports where the scalar it was reading began; the tab that
        // broke it is further on. Point at it.
        if let Some(offset) = text.get(at..).and_then(|rest| rest.find('\t')) {
            span = Span::new(at + offset, at + offset + 1);
        }
        "YAML indents with spaces, never tabs: replace the tab with spaces"
    } else if info.contains("quoted scalar") {
        "a quoted string is not closed: add the closing quote"
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        "a `[` or `{` list is not closed, or an item in it is missing a comma"
    } else if info.contains("mapping values are not allowed") {
        "a `key: value` line is inside a value: check the indentation, or quote a value that contains `: `"
    } else {
        "check the indentation and quoting at and just before this point"
    };
    Diagnostic::new(Code::InvalidYaml, span, format!("invalid YAML: {info}"))
        .label("the YAML parser stopped here")
        .help(help)
}

fn too_deep(at: Span) -> Diagnostic {
    Diagnostic::new(Code::InputLimit, at, format!("the YAML nests deeper than {MAX_YAML_DEPTH} levels"))
        .label("too deep")
        .help("a policy needs four levels: `file` > `selectors` > a selector > a condition list")
}

fn is_null(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Scalar(s) if s.ty == ScalarType::Null)
}

/// A collection under construction.
enum Open {
    Seq { items: Vec<Node>, start: Span, anchor: usize },
    Map { entries: Vec<(Node, Node)>, key: Option<Node>, start: Span, anchor: usize },
}

struct Builder<'a> {
    text: &'a str,
    positions: CharToByte<'a>,
    stack: Vec<Open>,
    /// Anchored nodes with their node counts.
    anchors: HashMap<usize, (Node, usize)>,
    documents: usize,
    root: Option<Node>,
    /// Nodes made so far, aliases counted at their expanded size.
    nodes: usize,
    too_deep_at: Option<Span>,
    too_many_at: Option<Span>,
    second_document: Option<Span>,
    /// Where the first document starts (its `---` when explicit).
    first_document: Option<Span>,
}

impl Builder<'_> {
    fn span(&self, span: saphyr_parser::Span) -> Span {
        Span::new(self.positions.byte(span.start.index()), self.positions.byte(span.end.index()))
    }

    /// Counts `count` more nodes; false (and the limit recorded) when over.
    fn count(&mut self, count: usize, at: Span) -> bool {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > MAX_YAML_NODES {
            self.too_many_at.get_or_insert(at);
            return false;
        }
        true
    }

    fn open(&mut self, open: Open, at: Span) {
        if self.stack.len() >= MAX_YAML_DEPTH {
            self.too_deep_at.get_or_insert(at);
            return;
        }
        if self.count(1, at) {
            self.stack.push(open);
        }
    }

    /// Places a finished node in its parent (or as the root).
    fn place(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }

    fn scalar(&self, value: String, style: ScalarStyle, tag: Option<&saphyr_parser::Tag>, span: Span) -> Scalar {
        let tagged_str = tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
        let ty = if style != ScalarStyle::Plain || tagged_str { ScalarType::Str } else { resolve_plain(&value) };
        let source = self.text.get(span.range()).unwrap_or_default();
        let verbatim_at = match style {
            ScalarStyle::Plain if source == value => Some(span.start),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                if source.len() == value.len() + 2 && source.get(1..source.len() - 1) == Some(value.as_str()) =>
            {
                Some(span.start + 1)
            }
            _ => None,
        };
        Scalar { value, ty, verbatim_at }
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(value: &str) -> ScalarType {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "true" | "True" | "TRUE" => return ScalarType::Bool(true),
        "false" | "False" | "FALSE" => return ScalarType::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => return ScalarType::Float,
        _ => {}
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarType::Int;
    }
    if let Some(hex) = value.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return ScalarType::Int;
        }
    }
    if let Some(oct) = value.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return ScalarType::Int;
        }
    }
    if is_core_float(digits) {
        return ScalarType::Float;
    }
    ScalarType::Str
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit before the exponent.
fn is_core_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (text.get(..i).unwrap_or_default(), Some(text.get(i + 1..).unwrap_or_default())),
        None => (text, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int) && frac.is_none_or(all_digits) && (int.len() + frac.map_or(0, str::len)) > 0;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

impl<'input> SpannedEventReceiver<'input> for Builder<'_> {
    fn on_event(&mut self, event: Event<'input>, span: saphyr_parser::Span) {
        let at = self.span(span);
        if let Event::DocumentStart(_) = event {
            self.documents += 1;
            if self.documents == 1 {
                self.first_document = Some(at);
            }
            if self.documents == 2 {
                self.second_document = Some(at);
            }
            return;
        }
        // Past a limit the tree is dropped, and a second document is only
        // reported: either way the rest of the stream is not built.
        if self.documents > 1 || self.too_deep_at.is_some() || self.too_many_at.is_some() {
            return;
        }
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                if self.count(1, at) {
                    let scalar = self.scalar(value.into_owned(), style, tag.as_deref(), at);
                    self.place(Node { kind: NodeKind::Scalar(scalar), span: at }, anchor);
                }
            }
            Event::Alias(id) => {
                let Some(&(_, size)) = self.anchors.get(&id) else { return };
                // Count before cloning, so that a bomb never materialises.
                if self.count(size, at) {
                    if let Some((node, _)) = self.anchors.get(&id) {
                        // The copy is where the alias is: a diagnostic about
                        // it points at the `*name` (the response that uses
                        // it), never at the anchored original.
                        let node = at_alias(node.clone(), at);
                        self.place(node, 0);
                    }
                }
            }
            Event::SequenceStart(anchor, _) => self.open(Open::Seq { items: Vec::new(), start: at, anchor }, at),
            Event::MappingStart(anchor, _) => {
                self.open(Open::Map { entries: Vec::new(), key: None, start: at, anchor }, at);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq { items, start, anchor }) => {
                        let span = match (items.first(), items.last()) {
                            (Some(f), Some(l)) => f.span.to(l.span),
                            _ => start,
                        };
                        (Node { kind: NodeKind::Seq(items), span }, anchor)
                    }
                    Some(Open::Map { entries, start, anchor, .. }) => {
                        let span = match (entries.first(), entries.last()) {
                            (Some(f), Some(l)) => f.0.span.to(l.1.span),
                            _ => start,
                        };
                        (Node { kind: NodeKind::Map(entries), span }, anchor)
                    }
                    None => return,
                };
                self.place(node.0, node.1);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::DocumentStart(_) => {}
        }
    }
}

/// `node`, the copy an alias stands for, moved to the alias at `at`: every
/// node of it spans the alias, and no scalar claims to be written there
/// verbatim (its text is at the anchor).
fn at_alias(mut node: Node, at: Span) -> Node {
    node.span = at;
    match &mut node.kind {
        NodeKind::Scalar(scalar) => scalar.verbatim_at = None,
        NodeKind::Seq(items) => {
            *items = std::mem::take(items).into_iter().map(|n| at_alias(n, at)).collect();
        }
        NodeKind::Map(entries) => {
            *entries = std::mem::take(entries).into_iter().map(|(k, v)| (at_alias(k, at), at_alias(v, at))).collect();
        }
    }
    node
}

/// Nodes in a subtree.
fn node_count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(k, v)| node_count(k) + node_count(v)).sum::<usize>(),
    }
}

/// The text of string `node` and where each of its bytes was written in
/// `text`, the file: for a policy embedded in a string (a Fleet package
/// policy's `configuration`), whose diagnostics must point into the file.
///
/// Maps byte for byte what is written verbatim; an escape (`\n`, `\"`,
/// `\u00e9`, a surrogate pair), a `''` in a single-quoted string, a CRLF
/// line break or a block's indentation maps as one unit. Strings decoded
/// by rules this does not follow (folded blocks, quoted strings over
/// several lines) map every byte to the whole string: still a position in
/// the file, never a wrong one. `None` when `node` is not a string.
pub fn embedded(node: &Node, text: &str) -> Option<(String, Embedding)> {
    let scalar = node.as_scalar().filter(|s| s.ty == ScalarType::Str)?;
    let value = scalar.value.clone();
    let whole = node.span;
    if let Some(at) = scalar.verbatim_at {
        let mut builder = EmbeddingBuilder::new();
        builder.verbatim(at, value.len());
        return Some((value.clone(), builder.finish(whole, StringStyle::Verbatim, at + value.len())));
    }
    let source = text.get(whole.start..).unwrap_or_default();
    let decoded = match source.chars().next() {
        Some('"') => decode_double_quoted(source, whole.start),
        Some('\'') => decode_single_quoted(source, whole.start),
        Some('|') => decode_literal(source, whole.start, &value),
        _ => None,
    };
    let embedding = match decoded {
        Some((mine, builder, style, end)) if mine == value => builder.finish(whole, style, end),
        _ => Embedding::opaque(whole, value.len()),
    };
    Some((value, embedding))
}

type Decoded = (String, EmbeddingBuilder, StringStyle, usize);

/// A double-quoted string on one line, starting at `source` (its `"`),
/// which is at file byte `base`.
fn decode_double_quoted(source: &str, base: usize) -> Option<Decoded> {
    let mut out = String::new();
    let mut builder = EmbeddingBuilder::new();
    let bytes = source.as_bytes();
    let mut i = 1;
    let mut run_start = 1;
    loop {
        let &b = bytes.get(i)?;
        match b {
            b'"' => {
                out.push_str(source.get(run_start..i)?);
                builder.verbatim(base + run_start, i - run_start);
                return Some((out, builder, StringStyle::DoubleQuoted, base + i));
            }
            b'\n' | b'\r' => return None,
            b'\\' => {
                out.push_str(source.get(run_start..i)?);
                builder.verbatim(base + run_start, i - run_start);
                let (c, len) = unescape(source.get(i..)?)?;
                let before = out.len();
                out.push(c);
                builder.escape(base + i, len, out.len() - before);
                i += len;
                run_start = i;
            }
            _ => i += 1,
        }
    }
}

/// The escape at the start of `rest` (its `\`): the character and the
/// escape's length in bytes. JSON's escapes and YAML's.
fn unescape(rest: &str) -> Option<(char, usize)> {
    let hex = |digits: &str| u32::from_str_radix(digits, 16).ok();
    let kind = rest.as_bytes().get(1).copied()?;
    let simple = match kind {
        b'"' => Some('"'),
        b'\\' => Some('\\'),
        b'/' => Some('/'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' | b'\t' => Some('\t'),
        b'0' => Some('\0'),
        b'a' => Some('\u{7}'),
        b'v' => Some('\u{b}'),
        b'e' => Some('\u{1b}'),
        b' ' => Some(' '),
        b'N' => Some('\u{85}'),
        b'_' => Some('\u{a0}'),
        b'L' => Some('\u{2028}'),
        b'P' => Some('\u{2029}'),
        _ => None,
    };
    if let Some(c) = simple {
        return Some((c, 2));
    }
    let width = match kind {
        b'x' => 2,
        b'u' => 4,
        b'U' => 8,
        _ => return None,
    };
    let code = hex(rest.get(2..2 + width)?)?;
    if kind == b'u' && (0xD800..0xDC00).contains(&code) {
        // A surrogate pair: `\uD83D\uDE00`.
        let low = rest.get(6..12).filter(|t| t.starts_with("\\u")).and_then(|t| hex(t.get(2..)?))?;
        let c = char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low.checked_sub(0xDC00)?))?;
        return Some((c, 12));
    }
    Some((char::from_u32(code)?, 2 + width))
}

/// A single-quoted string on one line (`''` is a quote).
fn decode_single_quoted(source: &str, base: usize) -> Option<Decoded> {
    let mut out = String::new();
    let mut builder = EmbeddingBuilder::new();
    let bytes = source.as_bytes();
    let (mut i, mut run_start) = (1, 1);
    loop {
        match bytes.get(i)? {
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => {
                out.push_str(source.get(run_start..i)?);
                builder.verbatim(base + run_start, i - run_start);
                out.push('\'');
                builder.escape(base + i, 2, 1);
                i += 2;
                run_start = i;
            }
            b'\'' => {
                out.push_str(source.get(run_start..i)?);
                builder.verbatim(base + run_start, i - run_start);
                return Some((out, builder, StringStyle::Verbatim, base + i));
            }
            b'\n' | b'\r' => return None,
            _ => i += 1,
        }
    }
}

/// A literal block (`|`, `|-`, `|+`) whose indentation is that of its first
/// non-empty line. Its trailing line breaks are cut to those of `value`
/// (the chomping indicator's effect).
fn decode_literal(source: &str, base: usize, value: &str) -> Option<Decoded> {
    let header_end = source.find('\n')? + 1;
    let body = source.get(header_end..)?;
    let indent = body
        .split('\n')
        .find(|line| !line.trim_end_matches('\r').trim_start_matches(' ').is_empty())
        .map(|line| line.len() - line.trim_start_matches(' ').len())?;
    let mut out = String::new();
    let mut builder = EmbeddingBuilder::new();
    let mut at = header_end;
    for line in body.split_inclusive('\n') {
        let content = line.trim_end_matches('\n').trim_end_matches('\r');
        let spaces = content.len() - content.trim_start_matches(' ').len();
        if spaces < indent && !content.trim_start_matches(' ').is_empty() {
            break;
        }
        let start = indent.min(content.len());
        let kept = content.get(start..).unwrap_or_default();
        out.push_str(kept);
        builder.verbatim(base + at + start, kept.len());
        if line.ends_with('\n') {
            let break_len = line.len() - content.len();
            out.push('\n');
            if break_len == 1 {
                builder.verbatim(base + at + content.len(), 1);
            } else {
                builder.escape(base + at + content.len(), break_len, 1);
            }
        }
        at += line.len();
    }
    // Chomping only removes trailing line breaks.
    if out.len() < value.len() || !out.starts_with(value) || out.get(value.len()..)?.contains(|c| c != '\n') {
        return None;
    }
    out.truncate(value.len());
    builder.truncate(value.len());
    let end = builder.end().unwrap_or(base + header_end);
    Some((out, builder, StringStyle::Literal { indent }, end))
}
