#!/usr/bin/env bash
# Opens a broken .arch file in headless Neovim with `archc lsp` attached and prints the diagnostics (and the
# hover and inlay hints) Neovim's own LSP client received. Needs Neovim 0.7+ (`apt-get install -y neovim`).
#
#   editors/nvim-check.sh [FILE]        # default: tests/fixtures/errors/inception3b_columns_out_of_order.arch
#   ARCHC=path/to/archc editors/nvim-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-tests/fixtures/errors/inception3b_columns_out_of_order.arch}
if [ -z "${ARCHC:-}" ]; then
    cargo build --quiet --bin archc
    ARCHC="${CARGO_TARGET_DIR:-target}/debug/archc"
fi
export ARCHC
nvim --version | head -n 1
exec nvim --headless --clean -u editors/nvim/check.lua "$file"
