//! ShuffleNet's channel operations: `channel_shuffle` (PyTorch's `nn.ChannelShuffle`), which interleaves channel
//! groups, and `chunk`, one of several equal channel slices (`torch.chunk(x, chunks, dim=1)[index]`), which
//! ShuffleNet-V2's units split their input with.

use quote::quote;

use crate::codegen::layer::{Channels, EmitCx, Emitted, Want};
use crate::codegen::CodegenError;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::Shape;

use super::args::{require_map, ArgDefault::*, Args};
use super::{Builtin, Layer, LayerDef, Param, Resize};

/// `[N, g·k, H, W]` viewed as `[N, g, k, H, W]`, the two group axes swapped and copied back to `[N, k·g, H, W]`:
/// output channel `j·g + i` is input channel `i·k + j`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelShuffle {
    pub groups: u64,
    /// Inferred from the input.
    pub channels: u64,
}

/// The `index`-th (from 0) of `chunks` equal slices of the channels (features, for a flat input).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub chunks: u64,
    pub index: u64,
    /// Inferred from the input.
    pub in_channels: u64,
}

/// Reports, at the argument `argument`, that `channels` do not split into `parts` equal `what`; `None` then.
fn divides(
    args: &mut Args<'_>,
    argument: &str,
    what: &str,
    channels: u64,
    parts: u64,
) -> Option<()> {
    let remainder = channels % parts;
    if remainder == 0 {
        return Some(());
    }
    let span = args.span(argument);
    let layer = args.layer;
    args.report(
        Diagnostic::error(
            Code::InvalidGroups,
            span,
            format!("{channels} input channels cannot be split into {parts} {what}"),
        )
        .with_label(format!("{channels} % {parts} = {remainder}"))
        .with_note(format!(
            "{layer} needs equal {what}: {channels} = {parts} × {} + {remainder}",
            channels / parts
        )),
    );
    None
}

impl LayerDef for ChannelShuffle {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "channel_shuffle",
        summary: "ShuffleNet's channel shuffle (PyTorch's `nn.ChannelShuffle`): the channels, in `groups` equal \
            groups, interleaved; the shape is unchanged.",
        params: &[Param {
            name: "groups",
            default: Required,
        }],
        resolve: |args| {
            let groups = args.int("groups", 1)?;
            Some(Layer::ChannelShuffle(ChannelShuffle {
                groups,
                channels: 0,
            }))
        },
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let (c, _, _) = require_map(args, input)?;
        divides(args, "groups", "groups", c, self.groups)?;
        Some((
            ChannelShuffle {
                channels: c,
                ..self
            },
            input,
        ))
    }

    fn has_weights(&self) -> bool {
        false
    }

    fn resize(&self) -> Resize {
        Resize::Keeps
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        (0, 0)
    }

    fn label(&self) -> String {
        format!("channel_shuffle {}", self.groups)
    }

    fn settings(&self) -> String {
        format!(
            "channel_shuffle: {} channels in {} groups of {}",
            self.channels,
            self.groups,
            self.channels / self.groups
        )
    }

    fn formula(&self, _input: Shape, _output: Shape) -> Option<String> {
        None
    }

    fn keep_size_hint(&self, _input: Shape, _expected: Shape) -> Option<String> {
        None
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let groups = cx.required("groups", Want::Usize)?;
        let (in_channels, at, field) = (&cx.in_channels, &cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::ChannelShuffle),
            quote!(nn::channel_shuffle(#in_channels, #groups)#at?),
            quote!(Op::Module(&self.#field)),
        ))
    }
}

impl LayerDef for Chunk {
    const BUILTINS: &'static [Builtin] = &[Builtin {
        name: "chunk",
        summary: "The `index`-th (from 0) of `chunks` equal channel slices, \
            `torch.chunk(x, chunks, dim=1)[index]`: C channels become C / chunks.",
        params: &[
            Param {
                name: "chunks",
                default: Required,
            },
            Param {
                name: "index",
                default: Required,
            },
        ],
        resolve: |args| {
            let chunks = args.int("chunks", 1);
            let index = args.int("index", 0);
            let (chunks, index) = (chunks?, index?);
            if index >= chunks {
                let span = args.span("index");
                args.report(
                    Diagnostic::error(
                        Code::InvalidArgument,
                        span,
                        format!(
                            "`index` of chunk: {index} is not one of the {chunks} chunks (0 to {})",
                            chunks - 1
                        ),
                    )
                    .with_label(format!("{index} >= {chunks} chunks"))
                    .with_help(format!(
                        "chunks are counted from 0, as in Python: the last of {chunks} is `index = {}`",
                        chunks - 1
                    )),
                );
                return None;
            }
            Some(Layer::Chunk(Chunk {
                chunks,
                index,
                in_channels: 0,
            }))
        },
    }];

    fn infer(self, args: &mut Args<'_>, input: Shape) -> Option<(Self, Shape)> {
        let c = match input {
            Shape::Map { c, .. } => c,
            Shape::Flat { features } => features,
        };
        divides(args, "chunks", "chunks", c, self.chunks)?;
        let part = c / self.chunks;
        let output = match input {
            Shape::Map { h, w, .. } => Shape::Map { c: part, h, w },
            Shape::Flat { .. } => Shape::Flat { features: part },
        };
        Some((
            Chunk {
                in_channels: c,
                ..self
            },
            output,
        ))
    }

    fn has_weights(&self) -> bool {
        false
    }

    fn resize(&self) -> Resize {
        Resize::Keeps
    }

    fn cost(&self, _output: Shape) -> (u64, u64) {
        (0, 0)
    }

    fn label(&self) -> String {
        format!("chunk [{}] of {}", self.index, self.chunks)
    }

    fn settings(&self) -> String {
        let part = self.in_channels / self.chunks;
        format!(
            "chunk: {} → {part} channels, chunk {} of {} (channels {} to {})",
            self.in_channels,
            self.index,
            self.chunks,
            self.index * part,
            (self.index + 1) * part - 1
        )
    }

    fn formula(&self, _input: Shape, _output: Shape) -> Option<String> {
        None
    }

    fn keep_size_hint(&self, _input: Shape, _expected: Shape) -> Option<String> {
        None
    }

    fn emit(&self, cx: &EmitCx<'_>) -> Result<Emitted, CodegenError> {
        let chunks = cx.required("chunks", Want::Usize)?;
        let index = cx.required("index", Want::Usize)?;
        let (in_channels, at, field) = (&cx.in_channels, &cx.at, cx.field);
        Ok(Emitted::module(
            quote!(nn::Chunk),
            quote!(nn::chunk(#in_channels, #chunks, #index)#at?),
            quote!(Op::Module(&self.#field)),
        )
        .with_channels(Channels::DividedBy("chunks")))
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::{assert_emitted, call_errors};

    /// One error: (code, the text its caret points at, message, label).
    fn error(
        code: &'static str,
        at: &str,
        message: &str,
        label: &str,
    ) -> Vec<(&'static str, String, String, String)> {
        vec![(code, at.to_string(), message.to_string(), label.to_string())]
    }

    #[test]
    fn channels_must_split_into_equal_groups_and_chunks() {
        assert_eq!(
            call_errors("channel_shuffle(3)", "[116, 28, 28]"),
            error(
                "E0106",
                "3",
                "116 input channels cannot be split into 3 groups",
                "116 % 3 = 2"
            )
        );
        assert_eq!(
            call_errors("chunk(chunks = 4, index = 0)", "[58, 28, 28]"),
            error(
                "E0106",
                "4",
                "58 input channels cannot be split into 4 chunks",
                "58 % 4 = 2"
            )
        );
        // The note spells the remainder out: 116 = 3 × 38 + 2.
        let checked = crate::compile(
            crate::SourceKind::Arch,
            "network n {\n    input [116, 28, 28]\n    x = channel_shuffle(3)\n}\n",
        );
        assert_eq!(
            checked.diagnostics[0].notes,
            ["channel_shuffle needs equal groups: 116 = 3 × 38 + 2"]
        );
        assert!(call_errors("channel_shuffle(4)", "[116, 28, 28]").is_empty());
        assert!(call_errors("chunk(2, 1)", "[116, 28, 28]").is_empty());
    }

    #[test]
    fn bad_arguments_are_located_errors() {
        assert_eq!(
            call_errors("chunk(2, 2)", "[8, 4, 4]"),
            error(
                "E0115",
                "2",
                "`index` of chunk: 2 is not one of the 2 chunks (0 to 1)",
                "2 >= 2 chunks"
            )
        );
        let zero = call_errors("channel_shuffle(0)", "[8, 4, 4]");
        assert_eq!(zero.len(), 1, "{zero:?}");
        assert_eq!((zero[0].0, zero[0].1.as_str()), ("E0115", "0"));
        let zero = call_errors("chunk(0, 0)", "[8, 4, 4]");
        assert_eq!(zero.len(), 1, "{zero:?}");
        assert_eq!((zero[0].0, zero[0].1.as_str()), ("E0115", "0"));
        assert_eq!(
            call_errors("chunk(2, index = -1)", "[8, 4, 4]")[0].0,
            "E0115"
        );
        for call in [
            "channel_shuffle(2.5)",
            "channel_shuffle(true)",
            "chunk(2, [1, 1])",
            "chunk(0.5, 0)",
        ] {
            let errors = call_errors(call, "[8, 4, 4]");
            assert_eq!(errors.len(), 1, "{call}: {errors:?}");
            assert_eq!(errors[0].0, "E0114", "{call}");
        }
        for call in ["channel_shuffle", "chunk(2)"] {
            assert_eq!(call_errors(call, "[8, 4, 4]")[0].0, "E0111", "{call}");
        }
    }

    #[test]
    fn channel_shuffle_needs_a_map_and_chunk_splits_features_too() {
        assert_eq!(call_errors("channel_shuffle(2)", "[8]")[0].0, "E0107");
        assert!(call_errors("chunk(2, 0)", "[8]").is_empty());
        assert_eq!(call_errors("chunk(3, 0)", "[8]")[0].0, "E0106");
    }

    #[test]
    fn labels_settings_and_cost() {
        let checked = crate::compile(
            crate::SourceKind::Arch,
            "network n {\n    input [116, 28, 28]\n    a = channel_shuffle(2)\n    b = chunk(4, 3) : [29, 28, 28]\n}\n",
        );
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let body = &checked.networks[0].body;
        let layer = |i: usize| match &body[i].kind {
            crate::ir::NodeKind::Layer(layer) => layer,
            _ => panic!("a layer"),
        };
        assert_eq!(layer(0).label(), "channel_shuffle 2");
        assert_eq!(
            layer(0).settings(),
            "channel_shuffle: 116 channels in 2 groups of 58"
        );
        assert_eq!(layer(1).label(), "chunk [3] of 4");
        // 116 / 4 = 29 channels each; chunk 3 is channels 87 to 115.
        assert_eq!(
            layer(1).settings(),
            "chunk: 116 → 29 channels, chunk 3 of 4 (channels 87 to 115)"
        );
        for (i, node) in body.iter().enumerate() {
            assert_eq!(layer(i).cost(node.output), (0, 0));
            assert!(!layer(i).has_weights());
        }
    }

    /// What each call generates (the layer in a block with parameters `p` and `q`), reviewed by hand.
    #[test]
    fn emitted_code() {
        assert_emitted(CASES);
    }

    const CASES: &[(&str, &str, &str)] = &[
        (
            "channel_shuffle(2)",
            "[8, 4, 4]",
            r#"fn layer() {
    let layer: nn::ChannelShuffle = nn::channel_shuffle(in_channels, 2).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "chunk(2, p)",
            "[8, 4, 4]",
            r#"fn layer() {
    let layer: nn::Chunk = nn::chunk(in_channels, 2, p).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
        (
            "chunk(chunks = 4, index = 3)",
            "[8]",
            r#"fn layer() {
    let layer: nn::Chunk = nn::chunk(in_channels, 4, 3).at(SOURCE, 2)?;
    let ys = xs.apply(&self.layer)?;
    let op = Op::Module(&self.layer);
}
"#,
        ),
    ];
}
