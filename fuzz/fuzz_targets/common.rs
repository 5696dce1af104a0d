//! What the fuzz targets run on one input, shared by them and by `tests/fuzz_regressions.rs`, which replays
//! every crash found through the same functions.
//!
//! [`run`]: the whole front end, then everything the CLI and the macro do with its result (the `arch` and
//! `yaml` targets). A panic anywhere is a crash; so is a broken invariant: a diagnostic span outside the source
//! or inside a character, or a file that checks clean but whose generated code does not parse.
//!
//! [`run_graph`]: `archc graph` (DOT and SVG, full and collapsed) on a parsed `.arch` file, errors or not, as
//! `--allow-errors` draws it (the `graph` target). The layout must stay within a work budget linear in the
//! graph's size (times a log), so super-linear layout behaviour is a finding, and node boxes must not overlap.
//!
//! [`run_weights`]: a weight file opened with `archc_runtime::Weights` and every tensor loaded (the `weights`
//! target). Any malformed file must be an error, never a panic.

// Each target uses one of the entry points.
#![allow(dead_code)]

use archc::diagnostic::LineIndex;
use archc::{Code, SourceKind};

pub fn run(kind: SourceKind, data: &[u8]) {
    // The CLI rejects non-UTF-8 files before the library sees them; decoding lossily keeps every input useful.
    let source = String::from_utf8_lossy(data);
    let source = source.as_ref();
    let name = match kind {
        SourceKind::Arch => "fuzz.arch",
        SourceKind::Yaml => "fuzz.yaml",
    };
    let checked = archc::compile(kind, source);

    let index = LineIndex::new(source);
    for diagnostic in &checked.diagnostics {
        for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            assert!(
                start <= end && end <= source.len(),
                "{}: span {start}..{end} outside a source of {} bytes",
                diagnostic.code,
                source.len()
            );
            assert!(
                source.is_char_boundary(start) && source.is_char_boundary(end),
                "{}: span {start}..{end} splits a character",
                diagnostic.code
            );
            // What `archc check --format json` reports for each label.
            let _ = index.line_col(start);
            let _ = index.line_col(end);
        }
        let compact = archc::render::render_compact(name, source, diagnostic);
        assert!(compact.contains(diagnostic.code.as_str()));
    }
    let rendered = archc::render::render(name, source, &checked.diagnostics, false);
    assert_eq!(rendered.is_empty(), checked.diagnostics.is_empty());

    if checked.has_errors() {
        return;
    }
    // What `archc summary` prints.
    for network in &checked.networks {
        let summary = archc::summary::summarize(network);
        let _ = summary.table(usize::MAX);
    }
    // What `archc emit` and `include_arch!` do. The generator may decline a construct (E-code `Unsupported`,
    // with a location), but the code it does generate must parse.
    if let Err(diagnostics) = archc::codegen::emit_source(kind, name, source) {
        for diagnostic in &diagnostics {
            assert_eq!(diagnostic.code, Code::Unsupported, "{diagnostic:?}");
            assert!(
                !diagnostic.message.starts_with("internal error"),
                "{}",
                diagnostic.message
            );
        }
        let _ = archc::render::render(name, source, &diagnostics, false);
    }
}

/// Steps the layout may take per node, edge and cluster, times log2 of their number: today's layout takes 7 to
/// 10 in all (`Layout::work`: 7.0 for 22 items, 8.4 for 241, 9.9 for the 11,573 of a 5,000-node network), so
/// a change of constant fits and a change of growth order, even by a factor of log n, does not for long.
pub const GRAPH_WORK_PER_ITEM: usize = 16;

/// Returns the largest graph drawn (nodes + edges + clusters), for the caller's own budgets.
pub fn run_graph(data: &[u8]) -> usize {
    let source = String::from_utf8_lossy(data);
    let source = source.as_ref();
    let Ok(file) = archc::parse_source(SourceKind::Arch, source) else {
        return 0;
    };
    let (checked, recovered) = archc::check::check_file_recovering(&file);
    let mut largest = 0;
    for collapse in [false, true] {
        let options = archc::graph::GraphOptions {
            collapse,
            network: None,
        };
        let graph = archc::graph::build(&file, &recovered, &checked.diagnostics, source, &options);
        let size = graph.nodes.len() + graph.edges.len() + graph.clusters.len();
        largest = largest.max(size);
        let layout = archc::graph::layout::layout(&graph);
        let log = (usize::BITS - size.leading_zeros()) as usize + 1;
        assert!(
            layout.work <= GRAPH_WORK_PER_ITEM * (size + 1) * log,
            "layout took {} steps for {size} nodes, edges and clusters",
            layout.work
        );
        assert_eq!(layout.nodes.len(), graph.nodes.len());
        assert_eq!(layout.edges.len(), graph.edges.len());
        // Node boxes apart (a quadratic check, so only on graphs of a size a person would read).
        if graph.nodes.len() <= 400 {
            for (i, a) in layout.nodes.iter().enumerate() {
                assert!(a.width > 0.0 && a.height > 0.0 && a.x.is_finite() && a.y.is_finite());
                for b in &layout.nodes[i + 1..] {
                    assert!(!a.overlaps(b), "node boxes {a:?} and {b:?} overlap");
                }
            }
        }
        let svg = graph.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(graph.to_dot().starts_with("digraph"));
    }
    largest
}

pub fn run_weights(data: &[u8]) {
    use archc_runtime::candle_core::{DType, Device};
    use archc_runtime::weights::{is_batch_norm_counter, Weights};

    let Ok(weights) = Weights::from_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    let names: Vec<String> = weights.names().take(16).map(str::to_string).collect();
    for dtype in [DType::F32, DType::F16] {
        let vb = weights.var_builder(dtype, &Device::Cpu);
        for name in &names {
            let _ = vb.get_unchecked(name);
            let _ = archc_runtime::load_tensor(&vb, name, (2, 3), "statement `fuzz`");
        }
        let _ = archc_runtime::load_tensor(&vb, "absent", 4, "statement `fuzz`");
    }
    let _ = weights.unused_warning(is_batch_norm_counter);
    let _ = weights.unused_warning(|_| false);
}
