//! `archc_runtime::profile`: the plan's steps of a small network, their labels and multiply-adds worked out
//! by hand. In a file of its own, so that no other test's plan runs while the profile records, and its tests
//! one at a time ([`ONE_AT_A_TIME`]).

mod common;

use archc_runtime::candle_core::Tensor;
use archc_runtime::nn::{Describe, Op, Optimizations, Plan};
use archc_runtime::{BatchNorm, Conv2d, Conv2dSpec, MaxPool2d, Pad2d};
use common::{tensor, Rng};

/// Held by each test while it records: the profile is the process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Net {
    stem: Conv2d,
    bn: BatchNorm,
    pool: MaxPool2d,
    left: Conv2d,
    right: Conv2d,
    residual: Conv2d,
}

impl Describe for Net {
    fn describe(&self) -> Op<'_> {
        Op::chain([
            Op::Conv(&self.stem),
            Op::BatchNorm(&self.bn),
            Op::Relu,
            Op::MaxPool(&self.pool),
            Op::concat([Op::Conv(&self.left), Op::Conv(&self.right)]),
            Op::add([Op::Conv(&self.residual), Op::Identity]),
            Op::Relu,
        ])
    }
}

fn conv(rng: &mut Rng, c_in: usize, c_out: usize, k: usize, stride: usize) -> Conv2d {
    let weight = tensor(rng, &[c_out, c_in, k, k]).affine(0.1, 0.0).unwrap();
    let spec = Conv2dSpec {
        stride: (stride, stride),
        pad: Pad2d::uniform(k / 2),
        ..Conv2dSpec::default()
    };
    Conv2d::new(weight, None, spec).unwrap()
}

/// Each step's label, calls and multiply-adds, in label order.
fn sorted(steps: &[archc_runtime::profile::Step]) -> Vec<(&str, u64, u64)> {
    let mut got: Vec<_> = steps
        .iter()
        .map(|s| (s.label.as_str(), s.calls, s.macs))
        .collect();
    got.sort();
    got
}

/// The steps of one inference of `net` on `x`, run on a pool of `threads` threads.
fn profiled(
    threads: usize,
    x: &Tensor,
    net: &(impl Describe + Sync),
) -> Vec<archc_runtime::profile::Step> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        archc_runtime::profile::start();
        Plan::default()
            .run(x, false, net)
            .unwrap()
            .expect("a CPU f32 inference");
        archc_runtime::profile::finish()
    })
}

#[test]
fn steps_are_labelled_and_counted() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(7);
    let bn = common::batch_norm(&mut rng, 16, true, 1e-5);
    let net = Net {
        stem: conv(&mut rng, 3, 16, 3, 2),
        bn,
        pool: MaxPool2d::new((2, 2)),
        left: conv(&mut rng, 16, 8, 1, 1),
        right: conv(&mut rng, 16, 24, 1, 1),
        residual: conv(&mut rng, 32, 32, 3, 1),
    };
    let x = tensor(&mut rng, &[2, 3, 20, 20]);
    let plan = Plan::new(Optimizations {
        micro_batches: false,
        ..Optimizations::ALL
    });
    archc_runtime::profile::start();
    for _ in 0..3 {
        plan.run(&x, false, &net)
            .unwrap()
            .expect("a CPU f32 inference");
    }
    let steps = archc_runtime::profile::finish();
    let got = sorted(&steps);
    // Two images. The stem: 16 × 3 × 3 × 3 multiply-adds at each of 10 × 10 outputs; the sibling 1×1
    // convolutions: (8 + 24) × 16 at each of 5 × 5; the residual's 3×3: 32 × 32 × 9 at 5 × 5.
    let mut want = vec![
        (
            "conv 3×3/2 3→16 + batch norm + relu (3×20×20 → 16×10×10)",
            3,
            3 * 2 * 16 * 3 * 3 * 3 * 10 * 10,
        ),
        ("max pool 2×2/2 (16×10×10 → 16×5×5)", 3, 0),
        (
            "sibling conv 1×1 16→8 (→ 8×5×5) ‖ conv 1×1 16→24 (→ 24×5×5) (16×5×5)",
            3,
            3 * 2 * (8 + 24) * 16 * 5 * 5,
        ),
        ("concat of 2 branches (16×5×5 → 32×5×5)", 3, 0),
        (
            "conv 3×3 32→32 (32×5×5 → 32×5×5) + residual",
            3,
            3 * 2 * 32 * 32 * 9 * 5 * 5,
        ),
        ("sum of 2 branches + relu (32×5×5 → 32×5×5)", 3, 0),
        // The sum's other branch, run before the convolution that adds it.
        ("identity (32×5×5 → 32×5×5)", 3, 0),
    ];
    want.sort();
    assert_eq!(got, want);
    // Not recording any more.
    plan.run(&x, false, &net).unwrap();
    assert!(archc_runtime::profile::finish().is_empty());
}

/// A batch run as whole-image streams runs its classifier once, on the whole batch, after the streams.
#[test]
fn a_classifier_runs_once_per_batch_after_the_streams() {
    use archc_runtime::candle_nn::Linear;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

    struct Classifier {
        conv: Conv2d,
        linear: Linear,
    }
    impl Describe for Classifier {
        fn describe(&self) -> Op<'_> {
            Op::chain([
                Op::Conv(&self.conv),
                Op::Relu,
                Op::Flatten,
                Op::Module(&self.linear),
                Op::Relu,
            ])
        }
    }
    let mut rng = Rng::new(8);
    let net = Classifier {
        conv: conv(&mut rng, 3, 4, 3, 1),
        linear: Linear::new(tensor(&mut rng, &[6, 4 * 5 * 5]), None),
    };
    let x = tensor(&mut rng, &[5, 3, 5, 5]);
    let steps = profiled(2, &x, &net);
    let got = sorted(&steps);
    // Five images one at a time through the convolution (4 × 3 × 3 × 3 multiply-adds at each of 5 × 5
    // positions), then the flatten and the linear layer (6 × 100 per image) once, on all five.
    let mut want = vec![
        (
            "conv 3×3 3→4 + relu (3×5×5 → 4×5×5)",
            5,
            5 * 4 * 3 * 3 * 3 * 5 * 5,
        ),
        ("flatten (4×5×5 → 100)", 1, 0),
        ("linear 100→6 + relu (100 → 6)", 1, 5 * 6 * 100),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// A concatenation whose branches start with no pointwise convolution to run as one product records no
/// sibling step (the product declined; each branch is a step of its own). On two threads, at batch 1, each
/// convolution writes into its slice of the concatenation; on one, the branches are copied in.
#[test]
fn declined_sibling_products_are_not_recorded() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    struct Branches {
        left: Conv2d,
        right: Conv2d,
    }
    impl Describe for Branches {
        fn describe(&self) -> Op<'_> {
            Op::concat([Op::Conv(&self.left), Op::Conv(&self.right)])
        }
    }
    let mut rng = Rng::new(9);
    let net = Branches {
        left: conv(&mut rng, 4, 3, 3, 1),
        right: conv(&mut rng, 4, 5, 3, 1),
    };
    let x = tensor(&mut rng, &[1, 4, 6, 6]);
    for (threads, into) in [(1, ""), (2, ", into the concatenation")] {
        let steps = profiled(threads, &x, &net);
        // Each branch's 3 × 3 × 4 multiply-adds per output at 6 × 6 positions.
        let mut want = vec![
            ("concat of 2 branches (4×6×6 → 8×6×6)".to_string(), 1, 0),
            (
                format!("conv 3×3 4→3 (4×6×6 → 3×6×6{into})"),
                1,
                3 * 4 * 9 * 36,
            ),
            (
                format!("conv 3×3 4→5 (4×6×6 → 5×6×6{into})"),
                1,
                5 * 4 * 9 * 36,
            ),
        ];
        want.sort();
        let got: Vec<(String, u64, u64)> = sorted(&steps)
            .into_iter()
            .map(|(label, calls, macs)| (label.to_string(), calls, macs))
            .collect();
        assert_eq!(got, want, "{threads} threads");
    }
}
