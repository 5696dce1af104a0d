//! A generated model runs at any input size its network is valid at, not only the declared one, and refuses the
//! others with the reason the checker found: the first layer the size breaks.
//!
//! The references are torchvision's own GoogLeNet classes (widths / 8, the weights of tests/parity) run by
//! PyTorch at 15×15, 61×77 and 113×100, and the paper's GoogLeNet (widths / 8) at 127×158:
//! `tests/parity/make_size_fixtures.py` writes them, and asserts that PyTorch refuses the sizes refused here.

use std::collections::HashMap;
use std::path::Path;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::VarBuilder;

archc_runtime::include_arch!("tests/parity/torchvision_tiny.arch");
archc_runtime::include_arch!("tests/parity/paper_tiny.arch");

#[path = "support/compare.rs"]
mod compare;

use compare::assert_close;

fn load(name: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parity")
        .join(name);
    archc_runtime::candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// The model with the reference weights; every dropout at p = 0, as the references were exported (so that
/// training mode is deterministic).
fn model() -> googlenet_tiny::Model {
    let vb = VarBuilder::from_tensors(
        load("torchvision_tiny.weights.safetensors"),
        DType::F32,
        &Device::Cpu,
    );
    let config = googlenet_tiny::Config {
        dropout: 0.0,
        dropout_aux: 0.0,
        ..Default::default()
    };
    googlenet_tiny::Model::new(vb, &config).unwrap()
}

#[test]
fn the_generated_model_runs_at_sizes_other_than_the_declared_one_as_pytorch_does() {
    let io = load("torchvision_tiny.sizes.safetensors");
    // Declared: 96×96. 15×15 is the smallest that runs, 61×77 neither square nor a multiple of the stride 32,
    // 113×100 larger than declared.
    for tag in ["15x15", "61x77", "113x100"] {
        let input = &io[&format!("input_{tag}")];
        // Inference, through the inference plan and through candle's layers one by one (a fresh model each).
        assert_close(
            &format!("{tag} eval"),
            &model().forward(input).unwrap(),
            &io[&format!("eval_logits_{tag}")],
        );
        let plain = model().with_optimizations(archc_runtime::nn::Optimizations::NONE);
        assert_close(
            &format!("{tag} eval, no plan optimisations"),
            &plain.forward(input).unwrap(),
            &io[&format!("eval_logits_{tag}")],
        );
        // Training: batch statistics, and the aux heads (at 15×15 they pool a 1×1 map adaptively to 4×4).
        let outputs = model().forward_t(input, true).unwrap();
        assert_close(
            &format!("{tag} train logits"),
            &outputs.logits,
            &io[&format!("train_logits_{tag}")],
        );
        assert_close(
            &format!("{tag} train aux1"),
            &outputs.aux1.unwrap(),
            &io[&format!("train_aux1_{tag}")],
        );
        assert_close(
            &format!("{tag} train aux2"),
            &outputs.aux2.unwrap(),
            &io[&format!("train_aux2_{tag}")],
        );
    }
}

#[test]
fn the_model_knows_the_sizes_it_runs_at() {
    let sizes = googlenet_tiny::INPUT_SIZES;
    assert_eq!(sizes.channels, 3);
    // The tiny network has torchvision's spatial layers (only the widths differ): 15×15 and up.
    assert_eq!(
        sizes.height,
        archc_runtime::nn::SizeRange { min: 15, max: None }
    );
    assert_eq!(sizes.width, sizes.height);
    assert_eq!(googlenet_tiny::INPUT_SHAPE, [3, 96, 96]);
}

#[test]
fn a_too_small_input_is_an_error_naming_the_first_layer_it_breaks() {
    let model = model();
    let error = |h: usize, w: usize| {
        let input = Tensor::zeros((1, 3, h, w), DType::F32, &Device::Cpu).unwrap();
        model
            .forward(&input)
            .expect_err("too small an input is an error")
            .to_string()
    };
    // At 14: conv1 (7×7/2, pad 3) floor((14 + 6 − 7) / 2) + 1 = 7; maxpool1 (3×3/2 ceil) ceil((7 − 3) / 2) + 1
    // = 3; conv2 and conv3 keep 3; maxpool2 ceil((3 − 3) / 2) + 1 = 1; inception3a/3b keep 1, with
    // 16 + 24 + 12 + 8 = 60 channels; maxpool3 ceil((1 − 3) / 2) + 1 = 0. PyTorch: "Given input size: (60x1x1).
    // Calculated output size: (60x0x0). Output size is too small".
    assert_eq!(
        error(14, 14),
        "tests/parity/torchvision_tiny.arch: `googlenet_tiny`: input 14×14 is too small: at 14×14, `maxpool3` \
         (max_pool 3×3/2 ceil) gets a [60, 1, 1] map: max_pool window of 3 is larger than its padded input \
         height and width of 1; the smallest valid input is 15×15"
    );
    // Any smaller size gets the same reason; the height alone too small is located on the height: with the
    // declared width 96 the map before maxpool3 is 1 high and 96 / 8 = 12 wide.
    assert!(error(3, 3).contains("input 3×3 is too small: at 14×14, `maxpool3`"));
    let narrow = error(14, 200);
    assert!(
        narrow.contains("input 14×200 is too small: at 14×96, `maxpool3` (max_pool 3×3/2 ceil) gets a [60, 1, 12] map: max_pool window of 3 is larger than its padded input height of 1"),
        "{narrow}"
    );
    let short = error(200, 10);
    assert!(short.contains("at 96×14, `maxpool3`"), "{short}");
}

#[test]
fn a_wrong_rank_or_channel_count_is_still_refused() {
    let model = model();
    for (dims, expected) in [
        (
            vec![3, 96, 96],
            "expected an input of shape [N, 3, H, W] (H 15+, W 15+), found [3, 96, 96]",
        ),
        (
            vec![2, 1, 96, 96],
            "expected an input of shape [N, 3, H, W], found [2, 1, 96, 96]",
        ),
    ] {
        let input = Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        let message = model.forward(&input).expect_err("refused").to_string();
        assert!(message.contains(expected), "{message}");
    }
}

/// The paper's GoogLeNet ends in a 4×4/1 average pool (in the tiny version) and its aux heads in 5×5/3 ones, each
/// before `flatten -> linear`: it runs only at the sizes that keep those maps at their declared size.
#[test]
fn a_network_with_a_fixed_size_classifier_runs_in_its_range_and_names_what_breaks_outside_it() {
    // Per axis from n: conv1 (7/2 pad 3) a = floor((n − 1) / 2) + 1; pool1..pool3 (3/2 ceil) b, c, e = ceil((x − 3)
    // / 2) + 1. aux: floor((e − 5) / 3) + 1 = 2 needs e ∈ 8..=10; pool4 (3/2 ceil) then pool5 (4/1) give 1×1 only
    // if ceil((e − 3) / 2) + 1 = 4, e ∈ {8, 9}. Backwards: c ∈ 16..=19, b ∈ 32..=39, a ∈ 64..=79, n ∈ 127..=158.
    let sizes = googlenet_paper_tiny::INPUT_SIZES;
    let range = archc_runtime::nn::SizeRange {
        min: 127,
        max: Some(158),
    };
    assert_eq!((sizes.height, sizes.width), (range, range));

    let vb = VarBuilder::from_tensors(
        load("paper_tiny.weights.safetensors"),
        DType::F32,
        &Device::Cpu,
    );
    let config = googlenet_paper_tiny::Config {
        dropout: 0.0,
        dropout_aux: 0.0,
        ..Default::default()
    };
    let model = googlenet_paper_tiny::Model::new(vb, &config).unwrap();
    // 127×158: the smallest height and the largest width, against PyTorch.
    let io = load("paper_tiny.sizes.safetensors");
    let input = &io["input"];
    assert_close(
        "paper 127x158 eval",
        &model.forward(input).unwrap(),
        &io["eval_logits"],
    );
    let outputs = model.forward_t(input, true).unwrap();
    assert_close("paper 127x158 train", &outputs.logits, &io["train_logits"]);
    assert_close(
        "paper 127x158 aux1",
        &outputs.aux1.unwrap(),
        &io["train_aux1"],
    );
    assert_close(
        "paper 127x158 aux2",
        &outputs.aux2.unwrap(),
        &io["train_aux2"],
    );

    let error = |h: usize, w: usize| {
        let input = Tensor::zeros((1, 3, h, w), DType::F32, &Device::Cpu).unwrap();
        model.forward(&input).unwrap_err().to_string()
    };
    // At 159: a = 80, b = 40, c = 20, e = 10 (aux heads still 2×2), pool4 ceil(7 / 2) + 1 = 5, pool5 2×2, and
    // fc gets 128 · 2 · 2 = 512 features. PyTorch: "mat1 and mat2 shapes cannot be multiplied (1x512 and 128x10)".
    assert_eq!(
        error(159, 159),
        "tests/parity/paper_tiny.arch: `googlenet_paper_tiny`: input 159×159 is too large: at 159×159, `fc` \
         (linear 128→10) gets 512 features, a flattened [128, 2, 2] map, where its weights take 128, a \
         flattened [128, 1, 1] map; the largest valid input is 158×158"
    );
    // At 126: a = 63, b = 31, c = 15, e = 7; aux1 (after inception4a, before pool4) pools floor(2 / 3) + 1 = 1,
    // and its fc1 gets 16 · 1 · 1 = 16 features instead of 64 (PyTorch, training mode: "(1x16 and 64x128)").
    let small = error(126, 140);
    assert!(
        small.contains(
            "input 126×140 is too small: at 126×128, `aux1.fc1` (linear 64→128) gets 32 features, a flattened \
             [16, 1, 2] map, where its weights take 64, a flattened [16, 2, 2] map; the smallest valid input is \
             127×127"
        ),
        "{small}"
    );
}
