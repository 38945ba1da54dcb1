#!/usr/bin/env bash
# Every test of the project, in one command (the README's test command; .ci/run runs it):
# the Rust suite (unit, parity, loader, CLI, C and C++ programs under sanitizers and Valgrind,
# header freshness), then each language binding's own suite over the C ABI (Python, Java), then
# the pipeline (encoder, dataset, train/eval commands) on the real model and data.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test
bash bindings/python/test.sh
bash bindings/java/test.sh
# The retrieval pipeline on real text: the encoder's parity, the dataset reader and the
# commands end to end on a slice (release: the encoder is slow unoptimised).
export RRRA_MINILM_DIR="$(bash scripts/fetch-minilm.sh)"
export RRRA_DATA_DIR="$(bash scripts/fetch-debian-descriptions.sh)"
cargo test --release --features pipeline --test encoder --test dataset --test pipeline
