"""The C ABI of include/rrra.h, declared for ctypes, and the loading of the shared library.

Everything here mirrors the header one to one (names, field order, C types); the test
tests/test_abi.py parses include/rrra.h and checks these declarations against it, so a change to
the header that is not carried over here fails the binding's tests.

The GIL: the library is loaded with ``ctypes.CDLL`` (not ``ctypes.PyDLL``), so ctypes releases
the GIL for the duration of every foreign call. Long rerank/resample calls therefore run in
parallel with other Python threads (each with its own Session). Keep it that way: nothing in
this library calls back into Python.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# ---- #defines -----------------------------------------------------------------------------
#: The header version this binding was written against. The library's major.minor must match:
#: struct layouts may change between minor versions before 1.0.
HEADER_VERSION = "0.1.0"
RRRA_NOT_DRAWN = 0xFFFFFFFF
RRRA_MAX_THREADS = 1024
RRRA_OVERRIDE_LAMBDA_RR = 1
RRRA_OVERRIDE_GAMMA_RS = 2
RRRA_OVERRIDE_BASE_TRANSFORM = 4
RRRA_OVERRIDE_BASE_MU = 8
RRRA_OVERRIDE_BASE_TAU = 16

# ---- enums ---------------------------------------------------------------------------------
RRRA_STATUS_OK = 0
RRRA_STATUS_NULL_POINTER = 1001
RRRA_STATUS_INVALID_ARGUMENT = 1002
RRRA_STATUS_DIMENSION_MISMATCH = 1003
RRRA_STATUS_NON_FINITE_INPUT = 1004
RRRA_STATUS_INVALID_MODEL = 1005
RRRA_STATUS_IO = 1006
RRRA_STATUS_NUMERIC = 1007
RRRA_STATUS_UNSUPPORTED = 1008
RRRA_STATUS_INTERNAL = 1099

#: rrra_activation values, by name as SPEC §2 spells them in the file's metadata.
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "tanh")
#: rrra_similarity values.
SIMILARITIES = ("dot", "cosine")
#: rrra_base_transform values.
BASE_TRANSFORMS = ("identity", "sigmoid", "softmax")
#: rrra_engine values.
ENGINES = ("auto", "reference", "folded", "cuda")
#: CPU kernel names accepted by Session (rrra_cpu_kernel order); "auto" is also what a session
#: without CPU kernels reports.
CPU_KERNELS = ("auto", "portable", "avx2", "avx512")
#: Precision names accepted by Session (rrra_precision order).
PRECISIONS = ("f32", "f16", "bf16")
#: rrra_dtype values: how embedding values are stored.
RRRA_DTYPE_F32 = 0
RRRA_DTYPE_F16 = 1
RRRA_DTYPE_BF16 = 2


# ---- opaque handles ------------------------------------------------------------------------
class rrra_corpus(Structure):
    """Opaque: a borrowed view of a caller's corpus matrix."""


class rrra_model(Structure):
    """Opaque: a validated adapter."""


class rrra_session(Structure):
    """Opaque: scratch memory and an engine over a model."""


# ---- structs (field order and types exactly as in rrra.h; struct_size first) ---------------
class rrra_model_info(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("dim", c_size_t),
        ("hidden", c_size_t),
        ("parameter_count", c_size_t),
        ("activation", c_uint32),
        ("similarity", c_uint32),
        ("base_transform", c_uint32),
        ("adapter_mu", c_double),
        ("adapter_tau", c_double),
        ("base_mu", c_double),
        ("base_tau", c_double),
        ("lambda_rr", c_double),
        ("gamma_rs", c_double),
        ("encoder", c_char_p),
    ]


class rrra_session_options(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("engine", c_uint32),
        ("threads", c_uint32),
        ("cpu_kernel", c_uint32),
        ("precision", c_uint32),
    ]


class rrra_batch(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("dim", c_size_t),
        ("n_queries", c_size_t),
        ("queries", c_void_p),
        ("queries_len", c_size_t),
        ("candidate_counts", POINTER(c_size_t)),
        ("candidates", c_void_p),
        ("candidates_len", c_size_t),
        ("candidate_stride", c_size_t),
        ("corpus", POINTER(rrra_corpus)),
        ("candidate_ids", POINTER(c_uint64)),
        ("candidate_ids_len", c_size_t),
        ("base_scores", POINTER(c_float)),
        ("base_scores_len", c_size_t),
        ("queries_dtype", c_uint32),
        ("candidates_dtype", c_uint32),
    ]


class rrra_score_options(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("override_flags", c_uint32),
        ("base_transform", c_uint32),
        ("lambda_rr", c_double),
        ("gamma_rs", c_double),
        ("base_mu", c_double),
        ("base_tau", c_double),
    ]


class rrra_rerank_outputs(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("log_s_rr", POINTER(c_float)),
        ("log_s_rr_len", c_size_t),
        ("s_a", POINTER(c_float)),
        ("s_a_len", c_size_t),
        ("s_fn", POINTER(c_float)),
        ("s_fn_len", c_size_t),
        ("class_probs", POINTER(c_float)),
        ("class_probs_len", c_size_t),
        ("order", POINTER(c_uint32)),
        ("order_len", c_size_t),
    ]


class rrra_resample_request(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("samples_per_query", c_size_t),
        ("seed", c_uint64),
        ("first_query_index", c_uint64),
        ("positive_mask", POINTER(c_uint8)),
        ("positive_mask_len", c_size_t),
    ]


class rrra_resample_outputs(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("log_s_rs", POINTER(c_float)),
        ("log_s_rs_len", c_size_t),
        ("s_fn", POINTER(c_float)),
        ("s_fn_len", c_size_t),
        ("samples", POINTER(c_uint32)),
        ("samples_len", c_size_t),
        ("sample_counts", POINTER(c_uint32)),
        ("sample_counts_len", c_size_t),
    ]


def new_struct(cls):
    """A zeroed struct with struct_size = sizeof(cls), as the header asks."""
    value = cls()
    value.struct_size = ctypes.sizeof(cls)
    return value


# ---- functions: (name, restype, argtypes), in header order ---------------------------------
rrra_status = c_int32

FUNCTIONS = [
    ("rrra_last_error", c_char_p, []),
    ("rrra_status_name", c_char_p, [c_int32]),
    ("rrra_version", c_char_p, []),
    (
        "rrra_corpus_new",
        rrra_status,
        [POINTER(c_float), c_size_t, c_size_t, c_size_t, c_size_t, POINTER(POINTER(rrra_corpus))],
    ),
    (
        "rrra_corpus_new_typed",
        rrra_status,
        [c_uint32, c_void_p, c_size_t, c_size_t, c_size_t, c_size_t, POINTER(POINTER(rrra_corpus))],
    ),
    ("rrra_corpus_free", None, [POINTER(rrra_corpus)]),
    ("rrra_model_load_file", rrra_status, [c_char_p, POINTER(POINTER(rrra_model))]),
    ("rrra_model_load_bytes", rrra_status, [POINTER(c_uint8), c_size_t, POINTER(POINTER(rrra_model))]),
    ("rrra_model_free", None, [POINTER(rrra_model)]),
    ("rrra_model_info_get", rrra_status, [POINTER(rrra_model), POINTER(rrra_model_info)]),
    (
        "rrra_sample_negatives",
        rrra_status,
        [
            POINTER(c_float),
            c_size_t,
            POINTER(c_uint8),
            c_size_t,
            c_uint64,
            c_uint64,
            POINTER(c_uint32),
            c_size_t,
            POINTER(c_size_t),
        ],
    ),
    (
        "rrra_session_new",
        rrra_status,
        [POINTER(rrra_model), POINTER(rrra_session_options), POINTER(POINTER(rrra_session))],
    ),
    ("rrra_session_free", None, [POINTER(rrra_session)]),
    ("rrra_session_engine", rrra_status, [POINTER(rrra_session), POINTER(c_uint32), POINTER(c_char_p)]),
    ("rrra_session_cpu_kernel", rrra_status, [POINTER(rrra_session), POINTER(c_uint32)]),
    ("rrra_session_precision", rrra_status, [POINTER(rrra_session), POINTER(c_uint32)]),
    (
        "rrra_session_rerank",
        rrra_status,
        [POINTER(rrra_session), POINTER(rrra_batch), POINTER(rrra_score_options), POINTER(rrra_rerank_outputs)],
    ),
    (
        "rrra_session_resample",
        rrra_status,
        [
            POINTER(rrra_session),
            POINTER(rrra_batch),
            POINTER(rrra_score_options),
            POINTER(rrra_resample_request),
            POINTER(rrra_resample_outputs),
        ],
    ),
]

if sys.platform == "darwin":
    LIBRARY_FILE = "librrra.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "rrra.dll"
else:
    LIBRARY_FILE = "librrra.so"


def library_candidates() -> list[Path]:
    """Where the shared library is looked for, in order."""
    override = os.environ.get("RRRA_LIBRARY")
    if override:
        return [Path(override)]
    here = Path(__file__).resolve().parent
    found = [here / LIBRARY_FILE]
    # Running from a source checkout (PYTHONPATH=bindings/python) after `cargo build --release`.
    repo = here.parent.parent.parent
    if (repo / "Cargo.toml").is_file():
        target = os.environ.get("CARGO_TARGET_DIR")
        found.append((Path(target) if target else repo / "target") / "release" / LIBRARY_FILE)
    return found


def _load() -> tuple[ctypes.CDLL, Path]:
    candidates = library_candidates()
    for path in candidates:
        if path.is_file():
            # CDLL, not PyDLL: every foreign call releases the GIL (see the module docstring).
            lib = ctypes.CDLL(str(path))
            for name, restype, argtypes in FUNCTIONS:
                function = getattr(lib, name)
                function.restype = restype
                function.argtypes = argtypes
            return lib, path
    raise ImportError(
        "rrra: cannot find the rrra shared library (looked at "
        + ", ".join(str(p) for p in candidates)
        + "). Install the package with `pip install ./bindings/python` (which builds it), "
        "or point RRRA_LIBRARY at a built librrra."
    )


lib, library_path = _load()


def version() -> str:
    """The library's version string (rrra_version)."""
    return lib.rrra_version().decode("ascii")


def check_version() -> str:
    """Raises ImportError unless the library's major.minor equals the header this binding mirrors."""
    found = version()
    if found.split(".")[:2] != HEADER_VERSION.split(".")[:2]:
        raise ImportError(
            f"rrra: the library at {library_path} is version {found}, but this Python binding was written "
            f"against rrra.h {HEADER_VERSION}; its structs may differ. Reinstall the package from the same "
            "checkout as the library (pip install ./bindings/python)."
        )
    return found


def last_error() -> str:
    """rrra_last_error() of this thread, decoded."""
    return lib.rrra_last_error().decode("utf-8", "replace")


def status_name(status: int) -> str:
    """rrra_status_name(status), decoded."""
    return lib.rrra_status_name(status).decode("ascii")
