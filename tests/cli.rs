//! The `archc` binary on bad input: paths that do not exist, directories, non-UTF-8, empty and comment-only
//! files, YAML of the wrong schema, files over the size limit.
//!
//! The convention (README, "Commands"): exit 0 when every file is clean, 1 when a file has errors, 2 for usage
//! or I/O problems. Errors go to stderr, located (`PATH` or `PATH:LINE:COL`); stdout carries only a result, so
//! on failure it is empty, except `check --format json`, whose stdout is always one JSON array with an entry per
//! file named, `"ok": false` for a file with errors or one that could not be read (with its `"error"`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory of this test binary, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("archc-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn archc(args: &[&str], path: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .arg(path)
        .arg("--color=never")
        .output()
        .expect("archc runs");
    Run {
        code: output
            .status
            .code()
            .expect("archc exits, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// The commands whose stdout must stay empty on failure (`check --format json` is tested on its own).
const HUMAN: [&[&str]; 4] = [
    &["check"],
    &["summary"],
    &["summary", "--format", "json"],
    &["emit"],
];

/// Runs `check`, `summary` (both formats) and `emit` on `path` and asserts: exit `code`, nothing on stdout, and stderr
/// containing every one of `expected`. Then `check --format json`: the same exit code, and stdout one JSON
/// array whose only entry names the file and says it is not ok (an I/O error is on stderr too). Returns that
/// entry.
fn assert_fails(path: &Path, code: i32, expected: &[&str]) -> serde_json::Value {
    for args in HUMAN {
        let run = archc(args, path);
        assert_eq!(run.code, code, "archc {args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "archc {args:?} printed to stdout");
        for text in expected {
            assert!(
                run.stderr.contains(text),
                "archc {args:?}: no {text:?} in\n{}",
                run.stderr
            );
        }
    }
    let run = archc(&["check", "--format", "json"], path);
    assert_eq!(run.code, code, "{}", run.stderr);
    // Diagnostics are in the JSON; an I/O error is in the JSON and on stderr.
    if code == 2 {
        for text in expected {
            assert!(run.stderr.contains(text), "no {text:?} in\n{}", run.stderr);
        }
    }
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    let entries = json.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["file"], path.display().to_string(), "{json}");
    assert_eq!(entries[0]["ok"], false, "{json}");
    entries[0].clone()
}

/// An I/O failure in JSON: the entry carries the error, and no diagnostics or networks.
fn assert_io_entry(entry: &serde_json::Value, expected: &str) {
    let error = entry["error"].as_str().expect("an `error` string");
    assert!(error.contains(expected), "{entry}");
    assert_eq!(entry["diagnostics"], serde_json::json!([]), "{entry}");
    assert_eq!(entry["networks"], serde_json::json!([]), "{entry}");
}

#[test]
fn a_path_that_does_not_exist_is_an_io_error() {
    let scratch = Scratch::new("missing");
    let path = scratch.0.join("nope.arch");
    let name = path.display().to_string();
    let entry = assert_fails(&path, 2, &[&format!("error: {name}: cannot read")]);
    assert_io_entry(&entry, "cannot read");
}

#[test]
fn a_directory_is_an_io_error() {
    let scratch = Scratch::new("directory");
    let dir = scratch.0.join("architectures.arch");
    std::fs::create_dir(&dir).unwrap();
    let name = dir.display().to_string();
    let entry = assert_fails(&dir, 2, &[&format!("error: {name}: is a directory")]);
    assert_io_entry(&entry, "is a directory");
}

#[test]
fn a_non_utf8_file_is_located_to_line_and_column() {
    let scratch = Scratch::new("utf8");
    // Line 2, after `    input `: 10 characters, so the bad byte is column 11 (offset 12 + 10 = 22).
    let path = scratch.file("latin1.arch", b"network n {\n    input \xe9[3, 8, 8]\n}\n");
    let name = path.display().to_string();
    let entry = assert_fails(
        &path,
        2,
        &[
            &format!("error: {name}:2:11: not valid UTF-8"),
            "byte 0xe9 at offset 22",
        ],
    );
    assert_io_entry(&entry, "not valid UTF-8");
}

#[test]
fn a_file_over_the_size_limit_is_refused() {
    let scratch = Scratch::new("huge");
    let limit = archc::syntax::MAX_SOURCE_BYTES;
    // Comments: the content would be valid, only the size is wrong.
    let mut contents = b"# padding\n".repeat(limit / 10 + 1);
    contents.truncate(limit + 1);
    let path = scratch.file("huge.arch", &contents);
    let entry = assert_fails(
        &path,
        2,
        &[&format!(
            "{} bytes is larger than the {limit} byte limit",
            limit + 1
        )],
    );
    assert_io_entry(&entry, "byte limit");
    // One byte fewer is accepted.
    let path = scratch.file("at_limit.arch", &contents[..limit]);
    let run = archc(&["check"], &path);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn an_endless_device_is_refused_after_the_limit_not_read_forever() {
    let entry = assert_fails(
        Path::new("/dev/zero"),
        2,
        &["/dev/zero: the input is larger than the"],
    );
    assert_io_entry(&entry, "byte limit");
}

#[test]
fn empty_and_comment_only_files_are_clean_but_have_nothing_to_summarise_or_emit() {
    let scratch = Scratch::new("empty");
    for (file, contents) in [
        ("empty.arch", ""),
        ("comments.arch", "# a file of comments\n\n   # only\n"),
        ("empty.yaml", ""),
        ("comments.yaml", "# a YAML file of comments\n"),
    ] {
        let path = scratch.file(file, contents.as_bytes());
        let name = path.display().to_string();
        // `check`: a file without definitions is valid.
        let run = archc(&["check"], &path);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains(&format!("{name}: ok (0 networks)")),
            "{file}: {}",
            run.stderr
        );
        let run = archc(&["check", "--format", "json"], &path);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(json[0]["ok"], true, "{file}: {json}");
        assert_eq!(json[0]["networks"], serde_json::json!([]), "{file}: {json}");
        // `summary` and `emit` have nothing to show: a usage error, and nothing on stdout that looks like output.
        for (args, says) in [
            (["summary"], "defines no network"),
            (["emit"], "defines no network; there is nothing to emit"),
        ] {
            let run = archc(&args, &path);
            assert_eq!(run.code, 2, "{file} {args:?}: {}", run.stderr);
            assert_eq!(run.stdout, "", "{file} {args:?}");
            assert!(
                run.stderr.contains(&format!("error: {name} {says}")),
                "{file} {args:?}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn yaml_of_the_wrong_schema_is_a_located_error() {
    let scratch = Scratch::new("yaml");
    // (file, contents, the location and message expected on stderr)
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "list.yaml",
            "- conv2d(8, 3)\n- relu\n",
            ":1:3",
            "expected a mapping with `blocks` and `networks`, found a list",
        ),
        (
            "unknown_key.yaml",
            "networks: {}\nlayers: {}\n",
            ":2:1",
            "unknown top-level key `layers`",
        ),
        (
            "number_as_layer.yaml",
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - 42\n",
            ":5:9",
            "expected a statement (a chain, or `name: chain`), found a number",
        ),
        (
            "scalar.yaml",
            "just a sentence\n",
            ":1:1",
            "expected a mapping with `blocks` and `networks`",
        ),
    ];
    for (file, contents, location, message) in cases {
        let path = scratch.file(file, contents.as_bytes());
        let located = format!("{}{location}", path.display());
        let entry = assert_fails(&path, 1, &["error[E0002]", message, &located]);
        let diagnostics = entry["diagnostics"].as_array().unwrap();
        assert_eq!(diagnostics.len(), 1, "{file}: {entry}");
        assert_eq!(diagnostics[0]["code"], "E0002", "{file}: {entry}");
        assert!(entry.get("error").is_none(), "{file}: {entry}");
    }
}

#[test]
fn an_arch_file_with_errors_exits_1_with_nothing_on_stdout() {
    let scratch = Scratch::new("errors");
    let path = scratch.file(
        "kernel.arch",
        b"network n {\n    input [3, 8, 8]\n    conv = conv2d(4, 9)\n}\n",
    );
    let located = format!("{}:3:", path.display());
    let entry = assert_fails(&path, 1, &["error[E0105]", &located]);
    assert_eq!(entry["diagnostics"][0]["code"], "E0105", "{entry}");
}

#[test]
fn check_reports_every_file_and_the_worst_exit_code() {
    let scratch = Scratch::new("several");
    let good = scratch.file(
        "good.arch",
        b"network n {\n    input [3, 8, 8]\n    conv = conv2d(4, 3)\n}\n",
    );
    let missing = scratch.0.join("missing.arch");
    let output = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["check", "--format", "json", "--color=never"])
        .arg(&good)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["file"], good.display().to_string());
    assert_eq!(json[0]["ok"], true);
    assert_eq!(json[1]["file"], missing.display().to_string());
    assert_eq!(json[1]["ok"], false);
    assert!(json[1]["error"].as_str().unwrap().contains("cannot read"));
}
