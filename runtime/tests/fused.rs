//! The fused inference paths against the layers run one by one: `conv_bn_act` (batch norm and ReLU folded into
//! the convolution's output pass) and `sibling_heads` (1×1 convolutions that read the same tensor run as one
//! product). Every reference here is candle's own convolution, batch norm and ReLU.

mod common;

use archc_runtime::candle_core::{Device, Module, ModuleT, Tensor, Var};
use archc_runtime::fused::{sibling_heads, Head, SiblingCache};
use archc_runtime::{conv_bn_act, BatchNorm, Conv2d, Conv2dSpec, Pad2d};
use common::{nchw, values, Rng};

fn tensor(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let len = dims.iter().product();
    Tensor::from_vec(rng.vec(len), dims, &Device::Cpu).unwrap()
}

/// A batch norm with random statistics (variance in [0.5, 1.5)) and, when `affine`, random weight and bias.
fn batch_norm(rng: &mut Rng, channels: usize, affine: bool, eps: f64) -> BatchNorm {
    let mean = tensor(rng, &[channels]);
    let var = (tensor(rng, &[channels]).affine(0.5, 1.0)).unwrap();
    let inner = if affine {
        let weight = tensor(rng, &[channels]);
        let bias = tensor(rng, &[channels]);
        archc_runtime::candle_nn::BatchNorm::new(channels, mean, var, weight, bias, eps).unwrap()
    } else {
        archc_runtime::candle_nn::BatchNorm::new_no_bias(channels, mean, var, eps).unwrap()
    };
    BatchNorm::new(inner, channels).unwrap()
}

/// The layers one by one, as training runs them but with the batch norm in inference mode.
fn reference(x: &Tensor, conv: &Conv2d, bn: Option<&BatchNorm>, relu: bool) -> Tensor {
    let mut y = conv.forward(x).unwrap();
    if let Some(bn) = bn {
        y = bn.forward_t(&y, false).unwrap();
    }
    if relu {
        y = y.relu().unwrap();
    }
    y
}

fn assert_close(got: &Tensor, expected: &Tensor, what: &str) {
    assert_eq!(got.dims(), expected.dims(), "{what}: shape");
    for (i, (a, e)) in values(got).iter().zip(values(expected)).enumerate() {
        assert!(
            (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
            "{what}: element {i}: {a} vs {e}"
        );
    }
}

#[test]
fn conv_bn_act_matches_the_layers_one_by_one() {
    let mut rng = Rng::new(1);
    // (in, out, kernel, stride, pad, groups, conv bias, batch norm: None / Some(affine), relu)
    let cases = [
        (8, 6, 1, 1, 0, 1, false, Some(true), true),
        (8, 6, 3, 1, 1, 1, true, Some(false), true),
        (4, 6, 7, 2, 3, 1, false, Some(true), false),
        (6, 6, 3, 2, 1, 3, true, None, true),
        (5, 4, 2, 1, 0, 1, true, None, false),
    ];
    for (case, &(c_in, c_out, k, stride, pad, groups, bias, bn, relu)) in cases.iter().enumerate() {
        let weight = tensor(&mut rng, &[c_out, c_in / groups, k, k]);
        let bias = bias.then(|| tensor(&mut rng, &[c_out]));
        let spec = Conv2dSpec {
            stride: (stride, stride),
            pad: Pad2d::uniform(pad),
            dilation: (1, 1),
            groups,
        };
        let conv = Conv2d::new(weight, bias, spec).unwrap();
        let bn = bn.map(|affine| batch_norm(&mut rng, c_out, affine, 1e-3));
        for batch in [1, 3] {
            let x = tensor(&mut rng, &[batch, c_in, 9, 11]);
            let expected = reference(&x, &conv, bn.as_ref(), relu);
            let got = conv_bn_act(&x, &conv, bn.as_ref(), relu, false).unwrap();
            assert_close(&got, &expected, &format!("case {case}, batch {batch}"));
        }
    }
}

#[test]
fn conv_bn_act_reads_a_channel_slice_in_place() {
    // A narrowed input, as a fused sibling's output is: images are contiguous blocks, but not adjacent.
    let mut rng = Rng::new(2);
    let wide = tensor(&mut rng, &[2, 10, 6, 6]);
    let x = wide.narrow(1, 3, 4).unwrap();
    let conv = Conv2d::new(tensor(&mut rng, &[5, 4, 3, 3]), None, Conv2dSpec::default()).unwrap();
    let bn = batch_norm(&mut rng, 5, true, 1e-5);
    let expected = reference(&x.contiguous().unwrap(), &conv, Some(&bn), true);
    let got = conv_bn_act(&x, &conv, Some(&bn), true, false).unwrap();
    assert_close(&got, &expected, "narrowed input");
}

#[test]
fn sibling_heads_run_pointwise_heads_together_and_leave_the_rest() {
    let mut rng = Rng::new(3);
    let pointwise = |rng: &mut Rng, out: usize| {
        Conv2d::new(tensor(rng, &[out, 6, 1, 1]), None, Conv2dSpec::default()).unwrap()
    };
    let a = pointwise(&mut rng, 4);
    let b = pointwise(&mut rng, 3);
    let c = Conv2d::new(
        tensor(&mut rng, &[2, 6, 3, 3]),
        Some(tensor(&mut rng, &[2])),
        Conv2dSpec {
            pad: Pad2d::uniform(1),
            ..Conv2dSpec::default()
        },
    )
    .unwrap();
    let d = Conv2d::new(
        tensor(&mut rng, &[5, 6, 1, 1]),
        Some(tensor(&mut rng, &[5])),
        Conv2dSpec::default(),
    )
    .unwrap();
    let (bn_a, bn_b) = (
        batch_norm(&mut rng, 4, true, 1e-3),
        batch_norm(&mut rng, 3, false, 1e-3),
    );
    let heads = [
        Some(Head {
            conv: &a,
            bn: Some(&bn_a),
            relu: true,
        }),
        None,
        Some(Head {
            conv: &c,
            bn: None,
            relu: true,
        }), // 3x3: not pointwise
        Some(Head {
            conv: &b,
            bn: Some(&bn_b),
            relu: true,
        }),
        Some(Head {
            conv: &d,
            bn: None,
            relu: false,
        }), // pointwise, but a different ReLU choice
    ];
    let x = tensor(&mut rng, &[2, 6, 5, 7]);
    let cache = SiblingCache::default();
    for call in 0..2 {
        let out = sibling_heads(&x, &heads, &cache, false).unwrap();
        assert_eq!(out.len(), heads.len());
        assert!(
            out[1].is_none() && out[2].is_none() && out[4].is_none(),
            "only a and b are fused"
        );
        assert_close(
            out[0].as_ref().unwrap(),
            &reference(&x, &a, Some(&bn_a), true),
            &format!("a, call {call}"),
        );
        assert_close(
            out[3].as_ref().unwrap(),
            &reference(&x, &b, Some(&bn_b), true),
            &format!("b, call {call}"),
        );
    }
    // Training runs every branch as written.
    let out = sibling_heads(&x, &heads, &cache, true).unwrap();
    assert!(out.iter().all(Option::is_none));
}

#[test]
fn sibling_heads_never_reuse_stacked_weights_that_changed() {
    // Var weights change in place when a model trains; the stacked copy must follow them.
    let mut rng = Rng::new(4);
    let wa = Var::from_tensor(&tensor(&mut rng, &[3, 4, 1, 1])).unwrap();
    let wb = Var::from_tensor(&tensor(&mut rng, &[2, 4, 1, 1])).unwrap();
    let a = Conv2d::new(wa.as_tensor().clone(), None, Conv2dSpec::default()).unwrap();
    let b = Conv2d::new(wb.as_tensor().clone(), None, Conv2dSpec::default()).unwrap();
    let heads = [
        Some(Head {
            conv: &a,
            bn: None,
            relu: false,
        }),
        Some(Head {
            conv: &b,
            bn: None,
            relu: false,
        }),
    ];
    let x = tensor(&mut rng, &[1, 4, 3, 3]);
    let cache = SiblingCache::default();
    let before = sibling_heads(&x, &heads, &cache, false).unwrap();
    assert_close(
        before[0].as_ref().unwrap(),
        &reference(&x, &a, None, false),
        "before",
    );
    wa.set(&tensor(&mut rng, &[3, 4, 1, 1])).unwrap();
    let after = sibling_heads(&x, &heads, &cache, false).unwrap();
    assert_close(
        after[0].as_ref().unwrap(),
        &reference(&x, &a, None, false),
        "after the weights changed",
    );
    assert_ne!(
        values(before[0].as_ref().unwrap()),
        values(after[0].as_ref().unwrap())
    );
}
