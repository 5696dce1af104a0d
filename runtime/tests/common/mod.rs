//! Helpers shared by the integration tests: deterministic random data and tensor comparison.

#![allow(dead_code)]

use archc_runtime::candle_core::{Device, Tensor};
use archc_runtime::BatchNorm;

/// A small xorshift generator, so test inputs are random but reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next_f32()).collect()
    }
}

/// A CPU tensor of shape `dims` with values from `rng`.
pub fn tensor(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let len = dims.iter().product();
    Tensor::from_vec(rng.vec(len), dims, &Device::Cpu).unwrap()
}

/// A batch norm with random statistics (variance in [0.5, 1.5)) and, when `affine`, random weight and bias
/// (drawn in that order: mean, variance, weight, bias).
pub fn batch_norm(rng: &mut Rng, channels: usize, affine: bool, eps: f64) -> BatchNorm {
    let mean = tensor(rng, &[channels]);
    let var = tensor(rng, &[channels]).affine(0.5, 1.0).unwrap();
    let inner = if affine {
        let weight = tensor(rng, &[channels]);
        let bias = tensor(rng, &[channels]);
        archc_runtime::candle_nn::BatchNorm::new(channels, mean, var, weight, bias, eps).unwrap()
    } else {
        archc_runtime::candle_nn::BatchNorm::new_no_bias(channels, mean, var, eps).unwrap()
    };
    BatchNorm::new(inner, channels).unwrap()
}

/// Builds an NCHW tensor from row-major data.
pub fn nchw(data: Vec<f32>, dims: (usize, usize, usize, usize)) -> Tensor {
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

/// A 1x1xHxW tensor holding 0, 1, 2, .. in row-major order.
pub fn iota(h: usize, w: usize) -> Tensor {
    nchw((0..h * w).map(|v| v as f32).collect(), (1, 1, h, w))
}

/// The tensor's values, row-major.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Asserts `actual` has `dims` and matches `expected` element-wise within `tol`.
#[track_caller]
pub fn assert_close(actual: &Tensor, dims: &[usize], expected: &[f32], tol: f32, what: &str) {
    assert_eq!(actual.dims(), dims, "{what}: shape");
    let got = values(actual);
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let ok = (g == e) || (g - e).abs() <= tol * (1.0 + e.abs());
        assert!(
            ok,
            "{what}: element {i}: got {g}, expected {e}\n got: {got:?}\n expected: {expected:?}"
        );
    }
}
