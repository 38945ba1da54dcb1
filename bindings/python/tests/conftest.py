"""Shared fixtures. The tests import the *installed* rrra package (bindings/python/test.sh
installs it); the library path is printed in pytest's header."""

from __future__ import annotations

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
