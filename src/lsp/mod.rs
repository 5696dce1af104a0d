//! `archc lsp`: a language server over stdio, so every row's shape is visible while a file is typed.
//!
//! [`Server`] holds the open documents and answers requests and notifications as plain functions over JSON
//! values (what the tests and benchmarks drive); [`run_stdio`] connects it to an editor with rust-analyzer's
//! `lsp-server`. Documents are synchronised whole: each change re-parses and re-checks the unsaved text and
//! publishes every diagnostic. Positions on the wire are UTF-16 ([`text`]).
//!
//! This module is the CLI side of the crate (behind the `lsp` feature): unlike the rest of the library it does
//! I/O, on stdin and stdout.

pub mod analysis;
pub mod complete;
pub mod features;
pub mod signatures;
pub mod text;

use std::collections::{HashMap, VecDeque};

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response, ResponseError};
use lsp_types::notification::{self as notif, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CompletionOptions, DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag,
    HoverProviderCapability, InitializeResult, Location, NumberOrString, OneOf, Position,
    PositionEncodingKind, PublishDiagnosticsParams, RenameOptions, ServerCapabilities, ServerInfo,
    SignatureHelpOptions, TextDocumentSyncCapability, TextDocumentSyncKind, Uri,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::SourceKind;

use analysis::Document;

/// The open documents and the answers about them.
#[derive(Default)]
pub struct Server {
    documents: HashMap<Uri, Document>,
}

/// What the server can do, sent in the `initialize` response.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["(".into(), ",".into(), " ".into(), ">".into()]),
            ..CompletionOptions::default()
        }),
        signature_help_provider: Some(SignatureHelpOptions {
            trigger_characters: Some(vec!["(".into(), ",".into()]),
            retrigger_characters: Some(vec!["=".into()]),
            work_done_progress_options: Default::default(),
        }),
        ..ServerCapabilities::default()
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ResponseError {
    ResponseError {
        code: code as i32,
        message: message.into(),
        data: None,
    }
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, ResponseError> {
    serde_json::from_value(params)
        .map_err(|e| error(ErrorCode::InvalidParams, format!("invalid params: {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, ResponseError> {
    serde_json::to_value(value).map_err(|e| error(ErrorCode::InternalError, e.to_string()))
}

impl Server {
    /// A server with no open document.
    pub fn new() -> Server {
        Server::default()
    }

    /// An open document.
    pub fn document(&self, uri: &Uri) -> Option<&Document> {
        self.documents.get(uri)
    }

    fn open(&self, uri: &Uri) -> Result<&Document, ResponseError> {
        self.documents.get(uri).ok_or_else(|| {
            error(
                ErrorCode::InvalidParams,
                format!("{} is not open", uri.as_str()),
            )
        })
    }

    /// A document and the byte offset of a position in it; a line past the end is an error.
    fn at(&self, uri: &Uri, position: Position) -> Result<(&Document, usize), ResponseError> {
        let document = self.open(uri)?;
        let offset = document.text.offset(position).ok_or_else(|| {
            error(
                ErrorCode::InvalidParams,
                format!(
                    "position {}:{} is past the end of {}",
                    position.line,
                    position.character,
                    uri.as_str()
                ),
            )
        })?;
        Ok((document, offset))
    }

    /// Answers a request. Unknown methods are `MethodNotFound`, malformed params `InvalidParams`.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ResponseError> {
        match method {
            req::HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = parse(params)?;
                let at = p.text_document_position_params;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                to_json(features::hover(document, offset))
            }
            req::InlayHintRequest::METHOD => {
                let p: lsp_types::InlayHintParams = parse(params)?;
                let document = self.open(&p.text_document.uri)?;
                let range = document.text.clamped_span(p.range);
                to_json(features::inlay_hints(document, range))
            }
            req::GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = parse(params)?;
                let at = p.text_document_position_params;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                to_json(features::definition(
                    document,
                    &at.text_document.uri,
                    offset,
                ))
            }
            req::References::METHOD => {
                let p: lsp_types::ReferenceParams = parse(params)?;
                let at = p.text_document_position;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                to_json(features::references(
                    document,
                    &at.text_document.uri,
                    offset,
                    p.context.include_declaration,
                ))
            }
            req::DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = parse(params)?;
                let document = self.open(&p.text_document.uri)?;
                to_json(features::document_symbols(document))
            }
            req::Completion::METHOD => {
                let p: lsp_types::CompletionParams = parse(params)?;
                let at = p.text_document_position;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                if document.kind != SourceKind::Arch {
                    return Ok(Value::Null);
                }
                to_json(complete::completion(document.text.as_str(), offset))
            }
            req::SignatureHelpRequest::METHOD => {
                let p: lsp_types::SignatureHelpParams = parse(params)?;
                let at = p.text_document_position_params;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                if document.kind != SourceKind::Arch {
                    return Ok(Value::Null);
                }
                to_json(complete::signature_help(document.text.as_str(), offset))
            }
            req::Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = parse(params)?;
                let document = self.open(&p.text_document.uri)?;
                features::formatting(document)
                    .map_err(|message| error(ErrorCode::RequestFailed, message))
                    .and_then(to_json)
            }
            req::PrepareRenameRequest::METHOD => {
                let p: lsp_types::TextDocumentPositionParams = parse(params)?;
                let (document, offset) = self.at(&p.text_document.uri, p.position)?;
                to_json(features::prepare_rename(document, offset))
            }
            req::Rename::METHOD => {
                let p: lsp_types::RenameParams = parse(params)?;
                let at = p.text_document_position;
                let (document, offset) = self.at(&at.text_document.uri, at.position)?;
                let edits = features::rename(document, offset, &p.new_name)
                    .map_err(|message| error(ErrorCode::RequestFailed, message))?;
                to_json(lsp_types::WorkspaceEdit {
                    changes: Some(HashMap::from([(at.text_document.uri, edits)])),
                    ..Default::default()
                })
            }
            _ => Err(error(
                ErrorCode::MethodNotFound,
                format!("unknown method `{method}`"),
            )),
        }
    }

    /// Handles a notification; returns the notifications to send back (diagnostics). Bad params and unknown
    /// methods are ignored, as the protocol asks of notifications.
    pub fn notify(&mut self, method: &str, params: Value) -> Vec<Notification> {
        match method {
            notif::DidOpenTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidOpenTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let document = p.text_document;
                let kind = SourceKind::from_path(document.uri.path().as_str());
                self.documents.insert(
                    document.uri.clone(),
                    Document::new(kind, document.version, document.text),
                );
                self.publish(&document.uri)
            }
            notif::DidChangeTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidChangeTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                let Some(document) = self.documents.get_mut(&uri) else {
                    return Vec::new();
                };
                for change in p.content_changes {
                    match change.range {
                        None => document.text = text::Text::new(change.text),
                        // A client that sends ranges despite full sync: apply them in order.
                        Some(range) => {
                            if let Some(range) = document.text.span(range) {
                                document.text.replace(range, &change.text);
                            }
                        }
                    }
                }
                document.version = p.text_document.version;
                document.analyse();
                self.publish(&uri)
            }
            notif::DidCloseTextDocument::METHOD => {
                let Ok(p) = parse::<lsp_types::DidCloseTextDocumentParams>(params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                if self.documents.remove(&uri).is_none() {
                    return Vec::new();
                }
                vec![publish_notification(PublishDiagnosticsParams {
                    uri,
                    diagnostics: Vec::new(),
                    version: None,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// The diagnostics of an open document, as the protocol carries them.
    pub fn diagnostics(&self, uri: &Uri) -> Vec<lsp_types::Diagnostic> {
        self.documents
            .get(uri)
            .map(|document| {
                document
                    .diagnostics
                    .iter()
                    .map(|d| to_lsp_diagnostic(uri, document, d))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn publish(&self, uri: &Uri) -> Vec<Notification> {
        let version = self.documents.get(uri).map(|d| d.version);
        vec![publish_notification(PublishDiagnosticsParams {
            uri: uri.clone(),
            diagnostics: self.diagnostics(uri),
            version,
        })]
    }
}

fn publish_notification(params: PublishDiagnosticsParams) -> Notification {
    Notification::new(
        notif::PublishDiagnostics::METHOD.to_string(),
        serde_json::to_value(params).unwrap_or(Value::Null),
    )
}

/// One diagnostic on the wire: the code, the message with the notes (the arithmetic) and the help, the labels as
/// related information.
fn to_lsp_diagnostic(uri: &Uri, document: &Document, d: &Diagnostic) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    for note in &d.notes {
        message.push_str("\nnote: ");
        message.push_str(note);
    }
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let mut related = Vec::new();
    if !d.primary.message.is_empty() {
        related.push(DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), document.text.range(d.primary.span)),
            message: d.primary.message.clone(),
        });
    }
    related.extend(
        d.secondary
            .iter()
            .map(|label| DiagnosticRelatedInformation {
                location: Location::new(uri.clone(), document.text.range(label.span)),
                message: label.message.clone(),
            }),
    );
    lsp_types::Diagnostic {
        range: document.text.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.as_str().to_string())),
        code_description: None,
        source: Some("archc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: matches!(d.code, Code::UnusedBlock | Code::UnusedParameter)
            .then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: None,
    }
}

/// Answers a request, turning a panic (a bug) into an `InternalError` response instead of a dead server.
pub fn handle_request(server: &mut Server, request: Request) -> Response {
    let Request { id, method, params } = request;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.request(&method, params)
    }))
    .unwrap_or_else(|_| {
        Err(error(
            ErrorCode::InternalError,
            format!("archc lsp: internal error answering {method}"),
        ))
    });
    match result {
        Ok(value) => Response {
            id,
            result: Some(value),
            error: None,
        },
        Err(error) => Response {
            id,
            result: None,
            error: Some(error),
        },
    }
}

/// Serves one client over stdin and stdout until it sends `shutdown` and `exit`. Returns `Ok(true)` after a
/// clean shutdown, `Ok(false)` when the client exits or hangs up without one.
pub fn run_stdio() -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let (connection, io_threads) = Connection::stdio();
    let clean = serve(&connection)?;
    drop(connection);
    io_threads.join()?;
    Ok(clean)
}

/// Serves one client on a connection (stdio, or in memory for tests).
pub fn serve(connection: &Connection) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let (id, _params) = connection.initialize_start()?;
    let result = InitializeResult {
        capabilities: capabilities(),
        server_info: Some(ServerInfo {
            name: "archc".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
    };
    connection.initialize_finish(id, serde_json::to_value(result)?)?;
    let mut server = Server::new();
    let mut queue = VecDeque::new();
    loop {
        let message = match queue.pop_front() {
            Some(message) => message,
            None => match connection.receiver.recv() {
                Ok(message) => message,
                Err(_) => return Ok(false),
            },
        };
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request)? {
                    return Ok(true);
                }
                let response = handle_request(&mut server, request);
                connection.sender.send(Message::Response(response))?;
            }
            Message::Notification(mut notification) => {
                if notification.method == notif::Exit::METHOD {
                    return Ok(false);
                }
                if notification.method == notif::DidChangeTextDocument::METHOD {
                    // Keystrokes that arrived while the last one was checked are checked once, together.
                    queue.extend(connection.receiver.try_iter());
                    notification = coalesce_changes(notification, &mut queue);
                }
                let Notification { method, params } = notification;
                let replies = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    server.notify(&method, params)
                }))
                .unwrap_or_default();
                for reply in replies {
                    connection.sender.send(Message::Notification(reply))?;
                }
            }
            Message::Response(_) => {}
        }
    }
}

/// Merges the `didChange` notifications for the same document at the front of `queue` into `first` (their
/// changes appended in order, their last version kept), so a burst of keystrokes costs one check. Any other
/// message stops the merge, so the order of everything else is kept.
fn coalesce_changes(mut first: Notification, queue: &mut VecDeque<Message>) -> Notification {
    let uri = first.params["textDocument"]["uri"].clone();
    while let Some(Message::Notification(next)) = queue.front() {
        if next.method != first.method || next.params["textDocument"]["uri"] != uri {
            break;
        }
        let (Some(more), Some(version)) = (
            next.params["contentChanges"].as_array().cloned(),
            next.params["textDocument"].get("version").cloned(),
        ) else {
            break;
        };
        let Some(changes) = first
            .params
            .get_mut("contentChanges")
            .and_then(Value::as_array_mut)
        else {
            break;
        };
        changes.extend(more);
        first.params["textDocument"]["version"] = version;
        queue.pop_front();
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(uri: &str, version: i32, text: &str) -> Notification {
        Notification::new(
            notif::DidChangeTextDocument::METHOD.to_string(),
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
        )
    }

    #[test]
    fn queued_changes_to_one_document_are_checked_once_and_other_messages_keep_their_order() {
        let mut queue = VecDeque::from([
            Message::Notification(change("file:///a.arch", 2, "ab")),
            Message::Notification(change("file:///a.arch", 3, "abc")),
            Message::Notification(change("file:///b.arch", 1, "x")),
            Message::Notification(change("file:///a.arch", 4, "abcd")),
        ]);
        let merged = coalesce_changes(change("file:///a.arch", 1, "a"), &mut queue);
        assert_eq!(merged.params["textDocument"]["version"], 3);
        assert_eq!(
            merged.params["contentChanges"],
            json!([{ "text": "a" }, { "text": "ab" }, { "text": "abc" }])
        );
        assert_eq!(queue.len(), 2, "b's change and a's later one stay queued");

        let mut server = Server::new();
        let uri: Uri = "file:///a.arch".parse().unwrap();
        server.notify(
            notif::DidOpenTextDocument::METHOD,
            json!({ "textDocument": { "uri": "file:///a.arch", "languageId": "arch", "version": 0, "text": "" } }),
        );
        let published = server.notify(&merged.method, merged.params);
        assert_eq!(published[0].params["version"], 3);
        assert_eq!(server.document(&uri).unwrap().text.as_str(), "abc");
    }
}
