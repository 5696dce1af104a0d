//! What code generation hands a layer definition, and what the definition gives back: each layer's own
//! `emit` (in `src/layers/`) turns its bound arguments into a field, a constructor and a forward step.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use crate::ir::Arg;

use super::types::{expr, Scope, Ty};
use super::CodegenError;

/// The Rust type an argument is wanted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// `usize`.
    Usize,
    /// `(usize, usize)`: an integer `k` becomes `(k, k)`.
    Pair,
    /// `f64`.
    Float,
    /// `bool`.
    Bool,
}

/// One layer call being generated.
pub(crate) struct EmitCx<'a> {
    /// The struct field that holds the layer (`conv`, `branch2_0`).
    pub field: &'a Ident,
    /// The builder of its tensors: `vb.pp("conv")`.
    pub vb: TokenStream,
    /// Its input channel count (features, for a flat input), as a Rust expression.
    pub in_channels: TokenStream,
    /// The error context naming the `.arch` line: `.at(SOURCE, 9)`.
    pub at: TokenStream,
    pub(crate) args: &'a [Arg],
    pub(crate) scope: &'a Scope<'a>,
}

impl EmitCx<'_> {
    /// The argument `name` as the source wrote it, translated to Rust; `None` when the call leaves it to its
    /// default (generated code never restates a default).
    pub fn given(&self, name: &str, want: Want) -> Result<Option<TokenStream>, CodegenError> {
        let Some(written) = self
            .args
            .iter()
            .find(|arg| arg.name == name)
            .and_then(|arg| arg.expr.as_ref())
        else {
            return Ok(None);
        };
        let ty = match want {
            Want::Usize => Ty::Int,
            Want::Pair => Ty::Pair,
            Want::Float => Ty::Float,
            Want::Bool => Ty::Bool,
        };
        expr(written, self.scope, ty).map(Some)
    }

    /// A required argument (the checker has made sure it is there).
    pub fn required(&self, name: &str, want: Want) -> Result<TokenStream, CodegenError> {
        self.given(name, want)?.ok_or_else(|| {
            CodegenError::new(
                crate::diagnostic::Span::default(),
                format!("internal: no argument `{name}`"),
            )
        })
    }

    /// The config-struct fields for the arguments the source wrote, each `(argument, field, type)`, in order.
    pub fn fields(
        &self,
        wanted: &[(&str, &'static str, Want)],
    ) -> Result<Vec<(&'static str, TokenStream)>, CodegenError> {
        let mut fields = Vec::new();
        for (argument, field, want) in wanted {
            if let Some(value) = self.given(argument, *want)? {
                fields.push((*field, value));
            }
        }
        Ok(fields)
    }

    /// Whether the source wrote the argument `name`.
    pub fn wrote(&self, name: &str) -> bool {
        self.args
            .iter()
            .any(|arg| arg.name == name && arg.expr.is_some())
    }

    /// The `pad` argument, if written, as a `Pad2d` for a window of `kernel` and `dilation`.
    pub fn padding(
        &self,
        kernel: &TokenStream,
        dilation: &TokenStream,
    ) -> Result<Option<TokenStream>, CodegenError> {
        let Some(written) = self
            .args
            .iter()
            .find(|arg| arg.name == "pad")
            .and_then(|arg| arg.expr.as_ref())
        else {
            return Ok(None);
        };
        if written.kind == crate::ast::ExprKind::Same {
            return Ok(Some(quote!(nn::Pad2d::same(#kernel, #dilation)?)));
        }
        let ty = super::types::expr_ty(written, self.scope)?;
        let value = expr(written, self.scope, ty)?;
        Ok(Some(match ty {
            Ty::Int => quote!(nn::Pad2d::uniform(#value)),
            Ty::Pair => quote!(nn::Pad2d::from(#value)),
            _ => quote!(nn::Pad::from(#value).resolve(#kernel, #dilation)?),
        }))
    }

    /// `Name { a: x, b: y, ..Default::default() }`, or `Name::default()` when nothing was written; `all` is
    /// how many fields the struct has (when the source wrote each of them, there is no `..Default::default()`).
    pub fn config(
        &self,
        name: TokenStream,
        fields: Vec<(&str, TokenStream)>,
        all: usize,
    ) -> TokenStream {
        if fields.is_empty() {
            return quote!(#name::default());
        }
        if fields.len() == all {
            let fields = fields.into_iter().map(|(field, value)| {
                let field = proc_macro2::Ident::new(field, proc_macro2::Span::call_site());
                quote!(#field: #value)
            });
            return quote!(#name { #(#fields),* });
        }
        let fields = fields.into_iter().map(|(field, value)| {
            let field = proc_macro2::Ident::new(field, proc_macro2::Span::call_site());
            quote!(#field: #value)
        });
        quote!(#name { #(#fields,)* ..Default::default() })
    }
}

/// What a layer generates.
pub(crate) struct Emitted {
    /// A layer with state: the field's type and the expression that builds it (it may use `?`).
    pub field: Option<(TokenStream, TokenStream)>,
    /// How the forward pass applies it to `xs`.
    pub forward: Forward,
    /// The node the runtime's inference plan runs for it (`Op::Conv(&self.conv)`).
    pub plan: TokenStream,
    /// Where its output channel count comes from.
    pub channels: Channels,
}

/// How a layer's output channel count (features, for a flat output) follows from its call, for the channel
/// expressions code generation follows through a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    /// The input's.
    Input,
    /// The value of this argument (`out` of `conv2d`).
    Argument(&'static str),
    /// The input's divided by the value of this argument (`chunks` of `chunk`).
    DividedBy(&'static str),
    /// All of the input's values: channels × height × width.
    Flattened,
}

/// One forward step, written as a method call on the running tensor.
pub(crate) enum Forward {
    /// `.apply(&self.field)?`
    Apply,
    /// `.apply_t(&self.field, train)?`
    ApplyT,
    /// A tensor method, e.g. `.relu()` (the `?` is added).
    Method(TokenStream),
    /// Nothing: the identity.
    Nothing,
}

impl Emitted {
    /// A stateful layer applied with `Module::forward`.
    pub fn module(ty: TokenStream, ctor: TokenStream, plan: TokenStream) -> Emitted {
        Emitted {
            field: Some((ty, ctor)),
            forward: Forward::Apply,
            plan,
            channels: Channels::Input,
        }
    }

    /// The same, with its output channels coming from `channels`.
    pub fn with_channels(self, channels: Channels) -> Emitted {
        Emitted { channels, ..self }
    }

    /// A layer without state: a method on the tensor.
    pub fn method(call: TokenStream, plan: TokenStream) -> Emitted {
        Emitted {
            field: None,
            forward: Forward::Method(call),
            plan,
            channels: Channels::Input,
        }
    }
}
