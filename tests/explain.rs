//! `archc explain`: every diagnostic code has a long explanation, and the example in it really produces that
//! code.

use std::collections::BTreeSet;

use archc::explain::explanation;
use archc::{Code, SourceKind};

/// The indented block after the line `Example:` (or `Example (YAML):`), de-indented, and whether it is YAML.
fn example(code: Code) -> (String, SourceKind) {
    let text = explanation(code);
    let mut lines = text.lines();
    let header = lines
        .by_ref()
        .find(|line| line.starts_with("Example"))
        .unwrap_or_else(|| panic!("{code}: no `Example:` in the explanation"));
    let kind = if header.contains("YAML") {
        SourceKind::Yaml
    } else {
        SourceKind::Arch
    };
    let body: Vec<&str> = lines
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| line.starts_with("    ") || line.trim().is_empty())
        .map(|line| line.strip_prefix("    ").unwrap_or(""))
        .collect();
    (body.join("\n").trim_end().to_string() + "\n", kind)
}

/// The codes a source produces: the checker's, or the code generator's for a file that checks.
fn codes(source: &str, kind: SourceKind) -> BTreeSet<Code> {
    let checked = archc::compile(kind, source);
    if !checked.diagnostics.is_empty() {
        return checked.diagnostics.iter().map(|d| d.code).collect();
    }
    match archc::codegen::generate_source(kind, "example.arch", source) {
        Ok(_) => BTreeSet::new(),
        Err(diagnostics) => diagnostics.iter().map(|d| d.code).collect(),
    }
}

#[test]
fn every_code_has_an_explanation_with_an_example() {
    for &code in Code::ALL {
        let text = explanation(code);
        assert!(text.len() > 100, "{code}: the explanation is too short");
        assert!(!code.title().is_empty(), "{code}: no title");
        let (source, _) = example(code);
        assert!(source.trim().len() > 10, "{code}: empty example");
    }
}

#[test]
fn every_example_produces_its_code() {
    let mut failures = Vec::new();
    for &code in Code::ALL {
        let (source, kind) = example(code);
        let found = codes(&source, kind);
        if !found.contains(&code) {
            failures.push(format!("{code}: the example produces {found:?}\n{source}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn codes_are_unique_ordered_and_parse_back() {
    let printed: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let mut sorted = printed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(printed, sorted, "codes are listed in order, once each");
    for &code in Code::ALL {
        assert_eq!(Code::parse(code.as_str()), Some(code));
        assert_eq!(Code::parse(&code.as_str().to_lowercase()), Some(code));
        let text = code.as_str();
        assert!(
            (text.starts_with('E') || text.starts_with('W')) && text.len() == 5,
            "{text}"
        );
    }
    assert_eq!(Code::parse("E9999"), None);
}

#[test]
fn every_code_the_corpus_produces_is_listed_and_explained() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/errors");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for diagnostic in archc::compile(SourceKind::Arch, &source).diagnostics {
            assert!(
                Code::ALL.contains(&diagnostic.code),
                "{}: {}",
                path.display(),
                diagnostic.code
            );
            assert!(explanation(diagnostic.code).contains("Example"));
            // Warnings are `W` codes and errors `E` codes.
            assert_eq!(
                diagnostic.is_error(),
                diagnostic.code.as_str().starts_with('E'),
                "{}: {}",
                path.display(),
                diagnostic.code
            );
            seen.insert(diagnostic.code);
        }
    }
    // The corpus exercises every code of the `.arch` front end and checker; YAML and code generation have
    // their own tests.
    let elsewhere = [Code::Yaml, Code::Unsupported];
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c) && !elsewhere.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no corpus file produces {missing:?}");
}
