//! Comparing tensors in tests: the relative error every parity test bounds.

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
