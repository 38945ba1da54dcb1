#!/usr/bin/env bash
# Builds and tests the Python binding from this checkout:
#   1. a virtual environment under ${RRRA_PY_VENV:-<repo>/target/python-venv} (kept between runs),
#   2. pinned numpy and pytest in it,
#   3. `pip install ./bindings/python`, which runs `cargo build --release --lib` and ships librrra.so,
#   4. pytest -q on bindings/python/tests.
# Needs python3 (>= 3.9) with the venv module, pip access to PyPI, and cargo. Exits non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${RRRA_PY_VENV:-$repo/target/python-venv}"
python="${PYTHON:-python3}"

NUMPY_VERSION="2.2.6"
PYTEST_VERSION="8.3.5"

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
"$vpy" -m pip install "${pip_quiet[@]}" "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION"
# Reinstall every time: the library may have changed since the last run (cargo rebuilds only what changed).
"$vpy" -m pip install "${pip_quiet[@]}" --force-reinstall --no-deps "$here"

# From the repository root, so `import rrra` finds the installed package, not bindings/python/rrra.
cd "$repo"
"$vpy" -m pytest -q -rs -p no:cacheprovider "$here/tests" "$@"
