"""rrra.torch: the reference module agrees with the library, and export() writes loadable files.

Skipped (with the reason printed) when torch is not installed, for a hand-run pytest. With
RRRA_REQUIRE_TORCH=1, which bindings/python/test.sh (and so CI) sets after installing a pinned torch,
a missing torch fails instead.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if importlib.util.find_spec("torch") is None:
    if os.environ.get("RRRA_REQUIRE_TORCH") == "1":
        pytest.fail("RRRA_REQUIRE_TORCH=1 but torch is not installed: rrra.torch must be tested here",
                    pytrace=False)
    pytest.skip("torch is not installed: rrra.torch is not tested here", allow_module_level=True)

import torch  # noqa: E402

import rrra  # noqa: E402
import rrra.torch as rt  # noqa: E402
from helpers import close_abs, close_log  # noqa: E402


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "silu", "tanh"])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_module_matches_library(tmp_path, activation, similarity):
    torch.manual_seed(0)
    model = rt.RRRAAdapter(7, 5, activation=activation, similarity=similarity, zero_init_residual=False,
                           adapter_mu=0.2, adapter_tau=0.6, lambda_rr=0.8, gamma_rs=1.2)
    assert list(model.state_dict()) == list(rrra.io.TENSOR_NAMES)
    path = tmp_path / "a.safetensors"
    rt.export(model, path, encoder="test-encoder")
    q = torch.randn(7)
    c = torch.randn(9, 7)
    with torch.no_grad():
        s = model.scores(q.unsqueeze(0), c)
    with rrra.Adapter.load(path) as adapter, adapter.session() as session:
        assert adapter.encoder == "test-encoder" and adapter.activation == activation
        r = session.rerank(q.numpy(), c.numpy())
        rs = session.resample(q.numpy(), c.numpy(), samples_per_query=3)
    close_log(r.log_s_rr, s["log_s_rr"].double().numpy())
    close_abs(r.s_fn, s["s_fn"].double().numpy(), 1e-5, "s_fn")
    close_log(rs.log_s_rs, s["log_s_rs"].double().numpy())
    back = rt.from_adapter_file(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor)


def test_export_without_safetensors(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name.startswith("safetensors"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    model = rt.RRRAAdapter(4, 3).to(torch.bfloat16)
    rt.export(model, tmp_path / "b.safetensors", **{"x-note": "bf16"})
    with rrra.Adapter.load(tmp_path / "b.safetensors") as adapter:
        assert (adapter.dim, adapter.hidden) == (4, 3)


def test_losses():
    torch.manual_seed(1)
    model = rt.RRRAAdapter(6, 4, zero_init_residual=False)
    q = torch.randn(2, 1, 6)
    c = torch.randn(2, 5, 6, requires_grad=False)
    a, hid, logits = model(q, c)
    assert a.shape == (2, 5, 6) and hid.shape == (2, 5, 4) and logits.shape == (2, 5, 4)
    relevant = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    base = torch.randn(2, 5)
    labels = rt.confusion_labels(relevant, base, cutoff=1)
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3}
    weights = rt.class_weights(torch.bincount(labels.flatten(), minlength=4))
    l_cls = rt.class_weighted_cross_entropy(logits, labels, weights)
    l_norm = rt.normalization_loss(q, c, a)
    l_rank = rt.rank_loss(model.sim(q, a), relevant)
    total = l_cls + 0.1 * l_norm + 0.5 * l_rank
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    # a on the segment from c to q costs nothing.
    on_segment = 0.3 * q + 0.7 * c
    assert float(rt.normalization_loss(q, c, on_segment)) < 1e-10
    # Weights: rarer classes weigh more.
    w = rt.class_weights([90, 9, 1, 0])
    assert w[2] > w[1] > w[0] and w[3] == 0
