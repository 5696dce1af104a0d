//! What the kernels that hold sixteen channels in the lanes of an AVX-512 register share
//! ([`super::depthwise`]'s lane kernel, [`super::shallow`]): the aligned unit of their buffers, lane masks,
//! per-channel epilogue vectors and the 16 × 16 transpose between channels-in-lanes and planes.
//!
//! The functions returning or taking `__m512` are `#[inline(always)]` and only for functions compiled for
//! AVX-512F, into which they are inlined.

use std::arch::x86_64::*;

use super::{Activation, Epilogue};

/// Channels in one register.
pub(crate) const LANES: usize = 16;

/// Sixteen `f32` values on one cache line, the unit of the kernels' buffers (so that their vectors load and
/// store aligned).
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
pub(crate) struct Lanes(pub [f32; LANES]);

/// The first `count` lanes (all sixteen from 16 on).
pub(crate) fn lane_mask(count: usize) -> __mmask16 {
    ((1u32 << count.min(LANES)) - 1) as __mmask16
}

/// The epilogue's scale and shift of the channels `first..`, in the lanes of `mask` (1 and 0 where the epilogue
/// has none, and in the other lanes).
#[inline(always)]
pub(crate) fn affine(epilogue: &Epilogue, first: usize, mask: __mmask16) -> (__m512, __m512) {
    (
        per_channel(&epilogue.scale, 1.0, first, mask),
        per_channel(&epilogue.shift, 0.0, first, mask),
    )
}

/// A per-channel vector's values for channels `first..`, in the lanes of `mask` (`default` where there is
/// none, and in the other lanes).
#[inline(always)]
fn per_channel(values: &Option<Vec<f32>>, default: f32, first: usize, mask: __mmask16) -> __m512 {
    // SAFETY (of the intrinsics): only inlined into functions compiled for AVX-512F.
    unsafe {
        match values {
            Some(values) => {
                let values = &values[first..first + mask.count_ones() as usize];
                // The lanes `mask` leaves out are not read: `values` holds the others.
                _mm512_mask_loadu_ps(_mm512_set1_ps(default), mask, values.as_ptr())
            }
            None => _mm512_set1_ps(default),
        }
    }
}

/// The clamp of ReLU or ReLU6 applied to the vectors as they are stored (the other activations are applied
/// to the output planes after: [`after`]). NaN stays NaN through ReLU6 and becomes 0 through ReLU, as in the
/// product's epilogue and the element-wise kernels: `max` returns its second operand when either is NaN.
#[derive(Clone, Copy)]
pub(crate) enum Clamp {
    None,
    /// Zeros.
    Relu(__m512),
    /// Zeros and sixes.
    Relu6(__m512, __m512),
}

impl Clamp {
    /// The clamp of `activation`.
    #[inline(always)]
    pub(crate) fn of(activation: Activation) -> Clamp {
        // SAFETY (of the intrinsics): only inlined into functions compiled for AVX-512F.
        unsafe {
            match activation {
                Activation::Relu => Clamp::Relu(_mm512_setzero_ps()),
                Activation::Relu6 => Clamp::Relu6(_mm512_setzero_ps(), _mm512_set1_ps(6.0)),
                _ => Clamp::None,
            }
        }
    }

    /// `v` clamped.
    #[inline(always)]
    pub(crate) fn apply(self, v: __m512) -> __m512 {
        // SAFETY (of the intrinsics): only inlined into functions compiled for AVX-512F.
        unsafe {
            match self {
                Clamp::None => v,
                Clamp::Relu(zero) => _mm512_max_ps(v, zero),
                Clamp::Relu6(zero, six) => _mm512_min_ps(six, _mm512_max_ps(zero, v)),
            }
        }
    }
}

/// Whether the activation is left to a pass over the output planes after the kernel: any but the identity
/// and the clamps ([`Clamp`]).
pub(crate) fn after(activation: Activation) -> bool {
    !matches!(
        activation,
        Activation::Relu | Activation::Relu6 | Activation::Identity
    )
}

/// `r[i][j]` → `out[j][i]` for sixteen registers of sixteen lanes, in three rounds of shuffles: pairs of rows
/// interleaved by single lanes, then by pairs of lanes, then by 128-bit quarters. Only for functions compiled
/// for AVX-512F, into which it is inlined.
#[inline(always)]
pub(crate) fn transpose(r: [__m512; LANES]) -> [__m512; LANES] {
    // SAFETY (of the intrinsics below): this is only inlined into functions compiled for AVX-512F.
    unsafe {
        let mut a = [_mm512_setzero_ps(); LANES];
        for i in 0..8 {
            a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // `b[4i + j]` holds, in its quarter `k`, lane `4k + j` of rows `4i..4i + 4`.
        let mut b = [_mm512_setzero_ps(); LANES];
        for i in 0..4 {
            let a0 = _mm512_castps_pd(a[4 * i]);
            let a1 = _mm512_castps_pd(a[4 * i + 1]);
            let a2 = _mm512_castps_pd(a[4 * i + 2]);
            let a3 = _mm512_castps_pd(a[4 * i + 3]);
            b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
            b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
            b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
            b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
        }
        // Output row `4k + j` is quarter `k` of `b[j]`, `b[4 + j]`, `b[8 + j]`, `b[12 + j]`.
        let mut out = [_mm512_setzero_ps(); LANES];
        for j in 0..4 {
            let low = (
                _mm512_shuffle_f32x4::<0x44>(b[j], b[4 + j]),
                _mm512_shuffle_f32x4::<0x44>(b[8 + j], b[12 + j]),
            );
            let high = (
                _mm512_shuffle_f32x4::<0xEE>(b[j], b[4 + j]),
                _mm512_shuffle_f32x4::<0xEE>(b[8 + j], b[12 + j]),
            );
            out[j] = _mm512_shuffle_f32x4::<0x88>(low.0, low.1);
            out[4 + j] = _mm512_shuffle_f32x4::<0xDD>(low.0, low.1);
            out[8 + j] = _mm512_shuffle_f32x4::<0x88>(high.0, high.1);
            out[12 + j] = _mm512_shuffle_f32x4::<0xDD>(high.0, high.1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::Isa;
    use super::*;

    /// ReLU and ReLU6 as the other kernels compute them: NaN through ReLU6 stays NaN, through ReLU becomes 0.
    #[test]
    fn clamps_match_the_other_kernels_nan_included() {
        if !Isa::available().contains(&Isa::Avx512) {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn run(activation: Activation, x: f32) -> f32 {
            let mut out = [0.0; LANES];
            let v = Clamp::of(activation).apply(_mm512_set1_ps(x));
            // SAFETY: sixteen values.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
            out[0]
        }
        for (activation, x, expected) in [
            (Activation::Relu, -1.5, 0.0),
            (Activation::Relu, 7.0, 7.0),
            (Activation::Relu, f32::NAN, 0.0),
            (Activation::Relu6, -1.5, 0.0),
            (Activation::Relu6, 7.0, 6.0),
            (Activation::Relu6, 2.5, 2.5),
            (Activation::Relu6, f32::NAN, f32::NAN),
            (Activation::Identity, -1.5, -1.5),
        ] {
            // SAFETY: AVX-512 (checked above).
            let got = unsafe { run(activation, x) };
            let elementwise = {
                let mut v = [x];
                activation.apply(&mut v);
                v[0]
            };
            assert_eq!(got.to_bits(), expected.to_bits(), "{activation:?}({x})");
            assert_eq!(
                got.to_bits(),
                elementwise.to_bits(),
                "{activation:?}({x}) against apply"
            );
        }
    }

    /// The 16 × 16 transpose on its own: lane `j` of register `i` goes to lane `i` of register `j`.
    #[test]
    fn transpose_swaps_registers_and_lanes() {
        if !Isa::available().contains(&Isa::Avx512) {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn run() -> [[f32; LANES]; LANES] {
            let rows: [[f32; LANES]; LANES] =
                std::array::from_fn(|i| std::array::from_fn(|j| (i * LANES + j) as f32));
            // SAFETY: sixteen values each.
            let r = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(rows[i].as_ptr()) });
            let mut out = [[0.0; LANES]; LANES];
            for (o, v) in out.iter_mut().zip(transpose(r)) {
                // SAFETY: sixteen values.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
            }
            out
        }
        // SAFETY: AVX-512 (checked above).
        let out = unsafe { run() };
        for (j, row) in out.iter().enumerate() {
            for (i, &v) in row.iter().enumerate() {
                assert_eq!(v, (i * LANES + j) as f32, "register {j} lane {i}");
            }
        }
    }
}
