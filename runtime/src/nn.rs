//! The layers generated code builds, in candle's idiom: a constructor per layer taking its sizes, an options
//! struct with PyTorch's defaults, and the `VarBuilder` its tensors load from —
//! `nn::conv2d(192, 64, (1, 1), Conv2dConfig { bias: false, ..Default::default() }, vb.pp("conv"))`.
//!
//! Every constructor validates what the `.arch` checker validated, since a `Config` other than the defaults
//! reaches them unchecked; [`At::at`] prefixes an error with the `.arch` line it comes from. How a model runs
//! fast in inference is decided by [`crate::plan`], not here.

use candle_core::{DType, Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

pub use crate::conv::{Conv2d, Pad2d};
pub use crate::fused::Optimizations;
pub use crate::norm::{BatchNorm, LayerNorm, Lrn};
pub use crate::plan::{Describe, Op, Plan};
pub use crate::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use crate::shape::Dims;
pub use candle_nn::{Dropout, Linear};

/// candle's element-wise activations. Generated code uses the variants whose definitions are PyTorch's:
/// `Relu6` (`min(max(x, 0), 6)`), `Silu` (`x · sigmoid(x)`), `Sigmoid`, `HardSwish` (`x · relu6(x + 3) / 6`),
/// `HardSigmoid` (`relu6(x + 3) / 6`) and `Gelu`, which is the exact erf form of PyTorch's default
/// `GELU(approximate='none')` (`NewGelu` and `GeluPytorchTanh` are the tanh approximation);
/// `runtime/tests/activation.rs` checks each, with its gradient, against values computed with PyTorch.
pub use candle_nn::Activation;

use crate::conv::divides;
use crate::error;

/// Prefixes an error with the `.arch` location of the statement it comes from.
pub trait At<T> {
    /// `architectures/googlenet.arch:9: <error>`.
    fn at(self, source: &str, line: u32) -> Result<T>;
}

impl<T> At<T> for Result<T> {
    fn at(self, source: &str, line: u32) -> Result<T> {
        self.map_err(|e| error(format!("{source}:{line}: {e}")))
    }
}

/// A convolution's padding written as an integer, a pair or `same` (a block parameter may take any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Explicit(usize, usize),
    Same,
}

impl From<usize> for Pad {
    fn from(v: usize) -> Pad {
        Pad::Explicit(v, v)
    }
}

impl From<(usize, usize)> for Pad {
    fn from((h, w): (usize, usize)) -> Pad {
        Pad::Explicit(h, w)
    }
}

impl Pad {
    /// The padding for a window of `kernel` taps spaced by `dilation`.
    pub fn resolve(self, kernel: (usize, usize), dilation: (usize, usize)) -> Result<Pad2d> {
        match self {
            Pad::Explicit(h, w) => Ok(Pad2d::symmetric(h, w)),
            Pad::Same => Pad2d::same(kernel, dilation),
        }
    }
}

impl From<(usize, usize)> for Pad2d {
    /// `(h, w)`: `h` rows above and below, `w` columns left and right.
    fn from((h, w): (usize, usize)) -> Pad2d {
        Pad2d::symmetric(h, w)
    }
}

/// The options of [`conv2d`]; pairs are `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: (usize, usize),
    pub padding: Pad2d,
    pub dilation: (usize, usize),
    pub groups: usize,
    pub bias: bool,
}

impl Default for Conv2dConfig {
    /// PyTorch's defaults: stride 1, no padding, no dilation, one group, a bias.
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: Pad2d::default(),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
}

/// `torch.nn.Conv2d(in_channels, out_channels, kernel, ...)`, loading `weight` (and `bias`) from `vb`.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let spec = crate::Conv2dSpec {
        stride: config.stride,
        pad: config.padding,
        dilation: config.dilation,
        groups: config.groups,
    };
    crate::conv2d(
        vb,
        in_channels,
        out_channels,
        kernel,
        spec,
        config.bias,
        "conv2d",
    )
}

/// The options of [`batch_norm`], with PyTorch's defaults.
pub type BatchNormConfig = crate::BatchNormSpec;

/// `torch.nn.BatchNorm2d(num_features, ...)`, loading the running statistics (and `weight`, `bias`).
pub fn batch_norm(
    num_features: usize,
    config: BatchNormConfig,
    vb: VarBuilder,
) -> Result<BatchNorm> {
    crate::batch_norm(vb, num_features, config, "batch_norm")
}

/// The options of [`max_pool2d`]; `stride: None` is the kernel size, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2dConfig {
    pub stride: Option<(usize, usize)>,
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
}

impl Default for MaxPool2dConfig {
    fn default() -> Self {
        MaxPool2dConfig {
            stride: None,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }
}

/// `torch.nn.MaxPool2d(kernel, ...)`.
pub fn max_pool2d(kernel: (usize, usize), config: MaxPool2dConfig) -> Result<MaxPool2d> {
    let pool = MaxPool2d {
        kernel,
        stride: config.stride.unwrap_or(kernel),
        pad: config.padding,
        dilation: config.dilation,
        ceil_mode: config.ceil_mode,
    };
    pool.validate()?;
    Ok(pool)
}

/// The options of [`avg_pool2d`]; `stride: None` is the kernel size, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2dConfig {
    pub stride: Option<(usize, usize)>,
    pub padding: (usize, usize),
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Default for AvgPool2dConfig {
    fn default() -> Self {
        AvgPool2dConfig {
            stride: None,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
        }
    }
}

/// `torch.nn.AvgPool2d(kernel, ...)`.
pub fn avg_pool2d(kernel: (usize, usize), config: AvgPool2dConfig) -> Result<AvgPool2d> {
    let pool = AvgPool2d {
        kernel,
        stride: config.stride.unwrap_or(kernel),
        pad: config.padding,
        ceil_mode: config.ceil_mode,
        count_include_pad: config.count_include_pad,
    };
    pool.validate()?;
    Ok(pool)
}

/// `torch.nn.AdaptiveAvgPool2d(size)`.
pub fn adaptive_avg_pool2d(size: (usize, usize)) -> Result<AdaptiveAvgPool2d> {
    if size.0 == 0 || size.1 == 0 {
        return Err(error(format!(
            "adaptive_avg_pool size must be at least 1, found {size:?}"
        )));
    }
    Ok(AdaptiveAvgPool2d::new(size))
}

/// The options of [`layer_norm`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    pub eps: f64,
    /// Whether it has `weight` and `bias` (PyTorch's `elementwise_affine`).
    pub affine: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            affine: true,
        }
    }
}

/// Layer normalisation over `num_features` channels (torchvision's `LayerNorm2d` on a map, `nn.LayerNorm` on
/// a flat input), loading `weight` and `bias`.
pub fn layer_norm(
    num_features: usize,
    config: LayerNormConfig,
    vb: VarBuilder,
) -> Result<LayerNorm> {
    // NaN is not positive either.
    if config.eps.is_nan() || config.eps <= 0.0 {
        return Err(error(format!(
            "layer_norm eps must be positive, found {}",
            config.eps
        )));
    }
    LayerNorm::load(vb, num_features, config.eps, config.affine)
}

/// The options of [`lrn`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnConfig {
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl Default for LrnConfig {
    fn default() -> Self {
        LrnConfig {
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }
}

/// `torch.nn.LocalResponseNorm(size, ...)`.
pub fn lrn(size: usize, config: LrnConfig) -> Result<Lrn> {
    if size == 0 {
        return Err(error("lrn size must be at least 1, found 0"));
    }
    Ok(Lrn {
        size,
        alpha: config.alpha,
        beta: config.beta,
        k: config.k,
    })
}

/// `torch.nn.Linear(in_features, out_features)`, loading `weight` and `bias`.
pub fn linear(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Linear> {
    crate::linear(vb, in_features, out_features, true, "linear")
}

/// `torch.nn.Linear(in_features, out_features, bias=False)`.
pub fn linear_no_bias(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Linear> {
    crate::linear(vb, in_features, out_features, false, "linear")
}

/// `torch.nn.Linear(in_features, out_features, bias=bias)`, for a bias chosen by a parameter.
pub fn linear_b(
    in_features: usize,
    out_features: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<Linear> {
    crate::linear(vb, in_features, out_features, bias, "linear")
}

/// `torch.nn.Dropout(p)`.
pub fn dropout(p: f64) -> Result<Dropout> {
    if !(0.0..=1.0).contains(&p) {
        return Err(error(format!(
            "dropout probability must be in [0, 1], found {p}"
        )));
    }
    Ok(Dropout::new(p as f32))
}

/// Softmax over dimension 1 (channels or features): `torch.nn.Softmax(dim=1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax;

impl Module for Softmax {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::softmax(xs, 1)
    }
}

/// ShuffleNet's channel shuffle, `torch.nn.ChannelShuffle(groups)`: the channels of an NCHW map, in `groups`
/// equal groups of `k`, interleaved (output channel `j * groups + i` is input channel `i * k + j`) and copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelShuffle {
    pub groups: usize,
}

/// `torch.nn.ChannelShuffle(groups)` for an input of `channels` channels, which `groups` must divide.
pub fn channel_shuffle(channels: usize, groups: usize) -> Result<ChannelShuffle> {
    if !divides(groups, channels) {
        return Err(error(format!(
            "channel_shuffle: {channels} channels cannot be split into {groups} groups"
        )));
    }
    Ok(ChannelShuffle { groups })
}

impl Module for ChannelShuffle {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = crate::expect_nchw(xs, "channel_shuffle")?;
        let g = self.groups;
        if !divides(g, c) {
            return Err(error(format!(
                "channel_shuffle: {c} input channels cannot be split into {g} groups"
            )));
        }
        // PyTorch's `native_channel_shuffle`: view [N, g, C/g, H, W], transpose(1, 2), contiguous, view back.
        xs.reshape((n, g, c / g, h, w))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, c, h, w))
    }
}

/// One of several equal slices of dimension 1 (channels, or features): `torch.chunk(xs, chunks, dim=1)[index]`,
/// a view of its input as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub chunks: usize,
    pub index: usize,
}

/// The `index`-th of `chunks` equal slices of an input of `channels` channels (which `chunks` must divide).
pub fn chunk(channels: usize, chunks: usize, index: usize) -> Result<Chunk> {
    if !divides(chunks, channels) {
        return Err(error(format!(
            "chunk: {channels} channels cannot be split into {chunks} chunks"
        )));
    }
    if index >= chunks {
        return Err(error(format!(
            "chunk: index {index} is not one of the {chunks} chunks"
        )));
    }
    Ok(Chunk { chunks, index })
}

impl Module for Chunk {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let c = xs.dim(1)?;
        if !divides(self.chunks, c) || self.index >= self.chunks {
            return Err(error(format!(
                "chunk: {c} input channels have no chunk {} of {} equal chunks",
                self.index, self.chunks
            )));
        }
        let part = c / self.chunks;
        xs.narrow(1, self.index * part, part)
    }
}

/// torchvision's `StochasticDepth(p, mode="row")`: in training, each sample of the batch is zeroed with
/// probability `p` and the others are scaled by `1 / (1 - p)`; the identity in inference (and for `p = 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StochasticDepth {
    pub p: f64,
}

/// `torchvision.ops.StochasticDepth(p, "row")`, for `p` in `[0, 1)`.
pub fn stochastic_depth(p: f64) -> Result<StochasticDepth> {
    if !(0.0..1.0).contains(&p) {
        return Err(error(format!(
            "stochastic depth probability must be in [0, 1), found {p}"
        )));
    }
    Ok(StochasticDepth { p })
}

impl ModuleT for StochasticDepth {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(xs.clone());
        }
        // One draw per sample, broadcast over the rest: [N, 1, 1, ...]. A sample survives when its uniform draw
        // in [0, 1) is at least p, with probability 1 - p (torchvision's `bernoulli_(1 - p)`).
        let mut noise_shape = vec![1; xs.rank()];
        noise_shape[0] = xs.dim(0)?;
        let draws = Tensor::rand(0f32, 1f32, noise_shape, xs.device())?;
        let keep = draws.ge(self.p as f32)?.to_dtype(DType::F32)?;
        let scale = keep
            .affine(1.0 / (1.0 - self.p), 0.0)?
            .to_dtype(xs.dtype())?;
        xs.broadcast_mul(&scale)
    }
}

/// The element-wise sum of an `add` group's branches.
pub fn sum<T: AsRef<Tensor>>(parts: &[T]) -> Result<Tensor> {
    let (first, rest) = parts
        .split_first()
        .ok_or_else(|| error("add of no branches"))?;
    rest.iter()
        .try_fold(first.as_ref().clone(), |acc, part| acc + part.as_ref())
}

/// The element-wise product of a `mul` group's branches, broadcasting `[N, C, 1, 1]` over `[N, C, H, W]`.
pub fn product<T: AsRef<Tensor>>(parts: &[T]) -> Result<Tensor> {
    let (first, rest) = parts
        .split_first()
        .ok_or_else(|| error("mul of no branches"))?;
    rest.iter().try_fold(first.as_ref().clone(), |acc, part| {
        acc.broadcast_mul(part.as_ref())
    })
}

/// The blocks a `for` loop builds, one per iteration, applied in order.
#[derive(Debug, Clone)]
pub struct Stack<T>(Vec<T>);

impl<T> Stack<T> {
    pub fn new() -> Self {
        Stack(Vec::new())
    }

    /// Appends the next iteration's block.
    pub fn push(&mut self, block: T) {
        self.0.push(block);
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[T] {
        &self.0
    }
}

impl<T> Default for Stack<T> {
    fn default() -> Self {
        Stack::new()
    }
}

impl<T: ModuleT> ModuleT for Stack<T> {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.0
            .iter()
            .try_fold(xs.clone(), |xs, block| block.forward_t(&xs, train))
    }
}

impl<T: Describe> Describe for Stack<T> {
    fn describe(&self) -> Op<'_> {
        Op::Chain(self.0.iter().map(Describe::describe).collect())
    }
}

/// `a - b` for sizes computed from a `Config`: an error rather than an underflow.
pub fn sub(a: usize, b: usize) -> Result<usize> {
    a.checked_sub(b)
        .ok_or_else(|| error(format!("size arithmetic {a} - {b} is negative")))
}

/// `a / b` (rounding down) for sizes computed from a `Config`: an error rather than a division by zero.
pub fn div(a: usize, b: usize) -> Result<usize> {
    a.checked_div(b)
        .ok_or_else(|| error(format!("size arithmetic {a} / {b} divides by zero")))
}

/// `a % b` for sizes computed from a `Config`: an error rather than a division by zero.
pub fn rem(a: usize, b: usize) -> Result<usize> {
    a.checked_rem(b)
        .ok_or_else(|| error(format!("size arithmetic {a} % {b} divides by zero")))
}

/// Checks a model input against the per-sample shape `[C, H, W]` (or `[F]`): rank, sizes and dtype.
pub fn check_input(xs: &Tensor, sample: &[usize], source: &str) -> Result<()> {
    let dims = xs.dims();
    if dims.len() != sample.len() + 1 || dims[1..] != *sample {
        let want = sample
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

/// The input sizes a generated model runs at, as `archc` found them: its channel count, a range of heights and
/// of widths, and why the sizes just outside them do not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSizes {
    /// The network's name, for messages.
    pub network: &'static str,
    /// The input channels.
    pub channels: usize,
    pub height: SizeRange,
    pub width: SizeRange,
    /// Why a smaller input does not run: the first layer it breaks, found by the checker one size below the
    /// smallest valid one.
    pub too_small: SizeLimits,
    /// Why a larger input does not run (empty when every larger size runs).
    pub too_large: SizeLimits,
}

/// The sizes along one axis a model runs at: `min ..= max`, or every size from `min` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    pub min: usize,
    pub max: Option<usize>,
}

impl SizeRange {
    /// Every size from `min` up.
    pub const fn at_least(min: usize) -> SizeRange {
        SizeRange { min, max: None }
    }

    /// The sizes `min ..= max`.
    pub const fn between(min: usize, max: usize) -> SizeRange {
        SizeRange {
            min,
            max: Some(max),
        }
    }

    fn contains(self, size: usize) -> bool {
        size >= self.min && !matches!(self.max, Some(max) if size > max)
    }
}

/// What breaks one size beyond a range: the height alone, the width alone, both (empty where none applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    pub height: &'static str,
    pub width: &'static str,
    pub both: &'static str,
}

impl SizeLimits {
    /// No limit: every size on that side runs.
    pub const NONE: SizeLimits = SizeLimits {
        height: "",
        width: "",
        both: "",
    };

    /// The reason for an input whose height (`h`) and width (`w`) are each beyond the range or not.
    fn reason(&self, h: bool, w: bool) -> &'static str {
        let first = |options: [&'static str; 3]| options.into_iter().find(|r| !r.is_empty());
        match (h, w) {
            (true, true) => first([self.both, self.height, self.width]),
            (true, false) => first([self.height, self.both, self.width]),
            _ => first([self.width, self.both, self.height]),
        }
        .unwrap_or("")
    }
}

/// Checks a model input `[N, C, H, W]` against the sizes the model runs at: rank, channels, height and width,
/// and dtype. A size outside the range is an error that says why, from the checker: the first layer it breaks.
pub fn check_input_sizes(xs: &Tensor, sizes: &InputSizes, source: &str) -> Result<()> {
    let range = |range: SizeRange| match range.max {
        None => format!("{}+", range.min),
        Some(max) if max == range.min => max.to_string(),
        Some(max) => format!("{}..={max}", range.min),
    };
    let &[_, c, h, w] = xs.dims() else {
        return Err(error(format!(
            "{source}: expected an input of shape [N, {}, H, W] (H {}, W {}), found {:?}",
            sizes.channels,
            range(sizes.height),
            range(sizes.width),
            xs.dims()
        )));
    };
    if c != sizes.channels {
        return Err(error(format!(
            "{source}: expected an input of shape [N, {}, H, W], found {:?}",
            sizes.channels,
            xs.dims()
        )));
    }
    let (h_ok, w_ok) = (sizes.height.contains(h), sizes.width.contains(w));
    if !(h_ok && w_ok) {
        let small = (h < sizes.height.min, w < sizes.width.min);
        let (what, reason, bound) = if small.0 || (h_ok && small.1) {
            (
                "too small",
                sizes.too_small.reason(small.0, small.1),
                format!(
                    "the smallest valid input is {}×{}",
                    sizes.height.min, sizes.width.min
                ),
            )
        } else {
            let large = (!h_ok && !small.0, !w_ok && !small.1);
            let bound = match (sizes.height.max, sizes.width.max) {
                (Some(max_h), Some(max_w)) => format!("the largest valid input is {max_h}×{max_w}"),
                _ => format!(
                    "valid heights are {}, widths {}",
                    range(sizes.height),
                    range(sizes.width)
                ),
            };
            ("too large", sizes.too_large.reason(large.0, large.1), bound)
        };
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        return Err(error(format!(
            "{source}: `{}`: input {h}×{w} is {what}{reason}; {bound}",
            sizes.network
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

/// Checks, when a `Config` other than the defaults is used, that a statement's channels match what its
/// declaration says.
pub fn expect_channels(computed: usize, declared: usize, statement: &str) -> Result<()> {
    if computed == declared {
        Ok(())
    } else {
        Err(error(format!(
            "`{statement}` produces {computed} channels, its declaration says {declared}"
        )))
    }
}
