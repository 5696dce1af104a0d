//! The boundaries of a generated model: a wrong input, a weight file with a missing or mis-shaped tensor, and a
//! `Config` other than the defaults. Each failure is an error that names the culprit, never a panic.

use std::collections::HashMap;
use std::path::Path;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};

archc_runtime::include_arch!("tests/parity/torchvision_tiny.arch");

fn reference_weights() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parity/torchvision_tiny.weights.safetensors");
    archc_runtime::candle_core::safetensors::load(path, &Device::Cpu).expect("fixture loads")
}

fn build(tensors: HashMap<String, Tensor>) -> Result<googlenet_tiny::Model, String> {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    googlenet_tiny::Model::new(vb, &googlenet_tiny::Config::default()).map_err(|e| e.to_string())
}

#[test]
fn a_missing_tensor_is_named_with_its_arch_statement() {
    let mut tensors = reference_weights();
    tensors.remove("inception3a.branch2.0.conv.weight");
    let message = build(tensors).expect_err("a missing tensor is an error");
    assert!(
        message.contains("inception3a.branch2.0.conv.weight"),
        "{message}"
    );
    assert!(message.contains("missing"), "{message}");
    // The conv2d statement inside `basic_conv`, line 6 of the .arch file.
    assert!(
        message.contains("tests/parity/torchvision_tiny.arch:6:"),
        "{message}"
    );
}

#[test]
fn a_mis_shaped_tensor_reports_expected_and_found_shapes() {
    let mut tensors = reference_weights();
    // inception3a's 3x3 branch reads 12 channels into 16: [16, 12, 3, 3]. Give it a 5x5 kernel instead.
    tensors.insert(
        "inception3a.branch2.1.conv.weight".to_string(),
        Tensor::zeros((16, 12, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let message = build(tensors).expect_err("a mis-shaped tensor is an error");
    assert!(
        message.contains("inception3a.branch2.1.conv.weight"),
        "{message}"
    );
    assert!(message.contains("[16, 12, 3, 3]"), "{message}");
    assert!(message.contains("[16, 12, 5, 5]"), "{message}");
}

#[test]
fn a_wrong_input_shape_is_an_error_saying_what_was_expected() {
    let model = build(reference_weights()).expect("reference weights load");
    // Another height and width is not wrong: the network pools adaptively before its classifier, so it runs
    // at any size from 15×15 up (tests/input_sizes.rs compares such runs with PyTorch).
    let other_size = Tensor::zeros((2, 3, 64, 80), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward(&other_size).unwrap().dims(), [2, 10]);
    for bad in [
        Tensor::zeros((3, 96, 96), DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros((2, 1, 96, 96), DType::F32, &Device::Cpu).unwrap(),
    ] {
        let message = model
            .forward(&bad)
            .expect_err("wrong input is an error")
            .to_string();
        assert!(message.contains("[N, 3, H, W]"), "{message}");
        assert!(message.contains(&format!("{:?}", bad.dims())), "{message}");
    }
    let too_small = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let message = model.forward(&too_small).unwrap_err().to_string();
    assert!(
        message.contains("input 8×8 is too small: at 14×14, `maxpool3`"),
        "{message}"
    );
    let integers = Tensor::zeros((1, 3, 96, 96), DType::U32, &Device::Cpu).unwrap();
    let message = model
        .forward(&integers)
        .expect_err("integer input is an error")
        .to_string();
    assert!(message.contains("floating-point"), "{message}");
}

#[test]
fn a_non_default_config_builds_the_network_it_describes() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let config = googlenet_tiny::Config {
        num_classes: 5,
        ..Default::default()
    };
    let model = googlenet_tiny::Model::new(vb, &config).unwrap();
    let input = Tensor::randn(0f32, 1.0, (2, 3, 96, 96), &Device::Cpu).unwrap();
    let outputs = model.forward_t(&input, true).unwrap();
    assert_eq!(outputs.logits.dims(), [2, 5]);
    assert_eq!(outputs.aux1.unwrap().dims(), [2, 5]);
    // The defaults are what the checker verified: 10 classes.
    assert_eq!(googlenet_tiny::OUTPUT_SHAPE, [10]);
}
