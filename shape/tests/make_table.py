#!/usr/bin/env python3
"""Records PyTorch's output sizes for a sweep of convolution, pooling and transposed-convolution settings into
pytorch_table.csv, the independent source that tests/pytorch_table.rs checks archc-shape's formulas against.

Regenerate (from the repository root; torch is needed only here, never by the Rust build or its tests):

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch
    /tmp/torch-venv/bin/python shape/tests/make_table.py > shape/tests/pytorch_table.csv

Each row runs one PyTorch call on a square input with the same settings on both axes and records the output
size along one axis, or the kind of error PyTorch raised. Columns:

    op        conv | conv_same | max_pool | avg_pool | conv_transpose
    input     input size, 1..12
    kernel    1..5
    stride    1..3 (conv_same: 1)
    pad       0..3 on each side; for conv_same the padding PyTorch put before the input, measured (see below),
              or - where the measurement cannot see it (padding as large as the input)
    dilation  1..3 (avg_pool: 1)
    extra     ceil_mode 0/1 for the pools, output_padding 0..2 for conv_transpose, 0 otherwise
    result    the output size, or err:window (no window fits), err:padding (pool padding above half the kernel),
              err:output_padding (output padding not below stride or dilation), err:too_small (transposed
              convolution output below 1)
"""

import sys
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

INPUTS = range(1, 13)
KERNELS = range(1, 6)
STRIDES = range(1, 4)
PADS = range(0, 4)
DILATIONS = range(1, 4)

# Substrings of PyTorch's error messages, and the tag each is recorded as. Any other error stops the script,
# so a changed message is noticed rather than recorded wrongly.
ERRORS = [
    ("Kernel size can't be greater than actual input size", "err:window"),
    ("pad should be", "err:padding"),
    ("output padding must be smaller than either stride or dilation", "err:output_padding"),
]


def classify(op, error):
    message = str(error)
    for needle, tag in ERRORS:
        if needle in message:
            return tag
    if "Output size is too small" in message:
        return "err:too_small" if op == "conv_transpose" else "err:window"
    sys.exit(f"{op}: unexpected PyTorch error: {message}")


def record(op, n, k, s, p, d, extra, run):
    try:
        y = run()
    except RuntimeError as error:
        result = classify(op, error)
    else:
        assert y.shape[2] == y.shape[3], (op, n, k, s, p, d, extra, y.shape)
        result = str(y.shape[3])
    print(f"{op},{n},{k},{s},{p},{d},{extra},{result}")


def main():
    # oneDNN's transposed convolution reports a negative output size as "could not construct a memory
    # descriptor"; without it PyTorch's own shape checks run and say what is wrong.
    torch.backends.mkldnn.enabled = False
    print(f"# Recorded from PyTorch {torch.__version__} by shape/tests/make_table.py; see that script.")
    print("op,input,kernel,stride,pad,dilation,extra,result")
    for n in INPUTS:
        x = torch.ones(1, 1, n, n)
        for k in KERNELS:
            w = torch.ones(1, 1, k, k)
            for s in STRIDES:
                for p in PADS:
                    for d in DILATIONS:
                        record("conv", n, k, s, p, d, 0, lambda: F.conv2d(x, w, None, s, p, d))
                        for ceil in (0, 1):
                            record(
                                "max_pool", n, k, s, p, d, ceil,
                                lambda: F.max_pool2d(x, k, s, p, d, ceil_mode=bool(ceil)),
                            )
                        for op in range(0, 3):
                            record(
                                "conv_transpose", n, k, s, p, d, op,
                                lambda: F.conv_transpose2d(x, w, None, s, p, op, 1, d),
                            )
                    for ceil in (0, 1):
                        record(
                            "avg_pool", n, k, s, p, 1, ceil,
                            lambda: F.avg_pool2d(x, k, s, p, ceil_mode=bool(ceil)),
                        )
            # padding='same' (stride 1 only). The padding before the input is measured: a kernel whose only
            # non-zero tap is the first reads input (i - before, j - before) at output (i, j), so over an input
            # whose every row is 1, 2, ..., n the last output row starts with `before` zeros (PyTorch pads with
            # zeros) and then counts up from 1. A padding of n or more leaves only zeros: recorded as `-`.
            ramp = torch.arange(1, n + 1, dtype=torch.float32).expand(1, 1, n, n).contiguous()
            first_tap = torch.zeros(1, 1, k, k)
            first_tap[0, 0, 0, 0] = 1.0
            for d in DILATIONS:
                y = F.conv2d(ramp, first_tap, None, 1, "same", d)
                row = y[0, 0, -1].tolist()
                before = next((i for i, v in enumerate(row) if v != 0.0), None)
                if before is not None:
                    expected = [0.0] * before + [float(v) for v in range(1, len(row) - before + 1)]
                    assert row == expected, (n, k, d, row)
                pad = "-" if before is None else before
                print(f"conv_same,{n},{k},1,{pad},{d},0,{y.shape[3]}")

if __name__ == "__main__":
    main()
