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
