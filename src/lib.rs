//! archc: a declarative neural-network architecture compiler.
//!
//! The pipeline, one module per stage:
//!
//! 1. [`syntax`] parses `.arch` text (and [`yaml`] loads the YAML form) into the [`ast`];
//! 2. [`check`] infers every channel count and spatial size, collecting all [`diagnostic`]s, and produces the
//!    checked network, the [`ir`];
//! 3. [`summary`] computes parameter and MAC counts from the IR;
//! 4. [`codegen`] turns a checked file into Rust tokens for a candle model.
//!
//! Tools around the language: [`graph`] draws a checked network (DOT or SVG); [`fmt`] lays `.arch` source out
//! canonically, comments kept; [`lsp`] (the `lsp` feature) is the language server behind `archc lsp`.
//!
//! The library does no I/O and never prints: [`render`] turns diagnostics into text for the edges (the `archc`
//! binary and the `include_arch!` macro).

pub mod ast;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod explain;
pub mod fmt;
pub mod graph;
pub mod ir;
pub mod layers;
#[cfg(feature = "lsp")]
pub mod lsp;
pub mod render;
pub mod summary;
pub mod syntax;
pub mod yaml;

pub use check::{check_file, Checked};
pub use diagnostic::{Code, Diagnostic, Severity, Span};

/// The source language of a file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `.arch`
    Arch,
    /// `.yaml` or `.yml`
    Yaml,
}

impl SourceKind {
    /// `.yaml`/`.yml` files are YAML; everything else is `.arch` text.
    pub fn from_path(path: &str) -> SourceKind {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            SourceKind::Yaml
        } else {
            SourceKind::Arch
        }
    }
}

/// Parses a source of either kind into the AST.
pub fn parse_source(kind: SourceKind, source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    match kind {
        SourceKind::Arch => syntax::parse(source),
        SourceKind::Yaml => yaml::parse(source),
    }
}

/// Parses and checks a source: the whole front end in one call. The diagnostics of a syntax error stop at
/// parsing; otherwise every checker diagnostic is returned.
pub fn compile(kind: SourceKind, source: &str) -> Checked {
    match parse_source(kind, source) {
        Ok(file) => check_file(&file),
        Err(diagnostics) => Checked {
            networks: Vec::new(),
            diagnostics,
        },
    }
}
