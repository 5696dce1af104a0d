//! Front-end throughput: `archc check` on the shipped GoogLeNet and on a generated 10,000-layer file.
//!
//! `cargo bench --bench check`

use archc::{compile, SourceKind};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../tests/support/deep_network.rs"]
mod deep_network;
use deep_network::deep_file;

fn bench_check(c: &mut Criterion) {
    let googlenet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/architectures/googlenet.arch"
    ))
    .expect("shipped architecture");
    c.bench_function("check googlenet.arch", |b| {
        b.iter(|| assert!(!compile(SourceKind::Arch, &googlenet).has_errors()))
    });
    let deep = deep_file(10_000);
    c.bench_function("check 10,000-layer file", |b| {
        b.iter(|| assert!(!compile(SourceKind::Arch, &deep).has_errors()))
    });
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
