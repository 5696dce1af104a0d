#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for archc's Rust parity tests.

Default mode writes four small, committed files next to this script:

    torchvision_tiny.weights.safetensors   torchvision GoogLeNet, widths / 8
    torchvision_tiny.io.safetensors        input + reference outputs
    paper_tiny.weights.safetensors         paper (Caffe bvlc_googlenet) GoogLeNet, widths / 8
    paper_tiny.io.safetensors              input + reference outputs

`--full --out DIR` writes the same four files (prefix `torchvision_full` /
`paper_full`) for the full-size networks at 224x224, batch 1. Those are tens
of MB and are not committed.

Weight tensor names are exactly the PyTorch state_dict names (torchvision's
names for the torchvision model, including the int64 `num_batches_tracked`
buffers). The io file holds:

    input                          N x 3 x H x W, float32
    eval_logits                    model.eval() output
    train_logits, train_aux1, train_aux2
                                   model.train() outputs with every dropout p = 0
                                   (torchvision BN uses batch statistics here)
    after_train.<bn buffer name>   (torchvision only) a few BN running stats after
                                   that single training forward (momentum 0.1,
                                   unbiased batch variance)

The weights file is a snapshot taken BEFORE the training forward.

Everything is float32 on CPU, single-threaded, with fixed seeds; running the
script twice produces byte-identical files.
"""

import argparse
import copy
import math
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file
from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception, InceptionAux

HERE = os.path.dirname(os.path.abspath(__file__))

# (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) -- torchvision / paper table 1.
FULL_INCEPTION = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
# Widths / 8 (every full width above is divisible by 8).
TINY_INCEPTION = {k: tuple(c // 8 for c in v) for k, v in FULL_INCEPTION.items()}
assert TINY_INCEPTION["inception3a"] == (24, 8, 12, 16, 2, 4, 4)
assert TINY_INCEPTION["inception5b"] == (104, 48, 24, 48, 6, 16, 16)


def inception_out(cfg):
    _, c1, _, c3, _, c5, pp = cfg
    return c1 + c3 + c5 + pp


def check_channel_chain(cfgs):
    """Each block's in-channels must equal the previous block's output."""
    order = list(cfgs)
    for prev, cur in zip(order, order[1:]):
        assert cfgs[cur][0] == inception_out(cfgs[prev]), (prev, cur)


check_channel_chain(FULL_INCEPTION)
check_channel_chain(TINY_INCEPTION)


# --------------------------------------------------------------------------
# Deterministic custom initialisation
# --------------------------------------------------------------------------

def custom_init(model, gen, linear_gain):
    """Non-trivial init so that every parameter/buffer matters numerically.

    conv weight   ~ N(0, sqrt(2 / fan_in))            (He)
    linear weight ~ N(0, 1 / sqrt(fan_in)) * linear_gain[name] (default 1)
    any bias      ~ U(-0.2, 0.2)
    BN weight     ~ U(0.5, 1.5), BN bias ~ U(-0.2, 0.2)
    BN running_mean ~ U(-0.2, 0.2), running_var ~ U(0.5, 1.5)
    Modules are visited in named_modules() order with one generator.
    """

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=gen, dtype=torch.float64).to(t.dtype) * (hi - lo) + lo)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype) * std)

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                normal(m.weight, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    uniform(m.bias, -0.2, 0.2)
            elif isinstance(m, nn.Linear):
                fan_in = m.weight.shape[1]
                normal(m.weight, linear_gain.get(name, 1.0) / math.sqrt(fan_in))
                if m.bias is not None:
                    uniform(m.bias, -0.2, 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.2, 0.2)
                uniform(m.running_mean, -0.2, 0.2)
                uniform(m.running_var, 0.5, 1.5)
                m.num_batches_tracked.zero_()


# --------------------------------------------------------------------------
# A) torchvision GoogLeNet (optionally widths / 8), torchvision's own classes
# --------------------------------------------------------------------------

def build_torchvision(tiny, num_classes):
    if not tiny:
        return torchvision_googlenet_full(num_classes)
    # Build torchvision's GoogLeNet, then swap in width/8 submodules under the
    # same attribute names so the state_dict keys stay identical.
    m = GoogLeNet(num_classes=num_classes, aux_logits=True, transform_input=False,
                  init_weights=False, dropout=0.0, dropout_aux=0.0)
    full_keys = list(m.state_dict().keys())
    m.conv1 = BasicConv2d(3, 8, kernel_size=7, stride=2, padding=3)
    m.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    m.conv2 = BasicConv2d(8, 8, kernel_size=1)
    m.conv3 = BasicConv2d(8, 24, kernel_size=3, padding=1)
    m.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    for name, cfg in TINY_INCEPTION.items():
        setattr(m, name, Inception(*cfg))
    m.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    m.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
    for aux_name, src in (("aux1", "inception4a"), ("aux2", "inception4d")):
        in_ch = inception_out(TINY_INCEPTION[src])
        aux = InceptionAux(in_ch, num_classes, dropout=0.0)
        aux.conv = BasicConv2d(in_ch, 16, kernel_size=1)
        aux.fc1 = nn.Linear(16 * 4 * 4, 128)
        aux.fc2 = nn.Linear(128, num_classes)
        setattr(m, aux_name, aux)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.dropout = nn.Dropout(p=0.0)
    m.fc = nn.Linear(inception_out(TINY_INCEPTION["inception5b"]), num_classes)
    assert list(m.state_dict().keys()) == full_keys, "tiny model must keep torchvision's state_dict names"
    return m


def torchvision_googlenet_full(num_classes):
    import torchvision

    m = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False,
                                     transform_input=False, num_classes=num_classes,
                                     dropout=0.0, dropout_aux=0.0)
    n_all = sum(p.numel() for p in m.parameters())
    n_aux = sum(p.numel() for n, p in m.named_parameters() if n.startswith(("aux1.", "aux2.")))
    print(f"torchvision GoogLeNet parameters: {n_all - n_aux:,} without aux heads, {n_all:,} with")
    if num_classes == 1000:
        assert n_all - n_aux == 6_624_904, n_all - n_aux
        assert n_all == 13_004_888, n_all
    return m


# --------------------------------------------------------------------------
# B) Paper GoogLeNet (Caffe bvlc_googlenet): ReLU, conv biases, LRN, 5x5, no BN
# --------------------------------------------------------------------------

class PaperInception(nn.Module):
    def __init__(self, in_ch, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(in_ch, c1, 1), nn.ReLU())
        self.branch2 = nn.Sequential(nn.Conv2d(in_ch, c3r, 1), nn.ReLU(),
                                     nn.Conv2d(c3r, c3, 3, padding=1), nn.ReLU())
        self.branch3 = nn.Sequential(nn.Conv2d(in_ch, c5r, 1), nn.ReLU(),
                                     nn.Conv2d(c5r, c5, 5, padding=2), nn.ReLU())
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     nn.Conv2d(in_ch, pp, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class PaperAux(nn.Module):
    def __init__(self, in_ch, conv_ch, fc1_in, fc1_out, num_classes, dropout):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)  # ceil_mode=False, count_include_pad=True
        self.conv = nn.Sequential(nn.Conv2d(in_ch, conv_ch, 1), nn.ReLU())
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(fc1_in, fc1_out)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(fc1_out, num_classes)

    def forward(self, x):
        x = self.flatten(self.conv(self.pool(x)))
        return self.fc2(self.drop(self.relu(self.fc1(x))))


class PaperGoogLeNet(nn.Module):
    """bvlc_googlenet. `div` divides every channel width; `last_map` is the
    spatial size entering pool5 (7 at 224x224), `aux_map` the size after the
    aux heads' 5x5/3 average pool (4 at 224x224)."""

    def __init__(self, div=1, num_classes=1000, last_map=7, aux_map=4, dropout=0.4, dropout_aux=0.7):
        super().__init__()
        w = lambda c: c // div  # noqa: E731
        cfgs = {k: tuple(w(c) for c in v) for k, v in FULL_INCEPTION.items()}
        self.conv1 = nn.Sequential(nn.Conv2d(3, w(64), 7, stride=2, padding=3), nn.ReLU())
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2_reduce = nn.Sequential(nn.Conv2d(w(64), w(64), 1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(w(64), w(192), 3, padding=1), nn.ReLU())
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = PaperInception(*cfgs["inception3a"])
        self.inception3b = PaperInception(*cfgs["inception3b"])
        self.pool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = PaperInception(*cfgs["inception4a"])
        self.inception4b = PaperInception(*cfgs["inception4b"])
        self.inception4c = PaperInception(*cfgs["inception4c"])
        self.inception4d = PaperInception(*cfgs["inception4d"])
        self.inception4e = PaperInception(*cfgs["inception4e"])
        self.pool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = PaperInception(*cfgs["inception5a"])
        self.inception5b = PaperInception(*cfgs["inception5b"])
        self.pool5 = nn.AvgPool2d(last_map, stride=1)
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(inception_out(cfgs["inception5b"]), num_classes)
        aux_conv = w(128)
        self.aux1 = PaperAux(inception_out(cfgs["inception4a"]), aux_conv, aux_conv * aux_map * aux_map,
                             w(1024), num_classes, dropout_aux)
        self.aux2 = PaperAux(inception_out(cfgs["inception4d"]), aux_conv, aux_conv * aux_map * aux_map,
                             w(1024), num_classes, dropout_aux)
        self.use_lrn = True  # only for the "does LRN matter" diagnostic

    def forward(self, x):
        lrn = (lambda t, f: f(t)) if self.use_lrn else (lambda t, f: t)
        x = lrn(self.pool1(self.conv1(x)), self.norm1)
        x = lrn(self.conv2(self.conv2_reduce(x)), self.norm2)
        x = self.pool2(x)
        x = self.pool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.training else None
        x = self.pool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.drop(self.flatten(self.pool5(x))))
        if self.training:
            return x, aux1, aux2
        return x


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def snapshot(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def max_abs(t):
    return float(t.abs().max())


def run_torchvision(tiny, out_dir, prefix, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    num_classes = 10 if tiny else 1000
    model = build_torchvision(tiny, num_classes).float()
    # Eval-mode BN (random running stats) lets activations drift upward with
    # depth, train-mode BN normalises them: gains chosen so that both eval and
    # train logits are O(1..20).
    gains = {"fc": 1.0, "aux1.fc2": 3.0, "aux2.fc2": 3.0}
    custom_init(model, gen, gains)
    batch, hw = (2, 96) if tiny else (1, 224)
    x = torch.randn(batch, 3, hw, hw, generator=gen, dtype=torch.float32)

    weights = snapshot(model)  # BEFORE the training forward mutates running stats

    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    assert isinstance(eval_logits, torch.Tensor)

    # Reference in float64 (diagnostic only)
    m64 = copy.deepcopy(model).double()

    model.train()
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            assert mod.p == 0.0
    with torch.no_grad():
        out = model(x)
    # torchvision: GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
    train_logits, train_aux2, train_aux1 = out.logits, out.aux_logits2, out.aux_logits1
    assert train_aux1 is not None and train_aux2 is not None

    after_train_keys = ["conv1.bn.running_mean", "conv1.bn.running_var",
                        "inception5b.branch4.1.bn.running_mean", "inception5b.branch4.1.bn.running_var",
                        "aux1.conv.bn.running_var", "conv1.bn.num_batches_tracked"]
    sd = model.state_dict()
    io = {
        "input": x,
        "eval_logits": eval_logits,
        "train_logits": train_logits,
        "train_aux1": train_aux1,
        "train_aux2": train_aux2,
    }
    for k in after_train_keys:
        io["after_train." + k] = sd[k].detach().clone()

    # float64 diagnostics
    with torch.no_grad():
        m64.eval()
        e64 = m64(x.double())
        m64.train()
        o64 = m64(x.double())
    diag = {"eval_logits": (eval_logits, e64), "train_logits": (train_logits, o64.logits),
            "train_aux1": (train_aux1, o64.aux_logits1), "train_aux2": (train_aux2, o64.aux_logits2)}

    # Sanity: after-train running stats follow momentum 0.1 with unbiased variance.
    nbt = int(sd["conv1.bn.num_batches_tracked"])
    assert nbt == 1, nbt
    with torch.no_grad():
        y = model.conv1.conv(x).double()
    bm = y.mean(dim=(0, 2, 3))
    bv = y.var(dim=(0, 2, 3), unbiased=True)
    exp_mean = 0.9 * weights["conv1.bn.running_mean"].double() + 0.1 * bm
    exp_var = 0.9 * weights["conv1.bn.running_var"].double() + 0.1 * bv
    assert torch.allclose(io["after_train.conv1.bn.running_mean"].double(), exp_mean, atol=1e-5, rtol=1e-5)
    assert torch.allclose(io["after_train.conv1.bn.running_var"].double(), exp_var, atol=1e-5, rtol=1e-5)

    write(out_dir, prefix, weights, io, diag)


def run_paper(tiny, out_dir, prefix, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if tiny:
        kw = dict(div=8, num_classes=10, last_map=4, aux_map=2)
        batch, hw = 2, 128
    else:
        kw = dict(div=1, num_classes=1000, last_map=7, aux_map=4)
        batch, hw = 1, 224
    model = PaperGoogLeNet(**kw).float()
    n_all = sum(p.numel() for p in model.parameters())
    n_aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("aux1.", "aux2.")))
    print(f"[{prefix}] parameters: {n_all - n_aux:,} without aux heads, {n_all:,} with")
    if not tiny:  # Caffe bvlc_googlenet's parameter count
        assert (n_all - n_aux, n_all) == (6_998_552, 13_378_280), (n_all - n_aux, n_all)
    # Caffe's bvlc_googlenet sees mean-subtracted 0..255 pixels, so its
    # activations are large and LRN (alpha 1e-4) is far from the identity.
    # Mimic that with a large input scale; scale the classifier down.
    input_scale = 40.0
    gains = {"fc": 0.03, "aux1.fc2": 0.06, "aux2.fc2": 0.04}
    custom_init(model, gen, gains)
    x = torch.randn(batch, 3, hw, hw, generator=gen, dtype=torch.float32) * input_scale

    weights = snapshot(model)

    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
        model.use_lrn = False
        no_lrn = model(x)
        model.use_lrn = True
    lrn_effect = max_abs(eval_logits - no_lrn)
    print(f"[{prefix}] max|logits(with LRN) - logits(without LRN)| = {lrn_effect:.4g}")
    assert lrn_effect > 1e-3, "LRN has no visible effect; increase input_scale"

    # Training reference: same weights, all dropout p = 0.
    train_model = PaperGoogLeNet(**kw, dropout=0.0, dropout_aux=0.0).float()
    train_model.load_state_dict(weights)
    train_model.train()
    with torch.no_grad():
        train_logits, train_aux1, train_aux2 = train_model(x)

    m64 = copy.deepcopy(train_model).double()
    with torch.no_grad():
        m64.eval()
        e64 = m64(x.double())
        m64.train()
        t64, a1_64, a2_64 = m64(x.double())
    diag = {"eval_logits": (eval_logits, e64), "train_logits": (train_logits, t64),
            "train_aux1": (train_aux1, a1_64), "train_aux2": (train_aux2, a2_64)}

    io = {
        "input": x,
        "eval_logits": eval_logits,
        "train_logits": train_logits,
        "train_aux1": train_aux1,
        "train_aux2": train_aux2,
    }
    write(out_dir, prefix, weights, io, diag)


def write(out_dir, prefix, weights, io, diag):
    os.makedirs(out_dir, exist_ok=True)
    weights = {k: v.contiguous() for k, v in weights.items()}
    io = {k: v.detach().contiguous() for k, v in io.items()}
    wpath = os.path.join(out_dir, f"{prefix}.weights.safetensors")
    ipath = os.path.join(out_dir, f"{prefix}.io.safetensors")
    save_file(weights, wpath)
    save_file(io, ipath)
    n_params = sum(v.numel() for k, v in weights.items() if v.is_floating_point())
    print(f"[{prefix}] wrote {os.path.basename(wpath)} ({os.path.getsize(wpath):,} B, {len(weights)} tensors, "
          f"{n_params:,} float values) and {os.path.basename(ipath)} ({os.path.getsize(ipath):,} B)")
    for k, (a32, a64) in diag.items():
        tol = 1e-4 * max(1.0, max_abs(a64))
        gap = max_abs(a32.double() - a64)
        print(f"[{prefix}] {k:13s} shape {tuple(a32.shape)} max|.| = {max_abs(a32):8.4f}  "
              f"|f32 - f64| = {gap:.3g} ({gap / tol:.3f} x tolerance)")
        assert gap < 0.25 * tol, f"{prefix}.{k}: float32 reference itself is too far from float64"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full-size networks at 224x224, batch 1")
    ap.add_argument("--out", default=None,
                    help="output directory (default: this directory; with --full: /tmp/archc-parity-full)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    print(f"torch {torch.__version__}")
    import torchvision
    print(f"torchvision {torchvision.__version__}")

    if args.full:
        out = args.out or "/tmp/archc-parity-full"
        run_torchvision(False, out, "torchvision_full", seed=1001)
        run_paper(False, out, "paper_full", seed=1002)
    else:
        out = args.out or HERE
        run_torchvision(True, out, "torchvision_tiny", seed=1)
        run_paper(True, out, "paper_tiny", seed=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
