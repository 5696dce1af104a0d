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

#[test]
fn a_block_parameter_given_two_types_is_an_error_at_the_call_that_disagrees() {
    // The checker joins each block parameter's type over the network's calls (an integer is also a float, a
    // square pair and a padding); a float and a pair have no common Rust type.
    let source = "block scale(v) {\n    x = relu\n}\nnetwork n {\n    input [3, 8, 8]\n    a = scale(1.5)\n    b = scale(2)\n    c = scale([2, 2])\n}\n";
    let errors = emit_source(SourceKind::Arch, "n.arch", source).unwrap_err();
    let error = &errors[0];
    assert!(
        error
            .message
            .contains("parameter `v` of block `scale` is given a pair here and a Float elsewhere"),
        "{errors:?}"
    );
    assert_eq!(
        &source[error.primary.span.start as usize..error.primary.span.end as usize]
            .lines()
            .next(),
        &Some("scale([2, 2])")
    );
}

#[test]
fn one_network_emits_as_its_module_file_and_several_as_modules() {
    let network =
        |name: &str| format!("network {name} {{\n    input [3, 8, 8]\n    c = conv2d(4, 3)\n}}\n");
    let one = emit_source(SourceKind::Arch, "a.arch", &network("a")).unwrap();
    // The items of `a`'s module, documented by an inner doc comment: saved as `a.rs` beside `mod a;`.
    assert!(one.contains("\n//! The `a` network of `a.arch`"), "{one}");
    assert!(!one.contains("pub mod a"), "{one}");
    assert!(one.contains("\npub struct Model {"), "{one}");
    syn::parse_file(&one).unwrap();
    let two = emit_source(SourceKind::Arch, "ab.arch", &(network("a") + &network("b"))).unwrap();
    assert!(
        two.contains("\npub mod a {") && two.contains("\npub mod b {"),
        "{two}"
    );
    syn::parse_file(&two).unwrap();
}
