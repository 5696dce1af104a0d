//! The interface archc-generated code calls: one constructor per built-in layer of the `.arch` language,
//! taking the argument values in the language's order, checking them, loading the layer's tensors, and
//! returning the layer with its output shape.
//!
//! Generated models track each activation's per-sample shape ([`Dims`]) while they are built, so in-channel
//! counts are inferred exactly as the checker inferred them and any `Config` works, not only the defaults.
//! Every error names the `.arch` location (`at`) of the statement it comes from.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub use crate::shape::Dims;
use crate::{
    error, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormSpec, Conv2d, Conv2dSpec, Lrn,
    MaxPool2d, Pad2d,
};

/// An `.arch` size argument: an integer or an `[h, w]` pair.
pub trait IntoHw {
    /// The `(height, width)` pair, each at least `min`.
    fn into_hw(self, what: &str, min: i64, at: &str) -> Result<(usize, usize)>;
}

/// `value` within `min..=MAX_DIM`, the checker's rule ([`archc_shape::check_dim`]).
fn checked_dim(value: i64, what: &str, min: i64, at: &str) -> Result<usize> {
    archc_shape::check_dim(value, min)
        .map_err(|e| error(format!("{at}: `{what}` {e}")))
        .and_then(crate::shape::narrow)
}

impl IntoHw for i64 {
    fn into_hw(self, what: &str, min: i64, at: &str) -> Result<(usize, usize)> {
        let v = checked_dim(self, what, min, at)?;
        Ok((v, v))
    }
}

impl IntoHw for (i64, i64) {
    fn into_hw(self, what: &str, min: i64, at: &str) -> Result<(usize, usize)> {
        Ok((
            checked_dim(self.0, what, min, at)?,
            checked_dim(self.1, what, min, at)?,
        ))
    }
}

/// `[v, v]`: an integer used where a pair is expected.
pub fn pair(v: i64) -> (i64, i64) {
    (v, v)
}

/// A convolution's padding: explicit per axis, or `same`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Explicit(i64, i64),
    Same,
}

impl From<i64> for Pad {
    fn from(v: i64) -> Pad {
        Pad::Explicit(v, v)
    }
}

impl From<(i64, i64)> for Pad {
    fn from((h, w): (i64, i64)) -> Pad {
        Pad::Explicit(h, w)
    }
}

fn checked_count(value: i64, what: &str, at: &str) -> Result<usize> {
    checked_dim(value, what, 1, at)
}

impl Dims {
    /// The input shape as declared (`[C, H, W]` or `[F]`).
    pub fn from_declared(dims: &[i64], at: &str) -> Result<Dims> {
        let sizes: Vec<usize> = dims
            .iter()
            .map(|&d| checked_count(d, "size", at))
            .collect::<Result<_>>()?;
        match sizes.as_slice() {
            [c, h, w] => Ok(Dims::Chw(*c, *h, *w)),
            [f] => Ok(Dims::Flat(*f)),
            _ => Err(error(format!(
                "{at}: a shape has 1 or 3 sizes, found {dims:?}"
            ))),
        }
    }

    /// Checks a declared output size (`: [C, H, W]`) against the inferred one.
    pub fn expect(&self, declared: &[i64], at: &str) -> Result<()> {
        let matches = declared.len() == self.to_vec().len()
            && declared
                .iter()
                .zip(self.to_vec())
                .all(|(&d, actual)| d >= 0 && d as usize == actual);
        if matches {
            Ok(())
        } else {
            Err(error(format!(
                "{at}: the statement produces {self}, its declaration says {declared:?}"
            )))
        }
    }

    /// The feature-map dimensions, or an error for a flat shape.
    pub fn chw(&self, layer: &str, at: &str) -> Result<(usize, usize, usize)> {
        match *self {
            Dims::Chw(c, h, w) => Ok((c, h, w)),
            Dims::Flat(_) => Err(error(format!(
                "{at}: {layer} needs a [C, H, W] feature map, its input is {self}"
            ))),
        }
    }

    /// The shape after `flatten`.
    pub fn flatten(&self, at: &str) -> Result<Dims> {
        self.elem_count()
            .map(Dims::Flat)
            .map_err(|e| error(format!("{at}: {e}")))
    }

    /// The shape of a channel concatenation.
    pub fn concat(parts: &[Dims], at: &str) -> Result<Dims> {
        let first = *parts
            .first()
            .ok_or_else(|| error(format!("{at}: concat of nothing")))?;
        let mut channels = 0usize;
        for part in parts {
            let same_space = match (first, part) {
                (Dims::Chw(_, h, w), Dims::Chw(_, h2, w2)) => (h, w) == (*h2, *w2),
                (Dims::Flat(_), Dims::Flat(_)) => true,
                _ => false,
            };
            if !same_space {
                return Err(error(format!(
                    "{at}: concat branches disagree: {}",
                    parts
                        .iter()
                        .map(Dims::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            channels = channels
                .checked_add(part.channels())
                .ok_or_else(|| error(format!("{at}: concatenated channels overflow")))?;
        }
        Ok(match first {
            Dims::Chw(_, h, w) => Dims::Chw(channels, h, w),
            Dims::Flat(_) => Dims::Flat(channels),
        })
    }

    /// The shape of an element-wise sum.
    pub fn add(parts: &[Dims], at: &str) -> Result<Dims> {
        let first = *parts
            .first()
            .ok_or_else(|| error(format!("{at}: add of nothing")))?;
        if parts.iter().any(|p| *p != first) {
            return Err(error(format!(
                "{at}: add branches disagree: {}",
                parts
                    .iter()
                    .map(Dims::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(first)
    }

    /// Checks a model input: rank, per-sample shape and dtype.
    pub fn check_input(&self, xs: &Tensor, source: &str) -> Result<()> {
        let expected = self.to_vec();
        let dims = xs.dims();
        let ok = dims.len() == expected.len() + 1 && dims[1..] == expected[..];
        if !ok {
            let want = expected
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(error(format!(
                "{source}: expected an input of shape [N, {want}], found {dims:?}"
            )));
        }
        if !xs.dtype().is_float() {
            return Err(error(format!(
                "{source}: expected a floating-point input, found {:?}",
                xs.dtype()
            )));
        }
        Ok(())
    }
}

/// `conv2d(out, kernel, stride, pad, dilation, groups, bias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    vb: VarBuilder,
    input: Dims,
    out: i64,
    kernel: impl IntoHw,
    stride: impl IntoHw,
    pad: impl Into<Pad>,
    dilation: impl IntoHw,
    groups: i64,
    bias: bool,
    at: &str,
) -> Result<(Conv2d, Dims)> {
    let (c, h, w) = input.chw("conv2d", at)?;
    let out = checked_count(out, "out", at)?;
    let kernel = kernel.into_hw("kernel", 1, at)?;
    let stride = stride.into_hw("stride", 1, at)?;
    let dilation = dilation.into_hw("dilation", 1, at)?;
    let groups = checked_count(groups, "groups", at)?;
    let pad = match pad.into() {
        Pad::Explicit(ph, pw) => {
            let (ph, pw) = (ph, pw).into_hw("pad", 0, at)?;
            Pad2d::symmetric(ph, pw)
        }
        Pad::Same => {
            use crate::shape::{narrow, wide};
            let axis = |k: usize, s: usize, d: usize| {
                archc_shape::same_padding(wide(k), wide(s), wide(d))
                    .map_err(|e| error(format!("{at}: {e}")))
            };
            let (top, bottom) = axis(kernel.0, stride.0, dilation.0)?;
            let (left, right) = axis(kernel.1, stride.1, dilation.1)?;
            Pad2d {
                top: narrow(top)?,
                bottom: narrow(bottom)?,
                left: narrow(left)?,
                right: narrow(right)?,
            }
        }
    };
    let spec = Conv2dSpec {
        stride,
        pad,
        dilation,
        groups,
    };
    let (oh, ow) = spec
        .output_size(kernel, (h, w))
        .map_err(|e| error(format!("{at}: {e}")))?;
    let context = format!("conv2d at {at}");
    let conv = crate::conv2d(vb, c, out, kernel, spec, bias, &context)?;
    Ok((conv, Dims::Chw(out, oh, ow)))
}

/// `max_pool(kernel, stride, pad, dilation, ceil)`.
pub fn max_pool(
    input: Dims,
    kernel: impl IntoHw,
    stride: impl IntoHw,
    pad: impl IntoHw,
    dilation: impl IntoHw,
    ceil: bool,
    at: &str,
) -> Result<(MaxPool2d, Dims)> {
    let (c, h, w) = input.chw("max_pool", at)?;
    let pool = MaxPool2d {
        kernel: kernel.into_hw("kernel", 1, at)?,
        stride: stride.into_hw("stride", 1, at)?,
        pad: pad.into_hw("pad", 0, at)?,
        dilation: dilation.into_hw("dilation", 1, at)?,
        ceil_mode: ceil,
    };
    let (oh, ow) = pool
        .output_size((h, w))
        .map_err(|e| error(format!("{at}: {e}")))?;
    Ok((pool, Dims::Chw(c, oh, ow)))
}

/// `avg_pool(kernel, stride, pad, ceil, count_include_pad)`.
pub fn avg_pool(
    input: Dims,
    kernel: impl IntoHw,
    stride: impl IntoHw,
    pad: impl IntoHw,
    ceil: bool,
    count_include_pad: bool,
    at: &str,
) -> Result<(AvgPool2d, Dims)> {
    let (c, h, w) = input.chw("avg_pool", at)?;
    let pool = AvgPool2d {
        kernel: kernel.into_hw("kernel", 1, at)?,
        stride: stride.into_hw("stride", 1, at)?,
        pad: pad.into_hw("pad", 0, at)?,
        ceil_mode: ceil,
        count_include_pad,
    };
    let (oh, ow) = pool
        .output_size((h, w))
        .map_err(|e| error(format!("{at}: {e}")))?;
    Ok((pool, Dims::Chw(c, oh, ow)))
}

/// `adaptive_avg_pool(size)`.
pub fn adaptive_avg_pool(
    input: Dims,
    size: impl IntoHw,
    at: &str,
) -> Result<(AdaptiveAvgPool2d, Dims)> {
    let (c, _, _) = input.chw("adaptive_avg_pool", at)?;
    let (oh, ow) = size.into_hw("size", 1, at)?;
    Ok((AdaptiveAvgPool2d::new((oh, ow)), Dims::Chw(c, oh, ow)))
}

/// `global_avg_pool()`: an adaptive average pool to 1×1.
pub fn global_avg_pool(input: Dims, at: &str) -> Result<(AdaptiveAvgPool2d, Dims)> {
    adaptive_avg_pool(input, 1, at)
}

/// `batch_norm(eps, momentum, affine)`.
pub fn batch_norm(
    vb: VarBuilder,
    input: Dims,
    eps: f64,
    momentum: f64,
    affine: bool,
    at: &str,
) -> Result<(BatchNorm, Dims)> {
    let spec = BatchNormSpec {
        eps,
        momentum,
        affine,
    };
    let context = format!("batch_norm at {at}");
    let bn = crate::batch_norm(vb, input.channels(), spec, &context)?;
    Ok((bn, input))
}

/// `lrn(size, alpha, beta, k)`.
pub fn lrn(input: Dims, size: i64, alpha: f64, beta: f64, k: f64, at: &str) -> Result<(Lrn, Dims)> {
    input.chw("lrn", at)?;
    let size = checked_count(size, "size", at)?;
    Ok((
        Lrn {
            size,
            alpha,
            beta,
            k,
        },
        input,
    ))
}

/// `dropout(p)`.
pub fn dropout(input: Dims, p: f64, at: &str) -> Result<(candle_nn::Dropout, Dims)> {
    if !(0.0..=1.0).contains(&p) {
        return Err(error(format!(
            "{at}: dropout probability must be in [0, 1], found {p}"
        )));
    }
    Ok((candle_nn::Dropout::new(p as f32), input))
}

/// `linear(out, bias)`.
pub fn linear(
    vb: VarBuilder,
    input: Dims,
    out: i64,
    bias: bool,
    at: &str,
) -> Result<(candle_nn::Linear, Dims)> {
    let in_features = match input {
        Dims::Flat(f) => f,
        Dims::Chw(..) => {
            return Err(error(format!(
                "{at}: linear needs a flat input, its input is the feature map {input}; insert `flatten`"
            )))
        }
    };
    let out = checked_count(out, "out", at)?;
    let context = format!("linear at {at}");
    let layer = crate::linear(vb, in_features, out, bias, &context)?;
    Ok((layer, Dims::Flat(out)))
}

/// The element-wise sum of an `add` group's branches.
pub fn sum(parts: &[&Tensor]) -> Result<Tensor> {
    let (first, rest) = parts
        .split_first()
        .ok_or_else(|| error("add of no branches"))?;
    rest.iter()
        .try_fold((*first).clone(), |acc, part| acc + *part)
}
