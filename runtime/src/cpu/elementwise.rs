//! Element-wise passes over `f32` NCHW maps: the activations PyTorch's networks use (applied in place, by the
//! convolution's epilogue or on their own), a per-channel affine transform with an activation (a batch norm
//! that no convolution precedes, followed by its ReLU, as in DenseNet's pre-activation layers), a per-channel
//! product (squeeze-and-excitation's gate) and a sum of two maps with an activation (a residual connection and
//! the ReLU after it).
//!
//! Each is one pass that reads its inputs once and writes one output, where candle's ops take one pass and one
//! allocation per operation (a batch norm in inference is four broadcast operations) and compute `exp` one
//! value at a time. The activations follow candle's definitions (`Activation::forward`) operation for
//! operation, except that `exp` is a vectorisable polynomial (Cephes' `expf`, within 2 ulp of the correctly
//! rounded value over the range that matters, see the tests): results agree with candle's within rounding.

use rayon::prelude::*;

/// An element-wise activation, as candle computes it for `candle_nn::Activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Activation {
    /// None: the values pass through.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `clamp(x, 0, 6)`.
    Relu6,
    /// `x / (1 + exp(-x))`.
    Silu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * clamp((x + 3) / 6, 0, 1)`.
    HardSwish,
    /// `clamp((x + 3) / 6, 0, 1)`.
    HardSigmoid,
}

impl Activation {
    /// The kernels' version of candle's activation, for those they compute (not GELU's `erf`, nor the
    /// activations PyTorch's vision networks do not use).
    pub(crate) fn of(activation: &candle_nn::Activation) -> Option<Activation> {
        use candle_nn::Activation as A;
        Some(match activation {
            A::Relu => Activation::Relu,
            A::Relu6 => Activation::Relu6,
            A::Silu => Activation::Silu,
            A::Sigmoid => Activation::Sigmoid,
            A::HardSwish => Activation::HardSwish,
            A::HardSigmoid => Activation::HardSigmoid,
            _ => return None,
        })
    }

    /// candle's activation, to run as candle's operation; `None` for the identity.
    pub(crate) fn candle(self) -> Option<candle_nn::Activation> {
        use candle_nn::Activation as A;
        Some(match self {
            Activation::Identity => return None,
            Activation::Relu => A::Relu,
            Activation::Relu6 => A::Relu6,
            Activation::Silu => A::Silu,
            Activation::Sigmoid => A::Sigmoid,
            Activation::HardSwish => A::HardSwish,
            Activation::HardSigmoid => A::HardSigmoid,
        })
    }

    /// Applies the activation to every value of `values`, in place.
    pub(crate) fn apply(self, values: &mut [f32]) {
        if self == Activation::Identity {
            return;
        }
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if super::Isa::has_avx512() {
            // SAFETY: the CPU has AVX-512F (`has_avx512` only allows what the CPU has).
            return unsafe { apply_avx512(self, values) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::Isa::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA, as above.
            return unsafe { apply_avx2_fma(self, values) };
        }
        apply_portable(self, values);
    }

    /// `act(scale * v + shift)` for every value of `values`, in place, in blocks small enough to stay in the
    /// first-level cache between the two steps.
    pub(crate) fn apply_affine(self, values: &mut [f32], scale: f32, shift: f32) {
        for block in values.chunks_mut(1024) {
            match (self, scale == 1.0) {
                (Activation::Relu, true) => {
                    block.iter_mut().for_each(|v| *v = (*v + shift).max(0.0))
                }
                (Activation::Relu, false) => block
                    .iter_mut()
                    .for_each(|v| *v = (*v * scale + shift).max(0.0)),
                (_, true) if shift == 0.0 => self.apply(block),
                (_, true) => {
                    block.iter_mut().for_each(|v| *v += shift);
                    self.apply(block);
                }
                (_, false) => {
                    block.iter_mut().for_each(|v| *v = *v * scale + shift);
                    self.apply(block);
                }
            }
        }
    }
}

/// [`Activation::apply`] compiled for AVX2 and FMA, so that the loops of [`apply_portable`] become eight-lane
/// vector code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2_fma(activation: Activation, values: &mut [f32]) {
    apply_portable(activation, values);
}

/// [`Activation::apply`] compiled for AVX-512, sixteen lanes: SiLU and sigmoid are bound by arithmetic (the
/// `exp` polynomial and a division per value), not by memory, and took a third of EfficientNet-B0's time
/// with eight lanes.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn apply_avx512(activation: Activation, values: &mut [f32]) {
    apply_portable(activation, values);
}

#[inline(always)]
fn apply_portable(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Identity => {}
        Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Relu6 => values.iter_mut().for_each(|v| *v = clamp(*v, 0.0, 6.0)),
        Activation::Silu => values.iter_mut().for_each(|v| *v = *v / (1.0 + exp(-*v))),
        Activation::Sigmoid => values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + exp(-*v))),
        Activation::HardSwish => values
            .iter_mut()
            .for_each(|v| *v *= clamp((*v + 3.0) / 6.0, 0.0, 1.0)),
        Activation::HardSigmoid => values
            .iter_mut()
            .for_each(|v| *v = clamp((*v + 3.0) / 6.0, 0.0, 1.0)),
    }
}

/// `x` limited to `lo..=hi`, as candle's `clamp` (a maximum, then a minimum); NaN stays NaN.
#[inline(always)]
pub(super) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `e^x` by Cephes' `expf`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 polynomial for `e^r`, and
/// `2^n` built in the exponent bits. Written without branches, so that loops over it vectorise. Inputs are
/// limited to `-87..=88`, where `2^n` stays a normal number: below, the result is about 1.6e-38 instead of
/// smaller (the activations add 1 to it or divide by 1 plus it), above about 1.65e38 instead of larger or
/// infinite (a sigmoid of -88 or less is then about 6e-39, a SiLU `x` times that, instead of less). NaN stays
/// NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first with few significant bits, so that `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = clamp(x, -87.0, 88.0);
    let n = (x * LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * (r * r) + r + 1.0;
    // 2^n: n + 127 (1 ..= 254 here) in the low bits of a float of magnitude 1.5 * 2^23, shifted into the
    // exponent field. A NaN gives 0 here, and NaN times 0 is NaN.
    let biased = n + (127.0 + 12_582_912.0);
    p * f32::from_bits(biased.to_bits() << 23)
}

/// Below this many values a pass runs on the calling thread: handing it to the pool costs more.
const PARALLEL_MIN: usize = 1 << 15;

/// Runs `f` over `dst` in pieces of whole planes (`plane` values each), with the index of each piece's first
/// plane: on the calling thread for one thread or a small map, otherwise spread over rayon's pool.
fn for_planes(dst: &mut [f32], plane: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let plane = plane.max(1);
    let threads = rayon::current_num_threads();
    if threads == 1 || dst.len() < PARALLEL_MIN {
        f(0, dst);
        return;
    }
    // About four pieces per thread, of whole planes.
    let planes = dst.len() / plane;
    let per_piece = planes.div_ceil(4 * threads).max(1);
    dst.par_chunks_mut(per_piece * plane)
        .enumerate()
        .for_each(|(i, piece)| f(i * per_piece, piece));
}

/// `activation(x)` for every value of `x`. Returns the result.
pub(crate) fn activation(x: &[f32], activation: Activation) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let piece = 4096;
    for_planes(&mut out, piece, |first, dst| {
        for (i, dst) in dst.chunks_mut(piece).enumerate() {
            let start = (first + i) * piece;
            dst.copy_from_slice(&x[start..start + dst.len()]);
            activation.apply(dst);
        }
    });
    out
}

/// `act(scale[c] * x + shift[c])` over `batch` images of `channels` planes of `plane` values; image `n` is at
/// `x[n * image_stride..]`. Returns the contiguous result.
pub(crate) fn channel_affine(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    (channels, plane): (usize, usize),
    scale: &[f32],
    shift: &[f32],
    activation: Activation,
) -> Vec<f32> {
    let image = channels * plane;
    let mut out = vec![0f32; batch * image];
    for_planes(&mut out, plane, |first, dst| {
        for (i, dst) in dst.chunks_exact_mut(plane).enumerate() {
            let p = first + i;
            let (n, c) = (p / channels, p % channels);
            let start = n * image_stride + c * plane;
            dst.copy_from_slice(&x[start..start + plane]);
            activation.apply_affine(dst, scale[c], shift[c]);
        }
    });
    out
}

/// `x * gate[n, c]` over `batch` images of `channels` planes of `plane` values (`gate` holds one value per
/// image and channel); image `n` of `x` is at `x[n * image_stride..]`. Returns the contiguous result.
pub(crate) fn channel_product(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    (channels, plane): (usize, usize),
    gate: &[f32],
) -> Vec<f32> {
    let image = channels * plane;
    let mut out = vec![0f32; batch * image];
    for_planes(&mut out, plane, |first, dst| {
        for (i, dst) in dst.chunks_exact_mut(plane).enumerate() {
            let p = first + i;
            let (n, c) = (p / channels, p % channels);
            let start = n * image_stride + c * plane;
            let g = gate[p];
            for (d, &v) in dst.iter_mut().zip(&x[start..start + plane]) {
                *d = v * g;
            }
        }
    });
    out
}

/// `act(a + b)` for two maps of the same `[batch, image]` layout, each image contiguous at its own stride.
/// Returns the contiguous result.
pub(crate) fn sum(
    (a, a_stride): (&[f32], usize),
    (b, b_stride): (&[f32], usize),
    (batch, image): (usize, usize),
    activation: Activation,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * image];
    // Pieces of 4096 values, which divide no image evenly in general: index them over the whole output.
    let piece = 4096;
    for_planes(&mut out, piece, |first, dst| {
        for (i, dst) in dst.chunks_mut(piece).enumerate() {
            let mut at = (first + i) * piece;
            // A piece may straddle two images.
            let mut dst = dst;
            while !dst.is_empty() {
                let (n, offset) = (at / image, at % image);
                let len = dst.len().min(image - offset);
                let (head, rest) = dst.split_at_mut(len);
                let a = &a[n * a_stride + offset..][..len];
                let b = &b[n * b_stride + offset..][..len];
                for ((d, &x), &y) in head.iter_mut().zip(a).zip(b) {
                    *d = x + y;
                }
                activation.apply(head);
                at += len;
                dst = rest;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `a` and `b`.
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let bits = v.to_bits() as i32;
            if bits < 0 {
                i32::MIN - bits
            } else {
                bits
            }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_correctly_rounded_value() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = f64::from(x).exp() as f32;
            worst = worst.max(ulps(exp(x), want));
            x += 0.000_731;
        }
        assert!(worst <= 2, "exp is {worst} ulp off");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn activations_match_their_definitions_on_every_path() {
        let values: Vec<f32> = (-2000..=2000)
            .map(|i| i as f32 * 0.01)
            .chain([-1e4, -90.0, -88.5, 88.5, 90.0, 1e4])
            .collect();
        type Definition = fn(f64) -> f64;
        let definitions: [(Activation, Definition); 6] = [
            (Activation::Relu, |x| x.max(0.0)),
            (Activation::Relu6, |x| x.clamp(0.0, 6.0)),
            (Activation::Silu, |x| x / (1.0 + (-x).exp())),
            (Activation::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
            (Activation::HardSwish, |x| {
                x * ((x + 3.0) / 6.0).clamp(0.0, 1.0)
            }),
            (Activation::HardSigmoid, |x| {
                ((x + 3.0) / 6.0).clamp(0.0, 1.0)
            }),
        ];
        // Every compiled version the CPU runs: portable, AVX2 + FMA, AVX-512.
        let mut paths: Vec<fn(Activation, &mut [f32])> = vec![apply_portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            paths.push(|a, v| unsafe { apply_avx2_fma(a, v) });
        }
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            paths.push(|a, v| unsafe { apply_avx512(a, v) });
        }
        for (activation, definition) in definitions {
            let results: Vec<Vec<f32>> = paths
                .iter()
                .map(|path| {
                    let mut out = values.clone();
                    path(activation, &mut out);
                    out
                })
                .collect();
            for (i, &x) in values.iter().enumerate() {
                let want = definition(f64::from(x));
                for got in results.iter().map(|r| r[i]) {
                    let error = (f64::from(got) - want).abs() / want.abs().max(1e-30);
                    // Relative to the value, except for values so small that they are zero for any purpose.
                    assert!(
                        error <= 1e-6 || (f64::from(got) - want).abs() < 1e-30,
                        "{activation:?}({x}) = {got}, want {want}"
                    );
                }
            }
            let mut nan = [f32::NAN];
            activation.apply(&mut nan);
            if activation != Activation::Relu {
                assert!(nan[0].is_nan(), "{activation:?}(NaN) = {}", nan[0]);
            }
        }
    }

    #[test]
    fn channel_passes_read_strided_images() {
        // Two images of 3 channels of 2 values, each image followed by 2 values of another tensor.
        let x = [
            1., 2., 3., 4., 5., 6., 99., 99., -1., -2., -3., -4., -5., -6., 99., 99.,
        ];
        let scale = [1.0, 2.0, -1.0];
        let shift = [0.0, 1.0, 1.0];
        let y = channel_affine(&x, 2, 8, (3, 2), &scale, &shift, Activation::Relu);
        assert_eq!(y, [1., 2., 7., 9., 0., 0., 0., 0., 0., 0., 6., 7.]);
        let gate = [1.0, 0.5, 2.0, -1.0, 0.0, 1.0];
        let y = channel_product(&x, 2, 8, (3, 2), &gate);
        assert_eq!(y, [1., 2., 1.5, 2., 10., 12., 1., 2., -0., -0., -5., -6.]);
        let y = sum((&x, 8), (&x[2..], 8), (2, 6), Activation::Identity);
        assert_eq!(
            y,
            [4., 6., 8., 10., 104., 105., -4., -6., -8., -10., 94., 93.]
        );
    }
}
