//! Messages that point the right way: an unknown layer that is a well-known layer of PyTorch or Keras is named
//! for what it is, never "corrected" to a different built-in (`prelu` is not `relu`); the hint for an unnamed
//! statement with weights is written with the statement's own callee.

use archc::{compile, Diagnostic, SourceKind};

fn only_error(source: &str) -> Diagnostic {
    let checked = compile(SourceKind::Arch, source);
    match checked.diagnostics.as_slice() {
        [only] => only.clone(),
        other => panic!("{source}\n{other:#?}"),
    }
}

/// A network whose second statement calls `callee` on a [16, 8, 8] map.
fn calling(callee: &str) -> String {
    format!("network n {{\n    input [16, 8, 8]\n    x = {callee}\n}}\n")
}

/// Every text a diagnostic shows, for "never says" assertions.
fn everything(diagnostic: &Diagnostic) -> String {
    let mut text = vec![
        diagnostic.message.clone(),
        diagnostic.primary.message.clone(),
    ];
    text.extend(diagnostic.notes.iter().cloned());
    text.extend(diagnostic.help.iter().cloned());
    text.join("\n")
}

#[test]
fn prelu_is_named_for_what_it_is_and_not_sent_to_relu() {
    let error = only_error(&calling("prelu"));
    assert_eq!(error.code.as_str(), "E0101");
    assert_eq!(error.primary.message, "not built into archc");
    assert_eq!(
        error.notes,
        [
            "`prelu` is PyTorch's `PReLU`: a leaky ReLU with learned slopes",
            "`relu` is a different function, not another spelling of `prelu`",
        ]
    );
    assert_eq!(
        error.help.as_deref(),
        Some("archc has no `prelu` layer yet")
    );
    assert!(!everything(&error).contains("did you mean"));
}

#[test]
fn well_known_layers_that_are_not_built_in_are_never_corrected_to_a_built_in() {
    // Each of these is within a few edits of a built-in (`prelu`, `elu` and `selu` of `relu`, `group_norm` of
    // `batch_norm`, `hardtanh` of `hardswish`, ...): the message must say what the layer is instead.
    for (callee, theirs) in [
        ("prelu", "PyTorch's `PReLU`"),
        ("PReLU", "PyTorch's `PReLU`"),
        ("elu", "PyTorch's `ELU`"),
        ("selu", "PyTorch's `ELU`, `SELU`, `CELU`"),
        ("hardtanh", "PyTorch's `Hardtanh`"),
        ("tanh", "PyTorch's `Tanh`"),
        ("mish", "PyTorch's `Mish`"),
        (
            "conv_transpose2d(8, 2, stride = 2)",
            "PyTorch's `ConvTranspose2d`",
        ),
        ("group_norm(4)", "PyTorch's `GroupNorm`"),
        ("upsample(scale = 2)", "PyTorch's `Upsample`"),
        ("UpSampling2D", "Keras' `UpSampling2D`"),
    ] {
        let error = only_error(&calling(callee));
        assert_eq!(error.code.as_str(), "E0101", "{callee}");
        assert!(
            error.notes.first().is_some_and(|n| n.contains(theirs)),
            "{callee}: {:?}",
            error.notes
        );
        assert!(
            !everything(&error).contains("did you mean"),
            "{callee}: {error:#?}"
        );
    }
}

/// The activations and channel operations that are built in now answer to PyTorch's and Keras' spellings.
#[test]
fn other_frameworks_names_for_the_activations_point_to_them() {
    for (callee, help) in [
        ("ReLU6", "did you mean `relu6`? (PyTorch's `ReLU6`)"),
        ("SiLU", "did you mean `silu`? (PyTorch's `SiLU`)"),
        ("swish", "did you mean `silu`? (Keras' `swish`)"),
        ("GELU", "did you mean `gelu`? (PyTorch's `GELU`)"),
        ("Sigmoid", "did you mean `sigmoid`? (PyTorch's `Sigmoid`)"),
        (
            "Hardswish",
            "did you mean `hardswish`? (PyTorch's `Hardswish`)",
        ),
        (
            "Hardsigmoid",
            "did you mean `hardsigmoid`? (PyTorch's `Hardsigmoid`)",
        ),
        (
            "ChannelShuffle(2)",
            "did you mean `channel_shuffle`? (PyTorch's `ChannelShuffle`)",
        ),
        (
            "StochasticDepth(0.1)",
            "did you mean `stochastic_depth`? (torchvision's `StochasticDepth`)",
        ),
    ] {
        let error = only_error(&calling(callee));
        assert_eq!(error.code.as_str(), "E0101", "{callee}");
        assert_eq!(error.help.as_deref(), Some(help), "{callee}");
    }
}

#[test]
fn a_layer_with_a_way_to_write_it_says_how() {
    let error = only_error(&calling("depthwise_conv2d(3)"));
    assert_eq!(
        error.help.as_deref(),
        Some("write `conv2d(c, k, groups = c)`, with `c` the input's channels")
    );
    let error = only_error(&calling("ZeroPad2d(1)"));
    assert_eq!(
        error.help.as_deref(),
        Some("give the next convolution or pool `pad = ...`")
    );
}

#[test]
fn other_frameworks_names_for_built_in_layers_still_point_to_them() {
    for (callee, help) in [
        (
            "MaxPool2d(2)",
            "did you mean `max_pool`? (PyTorch's `MaxPool2d`)",
        ),
        ("Dense(10)", "did you mean `linear`? (Keras' `Dense`)"),
        (
            "BatchNormalization",
            "did you mean `batch_norm`? (Keras' `BatchNormalization`)",
        ),
        (
            "LayerNorm2d",
            "did you mean `layer_norm`? (torchvision's `LayerNorm2d`)",
        ),
    ] {
        let error = only_error(&calling(callee));
        assert_eq!(error.help.as_deref(), Some(help), "{callee}");
    }
}

#[test]
fn a_typo_of_a_built_in_is_still_a_typo() {
    let error = only_error(&calling("rleu"));
    assert_eq!(error.help.as_deref(), Some("did you mean `relu`?"));
    assert!(error.notes.is_empty());
}

#[test]
fn the_unnamed_hint_uses_the_block_called() {
    let source = "block downsample(out) {
    conv = conv2d(out, 1)
}
network n {
    input [8, 8, 8]
    add {
        main = conv2d(8, 3, pad = 1)
        downsample(8)
    }
}
";
    let error = only_error(source);
    assert_eq!(error.code.as_str(), "E0134");
    assert_eq!(
        error.help.as_deref(),
        Some("name it: `downsample = downsample(...)`")
    );
}

#[test]
fn the_unnamed_hint_writes_the_chain_and_a_free_name() {
    // `conv` is taken, so the hint offers `conv2`; the chain is written as it stands.
    let source = "network n {
    input [3, 8, 8]
    conv = conv2d(8, 1)
    conv2d(8, 3, pad = 1) -> batch_norm -> relu
}
";
    let error = only_error(source);
    assert_eq!(
        error.help.as_deref(),
        Some("name it: `conv2 = conv2d(...) -> batch_norm -> relu`")
    );
    let source = "network n {
    input [3, 8, 8]
    relu -> global_avg_pool -> flatten -> linear(10)
}
";
    let error = only_error(source);
    assert_eq!(
        error.help.as_deref(),
        Some("name it: `fc = relu -> global_avg_pool -> flatten -> ...`")
    );
}
