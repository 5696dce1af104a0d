//! `conv2d`: PyTorch's `nn.Conv2d`, with per-axis kernel, stride, padding (or `same`) and dilation, groups and
//! an optional bias.

use quote::quote;

use crate::codegen::layer::{Channels, EmitCx, Emitted, Want};
use crate::codegen::CodegenError;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Padding, Shape, Value};
use archc_shape::{same_padding, spell_out};

use super::args::{both_axes, pad_arg, require_map, ArgDefault::*, Args, PadArg};
use super::{hw_text, label_hw, Builtin, Hw, Layer, LayerDef, Param, Resize};

/// A 2-D convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    pub in_channels: u64,
    pub out_channels: u64,
    pub kernel: Hw,
    pub stride: Hw,
    pub padding: Padding,
    pub dilation: Hw,
    pub groups: u64,
    pub bias: bool,
}

impl LayerDef for Conv2d {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "conv2d",
        summary: "2-D convolution (PyTorch `nn.Conv2d`); in-channels are inferred; `pad = same` keeps the size.",
        params: &[
            Param {
                name: "out",
                default: Required,
            },
            Param {
                name: "kernel",
                default: Required,
            },
            Param {
                name: "stride",
                default: Value(Value::Int(1)),
            },
            Param {
                name: "pad",
                default: Value(Value::Int(0)),
            },
            Param {
                name: "dilation",
                default: Value(Value::Int(1)),
            },
            Param {
                name: "groups",
                default: Value(Value::Int(1)),
            },
            Param {
                name: "bias",
                default: Value(Value::Bool(true)),
            },
        ],
        resolve,
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let (c, h, w) = require_map(args, input)?;
        if c % self.groups != 0 {
            let span = args.span("groups");
            args.report(
                Diagnostic::error(
                    Code::InvalidGroups,
                    span,
                    format!(
                        "{c} input channels cannot be split into {} groups",
                        self.groups
                    ),
                )
                .with_label(format!("{c} % {} = {}", self.groups, c % self.groups)),
            );
            return None;
        }
        let p = self.padding;
        let axes = [
            (
                h,
                self.kernel[0],
                self.stride[0],
                (p.top, p.bottom),
                self.dilation[0],
            ),
            (
                w,
                self.kernel[1],
                self.stride[1],
                (p.left, p.right),
                self.dilation[1],
            ),
        ];
        let [out_h, out_w] = both_axes(args, axes, None);
        let output = Shape::Map {
            c: self.out_channels,
            h: out_h?,
            w: out_w?,
        };
        Some((
            Conv2d {
                in_channels: c,
                ..self
            },
            output,
        ))
    }

    fn has_weights(&self) -> bool {
        true
    }

    fn cost(&self, output: Shape) -> (u64, u64) {
        let spatial = match output {
            Shape::Map { h, w, .. } => h.saturating_mul(w),
            Shape::Flat { .. } => 1,
        };
        let per_output = (self.in_channels / self.groups)
            .saturating_mul(self.kernel[0])
            .saturating_mul(self.kernel[1]);
        let weights = self.out_channels.saturating_mul(per_output);
        let bias = if self.bias { self.out_channels } else { 0 };
        (
            weights.saturating_add(bias),
            weights.saturating_mul(spatial),
        )
    }

    fn settings(&self) -> String {
        let p = self.padding;
        let pad = p.as_symmetric().map_or_else(
            || format!("[{}, {}, {}, {}]", p.top, p.bottom, p.left, p.right),
            hw_text,
        );
        format!(
            "conv2d: {} → {} channels, kernel {}, stride {}, pad {pad}, dilation {}, groups {}, bias {}",
            self.in_channels,
            self.out_channels,
            hw_text(self.kernel),
            hw_text(self.stride),
            hw_text(self.dilation),
            self.groups,
            self.bias
        )
    }

    fn label(&self) -> String {
        let mut text = format!(
            "conv {}×{}/{}",
            self.kernel[0],
            self.kernel[1],
            label_hw(self.stride)
        );
        if self.dilation != [1, 1] {
            text += &format!(" dilation {}", label_hw(self.dilation));
        }
        if self.groups != 1 {
            text += &format!(" groups {}", self.groups);
        }
        text
    }

    fn formula(&self, input: Shape, output: Shape) -> Option<String> {
        let p = self.padding;
        spatial_formula(
            input,
            output,
            self.kernel,
            self.stride,
            [(p.top, p.bottom), (p.left, p.right)],
            self.dilation,
            false,
        )
    }

    fn keep_size_hint(&self, input: Shape, expected: Shape) -> Option<String> {
        let (Shape::Map { h, w, .. }, Shape::Map { h: eh, w: ew, .. }) = (input, expected) else {
            return None;
        };
        let (kernel, stride, dilation) = (self.kernel, self.stride, self.dilation);
        if (eh, ew) != (h, w) {
            return None;
        }
        if stride != [1, 1] {
            return Some(format!(
                "stride {} shrinks the map; with stride 1 (and padding {}) a {}×{} kernel keeps {h}×{w}",
                stride[0],
                dilation[0] * (kernel[0] - 1) / 2,
                kernel[0],
                kernel[1]
            ));
        }
        if kernel[0] % 2 == 1 && kernel[1] % 2 == 1 && dilation == [1, 1] {
            let keep = [(kernel[0] - 1) / 2, (kernel[1] - 1) / 2];
            if self.padding.as_symmetric() != Some(keep) {
                return Some(format!(
                    "a {}×{} kernel keeps {h}×{w} with `pad = {}` (or `pad = same`)",
                    kernel[0],
                    kernel[1],
                    hw_text(keep)
                ));
            }
        }
        None
    }

    fn resize(&self) -> Resize {
        Resize::Strided(self.stride)
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let in_channels = &cx.in_channels;
        let out = cx.required("out", Want::Usize)?;
        let kernel = cx.required("kernel", Want::Pair)?;
        let dilation = cx
            .given("dilation", Want::Pair)?
            .unwrap_or_else(|| quote!((1, 1)));
        let mut fields = Vec::new();
        if let Some(stride) = cx.given("stride", Want::Pair)? {
            fields.push(("stride", stride));
        }
        if let Some(padding) = cx.padding(&kernel, &dilation)? {
            fields.push(("padding", padding));
        }
        if cx.wrote("dilation") {
            fields.push(("dilation", dilation));
        }
        if let Some(groups) = cx.given("groups", Want::Usize)? {
            fields.push(("groups", groups));
        }
        if let Some(bias) = cx.given("bias", Want::Bool)? {
            fields.push(("bias", bias));
        }
        let config = cx.config(quote!(nn::Conv2dConfig), fields, 5);
        let (vb, at, field) = (&cx.vb, &cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::Conv2d),
            quote!(nn::conv2d(#in_channels, #out, #kernel, #config, #vb)#at?),
            quote!(Op::Conv(&self.#field)),
        )
        .with_channels(Channels::Argument("out")))
    }
}

fn resolve(args: &mut Args<'_>) -> Option<Layer> {
    let out_channels = args.int("out", 1);
    let kernel = args.hw("kernel", 1);
    let stride = args.hw("stride", 1);
    let pad = pad_arg(args);
    let dilation = args.hw("dilation", 1);
    let groups = args.int("groups", 1);
    let bias = args.bool("bias");
    let (kernel, stride, dilation) = (kernel?, stride?, dilation?);
    let padding = match pad? {
        PadArg::Explicit(hw) => Padding::symmetric(hw),
        PadArg::Same => {
            let same = |axis: usize| same_padding(kernel[axis], stride[axis], dilation[axis]);
            // Arguments in range leave one way to fail: a stride above 1.
            let (Ok((top, bottom)), Ok((left, right))) = (same(0), same(1)) else {
                let span = args.span("pad");
                let stride_span = args.span("stride");
                args.report(
                    Diagnostic::error(Code::InvalidArgument, span, "`pad = same` needs stride 1")
                        .with_label("`same` here")
                        .with_secondary(stride_span, format!("stride {}", hw_text(stride)))
                        .with_note(
                            "with a stride above 1 no padding keeps the input size, as in PyTorch",
                        ),
                );
                return None;
            };
            Padding {
                top,
                bottom,
                left,
                right,
            }
        }
    };
    let (out_channels, groups) = (out_channels?, groups?);
    if out_channels % groups != 0 {
        let span = args.span("groups");
        args.report(
            Diagnostic::error(
                Code::InvalidGroups,
                span,
                format!("{out_channels} output channels cannot be split into {groups} groups"),
            )
            .with_label(format!(
                "{out_channels} % {groups} = {}",
                out_channels % groups
            )),
        );
        return None;
    }
    let conv = Conv2d {
        in_channels: 0,
        out_channels,
        kernel,
        stride,
        padding,
        dilation,
        groups,
        bias: bias?,
    };
    (!args.failed).then_some(Layer::Conv2d(conv))
}

/// The output-size arithmetic of a windowed layer, both axes, for notes: `height and width: floor((56 + 2×1 −
/// 3) / 2) + 1 = 28`.
pub(crate) fn spatial_formula(
    input: Shape,
    output: Shape,
    kernel: Hw,
    stride: Hw,
    pads: [(u64, u64); 2],
    dilation: Hw,
    ceil: bool,
) -> Option<String> {
    let (Shape::Map { h, w, .. }, Shape::Map { h: oh, w: ow, .. }) = (input, output) else {
        return None;
    };
    let height = spell_out(h, kernel[0], stride[0], pads[0], dilation[0], ceil, oh);
    if (h, kernel[0], stride[0], pads[0], dilation[0])
        == (w, kernel[1], stride[1], pads[1], dilation[1])
    {
        Some(format!("height and width: {height}"))
    } else {
        let width = spell_out(w, kernel[1], stride[1], pads[1], dilation[1], ceil, ow);
        Some(format!("height: {height}; width: {width}"))
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
            "conv2d(64, 7, stride = 2, pad = 3, bias = false)",
            "[3, 224, 224]",
            r#"fn layer() {
    let layer: nn::Conv2d = nn::conv2d(
            in_channels,
            64,
            (7, 7),
            nn::Conv2dConfig {
                stride: (2, 2),
                padding: nn::Pad2d::uniform(3),
                bias: false,
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Conv(&self.layer);
}
"#,
        ),
        (
            "conv2d(p, [1, 7], pad = [0, 3])",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::Conv2d = nn::conv2d(
            in_channels,
            p,
            (1, 7),
            nn::Conv2dConfig {
                padding: nn::Pad2d::from((0, 3)),
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Conv(&self.layer);
}
"#,
        ),
        (
            "conv2d(16, 3, pad = same, dilation = 2, groups = 4)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::Conv2d = nn::conv2d(
            in_channels,
            16,
            (3, 3),
            nn::Conv2dConfig {
                padding: nn::Pad2d::same((3, 3), (2, 2))?,
                dilation: (2, 2),
                groups: 4,
                ..Default::default()
            },
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Conv(&self.layer);
}
"#,
        ),
        (
            "conv2d(16, 1)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::Conv2d = nn::conv2d(
            in_channels,
            16,
            (1, 1),
            nn::Conv2dConfig::default(),
            vb.pp("layer"),
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Conv(&self.layer);
}
"#,
        ),
    ];
}
