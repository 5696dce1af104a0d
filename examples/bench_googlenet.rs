//! Times the generated torchvision GoogLeNet's inference, by hand (random weights need no file):
//!
//! ```text
//! cargo run --release --example bench_googlenet -- --batch 8 --optimizations all
//! ```
//!
//! Prints one JSON object: the median time per batch and per image over `--iters` timed runs (after
//! `--warmup` untimed ones) and the process's peak resident memory. `--weights` loads a torchvision
//! `state_dict` saved as safetensors; without it the weights are random. `--optimizations` picks the inference
//! optimisations (`all`, `none`, or a comma-separated list of
//! `conv,depthwise,fold,winograd,pool,siblings,micro,activations,elementwise,linear,memory,spin,bands`, each name
//! optionally after `-` to switch it off: `all,-winograd`), so each can be measured on its own.
//!
//! `bench/compare.py` times GoogLeNet through `runtime/examples/bench_zoo.rs` instead (network `googlenet`,
//! from the same `.arch`), beside PyTorch eager and ONNX Runtime; bench_zoo takes the same options, plus the
//! network's name, and needs `--weights`.

use std::str::FromStr;
use std::time::Instant;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};
use archc_runtime::nn::Optimizations;
use clap::Parser;

archc_runtime::include_arch!("architectures/googlenet_torchvision.arch");

#[derive(Parser)]
struct Args {
    /// Images per forward pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed forward passes.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed forward passes first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// A torchvision GoogLeNet state_dict as safetensors; random weights without it.
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    /// `all`, `none`, or a comma-separated list of
    /// `conv,depthwise,fold,winograd,pool,siblings,micro,activations,elementwise,linear,memory,spin,bands`, each name
    /// optionally after `-` to switch it off (`all,-winograd`).
    #[arg(long, default_value = "all")]
    optimizations: String,
}

/// Peak resident set size of this process in KiB, from `/proc/self/status` (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.batch == 0 || args.iters == 0 {
        return Err("--batch and --iters must be at least 1".into());
    }
    let optimizations = Optimizations::from_str(&args.optimizations)?;
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = match &args.weights {
        // SAFETY: the file is only read, and nothing else in this process writes it while mapped.
        Some(path) => unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &device)? },
        // Random weights: created in a VarMap, then detached, since a layer whose weights are `Var`s wants
        // their gradients and so runs as candle ops, even in inference.
        None => {
            let random = VarBuilder::from_varmap(&varmap, DType::F32, &device);
            googlenet::Model::new(random, &googlenet::Config::default())?;
            archc_runtime::load::detached(&varmap, &device)?
        }
    };
    let model =
        googlenet::Model::new(vb, &googlenet::Config::default())?.with_optimizations(optimizations);
    let input = Tensor::randn(0f32, 1.0, (args.batch, 3, 224, 224), &device)?;
    for _ in 0..args.warmup {
        model.forward(&input)?;
    }
    let mut times = Vec::with_capacity(args.iters);
    let mut checksum = 0f64;
    for _ in 0..args.iters {
        let start = Instant::now();
        let logits = model.forward(&input)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        checksum = logits.sum_all()?.to_scalar::<f32>()? as f64;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"engine\": \"archc\", \"optimizations\": \"{}\", \"batch\": {}, \"iters\": {}, \"ms_per_batch\": {median:.3}, \"ms_per_image\": {:.3}, \"min_ms_per_batch\": {:.3}, \"peak_rss_kib\": {}, \"checksum\": {checksum:.6}}}",
        args.optimizations,
        args.batch,
        args.iters,
        median / args.batch as f64,
        times[0],
        peak_rss_kib().map_or("null".to_string(), |k| k.to_string()),
    );
    Ok(())
}
