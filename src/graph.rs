//! Drawing: a checked network as a graph, written as Graphviz DOT ([`Graph::to_dot`]) or as an SVG laid out by
//! the `layout-rs` crate ([`Graph::to_svg`]), so no external program is needed.
//!
//! [`build`] walks each network definition of the AST statement by statement and draws the checked node the IR
//! has for it: every layer with its path, its kind and its inferred output shape; a block instance as a cluster
//! (or, with [`GraphOptions::collapse`], as one node); the branches of a `concat`/`add` side by side, joined by a
//! merge node; side outputs dashed and grey, marked training-only. A statement the checker could not follow (a
//! file with errors) is drawn from its source text, and every error is put on the node whose span contains it,
//! in red with its code.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::ast::{self, DefinitionKind, Op, Statement};
use crate::diagnostic::{Diagnostic, LineIndex, Span};
use crate::ir::{Layer, Network, Node, NodeKind, Role, Shape};

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
            let Statement::Layer(statement) = statement else {
                continue;
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
                        NodeKind::Concat(_) | NodeKind::Add(_) => true,
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
            NodeKind::Chain(children) => {
                let mut current = inputs.to_vec();
                for child in children {
                    current = self.node(child, &current, side, cluster, false);
                }
                current
            }
            NodeKind::Concat(branches) | NodeKind::Add(branches) => {
                let keyword = match node.kind {
                    NodeKind::Concat(_) => "concat",
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

fn collect_callees(chain: &[Op], out: &mut Vec<String>) {
    for op in chain {
        match op {
            Op::Call(call) => out.push(call.callee.name.clone()),
            Op::Group(group) => {
                for branch in &group.branches {
                    collect_callees(&branch.chain, out);
                }
            }
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

// ---------------------------------------------------------------------------------------------------------------
// DOT

const RED: &str = "#c5221f";
const RED_FILL: &str = "#fce8e6";
const GREY: &str = "#80868b";
const GREY_FILL: &str = "#f1f3f4";

fn dot_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
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

    /// Graphviz DOT text: top to bottom, a cluster per block instance (and per branch, so branches read as
    /// columns), side outputs dashed and grey, errors red.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        out.push_str("digraph archc {\n");
        let mut label = self.title.clone();
        for line in &self.unplaced {
            label.push('\n');
            label.push_str(line);
        }
        let _ = writeln!(
            out,
            "    graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", fontsize=12, nodesep=0.2, ranksep=0.3, label={}];",
            dot_string(&label)
        );
        out.push_str("    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=10];\n");
        out.push_str("    edge [color=\"#5f6368\", arrowsize=0.6];\n");
        for item in &self.items {
            self.dot_item(&mut out, *item, 1);
        }
        for edge in &self.edges {
            let _ = write!(out, "    n{} -> n{}", edge.from, edge.to);
            if edge.side {
                let _ = write!(out, " [style=dashed, color=\"{GREY}\"]");
            }
            out.push_str(";\n");
        }
        out.push_str("}\n");
        out
    }

    fn dot_item(&self, out: &mut String, item: Item, depth: usize) {
        let indent = "    ".repeat(depth);
        match item {
            Item::Node(id) => {
                let node = &self.nodes[id];
                let mut attributes = vec![format!(
                    "label={}",
                    dot_string(&self.label_lines(id).join("\n"))
                )];
                if !node.errors.is_empty() {
                    attributes.push(format!(
                        "color=\"{RED}\", fontcolor=\"{RED}\", fillcolor=\"{RED_FILL}\", penwidth=2"
                    ));
                    attributes.push(format!("tooltip={}", dot_string(&node.messages.join("\n"))));
                } else if node.side {
                    attributes.push(format!(
                        "style=\"rounded,filled,dashed\", color=\"{GREY}\", fontcolor=\"{GREY}\", fillcolor=\"{GREY_FILL}\""
                    ));
                } else if node.style == NodeStyle::Unchecked {
                    attributes.push(format!(
                        "style=\"rounded,filled,dotted\", fontcolor=\"{GREY}\""
                    ));
                }
                match node.style {
                    NodeStyle::Input => attributes.push("fillcolor=\"#e8f0fe\"".to_string()),
                    NodeStyle::Merge if node.errors.is_empty() && !node.side => {
                        attributes.push("fillcolor=\"#fef7e0\"".to_string())
                    }
                    _ => {}
                }
                let _ = writeln!(out, "{indent}n{id} [{}];", attributes.join(", "));
            }
            Item::Cluster(id) => {
                let cluster = &self.clusters[id];
                let _ = writeln!(out, "{indent}subgraph cluster_{id} {{");
                let _ = writeln!(
                    out,
                    "{indent}    label={};",
                    dot_string(&self.cluster_label(id))
                );
                let style = match (cluster.kind, !cluster.errors.is_empty(), cluster.side) {
                    (_, true, _) => format!("style=\"rounded\", color=\"{RED}\", fontcolor=\"{RED}\", penwidth=2"),
                    (ClusterKind::Branch, ..) => "style=\"rounded,dotted\", color=\"#bdc1c6\", fontcolor=\"#80868b\", fontsize=9, labeljust=l".to_string(),
                    (_, false, true) => format!("style=\"rounded,dashed\", color=\"{GREY}\", fontcolor=\"{GREY}\""),
                    (_, false, false) => "style=\"rounded\", color=\"#9aa0a6\", labeljust=l".to_string(),
                };
                let _ = writeln!(out, "{indent}    {style};");
                for item in &cluster.items {
                    self.dot_item(out, *item, depth + 1);
                }
                let _ = writeln!(out, "{indent}}}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// SVG

#[cfg(feature = "svg")]
mod svg {
    //! The SVG writer: layout-rs places the nodes and routes the edges; this backend draws them (sans-serif
    //! labels sized to fit, dashed side outputs, red errors) and adds the block-instance boxes behind them.

    use layout::core::base::Orientation;
    use layout::core::color::Color;
    use layout::core::format::{ClipHandle, RenderBackend};
    use layout::core::geometry::{Point, Position};
    use layout::core::style::{LineStyleKind, StyleAttr};
    use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
    use layout::topo::layout::VisualGraph;
    use std::fmt::Write as _;

    use super::{ClusterKind, Graph, Item, NodeStyle, GREY, GREY_FILL, RED, RED_FILL};

    /// Rendered font size of labels, in pixels.
    const FONT: f64 = 12.0;
    /// An estimate of one character's width at [`FONT`] (Helvetica/Arial average).
    const CHAR_WIDTH: f64 = 6.7;
    const LINE_HEIGHT: f64 = 14.5;
    const PAD_X: f64 = 10.0;
    const PAD_Y: f64 = 6.0;
    /// The free space kept around each node (half the gap between neighbours); more between levels when block
    /// boxes with their labels must fit between them.
    const HALO: Point = Point { x: 9.0, y: 14.0 };
    const HALO_WITH_BOXES: Point = Point { x: 9.0, y: 26.0 };
    /// The properties that mark a spacer, which is laid out but not drawn.
    const SPACER: &str = "class=\"spacer\"";
    /// Line height and character width of cluster labels (10.5 px).
    const CLUSTER_LINE: f64 = 12.5;
    const CLUSTER_CHAR_WIDTH: f64 = 5.9;
    /// Space above the drawing for the title.
    const TITLE_HEIGHT: f64 = 34.0;

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    fn color(hex: &str) -> Color {
        Color::from_name(hex).unwrap_or_else(|| Color::new(0x000000ff))
    }

    /// `#rrggbbaa` as layout-rs writes it, back to `#rrggbb`.
    fn web(color: Color) -> String {
        let text = color.to_web_color();
        text.get(..7).unwrap_or("#000000").to_string()
    }

    struct Canvas {
        body: String,
        size: Point,
    }

    impl Canvas {
        fn grow(&mut self, point: Point) {
            self.size.x = self.size.x.max(point.x);
            self.size.y = self.size.y.max(point.y);
        }
    }

    impl RenderBackend for Canvas {
        fn draw_rect(
            &mut self,
            xy: Point,
            size: Point,
            look: &StyleAttr,
            properties: Option<String>,
            _clip: Option<ClipHandle>,
        ) {
            if properties.as_deref() == Some(SPACER) {
                return;
            }
            self.grow(xy.add(size));
            let fill = look.fill_color.map_or("none".to_string(), web);
            let _ = writeln!(
                self.body,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{}" fill="{fill}" stroke="{}" stroke-width="{}" {}/>"#,
                xy.x,
                xy.y,
                size.x,
                size.y,
                look.rounded,
                web(look.line_color),
                look.line_width,
                properties.unwrap_or_default()
            );
        }

        fn draw_line(
            &mut self,
            start: Point,
            stop: Point,
            look: &StyleAttr,
            _properties: Option<String>,
        ) {
            self.grow(start);
            self.grow(stop);
            let _ = writeln!(
                self.body,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{}"/>"#,
                start.x,
                start.y,
                stop.x,
                stop.y,
                web(look.line_color),
                look.line_width
            );
        }

        fn draw_circle(
            &mut self,
            xy: Point,
            size: Point,
            look: &StyleAttr,
            _properties: Option<String>,
        ) {
            self.grow(xy.add(size.scale(0.5)));
            let _ = writeln!(
                self.body,
                r#"<ellipse cx="{:.1}" cy="{:.1}" rx="{:.1}" ry="{:.1}" fill="none" stroke="{}"/>"#,
                xy.x,
                xy.y,
                size.x / 2.0,
                size.y / 2.0,
                web(look.line_color)
            );
        }

        fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return;
            }
            let top = xy.y - LINE_HEIGHT * lines.len() as f64 / 2.0;
            let _ = write!(
                self.body,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{FONT}" fill="{}">"#,
                xy.x,
                top,
                web(look.line_color),
            );
            for (index, line) in lines.iter().enumerate() {
                let weight = if index == 0 {
                    r#" font-weight="bold""#
                } else {
                    ""
                };
                let _ = write!(
                    self.body,
                    r#"<tspan x="{:.1}" dy="{}"{weight}>{}</tspan>"#,
                    xy.x,
                    if index == 0 {
                        LINE_HEIGHT * 0.8
                    } else {
                        LINE_HEIGHT
                    },
                    escape(line)
                );
            }
            self.body.push_str("</text>\n");
        }

        fn draw_arrow(
            &mut self,
            path: &[(Point, Point)],
            dashed: bool,
            head: (bool, bool),
            look: &StyleAttr,
            _properties: Option<String>,
            _text: &str,
        ) {
            let [first, second, rest @ ..] = path else {
                return;
            };
            for (a, b) in path {
                self.grow(*a);
                self.grow(*b);
            }
            let mut d = format!(
                "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1} ",
                first.0.x,
                first.0.y,
                first.1.x,
                first.1.y,
                second.0.x,
                second.0.y,
                second.1.x,
                second.1.y
            );
            for (a, b) in rest {
                let _ = write!(d, "S {:.1} {:.1}, {:.1} {:.1} ", a.x, a.y, b.x, b.y);
            }
            let _ = writeln!(
                self.body,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="{}"{}{}/>"#,
                d.trim_end(),
                web(look.line_color),
                look.line_width,
                if dashed {
                    r#" stroke-dasharray="5,4""#
                } else {
                    ""
                },
                if head.1 {
                    r#" marker-end="url(#arrow)""#
                } else {
                    ""
                },
            );
        }

        fn create_clip(&mut self, _xy: Point, _size: Point, _rounded_px: usize) -> ClipHandle {
            0
        }
    }

    /// Each node's level: the longest path to it from a node with no inputs (edges always point to nodes
    /// created later, so one pass in creation order is enough).
    fn longest_path_depths(graph: &Graph) -> Vec<usize> {
        let mut depth = vec![0usize; graph.nodes.len()];
        let mut edges: Vec<_> = graph.edges.iter().collect();
        edges.sort_by_key(|e| e.to);
        for edge in edges {
            depth[edge.to] = depth[edge.to].max(depth[edge.from] + 1);
        }
        depth
    }

    /// A cluster's label broken at its ` · ` separators into lines that fit `width` pixels, two at most (the
    /// space between levels holds no more; what is cut is the output shape, which the last node shows too).
    fn cluster_label_lines(label: &str, width: f64) -> Vec<String> {
        let fits = ((width - 12.0) / CLUSTER_CHAR_WIDTH).max(8.0) as usize;
        let mut lines: Vec<String> = Vec::new();
        for part in label.split(" · ") {
            match lines.last_mut() {
                Some(line) if line.chars().count() + 3 + part.chars().count() <= fits => {
                    line.push_str(" · ");
                    line.push_str(part);
                }
                _ => lines.push(part.to_string()),
            }
        }
        if lines.len() > 2 {
            lines.truncate(2);
            lines[1].push_str(" …");
        }
        lines
    }

    fn node_element(graph: &Graph, id: usize, halo: Point) -> Element {
        let node = &graph.nodes[id];
        let lines = graph.label_lines(id);
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1);
        let size = Point::new(
            widest as f64 * CHAR_WIDTH + 2.0 * PAD_X,
            lines.len() as f64 * LINE_HEIGHT + 2.0 * PAD_Y,
        );
        let (style, class) = if !node.errors.is_empty() {
            (look(RED, RED_FILL, 2), r#"class="node error""#)
        } else if node.side {
            (
                look(GREY, GREY_FILL, 1),
                r#"class="node side" stroke-dasharray="5,3""#,
            )
        } else {
            match node.style {
                NodeStyle::Input => (look("#1a73e8", "#e8f0fe", 1), r#"class="node input""#),
                NodeStyle::Merge => (look("#b06000", "#fef7e0", 1), r#"class="node merge""#),
                NodeStyle::Unchecked => (
                    look(GREY, "#ffffff", 1),
                    r#"class="node unchecked" stroke-dasharray="2,2""#,
                ),
                NodeStyle::Layer => (look("#3c4043", "#ffffff", 1), r#"class="node""#),
            }
        };
        let mut element = Element::create_with_properties(
            ShapeKind::new_box(&lines.join("\n")),
            style,
            Orientation::TopToBottom,
            size,
            class,
        );
        element.pos = Position::new(Point::zero(), size, Point::zero(), halo);
        element
    }

    /// layout-rs ends an arrow only at a box: a spacer is a box of one pixel that is never drawn.
    fn spacer_element(look: &StyleAttr, halo: Point) -> Element {
        let size = Point::splat(1.0);
        let mut element = Element::create_with_properties(
            ShapeKind::new_box(""),
            look.clone(),
            Orientation::TopToBottom,
            size,
            SPACER,
        );
        element.pos = Position::new(Point::zero(), size, Point::zero(), Point::new(4.0, halo.y));
        element
    }

    fn edge_look(side: bool) -> StyleAttr {
        let line = if side { GREY } else { "#5f6368" };
        StyleAttr::new(color(line), 1, None, 0, FONT as usize)
    }

    /// One arrow, or one piece of an arrow cut by spacers (only the last piece has a head).
    fn edge_segment(look: &StyleAttr, side: bool, last: bool) -> Arrow {
        let style = if side {
            LineStyleKind::Dashed
        } else {
            LineStyleKind::Normal
        };
        let end = if last {
            LineEndKind::Arrow
        } else {
            LineEndKind::None
        };
        Arrow::new(LineEndKind::None, end, style, "", look, &None, &None)
    }

    fn look(line: &str, fill: &str, width: usize) -> StyleAttr {
        StyleAttr::new(color(line), width, Some(color(fill)), 6, FONT as usize)
    }

    /// Lays the graph out with layout-rs and draws it.
    pub fn render(graph: &Graph) -> String {
        let mut visual = VisualGraph::new(Orientation::TopToBottom);
        // A short branch would otherwise be pulled down next to its merge node, and the columns of a concat
        // would start at different heights: every node gets its longest-path depth, and an edge that skips
        // levels passes through invisible spacers, one per level. Spacers are added right after the node their
        // edge leaves, so each level lists its nodes in source order (branch1 left of branch2) with no crossing
        // for layout-rs's optimizer to untangle by reordering.
        let depth = longest_path_depths(graph);
        let halo = if graph.clusters.iter().any(|c| c.kind != ClusterKind::Branch) {
            HALO_WITH_BOXES
        } else {
            HALO
        };
        let mut handles = Vec::new();
        let mut pending = Vec::new();
        for id in 0..graph.nodes.len() {
            handles.push(visual.add_node(node_element(graph, id, halo)));
            for edge in graph.edges.iter().filter(|e| e.from == id) {
                let look = edge_look(edge.side);
                let mut from = handles[id];
                for _ in depth[edge.from] + 1..depth[edge.to] {
                    let spacer = visual.add_node(spacer_element(&look, halo));
                    visual.add_edge(edge_segment(&look, edge.side, false), from, spacer);
                    from = spacer;
                }
                pending.push((from, edge));
            }
        }
        for (from, edge) in pending {
            let look = edge_look(edge.side);
            visual.add_edge(edge_segment(&look, edge.side, true), from, handles[edge.to]);
        }
        let mut canvas = Canvas {
            body: String::new(),
            size: Point::zero(),
        };
        if !handles.is_empty() {
            visual.do_it(false, false, false, &mut canvas);
        }

        // Block boxes, drawn behind the nodes: the bounding box of each cluster's nodes, nested ones first
        // computed so a parent encloses its children's margins.
        let mut boxes: Vec<Option<(Point, Point)>> = vec![None; graph.clusters.len()];
        for id in (0..graph.clusters.len()).rev() {
            let mut bounds: Option<(Point, Point)> = None;
            let mut extend = |lo: Point, hi: Point| {
                bounds = Some(match bounds {
                    None => (lo, hi),
                    Some((a, b)) => (
                        Point::new(a.x.min(lo.x), a.y.min(lo.y)),
                        Point::new(b.x.max(hi.x), b.y.max(hi.y)),
                    ),
                });
            };
            for item in &graph.clusters[id].items {
                match item {
                    Item::Node(n) => {
                        let (lo, hi) = visual.pos(handles[*n]).bbox(false);
                        extend(lo, hi);
                    }
                    Item::Cluster(c) => {
                        if let Some((lo, hi)) = boxes[*c] {
                            extend(lo, hi);
                        }
                    }
                }
            }
            boxes[id] = bounds.map(|(lo, hi)| match graph.clusters[id].kind {
                ClusterKind::Branch => (lo, hi),
                _ => {
                    let lines =
                        cluster_label_lines(&graph.cluster_label(id), hi.x - lo.x + 12.0).len();
                    (
                        Point::new(lo.x - 6.0, lo.y - 4.0 - CLUSTER_LINE * lines as f64),
                        Point::new(hi.x + 6.0, hi.y + 5.0),
                    )
                }
            });
        }
        let mut back = String::new();
        for (id, cluster) in graph.clusters.iter().enumerate() {
            let Some((lo, hi)) = boxes[id] else { continue };
            if cluster.kind == ClusterKind::Branch {
                continue;
            }
            canvas.grow(hi);
            let (stroke, fill, text, dash) = if !cluster.errors.is_empty() {
                (RED, "#fffafa", RED, "")
            } else if cluster.side {
                (GREY, "#fafafa", GREY, r#" stroke-dasharray="5,3""#)
            } else {
                ("#c7cbd1", "#f8f9fb", "#5f6368", "")
            };
            let _ = writeln!(
                back,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8" fill="{fill}" stroke="{stroke}"{dash}/>"#,
                lo.x,
                lo.y,
                hi.x - lo.x,
                hi.y - lo.y
            );
            let label = cluster_label_lines(&graph.cluster_label(id), hi.x - lo.x);
            for (index, line) in label.iter().enumerate() {
                let _ = writeln!(
                    back,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10.5" fill="{text}">{}</text>"#,
                    lo.x + 6.0,
                    lo.y + 11.5 + CLUSTER_LINE * index as f64,
                    escape(line)
                );
            }
        }

        let width = canvas.size.x.max(300.0) + 10.0;
        let mut header = vec![graph.title.clone()];
        header.extend(graph.unplaced.iter().cloned());
        let title_height = TITLE_HEIGHT + 16.0 * (header.len() - 1) as f64;
        let height = canvas.size.y + 10.0 + title_height;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif">"#
        );
        out.push_str(r##"<defs><marker id="arrow" markerWidth="8" markerHeight="6" refX="8" refY="3" orient="auto"><polygon points="0 0, 8 3, 0 6" fill="#5f6368"/></marker></defs>"##);
        out.push('\n');
        let _ = writeln!(
            out,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        for (index, line) in header.iter().enumerate() {
            let (size, fill, weight) = if index == 0 {
                (15, "#202124", r#" font-weight="bold""#)
            } else {
                (12, RED, "")
            };
            let _ = writeln!(
                out,
                r#"<text x="12" y="{}" font-size="{size}" fill="{fill}"{weight}>{}</text>"#,
                22 + 16 * index,
                escape(line)
            );
        }
        let _ = writeln!(out, r#"<g transform="translate(0 {title_height:.0})">"#);
        out.push_str(&back);
        out.push_str(&canvas.body);
        out.push_str("</g>\n</svg>\n");
        out
    }
}

#[cfg(feature = "svg")]
impl Graph {
    /// An SVG picture: layout-rs places the nodes top to bottom; block instances are boxed, side outputs dashed
    /// and grey, errors red.
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }
}
