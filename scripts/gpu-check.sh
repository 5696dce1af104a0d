#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py says what it measures), in two halves:
#
#   scripts/gpu-check.sh build    here, with cargo: builds runtime/examples/gpu_check.rs with --features cuda
#                                 (toolchain from scripts/cuda-toolchain.sh unless nvcc is on PATH) and puts the
#                                 stripped binary, xz-compressed, in .gpu-check/ (git-ignored): the folder to
#                                 carry (6 MB; 51 MB uncompressed, mostly candle's embedded kernels)
#   scripts/gpu-check.sh run      on the GPU machine (no cargo, no network; python3 with torch, torchvision and
#                                 safetensors): runs the check; results in $OUT, or target/gpu-check/ without $OUT
#
# Extra arguments after `run` go to gpu_check.py (e.g. --budget-s 300, --no-compile); `run --device cpu --quick`
# is a dry run of the whole pipeline on a machine without a GPU (needs the same Python packages).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
binary=.gpu-check/gpu_check
packed=$binary.xz

case ${1:-} in
build)
    shift
    if ! command -v nvcc >/dev/null; then
        eval "$(scripts/cuda-toolchain.sh)"
    fi
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
    cargo build --release -p archc-runtime --features cuda --example gpu_check "$@"
    built=${CARGO_TARGET_DIR:-$repo/target}/release/examples/gpu_check
    mkdir -p .gpu-check
    rm -f "$binary" "$packed"
    strip -o "$binary" "$built"
    xz -T0 -6 "$binary"
    ls -l "$packed"
    ;;
run)
    shift
    out=${OUT:-$repo/target/gpu-check}
    mkdir -p "$out"
    [ -f "$packed" ] || {
        echo "gpu-check: $packed is missing: run \`scripts/gpu-check.sh build\` where cargo is, and carry .gpu-check" >&2
        exit 2
    }
    if [ ! -x "$binary" ] || [ "$packed" -nt "$binary" ]; then
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            "$packed" "$binary"
        chmod +x "$binary"
    fi
    # The CUDA libraries the binary links (cuBLAS, cuRAND, NVRTC, the runtime) come with PyTorch's NVIDIA wheels;
    # the driver (libcuda.so.1) with the machine.
    libs=$(python3 - <<'EOF'
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(root, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
EOF
)
    export LD_LIBRARY_PATH="$libs:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
    {
        echo "== $(date -u +%FT%TZ) $(uname -m)"
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
        echo "== shared libraries of $binary"
        ldd "$binary" | grep -E 'cuda|cublas|curand|nvrtc|not found' || true
    } 2>&1 | tee "$out/gpu-check.log"
    set +e
    PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --bin "$binary" --out "$out" "$@" 2>&1 | tee -a "$out/gpu-check.log"
    status=${PIPESTATUS[0]}
    echo "gpu-check: exit status $status; results in $out" | tee -a "$out/gpu-check.log"
    exit "$status"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
