//! Long explanations of diagnostic codes, for `archc explain`.
//!
//! Every code has its own arm (there is no catch-all), so adding a code to [`Code`] without writing its
//! explanation does not compile. Each explanation holds an `Example:` whose indented text produces that code;
//! `tests/explain.rs` checks that it does.

use crate::diagnostic::Code;

/// The explanation of `code`, with a small example.
pub fn explanation(code: Code) -> &'static str {
    match code {
        Code::Syntax => {
            "The text does not follow the language's grammar. Parsing stops at the first syntax error, because a tree
built around a mistake would only produce follow-on noise; fix it and run the check again.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, stride = 2, pad = 3 -> relu
    }

The call's `)` is missing, so after `pad = 3` the parser expected `,`, `)` or an operator and found `->`.

Other frequent causes:
- a keyword argument without `=`: `stride 2` instead of `stride = 2`;
- `=>` instead of `->` between layers;
- a body whose `}` is missing (the next `block` or `network` is then reported);
- a positional argument after a keyword argument: `conv2d(64, kernel = 7, 2)`;
- names are ASCII letters, digits and `_`, not starting with a digit; `block`, `network`, `input`, `side`,
  `from`, `concat`, `add`, `true`, `false` and `same` are reserved."
        }
        Code::Yaml => {
            "A `.yaml` architecture is not well-formed YAML, or its structure is not the one archc reads (a mapping
of blocks and networks whose statements are strings in the `.arch` syntax).

Example (YAML):

    network: stem
      input: [3, 224, 224

Here the indentation after a plain value and the unclosed `[` make the document invalid YAML. The message
carries the YAML parser's own description and position."
        }
        Code::LimitExceeded => {
            "The input is larger than archc accepts. The limits keep the checker's time and memory bounded on any
input: a source of at most 8 MiB, brackets nested at most 64 deep, at most 32 operators in one expression
between brackets and commas, blocks instantiated at most 64 deep, and at most 200,000 layers once every
block use is expanded.

Example:

    network deep {
        input [3, 32, 32]
        conv = conv2d(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((8))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))), 3)
    }

Real architectures are far inside these limits; hitting one usually means generated input went wrong."
        }
        Code::UnknownCallee => {
            "A statement calls a name that is neither a built-in layer nor a block defined in this file.

The built-in layers are conv2d, max_pool, avg_pool, adaptive_avg_pool, global_avg_pool, batch_norm,
layer_norm, lrn, relu, relu6, silu, sigmoid, hardswish, hardsigmoid, gelu, dropout, stochastic_depth,
channel_shuffle, chunk, flatten, linear, softmax and identity. Blocks may be defined anywhere in the file, before or after their use.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv3d(64, 7, stride = 2, pad = 3)
    }

`conv3d` is not a layer; the help suggests the closest name, `conv2d`. PyTorch's and Keras' names for the
built-in layers (`MaxPool2d`, `BatchNorm2d`, `Dense`, ...) are answered with the language's spelling. A
well-known layer that archc does not have (`prelu`, `tanh`, `mish`, `conv_transpose2d`, `group_norm`,
`upsample`, ...) is named for what it is, with what to write instead where the language has a way; it is
never corrected to a nearby built-in, which would be a different function (`prelu` is not `relu`).

A missing `=` shows up here too: `conv1 conv2d(64, 7)` is two statements, a call of an unknown layer
`conv1` and an unnamed `conv2d(64, 7)`; write `conv1 = conv2d(64, 7)`."
        }
        Code::DeclaredShapeMismatch => {
            "A statement's declared output size (`: [C, H, W]` or `: [features]`) differs from the size the checker
infers. Declarations are the author's record of what each row should produce (a paper's table, say); the
checker verifies every one.

Example:

    block inception(c1, c3r, c3, c5r, c5, pp) {
        concat {
            branch1 = conv2d(c1, 1) -> relu
            branch2 = conv2d(c3r, 1) -> relu -> conv2d(c3, 3, pad = 1) -> relu
            branch3 = conv2d(c5r, 1) -> relu -> conv2d(c5, 5, pad = 2) -> relu
            branch4 = max_pool(3, stride = 1, pad = 1, ceil = true) -> conv2d(pp, 1) -> relu
        }
    }

    network googlenet_3b {
        input [256, 28, 28]
        inception3b = inception(128, 192, 32, 32, 96, 64)   : [480, 28, 28]
    }

The arguments are GoogLeNet's Table 1 row for inception (3b) with its columns out of order: the concat yields
128 + 32 + 96 + 64 = 320 channels, not 480. The note spells out the concat; for a spatial mismatch the notes
show each layer's size arithmetic.

After a mismatch either the row or its declaration may be the wrong one, so the checker follows both sizes:
each row below is checked against the declared size and against the computed one, and is reported only when
it agrees with neither. A wrong declaration (the rows below are right for the real size) and a wrong
computation upstream (a changed input size or stride, the declarations below are right) each give one error,
and one run still reports every wrong row. A row whose declaration agrees with one of the two settles it."
        }
        Code::ConcatSpatialMismatch => {
            "The branches of a `concat` do not agree on their spatial size. A concat joins its branches along the
channel axis, so every branch must produce a map of the same height and width (or every branch a flat
vector).

Example:

    network inception_3a {
        input [192, 28, 28]
        inception3a = concat {
            branch1 = conv2d(64, 1)
            branch3 = conv2d(16, 1) -> conv2d(32, 5, pad = 1)
        }
    }

The 5x5 convolution padded by 1 shrinks the map to 28 + 2x1 - 5 + 1 = 26 while branch1 keeps 28x28. With
stride 1, a k x k convolution keeps the size with padding (k - 1) / 2: `pad = 2` here, or `pad = same`.

The size most branches agree on is taken as intended, and the others are reported with the layer that
changed their size. A concat of flat vectors and maps is reported here too."
        }
        Code::AddShapeMismatch => {
            "The branches of an `add` do not produce the same shape. An element-wise sum needs identical
`[C, H, W]` (or `[features]`) on every branch.

Example:

    network resnet_down {
        input [64, 56, 56]
        down = add {
            main = conv2d(128, 3, stride = 2, pad = 1) -> batch_norm
            skip = identity
        }
    }

The main path gives [128, 28, 28] while the shortcut passes [64, 56, 56] through. A residual block that
changes the shape needs a projection shortcut with the main path's channels and stride:
`skip = conv2d(128, 1, stride = 2) -> batch_norm`."
        }
        Code::OutputTooSmall => {
            "A convolution or pooling window is larger than its padded input, so it has no valid position. The
window covers dilation x (kernel - 1) + 1 positions, and must fit in input + padding on each axis (PyTorch
raises the same error at run time).

Example:

    network head {
        input [1024, 7, 7]
        pool5 = avg_pool(8, stride = 1)
    }

An 8x8 window does not fit a 7x7 map (as in an Inception-v3 head pasted onto GoogLeNet). A window as large
as the map, `avg_pool(7, stride = 1)`, or `global_avg_pool` pools it to 1x1."
        }
        Code::InvalidGroups => {
            "A grouped convolution splits its input and output channels into `groups` equal parts, so both counts
must be divisible by `groups`. So must the input channels of `channel_shuffle(groups)`, and those of
`chunk(chunks, index)` by `chunks`.

Example:

    network grouped {
        input [192, 28, 28]
        conv = conv2d(320, 3, pad = 1, groups = 5)
    }

192 input channels cannot be split into 5 groups (192 % 5 = 2). The label shows the remainder; choose a group
count that divides both channel counts, e.g. `groups = 4` (or 8, 16, 32, 64)."
        }
        Code::WrongInputRank => {
            "A layer is applied to a tensor of the wrong rank. Convolutions, pools and `lrn` need a `[C, H, W]`
feature map; `linear` needs a flat `[features]` vector.

Example:

    network head {
        input [1024, 7, 7]
        fc = linear(1000)
    }

The classifier is applied to the 7x7 map. Flattening it would give 1024 x 7 x 7 = 50176 features; GoogLeNet
pools to 1x1 first: `global_avg_pool`, then `flatten`, then `fc = linear(1000)`."
        }
        Code::TooManyArguments => {
            "A call passes more positional arguments than the layer or block has parameters.

Example:

    network head {
        input [1024]
        drop = dropout(0.4, 0.2)
    }

`dropout` takes one argument, `p`. The note lists the parameters in order; optional ones are best passed by
keyword (`stride = 2`)."
        }
        Code::MissingArgument => {
            "A call leaves out a parameter that has no default.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, stride = 2, pad = 3)
    }

`conv2d` needs `out` and `kernel`; the note shows the signature:
conv2d(out, kernel, stride = 1, pad = 0, dilation = 1, groups = 1, bias = true). In-channel counts are never
written: they are inferred from the input."
        }
        Code::UnknownArgument => {
            "A keyword argument names a parameter the layer or block does not have.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, stride = 2, padding = 3)
    }

The language calls PyTorch's `padding` `pad` (and `kernel_size` `kernel`, `out_channels` `out`, `ceil_mode`
`ceil`); `in_channels`, `in_features` and `num_features` are inferred and never written. For other names the
help suggests the closest parameter, and the note lists them all."
        }
        Code::DuplicateArgument => {
            "The same parameter receives two values, by position and by keyword, or by two keywords.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, kernel = 5)
    }

The second positional argument already is the kernel; remove one of the two."
        }
        Code::ArgumentType => {
            "An argument has the wrong type for its parameter. Values are integers, floats, `true`/`false`,
`same` (padding only) and `[h, w]` pairs (kernels, strides, padding, sizes).

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, true)
    }

The kernel must be an integer or an `[h, w]` pair, not a bool. Sizes in shapes (`input`, declarations) must
be integers as well."
        }
        Code::InvalidArgument => {
            "An argument has the right type but a value the layer cannot take: a stride, kernel, dilation or
channel count below 1, negative padding, a dropout probability or batch-norm momentum outside 0..1, a
non-positive batch-norm eps, a size above 2^31 - 1 (PyTorch indexes with 32-bit integers), `pad = same` with
a stride above 1, or a `concat`/`add` with no branches.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, stride = 0, pad = 3)
    }

A stride of 0 never advances the window; the smallest stride is 1."
        }
        Code::PaddingTooLarge => {
            "A pooling layer is padded by more than half its kernel. Such a window could lie entirely in the
padding, with no input to pool; PyTorch rejects it (\"pad should be at most half of kernel size\").

Example:

    network stem {
        input [64, 112, 112]
        pool1 = max_pool(3, stride = 2, pad = 2)
    }

A 3x3 window takes at most `pad = 1`."
        }
        Code::UnknownName => {
            "An expression uses a name that is not a parameter in scope. Inside a block only that block's own
parameters are visible, not the parameters of the network that uses it: pass values down as arguments.

Example:

    block head {
        fc = linear(num_classes)
    }

    network classifier(num_classes = 1000) {
        input [1024]
        head = head
    }

`head` cannot see the network's `num_classes`; declare `block head(num_classes)` and call
`head = head(num_classes)`. A misspelt parameter gets the closest name as help."
        }
        Code::Overflow => {
            "A number does not fit: an integer literal beyond 64 bits, parameter arithmetic that overflows, a
concat whose channel count overflows, or a flatten or output size that overflows.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(99999999999999999999, 7)
    }

Integers are 64-bit (at most 9223372036854775807); sizes are further limited to 2^31 - 1 (see E0115)."
        }
        Code::InvalidArithmetic => {
            "Arithmetic has no result: an integer division or remainder by zero, or float arithmetic that gives an
infinite or undefined number. Integer `/` rounds down and `%` is the remainder, as for sizes in PyTorch.

Example:

    block grouped(out, groups = 0) {
        conv = conv2d(out / groups, 1)
    }

    network stem {
        input [64, 56, 56]
        conv2 = grouped(192)
    }

`groups` defaults to 0 and the division has no value; the label shows the operands (192 / 0)."
        }
        Code::ExpressionType => {
            "Arithmetic is applied to values that are not numbers (bools, `same`, pairs), or a list is not a pair of
integers.

Example:

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, pad = same + 1)
    }

`same` is a padding mode, not a number. Lists are written only as `[height, width]` pairs of integers."
        }
        Code::DuplicateDefinition => {
            "Two blocks or networks share a name, or a block or network takes the name of a built-in layer. Calls
would be ambiguous, so the second definition (or the one named like a built-in) is reported and not checked.

Example:

    block relu(slope = 0) {
        identity
    }

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, stride = 2, pad = 3) -> relu
    }

Rename the block (`leaky_relu`), or remove the duplicate."
        }
        Code::DuplicateName => {
            "Two statements at the same level have the same name. Names become struct fields and weight names
(`inception3a.branch2.0.weight`), so they must be unique within a body; the branches of an unnamed
`concat`/`add` share the level of the statement around them.

Example:

    network stem {
        input [64, 56, 56]
        conv2 = conv2d(64, 1) -> relu
        conv2 = conv2d(192, 3, pad = 1) -> relu
    }

GoogLeNet calls the first one `conv2_reduce`."
        }
        Code::RecursiveBlock => {
            "A block uses itself, directly or through other blocks. Blocks expand in place, so the expansion would
never end; the note shows the cycle.

Example:

    block stage_a(c) {
        conv = conv2d(c, 3, pad = 1)
        inner = stage_b(c)
    }

    block stage_b(c) {
        conv = conv2d(c, 3, pad = 1)
        inner = stage_a(c)
    }

    network looping {
        input [64, 56, 56]
        body = stage_a(64)
    }

To repeat a block, write its uses one after another (`stage1 = residual(64)`, `stage2 = residual(64)`)."
        }
        Code::MisplacedInput => {
            "A network must begin with exactly one `input [C, H, W]` (or `input [features]`) statement giving the
shape of one sample; a block has no input statement, because it reads whatever its caller feeds it.

Example:

    network stem {
        conv1 = conv2d(64, 7, stride = 2, pad = 3)
    }

The first layer has no input size to start from; add `input [3, 224, 224]` as the network's first line."
        }
        Code::UnnamedWeights => {
            "A statement that contains a layer with weights (conv2d, linear, batch_norm) has no name. Its name
becomes the field of the generated model and the prefix of its weight names, which must match a PyTorch
`state_dict`. Parameter-free layers (relu, pools, flatten, dropout) and unnamed `concat`/`add` groups (whose
branches are named) need no name.

Example:

    network stem {
        input [3, 224, 224]
        conv2d(64, 7, stride = 2, pad = 3)
    }

Write `conv1 = conv2d(64, 7, stride = 2, pad = 3)`. The help writes the statement with a name taken from its
first part with weights (`conv`, `bn`, `fc`, or the block it calls: `downsample = downsample(...)`); any
name will do, keywords such as `block` included, as long as it matches the checkpoint.

When a block's layers should be named at the caller's level (torchvision's residual blocks name `conv1`,
`bn1`, ... beside `downsample`, with no level for the residual branch), spread it: `..branch(c, stride)`.
An unnamed sequence `{ conv1 = ... bn1 = ... }` does the same for layers written in place."
        }
        Code::InvalidSideOutput => {
            "A side output (`side NAME = CHAIN from SOURCE`, a training-only head such as an auxiliary classifier)
reads a source that is not an earlier named statement of the network's main path, or appears inside a block.

Example:

    network trunk {
        input [480, 14, 14]
        inception4a = conv2d(512, 1)
        side aux1 = global_avg_pool -> flatten -> linear(1000) from inception4
        pool = global_avg_pool
    }

The source is `inception4a`; the help suggests the closest name."
        }
        Code::MissingNetworkDefault => {
            "A network parameter has no default. A network is checked, summarised and compiled for concrete sizes,
so each parameter needs the value it is checked with (generated code can still take other values through its
Config).

Example:

    network classifier(num_classes) {
        input [1024]
        fc = linear(num_classes)
    }

Write `network classifier(num_classes = 1000)`."
        }
        Code::DuplicateParameter => {
            "A block or network declares the same parameter twice.

Example:

    block basic_conv(out, k, stride = 1, stride = 2) {
        conv = conv2d(out, k, stride = stride)
    }

    network stem {
        input [3, 224, 224]
        conv1 = basic_conv(64, 7)
    }

Keep one `stride`."
        }
        Code::ShapeRank => {
            "A shape has neither three sizes (`[C, H, W]`, a feature map) nor one (`[features]`, a flat vector).
The batch axis is implied and never written.

Example:

    network stem {
        input [1, 3, 224, 224]
        conv1 = conv2d(64, 7, stride = 2, pad = 3)
    }

PyTorch's `[N, C, H, W]` becomes `input [3, 224, 224]` here."
        }
        Code::Unsupported => {
            "The file checks, but code generation cannot express one of its constructs in Rust. The generated
model keeps parameters as parameters (a Config, and typed constructor arguments per block), so some forms
that the checker can evaluate for one set of values have no generated equivalent; the message names the
construct. For instance, an input shape that depends on a network parameter is not generated yet.

Example:

    network stem(size = 224) {
        input [3, size, size]
        conv1 = conv2d(64, 7, stride = 2, pad = 3)
    }

Write the input's sizes as numbers (`input [3, 224, 224]`)."
        }
        Code::PoolDropsInput => {
            "A pooling layer in floor mode (PyTorch's default, `ceil = false`) never reaches the last rows or
columns of its input: floor((n + 2 x pad - k) / stride) + 1 windows do not cover all n. This is a warning,
since it may be intended, but it is a common way to disagree with Caffe-trained models, which round up.

Example:

    network stem {
        input [64, 112, 112]
        pool1 = max_pool(3, stride = 2)
    }

floor((112 - 3) / 2) + 1 = 55 windows cover 111 of the 112 rows. GoogLeNet (Caffe and torchvision) uses
`max_pool(3, stride = 2, ceil = true)`, which gives 56."
        }
        Code::UnusedBlock => {
            "A block is not used by any network, directly or through other blocks. With no input shape, an unused
block is checked only for what needs none: the layers and blocks it calls, their arguments, its names. A file
of blocks alone is a library: its blocks are checked the same way, and not reported unused.

Example:

    block old_stem {
        conv = conv2d(96, 11, stride = 4)
    }

    network stem {
        input [3, 224, 224]
        conv1 = conv2d(64, 7, stride = 2, pad = 3)
    }

Remove `old_stem`, or use it."
        }
        Code::UnusedParameter => {
            "A block or network parameter is never used in its body, its declared sizes or other parameters'
defaults. Usually a value meant to reach a layer does not.

Example:

    block basic_conv(out, k, dilation = 1) {
        conv = conv2d(out, k, bias = false)
    }

    network stem {
        input [3, 224, 224]
        conv1 = basic_conv(64, 7)
    }

`dilation` never reaches the convolution: write `conv2d(out, k, dilation = dilation, bias = false)`, or remove
the parameter."
        }
    }
}
