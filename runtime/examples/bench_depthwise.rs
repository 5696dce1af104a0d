//! Times single depthwise and grouped convolution layers, batch-1 inference on the CPU in `f32`, three ways in
//! the same process, interleaved: candle's grouped `conv2d` (one convolution per group, then a concatenation:
//! what a plan without archc's kernels runs), archc's convolution kernel without the depthwise kernel (one
//! im2col and matrix product per group: what the plan ran before), and archc's plan as it is.
//! `bench/depthwise.py` runs it beside PyTorch and writes the table in `bench/RESULTS.md`.
//!
//! ```sh
//! cargo run --release -p archc-runtime --example bench_depthwise -- \
//!     --batch 1 --iters 20 --rounds 5 --layer 32,112,112,3,1,32 --layer 960,7,7,3,1,960
//! ```
//!
//! A layer is `channels,height,width,kernel,stride,groups` (padding `kernel / 2`, no bias). Prints one JSON
//! object per layer and path: the median over rounds of each round's median time, in milliseconds. The thread
//! count is rayon's (`RAYON_NUM_THREADS`), which candle's matrix products follow too. `--only archc` times
//! one path (candle's still runs once, as the reference), for a profiler.

use std::time::Instant;

use archc_runtime::candle_core::{Device, Result, Tensor};
use archc_runtime::nn::{Describe, Op, Optimizations, Plan};
use archc_runtime::{Conv2d, Conv2dSpec, Pad2d};

mod support;

use support::{median, parse_args, sizes, values};

/// One convolution, described for a plan.
struct Layer {
    conv: Conv2d,
}

impl Describe for Layer {
    fn describe(&self) -> Op<'_> {
        Op::Conv(&self.conv)
    }
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    channels: usize,
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
}

impl Shape {
    fn parse(text: &str) -> std::result::Result<Shape, String> {
        let v = sizes(text)?;
        let [channels, h, w, kernel, stride, groups] = v[..] else {
            return Err(format!(
                "layer `{text}`: expected channels,height,width,kernel,stride,groups"
            ));
        };
        Ok(Shape {
            channels,
            h,
            w,
            kernel,
            stride,
            groups,
        })
    }

    fn name(&self) -> String {
        format!(
            "{}ch {}x{} {}x{} s{} g{}",
            self.channels, self.h, self.w, self.kernel, self.kernel, self.stride, self.groups
        )
    }
}

fn main() -> Result<()> {
    let mut shapes = Vec::new();
    let mut only: Option<String> = None;
    let (batch, iters, rounds) = parse_args(|option, value| {
        match option {
            "--only" => only = Some(value()),
            "--layer" => shapes.push(Shape::parse(&value()).unwrap_or_else(|e| panic!("{e}"))),
            _ => return false,
        }
        true
    });
    let im2col = Optimizations {
        depthwise_kernel: false,
        ..Optimizations::ALL
    };
    let mut paths = vec![
        ("candle grouped conv2d", Plan::new(Optimizations::NONE)),
        ("archc im2col per group", Plan::new(im2col)),
        ("archc", Plan::default()),
    ];
    if let Some(only) = &only {
        // For profiling one path: candle's stays first, as the reference.
        paths.retain(|(name, _)| name.starts_with("candle") || name == only);
    }
    for (i, s) in shapes.iter().enumerate() {
        let dev = Device::Cpu;
        let weight_dims = (s.channels, s.channels / s.groups, s.kernel, s.kernel);
        let weight_len = weight_dims.0 * weight_dims.1 * s.kernel * s.kernel;
        let weight = Tensor::from_vec(values(weight_len, i as u64 + 1), weight_dims, &dev)?;
        let spec = Conv2dSpec {
            stride: (s.stride, s.stride),
            pad: Pad2d::uniform(s.kernel / 2),
            dilation: (1, 1),
            groups: s.groups,
        };
        let layer = Layer {
            conv: Conv2d::new(weight, None, spec)?,
        };
        let x_dims = (batch, s.channels, s.h, s.w);
        let x = Tensor::from_vec(values(batch * s.channels * s.h * s.w, 99), x_dims, &dev)?;
        // Every path must compute the same layer.
        let reference = paths[0].1.run(&x, false, &layer)?.expect("CPU f32");
        for (name, plan) in &paths[1..] {
            let y = plan.run(&x, false, &layer)?.expect("CPU f32");
            let diff = (y - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-3, "{name} differs from candle by {diff}");
        }
        let mut medians = vec![Vec::new(); paths.len()];
        for round in 0..rounds {
            // A different path first each round, so none always runs on a cold cache or a hot core.
            for k in 0..paths.len() {
                let p = (k + round) % paths.len();
                if only.as_ref().is_some_and(|o| o != paths[p].0) {
                    continue;
                }
                let plan = &paths[p].1;
                plan.run(&x, false, &layer)?;
                let mut times = Vec::with_capacity(iters);
                for _ in 0..iters {
                    let start = Instant::now();
                    let y = plan.run(&x, false, &layer)?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    drop(y);
                }
                medians[p].push(median(&mut times));
            }
        }
        for ((name, _), mut m) in paths.iter().zip(medians) {
            if m.is_empty() {
                continue;
            }
            println!(
                "{{\"layer\": \"{}\", \"path\": \"{}\", \"batch\": {}, \"threads\": {}, \"ms\": {:.5}}}",
                s.name(),
                name,
                batch,
                rayon::current_num_threads(),
                median(&mut m)
            );
        }
    }
    Ok(())
}
