//! Depthwise convolution with sixteen channels side by side in the lanes of an AVX-512 register, for small maps.
//!
//! The plane-at-a-time kernel of [`super`] pays, for every channel, for copying its plane into phase planes,
//! for setting up its blocks and for the epilogue's row loop. On MobileNet-V2's 960 channels of 7×7 that is
//! most of the time: a 3×3 window is 49 × 9 multiply-adds a channel, three or four vectors of work. Here the
//! channels are taken sixteen at a time and turned so that each lane of a vector is one channel:
//!
//! 1. The sixteen input planes are transposed, sixteen columns at a time in registers, into a buffer of
//!    `[row][column][16 channels]` with the padding already around it: the padding's zeros are written when
//!    the buffer is first used for a layer and never overwritten, as only the input's own positions are.
//! 2. Each output position is the sum over the window's taps of one vector of that buffer times the tap's
//!    sixteen weights, eight positions at a time in row-major order (their sums held in registers), then the
//!    folded batch norm and a clamp applied to the vector. Stride, padding and dilation only change which vector a tap
//!    reads: there are no phases.
//! 3. The sums, `[position][16 channels]`, are transposed back into the sixteen output planes.
//!
//! Both transposes are in-register 16 × 16 shuffles; everything else is a full-width load or multiply-add.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::super::avx512::{self, Lanes, LANES};
use super::super::{written, ConvGeometry, Epilogue};

/// The most values of the padded input map the kernel takes (64 × 64: MobileNet-V2's 56×56 layers with their
/// padding, and the bands of its 112-wide maps): its buffer, sixteen channels deep, and the sums' then fill at
/// most 512 KiB, half a core's L2. On whole 112×112 maps the lanes lost at stride 1 (32 channels: 0.160 against
/// 0.146 ms by planes) and won at stride 2 (96 channels: 0.187 against 0.245); kept to one bound.
const MAX_POSITIONS: usize = 64 * 64;

/// Output positions whose sums are kept in registers together: eight independent chains of multiply-adds
/// (one chain per position was bound by the multiply-add's latency, four cycles a tap).
const BLOCK: usize = 8;

/// Whether [`block`] computes this layer: one output channel per input channel (a depthwise convolution
/// without channel multiplier) on a map whose padded input has at most [`MAX_POSITIONS`] values.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    let (rows, cols) = reach(g);
    g.groups == g.c_in && g.c_out == g.c_in && rows.saturating_mul(cols) <= MAX_POSITIONS
}

/// The padded input the outputs read: rows and columns from the first padding row and column through the last
/// value the last output's window reaches.
fn reach(g: &ConvGeometry) -> (usize, usize) {
    let extent = |out: usize, k: usize, s: usize, d: usize| {
        if out == 0 {
            0
        } else {
            (out - 1) * s + (k - 1) * d + 1
        }
    };
    (
        extent(g.out.0, g.kernel.0, g.stride.0, g.dilation.0),
        extent(g.out.1, g.kernel.1, g.stride.1, g.dilation.1),
    )
}

/// A task's buffers, reused from one block of channels to the next, and what they hold for every block of a
/// layer.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The transposed, padded input: [`reach`] rows by columns, and `LANES` positions to spare.
    input: Vec<Lanes>,
    /// The layer whose padding `input` holds zeros for, and whose `offsets` and `starts` these are.
    zeroed_for: Option<ConvGeometry>,
    /// The output positions' sums, `oh * ow` rounded up to a multiple of [`BLOCK`], and `LANES` to spare.
    output: Vec<Lanes>,
    /// Each tap's sixteen weights, `kh * kw` and `LANES` to spare.
    taps: Vec<Lanes>,
    /// Each tap's offset from its window's first value in `input`, in `f32`s.
    offsets: Vec<usize>,
    /// Each output position's window's first value in `input`, in `f32`s; the positions after the last, up to
    /// a multiple of [`BLOCK`], repeat it.
    starts: Vec<usize>,
}

impl Scratch {
    /// Sizes the buffers for `g`, zeroes the input buffer and works out the offsets.
    fn prepare(&mut self, g: &ConvGeometry) {
        let (rows, cols) = reach(g);
        let (kh, kw) = g.kernel;
        let (oh, ow) = g.out;
        let (sh, sw) = g.stride;
        let (dh, dw) = g.dilation;
        self.input.clear();
        self.input.resize(rows * cols + LANES, Lanes::default());
        let positions = oh * ow;
        let blocks = positions.div_ceil(BLOCK) * BLOCK;
        self.output.resize(blocks + LANES, Lanes::default());
        self.taps.resize(kh * kw + LANES, Lanes::default());
        self.offsets.clear();
        self.offsets
            .extend((0..kh).flat_map(|i| (0..kw).map(move |j| (i * dh * cols + j * dw) * LANES)));
        self.starts.clear();
        self.starts.extend((0..blocks).map(|p| {
            let p = p.min(positions.saturating_sub(1));
            ((p / ow.max(1)) * sh * cols + (p % ow.max(1)) * sw) * LANES
        }));
        self.zeroed_for = Some(*g);
    }
}

/// Output channels `first..first + 16` (fewer at the end) into `dst`, their `[oh, ow]` planes one after the
/// other: input channel `c` is the `[h, w]` plane at `x[c * plane_stride..]`.
///
/// # Safety
/// The CPU must support AVX-512F; [`applies`] must hold for `g`.
pub(super) unsafe fn block(
    (x, plane_stride): (&[f32], usize),
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    first: usize,
    scratch: &mut Scratch,
    dst: &mut [MaybeUninit<f32>],
) {
    debug_assert!(applies(g));
    let channels = (g.c_out - first).min(LANES);
    let plane_out = g.out.0 * g.out.1;
    let taps = g.kernel.0 * g.kernel.1;
    assert!(
        dst.len() >= channels * plane_out,
        "depthwise output too short"
    );
    assert!(
        weight.len() >= (first + channels) * taps,
        "depthwise weights too short"
    );
    assert!(
        channels == 0 || x.len() >= (first + channels - 1) * plane_stride + g.h * g.w,
        "depthwise input too short"
    );
    if plane_out == 0 || channels == 0 {
        return;
    }
    // SAFETY: the caller's contract (AVX-512F); the bounds the kernel relies on are asserted above.
    unsafe {
        block_avx512(
            x,
            plane_stride,
            weight,
            g,
            epilogue,
            first,
            channels,
            scratch,
            dst,
        )
    };
    let dst = &mut dst[..channels * plane_out];
    // SAFETY: `block_avx512` wrote every value of the `channels` planes.
    let dst = unsafe { written(dst) };
    if avx512::after(epilogue.activation) {
        epilogue.activation.apply(dst);
    }
}

/// [`block`]'s three steps. `channels` (1 to 16) lanes are real; the others compute zeros that are not stored.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn block_avx512(
    x: &[f32],
    plane_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    first: usize,
    channels: usize,
    scratch: &mut Scratch,
    dst: &mut [MaybeUninit<f32>],
) {
    let (rows, cols) = reach(g);
    let (kh, kw) = g.kernel;
    let taps = kh * kw;
    let positions = g.out.0 * g.out.1;
    let channel_mask = avx512::lane_mask(channels);
    if scratch.zeroed_for != Some(*g) {
        scratch.prepare(g);
    }
    let Scratch {
        input,
        output,
        taps: tap_lanes,
        offsets,
        starts,
        ..
    } = scratch;
    // Channel `c`'s lanes load from its plane; the others load nothing (an all-zero mask reads no memory, so
    // their address is never used).
    let plane = |c: usize| x.as_ptr().wrapping_add((first + c) * plane_stride);
    let channel_lanes = |c: usize, mask: __mmask16| if c < channels { mask } else { 0 };

    // 1. The input planes, transposed into the padded buffer: input row `y` is buffer row `y + pad_top`. A
    // row's last columns' transpose also yields zero vectors for the positions after them, stored too: those
    // are padding, or values of the next rows written after (the buffer has `LANES` positions to spare).
    let (pt, pl) = g.pad_before;
    let in_rows = g.h.min(rows.saturating_sub(pt));
    let in_cols = g.w.min(cols.saturating_sub(pl));
    let input = input.as_mut_ptr().cast::<f32>();
    for y in 0..in_rows {
        for x0 in (0..in_cols).step_by(LANES) {
            let mask = avx512::lane_mask(in_cols - x0);
            let r: [__m512; LANES] = std::array::from_fn(|c| {
                // SAFETY: columns `x0..x0 + count` of row `y < h` of plane `first + c`, inside `x` (asserted in
                // `block`); the other lanes, and all of them past `channels`, are not read.
                unsafe {
                    _mm512_maskz_loadu_ps(
                        channel_lanes(c, mask),
                        plane(c).wrapping_add(y * g.w + x0),
                    )
                }
            });
            let row = (y + pt) * cols + pl + x0;
            for (j, v) in avx512::transpose(r).into_iter().enumerate() {
                // SAFETY: `row + j < rows * cols + LANES`, the buffer's length; `Lanes` are 64-byte aligned.
                unsafe { _mm512_store_ps(input.add((row + j) * LANES), v) };
            }
        }
    }

    // 2. The sums, with the epilogue's scale, shift and clamp. Each tap's sixteen weights, by the same
    // transpose from the channels' `[kh * kw]` rows.
    let tap_lanes = tap_lanes.as_mut_ptr().cast::<f32>();
    for t0 in (0..taps).step_by(LANES) {
        let mask = avx512::lane_mask(taps - t0);
        let r: [__m512; LANES] = std::array::from_fn(|c| {
            let at = weight.as_ptr().wrapping_add((first + c) * taps + t0);
            // SAFETY: taps `t0..t0 + count` of channel `first + c < first + channels`, inside `weight`
            // (asserted in `block`).
            unsafe { _mm512_maskz_loadu_ps(channel_lanes(c, mask), at) }
        });
        for (j, v) in avx512::transpose(r).into_iter().enumerate() {
            // SAFETY: `t0 + j < taps + LANES`, the buffer's length; aligned.
            unsafe { _mm512_store_ps(tap_lanes.add((t0 + j) * LANES), v) };
        }
    }
    let sums = Sums {
        input,
        taps: tap_lanes,
        offsets,
        affine: avx512::affine(epilogue, first, channel_mask),
        clamp: avx512::Clamp::of(epilogue.activation),
    };
    let output = output.as_mut_ptr().cast::<f32>();
    for (block, start) in starts.chunks_exact(BLOCK).enumerate() {
        let start: &[usize; BLOCK] = start.try_into().expect("a block of starts");
        // SAFETY: every start is a window inside the padded input (`Scratch::prepare`); the block's sums go to
        // positions below the output buffer's length, a multiple of `BLOCK`.
        unsafe { sums.block(start, output.add(block * BLOCK * LANES)) };
    }

    // 3. The sums transposed into the output planes. The last rows of the transpose read the output buffer's
    // spare positions, whose values go nowhere (the stores' mask).
    let dst = dst.as_mut_ptr().cast::<f32>();
    for p0 in (0..positions).step_by(LANES) {
        let mask = avx512::lane_mask(positions - p0);
        // SAFETY: `p0 + j < positions + LANES`, inside the output buffer; aligned.
        let r: [__m512; LANES] =
            std::array::from_fn(|j| unsafe { _mm512_load_ps(output.add((p0 + j) * LANES)) });
        for (c, v) in avx512::transpose(r).into_iter().enumerate() {
            let at = dst.wrapping_add(c * positions + p0);
            // SAFETY: for `c < channels`, `c * positions + p0 + count <= channels * positions <= dst.len()`
            // (asserted in `block`); past `channels` the mask stores nothing.
            unsafe { _mm512_mask_storeu_ps(at, channel_lanes(c, mask), v) };
        }
    }
}

/// What every output position's sum reads.
struct Sums<'a> {
    /// The transposed, padded input.
    input: *const f32,
    /// Each tap's sixteen weights.
    taps: *const f32,
    /// Each tap's offset in `input` from the window's first value, in `f32`s.
    offsets: &'a [usize],
    /// The epilogue's per-channel scale and shift.
    affine: (__m512, __m512),
    /// The clamp of ReLU or ReLU6, if the activation is one.
    clamp: avx512::Clamp,
}

impl Sums<'_> {
    /// `BLOCK` consecutive output positions into `output`, their windows starting at `start` in the input:
    /// their sums in as many registers across the window's taps, independent chains of multiply-adds.
    ///
    /// # Safety
    /// AVX-512F; each window inside the padded input, `BLOCK` vectors writable at `output`, all 64-byte
    /// aligned.
    #[inline(always)]
    unsafe fn block(&self, start: &[usize; BLOCK], output: *mut f32) {
        // SAFETY (of the intrinsics and accesses): only inlined into `block_avx512`, compiled for AVX-512F; the
        // accesses are inside the buffers (the caller's contract) and aligned.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); BLOCK];
            for (t, &offset) in self.offsets.iter().enumerate() {
                let w = _mm512_load_ps(self.taps.add(t * LANES));
                for (acc, &start) in acc.iter_mut().zip(start) {
                    let v = _mm512_load_ps(self.input.add(start + offset));
                    *acc = _mm512_fmadd_ps(v, w, *acc);
                }
            }
            let (scale, shift) = self.affine;
            for (u, acc) in acc.into_iter().enumerate() {
                let v = self.clamp.apply(_mm512_fmadd_ps(acc, scale, shift));
                _mm512_store_ps(output.add(u * LANES), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{assert_epilogue_of, conv_geometry, naive_conv, values};
    use super::super::super::{Activation, Isa};
    use super::*;

    /// The lane kernel against the convolution's definition: channel counts around the sixteen lanes, maps
    /// narrower and wider than sixteen columns, windows of more than sixteen taps, strides, dilations, uneven
    /// paddings, planes further apart than their size (a band of a larger map), with and without a folded
    /// batch norm; one scratch throughout, so that a layer also runs after others and again after itself.
    #[test]
    fn lanes_match_the_definition() {
        if !Isa::available().contains(&Isa::Avx512) {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        let mut scratch = Scratch::default();
        let mut checked = 0;
        for channels in [1, 5, 16, 17, 40] {
            for (h, w) in [(1, 1), (7, 7), (5, 37), (14, 14), (3, 16)] {
                for (kh, kw) in [(1, 1), (3, 3), (5, 5), (3, 2), (7, 7)] {
                    for (stride, dilation) in [
                        ((1, 1), (1, 1)),
                        ((2, 2), (1, 1)),
                        ((1, 2), (2, 1)),
                        ((3, 1), (2, 2)),
                    ] {
                        for (pt, pb, pl, pr) in
                            [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 1, 3, 0)]
                        {
                            let Some(g) = conv_geometry(
                                (channels, h, w),
                                (channels, channels),
                                (kh, kw),
                                stride,
                                (pt, pb, pl, pr),
                                dilation,
                            ) else {
                                continue;
                            };
                            assert!(applies(&g));
                            // Planes three values further apart than their size, as in a band.
                            let plane_stride = h * w + 3;
                            let x = values(channels * plane_stride, checked);
                            let dense: Vec<f32> = (0..channels)
                                .flat_map(|c| {
                                    x[c * plane_stride..c * plane_stride + h * w]
                                        .iter()
                                        .copied()
                                })
                                .collect();
                            let weight = values(channels * kh * kw, checked + 1);
                            let epilogue = Epilogue {
                                scale: (checked % 3 != 0).then(|| values(channels, checked + 2)),
                                shift: (checked % 5 != 0).then(|| values(channels, checked + 3)),
                                activation: [
                                    Activation::Relu6,
                                    Activation::Identity,
                                    Activation::Silu,
                                    Activation::Relu,
                                ][checked as usize % 4],
                            };
                            let plane_out = g.out.0 * g.out.1;
                            let mut got = vec![MaybeUninit::new(f32::NAN); channels * plane_out];
                            for first in (0..channels).step_by(LANES) {
                                // SAFETY: AVX-512 (checked above); `applies`.
                                unsafe {
                                    block(
                                        (&x, plane_stride),
                                        &weight,
                                        &g,
                                        &epilogue,
                                        first,
                                        &mut scratch,
                                        &mut got[first * plane_out..],
                                    )
                                };
                            }
                            // SAFETY: `MaybeUninit::new` above.
                            let got: Vec<f32> = got
                                .into_iter()
                                .map(|v| unsafe { v.assume_init() })
                                .collect();
                            let expected = naive_conv(&dense, 1, &weight, &g);
                            let shape = (channels, plane_out);
                            assert_epilogue_of(&got, &expected, shape, &epilogue, &g);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "only {checked} geometries checked");
    }
}
