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
///
/// Only the recursion is here; everything else is out of line, so that each level of a deep expression costs
/// a small stack frame (the syntax limits bound the depth; this keeps it well within a thread's stack).
pub(crate) fn eval(expr: &Expr, env: &Env<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
    match &expr.kind {
        ExprKind::Binary(op, lhs, rhs) => {
            let left = eval(lhs, env, diagnostics);
            let right = eval(rhs, env, diagnostics);
            binary(*op, left?, right?, expr.span, diagnostics)
        }
        ExprKind::Neg(operand) => {
            let value = eval(operand, env, diagnostics)?;
            negate(value, expr.span, diagnostics)
        }
        ExprKind::List(items) => eval_list(expr.span, items, env, diagnostics),
        _ => eval_leaf(expr, env, diagnostics),
    }
}

#[inline(never)]
fn eval_leaf(expr: &Expr, env: &Env<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
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
                    diagnostic = diagnostic.with_help(format!(
                        "a parameter with a similar name exists: `{similar}`"
                    ));
                } else {
                    // A block's `in_channels` is no parameter; it is still suggested for a near miss.
                    let params: Vec<&str> =
                        names.into_iter().filter(|n| *n != "in_channels").collect();
                    if !params.is_empty() {
                        diagnostic = diagnostic
                            .with_note(format!("parameters in scope: {}", params.join(", ")));
                    }
                }
                diagnostics.push(diagnostic);
                None
            }
        },
        ExprKind::List(_) | ExprKind::Neg(_) | ExprKind::Binary(..) => {
            unreachable!("handled by `eval`")
        }
    }
}

#[inline(never)]
fn eval_list(
    span: Span,
    items: &[Expr],
    env: &Env<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
    let values: Vec<Option<Value>> = items
        .iter()
        .map(|item| eval(item, env, diagnostics))
        .collect();
    match values.as_slice() {
        [Some(Value::Int(h)), Some(Value::Int(w))] => Some(Value::Pair(*h, *w)),
        _ if values.iter().any(Option::is_none) => None,
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::ExpressionType,
                    span,
                    "a list must be a pair of integers `[height, width]`",
                )
                .with_label(format!("{} item(s) here", items.len())),
            );
            None
        }
    }
}

#[inline(never)]
fn negate(value: Value, span: Span, diagnostics: &mut Vec<Diagnostic>) -> Option<Value> {
    match value {
        Value::Int(v) => match v.checked_neg() {
            Some(v) => Some(Value::Int(v)),
            None => {
                diagnostics.push(overflow(span, format!("-({v})")));
                None
            }
        },
        Value::Float(v) => Some(Value::Float(-v)),
        other => {
            diagnostics.push(
                Diagnostic::error(
                    Code::ExpressionType,
                    span,
                    format!("cannot negate {}", a_type(other)),
                )
                .with_label("not a number"),
            );
            None
        }
    }
}

fn overflow(span: Span, arithmetic: String) -> Diagnostic {
    Diagnostic::error(Code::Overflow, span, "integer overflow")
        .with_label("this overflows")
        .with_note(format!("{arithmetic} does not fit in a 64-bit integer"))
}

#[inline(never)]
fn binary(
    op: BinaryOp,
    left: Value,
    right: Value,
    span: Span,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
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
                    Diagnostic::error(
                        Code::InvalidArithmetic,
                        span,
                        "arithmetic gives a non-finite number",
                    )
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
                    format!(
                        "cannot apply `{symbol}` to {} and {}",
                        a_type(left),
                        a_type(right)
                    ),
                )
                .with_label("arithmetic needs numbers"),
            );
            None
        }
    }
}

/// The value's type with its article, for messages: `an integer`, `a bool`.
pub(crate) fn a_type(value: Value) -> String {
    let name = value.type_name();
    match name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {name}"),
        _ => format!("a {name}"),
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
        .map(|candidate| {
            let distance = if name.eq_ignore_ascii_case(candidate) {
                0
            } else {
                edit_distance(name, candidate)
            };
            (distance, *candidate)
        })
        .filter(|(distance, candidate)| *distance <= (name.len().max(candidate.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edits (insert, delete, substitute, or swap two neighbours: `bais` → `bias` is one) between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the optimal-string-alignment table: two back (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_a_swap_as_one_edit() {
        assert_eq!(edit_distance("bais", "bias"), 1);
        assert_eq!(edit_distance("incepton", "inception"), 1);
        assert_eq!(edit_distance("conv3d", "conv2d"), 1);
        assert_eq!(edit_distance("", "relu"), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn did_you_mean_picks_close_names_only() {
        assert_eq!(did_you_mean("bais", &["out", "bias"]), Some("bias"));
        assert_eq!(
            did_you_mean("incepton", &["inception", "inception_aux"]),
            Some("inception")
        );
        assert_eq!(did_you_mean("xyz", &["out", "bias"]), None);
        // Short names need an exact-but-one match: `p` is not a typo of `pad`.
        assert_eq!(did_you_mean("p", &["pad"]), None);
    }
}
