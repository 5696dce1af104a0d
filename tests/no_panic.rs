//! Property tests: the front end never panics, its diagnostics always point inside the source on character
//! boundaries and render, and its shape inference agrees with PyTorch's formulas written out here.
//!
//! Inputs: soups of the language's tokens, random statements built from its grammar, byte-level mutations of
//! the shipped architectures, and random stacks of convolutions and pools.

use archc::ir::Shape;
use archc::{Checked, Code, SourceKind};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failing case is shrunk and printed; keeping regression files is left to whoever investigates.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Compiles `source` and checks every invariant that must hold for any input.
fn compile_and_check_invariants(source: &str) -> Checked {
    let checked = archc::compile(SourceKind::Arch, source);
    for diagnostic in &checked.diagnostics {
        let labels = std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary);
        for label in labels {
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            assert!(
                start <= end && end <= source.len(),
                "{}: span {start}..{end} outside a source of {} bytes",
                diagnostic.code,
                source.len()
            );
            assert!(
                source.is_char_boundary(start) && source.is_char_boundary(end),
                "{}: span {start}..{end} splits a character",
                diagnostic.code
            );
        }
        assert!(
            !diagnostic.message.is_empty(),
            "{}: empty message",
            diagnostic.code
        );
        assert_eq!(
            diagnostic.is_error(),
            diagnostic.code.as_str().starts_with('E'),
            "{}: severity and code disagree",
            diagnostic.code
        );
        let compact = archc::render::render_compact("random.arch", source, diagnostic);
        assert!(compact.contains(diagnostic.code.as_str()));
    }
    let rendered = archc::render::render("random.arch", source, &checked.diagnostics, false);
    let coloured = archc::render::render("random.arch", source, &checked.diagnostics, true);
    for diagnostic in &checked.diagnostics {
        assert!(rendered.contains(diagnostic.code.as_str()));
    }
    assert_eq!(checked.diagnostics.is_empty(), rendered.is_empty());
    assert!(coloured.len() >= rendered.len());
    // Diagnostics come in source order, and a file with errors yields no network.
    let starts: Vec<u32> = checked
        .diagnostics
        .iter()
        .map(|d| d.primary.span.start)
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "diagnostics out of order"
    );
    // A file without errors yields every network it defines.
    if !checked.has_errors() {
        let file = archc::syntax::parse(source).expect("no syntax error was reported");
        let networks = file
            .items
            .iter()
            .filter(|d| d.kind == archc::ast::DefinitionKind::Network)
            .count();
        assert_eq!(
            checked.networks.len(),
            networks,
            "a clean file lost a network"
        );
    }
    // Checking is deterministic.
    assert_eq!(
        archc::compile(SourceKind::Arch, source).diagnostics,
        checked.diagnostics
    );
    checked
}

// ---------------------------------------------------------------------------------------------------------
// Token soups.
// ---------------------------------------------------------------------------------------------------------

const TOKENS: &[&str] = &[
    "block",
    "network",
    "input",
    "side",
    "from",
    "concat",
    "add",
    "true",
    "false",
    "same",
    "conv2d",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "batch_norm",
    "relu",
    "flatten",
    "linear",
    "dropout",
    "identity",
    "x",
    "y",
    "blk",
    "net",
    "_",
    "a_1",
    "0",
    "1",
    "2",
    "3",
    "7",
    "64",
    "2147483648",
    "99999999999999999999",
    "1_000",
    "0.5",
    "1e-4",
    "1e999",
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
    "-",
    "*",
    "/",
    "%",
    "# comment\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "é",
    "∑",
    "😀",
    "\u{0}",
    "'",
    "\"",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..80).prop_map(|tokens| {
        let mut text = String::new();
        for (token, space) in tokens {
            text.push_str(token);
            if space {
                text.push(' ');
            }
        }
        text
    })
}

// ---------------------------------------------------------------------------------------------------------
// Random statements from the grammar: they parse, so the checker sees them.
// ---------------------------------------------------------------------------------------------------------

/// Mostly small integers (so that layers often check and the checker goes on to the next statement), with the
/// edge values, other types and parameter names mixed in.
fn expression() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        10 => (0i64..10).prop_map(|v| v.to_string()),
        2 => prop::sample::select(vec![
            "-1",
            "2147483647",
            "2147483648",
            "4611686018427387904",
            "9223372036854775807",
            "99999999999999999999",
        ])
        .prop_map(str::to_string),
        2 => prop::sample::select(vec!["0.5", "1.5", "0.001", "1e-4", "1e999"]).prop_map(str::to_string),
        1 => prop::sample::select(vec!["true", "false", "same"]).prop_map(str::to_string),
        3 => prop::sample::select(vec!["p", "q", "unknown"]).prop_map(str::to_string),
        2 => (0i64..9, 0i64..9).prop_map(|(a, b)| format!("[{a}, {b}]")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "-", "*", "/", "%"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.prop_map(|a| format!("-({a})")),
        ]
    })
    .boxed()
}

fn call() -> impl Strategy<Value = String> {
    let callee = prop::sample::select(vec![
        "conv2d",
        "max_pool",
        "avg_pool",
        "adaptive_avg_pool",
        "global_avg_pool",
        "batch_norm",
        "lrn",
        "relu",
        "dropout",
        "flatten",
        "linear",
        "softmax",
        "identity",
        "relu6",
        "gelu",
        "hardswish",
        "stochastic_depth",
        "channel_shuffle",
        "chunk",
        "blk",
        "other",
        "Conv2d",
    ]);
    let keyword = prop::sample::select(vec![
        "out", "kernel", "stride", "pad", "dilation", "groups", "bias", "ceil", "p", "size", "eps",
        "momentum", "padding", "q", "chunks", "index",
    ]);
    let argument = prop_oneof![
        expression(),
        (keyword, expression()).prop_map(|(k, e)| format!("{k} = {e}")),
    ];
    (
        callee,
        prop::option::of(prop::collection::vec(argument, 0..4)),
    )
        .prop_map(|(callee, args)| match args {
            None => callee.to_string(),
            Some(args) => format!("{callee}({})", args.join(", ")),
        })
}

fn statement() -> impl Strategy<Value = String> {
    let name = prop::option::of(prop::sample::select(vec!["a", "b", "c", "conv", "p"]));
    let chain = prop::collection::vec(call(), 1..4).prop_map(|calls| calls.join(" -> "));
    let declared = prop::option::of(prop::collection::vec(expression(), 1..5));
    let simple = (name, chain, declared)
        .prop_map(|(name, chain, declared)| {
            let mut text = String::new();
            if let Some(name) = name {
                text.push_str(&format!("{name} = "));
            }
            text.push_str(&chain);
            if let Some(dims) = declared {
                text.push_str(&format!(" : [{}]", dims.join(", ")));
            }
            text
        })
        .boxed();
    let group = (
        prop::sample::select(vec!["concat", "add"]),
        prop::collection::vec(simple.clone(), 0..4),
    )
        .prop_map(|(kind, branches)| format!("{kind} {{\n{}\n}}", branches.join("\n")));
    let side = (call(), prop::sample::select(vec!["a", "b", "zz"]))
        .prop_map(|(chain, source)| format!("side s = {chain} from {source}"));
    prop_oneof![6 => simple, 2 => group, 1 => side, 1 => expression().prop_map(|e| format!("input [{e}]"))]
}

fn program() -> impl Strategy<Value = String> {
    let params = prop::collection::vec(
        (
            prop::sample::select(vec!["p", "q", "r"]),
            prop::option::of(expression()),
        ),
        0..3,
    )
    .prop_map(|params| {
        params
            .into_iter()
            .map(|(name, default)| match default {
                Some(default) => format!("{name} = {default}"),
                None => name.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
    .boxed();
    let block = (params.clone(), prop::collection::vec(statement(), 0..4))
        .prop_map(|(params, body)| format!("block blk({params}) {{\n{}\n}}\n", body.join("\n")));
    let input = prop::sample::select(vec![
        "[3, 16, 16]",
        "[8, 7, 7]",
        "[16]",
        "[1, 1, 1]",
        "[3, 224, 224]",
    ]);
    let network = (params, input, prop::collection::vec(statement(), 0..6)).prop_map(
        |(params, input, body)| {
            format!(
                "network net({params}) {{\ninput {input}\n{}\n}}\n",
                body.join("\n")
            )
        },
    );
    (prop::option::of(block), network, any::<bool>()).prop_map(|(block, network, block_first)| {
        let block = block.unwrap_or_default();
        if block_first {
            block + &network
        } else {
            network + &block
        }
    })
}

/// One plausible layer: the right arguments with small random values (now and then a zero, an oversized
/// window or a padding the layer rejects).
fn plausible_layer() -> BoxedStrategy<String> {
    let pool_pad = |k: u64, p: u64, wild: bool| if wild { p } else { p.min(k / 2) };
    prop_oneof![
        4 => (1u64..9, 1u64..6, 1u64..4, 0u64..4, prop::sample::select(vec![1u64, 1, 1, 1, 2, 3]))
            .prop_map(|(o, k, s, p, g)| format!("conv2d({o}, {k}, stride = {s}, pad = {p}, groups = {g})")),
        2 => (0u64..6, 1u64..4, 0u64..3, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(move |(k, s, p, c, wild)| {
                format!("max_pool({k}, stride = {s}, pad = {}, ceil = {c})", pool_pad(k, p, wild))
            }),
        1 => (1u64..9, 1u64..4, 0u64..3, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(move |(k, s, p, c, wild)| {
                format!("avg_pool({k}, stride = {s}, pad = {}, ceil = {c})", pool_pad(k, p, wild))
            }),
        1 => (1u64..9).prop_map(|o| format!("linear({o})")),
        1 => (0u64..5).prop_map(|g| format!("channel_shuffle({g})")),
        1 => (0u64..4, 0u64..4).prop_map(|(n, i)| format!("chunk({n}, {i})")),
        2 => prop::sample::select(vec![
            "relu", "flatten", "global_avg_pool", "batch_norm", "lrn(5)", "dropout(0.5)", "identity",
            "adaptive_avg_pool([2, 3])", "softmax", "relu6", "silu", "sigmoid", "hardswish",
            "hardsigmoid", "gelu", "stochastic_depth(0.2)",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn declared_shape() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.3,
        prop_oneof![
            (1u64..9, 1u64..40, 1u64..40).prop_map(|(c, h, w)| format!(" : [{c}, {h}, {w}]")),
            (1u64..200).prop_map(|f| format!(" : [{f}]")),
        ],
    )
}

/// A network of plausible statements, with named groups of plausible branches: it gets past argument checks
/// often enough to reach shape inference, concat/add agreement and declared sizes.
fn plausible_network() -> impl Strategy<Value = String> {
    let chain =
        prop::collection::vec(plausible_layer(), 1..4).prop_map(|layers| layers.join(" -> "));
    let statement = prop_oneof![
        3 => (chain.clone(), declared_shape()).prop_map(|(c, d)| (c, d.unwrap_or_default())),
        1 => (
            prop::sample::select(vec!["concat", "add"]),
            prop::collection::vec(chain, 1..4),
            declared_shape(),
        )
            .prop_map(|(kind, branches, d)| {
                let branches: Vec<String> =
                    branches.iter().enumerate().map(|(i, b)| format!("        b{i} = {b}")).collect();
                (format!("{kind} {{\n{}\n    }}", branches.join("\n")), d.unwrap_or_default())
            }),
    ];
    let input = prop_oneof![
        (1u64..9, 1u64..40, 1u64..40).prop_map(|(c, h, w)| format!("[{c}, {h}, {w}]")),
        (1u64..64).prop_map(|f| format!("[{f}]")),
    ];
    (input, prop::collection::vec(statement, 1..8)).prop_map(|(input, statements)| {
        let body: Vec<String> = statements
            .iter()
            .enumerate()
            .map(|(i, (chain, declared))| format!("    s{i} = {chain}{declared}"))
            .collect();
        format!(
            "network plausible {{\n    input {input}\n{}\n}}\n",
            body.join("\n")
        )
    })
}

// ---------------------------------------------------------------------------------------------------------
// Mutations of the shipped architectures.
// ---------------------------------------------------------------------------------------------------------

fn architectures() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/architectures");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "arch"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, Vec<u8>),
    Duplicate(prop::sample::Index, usize),
    Splice(prop::sample::Index, usize, prop::sample::Index),
    CrLf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                prop::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 1..4),
            ]
        )
            .prop_map(|(i, bytes)| Mutation::Insert(i, bytes)),
        (any::<prop::sample::Index>(), 1usize..200).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (
            any::<prop::sample::Index>(),
            0usize..3,
            any::<prop::sample::Index>()
        )
            .prop_map(|(i, file, j)| Mutation::Splice(i, file, j)),
        Just(Mutation::CrLf),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], files: &[String]) -> String {
    for mutation in mutations {
        let len = bytes.len();
        let at = |index: &prop::sample::Index| if len == 0 { 0 } else { index.index(len + 1) };
        match mutation {
            Mutation::Truncate(i) => bytes.truncate(at(i)),
            Mutation::Delete(i, n) => {
                let start = at(i);
                bytes.drain(start..(start + n).min(len));
            }
            Mutation::Insert(i, inserted) => {
                let start = at(i);
                bytes.splice(start..start, inserted.iter().copied());
            }
            Mutation::Duplicate(i, n) => {
                let start = at(i);
                let copy = bytes[start..(start + n).min(len)].to_vec();
                bytes.splice(start..start, copy);
            }
            Mutation::Splice(i, file, j) => {
                let other = files[file % files.len()].as_bytes();
                bytes.truncate(at(i));
                bytes.extend_from_slice(&other[j.index(other.len() + 1)..]);
            }
            Mutation::CrLf => {
                bytes = String::from_utf8_lossy(&bytes)
                    .replace('\n', "\r\n")
                    .into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Random stacks of convolutions and pools, against PyTorch's output-size formulas.
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Spatial {
    Conv {
        out: u64,
        kernel: [i64; 2],
        stride: [i64; 2],
        /// `None` for `pad = same` (only with stride 1).
        pad: Option<[i64; 2]>,
        dilation: [i64; 2],
    },
    MaxPool {
        kernel: [i64; 2],
        stride: [i64; 2],
        pad: [i64; 2],
        dilation: [i64; 2],
        ceil: bool,
    },
    AvgPool {
        kernel: [i64; 2],
        stride: [i64; 2],
        pad: [i64; 2],
        ceil: bool,
    },
}

fn pair(range: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = [i64; 2]> {
    (range.clone(), range).prop_map(|(h, w)| [h, w])
}

fn spatial_layer() -> impl Strategy<Value = Spatial> {
    let conv = (
        1u64..9,
        pair(1..=7),
        pair(1..=3),
        pair(0..=3),
        pair(1..=2),
        any::<bool>(),
    )
        .prop_map(|(out, kernel, stride, pad, dilation, same)| Spatial::Conv {
            out,
            kernel,
            stride,
            pad: (same && stride == [1, 1])
                .then_some(())
                .map_or(Some(pad), |()| None),
            dilation,
        });
    // Pooling padding is at most half the kernel (PyTorch rejects more; the corpus covers that error).
    let max_pool = (
        pair(1..=5),
        pair(1..=3),
        pair(0..=2),
        pair(1..=2),
        any::<bool>(),
    )
        .prop_map(|(kernel, stride, pad, dilation, ceil)| Spatial::MaxPool {
            kernel,
            stride,
            pad: [pad[0].min(kernel[0] / 2), pad[1].min(kernel[1] / 2)],
            dilation,
            ceil,
        });
    let avg_pool = (pair(1..=5), pair(1..=3), pair(0..=2), any::<bool>()).prop_map(
        |(kernel, stride, pad, ceil)| Spatial::AvgPool {
            kernel,
            stride,
            pad: [pad[0].min(kernel[0] / 2), pad[1].min(kernel[1] / 2)],
            ceil,
        },
    );
    prop_oneof![conv, max_pool, avg_pool]
}

fn hw_text([h, w]: [i64; 2]) -> String {
    format!("[{h}, {w}]")
}

impl Spatial {
    fn source(&self) -> String {
        match self {
            Spatial::Conv {
                out,
                kernel,
                stride,
                pad,
                dilation,
            } => format!(
                "conv2d({out}, {}, stride = {}, pad = {}, dilation = {})",
                hw_text(*kernel),
                hw_text(*stride),
                pad.map_or("same".to_string(), hw_text),
                hw_text(*dilation)
            ),
            Spatial::MaxPool {
                kernel,
                stride,
                pad,
                dilation,
                ceil,
            } => format!(
                "max_pool({}, stride = {}, pad = {}, dilation = {}, ceil = {ceil})",
                hw_text(*kernel),
                hw_text(*stride),
                hw_text(*pad),
                hw_text(*dilation)
            ),
            Spatial::AvgPool {
                kernel,
                stride,
                pad,
                ceil,
            } => format!(
                "avg_pool({}, stride = {}, pad = {}, ceil = {ceil})",
                hw_text(*kernel),
                hw_text(*stride),
                hw_text(*pad)
            ),
        }
    }

    /// PyTorch's output size along one axis, or `None` where PyTorch raises ("Kernel size can't be greater
    /// than actual input size" for convolutions, "Output size is too small" for pools).
    ///
    /// Convolution: `floor((n + 2p − d(k − 1) − 1) / s) + 1`, defined when the numerator is not negative;
    /// `padding='same'` keeps `n`. Pooling (ATen's `pooling_output_shape`):
    /// `div_floor(n + 2p − d(k − 1) − 1 + (ceil ? s − 1 : 0), s) + 1`, less one in ceil mode when the last
    /// window would start at or after `n + p`.
    fn pytorch_axis(&self, axis: usize, n: i64) -> Option<i64> {
        let (k, s, p, d, ceil) = match self {
            Spatial::Conv { pad: None, .. } => return Some(n),
            Spatial::Conv {
                kernel,
                stride,
                pad: Some(pad),
                dilation,
                ..
            } => {
                let numerator = n + 2 * pad[axis] - dilation[axis] * (kernel[axis] - 1) - 1;
                return (numerator >= 0).then(|| numerator / stride[axis] + 1);
            }
            Spatial::MaxPool {
                kernel,
                stride,
                pad,
                dilation,
                ceil,
            } => (kernel[axis], stride[axis], pad[axis], dilation[axis], *ceil),
            Spatial::AvgPool {
                kernel,
                stride,
                pad,
                ceil,
            } => (kernel[axis], stride[axis], pad[axis], 1, *ceil),
        };
        let numerator = n + 2 * p - d * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
        let mut out = numerator.div_euclid(s) + 1;
        if ceil && (out - 1) * s >= n + p {
            out -= 1;
        }
        (out >= 1).then_some(out)
    }

    fn pytorch_shape(&self, [c, h, w]: [i64; 3]) -> Option<[i64; 3]> {
        let c = match self {
            Spatial::Conv { out, .. } => *out as i64,
            _ => c,
        };
        Some([c, self.pytorch_axis(0, h)?, self.pytorch_axis(1, w)?])
    }
}

fn stack() -> impl Strategy<Value = ([i64; 3], Vec<Spatial>)> {
    (
        (1i64..=4, 1i64..=40, 1i64..=40),
        prop::collection::vec(spatial_layer(), 1..6),
    )
        .prop_map(|((c, h, w), layers)| ([c, h, w], layers))
}

// ---------------------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_soups_never_panic(soup in token_soup()) {
        compile_and_check_invariants(&soup);
        // The same soup inside a network body reaches the checker whenever it parses there.
        compile_and_check_invariants(&format!("network n {{\n    input [3, 8, 8]\n{soup}\n}}\n"));
    }

    #[test]
    fn grammatical_programs_never_panic(program in program()) {
        compile_and_check_invariants(&program);
    }

    #[test]
    fn plausible_networks_never_panic(network in plausible_network()) {
        compile_and_check_invariants(&network);
    }

    #[test]
    fn mutated_architectures_never_panic(
        file in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let files = architectures();
        let source = mutate(files[file % files.len()].clone().into_bytes(), &mutations, &files);
        compile_and_check_invariants(&source);
    }

    #[test]
    fn layer_stacks_follow_pytorch_formulas((input, layers) in stack()) {
        let mut source = format!("network stack {{\n    input [{}, {}, {}]\n", input[0], input[1], input[2]);
        for (i, layer) in layers.iter().enumerate() {
            source.push_str(&format!("    l{i} = {}\n", layer.source()));
        }
        source.push_str("}\n");
        let checked = compile_and_check_invariants(&source);

        // PyTorch's sizes, layer by layer, until one is undefined.
        let mut shape = Some(input);
        let mut expected = Vec::new();
        for layer in &layers {
            shape = shape.and_then(|s| layer.pytorch_shape(s));
            expected.push(shape);
        }
        let errors: Vec<Code> = checked.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code).collect();
        match shape {
            Some(_) => {
                prop_assert!(errors.is_empty(), "PyTorch accepts this stack, the checker reports {:?}\n{}", errors, source);
                let network = &checked.networks[0];
                for (node, expected) in network.body.iter().zip(&expected) {
                    let [c, h, w] = expected.unwrap();
                    prop_assert_eq!(node.output, Shape::Map { c: c as u64, h: h as u64, w: w as u64 }, "{}", source);
                }
            }
            None => {
                // The first layer PyTorch rejects is reported as a window that does not fit, and nothing else
                // (the layers after it have no input size to check).
                prop_assert_eq!(errors, vec![Code::OutputTooSmall], "{}", source);
            }
        }
    }
}

#[test]
fn empty_and_blank_files_check_cleanly() {
    for source in [
        "",
        "\n",
        "   \n\t\n",
        "# only a comment",
        "# comment\r\n\r\n",
    ] {
        let checked = compile_and_check_invariants(source);
        assert!(
            checked.diagnostics.is_empty(),
            "{source:?}: {:?}",
            checked.diagnostics
        );
        assert!(checked.networks.is_empty());
    }
}

#[test]
fn crlf_line_endings_check_like_lf() {
    for source in architectures() {
        let crlf = source.replace('\n', "\r\n");
        let lf = compile_and_check_invariants(&source);
        let crlf_checked = compile_and_check_invariants(&crlf);
        assert!(!crlf_checked.has_errors());
        let strip = |c: &Checked| {
            c.networks
                .iter()
                .map(|n| n.without_spans())
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&lf), strip(&crlf_checked));
    }
    // A diagnostic in a CRLF file is reported on the same line and column as in the LF file.
    let lf = "network n {\n    input [3, 8, 8]\n    conv1 = conv3d(4, 3)\n}\n";
    let crlf = lf.replace('\n', "\r\n");
    let render = |s: &str| {
        archc::render::render(
            "x.arch",
            s,
            &compile_and_check_invariants(s).diagnostics,
            false,
        )
    };
    assert_eq!(render(lf), render(&crlf));
}

#[test]
fn unicode_in_comments_and_names_keeps_spans_on_character_boundaries() {
    let sources = [
        "# Réseau « GoogLeNet » — 𝔾\nnetwork n {\n    input [3, 8, 8]  # entrée\n    conv = conv2d(4, 3) -> relu # ✓\n}\n",
        "network n {\n    input [3, 8, 8]\n    cönv = conv2d(4, 3)\n}\n",
        "network n {\n    input [3, 8, 8]\n    conv = conv2d(4, 3) → relu\n}\n",
        "network ñ {}\n",
        "😀",
        "network n {\n    input [3, 8, 8]\n    conv = conv2d(4, 9) # 窗口太大\n}\n",
    ];
    for source in sources {
        compile_and_check_invariants(source);
    }
    // The first one is valid; the comments do not disturb the caret of a later error.
    assert!(!compile_and_check_invariants(sources[0]).has_errors());
    let rendered = archc::render::render(
        "x.arch",
        sources[5],
        &compile_and_check_invariants(sources[5]).diagnostics,
        false,
    );
    assert!(rendered.contains("E0105"), "{rendered}");
}

#[test]
fn very_long_names_are_fine() {
    let name = "a".repeat(10_000);
    let source = format!(
        "network {name} {{\n    input [3, 8, 8]\n    {name} = conv2d(4, 3)\n    x = {name}x\n}}\n"
    );
    let checked = compile_and_check_invariants(&source);
    assert_eq!(
        checked
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>(),
        vec![Code::UnknownCallee]
    );
}

#[test]
fn pathological_expressions_are_limited_not_stack_overflows() {
    let network = |expr: &str| {
        format!("network n {{\n    input [3, 8, 8]\n    conv = conv2d({expr}, 3)\n}}\n")
    };
    // 200,000 terms, or 200,000 unary minuses: rejected before any recursion.
    for expr in [
        vec!["1"; 200_000].join(" + "),
        format!("{}1", "-".repeat(200_000)),
    ] {
        let checked = compile_and_check_invariants(&network(&expr));
        let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![Code::LimitExceeded]);
    }
    // The deepest expression the limits admit: every bracket level full of operators. It checks (on a test
    // thread's small stack) to the right value: each level adds its ones to the level inside.
    let levels = archc::syntax::MAX_NESTING - 2;
    let ones = vec!["1"; archc::syntax::MAX_OPERATORS - 1].join(" + ");
    let mut expr = "0".to_string();
    for _ in 0..levels {
        expr = format!("({expr} + {ones})");
    }
    let checked = compile_and_check_invariants(&network(&format!(
        "{expr} - {}",
        levels * (archc::syntax::MAX_OPERATORS - 1) - 4
    )));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    assert_eq!(checked.networks[0].output, Shape::Map { c: 4, h: 6, w: 6 });
}

#[test]
fn deepest_admissible_nesting_checks_without_overflow() {
    // Groups nested as deep as the bracket limit allows, on a test thread's small stack.
    let depth = archc::syntax::MAX_NESTING - 1;
    let mut group = "relu".to_string();
    for level in 0..depth {
        group = format!("concat {{ b{level} = {group} }}");
    }
    let source = format!("network n {{\n    input [3, 8, 8]\n    g = {group}\n}}\n");
    let checked = compile_and_check_invariants(&source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);

    // Blocks instantiated as deep as the block limit allows, and one deeper.
    for (depth, ok) in [
        (archc::check::MAX_BLOCK_DEPTH, true),
        (archc::check::MAX_BLOCK_DEPTH + 1, false),
    ] {
        let mut source = String::from("block b0 {\n    conv = conv2d(4, 3, pad = 1)\n}\n");
        for level in 1..depth {
            source.push_str(&format!(
                "block b{level} {{\n    inner = b{}\n}}\n",
                level - 1
            ));
        }
        source.push_str(&format!(
            "network n {{\n    input [3, 8, 8]\n    top = b{}\n}}\n",
            depth - 1
        ));
        let checked = compile_and_check_invariants(&source);
        let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
        if ok {
            assert!(codes.is_empty(), "{depth}: {codes:?}");
        } else {
            assert_eq!(codes, vec![Code::LimitExceeded], "{depth}");
        }
    }
}

#[test]
fn exponential_block_expansion_is_cut_off_quickly() {
    // Each block uses the one below twice: 2^40 convolutions if expanded.
    let mut source = String::from("block b0 {\n    conv = conv2d(4, 3, pad = 1)\n}\n");
    for level in 1..40 {
        source.push_str(&format!(
            "block b{level} {{\n    x = b{0}\n    y = b{0}\n}}\n",
            level - 1
        ));
    }
    source.push_str("network n {\n    input [4, 8, 8]\n    top = b39\n}\n");
    let start = std::time::Instant::now();
    let checked = compile_and_check_invariants(&source);
    let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![Code::LimitExceeded]);
    // Twice over (the invariants check determinism), in a debug build.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}
