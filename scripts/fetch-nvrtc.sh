#!/usr/bin/env bash
# Installs NVRTC (the PyPI wheel nvidia-cuda-nvrtc, which holds libnvrtc.so.13 and its builtins)
# into a virtual environment and prints, alone on stdout, the directory holding libnvrtc.so.13.
# tests/cuda_kernels.rs compiles the kernels with it, no GPU or CUDA toolkit needed.
# Usage: scripts/fetch-nvrtc.sh [CACHE_DIR]   (default: <repo>/target/nvrtc). Idempotent.
#
# The kernels include no CUDA header, so the headers NVRTC 13.3+ can unpack
# (nvrtcInstallBundledHeaders) are not needed; 13.5.37 is simply the newest 13.x release.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-$repo/target/nvrtc}"
pkg="nvidia-cuda-nvrtc"
version="13.5.37"
venv="$cache/venv-$version"
find_lib() {
    { find "$venv" -name 'libnvrtc.so.13' -path '*nvidia/cu13/lib/*' 2>/dev/null || true; } | head -n 1
}
lib="$(find_lib)"
if [ -z "$lib" ]; then
    mkdir -p "$cache"
    rm -rf "$venv"
    py="$(command -v python3 || command -v python)"
    "$py" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$pkg==$version" >&2
    lib="$(find_lib)"
    if [ -z "$lib" ]; then
        echo "fetch-nvrtc: libnvrtc.so.13 missing from $pkg==$version" >&2
        exit 1
    fi
fi
dirname "$lib"
