//! The DOT writer: the graph model as Graphviz text, for `archc graph --format dot` (clusters per block instance
//! and per branch, so Graphviz draws branches as columns; side outputs dashed and grey; errors red).

use std::fmt::Write as _;

use super::{ClusterKind, Graph, Item, NodeStyle, GREY, GREY_FILL, RED, RED_FILL};

fn dot_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Graph {
    /// Graphviz DOT text: top to bottom, a cluster per block instance (and per branch, so branches read as
    /// columns), side outputs dashed and grey, errors red.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        out.push_str("digraph archc {\n");
        let mut label = self.title.clone();
        for line in &self.unplaced {
            label.push('\n');
            label.push_str(line);
        }
        let _ = writeln!(
            out,
            "    graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", fontsize=12, nodesep=0.2, ranksep=0.3, label={}];",
            dot_string(&label)
        );
        out.push_str("    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=10];\n");
        out.push_str("    edge [color=\"#5f6368\", arrowsize=0.6];\n");
        for item in &self.items {
            self.dot_item(&mut out, *item, 1);
        }
        for edge in &self.edges {
            let _ = write!(out, "    n{} -> n{}", edge.from, edge.to);
            if edge.side {
                let _ = write!(out, " [style=dashed, color=\"{GREY}\"]");
            }
            out.push_str(";\n");
        }
        out.push_str("}\n");
        out
    }

    fn dot_item(&self, out: &mut String, item: Item, depth: usize) {
        let indent = "    ".repeat(depth);
        match item {
            Item::Node(id) => {
                let node = &self.nodes[id];
                let mut attributes = vec![format!(
                    "label={}",
                    dot_string(&self.label_lines(id).join("\n"))
                )];
                if !node.errors.is_empty() {
                    attributes.push(format!(
                        "color=\"{RED}\", fontcolor=\"{RED}\", fillcolor=\"{RED_FILL}\", penwidth=2"
                    ));
                    attributes.push(format!("tooltip={}", dot_string(&node.messages.join("\n"))));
                } else if node.side {
                    attributes.push(format!(
                        "style=\"rounded,filled,dashed\", color=\"{GREY}\", fontcolor=\"{GREY}\", fillcolor=\"{GREY_FILL}\""
                    ));
                } else if node.style == NodeStyle::Unchecked {
                    attributes.push(format!(
                        "style=\"rounded,filled,dotted\", fontcolor=\"{GREY}\""
                    ));
                }
                match node.style {
                    NodeStyle::Input => attributes.push("fillcolor=\"#e8f0fe\"".to_string()),
                    NodeStyle::Merge if node.errors.is_empty() && !node.side => {
                        attributes.push("fillcolor=\"#fef7e0\"".to_string())
                    }
                    _ => {}
                }
                let _ = writeln!(out, "{indent}n{id} [{}];", attributes.join(", "));
            }
            Item::Cluster(id) => {
                let cluster = &self.clusters[id];
                let _ = writeln!(out, "{indent}subgraph cluster_{id} {{");
                let _ = writeln!(
                    out,
                    "{indent}    label={};",
                    dot_string(&self.cluster_label(id))
                );
                let style = match (cluster.kind, !cluster.errors.is_empty(), cluster.side) {
                    (_, true, _) => format!("style=\"rounded\", color=\"{RED}\", fontcolor=\"{RED}\", penwidth=2"),
                    (ClusterKind::Branch, ..) => "style=\"rounded,dotted\", color=\"#bdc1c6\", fontcolor=\"#80868b\", fontsize=9, labeljust=l".to_string(),
                    (_, false, true) => format!("style=\"rounded,dashed\", color=\"{GREY}\", fontcolor=\"{GREY}\""),
                    (_, false, false) => "style=\"rounded\", color=\"#9aa0a6\", labeljust=l".to_string(),
                };
                let _ = writeln!(out, "{indent}    {style};");
                for item in &cluster.items {
                    self.dot_item(out, *item, depth + 1);
                }
                let _ = writeln!(out, "{indent}}}");
            }
        }
    }
}
