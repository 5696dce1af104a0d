//! Absurd sizes. Every size argument outside its range (`out`, `kernel`, `stride`, `dilation` at least 1, `pad` at
//! least 0, all at most 2^31 − 1) is one E0115 naming the argument, however far out (0, negatives, 2^31, 2^63 −
//! 1, i64::MIN); sizes inside the limits whose arithmetic overflows 64 bits are E0121; nothing panics. Inside
//! the limits, output sizes follow PyTorch's formulas, computed here in 128-bit arithmetic so the huge cases
//! are exact.

use archc::ir::Shape;
use archc::{Checked, Code, SourceKind};
use proptest::prelude::*;

// The one limit, from archc-shape; the messages tested below spell it out as 2147483647 (2^31 - 1).
use archc::check::MAX_DIM;

fn compile(source: &str) -> Checked {
    let checked = archc::compile(SourceKind::Arch, source);
    // Whatever the values, the diagnostics render.
    let _ = archc::render::render("limits.arch", source, &checked.diagnostics, false);
    checked
}

fn error_codes(checked: &Checked) -> Vec<Code> {
    checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

/// Any `i64`, weighted so that about a quarter of the layers are entirely valid (small values) and the rest
/// have zeros, negatives or values at and past the edges of the range.
fn size_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        40 => 1i64..=6,
        2 => Just(0),
        2 => -3i64..0,
        1 => prop::sample::select(vec![
            MAX_DIM - 1,
            MAX_DIM,
            MAX_DIM + 1,
            1 << 32,
            1 << 62,
            i64::MAX,
            i64::MIN,
        ]),
        1 => any::<i64>(),
    ]
}

fn size_pair() -> impl Strategy<Value = [i64; 2]> {
    (size_value(), size_value()).prop_map(|(h, w)| [h, w])
}

/// Padding: mostly 0 or 1, so that pools often take it (at most half the kernel).
fn pad_pair() -> impl Strategy<Value = [i64; 2]> {
    let pad = prop_oneof![6 => 0i64..=1, 1 => size_value()];
    (pad.clone(), pad).prop_map(|(h, w)| [h, w])
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Conv,
    MaxPool,
    AvgPool,
}

#[derive(Debug, Clone)]
struct Layer {
    kind: Kind,
    out: i64,
    kernel: [i64; 2],
    stride: [i64; 2],
    pad: [i64; 2],
    /// Not an argument of `avg_pool`.
    dilation: [i64; 2],
    ceil: bool,
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        prop::sample::select(vec![Kind::Conv, Kind::MaxPool, Kind::AvgPool]),
        size_value(),
        size_pair(),
        size_pair(),
        pad_pair(),
        size_pair(),
        any::<bool>(),
    )
        .prop_map(|(kind, out, kernel, stride, pad, dilation, ceil)| Layer {
            kind,
            out,
            kernel,
            stride,
            pad,
            dilation,
            ceil,
        })
}

/// A literal for an `i64`: `i64::MIN` has no positive literal, so it is written as an expression.
fn pair_source([h, w]: [i64; 2]) -> String {
    let one = |v: i64| {
        if v == i64::MIN {
            format!("-{} - 1", i64::MAX)
        } else {
            v.to_string()
        }
    };
    format!("[{}, {}]", one(h), one(w))
}

impl Layer {
    fn source(&self) -> String {
        let (kernel, stride, pad, dilation) = (
            pair_source(self.kernel),
            pair_source(self.stride),
            pair_source(self.pad),
            pair_source(self.dilation),
        );
        let out = if self.out == i64::MIN {
            format!("-{} - 1", i64::MAX)
        } else {
            self.out.to_string()
        };
        match self.kind {
            Kind::Conv => format!(
                "conv2d({out}, {kernel}, stride = {stride}, pad = {pad}, dilation = {dilation})"
            ),
            Kind::MaxPool => format!(
                "max_pool({kernel}, stride = {stride}, pad = {pad}, dilation = {dilation}, ceil = {})",
                self.ceil
            ),
            Kind::AvgPool => format!(
                "avg_pool({kernel}, stride = {stride}, pad = {pad}, ceil = {})",
                self.ceil
            ),
        }
    }

    /// How many arguments have an axis outside `[min, MAX_DIM]`: each is one E0115.
    fn invalid_arguments(&self) -> usize {
        let bad = |v: i64, min: i64| v < min || v > MAX_DIM;
        let bad_pair = |p: [i64; 2], min: i64| bad(p[0], min) || bad(p[1], min);
        let mut count = usize::from(bad_pair(self.kernel, 1))
            + usize::from(bad_pair(self.stride, 1))
            + usize::from(bad_pair(self.pad, 0));
        if self.kind != Kind::AvgPool {
            count += usize::from(bad_pair(self.dilation, 1));
        }
        if self.kind == Kind::Conv {
            count += usize::from(bad(self.out, 1));
        }
        count
    }

    /// PyTorch's output size along one axis for valid arguments, or `None` where it raises because the window
    /// does not fit. Convolution: `floor((n + 2p − d(k − 1) − 1) / s) + 1` when the numerator is not negative.
    /// Pooling (ATen's `pooling_output_shape`): `div_floor(n + 2p − d(k − 1) − 1 + (ceil ? s − 1 : 0), s) + 1`,
    /// less one in ceil mode when the last window would start at or after `n + p`; an output below 1 raises.
    fn axis(&self, axis: usize, n: i128) -> Option<i128> {
        let k = self.kernel[axis] as i128;
        let s = self.stride[axis] as i128;
        let p = self.pad[axis] as i128;
        let d = match self.kind {
            Kind::AvgPool => 1,
            _ => self.dilation[axis] as i128,
        };
        let numerator = n + 2 * p - d * (k - 1) - 1;
        if self.kind == Kind::Conv {
            return (numerator >= 0).then(|| numerator / s + 1);
        }
        let mut out = (numerator + if self.ceil { s - 1 } else { 0 }).div_euclid(s) + 1;
        if self.ceil && (out - 1) * s >= n + p {
            out -= 1;
        }
        (out >= 1).then_some(out)
    }
}

fn input() -> impl Strategy<Value = [i64; 3]> {
    let size = prop_oneof![2 => 1i64..=40, 1 => Just(MAX_DIM)];
    (
        prop_oneof![2 => 1i64..=8, 1 => Just(MAX_DIM)],
        size.clone(),
        size,
    )
        .prop_map(|(c, h, w)| [c, h, w])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// One layer with arbitrary 64-bit arguments, then `flatten`: a shape that matches the formulas, or exactly
    /// the errors the arguments call for.
    #[test]
    fn any_size_arguments_give_the_formula_or_an_error(input in input(), layer in layer()) {
        let source = format!(
            "network n {{\n    input [{}, {}, {}]\n    l = {}\n    f = flatten\n}}\n",
            input[0], input[1], input[2],
            layer.source()
        );
        let checked = compile(&source);
        let errors = error_codes(&checked);

        let invalid = layer.invalid_arguments();
        if invalid > 0 {
            prop_assert_eq!(errors, vec![Code::InvalidArgument; invalid], "{}", source);
            return Ok(());
        }
        let pool = layer.kind != Kind::Conv;
        if pool && (0..2).any(|axis| layer.pad[axis] > layer.kernel[axis] / 2) {
            prop_assert_eq!(errors, vec![Code::PaddingTooLarge], "{}", source);
            return Ok(());
        }
        let (Some(h), Some(w)) = (layer.axis(0, input[1] as i128), layer.axis(1, input[2] as i128)) else {
            prop_assert_eq!(errors, vec![Code::OutputTooSmall], "{}", source);
            return Ok(());
        };
        let c = if pool { input[0] as i128 } else { layer.out as i128 };
        // Flatten multiplies the three sizes; past 64 bits that is an overflow error, not a wrapped count.
        let features = c * h * w;
        if features > u64::MAX as i128 {
            prop_assert_eq!(errors, vec![Code::Overflow], "{}", source);
            return Ok(());
        }
        prop_assert!(errors.is_empty(), "{:?}\n{}", errors, source);
        let network = &checked.networks[0];
        prop_assert_eq!(
            network.body[0].output,
            Shape::Map { c: c as u64, h: h as u64, w: w as u64 },
            "{}", source
        );
        prop_assert_eq!(network.output, Shape::Flat { features: features as u64 }, "{}", source);
        // The summary of any network that checks is computed without overflow panics.
        let summary = archc::summary::summarize(network);
        prop_assert!(summary.params_total >= summary.params_inference);
    }
}

#[test]
fn every_way_out_of_range_is_one_invalid_argument_error_naming_the_argument() {
    let cases = [
        (
            "conv2d(4, 0)",
            "`kernel` of conv2d: must be at least 1, found 0",
        ),
        (
            "conv2d(4, -3)",
            "`kernel` of conv2d: must be at least 1, found -3",
        ),
        (
            "conv2d(4, 2147483648)",
            "`kernel` of conv2d: 2147483648 is larger than the limit 2147483647",
        ),
        (
            "conv2d(4, [3, 9223372036854775807])",
            "`kernel` of conv2d: 9223372036854775807 is larger than the limit 2147483647",
        ),
        (
            "conv2d(4, 3, stride = 0)",
            "`stride` of conv2d: must be at least 1, found 0",
        ),
        (
            "conv2d(4, 3, stride = 4294967296)",
            "`stride` of conv2d: 4294967296 is larger than the limit 2147483647",
        ),
        (
            "conv2d(4, 3, dilation = -9223372036854775807 - 1)",
            "`dilation` of conv2d: must be at least 1, found -9223372036854775808",
        ),
        (
            "conv2d(4, 3, pad = -1)",
            "`pad` of conv2d: must be non-negative, found -1",
        ),
        (
            "conv2d(0, 3)",
            "`out` of conv2d: must be at least 1, found 0",
        ),
        (
            "max_pool(3, stride = [1, 0])",
            "`stride` of max_pool: must be at least 1, found 0",
        ),
        (
            "avg_pool(2147483648)",
            "`kernel` of avg_pool: 2147483648 is larger than the limit 2147483647",
        ),
        (
            "linear(-1)",
            "`out` of linear: must be at least 1, found -1",
        ),
    ];
    for (layer, message) in cases {
        let input = if layer.starts_with("linear") {
            "[8]"
        } else {
            "[3, 8, 8]"
        };
        let source = format!("network n {{\n    input {input}\n    l = {layer}\n}}\n");
        let checked = compile(&source);
        assert_eq!(error_codes(&checked), [Code::InvalidArgument], "{layer}");
        assert_eq!(checked.diagnostics[0].message, message, "{layer}");
    }
}

#[test]
fn an_input_size_out_of_range_is_an_error() {
    for (shape, found) in [
        ("[0, 8, 8]", "0"),
        ("[3, -8, 8]", "-8"),
        ("[3, 8, 2147483648]", "2147483648"),
    ] {
        let checked = compile(&format!("network n {{\n    input {shape}\n}}\n"));
        assert!(checked.has_errors(), "{shape}");
        assert!(
            checked.diagnostics[0].message.contains(found),
            "{shape}: {:?}",
            checked.diagnostics[0]
        );
    }
}

#[test]
fn flattening_past_64_bits_is_an_overflow_error() {
    // (2^31 − 1)^3 ≈ 2^93: past u64.
    let source =
        "network n {\n    input [2147483647, 2147483647, 2147483647]\n    f = flatten\n}\n";
    let checked = compile(source);
    assert_eq!(error_codes(&checked), [Code::Overflow]);
    assert!(checked.diagnostics[0].message.contains("flattening"));
    // (2^31 − 1)^2 < 2^62: fits, and is exact.
    let source = "network n {\n    input [2147483647, 1, 1]\n    c = conv2d(2147483647, 1, pad = [1073741823, 0])\n    f = flatten\n}\n";
    let checked = compile(source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    // Height 1 + 2 · 1073741823 = 2147483647.
    assert_eq!(
        checked.networks[0].output,
        Shape::Flat {
            features: 2_147_483_647 * 2_147_483_647
        }
    );
}

#[test]
fn doubling_channels_past_64_bits_is_an_overflow_error() {
    // Each `concat` of two identities doubles the channels: 2^31 − 1 doubled 33 times is below 2^64
    // ((2^31 − 1) · 2^33 = 2^64 − 2^33), doubled 34 times it is not.
    let network = |doublings: usize| {
        let chain = vec!["concat { a = identity  b = identity }"; doublings].join(" -> ");
        format!("network n {{\n    input [2147483647, 1, 1]\n    g = {chain}\n}}\n")
    };
    let checked = compile(&network(33));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    assert_eq!(
        checked.networks[0].output,
        Shape::Map {
            c: 2_147_483_647u64 << 33,
            h: 1,
            w: 1
        }
    );
    let checked = compile(&network(34));
    assert_eq!(error_codes(&checked), [Code::Overflow]);
}

#[test]
fn parameter_arithmetic_past_64_bits_is_an_overflow_error() {
    for expression in [
        "9223372036854775807 + 1",
        "-9223372036854775807 - 2",
        "4294967296 * 4294967296",
        "(-9223372036854775807 - 1) / -1",
        "(-9223372036854775807 - 1) % -1",
        "-(-9223372036854775807 - 1)",
    ] {
        let source =
            format!("network n {{\n    input [3, 8, 8]\n    l = conv2d(4, {expression})\n}}\n");
        assert_eq!(
            error_codes(&compile(&source)),
            [Code::Overflow],
            "{expression}"
        );
    }
}
