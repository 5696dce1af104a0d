"""What bench/zoo.py and bench/compare.py share: the torchvision networks with their seeded weights and
measured batch-norm statistics, the saved inputs and PyTorch reference logits, the bench_zoo command line,
the logits check, and the timing and memory helpers of the worker processes.

Files in a work directory, per network `<net>` and batch size `<b>`:

    <net>.safetensors              the state_dict (torchvision names, unrenamed), loaded by every engine
    <net>.b<b>.input.safetensors   `input`: a seeded random [b, 3, H, W] (the first b images of one draw)
    <net>.b<b>.torch.safetensors   `logits`: PyTorch's eval-mode logits for that input, one thread

Not a script: the two scripts import it (`import common`: Python puts a script's own directory first on the
module path).
"""

import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# runtime/examples/bench_zoo.rs, and the networks it builds (by torchvision name, each from its .arch file).
ZOO_BIN = os.path.join(ROOT, "target", "release", "examples", "bench_zoo")
BENCH_ZOO_NETS = [
    "alexnet",
    "vgg16_bn",
    "squeezenet1_1",
    "resnet18",
    "resnet50",
    "densenet121",
    "inception_v3",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "googlenet",
]
# archc's logits against PyTorch's, max |a - b| / max |b|.
TOLERANCE = 1e-3


def input_size(net):
    return 299 if net == "inception_v3" else 224


def torchvision_model(net, device=None):
    """`torchvision.models.<net>(weights=None)` in eval mode. Inception-v3 and GoogLeNet with their auxiliary
    heads (their weights are in the .arch's state_dict; eval mode does not run them), without
    `transform_input`, and with torchvision's own initialisation spelled out (GoogLeNet warns otherwise)."""
    import torch
    import torchvision

    kwargs = {"weights": None}
    if net in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=True, transform_input=False, init_weights=True)
    if device is not None:
        with torch.device(device):
            return getattr(torchvision.models, net)(**kwargs).eval()
    return getattr(torchvision.models, net)(**kwargs).eval()


def calibrate_batch_norm(model, size, steps=2, batch=2):
    """Every BatchNorm2d's running statistics measured on random images: the plain average of `steps`
    training-mode batches (momentum=None), instead of torchvision's initial mean 0 and variance 1, so that
    the batch norms archc folds are not the identity."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator().manual_seed(2)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, 3, size, size, generator=gen))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def relative_error(a, b):
    """max |a - b| / max |b|: relative to the logits' own scale, with no floor at 1 as the parity tests have
    (tests/support/compare.rs), since the logits of a randomly initialised network can be far below 1."""
    a, b = a.double(), b.double()
    if a.shape != b.shape:
        return float("inf")
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / scale if scale > 0 else float("inf")


def weights_path(workdir, net):
    return os.path.join(workdir, f"{net}.safetensors")


def input_path(workdir, net, batch):
    return os.path.join(workdir, f"{net}.b{batch}.input.safetensors")


def torch_logits_path(workdir, net, batch):
    return os.path.join(workdir, f"{net}.b{batch}.torch.safetensors")


def prepared(workdir, net, batches):
    """Whether `prepare` has written every file of `net` for these batch sizes."""
    paths = [weights_path(workdir, net)]
    for b in batches:
        paths += [input_path(workdir, net, b), torch_logits_path(workdir, net, b)]
    return all(os.path.exists(p) for p in paths)


def prepare(workdir, net, batches):
    """Writes the state_dict (torch's seed 0, then calibrated batch norms), one input per batch size (the first
    b images of one seeded draw of the largest batch) and PyTorch's eval logits for each, on one thread."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torchvision_model(net)
    size = input_size(net)
    calibrate_batch_norm(model, size)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, weights_path(workdir, net))
    images = torch.randn(max(batches), 3, size, size, generator=torch.Generator().manual_seed(1))
    for b in batches:
        x = images[:b].contiguous()
        save_file({"input": x}, input_path(workdir, net, b))
        with torch.inference_mode():
            logits = model(x)
        save_file({"logits": logits.contiguous()}, torch_logits_path(workdir, net, b))


def load_torch_model(workdir, net):
    """The network with the saved weights, built on the meta device and then given them (no initialisation)."""
    from safetensors.torch import load_file

    model = torchvision_model(net, device="meta")
    model.load_state_dict(load_file(weights_path(workdir, net)), assign=True)
    return model.eval()


def macs_per_image(net):
    """Multiply-accumulates of one eval-mode inference, convolutions and linear layers (what `archc summary`
    counts), from the shapes of a forward pass on the meta device (nothing is computed)."""
    import torch

    model = torchvision_model(net, device="meta")
    total = 0

    def conv(module, _inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module, _inputs, output):
        nonlocal total
        total += output[0].numel() * module.in_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear)
    size = input_size(net)
    with torch.inference_mode():
        model(torch.empty(1, 3, size, size, device="meta"))
    return total


def peak_rss_kib():
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: that survives execve, so a
    worker would report the peak of the parent it was forked from."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def time_calls(fn, iters, warmup):
    """The median of `iters` timed calls of fn after `warmup` untimed ones, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def torch_worker(workdir, net, batch, threads, iters, warmup):
    """Runs in its own process: times PyTorch eager on the saved weights and input, prints a JSON line with
    the median time per batch, the thread count and the process's peak resident memory."""
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    model = load_torch_model(workdir, net)
    x = load_file(input_path(workdir, net, batch))["input"]
    with torch.inference_mode():
        ms = time_calls(lambda: model(x), iters, warmup)
    print(json.dumps({"ms_per_batch": ms, "threads": torch.get_num_threads(), "peak_rss_kib": peak_rss_kib()}))


def run_child(cmd, env=None):
    """Runs cmd and returns the JSON object on the last line of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def archc_cmd(binary, workdir, net, variant, batch, iters, warmup, logits=None):
    """bench_zoo on the saved weights and the saved input of `batch` images, with the optimisations
    `variant` (`all`, `none` or a comma-separated subset)."""
    cmd = [binary, net, "--weights", weights_path(workdir, net), "--input", input_path(workdir, net, batch),
           "--iters", str(iters), "--warmup", str(warmup), "--optimizations", variant]
    if logits:
        cmd += ["--logits", logits]
    return cmd


def check(binary, workdir, net, variant, batch, env=None):
    """archc's logits for the saved input of `batch` images against PyTorch's: the relative error."""
    from safetensors.torch import load_file

    out = os.path.join(workdir, f"{net}.b{batch}.archc.safetensors")
    run_child(archc_cmd(binary, workdir, net, variant, batch, 1, 1, logits=out), env)
    got = load_file(out)["logits"]
    want = load_file(torch_logits_path(workdir, net, batch))["logits"]
    return relative_error(got, want)
