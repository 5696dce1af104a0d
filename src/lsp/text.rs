//! A document's text with its line starts: byte offsets (archc's spans) to and from LSP positions, which count
//! UTF-16 code units within a line.

use lsp_types::{Position, Range};

use crate::diagnostic::Span;

/// The text of an open document and where its lines start.
#[derive(Debug, Clone)]
pub struct Text {
    text: String,
    /// Byte offset of the first character of each line; lines end at `\n` (a `\r` before it is not content).
    line_starts: Vec<usize>,
}

impl Text {
    /// Indexes `text`.
    pub fn new(text: String) -> Text {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Text { text, line_starts }
    }

    /// The whole text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The byte range of line `line` (0-based) without its line break, if the line exists.
    fn line_range(&self, line: usize) -> Option<std::ops::Range<usize>> {
        let start = *self.line_starts.get(line)?;
        let mut end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        if end > start && self.text.as_bytes()[end - 1] == b'\r' && end < self.text.len() {
            end -= 1;
        }
        Some(start..end)
    }

    /// The LSP position of a byte offset. Offsets past the end clamp to the end; an offset inside a character
    /// counts as that character's start.
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let character = self.text[start..offset].encode_utf16().count();
        Position::new(to_u32(line), to_u32(character))
    }

    /// The byte offset of an LSP position, `None` for a line past the last. A character past the end of its
    /// line means the end of the line (as the protocol says); one inside a surrogate pair means that character's
    /// start.
    pub fn offset(&self, position: Position) -> Option<usize> {
        let range = self.line_range(usize::try_from(position.line).ok()?)?;
        let wanted = position.character as usize;
        let mut units = 0;
        for (index, ch) in self.text[range.clone()].char_indices() {
            if units + ch.len_utf16() > wanted {
                return Some(range.start + index);
            }
            units += ch.len_utf16();
        }
        Some(range.end)
    }

    /// The LSP range of a span.
    pub fn range(&self, span: Span) -> Range {
        Range::new(
            self.position(span.start as usize),
            self.position(span.end as usize),
        )
    }

    /// The byte range of an LSP range, `None` when either end is on a line past the last; a reversed range is
    /// put in order.
    pub fn span(&self, range: Range) -> Option<std::ops::Range<usize>> {
        let (a, b) = (self.offset(range.start)?, self.offset(range.end)?);
        Some(a.min(b)..a.max(b))
    }

    /// The byte range of an LSP range with ends past the last line clamped to the end of the text (an editor
    /// asks for hints over its viewport, which may reach past the end).
    pub fn clamped_span(&self, range: Range) -> std::ops::Range<usize> {
        let clamp = |p: Position| self.offset(p).unwrap_or(self.text.len());
        let (a, b) = (clamp(range.start), clamp(range.end));
        a.min(b)..a.max(b)
    }

    /// The range covering the whole text.
    pub fn full_range(&self) -> Range {
        Range::new(Position::new(0, 0), self.position(self.text.len()))
    }

    /// The byte offset where the line holding `offset` starts.
    pub fn line_start(&self, offset: usize) -> usize {
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        self.line_starts[line]
    }

    /// Replaces a byte range (an incremental change) and re-indexes.
    pub fn replace(&mut self, range: std::ops::Range<usize>, with: &str) {
        self.text.replace_range(range, with);
        *self = Text::new(std::mem::take(&mut self.text));
    }
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_of_non_ascii_comments() {
        // `ö`, `ß`, `→` and `×` are one UTF-16 unit each (2, 2, 3 and 2 bytes in UTF-8); `𝟚` is two units
        // (4 bytes).
        let source = "# größe → 28×28\nx = relu # 𝟚 y\n";
        let text = Text::new(source.to_string());
        let arrow = source.find('→').unwrap();
        // `#`, space, `g`, `r` (4 bytes), `ö`, `ß` (4), `e`, space (2).
        assert_eq!(arrow, 10);
        // "# größe " is 8 characters before the arrow.
        assert_eq!(text.position(arrow), Position::new(0, 8));
        assert_eq!(text.offset(Position::new(0, 8)), Some(arrow));
        let last = source.find("28\n").unwrap();
        // "# größe → 28×" is 13 characters.
        assert_eq!(text.position(last), Position::new(0, 13));
        let y = source.find('y').unwrap();
        // "x = relu # " is 11 units, `𝟚` two more, then a space: `y` at 14.
        assert_eq!(text.position(y), Position::new(1, 14));
        assert_eq!(text.offset(Position::new(1, 14)), Some(y));
        // Inside the surrogate pair: the character's start.
        let pair = source.find('𝟚').unwrap();
        assert_eq!(text.offset(Position::new(1, 12)), Some(pair));
        // Inside a UTF-8 sequence: the character's start.
        assert_eq!(text.position(arrow + 1), Position::new(0, 8));
    }

    #[test]
    fn out_of_range_positions_clamp_to_the_line_or_are_refused() {
        let text = Text::new("ab\r\ncd".to_string());
        assert_eq!(text.offset(Position::new(0, 99)), Some(2));
        assert_eq!(text.offset(Position::new(1, 99)), Some(6));
        assert_eq!(text.offset(Position::new(2, 0)), None);
        assert_eq!(text.offset(Position::new(u32::MAX, u32::MAX)), None);
        assert_eq!(text.position(usize::MAX), Position::new(1, 2));
        assert_eq!(text.full_range().end, Position::new(1, 2));
    }

    #[test]
    fn incremental_replacement_reindexes_lines() {
        let mut text = Text::new("a\nb\nc".to_string());
        let range = text
            .span(Range::new(Position::new(1, 0), Position::new(2, 0)))
            .unwrap();
        text.replace(range, "é\nx\n");
        assert_eq!(text.as_str(), "a\né\nx\nc");
        assert_eq!(text.offset(Position::new(3, 0)), Some(7));
    }
}
