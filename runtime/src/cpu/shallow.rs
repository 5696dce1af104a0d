//! A convolution over few input values per output (an image's three channels under a 3×3 window: 27), computed
//! directly with sixteen output channels in the lanes of an AVX-512 register.
//!
//! As a matrix product such a layer is `[c_out, 27] x [27, oh * ow]`: each output gets 27 multiply-adds, so the
//! patch matrix the product needs (as large as the output, gathered at stride 2 from three planes) and the
//! product's own per-tile work weigh as much as the arithmetic. MobileNet-V2's stem (3 → 32 channels, 3×3 at
//! stride 2 on 224×224) ran at 28 GMAC/s inside the network that way. Here, a few output rows at a time:
//!
//! 1. the input rows their windows reach are copied into a padded band (`[c_in, rows, columns]`, zeros
//!    around), small enough for the first-level cache;
//! 2. each output position's sums are `c_out / 16` vectors, eight positions at a time: for each of the
//!    `c_in * kh * kw` taps, the input value broadcast to every lane times the tap's weights of sixteen output
//!    channels; then the folded batch norm and a clamp per vector;
//! 3. each output row's sums, `[position][channel]`, are transposed sixteen by sixteen in registers into the
//!    output planes.

use std::arch::x86_64::*;
use std::cell::Cell;

use rayon::prelude::*;

use super::avx512::{self, lane_mask, transpose, Lanes, LANES};
use super::{ConvGeometry, Epilogue, Fresh, Isa, OutputRows};

/// The most taps (`c_in * kh * kw`) the kernel takes: past that the product's per-tile work is small beside
/// the arithmetic. ResNet-50's 7×7 stem (147 taps, 64 channels) took 2.37 ms here against 1.34 by the product.
const MAX_TAPS: usize = 32;

/// The most output channels: four registers of sums a position.
const MAX_CHANNELS: usize = 4 * LANES;

/// Output rows computed per band: their input rows (15 for a 3×3 window at stride 2, three channels of 226)
/// stay in the first-level cache.
const BAND_ROWS: usize = 7;

/// Whether [`conv2d`] computes a layer of geometry `g` with the loops for `isa`: an input with channels and
/// values (the product takes the others), a window wider than one value (a 1×1 convolution is a product
/// without patches), one group, at most [`MAX_TAPS`] taps and
/// [`MAX_CHANNELS`] output channels, on an AVX-512 CPU.
pub(crate) fn applies(g: &ConvGeometry, isa: Isa) -> bool {
    isa == Isa::Avx512
        && g.c_in > 0
        && g.h * g.w > 0
        && g.kernel.0 * g.kernel.1 > 1
        && g.groups == 1
        && g.c_in * g.kernel.0 * g.kernel.1 <= MAX_TAPS
        && (1..=MAX_CHANNELS).contains(&g.c_out)
}

thread_local! {
    /// Each thread's padded band and row of sums, reused across calls (taken and put back).
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

/// One thread's buffers.
#[derive(Default)]
struct Buffers {
    /// The padded input band, `[c_in, rows, columns]`.
    band: Vec<f32>,
    /// One output row's sums, `[position][channel]`, 64-byte aligned.
    sums: Vec<Lanes>,
}

/// The convolution of `batch` images: `x` holds image `n` at `x[n * image_stride..]` as a contiguous
/// `[c_in, h, w]` block, `weight` is the contiguous `[c_out, c_in, kh, kw]` kernel. Returns the contiguous
/// `[batch, c_out, oh, ow]` output with `epilogue` applied. Needs [`applies`] for [`Isa::detect`].
pub(crate) fn conv2d(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    assert!(
        applies(g, Isa::detect()),
        "not a shallow convolution: {g:?}"
    );
    let taps = g.c_in * g.kernel.0 * g.kernel.1;
    assert!(weight.len() >= g.c_out * taps, "weights too short");
    let (oh, ow) = g.out;
    let plane_out = oh * ow;
    let image_in = g.c_in * g.h * g.w;
    assert!(
        batch == 0 || x.len() >= (batch - 1) * image_stride + image_in,
        "input too short"
    );
    let mut out = Fresh::new(batch * g.c_out * plane_out);
    if plane_out == 0 || batch == 0 {
        // SAFETY: there is no value to write.
        return unsafe { out.assume_written() };
    }
    let lanes = tap_lanes(weight, g);
    // Tasks: bands of output rows of each image, a thread's share of an image's rows being consecutive bands.
    let bands = oh.div_ceil(BAND_ROWS);
    let output = OutputRows {
        ptr: out.values().as_mut_ptr().cast::<f32>(),
        columns: plane_out,
    };
    let task = |task: usize| {
        let (n, band) = (task / bands, task % bands);
        let rows = band * BAND_ROWS..((band + 1) * BAND_ROWS).min(oh);
        let image = &x[n * image_stride..][..image_in];
        let mut buffers = BUFFERS.take();
        // The whole of `output` (a closure would capture its pointer field alone, which is not `Sync`).
        let output = &output;
        // SAFETY: image `n`'s output lies inside `out`; this task writes the columns of its own rows only.
        let dst = unsafe { output.ptr.add(n * g.c_out * plane_out) };
        // SAFETY: `applies` (asserted above) holds only on an AVX-512 CPU; `dst` is the image's output, whose
        // rows `rows` this task alone writes.
        unsafe { band_avx512(image, &lanes, g, epilogue, rows.clone(), &mut buffers, dst) };
        BUFFERS.set(buffers);
        if avx512::after(epilogue.activation) {
            for c in 0..g.c_out {
                // SAFETY: the band's rows of channel `c`, inside the image's output, written just above and by
                // this task alone.
                let values = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.add(c * plane_out + rows.start * ow),
                        rows.len() * ow,
                    )
                };
                epilogue.activation.apply(values);
            }
        }
    };
    if rayon::current_num_threads() == 1 {
        (0..batch * bands).for_each(task);
    } else {
        (0..batch * bands).into_par_iter().for_each(task);
    }
    // SAFETY: the bands of every image cover its rows `0..oh`, each writing every channel's columns of them.
    unsafe { out.assume_written() }
}

/// Each tap's weights of every output channel, `[tap][c_out rounded up to 16]`, zeros past `c_out`.
fn tap_lanes(weight: &[f32], g: &ConvGeometry) -> Vec<Lanes> {
    let taps = g.c_in * g.kernel.0 * g.kernel.1;
    let vectors = g.c_out.div_ceil(LANES);
    let mut lanes = vec![Lanes::default(); taps * vectors];
    for (c, filter) in weight.chunks_exact(taps).take(g.c_out).enumerate() {
        for (t, &w) in filter.iter().enumerate() {
            lanes[t * vectors + c / LANES].0[c % LANES] = w;
        }
    }
    lanes
}

/// Output rows `rows` of one image into `dst` (its `[c_out, oh, ow]` output), [`conv2d`]'s three steps, the
/// sums in `c_out / 16` registers a position.
///
/// # Safety
/// AVX-512F; `dst` writable for the image's output, rows `rows` of it by this call alone.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn band_avx512(
    x: &[f32],
    lanes: &[Lanes],
    g: &ConvGeometry,
    epilogue: &Epilogue,
    rows: std::ops::Range<usize>,
    buffers: &mut Buffers,
    dst: *mut f32,
) {
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (pt, pl) = g.pad_before;
    let (oh, ow) = g.out;
    // 1. The padded band: band row `r` is input row `rows.start * sh + r - pt`, column `c` input column
    // `c - pl`; zeros outside the input.
    let band_rows = (rows.len() - 1) * sh + (kh - 1) * dh + 1;
    let cols = (ow - 1) * sw + (kw - 1) * dw + 1;
    let plane = band_rows * cols;
    let band = super::scratch(&mut buffers.band, g.c_in * plane);
    let top = rows.start * sh;
    for (channel, src) in band.chunks_exact_mut(plane).zip(x.chunks_exact(g.h * g.w)) {
        for (r, row) in channel.chunks_exact_mut(cols).enumerate() {
            let y = (top + r).wrapping_sub(pt);
            if y >= g.h {
                row.fill(0.0);
                continue;
            }
            let src = &src[y * g.w..(y + 1) * g.w];
            let left = pl.min(cols);
            row[..left].fill(0.0);
            let copied = (cols - left).min(g.w);
            row[left..left + copied].copy_from_slice(&src[..copied]);
            row[left + copied..].fill(0.0);
        }
    }
    // Each tap's offset in the band from its window's first value.
    let mut offsets = [0; MAX_TAPS];
    let taps = g.c_in * kh * kw;
    for (t, offset) in offsets.iter_mut().take(taps).enumerate() {
        let (c, i, j) = (t / (kh * kw), t / kw % kh, t % kw);
        *offset = c * plane + i * dh * cols + j * dw;
    }
    let vectors = g.c_out.div_ceil(LANES);
    // A row's blocks of positions, and `LANES` positions to spare for the transposes' reads.
    let needed = (ow.next_multiple_of(BLOCK) + LANES) * vectors;
    let sums = &mut buffers.sums;
    if sums.len() < needed {
        sums.resize(needed, Lanes::default());
    }
    let affine: [(__m512, __m512); MAX_CHANNELS / LANES] = std::array::from_fn(|v| {
        let first = (v * LANES).min(g.c_out);
        avx512::affine(epilogue, first, lane_mask(g.c_out - first))
    });
    let clamp = avx512::Clamp::of(epilogue.activation);
    let row_sums = Row {
        band: band.as_ptr(),
        lanes: lanes.as_ptr().cast::<f32>(),
        offsets: &offsets[..taps],
        affine,
        clamp,
    };
    for (r, oy) in rows.enumerate() {
        // 2. The row's sums, eight positions at a time; the last block repeats the last position.
        let sums = sums.as_mut_ptr().cast::<f32>();
        for x0 in (0..ow).step_by(BLOCK) {
            let start: [usize; BLOCK] =
                std::array::from_fn(|u| r * sh * cols + (x0 + u).min(ow - 1) * sw);
            let at = sums.add(x0 * vectors * LANES);
            // SAFETY: each window lies inside the band; `BLOCK` positions of `vectors` vectors from `x0` are
            // inside `sums` (sized above).
            match vectors {
                1 => row_sums.block::<1>(&start, at),
                2 => row_sums.block::<2>(&start, at),
                3 => row_sums.block::<3>(&start, at),
                _ => row_sums.block::<4>(&start, at),
            }
        }
        // 3. The row's sums transposed into the output planes; the last rows of a transpose read spare sums,
        // which the stores' mask drops.
        for x0 in (0..ow).step_by(LANES) {
            let mask = lane_mask(ow - x0);
            for v in 0..vectors {
                let r: [__m512; LANES] = std::array::from_fn(|j| {
                    // SAFETY: position `x0 + j < ow + LANES`, inside `sums`; aligned.
                    unsafe { _mm512_load_ps(sums.add(((x0 + j) * vectors + v) * LANES)) }
                });
                for (c, row) in transpose(r).into_iter().enumerate() {
                    let channel = v * LANES + c;
                    let mask = if channel < g.c_out { mask } else { 0 };
                    let at = dst.wrapping_add(channel * oh * ow + oy * ow + x0);
                    // SAFETY: for a channel below `c_out`, columns `x0..x0 + count` of row `oy` of its plane,
                    // inside the image's output; past `c_out` the mask stores nothing.
                    unsafe { _mm512_mask_storeu_ps(at, mask, row) };
                }
            }
        }
    }
}

/// Output positions whose sums are kept in registers together.
const BLOCK: usize = 8;

/// What one output row's sums read.
struct Row<'a> {
    /// The padded input band.
    band: *const f32,
    /// [`tap_lanes`].
    lanes: *const f32,
    /// Each tap's offset in the band from its window's first value.
    offsets: &'a [usize],
    /// Each register of channels' scale and shift.
    affine: [(__m512, __m512); MAX_CHANNELS / LANES],
    /// The clamp of ReLU or ReLU6, if the activation is one.
    clamp: avx512::Clamp,
}

impl Row<'_> {
    /// `BLOCK` positions whose windows start at `start` in the band, their `V` vectors of sums into `at`
    /// (`[position][V × 16]`).
    ///
    /// # Safety
    /// AVX-512F; the windows inside the band; `BLOCK * V` aligned vectors writable at `at`.
    #[inline(always)]
    unsafe fn block<const V: usize>(&self, start: &[usize; BLOCK], at: *mut f32) {
        // SAFETY (of the intrinsics and accesses): only inlined into `band_avx512`, compiled for AVX-512F; the
        // accesses are inside the buffers (the caller's contract).
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; BLOCK];
            for (t, &offset) in self.offsets.iter().enumerate() {
                let w: [__m512; V] =
                    std::array::from_fn(|v| _mm512_load_ps(self.lanes.add((t * V + v) * LANES)));
                for (acc, &start) in acc.iter_mut().zip(start) {
                    let x = _mm512_set1_ps(*self.band.add(start + offset));
                    for (acc, &w) in acc.iter_mut().zip(&w) {
                        *acc = _mm512_fmadd_ps(x, w, *acc);
                    }
                }
            }
            for (u, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    let (scale, shift) = self.affine[v];
                    let y = self.clamp.apply(_mm512_fmadd_ps(acc, scale, shift));
                    _mm512_store_ps(at.add((u * V + v) * LANES), y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_epilogue_of, conv_geometry, naive_conv, values};
    use super::super::Activation;
    use super::*;

    /// Inputs without channels or values go to the product (the kernel's band copy and tap table need both).
    #[test]
    fn empty_inputs_are_left_to_the_product() {
        let g = |c_in, h, w| ConvGeometry {
            c_in,
            h,
            w,
            c_out: 8,
            kernel: (2, 2),
            stride: (1, 1),
            pad_before: (1, 1),
            dilation: (1, 1),
            groups: 1,
            out: (h + 1, w + 1),
        };
        assert!(applies(&g(3, 4, 4), Isa::Avx512));
        assert!(!applies(&g(0, 4, 4), Isa::Avx512));
        assert!(!applies(&g(3, 0, 4), Isa::Avx512));
        assert!(!applies(&g(3, 4, 0), Isa::Avx512));
    }

    /// The kernel against the convolution's definition: one to four registers of output channels (and counts
    /// between), one to three input channels, windows up to 32 taps, strides, dilations, uneven paddings,
    /// maps narrower and wider than sixteen columns and taller than a band, batches on one and two threads.
    #[test]
    // `u32::is_multiple_of` is newer than the workspace's `rust-version`.
    #[allow(clippy::manual_is_multiple_of)]
    fn shallow_matches_the_definition() {
        if Isa::detect() != Isa::Avx512 {
            eprintln!("skipped: the shallow kernel needs AVX-512");
            return;
        }
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a thread pool");
        let mut checked = 0u32;
        for c_out in [1, 16, 24, 33, 64] {
            for c_in in [1, 3] {
                for (kh, kw) in [(3, 3), (2, 2), (5, 2), (3, 1)] {
                    for (h, w) in [(1, 1), (9, 20), (17, 7)] {
                        for (stride, dilation) in
                            [((2, 2), (1, 1)), ((1, 1), (1, 1)), ((1, 3), (2, 2))]
                        {
                            for (pt, pb, pl, pr) in [(1, 1, 1, 1), (0, 0, 0, 0), (2, 0, 0, 3)] {
                                let Some(g) = conv_geometry(
                                    (c_in, h, w),
                                    (c_out, 1),
                                    (kh, kw),
                                    stride,
                                    (pt, pb, pl, pr),
                                    dilation,
                                ) else {
                                    continue;
                                };
                                let batch = 2;
                                let image_stride = c_in * h * w + 5;
                                let x = values(batch * image_stride, checked);
                                let dense: Vec<f32> = (0..batch)
                                    .flat_map(|n| {
                                        x[n * image_stride..][..c_in * h * w].iter().copied()
                                    })
                                    .collect();
                                let weight = values(c_out * c_in * kh * kw, checked + 1);
                                let epilogue = Epilogue {
                                    scale: (checked % 3 != 0).then(|| values(c_out, checked + 2)),
                                    shift: (checked % 4 != 0).then(|| values(c_out, checked + 3)),
                                    activation: [
                                        Activation::Relu6,
                                        Activation::Identity,
                                        Activation::Silu,
                                        Activation::Relu,
                                    ][checked as usize % 4],
                                };
                                let run =
                                    || conv2d(&x, batch, image_stride, &weight, &g, &epilogue);
                                let got = run();
                                assert_eq!(two.install(run), got, "{g:?}: two threads");
                                let expected = naive_conv(&dense, batch, &weight, &g);
                                let plane = g.out.0 * g.out.1;
                                assert_epilogue_of(&got, &expected, (c_out, plane), &epilogue, &g);
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 300, "only {checked} geometries checked");
    }
}
