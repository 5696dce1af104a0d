//! A read-only walk over the AST, after gleam's `compiler-core/src/ast/visit.rs`.
//!
//! [`Visit`] has one method per node kind. Each default implementation calls the free function of the same
//! name, which visits the node's children in source order, so an analysis overrides only the nodes it cares
//! about and calls the free function from its override to keep descending:
//!
//! ```
//! use archc::ast::visit::{self, Visit};
//! use archc::ast::{Expr, ExprKind};
//!
//! /// Every parameter name an expression reads.
//! #[derive(Default)]
//! struct Names<'ast>(Vec<&'ast str>);
//!
//! impl<'ast> Visit<'ast> for Names<'ast> {
//!     fn visit_expr(&mut self, expr: &'ast Expr) {
//!         if let ExprKind::Name(name) = &expr.kind {
//!             self.0.push(name);
//!         }
//!         visit::visit_expr(self, expr);
//!     }
//! }
//!
//! let file = archc::syntax::parse("network n(c) {\n  input [c, 8, 8]\n  conv2d(c * 2, 3)\n}\n").unwrap();
//! let mut names = Names::default();
//! names.visit_file(&file);
//! assert_eq!(names.0, ["c", "c"]);
//! ```
//!
//! A walk that builds a new tree (a fold) or rewrites one in place is not a visit; those stay hand-written.

use super::{
    Arg, Call, Definition, Expr, ExprKind, File, ForLoop, Group, LayerStatement, NamePart, Op,
    Param, Sequence, ShapeExpr, Statement,
};

/// A read-only visit of the AST. Every method recurses by default; override the nodes an analysis needs.
pub trait Visit<'ast> {
    fn visit_file(&mut self, file: &'ast File) {
        visit_file(self, file);
    }

    fn visit_definition(&mut self, definition: &'ast Definition) {
        visit_definition(self, definition);
    }

    fn visit_param(&mut self, param: &'ast Param) {
        visit_param(self, param);
    }

    fn visit_statement(&mut self, statement: &'ast Statement) {
        visit_statement(self, statement);
    }

    fn visit_layer_statement(&mut self, statement: &'ast LayerStatement) {
        visit_layer_statement(self, statement);
    }

    fn visit_for_loop(&mut self, for_loop: &'ast ForLoop) {
        visit_for_loop(self, for_loop);
    }

    fn visit_op(&mut self, op: &'ast Op) {
        visit_op(self, op);
    }

    fn visit_call(&mut self, call: &'ast Call) {
        visit_call(self, call);
    }

    fn visit_arg(&mut self, arg: &'ast Arg) {
        visit_arg(self, arg);
    }

    fn visit_group(&mut self, group: &'ast Group) {
        visit_group(self, group);
    }

    fn visit_sequence(&mut self, sequence: &'ast Sequence) {
        visit_sequence(self, sequence);
    }

    fn visit_shape_expr(&mut self, shape: &'ast ShapeExpr) {
        visit_shape_expr(self, shape);
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        visit_expr(self, expr);
    }
}

/// Visits each definition in order.
pub fn visit_file<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, file: &'ast File) {
    for definition in &file.items {
        v.visit_definition(definition);
    }
}

/// Visits the parameters, then the body.
pub fn visit_definition<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, definition: &'ast Definition) {
    for param in &definition.params {
        v.visit_param(param);
    }
    for statement in &definition.body {
        v.visit_statement(statement);
    }
}

/// Visits the default value, if there is one.
pub fn visit_param<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, param: &'ast Param) {
    if let Some(default) = &param.default {
        v.visit_expr(default);
    }
}

/// Visits an input's shape, a layer statement or a loop.
pub fn visit_statement<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, statement: &'ast Statement) {
    match statement {
        Statement::Input(shape) => v.visit_shape_expr(shape),
        Statement::Layer(layer) => v.visit_layer_statement(layer),
        Statement::For(for_loop) => v.visit_for_loop(for_loop),
    }
}

/// Visits the range's bounds, then the body.
pub fn visit_for_loop<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, for_loop: &'ast ForLoop) {
    v.visit_expr(&for_loop.start);
    v.visit_expr(&for_loop.end);
    for statement in &for_loop.body {
        v.visit_statement(statement);
    }
}

/// Visits the values in the name, the chain's operations in order, then the declared shape.
pub fn visit_layer_statement<'ast, V: Visit<'ast> + ?Sized>(
    v: &mut V,
    statement: &'ast LayerStatement,
) {
    for part in &statement.template {
        if let NamePart::Value(expr) = part {
            v.visit_expr(expr);
        }
    }
    for op in &statement.chain {
        v.visit_op(op);
    }
    if let Some(declared) = &statement.declared {
        v.visit_shape_expr(declared);
    }
}

/// Visits the call, the group or the sequence.
pub fn visit_op<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, op: &'ast Op) {
    match op {
        Op::Call(call) => v.visit_call(call),
        Op::Group(group) => v.visit_group(group),
        Op::Sequence(sequence) => v.visit_sequence(sequence),
    }
}

/// Visits the statements in order.
pub fn visit_sequence<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, sequence: &'ast Sequence) {
    for statement in &sequence.body {
        v.visit_statement(statement);
    }
}

/// Visits the arguments in order.
pub fn visit_call<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, call: &'ast Call) {
    for arg in &call.args {
        v.visit_arg(arg);
    }
}

/// Visits the argument's value.
pub fn visit_arg<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, arg: &'ast Arg) {
    v.visit_expr(&arg.value);
}

/// Visits the branches in order.
pub fn visit_group<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, group: &'ast Group) {
    for branch in &group.branches {
        v.visit_layer_statement(branch);
    }
}

/// Visits the dimensions in order.
pub fn visit_shape_expr<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, shape: &'ast ShapeExpr) {
    for dim in &shape.dims {
        v.visit_expr(dim);
    }
}

/// Visits the sub-expressions in order; a leaf has none.
pub fn visit_expr<'ast, V: Visit<'ast> + ?Sized>(v: &mut V, expr: &'ast Expr) {
    match &expr.kind {
        ExprKind::List(items) => items.iter().for_each(|item| v.visit_expr(item)),
        ExprKind::Neg(operand) => v.visit_expr(operand),
        ExprKind::Binary(_, lhs, rhs) => {
            v.visit_expr(lhs);
            v.visit_expr(rhs);
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Same
        | ExprKind::Name(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the kind of each node visited, to check that the defaults reach everything in source order.
    #[derive(Default)]
    struct Trace(Vec<String>);

    impl<'ast> Visit<'ast> for Trace {
        fn visit_definition(&mut self, definition: &'ast Definition) {
            self.0.push(format!("definition {}", definition.name.name));
            visit_definition(self, definition);
        }
        fn visit_param(&mut self, param: &'ast Param) {
            self.0.push(format!("param {}", param.name.name));
            visit_param(self, param);
        }
        fn visit_layer_statement(&mut self, statement: &'ast LayerStatement) {
            let name = statement.name.as_ref().map_or("_", |n| n.name.as_str());
            self.0.push(format!("statement {name}"));
            visit_layer_statement(self, statement);
        }
        fn visit_call(&mut self, call: &'ast Call) {
            self.0.push(format!("call {}", call.callee.name));
            visit_call(self, call);
        }
        fn visit_arg(&mut self, arg: &'ast Arg) {
            self.0.push("arg".to_string());
            visit_arg(self, arg);
        }
        fn visit_group(&mut self, group: &'ast Group) {
            self.0.push(format!("group {}", group.kind.keyword()));
            visit_group(self, group);
        }
        fn visit_shape_expr(&mut self, shape: &'ast ShapeExpr) {
            self.0.push("shape".to_string());
            visit_shape_expr(self, shape);
        }
        fn visit_expr(&mut self, expr: &'ast Expr) {
            if let ExprKind::Name(name) = &expr.kind {
                self.0.push(format!("name {name}"));
            }
            visit_expr(self, expr);
        }
    }

    #[test]
    fn defaults_visit_every_node_in_source_order() {
        let source = "block b(k = w) {\n  input [c, 4, 4]\n  conv2d(k)\n}\n\
                      network n(w, c = 3) {\n  input [c, 8, 8]\n  x = concat {\n    p = b(k = -w)\n    \
                      q = max_pool([w, 2 * c])\n  } : [c + w, 8, 8]\n}\n";
        let file = crate::syntax::parse(source).unwrap();
        let mut trace = Trace::default();
        trace.visit_file(&file);
        let expected = [
            "definition b",
            "param k",
            "name w",
            "shape",
            "name c",
            "statement _",
            "call conv2d",
            "arg",
            "name k",
            "definition n",
            "param w",
            "param c",
            "shape",
            "name c",
            "statement x",
            "group concat",
            "statement p",
            "call b",
            "arg",
            "name w",
            "statement q",
            "call max_pool",
            "arg",
            "name w",
            "name c",
            "shape",
            "name c",
            "name w",
        ];
        assert_eq!(trace.0, expected);
    }
}
