//! A built-in call's arguments after binding, with typed accessors that report misuse, and the checks every
//! layer family shares (feature-map input, per-axis output sizes).

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::ir::{Shape, Value};
use archc_shape::{check_dim, conv_output, pool_output, SizeError};

use super::Hw;

/// The default of a built-in layer's parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ArgDefault {
    Required,
    Value(Value),
    /// Pooling strides default to the kernel size, as in PyTorch.
    Kernel,
}

/// One bound argument: its value (unknown after an earlier error) and where it came from (the call, for
/// defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoundArg {
    pub value: Option<Value>,
    pub span: Span,
    pub given: bool,
    /// The position of the argument in the call, when given.
    pub source: Option<usize>,
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
    pub fn get(&self, name: &str) -> BoundArg {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, arg)| *arg)
            .expect("accessor names come from the signature")
    }

    pub fn type_error(&mut self, name: &str, arg: BoundArg, expected: &str, found: Value) {
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

    /// A number in `[min, max)`: `max` itself is excluded (a stochastic depth of 1 drops every sample).
    pub fn float_below(&mut self, name: &str, min: f64, max: f64) -> Option<f64> {
        let value = self.float(name)?;
        if min <= value && value < max {
            Some(value)
        } else {
            let arg = self.get(name);
            self.range_error(
                name,
                arg,
                format!("must be at least {min} and below {max}, found {value}"),
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

/// Padding as written: explicit sizes or `same`.
pub(crate) enum PadArg {
    Explicit(Hw),
    Same,
}

pub(crate) fn pad_arg(args: &mut Args<'_>) -> Option<PadArg> {
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

pub(crate) fn stride_or_kernel(args: &mut Args<'_>, kernel: Option<Hw>) -> Option<Hw> {
    if args.get("stride").given {
        args.hw("stride", 1)
    } else {
        kernel
    }
}

pub(crate) fn require_map(args: &mut Args<'_>, input: Shape) -> Option<(u64, u64, u64)> {
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
pub(crate) type Axis = (u64, u64, u64, (u64, u64), u64);

/// Output sizes along height and width; when both axes have the same numbers, a failure is reported once.
pub(crate) fn both_axes(
    args: &mut Args<'_>,
    [h, w]: [Axis; 2],
    ceil_mode: Option<bool>,
) -> [Option<u64>; 2] {
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

impl Args<'_> {
    /// Records `diagnostic` as an error of this call.
    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.failed = true;
        self.diagnostics.push(diagnostic);
    }
}
