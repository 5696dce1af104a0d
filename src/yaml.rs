//! The YAML front end: a YAML architecture to the [`ast`](crate::ast), the same tree the `.arch` parser
//! builds, so both forms of one network check to the same IR.
//!
//! The YAML gives the structure (definitions, parameters, statements, branches); the small pieces keep the
//! `.arch` syntax and are parsed by the `.arch` grammar ([`crate::syntax`]): layer chains, expressions and
//! shapes. Their spans point into the YAML file.
//!
//! # Schema
//!
//! ```yaml
//! blocks:                                   # optional; definitions keep their source order
//!   basic_conv:
//!     params: [out, k, {stride: 1}, {pad: 0}]   # ordered; a one-key mapping gives a default
//!     body:
//!       - conv: conv2d(out, k, stride = stride, pad = pad, bias = false)
//!       - bn: batch_norm(eps = 0.001)
//!       - relu                              # an unnamed statement is a plain string
//!   inception:
//!     params: [c1, c3r, c3, c5r, c5, pp]
//!     body:
//!       - concat:                           # an unnamed group; its branches, in order
//!           branch1: basic_conv(c1, 1)
//!           branch2: basic_conv(c3r, 1) -> basic_conv(c3, 3, pad = 1)
//!           branch3: basic_conv(c5r, 1) -> basic_conv(c5, 3, pad = 1)
//!           branch4: max_pool(3, stride = 1, pad = 1, ceil = true) -> basic_conv(pp, 1)
//! networks:
//!   tiny_googlenet:
//!     params: {num_classes: 1000, dropout: 0.2}  # a mapping works too (`~` for no default)
//!     input: [3, 224, 224]                  # the network's `input` statement
//!     body:
//!       - conv1: basic_conv(64, 7, stride = 2, pad = 3)
//!         shape: [64, 112, 112]             # the declared output shape
//!       - pool1: "max_pool(3, stride = 2, ceil = true) : [64, 56, 56]"   # or inline, quoted
//!       - inception3a: inception(64, 96, 128, 16, 32, 32)
//!         shape: [256, 56, 56]
//!       - side aux: global_avg_pool -> flatten -> linear(num_classes)
//!         from: pool1                       # a training-only side output
//!         shape: [num_classes]
//!       - pool: global_avg_pool
//!       - flatten
//!       - drop: dropout(dropout)
//!       - fc: linear(num_classes)
//!         shape: [num_classes]
//! ```
//!
//! - The top level is a mapping with the keys `blocks` and `networks`, each a mapping from names to
//!   definitions. A definition has `params` (a list of names and one-key `name: default` mappings, or a
//!   mapping from names to defaults), `input` (a shape) and `body` (a list of statements).
//! - A statement is a string (an unnamed chain, with an optional `: [C, H, W]`, exactly as in `.arch`), or a
//!   mapping with one *head* key and optional attribute keys `shape` and `from`. The head is `NAME: CHAIN`,
//!   `side NAME: CHAIN` (a training-only side output, whose source is `from: SOURCE` or a trailing
//!   `from SOURCE` in the chain text), `concat: BRANCHES` / `add: BRANCHES` (an unnamed group), or
//!   `input: SHAPE`. A mapping whose only key is `shape` is a statement named `shape`; an `input`, `concat` or
//!   `add` head whose value is a chain string (not a shape) is a statement of that name.
//! - A chain is a string (`conv2d(64, 1) -> relu`), a group mapping (`{concat: BRANCHES}`), or a list of
//!   those, joined by `->`. The branches of a group are a mapping from branch names to chains, or a list
//!   of statements (for unnamed branches or branches with a `shape`).
//! - A `: ` inside a plain YAML scalar starts a mapping, so a chain with an inline declared shape must be
//!   quoted; the `shape:` key avoids that.
//! - Numbers, booleans and lists in YAML (`stride: 1`, `input: [3, 224, 224]`) are the same expressions as in
//!   `.arch`; strings in expression positions (`k / 2`, `same`) are `.arch` expressions.
//!
//! # Spans
//!
//! serde_yaml's values carry no positions, so the loader walks the source alongside the deserializer: every
//! node is visited in document order, and a cursor skips YAML punctuation and comments to where the node's
//! text starts. A scalar found there (plain, quoted or block, folded lines included) is parsed from its
//! source text, so spans are exact; one that cannot be found exactly (escapes, or a node repeated through an
//! alias) takes the span of its whole token (or of the alias) instead.
//!
//! # Limits
//!
//! The file size limit and the nesting limit are those of `.arch` ([`MAX_SOURCE_BYTES`],
//! [`MAX_NESTING`] levels of YAML collections). Aliases may repeat nodes, but the whole document may expand to
//! at most about twice its own size, so a "billion laughs" document is rejected after a bounded amount of
//! work.

// `Diagnostic` is the front end's error type; a failure is reported once, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::{
    parse_chain_at, parse_expr_at, parse_ident_at, parse_name_at, parse_shape_at, MAX_NESTING,
    MAX_SOURCE_BYTES,
};

/// Parses a YAML architecture. On failure returns every diagnostic found: malformed YAML stops at the first
/// error (as a syntax error does in `.arch`); schema errors are all collected.
pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(vec![Diagnostic::error(
            Code::LimitExceeded,
            Span::new(0, 0),
            format!(
                "source is {} bytes; the limit is {} bytes",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        )]);
    }
    let root = load(source).map_err(|diagnostic| vec![diagnostic])?;
    let mut lowerer = Lowerer {
        source,
        diagnostics: Vec::new(),
    };
    let items = lowerer.file(&root);
    if lowerer.diagnostics.is_empty() {
        Ok(File { items })
    } else {
        let mut diagnostics = lowerer.diagnostics;
        diagnostics.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
        Err(diagnostics)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Loading: YAML text to a tree of nodes with spans.
// ---------------------------------------------------------------------------------------------------------

/// A YAML node with where it was written.
#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// The node's text (for a quoted scalar, the text between the quotes); for a node repeated through an
    /// alias, the alias.
    span: Span,
    /// For a scalar found exactly: the source text it was read from, which the `.arch` parser reads instead
    /// of the value so its spans are exact (the two differ only in line folding, which `.arch` ignores).
    raw: Option<Span>,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(text) => Some(text),
            _ => None,
        }
    }

    /// What the node is, for messages: "a string", "a list", ...
    fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Reads `source` into a node tree, enforcing the nesting and expansion limits.
fn load(source: &str) -> Result<Node, Diagnostic> {
    check_flow_nesting(source)?;
    let mut loader = Loader {
        source,
        cursor: 0,
        flow_depth: 0,
        replay: None,
        depth: 0,
        budget: source.len().saturating_mul(2).saturating_add(1024),
        failure: None,
        tag: None,
        indicator: None,
    };
    let deserializer = serde_yaml::Deserializer::from_str(source);
    match (NodeSeed {
        loader: &mut loader,
    })
    .deserialize(deserializer)
    {
        Ok(node) => Ok(node),
        Err(error) => Err(loader
            .failure
            .take()
            .unwrap_or_else(|| yaml_error(source, &error, loader.cursor))),
    }
}

/// The source walk that gives nodes their spans, and the limits on the document.
struct Loader<'s> {
    source: &'s str,
    /// Where the text of the next node can start: everything before it has been accounted for.
    cursor: usize,
    /// How many flow collections (`[...]`, `{...}`) enclose the cursor.
    flow_depth: usize,
    /// While a node repeated through an alias is visited: the alias, which all its nodes are given.
    replay: Option<Span>,
    /// Collections entered and not yet left.
    depth: usize,
    /// Nodes plus scalar bytes the document may still produce (aliases included).
    budget: usize,
    /// A limit or schema failure found while loading; it replaces serde_yaml's error, which wraps it.
    failure: Option<Diagnostic>,
    /// The tag (`!name`) skipped on the way to the current node, if any.
    tag: Option<Span>,
    /// The last indicator (`-`, `?`, `:`) skipped on the way to the current node: where an empty node is.
    indicator: Option<usize>,
}

/// Where a node starts, as seen before serde_yaml says what kind of node it is.
#[derive(Clone, Copy)]
enum Start {
    /// Its text starts here.
    At(usize),
    /// It is an alias (this one, or an enclosing one): its nodes are not in the source at this point.
    Alias(Span),
}

fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_flow_indicator(byte: u8) -> bool {
    matches!(byte, b',' | b'[' | b']' | b'{' | b'}')
}

fn is_yaml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Loader<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.source.as_bytes().get(at).copied()
    }

    /// `at`, moved down to a character boundary inside the source.
    fn boundary(&self, at: usize) -> usize {
        let mut at = at.min(self.source.len());
        while !self.source.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    fn span(&self, start: usize, end: usize) -> Span {
        let start = self.boundary(start);
        Span::new(start, self.boundary(end).max(start))
    }

    fn at_line_start(&self, at: usize) -> bool {
        at == 0 || self.byte(at - 1) == Some(b'\n')
    }

    /// The end of the token at `at` (an anchor, tag or alias): up to a blank or a flow indicator.
    fn token_end(&self, at: usize) -> usize {
        let bytes = self.source.as_bytes();
        let mut end = at + 1;
        while end < bytes.len() && !is_blank(bytes[end]) && !is_flow_indicator(bytes[end]) {
            end += 1;
        }
        self.boundary(end)
    }

    fn skip_to_line_end(&mut self) {
        while let Some(byte) = self.byte(self.cursor) {
            if byte == b'\n' {
                break;
            }
            self.cursor += 1;
        }
    }

    /// Moves the cursor over everything that cannot be part of a node's own text: blanks, comments,
    /// document markers and directives, the indicators `-`, `?`, `:` and `,`, anchors and tags.
    fn skip_trivia(&mut self) {
        while let Some(byte) = self.byte(self.cursor) {
            let next = self.byte(self.cursor + 1);
            let next_is_blank = next.map_or(true, is_blank);
            match byte {
                _ if is_blank(byte) => self.cursor += 1,
                b'#' | b'%' if byte == b'#' || self.at_line_start(self.cursor) => {
                    self.skip_to_line_end()
                }
                b'-' | b'.'
                    if self.at_line_start(self.cursor)
                        && self.source[self.cursor..].starts_with(if byte == b'-' {
                            "---"
                        } else {
                            "..."
                        })
                        && self.byte(self.cursor + 3).map_or(true, is_blank) =>
                {
                    self.cursor += 3
                }
                b'-' | b'?' if next_is_blank => {
                    self.indicator = Some(self.cursor);
                    self.cursor += 1
                }
                b':' if next_is_blank
                    || (self.flow_depth > 0
                        && (next.is_some_and(is_flow_indicator)
                            || matches!(
                                self.cursor.checked_sub(1).and_then(|p| self.byte(p)),
                                Some(b'"' | b'\'')
                            ))) =>
                {
                    self.indicator = Some(self.cursor);
                    self.cursor += 1
                }
                b',' => self.cursor += 1,
                b'&' => self.cursor = self.token_end(self.cursor),
                b'!' => {
                    let end = self.token_end(self.cursor);
                    self.tag = Some(self.span(self.cursor, end));
                    self.cursor = end;
                }
                _ => break,
            }
        }
    }

    /// Called before serde_yaml visits a node.
    fn begin_node(&mut self) -> Start {
        if let Some(alias) = self.replay {
            return Start::Alias(alias);
        }
        // A block collection's first node starts where the collection does: keep what was skipped for both.
        let before = self.cursor;
        let (tag, indicator) = (self.tag.take(), self.indicator.take());
        self.skip_trivia();
        if self.cursor == before {
            (self.tag, self.indicator) = (tag, indicator);
        }
        if self.byte(self.cursor) == Some(b'*') {
            let end = self.token_end(self.cursor);
            let alias = self.span(self.cursor, end);
            self.cursor = end;
            self.replay = Some(alias);
            return Start::Alias(alias);
        }
        Start::At(self.cursor)
    }

    /// Charges `cost` to the expansion budget.
    fn spend(&mut self, cost: usize) -> Result<(), ()> {
        match self.budget.checked_sub(cost) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => {
                let span = self
                    .replay
                    .unwrap_or_else(|| self.span(self.cursor, self.cursor));
                self.failure = Some(
                    Diagnostic::error(
                        Code::LimitExceeded,
                        span,
                        "aliases expand this document to more than twice its size",
                    )
                    .with_label("expansion limit reached here")
                    .with_note("each alias repeats the whole node it names, so aliases of aliases grow exponentially"),
                );
                Err(())
            }
        }
    }

    /// The end of a plain scalar starting at `at` (without trailing blanks), on its first line.
    fn plain_end(&self, at: usize) -> usize {
        let bytes = self.source.as_bytes();
        let flow = self.flow_depth > 0;
        let mut end = at;
        let mut i = at;
        while i < bytes.len() {
            let byte = bytes[i];
            let next = bytes.get(i + 1).copied();
            let stop = match byte {
                b'\n' | b'\r' => true,
                b'#' => i > at && matches!(bytes[i - 1], b' ' | b'\t'),
                b':' => {
                    next.map_or(true, is_blank) || (flow && next.is_some_and(is_flow_indicator))
                }
                _ => flow && is_flow_indicator(byte),
            };
            if stop {
                break;
            }
            i += 1;
            if !matches!(byte, b' ' | b'\t') {
                end = i;
            }
        }
        self.boundary(end)
    }

    /// Matches `value` against the source from `start` (up to `limit`), where any run of blanks in one
    /// matches any run in the other (YAML folds line breaks into spaces); returns the end of the last
    /// matched character.
    fn match_folded(&self, value: &str, start: usize, limit: usize) -> Option<usize> {
        let text = self.source.get(start..limit)?;
        let mut source = text.char_indices().peekable();
        let mut value = value.chars().peekable();
        let mut end = 0;
        let mut first = true;
        while let Some(&c) = value.peek() {
            if is_yaml_space(c) {
                while value.peek().copied().is_some_and(is_yaml_space) {
                    value.next();
                }
                if value.peek().is_none() {
                    break;
                }
                let mut skipped = false;
                while source.peek().is_some_and(|&(_, s)| is_yaml_space(s)) {
                    source.next();
                    skipped = true;
                }
                if !skipped && !first {
                    return None;
                }
            } else {
                let (i, s) = source.next()?;
                if s != c {
                    return None;
                }
                end = i + s.len_utf8();
                value.next();
            }
            first = false;
        }
        Some(start + end)
    }

    /// Finds a string scalar that starts at `at` and moves the cursor past it; returns its span and, when
    /// found exactly, its raw text.
    fn locate_str(&mut self, at: usize, value: &str) -> (Span, Option<Span>) {
        match self.byte(at) {
            Some(quote @ (b'"' | b'\'')) => {
                let bytes = self.source.as_bytes();
                let mut i = at + 1;
                let close = loop {
                    match bytes.get(i) {
                        None => break None,
                        Some(b'\\') if quote == b'"' => i += 2,
                        Some(b'\'') if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(&b) if b == quote => break Some(i),
                        Some(_) => i += 1,
                    }
                };
                let Some(close) = close else {
                    return (self.span(at, at), None);
                };
                self.cursor = close + 1;
                let span = self.span(at + 1, close);
                let raw = self
                    .match_folded(value, at + 1, close)
                    .map(|end| self.span(at + 1, end));
                (span, raw)
            }
            Some(b'|' | b'>') => {
                // A block scalar: the header's line, then the indented content lines.
                let header_indent = {
                    let line_start = self.source[..at].rfind('\n').map_or(0, |i| i + 1);
                    self.source[line_start..at]
                        .bytes()
                        .take_while(|b| *b == b' ')
                        .count()
                };
                let header = self.span(at, self.token_end(at));
                self.cursor = at;
                self.skip_to_line_end();
                let mut content = self.cursor;
                while self.byte(content).is_some_and(is_blank) {
                    content += 1;
                }
                if let Some(end) = self.match_folded(value, content, self.source.len()) {
                    self.cursor = end;
                    return (self.span(content, end), Some(self.span(content, end)));
                }
                // Not found: skip the lines indented deeper than the header's.
                while self.byte(self.cursor) == Some(b'\n') {
                    let line = self.cursor + 1;
                    let rest = &self.source[line..];
                    let indent = rest.bytes().take_while(|b| *b == b' ').count();
                    let blank = rest[indent..].starts_with('\n') || indent == rest.len();
                    if !blank && indent <= header_indent {
                        break;
                    }
                    self.cursor = line;
                    self.skip_to_line_end();
                }
                (header, None)
            }
            _ => match self.match_folded(value, at, self.source.len()) {
                Some(end) => {
                    self.cursor = end;
                    let span = self.span(at, end);
                    (span, Some(span))
                }
                None => {
                    let end = self.plain_end(at);
                    self.cursor = end;
                    (self.span(at, end), None)
                }
            },
        }
    }

    /// Finds the plain token of a number, boolean or null starting at `at`.
    fn locate_plain(&mut self, at: usize) -> (Span, Option<Span>) {
        match self.byte(at) {
            None
            | Some(
                b'"' | b'\'' | b'[' | b']' | b'{' | b'}' | b'|' | b'>' | b'*' | b'&' | b'!' | b'#'
                | b',',
            ) => (self.span(at, at), None),
            Some(_) => {
                let end = self.plain_end(at);
                self.cursor = end;
                let span = self.span(at, end);
                (span, Some(span))
            }
        }
    }

    fn scalar(&mut self, start: Start, kind: Kind) -> Result<Node, ()> {
        let cost = 1 + match &kind {
            Kind::Str(text) => text.len(),
            _ => 0,
        };
        self.spend(cost)?;
        let (span, raw) = match start {
            Start::Alias(alias) => (alias, None),
            Start::At(at) => match &kind {
                Kind::Str(text) => self.locate_str(at, text),
                Kind::Null => {
                    let rest = &self.source[at..];
                    let len = if rest.starts_with('~') {
                        1
                    } else if ["null", "Null", "NULL"]
                        .iter()
                        .any(|word| rest.starts_with(word))
                        && self
                            .byte(at + 4)
                            .map_or(true, |b| is_blank(b) || is_flow_indicator(b))
                    {
                        4
                    } else {
                        0
                    };
                    self.cursor = at + len;
                    match self.indicator {
                        // Nothing written: point at the `-` or `:` that introduces the empty node.
                        Some(indicator) if len == 0 => (self.span(indicator, indicator + 1), None),
                        _ => (self.span(at, at + len), None),
                    }
                }
                _ => self.locate_plain(at),
            },
        };
        Ok(Node { kind, span, raw })
    }

    /// Enters a collection; returns whether it is a flow collection (`[` or `{` at its start).
    fn enter(&mut self, start: Start, open: u8) -> Result<bool, ()> {
        self.spend(1)?;
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let span = match start {
                Start::Alias(alias) => alias,
                Start::At(at) => self.span(at, at + 1),
            };
            self.failure = Some(
                Diagnostic::error(
                    Code::LimitExceeded,
                    span,
                    format!("YAML lists and mappings nested more than {MAX_NESTING} deep"),
                )
                .with_label("nesting limit reached here"),
            );
            return Err(());
        }
        match start {
            Start::At(at) if self.byte(at) == Some(open) => {
                self.cursor = at + 1;
                self.flow_depth += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Leaves a collection; returns its span.
    fn leave(&mut self, start: Start, flow: bool, close: u8) -> Span {
        self.depth -= 1;
        match start {
            Start::Alias(alias) => alias,
            Start::At(at) => {
                if flow {
                    self.flow_depth -= 1;
                    let mut end = self.cursor;
                    loop {
                        match self.byte(end) {
                            Some(b) if is_blank(b) || b == b',' => end += 1,
                            Some(b'#') => {
                                while self.byte(end).is_some_and(|b| b != b'\n') {
                                    end += 1;
                                }
                            }
                            Some(b) if b == close => {
                                self.cursor = end + 1;
                                break;
                            }
                            _ => break,
                        }
                    }
                }
                self.span(at, self.cursor.max(at))
            }
        }
    }
}

/// Deserializes one node, giving it its span.
struct NodeSeed<'l, 's> {
    loader: &'l mut Loader<'s>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        let was_replaying = self.loader.replay.is_some();
        let start = self.loader.begin_node();
        let result = deserializer.deserialize_any(NodeVisitor {
            loader: &mut *self.loader,
            start,
        });
        if !was_replaying {
            self.loader.replay = None;
        }
        result
    }
}

struct NodeVisitor<'l, 's> {
    loader: &'l mut Loader<'s>,
    start: Start,
}

/// The error that stops serde_yaml when the loader has recorded a failure.
fn stop<E: de::Error>(_: ()) -> E {
    E::custom("stopped by the architecture loader")
}

impl<'de> Visitor<'de> for NodeVisitor<'_, '_> {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.loader.scalar(self.start, Kind::Bool(v)).map_err(stop)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.loader
            .scalar(self.start, Kind::Int(v.into()))
            .map_err(stop)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.loader
            .scalar(self.start, Kind::Int(v.into()))
            .map_err(stop)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        self.loader.scalar(self.start, Kind::Int(v)).map_err(stop)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        let kind = i128::try_from(v).map_or(Kind::Float(v as f64), Kind::Int);
        self.loader.scalar(self.start, kind).map_err(stop)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.loader.scalar(self.start, Kind::Float(v)).map_err(stop)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.loader
            .scalar(self.start, Kind::Str(v.to_string()))
            .map_err(stop)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.loader.scalar(self.start, Kind::Null).map_err(stop)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let flow = self.loader.enter(self.start, b'[').map_err(stop)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed {
            loader: &mut *self.loader,
        })? {
            items.push(item);
        }
        let span = self.loader.leave(self.start, flow, b']');
        Ok(Node {
            kind: Kind::Seq(items),
            span,
            raw: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let flow = self.loader.enter(self.start, b'{').map_err(stop)?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(NodeSeed {
            loader: &mut *self.loader,
        })? {
            let value = map.next_value_seed(NodeSeed {
                loader: &mut *self.loader,
            })?;
            entries.push((key, value));
        }
        let span = self.loader.leave(self.start, flow, b'}');
        Ok(Node {
            kind: Kind::Map(entries),
            span,
            raw: None,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Node, A::Error> {
        // serde_yaml reports a tagged node (`!tag value`) as an enum.
        let span = match (self.loader.tag, self.start) {
            (Some(tag), Start::At(_)) => tag,
            (_, Start::Alias(alias)) => alias,
            (None, Start::At(at)) => self.loader.span(at, at),
        };
        self.loader.failure = Some(
            Diagnostic::error(
                Code::Yaml,
                span,
                "YAML tags have no meaning in an architecture",
            )
            .with_label("tag")
            .with_help("remove the tag"),
        );
        Err(de::Error::custom("tag"))
    }
}

/// What libyaml may be reading at one point of the source, for [`check_flow_nesting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Between tokens.
    Code,
    /// Inside a plain scalar.
    Plain,
    /// Inside an anchor, alias or tag.
    Property,
    Single,
    /// After a `'` that a second `'` escapes.
    SingleEscape,
    Double,
    /// After a `\` in a double-quoted scalar.
    DoubleEscape,
    Comment,
    /// After a block scalar header (`|`, `>`), before its first non-empty line.
    BlockHeader,
    /// Inside a block scalar whose lines are indented at least this much.
    Block(usize),
}

impl Lex {
    /// Whether a `]` read in this state may be text rather than the end of a flow collection.
    fn hides_brackets(self) -> bool {
        !matches!(self, Lex::Code | Lex::Plain)
    }
}

/// Rejects flow collections (`[...]`, `{...}`) nested deeper than [`MAX_NESTING`] before libyaml reads the
/// document: libyaml's scanner does work proportional to the flow depth for every token, so a deeply nested
/// document would take quadratic time (100 000 levels take half a minute) before any limit could apply.
///
/// Which brackets are real depends on YAML's lexical rules (a `]` in a quoted scalar or a comment is text), and
/// an attacker controls the text, so the scan tracks every state libyaml may be in (it is a small
/// nondeterministic automaton, linear in the source) and counts an opening bracket when some state reads it as
/// one, a closing bracket only when no state can read it as text. The count never falls below libyaml's depth.
fn check_flow_nesting(source: &str) -> Result<(), Diagnostic> {
    let bytes = source.as_bytes();
    let blank = |at: usize| bytes.get(at).map_or(true, |b| is_blank(*b));
    // libyaml's line breaks: LF, CR, NEL, LS and PS; returns the break's length.
    let line_break = |at: usize| -> usize {
        match bytes[at..] {
            [b'\n' | b'\r', ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    };
    let mut states = vec![Lex::Code];
    let mut next = Vec::with_capacity(8);
    let mut depth = 0usize;
    let mut at = 0;
    let mut line_start = true;
    while at < bytes.len() {
        next.clear();
        let push = |next: &mut Vec<Lex>, state: Lex| {
            // Two block scalars merge into the one that lasts longer.
            if let Lex::Block(indent) = state {
                if let Some(Lex::Block(other)) =
                    next.iter_mut().find(|s| matches!(s, Lex::Block(_)))
                {
                    *other = (*other).min(indent);
                    return;
                }
            }
            if !next.contains(&state) {
                next.push(state);
            }
        };
        let break_len = line_break(at);
        if break_len > 0 {
            let line = at + break_len;
            let indent = bytes[line..].iter().take_while(|b| **b == b' ').count();
            let empty = bytes
                .get(line + indent)
                .map_or(true, |b| matches!(b, b'\n' | b'\r'));
            for &state in &states {
                match state {
                    Lex::Plain => {
                        push(&mut next, Lex::Plain);
                        push(&mut next, Lex::Code);
                    }
                    Lex::Code | Lex::Property | Lex::Comment => push(&mut next, Lex::Code),
                    Lex::Single | Lex::SingleEscape => push(&mut next, Lex::Single),
                    Lex::Double | Lex::DoubleEscape => push(&mut next, Lex::Double),
                    Lex::BlockHeader if empty => push(&mut next, Lex::BlockHeader),
                    // The first line is content, or (when indented less than the block needs) already code.
                    Lex::BlockHeader => {
                        push(&mut next, Lex::Block(indent.max(1)));
                        push(&mut next, Lex::Code);
                    }
                    Lex::Block(min) if empty || indent >= min => push(&mut next, Lex::Block(min)),
                    Lex::Block(_) => push(&mut next, Lex::Code),
                }
            }
            std::mem::swap(&mut states, &mut next);
            at = line;
            line_start = true;
            continue;
        }
        let byte = bytes[at];
        let after = bytes.get(at + 1).copied();
        let before_blank = at == 0 || line_start || is_blank(bytes[at - 1]);
        let mut opens = false;
        let mut closes = false;
        for &state in &states {
            match state {
                Lex::Code => match byte {
                    b' ' | b'\t' => push(&mut next, Lex::Code),
                    b'#' => push(&mut next, Lex::Comment),
                    b'%' if line_start => push(&mut next, Lex::Comment),
                    b'\'' => push(&mut next, Lex::Single),
                    b'"' => push(&mut next, Lex::Double),
                    b'[' | b'{' | b']' | b'}' | b',' => {
                        opens |= matches!(byte, b'[' | b'{');
                        closes |= matches!(byte, b']' | b'}');
                        push(&mut next, Lex::Code);
                    }
                    b'-' | b'?' | b':' if blank(at + 1) => push(&mut next, Lex::Code),
                    // `?x` and `:x` are indicators in flow context, text in block context; `--` may start
                    // a document marker, `.` at a line start too.
                    b'-' | b'?' | b':' => {
                        push(&mut next, Lex::Code);
                        push(&mut next, Lex::Plain);
                    }
                    b'.' if line_start => {
                        push(&mut next, Lex::Code);
                        push(&mut next, Lex::Plain);
                    }
                    b'*' | b'&' | b'!' => push(&mut next, Lex::Property),
                    b'|' | b'>' => push(&mut next, Lex::BlockHeader),
                    _ => push(&mut next, Lex::Plain),
                },
                Lex::Plain => match byte {
                    b'#' if before_blank => push(&mut next, Lex::Comment),
                    b':' if blank(at + 1) => push(&mut next, Lex::Code),
                    // In flow context these end the scalar; in block context they are text.
                    b'[' | b'{' | b']' | b'}' | b',' | b'?' | b':' => {
                        opens |= matches!(byte, b'[' | b'{');
                        closes |= matches!(byte, b']' | b'}');
                        push(&mut next, Lex::Plain);
                        push(&mut next, Lex::Code);
                    }
                    _ => push(&mut next, Lex::Plain),
                },
                Lex::Property => match byte {
                    b' ' | b'\t' => push(&mut next, Lex::Code),
                    b'[' | b'{' | b']' | b'}' | b',' => {
                        opens |= matches!(byte, b'[' | b'{');
                        push(&mut next, Lex::Property);
                        push(&mut next, Lex::Code);
                    }
                    _ => push(&mut next, Lex::Property),
                },
                Lex::Single => match byte {
                    b'\'' if after == Some(b'\'') => push(&mut next, Lex::SingleEscape),
                    b'\'' => push(&mut next, Lex::Code),
                    _ => push(&mut next, Lex::Single),
                },
                Lex::SingleEscape => push(&mut next, Lex::Single),
                Lex::Double => match byte {
                    b'\\' => push(&mut next, Lex::DoubleEscape),
                    b'"' => push(&mut next, Lex::Code),
                    _ => push(&mut next, Lex::Double),
                },
                Lex::DoubleEscape => push(&mut next, Lex::Double),
                Lex::Comment | Lex::BlockHeader | Lex::Block(_) => push(&mut next, state),
            }
        }
        if opens {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(Diagnostic::error(
                    Code::LimitExceeded,
                    Span::new(at, at + 1),
                    format!("YAML lists and mappings nested more than {MAX_NESTING} deep"),
                )
                .with_label("nesting limit reached here"));
            }
        }
        if closes && !states.iter().any(|state| state.hides_brackets()) {
            depth = depth.saturating_sub(1);
        }
        std::mem::swap(&mut states, &mut next);
        line_start = false;
        at += 1;
    }
    Ok(())
}

/// Converts a serde_yaml error (malformed YAML, or one of its own limits) to a diagnostic.
fn yaml_error(source: &str, error: &serde_yaml::Error, cursor: usize) -> Diagnostic {
    let text = error.to_string();
    let offset_of = |line: usize, column: usize| -> usize {
        // libyaml gives 1-based lines and character columns; find the byte offset they name.
        let mut start = 0;
        for _ in 1..line {
            match source[start..].find('\n') {
                Some(i) => start += i + 1,
                None => return source.len(),
            }
        }
        source[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(source.len(), |(i, _)| start + i)
    };
    let point = |offset: usize| -> Span {
        let mut start = offset.min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let end = source[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
        Span::new(start, end)
    };
    if text.starts_with("repetition limit exceeded") || text.starts_with("recursion limit exceeded")
    {
        let span = error
            .location()
            .map_or_else(|| point(cursor), |l| point(l.index()));
        return Diagnostic::error(Code::LimitExceeded, span, format!("YAML {text}"))
            .with_label("limit reached here")
            .with_note("aliases and nesting are bounded so that no document can take unbounded time or memory");
    }
    if text.starts_with("deserializing from YAML containing more than one document") {
        let marker = source
            .match_indices("---")
            .map(|(i, _)| i)
            .filter(|&i| i == 0 || source.as_bytes()[i - 1] == b'\n')
            .find(|&i| {
                source[..i]
                    .lines()
                    .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            });
        // Without a `---` line (`"" x`, or a `...` end marker), the second document starts at the first content
        // after the first one, which the walk has just read to its end. A `---` is ASCII; that content need not be.
        let span = match marker {
            Some(at) => Span::new(at, at + 3),
            None => point(next_content(source, cursor)),
        };
        return Diagnostic::error(
            Code::Yaml,
            span,
            "an architecture file holds one YAML document",
        )
        .with_label("a second document starts here");
    }
    // libyaml's messages read "PROBLEM at line L column C[, while CONTEXT at line L column C]".
    let (problem, context) = match text.split_once(", while ") {
        Some((problem, context)) => (problem, Some(format!("while {context}"))),
        None => (text.as_str(), None),
    };
    let strip_location = |part: &str| -> (String, Option<usize>) {
        if let Some((message, location)) = part.rsplit_once(" at line ") {
            if let Some((line, column)) = location.split_once(" column ") {
                if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                    return (message.to_string(), Some(offset_of(line, column)));
                }
            }
        }
        (part.to_string(), None)
    };
    let (message, _) = strip_location(problem);
    let span = error
        .location()
        .map_or_else(|| point(cursor), |l| point(l.index()));
    let mut diagnostic = Diagnostic::error(Code::Yaml, span, format!("malformed YAML: {message}"))
        .with_label(message.clone());
    if let Some(context) = context {
        let (context, at) = strip_location(&context);
        if let Some(at) = at {
            if point(at) != span {
                diagnostic = diagnostic.with_secondary(point(at), context);
            }
        }
    }
    if message.contains("mapping values are not allowed") {
        diagnostic = diagnostic.with_help(
            "in YAML `: ` starts a mapping; quote a chain that declares its shape inline \
             (`\"conv2d(64, 1) : [64, 56, 56]\"`) or give the shape as a `shape:` key",
        );
    }
    if source[span.range()].starts_with('\t') {
        diagnostic = diagnostic.with_help("YAML indents with spaces, not tabs");
    }
    diagnostic
}

/// The first offset at or after `at` that holds content: not a blank, a comment, or a `...` document end line.
fn next_content(source: &str, at: usize) -> usize {
    let mut at = at.min(source.len());
    while let Some(rest) = source.get(at..) {
        let trimmed = rest.trim_start();
        at = source.len() - trimmed.len();
        let skipped = if trimmed.starts_with('#')
            || (trimmed.starts_with("...") && (at == 0 || source.as_bytes()[at - 1] == b'\n'))
        {
            trimmed.find('\n').map_or(trimmed.len(), |i| i + 1)
        } else {
            0
        };
        if skipped == 0 {
            break;
        }
        at += skipped;
    }
    at
}

// ---------------------------------------------------------------------------------------------------------
// Lowering: the node tree to the AST.
// ---------------------------------------------------------------------------------------------------------

/// A schema error: the YAML is well formed but not an architecture.
fn schema_error(span: Span, message: impl Into<String>, label: impl Into<String>) -> Diagnostic {
    Diagnostic::error(Code::Yaml, span, message).with_label(label)
}

struct Lowerer<'s> {
    source: &'s str,
    diagnostics: Vec<Diagnostic>,
}

/// A chain as written in a statement's value: its operations, a declared shape and a side output's source
/// when the text carries them.
struct ChainValue {
    chain: Vec<Op>,
    declared: Option<ShapeExpr>,
    from: Option<Ident>,
}

/// Where a statement sits, which decides the heads it may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Body,
    Branch,
}

impl Lowerer<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn expected(&mut self, node: &Node, what: &str) {
        let found = node.describe();
        self.push(schema_error(
            node.span,
            format!("expected {what}, found {found}"),
            format!("expected {what}"),
        ));
    }

    /// Parses a scalar's text with one of the `.arch` entry points: its raw source text when it was found
    /// exactly (spans exact), otherwise its value, with every span set to the scalar's.
    fn parse_text<T: Respan>(
        &mut self,
        node: &Node,
        text: &str,
        parse: impl FnOnce(&str, usize) -> Result<T, Diagnostic>,
    ) -> Option<T> {
        let raw = node
            .raw
            .and_then(|raw| Some((self.source.get(raw.range())?, raw.start as usize)));
        let result = match raw {
            Some((raw, offset)) => parse(raw, offset),
            None => match parse(text, 0) {
                Ok(mut value) => {
                    value.respan(node.span);
                    Ok(value)
                }
                Err(mut diagnostic) => {
                    diagnostic.primary.span = node.span;
                    diagnostic
                        .secondary
                        .iter_mut()
                        .for_each(|label| label.span = node.span);
                    Err(diagnostic)
                }
            },
        };
        result
            .map_err(|diagnostic| self.diagnostics.push(diagnostic))
            .ok()
    }

    /// A block, network or parameter name.
    fn ident(&mut self, node: &Node) -> Option<Ident> {
        self.name_with(node, false)
    }

    /// A statement's or branch's name, or a side output's source: keywords are names here, as in `.arch`.
    fn name(&mut self, node: &Node) -> Option<Ident> {
        self.name_with(node, true)
    }

    fn name_with(&mut self, node: &Node, keywords_are_names: bool) -> Option<Ident> {
        let parse = if keywords_are_names {
            parse_name_at
        } else {
            parse_ident_at
        };
        match node.as_str() {
            Some(text) => {
                let before = self.diagnostics.len();
                let ident = self.parse_text(node, text, parse);
                if ident.is_none() && self.diagnostics.len() == before + 1 {
                    // The grammar's "expected ..." says little about a name; say what a name is.
                    let diagnostic = self.diagnostics.pop().expect("just pushed");
                    if diagnostic.code != Code::Syntax {
                        self.diagnostics.push(diagnostic);
                        return None;
                    }
                    let help = if keywords_are_names {
                        "a name is letters, digits and `_`, does not start with a digit, and is not `true` or \
                         `false`"
                    } else {
                        "a name is letters, digits and `_`, does not start with a digit, and is not a \
                         keyword (`block`, `network`, `input`, `side`, `from`, `concat`, `add`, `true`, \
                         `false`, `same`)"
                    };
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::Syntax,
                            node.span,
                            format!("`{text}` is not a name"),
                        )
                        .with_label("not a name")
                        .with_help(help),
                    );
                }
                ident
            }
            None => {
                self.expected(node, "a name");
                None
            }
        }
    }

    fn file(&mut self, root: &Node) -> Vec<Definition> {
        let entries = match &root.kind {
            Kind::Null => return Vec::new(),
            Kind::Map(entries) => entries,
            _ => {
                self.expected(root, "a mapping with `blocks` and `networks`");
                return Vec::new();
            }
        };
        let mut items = Vec::new();
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for (key, value) in entries {
            let kind = match key.as_str() {
                Some("blocks") => DefinitionKind::Block,
                Some("networks") => DefinitionKind::Network,
                _ => {
                    let key_text = key
                        .as_str()
                        .map_or_else(|| key.describe().to_string(), |k| format!("`{k}`"));
                    self.push(
                        schema_error(
                            key.span,
                            format!("unknown top-level key {key_text}"),
                            "unknown key",
                        )
                        .with_help("the top level has `blocks` and `networks`"),
                    );
                    continue;
                }
            };
            let name = key.as_str().unwrap_or_default();
            if let Some(&(_, first)) = seen.iter().find(|(seen, _)| *seen == name) {
                self.duplicate_key(key, first);
                continue;
            }
            seen.push((name, key.span));
            match &value.kind {
                Kind::Null => {}
                Kind::Map(definitions) => {
                    for (name, body) in definitions {
                        if let Some(definition) = self.definition(kind, name, body) {
                            items.push(definition);
                        }
                    }
                }
                _ => self.expected(value, "a mapping from names to definitions"),
            }
        }
        items
    }

    fn duplicate_key(&mut self, key: &Node, first: Span) {
        let name = key.as_str().unwrap_or_default().to_string();
        self.push(
            schema_error(
                key.span,
                format!("the key `{name}` appears twice"),
                "repeated here",
            )
            .with_secondary(first, "first here"),
        );
    }

    fn definition(&mut self, kind: DefinitionKind, key: &Node, value: &Node) -> Option<Definition> {
        let name = self.ident(key);
        let Kind::Map(entries) = &value.kind else {
            self.expected(value, "a mapping with `params`, `input` and `body`");
            return None;
        };
        let mut params = Vec::new();
        let mut input = None;
        let mut body = None;
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for (field, field_value) in entries {
            let field_name = field.as_str().unwrap_or_default();
            if let Some(&(_, first)) = seen.iter().find(|(seen, _)| *seen == field_name) {
                self.duplicate_key(field, first);
                continue;
            }
            seen.push((field_name, field.span));
            match field_name {
                "params" => params = self.params(field_value),
                "input" => input = self.shape(field_value).map(Statement::Input),
                "body" => body = Some(self.body(field_value)),
                _ => {
                    let key_text = field
                        .as_str()
                        .map_or_else(|| field.describe().to_string(), |k| format!("`{k}`"));
                    self.push(
                        schema_error(
                            field.span,
                            format!("unknown key {key_text} in a definition"),
                            "unknown key",
                        )
                        .with_help("a definition has `params`, `input` and `body`"),
                    );
                }
            }
        }
        let Some(mut body) = body else {
            self.push(
                schema_error(key.span, "this definition has no `body`", "no `body`")
                    .with_help("add `body:` with a list of statements"),
            );
            return None;
        };
        if let Some(input) = input {
            body.insert(0, input);
        }
        Some(Definition {
            kind,
            name: name?,
            params,
            body,
            span: key.span.to(value.span),
        })
    }

    fn params(&mut self, node: &Node) -> Vec<Param> {
        let mut params = Vec::new();
        match &node.kind {
            Kind::Null => {}
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Str(_) => params.extend(self.ident(item).map(|name| Param {
                            name,
                            default: None,
                        })),
                        Kind::Map(entries) => {
                            for (name, default) in entries {
                                params.extend(self.param(name, default));
                            }
                        }
                        _ => self.expected(item, "a parameter name or `name: default`"),
                    }
                }
            }
            Kind::Map(entries) => {
                for (name, default) in entries {
                    params.extend(self.param(name, default));
                }
            }
            _ => self.expected(node, "a list of parameters"),
        }
        params
    }

    fn param(&mut self, name: &Node, default: &Node) -> Option<Param> {
        let name = self.ident(name);
        let default = match default.kind {
            Kind::Null => None,
            _ => Some(self.expr(default)?),
        };
        Some(Param {
            name: name?,
            default,
        })
    }

    fn expr(&mut self, node: &Node) -> Option<Expr> {
        let span = node.span;
        let kind = match &node.kind {
            Kind::Bool(value) => ExprKind::Bool(*value),
            Kind::Int(value) => {
                if let Some(expr) =
                    self.number_from_raw(node, |kind| int_value(kind) == Some(*value))
                {
                    return Some(expr);
                }
                ExprKind::Int(i64::try_from(*value).map_err(|_| value.to_string()))
            }
            Kind::Float(value) => {
                if let Some(expr) = self.number_from_raw(node, |kind| match kind {
                    ExprKind::Float(f) => f == value,
                    _ => false,
                }) {
                    return Some(expr);
                }
                ExprKind::Float(*value)
            }
            Kind::Str(text) => return self.parse_text(node, text, parse_expr_at),
            Kind::Seq(items) => {
                let items: Vec<Option<Expr>> = items.iter().map(|item| self.expr(item)).collect();
                ExprKind::List(items.into_iter().collect::<Option<_>>()?)
            }
            Kind::Null | Kind::Map(_) => {
                self.expected(node, "a value (a number, a name or an expression)");
                return None;
            }
        };
        Some(Expr { kind, span })
    }

    /// A YAML number read as `.arch` reads it (`-1` is `Neg(1)`, an integer too large for `i64` keeps its
    /// text), when its source text is an `.arch` literal with the same value.
    fn number_from_raw(&self, node: &Node, same_value: impl Fn(&ExprKind) -> bool) -> Option<Expr> {
        let raw = node.raw?;
        let expr = parse_expr_at(self.source.get(raw.range())?, raw.start as usize).ok()?;
        let literal = match &expr.kind {
            ExprKind::Neg(inner) => match inner.kind {
                ExprKind::Int(Ok(v)) => ExprKind::Int(Ok(-v)),
                ExprKind::Float(v) => ExprKind::Float(-v),
                _ => return None,
            },
            other => other.clone(),
        };
        let too_large = matches!(literal, ExprKind::Int(Err(_)));
        (too_large || same_value(&literal)).then_some(expr)
    }

    fn shape(&mut self, node: &Node) -> Option<ShapeExpr> {
        match &node.kind {
            Kind::Seq(items) => {
                let dims: Vec<Option<Expr>> = items.iter().map(|item| self.expr(item)).collect();
                Some(ShapeExpr {
                    dims: dims.into_iter().collect::<Option<_>>()?,
                    span: node.span,
                })
            }
            Kind::Str(text) => self.parse_text(node, text, parse_shape_at),
            _ => {
                self.expected(node, "a shape `[C, H, W]` or `[features]`");
                None
            }
        }
    }

    fn body(&mut self, node: &Node) -> Vec<Statement> {
        match &node.kind {
            Kind::Null => Vec::new(),
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.statement(item, Place::Body))
                .collect(),
            _ => {
                self.expected(node, "a list of statements");
                Vec::new()
            }
        }
    }

    fn statement(&mut self, node: &Node, place: Place) -> Option<Statement> {
        let entries = match &node.kind {
            Kind::Str(_) => {
                let value = self.chain_value(node, false)?;
                return Some(Statement::Layer(LayerStatement {
                    name: None,
                    side_from: None,
                    chain: value.chain,
                    declared: value.declared,
                    span: node.span,
                }));
            }
            Kind::Map(entries) if !entries.is_empty() => entries,
            _ => {
                self.expected(node, "a statement (a chain, or `name: chain`)");
                return None;
            }
        };
        // Sort the keys into the head and the attributes.
        let is_attribute = |key: &Node| matches!(key.as_str(), Some("shape" | "from"));
        let mut head: Option<(&Node, &Node)> = None;
        let mut shape_attr: Option<(&Node, &Node)> = None;
        let mut from_attr: Option<(&Node, &Node)> = None;
        for (key, value) in entries {
            if entries.len() > 1 && is_attribute(key) {
                let slot = if key.as_str() == Some("shape") {
                    &mut shape_attr
                } else {
                    &mut from_attr
                };
                if let Some((first, _)) = *slot {
                    self.duplicate_key(key, first.span);
                } else {
                    *slot = Some((key, value));
                }
            } else if let Some((first, _)) = head {
                let second = key
                    .as_str()
                    .map_or_else(|| key.describe().to_string(), |k| format!("`{k}`"));
                let first = first.as_str().unwrap_or_default().to_string();
                self.push(
                    schema_error(
                        key.span,
                        format!("one statement has two heads, `{first}` and {second}"),
                        "second head",
                    )
                    .with_help(
                        "each statement is its own list item: start the next one with `- `; a statement's \
                         other keys are only `shape` and `from`",
                    ),
                );
            } else {
                head = Some((key, value));
            }
        }
        let Some((key, value)) = head else {
            self.push(
                schema_error(
                    node.span,
                    "this statement has no name or chain",
                    "only `shape`/`from`",
                )
                .with_help("write `- NAME: CHAIN` and its `shape:` under it")
                .with_note(
                    "beside other keys, `shape` and `from` are attributes; a statement named `from` or \
                     `shape` declares its shape inline: `- from: \"CHAIN : [C, H, W]\"`",
                ),
            );
            return None;
        };
        let Some(head_text) = key.as_str() else {
            self.expected(key, "a statement name");
            return None;
        };
        let declared_attr = match shape_attr {
            Some((_, shape)) => Some(self.shape(shape)?),
            None => None,
        };
        let from_attr_ident = match from_attr {
            Some((_, source)) => Some(self.name(source)?),
            None => None,
        };
        let side_name = head_text
            .strip_prefix("side")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map(|rest| rest.trim_start());
        // `input`, `concat` and `add` heads with a chain (a string that is not a shape) are statements named so,
        // as `input = ...` is in `.arch`.
        let names_a_chain = match (head_text, &value.kind) {
            ("input", Kind::Str(text)) => !text.trim_start().starts_with('['),
            ("concat" | "add", Kind::Str(_)) => true,
            _ => false,
        };
        let (name, chain_value, is_side) = match head_text {
            "input" | "concat" | "add" if names_a_chain => {
                let name = self.name(key);
                let chain = self.chain_value(value, false)?;
                (Some(name?), chain, false)
            }
            "input" => {
                if place == Place::Branch {
                    self.push(schema_error(
                        key.span,
                        "a branch cannot be an `input` statement",
                        "not allowed in a group",
                    ));
                    return None;
                }
                if let Some((attr, _)) = shape_attr.or(from_attr) {
                    self.push(schema_error(
                        attr.span,
                        "an `input` statement has no other keys",
                        "not allowed here",
                    ));
                }
                return self.shape(value).map(Statement::Input);
            }
            "concat" | "add" => {
                let group = self.group(key, value)?;
                let chain = ChainValue {
                    chain: vec![Op::Group(group)],
                    declared: None,
                    from: None,
                };
                (None, chain, false)
            }
            _ => match side_name {
                Some(side_name) => {
                    if place == Place::Branch {
                        self.push(schema_error(
                            key.span,
                            "a branch cannot be a side output",
                            "not allowed in a group",
                        ));
                        return None;
                    }
                    let name = self.side_name(key, side_name);
                    let chain = self.chain_value(value, true)?;
                    (Some(name?), chain, true)
                }
                None => {
                    let name = self.name(key);
                    let chain = self.chain_value(value, false)?;
                    (Some(name?), chain, false)
                }
            },
        };
        let ChainValue {
            chain,
            declared,
            from,
        } = chain_value;
        let declared = match (declared, declared_attr) {
            (Some(inline), Some(attr)) => {
                self.push(
                    schema_error(
                        attr.span,
                        "the output shape is declared twice",
                        "declared again here",
                    )
                    .with_secondary(inline.span, "first declared here"),
                );
                None
            }
            (inline, attr) => inline.or(attr),
        };
        let side_from = match (from, from_attr_ident) {
            (Some(inline), Some(attr)) => {
                self.push(
                    schema_error(
                        attr.span,
                        "the side output's source is given twice",
                        "given again here",
                    )
                    .with_secondary(inline.span, "first given here"),
                );
                return None;
            }
            (inline, attr) => inline.or(attr),
        };
        if is_side && side_from.is_none() {
            self.push(
                schema_error(key.span, "a side output needs a source", "no `from`")
                    .with_help("add `from: SOURCE` (an earlier statement's name)"),
            );
            return None;
        }
        if !is_side && side_from.is_some() {
            let span = from_attr.map_or(value.span, |(attr, _)| attr.span);
            self.push(
                schema_error(
                    span,
                    "only side outputs read `from` another statement",
                    "`from` on an ordinary statement",
                )
                .with_help("name the statement `side NAME` to make it a training-only side output"),
            );
            return None;
        }
        Some(Statement::Layer(LayerStatement {
            name,
            side_from,
            chain,
            declared,
            span: node.span,
        }))
    }

    /// The `NAME` of a `side NAME` key.
    fn side_name(&mut self, key: &Node, name: &str) -> Option<Ident> {
        let offset = key.as_str().map_or(0, |text| text.len() - name.len());
        match key.raw {
            Some(raw) if raw.start as usize + offset <= raw.end as usize => {
                let start = raw.start as usize + offset;
                let node = Node {
                    kind: Kind::Str(name.to_string()),
                    span: Span::new(start, raw.end as usize),
                    raw: Some(Span::new(start, raw.end as usize)),
                };
                self.name(&node)
            }
            _ => {
                let node = Node {
                    kind: Kind::Str(name.to_string()),
                    span: key.span,
                    raw: None,
                };
                self.name(&node)
            }
        }
    }

    /// A chain: a string, a group mapping, or a list of those. `allow_from` admits a trailing `from SOURCE`.
    fn chain_value(&mut self, node: &Node, allow_from: bool) -> Option<ChainValue> {
        match &node.kind {
            Kind::Str(text) => {
                let value = self.parse_text(node, text, chain_text)?;
                if value.from.is_some() && !allow_from {
                    self.push(
                        schema_error(
                            node.span,
                            "only side outputs read `from` another statement",
                            "`from` here",
                        )
                        .with_help("write the statement as `side NAME: CHAIN from SOURCE`"),
                    );
                    return None;
                }
                Some(value)
            }
            Kind::Map(entries) => match entries.as_slice() {
                [(key, value)] if matches!(key.as_str(), Some("concat" | "add")) => {
                    Some(ChainValue {
                        chain: vec![Op::Group(self.group(key, value)?)],
                        declared: None,
                        from: None,
                    })
                }
                _ => {
                    self.expected(node, "a chain (a string), `concat:` or `add:`");
                    None
                }
            },
            Kind::Seq(parts) if !parts.is_empty() => {
                let mut chain = Vec::new();
                let mut declared = None;
                let mut from = None;
                let mut ok = true;
                for (index, part) in parts.iter().enumerate() {
                    let last = index + 1 == parts.len();
                    if matches!(part.kind, Kind::Seq(_)) {
                        self.expected(part, "a chain (a string), `concat:` or `add:`");
                        ok = false;
                        continue;
                    }
                    let Some(value) = self.chain_value(part, allow_from && last) else {
                        ok = false;
                        continue;
                    };
                    if !last && value.declared.is_some() {
                        self.push(schema_error(
                            part.span,
                            "only the end of a chain can declare its shape",
                            "not the last part",
                        ));
                        ok = false;
                    }
                    chain.extend(value.chain);
                    declared = value.declared;
                    from = value.from;
                }
                ok.then_some(ChainValue {
                    chain,
                    declared,
                    from,
                })
            }
            _ => {
                self.expected(node, "a chain (a string), `concat:` or `add:`");
                None
            }
        }
    }

    fn group(&mut self, key: &Node, value: &Node) -> Option<Group> {
        let kind = if key.as_str() == Some("add") {
            GroupKind::Add
        } else {
            GroupKind::Concat
        };
        let branches: Vec<Option<LayerStatement>> = match &value.kind {
            Kind::Map(entries) => entries
                .iter()
                .map(|(key, chain)| {
                    let name = self.name(key);
                    let value = self.chain_value(chain, false)?;
                    Some(LayerStatement {
                        name: Some(name?),
                        side_from: None,
                        chain: value.chain,
                        declared: value.declared,
                        span: key.span.to(chain.span),
                    })
                })
                .collect(),
            Kind::Seq(items) => items
                .iter()
                .map(|item| match self.statement(item, Place::Branch)? {
                    Statement::Layer(layer) => Some(layer),
                    Statement::Input(_) => None,
                })
                .collect(),
            _ => {
                self.expected(
                    value,
                    "the branches: a mapping from names to chains, or a list",
                );
                return None;
            }
        };
        Some(Group {
            kind,
            keyword_span: key.span,
            branches: branches.into_iter().collect::<Option<_>>()?,
            span: key.span.to(value.span),
        })
    }
}

fn int_value(kind: &ExprKind) -> Option<i128> {
    match kind {
        ExprKind::Int(Ok(v)) => Some((*v).into()),
        _ => None,
    }
}

/// Parses a statement's chain text: `CHAIN [from SOURCE] [: SHAPE]` (the `.arch` statement without its name).
fn chain_text(text: &str, offset: usize) -> Result<ChainValue, Diagnostic> {
    let Some(from_at) = find_from_keyword(text) else {
        let (chain, declared) = parse_chain_at(text, offset)?;
        return Ok(ChainValue {
            chain,
            declared,
            from: None,
        });
    };
    let (chain, declared) = parse_chain_at(&text[..from_at], offset)?;
    if let Some(declared) = declared {
        return Err(Diagnostic::error(
            Code::Yaml,
            declared.span,
            "a side output declares its shape after `from SOURCE`",
        )
        .with_label("move this after the source"));
    }
    let rest_at = from_at + "from".len();
    let rest = &text[rest_at..];
    let (source_text, shape) = match rest.find(':') {
        Some(colon) => (
            &rest[..colon],
            Some(parse_shape_at(
                &rest[colon + 1..],
                offset + rest_at + colon + 1,
            )?),
        ),
        None => (rest, None),
    };
    let source = parse_name_at(source_text, offset + rest_at)?;
    Ok(ChainValue {
        chain,
        declared: shape,
        from: Some(source),
    })
}

/// Where the keyword `from` stands as a word in `text` (outside comments). A chain never contains it: it is
/// a keyword, so no layer, block or parameter can be named `from`.
fn find_from_keyword(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'f' if text[i..].starts_with("from")
                && (i == 0 || !is_ident(bytes[i - 1]))
                && bytes.get(i + 4).map_or(true, |b| !is_ident(*b)) =>
            {
                return Some(i)
            }
            _ => i += 1,
        }
    }
    None
}

/// Sets every span in a tree to one span: for text whose positions inside the YAML source are not known.
trait Respan {
    fn respan(&mut self, span: Span);
}

impl<T: Respan> Respan for Vec<T> {
    fn respan(&mut self, span: Span) {
        self.iter_mut().for_each(|item| item.respan(span));
    }
}

impl<T: Respan> Respan for Option<T> {
    fn respan(&mut self, span: Span) {
        if let Some(item) = self {
            item.respan(span);
        }
    }
}

impl<T: Respan> Respan for Box<T> {
    fn respan(&mut self, span: Span) {
        (**self).respan(span);
    }
}

impl Respan for Ident {
    fn respan(&mut self, span: Span) {
        self.span = span;
    }
}

impl Respan for Expr {
    fn respan(&mut self, span: Span) {
        self.span = span;
        match &mut self.kind {
            ExprKind::List(items) => items.respan(span),
            ExprKind::Neg(inner) => inner.respan(span),
            ExprKind::Binary(_, lhs, rhs) => {
                lhs.respan(span);
                rhs.respan(span);
            }
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Same
            | ExprKind::Name(_) => {}
        }
    }
}

impl Respan for ShapeExpr {
    fn respan(&mut self, span: Span) {
        self.span = span;
        self.dims.respan(span);
    }
}

impl Respan for Op {
    fn respan(&mut self, span: Span) {
        match self {
            Op::Call(call) => {
                call.span = span;
                call.callee.respan(span);
                for arg in &mut call.args {
                    arg.span = span;
                    arg.name.respan(span);
                    arg.value.respan(span);
                }
            }
            Op::Group(group) => {
                group.span = span;
                group.keyword_span = span;
                group.branches.respan(span);
            }
        }
    }
}

impl Respan for LayerStatement {
    fn respan(&mut self, span: Span) {
        self.span = span;
        self.name.respan(span);
        self.side_from.respan(span);
        self.chain.respan(span);
        self.declared.respan(span);
    }
}

impl Respan for ChainValue {
    fn respan(&mut self, span: Span) {
        self.chain.respan(span);
        self.declared.respan(span);
        self.from.respan(span);
    }
}
