//! Fully connected layers loaded with descriptive errors.

use candle_core::Result;
use candle_nn::{init::DEFAULT_KAIMING_NORMAL, Linear, VarBuilder};

use crate::load::{load_bias, load_tensor_with_init};

/// Loads a `torch.nn.Linear` from `vb`: `weight` `[out_features, in_features]` and, when `bias`
/// is set, `bias` `[out_features]`, naming `context` in any error.
///
/// A `VarMap`-backed builder initialises new tensors with Kaiming normal weights and a bias
/// uniform in `±1 / sqrt(in_features)`, as `candle_nn::linear` does.
pub fn linear(
    vb: VarBuilder,
    in_features: usize,
    out_features: usize,
    bias: bool,
    context: &str,
) -> Result<Linear> {
    let weight = load_tensor_with_init(
        &vb,
        "weight",
        (out_features, in_features),
        DEFAULT_KAIMING_NORMAL,
        context,
    )?;
    let bias = bias
        .then(|| load_bias(&vb, out_features, in_features, context))
        .transpose()?;
    Ok(Linear::new(weight, bias))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Module, Tensor};

    use super::*;

    #[test]
    fn linear_loads_and_applies_weight_and_bias() {
        let dev = Device::Cpu;
        let tensors = HashMap::from([
            (
                "fc.weight".to_string(),
                Tensor::new(&[[1f32, 2., 3.], [0., -1., 1.]], &dev).unwrap(),
            ),
            (
                "fc.bias".to_string(),
                Tensor::new(&[10f32, 20.], &dev).unwrap(),
            ),
        ]);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let fc = linear(vb.pp("fc"), 3, 2, true, "statement `fc`").unwrap();
        let x = Tensor::new(&[[1f32, 1., 2.]], &dev).unwrap();
        // [1 + 2 + 6 + 10, 0 - 1 + 2 + 20] = [19, 21]
        let y = fc.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![19., 21.]]);
        let err = linear(vb.pp("fc"), 4, 2, true, "statement `fc`")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("expected shape [2, 4], found [2, 3]"),
            "{err}"
        );
    }
}
