//! Times single convolution layers (each followed by a batch norm and a ReLU, folded into the output pass) as a
//! plan with every optimisation runs them, inference on the CPU in `f32`.
//!
//! ```sh
//! cargo run --release -p archc-runtime --example bench_conv -- \
//!     --batch 1 --iters 20 --rounds 5 --layer 64,256,56,56,1,1,0 --layer 128,128,56,56,3,2,1
//! ```
//!
//! A layer is `in_channels,out_channels,height,width,kernel,stride,padding` (square kernel, stride and
//! padding) or `in,out,height,width,kernel_h,kernel_w,stride,padding_h,padding_w`. Prints one JSON object per
//! layer: the best over rounds of each round's median time in milliseconds, and the multiply-adds a second
//! that makes. The thread count is rayon's (`RAYON_NUM_THREADS`).
//!
//! `--optimizations` takes the list `bench_zoo` does (`all,-winograd`). `--flush MIB` writes that many MiB
//! between calls, untimed, so that the layer's weights, input and output come from memory as in a network
//! whose other layers passed through the caches (64: more than this machine's L3 cache); `--warm-input` then
//! reads the input back into the caches, to tell the input's share of that from the rest.

use std::time::Instant;

use archc_runtime::candle_core::{Device, Result, Tensor};
use archc_runtime::nn::{Optimizations, Plan};
use archc_runtime::{Conv2dSpec, Pad2d};

#[path = "support/layer.rs"]
mod layer;
mod support;

use layer::conv_bn_relu;
use support::{median, parse_args, sizes, values};

fn main() -> Result<()> {
    let mut shapes = Vec::new();
    let mut flush = 0usize;
    let mut warm_input = false;
    let mut optimizations = "all".to_string();
    let (batch, iters, rounds) = parse_args(|option, value| {
        match option {
            "--optimizations" => optimizations = value(),
            "--warm-input" => warm_input = true,
            "--flush" => flush = value().parse().expect("--flush MiB"),
            "--layer" => shapes.push(sizes(&value()).unwrap_or_else(|e| panic!("{e}"))),
            _ => return false,
        }
        true
    });
    let optimizations: Optimizations = optimizations
        .parse()
        .unwrap_or_else(|e: String| panic!("{e}"));
    let plan = Plan::new(Optimizations {
        micro_batches: false,
        ..optimizations
    });
    let dev = Device::Cpu;
    for (i, s) in shapes.iter().enumerate() {
        // `in,out,h,w,k,stride,pad` or, for a rectangular kernel, `in,out,h,w,kh,kw,stride,pad_h,pad_w`.
        let (c_in, c_out, h, w, (kh, kw), stride, (ph, pw)) = match s[..] {
            [c_in, c_out, h, w, k, stride, pad] => (c_in, c_out, h, w, (k, k), stride, (pad, pad)),
            [c_in, c_out, h, w, kh, kw, stride, ph, pw] => {
                (c_in, c_out, h, w, (kh, kw), stride, (ph, pw))
            }
            _ => panic!("a layer is in,out,height,width,kernel,stride,padding"),
        };
        let pad = Pad2d {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        };
        let spec = Conv2dSpec {
            stride: (stride, stride),
            pad,
            ..Conv2dSpec::default()
        };
        let layer = conv_bn_relu(c_in, c_out, (kh, kw), spec, i as u64)?;
        let x = Tensor::from_vec(values(batch * c_in * h * w, 99), (batch, c_in, h, w), &dev)?;
        let y = plan.run(&x, false, &layer)?.expect("CPU f32");
        let (oh, ow) = (y.dim(2)?, y.dim(3)?);
        let mut junk = vec![0u8; flush << 20];
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let mut times = Vec::with_capacity(iters);
            for it in 0..iters {
                // Evict the layer's weights, input and output from the caches, as the rest of a network does.
                junk.iter_mut().for_each(|b| *b = b.wrapping_add(it as u8));
                std::hint::black_box(&junk);
                if warm_input {
                    std::hint::black_box(x.sum_all()?.to_scalar::<f32>()?);
                }
                let start = Instant::now();
                let y = plan.run(&x, false, &layer)?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
                drop(y);
            }
            best = best.min(median(&mut times));
        }
        let macs = (batch * c_out * oh * ow * c_in * kh * kw) as f64;
        println!(
            "{{\"layer\": \"{c_in}->{c_out} {h}x{w} k{kh}x{kw} s{stride} p{ph},{pw}\", \"batch\": {batch}, \"threads\": {}, \"ms\": {best:.4}, \"gmacs\": {:.1}}}",
            rayon::current_num_threads(),
            macs / best / 1e6
        );
    }
    Ok(())
}
