//! The Rust side of the GPU check (`scripts/gpu-check.sh`, `scripts/gpu_check.py`): runs the generated
//! torchvision GoogLeNet on a device, in a dtype, and writes what the Python side compares with PyTorch.
//!
//! ```text
//! gpu_check parity --weights W.safetensors --io IO.safetensors --out OUT.safetensors [--dtype f32|bf16|f16] [--device cuda|cpu]
//! gpu_check bench  --weights W.safetensors --batch 64 [--dtype ..] [--device ..] [--warmup 5] [--iters 20]
//! ```
//!
//! `parity` reads `input` and `labels` from IO and writes, all as `f32`: `eval_logits`; with every dropout at
//! p = 0, the training-mode `train_logits`, `train_aux1`, `train_aux2` and `loss` (cross-entropy of the logits
//! plus 0.3 times each auxiliary head's, as in the GoogLeNet paper and torchvision's reference training);
//! `grad.NAME` for every parameter after `loss.backward()`; `after_train.NAME` for every batch-norm statistic
//! after that one training pass. The weights are loaded into a `VarMap`, as for training: each tensor in the
//! dtype the model asks for (batch norm's in `f32`).
//!
//! `bench` prints one JSON line: inference images per second of the median of `iters` batches of random
//! input after `warmup` batches, the device synchronised before and after each batch.
//!
//! Build: `cargo build --release -p archc-runtime --features cuda --example gpu_check` (see README, CUDA).

use std::collections::HashMap;
use std::time::Instant;

use archc_runtime::candle_core::{DType, Device, Module, Result, Tensor};
use archc_runtime::candle_nn::{loss, VarBuilder, VarMap};

archc_runtime::include_arch!("../architectures/googlenet_torchvision.arch");

/// Parsed `--name value` options.
struct Options(HashMap<String, String>);

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut map = HashMap::new();
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| fail(format!("expected --option, found `{flag}`")))?;
            let value = rest
                .next()
                .ok_or_else(|| fail(format!("--{name} needs a value")))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Options(map))
    }

    fn get(&self, name: &str) -> Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| fail(format!("missing --{name}")))
    }

    fn number(&self, name: &str, default: usize) -> Result<usize> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| fail(format!("--{name}: not a number: {v}"))),
        }
    }

    fn dtype(&self) -> Result<DType> {
        match self.0.get("dtype").map_or("f32", String::as_str) {
            "f32" => Ok(DType::F32),
            "bf16" => Ok(DType::BF16),
            "f16" => Ok(DType::F16),
            other => Err(fail(format!("--dtype: f32, bf16 or f16, not {other}"))),
        }
    }

    fn device(&self) -> Result<Device> {
        match self.0.get("device").map_or("cuda", String::as_str) {
            "cuda" => Device::new_cuda(0),
            "cpu" => Ok(Device::Cpu),
            other => Err(fail(format!("--device: cuda or cpu, not {other}"))),
        }
    }
}

fn fail(message: String) -> archc_runtime::candle_core::Error {
    archc_runtime::candle_core::Error::Msg(message)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((command, rest)) if command == "parity" => {
            Options::parse(rest).and_then(|o| parity(&o))
        }
        Some((command, rest)) if command == "bench" => Options::parse(rest).and_then(|o| bench(&o)),
        _ => Err(fail(
            "usage: gpu_check parity|bench --weights FILE [options] (see the source's header)"
                .into(),
        )),
    };
    if let Err(e) = result {
        eprintln!("gpu_check: {e}");
        std::process::exit(1);
    }
}

/// Loads the model for training: a `VarMap` whose variables the model creates in the dtypes it wants, then
/// filled from the weight file (converted to each variable's dtype).
fn trainable_model(
    weights: &str,
    dtype: DType,
    device: &Device,
    config: &googlenet::Config,
) -> Result<(googlenet::Model, VarMap)> {
    let varmap = VarMap::new();
    let model = googlenet::Model::new(VarBuilder::from_varmap(&varmap, dtype, device), config)?;
    let file = archc_runtime::candle_core::safetensors::load(weights, device)?;
    for (name, var) in varmap.data().lock().expect("the VarMap's lock").iter() {
        let value = file
            .get(name)
            .ok_or_else(|| fail(format!("{weights} has no tensor `{name}`")))?;
        var.set(&value.to_dtype(var.dtype())?)?;
    }
    Ok((model, varmap))
}

fn parity(options: &Options) -> Result<()> {
    let (dtype, device) = (options.dtype()?, options.device()?);
    let weights = options.get("weights")?;
    // Read on the CPU: the labels are int64, converted to u32 there.
    let io = archc_runtime::candle_core::safetensors::load(options.get("io")?, &Device::Cpu)?;
    let field = |name: &str| {
        io.get(name)
            .ok_or_else(|| fail(format!("the io file has no `{name}`")))
    };
    let input = field("input")?.to_dtype(dtype)?.to_device(&device)?;
    let labels = field("labels")?.to_dtype(DType::U32)?.to_device(&device)?;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let as_f32 = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);

    let started = Instant::now();
    let (model, _) = trainable_model(weights, dtype, &device, &Default::default())?;
    out.insert("eval_logits".into(), as_f32(&model.forward(&input)?)?);
    let eval_s = started.elapsed().as_secs_f64();

    let config = googlenet::Config {
        dropout: 0.0,
        dropout_aux: 0.0,
        ..Default::default()
    };
    let (model, varmap) = trainable_model(weights, dtype, &device, &config)?;
    let outputs = model.forward_t(&input, true)?;
    let aux1 = outputs
        .aux1
        .ok_or_else(|| fail("no aux1 in training".into()))?;
    let aux2 = outputs
        .aux2
        .ok_or_else(|| fail("no aux2 in training".into()))?;
    // The loss in f32, as PyTorch's autocast computes cross-entropy.
    let ce = |logits: &Tensor| loss::cross_entropy(&logits.to_dtype(DType::F32)?, &labels);
    let total = (ce(&outputs.logits)? + ((ce(&aux1)? + ce(&aux2)?)? * 0.3)?)?;
    let grads = total.backward()?;
    out.insert("train_logits".into(), as_f32(&outputs.logits)?);
    out.insert("train_aux1".into(), as_f32(&aux1)?);
    out.insert("train_aux2".into(), as_f32(&aux2)?);
    out.insert("loss".into(), as_f32(&total.reshape(1)?)?);
    for (name, var) in varmap.data().lock().expect("the VarMap's lock").iter() {
        if name.ends_with(".running_mean") || name.ends_with(".running_var") {
            out.insert(format!("after_train.{name}"), as_f32(var.as_tensor())?);
        } else if let Some(grad) = grads.get(var.as_tensor()) {
            out.insert(format!("grad.{name}"), as_f32(grad)?);
        }
    }
    device.synchronize()?;
    let total_s = started.elapsed().as_secs_f64();
    archc_runtime::candle_core::safetensors::save(&out, options.get("out")?)?;
    println!(
        "{{\"mode\": \"parity\", \"dtype\": \"{dtype:?}\", \"tensors\": {}, \"first_eval_s\": {eval_s:.3}, \"total_s\": {total_s:.3}}}",
        out.len()
    );
    Ok(())
}

fn bench(options: &Options) -> Result<()> {
    let (dtype, device) = (options.dtype()?, options.device()?);
    let batch = options.number("batch", 64)?;
    let warmup = options.number("warmup", 5)?;
    let iters = options.number("iters", 20)?.max(1);
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[options.get("weights")?], dtype, &device)? };
    let model = googlenet::Model::new(vb, &Default::default())?;
    let input = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &device)?.to_dtype(dtype)?;
    let run = || model.forward(&input);
    for _ in 0..warmup {
        run()?;
    }
    device.synchronize()?;
    // The median batch, each timed from a synchronised device to a synchronised device (as the Python side
    // times PyTorch).
    let mut seconds = Vec::with_capacity(iters);
    for _ in 0..iters {
        let started = Instant::now();
        run()?;
        device.synchronize()?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = if iters % 2 == 1 {
        seconds[iters / 2]
    } else {
        (seconds[iters / 2 - 1] + seconds[iters / 2]) / 2.0
    };
    println!(
        "{{\"mode\": \"bench\", \"impl\": \"archc\", \"dtype\": \"{dtype:?}\", \"batch\": {batch}, \"iters\": {iters}, \"ms_per_batch\": {:.3}, \"images_per_s\": {:.1}}}",
        1e3 * median,
        batch as f64 / median
    );
    Ok(())
}
