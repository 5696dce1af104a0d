//! Parsing: `.arch` source text to the [`ast`](crate::ast).
//!
//! pest's `Pairs` never leave this module; its errors are converted to [`Diagnostic`]s here, with rules given
//! friendly names. Input limits (size, bracket nesting) are enforced before pest runs, so no input can make the
//! recursive-descent parser overflow its stack.

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

/// Parses a whole `.arch` file. On failure returns the diagnostics (a syntax error stops parsing: pest does
/// not recover, and a tree built around a syntax error would only produce follow-on noise).
pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    check_limits(source).map_err(|diagnostic| vec![diagnostic])?;
    let mut pairs = ArchParser::parse(Rule::file, source).map_err(|error| vec![syntax_error(error)])?;
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
pub(crate) fn parse_chain_at(text: &str, offset: usize) -> Result<(Vec<Op>, Option<ShapeExpr>), Diagnostic> {
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
    let mut pairs = ArchParser::parse(Rule::yaml_shape, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs.next().expect("yaml_shape matched").into_inner().next().expect("shape");
    Ok(Builder { offset }.shape(pair))
}

/// Parses a single expression from YAML text at `offset`.
pub(crate) fn parse_expr_at(text: &str, offset: usize) -> Result<Expr, Diagnostic> {
    check_limits(text).map_err(|d| shift_diagnostic(d, offset))?;
    let mut pairs = ArchParser::parse(Rule::yaml_expr, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs.next().expect("yaml_expr matched").into_inner().next().expect("expr");
    Ok(Builder { offset }.expr(pair))
}

/// Parses a name (a block, statement or parameter name) from YAML text at `offset`.
pub(crate) fn parse_ident_at(text: &str, offset: usize) -> Result<Ident, Diagnostic> {
    let mut pairs = ArchParser::parse(Rule::yaml_ident, text)
        .map_err(|error| shift_diagnostic(syntax_error(error), offset))?;
    let pair = pairs.next().expect("yaml_ident matched").into_inner().next().expect("ident");
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
    for (offset, byte) in source.bytes().enumerate() {
        match byte {
            b'\n' => in_comment = false,
            _ if in_comment => {}
            b'#' => in_comment = true,
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        Code::LimitExceeded,
                        Span::new(offset, offset + 1),
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    )
                    .with_label("nesting limit reached here"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
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
        Rule::declared_shape => "`: [C, H, W]`",
        Rule::shape => "shape `[C, H, W]`",
        Rule::chain => "layer",
        Rule::op | Rule::call => "layer or block call",
        Rule::group => "`concat { ... }` or `add { ... }`",
        Rule::group_kind => "`concat` or `add`",
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
        Rule::ident => "name",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
        Rule::yaml_chain => "layer chain",
        Rule::yaml_shape => "shape `[C, H, W]`",
        Rule::yaml_expr => "expression",
        Rule::yaml_ident => "name",
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
    Diagnostic::error(Code::Syntax, Span::new(start, end.max(start)), message.clone())
        .with_label(message)
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
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        Span::new(span.start() + self.offset, span.end() + self.offset)
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
                Rule::body => body = part.into_inner().map(|s| self.statement(s)).collect(),
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
            _ => Statement::Layer(self.layer_statement(pair)),
        }
    }

    fn layer_statement(&self, pair: Pair<'_, Rule>) -> LayerStatement {
        let is_side = pair.as_rule() == Rule::side_stmt;
        let span = self.span(&pair);
        let mut name = None;
        let mut side_from = None;
        let mut chain = Vec::new();
        let mut declared = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::ident if chain.is_empty() => name = Some(self.ident(part)),
                Rule::ident => side_from = Some(self.ident(part)),
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
                    _ => GroupKind::Add,
                };
                Op::Group(Group {
                    kind,
                    keyword_span: self.span(&keyword),
                    branches: inner.map(|b| self.layer_statement(b)).collect(),
                    span,
                })
            }
            _ => {
                let mut inner = pair.into_inner();
                let callee = self.ident(inner.next().expect("callee"));
                let args = inner
                    .next()
                    .map(|list| list.into_inner().map(|a| self.arg(a)).collect())
                    .unwrap_or_default();
                Op::Call(Call { callee, args, span })
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
            .op(PrattOp::infix(Rule::add_op, Assoc::Left) | PrattOp::infix(Rule::sub_op, Assoc::Left))
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
