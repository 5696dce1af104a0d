//! The abstract syntax tree: what a source file says, before any checking.
//!
//! Every node carries a [`Span`] (byte offsets into its source), so later stages can point at the text that
//! caused a diagnostic. Both front ends, the `.arch` parser ([`crate::syntax`]) and the YAML loader
//! ([`crate::yaml`]), produce this tree; everything after them is shared.

use crate::diagnostic::Span;

pub mod visit;

/// A parsed source file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub items: Vec<Definition>,
}

/// Whether a definition is a reusable block or a network that code is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    Block,
    Network,
}

/// `block NAME(PARAMS) { ... }` or `network NAME(PARAMS) { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub kind: DefinitionKind,
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Statement>,
    pub span: Span,
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A parameter of a block or network, with its default value if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

/// One statement of a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `input [C, H, W]`
    Input(ShapeExpr),
    /// `NAME = CHAIN : [..]`, `CHAIN`, or `side NAME = CHAIN from SOURCE`.
    Layer(LayerStatement),
    /// `for VAR in START..END { STATEMENTS }`
    For(ForLoop),
}

impl Statement {
    /// The source text of the statement.
    pub fn span(&self) -> Span {
        match self {
            Statement::Input(shape) => shape.span,
            Statement::Layer(layer) => layer.span,
            Statement::For(for_loop) => for_loop.span,
        }
    }
}

/// `for VAR in START..END { STATEMENTS }`: the statements once per value of `var`, which their names (`{i}`)
/// and arguments may read.
#[derive(Debug, Clone, PartialEq)]
pub struct ForLoop {
    pub var: Ident,
    pub start: Expr,
    pub end: Expr,
    /// `..=`: the end is included.
    pub inclusive: bool,
    pub body: Vec<Statement>,
    pub span: Span,
}

/// A part of a statement's name: text, or `{e}`, a value filled in (from a loop variable or a parameter).
#[derive(Debug, Clone, PartialEq)]
pub enum NamePart {
    Text(String),
    Value(Expr),
}

/// A chain of operations, optionally named, optionally with a declared output shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStatement {
    /// The name as written (`denselayer{i}` for a templated one).
    pub name: Option<Ident>,
    /// The name's parts when it has `{e}` holes to fill; empty for a plain name.
    pub template: Vec<NamePart>,
    /// `Some(source)` for a training-only side output (`side NAME = ... from SOURCE`).
    pub side_from: Option<Ident>,
    pub chain: Vec<Op>,
    pub declared: Option<ShapeExpr>,
    pub span: Span,
}

/// One element of a chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A built-in layer or a block, with arguments.
    Call(Call),
    /// `concat { ... }`, `add { ... }` or `mul { ... }`.
    Group(Group),
    /// `{ STATEMENTS }`
    Sequence(Sequence),
}

/// `{ STATEMENTS }`: statements applied in order as one operation; their names sit under the enclosing
/// statement's name, or at the enclosing level when it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub body: Vec<Statement>,
    pub span: Span,
}

impl Op {
    /// The source text this operation spans.
    pub fn span(&self) -> Span {
        match self {
            Op::Call(call) => call.span,
            Op::Group(group) => group.span,
            Op::Sequence(sequence) => sequence.span,
        }
    }
}

/// `callee(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `..block(args)`: the block's statements are named at the enclosing level.
    pub spread: bool,
    pub callee: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// A positional (`name: None`) or keyword argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// How a group combines its branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// Concatenate along the channel axis.
    Concat,
    /// Element-wise sum.
    Add,
    /// Element-wise product; a `[C, 1, 1]` branch is broadcast over the map (squeeze-and-excitation).
    Mul,
}

impl GroupKind {
    /// The keyword that introduces this group.
    pub fn keyword(self) -> &'static str {
        match self {
            GroupKind::Concat => "concat",
            GroupKind::Add => "add",
            GroupKind::Mul => "mul",
        }
    }
}

/// `concat { branch = ... }`: branches that all read the group's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub kind: GroupKind,
    pub keyword_span: Span,
    pub branches: Vec<LayerStatement>,
    pub span: Span,
}

/// `[e, e, e]`: a shape with the batch axis left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeExpr {
    pub dims: Vec<Expr>,
    pub span: Span,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// The forms an expression takes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// An integer literal too large for `i64` keeps its text so the checker can report it.
    Int(Result<i64, String>),
    Float(f64),
    Bool(bool),
    /// The `same` padding keyword.
    Same,
    /// A parameter reference.
    Name(String),
    /// `[a, b]`
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Resets every span in the expression (for comparing trees from two front ends).
    pub fn clear_spans(&mut self) {
        self.span = Span::default();
        match &mut self.kind {
            ExprKind::List(items) => items.iter_mut().for_each(Expr::clear_spans),
            ExprKind::Neg(operand) => operand.clear_spans(),
            ExprKind::Binary(_, lhs, rhs) => {
                lhs.clear_spans();
                rhs.clear_spans();
            }
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Same
            | ExprKind::Name(_) => {}
        }
    }
}
