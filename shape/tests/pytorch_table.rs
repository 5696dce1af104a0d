//! The formulas against PyTorch itself: `pytorch_table.csv` holds the output size (or the kind of error) that
//! PyTorch gave for every convolution, `padding='same'` convolution, max pool, average pool and transposed
//! convolution in a sweep of small settings (input 1..12, kernel 1..5, stride 1..3, padding 0..3, dilation
//! 1..3, ceil mode off and on, output padding 0..2): 14,580 rows. The table is the independent source: it was
//! recorded by `make_table.py` beside this file (its docstring says how to regenerate it), and nothing in the
//! Rust build runs Python. Every row must agree, both the size and whether PyTorch accepts the settings.

use archc_shape::{conv_output, conv_transpose_output, pool_output, same_padding, SizeError};

const TABLE: &str = include_str!("pytorch_table.csv");

/// What PyTorch did with one row's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Size(u64),
    /// No window fits the padded input.
    Window,
    /// Pool padding above half the kernel.
    Padding,
    /// Transposed convolution output padding not below the stride or the dilation.
    OutputPadding,
    /// Transposed convolution output below 1.
    TooSmall,
}

fn parse_outcome(text: &str) -> Outcome {
    match text {
        "err:window" => Outcome::Window,
        "err:padding" => Outcome::Padding,
        "err:output_padding" => Outcome::OutputPadding,
        "err:too_small" => Outcome::TooSmall,
        size => Outcome::Size(
            size.parse()
                .unwrap_or_else(|_| panic!("bad result `{size}`")),
        ),
    }
}

/// The outcome archc-shape predicts, in the table's terms.
fn outcome(result: Result<u64, SizeError>) -> Outcome {
    match result {
        Ok(size) => Outcome::Size(size),
        Err(SizeError::WindowTooLarge { .. }) => Outcome::Window,
        Err(SizeError::PaddingTooLarge { .. }) => Outcome::Padding,
        Err(SizeError::OutputPaddingTooLarge { .. }) => Outcome::OutputPadding,
        Err(SizeError::PaddingRemovesOutput { .. }) => Outcome::TooSmall,
        Err(other) => panic!("no PyTorch outcome for {other:?}"),
    }
}

#[test]
fn every_row_of_the_pytorch_table_agrees() {
    let mut rows = TABLE.lines().filter(|line| !line.starts_with('#'));
    assert_eq!(
        rows.next(),
        Some("op,input,kernel,stride,pad,dilation,extra,result")
    );
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    let mut rejected = 0;
    let mut mismatches = Vec::new();
    for row in rows {
        let fields: Vec<&str> = row.split(',').collect();
        let [op, n, k, s, p, d, extra, result] = fields[..] else {
            panic!("row `{row}` does not have 8 fields");
        };
        let number = |text: &str| -> u64 { text.parse().unwrap_or_else(|_| panic!("`{row}`")) };
        let (n, k, s, d, extra) = (number(n), number(k), number(s), number(d), number(extra));
        let expected = parse_outcome(result);
        let actual = match op {
            "conv" => outcome(conv_output(n, k, s, (number(p), number(p)), d)),
            "max_pool" => outcome(pool_output(n, k, s, number(p), d, extra == 1)),
            "avg_pool" => outcome(pool_output(n, k, s, number(p), 1, extra == 1)),
            "conv_transpose" => outcome(conv_transpose_output(n, k, s, number(p), d, extra)),
            "conv_same" => {
                let (before, after) = same_padding(k, s, d).expect("stride 1");
                // `-`: PyTorch's padding was too large for make_table.py to see; only the size is compared.
                if p != "-" && before != number(p) {
                    mismatches.push(format!("{row}: archc pads {before} before the input"));
                }
                outcome(conv_output(n, k, s, (before, after), d))
            }
            other => panic!("unknown op `{other}` in `{row}`"),
        };
        if actual != expected {
            mismatches.push(format!("{row}: archc gives {actual:?}"));
        }
        if !matches!(expected, Outcome::Size(_)) {
            rejected += 1;
        }
        *checked.entry(op).or_default() += 1;
    }
    assert!(
        mismatches.is_empty(),
        "{} rows disagree with PyTorch:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The whole sweep is there: 12 inputs x 5 kernels x 3 strides x 4 paddings x 3 dilations, times 2 ceil
    // modes for max pooling and 3 output paddings for transposed convolution.
    let full = 12 * 5 * 3 * 4 * 3;
    assert_eq!(checked["conv"], full);
    assert_eq!(checked["max_pool"], full * 2);
    assert_eq!(checked["conv_transpose"], full * 3);
    assert_eq!(checked["avg_pool"], 12 * 5 * 3 * 4 * 2);
    assert_eq!(checked["conv_same"], 12 * 5 * 3);
    // Both outcomes are well represented, so accepting or rejecting everything could not pass.
    assert!(rejected > 3000, "{rejected} rejected rows");
}

/// The table's answer to the question the checker and the runtime used to disagree on: a dilated max pool
/// takes no more padding than half its kernel, although its window spans more.
#[test]
fn the_table_shows_dilation_does_not_raise_the_pool_padding_limit() {
    // Kernel 2, dilation 3: the window spans 4, half of which is 2, but PyTorch rejects padding 2.
    assert!(TABLE.contains("\nmax_pool,8,2,1,2,3,0,err:padding\n"));
    assert!(TABLE.contains("\nmax_pool,8,2,1,1,3,0,7\n"));
    assert_eq!(
        pool_output(8, 2, 1, 2, 3, false),
        Err(SizeError::PaddingTooLarge { pad: 2, kernel: 2 })
    );
}
