//! Every input the fuzzers (`fuzz/`) crashed on, kept in `tests/fixtures/fuzz/` and run through the very code
//! the fuzz targets run (`fuzz/fuzz_targets/common.rs`): parse, check, render, summary and code generation must
//! not panic and must keep their invariants, and a `.safetensors` input must open and load without a panic.
//! The table fixes the diagnostic codes each source input produces now.

use std::path::Path;

use archc::SourceKind;

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

#[path = "support/generated_networks.rs"]
mod generated_networks;

/// File name -> the error and warning codes it produces, in report order. `.yaml` files go through the YAML
/// target's entry point, `.safetensors` files through the weights target's (their codes are empty), everything
/// else through the `.arch` one.
const EXPECTED: &[(&str, &[&str])] = &[
    // yaml target, first minute: a second YAML document without a `---` line (`""é`: a quoted scalar, then more
    // text). The loader pointed at bytes 0..3 for want of a `---`, splitting `é`; it now points at the content
    // after the first document. The first file is libFuzzer's minimised input, the others the raw crashes.
    ("yaml_second_document_no_marker.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_435cbed6.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_48d5ba3f.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_49d29d6b.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_506a81d3.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_6b87c048.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_711ac6aa.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_8c6d658d.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_a6ed27db.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_bd13cb9e.yaml", &["E0002"]),
    ("yaml_second_document_no_marker_d6c460c7.yaml", &["E0002"]),
];

fn fixtures() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n != "README.md"));
    files.sort();
    files
}

/// Inputs of the `weights` target.
fn is_weights(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

fn kind(path: &Path) -> SourceKind {
    SourceKind::from_path(&path.to_string_lossy())
}

#[test]
fn every_crash_input_runs_cleanly_through_the_fuzz_entry_point() {
    let files = fixtures();
    assert!(!files.is_empty());
    let panicking: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| {
                if is_weights(path) {
                    common::run_weights(&bytes)
                } else {
                    common::run(kind(path), &bytes);
                    if matches!(kind(path), SourceKind::Arch) {
                        common::run_graph(&bytes);
                    }
                }
            })
            .is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(panicking.is_empty(), "these panic again: {panicking:#?}");
}

#[test]
fn every_crash_input_gives_its_expected_diagnostics() {
    let files = fixtures();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            EXPECTED.iter().any(|(file, _)| file == name),
            "{name} is not in the table"
        );
    }
    for (file, expected) in EXPECTED
        .iter()
        .filter(|(file, _)| !file.ends_with(".safetensors"))
    {
        let path = files
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == *file))
            .unwrap_or_else(|| panic!("{file} is in the table but not in tests/fixtures/fuzz"));
        let source = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        let checked = archc::compile(kind(path), &source);
        let codes: Vec<&str> = checked
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        assert_eq!(&codes, expected, "{file}");
    }
}

#[test]
fn graph_layout_stays_within_the_fuzz_targets_work_budget() {
    // The `graph` target's step budget (`common::run_graph`) holds on the shipped networks, the broken-file
    // corpus and generated networks of 100 to 5,000 nodes, so a fuzz finding over it means a real change.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in [
        "architectures",
        "tests/fixtures/errors",
        "tests/fixtures/graph",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "arch"))
            .collect();
        files.sort();
        inputs.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    }
    for nodes in [100, 1_000, 5_000] {
        inputs.push(generated_networks::inception_chain(nodes).0.into_bytes());
    }
    let mut largest = 0;
    for input in &inputs {
        largest = largest.max(common::run_graph(input));
    }
    // The 5,000-node network: every node has an edge in, and there are clusters besides.
    assert!(largest > 10_000, "{largest}");
}
