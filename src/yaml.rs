//! The YAML front end (filled in below).
use crate::ast;
use crate::diagnostic::Diagnostic;

/// Parses a YAML architecture.
pub fn parse(_source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    Ok(ast::File { items: Vec::new() })
}
