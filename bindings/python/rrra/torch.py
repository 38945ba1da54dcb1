"""The reference PyTorch module, the SPEC §7 training losses, and export to an adapter file.

Imported only on request (``import rrra.torch``); needs torch. The module's ``state_dict()``
names are exactly the tensor names of an adapter file (SPEC §2), so a trained module exports
with :func:`export` and loads with ``rrra.Adapter.load``::

    import torch, rrra, rrra.torch as rt

    model = rt.RRRAAdapter(dim=384, hidden=256, activation="gelu")
    a, hid, logits = model(q, c)                      # q, c: (..., d)
    loss = rt.class_weighted_cross_entropy(logits, labels, weights) + ...
    rt.export(model, "adapter.safetensors", encoder="all-MiniLM-L6-v2", lambda_rr=0.5)
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import io as _io

__all__ = [
    "CLASS_TP",
    "CLASS_FN",
    "CLASS_FP",
    "CLASS_TN",
    "RRRAAdapter",
    "class_weights",
    "class_weighted_cross_entropy",
    "normalization_loss",
    "rank_loss",
    "confusion_labels",
    "export",
    "from_adapter_file",
]

#: Class indices of the 4-way head (SPEC §2: order TP, FN, FP, TN).
CLASS_TP, CLASS_FN, CLASS_FP, CLASS_TN = 0, 1, 2, 3

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "tanh": torch.tanh,
}

#: Metadata keys that are score settings of the module (the rest of SPEC §2's keys go to export()).
_SETTINGS = ("activation", "similarity", "adapter_mu", "adapter_tau", "base_transform", "base_mu", "base_tau", "lambda_rr", "gamma_rs")


class RRRAAdapter(nn.Module):
    """The RRRA adapter (SPEC §3): ``hid = act(fc1 · [q−c, q⊙c, q+c])``, ``a = c + fc2 · hid``,
    ``logits = classifier · hid``.

    Submodules ``fc1`` (Linear 3d → h), ``fc2`` (Linear h → d) and ``classifier`` (Linear h → 4)
    give the state_dict names of the adapter file. The score settings (activation, similarity,
    μ/τ, λ, γ, base transform) are plain attributes, written into the file's metadata by
    :func:`export`.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        activation: str = "relu",
        similarity: str = "dot",
        adapter_mu: float = 0.0,
        adapter_tau: float = 1.0,
        base_transform: str = "sigmoid",
        base_mu: float = 0.0,
        base_tau: float = 1.0,
        lambda_rr: float = 1.0,
        gamma_rs: float = 1.0,
        zero_init_residual: bool = True,
    ) -> None:
        """Args:
            dim: embedding dimension d.
            hidden: hidden width h.
            activation: ``relu``, ``gelu`` (erf form), ``gelu_tanh``, ``silu`` or ``tanh``.
            similarity: ``dot`` or ``cosine``.
            adapter_mu, adapter_tau, base_transform, base_mu, base_tau, lambda_rr, gamma_rs:
                score settings (SPEC §2, §4); fit μ/τ on the training split, λ on a dev split.
            zero_init_residual: start fc2 at zero so that a = c before training.
        """
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity: expected 'dot' or 'cosine', got {similarity!r}")
        if base_transform not in ("identity", "sigmoid", "softmax"):
            raise ValueError(f"base_transform: expected identity, sigmoid or softmax, got {base_transform!r}")
        self.dim = int(dim)
        self.hidden = int(hidden)
        self.fc1 = nn.Linear(3 * self.dim, self.hidden)
        self.fc2 = nn.Linear(self.hidden, self.dim)
        self.classifier = nn.Linear(self.hidden, 4)
        if zero_init_residual:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)
        self.activation = activation
        self.similarity = similarity
        self.adapter_mu = float(adapter_mu)
        self.adapter_tau = float(adapter_tau)
        self.base_transform = base_transform
        self.base_mu = float(base_mu)
        self.base_tau = float(base_tau)
        self.lambda_rr = float(lambda_rr)
        self.gamma_rs = float(gamma_rs)

    def forward(self, q: Tensor, c: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The forward pass of SPEC §3 for pairs (q, c), broadcasting over leading dimensions.

        Args:
            q: (..., d) queries (e.g. (B, 1, d) against candidates (B, K, d)).
            c: (..., d) candidates.

        Returns:
            (a, hid, logits): the adapted candidate (..., d), the hidden layer (..., h) and the
            class logits (..., 4) in order TP, FN, FP, TN.
        """
        q, c = torch.broadcast_tensors(q, c)
        z = torch.cat([q - c, q * c, q + c], dim=-1)
        hid = _ACTIVATIONS[self.activation](self.fc1(z))
        a = c + self.fc2(hid)
        return a, hid, self.classifier(hid)

    def sim(self, q: Tensor, a: Tensor) -> Tensor:
        """sim(q, a): the dot product, or the cosine (0 when either norm is below 1e-12)."""
        q, a = torch.broadcast_tensors(q, a)
        dot = (q * a).sum(dim=-1)
        if self.similarity == "dot":
            return dot
        norms = q.norm(dim=-1) * a.norm(dim=-1)
        ok = (q.norm(dim=-1) >= 1e-12) & (a.norm(dim=-1) >= 1e-12)
        return torch.where(ok, dot / torch.where(ok, norms, torch.ones_like(norms)), torch.zeros_like(dot))

    def log_s_a(self, q: Tensor, a: Tensor) -> Tensor:
        """log s_A = log sigmoid((sim(q, a) − μ) / τ), computed as −softplus(−x)."""
        return -F.softplus(-(self.sim(q, a) - self.adapter_mu) / self.adapter_tau)

    def s_a(self, q: Tensor, a: Tensor) -> Tensor:
        """s_A = sigmoid((sim(q, a) − μ) / τ): the adapter's relevance score."""
        return torch.sigmoid((self.sim(q, a) - self.adapter_mu) / self.adapter_tau)

    @staticmethod
    def class_probs(logits: Tensor) -> Tensor:
        """softmax over the 4 classes (TP, FN, FP, TN)."""
        return torch.softmax(logits, dim=-1)

    @staticmethod
    def s_fn(logits: Tensor) -> Tensor:
        """s_FN = p_FN, the false-negative probability."""
        return torch.softmax(logits, dim=-1)[..., CLASS_FN]

    def log_s_b(self, base_scores: Tensor, base_transform: Optional[str] = None) -> Tensor:
        """log s_B over the last dimension (one query's candidates), SPEC §4."""
        transform = base_transform or self.base_transform
        if transform == "identity":
            return torch.log(base_scores)
        if transform == "sigmoid":
            return -F.softplus(-(base_scores - self.base_mu) / self.base_tau)
        return torch.log_softmax(base_scores / self.base_tau, dim=-1)

    def scores(self, q: Tensor, c: Tensor, base_scores: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """log s_RR, log s_RS, s_A, s_FN and class probabilities of candidates c (..., K, d) for q (..., 1, d)."""
        a, _, logits = self(q, c)
        if base_scores is None:
            base_scores = self.sim(q, c)
        log_s_b = self.log_s_b(base_scores)
        p = self.class_probs(logits)
        log_s_a = self.log_s_a(q, a)
        not_fn = p[..., CLASS_TP] + p[..., CLASS_FP] + p[..., CLASS_TN]
        return {
            "log_s_rr": log_s_b + self.lambda_rr * log_s_a,
            "log_s_rs": log_s_b + self.gamma_rs * torch.log(not_fn),
            "s_a": log_s_a.exp(),
            "s_fn": p[..., CLASS_FN],
            "class_probs": p,
        }

    def settings(self) -> Dict[str, object]:
        """The score settings, as export() writes them into the metadata."""
        return {key: getattr(self, key) for key in _SETTINGS}

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, activation={self.activation}, similarity={self.similarity}"


# ---- SPEC §7 losses ------------------------------------------------------------------------
def confusion_labels(relevant: Tensor, base_scores: Tensor, cutoff: int = 1) -> Tensor:
    """SPEC §7 labels from the frozen retriever's confusion matrix.

    Args:
        relevant: (..., K) bool, judged relevant.
        base_scores: (..., K) the retriever's scores.
        cutoff: r, the retriever's cut-off (top-r by base score count as retrieved).

    Returns:
        (..., K) int64 labels: TP (relevant, top-r), FN (relevant, not top-r), FP (not relevant,
        top-r), TN (neither).
    """
    rank = torch.argsort(torch.argsort(base_scores, dim=-1, descending=True, stable=True), dim=-1)
    top = rank < cutoff
    relevant = relevant.bool()
    labels = torch.full_like(rank, CLASS_TN)
    labels[relevant & top] = CLASS_TP
    labels[relevant & ~top] = CLASS_FN
    labels[~relevant & top] = CLASS_FP
    return labels


def class_weights(counts: Union[Tensor, Sequence[float]], gamma_imb: float = 0.3) -> Tensor:
    """Class weights ``(n_c / N)^(−γ_imb)`` from per-class counts (SPEC §7; default γ_imb = 0.3).

    A class with no examples gets weight 0 (it contributes nothing anyway).
    """
    counts = torch.as_tensor(counts, dtype=torch.float32)
    freq = counts / counts.sum().clamp_min(1.0)
    return torch.where(counts > 0, freq.clamp_min(1e-12).pow(-gamma_imb), torch.zeros_like(freq))


def class_weighted_cross_entropy(logits: Tensor, labels: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """L_cls: cross-entropy over the 4 classes with per-class weights (see :func:`class_weights`).

    Args:
        logits: (..., 4).
        labels: (...) int64 class indices; -100 is ignored.
        weights: (4,) or None.
    """
    return F.cross_entropy(
        logits.reshape(-1, 4),
        labels.reshape(-1),
        weight=None if weights is None else weights.to(logits),
        ignore_index=-100,
    )


def normalization_loss(q: Tensor, c: Tensor, a: Tensor, reduction: str = "mean") -> Tensor:
    """L_norm, the linear normalization loss: keeps a near the segment from c to q.

    ``α* = clamp(((a − c)·(q − c)) / ‖q − c‖², 0, 1)``, ``L = ‖a − (α* q + (1 − α*) c)‖²``
    (α* is 0 where q = c). α* is the projection of a onto the line through c and q, so the
    gradient through it vanishes wherever it is not clamped.
    """
    q, c, a = torch.broadcast_tensors(q, c, a)
    qc = q - c
    denom = (qc * qc).sum(dim=-1, keepdim=True)
    alpha = torch.where(denom > 0, ((a - c) * qc).sum(dim=-1, keepdim=True) / denom.clamp_min(1e-30), torch.zeros_like(denom))
    alpha = alpha.clamp(0.0, 1.0)
    loss = (a - (alpha * q + (1 - alpha) * c)).pow(2).sum(dim=-1)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def rank_loss(sim: Tensor, relevant: Tensor, tau_rank: float = 0.05, valid: Optional[Tensor] = None) -> Tensor:
    """L_rank: listwise softmax cross-entropy over each query's candidates on sim(q, a) / τ_rank,
    with the judged-relevant candidates as targets (uniform over them).

    Args:
        sim: (B, K) sim(q, a).
        relevant: (B, K) bool targets.
        tau_rank: temperature.
        valid: (B, K) bool, False for padding; None = all valid.

    Returns:
        The mean over queries that have at least one relevant candidate (0 if none has).
    """
    logits = sim / tau_rank
    relevant = relevant.bool()
    if valid is not None:
        logits = logits.masked_fill(~valid.bool(), float("-inf"))
        relevant = relevant & valid.bool()
    log_p = torch.log_softmax(logits, dim=-1)
    n_rel = relevant.sum(dim=-1)
    target = relevant.to(log_p.dtype) / n_rel.clamp_min(1).unsqueeze(-1).to(log_p.dtype)
    per_query = -(target * log_p.masked_fill(~relevant, 0.0)).sum(dim=-1)
    has = n_rel > 0
    if not bool(has.any()):
        return sim.sum() * 0.0
    return per_query[has].mean()


# ---- export --------------------------------------------------------------------------------
def export(module: RRRAAdapter, path: str, **metadata: object) -> None:
    """Writes `module` as an adapter file (SPEC §2).

    The metadata holds format/format_version, the module's score settings (see
    :meth:`RRRAAdapter.settings`, overridable here) and any further keys given (e.g.
    ``encoder="all-MiniLM-L6-v2"``, ``**{"x-trained-on": "msmarco"}``). Uses
    ``safetensors.torch.save_file`` when safetensors is installed, otherwise :mod:`rrra.io`'s
    writer. bfloat16 and float64 weights are written as float32, float16 stays F16.
    """
    meta: Dict[str, object] = dict(module.settings()) if isinstance(module, RRRAAdapter) else {}
    meta.update(metadata)
    state = {name: tensor for name, tensor in module.state_dict().items() if name in _io.TENSOR_NAMES}
    missing = [name for name in _io.TENSOR_NAMES if name not in state]
    if missing:
        raise ValueError(f"module: state_dict lacks {missing} (needs fc1, fc2 and classifier Linear layers)")

    def as_saved(t: Tensor) -> Tensor:
        t = t.detach().cpu()
        return t.contiguous() if t.dtype in (torch.float32, torch.float16) else t.float().contiguous()

    tensors = {name: as_saved(state[name]) for name in _io.TENSOR_NAMES}
    try:
        from safetensors.torch import save_file  # type: ignore[import-not-found]
    except ImportError:
        save_file = None
    if save_file is not None:
        strings = {"format": "rrra-adapter", "format_version": "1"}
        for key, value in meta.items():
            strings[key] = repr(float(value)) if isinstance(value, float) else str(value)
        save_file(tensors, str(path), metadata=strings)
        return
    arrays = [tensors[name].numpy() for name in _io.TENSOR_NAMES]
    _io.save_adapter(path, *arrays, **meta)


def from_adapter_file(path: str) -> RRRAAdapter:
    """Builds an :class:`RRRAAdapter` from an adapter file (weights and score settings)."""
    tensors, meta = _io.read_safetensors(path)
    d, h = tensors["fc2.weight"].shape
    kwargs = {}
    for key in _SETTINGS:
        if key in meta:
            kwargs[key] = meta[key] if key in ("activation", "similarity", "base_transform") else float(meta[key])
    module = RRRAAdapter(d, h, **kwargs)
    module.load_state_dict({name: torch.from_numpy(np.asarray(tensors[name], dtype=np.float32)) for name in _io.TENSOR_NAMES})
    return module

