//! Every built-in layer through every stage: check, summary, graph, emit (compiled here by `include_arch!`) and
//! the runtime, in inference (the runtime's plan, with and without its optimisations) and in training. The
//! fixture must call every registered built-in, so a new layer fails here until it is covered.

use std::collections::BTreeSet;

use archc::ast::visit::{self, Visit};
use archc::ast::Call;
use archc::SourceKind;
use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};
use archc_runtime::nn::Optimizations;

archc_runtime::include_arch!("tests/fixtures/codegen/every_layer.arch");

const FIXTURE: &str = "tests/fixtures/codegen/every_layer.arch";

#[path = "support/compare.rs"]
mod compare;

/// A model of `$network` with random weights as plain tensors (not `Var`s), so inference takes the runtime's
/// plan and its CPU kernels.
macro_rules! random_model {
    ($network:path) => {{
        use $network as network;
        let varmap = VarMap::new();
        let config = network::Config::default();
        network::Model::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &config,
        )
        .unwrap();
        let vb = archc_runtime::load::detached(&varmap, &Device::Cpu).unwrap();
        network::Model::new(vb, &config).unwrap()
    }};
}

/// The 1-based line of the fixture that starts (after indentation) with `start`.
fn line_of(start: &str) -> usize {
    1 + source()
        .lines()
        .position(|line| line.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line `{start}` in {FIXTURE}"))
}

fn source() -> String {
    std::fs::read_to_string(format!("{}/{FIXTURE}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every callee of a file, in groups' branches too.
#[derive(Default)]
struct Callees(BTreeSet<String>);

impl<'ast> Visit<'ast> for Callees {
    fn visit_call(&mut self, call: &'ast Call) {
        self.0.insert(call.callee.name.clone());
        visit::visit_call(self, call);
    }
}

#[test]
fn the_fixture_calls_every_built_in_layer() {
    let file = archc::parse_source(SourceKind::Arch, &source()).unwrap();
    let mut called = Callees::default();
    called.visit_file(&file);
    let registered: BTreeSet<String> = archc::layers::builtins()
        .map(|b| b.name.to_string())
        .collect();
    let missing: Vec<&String> = registered.difference(&called.0).collect();
    assert!(missing.is_empty(), "add to {FIXTURE}: {missing:?}");
}

#[test]
fn check_and_summary_count_what_pytorch_counts() {
    let checked = archc::compile(SourceKind::Arch, &source());
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let summary = archc::summary::summarize(&checked.networks[0]);
    // conv: 8 x 3 x (3 x 5), no bias = 360; bn: gamma and beta, 2 x 8 = 16; ln: weight and bias, 2 x 8 = 16;
    // same_conv: 8 x (8 / 2 groups) x 3 x 3
    // + 8 bias = 296; `half` keeps 8 / 2 = 4 channels, so fc: 4 x 16 + 16 = 80; head: 16 x 7, no bias = 112.
    // The activations, chunks, channel shuffle and stochastic depth have no parameters (torchvision's
    // StochasticDepth and nn.ChannelShuffle have none in their state_dict).
    assert_eq!(summary.params_total, 360 + 16 + 16 + 296 + 80 + 112);
    // MACs per sample: conv 360 weights x 20 x 10 outputs; same_conv 288 weights x 20 x 10; fc 64; head 112.
    // Activations count no MACs, as relu does.
    assert_eq!(summary.macs_inference, 360 * 200 + 288 * 200 + 64 + 112);
}

#[test]
fn the_graph_labels_each_layer_with_its_settings() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["graph", "--format", "dot", FIXTURE])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let dot = String::from_utf8(output.stdout).unwrap();
    for label in [
        "conv 3×5/1×2",
        "batch_norm",
        "layer_norm",
        "lrn 3",
        "conv 3×3/1 dilation 2 groups 2",
        "chunk [0] of 2",
        "chunk [1] of 2",
        "relu6",
        "silu",
        "gelu",
        "channel_shuffle 4",
        "max_pool 3×3/1 ceil",
        "hardswish",
        "stochastic_depth 0.2",
        "sigmoid",
        "hardsigmoid",
        "avg_pool 2×2/2",
        "adaptive_avg_pool → 4×2",
        "adaptive_avg_pool → 1×1",
        "identity",
        "flatten",
        "dropout 0.3",
        "linear 4→16",
        "linear 16→7",
        "softmax",
    ] {
        assert!(dot.contains(label), "no `{label}` in\n{dot}");
    }
}

#[test]
fn the_generated_model_runs_every_layer() {
    let model = random_model!(every_layer);
    let input = Tensor::randn(0f32, 1.0, (5, 3, 20, 20), &Device::Cpu).unwrap();

    let planned = model.forward(&input).unwrap();
    assert_eq!(planned.dims(), [5, 7]);
    // Softmax rows sum to one.
    for row in planned.sum(1).unwrap().to_vec1::<f32>().unwrap() {
        assert!((row - 1.0).abs() < 1e-5, "{row}");
    }
    // The same network with every optimisation off runs candle's ops one by one: the same values.
    let plain = model
        .clone()
        .with_optimizations(Optimizations::NONE)
        .forward(&input)
        .unwrap();
    let difference = compare::relative_error(&planned, &plain);
    assert!(difference < 1e-5, "plan and candle differ by {difference}");

    // Training runs the generated forward: dropout, stochastic depth and batch statistics, the same shape.
    let trained = model.forward_t(&input, true).unwrap();
    assert_eq!(trained.logits.dims(), [5, 7]);
}

/// Training a model built on a `VarMap`: the loss reaches the first convolution's weights through every layer,
/// the new activations, chunks, shuffle and stochastic depth included.
#[test]
fn gradients_flow_through_every_layer() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = every_layer::Model::new(vb, &every_layer::Config::default()).unwrap();
    let input = Tensor::randn(0f32, 1.0, (4, 3, 20, 20), &Device::Cpu).unwrap();
    let logits = model.forward_t(&input, true).unwrap().logits;
    let target = Tensor::zeros((4, 7), DType::F32, &Device::Cpu).unwrap();
    let loss = (logits - target).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let conv = &data["conv.weight"];
    let grad = grads.get(conv).expect("a gradient for conv.weight");
    let norm = grad
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        norm.is_finite() && norm > 0.0,
        "|grad conv.weight|^2 = {norm}"
    );
}

#[test]
fn a_config_that_contradicts_a_declared_size_is_an_error_naming_the_statement() {
    // `head = linear(classes, ...) : [7]`: the checker proved the default; another `classes` breaks the
    // declaration, which the generated constructor checks since the count depends on the `Config`.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let config = every_layer::Config {
        classes: 5,
        ..Default::default()
    };
    let message = every_layer::Model::new(vb, &config)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("`head` produces 5 channels, its declaration says 7"),
        "{message}"
    );
    let at = format!("every_layer.arch:{}:", line_of("head      = linear"));
    assert!(message.contains(&at), "{message}");
}

/// `half = chunk(parts, index = 1) : [4, 20, 10]` keeps 8 / parts channels: the generated code follows that
/// division, so 4 parts give 2 channels against the declared 4, and 3 parts do not divide 8 at all.
#[test]
fn a_config_changes_what_chunk_keeps() {
    let build = |parts| {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config = every_layer::Config {
            parts,
            ..Default::default()
        };
        every_layer::Model::new(vb, &config)
            .err()
            .unwrap()
            .to_string()
    };
    let line = line_of("half      = chunk");
    let message = build(4);
    assert!(
        message.contains(&format!(
            "every_layer.arch:{line}: `half` produces 2 channels, its declaration says 4"
        )),
        "{message}"
    );
    let message = build(3);
    assert!(
        message.contains(&format!(
            "every_layer.arch:{line}: chunk: 8 channels cannot be split into 3 chunks"
        )),
        "{message}"
    );
}

mod structures {
    archc_runtime::include_arch!("tests/fixtures/codegen/structures.arch");
}

/// Residual adds of two and three branches, an identity branch, a branch ending in a nested concat, block
/// defaults that refer to other parameters and size arithmetic, generated and run: the plan against candle's
/// ops one by one, a non-default `Config`, and training.
#[test]
fn the_generated_forward_covers_adds_nested_concats_and_parameter_arithmetic() {
    use structures::structures as net;
    let device = Device::Cpu;
    let model = random_model!(net);
    let input = Tensor::randn(0f32, 1.0, (3, 3, 12, 12), &device).unwrap();
    let planned = model.forward(&input).unwrap();
    let plain = model
        .clone()
        .with_optimizations(Optimizations::NONE)
        .forward(&input)
        .unwrap();
    assert_eq!(planned.dims(), [3, 5]);
    let difference = compare::relative_error(&planned, &plain);
    assert!(difference < 1e-4, "plan and candle differ by {difference}");
    assert_eq!(model.forward_t(&input, true).unwrap().logits.dims(), [3, 5]);

    // width 12: `stem` and `res` declare `[width, 12, 12]` and hold; `mix = split(width) : [16, 12, 12]` gives
    // (12 - 6) + (6 / 2 + (6 - 6 / 2)) + 12 = 6 + 6 + 12 = 24 channels, not the declared 16.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let config = net::Config {
        width: 12,
        classes: 3,
    };
    let message = net::Model::new(vb, &config).err().unwrap().to_string();
    assert!(
        message.contains("structures.arch:38: `mix` produces 24 channels, its declaration says 16"),
        "{message}"
    );
}
