//! Depthwise convolutions (`groups == in_channels`) on the CPU kernel, reached through `Conv2d::forward`,
//! `conv_bn_act` and a plan, against candle's own grouped `conv2d` (one convolution per group) with the
//! batch norm and ReLU run as candle layers. Gradients still flow where one is wanted.

mod common;
#[path = "../../tests/support/compare.rs"]
mod compare;

use archc_runtime::candle_core::{Device, Module, ModuleT, Result, Tensor, Var};
use archc_runtime::nn::{Describe, Op, Plan};
use archc_runtime::{conv_bn_act, BatchNorm, Conv2d, Conv2dSpec, Pad2d};
use common::{batch_norm, tensor, Rng};
use compare::relative_error;

/// The bound of the task: the kernel sums the same products as candle in another order.
const TOLERANCE: f32 = 1e-5;

/// candle's grouped convolution with `pad` on every side, plus the bias: the reference.
fn candle_conv(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (pad, stride, dilation): (usize, usize, usize),
) -> Tensor {
    let groups = x.dim(1).unwrap();
    let y = x.conv2d(weight, pad, stride, dilation, groups).unwrap();
    match bias {
        None => y,
        Some(b) => y
            .broadcast_add(&b.reshape((1, b.dim(0).unwrap(), 1, 1)).unwrap())
            .unwrap(),
    }
}

#[test]
fn conv2d_forward_matches_candles_grouped_conv() {
    let mut rng = Rng::new(12);
    let mut checked = 0;
    for kernel in [1, 3, 5] {
        for stride in [1, 2] {
            for pad in [0, 1, 2] {
                for dilation in [1, 2] {
                    // Odd sizes, and maps smaller than the kernel that padding makes wide enough.
                    for (h, w) in [(7, 9), (2, 3), (1, 1)] {
                        let reach = (kernel - 1) * dilation + 1;
                        if reach > h + 2 * pad || reach > w + 2 * pad {
                            continue;
                        }
                        // Plain depthwise, and a channel multiplier of 2 (each input feeds two outputs).
                        for (channels, multiplier) in [(6, 1), (4, 2)] {
                            for bias in [false, true] {
                                let c_out = channels * multiplier;
                                let weight = tensor(&mut rng, &[c_out, 1, kernel, kernel]);
                                let bias = bias.then(|| tensor(&mut rng, &[c_out]));
                                let spec = Conv2dSpec {
                                    stride: (stride, stride),
                                    pad: Pad2d::uniform(pad),
                                    dilation: (dilation, dilation),
                                    groups: channels,
                                };
                                let conv = Conv2d::new(weight.clone(), bias.clone(), spec).unwrap();
                                assert!(conv.is_depthwise());
                                for batch in [1, 3] {
                                    let x = tensor(&mut rng, &[batch, channels, h, w]);
                                    let want = candle_conv(
                                        &x,
                                        &weight,
                                        bias.as_ref(),
                                        (pad, stride, dilation),
                                    );
                                    let got = conv.forward(&x).unwrap();
                                    let what = format!(
                                        "{kernel}x{kernel} stride {stride} pad {pad} dilation \
                                         {dilation}, {h}x{w}, {channels}x{multiplier} channels, \
                                         bias {}, batch {batch}",
                                        bias.is_some()
                                    );
                                    let error = relative_error(&got, &want);
                                    assert!(error <= TOLERANCE, "{what}: relative error {error}");
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} cases checked");
}

#[test]
fn asymmetric_padding_and_strides_match_candle_on_a_padded_input() {
    let mut rng = Rng::new(13);
    let channels = 5;
    let weight = tensor(&mut rng, &[channels, 1, 3, 5]);
    let x = tensor(&mut rng, &[2, channels, 7, 9]);
    let pad = Pad2d {
        top: 0,
        bottom: 2,
        left: 1,
        right: 0,
    };
    for stride in [(1, 2), (2, 1), (2, 2)] {
        let spec = Conv2dSpec {
            stride,
            pad,
            dilation: (1, 1),
            groups: channels,
        };
        let conv = Conv2d::new(weight.clone(), None, spec).unwrap();
        // candle pads symmetrically only: pad the input first, then subsample a stride-1 result.
        let padded = x
            .pad_with_zeros(2, pad.top, pad.bottom)
            .unwrap()
            .pad_with_zeros(3, pad.left, pad.right)
            .unwrap();
        let dense = candle_conv(&padded, &weight, None, (0, 1, 1));
        let (oh, ow) = conv.output_size((7, 9)).unwrap();
        let rows: Vec<u32> = (0..oh).map(|i| (i * stride.0) as u32).collect();
        let cols: Vec<u32> = (0..ow).map(|i| (i * stride.1) as u32).collect();
        let want = dense
            .index_select(&Tensor::new(rows, &Device::Cpu).unwrap(), 2)
            .unwrap()
            .index_select(&Tensor::new(cols, &Device::Cpu).unwrap(), 3)
            .unwrap();
        let got = conv.forward(&x).unwrap();
        let error = relative_error(&got, &want);
        assert!(
            error <= TOLERANCE,
            "stride {stride:?}: relative error {error}"
        );
    }
}

#[test]
fn a_channel_slice_of_a_larger_map_is_read_in_place() {
    // A concatenation's branch reads `narrow(1, ..)` of a wider tensor: images not contiguous with each other.
    let mut rng = Rng::new(14);
    let wide = tensor(&mut rng, &[3, 10, 6, 6]);
    let x = wide.narrow(1, 4, 4).unwrap();
    let weight = tensor(&mut rng, &[4, 1, 3, 3]);
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        groups: 4,
        ..Default::default()
    };
    let conv = Conv2d::new(weight.clone(), None, spec).unwrap();
    let want = candle_conv(&x.contiguous().unwrap(), &weight, None, (1, 1, 1));
    let error = relative_error(&conv.forward(&x).unwrap(), &want);
    assert!(error <= TOLERANCE, "relative error {error}");
}

/// MobileNet-V2's inverted-residual middle: depthwise conv → batch norm → ReLU.
struct DepthwiseBlock {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Describe for DepthwiseBlock {
    fn describe(&self) -> Op<'_> {
        Op::Chain(vec![
            Op::Conv(&self.conv),
            Op::BatchNorm(&self.bn),
            Op::Relu,
        ])
    }
}

impl DepthwiseBlock {
    fn new(rng: &mut Rng, channels: usize, kernel: usize, stride: usize) -> DepthwiseBlock {
        let spec = Conv2dSpec {
            stride: (stride, stride),
            pad: Pad2d::uniform(kernel / 2),
            dilation: (1, 1),
            groups: channels,
        };
        let weight = tensor(rng, &[channels, 1, kernel, kernel]);
        DepthwiseBlock {
            conv: Conv2d::new(weight, None, spec).unwrap(),
            bn: batch_norm(rng, channels, true, 1e-5),
        }
    }

    /// The layers one by one in candle: grouped conv2d, batch norm in inference mode, ReLU.
    fn candle_forward(&self, x: &Tensor) -> Tensor {
        let spec = self.conv.spec();
        let y = candle_conv(
            x,
            self.conv.weight(),
            None,
            (spec.pad.top, spec.stride.0, 1),
        );
        self.bn.forward_t(&y, false).unwrap().relu().unwrap()
    }
}

#[test]
fn folded_batch_norm_and_relu_match_the_layers_one_by_one() {
    let mut rng = Rng::new(15);
    for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
        let block = DepthwiseBlock::new(&mut rng, 8, kernel, stride);
        for batch in [1, 3] {
            let x = tensor(&mut rng, &[batch, 8, 9, 7]);
            let want = block.candle_forward(&x);
            let fused = conv_bn_act(&x, &block.conv, Some(&block.bn), true, false).unwrap();
            let planned = Plan::default().run(&x, false, &block).unwrap().unwrap();
            for (got, path) in [(fused, "conv_bn_act"), (planned, "plan")] {
                let error = relative_error(&got, &want);
                assert!(
                    error <= TOLERANCE,
                    "{path}, {kernel}x{kernel} stride {stride}, batch {batch}: relative error {error}"
                );
            }
        }
    }
}

#[test]
fn gradients_flow_through_candles_path() -> Result<()> {
    let mut rng = Rng::new(16);
    let weight = Var::from_tensor(&tensor(&mut rng, &[3, 1, 3, 3]))?;
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        groups: 3,
        ..Default::default()
    };
    let conv = Conv2d::new(weight.as_tensor().clone(), None, spec)?;
    let x = Var::from_tensor(&tensor(&mut rng, &[2, 3, 5, 5]))?;
    let y = conv.forward(x.as_tensor())?;
    let grads = y.sqr()?.sum_all()?.backward()?;
    let (dx, dw) = (grads.get(&x).unwrap(), grads.get(&weight).unwrap());
    // d/dw of sum(y²) is 2 Σ y · x over the taps; check the weight gradient against that, tap (1, 1) of
    // channel 0 (the centre tap reads x itself).
    let y0 = y.narrow(1, 0, 1)?;
    let x0 = x.as_tensor().narrow(1, 0, 1)?;
    let centre = (y0 * x0)?.sum_all()?.affine(2.0, 0.0)?.to_scalar::<f32>()?;
    let got = dw.get(0)?.get(0)?.get(1)?.get(1)?.to_scalar::<f32>()?;
    assert!(
        (got - centre).abs() <= 1e-4 * centre.abs().max(1.0),
        "{got} vs {centre}"
    );
    assert_eq!(dx.dims(), &[2, 3, 5, 5]);
    Ok(())
}
