//! `archc lsp` end to end: the binary is started and spoken to in JSON-RPC over its stdin and stdout, as an
//! editor would.
#![cfg(feature = "lsp")]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

/// The planted error: `mix1` concatenates 16 + 32 + 8 + 8 = 64 channels, the row declares 60. The comment on its
/// line has non-ASCII characters before a code, so UTF-16 positions differ from byte and from UTF-8 columns.
const BROKEN: &str = "\
# A small Inception network; größe → 32×32 (a non-ASCII comment)
block inception(c1, c3r, c3, c5r, c5, pp) {
    concat {
        branch1 = conv2d(c1, 1) -> relu
        branch2 = conv2d(c3r, 1) -> relu -> conv2d(c3, 3, pad = 1) -> relu
        branch3 = conv2d(c5r, 1) -> relu -> conv2d(c5, 5, pad = 2) -> relu
        branch4 = max_pool(3, stride = 1, pad = 1) -> conv2d(pp, 1) -> relu
    }
}

network small(num_classes = 10) {
    input [3, 32, 32]
    conv1 = conv2d(64, 3, pad = 1) -> relu : [64, 32, 32]
    pool1 = max_pool(2)
    mix1  = inception(16, 16, 32, 8, 8, 8) : [60, 16, 16]   # größe → E0102
    mix2  = inception(32, 32, 64, 16, 16, 16)
    pool2 = global_avg_pool
    flatten
    fc    = linear(num_classes) : [num_classes]
}
";

const URI: &str = "file:///tmp/archc-lsp-test/small.arch";

/// Zero-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle") as u64
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Notifications read while waiting for a response.
    pending: Vec<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_archc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("archc lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some(value) = header.strip_prefix("Content-Length: ") {
                        length = value.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("Content-Length header")];
                reader.read_exact(&mut body).expect("message body");
                let message: Value = serde_json::from_slice(&body).expect("JSON message");
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            messages,
            pending: Vec::new(),
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn receive(&mut self) -> Value {
        // A guard against a hung server, not a speed requirement.
        self.messages
            .recv_timeout(Duration::from_secs(60))
            .expect("the server answers")
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its whole response (`result` or `error`).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.receive();
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
            self.pending.push(message);
        }
    }

    fn result(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// The next `textDocument/publishDiagnostics` notification's diagnostics.
    fn diagnostics(&mut self) -> Vec<Value> {
        loop {
            let message = if self.pending.is_empty() {
                self.receive()
            } else {
                self.pending.remove(0)
            };
            if message["method"] == "textDocument/publishDiagnostics" {
                assert_eq!(message["params"]["uri"], URI);
                return message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
}

fn at(line: u64, character: u64) -> Value {
    json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": character } })
}

#[test]
fn an_editor_session_from_initialize_to_exit() {
    let mut client = Client::start();
    let init = client.result(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    let capabilities = &init["capabilities"];
    assert_eq!(capabilities["hoverProvider"], true);
    assert_eq!(capabilities["textDocumentSync"], 1, "full-document sync");
    assert_eq!(init["serverInfo"]["name"], "archc");
    client.notify("initialized", json!({}));

    // didOpen: the planted error, on the row of `mix1`, with the arithmetic.
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "arch", "version": 1, "text": BROKEN } }),
    );
    let diagnostics = client.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let error = &diagnostics[0];
    let mix1 = line_of(BROKEN, "mix1");
    assert_eq!(error["code"], "E0102");
    assert_eq!(error["severity"], 1);
    assert_eq!(error["range"]["start"]["line"], mix1);
    // `    mix1  = ` is 12 characters: the call starts at character 12.
    assert_eq!(error["range"]["start"]["character"], 12);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("produces 64 channels, the declaration says 60"));
    assert!(
        message.contains("16 + branch2 32 + branch3 8 + branch4 8 = 64"),
        "{message}"
    );
    let related = error["relatedInformation"].as_array().unwrap();
    assert!(related.iter().any(|r| r["message"] == "declared here"));

    // Hover on a statement name: its inferred shape (a 2×2 pool halves 32×32).
    let pool1 = line_of(BROKEN, "pool1");
    let hover = client.result("textDocument/hover", at(pool1, 5));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("`[64, 32, 32]` → `[64, 16, 16]`"), "{text}");

    // Hover on the code in the comment: UTF-16 positions. Every character before it is one UTF-16 unit (no
    // astral characters), though `ö`, `ß` and `→` are several bytes.
    let line = BROKEN.lines().nth(mix1 as usize).unwrap();
    let code_at = line[..line.find("E0102").unwrap()].chars().count() as u64;
    assert_ne!(code_at, line.find("E0102").unwrap() as u64);
    let hover = client.result("textDocument/hover", at(mix1, code_at + 2));
    assert!(hover["contents"]["value"]
        .as_str()
        .unwrap()
        .starts_with("**E0102**"));
    assert_eq!(hover["range"]["start"]["character"], code_at);
    assert_eq!(hover["range"]["end"]["character"], code_at + 5);

    // Inlay hints: the shapes of the rows that do not declare theirs. mix2 concatenates 32 + 64 + 16 + 16.
    let hints = client.result(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": URI },
                "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 40, "character": 0 } } }),
    );
    let hint = |needle: &str| {
        let line = line_of(BROKEN, needle);
        hints
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["position"]["line"] == line)
            .map(|h| h["label"].as_str().unwrap().to_string())
    };
    assert_eq!(hint("pool1").as_deref(), Some("[64, 16, 16]"));
    assert_eq!(hint("mix2").as_deref(), Some("[128, 16, 16]"));
    assert_eq!(hint("pool2").as_deref(), Some("[128, 1, 1]"));
    assert_eq!(hint("flatten").as_deref(), Some("[128]"));
    assert_eq!(hint("conv1"), None, "the row declares its size");

    // Definition of the block called on mix2's row: the block's line.
    let mix2 = line_of(BROKEN, "mix2");
    let callee = BROKEN
        .lines()
        .nth(mix2 as usize)
        .unwrap()
        .find("inception")
        .unwrap() as u64;
    let definition = client.result("textDocument/definition", at(mix2, callee + 3));
    assert_eq!(
        definition["range"]["start"]["line"],
        line_of(BROKEN, "block inception")
    );

    // Completion at the start of a row: the layers and the file's blocks.
    let flatten = line_of(BROKEN, "flatten");
    let items = client.result("textDocument/completion", at(flatten, 4));
    let labels: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    for expected in ["conv2d", "max_pool", "linear", "inception"] {
        assert!(labels.contains(&expected), "{expected} in {labels:?}");
    }

    // Errors for what cannot be answered: an unknown method, a line past the end.
    let unknown = client.request("textDocument/unknownThing", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    let past_end = client.request("textDocument/hover", at(500, 0));
    assert_eq!(past_end["error"]["code"], -32602);

    // didChange: the row fixed (and another left unformatted): no diagnostics.
    let fixed = BROKEN
        .replace("[60, 16, 16]", "[64, 16, 16]")
        .replace("pool2 = global_avg_pool", "pool2=global_avg_pool");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    assert_eq!(client.diagnostics(), Vec::<Value>::new());

    // Formatting: `archc fmt`'s text as one edit over the whole document.
    let edits = client.result(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let edits = edits.as_array().unwrap();
    assert_eq!(edits.len(), 1);
    let formatted = archc::fmt::format_source(&fixed).unwrap();
    assert_ne!(formatted, fixed);
    assert!(formatted.contains("pool2 = global_avg_pool"));
    assert_eq!(edits[0]["newText"], formatted.as_str());
    assert_eq!(
        edits[0]["range"]["start"],
        json!({ "line": 0, "character": 0 })
    );
    assert_eq!(
        edits[0]["range"]["end"],
        json!({ "line": fixed.lines().count(), "character": 0 })
    );

    let shutdown = client.request("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    assert!(shutdown.get("error").is_none());
    client.notify("exit", Value::Null);
    let status = client.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn exit_without_shutdown_is_status_1() {
    let mut client = Client::start();
    client.result(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    client.notify("initialized", json!({}));
    client.notify("exit", Value::Null);
    assert_eq!(client.child.wait().unwrap().code(), Some(1));
}
