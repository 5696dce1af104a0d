//! The code `archc emit` generates for the shipped GoogLeNets, kept reviewed as snapshots, and its structure
//! checked independently of the snapshot.

use archc::codegen::emit_source;
use archc::SourceKind;

fn emit(path: &str) -> String {
    let source = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    emit_source(SourceKind::Arch, path, &source).unwrap_or_else(|d| panic!("{path}: {d:?}"))
}

#[test]
fn emitted_googlenet_is_reviewed() {
    insta::assert_snapshot!("googlenet_paper", emit("architectures/googlenet.arch"));
    insta::assert_snapshot!(
        "googlenet_torchvision",
        emit("architectures/googlenet_torchvision.arch")
    );
}

#[test]
fn emitted_code_uses_the_arch_names_as_weight_paths() {
    let code = emit("architectures/googlenet_torchvision.arch");
    // torchvision's state_dict names: a chain is indexed, a single layer is not.
    for path in [
        "\"branch2.0\"",
        "\"branch2.1\"",
        "\"branch4.1\"",
        "\"conv\"",
        "\"bn\"",
        "\"fc1\"",
        "\"inception3a\"",
    ] {
        assert!(
            code.contains(&format!("vb.pp({path})")),
            "missing vb.pp({path})"
        );
    }
    assert!(code.contains("pub struct Inception {"));
    assert!(code.contains("pub aux1: Option<Tensor>"));
    assert!(code.contains("pub num_classes: usize"));
    // Every generated item parses as Rust.
    syn::parse_file(&code).unwrap();
}
