//! The element-wise activations generated code runs (`nn::Activation`'s `Relu6`, `Silu`, `Sigmoid`,
//! `HardSwish`, `HardSigmoid`, `Gelu`), forward and backward, against values computed with PyTorch; and
//! stochastic depth in training and in inference.

mod common;

use archc_runtime::candle_core::{Device, Module, ModuleT, Tensor, Var};
use archc_runtime::nn::{self, Activation};
use common::{assert_close, values};

/// The inputs: both sides of every kink (0, ±3, 6) but never on one, where PyTorch's and candle's
/// subgradients may differ.
const X: [f32; 13] = [
    -7.5, -4.0, -3.5, -2.9, -1.0, -0.25, 0.5, 1.5, 2.75, 3.25, 5.5, 6.5, 8.0,
];

/// `(activation, PyTorch module, f(X), d/dx sum(f(X)))`. Computed in float64 with PyTorch 2 by
/// `x = torch.tensor(X, dtype=torch.float64, requires_grad=True); y = module(x); y.sum().backward()`,
/// printing `y` and `x.grad` to 9 significant digits, kept as printed.
#[allow(clippy::excessive_precision)]
const CASES: &[(Activation, &str, [f32; 13], [f32; 13])] = &[
    (
        Activation::Relu6,
        "ReLU6",
        [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.5, 2.75, 3.25, 5.5, 6.0, 6.0,
        ],
        [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0,
        ],
    ),
    (
        Activation::Silu,
        "SiLU",
        [
            -0.004_145_839_78,
            -0.071_944_839_8,
            -0.102_592_808,
            -0.151_245_333,
            -0.268_941_421,
            -0.109_455_875,
            0.311_229_666,
            1.226_361_71,
            2.584_761_71,
            3.128_687_62,
            5.477_614_24,
            6.490_242_32,
            7.997_317_2,
        ],
        [
            -0.003_590_769_41,
            -0.052_664_614_9,
            -0.070_273_352_8,
            -0.091_203_786_8,
            0.072_329_488_1,
            0.376_289_978,
            0.739_961_187,
            1.041_294_15,
            1.095_223_02,
            1.079_457_28,
            1.018_224_51,
            1.008_241_85,
            1.002_346_55,
        ],
    ),
    (
        Activation::Sigmoid,
        "Sigmoid",
        [
            0.000_552_778_637,
            0.017_986_21,
            0.029_312_230_8,
            0.052_153_563_1,
            0.268_941_421,
            0.437_823_499,
            0.622_459_331,
            0.817_574_476,
            0.939_913_35,
            0.962_673_113,
            0.995_929_862,
            0.998_498_818,
            0.999_664_65,
        ],
        [
            0.000_552_473_073,
            0.017_662_706_2,
            0.028_453_023_9,
            0.049_433_568_9,
            0.196_611_933,
            0.246_134_083,
            0.235_003_712,
            0.149_146_452,
            0.056_476_244_6,
            0.035_933_590_8,
            0.004_053_571_69,
            0.001_498_928_71,
            0.000_335_237_671,
        ],
    ),
    (
        Activation::HardSwish,
        "Hardswish",
        [
            0.0,
            0.0,
            0.0,
            -0.048_333_333_3,
            -0.333_333_333,
            -0.114_583_333,
            0.291_666_667,
            1.125,
            2.635_416_67,
            3.25,
            5.5,
            6.5,
            8.0,
        ],
        [
            0.0,
            0.0,
            0.0,
            -0.466_666_667,
            0.166_666_667,
            0.416_666_667,
            0.666_666_667,
            1.0,
            1.416_666_67,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
    ),
    (
        Activation::HardSigmoid,
        "Hardsigmoid",
        [
            0.0,
            0.0,
            0.0,
            0.016_666_666_7,
            0.333_333_333,
            0.458_333_333,
            0.583_333_333,
            0.75,
            0.958_333_333,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        [
            0.0,
            0.0,
            0.0,
            0.166_666_672,
            0.166_666_672,
            0.166_666_672,
            0.166_666_672,
            0.166_666_672,
            0.166_666_672,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
    ),
    (
        Activation::Gelu,
        "GELU() (approximate='none')",
        [
            -2.393_918_4e-13,
            -0.000_126_684_967,
            -0.000_814_201_777,
            -0.005_410_858_57,
            -0.158_655_254,
            -0.100_323_419,
            0.345_731_231,
            1.399_789_2,
            2.741_805_65,
            3.248_124_67,
            5.499_999_9,
            6.5,
            8.0,
        ],
        [
            -1.793_821_49e-12,
            -0.000_503_649_661,
            -0.002_821_760_35,
            -0.015_396_530_7,
            -0.083_315_470_6,
            0.304_626_645,
            0.867_495_125,
            1.127_469_19,
            1.022_027_53,
            1.006_017_38,
            1.000_000_57,
            1.0,
            1.0,
        ],
    ),
];

fn input() -> Tensor {
    Tensor::from_vec(X.to_vec(), (1, 13, 1, 1), &Device::Cpu).unwrap()
}

#[test]
fn each_activation_computes_pytorchs_function() {
    for (activation, torch, expected, _) in CASES {
        let y = activation.forward(&input()).unwrap();
        assert_close(&y, &[1, 13, 1, 1], expected, 1e-6, torch);
    }
}

#[test]
fn each_activation_computes_pytorchs_gradient() {
    for (activation, torch, _, expected) in CASES {
        let x = Var::from_tensor(&input()).unwrap();
        let y = activation.forward(x.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx = grads.get(x.as_tensor()).expect("a gradient for x");
        // candle's gelu_erf backward writes 1/sqrt(2 pi) as 0.398942: a relative error of 7e-7.
        assert_close(dx, &[1, 13, 1, 1], expected, 2e-6, torch);
    }
}

#[test]
fn gelu_is_the_erf_form_not_the_tanh_approximation() {
    // At x = 1: 0.5 * (1 + erf(1 / sqrt 2)) = 0.841344746 (erf(0.707106781) = 0.682689492); the tanh
    // approximation gives 0.841191990.
    let x = Tensor::from_vec(vec![1f32], (1, 1), &Device::Cpu).unwrap();
    let y = Activation::Gelu.forward(&x).unwrap();
    assert_close(&y, &[1, 1], &[0.841_344_7], 1e-6, "gelu(1)");
}

fn ones(n: usize) -> Tensor {
    Tensor::ones(
        (n, 3, 2, 2),
        archc_runtime::candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn stochastic_depth_is_the_identity_in_inference_and_for_p_0() {
    let x = Tensor::randn(0f32, 1.0, (8, 3, 2, 2), &Device::Cpu).unwrap();
    let half = nn::stochastic_depth(0.5).unwrap();
    assert_eq!(values(&half.forward_t(&x, false).unwrap()), values(&x));
    let none = nn::stochastic_depth(0.0).unwrap();
    assert_eq!(values(&none.forward_t(&x, true).unwrap()), values(&x));
}

#[test]
fn stochastic_depth_zeroes_whole_samples_and_scales_the_rest() {
    // p = 0.5: every sample is all 0 or all 1 / (1 - 0.5) = 2. 64 samples all alike has probability 2^-63.
    let depth = nn::stochastic_depth(0.5).unwrap();
    let y = depth.forward_t(&ones(64), true).unwrap();
    assert_eq!(y.dims(), [64, 3, 2, 2]);
    let mut kept = 0;
    for sample in 0..64 {
        let v = values(&y.get(sample).unwrap());
        assert!(
            v.iter().all(|&e| e == 0.0) || v.iter().all(|&e| e == 2.0),
            "sample {sample}: {v:?}"
        );
        kept += usize::from(v[0] == 2.0);
    }
    assert!(0 < kept && kept < 64, "{kept} of 64 samples kept");

    // p = 0.25 on a flat input: survivors are scaled by 4 / 3.
    let depth = nn::stochastic_depth(0.25).unwrap();
    let x = Tensor::ones(
        (32, 5),
        archc_runtime::candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    for v in values(&depth.forward_t(&x, true).unwrap()) {
        assert!(v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6, "{v}");
    }
}

#[test]
fn stochastic_depth_passes_gradients_to_the_survivors() {
    let depth = nn::stochastic_depth(0.5).unwrap();
    let x = Var::from_tensor(&ones(16)).unwrap();
    let y = depth.forward_t(x.as_tensor(), true).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    // d sum(x * mask) / dx = mask, which is y itself for an input of ones.
    assert_eq!(values(grads.get(x.as_tensor()).unwrap()), values(&y));
}

#[test]
fn stochastic_depth_rejects_p_outside_0_to_1() {
    for p in [-0.1, 1.0, 1.5, f64::NAN] {
        let message = nn::stochastic_depth(p).unwrap_err().to_string();
        assert!(message.contains("must be in [0, 1)"), "{p}: {message}");
    }
}
