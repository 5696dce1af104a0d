//! Shape arithmetic shared by the runtime layers and by generated constructors.
//!
//! Output sizes come from `archc-shape`, the one copy of PyTorch's formulas that the checker uses
//! too, so a generated model computes the sizes its `.arch` file was checked with. This module
//! adapts them to `usize` and candle errors; nothing here panics.

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

/// A size as archc-shape computes it, in `u64`.
pub(crate) fn wide(v: usize) -> u64 {
    // usize is at most 64 bits on every target Rust supports.
    v as u64
}

/// A size from archc-shape's `u64` arithmetic back as a `usize`.
pub(crate) fn narrow(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| crate::error(format!("size {v} does not fit in usize")))
}

/// The output length of a convolution along one axis, as `torch.nn.Conv2d` computes it:
/// [`archc_shape::conv_output`] (`floor((input + pad_lo + pad_hi - dilation * (kernel - 1) - 1) /
/// stride) + 1`) in `usize`, its errors as candle errors.
///
/// `pad` is `(before, after)`; PyTorch's symmetric `padding = p` is `(p, p)`.
pub fn conv_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> Result<usize> {
    archc_shape::conv_output(
        wide(input),
        wide(kernel),
        wide(stride),
        (wide(pad.0), wide(pad.1)),
        wide(dilation),
    )
    .map_err(|e| crate::error(e.to_string()))
    .and_then(narrow)
}

/// The output length of a pooling layer along one axis, as ATen's `pooling_output_shape` computes
/// it for `MaxPool2d` and `AvgPool2d`: [`archc_shape::pool_output`] in `usize`, its errors as candle
/// errors. As in PyTorch, `pad` may be at most half the kernel (dilated or not), and in ceil mode a
/// window may hang over the end of the padded input. Average pooling has no dilation: pass 1.
pub fn pool_out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    archc_shape::pool_output(
        wide(input),
        wide(kernel),
        wide(stride),
        wide(pad),
        wide(dilation),
        ceil_mode,
    )
    .map_err(|e| crate::error(e.to_string()))
    .and_then(narrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_adapters_call_archc_shape_and_keep_its_wording() {
        // The formulas are tested in archc-shape; here only the usize and error conversions.
        assert_eq!(conv_out_size(224, 7, 2, (3, 3), 1).unwrap(), 112);
        assert_eq!(pool_out_size(112, 3, 2, 0, 1, true).unwrap(), 56);
        let err = conv_out_size(4, 3, 1, (0, 0), 2).unwrap_err().to_string();
        assert!(err.contains("kernel 3 (dilation 2, extent 5)"), "{err}");
        let err = pool_out_size(7, 3, 1, 2, 1, false).unwrap_err().to_string();
        assert!(
            err.contains("pad 2 should be at most half of the kernel 3"),
            "{err}"
        );
        assert!(conv_out_size(usize::MAX, 3, 1, (1, 1), 1).is_err());
        assert!(pool_out_size(7, 3, 0, 0, 1, false).is_err());
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
