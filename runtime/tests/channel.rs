//! ShuffleNet's channel operations: `channel_shuffle` and `chunk` against tensors computed with PyTorch (and the
//! permutation worked out by hand), their errors, and gradients through both.

mod common;

use archc_runtime::candle_core::{Device, Module, Tensor, Var};
use archc_runtime::nn;
use common::{assert_close, nchw, values};

/// `torch.arange(24.).reshape(2, 6, 1, 2)`: channel `c` of sample `n` holds `12 n + 2 c` and `12 n + 2 c + 1`.
fn arange() -> Tensor {
    nchw((0..24).map(|v| v as f32).collect(), (2, 6, 1, 2))
}

#[test]
fn channel_shuffle_interleaves_the_groups() {
    // groups 3 of k = 2 channels: output channel j * 3 + i is input channel i * 2 + j, so the channels come out
    // in the order 0, 2, 4, 1, 3, 5. `torch.nn.ChannelShuffle(3)(x).flatten().tolist()` prints the same.
    let y = nn::channel_shuffle(6, 3)
        .unwrap()
        .forward(&arange())
        .unwrap();
    let expected = [
        0., 1., 4., 5., 8., 9., 2., 3., 6., 7., 10., 11., //
        12., 13., 16., 17., 20., 21., 14., 15., 18., 19., 22., 23.,
    ];
    assert_close(&y, &[2, 6, 1, 2], &expected, 0.0, "groups 3");
    assert!(
        y.is_contiguous(),
        "a real copy, as PyTorch's `.contiguous()`"
    );

    // groups 2 of k = 3: the order 0, 3, 1, 4, 2, 5 (`torch.nn.ChannelShuffle(2)`).
    let y = nn::channel_shuffle(6, 2)
        .unwrap()
        .forward(&arange())
        .unwrap();
    let expected = [
        0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11., //
        12., 13., 18., 19., 14., 15., 20., 21., 16., 17., 22., 23.,
    ];
    assert_close(&y, &[2, 6, 1, 2], &expected, 0.0, "groups 2");

    // One group, or as many groups as channels, leaves the order alone.
    for groups in [1, 6] {
        let y = nn::channel_shuffle(6, groups)
            .unwrap()
            .forward(&arange())
            .unwrap();
        assert_eq!(values(&y), values(&arange()), "groups {groups}");
    }
}

#[test]
fn chunk_is_one_equal_channel_slice() {
    // `torch.chunk(x, 3, dim=1)[1]`: channels 2 and 3 of each sample.
    let y = nn::chunk(6, 3, 1).unwrap().forward(&arange()).unwrap();
    let expected = [4., 5., 6., 7., 16., 17., 18., 19.];
    assert_close(&y, &[2, 2, 1, 2], &expected, 0.0, "chunk 1 of 3");

    // The last half of a flat input: features 3, 4, 5.
    let flat = Tensor::from_vec((0..6).map(|v| v as f32).collect(), (1, 6), &Device::Cpu).unwrap();
    let y = nn::chunk(6, 2, 1).unwrap().forward(&flat).unwrap();
    assert_close(&y, &[1, 3], &[3., 4., 5.], 0.0, "flat");
}

#[test]
fn the_constructors_reject_what_the_checker_rejects() {
    let cases = [
        (
            nn::channel_shuffle(6, 4).unwrap_err(),
            "6 channels cannot be split into 4 groups",
        ),
        (
            nn::channel_shuffle(6, 0).unwrap_err(),
            "6 channels cannot be split into 0 groups",
        ),
        (
            nn::chunk(6, 4, 0).unwrap_err(),
            "6 channels cannot be split into 4 chunks",
        ),
        (
            nn::chunk(6, 0, 0).unwrap_err(),
            "6 channels cannot be split into 0 chunks",
        ),
        (
            nn::chunk(6, 2, 2).unwrap_err(),
            "index 2 is not one of the 2 chunks",
        ),
    ];
    for (error, expected) in cases {
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn an_input_that_does_not_fit_is_an_error_not_a_panic() {
    // Built for 6 channels, given 5 (or a flat input, for the shuffle).
    let odd = nchw(vec![0.; 10], (1, 5, 1, 2));
    let message = nn::channel_shuffle(6, 3)
        .unwrap()
        .forward(&odd)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("5 input channels cannot be split into 3 groups"),
        "{message}"
    );
    let flat = Tensor::zeros((2, 6), archc_runtime::candle_core::DType::F32, &Device::Cpu).unwrap();
    let message = nn::channel_shuffle(6, 3)
        .unwrap()
        .forward(&flat)
        .unwrap_err()
        .to_string();
    assert!(message.contains("rank-4"), "{message}");
    let message = nn::chunk(6, 2, 0)
        .unwrap()
        .forward(&odd)
        .unwrap_err()
        .to_string();
    assert!(message.contains("5 input channels"), "{message}");
}

#[test]
fn gradients_go_back_through_the_shuffle_and_the_slice() {
    // y = chunk 1 of 2 of shuffle(x, 3): shuffled order 0, 2, 4 | 1, 3, 5, so the slice holds input channels
    // 1, 3 and 5; d sum(y) / dx is 1 on those channels and 0 on 0, 2 and 4.
    let x = Var::from_tensor(&arange()).unwrap();
    let shuffled = nn::channel_shuffle(6, 3)
        .unwrap()
        .forward(x.as_tensor())
        .unwrap();
    let y = nn::chunk(6, 2, 1).unwrap().forward(&shuffled).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let one_sample = [0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 1., 1.];
    let expected: Vec<f32> = one_sample.iter().chain(&one_sample).copied().collect();
    assert_close(
        grads.get(x.as_tensor()).unwrap(),
        &[2, 6, 1, 2],
        &expected,
        0.0,
        "dx",
    );
}
