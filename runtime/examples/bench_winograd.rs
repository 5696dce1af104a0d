//! Times single 3×3 stride-1 convolution layers (each followed by a batch norm and a ReLU, folded into the
//! output pass), inference on the CPU in `f32`, by the direct kernel (one im2col and matrix product per image)
//! and by Winograd F(2×2, 3×3), F(3×3, 3×3) and F(4×4, 3×3), interleaved in one process; and what preparing
//! the Winograd filters on every call would add ("cold": the layer's prepared filters dropped before each
//! call). The filters stay in cache from one call to the next: `bench_conv --flush` times a layer as a
//! network meets it, its weights read from memory.
//!
//! ```sh
//! cargo run --release -p archc-runtime --example bench_winograd -- \
//!     --batch 1 --iters 20 --rounds 5 --layer 64,64,56,56 --layer 512,512,7,7
//! ```
//!
//! A layer is `in_channels,out_channels,height,width` (padding 1). Prints one JSON object per layer and path:
//! the best over rounds of each round's median time, in milliseconds, and the relative error against the
//! direct kernel (`max |diff| / max(1, max |direct|)`). The thread count is rayon's (`RAYON_NUM_THREADS`).
//! `--only PATH` times one path, for a profiler.
//!
//! `--depth N` times nothing: it stacks `N` layers of each (square) shape, each with its own weights, batch
//! norm and ReLU, runs the stack every way, and prints each way's relative error against the same stack
//! computed by candle in `f64`, to see how Winograd's rounding grows through a network.

use std::time::Instant;

use archc_runtime::candle_core::{Device, Result, Tensor};
use archc_runtime::nn::{Optimizations, Plan};
use archc_runtime::winograd::{conv_bn_act_winograd, Tile};
use archc_runtime::{Conv2dSpec, Pad2d};

#[path = "support/layer.rs"]
mod layer;
mod support;

use layer::{bn_params, conv_bn_relu, ConvBnRelu as Layer};
use support::{median, parse_args, sizes, values};

#[derive(Debug, Clone, Copy)]
struct Shape {
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
}

impl Shape {
    fn parse(text: &str) -> std::result::Result<Shape, String> {
        let v = sizes(text)?;
        let [c_in, c_out, h, w] = v[..] else {
            return Err(format!(
                "layer `{text}`: expected in_channels,out_channels,height,width"
            ));
        };
        Ok(Shape { c_in, c_out, h, w })
    }

    fn name(&self) -> String {
        format!("{}->{} {}x{}", self.c_in, self.c_out, self.h, self.w)
    }
}

/// The ways of running a layer that are timed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    Direct,
    Winograd(Tile),
    /// Winograd with the filters transformed again on every call.
    Cold(Tile),
    /// What a plan with every optimisation chooses.
    Plan,
}

impl Path {
    fn name(self) -> String {
        match self {
            Path::Direct => "direct".into(),
            Path::Winograd(tile) => format!("winograd {tile:?}"),
            Path::Cold(tile) => format!("winograd {tile:?} cold"),
            Path::Plan => "plan".into(),
        }
    }
}

fn run(path: Path, layer: &Layer, x: &Tensor) -> Result<Tensor> {
    let direct = Plan::new(Optimizations {
        winograd: false,
        micro_batches: false,
        ..Optimizations::ALL
    });
    let all = Plan::new(Optimizations {
        micro_batches: false,
        ..Optimizations::ALL
    });
    match path {
        Path::Direct => Ok(direct.run(x, false, layer)?.expect("CPU f32")),
        Path::Plan => Ok(all.run(x, false, layer)?.expect("CPU f32")),
        Path::Winograd(tile) => conv_bn_act_winograd(x, &layer.conv, Some(&layer.bn), true, tile),
        Path::Cold(tile) => {
            layer.conv.forget_prepared();
            conv_bn_act_winograd(x, &layer.conv, Some(&layer.bn), true, tile)
        }
    }
}

fn relative_error(got: &Tensor, want: &Tensor) -> Result<f32> {
    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = want.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    Ok(diff / scale)
}

fn main() -> Result<()> {
    let mut shapes = Vec::new();
    let mut only: Option<String> = None;
    let mut cold = false;
    let mut depth = None;
    let (batch, iters, rounds) = parse_args(|option, value| {
        match option {
            "--only" => only = Some(value()),
            "--cold" => cold = true,
            "--depth" => depth = Some(value().parse::<usize>().expect("--depth N")),
            "--layer" => shapes.push(Shape::parse(&value()).unwrap_or_else(|e| panic!("{e}"))),
            _ => return false,
        }
        true
    });
    let mut paths = vec![
        Path::Direct,
        Path::Winograd(Tile::F2),
        Path::Winograd(Tile::F3),
        Path::Winograd(Tile::F4),
        Path::Plan,
    ];
    if cold {
        paths.extend([Tile::F2, Tile::F3, Tile::F4].map(Path::Cold));
    }
    if let Some(only) = &only {
        paths.retain(|p| p.name() == *only || *p == Path::Direct);
    }
    if let Some(depth) = depth {
        return stacks(&shapes, depth, batch, &paths);
    }
    for (i, s) in shapes.iter().enumerate() {
        let layer = layer(s, i as u64)?;
        let x_dims = (batch, s.c_in, s.h, s.w);
        let x = Tensor::from_vec(values(batch * s.c_in * s.h * s.w, 99), x_dims, &Device::Cpu)?;
        let reference = run(Path::Direct, &layer, &x)?;
        let errors = paths
            .iter()
            .map(|&p| relative_error(&run(p, &layer, &x)?, &reference))
            .collect::<Result<Vec<_>>>()?;
        let mut medians = vec![Vec::new(); paths.len()];
        for round in 0..rounds {
            // A different path first each round, so none always runs on a cold cache or a hot core.
            for k in 0..paths.len() {
                let p = (k + round) % paths.len();
                if only.as_ref().is_some_and(|o| *o != paths[p].name()) {
                    continue;
                }
                run(paths[p], &layer, &x)?;
                let mut times = Vec::with_capacity(iters);
                for _ in 0..iters {
                    let start = Instant::now();
                    let y = run(paths[p], &layer, &x)?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    drop(y);
                }
                medians[p].push(median(&mut times));
            }
        }
        for ((path, m), error) in paths.iter().zip(medians).zip(errors) {
            let Some(best) = m.iter().copied().min_by(f64::total_cmp) else {
                continue;
            };
            println!(
                "{{\"layer\": \"{}\", \"path\": \"{}\", \"batch\": {}, \"threads\": {}, \"ms\": {:.4}, \"error\": {:.2e}}}",
                s.name(),
                path.name(),
                batch,
                rayon::current_num_threads(),
                best,
                error
            );
        }
    }
    Ok(())
}

/// A layer of shape `s` (3×3, padding 1) with weights from `seed` ([`conv_bn_relu`]).
fn layer(s: &Shape, seed: u64) -> Result<Layer> {
    let spec = Conv2dSpec {
        pad: Pad2d::uniform(1),
        ..Conv2dSpec::default()
    };
    conv_bn_relu(s.c_in, s.c_out, (3, 3), spec, seed)
}

/// `--depth`: each path's error through `depth` stacked layers of each shape, against candle in `f64`.
fn stacks(shapes: &[Shape], depth: usize, batch: usize, paths: &[Path]) -> Result<()> {
    use archc_runtime::candle_core::DType;
    for s in shapes {
        assert_eq!(
            s.c_in, s.c_out,
            "--depth stacks layers of as many channels in as out"
        );
        let seeds = 1..depth as u64 + 1;
        let layers = seeds
            .clone()
            .map(|seed| layer(s, seed))
            .collect::<Result<Vec<_>>>()?;
        let x_dims = (batch, s.c_in, s.h, s.w);
        let x = Tensor::from_vec(values(batch * s.c_in * s.h * s.w, 99), x_dims, &Device::Cpu)?;
        // The reference: candle's ops in f64, batch norm written out.
        let mut want = x.to_dtype(DType::F64)?;
        for (layer, seed) in layers.iter().zip(seeds) {
            let w = layer.conv.weight().to_dtype(DType::F64)?;
            let [mean, var, gamma, beta] = bn_params(s.c_out, seed)?
                .map(|t| t.to_dtype(DType::F64)?.reshape((1, s.c_out, 1, 1)));
            let y = want.conv2d(&w, 1, 1, 1, 1)?;
            let y = y
                .broadcast_sub(&mean?)?
                .broadcast_div(&(var? + 1e-3)?.sqrt()?)?
                .broadcast_mul(&gamma?)?
                .broadcast_add(&beta?)?;
            want = y.relu()?;
        }
        let want = want.to_dtype(DType::F32)?;
        for &path in paths {
            let mut y = x.clone();
            for layer in &layers {
                y = run(path, layer, &y)?;
            }
            println!(
                "{{\"layer\": \"{}\", \"depth\": {depth}, \"path\": \"{}\", \"batch\": {batch}, \"error_vs_f64\": {:.2e}}}",
                s.name(),
                path.name(),
                relative_error(&y, &want)?
            );
        }
    }
    Ok(())
}
