"""Independent float64 reference of SPEC §3–§5 (numpy and the standard library only).

Nothing here uses the rrra package: the tests compare the library, through the binding, against it.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "tanh")
SIMILARITIES = ("dot", "cosine")
BASE_TRANSFORMS = ("identity", "sigmoid", "softmax")

_erf = np.vectorize(math.erf, otypes=[np.float64])


def act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "gelu":
        return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    raise ValueError(name)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -softplus(-x)


def sim(similarity: str, q: np.ndarray, a: np.ndarray) -> np.ndarray:
    """sim(q, a_i) for each row a_i."""
    dot = a @ q
    if similarity == "dot":
        return dot
    nq = np.linalg.norm(q)
    na = np.linalg.norm(a, axis=1)
    out = np.zeros_like(dot)
    ok = (nq >= 1e-12) & (na >= 1e-12)
    out[ok] = dot[ok] / (nq * na[ok])
    return out


def random_weights(rng: np.random.Generator, d: int, h: int, scale: float = 0.4) -> Dict[str, np.ndarray]:
    """float32 weights of an adapter, in state_dict names."""
    shapes = {
        "fc1.weight": (h, 3 * d),
        "fc1.bias": (h,),
        "fc2.weight": (d, h),
        "fc2.bias": (d,),
        "classifier.weight": (4, h),
        "classifier.bias": (4,),
    }
    return {
        name: (rng.standard_normal(shape) * scale / math.sqrt(shape[-1] if len(shape) == 2 else 1)).astype(np.float32)
        for name, shape in shapes.items()
    }


def weight_args(w: Dict[str, np.ndarray]) -> list:
    return [w[n] for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "classifier.weight", "classifier.bias")]


DEFAULT_CONFIG = {
    "activation": "relu",
    "similarity": "dot",
    "adapter_mu": 0.0,
    "adapter_tau": 1.0,
    "base_transform": "sigmoid",
    "base_mu": 0.0,
    "base_tau": 1.0,
    "lambda_rr": 1.0,
    "gamma_rs": 1.0,
}


def scores(
    w: Dict[str, np.ndarray],
    config: dict,
    q: np.ndarray,
    c: np.ndarray,
    base: Optional[np.ndarray] = None,
) -> Dict[str, np.ndarray]:
    """SPEC §3–§4 in float64 for one query: log_s_rr, log_s_rs, s_a, s_fn, class_probs."""
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(config)
    f = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    q = np.asarray(q, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64).reshape(-1, q.shape[0])
    z = np.concatenate([q - c, q * c, q + c], axis=1)
    hid = act(cfg["activation"], z @ f["fc1.weight"].T + f["fc1.bias"])
    a = c + hid @ f["fc2.weight"].T + f["fc2.bias"]
    s = sim(cfg["similarity"], q, a)
    log_s_a = log_sigmoid((s - float(cfg["adapter_mu"])) / float(cfg["adapter_tau"]))
    logits = hid @ f["classifier.weight"].T + f["classifier.bias"]
    logits = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True) if len(e) else e.reshape(0, 4)
    b = sim(cfg["similarity"], q, c) if base is None else np.asarray(base, dtype=np.float64)
    t = cfg["base_transform"]
    if t == "identity":
        log_s_b = np.log(b)
    elif t == "sigmoid":
        log_s_b = log_sigmoid((b - float(cfg["base_mu"])) / float(cfg["base_tau"]))
    else:
        x = b / float(cfg["base_tau"])
        log_s_b = x - (np.logaddexp.reduce(x) if len(x) else 0.0)
    not_fn = p[:, 0] + p[:, 2] + p[:, 3]
    return {
        "log_s_rr": log_s_b + float(cfg["lambda_rr"]) * log_s_a,
        "log_s_rs": log_s_b + float(cfg["gamma_rs"]) * np.log(not_fn),
        "s_a": np.exp(log_s_a),
        "s_fn": p[:, 1],
        "class_probs": p,
    }


# ---- SPEC §5 sampler, pure Python (as tests/sampler_kat.py of the crate) --------------------
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_open01(self) -> float:
        return ((self.next_u64() >> 11) + 0.5) * 2.0**-53


def sample(log_s_rs, mask, seed: int, query_index: int, n: int) -> list:
    """Drawn positions (best key first), at most n."""
    rng = SplitMix64(seed ^ ((GOLDEN * ((query_index + 1) & MASK64)) & MASK64))
    keys = []
    for i, w in enumerate(log_s_rs):
        u = rng.next_open01()
        if mask is not None and mask[i]:
            continue
        try:
            scale = math.exp(-float(w))
            key = math.log(u) * scale
        except OverflowError:
            key = -math.inf
        keys.append((key, i))
    keys.sort(key=lambda t: (-t[0], t[1]))
    return [i for _, i in keys[:n]]
