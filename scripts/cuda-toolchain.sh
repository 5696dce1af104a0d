#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs from NVIDIA's wheels on PyPI into a local folder, no system
# CUDA install and no GPU needed, and prints the environment to build with:
#
#     eval "$(scripts/cuda-toolchain.sh)"                 # everything, for `cargo build --features cuda`
#     eval "$(scripts/cuda-toolchain.sh --check-only)"    # nvcc and headers only, for `cargo check --features cuda`
#     cargo build --release -p archc-runtime --features cuda
#
# What each piece is for:
# - nvcc, nvvm (cicc, libdevice), crt and cccl headers, the runtime headers (cuda_fp16.h, cuda_bf16.h): candle-kernels'
#   build script compiles its kernels to PTX (loaded by the driver at run time) and a static library of
#   quantised-matmul kernels with nvcc. cudarc's build script reads the CUDA version from `nvcc --version`.
# - libcudart, libcublas, libcublasLt, libcurand, libnvrtc: candle links them dynamically (cudarc's
#   `dynamic-linking`); the binary records only their sonames (libcublas.so.13, ...), and finds them at run time
#   on the GPU machine. `--check-only` skips these (cargo check does not link), which saves a 420 MB download.
# - libcuda (the driver) is not in any toolkit wheel: it ships with the GPU driver. For linking, a stub
#   `lib/stubs/libcuda.so` is made here from the driver API's function names in cuda.h, with the driver's soname
#   libcuda.so.1, as NVIDIA's own toolkit stubs are; at run time the real driver is loaded instead.
#
# The versions are those of the `cuda-toolkit==13.0.2` meta-package: CUDA 13.0 is what the GPU machine's driver
# (580) and its PyTorch (cu130) use. A newer nvcc would emit PTX the 580 driver cannot load.
# CUDA_COMPUTE_CAP defaults to 90 (H100/H200); set it before running for another GPU.
# Options: --check-only (see above); the folder is .cuda-toolchain/ in the repository, or $CUDA_TOOLCHAIN_DIR.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${CUDA_TOOLCHAIN_DIR:-$repo/.cuda-toolchain}
check_only=false
for arg in "$@"; do
    case $arg in
        --check-only) check_only=true ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "cuda-toolchain.sh: unknown option $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

compile_wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
)
link_wheels=(
    nvidia-cublas==13.1.0.3
    nvidia-curand==10.4.0.35
    nvidia-cuda-nvrtc==13.0.88
)
wheels=("${compile_wheels[@]}")
$check_only || wheels+=("${link_wheels[@]}")

site=$dir/site
root=$site/nvidia/cu13
stamp=$dir/installed.txt
# Reinstall only when a wanted wheel is not in the last install (a full install also serves --check-only). pip
# replaces the whole nvidia/ folder of --target, so every wheel wanted goes in one call.
missing() {
    if [ -f "$stamp" ]; then
        printf '%s\n' "${wheels[@]}" | grep -vxFf "$stamp" || true
    else
        printf '%s\n' "${wheels[@]}"
    fi
}
if [ -z "$(missing)" ]; then
    echo "cuda-toolchain: $dir is up to date" >&2
else
    echo "cuda-toolchain: installing ${wheels[*]} into $dir" >&2
    mkdir -p "$dir"
    rm -f "$stamp"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --upgrade --target "$site" "${wheels[@]}" >&2
    printf '%s\n' "${wheels[@]}" >"$stamp"
fi

# nvcc.profile looks for headers and libraries under targets/x86_64-linux, as in a toolkit install.
mkdir -p "$root/targets/x86_64-linux"
ln -sfn ../../include "$root/targets/x86_64-linux/include"
ln -sfn ../../lib "$root/targets/x86_64-linux/lib"
# The wheels hold only versioned libraries (libcudart.so.13); the linker's -lcudart wants libcudart.so.
for lib in "$root"/lib/lib*.so.*; do
    [ -e "$lib" ] || continue
    base=$(basename "$lib")
    ln -sfn "$base" "$root/lib/${base%%.so.*}.so"
done

stub=$root/lib/stubs/libcuda.so
if [ ! -f "$stub" ] || [ "$root/include/cuda.h" -nt "$stub" ]; then
    mkdir -p "$root/lib/stubs"
    src=$dir/libcuda_stub.c
    {
        echo "/* Link-time stand-in for the CUDA driver (libcuda.so.1), generated from cuda.h by $(basename "$0"). */"
        grep -oE '\bcu[A-Z][A-Za-z0-9_]*\b' "$root/include/cuda.h" | sort -u | sed 's/.*/int &(void) { return 34; }/'
    } >"$src"
    # 34 is CUDA_ERROR_STUB_LIBRARY, what NVIDIA's stub returns if it is ever loaded instead of the driver.
    ${CC:-cc} -shared -fPIC -o "$stub" -Wl,-soname,libcuda.so.1 "$src"
fi

"$root/bin/nvcc" --version >/dev/null || {
    echo "cuda-toolchain: $root/bin/nvcc does not run" >&2
    exit 1
}

cat <<EOF
export CUDA_ROOT="$root"
export CUDA_PATH="$root"
export CUDA_HOME="$root"
export PATH="$root/bin:\$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13000
EOF
