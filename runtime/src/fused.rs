//! Fused inference: a convolution together with the batch norm and activation that follow it, run as one pass
//! by the runtime's CPU kernels (`src/cpu.rs`); and the element-wise layers around convolutions (a batch norm
//! that no convolution precedes, activations, sums, squeeze-and-excitation's products) in one pass each.
//!
//! The plan ([`crate::plan`]) calls `conv_bn_act_with` for every `conv2d` of a chain, passing the batch norm
//! and the activation when they come straight after it. In training, or on a device or dtype the CPU kernels
//! do not cover, or when the input or one of the layers' tensors wants a gradient, it runs the layers one by
//! one exactly as written. Otherwise the batch norm is folded into the convolution: with
//! `s = gamma / sqrt(running_var + eps)` per output channel,
//! `bn(conv(x) + b) = s * conv(x) + (beta + s * (b - running_mean))`, which the kernel applies to each output
//! value as it finishes, with the activation (ReLU, ReLU6, SiLU, sigmoid, hard swish or hard sigmoid). `s` and
//! the shift are computed from the live tensors on every call (a few microseconds), so a model that trains, or
//! whose `VarMap` is loaded after it was built, never runs with stale folded weights. The exception is what is
//! too costly to derive per call, the weights packed for the matrix product and the Winograd-transformed
//! filters of 3×3 convolutions: they are prepared once per layer and kept ([`crate::prepared`]).

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, DType, Device, ModuleT, Result, Storage, Tensor};

use crate::cpu::{self, Activation, ConvGeometry, Epilogue};
use crate::prepared::PreparedKind;
use crate::{BatchNorm, Conv2d};

/// The inference optimisations a [`Plan`](crate::plan::Plan) applies, each of which can be switched off per model
/// to measure what it brings (`bench/`). Every combination computes the same values, up to floating-point
/// rounding; all are on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Optimizations {
    /// Convolutions as one matrix product per image, without candle's im2col layout and transposes.
    pub conv_kernel: bool,
    /// Depthwise convolutions (one input channel per group) computed directly rather than as one small product
    /// per group (needs `conv_kernel`).
    pub depthwise_kernel: bool,
    /// Batch norm and ReLU folded into the convolution's output pass (needs `conv_kernel`).
    pub fold_batch_norm: bool,
    /// 3×3 stride-1 convolutions by Winograd's F(2×2, 3×3) or F(4×4, 3×3), 5×5 ones by F(2×2, 5×5), 1×7 and 7×1
    /// ones by F(2, 7) along the long side, where the layer's shape makes it faster, their filters transformed
    /// once per layer (needs `conv_kernel`; see [`crate::winograd`]).
    pub winograd: bool,
    /// Max and average pools in one pass, with padding and ceil mode handled by clipping windows.
    pub pool_kernels: bool,
    /// Sibling 1×1 convolutions that read the same tensor run as one product.
    pub fuse_siblings: bool,
    /// A batch larger than the thread pool runs one image at a time per thread, each image through the whole
    /// network on one core ([`in_micro_batches`]), so its activations stay in that core's cache from one layer
    /// to the next and the threads do not meet at every layer.
    pub micro_batches: bool,
    /// The activations other than ReLU (ReLU6, SiLU, sigmoid, hard swish, hard sigmoid) folded into the
    /// convolution's output pass too, as ReLU is with `fold_batch_norm` (which this needs).
    pub fuse_activations: bool,
    /// Batch norms that no convolution precedes (with the activation after them), activations on their own,
    /// sums of branches (with the activation after them) and squeeze-and-excitation's per-channel products
    /// each in one pass of the runtime's element-wise kernels (`src/cpu/elementwise.rs`), instead of candle's
    /// operations (a batch norm is four of them, each a pass and an allocation).
    pub elementwise_kernels: bool,
    /// Linear layers at batches of up to 8 as dot products that stream the weights once at the memory's
    /// speed (with the activation after them), instead of candle's matrix product.
    pub linear_kernel: bool,
    /// The memory of freed activations kept in the process for the next ones, rather than returned to the
    /// system and faulted in again page by page ([`crate::memory`]; glibc's allocator, set once per process).
    pub retain_memory: bool,
    /// While one image crosses the network on several threads, the other threads look for work without
    /// pause instead of sleeping between layers ([`crate::plan`]'s `helper`): they take each layer's share
    /// at once, at the cost of a busy core while the network runs.
    pub spin_threads: bool,
    /// Depthwise-separable blocks (a 1×1 expansion if any, a depthwise convolution, a 1×1 projection, and the
    /// block's input added when it has a residual connection: MobileNet-V2's inverted residuals) computed a
    /// band of rows at a time, the three layers in turn over each band, so that the expanded tensor never
    /// leaves the core's cache (`runtime/src/cpu/separable.rs`; needs `conv_kernel`, `depthwise_kernel` and
    /// `fold`).
    pub separable_bands: bool,
    /// Convolutions with few input values per output (an image's three channels under a 3×3 window) computed
    /// directly, sixteen output channels to a register, instead of as a product over a patch matrix
    /// (`runtime/src/cpu/shallow.rs`; AVX-512 CPUs; needs `conv_kernel`).
    pub shallow_kernel: bool,
    /// A convolution and the max pool right after it (the 7×7 stems of GoogLeNet and ResNet) computed a band
    /// of pooled rows at a time, so that the convolution's output stays in cache for the pool
    /// (`runtime/src/cpu/pooled.rs`; AVX-512 CPUs; needs `conv_kernel`, `fold` and `pool`).
    pub pooled_bands: bool,
    /// At batch 1, the branches of a channel concatenation that end in a convolution (by the matrix product or
    /// Winograd) write their output straight into its slice of the concatenation, instead of into a tensor
    /// of their own that the concatenation then copies; on one thread the copy is kept, as it leaves the
    /// concatenation in cache for the next layer (needs `conv_kernel`; see [`crate::plan`]).
    pub concat_in_place: bool,
}

/// A comma-separated list read left to right from everything off: `all` and `none` switch every optimisation
/// on or off, a name switches that one on and `-name` switches it off, as the benchmarks take them on their
/// command lines (`conv,fold,winograd`; `all,-winograd` for everything but Winograd).
impl std::str::FromStr for Optimizations {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Optimizations, String> {
        let mut o = Optimizations::NONE;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, on) = match part.strip_prefix('-') {
                Some(name) => (name, false),
                None => (part, true),
            };
            let flag = match name {
                "all" if on => {
                    o = Optimizations::ALL;
                    continue;
                }
                "none" if on => {
                    o = Optimizations::NONE;
                    continue;
                }
                "conv" => &mut o.conv_kernel,
                "depthwise" => &mut o.depthwise_kernel,
                "fold" => &mut o.fold_batch_norm,
                "winograd" => &mut o.winograd,
                "pool" => &mut o.pool_kernels,
                "siblings" => &mut o.fuse_siblings,
                "micro" => &mut o.micro_batches,
                "activations" => &mut o.fuse_activations,
                "elementwise" => &mut o.elementwise_kernels,
                "linear" => &mut o.linear_kernel,
                "memory" => &mut o.retain_memory,
                "spin" => &mut o.spin_threads,
                "bands" => &mut o.separable_bands,
                "shallow" => &mut o.shallow_kernel,
                "pooled" => &mut o.pooled_bands,
                "concat" => &mut o.concat_in_place,
                _ => {
                    return Err(format!(
                        "unknown optimisation `{part}`; expected all, none, or one of conv, depthwise, fold, \
                         winograd, pool, siblings, micro, activations, elementwise, linear, memory, spin, bands, \
                         shallow, pooled and concat, each optionally after `-` to switch it off"
                    ))
                }
            };
            *flag = on;
        }
        Ok(o)
    }
}

impl Optimizations {
    /// Whether a convolution's output pass applies `activation` (with the batch norm before it): ReLU with
    /// `fold_batch_norm`, the others with `fuse_activations` too.
    pub(crate) fn folds(self, activation: Activation) -> bool {
        self.fold_batch_norm
            && (matches!(activation, Activation::Identity | Activation::Relu)
                || self.fuse_activations)
    }

    /// Everything on: what a generated model runs with unless told otherwise.
    pub const ALL: Optimizations = Optimizations {
        conv_kernel: true,
        depthwise_kernel: true,
        fold_batch_norm: true,
        winograd: true,
        pool_kernels: true,
        fuse_siblings: true,
        micro_batches: true,
        fuse_activations: true,
        elementwise_kernels: true,
        linear_kernel: true,
        retain_memory: true,
        spin_threads: true,
        separable_bands: true,
        shallow_kernel: true,
        pooled_bands: true,
        concat_in_place: true,
    };

    /// Everything off: candle's own layers, one by one, as in training.
    pub const NONE: Optimizations = Optimizations {
        conv_kernel: false,
        depthwise_kernel: false,
        fold_batch_norm: false,
        winograd: false,
        pool_kernels: false,
        fuse_siblings: false,
        micro_batches: false,
        fuse_activations: false,
        elementwise_kernels: false,
        linear_kernel: false,
        retain_memory: false,
        spin_threads: false,
        separable_bands: false,
        shallow_kernel: false,
        pooled_bands: false,
        concat_in_place: false,
    };
}

/// Whether `t` lives on the CPU as `f32`, the one layout the CPU kernels read.
fn is_cpu_f32(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// Whether the CPU kernels can compute `x`'s layer: a CPU `f32` tensor that no gradient is wanted for.
pub(crate) fn cpu_kernels_apply(x: &Tensor) -> bool {
    is_cpu_f32(x) && !x.track_op()
}

/// Whether a gradient is wanted for a learned tensor of a convolution or of its batch norm, as for the `Var`s
/// of a `VarMap`-backed model. The kernels' output is outside the gradient graph, so such a layer must run as
/// candle ops even in inference mode: fine-tuning with frozen batch-norm statistics runs with `train = false`
/// and needs the weights' gradients. The running statistics do not count: candle keeps them in `Var`s to
/// update them in place, and nothing learns them by gradient.
fn parameters_track_op(conv: &Conv2d, bn: Option<&BatchNorm>) -> bool {
    let conv_tracks = conv.weight().track_op() || conv.bias().is_some_and(Tensor::track_op);
    let bn_tracks = bn
        .and_then(|bn| bn.inner().weight_and_bias())
        .is_some_and(|(gamma, beta)| gamma.track_op() || beta.track_op());
    conv_tracks || bn_tracks
}

/// `relu(bn(conv(x)))`, with the batch norm and the ReLU optional: the three layers of a chain like
/// `conv2d -> batch_norm -> relu`, fused into one pass in inference.
pub fn conv_bn_act(
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    relu: bool,
    train: bool,
) -> Result<Tensor> {
    let activation = if relu {
        Activation::Relu
    } else {
        Activation::Identity
    };
    conv_bn_act_with(Optimizations::ALL, x, conv, bn, activation, train)
}

/// [`conv_bn_act`] with any activation the kernels know, and only the optimisations in `options`. The
/// activation folds into the convolution's output pass when `options` allow it: ReLU with `fold_batch_norm`,
/// the others with `fuse_activations` too.
pub(crate) fn conv_bn_act_with(
    options: Optimizations,
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    activation: Activation,
    train: bool,
) -> Result<Tensor> {
    if train || !options.conv_kernel || !conv_kernels_apply(x, conv, bn) {
        return unfused(options, x, conv, bn, activation, train);
    }
    if !options.fold_batch_norm && (bn.is_some() || activation != Activation::Identity) {
        let y = conv_bn_act_with(options, x, conv, None, Activation::Identity, train)?;
        return unfused_tail(options, &y, bn, activation, train);
    }
    if !options.folds(activation) {
        let y = conv_on_cpu(options, x, conv, bn, Activation::Identity)?;
        return unfused_tail(options, &y, None, activation, train);
    }
    conv_on_cpu(options, x, conv, bn, activation)
}

/// [`conv_bn_act_with`] in inference, written into `out`, which must hold the `[n, c_out, oh, ow]` output
/// exactly (a channel slice of a concatenation, at batch 1): `Ok(true)` once every value of `out` is written,
/// `Ok(false)` where the layer runs another way (the options or the layer's shape give it candle's operations,
/// an activation after the output pass, or a kernel with an output of its own: depthwise, shallow) and the
/// caller runs [`conv_bn_act_with`] and copies its output.
pub(crate) fn conv_bn_act_into(
    options: Optimizations,
    x: &Tensor,
    (conv, bn, activation): (&Conv2d, Option<&BatchNorm>, Activation),
    out: &mut [std::mem::MaybeUninit<f32>],
) -> Result<bool> {
    let folded = options.fold_batch_norm || (bn.is_none() && activation == Activation::Identity);
    if !options.conv_kernel
        || !folded
        || !options.folds(activation)
        || !conv_kernels_apply(x, conv, bn)
    {
        return Ok(false);
    }
    let geometry = conv_geometry(x, conv)?;
    let n = x.dim(0)?;
    if out.len() != n * geometry.c_out * geometry.columns() {
        return Err(crate::error(format!(
            "a convolution's output of {} values written into {} (an internal error)",
            n * geometry.c_out * geometry.columns(),
            out.len()
        )));
    }
    let epilogue = epilogue(conv, bn, activation, geometry.c_out)?;
    match conv_path(options, (&geometry, n), activation) {
        ConvPath::Winograd(tile) => {
            crate::winograd::run_into(x, (conv, &geometry, tile), &epilogue, out)?;
        }
        ConvPath::Product => {
            let isa = cpu::Isa::detect();
            let packed = packed_weights(conv, isa, &geometry)?;
            let parts = [(&packed[..], geometry.c_out)];
            let weight = cpu::PackedWeights { isa, parts: &parts };
            run_packed_into(x, (weight, &geometry, &epilogue), None, out)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `pool(activation(bn(conv(x))))` for a max pool right after the convolution, computed band by band
/// ([`cpu::pooled`]) when `options` allow it and the layers suit it (the convolution by the matrix product,
/// the pool by the AVX-512 row kernel); `None` otherwise, for the caller to run them one after the other.
pub(crate) fn conv_max_pool_with(
    options: Optimizations,
    x: &Tensor,
    (conv, bn, activation): (&Conv2d, Option<&BatchNorm>, Activation),
    pool: &crate::pool::MaxPool2d,
) -> Result<Option<Tensor>> {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        let enabled = options.pooled_bands
            && options.conv_kernel
            && options.pool_kernels
            && options.folds(activation);
        if !enabled || !conv_kernels_apply(x, conv, bn) {
            return Ok(None);
        }
        let geometry = conv_geometry(x, conv)?;
        let (rows, cols) = pool.cpu_axes(geometry.out)?;
        if conv_path(options, (&geometry, x.dim(0)?), activation) != ConvPath::Product
            || !cpu::pooled::applies(&geometry, &rows, &cols)
        {
            return Ok(None);
        }
        let epilogue = epilogue(conv, bn, activation, geometry.c_out)?;
        let isa = cpu::Isa::detect();
        let packed = packed_weights(conv, isa, &geometry)?;
        let parts = [(&packed[..], geometry.c_out)];
        let weight = cpu::PackedWeights { isa, parts: &parts };
        let n = x.dim(0)?;
        let out = with_images(x, |images, image_stride| {
            cpu::pooled::conv2d_max_pooled(
                images,
                (n, image_stride),
                weight,
                &geometry,
                &epilogue,
                (&rows, &cols),
            )
        })?;
        Ok(Some(cpu_tensor(
            out,
            (n, geometry.c_out, rows.out, cols.out),
        )))
    }
    #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
    {
        let _ = (options, x, conv, bn, activation, pool);
        Ok(None)
    }
}

/// Whether the CPU kernels can run `conv` (with `bn` folded in) on `x`: CPU `f32` input and weight, and no
/// gradient wanted for either or for a learned tensor of the batch norm.
pub(crate) fn conv_kernels_apply(x: &Tensor, conv: &Conv2d, bn: Option<&BatchNorm>) -> bool {
    cpu_kernels_apply(x) && is_cpu_f32(conv.weight()) && !parameters_track_op(conv, bn)
}

/// `activation(bn(conv(x)))` by the CPU kernels, which must apply ([`conv_kernels_apply`]); the depthwise
/// kernel or Winograd if `options` allow them and the layer's shape suits them.
pub(crate) fn conv_on_cpu(
    options: Optimizations,
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    activation: Activation,
) -> Result<Tensor> {
    let geometry = conv_geometry(x, conv)?;
    let epilogue = epilogue(conv, bn, activation, geometry.c_out)?;
    match conv_path(options, (&geometry, x.dim(0)?), activation) {
        ConvPath::Winograd(tile) => crate::winograd::run(x, conv, &geometry, &epilogue, tile),
        ConvPath::Depthwise => run_on_weights(
            cpu::depthwise::conv2d,
            x,
            conv.weight(),
            &geometry,
            &epilogue,
        ),
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        ConvPath::Shallow => {
            run_on_weights(cpu::shallow::conv2d, x, conv.weight(), &geometry, &epilogue)
        }
        ConvPath::Product => run_product(x, conv, &geometry, &epilogue, None),
    }
}

/// How the CPU kernels compute a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvPath {
    /// By Winograd with this tile.
    Winograd(crate::winograd::Tile),
    /// By the depthwise kernel.
    Depthwise,
    /// By the kernel for few input values per output.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    Shallow,
    /// By the matrix product.
    Product,
}

/// The kernel `options` take for a convolution of this geometry over `images` images (Winograd's tile
/// depends on whether the threads share an image), followed by `activation`.
fn conv_path(
    options: Optimizations,
    (geometry, images): (&ConvGeometry, usize),
    activation: Activation,
) -> ConvPath {
    // Winograd's output pass applies batch norm and ReLU only; other activations take the direct kernel.
    if options.winograd && matches!(activation, Activation::Identity | Activation::Relu) {
        if let Some(tile) = crate::winograd::choose(geometry, images) {
            return ConvPath::Winograd(tile);
        }
    }
    if options.depthwise_kernel && cpu::depthwise::applies(geometry) {
        return ConvPath::Depthwise;
    }
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if options.shallow_kernel && cpu::shallow::applies(geometry, cpu::Isa::detect()) {
        return ConvPath::Shallow;
    }
    ConvPath::Product
}

/// `conv` on `x` by the matrix product, on the layer's packed weights, `residual` added before the
/// epilogue's activation.
fn run_product(
    x: &Tensor,
    conv: &Conv2d,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let isa = cpu::Isa::detect();
    let packed = packed_weights(conv, isa, geometry)?;
    run_packed(
        x,
        &[(&packed, geometry.c_out)],
        isa,
        geometry,
        epilogue,
        residual,
    )
}

/// `activation(bn(conv(x)) + residual)` in the convolution's own pass (a residual block's last convolution,
/// the sum with its shortcut and the ReLU after it), when the CPU kernels run `conv` by the matrix product
/// with `options`; `None` otherwise (training, other devices or dtypes, a gradient wanted, the layer taken by
/// Winograd or the depthwise kernel, `residual` not of the output's shape, or the optimisations off), and the
/// caller computes the sum as usual.
pub(crate) fn conv_bn_add_act(
    options: Optimizations,
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    residual: &Tensor,
    activation: Activation,
) -> Result<Option<Tensor>> {
    let enabled = options.conv_kernel && options.elementwise_kernels && options.folds(activation);
    if !enabled || !conv_kernels_apply(x, conv, bn) || !cpu_kernels_apply(residual) {
        return Ok(None);
    }
    let geometry = conv_geometry(x, conv)?;
    let (oh, ow) = geometry.out;
    let shape = [x.dim(0)?, geometry.c_out, oh, ow];
    if conv_path(options, (&geometry, shape[0]), activation) != ConvPath::Product
        || residual.dims() != shape
    {
        return Ok(None);
    }
    let epilogue = epilogue(conv, bn, activation, geometry.c_out)?;
    run_product(x, conv, &geometry, &epilogue, Some(residual)).map(Some)
}

/// The layers of a depthwise-separable block, `expand` (if any) and `project` 1×1 convolutions around the
/// depthwise convolution `depthwise`, each with its batch norm and activation, computed band by band by
/// [`cpu::separable`], with `x` added to the projection before its activation when `residual`; `None` where
/// that does not apply (training, other devices or dtypes, a gradient wanted, a layer the options or its shape
/// give another kernel, channels or sizes that do not chain or, with `residual`, do not give `x`'s shape, too
/// few rows to share between the threads) and the caller runs the layers one at a time, which also reports
/// what is wrong with them.
pub(crate) fn separable_with(
    options: Optimizations,
    x: &Tensor,
    expand: Option<FusedHead<'_>>,
    depthwise: FusedHead<'_>,
    project: FusedHead<'_>,
    residual: bool,
) -> Result<Option<Tensor>> {
    let heads = || expand.iter().chain([&depthwise, &project]);
    let enabled = options.separable_bands
        && options.conv_kernel
        && options.depthwise_kernel
        && heads().all(|head| options.folds(head.activation))
        && (!residual || options.elementwise_kernels);
    if !enabled || !heads().all(|head| conv_kernels_apply(x, head.conv, head.bn)) {
        return Ok(None);
    }
    let Ok((n, c, h, w)) = crate::expect_nchw(x, "conv2d") else {
        return Ok(None);
    };
    let Some((expand_g, depthwise_g, project_g)) =
        chained_geometry(expand.as_ref(), &depthwise, &project, (c, h, w))
    else {
        return Ok(None);
    };
    let pointwise = |g: &ConvGeometry, head: &FusedHead<'_>| {
        g.is_pointwise()
            && g.groups == 1
            && conv_path(options, (g, n), head.activation) == ConvPath::Product
    };
    let (oh, ow) = depthwise_g.out;
    let expand_usable = match (&expand, &expand_g) {
        (Some(e), Some(g)) => pointwise(g, e),
        _ => true,
    };
    let usable = expand_usable
        && conv_path(options, (&depthwise_g, n), depthwise.activation) == ConvPath::Depthwise
        && pointwise(&project_g, &project)
        && (!residual || (project_g.c_out, oh, ow) == (c, h, w))
        && cpu::separable::worth_it(&depthwise_g, n);
    if !usable {
        return Ok(None);
    }
    let isa = cpu::Isa::detect();
    let epilogue_of = |head: &FusedHead<'_>, g: &ConvGeometry| {
        epilogue(head.conv, head.bn, head.activation, g.c_out)
    };
    let expand_parts = match expand.as_ref().zip(expand_g) {
        Some((e, g)) => Some((packed_weights(e.conv, isa, &g)?, epilogue_of(e, &g)?, g)),
        None => None,
    };
    let project_packed = packed_weights(project.conv, isa, &project_g)?;
    let (depthwise_epilogue, project_epilogue) = (
        epilogue_of(&depthwise, &depthwise_g)?,
        epilogue_of(&project, &project_g)?,
    );
    let expand_weights = expand_parts
        .as_ref()
        .map(|(packed, _, g)| [(&packed[..], g.c_out)]);
    let project_weights = [(&project_packed[..], project_g.c_out)];
    let out = with_f32(depthwise.conv.weight(), |depthwise_weight| {
        use cpu::separable::Layer;
        let block = cpu::separable::Block {
            expand: expand_parts.as_ref().zip(expand_weights.as_ref()).map(
                |((_, epilogue, geometry), parts)| Layer {
                    weight: cpu::PackedWeights { isa, parts },
                    geometry: *geometry,
                    epilogue,
                },
            ),
            depthwise: Layer {
                weight: depthwise_weight,
                geometry: depthwise_g,
                epilogue: &depthwise_epilogue,
            },
            project: Layer {
                weight: cpu::PackedWeights {
                    isa,
                    parts: &project_weights,
                },
                geometry: project_g,
                epilogue: &project_epilogue,
            },
        };
        with_images(x, |images, image_stride| {
            cpu::separable::run(images, n, image_stride, &block, residual)
        })
    })??;
    Ok(Some(cpu_tensor(out, (n, project_g.c_out, oh, ow))))
}

/// The geometries of a separable block's layers on a `[c, h, w]` input, or `None` where a layer does not take
/// the channels the one before gives.
fn chained_geometry(
    expand: Option<&FusedHead<'_>>,
    depthwise: &FusedHead<'_>,
    project: &FusedHead<'_>,
    input: (usize, usize, usize),
) -> Option<(Option<ConvGeometry>, ConvGeometry, ConvGeometry)> {
    // `conv` on what `before` gives, if it takes that many channels.
    let after = |conv: &Conv2d, before: (usize, usize, usize)| {
        (conv.in_channels() == before.0)
            .then(|| geometry_of(conv, before).ok())
            .flatten()
    };
    let output = |g: &ConvGeometry| (g.c_out, g.out.0, g.out.1);
    let expand_g = match expand {
        Some(e) => Some(after(e.conv, input)?),
        None => None,
    };
    let depthwise_g = after(depthwise.conv, expand_g.as_ref().map_or(input, output))?;
    let project_g = after(project.conv, output(&depthwise_g))?;
    Some((expand_g, depthwise_g, project_g))
}

/// `conv`'s weights packed for the matrix product kernels of `isa` ([`cpu::pack_weights`]), as the layer
/// keeps them, packed on first use.
fn packed_weights(
    conv: &Conv2d,
    isa: cpu::Isa,
    geometry: &ConvGeometry,
) -> Result<std::sync::Arc<Vec<f32>>> {
    conv.prepared_weights()
        .get_or_prepare(PreparedKind::Packed(isa), || {
            with_f32(conv.weight(), |w| cpu::pack_weights(isa, w, geometry))
        })
}

/// What the CPU kernels need to know of `conv` applied to `x`; an error if `x` does not fit it.
pub(crate) fn conv_geometry(x: &Tensor, conv: &Conv2d) -> Result<ConvGeometry> {
    let (_, c, h, w) = crate::expect_nchw(x, "conv2d")?;
    conv.check_channels(c, x)?;
    geometry_of(conv, (c, h, w))
}

/// [`conv_geometry`] of `conv` on a `[c, h, w]` input whose channels it takes; an error if its window does not
/// fit the map.
fn geometry_of(conv: &Conv2d, (c, h, w): (usize, usize, usize)) -> Result<ConvGeometry> {
    let (oh, ow) = conv.output_size((h, w))?;
    let (c_out, _, kh, kw) = conv.weight().dims4()?;
    let spec = conv.spec();
    Ok(ConvGeometry {
        c_in: c,
        h,
        w,
        c_out,
        kernel: (kh, kw),
        stride: spec.stride,
        pad_before: (spec.pad.top, spec.pad.left),
        dilation: spec.dilation,
        groups: spec.groups,
        out: (oh, ow),
    })
}

/// Runs the CPU convolution kernel on the NCHW batch `x` with the weights [`cpu::pack_weights`] packed for
/// `isa`, in parts that each give their count of output channels ([`cpu::PackedWeights`]), and returns the
/// `[n, c_out, oh, ow]` result; `residual`, of that shape, is added before the epilogue's activation.
fn run_packed(
    x: &Tensor,
    parts: &[(&[f32], usize)],
    isa: cpu::Isa,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let weight = cpu::PackedWeights { isa, parts };
    // SAFETY: `run_packed_into` writes every value of its output or fails.
    unsafe {
        conv_output(x.dim(0)?, geometry, |out| {
            run_packed_into(x, (weight, geometry, epilogue), residual, out)
        })
    }
}

/// [`run_packed`] into `out`, which must hold the `[n, c_out, oh, ow]` output exactly; every value is
/// written.
fn run_packed_into(
    x: &Tensor,
    (weight, geometry, epilogue): (cpu::PackedWeights<'_>, &ConvGeometry, &Epilogue),
    residual: Option<&Tensor>,
    out: &mut [std::mem::MaybeUninit<f32>],
) -> Result<()> {
    let n = x.dim(0)?;
    let conv = |residual: Option<&[f32]>, out: &mut [std::mem::MaybeUninit<f32>]| {
        with_images(x, |images, image_stride| {
            let images = (images, n, image_stride);
            cpu::conv2d_into(images, weight, geometry, epilogue, residual, out);
        })
    };
    match residual {
        Some(residual) => with_f32(residual, |r| conv(Some(r), out))?,
        None => conv(None, out),
    }
}

/// The `[n, c_out, oh, ow]` output of a convolution of `geometry` over `n` images, as a tensor whose values
/// `write` writes, into a buffer that is not zeroed first.
///
/// # Safety
/// `write` must write every value of the slice it is given, or return an error.
pub(crate) unsafe fn conv_output(
    n: usize,
    geometry: &ConvGeometry,
    write: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]) -> Result<()>,
) -> Result<Tensor> {
    let (oh, ow) = geometry.out;
    let mut out = cpu::Fresh::new(n * geometry.c_out * oh * ow);
    write(out.values())?;
    // SAFETY: `write` wrote every value (the caller's contract).
    let out = unsafe { out.assume_written() };
    Ok(cpu_tensor(out, (n, geometry.c_out, oh, ow)))
}

/// A kernel that reads a convolution's weights as they are: `(images, batch, image_stride, weight, geometry,
/// epilogue) -> output`.
type OnWeights = fn(&[f32], usize, usize, &[f32], &ConvGeometry, &Epilogue) -> Vec<f32>;

/// Runs a kernel that reads a convolution's weights as they are (`[c_out, c_in / groups, kh, kw]`, any tensor
/// layout): [`cpu::depthwise::conv2d`], [`cpu::shallow::conv2d`]. It must apply; returns the `[n, c_out, oh,
/// ow]` result.
fn run_on_weights(
    kernel: OnWeights,
    x: &Tensor,
    weight: &Tensor,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
) -> Result<Tensor> {
    let n = x.dim(0)?;
    let out = with_f32(weight, |weight| {
        with_images(x, |images, image_stride| {
            kernel(images, n, image_stride, weight, geometry, epilogue)
        })
    })??;
    let (oh, ow) = geometry.out;
    Ok(cpu_tensor(out, (n, geometry.c_out, oh, ow)))
}

/// The layers one at a time, as in training; the convolution through candle unless `options` has the CPU
/// kernels on and they apply to it alone (a grouped convolution, see [`Conv2d::forward_with`]).
fn unfused(
    options: Optimizations,
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    activation: Activation,
    train: bool,
) -> Result<Tensor> {
    let y = conv.forward_with(x, options.conv_kernel)?;
    unfused_tail(options, &y, bn, activation, train)
}

/// The batch norm and activation after a convolution, one by one: candle's layers, or each in one pass of
/// the element-wise kernels when `options` allow it.
fn unfused_tail(
    options: Optimizations,
    y: &Tensor,
    bn: Option<&BatchNorm>,
    activation: Activation,
    train: bool,
) -> Result<Tensor> {
    let mut y = y.clone();
    if let Some(bn) = bn {
        y = batch_norm_with(options, &y, bn, Activation::Identity, train)?;
    }
    activation_with(options, &y, activation)
}

/// The per-channel scale and shift that apply the convolution's bias and the batch norm's inference transform.
pub(crate) fn epilogue(
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    activation: Activation,
    channels: usize,
) -> Result<Epilogue> {
    let bias = conv.bias().map(vec_f64).transpose()?;
    let Some(bn) = bn else {
        return Ok(Epilogue {
            scale: None,
            shift: bias.map(|b| b.into_iter().map(|v| v as f32).collect()),
            activation,
        });
    };
    if bn.num_features() != channels {
        return Err(crate::error(format!(
            "batch_norm expects {} channels, the convolution before it produces {channels}",
            bn.num_features()
        )));
    }
    let (scale, shift) = batch_norm_transform(bn, bias.as_deref())?;
    Ok(Epilogue {
        scale: Some(scale),
        shift: Some(shift),
        activation,
    })
}

/// The batch norm's inference transform `y = scale[c] * x + shift[c]`, with a preceding bias `b` folded into
/// the shift: `s = gamma / sqrt(running_var + eps)`, `shift = beta + s * (b - running_mean)`, in `f64`.
fn batch_norm_transform(bn: &BatchNorm, bias: Option<&[f64]>) -> Result<(Vec<f32>, Vec<f32>)> {
    let channels = bn.num_features();
    let inner = bn.inner();
    let mean = vec_f64(inner.running_mean())?;
    let var = vec_f64(inner.running_var())?;
    let (gamma, beta) = match inner.weight_and_bias() {
        Some((gamma, beta)) => (Some(vec_f64(gamma)?), Some(vec_f64(beta)?)),
        None => (None, None),
    };
    let eps = inner.eps();
    let mut scale = Vec::with_capacity(channels);
    let mut shift = Vec::with_capacity(channels);
    for c in 0..channels {
        let s = gamma.as_ref().map_or(1.0, |g| g[c]) / (var[c] + eps).sqrt();
        let b = bias.map_or(0.0, |b| b[c]);
        scale.push(s as f32);
        shift.push((beta.as_ref().map_or(0.0, |b| b[c]) + s * (b - mean[c])) as f32);
    }
    Ok((scale, shift))
}

/// A small parameter tensor's values as `f64`. Runs on every inference call, so a CPU `f32` tensor (the usual
/// case) is read in place rather than through candle ops.
fn vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    if is_cpu_f32(t) {
        return with_f32(t, |data| data.iter().map(|&v| f64::from(v)).collect());
    }
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

/// The data of a CPU `f32` storage; an error for any other.
fn cpu_f32_data(storage: &Storage) -> Result<&[f32]> {
    match storage {
        Storage::Cpu(CpuStorage::F32(data)) => Ok(data),
        _ => Err(crate::error(
            "internal error: the CPU kernels need a CPU f32 tensor",
        )),
    }
}

/// Calls `f` with the contiguous `f32` data of a CPU tensor.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let data = cpu_f32_data(&storage)?;
    let start = layout.start_offset();
    Ok(f(&data[start..start + layout.shape().elem_count()]))
}

/// Calls `f` with an NCHW CPU `f32` tensor's data and the distance between its images, each image being a
/// contiguous `[c, h, w]` block; copies the tensor first only when its images are not. A channel slice of a
/// larger map (`narrow` on dimension 1) qualifies as it is.
pub(crate) fn with_images<R>(x: &Tensor, f: impl FnOnce(&[f32], usize) -> R) -> Result<R> {
    let (_, c, h, w) = crate::expect_nchw(x, "the CPU kernels")?;
    let images_contiguous = {
        let stride = x.stride();
        let dims = [c, h, w];
        let contiguous = [h * w, w, 1];
        (0..3).all(|d| dims[d] <= 1 || stride[d + 1] == contiguous[d])
    };
    let x = if images_contiguous {
        x.clone()
    } else {
        x.contiguous()?
    };
    let (n, image) = (x.dim(0)?, c * h * w);
    let image_stride = if n > 1 { x.stride()[0] } else { image };
    let (storage, layout) = x.storage_and_layout();
    let data = cpu_f32_data(&storage)?;
    let start = layout.start_offset();
    let end = if n == 0 {
        start
    } else {
        start + (n - 1) * image_stride + image
    };
    Ok(f(&data[start..end], image_stride))
}

/// A contiguous CPU tensor over `data`, outside any gradient graph.
pub(crate) fn cpu_tensor(data: Vec<f32>, shape: impl Into<candle_core::Shape>) -> Tensor {
    Tensor::from_storage(
        Storage::Cpu(CpuStorage::F32(data)),
        shape,
        BackpropOp::none(),
        false,
    )
}

/// `activation(x)`: candle's operation, or one pass of the element-wise kernel when `options` allow it and it
/// applies (a CPU `f32` tensor that wants no gradient).
pub(crate) fn activation_with(
    options: Optimizations,
    x: &Tensor,
    activation: Activation,
) -> Result<Tensor> {
    let Some(candle) = activation.candle() else {
        return Ok(x.clone());
    };
    if options.elementwise_kernels && cpu_kernels_apply(x) {
        let out = with_f32(x, |data| cpu::elementwise::activation(data, activation))?;
        return Ok(cpu_tensor(out, x.dims()));
    }
    candle_nn::Module::forward(&candle, x)
}

/// `activation(bn(x))` for a batch norm that no convolution precedes: one pass of the element-wise kernel in
/// inference when `options` allow it and it applies (an NCHW CPU `f32` map and batch norm tensors that want no
/// gradient), otherwise the batch norm's own `forward_t` and [`activation_with`].
pub(crate) fn batch_norm_with(
    options: Optimizations,
    x: &Tensor,
    bn: &BatchNorm,
    activation: Activation,
    train: bool,
) -> Result<Tensor> {
    let applies = !train
        && options.elementwise_kernels
        && cpu_kernels_apply(x)
        && x.rank() == 4
        && x.dim(1)? == bn.num_features()
        && is_cpu_f32(bn.running_mean())
        && !bn
            .inner()
            .weight_and_bias()
            .is_some_and(|(gamma, beta)| gamma.track_op() || beta.track_op());
    if !applies {
        let y = bn.forward_t(x, train)?;
        return activation_with(options, &y, activation);
    }
    let (n, c, h, w) = x.dims4()?;
    let (scale, shift) = batch_norm_transform(bn, None)?;
    let out = with_images(x, |images, image_stride| {
        cpu::elementwise::channel_affine(
            images,
            n,
            image_stride,
            (c, h * w),
            &scale,
            &shift,
            activation,
        )
    })?;
    Ok(cpu_tensor(out, (n, c, h, w)))
}

/// `activation(a + b + ...)`, the sum of an `add` group's branches: one pass of the element-wise kernel for two
/// NCHW CPU `f32` maps of the same shape when `options` allow it, otherwise candle's sums and
/// [`activation_with`].
pub(crate) fn sum_with(
    options: Optimizations,
    parts: &[Tensor],
    activation: Activation,
) -> Result<Tensor> {
    if let [a, b] = parts {
        let applies = options.elementwise_kernels
            && cpu_kernels_apply(a)
            && cpu_kernels_apply(b)
            && a.rank() == 4
            && a.dims() == b.dims();
        if applies {
            let (n, c, h, w) = a.dims4()?;
            let out = with_images(a, |a, a_stride| {
                with_images(b, |b, b_stride| {
                    cpu::elementwise::sum((a, a_stride), (b, b_stride), (n, c * h * w), activation)
                })
            })??;
            return Ok(cpu_tensor(out, (n, c, h, w)));
        }
    }
    activation_with(options, &crate::nn::sum(parts)?, activation)
}

/// The product of a `mul` group's branches: for an NCHW CPU `f32` map and an `[N, C, 1, 1]` gate (a
/// squeeze-and-excitation), one pass of the element-wise kernel when `options` allow it; otherwise candle's
/// broadcasting products.
pub(crate) fn product_with(options: Optimizations, parts: &[Tensor]) -> Result<Tensor> {
    if let [a, b] = parts {
        let (map, gate) = if b.dims().get(2..) == Some(&[1, 1][..]) {
            (a, b)
        } else {
            (b, a)
        };
        let applies = options.elementwise_kernels
            && cpu_kernels_apply(map)
            && cpu_kernels_apply(gate)
            && map.rank() == 4
            && gate.rank() == 4
            && gate.dims()[..2] == map.dims()[..2]
            && gate.dims()[2..] == [1, 1];
        if applies {
            let (n, c, h, w) = map.dims4()?;
            let out = with_images(map, |images, image_stride| {
                with_f32(gate, |gate| {
                    cpu::elementwise::channel_product(images, n, image_stride, (c, h * w), gate)
                })
            })??;
            return Ok(cpu_tensor(out, (n, c, h, w)));
        }
    }
    crate::nn::product(parts)
}

/// `activation(linear(x))`: for an `[N, in]` CPU `f32` input with `N` up to 8 and weights that want no gradient,
/// the dot-product kernel of [`cpu::linear`] when `options` allow it; otherwise candle's layer and
/// [`activation_with`].
pub(crate) fn linear_with(
    options: Optimizations,
    x: &Tensor,
    linear: &candle_nn::Linear,
    activation: Activation,
) -> Result<Tensor> {
    let weight = linear.weight();
    let bias = linear.bias();
    let applies = options.linear_kernel
        && cpu_kernels_apply(x)
        && x.rank() == 2
        && x.dim(0)? <= cpu::linear::MAX_BATCH
        && weight.rank() == 2
        && x.dim(1)? == weight.dim(1)?
        && is_cpu_f32(weight)
        && !weight.track_op()
        && match bias {
            None => true,
            Some(b) => is_cpu_f32(b) && !b.track_op() && b.dims() == [weight.dim(0)?],
        };
    if !applies {
        let y = candle_nn::Module::forward(linear, x)?;
        return activation_with(options, &y, activation);
    }
    let (batch, k) = x.dims2()?;
    let n = weight.dim(0)?;
    let bias = bias.map(|b| with_f32(b, <[f32]>::to_vec)).transpose()?;
    let out = with_f32(x, |x| {
        with_f32(weight, |w| {
            cpu::linear::linear(x, batch, w, bias.as_deref(), (k, n), activation)
        })
    })??;
    Ok(cpu_tensor(out, (batch, n)))
}

/// A convolution that starts a branch, with the batch norm and ReLU that fold into it: what generated code
/// offers [`sibling_heads`] for each branch of a concatenation.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub conv: &'a Conv2d,
    pub bn: Option<&'a BatchNorm>,
    pub relu: bool,
}

/// A convolution with the batch norm and activation that follow it, as the plan finds them: a [`Head`] whose
/// activation may be any the kernels know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedHead<'a> {
    pub conv: &'a Conv2d,
    pub bn: Option<&'a BatchNorm>,
    pub activation: Activation,
}

impl<'a> From<Head<'a>> for FusedHead<'a> {
    fn from(head: Head<'a>) -> FusedHead<'a> {
        FusedHead {
            conv: head.conv,
            bn: head.bn,
            activation: if head.relu {
                Activation::Relu
            } else {
                Activation::Identity
            },
        }
    }
}

impl FusedHead<'_> {
    /// A 1×1 convolution with stride 1, no padding and one group: a plain matrix product over channels.
    fn is_pointwise(&self) -> bool {
        let spec = self.conv.spec();
        let dims = self.conv.weight().dims();
        dims.len() == 4
            && dims[2..] == [1, 1]
            && spec.stride == (1, 1)
            && spec.pad == crate::Pad2d::default()
            && spec.groups == 1
    }
}

/// Runs the 1×1 convolutions that start several branches of a concatenation, all reading `x`, as one matrix
/// product: the heads' packed weights one after the other as its rows (no stacked copy), each head's batch norm
/// and ReLU folded into its rows of the output pass. Returns, per branch, the head's output (a channel slice of the shared result)
/// for the fused heads, and `None` for the branches to run as usual: all of them in training, off CPU/`f32`,
/// when a gradient is wanted, with fewer than two pointwise heads, or when the optimisation is off.
///
/// Each head's packed weights are its own layer's ([`crate::prepared`]): after writing a head's weight in place,
/// its layer's [`Conv2d::forget_prepared`] makes the next call follow.
pub fn sibling_heads(
    x: &Tensor,
    heads: &[Option<Head<'_>>],
    train: bool,
) -> Result<Vec<Option<Tensor>>> {
    let heads: Vec<Option<FusedHead<'_>>> = heads.iter().map(|h| h.map(FusedHead::from)).collect();
    sibling_heads_with(Optimizations::ALL, x, &heads, train)
}

/// [`sibling_heads`] for heads with any activation the kernels know, with only the optimisations in
/// `options`.
pub(crate) fn sibling_heads_with(
    options: Optimizations,
    x: &Tensor,
    heads: &[Option<FusedHead<'_>>],
    train: bool,
) -> Result<Vec<Option<Tensor>>> {
    let mut outputs = vec![None; heads.len()];
    if train
        || !(options.fuse_siblings && options.conv_kernel && options.fold_batch_norm)
        || !cpu_kernels_apply(x)
    {
        return Ok(outputs);
    }
    // Heads that can share one product: pointwise, CPU f32 weights that no gradient is wanted for, an
    // activation the options fold, and the same activation as the first.
    let mut chosen: Vec<(usize, FusedHead<'_>)> = Vec::new();
    for (i, head) in heads.iter().enumerate() {
        let Some(head) = head else { continue };
        let usable = head.is_pointwise()
            && options.folds(head.activation)
            && is_cpu_f32(head.conv.weight())
            && !parameters_track_op(head.conv, head.bn)
            && !matches!(chosen.first(), Some((_, first)) if first.activation != head.activation);
        if usable {
            chosen.push((i, *head));
        }
    }
    if chosen.len() < 2 {
        return Ok(outputs);
    }
    let (_, c, h, w) = crate::expect_nchw(x, "conv2d")?;
    let mut scale = Vec::new();
    let mut shift = Vec::new();
    let mut widths = Vec::with_capacity(chosen.len());
    for (_, head) in &chosen {
        head.conv.check_channels(c, x)?;
        let c_out = head.conv.weight().dim(0)?;
        let epilogue = epilogue(head.conv, head.bn, head.activation, c_out)?;
        scale.extend(epilogue.scale.unwrap_or_else(|| vec![1.0; c_out]));
        shift.extend(epilogue.shift.unwrap_or_else(|| vec![0.0; c_out]));
        widths.push(c_out);
    }
    let total: usize = widths.iter().sum();
    let geometry = ConvGeometry::pointwise(c, total, (h, w));
    let epilogue = Epilogue {
        scale: Some(scale),
        shift: Some(shift),
        activation: chosen[0].1.activation,
    };
    // One product over the heads' own packed weights, their rows one after the other.
    let isa = cpu::Isa::detect();
    let packed = chosen
        .iter()
        .zip(&widths)
        .map(|((_, head), &width)| {
            let head_geometry = ConvGeometry {
                c_out: width,
                ..geometry
            };
            packed_weights(head.conv, isa, &head_geometry)
        })
        .collect::<Result<Vec<_>>>()?;
    let parts: Vec<(&[f32], usize)> = packed
        .iter()
        .zip(&widths)
        .map(|(p, &width)| (p.as_slice(), width))
        .collect();
    let out = run_packed(x, &parts, isa, &geometry, &epilogue, None)?;
    let mut start = 0;
    for ((i, _), width) in chosen.iter().zip(widths) {
        outputs[*i] = Some(out.narrow(1, start, width)?);
        start += width;
    }
    Ok(outputs)
}

/// Inference over a batch larger than the thread pool, one image at a time per thread: the batch is cut into
/// as many runs of consecutive images as there are threads, and each run goes through `forward` one image at
/// a time on a one-thread pool of its own, so every image crosses the whole network on one core as it would
/// on one thread, its activations in that core's caches, with no hand-over between the threads at each layer.
/// (Run layer by layer with one image per thread, the threads met at every layer's end: ResNet-50 at batch 8
/// on two cores took 24.4 ms an image, 9% more than two one-thread processes side by side.) The outputs are
/// concatenated along the batch.
///
/// Returns `None`, so the caller runs the batch as it is, when the batch is no larger than the thread pool,
/// when the CPU kernels do not apply (training, other devices or dtypes, an input that wants a gradient) or
/// when the optimisation is off. Inference in eval mode treats images independently, so the result is the
/// same.
pub fn in_micro_batches(
    xs: &Tensor,
    forward: impl Fn(&Tensor) -> Result<Tensor> + Sync,
) -> Result<Option<Tensor>> {
    in_micro_batches_with(Optimizations::ALL, xs, forward)
}

/// [`in_micro_batches`] with only the optimisations in `options`.
pub(crate) fn in_micro_batches_with(
    options: Optimizations,
    xs: &Tensor,
    forward: impl Fn(&Tensor) -> Result<Tensor> + Sync,
) -> Result<Option<Tensor>> {
    if !runs_as_streams(options, xs) {
        return Ok(None);
    }
    let threads = rayon::current_num_threads().max(1);
    let batch = xs.dims()[0];
    let images = |range: std::ops::Range<usize>| -> Result<Vec<Tensor>> {
        range.map(|n| forward(&xs.narrow(0, n, 1)?)).collect()
    };
    let outputs = if threads == 1 {
        images(0..batch)?
    } else {
        let pools = one_thread_pools(threads)?;
        let runs: Vec<std::ops::Range<usize>> = (0..threads)
            .map(|i| i * batch / threads..(i + 1) * batch / threads)
            .collect();
        let per_run = std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .zip(pools.iter())
                .map(|(run, pool)| {
                    let images = &images;
                    scope.spawn(move || pool.install(|| images(run)))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| match handle.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect::<Result<Vec<_>>>()
        })?;
        per_run.into_iter().flatten().collect()
    };
    Tensor::cat(&outputs, 0).map(Some)
}

/// Whether [`in_micro_batches_with`] runs `xs` as whole-image streams: a batch larger than the thread pool, the
/// CPU kernels applying and `options` allowing it.
pub(crate) fn runs_as_streams(options: Optimizations, xs: &Tensor) -> bool {
    let batch = xs.dims().first().copied().unwrap_or(0);
    options.micro_batches && cpu_kernels_apply(xs) && batch > rayon::current_num_threads().max(1)
}

/// `count` thread pools of one thread each, made on first use and kept for the process (a pool's thread
/// sleeps between batches).
fn one_thread_pools(count: usize) -> Result<Vec<std::sync::Arc<rayon::ThreadPool>>> {
    static POOLS: std::sync::Mutex<Vec<std::sync::Arc<rayon::ThreadPool>>> =
        std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while pools.len() < count {
        let index = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("archc-images-{index}"))
            .build()
            .map_err(|e| {
                crate::error(format!("cannot start a thread for a batch's images: {e}"))
            })?;
        pools.push(std::sync::Arc::new(pool));
    }
    Ok(pools[..count].to_vec())
}

#[cfg(test)]
mod tests {
    use super::Optimizations;

    #[test]
    fn optimisation_lists_switch_on_and_off_from_left_to_right() {
        let parse = |text: &str| text.parse::<Optimizations>();
        assert_eq!(parse("all"), Ok(Optimizations::ALL));
        assert_eq!(parse("none"), Ok(Optimizations::NONE));
        assert_eq!(parse(""), Ok(Optimizations::NONE));
        let conv_fold = Optimizations {
            conv_kernel: true,
            fold_batch_norm: true,
            ..Optimizations::NONE
        };
        assert_eq!(parse("conv, fold"), Ok(conv_fold));
        let but_winograd = Optimizations {
            winograd: false,
            ..Optimizations::ALL
        };
        assert_eq!(parse("all,-winograd"), Ok(but_winograd));
        assert_eq!(parse("all,-winograd,winograd"), Ok(Optimizations::ALL));
        assert_eq!(
            parse("conv,fold,none,memory").map(|o| o.retain_memory),
            Ok(true)
        );
        let error = parse("all,-wingrad").unwrap_err();
        assert!(error.contains("`-wingrad`"), "{error}");
        assert!(parse("-all").is_err());
    }
}
