//! `archc graph`: DOT snapshots (GoogLeNet full and collapsed, a small file with one of each node kind), errors
//! drawn on the node they are about, and an SVG that parses, holds the labels and has no overlapping boxes.

use std::path::PathBuf;
use std::process::Command;

use archc::graph::{build, Graph, GraphOptions};
use archc::SourceKind;

fn path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn graph(relative: &str, collapse: bool) -> Graph {
    let source = std::fs::read_to_string(path(relative)).expect("fixture");
    let file = archc::parse_source(SourceKind::from_path(relative), &source).expect("parses");
    let (checked, recovered) = archc::check::check_file_recovering(&file);
    let options = GraphOptions {
        collapse,
        network: None,
    };
    build(&file, &recovered, &checked.diagnostics, &source, &options)
}

/// The node whose first label line is `name`.
fn node<'g>(graph: &'g Graph, name: &str) -> &'g archc::graph::GraphNode {
    graph
        .nodes
        .iter()
        .find(|n| n.lines.first().is_some_and(|l| l == name))
        .unwrap_or_else(|| panic!("no node `{name}`"))
}

#[test]
fn googlenet_dot() {
    let graph = graph("architectures/googlenet.arch", false);
    // input; 7 stem statements, three of them conv -> relu (10 nodes); 9 Inception modules, each with branches
    // of 2, 4, 4 and 3 layers and a concat (14 nodes); pool3 and pool4; pool5, flatten, drop, fc; 2 aux heads
    // of 8 layers (pool, conv, relu, flatten, fc1, relu, drop, fc2).
    assert_eq!(graph.nodes.len(), 1 + 10 + 9 * 14 + 2 + 4 + 2 * 8);
    let branch = node(&graph, "inception3a.branch2.2");
    assert_eq!(
        branch.lines,
        ["inception3a.branch2.2", "conv 3×3/1", "128×28×28"]
    );
    assert!(node(&graph, "aux1.fc2").side);
    assert!(!node(&graph, "fc").side);
    insta::assert_snapshot!("googlenet_dot", graph.to_dot());
}

#[test]
fn googlenet_collapsed_dot() {
    let graph = graph("architectures/googlenet.arch", true);
    // One node per statement: input, 22 main-path statements and the two aux heads.
    assert_eq!(graph.nodes.len(), 1 + 22 + 2);
    assert_eq!(
        node(&graph, "inception3b").lines,
        [
            "inception3b",
            "inception(128, 128, 192, 32, 96, 64)",
            "480×28×28"
        ]
    );
    assert_eq!(
        node(&graph, "aux1").lines,
        ["aux1", "inception_aux(1000, 0.7)", "1000", "training only"]
    );
    insta::assert_snapshot!("googlenet_collapsed_dot", graph.to_dot());
}

#[test]
fn small_dot() {
    let graph = graph("tests/fixtures/graph/small.arch", false);
    // The add's two branches both read the stem's output (its relu), and meet at the add.
    let add = graph
        .nodes
        .iter()
        .position(|n| n.lines == ["res", "add", "16×32×32"]);
    let add = add.expect("the add node");
    let into_add: Vec<usize> = graph
        .edges
        .iter()
        .filter(|e| e.to == add)
        .map(|e| e.from)
        .collect();
    assert_eq!(into_add.len(), 2);
    insta::assert_snapshot!("small_dot", graph.to_dot());
}

#[test]
fn allow_errors_highlights_the_culprit() {
    let graph = graph(
        "tests/fixtures/errors/inception3b_columns_out_of_order.arch",
        true,
    );
    let culprit = node(&graph, "inception3b");
    assert_eq!(culprit.errors, ["E0102"]);
    // Drawn from its source, since the checker dropped it: the call and the declared size.
    assert_eq!(
        culprit.lines,
        [
            "inception3b",
            "inception(128, 192, 32, 32, 96, 64)",
            "declared [480, 28, 28]"
        ]
    );
    for other in ["inception3a", "pool3"] {
        assert!(
            node(&graph, other).errors.is_empty(),
            "{other} is not at fault"
        );
    }
    // pool3 is still drawn from what the checker recovered: it read the declared 480 channels.
    assert_eq!(node(&graph, "pool3").lines[2], "480×14×14");
    let dot = graph.to_dot();
    let line = dot
        .lines()
        .find(|l| l.contains("label=\"inception3b\\n"))
        .expect("culprit in DOT");
    assert!(
        line.contains("error E0102") && line.contains("color=\"#c5221f\""),
        "{line}"
    );
    assert_eq!(dot.matches("error E0").count(), 1);
}

#[test]
fn errors_in_a_block_body_go_to_its_instances() {
    // `inception_5x5_pad_1`: a 5x5 convolution padded by 1 inside the block shrinks the map; every instance
    // fails, and the error (in the block's text) is drawn on them.
    let graph = graph("tests/fixtures/errors/inception_5x5_pad_1.arch", true);
    let marked: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| !n.errors.is_empty())
        .map(|n| n.lines[0].as_str())
        .collect();
    assert!(
        !marked.is_empty() && marked.iter().all(|n| n.starts_with("inception")),
        "{marked:?}"
    );
    assert!(graph.unplaced.is_empty(), "{:?}", graph.unplaced);
}

#[test]
fn svg_parses_holds_the_labels_and_boxes_do_not_overlap() {
    for (file, collapse) in [
        ("architectures/googlenet.arch", true),
        ("architectures/googlenet.arch", false),
        ("tests/fixtures/graph/small.arch", false),
        ("tests/fixtures/graph/inception_v3.arch", false),
    ] {
        let graph = graph(file, collapse);
        let svg = graph.to_svg();
        let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(document.root_element().tag_name().name(), "svg");
        let text: Vec<String> = document
            .descendants()
            .filter(|n| n.has_tag_name("tspan"))
            .filter_map(|n| n.text().map(str::to_string))
            .collect();
        for node in &graph.nodes {
            for line in &node.lines {
                assert!(text.contains(line), "{file}: label line `{line}` not drawn");
            }
        }
        let boxes: Vec<[f64; 4]> = document
            .descendants()
            .filter(|n| {
                n.has_tag_name("rect")
                    && n.attribute("class").is_some_and(|c| c.starts_with("node"))
            })
            .map(|n| {
                let number = |a: &str| {
                    n.attribute(a)
                        .and_then(|v| v.parse::<f64>().ok())
                        .expect("coordinate")
                };
                [number("x"), number("y"), number("width"), number("height")]
            })
            .collect();
        assert_eq!(boxes.len(), graph.nodes.len(), "{file}: one box per node");
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart = a[0] + a[2] <= b[0]
                    || b[0] + b[2] <= a[0]
                    || a[1] + a[3] <= b[1]
                    || b[1] + b[3] <= a[1];
                assert!(apart, "{file}: boxes {a:?} and {b:?} overlap");
            }
        }
        if !collapse {
            // GoogLeNet's four Inception branches side by side: the heads of inception3a's branches share a row.
            if file.contains("googlenet") {
                let row: Vec<f64> = (1..=4)
                    .map(|b| {
                        let label = format!("inception3a.branch{b}.0");
                        let tspan = document
                            .descendants()
                            .find(|n| n.has_tag_name("tspan") && n.text() == Some(label.as_str()))
                            .expect("branch head drawn");
                        let text = tspan.parent().expect("text element");
                        text.attribute("y").and_then(|y| y.parse().ok()).expect("y")
                    })
                    .collect();
                assert!(row.windows(2).all(|w| (w[0] - w[1]).abs() < 0.5), "{row:?}");
            }
        }
    }
}

fn archc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("archc runs")
}

#[test]
fn cli_refuses_a_file_with_errors_unless_allowed() {
    let file = "tests/fixtures/errors/inception3b_columns_out_of_order.arch";
    let refused = archc(&["graph", file]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("error[E0102]"), "{stderr}");

    let drawn = archc(&["graph", "--allow-errors", "--format", "dot", file]);
    assert_eq!(drawn.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&drawn.stdout);
    assert!(
        stdout.starts_with("digraph") && stdout.contains("error E0102"),
        "{stdout}"
    );
}

#[test]
fn cli_picks_a_network_by_name() {
    let unknown = archc(&[
        "graph",
        "--network",
        "resnet",
        "architectures/googlenet.arch",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no network `resnet`"));
    let named = archc(&[
        "graph",
        "--network",
        "googlenet",
        "--format",
        "dot",
        "architectures/googlenet.arch",
    ]);
    assert_eq!(named.status.code(), Some(0));
}

#[test]
fn every_fixture_draws_without_panicking() {
    // Every file of the broken-file corpus that parses, drawn as --allow-errors would, both ways: every error is
    // either on a node or in the title's list, never dropped.
    let dir = path("tests/fixtures/errors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("readable");
        let Ok(ast) = archc::parse_source(SourceKind::Arch, &source) else {
            continue;
        };
        let (checked, recovered) = archc::check::check_file_recovering(&ast);
        for collapse in [false, true] {
            let options = GraphOptions {
                collapse,
                network: None,
            };
            let graph = build(&ast, &recovered, &checked.diagnostics, &source, &options);
            let drawn: Vec<&String> = graph
                .nodes
                .iter()
                .flat_map(|n| &n.messages)
                .chain(graph.clusters.iter().flat_map(|c| &c.messages))
                .chain(&graph.unplaced)
                .collect();
            for error in checked.diagnostics.iter().filter(|d| d.is_error()) {
                assert!(
                    drawn.iter().any(|m| m.ends_with(&error.message)),
                    "{}: {} not drawn",
                    file.display(),
                    error.message
                );
            }
            let svg = graph.to_svg();
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(graph.to_dot().starts_with("digraph"));
        }
    }
}

#[path = "support/generated_networks.rs"]
mod generated_networks;

/// Each item's box in the layout: a node's, or a cluster's (`None` for an empty cluster).
fn item_rect(
    layout: &archc::graph::layout::Layout,
    item: archc::graph::Item,
) -> Option<archc::graph::layout::Rect> {
    match item {
        archc::graph::Item::Node(id) => Some(layout.nodes[id]),
        archc::graph::Item::Cluster(id) => layout.clusters[id].as_ref().map(|b| b.rect),
    }
}

#[test]
fn a_thousand_node_layout_keeps_boxes_apart_and_branches_in_order() {
    use archc::graph::layout::layout;
    use archc::graph::{ClusterKind, Item};

    let (source, expected) = generated_networks::inception_chain(1_000);
    let file = archc::parse_source(SourceKind::Arch, &source).expect("parses");
    let (checked, recovered) = archc::check::check_file_recovering(&file);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let graph = build(
        &file,
        &recovered,
        &checked.diagnostics,
        &source,
        &GraphOptions::default(),
    );
    assert_eq!(graph.nodes.len(), expected);
    assert!(expected >= 1_000);
    let layout = layout(&graph);

    // No two node boxes overlap (every pair).
    for (i, a) in layout.nodes.iter().enumerate() {
        for b in &layout.nodes[i + 1..] {
            assert!(!a.overlaps(b), "node boxes {a:?} and {b:?} overlap");
        }
    }
    // Every cluster's box holds its items, and the items of one cluster (or of the top level) are apart.
    let mut containers: Vec<(Option<archc::graph::layout::Rect>, &[Item])> =
        vec![(None, &graph.items)];
    for (id, cluster) in graph.clusters.iter().enumerate() {
        let rect = layout.clusters[id].as_ref().expect("no empty cluster").rect;
        containers.push((Some(rect), &cluster.items));
    }
    for (outer, items) in containers {
        let rects: Vec<_> = items
            .iter()
            .filter_map(|&i| item_rect(&layout, i))
            .collect();
        assert_eq!(rects.len(), items.len());
        for (i, a) in rects.iter().enumerate() {
            if let Some(outer) = outer {
                assert!(outer.contains(a), "{a:?} sticks out of its box {outer:?}");
            }
            for b in &rects[i + 1..] {
                assert!(!a.overlaps(b), "boxes {a:?} and {b:?} overlap");
            }
        }
    }
    // The branches of every module side by side in source order, their first nodes on one row: the branch
    // columns of an Inception module, and a residual block's body (a column) left of its identity (a node).
    let mut modules = 0;
    for cluster in &graph.clusters {
        if cluster.kind != ClusterKind::Block {
            continue;
        }
        let branches: Vec<_> = cluster
            .items
            .iter()
            .filter(|&&item| match item {
                Item::Cluster(c) => graph.clusters[c].kind == ClusterKind::Branch,
                Item::Node(n) => graph.nodes[n].lines.get(1).is_some_and(|l| l == "identity"),
            })
            .map(|&item| item_rect(&layout, item).expect("drawn"))
            .collect();
        let expected_branches = if cluster.label.starts_with("inc") {
            4
        } else {
            2
        };
        assert_eq!(branches.len(), expected_branches, "{}", cluster.label);
        for pair in branches.windows(2) {
            assert!(pair[0].right() <= pair[1].x, "{}: {pair:?}", cluster.label);
            assert!(
                (pair[0].y - pair[1].y).abs() < 0.5,
                "{}: {pair:?}",
                cluster.label
            );
        }
        // The join below every branch.
        let merge = cluster.items.iter().rev().find_map(|&item| match item {
            Item::Node(n) => Some(layout.nodes[n]),
            Item::Cluster(_) => None,
        });
        let merge = merge.expect("a join node");
        assert!(
            branches.iter().all(|b| b.bottom() <= merge.y),
            "{}",
            cluster.label
        );
        modules += 1;
    }
    // One Inception module and one residual block per `inception(` call in the generated source.
    assert_eq!(modules, 2 * source.matches("= inception(").count());
    // Side outputs hang to the right of the main-line nodes of their rows, and every edge points down.
    for (side, place) in graph.nodes.iter().zip(&layout.nodes).enumerate() {
        if !place.0.side {
            continue;
        }
        for (main, other) in graph.nodes.iter().zip(&layout.nodes).enumerate() {
            if !other.0.side && layout.rows[main] == layout.rows[side] {
                assert!(
                    place.1.x >= other.1.right(),
                    "side output {:?} is not right of {:?}",
                    place.0.lines,
                    other.0.lines
                );
            }
        }
    }
    for (edge, route) in graph.edges.iter().zip(&layout.edges) {
        assert!(route.end.1 > route.start.1, "{edge:?} does not point down");
    }
}

#[test]
fn the_500_node_timing_file_is_the_generators() {
    // bench/RESULTS.md times `archc graph bench/graph_500.arch`; it must stay what the benchmark generates.
    let committed = std::fs::read_to_string(path("bench/graph_500.arch")).expect("committed file");
    let (generated, nodes) = generated_networks::inception_chain(500);
    assert_eq!(committed, generated);
    assert_eq!(nodes, graph("bench/graph_500.arch", false).nodes.len());
}
