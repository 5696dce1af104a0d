//! Winograd convolutions (`archc_runtime::winograd`): every tile against the direct CPU kernel and against
//! candle's own `conv2d` with the batch norm and ReLU as candle layers, over small versions of the zoo's 3×3
//! and 5×5 stride-1 layers; and the transformed filters each layer prepares once: made on first use, kept per
//! layer, dropped by `forget_prepared`, the same results warm or cold.
//!
//! Bounds, on `max |a - b| / max(1, max |b|)` (`tests/support/compare.rs`): 1e-5 for F(2×2, 3×3), whose
//! transforms only add and halve. 5e-5 for F(4×4, 3×3): its transforms multiply by up to 8 (`Aᵀ`) and 5
//! (`Bᵀ`) and its filter transform by 1/24, so each output sums products that are each rounded at a larger
//! scale than the output; over the zoo's layer sizes (`bench/RESULTS.md`, *Winograd*) its error runs 5-15x
//! F(2×2)'s, about 1e-5 at 512 channels, and 5e-5 leaves room under the 1e-4 that whole networks are held to
//! against PyTorch. 5e-5 for F(2×2, 5×5) too: the same `Bᵀ` (up to 5), a filter transform up to 2/3 and an
//! `Aᵀ` up to 2; and for F(2, 7) along one side of a 1×7 or 7×1 kernel (`Bᵀ` up to 21/4, `G` up to 32/45,
//! `Aᵀ` up to 2, in one dimension only).

mod common;
#[path = "../../tests/support/compare.rs"]
mod compare;

use archc_runtime::candle_core::{Tensor, Var};
use archc_runtime::nn::{Describe, Op, Optimizations, Plan};
use archc_runtime::prepared::Prepared;
use archc_runtime::winograd::{conv_bn_act_winograd, Tile};
use archc_runtime::{BatchNorm, Conv2d, Conv2dSpec, Pad2d};
use common::{batch_norm, tensor, values, Rng};
use compare::relative_error;

const F2_TOLERANCE: f32 = 1e-5;
const F3_TOLERANCE: f32 = 3e-5;
const F4_TOLERANCE: f32 = 5e-5;
const F2K5_TOLERANCE: f32 = 5e-5;
const F2K7_TOLERANCE: f32 = 5e-5;

fn tolerance(tile: Tile) -> f32 {
    match tile {
        Tile::F2 => F2_TOLERANCE,
        Tile::F3 => F3_TOLERANCE,
        Tile::F4 => F4_TOLERANCE,
        Tile::F2K5 => F2K5_TOLERANCE,
        Tile::F1x2K7 | Tile::F2x1K7 => F2K7_TOLERANCE,
    }
}

/// A 3×3 convolution with `pad` on every side, weights scaled as Kaiming's `sqrt(2 / fan_in)` would (so
/// outputs stay of order 1 whatever the channel count), with or without a bias.
fn conv3x3(rng: &mut Rng, c_in: usize, c_out: usize, pad: usize, bias: bool) -> Conv2d {
    conv(rng, 3, c_in, c_out, pad, bias)
}

/// [`conv3x3`] with an `r × r` kernel.
fn conv(rng: &mut Rng, r: usize, c_in: usize, c_out: usize, pad: usize, bias: bool) -> Conv2d {
    conv_rect(rng, (r, r), c_in, c_out, (pad, pad), bias)
}

/// [`conv3x3`] with an `r_h × r_w` kernel and `(pad_h, pad_w)` padding.
fn conv_rect(
    rng: &mut Rng,
    (r_h, r_w): (usize, usize),
    c_in: usize,
    c_out: usize,
    (pad_h, pad_w): (usize, usize),
    bias: bool,
) -> Conv2d {
    let scale = (2.0 / (r_h * r_w * c_in) as f64).sqrt();
    let weight = tensor(rng, &[c_out, c_in, r_h, r_w])
        .affine(scale * 3f64.sqrt(), 0.0)
        .unwrap();
    let bias = bias.then(|| tensor(rng, &[c_out]));
    let spec = Conv2dSpec {
        pad: Pad2d {
            top: pad_h,
            bottom: pad_h,
            left: pad_w,
            right: pad_w,
        },
        ..Conv2dSpec::default()
    };
    Conv2d::new(weight, bias, spec).unwrap()
}

/// A convolution, optionally followed by a batch norm and a ReLU, described for a plan.
struct Layer {
    conv: Conv2d,
    bn: Option<BatchNorm>,
    relu: bool,
}

impl Describe for Layer {
    fn describe(&self) -> Op<'_> {
        let mut ops = vec![Op::Conv(&self.conv)];
        if let Some(bn) = &self.bn {
            ops.push(Op::BatchNorm(bn));
        }
        if self.relu {
            ops.push(Op::Relu);
        }
        Op::Chain(ops)
    }
}

impl Layer {
    fn winograd(&self, x: &Tensor, tile: Tile) -> Tensor {
        conv_bn_act_winograd(x, &self.conv, self.bn.as_ref(), self.relu, tile).unwrap()
    }
}

/// The direct CPU kernel (im2col and one product per image), batch norm and ReLU folded.
fn direct() -> Plan {
    Plan::new(Optimizations {
        winograd: false,
        ..Optimizations::ALL
    })
}

/// candle's layers one by one.
fn candle() -> Plan {
    Plan::new(Optimizations::NONE)
}

fn run(plan: &Plan, x: &Tensor, layer: &Layer) -> Tensor {
    plan.run(x, false, layer).unwrap().expect("a CPU f32 input")
}

/// Every tile in `tiles` against the direct kernel and candle for `r_h × r_w` convolutions of each
/// `(c_in, c_out)` in `channels`, on maps of 1×1, 5×7 and 13×13 with every padding up to `r - 1` on each side
/// (`r` the kernel's longer side, the padding of a side with one tap 0), a bias alone, a batch norm and ReLU,
/// or nothing after it, at batch 1 and 3. Returns how many cases ran and each tile's largest error.
fn tiles_match_the_direct_kernel_and_candle(
    rng: &mut Rng,
    (r_h, r_w): (usize, usize),
    channels: &[(usize, usize)],
    tiles: &[Tile],
) -> (usize, Vec<f32>) {
    let mut worst = vec![0f32; tiles.len()];
    let mut checked = 0;
    for &(c_in, c_out) in channels {
        for (h, w) in [(1, 1), (5, 7), (13, 13)] {
            for pad in 0..r_h.max(r_w) {
                let pad = (pad.min(r_h - 1), pad.min(r_w - 1));
                if h + 2 * pad.0 < r_h || w + 2 * pad.1 < r_w {
                    continue;
                }
                // A bias alone; batch norm and ReLU (the zoo's conv -> bn -> relu); nothing after it.
                for (bias, bn, relu) in [
                    (true, false, false),
                    (false, true, true),
                    (false, false, false),
                ] {
                    let layer = Layer {
                        conv: conv_rect(rng, (r_h, r_w), c_in, c_out, pad, bias),
                        bn: bn.then(|| batch_norm(rng, c_out, true, 1e-5)),
                        relu,
                    };
                    for batch in [1, 3] {
                        let x = tensor(rng, &[batch, c_in, h, w]);
                        let want_direct = run(&direct(), &x, &layer);
                        let want_candle = run(&candle(), &x, &layer);
                        for (i, &tile) in tiles.iter().enumerate() {
                            let got = layer.winograd(&x, tile);
                            let what = format!(
                                "{tile:?} {r_h}x{r_w} {c_in} -> {c_out}, {h}x{w}, pad {pad:?}, \
                                 bias {bias}, bn {bn}, relu {relu}, batch {batch}"
                            );
                            for (against, want) in
                                [("direct", &want_direct), ("candle", &want_candle)]
                            {
                                let error = relative_error(&got, want);
                                assert!(
                                    error <= tolerance(tile),
                                    "{what}: relative error {error} against {against}"
                                );
                                worst[i] = worst[i].max(error);
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    (checked, worst)
}

#[test]
fn the_3x3_tiles_match_the_direct_kernel_and_candle_on_zoo_shapes() {
    // (c_in, c_out): the zoo's 3×3 stride-1 layers at small widths — GoogLeNet's branch2/branch3 (96 -> 128,
    // 16 -> 32, 24 -> 64, 48 -> 128 at full width), ResNet's 64 -> 64, Inception-v3's 48 -> 64 and 64 -> 96
    // — and the smallest (one channel, an image's first layer with three).
    let channels = [
        (1, 1),
        (3, 8),
        (12, 16),
        (16, 32),
        (24, 64),
        (48, 64),
        (64, 64),
        (64, 96),
    ];
    let (checked, worst) = tiles_match_the_direct_kernel_and_candle(
        &mut Rng::new(13),
        (3, 3),
        &channels,
        &[Tile::F2, Tile::F3, Tile::F4],
    );
    eprintln!(
        "{checked} cases; largest relative error F(2x2, 3x3) {:.2e}, F(3x3, 3x3) {:.2e}, F(4x4, 3x3) {:.2e}",
        worst[0], worst[1], worst[2]
    );
    assert!(checked > 500, "only {checked} cases checked");
}

#[test]
fn the_5x5_tile_matches_the_direct_kernel_and_candle_on_zoo_shapes() {
    // Inception-v3's 5×5 layers (48 -> 64 on 35×35), the paper GoogLeNet's (16 -> 32, 32 -> 96, 48 -> 128
    // at full width), and the smallest.
    let channels = [(1, 1), (3, 8), (16, 32), (32, 96), (48, 64)];
    let (checked, worst) = tiles_match_the_direct_kernel_and_candle(
        &mut Rng::new(20),
        (5, 5),
        &channels,
        &[Tile::F2K5],
    );
    eprintln!(
        "{checked} cases; largest relative error F(2x2, 5x5) {:.2e}",
        worst[0]
    );
    assert!(checked > 150, "only {checked} cases checked");
}

#[test]
fn the_1x7_and_7x1_tiles_match_the_direct_kernel_and_candle_on_zoo_shapes() {
    // Inception-v3's 1×7 and 7×1 layers (128, 160 and 192 channels on 17×17 at full width, padded 3 along the
    // long side), and the smallest.
    let channels = [(1, 1), (3, 8), (16, 24), (40, 48)];
    let mut rng = Rng::new(22);
    for (kernel, tile) in [((1, 7), Tile::F1x2K7), ((7, 1), Tile::F2x1K7)] {
        let (checked, worst) =
            tiles_match_the_direct_kernel_and_candle(&mut rng, kernel, &channels, &[tile]);
        eprintln!(
            "{checked} cases; largest relative error {tile:?} {:.2e}",
            worst[0]
        );
        assert!(checked > 150, "only {checked} cases checked");
    }
}

#[test]
fn a_tile_runs_only_the_kernel_it_is_for() {
    let mut rng = Rng::new(21);
    let x = tensor(&mut rng, &[1, 8, 9, 9]);
    for ((r_h, r_w), tile) in [
        ((3, 3), Tile::F2K5),
        ((5, 5), Tile::F2),
        ((5, 5), Tile::F3),
        ((5, 5), Tile::F4),
        ((7, 1), Tile::F1x2K7),
        ((1, 7), Tile::F2x1K7),
        ((3, 3), Tile::F2x1K7),
    ] {
        let layer = Layer {
            conv: conv_rect(&mut rng, (r_h, r_w), 8, 8, (r_h / 2, r_w / 2), false),
            bn: None,
            relu: false,
        };
        let err = conv_bn_act_winograd(&x, &layer.conv, None, false, tile).unwrap_err();
        let (k_h, k_w) = tile.kernel();
        assert!(
            err.to_string()
                .contains(&format!("needs a {k_h}x{k_w} kernel")),
            "{r_h}x{r_w} with {tile:?}: {err}"
        );
    }
}

#[test]
fn asymmetric_padding_matches_the_direct_kernel() {
    // PyTorch's padding='same' pads evenly for a 3×3 kernel, but a Conv2dSpec may pad each side differently.
    let mut rng = Rng::new(14);
    let pad = Pad2d {
        top: 0,
        bottom: 2,
        left: 1,
        right: 0,
    };
    let spec = Conv2dSpec {
        pad,
        ..Conv2dSpec::default()
    };
    let layer = Layer {
        conv: Conv2d::new(tensor(&mut rng, &[20, 17, 3, 3]), None, spec).unwrap(),
        bn: None,
        relu: false,
    };
    let x = tensor(&mut rng, &[2, 17, 9, 6]);
    let want = run(&direct(), &x, &layer);
    for tile in [Tile::F2, Tile::F3, Tile::F4] {
        let error = relative_error(&layer.winograd(&x, tile), &want);
        assert!(error <= tolerance(tile), "{tile:?}: relative error {error}");
    }
}

#[test]
fn a_plan_takes_winograd_only_where_it_is_on_and_chosen() {
    let mut rng = Rng::new(15);
    let x = tensor(&mut rng, &[2, 64, 14, 14]);
    let wide = Layer {
        conv: conv3x3(&mut rng, 64, 64, 1, false),
        bn: Some(batch_norm(&mut rng, 64, true, 1e-5)),
        relu: true,
    };
    // Off: the direct kernel, its packed weights kept in the layer.
    let want = run(&direct(), &x, &wide);
    assert_eq!(wide.conv.prepared(), [Prepared::Packed]);
    // On (every optimisation): Winograd for 64 channels of 14×14, its filters kept in the layer.
    wide.conv.forget_prepared();
    let got = run(&Plan::default(), &x, &wide);
    let error = relative_error(&got, &want);
    assert!(error <= F4_TOLERANCE, "relative error {error}");
    assert!(
        matches!(wide.conv.prepared()[..], [Prepared::Winograd(_)]),
        "the plan ran Winograd"
    );
    // Too few channels for the transforms to pay back: the direct kernel even with Winograd on.
    let narrow = Layer {
        conv: conv3x3(&mut rng, 4, 8, 1, true),
        bn: None,
        relu: true,
    };
    let x = tensor(&mut rng, &[1, 4, 14, 14]);
    run(&Plan::default(), &x, &narrow);
    assert_eq!(narrow.conv.prepared(), [Prepared::Packed]);
    // Not 3×3 stride 1: never.
    let strided = Conv2d::new(
        tensor(&mut rng, &[32, 32, 3, 3]),
        None,
        Conv2dSpec {
            stride: (2, 2),
            pad: Pad2d::uniform(1),
            ..Conv2dSpec::default()
        },
    )
    .unwrap();
    let x = tensor(&mut rng, &[1, 32, 14, 14]);
    let err = conv_bn_act_winograd(&x, &strided, None, false, Tile::F2).unwrap_err();
    assert!(err.to_string().contains("stride 1"), "{err}");
    let strided = Layer {
        conv: strided,
        bn: None,
        relu: false,
    };
    run(&Plan::default(), &x, &strided);
    assert_eq!(strided.conv.prepared(), [Prepared::Packed]);
    // 5×5: F(2×2, 5×5) from 24 channels, the direct kernel below.
    let x = tensor(&mut rng, &[1, 48, 17, 17]);
    let five = Layer {
        conv: conv(&mut rng, 5, 48, 64, 2, false),
        bn: Some(batch_norm(&mut rng, 64, true, 1e-5)),
        relu: true,
    };
    let want = run(&direct(), &x, &five);
    five.conv.forget_prepared();
    let error = relative_error(&run(&Plan::default(), &x, &five), &want);
    assert!(error <= F2K5_TOLERANCE, "relative error {error}");
    assert_eq!(five.conv.prepared(), [Prepared::Winograd(Tile::F2K5)]);
    let x = tensor(&mut rng, &[1, 16, 17, 17]);
    let narrow_five = Layer {
        conv: conv(&mut rng, 5, 16, 32, 2, false),
        bn: None,
        relu: false,
    };
    run(&Plan::default(), &x, &narrow_five);
    assert_eq!(narrow_five.conv.prepared(), [Prepared::Packed]);
    // 1×7 and 7×1: F(2, 7) from 128 channels.
    for (kernel, pad, tile) in [
        ((1, 7), (0, 3), Tile::F1x2K7),
        ((7, 1), (3, 0), Tile::F2x1K7),
    ] {
        for (channels, winograd) in [(128, true), (32, false)] {
            let x = tensor(&mut rng, &[1, channels, 9, 9]);
            let layer = Layer {
                conv: conv_rect(&mut rng, kernel, channels, channels, pad, false),
                bn: None,
                relu: true,
            };
            let want = run(&direct(), &x, &layer);
            layer.conv.forget_prepared();
            let error = relative_error(&run(&Plan::default(), &x, &layer), &want);
            assert!(error <= F2K7_TOLERANCE, "relative error {error}");
            let expected = if winograd {
                Prepared::Winograd(tile)
            } else {
                Prepared::Packed
            };
            assert_eq!(
                layer.conv.prepared(),
                [expected],
                "{kernel:?}, {channels} channels"
            );
        }
    }
}

#[test]
fn filters_are_prepared_once_and_give_the_same_results_warm_or_cold() {
    let mut rng = Rng::new(16);
    let layer = Layer {
        conv: conv3x3(&mut rng, 24, 40, 1, true),
        bn: Some(batch_norm(&mut rng, 40, true, 1e-5)),
        relu: true,
    };
    let x = tensor(&mut rng, &[3, 24, 13, 13]);
    assert_eq!(
        layer.conv.prepared_bytes(),
        0,
        "nothing before the first call"
    );
    let cold = layer.winograd(&x, Tile::F2);
    // 16 transformed 40x24 matrices, their rows padded to a multiple of the product kernel's 4, 6 or 12.
    let f2_bytes = layer.conv.prepared_bytes();
    assert!(
        (16 * 40 * 24 * 4..=16 * 48 * 24 * 4).contains(&f2_bytes),
        "{f2_bytes} bytes for F(2x2)"
    );
    assert_eq!(layer.conv.prepared(), [Prepared::Winograd(Tile::F2)]);
    let warm = layer.winograd(&x, Tile::F2);
    assert_eq!(values(&warm), values(&cold), "warm and cold differ");
    // Each tile keeps its own.
    let f4_cold = layer.winograd(&x, Tile::F4);
    assert_eq!(layer.conv.prepared_bytes(), f2_bytes / 16 * 52);
    assert_eq!(values(&layer.winograd(&x, Tile::F4)), values(&f4_cold));
    // Forgotten, then prepared again: the same values.
    layer.conv.forget_prepared();
    assert_eq!(layer.conv.prepared_bytes(), 0);
    assert_eq!(values(&layer.winograd(&x, Tile::F2)), values(&cold));
    assert_eq!(layer.conv.prepared_bytes(), f2_bytes);
}

#[test]
fn each_layer_keeps_its_own_filters_and_clones_share_them() {
    let mut rng = Rng::new(17);
    let layers: Vec<Layer> = (0..3)
        .map(|_| Layer {
            conv: conv3x3(&mut rng, 16, 16, 1, false),
            bn: None,
            relu: false,
        })
        .collect();
    let x = tensor(&mut rng, &[1, 16, 7, 7]);
    let want: Vec<Tensor> = layers.iter().map(|l| run(&direct(), &x, l)).collect();
    // Interleaved, twice: every layer with its own weights, whichever ran before it.
    for _ in 0..2 {
        for (layer, want) in layers.iter().zip(&want) {
            let error = relative_error(&layer.winograd(&x, Tile::F2), want);
            assert!(error <= F2_TOLERANCE, "relative error {error}");
        }
    }
    // Forgetting one layer's filters leaves the others'.
    layers[1].conv.forget_prepared();
    assert_eq!(layers[1].conv.prepared_bytes(), 0);
    assert!(layers[0].conv.prepared_bytes() > 0 && layers[2].conv.prepared_bytes() > 0);
    // A clone holds the same weight tensor, so it shares what was prepared from it.
    let clone = layers[0].conv.clone();
    assert_eq!(clone.prepared_bytes(), layers[0].conv.prepared_bytes());
    clone.forget_prepared();
    assert_eq!(layers[0].conv.prepared_bytes(), 0);
}

#[test]
fn forget_prepared_follows_weights_written_in_place() {
    // A detached `Var` is not a variable, yet it shares the `Var`'s storage: loading or training the `Var`
    // changes the layer's weight in place. The prepared filters are the weight as it was; the network's
    // `forget_prepared` makes the next call prepare them from the new weight.
    let mut rng = Rng::new(18);
    let var = Var::from_tensor(&tensor(&mut rng, &[32, 32, 3, 3])).unwrap();
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    let layer = Layer {
        conv: Conv2d::new(var.as_tensor().detach(), None, spec).unwrap(),
        bn: None,
        relu: false,
    };
    let x = tensor(&mut rng, &[1, 32, 14, 14]);
    let plan = Plan::default();
    let before = run(&plan, &x, &layer);
    assert!(layer.conv.prepared_bytes() > 0, "the plan ran Winograd");
    var.set(&tensor(&mut rng, &[32, 32, 3, 3])).unwrap();
    // Until told, the layer keeps computing with the filters it prepared (the documented contract).
    assert_eq!(values(&run(&plan, &x, &layer)), values(&before));
    Plan::forget_prepared(&layer);
    let after = run(&plan, &x, &layer);
    let error = relative_error(&after, &run(&direct(), &x, &layer));
    assert!(error <= F4_TOLERANCE, "relative error {error}");
    assert_ne!(values(&after), values(&before));
}

#[test]
fn layers_that_want_gradients_run_as_candle_ops_and_prepare_nothing() {
    let mut rng = Rng::new(19);
    let var = Var::from_tensor(&tensor(&mut rng, &[32, 32, 3, 3])).unwrap();
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    let layer = Layer {
        conv: Conv2d::new(var.as_tensor().clone(), None, spec).unwrap(),
        bn: None,
        relu: false,
    };
    let x = tensor(&mut rng, &[1, 32, 14, 14]);
    let y = run(&Plan::default(), &x, &layer);
    assert_eq!(layer.conv.prepared_bytes(), 0);
    // The gradient reaches the weight.
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(var.as_tensor()).is_some());
    assert!(conv_bn_act_winograd(&x, &layer.conv, None, false, Tile::F2).is_err());
}
