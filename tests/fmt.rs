//! `archc fmt`: idempotent, meaning-preserving, comment-preserving, over every shipped architecture, every file of
//! the broken-file corpus that parses, and random re-spacings of them (blanks, line breaks and comments inserted
//! and removed between tokens), and generated files with long chains (VGG-style stages, comments between the
//! links); long chains are broken one link per line and no line is wider than `MAX_WIDTH`; plus a snapshot of
//! a deliberately messy file and a VGG-16 written one layer per line beside its expected formatting.

use std::path::{Path, PathBuf};

use archc::fmt::{format_source, MAX_WIDTH};
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

/// The corpus: every architecture, the formatter's fixtures, and every broken file that parses (the others
/// have nothing to format).
fn corpus() -> Vec<(String, String)> {
    let mut files = arch_files("architectures");
    files.extend(arch_files("tests/fixtures/fmt"));
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

/// The lines of `formatted` wider than [`MAX_WIDTH`], comments left out (a comment is the writer's own text).
fn wide_lines(formatted: &str) -> Vec<&str> {
    formatted
        .lines()
        .filter(|line| {
            let code = line.find('#').map_or(*line, |hash| &line[..hash]);
            code.trim_end().chars().count() > MAX_WIDTH
        })
        .collect()
}

#[test]
fn vgg_written_one_layer_per_line_keeps_one_link_per_line() {
    let read = |file: &str| {
        std::fs::read_to_string(root().join("tests/fixtures/fmt").join(file)).expect("fixture")
    };
    let source = read("vgg16.arch");
    let expected = read("vgg16.formatted.arch");
    let formatted = check_formatting("vgg16.arch", &source);
    assert_eq!(formatted, expected);
    assert_eq!(fmt(&expected), expected, "the expected file is formatted");
    for line in expected.lines() {
        assert!(line.chars().count() <= MAX_WIDTH, "{line:?}");
    }
    // The same network with every chain on one line (a 737-column `features` row, as the issue saw) formats to
    // the same text, comments aside; the comments are what keep `features` broken in the fixture.
    let flat: String = source
        .lines()
        .map(|line| line.find('#').map_or(line, |hash| &line[..hash]).trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let flat = flat.replace("{ ", "{\n").replace(" }", "\n}\n");
    let without_comments: String = expected
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| line.find("  #").map_or(line, |hash| &line[..hash]))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        check_formatting("vgg16 on one line", &flat),
        without_comments
    );
}

/// `network n {`, `input`, the given body lines, `}`.
fn network(body: &[&str]) -> String {
    format!(
        "network n {{\n    input [8, 8, 8]\n{}\n}}\n",
        body.join("\n")
    )
}

#[test]
fn a_chain_that_fits_stays_on_one_line_and_one_column_more_breaks_it() {
    // Ten `relu`s: 10 * 4 + 9 * 4 (` -> `) = 76 columns; with the indent (4) and ` = ` (3) a 17-letter name
    // makes the line exactly 100 columns, an 18-letter one 101.
    let relus = ["relu"; 10].join(" -> ");
    assert_eq!(relus.len(), 76);
    let fits = format!("    {} = {relus}", "a".repeat(17));
    assert_eq!(fits.len(), 100);
    assert_eq!(fmt(&network(&[&fits])), network(&[&fits]));
    let long = format!("    {} = {relus}", "a".repeat(18));
    let broken = format!(
        "    {} = relu\n{}",
        "a".repeat(18),
        ["        -> relu"; 9].join("\n")
    );
    assert_eq!(
        check_formatting("101 columns", &network(&[&long])),
        network(&[&broken])
    );
}

#[test]
fn a_comment_between_links_breaks_the_chain() {
    let source =
        network(&["    x = relu -> relu  # first two\n    -> relu -> # after an arrow\n relu"]);
    let expected = network(&[
        "    x = relu",
        "        -> relu  # first two",
        "        -> relu  # after an arrow",
        "        -> relu",
    ]);
    assert_eq!(check_formatting("comments", &source), expected);
    // An own-line comment between links stays on a line of its own, at the links' indentation.
    let source = network(&["    x = relu ->\n    # why\n    relu : [8, 8, 8]"]);
    let expected = network(&[
        "    x = relu",
        "        # why",
        "        -> relu : [8, 8, 8]",
    ]);
    assert_eq!(check_formatting("own-line comment", &source), expected);
}

#[test]
fn the_declared_size_follows_the_last_link_or_starts_a_line_when_it_does_not_fit() {
    // `conv2d(8, 3, pad = 1)` is 21 columns: a line of 4 + 5 + 3 + 21 = 33 + 4 * 16 = 97 columns before the
    // declared size, which would make it 97 + 3 + 9 = 109.
    let links = ["conv2d(8, 3, pad = 1)"; 5].join(" -> ");
    let source = network(&[&format!("    wider = {links} : [8, 8, 8]")]);
    let expected = network(&[
        "    wider = conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1) : [8, 8, 8]",
    ]);
    assert_eq!(
        check_formatting("declared after the last link", &source),
        expected
    );
    // One link, 4 + 44 + 3 + 46 = 97 columns, with its declared size 109: the size goes to the next line.
    let name = "n".repeat(44);
    let link = "conv2d(8, 3, stride = 1, pad = 1, bias = true)";
    assert_eq!(link.len(), 46);
    let source = network(&[&format!("    {name} = {link} : [8, 8, 8]")]);
    let expected = network(&[&format!("    {name} = {link}"), "        : [8, 8, 8]"]);
    assert_eq!(
        check_formatting("declared on its own line", &source),
        expected
    );
}

#[test]
fn groups_in_a_broken_chain_indent_their_branches_under_the_arrow() {
    let links = ["conv2d(8, 3, pad = 1)"; 4].join(" -> ");
    let source = network(&[&format!(
        "    x = {links} -> concat {{ a = relu  b = relu }} -> relu : [16, 8, 8]"
    )]);
    let expected = network(&[
        "    x = conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> conv2d(8, 3, pad = 1)",
        "        -> concat {",
        "            a = relu",
        "            b = relu",
        "        }",
        "        -> relu : [16, 8, 8]",
    ]);
    assert_eq!(
        check_formatting("group in a broken chain", &source),
        expected
    );
    // A group chain whose lines fit keeps its links around the braces, and a comment inside the braces does
    // not break it.
    let source = network(&["    x = relu -> add { a = relu  # a\n b = relu } -> relu"]);
    let expected = network(&[
        "    x = relu -> add {",
        "        a = relu  # a",
        "        b = relu",
        "    } -> relu",
    ]);
    assert_eq!(check_formatting("group chain that fits", &source), expected);
}

#[test]
fn alignment_never_pushes_a_row_past_the_limit() {
    // `x`'s row is 4 + 1 + 3 + 71 (three 21-column links, two arrows) + 3 + 9 = 91 columns with single spaces.
    // Aligned under a 20-letter name its prefix grows by 19 to 98 columns, and the `:` column (4 past it)
    // would end the row at 98 + 4 + 11 = 113: it keeps single spaces, and the short row alone sets the column
    // (4 + 20 + 3 + 4 = 31, so `:` at 35).
    let links = ["conv2d(8, 3, pad = 1)"; 3].join(" -> ");
    assert_eq!(links.len(), 71);
    let row = format!("    x = {links} : [8, 8, 8]");
    assert_eq!(row.len(), 91);
    let long = "a".repeat(20);
    let source = network(&[&format!("    {long} = relu : [8, 8, 8]"), &row]);
    let formatted = check_formatting("alignment", &source);
    let short = format!("    {long} = relu{}: [8, 8, 8]", " ".repeat(4));
    assert_eq!(formatted, network(&[&short, &row]));
}

#[test]
fn a_link_longer_than_the_limit_is_the_only_reason_for_a_wide_line() {
    // 19 operators (the limit is 32), 197 columns.
    let sum = (1..=20)
        .map(|i| (1_000_000 + i).to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    assert_eq!(sum.len(), 197);
    let source = format!(
        "block wide(p) {{\n    relu\n}}\n{}",
        network(&[&format!("    x = relu -> wide({sum}) -> relu")])
    );
    let formatted = check_formatting("long link", &source);
    assert_eq!(
        wide_lines(&formatted),
        [format!("        -> wide({sum})")],
        "{formatted}"
    );
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
                        || (bytes[pos] == b'.' && bytes.get(pos + 1) != Some(&b'.')))
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
                // A name with values in it (`denselayer{i}`) is one word: no blank may split it.
                loop {
                    while pos < bytes.len()
                        && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_')
                    {
                        pos += 1;
                    }
                    match source[pos..]
                        .strip_prefix('{')
                        .and_then(|rest| rest.find('}'))
                    {
                        Some(close) => pos += close + 2,
                        None => break,
                    }
                }
                TokenKind::Word
            }
            // A name that starts with a value (`{i} = ...`, `{at + 1} = ...`) is one word too; a body's or a
            // sequence's `{` is followed by a blank.
            b'{' if bytes.get(pos + 1).is_some_and(|b| !b.is_ascii_whitespace())
                && source[pos..]
                    .find('}')
                    .is_some_and(|close| !source[pos..pos + close].contains('\n')) =>
            {
                while let Some(close) = source[pos..]
                    .strip_prefix('{')
                    .and_then(|rest| rest.find('}'))
                {
                    pos += close + 2;
                    while pos < bytes.len()
                        && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_')
                    {
                        pos += 1;
                    }
                }
                TokenKind::Word
            }
            // A range's `..` or `..=`, and a spread's `..`.
            b'.' if bytes.get(pos + 1) == Some(&b'.') => {
                pos += if bytes.get(pos + 2) == Some(&b'=') {
                    3
                } else {
                    2
                };
                TokenKind::Punct
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

// --- generated long chains ------------------------------------------------------------------------------------

/// A link of a generated chain: the layers of VGG-style stages.
fn link() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("conv2d(64, 3, pad = 1)"),
        Just("conv2d(128, 3, pad = 1)"),
        Just("conv2d(512, 3, pad = 1, bias = false)"),
        Just("relu"),
        Just("batch_norm(eps = 0.001)"),
        Just("max_pool(2, stride = 2, ceil = true)"),
        Just("dropout(0.5)"),
    ]
}

/// How a generated chain is written between two links.
#[derive(Debug, Clone, Copy)]
enum Joint {
    Arrow,
    ArrowEndsLine,
    ArrowStartsLine,
    CommentAfterArrow,
    CommentBeforeArrow,
    OwnLineComment,
}

fn joint() -> impl Strategy<Value = Joint> {
    // Plain arrows most of the time, so that many chains have no comment and are broken for their width only.
    prop_oneof![
        6 => Just(Joint::Arrow),
        2 => Just(Joint::ArrowEndsLine),
        2 => Just(Joint::ArrowStartsLine),
        1 => Just(Joint::CommentAfterArrow),
        1 => Just(Joint::CommentBeforeArrow),
        1 => Just(Joint::OwnLineComment),
    ]
}

/// A chain of up to 40 links (13 convolutions of VGG-16 with their activations and pools is 31).
fn chain() -> impl Strategy<Value = Vec<(Joint, &'static str)>> {
    proptest::collection::vec((joint(), link()), 1..40)
}

fn write_chain(links: &[(Joint, &str)], comments: &mut usize) -> String {
    let mut out = String::new();
    for (index, (joint, link)) in links.iter().enumerate() {
        if index > 0 {
            *comments += 1;
            let n = *comments;
            out.push_str(&match joint {
                Joint::Arrow => " -> ".to_string(),
                Joint::ArrowEndsLine => " ->\n            ".to_string(),
                Joint::ArrowStartsLine => "\n        -> ".to_string(),
                Joint::CommentAfterArrow => format!(" ->  # after arrow {n}\n        "),
                Joint::CommentBeforeArrow => format!("  # before arrow {n}\n    -> "),
                Joint::OwnLineComment => format!("\n    # own line {n}\n    -> "),
            });
        }
        out.push_str(link);
    }
    out
}

/// A file with long chains everywhere a chain can be: a block body, a network row with and without a name and
/// a declared size, a branch of an `add`, a side output.
fn long_chain_file() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(chain(), 5),
        any::<bool>(),
        prop_oneof![
            Just("x"),
            Just("features"),
            Just("a_rather_long_statement_name")
        ],
    )
        .prop_map(|(chains, declared, name)| {
            let mut comments = 0;
            let mut chains = chains.iter().map(|c| write_chain(c, &mut comments));
            let mut next = || chains.next().expect("five chains");
            let declared = if declared { " : [512, 7, 7]" } else { "" };
            format!(
                "block stage(c) {{\n    conv = {}\n}}\n\
                 network generated(classes = 10) {{\n    input [3, 224, 224]\n    \
                 {name} = {}{declared}\n    {}\n    \
                 body = add {{\n        main = {}\n        identity\n    }} -> relu\n    \
                 side aux = {} from body : [classes]\n    \
                 head = adaptive_avg_pool(1) -> flatten -> linear(classes) : [classes]\n}}\n",
                next(),
                next(),
                next(),
                next(),
                next(),
            )
        })
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

    /// Long chains, written every way: formatted idempotently, to the same meaning, every comment kept, and no
    /// line wider than the limit (every generated link is far shorter).
    #[test]
    fn long_chains_break_one_link_per_line_within_the_limit(source in long_chain_file()) {
        prop_assert!(archc::syntax::parse(&source).is_ok(), "the generator wrote\n{}", source);
        let formatted = check_formatting("generated", &source);
        let wide = wide_lines(&formatted);
        prop_assert!(wide.is_empty(), "lines over {} columns: {:?}\n{}", MAX_WIDTH, wide, formatted);
    }

    /// The same files re-spaced at random (blanks, line breaks and comments inserted and removed).
    #[test]
    fn respaced_long_chains_keep_their_meaning_and_width(
        source in long_chain_file(),
        edits in proptest::collection::vec((0usize..100_000, gap()), 1..40),
    ) {
        let mutated = mutate(&source, &edits, false);
        prop_assert!(archc::syntax::parse(&mutated).is_ok(), "the mutation broke\n{}", mutated);
        let formatted = check_formatting("generated, respaced", &mutated);
        let wide = wide_lines(&formatted);
        prop_assert!(wide.is_empty(), "lines over {} columns: {:?}\n{}", MAX_WIDTH, wide, formatted);
    }

    /// Anything at all: formatting never panics, and whatever parses formats to something that parses.
    #[test]
    fn arbitrary_text_never_panics(text in "[a-z0-9_ \\n#(){}\\[\\],=:+*/%.-]{0,200}") {
        if let Ok(formatted) = format_source(&text) {
            prop_assert!(archc::syntax::parse(&formatted).is_ok(), "{:?} formatted to {:?}", text, formatted);
        }
    }
}
