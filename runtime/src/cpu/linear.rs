//! Fully connected layers at small batches: `y = activation(x W^T + b)` as dot products of each weight row with
//! each input, reading the weight matrix once, at the memory's speed.
//!
//! At batch 1 a linear layer is a matrix-vector product: every weight is read once and used once, so its time
//! is the weight matrix's size over the memory bandwidth (AlexNet's and VGG's classifiers stream 235 and
//! 480 MB per image). The `gemm` crate's general product reached about 29 GB/s on one core of the machine of
//! `bench/RESULTS.md` (PyTorch's about 28); four weight rows at a time, with two 16-lane sums each, keep
//! enough loads in flight for 39 GB/s (AVX2, two rows of four 8-lane sums: 31 GB/s). Each block of rows is
//! used for every input of the batch while it is in cache.

use rayon::prelude::*;

use super::{Activation, Isa};

/// Weight rows computed together.
const ROWS: usize = 4;

/// Inputs up to this batch size take this kernel; larger batches are a matrix product proper.
pub(crate) const MAX_BATCH: usize = 8;

/// `activation(x W^T + b)` for the `batch` inputs `x` (`[batch, k]`, contiguous) and the contiguous weight
/// `[n, k]`; `bias` has `n` values. Returns the contiguous `[batch, n]` result.
pub(crate) fn linear(
    x: &[f32],
    batch: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    (k, n): (usize, usize),
    activation: Activation,
) -> Vec<f32> {
    assert!(
        x.len() >= batch * k && weight.len() >= n * k,
        "linear operands too short"
    );
    if let Some(bias) = bias {
        assert!(bias.len() >= n, "linear bias too short");
    }
    // Output-major while computing ([n, batch]: a block of rows writes one contiguous piece), transposed at
    // the end.
    let mut by_feature = vec![0f32; n * batch];
    let isa = Isa::detect();
    let block = |first_row: usize, dst: &mut [f32]| {
        let rows = dst.len() / batch.max(1);
        let w = &weight[first_row * k..(first_row + rows) * k];
        dots(isa, w, x, batch, k, dst);
    };
    let threads = rayon::current_num_threads();
    // Pieces of whole row blocks, about four per thread, of at least 16 rows each.
    let rows_per_task = n.div_ceil(4 * threads).next_multiple_of(ROWS).max(16);
    if threads == 1 || n <= rows_per_task {
        block(0, &mut by_feature);
    } else {
        by_feature
            .par_chunks_mut(rows_per_task * batch)
            .enumerate()
            .for_each(|(i, dst)| block(i * rows_per_task, dst));
    }
    let mut out = vec![0f32; batch * n];
    for (b, row) in out.chunks_exact_mut(n.max(1)).enumerate() {
        for (j, y) in row.iter_mut().enumerate() {
            *y = by_feature[j * batch + b] + bias.map_or(0.0, |bias| bias[j]);
        }
        activation.apply(row);
    }
    out
}

/// `dst[j * batch + b] = dot(w[j], x[b])` for the `dst.len() / batch` rows of `w` (`[rows, k]`).
fn dots(isa: Isa, w: &[f32], x: &[f32], batch: usize, k: usize, dst: &mut [f32]) {
    let rows = dst.len() / batch.max(1);
    let mut j = 0;
    while j < rows {
        let r = ROWS.min(rows - j);
        for b in 0..batch {
            let xb = &x[b * k..(b + 1) * k];
            let mut sums = [0f32; ROWS];
            let w_rows = &w[j * k..(j + r) * k];
            match isa {
                #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
                // SAFETY: `Isa::Avx512` is chosen only on a CPU with AVX-512F.
                Isa::Avx512 if r == ROWS => unsafe { dot4_avx512(w_rows, xb, k, &mut sums) },
                // The last rows of a matrix whose row count four does not divide.
                #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
                // SAFETY: `Isa::Avx512` is chosen only on a CPU with AVX2 and FMA too.
                Isa::Avx512 => unsafe { dot_avx2_fma(w_rows, xb, k, &mut sums[..r]) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::Avx2Fma` is chosen only on a CPU with AVX2 and FMA.
                Isa::Avx2Fma => unsafe { dot_avx2_fma(w_rows, xb, k, &mut sums[..r]) },
                Isa::Portable => dot_portable(w_rows, xb, k, &mut sums[..r]),
            }
            for (t, &s) in sums[..r].iter().enumerate() {
                dst[(j + t) * batch + b] = s;
            }
        }
        j += r;
    }
}

/// The dot products of the rows of `w` (`[sums.len(), k]`) with `x`, one value at a time.
fn dot_portable(w: &[f32], x: &[f32], k: usize, sums: &mut [f32]) {
    for (t, s) in sums.iter_mut().enumerate() {
        *s = w[t * k..(t + 1) * k]
            .iter()
            .zip(x)
            .map(|(a, b)| a * b)
            .sum();
    }
}

/// [`dot_portable`] with four 8-lane sums per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(w: &[f32], x: &[f32], k: usize, sums: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(w.len() >= sums.len() * k && x.len() >= k);
    let full = k / 32 * 32;
    for (t, s) in sums.iter_mut().enumerate() {
        let row = &w[t * k..(t + 1) * k];
        // SAFETY (every load below): i + 32 <= full <= k, the length of `row` and of `x`.
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < full {
            for (u, a) in acc.iter_mut().enumerate() {
                let wv = unsafe { _mm256_loadu_ps(row.as_ptr().add(i + 8 * u)) };
                let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * u)) };
                *a = _mm256_fmadd_ps(wv, xv, *a);
            }
            i += 32;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        *s = lanes.iter().sum::<f32>()
            + row[full..]
                .iter()
                .zip(&x[full..k])
                .map(|(a, b)| a * b)
                .sum::<f32>();
    }
}

/// Four dot products at once, each with two 16-lane sums: eight independent streams of loads.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn dot4_avx512(w: &[f32], x: &[f32], k: usize, sums: &mut [f32; ROWS]) {
    use std::arch::x86_64::*;
    assert!(w.len() >= ROWS * k && x.len() >= k);
    let full = k / 32 * 32;
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let mut i = 0;
    while i < full {
        // SAFETY (every load here): i + 32 <= full <= k, the length of `x` and of each row of `w`.
        let xv = unsafe {
            [
                _mm512_loadu_ps(x.as_ptr().add(i)),
                _mm512_loadu_ps(x.as_ptr().add(i + 16)),
            ]
        };
        for (t, a) in acc.iter_mut().enumerate() {
            let row = unsafe { w.as_ptr().add(t * k + i) };
            for (u, a) in a.iter_mut().enumerate() {
                let wv = unsafe { _mm512_loadu_ps(row.add(16 * u)) };
                *a = _mm512_fmadd_ps(wv, xv[u], *a);
            }
        }
        i += 32;
    }
    for (t, s) in sums.iter_mut().enumerate() {
        let row = &w[t * k..(t + 1) * k];
        *s = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]))
            + row[full..]
                .iter()
                .zip(&x[full..k])
                .map(|(a, b)| a * b)
                .sum::<f32>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_its_definition_on_every_instruction_set() {
        let values = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0) - 1.0)
                .collect()
        };
        let isas = Isa::available();
        // (batch, k, n): k with and without a tail after the 32-value steps, n with and without a partial block.
        for (batch, k, n) in [
            (1, 100, 7),
            (3, 64, 8),
            (2, 33, 13),
            (1, 1, 1),
            (5, 300, 40),
        ] {
            let x = values(batch * k, 1);
            let w = values(n * k, 2);
            for isa in &isas {
                let mut got = vec![0f32; n * batch];
                dots(*isa, &w, &x, batch, k, &mut got);
                for j in 0..n {
                    for b in 0..batch {
                        let want: f64 = (0..k)
                            .map(|i| f64::from(w[j * k + i]) * f64::from(x[b * k + i]))
                            .sum();
                        let g = f64::from(got[j * batch + b]);
                        assert!(
                            (g - want).abs() < 1e-4,
                            "{isa:?} {batch}x{k}x{n} [{b}, {j}]: {g} vs {want}"
                        );
                    }
                }
            }
        }
        let bias = [0.5, -100.0];
        let y = linear(
            &[1.0, 2.0, 3.0, 4.0],
            2,
            &[1.0, 1.0, 0.0, 1.0],
            Some(&bias),
            (2, 2),
            Activation::Relu,
        );
        assert_eq!(y, [3.5, 0.0, 7.5, 0.0]);
    }
}
