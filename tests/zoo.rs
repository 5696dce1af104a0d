//! The torchvision zoo (issue 12): each network of `architectures/` loads the `state_dict` of torchvision's own
//! classes unrenamed and reproduces PyTorch's outputs.
//!
//! The references come from `tests/zoo/make_fixtures.py` (see tests/zoo/README.md): the reduced-width models
//! are built from torchvision's classes, so their tensor names are torchvision's; the `.arch` files take the
//! same reduction as a `Config` (`tests/zoo/configs.json`). Batch-norm statistics are measured on data, and
//! each test asserts that the two images of the fixture give clearly different logits, so a wrong layer
//! cannot pass by the logits not depending on the input. Tolerance: max |a − b| ≤ 1e-4 · max(1, max |b|).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use archc_runtime::candle_core::{DType, Device, Tensor};
use archc_runtime::weights::is_batch_norm_counter;
use archc_runtime::Weights;

archc_runtime::include_arch!("architectures/alexnet.arch");
archc_runtime::include_arch!("architectures/vgg16_bn.arch");
archc_runtime::include_arch!("architectures/squeezenet1_1.arch");
archc_runtime::include_arch!("architectures/resnet18.arch");
archc_runtime::include_arch!("architectures/resnet50.arch");
archc_runtime::include_arch!("architectures/densenet121.arch");
archc_runtime::include_arch!("architectures/inception_v3.arch");
archc_runtime::include_arch!("architectures/mobilenet_v2.arch");
archc_runtime::include_arch!("architectures/shufflenet_v2_x1_0.arch");
archc_runtime::include_arch!("architectures/efficientnet_b0.arch");

#[path = "support/compare.rs"]
mod compare;

use compare::assert_close;

/// The committed reduced-width fixtures.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zoo")
}

/// The reference file, with the input (stored as f16 to keep the fixture small; the references were computed
/// from exactly these values) converted to f32.
fn references(dir: &Path, network: &str) -> HashMap<String, Tensor> {
    let path = dir.join(format!("{network}.io.safetensors"));
    let mut io = archc_runtime::candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
    let input = io["input"].to_dtype(DType::F32).unwrap();
    io.insert("input".to_string(), input);
    io
}

fn weights(dir: &Path, network: &str) -> Weights {
    Weights::open(dir.join(format!("{network}.weights.safetensors"))).unwrap()
}

/// The two images of a fixture give logits that differ by more than 1e-2 relative: a test in which the logits
/// did not depend on the input could not tell a wrong layer from a right one.
#[track_caller]
fn assert_input_matters(what: &str, logits: &Tensor) {
    let first = logits.get(0).unwrap();
    let second = logits.get(1).unwrap();
    let difference = compare::relative_error(&first, &second);
    assert!(
        difference > 1e-2,
        "{what}: the two images' logits differ by only {difference:e}"
    );
}

/// Every tensor of the checkpoint is one the model asked for, except batch norm's `num_batches_tracked`.
#[track_caller]
fn assert_all_used(what: &str, weights: &Weights) {
    let unused: Vec<String> = weights
        .unused()
        .into_iter()
        .filter(|name| !is_batch_norm_counter(name))
        .collect();
    assert!(unused.is_empty(), "{what}: unused tensors {unused:?}");
}

/// Builds `$network`'s model with the reduced `Config` (`$config`, fields over the defaults), checks its
/// inference logits, then builds it with `$train` over that and checks a training-mode pass. Evaluates to
/// the model after the training pass and its outputs. With `in $dir` first, the fixtures are read there.
macro_rules! assert_matches_torchvision {
    (in $dir:expr, $network:ident, { $($field:ident: $value:expr),* $(,)? }, train { $($tfield:ident: $tvalue:expr),* $(,)? }) => {{
        use $network as generated;
        let dir: &Path = $dir;
        let name = stringify!($network);
        let io = references(dir, name);
        let weights = weights(dir, name);
        let vb = weights.var_builder(DType::F32, &Device::Cpu);
        #[allow(clippy::needless_update)] // a network whose every parameter the test sets
        let config = generated::Config { $($field: $value,)* ..Default::default() };
        let model = generated::Model::new(vb.clone(), &config).unwrap();
        assert_all_used(name, &weights);
        let eval = model.forward_t(&io["input"], false).unwrap();
        assert_close(&format!("{name} eval logits"), &eval.logits, &io["eval_logits"]);
        assert_input_matters(name, &io["eval_logits"]);
        assert_input_matters(name, &eval.logits);
        // Each image alone too: at batch 1 the CPU kernels split an image between the threads and write a
        // concatenation's branches straight into their slices.
        for n in 0..io["input"].dim(0).unwrap() {
            let image = io["input"].narrow(0, n, 1).unwrap();
            let alone = model.forward_t(&image, false).unwrap();
            let want = io["eval_logits"].narrow(0, n, 1).unwrap();
            assert_close(&format!("{name} eval logits, image {n} alone"), &alone.logits, &want);
        }
        let train_config = generated::Config { $($tfield: $tvalue,)* ..config };
        let model = generated::Model::new(vb, &train_config).unwrap();
        let train = model.forward_t(&io["input"], true).unwrap();
        assert_close(&format!("{name} train logits"), &train.logits, &io["train_logits"]);
        (model, train, io)
    }};
    ($network:ident, $config:tt, train $train:tt) => {
        assert_matches_torchvision!(in &fixtures(), $network, $config, train $train)
    };
}

/// Inception-v3's training-only auxiliary head matches torchvision's `AuxLogits`.
fn assert_aux_logits(aux_logits: &Option<Tensor>, io: &HashMap<String, Tensor>) {
    let aux_logits = aux_logits.as_ref().expect("AuxLogits runs in training");
    assert_close(
        "inception_v3 train aux logits",
        aux_logits,
        &io["train_aux_logits"],
    );
}

#[test]
fn alexnet_matches_torchvision() {
    assert_matches_torchvision!(alexnet, { num_classes: 10, width: 8, hidden: 16 }, train { dropout: 0.0 });
}

#[test]
fn vgg16_bn_matches_torchvision() {
    assert_matches_torchvision!(vgg16_bn, { num_classes: 10, width: 4, hidden: 16 }, train { dropout: 0.0 });
}

#[test]
fn squeezenet1_1_matches_torchvision() {
    assert_matches_torchvision!(squeezenet1_1, { num_classes: 10, width: 4 }, train { dropout: 0.0 });
}

#[test]
fn resnet18_matches_torchvision() {
    let (model, _, io) =
        assert_matches_torchvision!(resnet18, { num_classes: 10, width: 4 }, train {});
    // Batch norm updated its running statistics as PyTorch did (momentum 0.1, unbiased variance).
    assert_close(
        "bn1.running_mean after one training pass",
        model.bn1.running_mean(),
        &io["after_train.bn1.running_mean"],
    );
    assert_close(
        "bn1.running_var after one training pass",
        model.bn1.running_var(),
        &io["after_train.bn1.running_var"],
    );
}

#[test]
fn resnet50_matches_torchvision() {
    assert_matches_torchvision!(resnet50, { num_classes: 10, width: 4 }, train {});
}

#[test]
fn densenet121_matches_torchvision() {
    assert_matches_torchvision!(densenet121, { num_classes: 10, growth: 4, init: 8, bn_size: 2 }, train {});
}

#[test]
fn inception_v3_matches_torchvision() {
    let (model, train, io) = assert_matches_torchvision!(inception_v3, { num_classes: 10, div: 16 }, train { dropout: 0.0 });
    assert_aux_logits(&train.aux_logits, &io);
    // `Conv2d_1a_3x3` is the field `conv2d_1a_3x3`; its weights keep torchvision's name.
    assert_close(
        "Conv2d_1a_3x3.bn.running_var after one training pass",
        model.conv2d_1a_3x3.bn.running_var(),
        &io["after_train.Conv2d_1a_3x3.bn.running_var"],
    );
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    assert_matches_torchvision!(
        mobilenet_v2,
        { num_classes: 10, c0: 8, c1: 4, c2: 8, c3: 8, c4: 12, c5: 16, c6: 24, c7: 32, last: 64 },
        train { dropout: 0.0 }
    );
}

#[test]
fn shufflenet_v2_x1_0_matches_torchvision() {
    assert_matches_torchvision!(
        shufflenet_v2_x1_0,
        { num_classes: 10, c1: 8, c2: 16, c3: 32, c4: 64, c5: 128 },
        train {}
    );
}

#[test]
fn efficientnet_b0_matches_torchvision() {
    let (model, _, io) = assert_matches_torchvision!(
        efficientnet_b0,
        { num_classes: 10, c0: 16, c1: 8, c2: 8, c3: 16, c4: 16, c5: 24, c6: 24, c7: 32 },
        train { dropout: 0.0, stochastic_depth_prob: 0.0 }
    );
    // `features.0.1`, PyTorch's index in `Conv2dNormActivation`, is the field `layer1` of `features_0`.
    assert_close(
        "features.0.1.running_mean after one training pass",
        model.features_0.layer1.running_mean(),
        &io["after_train.features.0.1.running_mean"],
    );
}

/// `archc summary`'s parameter counts for the full networks are torchvision's (issue 12's list, from
/// `sum(p.numel() for p in torchvision.models.<name>().parameters())`).
#[test]
fn summary_counts_are_torchvision_s() {
    let expected: [(&str, u64, u64); 10] = [
        ("alexnet", 61_100_840, 61_100_840),
        ("vgg16_bn", 138_365_992, 138_365_992),
        ("squeezenet1_1", 1_235_496, 1_235_496),
        ("resnet18", 11_689_512, 11_689_512),
        ("resnet50", 25_557_032, 25_557_032),
        ("densenet121", 7_978_856, 7_978_856),
        // With the auxiliary head (training only) and without.
        ("inception_v3", 27_161_264, 23_834_568),
        ("mobilenet_v2", 3_504_872, 3_504_872),
        ("shufflenet_v2_x1_0", 2_278_604, 2_278_604),
        ("efficientnet_b0", 5_288_548, 5_288_548),
    ];
    for (network, total, inference) in expected {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("architectures/{network}.arch"));
        let source = std::fs::read_to_string(&path).unwrap();
        let checked = archc::compile(archc::SourceKind::Arch, &source);
        assert!(
            !checked.has_errors(),
            "{network}: {:?}",
            checked.diagnostics
        );
        let summary = archc::summary::summarize(&checked.networks[0]);
        assert_eq!(
            (summary.params_total, summary.params_inference),
            (total, inference),
            "{network}"
        );
    }
}

/// The full-size networks with torchvision's own `state_dict` (random weights, 1000 classes, default Config),
/// against `make_fixtures.py --full` (1.1 GB, not committed; tests/zoo/README.md):
/// `ARCHC_PARITY_DIR=/tmp/archc-zoo-full cargo test --release --test zoo -- --ignored`.
#[test]
#[ignore = "needs ARCHC_PARITY_DIR with the full-size zoo fixtures (tests/zoo/README.md)"]
fn full_size_networks_match_torchvision() {
    let dir = PathBuf::from(std::env::var("ARCHC_PARITY_DIR").expect("set ARCHC_PARITY_DIR"));
    let dir = dir.as_path();
    assert_matches_torchvision!(in dir, alexnet, {}, train { dropout: 0.0 });
    assert_matches_torchvision!(in dir, vgg16_bn, {}, train { dropout: 0.0 });
    assert_matches_torchvision!(in dir, squeezenet1_1, {}, train { dropout: 0.0 });
    assert_matches_torchvision!(in dir, resnet18, {}, train {});
    assert_matches_torchvision!(in dir, resnet50, {}, train {});
    assert_matches_torchvision!(in dir, densenet121, {}, train {});
    let (_, train, io) =
        assert_matches_torchvision!(in dir, inception_v3, {}, train { dropout: 0.0 });
    assert_aux_logits(&train.aux_logits, &io);
    assert_matches_torchvision!(in dir, mobilenet_v2, {}, train { dropout: 0.0 });
    assert_matches_torchvision!(in dir, shufflenet_v2_x1_0, {}, train {});
    assert_matches_torchvision!(in dir, efficientnet_b0, {}, train { dropout: 0.0, stochastic_depth_prob: 0.0 });
}
