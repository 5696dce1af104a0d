//! The built-in layers: their signatures, argument validation and output-shape inference.

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::ir::{Hw, Layer, Padding, Shape, Value};

use archc_shape::{
    check_dim, conv_output, pool_output, pool_padding_limit, same_padding, spell_out, windows_span,
    SizeError,
};

/// The default of a built-in layer's parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ArgDefault {
    Required,
    Value(Value),
    /// Pooling strides default to the kernel size, as in PyTorch.
    Kernel,
}

use ArgDefault::{Kernel, Required, Value as V};

/// Signatures of the built-in layers, in the order `archc explain` and error notes list them.
pub(crate) const BUILTINS: &[(&str, &[(&str, ArgDefault)])] = &[
    (
        "conv2d",
        &[
            ("out", Required),
            ("kernel", Required),
            ("stride", V(Value::Int(1))),
            ("pad", V(Value::Int(0))),
            ("dilation", V(Value::Int(1))),
            ("groups", V(Value::Int(1))),
            ("bias", V(Value::Bool(true))),
        ],
    ),
    (
        "max_pool",
        &[
            ("kernel", Required),
            ("stride", Kernel),
            ("pad", V(Value::Int(0))),
            ("dilation", V(Value::Int(1))),
            ("ceil", V(Value::Bool(false))),
        ],
    ),
    (
        "avg_pool",
        &[
            ("kernel", Required),
            ("stride", Kernel),
            ("pad", V(Value::Int(0))),
            ("ceil", V(Value::Bool(false))),
            ("count_include_pad", V(Value::Bool(true))),
        ],
    ),
    ("adaptive_avg_pool", &[("size", Required)]),
    ("global_avg_pool", &[]),
    (
        "batch_norm",
        &[
            ("eps", V(Value::Float(1e-5))),
            ("momentum", V(Value::Float(0.1))),
            ("affine", V(Value::Bool(true))),
        ],
    ),
    (
        "lrn",
        &[
            ("size", Required),
            ("alpha", V(Value::Float(1e-4))),
            ("beta", V(Value::Float(0.75))),
            ("k", V(Value::Float(1.0))),
        ],
    ),
    ("relu", &[]),
    ("dropout", &[("p", V(Value::Float(0.5)))]),
    ("flatten", &[]),
    (
        "linear",
        &[("out", Required), ("bias", V(Value::Bool(true)))],
    ),
    ("softmax", &[]),
    ("identity", &[]),
];

/// The signature of a built-in layer, if `name` is one.
pub(crate) fn builtin(name: &str) -> Option<&'static [(&'static str, ArgDefault)]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, params)| *params)
}

/// The largest size, stride, padding or channel count accepted (PyTorch's kernels index with 32-bit ints).
pub use archc_shape::MAX_DIM;

/// One bound argument: its value (unknown after an earlier error) and where it came from (the call, for
/// defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoundArg {
    pub value: Option<Value>,
    pub span: Span,
    pub given: bool,
}

/// A built-in call's arguments after binding, with typed accessors that report misuse.
pub(crate) struct Args<'d> {
    pub layer: &'static str,
    pub call_span: Span,
    pub values: Vec<(&'static str, BoundArg)>,
    pub diagnostics: &'d mut Vec<Diagnostic>,
    /// Set when any accessor reported an error; shape inference is skipped then.
    pub failed: bool,
}

impl Args<'_> {
    fn get(&self, name: &str) -> BoundArg {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, arg)| *arg)
            .expect("accessor names come from the signature")
    }

    fn type_error(&mut self, name: &str, arg: BoundArg, expected: &str, found: Value) {
        self.failed = true;
        self.diagnostics.push(
            Diagnostic::error(
                Code::ArgumentType,
                arg.span,
                format!(
                    "`{}` of {} must be {expected}, found {} `{found}`",
                    name,
                    self.layer,
                    found.type_name()
                ),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    fn range_error(&mut self, name: &str, arg: BoundArg, message: String) {
        self.failed = true;
        self.diagnostics.push(
            Diagnostic::error(
                Code::InvalidArgument,
                arg.span,
                format!("`{name}` of {}: {message}", self.layer),
            )
            .with_label(message),
        );
    }

    fn check_range(&mut self, name: &str, arg: BoundArg, value: i64, min: i64) -> Option<u64> {
        match check_dim(value, min) {
            Ok(value) => Some(value),
            Err(error) => {
                self.range_error(name, arg, error.to_string());
                None
            }
        }
    }

    /// An integer `>= min`.
    pub fn int(&mut self, name: &str, min: i64) -> Option<u64> {
        let arg = self.get(name);
        match arg.value? {
            Value::Int(v) => self.check_range(name, arg, v, min),
            other => {
                self.type_error(name, arg, "an integer", other);
                None
            }
        }
    }

    /// An integer or `[h, w]` pair, each `>= min`.
    pub fn hw(&mut self, name: &str, min: i64) -> Option<Hw> {
        let arg = self.get(name);
        match arg.value? {
            Value::Int(v) => {
                let v = self.check_range(name, arg, v, min)?;
                Some([v, v])
            }
            Value::Pair(h, w) => Some([
                self.check_range(name, arg, h, min)?,
                self.check_range(name, arg, w, min)?,
            ]),
            other => {
                self.type_error(name, arg, "an integer or an `[h, w]` pair", other);
                None
            }
        }
    }

    /// A number (integers are accepted as floats).
    pub fn float(&mut self, name: &str) -> Option<f64> {
        let arg = self.get(name);
        match arg.value? {
            Value::Float(v) => Some(v),
            Value::Int(v) => Some(v as f64),
            other => {
                self.type_error(name, arg, "a number", other);
                None
            }
        }
    }

    /// A number within `[min, max]`.
    pub fn float_in(&mut self, name: &str, min: f64, max: f64) -> Option<f64> {
        let value = self.float(name)?;
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            let arg = self.get(name);
            self.range_error(
                name,
                arg,
                format!("must be between {min} and {max}, found {value}"),
            );
            None
        }
    }

    /// A positive number.
    pub fn positive(&mut self, name: &str) -> Option<f64> {
        let value = self.float(name)?;
        if value > 0.0 {
            Some(value)
        } else {
            let arg = self.get(name);
            self.range_error(name, arg, format!("must be positive, found {value}"));
            None
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        let arg = self.get(name);
        match arg.value? {
            Value::Bool(v) => Some(v),
            other => {
                self.type_error(name, arg, "`true` or `false`", other);
                None
            }
        }
    }

    /// The argument's span (the call's, for a default).
    pub fn span(&self, name: &str) -> Span {
        self.get(name).span
    }
}

/// `2` for `[2, 2]`, `[2, 3]` otherwise: a size as it would be written.
fn hw_text([h, w]: Hw) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("[{h}, {w}]")
    }
}

/// Padding as written: explicit sizes or `same`.
enum PadArg {
    Explicit(Hw),
    Same,
}

fn pad_arg(args: &mut Args<'_>) -> Option<PadArg> {
    let arg = args.get("pad");
    match arg.value? {
        Value::Same => Some(PadArg::Same),
        Value::Int(_) | Value::Pair(..) => args.hw("pad", 0).map(PadArg::Explicit),
        other => {
            args.type_error("pad", arg, "an integer, an `[h, w]` pair or `same`", other);
            None
        }
    }
}

/// Validates a built-in call's arguments and, when the input shape is known, infers the output shape.
/// Returns `None` when something was reported (or the input is unknown).
pub(crate) fn infer_layer(args: &mut Args<'_>, input: Option<Shape>) -> Option<(Layer, Shape)> {
    let layer = resolve(args)?;
    let input = input?;
    let output = infer_output_shape(args, &layer, input)?;
    Some((layer_with_input(layer, input), output))
}

/// Argument validation, independent of the input: the layer with in-channel fields still zero.
fn resolve(args: &mut Args<'_>) -> Option<Layer> {
    let layer = match args.layer {
        "conv2d" => {
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
                    let same =
                        |axis: usize| same_padding(kernel[axis], stride[axis], dilation[axis]);
                    // Arguments in range leave one way to fail: a stride above 1.
                    let (Ok((top, bottom)), Ok((left, right))) = (same(0), same(1)) else {
                        let span = args.span("pad");
                        args.failed = true;
                        args.diagnostics.push(
                            Diagnostic::error(Code::InvalidArgument, span, "`pad = same` needs stride 1")
                                .with_label("`same` here")
                                .with_secondary(args.span("stride"), format!("stride {}", hw_text(stride)))
                                .with_note("with a stride above 1 no padding keeps the input size, as in PyTorch"),
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
            let out_channels = out_channels?;
            let groups = groups?;
            if out_channels % groups != 0 {
                let span = args.span("groups");
                args.failed = true;
                args.diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidGroups,
                        span,
                        format!(
                            "{out_channels} output channels cannot be split into {groups} groups"
                        ),
                    )
                    .with_label(format!(
                        "{out_channels} % {groups} = {}",
                        out_channels % groups
                    )),
                );
                return None;
            }
            Layer::Conv2d {
                in_channels: 0,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias: bias?,
            }
        }
        "max_pool" => {
            let kernel = args.hw("kernel", 1);
            let stride = stride_or_kernel(args, kernel);
            let padding = args.hw("pad", 0);
            let dilation = args.hw("dilation", 1);
            let ceil_mode = args.bool("ceil");
            let (kernel, stride, padding, dilation) = (kernel?, stride?, padding?, dilation?);
            check_pool_padding(args, kernel, padding)?;
            Layer::MaxPool2d {
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode: ceil_mode?,
            }
        }
        "avg_pool" => {
            let kernel = args.hw("kernel", 1);
            let stride = stride_or_kernel(args, kernel);
            let padding = args.hw("pad", 0);
            let ceil_mode = args.bool("ceil");
            let count_include_pad = args.bool("count_include_pad");
            let (kernel, stride, padding) = (kernel?, stride?, padding?);
            check_pool_padding(args, kernel, padding)?;
            Layer::AvgPool2d {
                kernel,
                stride,
                padding,
                ceil_mode: ceil_mode?,
                count_include_pad: count_include_pad?,
            }
        }
        "adaptive_avg_pool" => Layer::AdaptiveAvgPool2d {
            output: args.hw("size", 1)?,
        },
        "global_avg_pool" => Layer::AdaptiveAvgPool2d { output: [1, 1] },
        "batch_norm" => {
            let eps = args.positive("eps");
            let momentum = args.float_in("momentum", 0.0, 1.0);
            let affine = args.bool("affine");
            Layer::BatchNorm {
                num_features: 0,
                eps: eps?,
                momentum: momentum?,
                affine: affine?,
            }
        }
        "lrn" => {
            let size = args.int("size", 1);
            let alpha = args.float("alpha");
            let beta = args.float("beta");
            let k = args.float("k");
            Layer::Lrn {
                size: size?,
                alpha: alpha?,
                beta: beta?,
                k: k?,
            }
        }
        "relu" => Layer::Relu,
        "dropout" => Layer::Dropout {
            p: args.float_in("p", 0.0, 1.0)?,
        },
        "flatten" => Layer::Flatten,
        "linear" => {
            let out_features = args.int("out", 1);
            let bias = args.bool("bias");
            Layer::Linear {
                in_features: 0,
                out_features: out_features?,
                bias: bias?,
            }
        }
        "softmax" => Layer::Softmax,
        "identity" => Layer::Identity,
        other => unreachable!("no built-in layer `{other}`"),
    };
    (!args.failed).then_some(layer)
}

fn stride_or_kernel(args: &mut Args<'_>, kernel: Option<Hw>) -> Option<Hw> {
    if args.get("stride").given {
        args.hw("stride", 1)
    } else {
        kernel
    }
}

/// PyTorch rejects pooling padding above half the kernel, dilated or not ("pad should be smaller than or equal
/// to half of kernel size").
fn check_pool_padding(args: &mut Args<'_>, kernel: Hw, padding: Hw) -> Option<()> {
    for axis in 0..2 {
        if padding[axis] > pool_padding_limit(kernel[axis]) {
            let span = args.span("pad");
            args.failed = true;
            args.diagnostics.push(
                Diagnostic::error(
                    Code::PaddingTooLarge,
                    span,
                    format!(
                        "{} padding {} is more than half the kernel size {}",
                        args.layer, padding[axis], kernel[axis]
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

fn layer_with_input(layer: Layer, input: Shape) -> Layer {
    match layer {
        Layer::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
            ..
        } => Layer::Conv2d {
            in_channels: input.channels(),
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
        },
        Layer::BatchNorm {
            eps,
            momentum,
            affine,
            ..
        } => Layer::BatchNorm {
            num_features: input.channels(),
            eps,
            momentum,
            affine,
        },
        Layer::Linear {
            out_features, bias, ..
        } => Layer::Linear {
            in_features: input.channels(),
            out_features,
            bias,
        },
        other => other,
    }
}

fn require_map(args: &mut Args<'_>, input: Shape) -> Option<(u64, u64, u64)> {
    match input {
        Shape::Map { c, h, w } => Some((c, h, w)),
        Shape::Flat { features } => {
            args.failed = true;
            args.diagnostics.push(
                Diagnostic::error(
                    Code::WrongInputRank,
                    args.call_span,
                    format!(
                        "{} needs a [C, H, W] feature map, but its input is flat: [{features}]",
                        args.layer
                    ),
                )
                .with_label("applied to a flat vector")
                .with_help("move this layer before `flatten`"),
            );
            None
        }
    }
}

/// Output size along one axis, or a diagnostic that spells out why the window does not fit.
#[allow(clippy::too_many_arguments)]
fn axis_output(
    args: &mut Args<'_>,
    axis: &str,
    input: u64,
    kernel: u64,
    stride: u64,
    pad: (u64, u64),
    dilation: u64,
    ceil_mode: Option<bool>,
) -> Option<u64> {
    let result = match ceil_mode {
        None => conv_output(input, kernel, stride, pad, dilation),
        Some(ceil) => pool_output(input, kernel, stride, pad.0, dilation, ceil),
    };
    match result {
        Ok(output) => Some(output),
        Err(SizeError::WindowTooLarge {
            effective_kernel,
            padded_input,
            ..
        }) => {
            let span = args.span("kernel");
            let mut diagnostic = Diagnostic::error(
                Code::OutputTooSmall,
                span,
                format!(
                    "{} window of {effective_kernel} is larger than its padded input {axis} of {padded_input}",
                    args.layer
                ),
            )
            .with_label(format!("window {effective_kernel} > {padded_input}"))
            .with_note(format!(
                "input {axis} {input} + padding {} = {padded_input}; the window covers {effective_kernel}",
                pad.0 + pad.1
            ));
            if input >= 1 && args.layer != "conv2d" {
                diagnostic = diagnostic.with_help(format!(
                    "a {input}×{input} map is pooled to 1×1 by a window of {input}, or by `global_avg_pool`"
                ));
            }
            args.failed = true;
            args.diagnostics.push(diagnostic);
            None
        }
        Err(SizeError::Overflow) => {
            args.failed = true;
            args.diagnostics.push(
                Diagnostic::error(
                    Code::Overflow,
                    args.call_span,
                    format!("{} output size overflows", args.layer),
                )
                .with_label("sizes too large"),
            );
            None
        }
        // Argument validation (`resolve`) rejects these first; reported plainly should that ever change.
        Err(
            error @ (SizeError::Zero(_)
            | SizeError::PaddingTooLarge { .. }
            | SizeError::SameNeedsStrideOne { .. }
            | SizeError::OutputPaddingTooLarge { .. }
            | SizeError::PaddingRemovesOutput { .. }),
        ) => {
            args.failed = true;
            args.diagnostics.push(
                Diagnostic::error(
                    Code::InvalidArgument,
                    args.call_span,
                    format!("{}: {error}", args.layer),
                )
                .with_label(error.to_string()),
            );
            None
        }
    }
}

/// One axis's (input, kernel, stride, padding, dilation).
type Axis = (u64, u64, u64, (u64, u64), u64);

/// Output sizes along height and width; when both axes have the same numbers, a failure is reported once.
fn both_axes(args: &mut Args<'_>, [h, w]: [Axis; 2], ceil_mode: Option<bool>) -> [Option<u64>; 2] {
    if h == w {
        let out = axis_output(args, "height and width", h.0, h.1, h.2, h.3, h.4, ceil_mode);
        [out, out]
    } else {
        [
            axis_output(args, "height", h.0, h.1, h.2, h.3, h.4, ceil_mode),
            axis_output(args, "width", w.0, w.1, w.2, w.3, w.4, ceil_mode),
        ]
    }
}

fn infer_output_shape(args: &mut Args<'_>, layer: &Layer, input: Shape) -> Option<Shape> {
    match *layer {
        Layer::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            let (c, h, w) = require_map(args, input)?;
            if c % groups != 0 {
                let span = args.span("groups");
                args.failed = true;
                args.diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidGroups,
                        span,
                        format!("{c} input channels cannot be split into {groups} groups"),
                    )
                    .with_label(format!("{c} % {groups} = {}", c % groups)),
                );
                return None;
            }
            let axes = [
                (
                    h,
                    kernel[0],
                    stride[0],
                    (padding.top, padding.bottom),
                    dilation[0],
                ),
                (
                    w,
                    kernel[1],
                    stride[1],
                    (padding.left, padding.right),
                    dilation[1],
                ),
            ];
            let [out_h, out_w] = both_axes(args, axes, None);
            Some(Shape::Map {
                c: out_channels,
                h: out_h?,
                w: out_w?,
            })
        }
        Layer::MaxPool2d {
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => pool_shape(args, input, kernel, stride, padding, dilation, ceil_mode),
        Layer::AvgPool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
            ..
        } => pool_shape(args, input, kernel, stride, padding, [1, 1], ceil_mode),
        Layer::AdaptiveAvgPool2d { output } => {
            let (c, _, _) = require_map(args, input)?;
            Some(Shape::Map {
                c,
                h: output[0],
                w: output[1],
            })
        }
        Layer::Lrn { .. } => {
            require_map(args, input)?;
            Some(input)
        }
        Layer::Flatten => match input.elements() {
            Some(features) => Some(Shape::Flat { features }),
            None => {
                args.failed = true;
                args.diagnostics.push(
                    Diagnostic::error(
                        Code::Overflow,
                        args.call_span,
                        format!("flattening {input} overflows"),
                    )
                    .with_label("too many elements"),
                );
                None
            }
        },
        Layer::Linear { out_features, .. } => match input {
            Shape::Flat { .. } => Some(Shape::Flat {
                features: out_features,
            }),
            Shape::Map { c, h, w } => {
                args.failed = true;
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
                args.diagnostics.push(diagnostic);
                None
            }
        },
        Layer::BatchNorm { .. }
        | Layer::Relu
        | Layer::Dropout { .. }
        | Layer::Softmax
        | Layer::Identity => Some(input),
    }
}

#[allow(clippy::too_many_arguments)]
fn pool_shape(
    args: &mut Args<'_>,
    input: Shape,
    kernel: Hw,
    stride: Hw,
    padding: Hw,
    dilation: Hw,
    ceil_mode: bool,
) -> Option<Shape> {
    let (c, h, w) = require_map(args, input)?;
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
        warn_dropped(
            args,
            ["row", "rows"],
            h,
            kernel[0],
            stride[0],
            padding[0],
            dilation[0],
            out_h,
        );
        warn_dropped(
            args,
            ["column", "columns"],
            w,
            kernel[1],
            stride[1],
            padding[1],
            dilation[1],
            out_w,
        );
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

/// A written-out computation of a layer's spatial output, for notes under shape mismatches.
pub(crate) fn spell_out_layer(layer: &Layer, input: Shape, output: Shape) -> Option<String> {
    let (Shape::Map { h, w, .. }, Shape::Map { h: oh, w: ow, .. }) = (input, output) else {
        return None;
    };
    let (kernel, stride, pads, dilation, ceil) = match *layer {
        Layer::Conv2d {
            kernel,
            stride,
            padding,
            dilation,
            ..
        } => (
            kernel,
            stride,
            [(padding.top, padding.bottom), (padding.left, padding.right)],
            dilation,
            false,
        ),
        Layer::MaxPool2d {
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => (
            kernel,
            stride,
            [(padding[0], padding[0]), (padding[1], padding[1])],
            dilation,
            ceil_mode,
        ),
        Layer::AvgPool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
            ..
        } => (
            kernel,
            stride,
            [(padding[0], padding[0]), (padding[1], padding[1])],
            [1, 1],
            ceil_mode,
        ),
        _ => return None,
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
