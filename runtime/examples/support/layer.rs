//! The layer `bench_conv` and `bench_winograd` time: a convolution, its batch norm and ReLU (folded into the
//! output pass by a plan), with deterministic weights. A module of its own, included by those two with `#[path]`,
//! so that `bench_depthwise` does not compile what it does not use.

use archc_runtime::candle_core::{Device, Result, Tensor};
use archc_runtime::nn::{Describe, Op};
use archc_runtime::{BatchNorm, Conv2d, Conv2dSpec};

use crate::support::values;

/// A convolution, its batch norm and ReLU, described for a plan.
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl Describe for ConvBnRelu {
    fn describe(&self) -> Op<'_> {
        Op::Chain(vec![
            Op::Conv(&self.conv),
            Op::BatchNorm(&self.bn),
            Op::Relu,
        ])
    }
}

/// `c_out` filters over `c_in` channels with a `kernel` window (`spec` for the rest) and Kaiming-scaled uniform
/// weights from `seed`, then a batch norm (ε 1e-3) with [`bn_params`]`(c_out, seed)`.
pub fn conv_bn_relu(
    c_in: usize,
    c_out: usize,
    (kh, kw): (usize, usize),
    spec: Conv2dSpec,
    seed: u64,
) -> Result<ConvBnRelu> {
    let scale = (6.0 / (kh * kw * c_in) as f32).sqrt();
    let weight = values(c_out * c_in * kh * kw, 4 * seed + 1)
        .into_iter()
        .map(|v| v * scale)
        .collect();
    let weight = Tensor::from_vec(weight, (c_out, c_in, kh, kw), &Device::Cpu)?;
    let [mean, var, gamma, beta] = bn_params(c_out, seed)?;
    let inner = archc_runtime::candle_nn::BatchNorm::new(c_out, mean, var, gamma, beta, 1e-3)?;
    Ok(ConvBnRelu {
        conv: Conv2d::new(weight, None, spec)?,
        bn: BatchNorm::new(inner, c_out)?,
    })
}

/// The batch norm of [`conv_bn_relu`] with `seed`: running means around 0, variances around 1, weights around 1,
/// biases around 0.
pub fn bn_params(c_out: usize, seed: u64) -> Result<[Tensor; 4]> {
    let vec = |k: u64, offset: f32| {
        let v = values(c_out, 100 * seed + k)
            .into_iter()
            .map(|v| v * 0.5 + offset)
            .collect();
        Tensor::from_vec(v, c_out, &Device::Cpu)
    };
    Ok([vec(11, 0.0)?, vec(12, 1.0)?, vec(13, 1.0)?, vec(14, 0.0)?])
}
