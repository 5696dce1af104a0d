#!/usr/bin/env python3
"""Side-by-side inference timing of torchvision networks: ONNX Runtime, PyTorch eager and archc's generated
model (runtime/examples/bench_zoo.rs, built from architectures/*.arch), on the same machine in one run, with
the same weights and the same inputs, at several batch sizes; by default GoogLeNet, ResNet-50, Inception-v3
and MobileNet-V2 at batch 1 and 8 (issue 13's table for bench/RESULTS.md).

Usage (from the repository root):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch torchvision onnx onnxscript onnxruntime safetensors
    /tmp/bench-venv/bin/python bench/compare.py --iters 10 --rounds 3      # the four networks, batch 1 and 8
    /tmp/bench-venv/bin/python bench/compare.py --nets resnet50 mobilenet_v2 --batches 8
    /tmp/bench-venv/bin/python bench/compare.py --nets googlenet --breakdown   # each optimisation's worth
    /tmp/bench-venv/bin/python bench/compare.py --cpus 0                      # one core, one thread each
    /tmp/bench-venv/bin/python bench/compare.py --archc-bin /path/to/bench_zoo  # a prebuilt binary

It first builds bench_zoo (`cargo build --release -p archc-runtime --example bench_zoo`; set
CARGO_BUILD_JOBS to limit the build's jobs). `--skip-build` uses the one already built; `--archc-bin` times a
bench_zoo binary built elsewhere (another commit's worktree, another target directory) instead, and builds
nothing; its path is absolute or relative to the current directory. (Before issue 13 this script timed the
root crate's bench_googlenet example, GoogLeNet only; bench_zoo includes GoogLeNet now, as `googlenet`.)

Those Python packages are needed only here, never by the Rust build or its tests.

Weights and inputs (bench/common.py, shared with bench/zoo.py): `torchvision.models.<net>(weights=None)`
with torch's seed 0, then every batch norm's running statistics measured on random images, so that the batch
norms archc folds are not the identity; saved once as safetensors and loaded by every engine (PyTorch through
`load_state_dict`, archc by the state_dict names, ONNX Runtime from a `torch.onnx.export` of that model, opset
17, batch dimension dynamic). One seeded random input per batch size, 224x224 (299x299 for Inception-v3),
saved too, so all engines see the same values.

Correctness first: before anything is timed, archc's logits (every configuration timed) and ONNX Runtime's
for each input are checked against PyTorch's eval-mode logits (one thread), max |a - b| / max |b| <= 1e-3;
the tables show that error, an engine beyond it is marked MISMATCH, and the script then exits with status 1.

Timing: every engine runs in a fresh process of its own (so its peak resident memory, `VmHWM`, is its own),
with one thread per CPU it may run on (all of them, or `--cpus`): PyTorch `torch.set_num_threads`, ONNX Runtime
`intra_op_num_threads` with every graph optimisation, archc `RAYON_NUM_THREADS`. With more than one thread
PyTorch runs twice, the second time with `OMP_WAIT_POLICY=PASSIVE`, and the better of the two is the PyTorch
time the ratios take: on a machine whose cores other processes use too, OpenMP's default spinning at barriers
can make PyTorch many times slower (bench/zoo.py does the same). A measurement is the median of `--iters` timed
forward passes after `--warmup` untimed ones; the networks, batch sizes and engines run round-robin `--rounds`
times and the best median of each is kept, which damps interference from anything else running on the machine.
archc runs with all its optimisations; `--breakdown` times it also with plain candle layers and with each
optimisation switched off in turn. Prints, for bench/RESULTS.md, the command, the machine's load average before
and after, a table per network and a summary table.
"""

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import (BENCH_ZOO_NETS, TOLERANCE, ZOO_BIN, archc_cmd, check, input_path, input_size,
                    load_torch_model, macs_per_image, peak_rss_kib, prepare, prepared, relative_error,
                    run_child, time_calls, torch_logits_path, torch_worker)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = ["googlenet", "resnet50", "inception_v3", "mobilenet_v2"]
TITLES = {
    "googlenet": "GoogLeNet",
    "resnet50": "ResNet-50",
    "inception_v3": "Inception-v3",
    "mobilenet_v2": "MobileNet-V2",
}
ARCHC_ALL = ("archc (all optimisations)", "all")
# With --breakdown: plain candle layers, and everything but one optimisation, so that what each one brings is
# measured against the same fully optimised model (see runtime/src/fused.rs).
ARCHC_BREAKDOWN = [
    ("archc, plain candle layers", "none"),
    ("archc without one-pass pools", "all,-pool"),
    ("archc without BN/ReLU folding", "all,-fold"),
    ("archc without the conv kernel", "all,-conv,-depthwise,-fold,-winograd,-shallow,-pooled,-concat"),
    ("archc without Winograd", "all,-winograd"),
    ("archc without sibling 1x1 fusion", "all,-siblings"),
    ("archc without micro-batches", "all,-micro"),
    ("archc without retained memory", "all,-memory"),
    ("archc without spinning threads", "all,-spin"),
    ("archc without separable bands", "all,-bands"),
    ("archc without the shallow kernel", "all,-shallow"),
    ("archc without pooled bands", "all,-pooled"),
    ("archc without concatenations in place", "all,-concat"),
    ARCHC_ALL,
]
TORCH = "PyTorch eager"
# With more than one thread PyTorch's OpenMP workers spin at its barriers by default; on a core another
# process also wants, a spinning thread holds it while the one it waits for cannot run (GoogLeNet took 356 ms
# instead of 34 ms while another session built on this 2-core box). So PyTorch runs both ways and its better
# time is the one the others are compared with (as bench/zoo.py does); on an idle machine spinning is faster.
TORCH_PASSIVE = "PyTorch eager, OMP_WAIT_POLICY=PASSIVE"
ORT = "ONNX Runtime"


def onnx_path(workdir, net):
    return os.path.join(workdir, f"{net}.onnx")


def export_onnx(workdir, net):
    """Exports the network with the saved weights to <net>.onnx, the batch dimension dynamic."""
    import torch

    model = load_torch_model(workdir, net)
    size = input_size(net)
    x = torch.randn(1, 3, size, size)
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
    )
    try:
        torch.onnx.export(model, (x,), onnx_path(workdir, net), dynamo=False, **kwargs)
    except TypeError:  # older torch without the `dynamo` switch
        torch.onnx.export(model, (x,), onnx_path(workdir, net), **kwargs)


def ort_session(workdir, net, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_path(workdir, net), options, providers=["CPUExecutionProvider"])


def ort_feed(workdir, net, batch):
    import numpy as np
    from safetensors.numpy import load_file

    return {"input": load_file(input_path(workdir, net, batch))["input"].astype(np.float32)}


def ort_check(workdir, net, batch, threads):
    """ONNX Runtime's logits for the saved input against PyTorch's: the relative error."""
    import torch
    from safetensors.torch import load_file

    got = ort_session(workdir, net, threads).run(None, ort_feed(workdir, net, batch))[0]
    want = load_file(torch_logits_path(workdir, net, batch))["logits"]
    return relative_error(torch.from_numpy(got), want)


def ort_worker(workdir, net, batch, threads, iters, warmup):
    """Runs in its own process: times ONNX Runtime on the exported model and the saved input, prints a JSON
    line."""
    session = ort_session(workdir, net, threads)
    feed = ort_feed(workdir, net, batch)
    ms = time_calls(lambda: session.run(None, feed), iters, warmup)
    print(json.dumps({"ms_per_batch": ms, "threads": threads, "peak_rss_kib": peak_rss_kib()}))


def versions():
    import onnxruntime
    import torch
    import torchvision

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        commit = (commit + ("+changes" if dirty else "")) or "?"
    except OSError:
        commit = "?"
    return (f"archc {commit}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"ONNX Runtime {onnxruntime.__version__}")


def fmt_error(e):
    return f"{e:.1e}" if e <= TOLERANCE else f"MISMATCH {e:.1e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=NETS, choices=BENCH_ZOO_NETS, metavar="NET",
                        help=f"networks to time, of {', '.join(BENCH_ZOO_NETS)} (default: {' '.join(NETS)})")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--iters", type=int, default=10, help="timed passes per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    parser.add_argument("--rounds", type=int, default=1, help="round-robin repetitions; the best median is kept")
    parser.add_argument("--breakdown", action="store_true",
                        help="time archc also with plain candle layers and with each optimisation off in turn")
    parser.add_argument("--skip-build", action="store_true", help="use the already built bench_zoo")
    parser.add_argument(
        "--archc-bin",
        help="a prebuilt bench_zoo binary to time instead of this checkout's (implies --skip-build)",
    )
    parser.add_argument(
        "--cpus",
        help="comma-separated CPU numbers to run every engine on (e.g. 0 for one core); "
        "each engine uses one thread per CPU",
    )
    parser.add_argument("--workdir", help="keep weights, inputs and ONNX models here (reused when present) "
                        "instead of a temporary directory removed at exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pytorch":
        torch_worker(args.workdir, args.net, args.batch, args.threads, args.iters, args.warmup)
        return
    if args.worker == "onnxruntime":
        ort_worker(args.workdir, args.net, args.batch, args.threads, args.iters, args.warmup)
        return
    if min(args.batches) < 1 or args.iters < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--batches, --iters and --rounds must be at least 1, --warmup at least 0")

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import safetensors  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        raise SystemExit(
            f"{e}: install the comparison's Python packages with\n"
            "  pip install torch torchvision onnx onnxscript onnxruntime safetensors"
        )
    binary = os.path.abspath(args.archc_bin) if args.archc_bin else ZOO_BIN
    if not args.archc_bin and not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "archc-runtime", "--example", "bench_zoo"],
                       cwd=ROOT, check=True)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary}: not an executable file (build it with cargo build --release -p "
                         "archc-runtime --example bench_zoo, or drop --skip-build)")
    if args.cpus:
        # Inherited by every engine's process; PyTorch and ONNX Runtime get the thread count below.
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    cpus = sorted(os.sched_getaffinity(0))
    threads = len(cpus)
    # rayon's pool and candle's matrix products both follow RAYON_NUM_THREADS.
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    if args.workdir:
        workdir = args.workdir
        os.makedirs(workdir, exist_ok=True)
    else:
        # Some hundreds of MB (weights twice, as safetensors and ONNX, and the inputs): removed at exit.
        workdir = tempfile.mkdtemp(prefix="archc-compare-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)

    archc_configs = ARCHC_BREAKDOWN if args.breakdown else [ARCHC_ALL]
    # (label, archc optimisations or the Python worker, extra environment)
    engines = [(TORCH, "pytorch", {})]
    if threads > 1:
        engines.append((TORCH_PASSIVE, "pytorch", {"OMP_WAIT_POLICY": "PASSIVE"}))
    engines.append((ORT, "onnxruntime", {}))
    engines += [(label, variant, {}) for label, variant in archc_configs]
    torch_labels = [label for label, engine, _ in engines if engine == "pytorch"]
    errors = {}
    for net in args.nets:
        if not prepared(workdir, net, args.batches) or not os.path.exists(onnx_path(workdir, net)):
            print(f"preparing {net}: weights, inputs, PyTorch's logits, ONNX export", file=sys.stderr)
            prepare(workdir, net, args.batches)
            export_onnx(workdir, net)
        for batch in args.batches:
            errors[(net, batch, ORT)] = ort_check(workdir, net, batch, threads)
            for label, variant in archc_configs:
                errors[(net, batch, label)] = check(binary, workdir, net, variant, batch, env)
            for label in [ORT] + [label for label, _ in archc_configs]:
                print(f"{net:14} batch {batch} {label:34} logits relative error {errors[(net, batch, label)]:.2e}",
                      file=sys.stderr)

    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    begin = time.monotonic()
    best = {}
    for _ in range(args.rounds):
        for net in args.nets:
            for batch in args.batches:
                for label, engine, extra_env in engines:
                    if engine in ("pytorch", "onnxruntime"):
                        cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--net", net,
                               "--batch", str(batch), "--threads", str(threads), "--iters", str(args.iters),
                               "--warmup", str(args.warmup), "--workdir", workdir]
                    else:
                        cmd = archc_cmd(binary, workdir, net, engine, batch, args.iters, args.warmup)
                    result = run_child(cmd, dict(env, **extra_env))
                    key = (net, batch, label)
                    if key not in best or result["ms_per_batch"] < best[key]["ms_per_batch"]:
                        best[key] = result
                    print(f"{net:14} batch {batch} {label:34} {result['ms_per_batch']:9.2f} ms/batch "
                          f"{result['ms_per_batch'] / batch:8.2f} ms/image", file=sys.stderr)
    load_after = os.getloadavg()
    minutes = (time.monotonic() - begin) / 60

    command = " ".join(["python3", "bench/compare.py"] + sys.argv[1:])
    print(f"\nCommand: `{command}`\n")
    print(f"{started}, timing took {minutes:.1f} min; {versions()}; CPUs {cpus} ({threads} thread(s) per "
          f"engine); load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}, after "
          f"{', '.join(f'{v:.2f}' for v in load_after)}; median of {args.iters} passes after {args.warmup} "
          f"warm-up, best of {args.rounds} round(s).")

    def ms(net, batch, label):
        return best[(net, batch, label)]["ms_per_batch"]

    def rss(net, batch, label):
        kib = best[(net, batch, label)].get("peak_rss_kib")
        return f"{kib / 1024:.0f}" if kib else "?"

    def torch_best(net, batch):
        """PyTorch's better configuration: the one every ratio is taken against."""
        return min(torch_labels, key=lambda label: ms(net, batch, label))

    for net in args.nets:
        size = input_size(net)
        macs = macs_per_image(net)
        print(f"\n### {TITLES.get(net, net)} (`{net}`), {size}×{size}, {macs / 1e9:.2f} GMAC per image\n")
        print("| engine | batch | ms/batch | ms/image | GMAC/s | peak RSS (MiB) | ÷ ONNX Runtime | ÷ PyTorch "
              "| logits rel. error |")
        print("|---|---|---|---|---|---|---|---|---|")
        for batch in args.batches:
            torch_ms = ms(net, batch, torch_best(net, batch))
            for label, _, _ in engines:
                t = ms(net, batch, label)
                per_image = f"{t / batch:.2f}"
                name = label
                if label == ARCHC_ALL[0]:
                    name, per_image = f"**{label}**", f"**{per_image}**"
                error = "reference" if label in torch_labels else fmt_error(errors[(net, batch, label)])
                print(f"| {name} | {batch} | {t:.1f} | {per_image} | {macs * batch / (t * 1e-3) / 1e9:.1f} "
                      f"| {rss(net, batch, label)} | {t / ms(net, batch, ORT):.2f}x "
                      f"| {t / torch_ms:.2f}x | {error} |")

    archc = ARCHC_ALL[0]
    print("\n### Summary: archc (all optimisations) against ONNX Runtime and PyTorch eager\n")
    print("| network | input | batch | ONNX Runtime (ms/image) | PyTorch (ms/image) | archc (ms/image) "
          "| archc ÷ ORT | archc ÷ PyTorch | peak RSS ORT / PyTorch / archc (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for net in args.nets:
        size = input_size(net)
        for batch in args.batches:
            torch_label = torch_best(net, batch)
            o, p, a = (ms(net, batch, label) for label in (ORT, torch_label, archc))
            print(f"| {TITLES.get(net, net)} | {size}×{size} | {batch} | {o / batch:.2f} | {p / batch:.2f} "
                  f"| {a / batch:.2f} | {a / o:.2f}x | {a / p:.2f}x "
                  f"| {' / '.join(rss(net, batch, label) for label in (ORT, torch_label, archc))} |")

    if not all(e <= TOLERANCE for e in errors.values()):
        print(f"\nlogits differ from PyTorch's by more than {TOLERANCE:g} (relative) for some engine",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
