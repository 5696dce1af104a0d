//! One open document, checked: its AST (when it parses), its diagnostics, the networks the checker recovered,
//! and the name occurrences that definition, references and rename follow.

use std::collections::HashMap;

use crate::ast::{self, Expr, ExprKind, LayerStatement, Op, Statement};
use crate::diagnostic::{Diagnostic, Span};
use crate::ir::{Network, Node, NodeKind, Shape};
use crate::SourceKind;

use super::text::Text;

/// An open document and what the checker found in it.
pub struct Document {
    pub text: Text,
    pub kind: SourceKind,
    pub version: i32,
    /// `None` when the text does not parse.
    pub file: Option<ast::File>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every network the checker could follow, those with errors included.
    pub networks: Vec<Network>,
}

impl Document {
    /// Parses and checks `text`.
    pub fn new(kind: SourceKind, version: i32, text: String) -> Document {
        let mut document = Document {
            text: Text::new(text),
            kind,
            version,
            file: None,
            diagnostics: Vec::new(),
            networks: Vec::new(),
        };
        document.analyse();
        document
    }

    /// Re-checks after the text changed.
    pub fn analyse(&mut self) {
        match crate::parse_source(self.kind, self.text.as_str()) {
            Ok(file) => {
                let (checked, recovered) = crate::check::check_file_recovering(&file);
                self.diagnostics = checked.diagnostics;
                self.networks = recovered;
                self.file = Some(file);
            }
            Err(diagnostics) => {
                self.diagnostics = diagnostics;
                self.networks = Vec::new();
                self.file = None;
            }
        }
    }

    /// Every checked node, with the block instance it belongs to (the instance's weight path), keyed by the
    /// span of the source it came from. A block body used twice has two entries per span.
    pub fn nodes_by_span(&self) -> HashMap<Span, Vec<Instance<'_>>> {
        let mut map: HashMap<Span, Vec<Instance<'_>>> = HashMap::new();
        for network in &self.networks {
            for node in &network.body {
                walk_instances(node, None, &mut |node, instance| {
                    map.entry(node.span)
                        .or_default()
                        .push(Instance { node, instance });
                });
            }
        }
        map
    }

    /// The checked nodes that came from `span`.
    pub fn nodes_at(&self, span: Span) -> Vec<Instance<'_>> {
        let mut found = Vec::new();
        for network in &self.networks {
            for node in &network.body {
                walk_instances(node, None, &mut |node, instance| {
                    if node.span == span {
                        found.push(Instance { node, instance });
                    }
                });
            }
        }
        found
    }
}

/// A checked node and the block instance it is part of (`None` at a network's top level).
#[derive(Clone, Copy)]
pub struct Instance<'a> {
    pub node: &'a Node,
    pub instance: Option<&'a str>,
}

fn walk_instances<'a>(
    node: &'a Node,
    instance: Option<&'a str>,
    visit: &mut impl FnMut(&'a Node, Option<&'a str>),
) {
    visit(node, instance);
    let inner = match &node.kind {
        NodeKind::Block { block, .. } if node.path.is_empty() => Some(block.as_str()),
        NodeKind::Block { .. } => Some(node.path.as_str()),
        _ => instance,
    };
    for child in node.children() {
        walk_instances(child, inner, visit);
    }
}

/// The span a statement's node carries: its only operation's, or the whole statement's for a chain.
pub fn statement_node_span(statement: &LayerStatement) -> Span {
    match statement.chain.as_slice() {
        [op] => op.span(),
        _ => statement.span,
    }
}

/// The output shapes of a statement's instances, deduplicated in order.
pub fn distinct_shapes(instances: &[Instance<'_>]) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = Vec::new();
    for instance in instances {
        if !shapes.contains(&instance.node.output) {
            shapes.push(instance.node.output);
        }
    }
    shapes
}

/// What a name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbol {
    /// A block or network, by name.
    Definition(String),
    /// A parameter of the definition at this index of the file.
    Param { owner: usize, name: String },
    /// A statement name: `scope` is `None` at a body's top level (where `from` looks), else the span of the group
    /// the branch is in.
    Statement {
        owner: usize,
        scope: Option<Span>,
        name: String,
    },
}

/// One place a symbol's name is written.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub span: Span,
    pub symbol: Symbol,
    /// Whether this is where the symbol is declared.
    pub declaration: bool,
}

/// Every name occurrence in `file` that refers to a block, a network, a parameter or a statement, in source order
/// within each definition.
pub fn occurrences(file: &ast::File) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let definitions: HashMap<&str, usize> = file
        .items
        .iter()
        .enumerate()
        .rev() // the first definition of a name wins, as in the checker
        .map(|(index, d)| (d.name.name.as_str(), index))
        .collect();
    for (owner, definition) in file.items.iter().enumerate() {
        let mut walker = Walker {
            file,
            definitions: &definitions,
            owner,
            out: &mut out,
        };
        walker.push(
            definition.name.span,
            Symbol::Definition(definition.name.name.clone()),
            true,
        );
        for param in &definition.params {
            walker.push(
                param.name.span,
                Symbol::Param {
                    owner,
                    name: param.name.name.clone(),
                },
                true,
            );
            if let Some(default) = &param.default {
                walker.expr(default);
            }
        }
        for statement in &definition.body {
            match statement {
                Statement::Input(shape) => shape.dims.iter().for_each(|e| walker.expr(e)),
                Statement::Layer(statement) => walker.statement(statement, None),
            }
        }
    }
    out
}

struct Walker<'a, 'o> {
    file: &'a ast::File,
    definitions: &'a HashMap<&'a str, usize>,
    owner: usize,
    out: &'o mut Vec<Occurrence>,
}

impl Walker<'_, '_> {
    fn push(&mut self, span: Span, symbol: Symbol, declaration: bool) {
        self.out.push(Occurrence {
            span,
            symbol,
            declaration,
        });
    }

    fn has_param(&self, owner: usize, name: &str) -> bool {
        self.file.items[owner]
            .params
            .iter()
            .any(|p| p.name.name == name)
    }

    fn statement(&mut self, statement: &LayerStatement, scope: Option<Span>) {
        if let Some(name) = &statement.name {
            self.push(
                name.span,
                Symbol::Statement {
                    owner: self.owner,
                    scope,
                    name: name.name.clone(),
                },
                true,
            );
        }
        if let Some(source) = &statement.side_from {
            self.push(
                source.span,
                Symbol::Statement {
                    owner: self.owner,
                    scope: None,
                    name: source.name.clone(),
                },
                false,
            );
        }
        for op in &statement.chain {
            match op {
                Op::Call(call) => {
                    let block = self.definitions.get(call.callee.name.as_str()).copied();
                    if block.is_some() {
                        self.push(
                            call.callee.span,
                            Symbol::Definition(call.callee.name.clone()),
                            false,
                        );
                    }
                    for arg in &call.args {
                        if let (Some(name), Some(block)) = (&arg.name, block) {
                            if self.has_param(block, &name.name) {
                                self.push(
                                    name.span,
                                    Symbol::Param {
                                        owner: block,
                                        name: name.name.clone(),
                                    },
                                    false,
                                );
                            }
                        }
                        self.expr(&arg.value);
                    }
                }
                Op::Group(group) => {
                    for branch in &group.branches {
                        self.statement(branch, Some(group.span));
                    }
                }
            }
        }
        if let Some(declared) = &statement.declared {
            declared.dims.iter().for_each(|e| self.expr(e));
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Name(name) => {
                if self.has_param(self.owner, name) {
                    self.push(
                        expr.span,
                        Symbol::Param {
                            owner: self.owner,
                            name: name.clone(),
                        },
                        false,
                    );
                }
            }
            ExprKind::List(items) => items.iter().for_each(|e| self.expr(e)),
            ExprKind::Neg(inner) => self.expr(inner),
            ExprKind::Binary(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Same => {}
        }
    }
}

/// The occurrence whose name covers `offset` (its end included, so a cursor just after a name finds it).
pub fn occurrence_at(occurrences: &[Occurrence], offset: usize) -> Option<&Occurrence> {
    occurrences
        .iter()
        .find(|o| o.span.start as usize <= offset && offset <= o.span.end as usize)
}

/// The calls of `file`, each with the index of the definition it is in.
pub fn calls(file: &ast::File) -> Vec<(usize, &ast::Call)> {
    fn statement<'a>(owner: usize, s: &'a LayerStatement, out: &mut Vec<(usize, &'a ast::Call)>) {
        for op in &s.chain {
            match op {
                Op::Call(call) => out.push((owner, call)),
                Op::Group(group) => group.branches.iter().for_each(|b| statement(owner, b, out)),
            }
        }
    }
    let mut out = Vec::new();
    for (owner, definition) in file.items.iter().enumerate() {
        for s in &definition.body {
            if let Statement::Layer(s) = s {
                statement(owner, s, &mut out);
            }
        }
    }
    out
}

/// Every layer statement of `file` (branches included), with the index of its definition and its nesting
/// depth (0 for a body's top level).
pub fn statements(file: &ast::File) -> Vec<(usize, usize, &LayerStatement)> {
    fn walk<'a>(
        owner: usize,
        depth: usize,
        s: &'a LayerStatement,
        out: &mut Vec<(usize, usize, &'a LayerStatement)>,
    ) {
        out.push((owner, depth, s));
        for op in &s.chain {
            if let Op::Group(group) = op {
                group
                    .branches
                    .iter()
                    .for_each(|b| walk(owner, depth + 1, b, out));
            }
        }
    }
    let mut out = Vec::new();
    for (owner, definition) in file.items.iter().enumerate() {
        for s in &definition.body {
            if let Statement::Layer(s) = s {
                walk(owner, 0, s, &mut out);
            }
        }
    }
    out
}
