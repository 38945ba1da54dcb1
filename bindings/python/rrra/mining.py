"""Hard-negative mining with false-negative suppression (the paper's resampling, SPEC §4–§5).

For each query: retrieve its top-k corpus rows by dot product (exact, with numpy, blockwise so
memory stays bounded), mask its labelled positives, and draw negatives with probability
∝ s_RS = s_B · (1 − s_FN)^γ, so that likely false negatives (relevant but unlabelled documents)
are rarely picked. The output is a dict of lists ready for ``datasets.Dataset.from_dict``, in the
column layout of sentence-transformers' ``mine_hard_negatives``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._core import Corpus, Session, _checked_float, _float_array

__all__ = ["mine_hard_negatives", "top_k_dot"]


def top_k_dot(
    queries: npt.ArrayLike,
    corpus: npt.ArrayLike,
    k: int,
    block_rows: int = 65536,
) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k corpus rows of each query by dot product, computed blockwise.

    Args:
        queries: (n, d).
        corpus: (rows, d).
        k: neighbours per query (clamped to the number of rows).
        block_rows: corpus rows scored at once; memory is about n · (k + block_rows) floats.

    Returns:
        (ids, scores): (n, k) int64 row ids and (n, k) float32 scores, best first; equal scores
        keep the lower row id first.
    """
    q = _float_array("queries", queries, 2, "(n, d)")
    # Converted to float32 a block at a time, so a float16/bfloat16 corpus is never copied whole.
    c = _checked_float("corpus", corpus, 2, "(rows, d)")
    n, rows = q.shape[0], c.shape[0]
    k = max(0, min(int(k), rows))
    best_ids = np.empty((n, 0), dtype=np.int64)
    best_scores = np.empty((n, 0), dtype=np.float32)
    if k == 0 or n == 0:
        return np.empty((n, k), np.int64), np.empty((n, k), np.float32)
    step = max(1, int(block_rows))
    for start in range(0, rows, step):
        block = c[start : start + step].astype(np.float32, copy=False)
        scores = np.concatenate([best_scores, q @ block.T], axis=1)
        ids = np.concatenate(
            [best_ids, np.broadcast_to(np.arange(start, start + block.shape[0], dtype=np.int64), (n, block.shape[0]))],
            axis=1,
        )
        if scores.shape[1] > k:
            # Narrow to the entries >= each row's k-th score (ties included, so that the tie-break
            # by id below is exact), padded with -inf where rows keep fewer.
            kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
            keep = scores >= kth
            width = int(keep.sum(axis=1).max())
            take = np.argsort(~keep, axis=1, kind="stable")[:, :width]
            scores = np.where(np.take_along_axis(keep, take, axis=1), np.take_along_axis(scores, take, axis=1), -np.inf)
            ids = np.take_along_axis(ids, take, axis=1)
        order = np.lexsort((ids, -scores), axis=-1)[:, :k]
        best_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        best_ids = np.take_along_axis(ids, order, axis=1)
    return best_ids, best_scores


def mine_hard_negatives(
    session: Session,
    query_embeddings: npt.ArrayLike,
    positive_ids: Sequence[Sequence[int]],
    corpus: Union[Corpus, npt.ArrayLike],
    top_k: int = 100,
    num_negatives: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    *,
    output_format: str = "n-tuple",
    block_rows: int = 65536,
) -> Dict[str, List[int]]:
    """Mines hard negatives for every (query, positive) pair, suppressing likely false negatives.

    Each query's candidates are its `top_k` corpus rows by dot product; its labelled positives
    among them are masked (never drawn); `num_negatives` negatives are drawn with the adapter's
    resampling score, using the retrieval scores as base scores (transformed as the adapter file
    says). Query i always uses sampler stream (seed, i), so the result does not depend on
    `batch_size`.

    Args:
        session: a :class:`rrra.Session` over the trained adapter.
        query_embeddings: (n, d) query embeddings from the adapter's bi-encoder.
        positive_ids: for each query, the corpus row ids labelled relevant.
        corpus: the (rows, d) document embeddings, or a :class:`rrra.Corpus` already registered.
        top_k: candidates retrieved per query.
        num_negatives: negatives per query; queries with fewer eligible candidates are dropped.
        seed: the sampler's seed.
        batch_size: queries per retrieval and library call.
        output_format: ``"n-tuple"`` (one row per (query, positive) with columns negative_1 ...
            negative_N) or ``"triplet"`` (one row per (query, positive, negative)).
        block_rows: corpus rows scored at once during retrieval.

    Returns:
        A dict of equal-length lists of ints: ``query_index``, ``positive_id`` and
        ``negative_1`` … ``negative_N`` (n-tuple) or ``negative_id`` (triplet); pass it to
        ``datasets.Dataset.from_dict`` and map the ids to texts.
    """
    if output_format not in ("n-tuple", "triplet"):
        raise ValueError(f"output_format: expected 'n-tuple' or 'triplet', got {output_format!r}")
    queries = np.ascontiguousarray(_float_array("query_embeddings", query_embeddings, 2, "(n, d)"))
    n = queries.shape[0]
    if len(positive_ids) != n:
        raise ValueError(f"positive_ids: expected {n} lists (one per query), got {len(positive_ids)}")
    if int(num_negatives) < 1:
        raise ValueError(f"num_negatives: must be at least 1, got {num_negatives}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    own_corpus = not isinstance(corpus, Corpus)
    registered = Corpus(corpus) if own_corpus else corpus
    try:
        rows = registered.rows
        positives = []
        for i, ids in enumerate(positive_ids):
            ids = [int(x) for x in ids]
            bad = [x for x in ids if not 0 <= x < rows]
            if bad:
                raise ValueError(f"positive_ids[{i}]: row ids {bad} are outside the corpus (0..{rows - 1})")
            positives.append(ids)

        out: Dict[str, List[int]] = {"query_index": [], "positive_id": []}
        if output_format == "n-tuple":
            for j in range(int(num_negatives)):
                out[f"negative_{j + 1}"] = []
        else:
            out["negative_id"] = []

        for start in range(0, n, int(batch_size)):
            q = queries[start : start + int(batch_size)]
            b = q.shape[0]
            ids, scores = top_k_dot(q, registered.array, top_k, block_rows)
            k = ids.shape[1]
            mask = np.zeros((b, k), dtype=bool)
            for i in range(b):
                if positives[start + i]:
                    mask[i] = np.isin(ids[i], positives[start + i])
            result = session.resample_batch(
                q,
                (ids.reshape(-1), registered),
                np.full(b, k, dtype=np.int64),
                scores.reshape(-1),
                samples_per_query=int(num_negatives),
                seed=seed,
                first_query_index=start,
                positive_mask=mask.reshape(-1),
            )
            for i in range(b):
                count = int(result.counts[i])
                if count < int(num_negatives):
                    continue
                negatives = [int(x) for x in ids[i, result.samples[i, :count]]]
                for positive in positives[start + i]:
                    if output_format == "n-tuple":
                        out["query_index"].append(start + i)
                        out["positive_id"].append(positive)
                        for j, negative in enumerate(negatives):
                            out[f"negative_{j + 1}"].append(negative)
                    else:
                        for negative in negatives:
                            out["query_index"].append(start + i)
                            out["positive_id"].append(positive)
                            out["negative_id"].append(negative)
        return out
    finally:
        if own_corpus:
            registered.close()
