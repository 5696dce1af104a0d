//! Layers without weights that keep the shape: `relu` and the other element-wise activations (`relu6`, `silu`,
//! `sigmoid`, `hardswish`, `hardsigmoid`, `gelu`), `softmax`, `dropout`, `stochastic_depth` and `identity`.

use quote::quote;

use crate::codegen::layer::{Channels, EmitCx, Emitted, Forward, Want};
use crate::codegen::CodegenError;
use crate::ir::{Shape, Value};

use super::args::{ArgDefault::*, Args};
use super::{Builtin, Layer, LayerDef, Param, Resize};

/// `max(x, 0)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Relu;

/// Softmax over channels (features).
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax;

/// Dropout: zeroes each value with probability `p` in training, the identity in inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    pub p: f64,
}

/// Passes its input through.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity;

/// torchvision's `StochasticDepth(p, "row")`: in training each sample is zeroed with probability `p` and the
/// others scaled by `1 / (1 - p)`; the identity in inference.
#[derive(Debug, Clone, PartialEq)]
pub struct StochasticDepth {
    pub p: f64,
}

/// The `LayerDef` items every shape-keeping layer without weights shares.
macro_rules! keeps_shape {
    () => {
        fn infer(self, _args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
            Some((self, input))
        }

        fn has_weights(&self) -> bool {
            false
        }

        fn cost(&self, _output: Shape) -> (u64, u64) {
            (0, 0)
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
    };
}

impl LayerDef for Relu {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "relu",
        summary: "Rectified linear unit, element-wise; the shape is unchanged.",
        params: &[],
        resolve: |_| Some(Layer::Relu(Relu)),
    }];

    keeps_shape!();

    fn label(&self) -> String {
        "relu".to_string()
    }

    super::no_settings!();

    fn emit(&self, _cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        Ok(Emitted::method(quote!(relu()), quote!(Op::Relu)))
    }
}

/// Element-wise activations other than `relu`, each run by candle's `Activation` of the same definition: the
/// struct, its `LayerDef`, its name and its summary.
macro_rules! element_wise {
    ($($(#[$doc:meta])* $layer:ident = $name:literal, $activation:ident, $summary:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $layer;

        impl LayerDef for $layer {
            const BUILTINS: &'static [Builtin] = &[Builtin {
                name: $name,
                summary: $summary,
                params: &[],
                resolve: |_| Some(Layer::$layer($layer)),
            }];

            keeps_shape!();

            fn label(&self) -> String {
                $name.to_string()
            }

            super::no_settings!();

            fn emit(&self, _cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
                Ok(Emitted::method(
                    quote!(apply(&nn::Activation::$activation)),
                    quote!(Op::Module(&nn::Activation::$activation)),
                ))
            }
        }
    )*};
}

element_wise! {
    /// `min(max(x, 0), 6)`: PyTorch's `ReLU6` (MobileNet-V2).
    Relu6 = "relu6", Relu6,
        "min(max(x, 0), 6), element-wise (PyTorch's `ReLU6`); the shape is unchanged.";
    /// `x · sigmoid(x)`: PyTorch's `SiLU` (EfficientNet's swish).
    Silu = "silu", Silu,
        "x · sigmoid(x), element-wise (PyTorch's `SiLU`); the shape is unchanged.";
    /// `1 / (1 + e^-x)`: PyTorch's `Sigmoid`.
    Sigmoid = "sigmoid", Sigmoid,
        "1 / (1 + e^-x), element-wise (PyTorch's `Sigmoid`); the shape is unchanged.";
    /// `x · relu6(x + 3) / 6`: PyTorch's `Hardswish` (MobileNet-V3).
    Hardswish = "hardswish", HardSwish,
        "x · relu6(x + 3) / 6, element-wise (PyTorch's `Hardswish`); the shape is unchanged.";
    /// `relu6(x + 3) / 6`: PyTorch's `Hardsigmoid` (MobileNet-V3's squeeze-excitation gate).
    Hardsigmoid = "hardsigmoid", HardSigmoid,
        "relu6(x + 3) / 6, element-wise (PyTorch's `Hardsigmoid`); the shape is unchanged.";
    /// `x · Φ(x)` with the exact normal CDF, `x / 2 · (1 + erf(x / √2))`: PyTorch's `GELU()` (`approximate='none'`),
    /// candle's `gelu_erf`, not the tanh approximation.
    Gelu = "gelu", Gelu,
        "x · Φ(x) with the exact erf (PyTorch's `GELU`, approximate='none'), element-wise; the shape is unchanged.";
}

impl LayerDef for Dropout {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "dropout",
        summary: "Dropout with probability `p` in training; the identity in inference.",
        params: &[Param {
            name: "p",
            default: Value(Value::Float(0.5)),
        }],
        resolve: |args| {
            let p = args.float_in("p", 0.0, 1.0)?;
            Some(Layer::Dropout(Dropout { p }))
        },
    }];

    keeps_shape!();

    fn label(&self) -> String {
        format!("dropout {}", self.p)
    }

    fn settings(&self) -> String {
        format!("dropout: p {:?}", self.p)
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let p = cx.given("p", Want::Float)?.unwrap_or_else(|| quote!(0.5));
        let at = &cx.at;
        Ok(Emitted {
            field: Some((quote!(nn::Dropout), quote!(nn::dropout(#p)#at?))),
            forward: Forward::ApplyT,
            plan: quote!(Op::Identity),
            channels: Channels::Input,
        })
    }
}

impl LayerDef for StochasticDepth {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "stochastic_depth",
        summary: "torchvision's `StochasticDepth(p, \"row\")`: in training each sample is zeroed with probability `p` \
            (survivors scaled by 1 / (1 - p)); the identity in inference.",
        params: &[Param {
            name: "p",
            default: Required,
        }],
        resolve: |args| {
            let p = args.float_below("p", 0.0, 1.0)?;
            Some(Layer::StochasticDepth(StochasticDepth { p }))
        },
    }];

    keeps_shape!();

    fn label(&self) -> String {
        format!("stochastic_depth {}", self.p)
    }

    fn settings(&self) -> String {
        format!(
            "stochastic_depth: p {:?}, per sample (mode \"row\")",
            self.p
        )
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let p = cx.required("p", Want::Float)?;
        let at = &cx.at;
        Ok(Emitted {
            field: Some((
                quote!(nn::StochasticDepth),
                quote!(nn::stochastic_depth(#p)#at?),
            )),
            forward: Forward::ApplyT,
            plan: quote!(Op::Identity),
            channels: Channels::Input,
        })
    }
}

impl LayerDef for Softmax {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "softmax",
        summary: "Softmax over the features.",
        params: &[],
        resolve: |_| Some(Layer::Softmax(Softmax)),
    }];

    keeps_shape!();

    fn label(&self) -> String {
        "softmax".to_string()
    }

    super::no_settings!();

    fn emit(&self, _cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        Ok(Emitted::method(
            quote!(apply(&nn::Softmax)),
            quote!(Op::Module(&nn::Softmax)),
        ))
    }
}

impl LayerDef for Identity {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "identity",
        summary: "Passes its input through unchanged.",
        params: &[],
        resolve: |_| Some(Layer::Identity(Identity)),
    }];

    keeps_shape!();

    fn label(&self) -> String {
        "identity".to_string()
    }

    super::no_settings!();

    fn emit(&self, _cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        Ok(Emitted {
            field: None,
            forward: Forward::Nothing,
            plan: quote!(Op::Identity),
            channels: Channels::Input,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::{assert_emitted, call_errors};

    #[test]
    fn stochastic_depth_p_is_below_1() {
        assert!(call_errors("stochastic_depth(0)", "[8, 4, 4]").is_empty());
        assert!(call_errors("stochastic_depth(0.99)", "[8]").is_empty());
        for (call, found) in [
            ("stochastic_depth(1)", "1"),
            ("stochastic_depth(-0.1)", "-0.1"),
        ] {
            let errors = call_errors(call, "[8, 4, 4]");
            assert_eq!(errors.len(), 1, "{call}: {errors:?}");
            let (code, at, message, _) = &errors[0];
            assert_eq!((*code, at.as_str()), ("E0115", found), "{call}");
            assert_eq!(
                message,
                &format!("`p` of stochastic_depth: must be at least 0 and below 1, found {found}")
            );
        }
        assert_eq!(call_errors("stochastic_depth(true)", "[8]")[0].0, "E0114");
        assert_eq!(call_errors("stochastic_depth", "[8]")[0].0, "E0111");
    }

    #[test]
    fn activations_take_no_arguments_keep_the_shape_and_cost_nothing() {
        for name in [
            "relu6",
            "silu",
            "sigmoid",
            "hardswish",
            "hardsigmoid",
            "gelu",
        ] {
            let source =
                format!("network n {{\n    input [8, 5, 3]\n    x = {name} : [8, 5, 3]\n}}\n");
            let checked = crate::compile(crate::SourceKind::Arch, &source);
            assert!(!checked.has_errors(), "{name}: {:?}", checked.diagnostics);
            let node = &checked.networks[0].body[0];
            let crate::ir::NodeKind::Layer(layer) = &node.kind else {
                panic!("a layer");
            };
            assert_eq!(
                (layer.label(), layer.settings(), layer.cost(node.output)),
                (name.to_string(), name.to_string(), (0, 0))
            );
            assert_eq!(
                call_errors(&format!("{name}(1)"), "[8]")[0].0,
                "E0110",
                "{name}"
            );
        }
    }

    /// What each call generates (the layer in a block with parameters `p` and `q`), reviewed by hand.
    #[test]
    fn emitted_code() {
        assert_emitted(CASES);
    }

    const CASES: &[(&str, &str, &str)] = &[
        (
            "relu",
            "[8]",
            r#"fn layer() {
    let ys = xs.relu()?;
    let op = Op::Relu;
}
"#,
        ),
        (
            "relu6",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::Relu6)?;
    let op = Op::Module(&nn::Activation::Relu6);
}
"#,
        ),
        (
            "silu",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::Silu)?;
    let op = Op::Module(&nn::Activation::Silu);
}
"#,
        ),
        (
            "sigmoid",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::Sigmoid)?;
    let op = Op::Module(&nn::Activation::Sigmoid);
}
"#,
        ),
        (
            "hardswish",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::HardSwish)?;
    let op = Op::Module(&nn::Activation::HardSwish);
}
"#,
        ),
        (
            "hardsigmoid",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::HardSigmoid)?;
    let op = Op::Module(&nn::Activation::HardSigmoid);
}
"#,
        ),
        (
            "gelu",
            "[8, 4, 4]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Activation::Gelu)?;
    let op = Op::Module(&nn::Activation::Gelu);
}
"#,
        ),
        (
            "stochastic_depth(q)",
            "[8, 4, 4]",
            r#"fn layer() {
    let layer: nn::StochasticDepth = nn::stochastic_depth(q).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::Identity;
}
"#,
        ),
        (
            "stochastic_depth(0.2)",
            "[8]",
            r#"fn layer() {
    let layer: nn::StochasticDepth = nn::stochastic_depth(0.2).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::Identity;
}
"#,
        ),
        (
            "dropout(q)",
            "[8]",
            r#"fn layer() {
    let layer: nn::Dropout = nn::dropout(q).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::Identity;
}
"#,
        ),
        (
            "dropout",
            "[8]",
            r#"fn layer() {
    let layer: nn::Dropout = nn::dropout(0.5).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = Op::Identity;
}
"#,
        ),
        (
            "softmax",
            "[8]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Softmax)?;
    let op = Op::Module(&nn::Softmax);
}
"#,
        ),
        (
            "identity",
            "[8]",
            r#"fn layer() {
    let ys = xs;
    let op = Op::Identity;
}
"#,
        ),
    ];
}
