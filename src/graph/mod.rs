//! Drawing: a checked network as a graph, written as Graphviz DOT ([`Graph::to_dot`]) or as an SVG laid out in
//! this crate ([`Graph::to_svg`]), so no external program is needed.
//!
//! One file per job:
//! - `model.rs`: [`build`] walks each network definition of the AST statement by statement and draws the checked
//!   node the IR has for it: every layer with its path, its kind and its inferred output shape; a block instance
//!   as a cluster (or, with [`GraphOptions::collapse`], as one node); the branches of a `concat`/`add` side by
//!   side, joined by a merge node; side outputs dashed and grey, marked training-only. A statement the checker
//!   could not follow (a file with errors) is drawn from its source text, and every error is put on the node
//!   whose span contains it, in red with its code.
//! - `dot.rs`: the model as DOT text.
//! - [`layout`]: a layered layout of the model in near-linear time: rows by longest path, columns from the
//!   cluster structure (branches side by side in source order, side outputs to the right of the main line).
//! - `svg.rs`: the laid-out model as SVG.
//!
//! The layout and the SVG writer are behind the `svg` feature (on with the CLI), so `include_arch!` builds
//! neither.

mod dot;
#[cfg(feature = "svg")]
pub mod layout;
mod model;
#[cfg(feature = "svg")]
mod svg;

pub use model::*;

const RED: &str = "#c5221f";
const RED_FILL: &str = "#fce8e6";
const GREY: &str = "#80868b";
const GREY_FILL: &str = "#f1f3f4";

#[cfg(feature = "svg")]
impl Graph {
    /// An SVG picture laid out by [`layout::layout`]: top to bottom, block instances boxed, branches side by
    /// side, side outputs dashed and grey, errors red.
    pub fn to_svg(&self) -> String {
        svg::render(self, &layout::layout(self))
    }
}
