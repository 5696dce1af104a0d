//! Normalisation layers: `torch.nn.LocalResponseNorm` and a batch norm that checks its input
//! the way PyTorch does.
//!
//! candle's `candle_nn::BatchNorm` already matches PyTorch: in training it normalises with the
//! biased batch variance over every dimension but the channel one, and updates the running mean
//! and the running variance (with the *unbiased* batch variance, `n / (n - 1)` times the biased
//! one) by `momentum`; in evaluation it uses the running statistics. [`BatchNorm`] wraps it to
//! load its four tensors with descriptive errors and to reject inputs PyTorch rejects.
//!
//! Mixed precision: in a model loaded as `f16` or `bf16`, batch norm keeps its four tensors in
//! `f32` and normalises in `f32`, as PyTorch's autocast does (half-precision running statistics
//! drift, and candle's own layer mixes dtypes there); local response norm also computes in `f32`.
//! The output has the input's dtype.

use candle_core::{DType, Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::load::load_tensor_with_init;

/// `torch.nn.LocalResponseNorm`: normalises each value by the energy of nearby channels,
///
/// ```text
/// b[c] = a[c] / (k + alpha / size * sum(a[c'] ^ 2 for c' in c - size/2 ..= c + (size-1)/2)) ^ beta
/// ```
///
/// where channels outside `0..C` count as zero (the window is zero padded, and the divisor is
/// always `size`). Channels are dimension 1 of an `[N, C, ...]` tensor of rank 3 or more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    /// Number of channels in the window.
    pub size: usize,
    /// Scale of the sum of squares; PyTorch's default is `1e-4`.
    pub alpha: f64,
    /// Exponent; PyTorch's default is `0.75`.
    pub beta: f64,
    /// Additive constant; PyTorch's default is `1.0`.
    pub k: f64,
}

impl Lrn {
    /// A window of `size` channels with PyTorch's defaults `alpha = 1e-4`, `beta = 0.75`,
    /// `k = 1`.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }
}

/// `x` in `f32` when it is `f16` or `bf16`, for a computation that needs the range or precision;
/// `None` when it is already `f32` or `f64`.
fn widened(x: &Tensor) -> Result<Option<Tensor>> {
    match x.dtype() {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32).map(Some),
        _ => Ok(None),
    }
}

impl Module for Lrn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(wide) = widened(x)? {
            return self.forward(&wide)?.to_dtype(x.dtype());
        }
        if x.rank() < 3 {
            return Err(crate::error(format!(
                "local_response_norm expects an [N, C, ...] tensor of rank 3 or more, found \
                 shape {:?}",
                x.dims()
            )));
        }
        if self.size == 0 {
            return Err(crate::error(
                "local_response_norm size must be at least 1, found 0",
            ));
        }
        let channels = x.dim(1)?;
        let squares = x
            .sqr()?
            .pad_with_zeros(1, self.size / 2, (self.size - 1) / 2)?;
        let mut window_sum = squares.narrow(1, 0, channels)?;
        for offset in 1..self.size {
            window_sum = (window_sum + squares.narrow(1, offset, channels)?)?;
        }
        // PyTorch averages the window (avg_pool3d), then applies alpha and k.
        let divisor = (window_sum / self.size as f64)?
            .affine(self.alpha, self.k)?
            .powf(self.beta)?;
        x / divisor
    }
}

/// The options of a [`BatchNorm`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormSpec {
    /// Added to the variance before the square root; default `1e-5`.
    pub eps: f64,
    /// Weight of the batch statistic in the running-statistic update; default `0.1`.
    pub momentum: f64,
    /// Whether the layer has a learnable `weight` and `bias`; default `true`.
    pub affine: bool,
}

impl Default for BatchNormSpec {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// `torch.nn.BatchNorm2d` (and `BatchNorm1d`): normalises each channel (dimension 1) of an
/// `[N, C]`, `[N, C, L]` or `[N, C, H, W]` tensor.
///
/// Implements [`ModuleT`]: with `train = false` it uses the running statistics; with
/// `train = true` it uses the batch statistics and updates the running ones in place.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    num_features: usize,
}

impl BatchNorm {
    /// Wraps a candle batch norm over `num_features` channels.
    pub fn new(inner: candle_nn::BatchNorm, num_features: usize) -> Result<Self> {
        if inner.running_mean().dims() != [num_features] {
            return Err(crate::error(format!(
                "batch norm over {num_features} channels has a running mean of shape {:?}",
                inner.running_mean().dims()
            )));
        }
        Ok(Self {
            inner,
            num_features,
        })
    }

    /// Number of channels normalised.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The running mean, `[num_features]`; updated by each training forward pass.
    pub fn running_mean(&self) -> &Tensor {
        self.inner.running_mean()
    }

    /// The running variance, `[num_features]`; updated by each training forward pass.
    pub fn running_var(&self) -> &Tensor {
        self.inner.running_var()
    }

    /// The wrapped candle layer.
    pub fn inner(&self) -> &candle_nn::BatchNorm {
        &self.inner
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !(2..=4).contains(&x.rank()) {
            return Err(crate::error(format!(
                "batch_norm expects an [N, C], [N, C, L] or [N, C, H, W] tensor, found shape {:?}",
                x.dims()
            )));
        }
        if x.dim(1)? != self.num_features {
            return Err(crate::error(format!(
                "batch_norm expects {} channels, found {} (input shape {:?})",
                self.num_features,
                x.dim(1)?,
                x.dims()
            )));
        }
        // The unbiased variance needs two values per channel; PyTorch refuses fewer too.
        if train && x.elem_count() / self.num_features.max(1) < 2 {
            return Err(crate::error(format!(
                "batch_norm needs more than 1 value per channel when training, found input \
                 shape {:?}",
                x.dims()
            )));
        }
        match widened(x)? {
            Some(wide) => self.inner.forward_t(&wide, train)?.to_dtype(x.dtype()),
            None => self.inner.forward_t(x, train),
        }
    }
}

/// Loads a [`BatchNorm`] over `num_features` channels from `vb`: `running_mean`, `running_var`
/// and, when `spec.affine`, `weight` and `bias`, all `[num_features]`, naming `context` in any
/// error. A `num_batches_tracked` entry, as PyTorch saves it, is not needed.
pub fn batch_norm(
    vb: VarBuilder,
    num_features: usize,
    spec: BatchNormSpec,
    context: &str,
) -> Result<BatchNorm> {
    if spec.eps.is_nan() || spec.eps < 0.0 {
        return Err(crate::error(format!(
            "{context}: batch norm eps must be non-negative, found {}",
            spec.eps
        )));
    }
    if !(0.0..=1.0).contains(&spec.momentum) {
        return Err(crate::error(format!(
            "{context}: batch norm momentum must be between 0 and 1, found {}",
            spec.momentum
        )));
    }
    // In a half-precision model the statistics and the affine transform stay in f32 (module docs).
    let vb = match vb.dtype() {
        DType::F16 | DType::BF16 => vb.set_dtype(DType::F32),
        _ => vb,
    };
    let load = |name: &str, init: f64| {
        load_tensor_with_init(&vb, name, num_features, Init::Const(init), context)
    };
    let running_mean = load("running_mean", 0.0)?;
    let running_var = load("running_var", 1.0)?;
    let inner = if spec.affine {
        let weight = load("weight", 1.0)?;
        let bias = load("bias", 0.0)?;
        candle_nn::BatchNorm::new_with_momentum(
            num_features,
            running_mean,
            running_var,
            weight,
            bias,
            spec.eps,
            spec.momentum,
        )?
    } else {
        candle_nn::BatchNorm::new_no_bias_with_momentum(
            num_features,
            running_mean,
            running_var,
            spec.eps,
            spec.momentum,
        )?
    };
    BatchNorm::new(inner, num_features)
}

/// Layer normalisation over the channels: at each position of an `[N, C, H, W]` map over its `C` values
/// (torchvision's `LayerNorm2d`, ConvNeXt's), or over the features of an `[N, F]` input (`nn.LayerNorm(F)`):
/// `(x - mean) / sqrt(var + eps) * weight + bias`, with the biased variance, as PyTorch computes it. Written
/// with candle's differentiable ops, so training and other devices run it as they run any candle op.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[C]`, or `None` without the affine parameters.
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub num_features: usize,
    pub eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (`[num_features]` each) when `affine`.
    pub fn load(vb: VarBuilder, num_features: usize, eps: f64, affine: bool) -> Result<Self> {
        let context = "layer_norm";
        let (weight, bias) = if affine {
            (
                Some(load_tensor_with_init(
                    &vb,
                    "weight",
                    num_features,
                    Init::Const(1.0),
                    context,
                )?),
                Some(load_tensor_with_init(
                    &vb,
                    "bias",
                    num_features,
                    Init::Const(0.0),
                    context,
                )?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            weight,
            bias,
            num_features,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(wide) = widened(x)? {
            return self.forward(&wide)?.to_dtype(x.dtype());
        }
        if !matches!(x.rank(), 2 | 4) || x.dim(1)? != self.num_features {
            return Err(crate::error(format!(
                "layer_norm over {} channels expects [N, {}] or [N, {}, H, W], found shape {:?}",
                self.num_features,
                self.num_features,
                self.num_features,
                x.dims()
            )));
        }
        let mean = x.mean_keepdim(1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        // `[C]` broadcast along the channel axis: `[1, C]` or `[1, C, 1, 1]`.
        let mut axis = vec![1; x.rank()];
        axis[1] = self.num_features;
        let normed = match &self.weight {
            Some(weight) => normed.broadcast_mul(&weight.reshape(axis.as_slice())?)?,
            None => normed,
        };
        match &self.bias {
            Some(bias) => normed.broadcast_add(&bias.reshape(axis.as_slice())?),
            None => Ok(normed),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Tensor};

    use super::LayerNorm;

    fn norm(weight: &[f32], bias: &[f32], eps: f64) -> LayerNorm {
        let cpu = &Device::Cpu;
        LayerNorm {
            weight: Some(Tensor::new(weight, cpu).unwrap()),
            bias: Some(Tensor::new(bias, cpu).unwrap()),
            num_features: weight.len(),
            eps,
        }
    }

    /// Two channels at two positions, worked by hand: at the first position the channels hold 1 and 3 (mean 2,
    /// biased variance 1), at the second 2 and 2 (mean 2, variance 0).
    #[test]
    fn a_map_is_normalised_over_its_channels_at_each_position() {
        let eps = 1e-5;
        let x = Tensor::new(&[[[[1f32, 2.]], [[3., 2.]]]], &Device::Cpu).unwrap(); // [1, 2, 1, 2]
        let y = norm(&[2., 3.], &[0.5, -0.5], eps).forward(&x).unwrap();
        let s = (1.0 + eps).sqrt() as f32;
        let want = [[-2. / s + 0.5, 0.5], [3. / s - 0.5, -0.5]];
        let got = y
            .squeeze(0)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn a_flat_input_is_normalised_over_its_features() {
        // Features 1, 2, 3, 6: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let x = Tensor::new(&[[1f32, 2., 3., 6.]], &Device::Cpu).unwrap();
        let y = norm(&[1.; 4], &[0.; 4], 0.0).forward(&x).unwrap();
        let sd = 3.5f32.sqrt();
        let want = [-2. / sd, -1. / sd, 0., 3. / sd];
        for (g, w) in y
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .zip(want)
        {
            assert!((g - w).abs() < 1e-6);
        }
    }

    #[test]
    fn a_wrong_channel_count_is_an_error_naming_both() {
        let x = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let error = norm(&[1.; 2], &[0.; 2], 1e-5).forward(&x).unwrap_err();
        assert!(
            error.to_string().contains("layer_norm over 2 channels expects [N, 2] or [N, 2, H, W], found shape [1, 3, 2, 2]"),
            "{error}"
        );
    }
}
