//! A depthwise-separable block computed band by band: an optional 1×1 expansion, a depthwise convolution
//! and a 1×1 projection (MobileNet-V2's inverted residual, with its input added when it has one; ShuffleNet-V2's
//! branch), each with its folded batch norm and activation, run over a few output rows at a time.
//!
//! Layer by layer, the expansion writes a tensor six times wider than the block's input (MobileNet-V2's 144
//! channels of 56×56 are 1.8 MB, 96 of 112×112 4.8 MB), the depthwise convolution reads it back and writes
//! another, and the projection reads that: each a pass through memory, or at best the last-level cache, and at
//! batch 8, where every core runs its own image, the cores compete for it. Here the three run over one band of
//! rows before the next, sized so that the band's expanded rows and depthwise output stay in a core's
//! second-level cache ([`BAND_VALUES`]):
//!
//! 1. the input rows the band's window reaches are expanded into a buffer of `[c_exp, rows, w]`; the rows the
//!    previous band already expanded (the window's overlap, two rows for a 3×3 at stride 1) move to its top
//!    rather than being computed again;
//! 2. the depthwise kernel runs on that buffer as an image of those rows, its padding above or below only where
//!    the band meets the map's edge ([`super::depthwise::image_into`]);
//! 3. the projection multiplies the band's depthwise output into its columns of the output, the input added in
//!    the same pass when the block has a residual connection.
//!
//! With several threads and fewer images than threads, each image's output rows are split between them, each
//! thread expanding the rows on its edges for itself.

use std::cell::Cell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{
    depthwise, gemm, keep_overlap, scratch, ConvGeometry, Epilogue, Fresh, OutputRows,
    PackedWeights,
};

/// A layer of the block: its weights (packed for the product, or the depthwise kernel's `[c, 1, kh, kw]`),
/// its geometry over the whole map, and its output pass.
#[derive(Clone, Copy)]
pub(crate) struct Layer<'a, W> {
    pub weight: W,
    pub geometry: ConvGeometry,
    pub epilogue: &'a Epilogue,
}

/// The layers of one block, each reading the one before. The expansion and the projection must be pointwise
/// (1×1, stride 1, no padding, one group) and the depthwise convolution must be one
/// ([`depthwise::applies`]); [`run`] checks that the channels and sizes chain.
pub(crate) struct Block<'a> {
    pub expand: Option<Layer<'a, PackedWeights<'a>>>,
    pub depthwise: Layer<'a, &'a [f32]>,
    pub project: Layer<'a, PackedWeights<'a>>,
}

/// Values of a band's expanded rows and depthwise output together, at most: 768 KiB, most of a current core's
/// second-level cache. Each band costs a pass of the depthwise kernel's per-plane work over every channel, so
/// smaller bands cost more than they gain: MobileNet-V2 on one thread took 10.2, 7.5, 5.9, 5.6 and 5.6 ms with
/// bands of 96, 192, 384, 768 and 1536 KiB.
const BAND_VALUES: usize = 192 * 1024;

/// The fewest output rows a thread gets when an image's rows are shared between threads: with fewer, the
/// rows each thread expands again on its edges cost more than the split gains. Four since the depthwise
/// kernel's sixteen-channel lanes (MobileNet-V2's 14×14 blocks split, two threads: 3.4–3.9 → 3.0–3.2 ms; its
/// 7×7 blocks, with 2 or 3, within noise); eight before, when each band paid per-plane work.
const MIN_THREAD_ROWS: usize = 4;

/// Whether [`run`] should compute a block whose depthwise convolution has geometry `g` for `batch` images,
/// rather than its layers one at a time: with fewer images than threads, each thread must get enough output
/// rows ([`MIN_THREAD_ROWS`]).
pub(crate) fn worth_it(g: &ConvGeometry, batch: usize) -> bool {
    let threads = rayon::current_num_threads();
    batch >= threads || g.out.0 >= threads * MIN_THREAD_ROWS
}

thread_local! {
    /// Each thread's band buffers, reused across calls (taken and put back, as `super::PATCHES`).
    static BUFFERS: Cell<Buffers> = Cell::new(Buffers::default());
}

/// One thread's buffers for its bands.
#[derive(Default)]
struct Buffers {
    /// The band's expanded input rows, `[c_exp, rows, w]`.
    expanded: Vec<f32>,
    /// The band's depthwise output, `[c_dw, band rows, ow]`.
    depthwise_out: Vec<f32>,
    /// The depthwise kernel's phase planes.
    depthwise: depthwise::Scratch,
}

/// Runs `block` on `batch` images: image `n` is the contiguous `[c_in, h, w]` block at
/// `x[n * image_stride..]`. Returns the contiguous `[batch, c_out, oh, ow]` output, with the input added to
/// the projection before its activation when `residual` (which needs the output's shape to be the input's).
pub(crate) fn run(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    block: &Block<'_>,
    residual: bool,
) -> Vec<f32> {
    run_in_bands(x, (batch, image_stride), block, residual, BAND_VALUES)
}

/// [`run`] with bands of at most `band_values` values (at least one row each).
fn run_in_bands(
    x: &[f32],
    (batch, image_stride): (usize, usize),
    block: &Block<'_>,
    residual: bool,
    band_values: usize,
) -> Vec<f32> {
    let dw = &block.depthwise.geometry;
    let project = &block.project.geometry;
    let input = block.expand.as_ref().map_or(dw, |e| &e.geometry);
    let pointwise = |g: &ConvGeometry| g.is_pointwise() && g.groups == 1;
    let expand_chains = match &block.expand {
        Some(e) => {
            let g = &e.geometry;
            pointwise(g) && (g.c_out, g.h, g.w) == (dw.c_in, dw.h, dw.w)
        }
        None => true,
    };
    assert!(
        expand_chains
            && depthwise::applies(dw)
            && pointwise(project)
            && (project.c_in, project.h, project.w) == (dw.c_out, dw.out.0, dw.out.1),
        "not a depthwise-separable block: {:?}, {dw:?}, {project:?}",
        block.expand.as_ref().map(|e| e.geometry)
    );
    let (c_in, h, w) = (input.c_in, input.h, input.w);
    let (oh, ow) = dw.out;
    assert!(
        !residual || (project.c_out, oh, ow) == (c_in, h, w),
        "a residual of another shape than the output"
    );
    let image_in = c_in * h * w;
    let image_out = project.c_out * oh * ow;
    assert!(
        batch == 0 || x.len() >= (batch - 1) * image_stride + image_in,
        "input too short"
    );
    let mut out = Fresh::new(batch * image_out);
    if image_out == 0 {
        // SAFETY: there is no value to write.
        return unsafe { out.assume_written() };
    }
    let threads = rayon::current_num_threads();
    let parts = if batch >= threads { 1 } else { threads.min(oh) };
    let output = OutputRows {
        ptr: out.values().as_mut_ptr().cast::<f32>(),
        columns: oh * ow,
    };
    let task = |task: usize| {
        let (n, part) = (task / parts, task % parts);
        let image = &x[n * image_stride..][..image_in];
        let rows = part * oh / parts..(part + 1) * oh / parts;
        let mut buffers = BUFFERS.take();
        // The whole of `output` (a closure would capture its pointer field alone, which is not `Sync`).
        let output = &output;
        // SAFETY: image `n`'s output rows lie inside `out`, and each task writes the columns of its own rows of
        // output only (`rows`, disjoint between the parts of an image).
        let image_out = OutputRows {
            ptr: unsafe { output.ptr.add(n * image_out) },
            columns: output.columns,
        };
        bands(
            block,
            image,
            &image_out,
            residual,
            (rows, band_values),
            &mut buffers,
        );
        BUFFERS.set(buffers);
    };
    if threads == 1 {
        (0..batch * parts).for_each(task);
    } else {
        (0..batch * parts).into_par_iter().for_each(task);
    }
    // SAFETY: every image's parts cover its output rows `0..oh`, and each band's projection writes every
    // value of its rows' columns in every output channel.
    unsafe { out.assume_written() }
}

/// The input rows `first..end` that output rows `rows` of `g` read (clipped to the map), and how many rows of
/// padding lie above the first of them.
fn input_rows(g: &ConvGeometry, rows: &std::ops::Range<usize>) -> (std::ops::Range<usize>, usize) {
    let (sh, dh, kh, pad) = (g.stride.0, g.dilation.0, g.kernel.0, g.pad_before.0);
    let top = rows.start * sh;
    // At most `h`: a band wholly in the padding below the map (wider than the window) reads no row at all.
    let first = top.saturating_sub(pad).min(g.h);
    let end = ((rows.end - 1) * sh + (kh - 1) * dh + 1)
        .saturating_sub(pad)
        .min(g.h);
    (first..end.max(first), pad.saturating_sub(top))
}

/// Output rows `rows` of one image in bands of at most `band_values` values: `x` is its `[c_in, h, w]` input,
/// `out` its output rows (`[c_out, oh * ow]`).
fn bands(
    block: &Block<'_>,
    x: &[f32],
    out: &OutputRows,
    residual: bool,
    (rows, band_values): (std::ops::Range<usize>, usize),
    buffers: &mut Buffers,
) {
    let dw = &block.depthwise.geometry;
    let (h, w) = (dw.h, dw.w);
    let (oh, ow) = dw.out;
    let c_exp = dw.c_in;
    // The most input rows a band of `band` output rows reads (one away from the map's edges).
    let (sh, dh, kh) = (dw.stride.0, dw.dilation.0, dw.kernel.0);
    let span = |band: usize| ((band - 1) * sh + (kh - 1) * dh + 1).min(h);
    // The most output rows whose expanded input and depthwise output fit in `BAND_VALUES`, at least one.
    let per_row = |band: usize| c_exp * span(band) * w + dw.c_out * band * ow;
    let mut band = 1;
    while band < rows.len() && per_row(band + 1) <= band_values {
        band += 1;
    }
    let capacity = span(band);
    let project = block.project.weight.group(0, &block.project.geometry);
    let expand = block
        .expand
        .as_ref()
        .map(|e| (e, e.weight.group(0, &e.geometry)));
    // The rows of the input expanded into `buffers.expanded`, from its first row on.
    let mut held = 0..0;
    let mut first = rows.start;
    while first < rows.end {
        let band_rows = first..(first + band).min(rows.end);
        let (inputs, pad_top) = input_rows(dw, &band_rows);
        // The band's input: its expanded rows, or the block's input itself when it has no expansion.
        let source = match &expand {
            Some((layer, weight)) => {
                let expanded = scratch(&mut buffers.expanded, c_exp * capacity * w);
                let plane = capacity * w;
                // Rows the previous band expanded that this one reads too move to the top.
                let kept = keep_overlap(expanded, (plane, w), &held, &inputs);
                let new = kept.end..inputs.end;
                let at = (new.start - inputs.start) * w;
                // SAFETY: input rows `new` of every channel are inside `x` (`h * w` values a channel; `new.end`
                // is at most `h`), and rows `at / w..` of the `c_exp` planes of `capacity` rows, `new.len()` of
                // them, inside `expanded`.
                unsafe {
                    layer.epilogue.multiply(
                        0,
                        weight,
                        gemm::Rhs::rows(x.as_ptr().add(new.start * w), h * w),
                        new.len() * w,
                        (expanded.as_mut_ptr().add(at), plane),
                        None,
                    );
                }
                held = inputs.clone();
                (&buffers.expanded[..], plane)
            }
            None => (&x[inputs.start * w..], h * w),
        };
        let g = ConvGeometry {
            h: inputs.len(),
            pad_before: (pad_top, dw.pad_before.1),
            out: (band_rows.len(), ow),
            ..*dw
        };
        let columns = band_rows.len() * ow;
        let depthwise_out = scratch(&mut buffers.depthwise_out, dw.c_out * columns);
        // SAFETY: any `f32` is a valid `MaybeUninit<f32>`; the kernel only writes.
        let dst = unsafe { &mut *(depthwise_out as *mut [f32] as *mut [MaybeUninit<f32>]) };
        depthwise::image_into(
            source,
            block.depthwise.weight,
            &g,
            block.depthwise.epilogue,
            &mut buffers.depthwise,
            dst,
        );
        let at = band_rows.start * ow;
        // SAFETY: the depthwise output holds `c_dw` rows of `columns`; columns `at..at + columns` of the
        // output's `c_out` rows of `oh * ow` are this band's, written by this call alone; the residual, the
        // input from the band's first column, is laid out as the output.
        unsafe {
            block.project.epilogue.multiply(
                0,
                &project,
                gemm::Rhs::rows(buffers.depthwise_out.as_ptr(), columns),
                columns,
                (out.ptr.add(at), oh * ow),
                residual.then(|| &x[at..]),
            );
        }
        first = band_rows.end;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive_conv, out_len, values};
    use super::super::{pack_weights, Activation, Isa};
    use super::*;

    /// `activation(scale * v + shift + residual)` on each channel's values, as the layers one at a time do.
    fn finish(values: &mut [f32], epilogue: &Epilogue, residual: Option<&[f32]>, plane: usize) {
        for (i, v) in values.iter_mut().enumerate() {
            let c = i / plane;
            let scale = epilogue.scale.as_ref().map_or(1.0, |s| s[c]);
            let shift = epilogue.shift.as_ref().map_or(0.0, |s| s[c]);
            *v = *v * scale + shift + residual.map_or(0.0, |r| r[i]);
        }
        epilogue.activation.apply(values);
    }

    fn epilogue(channels: usize, activation: Activation, seed: u32) -> Epilogue {
        Epilogue {
            scale: Some(values(channels, seed).iter().map(|v| v + 1.5).collect()),
            shift: Some(values(channels, seed + 1)),
            activation,
        }
    }

    /// Every band size (down to one row a band, so that every band keeps rows of the one before), thread count
    /// (an image's rows split between them) and batch, on blocks with and without an expansion or a residual,
    /// strides 1 and 2, a 5×5 window, dilation, a channel multiplier, activations the product clamps and one it
    /// leaves to a pass of its own, against the three layers computed one after the other by the definition.
    #[test]
    fn bands_match_the_layers_one_at_a_time() {
        // (c_in, h, w, expansion channels (none: no expansion), depthwise multiplier, c_out, kernel, stride,
        // dilation, residual, the projection's activation); padding `(kernel - 1) / 2 * dilation`, or 2 for a
        // 1×1 window
        let cases = [
            (
                4,
                13,
                9,
                Some(12),
                1,
                4,
                3,
                1,
                1,
                true,
                Activation::Identity,
            ),
            (
                4,
                14,
                10,
                Some(8),
                1,
                6,
                3,
                2,
                1,
                false,
                Activation::Identity,
            ),
            (3, 9, 11, Some(6), 1, 5, 3, 2, 1, false, Activation::Relu),
            (6, 11, 7, None, 1, 5, 3, 1, 1, false, Activation::Identity),
            (5, 12, 6, None, 2, 4, 3, 2, 1, false, Activation::Relu),
            (
                3,
                12,
                12,
                Some(6),
                1,
                3,
                5,
                2,
                1,
                false,
                Activation::Identity,
            ),
            (
                3,
                10,
                8,
                Some(6),
                1,
                3,
                3,
                1,
                2,
                true,
                Activation::HardSwish,
            ),
            (2, 1, 5, Some(4), 1, 2, 3, 1, 1, true, Activation::Identity),
            // Padding wider than the window: the bands on the edges read no input row at all.
            (3, 5, 4, Some(6), 1, 3, 1, 1, 1, false, Activation::Identity),
            (3, 5, 4, None, 1, 2, 1, 1, 1, false, Activation::Identity),
        ];
        let pools: Vec<rayon::ThreadPool> = [1, 2, 3]
            .into_iter()
            .map(|threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool")
            })
            .collect();
        let isa = Isa::detect();
        let mut checked = 0;
        for (seed, case) in cases.into_iter().enumerate() {
            let (c_in, h, w, expansion, multiplier, c_out, k, stride, dilation, residual, act) =
                case;
            let seed = seed as u32 * 10;
            let c_exp = expansion.unwrap_or(c_in);
            let pad = if k == 1 { 2 } else { (k - 1) / 2 * dilation };
            let out = |len| out_len(len, k, stride, (pad, pad), dilation);
            let dw = ConvGeometry {
                c_in: c_exp,
                h,
                w,
                c_out: c_exp * multiplier,
                kernel: (k, k),
                stride: (stride, stride),
                pad_before: (pad, pad),
                dilation: (dilation, dilation),
                groups: c_exp,
                out: (out(h), out(w)),
            };
            let (oh, ow) = dw.out;
            let expand_g = expansion.map(|c| ConvGeometry::pointwise(c_in, c, (h, w)));
            let project_g = ConvGeometry::pointwise(dw.c_out, c_out, (oh, ow));
            let expand_w = values(c_exp * c_in, seed + 2);
            let depthwise_w = values(dw.c_out * k * k, seed + 3);
            let project_w = values(c_out * dw.c_out, seed + 4);
            let expand_e = epilogue(c_exp, Activation::Relu6, seed + 5);
            let depthwise_e = epilogue(dw.c_out, Activation::Relu, seed + 7);
            let project_e = epilogue(c_out, act, seed + 9);
            let expand_p = expand_g.map(|g| pack_weights(isa, &expand_w, &g));
            let project_p = pack_weights(isa, &project_w, &project_g);
            let expand_parts = expand_p.as_ref().map(|p| [(&p[..], c_exp)]);
            let project_parts = [(&project_p[..], c_out)];
            let block = Block {
                expand: expand_g
                    .zip(expand_parts.as_ref())
                    .map(|(geometry, parts)| Layer {
                        weight: PackedWeights { isa, parts },
                        geometry,
                        epilogue: &expand_e,
                    }),
                depthwise: Layer {
                    weight: &depthwise_w,
                    geometry: dw,
                    epilogue: &depthwise_e,
                },
                project: Layer {
                    weight: PackedWeights {
                        isa,
                        parts: &project_parts,
                    },
                    geometry: project_g,
                    epilogue: &project_e,
                },
            };
            for batch in [1, 2] {
                // Images one value apart more than their size, as for a channel slice.
                let image = c_in * h * w;
                let image_stride = image + 1;
                let x = values(batch * image_stride, seed + 11);
                let expected: Vec<f32> = (0..batch)
                    .flat_map(|n| {
                        let x = &x[n * image_stride..][..image];
                        let mut expanded = x.to_vec();
                        if let Some(g) = &expand_g {
                            expanded = naive_conv(x, 1, &expand_w, g);
                            finish(&mut expanded, &expand_e, None, h * w);
                        }
                        let mut depthwise_out = naive_conv(&expanded, 1, &depthwise_w, &dw);
                        finish(&mut depthwise_out, &depthwise_e, None, oh * ow);
                        let mut y = naive_conv(&depthwise_out, 1, &project_w, &project_g);
                        finish(&mut y, &project_e, residual.then_some(x), oh * ow);
                        y
                    })
                    .collect();
                for pool in &pools {
                    for band_values in [1, 200, 1000, BAND_VALUES] {
                        let got = pool.install(|| {
                            run_in_bands(&x, (batch, image_stride), &block, residual, band_values)
                        });
                        assert_eq!(got.len(), expected.len());
                        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                            assert!(
                                (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                "case {case:?}, batch {batch}, {} threads, bands of {band_values} values: \
                                 value {i} is {g}, expected {e}",
                                pool.current_num_threads()
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, cases.len() * 2 * 3 * 4);
    }
}
