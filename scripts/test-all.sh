#!/usr/bin/env bash
# Every test of the project, in one command (the README's test command; .ci/run runs it):
# the Rust suite (unit, parity, loader, CLI, C and C++ programs under sanitizers and Valgrind,
# header freshness), the CUDA kernels through NVRTC (no GPU needed; scripts/gpu-check.sh runs
# what needs one), then each language binding's own suite over the C ABI (Python, Java), then
# the pipeline (encoder, dataset, train/eval commands) on the real model and data.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test
# The CUDA kernels compile with NVRTC (the PyPI wheel; no GPU or CUDA toolkit) for sm_80 and sm_90
# without a register spill, and a build with the cuda feature chooses engines right on a machine
# without a GPU. The loader reads LD_LIBRARY_PATH at start, hence the variable on the command.
export RRRA_NVRTC_DIR="$(bash scripts/fetch-nvrtc.sh)"
LD_LIBRARY_PATH="$RRRA_NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cargo test --features cuda --test cuda_kernels --test cuda_engine -- --nocapture
bash bindings/python/test.sh
bash bindings/java/test.sh
# The retrieval pipeline on real text: the encoder's parity, the dataset reader and the
# commands end to end on a slice (release: the encoder is slow unoptimised).
export RRRA_MINILM_DIR="$(bash scripts/fetch-minilm.sh)"
export RRRA_DATA_DIR="$(bash scripts/fetch-debian-descriptions.sh)"
cargo test --release --features pipeline --test encoder --test dataset --test pipeline
