"""rrra.mining: hard negatives without positives, deterministic, independent of batching."""

from __future__ import annotations

import numpy as np
import pytest

import rrra
import rrra.mining


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    d, rows, n = 16, 300, 23
    corpus = rng.normal(size=(rows, d)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    positives = [sorted(set(rng.integers(0, rows, size=int(rng.integers(0, 4))).tolist())) for _ in range(n)]
    queries = rng.normal(size=(n, d)).astype(np.float32) * 0.3
    for i, pos in enumerate(positives):  # positives close to their query: they rank high
        for p in pos:
            queries[i] += corpus[p]
    return queries, corpus, positives


def test_negatives_exclude_positives_and_come_from_top_k(make, data):
    queries, corpus, positives = data
    made = make(d=16, h=8, seed=1, activation="gelu")
    with rrra.Session(made.adapter) as session:
        out = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, top_k=30, num_negatives=5, seed=1)
    ids, _ = rrra.mining.top_k_dot(queries, corpus, 30)
    n_rows = len(out["query_index"])
    assert n_rows == sum(len(p) for p in positives)
    assert set(out) == {"query_index", "positive_id"} | {f"negative_{j}" for j in range(1, 6)}
    assert all(len(col) == n_rows for col in out.values())
    for r in range(n_rows):
        i = out["query_index"][r]
        assert out["positive_id"][r] in positives[i]
        negatives = [out[f"negative_{j}"][r] for j in range(1, 6)]
        assert len(set(negatives)) == 5
        assert not set(negatives) & set(positives[i])
        assert set(negatives) <= set(ids[i].tolist())
        assert all(isinstance(x, int) for x in negatives)


def test_deterministic_and_independent_of_batching(make, data):
    queries, corpus, positives = data
    made = make(d=16, h=8, seed=2)
    with rrra.Session(made.adapter) as session:
        a = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, top_k=20, num_negatives=4, seed=9)
        b = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, top_k=20, num_negatives=4, seed=9,
                                            batch_size=5, block_rows=37)
        with rrra.Corpus(corpus) as registered:
            c = rrra.mining.mine_hard_negatives(session, queries, positives, registered, top_k=20, num_negatives=4,
                                                seed=9, batch_size=7)
            assert not registered.closed  # a caller's corpus stays registered
        other = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, top_k=20, num_negatives=4,
                                                seed=10)
        t = rrra.mining.mine_hard_negatives(session, queries, positives, corpus, top_k=20, num_negatives=4, seed=9,
                                            output_format="triplet")
    assert a == b == c
    assert a != other
    assert len(t["query_index"]) == 4 * len(a["query_index"])
    assert t["negative_id"][:4] == [a[f"negative_{j}"][0] for j in range(1, 5)]


def test_queries_with_too_few_candidates_are_dropped(make):
    rng = np.random.default_rng(3)
    corpus = rng.normal(size=(6, 4)).astype(np.float32)
    queries = rng.normal(size=(2, 4)).astype(np.float32)
    made = make(d=4, h=3)
    with rrra.Session(made.adapter) as session:
        out = rrra.mining.mine_hard_negatives(session, queries, [[0, 1, 2], [3]], corpus, top_k=6, num_negatives=4)
        assert out["query_index"] == [1]
        with pytest.raises(ValueError, match="positive_ids"):
            rrra.mining.mine_hard_negatives(session, queries, [[0]], corpus)
        with pytest.raises(ValueError, match="outside"):
            rrra.mining.mine_hard_negatives(session, queries, [[0], [6]], corpus)


def test_top_k_dot_is_exact_with_ties():
    rng = np.random.default_rng(4)
    corpus = rng.integers(-2, 3, size=(500, 3)).astype(np.float32)  # many exact ties
    queries = rng.integers(-2, 3, size=(9, 3)).astype(np.float32)
    for block in (7, 64, 1000):
        ids, scores = rrra.mining.top_k_dot(queries, corpus, 25, block_rows=block)
        full = queries @ corpus.T
        for i in range(9):
            want = np.lexsort((np.arange(500), -full[i]))[:25]
            assert ids[i].tolist() == want.tolist()
            np.testing.assert_array_equal(scores[i], full[i, want])
    ids, _ = rrra.mining.top_k_dot(queries, corpus[:4], 25)
    assert ids.shape == (9, 4)
