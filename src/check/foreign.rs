//! Names from other frameworks (PyTorch, Keras): of layers, for the message about an unknown callee, and of
//! keyword arguments, for the message about an unknown parameter.
//!
//! A name spelt the way PyTorch or Keras spells one of the built-in layers (`MaxPool2d`, `Dense`) is that
//! layer. A well-known layer archc does not have (`prelu`, `tanh`, `conv_transpose2d`) is named for what it
//! is, never "corrected" to the nearest built-in: `prelu` is not `relu` with a typo, it is another function.

/// What an unknown callee is in another framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// A built-in layer under another framework's name.
    Renamed {
        /// The built-in layer.
        ours: &'static str,
        /// Whose name it is: "PyTorch's `MaxPool2d`".
        theirs: &'static str,
    },
    /// A layer archc does not have.
    Missing(&'static Missing),
}

/// A well-known layer that is not built in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    /// Its spellings, lower case without underscores (`prelu` covers `PReLU`, `p_relu`, `Prelu`).
    keys: &'static [&'static str],
    /// Whose layer it is: "PyTorch's `PReLU`".
    pub theirs: &'static str,
    /// What it computes.
    pub what: &'static str,
    /// What to write instead, where the language has a way; `None` where it has none yet.
    pub instead: Option<&'static str>,
}

/// Built-in layers under PyTorch's and Keras' names: (spelling, built-in, whose name).
const RENAMED: &[(&str, &str, &str)] = &[
    ("conv2d", "conv2d", "PyTorch's `Conv2d`"),
    ("maxpool2d", "max_pool", "PyTorch's `MaxPool2d`"),
    ("maxpool", "max_pool", "PyTorch's `MaxPool2d`"),
    ("maxpooling2d", "max_pool", "Keras' `MaxPooling2D`"),
    ("avgpool2d", "avg_pool", "PyTorch's `AvgPool2d`"),
    ("avgpool", "avg_pool", "PyTorch's `AvgPool2d`"),
    ("averagepooling2d", "avg_pool", "Keras' `AveragePooling2D`"),
    (
        "adaptiveavgpool2d",
        "adaptive_avg_pool",
        "PyTorch's `AdaptiveAvgPool2d`",
    ),
    (
        "adaptiveavgpool",
        "adaptive_avg_pool",
        "PyTorch's `AdaptiveAvgPool2d`",
    ),
    (
        "globalavgpool",
        "global_avg_pool",
        "PyTorch's `AdaptiveAvgPool2d(1)`",
    ),
    (
        "globalaveragepool",
        "global_avg_pool",
        "PyTorch's `AdaptiveAvgPool2d(1)`",
    ),
    (
        "globalaveragepooling2d",
        "global_avg_pool",
        "Keras' `GlobalAveragePooling2D`",
    ),
    ("batchnorm2d", "batch_norm", "PyTorch's `BatchNorm2d`"),
    ("batchnorm", "batch_norm", "PyTorch's `BatchNorm2d`"),
    (
        "batchnormalization",
        "batch_norm",
        "Keras' `BatchNormalization`",
    ),
    ("layernorm", "layer_norm", "PyTorch's `LayerNorm`"),
    ("layernorm2d", "layer_norm", "torchvision's `LayerNorm2d`"),
    (
        "layernormalization",
        "layer_norm",
        "Keras' `LayerNormalization`",
    ),
    ("localresponsenorm", "lrn", "PyTorch's `LocalResponseNorm`"),
    ("relu", "relu", "PyTorch's `ReLU`"),
    ("relu6", "relu6", "PyTorch's `ReLU6`"),
    ("silu", "silu", "PyTorch's `SiLU`"),
    ("swish", "silu", "Keras' `swish`"),
    ("sigmoid", "sigmoid", "PyTorch's `Sigmoid`"),
    ("hardswish", "hardswish", "PyTorch's `Hardswish`"),
    (
        "hswish",
        "hardswish",
        "MobileNet-V3's `h-swish`, PyTorch's `Hardswish`",
    ),
    ("hardsigmoid", "hardsigmoid", "PyTorch's `Hardsigmoid`"),
    (
        "hsigmoid",
        "hardsigmoid",
        "MobileNet-V3's `h-sigmoid`, PyTorch's `Hardsigmoid`",
    ),
    ("gelu", "gelu", "PyTorch's `GELU`"),
    ("dropout", "dropout", "PyTorch's `Dropout`"),
    (
        "stochasticdepth",
        "stochastic_depth",
        "torchvision's `StochasticDepth`",
    ),
    (
        "channelshuffle",
        "channel_shuffle",
        "PyTorch's `ChannelShuffle`",
    ),
    ("flatten", "flatten", "PyTorch's `Flatten`"),
    ("linear", "linear", "PyTorch's `Linear`"),
    ("dense", "linear", "Keras' `Dense`"),
    ("softmax", "softmax", "PyTorch's `Softmax`"),
    ("identity", "identity", "PyTorch's `Identity`"),
];

/// Well-known layers that are not built in.
const MISSING: &[Missing] = &[
    Missing {
        keys: &["tanh"],
        theirs: "PyTorch's `Tanh`",
        what: "the hyperbolic tangent",
        instead: None,
    },
    Missing {
        keys: &["hardtanh"],
        theirs: "PyTorch's `Hardtanh`",
        what: "x clipped to [-1, 1]",
        instead: None,
    },
    Missing {
        keys: &["leakyrelu"],
        theirs: "PyTorch's `LeakyReLU`",
        what: "x for x > 0, a small slope times x otherwise",
        instead: None,
    },
    Missing {
        keys: &["prelu"],
        theirs: "PyTorch's `PReLU`",
        what: "a leaky ReLU with learned slopes",
        instead: None,
    },
    Missing {
        keys: &["elu", "selu", "celu"],
        theirs: "an exponential linear unit (PyTorch's `ELU`, `SELU`, `CELU`)",
        what: "x for x > 0, an exponential curve below",
        instead: None,
    },
    Missing {
        keys: &["mish"],
        theirs: "PyTorch's `Mish`",
        what: "x · tanh(softplus(x))",
        instead: None,
    },
    Missing {
        keys: &["softplus"],
        theirs: "PyTorch's `Softplus`",
        what: "log(1 + e^x)",
        instead: None,
    },
    Missing {
        keys: &["logsoftmax"],
        theirs: "PyTorch's `LogSoftmax`",
        what: "the logarithm of the softmax",
        instead: None,
    },
    Missing {
        keys: &[
            "convtranspose2d",
            "convtranspose",
            "conv2dtranspose",
            "deconv2d",
            "deconv",
        ],
        theirs: "PyTorch's `ConvTranspose2d` (Keras' `Conv2DTranspose`)",
        what: "a transposed convolution, which enlarges the map",
        instead: None,
    },
    Missing {
        keys: &["groupnorm", "groupnormalization"],
        theirs: "PyTorch's `GroupNorm`",
        what: "normalisation over groups of channels of each sample",
        instead: None,
    },
    Missing {
        keys: &["instancenorm2d", "instancenorm"],
        theirs: "PyTorch's `InstanceNorm2d`",
        what: "normalisation over each channel of each sample",
        instead: None,
    },
    Missing {
        keys: &[
            "upsample",
            "upsampling2d",
            "interpolate",
            "upsamplingnearest2d",
        ],
        theirs: "PyTorch's `Upsample` (Keras' `UpSampling2D`)",
        what: "resizing the map by interpolation",
        instead: None,
    },
    Missing {
        keys: &["pixelshuffle"],
        theirs: "PyTorch's `PixelShuffle`",
        what: "moving channels into space",
        instead: None,
    },
    Missing {
        keys: &["adaptivemaxpool2d", "adaptivemaxpool"],
        theirs: "PyTorch's `AdaptiveMaxPool2d`",
        what: "max pooling to a fixed output size",
        instead: None,
    },
    Missing {
        keys: &["globalmaxpool", "globalmaxpooling2d"],
        theirs: "Keras' `GlobalMaxPooling2D`",
        what: "the maximum over the whole map",
        instead: None,
    },
    Missing {
        keys: &["dropout2d", "spatialdropout2d"],
        theirs: "PyTorch's `Dropout2d` (Keras' `SpatialDropout2D`)",
        what: "dropout of whole channels",
        instead: None,
    },
    Missing {
        keys: &["squeezeexcitation", "squeezeexcite"],
        theirs: "torchvision's `SqueezeExcitation`",
        what: "channel attention: the input scaled by a gate computed from it",
        instead: None,
    },
    Missing {
        keys: &["depthwiseconv2d", "depthwiseconv"],
        theirs: "Keras' `DepthwiseConv2D`",
        what: "a convolution of each channel on its own",
        instead: Some("write `conv2d(c, k, groups = c)`, with `c` the input's channels"),
    },
    Missing {
        keys: &["separableconv2d", "separableconv"],
        theirs: "Keras' `SeparableConv2D`",
        what: "a depthwise convolution followed by a 1×1 one",
        instead: Some(
            "write `conv2d(c, k, groups = c) -> conv2d(out, 1)`, with `c` the input's channels",
        ),
    },
    Missing {
        keys: &["zeropad2d", "zeropadding2d", "pad"],
        theirs: "PyTorch's `ZeroPad2d` (Keras' `ZeroPadding2D`)",
        what: "zero padding as a layer of its own",
        instead: Some("give the next convolution or pool `pad = ...`"),
    },
    Missing {
        keys: &["cat", "concatenate"],
        theirs: "PyTorch's `torch.cat` (Keras' `Concatenate`)",
        what: "concatenation along the channels",
        instead: Some("write a group of named branches: `concat { a = ... b = ... }`"),
    },
    Missing {
        keys: &["add", "sum"],
        theirs: "Keras' `Add`",
        what: "an element-wise sum",
        instead: Some("write a group of named branches: `add { a = ... b = ... }`"),
    },
    Missing {
        keys: &["sequential"],
        theirs: "PyTorch's `nn.Sequential`",
        what: "layers applied in order",
        instead: Some("chain the layers: `a -> b -> c`"),
    },
];

/// Lower case without underscores: how [`RENAMED`] and [`MISSING`] spell their keys.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What `name`, a callee that is neither a built-in layer nor a block, is in PyTorch or Keras, if it is a
/// well-known layer there.
pub(crate) fn foreign_layer(name: &str) -> Option<Foreign> {
    let key = normalize(name);
    if let Some((_, ours, theirs)) = RENAMED
        .iter()
        .find(|(spelling, ours, _)| *spelling == key && *ours != name)
    {
        return Some(Foreign::Renamed { ours, theirs });
    }
    MISSING
        .iter()
        .find(|missing| missing.keys.contains(&key.as_str()))
        .map(Foreign::Missing)
}

/// What a PyTorch keyword argument is called here.
pub(crate) enum PytorchKeyword {
    Renamed(&'static str),
    /// In-channel counts are inferred, never written.
    Inferred,
}

/// Recognises PyTorch's names for this language's parameters (`kernel_size`, `padding`, ...) among `params`.
pub(crate) fn pytorch_keyword(keyword: &str, params: &[&str]) -> Option<PytorchKeyword> {
    const RENAMED: &[(&str, &str)] = &[
        ("kernel_size", "kernel"),
        ("padding", "pad"),
        ("out_channels", "out"),
        ("out_features", "out"),
        ("ceil_mode", "ceil"),
        ("output_size", "size"),
    ];
    if matches!(keyword, "in_channels" | "in_features" | "num_features") {
        return Some(PytorchKeyword::Inferred);
    }
    RENAMED
        .iter()
        .find(|(theirs, ours)| *theirs == keyword && params.contains(ours))
        .map(|(_, ours)| PytorchKeyword::Renamed(ours))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::builtin_layers;

    #[test]
    fn keys_are_normalized_and_unique() {
        let mut seen = std::collections::HashSet::new();
        let keys = RENAMED
            .iter()
            .map(|(key, _, _)| *key)
            .chain(MISSING.iter().flat_map(|m| m.keys.iter().copied()));
        for key in keys {
            assert_eq!(normalize(key), key, "`{key}` is not in normal form");
            assert!(seen.insert(key), "`{key}` is listed twice");
        }
    }

    /// A layer that becomes built in must leave the table of missing ones (its name then reaches a built-in
    /// before this table is consulted, and an alias such as `swish` would wrongly say it is missing).
    #[test]
    fn no_missing_layer_is_built_in() {
        for builtin in builtin_layers() {
            let key = normalize(builtin);
            assert!(
                !MISSING.iter().any(|m| m.keys.contains(&key.as_str())),
                "`{builtin}` is built in now: remove it from MISSING"
            );
        }
    }

    #[test]
    fn renamed_layers_are_built_in() {
        let builtins: Vec<&str> = builtin_layers().collect();
        for (_, ours, _) in RENAMED {
            assert!(builtins.contains(ours), "`{ours}` is not a built-in layer");
        }
    }

    #[test]
    fn spellings_are_found_in_any_case() {
        assert_eq!(
            foreign_layer("MaxPool2d"),
            Some(Foreign::Renamed {
                ours: "max_pool",
                theirs: "PyTorch's `MaxPool2d`"
            })
        );
        assert_eq!(
            foreign_layer("Dense"),
            Some(Foreign::Renamed {
                ours: "linear",
                theirs: "Keras' `Dense`"
            })
        );
        assert_eq!(
            foreign_layer("ReLU6"),
            Some(Foreign::Renamed {
                ours: "relu6",
                theirs: "PyTorch's `ReLU6`"
            })
        );
        // The built-in's own spelling is not foreign.
        assert_eq!(foreign_layer("max_pool"), None);
        assert_eq!(foreign_layer("relu6"), None);
        for name in [
            "prelu",
            "PReLU",
            "p_relu",
            "Tanh",
            "conv_transpose2d",
            "ConvTranspose2d",
        ] {
            assert!(
                matches!(foreign_layer(name), Some(Foreign::Missing(_))),
                "{name}"
            );
        }
        assert_eq!(foreign_layer("inceptoin"), None);
    }
}
