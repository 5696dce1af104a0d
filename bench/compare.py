#!/usr/bin/env python3
"""Side-by-side inference timing of torchvision's GoogLeNet: archc's generated model (with each of its
optimisations switched on in turn, starting from plain candle layers), PyTorch eager and ONNX Runtime, on the
same machine in one run, with the same weights.

Usage (from the repository root):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch torchvision onnx onnxscript onnxruntime safetensors
    /tmp/bench-venv/bin/python bench/compare.py                  # batch 1 and 8
    /tmp/bench-venv/bin/python bench/compare.py --batches 8 --rounds 3
    /tmp/bench-venv/bin/python bench/compare.py --archc-bin /path/to/bench_googlenet   # a prebuilt binary

`--archc-bin` times a bench_googlenet binary built elsewhere (another commit's worktree, another target
directory) instead of building this checkout's; nothing is built then. Its path is absolute or relative to the
current directory.

Those Python packages are needed only here, never by the Rust build or its tests.

Every engine runs in a fresh process of its own (so its peak resident memory is its own), on random
torchvision weights (seeded) saved once as safetensors and loaded by archc too, with a 224x224 f32 input.
Each measurement is the median of `--iters` timed forward passes after two warm-up passes; with `--rounds`
above 1 the engines are run round-robin and the best median of each is kept, which damps interference from
anything else running on the machine. Prints a Markdown table for bench/RESULTS.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Multiply-accumulates of one 224x224 inference, from `archc summary architectures/googlenet_torchvision.arch`
# (torchvision lists GoogLeNet at 1.50 GFLOPS, counting a multiply-add as one).
MACS_PER_IMAGE = 1_498_376_192
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHC_BIN = os.path.join(ROOT, "target", "release", "examples", "bench_googlenet")

# archc configurations: plain candle layers, everything, and everything but one optimisation, so that what each
# one brings is measured against the same fully optimised model (see runtime/src/fused.rs).
ARCHC_CONFIGS = [
    ("archc, plain candle layers", "none"),
    ("archc without one-pass pools", "conv,depthwise,fold,winograd,siblings,micro,activations,elementwise,linear"),
    ("archc without BN/ReLU folding", "conv,depthwise,winograd,pool,siblings,micro,activations,elementwise,linear"),
    ("archc without the conv kernel", "pool,siblings,micro,activations,elementwise,linear"),
    ("archc without Winograd", "conv,depthwise,fold,pool,siblings,micro,activations,elementwise,linear"),
    ("archc without sibling 1x1 fusion", "conv,depthwise,fold,winograd,pool,micro,activations,elementwise,linear"),
    ("archc without micro-batches", "conv,depthwise,fold,winograd,pool,siblings,activations,elementwise,linear"),
    ("archc (all optimisations)", "all"),
]


def peak_rss_kib():
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: that survives execve, so a
    worker would report the peak of the parent it was forked from."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def build_torch_model():
    import torch
    from torchvision.models.googlenet import GoogLeNet

    torch.manual_seed(0)
    model = GoogLeNet(num_classes=1000, aux_logits=True, transform_input=False, init_weights=True)
    return model.eval()


def time_calls(fn, iters):
    for _ in range(2):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def worker(engine, batch, iters, workdir):
    """Runs in its own process: times one engine and prints a JSON line."""
    import numpy as np
    import torch

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    if engine == "pytorch":
        model = build_torch_model()
        with torch.inference_mode():
            ms = time_calls(lambda: model(x), iters)
    elif engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            os.path.join(workdir, "googlenet.onnx"), options, providers=["CPUExecutionProvider"]
        )
        feed = {"input": x.numpy().astype(np.float32)}
        ms = time_calls(lambda: session.run(None, feed), iters)
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps({"ms_per_batch": ms, "peak_rss_kib": peak_rss_kib()}))


def prepare(workdir):
    """Saves the seeded torchvision weights as safetensors and exports the same model to ONNX."""
    import torch
    from safetensors.torch import save_file

    model = build_torch_model()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(workdir, "googlenet.safetensors"))
    x = torch.randn(1, 3, 224, 224)
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
    )
    try:
        torch.onnx.export(model, (x,), os.path.join(workdir, "googlenet.onnx"), dynamo=False, **kwargs)
    except TypeError:  # older torch without the `dynamo` switch
        torch.onnx.export(model, (x,), os.path.join(workdir, "googlenet.onnx"), **kwargs)


def run_child(cmd):
    """Runs cmd and returns the JSON object on the last line of its output."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--iters", type=int, default=10, help="timed passes per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="round-robin repetitions; the best median is kept")
    parser.add_argument("--skip-build", action="store_true", help="use the already built example binary")
    parser.add_argument(
        "--archc-bin",
        help="a prebuilt bench_googlenet binary to time instead of this checkout's (implies --skip-build)",
    )
    parser.add_argument(
        "--cpus",
        help="comma-separated CPU numbers to run every engine on (e.g. 0 for one core); "
        "each engine uses one thread per CPU",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.iters, args.workdir)
        return

    try:
        import onnxruntime  # noqa: F401
        import safetensors  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        raise SystemExit(
            f"{e}: install the comparison's Python packages with\n"
            "  pip install torch torchvision onnx onnxscript onnxruntime safetensors"
        )
    archc_bin = os.path.abspath(args.archc_bin) if args.archc_bin else ARCHC_BIN
    if args.archc_bin:
        if not os.access(archc_bin, os.X_OK):
            raise SystemExit(f"--archc-bin {args.archc_bin}: not an executable file")
    elif not args.skip_build:
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--example", "bench_googlenet"], cwd=ROOT, check=True
        )
    if args.cpus:
        # Inherited by every engine's process; archc's rayon pool and PyTorch/ORT size themselves from it.
        cpus = {int(c) for c in args.cpus.split(",")}
        os.sched_setaffinity(0, cpus)
        os.environ["RAYON_NUM_THREADS"] = str(len(cpus))
    workdir = tempfile.mkdtemp(prefix="archc-bench-")
    prepare(workdir)
    weights = os.path.join(workdir, "googlenet.safetensors")

    engines = [("PyTorch eager", "pytorch"), ("ONNX Runtime", "onnxruntime")] + ARCHC_CONFIGS
    best = {}
    for _ in range(args.rounds):
        for batch in args.batches:
            for label, engine in engines:
                if engine in ("pytorch", "onnxruntime"):
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--batch", str(batch),
                           "--iters", str(args.iters), "--workdir", workdir]
                else:
                    cmd = [archc_bin, "--batch", str(batch), "--iters", str(args.iters), "--weights", weights,
                           "--optimizations", engine]
                result = run_child(cmd)
                key = (label, batch)
                if key not in best or result["ms_per_batch"] < best[key]["ms_per_batch"]:
                    best[key] = result
                print(f"{label:40} batch {batch}: {result['ms_per_batch'] / batch:8.2f} ms/image", file=sys.stderr)

    cpus = sorted(os.sched_getaffinity(0))
    print(f"\nCPUs {cpus} ({len(cpus)} threads per engine); median of {args.iters} passes, best of {args.rounds} round(s).\n")
    print("| engine | batch | ms/image | GMAC/s | peak RSS (MiB) | vs ONNX Runtime | vs PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for batch in args.batches:
        ort_ms = best[("ONNX Runtime", batch)]["ms_per_batch"] / batch
        torch_ms = best[("PyTorch eager", batch)]["ms_per_batch"] / batch
        for label, _ in engines:
            r = best[(label, batch)]
            ms = r["ms_per_batch"] / batch
            gmacs = MACS_PER_IMAGE / (ms * 1e-3) / 1e9
            rss = r.get("peak_rss_kib")
            rss = f"{rss / 1024:.0f}" if rss else "?"
            print(f"| {label} | {batch} | {ms:.1f} | {gmacs:.1f} | {rss} | {ms / ort_ms:.2f}x | {ms / torch_ms:.2f}x |")


if __name__ == "__main__":
    main()
