"""Embeddings stored as float16 or bfloat16 are read in their own type (SPEC §1) and score exactly
as the same values passed as float32: the library widens them exactly, so every output here is
compared bit for bit with the float32 call (`narrow` is the dtype under test, see conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import rrra
import rrra.mining
from helpers import SETTINGS, close_log, sessions
from rrra._core import _contiguous_embeddings, _rows


def exact(rng, narrow, *shape):
    """Random float32 values that `narrow` holds exactly, so `.astype(narrow)` changes nothing."""
    return rng.normal(size=shape).astype(narrow).astype(np.float32)


def assert_bit_identical(got, want):
    """Two results (a NamedTuple or a batch dataclass) equal field by field, bit for bit."""
    got, want = (r._asdict() if hasattr(r, "_asdict") else vars(r) for r in (got, want))
    for name, w in want.items():
        g = np.asarray(got[name])
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes(), (name, g, w)


@pytest.mark.parametrize("stored", ["both", "queries", "candidates"])
def test_dense_inputs_score_as_float32(make, narrow, stored):
    made = make(d=37, h=20, seed=1, activation="gelu", **SETTINGS)
    rng = np.random.default_rng(2)
    counts = [5, 0, 17, 1]
    q, c = exact(rng, narrow, 4, 37), exact(rng, narrow, 23, 37)
    base = exact(rng, narrow, 23)
    mask = rng.random(23) < 0.2
    qn = q if stored == "candidates" else q.astype(narrow)
    cn = c if stored == "queries" else c.astype(narrow)
    resample = dict(samples_per_query=4, seed=7, first_query_index=3, positive_mask=mask)
    for _, session in sessions(made.adapter):
        want = session.rerank_batch(q, c, counts)
        assert_bit_identical(session.rerank_batch(qn, cn, counts), want)
        # Base scores are not embeddings: any float type is converted to float32.
        assert_bit_identical(session.rerank_batch(qn, cn, counts, base.astype(narrow)),
                             session.rerank_batch(q, c, counts, base))
        assert_bit_identical(session.resample_batch(qn, cn, counts, **resample),
                             session.resample_batch(q, c, counts, **resample))
        assert_bit_identical(session.rerank(qn[2], cn[5:22]), session.rerank(q[2], c[5:22]))
        assert_bit_identical(session.resample(qn[2], cn[5:22], samples_per_query=3, seed=1),
                             session.resample(q[2], c[5:22], samples_per_query=3, seed=1))
    close_log(want.log_s_rr[5:22], made.ref(q[2], c[5:22])["log_s_rr"], "log_s_rr")
    # A call split between the session's threads reads the narrow rows as one thread does.
    with rrra.Session(made.adapter, threads=3) as session:
        assert_bit_identical(session.rerank_batch(qn, cn, counts), session.rerank_batch(q, c, counts))


def test_layouts_read_in_place_or_copied(make, narrow):
    made = make(d=7, h=5, seed=3, similarity="cosine", **SETTINGS)
    rng = np.random.default_rng(4)
    k, pad = 9, 5
    # NaN padding: a read outside the d columns would fail with NonFiniteInputError.
    big = np.full((k, 7 + pad), np.nan, dtype=narrow)
    big[:, :7] = exact(rng, narrow, k, 7)
    view = big[:, :7]
    arr, stride = _rows("candidates", view)
    assert arr.dtype == narrow and np.shares_memory(arr, big) and stride == 7 + pad
    every_other = np.ascontiguousarray(view.repeat(2, axis=0))[::2]
    arr, stride = _rows("candidates", every_other)
    assert arr.dtype == narrow and np.shares_memory(arr, every_other) and stride == 14
    # A column stride != 1, or values at an odd address, cannot be passed through: copied to
    # C order, still in their own type.
    fortran = np.asfortranarray(view)
    unaligned = np.zeros(2 * k * 7 + 1, np.uint8)[1:].view(narrow).reshape(k, 7)
    unaligned[:] = view
    assert not unaligned.flags.aligned
    for layout in (fortran, unaligned):
        arr, stride = _rows("candidates", layout)
        assert arr.dtype == narrow and arr.flags.c_contiguous and stride == 7
        assert not np.shares_memory(arr, layout)
    q = exact(rng, narrow, 7).astype(narrow)
    assert np.shares_memory(_contiguous_embeddings("query", q, 1, "(d,)"), q)
    assert _contiguous_embeddings("query", unaligned[0], 1, "(d,)").flags.aligned
    with rrra.Session(made.adapter) as session:
        want = session.rerank(q.astype(np.float32), view.astype(np.float32))
        for layout in (view, every_other, fortran, unaligned):
            assert_bit_identical(session.rerank(q, layout), want)
        # float64 and byte-swapped float16 are converted to float32.
        assert_bit_identical(session.rerank(q.astype(np.float64), view.astype(np.float64)), want)
        if narrow == np.float16:
            assert_bit_identical(session.rerank(q.astype(">f2"), view.astype(">f2")), want)


def test_corpus_is_read_in_place_in_its_own_type(make, narrow):
    made = make(d=7, h=5, seed=5, activation="gelu_tanh", **SETTINGS)
    rng = np.random.default_rng(6)
    rows = exact(rng, narrow, 40, 7)
    # Row slots shuffled into a NaN-filled matrix with padding columns, as in test_parity.py.
    pad = 3
    storage = np.full((80, 7 + pad), np.nan, dtype=narrow)
    slots = rng.permutation(80)[:40]
    storage[slots, :7] = rows
    counts = [4, 0, 7, 1]
    ids = rng.integers(0, 40, size=sum(counts))
    queries = exact(rng, narrow, 4, 7)
    resample = dict(samples_per_query=3, seed=11, first_query_index=5)
    with rrra.Corpus(storage[:, :7]) as corpus, rrra.Session(made.adapter) as session:
        assert corpus.dtype == narrow and corpus.row_stride == 7 + pad
        assert np.shares_memory(corpus.array, storage) and f"dtype={narrow}" in repr(corpus)
        for q in (queries, queries.astype(narrow)):
            assert_bit_identical(session.rerank_batch(q, (slots[ids], corpus), counts),
                                 session.rerank_batch(queries, rows[ids], counts))
            assert_bit_identical(session.resample_batch(q, (slots[ids], corpus), counts, **resample),
                                 session.resample_batch(queries, rows[ids], counts, **resample))
    with rrra.Corpus(rows.astype(np.float64)) as converted:
        assert converted.dtype == np.float32


def test_non_finite_values_name_their_position(make, narrow):
    made = make()
    rng = np.random.default_rng(7)
    counts = [2, 4, 3]
    q = rng.normal(size=(3, 7)).astype(narrow)
    c = rng.normal(size=(9, 7)).astype(narrow)
    with rrra.Session(made.adapter) as session:
        for bad in (np.nan, np.inf, -np.inf):
            broken = c.copy()
            broken[2 + 2, 5] = bad  # query 1, position 2
            with pytest.raises(rrra.NonFiniteInputError) as e:
                session.rerank_batch(q, broken, counts)
            msg = str(e.value)
            assert "candidates: query 1, position 2, column 5" in msg, msg
        broken = q.copy()
        broken[2, 0] = np.inf
        with pytest.raises(rrra.NonFiniteInputError, match="queries: query 2, column 0"):
            session.resample_batch(broken, c, counts, samples_per_query=1)
        broken = c.copy()
        broken[3, 1] = np.nan
        with rrra.Corpus(broken) as corpus, pytest.raises(rrra.NonFiniteInputError) as e:
            session.rerank_batch(q, ([0, 1, 0, 3, 2, 1, 0, 0, 0], corpus), counts)
        assert "query 1, position 1, column 1" in str(e.value), str(e.value)


def test_mining_a_narrow_corpus(make, narrow):
    made = make(d=16, h=8, seed=8)
    rng = np.random.default_rng(9)
    corpus = exact(rng, narrow, 200, 16)
    queries = exact(rng, narrow, 12, 16)
    positives = [[int(p)] for p in rng.integers(0, 200, size=12)]
    mine = dict(top_k=20, num_negatives=3, seed=4, batch_size=5, block_rows=64)
    with rrra.Session(made.adapter) as session:
        want = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, **mine)
        assert rrra.mining.mine_hard_negatives(session, queries, positives, corpus.astype(narrow), **mine) == want
