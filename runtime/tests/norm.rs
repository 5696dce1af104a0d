//! Local response norm and batch norm against values worked out by hand, and LRN against a
//! plain loop written from the `torch.nn.LocalResponseNorm` definition.

mod common;

use std::collections::HashMap;

use archc_runtime::candle_core::{DType, Device, Module, ModuleT, Tensor};
use archc_runtime::candle_nn::VarBuilder;
use archc_runtime::{batch_norm, BatchNormSpec, Lrn};
use common::{assert_close, nchw, values, Rng};

fn channels(v: &[f32]) -> Tensor {
    nchw(v.to_vec(), (1, v.len(), 1, 1))
}

#[test]
fn lrn_size_2_window_is_the_channel_and_the_one_before() {
    // size 2: window c - 1 ..= c (size/2 = 1 before, (size-1)/2 = 0 after), zero padded.
    // a = [1, 2, 3]: sums of squares 0+1 = 1, 1+4 = 5, 4+9 = 13.
    // alpha = 2 so alpha / size = 1; k = 1; beta = 0.5:
    //   b = a / sqrt(1 + sum) = [1/sqrt(2), 2/sqrt(6), 3/sqrt(14)]
    let lrn = Lrn {
        size: 2,
        alpha: 2.0,
        beta: 0.5,
        k: 1.0,
    };
    let y = lrn.forward(&channels(&[1., 2., 3.])).unwrap();
    let expected = [0.707_106_77, 0.816_496_6, 0.801_783_7];
    assert_close(&y, &[1, 3, 1, 1], &expected, 1e-6, "size 2");
}

#[test]
fn lrn_size_3_window_is_centred() {
    // size 3: window c - 1 ..= c + 1. a = [1, 2, 3]: sums 1+4 = 5, 1+4+9 = 14, 4+9 = 13.
    // alpha = 3 (alpha / size = 1), k = 2, beta = 1: b = a / (2 + sum) = [1/7, 2/16, 3/15].
    let lrn = Lrn {
        size: 3,
        alpha: 3.0,
        beta: 1.0,
        k: 2.0,
    };
    let y = lrn.forward(&channels(&[1., 2., 3.])).unwrap();
    assert_close(&y, &[1, 3, 1, 1], &[1. / 7., 0.125, 0.2], 1e-6, "size 3");
}

#[test]
fn lrn_defaults_and_errors() {
    let lrn = Lrn::new(5);
    assert_eq!((lrn.alpha, lrn.beta, lrn.k), (1e-4, 0.75, 1.0));
    let flat = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let err = lrn.forward(&flat).unwrap_err().to_string();
    assert!(
        err.contains("rank 3 or more") && err.contains("[2, 3]"),
        "{err}"
    );
}

/// `torch.nn.functional.local_response_norm`, one value at a time.
fn reference_lrn(x: &[f32], dims: (usize, usize, usize, usize), lrn: &Lrn) -> Vec<f32> {
    let (n, c, h, w) = dims;
    let at = |b: usize, ch: usize, i: usize| x[(b * c + ch) * h * w + i];
    let mut y = Vec::with_capacity(x.len());
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h * w {
                let lo = ch as i64 - (lrn.size / 2) as i64;
                let hi = ch as i64 + ((lrn.size - 1) / 2) as i64;
                let mut sum = 0.0f64;
                for j in lo..=hi {
                    if (0..c as i64).contains(&j) {
                        sum += (at(b, j as usize, i) as f64).powi(2);
                    }
                }
                let div = (lrn.k + lrn.alpha * sum / lrn.size as f64).powf(lrn.beta);
                y.push((at(b, ch, i) as f64 / div) as f32);
            }
        }
    }
    y
}

#[test]
fn lrn_matches_reference_loop() {
    let mut rng = Rng::new(11);
    let dims = (2, 7, 3, 4);
    let data: Vec<f32> = rng.vec(2 * 7 * 3 * 4).iter().map(|v| v * 3.0).collect();
    let x = nchw(data.clone(), dims);
    for size in 1..=9 {
        for (alpha, beta, k) in [(1e-4, 0.75, 1.0), (0.5, 0.5, 2.0), (2.0, 1.5, 1.0)] {
            let lrn = Lrn {
                size,
                alpha,
                beta,
                k,
            };
            let y = lrn.forward(&x).unwrap();
            let expected = reference_lrn(&data, dims, &lrn);
            assert_close(&y, &[2, 7, 3, 4], &expected, 1e-5, &format!("{lrn:?}"));
        }
    }
}

fn bn_builder(weight: &[f32], bias: &[f32]) -> VarBuilder<'static> {
    let dev = Device::Cpu;
    let c = weight.len();
    let tensors = HashMap::from([
        ("bn.weight".to_string(), Tensor::new(weight, &dev).unwrap()),
        ("bn.bias".to_string(), Tensor::new(bias, &dev).unwrap()),
        (
            "bn.running_mean".to_string(),
            Tensor::zeros(c, DType::F32, &dev).unwrap(),
        ),
        (
            "bn.running_var".to_string(),
            Tensor::ones(c, DType::F32, &dev).unwrap(),
        ),
    ]);
    VarBuilder::from_tensors(tensors, DType::F32, &dev)
}

/// x: [N=2, C=2, H=1, W=2]. Channel 0 holds 1, 3 (sample 0) and 5, 7 (sample 1); channel 1
/// holds 0, 0 and 0, 4.
fn bn_input() -> Tensor {
    nchw(vec![1., 3., 0., 0., 5., 7., 0., 4.], (2, 2, 1, 2))
}

#[test]
fn batch_norm_training_normalises_with_batch_stats_and_updates_running_stats() {
    // Channel 0: mean 4, biased variance (9 + 1 + 1 + 9) / 4 = 5, unbiased 20 / 3.
    // Channel 1: mean 1, biased variance (1 + 1 + 1 + 9) / 4 = 3, unbiased 12 / 3 = 4.
    // Output with weight [2, 1], bias [0, 10], eps 0:
    //   channel 0: 2 * (x - 4) / sqrt(5)  -> 1: -6/sqrt5, 3: -2/sqrt5, 5: 2/sqrt5, 7: 6/sqrt5
    //   channel 1: (x - 1) / sqrt(3) + 10 -> 0: 10 - 1/sqrt3, 4: 10 + 3/sqrt3
    // Running stats, momentum 0.1, from mean 0 and variance 1:
    //   mean = 0.9 * 0 + 0.1 * [4, 1] = [0.4, 0.1]
    //   var  = 0.9 * 1 + 0.1 * [20/3, 4] = [1.566667, 1.3]
    let spec = BatchNormSpec {
        eps: 0.0,
        ..Default::default()
    };
    let bn = batch_norm(
        bn_builder(&[2., 1.], &[0., 10.]).pp("bn"),
        2,
        spec,
        "statement `bn`",
    )
    .unwrap();
    let y = bn.forward_t(&bn_input(), true).unwrap();
    let s5 = 5f32.sqrt();
    let s3 = 3f32.sqrt();
    #[rustfmt::skip]
    let expected = [
        -6. / s5, -2. / s5, 10. - 1. / s3, 10. - 1. / s3,
        2. / s5, 6. / s5, 10. - 1. / s3, 10. + 3. / s3,
    ];
    assert_close(&y, &[2, 2, 1, 2], &expected, 1e-6, "train output");
    assert_close(bn.running_mean(), &[2], &[0.4, 0.1], 1e-6, "running mean");
    assert_close(
        bn.running_var(),
        &[2],
        &[1.566_666_7, 1.3],
        1e-6,
        "running var",
    );

    // Evaluation now uses the running statistics: 2 * (1 - 0.4) / sqrt(1.566667) for x = 1.
    let y = bn.forward_t(&bn_input(), false).unwrap();
    let v0 = 1.566_666_7f32.sqrt();
    let v1 = 1.3f32.sqrt();
    #[rustfmt::skip]
    let expected = [
        2. * 0.6 / v0, 2. * 2.6 / v0, 10. - 0.1 / v1, 10. - 0.1 / v1,
        2. * 4.6 / v0, 2. * 6.6 / v0, 10. - 0.1 / v1, 10. + 3.9 / v1,
    ];
    assert_close(&y, &[2, 2, 1, 2], &expected, 1e-6, "eval output");
}

#[test]
fn batch_norm_eval_leaves_running_stats_alone_and_handles_2d_inputs() {
    let spec = BatchNormSpec {
        eps: 0.0,
        momentum: 0.5,
        affine: true,
    };
    let bn = batch_norm(bn_builder(&[1., 1.], &[0., 0.]).pp("bn"), 2, spec, "").unwrap();
    // [N=3, C=2]: channel 0 = 1, 2, 3 (mean 2, biased var 2/3, unbiased 1);
    // channel 1 = 0, 0, 6 (mean 2, biased var 8, unbiased 12).
    let x = Tensor::new(&[[1f32, 0.], [2., 0.], [3., 6.]], &Device::Cpu).unwrap();
    let y = bn.forward_t(&x, false).unwrap();
    assert_eq!(
        values(&y),
        values(&x),
        "eval with mean 0, var 1 is the identity"
    );
    assert_close(bn.running_mean(), &[2], &[0., 0.], 0.0, "untouched mean");
    bn.forward_t(&x, true).unwrap();
    // momentum 0.5: mean = [1, 1], var = 0.5 * 1 + 0.5 * [1, 12] = [1, 6.5].
    assert_close(bn.running_mean(), &[2], &[1., 1.], 1e-6, "1-d mean");
    assert_close(bn.running_var(), &[2], &[1., 6.5], 1e-6, "1-d var");
}

#[test]
fn batch_norm_errors() {
    let bn = batch_norm(
        bn_builder(&[1., 1.], &[0., 0.]).pp("bn"),
        2,
        Default::default(),
        "",
    )
    .unwrap();
    let one_per_channel = nchw(vec![1., 2.], (1, 2, 1, 1));
    let err = bn
        .forward_t(&one_per_channel, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 1 value per channel"), "{err}");
    assert!(bn.forward_t(&one_per_channel, false).is_ok());
    let wrong_channels = nchw(vec![0.; 6], (1, 3, 1, 2));
    let err = bn
        .forward_t(&wrong_channels, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expects 2 channels, found 3"), "{err}");
    let err = batch_norm(
        bn_builder(&[1., 1.], &[0., 0.]).pp("bn"),
        3,
        Default::default(),
        "statement `bn`",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "cannot load `bn.running_mean` for statement `bn`: expected shape [3], found [2]"
        ),
        "{err}"
    );
}
