//! Inference speed of the generated torchvision GoogLeNet (random weights, 224×224, f32, CPU), batch 1 and 8.
//!
//! `cargo bench --bench googlenet`; results with the machine they came from go in bench/RESULTS.md.

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

archc_runtime::include_arch!("architectures/googlenet_torchvision.arch");

fn bench_googlenet(c: &mut Criterion) {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    // Random weights, detached from the VarMap so inference takes the CPU kernels (Var weights keep their
    // gradients and run as candle ops).
    let random = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    googlenet::Model::new(random, &googlenet::Config::default()).expect("model builds");
    let vb = archc_runtime::load::detached(&varmap, &device).expect("weights detach");
    let model = googlenet::Model::new(vb, &googlenet::Config::default()).expect("model builds");
    let mut group = c.benchmark_group("googlenet_torchvision inference");
    group.sample_size(10);
    for batch in [1usize, 8] {
        let input = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &device).expect("input");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| model.forward(&input).expect("forward"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_googlenet);
criterion_main!(benches);
