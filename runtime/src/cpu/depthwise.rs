//! Depthwise convolution (every output channel reads one input channel: `groups == in_channels`, the 3×3 and
//! 5×5 convolutions of MobileNet, ShuffleNet and EfficientNet) computed directly, without a patch matrix.
//!
//! As a matrix product a depthwise convolution is one `[m, k²] x [k², oh * ow]` product per channel, far too
//! small for a GEMM to pay back its packing, which is why it is slow both through candle (one convolution per
//! group, then a concatenation) and through [`super::conv2d`]'s im2col. Here each channel's plane is done by
//! one task:
//!
//! 1. The input plane is copied once into *phase planes*: zero padding added, and, for a stride `s`, rows and
//!    columns split by their position modulo `s`. In that layout every tap `(i, j)` of the window reads, for
//!    consecutive outputs, consecutive values, whatever the stride, padding and dilation: output `(oy, ox)`
//!    reads phase plane `((i·dh) mod sh, (j·dw) mod sw)` at row `oy + ⌊i·dh / sh⌋`, column `ox + ⌊j·dw / sw⌋`.
//!    With the output written at the phase planes' row length `L` (a few columns wider than the output), each
//!    tap is a single contiguous run over the whole plane — so even a 7×7 map vectorises fully.
//! 2. The output is computed [`BLOCK`] values at a time, their sums held in registers across all the taps.
//! 3. The extra columns are dropped and the epilogue (bias, folded batch norm, ReLU) applied on the way out.
//!
//! The loops are plain Rust that LLVM vectorises. They are compiled twice: for the baseline target, and with
//! AVX2 and FMA (chosen at run time), which doubles the vector width and fuses each multiply-add.

use rayon::prelude::*;

use super::{valid_range, ConvGeometry, Epilogue};

/// Output values computed together: four 8-lane registers of partial sums with AVX2, eight 4-lane ones with
/// SSE, kept in registers while every tap of the window is added in.
const BLOCK: usize = 32;

/// Roughly how many multiply-adds a rayon task should get, so that maps of a few dozen values (960 channels
/// of 7×7) are not one task each.
const TASK_WORK: usize = 1 << 15;

/// The instruction set the loops are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// The baseline target (SSE2 on x86-64): separate multiplies and adds.
    Portable,
    /// AVX2 with fused multiply-add, on x86-64 CPUs that have both.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The widest the running CPU supports.
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2Fma;
        }
        Isa::Portable
    }

    /// Every instruction set the running CPU can execute, for tests.
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx2Fma {
            all.push(Isa::Avx2Fma);
        }
        all
    }
}

/// Whether [`conv2d`] computes a convolution of this geometry: one input channel per group, and more than one
/// group (a single-channel input with one group is an ordinary convolution the matrix product does well).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.groups > 1 && g.in_per_group() == 1
}

/// The depthwise convolution of `batch` images: `x` holds image `n` at `x[n * image_stride..]` as a contiguous
/// `[c_in, h, w]` block, `weight` is the contiguous `[c_out, 1, kh, kw]` kernel, output channel `c` reading
/// input channel `c / (c_out / c_in)`. Returns the contiguous `[batch, c_out, oh, ow]` output with `epilogue`
/// applied, as [`super::conv2d`] does. Needs [`applies`].
pub(crate) fn conv2d(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    weight: &[f32],
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    conv2d_for(Isa::detect(), x, batch, image_stride, weight, g, epilogue)
}

/// [`conv2d`] with the loops compiled for `isa`, which the CPU must support.
fn conv2d_for(
    isa: Isa,
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
    let mut out = vec![0f32; batch * g.c_out * plane_out];
    if out.is_empty() {
        return out;
    }
    let layout = PhaseLayout::new(g);
    let taps = g.kernel.0 * g.kernel.1;
    let offsets = layout.tap_offsets(g);
    let (plane_in, multiplier) = (g.h * g.w, g.out_per_group());
    let per_task = (TASK_WORK / (taps * oh * layout.cols).max(1)).max(1);
    out.par_chunks_mut(plane_out)
        .enumerate()
        .with_min_len(per_task)
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(phases, sums), (p, dst)| {
                let (n, c) = (p / g.c_out, p % g.c_out);
                let start = n * image_stride + (c / multiplier) * plane_in;
                let plane = Plane {
                    src: &x[start..start + plane_in],
                    taps: &weight[c * taps..(c + 1) * taps],
                    offsets: &offsets,
                    channel: c,
                };
                match isa {
                    Isa::Portable => {
                        plane.run::<false>(g, &layout, epilogue, phases, sums, dst);
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Isa::Avx2Fma` is only chosen (by `detect` or `available`) on a CPU that has AVX2
                    // and FMA.
                    Isa::Avx2Fma => unsafe {
                        plane.run_avx2_fma(g, &layout, epilogue, phases, sums, dst);
                    },
                }
            },
        );
    out
}

/// Where the phase planes of one input plane live in the scratch buffer.
#[derive(Debug, Clone, Copy)]
struct PhaseLayout {
    /// Rows of a phase plane: the output rows plus the rows the lowest taps reach past them.
    rows: usize,
    /// Columns of a phase plane, which is also the row length the output is computed at.
    cols: usize,
    /// Distance between phase planes: `rows * cols` and enough zeros after that the last block's reads of the
    /// last tap stay inside (see [`PhaseLayout::new`]).
    stride: usize,
    /// Number of phase planes, `sh * sw`.
    count: usize,
}

impl PhaseLayout {
    fn new(g: &ConvGeometry) -> PhaseLayout {
        let (sh, sw) = g.stride;
        let reach_rows = (g.kernel.0 - 1) * g.dilation.0 / sh;
        let reach_cols = (g.kernel.1 - 1) * g.dilation.1 / sw;
        let (rows, cols) = (g.out.0 + reach_rows, g.out.1 + reach_cols);
        // The last block reads at most `BLOCK - 1` values past `out.0 * cols`, from a tap that starts at most
        // `reach_rows * cols + reach_cols` in: `rows * cols + reach_cols + BLOCK` values in all.
        PhaseLayout {
            rows,
            cols,
            stride: rows * cols + reach_cols + BLOCK,
            count: sh * sw,
        }
    }

    /// For each tap `(i, j)` in row-major order, where in the phase buffer the value read by output `(0, 0)`
    /// lies; output `(oy, ox)` reads `oy * cols + ox` further on.
    fn tap_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let (sh, sw) = g.stride;
        let mut offsets = Vec::with_capacity(g.kernel.0 * g.kernel.1);
        for i in 0..g.kernel.0 {
            let (row_phase, row) = ((i * g.dilation.0) % sh, (i * g.dilation.0) / sh);
            for j in 0..g.kernel.1 {
                let (col_phase, col) = ((j * g.dilation.1) % sw, (j * g.dilation.1) / sw);
                let phase = row_phase * sw + col_phase;
                offsets.push(phase * self.stride + row * self.cols + col);
            }
        }
        offsets
    }

    /// Writes `src` (one `[h, w]` plane) into `phases` as phase planes: padded position `(r, q)` (input
    /// `(r - pt, q - pl)`) goes to plane `(r mod sh, q mod sw)`, row `r / sh`, column `q / sw`; everything else
    /// is zero. Input values no output reads are left out.
    fn fill(&self, g: &ConvGeometry, src: &[f32], phases: &mut Vec<f32>) {
        phases.clear();
        phases.resize(self.count * self.stride, 0.0);
        let (sh, sw) = g.stride;
        let (pt, pl) = g.pad_before;
        for row_phase in 0..sh {
            // Phase rows `lo..hi` hold input rows `row_phase + r * sh - pt`.
            let (lo, hi) = valid_range(row_phase, pt, sh, g.h, self.rows);
            for r in lo..hi {
                let iy = row_phase + r * sh - pt;
                let src_row = &src[iy * g.w..(iy + 1) * g.w];
                for col_phase in 0..sw {
                    let (c_lo, c_hi) = valid_range(col_phase, pl, sw, g.w, self.cols);
                    if c_lo == c_hi {
                        continue;
                    }
                    let start = (row_phase * sw + col_phase) * self.stride + r * self.cols;
                    let dst = &mut phases[start + c_lo..start + c_hi];
                    let first = col_phase + c_lo * sw - pl;
                    if sw == 1 {
                        dst.copy_from_slice(&src_row[first..first + dst.len()]);
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src_row[first..].iter().step_by(sw)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
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
        phases: &mut Vec<f32>,
        sums: &mut Vec<f32>,
        dst: &mut [f32],
    ) {
        self.run::<true>(g, layout, epilogue, phases, sums, dst);
    }

    /// Computes the plane into `dst` (`[oh, ow]`), using `phases` and `sums` as scratch; `FUSED` multiplies
    /// and adds with one rounding (`mul_add`, which is a single instruction only where FMA is enabled).
    #[inline(always)]
    fn run<const FUSED: bool>(
        &self,
        g: &ConvGeometry,
        layout: &PhaseLayout,
        epilogue: &Epilogue,
        phases: &mut Vec<f32>,
        sums: &mut Vec<f32>,
        dst: &mut [f32],
    ) {
        layout.fill(g, self.src, phases);
        let (oh, ow) = g.out;
        let cols = layout.cols;
        let blocks = (oh * cols).div_ceil(BLOCK);
        sums.clear();
        sums.resize(blocks * BLOCK, 0.0);
        for (b, block) in sums.chunks_exact_mut(BLOCK).enumerate() {
            let mut acc = [0f32; BLOCK];
            for (&offset, &weight) in self.offsets.iter().zip(self.taps) {
                let start = offset + b * BLOCK;
                let src: &[f32; BLOCK] = phases[start..start + BLOCK]
                    .try_into()
                    .expect("a block is BLOCK values");
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a = if FUSED {
                        v.mul_add(weight, *a)
                    } else {
                        *a + v * weight
                    };
                }
            }
            block.copy_from_slice(&acc);
        }
        let scale = epilogue.scale.as_ref().map_or(1.0, |s| s[self.channel]);
        let shift = epilogue.shift.as_ref().map_or(0.0, |s| s[self.channel]);
        for (dst_row, row) in dst.chunks_exact_mut(ow).zip(sums.chunks(cols)) {
            let row = &row[..ow];
            if epilogue.relu {
                for (d, &v) in dst_row.iter_mut().zip(row) {
                    *d = (v * scale + shift).max(0.0);
                }
            } else {
                for (d, &v) in dst_row.iter_mut().zip(row) {
                    *d = v * scale + shift;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive_conv, out_len, values};
    use super::*;

    /// Every instruction set against the convolution's definition, over strides, paddings (asymmetric too,
    /// through `out`), dilations, channel multipliers, maps smaller than the kernel and strided images.
    #[test]
    fn depthwise_matches_the_definition_on_every_instruction_set() {
        let mut checked = 0;
        for isa in Isa::available() {
            for (kh, kw) in [(1, 1), (3, 3), (5, 5), (3, 2)] {
                for stride in [(1, 1), (2, 2), (1, 2), (3, 1)] {
                    for dilation in [(1, 1), (2, 2)] {
                        for (pt, pb, pl, pr) in
                            [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 1, 2, 0)]
                        {
                            for (c_in, multiplier, h, w) in
                                [(3, 1, 7, 9), (2, 2, 2, 3), (4, 3, 1, 1)]
                            {
                                let eh = (kh - 1) * dilation.0 + 1;
                                let ew = (kw - 1) * dilation.1 + 1;
                                if eh > h + pt + pb || ew > w + pl + pr {
                                    continue;
                                }
                                let c_out = c_in * multiplier;
                                let g = ConvGeometry {
                                    c_in,
                                    h,
                                    w,
                                    c_out,
                                    kernel: (kh, kw),
                                    stride,
                                    pad_before: (pt, pl),
                                    dilation,
                                    groups: c_in,
                                    out: (
                                        out_len(h, kh, stride.0, (pt, pb), dilation.0),
                                        out_len(w, kw, stride.1, (pl, pr), dilation.1),
                                    ),
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
                                    relu: checked % 2 == 0,
                                };
                                let got = conv2d_for(
                                    isa,
                                    &x,
                                    batch,
                                    image_stride,
                                    &weight,
                                    &g,
                                    &epilogue,
                                );
                                assert_eq!(got.len(), expected.len());
                                let plane = g.out.0 * g.out.1;
                                for (i, (&a, &e)) in got.iter().zip(&expected).enumerate() {
                                    let c = (i / plane) % c_out;
                                    let e = e * epilogue.scale.as_ref().unwrap()[c]
                                        + epilogue.shift.as_ref().unwrap()[c];
                                    let e = if epilogue.relu { e.max(0.0) } else { e };
                                    assert!(
                                        (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                                        "{isa:?} {g:?} element {i}: {a} vs {e}"
                                    );
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 200, "only {checked} geometries checked");
    }
}
