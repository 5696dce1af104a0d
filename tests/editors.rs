//! The TextMate grammar under `editors/` highlights every keyword of the pest grammar and every built-in layer
//! of the checker: adding either without updating the editor grammar fails here.

use std::collections::BTreeSet;

fn read(relative: &str) -> String {
    std::fs::read_to_string(format!("{}/{relative}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The words of the `keyword` rule: `keyword = @{ ("block" | "network" | ...) ~ !ident_char }`.
fn pest_keywords() -> BTreeSet<String> {
    let grammar = read("grammar/arch.pest");
    let rule = grammar
        .lines()
        .find(|line| line.starts_with("keyword "))
        .expect("grammar/arch.pest has a `keyword` rule");
    let words: BTreeSet<String> = rule
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(words.len() >= 10, "keyword rule read as {words:?}");
    words
}

/// Every `match` pattern of the grammar, with the scope it gives (the pattern's own or its repository entry's).
fn patterns() -> Vec<(String, String)> {
    let text = read("editors/vscode/syntaxes/arch.tmLanguage.json");
    let grammar: serde_json::Value = serde_json::from_str(&text).expect("the tmLanguage is JSON");
    assert_eq!(grammar["scopeName"], "source.arch");
    let mut out = Vec::new();
    fn walk(value: &serde_json::Value, scope: &str, out: &mut Vec<(String, String)>) {
        let scope = value["name"].as_str().unwrap_or(scope);
        if let Some(pattern) = value["match"].as_str() {
            out.push((scope.to_string(), pattern.to_string()));
        }
        if let Some(list) = value["patterns"].as_array() {
            for item in list {
                walk(item, scope, out);
            }
        }
    }
    for entry in grammar["repository"]
        .as_object()
        .expect("a repository")
        .values()
    {
        walk(entry, "", &mut out);
    }
    out
}

/// Whether `pattern` names `word` as an alternative of a `\b(...)\b` group.
fn lists(pattern: &str, word: &str) -> bool {
    pattern
        .split(['(', ')', '|'])
        .any(|alternative| alternative.trim_start_matches("\\b") == word)
}

#[test]
fn every_keyword_of_the_grammar_is_highlighted() {
    let patterns = patterns();
    for keyword in pest_keywords() {
        let scopes: Vec<&str> = patterns
            .iter()
            .filter(|(_, pattern)| lists(pattern, &keyword))
            .map(|(scope, _)| scope.as_str())
            .collect();
        assert!(
            scopes.iter().any(|s| s.starts_with("keyword") || s.starts_with("constant")),
            "`{keyword}` (grammar/arch.pest) is not highlighted as a keyword or constant: {scopes:?}"
        );
    }
}

#[test]
fn every_builtin_layer_is_highlighted() {
    let patterns = patterns();
    let builtin = patterns
        .iter()
        .find(|(scope, _)| scope == "support.function.builtin.arch")
        .map(|(_, pattern)| pattern.as_str())
        .expect("a support.function.builtin.arch pattern");
    let layers: Vec<&str> = archc::check::builtin_layers().collect();
    assert!(layers.contains(&"conv2d") && layers.len() >= 10);
    for layer in layers {
        assert!(
            lists(builtin, layer),
            "built-in layer `{layer}` missing from the editor grammar"
        );
    }
}

#[test]
fn the_extension_points_at_the_grammar() {
    let manifest: serde_json::Value =
        serde_json::from_str(&read("editors/vscode/package.json")).expect("package.json is JSON");
    let grammar = &manifest["contributes"]["grammars"][0];
    assert_eq!(grammar["scopeName"], "source.arch");
    assert_eq!(grammar["path"], "./syntaxes/arch.tmLanguage.json");
    assert_eq!(
        manifest["contributes"]["languages"][0]["extensions"][0],
        ".arch"
    );
    let configuration: serde_json::Value =
        serde_json::from_str(&read("editors/vscode/language-configuration.json")).expect("JSON");
    assert_eq!(configuration["comments"]["lineComment"], "#");
}
