//! The lists that must name every built-in layer are tested against the one registry
//! (`archc::layers::builtins()`): `archc explain E0101`, the README's list with each signature, and the fuzz
//! dictionary. (The editor grammar is checked by `tests/editors.rs`.)

use archc::layers::builtins;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn explain_lists_every_built_in() {
    let text = archc::explain::explanation(archc::Code::UnknownCallee);
    for builtin in builtins() {
        assert!(
            text.contains(builtin.name),
            "`archc explain E0101` does not name `{}`",
            builtin.name
        );
    }
}

#[test]
fn the_readme_gives_every_signature() {
    let readme = read("README.md");
    for builtin in builtins() {
        let signature = if builtin.params.is_empty() {
            builtin.name.to_string()
        } else {
            builtin.signature()
        };
        assert!(
            readme.contains(&format!("`{signature}`")),
            "README.md does not list `{signature}`"
        );
    }
}

#[test]
fn the_fuzz_dictionary_has_every_name() {
    let dictionary = read("fuzz/arch.dict");
    for builtin in builtins() {
        assert!(
            dictionary.contains(&format!("\"{}\"", builtin.name)),
            "fuzz/arch.dict lacks \"{}\"",
            builtin.name
        );
    }
}
