//! Times the inference of one of the torchvision networks of `architectures/` (the ten of issue 12, and
//! GoogLeNet), built from its `.arch` file with `include_arch!`, for `bench/zoo.py` (which runs it beside
//! PyTorch eager), `bench/compare.py` (beside PyTorch eager and ONNX Runtime) or by hand:
//!
//! ```sh
//! cargo run --release -p archc-runtime --example bench_zoo -- resnet50 --weights resnet50.safetensors
//! ```
//!
//! The first argument names the network (`alexnet`, `vgg16_bn`, `squeezenet1_1`, `resnet18`, `resnet50`,
//! `densenet121`, `inception_v3`, `mobilenet_v2`, `shufflenet_v2_x1_0`, `efficientnet_b0`, and `googlenet`,
//! torchvision's GoogLeNet from `googlenet_torchvision.arch`, auxiliary heads included). `--weights`
//! loads a torchvision `state_dict` saved as safetensors, unrenamed (random weights are not offered: a model
//! whose weights are candle `Var`s runs as candle ops). `--input` reads the tensor `input` of a safetensors
//! file (otherwise a random `[--batch, 3, H, W]` at the network's declared size); `--logits` writes the
//! first pass's output there as `logits`, so a caller can check it against PyTorch's. `--optimizations`
//! picks the plan's optimisations (`all`, `none`, or a comma-separated list of
//! `conv,depthwise,fold,winograd,pool,siblings,micro,activations,elementwise,linear,memory,spin,bands`, each name optionally
//! after `-` to switch it off: `all,-winograd`), so each can be measured on its own.
//! The thread count is `RAYON_NUM_THREADS`, which both rayon's pool and candle's matrix products follow.
//!
//! `--profile` then runs `--iters` more passes timing each step of the plan ([`archc_runtime::profile`]) and
//! prints them to stderr: time per pass, share, multiply-adds per second and what the step is.
//!
//! Prints one JSON object: the median time per batch and per image over `--iters` timed passes (after
//! `--warmup` untimed ones, at least one: the pass whose logits `--logits` writes), the fastest pass, and the
//! process's peak resident memory.
//!
//! It lives in the runtime crate, whose examples need no dev-dependency, so a release build compiles the
//! runtime, the proc macro and the compiler core and nothing else; the `.arch` paths are relative to
//! `runtime/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::nn::Optimizations;
use archc_runtime::Weights;

archc_runtime::include_arch!("../architectures/alexnet.arch");
archc_runtime::include_arch!("../architectures/vgg16_bn.arch");
archc_runtime::include_arch!("../architectures/squeezenet1_1.arch");
archc_runtime::include_arch!("../architectures/resnet18.arch");
archc_runtime::include_arch!("../architectures/resnet50.arch");
archc_runtime::include_arch!("../architectures/densenet121.arch");
archc_runtime::include_arch!("../architectures/inception_v3.arch");
archc_runtime::include_arch!("../architectures/mobilenet_v2.arch");
archc_runtime::include_arch!("../architectures/shufflenet_v2_x1_0.arch");
archc_runtime::include_arch!("../architectures/efficientnet_b0.arch");
// torchvision's GoogLeNet (module `googlenet`), as bench_googlenet (the root crate's example) builds it.
archc_runtime::include_arch!("../architectures/googlenet_torchvision.arch");

type Error = Box<dyn std::error::Error>;

/// The network `name` with its default `Config` and the weights of `vb`, as a module from images to logits,
/// and its declared input shape `[C, H, W]`.
fn build(
    name: &str,
    vb: archc_runtime::candle_nn::VarBuilder<'static>,
    optimizations: Optimizations,
) -> Result<(Box<dyn Module>, &'static [usize]), Error> {
    macro_rules! networks {
        ($($network:ident),* $(,)?) => {
            match name {
                $(stringify!($network) => {
                    let model = $network::Model::new(vb, &$network::Config::default())?
                        .with_optimizations(optimizations);
                    (Box::new(model) as Box<dyn Module>, $network::INPUT_SHAPE)
                })*
                other => {
                    let known = [$(stringify!($network)),*].join(", ");
                    return Err(format!("unknown network `{other}`; expected one of {known}").into());
                }
            }
        };
    }
    Ok(networks!(
        alexnet,
        vgg16_bn,
        squeezenet1_1,
        resnet18,
        resnet50,
        densenet121,
        inception_v3,
        mobilenet_v2,
        shufflenet_v2_x1_0,
        efficientnet_b0,
        googlenet,
    ))
}

/// Peak resident set size of this process in KiB, from `/proc/self/status` (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Args {
    network: String,
    weights: PathBuf,
    input: Option<PathBuf>,
    logits: Option<PathBuf>,
    batch: usize,
    iters: usize,
    warmup: usize,
    optimizations: String,
    profile: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let mut network = None;
    let mut weights = None;
    let mut parsed = Args {
        network: String::new(),
        weights: PathBuf::new(),
        input: None,
        logits: None,
        batch: 1,
        iters: 10,
        warmup: 2,
        optimizations: "all".to_string(),
        profile: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--weights" => weights = Some(PathBuf::from(value()?)),
            "--input" => parsed.input = Some(PathBuf::from(value()?)),
            "--logits" => parsed.logits = Some(PathBuf::from(value()?)),
            "--batch" => parsed.batch = value()?.parse()?,
            "--iters" => parsed.iters = value()?.parse()?,
            "--warmup" => parsed.warmup = value()?.parse()?,
            "--optimizations" => parsed.optimizations = value()?,
            "--profile" => parsed.profile = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option `{flag}`").into()),
            name if network.is_none() => network = Some(name.to_string()),
            extra => return Err(format!("unexpected argument `{extra}`").into()),
        }
    }
    parsed.network = network.ok_or("name a network, e.g. `bench_zoo resnet50 --weights FILE`")?;
    parsed.weights = weights.ok_or("--weights FILE (a torchvision state_dict as safetensors)")?;
    if parsed.batch == 0 || parsed.iters == 0 {
        return Err("--batch and --iters must be at least 1".into());
    }
    Ok(parsed)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let optimizations = Optimizations::from_str(&args.optimizations)?;
    let device = Device::Cpu;
    let weights = Weights::open(&args.weights)?;
    let (model, shape) = build(
        &args.network,
        weights.var_builder(DType::F32, &device),
        optimizations,
    )?;
    let input = match &args.input {
        Some(path) => {
            let mut tensors = archc_runtime::candle_core::safetensors::load(path, &device)?;
            tensors
                .remove("input")
                .ok_or_else(|| format!("{}: no tensor `input`", path.display()))?
                .to_dtype(DType::F32)?
        }
        None => {
            let dims: Vec<usize> = std::iter::once(args.batch)
                .chain(shape.iter().copied())
                .collect();
            Tensor::randn(0f32, 1.0, dims, &device)?
        }
    };
    let batch = input.dim(0)?;
    let logits = model.forward(&input)?;
    if let Some(path) = &args.logits {
        let tensors = HashMap::from([("logits".to_string(), logits.clone())]);
        archc_runtime::candle_core::safetensors::save(&tensors, path)?;
    }
    for _ in 1..args.warmup {
        model.forward(&input)?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let start = Instant::now();
        let logits = model.forward(&input)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        drop(logits);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"engine\": \"archc\", \"network\": \"{}\", \"optimizations\": \"{}\", \"threads\": {}, \"batch\": {batch}, \"iters\": {}, \"ms_per_batch\": {median:.3}, \"ms_per_image\": {:.3}, \"min_ms_per_batch\": {:.3}, \"peak_rss_kib\": {}}}",
        args.network,
        args.optimizations,
        rayon::current_num_threads(),
        args.iters,
        median / batch as f64,
        times[0],
        peak_rss_kib().map_or("null".to_string(), |k| k.to_string()),
    );
    if args.profile {
        profile(&*model, &input, args.iters)?;
    }
    Ok(())
}

/// `--profile`: runs `iters` more passes recording the plan's steps ([`archc_runtime::profile`]) and prints
/// them to stderr, the longest first, per pass.
fn profile(model: &dyn Module, input: &Tensor, iters: usize) -> Result<(), Error> {
    archc_runtime::profile::start();
    let start = Instant::now();
    for _ in 0..iters {
        model.forward(input)?;
    }
    let wall = start.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let steps = archc_runtime::profile::finish();
    let total: f64 = steps.iter().map(|s| s.time.as_secs_f64()).sum::<f64>() * 1e3 / iters as f64;
    eprintln!(
        "{wall:.3} ms a pass while profiling, {total:.3} ms of it in the plan's steps (per thread)"
    );
    eprintln!(
        "{:>9} {:>6} {:>6} {:>8}  step",
        "ms/pass", "%", "calls", "GMAC/s"
    );
    for step in &steps {
        let ms = step.time.as_secs_f64() * 1e3 / iters as f64;
        let rate = match step.macs {
            0 => String::new(),
            macs => format!("{:.1}", macs as f64 / step.time.as_secs_f64() / 1e9),
        };
        eprintln!(
            "{ms:>9.3} {:>5.1}% {:>6} {rate:>8}  {}",
            100.0 * ms / total,
            step.calls / iters as u64,
            step.label
        );
    }
    Ok(())
}
