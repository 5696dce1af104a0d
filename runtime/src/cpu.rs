//! CPU inference kernels for `f32` NCHW tensors: the passes a generated model spends its time in, written so
//! that each does the least memory traffic it can.
//!
//! * [`conv2d_into`]: a convolution as one matrix product per image and group, `W [out, k] x X [k, oh * ow]`,
//!   whose result is already the NCHW output (no transpose afterwards). A 1×1, stride-1, unpadded convolution
//!   multiplies the input in place; a strided one with enough channels multiplies the input's padded phase
//!   planes ([`fill_phase_planes`]) in place, each tap of its window a block of the product's depth reading
//!   one shifted run of every plane ([`product_in_place`]); any other builds the `[k, oh * ow]` patch matrix
//!   (im2col, in blocks of columns that stay in cache), at stride 1 from the input with the zero padding
//!   written straight into it, strided from the phase planes, where every tap reads whole runs.
//!   The product is the runtime's own ([`gemm`]), on the weights packed once per layer ([`pack_weights`]); the
//!   per-channel epilogue `y = act(scale * acc + shift + residual)`, which is where a following batch norm and
//!   activation, the convolution's bias and a residual block's sum go, is applied as each value is stored.
//! * [`depthwise::conv2d`]: a depthwise convolution (one input channel per group), computed directly, a plane
//!   per task, instead of as a tiny product per group.
//! * [`max_pool2d`] and [`avg_pool2d`]: two passes of slice operations over each plane (down the columns, then
//!   along the rows) with the windows clipped to the input, so padding and ceil mode cost nothing and no
//!   padded copy is made.
//! * [`elementwise`]: the activations (applied by the epilogue, or on their own), and one-pass versions of the
//!   element-wise layers around convolutions: a batch norm and its activation, a per-channel product, a sum and
//!   its activation.
//! * [`linear::linear`]: a fully connected layer at a small batch, as dot products at the memory's speed.
//!
//! Work is spread over rayon's pool: across images when there are at least as many images as threads,
//! otherwise inside the matrix product. The kernels work on slices and return plain vectors; [`crate::fused`]
//! and the pooling layers decide when they apply (CPU, `f32`, no gradient wanted) and wrap the results in
//! tensors.

use std::cell::Cell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
pub(crate) mod avx512;
pub(crate) mod depthwise;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod linear;
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
pub(crate) mod pooled;
pub(crate) mod separable;
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
pub(crate) mod shallow;
pub(crate) mod winograd;

pub(crate) use elementwise::Activation;
pub(crate) use gemm::Isa;
pub use gemm::ISA_VARIABLE;

/// Everything about a convolution over one image except the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    /// Zero rows above and columns to the left; padding below and to the right is implied by `out`.
    pub pad_before: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
    /// The output `(height, width)`.
    pub out: (usize, usize),
}

impl ConvGeometry {
    /// A pointwise convolution (1×1, stride 1, no padding, one group) from `c_in` to `c_out` channels on an
    /// `(h, w)` map.
    pub(crate) fn pointwise(c_in: usize, c_out: usize, (h, w): (usize, usize)) -> ConvGeometry {
        ConvGeometry {
            c_in,
            h,
            w,
            c_out,
            kernel: (1, 1),
            stride: (1, 1),
            pad_before: (0, 0),
            dilation: (1, 1),
            groups: 1,
            out: (h, w),
        }
    }

    fn in_per_group(&self) -> usize {
        self.c_in / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of the patch matrix: one per weight of an output channel.
    fn depth(&self) -> usize {
        self.in_per_group() * self.kernel.0 * self.kernel.1
    }

    /// Columns of the patch matrix: one per output position.
    pub(crate) fn columns(&self) -> usize {
        self.out.0 * self.out.1
    }

    /// How many rows and columns past an output position's the window reaches in the phase planes of
    /// [`fill_phase_planes`]: the largest row and column shifts of [`tap_phase`].
    pub(crate) fn phase_reach(&self) -> (usize, usize) {
        (
            (self.kernel.0 - 1) * self.dilation.0 / self.stride.0,
            (self.kernel.1 - 1) * self.dilation.1 / self.stride.1,
        )
    }

    /// Whether the patch rows (and the packed weights' columns) go tap by tap, each tap's rows the input
    /// channels, rather than channel by channel, each channel's rows the taps: for a strided convolution,
    /// whose patches come from phase planes where each tap's rows are the input channels of one shifted plane,
    /// read in place ([`product_in_place`]).
    pub(crate) fn tap_major(&self) -> bool {
        Phased::applies(self)
    }

    /// Whether the input, read as a `[c_in, h * w]` matrix, is already the patch matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1)
            && self.stride == (1, 1)
            && self.pad_before == (0, 0)
            && self.out == (self.h, self.w)
    }
}

/// What happens to each output value `acc` of channel `c` after the product:
/// `activation(scale[c] * acc + shift[c])`, with a missing `scale` meaning 1 and a missing `shift` 0.
#[derive(Debug, Clone, Default)]
pub(crate) struct Epilogue {
    pub scale: Option<Vec<f32>>,
    pub shift: Option<Vec<f32>>,
    pub activation: Activation,
}

impl Epilogue {
    /// `dst [m, n] = epilogue(a × b + residual)` for the channels from `first` on: [`gemm::multiply`] of the
    /// rows of the packed matrices `a` (`m` in all) by `b` (`[k, n]`, its rows where [`gemm::Rhs`] says) into
    /// `dst` (rows `dst.1` apart), with `residual` (laid out as `dst`) added before the activation. A clamp
    /// (ReLU, ReLU6) is applied as the product stores each value; any other activation in a pass over the rows
    /// after it.
    ///
    /// # Safety
    /// As [`gemm::multiply`].
    unsafe fn multiply(
        &self,
        first: usize,
        a: &[gemm::Packed<'_>],
        b: gemm::Rhs<'_>,
        n: usize,
        (dst, dst_stride): (*mut f32, usize),
        residual: Option<&[f32]>,
    ) {
        let (clamp, rest) = gemm::Clamp::of(self.activation);
        let finish = gemm::Finish {
            scale: self.scale.as_deref().map(|s| &s[first..]),
            shift: self.shift.as_deref().map(|s| &s[first..]),
            residual,
            activation: clamp,
        };
        // SAFETY: the caller's contract.
        let walk = gemm::Walk::for_output(a.first().map_or(0, |part| part.depth));
        unsafe { gemm::multiply(a, b, n, (dst, dst_stride), finish, walk) };
        if rest {
            let m: usize = a.iter().map(|part| part.rows).sum();
            // Rows that follow one another are one pass.
            let (rows, len) = if dst_stride == n { (1, m * n) } else { (m, n) };
            for row in 0..rows {
                // SAFETY: the product wrote these `len` values, inside the destination (the caller's
                // contract), which nothing else accesses.
                let values =
                    unsafe { std::slice::from_raw_parts_mut(dst.add(row * dst_stride), len) };
                self.activation.apply(values);
            }
        }
    }
}

/// A convolution's weights packed for the matrix product by [`pack_weights`], each part with its count of
/// output channels: one part holding each group's `[out / groups, in / groups * kh * kw]` matrix, one after
/// the other; or, for an ungrouped convolution, several parts whose output channels follow one another (the
/// sibling 1×1 convolutions that run as one product, each with its own packed weights).
#[derive(Clone, Copy)]
pub(crate) struct PackedWeights<'a> {
    pub isa: Isa,
    pub parts: &'a [(&'a [f32], usize)],
}

/// The contiguous `[c_out, c_in / groups, kh, kw]` `weight` of a convolution of geometry `g`, packed for `isa`,
/// its columns in the order of the patch rows: by input channel, then tap, or for a strided convolution by tap,
/// then input channel ([`ConvGeometry::tap_major`]).
pub(crate) fn pack_weights(isa: Isa, weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (out_g, depth) = (g.out_per_group(), g.depth());
    assert!(
        weight.len() >= g.c_out * depth,
        "convolution weight too short"
    );
    let weight = &weight[..g.c_out * depth];
    let tap_major;
    let weight = if g.tap_major() {
        // `[c_out, in_g, taps]` → `[c_out, taps, in_g]`.
        let (in_g, taps) = (g.in_per_group(), g.kernel.0 * g.kernel.1);
        let mut permuted = vec![0.0; weight.len()];
        for (src, dst) in weight
            .chunks_exact(depth)
            .zip(permuted.chunks_exact_mut(depth))
        {
            for (c, channel) in src.chunks_exact(taps).enumerate() {
                for (t, &v) in channel.iter().enumerate() {
                    dst[t * in_g + c] = v;
                }
            }
        }
        tap_major = permuted;
        &tap_major[..]
    } else {
        weight
    };
    let mut packed = Vec::with_capacity(g.groups * gemm::packed_len(isa, out_g, depth));
    for group in 0..g.groups {
        packed.extend(gemm::pack(
            isa,
            &weight[group * out_g * depth..],
            out_g,
            depth,
        ));
    }
    packed
}

impl<'a> PackedWeights<'a> {
    /// Group `group`'s packed matrices, whose rows are its output channels.
    fn group(&self, group: usize, g: &ConvGeometry) -> Vec<gemm::Packed<'a>> {
        let (rows, depth) = (g.out_per_group(), g.depth());
        if g.groups == 1 {
            assert_eq!(
                self.parts.iter().map(|(_, rows)| rows).sum::<usize>(),
                g.c_out,
                "packed weights of another geometry"
            );
            return self
                .parts
                .iter()
                .map(|&(values, rows)| gemm::Packed::new(self.isa, values, rows, depth))
                .collect();
        }
        let [(values, c_out)] = self.parts else {
            panic!("a grouped convolution's weights in parts")
        };
        assert_eq!(*c_out, g.c_out, "packed weights of another geometry");
        let len = gemm::packed_len(self.isa, rows, depth);
        vec![gemm::Packed::new(
            self.isa,
            &values[group * len..(group + 1) * len],
            rows,
            depth,
        )]
    }
}

/// An output buffer that a kernel writes every value of before anything reads it, so it is allocated without
/// the zero-fill `vec![0.0; len]` does: with freed memory kept in the process ([`crate::memory`]) that fill is a
/// pass over every output (4.7% of MobileNet-V2's time on one core).
pub(crate) struct Fresh(Vec<MaybeUninit<f32>>);

impl Fresh {
    pub(crate) fn new(len: usize) -> Fresh {
        let mut values = Vec::with_capacity(len);
        // SAFETY: `MaybeUninit` values need no initialisation, and the capacity is `len`.
        unsafe { values.set_len(len) };
        Fresh(values)
    }

    pub(crate) fn values(&mut self) -> &mut [MaybeUninit<f32>] {
        &mut self.0
    }

    /// The values, every one written.
    ///
    /// # Safety
    /// Every value must have been written.
    pub(crate) unsafe fn assume_written(self) -> Vec<f32> {
        let mut values = std::mem::ManuallyDrop::new(self.0);
        let (ptr, len, capacity) = (values.as_mut_ptr(), values.len(), values.capacity());
        // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, the allocation is the vector's own, and every value is
        // initialised (the caller's contract).
        unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, capacity) }
    }
}

/// `values`, every one of which a kernel has written, as plain values.
///
/// # Safety
/// Every value of `values` must have been written.
pub(crate) unsafe fn written(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and every value is initialised (the caller's contract).
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Where part of a convolution's output goes, and the residual values to add to it (a residual connection's
/// other branch, laid out as the output is), if any.
struct Dst<'a> {
    values: &'a mut [MaybeUninit<f32>],
    residual: Option<&'a [f32]>,
}

impl<'a> Dst<'a> {
    /// Consecutive parts of `len` values, one after the other.
    fn chunks(self, len: usize) -> impl Iterator<Item = Dst<'a>> {
        let residual = self.residual;
        self.values
            .chunks_mut(len)
            .enumerate()
            .map(move |(i, values)| Dst {
                values,
                residual: residual.map(|r| &r[i * len..]),
            })
    }

    /// [`Dst::chunks`], for rayon's threads.
    fn par_chunks(self, len: usize) -> impl IndexedParallelIterator<Item = Dst<'a>> {
        let residual = self.residual;
        self.values
            .par_chunks_mut(len)
            .enumerate()
            .map(move |(i, values)| Dst {
                values,
                residual: residual.map(|r| &r[i * len..]),
            })
    }
}

thread_local! {
    /// Each thread's patch-matrix buffer, reused across calls so large convolutions do not allocate per image.
    /// A user takes it out and puts it back rather than borrowing it: while a convolution waits for its rayon
    /// tasks, its thread may run another convolution (a task stolen from an outer parallel loop), which then
    /// finds the slot empty and allocates its own buffer instead of aliasing this one.
    static PATCHES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Each thread's buffer for a strided convolution's phase planes ([`Phased`]), taken and put back likewise.
    static PHASED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The first `len` values of a reused scratch buffer, which only grows (with zeros): resized down for a small
/// layer and up again for the next, it zeroed the difference on every call (2% of ResNet-50's time). What a
/// caller finds in it is whatever a previous call left.
pub(crate) fn scratch(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// For a buffer of band rows (planes `plane` values apart, rows `row_len` long, holding rows `held` of a map
/// from each plane's top), the rows of `wanted` the previous band already computed, moved to the top of each
/// plane so that only the rows after them need computing; returns them (empty where the bands do not
/// overlap). The bands of [`separable`] and [`pooled`] share a row or two with the band before.
pub(crate) fn keep_overlap(
    buffer: &mut [f32],
    (plane, row_len): (usize, usize),
    held: &std::ops::Range<usize>,
    wanted: &std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let kept = if held.contains(&wanted.start) {
        wanted.start..held.end.min(wanted.end)
    } else {
        wanted.start..wanted.start
    };
    if !kept.is_empty() && kept.start > held.start {
        let from = (kept.start - held.start) * row_len;
        for channel in buffer.chunks_exact_mut(plane) {
            channel.copy_within(from..from + kept.len() * row_len, 0);
        }
    }
    kept
}

/// [`conv2d_into`] into a buffer of its own, returned.
#[cfg(test)]
pub(crate) fn conv2d(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    weight: PackedWeights<'_>,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = Fresh::new(batch * geometry.c_out * geometry.columns());
    let images = (x, batch, image_stride);
    conv2d_into(images, weight, geometry, epilogue, residual, out.values());
    // SAFETY: `conv2d_into` writes every value of `out`.
    unsafe { out.assume_written() }
}

/// Convolves `batch` images: `images` is `(x, batch, image_stride)`, `x` holding image `n` at
/// `x[n * image_stride..]` as a contiguous `[c_in, h, w]` block; `weight` is the kernel as [`pack_weights`]
/// packed it for this geometry. Writes every value of `out`, which must hold the contiguous
/// `[batch, c_out, oh, ow]` output exactly (a tensor's, or a channel slice of a concatenation at batch 1),
/// with `epilogue` applied, `residual` (laid out as the output) added before the epilogue's activation:
/// `activation(scale * conv + shift + residual)`, a residual connection's sum and the activation after it in
/// the convolution's own pass.
pub(crate) fn conv2d_into(
    (x, batch, image_stride): (&[f32], usize, usize),
    weight: PackedWeights<'_>,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
    residual: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) {
    let g = geometry;
    let image_out = g.c_out * g.columns();
    assert_eq!(out.len(), batch * image_out, "output of another shape");
    assert!(
        residual.iter().all(|r| r.len() == batch * image_out),
        "residual of another shape than the output"
    );
    if image_out == 0 {
        return;
    }
    let image = |n: usize| &x[n * image_stride..n * image_stride + g.c_in * g.h * g.w];
    let dst = Dst {
        values: out,
        residual,
    };
    if !split_images(batch) {
        // Enough images to keep every thread busy: one image per task, each product single-threaded.
        dst.par_chunks(image_out)
            .enumerate()
            .for_each(|(n, dst)| conv_image(image(n), weight, g, epilogue, dst, false));
    } else {
        for (n, dst) in dst.chunks(image_out).enumerate() {
            conv_image(image(n), weight, g, epilogue, dst, true);
        }
    }
    // Every image's products write every value of its output (see `gemm::multiply`).
}

/// Whether a convolution of `images` images shares each image between the threads of the current pool: fewer
/// images than threads. Otherwise each thread takes whole images ([`conv2d_into`],
/// [`winograd::conv2d_into`]); Winograd's tile choice follows the same split ([`winograd::choose`]).
pub(crate) fn split_images(images: usize) -> bool {
    let threads = rayon::current_num_threads();
    threads > 1 && images < threads
}

/// One image: for each group, the product `W_g [out_g, depth] x patches_g [depth, columns]` into the group's
/// output rows, then the epilogue on those rows ([`conv_group`]). `parallel` spreads the groups over the
/// threads when there are enough of them (ResNeXt's 32), and otherwise splits each group's work.
fn conv_image(
    x: &[f32],
    weight: PackedWeights<'_>,
    g: &ConvGeometry,
    epilogue: &Epilogue,
    dst: Dst<'_>,
    parallel: bool,
) {
    let group_out = g.out_per_group() * g.columns();
    let threads = rayon::current_num_threads();
    // Groups that share out evenly, or so many that the imbalance is small. (`usize::is_multiple_of` is newer
    // than the workspace's `rust-version`.)
    #[allow(clippy::manual_is_multiple_of)]
    let enough_groups = g.groups > 1 && (g.groups % threads == 0 || g.groups >= 4 * threads);
    if parallel && enough_groups {
        // A group per task, each product single-threaded: splitting every group instead costs a fork and join
        // per group, more than a small group's product (ResNeXt-50's 32-group convolutions ran 1.7x and 3.8x
        // slower on two threads than on one that way, with the second core busy).
        dst.par_chunks(group_out)
            .enumerate()
            .for_each(|(group, dst_g)| conv_group(x, weight, g, epilogue, group, dst_g, false));
        return;
    }
    for (group, dst_g) in dst.chunks(group_out).enumerate() {
        conv_group(x, weight, g, epilogue, group, dst_g, parallel);
    }
}

/// One group of one image into its output rows `dst_g`. `parallel` shares the product out between the threads,
/// by output columns or by output rows ([`thread_columns`] chooses), each thread finishing its part of the
/// output with the epilogue while it is in its cache.
fn conv_group(
    x: &[f32],
    weight: PackedWeights<'_>,
    g: &ConvGeometry,
    epilogue: &Epilogue,
    group: usize,
    dst_g: Dst<'_>,
    parallel: bool,
) {
    let (depth, columns, out_g, in_g) =
        (g.depth(), g.columns(), g.out_per_group(), g.in_per_group());
    let plane = g.h * g.w;
    let w_g = weight.group(group, g);
    let x_g = &x[group * in_g * plane..(group + 1) * in_g * plane];
    let first_channel = group * out_g;
    let products = |source: &Patches<'_>| {
        if let Patches::Phased(phased) = source {
            if reads_in_place(g, dst_g.residual.is_some()) {
                product_in_place(phased, &w_g, g, epilogue, first_channel, dst_g, parallel);
                return;
            }
        }
        // Column blocks sized for the cache come first (a pointwise convolution has no patches to keep in
        // cache), handed to the threads in whole rounds ([`block_count`]); otherwise the threads split the
        // columns or the rows of one product.
        let cache_block = if g.is_pointwise() {
            None
        } else {
            column_block(g)
        };
        let threads = rayon::current_num_threads();
        let blocks = match cache_block {
            Some(width) if parallel => Some(block_count(columns, width, threads)),
            Some(width) => Some(block_count(columns, width, 1)),
            None if parallel => thread_columns(g, threads).map(|width| columns.div_ceil(width)),
            None => None,
        };
        if let Some(blocks) = blocks {
            conv_group_by_columns(
                (x_g, source),
                &w_g,
                g,
                epilogue,
                first_channel,
                dst_g,
                blocks,
                parallel,
            );
            return;
        }
        let multiply = |patches: &[f32], dst_g: Dst<'_>| {
            if !parallel {
                product_rows(&w_g, patches, columns, dst_g, epilogue, first_channel);
                return;
            }
            in_row_blocks(dst_g, out_g, columns, |first, dst_rows| {
                let m = dst_rows.values.len() / columns;
                let w_rows = gemm::slice_rows(&w_g, first, m);
                let channel = first_channel + first;
                product_rows(&w_rows, patches, columns, dst_rows, epilogue, channel);
            });
        };
        if g.is_pointwise() {
            // The input channels are the rows of the patch matrix already.
            multiply(x_g, dst_g);
        } else {
            let mut buffer = PATCHES.take();
            let patches = scratch(&mut buffer, depth * columns);
            im2col(source, g, patches, parallel);
            multiply(patches, dst_g);
            PATCHES.set(buffer);
        }
    };
    with_patches(x_g, g, parallel, products);
}

/// Calls `f` with where the patches of one group's input `x_g` come from: the input itself, or for a strided
/// convolution its phase planes, built once here for every block of columns (`parallel`: by the threads) in
/// the thread's buffer for them, which is taken only then and put back after.
fn with_patches<R>(
    x_g: &[f32],
    g: &ConvGeometry,
    parallel: bool,
    f: impl FnOnce(&Patches<'_>) -> R,
) -> R {
    if !Phased::applies(g) {
        return f(&Patches::Input(x_g));
    }
    let mut buffer = PHASED.take();
    let out = f(&Patches::Phased(&Phased::build(
        x_g,
        g,
        &mut buffer,
        parallel,
    )));
    PHASED.set(buffer);
    out
}

/// The fewest input channels per group for which a strided convolution's product reads its phase planes in
/// place ([`product_in_place`]): each tap is a block of depth of its own, and a few rows of depth a block
/// would not pay for the block's loads and stores of the output (a 7×7 stem's 3 channels take patches).
const MIN_TAP_DEPTH: usize = 32;

/// Whether a strided convolution `g` (with a residual to add, or not) is multiplied from its phase planes in
/// place ([`product_in_place`]): enough input channels for a tap's block of depth, few of the product's
/// columns past the output's (at most one in ten: the 3×3 convolutions at stride 2 of ResNet-50 on 7×7 outputs,
/// 8 columns a row for 7, and of Inception-v3 on 8×8, 9 for 8, took 4–7% longer than with patches, where
/// ResNet-50's on 28×28 and 14×14 outputs took 5–10% less, as did Inception-v3's on 17×17), and either none or
/// no residual (which is laid out as the output, not as the planes).
fn reads_in_place(g: &ConvGeometry, residual: bool) -> bool {
    let past = Phased::size(g).1 - g.out.1;
    g.in_per_group() >= MIN_TAP_DEPTH && 9 * past <= g.out.1 && (past == 0 || !residual)
}

/// One group's product for a strided convolution read from its phase planes in place, with no patch matrix:
/// for each tap `(i, j)`, the rows of `B` are the input channels' phase plane `(i·dh mod sh, j·dw mod sw)` from
/// row `⌊i·dh / sh⌋`, column `⌊j·dw / sw⌋` on, read as one run per channel over `oh` rows of the plane's
/// `cols` columns ([`tap_phase`]), and the taps are the product's segments of depth ([`gemm::Rhs`]). Its
/// columns are the plane's, `cols` an output row: the `cols - ow` past the output's (one for a 3×3 at stride
/// 2) are computed and dropped as the output rows are copied out of a buffer, unless there are none (a 1×1 at
/// stride 2), when the product writes the output (and adds the residual) itself. `parallel` splits the
/// output channels between the threads, each reading all the planes and its share of the weights.
fn product_in_place(
    phased: &Phased<'_>,
    w_g: &[gemm::Packed<'_>],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    first_channel: usize,
    dst_g: Dst<'_>,
    parallel: bool,
) {
    let (oh, ow) = g.out;
    let (in_g, out_g) = (g.in_per_group(), g.out_per_group());
    let (rows, cols) = (phased.rows, phased.cols);
    let plane = rows * cols;
    let per_channel = g.stride.0 * g.stride.1 * plane;
    // The product's columns: the planes' first `oh` rows (each tap's shift keeps it inside its plane).
    let n = oh * cols;
    let (kh, kw) = g.kernel;
    let segments: Vec<usize> = (0..kh * kw)
        .map(|tap| {
            let (phase, row_shift, col_shift) = tap_phase(g, (tap / kw, tap % kw));
            phase * plane + row_shift * cols + col_shift
        })
        .collect();
    assert!(
        in_g > 0
            && segments
                .iter()
                .all(|&s| s + (in_g - 1) * per_channel + n <= phased.values.len()),
        "phase planes too short for their taps"
    );
    let plane_out = oh * ow;
    // Output rows `first..` of the group, all of `dst`'s.
    let product = |first: usize, dst: Dst<'_>| {
        let rhs = gemm::Rhs {
            ptr: phased.values.as_ptr(),
            stride: per_channel,
            segments: &segments,
            rows: Some(in_g),
            // Read in place even when the planes are a page or more apart: copied, ResNet-50's 3×3 at stride
            // 2 on 56×56 (planes 13 KiB apart) took 5% longer.
            copied: false,
        };
        let m = dst.values.len() / plane_out;
        let w = gemm::slice_rows(w_g, first, m);
        let channel = first_channel + first;
        if cols == ow {
            // SAFETY: every tap's `in_g` rows of `n` values, `per_channel` apart, are inside the planes
            // (asserted above); `dst` is `m` rows of `n` values, borrowed mutably, with the residual (if any)
            // laid out as it is.
            unsafe {
                epilogue.multiply(
                    channel,
                    &w,
                    rhs,
                    n,
                    (dst.values.as_mut_ptr().cast::<f32>(), n),
                    dst.residual,
                );
            }
            return;
        }
        // A residual is laid out as the output, not as the planes ([`reads_in_place`]).
        assert!(dst.residual.is_none(), "a residual with dropped columns");
        let mut buffer = PATCHES.take();
        let wide = scratch(&mut buffer, m * n);
        // SAFETY: as above, into `wide`'s `m` rows of `n`.
        unsafe { epilogue.multiply(channel, &w, rhs, n, (wide.as_mut_ptr(), n), None) };
        for (out, wide) in dst
            .values
            .chunks_exact_mut(plane_out)
            .zip(wide.chunks_exact(n))
        {
            for (out, wide) in out.chunks_exact_mut(ow).zip(wide.chunks_exact(cols)) {
                for (o, &v) in out.iter_mut().zip(wide) {
                    o.write(v);
                }
            }
        }
        PATCHES.set(buffer);
    };
    if parallel {
        in_row_blocks(dst_g, out_g, plane_out, product);
    } else {
        product(0, dst_g);
    }
}

/// `f(first, rows)` for blocks of the `rows` rows of `row_len` values of `dst` (a product's output channels),
/// a multiple of 8 rows each and about one block per thread, on the threads.
fn in_row_blocks(
    dst: Dst<'_>,
    rows: usize,
    row_len: usize,
    f: impl Fn(usize, Dst<'_>) + Sync + Send,
) {
    let threads = rayon::current_num_threads();
    let block = rows.div_ceil(threads).next_multiple_of(8).min(rows).max(1);
    dst.par_chunks(block * row_len)
        .enumerate()
        .for_each(|(i, dst)| f(i * block, dst));
}

/// `dst [rows, columns] = w × patches [depth, columns]`, `w` being the `rows` rows of one or more packed
/// matrices of depth `depth`, with the epilogue of the channels from `first` on.
fn product_rows(
    w: &[gemm::Packed<'_>],
    patches: &[f32],
    columns: usize,
    dst: Dst<'_>,
    epilogue: &Epilogue,
    first: usize,
) {
    let rows: usize = w.iter().map(|part| part.rows).sum();
    let depth = w.first().map_or(0, |part| part.depth);
    let Dst {
        values: dst,
        residual,
    } = dst;
    assert!(
        patches.len() >= depth * columns && dst.len() >= rows * columns,
        "product operands too short"
    );
    // SAFETY: `patches` holds `depth` rows of `columns` values and `dst` `rows` rows (asserted above); `dst` is
    // borrowed mutably, so nothing else reads or writes it.
    unsafe {
        epilogue.multiply(
            first,
            w,
            gemm::Rhs::rows(patches.as_ptr(), columns).copied_if_far_apart(),
            columns,
            (dst.as_mut_ptr().cast::<f32>(), columns),
            residual,
        );
    }
}

/// The width of the column blocks that one group's product is split into between `threads` threads, about
/// one block per thread (a multiple of 16 columns, the product's vector width), or `None` where splitting its
/// output rows is better.
///
/// Split by rows, every thread multiplies its rows of the weights by the whole patch matrix, and a convolution
/// that is not pointwise builds the patch matrix in a pass of its own before the product (a second hand-over
/// between the threads); split by columns, every thread builds only its own columns' patches and reads all the
/// weights. The thresholds below were measured with the `gemm` crate's product, which also copied (packed) the
/// patch matrix on every call; the runtime's own product reads it in place, and they were not tuned again
/// (the batch-1 figures of bench/RESULTS.md are with them as they are). Measured on ResNet-50's and
/// Inception-v3's layers at two threads, columns were the faster split where the weights have no more rows
/// than columns (`out_g <= depth`) and each thread gets enough columns: by up to 11% for a strided 3×3 with
/// 392 columns a thread, by 2-4% for pointwise convolutions with 98 (14×14 maps). Rows were faster by up to 6%
/// for the 1×1 expansions (64 to 256 channels, 128 to 512, 256 to 1024), and by 6-10% for Inception-v3's 1×7
/// and 7×1 convolutions with 145 columns a thread, each thread building its share of the patches row segment
/// by row segment. On 7×7 maps a thread's share of the columns would be a few ragged vectors.
fn thread_columns(g: &ConvGeometry, threads: usize) -> Option<usize> {
    let width = g.columns().div_ceil(threads).next_multiple_of(16);
    let least = if g.is_pointwise() {
        MIN_THREAD_COLUMNS_POINTWISE
    } else {
        MIN_THREAD_COLUMNS
    };
    (threads > 1 && width >= least && g.out_per_group() <= g.depth()).then_some(width)
}

/// The fewest columns per thread for which [`thread_columns`] splits a product by columns when each thread
/// builds its own patches.
const MIN_THREAD_COLUMNS: usize = 256;

/// [`MIN_THREAD_COLUMNS`] for a pointwise convolution, whose threads read their columns of the input in place.
const MIN_THREAD_COLUMNS_POINTWISE: usize = 64;

/// How many blocks of about `width` columns (at most, but for [`column_blocks`]' rounding to 16) `columns`
/// takes, a multiple of `threads` so that the threads get equal shares: Inception-v3's 5×5 convolutions on
/// 35×35 maps had five blocks of 256 columns, three for one thread and two for the other.
pub(crate) fn block_count(columns: usize, width: usize, threads: usize) -> usize {
    columns
        .div_ceil(width.max(1))
        .next_multiple_of(threads.max(1))
}

/// Patch-matrix values of one column block: 128 Ki values (512 KiB), half a level-2 cache of current x86
/// cores, so that the block stays in cache from im2col to the product that reads it.
const BLOCK_VALUES: usize = 128 * 1024;

/// The width of the column blocks a group's product is cut into, when it is: `None` for a patch matrix
/// small enough to build whole, or for a group with more output channels than a block has columns, whose
/// weights the product would then pack (copy into its layout) again for every block at more cost than the
/// blocks save. A block is at least 256 columns wide, so that the weights' packing is spread over enough work.
fn column_block(g: &ConvGeometry) -> Option<usize> {
    let width = (BLOCK_VALUES / g.depth().max(1))
        .max(256)
        .next_multiple_of(16);
    (g.columns() >= 4 * width && g.out_per_group() <= width).then_some(width)
}

/// One group of one image, in `blocks` blocks of output columns ([`column_blocks`]): the patch matrix of a
/// block's columns (`[depth, width]`, in cache), its product with all of `W_g` into those columns of the
/// output rows, and the epilogue on them. Building the whole patch matrix instead writes it to memory and reads it
/// back (115 MB for VGG-16's second layer). `parallel` hands the blocks to the threads: each builds only its
/// own columns' patches, where splitting the output rows has every thread build and pack all of them. A
/// pointwise convolution's blocks read their columns of the input in place.
#[allow(clippy::too_many_arguments)]
fn conv_group_by_columns(
    (x_g, source): (&[f32], &Patches<'_>),
    w_g: &[gemm::Packed<'_>],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    first_channel: usize,
    dst_g: Dst<'_>,
    blocks: usize,
    parallel: bool,
) {
    let (depth, columns, out_g) = (g.depth(), g.columns(), g.out_per_group());
    assert!(dst_g.values.len() >= out_g * columns, "output too short");
    let out = OutputRows {
        ptr: dst_g.values.as_mut_ptr().cast::<f32>(),
        columns,
    };
    let residual = dst_g.residual;
    let one_block = |columns_of_block: std::ops::Range<usize>| {
        // The whole of `out` (a closure would capture its pointer field alone, which is not `Sync`).
        let out = &out;
        let (first, width) = (columns_of_block.start, columns_of_block.len());
        let mut patches = PATCHES.take();
        let (rhs, rhs_stride) = if g.is_pointwise() {
            (&x_g[first..], columns)
        } else {
            let patches = scratch(&mut patches, depth * width);
            im2col_columns(source, g, patches, first..first + width);
            (&patches[..], width)
        };
        assert!(
            depth == 0 || rhs.len() >= (depth - 1) * rhs_stride + width,
            "patches too short"
        );
        // SAFETY: `rhs` holds `depth` rows of `width` values `rhs_stride` apart (asserted above); columns
        // `first..first + width` of the `out_g` rows are inside `dst_g` (asserted above), and each block's
        // columns are written by that block's call alone. The residual is laid out as the output rows, from
        // this block's first column.
        unsafe {
            epilogue.multiply(
                first_channel,
                w_g,
                gemm::Rhs::rows(rhs.as_ptr(), rhs_stride).copied_if_far_apart(),
                width,
                (out.ptr.add(first), columns),
                residual.map(|r| &r[first..]),
            );
        }
        PATCHES.set(patches);
    };
    let blocks = column_blocks(columns, blocks);
    if parallel {
        blocks
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(one_block);
    } else {
        blocks.for_each(one_block);
    }
}

/// `columns` columns in `count` blocks, their edges at the multiples of 16 (the product's vector width)
/// nearest to equal shares, empty blocks left out: blocks of a fixed width and a ragged last one gave the
/// threads unequal shares (ResNet-50's 14×14 maps, 196 columns in blocks of 112 for two threads: 112 and 84).
pub(crate) fn column_blocks(
    columns: usize,
    count: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let edge = move |i: usize| ((i * columns / count.max(1) + 8) / 16 * 16).min(columns);
    (0..count)
        .map(move |i| edge(i)..if i + 1 == count { columns } else { edge(i + 1) })
        .filter(|range| !range.is_empty())
}

/// Where tap `(i, j)` of a window reads in the phase planes of [`fill_phase_planes`]: plane
/// `(i·dh mod sh)·sw + (j·dw mod sw)`, `⌊i·dh / sh⌋` rows and `⌊j·dw / sw⌋` columns below and right of the
/// output position. Returns `(plane, row shift, column shift)`.
pub(crate) fn tap_phase(g: &ConvGeometry, (i, j): (usize, usize)) -> (usize, usize, usize) {
    let (sh, sw) = g.stride;
    let (di, dj) = (i * g.dilation.0, j * g.dilation.1);
    ((di % sh) * sw + dj % sw, di / sh, dj / sw)
}

/// Writes one `[h, w]` input plane `src` as the `sh × sw` phase planes of the convolution `g`, each `rows ×
/// cols`, `plane_stride` values apart in `planes`: plane `(p, q)`, row `r`, column `t` holds the padded
/// input's value at `(r·sh + p, t·sw + q)`, that is input `(r·sh + p - pt, t·sw + q - pl)`, or 0 outside the
/// input. In that layout each tap's values for consecutive output columns are consecutive ([`tap_phase`]), so
/// a strided, padded window reads whole runs. Phases no tap of the window reads are skipped. With
/// `zero_padding` false the padding is left as it is, for a caller whose buffer already holds zeros there
/// (the depthwise kernel, which zeroes its buffer once per layer); the stride-2 split writes its padding
/// columns either way.
pub(crate) fn fill_phase_planes(
    src: &[f32],
    g: &ConvGeometry,
    (rows, cols): (usize, usize),
    plane_stride: usize,
    planes: &mut [f32],
    zero_padding: bool,
) {
    let (sh, sw) = g.stride;
    let (pt, pl) = g.pad_before;
    let read = |phase: usize, kernel: usize, dilation: usize, stride: usize| {
        (0..kernel).any(|t| t * dilation % stride == phase)
    };
    // The input's columns in a padded row of the `sw · cols` columns the phase planes hold.
    let width = sw * cols;
    let (first, last) = (pl.min(width), (pl + g.w).min(width));
    for p in (0..sh).filter(|&p| read(p, g.kernel.0, g.dilation.0, sh)) {
        // Phase rows `lo..hi` hold input rows `p + r·sh - pt`; the others are padding.
        let (lo, hi) = valid_range(p, pt, sh, g.h, rows);
        let row_planes = &mut planes[p * sw * plane_stride..][..sw * plane_stride];
        if zero_padding {
            for plane in row_planes.chunks_exact_mut(plane_stride) {
                plane[..lo * cols].fill(0.0);
                plane[hi * cols..rows * cols].fill(0.0);
            }
        }
        for r in lo..hi {
            let iy = p + r * sh - pt;
            let src_row = &src[iy * g.w..][..last - first];
            let at = r * cols;
            match sw {
                1 => {
                    let dst = &mut row_planes[at..at + cols];
                    if zero_padding {
                        dst[..first].fill(0.0);
                        dst[last..].fill(0.0);
                    }
                    dst[first..last].copy_from_slice(src_row);
                }
                2 => {
                    let (even, odd) = row_planes.split_at_mut(plane_stride);
                    deinterleave(
                        src_row,
                        first,
                        &mut even[at..at + cols],
                        &mut odd[at..at + cols],
                    );
                }
                _ => {
                    for (q, plane) in row_planes.chunks_exact_mut(plane_stride).enumerate() {
                        if !read(q, g.kernel.1, g.dilation.1, sw) {
                            continue;
                        }
                        for (t, d) in plane[at..at + cols].iter_mut().enumerate() {
                            let column = t * sw + q;
                            *d = if (first..last).contains(&column) {
                                src_row[column - first]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Where a group's patch rows are read from: its input, or the input's phase planes ([`Phased`]).
enum Patches<'a> {
    Input(&'a [f32]),
    Phased(&'a Phased<'a>),
}

/// A strided convolution's input (one group's `[in_g, h, w]`) padded and split into `sh × sw` phase planes
/// per channel: plane `(p, q)` holds the padded input's rows `p, p + sh, ...` and of those the columns
/// `q, q + sw, ...`, zeros where the padding is. In that layout each tap's values for a run of consecutive
/// output columns are consecutive (output `(oy, ox)` of tap `(i, j)` reads plane `(i·dh mod sh, j·dw mod sw)` at
/// row `oy + ⌊i·dh / sh⌋`, column `ox + ⌊j·dw / sw⌋`), so a patch row is built from whole copies. Built once
/// per group, it holds about as many values as the input; the patch rows read value by value at the stride,
/// with fills for the padding, were 6% of GoogLeNet's time (its 7×7 stride-2 stem).
struct Phased<'a> {
    values: &'a [f32],
    /// Rows and columns of a phase plane.
    rows: usize,
    cols: usize,
}

impl<'a> Phased<'a> {
    /// Whether a geometry's patches are built through phase planes: a strided convolution.
    fn applies(g: &ConvGeometry) -> bool {
        g.stride != (1, 1)
    }

    /// The rows and columns of each phase plane of a convolution `g`: the output's, and as many more as the
    /// window reaches past an output position in the planes ([`ConvGeometry::phase_reach`]).
    fn size(g: &ConvGeometry) -> (usize, usize) {
        let ((oh, ow), (reach_rows, reach_cols)) = (g.out, g.phase_reach());
        (oh + reach_rows, ow + reach_cols)
    }

    /// The phase planes of one group's input `x_g` in `buffer` (grown as needed), the channels shared out
    /// between the threads when `parallel`. The phases no tap reads are not written (a 1×1 stride-2
    /// convolution writes two planes of four, its row phase's).
    fn build(
        x_g: &[f32],
        g: &ConvGeometry,
        buffer: &'a mut Vec<f32>,
        parallel: bool,
    ) -> Phased<'a> {
        let (sh, sw) = g.stride;
        let (rows, cols) = Phased::size(g);
        let per_channel = sh * sw * rows * cols;
        let values = scratch(buffer, g.in_per_group() * per_channel);
        let channel = |(c, planes): (usize, &mut [f32])| {
            let src = &x_g[c * g.h * g.w..(c + 1) * g.h * g.w];
            fill_phase_planes(src, g, (rows, cols), rows * cols, planes, true);
        };
        if parallel {
            values
                .par_chunks_exact_mut(per_channel)
                .enumerate()
                .for_each(channel);
        } else {
            values
                .chunks_exact_mut(per_channel)
                .enumerate()
                .for_each(channel);
        }
        Phased { values, rows, cols }
    }

    /// Patch row `row` (tap `(i, j)` of channel `c`, the row `(i·kw + j)·in_g + c`: tap-major) for the output
    /// columns `range` (numbered row by row) into `dst`.
    fn patch_row(
        &self,
        g: &ConvGeometry,
        row: usize,
        range: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let kw = g.kernel.1;
        let ow = g.out.1;
        // Tap-major ([`ConvGeometry::tap_major`]).
        let (tap, c) = (row / g.in_per_group(), row % g.in_per_group());
        let (phase, row_shift, col_shift) = tap_phase(g, (tap / kw, tap % kw));
        let plane_len = self.rows * self.cols;
        let plane = c * g.stride.0 * g.stride.1 + phase;
        let plane = &self.values[plane * plane_len..(plane + 1) * plane_len];
        let mut at = range.start;
        while at < range.end {
            let (oy, ox0) = (at / ow, at % ow);
            let ox1 = ow.min(ox0 + (range.end - at));
            let from = (oy + row_shift) * self.cols + col_shift;
            dst[at - range.start..at - range.start + (ox1 - ox0)]
                .copy_from_slice(&plane[from + ox0..from + ox1]);
            at += ox1 - ox0;
        }
    }
}

/// The output rows of a group (`[rows, columns]`, row-major) that column blocks write, each its own columns,
/// possibly from several threads at once.
struct OutputRows {
    ptr: *mut f32,
    columns: usize,
}

// SAFETY: the tasks that share an `OutputRows` write disjoint columns (see `conv_group_by_columns`,
// `separable::run`, `pooled::in_bands` and `shallow::conv2d`).
unsafe impl Sync for OutputRows {}

/// Writes columns `range` of the patch matrix (see [`im2col`]) as a `[in_g * kh * kw, range.len()]` matrix.
fn im2col_columns(
    source: &Patches<'_>,
    g: &ConvGeometry,
    patches: &mut [f32],
    range: std::ops::Range<usize>,
) {
    for (row, dst) in patches.chunks_exact_mut(range.len()).enumerate() {
        match source {
            Patches::Input(x) => input_patch_row(x, g, row, range.clone(), dst),
            Patches::Phased(phased) => phased.patch_row(g, row, range.clone(), dst),
        }
    }
}

/// Patch row `row` (tap `(c, i, j)`) of a stride-1 convolution of the input `x` for the output columns `range`
/// (numbered row by row) into `dst`: runs of the input's rows, zeros where the window is outside the input.
fn input_patch_row(
    x: &[f32],
    g: &ConvGeometry,
    row: usize,
    range: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    // A strided convolution reads its phase planes ([`Phased`]).
    debug_assert_eq!(g.stride, (1, 1));
    let (kh, kw) = g.kernel;
    let plane = g.h * g.w;
    let ow = g.out.1;
    let c = row / (kh * kw);
    let (i, j) = ((row / kw) % kh, row % kw);
    let src = &x[c * plane..(c + 1) * plane];
    // Output columns whose input column is inside the image: ox + j * dw - pl in 0..w.
    let offset = j * g.dilation.1;
    let (lo, hi) = valid_range(offset, g.pad_before.1, 1, g.w, ow);
    // The output rows the range touches, each for the columns of it that fall in the range.
    let mut at = range.start;
    while at < range.end {
        let (oy, ox0) = (at / ow, at % ow);
        let ox1 = ow.min(ox0 + (range.end - at));
        let dst_row = &mut dst[at - range.start..at - range.start + (ox1 - ox0)];
        at += ox1 - ox0;
        let iy = (oy + i * g.dilation.0) as isize - g.pad_before.0 as isize;
        let (a, b) = (lo.clamp(ox0, ox1), hi.clamp(ox0, ox1));
        if iy < 0 || iy as usize >= g.h || a >= b {
            dst_row.fill(0.0);
            continue;
        }
        let src_row = &src[iy as usize * g.w..(iy as usize + 1) * g.w];
        dst_row[..a - ox0].fill(0.0);
        dst_row[b - ox0..].fill(0.0);
        let first = a + offset - g.pad_before.1;
        dst_row[a - ox0..b - ox0].copy_from_slice(&src_row[first..first + (b - a)]);
    }
}

/// Writes the `[in_g * kh * kw, oh * ow]` patch matrix of one group's input (`[in_g, h, w]`): row `(c, i, j)`
/// (`(i, j, c)` for a strided convolution: [`ConvGeometry::tap_major`]), column `(oy, ox)` holds
/// `x[c, oy * sh + i * dh - pt, ox * sw + j * dw - pl]`, or 0 outside the input; read from the input itself at
/// stride 1, from its phase planes otherwise ([`Patches`]).
fn im2col(source: &Patches<'_>, g: &ConvGeometry, patches: &mut [f32], parallel: bool) {
    let (kh, kw) = g.kernel;
    let columns = g.columns();
    let plane = g.h * g.w;
    let same_size = g.stride == (1, 1) && g.dilation == (1, 1) && g.out == (g.h, g.w);
    let fill_row = |row: usize, dst: &mut [f32]| match source {
        Patches::Phased(phased) => phased.patch_row(g, row, 0..columns, dst),
        Patches::Input(x) if same_size => {
            let c = row / (kh * kw);
            let (i, j) = ((row / kw) % kh, row % kw);
            shifted_plane(
                &x[c * plane..(c + 1) * plane],
                (g.h, g.w),
                (i, j),
                g.pad_before,
                dst,
            );
        }
        Patches::Input(x) => input_patch_row(x, g, row, 0..columns, dst),
    };
    if parallel {
        patches
            .par_chunks_mut(columns)
            .enumerate()
            .for_each(|(row, dst)| fill_row(row, dst));
    } else {
        patches
            .chunks_mut(columns)
            .enumerate()
            .for_each(|(row, dst)| fill_row(row, dst));
    }
}

/// The output positions `lo..hi` (out of `out`) whose input position `o * stride + offset - pad` lies in
/// `0..len`.
fn valid_range(offset: usize, pad: usize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    // o * stride + offset >= pad  <=>  o >= ceil((pad - offset) / stride)
    let lo = pad.saturating_sub(offset).div_ceil(stride).min(out);
    // o * stride + offset - pad <= len - 1  <=>  o <= (len - 1 + pad - offset) / stride
    let hi = match (len + pad).checked_sub(offset + 1) {
        Some(last) => (last / stride + 1).min(out),
        None => 0,
    };
    (lo, hi.max(lo))
}

/// The windows of a pool along one axis: output `o` reads the input positions `o * stride + t * dilation - pad`
/// (`t` in `0..kernel`) that lie in `0..len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolAxis {
    pub len: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub dilation: usize,
    pub out: usize,
}

/// One patch row of a stride-1, undilated convolution whose output is the input's size (GoogLeNet's and
/// Inception's 5×5 and 3×3 convolutions that Winograd does not take): tap `(i, j)` reads the input plane `src`
/// (`[h, w]`) shifted by `(i - pad.0, j - pad.1)`, so the whole row is one copy of the plane, and then only the
/// columns whose reads crossed into the next or previous row, and the rows above or below the input, are
/// zeroed. Row by row it was a copy and two fills per output row, mostly call overhead on 14×14 maps.
fn shifted_plane(
    src: &[f32],
    (h, w): (usize, usize),
    (i, j): (usize, usize),
    pad: (usize, usize),
    dst: &mut [f32],
) {
    let plane = h * w;
    let (dy, dx) = (i as isize - pad.0 as isize, j as isize - pad.1 as isize);
    // Output rows that read a row of the input, and the flat range they cover.
    let rows =
        (-dy).max(0).min(h as isize) as usize..(h as isize - dy).clamp(0, h as isize) as usize;
    let shift = dy * w as isize + dx;
    // Inside the plane in both the output and the input (an input smaller than the window's reach may leave
    // nothing to copy).
    let lo = ((rows.start * w) as isize).max(-shift).min(plane as isize) as usize;
    let hi = (((rows.end * w) as isize).min(plane as isize - shift)).max(lo as isize) as usize;
    dst[..lo].fill(0.0);
    dst[hi..plane].fill(0.0);
    if hi > lo {
        let from = (lo as isize + shift) as usize;
        dst[lo..hi].copy_from_slice(&src[from..from + (hi - lo)]);
    }
    // The columns whose input column is outside the plane: the first `-dx` or the last `dx` of each row.
    let edge = if dx < 0 {
        0..((-dx) as usize).min(w)
    } else {
        w - (dx as usize).min(w)..w
    };
    if !edge.is_empty() {
        for row in dst[..plane].chunks_exact_mut(w) {
            row[edge.clone()].fill(0.0);
        }
    }
}

/// The output positions `lo..hi` that one tap of a pooling window reads inside the input, and the input
/// position read by output `lo` (output `o` reads `first + (o - lo) * stride`).
#[derive(Debug, Clone, Copy)]
struct TapRange {
    lo: usize,
    hi: usize,
    first: usize,
}

impl PoolAxis {
    /// Each tap's [`TapRange`]; taps that never land inside the input are left out.
    fn tap_ranges(&self) -> Vec<TapRange> {
        (0..self.kernel)
            .filter_map(|t| {
                let offset = t * self.dilation;
                let (lo, hi) = valid_range(offset, self.pad, self.stride, self.len, self.out);
                (lo < hi).then(|| TapRange {
                    lo,
                    hi,
                    first: lo * self.stride + offset - self.pad,
                })
            })
            .collect()
    }
}

/// How a pool combines the values of a window.
trait Reduce: Copy + Send + Sync {
    /// The value of an empty window before `finish`: `-inf` for max, 0 for a sum.
    const IDENTITY: f32;

    /// `dst[r * dst.1 + i] = op(dst[r * dst.1 + i], src[r * src.1 + i])` for `r < rows`, `i < len`: one tap
    /// of a pool over many rows, in one call.
    fn combine(dst: (&mut [f32], usize), src: (&[f32], usize), rows: usize, len: usize) {
        combine_portable::<Self>(dst, src, rows, len);
    }

    /// `op(a, b)`.
    fn one(a: f32, b: f32) -> f32;

    /// `op(a, b)` on 16 lanes, for [`pool_plane_avx512`] (inlined into it, which is compiled for AVX-512F).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    unsafe fn vector(
        a: std::arch::x86_64::__m512,
        b: std::arch::x86_64::__m512,
    ) -> std::arch::x86_64::__m512;
}

/// [`Reduce::combine`] as plain loops, which the compiler vectorises for the baseline target.
fn combine_portable<R: Reduce>(
    dst: (&mut [f32], usize),
    src: (&[f32], usize),
    rows: usize,
    len: usize,
) {
    for_rows(dst, src, rows, len, |d, s| {
        for (d, &v) in d.iter_mut().zip(s) {
            *d = R::one(*d, v);
        }
    });
}

/// `each(dst_row, src_row)` for `rows` rows of `len` values, `dst.1` and `src.1` apart; rows that follow one
/// another in both make one call.
fn for_rows(
    (dst, dst_stride): (&mut [f32], usize),
    (src, src_stride): (&[f32], usize),
    rows: usize,
    len: usize,
    mut each: impl FnMut(&mut [f32], &[f32]),
) {
    if rows == 0 || len == 0 {
        return;
    }
    if dst_stride == len && src_stride == len {
        return each(&mut dst[..rows * len], &src[..rows * len]);
    }
    for r in 0..rows {
        each(
            &mut dst[r * dst_stride..][..len],
            &src[r * src_stride..][..len],
        );
    }
}

/// The maximum, NaN if any value is NaN (as PyTorch's max pool; `f32::max` would drop NaN).
#[derive(Clone, Copy)]
struct Max;

/// The sum.
#[derive(Clone, Copy)]
struct Sum;

impl Reduce for Max {
    const IDENTITY: f32 = f32::NEG_INFINITY;

    fn combine(dst: (&mut [f32], usize), src: (&[f32], usize), rows: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        if Isa::has_avx2() {
            // SAFETY: the CPU has AVX (`has_avx2` only allows what the CPU has, and AVX2 implies AVX).
            return unsafe { max_rows_avx(dst, src, rows, len) };
        }
        combine_portable::<Self>(dst, src, rows, len);
    }

    fn one(a: f32, b: f32) -> f32 {
        max_or_nan(a, b)
    }

    /// NaN where either is, as [`max_or_nan`]: `vmaxps` returns its second operand when either is NaN, so a
    /// NaN first operand is taken back with a mask.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[inline(always)]
    unsafe fn vector(
        a: std::arch::x86_64::__m512,
        b: std::arch::x86_64::__m512,
    ) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the CPU has AVX-512F (the caller's contract).
        unsafe {
            _mm512_mask_mov_ps(
                _mm512_max_ps(a, b),
                _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a),
                a,
            )
        }
    }
}

impl Reduce for Sum {
    const IDENTITY: f32 = 0.0;

    fn one(a: f32, b: f32) -> f32 {
        a + b
    }

    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[inline(always)]
    unsafe fn vector(
        a: std::arch::x86_64::__m512,
        b: std::arch::x86_64::__m512,
    ) -> std::arch::x86_64::__m512 {
        // SAFETY: the CPU has AVX-512F (the caller's contract).
        unsafe { std::arch::x86_64::_mm512_add_ps(a, b) }
    }
}

/// [`Max::combine`] eight lanes at a time. Written with intrinsics, and without a blend, because the compiler
/// turns "keep the old value or store the new one" into masked stores, which are microcoded and slow on AMD
/// CPUs (they took 15% of a GoogLeNet forward pass).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn max_rows_avx(dst: (&mut [f32], usize), src: (&[f32], usize), rows: usize, len: usize) {
    use std::arch::x86_64::*;
    for_rows(dst, src, rows, len, |dst, src| {
        let n = dst.len();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, the length of both slices; the CPU has AVX (the caller's contract).
            unsafe {
                let d = _mm256_loadu_ps(dst.as_ptr().add(i));
                let v = _mm256_loadu_ps(src.as_ptr().add(i));
                // maxps returns its second operand when either is NaN, so a NaN v comes through; a NaN d is
                // then OR-ed back in (any value OR a NaN's bits is a NaN).
                let max = _mm256_max_ps(d, v);
                let d_nan = _mm256_and_ps(d, _mm256_cmp_ps::<_CMP_UNORD_Q>(d, d));
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_or_ps(max, d_nan));
            }
            i += 8;
        }
        if i + 4 <= n {
            // SAFETY: i + 4 <= n, the length of both slices; the CPU has AVX.
            unsafe {
                let d = _mm_loadu_ps(dst.as_ptr().add(i));
                let v = _mm_loadu_ps(src.as_ptr().add(i));
                let max = _mm_max_ps(d, v);
                let d_nan = _mm_and_ps(d, _mm_cmp_ps::<_CMP_UNORD_Q>(d, d));
                _mm_storeu_ps(dst.as_mut_ptr().add(i), _mm_or_ps(max, d_nan));
            }
            i += 4;
        }
        for j in i..n {
            dst[j] = max_or_nan(dst[j], src[j]);
        }
    });
}

/// The larger of two values, NaN if either is (PyTorch's max pool propagates NaN; `f32::max` would drop it).
#[inline]
fn max_or_nan(a: f32, b: f32) -> f32 {
    // `|`, not `||`: no branch, so loops over slices vectorise to compare-and-blend.
    if (a > b) | a.is_nan() {
        a
    } else {
        b
    }
}

/// Max pooling of `planes` contiguous planes. Padding never wins (it counts as `-inf`).
pub(crate) fn max_pool2d(x: &[f32], planes: usize, rows: &PoolAxis, cols: &PoolAxis) -> Vec<f32> {
    pool2d::<Max>(x, planes, rows, cols, |_| {})
}

/// [`pool2d`] (the maxima of [`max_pool2d`], the sums of [`avg_pool2d`]: `R`) with AVX-512, where it takes
/// the pool itself: an undilated window of column stride 1 or 2 over rows of at most [`MAX_ROW_VECTORS`]
/// vectors (GoogLeNet's 3×3/1 branch pools and its 3×3/2 stage pools, ResNet's 3×3/2 after the stem,
/// Inception's on maps up to 128 wide), a row at a time in registers: an output row's window rows are
/// combined down the columns, 16 values at a time; at stride 2 that row is split into its even and odd columns
/// by lane permutes; then each window column's values are brought under their outputs by a lane permute (`-inf`
/// coming in from past the row's ends, for the padding) and combined. The passes of [`pool2d`] went over whole
/// planes a tap at a time, 8 values at a time, with a call per row of the along-the-rows taps: on 14×14 maps
/// about three cycles an output. (Through a row buffer in memory instead of permutes it was slower still: each
/// shifted load waited for the store before it.) `finish` is applied to each plane's outputs.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
fn pool2d_rows<R: Reduce>(
    x: &[f32],
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
    finish: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    let (h, w) = (rows.len, cols.len);
    let (oh, ow) = (rows.out, cols.out);
    let mut out = Fresh::new(planes * oh * ow);
    if planes * oh * ow == 0 {
        // SAFETY: there is no value to write.
        return unsafe { out.assume_written() };
    }
    assert!(
        pool_rows_fit(rows, cols),
        "a pool's window reaches past its padding or its rows past the registers"
    );
    out.values()
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(p, dst)| {
            let src = &x[p * h * w..(p + 1) * h * w];
            // SAFETY: the CPU has AVX-512F (checked by the caller), the axes fit (asserted above), `src` is the
            // plane and `dst` the plane's `oh × ow` outputs, written by no one else.
            unsafe { pool_plane::<R>(src, rows, cols, dst.as_mut_ptr().cast::<f32>()) };
            // SAFETY: `pool_plane` wrote every output of the plane.
            finish(unsafe { written(dst) });
        });
    // SAFETY: every output row was written by `pool_plane_avx512`, whole.
    unsafe { out.assume_written() }
}

/// One plane of [`pool2d_rows`]: [`pool_plane_avx512`] with registers for `rows` of `cols`.
///
/// # Safety
/// The CPU must have AVX-512F; the axes must fit ([`pool_rows_fit`]); `src` is the `[rows.len, cols.len]`
/// plane and `out` writable for its `rows.out × cols.out` outputs.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
unsafe fn pool_plane<R: Reduce>(src: &[f32], rows: &PoolAxis, cols: &PoolAxis, out: *mut f32) {
    // Input and output rows in `N` vectors: at stride 1 an even window padded by half of it makes the output
    // one wider than the input (16 columns in, 17 out).
    let vectors = cols.len.max(cols.out).div_ceil(16);
    // SAFETY: the caller's contract.
    unsafe {
        match (cols.stride, vectors) {
            (1, 1) => pool_plane_avx512::<R, 1, 1, 3>(src, rows, cols, out),
            (1, 2) => pool_plane_avx512::<R, 2, 1, 4>(src, rows, cols, out),
            (1, 3 | 4) => pool_plane_avx512::<R, 4, 1, 6>(src, rows, cols, out),
            (1, _) => pool_plane_avx512::<R, 8, 1, 10>(src, rows, cols, out),
            (_, 1) => pool_plane_avx512::<R, 1, 2, 4>(src, rows, cols, out),
            (_, 2) => pool_plane_avx512::<R, 2, 2, 4>(src, rows, cols, out),
            (_, 3 | 4) => pool_plane_avx512::<R, 4, 2, 5>(src, rows, cols, out),
            (_, _) => pool_plane_avx512::<R, 8, 2, 7>(src, rows, cols, out),
        }
    }
}

/// The most 16-lane vectors an input row of [`pool2d_rows`] takes.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
const MAX_ROW_VECTORS: usize = 8;

/// Whether [`pool2d_rows`] takes a pool with these axes: no dilation, columns at stride 1 or 2, input rows of
/// at most [`MAX_ROW_VECTORS`] vectors and output rows no longer than that, a window of at most 16 columns and
/// padding of at most 16, a non-empty input, and every window reaching at least one value of it (as
/// PyTorch's output sizes make them).
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
fn pool_rows_fit(rows: &PoolAxis, cols: &PoolAxis) -> bool {
    let axis = |a: &PoolAxis| {
        a.dilation == 1
            && a.len > 0
            && a.out > 0
            && a.pad < a.kernel
            && (a.out - 1) * a.stride < a.len + a.pad
    };
    axis(rows)
        && axis(cols)
        && rows.stride > 0
        && (cols.stride == 1 || cols.stride == 2)
        && cols.len.max(cols.out) <= 16 * MAX_ROW_VECTORS
        && cols.pad <= 16
        && cols.kernel <= 16
}

/// One plane of [`pool2d_rows`], input rows of at most `N` vectors, columns at stride `S` (1 or 2), each window
/// reduced by `R` ([`Reduce::vector`]): for each output row, the window's rows combined, its `S` phases (the
/// columns `q, q + S, ...`), then `dst[x]` = that row's values `S·x - pad .. S·x - pad + kernel` combined (the
/// padding `R::IDENTITY`): window column `j` is phase `(j - pad) mod S` shifted by `⌊(j - pad) / S⌋`. Each phase
/// is held in `P` vectors, two more than the row's output vectors (a constant, so that they are registers).
///
/// # Safety
/// The CPU must have AVX-512F; the axes must pass [`pool_rows_fit`], with input rows of at most `N` vectors and
/// column stride `S`; `src` must hold the `rows.len × cols.len` plane and `dst` be writable for `rows.out ×
/// cols.out` values that nothing else accesses during the call.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn pool_plane_avx512<R: Reduce, const N: usize, const S: usize, const P: usize>(
    src: &[f32],
    rows: &PoolAxis,
    cols: &PoolAxis,
    dst: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: the CPU has AVX-512F (the caller's contract).
    let combine = |a: __m512, b: __m512| unsafe { R::vector(a, b) };
    let lanes = avx512::lane_mask;
    // What the padding and the lanes past a row hold: nothing a window's value is changed by.
    let none = _mm512_set1_ps(R::IDENTITY);
    let (h, w, ow) = (rows.len, cols.len, cols.out);
    let (pad, kernel) = (cols.pad as isize, cols.kernel as isize);
    assert!(
        pool_rows_fit(rows, cols)
            && cols.stride == S
            && w <= 16 * N
            && ow <= 16 * N
            && src.len() >= h * w,
        "a plane the AVX-512 pool does not take"
    );
    let row_masks: [u16; N] = std::array::from_fn(|c| lanes(w.saturating_sub(16 * c)));
    let out_vectors = ow.div_ceil(16);
    assert!(
        N.div_ceil(S) + 2 <= P && out_vectors + 2 <= P,
        "phase vectors too few for the row"
    );
    let lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    // Lane `l` of a phase vector takes lane `S·l + q` of a pair of the row's vectors.
    let phase_index: [__m512i; S] = std::array::from_fn(|q| {
        _mm512_add_epi32(
            _mm512_mullo_epi32(lane, _mm512_set1_epi32(S as i32)),
            _mm512_set1_epi32(q as i32),
        )
    });
    for oy in 0..rows.out {
        // Input rows `S·oy - pad .. S·oy - pad + kernel` that lie inside the plane (at least one, by
        // `pool_rows_fit`).
        let top = oy * rows.stride;
        let first = top.saturating_sub(rows.pad);
        let last = (top + rows.kernel).saturating_sub(rows.pad).min(h);
        let mut down = [none; N];
        for (c, down) in down.iter_mut().enumerate().take(w.div_ceil(16)) {
            let load = |row: usize| {
                // SAFETY: the masked lanes are columns `16c..w` of row `row < h`, inside `src` (asserted).
                unsafe {
                    _mm512_mask_loadu_ps(none, row_masks[c], src.as_ptr().add(row * w + 16 * c))
                }
            };
            let mut v = load(first);
            for row in first + 1..last {
                v = combine(v, load(row));
            }
            *down = v;
        }
        // The phases, `-inf` past the row, with a `-inf` vector on each side: `phases[q][m + 1]` holds the
        // row's values `S·(16m + l) + q`.
        let mut phases = [[none; P]; S];
        for (q, phase) in phases.iter_mut().enumerate() {
            for m in 0..N.div_ceil(S) {
                phase[m + 1] = if S == 1 {
                    down[m]
                } else {
                    let high = down.get(S * m + 1).copied().unwrap_or(none);
                    _mm512_permutex2var_ps(down[S * m], phase_index[q], high)
                };
            }
        }
        // Bounded by the constant `P` (and left at `out_vectors`), so that the loop unrolls and the phase
        // vectors stay in registers: with a bound known only at run time they went through the stack, and
        // GoogLeNet's pools took 4–10× ONNX Runtime's time.
        for c in 0..P - 2 {
            if c >= out_vectors {
                break;
            }
            let mut acc = none;
            for j in 0..kernel {
                let q = (j - pad).rem_euclid(S as isize) as usize;
                let shift = (j - pad).div_euclid(S as isize);
                // Lane `l` is phase `q`'s value `16c + l + shift`: lane `l + shift + 16` of the pair
                // (`phase[c]`, `phase[c + 1]`) for a shift below 0, lane `l + shift` of (`phase[c + 1]`,
                // `phase[c + 2]`) otherwise.
                let phase = &phases[q];
                let shifted = if shift < 0 {
                    let index = _mm512_add_epi32(lane, _mm512_set1_epi32((16 + shift) as i32));
                    _mm512_permutex2var_ps(phase[c], index, phase[c + 1])
                } else {
                    let index = _mm512_add_epi32(lane, _mm512_set1_epi32(shift as i32));
                    _mm512_permutex2var_ps(phase[c + 1], index, phase[c + 2])
                };
                acc = if j == 0 {
                    shifted
                } else {
                    combine(acc, shifted)
                };
            }
            // SAFETY: the masked lanes are output row `oy`'s values `16c..ow`, inside `dst` (the caller's
            // contract).
            unsafe { _mm512_mask_storeu_ps(dst.add(oy * ow + 16 * c), lanes(ow - 16 * c), acc) };
        }
    }
}

/// Average pooling of `planes` contiguous planes: each window's sum over its taps divided by
/// `divisors[oy * ow + ox]`.
pub(crate) fn avg_pool2d(
    x: &[f32],
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
    divisors: &[f32],
) -> Vec<f32> {
    pool2d::<Sum>(x, planes, rows, cols, |plane| {
        for (v, d) in plane.iter_mut().zip(divisors) {
            *v /= d;
        }
    })
}

/// One tap of a pool's pass along one axis: the `rows × len` values of the pass's output from value `at` on
/// (rows as far apart as the output's) take, element-wise, the values of `src` (rows `src_stride` apart).
struct Tap<'a> {
    at: usize,
    src: &'a [f32],
    src_stride: usize,
    rows: usize,
    len: usize,
}

/// A pass of a pool along one axis into `dst` (`whole.0` rows of `whole.1` values, `dst_stride` apart): the
/// reduction of `taps`' values. A tap that covers the whole output is copied first, so the output is not
/// filled and then combined; when none does, it starts from the reduction's identity.
fn reduce_taps<'a, R: Reduce>(
    (dst, dst_stride): (&mut [f32], usize),
    whole: (usize, usize),
    taps: impl Iterator<Item = Tap<'a>> + Clone,
) {
    let full = taps
        .clone()
        .position(|t| t.at == 0 && (t.rows, t.len) == whole);
    match full.and_then(|i| taps.clone().nth(i)) {
        Some(tap) => for_rows(
            (&mut *dst, dst_stride),
            (tap.src, tap.src_stride),
            whole.0,
            whole.1,
            |d, s| d.copy_from_slice(s),
        ),
        None => {
            for row in dst.chunks_mut(dst_stride).take(whole.0) {
                row[..whole.1].fill(R::IDENTITY);
            }
        }
    }
    for (i, tap) in taps.enumerate() {
        if Some(i) != full {
            R::combine(
                (&mut dst[tap.at..], dst_stride),
                (tap.src, tap.src_stride),
                tap.rows,
                tap.len,
            );
        }
    }
}

/// `rows` of `w` values split into `stride` phases: phase `p` holds every row's values `p, p + stride, ...`,
/// rows `phase_len` apart (`[stride][rows][phase_len]`; a phase's row may end with values left as they were).
fn split_phases(rows: &[f32], w: usize, stride: usize, phases: &mut [f32], phase_len: usize) {
    let count = rows.len() / w;
    if stride == 2 {
        let (even, odd) = phases.split_at_mut(count * phase_len);
        let pairs = w / 2;
        for ((row, even), odd) in rows
            .chunks_exact(w)
            .zip(even.chunks_exact_mut(phase_len))
            .zip(odd.chunks_exact_mut(phase_len))
        {
            split_pairs(&row[..2 * pairs], &mut even[..pairs], &mut odd[..pairs]);
            if w % 2 == 1 {
                even[pairs] = row[w - 1];
            }
        }
        return;
    }
    for (i, dst) in phases.chunks_exact_mut(phase_len).enumerate() {
        let (phase, row) = (i / count, i % count);
        let src = rows[row * w..][..w].iter().skip(phase).step_by(stride);
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v;
        }
    }
}

/// Splits a padded row whose input values `src` start at column `first` (zeros elsewhere) into its even
/// (`even[t]` = column `2t`) and odd columns, the pairs inside the input by [`split_pairs`]. Kept out of
/// line, so compiled for the baseline target: there LLVM turns the portable pair loop into SSE shuffles, while
/// inlined into the AVX2 code it left it scalar (rustc 1.95), which took more time than the convolution itself.
#[inline(never)]
pub(super) fn deinterleave(src: &[f32], first: usize, even: &mut [f32], odd: &mut [f32]) {
    // Rows of up to 16 pairs (maps up to 32 wide); wider rows are mostly whole pairs, which `split_pairs`
    // splits faster than masked loads and stores (ResNet-50's strided convolutions ran 5% slower that way).
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if even.len().max(odd.len()) <= 16 && Isa::has_avx512() {
        // SAFETY: the CPU has AVX-512F (`has_avx512` only allows what the CPU has).
        return unsafe { deinterleave_avx512(src, first, even, odd) };
    }
    let last = first + src.len();
    let padded = |q: usize| {
        if (first..last).contains(&q) {
            src[q - first]
        } else {
            0.0
        }
    };
    // Pairs `(2t, 2t + 1)` entirely inside the input, `t` in `lo..hi`, are copied by a loop that vectorises.
    let lo = first.div_ceil(2).min(even.len());
    let hi = (last / 2).clamp(lo, even.len());
    for t in (0..lo).chain(hi..even.len()) {
        even[t] = padded(2 * t);
        odd[t] = padded(2 * t + 1);
    }
    if lo < hi {
        split_pairs(
            &src[2 * lo - first..2 * hi - first],
            &mut even[lo..hi],
            &mut odd[lo..hi],
        );
    }
}

/// [`deinterleave`] with AVX-512 (for narrow rows), 32 values of the padded row at a time: two loads masked to the row's values
/// (the padding's lanes read nothing and hold 0), two lane permutes into the even and the odd values, two
/// stores. Row by row through the scalar padding loops and [`split_pairs`], the stride-2 phase planes of a
/// 14×14 map took three quarters of a depthwise layer's time.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave_avx512(src: &[f32], first: usize, even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = even.len().min(odd.len());
    let last = first + src.len();
    // The lanes `l` of the 16 padded positions from `start` on that hold a value of `src`.
    let inside = |start: usize| -> u16 {
        let lo = first.saturating_sub(start).min(16);
        let hi = last.saturating_sub(start).min(16);
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
    };
    let even_lanes = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    let odd_lanes = _mm512_add_epi32(even_lanes, _mm512_set1_epi32(1));
    // Padded position `q` is `src[q - first]`; the pointer is only read through masks of positions inside.
    let padded = src.as_ptr().wrapping_sub(first);
    for t in (0..n).step_by(16) {
        let q = 2 * t;
        // SAFETY: the masked lanes are positions `first..last`, that is `src`'s values.
        let (low, high) = unsafe {
            (
                _mm512_maskz_loadu_ps(inside(q), padded.wrapping_add(q)),
                _mm512_maskz_loadu_ps(inside(q + 16), padded.wrapping_add(q + 16)),
            )
        };
        let keep = avx512::lane_mask(n - t);
        // SAFETY: the masked lanes are values `t..n` of `even` and `odd`.
        unsafe {
            _mm512_mask_storeu_ps(
                even.as_mut_ptr().add(t),
                keep,
                _mm512_permutex2var_ps(low, even_lanes, high),
            );
            _mm512_mask_storeu_ps(
                odd.as_mut_ptr().add(t),
                keep,
                _mm512_permutex2var_ps(low, odd_lanes, high),
            );
        }
    }
}

/// `even[t] = pairs[2t]`, `odd[t] = pairs[2t + 1]`: the stride-2 phase split of the pools and of the depthwise
/// convolution. The compiler leaves this loop scalar when it is inlined into AVX2 code (rustc 1.95), and then it
/// took more time than the layer; here it runs sixteen pairs at a time with AVX-512 where the CPU has it.
pub(super) fn split_pairs(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = pairs.len() / 2;
    assert!(even.len() >= n && odd.len() >= n, "phase rows too short");
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if Isa::has_avx512() {
        // SAFETY: the CPU has AVX-512F (`has_avx512` only allows what the CPU has); the lengths are asserted
        // above.
        return unsafe { split_pairs_avx512(&pairs[..2 * n], &mut even[..n], &mut odd[..n]) };
    }
    split_pairs_portable(pairs, even, odd);
}

/// [`split_pairs`] as a plain loop.
fn split_pairs_portable(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    for ((e, o), pair) in even
        .iter_mut()
        .zip(odd.iter_mut())
        .zip(pairs.chunks_exact(2))
    {
        *e = pair[0];
        *o = pair[1];
    }
}

/// [`split_pairs`] with AVX-512 permutes, sixteen pairs from two vectors at a time, the last ones masked.
///
/// # Safety
/// The CPU must have AVX-512F; `pairs` holds `2n` values, `even` and `odd` `n` each.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn split_pairs_avx512(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = even.len();
    let pick_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let pick_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut t = 0;
    while t < n {
        let left = (n - t).min(16);
        // Lanes of the two input vectors (`2 * left` values) and of each output (`left`).
        let input = ((1u64 << (2 * left)) - 1) as u32;
        let output = ((1u32 << left) - 1) as u16;
        // SAFETY: the masked lanes are inside `pairs` (values `2t..2t + 2 * left`), `even` and `odd` (values
        // `t..t + left`); the second half's address, past the end of `pairs` when no lane of it is read, is
        // computed with `wrapping_add`.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(input as u16, pairs.as_ptr().add(2 * t));
            let hi = _mm512_maskz_loadu_ps(
                (input >> 16) as u16,
                pairs.as_ptr().wrapping_add(2 * t + 16),
            );
            let e = _mm512_permutex2var_ps(lo, pick_even, hi);
            let o = _mm512_permutex2var_ps(lo, pick_odd, hi);
            _mm512_mask_storeu_ps(even.as_mut_ptr().add(t), output, e);
            _mm512_mask_storeu_ps(odd.as_mut_ptr().add(t), output, o);
        }
        t += 16;
    }
}

/// A separable pool, each plane in two passes of element-wise operations on slices: down the columns into an
/// `[oh, w]` buffer (a strided row axis simply reads every `stride`-th row), then along the rows. A strided
/// column axis is first split into `stride` phases (`[stride][oh][⌈w / stride⌉]`, every `stride`-th value),
/// so that each tap reads consecutive values of one phase. The windows' ranges are worked out once per call;
/// `finish` is applied to each finished output plane. (Reading strided values one by one, and the edges of a
/// whole-plane pass recomputed value by value, were 12% of GoogLeNet's time.)
fn pool2d<R: Reduce>(
    x: &[f32],
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
    finish: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if Isa::has_avx512() && pool_rows_fit(rows, cols) {
        return pool2d_rows::<R>(x, planes, rows, cols, finish);
    }
    let (h, w) = (rows.len, cols.len);
    let (oh, ow) = (rows.out, cols.out);
    let mut out = vec![0f32; planes * oh * ow];
    if oh * ow == 0 {
        return out;
    }
    let row_taps = rows.tap_ranges();
    let col_taps = cols.tap_ranges();
    let stride = cols.stride;
    let phase_len = w.div_ceil(stride);
    out.par_chunks_mut(oh * ow).enumerate().for_each_init(
        || {
            let phases = if stride == 1 {
                0
            } else {
                stride * oh * phase_len
            };
            (vec![0f32; oh * w], vec![0f32; phases])
        },
        |(down, phases), (p, dst)| {
            let src = &x[p * h * w..(p + 1) * h * w];
            // Down the columns: output row `oy` of tap `r` reads input row `r.first + (oy - r.lo) * stride`.
            let taps = row_taps.iter().map(|r| Tap {
                at: r.lo * w,
                src: &src[r.first * w..],
                src_stride: rows.stride * w,
                rows: r.hi - r.lo,
                len: w,
            });
            reduce_taps::<R>((&mut down[..], w), (oh, w), taps);
            // Along the rows, from `down` itself or from its phases.
            let (from, from_stride, phase_plane) = if stride == 1 {
                (&down[..], w, 0)
            } else {
                split_phases(down, w, stride, phases, phase_len);
                (&phases[..], phase_len, oh * phase_len)
            };
            let taps = col_taps.iter().map(|c| Tap {
                at: c.lo,
                src: &from[c.first % stride * phase_plane + c.first / stride..],
                src_stride: from_stride,
                rows: oh,
                len: c.hi - c.lo,
            });
            reduce_taps::<R>((&mut *dst, ow), (oh, ow), taps);
            finish(dst);
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out as its definition, one output value at a time.
    pub(super) fn naive_conv(
        x: &[f32],
        batch: usize,
        weight: &[f32],
        g: &ConvGeometry,
    ) -> Vec<f32> {
        let (kh, kw) = g.kernel;
        let (in_g, out_g) = (g.in_per_group(), g.out_per_group());
        let mut out = Vec::new();
        for n in 0..batch {
            for co in 0..g.c_out {
                let group = co / out_g;
                for oy in 0..g.out.0 {
                    for ox in 0..g.out.1 {
                        let mut acc = 0f64;
                        for ci in 0..in_g {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * g.stride.0 + i * g.dilation.0) as isize
                                        - g.pad_before.0 as isize;
                                    let ix = (ox * g.stride.1 + j * g.dilation.1) as isize
                                        - g.pad_before.1 as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    let c = group * in_g + ci;
                                    let xv = x[((n * g.c_in + c) * g.h + iy as usize) * g.w
                                        + ix as usize];
                                    let wv = weight[((co * in_g + ci) * kh + i) * kw + j];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        out.push(acc as f32);
                    }
                }
            }
        }
        out
    }

    /// What `epilogue` makes of output channel `c`'s convolution value `e`, written out: the kernels' tests
    /// compare against `naive_conv` through it.
    pub(super) fn with_epilogue(e: f32, c: usize, epilogue: &Epilogue) -> f32 {
        let e = e * epilogue.scale.as_ref().map_or(1.0, |s| s[c])
            + epilogue.shift.as_ref().map_or(0.0, |s| s[c]);
        match epilogue.activation {
            Activation::Relu => e.max(0.0),
            Activation::Relu6 => e.clamp(0.0, 6.0),
            Activation::Silu => e / (1.0 + (-e).exp()),
            Activation::Identity => e,
            other => panic!("no expected values for {other:?}"),
        }
    }

    /// Checks a kernel's output `got` against the convolution's values `naive` (`[images, c_out, plane]`)
    /// through `epilogue`, each within 1e-5 relative (1 at least); `case` names the case in a failure.
    pub(super) fn assert_epilogue_of(
        got: &[f32],
        naive: &[f32],
        (c_out, plane): (usize, usize),
        epilogue: &Epilogue,
        case: &dyn std::fmt::Debug,
    ) {
        assert_eq!(got.len(), naive.len(), "{case:?}: output length");
        for (i, (&a, &e)) in got.iter().zip(naive).enumerate() {
            let e = with_epilogue(e, i / plane.max(1) % c_out, epilogue);
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{case:?} {epilogue:?} element {i}: {a} vs {e}"
            );
        }
    }

    pub(super) fn values(len: usize, seed: u32) -> Vec<f32> {
        // A small deterministic pseudo-random sequence in [-1, 1).
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// A convolution of `c_in` channels of `(h, w)` into `c_out` in `groups`, with `kernel`, `stride`, padding
    /// `(top, bottom, left, right)` and `dilation`, its output size worked out as PyTorch does ([`out_len`]);
    /// `None` where the dilated window is larger than the padded input.
    pub(super) fn conv_geometry(
        (c_in, h, w): (usize, usize, usize),
        (c_out, groups): (usize, usize),
        (kh, kw): (usize, usize),
        stride: (usize, usize),
        (pt, pb, pl, pr): (usize, usize, usize, usize),
        dilation: (usize, usize),
    ) -> Option<ConvGeometry> {
        let (eh, ew) = ((kh - 1) * dilation.0 + 1, (kw - 1) * dilation.1 + 1);
        (eh <= h + pt + pb && ew <= w + pl + pr).then(|| ConvGeometry {
            c_in,
            h,
            w,
            c_out,
            kernel: (kh, kw),
            stride,
            pad_before: (pt, pl),
            dilation,
            groups,
            out: (
                out_len(h, kh, stride.0, (pt, pb), dilation.0),
                out_len(w, kw, stride.1, (pl, pr), dilation.1),
            ),
        })
    }

    pub(super) fn out_len(len: usize, k: usize, s: usize, p: (usize, usize), d: usize) -> usize {
        (len + p.0 + p.1 - d * (k - 1) - 1) / s + 1
    }

    #[test]
    fn conv_matches_the_definition_for_every_kind_of_geometry() {
        // (c_in, h, w, c_out, kernel, stride, pad (top, bottom, left, right), dilation, groups, batch)
        let cases = [
            (3, 9, 7, 4, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, 2), // pointwise
            (3, 9, 7, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            (2, 11, 10, 5, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, 3),
            (4, 8, 9, 6, (3, 2), (2, 1), (1, 0, 0, 2), (1, 2), 2, 2), // asymmetric everything, groups
            (4, 6, 6, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 4, 1), // depthwise, dilated
            (2, 5, 5, 3, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, 2), // strided 1x1 is not pointwise
            (3, 13, 14, 4, (3, 3), (3, 3), (1, 1, 1, 1), (1, 1), 1, 1), // stride 3: phases not split by pairs
            (2, 9, 17, 3, (2, 4), (1, 3), (0, 1, 2, 1), (1, 2), 1, 1), // stride 1 down, 3 across, dilated
            (1, 4, 4, 2, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, 1), // kernel larger than the input
            // Deep and wide enough to be cut into column blocks (a partial last one), on one image (blocks on
            // the threads) and on two (an image per thread); strided, dilated and grouped too.
            (64, 33, 35, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            (64, 33, 35, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 2),
            (128, 70, 66, 8, (3, 3), (2, 2), (1, 1, 2, 0), (2, 2), 2, 1),
            // Strided with enough channels to read the phase planes in place ([`reads_in_place`]): a 3×3 at
            // stride 2 (a column past each output row, dropped; with a residual, patches instead), a 1×1 at
            // stride 2 (the output written by the product, the residual added there) on an odd map, and
            // strides 3 down and 2 across with asymmetric padding; on one image and two, and on three threads
            // (each a block of output channels).
            (48, 19, 17, 20, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, 1),
            (40, 17, 14, 28, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, 2),
            (32, 10, 20, 40, (3, 3), (3, 2), (1, 1, 0, 2), (1, 1), 1, 1),
            // One image on three threads split by output columns (a partial last share): pointwise, read in
            // place; 3x3, each thread building its own columns' patches; strided and grouped.
            (16, 30, 28, 8, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, 1),
            (3, 31, 27, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            (8, 70, 66, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2, 1),
            (16, 20, 18, 8, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, 1),
            // ... and by output rows: more output channels than weights per channel, or few columns.
            (4, 30, 28, 24, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, 1),
            (2, 31, 27, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            (16, 20, 18, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            // Output the input's size (one shifted copy of the plane per patch row): 5×5, and asymmetric.
            (3, 14, 14, 5, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, 1),
            (2, 6, 9, 3, (3, 5), (1, 1), (2, 0, 1, 3), (1, 1), 1, 2),
            // ... on maps smaller than the window's reach: a 1×1 and a 2×1 input under 3×3 and 5×5 windows.
            (2, 1, 1, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
            (2, 2, 1, 3, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, 2),
        ];
        for (case, &(c_in, h, w, c_out, kernel, stride, pad, dilation, groups, batch)) in
            cases.iter().enumerate()
        {
            let out = (
                out_len(h, kernel.0, stride.0, (pad.0, pad.1), dilation.0),
                out_len(w, kernel.1, stride.1, (pad.2, pad.3), dilation.1),
            );
            let g = ConvGeometry {
                c_in,
                h,
                w,
                c_out,
                kernel,
                stride,
                pad_before: (pad.0, pad.2),
                dilation,
                groups,
                out,
            };
            let blocked = column_block(&g).is_some();
            assert_eq!(blocked, c_in >= 64, "case {case}: column blocks");
            let x = values(batch * c_in * h * w, case as u32);
            let weight = values(
                c_out * c_in / groups * kernel.0 * kernel.1,
                100 + case as u32,
            );
            let expected = naive_conv(&x, batch, &weight, &g);
            for epilogue_kind in 0..3 {
                let epilogue = match epilogue_kind {
                    0 => Epilogue::default(),
                    kind => Epilogue {
                        scale: Some(values(c_out, 7)),
                        shift: Some(values(c_out, 8)),
                        activation: if kind == 1 {
                            Activation::Relu
                        } else {
                            Activation::Silu
                        },
                    },
                };
                // One thread, and three: images, groups, column blocks or output rows shared out.
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                let three = rayon::ThreadPoolBuilder::new()
                    .num_threads(3)
                    .build()
                    .unwrap();
                for isa in Isa::available() {
                    let packed = pack_weights(isa, &weight, &g);
                    let parts = [(&packed[..], c_out)];
                    let packed = PackedWeights { isa, parts: &parts };
                    // With an epilogue, a residual too (added before the activation).
                    let residual = values(expected.len(), 9);
                    let residual = epilogue.scale.is_some().then_some(&residual[..]);
                    let run = || conv2d(&x, batch, c_in * h * w, packed, &g, &epilogue, residual);
                    let got = one.install(run);
                    assert_eq!(got.len(), expected.len(), "case {case}");
                    let plane = out.0 * out.1;
                    let on_three = three.install(run);
                    for (i, ((&a, &e), &b)) in got.iter().zip(&expected).zip(&on_three).enumerate()
                    {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                            "case {case} {isa:?} element {i}: {a} on one thread, {b} on three"
                        );
                        let c = (i / plane) % c_out;
                        let e = match &epilogue.scale {
                            None => e,
                            Some(scale) => {
                                let v = e * scale[c]
                                    + epilogue.shift.as_ref().unwrap()[c]
                                    + residual.unwrap()[i];
                                match epilogue.activation {
                                    Activation::Relu => v.max(0.0),
                                    // SiLU, applied after the product rather than by it.
                                    _ => v / (1.0 + (-v).exp()),
                                }
                            }
                        };
                        assert!(
                            (a - e).abs() < 1e-4,
                            "case {case} {isa:?} epilogue {epilogue_kind} element {i}: {a} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn strided_convolutions_with_enough_channels_read_their_phase_planes_in_place() {
        let conv = |c_in, hw, kernel, pad, groups| {
            conv_geometry(
                (c_in, hw, hw),
                (64, groups),
                (kernel, kernel),
                (2, 2),
                (pad, pad, pad, pad),
                (1, 1),
            )
            .unwrap()
        };
        // ResNet-50's 3×3 at stride 2 and its 1×1 downsample; the second's columns are the output's, so a
        // residual is added in place.
        assert!(reads_in_place(&conv(128, 56, 3, 1, 1), false));
        assert!(reads_in_place(&conv(256, 56, 1, 0, 1), true));
        // A column past each output row: the residual, laid out as the output, needs patches.
        assert!(!reads_in_place(&conv(128, 56, 3, 1, 1), true));
        // A 7×7 stem's three channels, groups of 16, and a 3×3 at stride 2 on a 7×7 or 8×8 output (8
        // columns a row for 7, 9 for 8) take patches.
        assert!(!reads_in_place(&conv(3, 224, 7, 3, 1), false));
        assert!(!reads_in_place(&conv(512, 14, 3, 1, 1), false));
        assert!(!reads_in_place(&conv(192, 17, 3, 0, 1), false));
        // The cases of `conv_matches_the_definition_for_every_kind_of_geometry` that read in place.
        for (c_in, (h, w), kernel, stride, pad) in [
            (48, (19, 17), (3, 3), (2, 2), (1, 1, 1, 1)),
            (40, (17, 14), (1, 1), (2, 2), (0, 0, 0, 0)),
            (32, (10, 20), (3, 3), (3, 2), (1, 1, 0, 2)),
        ] {
            let g = conv_geometry((c_in, h, w), (8, 1), kernel, stride, pad, (1, 1)).unwrap();
            assert!(reads_in_place(&g, kernel == (1, 1)), "{g:?}");
        }
        assert!(!reads_in_place(&conv(64, 56, 3, 1, 4), false));
    }

    #[test]
    fn one_image_is_split_by_columns_unless_the_weights_are_taller_than_wide_or_the_map_small() {
        let geometry = |c_in, hw, c_out, kernel: usize| ConvGeometry {
            c_in,
            h: hw,
            w: hw,
            c_out,
            kernel: (kernel, kernel),
            stride: (1, 1),
            pad_before: (kernel / 2, kernel / 2),
            dilation: (1, 1),
            groups: 1,
            out: (hw, hw),
        };
        // The cases of `conv_matches_the_definition_for_every_kind_of_geometry` on three threads.
        let columns = |c_in, (h, w), c_out, kernel| {
            thread_columns(
                &ConvGeometry {
                    h,
                    w,
                    out: (h, w),
                    ..geometry(c_in, 0, c_out, kernel)
                },
                3,
            )
        };
        assert_eq!(columns(16, (30, 28), 8, 1), Some(288));
        assert_eq!(columns(3, (31, 27), 8, 3), Some(288));
        assert_eq!(columns(4, (30, 28), 24, 1), None);
        assert_eq!(columns(2, (31, 27), 24, 3), None);
        assert_eq!(columns(16, (20, 18), 8, 1), Some(128));
        assert_eq!(columns(16, (20, 18), 8, 3), None);
        // ResNet-50 on two threads: the bottleneck's reductions by columns down to 14x14 maps, its 3x3s down
        // to 28x28, its expansions and 7x7 maps by rows; one thread never splits.
        assert_eq!(thread_columns(&geometry(256, 56, 64, 1), 2), Some(1568));
        assert_eq!(thread_columns(&geometry(1024, 14, 256, 1), 2), Some(112));
        assert_eq!(thread_columns(&geometry(128, 28, 128, 3), 2), Some(400));
        assert_eq!(thread_columns(&geometry(256, 14, 256, 3), 2), None);
        assert_eq!(thread_columns(&geometry(64, 56, 256, 1), 2), None);
        assert_eq!(thread_columns(&geometry(2048, 7, 512, 1), 2), None);
        assert_eq!(thread_columns(&geometry(256, 56, 64, 1), 1), None);
        // Cache-sized column blocks in whole rounds for the threads: Inception-v3's 35x35 5x5, from five blocks
        // of 256 columns to six on two threads; already even, or one thread, as they were.
        assert_eq!(block_count(1225, 256, 2), 6);
        assert_eq!(block_count(1024, 256, 2), 4);
        assert_eq!(block_count(1225, 256, 1), 5);
    }

    #[test]
    fn column_blocks_share_the_columns_evenly_at_multiples_of_16() {
        let blocks = |columns, count| column_blocks(columns, count).collect::<Vec<_>>();
        // ResNet-50's 14×14 maps on two threads: 96 + 100 columns, not 112 + 84.
        assert_eq!(blocks(196, 2), [0..96, 96..196]);
        assert_eq!(blocks(3136, 2), [0..1568, 1568..3136]);
        assert_eq!(blocks(784, 2), [0..400, 400..784]);
        // Inception-v3's 35×35 maps in six blocks of about 208 columns (two threads), in five of about 245
        // (one thread), and 1024 columns in four of 256.
        assert_eq!(
            blocks(1225, 6),
            [0..208, 208..416, 416..608, 608..816, 816..1024, 1024..1225]
        );
        assert_eq!(
            blocks(1225, 5),
            [0..240, 240..496, 496..736, 736..976, 976..1225]
        );
        assert_eq!(blocks(1024, 4), [0..256, 256..512, 512..768, 768..1024]);
        // Fewer columns than a block, or than the rounding: one block, never an empty one.
        assert_eq!(blocks(10, 1), vec![0..10]);
        assert_eq!(blocks(10, 2), vec![0..10]);
        assert_eq!(blocks(0, 0), Vec::<std::ops::Range<usize>>::new());
    }

    #[test]
    fn valid_range_keeps_exactly_the_columns_inside_the_input() {
        for len in 1..6 {
            for pad in 0..3 {
                for offset in 0..5 {
                    for stride in 1..4 {
                        let out = 7;
                        let (lo, hi) = valid_range(offset, pad, stride, len, out);
                        for o in 0..out {
                            let inside = (o * stride + offset)
                                .checked_sub(pad)
                                .is_some_and(|i| i < len);
                            assert_eq!(
                                inside,
                                (lo..hi).contains(&o),
                                "len {len} pad {pad} offset {offset} stride {stride} o {o}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_pair_split_matches_the_definition_at_every_length() {
        type Split = fn(&[f32], &mut [f32], &mut [f32]);
        #[cfg_attr(
            not(all(target_arch = "x86_64", feature = "avx512")),
            allow(unused_mut)
        )]
        let mut paths: Vec<Split> = vec![split_pairs_portable];
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above; the lengths below are as the function needs.
            paths.push(|p, e, o| unsafe { split_pairs_avx512(p, e, o) });
        }
        for split in paths {
            for n in 0..=40 {
                let pairs = values(2 * n, n as u32);
                // One value more in each output, which must be left as it was.
                let (mut even, mut odd) = (vec![f32::NAN; n + 1], vec![f32::NAN; n + 1]);
                split(&pairs, &mut even[..n], &mut odd[..n]);
                for t in 0..n {
                    assert_eq!(
                        (even[t], odd[t]),
                        (pairs[2 * t], pairs[2 * t + 1]),
                        "{n} pairs"
                    );
                }
                assert!(
                    even[n].is_nan() && odd[n].is_nan(),
                    "{n} pairs: wrote past the end"
                );
            }
        }
    }

    #[test]
    fn every_max_combine_path_matches_the_definition_with_nan_on_either_side() {
        type Combine = fn((&mut [f32], usize), (&[f32], usize), usize, usize);
        let mut paths: Vec<Combine> = vec![combine_portable::<Max>];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            paths.push(|d, s, rows, len| unsafe { max_rows_avx(d, s, rows, len) });
        }
        // Rows of 13 values (a vector, half a vector and a scalar tail), 3 of them, strided in both.
        let (rows, len, stride) = (3, 13, 16);
        let mut src = values(rows * stride, 1);
        let mut dst = values(rows * stride, 2);
        src[5] = f32::NAN;
        dst[9] = f32::NAN;
        src[stride + 12] = f32::NAN;
        dst[2 * stride] = f32::NAN;
        for combine in paths {
            let mut got = dst.clone();
            combine((&mut got, stride), (&src, stride), rows, len);
            for (i, (&g, (&d, &v))) in got.iter().zip(dst.iter().zip(&src)).enumerate() {
                let expected = if i % stride >= len {
                    d
                } else if d.is_nan() || v.is_nan() {
                    f32::NAN
                } else {
                    d.max(v)
                };
                assert!(
                    g.to_bits() == expected.to_bits() || (g.is_nan() && expected.is_nan()),
                    "value {i}: {g} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn max_pool_skips_padding_and_propagates_nan() {
        // One 3x3 plane, kernel 2, stride 2, pad 1: rows {-1, 0} and {1, 2}, the same for columns.
        let x = [1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0, -7.0, -8.0, -9.0];
        let axis = PoolAxis {
            len: 3,
            kernel: 2,
            stride: 2,
            pad: 1,
            dilation: 1,
            out: 2,
        };
        let out = max_pool2d(&x, 1, &axis, &axis);
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], 3.0);
        assert_eq!(out[2], 4.0);
        assert!(out[3].is_nan());
    }

    #[test]
    fn pools_match_their_definition() {
        // (len, kernel, stride, pad, dilation, out) per axis; `out` as PyTorch's formula gives it, ceil mode
        // included (the last case's window hangs over the end).
        let axes = [
            PoolAxis {
                len: 7,
                kernel: 3,
                stride: 1,
                pad: 1,
                dilation: 1,
                out: 7,
            },
            PoolAxis {
                len: 8,
                kernel: 3,
                stride: 2,
                pad: 0,
                dilation: 1,
                out: 4,
            }, // ceil: (8 - 3 + 1) / 2 + 1
            PoolAxis {
                len: 9,
                kernel: 2,
                stride: 3,
                pad: 1,
                dilation: 2,
                out: 3,
            },
            PoolAxis {
                len: 5,
                kernel: 5,
                stride: 1,
                pad: 2,
                dilation: 1,
                out: 5,
            },
            // Narrower than the window.
            PoolAxis {
                len: 2,
                kernel: 3,
                stride: 1,
                pad: 1,
                dilation: 1,
                out: 2,
            },
            // No tap covers every output (each window but the middle one hangs over an edge).
            PoolAxis {
                len: 2,
                kernel: 2,
                stride: 1,
                pad: 1,
                dilation: 1,
                out: 3,
            },
            // Stride 2 on an odd length, padded (ResNet's stem pool), and on a row of more than 32 values.
            PoolAxis {
                len: 9,
                kernel: 3,
                stride: 2,
                pad: 1,
                dilation: 1,
                out: 5,
            },
            PoolAxis {
                len: 37,
                kernel: 3,
                stride: 2,
                pad: 0,
                dilation: 1,
                out: 18,
            },
            // Stride 3, ceil mode: the last window starts inside and hangs over the end.
            PoolAxis {
                len: 11,
                kernel: 3,
                stride: 3,
                pad: 1,
                dilation: 1,
                out: 4,
            },
        ];
        for rows in &axes {
            for cols in &axes {
                let planes = 3;
                let x = values(planes * rows.len * cols.len, 9);
                let divisors: Vec<f32> = (0..rows.out * cols.out).map(|i| 1.0 + i as f32).collect();
                let max = max_pool2d(&x, planes, rows, cols);
                let avg = avg_pool2d(&x, planes, rows, cols, &divisors);
                let taps = |a: &PoolAxis, o: usize| -> Vec<usize> {
                    (0..a.kernel)
                        .filter_map(|t| {
                            (o * a.stride + t * a.dilation)
                                .checked_sub(a.pad)
                                .filter(|&i| i < a.len)
                        })
                        .collect()
                };
                for p in 0..planes {
                    for oy in 0..rows.out {
                        for ox in 0..cols.out {
                            let mut best = f32::NEG_INFINITY;
                            let mut sum = 0.0;
                            for iy in taps(rows, oy) {
                                for ix in taps(cols, ox) {
                                    let v = x[(p * rows.len + iy) * cols.len + ix];
                                    best = best.max(v);
                                    sum += v;
                                }
                            }
                            let o = (p * rows.out + oy) * cols.out + ox;
                            assert_eq!(max[o], best, "max {rows:?} {cols:?} at {p},{oy},{ox}");
                            let expected = sum / divisors[oy * cols.out + ox];
                            assert!(
                                (avg[o] - expected).abs() < 1e-5,
                                "avg {rows:?} {cols:?} at {p},{oy},{ox}"
                            );
                        }
                    }
                }
            }
        }
    }
}
