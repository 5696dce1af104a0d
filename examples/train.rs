//! Trains a small Inception network written in `examples/shapes.arch` to tell four procedurally drawn shapes
//! apart (circle, square, triangle, cross), with the auxiliary classifier's loss weighted 0.3 as in the
//! GoogLeNet paper, and reports held-out accuracy.
//!
//! ```sh
//! cargo run --release --example train -- [--epochs 3] [--train 2000] [--test 500]
//! ```

use archc_runtime::candle_core::{DType, Device, Module, Result, Tensor, D};
use archc_runtime::candle_nn::{loss, AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};

archc_runtime::include_arch!("examples/shapes.arch");

const SIZE: usize = 32;
const CLASSES: [&str; 4] = ["circle", "square", "triangle", "cross"];

/// A small deterministic generator (xorshift), so the example needs no extra dependency and is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Draws one shape of class `label` at a random place and size, with noise.
fn draw(label: usize, rng: &mut Rng) -> Vec<f32> {
    let radius = rng.uniform(5.0, 11.0);
    let cx = rng.uniform(radius, SIZE as f32 - radius);
    let cy = rng.uniform(radius, SIZE as f32 - radius);
    let mut pixels = vec![0f32; SIZE * SIZE];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = match label {
                0 => dx * dx + dy * dy <= radius * radius,
                1 => dx.abs() <= radius * 0.8 && dy.abs() <= radius * 0.8,
                2 => dy <= radius * 0.7 && dy >= -radius * 0.9 + 1.8 * dx.abs(),
                _ => {
                    (dx.abs() <= radius * 0.25 || dy.abs() <= radius * 0.25)
                        && dx.abs() <= radius
                        && dy.abs() <= radius
                }
            };
            let noise = rng.uniform(-0.2, 0.2);
            pixels[y * SIZE + x] = if inside { 1.0 } else { 0.0 } + noise;
        }
    }
    pixels
}

fn dataset(count: usize, rng: &mut Rng, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut images = Vec::with_capacity(count * SIZE * SIZE);
    let mut labels = Vec::with_capacity(count);
    for i in 0..count {
        let label = i % CLASSES.len();
        images.extend(draw(label, rng));
        labels.push(label as u32);
    }
    Ok((
        Tensor::from_vec(images, (count, 1, SIZE, SIZE), device)?,
        Tensor::from_vec(labels, count, device)?,
    ))
}

fn accuracy(model: &shapes_net::Model, images: &Tensor, labels: &Tensor) -> Result<f32> {
    let predicted = model.forward(images)?.argmax(D::Minus1)?;
    let correct = predicted
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(correct / labels.dim(0)? as f32)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let device = Device::Cpu;
    let (epochs, train_count, test_count) =
        (arg("--epochs", 3), arg("--train", 2000), arg("--test", 500));
    let batch = 50;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (train_x, train_y) = dataset(train_count, &mut rng, &device)?;
    let (test_x, test_y) = dataset(test_count, &mut rng, &device)?;

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = shapes_net::Model::new(vb, &shapes_net::Config::default())?;
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 3e-3,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    println!(
        "shapes_net: {} weight tensors; {train_count} training and {test_count} held-out images of {:?}",
        varmap.all_vars().len(),
        CLASSES
    );

    let steps = train_count / batch;
    for epoch in 1..=epochs {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        // A different interleaving each epoch: a stride through the data that is coprime with its length.
        let stride = [1, 7, 11, 13, 17, 19][epoch % 6];
        let mut total = 0f32;
        for step in 0..steps {
            let indices: Vec<u32> = (0..batch)
                .map(|i| (((step * batch + i) * stride) % train_count) as u32)
                .collect();
            let indices = Tensor::new(indices.as_slice(), &device)?;
            let xs = train_x.index_select(&indices, 0)?;
            let ys = train_y.index_select(&indices, 0)?;
            let outputs = model.forward_t(&xs, true)?;
            let main_loss = loss::cross_entropy(&outputs.logits, &ys)?;
            let aux = outputs
                .aux
                .as_ref()
                .expect("training mode computes the side output");
            // The paper weights auxiliary losses by 0.3.
            let loss = (&main_loss + (loss::cross_entropy(aux, &ys)? * 0.3)?)?;
            optimizer.backward_step(&loss)?;
            total += main_loss.to_scalar::<f32>()?;
            bar.set_message(format!("loss {:.3}", total / (step + 1) as f32));
            bar.inc(1);
        }
        bar.finish();
        println!(
            "epoch {epoch}: mean training loss {:.3}, held-out accuracy {:.1}%",
            total / steps as f32,
            100.0 * accuracy(&model, &test_x, &test_y)?
        );
    }
    Ok(())
}
