"""Shared fixtures. The tests import the *installed* rrra package (bindings/python/test.sh
installs it); the library path is printed in pytest's header."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rrra
from helpers import Made


def pytest_report_header(config):
    return f"rrra {rrra.__version__} from {rrra.__file__}, library {rrra.library_path}"


@pytest.fixture
def make():
    made = []

    def factory(d=7, h=5, seed=0, scale=0.4, **metadata):
        m = Made(d, h, seed, scale, **metadata)
        made.append(m)
        return m

    yield factory
    for m in made:
        m.adapter.close()


@pytest.fixture(params=["float16", "bfloat16"])
def narrow(request):
    """A 16-bit float dtype the library reads in place: numpy's float16, or ml_dtypes' bfloat16.

    Without ml_dtypes the bfloat16 case is skipped for a hand-run pytest; with
    RRRA_REQUIRE_ML_DTYPES=1, which bindings/python/test.sh (and so CI) sets, it fails instead.
    """
    if request.param == "float16":
        return np.dtype(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        if os.environ.get("RRRA_REQUIRE_ML_DTYPES") == "1":
            pytest.fail("RRRA_REQUIRE_ML_DTYPES=1 but ml_dtypes is not installed: bfloat16 must be tested here")
        pytest.skip("ml_dtypes is not installed: bfloat16 inputs are not tested here")
    return np.dtype(ml_dtypes.bfloat16)
