//! The checker's wording: the diagnostics that explain a disagreement — which branch of a concat or add is the
//! odd one out and why, a declared size that differs from what its row computes (with the arithmetic written
//! out), a call missing arguments, a statement missing its `=`. [`super`] walks the networks and decides what is
//! wrong; this module says it.

use super::*;

impl Checker<'_> {
    /// `conv1 conv2d(...)` parses as two statements, an unknown layer `conv1` and an unnamed `conv2d(...)`: when
    /// an unknown bare name is followed by an unnamed statement, the likelier mistake is a missing `=`.
    pub(super) fn hint_missing_equals(
        &mut self,
        statement: &LayerStatement,
        next: Option<&Statement>,
    ) {
        let ([Op::Call(call)], None, None) = (
            statement.chain.as_slice(),
            &statement.name,
            &statement.side_from,
        ) else {
            return;
        };
        let Some(Statement::Layer(next)) = next else {
            return;
        };
        if !call.args.is_empty()
            || call.span != call.callee.span
            || next.name.is_some()
            || next.side_from.is_some()
        {
            return;
        }
        let name = &call.callee.name;
        let Some(diagnostic) = self
            .diagnostics
            .iter_mut()
            .rev()
            .find(|d| d.code == Code::UnknownCallee && d.primary.span == call.callee.span)
        else {
            return;
        };
        diagnostic.primary.message = format!("`{name}` is read as a layer of its own");
        diagnostic.help = Some(format!(
            "to name the statement that follows, write `{name} = ...`"
        ));
        diagnostic.notes.push(
            "a statement is `NAME = LAYER -> LAYER ...`; without `=` the name is a layer call"
                .to_string(),
        );
    }

    pub(super) fn report_missing(&mut self, call: &Call, missing: &[&str], signature: &str) {
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.diagnostics.push(
            Diagnostic::error(
                Code::MissingArgument,
                call.span,
                format!(
                    "`{}` is missing {} {list}",
                    call.callee.name,
                    if missing.len() == 1 {
                        "argument"
                    } else {
                        "arguments"
                    }
                ),
            )
            .with_label(format!("missing {list}"))
            .with_note(format!("signature: {signature}")),
        );
    }

    /// Branches that split evenly between shapes: no side is the suspect, so one diagnostic shows them all.
    pub(super) fn report_disagreement(
        &mut self,
        group: &ast::Group,
        input: Shape,
        branches: &[Node],
    ) {
        let (code, what, verb) = match group.kind {
            GroupKind::Concat => (Code::ConcatSpatialMismatch, "spatial size", "concatenate"),
            GroupKind::Add => (Code::AddShapeMismatch, "shape", "sum"),
            GroupKind::Mul => (Code::AddShapeMismatch, "shape", "multiply"),
        };
        let describe = |node: &Node| {
            node.name
                .as_ref()
                .map_or_else(|| "branch".to_string(), |n| format!("`{n}`"))
        };
        let listing = branches
            .iter()
            .map(|b| {
                format!(
                    "{} gives {}",
                    describe(b),
                    spatial_text(b.output, group.kind)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut diagnostic = Diagnostic::error(
            code,
            group.keyword_span,
            format!(
                "{} branches disagree on {what}: {listing}",
                group.kind.keyword()
            ),
        )
        .with_label(format!("cannot {verb} these branches"));
        for (branch, statement) in branches.iter().zip(&group.branches) {
            diagnostic = diagnostic.with_secondary(statement.span, format!("{}", branch.output));
        }
        for branch in branches {
            if let Some(culprit) = spatial_culprit(branch) {
                if let NodeKind::Layer(layer) = &culprit.kind {
                    if let Some(arithmetic) = layer.formula(culprit.input, culprit.output) {
                        diagnostic =
                            diagnostic.with_note(format!("{}: {arithmetic}", culprit.path));
                    }
                }
            }
        }
        // A residual whose shortcut passes its input through, next to a main path that changes the shape: the
        // shortcut needs a projection (a 1×1 convolution with the main path's channels and stride).
        let passes_through = branches.iter().find(|b| b.output == input);
        let changed: Vec<&Node> = branches.iter().filter(|b| b.output != input).collect();
        if let (GroupKind::Add, Some(shortcut), Some(first)) =
            (group.kind, passes_through, changed.first())
        {
            if changed.iter().all(|b| b.output == first.output) {
                if let Some(projection) = projection(input, first.output) {
                    diagnostic = diagnostic.with_help(format!(
                        "{} passes its input {input} through unchanged; to add it to {} it needs a projection, e.g. \
                         `{} = {projection}`",
                        describe(shortcut),
                        first.output,
                        shortcut.name.as_deref().unwrap_or("shortcut"),
                    ));
                }
            }
        }
        self.diagnostics.push(diagnostic);
    }

    /// A concat of flat vectors and feature maps: the odd ones out are reported.
    pub(super) fn report_concat_rank_mix(&mut self, group: &ast::Group, branches: &[Node]) {
        let is_flat = |b: &Node| matches!(b.output, Shape::Flat { .. });
        let flat = branches.iter().filter(|b| is_flat(b)).count();
        let report_flat = flat * 2 <= branches.len();
        let listing = branches
            .iter()
            .map(|b| format!("{} {}", b.name.as_deref().unwrap_or("branch"), b.output))
            .collect::<Vec<_>>()
            .join(", ");
        for (branch, statement) in branches.iter().zip(&group.branches) {
            if is_flat(branch) != report_flat {
                continue;
            }
            let name = branch.name.as_deref().unwrap_or("branch");
            let message = if report_flat {
                format!("concat branch `{name}` is a flat vector {}, the other branches are feature maps", branch.output)
            } else {
                format!("concat branch `{name}` is a feature map {}, the other branches are flat vectors", branch.output)
            };
            let mut diagnostic = Diagnostic::error(Code::ConcatSpatialMismatch, statement.span, message)
                .with_label(format!("produces {}", branch.output))
                .with_note(format!("branch outputs: {listing}"))
                .with_note("concat joins along the channel axis: its branches are all [C, H, W] maps of one size, or all flat vectors");
            let mut flatten = None;
            branch.walk(&mut |n: &Node| {
                if matches!(n.kind, NodeKind::Layer(Layer::Flatten(_))) {
                    flatten = Some((n.span, n.input));
                }
            });
            if let (true, Some((span, flattened))) = (report_flat, flatten) {
                diagnostic.primary.span = span;
                diagnostic.primary.message = format!("flattens {flattened} to {}", branch.output);
                diagnostic = diagnostic
                    .with_secondary(statement.span, "in this branch")
                    .with_help("flatten after the concat, not inside one branch");
            }
            self.diagnostics.push(diagnostic);
        }
    }

    pub(super) fn report_declared_mismatch(
        &mut self,
        statement: &LayerStatement,
        node: &Node,
        declared_span: Span,
        declared: Shape,
    ) {
        let who = statement
            .name
            .as_ref()
            .map_or_else(|| "this statement".to_string(), |n| format!("`{}`", n.name));
        let inferred = node.output;
        let chain_span = statement
            .chain
            .first()
            .map(|op| {
                op.span()
                    .to(statement.chain.last().map_or(op.span(), Op::span))
            })
            .unwrap_or(statement.span);
        let message = match (inferred, declared) {
            (
                Shape::Map { c, h, w },
                Shape::Map {
                    c: dc,
                    h: dh,
                    w: dw,
                },
            ) if (h, w) == (dh, dw) => {
                format!("{who} produces {c} channels, the declaration says {dc}")
            }
            (
                Shape::Map { c, h, w },
                Shape::Map {
                    c: dc,
                    h: dh,
                    w: dw,
                },
            ) if c == dc => {
                format!("{who} produces {h}×{w} maps, the declaration says {dh}×{dw}")
            }
            (Shape::Flat { features }, Shape::Flat { features: declared }) => {
                format!("{who} produces {features} features, the declaration says {declared}")
            }
            _ => format!("{who} produces {inferred}, the declaration says {declared}"),
        };
        let mut diagnostic = Diagnostic::error(Code::DeclaredShapeMismatch, chain_span, message)
            .with_label(format!("produces {inferred}"))
            .with_secondary(declared_span, "declared here");
        if inferred.channels() != declared.channels() {
            if let Some(parts) = concat_parts(node) {
                let names = parts
                    .iter()
                    .map(|(n, c)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(" + ");
                diagnostic =
                    diagnostic.with_note(format!("concat of {names} = {}", inferred.channels()));
            }
        }
        if let (Shape::Flat { features }, Shape::Flat { features: expected }) = (inferred, declared)
        {
            // Flattening a map that was not pooled down to 1×1 multiplies the features by its area.
            let mut flattened = None;
            node.walk(&mut |n: &Node| {
                if matches!(n.kind, NodeKind::Layer(Layer::Flatten(_))) {
                    flattened = Some(n.input);
                }
            });
            if let Some(Shape::Map { c, h, w }) = flattened {
                diagnostic = diagnostic.with_note(format!(
                    "flatten turns the [{c}, {h}, {w}] map into {c} × {h} × {w} = {} features",
                    c.saturating_mul(h).saturating_mul(w)
                ));
                if c == expected && (h, w) != (1, 1) && features != expected {
                    diagnostic = diagnostic.with_help(format!(
                        "{expected} features need a 1×1 map: pool the {h}×{w} map down to 1×1 before flattening"
                    ));
                }
            }
        }
        if let (Shape::Map { h, w, .. }, Shape::Map { h: dh, w: dw, .. }) = (inferred, declared) {
            if (h, w) != (dh, dw) {
                let changed = resizing_layers(node);
                for n in changed.iter().take(4) {
                    if let NodeKind::Layer(layer) = &n.kind {
                        if let Some(arithmetic) = layer.formula(n.input, n.output) {
                            diagnostic = diagnostic.with_note(format!(
                                "{}: {arithmetic}",
                                display_path(&n.path, layer)
                            ));
                        }
                    }
                }
                if let [only] = changed.as_slice() {
                    if let NodeKind::Layer(layer) = &only.kind {
                        if let Some(help) = layer.keep_size_hint(only.input, declared) {
                            diagnostic = diagnostic.with_help(help);
                        }
                    }
                }
            }
        }
        self.diagnostics.push(diagnostic);
    }
}

pub(super) fn spatial_text(shape: Shape, kind: GroupKind) -> String {
    match (kind, shape) {
        (GroupKind::Concat, Shape::Map { h, w, .. }) => format!("{h}×{w}"),
        (_, shape) => shape.to_string(),
    }
}

/// The layer inside a branch that changed the spatial size, when exactly one did.
pub(super) fn spatial_culprit(branch: &Node) -> Option<&Node> {
    match resizing_layers(branch).as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// The layers inside `node`, in source order, whose output map has a different height or width than their input.
fn resizing_layers(node: &Node) -> Vec<&Node> {
    let mut changed = Vec::new();
    node.walk(&mut |n: &Node| {
        if let (NodeKind::Layer(_), Shape::Map { h, w, .. }, Shape::Map { h: oh, w: ow, .. }) =
            (&n.kind, n.input, n.output)
        {
            if (h, w) != (oh, ow) {
                changed.push(n);
            }
        }
    });
    changed
}

/// A 1×1 convolution (with batch norm) taking `from` to `to`: `conv2d(128, 1, stride = 2) -> batch_norm`.
fn projection(from: Shape, to: Shape) -> Option<String> {
    let (Shape::Map { h, w, .. }, Shape::Map { c, h: oh, w: ow }) = (from, to) else {
        return None;
    };
    // A 1×1 convolution without padding gives floor((n − 1) / s) + 1; the smallest stride giving `oh` rows.
    let stride = if oh <= 1 { h } else { (h - 1) / oh + 1 };
    let fits = |n: u64, out: u64| stride >= 1 && (n - 1) / stride + 1 == out;
    if !(fits(h, oh) && fits(w, ow)) {
        return None;
    }
    Some(if stride == 1 {
        format!("conv2d({c}, 1) -> batch_norm")
    } else {
        format!("conv2d({c}, 1, stride = {stride}) -> batch_norm")
    })
}

fn display_path(path: &str, layer: &Layer) -> String {
    if path.is_empty() {
        layer.kind_name().to_string()
    } else {
        format!("{path} ({})", layer.kind_name())
    }
}

/// For a node ending in a concat: the concat's path and its branches' channel counts.
fn concat_parts(node: &Node) -> Option<Vec<(String, u64)>> {
    match &node.kind {
        NodeKind::Concat(branches) => Some(
            branches
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    (
                        b.name.clone().unwrap_or_else(|| format!("branch {i}")),
                        b.output.channels(),
                    )
                })
                .collect(),
        ),
        NodeKind::Block { body, .. } => body
            .iter()
            .rev()
            .find(|n| n.role == Role::Main)
            .and_then(concat_parts),
        NodeKind::Chain(children) => children.last().and_then(concat_parts),
        _ => None,
    }
}
