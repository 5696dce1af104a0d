//! The layout: where each node, cluster box and edge of a [`Graph`] goes, in time near-linear in its size.
//!
//! A layered (Sugiyama-style) layout that takes its node order from the model instead of searching for one:
//! 1. **Rows.** Each node's row is its longest path from a node with no inputs, so the heads of a `concat`'s
//!    branches share a row and a short branch is not pulled down next to its join.
//! 2. **Columns.** The model already knows which nodes run side by side: the items of each cluster (and of
//!    the top level) are grouped into *stages*, runs of items whose rows overlap; within a stage the items go
//!    into *lanes* (first fit, in source order), main-line items first and training-only side outputs in lanes
//!    to their right. Lanes are placed side by side; stages stack, aligned on the main line (or, for branches,
//!    on their middle). Each cluster is arranged once, from the inside out, so no crossing-reduction sweeps are
//!    needed and the branches of a block keep their source order.
//! 3. **Coordinates.** Row heights come from the tallest node in the row; the gap above a row makes room for
//!    the labels of the boxes that start there and the padding of those that end above it.
//! 4. **Edges.** An edge between neighbouring rows is one curve; a longer one (a short branch to its join)
//!    runs straight down its own lane and curves into its target in the last gap.
//!
//! Sorting the items of each cluster by row and the lane heap are the only super-linear steps (n log n);
//! [`Layout::work`] counts the steps taken, so the fuzz target can turn a quadratic regression into a finding.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::{ClusterKind, Graph, Item};

/// Rendered font size of node labels, in pixels.
pub(super) const FONT: f64 = 12.0;
/// An estimate of one character's width at [`FONT`] (Helvetica/Arial average).
const CHAR_WIDTH: f64 = 6.7;
/// The height of one label line at [`FONT`].
pub(super) const LINE_HEIGHT: f64 = 14.5;
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 6.0;
/// Line height and character width of cluster labels (10.5 px).
pub(super) const CLUSTER_LINE: f64 = 12.5;
const CLUSTER_CHAR_WIDTH: f64 = 5.9;
/// Space between neighbouring lanes.
const LANE_GAP: f64 = 18.0;
/// Space between rows, besides what box labels and padding need.
const ROW_GAP: f64 = 20.0;
/// Padding of a drawn cluster box: left and right, above its content (below its label), below its content.
const BOX_PAD_X: f64 = 8.0;
const BOX_PAD_TOP: f64 = 4.0;
const BOX_PAD_BOTTOM: f64 = 6.0;
/// A box is made at least this wide to fit the widest part of its label, up to [`LABEL_WIDTH_LIMIT`].
const LABEL_WIDTH_LIMIT: f64 = 280.0;
/// Space around the whole drawing.
const MARGIN: f64 = 10.0;

/// An axis-aligned rectangle, `y` growing downwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }

    pub fn center_x(&self) -> f64 {
        self.x + self.width / 2.0
    }

    /// Whether the two rectangles share any area (touching edges do not count).
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    /// Whether `other` lies inside this rectangle (edges may touch).
    pub fn contains(&self, other: &Rect) -> bool {
        self.x <= other.x
            && self.y <= other.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }
}

/// A cluster's box and its label, broken into the lines that fit the box.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterBox {
    pub rect: Rect,
    /// Empty for a branch column, which is laid out as a box but not drawn.
    pub label: Vec<String>,
}

/// An edge's route: from the bottom middle of its source to the top middle of its target. A long edge first
/// runs straight down to `bend` (a y coordinate); an edge into a row below box labels curves only down to
/// `enter`, above the labels, and runs straight down from there, so curves stay in the free gap between rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeRoute {
    pub start: (f64, f64),
    pub bend: Option<f64>,
    pub enter: Option<f64>,
    pub end: (f64, f64),
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Each node's box, indexed like [`Graph::nodes`].
    pub nodes: Vec<Rect>,
    /// Each node's row (its longest path from a node with no inputs).
    pub rows: Vec<usize>,
    /// Each cluster's box, indexed like [`Graph::clusters`]; `None` for a cluster holding no node.
    pub clusters: Vec<Option<ClusterBox>>,
    /// Each edge's route, indexed like [`Graph::edges`].
    pub edges: Vec<EdgeRoute>,
    /// The size of the drawing, margins included.
    pub width: f64,
    pub height: f64,
    /// Steps taken (items sorted, lanes searched, nodes and edges placed): near-linear in the graph's size.
    pub work: usize,
}

/// The size of a node's box: its label lines at [`FONT`], padded.
pub(super) fn node_size(graph: &Graph, id: usize) -> (f64, f64) {
    let lines = graph.label_lines(id);
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    (
        widest as f64 * CHAR_WIDTH + 2.0 * PAD_X,
        lines.len().max(1) as f64 * LINE_HEIGHT + 2.0 * PAD_Y,
    )
}

/// A cluster's label broken at its ` · ` separators into lines that fit `width` pixels, two at most (the
/// space between rows holds no more; what is cut is the output shape, which the last node shows too).
fn cluster_label_lines(label: &str, width: f64) -> Vec<String> {
    let fits = ((width - 12.0) / CLUSTER_CHAR_WIDTH).max(8.0) as usize;
    let mut lines: Vec<String> = Vec::new();
    for part in label.split(" · ") {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 3 + part.chars().count() <= fits => {
                line.push_str(" · ");
                line.push_str(part);
            }
            _ => lines.push(part.to_string()),
        }
    }
    if lines.len() > 2 {
        lines.truncate(2);
        lines[1].push_str(" …");
    }
    lines
}

/// Horizontal extent of something placed by its anchor (the x its main line runs through).
#[derive(Debug, Clone, Copy, Default)]
struct Extent {
    left: f64,
    right: f64,
}

/// One item of a cluster being arranged.
struct Entry {
    first: usize,
    last: usize,
    side: bool,
    extent: Extent,
}

/// The result of arranging a list of items: the extent around the list's anchor, and each item's anchor
/// offset from it (in the order of the list; empty clusters get 0).
struct Arrangement {
    extent: Extent,
    offsets: Vec<f64>,
}

struct Layouter<'g> {
    graph: &'g Graph,
    rows: Vec<usize>,
    sizes: Vec<(f64, f64)>,
    /// Each cluster's first and last row, `None` when it holds no node.
    spans: Vec<Option<(usize, usize)>>,
    extents: Vec<Extent>,
    /// Each cluster's arrangement of its items.
    arrangements: Vec<Arrangement>,
    work: usize,
}

/// Lays `graph` out.
pub fn layout(graph: &Graph) -> Layout {
    let n = graph.nodes.len();
    let mut work = 0usize;

    // 1. Rows: the longest path to each node. Edges point to nodes created later, so one pass over the edges
    // ordered by target is enough; an edge that does not (none today) is ignored here and drawn as it falls.
    let mut rows = vec![0usize; n];
    let mut forward: Vec<usize> = (0..graph.edges.len())
        .filter(|&e| {
            let edge = graph.edges[e];
            edge.from < edge.to && edge.to < n
        })
        .collect();
    forward.sort_by_key(|&e| graph.edges[e].to);
    work += graph.edges.len() + forward.len();
    for e in forward {
        let edge = graph.edges[e];
        rows[edge.to] = rows[edge.to].max(rows[edge.from] + 1);
    }

    let sizes: Vec<(f64, f64)> = (0..n).map(|id| node_size(graph, id)).collect();
    work += n;
    let mut layouter = Layouter {
        graph,
        rows,
        sizes,
        spans: vec![None; graph.clusters.len()],
        extents: vec![Extent::default(); graph.clusters.len()],
        arrangements: Vec::with_capacity(graph.clusters.len()),
        work,
    };

    // 2. Columns, from the inside out: a child cluster is always created after its parent, so in reverse
    // creation order every child is arranged before the cluster holding it.
    let mut arrangements = Vec::with_capacity(graph.clusters.len());
    for id in (0..graph.clusters.len()).rev() {
        arrangements.push(layouter.arrange_cluster(id));
    }
    arrangements.reverse();
    layouter.arrangements = arrangements;
    let top = layouter.arrange(&graph.items, None);

    // Anchors, from the outside in.
    let mut node_x = vec![0.0f64; n];
    let mut cluster_x = vec![0.0f64; graph.clusters.len()];
    let mut stack: Vec<(Option<usize>, f64)> = vec![(None, MARGIN + top.extent.left)];
    while let Some((cluster, anchor)) = stack.pop() {
        let (items, offsets) = match cluster {
            None => (&graph.items, &top.offsets),
            Some(c) => (&graph.clusters[c].items, &layouter.arrangements[c].offsets),
        };
        for (item, offset) in items.iter().zip(offsets) {
            layouter.work += 1;
            match *item {
                Item::Node(id) if id < n => node_x[id] = anchor + offset,
                Item::Cluster(c) if cluster.map_or(true, |p| c > p) && c < cluster_x.len() => {
                    cluster_x[c] = anchor + offset;
                    stack.push((Some(c), anchor + offset));
                }
                _ => {}
            }
        }
    }

    // Labels: a box's label is broken to fit its width.
    let labels: Vec<Vec<String>> = (0..graph.clusters.len())
        .map(|c| {
            let extent = layouter.extents[c];
            if graph.clusters[c].kind == ClusterKind::Branch || layouter.spans[c].is_none() {
                Vec::new()
            } else {
                cluster_label_lines(&graph.cluster_label(c), extent.left + extent.right)
            }
        })
        .collect();

    // 3. Rows' y. Above each box: its label and padding, and those of boxes nested in it that start on the
    // same row; below: the same for padding.
    let row_count = layouter.rows.iter().max().map_or(0, |r| r + 1);
    let mut top_stack = vec![0.0f64; graph.clusters.len()];
    let mut bottom_stack = vec![0.0f64; graph.clusters.len()];
    for c in (0..graph.clusters.len()).rev() {
        layouter.work += 1;
        let Some((first, last)) = layouter.spans[c] else {
            continue;
        };
        let drawn = graph.clusters[c].kind != ClusterKind::Branch;
        let (mut above, mut below) = (0.0f64, 0.0f64);
        for item in &graph.clusters[c].items {
            layouter.work += 1;
            if let Item::Cluster(child) = *item {
                if child <= c || child >= graph.clusters.len() {
                    continue;
                }
                if let Some((child_first, child_last)) = layouter.spans[child] {
                    if child_first == first {
                        above = above.max(top_stack[child]);
                    }
                    if child_last == last {
                        below = below.max(bottom_stack[child]);
                    }
                }
            }
        }
        if drawn {
            above += BOX_PAD_TOP + CLUSTER_LINE * labels[c].len() as f64;
            below += BOX_PAD_BOTTOM;
        }
        top_stack[c] = above;
        bottom_stack[c] = below;
    }
    let mut row_height = vec![0.0f64; row_count];
    for (id, &(_, height)) in layouter.sizes.iter().enumerate() {
        let row = layouter.rows[id];
        row_height[row] = row_height[row].max(height);
    }
    let mut above_row = vec![0.0f64; row_count];
    let mut below_row = vec![0.0f64; row_count];
    for (c, span) in layouter.spans.iter().enumerate() {
        if let Some((first, last)) = *span {
            above_row[first] = above_row[first].max(top_stack[c]);
            below_row[last] = below_row[last].max(bottom_stack[c]);
        }
    }
    let mut row_top = vec![0.0f64; row_count];
    let mut y = MARGIN;
    for row in 0..row_count {
        layouter.work += 1;
        if row > 0 {
            y += ROW_GAP;
        }
        y += above_row[row];
        row_top[row] = y;
        y += row_height[row] + below_row[row];
    }

    // 4. Boxes and routes.
    let nodes: Vec<Rect> = (0..n)
        .map(|id| {
            let (width, height) = layouter.sizes[id];
            let row = layouter.rows[id];
            Rect {
                x: node_x[id] - width / 2.0,
                y: row_top[row] + (row_height[row] - height) / 2.0,
                width,
                height,
            }
        })
        .collect();
    let clusters: Vec<Option<ClusterBox>> = (0..graph.clusters.len())
        .map(|c| {
            let (first, last) = layouter.spans[c]?;
            let extent = layouter.extents[c];
            let top = row_top[first] - top_stack[c];
            let bottom = row_top[last] + row_height[last] + bottom_stack[c];
            Some(ClusterBox {
                rect: Rect {
                    x: cluster_x[c] - extent.left,
                    y: top,
                    width: extent.left + extent.right,
                    height: bottom - top,
                },
                label: labels[c].clone(),
            })
        })
        .collect();
    let edges: Vec<EdgeRoute> = graph
        .edges
        .iter()
        .map(|edge| {
            let (Some(from), Some(to)) = (nodes.get(edge.from), nodes.get(edge.to)) else {
                return EdgeRoute {
                    start: (0.0, 0.0),
                    bend: None,
                    enter: None,
                    end: (0.0, 0.0),
                };
            };
            let (from_row, to_row) = (layouter.rows[edge.from], layouter.rows[edge.to]);
            // The long edge runs down to the bottom of whatever sits in the row above its target.
            let bend = (to_row > from_row + 1).then(|| {
                let above = to_row - 1;
                row_top[above] + row_height[above] + below_row[above]
            });
            let enter = (to_row > from_row && above_row[to_row] > 0.0)
                .then(|| row_top[to_row] - above_row[to_row]);
            EdgeRoute {
                start: (from.center_x(), from.bottom()),
                bend,
                enter,
                end: (to.center_x(), to.y),
            }
        })
        .collect();
    layouter.work += n + graph.edges.len() + graph.clusters.len();

    let width = nodes
        .iter()
        .map(Rect::right)
        .chain(clusters.iter().flatten().map(|b| b.rect.right()))
        .fold(0.0f64, f64::max)
        + MARGIN;
    let height = nodes
        .iter()
        .map(Rect::bottom)
        .chain(clusters.iter().flatten().map(|b| b.rect.bottom()))
        .fold(0.0f64, f64::max)
        + MARGIN;
    Layout {
        nodes,
        rows: layouter.rows,
        clusters,
        edges,
        width,
        height,
        work: layouter.work,
    }
}

impl Layouter<'_> {
    /// Arranges a cluster's items and records its rows and extent (padding and label room included).
    fn arrange_cluster(&mut self, id: usize) -> Arrangement {
        let cluster = &self.graph.clusters[id];
        let arrangement = self.arrange(&cluster.items, Some(id));
        let mut extent = arrangement.extent;
        if self.spans[id].is_some() && cluster.kind != ClusterKind::Branch {
            extent.left += BOX_PAD_X;
            extent.right += BOX_PAD_X;
            // Wide enough for the widest part of the label (a block's name or its call), within reason.
            let widest = self
                .graph
                .cluster_label(id)
                .split(" · ")
                .map(|part| part.chars().count())
                .max()
                .unwrap_or(0);
            let wanted = (widest as f64 * CLUSTER_CHAR_WIDTH + 12.0).min(LABEL_WIDTH_LIMIT);
            let missing = wanted - (extent.left + extent.right);
            if missing > 0.0 {
                extent.left += missing / 2.0;
                extent.right += missing / 2.0;
            }
        }
        self.extents[id] = extent;
        arrangement
    }

    /// Arranges `items` (those of cluster `owner`, or the top level): into stages by overlapping rows, each
    /// stage into lanes, and records the owner's rows.
    fn arrange(&mut self, items: &[Item], owner: Option<usize>) -> Arrangement {
        let mut entries: Vec<(usize, Entry)> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            self.work += 1;
            let entry = match *item {
                Item::Node(id) if id < self.graph.nodes.len() => {
                    let (width, _) = self.sizes[id];
                    Entry {
                        first: self.rows[id],
                        last: self.rows[id],
                        side: self.graph.nodes[id].side,
                        extent: Extent {
                            left: width / 2.0,
                            right: width / 2.0,
                        },
                    }
                }
                // A cluster is arranged before its parent (it was created after it); anything else would be a
                // cycle and is left out.
                Item::Cluster(c)
                    if owner.map_or(true, |p| c > p) && c < self.graph.clusters.len() =>
                {
                    let Some((first, last)) = self.spans[c] else {
                        continue;
                    };
                    Entry {
                        first,
                        last,
                        side: self.graph.clusters[c].side,
                        extent: self.extents[c],
                    }
                }
                _ => continue,
            };
            entries.push((index, entry));
        }
        if let Some(owner) = owner {
            self.spans[owner] = entries
                .iter()
                .map(|(_, e)| (e.first, e.last))
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        }

        // Stages: runs of items whose rows overlap, in row order (ties in source order).
        entries.sort_by_key(|(index, e)| (e.first, *index));
        self.work += entries.len() * (usize::BITS - entries.len().leading_zeros()) as usize;
        let mut offsets = vec![0.0f64; items.len()];
        let mut extent = Extent::default();
        let mut start = 0;
        while start < entries.len() {
            let mut end = start + 1;
            let mut last = entries[start].1.last;
            while end < entries.len() && entries[end].1.first <= last {
                last = last.max(entries[end].1.last);
                end += 1;
            }
            let stage = &entries[start..end];
            let (stage_extent, stage_offsets) = self.arrange_stage(stage);
            for ((index, _), offset) in stage.iter().zip(stage_offsets) {
                offsets[*index] = offset;
            }
            extent.left = extent.left.max(stage_extent.left);
            extent.right = extent.right.max(stage_extent.right);
            start = end;
        }
        Arrangement { extent, offsets }
    }

    /// Puts a stage's items into lanes: main-line items first fit in row order, then side outputs in lanes of
    /// their own to the right. Returns the stage's extent around its anchor and each item's offset from it.
    fn arrange_stage(&mut self, stage: &[(usize, Entry)]) -> (Extent, Vec<f64>) {
        let any_main = stage.iter().any(|(_, e)| !e.side);
        let mut lane_of = vec![0usize; stage.len()];
        let mut lanes: Vec<Extent> = Vec::new();
        let mut main_lanes = 0;
        for side_pass in [false, true] {
            // Lanes in use as (last row, lane), the one freed first on top; free lanes, lowest first.
            let mut busy: BinaryHeap<Reverse<(usize, usize)>> = BinaryHeap::new();
            let mut free: BTreeSet<usize> = BTreeSet::new();
            let first_lane = lanes.len();
            for (position, (_, entry)) in stage.iter().enumerate() {
                if (any_main && entry.side) != side_pass {
                    continue;
                }
                self.work += 1;
                while let Some(&Reverse((last, lane))) = busy.peek() {
                    if last >= entry.first {
                        break;
                    }
                    busy.pop();
                    free.insert(lane);
                    self.work += 1;
                }
                let lane = match free.pop_first() {
                    Some(lane) => lane,
                    None => {
                        lanes.push(Extent::default());
                        lanes.len() - 1
                    }
                };
                busy.push(Reverse((entry.last, lane)));
                lane_of[position] = lane;
                lanes[lane].left = lanes[lane].left.max(entry.extent.left);
                lanes[lane].right = lanes[lane].right.max(entry.extent.right);
            }
            if !side_pass {
                main_lanes = lanes.len() - first_lane;
            }
        }
        // Lanes side by side from x = 0; the anchor is the main line's (or the middle of several).
        let mut anchors = Vec::with_capacity(lanes.len());
        let mut x = 0.0f64;
        for lane in &lanes {
            self.work += 1;
            anchors.push(x + lane.left);
            x += lane.left + lane.right + LANE_GAP;
        }
        let total = x - LANE_GAP;
        let anchor = match main_lanes {
            0 => total / 2.0,
            1 => anchors[0],
            count => {
                let right = anchors[count - 1] + lanes[count - 1].right;
                right / 2.0
            }
        };
        let offsets = lane_of.iter().map(|&lane| anchors[lane] - anchor).collect();
        (
            Extent {
                left: anchor,
                right: total - anchor,
            },
            offsets,
        )
    }
}
