"""rerank / resample against the float64 reference of SPEC §3–§4, within SPEC §6."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import reference
import rrra
from helpers import SETTINGS, close_abs, close_log, sessions


def base_for(transform, rng, k):
    """Base scores a transform accepts (identity needs b > 0), or None (sim(q, c))."""
    if transform == "identity":
        return rng.uniform(0.05, 2.0, size=k).astype(np.float32)
    return rng.normal(size=k).astype(np.float32)


def check_rerank(made, r, q, c, base=None, **overrides):
    ref = made.ref(q, c, base, **overrides)
    close_log(r.log_s_rr, ref["log_s_rr"], "log_s_rr")
    close_abs(r.s_fn, ref["s_fn"], 1e-5, "s_fn")
    close_abs(r.s_a, ref["s_a"], 1e-5 + 1e-4 * ref["s_a"], "s_a")
    close_abs(r.class_probs, ref["class_probs"], 1e-5, "class_probs")
    k = len(ref["log_s_rr"])
    assert r.order.dtype == np.int64 and sorted(r.order.tolist()) == list(range(k))
    # Stable sort of the library's own scores, and non-increasing in the reference (within §6).
    assert r.order.tolist() == np.argsort(-r.log_s_rr, kind="stable").tolist()
    ordered = ref["log_s_rr"][r.order]
    assert (np.diff(ordered) <= 2e-4 * np.maximum(1, np.abs(ordered[1:]))).all()


def check_resample(made, r, q, c, base, mask, n, seed, query_index, **overrides):
    ref = made.ref(q, c, base, **overrides)
    close_log(r.log_s_rs, ref["log_s_rs"], "log_s_rs")
    close_abs(r.s_fn, ref["s_fn"], 1e-5, "s_fn")
    # The draws are a pure function of the library's f32 log s_RS (exact in f64).
    want = reference.sample(r.log_s_rs.astype(np.float64), mask, seed, query_index, n)
    assert r.samples.tolist() == want
    assert r.count == len(want)
    assert r.samples.dtype == np.int64


@pytest.mark.parametrize("activation,similarity", list(itertools.product(reference.ACTIVATIONS, reference.SIMILARITIES)))
def test_rerank_matches_reference(make, activation, similarity):
    rng = np.random.default_rng(zlib.crc32(f"rerank/{activation}/{similarity}".encode()))
    for transform in reference.BASE_TRANSFORMS:
        made = make(d=7, h=5, seed=int(rng.integers(1 << 30)), activation=activation, similarity=similarity,
                    base_transform=transform, **SETTINGS)
        assert (made.adapter.activation, made.adapter.similarity, made.adapter.base_transform) == (
            activation, similarity, transform)
        for engine, session in sessions(made.adapter):
            assert session.engine == engine
            for k in (0, 1, 6, 23):
                q = rng.normal(size=7).astype(np.float32)
                c = (rng.normal(size=(k, 7)) + 0.5 * q).astype(np.float32)
                base = base_for(transform, rng, k)
                check_rerank(made, session.rerank(q, c, base), q, c, base)
                if transform != "identity":  # sim(q, c) may be <= 0, which identity refuses
                    check_rerank(made, session.rerank(q, c), q, c)


@pytest.mark.parametrize("activation,similarity", list(itertools.product(reference.ACTIVATIONS, reference.SIMILARITIES)))
def test_resample_matches_reference(make, activation, similarity):
    rng = np.random.default_rng(zlib.crc32(f"resample/{activation}/{similarity}".encode()))
    for transform in reference.BASE_TRANSFORMS:
        made = make(d=7, h=6, seed=int(rng.integers(1 << 30)), activation=activation, similarity=similarity,
                    base_transform=transform, **SETTINGS)
        for _, session in sessions(made.adapter):
            for k in (0, 1, 9, 30):
                q = rng.normal(size=7).astype(np.float32)
                c = rng.normal(size=(k, 7)).astype(np.float32)
                base = base_for(transform, rng, k)
                mask = rng.random(k) < 0.2
                seed, qi, n = int(rng.integers(1 << 63)), int(rng.integers(1000)), 4
                r = session.resample(q, c, base, samples_per_query=n, seed=seed, query_index=qi, positive_mask=mask)
                check_resample(made, r, q, c, base, mask, n, seed, qi)
                assert not set(r.samples.tolist()) & set(np.flatnonzero(mask).tolist())
                # The sampler alone draws the same from the same scores.
                alone = rrra.sample_negatives(r.log_s_rs, n, seed, qi, mask)
                assert alone.tolist() == r.samples.tolist()


def test_per_call_overrides(make):
    made = make(d=9, h=8, seed=3, activation="silu", **SETTINGS)
    rng = np.random.default_rng(5)
    q = rng.normal(size=9).astype(np.float32)
    c = rng.normal(size=(12, 9)).astype(np.float32)
    base = rng.uniform(0.1, 3, size=12).astype(np.float32)
    with rrra.Session(made.adapter) as session:
        for overrides in (
            dict(lambda_rr=0.0),
            dict(lambda_rr=2.5),
            dict(base_transform="identity"),
            dict(base_transform="softmax", base_tau=0.3),
            dict(base_mu=-1.0, base_tau=2.0),
        ):
            check_rerank(made, session.rerank(q, c, base, **overrides), q, c, base, **overrides)
        for overrides in (dict(gamma_rs=0.0), dict(gamma_rs=3.0, base_transform="softmax")):
            r = session.resample(q, c, base, samples_per_query=5, seed=9, **overrides)
            check_resample(made, r, q, c, base, None, 5, 9, 0, **overrides)


def test_every_cpu_kernel_matches_reference(make):
    # d = 37 is not a multiple of any vector width; k = 1 and 45 leave partial tiles.
    rng = np.random.default_rng(zlib.crc32(b"kernels"))
    made = make(d=37, h=41, seed=5, **SETTINGS)
    ran = []
    for kernel in rrra._lib.CPU_KERNELS[1:]:
        try:
            session = rrra.Session(made.adapter, engine="folded", cpu_kernel=kernel)
        except rrra.UnsupportedError as e:
            assert "instruction set" in str(e)
            continue
        with session:
            assert session.cpu_kernel == kernel
            ran.append(kernel)
            for k in (1, 45):
                q = rng.normal(size=37).astype(np.float32)
                c = (rng.normal(size=(k, 37)) + 0.5 * q).astype(np.float32)
                check_rerank(made, session.rerank(q, c), q, c)
    assert "portable" in ran
    with rrra.Session(made.adapter, engine="reference") as session:
        assert session.cpu_kernel == "auto"
        assert session.precision == "f32"
    with pytest.raises(ValueError, match="cpu_kernel"):
        rrra.Session(made.adapter, cpu_kernel="sse2")
    with pytest.raises(rrra.InvalidArgumentError, match="reference engine has no CPU kernels"):
        rrra.Session(made.adapter, engine="reference", cpu_kernel="portable")


def test_f16_precision_within_the_reduced_precision_tolerance(make):
    rng = np.random.default_rng(zlib.crc32(b"f16"))
    made = make(d=37, h=70, seed=6, **SETTINGS)
    try:
        session = rrra.Session(made.adapter, precision="f16")
    except rrra.UnsupportedError as e:
        pytest.skip(f"f16 precision is not available on this CPU: {e}")
    with session:
        assert session.precision == "f16"
        q = rng.normal(size=37).astype(np.float32)
        c = (rng.normal(size=(50, 37)) + 0.5 * q).astype(np.float32)
        r = session.rerank(q, c)
        ref = made.ref(q, c, None)
        np.testing.assert_allclose(r.log_s_rr, ref["log_s_rr"], rtol=2e-2, atol=2e-2)
        np.testing.assert_allclose(r.s_fn, ref["s_fn"], atol=2e-3)
        c[3, 4] = 1e5  # beyond half precision's range
        with pytest.raises(rrra.InvalidArgumentError, match="f16"):
            session.rerank(q, c)
    with pytest.raises(ValueError, match="precision"):
        rrra.Session(made.adapter, precision="fp8")
    with pytest.raises(rrra.UnsupportedError, match="bf16"):
        rrra.Session(made.adapter, engine="folded", precision="bf16")


def test_larger_dims_both_engines_agree(make):
    made = make(d=64, h=48, seed=11, activation="gelu", similarity="cosine", **SETTINGS)
    rng = np.random.default_rng(12)
    q = rng.normal(size=64).astype(np.float32)
    c = rng.normal(size=(100, 64)).astype(np.float32)
    results = []
    for _, session in sessions(made.adapter):
        r = session.rerank(q, c)
        check_rerank(made, r, q, c)
        results.append(r)
    assert len(results) >= 2
    for r in results[1:]:
        close_log(r.log_s_rr, results[0].log_s_rr.astype(np.float64), "engine vs reference")


def test_ragged_batch(make):
    made = make(d=7, h=5, seed=21, activation="tanh", base_transform="softmax", **SETTINGS)
    rng = np.random.default_rng(22)
    counts = [3, 0, 5, 1, 0, 8]
    n, total = len(counts), sum(counts)
    queries = rng.normal(size=(n, 7)).astype(np.float32)
    cands = rng.normal(size=(total, 7)).astype(np.float32)
    base = rng.normal(size=total).astype(np.float32)
    mask = rng.random(total) < 0.25
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for _, session in sessions(made.adapter):
        rr = session.rerank_batch(queries, cands, counts, base)
        assert len(rr) == n and rr.log_s_rr.shape == (total,) and rr.class_probs.shape == (total, 4)
        assert rr.offsets.tolist() == offsets.tolist()
        for i, part in enumerate(rr.split()):
            lo, hi = offsets[i], offsets[i + 1]
            check_rerank(made, part, queries[i], cands[lo:hi], base[lo:hi])
        rs = session.resample_batch(queries, cands, np.array(counts, dtype=np.int32), base,
                                    samples_per_query=4, seed=77, first_query_index=1000, positive_mask=mask)
        assert rs.samples.shape == (n, 4) and rs.counts.shape == (n,)
        for i in range(n):
            lo, hi = offsets[i], offsets[i + 1]
            part = rs[i]
            check_resample(made, part, queries[i], cands[lo:hi], base[lo:hi], mask[lo:hi], 4, 77, 1000 + i)
            assert (rs.samples[i, rs.counts[i]:] == -1).all()
            assert rs.samples_list()[i].tolist() == part.samples.tolist()


def test_empty_batch(make):
    made = make()
    with rrra.Session(made.adapter) as session:
        rr = session.rerank_batch(np.zeros((0, 7), np.float32), np.zeros((0, 7), np.float32), [])
        assert len(rr) == 0 and rr.log_s_rr.shape == (0,)
        rs = session.resample_batch(np.zeros((2, 7), np.float32), np.zeros((0, 7), np.float32), [0, 0],
                                    samples_per_query=3)
        assert rs.counts.tolist() == [0, 0] and (rs.samples == -1).all()


def test_by_id_through_corpus(make):
    made = make(d=7, h=5, seed=31, activation="gelu_tanh", **SETTINGS)
    rng = np.random.default_rng(32)
    rows = rng.normal(size=(40, 7)).astype(np.float32)
    # Row slots shuffled into a NaN-filled matrix with a padding column block; NaN rows that no
    # id names: any read outside the named rows' d values would fail with NonFiniteInputError.
    pad = 3
    storage = np.full((80, 7 + pad), np.nan, dtype=np.float32)
    slots = rng.permutation(80)[:40]
    storage[slots, :7] = rows
    corpus = rrra.Corpus(storage[:, :7])
    assert corpus.row_stride == 7 + pad and np.shares_memory(corpus.array, storage)
    counts = [4, 0, 7, 1]
    ids = rng.integers(0, 40, size=sum(counts))
    queries = rng.normal(size=(4, 7)).astype(np.float32)
    with rrra.Session(made.adapter) as session:
        by_id = session.rerank_batch(queries, (slots[ids], corpus), counts)
        dense = session.rerank_batch(queries, rows[ids], counts)
        np.testing.assert_array_equal(by_id.log_s_rr, dense.log_s_rr)
        np.testing.assert_array_equal(by_id.order, dense.order)
        offsets = by_id.offsets
        for i in range(4):
            check_rerank(made, by_id[i], queries[i], rows[ids[offsets[i]:offsets[i + 1]]])
        one = session.rerank(queries[2], (slots[ids[4:11]], corpus))
        check_rerank(made, one, queries[2], rows[ids[4:11]])
        rs = session.resample(queries[0], (slots[ids[:4]], corpus), samples_per_query=2, seed=5)
        check_resample(made, rs, queries[0], rows[ids[:4]], None, None, 2, 5, 0)
        # The library reads the caller's memory in place: a change is seen by the next call.
        storage[slots[ids[0]], :7] *= 2.0
        changed = session.rerank(queries[0], (slots[ids[:4]], corpus))
        check_rerank(made, changed, queries[0], storage[slots[ids[:4]], :7])
        with pytest.raises(rrra.InvalidArgumentError):
            session.rerank(queries[0], ([80], corpus))
    corpus.close()
    assert corpus.closed
    with rrra.Session(made.adapter) as session, pytest.raises(RuntimeError, match="closed"):
        session.rerank(queries[0], ([0], corpus))


def test_strided_candidates_pass_without_copy(make):
    from rrra._core import _rows

    made = make(d=7, h=5, seed=41, similarity="cosine", **SETTINGS)
    rng = np.random.default_rng(42)
    k, pad = 9, 5
    big = np.full((k, 7 + pad), np.nan, dtype=np.float32)
    big[:, :7] = rng.normal(size=(k, 7))
    view = big[:, :7]
    assert not view.flags.c_contiguous
    arr, stride = _rows("candidates", view)
    assert np.shares_memory(arr, big) and stride == 7 + pad
    every_other = np.ascontiguousarray(big[:, :7].repeat(2, axis=0))[::2]  # row stride 14 floats
    arr2, stride2 = _rows("candidates", every_other)
    assert np.shares_memory(arr2, every_other) and stride2 == 14
    # A column stride != 1 cannot be passed through: copied to C order.
    arr3, stride3 = _rows("candidates", np.asfortranarray(big[:, :7]))
    assert stride3 == 7 and arr3.flags.c_contiguous
    q = rng.normal(size=7).astype(np.float32)
    dense = np.ascontiguousarray(view)
    with rrra.Session(made.adapter) as session:
        r = session.rerank(q, view)
        np.testing.assert_array_equal(r.log_s_rr, session.rerank(q, dense).log_s_rr)
        check_rerank(made, r, q, dense)
        np.testing.assert_array_equal(session.rerank(q, every_other).log_s_rr, r.log_s_rr)
        np.testing.assert_array_equal(session.rerank(q, np.asfortranarray(dense)).log_s_rr, r.log_s_rr)
        rs = session.resample_batch(q[None], view, [k], samples_per_query=3, seed=1)
        check_resample(made, rs[0], q, dense, None, None, 3, 1, 0)


def test_float64_inputs_are_converted(make):
    # float16 and bfloat16 are read as they are: see test_dtypes.py.
    made = make(d=7, h=5, seed=51, activation="gelu", **SETTINGS)
    rng = np.random.default_rng(52)
    with rrra.Session(made.adapter) as session:
        q64 = rng.normal(size=7)
        c64 = rng.normal(size=(11, 7))
        r64 = session.rerank(q64, c64)
        r32 = session.rerank(q64.astype(np.float32), c64.astype(np.float32))
        np.testing.assert_array_equal(r64.log_s_rr, r32.log_s_rr)
        # Lists are arrays too (float64).
        np.testing.assert_array_equal(session.rerank(q64.tolist(), c64.tolist()).log_s_rr, r32.log_s_rr)
        # Big-endian float32 is converted.
        np.testing.assert_array_equal(session.rerank(q64.astype(">f4"), c64.astype(">f4")).log_s_rr, r32.log_s_rr)


def test_outputs_are_fresh_arrays(make):
    made = make()
    rng = np.random.default_rng(61)
    q = rng.normal(size=7).astype(np.float32)
    c = rng.normal(size=(5, 7)).astype(np.float32)
    with rrra.Session(made.adapter) as session:
        a = session.rerank(q, c)
        b = session.rerank(q, c)
        assert not np.shares_memory(a.log_s_rr, b.log_s_rr)
        assert not np.shares_memory(a.log_s_rr, c) and not np.shares_memory(a.log_s_rr, q)
        a.log_s_rr[:] = 0
        np.testing.assert_array_equal(session.rerank(q, c).log_s_rr, b.log_s_rr)
