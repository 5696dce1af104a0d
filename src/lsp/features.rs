//! What the server answers about a checked document: hover, inlay hints, definition, references, rename,
//! document symbols and formatting. Each function takes the document and byte offsets, and returns `lsp_types`
//! values; none of them can fail on any text or offset.

use std::collections::HashMap;
use std::fmt::Write as _;

use lsp_types::{
    DocumentSymbol, Hover, HoverContents, InlayHint, InlayHintKind, InlayHintLabel,
    InlayHintTooltip, Location, MarkupContent, MarkupKind, Range, SymbolKind, TextEdit, Uri,
};

use crate::ast::{self, DefinitionKind, LayerStatement, Statement};
use crate::diagnostic::{Code, Span};
use crate::ir::{Node, NodeKind};
use crate::summary::{node_cost, summarize, thousands};
use crate::SourceKind;

use super::analysis::{
    calls, distinct_shapes, occurrence_at, occurrences, statement_node_span, statements, Document,
    Instance, Symbol,
};
use super::signatures;

/// How many block instances a hint or hover lists before it says how many more there are.
const MAX_LISTED: usize = 4;

// -------------------------------------------------------------------------------------------------------------
// Hover

/// The hover at `offset`: an error code's explanation, a call's layer or block, a statement's shape, a
/// parameter's values, a definition's signature.
pub fn hover(document: &Document, offset: usize) -> Option<Hover> {
    let text = document.text.as_str();
    if let Some((span, code)) = code_at(text, offset) {
        return Some(markdown(
            format!(
                "**{code}**: {}\n\n{}",
                code.title(),
                crate::explain::explanation(code)
            ),
            Some(document.text.range(span)),
        ));
    }
    let file = document.file.as_ref()?;
    if let Some((_, call)) = calls(file)
        .into_iter()
        .find(|(_, call)| contains(call.callee.span, offset))
    {
        return Some(markdown(
            call_hover(document, file, call),
            Some(document.text.range(call.callee.span)),
        ));
    }
    if let Some((call, name)) = calls(file).into_iter().find_map(|(_, call)| {
        let name = call
            .args
            .iter()
            .filter_map(|a| a.name.as_ref())
            .find(|n| contains(n.span, offset))?;
        Some((call, name))
    }) {
        if let Some(signature) = signatures::builtin(&call.callee.name) {
            let body = match signature.params.iter().find(|(p, _)| *p == name.name) {
                Some((_, Some(default))) => {
                    format!(
                        "`{}` of `{}` (default `{default}`)",
                        name.name, signature.name
                    )
                }
                Some((_, None)) => format!("`{}` of `{}` (required)", name.name, signature.name),
                None => format!("`{}` has no parameter `{}`", signature.name, name.name),
            };
            return Some(markdown(
                format!("{body}\n\n```arch\n{}\n```", signature.label()),
                Some(document.text.range(name.span)),
            ));
        }
    }
    let all = occurrences(file);
    if let Some(occurrence) = occurrence_at(&all, offset) {
        let body = match &occurrence.symbol {
            Symbol::Statement { .. } => {
                let declaration = all
                    .iter()
                    .find(|o| o.declaration && o.symbol == occurrence.symbol)?;
                let (_, _, statement) = statements(file)
                    .into_iter()
                    .find(|(_, _, s)| s.name.as_ref().map(|n| n.span) == Some(declaration.span))?;
                statement_hover(document, statement)
            }
            Symbol::Param { owner, name } => param_hover(document, file, *owner, name),
            Symbol::Definition(name) => definition_hover(document, file, name),
        };
        return Some(markdown(body, Some(document.text.range(occurrence.span))));
    }
    // Anywhere else on a row: the innermost statement's shape.
    let (_, _, statement) = statements(file)
        .into_iter()
        .filter(|(_, _, s)| contains(s.span, offset))
        .min_by_key(|(_, _, s)| s.span.end - s.span.start)?;
    Some(markdown(
        statement_hover(document, statement),
        Some(document.text.range(statement.span)),
    ))
}

fn markdown(value: String, range: Option<Range>) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range,
    }
}

fn contains(span: Span, offset: usize) -> bool {
    span.start as usize <= offset && offset <= span.end as usize
}

/// A diagnostic code (`E0102`, `W0201`) written at `offset`, e.g. in a comment.
fn code_at(text: &str, offset: usize) -> Option<(Span, Code)> {
    let offset = offset.min(text.len());
    let bytes = text.as_bytes();
    let mut start = offset;
    while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    let mut end = offset;
    while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    let word = text.get(start..end)?;
    if word.len() != 5 {
        return None;
    }
    Some((Span::new(start, end), Code::parse(word)?))
}

fn call_hover(document: &Document, file: &ast::File, call: &ast::Call) -> String {
    let name = call.callee.name.as_str();
    let mut out = String::new();
    let signature = signatures::builtin(name).or_else(|| {
        file.items
            .iter()
            .find(|d| d.kind == DefinitionKind::Block && d.name.name == name)
            .map(|d| signatures::block(d, document.text.as_str()))
    });
    match &signature {
        Some(signature) => {
            let keyword = if signature.builtin { "" } else { "block " };
            let _ = writeln!(out, "```arch\n{keyword}{}\n```", signature.label());
            if !signature.description.is_empty() {
                let _ = writeln!(out, "{}", signature.description);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "`{name}`: not a built-in layer or a block of this file"
            );
        }
    }
    let instances = document.nodes_at(call.span);
    out.push_str("\n---\n");
    if instances.is_empty() {
        out.push_str(&unchecked_text(document, call.span));
    } else {
        out.push_str(&instances_text(&instances, true));
    }
    out
}

/// Why a call or statement has no checked node: the errors on it, with what the checker inferred.
fn unchecked_text(document: &Document, span: Span) -> String {
    let mut out = String::from("not checked");
    for d in &document.diagnostics {
        if d.is_error()
            && d.primary.span.start < span.end.max(span.start + 1)
            && span.start < d.primary.span.end.max(d.primary.span.start + 1)
        {
            let _ = write!(out, "\n\n**{}**: {}", d.code, d.message);
            if !d.primary.message.is_empty() {
                let _ = write!(out, " ({})", d.primary.message);
            }
            for note in &d.notes {
                let _ = write!(out, "  \nnote: {note}");
            }
        }
    }
    out
}

fn statement_hover(document: &Document, statement: &LayerStatement) -> String {
    let mut out = String::new();
    if let Some(name) = &statement.name {
        let _ = write!(out, "**{}**", name.name);
        if let Some(source) = &statement.side_from {
            let _ = write!(out, " (training-only side output from `{}`)", source.name);
        }
        out.push('\n');
    }
    let instances = document.nodes_at(statement_node_span(statement));
    if instances.is_empty() {
        out.push('\n');
        out.push_str(&unchecked_text(document, statement.span));
    } else {
        out.push('\n');
        out.push_str(&instances_text(&instances, statement.chain.len() == 1));
    }
    out
}

/// One paragraph per block instance (the first few): the shapes, the layer's settings, the costs, the formula.
fn instances_text(instances: &[Instance<'_>], single_op: bool) -> String {
    let mut out = String::new();
    for (index, instance) in instances.iter().enumerate() {
        if index == MAX_LISTED {
            let _ = writeln!(out, "… and {} more instances", instances.len() - index);
            break;
        }
        if index > 0 {
            out.push('\n');
        }
        let node = instance.node;
        if let Some(name) = instance.instance {
            let _ = writeln!(out, "in `{name}`:  ");
        }
        let (params, macs) = node_cost(node);
        let _ = writeln!(
            out,
            "`{}` → `{}` · {} params · {} MACs  ",
            node.input,
            node.output,
            thousands(params),
            thousands(macs)
        );
        if !node.path.is_empty() {
            let _ = writeln!(out, "weights: `{}`  ", node.path);
        }
        match &node.kind {
            NodeKind::Layer(layer) if single_op => {
                let _ = writeln!(out, "{}  ", layer.settings());
                if let Some(formula) = layer.formula(node.input, node.output) {
                    let _ = writeln!(out, "{formula}  ");
                }
            }
            NodeKind::Block { args, .. } => {
                let args: Vec<String> = args.iter().map(|(n, v)| format!("{n} = {v}")).collect();
                let _ = writeln!(out, "arguments: {}  ", args.join(", "));
            }
            _ => {}
        }
    }
    out
}

fn param_hover(document: &Document, file: &ast::File, owner: usize, name: &str) -> String {
    let definition = &file.items[owner];
    let mut out = format!(
        "parameter `{name}` of {} `{}`",
        kind_word(definition.kind),
        definition.name.name
    );
    let default = definition
        .params
        .iter()
        .find(|p| p.name.name == name)
        .and_then(|p| p.default.as_ref());
    if let Some(default) = default {
        let text = document
            .text
            .as_str()
            .get(default.span.range())
            .unwrap_or("?");
        let _ = write!(out, " (default `{text}`)");
    }
    out.push('\n');
    if definition.kind == DefinitionKind::Block {
        let mut values = Vec::new();
        for network in &document.networks {
            network.walk(|node| {
                if let NodeKind::Block { block, args, .. } = &node.kind {
                    if *block == definition.name.name {
                        if let Some((_, value)) = args.iter().find(|(n, _)| n == name) {
                            values.push(format!("`{}`: {value}", display_path(node)));
                        }
                    }
                }
            });
        }
        if !values.is_empty() {
            let _ = write!(out, "\nvalues: {}", values.join(", "));
        }
    }
    out
}

fn definition_hover(document: &Document, file: &ast::File, name: &str) -> String {
    let Some(definition) = file.items.iter().find(|d| d.name.name == name) else {
        return String::new();
    };
    let mut out = format!(
        "```arch\n{} {}\n```\n",
        kind_word(definition.kind),
        signatures::block(definition, document.text.as_str()).label()
    );
    match definition.kind {
        DefinitionKind::Network => {
            if let Some(network) = document.networks.iter().find(|n| n.name == name) {
                let summary = summarize(network);
                let _ = write!(
                    out,
                    "\n`{}` → `{}` · {} params ({} with side outputs) · {} MACs",
                    network.input,
                    network.output,
                    thousands(summary.params_inference),
                    thousands(summary.params_total),
                    thousands(summary.macs_inference)
                );
            }
        }
        DefinitionKind::Block => {
            let mut uses = Vec::new();
            for network in &document.networks {
                network.walk(|node| {
                    if matches!(&node.kind, NodeKind::Block { block, .. } if block == name) {
                        uses.push(node);
                    }
                });
            }
            let _ = write!(out, "\nused {} times", uses.len());
            if !uses.is_empty() {
                let listed: Vec<String> = uses
                    .iter()
                    .take(MAX_LISTED)
                    .map(|n| format!("`{}` {}", display_path(n), n.output))
                    .collect();
                let _ = write!(out, ": {}", listed.join(", "));
                if uses.len() > MAX_LISTED {
                    out.push_str(", …");
                }
            }
        }
    }
    out
}

fn display_path(node: &Node) -> &str {
    if node.path.is_empty() {
        "(unnamed)"
    } else {
        &node.path
    }
}

fn kind_word(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Block => "block",
        DefinitionKind::Network => "network",
    }
}

// -------------------------------------------------------------------------------------------------------------
// Inlay hints

/// The inferred output shape at the end of each statement row in `range` (byte offsets) that does not declare
/// its size. In a block body used with different shapes, each instance's shape.
pub fn inlay_hints(document: &Document, range: std::ops::Range<usize>) -> Vec<InlayHint> {
    let Some(file) = &document.file else {
        return Vec::new();
    };
    let nodes = document.nodes_by_span();
    let mut hints = Vec::new();
    for (_, _, statement) in statements(file) {
        let end = statement.span.end as usize;
        if statement.declared.is_some() || !range.contains(&end) && end != range.end {
            continue;
        }
        let Some(instances) = nodes.get(&statement_node_span(statement)) else {
            continue;
        };
        let shapes = distinct_shapes(instances);
        let (label, tooltip) = match shapes.as_slice() {
            [] => continue,
            [shape] => (shape.to_string(), None),
            _ => {
                let all: Vec<String> = instances.iter().map(instance_shape).collect();
                let mut label = all[..all.len().min(MAX_LISTED - 1)].join(" · ");
                if all.len() > MAX_LISTED - 1 {
                    let _ = write!(label, " · … +{}", all.len() - (MAX_LISTED - 1));
                }
                (label, Some(all.join("\n")))
            }
        };
        hints.push(InlayHint {
            position: document.text.position(end),
            label: InlayHintLabel::String(label),
            kind: Some(InlayHintKind::TYPE),
            text_edits: None,
            tooltip: tooltip.map(InlayHintTooltip::String),
            padding_left: Some(true),
            padding_right: None,
            data: None,
        });
    }
    // A group's row ends after its branches' rows: editors want hints in document order.
    hints.sort_by_key(|h| (h.position.line, h.position.character));
    hints
}

fn instance_shape(instance: &Instance<'_>) -> String {
    match instance.instance {
        Some(name) => format!("{name} {}", instance.node.output),
        None => instance.node.output.to_string(),
    }
}

// -------------------------------------------------------------------------------------------------------------
// Definition, references, rename

/// Where the name at `offset` is declared.
pub fn definition(document: &Document, uri: &Uri, offset: usize) -> Option<Location> {
    let file = document.file.as_ref()?;
    let all = occurrences(file);
    let at = occurrence_at(&all, offset)?;
    let declaration = all
        .iter()
        .find(|o| o.declaration && o.symbol == at.symbol)?;
    Some(Location::new(
        uri.clone(),
        document.text.range(declaration.span),
    ))
}

/// Every place the name at `offset` is written.
pub fn references(
    document: &Document,
    uri: &Uri,
    offset: usize,
    include_declaration: bool,
) -> Vec<Location> {
    let Some(file) = &document.file else {
        return Vec::new();
    };
    let all = occurrences(file);
    let Some(at) = occurrence_at(&all, offset) else {
        return Vec::new();
    };
    all.iter()
        .filter(|o| o.symbol == at.symbol && (include_declaration || !o.declaration))
        .map(|o| Location::new(uri.clone(), document.text.range(o.span)))
        .collect()
}

/// The range of the renameable name at `offset` (a block, network, parameter or statement name), in `.arch`
/// text only.
pub fn prepare_rename(document: &Document, offset: usize) -> Option<Range> {
    if document.kind != SourceKind::Arch {
        return None;
    }
    let file = document.file.as_ref()?;
    let all = occurrences(file);
    let at = occurrence_at(&all, offset)?;
    // The declaration must be in this file (a name that refers to nothing is not renamed).
    all.iter()
        .find(|o| o.declaration && o.symbol == at.symbol)?;
    Some(document.text.range(at.span))
}

/// The edits that rename the name at `offset` everywhere it refers to the same thing.
pub fn rename(document: &Document, offset: usize, new_name: &str) -> Result<Vec<TextEdit>, String> {
    if document.kind != SourceKind::Arch {
        return Err("rename works in .arch files only".to_string());
    }
    let file = document
        .file
        .as_ref()
        .ok_or("the file has a syntax error; fix it before renaming")?;
    if !is_identifier(new_name) {
        return Err(format!("`{new_name}` is not a name"));
    }
    if KEYWORDS.contains(&new_name) || signatures::builtin(new_name).is_some() {
        return Err(format!("`{new_name}` is a keyword or a built-in layer"));
    }
    let all = occurrences(file);
    let at = occurrence_at(&all, offset).ok_or("no block, parameter or statement name here")?;
    if let Symbol::Definition(_) = at.symbol {
        if file.items.iter().any(|d| d.name.name == new_name) {
            return Err(format!("`{new_name}` is already defined"));
        }
    }
    Ok(all
        .iter()
        .filter(|o| o.symbol == at.symbol)
        .map(|o| TextEdit::new(document.text.range(o.span), new_name.to_string()))
        .collect())
}

/// The words of the grammar that cannot be names.
pub const KEYWORDS: &[&str] = &[
    "block", "network", "input", "side", "from", "concat", "add", "mul", "for", "true", "false",
    "same",
];

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// -------------------------------------------------------------------------------------------------------------
// Document symbols

/// The outline: blocks and networks, their statements, and the named branches of groups.
pub fn document_symbols(document: &Document) -> Vec<DocumentSymbol> {
    let Some(file) = &document.file else {
        return Vec::new();
    };
    let nodes = document.nodes_by_span();
    let text = &document.text;
    file.items
        .iter()
        .map(|definition| {
            let detail = match definition.kind {
                DefinitionKind::Network => document
                    .networks
                    .iter()
                    .find(|n| n.name == definition.name.name)
                    .map(|n| format!("{} → {}", n.input, n.output)),
                DefinitionKind::Block => Some(signatures::block(definition, text.as_str()).label()),
            };
            let children = body_symbols(document, &nodes, &definition.body);
            symbol(
                &definition.name.name,
                detail,
                match definition.kind {
                    DefinitionKind::Block => SymbolKind::CLASS,
                    DefinitionKind::Network => SymbolKind::MODULE,
                },
                text.range(definition.span.to(definition.name.span)),
                text.range(definition.name.span),
                Some(children),
            )
        })
        .collect()
}

/// The symbols of a body's statements, those in its loops included.
fn body_symbols(
    document: &Document,
    nodes: &HashMap<Span, Vec<Instance<'_>>>,
    body: &[Statement],
) -> Vec<DocumentSymbol> {
    let mut symbols = Vec::new();
    for statement in body {
        match statement {
            Statement::Layer(s) => symbols.extend(statement_symbol(document, nodes, s)),
            Statement::For(for_loop) => {
                symbols.extend(body_symbols(document, nodes, &for_loop.body))
            }
            Statement::Input(_) => {}
        }
    }
    symbols
}

fn statement_symbol(
    document: &Document,
    nodes: &HashMap<Span, Vec<Instance<'_>>>,
    statement: &LayerStatement,
) -> Option<DocumentSymbol> {
    let name = statement.name.as_ref()?;
    let mut children: Vec<DocumentSymbol> = Vec::new();
    for op in &statement.chain {
        match op {
            ast::Op::Group(group) => children.extend(
                group
                    .branches
                    .iter()
                    .filter_map(|b| statement_symbol(document, nodes, b)),
            ),
            ast::Op::Sequence(sequence) => {
                children.extend(body_symbols(document, nodes, &sequence.body))
            }
            ast::Op::Call(_) => {}
        }
    }
    let detail = nodes
        .get(&statement_node_span(statement))
        .and_then(|instances| match distinct_shapes(instances).as_slice() {
            [shape] => Some(shape.to_string()),
            _ => None,
        });
    Some(symbol(
        &name.name,
        detail,
        if statement.side_from.is_some() {
            SymbolKind::EVENT
        } else {
            SymbolKind::FIELD
        },
        document.text.range(statement.span.to(name.span)),
        document.text.range(name.span),
        (!children.is_empty()).then_some(children),
    ))
}

#[allow(deprecated)] // `deprecated` is a required field of the struct, though the protocol deprecates it
fn symbol(
    name: &str,
    detail: Option<String>,
    kind: SymbolKind,
    range: Range,
    selection_range: Range,
    children: Option<Vec<DocumentSymbol>>,
) -> DocumentSymbol {
    DocumentSymbol {
        name: name.to_string(),
        detail,
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range,
        children,
    }
}

// -------------------------------------------------------------------------------------------------------------
// Formatting

/// `archc fmt` as one edit over the whole document (none when it is already formatted). YAML is left alone.
pub fn formatting(document: &Document) -> Result<Vec<TextEdit>, String> {
    if document.kind != SourceKind::Arch {
        return Ok(Vec::new());
    }
    let text = document.text.as_str();
    match crate::fmt::format_source(text) {
        Ok(formatted) if formatted == text => Ok(Vec::new()),
        Ok(formatted) => Ok(vec![TextEdit::new(document.text.full_range(), formatted)]),
        Err(diagnostics) => {
            let first = diagnostics
                .first()
                .map(|d| {
                    let position = document.text.position(d.primary.span.start as usize);
                    format!(
                        " at {}:{}: {}",
                        position.line + 1,
                        position.character + 1,
                        d.message
                    )
                })
                .unwrap_or_default();
            Err(format!("not formatted: syntax error{first}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
network net(n = 10) {
    input [3, 32, 32]
    conv = conv2d(16, 3, pad = 1)
    pool = max_pool(3, stride = 2) : [16, 16, 16]
    fc = flatten -> linear(n)
}
";

    fn hover_text(source: &str, needle: &str) -> String {
        let document = Document::new(SourceKind::Arch, 0, source.to_string());
        let offset = source.find(needle).expect("needle") + 1;
        match hover(&document, offset).map(|h| h.contents) {
            Some(HoverContents::Markup(markup)) => markup.value,
            other => panic!("no markdown hover: {other:?}"),
        }
    }

    #[test]
    fn keywords_match_the_grammar() {
        let grammar = include_str!("../../grammar/arch.pest");
        let rule = grammar
            .lines()
            .find(|line| line.starts_with("keyword "))
            .expect("a keyword rule");
        let mut words: Vec<&str> = rule.split('"').skip(1).step_by(2).collect();
        let mut ours = KEYWORDS.to_vec();
        words.sort_unstable();
        ours.sort_unstable();
        assert_eq!(words, ours);
    }

    #[test]
    fn hover_on_a_layer_call_shows_signature_shapes_costs_and_the_formula() {
        let text = hover_text(SOURCE, "conv2d");
        assert!(text.contains("conv2d(out, kernel, stride = 1"), "{text}");
        assert!(text.contains(signatures::description("conv2d")));
        // 16 filters of 3×3×3 plus 16 biases; 16·27 MACs at each of 32×32 positions.
        assert!(
            text.contains("`[3, 32, 32]` → `[16, 32, 32]` · 448 params · 442,368 MACs"),
            "{text}"
        );
        assert!(
            text.contains("height and width: 32 + 2×1 − 3 + 1 = 32"),
            "{text}"
        );
    }

    #[test]
    fn hover_on_a_row_that_fails_shows_the_error_and_its_arithmetic() {
        // A 3×3/2 pool of 32 gives floor((32 − 3) / 2) + 1 = 15, not the declared 16.
        let text = hover_text(SOURCE, "pool =");
        assert!(text.contains("not checked"), "{text}");
        assert!(text.contains("E0102"), "{text}");
        assert!(text.contains("floor((32 − 3) / 2) + 1 = 15"), "{text}");
    }

    #[test]
    fn hover_on_a_keyword_argument_shows_its_default() {
        let text = hover_text(SOURCE, "stride");
        assert!(
            text.starts_with("`stride` of `max_pool` (default `kernel`)"),
            "{text}"
        );
    }

    #[test]
    fn hover_on_a_code_in_a_comment_explains_it() {
        let source = "# see W0201 here\n";
        let text = hover_text(source, "W0201");
        assert!(text.starts_with("**W0201**: floor-mode pooling"), "{text}");
    }
}
