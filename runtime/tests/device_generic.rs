//! The device-generic layer code, run on the CPU: what a model runs on CUDA (or any device but the CPU in
//! `f32`), checked against the CPU kernels, which `pool.rs`, `norm.rs` and `fused.rs` check against loops
//! written from PyTorch's definitions.
//!
//! The CPU kernels engage only for CPU `f32` tensors that no gradient is wanted for, so the generic code is
//! reached here with `f64` inputs (the same tensor ops as on CUDA, in another dtype), with `f32` inputs that
//! track a gradient (the training path), and with `f16`/`bf16` inputs (mixed precision). Every op that code
//! uses — `cat`, `narrow`, `index_select`, `max`/`sum` over a dimension, candle's unpadded `max_pool2d`,
//! `affine`, `broadcast_div`, `matmul`, `sqr`, `powf`, and candle's batch norm — has a CUDA kernel in candle.
//!
//! Tolerances: `f64` and `f32` paths agree to 1e-6 (relative to max(1, |value|)); `bf16` results are within
//! 2^-7 (one part in 128, a couple of `bf16` roundings of an 8-bit significand) and `f16` within 2^-9 of the
//! `f32` results, relative to max(1, |value|).

mod common;

use archc_runtime::candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use archc_runtime::candle_nn::VarBuilder;
use archc_runtime::{adaptive_avg_pool2d, batch_norm, AvgPool2d, BatchNormSpec, Lrn, MaxPool2d};
use common::{nchw, values, Rng};

/// Input sizes: odd, even, non-square and GoogLeNet-like.
const SIZES: [(usize, usize); 6] = [(1, 1), (2, 3), (5, 6), (7, 7), (4, 9), (14, 14)];

/// The values of `t` as `f32`, whatever its dtype.
fn values_f32(t: &Tensor) -> Vec<f32> {
    values(&t.to_dtype(DType::F32).unwrap())
}

#[track_caller]
fn assert_all_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (got, want) = (values_f32(got), values_f32(want));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let ok = g == w || (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok, "{what}: element {i}: {g} vs {w} (tolerance {tol})");
    }
}

/// Every max pool the language accepts over small kernels, strides, paddings, dilations and both rounding
/// modes, with non-square windows: `(kernel, stride, pad, dilation, ceil)`.
fn max_pools() -> Vec<MaxPool2d> {
    let mut pools = Vec::new();
    for k in 1usize..=4 {
        for s in 1..=3 {
            for d in 1..=2 {
                let extent = (k - 1) * d + 1;
                for p in 0..=extent / 2 {
                    for ceil_mode in [false, true] {
                        let kh = k.saturating_sub(1).max(1);
                        let extent_h = (kh - 1) * d + 1;
                        pools.push(MaxPool2d {
                            kernel: (kh, k),
                            stride: (s % 3 + 1, s),
                            pad: (p.min(extent_h / 2), p),
                            dilation: (d, d),
                            ceil_mode,
                        });
                    }
                }
            }
        }
    }
    pools
}

fn avg_pools() -> Vec<AvgPool2d> {
    let mut pools = Vec::new();
    for k in 1usize..=5 {
        for s in 1..=3 {
            for p in 0..=k / 2 {
                for ceil_mode in [false, true] {
                    for count_include_pad in [false, true] {
                        let kh = (k + 1).min(5);
                        pools.push(AvgPool2d {
                            kernel: (kh, k),
                            stride: (s % 3 + 1, s),
                            pad: (p.min(kh / 2), p),
                            ceil_mode,
                            count_include_pad,
                        });
                    }
                }
            }
        }
    }
    pools
}

/// Runs `check(pool output on the CPU kernels, input)` for every size on which `forward` succeeds, and
/// counts the cases checked.
fn for_each_input(seed: u64, mut check: impl FnMut(&Tensor, (usize, usize)) -> bool) -> usize {
    let mut rng = Rng::new(seed);
    let mut checked = 0;
    for (h, w) in SIZES {
        let x = nchw(rng.vec(2 * 3 * h * w), (2, 3, h, w));
        if check(&x, (h, w)) {
            checked += 1;
        }
    }
    checked
}

#[test]
fn max_pool_generic_paths_match_the_cpu_kernel() {
    let mut checked = 0;
    for pool in max_pools() {
        checked += for_each_input(1, |x, (h, w)| {
            let Ok(kernel) = pool.forward(x) else {
                assert!(pool.output_size((h, w)).is_err(), "{pool:?} on {h}x{w}");
                return false;
            };
            let what = format!("{pool:?} on {h}x{w}");
            // f64: candle's unpadded pool after -inf padding (dilation 1), or the window gather (dilation 2).
            let y = pool.forward(&x.to_dtype(DType::F64).unwrap()).unwrap();
            assert_eq!(y.dtype(), DType::F64);
            assert_all_close(&y, &kernel, 0.0, &format!("f64 {what}"));
            // An input that wants a gradient: the gather path whenever windows overlap.
            let var = Var::from_tensor(x).unwrap();
            let y = pool.forward(var.as_tensor()).unwrap();
            assert!(y.track_op(), "{what}: the output is in the gradient graph");
            assert_all_close(&y, &kernel, 0.0, &format!("training {what}"));
            // Half precision: the maximum of rounded values is the rounded maximum.
            for dtype in [DType::BF16, DType::F16] {
                let y = pool.forward(&x.to_dtype(dtype).unwrap()).unwrap();
                assert_eq!(y.dtype(), dtype);
                let want = kernel.to_dtype(dtype).unwrap();
                assert_all_close(&y, &want, 0.0, &format!("{dtype:?} {what}"));
            }
            true
        });
    }
    assert!(checked > 400, "only {checked} configurations checked");
}

#[test]
fn avg_pool_generic_paths_match_the_cpu_kernel() {
    let mut checked = 0;
    for pool in avg_pools() {
        checked += for_each_input(2, |x, (h, w)| {
            let Ok(kernel) = pool.forward(x) else {
                assert!(pool.output_size((h, w)).is_err(), "{pool:?} on {h}x{w}");
                return false;
            };
            let what = format!("{pool:?} on {h}x{w}");
            let y = pool.forward(&x.to_dtype(DType::F64).unwrap()).unwrap();
            assert_all_close(&y, &kernel, 1e-6, &format!("f64 {what}"));
            let var = Var::from_tensor(x).unwrap();
            assert_all_close(
                &pool.forward(var.as_tensor()).unwrap(),
                &kernel,
                1e-6,
                &format!("training {what}"),
            );
            for (dtype, tol) in [(DType::BF16, 1.0 / 128.0), (DType::F16, 1.0 / 512.0)] {
                let y = pool.forward(&x.to_dtype(dtype).unwrap()).unwrap();
                assert_eq!(y.dtype(), dtype);
                assert_all_close(&y, &kernel, tol, &format!("{dtype:?} {what}"));
            }
            true
        });
    }
    assert!(checked > 400, "only {checked} configurations checked");
}

#[test]
fn pools_differentiate_through_the_generic_path() {
    // GoogLeNet's pools in training: kernel 3, stride 2, ceil mode (overlapping windows, which candle's own
    // pool cannot differentiate), the stride-1 padded pool of the Inception branch, kernel 2, stride 2,
    // ceil mode (maxpool4, non-overlapping: candle's own pool scales that gradient by 1/4), and the first
    // followed by the second, as in the network. As in PyTorch, each window passes its gradient to one
    // element, its maximum, so the gradient of the sum of the output counts, per input element, the outputs
    // it ends up in. The data has no ties, so each output value names its input element. The chained pools
    // do produce ties: an element that wins two overlapping windows of the first pool appears twice in a
    // window of the second, and must still receive that window's gradient once.
    let k3s2 = MaxPool2d {
        kernel: (3, 3),
        stride: (2, 2),
        pad: (0, 0),
        dilation: (1, 1),
        ceil_mode: true,
    };
    let k3s1 = MaxPool2d {
        kernel: (3, 3),
        stride: (1, 1),
        pad: (1, 1),
        dilation: (1, 1),
        ceil_mode: true,
    };
    let k2s2 = MaxPool2d {
        kernel: (2, 2),
        stride: (2, 2),
        pad: (0, 0),
        dilation: (1, 1),
        ceil_mode: true,
    };
    let mut rng = Rng::new(3);
    let x = Var::from_tensor(&nchw(rng.vec(2 * 3 * 8 * 8), (2, 3, 8, 8))).unwrap();
    let chains: [&[MaxPool2d]; 4] = [&[k3s2], &[k3s1], &[k2s2], &[k3s2, k3s1]];
    for chain in chains {
        let y = chain
            .iter()
            .try_fold(x.as_tensor().clone(), |y, pool| pool.forward(&y))
            .unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let grad = values(grads.get(x.as_tensor()).unwrap());
        let data = values(x.as_tensor());
        let mut expected = vec![0f32; data.len()];
        for out in values(&y) {
            let winner = data.iter().position(|&v| v == out).unwrap();
            expected[winner] += 1.0;
        }
        assert_eq!(grad, expected, "{chain:?}");
    }
    // Ties between different elements: PyTorch's gradient goes to the first maximum in row-major order.
    let tied = Var::from_tensor(&nchw(
        vec![0., 2., 2., 2., 1., 0., 0., 0., 2.],
        (1, 1, 3, 3),
    ))
    .unwrap();
    let y = MaxPool2d::new((3, 3)).forward(tied.as_tensor()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let grad = values(grads.get(tied.as_tensor()).unwrap());
    assert_eq!(grad, [0., 1., 0., 0., 0., 0., 0., 0., 0.]);

    let pool = AvgPool2d {
        kernel: (3, 3),
        stride: (2, 2),
        pad: (1, 1),
        ceil_mode: true,
        count_include_pad: true,
    };
    let ones =
        Var::from_tensor(&Tensor::ones((1, 1, 5, 5), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let y = pool.forward(ones.as_tensor()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let grad = values(grads.get(ones.as_tensor()).unwrap());
    // 5 with pad 1, kernel 3, stride 2, ceil: ceil((5 + 2 - 3) / 2) + 1 = 3 windows per axis, covering
    // input rows -1..=1, 1..=3 and 3..=5, each 3 long inside the padded 7, so every divisor is 3 * 3 = 9.
    // Per axis, elements 0..5 lie in [1, 2, 1, 2, 1] windows.
    let per_axis = [1.0f32, 2.0, 1.0, 2.0, 1.0];
    let expected: Vec<f32> = per_axis
        .iter()
        .flat_map(|r| per_axis.iter().map(move |c| r * c / 9.0))
        .collect();
    for (g, e) in grad.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-6, "{grad:?} vs {expected:?}");
    }
}

#[test]
fn adaptive_pools_in_half_precision_match_f32() {
    let mut rng = Rng::new(4);
    for ((h, w), out) in [
        ((14, 14), (4, 4)),
        ((6, 6), (4, 4)),
        ((7, 7), (1, 1)),
        ((8, 6), (4, 3)),
    ] {
        let x = nchw(rng.vec(2 * 3 * h * w), (2, 3, h, w));
        let want = adaptive_avg_pool2d(&x, out).unwrap();
        let y = adaptive_avg_pool2d(&x.to_dtype(DType::F64).unwrap(), out).unwrap();
        assert_all_close(&y, &want, 1e-6, "f64");
        for (dtype, tol) in [(DType::BF16, 1.0 / 128.0), (DType::F16, 1.0 / 512.0)] {
            let y = adaptive_avg_pool2d(&x.to_dtype(dtype).unwrap(), out).unwrap();
            assert_eq!(y.dtype(), dtype);
            assert_all_close(&y, &want, tol, &format!("{dtype:?} {h}x{w} -> {out:?}"));
        }
    }
}

#[test]
fn lrn_computes_half_precision_inputs_in_f32() {
    // Caffe-scale activations (tens), where the window's energy makes the divisor far from 1.
    let mut rng = Rng::new(5);
    let x = (nchw(rng.vec(2 * 7 * 3 * 3), (2, 7, 3, 3)) * 40.0).unwrap();
    for lrn in [
        Lrn::new(5),
        Lrn {
            size: 2,
            alpha: 1e-2,
            beta: 0.5,
            k: 2.0,
        },
    ] {
        let want = lrn.forward(&x).unwrap();
        for (dtype, tol) in [(DType::BF16, 1.0 / 128.0), (DType::F16, 1.0 / 512.0)] {
            let y = lrn.forward(&x.to_dtype(dtype).unwrap()).unwrap();
            assert_eq!(y.dtype(), dtype);
            assert_all_close(&y, &want, tol, &format!("{dtype:?} {lrn:?}"));
        }
    }
}

/// A batch norm over 3 channels with non-trivial statistics, loaded as a model of `dtype` would load it.
fn batch_norm_as(dtype: DType) -> archc_runtime::BatchNorm {
    let dev = Device::Cpu;
    let tensors = [
        ("bn.weight", [0.5f32, 1.5, -1.0]),
        ("bn.bias", [0.1, -0.2, 0.3]),
        ("bn.running_mean", [0.2, -0.1, 0.05]),
        ("bn.running_var", [0.5, 2.0, 1.2]),
    ]
    .into_iter()
    .map(|(name, v)| (name.to_string(), Tensor::new(&v, &dev).unwrap()))
    .collect();
    let vb = VarBuilder::from_tensors(tensors, dtype, &dev);
    let spec = BatchNormSpec {
        eps: 1e-3,
        ..Default::default()
    };
    batch_norm(vb.pp("bn"), 3, spec, "test").unwrap()
}

#[test]
fn batch_norm_keeps_f32_statistics_in_half_precision_models() {
    let mut rng = Rng::new(6);
    let x = (nchw(rng.vec(4 * 3 * 5 * 5), (4, 3, 5, 5)) * 3.0).unwrap();
    for (dtype, tol) in [(DType::BF16, 1.0 / 128.0), (DType::F16, 1.0 / 512.0)] {
        let reference = batch_norm_as(DType::F32);
        let bn = batch_norm_as(dtype);
        // The parameters and statistics stay f32 whatever the model's dtype.
        assert_eq!(bn.running_mean().dtype(), DType::F32, "{dtype:?}");
        let (gamma, beta) = bn.inner().weight_and_bias().unwrap();
        assert_eq!((gamma.dtype(), beta.dtype()), (DType::F32, DType::F32));
        let xh = x.to_dtype(dtype).unwrap();
        for train in [false, true] {
            let want = reference.forward_t(&x, train).unwrap();
            let y = bn.forward_t(&xh, train).unwrap();
            assert_eq!(y.dtype(), dtype);
            assert_all_close(&y, &want, tol, &format!("{dtype:?} train={train}"));
        }
        // One training pass updated both running statistics alike (the half-precision input rounded once).
        assert_all_close(
            bn.running_mean(),
            reference.running_mean(),
            tol,
            &format!("{dtype:?} running mean"),
        );
        assert_all_close(
            bn.running_var(),
            reference.running_var(),
            tol,
            &format!("{dtype:?} running var"),
        );
        // And the gradient flows through the f32 computation back to the half-precision input.
        let var = Var::from_tensor(&xh).unwrap();
        let grads = bn
            .forward_t(var.as_tensor(), true)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grad = grads.get(var.as_tensor()).unwrap();
        assert_eq!(grad.dtype(), dtype);
        assert!(values_f32(grad).iter().all(|g| g.is_finite()));
    }
}
