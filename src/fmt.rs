//! Formatting: `.arch` source in its canonical layout, every comment kept.
//!
//! [`format_source`] parses the file, prints the AST back out and puts each `# comment` (which the AST does not
//! hold) back before the token it preceded. The layout:
//!
//! - four spaces per level; one statement per line; a `concat`/`add` group opens a block of its own;
//! - one space after commas and around `=`, `->`, `:` and binary operators; none inside brackets;
//! - in a run of consecutive one-line statements (a blank line or a multi-line statement ends a run) the `=`
//!   line up, and so do the declared sizes (`: [..]`), four columns past the longest row; a row more than
//!   [`OUTLIER`] columns longer than the run's median keeps a single space instead of pushing the column out;
//! - a comment on the line of some code stays at the end of that line (two spaces before `#`); a comment on a
//!   line of its own stays on a line of its own, at the indentation of what follows it;
//! - blank lines between statements and between definitions are kept, runs of them squeezed to one; none at
//!   the start or end of a body or of the file;
//! - parentheses only where precedence needs them; integer and float literals as written; `relu()` keeps its
//!   empty parentheses (the checker tells `conv1 conv2d(..)` hints by them); trailing commas dropped.
//!
//! Lines are kept to [`MAX_WIDTH`] columns where the layout allows it:
//!
//! - a chain of several links that does not fit on one line (or that has a comment between its links, outside
//!   a group's braces) is broken before every `->`: the first link stays after `name =`, each further link
//!   starts a line of its own with `-> `, one level deeper than the statement (as rustfmt breaks method chains);
//!   a group's branches are indented one level deeper than the `->` line that opens it;
//! - the declared size follows the last link (and its `from SOURCE`), or starts a line of its own at the same
//!   continuation indent when it would push that line past the limit;
//! - a row whose aligned `=` or declared size would push it past the limit keeps single spaces instead;
//! - a line is longer than the limit only when one link (a call and its arguments) is itself that long.
//!
//! A comment inside a link (between a call's arguments) breaks the line after it, the remainder indented one
//! more level.

use crate::ast::{
    Arg, Call, Definition, DefinitionKind, Expr, ExprKind, ForLoop, Group, LayerStatement,
    NamePart, Op, Param, ShapeExpr, Statement,
};
use crate::diagnostic::Diagnostic;

/// A row longer than the median row of its run by more than this many columns is left out of the alignment
/// of declared sizes (a `side aux = ... from ...` row among short ones).
pub const OUTLIER: usize = 12;

/// The width a formatted line is kept to, in columns (indentation included, trailing comments excluded).
pub const MAX_WIDTH: usize = 100;

/// The gap between the longest aligned row and the column of declared sizes.
const DECLARED_GAP: usize = 4;

const INDENT: &str = "    ";

/// Formats a whole `.arch` source. A file with a syntax error is returned as its diagnostics.
pub fn format_source(source: &str) -> Result<String, Vec<Diagnostic>> {
    let file = crate::syntax::parse(source)?;
    let mut formatter = Formatter {
        source,
        comments: scan_comments(source),
        next_comment: 0,
        out: Writer::default(),
        base: 0,
    };
    let mut entries = Vec::new();
    for definition in &file.items {
        formatter.comments_as_entries(definition.span.start as usize, &mut entries);
        if formatter.blank_before(definition.span.start as usize) && !entries.is_empty() {
            entries.push(Entry::Blank);
        }
        let lines = formatter.lines_of(0, |f| f.definition(definition));
        entries.push(Entry::Lines(lines));
        formatter.trailing_comment(definition.span.end as usize, source.len(), &mut entries);
    }
    formatter.comments_as_entries(source.len() + 1, &mut entries);
    let mut text = layout(&entries, 0, 0).join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

/// One `# comment`.
#[derive(Debug, Clone)]
struct Comment {
    start: usize,
    /// The comment's text, `#` included, without trailing blanks.
    text: String,
    /// Nothing but blanks before it on its line.
    own_line: bool,
}

/// Every comment in `source`. `#` has no other meaning in the language, so each `#` starts one.
fn scan_comments(source: &str) -> Vec<Comment> {
    let mut comments = Vec::new();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        if let Some(hash) = line.find('#') {
            let text = line[hash..].trim_end();
            comments.push(Comment {
                start: line_start + hash,
                text: text.to_string(),
                own_line: line[..hash].trim().is_empty(),
            });
        }
        line_start += line.len();
    }
    comments
}

/// What a body (or the file) is made of, before alignment.
#[derive(Debug, Clone)]
enum Entry {
    Blank,
    /// A comment on a line of its own.
    Comment(String),
    /// A one-line statement, in cells, for alignment.
    Row(Row),
    /// Lines already laid out (a definition, a multi-line statement), relative to the body's indentation.
    Lines(Vec<String>),
}

#[derive(Debug, Clone)]
struct Row {
    /// `name` or `side name`.
    name: Option<String>,
    /// The chain, with ` from SOURCE` for a side output.
    chain: String,
    /// The declared shape, `[..]`.
    declared: Option<String>,
    trailing: Option<String>,
}

impl Row {
    /// The row with single spaces: `name = chain : [..]`.
    fn unaligned(&self) -> String {
        let mut line = match &self.name {
            Some(name) => format!("{name} = {}", self.chain),
            None => self.chain.clone(),
        };
        if let Some(declared) = &self.declared {
            line.push_str(" : ");
            line.push_str(declared);
        }
        line
    }
}

/// Lays out entries at `level` (`absolute`: the level in the file, which the width limit counts): aligns the
/// rows of each run.
fn layout(entries: &[Entry], level: usize, absolute: usize) -> Vec<String> {
    let indent = INDENT.repeat(level);
    // Columns the lines will be shifted right by when the enclosing levels indent them.
    let shift = INDENT.len() * absolute.saturating_sub(level);
    let mut lines = Vec::new();
    let mut index = 0;
    while index < entries.len() {
        match &entries[index] {
            Entry::Blank => {
                lines.push(String::new());
                index += 1;
            }
            Entry::Comment(text) => {
                lines.push(format!("{indent}{text}"));
                index += 1;
            }
            Entry::Lines(block) => {
                lines.extend(block.iter().map(|line| {
                    if line.is_empty() {
                        String::new()
                    } else {
                        format!("{indent}{line}")
                    }
                }));
                index += 1;
            }
            Entry::Row(_) => {
                // A run: rows, with comments between them, up to a blank line or a multi-line entry.
                let end = entries[index..]
                    .iter()
                    .position(|e| matches!(e, Entry::Blank | Entry::Lines(_)))
                    .map_or(entries.len(), |offset| index + offset);
                lines.extend(layout_run(&entries[index..end], &indent, shift));
                index = end;
            }
        }
    }
    lines
}

fn layout_run(run: &[Entry], indent: &str, shift: usize) -> Vec<String> {
    let rows: Vec<&Row> = run
        .iter()
        .filter_map(|e| match e {
            Entry::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    let name_width = rows
        .iter()
        .filter_map(|r| r.name.as_ref())
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    let prefix = |row: &Row| match &row.name {
        Some(name) => format!("{indent}{name:<name_width$} = {}", row.chain),
        None => format!("{indent}{}", row.chain),
    };
    // The columns of `: [..]`, which follow the aligned column.
    let tail = |row: &Row| {
        row.declared
            .as_ref()
            .map_or(0, |declared| ": ".len() + declared.chars().count())
    };
    let mut widths: Vec<usize> = rows
        .iter()
        .filter(|r| r.declared.is_some())
        .map(|r| prefix(r).chars().count())
        .collect();
    widths.sort_unstable();
    let limit = widths
        .get(widths.len() / 2)
        .map_or(usize::MAX, |median| median + OUTLIER);
    // Rows whose declared size would end past the width limit at their own column do not set the column.
    let column = rows
        .iter()
        .filter(|r| r.declared.is_some())
        .map(|r| (prefix(r).chars().count(), tail(r)))
        .filter(|(w, tail)| *w <= limit && shift + w + DECLARED_GAP + tail <= MAX_WIDTH)
        .map(|(w, _)| w)
        .max()
        .map_or(0, |w| w + DECLARED_GAP);
    run.iter()
        .map(|entry| match entry {
            Entry::Comment(text) => format!("{indent}{text}"),
            Entry::Row(row) => {
                let aligned = {
                    let mut line = prefix(row);
                    if let Some(declared) = &row.declared {
                        let width = line.chars().count();
                        let pad = match column.checked_sub(width) {
                            Some(pad)
                                if pad > 0
                                    && width <= limit
                                    && shift + column + tail(row) <= MAX_WIDTH =>
                            {
                                pad
                            }
                            _ => 1,
                        };
                        line.push_str(&" ".repeat(pad));
                        line.push_str(": ");
                        line.push_str(declared);
                    }
                    line
                };
                // A row fits unaligned (the body made it a row only then); the padded `=` must not push it out.
                let mut line = if shift + aligned.chars().count() > MAX_WIDTH {
                    format!("{indent}{}", row.unaligned())
                } else {
                    aligned
                };
                if let Some(comment) = &row.trailing {
                    line.push_str("  ");
                    line.push_str(comment);
                }
                line
            }
            _ => String::new(),
        })
        .collect()
}

/// Text being written token by token, with line breaks where comments force them.
#[derive(Debug, Default)]
struct Writer {
    lines: Vec<String>,
    current: String,
    /// Indentation level of the statement being written, relative to the lines' level.
    level: usize,
    /// Set once a comment broke the statement: the rest is indented one more level.
    continued: bool,
    want_space: bool,
}

impl Writer {
    fn text(&mut self, text: &str) {
        if self.current.is_empty() {
            self.current = INDENT.repeat(self.level + usize::from(self.continued));
        } else if self.want_space {
            self.current.push(' ');
        }
        self.want_space = false;
        self.current.push_str(text);
    }

    fn space(&mut self) {
        self.want_space = true;
    }

    fn newline(&mut self) {
        if !self.current.trim().is_empty() {
            let line = std::mem::take(&mut self.current);
            self.lines.push(line.trim_end().to_string());
        }
        self.current.clear();
        self.want_space = false;
    }

    fn at_line_start(&self) -> bool {
        self.current.trim().is_empty()
    }
}

struct Formatter<'s> {
    source: &'s str,
    comments: Vec<Comment>,
    /// The first comment not yet written.
    next_comment: usize,
    out: Writer,
    /// The level in the file of the lines `out` writes at its level 0 (for the width limit).
    base: usize,
}

/// A statement of a body or a branch of a group.
#[derive(Clone, Copy)]
enum Item<'a> {
    Input(&'a ShapeExpr),
    Layer(&'a LayerStatement),
    For(&'a ForLoop),
}

/// The items of a body, in order.
fn items(body: &[Statement]) -> Vec<Item<'_>> {
    body.iter()
        .map(|statement| match statement {
            Statement::Input(shape) => Item::Input(shape),
            Statement::Layer(layer) => Item::Layer(layer),
            Statement::For(for_loop) => Item::For(for_loop),
        })
        .collect()
}

impl<'s> Formatter<'s> {
    // --- source positions -------------------------------------------------------------------------------------

    /// The first code (not blank, not comment) at or after `pos`.
    fn next_code(&self, mut pos: usize) -> usize {
        let bytes = self.source.as_bytes();
        while pos < bytes.len() {
            match bytes[pos] {
                b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
                b'#' => {
                    pos = self.source[pos..]
                        .find('\n')
                        .map_or(bytes.len(), |offset| pos + offset)
                }
                _ => break,
            }
        }
        pos
    }

    /// The first code after `pos` that is not a closing parenthesis: where the separator after an expression
    /// (which may have sat in parentheses) is.
    fn next_separator(&self, mut pos: usize) -> usize {
        loop {
            pos = self.next_code(pos);
            if self.source.as_bytes().get(pos) == Some(&b')') {
                pos += 1;
            } else {
                return pos;
            }
        }
    }

    /// The bracket closing the one at `open` (comments skipped; the file parsed, so brackets balance).
    fn matching(&self, open: usize) -> usize {
        let bytes = self.source.as_bytes();
        let mut depth = 0usize;
        let mut pos = open;
        while pos < bytes.len() {
            match bytes[pos] {
                b'#' => {
                    pos = self.source[pos..]
                        .find('\n')
                        .map_or(bytes.len(), |offset| pos + offset);
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return pos;
                    }
                }
                _ => {}
            }
            pos += 1;
        }
        bytes.len()
    }

    /// Whether a blank line separates `pos` from the code or comment before it.
    fn blank_before(&self, pos: usize) -> bool {
        let before = &self.source[..pos.min(self.source.len())];
        let blanks = &before[before.trim_end().len()..];
        blanks.matches('\n').count() >= 2
    }

    /// Where an `input` statement starts: the keyword before its shape.
    fn input_start(&self, shape: &ShapeExpr) -> usize {
        let mut end = shape.span.start as usize;
        loop {
            let before = self.source[..end].trim_end();
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            match before[line_start..].find('#') {
                Some(hash) => end = line_start + hash,
                None => return before.len().saturating_sub("input".len()),
            }
        }
    }

    fn item_span(&self, item: Item<'_>) -> (usize, usize) {
        match item {
            Item::Input(shape) => (self.input_start(shape), shape.span.end as usize),
            Item::Layer(statement) => (statement.span.start as usize, statement.span.end as usize),
            Item::For(for_loop) => (for_loop.span.start as usize, for_loop.span.end as usize),
        }
    }

    // --- comments ---------------------------------------------------------------------------------------------

    fn pending_comment_before(&self, pos: usize) -> Option<&Comment> {
        self.comments
            .get(self.next_comment)
            .filter(|comment| comment.start < pos)
    }

    /// Writes the comments before `pos` into the statement being written, breaking its line after each.
    fn comments_before(&mut self, pos: usize) {
        while let Some(comment) = self.pending_comment_before(pos).cloned() {
            self.next_comment += 1;
            if !comment.own_line && !self.out.at_line_start() {
                self.out.current.push_str("  ");
                self.out.current.push_str(&comment.text);
            } else {
                self.out.newline();
                self.out.text(&comment.text);
            }
            self.out.newline();
            self.out.continued = true;
        }
    }

    /// The comments before `pos`, as entries of a body (with the blank lines before them).
    fn comments_as_entries(&mut self, pos: usize, entries: &mut Vec<Entry>) {
        while let Some(comment) = self.pending_comment_before(pos).cloned() {
            self.next_comment += 1;
            if self.blank_before(comment.start) && !entries.is_empty() {
                entries.push(Entry::Blank);
            }
            entries.push(Entry::Comment(comment.text));
        }
    }

    /// The comment right after `end` on the same line (and before `limit`), if there is one.
    fn take_trailing(&mut self, end: usize, limit: usize) -> Option<String> {
        let comment = self.pending_comment_before(limit)?;
        if comment.start < end || self.source[end..comment.start].contains('\n') {
            return None;
        }
        let text = comment.text.clone();
        self.next_comment += 1;
        Some(text)
    }

    /// Appends the comment after `end` on the same line to the last entry.
    fn trailing_comment(&mut self, end: usize, limit: usize, entries: &mut [Entry]) {
        if let Some(comment) = self.take_trailing(end, limit) {
            match entries.last_mut() {
                Some(Entry::Row(row)) => row.trailing = Some(comment),
                Some(Entry::Lines(lines)) => {
                    if let Some(last) = lines.last_mut() {
                        last.push_str("  ");
                        last.push_str(&comment);
                    }
                }
                _ => {}
            }
        }
    }

    // --- writing ----------------------------------------------------------------------------------------------

    fn token(&mut self, text: &str, at: usize) {
        self.comments_before(at);
        self.out.text(text);
    }

    fn slice(&self, start: u32, end: u32) -> &'s str {
        self.source.get(start as usize..end as usize).unwrap_or("")
    }

    /// Runs `write` on a fresh writer at `level` and returns its lines.
    fn lines_of(&mut self, level: usize, write: impl FnOnce(&mut Self)) -> Vec<String> {
        let saved = std::mem::replace(
            &mut self.out,
            Writer {
                level,
                ..Writer::default()
            },
        );
        write(self);
        self.out.newline();
        std::mem::replace(&mut self.out, saved).lines
    }

    /// Runs `write` on a fresh, unbroken line and returns the text.
    fn cell(&mut self, write: impl FnOnce(&mut Self)) -> String {
        let lines = self.lines_of(0, write);
        lines.join(" ")
    }

    fn definition(&mut self, definition: &Definition) {
        let keyword = match definition.kind {
            DefinitionKind::Block => "block",
            DefinitionKind::Network => "network",
        };
        self.token(keyword, definition.span.start as usize);
        self.out.space();
        self.token(&definition.name.name, definition.name.span.start as usize);
        let mut after = definition.name.span.end as usize;
        let open = self.next_code(after);
        if self.source.as_bytes().get(open) == Some(&b'(') {
            let close = self.matching(open);
            self.token("(", open);
            self.separated(&definition.params, |f, param: &Param| {
                f.token(&param.name.name, param.name.span.start as usize);
                if let Some(default) = &param.default {
                    f.out.space();
                    f.token("=", f.next_code(param.name.span.end as usize));
                    f.out.space();
                    f.expr(default, 0, false);
                }
                param_end(param)
            });
            self.token(")", close);
            after = close + 1;
        }
        self.out.space();
        let open = self.next_code(after);
        let close = self.matching(open);
        self.braced(open, close, &items(&definition.body));
    }

    /// `{`, the items one level deeper, `}`.
    fn braced(&mut self, open: usize, close: usize, items: &[Item<'_>]) {
        self.token("{", open);
        let first = items.first().map_or(close, |item| self.item_span(*item).0);
        if let Some(comment) = self.take_trailing(open + 1, first.min(close)) {
            self.out.current.push_str("  ");
            self.out.current.push_str(&comment);
        }
        self.out.newline();
        let level = self.out.level + usize::from(self.out.continued);
        let continued = std::mem::replace(&mut self.out.continued, false);
        let base = self.base;
        self.base = base + level + 1;
        let entries = self.body(items, close);
        self.base = base;
        let lines = layout(&entries, level + 1, base + level + 1);
        self.out.lines.extend(lines);
        self.out.continued = continued;
        self.token("}", close);
    }

    /// The entries of a body whose closing brace is at `close`.
    fn body(&mut self, items: &[Item<'_>], close: usize) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let (start, end) = self.item_span(*item);
            let next = items
                .get(index + 1)
                .map_or(close, |next| self.item_span(*next).0);
            self.comments_as_entries(start, &mut entries);
            if self.blank_before(start) && !entries.is_empty() {
                entries.push(Entry::Blank);
            }
            let has_comment = self.pending_comment_before(end).is_some();
            match item {
                Item::Layer(statement) if !has_comment && is_one_line(statement) => {
                    // No comment inside: measuring as a row writes none, so the statement can still be written.
                    let row = self.row(statement);
                    if self.width_at_base(&row.unaligned()) <= MAX_WIDTH {
                        entries.push(Entry::Row(row));
                    } else {
                        let lines = self.lines_of(0, |f| f.item(*item));
                        entries.push(Entry::Lines(lines));
                    }
                }
                _ => {
                    let lines = self.lines_of(0, |f| f.item(*item));
                    entries.push(Entry::Lines(lines));
                }
            }
            self.trailing_comment(end, next, &mut entries);
        }
        self.comments_as_entries(close, &mut entries);
        entries
    }

    fn row(&mut self, statement: &LayerStatement) -> Row {
        let text = self.name_text(statement);
        let name = statement.name.as_ref().map(|_| match &statement.side_from {
            Some(_) => format!("side {text}"),
            None => text,
        });
        let chain = self.cell(|f| {
            f.chain(&statement.chain, false);
            if let Some(source) = &statement.side_from {
                f.out.space();
                f.token("from", source.span.start as usize);
                f.out.space();
                f.token(&source.name, source.span.start as usize);
            }
        });
        let declared = statement
            .declared
            .as_ref()
            .map(|shape| self.cell(|f| f.shape(shape)));
        Row {
            name,
            chain,
            declared,
            trailing: None,
        }
    }

    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::Input(shape) => {
                self.token("input", self.input_start(shape));
                self.out.space();
                self.shape(shape);
            }
            Item::Layer(statement) => self.statement(statement),
            Item::For(for_loop) => self.for_loop(for_loop),
        }
    }

    /// A statement's name: as written, or with each `{e}` value formatted (`{at + 1}`).
    fn name_text(&mut self, statement: &LayerStatement) -> String {
        let Some(name) = &statement.name else {
            return String::new();
        };
        if statement.template.is_empty() {
            return name.name.clone();
        }
        let mut text = String::new();
        for part in &statement.template {
            match part {
                NamePart::Text(part) => text.push_str(part),
                NamePart::Value(value) => {
                    let next_comment = self.next_comment;
                    let value = self.cell(|f| f.expr(value, 0, false));
                    self.next_comment = next_comment;
                    text.push('{');
                    text.push_str(&value);
                    text.push('}');
                }
            }
        }
        text
    }

    fn for_loop(&mut self, for_loop: &ForLoop) {
        self.token("for", for_loop.span.start as usize);
        self.out.space();
        self.token(&for_loop.var.name, for_loop.var.span.start as usize);
        self.out.space();
        self.token("in", self.next_code(for_loop.var.span.end as usize));
        self.out.space();
        self.expr(&for_loop.start, 0, false);
        let range = if for_loop.inclusive { "..=" } else { ".." };
        self.token(range, self.next_code(for_loop.start.span.end as usize));
        self.expr(&for_loop.end, 0, false);
        self.out.space();
        let open = self.next_code(for_loop.end.span.end as usize);
        self.braced(open, for_loop.span.end as usize - 1, &items(&for_loop.body));
    }

    fn statement(&mut self, statement: &LayerStatement) {
        let broken = statement.chain.len() > 1
            && (self.comment_between_links(statement) || self.flat_width(statement) > MAX_WIDTH);
        if let Some(name) = &statement.name {
            if statement.side_from.is_some() {
                self.token("side", statement.span.start as usize);
                self.out.space();
            }
            let text = self.name_text(statement);
            self.token(&text, name.span.start as usize);
            self.out.space();
            self.token("=", self.next_code(name.span.end as usize));
            self.out.space();
        }
        self.chain(&statement.chain, broken);
        let mut end = statement
            .chain
            .last()
            .map_or(0, |op| op.span().end as usize);
        if let Some(source) = &statement.side_from {
            self.out.space();
            self.token("from", self.next_code(end));
            self.out.space();
            self.token(&source.name, source.span.start as usize);
            end = source.span.end as usize;
        }
        if let Some(shape) = &statement.declared {
            let colon = self.next_code(end);
            self.comments_before(colon);
            let width = self.measure(|f| f.shape(shape)) + ": ".len();
            if !self.out.at_line_start()
                && self.width_at_base(&self.out.current) + 1 + width > MAX_WIDTH
            {
                self.out.newline();
                self.out.continued = true;
            }
            self.out.space();
            self.token(":", colon);
            self.out.space();
            self.shape(shape);
        }
    }

    /// Whether a comment sits in `statement` outside the braces of its groups: between links, inside a call's
    /// arguments or in the declared size.
    fn comment_between_links(&self, statement: &LayerStatement) -> bool {
        let start = statement.span.start as usize;
        let end = statement.span.end as usize;
        let inside_groups: Vec<(usize, usize)> = statement
            .chain
            .iter()
            .filter_map(|op| match op {
                Op::Group(group) => {
                    Some((group.keyword_span.end as usize, group.span.end as usize))
                }
                Op::Sequence(sequence) => {
                    Some((sequence.span.start as usize, sequence.span.end as usize))
                }
                Op::Call(_) => None,
            })
            .collect();
        self.comments[self.next_comment..]
            .iter()
            .take_while(|comment| comment.start < end)
            .filter(|comment| comment.start >= start)
            .any(|comment| {
                !inside_groups
                    .iter()
                    .any(|(open, close)| (*open..*close).contains(&comment.start))
            })
    }

    /// The widest line of `statement` written with its chain unbroken, in columns of the file: one line for a
    /// chain of calls; for a chain with groups, the lines their braces start and end (their branches are laid
    /// out on their own). Only called when no comment sits between the links.
    fn flat_width(&mut self, statement: &LayerStatement) -> usize {
        let indent = INDENT.len() * (self.base + self.out.level + usize::from(self.out.continued));
        let mut widest = 0;
        let mut line = indent
            + statement.name.as_ref().map_or(0, |_| {
                let side = if statement.side_from.is_some() {
                    "side ".len()
                } else {
                    0
                };
                side + self.name_text(statement).chars().count() + " = ".len()
            });
        for (index, op) in statement.chain.iter().enumerate() {
            if index > 0 {
                line += " -> ".len();
            }
            match op {
                Op::Call(call) => line += self.measure(|f| f.call(call)),
                Op::Group(group) => {
                    widest = widest.max(line + group.kind.keyword().len() + " {".len());
                    line = indent + "}".len();
                }
                Op::Sequence(_) => {
                    widest = widest.max(line + "{".len());
                    line = indent + "}".len();
                }
            }
        }
        if let Some(source) = &statement.side_from {
            line += " from ".len() + source.name.chars().count();
        }
        if let Some(shape) = &statement.declared {
            line += " : ".len() + self.measure(|f| f.shape(shape));
        }
        widest.max(line)
    }

    /// The width of what `write` writes on one line, without writing it or taking any comment.
    fn measure(&mut self, write: impl FnOnce(&mut Self)) -> usize {
        let next_comment = self.next_comment;
        let text = self.cell(write);
        self.next_comment = next_comment;
        text.chars().count()
    }

    /// The width in the file of `text` written at the current writer's level 0.
    fn width_at_base(&self, text: &str) -> usize {
        INDENT.len() * self.base + text.chars().count()
    }

    /// Writes a chain: links joined by ` -> `, or, `broken`, each further link on a line of its own.
    fn chain(&mut self, chain: &[Op], broken: bool) {
        for (index, op) in chain.iter().enumerate() {
            if index > 0 {
                let arrow = self.next_code(chain[index - 1].span().end as usize);
                if broken {
                    // A comment after an `->` that ends a line stays on that line: before the arrow that now
                    // starts the next one. A comment on a line of its own goes at the links' indentation.
                    self.out.continued = true;
                    self.comments_before(op.span().start as usize);
                    self.out.newline();
                } else {
                    self.out.space();
                }
                self.token("->", arrow);
                self.out.space();
            }
            match op {
                Op::Call(call) => self.call(call),
                Op::Group(group) => self.group(group),
                Op::Sequence(sequence) => {
                    let items = items(&sequence.body);
                    let (open, close) = (sequence.span.start, sequence.span.end - 1);
                    self.braced(open as usize, close as usize, &items);
                }
            }
        }
    }

    fn call(&mut self, call: &Call) {
        if call.spread {
            self.token("..", call.span.start as usize);
        }
        self.token(&call.callee.name, call.callee.span.start as usize);
        if call.span.end > call.callee.span.end {
            let open = self.next_code(call.callee.span.end as usize);
            self.token("(", open);
            self.separated(&call.args, |f, arg: &Arg| {
                if let Some(name) = &arg.name {
                    f.token(&name.name, name.span.start as usize);
                    f.out.space();
                    f.token("=", f.next_code(name.span.end as usize));
                    f.out.space();
                }
                f.expr(&arg.value, 0, false);
                arg.value.span.end as usize
            });
            self.token(")", call.span.end as usize - 1);
        }
    }

    fn group(&mut self, group: &Group) {
        self.token(group.kind.keyword(), group.keyword_span.start as usize);
        self.out.space();
        let open = self.next_code(group.keyword_span.end as usize);
        let items: Vec<Item<'_>> = group.branches.iter().map(Item::Layer).collect();
        self.braced(open, group.span.end as usize - 1, &items);
    }

    /// Items separated by `, `; `write` writes one and returns where it ends in the source.
    fn separated<T>(&mut self, items: &[T], mut write: impl FnMut(&mut Self, &T) -> usize) {
        let mut previous_end = None;
        for item in items {
            if let Some(end) = previous_end {
                self.token(",", self.next_separator(end));
                self.out.space();
            }
            previous_end = Some(write(self, item));
        }
    }

    fn shape(&mut self, shape: &ShapeExpr) {
        self.token("[", shape.span.start as usize);
        self.separated(&shape.dims, |f, dim: &Expr| {
            f.expr(dim, 0, false);
            dim.span.end as usize
        });
        self.token("]", shape.span.end as usize - 1);
    }

    /// Writes `expr` where an operator of precedence `parent` holds it (`right`: as its right operand), with
    /// parentheses only where they change the meaning.
    fn expr(&mut self, expr: &Expr, parent: u8, right: bool) {
        let own = precedence(expr);
        let parens = own < parent || (right && own == parent && own < PRIMARY);
        if parens {
            self.token("(", expr.span.start as usize);
        }
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Same => self
                .token(
                    self.slice(expr.span.start, expr.span.end),
                    expr.span.start as usize,
                ),
            ExprKind::Name(name) => self.token(name, expr.span.start as usize),
            ExprKind::List(items) => {
                self.token("[", expr.span.start as usize);
                self.separated(items, |f, item: &Expr| {
                    f.expr(item, 0, false);
                    item.span.end as usize
                });
                self.token("]", expr.span.end as usize - 1);
            }
            ExprKind::Neg(operand) => {
                self.token("-", expr.span.start as usize);
                self.expr(operand, NEG, false);
            }
            ExprKind::Binary(op, lhs, rhs) => {
                self.expr(lhs, own, false);
                self.out.space();
                self.token(op.symbol(), self.next_separator(lhs.span.end as usize));
                self.out.space();
                self.expr(rhs, own, true);
            }
        }
        if parens {
            self.token(")", expr.span.end as usize);
        }
    }
}

const NEG: u8 = 3;
const PRIMARY: u8 = 4;

fn precedence(expr: &Expr) -> u8 {
    use crate::ast::BinaryOp::*;
    match &expr.kind {
        ExprKind::Binary(Add | Sub, ..) => 1,
        ExprKind::Binary(Mul | Div | Rem, ..) => 2,
        ExprKind::Neg(_) => NEG,
        _ => PRIMARY,
    }
}

fn param_end(param: &Param) -> usize {
    param
        .default
        .as_ref()
        .map_or(param.name.span.end, |d| d.span.end) as usize
}

/// A statement with no group fits on one line.
fn is_one_line(statement: &LayerStatement) -> bool {
    statement.chain.iter().all(|op| matches!(op, Op::Call(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(source: &str) -> String {
        format_source(source).unwrap_or_else(|d| panic!("{source:?}: {d:?}"))
    }

    #[test]
    fn aligns_names_and_declared_sizes_in_a_run() {
        let source = "network n(k = 10) {\ninput [3, 8, 8]\na = conv2d(4, 3, pad = 1) : [4, 8, 8]\nlonger_name = relu : [4, 8, 8]\n}\n";
        // `longer_name` (11) sets the `=` column; the longer prefix, `    a           = conv2d(4, 3, pad = 1)`
        // (4 + 11 + 3 + 21 = 39 columns), puts `:` four columns past it, at column 43 (0-based).
        let a = "    a           = conv2d(4, 3, pad = 1)";
        let b = "    longer_name = relu";
        assert_eq!((a.len(), b.len()), (39, 22));
        let expected = format!(
            "network n(k = 10) {{\n    input [3, 8, 8]\n{a}{}: [4, 8, 8]\n{b}{}: [4, 8, 8]\n}}\n",
            " ".repeat(43 - 39),
            " ".repeat(43 - 22)
        );
        assert_eq!(fmt(source), expected);
    }

    #[test]
    fn keeps_every_comment_in_its_place() {
        let source = "# header\n\nblock b(c) {  # opening\n    # before conv\n    conv = conv2d(c, # channels\n        3)  # trailing\n    # last\n}\n# between\nnetwork n {\n input [1, 4, 4]\n x = b(2)\n}\n# end\n";
        let out = fmt(source);
        for comment in [
            "# header",
            "# opening",
            "# before conv",
            "# channels",
            "# trailing",
            "# last",
            "# between",
            "# end",
        ] {
            assert_eq!(out.matches(comment).count(), 1, "{comment} in\n{out}");
        }
        assert_eq!(
            out,
            "# header\n\nblock b(c) {  # opening\n    # before conv\n    conv = conv2d(c,  # channels\n        3)  # trailing\n    # last\n}\n# between\nnetwork n {\n    input [1, 4, 4]\n    x = b(2)\n}\n# end\n"
        );
    }

    #[test]
    fn parentheses_only_where_precedence_needs_them() {
        let source = "network n(a = 1, b = 2, c = 3) { input [((a + b)) * c, (a - (b - c)), -(a + b), (a * b) + c] }";
        assert_eq!(
            fmt(source),
            "network n(a = 1, b = 2, c = 3) {\n    input [(a + b) * c, a - (b - c), -(a + b), a * b + c]\n}\n"
        );
    }

    #[test]
    fn outlier_rows_keep_a_single_space() {
        let source = "network n {\ninput [1, 4, 4]\na = relu : [1, 4, 4]\nb = relu : [1, 4, 4]\nside c = identity -> identity -> identity from a : [1, 4, 4]\n}";
        let out = fmt(source);
        assert!(out.contains("    a      = relu    : [1, 4, 4]\n"), "{out}");
        assert!(out.contains("from a : [1, 4, 4]\n"), "{out}");
    }
}
