"""Failures raise the rrra.RrraError subclass of their status, with the library's message."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import reference
import rrra
import rrra.io


def batch(rng, counts, d=7):
    total = sum(counts)
    return (rng.normal(size=(len(counts), d)).astype(np.float32),
            rng.normal(size=(total, d)).astype(np.float32),
            rng.normal(size=total).astype(np.float32))


def test_non_finite_inputs_name_query_and_position(make):
    made = make()
    rng = np.random.default_rng(1)
    counts = [2, 4, 3]
    with rrra.Session(made.adapter) as session:
        q, c, b = batch(rng, counts)
        c[2 + 2, 5] = np.nan  # query 1, position 2
        with pytest.raises(rrra.NonFiniteInputError) as e:
            session.rerank_batch(q, c, counts, b)
        msg = str(e.value)
        assert "candidates" in msg and "query 1" in msg and "position 2" in msg, msg
        assert e.value.status == 1004 and e.value.status_name == "RRRA_STATUS_NON_FINITE_INPUT"
        assert e.value.message == msg and isinstance(e.value, ValueError)

        q, c, b = batch(rng, counts)
        q[2, 0] = np.inf
        with pytest.raises(rrra.NonFiniteInputError) as e:
            session.resample_batch(q, c, counts, b, samples_per_query=1)
        assert "queries" in str(e.value) and "query 2" in str(e.value), str(e.value)

        q, c, b = batch(rng, counts)
        b[6 + 1] = -np.inf  # query 2, position 1
        with pytest.raises(rrra.NonFiniteInputError) as e:
            session.rerank_batch(q, c, counts, b)
        assert "base_scores" in str(e.value) and "query 2, position 1" in str(e.value), str(e.value)


def test_overflow_is_a_numeric_error(make):
    made = make(d=4, h=3)
    with rrra.Session(made.adapter) as session, pytest.raises(rrra.NumericError) as e:
        session.rerank(np.full(4, 1e30, np.float32), np.full((2, 4), 1e30, np.float32))
    assert "overflow" in str(e.value) and "query 0" in str(e.value)
    assert e.value.status == 1007 and isinstance(e.value, ArithmeticError)


def test_wrong_dimension(make):
    made = make(d=7)
    rng = np.random.default_rng(2)
    with rrra.Session(made.adapter) as session:
        with pytest.raises(rrra.DimensionMismatchError) as e:
            session.rerank(rng.normal(size=8), rng.normal(size=(3, 8)))
        assert "7" in str(e.value) and "8" in str(e.value) and e.value.status == 1003
        with pytest.raises(rrra.DimensionMismatchError, match="candidates"):
            session.rerank(rng.normal(size=7), rng.normal(size=(3, 8)))
        corpus8 = rrra.Corpus(rng.normal(size=(5, 8)).astype(np.float32))
        with pytest.raises(rrra.DimensionMismatchError, match="corpus"):
            session.rerank(rng.normal(size=7), ([0, 1], corpus8))
        corpus8.close()


def test_invalid_arguments(make):
    made = make()
    rng = np.random.default_rng(3)
    q, c, b = batch(rng, [3, 2])
    with rrra.Session(made.adapter) as session:
        with pytest.raises(rrra.InvalidArgumentError, match="lambda_rr") as e:
            session.rerank(q[0], c[:3], lambda_rr=-1.0)
        assert e.value.status == 1002
        with pytest.raises(rrra.InvalidArgumentError, match="base_tau"):
            session.rerank(q[0], c[:3], base_tau=0.0)
        with pytest.raises(rrra.InvalidArgumentError, match="base_scores"):
            session.rerank_batch(q, c, [3, 2], b[:4])
        with pytest.raises(rrra.InvalidArgumentError, match="positive_mask"):
            session.resample_batch(q, c, [3, 2], samples_per_query=1, positive_mask=[True] * 4)
        with pytest.raises(rrra.InvalidArgumentError, match="base"):  # identity needs b > 0
            session.rerank(q[0], c[:3], np.array([1.0, 0.0, 2.0], np.float32), base_transform="identity")
        corpus = rrra.Corpus(c)
        with pytest.raises(rrra.InvalidArgumentError, match="candidate_ids"):
            session.rerank_batch(q, ([0, 1, 2], corpus), [3, 2])
        corpus.close()


def test_python_side_validation(make):
    made = make()
    rng = np.random.default_rng(4)
    q, c, _ = batch(rng, [3])
    with rrra.Session(made.adapter) as session:
        with pytest.raises(TypeError, match="candidates"):
            session.rerank(q[0], c.astype(np.int32))
        with pytest.raises(TypeError, match="query"):
            session.rerank(q[0].astype(np.int64), c)
        with pytest.raises(TypeError, match="base_scores"):
            session.rerank(q[0], c, np.array([1, 2, 3]))
        with pytest.raises(ValueError, match="query: expected a 1-D"):
            session.rerank(q, c)
        with pytest.raises(ValueError, match="candidates: expected a 2-D"):
            session.rerank(q[0], c[0])
        with pytest.raises(ValueError, match="queries: expected a 2-D"):
            session.rerank_batch(q[0], c, [3])
        with pytest.raises(ValueError, match="counts"):
            session.rerank_batch(q, c, [2, 1])
        with pytest.raises(ValueError, match="expected 2 rows"):
            session.rerank_batch(q, c, [2])
        with pytest.raises(ValueError, match="counts"):
            session.rerank_batch(q, c, [-3])
        with pytest.raises(TypeError, match="counts"):
            session.rerank_batch(q, c, [3.0])
        with pytest.raises(ValueError, match="base_transform"):
            session.rerank(q[0], c, base_transform="tanh")
        with pytest.raises(ValueError, match="samples_per_query"):
            session.resample(q[0], c, samples_per_query=-1)
        with pytest.raises(TypeError, match="Corpus"):
            session.rerank(q[0], ([0], c))
    with pytest.raises(ValueError, match="engine"):
        rrra.Session(made.adapter, engine="gpu")
    with pytest.raises(TypeError):
        rrra.Session("not an adapter")


def test_closed_objects(make):
    made = make()
    session = rrra.Session(made.adapter)
    made.adapter.close()
    made.adapter.close()  # idempotent
    assert made.adapter.closed and "closed" in repr(made.adapter)
    # A session keeps its own reference to the model.
    rng = np.random.default_rng(5)
    q, c, _ = batch(rng, [3])
    assert session.rerank(q[0], c).log_s_rr.shape == (3,)
    with pytest.raises(RuntimeError, match="closed"):
        rrra.Session(made.adapter)
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.rerank(q[0], c)


def test_session_refuses_concurrent_use(make):
    made = make()
    session = rrra.Session(made.adapter)
    rng = np.random.default_rng(6)
    q, c, _ = batch(rng, [3])
    session._lock.acquire()  # as if another thread were inside a call
    try:
        with pytest.raises(RuntimeError, match="another thread"):
            session.rerank(q[0], c)
    finally:
        session._lock.release()
    session.close()


def file_bytes(tensors, metadata):
    return rrra.io.write_safetensors(tensors, metadata)


META = {"format": "rrra-adapter", "format_version": "1"}


def test_bad_model_bytes_name_the_problem():
    rng = np.random.default_rng(7)
    w = reference.random_weights(rng, 5, 4)

    def expect(data, *needles):
        with pytest.raises(rrra.InvalidModelError) as e:
            rrra.Adapter.from_bytes(data)
        for needle in needles:
            assert needle in str(e.value), (needle, str(e.value))
        assert e.value.status == 1005 and isinstance(e.value, ValueError)

    missing = {k: v for k, v in w.items() if k != "fc2.bias"}
    expect(file_bytes(missing, META), "fc2.bias")
    renamed = dict(missing, **{"fc2.biass": w["fc2.bias"]})
    expect(file_bytes(renamed, META), "fc2.bias")
    wrong_shape = dict(w, **{"fc1.bias": np.zeros(3, np.float32)})
    expect(file_bytes(wrong_shape, META), "fc1.bias")
    nan_weight = dict(w, **{"classifier.weight": np.full((4, 4), np.nan, np.float32)})
    expect(file_bytes(nan_weight, META), "classifier.weight")
    expect(file_bytes(w, dict(META, activation="swish")), "activation", "swish")
    expect(file_bytes(w, dict(META, adapter_tau="0")), "adapter_tau")
    expect(file_bytes(w, dict(META, lamda_rr="1")), "lamda_rr")
    expect(file_bytes(w, {"format": "rrra-adapter"}), "format_version")
    good = file_bytes(w, META)
    expect(good[:-10])
    expect(good[:5])
    header_len = struct.unpack("<Q", good[:8])[0]
    expect(struct.pack("<Q", header_len + 10_000_000) + good[8:])
    expect(b"")
    assert rrra.Adapter.from_bytes(good).dim == 5
    assert rrra.Adapter.from_bytes(bytearray(good)).hidden == 4
    assert rrra.Adapter.from_bytes(np.frombuffer(good, np.uint8)).parameter_count == sum(v.size for v in w.values())
    with pytest.raises(rrra.InvalidModelError):
        rrra.Adapter.from_bytes(json.dumps({"not": "safetensors"}).encode())


def test_io_error_is_an_oserror(tmp_path):
    path = tmp_path / "missing.safetensors"
    with pytest.raises(rrra.IoError) as e:
        rrra.Adapter.load(path)
    assert isinstance(e.value, OSError) and e.value.filename == str(path)
    assert str(path) in str(e.value) and e.value.status == 1006
    with pytest.raises(OSError):
        rrra.Adapter.load(str(path))


def test_error_classes():
    assert issubclass(rrra.InvalidArgumentError, rrra.RrraError)
    for cls, status in [
        (rrra.NullPointerError, 1001), (rrra.InvalidArgumentError, 1002), (rrra.DimensionMismatchError, 1003),
        (rrra.NonFiniteInputError, 1004), (rrra.InvalidModelError, 1005), (rrra.IoError, 1006),
        (rrra.NumericError, 1007), (rrra.UnsupportedError, 1008), (rrra.InternalError, 1099),
    ]:
        assert cls.status == status and issubclass(cls, rrra.RrraError)
        assert cls("m").status_name.startswith("RRRA_STATUS_")
