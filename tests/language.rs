//! The constructs that let a network be written the way its paper's table reads: sequences `{ ... }`, `for`
//! loops, values in names (`denselayer{i}`), digits as names, `..block(...)` spreads and `mul` groups. What
//! they check to (paths, shapes), what they reject (and how the message reads), and what they generate. The
//! zoo's parity tests (tests/zoo.rs) run them against torchvision.

use archc::codegen::emit_source;
use archc::ir::{Node, NodeKind, Shape};
use archc::{compile, Code, SourceKind};

fn check(source: &str) -> archc::Checked {
    compile(SourceKind::Arch, source)
}

/// The codes and messages of a source's diagnostics.
fn diagnostics(source: &str) -> Vec<(Code, String)> {
    check(source)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

#[track_caller]
fn assert_only_error(source: &str, code: Code, message: &str) {
    let found = diagnostics(source);
    assert!(
        matches!(found.as_slice(), [(c, m)] if *c == code && m.contains(message)),
        "expected one {code:?} saying {message:?}, found {found:?}\n{source}"
    );
}

/// Every weight path of a checked network's layers with weights, in order.
fn weight_paths(source: &str) -> Vec<String> {
    let checked = check(source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let mut paths = Vec::new();
    checked.networks[0].walk(|node: &Node| {
        if let NodeKind::Layer(layer) = &node.kind {
            if layer.has_weights() {
                paths.push(node.path.clone());
            }
        }
    });
    paths
}

const BLOCKS: &str = "
block conv_bn(c) {
    conv = conv2d(c, 3, pad = 1, bias = false)
    bn   = batch_norm
}
block dense(growth) {
    concat {
        identity
        {
            norm = batch_norm
            relu
            conv = conv2d(growth, 3, pad = 1)
        }
    }
}
block dense_block(layers, growth) {
    for i in 1..=layers {
        denselayer{i} = dense(growth)
    }
}
block residual(c) {
    add {
        ..conv_bn(c)
        identity
    }
    relu
}
";

#[test]
fn names_follow_sequences_loops_templates_and_spreads() {
    let source = format!(
        "{BLOCKS}
network n(growth = 4) {{
    input [8, 16, 16]
    features = {{
        0 = conv_bn(8)
        block1 = dense_block(2, growth)   : [16, 16, 16]
        {{2 + 1}} = residual(16)
    }}
    {{
        norm5 = batch_norm
    }}
    for i in 0..2 {{
        stage{{i}} = conv_bn(16)
    }}
}}
"
    );
    let paths = weight_paths(&source);
    let expected = [
        "features.0.conv",
        "features.0.bn",
        "features.block1.denselayer1.norm",
        "features.block1.denselayer1.conv",
        "features.block1.denselayer2.norm",
        "features.block1.denselayer2.conv",
        // `..conv_bn(c)` names its layers at `residual`'s level.
        "features.3.conv",
        "features.3.bn",
        // An unnamed sequence names at the enclosing level.
        "norm5",
        "stage0.conv",
        "stage0.bn",
        "stage1.conv",
        "stage1.bn",
    ];
    assert_eq!(paths, expected);
    // Each dense layer adds `growth` channels: 8 + 2 * 4 = 16, as declared.
    let checked = check(&source);
    assert_eq!(
        checked.networks[0].output,
        Shape::Map {
            c: 16,
            h: 16,
            w: 16
        }
    );
}

#[test]
fn a_loop_that_runs_no_times_passes_its_input_through() {
    let source = format!(
        "{BLOCKS}
network n {{
    input [8, 4, 4]
    for i in 3..3 {{
        {{i}} = conv_bn(32)
    }}
    out = conv_bn(8)   : [8, 4, 4]
}}
"
    );
    assert_eq!(weight_paths(&source), ["out.conv", "out.bn"]);
}

#[test]
fn mul_broadcasts_a_per_channel_scale_over_the_map() {
    let source = "
network n {
    input [8, 6, 6]
    se = mul {
        identity
        {
            adaptive_avg_pool(1)
            fc1 = conv2d(2, 1)
            relu
            fc2 = conv2d(8, 1)
        }
    }   : [8, 6, 6]
}
";
    assert_eq!(weight_paths(source), ["se.fc1", "se.fc2"]);
    // A scale of the wrong channel count does not broadcast.
    let wrong = source.replace("fc2 = conv2d(8, 1)", "fc2 = conv2d(4, 1)");
    let found = diagnostics(&wrong);
    assert!(
        found
            .iter()
            .any(|(code, _)| *code == Code::AddShapeMismatch),
        "{found:?}"
    );
}

#[test]
fn backwards_ranges_hidden_parameters_and_bad_bounds_are_located_errors() {
    let network =
        |body: &str| format!("{BLOCKS}\nnetwork n(k = 2) {{\n    input [8, 4, 4]\n{body}\n}}\n");
    assert_only_error(
        &network("    for i in 3..1 {\n        {i} = conv_bn(8)\n    }"),
        Code::InvalidArgument,
        "the range 3..1 ends before it starts",
    );
    assert_only_error(
        &network("    for k in 0..2 {\n        {k} = conv_bn(8)\n    }"),
        Code::DuplicateParameter,
        "the loop variable `k` hides a parameter",
    );
    assert_only_error(
        &network("    for i in 0..2.5 {\n        {i} = conv_bn(8)\n    }"),
        Code::ExpressionType,
        "a loop bound is an integer, not a float",
    );
    assert_only_error(
        &network("    for i in 0..1_000_000_000 {\n        {i} = conv_bn(8)\n    }"),
        Code::LimitExceeded,
        "the loop runs 1000000000 times",
    );
    // The same name in every iteration.
    assert_only_error(
        &network("    for i in 0..2 {\n        x = conv_bn(8)\n    }"),
        Code::DuplicateName,
        "the name `x` is already used at this level",
    );
    assert_only_error(
        &network("    x{k / 4.0} = conv_bn(8)"),
        Code::ExpressionType,
        "a value in a name is a non-negative integer, not a float",
    );
}

#[test]
fn spreads_and_sequences_are_checked_for_what_they_can_be() {
    let network = |body: &str| format!("{BLOCKS}\nnetwork n {{\n    input [8, 4, 4]\n{body}\n}}\n");
    assert_only_error(
        &network("    ..conv2d(8, 3)"),
        Code::Syntax,
        "`..` puts a block's statements here; `conv2d` is a layer",
    );
    assert_only_error(
        &network("    x = ..conv_bn(8)"),
        Code::Syntax,
        "`..block(...)` is a statement of its own",
    );
    assert_only_error(
        &network("    x = {\n    }"),
        Code::InvalidArgument,
        "`{ }` needs at least one statement",
    );
    // Without `..`, an unnamed block with weights is still the seed bug of unnamed_block_in_add.arch.
    let found = check(&network("    conv_bn(8)"));
    let unnamed = found.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(unnamed.code, Code::UnnamedWeights);
    assert!(
        unnamed
            .notes
            .iter()
            .any(|n| n.contains("write `..conv_bn(...)`")),
        "{unnamed:?}"
    );
    // Side outputs are the network's own statements.
    assert_only_error(
        &network("    a = conv_bn(8)\n    {\n        side s = flatten from a\n    }"),
        Code::InvalidSideOutput,
        "not inside braces",
    );
}

#[test]
fn a_loop_generates_a_stack_built_in_a_loop_of_the_same_range() {
    let source = format!(
        "{BLOCKS}
network n(layers = 3, growth = 4) {{
    input [8, 4, 4]
    block1 = dense_block(layers, growth)
    out    = conv_bn(8)
}}
"
    );
    let code = emit_source(SourceKind::Arch, "n.arch", &source).unwrap();
    for expected in [
        "pub denselayer: nn::Stack<Dense>,",
        "let mut denselayer_channels = in_channels;",
        "for i in 1..=layers {",
        "vb.pp(format!(\"denselayer{i}\"))",
        "denselayer_channels += growth;",
        // The channels after the block, in closed form and named, for `out`: 8 + layers * growth.
        "let channels = 8 + cfg.layers * cfg.growth;",
    ] {
        assert!(code.contains(expected), "no `{expected}` in:\n{code}");
    }
}

#[test]
fn a_loop_code_generation_cannot_express_is_an_error_at_the_loop() {
    let source = format!(
        "{BLOCKS}
network n(stages = 2) {{
    input [8, 4, 4]
    for i in 0..stages {{
        a{{i}} = conv_bn(8)
        b{{i}} = conv_bn(8)
    }}
}}
"
    );
    let errors = emit_source(SourceKind::Arch, "n.arch", &source).unwrap_err();
    assert_eq!(errors[0].code, Code::Unsupported);
    assert!(
        errors[0]
            .message
            .contains("this loop's body has 2 statements, and its range depends on a parameter"),
        "{errors:?}"
    );
    // With a constant range the same loop is written out, a field per statement and iteration.
    let constant = source.replace("0..stages", "0..2");
    let code = emit_source(SourceKind::Arch, "n.arch", &constant).unwrap();
    for field in ["a0", "b0", "a1", "b1"] {
        assert!(
            code.contains(&format!("pub {field}: ConvBn,")),
            "no `{field}` in:\n{code}"
        );
    }
}

#[test]
fn a_block_reads_its_input_channels_as_in_channels() {
    let source = "
block half {
    conv = conv2d(in_channels / 2, 1)
}
block own(in_channels = 3) {
    conv = conv2d(in_channels, 1)
}
network n {
    input [8, 4, 4]
    a = half   : [4, 4, 4]
    b = half   : [2, 4, 4]
    c = own    : [3, 4, 4]
}
";
    assert_eq!(weight_paths(source), ["a.conv", "b.conv", "c.conv"]);
    // Generated, the count is the constructor's `in_channels`; a caller passes its input's.
    let code = emit_source(SourceKind::Arch, "n.arch", source).unwrap();
    assert!(
        code.contains("nn::div(in_channels, 2)?") || code.contains("in_channels / 2"),
        "{code}"
    );
    // A network has no `in_channels` of its own: its input is declared.
    let found =
        diagnostics("network n {\n    input [8, 4, 4]\n    a = conv2d(in_channels, 1)\n}\n");
    assert!(
        matches!(found.as_slice(), [(Code::UnknownName, _)]),
        "{found:?}"
    );
}

#[test]
fn a_negative_value_in_a_name_says_which() {
    assert_only_error(
        "network n {\n    input [3, 8, 8]\n    a{0 - 1} = conv2d(4, 1)\n}\n",
        Code::InvalidArgument,
        "a value in a name is a non-negative integer, not -1",
    );
}

#[test]
fn a_loop_of_blocks_that_keep_the_channels_generates() {
    let source = "
block drop(p) {
    d = dropout(p)
}
network n {
    input [3, 8, 8]
    for i in 0..3 {
        {i} = drop(i / 4.0)
    }
    conv = conv2d(4, 1)
}
";
    let code = emit_source(SourceKind::Arch, "n.arch", source).unwrap();
    // The convolution after the loop reads the network's 3 input channels.
    let squeezed: String = code.split_whitespace().collect();
    assert!(squeezed.contains("nn::conv2d(3,4,"), "{code}");
    assert!(
        code.contains("Drop::new(vb.pp(i.to_string()), i as f64 / 4.0)"),
        "{code}"
    );
}
