//! `linear` (PyTorch's `nn.Linear`) and `flatten`, which turns a map into the flat vector `linear` reads.

use quote::quote;

use crate::codegen::layer::{Channels, EmitCx, Emitted, Want};
use crate::codegen::CodegenError;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Shape, Value};

use super::args::{ArgDefault::*, Args};
use super::{Builtin, Layer, LayerDef, Param, Resize};

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub in_features: u64,
    pub out_features: u64,
    pub bias: bool,
}

/// `[C, H, W]` to `[C·H·W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten;

impl LayerDef for Linear {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "linear",
        summary:
            "fully connected layer (PyTorch's nn.Linear) on a flat input; in-features are inferred",
        params: &[
            Param {
                name: "out",
                default: Required,
            },
            Param {
                name: "bias",
                default: Value(Value::Bool(true)),
            },
        ],
        resolve: |args| {
            let out_features = args.int("out", 1);
            let bias = args.bool("bias");
            let linear = Linear {
                in_features: 0,
                out_features: out_features?,
                bias: bias?,
            };
            (!args.failed).then_some(Layer::Linear(linear))
        },
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        match input {
            Shape::Flat { features } => Some((
                Linear {
                    in_features: features,
                    ..self
                },
                Shape::Flat {
                    features: self.out_features,
                },
            )),
            Shape::Map { c, h, w } => {
                let mut diagnostic = Diagnostic::error(
                    Code::WrongInputRank,
                    args.call_span,
                    format!("linear needs a flat input, but its input is the feature map {input}"),
                )
                .with_label("applied to a [C, H, W] map")
                .with_help("insert `flatten` before `linear`");
                if (h, w) != (1, 1) {
                    diagnostic = diagnostic.with_note(format!(
                        "flattening gives {c} × {h} × {w} = {} features, not {c}: the map is not 1×1",
                        c.saturating_mul(h).saturating_mul(w)
                    ));
                }
                args.report(diagnostic);
                None
            }
        }
    }

    fn has_weights(&self) -> bool {
        true
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        let weights = self.in_features.saturating_mul(self.out_features);
        let bias = if self.bias { self.out_features } else { 0 };
        (weights.saturating_add(bias), weights)
    }

    fn label(&self) -> String {
        format!("linear {}→{}", self.in_features, self.out_features)
    }

    fn settings(&self) -> String {
        format!(
            "linear: {} → {} features, bias {}",
            self.in_features, self.out_features, self.bias
        )
    }

    fn formula(&self, _input: Shape, _output: Shape) -> Option<String> {
        None
    }

    fn keep_size_hint(&self, _input: Shape, _expected: Shape) -> Option<String> {
        None
    }

    fn resize(&self) -> Resize {
        Resize::Keeps
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let out = cx.required("out", Want::Usize)?;
        let (in_features, vb, at, field) = (&cx.in_channels, &cx.vb, &cx.at, cx.field);
        // candle's idiom: `linear` and `linear_no_bias`.
        let ctor = match cx.given("bias", Want::Bool)? {
            None => quote!(nn::linear(#in_features, #out, #vb)#at?),
            Some(bias) if bias.to_string() == "false" => {
                quote!(nn::linear_no_bias(#in_features, #out, #vb)#at?)
            }
            Some(bias) => quote!(nn::linear_b(#in_features, #out, #bias, #vb)#at?),
        };
        Ok(
            Emitted::module(quote!(nn::Linear), ctor, quote!(Op::Module(&self.#field)))
                .with_channels(Channels::Argument("out")),
        )
    }
}

impl LayerDef for Flatten {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "flatten",
        summary: "Flattens `[C, H, W]` into `[C·H·W]` features.",
        params: &[],
        resolve: |_| Some(Layer::Flatten(Flatten)),
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        match input.elements() {
            Some(features) => Some((self, Shape::Flat { features })),
            None => {
                args.report(
                    Diagnostic::error(
                        Code::Overflow,
                        args.call_span,
                        format!("flattening {input} overflows"),
                    )
                    .with_label("too many elements"),
                );
                None
            }
        }
    }

    fn has_weights(&self) -> bool {
        false
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        (0, 0)
    }

    fn label(&self) -> String {
        "flatten".to_string()
    }

    super::no_settings!();

    fn formula(&self, _input: Shape, _output: Shape) -> Option<String> {
        None
    }

    fn keep_size_hint(&self, _input: Shape, _expected: Shape) -> Option<String> {
        None
    }

    fn resize(&self) -> Resize {
        Resize::Keeps
    }

    fn emit(&self, _cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        Ok(
            Emitted::method(quote!(flatten_from(1)), quote!(Op::Flatten))
                .with_channels(Channels::Flattened),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::assert_emitted;

    /// What each call generates (the layer in a block with parameters `p` and `q`), reviewed by hand.
    #[test]
    fn emitted_code() {
        assert_emitted(CASES);
    }

    const CASES: &[(&str, &str, &str)] = &[
        (
            "linear(p)",
            "[8]",
            r#"fn layer() {
    let layer: nn::Linear = nn::linear(in_channels, p, vb.pp("layer")).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "linear(10, bias = false)",
            "[8]",
            r#"fn layer() {
    let layer: nn::Linear = nn::linear_no_bias(in_channels, 10, vb.pp("layer"))
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "flatten",
            "[8, 2, 2]",
            r#"fn layer() {
    let ys = xs.flatten_from(1)?;
    let op = Op::Flatten;
}
"#,
        ),
    ];
}
