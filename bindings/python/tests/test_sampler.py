"""The SPEC §5 sampler draws exactly the Rust known answers (tests/parity.rs of the crate).

SAMPLER_KATS and SAMPLER_EDGE_KATS below are copied from the crate's tests/parity.rs, which
tests/sampler_kat.py generates independently of the crate. Every log s_RS value is a multiple
of 1/8 (or -1000), exactly representable in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
import rrra

NOT_DRAWN = "NOT_DRAWN"

# (name, seed, query_index, log_s_rs, mask or None, expected (padded), count)
SAMPLER_KATS = [
    ("basic", 0x000000000012D687, 0x0000000000000000,
     [-0.5, -1.25, -3.0, -0.125, -2.0, -0.75, -5.5, -1.0], None, [0, 1, 5], 3),
    ("ties_masked", 0x000000000000002A, 0x0000000000000007,
     [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0], [0, 1, 0, 0, 1, 0, 0, 0, 0, 1],
     [8, 0, 3, 2], 4),
    ("underflow_and_positive", 0xDEADBEEFCAFEF00D, 0x0000010000000003,
     [-1000.0, 0.5, -2.25, -1000.0, 2.0, -0.375, -1000.0], [0, 0, 1, 0, 0, 0, 0],
     [4, 1, 5, 0, 3, 6, NOT_DRAWN, NOT_DRAWN, NOT_DRAWN], 6),
    ("empty", 0x0000000000000000, 0x0000000000000000, [], None, [NOT_DRAWN, NOT_DRAWN], 0),
    ("all_underflow", 0x0000000000000063, 0x0000000000000001,
     [-1000.0, -1000.0, -1000.0, -1000.0, -1000.0], [0, 0, 1, 0, 0], [0, 1, 3], 3),
    ("query_index_max", 0x00000000000007E8, 0xFFFFFFFFFFFFFFFF,
     [-0.25, -4.0, -0.625, -1.5, -0.125, -8.0], None, [4, 0, 2, 3], 4),
    ("zero_n", 0x0000000000000005, 0x0000000000000005, [-1.0, -2.0, -3.0], None, [], 0),
    ("twenty", 0x0123456789ABCDEF, 0x000000000000001F,
     [-0.0, -4.625, -4.125, -3.625, -3.125, -2.625, -2.125, -1.625, -1.125, -0.625, -0.125, -4.75, -4.25, -3.75,
      -3.25, -2.75, -2.25, -1.75, -1.25, -0.75],
     [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0], [19, 9, 5, 18, 0, 8], 6),
    ("u_is_one", 0xAF55F34F046B4DBE, 0x0000000000000000, [-5.0, -1.0, -0.5], None, [0, 2, 1], 3),
]

SAMPLER_EDGE_KATS = [
    ("u_is_one_weight_underflows", 0xAF55F34F046B4DBE, 0x0000000000000000,
     [-1000.0, -1000.0, -1.0], None, [2, 0, 1], 3),
    ("u_is_one_weight_underflows_q5", 0x842E50AE809FD9D5, 0x0000000000000005,
     [-1000.0, -0.5, -1000.0], None, [1, 0, 2], 3),
]

ALL = SAMPLER_KATS + SAMPLER_EDGE_KATS


@pytest.mark.parametrize("kat", ALL, ids=[k[0] for k in ALL])
def test_known_answers(kat):
    name, seed, query_index, log_s_rs, mask, expected, count = kat
    n = len(expected)
    drawn = [x for x in expected if x != NOT_DRAWN]
    assert len(drawn) == count
    # The test's own sampler agrees with the KAT (guards the copy above).
    assert reference.sample(log_s_rs, mask, seed, query_index, n) == drawn
    scores = np.array(log_s_rs, dtype=np.float32)
    got = rrra.sample_negatives(scores, n, seed, query_index, None if mask is None else np.array(mask, dtype=bool))
    assert got.tolist() == drawn, name
    assert got.dtype == np.int64


@pytest.mark.parametrize("kat", SAMPLER_KATS, ids=[k[0] for k in SAMPLER_KATS])
def test_known_answers_through_resample(make, kat):
    """The same draws through rrra_session_resample.

    With base_transform = softmax (τ = 1) and γ = 0, log s_RS = b − logsumexp(b): the KAT's
    values shifted by one constant, which multiplies every Efraimidis–Spirakis key by the same
    positive factor and so leaves the draws unchanged (-1000 still underflows after the shift
    when some value is large). Where every value underflows, the shift would bring them back
    into range; there the sigmoid transform is used, under which log s_B(-1000) = -1000. The
    draws must equal the sampler applied to the returned log s_RS, and the KAT's own answer.
    """
    name, seed, query_index, log_s_rs, mask, expected, count = kat
    transform = "sigmoid" if log_s_rs and max(log_s_rs) <= -100 else "softmax"
    made = make(d=3, h=2, seed=1, base_transform=transform, gamma_rs=0.0)
    k, n = len(log_s_rs), len(expected)
    c = np.zeros((k, 3), dtype=np.float32)
    with rrra.Session(made.adapter) as session:
        r = session.resample(np.ones(3, np.float32), c, np.array(log_s_rs, np.float32), samples_per_query=n,
                             seed=seed, query_index=query_index,
                             positive_mask=None if mask is None else np.array(mask, bool))
    assert r.samples.tolist() == reference.sample(r.log_s_rs.astype(np.float64), mask, seed, query_index, n)
    assert r.samples.tolist() == [x for x in expected if x != NOT_DRAWN], name
    assert r.count == count


def test_random_scores_match_reference_sampler():
    rng = np.random.default_rng(2024)
    for trial in range(200):
        k = int(rng.integers(0, 40))
        scores = (rng.normal(size=k) * rng.choice([0.1, 1, 10, 60])).astype(np.float32)
        mask = rng.random(k) < 0.2 if trial % 2 else None
        n = int(rng.integers(0, 12))
        seed = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(2))
        qi = int(rng.integers(0, 2**63))
        got = rrra.sample_negatives(scores, n, seed, qi, mask)
        assert got.tolist() == reference.sample(scores.astype(np.float64), mask, seed, qi, n)


def test_sampler_errors():
    with pytest.raises(rrra.NonFiniteInputError) as e:
        rrra.sample_negatives(np.array([0.0, np.nan], np.float32), 1, 0, 0)
    assert "log_s_rs" in str(e.value) or "NaN" in str(e.value)
    with pytest.raises(rrra.InvalidArgumentError) as e:
        rrra.sample_negatives(np.zeros(3, np.float32), 1, 0, 0, positive_mask=[True, False])
    assert "mask" in str(e.value)
    with pytest.raises(ValueError, match="seed"):
        rrra.sample_negatives(np.zeros(3, np.float32), 1, -1, 0)
    with pytest.raises(ValueError, match="query_index"):
        rrra.sample_negatives(np.zeros(3, np.float32), 1, 0, 2**64)
    with pytest.raises(TypeError, match="log_s_rs"):
        rrra.sample_negatives(np.zeros(3, np.int32), 1, 0, 0)
