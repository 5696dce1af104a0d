//! `archc graph` layout time: generated networks of about 100, 1,000 and 5,000 drawn nodes (Inception-like
//! modules and residual blocks, `tests/support/generated_networks.rs`), the shipped GoogLeNet and
//! torchvision's Inception-v3 (`tests/fixtures/graph/inception_v3.arch`, 325 nodes). For each,
//! the layout alone and the whole SVG (layout and writing); the graph model is built once, outside the timing.
//!
//! `cargo bench --bench graph`

use archc::graph::{build, layout::layout, Graph, GraphOptions};
use archc::SourceKind;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[path = "../tests/support/generated_networks.rs"]
mod generated_networks;

fn model(source: &str) -> Graph {
    let file = archc::parse_source(SourceKind::Arch, source).expect("parses");
    let (checked, recovered) = archc::check::check_file_recovering(&file);
    assert!(!checked.has_errors(), "the benchmark networks check clean");
    build(
        &file,
        &recovered,
        &checked.diagnostics,
        source,
        &GraphOptions::default(),
    )
}

fn bench_graph(c: &mut Criterion) {
    let mut cases = Vec::new();
    for (name, path) in [
        ("googlenet", "architectures/googlenet.arch"),
        ("inception_v3", "tests/fixtures/graph/inception_v3.arch"),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let source = std::fs::read_to_string(path).expect("network file");
        cases.push((name.to_string(), model(&source)));
    }
    for nodes in [100, 1_000, 5_000] {
        let (source, count) = generated_networks::inception_chain(nodes);
        let graph = model(&source);
        assert_eq!(graph.nodes.len(), count);
        cases.push((format!("{count} nodes"), graph));
    }
    let mut group = c.benchmark_group("graph");
    group.sample_size(20);
    for (name, graph) in &cases {
        group.bench_with_input(BenchmarkId::new("layout", name), graph, |b, graph| {
            b.iter(|| layout(graph))
        });
        group.bench_with_input(BenchmarkId::new("svg", name), graph, |b, graph| {
            b.iter(|| graph.to_svg())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_graph);
criterion_main!(benches);
