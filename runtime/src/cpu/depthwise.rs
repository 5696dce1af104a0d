//! Depthwise convolution (every output channel reads one input channel: `groups == in_channels`, the 3×3 and
//! 5×5 convolutions of MobileNet, ShuffleNet and EfficientNet) computed directly, without a patch matrix.
//!
//! As a matrix product a depthwise convolution is one `[m, k²] x [k², oh * ow]` product per channel, far too
//! small for a GEMM to pay back its packing, which is why it is slow both through candle (one convolution per
//! group, then a concatenation) and through [`super::conv2d_into`]'s im2col. Here each channel's plane is
//! done by one task:
//!
//! 1. The input plane is copied once into *phase planes*: zero padding added, and, for a stride `s`, rows and
//!    columns split by their position modulo `s`. In that layout every tap `(i, j)` of the window reads, for
//!    consecutive outputs, consecutive values, whatever the stride, padding and dilation: output `(oy, ox)`
//!    reads phase plane `((i·dh) mod sh, (j·dw) mod sw)` at row `oy + ⌊i·dh / sh⌋`, column `ox + ⌊j·dw / sw⌋`.
//!    With the output written at the phase planes' row length `L` (a few columns wider than the output), each
//!    tap is a single contiguous run over the whole plane — so even a 7×7 map vectorises fully.
//! 2. The output is computed [`BLOCK`] values at a time, their sums held in registers across all the taps: a
//!    run of that flat output, or, for maps a few vectors wide, a rectangle of rows ([`Tiling`]).
//! 3. The extra columns are dropped and the epilogue (bias, folded batch norm, activation) applied on the way out.
//!
//! The loops are compiled for the instruction set the product kernels run ([`Isa::detect`]): as plain Rust
//! that LLVM vectorises for the baseline target, or with AVX2 and FMA, or with AVX-512 (whose 16-lane sums take
//! the tilings with rows of 16 values or more, AVX2 the others), where the sums of step 2 are written with
//! intrinsics so that they stay in registers ([`Plane::rect`]).

use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::{
    fill_phase_planes, tap_phase, written, Activation, ConvGeometry, Epilogue, Fresh, Isa,
};

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
mod lanes;

/// Output values computed together, their partial sums kept in registers while every tap of the window is
/// added in: eight 8-lane AVX2 registers, enough independent sums to cover the latency of a fused multiply-add
/// at two per cycle (with four, a 7×7 map's 5×5 window ran at half speed, bound by the add chains).
const BLOCK: usize = 64;

/// Roughly how many multiply-adds a rayon task should get, so that maps of a few dozen values (960 channels
/// of 7×7) are not one task each.
const TASK_WORK: usize = 1 << 15;

/// Whether [`conv2d`] computes a convolution of this geometry: one input channel per group, and more than one
/// group (a single-channel input with one group, an image's first layer, is left to the matrix product).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.groups > 1 && g.in_per_group() == 1
}

/// The depthwise convolution of `batch` images: `x` holds image `n` at `x[n * image_stride..]` as a contiguous
/// `[c_in, h, w]` block, `weight` is the contiguous `[c_out, 1, kh, kw]` kernel, output channel `c` reading
/// input channel `c / (c_out / c_in)`. Returns the contiguous `[batch, c_out, oh, ow]` output with `epilogue`
/// applied, as [`super::conv2d_into`] does. Needs [`applies`].
pub(crate) fn conv2d(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    let isa = Isa::detect();
    conv2d_for(
        isa,
        Method::choose(g, isa),
        x,
        batch,
        image_stride,
        weight,
        g,
        epilogue,
    )
}

/// How a layer's channels are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// A plane at a time, through phase planes laid out like this.
    Planes(PhaseLayout),
    /// Sixteen channels at a time in the lanes of AVX-512 registers ([`lanes`]), for small maps.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    Lanes,
}

impl Method {
    /// The lanes where `isa` is AVX-512 and they take the layer ([`lanes::applies`]), else planes with the
    /// tiling that computes the fewest values.
    fn choose(g: &ConvGeometry, isa: Isa) -> Method {
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if isa == Isa::Avx512 && lanes::applies(g) {
            return Method::Lanes;
        }
        Method::Planes(PhaseLayout::new(g, PhaseLayout::tiling(g, isa)))
    }
}

/// [`conv2d`] with the loops compiled for `isa`, which the CPU must support, computed by `method` (which must
/// take the layer when it is [`Method::Lanes`]).
#[allow(clippy::too_many_arguments)]
fn conv2d_for(
    isa: Isa,
    method: Method,
    x: &[f32],
    batch: usize,
    image_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    assert!(applies(g), "not a depthwise convolution: {g:?}");
    let (oh, ow) = g.out;
    let plane_out = oh * ow;
    // Every value is written by its plane's epilogue: no zero fill first.
    let mut out = Fresh::new(batch * g.c_out * plane_out);
    if plane_out == 0 || g.c_out == 0 || batch == 0 {
        // SAFETY: there is no value to write.
        return unsafe { out.assume_written() };
    }
    let layout = match method {
        Method::Planes(layout) => layout,
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        Method::Lanes => {
            assert!(
                isa == Isa::Avx512 && lanes::applies(g),
                "{g:?} not for the lane kernel"
            );
            lanes_conv2d(x, image_stride, weight, g, epilogue, out.values());
            // SAFETY: each block of channels wrote every value of its planes.
            return unsafe { out.assume_written() };
        }
    };
    let taps = g.kernel.0 * g.kernel.1;
    let offsets = layout.tap_offsets(g);
    let plane_in = g.h * g.w;
    let one_plane = |scratch: &mut Scratch, (p, dst): (usize, &mut [MaybeUninit<f32>])| {
        let (n, c) = (p / g.c_out, p % g.c_out);
        let planes = (&x[n * image_stride..], plane_in);
        let channel = Channel {
            isa,
            layout: &layout,
            offsets: &offsets,
        };
        channel.run(planes, weight, g, epilogue, c, scratch, dst);
    };
    if rayon::current_num_threads() == 1 {
        // On the calling thread: handing the work to a one-thread pool and sleeping until it is done costs more
        // than a small layer (960 channels of 7×7).
        let mut scratch = Scratch::default();
        out.values()
            .chunks_mut(plane_out)
            .enumerate()
            .for_each(|item| one_plane(&mut scratch, item));
    } else {
        let per_task = (TASK_WORK / (taps * layout.computed).max(1)).max(1);
        out.values()
            .par_chunks_mut(plane_out)
            .enumerate()
            .with_min_len(per_task)
            .for_each_init(Scratch::default, one_plane);
    }
    // SAFETY: each plane's `run` wrote every value of its plane.
    unsafe { out.assume_written() }
}

/// [`conv2d`] by the lane kernel, into `out` (`[batch, c_out, oh, ow]`): a task per image and block of sixteen
/// channels. Needs an AVX-512 CPU and [`lanes::applies`].
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
fn lanes_conv2d(
    x: &[f32],
    image_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) {
    let plane_out = g.out.0 * g.out.1;
    let blocks = g.c_out.div_ceil(super::avx512::LANES);
    let one_block = |scratch: &mut lanes::Scratch, (i, dst): (usize, &mut [MaybeUninit<f32>])| {
        let (n, block) = (i / blocks, i % blocks);
        let image = &x[n * image_stride..];
        // SAFETY: the caller's contract (AVX-512, `applies`).
        unsafe {
            lanes::block(
                (image, g.h * g.w),
                weight,
                g,
                epilogue,
                block * super::avx512::LANES,
                scratch,
                dst,
            )
        };
    };
    // A block's planes, the last block of an image holding fewer channels.
    let mut blocks: Vec<_> = out
        .chunks_mut(g.c_out * plane_out)
        .flat_map(|image| image.chunks_mut(super::avx512::LANES * plane_out))
        .enumerate()
        .collect();
    // One run of consecutive blocks a thread, each with one scratch: a block of 7×7 planes is a microsecond's
    // work, less than rayon's splitting and a scratch's set-up per split.
    let per_thread = blocks.len().div_ceil(rayon::current_num_threads());
    let run = |blocks: &mut [(usize, &mut [MaybeUninit<f32>])]| {
        let mut scratch = lanes::Scratch::default();
        for (i, dst) in blocks {
            one_block(&mut scratch, (*i, dst));
        }
    };
    if per_thread >= blocks.len() {
        run(&mut blocks);
    } else {
        blocks.par_chunks_mut(per_thread).for_each(run);
    }
}

/// One image's depthwise convolution into `dst` (`[c_out, oh, ow]`, contiguous), on the calling thread:
/// input channel `c` is the `[h, w]` plane at `x[c * plane_stride..]`, so the image may be a band of rows of
/// a larger buffer ([`super::separable`]). `scratch` is reused from one call to the next. Needs [`applies`].
pub(crate) fn image_into(
    (x, plane_stride): (&[f32], usize),
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    scratch: &mut Scratch,
    dst: &mut [MaybeUninit<f32>],
) {
    assert!(applies(g), "not a depthwise convolution: {g:?}");
    let plane_out = g.out.0 * g.out.1;
    assert!(
        dst.len() >= g.c_out * plane_out,
        "depthwise output too short"
    );
    if plane_out == 0 {
        return;
    }
    let isa = Isa::detect();
    let layout = match Method::choose(g, isa) {
        Method::Planes(layout) => layout,
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        Method::Lanes => {
            let blocks = dst[..g.c_out * plane_out].chunks_mut(super::avx512::LANES * plane_out);
            for (block, dst) in blocks.enumerate() {
                // SAFETY: `choose` takes the lanes only on an AVX-512 CPU, for a layer they apply to.
                unsafe {
                    lanes::block(
                        (x, plane_stride),
                        weight,
                        g,
                        epilogue,
                        block * super::avx512::LANES,
                        &mut scratch.lanes,
                        dst,
                    )
                };
            }
            return;
        }
    };
    let offsets = layout.tap_offsets(g);
    let channel = Channel {
        isa,
        layout: &layout,
        offsets: &offsets,
    };
    for (c, dst) in dst.chunks_exact_mut(plane_out).take(g.c_out).enumerate() {
        channel.run((x, plane_stride), weight, g, epilogue, c, scratch, dst);
    }
}

/// What every output channel of one layer shares: the loops' instruction set, the phase planes' layout and
/// the taps' offsets in it.
struct Channel<'a> {
    isa: Isa,
    layout: &'a PhaseLayout,
    offsets: &'a [usize],
}

impl Channel<'_> {
    /// Output channel `c` into `dst` (its `[oh, ow]` plane), reading input channel `c / multiplier` of the
    /// planes `plane_stride` apart from `x`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        (x, plane_stride): (&[f32], usize),
        weight: &[f32],
        g: &ConvGeometry,
        epilogue: &Epilogue,
        c: usize,
        scratch: &mut Scratch,
        dst: &mut [MaybeUninit<f32>],
    ) {
        let taps = g.kernel.0 * g.kernel.1;
        let start = (c / g.out_per_group()) * plane_stride;
        let plane = Plane {
            src: &x[start..start + g.h * g.w],
            taps: &weight[c * taps..(c + 1) * taps],
            offsets: self.offsets,
            channel: c,
        };
        match self.isa {
            Isa::Portable => plane.run::<false, false>(g, self.layout, epilogue, scratch, dst),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2Fma` is only chosen (by `detect` or `available`) on a CPU that has AVX2 and FMA.
            Isa::Avx2Fma => unsafe { plane.run_avx2_fma(g, self.layout, epilogue, scratch, dst) },
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            // SAFETY: `Isa::Avx512` is only chosen (by `detect` or `available`) on a CPU that has AVX-512F, and
            // AVX2 and FMA too.
            Isa::Avx512 => unsafe { plane.run_avx512(g, self.layout, epilogue, scratch, dst) },
        }
    }
}

/// How an output plane is cut into blocks of [`BLOCK`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tiling {
    /// The output rows at the phase planes' row length, end to end, in runs of `BLOCK`: no rounding up per
    /// row, so best for wide maps.
    Flat,
    /// Rectangles of `BLOCK / width` rows by `width` columns: for maps a few vectors wide (7×7 under a 5×5
    /// window), where rows of `ow` plus the window's reach waste more.
    Rect { width: usize },
}

/// Where the phase planes of one input plane live in the scratch buffer, and how the output is tiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PhaseLayout {
    tiling: Tiling,
    /// Rows of a phase plane: the (rounded-up) output rows plus the rows the lowest taps reach past them.
    rows: usize,
    /// Columns of a phase plane, which is also the row length the output is computed at: the (rounded-up)
    /// output columns plus the columns the rightmost taps reach past them.
    cols: usize,
    /// Distance between phase planes: `rows * cols` and enough zeros after it that the last block's reads of
    /// the last tap stay inside (see [`PhaseLayout::new`]).
    stride: usize,
    /// Number of phase planes, `sh * sw`.
    count: usize,
    /// Output values computed per plane (the size of [`Scratch::sums`]).
    computed: usize,
}

impl PhaseLayout {
    /// The tiling that computes the fewest values for `isa`: rectangles only where they beat [`Tiling::Flat`].
    /// With AVX-512 a rectangle 8 wide counts twice, its rows filling half a register (on MobileNet-V2's
    /// 56×56 maps 16-wide rectangles compute 14% more values than 8-wide ones, at twice the width).
    fn tiling(g: &ConvGeometry, isa: Isa) -> Tiling {
        let (oh, ow) = g.out;
        let (_, reach_cols) = g.phase_reach();
        let flat = (oh * (ow + reach_cols)).next_multiple_of(BLOCK);
        let half_width = |width: usize| {
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            if isa == Isa::Avx512 && width < 16 {
                return 2;
            }
            let _ = (isa, width);
            1
        };
        let rect = |width: usize| {
            oh.next_multiple_of(BLOCK / width) * ow.next_multiple_of(width) * half_width(width)
        };
        [8, 16, 32]
            .into_iter()
            .filter(|&width| rect(width) < flat)
            .min_by_key(|&width| rect(width))
            .map_or(Tiling::Flat, |width| Tiling::Rect { width })
    }

    fn new(g: &ConvGeometry, tiling: Tiling) -> PhaseLayout {
        let (sh, sw) = g.stride;
        let (oh, ow) = g.out;
        let (reach_rows, reach_cols) = g.phase_reach();
        let (rows, cols, computed) = match tiling {
            Tiling::Flat => {
                let cols = ow + reach_cols;
                (oh + reach_rows, cols, (oh * cols).next_multiple_of(BLOCK))
            }
            Tiling::Rect { width } => {
                let (rows, cols) = (
                    oh.next_multiple_of(BLOCK / width),
                    ow.next_multiple_of(width),
                );
                (
                    rows + reach_rows,
                    cols + reach_cols,
                    rows * (cols + reach_cols),
                )
            }
        };
        // A flat block reads `BLOCK` values from a start below `oh * cols`, shifted by a tap offset of at most
        // `reach_rows * cols + reach_cols`: inside `rows * cols + reach_cols + BLOCK`. A rectangle reads its
        // rows as whole rows of `cols` (see `Plane::sum_taps`), the last one starting before `rows * cols`:
        // inside `rows * cols + cols`.
        PhaseLayout {
            tiling,
            rows,
            cols,
            stride: rows * cols + cols + BLOCK,
            count: sh * sw,
            computed,
        }
    }

    /// The distance between a block's rows in the phase planes and the sums (`pitch`), and the blocks of a
    /// plane down and across: one row of flat runs of [`BLOCK`], or rectangles of `BLOCK / width` rows.
    fn blocks(&self, g: &ConvGeometry) -> (usize, (usize, usize)) {
        let (oh, ow) = g.out;
        match self.tiling {
            Tiling::Flat => (BLOCK, (1, self.computed / BLOCK)),
            Tiling::Rect { width } => (self.cols, (oh.div_ceil(BLOCK / width), ow.div_ceil(width))),
        }
    }

    /// For each tap `(i, j)` in row-major order, where in the phase buffer the value read by output `(0, 0)`
    /// lies; output `(oy, ox)` reads `oy * cols + ox` further on.
    fn tap_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        (0..g.kernel.0)
            .flat_map(|i| (0..g.kernel.1).map(move |j| (i, j)))
            .map(|tap| {
                let (phase, row, col) = tap_phase(g, tap);
                phase * self.stride + row * self.cols + col
            })
            .collect()
    }

    /// Writes `src` (one `[h, w]` plane) into `scratch.phases` as phase planes ([`fill_phase_planes`]),
    /// `stride` apart. The padding (rows and columns outside the input, and the slack after each plane) is
    /// zeroed when the scratch is first used for this layer and never written after that, so each plane only
    /// writes its input values: filling the padding per row was a `memset` call per row, more time than the
    /// convolution on 14×14 and 7×7 maps. Inlined into [`Plane::run`], so that it is compiled for the same
    /// instruction set.
    #[inline(always)]
    fn fill(&self, g: &ConvGeometry, src: &[f32], scratch: &mut Scratch) {
        if scratch.zeroed_for != Some((*g, *self)) {
            scratch.phases.clear();
            scratch.phases.resize(self.count * self.stride, 0.0);
            scratch.zeroed_for = Some((*g, *self));
        }
        fill_phase_planes(
            src,
            g,
            (self.rows, self.cols),
            self.stride,
            &mut scratch.phases,
            false,
        );
    }
}

/// A task's buffers, reused from one plane to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The phase planes of the input plane ([`PhaseLayout::fill`]).
    phases: Vec<f32>,
    /// The layer whose padding `phases` holds zeros for.
    zeroed_for: Option<(ConvGeometry, PhaseLayout)>,
    /// The output at the phase planes' row length, before the extra columns are dropped.
    sums: Vec<f32>,
    /// The lane kernel's buffers.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    lanes: lanes::Scratch,
}

/// One output plane's inputs.
struct Plane<'a> {
    /// The input channel's `[h, w]` plane.
    src: &'a [f32],
    /// The output channel's `kh * kw` weights.
    taps: &'a [f32],
    /// [`PhaseLayout::tap_offsets`].
    offsets: &'a [usize],
    /// The output channel, for the epilogue.
    channel: usize,
}

impl Plane<'_> {
    /// [`Plane::run`] compiled with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2_fma(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        epilogue: &Epilogue,
        scratch: &mut Scratch,
        dst: &mut [MaybeUninit<f32>],
    ) {
        self.run::<true, false>(g, layout, epilogue, scratch, dst);
    }

    /// [`Plane::run`] compiled with AVX-512F (and AVX2 and FMA, for the tilings it leaves to them).
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run_avx512(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        epilogue: &Epilogue,
        scratch: &mut Scratch,
        dst: &mut [MaybeUninit<f32>],
    ) {
        self.run::<true, true>(g, layout, epilogue, scratch, dst);
    }

    /// [`Plane::sum_all`] with AVX-512 where a tiling's rows are at least 16 values: the blocks taken two at a
    /// time, so that eight 16-lane sums cover the latency of a multiply-add at two per cycle (a flat run of
    /// 128; two rectangles side by side, or one above the other), the odd one alone. Rectangles 8 wide take
    /// the AVX2 version.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn sum_all_avx512(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        phases: &[f32],
        sums: &mut [f32],
    ) {
        use std::arch::x86_64::__m512;
        let (pitch, (down, across)) = layout.blocks(g);
        // SAFETY (every call below): the CPU has AVX-512F, AVX2 and FMA (the caller's contract); the blocks are
        // the tiling's own, which `PhaseLayout::new` sized the buffers for.
        unsafe {
            match layout.tiling {
                Tiling::Flat => {
                    for pair in 0..across / 2 {
                        self.rect::<__m512, 1, { 2 * BLOCK / 16 }>(
                            phases,
                            sums,
                            pitch,
                            pair * 2 * BLOCK,
                        );
                    }
                    if across % 2 == 1 {
                        let origin = (across - 1) * BLOCK;
                        self.rect::<__m512, 1, { BLOCK / 16 }>(phases, sums, pitch, origin);
                    }
                }
                Tiling::Rect { width: 16 } => {
                    const ROWS: usize = BLOCK / 16;
                    for by in 0..down {
                        let row = by * ROWS * pitch;
                        for pair in 0..across / 2 {
                            self.rect::<__m512, ROWS, 2>(phases, sums, pitch, row + pair * 32);
                        }
                        if across % 2 == 1 {
                            let origin = row + (across - 1) * 16;
                            self.rect::<__m512, ROWS, 1>(phases, sums, pitch, origin);
                        }
                    }
                }
                Tiling::Rect { width: 32 } => {
                    const ROWS: usize = BLOCK / 32;
                    for bx in 0..across {
                        for pair in 0..down / 2 {
                            let origin = pair * 2 * ROWS * pitch + bx * 32;
                            self.rect::<__m512, { 2 * ROWS }, 2>(phases, sums, pitch, origin);
                        }
                        if down % 2 == 1 {
                            let origin = (down - 1) * ROWS * pitch + bx * 32;
                            self.rect::<__m512, ROWS, 2>(phases, sums, pitch, origin);
                        }
                    }
                }
                Tiling::Rect { .. } => self.sum_all_avx2(g, layout, phases, sums),
            }
        }
    }

    /// The sums of one rectangle of `R` rows by `V` vectors of `X::LANES` columns at `origin`, rows `pitch`
    /// apart in `phases` and `sums`, held in `R × V` registers over all the taps: [`Plane::sum_taps`] written
    /// with intrinsics, because the compiler kept the generic version's sums in memory, loading and storing
    /// each around every multiply-add (the flat tiling's 64 sums ran at a third of this speed, bound by
    /// store-to-load forwarding). Inlined into [`Plane::sum_all_avx2`] and [`Plane::sum_all_avx512`], whose
    /// instruction sets `X`'s intrinsics need.
    ///
    /// # Safety
    /// The CPU must have `X`'s instruction set, and the caller must be compiled for it.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn rect<X: simd::Vector, const R: usize, const V: usize>(
        &self,
        phases: &[f32],
        sums: &mut [f32],
        pitch: usize,
        origin: usize,
    ) {
        let width = X::LANES * V;
        let reach = self
            .offsets
            .iter()
            .max()
            .map_or(0, |&o| o + (R - 1) * pitch + width);
        assert!(
            origin + reach <= phases.len() && origin + (R - 1) * pitch + width <= sums.len(),
            "depthwise block outside its buffers"
        );
        // SAFETY: the instruction set is there (the caller's contract); every tap's reads, `R` rows of `width`
        // values from `offset + origin`, are inside `phases` (asserted above for the largest offset), and the
        // stores inside `sums` (asserted above).
        unsafe {
            let mut acc = [[X::zero(); V]; R];
            for (&offset, &weight) in self.offsets.iter().zip(self.taps) {
                let w = X::splat(weight);
                let base = phases.as_ptr().add(offset + origin);
                for (r, acc) in acc.iter_mut().enumerate() {
                    for (v, acc) in acc.iter_mut().enumerate() {
                        let x = X::load(base.add(r * pitch + X::LANES * v));
                        *acc = X::fmadd(x, w, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    X::store(
                        sums.as_mut_ptr().add(origin + r * pitch + X::LANES * v),
                        acc,
                    );
                }
            }
        }
    }

    /// [`Plane::rect`] for `blocks.0 * blocks.1` rectangles of `R` rows by `V` vectors, side by side.
    ///
    /// # Safety
    /// As [`Plane::rect`].
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn rects<X: simd::Vector, const R: usize, const V: usize>(
        &self,
        phases: &[f32],
        sums: &mut [f32],
        pitch: usize,
        blocks: (usize, usize),
    ) {
        for by in 0..blocks.0 {
            for bx in 0..blocks.1 {
                let origin = by * R * pitch + bx * X::LANES * V;
                // SAFETY: the caller's contract.
                unsafe { self.rect::<X, R, V>(phases, sums, pitch, origin) };
            }
        }
    }

    /// Sums the taps into `sums` for `blocks.0 * blocks.1` rectangles of `R` rows by `C` columns, rows `pitch`
    /// (at least `C`) apart in both `phases` and `sums`; each rectangle's sums stay in registers over all the
    /// taps. A rectangle reads `R * pitch` values from each tap's start (see [`PhaseLayout::new`]).
    #[inline(always)]
    fn sum_taps<const R: usize, const C: usize>(
        &self,
        phases: &[f32],
        sums: &mut [f32],
        pitch: usize,
        blocks: (usize, usize),
    ) {
        for by in 0..blocks.0 {
            for bx in 0..blocks.1 {
                let origin = by * R * pitch + bx * C;
                let mut acc = [[0f32; C]; R];
                for (&offset, &weight) in self.offsets.iter().zip(self.taps) {
                    // One bounds check per tap; `C <= pitch` is the same for every row, so checked once.
                    let start = offset + origin;
                    let rows = phases[start..start + R * pitch].chunks_exact(pitch);
                    for (acc_row, src_row) in acc.iter_mut().zip(rows) {
                        let src: &[f32; C] = src_row[..C].try_into().expect("C values");
                        for (a, &v) in acc_row.iter_mut().zip(src) {
                            *a += v * weight;
                        }
                    }
                }
                for (r, acc_row) in acc.iter().enumerate() {
                    let start = origin + r * pitch;
                    sums[start..start + C].copy_from_slice(acc_row);
                }
            }
        }
    }

    /// Every block of the plane's sums, in the tiling `layout` chooses (the baseline target's version).
    fn sum_all(&self, g: &ConvGeometry, layout: &PhaseLayout, phases: &[f32], sums: &mut [f32]) {
        let (pitch, blocks) = layout.blocks(g);
        match layout.tiling {
            Tiling::Flat => self.sum_taps::<1, BLOCK>(phases, sums, pitch, blocks),
            Tiling::Rect { width: 8 } => {
                self.sum_taps::<{ BLOCK / 8 }, 8>(phases, sums, pitch, blocks)
            }
            Tiling::Rect { width: 16 } => {
                self.sum_taps::<{ BLOCK / 16 }, 16>(phases, sums, pitch, blocks)
            }
            Tiling::Rect { .. } => self.sum_taps::<{ BLOCK / 32 }, 32>(phases, sums, pitch, blocks),
        }
    }

    /// [`Plane::sum_all`] with AVX2 and FMA: the same blocks, `C / 8` vectors a row.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn sum_all_avx2(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        phases: &[f32],
        sums: &mut [f32],
    ) {
        use std::arch::x86_64::__m256;
        let (pitch, blocks) = layout.blocks(g);
        // SAFETY: the CPU has AVX2 and FMA (the caller's contract), and this function is compiled for them; the
        // blocks are the tiling's own.
        unsafe {
            match layout.tiling {
                Tiling::Flat => self.rects::<__m256, 1, { BLOCK / 8 }>(phases, sums, pitch, blocks),
                Tiling::Rect { width: 8 } => {
                    self.rects::<__m256, { BLOCK / 8 }, 1>(phases, sums, pitch, blocks)
                }
                Tiling::Rect { width: 16 } => {
                    self.rects::<__m256, { BLOCK / 16 }, 2>(phases, sums, pitch, blocks)
                }
                Tiling::Rect { .. } => {
                    self.rects::<__m256, { BLOCK / 32 }, 4>(phases, sums, pitch, blocks)
                }
            }
        }
    }

    /// Computes the plane into `dst` (`[oh, ow]`), using `scratch`; `FUSED` (only inside [`Plane::run_avx2_fma`])
    /// sums with AVX2 and FMA intrinsics, one rounding per multiply-add.
    #[inline(always)]
    fn run<const FUSED: bool, const WIDE: bool>(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        epilogue: &Epilogue,
        scratch: &mut Scratch,
        dst: &mut [MaybeUninit<f32>],
    ) {
        layout.fill(g, self.src, scratch);
        let Scratch { phases, sums, .. } = scratch;
        // Every value the epilogue reads is written below.
        sums.resize(layout.computed, 0.0);
        let ow = g.out.1;
        let cols = layout.cols;
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if FUSED && WIDE {
            // SAFETY: `run::<true, true>` is only called from `run_avx512`, on a CPU with AVX-512F, AVX2 and FMA.
            unsafe { self.sum_all_avx512(g, layout, phases, sums) };
        }
        #[cfg(target_arch = "x86_64")]
        if FUSED && !WIDE {
            // SAFETY: `run::<true, false>` is only called from `run_avx2_fma`, on a CPU with AVX2 and FMA.
            unsafe { self.sum_all_avx2(g, layout, phases, sums) };
        } else if !FUSED {
            self.sum_all(g, layout, phases, sums);
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.sum_all(g, layout, phases, sums);
        let scale = epilogue.scale.as_ref().map_or(1.0, |s| s[self.channel]);
        let shift = epilogue.shift.as_ref().map_or(0.0, |s| s[self.channel]);
        // Every output row: `sums` holds at least `oh` rows of `cols` (see `PhaseLayout::new`).
        debug_assert!(sums.len() >= dst.len() / ow.max(1) * cols);
        for (dst_row, row) in dst.chunks_exact_mut(ow).zip(sums.chunks(cols)) {
            let row = &row[..ow];
            match epilogue.activation {
                Activation::Relu => {
                    for (d, &v) in dst_row.iter_mut().zip(row) {
                        d.write((v * scale + shift).max(0.0));
                    }
                }
                // MobileNet's activation, in the same pass rather than one of its own.
                Activation::Relu6 => {
                    for (d, &v) in dst_row.iter_mut().zip(row) {
                        d.write(super::elementwise::clamp(v * scale + shift, 0.0, 6.0));
                    }
                }
                _ => {
                    for (d, &v) in dst_row.iter_mut().zip(row) {
                        d.write(v * scale + shift);
                    }
                }
            }
        }
        // SAFETY: every value of the plane was written just above.
        let dst = unsafe { written(dst) };
        if !matches!(
            epilogue.activation,
            Activation::Relu | Activation::Relu6 | Activation::Identity
        ) {
            epilogue.activation.apply(dst);
        }
    }
}

/// The vector registers the depthwise sums are held in ([`Plane::rect`]).
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// One vector register of `f32` lanes and the operations the sums need. Each method must be inlined into a
    /// function compiled for its instruction set, and called only on a CPU that has it.
    pub(super) trait Vector: Copy {
        const LANES: usize;
        unsafe fn zero() -> Self;
        unsafe fn splat(v: f32) -> Self;
        unsafe fn load(from: *const f32) -> Self;
        /// `x * w + acc`, rounded once.
        unsafe fn fmadd(x: Self, w: Self, acc: Self) -> Self;
        unsafe fn store(to: *mut f32, v: Self);
    }

    /// `Vector` for a register type from its intrinsics (`lanes` values each).
    macro_rules! vector {
        (
            $(#[$attr:meta])* $ty:ty, $lanes:literal,
            $zero:ident, $splat:ident, $load:ident, $fmadd:ident, $store:ident
        ) => {
            $(#[$attr])*
            impl Vector for $ty {
                const LANES: usize = $lanes;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    unsafe { $zero() }
                }
                #[inline(always)]
                unsafe fn splat(v: f32) -> Self {
                    unsafe { $splat(v) }
                }
                #[inline(always)]
                unsafe fn load(from: *const f32) -> Self {
                    // SAFETY: the caller's contract (`LANES` readable values).
                    unsafe { $load(from) }
                }
                #[inline(always)]
                unsafe fn fmadd(x: Self, w: Self, acc: Self) -> Self {
                    unsafe { $fmadd(x, w, acc) }
                }
                #[inline(always)]
                unsafe fn store(to: *mut f32, v: Self) {
                    // SAFETY: the caller's contract (`LANES` writable values).
                    unsafe { $store(to, v) }
                }
            }
        };
    }

    vector!(
        /// AVX2 and FMA.
        __m256, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps
    );
    vector!(
        /// AVX-512F.
        #[cfg(feature = "avx512")]
        __m512, 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_storeu_ps
    );
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_epilogue_of, conv_geometry, naive_conv, values};
    use super::*;

    /// Every instruction set and tiling against the convolution's definition, over strides, paddings (asymmetric too,
    /// through `out`), dilations, channel multipliers, maps smaller than the kernel and strided images.
    #[test]
    fn depthwise_matches_the_definition_on_every_instruction_set_and_tiling() {
        let mut checked = 0;
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a thread pool");
        // `None`: the lane kernel, where the instruction set has it.
        let tilings = [
            Some(Tiling::Flat),
            Some(Tiling::Rect { width: 8 }),
            Some(Tiling::Rect { width: 16 }),
            Some(Tiling::Rect { width: 32 }),
            None,
        ];
        for (isa, tiling) in Isa::available()
            .into_iter()
            .flat_map(|isa| tilings.map(|t| (isa, t)))
        {
            for (kh, kw) in [(1, 1), (3, 3), (5, 5), (3, 2)] {
                for stride in [(1, 1), (2, 2), (1, 2), (3, 1), (2, 3)] {
                    for dilation in [(1, 1), (2, 2)] {
                        for (pt, pb, pl, pr) in
                            [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 1, 2, 0)]
                        {
                            for (c_in, multiplier, h, w) in
                                [(3, 1, 7, 9), (2, 2, 2, 3), (4, 3, 1, 1)]
                            {
                                let c_out = c_in * multiplier;
                                let Some(g) = conv_geometry(
                                    (c_in, h, w),
                                    (c_out, c_in),
                                    (kh, kw),
                                    stride,
                                    (pt, pb, pl, pr),
                                    dilation,
                                ) else {
                                    continue;
                                };
                                let Some(method) = test_method(isa, tiling, &g) else {
                                    continue;
                                };
                                let batch = 2;
                                // Images one value apart more than their size, as for a channel slice.
                                let image_stride = c_in * h * w + 1;
                                let x = values(batch * image_stride, checked as u32);
                                let weight = values(c_out * kh * kw, checked as u32 + 1);
                                let dense: Vec<f32> = (0..batch)
                                    .flat_map(|n| {
                                        x[n * image_stride..n * image_stride + c_in * h * w]
                                            .iter()
                                            .copied()
                                    })
                                    .collect();
                                let expected = naive_conv(&dense, batch, &weight, &g);
                                let epilogue = Epilogue {
                                    scale: Some(values(c_out, 7)),
                                    shift: Some(values(c_out, 8)),
                                    activation: [
                                        Activation::Relu,
                                        Activation::Identity,
                                        Activation::Silu,
                                        Activation::Relu6,
                                    ][checked % 4],
                                };
                                let run = || {
                                    conv2d_for(
                                        isa,
                                        method,
                                        &x,
                                        batch,
                                        image_stride,
                                        &weight,
                                        &g,
                                        &epilogue,
                                    )
                                };
                                let got = run();
                                // The same planes on the calling thread, as with one thread.
                                assert_eq!(one_thread.install(run), got);
                                let plane = g.out.0 * g.out.1;
                                let case = (isa, tiling, g);
                                assert_epilogue_of(
                                    &got,
                                    &expected,
                                    (c_out, plane),
                                    &epilogue,
                                    &case,
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} geometries checked");
    }

    /// The planes with `tiling`, or for `None` the lanes, if `isa` has them and they take `g`.
    fn test_method(isa: Isa, tiling: Option<Tiling>, g: &ConvGeometry) -> Option<Method> {
        #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
        let _ = isa;
        match tiling {
            Some(tiling) => Some(Method::Planes(PhaseLayout::new(g, tiling))),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            None if isa == Isa::Avx512 && lanes::applies(g) => Some(Method::Lanes),
            None => None,
        }
    }
}
