//! One open document, checked: its AST (when it parses), its diagnostics, the networks the checker recovered,
//! and the name occurrences that definition, references and rename follow.

use std::collections::HashMap;

use crate::ast::visit::{self, Visit};
use crate::ast::{self, Arg, Call, Definition, Expr, ExprKind, Group, LayerStatement, Param};
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
    let definitions: HashMap<&str, usize> = file
        .items
        .iter()
        .enumerate()
        .rev() // the first definition of a name wins, as in the checker
        .map(|(index, d)| (d.name.name.as_str(), index))
        .collect();
    let mut walker = Walker {
        file,
        definitions: &definitions,
        owner: 0,
        scope: None,
        callee: None,
        out: Vec::new(),
    };
    for (owner, definition) in file.items.iter().enumerate() {
        walker.owner = owner;
        walker.visit_definition(definition);
    }
    walker.out
}

struct Walker<'a> {
    file: &'a ast::File,
    definitions: &'a HashMap<&'a str, usize>,
    /// The index of the definition being walked.
    owner: usize,
    /// The span of the innermost group around the statement being walked; `None` at a body's top level.
    scope: Option<Span>,
    /// The definition the call whose arguments are being walked instantiates, if it is a block or network.
    callee: Option<usize>,
    out: Vec<Occurrence>,
}

impl Walker<'_> {
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
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_definition(&mut self, definition: &'ast Definition) {
        self.push(
            definition.name.span,
            Symbol::Definition(definition.name.name.clone()),
            true,
        );
        visit::visit_definition(self, definition);
    }

    fn visit_param(&mut self, param: &'ast Param) {
        self.push(
            param.name.span,
            Symbol::Param {
                owner: self.owner,
                name: param.name.name.clone(),
            },
            true,
        );
        visit::visit_param(self, param);
    }

    fn visit_layer_statement(&mut self, statement: &'ast LayerStatement) {
        if let Some(name) = &statement.name {
            self.push(
                name.span,
                Symbol::Statement {
                    owner: self.owner,
                    scope: self.scope,
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
        visit::visit_layer_statement(self, statement);
    }

    fn visit_group(&mut self, group: &'ast Group) {
        let outer = self.scope.replace(group.span);
        visit::visit_group(self, group);
        self.scope = outer;
    }

    fn visit_call(&mut self, call: &'ast Call) {
        self.callee = self.definitions.get(call.callee.name.as_str()).copied();
        if self.callee.is_some() {
            self.push(
                call.callee.span,
                Symbol::Definition(call.callee.name.clone()),
                false,
            );
        }
        visit::visit_call(self, call);
    }

    fn visit_arg(&mut self, arg: &'ast Arg) {
        if let (Some(name), Some(block)) = (&arg.name, self.callee) {
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
        visit::visit_arg(self, arg);
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if let ExprKind::Name(name) = &expr.kind {
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
        visit::visit_expr(self, expr);
    }
}

/// The occurrence whose name covers `offset` (its end included, so a cursor just after a name finds it).
pub fn occurrence_at(occurrences: &[Occurrence], offset: usize) -> Option<&Occurrence> {
    occurrences
        .iter()
        .find(|o| o.span.start as usize <= offset && offset <= o.span.end as usize)
}

/// The calls of `file`, each with the index of the definition it is in.
pub fn calls(file: &ast::File) -> Vec<(usize, &Call)> {
    struct Calls<'ast> {
        owner: usize,
        out: Vec<(usize, &'ast Call)>,
    }
    impl<'ast> Visit<'ast> for Calls<'ast> {
        fn visit_call(&mut self, call: &'ast Call) {
            self.out.push((self.owner, call));
        }
    }
    let mut calls = Calls {
        owner: 0,
        out: Vec::new(),
    };
    for (owner, definition) in file.items.iter().enumerate() {
        calls.owner = owner;
        calls.visit_definition(definition);
    }
    calls.out
}

/// Every layer statement of `file` (branches included), with the index of its definition and its nesting
/// depth (0 for a body's top level).
pub fn statements(file: &ast::File) -> Vec<(usize, usize, &LayerStatement)> {
    struct Statements<'ast> {
        owner: usize,
        depth: usize,
        out: Vec<(usize, usize, &'ast LayerStatement)>,
    }
    impl<'ast> Visit<'ast> for Statements<'ast> {
        fn visit_layer_statement(&mut self, statement: &'ast LayerStatement) {
            self.out.push((self.owner, self.depth, statement));
            visit::visit_layer_statement(self, statement);
        }
        fn visit_group(&mut self, group: &'ast Group) {
            self.depth += 1;
            visit::visit_group(self, group);
            self.depth -= 1;
        }
    }
    let mut statements = Statements {
        owner: 0,
        depth: 0,
        out: Vec::new(),
    };
    for (owner, definition) in file.items.iter().enumerate() {
        statements.owner = owner;
        statements.visit_definition(definition);
    }
    statements.out
}
