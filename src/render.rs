//! Rendering diagnostics as rustc-style text, for the edges: [`render`] (the CLI, with codespan-reporting,
//! behind the `render` feature) and [`render_compact`] (the proc macro's one diagnostic, no dependencies).

#[cfg(feature = "render")]
use codespan_reporting::diagnostic::{
    Diagnostic as CsDiagnostic, Label as CsLabel, Severity as CsSeverity,
};
#[cfg(feature = "render")]
use codespan_reporting::files::SimpleFile;
#[cfg(feature = "render")]
use codespan_reporting::term::{self, termcolor::Buffer};

use crate::diagnostic::{Diagnostic, LineIndex, Severity};

/// Renders diagnostics for the file `name` with contents `source`; `color` adds ANSI colours.
#[cfg(feature = "render")]
pub fn render(name: &str, source: &str, diagnostics: &[Diagnostic], color: bool) -> String {
    let file = SimpleFile::new(name, source);
    let config = term::Config::default();
    let mut buffer = if color {
        Buffer::ansi()
    } else {
        Buffer::no_color()
    };
    for diagnostic in diagnostics {
        // codespan-reporting slices the source by these ranges; clamp them to be safe on any input.
        let clamp = |span: crate::Span| {
            let mut start = (span.start as usize).min(source.len());
            while !source.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (span.end as usize).clamp(start, source.len());
            while !source.is_char_boundary(end) {
                end += 1;
            }
            start..end
        };
        let mut labels = vec![CsLabel::primary((), clamp(diagnostic.primary.span))
            .with_message(&diagnostic.primary.message)];
        labels.extend(
            diagnostic.secondary.iter().map(|label| {
                CsLabel::secondary((), clamp(label.span)).with_message(&label.message)
            }),
        );
        let mut notes: Vec<String> = diagnostic
            .notes
            .iter()
            .map(|n| format!("note: {n}"))
            .collect();
        if let Some(help) = &diagnostic.help {
            notes.push(format!("help: {help}"));
        }
        let severity = match diagnostic.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        };
        let rendered = CsDiagnostic::new(severity)
            .with_code(diagnostic.code.as_str())
            .with_message(&diagnostic.message)
            .with_labels(labels)
            .with_notes(notes);
        // Writing into an in-memory buffer cannot fail.
        let _ = term::emit(&mut buffer, &config, &file, &rendered);
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

/// A one-diagnostic summary in the form a proc-macro error can carry: the message, then
/// `--> file:LINE:COL`, the source line and a caret line, then notes.
pub fn render_compact(name: &str, source: &str, diagnostic: &Diagnostic) -> String {
    let index = LineIndex::new(source);
    let (line, column) = index.line_col(diagnostic.primary.span.start as usize);
    let text = index.line_text(line);
    let width = source
        .get(diagnostic.primary.span.range())
        .map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
    let mut out = format!(
        "{}[{}]: {}\n  --> {name}:{line}:{column}\n   |\n{line:>3} | {text}\n   | {}{} {}",
        match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        diagnostic.code,
        diagnostic.message,
        " ".repeat(column - 1),
        "^".repeat(width),
        diagnostic.primary.message
    );
    for note in &diagnostic.notes {
        out.push_str(&format!("\n   = note: {note}"));
    }
    if let Some(help) = &diagnostic.help {
        out.push_str(&format!("\n   = help: {help}"));
    }
    out
}
