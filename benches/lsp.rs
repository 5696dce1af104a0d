//! `archc lsp` on each keystroke: a one-character `didChange` (the full text, as the server syncs) re-parses,
//! re-checks and converts the diagnostics; then the editor asks for the inlay hints of the document.
//!
//! `cargo bench --bench lsp`

use archc::lsp::Server;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

#[path = "../tests/support/deep_network.rs"]
mod deep_network;
use deep_network::deep_file;

/// Two versions of `text` that differ in one character: a comment's last letter, so both check clean.
fn versions(text: &str) -> [String; 2] {
    [format!("{text}# a\n"), format!("{text}# b\n")]
}

fn open(server: &mut Server, uri: &str, text: &str) {
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "arch", "version": 0, "text": text } }),
    );
}

fn change(server: &mut Server, uri: &str, version: i32, text: &str) -> Value {
    let replies = server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
    );
    replies.into_iter().next().expect("diagnostics").params
}

fn bench_keystroke(c: &mut Criterion) {
    let googlenet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/architectures/googlenet.arch"
    ))
    .expect("shipped architecture");
    for (name, text) in [
        ("googlenet.arch", googlenet),
        ("10,000-statement file", deep_file(10_000)),
    ] {
        let uri = "file:///bench/model.arch";
        let texts = versions(&text);
        let mut server = Server::new();
        open(&mut server, uri, &texts[0]);
        let mut version = 0;
        c.bench_function(&format!("lsp didChange + diagnostics, {name}"), |b| {
            b.iter(|| {
                version += 1;
                let published = change(&mut server, uri, version, &texts[version as usize % 2]);
                assert_eq!(published["diagnostics"], json!([]));
            })
        });
        let lines = text.lines().count();
        c.bench_function(&format!("lsp inlay hints, {name}"), |b| {
            b.iter(|| {
                server
                    .request(
                        "textDocument/inlayHint",
                        json!({ "textDocument": { "uri": uri },
                                "range": { "start": { "line": 0, "character": 0 },
                                           "end": { "line": lines, "character": 0 } } }),
                    )
                    .expect("hints")
            })
        });
    }
}

criterion_group!(benches, bench_keystroke);
criterion_main!(benches);
