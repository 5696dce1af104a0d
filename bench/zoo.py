#!/usr/bin/env python3
"""Inference timing of the ten torchvision networks of architectures/ (issue 12): archc's generated model
(runtime/examples/bench_zoo.rs, built from each .arch file) against PyTorch eager, batch 1, eval mode, the
same weights, the same thread count, on the same machine in one run.

Usage (from the repository root; needs torch, torchvision and safetensors):

    python bench/zoo.py                                  # all ten networks, 1 and 2 threads
    python bench/zoo.py --threads 1 --rounds 3 --nets resnet18 mobilenet_v2
    python bench/zoo.py --variants all none conv,depthwise,fold,pool,siblings   # archc with options off

Weights: `torchvision.models.<net>(weights=None)` with torch's seed 0 (torchvision's own initialisation),
then every batch norm's running statistics measured on random images (a few training-mode passes with
momentum=None, as tests/zoo/make_fixtures.py does), so that the batch norms archc folds are not the
identity; saved once as safetensors and loaded by both engines, PyTorch through `load_state_dict`, archc by
the state_dict names, unrenamed. Input: one seeded random image, 224x224 (299x299 for Inception-v3), saved
too, so both engines see the same values. bench/common.py makes these files, as it does for bench/compare.py.

Correctness first: before it is timed, every archc configuration's logits for that input are checked against
PyTorch's eval-mode logits, max |a - b| / max |b| <= 1e-3; a network that
fails is reported as a mismatch, and the script exits with status 1, so a fast wrong model cannot look good.

Timing: each engine runs in a fresh process of its own, with `--threads` threads (PyTorch:
`torch.set_num_threads`, `OMP_NUM_THREADS`; archc: `RAYON_NUM_THREADS`, which rayon's pool and candle's
products both follow). With more than one thread PyTorch also runs with `OMP_WAIT_POLICY=PASSIVE`, and its
better time of the two is the one archc is compared with: on a machine whose cores other processes use too,
OpenMP's default spinning at barriers can make PyTorch many times slower than on one thread. A measurement is the median of `--iters` timed forward passes after `--warmup`
untimed ones; the engines and networks run round-robin `--rounds` times and the best median of each is kept,
which damps interference from anything else running on the machine. Prints Markdown tables for
bench/RESULTS.md with the load average before and after.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import (BENCH_ZOO_NETS, TOLERANCE, ZOO_BIN, archc_cmd, check, input_size, prepare, prepared, run_child,
                    torch_worker)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The ten networks of architectures/ (bench_zoo also builds torchvision's GoogLeNet, which compare.py times).
NETS = [net for net in BENCH_ZOO_NETS if net != "googlenet"]


def thread_env(threads):
    return dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=NETS, choices=NETS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iters", type=int, default=10, help="timed passes per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin repetitions; the best median is kept")
    parser.add_argument("--variants", nargs="+", default=["all"],
                        help="archc optimisation sets to time (bench_zoo --optimizations), the first being "
                             "the one the ratio is taken for")
    parser.add_argument("--bin", default=ZOO_BIN, help="a prebuilt bench_zoo binary")
    parser.add_argument("--before", help="another bench_zoo binary (an earlier commit's build) to time with all "
                             "optimisations in the same rounds, as `archc before`")
    parser.add_argument("--build", action="store_true", help="cargo build the binary first")
    parser.add_argument("--check-only", action="store_true", help="check the logits, time nothing")
    parser.add_argument("--workdir", help="keep weights here (reused when present) instead of a temp dir")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch_worker(args.workdir, args.net, 1, args.threads[0], args.iters, args.warmup)
        return

    if args.build:
        subprocess.run(["cargo", "build", "-j", "1", "--release", "-p", "archc-runtime", "--example",
                        "bench_zoo"], cwd=ROOT, check=True)
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary}: not built; run with --build or cargo build --release -p archc-runtime "
                         "--example bench_zoo")
    workdir = args.workdir or tempfile.mkdtemp(prefix="archc-zoo-")
    os.makedirs(workdir, exist_ok=True)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    errors = {}
    for net in args.nets:
        if not prepared(workdir, net, [1]):
            print(f"preparing {net}", file=sys.stderr)
            prepare(workdir, net, [1])
        for variant in args.variants:
            errors[(net, variant)] = check(binary, workdir, net, variant, 1, thread_env(2))
            print(f"{net:20} archc {variant:40} logits relative error {errors[(net, variant)]:.2e}",
                  file=sys.stderr)

    if args.check_only:
        worst = max(errors.values())
        print(f"worst logits relative error {worst:.1e}")
        sys.exit(0 if worst <= TOLERANCE else 1)
    # (label, archc optimisations or None for PyTorch, program, extra environment, multi-threaded runs only)
    engines = [
        ("PyTorch eager", None, None, {}, False),
        # With more than one thread PyTorch's OpenMP workers spin at its barriers by default; on a core
        # another process also wants, a spinning thread holds it while the one it waits for cannot run
        # (ResNet-50 took 2.6 s instead of 56 ms on this box). PyTorch's time is the better of the two.
        ("PyTorch eager, OMP_WAIT_POLICY=PASSIVE", None, None, {"OMP_WAIT_POLICY": "PASSIVE"}, True),
    ]
    engines += [(f"archc {v}", v, binary, {}, False) for v in args.variants]
    if args.before:
        before = os.path.abspath(args.before)
        engines.append(("archc before", "all", before, {}, False))
        for net in args.nets:
            errors[(net, "before")] = check(before, workdir, net, "all", 1, thread_env(2))
    best = {}
    for _ in range(args.rounds):
        for net in args.nets:
            for threads in args.threads:
                for label, variant, program, extra_env, multi_threaded_only in engines:
                    if multi_threaded_only and threads == 1:
                        continue
                    if variant is None:
                        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "pytorch", "--net", net,
                               "--threads", str(threads), "--iters", str(args.iters), "--warmup",
                               str(args.warmup), "--workdir", workdir]
                    else:
                        cmd = archc_cmd(program, workdir, net, variant, 1, args.iters, args.warmup)
                    ms = run_child(cmd, dict(thread_env(threads), **extra_env))["ms_per_batch"]
                    key = (net, threads, label)
                    best[key] = min(ms, best.get(key, float("inf")))
                    print(f"{net:20} {threads} thread(s) {label:45} {ms:9.2f} ms", file=sys.stderr)
    load_after = os.getloadavg()

    print(f"\n{started}; {os.cpu_count()} CPUs; load average (1, 5, 15 min) before "
          f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}; "
          f"batch 1, median of {args.iters} passes after {args.warmup} warm-up, best of {args.rounds} round(s).\n")
    archc_labels = [label for label, variant, *_ in engines if variant is not None]
    header = ["network", "input"]
    for threads in args.threads:
        torch_labels = ["PyTorch"] if threads == 1 else ["PyTorch", "PyTorch passive"]
        header += [f"{t} {threads}T (ms)" for t in torch_labels]
        header += [f"{label} {threads}T (ms)" for label in archc_labels]
        header += [f"archc ÷ PyTorch {threads}T"]
        if args.before:
            header += [f"before ÷ PyTorch {threads}T"]
    header += ["logits rel. error"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    failed = False
    for net in args.nets:
        size = input_size(net)
        row = [net, f"{size}×{size}"]
        for threads in args.threads:
            torch_times = [best[(net, threads, label)] for label, variant, _, _, multi in engines
                           if variant is None and (threads > 1 or not multi)]
            row += [f"{ms:.1f}" for ms in torch_times]
            torch_ms = min(torch_times)
            row += [f"{best[(net, threads, label)]:.1f}" for label in archc_labels]
            ratio = best[(net, threads, f"archc {args.variants[0]}")] / torch_ms
            row.append(f"**{ratio:.2f}x**" if ratio > 1 else f"{ratio:.2f}x")
            if args.before:
                row.append(f"{best[(net, threads, 'archc before')] / torch_ms:.2f}x")
        worst = max(e for (n, _), e in errors.items() if n == net)
        if not worst <= TOLERANCE:
            failed = True
        row.append(f"{worst:.1e}" if worst <= TOLERANCE else f"MISMATCH {worst:.1e}")
        print("| " + " | ".join(row) + " |")
    if failed:
        print(f"\nlogits differ from PyTorch's by more than {TOLERANCE:g} (relative) for some network",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
