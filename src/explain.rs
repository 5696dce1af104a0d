//! Long explanations of diagnostic codes, for `archc explain`.

use crate::diagnostic::Code;

/// The explanation of `code`, with a small example.
pub fn explanation(code: Code) -> &'static str {
    match code {
        _ => "No longer explanation has been written for this code yet.",
    }
}
