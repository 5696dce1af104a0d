//! Property tests for the language server's handlers, called as functions: on any document text and any position
//! every request returns a result or an error (never a panic), and every position in a result lies inside the
//! document.
//!
//! Inputs: soups of the language's tokens with non-ASCII comments, byte-level mutations of the shipped GoogLeNet,
//! and edits (ranged and whole) applied to them.
#![cfg(feature = "lsp")]

use archc::lsp::Server;
use proptest::prelude::*;
use serde_json::{json, Value};

const URI: &str = "file:///prop/model.arch";
const YAML_URI: &str = "file:///prop/model.yaml";

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES raises it for a longer run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const TOKENS: &[&str] = &[
    "block",
    "network",
    "input",
    "side",
    "from",
    "concat",
    "add",
    "conv2d",
    "max_pool",
    "avg_pool",
    "linear",
    "relu",
    "flatten",
    "batch_norm",
    "inception",
    "b",
    "x",
    "y",
    "c",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "->",
    ":",
    "+",
    "*",
    "/",
    "-",
    "1",
    "3",
    "64",
    "224",
    "0",
    "true",
    "same",
    "pad",
    "stride",
    "\n",
    " ",
    "    ",
    "# größe → 28×28\n",
    "# 𝟚 E0102\n",
    "é",
    "\r\n",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

/// A valid small file with a block used twice, a side output and a non-ASCII comment.
const SMALL: &str = "\
# größe → 28×28
block unit(c, k = 3) {
    add {
        skip = identity
        body = conv2d(c, k, pad = k / 2) -> relu
    }
}
network net(n = 10) {
    input [8, 28, 28]
    u1 = unit(8)
    u2 = unit(c = 8, k = 5)
    side aux = flatten -> linear(n) from u1
    pool = global_avg_pool -> flatten
    fc = linear(n) : [n]
}
";

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..6).prop_map(
        move |edits| {
            let mut bytes = base.as_bytes().to_vec();
            for (index, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = index.index(bytes.len());
                match op {
                    0 => bytes[at] = byte,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            // Editors send valid UTF-8 (JSON strings); broken sequences become U+FFFD as they would.
            String::from_utf8_lossy(&bytes).into_owned()
        },
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        token_soup(),
        mutated(SMALL),
        mutated(include_str!("../architectures/googlenet.arch")),
    ]
}

fn position() -> impl Strategy<Value = Value> {
    (
        prop_oneof![0..60u32, Just(u32::MAX)],
        prop_oneof![0..90u32, Just(u32::MAX)],
    )
        .prop_map(|(line, character)| json!({ "line": line, "character": character }))
}

/// Every `{line, character}` object in `value`.
fn positions(value: &Value, out: &mut Vec<(u64, u64)>) {
    match value {
        Value::Object(map) => {
            if let (Some(line), Some(character)) = (
                map.get("line").and_then(Value::as_u64),
                map.get("character").and_then(Value::as_u64),
            ) {
                out.push((line, character));
            }
            map.values().for_each(|v| positions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| positions(v, out)),
        _ => {}
    }
}

/// Asserts that every position in `result` exists in `text` (a line of it, at most its length in UTF-16).
fn assert_inside(text: &str, method: &str, result: &Value) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut found = Vec::new();
    positions(result, &mut found);
    for (line, character) in found {
        let Some(content) = lines.get(line as usize) else {
            panic!("{method}: line {line} past the {} lines", lines.len());
        };
        let length = content.encode_utf16().count() as u64;
        assert!(
            character <= length,
            "{method}: character {character} past the line's {length} units"
        );
    }
}

fn requests(uri: &str, position: &Value) -> Vec<(&'static str, Value)> {
    let document = json!({ "uri": uri });
    let at = json!({ "textDocument": document, "position": position });
    vec![
        ("textDocument/hover", at.clone()),
        ("textDocument/definition", at.clone()),
        (
            "textDocument/references",
            json!({ "textDocument": document, "position": position, "context": { "includeDeclaration": true } }),
        ),
        ("textDocument/completion", at.clone()),
        ("textDocument/signatureHelp", at.clone()),
        ("textDocument/prepareRename", at.clone()),
        (
            "textDocument/rename",
            json!({ "textDocument": document, "position": position, "newName": "renamed" }),
        ),
        (
            "textDocument/inlayHint",
            json!({ "textDocument": document, "range": { "start": { "line": 0, "character": 0 }, "end": position } }),
        ),
        (
            "textDocument/documentSymbol",
            json!({ "textDocument": document }),
        ),
        (
            "textDocument/formatting",
            json!({ "textDocument": document, "options": { "tabSize": 4, "insertSpaces": true } }),
        ),
        ("textDocument/unknown", at),
        ("textDocument/hover", json!({ "bad": "params" })),
    ]
}

fn exercise(server: &mut Server, uri: &str, text: &str, positions: &[Value]) {
    for position in positions {
        for (method, params) in requests(uri, position) {
            match server.request(method, params) {
                Ok(result) => assert_inside(text, method, &result),
                Err(error) => assert!(!error.message.is_empty()),
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_request_on_any_text_answers(
        first in text(),
        second in text(),
        positions in prop::collection::vec(position(), 1..4),
        range in (position(), position()),
    ) {
        let mut server = Server::new();
        let opened = server.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": URI, "languageId": "arch", "version": 1, "text": first } }),
        );
        prop_assert_eq!(opened.len(), 1);
        assert_inside(&first, "publishDiagnostics", &opened[0].params);
        exercise(&mut server, URI, &first, &positions);

        // A whole-text change, then a ranged one (which a full-sync server still applies).
        server.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": second }] }),
        );
        exercise(&mut server, URI, &second, &positions);
        let replies = server.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": 3 },
                    "contentChanges": [{ "range": { "start": range.0, "end": range.1 }, "text": "é\n" }] }),
        );
        let text = server
            .document(&URI.parse().unwrap())
            .map(|d| d.text.as_str().to_string())
            .unwrap();
        for reply in &replies {
            assert_inside(&text, "publishDiagnostics", &reply.params);
        }
        exercise(&mut server, URI, &text, &positions);

        // The same text as YAML.
        server.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": YAML_URI, "languageId": "yaml", "version": 1, "text": text } }),
        );
        exercise(&mut server, YAML_URI, &text, &positions);

        // Closed: every request is an error, none a panic.
        server.notify("textDocument/didClose", json!({ "textDocument": { "uri": URI } }));
        for (method, params) in requests(URI, &positions[0]) {
            prop_assert!(server.request(method, params).is_err());
        }
    }
}

#[test]
fn a_block_used_with_two_kernels_gets_a_hint_per_instance_and_rename_follows_uses() {
    let mut server = Server::new();
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "arch", "version": 1, "text": SMALL } }),
    );
    let hints = server
        .request(
            "textDocument/inlayHint",
            json!({ "textDocument": { "uri": URI },
                    "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 99, "character": 0 } } }),
        )
        .unwrap();
    let label_on = |needle: &str| {
        let line = SMALL.lines().position(|l| l.contains(needle)).unwrap();
        hints
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["position"]["line"] == line as u64)
            .map(|h| h["label"].as_str().unwrap().to_string())
    };
    // Both instances keep [8, 28, 28] (k = 3 pads 1, k = 5 pads 2): one shape, no per-instance list.
    assert_eq!(label_on("body =").as_deref(), Some("[8, 28, 28]"));
    // flatten of [8, 1, 1] is 8 features.
    assert_eq!(label_on("pool =").as_deref(), Some("[8]"));
    assert_eq!(label_on("side aux").as_deref(), Some("[10]"));
    assert_eq!(label_on("fc ="), None, "declared");

    // Rename the block: its definition and both calls.
    let line = SMALL.lines().position(|l| l.contains("u1 = unit")).unwrap();
    let edit = server
        .request(
            "textDocument/rename",
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 10 },
                    "newName": "residual" }),
        )
        .unwrap();
    let edits = edit["changes"][URI].as_array().unwrap();
    assert_eq!(edits.len(), 3);
    // Rename the statement `u1`: its row and `from u1`.
    let edit = server
        .request(
            "textDocument/rename",
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 5 },
                    "newName": "first" }),
        )
        .unwrap();
    let edits = edit["changes"][URI].as_array().unwrap();
    let lines: Vec<u64> = edits
        .iter()
        .map(|e| e["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    let side = SMALL.lines().position(|l| l.contains("from u1")).unwrap() as u64;
    assert_eq!(lines, [line as u64, side]);
    // A keyword is refused.
    assert!(server
        .request(
            "textDocument/rename",
            json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 5 },
                    "newName": "concat" }),
        )
        .is_err());
}

#[test]
fn yaml_architectures_get_diagnostics_hover_hints_and_definition() {
    let text = include_str!("../architectures/googlenet.yaml");
    let mut server = Server::new();
    let published = server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": YAML_URI, "languageId": "yaml", "version": 1, "text": text } }),
    );
    assert_eq!(published[0].params["diagnostics"], json!([]));
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap();
    let column_of = |needle: &str, word: &str| {
        let line = text.lines().nth(line_of(needle)).unwrap();
        line.find(word).unwrap() + 1
    };
    let at = |line: usize, character: usize| json!({ "textDocument": { "uri": YAML_URI }, "position": { "line": line, "character": character } });
    // The block's branch1 row: 1×1 convolutions keep the map; hover shows the 3a instance among others.
    let branch1 = line_of("branch1:");
    let hover = server
        .request(
            "textDocument/hover",
            at(branch1, column_of("branch1:", "conv2d")),
        )
        .unwrap();
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(value.contains("in `inception3a`"), "{value}");
    // Hints: branch1 of the nine Inception instances differs (64, 128, 192, ... channels): one label per instance.
    let hints = server
        .request(
            "textDocument/inlayHint",
            json!({ "textDocument": { "uri": YAML_URI },
                    "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 999, "character": 0 } } }),
        )
        .unwrap();
    let branch1_hint = hints
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["position"]["line"] == branch1 as u64)
        .expect("a hint on branch1");
    assert!(branch1_hint["label"]
        .as_str()
        .unwrap()
        .starts_with("inception3a [64, 28, 28] · inception3b [128, 28, 28]"));
    // Definition of a block called in the body.
    let call = text
        .lines()
        .position(|l| l.contains("inception(64"))
        .unwrap();
    let column = text
        .lines()
        .nth(call)
        .unwrap()
        .find("inception(64")
        .unwrap()
        + 2;
    let definition = server
        .request("textDocument/definition", at(call, column))
        .unwrap();
    assert_eq!(
        definition["range"]["start"]["line"],
        line_of("  inception:") as u64
    );
    // Broken YAML: a diagnostic, no panic.
    let published = server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": YAML_URI, "version": 2 },
                "contentChanges": [{ "text": text.replace("conv2d(c1, 1)", "conv2d(c1, 1") }] }),
    );
    assert_ne!(published[0].params["diagnostics"], json!([]));
}
