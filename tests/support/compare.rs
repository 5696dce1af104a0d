//! Comparing tensors in tests: the relative error every parity test bounds.

// Each test crate that includes this module uses what it needs of it.
#![allow(dead_code)]

use archc_runtime::candle_core::{DType, Tensor};

/// max |got - want| / max(1, max |want|), computed in f32 (either tensor may be another float dtype).
pub fn relative_error(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let got = got.to_dtype(DType::F32).unwrap();
    let want = want.to_dtype(DType::F32).unwrap();
    let max_abs = |t: &Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    max_abs(&(got - &want).unwrap()) / max_abs(&want).max(1.0)
}

/// Parity with a PyTorch reference: the same shape, and a relative error (above) of at most 1e-4.
#[track_caller]
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let error = relative_error(got, want);
    assert!(
        error <= 1e-4,
        "{what}: max |a - b| / max(1, max |reference|) = {error:e} exceeds 1e-4"
    );
}
