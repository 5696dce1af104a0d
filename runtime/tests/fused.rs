//! The fused inference paths against the layers run one by one: `conv_bn_act` (batch norm and ReLU folded into
//! the convolution's output pass) and `sibling_heads` (1×1 convolutions that read the same tensor run as one
//! product). Every reference here is candle's own convolution, batch norm and ReLU.

mod common;

use archc_runtime::candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use archc_runtime::fused::{sibling_heads, Head};
use archc_runtime::{conv_bn_act, BatchNorm, Conv2d, Conv2dSpec, MaxPool2d, Pad2d};
use common::{batch_norm, tensor, values, Rng};

/// The layers one by one, as training runs them but with the batch norm in inference mode, the convolution
/// through candle (`Conv2d::forward` takes the CPU kernels for a grouped one).
fn reference(x: &Tensor, conv: &Conv2d, bn: Option<&BatchNorm>, relu: bool) -> Tensor {
    let mut y = conv.forward_with(x, false).unwrap();
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
    for call in 0..2 {
        let out = sibling_heads(&x, &heads, false).unwrap();
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
    let out = sibling_heads(&x, &heads, true).unwrap();
    assert!(out.iter().all(Option::is_none));
}

#[test]
fn sibling_heads_follow_weights_written_in_place_once_forgotten() {
    // A detached `Var` is not a variable, yet it shares the `Var`'s storage: training the `Var` changes it in
    // place. The heads' packed weights are kept between calls, each by its own layer, so after such a write the
    // layer's `forget_prepared` (or the model's) is what makes the fused product follow.
    let mut rng = Rng::new(4);
    let wa = Var::from_tensor(&tensor(&mut rng, &[3, 4, 1, 1])).unwrap();
    let a = Conv2d::new(wa.as_tensor().detach(), None, Conv2dSpec::default()).unwrap();
    let b = Conv2d::new(tensor(&mut rng, &[2, 4, 1, 1]), None, Conv2dSpec::default()).unwrap();
    let head = |conv| {
        Some(Head {
            conv,
            bn: None,
            relu: false,
        })
    };
    let heads = [head(&a), head(&b)];
    let x = tensor(&mut rng, &[1, 4, 3, 3]);
    let before = sibling_heads(&x, &heads, false).unwrap();
    assert_close(
        before[0].as_ref().expect("fused"),
        &reference(&x, &a, None, false),
        "before",
    );
    assert!(
        a.prepared_bytes() > 0 && b.prepared_bytes() > 0,
        "each head keeps its packed weights"
    );
    wa.set(&tensor(&mut rng, &[3, 4, 1, 1])).unwrap();
    a.forget_prepared();
    let after = sibling_heads(&x, &heads, false).unwrap();
    assert_close(
        after[0].as_ref().expect("fused"),
        &reference(&x, &a, None, false),
        "after the weights changed",
    );
    assert_close(
        after[1].as_ref().expect("fused"),
        &reference(&x, &b, None, false),
        "the other head",
    );
    assert_ne!(
        values(before[0].as_ref().unwrap()),
        values(after[0].as_ref().unwrap())
    );
}

#[test]
fn inference_mode_keeps_the_gradients_of_var_weights() {
    // Fine-tuning with frozen batch-norm statistics runs the model with `train = false` and still needs the
    // weights' gradients; the kernels' output has no gradient graph, so such layers must run as candle ops.
    let mut rng = Rng::new(5);
    let var = |rng: &mut Rng, dims: &[usize]| Var::from_tensor(&tensor(rng, dims)).unwrap();
    let (wa, wb, ba) = (
        var(&mut rng, &[3, 4, 1, 1]),
        var(&mut rng, &[2, 4, 1, 1]),
        var(&mut rng, &[3]),
    );
    let a = Conv2d::new(
        wa.as_tensor().clone(),
        Some(ba.as_tensor().clone()),
        Conv2dSpec::default(),
    )
    .unwrap();
    let b = Conv2d::new(wb.as_tensor().clone(), None, Conv2dSpec::default()).unwrap();
    let (gamma, beta) = (var(&mut rng, &[2]), var(&mut rng, &[2]));
    let inner = archc_runtime::candle_nn::BatchNorm::new(
        2,
        tensor(&mut rng, &[2]),
        tensor(&mut rng, &[2]).affine(0.5, 1.0).unwrap(),
        gamma.as_tensor().clone(),
        beta.as_tensor().clone(),
        1e-5,
    )
    .unwrap();
    let bn = BatchNorm::new(inner, 2).unwrap();
    let x = tensor(&mut rng, &[2, 4, 3, 3]);

    let y = conv_bn_act(&x, &a, None, true, false).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(wa.as_tensor()).is_some(), "conv weight");
    assert!(grads.get(ba.as_tensor()).is_some(), "conv bias");
    let y = conv_bn_act(&x, &b, Some(&bn), true, false).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(gamma.as_tensor()).is_some(), "batch norm weight");

    let heads = [
        Some(Head {
            conv: &a,
            bn: None,
            relu: true,
        }),
        Some(Head {
            conv: &b,
            bn: Some(&bn),
            relu: true,
        }),
    ];
    let out = sibling_heads(&x, &heads, false).unwrap();
    assert!(
        out.iter().all(Option::is_none),
        "heads that want gradients run as written"
    );
}

#[test]
fn conv_bn_act_matches_the_layers_for_every_geometry() {
    let mut rng = Rng::new(6);
    // (in, out, kernel, stride, pad, dilation, groups, input height and width)
    let cases = [
        // 'same' with even kernels pads one more after than before.
        (
            3,
            4,
            (2, 2),
            (1, 1),
            Pad2d::same((2, 2), (1, 1)).unwrap(),
            (1, 1),
            1,
            (5, 6),
        ),
        (
            3,
            4,
            (4, 2),
            (1, 1),
            Pad2d::same((4, 2), (2, 3)).unwrap(),
            (2, 3),
            1,
            (9, 8),
        ),
        (4, 8, (3, 3), (2, 1), Pad2d::uniform(1), (1, 1), 2, (7, 7)),
        (4, 4, (3, 3), (1, 1), Pad2d::uniform(2), (2, 2), 4, (6, 6)), // depthwise, dilated
        (4, 4, (1, 1), (3, 3), Pad2d::default(), (1, 1), 1, (7, 8)),  // stride > kernel
        (2, 3, (2, 2), (5, 4), Pad2d::uniform(1), (1, 1), 1, (7, 8)),
        (2, 3, (5, 5), (1, 1), Pad2d::uniform(2), (1, 1), 1, (2, 3)), // input smaller than the kernel
        (
            2,
            3,
            (3, 3),
            (1, 2),
            Pad2d {
                top: 0,
                bottom: 2,
                left: 1,
                right: 0,
            },
            (1, 2),
            1,
            (1, 5),
        ),
        (16, 20, (1, 1), (1, 1), Pad2d::default(), (1, 1), 1, (3, 3)),
        (16, 20, (3, 3), (1, 1), Pad2d::uniform(1), (1, 1), 2, (3, 3)),
    ];
    for (case, &(c_in, c_out, kernel, stride, pad, dilation, groups, (h, w))) in
        cases.iter().enumerate()
    {
        let weight = tensor(&mut rng, &[c_out, c_in / groups, kernel.0, kernel.1]);
        let spec = Conv2dSpec {
            stride,
            pad,
            dilation,
            groups,
        };
        let conv = Conv2d::new(weight, Some(tensor(&mut rng, &[c_out])), spec).unwrap();
        let bn = batch_norm(&mut rng, c_out, true, 1e-5);
        // Batches below, at and above the thread count, so both ways of splitting the work run.
        for batch in [1, 2, 3, 5] {
            let x = tensor(&mut rng, &[batch, c_in, h, w]);
            for (bn, relu) in [(None, false), (Some(&bn), true), (Some(&bn), false)] {
                let expected = reference(&x, &conv, bn, relu);
                let got = conv_bn_act(&x, &conv, bn, relu, false).unwrap();
                assert_close(&got, &expected, &format!("case {case}, batch {batch}"));
            }
        }
    }
}

#[test]
fn conv_bn_act_and_max_pool_read_any_strided_input() {
    let mut rng = Rng::new(7);
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    let conv = Conv2d::new(
        tensor(&mut rng, &[5, 3, 3, 3]),
        Some(tensor(&mut rng, &[5])),
        spec,
    )
    .unwrap();
    let pointwise =
        Conv2d::new(tensor(&mut rng, &[5, 3, 1, 1]), None, Conv2dSpec::default()).unwrap();
    let bn = batch_norm(&mut rng, 5, true, 1e-5);
    let pool = MaxPool2d {
        kernel: (3, 3),
        stride: (2, 2),
        pad: (1, 1),
        dilation: (1, 1),
        ceil_mode: true,
    };
    let big = tensor(&mut rng, &[4, 3, 8, 9]);
    let one = tensor(&mut rng, &[1, 3, 8, 9]);
    let inputs = [
        ("transposed", big.transpose(2, 3).unwrap()),
        ("narrowed rows", big.narrow(2, 1, 5).unwrap()),
        ("narrowed columns", big.narrow(3, 2, 5).unwrap()),
        ("narrowed batch", big.narrow(0, 1, 2).unwrap()),
        ("broadcast batch", one.broadcast_as((3, 3, 8, 9)).unwrap()),
        (
            "broadcast channels",
            one.narrow(1, 0, 1)
                .unwrap()
                .broadcast_as((2, 3, 8, 9))
                .unwrap(),
        ),
        (
            "batch and channels swapped",
            tensor(&mut rng, &[3, 2, 8, 9]).transpose(0, 1).unwrap(),
        ),
        (
            "NHWC",
            tensor(&mut rng, &[2, 8, 9, 3])
                .permute((0, 3, 1, 2))
                .unwrap(),
        ),
    ];
    for (what, x) in inputs {
        let contiguous = x.copy().unwrap();
        for conv in [&conv, &pointwise] {
            let expected = reference(&contiguous, conv, Some(&bn), true);
            let got = conv_bn_act(&x, conv, Some(&bn), true, false).unwrap();
            assert_close(&got, &expected, what);
        }
        let expected = pool.forward(&contiguous).unwrap();
        assert_close(&pool.forward(&x).unwrap(), &expected, what);
    }
}

#[test]
fn conv_bn_act_inside_an_outer_parallel_loop() {
    // One image per call and two threads: each call splits its own work between the threads, and a thread
    // waiting for its share may meanwhile run another call of the outer loop. Each call needs its own patch
    // buffer (this used to panic with "already borrowed").
    use rayon::prelude::*;
    let mut rng = Rng::new(8);
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    let conv = Conv2d::new(tensor(&mut rng, &[64, 32, 3, 3]), None, spec).unwrap();
    let images: Vec<Tensor> = (0..128)
        .map(|_| tensor(&mut rng, &[1, 32, 24, 24]))
        .collect();
    let expected: Vec<Vec<f32>> = images
        .iter()
        .map(|x| values(&reference(x, &conv, None, false)))
        .collect();
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for _ in 0..16 {
        let got: Vec<Vec<f32>> = threads.install(|| {
            images
                .par_iter()
                .map(|x| values(&conv_bn_act(x, &conv, None, false, false).unwrap()))
                .collect()
        });
        for (g, e) in got.iter().zip(&expected) {
            for (a, b) in g.iter().zip(e) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn conv_bn_act_rejects_bad_inputs_with_errors() {
    let mut rng = Rng::new(9);
    let conv = Conv2d::new(tensor(&mut rng, &[4, 3, 5, 5]), None, Conv2dSpec::default()).unwrap();
    let bad = [
        tensor(&mut rng, &[1, 3, 2, 2]), // smaller than the kernel
        tensor(&mut rng, &[1, 2, 9, 9]), // wrong channels
        tensor(&mut rng, &[3, 9, 9]),    // not NCHW
        Tensor::zeros((2, 3, 0, 9), DType::F32, &Device::Cpu).unwrap(),
    ];
    for x in &bad {
        assert!(
            conv_bn_act(x, &conv, None, true, false).is_err(),
            "{:?}",
            x.dims()
        );
    }
    let bn = batch_norm(&mut rng, 5, true, 1e-5);
    let x = tensor(&mut rng, &[1, 3, 9, 9]);
    assert!(
        conv_bn_act(&x, &conv, Some(&bn), true, false).is_err(),
        "batch norm width"
    );
    let empty = Tensor::zeros((0, 3, 9, 9), DType::F32, &Device::Cpu).unwrap();
    let y = conv_bn_act(&empty, &conv, None, true, false).unwrap();
    assert_eq!(y.dims(), [0, 4, 5, 5]);
}

/// Inputs without channels, or empty but padded maps, which the direct kernels for few taps leave to the
/// product: a result (the bias, or candle's), not a panic. The shallow kernel took both and panicked (its
/// taps table and band copy need at least one channel and value).
#[test]
fn conv_bn_act_of_empty_inputs_does_not_panic() {
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    let weight = Tensor::zeros((16, 0, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let bias = Tensor::ones(16, DType::F32, &Device::Cpu).unwrap();
    let conv = Conv2d::new(weight, Some(bias), spec).unwrap();
    let x = Tensor::zeros((1, 0, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let y = conv_bn_act(&x, &conv, None, false, false).unwrap();
    assert_eq!(y.dims(), [1, 16, 8, 8]);
    assert!(values(&y).iter().all(|&v| v == 1.0), "the bias alone");

    let mut rng = Rng::new(10);
    let conv = Conv2d::new(tensor(&mut rng, &[8, 3, 2, 2]), None, spec).unwrap();
    let x = Tensor::zeros((1, 3, 0, 4), DType::F32, &Device::Cpu).unwrap();
    // Whatever the layer makes of it (PyTorch refuses an empty map), it answers.
    let _ = conv_bn_act(&x, &conv, None, true, false);
}
