//! Properties written from the definitions rather than the closed-form formulas: an output size is the number
//! of windows that may start, counted one by one; a transposed convolution undoes a convolution's sizes; `same`
//! padding keeps the size; nothing panics, whatever the arguments.

use archc_shape::{
    conv_output, conv_transpose_output, effective_kernel, pool_output, same_padding, spell_out,
    windows_span, SizeError,
};
use proptest::prelude::*;

/// How many windows a convolution has, counted: a window may start at every multiple of the stride (in padded
/// coordinates) from which its whole dilated extent lies inside the padded input.
fn count_conv_windows(input: u64, kernel: u64, stride: u64, pad: (u64, u64), dilation: u64) -> u64 {
    let padded = input + pad.0 + pad.1;
    let extent = dilation * (kernel - 1) + 1;
    (0..)
        .map(|o| o * stride)
        .take_while(|start| start + extent <= padded)
        .count() as u64
}

/// How many windows a pool has, counted. Floor mode: every window lies inside the padded input. Ceil mode: a
/// window may also hang over the end by less than a stride, but it must start inside the input or its left
/// padding (PyTorch's "ensure that the last pooling starts inside the image").
fn count_pool_windows(
    input: u64,
    kernel: u64,
    stride: u64,
    pad: u64,
    dilation: u64,
    ceil: bool,
) -> u64 {
    let padded = input + 2 * pad;
    let extent = dilation * (kernel - 1) + 1;
    let overhang = if ceil { stride - 1 } else { 0 };
    (0..)
        .map(|o| o * stride)
        .take_while(|start| start + extent <= padded + overhang && *start < input + pad)
        .count() as u64
}

fn small() -> impl Strategy<Value = u64> {
    1u64..=40
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_output_is_the_number_of_windows(
        input in small(), kernel in 1u64..=9, stride in 1u64..=5, pad in (0u64..=6, 0u64..=6),
        dilation in 1u64..=4,
    ) {
        let windows = count_conv_windows(input, kernel, stride, pad, dilation);
        match conv_output(input, kernel, stride, pad, dilation) {
            Ok(out) => prop_assert_eq!(out, windows),
            Err(SizeError::WindowTooLarge { .. }) => prop_assert_eq!(windows, 0),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn pool_output_is_the_number_of_windows(
        input in small(), kernel in 1u64..=9, stride in 1u64..=5, pad in 0u64..=4, dilation in 1u64..=4,
        ceil in any::<bool>(),
    ) {
        let result = pool_output(input, kernel, stride, pad, dilation, ceil);
        if pad > kernel / 2 {
            prop_assert_eq!(result, Err(SizeError::PaddingTooLarge { pad, kernel }));
            return Ok(());
        }
        let windows = count_pool_windows(input, kernel, stride, pad, dilation, ceil);
        match result {
            Ok(out) => {
                prop_assert_eq!(out, windows);
                // The last window starts inside the input or its left padding.
                prop_assert!((out - 1) * stride < input + pad);
            }
            Err(SizeError::WindowTooLarge { .. }) => prop_assert_eq!(windows, 0),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    /// Floor mode never reads past the padded input, and ceil mode gives at most one window more.
    #[test]
    fn ceil_mode_adds_at_most_one_window(
        input in small(), kernel in 1u64..=9, stride in 1u64..=5, pad in 0u64..=4, dilation in 1u64..=4,
    ) {
        let pad = pad.min(kernel / 2);
        let floor = pool_output(input, kernel, stride, pad, dilation, false);
        let ceil = pool_output(input, kernel, stride, pad, dilation, true);
        if let Ok(floor) = floor {
            prop_assert!(windows_span(floor, kernel, stride, dilation).unwrap() <= input + 2 * pad);
            let ceil = ceil.unwrap();
            prop_assert!(ceil == floor || ceil == floor + 1, "floor {} ceil {}", floor, ceil);
        }
    }

    /// A transposed convolution maps the output size of a convolution back to its input size, with the output
    /// padding choosing among the inputs that a strided convolution maps to the same size.
    #[test]
    fn conv_transpose_undoes_conv(
        input in small(), kernel in 1u64..=9, stride in 1u64..=5, pad in 0u64..=6, dilation in 1u64..=4,
    ) {
        let Ok(out) = conv_output(input, kernel, stride, (pad, pad), dilation) else {
            return Ok(());
        };
        let extent = effective_kernel(kernel, dilation).unwrap();
        // The rows the convolution's last window leaves over: what output padding puts back.
        let leftover = (input + 2 * pad - extent) % stride;
        prop_assert_eq!(conv_transpose_output(out, kernel, stride, pad, dilation, leftover), Ok(input));
        // Every output padding below the stride gives an input the convolution maps to the same size.
        for output_padding in 0..stride {
            if let Ok(back) = conv_transpose_output(out, kernel, stride, pad, dilation, output_padding) {
                prop_assert_eq!(conv_output(back, kernel, stride, (pad, pad), dilation), Ok(out));
            }
        }
    }

    #[test]
    fn same_padding_keeps_the_size(input in small(), kernel in 1u64..=9, dilation in 1u64..=4) {
        let (before, after) = same_padding(kernel, 1, dilation).unwrap();
        prop_assert_eq!(before + after, dilation * (kernel - 1));
        prop_assert!(before <= after && after <= before + 1);
        prop_assert_eq!(conv_output(input, kernel, 1, (before, after), dilation), Ok(input));
        prop_assert_eq!(
            same_padding(kernel, 2, dilation),
            Err(SizeError::SameNeedsStrideOne { stride: 2 })
        );
    }

    /// Any 64-bit arguments: a size or an error, never a panic (overflow, division by zero).
    #[test]
    fn no_arguments_panic(
        a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), d in any::<u64>(), e in any::<u64>(),
        f in any::<u64>(), ceil in any::<bool>(),
    ) {
        let _ = conv_output(a, b, c, (d, e), f);
        let _ = pool_output(a, b, c, d, e, ceil);
        let _ = conv_transpose_output(a, b, c, d, e, f);
        let _ = same_padding(a, b, c);
        let _ = windows_span(a, b, c, d);
        let _ = effective_kernel(a, b);
        let _ = spell_out(a, b, c, (d, e), f, ceil, a);
        if let Err(error) = pool_output(a, b, c, d, e, ceil) {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

/// Every combination of 0, 1 and 2 for the sizes that must be positive: a `Zero` error exactly when one is 0.
#[test]
fn zero_arguments_are_errors() {
    for values in 0u64..3 * 3 * 3 * 3 {
        let [input, kernel, stride, dilation] =
            [values % 3, values / 3 % 3, values / 9 % 3, values / 27];
        let zero = input == 0 || kernel == 0 || stride == 0 || dilation == 0;
        let pool = pool_output(input, kernel, stride, 0, dilation, false);
        assert_eq!(matches!(pool, Err(SizeError::Zero(_))), zero, "{values}");
        let transpose = conv_transpose_output(input, kernel, stride, 0, dilation, 0);
        assert_eq!(
            matches!(transpose, Err(SizeError::Zero(_))),
            zero,
            "{values}"
        );
    }
}
