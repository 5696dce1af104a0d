#!/usr/bin/env python3
"""Depthwise and grouped convolution layers of MobileNet-V2, EfficientNet-B0, ShuffleNet-V2 and ResNeXt-50:
archc's plan (the depthwise kernel), archc's previous path (im2col and a product per group), candle's grouped
conv2d (a convolution per group) and PyTorch eager, at the same thread count, batch 1, f32.

    python bench/depthwise.py --threads 1 --rounds 5          # needs torch; builds the Rust example first

The Rust paths run in one process (runtime/examples/bench_depthwise.rs), interleaved; PyTorch runs in this
process between the Rust runs, so each round times every engine once, and the table gives each engine's
median over the rounds. Ratios are taken within a layer.
"""

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (where the layer comes from, "channels,height,width,kernel,stride,groups"); padding kernel // 2, no bias.
LAYERS = [
    ("MobileNet-V2 features.1 (dw)", "32,112,112,3,1,32"),
    ("MobileNet-V2 features.2 (dw)", "96,112,112,3,2,96"),
    ("MobileNet-V2 features.3 (dw)", "144,56,56,3,1,144"),
    ("MobileNet-V2 features.4 (dw)", "144,56,56,3,2,144"),
    ("MobileNet-V2 features.7 (dw)", "384,14,14,3,1,384"),
    ("MobileNet-V2 features.17 (dw)", "960,7,7,3,1,960"),
    ("ShuffleNet-V2 stage3 (dw)", "116,14,14,3,1,116"),
    ("EfficientNet-B0 stage 4 (dw 5x5)", "144,56,56,5,2,144"),
    ("EfficientNet-B0 stage 6 (dw 5x5)", "672,14,14,5,1,672"),
    ("EfficientNet-B0 stage 7 (dw 5x5)", "1152,7,7,5,1,1152"),
    ("ResNeXt-50 32x4d layer1 (grouped)", "128,56,56,3,1,32"),
    ("ResNeXt-50 32x4d layer3 (grouped)", "512,14,14,3,1,32"),
]

RUST_PATHS = ["candle grouped conv2d", "archc im2col per group", "archc"]


def build(target_dir):
    cmd = ["cargo", "build", "-j", "1", "--release", "-p", "archc-runtime", "--example", "bench_depthwise"]
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return Path(target_dir) / "release" / "examples" / "bench_depthwise"


def run_rust(binary, batch, iters, threads):
    args = [str(binary), "--batch", str(batch), "--iters", str(iters), "--rounds", "3"]
    for _, layer in LAYERS:
        args += ["--layer", layer]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run_torch(batch, iters, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    results = {}
    with torch.inference_mode():
        for _, layer in LAYERS:
            c, h, w, k, s, g = (int(v) for v in layer.split(","))
            x = torch.randn(batch, c, h, w)
            weight = torch.randn(c, c // g, k, k)
            F.conv2d(x, weight, None, s, k // 2, 1, g)
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                F.conv2d(x, weight, None, s, k // 2, 1, g)
                times.append((time.perf_counter() - start) * 1e3)
            results[layer] = statistics.median(times)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bin", help="a prebuilt bench_depthwise binary")
    parser.add_argument("--target-dir", default=str(ROOT / "target"))
    args = parser.parse_args()

    binary = Path(args.bin) if args.bin else build(args.target_dir)
    samples = {}  # (layer, engine) -> [ms per round]
    for _ in range(args.rounds):
        for row in run_rust(binary, args.batch, args.iters, args.threads):
            key = row["layer"].replace(" ", "")
            samples.setdefault((key, row["path"]), []).append(row["ms"])
        for layer, ms in run_torch(args.batch, args.iters, args.threads).items():
            samples.setdefault((layer, "PyTorch eager"), []).append(ms)

    import torch

    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.iters} calls, median of "
          f"{args.rounds} rounds; torch {torch.__version__}")
    print()
    print("| layer | shape (C, H×W, k, stride, groups) | candle (ms) | archc before (ms) | archc (ms) "
          "| PyTorch (ms) | candle / archc | before / archc | archc / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for where, layer in LAYERS:
        c, h, w, k, s, g = (int(v) for v in layer.split(","))
        key = f"{c}ch{h}x{w}{k}x{k}s{s}g{g}"
        med = {p: statistics.median(samples[(key, p)]) for p in RUST_PATHS}
        torch_ms = statistics.median(samples[(layer, "PyTorch eager")])
        candle, before, archc = (med[p] for p in RUST_PATHS)
        print(f"| {where} | {c}, {h}×{w}, {k}×{k}, {s}, {g} | {candle:.3f} | {before:.3f} | {archc:.3f} "
              f"| {torch_ms:.3f} | {candle / archc:.1f}x | {before / archc:.1f}x | {archc / torch_ms:.2f}x |")


if __name__ == "__main__":
    main()
