//! Classifies images with GoogLeNet compiled from `architectures/googlenet_torchvision.arch`.
//!
//! ```sh
//! cargo run --release --example googlenet -- [--weights googlenet.safetensors] [--transform-input] IMAGE...
//! ```
//!
//! `--weights` takes a torchvision GoogLeNet `state_dict` saved with safetensors (the tensor names are the
//! `.arch` statement paths, so no renaming is needed):
//!
//! ```python
//! import torchvision, safetensors.torch
//! m = torchvision.models.googlenet(weights="DEFAULT")
//! safetensors.torch.save_file(m.state_dict(), "googlenet.safetensors")
//! ```
//!
//! torchvision's pretrained GoogLeNet re-normalises its input (`transform_input=True`); pass
//! `--transform-input` with those weights. Without `--weights` the model is randomly initialised, which shows the
//! pipeline but not meaningful classes. Without images a synthetic gradient image is used.

use archc_runtime::candle_core::{DType, Device, Module, Result, Tensor, D};
use archc_runtime::candle_nn::{ops::softmax, VarBuilder, VarMap};
use archc_runtime::weights::{is_batch_norm_counter, Weights};

archc_runtime::include_arch!("architectures/googlenet_torchvision.arch");

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes, resizes to 256 on the short side, centre-crops 224×224 and normalises with ImageNet statistics.
fn load_image(path: &str) -> std::result::Result<Vec<f32>, String> {
    let image = image::open(path)
        .map_err(|e| format!("{path}: {e}"))?
        .to_rgb8();
    let (w, h) = image.dimensions();
    let scale = 256.0 / w.min(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale).round() as u32).max(224),
        ((h as f32 * scale).round() as u32).max(224),
    );
    let resized = image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - 224) / 2, (nh - 224) / 2);
    let mut chw = vec![0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let pixel = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                chw[c * 224 * 224 + (y * 224 + x) as usize] =
                    (pixel[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    Ok(chw)
}

/// torchvision's `transform_input`: maps ImageNet-normalised input to the (x - 0.5) / 0.5 normalisation the
/// pretrained weights were trained with.
fn transform_input(batch: &Tensor) -> Result<Tensor> {
    let channels: Vec<Tensor> = (0..3)
        .map(|c| {
            let x = batch.narrow(1, c, 1)?;
            (x * (STD[c] / 0.5) as f64)? + ((MEAN[c] - 0.5) / 0.5) as f64
        })
        .collect::<Result<_>>()?;
    Tensor::cat(&channels, 1)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let weights = args
        .iter()
        .position(|a| a == "--weights")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let transform = args.iter().any(|a| a == "--transform-input");
    let images: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--weights"))
        .map(|(_, a)| a)
        .collect();

    let device = Device::Cpu;
    let varmap = VarMap::new();
    // Opened with errors naming the file and the culprit tensor, and a record of the tensors the model reads.
    let weights = weights.map(Weights::open).transpose()?;
    let vb = match &weights {
        Some(weights) => weights.var_builder(DType::F32, &device),
        None => {
            eprintln!(
                "no --weights given: random initialisation (the classes printed are meaningless)"
            );
            VarBuilder::from_varmap(&varmap, DType::F32, &device)
        }
    };
    let model = googlenet::Model::new(vb, &googlenet::Config::default())?;
    // torchvision's batch-norm step counters are expected to be left over; anything else is worth reporting.
    if let Some(warning) = weights.and_then(|w| w.unused_warning(is_batch_norm_counter)) {
        eprintln!("{warning}");
    }

    let mut pixels = Vec::new();
    let mut names = Vec::new();
    for path in &images {
        pixels.extend(load_image(path)?);
        names.push(path.to_string());
    }
    if names.is_empty() {
        eprintln!("no images given: using a synthetic gradient image");
        for c in 0..3 {
            for i in 0..224 * 224 {
                pixels.push(((i % 224) as f32 / 224.0 - MEAN[c]) / STD[c] * (c as f32 + 1.0) / 3.0);
            }
        }
        names.push("synthetic".to_string());
    }
    let mut batch = Tensor::from_vec(pixels, (names.len(), 3, 224, 224), &device)?;
    if transform {
        batch = transform_input(&batch)?;
    }
    let started = std::time::Instant::now();
    let probabilities = softmax(&model.forward(&batch)?, D::Minus1)?;
    let elapsed = started.elapsed();
    for (row, name) in names.iter().enumerate() {
        let p: Vec<f32> = probabilities.get(row)?.to_vec1()?;
        let mut ranked: Vec<(usize, f32)> = p.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("{name}:");
        for (class, probability) in ranked.iter().take(5) {
            println!("  class {class:>4}  {:6.2}%", probability * 100.0);
        }
    }
    println!(
        "{} image(s) in {:.1} ms",
        names.len(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
