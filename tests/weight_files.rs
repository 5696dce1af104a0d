//! The weight-file boundary of a generated model ([`archc_runtime::Weights`]): a path that does not exist or
//! is a directory, a truncated or corrupt safetensors file, an integer tensor where a float weight is expected,
//! and tensors the model does not use (a torchvision checkpoint's `num_batches_tracked` counters and the aux
//! heads of a model built without them). Each error or warning names the file or the tensor, and what was
//! expected; a missing tensor also names the closest tensor the file holds instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::weights::{is_batch_norm_counter, Weights};

archc_runtime::include_arch!("tests/parity/torchvision_tiny.arch");
archc_runtime::include_arch!("tests/fixtures/weights/torchvision_tiny_inference.arch");

/// The checkpoint torchvision's own classes exported (tests/parity/make_fixtures.py): 364 tensors, among them
/// int64 `num_batches_tracked` counters and the two aux heads.
fn reference_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/torchvision_tiny.weights.safetensors")
}

fn reference_tensors() -> HashMap<String, Tensor> {
    archc_runtime::candle_core::safetensors::load(reference_path(), &Device::Cpu).unwrap()
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("archc-weights-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn save(&self, name: &str, tensors: &HashMap<String, Tensor>) -> PathBuf {
        let path = self.0.join(name);
        archc_runtime::candle_core::safetensors::save(tensors, &path).unwrap();
        path
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_error(path: &Path) -> String {
    match Weights::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

fn build(weights: &Weights) -> Result<googlenet_tiny::Model, String> {
    let vb = weights.var_builder(DType::F32, &Device::Cpu);
    googlenet_tiny::Model::new(vb, &googlenet_tiny::Config::default()).map_err(|e| e.to_string())
}

#[test]
fn a_path_that_does_not_exist_is_named() {
    let scratch = Scratch::new("missing");
    let path = scratch.0.join("googlenet.safetensors");
    let message = open_error(&path);
    assert!(
        message.starts_with(&format!("{}: cannot read the weight file", path.display())),
        "{message}"
    );
}

#[test]
fn a_directory_is_named() {
    let scratch = Scratch::new("directory");
    let message = open_error(&scratch.0);
    assert_eq!(
        message,
        format!(
            "{}: is a directory, not a safetensors weight file",
            scratch.0.display()
        )
    );
}

#[test]
fn a_truncated_file_says_how_much_tensor_data_is_missing() {
    let scratch = Scratch::new("truncated");
    let bytes = std::fs::read(reference_path()).unwrap();
    // The layout: an 8-byte little-endian header length, the JSON header, then all the tensor data.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_len = bytes.len() - 8 - header_len;

    // Cut in the tensor data.
    let path = scratch.write("cut.safetensors", &bytes[..bytes.len() - 1000]);
    let message = open_error(&path);
    assert!(
        message.starts_with(&format!("{}: truncated", path.display())),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "the header describes {data_len} bytes of tensor data, the file holds {} (1000 bytes missing",
            data_len - 1000
        )),
        "{message}"
    );

    // Cut in the header.
    let path = scratch.write("cut_header.safetensors", &bytes[..100]);
    let message = open_error(&path);
    assert!(
        message.contains(&format!(
            "{}: truncated or not a safetensors file: the header length field says {header_len} bytes, only 92 \
             follow it",
            path.display()
        )),
        "{message}"
    );

    // Cut in the length field itself.
    let path = scratch.write("cut_length.safetensors", &bytes[..5]);
    let message = open_error(&path);
    assert_eq!(
        message,
        format!(
            "{}: not a safetensors file: 5 bytes, fewer than the 8-byte header length that starts one",
            path.display()
        )
    );
}

#[test]
fn a_corrupt_file_is_named_with_what_is_wrong() {
    let scratch = Scratch::new("corrupt");
    // A header that is not JSON.
    let mut bytes = 10u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"not json!!");
    let path = scratch.write("garbage.safetensors", &bytes);
    let message = open_error(&path);
    assert!(
        message.starts_with(&format!(
            "{}: not a safetensors file: its 10-byte header is not JSON",
            path.display()
        )),
        "{message}"
    );
    // Some other file given by mistake: a PNG's first 8 bytes read as a length are absurd.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    let path = scratch.write("image.safetensors", png);
    let message = open_error(&path);
    let claimed = u64::from_le_bytes(png[..8].try_into().unwrap());
    assert!(
        message.contains(&format!(
            "{}: truncated or not a safetensors file: the header length field says {claimed} bytes, only {} \
             follow it",
            path.display(),
            png.len() - 8
        )),
        "{message}"
    );
    // Valid framing, but a tensor whose byte range does not match its shape: safetensors' reason, with the file.
    let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    let path = scratch.write("inconsistent.safetensors", &bytes);
    assert_invalid(&path, &open_error(&path));
}

/// That `message` says `path` is not a valid safetensors file, with safetensors' reason after it.
fn assert_invalid(path: &Path, message: &str) {
    assert!(
        message.starts_with(&format!(
            "{}: not a valid safetensors file: ",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn an_integer_tensor_where_a_weight_is_expected_names_tensor_dtype_and_statement() {
    let scratch = Scratch::new("dtype");
    for (dtype, shown) in [(DType::I64, "I64"), (DType::U8, "U8")] {
        let mut tensors = reference_tensors();
        let weight = &tensors["conv1.conv.weight"];
        let integers = weight.to_dtype(dtype).unwrap();
        tensors.insert("conv1.conv.weight".to_string(), integers);
        let path = scratch.save(&format!("{shown}.safetensors"), &tensors);
        let weights = Weights::open(&path).unwrap();
        let Err(message) = build(&weights) else {
            panic!("an integer weight is an error");
        };
        assert!(
            message.contains(&format!(
                "`conv1.conv.weight` in {} has dtype {shown}, expected a floating-point weight (F16, BF16, F32 or \
                 F64; converted to F32)",
                path.display()
            )),
            "{message}"
        );
        // The conv2d statement inside `basic_conv`, line 6 of the .arch file.
        assert!(
            message.contains("tests/parity/torchvision_tiny.arch:6:"),
            "{message}"
        );
    }
}

#[test]
fn missing_and_mis_shaped_tensors_through_weights_name_the_tensor() {
    let scratch = Scratch::new("shapes");
    let mut tensors = reference_tensors();
    tensors.remove("inception3a.branch2.0.conv.weight");
    let path = scratch.save("missing.safetensors", &tensors);
    let message = build(&Weights::open(&path).unwrap()).err().unwrap();
    assert!(
        message.contains(
            "tests/parity/torchvision_tiny.arch:6: cannot load `inception3a.branch2.0.conv.weight` for conv2d:"
        ),
        "{message}"
    );
    // Nothing is offered instead: the file has `inception3a.branch2.0` (its batch norm), so the
    // `branch3.0.conv.weight` and `branch2.1.conv.weight` one edit away are siblings the model reads itself.
    assert!(message.ends_with("but the tensor is missing"), "{message}");

    let mut tensors = reference_tensors();
    // inception3a's 3x3 branch reads 12 channels into 16: [16, 12, 3, 3]. A 5x5 kernel instead.
    tensors.insert(
        "inception3a.branch2.1.conv.weight".to_string(),
        Tensor::zeros((16, 12, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let path = scratch.save("misshaped.safetensors", &tensors);
    let message = build(&Weights::open(&path).unwrap()).err().unwrap();
    assert!(
        message.contains("`inception3a.branch2.1.conv.weight`"),
        "{message}"
    );
    assert!(
        message.ends_with("expected shape [16, 12, 3, 3], found [16, 12, 5, 5]"),
        "{message}"
    );
}

/// The reference tensors with `renames` (old name, new name) applied, saved as `file` in `scratch`.
fn renamed(scratch: &Scratch, file: &str, renames: &[(&str, &str)]) -> PathBuf {
    let mut tensors = reference_tensors();
    for (old, new) in renames {
        let tensor = tensors.remove(*old).unwrap_or_else(|| panic!("no {old}"));
        tensors.insert(new.to_string(), tensor);
    }
    scratch.save(file, &tensors)
}

#[test]
fn a_missing_tensor_names_the_tensor_the_file_nests_differently() {
    let scratch = Scratch::new("nested");
    // The checkpoint nests the convolution one module deeper than the model (a `main` wrapper).
    let dims = reference_tensors()["inception3a.branch2.0.conv.weight"]
        .dims()
        .to_vec();
    let path = renamed(
        &scratch,
        "nested.safetensors",
        &[(
            "inception3a.branch2.0.conv.weight",
            "inception3a.branch2.0.main.conv.weight",
        )],
    );
    let weights = Weights::open(&path).unwrap();
    let message = build(&weights).err().unwrap();
    assert!(
        message.contains("cannot load `inception3a.branch2.0.conv.weight` for conv2d: "),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "expected shape {dims:?}, but the tensor is missing; closest in the file: \
             `inception3a.branch2.0.main.conv.weight` {dims:?}"
        )),
        "{message}"
    );
    // The warning lists the unused tensor with the missing name it stands for.
    let warning = weights.unused_warning(is_batch_norm_counter).unwrap();
    assert!(
        warning.contains(
            "\n    inception3a.branch2.0.main.conv.weight: closest to the missing \
             `inception3a.branch2.0.conv.weight`"
        ),
        "{warning}"
    );
}

#[test]
fn a_missing_tensor_names_a_renamed_statement_of_the_same_shape() {
    let scratch = Scratch::new("renamed");
    let dims = reference_tensors()["fc.weight"].dims().to_vec();
    let path = renamed(
        &scratch,
        "renamed.safetensors",
        &[
            ("fc.weight", "classifier.weight"),
            ("fc.bias", "classifier.bias"),
        ],
    );
    let weights = Weights::open(&path).unwrap();
    let message = build(&weights).err().unwrap();
    assert!(
        message.ends_with(&format!(
            "but the tensor is missing; closest in the file: `classifier.weight` {dims:?}"
        )),
        "{message}"
    );
    let warning = weights.unused_warning(is_batch_norm_counter).unwrap();
    assert!(
        warning.ends_with("\n    classifier.weight: closest to the missing `fc.weight`"),
        "{warning}"
    );
    // `fc.bias` was never asked for (the build stopped at the weight): `classifier.bias` is listed plainly.
    assert!(warning.contains("\n    classifier.bias\n"), "{warning}");
}

#[test]
fn the_torchvision_checkpoint_leaves_only_batch_norm_counters_unused() {
    let weights = Weights::open(reference_path()).unwrap();
    let model = build(&weights).unwrap();
    // torchvision's BasicConv2d has one batch norm: 3 in the stem, 6 per Inception module (9 of them), 1 per
    // aux head (2): 3 + 54 + 2 = 59 counters, all int64, none read by the model.
    let unused = weights.unused();
    assert_eq!(unused.len(), 59, "{unused:?}");
    assert!(unused.iter().all(|name| is_batch_norm_counter(name)));
    assert!(unused.contains(&"inception5b.branch4.1.bn.num_batches_tracked".to_string()));
    assert_eq!(weights.unused_warning(is_batch_norm_counter), None);
    // Unfiltered, they are listed.
    let warning = weights.unused_warning(|_| false).unwrap();
    assert!(
        warning.starts_with(&format!(
            "warning: 59 tensors are not used by the model in {}:\n",
            reference_path().display()
        )),
        "{warning}"
    );
    assert!(
        warning.contains("\n    conv1.bn.num_batches_tracked\n"),
        "{warning}"
    );

    // The model loaded through `Weights` computes what the same tensors loaded by candle compute.
    let vb = archc_runtime::candle_nn::VarBuilder::from_tensors(
        reference_tensors(),
        DType::F32,
        &Device::Cpu,
    );
    let direct = googlenet_tiny::Model::new(vb, &googlenet_tiny::Config::default()).unwrap();
    let input = Tensor::randn(0f32, 1.0, (1, 3, 96, 96), &Device::Cpu).unwrap();
    let difference = (model.forward(&input).unwrap() - direct.forward(&input).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(difference, 0.0);
}

#[test]
fn an_inference_only_model_warns_about_the_aux_heads_it_does_not_load() {
    let weights = Weights::open(reference_path()).unwrap();
    let vb = weights.var_builder(DType::F32, &Device::Cpu);
    googlenet_tiny_inference::Model::new(vb, &googlenet_tiny_inference::Config::default()).unwrap();
    // Each torchvision InceptionAux: conv (BasicConv2d: a convolution weight and 4 batch-norm tensors), fc1
    // and fc2 (weight and bias each) = 9 tensors, plus its batch-norm counter.
    assert_eq!(weights.unused().len(), 59 + 2 * 9);
    let aux = "{conv.bn.bias, conv.bn.running_mean, conv.bn.running_var, conv.bn.weight, conv.conv.weight, \
               fc1.bias, fc1.weight, fc2.bias, fc2.weight}";
    assert_eq!(
        weights.unused_warning(is_batch_norm_counter).unwrap(),
        format!(
            "warning: 18 tensors are not used by the model in {} (59 others skipped by the filter):\n    \
             aux1.{aux}\n    aux2.{aux}",
            reference_path().display()
        )
    );
}

#[test]
fn extra_tensors_are_listed_even_when_the_model_builds() {
    let scratch = Scratch::new("extra");
    let mut tensors = reference_tensors();
    let fc_weight = tensors["fc.weight"].clone();
    // A misspelt statement name, as a renamed layer in the .arch file would leave behind.
    tensors.insert("fc_old.weight".to_string(), fc_weight);
    tensors.insert(
        "temperature".to_string(),
        Tensor::new(&[1.5f32], &Device::Cpu).unwrap(),
    );
    let path = scratch.save("extra.safetensors", &tensors);
    let weights = Weights::open(&path).unwrap();
    build(&weights).unwrap();
    assert_eq!(
        weights.unused_warning(is_batch_norm_counter).unwrap(),
        format!(
            "warning: 2 tensors are not used by the model in {} (59 others skipped by the filter):\n    \
             fc_old.weight\n    temperature",
            path.display()
        )
    );
    assert_eq!(weights.names().count(), 364 + 2);
}

#[test]
fn an_opened_file_gives_the_tensors_candle_reads_from_it() {
    // `Weights::open` reads each tensor from the file when it is asked for; `from_bytes` works from the whole
    // contents in memory. Both give what candle's own loader gives, value for value, in every float dtype.
    let reference = reference_tensors();
    let bytes = std::fs::read(reference_path()).unwrap();
    let opened = Weights::open(reference_path()).unwrap();
    let in_memory = Weights::from_bytes(reference_path(), bytes).unwrap();
    let mut compared = 0;
    for (name, want) in &reference {
        if !want.dtype().is_float() {
            continue;
        }
        for weights in [&opened, &in_memory] {
            for dtype in [DType::F32, DType::F64] {
                let got = weights
                    .var_builder(dtype, &Device::Cpu)
                    .get(want.shape(), name)
                    .unwrap();
                let want = want.to_dtype(dtype).unwrap().flatten_all().unwrap();
                let got = got.flatten_all().unwrap();
                assert_eq!(
                    got.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                    want.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                    "`{name}` as {dtype:?}"
                );
            }
        }
        compared += 1;
    }
    assert!(compared > 300, "only {compared} tensors compared");
}

#[test]
fn bytes_after_the_tensor_data_are_an_error() {
    let scratch = Scratch::new("trailing");
    let mut bytes = std::fs::read(reference_path()).unwrap();
    bytes.extend_from_slice(b"abc");
    let path = scratch.write("trailing.safetensors", &bytes);
    assert_eq!(
        open_error(&path),
        format!(
            "{}: not a valid safetensors file: 3 bytes follow the tensors' data",
            path.display()
        )
    );
    // The contents in memory are held to the same rule (safetensors' own message).
    let message = match Weights::from_bytes(&path, bytes) {
        Ok(_) => panic!("trailing bytes accepted"),
        Err(e) => e.to_string(),
    };
    assert_invalid(&path, &message);
}

#[test]
fn a_file_cut_short_after_it_was_opened_names_the_tensor_that_cannot_be_read() {
    // The tensors are read when the model asks for them: a file truncated in between (a download being
    // replaced) is an error naming the file and the tensor, not a panic or garbage.
    let scratch = Scratch::new("shrunk");
    let path = scratch.write(
        "shrunk.safetensors",
        &std::fs::read(reference_path()).unwrap(),
    );
    let weights = Weights::open(&path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let Err(message) = build(&weights) else {
        panic!("a model built from a truncated file");
    };
    assert!(
        message.contains(&format!("{}: cannot read `", path.display()))
            && message.contains("` from the weight file: "),
        "{message}"
    );
}

#[test]
fn a_header_longer_than_safetensors_allows_is_refused_before_it_is_read() {
    // A file whose length field claims a 200 MB header and that is long enough to hold it (sparse, so the test
    // writes almost nothing): refused from the field, without reading 200 MB into memory.
    let scratch = Scratch::new("huge_header");
    let path = scratch.0.join("huge.safetensors");
    let claimed: u64 = 200_000_000;
    let mut file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut file, &claimed.to_le_bytes()).unwrap();
    file.set_len(8 + claimed + 16).unwrap();
    drop(file);
    assert_eq!(
        open_error(&path),
        format!(
            "{}: not a safetensors file: the header length field says {claimed} bytes, more than the \
             100000000 safetensors allows",
            path.display()
        )
    );
}
