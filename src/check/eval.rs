//! Expression evaluation: parameter arithmetic with checked integers.

use crate::ast::{BinaryOp, Expr, ExprKind};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::ir::Value;

/// One parameter in scope.
#[derive(Debug, Clone)]
pub(crate) struct Binding<'a> {
    pub name: &'a str,
    /// `None` when the value could not be computed (an error was already reported).
    pub value: Option<Value>,
}

/// The parameters visible while checking one block instance or network.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env<'a> {
    pub bindings: Vec<Binding<'a>>,
}

/// Outcome of looking a name up.
enum Lookup {
    Found(Option<Value>),
    Missing,
}

impl<'a> Env<'a> {
    fn lookup(&self, name: &str) -> Lookup {
        match self.bindings.iter().rev().find(|b| b.name == name) {
            Some(binding) => Lookup::Found(binding.value),
            None => Lookup::Missing,
        }
    }
}

/// Evaluates `expr` in `env`. Errors are pushed to `diagnostics`; `None` means the value is unknown.
pub(crate) fn eval(expr: &Expr, env: &Env<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
    match &expr.kind {
        ExprKind::Int(Ok(value)) => Some(Value::Int(*value)),
        ExprKind::Int(Err(text)) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::Overflow,
                    expr.span,
                    format!("integer literal `{text}` does not fit in 64 bits"),
                )
                .with_label("too large")
                .with_note(format!("the largest integer is {}", i64::MAX)),
            );
            None
        }
        ExprKind::Float(value) if value.is_finite() => Some(Value::Float(*value)),
        ExprKind::Float(_) => {
            diagnostics.push(
                Diagnostic::error(Code::Overflow, expr.span, "float literal is out of range")
                    .with_label("not a finite number"),
            );
            None
        }
        ExprKind::Bool(value) => Some(Value::Bool(*value)),
        ExprKind::Same => Some(Value::Same),
        ExprKind::Name(name) => match env.lookup(name) {
            Lookup::Found(value) => value,
            Lookup::Missing => {
                let mut diagnostic = Diagnostic::error(
                    Code::UnknownName,
                    expr.span,
                    format!("unknown parameter `{name}`"),
                )
                .with_label("not a parameter of this block or network");
                let names: Vec<&str> = env.bindings.iter().map(|b| b.name).collect();
                if let Some(similar) = did_you_mean(name, &names) {
                    diagnostic = diagnostic.with_help(format!("a parameter with a similar name exists: `{similar}`"));
                } else if !names.is_empty() {
                    diagnostic = diagnostic.with_note(format!("parameters in scope: {}", names.join(", ")));
                }
                diagnostics.push(diagnostic);
                None
            }
        },
        ExprKind::List(items) => {
            let values: Vec<Option<Value>> = items.iter().map(|item| eval(item, env, diagnostics)).collect();
            match values.as_slice() {
                [Some(Value::Int(h)), Some(Value::Int(w))] => Some(Value::Pair(*h, *w)),
                _ if values.iter().any(Option::is_none) => None,
                _ => {
                    diagnostics.push(
                        Diagnostic::error(
                            Code::ExpressionType,
                            expr.span,
                            "a list must be a pair of integers `[height, width]`",
                        )
                        .with_label(format!("{} item(s) here", items.len())),
                    );
                    None
                }
            }
        }
        ExprKind::Neg(operand) => match eval(operand, env, diagnostics)? {
            Value::Int(v) => match v.checked_neg() {
                Some(v) => Some(Value::Int(v)),
                None => {
                    diagnostics.push(overflow(expr.span, format!("-({v})")));
                    None
                }
            },
            Value::Float(v) => Some(Value::Float(-v)),
            other => {
                diagnostics.push(
                    Diagnostic::error(Code::ExpressionType, expr.span, format!("cannot negate a {}", other.type_name()))
                        .with_label("not a number"),
                );
                None
            }
        },
        ExprKind::Binary(op, lhs, rhs) => {
            let left = eval(lhs, env, diagnostics);
            let right = eval(rhs, env, diagnostics);
            binary(*op, left?, right?, expr.span, diagnostics)
        }
    }
}

fn overflow(span: Span, arithmetic: String) -> Diagnostic {
    Diagnostic::error(Code::Overflow, span, "integer overflow")
        .with_label("this overflows")
        .with_note(format!("{arithmetic} does not fit in a 64-bit integer"))
}

fn binary(op: BinaryOp, left: Value, right: Value, span: Span, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
    let symbol = op.symbol();
    match (left, right) {
        (Value::Int(a), Value::Int(b)) => {
            if matches!(op, BinaryOp::Div | BinaryOp::Rem) && b == 0 {
                diagnostics.push(
                    Diagnostic::error(Code::InvalidArithmetic, span, "division by zero")
                        .with_label(format!("{a} {symbol} 0")),
                );
                return None;
            }
            let result = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div => a.checked_div_euclid(b),
                BinaryOp::Rem => a.checked_rem_euclid(b),
            };
            match result {
                Some(value) => Some(Value::Int(value)),
                None => {
                    diagnostics.push(overflow(span, format!("{a} {symbol} {b}")));
                    None
                }
            }
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (a, b) = (as_f64(left), as_f64(right));
            let value = match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Rem => a % b,
            };
            if value.is_finite() {
                Some(Value::Float(value))
            } else {
                diagnostics.push(
                    Diagnostic::error(Code::InvalidArithmetic, span, "arithmetic gives a non-finite number")
                        .with_label(format!("{a} {symbol} {b} = {value}")),
                );
                None
            }
        }
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::ExpressionType,
                    span,
                    format!("cannot apply `{symbol}` to a {} and a {}", left.type_name(), right.type_name()),
                )
                .with_label("arithmetic needs numbers"),
            );
            None
        }
    }
}

fn as_f64(value: Value) -> f64 {
    match value {
        Value::Int(v) => v as f64,
        Value::Float(v) => v,
        _ => f64::NAN,
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'n>(name: &str, candidates: &[&'n str]) -> Option<&'n str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (name.len().max(candidate.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
