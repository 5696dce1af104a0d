//! A file whose names collide with the generated code's own types and locals (`tests/fixtures/codegen/
//! names.arch`: blocks called `model`, `config` and `tensor`, parameters `vb`, `cfg`, `xs`, `train`,
//! statements `xs`, `logits`, `d1`, ...) compiles through `include_arch!` and runs: the generator renames
//! what would shadow its own identifiers.

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};

archc_runtime::include_arch!("tests/fixtures/codegen/names.arch");

#[test]
fn colliding_names_compile_and_run() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = names::Model::new(vb, &names::Config::default()).unwrap();
    let input = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    // Config fields keep the source's names where they do not collide, and take a `_` where they do.
    assert_eq!(names::Config::default().vb_, 4);
    assert_eq!(model.forward(&input).unwrap().dims(), [2, 10]);
    // Weight paths are the statement names, unchanged.
    assert!(varmap
        .data()
        .lock()
        .unwrap()
        .contains_key("train.cfg.weight"));
}

archc_runtime::include_arch!("tests/fixtures/codegen/keyword_names.arch");

/// Members named `block`, `input`, `from`, `same` (keywords of `.arch`) and `type`, `fn`, `match` (keywords of
/// Rust) compile, run, and keep their names in the weight paths.
#[test]
fn keyword_names_compile_and_keep_their_weight_names() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = keyword_names::Model::new(vb, &keyword_names::Config::default()).unwrap();
    let input = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward(&input).unwrap().dims(), [2, 10]);
    let data = varmap.data().lock().unwrap();
    for name in [
        "block.block.0.weight",
        "block.block.1.weight",
        "block.type.weight",
        "block.match.weight",
        "input.block.0.weight",
        "input.type.weight",
        "same.weight",
    ] {
        assert!(
            data.contains_key(name),
            "no `{name}` among {:?}",
            data.keys()
        );
    }
}

archc_runtime::include_arch!("tests/fixtures/codegen/unrolled.arch");

/// Loops of constant range whose body is not one block call are written out: each iteration's statements get
/// the loop variable's value in their arguments and names, and their weights the names PyTorch would give them.
#[test]
fn unrolled_loops_compile_run_and_name_each_iteration() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // A width other than the default: the loop's `width * (i + 1)` stays an expression of the Config.
    let cfg = unrolled::Config { width: 2 };
    let model = unrolled::Model::new(vb, &cfg).unwrap();
    let input = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward(&input).unwrap().dims(), [2, 10]);
    let data = varmap.data().lock().unwrap();
    // conv{i} = conv2d(width * (i + 1), 3): out channels 2, 4, 6, in channels 3, 2, 4.
    for (name, dims) in [
        ("conv0.weight", vec![2, 3, 3, 3]),
        ("conv1.weight", vec![4, 2, 3, 3]),
        ("conv2.weight", vec![6, 4, 3, 3]),
        ("bn1.running_mean", vec![4]),
        ("stage1.res1.main.0.weight", vec![6, 6, 3, 3]),
        ("stage2.res2.main.1.weight", vec![6]),
        ("stage2.2.weight", vec![6, 6, 1, 1]),
        ("fc.weight", vec![10, 6]),
    ] {
        let tensor = data
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` among {:?}", data.keys()));
        assert_eq!(tensor.dims(), dims.as_slice(), "{name}");
    }
    assert!(!data.contains_key("conv3.weight"));
}
