//! Rust types of parameters, and parameter expressions translated to Rust.
//!
//! Generated models take their network parameters at run time (`Config`), so parameter arithmetic becomes Rust
//! arithmetic. Each parameter gets one Rust type, inferred from the values the checker saw for it.

use proc_macro2::{Ident, Span as RustSpan, TokenStream};
use quote::quote;

use crate::ast::{BinaryOp, Expr, ExprKind};

use super::CodegenError;

/// The type of a parameter or expression ([`crate::ir::ValueType`]), as code generation names it.
pub(crate) use crate::ir::ValueType as Ty;

/// The Rust type of values of type `ty`.
pub(crate) fn rust_type(ty: Ty) -> TokenStream {
    match ty {
        Ty::Int => quote!(usize),
        Ty::Float => quote!(f64),
        Ty::Bool => quote!(bool),
        Ty::Pair => quote!((usize, usize)),
        Ty::Pad => quote!(nn::Pad),
    }
}

/// Rust keywords that cannot be used as plain identifiers.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "type", "unsafe", "use", "where", "while", "abstract",
    "become", "box", "do", "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized",
    "virtual", "yield",
];

/// Names the generated code gives its own locals, parameters and fields: `vb`, `cfg`, `xs`, `train`,
/// `in_channels`, `logits`, `plan`, `options`.
fn is_generated_local(name: &str) -> bool {
    matches!(
        name,
        "vb" | "cfg" | "xs" | "train" | "in_channels" | "logits" | "plan" | "options"
    )
}

/// A Rust identifier for a name from the source: raw (`r#type`) for keywords; `self`-like names and the names
/// of generated locals get a `_` suffix, so a parameter or statement can never shadow them.
pub(crate) fn rust_ident(name: &str) -> Ident {
    let snake = snake_case(name);
    let name = snake.as_str();
    match name {
        "self" | "Self" | "super" | "crate" | "_" => {
            Ident::new(&format!("{name}_"), RustSpan::call_site())
        }
        _ if is_generated_local(name) => Ident::new(&format!("{name}_"), RustSpan::call_site()),
        _ if KEYWORDS.contains(&name) => Ident::new_raw(name, RustSpan::call_site()),
        // PyTorch's `Sequential` indices, `0 = conv2d(...)`.
        _ if name.starts_with(|c: char| c.is_ascii_digit()) => {
            Ident::new(&format!("layer{name}"), RustSpan::call_site())
        }
        _ => Ident::new(name, RustSpan::call_site()),
    }
}

/// A name in Rust's case for values and fields: `AuxLogits` → `aux_logits`, `Mixed_5b` → `mixed_5b`
/// (torchvision's Inception-v3 names its modules so). Weights keep the name as written.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            if previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
        previous = Some(ch);
    }
    out
}

/// `inception_aux` → `InceptionAux`.
pub(crate) fn type_ident(name: &str) -> Ident {
    let mut out = String::new();
    let mut upper = true;
    for ch in name.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'B');
    }
    // A block may not take the name of a type the generated module defines or imports.
    if GENERATED_TYPES.contains(&out.as_str()) {
        out.push_str("Block");
    }
    // Camel case is no keyword (`Self` is taken care of above).
    Ident::new(&out, RustSpan::call_site())
}

/// The type names every generated module defines or imports.
const GENERATED_TYPES: &[&str] = &[
    "Model",
    "Config",
    "Outputs",
    "Tensor",
    "VarBuilder",
    "Result",
    "Module",
    "At",
    "ModuleT",
    "Op",
    "Self",
];

/// The name standing for a block's input channel count in channel expressions: not a name the source can write.
pub(crate) const BLOCK_INPUT: &str = "#in";

/// The name a block's body reads its input's channel count by (unless a parameter takes it), as the source
/// writes it: `conv2d(in_channels / 2, 1)`.
pub(crate) const INPUT_CHANNELS: &str = "in_channels";

/// The prefix of a name standing for a local integer of the generated code (a loop variable, a loop's running
/// channel count): `#local:i` is `i`.
pub(crate) const LOCAL: &str = "#local:";

/// Parameter names and types in scope while translating expressions.
pub(crate) struct Scope<'a> {
    pub params: &'a [(String, Ty)],
    /// Whether the parameters are the network's, read from `cfg`.
    pub config: bool,
}

/// The type of an expression, given the parameters' types.
pub(crate) fn expr_ty(expr: &Expr, scope: &Scope<'_>) -> Result<Ty, CodegenError> {
    Ok(match &expr.kind {
        ExprKind::Int(_) => Ty::Int,
        ExprKind::Float(_) => Ty::Float,
        ExprKind::Bool(_) => Ty::Bool,
        ExprKind::Same => Ty::Pad,
        ExprKind::List(_) => Ty::Pair,
        ExprKind::Name(name) if name == BLOCK_INPUT || name.starts_with(LOCAL) => Ty::Int,
        ExprKind::Name(name) if reads_input_channels(name, scope) => Ty::Int,
        ExprKind::Name(name) => scope
            .params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, ty)| *ty)
            .ok_or_else(|| CodegenError::new(expr.span, format!("unknown parameter `{name}`")))?,
        ExprKind::Neg(operand) => expr_ty(operand, scope)?,
        ExprKind::Binary(_, lhs, rhs) => match (expr_ty(lhs, scope)?, expr_ty(rhs, scope)?) {
            (Ty::Int, Ty::Int) => Ty::Int,
            (Ty::Int | Ty::Float, Ty::Int | Ty::Float) => Ty::Float,
            _ => {
                return Err(CodegenError::new(
                    expr.span,
                    "arithmetic on a pair or `same` parameter cannot be generated",
                ))
            }
        },
    })
}

/// Whether `name` is a block's input channel count: [`INPUT_CHANNELS`] where no parameter takes the name.
fn reads_input_channels(name: &str, scope: &Scope<'_>) -> bool {
    name == INPUT_CHANNELS && !scope.config && !scope.params.iter().any(|(n, _)| n == name)
}

/// How tightly a generated Rust expression binds, so that parentheses are written only where Rust needs them:
/// `(a + b) / 2 + c`, not `(((a + b) / 2) + c)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    /// `a + b`, `a - b`.
    Sum,
    /// `a * b`, `a / b`, `a % b`.
    Product,
    /// A literal, a name, a call, a parenthesised expression.
    Atom,
}

/// Translates an expression to Rust, converted to type `want`.
pub(crate) fn expr(expr_: &Expr, scope: &Scope<'_>, want: Ty) -> Result<TokenStream, CodegenError> {
    typed_expr(expr_, scope, want).map(|(tokens, _)| tokens)
}

/// [`expr`], with how tightly the result binds.
fn typed_expr(
    expr_: &Expr,
    scope: &Scope<'_>,
    want: Ty,
) -> Result<(TokenStream, Prec), CodegenError> {
    let have = expr_ty(expr_, scope)?;
    let (tokens, prec) = raw_expr(expr_, scope)?;
    coerce(tokens, prec, have, want).ok_or_else(|| {
        CodegenError::new(
            expr_.span,
            format!("a value of type {have:?} is used where {want:?} is needed"),
        )
    })
}

fn coerce(tokens: TokenStream, prec: Prec, have: Ty, want: Ty) -> Option<(TokenStream, Prec)> {
    // An integer literal where a float is wanted is written as a float literal: `2.0`, not `2 as f64`.
    if (have, want) == (Ty::Int, Ty::Float) {
        if let Ok(value) = tokens.to_string().parse::<u64>() {
            let literal = proc_macro2::Literal::f64_unsuffixed(value as f64);
            return Some((quote!(#literal), Prec::Atom));
        }
    }
    Some(match (have, want) {
        (a, b) if a == b => (tokens, prec),
        // `as` binds tighter than any arithmetic: `(a + b) as f64`, and `a * b as f64` would cast `b` alone.
        (Ty::Int, Ty::Float) => {
            let operand = parenthesized(tokens, prec, Prec::Atom);
            (quote!(#operand as f64), Prec::Product)
        }
        (Ty::Int, Ty::Pair) => (quote!((#tokens, #tokens)), Prec::Atom),
        (Ty::Int | Ty::Pair, Ty::Pad) => (quote!(nn::Pad::from(#tokens)), Prec::Atom),
        _ => return None,
    })
}

impl Prec {
    /// The next level up: what the right operand of a left-associative operator must bind at.
    fn tighter(self) -> Prec {
        match self {
            Prec::Sum => Prec::Product,
            Prec::Product | Prec::Atom => Prec::Atom,
        }
    }
}

/// `tokens` in parentheses if they bind less tightly than `needed`.
fn parenthesized(tokens: TokenStream, prec: Prec, needed: Prec) -> TokenStream {
    if prec < needed {
        quote!((#tokens))
    } else {
        tokens
    }
}

/// Whether an expression is a literal (nonzero, for a divisor), so plain Rust arithmetic cannot fail on it.
fn is_nonzero_literal(expr: &Expr) -> bool {
    matches!(expr.kind, ExprKind::Int(Ok(v)) if v != 0)
}

fn raw_expr(expr_: &Expr, scope: &Scope<'_>) -> Result<(TokenStream, Prec), CodegenError> {
    let atom = match &expr_.kind {
        ExprKind::Int(Ok(v)) => {
            let value = u64::try_from(*v).map_err(|_| {
                CodegenError::new(expr_.span, "a negative size cannot be generated")
            })?;
            let lit = proc_macro2::Literal::u64_unsuffixed(value);
            quote!(#lit)
        }
        ExprKind::Int(Err(text)) => {
            return Err(CodegenError::new(
                expr_.span,
                format!("integer `{text}` is too large"),
            ))
        }
        ExprKind::Float(v) => {
            let lit = proc_macro2::Literal::f64_unsuffixed(*v);
            quote!(#lit)
        }
        ExprKind::Bool(true) => quote!(true),
        ExprKind::Bool(false) => quote!(false),
        ExprKind::Same => quote!(nn::Pad::Same),
        ExprKind::Name(name) if name == BLOCK_INPUT || reads_input_channels(name, scope) => {
            quote!(in_channels)
        }
        // A local, or a field of one: `stage2.out_channels`.
        ExprKind::Name(name) if name.starts_with(LOCAL) => {
            let path = name[LOCAL.len()..].split('.').map(rust_ident);
            quote!(#(#path).*)
        }
        ExprKind::Name(name) => {
            let ident = rust_ident(name);
            if scope.config {
                quote!(cfg.#ident)
            } else {
                quote!(#ident)
            }
        }
        ExprKind::List(items) => {
            let items = items
                .iter()
                .map(|item| expr(item, scope, Ty::Int))
                .collect::<Result<Vec<_>, _>>()?;
            quote!((#(#items),*))
        }
        ExprKind::Neg(operand) => {
            if expr_ty(operand, scope)? != Ty::Float {
                return Err(CodegenError::new(
                    expr_.span,
                    "a negative size cannot be generated",
                ));
            }
            let (inner, prec) = raw_expr(operand, scope)?;
            let inner = parenthesized(inner, prec, Prec::Atom);
            quote!(-#inner)
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let ty = expr_ty(expr_, scope)?;
            let (a, a_prec) = typed_expr(lhs, scope, ty)?;
            let (b, b_prec) = typed_expr(rhs, scope, ty)?;
            // Sizes are unsigned: a difference that could go negative, or a division by a parameter that
            // could be zero, is an error at construction rather than a panic.
            let checked = match (op, ty) {
                (BinaryOp::Sub, Ty::Int) => Some(quote!(nn::sub(#a, #b)?)),
                (BinaryOp::Div, Ty::Int) if !is_nonzero_literal(rhs) => {
                    Some(quote!(nn::div(#a, #b)?))
                }
                (BinaryOp::Rem, Ty::Int) if !is_nonzero_literal(rhs) => {
                    Some(quote!(nn::rem(#a, #b)?))
                }
                _ => None,
            };
            if let Some(call) = checked {
                return Ok((call, Prec::Atom));
            }
            let prec = match op {
                BinaryOp::Add | BinaryOp::Sub => Prec::Sum,
                BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Prec::Product,
            };
            // Left-associative: the left operand may bind as tightly as the operator, the right must bind
            // tighter (`a - (b - c)`, `a / (b * c)`).
            let a = parenthesized(a, a_prec, prec);
            let b = parenthesized(b, b_prec, prec.tighter());
            let symbol: TokenStream = op.symbol().parse().expect("an operator");
            return Ok((quote!(#a #symbol #b), prec));
        }
    };
    Ok((atom, Prec::Atom))
}

#[cfg(test)]
mod tests {
    use super::type_ident;

    #[test]
    fn names_become_snake_case_fields() {
        use super::rust_ident;
        assert_eq!(rust_ident("AuxLogits").to_string(), "aux_logits");
        assert_eq!(rust_ident("Mixed_5b").to_string(), "mixed_5b");
        assert_eq!(rust_ident("Conv2d_1a_3x3").to_string(), "conv2d_1a_3x3");
        assert_eq!(rust_ident("fc1").to_string(), "fc1");
        assert_eq!(rust_ident("Type").to_string(), "r#type");
        assert_eq!(rust_ident("0").to_string(), "layer0");
    }

    #[test]
    fn arithmetic_has_parentheses_only_where_rust_needs_them() {
        use super::{expr, Scope, Ty};
        let params: Vec<(String, Ty)> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| (n.to_string(), Ty::Int))
            .collect();
        let scope = Scope {
            params: &params,
            config: false,
        };
        for (source, rust) in [
            ("(a + 6 * b) / 2 + c", "(a + 6 * b) / 2 + c"),
            ("a * b + c * d", "a * b + c * d"),
            ("(a + b) * (c + d)", "(a + b) * (c + d)"),
            ("a + (b + c)", "a + (b + c)"),
            ("a * (b * c)", "a * (b * c)"),
            ("a * b / 2", "a * b / 2"),
            ("a / (b * 2)", "nn::div(a, b * 2)?"),
            ("a % 3 * 2", "a % 3 * 2"),
            // Differences and divisions by a parameter are checked calls, whole operands of what is around them.
            ("(a - b) * 2", "nn::sub(a, b)? * 2"),
            ("a / b + 1", "nn::div(a, b)? + 1"),
        ] {
            let parsed = crate::syntax::parse_expr_at(source, 0).unwrap();
            let tokens = expr(&parsed, &scope, Ty::Int).unwrap();
            let written: syn::Expr = syn::parse2(tokens).unwrap();
            let want: syn::Expr = syn::parse_str(rust).unwrap();
            assert_eq!(
                quote::quote!(#written).to_string(),
                quote::quote!(#want).to_string(),
                "{source}"
            );
        }
        // `as` binds tighter than arithmetic: an integer sum used as a float is cast whole.
        let params = vec![("a".to_string(), Ty::Int), ("b".to_string(), Ty::Int)];
        let scope = Scope {
            params: &params,
            config: false,
        };
        let parsed = crate::syntax::parse_expr_at("a + b", 0).unwrap();
        assert_eq!(
            expr(&parsed, &scope, Ty::Float).unwrap().to_string(),
            quote::quote!((a + b) as f64).to_string()
        );
    }

    #[test]
    fn block_types_never_shadow_the_generated_ones() {
        assert_eq!(type_ident("inception_aux").to_string(), "InceptionAux");
        assert_eq!(type_ident("model").to_string(), "ModelBlock");
        assert_eq!(type_ident("Tensor").to_string(), "TensorBlock");
        assert_eq!(type_ident("module_t").to_string(), "ModuleTBlock");
    }
}
