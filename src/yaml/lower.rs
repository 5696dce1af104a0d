//! Lowering: the [`Node`] tree to the AST, checking the architecture schema and parsing the `.arch` pieces
//! (chains, expressions, shapes) where they stand in the YAML source.

use super::load::{Kind, Node};
use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::{
    parse_chain_at, parse_expr_at, parse_for_at, parse_ident_at, parse_name_at, parse_shape_at,
    parse_templated_name_at,
};

/// A schema error: the YAML is well formed but not an architecture.
fn schema_error(span: Span, message: impl Into<String>, label: impl Into<String>) -> Diagnostic {
    Diagnostic::error(Code::Yaml, span, message).with_label(label)
}

/// Lowers a loaded document: its definitions, and every schema error found (empty when there is none).
pub(super) fn lower(source: &str, root: &Node) -> (Vec<Definition>, Vec<Diagnostic>) {
    let mut lowerer = Lowerer {
        source,
        diagnostics: Vec::new(),
    };
    let items = lowerer.file(root);
    (items, lowerer.diagnostics)
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

    /// A statement's or branch's name, with the values it holds (`denselayer{i}`, in a loop's body).
    fn templated_name(&mut self, node: &Node) -> Option<(Ident, Vec<NamePart>)> {
        self.name_text(node, true, parse_templated_name_at)
    }

    fn name_with(&mut self, node: &Node, keywords_are_names: bool) -> Option<Ident> {
        let parse = if keywords_are_names {
            parse_name_at
        } else {
            parse_ident_at
        };
        self.name_text(node, keywords_are_names, parse)
    }

    fn name_text<T: Respan>(
        &mut self,
        node: &Node,
        keywords_are_names: bool,
        parse: impl FnOnce(&str, usize) -> Result<T, Diagnostic>,
    ) -> Option<T> {
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
                    template: Vec::new(),
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
        if entries.iter().any(|(key, _)| key.as_str() == Some("for")) {
            if place == Place::Branch {
                self.push(schema_error(
                    node.span,
                    "a branch cannot be a `for` loop",
                    "a loop in a group",
                ));
                return None;
            }
            return self.for_loop(node, entries).map(Statement::For);
        }
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
            ("concat" | "add" | "mul", Kind::Str(_)) => true,
            _ => false,
        };
        let (name, chain_value, is_side) = match head_text {
            "input" | "concat" | "add" | "mul" if names_a_chain => {
                let name = self.templated_name(key);
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
            "concat" | "add" | "mul" => {
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
                    (Some((name?, Vec::new())), chain, true)
                }
                None => {
                    let name = self.templated_name(key);
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
        let (name, template) = match name {
            Some((name, template)) => (Some(name), template),
            None => (None, Vec::new()),
        };
        Some(Statement::Layer(LayerStatement {
            template,
            name,
            side_from,
            chain,
            declared,
            span: node.span,
        }))
    }

    /// `- for: i in 1..=n` with `body:` (its statements) beside it: a loop, as `for i in 1..=n { ... }` in
    /// `.arch`.
    fn for_loop(&mut self, node: &Node, entries: &[(Node, Node)]) -> Option<ForLoop> {
        let mut header: Option<(&Node, &Node)> = None;
        let mut body: Option<(&Node, &Node)> = None;
        let mut ok = true;
        for (key, value) in entries {
            let slot = match key.as_str() {
                Some("for") => &mut header,
                Some("body") => &mut body,
                _ => {
                    self.push(
                        schema_error(key.span, "a `for` loop has no such key", "not `for` or `body`")
                            .with_help(
                                "a loop is `- for: VAR in START..END` and, under it, `body:` with its statements",
                            ),
                    );
                    ok = false;
                    continue;
                }
            };
            match *slot {
                Some((first, _)) => {
                    self.duplicate_key(key, first.span);
                    ok = false;
                }
                None => *slot = Some((key, value)),
            }
        }
        let (_, header) = header?;
        let Some((_, body)) = body else {
            self.push(
                schema_error(node.span, "this `for` loop has no `body`", "no `body`")
                    .with_help("list the statements run for each value under `body:`"),
            );
            return None;
        };
        let Some(text) = header.as_str() else {
            self.expected(header, "a loop header `VAR in START..END`");
            return None;
        };
        let header = self.parse_text(header, text, |text, offset| {
            parse_for_at(text, offset).map(|(var, start, end, inclusive)| LoopHeader {
                var,
                start,
                end,
                inclusive,
            })
        });
        let body = self.body(body);
        let LoopHeader {
            var,
            start,
            end,
            inclusive,
        } = header?;
        ok.then_some(ForLoop {
            var,
            start,
            end,
            inclusive,
            body,
            span: node.span,
        })
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
                // `body:` with statements: a sequence, as `{ ... }` in `.arch`.
                [(key, value)] if key.as_str() == Some("body") => Some(ChainValue {
                    chain: vec![Op::Sequence(Sequence {
                        body: self.body(value),
                        span: node.span,
                    })],
                    declared: None,
                    from: None,
                }),
                [(key, value)] if matches!(key.as_str(), Some("concat" | "add" | "mul")) => {
                    Some(ChainValue {
                        chain: vec![Op::Group(self.group(key, value)?)],
                        declared: None,
                        from: None,
                    })
                }
                _ => {
                    self.expected(
                        node,
                        "a chain (a string), `concat:`, `add:`, `mul:` or a sequence's `body:`",
                    );
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
        let kind = match key.as_str() {
            Some("add") => GroupKind::Add,
            Some("mul") => GroupKind::Mul,
            _ => GroupKind::Concat,
        };
        let branches: Vec<Option<LayerStatement>> = match &value.kind {
            Kind::Map(entries) => entries
                .iter()
                .map(|(key, chain)| {
                    let name = self.templated_name(key);
                    let value = self.chain_value(chain, false)?;
                    let (name, template) = name?;
                    Some(LayerStatement {
                        name: Some(name),
                        template,
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
                    Statement::Input(_) | Statement::For(_) => None,
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

/// A parsed `for:` value.
struct LoopHeader {
    var: Ident,
    start: Expr,
    end: Expr,
    inclusive: bool,
}

impl Respan for LoopHeader {
    fn respan(&mut self, span: Span) {
        self.var.respan(span);
        self.start.respan(span);
        self.end.respan(span);
    }
}

impl<A: Respan, B: Respan> Respan for (A, B) {
    fn respan(&mut self, span: Span) {
        self.0.respan(span);
        self.1.respan(span);
    }
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
            Op::Sequence(sequence) => {
                sequence.span = span;
                sequence.body.respan(span);
            }
        }
    }
}

impl Respan for Statement {
    fn respan(&mut self, span: Span) {
        match self {
            Statement::Input(shape) => shape.respan(span),
            Statement::Layer(layer) => layer.respan(span),
            Statement::For(for_loop) => {
                for_loop.span = span;
                for_loop.var.respan(span);
                for_loop.start.respan(span);
                for_loop.end.respan(span);
                for_loop.body.respan(span);
            }
        }
    }
}

impl Respan for NamePart {
    fn respan(&mut self, span: Span) {
        if let NamePart::Value(expr) = self {
            expr.respan(span);
        }
    }
}

impl Respan for LayerStatement {
    fn respan(&mut self, span: Span) {
        self.span = span;
        self.name.respan(span);
        self.template.respan(span);
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
