#!/usr/bin/env bash
# Builds and tests the Python binding from this checkout:
#   1. a virtual environment under ${RRRA_PY_VENV:-<repo>/target/python-venv} (kept between runs),
#   2. pinned numpy, pytest, ml_dtypes (bfloat16 arrays) and torch (CPU use of PyPI's CUDA build; see below) in it,
#   3. `pip install ./bindings/python`, which runs `cargo build --release --lib` and ships librrra.so,
#   4. pytest -q on bindings/python/tests.
# Needs python3 (>= 3.11, for torch) with the venv module, pip access to PyPI, and cargo. Exits non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${RRRA_PY_VENV:-$repo/target/python-venv}"
python="${PYTHON:-python3}"

NUMPY_VERSION="2.2.6"
PYTEST_VERSION="8.3.5"
# For the bfloat16 tests; the package itself recognises bfloat16 by name and does not need it.
ML_DTYPES_VERSION="0.6.0"
# torch for tests/test_torch.py (rrra.torch). PyPI's Linux x86_64 torch wheel is its CUDA build:
# libtorch_cuda/libtorch_python link the CUDA libraries (DT_NEEDED), so `--no-deps` torch alone does not
# import, even on a CPU-only machine. The CUDA libraries load without a GPU or driver, so we install
# torch --no-deps with exactly the wheels it needs to import and run on CPU: its pure-Python requirements
# and the nvidia-* libraries it links, but not triton (~1 GB, torch.compile on GPUs only), cuda-bindings,
# cuda-toolkit's headers or nvtx. Saves ~1 GB of the 5.4 GB a plain `pip install torch` makes.
# The versions are those a plain `pip install torch==$TORCH_VERSION` resolved; bump them together.
TORCH_VERSION="2.15.0"
TORCH_DEPS=(
    filelock==4.2.12 fsspec==2026.9.0 jinja2==3.1.6 markupsafe==3.0.4 mpmath==1.3.0 networkx==3.6.1
    sympy==1.14.0 typing-extensions==4.16.0
    nvidia-cublas==13.4.1.3 nvidia-cuda-cupti==13.2.86 nvidia-cuda-nvrtc==13.2.86
    nvidia-cuda-runtime==13.2.86 nvidia-cudnn-cu13==9.26.0.51 nvidia-cufft==12.2.0.57
    nvidia-cufile==1.17.1.22 nvidia-cusolver==12.2.0.11 nvidia-cusparse==12.7.10.12
    nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvjitlink==13.5.37
    nvidia-nvshmem-cu13==3.7.2
)

if ! command -v "$python" >/dev/null; then
    echo "bindings/python/test.sh: $python not found; install Python 3 (e.g. apt-get install python3 python3-venv)" >&2
    exit 1
fi
if ! command -v "${CARGO:-cargo}" >/dev/null; then
    echo "bindings/python/test.sh: cargo not found on PATH; the package build needs it" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "bindings/python/test.sh: '$python -m venv' failed. On Debian/Ubuntu install the venv module:" >&2
        echo "    apt-get install python3-venv" >&2
        exit 1
    fi
fi
vpy="$venv/bin/python"
echo "python: $("$vpy" --version) in $venv"

pip_quiet=(--quiet --disable-pip-version-check)
"$vpy" -m pip install "${pip_quiet[@]}" "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION" \
    "ml_dtypes==$ML_DTYPES_VERSION"
# --no-deps: the list above is torch's whole closure for CPU use (and with --no-deps pip skips its resolver
# and its complaint that triton and friends are missing).
"$vpy" -m pip install "${pip_quiet[@]}" --no-deps "torch==$TORCH_VERSION" "${TORCH_DEPS[@]}"
"$vpy" -c 'import torch; torch.ones(2) @ torch.ones(2)' || {
    echo "bindings/python/test.sh: torch $TORCH_VERSION does not import/run in $venv (see above)" >&2
    exit 1
}
# Reinstall every time: the library may have changed since the last run (cargo rebuilds only what changed).
"$vpy" -m pip install "${pip_quiet[@]}" --force-reinstall --no-deps "$here"

# tests/test_torch.py and the bfloat16 tests fail (rather than skip) without torch and ml_dtypes when
# these are set.
export RRRA_REQUIRE_TORCH=1 RRRA_REQUIRE_ML_DTYPES=1
# From the repository root, so `import rrra` finds the installed package, not bindings/python/rrra.
cd "$repo"
"$vpy" -m pytest -q -rs -p no:cacheprovider "$here/tests" "$@"
