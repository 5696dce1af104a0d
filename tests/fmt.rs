//! `archc fmt`: idempotent, meaning-preserving, comment-preserving, over every shipped architecture, every file of
//! the broken-file corpus that parses, and random re-spacings of them (blanks, line breaks and comments inserted
//! and removed between tokens); plus a snapshot of a deliberately messy file.

use std::path::{Path, PathBuf};

use archc::fmt::format_source;
use archc::ir::Network;
use archc::SourceKind;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn arch_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "arch"))
        .collect();
    files.sort();
    files
}

/// The corpus: every architecture, and every broken file that parses (the others have nothing to format).
fn corpus() -> Vec<(String, String)> {
    let mut files = arch_files("architectures");
    files.extend(arch_files("tests/fixtures/errors"));
    files
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path).expect("readable fixture");
            (name(&path), source)
        })
        .filter(|(_, source)| archc::syntax::parse(source).is_ok())
        .collect()
}

fn name(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What a source means: its checked networks with source positions set aside, and its diagnostics by code and
/// message (a message never quotes a position).
fn meaning(source: &str) -> (Vec<Network>, Vec<(String, String)>) {
    let checked = archc::compile(SourceKind::Arch, source);
    (
        checked
            .networks
            .iter()
            .map(Network::without_spans)
            .collect(),
        checked
            .diagnostics
            .iter()
            .map(|d| (d.code.as_str().to_string(), d.message.clone()))
            .collect(),
    )
}

/// The comments of a source, in order (`#` starts a comment wherever it is).
fn comments(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            line.find('#')
                .map(|hash| line[hash..].trim_end().to_string())
        })
        .collect()
}

fn fmt(source: &str) -> String {
    format_source(source).unwrap_or_else(|d| panic!("does not parse: {d:?}\n{source}"))
}

/// The properties every formatting must have, for one input.
fn check_formatting(label: &str, source: &str) -> String {
    let once = fmt(source);
    let twice = fmt(&once);
    assert_eq!(once, twice, "{label}: formatting is not idempotent");
    assert_eq!(
        meaning(source),
        meaning(&once),
        "{label}: formatting changed the meaning\n--- input\n{source}\n--- formatted\n{once}"
    );
    assert_eq!(
        comments(source),
        comments(&once),
        "{label}: comments lost or reordered\n--- formatted\n{once}"
    );
    once
}

#[test]
fn corpus_formats_idempotently_and_keeps_its_meaning() {
    let corpus = corpus();
    // Every architecture, and most of the broken files: a syntax error is the only reason to be left out.
    assert!(corpus.len() > 40, "only {} files parse", corpus.len());
    for (name, source) in &corpus {
        check_formatting(name, source);
    }
}

#[test]
fn shipped_architectures_are_formatted() {
    for path in arch_files("architectures") {
        let source = std::fs::read_to_string(&path).expect("readable");
        assert!(
            fmt(&source) == source,
            "{} is not formatted; run `archc fmt` on it",
            name(&path)
        );
    }
}

#[test]
fn messy_file_snapshot() {
    let source =
        std::fs::read_to_string(root().join("tests/fixtures/fmt/messy.arch")).expect("fixture");
    let formatted = check_formatting("messy.arch", &source);
    insta::assert_snapshot!("messy", formatted);
}

#[test]
fn syntax_errors_are_reported_not_formatted() {
    let diagnostics = format_source("network n {\n    input [3, 8, 8]\n    x = conv2d(8, 3\n}\n")
        .expect_err("an unclosed `(` is a syntax error");
    assert_eq!(diagnostics[0].code, archc::Code::Syntax);
}

// --- mutations ----------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Word,
    Punct,
    Comment,
}

/// A token of `.arch` text: a word (name, keyword or number), punctuation (`->` is one), or a comment.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    kind: TokenKind,
}

fn tokens(source: &str) -> Vec<Token> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let byte = bytes[pos];
        let kind = match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {
                pos += 1;
                continue;
            }
            b'#' => {
                pos = source[pos..].find('\n').map_or(bytes.len(), |i| pos + i);
                TokenKind::Comment
            }
            b'0'..=b'9' => {
                // Digits and `_`, then a fraction and an exponent (whose sign belongs to the number).
                while pos < bytes.len()
                    && (bytes[pos].is_ascii_alphanumeric()
                        || bytes[pos] == b'_'
                        || bytes[pos] == b'.')
                {
                    if matches!(bytes[pos], b'e' | b'E')
                        && matches!(bytes.get(pos + 1), Some(b'+' | b'-'))
                    {
                        pos += 1;
                    }
                    pos += 1;
                }
                TokenKind::Word
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while pos < bytes.len()
                    && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_')
                {
                    pos += 1;
                }
                TokenKind::Word
            }
            b'-' if bytes.get(pos + 1) == Some(&b'>') => {
                pos += 2;
                TokenKind::Punct
            }
            _ => {
                pos += source[pos..].chars().next().map_or(1, char::len_utf8);
                TokenKind::Punct
            }
        };
        out.push(Token {
            start,
            end: pos,
            kind,
        });
    }
    out
}

/// What to put between two tokens.
#[derive(Debug, Clone, Copy)]
enum Gap {
    Nothing,
    Space,
    Spaces,
    Newline,
    BlankLine,
    TrailingComment,
    OwnLineComment,
    /// Drops the comment that follows the gap (when one does).
    DropComment,
}

fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        Just(Gap::Nothing),
        Just(Gap::Space),
        Just(Gap::Spaces),
        Just(Gap::Newline),
        Just(Gap::BlankLine),
        Just(Gap::TrailingComment),
        Just(Gap::OwnLineComment),
        Just(Gap::DropComment),
    ]
}

/// Rewrites the gaps at the chosen token boundaries. Every result still parses to the same AST: words stay
/// apart, a comment still ends at a line break, and nothing but blanks and comments changes.
fn mutate(source: &str, edits: &[(usize, Gap)], horizontal_only: bool) -> String {
    let tokens = tokens(source);
    if tokens.is_empty() {
        return source.to_string();
    }
    let mut chosen: Vec<Option<Gap>> = vec![None; tokens.len()];
    for (index, gap) in edits {
        chosen[index % tokens.len()] = Some(*gap);
    }
    let mut out = String::new();
    for (index, token) in tokens.iter().enumerate() {
        // The gap before this token.
        let previous = index.checked_sub(1).map(|i| tokens[i]);
        let original = &source[previous.map_or(0, |p| p.end)..token.start];
        let mut gap = match chosen[index] {
            None => original.to_string(),
            Some(_) if horizontal_only && original.contains('\n') => original.to_string(),
            Some(_)
                if horizontal_only
                    && !matches!(chosen[index], Some(Gap::Nothing | Gap::Space | Gap::Spaces)) =>
            {
                original.to_string()
            }
            Some(Gap::Nothing) => String::new(),
            Some(Gap::Space) => " ".to_string(),
            Some(Gap::Spaces) => " \t  ".to_string(),
            Some(Gap::Newline) => "\n".to_string(),
            Some(Gap::BlankLine) => "\n\n".to_string(),
            Some(Gap::TrailingComment) => format!(" # inserted {index}\n"),
            Some(Gap::OwnLineComment) => format!("\n# inserted {index}\n"),
            Some(Gap::DropComment) => original.to_string(),
        };
        // Two words (`conv1`, `side`, `64`) need a blank between them to stay two.
        let words_meet =
            previous.is_some_and(|p| p.kind == TokenKind::Word) && token.kind == TokenKind::Word;
        if gap.is_empty() && words_meet {
            gap = " ".to_string();
        }
        if previous.is_some_and(|p| p.kind == TokenKind::Comment) && !gap.contains('\n') {
            gap.push('\n');
        }
        out.push_str(&gap);
        let drop = !horizontal_only
            && matches!(chosen[index], Some(Gap::DropComment))
            && token.kind == TokenKind::Comment;
        if !drop {
            out.push_str(&source[token.start..token.end]);
        }
    }
    out.push_str(&source[tokens.last().map_or(0, |t| t.end)..]);
    out
}

#[test]
fn mutations_change_only_blanks_and_comments() {
    let source = "network n {\n    input [3, 8, 8]  # rgb\n    x = relu\n}\n";
    // Tokens: network n { input [ 3 , 8 , 8 ] # rgb x = relu } (index 0 is `network`).
    assert_eq!(tokens(source).len(), 16);
    let edits = [
        (1, Gap::Nothing),         // `network` `n` are words: a space is kept
        (3, Gap::BlankLine),       // before `input`
        (5, Gap::TrailingComment), // before `3`
        (11, Gap::DropComment),    // `# rgb` goes, its line break stays
        (13, Gap::Nothing),        // before `=`
        (15, Gap::OwnLineComment), // before `}`
    ];
    assert_eq!(
        mutate(source, &edits, false),
        "network n {\n\ninput [ # inserted 5\n3, 8, 8]  \n    x= relu\n# inserted 15\n}\n"
    );
    // Horizontal mutation uses only the blank edits, and leaves gaps holding a line break alone.
    assert_eq!(
        mutate(source, &edits, true),
        "network n {\n    input [3, 8, 8]  # rgb\n    x= relu\n}\n"
    );
}

fn corpus_index() -> impl Strategy<Value = usize> {
    0usize..1000
}

proptest! {
    #![proptest_config(config())]

    /// Random blanks, line breaks and comments, inserted and removed between tokens.
    #[test]
    fn respaced_files_format_idempotently_and_keep_their_meaning(
        file in corpus_index(),
        edits in proptest::collection::vec((0usize..100_000, gap()), 1..40),
    ) {
        let corpus = corpus();
        let (name, source) = &corpus[file % corpus.len()];
        let mutated = mutate(source, &edits, false);
        prop_assert!(archc::syntax::parse(&mutated).is_ok(), "the mutation broke {}:\n{}", name, mutated);
        check_formatting(name, &mutated);
    }

    /// Blanks changed within lines (no line break added or removed, no comment) do not change the output at all.
    #[test]
    fn horizontal_spacing_does_not_matter(
        file in corpus_index(),
        edits in proptest::collection::vec(
            (0usize..100_000, prop_oneof![Just(Gap::Nothing), Just(Gap::Space), Just(Gap::Spaces)]),
            1..60,
        ),
    ) {
        let corpus = corpus();
        let (name, source) = &corpus[file % corpus.len()];
        let mutated = mutate(source, &edits, true);
        prop_assert_eq!(fmt(&mutated), fmt(source), "{} respaced:\n{}", name, mutated);
    }

    /// Anything at all: formatting never panics, and whatever parses formats to something that parses.
    #[test]
    fn arbitrary_text_never_panics(text in "[a-z0-9_ \\n#(){}\\[\\],=:+*/%.-]{0,200}") {
        if let Ok(formatted) = format_source(&text) {
            prop_assert!(archc::syntax::parse(&formatted).is_ok(), "{:?} formatted to {:?}", text, formatted);
        }
    }
}
