//! 2-D convolution with PyTorch's full set of per-axis options.
//!
//! candle's `Conv2dConfig` takes one `padding`, one `stride` and one `dilation` for both axes, and
//! pads symmetrically. `torch.nn.Conv2d` allows a different value per axis, and `padding='same'`
//! with an even kernel pads one more after than before. [`Conv2d`] keeps candle's fast path when
//! the options are square and symmetric, and otherwise pads explicitly before convolving, spreads
//! a per-axis dilation into the kernel with zeros once at construction, and realises unequal
//! strides by convolving with stride 1 and keeping every stride-th row and column.

use candle_core::{Error, Module, Result, Tensor};
use candle_nn::{init::DEFAULT_KAIMING_NORMAL, Conv2dConfig, VarBuilder};

use crate::load::{load_bias, load_tensor_with_init};
use crate::prepared::PreparedWeights;
use crate::shape::{conv_out_size, expect_nchw, narrow, wide};

/// Zero padding on each side of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad2d {
    /// The same padding `p` on all four sides: PyTorch's `padding=p`.
    pub fn uniform(p: usize) -> Self {
        Self::symmetric(p, p)
    }

    /// `h` rows above and below, `w` columns left and right: PyTorch's `padding=(h, w)`.
    pub fn symmetric(h: usize, w: usize) -> Self {
        Self {
            top: h,
            bottom: h,
            left: w,
            right: w,
        }
    }

    /// PyTorch's `padding='same'` for a stride-1 convolution: along each axis the total padding
    /// `dilation * (kernel - 1)` is split with the smaller half before, as `torch.nn.Conv2d` does
    /// ([`archc_shape::same_padding`]).
    pub fn same(kernel: (usize, usize), dilation: (usize, usize)) -> Result<Self> {
        let axis = |k: usize, d: usize| {
            archc_shape::same_padding(wide(k), 1, wide(d))
                .map_err(|e| crate::error(format!("'same' padding: {e}")))
        };
        let (top, bottom) = axis(kernel.0, dilation.0)?;
        let (left, right) = axis(kernel.1, dilation.1)?;
        Ok(Self {
            top: narrow(top)?,
            bottom: narrow(bottom)?,
            left: narrow(left)?,
            right: narrow(right)?,
        })
    }

    /// `Some(p)` when all four sides are `p`, which candle's own padding can express.
    fn as_uniform(&self) -> Option<usize> {
        (self.top == self.bottom && self.top == self.left && self.top == self.right)
            .then_some(self.top)
    }
}

/// The options of a [`Conv2d`] besides its kernel; pairs are `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Distance between output positions.
    pub stride: (usize, usize),
    /// Zero padding on each side.
    pub pad: Pad2d,
    /// Distance between kernel taps.
    pub dilation: (usize, usize),
    /// Number of channel groups; input and output channels must both divide by it.
    pub groups: usize,
}

impl Default for Conv2dSpec {
    /// Stride 1, no padding, no dilation, one group: PyTorch's defaults.
    fn default() -> Self {
        Self {
            stride: (1, 1),
            pad: Pad2d::default(),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dSpec {
    /// The `(height, width)` a convolution with this spec and `kernel` produces from `input`.
    pub fn output_size(
        &self,
        kernel: (usize, usize),
        input: (usize, usize),
    ) -> Result<(usize, usize)> {
        let h = conv_out_size(
            input.0,
            kernel.0,
            self.stride.0,
            (self.pad.top, self.pad.bottom),
            self.dilation.0,
        )
        .map_err(|e| crate::error(format!("conv2d: input height {}: {e}", input.0)))?;
        let w = conv_out_size(
            input.1,
            kernel.1,
            self.stride.1,
            (self.pad.left, self.pad.right),
            self.dilation.1,
        )
        .map_err(|e| crate::error(format!("conv2d: input width {}: {e}", input.1)))?;
        Ok((h, w))
    }
}

/// `torch.nn.Conv2d` over NCHW tensors, with per-axis stride, padding and dilation.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    spec: Conv2dSpec,
    /// The candle convolution actually run; its weight is dilated when the dilation differs
    /// per axis.
    conv: candle_nn::Conv2d,
    /// Padding applied before `conv` when candle's symmetric padding cannot express it.
    explicit_pad: Option<Pad2d>,
    /// Strides applied after `conv` when they differ per axis.
    subsample: Option<(usize, usize)>,
    /// The weight as the CPU kernels prepared it (packed for the matrix product, or Winograd-transformed),
    /// made on first use and kept.
    prepared: PreparedWeights,
}

impl Conv2d {
    /// A convolution with `weight` of shape `[out_channels, in_channels / groups, kh, kw]` and an
    /// optional `bias` of shape `[out_channels]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, spec: Conv2dSpec) -> Result<Self> {
        let (out_channels, _, kh, kw) = weight.dims4().map_err(|_| {
            crate::error(format!(
                "conv2d weight must be [out, in / groups, kh, kw], found shape {:?}",
                weight.dims()
            ))
        })?;
        validate_spec(&spec, out_channels, (kh, kw))?;
        if let Some(bias) = &bias {
            if bias.dims() != [out_channels] {
                return Err(crate::error(format!(
                    "conv2d bias must be [{out_channels}], found shape {:?}",
                    bias.dims()
                )));
            }
        }
        let (stride, subsample) = if spec.stride.0 == spec.stride.1 {
            (spec.stride.0, None)
        } else {
            (1, Some(spec.stride))
        };
        let (kernel, dilation) = if spec.dilation.0 == spec.dilation.1 {
            (weight.clone(), spec.dilation.0)
        } else {
            let spread = spread_taps(&weight, 2, spec.dilation.0)?;
            (spread_taps(&spread, 3, spec.dilation.1)?, 1)
        };
        let (padding, explicit_pad) = match spec.pad.as_uniform() {
            Some(p) => (p, None),
            None => (0, Some(spec.pad)),
        };
        let config = Conv2dConfig {
            padding,
            stride,
            dilation,
            groups: spec.groups,
            cudnn_fwd_algo: None,
        };
        Ok(Self {
            conv: candle_nn::Conv2d::new(kernel, bias.clone(), config),
            weight,
            bias,
            spec,
            explicit_pad,
            subsample,
            prepared: PreparedWeights::default(),
        })
    }

    /// The weight as loaded, `[out_channels, in_channels / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn spec(&self) -> &Conv2dSpec {
        &self.spec
    }

    /// Number of input channels the convolution expects.
    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.spec.groups
    }

    /// An error unless `c`, the channel count of input `x`, is what the convolution expects.
    pub(crate) fn check_channels(&self, c: usize, x: &Tensor) -> Result<()> {
        if c == self.in_channels() {
            return Ok(());
        }
        Err(crate::error(format!(
            "conv2d expects {} input channels, found {c} (input shape {:?})",
            self.in_channels(),
            x.dims()
        )))
    }

    /// The `(height, width)` this convolution produces from an input of `(height, width)`.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        let dims = self.weight.dims();
        self.spec.output_size((dims[2], dims[3]), input)
    }

    /// What the CPU kernels prepared from the weight and keep between calls.
    pub(crate) fn prepared_weights(&self) -> &PreparedWeights {
        &self.prepared
    }

    /// Drops what the CPU kernels prepared from the weight (packed or Winograd-transformed), so that the next
    /// inference prepares it again: needed after the weight was written in place (a `Var` it shares storage
    /// with was trained or loaded, or `Tensor::slice_set`), since a prepared copy does not follow such writes
    /// ([`crate::prepared`]). A clone of this layer shares the prepared weights and forgets them too.
    pub fn forget_prepared(&self) {
        self.prepared.forget();
    }

    /// Bytes held by what the CPU kernels prepared from the weight; 0 before the first inference that needed
    /// it and after [`Conv2d::forget_prepared`].
    pub fn prepared_bytes(&self) -> usize {
        self.prepared.bytes()
    }

    /// What the CPU kernels prepared from the weight so far, in the order they did; empty before the first
    /// inference that needed it and after [`Conv2d::forget_prepared`].
    pub fn prepared(&self) -> Vec<crate::prepared::Prepared> {
        self.prepared.kinds()
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }
}

impl Conv2d {
    /// Whether each output channel reads a single input channel (`groups == in_channels > 1`): MobileNet's
    /// and ShuffleNet's depthwise convolutions, which the CPU kernels compute directly.
    pub fn is_depthwise(&self) -> bool {
        self.spec.groups > 1 && self.weight.dims()[1] == 1
    }

    /// The forward pass; a grouped convolution (depthwise ones included) goes through archc's CPU kernels
    /// where they apply (a CPU `f32` input and weight, no gradient wanted) and `kernels` allows it, any other
    /// through candle, whose grouped convolution runs one convolution per group and concatenates them. The plan
    /// ([`crate::plan`]) sends every convolution to the CPU kernels; this is for a `Conv2d` run on its own.
    pub fn forward_with(&self, x: &Tensor, kernels: bool) -> Result<Tensor> {
        if kernels && self.spec.groups > 1 && crate::fused::conv_kernels_apply(x, self, None) {
            let options = crate::fused::Optimizations::ALL;
            return crate::fused::conv_on_cpu(
                options,
                x,
                self,
                None,
                crate::cpu::Activation::Identity,
            );
        }
        let (_, c, h, w) = expect_nchw(x, "conv2d")?;
        self.check_channels(c, x)?;
        let (oh, ow) = self.output_size((h, w))?;
        let x = match self.explicit_pad {
            Some(pad) => x
                .pad_with_zeros(2, pad.top, pad.bottom)?
                .pad_with_zeros(3, pad.left, pad.right)?,
            None => x.clone(),
        };
        let y = self.conv.forward(&x)?;
        match self.subsample {
            None => Ok(y),
            Some((sh, sw)) => {
                let y = every_nth(&y, 2, sh, oh)?;
                every_nth(&y, 3, sw, ow)
            }
        }
    }
}

/// Loads a [`Conv2d`] from `vb` (`weight` `[out_channels, in_channels / groups, kh, kw]`, and
/// `bias` `[out_channels]` when `bias` is set), naming `context` in any error.
///
/// A `VarMap`-backed builder initialises new tensors as PyTorch does in spirit: Kaiming normal
/// weights and a bias uniform in `±1 / sqrt(fan_in)`.
pub fn conv2d(
    vb: VarBuilder,
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    spec: Conv2dSpec,
    bias: bool,
    context: &str,
) -> Result<Conv2d> {
    let in_context = |e: Error| {
        if context.is_empty() {
            e
        } else {
            crate::error(format!("{context}: {e}"))
        }
    };
    validate_spec(&spec, out_channels, kernel).map_err(in_context)?;
    if !divides(spec.groups, in_channels) {
        return Err(in_context(crate::error(format!(
            "conv2d input channels {in_channels} do not divide into {} groups",
            spec.groups
        ))));
    }
    let in_per_group = in_channels / spec.groups;
    let weight = load_tensor_with_init(
        &vb,
        "weight",
        (out_channels, in_per_group, kernel.0, kernel.1),
        DEFAULT_KAIMING_NORMAL,
        context,
    )?;
    let bias = bias
        .then(|| {
            load_bias(
                &vb,
                out_channels,
                in_per_group * kernel.0 * kernel.1,
                context,
            )
        })
        .transpose()?;
    Conv2d::new(weight, bias, spec).map_err(in_context)
}

/// Checks what a convolution's options must satisfy regardless of the input.
fn validate_spec(spec: &Conv2dSpec, out_channels: usize, kernel: (usize, usize)) -> Result<()> {
    if kernel.0 == 0 || kernel.1 == 0 {
        return Err(crate::error(format!(
            "conv2d kernel must be at least 1x1, found {}x{}",
            kernel.0, kernel.1
        )));
    }
    if spec.stride.0 == 0 || spec.stride.1 == 0 {
        return Err(crate::error(format!(
            "conv2d stride must be at least 1, found {:?}",
            spec.stride
        )));
    }
    if spec.dilation.0 == 0 || spec.dilation.1 == 0 {
        return Err(crate::error(format!(
            "conv2d dilation must be at least 1, found {:?}",
            spec.dilation
        )));
    }
    if spec.groups == 0 {
        return Err(crate::error("conv2d groups must be at least 1, found 0"));
    }
    if !divides(spec.groups, out_channels) {
        return Err(crate::error(format!(
            "conv2d output channels {out_channels} do not divide into {} groups",
            spec.groups
        )));
    }
    Ok(())
}

/// Whether `divisor` divides `n` (0 divides nothing); `usize::is_multiple_of` is newer than the
/// workspace's `rust-version`.
#[allow(clippy::manual_is_multiple_of)]
pub(crate) fn divides(divisor: usize, n: usize) -> bool {
    divisor != 0 && n % divisor == 0
}

/// Inserts `dilation - 1` zero taps between the taps of `weight` along `dim`, so a convolution
/// with dilation 1 over the result equals one with `dilation` over `weight`.
fn spread_taps(weight: &Tensor, dim: usize, dilation: usize) -> Result<Tensor> {
    if dilation == 1 {
        return Ok(weight.clone());
    }
    let taps = weight.dim(dim)?;
    let column = weight.unsqueeze(dim + 1)?;
    let mut zero_dims = column.dims().to_vec();
    zero_dims[dim + 1] = dilation - 1;
    let zeros = Tensor::zeros(zero_dims, weight.dtype(), weight.device())?;
    let mut spread_dims = weight.dims().to_vec();
    spread_dims[dim] = taps * dilation;
    Tensor::cat(&[&column, &zeros], dim + 1)?
        .reshape(spread_dims)?
        .narrow(dim, 0, (taps - 1) * dilation + 1)?
        .contiguous()
}

/// Keeps positions `0, step, 2 * step, ..` (`count` of them) of `x` along `dim`.
fn every_nth(x: &Tensor, dim: usize, step: usize, count: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(x.clone());
    }
    let indices: Vec<u32> = (0..count)
        .map(|i| {
            u32::try_from(i * step).map_err(|_| crate::error("conv2d output index overflows u32"))
        })
        .collect::<Result<_>>()?;
    let indices = Tensor::from_vec(indices, count, x.device())?;
    x.contiguous()?.index_select(&indices, dim)
}
