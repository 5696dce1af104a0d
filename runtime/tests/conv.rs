//! Convolution with per-axis options against hand-worked examples and a plain loop written from
//! the `torch.nn.Conv2d` definition.

mod common;

use std::collections::HashMap;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::VarBuilder;
use archc_runtime::{conv2d, Conv2d, Conv2dSpec, Pad2d};
use common::{assert_close, iota, nchw, values, Rng};

fn ones(dims: (usize, usize, usize, usize)) -> Tensor {
    Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn asymmetric_padding() {
    // x = [[1, 2, 3], [4, 5, 6]], kernel [[1, 1]] adds horizontal neighbours.
    let x = nchw(vec![1., 2., 3., 4., 5., 6.], (1, 1, 2, 3));
    // One zero column on the left only: [0+1, 1+2, 2+3], [0+4, 4+5, 5+6].
    let spec = Conv2dSpec {
        pad: Pad2d {
            left: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let conv = Conv2d::new(ones((1, 1, 1, 2)), None, spec).unwrap();
    assert_close(
        &conv.forward(&x).unwrap(),
        &[1, 1, 2, 3],
        &[1., 3., 5., 4., 9., 11.],
        0.0,
        "left",
    );
    // 'same' for a kernel of width 2 pads 0 before and 1 after: [1+2, 2+3, 3+0], [9, 11, 6].
    let spec = Conv2dSpec {
        pad: Pad2d::same((1, 2), (1, 1)).unwrap(),
        ..Default::default()
    };
    assert_eq!(
        spec.pad,
        Pad2d {
            top: 0,
            bottom: 0,
            left: 0,
            right: 1
        }
    );
    let conv = Conv2d::new(ones((1, 1, 1, 2)), None, spec).unwrap();
    assert_close(
        &conv.forward(&x).unwrap(),
        &[1, 1, 2, 3],
        &[3., 5., 3., 9., 11., 6.],
        0.0,
        "same",
    );
}

#[test]
fn unequal_strides() {
    // 3x4 iota (x = 4r + c), 1x1 kernel of weight 1, stride (1, 2): every other column.
    let spec = Conv2dSpec {
        stride: (1, 2),
        ..Default::default()
    };
    let conv = Conv2d::new(ones((1, 1, 1, 1)), None, spec).unwrap();
    let y = conv.forward(&iota(3, 4)).unwrap();
    assert_close(
        &y,
        &[1, 1, 3, 2],
        &[0., 2., 4., 6., 8., 10.],
        0.0,
        "1x1 stride (1, 2)",
    );
    // 2x2 kernel of ones, stride (2, 1): one row of windows at row 0, columns 0..3:
    // 0+1+4+5 = 10, 1+2+5+6 = 14, 2+3+6+7 = 18.
    let spec = Conv2dSpec {
        stride: (2, 1),
        ..Default::default()
    };
    let conv = Conv2d::new(ones((1, 1, 2, 2)), None, spec).unwrap();
    let y = conv.forward(&iota(3, 4)).unwrap();
    assert_close(
        &y,
        &[1, 1, 1, 3],
        &[10., 14., 18.],
        0.0,
        "2x2 stride (2, 1)",
    );
}

#[test]
fn unequal_dilation() {
    // 3x2 iota (x = 2r + c), kernel [[1], [1]] with dilation (2, 1): x[0][c] + x[2][c] = [4, 6].
    let spec = Conv2dSpec {
        dilation: (2, 1),
        ..Default::default()
    };
    let conv = Conv2d::new(ones((1, 1, 2, 1)), None, spec).unwrap();
    let y = conv.forward(&iota(3, 2)).unwrap();
    assert_close(&y, &[1, 1, 1, 2], &[4., 6.], 0.0, "dilation (2, 1)");
}

/// `torch.nn.Conv2d`, one output value at a time.
#[allow(clippy::too_many_arguments)]
fn reference_conv(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    weight: &[f32],
    (o, cg, kh, kw): (usize, usize, usize, usize),
    bias: &[f32],
    spec: &Conv2dSpec,
) -> (Vec<f32>, (usize, usize)) {
    let span = |input: usize, lo: usize, hi: usize, k: usize, d: usize, s: usize| {
        (input + lo + hi - d * (k - 1) - 1) / s + 1
    };
    let oh = span(
        h,
        spec.pad.top,
        spec.pad.bottom,
        kh,
        spec.dilation.0,
        spec.stride.0,
    );
    let ow = span(
        w,
        spec.pad.left,
        spec.pad.right,
        kw,
        spec.dilation.1,
        spec.stride.1,
    );
    let groups = spec.groups;
    let per_group_out = o / groups;
    let mut y = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            let g = oc / per_group_out;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bias[oc] as f64;
                    for ic in 0..cg {
                        let xc = g * cg + ic;
                        for u in 0..kh {
                            for v in 0..kw {
                                let r = (i * spec.stride.0 + u * spec.dilation.0) as i64
                                    - spec.pad.top as i64;
                                let q = (j * spec.stride.1 + v * spec.dilation.1) as i64
                                    - spec.pad.left as i64;
                                if r < 0 || q < 0 || r >= h as i64 || q >= w as i64 {
                                    continue;
                                }
                                let xv = x[((b * c + xc) * h + r as usize) * w + q as usize];
                                let wv = weight[((oc * cg + ic) * kh + u) * kw + v];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y.push(acc as f32);
                }
            }
        }
    }
    (y, (oh, ow))
}

#[test]
fn conv_matches_reference_loop() {
    let mut rng = Rng::new(21);
    let dev = Device::Cpu;
    let (n, c, h, w) = (2, 4, 7, 6);
    let x_data = rng.vec(n * c * h * w);
    let x = nchw(x_data.clone(), (n, c, h, w));
    let pads = [
        Pad2d::default(),
        Pad2d::uniform(1),
        Pad2d::symmetric(2, 0),
        Pad2d {
            top: 0,
            bottom: 1,
            left: 2,
            right: 1,
        },
    ];
    let mut checked = 0;
    for (kh, kw) in [(1, 1), (3, 3), (2, 3), (3, 1)] {
        for stride in [(1, 1), (2, 2), (1, 2), (3, 2)] {
            for dilation in [(1, 1), (2, 2), (2, 1)] {
                for pad in pads {
                    for groups in [1, 2] {
                        let spec = Conv2dSpec {
                            stride,
                            pad,
                            dilation,
                            groups,
                        };
                        let o = 6;
                        let cg = c / groups;
                        let weight = rng.vec(o * cg * kh * kw);
                        let bias = rng.vec(o);
                        let conv = Conv2d::new(
                            Tensor::from_vec(weight.clone(), (o, cg, kh, kw), &dev).unwrap(),
                            Some(Tensor::from_vec(bias.clone(), o, &dev).unwrap()),
                            spec,
                        )
                        .unwrap();
                        let what = format!("kernel {kh}x{kw} {spec:?}");
                        let eh = (kh - 1) * dilation.0 + 1;
                        let ew = (kw - 1) * dilation.1 + 1;
                        // Candle's path, and `forward`, which takes the CPU kernels for 2 groups.
                        let paths = [false, true];
                        if eh > h + pad.top + pad.bottom || ew > w + pad.left + pad.right {
                            for kernels in paths {
                                let y = conv.forward_with(&x, kernels);
                                assert!(y.is_err(), "{what}, kernels {kernels}: expected an error");
                            }
                            continue;
                        }
                        let (expected, (oh, ow)) = reference_conv(
                            &x_data,
                            (n, c, h, w),
                            &weight,
                            (o, cg, kh, kw),
                            &bias,
                            &spec,
                        );
                        for kernels in paths {
                            let what = format!("{what}, kernels {kernels}");
                            let y = conv
                                .forward_with(&x, kernels)
                                .unwrap_or_else(|e| panic!("{what}: {e}"));
                            assert_close(&y, &[n, o, oh, ow], &expected, 1e-5, &what);
                        }
                        assert_eq!(conv.output_size((h, w)).unwrap(), (oh, ow), "{what}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} configurations checked");
}

#[test]
fn conv2d_loads_from_a_var_builder_with_context_in_errors() {
    let dev = Device::Cpu;
    let tensors = HashMap::from([
        (
            "stem.conv.weight".to_string(),
            Tensor::ones((2, 1, 3, 3), DType::F32, &dev).unwrap(),
        ),
        (
            "stem.conv.bias".to_string(),
            Tensor::new(&[0f32, 1.], &dev).unwrap(),
        ),
    ]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let context = "statement `stem` at architectures/tiny.arch:3:5";
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Default::default()
    };
    let conv = conv2d(vb.pp("stem").pp("conv"), 1, 2, (3, 3), spec, true, context).unwrap();
    // A 3x3 box filter over a 2x2 block of ones padded by 1 sums all four: 4 (+ bias).
    let y = conv.forward(&ones((1, 1, 2, 2))).unwrap();
    assert_eq!(values(&y), vec![4., 4., 4., 4., 5., 5., 5., 5.]);

    let err = conv2d(vb.pp("stem").pp("conv"), 3, 2, (3, 3), spec, true, context)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cannot load `stem.conv.weight` for statement `stem` at architectures/tiny.arch:3:5: \
         expected shape [2, 3, 3, 3], found [2, 1, 3, 3]"
    );
    let grouped = Conv2dSpec { groups: 2, ..spec };
    let err = conv2d(
        vb.pp("stem").pp("conv"),
        3,
        2,
        (3, 3),
        grouped,
        true,
        context,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("input channels 3 do not divide into 2 groups"),
        "{err}"
    );
    assert!(err.starts_with(context), "{err}");

    let err = conv.forward(&ones((1, 3, 2, 2))).unwrap_err().to_string();
    assert!(err.contains("expects 1 input channels, found 3"), "{err}");
    let err = conv
        .forward(&ones((1, 1, 2, 2)).flatten_from(1).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rank-4 NCHW") && err.contains("[1, 4]"),
        "{err}"
    );
}
