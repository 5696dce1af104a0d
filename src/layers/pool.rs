//! Pooling: `max_pool` and `avg_pool` (PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d`, with padding, dilation and
//! ceil mode), `adaptive_avg_pool` and `global_avg_pool`.

use quote::quote;

use crate::codegen::layer::{EmitCx, Emitted, Want};
use crate::codegen::CodegenError;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Shape, Value};
use archc_shape::{pool_padding_limit, spell_out, windows_span};

use super::args::{both_axes, require_map, stride_or_kernel, ArgDefault::*, Args};
use super::conv::spatial_formula;
use super::{hw_text, label_hw, Builtin, Hw, Layer, LayerDef, Param, Resize};

/// Max pooling over windows of a feature map.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPool2d {
    pub kernel: Hw,
    pub stride: Hw,
    pub padding: Hw,
    pub dilation: Hw,
    pub ceil_mode: bool,
}

/// Average pooling over windows of a feature map.
#[derive(Debug, Clone, PartialEq)]
pub struct AvgPool2d {
    pub kernel: Hw,
    pub stride: Hw,
    pub padding: Hw,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

/// Average pooling to a fixed output size.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveAvgPool2d {
    pub output: Hw,
}

impl LayerDef for MaxPool2d {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "max_pool",
        summary: "2-D max pooling (`nn.MaxPool2d`); the stride defaults to the kernel; `ceil = true` is Caffe's rounding.",
        params: &[
            Param {
                name: "kernel",
                default: Required,
            },
            Param {
                name: "stride",
                default: Kernel,
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
                name: "ceil",
                default: Value(Value::Bool(false)),
            },
        ],
        resolve: |args| {
            let kernel = args.hw("kernel", 1);
            let stride = stride_or_kernel(args, kernel);
            let padding = args.hw("pad", 0);
            let dilation = args.hw("dilation", 1);
            let ceil_mode = args.bool("ceil");
            let (kernel, stride, padding, dilation) = (kernel?, stride?, padding?, dilation?);
            check_pool_padding(args, kernel, padding)?;
            let pool = MaxPool2d {
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode: ceil_mode?,
            };
            (!args.failed).then_some(Layer::MaxPool2d(pool))
        },
    }];

    windowed!("max_pool");

    fn settings(&self) -> String {
        format!(
            "max_pool: kernel {}, stride {}, pad {}, dilation {}, ceil {}",
            hw_text(self.kernel),
            hw_text(self.stride),
            hw_text(self.padding),
            hw_text(self.dilation),
            self.ceil_mode
        )
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let kernel = cx.required("kernel", Want::Pair)?;
        let mut fields = window_fields(cx)?;
        fields.extend(cx.fields(&[
            ("dilation", "dilation", Want::Pair),
            ("ceil", "ceil_mode", Want::Bool),
        ])?);
        let config = cx.config(quote!(nn::MaxPool2dConfig), fields, 4);
        let (at, field) = (&cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::MaxPool2d),
            quote!(nn::max_pool2d(#kernel, #config)#at?),
            quote!(Op::MaxPool(&self.#field)),
        ))
    }
}

impl LayerDef for AvgPool2d {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "avg_pool",
        summary: "2-D average pooling (`nn.AvgPool2d`); the stride defaults to the kernel.",
        params: &[
            Param {
                name: "kernel",
                default: Required,
            },
            Param {
                name: "stride",
                default: Kernel,
            },
            Param {
                name: "pad",
                default: Value(Value::Int(0)),
            },
            Param {
                name: "ceil",
                default: Value(Value::Bool(false)),
            },
            Param {
                name: "count_include_pad",
                default: Value(Value::Bool(true)),
            },
        ],
        resolve: |args| {
            let kernel = args.hw("kernel", 1);
            let stride = stride_or_kernel(args, kernel);
            let padding = args.hw("pad", 0);
            let ceil_mode = args.bool("ceil");
            let count_include_pad = args.bool("count_include_pad");
            let (kernel, stride, padding) = (kernel?, stride?, padding?);
            check_pool_padding(args, kernel, padding)?;
            let pool = AvgPool2d {
                kernel,
                stride,
                padding,
                ceil_mode: ceil_mode?,
                count_include_pad: count_include_pad?,
            };
            (!args.failed).then_some(Layer::AvgPool2d(pool))
        },
    }];

    windowed!("avg_pool");

    fn settings(&self) -> String {
        format!(
            "avg_pool: kernel {}, stride {}, pad {}, ceil {}, count_include_pad {}",
            hw_text(self.kernel),
            hw_text(self.stride),
            hw_text(self.padding),
            self.ceil_mode,
            self.count_include_pad
        )
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let kernel = cx.required("kernel", Want::Pair)?;
        let mut fields = window_fields(cx)?;
        fields.extend(cx.fields(&[
            ("ceil", "ceil_mode", Want::Bool),
            ("count_include_pad", "count_include_pad", Want::Bool),
        ])?);
        let config = cx.config(quote!(nn::AvgPool2dConfig), fields, 4);
        let (at, field) = (&cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::AvgPool2d),
            quote!(nn::avg_pool2d(#kernel, #config)#at?),
            quote!(Op::AvgPool(&self.#field)),
        ))
    }
}

impl LayerDef for AdaptiveAvgPool2d {
    const BUILTINS: &'static [Builtin] = &[
        Builtin {
            name: "adaptive_avg_pool",
            summary: "Adaptive average pooling to a fixed output size (`nn.AdaptiveAvgPool2d`).",
            params: &[Param {
                name: "size",
                default: Required,
            }],
            resolve: |args| {
                let output = args.hw("size", 1)?;
                Some(Layer::AdaptiveAvgPool2d(AdaptiveAvgPool2d { output }))
            },
        },
        Builtin {
            name: "global_avg_pool",
            summary: "Average over the whole map: `[C, H, W]` becomes `[C, 1, 1]`.",
            params: &[],
            resolve: |_| {
                Some(Layer::AdaptiveAvgPool2d(AdaptiveAvgPool2d {
                    output: [1, 1],
                }))
            },
        },
    ];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let (c, _, _) = require_map(args, input)?;
        let [h, w] = self.output;
        Some((self, Shape::Map { c, h, w }))
    }

    fn has_weights(&self) -> bool {
        false
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        (0, 0)
    }

    fn label(&self) -> String {
        format!("adaptive_avg_pool → {}×{}", self.output[0], self.output[1])
    }

    fn settings(&self) -> String {
        format!("adaptive_avg_pool: size {}", hw_text(self.output))
    }

    fn formula(&self, _input: Shape, _output: Shape) -> Option<String> {
        None
    }

    fn keep_size_hint(&self, _input: Shape, _expected: Shape) -> Option<String> {
        None
    }

    fn resize(&self) -> Resize {
        Resize::Fixed
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        // `global_avg_pool` has no `size`: it pools to 1×1.
        let size = cx
            .given("size", Want::Pair)?
            .unwrap_or_else(|| quote!((1, 1)));
        let (at, field) = (&cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::AdaptiveAvgPool2d),
            quote!(nn::adaptive_avg_pool2d(#size)#at?),
            quote!(Op::Module(&self.#field)),
        ))
    }
}

/// The `LayerDef` items max and average pooling share through their [`Window`].
macro_rules! windowed {
    ($kind:literal) => {
        fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
            let output = pool_shape(args, input, &self.window())?;
            Some((self, output))
        }

        fn has_weights(&self) -> bool {
            false
        }

        fn cost(&self, _output: Shape) -> (u64, u64) {
            (0, 0)
        }

        fn label(&self) -> String {
            self.window().label($kind)
        }

        fn formula(&self, input: Shape, output: Shape) -> Option<String> {
            self.window().formula(input, output)
        }

        fn keep_size_hint(&self, input: Shape, expected: Shape) -> Option<String> {
            self.window().keep_size_hint(input, expected)
        }

        fn resize(&self) -> Resize {
            Resize::Strided(self.stride)
        }
    };
}
use windowed;

/// What max and average pooling share: the window and how it slides.
struct Window {
    kernel: Hw,
    stride: Hw,
    padding: Hw,
    dilation: Hw,
    ceil_mode: bool,
}

impl MaxPool2d {
    fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl AvgPool2d {
    fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: [1, 1],
            ceil_mode: self.ceil_mode,
        }
    }
}

impl Window {
    fn label(&self, kind: &str) -> String {
        format!(
            "{kind} {}×{}/{}{}",
            self.kernel[0],
            self.kernel[1],
            label_hw(self.stride),
            if self.ceil_mode { " ceil" } else { "" }
        )
    }

    fn formula(&self, input: Shape, output: Shape) -> Option<String> {
        let [ph, pw] = self.padding;
        spatial_formula(
            input,
            output,
            self.kernel,
            self.stride,
            [(ph, ph), (pw, pw)],
            self.dilation,
            self.ceil_mode,
        )
    }

    fn keep_size_hint(&self, input: Shape, expected: Shape) -> Option<String> {
        let (Shape::Map { h, w, .. }, Shape::Map { h: eh, w: ew, .. }) = (input, expected) else {
            return None;
        };
        ((eh, ew) == (h, w) && self.stride != [1, 1]).then(|| {
            format!(
                "stride {} shrinks the map; a {}×{} pool with `stride = 1, pad = {}` keeps {h}×{w}",
                self.stride[0],
                self.kernel[0],
                self.kernel[1],
                self.kernel[0] / 2
            )
        })
    }
}

/// The `stride` and `pad` fields of a pool's config, as written.
fn window_fields(
    cx: &EmitCx<'_>,
) -> Result<Vec<(&'static str, proc_macro2::TokenStream)>, CodegenError> {
    let mut fields = Vec::new();
    if let Some(stride) = cx.given("stride", Want::Pair)? {
        fields.push(("stride", quote!(Some(#stride))));
    }
    if let Some(pad) = cx.given("pad", Want::Pair)? {
        fields.push(("padding", pad));
    }
    Ok(fields)
}

/// PyTorch rejects pooling padding above half the kernel, dilated or not ("pad should be smaller than or equal
/// to half of kernel size").
fn check_pool_padding(args: &mut Args<'_>, kernel: Hw, padding: Hw) -> Option<()> {
    for axis in 0..2 {
        if padding[axis] > pool_padding_limit(kernel[axis]) {
            let span = args.span("pad");
            let layer = args.layer;
            args.report(
                Diagnostic::error(
                    Code::PaddingTooLarge,
                    span,
                    format!(
                        "{layer} padding {} is more than half the kernel size {}",
                        padding[axis], kernel[axis]
                    ),
                )
                .with_label(format!(
                    "at most {} for a kernel of {}",
                    pool_padding_limit(kernel[axis]),
                    kernel[axis]
                ))
                .with_note(
                    "a window made mostly of padding has no input to pool; PyTorch rejects it too",
                ),
            );
            return None;
        }
    }
    Some(())
}

fn pool_shape(args: &mut Args<'_>, input: Shape, window: &Window) -> Option<Shape> {
    let (c, h, w) = require_map(args, input)?;
    let Window {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    } = *window;
    let axes = [
        (
            h,
            kernel[0],
            stride[0],
            (padding[0], padding[0]),
            dilation[0],
        ),
        (
            w,
            kernel[1],
            stride[1],
            (padding[1], padding[1]),
            dilation[1],
        ),
    ];
    let [out_h, out_w] = both_axes(args, axes, Some(ceil_mode));
    let (out_h, out_w) = (out_h?, out_w?);
    if !ceil_mode {
        for (axis, words, input, output) in [
            (0, ["row", "rows"], h, out_h),
            (1, ["column", "columns"], w, out_w),
        ] {
            warn_dropped(
                args,
                words,
                input,
                kernel[axis],
                stride[axis],
                padding[axis],
                dilation[axis],
                output,
            );
        }
    }
    Some(Shape::Map {
        c,
        h: out_h,
        w: out_w,
    })
}

/// Floor mode silently ignores input that the last window does not reach.
#[allow(clippy::too_many_arguments)]
fn warn_dropped(
    args: &mut Args<'_>,
    [one, many]: [&str; 2],
    input: u64,
    kernel: u64,
    stride: u64,
    pad: u64,
    dilation: u64,
    output: u64,
) {
    let Ok(covered) = windows_span(output, kernel, stride, dilation) else {
        return;
    };
    let padded = input + 2 * pad;
    // Only real input counts: trailing padding that no window reaches is harmless.
    let dropped = (input + pad).saturating_sub(covered);
    if dropped == 0 {
        return;
    }
    let last = if dropped == 1 {
        format!("last {one}")
    } else {
        format!("last {dropped} {many}")
    };
    args.diagnostics.push(
        Diagnostic::warning(
            Code::PoolDropsInput,
            args.call_span,
            format!("{} in floor mode ignores the {last} of its input", args.layer),
        )
        .with_label(format!("{dropped} of {input} {many} never pooled"))
        .with_note(format!(
            "{}; the windows cover {covered} of the {padded} padded {many}",
            spell_out(input, kernel, stride, (pad, pad), dilation, false, output)
        ))
        .with_help("use `ceil = true` (as Caffe and torchvision's GoogLeNet do) or adjust kernel, stride or padding"),
    );
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
            "max_pool(3, stride = 2, ceil = true)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::MaxPool2d = nn::max_pool2d(
            (3, 3),
            nn::MaxPool2dConfig {
                stride: Some((2, 2)),
                ceil_mode: true,
                ..Default::default()
            },
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::MaxPool(&self.layer);
}
"#,
        ),
        (
            "max_pool(3, stride = 1, pad = 1, dilation = 2)",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::MaxPool2d = nn::max_pool2d(
            (3, 3),
            nn::MaxPool2dConfig {
                stride: Some((1, 1)),
                padding: (1, 1),
                dilation: (2, 2),
                ..Default::default()
            },
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::MaxPool(&self.layer);
}
"#,
        ),
        (
            "avg_pool(2, count_include_pad = false)",
            "[8, 16, 16]",
            r#"fn layer() {
    let layer: nn::AvgPool2d = nn::avg_pool2d(
            (2, 2),
            nn::AvgPool2dConfig {
                count_include_pad: false,
                ..Default::default()
            },
        )
        .at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::AvgPool(&self.layer);
}
"#,
        ),
        (
            "adaptive_avg_pool([4, 2])",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::AdaptiveAvgPool2d = nn::adaptive_avg_pool2d((4, 2)).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "global_avg_pool",
            "[8, 17, 17]",
            r#"fn layer() {
    let layer: nn::AdaptiveAvgPool2d = nn::adaptive_avg_pool2d((1, 1)).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
    ];
}
