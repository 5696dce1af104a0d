//! Runtime support for archc-generated models: the few candle layers whose PyTorch semantics
//! candle does not provide (pooling with padding and ceil mode, adaptive average pooling, local
//! response normalisation, convolution with asymmetric padding), batch norm and tensor loading
//! with errors that name the `.arch` statement a weight belongs to, weight files opened with errors that
//! name the file and the culprit tensor ([`Weights`]), and shape arithmetic.
//!
//! Generated code names candle through this crate ([`candle_core`], [`candle_nn`]) so that a
//! model crate needs only `archc-runtime` as a dependency.

pub mod conv;
mod cpu;
pub mod fused;
pub mod linear;
pub mod load;
pub mod memory;
pub mod nn;
pub mod norm;
pub mod plan;
pub mod pool;
pub mod prepared;
pub mod profile;
pub mod shape;
pub mod weights;
pub mod winograd;

#[cfg(feature = "macros")]
pub use archc_macros::include_arch;
pub use candle_core;
pub use candle_nn;

pub use conv::{conv2d, Conv2d, Conv2dSpec, Pad2d};
/// The environment variable that narrows the CPU kernels' instruction set (`portable`, `avx2`, `avx512`).
pub use cpu::ISA_VARIABLE;
pub use fused::conv_bn_act;
pub use linear::linear;
pub use load::{load_tensor, load_tensor_with_init};
pub use norm::{batch_norm, BatchNorm, BatchNormSpec, Lrn};
pub use pool::{adaptive_avg_pool2d, AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use shape::{conv_out_size, expect_nchw, pool_out_size, Dims};
pub use weights::Weights;

/// An error carrying just `message`. Unlike `candle_core::Error::msg`, no backtrace is attached
/// when `RUST_BACKTRACE` is set, so the text stays the one written here.
pub(crate) fn error(message: impl Into<String>) -> candle_core::Error {
    candle_core::Error::Msg(message.into())
}
