//! Front-end throughput: `archc check` on the shipped GoogLeNet and on a generated 10,000-layer file.
//!
//! `cargo bench --bench check`

use archc::{compile, SourceKind};
use criterion::{criterion_group, criterion_main, Criterion};

/// A network of `layers` statements: conv/batch-norm/relu rows with a declared size each, pools now and then.
fn deep_file(layers: usize) -> String {
    let mut source = String::from("network deep(width = 16) {\n    input [3, 64, 64]\n");
    let mut size = 64;
    for i in 0..layers {
        if i % 500 == 499 && size > 4 {
            size /= 2;
            source.push_str(&format!(
                "    pool{i} = max_pool(2, stride = 2) : [width, {size}, {size}]\n"
            ));
        } else {
            source.push_str(&format!(
                "    layer{i} = conv2d(width, 3, pad = 1, bias = false) -> batch_norm -> relu : [width, {size}, {size}]\n"
            ));
        }
    }
    source.push_str("}\n");
    source
}

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
