//! Parsing: `.arch` source text to the [`ast`](crate::ast).
//!
//! pest's `Pairs` never leave this module; its errors are converted to [`Diagnostic`]s here, with rules given
//! friendly names. Input limits (size, bracket nesting) are enforced before pest runs, so no input can make the
//! recursive-descent parser overflow its stack.

// `Diagnostic` is the front end's error type; a failure is reported once, so its size does not matter.
#![allow(clippy::result_large_err)]

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op as PrattOp, PrattParser};
use pest::Parser as _;

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/arch.pest"]
struct ArchParser;

/// The largest source file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;
/// The deepest bracket nesting accepted (`(`, `[`, `{` together).
pub const MAX_NESTING: usize = 64;
/// The most operators (`+ - * / %`, unary minus included) in one expression between brackets and commas.
/// With [`MAX_NESTING`] this bounds an expression tree's depth, which the checker and code generator recurse
/// over: `1 + 1 + ... + 1` with 200,000 terms would otherwise overflow their stacks. Real expressions have a handful.
pub const MAX_OPERATORS: usize = 32;

/// Parses a whole `.arch` file. On failure returns the diagnostics (a syntax error stops parsing: pest does
/// not recover, and a tree built around a syntax error would only produce follow-on noise).
pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    check_limits(source).map_err(|diagnostic| vec![diagnostic])?;
    let mut pairs = ArchParser::parse(Rule::file, source)
        .map_err(|error| vec![file_syntax_error(source, &error)])?;
    let file = pairs.next().expect("pest returns the file rule on success");
    let items = file
        .into_inner()
        .filter(|pair| pair.as_rule() != Rule::EOI)
        .map(definition)
        .collect();
    Ok(File { items })
}

/// Parses a single chain with an optional declared shape, as found in a YAML statement's value
/// (`basic_conv(64, 7, stride = 2) : [64, 112, 112]`). `offset` is where `text` starts in the whole file, so
/// spans point into the original YAML source.
pub(crate) fn parse_chain_at(
    text: &str,
    offset: usize,
) -> Result<(Vec<Op>, Option<ShapeExpr>), Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_chain, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let mut inner = pairs.next().expect("yaml_chain matched").into_inner();
    let parser = Builder { offset };
    let chain = parser.chain(inner.next().expect("chain"));
    let declared = inner
        .next()
        .filter(|pair| pair.as_rule() == Rule::declared_shape)
        .map(|pair| parser.shape(pair.into_inner().next().expect("shape")));
    Ok((chain, declared))
}

/// Parses a shape `[C, H, W]` from YAML text at `offset`.
pub(crate) fn parse_shape_at(text: &str, offset: usize) -> Result<ShapeExpr, Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_shape, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs
        .next()
        .expect("yaml_shape matched")
        .into_inner()
        .next()
        .expect("shape");
    Ok(Builder { offset }.shape(pair))
}

/// Parses a single expression from YAML text at `offset`.
pub(crate) fn parse_expr_at(text: &str, offset: usize) -> Result<Expr, Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_expr, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs
        .next()
        .expect("yaml_expr matched")
        .into_inner()
        .next()
        .expect("expr");
    Ok(Builder { offset }.expr(pair))
}

/// Parses a statement's or branch's name from YAML text at `offset`, with the values it holds
/// (`denselayer{i}`): keywords are names here (see the grammar's `name`).
pub(crate) fn parse_templated_name_at(
    text: &str,
    offset: usize,
) -> Result<(Ident, Vec<NamePart>), Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_name, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs
        .next()
        .expect("yaml_name matched")
        .into_inner()
        .next()
        .expect("name");
    Ok(Builder { offset }.name(pair))
}

/// Parses a side output's name or source from YAML text at `offset`: a name written out in full.
pub(crate) fn parse_name_at(text: &str, offset: usize) -> Result<Ident, Diagnostic> {
    let (ident, template) = parse_templated_name_at(text, offset)?;
    if !template.is_empty() {
        return Err(Diagnostic::error(
            Code::Unsupported,
            ident.span,
            "this name is written out in full",
        )
        .with_label("`{...}` in a name")
        .with_note("values in names (`denselayer{i}`) are for the statements and branches of a loop's body"));
    }
    Ok(ident)
}

/// Parses a YAML loop header (`i in 1..=n`, the value of `for:`) at `offset`: the variable, the range's start
/// and end, and whether the end is included.
pub(crate) fn parse_for_at(
    text: &str,
    offset: usize,
) -> Result<(Ident, Expr, Expr, bool), Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_for, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let mut inner = pairs.next().expect("yaml_for matched").into_inner();
    let builder = Builder { offset };
    let var = builder.ident(inner.next().expect("loop variable"));
    let start = builder.expr(inner.next().expect("range start"));
    let inclusive = inner.next().expect("range operator").as_str() == "..=";
    let end = builder.expr(inner.next().expect("range end"));
    Ok((var, start, end, inclusive))
}

/// Parses a block, network or parameter name from YAML text at `offset`.
pub(crate) fn parse_ident_at(text: &str, offset: usize) -> Result<Ident, Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_ident, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs
        .next()
        .expect("yaml_ident matched")
        .into_inner()
        .next()
        .expect("ident");
    Ok(Builder { offset }.ident(pair))
}

fn shift_diagnostic(mut diagnostic: Diagnostic, offset: usize) -> Diagnostic {
    let shift = |span: Span| Span::new(span.start as usize + offset, span.end as usize + offset);
    diagnostic.primary.span = shift(diagnostic.primary.span);
    for label in &mut diagnostic.secondary {
        label.span = shift(label.span);
    }
    diagnostic
}

fn check_limits(source: &str) -> Result<(), Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::error(
            Code::LimitExceeded,
            Span::new(0, 0),
            format!(
                "source is {} bytes; the limit is {} bytes",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        ));
    }
    let mut depth = 0usize;
    let mut in_comment = false;
    // Operators seen in the expression being read at each bracket level (the outermost is index 0).
    let mut operators = vec![0usize];
    let bytes = source.as_bytes();
    for (offset, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' => in_comment = false,
            _ if in_comment => {}
            b'#' => in_comment = true,
            b'(' | b'[' | b'{' => {
                depth += 1;
                operators.push(0);
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        Code::LimitExceeded,
                        Span::new(offset, offset + 1),
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    )
                    .with_label("nesting limit reached here"));
                }
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if operators.len() > 1 {
                    operators.pop();
                }
            }
            // An expression ends at these; a statement's layers are separated by `->`, not an operator.
            b',' | b'=' | b':' => *operators.last_mut().expect("one level at least") = 0,
            b'-' if bytes.get(offset + 1) == Some(&b'>') => {
                *operators.last_mut().expect("one level at least") = 0
            }
            b'+' | b'-' | b'*' | b'/' | b'%' => {
                let count = operators.last_mut().expect("one level at least");
                *count += 1;
                if *count > MAX_OPERATORS {
                    return Err(Diagnostic::error(
                        Code::LimitExceeded,
                        Span::new(offset, offset + 1),
                        format!("an expression with more than {MAX_OPERATORS} operators"),
                    )
                    .with_label("operator limit reached here")
                    .with_help("compute the value in fewer steps, or pass it as a parameter"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn rule_name(rule: &Rule) -> String {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::item => "`block` or `network`",
        Rule::block_def => "`block`",
        Rule::network_def => "`network`",
        Rule::param_list => "parameter list `(...)`",
        Rule::param => "parameter",
        Rule::body => "`{`",
        Rule::statement | Rule::layer_stmt => "statement",
        Rule::input_stmt => "`input [C, H, W]`",
        Rule::side_stmt => "`side NAME = ... from SOURCE`",
        Rule::for_stmt => "statement",
        Rule::range_op => "`..` or `..=`",
        Rule::sequence => "`{ ... }`",
        Rule::spread => "`..`",
        Rule::name_text => "name",
        Rule::name_hole => "`{value}`",
        Rule::name_value => "value",
        Rule::declared_shape => "`: [C, H, W]`",
        Rule::shape => "shape `[C, H, W]`",
        Rule::chain => "layer",
        Rule::op | Rule::call => "layer or block call",
        Rule::group => "`concat { ... }`, `add { ... }` or `mul { ... }`",
        Rule::group_kind => "`concat`, `add` or `mul`",
        Rule::arg_list => "`(`",
        Rule::arg => "argument",
        Rule::expr | Rule::primary | Rule::prefix => "expression",
        Rule::neg => "`-`",
        Rule::infix => "operator",
        Rule::add_op => "`+`",
        Rule::sub_op => "`-`",
        Rule::mul_op => "`*`",
        Rule::div_op => "`/`",
        Rule::rem_op => "`%`",
        Rule::list => "`[a, b]`",
        Rule::float => "number",
        Rule::exponent => "exponent",
        Rule::int => "integer",
        Rule::boolean => "`true` or `false`",
        Rule::same => "`same`",
        Rule::keyword => "keyword",
        Rule::ident_char => "letter or digit",
        Rule::ident | Rule::name => "name",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
        Rule::yaml_chain => "layer chain",
        Rule::yaml_shape => "shape `[C, H, W]`",
        Rule::yaml_expr => "expression",
        Rule::yaml_ident | Rule::yaml_name => "name",
        Rule::yaml_for => "loop header `VAR in START..END`",
    }
    .to_string()
}

fn syntax_error(error: pest::error::Error<Rule>) -> Diagnostic {
    let (start, end) = match error.location {
        pest::error::InputLocation::Pos(pos) => (pos, pos),
        pest::error::InputLocation::Span((start, end)) => (start, end),
    };
    let message = match &error.variant {
        pest::error::ErrorVariant::ParsingError {
            positives,
            negatives,
        } => {
            let mut expected: Vec<String> = positives.iter().map(rule_name).collect();
            expected.sort();
            expected.dedup();
            if !expected.is_empty() {
                format!("expected {}", join_alternatives(&expected))
            } else if !negatives.is_empty() {
                let mut unexpected: Vec<String> = negatives.iter().map(rule_name).collect();
                unexpected.sort();
                unexpected.dedup();
                format!("unexpected {}", join_alternatives(&unexpected))
            } else {
                "unexpected input".to_string()
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::error(
        Code::Syntax,
        Span::new(start, end.max(start)),
        message.clone(),
    )
    .with_label(message)
}

/// `text` without trailing whitespace and `# comments`. `#` only ever starts a comment, so a `#` on the last
/// line that has text is where that line's comment begins.
fn without_trailing_trivia(text: &str) -> &str {
    let mut text = text.trim_end();
    loop {
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        match text[line_start..].find('#') {
            Some(hash) => text = text[..line_start + hash].trim_end(),
            None => return text,
        }
    }
}

/// A syntax error in a whole `.arch` file, described from where it happened: what was found there, what the
/// innermost open bracket still needs, and which bracket was never closed.
fn file_syntax_error(source: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
    let position = match error.location {
        pest::error::InputLocation::Pos(pos) => pos,
        pest::error::InputLocation::Span((start, _)) => start,
    }
    .min(source.len());
    let positives: &[Rule] = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives,
        pest::error::ErrorVariant::CustomError { .. } => &[],
    };
    let found = Token::at(source, position);
    let open = unclosed_brackets(source, position);
    let innermost = open.last().copied();
    let closer = |open: u8| match open {
        b'(' => "`)`",
        b'[' => "`]`",
        _ => "`}`",
    };
    let found_span = Span::new(position, position + found.text.len());

    // The file ended inside a definition: name the bracket that was never closed.
    if found.kind == TokenKind::End {
        let mut diagnostic = Diagnostic::error(Code::Syntax, found_span, "unexpected end of file");
        if let Some((bracket, at)) = innermost {
            diagnostic = diagnostic
                .with_label(format!("expected {} here", closer(bracket)))
                .with_secondary(
                    Span::new(at, at + 1),
                    format!("this `{}` is never closed", bracket as char),
                )
                .with_help(format!("close it with {}", closer(bracket)));
        } else {
            diagnostic =
                diagnostic.with_label(format!("expected {}", expected_list(positives, None)));
        }
        return diagnostic;
    }

    // A new definition inside a body: the body before it was not closed.
    if matches!(found.text, "block" | "network") {
        if let Some((b'{', at)) = open
            .iter()
            .rev()
            .find(|(bracket, _)| *bracket == b'{')
            .copied()
        {
            return Diagnostic::error(
                Code::Syntax,
                found_span,
                format!("expected `}}` before `{}`", found.text),
            )
            .with_label(format!("`{}` starts a new definition", found.text))
            .with_secondary(Span::new(at, at + 1), "this `{` is never closed")
            .with_help("close the body above with `}` before the next definition");
        }
    }

    // A keyword where a name was wanted: a definition or parameter named `input`, a statement named `true`.
    // In a body, `input = ...` starts a statement, which is fine: the mistake is before it (a dangling `->`).
    let rest = source[position + found.text.len()..].trim_start();
    let assigned = rest.starts_with('=') && !rest.starts_with("==");
    let starts_statement =
        assigned && !matches!(found.text, "true" | "false") && matches!(innermost, Some((b'{', _)));
    let names_something = (positives
        .iter()
        .any(|r| matches!(r, Rule::ident | Rule::name))
        || assigned)
        && !starts_statement;
    if found.kind == TokenKind::Word && is_keyword(found.text) && names_something {
        let word = found.text;
        let help = match word {
            "true" | "false" => format!("`{word}` is a value; choose another name, e.g. `{word}_`"),
            _ => format!(
                "a keyword can name a statement or a branch (`{word} = ...`), but not a block, a network, a \
                 parameter or a layer; choose another name, e.g. `{word}_`"
            ),
        };
        return Diagnostic::error(
            Code::Syntax,
            found_span,
            format!("`{word}` is a keyword and cannot be used as a name here"),
        )
        .with_label("keyword")
        .with_help(help);
    }

    let expected = expected_list(positives, innermost.map(|(bracket, _)| bracket));
    let message = format!("expected {expected}, found {}", found.describe());
    let mut diagnostic = Diagnostic::error(Code::Syntax, found_span, message)
        .with_label(format!("expected {expected}"));
    let previous = previous_token(source, position).map(|p| Token::at(source, p));
    let expression_ended = only_operators(positives);
    if found.text == "=>" {
        diagnostic = diagnostic.with_help("layers are chained with `->`");
    } else if expression_ended
        && matches!(
            found.kind,
            TokenKind::Number | TokenKind::Word | TokenKind::Bracket
        )
        && previous.as_ref().is_some_and(|p| p.kind == TokenKind::Word)
    {
        // `stride 2`: a name, then a value.
        let name = previous.map_or("", |p| p.text);
        diagnostic = diagnostic.with_help(format!(
            "keyword arguments are written `name = value`: `{name} = {}`",
            found.text
        ));
    } else if !found.text.is_ascii() {
        diagnostic = diagnostic.with_help("names are ASCII letters, digits and underscores");
    } else if let Some((bracket @ (b'(' | b'['), at)) = innermost.filter(|_| expression_ended) {
        diagnostic = diagnostic
            .with_secondary(
                Span::new(at, at + 1),
                format!("`{}` opened here", bracket as char),
            )
            .with_help(format!("is a {} missing?", closer(bracket)));
    }
    diagnostic
}

/// Whether `word` is one of the grammar's keywords.
fn is_keyword(word: &str) -> bool {
    ArchParser::parse(Rule::keyword, word).is_ok_and(|pairs| pairs.as_str() == word)
}

fn only_operators(positives: &[Rule]) -> bool {
    !positives.is_empty()
        && positives.iter().all(|rule| {
            matches!(
                rule,
                Rule::add_op
                    | Rule::sub_op
                    | Rule::mul_op
                    | Rule::div_op
                    | Rule::rem_op
                    | Rule::infix
            )
        })
}

/// What could have come next, in words: pest reports the rules it tried, not the punctuation, so a finished
/// expression inside `(`/`[` is told it needs a `,` or the closing bracket.
fn expected_list(positives: &[Rule], innermost: Option<u8>) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut push = |item: &str| {
        if !items.iter().any(|existing| existing == item) {
            items.push(item.to_string());
        }
    };
    if only_operators(positives) {
        match innermost {
            Some(b'(') => {
                push("`,`");
                push("`)`");
            }
            Some(b'[') => {
                push("`,`");
                push("`]`");
            }
            _ => {}
        }
        push("an operator");
        return join_alternatives(&items);
    }
    let mut statement = false;
    for rule in positives {
        match rule {
            Rule::arg_list => push("`(`"),
            Rule::declared_shape => {
                push("`->`");
                push("`:`");
            }
            Rule::statement
            | Rule::layer_stmt
            | Rule::input_stmt
            | Rule::side_stmt
            | Rule::for_stmt => statement = true,
            Rule::add_op
            | Rule::sub_op
            | Rule::mul_op
            | Rule::div_op
            | Rule::rem_op
            | Rule::infix => push("an operator"),
            other => push(&rule_name(other)),
        }
    }
    if statement {
        if innermost == Some(b'{') {
            push("`}`");
        }
        push("a statement");
    }
    join_alternatives(&items)
}

/// The brackets still open at `position`, outermost first, with their offsets (comments skipped).
fn unclosed_brackets(source: &str, position: usize) -> Vec<(u8, usize)> {
    let mut open = Vec::new();
    let mut in_comment = false;
    for (offset, byte) in source.bytes().enumerate().take(position) {
        match byte {
            b'\n' => in_comment = false,
            _ if in_comment => {}
            b'#' => in_comment = true,
            b'(' | b'[' | b'{' => open.push((byte, offset)),
            b')' | b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open
}

/// The start of the last token before `position`, skipping blanks and comments.
fn previous_token(source: &str, position: usize) -> Option<usize> {
    let before = without_trailing_trivia(&source[..position]);
    let last = before.chars().next_back()?;
    let end = before.len();
    if last.is_ascii_alphanumeric() || last == '_' {
        Some(
            before
                .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                .len(),
        )
    } else {
        Some(end - last.len_utf8())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    End,
    Word,
    Number,
    Bracket,
    Other,
}

/// A rough token at an error position, for `found ...` in messages.
struct Token<'s> {
    kind: TokenKind,
    text: &'s str,
}

impl<'s> Token<'s> {
    fn at(source: &'s str, position: usize) -> Token<'s> {
        let rest = source.get(position..).unwrap_or("");
        let Some(first) = rest.chars().next() else {
            return Token {
                kind: TokenKind::End,
                text: "",
            };
        };
        let run =
            |keep: fn(char) -> bool| &rest[..rest.find(|c: char| !keep(c)).unwrap_or(rest.len())];
        let (kind, text) = if first.is_ascii_alphabetic() || first == '_' {
            (
                TokenKind::Word,
                run(|c| c.is_ascii_alphanumeric() || c == '_'),
            )
        } else if first.is_ascii_digit() {
            (
                TokenKind::Number,
                run(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
            )
        } else if "([{".contains(first) {
            (TokenKind::Bracket, &rest[..1])
        } else if ["->", "=>", "=="].iter().any(|pair| rest.starts_with(pair)) {
            (TokenKind::Other, &rest[..2])
        } else {
            (TokenKind::Other, &rest[..first.len_utf8()])
        };
        Token { kind, text }
    }

    fn describe(&self) -> String {
        match self.kind {
            TokenKind::End => "end of file".to_string(),
            _ if self.text.trim().is_empty() => "a line break".to_string(),
            _ => format!("`{}`", self.text),
        }
    }
}

fn join_alternatives(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Builds AST nodes from pest pairs, shifting spans by `offset` (non-zero for text embedded in YAML).
struct Builder {
    offset: usize,
}

fn definition(pair: Pair<'_, Rule>) -> Definition {
    Builder { offset: 0 }.definition(pair)
}

impl Builder {
    /// The pair's span without the blanks and comments pest lets a rule swallow after its last token (a call
    /// without arguments ends after the whitespace that follows it), so carets stop at the text itself.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        let end = span.start() + without_trailing_trivia(pair.as_str()).len();
        Span::new(span.start() + self.offset, end + self.offset)
    }

    fn definition(&self, pair: Pair<'_, Rule>) -> Definition {
        let kind = match pair.as_rule() {
            Rule::block_def => DefinitionKind::Block,
            _ => DefinitionKind::Network,
        };
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("definition name"));
        let mut params = Vec::new();
        let mut body = Vec::new();
        for part in inner {
            match part.as_rule() {
                Rule::param_list => params = part.into_inner().map(|p| self.param(p)).collect(),
                Rule::body => body = self.body(part),
                _ => unreachable!("definition part {:?}", part.as_rule()),
            }
        }
        Definition {
            kind,
            name,
            params,
            body,
            span,
        }
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn param(&self, pair: Pair<'_, Rule>) -> Param {
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("param name"));
        let default = inner.next().map(|e| self.expr(e));
        Param { name, default }
    }

    fn statement(&self, pair: Pair<'_, Rule>) -> Statement {
        match pair.as_rule() {
            Rule::input_stmt => {
                Statement::Input(self.shape(pair.into_inner().next().expect("input shape")))
            }
            Rule::for_stmt => Statement::For(self.for_loop(pair)),
            _ => Statement::Layer(self.layer_statement(pair)),
        }
    }

    fn for_loop(&self, pair: Pair<'_, Rule>) -> ForLoop {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let var = self.ident(inner.next().expect("loop variable"));
        let start = self.expr(inner.next().expect("range start"));
        let inclusive = inner.next().expect("range operator").as_str() == "..=";
        let end = self.expr(inner.next().expect("range end"));
        let body = self.body(inner.next().expect("loop body"));
        ForLoop {
            var,
            start,
            end,
            inclusive,
            body,
            span,
        }
    }

    fn body(&self, pair: Pair<'_, Rule>) -> Vec<Statement> {
        pair.into_inner().map(|s| self.statement(s)).collect()
    }

    /// A statement's name as written, and its parts when it has `{e}` holes.
    fn name(&self, pair: Pair<'_, Rule>) -> (Ident, Vec<NamePart>) {
        let ident = self.ident(pair.clone());
        let text = pair.as_str();
        let base = pair.as_span().start();
        let mut template = Vec::new();
        let mut cursor = 0;
        for value in pair.into_inner() {
            let start = value.as_span().start() - base;
            let end = value.as_span().end() - base;
            let open = text[..start].rfind('{').expect("a hole opens with `{`");
            if open > cursor {
                template.push(NamePart::Text(text[cursor..open].to_string()));
            }
            template.push(NamePart::Value(
                self.expr(value.into_inner().next().expect("hole value")),
            ));
            cursor = end + text[end..].find('}').expect("a hole closes with `}`") + 1;
        }
        if !template.is_empty() && cursor < text.len() {
            template.push(NamePart::Text(text[cursor..].to_string()));
        }
        (ident, template)
    }

    fn layer_statement(&self, pair: Pair<'_, Rule>) -> LayerStatement {
        let is_side = pair.as_rule() == Rule::side_stmt;
        let span = self.span(&pair);
        let mut name = None;
        let mut template = Vec::new();
        let mut side_from = None;
        let mut chain = Vec::new();
        let mut declared = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name if chain.is_empty() => {
                    let (ident, parts) = self.name(part);
                    name = Some(ident);
                    template = parts;
                }
                Rule::name => side_from = Some(self.ident(part)),
                Rule::chain => chain = self.chain(part),
                Rule::declared_shape => {
                    declared = Some(self.shape(part.into_inner().next().expect("shape")))
                }
                _ => unreachable!("statement part {:?}", part.as_rule()),
            }
        }
        debug_assert_eq!(is_side, side_from.is_some());
        LayerStatement {
            name,
            template,
            side_from,
            chain,
            declared,
            span,
        }
    }

    fn chain(&self, pair: Pair<'_, Rule>) -> Vec<Op> {
        pair.into_inner().map(|op| self.op(op)).collect()
    }

    fn op(&self, pair: Pair<'_, Rule>) -> Op {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::group => {
                let mut inner = pair.into_inner();
                let keyword = inner.next().expect("group kind");
                let kind = match keyword.as_str() {
                    "concat" => GroupKind::Concat,
                    "mul" => GroupKind::Mul,
                    _ => GroupKind::Add,
                };
                Op::Group(Group {
                    kind,
                    keyword_span: self.span(&keyword),
                    branches: inner.map(|b| self.layer_statement(b)).collect(),
                    span,
                })
            }
            Rule::sequence => Op::Sequence(Sequence {
                body: pair.into_inner().map(|s| self.statement(s)).collect(),
                span,
            }),
            _ => {
                let mut inner = pair.into_inner().peekable();
                let spread = inner.next_if(|p| p.as_rule() == Rule::spread).is_some();
                let callee = self.ident(inner.next().expect("callee"));
                let args = inner
                    .next()
                    .map(|list| list.into_inner().map(|a| self.arg(a)).collect())
                    .unwrap_or_default();
                Op::Call(Call {
                    spread,
                    callee,
                    args,
                    span,
                })
            }
        }
    }

    fn arg(&self, pair: Pair<'_, Rule>) -> Arg {
        let span = self.span(&pair);
        let mut parts: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let value = self.expr(parts.pop().expect("argument value"));
        let name = parts.pop().map(|name| self.ident(name));
        Arg { name, value, span }
    }

    fn shape(&self, pair: Pair<'_, Rule>) -> ShapeExpr {
        let span = self.span(&pair);
        ShapeExpr {
            dims: pair.into_inner().map(|e| self.expr(e)).collect(),
            span,
        }
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Expr {
        let pratt = PrattParser::new()
            .op(PrattOp::infix(Rule::add_op, Assoc::Left)
                | PrattOp::infix(Rule::sub_op, Assoc::Left))
            .op(PrattOp::infix(Rule::mul_op, Assoc::Left)
                | PrattOp::infix(Rule::div_op, Assoc::Left)
                | PrattOp::infix(Rule::rem_op, Assoc::Left))
            .op(PrattOp::prefix(Rule::neg));
        pratt
            .map_primary(|primary| self.primary(primary))
            .map_prefix(|op, operand| Expr {
                span: self.span(&op).to(operand.span),
                kind: ExprKind::Neg(Box::new(operand)),
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::add_op => BinaryOp::Add,
                    Rule::sub_op => BinaryOp::Sub,
                    Rule::mul_op => BinaryOp::Mul,
                    Rule::div_op => BinaryOp::Div,
                    _ => BinaryOp::Rem,
                };
                Expr {
                    span: lhs.span.to(rhs.span),
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                }
            })
            .parse(pair.into_inner())
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::int => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                ExprKind::Int(digits.parse::<i64>().map_err(|_| pair.as_str().to_string()))
            }
            // The grammar only admits digit strings here, which always parse as (possibly infinite) f64.
            Rule::float => ExprKind::Float(pair.as_str().parse().unwrap_or(f64::INFINITY)),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::same => ExprKind::Same,
            Rule::ident => ExprKind::Name(pair.as_str().to_string()),
            Rule::list => ExprKind::List(pair.into_inner().map(|e| self.expr(e)).collect()),
            Rule::expr => return self.expr(pair),
            other => unreachable!("primary {other:?}"),
        };
        Expr { kind, span }
    }
}
