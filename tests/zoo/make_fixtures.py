#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the torchvision zoo (architectures/*.arch, issue 12).

For each of the ten networks, the default mode builds a reduced-width model FROM TORCHVISION'S OWN CLASSES
(same module tree, same state_dict names as the full network: the script asserts it), gives it weights that
make every tensor matter, calibrates its batch-norm statistics on data and writes, next to this script:

    <net>.weights.safetensors   the state_dict, names untouched (int64 `num_batches_tracked` included, = 0)
    <net>.io.safetensors        input + reference outputs (below)
    configs.json                per network: the .arch file, the Config of the reduced model, the Config
                                overrides of the training pass, the input shape

`--full --out DIR` writes the same files for `torchvision.models.<net>(weights=None)` itself (1000 classes,
224x224, Inception-v3 299x299); they are hundreds of MB and are not committed.

The io file holds:

    input                          2 x 3 x H x W, float16 (two different images; the references were computed
                                   from exactly these values converted to float32)
    eval_logits                    model.eval() output
    train_logits                   model.train() output with every dropout and stochastic depth at p = 0
                                   (batch norm uses batch statistics)
    train_aux_logits               (Inception-v3 only) the auxiliary head, in that training pass
    after_train.<bn buffer name>   a few batch-norm buffers after that one training pass (momentum 0.1,
                                   running_var updated with the unbiased batch variance)

The weights file is a snapshot taken BEFORE the training pass. Everything is float32 on CPU, one thread,
fixed seeds; running the script twice gives byte-identical files.

Batch-norm statistics. Random running statistics (mean ~ U(-0.2, 0.2), var ~ U(0.5, 1.5), as the GoogLeNet
fixtures use) let the signal die in deep narrow networks: the logits then barely depend on the input and a
parity test passes whatever the model computes. So after the random initialisation (the GoogLeNet fixtures'
`custom_init`, then batch-norm weights U(0.5, 1.5) and biases U(0.5, 2.0): positive shifts keep deep narrow
random networks from amplifying float32 rounding towards the tolerance) every BatchNorm2d's statistics are
measured on data (a few training-mode passes over random images with momentum=None, i.e. the plain average of
the batch statistics) and then perturbed (mean += U(-0.1, 0.1) std, var *= U(0.8, 1.25)), so that eval and
training outputs differ. The script asserts, for every network, that the two images give logits differing by
more than 1e-2 relative (max |a - b| / max(1, max |b|), the parity tests' measure), and that a few wrong
implementations (ReLU for ReLU6, no channel shuffle, ...) move the logits far beyond the parity tolerance of
1e-4.
"""

import argparse
import copy
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file
from torchvision.models.alexnet import AlexNet
from torchvision.models.densenet import DenseNet
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.models.inception import BasicConv2d, Inception3
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.squeezenet import Fire, SqueezeNet
from torchvision.models.vgg import VGG, make_layers
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

HERE = os.path.dirname(os.path.abspath(__file__))


def _googlenet_fixtures():
    """tests/parity/make_fixtures.py (GoogLeNet's fixtures), for its initialisation and helpers."""
    import importlib.util
    path = os.path.join(HERE, "..", "parity", "make_fixtures.py")
    spec = importlib.util.spec_from_file_location("googlenet_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_googlenet = _googlenet_fixtures()
custom_init, max_abs, snapshot = _googlenet.custom_init, _googlenet.max_abs, _googlenet.snapshot
# Saves a network's weights and its inputs/outputs, checking the float32 references against float64 ones.
write = _googlenet.write

TOLERANCE = 1e-4  # the parity tests' bound on max |a - b| / max(1, max |b|)

# torchvision's parameter counts (the list; Inception-v3 without / with the auxiliary head).
PARAMS = {
    "alexnet": 61_100_840,
    "vgg16_bn": 138_365_992,
    "squeezenet1_1": 1_235_496,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "inception_v3": (23_834_568, 27_161_264),
    "mobilenet_v2": 3_504_872,
    "shufflenet_v2_x1_0": 2_278_604,
    "efficientnet_b0": 5_288_548,
}


def relative(a, b):
    """max |a - b| / max(1, max |b|), as tests/support/compare.rs."""
    return max_abs(a.double() - b.double()) / max(1.0, max_abs(b))


def torchvision_model(net, num_classes=1000):
    """`torchvision.models.<net>(weights=None)` with every dropout and stochastic depth at p = 0 (the weights
    do not depend on p; the training reference needs p = 0), Inception-v3 with its aux head and
    transform_input=False."""
    kwargs = {"weights": None, "num_classes": num_classes}
    if net in ("alexnet", "vgg16_bn", "squeezenet1_1", "mobilenet_v2", "inception_v3", "efficientnet_b0"):
        kwargs["dropout"] = 0.0
    if net == "inception_v3":
        kwargs.update(aux_logits=True, transform_input=False, init_weights=False)
    if net == "efficientnet_b0":
        kwargs["stochastic_depth_prob"] = 0.0
    return getattr(torchvision.models, net)(**kwargs)


def full_size_names(net):
    """The state_dict names and shapes of the full network (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = torchvision_model(net)
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())


def parameter_count(net):
    with torch.device("meta"):
        model = torchvision_model(net)
    total = sum(p.numel() for p in model.parameters())
    if net == "inception_v3":
        aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("AuxLogits."))
        return (total - aux, total)
    return total


# --------------------------------------------------------------------------------------------------------
# Reduced-width models, from torchvision's own classes. Each builder returns the model and the Config of
# architectures/<net>.arch that describes it.
# --------------------------------------------------------------------------------------------------------

NUM_CLASSES = 10


def tiny_alexnet():
    w, hidden = 8, 16
    m = AlexNet(num_classes=NUM_CLASSES, dropout=0.0)
    # AlexNet's widths are written into its constructor: swap in narrower layers at the same positions.
    m.features[0] = nn.Conv2d(3, w, kernel_size=11, stride=4, padding=2)
    m.features[3] = nn.Conv2d(w, 3 * w, kernel_size=5, padding=2)
    m.features[6] = nn.Conv2d(3 * w, 6 * w, kernel_size=3, padding=1)
    m.features[8] = nn.Conv2d(6 * w, 4 * w, kernel_size=3, padding=1)
    m.features[10] = nn.Conv2d(4 * w, 4 * w, kernel_size=3, padding=1)
    m.classifier[1] = nn.Linear(4 * w * 6 * 6, hidden)
    m.classifier[4] = nn.Linear(hidden, hidden)
    m.classifier[6] = nn.Linear(hidden, NUM_CLASSES)
    return m, {"num_classes": NUM_CLASSES, "width": w, "hidden": hidden}


def tiny_vgg16_bn():
    w, hidden = 4, 16
    cfg = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, 4 * w, "M", 8 * w, 8 * w, 8 * w, "M", 8 * w, 8 * w, 8 * w, "M"]
    m = VGG(make_layers(cfg, batch_norm=True), num_classes=NUM_CLASSES, init_weights=False, dropout=0.0)
    m.classifier[0] = nn.Linear(8 * w * 7 * 7, hidden)
    m.classifier[3] = nn.Linear(hidden, hidden)
    m.classifier[6] = nn.Linear(hidden, NUM_CLASSES)
    return m, {"num_classes": NUM_CLASSES, "width": w, "hidden": hidden}


def tiny_squeezenet1_1():
    w = 4
    m = SqueezeNet("1_1", num_classes=NUM_CLASSES, dropout=0.0)
    m.features[0] = nn.Conv2d(3, 4 * w, kernel_size=3, stride=2)
    fires = {3: (4 * w, w), 4: (8 * w, w), 6: (8 * w, 2 * w), 7: (16 * w, 2 * w), 9: (16 * w, 3 * w),
             10: (24 * w, 3 * w), 11: (24 * w, 4 * w), 12: (32 * w, 4 * w)}
    for i, (inp, s) in fires.items():
        m.features[i] = Fire(inp, s, 4 * s, 4 * s)
    m.classifier[1] = nn.Conv2d(32 * w, NUM_CLASSES, kernel_size=1)
    return m, {"num_classes": NUM_CLASSES, "width": w}


def tiny_resnet(block, layers, w):
    m = ResNet(block, layers, num_classes=NUM_CLASSES)
    # ResNet's widths (64, 128, 256, 512) are written into its constructor; rebuild the stem and the stages
    # with its own _make_layer, which reads the running width from `inplanes`.
    m.inplanes = w
    m.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(w)
    m.layer1 = m._make_layer(block, w, layers[0])
    m.layer2 = m._make_layer(block, 2 * w, layers[1], stride=2)
    m.layer3 = m._make_layer(block, 4 * w, layers[2], stride=2)
    m.layer4 = m._make_layer(block, 8 * w, layers[3], stride=2)
    m.fc = nn.Linear(8 * w * block.expansion, NUM_CLASSES)
    return m, {"num_classes": NUM_CLASSES, "width": w}


def tiny_resnet18():
    return tiny_resnet(BasicBlock, [2, 2, 2, 2], 4)


def tiny_resnet50():
    return tiny_resnet(Bottleneck, [3, 4, 6, 3], 4)


def tiny_densenet121():
    growth, init, bn_size = 4, 8, 2
    m = DenseNet(growth_rate=growth, block_config=(6, 12, 24, 16), num_init_features=init, bn_size=bn_size,
                 num_classes=NUM_CLASSES)
    return m, {"num_classes": NUM_CLASSES, "growth": growth, "init": init, "bn_size": bn_size}


def tiny_inception_v3():
    div = 16
    m = Inception3(num_classes=NUM_CLASSES, aux_logits=True, transform_input=False, init_weights=False,
                   dropout=0.0)
    # Inception3's blocks write their widths into their constructors (only pool_features and channels_7x7
    # are arguments): keep every block, swap each BasicConv2d for one with widths / div, same kernel, stride
    # and padding. Every width of the network is a multiple of 16.
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BasicConv2d):
                conv = child.conv
                cin = conv.in_channels if conv.in_channels == 3 else conv.in_channels // div
                assert conv.out_channels % div == 0 and (cin == 3 or conv.in_channels % div == 0)
                setattr(parent, name, BasicConv2d(cin, conv.out_channels // div, kernel_size=conv.kernel_size,
                                                  stride=conv.stride, padding=conv.padding))
    m.AuxLogits.fc = nn.Linear(768 // div, NUM_CLASSES)
    m.fc = nn.Linear(2048 // div, NUM_CLASSES)
    return m, {"num_classes": NUM_CLASSES, "div": div}


def tiny_mobilenet_v2():
    last = 64
    # Table 2's rows (t, c, n, s) with narrower c, at width_mult 0.25 rounded to multiples of 4: widths 8 (stem),
    # 4, 8, 8, 12, 16, 24, 32. Each stride-1 row changes the width, as the .arch requires (with torchvision's
    # rounding to 8, rows 0 and 1 would both be 8 wide and torchvision would make features.1 residual).
    rows = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 48, 4, 2], [6, 64, 3, 1], [6, 96, 3, 2], [6, 128, 1, 1]]
    m = MobileNetV2(num_classes=NUM_CLASSES, width_mult=0.25, inverted_residual_setting=rows, round_nearest=4,
                    dropout=0.0)
    # The last convolution keeps 1280 filters for width_mult < 1: narrow it too.
    c7 = m.features[17].out_channels
    m.features[18] = Conv2dNormActivation(c7, last, kernel_size=1, norm_layer=nn.BatchNorm2d,
                                          activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(last, NUM_CLASSES)
    widths = [m.features[0].out_channels] + [m.features[i].out_channels for i in (1, 3, 6, 10, 13, 16, 17)]
    assert widths == [8, 4, 8, 8, 12, 16, 24, 32], widths
    config = {"num_classes": NUM_CLASSES}
    config.update({f"c{i}": c for i, c in enumerate(widths)})
    config["last"] = last
    return m, config


def tiny_shufflenet_v2_x1_0():
    widths = [8, 16, 32, 64, 128]
    m = ShuffleNetV2(stages_repeats=[4, 8, 4], stages_out_channels=widths, num_classes=NUM_CLASSES)
    config = {"num_classes": NUM_CLASSES}
    config.update({f"c{i + 1}": c for i, c in enumerate(widths)})
    return m, config


# EfficientNet-B0's stages: (expand ratio, kernel, stride, layers); the widths are chosen per model.
B0_STAGES = [(1, 3, 1, 1), (6, 3, 2, 2), (6, 5, 2, 2), (6, 3, 2, 3), (6, 5, 1, 3), (6, 5, 2, 4), (6, 3, 1, 1)]


def tiny_efficientnet_b0():
    widths = [16, 8, 8, 16, 16, 24, 24, 32]  # c0 .. c7: multiples of 8, which MBConvConfig's rounding keeps
    setting = [MBConvConfig(t, k, s, widths[i], widths[i + 1], n) for i, (t, k, s, n) in enumerate(B0_STAGES)]
    m = EfficientNet(setting, dropout=0.0, stochastic_depth_prob=0.0, num_classes=NUM_CLASSES)
    config = {"num_classes": NUM_CLASSES}
    config.update({f"c{i}": c for i, c in enumerate(widths)})
    return m, config


# --------------------------------------------------------------------------------------------------------
# Per-network settings
# --------------------------------------------------------------------------------------------------------

class Spec:
    def __init__(self, net, tiny, hw, train_config, mutations=(), bn_weight=(0.5, 1.5), bn_bias=(0.5, 2.0),
                 input_scale=1.0):
        self.net = net
        self.tiny = tiny            # builder of the reduced model -> (model, Config)
        self.hw = hw                # input size of the reduced model
        self.train_config = train_config  # Config overrides of the training pass (p = 0)
        self.mutations = mutations  # (description, function model -> None) that must change the logits
        self.bn_weight = bn_weight  # range of the batch-norm scales
        self.bn_bias = bn_bias      # range of the batch-norm shifts
        self.input_scale = input_scale  # networks without batch norm: logits of order 1


def set_relu6_to_relu(model):
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, nn.ReLU())


def swap_silu_for_relu(model):
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, name, nn.ReLU())


def drop_squeeze_excitation(model):
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, SqueezeExcitation):
                setattr(parent, name, nn.Identity())


class _Patch:
    """Context: replaces `obj.attr` for the duration of a forward."""

    def __init__(self, obj, attr, value):
        self.obj, self.attr, self.value = obj, attr, value

    def __enter__(self):
        self.saved = getattr(self.obj, self.attr)
        setattr(self.obj, self.attr, self.value)

    def __exit__(self, *exc):
        setattr(self.obj, self.attr, self.saved)


def no_channel_shuffle(model):
    """ShuffleNet's units call the module-level channel_shuffle of torchvision.models.shufflenetv2."""
    import torchvision.models.shufflenetv2 as shufflenet
    model._zoo_context = lambda: _Patch(shufflenet, "channel_shuffle", lambda x, groups: x)


def relu_after_densenet_features(model):
    """DenseNet applies F.relu after `features` (norm5) in its forward: drop it."""
    import types

    def forward(self, x):
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1)), 1)
        return self.classifier(out)
    model.forward = types.MethodType(forward, model)


def ceil_mode_off(model):
    for m in model.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = False


def exclude_pad_in_avg_pool(model):
    """Inception's blocks pool with F.avg_pool2d(x, 3, 1, 1), which counts the padding: count it not."""
    functional = torch.nn.functional
    average = functional.avg_pool2d

    def without_padding(x, kernel_size, stride=None, padding=0, **kwargs):
        return average(x, kernel_size, stride, padding, count_include_pad=False)
    model._zoo_context = lambda: _Patch(functional, "avg_pool2d", without_padding)


def plain_residual_shortcut(model):
    """The projection shortcut of layer2's first block without its batch norm."""
    model.layer2[0].downsample[1] = nn.Identity()


SPECS = [
    Spec("alexnet", tiny_alexnet, 96, {"dropout": 0.0}),
    Spec("vgg16_bn", tiny_vgg16_bn, 64, {"dropout": 0.0}),
    # 66x66: every ceil-mode max pool has a partial last window (32 -> 16 -> 8 -> 4).
    Spec("squeezenet1_1", tiny_squeezenet1_1, 66, {"dropout": 0.0},
         mutations=[("max pools without ceil mode", ceil_mode_off)], input_scale=20.0),
    Spec("resnet18", tiny_resnet18, 64, {},
         mutations=[("layer2.0 shortcut without its batch norm", plain_residual_shortcut)]),
    Spec("resnet50", tiny_resnet50, 64, {},
         mutations=[("layer2.0 shortcut without its batch norm", plain_residual_shortcut)]),
    Spec("densenet121", tiny_densenet121, 64, {},
         mutations=[("no ReLU after norm5", relu_after_densenet_features)]),
    # The auxiliary head needs a 17x17 map at Mixed_6e: a 299x299 input.
    Spec("inception_v3", tiny_inception_v3, 299, {"dropout": 0.0},
         mutations=[("average pools excluding the padding", exclude_pad_in_avg_pool)]),
    Spec("mobilenet_v2", tiny_mobilenet_v2, 64, {"dropout": 0.0},
         mutations=[("ReLU for ReLU6", set_relu6_to_relu)], bn_weight=(0.5, 2.0), bn_bias=(1.0, 3.0)),
    Spec("shufflenet_v2_x1_0", tiny_shufflenet_v2_x1_0, 64, {},
         mutations=[("no channel shuffle", no_channel_shuffle)]),
    Spec("efficientnet_b0", tiny_efficientnet_b0, 64, {"dropout": 0.0, "stochastic_depth_prob": 0.0},
         mutations=[("ReLU for SiLU", swap_silu_for_relu), ("no squeeze-and-excitation", drop_squeeze_excitation)]),
]


# --------------------------------------------------------------------------------------------------------
# Weights and batch-norm statistics
# --------------------------------------------------------------------------------------------------------

def batch_norms(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def calibrate_batch_norm(model, gen, hw, steps=4, batch=8):
    """Running statistics measured on random images, then perturbed (see the module docstring)."""
    bns = batch_norms(model)
    if not bns:
        return
    for _, m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average of the batch statistics
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, 3, hw, hw, generator=gen))
    with torch.no_grad():
        for _, m in bns:
            m.momentum = 0.1
            std = m.running_var.sqrt()
            m.running_mean += (torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1) * std
            m.running_var *= torch.rand(m.running_var.shape, generator=gen) * 0.45 + 0.8
            m.num_batches_tracked.zero_()


def initialise(model, spec, gen, hw):
    custom_init(model, gen, {})
    (w_lo, w_hi), (b_lo, b_hi) = spec.bn_weight, spec.bn_bias
    with torch.no_grad():
        for _, m in batch_norms(model):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * (w_hi - w_lo) + w_lo)
            m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * (b_hi - b_lo) + b_lo)
    calibrate_batch_norm(model, gen, hw)


def forward(model, x):
    context = getattr(model, "_zoo_context", None)
    if context is None:
        return model(x)
    with context():
        return model(x)


def outputs(model, x, train):
    """(logits, aux logits or None)."""
    model.train(train)
    with torch.no_grad():
        out = forward(model, x)
    if isinstance(out, tuple):  # Inception-v3 in training: InceptionOutputs(logits, aux_logits)
        return out[0], out[1]
    return out, None


# --------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------

def run(spec, full, out_dir, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = spec.net
    if full:
        model, config = torchvision_model(net), {}
        hw = 299 if net == "inception_v3" else 224
    else:
        model, config = spec.tiny()
        hw = spec.hw
    model = model.float()

    # The reduced model has torchvision's module tree: exactly the full network's state_dict names.
    want = full_size_names(net)
    got = model.state_dict()
    assert list(got) == list(want), f"{net}: state_dict names differ from torchvision's " \
        f"({sorted(set(got) ^ set(want))[:5]})"
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            assert m.p == 0.0, (net, m)
        if type(m).__name__ == "StochasticDepth":
            assert m.p == 0.0, (net, m)

    initialise(model, spec, gen, hw)
    # The input is stored as float16 (half the size; Inception-v3's is 2 x 3 x 299 x 299): the float32 input
    # every reference was computed from is exactly that float16 tensor, converted.
    scale = 1.0 if full else spec.input_scale
    x_stored = (torch.randn(2, 3, hw, hw, generator=gen) * scale).to(torch.float16)
    x = x_stored.float()
    weights = snapshot(model)  # BEFORE the training pass updates the running statistics

    eval_logits, _ = outputs(model, x, train=False)
    m64 = copy.deepcopy(model).double()
    train_logits, train_aux = outputs(model, x, train=True)
    assert (train_aux is not None) == (net == "inception_v3")

    io = {"input": x_stored, "eval_logits": eval_logits, "train_logits": train_logits}
    if train_aux is not None:
        io["train_aux_logits"] = train_aux
    bns = batch_norms(model)
    if bns:
        first, last = bns[0][0], bns[-1][0]
        keys = [f"{first}.running_mean", f"{first}.running_var", f"{last}.running_mean", f"{last}.running_var",
                f"{first}.num_batches_tracked"]
        if net == "inception_v3":
            keys.append("AuxLogits.conv1.bn.running_var")
        sd = model.state_dict()
        for k in keys:
            io["after_train." + k] = sd[k].detach().clone()
        assert int(sd[f"{first}.num_batches_tracked"]) == 1

    # The parity test must not be blind: the two images give clearly different logits ...
    rows = relative(eval_logits[0], eval_logits[1])
    print(f"[{net}] eval logits of the two images differ by {rows:.3g} (relative); "
          f"max |logit| {max_abs(eval_logits):.3g}; train vs eval {relative(train_logits, eval_logits):.3g}")
    assert rows > 1e-2, f"{net}: logits barely depend on the input ({rows:.3g})"
    # ... and wrong implementations move the logits far beyond the tolerance (the mutations are chosen for
    # the reduced models' inputs: at 224x224 SqueezeNet's ceil-mode pools have no partial window, say).
    for what, mutate in [] if full else spec.mutations:
        wrong = copy.deepcopy(model)
        wrong.load_state_dict(weights)
        mutate(wrong)
        wrong_logits, _ = outputs(wrong, x, train=False)
        moved = relative(wrong_logits, eval_logits)
        print(f"[{net}]   {what}: logits move by {moved:.3g} ({moved / TOLERANCE:.0f} x tolerance)")
        assert moved > 100 * TOLERANCE, f"{net}: the fixture does not see '{what}'"
    if bns:
        # Batch statistics matter too: eval (running statistics) and training outputs differ.
        assert relative(train_logits, eval_logits) > 100 * TOLERANCE, net

    # float64 diagnostics: PyTorch's own float32 result is well within the tolerance of float64.
    e64, _ = outputs(m64, x.double(), train=False)
    t64, a64 = outputs(m64, x.double(), train=True)
    diag = {"eval_logits": (eval_logits, e64), "train_logits": (train_logits, t64)}
    if train_aux is not None:
        diag["train_aux_logits"] = (train_aux, a64)
    write(out_dir, net, weights, io, diag)
    print(f"[{net}]   Config {config or '(defaults)'}, training pass with {spec.train_config or 'the same'}")
    return {"arch": f"architectures/{net}.arch", "config": config, "train_config": spec.train_config,
            "input": list(x.shape)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="torchvision's full-size networks (not committed)")
    ap.add_argument("--out", default=None,
                    help="output directory (default: this directory; with --full: /tmp/archc-zoo-full)")
    ap.add_argument("nets", nargs="*", help="only these networks (default: all ten)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")

    specs = [s for s in SPECS if not args.nets or s.net in args.nets]
    assert len(specs) == (len(args.nets) or len(SPECS)), f"unknown network in {args.nets}"

    for spec in specs:
        count = parameter_count(spec.net)
        shown = f"{count[0]:,} without the aux head, {count[1]:,} with" if isinstance(count, tuple) else f"{count:,}"
        print(f"torchvision {spec.net}: {shown} parameters")
        assert count == PARAMS[spec.net], (spec.net, count, PARAMS[spec.net])

    out = args.out or ("/tmp/archc-zoo-full" if args.full else HERE)
    configs = {}
    for spec in specs:  # a network's seed does not depend on which others are made
        configs[spec.net] = run(spec, args.full, out, seed=(1000 if args.full else 0) + 10 + SPECS.index(spec))
    if not args.nets:
        path = os.path.join(out, "configs.json")
        with open(path, "w") as f:  # one line per network
            f.write("{\n" + ",\n".join(f"  {json.dumps(net)}: {json.dumps(entry)}" for net, entry in configs.items())
                    + "\n}\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
