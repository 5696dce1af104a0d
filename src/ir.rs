//! The checked network: every node with its resolved layer configuration and its input and output shapes.
//!
//! The IR is what the checker proves correct and what code generation and the summary read. Every parameter
//! expression has been evaluated, every in-channel count inferred. Paths are the weight-name prefixes the
//! generated model uses (`inception3a.branch2.0`), which reproduce PyTorch `state_dict` names.

use std::fmt;

use crate::diagnostic::Span;
pub use crate::layers::Hw;

/// The shape of one sample (the batch axis is implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature map `[C, H, W]`.
    Map { c: u64, h: u64, w: u64 },
    /// A flat feature vector `[F]`.
    Flat { features: u64 },
}

impl Shape {
    /// The number of channels (features, for a flat shape).
    pub fn channels(self) -> u64 {
        match self {
            Shape::Map { c, .. } => c,
            Shape::Flat { features } => features,
        }
    }

    /// The dimensions as written in a declaration.
    pub fn dims(self) -> Vec<u64> {
        match self {
            Shape::Map { c, h, w } => vec![c, h, w],
            Shape::Flat { features } => vec![features],
        }
    }

    /// The number of elements, if it fits in `u64`.
    pub fn elements(self) -> Option<u64> {
        match self {
            Shape::Map { c, h, w } => c.checked_mul(h)?.checked_mul(w),
            Shape::Flat { features } => Some(features),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { c, h, w } => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat { features } => write!(f, "[{features}]"),
        }
    }
}

/// A value a parameter or argument can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `same` padding.
    Same,
    /// `[h, w]`
    Pair(i64, i64),
}

impl Value {
    /// The type's name, for messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Same => "`same`",
            Value::Pair(..) => "pair",
        }
    }
}

/// The type of a value, and of a block parameter: the one type every value a network's calls give it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int,
    Float,
    Bool,
    /// A `[h, w]` pair.
    Pair,
    /// A padding: an integer, a pair or `same`.
    Pad,
}

impl ValueType {
    pub fn of(value: Value) -> ValueType {
        match value {
            Value::Int(_) => ValueType::Int,
            Value::Float(_) => ValueType::Float,
            Value::Bool(_) => ValueType::Bool,
            Value::Pair(..) => ValueType::Pair,
            Value::Same => ValueType::Pad,
        }
    }

    /// The type that holds values of both types, if there is one: an integer is a float or a square pair, and
    /// an integer or a pair is a padding.
    pub fn join(self, other: ValueType) -> Option<ValueType> {
        use ValueType::*;
        match (self, other) {
            (a, b) if a == b => Some(a),
            (Int, Float) | (Float, Int) => Some(Float),
            (Int, Pair) | (Pair, Int) => Some(Pair),
            (Int | Pair | Pad, Int | Pair | Pad) => Some(Pad),
            _ => None,
        }
    }
}

/// A block as a network calls it: its parameters in order, each with the type all the calls' values fit
/// ([`ValueType::join`]), or, where two calls give a parameter values no one type holds, the first such call.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSignature {
    pub name: String,
    pub params: Vec<(String, ValueType)>,
    pub conflict: Option<TypeConflict>,
}

/// Two calls of a block giving one parameter values of types no one type holds (`[3, 3]` and `0.5`).
#[derive(Debug, Clone, PartialEq)]
pub struct TypeConflict {
    /// The call that disagrees with the ones before it.
    pub span: Span,
    pub param: String,
    pub here: Value,
    pub before: ValueType,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Same => f.write_str("same"),
            Value::Pair(h, w) => write!(f, "[{h}, {w}]"),
        }
    }
}

/// Zero padding on each side of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding {
    pub top: u64,
    pub bottom: u64,
    pub left: u64,
    pub right: u64,
}

impl Padding {
    /// The same padding on both sides of each axis.
    pub fn symmetric([h, w]: Hw) -> Padding {
        Padding {
            top: h,
            bottom: h,
            left: w,
            right: w,
        }
    }

    /// `Some([h, w])` when each axis is padded equally on both sides.
    pub fn as_symmetric(self) -> Option<Hw> {
        (self.top == self.bottom && self.left == self.right).then_some([self.top, self.left])
    }
}

pub use crate::layers::Layer;

/// An argument of a call bound to its parameter, as the source wrote it: code generation keeps parameters as
/// expressions, so a non-default `Config` builds what it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The parameter's name.
    pub name: String,
    /// The expression written for it, over the caller's parameters; `None` when the call leaves the default.
    pub expr: Option<crate::ast::Expr>,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// One built-in layer.
    Layer(Layer),
    /// An instance of a block: its body, checked with these argument values.
    Block {
        block: String,
        args: Vec<(String, Value)>,
        body: Vec<Node>,
    },
    /// Several operations in sequence: a chain `a -> b`, whose children are named `0`, `1`, ...; or a sequence
    /// `{ ... }`, whose children have the names its statements give them.
    Chain(Vec<Node>),
    /// Branches reading the same input, concatenated along channels.
    Concat(Vec<Node>),
    /// Branches reading the same input, summed element-wise.
    Add(Vec<Node>),
    /// Branches reading the same input, multiplied element-wise (a `[C, 1, 1]` branch broadcast over the map).
    Mul(Vec<Node>),
    /// A `for` loop, unrolled: its body's nodes for each value of the loop variable in turn.
    Repeat(Repeat),
}

/// A checked `for` loop. The node's `args` hold its range's bounds as written (`start`, `end`).
#[derive(Debug, Clone, PartialEq)]
pub struct Repeat {
    /// The loop variable.
    pub var: String,
    /// Whether the range includes its end (`..=`).
    pub inclusive: bool,
    /// The body's nodes, `per_iteration` of them for each iteration, in order.
    pub nodes: Vec<Node>,
    pub per_iteration: usize,
}

/// Whether a node is on the main path or a training-only side output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Main,
    /// `side NAME = ... from SOURCE`: evaluated only in training mode, from SOURCE's output.
    Side {
        source: String,
    },
}

/// One checked statement (or chain element, or branch).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The field name in the generated model (`None` for unnamed parameterless statements).
    pub name: Option<String>,
    /// The weight-name prefix, e.g. `inception3a.branch2.0`; empty for unnamed top-level statements.
    pub path: String,
    pub kind: NodeKind,
    pub input: Shape,
    pub output: Shape,
    pub role: Role,
    /// The statement or operation this node came from.
    pub span: Span,
    /// For a layer or block call, its arguments bound to the callee's parameters, in parameter order.
    pub args: Vec<Arg>,
    /// For a statement, the output size it declares (`: [C, H, W]`), as written.
    pub declared: Option<Vec<crate::ast::Expr>>,
    /// For a statement whose name has values in it (`denselayer{i}`), the name as written.
    pub template: Vec<crate::ast::NamePart>,
}

impl Node {
    /// What the node is, in a word or two: the layer's kind, the block called, `concat`, `for i`, ...
    pub fn kind_text(&self) -> String {
        match &self.kind {
            NodeKind::Layer(layer) => layer.kind_name().to_string(),
            NodeKind::Block { block, .. } => block.clone(),
            NodeKind::Chain(_) => "chain".to_string(),
            NodeKind::Concat(_) => "concat".to_string(),
            NodeKind::Add(_) => "add".to_string(),
            NodeKind::Mul(_) => "mul".to_string(),
            NodeKind::Repeat(repeat) => format!("for {}", repeat.var),
        }
    }

    /// The node for a message: `` `inception3a.branch2` (chain) ``, `` `maxpool3` (max_pool 3×3/2 ceil) ``,
    /// or `an unnamed concat`.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            NodeKind::Layer(layer) => layer.label(),
            _ => self.kind_text(),
        };
        if self.path.is_empty() {
            format!("an unnamed {what}")
        } else {
            format!("`{}` ({what})", self.path)
        }
    }

    /// The nodes directly inside this one.
    pub fn children(&self) -> &[Node] {
        match &self.kind {
            NodeKind::Layer(_) => &[],
            NodeKind::Block { body, .. } => body,
            NodeKind::Chain(nodes)
            | NodeKind::Concat(nodes)
            | NodeKind::Add(nodes)
            | NodeKind::Mul(nodes)
            | NodeKind::Repeat(Repeat { nodes, .. }) => nodes,
        }
    }

    /// Visits this node and everything below it, parents first, in source order.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Node)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    fn clear_spans(&mut self) {
        self.span = Span::default();
        for arg in &mut self.args {
            if let Some(expr) = &mut arg.expr {
                expr.clear_spans();
            }
        }
        for expr in self.declared.iter_mut().flatten() {
            expr.clear_spans();
        }
        for part in &mut self.template {
            if let crate::ast::NamePart::Value(expr) = part {
                expr.clear_spans();
            }
        }
        match &mut self.kind {
            NodeKind::Layer(_) => {}
            NodeKind::Block { body: nodes, .. }
            | NodeKind::Chain(nodes)
            | NodeKind::Concat(nodes)
            | NodeKind::Add(nodes)
            | NodeKind::Mul(nodes)
            | NodeKind::Repeat(Repeat { nodes, .. }) => {
                nodes.iter_mut().for_each(Node::clear_spans)
            }
        }
    }
}

/// A checked network.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub name: String,
    /// The network's parameters and the values the check used (their defaults).
    pub params: Vec<(String, Value)>,
    pub input: Shape,
    /// Top-level statements in source order, side outputs included.
    pub body: Vec<Node>,
    /// The shape of the main output (the last main-path statement).
    pub output: Shape,
    /// The blocks the network calls, at any depth, in the order first called.
    pub blocks: Vec<BlockSignature>,
    pub span: Span,
}

impl Network {
    /// Visits every node, parents first, in source order.
    pub fn walk<'a>(&'a self, mut visit: impl FnMut(&'a Node)) {
        for node in &self.body {
            node.walk(&mut visit);
        }
    }

    /// The signatures of the blocks `body` calls, at any depth, in the order first called.
    pub fn block_signatures(body: &[Node]) -> Vec<BlockSignature> {
        let mut blocks: Vec<BlockSignature> = Vec::new();
        let mut visit = |node: &Node| {
            let NodeKind::Block { block, args, .. } = &node.kind else {
                return;
            };
            let Some(signature) = blocks.iter_mut().find(|b| b.name == *block) else {
                blocks.push(BlockSignature {
                    name: block.clone(),
                    params: args
                        .iter()
                        .map(|(n, v)| (n.clone(), ValueType::of(*v)))
                        .collect(),
                    conflict: None,
                });
                return;
            };
            for ((name, ty), (_, value)) in signature.params.iter_mut().zip(args) {
                match ty.join(ValueType::of(*value)) {
                    Some(joined) => *ty = joined,
                    None => {
                        signature.conflict.get_or_insert_with(|| TypeConflict {
                            span: node.span,
                            param: name.clone(),
                            here: *value,
                            before: *ty,
                        });
                    }
                }
            }
        };
        for node in body {
            node.walk(&mut visit);
        }
        blocks
    }

    /// The same network with every span reset: two front ends (`.arch` and YAML) that describe the same network
    /// produce equal IR once source positions are set aside.
    pub fn without_spans(&self) -> Network {
        let mut network = self.clone();
        network.span = Span::default();
        network.body.iter_mut().for_each(Node::clear_spans);
        for block in &mut network.blocks {
            if let Some(conflict) = &mut block.conflict {
                conflict.span = Span::default();
            }
        }
        network
    }
}
