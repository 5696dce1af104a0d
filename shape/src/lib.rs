//! Output-size arithmetic of convolution, transposed convolution and pooling, exactly as PyTorch computes it,
//! and the size limits of archc's layers.
//!
//! This is the one copy of these formulas: the checker (`archc::check`) infers the shapes of a `.arch` file
//! with them and the runtime (`archc-runtime`) sizes its layers with them, so a file is checked with the sizes
//! its generated model computes. The crate has no dependencies, so the proc macro and the runtime can both
//! build it cheaply.
//!
//! Every function works on one spatial axis, in `u64`, with checked arithmetic: bad arguments (a zero stride, a
//! window larger than its input, sizes whose arithmetic overflows) are a [`SizeError`], never a panic.
//!
//! The formulas follow PyTorch's sources: `torch.nn.Conv2d` and ATen's `check_shape_forward` for convolution,
//! `pooling_output_shape` and `pool2d_shape_check` (ATen's `Pool.h`) for pooling, and
//! `slow_conv_transpose2d_shape_check` for transposed convolution. `tests/pytorch_table.rs` checks them
//! against a table of sizes recorded from PyTorch itself.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

/// The largest size, stride, padding or channel count accepted: PyTorch's kernels index with 32-bit integers.
pub const MAX_DIM: i64 = i32::MAX as i64;

/// Why an integer argument is outside the range archc accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Below the argument's minimum (0 for padding, 1 for everything else).
    TooSmall {
        /// The value given.
        value: i64,
        /// The smallest value accepted.
        min: i64,
    },
    /// Above [`MAX_DIM`].
    TooLarge {
        /// The value given.
        value: i64,
    },
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RangeError::TooSmall { value, min: 0 } => {
                write!(f, "must be non-negative, found {value}")
            }
            RangeError::TooSmall { value, min } => {
                write!(f, "must be at least {min}, found {value}")
            }
            RangeError::TooLarge { value } => {
                write!(f, "{value} is larger than the limit {MAX_DIM}")
            }
        }
    }
}

impl std::error::Error for RangeError {}

/// A size argument (a size, kernel, stride, padding, dilation, channel or group count) as an unsigned size:
/// `value` must lie in `min..=MAX_DIM`. Sizes, kernels, strides, dilations and counts take `min = 1`, padding
/// takes `min = 0`.
pub fn check_dim(value: i64, min: i64) -> Result<u64, RangeError> {
    if value < min {
        Err(RangeError::TooSmall { value, min })
    } else if value > MAX_DIM {
        Err(RangeError::TooLarge { value })
    } else {
        // value >= min >= 0 here for every min archc uses; a negative min cannot produce a negative size.
        u64::try_from(value).map_err(|_| RangeError::TooSmall { value, min: 0 })
    }
}

/// An argument of the formulas that must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positive {
    /// The input size along the axis (pooling and transposed convolution).
    Input,
    /// The kernel size.
    Kernel,
    /// The stride.
    Stride,
    /// The dilation.
    Dilation,
    /// An output size passed back in ([`windows_span`]).
    Output,
}

impl fmt::Display for Positive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Positive::Input => "input size",
            Positive::Kernel => "kernel size",
            Positive::Stride => "stride",
            Positive::Dilation => "dilation",
            Positive::Output => "output size",
        })
    }
}

/// Why an output size could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// An argument that must be at least 1 is 0.
    Zero(Positive),
    /// The (dilated) window does not fit in the padded input, so no window fits (PyTorch: "Kernel size can't be
    /// greater than actual input size" for convolution, "Output size is too small" for pooling).
    WindowTooLarge {
        /// The kernel size.
        kernel: u64,
        /// The dilation.
        dilation: u64,
        /// `dilation * (kernel - 1) + 1`.
        effective_kernel: u64,
        /// The input plus its padding on both sides.
        padded_input: u64,
    },
    /// A pooling window padded by more than half its kernel (PyTorch: "pad should be smaller than or equal to
    /// half of kernel size").
    PaddingTooLarge {
        /// The padding on each side.
        pad: u64,
        /// The kernel size.
        kernel: u64,
    },
    /// `same` padding with a stride above 1, which PyTorch rejects: no padding keeps the size then.
    SameNeedsStrideOne {
        /// The stride given.
        stride: u64,
    },
    /// A transposed convolution's output padding not below its stride or its dilation (PyTorch: "output
    /// padding must be smaller than either stride or dilation").
    OutputPaddingTooLarge {
        /// The output padding.
        output_padding: u64,
        /// The stride.
        stride: u64,
        /// The dilation.
        dilation: u64,
    },
    /// A transposed convolution whose padding removes its whole output (PyTorch: "Output size is too small").
    PaddingRemovesOutput {
        /// The output size before padding is removed: `(input - 1) * stride + dilation * (kernel - 1) +
        /// output_padding + 1`.
        uncropped: u64,
        /// The padding removed, `2 * pad`.
        removed: u64,
    },
    /// The arithmetic overflowed 64 bits.
    Overflow,
}

/// `kernel 3`, or `kernel 3 (dilation 2, extent 5)` for a dilated kernel.
fn describe_kernel(f: &mut fmt::Formatter<'_>, kernel: u64, dilation: u64) -> fmt::Result {
    if dilation == 1 {
        write!(f, "kernel {kernel}")
    } else {
        match effective_kernel(kernel, dilation) {
            Ok(extent) => write!(f, "kernel {kernel} (dilation {dilation}, extent {extent})"),
            Err(_) => write!(f, "kernel {kernel} (dilation {dilation})"),
        }
    }
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SizeError::Zero(what) => write!(f, "{what} must be at least 1, found 0"),
            SizeError::WindowTooLarge {
                kernel,
                dilation,
                padded_input,
                ..
            } => {
                describe_kernel(f, kernel, dilation)?;
                write!(f, " is larger than the padded input {padded_input}")
            }
            SizeError::PaddingTooLarge { pad, kernel } => {
                write!(f, "pad {pad} should be at most half of the kernel {kernel}")
            }
            SizeError::SameNeedsStrideOne { stride } => {
                write!(f, "`same` padding needs stride 1, found stride {stride}")
            }
            SizeError::OutputPaddingTooLarge {
                output_padding,
                stride,
                dilation,
            } => write!(
                f,
                "output padding {output_padding} must be smaller than the stride {stride} or the dilation {dilation}"
            ),
            SizeError::PaddingRemovesOutput { uncropped, removed } => write!(
                f,
                "padding removes {removed} of an output of {uncropped}, leaving nothing"
            ),
            SizeError::Overflow => f.write_str("the output size overflows 64 bits"),
        }
    }
}

impl std::error::Error for SizeError {}

fn positive(value: u64, what: Positive) -> Result<u64, SizeError> {
    if value == 0 {
        Err(SizeError::Zero(what))
    } else {
        Ok(value)
    }
}

/// The extent a dilated kernel covers: `dilation * (kernel - 1) + 1`.
pub fn effective_kernel(kernel: u64, dilation: u64) -> Result<u64, SizeError> {
    let kernel = positive(kernel, Positive::Kernel)?;
    let dilation = positive(dilation, Positive::Dilation)?;
    dilation
        .checked_mul(kernel - 1)
        .and_then(|v| v.checked_add(1))
        .ok_or(SizeError::Overflow)
}

/// The output size of a convolution along one axis, as `torch.nn.Conv2d` computes it:
/// `floor((input + pad_lo + pad_hi - dilation * (kernel - 1) - 1) / stride) + 1`.
///
/// `pad` is `(before, after)`: PyTorch's symmetric `padding = p` is `(p, p)`, and `padding = 'same'` is
/// [`same_padding`]. An error when the dilated kernel is larger than the padded input.
pub fn conv_output(
    input: u64,
    kernel: u64,
    stride: u64,
    (pad_lo, pad_hi): (u64, u64),
    dilation: u64,
) -> Result<u64, SizeError> {
    let stride = positive(stride, Positive::Stride)?;
    let effective = effective_kernel(kernel, dilation)?;
    let padded = input
        .checked_add(pad_lo)
        .and_then(|v| v.checked_add(pad_hi))
        .ok_or(SizeError::Overflow)?;
    if effective > padded {
        return Err(SizeError::WindowTooLarge {
            kernel,
            dilation,
            effective_kernel: effective,
            padded_input: padded,
        });
    }
    Ok((padded - effective) / stride + 1)
}

/// PyTorch's `padding = 'same'` along one axis, `(before, after)`: the total `dilation * (kernel - 1)` split
/// with the smaller half before, as `torch.nn.Conv2d` does. Only a stride of 1 keeps the size, so any other
/// stride is an error, as in PyTorch.
pub fn same_padding(kernel: u64, stride: u64, dilation: u64) -> Result<(u64, u64), SizeError> {
    let stride = positive(stride, Positive::Stride)?;
    let total = effective_kernel(kernel, dilation)? - 1;
    if stride != 1 {
        return Err(SizeError::SameNeedsStrideOne { stride });
    }
    Ok((total / 2, total - total / 2))
}

/// The most padding a pooling window of `kernel` takes on each side: half the kernel, `kernel / 2`, whatever
/// the dilation. PyTorch checks padding twice: against half the dilated extent in `pooling_output_shape` and
/// against half the kernel itself in `pool2d_shape_check` (ATen's `PoolingChecks.h`); the second is the
/// stricter, so a dilated max pool takes no more padding than an undilated one (`tests/pytorch_table.rs` holds
/// PyTorch to it: kernel 2, dilation 3, padding 2 raises "pad should be smaller than or equal to half of kernel
/// size").
pub fn pool_padding_limit(kernel: u64) -> u64 {
    kernel / 2
}

/// An error unless `pad` is at most [`pool_padding_limit`].
pub fn check_pool_padding(pad: u64, kernel: u64) -> Result<(), SizeError> {
    if pad > pool_padding_limit(kernel) {
        Err(SizeError::PaddingTooLarge { pad, kernel })
    } else {
        Ok(())
    }
}

/// The output size of a pooling layer along one axis, as ATen's `pooling_output_shape` computes it for
/// `MaxPool2d` and `AvgPool2d` (Caffe agrees in ceil mode):
///
/// ```text
/// out = floor_or_ceil((input + 2 * pad - dilation * (kernel - 1) - 1) / stride) + 1
/// if ceil_mode and (out - 1) * stride >= input + pad { out -= 1 }
/// ```
///
/// The correction keeps the last window starting inside the input or its left padding. In ceil mode a window
/// may hang over the end of the padded input: an input of 2 pooled by a window of 3 with stride 2 gives 1.
/// Errors, as in PyTorch: an input of 0, padding above [`pool_padding_limit`], or no window at all. Average
/// pooling has no dilation: pass 1.
pub fn pool_output(
    input: u64,
    kernel: u64,
    stride: u64,
    pad: u64,
    dilation: u64,
    ceil_mode: bool,
) -> Result<u64, SizeError> {
    positive(input, Positive::Input)?;
    let stride = positive(stride, Positive::Stride)?;
    let effective = effective_kernel(kernel, dilation)?;
    check_pool_padding(pad, kernel)?;
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(input))
        .ok_or(SizeError::Overflow)?;
    // Signed arithmetic in 128 bits: the numerator is negative when the window overhangs, and ceil mode's
    // rounding term may bring it back to zero. `div_euclid` by a positive divisor rounds towards negative
    // infinity, like ATen's `div_rtn`.
    let stride_i = i128::from(stride);
    let rounding = if ceil_mode { stride_i - 1 } else { 0 };
    let numerator = i128::from(padded) - i128::from(effective) + rounding;
    let mut output = numerator.div_euclid(stride_i) + 1;
    if ceil_mode && (output - 1) * stride_i >= i128::from(input) + i128::from(pad) {
        output -= 1;
    }
    if output < 1 {
        return Err(SizeError::WindowTooLarge {
            kernel,
            dilation,
            effective_kernel: effective,
            padded_input: padded,
        });
    }
    // output <= padded + 1, which fits.
    u64::try_from(output).map_err(|_| SizeError::Overflow)
}

/// The output size of a transposed convolution along one axis, as `torch.nn.ConvTranspose2d` computes it:
/// `(input - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1`.
///
/// As in PyTorch, `output_padding` must be smaller than the stride or the dilation (it only chooses among the
/// input sizes a strided convolution maps to the same output), and the padding must leave at least one output.
pub fn conv_transpose_output(
    input: u64,
    kernel: u64,
    stride: u64,
    pad: u64,
    dilation: u64,
    output_padding: u64,
) -> Result<u64, SizeError> {
    let input = positive(input, Positive::Input)?;
    let stride = positive(stride, Positive::Stride)?;
    let effective = effective_kernel(kernel, dilation)?;
    if output_padding >= stride && output_padding >= dilation {
        return Err(SizeError::OutputPaddingTooLarge {
            output_padding,
            stride,
            dilation,
        });
    }
    let uncropped = (input - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(effective))
        .and_then(|v| v.checked_add(output_padding))
        .ok_or(SizeError::Overflow)?;
    let removed = pad.checked_mul(2).ok_or(SizeError::Overflow)?;
    if removed >= uncropped {
        return Err(SizeError::PaddingRemovesOutput { uncropped, removed });
    }
    Ok(uncropped - removed)
}

/// The length `output` windows of `kernel` with `stride` and `dilation` span, from the first element of the
/// first window to the last element of the last: `(output - 1) * stride + dilation * (kernel - 1) + 1`. Input
/// beyond it (less the right padding) is never read: floor mode's dropped rows.
pub fn windows_span(
    output: u64,
    kernel: u64,
    stride: u64,
    dilation: u64,
) -> Result<u64, SizeError> {
    let output = positive(output, Positive::Output)?;
    let stride = positive(stride, Positive::Stride)?;
    let effective = effective_kernel(kernel, dilation)?;
    (output - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(effective))
        .ok_or(SizeError::Overflow)
}

/// The formula behind [`conv_output`] or [`pool_output`] written out with numbers, for diagnostics:
/// `floor((56 + 2×1 − 3) / 2) + 1 = 28`.
pub fn spell_out(
    input: u64,
    kernel: u64,
    stride: u64,
    (pad_lo, pad_hi): (u64, u64),
    dilation: u64,
    ceil_mode: bool,
    output: u64,
) -> String {
    let padding = if pad_lo == pad_hi {
        if pad_lo == 0 {
            String::new()
        } else {
            format!(" + 2×{pad_lo}")
        }
    } else {
        format!(" + {pad_lo} + {pad_hi}")
    };
    let window = if dilation == 1 {
        format!("{kernel}")
    } else {
        format!("{dilation}×({kernel} − 1) − 1")
    };
    let rounding = if ceil_mode { "ceil" } else { "floor" };
    let numerator = format!("{input}{padding} − {window}");
    if stride == 1 {
        format!("{numerator} + 1 = {output}")
    } else {
        format!("{rounding}(({numerator}) / {stride}) + 1 = {output}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_output_matches_pytorch_examples() {
        // torchvision GoogLeNet conv1: 7x7, stride 2, pad 3 on 224: floor((224 + 6 - 7) / 2) + 1 = 112.
        assert_eq!(conv_output(224, 7, 2, (3, 3), 1), Ok(112));
        // 5x5 with pad 1 on 28 shrinks to 26: 28 + 2 - 5 + 1.
        assert_eq!(conv_output(28, 5, 1, (1, 1), 1), Ok(26));
        // Dilation 2 turns a 3x3 kernel into an effective 5x5: 10 - 5 + 1 = 6.
        assert_eq!(conv_output(10, 3, 1, (0, 0), 2), Ok(6));
        // Asymmetric 'same' for an even kernel: total pad 3 split (1, 2): 8 + 3 - 4 + 1 = 8.
        assert_eq!(same_padding(4, 1, 1), Ok((1, 2)));
        assert_eq!(conv_output(8, 4, 1, (1, 2), 1), Ok(8));
        assert_eq!(
            conv_output(3, 5, 1, (0, 0), 1),
            Err(SizeError::WindowTooLarge {
                kernel: 5,
                dilation: 1,
                effective_kernel: 5,
                padded_input: 3
            })
        );
    }

    #[test]
    fn pool_output_ceil_mode_matches_pytorch() {
        // GoogLeNet maxpool1: 3x3/2 ceil on 112: ceil(109 / 2) + 1 = 56 (floor mode would give 55).
        assert_eq!(pool_output(112, 3, 2, 0, 1, true), Ok(56));
        assert_eq!(pool_output(112, 3, 2, 0, 1, false), Ok(55));
        // maxpool4 2x2/2 ceil on 14: 7.
        assert_eq!(pool_output(14, 2, 2, 0, 1, true), Ok(7));
        // 6, kernel 2, stride 2, pad 1: ceil((6 + 2 - 2) / 2) + 1 = 4; the 4th window starts at 3 * 2 = 6 <
        // 6 + 1, so it stays.
        assert_eq!(pool_output(6, 2, 2, 1, 1, true), Ok(4));
        // 5, kernel 2, stride 2, pad 1: ceil(5 / 2) + 1 = 4; window 4 starts at 6 >= 5 + 1, so 3.
        assert_eq!(pool_output(5, 2, 2, 1, 1, true), Ok(3));
        // An 8x8 average pool on a 7x7 map does not fit.
        assert!(matches!(
            pool_output(7, 8, 1, 0, 1, false),
            Err(SizeError::WindowTooLarge { .. })
        ));
        // In ceil mode a window may overhang the input: 2 pooled by 3 with stride 2 gives ceil((2 - 3) / 2) +
        // 1 = 1 (floor mode: no window fits).
        assert_eq!(pool_output(2, 3, 2, 0, 1, true), Ok(1));
        assert!(matches!(
            pool_output(2, 3, 2, 0, 1, false),
            Err(SizeError::WindowTooLarge { .. })
        ));
        // With stride 1 the rounding adds nothing, and the window must fit.
        assert!(matches!(
            pool_output(2, 3, 1, 0, 1, true),
            Err(SizeError::WindowTooLarge { .. })
        ));
        // Dilation: 7, kernel 3, dilation 2 (extent 5), stride 1 -> 3.
        assert_eq!(pool_output(7, 3, 1, 0, 2, false), Ok(3));
    }

    #[test]
    fn pool_padding_is_at_most_half_the_kernel_even_when_dilated() {
        // Kernel 3: at most 1.
        assert_eq!(pool_padding_limit(3), 1);
        assert_eq!(
            pool_output(7, 3, 1, 2, 1, false),
            Err(SizeError::PaddingTooLarge { pad: 2, kernel: 3 })
        );
        // Kernel 2 with dilation 3 spans 4, but takes padding 1 only, as in PyTorch.
        assert_eq!(pool_output(8, 2, 1, 1, 3, false), Ok(7));
        assert_eq!(
            pool_output(8, 2, 1, 2, 3, false),
            Err(SizeError::PaddingTooLarge { pad: 2, kernel: 2 })
        );
    }

    #[test]
    fn conv_transpose_output_matches_the_pytorch_formula() {
        // A 2x upsampling: 7, kernel 4, stride 2, pad 1: 6 * 2 - 2 + 3 + 1 = 14.
        assert_eq!(conv_transpose_output(7, 4, 2, 1, 1, 0), Ok(14));
        // Output padding picks the odd size: 7, kernel 3, stride 2, pad 1, output padding 1: 12 - 2 + 2 + 1 +
        // 1 = 14.
        assert_eq!(conv_transpose_output(7, 3, 2, 1, 1, 1), Ok(14));
        // Output padding must be below the stride or the dilation.
        assert!(matches!(
            conv_transpose_output(7, 3, 2, 1, 1, 2),
            Err(SizeError::OutputPaddingTooLarge { .. })
        ));
        assert_eq!(conv_transpose_output(7, 3, 1, 0, 2, 1), Ok(12));
        // 1, kernel 1, pad 1: 0 * 1 + 1 = 1 before cropping 2.
        assert_eq!(
            conv_transpose_output(1, 1, 1, 1, 1, 0),
            Err(SizeError::PaddingRemovesOutput {
                uncropped: 1,
                removed: 2
            })
        );
    }

    #[test]
    fn zero_arguments_and_overflow_are_errors_not_panics() {
        assert_eq!(
            conv_output(4, 3, 0, (0, 0), 1),
            Err(SizeError::Zero(Positive::Stride))
        );
        assert_eq!(
            conv_output(4, 0, 1, (0, 0), 1),
            Err(SizeError::Zero(Positive::Kernel))
        );
        assert_eq!(
            pool_output(4, 3, 1, 0, 0, false),
            Err(SizeError::Zero(Positive::Dilation))
        );
        assert_eq!(
            pool_output(0, 1, 1, 0, 1, false),
            Err(SizeError::Zero(Positive::Input))
        );
        assert_eq!(
            conv_output(u64::MAX, 1, 1, (1, 1), 1),
            Err(SizeError::Overflow)
        );
        assert_eq!(
            pool_output(1, u64::MAX, 1, 0, 2, false),
            Err(SizeError::Overflow)
        );
        assert_eq!(
            conv_transpose_output(u64::MAX, 2, 2, 0, 1, 0),
            Err(SizeError::Overflow)
        );
        assert_eq!(
            windows_span(0, 1, 1, 1),
            Err(SizeError::Zero(Positive::Output))
        );
    }

    #[test]
    fn errors_read_like_the_runtime_reported_them() {
        let message = |e: Result<u64, SizeError>| e.unwrap_err().to_string();
        assert_eq!(
            message(conv_output(7, 8, 1, (0, 0), 1)),
            "kernel 8 is larger than the padded input 7"
        );
        assert_eq!(
            message(conv_output(4, 3, 1, (0, 0), 2)),
            "kernel 3 (dilation 2, extent 5) is larger than the padded input 4"
        );
        assert_eq!(
            message(pool_output(7, 3, 1, 2, 1, false)),
            "pad 2 should be at most half of the kernel 3"
        );
        assert_eq!(
            message(conv_output(7, 3, 0, (0, 0), 1)),
            "stride must be at least 1, found 0"
        );
    }

    #[test]
    fn range_checks_name_the_limit() {
        assert_eq!(check_dim(0, 0), Ok(0));
        assert_eq!(check_dim(2_147_483_647, 1), Ok(2_147_483_647));
        // PyTorch indexes with 32-bit integers: 2^31 - 1 is the limit.
        assert_eq!(MAX_DIM, 2_147_483_647);
        assert_eq!(
            check_dim(0, 1).unwrap_err().to_string(),
            "must be at least 1, found 0"
        );
        assert_eq!(
            check_dim(-1, 0).unwrap_err().to_string(),
            "must be non-negative, found -1"
        );
        assert_eq!(
            check_dim(1 << 31, 1).unwrap_err().to_string(),
            "2147483648 is larger than the limit 2147483647"
        );
    }

    #[test]
    fn spell_out_writes_the_formula() {
        assert_eq!(
            spell_out(56, 3, 2, (1, 1), 1, false, 28),
            "floor((56 + 2×1 − 3) / 2) + 1 = 28"
        );
        assert_eq!(
            spell_out(8, 4, 1, (1, 2), 1, false, 8),
            "8 + 1 + 2 − 4 + 1 = 8"
        );
    }
}
