//! Completion and signature help. Text being typed rarely parses, so both read the text around the cursor
//! (which call it is in, which definition, what precedes it) instead of the AST: block headers and statement
//! names are found by a line scan that works on broken text.

use lsp_types::{
    CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind,
    ParameterInformation, ParameterLabel, SignatureHelp, SignatureInformation,
};

use super::features::KEYWORDS;
use super::signatures::{self, Signature};

/// A `block NAME(...)` or `network NAME(...)` line found by scanning the text.
#[derive(Debug, Clone)]
struct Header {
    network: bool,
    signature: Signature,
    /// Byte offset of the header's line.
    start: usize,
}

/// Every definition header in `text`, in order. A header's parameters are read up to its `)` on the same line.
fn headers(text: &str) -> Vec<Header> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let (network, rest) = if let Some(rest) = trimmed.strip_prefix("block") {
            (false, rest)
        } else if let Some(rest) = trimmed.strip_prefix("network") {
            (true, rest)
        } else {
            start += line.len();
            continue;
        };
        if rest.starts_with(|c: char| c.is_whitespace()) {
            let rest = rest.trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                let after = rest[name.len()..].trim_start();
                let params = after
                    .strip_prefix('(')
                    .map(|inside| {
                        let inside = inside.split([')', '#']).next().unwrap_or("");
                        inside
                            .split(',')
                            .filter_map(|param| {
                                let (name, default) = match param.split_once('=') {
                                    Some((name, default)) => {
                                        (name.trim(), Some(default.trim().to_string()))
                                    }
                                    None => (param.trim(), None),
                                };
                                is_word(name).then(|| (name.to_string(), default))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Header {
                    network,
                    signature: Signature {
                        name,
                        params,
                        description: "",
                        builtin: false,
                    },
                    start,
                });
            }
        }
        start += line.len();
    }
    out
}

fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The definition whose body holds `offset`, and where that body's region ends (the next header).
fn enclosing<'h>(text: &str, headers: &'h [Header], offset: usize) -> Option<(&'h Header, usize)> {
    let index = headers.iter().rposition(|h| h.start <= offset)?;
    let header = &headers[index];
    // Past the body's closing brace is outside it.
    let mut depth = 0i64;
    let mut opened = false;
    for line in text.get(header.start..offset)?.split('\n') {
        for ch in line.split('#').next().unwrap_or("").chars() {
            match ch {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
    }
    if opened && depth <= 0 {
        return None;
    }
    let end = headers.get(index + 1).map_or(text.len(), |h| h.start);
    Some((header, end))
}

/// The names of the top-level statements of a definition's body (what `from` may name).
fn statement_names(text: &str, header: &Header, end: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0i64;
    for line in text.get(header.start..end).unwrap_or("").split('\n') {
        let code = line.split('#').next().unwrap_or("");
        if depth == 1 {
            let row = code.trim_start();
            let row = row
                .strip_prefix("side")
                .filter(|r| r.starts_with(char::is_whitespace))
                .map_or(row, str::trim_start);
            let name: String = row
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = row[name.len()..].trim_start();
            if !name.is_empty() && after.starts_with('=') && !names.contains(&name) {
                names.push(name);
            }
        }
        depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
    }
    names
}

/// Where the cursor is, as far as completion cares.
enum Context {
    /// In a comment: nothing to offer.
    Comment,
    /// Inside `callee(...)`: the arguments before the cursor, split at top-level commas.
    Call { callee: String, args: Vec<String> },
    /// Inside `[...]` outside a call: a shape.
    Shape,
    /// After `from`.
    From,
    /// Anywhere else.
    Row,
}

fn context(text: &str, offset: usize) -> Context {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..offset];
    if line.contains('#') {
        return Context::Comment;
    }
    let (mut parens, mut brackets) = (0usize, 0usize);
    let mut in_list = false;
    for (index, ch) in line.char_indices().rev() {
        match ch {
            ')' => parens += 1,
            ']' => brackets += 1,
            '[' if brackets == 0 => in_list = true,
            '[' => brackets -= 1,
            '(' if parens == 0 => {
                let callee: String = line[..index]
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Context::Call {
                    callee,
                    args: split_args(&line[index + 1..]),
                };
            }
            '(' => parens -= 1,
            _ => {}
        }
    }
    if in_list {
        return Context::Shape;
    }
    let before_word = line.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if before_word.ends_with(char::is_whitespace) && before_word.trim_end().ends_with("from") {
        let keyword_start = before_word.trim_end().len() - 4;
        let preceding = before_word[..keyword_start].chars().next_back();
        if preceding.map_or(true, |c| !(c.is_ascii_alphanumeric() || c == '_')) {
            return Context::From;
        }
    }
    Context::Row
}

/// Splits argument text at top-level commas.
fn split_args(text: &str) -> Vec<String> {
    let mut args = vec![String::new()];
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(ch);
        }
    }
    args
}

/// The keyword an argument names, if it is `name = ...`.
fn keyword_of(arg: &str) -> Option<&str> {
    let (name, _) = arg.split_once('=')?;
    let name = name.trim();
    is_word(name).then_some(name)
}

fn callee_signature(name: &str, headers: &[Header]) -> Option<Signature> {
    signatures::builtin(name).or_else(|| {
        headers
            .iter()
            .find(|h| !h.network && h.signature.name == name)
            .map(|h| h.signature.clone())
    })
}

/// Completion items at `offset`.
pub fn completion(text: &str, offset: usize) -> Vec<CompletionItem> {
    let headers = headers(text);
    let enclosing = enclosing(text, &headers, offset);
    let params: Vec<CompletionItem> = enclosing
        .map(|(h, _)| {
            h.signature
                .params
                .iter()
                .map(|(name, default)| {
                    item(
                        name,
                        CompletionItemKind::VARIABLE,
                        Some(format!(
                            "parameter of {}{}",
                            h.signature.name,
                            default
                                .as_ref()
                                .map_or(String::new(), |d| format!(" (default {d})"))
                        )),
                        None,
                        None,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let values = || {
        let mut items = params.clone();
        for word in ["true", "false", "same"] {
            items.push(item(word, CompletionItemKind::KEYWORD, None, None, None));
        }
        items
    };
    match context(text, offset) {
        Context::Comment => Vec::new(),
        Context::Shape => params.clone(),
        Context::From => enclosing
            .map(|(h, end)| {
                statement_names(text, h, end)
                    .into_iter()
                    .map(|name| item(&name, CompletionItemKind::FIELD, None, None, None))
                    .collect()
            })
            .unwrap_or_default(),
        Context::Call { callee, args } => {
            let current = args.last().map(String::as_str).unwrap_or("");
            if keyword_of(current).is_some() {
                return values();
            }
            let mut items = Vec::new();
            if let Some(signature) = callee_signature(&callee, &headers) {
                let given: Vec<&str> = args.iter().filter_map(|a| keyword_of(a)).collect();
                for (name, default) in &signature.params {
                    if given.contains(&name.as_str()) {
                        continue;
                    }
                    items.push(item(
                        name,
                        CompletionItemKind::PROPERTY,
                        Some(match default {
                            Some(default) => format!("{name} = {default}"),
                            None => format!("{name} (required)"),
                        }),
                        None,
                        Some(format!("{name} = ")),
                    ));
                }
            }
            items.extend(values());
            items
        }
        Context::Row => {
            let mut items: Vec<CompletionItem> = signatures::builtins()
                .map(|s| {
                    item(
                        &s.name,
                        CompletionItemKind::FUNCTION,
                        Some(s.label()),
                        Some(s.description.to_string()),
                        None,
                    )
                })
                .collect();
            for header in headers.iter().filter(|h| !h.network) {
                items.push(item(
                    &header.signature.name,
                    CompletionItemKind::CLASS,
                    Some(format!("block {}", header.signature.label())),
                    None,
                    None,
                ));
            }
            let keywords: &[&str] = if enclosing.is_some() {
                &["concat", "add", "mul", "for", "side", "input"]
            } else {
                &["block", "network"]
            };
            for keyword in keywords {
                debug_assert!(KEYWORDS.contains(keyword));
                items.push(item(keyword, CompletionItemKind::KEYWORD, None, None, None));
            }
            items
        }
    }
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    documentation: Option<String>,
    insert_text: Option<String>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        documentation: documentation.filter(|d| !d.is_empty()).map(|value| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            })
        }),
        insert_text,
        ..CompletionItem::default()
    }
}

/// The signature of the call the cursor is in, with the argument being typed marked.
pub fn signature_help(text: &str, offset: usize) -> Option<SignatureHelp> {
    let Context::Call { callee, args } = context(text, offset) else {
        return None;
    };
    let headers = headers(text);
    let signature = callee_signature(&callee, &headers)?;
    let current = args.last().map(String::as_str).unwrap_or("");
    let active = match keyword_of(current) {
        Some(keyword) => signature.params.iter().position(|(n, _)| n == keyword),
        None if args.iter().any(|a| keyword_of(a).is_some()) => None,
        None => Some(args.len() - 1).filter(|&i| i < signature.params.len()),
    }
    .map(|i| i as u32);
    let (label, offsets) = signature.label_with_offsets();
    let keyword = if signature.builtin { "" } else { "block " };
    Some(SignatureHelp {
        signatures: vec![SignatureInformation {
            label: format!("{keyword}{label}"),
            documentation: (!signature.description.is_empty())
                .then(|| Documentation::String(signature.description.to_string())),
            parameters: Some(
                offsets
                    .into_iter()
                    .map(|[start, end]| {
                        let shift = keyword.len() as u32;
                        ParameterInformation {
                            label: ParameterLabel::LabelOffsets([start + shift, end + shift]),
                            documentation: None,
                        }
                    })
                    .collect(),
            ),
            active_parameter: active,
        }],
        active_signature: Some(0),
        active_parameter: active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "block inception(c1, c3r = 2) {\n    concat {\n        branch1 = conv2d(c1, 1)\n    }\n}\nnetwork net(n = 10) {\n    input [3, 32, 32]\n    stem = conv2d(16, 3, pad = 1)\n    mix = inception(8)\n    side aux = linear(n) from \n}\n";

    fn names(items: &[CompletionItem]) -> Vec<&str> {
        items.iter().map(|i| i.label.as_str()).collect()
    }

    #[test]
    fn headers_are_read_from_lines() {
        let found = headers(SOURCE);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].signature.label(), "inception(c1, c3r = 2)");
        assert!(found[1].network);
    }

    #[test]
    fn a_row_offers_layers_blocks_and_keywords() {
        let offset = SOURCE.find("conv2d(16").unwrap();
        let items = completion(SOURCE, offset);
        let labels = names(&items);
        assert!(labels.contains(&"conv2d"));
        assert!(labels.contains(&"inception"));
        assert!(labels.contains(&"concat"));
        assert!(!labels.contains(&"network"));
        // Outside every body: the definition keywords.
        assert!(names(&completion(SOURCE, SOURCE.len())).contains(&"network"));
    }

    #[test]
    fn a_call_offers_its_keywords_not_yet_given_and_the_parameters_in_scope() {
        let offset = SOURCE.find("pad = 1)").unwrap();
        let items = completion(SOURCE, offset);
        let labels = names(&items);
        assert!(labels.contains(&"stride"));
        assert!(labels.contains(&"groups"));
        assert!(labels.contains(&"n"), "the network's parameter");
        // After `pad =`: values, not keywords.
        let after = SOURCE.find("pad = 1)").unwrap() + "pad = ".len();
        let items_after = completion(SOURCE, after);
        let labels_after = names(&items_after);
        assert!(!labels_after.contains(&"stride"));
        assert!(labels_after.contains(&"same"));
        // A block's parameters as keywords.
        let offset = SOURCE.find("inception(8)").unwrap() + "inception(8, ".len() - 2;
        assert!(names(&completion(SOURCE, offset)).contains(&"c3r"));
    }

    #[test]
    fn after_from_the_statement_names_of_the_body() {
        let offset = SOURCE.find("from ").unwrap() + "from ".len();
        let items = completion(SOURCE, offset);
        assert_eq!(names(&items), ["stem", "mix", "aux"]);
    }

    #[test]
    fn comments_get_nothing() {
        let source = "network n() { # conv";
        assert!(completion(source, source.len()).is_empty());
    }

    #[test]
    fn signature_help_marks_the_argument_being_typed() {
        let offset = SOURCE.find("3, pad").unwrap();
        let help = signature_help(SOURCE, offset).unwrap();
        assert_eq!(help.active_parameter, Some(1));
        let offset = SOURCE.find("pad = 1)").unwrap() + "pad = ".len();
        let help = signature_help(SOURCE, offset).unwrap();
        assert_eq!(help.active_parameter, Some(3), "pad is conv2d's fourth");
        let ParameterLabel::LabelOffsets([start, end]) =
            help.signatures[0].parameters.as_ref().unwrap()[3].label
        else {
            panic!("offsets")
        };
        assert_eq!(
            &help.signatures[0].label[start as usize..end as usize],
            "pad = 0"
        );
        let offset = SOURCE.find("inception(8)").unwrap() + "inception(".len();
        let help = signature_help(SOURCE, offset).unwrap();
        assert_eq!(help.signatures[0].label, "block inception(c1, c3r = 2)");
        assert!(signature_help(SOURCE, 0).is_none());
    }
}
