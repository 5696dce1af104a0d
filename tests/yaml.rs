//! The YAML front end: `googlenet.yaml` and `googlenet.arch` are one network, diagnostics point into the YAML
//! text, malformed and hostile documents are rejected quickly and without panics.

use std::path::Path;
use std::time::{Duration, Instant};

use archc::ast::{self, ExprKind, Op, Statement};
use archc::diagnostic::LineIndex;
use archc::{compile, parse_source, Code, Diagnostic, SourceKind, Span};

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(code, line, column, message)` of every diagnostic, for assertions and failure messages.
fn located(source: &str, diagnostics: &[Diagnostic]) -> Vec<(Code, usize, usize, String)> {
    let index = LineIndex::new(source);
    diagnostics
        .iter()
        .map(|d| {
            let (line, column) = index.line_col(d.primary.span.start as usize);
            (d.code, line, column, d.message.clone())
        })
        .collect()
}

fn yaml_errors(source: &str) -> Vec<(Code, usize, usize, String)> {
    match parse_source(SourceKind::Yaml, source) {
        Ok(file) => panic!("expected an error, parsed {} definitions", file.items.len()),
        Err(diagnostics) => {
            assert_spans_valid(source, &diagnostics);
            located(source, &diagnostics)
        }
    }
}

/// Every span of every diagnostic lies in the source, on character boundaries.
fn assert_spans_valid(source: &str, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        let spans = std::iter::once(diagnostic.primary.span)
            .chain(diagnostic.secondary.iter().map(|l| l.span));
        for span in spans {
            assert!(
                span.start <= span.end && source.get(span.range()).is_some(),
                "span {span:?} of {:?} is not a slice of the source",
                diagnostic.message
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// GoogLeNet in both forms.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn googlenet_yaml_checks_to_the_same_ir_as_googlenet_arch() {
    let arch = compile(SourceKind::Arch, &read("architectures/googlenet.arch"));
    let yaml_source = read("architectures/googlenet.yaml");
    let yaml = compile(SourceKind::Yaml, &yaml_source);
    assert!(arch.diagnostics.is_empty(), "{:?}", arch.diagnostics);
    assert!(
        yaml.diagnostics.is_empty(),
        "{:?}",
        located(&yaml_source, &yaml.diagnostics)
    );
    assert_eq!(arch.networks.len(), 1);
    assert_eq!(yaml.networks.len(), arch.networks.len());
    for (from_arch, from_yaml) in arch.networks.iter().zip(&yaml.networks) {
        assert_eq!(
            from_yaml.without_spans(),
            from_arch.without_spans(),
            "network {}",
            from_arch.name
        );
    }
}

#[test]
fn googlenet_yaml_parses_to_the_same_ast_as_googlenet_arch() {
    let mut arch = parse_source(SourceKind::Arch, &read("architectures/googlenet.arch")).unwrap();
    let mut yaml = parse_source(SourceKind::Yaml, &read("architectures/googlenet.yaml")).unwrap();
    clear_file_spans(&mut arch);
    clear_file_spans(&mut yaml);
    assert_eq!(yaml, arch);
}

#[test]
fn googlenet_yaml_spans_point_at_the_text_they_stand_for() {
    let source = read("architectures/googlenet.yaml");
    let file = parse_source(SourceKind::Yaml, &source).unwrap();
    let mut checked = 0;
    let mut check_ident = |ident: &ast::Ident| {
        assert_eq!(
            &source[ident.span.range()],
            ident.name,
            "span {:?}",
            ident.span
        );
        checked += 1;
    };
    for definition in &file.items {
        check_ident(&definition.name);
        for param in &definition.params {
            check_ident(&param.name);
            if let Some(default) = &param.default {
                assert_literal_text(&source, default);
            }
        }
        for statement in &definition.body {
            match statement {
                Statement::Input(shape) => {
                    assert_eq!(&source[shape.span.range()], "[3, 224, 224]");
                    shape
                        .dims
                        .iter()
                        .for_each(|dim| assert_literal_text(&source, dim));
                }
                Statement::Layer(layer) => {
                    for ident in layer.name.iter().chain(&layer.side_from) {
                        check_ident(ident);
                    }
                    if let Some(shape) = &layer.declared {
                        let text = &source[shape.span.range()];
                        assert!(
                            text.starts_with('[') && text.ends_with(']'),
                            "shape span {text:?}"
                        );
                    }
                    for op in &layer.chain {
                        visit_calls(op, &mut |call| {
                            let text = &source[call.span.range()];
                            assert!(text.starts_with(&call.callee.name), "call span {text:?}");
                            assert_eq!(&source[call.callee.span.range()], call.callee.name);
                        });
                    }
                }
                Statement::For(_) => panic!("googlenet.yaml has no loops"),
            }
        }
    }
    assert!(checked > 40, "only {checked} names checked");
}

/// A literal's span holds its text: `1000` for 1000, `0.4` for 0.4.
fn assert_literal_text(source: &str, expr: &ast::Expr) {
    let text = &source[expr.span.range()];
    match &expr.kind {
        ExprKind::Int(Ok(value)) => assert_eq!(text.parse::<i64>().ok(), Some(*value), "{text:?}"),
        ExprKind::Float(value) => assert_eq!(text.parse::<f64>().ok(), Some(*value), "{text:?}"),
        ExprKind::Name(name) => assert_eq!(text, name),
        other => panic!("unexpected literal {other:?}"),
    }
}

fn visit_calls(op: &Op, visit: &mut impl FnMut(&ast::Call)) {
    match op {
        Op::Call(call) => visit(call),
        Op::Group(group) => {
            for branch in &group.branches {
                branch.chain.iter().for_each(|op| visit_calls(op, visit));
            }
        }
        Op::Sequence(_) => panic!("googlenet.yaml has no sequences"),
    }
}

#[test]
fn googlenet_yaml_summary_matches_googlenet_arch() {
    let arch = compile(SourceKind::Arch, &read("architectures/googlenet.arch"));
    let yaml = compile(SourceKind::Yaml, &read("architectures/googlenet.yaml"));
    let arch = archc::summary::summarize(&arch.networks[0]);
    let yaml = archc::summary::summarize(&yaml.networks[0]);
    assert_eq!(yaml, arch);
    // The totals `archc summary architectures/googlenet.arch` prints.
    assert_eq!(yaml.params_total, 13_378_280);
    assert_eq!(yaml.params_inference, 6_998_552);
    assert_eq!(yaml.macs_inference, 1_582_671_872);
}

/// The schema example in `src/yaml/mod.rs`'s module documentation checks without errors or warnings.
#[test]
fn the_documented_example_checks_cleanly() {
    let module = read("src/yaml/mod.rs");
    let example: String = module
        .lines()
        .skip_while(|line| *line != "//! ```yaml")
        .skip(1)
        .take_while(|line| *line != "//! ```")
        .map(|line| {
            format!(
                "{}\n",
                line.strip_prefix("//!")
                    .unwrap_or(line)
                    .strip_prefix(' ')
                    .unwrap_or("")
            )
        })
        .collect();
    assert!(example.contains("networks:"), "{example}");
    let checked = compile(SourceKind::Yaml, &example);
    assert!(
        checked.diagnostics.is_empty(),
        "{:?}",
        located(&example, &checked.diagnostics)
    );
    assert_eq!(checked.networks.len(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// Every schema form.
// ---------------------------------------------------------------------------------------------------------

/// `loops.yaml` writes `for` loops (in a block and in a network), values in names (`denselayer{i}`, a quoted
/// `"{s}"`) and a sequence (`stage{s}:` with `body:`); `loops.arch` is the same file in `.arch`.
#[test]
fn loops_names_with_values_and_sequences_parse_to_the_same_ast_as_their_arch_twin() {
    let yaml = assert_twins("tests/fixtures/yaml/loops");
    // The loops ran: two stages of a two-layer dense block each.
    let mut paths = Vec::new();
    yaml.networks[0].walk(|node| paths.push(node.path.clone()));
    for path in [
        "stage1.block1.denselayer2.new",
        "stage2.block2.denselayer1",
        "stage2.2",
    ] {
        assert!(paths.iter().any(|p| p == path), "no `{path}` in {paths:?}");
    }
}

#[test]
fn a_loop_s_keys_and_header_are_checked_where_they_stand() {
    let network = |body: &str| format!("networks:\n  n:\n    input: [3, 8, 8]\n    body:\n{body}");
    for (body, message, at) in [
        (
            "      - for: i in 0..2\n",
            "this `for` loop has no `body`",
            "for",
        ),
        (
            "      - for: i 0..2\n        body: [relu]\n",
            "expected loop header `VAR in START..END`",
            "i 0..2",
        ),
        (
            "      - for: i in 0..2\n        body: [relu]\n        shape: [3, 8, 8]\n",
            "a `for` loop has no such key",
            "shape",
        ),
        (
            "      - concat:\n          - for: i in 0..2\n            body: [relu]\n",
            "a branch cannot be a `for` loop",
            "for",
        ),
    ] {
        let source = network(body);
        let errors = parse_source(SourceKind::Yaml, &source).unwrap_err();
        assert_spans_valid(&source, &errors);
        assert!(
            errors.iter().any(|d| d.message.contains(message)
                && source[d.primary.span.start as usize..].starts_with(at)),
            "{body}: {:?}",
            located(&source, &errors)
        );
    }
}

/// `forms.yaml` writes every YAML form (parameter lists and mappings, defaults as YAML numbers, lists, booleans
/// and `.arch` expressions, `shape:` keys and quoted inline shapes, `side NAME` with an inline `from`, groups
/// as branch mappings and lists, chains as lists, literal and folded block scalars); `forms.arch` is the same
/// file in `.arch`.
#[test]
fn every_yaml_form_parses_to_the_same_ast_as_its_arch_twin() {
    assert_twins("tests/fixtures/yaml/forms");
}

/// Asserts that `STEM.yaml` and `STEM.arch` parse to the same AST (spans aside) and check cleanly to the same
/// IR; returns the YAML file's check.
fn assert_twins(stem: &str) -> archc::Checked {
    let arch_source = read(&format!("{stem}.arch"));
    let yaml_source = read(&format!("{stem}.yaml"));
    let mut arch = parse_source(SourceKind::Arch, &arch_source).unwrap();
    let mut yaml = parse_source(SourceKind::Yaml, &yaml_source)
        .unwrap_or_else(|d| panic!("{:?}", located(&yaml_source, &d)));
    clear_file_spans(&mut arch);
    clear_file_spans(&mut yaml);
    assert_eq!(yaml, arch);

    let arch = compile(SourceKind::Arch, &arch_source);
    let yaml = compile(SourceKind::Yaml, &yaml_source);
    assert!(
        yaml.diagnostics.is_empty(),
        "{:?}",
        located(&yaml_source, &yaml.diagnostics)
    );
    assert_eq!(
        yaml.networks[0].without_spans(),
        arch.networks[0].without_spans()
    );
    yaml
}

#[test]
fn names_inside_quoted_folded_and_block_scalars_point_at_themselves() {
    for path in [
        "architectures/googlenet.yaml",
        "tests/fixtures/yaml/forms.yaml",
    ] {
        let source = read(path);
        let file = parse_source(SourceKind::Yaml, &source).unwrap();
        let mut names = Vec::new();
        collect_names(&file, &mut names);
        assert!(names.len() > 30, "{path}: only {} names", names.len());
        for (name, span) in names {
            assert_eq!(&source[span.range()], name, "{path}: span {span:?}");
        }
    }
    // Spot checks in forms.yaml: `relu` on the second line of a literal block scalar, `affine` on the second line
    // of a folded one, `aux` after `side `, `body` after `from` inside a double-quoted string.
    let source = read("tests/fixtures/yaml/forms.yaml");
    let file = parse_source(SourceKind::Yaml, &source).unwrap();
    let mut names = Vec::new();
    collect_names(&file, &mut names);
    let index = LineIndex::new(&source);
    let position = |name: &str, nth: usize| {
        let spans: Vec<Span> = names
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .collect();
        index.line_col(spans[nth].start as usize)
    };
    assert_eq!(position("relu", 0), (14, 22));
    assert_eq!(position("affine", 3), (32, 11));
    assert_eq!(position("aux", 0), (35, 14));
    assert_eq!(position("body", 1), (35, 65));
}

/// Every name in a file with its span: definitions, parameters, statements, side sources, callees, keyword
/// arguments and parameter references.
fn collect_names(file: &ast::File, names: &mut Vec<(String, Span)>) {
    fn expr(e: &ast::Expr, names: &mut Vec<(String, Span)>) {
        match &e.kind {
            ExprKind::Name(name) => names.push((name.clone(), e.span)),
            ExprKind::List(items) => items.iter().for_each(|i| expr(i, names)),
            ExprKind::Neg(inner) => expr(inner, names),
            ExprKind::Binary(_, lhs, rhs) => {
                expr(lhs, names);
                expr(rhs, names);
            }
            _ => {}
        }
    }
    fn layer(l: &ast::LayerStatement, names: &mut Vec<(String, Span)>) {
        for ident in l.name.iter().chain(&l.side_from) {
            names.push((ident.name.clone(), ident.span));
        }
        for op in &l.chain {
            match op {
                Op::Call(call) => {
                    names.push((call.callee.name.clone(), call.callee.span));
                    for arg in &call.args {
                        if let Some(name) = &arg.name {
                            names.push((name.name.clone(), name.span));
                        }
                        expr(&arg.value, names);
                    }
                }
                Op::Group(group) => group.branches.iter().for_each(|b| layer(b, names)),
                Op::Sequence(_) => panic!("no sequences in this test's YAML"),
            }
        }
        if let Some(shape) = &l.declared {
            shape.dims.iter().for_each(|d| expr(d, names));
        }
    }
    for definition in &file.items {
        names.push((definition.name.name.clone(), definition.name.span));
        for param in &definition.params {
            names.push((param.name.name.clone(), param.name.span));
            if let Some(default) = &param.default {
                expr(default, names);
            }
        }
        for statement in &definition.body {
            match statement {
                Statement::Input(shape) => shape.dims.iter().for_each(|d| expr(d, names)),
                Statement::Layer(l) => layer(l, names),
                Statement::For(_) => panic!("no loops in this test's YAML"),
            }
        }
    }
}

#[test]
fn anchors_and_aliases_are_expanded_and_errors_in_an_alias_point_at_it() {
    let source = "\
networks:
  n:
    input: [3, 8, 8]
    body:
      - a: &conv conv2d(8, 3, pad = 1)
      - b: *conv
      - c: &bad conv2d(8, q)
      - d: *bad
";
    let checked = compile(SourceKind::Yaml, source);
    let found = located(source, &checked.diagnostics);
    let unknown: Vec<(usize, usize)> = found
        .iter()
        .filter(|d| d.0 == Code::UnknownName)
        .map(|d| (d.1, d.2))
        .collect();
    // Once where the anchored text is, once at the alias that repeats it.
    assert_eq!(unknown, [(7, 27), (8, 12)], "{found:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Diagnostics point into the YAML text.
// ---------------------------------------------------------------------------------------------------------

/// `shape_error.yaml` has a shape bug in each way of writing a statement; every diagnostic and label must
/// land on the exact line and column (counted in the fixture by hand).
#[test]
fn shape_errors_point_at_the_yaml_text() {
    let source = read("tests/fixtures/yaml/shape_error.yaml");
    let checked = compile(SourceKind::Yaml, &source);
    assert_spans_valid(&source, &checked.diagnostics);
    let index = LineIndex::new(&source);
    let at = |span: Span| index.line_col(span.start as usize);
    type LineCol = (usize, usize);
    let report: Vec<(Code, LineCol, Vec<LineCol>)> = checked
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.code,
                at(d.primary.span),
                d.secondary.iter().map(|l| at(l.span)).collect(),
            )
        })
        .collect();
    assert_eq!(
        report,
        [
            // `narrow: conv2d(c, 3)` in the block: the call, its branch, and the instance `double(8)` in
            // `- mixed: "double(8) : [16, 8, 8]"` (inside the quotes).
            (
                Code::ConcatSpatialMismatch,
                (8, 19),
                vec![(8, 11), (17, 17)]
            ),
            // `- pool: max_pool(2, stride = 2)` declared `shape: [16, 8, 8]` on the next line.
            (Code::DeclaredShapeMismatch, (15, 15), vec![(16, 16)]),
            // `stride = 0` on the second line of a plain scalar that spans two lines.
            (Code::InvalidArgument, (19, 20), vec![]),
            // `- fc: 'linear(10) : [100]'`: the call and the inline shape, inside single quotes.
            (Code::DeclaredShapeMismatch, (23, 14), vec![(23, 27)]),
        ]
    );
}

#[test]
fn malformed_yaml_and_schema_errors_point_at_the_offending_place() {
    // (source, code, line, column, part of the message or help)
    let cases: &[(&str, Code, usize, usize, &str)] = &[
        // Malformed YAML, reported by libyaml.
        ("networks:\n  n:\n    input: [3, 32, 32\n    body: []\n", Code::Yaml, 4, 9, "did not find expected ','"),
        ("networks:\n  n:\n\tinput: [3]\n", Code::Yaml, 3, 1, "tabs"),
        ("networks: {n: [}\n", Code::Yaml, 1, 16, "malformed YAML"),
        ("a: 1\n---\nb: 2\n", Code::Yaml, 2, 1, "one YAML document"),
        // A second document without a `---` line: the first content after the first document (found by the
        // yaml fuzz target: the span was 0..3 whatever the text, here splitting `é`).
        ("\"\"é\n", Code::Yaml, 1, 3, "one YAML document"),
        ("a: 1\n...\n# next\nb: 2\n", Code::Yaml, 4, 1, "one YAML document"),
        ("networks:\n  n:\n    body: *nowhere\n", Code::Yaml, 3, 11, "unknown anchor"),
        // A declared shape after `: ` in a plain scalar is a YAML mapping; the help says to quote it.
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - conv1: conv2d(8, 3) : [8, 6, 6]\n",
            Code::Yaml,
            5,
            29,
            "quote a chain",
        ),
        // Schema errors.
        ("network:\n  n:\n    body: []\n", Code::Yaml, 1, 1, "unknown top-level key `network`"),
        ("- networks\n", Code::Yaml, 1, 3, "expected a mapping with `blocks` and `networks`"),
        ("networks: {}\nnetworks: {}\n", Code::Yaml, 2, 1, "appears twice"),
        ("networks:\n  n:\n    params: 3\n    body: []\n", Code::Yaml, 3, 13, "expected a list of parameters"),
        ("networks:\n  n:\n    params: [[a]]\n    body: []\n", Code::Yaml, 3, 14, "parameter name"),
        ("networks:\n  n:\n    inputs: [3, 8, 8]\n    body: []\n", Code::Yaml, 3, 5, "unknown key `inputs`"),
        ("networks:\n  n:\n    input: [3, 8, 8]\n", Code::Yaml, 2, 3, "no `body`"),
        ("networks:\n  n:\n    input: 3\n    body: []\n", Code::Yaml, 3, 12, "expected a shape"),
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - conv1: conv2d(8, 3)\n        conv2: conv2d(8, 3)\n",
            Code::Yaml,
            6,
            9,
            "two heads",
        ),
        ("networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - 42\n", Code::Yaml, 5, 9, "expected a statement"),
        ("networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      -\n", Code::Yaml, 5, 7, "expected a statement"),
        ("networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - side aux: relu\n", Code::Yaml, 5, 9, "needs a source"),
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - aux: relu from n\n",
            Code::Yaml,
            5,
            14,
            "only side outputs",
        ),
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - c: \"conv2d(8, 3) : [8, 6, 6]\"\n        shape: [8, 6, 6]\n",
            Code::Yaml,
            6,
            16,
            "declared twice",
        ),
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - concat:\n          - input: [1]\n",
            Code::Yaml,
            6,
            13,
            "cannot be an `input`",
        ),
        ("networks: !!map\n  n: !foo\n    body: []\n", Code::Yaml, 2, 6, "tags"),
        // The `.arch` pieces inside YAML strings: their syntax errors point inside the string.
        (
            "networks:\n  n:\n    input: [3, 8, 8]\n    body:\n      - conv1: conv2d(8, 3 stride = 2)\n",
            Code::Syntax,
            5,
            28,
            "expected",
        ),
        ("networks:\n  \"bad name\":\n    body: []\n", Code::Syntax, 2, 4, "`bad name` is not a name"),
        ("networks:\n  n:\n    params: [{k: 3 +}]\n    body: []\n", Code::Syntax, 3, 21, "expected"),
        ("networks:\n  n:\n    input: \"[3, 8\"\n    body: []\n", Code::Syntax, 3, 18, "expected"),
    ];
    for &(source, code, line, column, text) in cases {
        let errors = yaml_errors(source);
        let diagnostics = parse_source(SourceKind::Yaml, source).unwrap_err();
        let (found_code, found_line, found_column, message) = &errors[0];
        let help = diagnostics[0].help.clone().unwrap_or_default();
        assert_eq!(
            (*found_code, *found_line, *found_column),
            (code, line, column),
            "{source:?}: {errors:?}"
        );
        assert!(
            message.contains(text) || help.contains(text),
            "{source:?}: {message:?} / {help:?} lacks {text:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hostile documents: rejected quickly, never a panic or a hang.
// ---------------------------------------------------------------------------------------------------------

/// Parses a hostile document, expecting a `LimitExceeded` error within a few seconds (debug build).
fn assert_limited(name: &str, source: &str) -> (usize, usize) {
    let start = Instant::now();
    let result = parse_source(SourceKind::Yaml, source);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{name}: took {elapsed:?}");
    let diagnostics = result.expect_err(name);
    assert_spans_valid(source, &diagnostics);
    let found = located(source, &diagnostics);
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    assert_eq!(found[0].0, Code::LimitExceeded, "{name}: {found:?}");
    (found[0].1, found[0].2)
}

#[test]
fn a_billion_laughs_is_rejected_quickly() {
    // Ten levels of nine aliases each: 9^10 (3.5 billion) strings if expanded.
    let mut source = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10u8 {
        let (previous, this) = ((b'a' + level - 1) as char, (b'a' + level) as char);
        let aliases = vec![format!("*{previous}"); 9].join(", ");
        source.push_str(&format!("{this}: &{this} [{aliases}]\n"));
    }
    // The limit trips while expanding the third level's aliases (9 + 81 + 729 nodes > twice the size).
    assert_eq!(assert_limited("billion laughs", &source), (3, 24));
}

#[test]
fn a_large_node_aliased_many_times_is_rejected_quickly() {
    // Linear in the aliases but quadratic in size: 1 MB repeated a million times.
    let big = "x".repeat(1 << 20);
    let source = format!("a: &a \"{big}\"\nb: [{}]\n", vec!["*a"; 1 << 20].join(","));
    assert_eq!(assert_limited("large alias", &source).0, 2);
}

#[test]
fn deep_nesting_is_rejected_quickly() {
    // libyaml's scanner is quadratic in the depth of flow collections: this took half a minute before the
    // pre-scan.
    let depth = 200_000;
    let flow = format!("networks: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(assert_limited("flow", &flow), (1, 11 + 64));
    let mappings = format!("networks: {}{}\n", "{a: ".repeat(depth), "}".repeat(depth));
    assert_eq!(assert_limited("flow mappings", &mappings), (1, 11 + 64 * 4));
    // Brackets that hide in quoted scalars and comments do not lower the count.
    for (name, unit) in [
        ("double quotes", "[ \"]\" "),
        ("single quotes", "[ ']' "),
        ("comments", "[ # ]\n"),
    ] {
        assert_limited(name, &format!("a: {}\n", unit.repeat(depth)));
    }
    let block: String = (0..100)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_eq!(assert_limited("block mappings", &block), (65, 65));
    // A shape string nested too deep for the `.arch` parser.
    let shape = format!(
        "networks:\n  n:\n    input: \"{}3{}\"\n    body: []\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(assert_limited("shape string", &shape), (3, 13 + 64));
}

#[test]
fn an_oversized_file_is_rejected() {
    let source = format!("# {}\n", "x".repeat(archc::syntax::MAX_SOURCE_BYTES));
    assert_eq!(assert_limited("oversized", &source), (1, 1));
}

#[test]
fn legitimate_brackets_in_strings_comments_and_block_scalars_are_not_counted_as_nesting() {
    let mut source = String::from("networks:\n  n:\n    input: [3, 8, 8]\n    body:\n");
    for i in 0..200 {
        source.push_str(&format!(
            "      - c{i}: \"conv2d(8, 1) : [8, 8, 8]\"   # [[[ ]] [\n      - |\n        relu # it's ]] [[\n"
        ));
    }
    let checked = compile(SourceKind::Yaml, &source);
    assert!(
        checked.diagnostics.is_empty(),
        "{:?}",
        located(&source, &checked.diagnostics)
    );
}

// ---------------------------------------------------------------------------------------------------------
// Robustness: truncated and mangled documents never panic and give valid spans.
// ---------------------------------------------------------------------------------------------------------

fn assert_parses_or_reports(source: &str) {
    match parse_source(SourceKind::Yaml, source) {
        Ok(file) => {
            let checked = archc::check_file(&file);
            assert_spans_valid(source, &checked.diagnostics);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            assert_spans_valid(source, &diagnostics);
        }
    }
}

#[test]
fn every_prefix_of_the_examples_parses_or_reports_an_error() {
    for path in [
        "architectures/googlenet.yaml",
        "tests/fixtures/yaml/forms.yaml",
    ] {
        let source = read(path);
        for (end, _) in source.char_indices().step_by(3) {
            assert_parses_or_reports(&source[..end]);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Random edits of forms.yaml (which uses every form): insertions of YAML punctuation, quotes, aliases and
    /// multi-byte characters, deletions and replacements.
    #[test]
    fn mangled_documents_never_panic(
        edits in proptest::collection::vec(
            (0usize..10_000, 0usize..4, proptest::sample::select(vec![
                "[", "]", "{", "}", ":", ": ", "- ", "\n", "\n  ", "'", "\"", "#", "&a ", "*a", "!t ", "|\n", ">-\n",
                "é", "\t", "\\", "---\n", "? ", ",", "side ", " from x", "shape: [1]\n", "concat:\n", "", "\u{2028}",
            ])),
            1..6,
        )
    ) {
        let mut source = read("tests/fixtures/yaml/forms.yaml");
        for (at, delete, insert) in edits {
            let mut at = at % (source.len() + 1);
            while !source.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + delete).min(source.len());
            while !source.is_char_boundary(end) {
                end += 1;
            }
            source.replace_range(at..end, insert);
        }
        assert_parses_or_reports(&source);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Spans-free AST comparison.
// ---------------------------------------------------------------------------------------------------------

fn clear_file_spans(file: &mut ast::File) {
    for definition in &mut file.items {
        definition.span = Span::default();
        definition.name.span = Span::default();
        for param in &mut definition.params {
            param.name.span = Span::default();
            param.default.iter_mut().for_each(clear_expr);
        }
        definition.body.iter_mut().for_each(clear_statement);
    }
}

fn clear_statement(statement: &mut ast::Statement) {
    match statement {
        Statement::Input(shape) => clear_shape(shape),
        Statement::Layer(layer) => clear_layer(layer),
        Statement::For(for_loop) => {
            for_loop.span = Span::default();
            for_loop.var.span = Span::default();
            clear_expr(&mut for_loop.start);
            clear_expr(&mut for_loop.end);
            for_loop.body.iter_mut().for_each(clear_statement);
        }
    }
}

fn clear_layer(layer: &mut ast::LayerStatement) {
    layer.span = Span::default();
    layer.name.iter_mut().for_each(|n| n.span = Span::default());
    layer
        .side_from
        .iter_mut()
        .for_each(|n| n.span = Span::default());
    layer.declared.iter_mut().for_each(clear_shape);
    for part in &mut layer.template {
        if let ast::NamePart::Value(value) = part {
            clear_expr(value);
        }
    }
    for op in &mut layer.chain {
        match op {
            Op::Call(call) => {
                call.span = Span::default();
                call.callee.span = Span::default();
                for arg in &mut call.args {
                    arg.span = Span::default();
                    arg.name.iter_mut().for_each(|n| n.span = Span::default());
                    clear_expr(&mut arg.value);
                }
            }
            Op::Group(group) => {
                group.span = Span::default();
                group.keyword_span = Span::default();
                group.branches.iter_mut().for_each(clear_layer);
            }
            Op::Sequence(sequence) => {
                sequence.span = Span::default();
                sequence.body.iter_mut().for_each(clear_statement);
            }
        }
    }
}

fn clear_shape(shape: &mut ast::ShapeExpr) {
    shape.span = Span::default();
    shape.dims.iter_mut().for_each(clear_expr);
}

fn clear_expr(expr: &mut ast::Expr) {
    expr.span = Span::default();
    match &mut expr.kind {
        ExprKind::List(items) => items.iter_mut().for_each(clear_expr),
        ExprKind::Neg(inner) => clear_expr(inner),
        ExprKind::Binary(_, lhs, rhs) => {
            clear_expr(lhs);
            clear_expr(rhs);
        }
        _ => {}
    }
}
