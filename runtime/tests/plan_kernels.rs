//! The plan's activation fusion, element-wise kernels and linear kernel (`Optimizations::fuse_activations`,
//! `elementwise_kernels` and `linear_kernel`) against candle's path: every network here runs through a plan
//! with all optimisations, with each of the three switched off, and with none (candle's layers one by one,
//! the reference). Results must agree within 1e-5 of the output's largest magnitude.
//!
//! The networks are the patterns of the torchvision zoo: convolution + batch norm + each activation
//! (MobileNet's ReLU6, EfficientNet's SiLU, ...), depthwise too; squeeze-and-excitation (a pool, two 1×1
//! convolutions with SiLU and sigmoid, and a per-channel product); DenseNet's pre-activation layers (batch norm
//! and ReLU on a concatenation); residual sums with the ReLU after them; activations after a pool and on a
//! channel slice; sibling 1×1 heads with SiLU; classifiers of linear layers and activations, at batches the
//! linear kernel takes and one it leaves to candle.

mod common;

use archc_runtime::candle_core::{Tensor, Var};
use archc_runtime::candle_nn::{Activation, Linear};
use archc_runtime::nn::{Describe, Op, Optimizations, Plan};
use archc_runtime::{AdaptiveAvgPool2d, BatchNorm, Conv2d, Conv2dSpec, MaxPool2d, Pad2d};
use common::{tensor, values, Rng};

/// A batch norm with random statistics (variance in [0.5, 1.5)), weight and bias.
fn batch_norm(rng: &mut Rng, channels: usize) -> BatchNorm {
    let mean = tensor(rng, &[channels]);
    let var = tensor(rng, &[channels]).affine(0.5, 1.0).unwrap();
    let weight = tensor(rng, &[channels]).affine(0.5, 1.0).unwrap();
    let bias = tensor(rng, &[channels]);
    let inner =
        archc_runtime::candle_nn::BatchNorm::new(channels, mean, var, weight, bias, 1e-5).unwrap();
    BatchNorm::new(inner, channels).unwrap()
}

/// A `k`×`k` convolution with padding `k / 2`, scaled so that outputs stay near 1 in magnitude.
fn conv(rng: &mut Rng, c_in: usize, c_out: usize, k: usize, groups: usize, bias: bool) -> Conv2d {
    let fan_in = (c_in / groups * k * k) as f64;
    let weight = tensor(rng, &[c_out, c_in / groups, k, k])
        .affine(2.0 / fan_in.sqrt(), 0.0)
        .unwrap();
    let bias = bias.then(|| tensor(rng, &[c_out]));
    let spec = Conv2dSpec {
        stride: (1, 1),
        pad: Pad2d::uniform(k / 2),
        dilation: (1, 1),
        groups,
    };
    Conv2d::new(weight, bias, spec).unwrap()
}

/// The layers a test network is made of, and how it arranges them.
struct Net {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    pool: AdaptiveAvgPool2d,
    max_pool: MaxPool2d,
    /// GoogLeNet's branch pool: 3×3, stride 1, padding 1 (the map keeps its size).
    same_pool: MaxPool2d,
    chunk: archc_runtime::nn::Chunk,
    linears: Vec<Linear>,
    arrange: for<'a> fn(&'a Net) -> Op<'a>,
}

impl Describe for Net {
    fn describe(&self) -> Op<'_> {
        (self.arrange)(self)
    }
}

impl Net {
    fn new(
        convs: Vec<Conv2d>,
        norms: Vec<BatchNorm>,
        arrange: for<'a> fn(&'a Net) -> Op<'a>,
    ) -> Net {
        Net {
            convs,
            norms,
            pool: AdaptiveAvgPool2d::new((1, 1)),
            max_pool: MaxPool2d::new((2, 2)),
            same_pool: MaxPool2d {
                stride: (1, 1),
                pad: (1, 1),
                ..MaxPool2d::new((3, 3))
            },
            chunk: archc_runtime::nn::chunk(16, 2, 1).unwrap(),
            linears: Vec::new(),
            arrange,
        }
    }
}

/// `net` on `x` with every optimisation, with activation fusion, the element-wise kernels, the linear kernel or
/// micro-batches off and with the first three off, each against candle's path (no optimisation).
#[track_caller]
fn assert_matches_candle(net: &Net, x: &Tensor, what: &str) {
    let reference = Plan::new(Optimizations::NONE)
        .run(x, false, net)
        .unwrap()
        .expect("a CPU f32 input runs the plan");
    let scale = values(&reference)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let variants = [
        ("all", Optimizations::ALL),
        (
            "without activation fusion",
            Optimizations {
                fuse_activations: false,
                ..Optimizations::ALL
            },
        ),
        (
            "without element-wise kernels",
            Optimizations {
                elementwise_kernels: false,
                ..Optimizations::ALL
            },
        ),
        (
            "without the linear kernel",
            Optimizations {
                linear_kernel: false,
                ..Optimizations::ALL
            },
        ),
        (
            // Whole batches at each layer: the linear kernel then sees batches larger than it takes.
            "without micro-batches",
            Optimizations {
                micro_batches: false,
                ..Optimizations::ALL
            },
        ),
        (
            "without separable bands",
            Optimizations {
                separable_bands: false,
                ..Optimizations::ALL
            },
        ),
        (
            // Concatenations at batch 1 copied from each branch's own tensor.
            "without concatenations in place",
            Optimizations {
                concat_in_place: false,
                ..Optimizations::ALL
            },
        ),
        (
            "without any of the three",
            Optimizations {
                fuse_activations: false,
                elementwise_kernels: false,
                linear_kernel: false,
                ..Optimizations::ALL
            },
        ),
    ];
    for (name, options) in variants {
        let got = Plan::new(options).run(x, false, net).unwrap().unwrap();
        assert_eq!(got.dims(), reference.dims(), "{what}, {name}: shape");
        let error = values(&got)
            .iter()
            .zip(values(&reference))
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            error <= 1e-5 * scale,
            "{what}, {name}: max |a - b| = {error:e}, {:e} of the largest value {scale}",
            error / scale
        );
    }
}

/// Every activation a generated model can name, as generated code names it.
const ACTIVATIONS: [&Activation; 7] = [
    &Activation::Relu,
    &Activation::Relu6,
    &Activation::Silu,
    &Activation::Sigmoid,
    &Activation::HardSwish,
    &Activation::HardSigmoid,
    &Activation::Gelu,
];

#[test]
fn convolution_batch_norm_and_each_activation() {
    let mut rng = Rng::new(1);
    let x = tensor(&mut rng, &[3, 8, 9, 11]);
    for (i, activation) in ACTIVATIONS.into_iter().enumerate() {
        // The activation is chosen by the network function, which cannot capture: one function per slot.
        let arrange: [for<'a> fn(&'a Net) -> Op<'a>; 7] = [
            |n| chain(n, &Activation::Relu),
            |n| chain(n, &Activation::Relu6),
            |n| chain(n, &Activation::Silu),
            |n| chain(n, &Activation::Sigmoid),
            |n| chain(n, &Activation::HardSwish),
            |n| chain(n, &Activation::HardSigmoid),
            |n| chain(n, &Activation::Gelu),
        ];
        fn chain<'a>(n: &'a Net, activation: &'static Activation) -> Op<'a> {
            // A full convolution, then a depthwise one, each with its batch norm and the activation; then a
            // convolution with a bias and the activation straight after it.
            Op::Chain(vec![
                Op::Conv(&n.convs[0]),
                Op::BatchNorm(&n.norms[0]),
                Op::Module(activation),
                Op::Conv(&n.convs[1]),
                Op::BatchNorm(&n.norms[1]),
                Op::Module(activation),
                Op::Conv(&n.convs[2]),
                Op::Module(activation),
            ])
        }
        let net = Net::new(
            vec![
                conv(&mut rng, 8, 16, 3, 1, false),
                conv(&mut rng, 16, 16, 5, 16, false),
                conv(&mut rng, 16, 6, 1, 1, true),
            ],
            vec![batch_norm(&mut rng, 16), batch_norm(&mut rng, 16)],
            arrange[i],
        );
        assert_matches_candle(&net, &x, &format!("{activation:?}"));
    }
}

/// [`conv`] with stride 2.
fn strided(rng: &mut Rng, c_in: usize, c_out: usize, k: usize, groups: usize) -> Conv2d {
    let conv = conv(rng, c_in, c_out, k, groups, false);
    let spec = Conv2dSpec {
        stride: (2, 2),
        ..*conv.spec()
    };
    Conv2d::new(conv.weight().clone(), None, spec).unwrap()
}

#[test]
fn depthwise_separable_blocks() {
    let mut rng = Rng::new(9);
    // MobileNet-V2's blocks (without expansion; expanding at stride 2; an inverted residual, its input added)
    // and ShuffleNet-V2's branch (no activation after the depthwise convolution, ReLU after the projection),
    // which the plan computes band by band (`Optimizations::separable_bands`).
    let net = Net::new(
        vec![
            conv(&mut rng, 8, 8, 3, 8, false),
            conv(&mut rng, 8, 16, 1, 1, false),
            conv(&mut rng, 16, 48, 1, 1, false),
            strided(&mut rng, 48, 48, 3, 48),
            conv(&mut rng, 48, 24, 1, 1, false),
            conv(&mut rng, 24, 72, 1, 1, false),
            conv(&mut rng, 72, 72, 5, 72, false),
            conv(&mut rng, 72, 24, 1, 1, false),
            conv(&mut rng, 24, 24, 1, 1, false),
            conv(&mut rng, 24, 24, 3, 24, false),
            conv(&mut rng, 24, 24, 1, 1, false),
        ],
        [8, 16, 48, 48, 24, 72, 72, 24, 24, 24, 24]
            .into_iter()
            .map(|c| batch_norm(&mut rng, c))
            .collect(),
        |n| {
            let unit = |i: usize, activation: Option<Op<'static>>| {
                let mut ops = vec![Op::Conv(&n.convs[i]), Op::BatchNorm(&n.norms[i])];
                ops.extend(activation);
                ops
            };
            let relu6 = || Some(Op::Module(&Activation::Relu6));
            fn chain(units: Vec<Vec<Op<'_>>>) -> Op<'_> {
                Op::Chain(units.into_iter().flatten().collect())
            }
            Op::Chain(vec![
                chain(vec![unit(0, relu6()), unit(1, None)]),
                chain(vec![unit(2, relu6()), unit(3, relu6()), unit(4, None)]),
                Op::Add(vec![
                    chain(vec![unit(5, relu6()), unit(6, relu6()), unit(7, None)]),
                    Op::Identity,
                ]),
                chain(vec![
                    unit(8, Some(Op::Relu)),
                    unit(9, None),
                    unit(10, Some(Op::Relu)),
                ]),
            ])
        },
    );
    // One image (its rows shared between the threads) and three; rows of a size no band divides.
    for batch in [1, 3] {
        let x = tensor(&mut rng, &[batch, 8, 38, 35]);
        assert_matches_candle(&net, &x, &format!("separable blocks, batch {batch}"));
    }
}

#[test]
fn squeeze_and_excitation() {
    let mut rng = Rng::new(2);
    // EfficientNet's MBConv without the residual: expansion, depthwise, squeeze-and-excitation, projection.
    let net = Net::new(
        vec![
            conv(&mut rng, 8, 16, 1, 1, false),
            conv(&mut rng, 16, 16, 3, 16, false),
            conv(&mut rng, 16, 4, 1, 1, true),
            conv(&mut rng, 4, 16, 1, 1, true),
            conv(&mut rng, 16, 8, 1, 1, false),
        ],
        vec![
            batch_norm(&mut rng, 16),
            batch_norm(&mut rng, 16),
            batch_norm(&mut rng, 8),
        ],
        |n| {
            Op::Chain(vec![
                Op::Conv(&n.convs[0]),
                Op::BatchNorm(&n.norms[0]),
                Op::Module(&Activation::Silu),
                Op::Conv(&n.convs[1]),
                Op::BatchNorm(&n.norms[1]),
                Op::Module(&Activation::Silu),
                Op::Mul(vec![
                    Op::Identity,
                    Op::Chain(vec![
                        Op::Module(&n.pool),
                        Op::Conv(&n.convs[2]),
                        Op::Module(&Activation::Silu),
                        Op::Conv(&n.convs[3]),
                        Op::Module(&Activation::Sigmoid),
                    ]),
                ]),
                Op::Conv(&n.convs[4]),
                Op::BatchNorm(&n.norms[2]),
            ])
        },
    );
    assert_matches_candle(
        &net,
        &tensor(&mut rng, &[3, 8, 9, 11]),
        "squeeze-and-excitation",
    );
}

#[test]
fn pre_activation_batch_norms_on_concatenations() {
    let mut rng = Rng::new(3);
    // Two DenseNet layers (BN-ReLU-conv 1x1-BN-ReLU-conv 3x3, appended to the input), then a batch norm alone
    // and one followed by SiLU.
    let net = Net::new(
        vec![
            conv(&mut rng, 8, 12, 1, 1, false),
            conv(&mut rng, 12, 4, 3, 1, false),
            conv(&mut rng, 12, 12, 1, 1, false),
            conv(&mut rng, 12, 4, 3, 1, false),
        ],
        vec![
            batch_norm(&mut rng, 8),
            batch_norm(&mut rng, 12),
            batch_norm(&mut rng, 12),
            batch_norm(&mut rng, 12),
            batch_norm(&mut rng, 16),
            batch_norm(&mut rng, 16),
        ],
        |n| {
            let layer = |i: usize| {
                Op::Concat(vec![
                    Op::Identity,
                    Op::Chain(vec![
                        Op::BatchNorm(&n.norms[2 * i]),
                        Op::Relu,
                        Op::Conv(&n.convs[2 * i]),
                        Op::BatchNorm(&n.norms[2 * i + 1]),
                        Op::Relu,
                        Op::Conv(&n.convs[2 * i + 1]),
                    ]),
                ])
            };
            Op::Chain(vec![
                layer(0),
                layer(1),
                Op::BatchNorm(&n.norms[4]),
                Op::BatchNorm(&n.norms[5]),
                Op::Module(&Activation::Silu),
            ])
        },
    );
    assert_matches_candle(&net, &tensor(&mut rng, &[3, 8, 9, 11]), "dense layers");
}

#[test]
fn residual_sums_and_the_activation_after_them() {
    let mut rng = Rng::new(4);
    let net = Net::new(
        vec![
            conv(&mut rng, 8, 8, 3, 1, false),
            conv(&mut rng, 8, 8, 3, 1, false),
            conv(&mut rng, 8, 8, 1, 1, true),
            conv(&mut rng, 8, 8, 1, 1, false),
        ],
        vec![batch_norm(&mut rng, 8), batch_norm(&mut rng, 8)],
        |n| {
            // Each sum whose branch ends in a convolution is added in that convolution's pass (and the
            // activation after it), except where the options leave that to the element-wise kernel.
            Op::Chain(vec![
                // ResNet's basic block: the sum, then ReLU.
                Op::Add(vec![
                    Op::Chain(vec![
                        Op::Conv(&n.convs[0]),
                        Op::BatchNorm(&n.norms[0]),
                        Op::Relu,
                        Op::Conv(&n.convs[1]),
                        Op::BatchNorm(&n.norms[1]),
                    ]),
                    Op::Identity,
                ]),
                Op::Relu,
                // MobileNet's: no activation after the sum (the next sum's ReLU6 is a module).
                Op::Add(vec![Op::Conv(&n.convs[2]), Op::Identity]),
                Op::Add(vec![Op::Identity, Op::Identity, Op::Conv(&n.convs[2])]),
                Op::Module(&Activation::Relu6),
                // A downsampling block's: both branches end in a convolution and its batch norm; then an
                // activation that is not a clamp, applied after the product.
                Op::Add(vec![
                    Op::Chain(vec![Op::Conv(&n.convs[2]), Op::BatchNorm(&n.norms[0])]),
                    Op::Chain(vec![Op::Conv(&n.convs[3]), Op::BatchNorm(&n.norms[1])]),
                ]),
                Op::Module(&Activation::Silu),
                Op::Add(vec![Op::Conv(&n.convs[3]), Op::Identity]),
                Op::Module(&Activation::Relu6),
            ])
        },
    );
    assert_matches_candle(&net, &tensor(&mut rng, &[3, 8, 9, 11]), "residual sums");
}

#[test]
fn activations_after_a_pool_and_on_a_channel_slice() {
    let mut rng = Rng::new(5);
    let net = Net::new(
        vec![conv(&mut rng, 8, 16, 3, 1, true)],
        vec![batch_norm(&mut rng, 8)],
        |n| {
            Op::Chain(vec![
                Op::Conv(&n.convs[0]),
                Op::MaxPool(&n.max_pool),
                Op::Module(&Activation::HardSwish),
                // The second half of the channels: a view whose images are not contiguous.
                Op::Module(&n.chunk),
                Op::BatchNorm(&n.norms[0]),
                Op::Module(&Activation::Sigmoid),
                Op::Module(&Activation::Gelu),
            ])
        },
    );
    assert_matches_candle(&net, &tensor(&mut rng, &[3, 8, 9, 11]), "pool and slice");
}

#[test]
fn concatenations_written_in_place() {
    let mut rng = Rng::new(12);
    // An Inception block whose branches end every way a branch can: a pointwise head of the sibling product
    // (copied in), a 3×3 convolution that Winograd takes (16 channels on 14×14) and one the product takes
    // (SiLU after it), a pool before a 1×1 convolution, a depthwise convolution (its kernel has an output of
    // its own: copied in), the block's input itself; then a pointwise convolution on the concatenation.
    let net = Net::new(
        vec![
            conv(&mut rng, 16, 8, 1, 1, false),
            conv(&mut rng, 16, 16, 1, 1, false),
            conv(&mut rng, 16, 16, 3, 1, false),
            conv(&mut rng, 16, 6, 1, 1, false),
            conv(&mut rng, 6, 5, 3, 1, true),
            conv(&mut rng, 16, 7, 1, 1, true),
            conv(&mut rng, 16, 16, 3, 16, false),
            conv(&mut rng, 68, 9, 1, 1, false),
        ],
        vec![
            batch_norm(&mut rng, 8),
            batch_norm(&mut rng, 16),
            batch_norm(&mut rng, 16),
            batch_norm(&mut rng, 6),
            batch_norm(&mut rng, 16),
        ],
        |n| {
            let pool = Op::MaxPool(&n.same_pool);
            Op::Chain(vec![
                Op::Concat(vec![
                    Op::Chain(vec![
                        Op::Conv(&n.convs[0]),
                        Op::BatchNorm(&n.norms[0]),
                        Op::Relu,
                    ]),
                    Op::Chain(vec![
                        Op::Conv(&n.convs[1]),
                        Op::BatchNorm(&n.norms[1]),
                        Op::Relu,
                        Op::Conv(&n.convs[2]),
                        Op::BatchNorm(&n.norms[2]),
                        Op::Relu,
                    ]),
                    Op::Chain(vec![
                        Op::Conv(&n.convs[3]),
                        Op::BatchNorm(&n.norms[3]),
                        Op::Relu,
                        Op::Conv(&n.convs[4]),
                        Op::Module(&Activation::Silu),
                    ]),
                    Op::Chain(vec![pool, Op::Conv(&n.convs[5]), Op::Relu]),
                    Op::Chain(vec![
                        Op::Conv(&n.convs[6]),
                        Op::BatchNorm(&n.norms[4]),
                        Op::Relu,
                    ]),
                    Op::Identity,
                ]),
                Op::Conv(&n.convs[7]),
            ])
        },
    );
    // Written in place at batch 1 on more than one thread; copied in on one, and at batch 3.
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for batch in [1, 3] {
            let x = tensor(&mut rng, &[batch, 16, 14, 14]);
            let what = format!("an Inception block, batch {batch}, {threads} threads");
            pool.install(|| assert_matches_candle(&net, &x, &what));
        }
    }
}

#[test]
fn a_concatenation_of_maps_of_different_sizes_is_an_error_at_batch_1() {
    let mut rng = Rng::new(13);
    let net = Net::new(vec![conv(&mut rng, 4, 3, 3, 1, false)], Vec::new(), |n| {
        Op::Concat(vec![Op::Conv(&n.convs[0]), Op::MaxPool(&n.max_pool)])
    });
    for batch in [1, 2] {
        let x = tensor(&mut rng, &[batch, 4, 6, 6]);
        for options in [Optimizations::ALL, Optimizations::NONE] {
            let error = Plan::new(options).run(&x, false, &net).unwrap_err();
            assert!(
                error.to_string().contains("shape mismatch"),
                "batch {batch}, {options:?}: {error}"
            );
        }
    }
}

#[test]
fn sibling_heads_with_silu() {
    let mut rng = Rng::new(6);
    let net = Net::new(
        vec![
            conv(&mut rng, 8, 6, 1, 1, false),
            conv(&mut rng, 8, 5, 1, 1, true),
            conv(&mut rng, 8, 4, 1, 1, false),
        ],
        vec![batch_norm(&mut rng, 6), batch_norm(&mut rng, 4)],
        |n| {
            Op::Concat(vec![
                Op::Chain(vec![
                    Op::Conv(&n.convs[0]),
                    Op::BatchNorm(&n.norms[0]),
                    Op::Module(&Activation::Silu),
                ]),
                Op::Chain(vec![Op::Conv(&n.convs[1]), Op::Module(&Activation::Silu)]),
                // A different activation: not in the same product.
                Op::Chain(vec![
                    Op::Conv(&n.convs[2]),
                    Op::BatchNorm(&n.norms[1]),
                    Op::Relu,
                ]),
            ])
        },
    );
    assert_matches_candle(&net, &tensor(&mut rng, &[3, 8, 9, 11]), "sibling heads");
}

#[test]
fn batch_norm_with_var_weights_keeps_its_gradient() {
    // A batch norm whose weight and bias want gradients (fine-tuning with frozen statistics runs with
    // `train = false`) runs as candle's ops, with or without the element-wise kernels.
    let mut rng = Rng::new(7);
    let gamma = Var::from_tensor(&tensor(&mut rng, &[8])).unwrap();
    let beta = Var::from_tensor(&tensor(&mut rng, &[8])).unwrap();
    let inner = archc_runtime::candle_nn::BatchNorm::new(
        8,
        tensor(&mut rng, &[8]),
        tensor(&mut rng, &[8]).affine(0.5, 1.0).unwrap(),
        gamma.as_tensor().clone(),
        beta.as_tensor().clone(),
        1e-5,
    )
    .unwrap();
    let net = Net::new(vec![], vec![BatchNorm::new(inner, 8).unwrap()], |n| {
        Op::Chain(vec![Op::BatchNorm(&n.norms[0]), Op::Relu])
    });
    let x = tensor(&mut rng, &[2, 8, 5, 5]);
    let y = Plan::default().run(&x, false, &net).unwrap().unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(gamma.as_tensor()).is_some(), "batch norm weight");
    assert!(grads.get(beta.as_tensor()).is_some(), "batch norm bias");
}

#[test]
fn classifiers_of_linear_layers() {
    let mut rng = Rng::new(8);
    let linear = |rng: &mut Rng, inputs: usize, outputs: usize, bias: bool| {
        let weight = tensor(rng, &[outputs, inputs])
            .affine(2.0 / (inputs as f64).sqrt(), 0.0)
            .unwrap();
        Linear::new(weight, bias.then(|| tensor(rng, &[outputs])))
    };
    let mut net = Net::new(vec![], vec![], |n| {
        // AlexNet's and VGG's classifier, then a layer without bias and activations that are modules.
        Op::Chain(vec![
            Op::Flatten,
            Op::Module(&n.linears[0]),
            Op::Relu,
            Op::Identity,
            Op::Module(&n.linears[1]),
            Op::Module(&Activation::Silu),
            Op::Module(&n.linears[2]),
            Op::Module(&n.linears[3]),
            Op::Module(&Activation::Gelu),
        ])
    });
    net.linears = vec![
        linear(&mut rng, 400, 37, true),
        linear(&mut rng, 37, 64, true),
        linear(&mut rng, 64, 10, false),
        linear(&mut rng, 10, 3, true),
    ];
    // Batches the kernel takes (up to 8) and one it leaves to candle's product.
    for batch in [1, 3, 8, 9] {
        let x = tensor(&mut rng, &[batch, 16, 5, 5]);
        assert_matches_candle(&net, &x, &format!("classifier, batch {batch}"));
    }
}

#[test]
fn a_classifier_after_whole_image_streams() {
    // A batch larger than the pool runs as one stream of images per thread up to the flatten, and the
    // classifier on the whole batch after them (its weights read once): the same values as every image alone.
    let mut rng = Rng::new(10);
    let linear = |rng: &mut Rng, inputs: usize, outputs: usize| {
        let weight = tensor(rng, &[outputs, inputs])
            .affine(2.0 / (inputs as f64).sqrt(), 0.0)
            .unwrap();
        Linear::new(weight, Some(tensor(rng, &[outputs])))
    };
    let mut net = Net::new(
        vec![conv(&mut rng, 3, 8, 3, 1, true)],
        vec![batch_norm(&mut rng, 8)],
        |n| {
            Op::Chain(vec![
                Op::Conv(&n.convs[0]),
                Op::BatchNorm(&n.norms[0]),
                Op::Relu,
                Op::MaxPool(&n.max_pool),
                // Dropout, then the classifier: the batch-wise part starts at the flatten.
                Op::Identity,
                Op::Flatten,
                Op::Module(&n.linears[0]),
                Op::Relu,
                Op::Identity,
                Op::Module(&n.linears[1]),
            ])
        },
    );
    net.linears = vec![linear(&mut rng, 8 * 4 * 4, 20), linear(&mut rng, 20, 5)];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        // Batches of streams (3, and 9, past what the linear kernel takes at once) and one of no more images
        // than threads.
        for batch in [2, 3, 9] {
            let x = tensor(&mut rng, &[batch, 3, 8, 8]);
            assert_matches_candle(&net, &x, &format!("batch {batch}"));
        }
    });
}

/// A layer that panics, for the plan's threads to see it through.
struct Panics;

impl archc_runtime::candle_core::Module for Panics {
    fn forward(&self, _: &Tensor) -> archc_runtime::candle_core::Result<Tensor> {
        panic!("a layer that panics")
    }
}

#[test]
fn a_panic_inside_a_spinning_plan_reaches_the_caller() {
    // With two threads and one image, the pool's other thread spins for work until the network is done; a
    // panic must end that too, not leave the caller waiting for it.
    let mut rng = Rng::new(9);
    let net = Net::new(vec![conv(&mut rng, 4, 8, 3, 1, false)], Vec::new(), |n| {
        Op::Chain(vec![Op::Conv(&n.convs[0]), Op::Module(&Panics)])
    });
    let x = tensor(&mut rng, &[1, 4, 6, 6]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.install(|| Plan::default().run(&x, false, &net))
    }));
    assert!(outcome.is_err(), "the panic came through");
    // The pool still works afterwards.
    let again = Net::new(vec![conv(&mut rng, 4, 8, 3, 1, false)], Vec::new(), |n| {
        Op::Conv(&n.convs[0])
    });
    let y = pool
        .install(|| Plan::default().run(&x, false, &again))
        .unwrap();
    assert!(y.is_some());
}
