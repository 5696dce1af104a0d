//! The graph model: the nodes, edges and clusters [`build`] draws from a checked network (and, for a file with
//! errors, from the statements' source text), with every error put on the node it is about. Both writers
//! (`dot.rs`, `svg.rs`) and the layout (`layout.rs`) read only this model.

use std::collections::HashMap;

use crate::ast::{self, DefinitionKind, Op, Statement};
use crate::diagnostic::{Diagnostic, LineIndex, Span};
use crate::ir::{Layer, Network, Node, NodeKind, Repeat, Role, Shape};

/// What to draw.
#[derive(Debug, Clone, Default)]
pub struct GraphOptions {
    /// Draw each block instance as one node, and each chain of plain layers (`conv2d(..) -> relu`) as one node.
    pub collapse: bool,
    /// Draw only this network (default: every network in the file).
    pub network: Option<String>,
}

/// How a node is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStyle {
    /// A layer, a collapsed block or a collapsed chain.
    Layer,
    /// The network's input.
    Input,
    /// Where the branches of a `concat` or `add` meet.
    Merge,
    /// A statement the checker could not follow, drawn from its source text.
    Unchecked,
}

/// One box in the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// The lines of the label: name (when it has one), kind, output shape, then notes.
    pub lines: Vec<String>,
    pub style: NodeStyle,
    /// Part of a training-only side output.
    pub side: bool,
    /// Codes of the errors reported on this node's source text (drawn red).
    pub errors: Vec<String>,
    /// The error messages, for tooltips.
    pub messages: Vec<String>,
    /// The innermost cluster holding it.
    pub cluster: Option<usize>,
    /// The source text it was drawn from.
    pub span: Span,
    /// The block this node instantiates (collapsed instances and unchecked statements), for errors reported in
    /// a block's body.
    pub blocks: Vec<String>,
}

/// What a cluster groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// One network, when a file draws several.
    Network,
    /// One block instance.
    Block,
    /// One branch of a `concat` or `add` (a column).
    Branch,
    /// A training-only side output drawn as several nodes.
    Side,
}

/// A box around related nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub label: String,
    pub kind: ClusterKind,
    pub side: bool,
    pub errors: Vec<String>,
    pub messages: Vec<String>,
    pub parent: Option<usize>,
    /// Nodes and clusters directly inside, in drawing order.
    pub items: Vec<Item>,
    pub span: Span,
    pub block: Option<String>,
}

/// A node or a cluster, as listed inside a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Node(usize),
    Cluster(usize),
}

/// An arrow from one node's output to another node's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// Feeds a training-only side output (drawn dashed).
    pub side: bool,
}

/// A drawing of one file's networks: the model both writers read.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// A title: the network and its input and output shapes.
    pub title: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<Edge>,
    pub clusters: Vec<Cluster>,
    /// Items outside every cluster, in drawing order.
    pub items: Vec<Item>,
    /// Errors whose source text belongs to no drawn node (a network parameter's default, say), as
    /// `E0xxx line:col message`.
    pub unplaced: Vec<String>,
}

/// Draws the networks of `file`. `recovered` are the checked networks, errors included
/// ([`crate::check::check_file_recovering`]); `diagnostics` are the file's diagnostics, whose errors are put on
/// the nodes they are about. A network missing from `recovered` is drawn from its source text alone.
pub fn build(
    file: &ast::File,
    recovered: &[Network],
    diagnostics: &[Diagnostic],
    source: &str,
    options: &GraphOptions,
) -> Graph {
    let definitions: Vec<&ast::Definition> = file
        .items
        .iter()
        .filter(|d| d.kind == DefinitionKind::Network)
        .filter(|d| options.network.as_ref().map_or(true, |n| *n == d.name.name))
        .collect();
    let mut builder = Builder {
        graph: Graph {
            title: String::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            clusters: Vec::new(),
            items: Vec::new(),
            unplaced: Vec::new(),
        },
        source,
        collapse: options.collapse,
        statements: Vec::new(),
    };
    let mut titles = Vec::new();
    for definition in &definitions {
        let network = recovered
            .iter()
            .find(|n| n.span == definition.span && n.name == definition.name.name);
        titles.push(match network {
            Some(n) => format!(
                "{} · {} → {}",
                n.name,
                shape_text(n.input),
                shape_text(n.output)
            ),
            None => definition.name.name.clone(),
        });
        let cluster = (definitions.len() > 1).then(|| {
            builder.open_cluster(
                None,
                titles.last().cloned().unwrap_or_default(),
                ClusterKind::Network,
                false,
                definition.span,
                None,
            )
        });
        builder.network(definition, network, cluster);
    }
    builder.graph.title = titles.join("; ");
    builder.place_errors(file, diagnostics);
    builder.graph
}

struct Builder<'s> {
    graph: Graph,
    source: &'s str,
    collapse: bool,
    /// Each network statement drawn, with the nodes its output comes from: an error on the statement's own
    /// text (its name, its declared size) goes there.
    statements: Vec<(Span, Outputs)>,
}

/// The nodes a statement's output comes from.
type Outputs = Vec<usize>;

impl Builder<'_> {
    fn add_node(
        &mut self,
        lines: Vec<String>,
        style: NodeStyle,
        side: bool,
        cluster: Option<usize>,
        span: Span,
        inputs: &[usize],
    ) -> usize {
        let id = self.graph.nodes.len();
        self.graph.nodes.push(GraphNode {
            lines,
            style,
            side,
            errors: Vec::new(),
            messages: Vec::new(),
            cluster,
            span,
            blocks: Vec::new(),
        });
        match cluster {
            Some(c) => self.graph.clusters[c].items.push(Item::Node(id)),
            None => self.graph.items.push(Item::Node(id)),
        }
        for &from in inputs {
            self.graph.edges.push(Edge { from, to: id, side });
        }
        id
    }

    fn open_cluster(
        &mut self,
        parent: Option<usize>,
        label: String,
        kind: ClusterKind,
        side: bool,
        span: Span,
        block: Option<String>,
    ) -> usize {
        let id = self.graph.clusters.len();
        self.graph.clusters.push(Cluster {
            label,
            kind,
            side,
            errors: Vec::new(),
            messages: Vec::new(),
            parent,
            items: Vec::new(),
            span,
            block,
        });
        match parent {
            Some(p) => self.graph.clusters[p].items.push(Item::Cluster(id)),
            None => self.graph.items.push(Item::Cluster(id)),
        }
        id
    }

    fn network(
        &mut self,
        definition: &ast::Definition,
        network: Option<&Network>,
        cluster: Option<usize>,
    ) {
        let mut statements = definition.body.iter();
        let mut current: Outputs = Vec::new();
        if let Some(Statement::Input(shape)) = definition.body.first() {
            statements.next();
            let text = network.map_or_else(|| self.text(shape.span), |n| shape_text(n.input));
            let id = self.add_node(
                vec!["input".to_string(), text],
                NodeStyle::Input,
                false,
                cluster,
                shape.span,
                &[],
            );
            current = vec![id];
        }
        let mut checked = network
            .map_or(&[][..], |n| n.body.as_slice())
            .iter()
            .peekable();
        let mut named: HashMap<&str, Outputs> = HashMap::new();
        for statement in statements {
            let statement = match statement {
                Statement::Layer(statement) => statement,
                // A loop is drawn from its checked node: its iterations' statements, in order.
                Statement::For(for_loop) => {
                    let span = for_loop.span;
                    while checked.peek().is_some_and(|n| n.span.end <= span.start) {
                        checked.next();
                    }
                    if let Some(node) =
                        checked.next_if(|n| n.span.start >= span.start && n.span.end <= span.end)
                    {
                        current = self.node(node, &current, false, cluster, true);
                    }
                    continue;
                }
                Statement::Input(_) => continue,
            };
            let side = statement.side_from.is_some();
            let inputs = match &statement.side_from {
                Some(source) => named.get(source.name.as_str()).cloned().unwrap_or_default(),
                None => current.clone(),
            };
            let within = |node: &&Node| {
                node.span.start >= statement.span.start && node.span.end <= statement.span.end
            };
            // Checked nodes come in source order; skip any that belong to no statement (none do today).
            while checked
                .peek()
                .is_some_and(|n| n.span.end <= statement.span.start)
            {
                checked.next();
            }
            let outputs = match checked.next_if(within) {
                Some(node) => {
                    let side = side || matches!(node.role, Role::Side { .. });
                    // A side output drawn as several nodes gets a box saying it is training-only (a block
                    // instance's box says so itself).
                    let spread = match &node.kind {
                        NodeKind::Chain(children) => {
                            !(self.collapse
                                && children
                                    .iter()
                                    .all(|c| matches!(c.kind, NodeKind::Layer(_))))
                        }
                        NodeKind::Concat(_)
                        | NodeKind::Add(_)
                        | NodeKind::Mul(_)
                        | NodeKind::Repeat(_) => true,
                        NodeKind::Layer(_) | NodeKind::Block { .. } => false,
                    };
                    let cluster = if side && spread {
                        let label = format!("{} · training only", node.path);
                        Some(self.open_cluster(
                            cluster,
                            label,
                            ClusterKind::Side,
                            true,
                            statement.span,
                            None,
                        ))
                    } else {
                        cluster
                    };
                    self.node(node, &inputs, side, cluster, true)
                }
                None => vec![self.unchecked(statement, &inputs, cluster)],
            };
            self.statements.push((statement.span, outputs.clone()));
            if !side {
                current = outputs.clone();
                if let Some(name) = &statement.name {
                    named.insert(&name.name, outputs);
                }
            }
        }
    }

    /// A statement the checker did not follow: its name, its source text, its declared size.
    fn unchecked(
        &mut self,
        statement: &ast::LayerStatement,
        inputs: &[usize],
        cluster: Option<usize>,
    ) -> usize {
        let side = statement.side_from.is_some();
        let mut lines = Vec::new();
        if let Some(name) = &statement.name {
            lines.push(name.name.clone());
        }
        let chain = match (statement.chain.first(), statement.chain.last()) {
            (Some(first), Some(last)) => self.text(first.span().to(last.span())),
            _ => String::new(),
        };
        lines.push(truncate(&chain, 48));
        lines.push(match &statement.declared {
            Some(shape) => format!("declared {}", self.text(shape.span)),
            None => "?".to_string(),
        });
        if side {
            lines.push("training only".to_string());
        }
        let id = self.add_node(
            lines,
            NodeStyle::Unchecked,
            side,
            cluster,
            statement.span,
            inputs,
        );
        let mut blocks = Vec::new();
        collect_callees(&statement.chain, &mut blocks);
        self.graph.nodes[id].blocks = blocks;
        id
    }

    /// Source text with its blanks and comments squeezed to single spaces.
    fn text(&self, span: Span) -> String {
        let text = self.source.get(span.range()).unwrap_or("");
        let mut out = String::new();
        for line in text.lines() {
            let code = line.split('#').next().unwrap_or("");
            for word in code.split_whitespace() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
        out
    }

    /// Draws a checked node reading `inputs`; returns the nodes its output comes from. `top` marks a network's
    /// own statement, whose name is shown even when it is not part of a path.
    fn node(
        &mut self,
        node: &Node,
        inputs: &[usize],
        side: bool,
        cluster: Option<usize>,
        top: bool,
    ) -> Outputs {
        let name = node_name(node);
        let training = |mut lines: Vec<String>| {
            if side && top {
                lines.push("training only".to_string());
            }
            lines
        };
        match &node.kind {
            NodeKind::Layer(layer) => {
                let mut lines = name.into_iter().collect::<Vec<_>>();
                lines.push(layer_text(layer));
                lines.push(shape_text(node.output));
                let lines = training(lines);
                vec![self.add_node(lines, NodeStyle::Layer, side, cluster, node.span, inputs)]
            }
            NodeKind::Chain(children)
                if self.collapse
                    && children
                        .iter()
                        .all(|c| matches!(c.kind, NodeKind::Layer(_))) =>
            {
                let kinds: Vec<String> = children
                    .iter()
                    .map(|c| match &c.kind {
                        NodeKind::Layer(layer) => layer_text(layer),
                        _ => String::new(),
                    })
                    .collect();
                let mut lines = name.into_iter().collect::<Vec<_>>();
                lines.push(kinds.join(" → "));
                lines.push(shape_text(node.output));
                let lines = training(lines);
                vec![self.add_node(lines, NodeStyle::Layer, side, cluster, node.span, inputs)]
            }
            NodeKind::Chain(children)
            | NodeKind::Repeat(Repeat {
                nodes: children, ..
            }) => {
                let mut current = inputs.to_vec();
                for child in children {
                    current = self.node(child, &current, side, cluster, false);
                }
                current
            }
            NodeKind::Concat(branches) | NodeKind::Add(branches) | NodeKind::Mul(branches) => {
                let keyword = match node.kind {
                    NodeKind::Concat(_) => "concat",
                    NodeKind::Mul(_) => "mul",
                    _ => "add",
                };
                let mut outputs = Vec::new();
                for branch in branches {
                    let single = matches!(branch.kind, NodeKind::Layer(_))
                        || (self.collapse && matches!(branch.kind, NodeKind::Block { .. }));
                    let column = if single {
                        cluster
                    } else {
                        let label = branch.name.clone().unwrap_or_default();
                        Some(self.open_cluster(
                            cluster,
                            label,
                            ClusterKind::Branch,
                            side,
                            branch.span,
                            None,
                        ))
                    };
                    outputs.extend(self.node(branch, inputs, side, column, false));
                }
                let mut lines = name.into_iter().collect::<Vec<_>>();
                lines.push(keyword.to_string());
                lines.push(shape_text(node.output));
                let lines = training(lines);
                vec![self.add_node(lines, NodeStyle::Merge, side, cluster, node.span, &outputs)]
            }
            NodeKind::Block { block, args, body } => {
                let call = format!(
                    "{block}({})",
                    args.iter()
                        .map(|(_, value)| value.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if self.collapse {
                    let mut lines = name.into_iter().collect::<Vec<_>>();
                    lines.push(call);
                    lines.push(shape_text(node.output));
                    let lines = training(lines);
                    let id =
                        self.add_node(lines, NodeStyle::Layer, side, cluster, node.span, inputs);
                    self.graph.nodes[id].blocks = vec![block.clone()];
                    return vec![id];
                }
                let mut label = name.into_iter().collect::<Vec<_>>();
                label.push(call);
                label.push(shape_text(node.output));
                if side {
                    label.push("training only".to_string());
                }
                let inner = self.open_cluster(
                    cluster,
                    label.join(" · "),
                    ClusterKind::Block,
                    side,
                    node.span,
                    Some(block.clone()),
                );
                let mut current = inputs.to_vec();
                for child in body {
                    current = self.node(child, &current, side, Some(inner), false);
                }
                current
            }
        }
    }

    /// Puts each error on the drawn node (or cluster) with the smallest span containing it; an error in a block's
    /// body that no drawn node contains goes on the unchecked statements and collapsed nodes using that block.
    fn place_errors(&mut self, file: &ast::File, diagnostics: &[Diagnostic]) {
        let index = LineIndex::new(self.source);
        for diagnostic in diagnostics.iter().filter(|d| d.is_error()) {
            let span = diagnostic.primary.span;
            let contains =
                |s: Span| s.start <= span.start && span.end <= s.end && s != Span::default();
            let smallest = self
                .graph
                .nodes
                .iter()
                .map(|n| n.span)
                .chain(self.graph.clusters.iter().map(|c| c.span))
                .filter(|s| contains(*s))
                .min_by_key(|s| s.end - s.start);
            let code = diagnostic.code.as_str().to_string();
            let mut placed = false;
            if let Some(best) = smallest {
                for node in self.graph.nodes.iter_mut().filter(|n| n.span == best) {
                    add_error(&mut node.errors, &mut node.messages, &code, diagnostic);
                    placed = true;
                }
                for cluster in self.graph.clusters.iter_mut().filter(|c| c.span == best) {
                    add_error(
                        &mut cluster.errors,
                        &mut cluster.messages,
                        &code,
                        diagnostic,
                    );
                    placed = true;
                }
            }
            if !placed {
                let statement = self
                    .statements
                    .iter()
                    .filter(|(s, _)| contains(*s))
                    .min_by_key(|(s, _)| s.end - s.start);
                if let Some((_, outputs)) = statement {
                    for &id in outputs {
                        let node = &mut self.graph.nodes[id];
                        add_error(&mut node.errors, &mut node.messages, &code, diagnostic);
                        placed = true;
                    }
                }
            }
            if !placed {
                let block = file.items.iter().find(|d| {
                    d.kind == DefinitionKind::Block
                        && d.span.start <= span.start
                        && span.end <= d.span.end
                });
                if let Some(block) = block {
                    let name = &block.name.name;
                    for node in self
                        .graph
                        .nodes
                        .iter_mut()
                        .filter(|n| n.blocks.contains(name))
                    {
                        add_error(&mut node.errors, &mut node.messages, &code, diagnostic);
                        placed = true;
                    }
                    for cluster in self
                        .graph
                        .clusters
                        .iter_mut()
                        .filter(|c| c.block.as_ref() == Some(name))
                    {
                        add_error(
                            &mut cluster.errors,
                            &mut cluster.messages,
                            &code,
                            diagnostic,
                        );
                        placed = true;
                    }
                }
            }
            if !placed {
                let (line, column) = index.line_col(span.start as usize);
                self.graph
                    .unplaced
                    .push(format!("{code} {line}:{column} {}", diagnostic.message));
            }
        }
    }
}

fn add_error(codes: &mut Vec<String>, messages: &mut Vec<String>, code: &str, d: &Diagnostic) {
    if !codes.iter().any(|c| c == code) {
        codes.push(code.to_string());
    }
    messages.push(format!("error[{code}]: {}", d.message));
}

fn collect_statement_callees(body: &[Statement], out: &mut Vec<String>) {
    for statement in body {
        match statement {
            Statement::Layer(layer) => collect_callees(&layer.chain, out),
            Statement::For(for_loop) => collect_statement_callees(&for_loop.body, out),
            Statement::Input(_) => {}
        }
    }
}

fn collect_callees(chain: &[Op], out: &mut Vec<String>) {
    for op in chain {
        match op {
            Op::Call(call) => out.push(call.callee.name.clone()),
            Op::Group(group) => {
                for branch in &group.branches {
                    collect_callees(&branch.chain, out);
                }
            }
            Op::Sequence(sequence) => collect_statement_callees(&sequence.body, out),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The name line of a node: its path, for nodes with a name of their own.
fn node_name(node: &Node) -> Option<String> {
    node.name.as_ref().map(|_| node.path.clone())
}

/// `128×28×28`, or `1000` for a flat shape.
pub fn shape_text(shape: Shape) -> String {
    match shape {
        Shape::Map { c, h, w } => format!("{c}×{h}×{w}"),
        Shape::Flat { features } => features.to_string(),
    }
}

/// A layer's kind with the settings that decide its shape: `conv 3×3/1`, `max_pool 3×3/2 ceil`, `linear 1024→1000`.
pub fn layer_text(layer: &Layer) -> String {
    layer.label()
}

impl Graph {
    /// The node's label lines, error codes included.
    pub fn label_lines(&self, id: usize) -> Vec<String> {
        let node = &self.nodes[id];
        let mut lines = node.lines.clone();
        if !node.errors.is_empty() {
            lines.push(format!("error {}", node.errors.join(", ")));
        }
        lines
    }

    /// The cluster's label, error codes included.
    pub fn cluster_label(&self, id: usize) -> String {
        let cluster = &self.clusters[id];
        if cluster.errors.is_empty() {
            cluster.label.clone()
        } else {
            format!("{} · error {}", cluster.label, cluster.errors.join(", "))
        }
    }
}
