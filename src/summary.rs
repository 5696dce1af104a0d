//! Parameter and multiply-accumulate counts from the IR: the `archc summary` table.
//!
//! Parameters are trainable tensors only (batch-norm running statistics are buffers, as in PyTorch's
//! `parameters()`). MACs count the multiply-accumulates of convolutions and linear layers for one sample, the
//! convention behind torchvision's published GFLOPS figures.

use std::fmt;

use crate::check::input_size::{input_sizes, InputSizes};
use crate::ir::{Layer, Network, Node, NodeKind, Role, Shape};

/// One row of the table: a module (a layer, a block instance, a named chain or group) with its totals, like a
/// row of torchinfo's table, or an unnamed parameterless layer (`relu`, `flatten`) in the place it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The weight path (`inception3a.branch2.0`); empty for an unnamed layer, which has no weights to name.
    pub path: String,
    /// `conv2d`, `inception`, `chain`, `concat`, ...
    pub kind: String,
    pub output: Shape,
    pub params: u64,
    pub macs: u64,
    /// Nesting depth, for indentation: a module's members are one deeper.
    pub depth: usize,
    /// Part of a training-only side output.
    pub training_only: bool,
}

/// The totals and the per-node rows of one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub network: String,
    /// The declared input.
    pub input: Shape,
    /// The input heights and widths the network runs at (`None` for a flat input).
    pub input_sizes: Option<InputSizes>,
    pub rows: Vec<Row>,
    /// All parameters, side outputs included.
    pub params_total: u64,
    /// Parameters used in inference (side outputs excluded).
    pub params_inference: u64,
    /// MACs of one inference forward pass.
    pub macs_inference: u64,
    /// MACs of one training forward pass (side outputs included).
    pub macs_training: u64,
}

/// Parameters and MACs of one built-in layer with the given output shape.
pub fn layer_cost(layer: &Layer, output: Shape) -> (u64, u64) {
    layer.cost(output)
}

/// Parameters and MACs of a node and everything inside it.
pub fn node_cost(node: &Node) -> (u64, u64) {
    match &node.kind {
        NodeKind::Layer(layer) => layer_cost(layer, node.output),
        _ => node
            .children()
            .iter()
            .map(node_cost)
            .fold((0, 0), |(p, m), (cp, cm)| {
                (p.saturating_add(cp), m.saturating_add(cm))
            }),
    }
}

/// Builds the summary of a checked network.
pub fn summarize(network: &Network) -> Summary {
    let mut rows = Vec::new();
    let (mut params_total, mut params_inference, mut macs_inference, mut macs_training) =
        (0u64, 0u64, 0u64, 0u64);
    for node in &network.body {
        let training_only = node.role != Role::Main;
        let (params, macs) = node_cost(node);
        params_total = params_total.saturating_add(params);
        macs_training = macs_training.saturating_add(macs);
        if !training_only {
            params_inference = params_inference.saturating_add(params);
            macs_inference = macs_inference.saturating_add(macs);
        }
        push_rows(node, 0, false, training_only, &mut rows);
    }
    Summary {
        network: network.name.clone(),
        input: network.input,
        input_sizes: input_sizes(network),
        rows,
        params_total,
        params_inference,
        macs_inference,
        macs_training,
    }
}

/// The rows of `node` and of what it holds. `anonymous`: the node is an element of an unnamed chain or block
/// instance, whose members have no weight path either.
///
/// An unnamed chain, group or block instance is not a module: its members take its place, at its depth (an
/// unnamed `concat` that makes up a block's body lists the branches as the block's members, as torchvision's
/// `Inception` has `branch1` ... `branch4`). Each node is thus one row, at one depth, and the rows directly
/// below a row add up to its parameters and MACs.
fn push_rows(node: &Node, depth: usize, anonymous: bool, training_only: bool, rows: &mut Vec<Row>) {
    let anonymous = anonymous || node.name.is_none();
    let kind = node.kind_text();
    let is_layer = matches!(node.kind, NodeKind::Layer(_));
    if anonymous && !is_layer {
        // A group's branches keep their own names (an unnamed group is transparent in paths); the elements of
        // an unnamed chain or block instance are unnamed too.
        // A chain `a -> b` numbers its elements; a sequence, a block's body and a loop name theirs.
        let members_anonymous = match &node.kind {
            NodeKind::Chain(children) => children
                .iter()
                .enumerate()
                .all(|(index, child)| child.name.as_deref() == Some(index.to_string().as_str())),
            _ => false,
        };
        for child in node.children() {
            push_rows(child, depth, members_anonymous, training_only, rows);
        }
        return;
    }
    let (params, macs) = node_cost(node);
    rows.push(Row {
        path: if anonymous {
            String::new()
        } else {
            node.path.clone()
        },
        kind,
        output: node.output,
        params,
        macs,
        depth,
        training_only,
    });
    for child in node.children() {
        push_rows(child, depth + 1, false, training_only, rows);
    }
}

/// `6624904` as `6,624,904`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Summary {
    /// The table, limited to rows at most `max_depth` deep.
    pub fn table(&self, max_depth: usize) -> String {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.depth <= max_depth).collect();
        let label = |r: &Row| format!("{}{}", "  ".repeat(r.depth), r.path);
        let kind = |r: &Row| {
            if r.training_only && r.depth == 0 {
                format!("{} (training only)", r.kind)
            } else {
                r.kind.clone()
            }
        };
        let w_path = rows
            .iter()
            .map(|r| label(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let w_kind = rows.iter().map(|r| kind(r).len()).max().unwrap_or(0).max(4);
        let w_shape = rows
            .iter()
            .map(|r| r.output.to_string().len())
            .max()
            .unwrap_or(0)
            .max(12);
        let w_params = rows
            .iter()
            .map(|r| thousands(r.params).len())
            .max()
            .unwrap_or(0)
            .max(6);
        let w_macs = rows
            .iter()
            .map(|r| thousands(r.macs).len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut out = String::new();
        let header = format!(
            "{:<w_path$}  {:<w_kind$}  {:<w_shape$}  {:>w_params$}  {:>w_macs$}",
            "Layer", "Kind", "Output shape", "Params", "MACs"
        );
        let rule = "─".repeat(header.chars().count());
        let sizes = self
            .input_sizes
            .as_ref()
            .map_or_else(String::new, |sizes| format!(" ({})", sizes.describe()));
        out.push_str(&format!("{} — input {}{sizes}\n", self.network, self.input));
        if let Some(sizes) = &self.input_sizes {
            for (which, limit) in [
                ("smaller", sizes.limit_below()),
                ("larger", sizes.limit_above()),
            ] {
                if let Some(limit) = limit {
                    out.push_str(&format!("{which} inputs: {limit}\n"));
                }
            }
        }
        out.push_str(&format!("{rule}\n{header}\n{rule}\n"));
        for r in rows {
            out.push_str(&format!(
                "{:<w_path$}  {:<w_kind$}  {:<w_shape$}  {:>w_params$}  {:>w_macs$}\n",
                label(r),
                kind(r),
                r.output.to_string(),
                thousands(r.params),
                thousands(r.macs)
            ));
        }
        out.push_str(&format!("{rule}\n"));
        out.push_str(&format!(
            "Total params:            {}\n",
            thousands(self.params_total)
        ));
        out.push_str(&format!(
            "Inference params:        {} (training-only side outputs excluded)\n",
            thousands(self.params_inference)
        ));
        out.push_str(&format!(
            "Inference MACs/sample:   {} ({:.3} G)\n",
            thousands(self.macs_inference),
            self.macs_inference as f64 / 1e9
        ));
        out.push_str(&format!(
            "Training MACs/sample:    {} ({:.3} G, forward only)\n",
            thousands(self.macs_training),
            self.macs_training as f64 / 1e9
        ));
        out
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table(usize::MAX))
    }
}
