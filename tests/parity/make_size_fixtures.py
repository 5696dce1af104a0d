#!/usr/bin/env python3
"""Reference outputs of torchvision's GoogLeNet (widths / 8, tests/parity/torchvision_tiny.*) at input sizes
other than the 96x96 that torchvision_tiny.arch declares: tests/input_sizes.rs runs the generated model at
these sizes and compares.

Reads the committed torchvision_tiny.weights.safetensors (so run make_fixtures.py first if that changed),
builds the model with make_fixtures.build_torchvision (torchvision's own classes), and writes
torchvision_tiny.sizes.safetensors:

    input_<H>x<W>          N x 3 x H x W, float32
    eval_logits_<H>x<W>    model.eval() output
    train_logits_<H>x<W>, train_aux1_<H>x<W>, train_aux2_<H>x<W>
                           model.train() outputs (every dropout p = 0; batch norm uses batch statistics),
                           each from a fresh copy of the weights

for 15x15 (torchvision's documented smallest GoogLeNet input: the aux heads then pool a 1x1 map adaptively
to 4x4), 61x77 (odd, not square, not a multiple of the network's stride 32), both batch 2, and 113x100
(larger than declared), batch 1. It also asserts
that PyTorch refuses 14x14 in maxpool3 ("Calculated output size: (60x0x0). Output size is too small").

    /work/venv-ref/bin/python tests/parity/make_size_fixtures.py

It also writes paper_tiny.sizes.safetensors: the paper's GoogLeNet (paper_tiny.weights.safetensors) at 127x158,
the two edges of the sizes it runs at (its 4x4/1 pool5 and 5x5/3 aux pools feed flatten -> linear, so it runs
only where they see their declared maps: 127..=158 per axis), with `input`, `eval_logits`, `train_logits`,
`train_aux1`, `train_aux2` (dropout p = 0), and asserts that PyTorch refuses 126x126 and 159x159.

float32, CPU, one thread, fixed seed: running it twice gives byte-identical files.
"""

import copy
import os

import torch
from safetensors.torch import load_file, save_file

from make_fixtures import HERE, PaperGoogLeNet, build_torchvision

# (height, width, batch): batch 2 where batch norm's training statistics need it (a 1x1 map at 15x15).
SIZES = [(15, 15, 2), (61, 77, 2), (113, 100, 1)]


def main():
    torch.set_num_threads(1)
    weights = load_file(os.path.join(HERE, "torchvision_tiny.weights.safetensors"))
    model = build_torchvision(True, 10).float()
    model.load_state_dict(weights)
    gen = torch.Generator().manual_seed(12)
    out = {}
    for h, w, batch in SIZES:
        tag = f"{h}x{w}"
        x = torch.randn(batch, 3, h, w, generator=gen, dtype=torch.float32)
        out[f"input_{tag}"] = x
        model.eval()
        with torch.no_grad():
            out[f"eval_logits_{tag}"] = model(x)
        train = copy.deepcopy(model)
        train.train()
        with torch.no_grad():
            outputs = train(x)
        # torchvision: GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
        out[f"train_logits_{tag}"] = outputs.logits
        out[f"train_aux1_{tag}"] = outputs.aux_logits1
        out[f"train_aux2_{tag}"] = outputs.aux_logits2
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 14, 14))
    except RuntimeError as error:
        message = str(error)
        assert "(60x1x1)" in message and "(60x0x0)" in message and "too small" in message, message
    else:
        raise AssertionError("torchvision's GoogLeNet ran at 14x14")
    save(out, "torchvision_tiny.sizes.safetensors")
    paper()


def paper():
    weights = load_file(os.path.join(HERE, "paper_tiny.weights.safetensors"))
    kw = dict(div=8, num_classes=10, last_map=4, aux_map=2, dropout=0.0, dropout_aux=0.0)
    model = PaperGoogLeNet(**kw).float()
    model.load_state_dict(weights)
    gen = torch.Generator().manual_seed(13)
    # Scaled like make_fixtures.py's paper input, so that LRN matters.
    x = torch.randn(1, 3, 127, 158, generator=gen, dtype=torch.float32) * 40.0
    out = {"input": x}
    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x)
    model.train()
    with torch.no_grad():
        out["train_logits"], out["train_aux1"], out["train_aux2"] = model(x)
    for size in (126, 159):
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size))
        except RuntimeError as error:
            assert "shapes cannot be multiplied" in str(error), error
        else:
            raise AssertionError(f"the paper GoogLeNet ran at {size}x{size}")
    save(out, "paper_tiny.sizes.safetensors")


def save(tensors, name):
    path = os.path.join(HERE, name)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)
    print(f"wrote {path} ({os.path.getsize(path):,} B)")


if __name__ == "__main__":
    main()
