"""Helpers shared by the tests: adapters from known weights, sessions on every engine, and the
SPEC §6 tolerances."""

from __future__ import annotations

import numpy as np

import reference
import rrra
import rrra.io

# Every engine; "cuda" runs only where the library was built with it and a GPU is present.
ENGINES = ("reference", "folded", "cuda")
SETTINGS = dict(adapter_mu=0.25, adapter_tau=0.75, base_mu=0.1, base_tau=0.8, lambda_rr=0.7, gamma_rs=1.3)


def sessions(adapter):
    """(engine, session) for every engine of ENGINES that this library and machine have."""
    for engine in ENGINES:
        try:
            session = adapter.session(engine)
        except rrra.UnsupportedError:
            continue
        with session:
            yield engine, session


class Made:
    """An adapter built from known float32 weights, with the config it declares."""

    def __init__(self, d, h, seed=0, scale=0.4, **metadata):
        rng = np.random.default_rng(seed)
        self.d, self.h = d, h
        self.weights = reference.random_weights(rng, d, h, scale)
        self.config = dict(metadata)
        self.bytes = rrra.io.adapter_bytes(*reference.weight_args(self.weights), **metadata)
        self.adapter = rrra.Adapter.from_bytes(self.bytes)

    def ref(self, q, c, base=None, **overrides):
        cfg = dict(self.config)
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        return reference.scores(self.weights, cfg, q, c, base)


def close_log(lib, ref, what="log s"):
    lib = np.asarray(lib, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert lib.shape == ref.shape, (what, lib.shape, ref.shape)
    bound = 1e-4 * np.maximum(1.0, np.abs(ref))
    bad = np.abs(lib - ref) > bound
    assert not bad.any(), f"{what}: |lib - ref| > 1e-4 max(1, |ref|) at {np.flatnonzero(bad)}: lib {lib[bad]} ref {ref[bad]}"


def close_abs(lib, ref, tol, what):
    lib = np.asarray(lib, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert lib.shape == ref.shape, (what, lib.shape, ref.shape)
    err = np.abs(lib - ref)
    assert not (err > tol).any(), f"{what}: max error {err.max()} > {tol}"
