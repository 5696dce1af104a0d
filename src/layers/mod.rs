//! The built-in layers, each defined once.
//!
//! Everything archc knows about a layer lives in its family's file (`conv.rs`, `pool.rs`, `norm.rs`,
//! `linear.rs`, `activation.rs`, `channel.rs`): its names and signature ([`Builtin`]), argument validation, shape rule and the
//! arithmetic spelled out in diagnostics, parameter and MAC counts, its graph label, and the Rust code generated
//! for it ([`LayerDef`]). The [`layers!`] list below registers each layer type once; from it come the IR's
//! [`Layer`] enum and every dispatch over it, so a layer that is not fully described does not compile.
//!
//! Adding a layer: a struct and its `impl LayerDef` in a family file, one line in the `layers!` list, and the
//! runtime type its generated code calls in `archc-runtime`.

mod activation;
mod args;
mod channel;
mod conv;
mod linear;
mod norm;
mod pool;

use std::fmt;

use crate::codegen::layer::{EmitCx, Emitted};
use crate::ir::Shape;

pub use activation::{
    Dropout, Gelu, Hardsigmoid, Hardswish, Identity, Relu, Relu6, Sigmoid, Silu, Softmax,
    StochasticDepth,
};
pub(crate) use args::{ArgDefault, Args, BoundArg};
pub use channel::{ChannelShuffle, Chunk};
pub use conv::Conv2d;
pub use linear::{Flatten, Linear};
pub use norm::{BatchNorm, LayerNorm, Lrn};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};

/// The largest size, stride, padding or channel count accepted (PyTorch's kernels index with 32-bit ints).
pub use archc_shape::MAX_DIM;

/// A (height, width) pair.
pub type Hw = [u64; 2];

/// How a layer's output height and width follow its input's, along each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The same size (element-wise layers, normalisation; flat vectors have no size to change).
    Keeps,
    /// Windows sliding with this stride `[h, w]`: wherever the layer is valid, `stride` more input rows give
    /// exactly one more output row (`floor((n + p - e) / s) + 1`, and PyTorch's ceil mode with its last-window
    /// rule, both step by one every `s`).
    Strided(Hw),
    /// An output size that does not depend on the input (adaptive pooling).
    Fixed,
}

/// One name a layer is called by in the language, with its signature.
pub struct Builtin {
    /// The name in `.arch` files (`conv2d`).
    pub name: &'static str,
    /// One line for `archc explain`, hovers and the README.
    pub summary: &'static str,
    /// The parameters in positional order, with their defaults.
    pub params: &'static [Param],
    /// Validates the arguments that do not depend on the input (`None` once something was reported).
    pub(crate) resolve: fn(&mut Args<'_>) -> Option<Layer>,
}

/// A parameter of a built-in layer.
pub struct Param {
    pub name: &'static str,
    pub(crate) default: ArgDefault,
}

impl Builtin {
    /// `conv2d(out, kernel, stride = 1, ...)`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                ArgDefault::Required => p.name.to_string(),
                ArgDefault::Value(value) => format!("{} = {value}", p.name),
                ArgDefault::Kernel => format!("{} = kernel", p.name),
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

impl fmt::Debug for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signature())
    }
}

/// What each layer type defines. The checker calls `infer` once the input shape is known; summary, graph,
/// diagnostics and code generation read the rest.
pub(crate) trait LayerDef: Sized {
    /// The names this layer is called by, with their signatures.
    const BUILTINS: &'static [Builtin];

    /// Completes the layer for its input (in-channel counts) and computes the output shape, reporting through
    /// `args` what does not fit.
    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)>;

    /// Whether the layer owns tensors in the weight file.
    fn has_weights(&self) -> bool;

    /// Learned parameters and multiply-accumulates per sample, given the output shape.
    fn cost(&self, output: Shape) -> (u64, u64);

    /// The kind with the settings that decide the shape, for graphs: `conv 3×3/1`.
    fn label(&self) -> String;

    /// Every resolved setting, for hovers: `conv2d: 192 → 64 channels, kernel 1, ...`.
    fn settings(&self) -> String;

    /// The spatial arithmetic written out with numbers, for notes under shape mismatches.
    fn formula(&self, input: Shape, output: Shape) -> Option<String>;

    /// How to change this layer so a map of `input` comes out as `expected`, when that is a known fix.
    fn keep_size_hint(&self, input: Shape, expected: Shape) -> Option<String>;

    /// How the output's height and width follow the input's, for finding every input size a network runs at
    /// ([`crate::check::input_size`]).
    fn resize(&self) -> Resize;

    /// The generated Rust: the field, its constructor and the forward step.
    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, crate::codegen::CodegenError>;
}

/// Registers the layer types: the [`Layer`] enum, its dispatch, and the list of built-in names.
macro_rules! layers {
    ($($variant:ident),* $(,)?) => {
        /// A built-in layer with every argument resolved and every in-channel count inferred.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Layer {
            $($variant($variant),)*
        }

        $(impl From<$variant> for Layer {
            fn from(layer: $variant) -> Layer {
                Layer::$variant(layer)
            }
        })*

        /// Every built-in layer name, in the order `archc explain` and error notes list them.
        pub fn builtins() -> impl Iterator<Item = &'static Builtin> {
            [$(<$variant as LayerDef>::BUILTINS),*].into_iter().flatten()
        }

        impl Layer {
            /// The name the layer was defined under (the first of its names).
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $(Layer::$variant(_) => <$variant as LayerDef>::BUILTINS[0].name,)*
                }
            }

            pub(crate) fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Layer, Shape)> {
                match self {
                    $(Layer::$variant(layer) => layer
                        .infer(args, input)
                        .map(|(layer, shape)| (Layer::$variant(layer), shape)),)*
                }
            }

            /// Whether the layer owns tensors in the weight file.
            pub fn has_weights(&self) -> bool {
                match self {
                    $(Layer::$variant(layer) => layer.has_weights(),)*
                }
            }

            /// Learned parameters and multiply-accumulates per sample, given the output shape.
            pub fn cost(&self, output: Shape) -> (u64, u64) {
                match self {
                    $(Layer::$variant(layer) => layer.cost(output),)*
                }
            }

            /// The kind with the settings that decide the shape: `conv 3×3/1`, `max_pool 3×3/2 ceil`.
            pub fn label(&self) -> String {
                match self {
                    $(Layer::$variant(layer) => layer.label(),)*
                }
            }

            /// Every resolved setting, for hovers: `conv2d: 192 → 64 channels, kernel 1, ...`.
            pub fn settings(&self) -> String {
                match self {
                    $(Layer::$variant(layer) => layer.settings(),)*
                }
            }

            /// The spatial arithmetic written out with numbers, for notes.
            pub fn formula(&self, input: Shape, output: Shape) -> Option<String> {
                match self {
                    $(Layer::$variant(layer) => layer.formula(input, output),)*
                }
            }

            /// A change that would make a map of `input` come out as `expected`.
            pub fn keep_size_hint(&self, input: Shape, expected: Shape) -> Option<String> {
                match self {
                    $(Layer::$variant(layer) => layer.keep_size_hint(input, expected),)*
                }
            }

            /// How the output's height and width follow the input's.
            pub fn resize(&self) -> Resize {
                match self {
                    $(Layer::$variant(layer) => layer.resize(),)*
                }
            }

            pub(crate) fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, crate::codegen::CodegenError> {
                match self {
                    $(Layer::$variant(layer) => layer.emit(cx),)*
                }
            }
        }
    };
}

layers! {
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    AdaptiveAvgPool2d,
    BatchNorm,
    LayerNorm,
    Lrn,
    Relu,
    Relu6,
    Silu,
    Sigmoid,
    Hardswish,
    Hardsigmoid,
    Gelu,
    Dropout,
    StochasticDepth,
    ChannelShuffle,
    Chunk,
    Flatten,
    Linear,
    Softmax,
    Identity,
}

/// The built-in called `name`, if there is one.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    builtins().find(|b| b.name == name)
}

/// `2` for `[2, 2]`, `[2, 3]` otherwise: a size as it would be written.
pub(crate) fn hw_text([h, w]: Hw) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("[{h}, {w}]")
    }
}

/// The settings of a layer without any: its name.
macro_rules! no_settings {
    () => {
        fn settings(&self) -> String {
            Self::BUILTINS[0].name.to_string()
        }
    };
}
pub(crate) use no_settings;

/// `2` for `[2, 2]`, `2×3` otherwise: a size in a graph label.
pub(crate) fn label_hw([h, w]: Hw) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("{h}×{w}")
    }
}

/// The errors of one layer call on an `input` map, each as (code, the text its caret points at, message,
/// label), for the tests of each layer's validation.
#[cfg(test)]
pub(crate) fn call_errors(call: &str, input: &str) -> Vec<(&'static str, String, String, String)> {
    let source = format!("network n {{\n    input {input}\n    x = {call}\n}}\n");
    let checked = crate::compile(crate::SourceKind::Arch, &source);
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let span = d.primary.span;
            (
                d.code.as_str(),
                source[span.start as usize..span.end as usize].to_string(),
                d.message.clone(),
                d.primary.message.clone(),
            )
        })
        .collect()
}

/// Checks what each `(call, input, expected)` generates, for the tests next to each layer's definition.
#[cfg(test)]
pub(crate) fn assert_emitted(cases: &[(&str, &str, &str)]) {
    for (call, input, expected) in cases {
        assert_eq!(emitted(call, input), *expected, "{call}");
    }
}

/// What one layer call generates, as text, for the tests next to each layer's definition: the field's type and
/// constructor, the forward step and the plan node.
#[cfg(test)]
pub(crate) fn emitted(call: &str, input: &str) -> String {
    use crate::codegen::layer::{EmitCx, Forward};
    use crate::codegen::types::{Scope, Ty};

    let source = format!("block b(p = 1, q = 0.5) {{\n    layer = {call}\n}}\nnetwork n {{\n    input {input}\n    x = b()\n}}\n");
    let checked = crate::compile(crate::SourceKind::Arch, &source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let crate::ir::NodeKind::Block { body, .. } = &checked.networks[0].body[0].kind else {
        panic!("a block instance");
    };
    let node = &body[0];
    let crate::ir::NodeKind::Layer(layer) = &node.kind else {
        panic!("a layer");
    };
    let params = [("p".to_string(), Ty::Int), ("q".to_string(), Ty::Float)];
    let scope = Scope {
        params: &params,
        config: false,
    };
    let field = quote::format_ident!("layer");
    let cx = EmitCx {
        field: &field,
        vb: quote::quote!(vb.pp("layer")),
        in_channels: quote::quote!(in_channels),
        at: quote::quote!(.at(SOURCE, 2)),
        args: &node.args,
        scope: &scope,
    };
    let emitted = layer.emit(&cx).unwrap();
    let forward = match emitted.forward {
        Forward::Apply => quote::quote!(xs.apply(&self.layer)?),
        Forward::ApplyT => quote::quote!(xs.apply_t(&self.layer, train)?),
        Forward::Method(call) => quote::quote!(xs.#call?),
        Forward::Nothing => quote::quote!(xs),
    };
    let field = emitted
        .field
        .map(|(ty, ctor)| quote::quote!(let layer: #ty = #ctor;));
    let plan = emitted.plan;
    let tokens = quote::quote! {
        fn layer() {
            #field
            let ys = #forward;
            let op = #plan;
        }
    };
    let file: syn::File = syn::parse2(tokens).unwrap();
    prettyplease::unparse(&file)
}
