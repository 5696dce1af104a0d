//! Keywords as names: a statement or a branch may be called `block`, `input`, `add`, `side`, `from`, `same`,
//! `concat` or `network` (torchvision's MBConv has a member `block`, and weight names follow PyTorch's), in
//! `.arch` and in YAML, through `archc fmt` unchanged. Where a keyword cannot be a name (a block, network or
//! parameter, or `true`/`false` anywhere), the syntax error says it is a keyword.

use archc::ir::{Network, NodeKind};
use archc::{compile, Checked, SourceKind};

/// The words of the grammar's `keyword` rule that can name statements (all but the values `true`/`false`).
const NAMING_KEYWORDS: &[&str] = &[
    "block", "network", "input", "side", "from", "concat", "add", "same",
];

/// torchvision-like members named by keywords, a side output named `side` reading a statement named `block`.
const MEMBERS: &str = "\
block mbconv(out) {
    block   = conv2d(out, 1) -> batch_norm -> relu
    input   = conv2d(out, 3, pad = 1)
    add {
        same   = identity
        concat = conv2d(out, 1)
    }
    side    = relu
    from    = batch_norm
    network = relu
}

network keywords(num_classes = 10) {
    input [3, 8, 8]
    block     = mbconv(8)                                          : [8, 8, 8]
    side side = global_avg_pool -> flatten -> linear(num_classes) from block : [num_classes]
    features  = mbconv(8) -> global_avg_pool -> flatten
    add       = linear(num_classes)                                : [num_classes]
}
";

/// The same file in YAML.
const MEMBERS_YAML: &str = "\
blocks:
  mbconv:
    params: [out]
    body:
      - block: conv2d(out, 1) -> batch_norm -> relu
      - input: conv2d(out, 3, pad = 1)
      - add:
          same: identity
          concat: conv2d(out, 1)
      - side: relu
      - from: batch_norm
      - network: relu
networks:
  keywords:
    params: {num_classes: 10}
    input: [3, 8, 8]
    body:
      - block: mbconv(8)
        shape: [8, 8, 8]
      - side side: global_avg_pool -> flatten -> linear(num_classes)
        from: block
        shape: [num_classes]
      - features: mbconv(8) -> global_avg_pool -> flatten
      - add: linear(num_classes)
        shape: [num_classes]
";

fn clean(kind: SourceKind, source: &str) -> Checked {
    let checked = compile(kind, source);
    assert!(
        checked.diagnostics.is_empty(),
        "{}",
        archc::render::render("test", source, &checked.diagnostics, false)
    );
    checked
}

/// The weight paths of the layers that have weights, in source order.
fn weight_paths(network: &Network) -> Vec<String> {
    let mut paths = Vec::new();
    network.walk(|node| {
        if let NodeKind::Layer(layer) = &node.kind {
            if layer.has_weights() {
                paths.push(node.path.clone());
            }
        }
    });
    paths
}

#[test]
fn keywords_name_members_and_their_weights() {
    let checked = clean(SourceKind::Arch, MEMBERS);
    let paths = weight_paths(&checked.networks[0]);
    for expected in [
        "block.block.0",
        "block.block.1",
        "block.input",
        // The add group is unnamed: its branches are named at the block's level.
        "block.concat",
        "block.from",
        "side.2",
        "features.0.block.0",
        "add",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "no `{expected}` in {paths:?}"
        );
    }
}

#[test]
fn every_naming_keyword_names_a_statement_a_branch_and_a_side_source() {
    for keyword in NAMING_KEYWORDS {
        let source = format!(
            "network n {{
    input [3, 8, 8]
    {keyword} = conv2d(4, 1)                        : [4, 8, 8]
    side aux = global_avg_pool -> flatten from {keyword} : [4]
    m = concat {{
        {keyword} = conv2d(2, 1)
        other = conv2d(2, 1)
    }}                                               : [4, 8, 8]
}}
"
        );
        let checked = clean(SourceKind::Arch, &source);
        let paths = weight_paths(&checked.networks[0]);
        assert_eq!(
            paths,
            [
                keyword.to_string(),
                format!("m.{keyword}"),
                "m.other".to_string()
            ],
            "{keyword}"
        );
    }
}

#[test]
fn yaml_accepts_the_same_names_and_checks_to_the_same_network() {
    let arch = clean(SourceKind::Arch, MEMBERS);
    let yaml = clean(SourceKind::Yaml, MEMBERS_YAML);
    assert_eq!(
        yaml.networks[0].without_spans(),
        arch.networks[0].without_spans()
    );
}

#[test]
fn fmt_keeps_keyword_names_and_is_idempotent() {
    let formatted = archc::fmt::format_source(MEMBERS).unwrap();
    assert_eq!(
        archc::fmt::format_source(&formatted).unwrap(),
        formatted,
        "not idempotent"
    );
    let before = clean(SourceKind::Arch, MEMBERS);
    let after = clean(SourceKind::Arch, &formatted);
    assert_eq!(
        after.networks[0].without_spans(),
        before.networks[0].without_spans()
    );
    assert!(formatted.contains("    block "), "{formatted}");
}

/// (source, the keyword the error must name).
const KEYWORDS_THAT_CANNOT_BE_NAMES: &[(&str, &str)] = &[
    (
        "network n {\n    input [3, 8, 8]\n    true = conv2d(4, 1)\n}\n",
        "true",
    ),
    (
        "network n {\n    input [3, 8, 8]\n    m = concat {\n        false = relu\n    }\n}\n",
        "false",
    ),
    ("block input(c) {\n    relu\n}\n", "input"),
    ("network add {\n    input [3, 8, 8]\n}\n", "add"),
    ("block b(same) {\n    relu\n}\n", "same"),
    ("block b(input = 3) {\n    relu\n}\n", "input"),
    ("block b {\n    x = conv2d(4, 1, from = 1)\n}\n", "from"),
];

#[test]
fn a_keyword_that_cannot_be_a_name_is_called_a_keyword() {
    for (source, keyword) in KEYWORDS_THAT_CANNOT_BE_NAMES {
        let checked = compile(SourceKind::Arch, source);
        let [error] = checked.diagnostics.as_slice() else {
            panic!("{source}: {:?}", checked.diagnostics)
        };
        assert_eq!(error.code.as_str(), "E0001", "{source}");
        assert_eq!(
            error.message,
            format!("`{keyword}` is a keyword and cannot be used as a name here"),
            "{source}"
        );
        let start = error.primary.span.start as usize;
        assert_eq!(
            &source[start..start + keyword.len()],
            *keyword,
            "{source}: the caret is not on the keyword"
        );
    }
}

#[test]
fn a_definition_inside_an_unclosed_body_is_still_a_missing_brace() {
    let source = "block a {\n    relu\n\nblock b {\n    relu\n}\n";
    let checked = compile(SourceKind::Arch, source);
    let [error] = checked.diagnostics.as_slice() else {
        panic!("{:?}", checked.diagnostics)
    };
    assert_eq!(error.message, "expected `}` before `block`");
}

#[test]
fn a_keyword_named_statement_after_a_dangling_arrow_blames_the_arrow() {
    // `input = relu` is a statement of its own: what is missing is the layer after `->`.
    let source = "network n {\n    input [3, 8, 8]\n    x = conv2d(4, 1) ->\n    input = relu\n}\n";
    let checked = compile(SourceKind::Arch, source);
    let [error] = checked.diagnostics.as_slice() else {
        panic!("{:?}", checked.diagnostics)
    };
    assert!(
        error.message.starts_with("expected ") && !error.message.contains("keyword"),
        "{}",
        error.message
    );
}

#[test]
fn yaml_says_how_to_name_a_statement_from_when_it_has_a_shape() {
    // Beside `shape:`, `from:` is the side-output attribute; the inline form names a statement `from`.
    let attribute = "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - from: conv2d(4, 1)\n        shape: [4, 8, 8]\n";
    let checked = compile(SourceKind::Yaml, attribute);
    let [error] = checked.diagnostics.as_slice() else {
        panic!("{:?}", checked.diagnostics)
    };
    assert_eq!(error.message, "this statement has no name or chain");
    assert!(
        error
            .notes
            .iter()
            .any(|n| n.contains("`- from: \"CHAIN : [C, H, W]\"`")),
        "{:?}",
        error.notes
    );
    let inline = "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - from: \"conv2d(4, 1) : [4, 8, 8]\"\n";
    let checked = clean(SourceKind::Yaml, inline);
    assert_eq!(weight_paths(&checked.networks[0]), ["from"]);
}
