#!/usr/bin/env python3
"""Known-answer values for the SPEC §5 sampler, computed independently of the Rust crate.

Pure Python (no numpy). Prints the Rust constants that tests/parity.rs hard-codes:

    python3 tests/sampler_kat.py

Every log s_RS value below is a multiple of 1/8 (or -1000), so it is exactly representable as an
f32 and Python's f64 arithmetic sees the same numbers the Rust sampler sees.
"""

import math

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
NOT_DRAWN = 0xFFFFFFFF


class SplitMix64:
    """Steele, Lea & Flood (2014)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_open01(self):
        # int + float: the int converts exactly (< 2^53), then one IEEE f64 addition, as in Rust.
        return ((self.next_u64() >> 11) + 0.5) * 2.0 ** -53


def query_stream(seed, query_index):
    return SplitMix64(seed ^ ((GOLDEN * ((query_index + 1) & MASK64)) & MASK64))


def key(u, log_w):
    """ln(u) * exp(-log w) in f64. A weight that underflows (exp(-log w) overflows) gets key -inf,
    as SPEC §5 says, even where u == 1.0 would make the literal product 0 * inf = NaN."""
    try:
        scale = math.exp(-log_w)
    except OverflowError:
        return -math.inf
    return math.log(u) * scale


def seed_whose_first_uniform_is_one(query_index):
    """A seed whose stream for `query_index` starts with x = 2^64 - 1, i.e. u = ((2^53 - 1) + 0.5) * 2^-53,
    which rounds (ties to even) to exactly 1.0: SPEC §5's formula can reach the closed end."""
    def unxorshift(y, shift):
        x = y
        for _ in range(64 // shift + 1):
            x = y ^ (x >> shift)
        return x & MASK64
    z = MASK64
    z = unxorshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & MASK64
    z = unxorshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & MASK64
    z = unxorshift(z, 30)
    stream_seed = (z - GOLDEN) & MASK64
    seed = stream_seed ^ ((GOLDEN * ((query_index + 1) & MASK64)) & MASK64)
    assert query_stream(seed, query_index).next_open01() == 1.0
    return seed


def sample(log_s_rs, mask, seed, query_index, n):
    rng = query_stream(seed, query_index)
    keys = []
    for i, w in enumerate(log_s_rs):
        u = rng.next_open01()  # masked candidates consume their draw too
        if mask is not None and mask[i]:
            continue
        keys.append((key(u, w), i))
    keys.sort(key=lambda t: (-t[0], t[1]))  # largest key first, ties: lower index first
    drawn = [i for _, i in keys[:n]]
    return drawn + [NOT_DRAWN] * (n - len(drawn)), len(drawn)


# (name, seed, query_index, log_s_rs, mask or None, n)
CASES = [
    ("basic", 1234567, 0, [-0.5, -1.25, -3.0, -0.125, -2.0, -0.75, -5.5, -1.0], None, 3),
    ("ties_masked", 42, 7, [-1.0] * 10, [0, 1, 0, 0, 1, 0, 0, 0, 0, 1], 4),
    ("underflow_and_positive", 0xDEADBEEFCAFEF00D, (1 << 40) + 3,
     [-1000.0, 0.5, -2.25, -1000.0, 2.0, -0.375, -1000.0], [0, 0, 1, 0, 0, 0, 0], 9),
    ("empty", 0, 0, [], None, 2),
    ("all_underflow", 99, 1, [-1000.0] * 5, [0, 0, 1, 0, 0], 3),
    ("query_index_max", 2024, MASK64, [-0.25, -4.0, -0.625, -1.5, -0.125, -8.0], None, 4),
    ("zero_n", 5, 5, [-1.0, -2.0, -3.0], None, 0),
    ("twenty", 0x0123456789ABCDEF, 31,
     [-(((i * 37) % 41) / 8.0) for i in range(20)],
     [1 if i % 7 == 3 else 0 for i in range(20)], 6),
    # u == 1.0 for candidate 0: key ln(1) * exp(5) = 0, the largest possible key.
    ("u_is_one", seed_whose_first_uniform_is_one(0), 0, [-5.0, -1.0, -0.5], None, 3),
]

# u == 1.0 for candidate 0 whose weight underflows: SPEC §5 makes its key -inf (drawn after every
# finite key, ties by index), where the literal product would be 0 * inf = NaN.
EDGE_CASES = [
    ("u_is_one_weight_underflows", seed_whose_first_uniform_is_one(0), 0, [-1000.0, -1000.0, -1.0], None, 3),
    ("u_is_one_weight_underflows_q5", seed_whose_first_uniform_is_one(5), 5, [-1000.0, -0.5, -1000.0], None, 3),
]


def rust_f32_list(values):
    def one(v):
        text = repr(float(v))
        return text if "e" in text or "." in text else text + ".0"
    return "[" + ", ".join(one(v) for v in values) + "]"


def main():
    seed = 1234567
    rng = SplitMix64(seed)
    raw = [rng.next_u64() for _ in range(5)]
    print(f"const SPLITMIX_SEED: u64 = {seed};")
    print("const SPLITMIX_OUTPUTS: [u64; 5] = [" + ", ".join(f"0x{x:016X}" for x in raw) + "];")
    rng = SplitMix64(0)
    raw0 = [rng.next_u64() for _ in range(3)]
    print("const SPLITMIX_SEED0_OUTPUTS: [u64; 3] = [" + ", ".join(f"0x{x:016X}" for x in raw0) + "];")
    rng = query_stream(seed, 3)
    uniforms = [rng.next_open01() for _ in range(3)]
    print("/// Bit patterns of the first three uniforms of the stream for (seed 1234567, query 3).")
    print("const QUERY3_UNIFORM_BITS: [u64; 3] = ["
          + ", ".join(f"0x{_f64_bits(u):016X}" for u in uniforms) + "];")
    print_kats("SAMPLER_KATS", CASES)
    print_kats("SAMPLER_EDGE_KATS", EDGE_CASES)


def print_kats(const_name, cases):
    print()
    print(f"const {const_name}: &[SamplerKat] = &[")
    for name, seed, qi, w, mask, n in cases:
        drawn, count = sample(w, mask, seed, qi, n)
        mask_text = "None" if mask is None else "Some(&" + str(list(mask)) + ")"
        drawn_text = "[" + ", ".join("NOT_DRAWN" if x == NOT_DRAWN else str(x) for x in drawn) + "]"
        print("    SamplerKat {")
        print(f"        name: \"{name}\",")
        print(f"        seed: 0x{seed:016X},")
        print(f"        query_index: 0x{qi:016X},")
        print(f"        log_s_rs: &{rust_f32_list(w)},")
        print(f"        mask: {mask_text},")
        print(f"        expected: &{drawn_text},")
        print(f"        count: {count},")
        print("    },")
    print("];")


def _f64_bits(x):
    import struct
    return struct.unpack("<Q", struct.pack("<d", x))[0]


if __name__ == "__main__":
    main()
