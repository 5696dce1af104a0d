//! Layers without parameters that keep the shape: `relu`, `softmax`, `dropout` and `identity`.

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
        Ok(Emitted::method(quote!(relu()), quote!(nn::Op::Relu)))
    }
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
            plan: quote!(nn::Op::Identity),
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
            quote!(nn::Op::Module(&nn::Softmax)),
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
            plan: quote!(nn::Op::Identity),
            channels: Channels::Input,
        })
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
            "relu",
            "[8]",
            r#"fn layer() {
    let ys = xs.relu()?;
    let op = nn::Op::Relu;
}
"#,
        ),
        (
            "dropout(q)",
            "[8]",
            r#"fn layer() {
    let layer: nn::Dropout = nn::dropout(q).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = nn::Op::Identity;
}
"#,
        ),
        (
            "dropout",
            "[8]",
            r#"fn layer() {
    let layer: nn::Dropout = nn::dropout(0.5).at(SOURCE, 2)?;
    let ys = xs.apply_t(&self.layer, train)?;
    let op = nn::Op::Identity;
}
"#,
        ),
        (
            "softmax",
            "[8]",
            r#"fn layer() {
    let ys = xs.apply(&nn::Softmax)?;
    let op = nn::Op::Module(&nn::Softmax);
}
"#,
        ),
        (
            "identity",
            "[8]",
            r#"fn layer() {
    let ys = xs;
    let op = nn::Op::Identity;
}
"#,
        ),
    ];
}
