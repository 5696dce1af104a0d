//! The YAML front end: a YAML architecture to the [`ast`](crate::ast), the same tree the `.arch` parser
//! builds, so both forms of one network check to the same IR.
//!
//! The YAML gives the structure (definitions, parameters, statements, branches); the small pieces keep the
//! `.arch` syntax and are parsed by the `.arch` grammar ([`crate::syntax`]): layer chains, expressions and
//! shapes. Their spans point into the YAML file.
//!
//! # Schema
//!
//! ```yaml
//! blocks:                                   # optional; definitions keep their source order
//!   basic_conv:
//!     params: [out, k, {stride: 1}, {pad: 0}]   # ordered; a one-key mapping gives a default
//!     body:
//!       - conv: conv2d(out, k, stride = stride, pad = pad, bias = false)
//!       - bn: batch_norm(eps = 0.001)
//!       - relu                              # an unnamed statement is a plain string
//!   inception:
//!     params: [c1, c3r, c3, c5r, c5, pp]
//!     body:
//!       - concat:                           # an unnamed group; its branches, in order
//!           branch1: basic_conv(c1, 1)
//!           branch2: basic_conv(c3r, 1) -> basic_conv(c3, 3, pad = 1)
//!           branch3: basic_conv(c5r, 1) -> basic_conv(c5, 3, pad = 1)
//!           branch4: max_pool(3, stride = 1, pad = 1, ceil = true) -> basic_conv(pp, 1)
//! networks:
//!   tiny_googlenet:
//!     params: {num_classes: 1000, dropout: 0.2}  # a mapping works too (`~` for no default)
//!     input: [3, 224, 224]                  # the network's `input` statement
//!     body:
//!       - conv1: basic_conv(64, 7, stride = 2, pad = 3)
//!         shape: [64, 112, 112]             # the declared output shape
//!       - pool1: "max_pool(3, stride = 2, ceil = true) : [64, 56, 56]"   # or inline, quoted
//!       - inception3a: inception(64, 96, 128, 16, 32, 32)
//!         shape: [256, 56, 56]
//!       - side aux: global_avg_pool -> flatten -> linear(num_classes)
//!         from: pool1                       # a training-only side output
//!         shape: [num_classes]
//!       - pool: global_avg_pool
//!       - flatten
//!       - drop: dropout(dropout)
//!       - fc: linear(num_classes)
//!         shape: [num_classes]
//! ```
//!
//! - The top level is a mapping with the keys `blocks` and `networks`, each a mapping from names to
//!   definitions. A definition has `params` (a list of names and one-key `name: default` mappings, or a
//!   mapping from names to defaults), `input` (a shape) and `body` (a list of statements).
//! - A statement is a string (an unnamed chain, with an optional `: [C, H, W]`, exactly as in `.arch`), or a
//!   mapping with one *head* key and optional attribute keys `shape` and `from`. The head is `NAME: CHAIN`,
//!   `side NAME: CHAIN` (a training-only side output, whose source is `from: SOURCE` or a trailing
//!   `from SOURCE` in the chain text), `concat: BRANCHES` / `add: BRANCHES` (an unnamed group), or
//!   `input: SHAPE`. A mapping whose only key is `shape` is a statement named `shape`; an `input`, `concat` or
//!   `add` head whose value is a chain string (not a shape) is a statement of that name.
//! - A chain is a string (`conv2d(64, 1) -> relu`), a group mapping (`{concat: BRANCHES}`), or a list of
//!   those, joined by `->`. The branches of a group are a mapping from branch names to chains, or a list
//!   of statements (for unnamed branches or branches with a `shape`).
//! - A `: ` inside a plain YAML scalar starts a mapping, so a chain with an inline declared shape must be
//!   quoted; the `shape:` key avoids that.
//! - Numbers, booleans and lists in YAML (`stride: 1`, `input: [3, 224, 224]`) are the same expressions as in
//!   `.arch`; strings in expression positions (`k / 2`, `same`) are `.arch` expressions.
//!
//! # Spans
//!
//! serde_yaml's values carry no positions, so the loader walks the source alongside the deserializer: every
//! node is visited in document order, and a cursor skips YAML punctuation and comments to where the node's
//! text starts. A scalar found there (plain, quoted or block, folded lines included) is parsed from its
//! source text, so spans are exact; one that cannot be found exactly (escapes, or a node repeated through an
//! alias) takes the span of its whole token (or of the alias) instead.
//!
//! # Limits
//!
//! The file size limit and the nesting limit are those of `.arch` ([`MAX_SOURCE_BYTES`],
//! [`MAX_NESTING`](crate::syntax::MAX_NESTING) levels of YAML collections). Aliases may repeat nodes, but
//! the whole document may expand to at most about twice its own size, so a "billion laughs" document is
//! rejected after a bounded amount of work.
//!
//! # Layout
//!
//! `load.rs` reads the text into a tree of YAML nodes with spans and knows nothing of the schema;
//! `lower.rs` checks the schema and builds the AST from that tree.

// `Diagnostic` is the front end's error type; a failure is reported once, so its size does not matter.
#![allow(clippy::result_large_err)]

mod load;
mod lower;

use crate::ast::File;
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::MAX_SOURCE_BYTES;

/// Parses a YAML architecture. On failure returns every diagnostic found: malformed YAML stops at the first
/// error (as a syntax error does in `.arch`); schema errors are all collected.
pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(vec![Diagnostic::error(
            Code::LimitExceeded,
            Span::new(0, 0),
            format!(
                "source is {} bytes; the limit is {} bytes",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        )]);
    }
    let root = load::load(source).map_err(|diagnostic| vec![diagnostic])?;
    let (items, mut diagnostics) = lower::lower(source, &root);
    if diagnostics.is_empty() {
        Ok(File { items })
    } else {
        diagnostics.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
        Err(diagnostics)
    }
}
