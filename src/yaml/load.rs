//! Loading: YAML text to a tree of [`Node`]s, each with the span it was written at (see the module docs of
//! [`crate::yaml`] on spans and limits). Nothing here knows the architecture schema.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::MAX_NESTING;

/// A YAML node with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) kind: Kind,
    /// The node's text (for a quoted scalar, the text between the quotes); for a node repeated through an
    /// alias, the alias.
    pub(super) span: Span,
    /// For a scalar found exactly: the source text it was read from, which the `.arch` parser reads instead
    /// of the value so its spans are exact (the two differ only in line folding, which `.arch` ignores).
    pub(super) raw: Option<Span>,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub(super) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(text) => Some(text),
            _ => None,
        }
    }

    /// What the node is, for messages: "a string", "a list", ...
    pub(super) fn describe(&self) -> &'static str {
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
pub(super) fn load(source: &str) -> Result<Node, Diagnostic> {
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
