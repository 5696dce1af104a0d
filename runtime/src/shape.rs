//! Shape arithmetic shared by the runtime layers and by generated constructors.
//!
//! Output sizes follow PyTorch's formulas exactly (`torch.nn.Conv2d`, and `pooling_output_shape`
//! in ATen's `Pool.h` for pooling), so a generated model produces the same spatial sizes as the
//! PyTorch model it mirrors. Every function here uses checked arithmetic and reports bad
//! arguments as a [`candle_core::Error`] naming what was expected; nothing here panics.

use std::fmt;

use candle_core::{Result, Tensor};

/// The per-sample shape of an activation, as generated code tracks it at construction time to
/// infer the input channels of the next layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dims {
    /// A feature map: channels, height, width.
    Chw(usize, usize, usize),
    /// A flat feature vector, e.g. after `flatten` or a linear layer.
    Flat(usize),
}

impl Dims {
    /// The channel count of a feature map, or the length of a flat vector: what the next
    /// convolution or linear layer sees as its input size.
    pub fn channels(&self) -> usize {
        match *self {
            Dims::Chw(c, _, _) => c,
            Dims::Flat(n) => n,
        }
    }

    /// The number of values per sample; an error if it overflows `usize`.
    pub fn elem_count(&self) -> Result<usize> {
        match *self {
            Dims::Chw(c, h, w) => c
                .checked_mul(h)
                .and_then(|ch| ch.checked_mul(w))
                .ok_or_else(|| {
                    crate::error(format!("the element count of {self} overflows usize"))
                }),
            Dims::Flat(n) => Ok(n),
        }
    }

    /// The dimensions as a slice-like vector, without the batch dimension.
    pub fn to_vec(&self) -> Vec<usize> {
        match *self {
            Dims::Chw(c, h, w) => vec![c, h, w],
            Dims::Flat(n) => vec![n],
        }
    }
}

impl fmt::Display for Dims {
    /// Writes the dimensions the way shapes are written in `.arch` files: `[64, 56, 56]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dims::Chw(c, h, w) => write!(f, "[{c}, {h}, {w}]"),
            Dims::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// Returns the `(n, c, h, w)` dimensions of `x`, or an error naming `op` and the shape found when
/// `x` is not a rank-4 NCHW tensor.
pub fn expect_nchw(x: &Tensor, op: &str) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [n, c, h, w] => Ok((n, c, h, w)),
        ref dims => Err(crate::error(format!(
            "{op} expects a rank-4 NCHW tensor, found shape {dims:?} (rank {})",
            dims.len()
        ))),
    }
}

/// The spatial extent a kernel covers once dilated: `dilation * (kernel - 1) + 1`.
fn effective_kernel(kernel: usize, dilation: usize) -> Result<usize> {
    if kernel == 0 {
        return Err(crate::error("kernel size must be at least 1, found 0"));
    }
    if dilation == 0 {
        return Err(crate::error("dilation must be at least 1, found 0"));
    }
    dilation
        .checked_mul(kernel - 1)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| {
            crate::error(format!(
                "kernel {kernel} with dilation {dilation} overflows usize"
            ))
        })
}

/// Describes a kernel for error messages: `kernel 3` or `kernel 3 (dilation 2, extent 5)`.
fn describe_kernel(kernel: usize, dilation: usize, effective: usize) -> String {
    if dilation == 1 {
        format!("kernel {kernel}")
    } else {
        format!("kernel {kernel} (dilation {dilation}, extent {effective})")
    }
}

/// The output length of a convolution along one axis, as `torch.nn.Conv2d` computes it:
/// `floor((input + pad_lo + pad_hi - dilation * (kernel - 1) - 1) / stride) + 1`.
///
/// `pad` is `(before, after)`; PyTorch's symmetric `padding = p` is `(p, p)`, and `'same'`
/// padding is `(total / 2, total - total / 2)` with `total = dilation * (kernel - 1)`.
///
/// Errors when the kernel, stride or dilation is zero, when the dilated kernel does not fit the
/// padded input, or on overflow.
pub fn conv_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> Result<usize> {
    if stride == 0 {
        return Err(crate::error("stride must be at least 1, found 0"));
    }
    let effective = effective_kernel(kernel, dilation)?;
    let padded = input
        .checked_add(pad.0)
        .and_then(|v| v.checked_add(pad.1))
        .ok_or_else(|| crate::error(format!("input {input} padded by {pad:?} overflows usize")))?;
    if effective > padded {
        return Err(crate::error(format!(
            "{} is larger than the padded input {padded}",
            describe_kernel(kernel, dilation, effective)
        )));
    }
    Ok((padded - effective) / stride + 1)
}

/// The output length of a pooling layer along one axis, exactly as ATen's
/// `pooling_output_shape` computes it for `MaxPool2d` and `AvgPool2d`:
///
/// ```text
/// out = floor_or_ceil((input + 2 * pad - dilation * (kernel - 1) - 1) / stride) + 1
/// if ceil_mode and (out - 1) * stride >= input + pad { out -= 1 }
/// ```
///
/// The correction keeps the last window starting inside the input or its left padding. As in
/// PyTorch, `pad` may be at most half the dilated kernel extent, and in ceil mode a window may
/// hang over the end of the padded input (an input of 2 pooled with kernel 3, stride 2 gives 1).
/// Average pooling has no dilation: pass 1.
///
/// Errors on a zero kernel, stride or dilation, on too much padding, when the output would be
/// empty, or on overflow.
pub fn pool_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    if stride == 0 {
        return Err(crate::error("stride must be at least 1, found 0"));
    }
    let effective = effective_kernel(kernel, dilation)?;
    if pad > effective / 2 {
        return Err(crate::error(format!(
            "pad {pad} should be at most half of the {}",
            describe_kernel(kernel, dilation, effective)
        )));
    }
    let overflow = || crate::error(format!("pooling an input of {input} overflows i64"));
    let to_i64 = |v: usize| i64::try_from(v).map_err(|_| overflow());
    let (input_i, pad_i, stride_i, effective_i) = (
        to_i64(input)?,
        to_i64(pad)?,
        to_i64(stride)?,
        to_i64(effective)?,
    );
    let padded = pad_i
        .checked_mul(2)
        .and_then(|p| p.checked_add(input_i))
        .ok_or_else(overflow)?;
    let rounding = if ceil_mode { stride_i - 1 } else { 0 };
    let numerator = padded - effective_i + rounding;
    // div_euclid with a positive divisor rounds towards negative infinity, like ATen's div_rtn.
    let mut out = numerator.div_euclid(stride_i) + 1;
    if ceil_mode && (out - 1).checked_mul(stride_i).ok_or_else(overflow)? >= input_i + pad_i {
        out -= 1;
    }
    if out < 1 {
        return Err(crate::error(if effective_i > padded {
            format!(
                "{} is larger than the padded input {padded}",
                describe_kernel(kernel, dilation, effective),
            )
        } else {
            format!("pooling an input of {input} gives an empty output ({out})")
        }));
    }
    usize::try_from(out).map_err(|_| overflow())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_out_size_matches_pytorch_formula() {
        // GoogLeNet conv1: 224, kernel 7, stride 2, pad 3 -> floor((224 + 6 - 7) / 2) + 1 = 112.
        assert_eq!(conv_out_size(224, 7, 2, (3, 3), 1).unwrap(), 112);
        // 3x3 'same' with stride 1 keeps the size.
        assert_eq!(conv_out_size(28, 3, 1, (1, 1), 1).unwrap(), 28);
        // Dilation 2 on a 3 kernel spans 5: (10 - 5) / 1 + 1 = 6.
        assert_eq!(conv_out_size(10, 3, 1, (0, 0), 2).unwrap(), 6);
        // Asymmetric 'same' for an even kernel: total pad 3 split (1, 2): (8 + 3 - 4) / 1 + 1 = 8.
        assert_eq!(conv_out_size(8, 4, 1, (1, 2), 1).unwrap(), 8);
    }

    #[test]
    fn conv_out_size_rejects_a_kernel_larger_than_the_input() {
        let err = conv_out_size(7, 8, 1, (0, 0), 1).unwrap_err().to_string();
        assert!(
            err.contains("kernel 8 is larger than the padded input 7"),
            "{err}"
        );
        let err = conv_out_size(4, 3, 1, (0, 0), 2).unwrap_err().to_string();
        assert!(err.contains("kernel 3 (dilation 2, extent 5)"), "{err}");
        assert!(conv_out_size(4, 3, 0, (0, 0), 1).is_err());
        assert!(conv_out_size(4, 0, 1, (0, 0), 1).is_err());
        assert!(conv_out_size(usize::MAX, 3, 1, (1, 1), 1).is_err());
    }

    #[test]
    fn pool_out_size_floor_and_ceil_modes() {
        // GoogLeNet maxpool1: 112, kernel 3, stride 2, ceil: ceil((112 - 3) / 2) + 1 = 55 + 1 = 56.
        assert_eq!(pool_out_size(112, 3, 2, 0, 1, true).unwrap(), 56);
        // Floor mode: floor(109 / 2) + 1 = 55.
        assert_eq!(pool_out_size(112, 3, 2, 0, 1, false).unwrap(), 55);
        // maxpool4: 14, kernel 2, stride 2, ceil: ceil(12 / 2) + 1 = 7.
        assert_eq!(pool_out_size(14, 2, 2, 0, 1, true).unwrap(), 7);
        // 6, kernel 2, stride 2, pad 1, ceil: ceil((6 + 2 - 2) / 2) + 1 = 4, and the last window
        // would start at 3 * 2 = 6 >= 6 + 1? no, so 4 stays.
        assert_eq!(pool_out_size(6, 2, 2, 1, 1, true).unwrap(), 4);
        // 5, kernel 2, stride 2, pad 1, ceil: ceil((5 + 2 - 2) / 2) + 1 = 3 + 1 = 4, but the last
        // window starts at 3 * 2 = 6 >= 5 + 1, inside the right padding only: dropped -> 3.
        assert_eq!(pool_out_size(5, 2, 2, 1, 1, true).unwrap(), 3);
        // Ceil mode lets a window hang over the end: input 2, kernel 3, stride 2 -> 1.
        assert_eq!(pool_out_size(2, 3, 2, 0, 1, true).unwrap(), 1);
        // Dilation: 7, kernel 3, dilation 2 (extent 5), stride 1 -> 3.
        assert_eq!(pool_out_size(7, 3, 1, 0, 2, false).unwrap(), 3);
    }

    #[test]
    fn pool_out_size_errors() {
        let err = pool_out_size(7, 8, 1, 0, 1, false).unwrap_err().to_string();
        assert!(
            err.contains("kernel 8 is larger than the padded input 7"),
            "{err}"
        );
        let err = pool_out_size(7, 3, 1, 2, 1, false).unwrap_err().to_string();
        assert!(
            err.contains("pad 2 should be at most half of the kernel 3"),
            "{err}"
        );
        assert!(pool_out_size(7, 3, 0, 0, 1, false).is_err());
        assert!(pool_out_size(7, 3, 1, 0, 0, false).is_err());
        assert!(pool_out_size(2, 3, 2, 0, 1, false).is_err());
    }

    #[test]
    fn dims_display_like_arch_shapes() {
        assert_eq!(Dims::Chw(64, 56, 56).to_string(), "[64, 56, 56]");
        assert_eq!(Dims::Flat(1024).to_string(), "[1024]");
        assert_eq!(Dims::Chw(64, 56, 56).channels(), 64);
        assert_eq!(Dims::Chw(2, 3, 4).elem_count().unwrap(), 24);
        assert!(Dims::Chw(usize::MAX, 2, 1).elem_count().is_err());
    }

    #[test]
    fn expect_nchw_names_the_shape_found() {
        let x = Tensor::zeros((3, 4), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let err = expect_nchw(&x, "max_pool2d").unwrap_err().to_string();
        assert!(err.contains("rank-4 NCHW"), "{err}");
        assert!(err.contains("[3, 4]"), "{err}");
    }
}
