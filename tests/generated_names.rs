//! The names generated code gives things, compiled through `include_arch!` and run: a file whose names collide
//! with the generated code's own types and locals (`tests/fixtures/codegen/names.arch`: blocks called `model`,
//! `config` and `tensor`, parameters `vb`, `cfg`, `xs`, `train`, statements `xs`, `logits`, `d1`, ...), which
//! the generator renames; keywords as names; statements that are one Rust name; and loops written out
//! iteration by iteration (`conv{i}` → `conv0`, `conv1`).

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};

#[path = "support/compare.rs"]
mod compare;

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

archc_runtime::include_arch!("tests/fixtures/codegen/same_rust_names.arch");

/// `Conv1` and `conv1` are both `conv1` in Rust: the second is the field `conv1_2`, and the inference plan
/// runs the same layers as the forward pass (it once read `conv1` twice, and the second product failed).
#[test]
fn names_that_are_one_rust_name_get_fields_of_their_own() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = same_rust_names::Model::new(vb, &same_rust_names::Config::default()).unwrap();
    assert_eq!(model.conv1.weight().dims(), [4, 3, 3, 3]);
    assert_eq!(model.conv1_2.weight().dims(), [8, 4, 3, 3]);
    let input = Tensor::randn(0f32, 1., (2, 3, 8, 8), &Device::Cpu).unwrap();
    // Inference runs the plan; training mode runs the forward pass (no batch norm or dropout here, so the two
    // compute the same function).
    let planned = model.forward(&input).unwrap();
    let forward = model.forward_t(&input, true).unwrap().logits;
    compare::assert_close("the plan against the forward pass", &planned, &forward);
}

archc_runtime::include_arch!("tests/fixtures/codegen/counted_channels.arch");

/// `stage` doubles its input's channels `n` times in a loop, so the statement after it reads them from the built
/// block (`stage.out_channels`): with `n = 3`, 3 → 24, and `b` doubles that.
#[test]
fn a_block_s_counted_channels_are_read_by_the_next_statement() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = counted_channels::Model::new(vb, &counted_channels::Config { n: 3 }).unwrap();
    assert_eq!(model.stage.out_channels, 24);
    assert_eq!(model.b.conv.weight().dims(), [48, 24, 1, 1]);
    let input = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward(&input).unwrap().dims(), [1, 48, 8, 8]);
}
