"""rrra.io: adapter files written with numpy alone load in the library, and read back."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import reference
import rrra
import rrra.io
from helpers import close_abs, close_log


def test_save_and_load_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    w = reference.random_weights(rng, 6, 3)
    path = tmp_path / "adapter.safetensors"
    meta = dict(activation="gelu", similarity="cosine", adapter_mu=0.125, adapter_tau=0.5, base_transform="softmax",
                base_mu=-0.25, base_tau=2.0, lambda_rr=0.3, gamma_rs=1.5, encoder="all-MiniLM-L6-v2")
    rrra.io.save_adapter(path, *reference.weight_args(w), **meta, **{"x-note": "made by a test"})
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0 and (8 + n) % 8 == 0
    header = json.loads(data[8 : 8 + n])
    assert header["__metadata__"]["format"] == "rrra-adapter"
    assert header["__metadata__"]["format_version"] == "1"
    assert header["__metadata__"]["x-note"] == "made by a test"
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
    assert header["fc1.weight"] == {"dtype": "F32", "shape": [3, 18], "data_offsets": [0, 3 * 18 * 4]}
    with rrra.Adapter.load(path) as adapter:
        info = adapter.info()
        for key, value in meta.items():
            assert info[key] == value, key
        assert (adapter.dim, adapter.hidden) == (6, 3)
        assert adapter.parameter_count == sum(v.size for v in w.values())
        assert "d=6" in repr(adapter)
    tensors, metadata = rrra.io.read_safetensors(path)
    for name in rrra.io.TENSOR_NAMES:
        np.testing.assert_array_equal(tensors[name], w[name])
    assert metadata["encoder"] == "all-MiniLM-L6-v2"
    assert rrra.io.read_safetensors(data)[1] == metadata


def test_float16_weights_load_and_score():
    rng = np.random.default_rng(2)
    w = {k: v.astype(np.float16) for k, v in reference.random_weights(rng, 5, 4).items()}
    data = rrra.io.adapter_bytes(*reference.weight_args(w), activation="silu")
    tensors, _ = rrra.io.read_safetensors(data)
    assert tensors["fc2.weight"].dtype == np.float16
    q = rng.normal(size=5).astype(np.float32)
    c = rng.normal(size=(8, 5)).astype(np.float32)
    with rrra.Adapter.from_bytes(data) as adapter, adapter.session() as session:
        r = session.rerank(q, c)
    ref = reference.scores(w, {"activation": "silu"}, q, c)
    close_log(r.log_s_rr, ref["log_s_rr"])
    close_abs(r.s_fn, ref["s_fn"], 1e-5, "s_fn")


def test_defaults_and_validation():
    rng = np.random.default_rng(3)
    w = reference.random_weights(rng, 4, 2)
    with rrra.Adapter.from_bytes(rrra.io.adapter_bytes(*reference.weight_args(w))) as adapter:
        assert adapter.info() == dict(dim=4, hidden=2, parameter_count=sum(v.size for v in w.values()),
                                      activation="relu", similarity="dot", base_transform="sigmoid",
                                      adapter_mu=0.0, adapter_tau=1.0, base_mu=0.0, base_tau=1.0,
                                      lambda_rr=1.0, gamma_rs=1.0, encoder="")
    args = reference.weight_args(w)
    with pytest.raises(ValueError, match="fc1_weight"):
        rrra.io.adapter_bytes(args[0][:, :-1], *args[1:])
    with pytest.raises(ValueError, match="classifier_bias"):
        rrra.io.adapter_bytes(*args[:5], np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="format"):
        rrra.io.adapter_bytes(*args, format="other")
    with pytest.raises(TypeError, match="fc2_bias"):
        rrra.io.adapter_bytes(*args[:3], np.zeros(4, np.int32), *args[4:])
    # The library, not the writer, validates metadata values.
    with pytest.raises(rrra.InvalidModelError, match="similarity"):
        rrra.Adapter.from_bytes(rrra.io.adapter_bytes(*args, similarity="l2"))
    with pytest.raises(ValueError):
        rrra.io.read_safetensors(b"\x01\x00")


def test_bf16_is_read_as_float32():
    values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"t": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    header += b" " * (-len(header) % 8)
    data = struct.pack("<Q", len(header)) + header + bf16.tobytes()
    tensors, meta = rrra.io.read_safetensors(data)
    np.testing.assert_array_equal(tensors["t"], values)
    assert meta == {}
