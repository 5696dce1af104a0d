//! The corpus of broken architectures in `tests/fixtures/errors/`: each file holds one class of bug (its
//! leading comment says which, and what the checker must say). Every file's rendered diagnostics are an insta
//! snapshot; independently of the snapshots, the table below fixes the exact codes each file must produce, so
//! a regression fails even if someone accepts snapshots blindly.

use std::collections::BTreeSet;
use std::path::Path;

use archc::{Code, SourceKind};

/// File name -> every diagnostic code it produces, in report order (errors and warnings, repeats included).
const EXPECTED: &[(&str, &[&str])] = &[
    // GoogLeNet bugs met in practice.
    ("inception3b_columns_out_of_order.arch", &["E0102"]),
    ("inception_5x5_pad_1.arch", &["E0103"]),
    ("stem_conv_96_channels.arch", &["E0102"]),
    ("conv2_stride_2.arch", &["E0102"]),
    ("conv2_stride_3.arch", &["E0102"]),
    ("inception4c_5x5_column_48.arch", &["E0102"]),
    ("avg_pool_8_on_7x7.arch", &["E0105"]),
    ("linear_on_feature_map.arch", &["E0107"]),
    ("flatten_map_not_1x1.arch", &["E0102"]),
    // Syntax.
    ("syntax_missing_paren.arch", &["E0001"]),
    ("syntax_missing_equals.arch", &["E0001"]),
    ("syntax_missing_statement_equals.arch", &["E0101"]),
    ("syntax_bad_token.arch", &["E0001"]),
    ("syntax_unterminated_block.arch", &["E0001"]),
    ("syntax_unexpected_end.arch", &["E0001"]),
    ("nesting_limit.arch", &["E0003"]),
    ("expression_operator_limit.arch", &["E0003"]),
    // Calls and arguments.
    ("unknown_layer.arch", &["E0101"]),
    ("unknown_block_typo.arch", &["E0101"]),
    ("prelu_is_not_relu.arch", &["E0101"]),
    ("too_many_positional_arguments.arch", &["E0110"]),
    ("missing_required_argument.arch", &["E0111"]),
    ("unknown_keyword_argument.arch", &["E0112", "E0112"]),
    ("argument_given_twice.arch", &["E0113"]),
    ("positional_after_keyword.arch", &["E0001"]),
    ("wrong_argument_type.arch", &["E0114"]),
    ("stride_zero.arch", &["E0115"]),
    ("negative_pad.arch", &["E0115"]),
    ("dropout_p_out_of_range.arch", &["E0115"]),
    ("kernel_too_large.arch", &["E0115"]),
    ("pad_same_with_stride_2.arch", &["E0115"]),
    ("pool_pad_too_large.arch", &["E0116"]),
    ("groups_not_dividing_channels.arch", &["E0106"]),
    ("channel_shuffle_groups_not_dividing.arch", &["E0106"]),
    ("chunk_index_out_of_range.arch", &["E0115"]),
    // Expressions.
    ("unknown_parameter_name.arch", &["E0120"]),
    ("block_reads_network_parameter.arch", &["E0120"]),
    ("integer_overflow.arch", &["E0121"]),
    ("integer_literal_too_large.arch", &["E0121"]),
    ("division_by_zero.arch", &["E0122"]),
    ("expression_type.arch", &["E0123"]),
    // Definitions and statements.
    ("duplicate_block_definition.arch", &["E0130"]),
    ("block_shadows_builtin.arch", &["E0130"]),
    ("duplicate_statement_name.arch", &["E0131"]),
    ("recursive_block_direct.arch", &["E0132"]),
    ("recursive_block_mutual.arch", &["E0132"]),
    ("missing_input.arch", &["E0133"]),
    ("input_inside_block.arch", &["E0133"]),
    ("unnamed_conv.arch", &["E0134"]),
    ("unnamed_block_in_add.arch", &["E0134"]),
    ("side_output_unknown_source.arch", &["E0135"]),
    ("network_param_without_default.arch", &["E0136"]),
    ("duplicate_parameter.arch", &["E0137"]),
    ("declared_shape_rank.arch", &["E0138"]),
    ("input_with_batch_axis.arch", &["E0138"]),
    // Shapes.
    ("add_shape_mismatch_residual.arch", &["E0104"]),
    ("concat_flat_and_map.arch", &["E0103"]),
    // One mistake, one error (tests/cascade.rs checks the lines).
    ("cascade_wrong_declaration.arch", &["E0102"]),
    ("cascade_wrong_input_size.arch", &["E0102"]),
    ("cascade_wrong_stride.arch", &["E0102"]),
    // Warnings only.
    ("floor_mode_pool.arch", &["W0201"]),
    ("unused_block.arch", &["W0202"]),
    ("library_block_errors.arch", &["E0112", "E0101"]),
    ("unused_parameter.arch", &["W0203", "W0203"]),
    // Many at once.
    (
        "several_errors.arch",
        &["E0103", "E0114", "E0102", "E0135", "E0112"],
    ),
];

fn fixtures_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/errors"
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn codes(source: &str) -> Vec<&'static str> {
    archc::compile(SourceKind::Arch, source)
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}

#[test]
fn rendered_diagnostics() {
    insta::glob!("fixtures/errors/*.arch", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let checked = archc::compile(SourceKind::Arch, &source);
        // A stable, machine-independent name in the rendered `┌─` lines.
        let name = format!("fixtures/errors/{}", file_name(path));
        let rendered = archc::render::render(&name, &source, &checked.diagnostics, false);
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn every_fixture_produces_exactly_its_expected_codes() {
    let mut failures = Vec::new();
    for (file, expected) in EXPECTED {
        let path = fixtures_dir().join(file);
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let found = codes(&source);
        if found != *expected {
            failures.push(format!("{file}: expected {expected:?}, found {found:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_table_lists_every_fixture_once() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "arch"))
        .map(|path| file_name(&path))
        .collect();
    let listed: BTreeSet<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(listed.len(), EXPECTED.len(), "a file is listed twice");
    assert_eq!(on_disk, listed);
}

#[test]
fn every_fixture_states_the_bug_in_a_leading_comment() {
    for (file, expected) in EXPECTED {
        let source = std::fs::read_to_string(fixtures_dir().join(file)).unwrap();
        assert!(source.starts_with("# "), "{file}: no leading comment");
        // The comment names each code it expects, so the fixture documents itself.
        let header: String = source
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for code in expected.iter().collect::<BTreeSet<_>>() {
            assert!(
                header.contains(*code),
                "{file}: the leading comment does not mention {code}"
            );
        }
    }
}

#[test]
fn every_error_file_fails_and_every_warning_file_passes() {
    for (file, expected) in EXPECTED {
        let source = std::fs::read_to_string(fixtures_dir().join(file)).unwrap();
        let checked = archc::compile(SourceKind::Arch, &source);
        let expects_error = expected.iter().any(|c| c.starts_with('E'));
        assert_eq!(checked.has_errors(), expects_error, "{file}");
        if !expects_error {
            assert!(
                !checked.networks.is_empty(),
                "{file}: a file with warnings only still yields its network"
            );
        }
    }
}

#[test]
fn every_code_in_the_table_exists() {
    for (file, expected) in EXPECTED {
        for code in *expected {
            assert!(
                Code::parse(code).is_some(),
                "{file}: {code} is not a diagnostic code"
            );
        }
    }
}
