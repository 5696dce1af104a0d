//! Checking: shape and channel inference over the AST, producing the [`ir`](crate::ir) and every diagnostic.
//!
//! The checker walks each network from its `input` statement down, instantiating blocks with their argument
//! values, inferring every in-channel count and spatial size with PyTorch's formulas, and verifying concat and
//! add agreement and the declared sizes. It never stops at the first error: a statement that fails continues
//! with its declared size (when it has one), so the rows after it are still checked against what the author
//! meant. When a declaration disagrees with what its row computes, either may be the wrong one, so the rows
//! after it are checked against both (see [`Checker::check_row`]): one wrong declaration gives one error, and
//! so does one wrong computation upstream.

mod eval;
mod foreign;
pub mod input_size;
mod report;

use std::collections::{HashMap, HashSet};

use crate::ast::visit::{self, Visit};
use crate::ast::{
    self, Call, Definition, DefinitionKind, Expr, ExprKind, ForLoop, GroupKind, LayerStatement,
    NamePart, Op, Statement,
};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::ir::{Layer, Network, Node, NodeKind, Role, Shape, Value};

use crate::ir::Arg;
use crate::layers::{builtin, builtins, ArgDefault, Args, BoundArg};
use eval::{did_you_mean, eval, Binding, Env};
use foreign::{foreign_layer, pytorch_keyword, Foreign, PytorchKeyword};
use report::{spatial_culprit, spatial_text};

pub use crate::layers::MAX_DIM;

/// The deepest chain of block instances accepted.
pub const MAX_BLOCK_DEPTH: usize = 64;
/// The most IR nodes one file may expand to (blocks are instantiated per use). A thousand-layer ResNet is a few
/// thousand nodes; the limit stops blocks that double at each level from running for minutes.
pub const MAX_NODES: usize = 200_000;

/// The result of checking a file: the networks that checked without errors, and all diagnostics.
#[derive(Debug, Clone)]
pub struct Checked {
    pub networks: Vec<Network>,
    /// Errors and warnings in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The value of an expression without parameters (`None` after an error, pushed to `diagnostics`).
pub(crate) fn eval_constant(expr: &Expr, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
    eval(expr, &Env::default(), diagnostics)
}

/// The names of the built-in layers.
pub fn builtin_layers() -> impl Iterator<Item = &'static str> {
    builtins().map(|b| b.name)
}

/// Checks every definition in `file`.
pub fn check_file(file: &ast::File) -> Checked {
    check_file_recovering(file).0
}

/// Checks every definition like [`check_file`], and also returns every network the checker could follow from
/// its input to its output, those with errors included: a statement that failed is missing from such a
/// network's body, and the statements after it read its declared size (or what it computes, where the rows
/// after it agree with that instead). `archc graph --allow-errors` draws these.
pub fn check_file_recovering(file: &ast::File) -> (Checked, Vec<Network>) {
    let mut checker = Checker {
        blocks: HashMap::new(),
        rejected: HashSet::new(),
        diagnostics: Vec::new(),
        stack: Vec::new(),
        nodes: 0,
        budget_reported: false,
        block_readings: None,
    };
    checker.register(file);
    let mut networks = Vec::new();
    let mut recovered = Vec::new();
    for definition in &file.items {
        // A definition rejected by `register` (a duplicate, or a built-in's name) is reported once, not checked.
        if checker.rejected.contains(&definition.span) {
            continue;
        }
        checker.check_unused_params(definition);
        if definition.kind == DefinitionKind::Network {
            let before = checker.error_count();
            if let Some(network) = checker.check_network(definition) {
                if checker.error_count() == before {
                    networks.push(network.clone());
                }
                recovered.push(network);
            }
        }
    }
    checker.check_unreached_blocks(file);
    let mut diagnostics = checker.diagnostics;
    // A block used several times reports an error in its body once per instance; the first instance's report
    // (which names that instance) is enough.
    let mut seen = HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code, d.primary.span)));
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
    (
        Checked {
            networks,
            diagnostics,
        },
        recovered,
    )
}

struct Checker<'a> {
    blocks: HashMap<&'a str, &'a Definition>,
    /// Spans of definitions that were reported as duplicates or as shadowing a built-in.
    rejected: HashSet<Span>,
    diagnostics: Vec<Diagnostic>,
    /// The block instances being checked, outermost first, with their call spans.
    stack: Vec<(&'a str, Span)>,
    nodes: usize,
    budget_reported: bool,
    /// The call span of the block instance checked last, with the other sizes its body may give: where a row
    /// of its body disagreed with its declaration, the body ends with more than one reading (see
    /// [`Checker::check_row`]), and the block's output is the first.
    block_readings: Option<(Span, Vec<Shape>)>,
}

/// Where a body sits, which decides what it may contain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Network,
    Block,
    /// The statements of a sequence `{ ... }` or of a `for` loop.
    Sequence,
}

/// The names taken at one level of weight paths.
type Scope = HashMap<String, Span>;

/// A row checked under one of the shapes its input may have (see [`Checker::check_row`]).
struct Reading {
    input: Shape,
    node: Option<Node>,
    /// Other sizes the row may give (see [`Checker::infer_statement`]).
    alternatives: Vec<Shape>,
    /// What checking the row under this reading reported.
    diagnostics: Vec<Diagnostic>,
    /// The names taken at the row's level after it, under this reading.
    scope: Scope,
}

impl Reading {
    /// The row's output, when it checked without errors under this reading.
    fn checked(&self) -> Option<Shape> {
        let node = self.node.as_ref()?;
        (!self.diagnostics.iter().any(Diagnostic::is_error)).then_some(node.output)
    }

    /// Whether the row checked without errors and may give `declared`.
    fn agrees(&self, declared: Shape) -> bool {
        self.checked()
            .is_some_and(|output| output == declared || self.alternatives.contains(&declared))
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl<'a> Checker<'a> {
    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    fn register(&mut self, file: &'a ast::File) {
        let mut first: HashMap<&str, Span> = HashMap::new();
        for definition in &file.items {
            let name = definition.name.name.as_str();
            if builtin(name).is_some() {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::DuplicateDefinition,
                        definition.name.span,
                        format!("`{name}` is a built-in layer and cannot be redefined"),
                    )
                    .with_label("shadows the built-in layer")
                    .with_help(format!("rename this {}", kind_word(definition.kind))),
                );
                self.rejected.insert(definition.span);
                continue;
            }
            if let Some(previous) = first.get(name) {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::DuplicateDefinition,
                        definition.name.span,
                        format!("`{name}` is defined twice"),
                    )
                    .with_label("defined again here")
                    .with_secondary(*previous, "first defined here"),
                );
                self.rejected.insert(definition.span);
                continue;
            }
            first.insert(name, definition.name.span);
            if definition.kind == DefinitionKind::Block {
                self.blocks.insert(name, definition);
            }
            let mut params: HashMap<&str, Span> = HashMap::new();
            for param in &definition.params {
                if let Some(previous) = params.insert(&param.name.name, param.name.span) {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::DuplicateParameter,
                            param.name.span,
                            format!("parameter `{}` is declared twice", param.name.name),
                        )
                        .with_label("declared again here")
                        .with_secondary(previous, "first declared here"),
                    );
                }
            }
        }
    }

    fn spend_node(&mut self, span: Span) -> bool {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            if !self.budget_reported {
                self.budget_reported = true;
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::LimitExceeded,
                        span,
                        format!("the network expands to more than {MAX_NODES} layers"),
                    )
                    .with_label("limit reached while expanding this"),
                );
            }
            return false;
        }
        true
    }

    fn check_network(&mut self, definition: &'a Definition) -> Option<Network> {
        let mut env = Env::default();
        for param in &definition.params {
            let value = match &param.default {
                Some(default) => eval(default, &env, &mut self.diagnostics),
                None => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::MissingNetworkDefault,
                            param.name.span,
                            format!("network parameter `{}` has no default", param.name.name),
                        )
                        .with_label("needs a value")
                        .with_help(format!(
                            "give it the value the network is checked with: `{} = ...`",
                            param.name.name
                        )),
                    );
                    None
                }
            };
            env.bindings.push(Binding {
                name: &param.name.name,
                value,
            });
        }
        let (input_shape, body) = match definition.body.split_first() {
            Some((Statement::Input(shape), rest)) => (self.eval_shape(shape, &env), rest),
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::MisplacedInput,
                        definition.name.span,
                        format!(
                            "network `{}` does not start with an input statement",
                            definition.name.name
                        ),
                    )
                    .with_label("no `input` first in this network")
                    .with_help("declare the shape of one sample first, e.g. `input [3, 224, 224]`"),
                );
                (None, definition.body.as_slice())
            }
        };
        let (body, outputs) = self.check_body(
            body,
            &env,
            input_shape,
            "",
            BodyKind::Network,
            &mut Scope::new(),
        );
        let output = outputs.first().copied();
        let params = definition
            .params
            .iter()
            .zip(&env.bindings)
            .map(|(param, binding)| Some((param.name.name.clone(), binding.value?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Network {
            name: definition.name.name.clone(),
            params,
            input: input_shape?,
            blocks: Network::block_signatures(&body),
            body,
            output: output?,
            span: definition.span,
        })
    }

    fn eval_shape(&mut self, shape: &ast::ShapeExpr, env: &Env<'a>) -> Option<Shape> {
        let mut dims = Vec::new();
        for dim in &shape.dims {
            match eval(dim, env, &mut self.diagnostics)? {
                Value::Int(v) if (1..=MAX_DIM).contains(&v) => dims.push(v as u64),
                Value::Int(v) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::InvalidArgument,
                            dim.span,
                            format!("a shape's sizes must be between 1 and {MAX_DIM}, found {v}"),
                        )
                        .with_label("invalid size"),
                    );
                    return None;
                }
                other => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::ArgumentType,
                            dim.span,
                            format!(
                                "a shape's sizes must be integers, found {} `{other}`",
                                other.type_name()
                            ),
                        )
                        .with_label("expected an integer"),
                    );
                    return None;
                }
            }
        }
        match dims.as_slice() {
            [c, h, w] => Some(Shape::Map {
                c: *c,
                h: *h,
                w: *w,
            }),
            [features] => Some(Shape::Flat {
                features: *features,
            }),
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::ShapeRank,
                        shape.span,
                        format!(
                            "a shape is `[C, H, W]` or `[features]`, this one has {} sizes",
                            dims.len()
                        ),
                    )
                    .with_label(if dims.len() == 4 {
                        "the batch axis is implied and not written"
                    } else {
                        "a feature map is `[C, H, W]`, a flat vector `[features]`"
                    }),
                );
                None
            }
        }
    }

    fn check_body(
        &mut self,
        statements: &'a [Statement],
        env: &Env<'a>,
        input: Option<Shape>,
        prefix: &str,
        kind: BodyKind,
        scope: &mut Scope,
    ) -> (Vec<Node>, Vec<Shape>) {
        // The shapes the next row may read, most trusted first (see `check_row`).
        let mut current: Vec<Shape> = input.into_iter().collect();
        let mut named_outputs: Vec<(&str, Vec<Shape>)> = Vec::new();
        let mut nodes = Vec::new();
        for (index, statement) in statements.iter().enumerate() {
            let layer = match statement {
                Statement::Input(shape) => {
                    let message = match kind {
                        BodyKind::Network => "a network has one `input` statement, and it comes first",
                        BodyKind::Block => "a block takes its input from where it is used; it has no `input` statement",
                        BodyKind::Sequence => "statements in braces read the output of the statement before them; they have no `input` statement",
                    };
                    self.diagnostics.push(
                        Diagnostic::error(Code::MisplacedInput, shape.span, message)
                            .with_label("unexpected `input`"),
                    );
                    continue;
                }
                Statement::Layer(layer) => layer,
                Statement::For(for_loop) => {
                    let (node, outputs) = self.check_for(for_loop, env, &current, prefix, scope);
                    nodes.extend(node);
                    current = outputs;
                    continue;
                }
            };
            let (statement_input, role) = match &layer.side_from {
                None => (current.clone(), Role::Main),
                Some(source) => {
                    if kind != BodyKind::Network {
                        let message = match kind {
                            BodyKind::Sequence => {
                                "side outputs are statements of a network itself, not inside braces"
                            }
                            _ => "side outputs belong in a network, not in a block",
                        };
                        self.diagnostics.push(
                            Diagnostic::error(Code::InvalidSideOutput, layer.span, message)
                                .with_label("training-only outputs are model outputs"),
                        );
                        continue;
                    }
                    match named_outputs
                        .iter()
                        .rev()
                        .find(|(name, _)| *name == source.name)
                    {
                        Some((_, shapes)) => (
                            shapes.clone(),
                            Role::Side {
                                source: source.name.clone(),
                            },
                        ),
                        None => {
                            let names: Vec<&str> = named_outputs.iter().map(|(n, _)| *n).collect();
                            let mut diagnostic = Diagnostic::error(
                                Code::InvalidSideOutput,
                                source.span,
                                format!(
                                    "side output reads `{}`, which is not an earlier statement",
                                    source.name
                                ),
                            )
                            .with_label("unknown source");
                            if let Some(similar) = did_you_mean(&source.name, &names) {
                                diagnostic =
                                    diagnostic.with_help(format!("did you mean `{similar}`?"));
                            }
                            self.diagnostics.push(diagnostic);
                            (
                                Vec::new(),
                                Role::Side {
                                    source: source.name.clone(),
                                },
                            )
                        }
                    }
                }
            };
            let (node, outputs) =
                self.check_row(layer, env, &statement_input, prefix, scope, role.clone());
            self.hint_missing_equals(layer, statements.get(index + 1));
            if role == Role::Main {
                if let Some(name) = &layer.name {
                    named_outputs.push((&name.name, outputs.clone()));
                }
                current = outputs;
            }
            nodes.extend(node);
        }
        // The readings left after the last row: a block's output is the first, and a row that calls it may
        // agree with another (see `infer_statement`).
        (nodes, current)
    }

    /// Checks one row of a body against each shape its input may have.
    ///
    /// After a row whose declaration disagrees with what it computes, either may be wrong: a wrong declaration
    /// (the rows after it are right, computed from the real size), or a wrong computation upstream (a changed
    /// input size, a wrong stride: the declarations after it are right). So the next rows read both, the
    /// declared size first. A row is checked from each; the first reading under which it checks cleanly, and
    /// agrees with its own declaration if it has one, is taken, and its diagnostics are the row's. A row that
    /// checks cleanly under neither is reported as read from the declared size (as with one reading), and
    /// what it computes and declares become the next two readings. A row with a declaration that agrees
    /// settles the question: the rows after it read that size alone.
    fn check_row(
        &mut self,
        statement: &'a LayerStatement,
        env: &Env<'a>,
        inputs: &[Shape],
        prefix: &str,
        scope: &mut Scope,
        role: Role,
    ) -> (Option<Node>, Vec<Shape>) {
        if inputs.len() < 2 {
            let input = inputs.first().copied();
            return self.check_statement(statement, env, input, prefix, scope, role);
        }
        // Each reading is checked on its own copy of the names and diagnostics; only the one taken is kept.
        let mut readings = Vec::new();
        for &input in inputs {
            let mut own_scope = scope.clone();
            let outer = std::mem::take(&mut self.diagnostics);
            let budget_reported = self.budget_reported;
            let (node, alternatives) = self.infer_statement(
                statement,
                env,
                Some(input),
                prefix,
                &mut own_scope,
                role.clone(),
            );
            let diagnostics = std::mem::replace(&mut self.diagnostics, outer);
            self.budget_reported = budget_reported;
            readings.push(Reading {
                input,
                node,
                alternatives,
                diagnostics,
                scope: own_scope,
            });
        }
        let declared = self.eval_declared(statement, env);
        let taken = readings.iter().position(|reading| match declared {
            Some((_, declared)) => reading.agrees(declared),
            None => reading.checked().is_some(),
        });
        let outputs: Vec<Shape> = match (taken, declared) {
            (Some(_), Some((_, declared))) => vec![declared],
            // Without a declaration nothing settles the question: every reading that checks goes on.
            (Some(taken), None) => {
                let mut outputs = Vec::new();
                for reading in &readings[taken..] {
                    let Some(output) = reading.checked() else {
                        continue;
                    };
                    for shape in std::iter::once(output).chain(reading.alternatives.iter().copied())
                    {
                        if !outputs.contains(&shape) {
                            outputs.push(shape);
                        }
                    }
                }
                outputs
            }
            (None, _) => Vec::new(),
        };
        // Under no reading: the row is reported as read from the first (the declared size, as with one
        // reading), with what it gives from the others.
        let gives: Vec<String> = readings
            .iter()
            .filter_map(|r| {
                Some(format!(
                    "from {} it gives {}",
                    r.input,
                    r.node.as_ref()?.output
                ))
            })
            .collect();
        let reading = readings.swap_remove(taken.unwrap_or(0));
        self.diagnostics.extend(reading.diagnostics);
        *scope = reading.scope;
        if taken.is_some() {
            // Taken for what its block may give instead: the node does not have the size the rows after read.
            let node = reading
                .node
                .filter(|node| declared.map_or(true, |(_, declared)| node.output == declared))
                .map(|mut node| {
                    node.declared = statement.declared.as_ref().map(|shape| shape.dims.clone());
                    node
                });
            return (node, outputs);
        }
        let before = self.diagnostics.len();
        let settled =
            self.settle_declared(statement, reading.node, declared, &reading.alternatives);
        if let (Some(mismatch), true) = (self.diagnostics.get_mut(before), gives.len() > 1) {
            mismatch.notes.push(format!(
                "an earlier row declares another size than it computes, so this row was checked from both: \
                 {}; its declaration matches neither",
                gives.join(", ")
            ));
        }
        settled
    }

    /// `..block(args)` is a statement of its own, and spreads a block.
    fn check_spread(&mut self, statement: &LayerStatement) {
        for (index, op) in statement.chain.iter().enumerate() {
            let Op::Call(call) = op else { continue };
            if !call.spread {
                continue;
            }
            let spread_span = Span::new(call.span.start as usize, call.callee.span.start as usize);
            if builtin(&call.callee.name).is_some() {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Syntax,
                        spread_span,
                        format!(
                            "`..` puts a block's statements here; `{}` is a layer",
                            call.callee.name
                        ),
                    )
                    .with_label("not a block")
                    .with_help(format!("write `{}` without `..`", call.callee.name)),
                );
            } else if statement.name.is_some() || index > 0 || statement.chain.len() > 1 {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Syntax,
                        spread_span,
                        "`..block(...)` is a statement of its own",
                    )
                    .with_label("spread inside a chain or a named statement")
                    .with_note(
                        "it names the block's statements at this level, so it has no name of its own and no neighbours \
                         in a chain",
                    ),
                );
            }
        }
    }

    /// The statement's name with its `{e}` values filled in. A value that is not a non-negative integer is
    /// reported, and the name is then taken as written.
    fn statement_name(&mut self, statement: &LayerStatement, env: &Env<'a>) -> Option<String> {
        let ident = statement.name.as_ref()?;
        if statement.template.is_empty() {
            return Some(ident.name.clone());
        }
        let mut name = String::new();
        for part in &statement.template {
            match part {
                NamePart::Text(text) => name.push_str(text),
                NamePart::Value(expr) => match eval(expr, env, &mut self.diagnostics) {
                    Some(Value::Int(value)) if value >= 0 => name.push_str(&value.to_string()),
                    None => return Some(ident.name.clone()),
                    Some(other) => {
                        let (code, what) = match other {
                            Value::Int(value) => (Code::InvalidArgument, value.to_string()),
                            _ => (Code::ExpressionType, eval::a_type(other)),
                        };
                        self.diagnostics.push(
                            Diagnostic::error(
                                code,
                                expr.span,
                                format!("a value in a name is a non-negative integer, not {what}"),
                            )
                            .with_label(format!("this is {other}")),
                        );
                        return Some(ident.name.clone());
                    }
                },
            }
        }
        Some(name)
    }

    /// A loop bound: an integer.
    fn loop_bound(&mut self, expr: &Expr, env: &Env<'a>) -> Option<i64> {
        match eval(expr, env, &mut self.diagnostics)? {
            Value::Int(value) => Some(value),
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::ExpressionType,
                        expr.span,
                        format!("a loop bound is an integer, not {}", eval::a_type(other)),
                    )
                    .with_label(format!("this is {other}")),
                );
                None
            }
        }
    }

    /// Checks a `for` loop: its body once per value of the loop variable, at the enclosing level of names
    /// (`scope`), each iteration reading what the one before gave.
    fn check_for(
        &mut self,
        for_loop: &'a ForLoop,
        env: &Env<'a>,
        inputs: &[Shape],
        prefix: &str,
        scope: &mut Scope,
    ) -> (Option<Node>, Vec<Shape>) {
        let var = &for_loop.var.name;
        if env.bindings.iter().any(|b| b.name == var.as_str()) {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::DuplicateParameter,
                    for_loop.var.span,
                    format!("the loop variable `{var}` hides a parameter of the same name"),
                )
                .with_label("already a parameter")
                .with_help("give the loop variable another name"),
            );
            return (None, Vec::new());
        }
        let start = self.loop_bound(&for_loop.start, env);
        let end = self.loop_bound(&for_loop.end, env);
        let (Some(start), Some(end)) = (start, end) else {
            return (None, Vec::new());
        };
        let range_op = if for_loop.inclusive { "..=" } else { ".." };
        let stop = if for_loop.inclusive {
            end.checked_add(1)
        } else {
            Some(end)
        };
        let count = stop.and_then(|stop| stop.checked_sub(start));
        let count = match count {
            Some(count) if count >= 0 => count,
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidArgument,
                        for_loop.start.span.to(for_loop.end.span),
                        format!("the range {start}{range_op}{end} ends before it starts"),
                    )
                    .with_label("a backwards range")
                    .with_note("a loop counts up from its start; an empty range is `n..n`"),
                );
                return (None, Vec::new());
            }
        };
        if count > MAX_NODES as i64 {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::LimitExceeded,
                    for_loop.start.span.to(for_loop.end.span),
                    format!("the loop runs {count} times, more than the {MAX_NODES} layers a network may have"),
                )
                .with_label("too many iterations"),
            );
            return (None, Vec::new());
        }
        let input = inputs.first().copied();
        let mut current: Vec<Shape> = inputs.to_vec();
        let mut nodes = Vec::new();
        let mut per_iteration = 0;
        let errors = self.error_count();
        for value in start..start + count {
            let mut inner = Env {
                bindings: env.bindings.clone(),
            };
            inner.bindings.push(Binding {
                name: var,
                value: Some(Value::Int(value)),
            });
            let (iteration, outputs) = self.check_body(
                &for_loop.body,
                &inner,
                current.first().copied(),
                prefix,
                BodyKind::Sequence,
                scope,
            );
            // One failing iteration is enough: the others would repeat its errors.
            if self.error_count() > errors || self.budget_reported {
                return (None, Vec::new());
            }
            per_iteration = iteration.len();
            nodes.extend(iteration);
            current = outputs;
        }
        let (Some(input), Some(output)) = (input, current.first().copied()) else {
            return (None, current);
        };
        let bound = |name: &str, expr: &Expr| Arg {
            name: name.to_string(),
            expr: Some(expr.clone()),
        };
        let node = Node {
            name: None,
            path: prefix.to_string(),
            kind: NodeKind::Repeat(crate::ir::Repeat {
                var: var.clone(),
                inclusive: for_loop.inclusive,
                nodes,
                per_iteration,
            }),
            input,
            output,
            role: Role::Main,
            span: for_loop.span,
            args: vec![bound("start", &for_loop.start), bound("end", &for_loop.end)],
            declared: None,
            template: Vec::new(),
        };
        (Some(node), current)
    }

    /// Checks one statement; returns its node (if it checked) and the shapes the next statement may read: its
    /// output; or, when it disagrees with its declaration, the declared shape and then the computed one; or,
    /// when it failed, its declared shape if it has one.
    fn check_statement(
        &mut self,
        statement: &'a LayerStatement,
        env: &Env<'a>,
        input: Option<Shape>,
        prefix: &str,
        scope: &mut Scope,
        role: Role,
    ) -> (Option<Node>, Vec<Shape>) {
        let (node, alternatives) = self.infer_statement(statement, env, input, prefix, scope, role);
        let declared = self.eval_declared(statement, env);
        self.settle_declared(statement, node, declared, &alternatives)
    }

    /// The statement's declared shape, evaluated (`None` without one, or when it does not evaluate).
    fn eval_declared(
        &mut self,
        statement: &'a LayerStatement,
        env: &Env<'a>,
    ) -> Option<(&'a ast::ShapeExpr, Shape)> {
        let shape = statement.declared.as_ref()?;
        Some((shape, self.eval_shape(shape, env)?))
    }

    /// Compares a checked statement with its declaration, reporting a mismatch; returns what
    /// [`Checker::check_statement`] returns. `alternatives` are other sizes the statement may give (see
    /// [`Checker::infer_statement`]): a declaration that agrees with one of them is no mismatch.
    fn settle_declared(
        &mut self,
        statement: &LayerStatement,
        node: Option<Node>,
        declared: Option<(&ast::ShapeExpr, Shape)>,
        alternatives: &[Shape],
    ) -> (Option<Node>, Vec<Shape>) {
        match (node, declared) {
            // The block's body reported its own wrong declaration; what it computes agrees with this row.
            (Some(node), Some((_, declared)))
                if node.output != declared && alternatives.contains(&declared) =>
            {
                (None, vec![declared])
            }
            (Some(node), Some((shape_expr, declared))) if node.output != declared => {
                self.report_declared_mismatch(statement, &node, shape_expr.span, declared);
                (None, vec![declared, node.output])
            }
            (Some(mut node), Some(_)) => {
                node.declared = statement.declared.as_ref().map(|shape| shape.dims.clone());
                let output = node.output;
                (Some(node), vec![output])
            }
            (Some(mut node), None) => {
                node.declared = statement.declared.as_ref().map(|shape| shape.dims.clone());
                let mut outputs = vec![node.output];
                for &shape in alternatives {
                    if !outputs.contains(&shape) {
                        outputs.push(shape);
                    }
                }
                (Some(node), outputs)
            }
            (None, declared) => (None, declared.map(|(_, shape)| shape).into_iter().collect()),
        }
    }

    /// Infers one statement's node from `input`, without looking at its declared shape. Also returns the other
    /// sizes the statement may give: when it ends in a block whose body ended with more than one reading
    /// (a row in it disagreed with its declaration, and was reported there), the node has the first, and these
    /// are the rest.
    fn infer_statement(
        &mut self,
        statement: &'a LayerStatement,
        env: &Env<'a>,
        input: Option<Shape>,
        prefix: &str,
        scope: &mut Scope,
        role: Role,
    ) -> (Option<Node>, Vec<Shape>) {
        self.check_spread(statement);
        let resolved = self.statement_name(statement, env);
        let name = resolved.as_deref();
        if let (Some(ident), Some(resolved)) = (&statement.name, name) {
            if let Some(previous) = scope.insert(resolved.to_string(), ident.span) {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::DuplicateName,
                        ident.span,
                        format!("the name `{resolved}` is already used at this level"),
                    )
                    .with_label("used again here")
                    .with_secondary(previous, "first used here")
                    .with_note("names become field and weight names, so they must be unique"),
                );
            }
        }
        let path = name.map_or_else(|| prefix.to_string(), |n| join(prefix, n));
        let node = if let [op] = statement.chain.as_slice() {
            self.check_op(op, env, input, &path, name, scope)
        } else {
            let mut children = Vec::new();
            let mut current = input;
            let mut failed = false;
            for (index, op) in statement.chain.iter().enumerate() {
                let index = index.to_string();
                let mut own_scope = Scope::new();
                match self.check_op(
                    op,
                    env,
                    current,
                    &join(&path, &index),
                    Some(&index),
                    &mut own_scope,
                ) {
                    Some(child) => {
                        current = Some(child.output);
                        children.push(child);
                    }
                    None => {
                        current = None;
                        failed = true;
                    }
                }
            }
            match (failed, input, current) {
                (false, Some(input), Some(output)) => Some(Node {
                    name: name.map(str::to_string),
                    path: path.clone(),
                    kind: NodeKind::Chain(children),
                    input,
                    output,
                    role: Role::Main,
                    span: statement.span,
                    args: Vec::new(),
                    declared: None,
                    template: Vec::new(),
                }),
                _ => None,
            }
        };
        let node = node.map(|mut node| {
            node.role = role;
            node.template = statement.template.clone();
            node
        });
        if let Some(node) = &node {
            // Weights need a name of their own: a layer's or a chain's from the statement. A block's, a
            // sequence's and a group's statements name their own (an unnamed block call or sequence puts them
            // at this level).
            let spread = matches!(statement.chain.as_slice(), [Op::Call(call)] if call.spread);
            let unnamed = match node.kind {
                // `..conv2d(...)` was reported as a spread of a layer.
                NodeKind::Layer(_) => !spread,
                NodeKind::Chain(_) => statement.chain.len() > 1,
                NodeKind::Block { .. } => !spread,
                NodeKind::Concat(_) | NodeKind::Add(_) | NodeKind::Mul(_) | NodeKind::Repeat(_) => {
                    false
                }
            };
            if statement.name.is_none() && unnamed && has_weights(node) {
                let mut diagnostic = Diagnostic::error(
                    Code::UnnamedWeights,
                    statement.span,
                    "this statement has weights but no name",
                )
                .with_label("unnamed")
                .with_note(
                    "a statement's name becomes its field and weight name in the generated model",
                )
                .with_help(format!("name it: `{}`", name_it(statement, node, scope)));
                if let (NodeKind::Block { block, .. }, [Op::Call(_)]) =
                    (&node.kind, statement.chain.as_slice())
                {
                    diagnostic = diagnostic.with_note(format!(
                        "to name the layers of `{block}` at this level instead (`conv1`, not `{block}.conv1`), \
                         write `..{block}(...)`"
                    ));
                }
                self.diagnostics.push(diagnostic);
            }
        }
        let alternatives = match (statement.chain.last(), self.block_readings.take()) {
            (Some(Op::Call(call)), Some((span, others))) if span == call.span => others,
            _ => Vec::new(),
        };
        (node, alternatives)
    }

    fn check_op(
        &mut self,
        op: &'a Op,
        env: &Env<'a>,
        input: Option<Shape>,
        path: &str,
        name: Option<&str>,
        scope: &mut Scope,
    ) -> Option<Node> {
        if !self.spend_node(op.span()) {
            return None;
        }
        match op {
            Op::Call(call) => self.check_call(call, env, input, path, name),
            Op::Sequence(sequence) => self.check_sequence(sequence, env, input, path, name, scope),
            Op::Group(group) => {
                let mut own_scope = Scope::new();
                // An unnamed group is transparent: its branches are named at the enclosing level.
                let branch_scope = if name.is_some() {
                    &mut own_scope
                } else {
                    scope
                };
                let mut branches = Vec::new();
                let mut failed = false;
                for branch in &group.branches {
                    let (node, _) =
                        self.check_statement(branch, env, input, path, branch_scope, Role::Main);
                    match node {
                        Some(node) => branches.push(node),
                        None => failed = true,
                    }
                }
                if failed || branches.is_empty() {
                    if group.branches.is_empty() {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::InvalidArgument,
                                group.span,
                                format!("`{}` needs at least one branch", group.kind.keyword()),
                            )
                            .with_label("empty"),
                        );
                    }
                    return None;
                }
                let output = self.combine(group, input?, &branches)?;
                let kind = match group.kind {
                    GroupKind::Concat => NodeKind::Concat(branches),
                    GroupKind::Add => NodeKind::Add(branches),
                    GroupKind::Mul => NodeKind::Mul(branches),
                };
                Some(Node {
                    name: name.map(str::to_string),
                    path: path.to_string(),
                    kind,
                    input: input?,
                    output,
                    role: Role::Main,
                    span: group.span,
                    args: Vec::new(),
                    declared: None,
                    template: Vec::new(),
                })
            }
        }
    }

    /// A sequence `{ ... }`: its statements in order; unnamed, they are named at the enclosing level (`scope`).
    /// Out of line so that the frames of deeply nested groups stay small.
    fn check_sequence(
        &mut self,
        sequence: &'a ast::Sequence,
        env: &Env<'a>,
        input: Option<Shape>,
        path: &str,
        name: Option<&str>,
        scope: &mut Scope,
    ) -> Option<Node> {
        if sequence.body.is_empty() {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::InvalidArgument,
                    sequence.span,
                    "`{ }` needs at least one statement",
                )
                .with_label("empty"),
            );
            return None;
        }
        let mut own_scope = Scope::new();
        // Unnamed, its statements are named at the enclosing level.
        let sequence_scope = if name.is_some() {
            &mut own_scope
        } else {
            scope
        };
        let errors = self.error_count();
        let (children, outputs) = self.check_body(
            &sequence.body,
            env,
            input,
            path,
            BodyKind::Sequence,
            sequence_scope,
        );
        if self.error_count() > errors {
            return None;
        }
        Some(Node {
            name: name.map(str::to_string),
            path: path.to_string(),
            kind: NodeKind::Chain(children),
            input: input?,
            output: outputs.first().copied()?,
            role: Role::Main,
            span: sequence.span,
            args: Vec::new(),
            declared: None,
            template: Vec::new(),
        })
    }

    /// A call of a built-in layer. Out of line, so that a block instance's frame stays small (blocks nest).
    fn check_layer_call(
        &mut self,
        call: &'a Call,
        builtin: &'static crate::layers::Builtin,
        env: &Env<'a>,
        input: Option<Shape>,
        path: &str,
        name: Option<&str>,
    ) -> Option<Node> {
        let names: Vec<&str> = builtin.params.iter().map(|p| p.name).collect();
        let bound = self.bind(call, &names, env)?;
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for (param, given) in builtin.params.iter().zip(&bound) {
            let arg = match (given, param.default) {
                (Some(arg), _) => *arg,
                (None, ArgDefault::Value(value)) => BoundArg {
                    value: Some(value),
                    span: call.span,
                    given: false,
                    source: None,
                },
                (None, ArgDefault::Kernel) => BoundArg {
                    value: None,
                    span: call.span,
                    given: false,
                    source: None,
                },
                (None, ArgDefault::Required) => {
                    missing.push(param.name);
                    continue;
                }
            };
            values.push((param.name, arg));
        }
        if !missing.is_empty() {
            self.report_missing(call, &missing, &builtin.signature());
            return None;
        }
        let mut args = Args {
            layer: builtin.name,
            call_span: call.span,
            values,
            diagnostics: &mut self.diagnostics,
            failed: false,
        };
        // Arguments are validated even when the input is unknown after an earlier error.
        let layer = (builtin.resolve)(&mut args)?;
        let (layer, output) = layer.infer(&mut args, input?)?;
        Some(Node {
            name: name.map(str::to_string),
            path: path.to_string(),
            kind: NodeKind::Layer(layer),
            input: input?,
            output,
            role: Role::Main,
            span: call.span,
            args: bound_args(call, &names, &bound),
            declared: None,
            template: Vec::new(),
        })
    }

    fn check_call(
        &mut self,
        call: &'a Call,
        env: &Env<'a>,
        input: Option<Shape>,
        path: &str,
        name: Option<&str>,
    ) -> Option<Node> {
        let callee = call.callee.name.as_str();
        if let Some(builtin) = builtin(callee) {
            return self.check_layer_call(call, builtin, env, input, path, name);
        }
        let Some(&definition) = self.blocks.get(callee) else {
            let mut candidates: Vec<&str> = builtin_layers().collect();
            candidates.extend(self.blocks.keys().copied());
            candidates.sort_unstable();
            let mut diagnostic = Diagnostic::error(
                Code::UnknownCallee,
                call.callee.span,
                format!("unknown layer or block `{callee}`"),
            )
            .with_label("not a built-in layer or a block in this file");
            let similar = did_you_mean(callee, &candidates);
            match foreign_layer(callee) {
                Some(Foreign::Renamed { ours, theirs }) => {
                    diagnostic = diagnostic.with_help(format!("did you mean `{ours}`? ({theirs})"));
                }
                // A well-known layer of another framework is not a typo of the nearest built-in.
                Some(Foreign::Missing(missing)) => {
                    diagnostic = diagnostic
                        .with_label("not built into archc")
                        .with_note(format!(
                            "`{callee}` is {}: {}",
                            missing.theirs, missing.what
                        ));
                    if let Some(similar) = similar {
                        diagnostic = diagnostic.with_note(format!(
                            "`{similar}` is a different function, not another spelling of `{callee}`"
                        ));
                    }
                    diagnostic = diagnostic.with_help(match missing.instead {
                        Some(instead) => instead.to_string(),
                        None => format!("archc has no `{callee}` layer yet"),
                    });
                }
                None => {
                    if let Some(similar) = similar {
                        diagnostic = diagnostic.with_help(format!("did you mean `{similar}`?"));
                    }
                }
            }
            self.diagnostics.push(diagnostic);
            return None;
        };
        if let Some(position) = self.stack.iter().position(|(block, _)| *block == callee) {
            let cycle: Vec<&str> = self.stack[position..]
                .iter()
                .map(|(b, _)| *b)
                .chain([callee])
                .collect();
            self.diagnostics.push(
                Diagnostic::error(
                    Code::RecursiveBlock,
                    call.span,
                    match cycle.as_slice() {
                        [_, _] => format!("block `{callee}` uses itself"),
                        [_, through @ .., _] => format!(
                            "block `{callee}` uses itself through {}",
                            through
                                .iter()
                                .map(|b| format!("`{b}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => format!("block `{callee}` uses itself"),
                    },
                )
                .with_label("recursive use")
                .with_secondary(definition.name.span, "defined here")
                .with_note(format!("cycle: {}", cycle.join(" → ")))
                .with_note("a block expands in place, so a cycle would never end"),
            );
            return None;
        }
        if self.stack.len() >= MAX_BLOCK_DEPTH {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::LimitExceeded,
                    call.span,
                    format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                )
                .with_label("nesting limit reached here"),
            );
            return None;
        }
        let names: Vec<&str> = definition
            .params
            .iter()
            .map(|p| p.name.name.as_str())
            .collect();
        let bound = self.bind(call, &names, env)?;
        let call_args = bound_args(call, &names, &bound);
        // The body, and the parameters' defaults, may read the input's channel count as `in_channels` (a
        // parameter of that name takes precedence).
        let mut callee_env = Env::default();
        callee_env.bindings.push(Binding {
            name: "in_channels",
            value: input.map(|shape| Value::Int(shape.channels() as i64)),
        });
        let mut missing = Vec::new();
        for (param, given) in definition.params.iter().zip(bound) {
            let value = match (given, &param.default) {
                (Some(arg), _) => arg.value,
                (None, Some(default)) => eval(default, &callee_env, &mut self.diagnostics),
                (None, None) => {
                    missing.push(param.name.name.as_str());
                    None
                }
            };
            callee_env.bindings.push(Binding {
                name: &param.name.name,
                value,
            });
        }
        if !missing.is_empty() {
            self.report_missing(call, &missing, &block_signature(definition));
            return None;
        }
        let before = self.diagnostics.len();
        self.stack.push((callee, call.span));
        let (body, mut readings) = self.check_body(
            &definition.body,
            &callee_env,
            input,
            path,
            BodyKind::Block,
            &mut Scope::new(),
        );
        self.stack.pop();
        let output = readings.first().copied();
        let instance = name.map_or_else(|| format!("`{callee}`"), |n| format!("`{n}`"));
        for diagnostic in &mut self.diagnostics[before..] {
            if diagnostic.primary.span.start >= definition.span.start
                && diagnostic.primary.span.end <= definition.span.end
            {
                diagnostic.secondary.push(crate::diagnostic::Label {
                    span: call.span,
                    message: format!("in this instance: {instance}"),
                });
                // A block sees only its own parameters: a name the caller has was meant to be passed down.
                if diagnostic.code == Code::UnknownName {
                    let unknown = name_at(definition, diagnostic.primary.span);
                    if let Some(unknown) =
                        unknown.filter(|n| env.bindings.iter().any(|b| b.name == *n))
                    {
                        diagnostic.help = Some(format!(
                            "`{unknown}` belongs to the caller; a block sees only its own parameters: declare \
                             `block {callee}(..., {unknown})` and pass it in this call"
                        ));
                    }
                }
            }
        }
        if definition.body.is_empty() {
            // An empty block is the identity.
            return Some(Node {
                name: name.map(str::to_string),
                path: path.to_string(),
                kind: NodeKind::Block {
                    block: callee.to_string(),
                    args: Vec::new(),
                    body,
                },
                input: input?,
                output: input?,
                role: Role::Main,
                span: call.span,
                args: call_args,
                declared: None,
                template: Vec::new(),
            });
        }
        let args = definition
            .params
            .iter()
            .zip(&callee_env.bindings[1..]) // after `in_channels`
            .map(|(param, binding)| Some((param.name.name.clone(), binding.value?)))
            .collect::<Option<Vec<_>>>()?;
        let node = Node {
            name: name.map(str::to_string),
            path: path.to_string(),
            kind: NodeKind::Block {
                block: callee.to_string(),
                args,
                body,
            },
            input: input?,
            output: output?,
            role: Role::Main,
            span: call.span,
            args: call_args,
            declared: None,
            template: Vec::new(),
        };
        if readings.len() > 1 {
            self.block_readings = Some((call.span, readings.split_off(1)));
        }
        Some(node)
    }

    /// Matches a call's arguments to parameter names. Returns, per parameter, the given argument; `None` when
    /// the arguments themselves are malformed (already reported).
    fn bind(
        &mut self,
        call: &Call,
        params: &[&str],
        env: &Env<'a>,
    ) -> Option<Vec<Option<BoundArg>>> {
        let callee = call.callee.name.as_str();
        let mut bound: Vec<Option<BoundArg>> = vec![None; params.len()];
        let mut ok = true;
        let mut positional = 0;
        let mut seen_keyword = false;
        for (position, arg) in call.args.iter().enumerate() {
            let value = eval(&arg.value, env, &mut self.diagnostics);
            let index = match &arg.name {
                None => {
                    if seen_keyword {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::Syntax,
                                arg.span,
                                "positional argument after a keyword argument",
                            )
                            .with_label("move this before the keyword arguments"),
                        );
                        ok = false;
                        continue;
                    }
                    positional += 1;
                    if positional > params.len() {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::TooManyArguments,
                                arg.span,
                                format!(
                                    "`{callee}` takes {} argument{}, but {} were given",
                                    params.len(),
                                    if params.len() == 1 { "" } else { "s" },
                                    call.args.iter().filter(|a| a.name.is_none()).count()
                                ),
                            )
                            .with_label("unexpected argument")
                            .with_note(format!("parameters: {}", params.join(", "))),
                        );
                        ok = false;
                        continue;
                    }
                    positional - 1
                }
                Some(keyword) => {
                    seen_keyword = true;
                    match params.iter().position(|p| *p == keyword.name) {
                        Some(index) => index,
                        None => {
                            let mut diagnostic = Diagnostic::error(
                                Code::UnknownArgument,
                                keyword.span,
                                format!("`{callee}` has no parameter `{}`", keyword.name),
                            )
                            .with_label("unknown keyword");
                            diagnostic = match pytorch_keyword(&keyword.name, params) {
                                Some(PytorchKeyword::Renamed(ours)) => diagnostic
                                    .with_label(format!("PyTorch's name for `{ours}`"))
                                    .with_help(format!("write `{ours} = ...`")),
                                Some(PytorchKeyword::Inferred) => diagnostic
                                    .with_label("inferred from the input")
                                    .with_help(format!(
                                        "remove it: `{}` follows from the input shape",
                                        keyword.name
                                    )),
                                None => match did_you_mean(&keyword.name, params) {
                                    Some(similar) => {
                                        diagnostic.with_help(format!("did you mean `{similar}`?"))
                                    }
                                    None => diagnostic,
                                },
                            };
                            diagnostic =
                                diagnostic.with_note(format!("parameters: {}", params.join(", ")));
                            self.diagnostics.push(diagnostic);
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            if let Some(previous) = bound[index] {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::DuplicateArgument,
                        arg.span,
                        format!("`{}` of `{callee}` is given twice", params[index]),
                    )
                    .with_label("given again here")
                    .with_secondary(previous.span, "first given here"),
                );
                ok = false;
                continue;
            }
            bound[index] = Some(BoundArg {
                value,
                span: arg.value.span,
                given: true,
                source: Some(position),
            });
        }
        ok.then_some(bound)
    }

    fn combine(&mut self, group: &ast::Group, input: Shape, branches: &[Node]) -> Option<Shape> {
        let keyword = group.kind.keyword();
        if group.kind == GroupKind::Mul {
            let outputs: Vec<Shape> = branches.iter().map(|b| b.output).collect();
            if let Some(shape) = broadcast(&outputs) {
                return Some(shape);
            }
        }
        if group.kind == GroupKind::Concat {
            let flat = branches
                .iter()
                .filter(|b| matches!(b.output, Shape::Flat { .. }))
                .count();
            if flat != 0 && flat != branches.len() {
                self.report_concat_rank_mix(group, branches);
                return None;
            }
        }
        // The size most branches agree on is taken as intended; the others are the suspects.
        let key = |shape: Shape| match (group.kind, shape) {
            (GroupKind::Concat, Shape::Map { h, w, .. }) => vec![h, w],
            (GroupKind::Concat, Shape::Flat { .. }) => vec![],
            (GroupKind::Add | GroupKind::Mul, shape) => shape.dims(),
        };
        let mut counts: Vec<(Vec<u64>, usize)> = Vec::new();
        for branch in branches {
            let k = key(branch.output);
            match counts.iter_mut().find(|(existing, _)| *existing == k) {
                Some((_, count)) => *count += 1,
                None => counts.push((k, 1)),
            }
        }
        if counts.len() == 1 {
            let first = branches[0].output;
            return Some(match (group.kind, first) {
                (GroupKind::Add | GroupKind::Mul, shape) => shape,
                (GroupKind::Concat, Shape::Map { h, w, .. }) => Shape::Map {
                    c: self.sum_channels(group, branches)?,
                    h,
                    w,
                },
                (GroupKind::Concat, Shape::Flat { .. }) => Shape::Flat {
                    features: self.sum_channels(group, branches)?,
                },
            });
        }
        let top = counts.iter().map(|(_, count)| *count).max().unwrap_or(0);
        let leaders: Vec<&Vec<u64>> = counts
            .iter()
            .filter(|(_, count)| *count == top)
            .map(|(k, _)| k)
            .collect();
        // With no majority, a concat most likely meant to keep its input's size (as Inception modules do); an add
        // gives no such clue (a residual's shortcut and main path are equally suspect).
        let majority = match leaders.as_slice() {
            [only] => (*only).clone(),
            _ if group.kind == GroupKind::Concat && leaders.contains(&&key(input)) => key(input),
            _ => {
                self.report_disagreement(group, input, branches);
                return None;
            }
        };
        let describe = |node: &Node| node.name.clone().unwrap_or_else(|| "branch".to_string());
        let listing = branches
            .iter()
            .map(|b| format!("{} {}", describe(b), b.output))
            .collect::<Vec<_>>()
            .join(", ");
        let code = match group.kind {
            GroupKind::Concat => Code::ConcatSpatialMismatch,
            GroupKind::Add | GroupKind::Mul => Code::AddShapeMismatch,
        };
        let expected = branches
            .iter()
            .find(|b| key(b.output) == majority)
            .map(|b| b.output);
        let others = if top == 1 {
            "the other branch"
        } else {
            "the other branches"
        };
        for (branch, statement) in branches
            .iter()
            .zip(&group.branches)
            .filter(|(b, _)| key(b.output) != majority)
        {
            let what = match group.kind {
                GroupKind::Concat => "spatial size",
                GroupKind::Add | GroupKind::Mul => "shape",
            };
            let mut diagnostic = Diagnostic::error(
                code,
                statement.span,
                format!(
                    "{keyword} branch `{}` has {what} {}, {others} {}",
                    describe(branch),
                    spatial_text(branch.output, group.kind),
                    expected.map_or_else(|| "differ".to_string(), |e| spatial_text(e, group.kind)),
                ),
            )
            .with_label(format!("produces {}", branch.output))
            .with_note(format!("branch outputs: {listing}"));
            if let Some(culprit) = spatial_culprit(branch) {
                diagnostic.primary.span = culprit.span;
                diagnostic.primary.message =
                    format!("`{}` produces {}", culprit.path, culprit.output);
                diagnostic = diagnostic.with_secondary(statement.span, "in this branch");
                if let (NodeKind::Layer(layer), Some(expected)) = (&culprit.kind, expected) {
                    if let Some(arithmetic) = layer.formula(culprit.input, culprit.output) {
                        diagnostic =
                            diagnostic.with_note(format!("{}: {arithmetic}", culprit.path));
                    }
                    if let Some(help) = layer.keep_size_hint(culprit.input, expected) {
                        diagnostic = diagnostic.with_help(help);
                    }
                }
            }
            self.diagnostics.push(diagnostic);
        }
        // Recover with the majority's size, so the statements after this one are still checked.
        match (group.kind, expected?) {
            (GroupKind::Concat, Shape::Map { h, w, .. }) => Some(Shape::Map {
                c: self.sum_channels(group, branches)?,
                h,
                w,
            }),
            (GroupKind::Concat, Shape::Flat { .. }) => None,
            (GroupKind::Add | GroupKind::Mul, shape) => Some(shape),
        }
    }

    fn sum_channels(&mut self, group: &ast::Group, branches: &[Node]) -> Option<u64> {
        branches
            .iter()
            .try_fold(0u64, |total, b| total.checked_add(b.output.channels()))
            .or_else(|| {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Overflow,
                        group.span,
                        "concatenated channel count overflows",
                    )
                    .with_label("too many channels"),
                );
                None
            })
    }

    fn check_unused_params(&mut self, definition: &Definition) {
        let mut used = Names::default();
        used.visit_definition(definition);
        let used = used.0;
        let params: Vec<&str> = definition
            .params
            .iter()
            .map(|p| p.name.name.as_str())
            .collect();
        // A parameter whose name was misspelt where it is used is reported there (E0120, with this name as the
        // suggestion); calling it unused as well would point the reader the wrong way.
        let misspelt: HashSet<&str> = used
            .iter()
            .filter(|name| !params.contains(name))
            .filter_map(|name| did_you_mean(name, &params))
            .collect();
        // A parameter that a block used here reads without declaring it (E0120 there, with a hint to pass it)
        // was meant to be used, only not passed down.
        let callees = Callees::in_body(&definition.body);
        let mut read_by_callees = HashSet::new();
        for block in callees.iter().filter_map(|callee| self.blocks.get(callee)) {
            let mut read = Names::in_body(&block.body);
            read.retain(|name| !block.params.iter().any(|p| p.name.name == *name));
            read_by_callees.extend(read);
        }
        for param in &definition.params {
            let name = param.name.name.as_str();
            if !used.contains(name) && !misspelt.contains(name) && !read_by_callees.contains(name) {
                self.diagnostics.push(
                    Diagnostic::warning(
                        Code::UnusedParameter,
                        param.name.span,
                        format!("parameter `{}` is never used", param.name.name),
                    )
                    .with_label("unused")
                    .with_help("remove it, or use it in the body"),
                );
            }
        }
    }

    /// Blocks that no network reaches are never instantiated, so they are checked on their own, without an
    /// input shape: what needs no shape (callees, arguments, names, nested uses, recursion) is still verified.
    /// In a file with networks they are also reported unused; a file of blocks alone is a library.
    fn check_unreached_blocks(&mut self, file: &'a ast::File) {
        let networks: Vec<&Definition> = file
            .items
            .iter()
            .filter(|d| d.kind == DefinitionKind::Network && !self.rejected.contains(&d.span))
            .collect();
        let is_library = !file.items.iter().any(|d| d.kind == DefinitionKind::Network);
        let mut reached: HashSet<&str> = HashSet::new();
        let mut pending: Vec<&Definition> = networks;
        while let Some(definition) = pending.pop() {
            for callee in Callees::in_body(&definition.body) {
                if let Some(&block) = self.blocks.get(callee) {
                    if reached.insert(&block.name.name) {
                        pending.push(block);
                    }
                }
            }
        }
        for definition in &file.items {
            let registered = self.blocks.get(definition.name.name.as_str()) == Some(&definition);
            if definition.kind != DefinitionKind::Block
                || !registered
                || reached.contains(definition.name.name.as_str())
            {
                continue;
            }
            if !is_library {
                self.diagnostics.push(
                    Diagnostic::warning(
                        Code::UnusedBlock,
                        definition.name.span,
                        format!("block `{}` is never used", definition.name.name),
                    )
                    .with_label("unused")
                    .with_note(
                        "with no input shape, an unused block is checked only for what needs none: names, \
                         arguments and the blocks it uses",
                    ),
                );
            }
            self.check_block_alone(definition);
        }
    }

    /// Checks a block's body with its parameters at their defaults (unknown where there is none) and no input.
    fn check_block_alone(&mut self, definition: &'a Definition) {
        let mut env = Env::default();
        env.bindings.push(Binding {
            name: "in_channels",
            value: None,
        });
        for param in &definition.params {
            let value = param
                .default
                .as_ref()
                .and_then(|default| eval(default, &env, &mut self.diagnostics));
            env.bindings.push(Binding {
                name: &param.name.name,
                value,
            });
        }
        self.stack
            .push((&definition.name.name, definition.name.span));
        let _ = self.check_body(
            &definition.body,
            &env,
            None,
            &definition.name.name,
            BodyKind::Block,
            &mut Scope::new(),
        );
        self.stack.pop();
    }
}

/// The unnamed `statement` written with a name: `conv = conv2d(...) -> relu`, `downsample = downsample(...)`.
/// The name comes from the first part that has weights, and is one not yet taken in `scope`.
fn name_it(statement: &LayerStatement, node: &Node, scope: &Scope) -> String {
    let parts: Vec<&Node> = match &node.kind {
        NodeKind::Chain(children) => children.iter().collect(),
        _ => vec![node],
    };
    let stem = parts
        .iter()
        .find(|part| has_weights(part))
        .map_or("layer", |part| match &part.kind {
            // torchvision's names for its layers.
            NodeKind::Layer(layer) => match layer.kind_name() {
                "conv2d" => "conv",
                "linear" => "fc",
                "batch_norm" => "bn",
                other => other,
            },
            NodeKind::Block { block, .. } => block,
            NodeKind::Chain(_)
            | NodeKind::Concat(_)
            | NodeKind::Add(_)
            | NodeKind::Mul(_)
            | NodeKind::Repeat(_) => "layer",
        });
    let name = std::iter::once(stem.to_string())
        .chain((2..).map(|n| format!("{stem}{n}")))
        .find(|name| !scope.contains_key(name))
        .unwrap_or_else(|| stem.to_string());
    let mut ops: Vec<String> = statement
        .chain
        .iter()
        .take(3)
        .map(|op| match op {
            Op::Call(call) if call.args.is_empty() => call.callee.name.clone(),
            Op::Call(call) => format!("{}(...)", call.callee.name),
            Op::Group(group) => format!("{} {{ ... }}", group.kind.keyword()),
            Op::Sequence(_) => "{ ... }".to_string(),
        })
        .collect();
    if statement.chain.len() > 3 {
        ops.push("...".to_string());
    }
    format!("{name} = {}", ops.join(" -> "))
}

fn kind_word(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Block => "block",
        DefinitionKind::Network => "network",
    }
}

fn block_signature(definition: &Definition) -> String {
    let params: Vec<&str> = definition
        .params
        .iter()
        .map(|p| p.name.name.as_str())
        .collect();
    format!("block {}({})", definition.name.name, params.join(", "))
}

fn has_weights(node: &Node) -> bool {
    let mut found = false;
    node.walk(&mut |n: &Node| {
        if let NodeKind::Layer(layer) = &n.kind {
            found |= layer.has_weights();
        }
    });
    found
}

/// The shape of the element-wise product of branches with these outputs, when each has it or is a `[C, 1, 1]`
/// map of its channels (broadcast over the map, as squeeze-and-excitation's scale is).
fn broadcast(outputs: &[Shape]) -> Option<Shape> {
    let full = outputs
        .iter()
        .copied()
        .find(|shape| !matches!(shape, Shape::Map { h: 1, w: 1, .. }))
        .unwrap_or(*outputs.first()?);
    let fits = |shape: Shape| match (shape, full) {
        (Shape::Map { c, h: 1, w: 1 }, Shape::Map { c: full_c, .. }) => c == full_c,
        _ => shape == full,
    };
    outputs.iter().all(|&shape| fits(shape)).then_some(full)
}

/// The parameter name written at `span` in a definition's body, if an expression there is a name.
fn name_at(definition: &Definition, span: Span) -> Option<&str> {
    struct NameAt<'ast> {
        span: Span,
        found: Option<&'ast str>,
    }
    impl<'ast> Visit<'ast> for NameAt<'ast> {
        fn visit_expr(&mut self, expr: &'ast Expr) {
            match &expr.kind {
                ExprKind::Name(name) if expr.span == self.span => {
                    self.found = self.found.or(Some(name));
                }
                _ => visit::visit_expr(self, expr),
            }
        }
    }
    let mut finder = NameAt { span, found: None };
    definition
        .body
        .iter()
        .for_each(|statement| finder.visit_statement(statement));
    finder.found
}

/// The parameter names an AST node reads.
#[derive(Default)]
struct Names<'ast>(HashSet<&'ast str>);

impl<'ast> Visit<'ast> for Names<'ast> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        if let ExprKind::Name(name) = &expr.kind {
            self.0.insert(name);
        }
        visit::visit_expr(self, expr);
    }
}

impl<'ast> Names<'ast> {
    fn in_body(body: &'ast [Statement]) -> HashSet<&'ast str> {
        let mut names = Names::default();
        body.iter()
            .for_each(|statement| names.visit_statement(statement));
        names.0
    }
}

/// The names of the layers and blocks an AST node calls.
#[derive(Default)]
struct Callees<'ast>(HashSet<&'ast str>);

impl<'ast> Visit<'ast> for Callees<'ast> {
    fn visit_call(&mut self, call: &'ast Call) {
        self.0.insert(&call.callee.name);
    }
}

impl<'ast> Callees<'ast> {
    fn in_body(body: &'ast [Statement]) -> HashSet<&'ast str> {
        let mut callees = Callees::default();
        body.iter()
            .for_each(|statement| callees.visit_statement(statement));
        callees.0
    }
}

/// A call's arguments bound to the callee's parameters, as written (`None` for a default).
fn bound_args(call: &Call, params: &[&str], bound: &[Option<BoundArg>]) -> Vec<Arg> {
    params
        .iter()
        .zip(bound)
        .map(|(name, given)| Arg {
            name: name.to_string(),
            expr: given
                .and_then(|arg| arg.source)
                .map(|position| call.args[position].value.clone()),
        })
        .collect()
}
