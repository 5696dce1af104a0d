//! A convolution and the max pool right after it, computed a band of the pool's output rows at a time:
//! GoogLeNet's and ResNet's 7×7 stride-2 stems and their 3×3 stride-2 pools.
//!
//! One after the other, the convolution writes its whole output (64 channels of 112×112, 3.2 MB) and the pool
//! reads it back: past the core's second-level cache, so both passes wait on memory. In the network the
//! GoogLeNet pool took 0.5 ms at one thread against 0.12 ms with its input in cache. Here, for each band of
//! pooled rows:
//!
//! 1. the convolution rows its windows reach are computed into a buffer of `[c_out, rows, ow]` that stays in
//!    cache (the patches and product of [`super::conv2d_into`], a block of columns at a time); the rows the
//!    previous band computed that this one reads too (one, for a 3×3 window at stride 2) move to the buffer's
//!    top rather than being computed again;
//! 2. the pool runs on that buffer as a map of those rows ([`super::pool_plane`]), its padding above only
//!    where the band meets the map's top, writing the band's rows of the output.
//!
//! With fewer images than threads, each image's pooled rows are split between the threads, each computing
//! the convolution rows on its edge for itself.

use std::cell::Cell;
use std::ops::Range;

use rayon::prelude::*;

use super::{
    block_count, column_blocks, im2col_columns, keep_overlap, pool_plane, pool_rows_fit, scratch,
    with_patches, ConvGeometry, Epilogue, Fresh, Isa, Max, OutputRows, PackedWeights, Patches,
    PoolAxis, PATCHES,
};

/// Values of convolution output a band holds at most: 256 KiB, a quarter of a core's second-level cache,
/// beside a block of patches ([`super::BLOCK_VALUES`]).
const BAND_VALUES: usize = 64 * 1024;

thread_local! {
    /// Each thread's band of convolution rows, reused across calls (taken and put back).
    static BAND: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Whether [`conv2d_max_pooled`] computes a convolution of geometry `g` followed by a max pool of axes
/// `rows` and `cols` over its output: an input with channels and values, one group, a window wider than one
/// value (a pointwise convolution has no patches to build), and a pool the AVX-512 row kernel takes.
pub(crate) fn applies(g: &ConvGeometry, rows: &PoolAxis, cols: &PoolAxis) -> bool {
    Isa::has_avx512()
        && g.c_in > 0
        && g.h * g.w > 0
        && g.groups == 1
        && !g.is_pointwise()
        && (rows.len, cols.len) == g.out
        && pool_rows_fit(rows, cols)
}

/// The max pool of the convolution of `batch` images: `x` holds image `n` at `x[n * image_stride..]` as a
/// contiguous `[c_in, h, w]` block, `weight` is the kernel as [`super::pack_weights`] packed it. Returns the
/// contiguous `[batch, c_out, rows.out, cols.out]` pool of the convolution's output with `epilogue` applied.
/// Needs [`applies`].
pub(crate) fn conv2d_max_pooled(
    x: &[f32],
    (batch, image_stride): (usize, usize),
    weight: PackedWeights<'_>,
    g: &ConvGeometry,
    epilogue: &Epilogue,
    pool: (&PoolAxis, &PoolAxis),
) -> Vec<f32> {
    in_bands(
        x,
        (batch, image_stride),
        weight,
        (g, epilogue),
        pool,
        BAND_VALUES,
    )
}

/// [`conv2d_max_pooled`] with bands of at most `band_values` convolution outputs (at least one pooled row).
fn in_bands(
    x: &[f32],
    (batch, image_stride): (usize, usize),
    weight: PackedWeights<'_>,
    (g, epilogue): (&ConvGeometry, &Epilogue),
    (rows, cols): (&PoolAxis, &PoolAxis),
    band_values: usize,
) -> Vec<f32> {
    assert!(
        applies(g, rows, cols),
        "not a convolution and pool for the banded kernel: {g:?}, {rows:?}, {cols:?}"
    );
    let image_in = g.c_in * g.h * g.w;
    let plane_out = rows.out * cols.out;
    let image_out = g.c_out * plane_out;
    assert!(
        batch == 0 || x.len() >= (batch - 1) * image_stride + image_in,
        "input too short"
    );
    let mut out = Fresh::new(batch * image_out);
    if image_out == 0 {
        // SAFETY: there is no value to write.
        return unsafe { out.assume_written() };
    }
    let w = weight.group(0, g);
    let output = OutputRows {
        ptr: out.values().as_mut_ptr().cast::<f32>(),
        columns: plane_out,
    };
    let threads = rayon::current_num_threads();
    let parts = if batch >= threads {
        1
    } else {
        threads.min(rows.out)
    };
    let image = |n: usize, parallel: bool| {
        let x = &x[n * image_stride..][..image_in];
        // The whole of `output` (a closure would capture its pointer field alone, which is not `Sync`).
        let output = &output;
        // SAFETY: image `n`'s output lies inside `out`.
        let image_out = OutputRows {
            ptr: unsafe { output.ptr.add(n * image_out) },
            columns: output.columns,
        };
        let part = |source: &Patches<'_>, part: usize| {
            let pooled = part * rows.out / parts..(part + 1) * rows.out / parts;
            let mut band = BAND.take();
            bands(
                source,
                (&w, g, epilogue),
                (rows, cols),
                (pooled, band_values),
                &mut band,
                &image_out,
            );
            BAND.set(band);
        };
        with_patches(x, g, parallel, |source| {
            if parallel {
                (0..parts).into_par_iter().for_each(|p| part(source, p));
            } else {
                (0..parts).for_each(|p| part(source, p));
            }
        });
    };
    if parts == 1 && threads > 1 {
        (0..batch).into_par_iter().for_each(|n| image(n, false));
    } else {
        (0..batch).for_each(|n| image(n, threads > 1));
    }
    // SAFETY: every image's parts cover its pooled rows `0..rows.out`, each band writing those rows of every
    // channel's plane whole.
    unsafe { out.assume_written() }
}

/// Pooled rows `pooled` of one image, band by band, into `out` (the image's `[c_out, oh_pool * ow_pool]`
/// output); `source` is the image's input as the patches read it, `band` the thread's buffer.
fn bands(
    source: &Patches<'_>,
    (w, g, epilogue): (&[super::gemm::Packed<'_>], &ConvGeometry, &Epilogue),
    (rows, cols): (&PoolAxis, &PoolAxis),
    (pooled, band_values): (Range<usize>, usize),
    band: &mut Vec<f32>,
    out: &OutputRows,
) {
    let ow = g.out.1;
    // The convolution rows pooled rows `pooled` read: rows.len = oh.
    let reach = |pooled: &Range<usize>| {
        let first = (pooled.start * rows.stride).saturating_sub(rows.pad);
        let end = ((pooled.end - 1) * rows.stride + (rows.kernel - 1) * rows.dilation + 1)
            .saturating_sub(rows.pad)
            .min(rows.len);
        first.min(end)..end
    };
    // The most pooled rows whose convolution rows fit in `band_values`, at least one.
    let mut per_band = 1;
    while per_band < pooled.len() && g.c_out * reach(&(0..per_band + 1)).len() * ow <= band_values {
        per_band += 1;
    }
    let capacity = reach(&(0..per_band)).len().max(1) + rows.kernel * rows.dilation;
    let plane = capacity * ow;
    let band = scratch(band, g.c_out * plane);
    // The convolution rows held in `band`, from its first row on.
    let mut held = 0..0;
    let mut first = pooled.start;
    while first < pooled.end {
        let band_pooled = first..(first + per_band).min(pooled.end);
        let conv_rows = reach(&band_pooled);
        assert!(conv_rows.len() <= capacity, "band rows past the buffer");
        // Rows the previous band computed that this one reads too move to the top.
        let kept = keep_overlap(band, (plane, ow), &held, &conv_rows);
        // The new rows, in even blocks of columns of about a patch block's width, their edges at multiples of
        // the product's 16 lanes ([`column_blocks`]: a ragged last block costs the product a pass over all the
        // weights for a few columns).
        let new = kept.end * ow..conv_rows.end * ow;
        let widest = (super::BLOCK_VALUES / g.depth().max(1) / 16 * 16).max(16);
        let blocks = column_blocks(new.len(), block_count(new.len(), widest, 1));
        let mut patches = PATCHES.take();
        for block in blocks {
            let columns = new.start + block.start..new.start + block.end;
            let patches = scratch(&mut patches, g.depth() * columns.len());
            im2col_columns(source, g, patches, columns.clone());
            let at = columns.start - conv_rows.start * ow;
            // SAFETY: `patches` holds `depth` rows of `columns.len()` values; columns `at..at + len` of the
            // `c_out` planes of `plane` values are inside `band` (`conv_rows.len() <= capacity`).
            unsafe {
                epilogue.multiply(
                    0,
                    w,
                    super::gemm::Rhs::rows(patches.as_ptr(), columns.len()),
                    columns.len(),
                    (band.as_mut_ptr().add(at), plane),
                    None,
                );
            }
        }
        PATCHES.set(patches);
        held = conv_rows.clone();
        // The pool over the band: pooled row `p` reads band row `(p - first) * stride + t * dilation -
        // pad_band`.
        let band_axis = PoolAxis {
            len: conv_rows.len(),
            out: band_pooled.len(),
            pad: rows.pad + conv_rows.start - band_pooled.start * rows.stride,
            ..*rows
        };
        assert!(
            pool_rows_fit(&band_axis, cols),
            "a band's pool the row kernel does not take: {band_axis:?}"
        );
        for (c, src) in band.chunks_exact(plane).enumerate() {
            let src = &src[..conv_rows.len() * ow];
            // SAFETY: the CPU has AVX-512F and the axes fit (`applies`, asserted above); rows `band_pooled` of
            // channel `c`'s output plane are inside the image's output and written by this band alone.
            unsafe {
                let dst = out.ptr.add(c * out.columns + band_pooled.start * cols.out);
                pool_plane::<Max>(src, &band_axis, cols, dst);
            }
        }
        first = band_pooled.end;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{out_len, values};
    use super::super::{conv2d, max_pool2d, pack_weights, Activation};
    use super::*;

    /// Against the convolution and then the pool, each on its own (within rounding): ResNet's padded pool and GoogLeNet's
    /// ceil-mode one after a strided 7×7 stem, a stride-1 convolution under a 2×2 pool, bands of one pooled
    /// row to the whole map, a batch, one and two threads.
    #[test]
    fn banded_convolution_and_pool_match_them_one_after_the_other() {
        if !Isa::has_avx512() {
            eprintln!("skipped: the banded kernel needs AVX-512");
            return;
        }
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a thread pool");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a thread pool");
        // (c_in, h, w, c_out, kernel, stride, pad), then the pool's (kernel, stride, pad, ceil mode).
        let cases = [
            ((3, 30, 26, 20, 7, 2, 3), (3, 2, 1, false)),
            ((3, 29, 31, 17, 7, 2, 3), (3, 2, 0, true)),
            ((4, 13, 18, 33, 3, 1, 1), (2, 2, 0, false)),
            ((2, 16, 9, 8, 5, 2, 2), (3, 1, 1, false)),
        ];
        let isa = Isa::detect();
        for (case, &((c_in, h, w, c_out, k, s, p), (pk, ps, pp, ceil))) in cases.iter().enumerate()
        {
            let (oh, ow) = (out_len(h, k, s, (p, p), 1), out_len(w, k, s, (p, p), 1));
            let g = ConvGeometry {
                c_in,
                h,
                w,
                c_out,
                kernel: (k, k),
                stride: (s, s),
                pad_before: (p, p),
                dilation: (1, 1),
                groups: 1,
                out: (oh, ow),
            };
            let axis = |len: usize| {
                let span = len + 2 * pp - pk;
                let mut out = if ceil { span.div_ceil(ps) } else { span / ps } + 1;
                // PyTorch's rule: the last window starts inside the input or its left padding.
                if ceil && (out - 1) * ps >= len + pp {
                    out -= 1;
                }
                PoolAxis {
                    len,
                    kernel: pk,
                    stride: ps,
                    pad: pp,
                    dilation: 1,
                    out,
                }
            };
            let (rows, cols) = (axis(oh), axis(ow));
            assert!(applies(&g, &rows, &cols), "case {case}");
            let batch = 3;
            let image_stride = c_in * h * w + 2;
            let x = values(batch * image_stride, case as u32);
            let weight = values(c_out * c_in * k * k, case as u32 + 1);
            let packed = pack_weights(isa, &weight, &g);
            let parts = [(&packed[..], c_out)];
            let weight = PackedWeights { isa, parts: &parts };
            let epilogue = Epilogue {
                scale: Some(values(c_out, 5)),
                shift: Some(values(c_out, 6)),
                activation: [Activation::Relu, Activation::Identity][case % 2],
            };
            let conv = conv2d(&x, batch, image_stride, weight, &g, &epilogue, None);
            let expected = max_pool2d(&conv, batch * c_out, &rows, &cols);
            for band_values in [1, c_out * 3 * ow, 1 << 20] {
                for pool in [&one, &two] {
                    let got = pool.install(|| {
                        in_bands(
                            &x,
                            (batch, image_stride),
                            weight,
                            (&g, &epilogue),
                            (&rows, &cols),
                            band_values,
                        )
                    });
                    // The product may sum a column in another order at another position in its tiles.
                    let wrong = got
                        .iter()
                        .zip(&expected)
                        .position(|(a, e)| (a - e).abs() > 1e-5 * (1.0 + e.abs()));
                    assert!(
                        got.len() == expected.len() && wrong.is_none(),
                        "case {case}, bands of {band_values}, {} threads: {} values for {}, first \
                         difference at {wrong:?} of planes of {}",
                        pool.current_num_threads(),
                        got.len(),
                        expected.len(),
                        rows.out * cols.out
                    );
                }
            }
        }
    }
}
