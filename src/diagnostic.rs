//! Diagnostics as data: what went wrong, where, and what would fix it.
//!
//! Stages push [`Diagnostic`]s into a `Vec` and keep going. Nothing here prints; turning diagnostics into text
//! happens at the edges (the CLI and the proc macro) through [`crate::render`].

use std::fmt;

/// A byte range `[start, end)` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The span `[start, end)`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The byte range, for slicing the source.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// A span with a short message drawn under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One finding, with everything needed to render it rustc-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The cause: the caret goes here.
    pub primary: Label,
    /// Related places (`declared here`, `first defined here`).
    pub secondary: Vec<Label>,
    /// `= note: ...` lines; the arithmetic behind the finding.
    pub notes: Vec<String>,
    /// `= help: ...`: a fix, when one is known.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a primary span; add labels, notes and help with the builder methods.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning with a primary span.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the text drawn under the primary span.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Adds a `note:` line.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the `help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Converts byte offsets to 1-based line and column numbers (columns count characters).
pub struct LineIndex<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `source`.
    pub fn new(source: &'a str) -> LineIndex<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            source,
            line_starts,
        }
    }

    /// The 1-based (line, column) of a byte offset; offsets past the end clamp to the end.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .source
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &'a str {
        // Line 0 and lines past the end have no text (not the whole source, and no underflow).
        let Some(&start) = line
            .checked_sub(1)
            .and_then(|index| self.line_starts.get(index))
        else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.source.len(), |next| next - 1);
        self.source
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $title:literal; )*) => {
        /// Every diagnostic archc can emit has a stable code; `archc explain CODE` describes it at length.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// All codes, in numeric order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as printed: `E0102`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// A one-line description.
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }

            /// Looks a code up by its printed form (case-insensitive).
            pub fn parse(text: &str) -> Option<Code> {
                let text = text.to_ascii_uppercase();
                Code::ALL.iter().copied().find(|code| code.as_str() == text)
            }
        }
    };
}

codes! {
    Syntax = "E0001", "syntax error";
    Yaml = "E0002", "malformed YAML architecture";
    LimitExceeded = "E0003", "input exceeds a size or nesting limit";
    UnknownCallee = "E0101", "unknown layer or block";
    DeclaredShapeMismatch = "E0102", "inferred output shape differs from the declared one";
    ConcatSpatialMismatch = "E0103", "concat branches disagree on spatial size";
    AddShapeMismatch = "E0104", "add branches disagree on shape";
    OutputTooSmall = "E0105", "window larger than its padded input";
    InvalidGroups = "E0106", "channels not divisible by groups";
    WrongInputRank = "E0107", "layer applied to a tensor of the wrong rank";
    TooManyArguments = "E0110", "too many positional arguments";
    MissingArgument = "E0111", "required argument missing";
    UnknownArgument = "E0112", "unknown keyword argument";
    DuplicateArgument = "E0113", "argument given twice";
    ArgumentType = "E0114", "argument of the wrong type";
    InvalidArgument = "E0115", "argument value out of range";
    PaddingTooLarge = "E0116", "pooling padding larger than half the kernel";
    UnknownName = "E0120", "unknown parameter name";
    Overflow = "E0121", "integer overflow";
    InvalidArithmetic = "E0122", "division by zero or a non-finite result";
    ExpressionType = "E0123", "operands of the wrong type";
    DuplicateDefinition = "E0130", "block or network defined twice";
    DuplicateName = "E0131", "statement name used twice";
    RecursiveBlock = "E0132", "block calls itself";
    MisplacedInput = "E0133", "missing or misplaced input statement";
    UnnamedWeights = "E0134", "layer with weights has no name";
    InvalidSideOutput = "E0135", "side output with an unknown or invalid source";
    MissingNetworkDefault = "E0136", "network parameter without a default";
    DuplicateParameter = "E0137", "parameter declared twice";
    ShapeRank = "E0138", "declared shape of the wrong rank";
    Unsupported = "E0140", "construct code generation cannot express";
    PoolDropsInput = "W0201", "floor-mode pooling ignores the last rows or columns";
    UnusedBlock = "W0202", "block never used";
    UnusedParameter = "W0203", "parameter never used";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_characters_and_ignores_carriage_returns() {
        let source = "ab\r\nçé x\n\nlast";
        let index = LineIndex::new(source);
        assert_eq!(index.line_col(0), (1, 1));
        assert_eq!(index.line_col(4), (2, 1));
        // `x` comes after two 2-byte characters and a space: column 4.
        assert_eq!(index.line_col(9), (2, 4));
        assert_eq!(index.line_col(source.len()), (4, 5));
        assert_eq!(index.line_col(usize::MAX), (4, 5));
        assert_eq!(index.line_text(1), "ab");
        assert_eq!(index.line_text(2), "çé x");
        assert_eq!(index.line_text(3), "");
        assert_eq!(index.line_text(4), "last");
        assert_eq!(index.line_text(0), "");
        assert_eq!(index.line_text(5), "");
    }

    #[test]
    fn empty_source_has_one_empty_line() {
        let index = LineIndex::new("");
        assert_eq!(index.line_col(0), (1, 1));
        assert_eq!(index.line_text(1), "");
    }
}
