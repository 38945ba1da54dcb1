#!/usr/bin/env bash
# Every test of the project, in one command (the README's test command; .ci/run runs it):
# the Rust suite (unit, parity, loader, CLI, C and C++ programs under sanitizers and Valgrind,
# header freshness), then each language binding's own suite over the C ABI (Python, Java).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test
bash bindings/python/test.sh
bash bindings/java/test.sh
RRRA_MINILM_DIR="$(bash scripts/fetch-minilm.sh)" cargo test --features encoder --test encoder
