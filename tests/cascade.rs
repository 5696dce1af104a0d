//! One mistake, one error: after a row whose declared size disagrees with what it computes, the rows after it
//! are checked against both sizes, so neither a wrong declaration nor a wrong computation upstream makes the
//! correct rows after it report errors. Every test states the exact errors (code and line) it expects; the
//! lines are found by searching the source for the row's text, not taken from the checker.

use archc::SourceKind;

fn read(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/errors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every error as (code, 1-based line of its primary span).
fn errors(source: &str) -> Vec<(&'static str, usize)> {
    archc::compile(SourceKind::Arch, source)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let line = source[..d.primary.span.start as usize]
                .matches('\n')
                .count()
                + 1;
            (d.code.as_str(), line)
        })
        .collect()
}

/// The 1-based line of the only line that starts (after indentation) with `row`.
fn line_of(source: &str, row: &str) -> usize {
    let lines: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with(row))
        .map(|(index, _)| index + 1)
        .collect();
    assert_eq!(lines.len(), 1, "`{row}` starts {} lines", lines.len());
    lines[0]
}

#[test]
fn a_wrong_declaration_is_one_error_on_its_row() {
    // layer2 declares [128, 56, 56] but gives [128, 28, 28]; layer3's [256, 14, 14] is right.
    let source = read("cascade_wrong_declaration.arch");
    assert_eq!(errors(&source), [("E0102", line_of(&source, "layer2 "))]);
}

#[test]
fn a_wrong_input_size_is_one_error_not_one_per_row() {
    // A 256×256 input: conv1 gives 128×128, not the declared 112×112; every later row is declared for 224.
    let source = read("cascade_wrong_input_size.arch");
    assert_eq!(errors(&source), [("E0102", line_of(&source, "conv1 "))]);
}

#[test]
fn a_wrong_stride_upstream_is_one_error() {
    // layer2's stride 1 keeps 56×56; the rows after it are declared for the 28×28 it should give.
    let source = read("cascade_wrong_stride.arch");
    assert_eq!(errors(&source), [("E0102", line_of(&source, "layer2 "))]);
}

#[test]
fn the_wrong_declaration_alone_still_reports_what_the_row_gives() {
    let source = read("cascade_wrong_declaration.arch");
    let checked = archc::compile(SourceKind::Arch, &source);
    let [error] = checked.diagnostics.as_slice() else {
        panic!("{:?}", checked.diagnostics)
    };
    // 56 → 28 with a stride-2 3×3 convolution, pad 1: floor((56 + 2 − 3) / 2) + 1 = 28.
    assert_eq!(
        error.message,
        "`layer2` produces 28×28 maps, the declaration says 56×56"
    );
}

/// Eight-channel 3×3 convolutions with stride 2 and pad 1 halve a map: n → floor((n + 2 − 3) / 2) + 1.
const HALVE: &str = "conv2d(8, 3, stride = 2, pad = 1)";

#[test]
fn a_row_that_contradicts_both_readings_is_reported() {
    // From 64: a gives 32. b gives 16 but declares 8. c gives 8 from the real 16, 4 from the declared 8,
    // and declares 2: both are contradicted, so c is an error too. After c, d reads c's declared 2 (→ 1) or
    // c's size computed from b's declaration, 4 (→ 2); it declares 2, which agrees with the second.
    let source = format!(
        "network n {{
    input [8, 64, 64]
    a = {HALVE} : [8, 32, 32]
    b = {HALVE} : [8, 8, 8]
    c = {HALVE} : [8, 2, 2]
    d = {HALVE} : [8, 2, 2]
    e = {HALVE} : [8, 1, 1]
}}
"
    );
    assert_eq!(
        errors(&source),
        [
            ("E0102", line_of(&source, "b =")),
            ("E0102", line_of(&source, "c ="))
        ]
    );
    // c is reported as read from b's declared 8×8, and says what it gives from the real 16×16.
    let checked = archc::compile(SourceKind::Arch, &source);
    let c = &checked.diagnostics[1];
    assert_eq!(c.message, "`c` produces 4×4 maps, the declaration says 2×2");
    assert!(
        c.notes.contains(
            &"an earlier row declares another size than it computes, so this row was checked from both: \
              from [8, 8, 8] it gives [8, 4, 4], from [8, 16, 16] it gives [8, 8, 8]; its declaration \
              matches neither"
                .to_string()
        ),
        "{:?}",
        c.notes
    );
}

#[test]
fn an_undeclared_row_that_fails_only_under_the_wrong_declaration_is_quiet() {
    // a gives 16×16 but declares 4×4. An 8×8 pool does not fit 4×4, but it fits the real 16×16 (→ 2×2):
    // the pool is right, the declaration was wrong. fc's 10 features agree either way.
    let source = format!(
        "network n {{
    input [8, 32, 32]
    a    = {HALVE} : [8, 4, 4]
    pool = max_pool(8)
    fc   = flatten -> linear(10) : [10]
}}
"
    );
    assert_eq!(errors(&source), [("E0102", line_of(&source, "a "))]);
}

#[test]
fn an_undeclared_row_that_fails_under_both_readings_is_reported() {
    // a gives 16×16 and declares 4×4; a 20×20 pool fits neither.
    let source = format!(
        "network n {{
    input [8, 32, 32]
    a    = {HALVE} : [8, 4, 4]
    pool = max_pool(20)
}}
"
    );
    let found = errors(&source);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], ("E0102", line_of(&source, "a ")));
    assert_eq!(found[1].1, line_of(&source, "pool "));
}

#[test]
fn a_side_output_reads_both_sizes_of_its_source() {
    // b gives 16×16 and declares 8×8; one side output is declared for each, and both are accepted. The
    // third contradicts both.
    let source = format!(
        "network n {{
    input [8, 64, 64]
    a = {HALVE} : [8, 32, 32]
    b = {HALVE} : [8, 8, 8]
    side real     = {HALVE} from b : [8, 8, 8]
    side declared = {HALVE} from b : [8, 4, 4]
    side neither  = {HALVE} from b : [8, 2, 2]
    c = {HALVE} : [8, 4, 4]
}}
"
    );
    assert_eq!(
        errors(&source),
        [
            ("E0102", line_of(&source, "b =")),
            ("E0102", line_of(&source, "side neither"))
        ]
    );
}

#[test]
fn a_wrong_declaration_inside_a_block_is_one_error() {
    // The block is used on 32×32 maps: a gives 16×16 and declares 8×8; b is declared for the real 16×16.
    let source = format!(
        "block stage {{
    a = {HALVE} : [8, 8, 8]
    b = {HALVE} : [8, 8, 8]
}}
network n {{
    input [8, 32, 32]
    s = stage : [8, 8, 8]
    t = {HALVE} : [8, 4, 4]
}}
"
    );
    assert_eq!(errors(&source), [("E0102", line_of(&source, "a ="))]);
}

#[test]
fn a_wrong_declaration_at_the_end_of_a_block_does_not_spread_to_its_callers() {
    // The block's last row gives 16×16 on 32×32 maps but declares 8×8 (reported there). One caller declares
    // the real 16×16, the other the block's 8×8: each agrees with one of what the block may give.
    let source = format!(
        "block stage {{
    a = {HALVE} : [8, 8, 8]
}}
network n {{
    input [8, 32, 32]
    real     = stage : [8, 16, 16]
    real_t   = {HALVE} : [8, 8, 8]
}}
network m {{
    input [8, 32, 32]
    declared   = stage : [8, 8, 8]
    declared_t = {HALVE} : [8, 4, 4]
}}
"
    );
    assert_eq!(errors(&source), [("E0102", line_of(&source, "a ="))]);
}

#[test]
fn a_wrong_branch_declaration_does_not_spread_past_a_declared_row() {
    // Branch y declares 8 channels but gives 4: the concat cannot be formed, so the row goes on with its
    // declared [12, 16, 16], and the row after it is checked against that.
    let source = "network n {
    input [8, 16, 16]
    m = concat {
        x = conv2d(8, 1)
        y = conv2d(4, 1) : [8, 16, 16]
    } : [12, 16, 16]
    z = conv2d(4, 1) : [4, 16, 16]
}
";
    assert_eq!(errors(source), [("E0102", line_of(source, "y ="))]);
}

#[test]
fn once_settled_the_rows_read_one_size_again() {
    // After the wrong declaration is settled by c, the rows read one size again: d is wrong under it and is
    // reported, computed from c's 8×8 (→ 4×4), not from anything b declared.
    let source = format!(
        "network n {{
    input [8, 64, 64]
    a = {HALVE} : [8, 32, 32]
    b = {HALVE} : [8, 32, 32]
    c = {HALVE} : [8, 8, 8]
    d = {HALVE} : [8, 8, 8]
}}
"
    );
    let checked = archc::compile(SourceKind::Arch, &source);
    let messages: Vec<&str> = checked
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "`b` produces 16×16 maps, the declaration says 32×32",
            "`d` produces 4×4 maps, the declaration says 8×8"
        ]
    );
}
