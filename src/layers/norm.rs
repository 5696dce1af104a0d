//! Normalisation: `batch_norm` (PyTorch's `nn.BatchNorm2d` on maps, `nn.BatchNorm1d` on flat vectors),
//! `layer_norm` (over the channels at each position: torchvision's `LayerNorm2d`, ConvNeXt's; `nn.LayerNorm` on
//! flat vectors) and `lrn` (`nn.LocalResponseNorm`, the paper GoogLeNet's).

use quote::quote;

use crate::codegen::layer::{Channels, EmitCx, Emitted, Want};
use crate::codegen::CodegenError;
use crate::ir::{Shape, Value};

use super::args::{require_map, ArgDefault::*, Args};
use super::{Builtin, Layer, LayerDef, Param, Resize};

/// Batch normalisation over channels.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub num_features: u64,
    pub eps: f64,
    pub momentum: f64,
    pub affine: bool,
}

/// Layer normalisation over the channels at each position.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    pub num_features: u64,
    pub eps: f64,
    pub affine: bool,
}

/// Local response normalisation across channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrn {
    pub size: u64,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl LayerDef for BatchNorm {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "batch_norm",
        summary: "Batch normalisation over the channels (`nn.BatchNorm2d`, or `BatchNorm1d` on a flat input).",
        params: &[
            Param { name: "eps", default: Value(Value::Float(1e-5)) },
            Param { name: "momentum", default: Value(Value::Float(0.1)) },
            Param { name: "affine", default: Value(Value::Bool(true)) },
        ],
        resolve: |args| {
            let eps = args.positive("eps");
            let momentum = args.float_in("momentum", 0.0, 1.0);
            let affine = args.bool("affine");
            let bn = BatchNorm {
                num_features: 0,
                eps: eps?,
                momentum: momentum?,
                affine: affine?,
            };
            (!args.failed).then_some(Layer::BatchNorm(bn))
        },
    }];

    fn infer(self, _args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let num_features = input.channels();
        Some((
            BatchNorm {
                num_features,
                ..self
            },
            input,
        ))
    }

    fn has_weights(&self) -> bool {
        // The running statistics are in the weight file even without the affine parameters.
        true
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        let params = if self.affine {
            2 * self.num_features
        } else {
            0
        };
        (params, 0)
    }

    fn label(&self) -> String {
        "batch_norm".to_string()
    }

    fn settings(&self) -> String {
        format!(
            "batch_norm: {} features, eps {:?}, momentum {:?}, affine {}",
            self.num_features, self.eps, self.momentum, self.affine
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
        let fields = cx.fields(&[
            ("eps", "eps", Want::Float),
            ("momentum", "momentum", Want::Float),
            ("affine", "affine", Want::Bool),
        ])?;
        let config = cx.config(quote!(nn::BatchNormConfig), fields, 3);
        let (features, vb, at, field) = (&cx.in_channels, &cx.vb, &cx.at, cx.field);
        Ok(Emitted {
            field: Some((
                quote!(nn::BatchNorm),
                quote!(nn::batch_norm(#features, #config, #vb)#at?),
            )),
            forward: crate::codegen::layer::Forward::ApplyT,
            plan: quote!(Op::BatchNorm(&self.#field)),
            channels: Channels::Input,
        })
    }
}

impl LayerDef for LayerNorm {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "layer_norm",
        summary:
            "Layer normalisation over the channels at each position (torchvision's `LayerNorm2d`, \
                  ConvNeXt's; `nn.LayerNorm` on a flat input).",
        params: &[
            Param {
                name: "eps",
                default: Value(Value::Float(1e-5)),
            },
            Param {
                name: "affine",
                default: Value(Value::Bool(true)),
            },
        ],
        resolve: |args| {
            let eps = args.positive("eps");
            let affine = args.bool("affine");
            let norm = LayerNorm {
                num_features: 0,
                eps: eps?,
                affine: affine?,
            };
            (!args.failed).then_some(Layer::LayerNorm(norm))
        },
    }];

    fn infer(self, _args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let num_features = input.channels();
        Some((
            LayerNorm {
                num_features,
                ..self
            },
            input,
        ))
    }

    fn has_weights(&self) -> bool {
        self.affine
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        let params = if self.affine {
            2 * self.num_features
        } else {
            0
        };
        (params, 0)
    }

    fn label(&self) -> String {
        "layer_norm".to_string()
    }

    fn settings(&self) -> String {
        format!(
            "layer_norm: {} channels, eps {:?}, affine {}",
            self.num_features, self.eps, self.affine
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
        let fields = cx.fields(&[
            ("eps", "eps", Want::Float),
            ("affine", "affine", Want::Bool),
        ])?;
        let config = cx.config(quote!(nn::LayerNormConfig), fields, 2);
        let (features, vb, at, field) = (&cx.in_channels, &cx.vb, &cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::LayerNorm),
            quote!(nn::layer_norm(#features, #config, #vb)#at?),
            quote!(Op::Module(&self.#field)),
        ))
    }
}

impl LayerDef for Lrn {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "lrn",
        summary: "Local response normalisation across channels (`nn.LocalResponseNorm`, AlexNet/GoogLeNet).",
        params: &[
            Param {
                name: "size",
                default: Required,
            },
            Param {
                name: "alpha",
                default: Value(Value::Float(1e-4)),
            },
            Param {
                name: "beta",
                default: Value(Value::Float(0.75)),
            },
            Param {
                name: "k",
                default: Value(Value::Float(1.0)),
            },
        ],
        resolve: |args| {
            let size = args.int("size", 1);
            let alpha = args.float("alpha");
            let beta = args.float("beta");
            let k = args.float("k");
            let lrn = Lrn {
                size: size?,
                alpha: alpha?,
                beta: beta?,
                k: k?,
            };
            (!args.failed).then_some(Layer::Lrn(lrn))
        },
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        require_map(args, input)?;
        Some((self, input))
    }

    fn has_weights(&self) -> bool {
        false
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        (0, 0)
    }

    fn label(&self) -> String {
        format!("lrn {}", self.size)
    }

    fn settings(&self) -> String {
        format!(
            "lrn: size {}, alpha {:?}, beta {:?}, k {:?}",
            self.size, self.alpha, self.beta, self.k
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
        let size = cx.required("size", Want::Usize)?;
        let fields = cx.fields(&[
            ("alpha", "alpha", Want::Float),
            ("beta", "beta", Want::Float),
            ("k", "k", Want::Float),
        ])?;
        let config = cx.config(quote!(nn::LrnConfig), fields, 3);
        let (at, field) = (&cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::Lrn),
            quote!(nn::lrn(#size, #config)#at?),
            quote!(Op::Module(&self.#field)),
        ))
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
            "batch_norm(eps = 0.001)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::BatchNorm = nn::batch_norm(
            in_channels,
            nn::BatchNormConfig {
                eps: 0.001,
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::BatchNorm(&self.layer);
}
"#,
        ),
        (
            "batch_norm(momentum = q, affine = false)",
            "[8]",
            r#"fn layer() {
    let layer: nn::BatchNorm = nn::batch_norm(
            in_channels,
            nn::BatchNormConfig {
                momentum: q,
                affine: false,
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::BatchNorm(&self.layer);
}
"#,
        ),
        (
            "layer_norm(eps = 0.000001)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::LayerNorm = nn::layer_norm(
            in_channels,
            nn::LayerNormConfig {
                eps: 0.000001,
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "lrn(5, alpha = 0.0001, beta = 0.75, k = 2)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::Lrn = nn::lrn(
            5,
            nn::LrnConfig {
                alpha: 0.0001,
                beta: 0.75,
                k: 2.0,
            },
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
    ];
}
