//! Output-size arithmetic: PyTorch's (and Caffe's) formulas for convolution and pooling, with checked integers
//! and a written-out form of each computation for diagnostics.

/// Why an output size could not be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// The (dilated) window does not fit in the padded input.
    WindowTooLarge {
        effective_kernel: u64,
        padded_input: u64,
    },
    /// The arithmetic overflowed 64 bits.
    Overflow,
}

/// The spatial output size of a convolution along one axis:
/// `floor((input + pad_lo + pad_hi - dilation * (kernel - 1) - 1) / stride) + 1`.
pub(crate) fn conv_output(
    input: u64,
    kernel: u64,
    stride: u64,
    (pad_lo, pad_hi): (u64, u64),
    dilation: u64,
) -> Result<u64, SizeError> {
    let padded = input
        .checked_add(pad_lo)
        .and_then(|v| v.checked_add(pad_hi))
        .ok_or(SizeError::Overflow)?;
    let effective = effective_kernel(kernel, dilation)?;
    if effective > padded {
        return Err(SizeError::WindowTooLarge {
            effective_kernel: effective,
            padded_input: padded,
        });
    }
    Ok((padded - effective) / stride + 1)
}

/// The spatial output size of a pooling window along one axis, as PyTorch's `pooling_output_shape` computes it
/// (Caffe agrees in ceil mode): `floor_or_ceil((input + 2 * pad - dilation * (kernel - 1) - 1) / stride) + 1`,
/// and in ceil mode the last window is dropped when it would start in the right padding:
/// `if (out - 1) * stride >= input + pad { out -= 1 }`. In ceil mode a window may hang over the end of the
/// padded input, as in PyTorch: an input of 2 pooled by a window of 3 with stride 2 gives 1.
pub(crate) fn pool_output(
    input: u64,
    kernel: u64,
    stride: u64,
    pad: u64,
    dilation: u64,
    ceil_mode: bool,
) -> Result<u64, SizeError> {
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(input))
        .ok_or(SizeError::Overflow)?;
    let effective = effective_kernel(kernel, dilation)?;
    let too_large = SizeError::WindowTooLarge {
        effective_kernel: effective,
        padded_input: padded,
    };
    // Signed arithmetic in 128 bits: the numerator is negative when the window overhangs, and ceil mode's
    // rounding term may bring it back to zero.
    let rounding = if ceil_mode { i128::from(stride) - 1 } else { 0 };
    let numerator = i128::from(padded) - i128::from(effective) + rounding;
    let mut output = numerator.div_euclid(i128::from(stride)) + 1;
    if ceil_mode && (output - 1) * i128::from(stride) >= i128::from(input) + i128::from(pad) {
        output -= 1;
    }
    if output < 1 {
        return Err(too_large);
    }
    u64::try_from(output).map_err(|_| SizeError::Overflow)
}

/// `dilation * (kernel - 1) + 1`
pub(crate) fn effective_kernel(kernel: u64, dilation: u64) -> Result<u64, SizeError> {
    dilation
        .checked_mul(kernel.saturating_sub(1))
        .and_then(|v| v.checked_add(1))
        .ok_or(SizeError::Overflow)
}

/// The formula behind [`conv_output`] or [`pool_output`] written out with numbers, for notes:
/// `floor((56 + 2×1 − 3) / 2) + 1 = 28`.
pub(crate) fn spell_out(
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
        assert_eq!(
            conv_output(3, 5, 1, (0, 0), 1),
            Err(SizeError::WindowTooLarge {
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
        // The ceil-mode correction: 6 with kernel 2, stride 2, pad 1: ceil((6 + 2 - 2) / 2) + 1 = 4, but the
        // 4th window would start at 3 * 2 = 6 >= 6 + 1? No (6 < 7), so 4 stays.
        assert_eq!(pool_output(6, 2, 2, 1, 1, true), Ok(4));
        // 5 with kernel 2, stride 2, pad 1: ceil(5 / 2) + 1 = 4; window 4 starts at 6 >= 5 + 1, so 3.
        assert_eq!(pool_output(5, 2, 2, 1, 1, true), Ok(3));
        // An 8x8 average pool on a 7x7 map does not fit.
        assert!(matches!(
            pool_output(7, 8, 1, 0, 1, false),
            Err(SizeError::WindowTooLarge { .. })
        ));
        // In ceil mode a window may overhang the input, as in PyTorch: 2 pooled by 3 with stride 2 gives
        // ceil((2 - 3) / 2) + 1 = 1 (floor mode: no window fits).
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
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert_eq!(
            conv_output(u64::MAX, 1, 1, (1, 1), 1),
            Err(SizeError::Overflow)
        );
        assert_eq!(
            pool_output(1, u64::MAX, 1, 0, 2, false),
            Err(SizeError::Overflow)
        );
    }
}
