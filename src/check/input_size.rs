//! Checking, continued: the input heights and widths a checked network runs at, besides the one it declares.
//!
//! PyTorch runs a CNN at any input size where every layer is valid; torchvision's classifiers pool adaptively
//! before their `flatten -> linear`, so they run at any size from a smallest one up (GoogLeNet from 15×15). The
//! checker proved the declared size; this module finds the others by *replaying* the checked network (the
//! [IR](crate::ir)) at another input size: every layer's own shape rule (its `LayerDef::infer`, the formulas
//! of `archc-shape`) is applied again, concat and add branches must still agree, and every layer must come out
//! with the configuration — the weight shapes — it was checked with (a `linear` after a `flatten` of a map
//! whose size follows the input gets other in-features: that size does not run). Declared sizes are not
//! consulted: they describe the declared input.
//!
//! Each axis is scanned on its own, the other at its declared size: every rule works on one axis, so the sizes
//! that run are the product of the two ranges found (a flattened map is the only place the axes meet, and there
//! the map's size must stay the declared one on each axis).
//!
//! Validity is not monotonic (a concat of a 2×2/2 pool and a 3×3/2 convolution with padding 1 agrees on even
//! sizes only), so the range reported is the largest run of sizes around the declared one in which every size
//! is valid, found without trying every size:
//!
//! * every layer steps by one output row for every `stride` input rows (see [`Resize`]), so with `L` the least
//!   common multiple of the strides along every path from the input (the *period*: 32 for GoogLeNet), a node's
//!   size at `n + L` is its size at `n` plus `L / S` (`S` its path's stride; constant after adaptive pooling),
//!   wherever every window fits. Whether every window fits is monotonic in `n` (each size is a non-decreasing
//!   function of the input), and whether branches agree or a flattened map keeps its size repeats with period
//!   `L` wherever windows fit; so
//! * upwards, the sizes `d + 1 ..= d + L` (`d` declared) are tried: if all run, so does every larger size (a
//!   disagreement or a changed weight shape at some `n > d` would show at `n`'s counterpart in that window; and
//!   one at `d + L` catches branches whose strides differ, which drift apart);
//! * downwards, `d - L .. d` are tried from the top; if all run, below them a size runs exactly when every
//!   window fits, which is monotonic: the smallest such size is found by bisection.
//!
//! The scan visits at most [`MAX_SCAN_NODES`] nodes and follows periods up to [`MAX_PERIOD`]; beyond either it
//! reports the sizes it verified, and why it stopped ([`Limit::Unverified`]). Side outputs count: a size runs
//! when the training forward, side outputs included, is valid (stricter than PyTorch in eval mode, which would
//! run a size that breaks only a training-only head; no shipped network has one).

use std::fmt;

use crate::ir::{Hw, Layer, Network, Node, NodeKind, Repeat, Role, Shape};
use crate::layers::{builtin, Args, BoundArg, Resize, MAX_DIM};

/// The most IR nodes the scan of one network visits, all sizes together (GoogLeNet: 312 nodes, 43,903 visits).
pub const MAX_SCAN_NODES: usize = 2_000_000;
/// The longest period (least common multiple of the strides along the network's paths) the scan follows.
pub const MAX_PERIOD: u64 = 4096;

/// The input sizes a network runs at: a range per axis, each containing the declared size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSizes {
    /// The declared height and width.
    pub declared: Hw,
    pub height: SizeRange,
    pub width: SizeRange,
    /// Why sizes below the ranges do not run.
    pub below: Limits,
    /// Why sizes above the ranges do not run (all `None` when every larger size runs).
    pub above: Limits,
}

/// The sizes along one axis that run: `min ..= max`, or every size from `min` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    pub min: u64,
    pub max: Option<u64>,
}

/// What happens one size beyond a range's bound: on the height alone (the width as declared), on the width
/// alone, and on both axes. `None` where there is no bound (a minimum of 1, no maximum), or where that size
/// turns out to run after all (both axes beyond: a flattened map can keep its number of elements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub height: Option<Limit>,
    pub width: Option<Limit>,
    pub both: Option<Limit>,
}

/// Why a range ends where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The size just beyond breaks a layer.
    Breaks(Failure),
    /// The scan stopped before it could tell (too many nodes, or too long a period): `at` is the first size
    /// not verified.
    Unverified { at: Hw, why: String },
}

/// The first thing that breaks when the network runs at input size `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The input height and width.
    pub at: Hw,
    /// The node's weight path (empty for an unnamed top-level layer).
    pub path: String,
    /// The node, as messages name it: `` `maxpool3` (max_pool 3×3/2 ceil) ``.
    pub node: String,
    /// What goes wrong there: `gets a [480, 1, 1] map: max_pool window of 3 is larger than ...`.
    pub problem: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}, {} {}", hw_text(self.at), self.node, self.problem)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Breaks(failure) => failure.fmt(f),
            Limit::Unverified { at, why } => write!(f, "at {}, not verified: {why}", hw_text(*at)),
        }
    }
}

impl InputSizes {
    /// Whether every size from the minimum up runs, on both axes.
    pub fn open_ended(&self) -> bool {
        self.height.max.is_none() && self.width.max.is_none()
    }

    /// Whether the declared size is the only one that runs.
    pub fn declared_only(&self) -> bool {
        let only =
            |range: SizeRange, declared: u64| range.min == declared && range.max == Some(declared);
        only(self.height, self.declared[0]) && only(self.width, self.declared[1])
    }

    /// The smallest valid height and width.
    pub fn min(&self) -> Hw {
        [self.height.min, self.width.min]
    }

    /// The largest valid height and width, if there is a largest.
    pub fn max(&self) -> [Option<u64>; 2] {
        [self.height.max, self.width.max]
    }

    /// The sizes that run, in a few words for `archc summary`: `smallest valid: 15×15; any larger size runs`.
    pub fn describe(&self) -> String {
        if self.open_ended() {
            return if self.min() == [1, 1] {
                "any size runs".to_string()
            } else {
                format!(
                    "smallest valid: {}; any larger size runs",
                    hw_text(self.min())
                )
            };
        }
        if self.declared_only() {
            return "only this size runs".to_string();
        }
        let range = |range: SizeRange| match range.max {
            Some(max) if max == range.min => max.to_string(),
            Some(max) => format!("{}–{max}", range.min),
            None => format!("{} and up", range.min),
        };
        match (self.height, self.width) {
            (
                SizeRange {
                    min: min_h,
                    max: Some(max_h),
                },
                SizeRange {
                    min: min_w,
                    max: Some(max_w),
                },
            ) => format!(
                "sizes from {} to {} run",
                hw_text([min_h, min_w]),
                hw_text([max_h, max_w])
            ),
            (height, width) => format!("heights {}, widths {} run", range(height), range(width)),
        }
    }

    /// Why smaller inputs do not run: on both axes if that applies, else on one.
    pub fn limit_below(&self) -> Option<&Limit> {
        self.below.first()
    }

    /// Why larger inputs do not run: on both axes if that applies, else on one.
    pub fn limit_above(&self) -> Option<&Limit> {
        self.above.first()
    }
}

impl Limits {
    fn first(&self) -> Option<&Limit> {
        self.both
            .as_ref()
            .or(self.height.as_ref())
            .or(self.width.as_ref())
    }
}

/// `14×14`.
fn hw_text([h, w]: Hw) -> String {
    format!("{h}×{w}")
}

/// The input sizes `network` runs at; `None` for a network whose input is a flat vector (it has no height or
/// width to change).
pub fn input_sizes(network: &Network) -> Option<InputSizes> {
    scan(network, MAX_SCAN_NODES).map(|(sizes, _)| sizes)
}

/// [`input_sizes`] within a budget of `budget` node visits; also returns how many it made.
fn scan(network: &Network, budget: usize) -> Option<(InputSizes, usize)> {
    let Shape::Map { h, w, .. } = network.input else {
        return None;
    };
    let declared = [h, w];
    let mut replay = Replay {
        network,
        budget,
        compare: true,
        flattened: None,
    };
    // The replay at the declared size must give exactly the checked sizes; should it ever not, nothing it says
    // about other sizes can be trusted.
    let fixed = |why: String| {
        let unverified = |at: Hw| {
            Some(Limit::Unverified {
                at,
                why: why.clone(),
            })
        };
        let range = |d: u64| SizeRange {
            min: d,
            max: Some(d),
        };
        InputSizes {
            declared,
            height: range(h),
            width: range(w),
            below: Limits {
                height: unverified([h - 1, w]).filter(|_| h > 1),
                width: unverified([h, w - 1]).filter(|_| w > 1),
                both: unverified([h - 1, w - 1]).filter(|_| h > 1 && w > 1),
            },
            above: Limits {
                height: unverified([h + 1, w]),
                width: unverified([h, w + 1]),
                both: unverified([h + 1, w + 1]),
            },
        }
    };
    match replay.run(declared) {
        Ok(()) => {}
        Err(Stop::Budget) => {
            let why =
                format!("the network is too large to scan other sizes (more than {budget} nodes)");
            return Some((fixed(why), budget));
        }
        Err(_) => {
            let why = "internal: replaying the network does not reproduce its checked sizes";
            return Some((fixed(why.to_string()), budget - replay.budget));
        }
    }
    replay.compare = false;
    let periods = [period(network, 0), period(network, 1)];
    let (height, below_h, above_h) = replay.axis(0, declared, periods[0]);
    let (width, below_w, above_w) = replay.axis(1, declared, periods[1]);
    let mut below_both = None;
    if height.min > 1 && width.min > 1 {
        below_both = replay.limit([height.min - 1, width.min - 1]);
    }
    let mut above_both = None;
    if let (Some(max_h), Some(max_w)) = (height.max, width.max) {
        above_both = replay.limit([max_h + 1, max_w + 1]);
    }
    let sizes = InputSizes {
        declared,
        height,
        width,
        below: Limits {
            height: below_h,
            width: below_w,
            both: below_both,
        },
        above: Limits {
            height: above_h,
            width: above_w,
            both: above_both,
        },
    };
    Some((sizes, budget - replay.budget))
}

/// The least common multiple of the strides along every path from the input on `axis` (0 height, 1 width),
/// or `None` when it exceeds [`MAX_PERIOD`].
fn period(network: &Network, axis: usize) -> Option<u64> {
    let mut period = Some(1);
    let mut named: Vec<(&str, Step)> = Vec::new();
    let mut current = Step::Grows(1);
    for node in &network.body {
        let from = match &node.role {
            Role::Main => current,
            Role::Side { source } => named
                .iter()
                .rev()
                .find(|(name, _)| name == source)
                .map_or(current, |(_, step)| *step),
        };
        let out = path_stride(node, from, axis, &mut period);
        if node.role == Role::Main {
            current = out;
            if let Some(name) = &node.name {
                named.push((name, out));
            }
        }
    }
    period
}

/// How a node's size along one axis moves with the input's: one step every `n` input rows, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Grows(u64),
    Fixed,
}

/// The stride from the network's input to `node`'s output, given the stride to its input; folds every stride
/// met into `period`.
fn path_stride(node: &Node, input: Step, axis: usize, period: &mut Option<u64>) -> Step {
    let output = match &node.kind {
        NodeKind::Layer(layer) => match (layer.resize(), input) {
            (Resize::Fixed, _) => Step::Fixed,
            (_, Step::Fixed) | (Resize::Keeps, _) => input,
            (Resize::Strided(stride), Step::Grows(s)) => {
                Step::Grows(s.saturating_mul(stride[axis]).min(MAX_PERIOD + 1))
            }
        },
        NodeKind::Block { body: nodes, .. }
        | NodeKind::Chain(nodes)
        | NodeKind::Repeat(Repeat { nodes, .. }) => nodes
            .iter()
            .fold(input, |step, child| path_stride(child, step, axis, period)),
        NodeKind::Concat(branches) | NodeKind::Add(branches) | NodeKind::Mul(branches) => branches
            .iter()
            .map(|branch| path_stride(branch, input, axis, period))
            .fold(Step::Fixed, |a, b| match (a, b) {
                (Step::Grows(x), Step::Grows(y)) => Step::Grows(lcm(x, y)),
                (Step::Grows(x), Step::Fixed) | (Step::Fixed, Step::Grows(x)) => Step::Grows(x),
                (Step::Fixed, Step::Fixed) => Step::Fixed,
            }),
    };
    if let (Step::Grows(s), Some(p)) = (output, *period) {
        let joined = lcm(p, s);
        *period = (joined <= MAX_PERIOD).then_some(joined);
    }
    output
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The least common multiple, saturating (callers cap it far below `u64::MAX`).
fn lcm(a: u64, b: u64) -> u64 {
    if a == 0 || b == 0 {
        return a.max(b);
    }
    (a / gcd(a, b)).saturating_mul(b)
}

/// Why a replay stopped.
enum Stop {
    Breaks(Failure),
    /// The node budget ran out.
    Budget,
    /// At the declared size, a node came out with another size than the checker gave it.
    Mismatch,
}

/// The checked network run again, shapes only, at another input size.
struct Replay<'n> {
    network: &'n Network,
    /// Nodes that may still be visited.
    budget: usize,
    /// Whether every node must give the size the checker gave it (the replay at the declared size).
    compare: bool,
    /// The last `flatten` replayed: the map it read, and the map it read at the declared size.
    flattened: Option<(Shape, Shape)>,
}

impl Replay<'_> {
    /// The range of sizes along `axis` around the declared one, and why it ends where it does.
    fn axis(
        &mut self,
        axis: usize,
        declared: Hw,
        period: Option<u64>,
    ) -> (SizeRange, Option<Limit>, Option<Limit>) {
        let d = declared[axis];
        let at = |n: u64| {
            let mut size = declared;
            size[axis] = n;
            size
        };
        let too_long = |period: Option<u64>| {
            match period {
            Some(_) => String::new(),
            None => format!(
                "the strides along the network's paths repeat only after more than {MAX_PERIOD} sizes"
            ),
        }
        };
        let budget = format!("the scan's budget of {MAX_SCAN_NODES} nodes ran out");
        let window = period.unwrap_or(MAX_PERIOD);

        // Upwards: d + 1 ..= d + L.
        let top = d.saturating_add(window).min(MAX_DIM as u64);
        let mut max = None;
        let mut above = None;
        for n in d + 1..=top {
            match self.run(at(n)) {
                Ok(()) => {}
                Err(Stop::Breaks(failure)) => {
                    max = Some(n - 1);
                    above = Some(Limit::Breaks(failure));
                    break;
                }
                Err(_) => {
                    max = Some(n - 1);
                    above = Some(Limit::Unverified {
                        at: at(n),
                        why: budget.clone(),
                    });
                    break;
                }
            }
        }
        if above.is_none() && period.is_none() && top < MAX_DIM as u64 {
            max = Some(top);
            above = Some(Limit::Unverified {
                at: at(top + 1),
                why: too_long(period),
            });
        }

        // Downwards: d - 1 down to d - L, then bisection below.
        let bottom = d.saturating_sub(window).max(1);
        for n in (bottom..d).rev() {
            match self.run(at(n)) {
                Ok(()) => {}
                Err(Stop::Breaks(failure)) => {
                    return (
                        SizeRange { min: n + 1, max },
                        Some(Limit::Breaks(failure)),
                        above,
                    );
                }
                Err(_) => {
                    let limit = Limit::Unverified {
                        at: at(n),
                        why: budget,
                    };
                    return (SizeRange { min: n + 1, max }, Some(limit), above);
                }
            }
        }
        if bottom == 1 {
            return (SizeRange { min: 1, max }, None, above);
        }
        if period.is_none() {
            let limit = Limit::Unverified {
                at: at(bottom - 1),
                why: too_long(period),
            };
            return (SizeRange { min: bottom, max }, Some(limit), above);
        }
        // Every size in `valid ..= d` runs; find the smallest size that does.
        let mut valid = bottom;
        let mut broken: Option<(u64, Failure)> = None;
        match self.run(at(1)) {
            Ok(()) => return (SizeRange { min: 1, max }, None, above),
            Err(Stop::Breaks(failure)) => broken = Some((1, failure)),
            Err(_) => {}
        }
        let Some((mut lo, mut failure)) = broken else {
            let limit = Limit::Unverified {
                at: at(valid - 1),
                why: budget,
            };
            return (SizeRange { min: valid, max }, Some(limit), above);
        };
        while valid - lo > 1 {
            let mid = lo + (valid - lo) / 2;
            match self.run(at(mid)) {
                Ok(()) => valid = mid,
                Err(Stop::Breaks(f)) => {
                    lo = mid;
                    failure = f;
                }
                Err(_) => {
                    let limit = Limit::Unverified {
                        at: at(valid - 1),
                        why: budget,
                    };
                    return (SizeRange { min: valid, max }, Some(limit), above);
                }
            }
        }
        (
            SizeRange { min: valid, max },
            Some(Limit::Breaks(failure)),
            above,
        )
    }

    /// What stops the network at `size`, if anything (a size that runs gives `None`).
    fn limit(&mut self, size: Hw) -> Option<Limit> {
        match self.run(size) {
            Ok(()) => None,
            Err(Stop::Breaks(failure)) => Some(Limit::Breaks(failure)),
            Err(_) => Some(Limit::Unverified {
                at: size,
                why: format!("the scan's budget of {MAX_SCAN_NODES} nodes ran out"),
            }),
        }
    }

    /// Runs the network's shapes at input size `[h, w]`.
    fn run(&mut self, size: Hw) -> Result<(), Stop> {
        let network = self.network;
        let input = Shape::Map {
            c: network.input.channels(),
            h: size[0],
            w: size[1],
        };
        self.flattened = None;
        let mut current = input;
        let mut named: Vec<(&str, Shape)> = Vec::new();
        for node in &network.body {
            let from = match &node.role {
                Role::Main => current,
                Role::Side { source } => named
                    .iter()
                    .rev()
                    .find(|(name, _)| name == source)
                    .map(|(_, shape)| *shape)
                    .ok_or(Stop::Mismatch)?,
            };
            let output = self.node(node, from).map_err(|stop| match stop {
                Stop::Breaks(mut failure) => {
                    failure.at = size;
                    Stop::Breaks(failure)
                }
                other => other,
            })?;
            if node.role == Role::Main {
                current = output;
                if let Some(name) = &node.name {
                    named.push((name, output));
                }
            }
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, input: Shape) -> Result<Shape, Stop> {
        self.budget = self.budget.checked_sub(1).ok_or(Stop::Budget)?;
        let output = match &node.kind {
            NodeKind::Layer(layer) => self.layer(node, layer, input)?,
            NodeKind::Block { body: nodes, .. }
            | NodeKind::Chain(nodes)
            | NodeKind::Repeat(Repeat { nodes, .. }) => {
                let mut current = input;
                for child in nodes {
                    current = self.node(child, current)?;
                }
                current
            }
            NodeKind::Concat(branches) | NodeKind::Add(branches) | NodeKind::Mul(branches) => {
                let concat = matches!(node.kind, NodeKind::Concat(_));
                let mut outputs = Vec::new();
                for branch in branches {
                    outputs.push(self.node(branch, input)?);
                }
                match (&node.kind, super::broadcast(&outputs)) {
                    (NodeKind::Mul(_), Some(shape)) => shape,
                    _ => combine(node, concat, branches, &outputs)?,
                }
            }
        };
        if self.compare && output != node.output {
            return Err(Stop::Mismatch);
        }
        Ok(output)
    }

    fn layer(&mut self, node: &Node, layer: &Layer, input: Shape) -> Result<Shape, Stop> {
        let Some(builtin) = builtin(layer.kind_name()) else {
            return Err(Stop::Mismatch);
        };
        // The layer's own shape rule, with the arguments it was checked with; only its diagnostics' messages
        // are read, so every argument is located at the call.
        let values = builtin
            .params
            .iter()
            .map(|param| {
                let arg = BoundArg {
                    value: None,
                    span: node.span,
                    given: false,
                    source: None,
                };
                (param.name, arg)
            })
            .collect();
        let mut diagnostics = Vec::new();
        let mut args = Args {
            layer: builtin.name,
            call_span: node.span,
            values,
            diagnostics: &mut diagnostics,
            failed: false,
        };
        let inferred = layer.clone().infer(&mut args, input);
        let Some((replayed, output)) = inferred else {
            let problem = diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or("fails", |d| d.message.as_str());
            return Err(self.breaks(node, format!("gets {}: {problem}", shape_text(input))));
        };
        if matches!(layer, Layer::Flatten(_)) {
            self.flattened = Some((input, node.input));
        }
        if replayed != *layer {
            let problem = match (input, node.input, self.flattened) {
                (
                    Shape::Flat { features },
                    Shape::Flat { features: expected },
                    Some((map, expected_map)),
                ) if map.elements() == Some(features)
                    && expected_map.elements() == Some(expected) =>
                {
                    format!(
                        "gets {features} features, a flattened {map} map, where its weights take {expected}, \
                         a flattened {expected_map} map"
                    )
                }
                _ => format!(
                    "gets {}, where its weights are made for {}",
                    shape_text(input),
                    shape_text(node.input)
                ),
            };
            return Err(self.breaks(node, problem));
        }
        Ok(output)
    }

    fn breaks(&self, node: &Node, problem: String) -> Stop {
        Stop::Breaks(Failure {
            at: [0, 0],
            path: node.path.clone(),
            node: node.describe(),
            problem,
        })
    }
}

/// A concat's or add's output from its branches' outputs, or why they do not combine.
fn combine(node: &Node, concat: bool, branches: &[Node], outputs: &[Shape]) -> Result<Shape, Stop> {
    let disagree = || {
        let listing = branches
            .iter()
            .zip(outputs)
            .enumerate()
            .map(|(i, (branch, output))| {
                let name = branch
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("branch {}", i + 1));
                format!("{name} {output}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        Stop::Breaks(Failure {
            at: [0, 0],
            path: node.path.clone(),
            node: node.describe(),
            problem: format!("gets branches that do not fit together: {listing}"),
        })
    };
    let (first, rest) = outputs.split_first().ok_or(Stop::Mismatch)?;
    if !concat {
        return if rest.iter().all(|shape| shape == first) {
            Ok(*first)
        } else {
            Err(disagree())
        };
    }
    let mut channels = 0u64;
    for shape in outputs {
        let fits = match (first, shape) {
            (Shape::Map { h, w, .. }, Shape::Map { h: oh, w: ow, .. }) => (h, w) == (oh, ow),
            (Shape::Flat { .. }, Shape::Flat { .. }) => true,
            _ => false,
        };
        if !fits {
            return Err(disagree());
        }
        channels = channels
            .checked_add(shape.channels())
            .ok_or_else(disagree)?;
    }
    Ok(match *first {
        Shape::Map { h, w, .. } => Shape::Map { c: channels, h, w },
        Shape::Flat { .. } => Shape::Flat { features: channels },
    })
}

/// `a [480, 1, 1] map`, `[4096]`.
fn shape_text(shape: Shape) -> String {
    match shape {
        Shape::Map { .. } => format!("a {shape} map"),
        Shape::Flat { .. } => shape.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(source: &str) -> Network {
        let checked = crate::compile(crate::SourceKind::Arch, source);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.networks.into_iter().next().expect("a network")
    }

    fn shipped(file: &str) -> Network {
        let path = format!("{}/architectures/{file}", env!("CARGO_MANIFEST_DIR"));
        network(&std::fs::read_to_string(&path).expect("readable"))
    }

    fn breaks(limit: &Option<Limit>) -> &Failure {
        match limit {
            Some(Limit::Breaks(failure)) => failure,
            other => panic!("expected a failure, found {other:?}"),
        }
    }

    /// torchvision documents GoogLeNet's smallest input as 15×15 (`GoogLeNet_Weights.IMAGENET1K_V1.meta
    /// ["min_size"] == (15, 15)`); PyTorch confirms it (torchvision 0.29.2):
    /// `googlenet(weights=None, aux_logits=True, init_weights=False).eval()(torch.zeros(1, 3, 14, 14))` raises
    /// "Given input size: (480x1x1). Calculated output size: (480x0x0). Output size is too small" in
    /// `maxpool3`, and runs at 15×15, in eval and in train mode (aux heads included).
    #[test]
    fn torchvision_googlenet_runs_from_15x15_up() {
        let sizes = input_sizes(&shipped("googlenet_torchvision.arch")).expect("a map input");
        // At 14: conv1 (7×7/2, pad 3) floor((14 + 6 − 7) / 2) + 1 = 7; maxpool1 (3×3/2 ceil) ceil((7 − 3) / 2) + 1
        // = 3; conv2, conv3 keep 3; maxpool2 ceil((3 − 3) / 2) + 1 = 1; inception3a/3b keep 1 (their pool is
        // 3×3/1 pad 1); maxpool3 ceil((1 − 3) / 2) + 1 = 0: no output.
        // At 15: conv1 floor(14 / 2) + 1 = 8; maxpool1 ceil(5 / 2) + 1 = 4; maxpool2 ceil(1 / 2) + 1 = 2; maxpool3
        // ceil(−1 / 2) + 1 = 1 (a window may hang over the end in ceil mode); maxpool4 (2×2/2 ceil)
        // ceil(−1 / 2) + 1 = 1; the adaptive pools take any size, the aux heads' too.
        assert_eq!(sizes.min(), [15, 15]);
        // The classifier reads an adaptive pool's 1×1 map, so every larger size runs.
        assert!(sizes.open_ended());
        assert_eq!(sizes.above, Limits::default());
        let both = breaks(&sizes.below.both);
        assert_eq!(both.at, [14, 14]);
        assert_eq!(both.path, "maxpool3");
        assert_eq!(
            both.to_string(),
            "at 14×14, `maxpool3` (max_pool 3×3/2 ceil) gets a [480, 1, 1] map: max_pool window of 3 is \
             larger than its padded input height and width of 1"
        );
        // Height alone: the width stays 224, halved by conv1, maxpool1 and maxpool2 to 28 before maxpool3.
        let height = breaks(&sizes.below.height);
        assert_eq!(height.at, [14, 224]);
        assert!(
            height.to_string().contains(
                "gets a [480, 1, 28] map: max_pool window of 3 is larger than its padded input height of 1"
            ),
            "{height}"
        );
        assert_eq!(
            sizes.describe(),
            "smallest valid: 15×15; any larger size runs"
        );
    }

    /// The paper's GoogLeNet ends in a 7×7/1 average pool and the aux heads in a 5×5/3 one, both before
    /// `flatten -> linear`: the sizes that run are those that keep those maps at their declared size.
    #[test]
    fn paper_googlenet_runs_only_where_its_classifiers_read_the_declared_map() {
        let sizes = input_sizes(&shipped("googlenet.arch")).expect("a map input");
        // Per axis, from the input n: conv1 (7/2 pad 3) a = floor((n − 1) / 2) + 1; pool1, pool2, pool3 (3/2 ceil)
        // b = ceil((a − 3) / 2) + 1, c = ceil((b − 3) / 2) + 1, e = ceil((c − 3) / 2) + 1 (the inception
        // modules keep sizes). aux heads: floor((e − 5) / 3) + 1 = 4 needs e ∈ {14, 15, 16}; pool4 (3/2 ceil)
        // f = ceil((e − 3) / 2) + 1 and pool5 (7/1) f − 6 = 1 need f = 7, e ∈ {14, 15}. Backwards: c ∈ 28..=31,
        // b ∈ 56..=63, a ∈ 112..=127, n ∈ 223..=254. PyTorch agrees: tests/parity/make_fixtures.py's
        // `PaperGoogLeNet(div=8, num_classes=10, last_map=7, aux_map=4)` runs at 223 and 254 in eval and train
        // mode, and fails at 222 (train: aux1.fc1 gets 2x144 for 256; eval: pool5 gets 6x6) and at 255 (fc
        // gets 2x512 for 128).
        assert_eq!(
            sizes.height,
            SizeRange {
                min: 223,
                max: Some(254)
            }
        );
        assert_eq!(sizes.width, sizes.height);
        assert!(!sizes.declared_only());
        // At 222: a = 111, b = 55, c = 27, e = 13; aux1 (after inception4a, before anything downstream of it)
        // pools to floor(8 / 3) + 1 = 3, and its fc1 gets 128 · 3 · 3 = 1152 features instead of 2048.
        let below = breaks(&sizes.below.both);
        assert_eq!(below.path, "aux1.fc1");
        assert_eq!(
            below.to_string(),
            "at 222×222, `aux1.fc1` (linear 2048→1024) gets 1152 features, a flattened [128, 3, 3] map, \
             where its weights take 2048, a flattened [128, 4, 4] map"
        );
        // At 255: a = 128, b = 64, c = 32, e = 16 (aux heads still 4×4), f = 8, pool5 gives 2×2 and `fc` gets
        // 1024 · 2 · 2 = 4096.
        let above = breaks(&sizes.above.both);
        assert_eq!(above.at, [255, 255]);
        assert_eq!(above.path, "fc");
        assert!(above.problem.starts_with("gets 4096 features"), "{above}");
        assert_eq!(sizes.describe(), "sizes from 223×223 to 254×254 run");
        assert_eq!(sizes.limit_above(), sizes.above.both.as_ref());
    }

    #[test]
    fn a_classifier_on_a_map_that_follows_the_input_takes_only_the_declared_size() {
        let sizes = input_sizes(&network(
            "network n {\n    input [3, 8, 8]\n    c = conv2d(4, 3)\n    flatten\n    fc = linear(10)\n}\n",
        ))
        .unwrap();
        assert!(sizes.declared_only());
        // 9: conv 3×3 gives 7×6, 4 · 7 · 6 = 168 features where fc takes 4 · 6 · 6 = 144.
        let above = breaks(&sizes.above.height);
        assert_eq!(
            above.to_string(),
            "at 9×8, `fc` (linear 144→10) gets 168 features, a flattened [4, 7, 6] map, where its weights \
             take 144, a flattened [4, 6, 6] map"
        );
        assert_eq!(sizes.describe(), "only this size runs");
        assert!(
            sizes
                .limit_above()
                .unwrap()
                .to_string()
                .starts_with("at 9×9, `fc`"),
            "{:?}",
            sizes.limit_above()
        );
    }

    #[test]
    fn branches_that_agree_on_even_sizes_only_take_the_declared_size() {
        // a: floor(n / 2); b: floor((n + 2 − 3) / 2) + 1 = ceil(n / 2): equal for even n only.
        let sizes = input_sizes(&network(
            "network n {\n    input [3, 8, 8]\n    concat {\n        a = max_pool(2)\n        b = conv2d(4, 3, stride = 2, pad = 1)\n    }\n    global_avg_pool\n}\n",
        ))
        .unwrap();
        assert!(sizes.declared_only());
        assert_eq!(
            breaks(&sizes.below.height).to_string(),
            "at 7×8, an unnamed concat gets branches that do not fit together: a [3, 3, 4], b [4, 4, 4]"
        );
    }

    #[test]
    fn a_network_without_windows_that_can_fail_runs_at_any_size() {
        let sizes = input_sizes(&network(
            "network n {\n    input [3, 8, 8]\n    c = conv2d(4, 1)\n    global_avg_pool\n    flatten\n    fc = linear(10)\n}\n",
        ))
        .unwrap();
        assert_eq!(sizes.min(), [1, 1]);
        assert!(sizes.open_ended());
        assert_eq!(sizes.below, Limits::default());
        assert_eq!(sizes.describe(), "any size runs");
    }

    #[test]
    fn the_smallest_size_far_below_the_declared_one_is_found_by_bisection() {
        // Stride 2 gives a period of 2: 63 and 62 are tried, then bisection finds the smallest size whose
        // window fits: a 5-wide kernel needs 5 rows. [3, 5, 7] → [4, 1, 2] at 5.
        let source = "network n {\n    input [3, 64, 7]\n    c = conv2d(4, 5, stride = 2)\n    global_avg_pool\n}\n";
        let network = network(source);
        let sizes = input_sizes(&network).unwrap();
        assert_eq!(sizes.height, SizeRange { min: 5, max: None });
        assert_eq!(sizes.width, SizeRange { min: 5, max: None });
        assert_eq!(
            breaks(&sizes.below.height).to_string(),
            "at 4×7, `c` (conv 5×5/2) gets a [3, 4, 7] map: conv2d window of 5 is larger than its padded \
             input height of 4"
        );
        // Bisection: far fewer replays than sizes below 64.
        let mut replay = Replay {
            network: &network,
            budget: MAX_SCAN_NODES,
            compare: false,
            flattened: None,
        };
        let _ = replay.axis(0, [64, 7], Some(2));
        let visited = MAX_SCAN_NODES - replay.budget;
        assert!(visited < 3 * 20, "{visited} nodes visited");
    }

    #[test]
    fn a_flat_input_has_no_sizes_to_scan() {
        let network = network("network n {\n    input [16]\n    fc = linear(4)\n}\n");
        assert_eq!(input_sizes(&network), None);
    }

    #[test]
    fn a_spent_budget_reports_the_sizes_verified_so_far() {
        let network = shipped("googlenet_torchvision.arch");
        let mut replay = Replay {
            network: &network,
            budget: 3_000,
            compare: false,
            flattened: None,
        };
        // A few replays' worth: the upward scan stops short of its 32 sizes, the downward one at once.
        let (range, below, above) = replay.axis(0, [224, 224], period(&network, 0));
        assert_eq!(range.min, 224);
        assert!(range.max.is_some_and(|max| max < 224 + 32), "{range:?}");
        assert!(matches!(above, Some(Limit::Unverified { .. })), "{above:?}");
        assert!(
            matches!(below, Some(Limit::Unverified { at: [223, 224], .. })),
            "{below:?}"
        );
    }

    #[test]
    fn googlenet_is_scanned_in_a_few_hundred_replays() {
        let network = shipped("googlenet_torchvision.arch");
        let mut nodes = 0;
        network.walk(|_| nodes += 1);
        let (_, visited) = scan(&network, MAX_SCAN_NODES).unwrap();
        // Per axis: 32 sizes up, 32 down, a bisection of 1..192 (8 more), then the two joint sizes.
        let replays = visited as f64 / nodes as f64;
        assert!(
            replays < 2.0 * (32.0 + 32.0 + 9.0) + 3.0,
            "{replays} replays of {nodes} nodes"
        );
        assert!(visited < 60_000, "{visited}");
    }

    #[test]
    fn a_network_too_large_for_the_budget_takes_only_its_declared_size() {
        let network = shipped("googlenet_torchvision.arch");
        let (sizes, _) = scan(&network, 100).unwrap();
        assert!(sizes.declared_only());
        assert!(
            matches!(&sizes.above.both, Some(Limit::Unverified { why, .. }) if why.contains("too large to scan")),
            "{:?}",
            sizes.above
        );
    }

    #[test]
    fn googlenet_strides_repeat_every_32_sizes() {
        // conv1, maxpool1, maxpool2, maxpool3 and maxpool4 have stride 2; the aux heads pool adaptively.
        let network = shipped("googlenet_torchvision.arch");
        assert_eq!(period(&network, 0), Some(32));
        assert_eq!(period(&network, 1), Some(32));
    }
}
