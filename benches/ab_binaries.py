#!/usr/bin/env python3
"""Interleaved A/B of `rrra` binaries: `rrra bench` on each shape, each binary in turn, for a
number of rounds, then the best median and the minimum per shape and binary.

On a noisy machine (a small VM) two binaries timed one after the other can differ by 30 % for
nothing; alternating them round by round exposes both to the same phases. Build the binaries to
compare first, e.g. `git stash && cargo build --release && cp target/release/rrra /tmp/rrra-old`.

    python3 benches/ab_binaries.py --rounds 5 /tmp/rrra-old target/release/rrra \\
        --shape "384 1000 f32 1" --shape "768 100 f16 2"

A shape is "d k dtype threads [inputs]" (h = d; inputs, how the queries and candidates are
stored, is passed as `--inputs` when given). The same binary under two names compares two
shapes' settings, e.g. --shape "384 1000 f16 1 f32" --shape "384 1000 f16 1 f16".
"""
import argparse
import re
import subprocess


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--shape", action="append", required=True, help='"d k dtype threads [inputs]"')
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    results = {}
    for _ in range(args.rounds):
        for shape in args.shape:
            d, k, dtype, threads, *inputs = shape.split()
            for binary in args.binaries:
                command = [binary, "bench", "--d", d, "--h", d, "--k", k, "--queries", str(args.queries),
                           "--threads", threads, "--dtype", dtype] + [f"--inputs={i}" for i in inputs]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                m = re.search(r"median ([\d.]+) ms/query .*min ([\d.]+)", out)
                results.setdefault((shape, binary), []).append((float(m.group(1)), float(m.group(2))))
    print("| shape | binary | best median ms | median of medians ms | minimum ms |")
    print("|---|---|---|---|---|")
    for shape in args.shape:
        for binary in args.binaries:
            runs = results[(shape, binary)]
            medians = sorted(median for median, _ in runs)
            print(f"| {shape} | {binary} | {medians[0]:.3f} | {medians[len(medians) // 2]:.3f} | "
                  f"{min(low for _, low in runs):.3f} |")


if __name__ == "__main__":
    main()
