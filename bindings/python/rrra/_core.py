"""Adapter, Session, Corpus and the sampler: numpy in, numpy out, over the C ABI in _lib."""

from __future__ import annotations

import operator
import os
import threading
import weakref
from contextlib import contextmanager
from ctypes import POINTER, byref, c_char_p, c_float, c_size_t, c_uint8, c_uint32, c_uint64
from dataclasses import dataclass
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _lib
from ._errors import DimensionMismatchError, check, error_for

__all__ = [
    "Adapter",
    "Corpus",
    "Session",
    "RerankResult",
    "RerankBatchResult",
    "ResampleResult",
    "ResampleBatchResult",
    "sample_negatives",
]

PathLike = Union[str, "os.PathLike[str]"]
#: Dense candidate rows, or (row ids, Corpus).
Candidates = Union[npt.ArrayLike, Tuple[npt.ArrayLike, "Corpus"]]

_U64_MAX = (1 << 64) - 1
#: Upper bound on Session(threads=...), see Session.__init__.
_MAX_THREADS = _lib.RRRA_MAX_THREADS


# ---- input conversion ----------------------------------------------------------------------
def _dtype_code(dtype: np.dtype) -> Optional[int]:
    """The rrra_dtype the library reads `dtype` as in place, or None (converted to float32)."""
    if dtype == np.float32:
        return _lib.RRRA_DTYPE_F32
    if dtype == np.float16:
        return _lib.RRRA_DTYPE_F16
    # ml_dtypes' bfloat16 (JAX's numpy bfloat16), recognised by name so that the
    # package does not depend on ml_dtypes.
    if dtype.name == "bfloat16" and dtype.itemsize == 2:
        return _lib.RRRA_DTYPE_BF16
    return None


def _checked_float(name: str, value: npt.ArrayLike, ndim: int, shape_text: str) -> np.ndarray:
    """`value` as a float array of `ndim` dimensions, in its own dtype; other dtypes are a TypeError."""
    arr = np.asarray(value)
    if _dtype_code(arr.dtype) is None and (arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8)):
        raise TypeError(
            f"{name}: expected a float32, float16 or bfloat16 array (float64 is converted to float32), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {shape_text}, got shape {arr.shape}")
    return arr


def _float_array(name: str, value: npt.ArrayLike, ndim: int, shape_text: str) -> np.ndarray:
    """`value` as a float32 array of `ndim` dimensions (scores, and numpy arithmetic)."""
    arr = _checked_float(name, value, ndim, shape_text)
    return arr if arr.dtype == np.float32 else arr.astype(np.float32)


def _embeddings(name: str, value: npt.ArrayLike, ndim: int, shape_text: str) -> np.ndarray:
    """`value` as an array of a dtype the library reads (SPEC §1): float32, float16 and bfloat16
    keep their type; float64 and non-native byte orders are converted to float32.

    The library widens float16/bfloat16 exactly, so keeping them changes no result and saves the
    copy.
    """
    arr = _checked_float(name, value, ndim, shape_text)
    return arr if _dtype_code(arr.dtype) is not None else arr.astype(np.float32)


def _aligned_c_order(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray alone keeps a misaligned view (e.g. from a byte buffer at an odd
    # offset), which the library refuses.
    return np.require(arr, requirements=("C", "A"))


def _rows(name: str, value: npt.ArrayLike) -> Tuple[np.ndarray, int]:
    """A (rows, d) matrix the library reads in place, and its row stride in elements.

    No copy when the array is float32, float16 or bfloat16 with unit column stride, aligned, and
    a row stride that is a non-negative multiple of the element size at least one row wide
    (C-contiguous arrays, row slices, column slices ``m[:, :d]`` of a wider matrix); anything
    else is copied to C order.
    """
    arr = _embeddings(name, value, 2, "(rows, d)")
    rows, dim = arr.shape
    size = arr.itemsize
    row_bytes, col_bytes = arr.strides
    in_place = (
        arr.flags.aligned
        and (dim <= 1 or col_bytes == size)
        and (rows <= 1 or (row_bytes % size == 0 and row_bytes >= size * dim))
    )
    if not in_place:
        return _aligned_c_order(arr), dim
    return arr, (row_bytes // size if rows > 1 else dim)


def _span(rows: int, dim: int, stride: int) -> int:
    """Values a (rows, dim) matrix with row stride `stride` covers."""
    return 0 if rows == 0 else (rows - 1) * stride + dim


def _contiguous_f32(name: str, value: npt.ArrayLike, ndim: int, shape_text: str) -> np.ndarray:
    return _aligned_c_order(_float_array(name, value, ndim, shape_text))


def _contiguous_embeddings(name: str, value: npt.ArrayLike, ndim: int, shape_text: str) -> np.ndarray:
    return _aligned_c_order(_embeddings(name, value, ndim, shape_text))


def _index_array(name: str, value: npt.ArrayLike, dtype: Any) -> np.ndarray:
    """A 1-D array of non-negative integers as `dtype`, C-contiguous."""
    arr = np.asarray(value)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # [] arrives as float64
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise ValueError(f"{name}: values must be non-negative, got {int(arr.min())}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _mask_array(name: str, value: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(bool)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected booleans (True = labelled positive), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr != 0, dtype=np.uint8)


def _u64(name: str, value: int) -> int:
    value = operator.index(value)
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{name}: must be in [0, 2**64 - 1], got {value}")
    return value


def _count(name: str, value: int) -> int:
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{name}: must be non-negative, got {value}")
    return value


def _ptr(arr: Optional[np.ndarray], ctype: Any) -> Any:
    return None if arr is None else arr.ctypes.data_as(POINTER(ctype))


def _choice(name: str, value: str, choices: Sequence[str]) -> int:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return choices.index(value)


def _score_options(
    *,
    lambda_rr: Optional[float] = None,
    gamma_rs: Optional[float] = None,
    base_transform: Optional[str] = None,
    base_mu: Optional[float] = None,
    base_tau: Optional[float] = None,
) -> Optional[_lib.rrra_score_options]:
    """rrra_score_options with a bit set for every override given; None (NULL) when none is."""
    options = _lib.new_struct(_lib.rrra_score_options)
    if lambda_rr is not None:
        options.override_flags |= _lib.RRRA_OVERRIDE_LAMBDA_RR
        options.lambda_rr = float(lambda_rr)
    if gamma_rs is not None:
        options.override_flags |= _lib.RRRA_OVERRIDE_GAMMA_RS
        options.gamma_rs = float(gamma_rs)
    if base_transform is not None:
        options.override_flags |= _lib.RRRA_OVERRIDE_BASE_TRANSFORM
        options.base_transform = _choice("base_transform", base_transform, _lib.BASE_TRANSFORMS)
    if base_mu is not None:
        options.override_flags |= _lib.RRRA_OVERRIDE_BASE_MU
        options.base_mu = float(base_mu)
    if base_tau is not None:
        options.override_flags |= _lib.RRRA_OVERRIDE_BASE_TAU
        options.base_tau = float(base_tau)
    return options if options.override_flags else None


# ---- Adapter -------------------------------------------------------------------------------
def _free_model(handle: Any) -> None:
    _lib.lib.rrra_model_free(handle)


class Adapter:
    """A loaded, validated adapter file (SPEC §2). Immutable: share one between threads.

    Create with :meth:`Adapter.load` or :meth:`Adapter.from_bytes`; release with :meth:`close`,
    a ``with`` block, or by dropping the last reference. Sessions keep their own reference to
    the model, so an adapter may be closed while its sessions live on.
    """

    def __init__(self, handle: Any, source: str) -> None:
        """Internal: use :meth:`load` or :meth:`from_bytes`."""
        if not isinstance(handle, POINTER(_lib.rrra_model)) or not handle:
            raise TypeError("use Adapter.load(path) or Adapter.from_bytes(data)")
        self._handle = handle
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _free_model, handle)
        self._source = source
        info = _lib.new_struct(_lib.rrra_model_info)
        check(_lib.lib.rrra_model_info_get(handle, byref(info)))
        self._dim = int(info.dim)
        self._hidden = int(info.hidden)
        self._parameter_count = int(info.parameter_count)
        self._activation = _lib.ACTIVATIONS[info.activation]
        self._similarity = _lib.SIMILARITIES[info.similarity]
        self._base_transform = _lib.BASE_TRANSFORMS[info.base_transform]
        self._adapter_mu = float(info.adapter_mu)
        self._adapter_tau = float(info.adapter_tau)
        self._base_mu = float(info.base_mu)
        self._base_tau = float(info.base_tau)
        self._lambda_rr = float(info.lambda_rr)
        self._gamma_rs = float(info.gamma_rs)
        self._encoder = (info.encoder or b"").decode("utf-8", "replace")

    @classmethod
    def load(cls, path: PathLike) -> "Adapter":
        """Loads and validates an adapter file (``.safetensors``).

        Raises:
            IoError: the file cannot be read (also an ``OSError``, with ``filename`` set).
            InvalidModelError: the file breaks SPEC §2; the message names the tensor or key.
        """
        text = os.fspath(path)
        if isinstance(text, bytes):
            encoded = text
        else:
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError:  # undecodable file name (surrogate escapes)
                encoded = os.fsencode(text)
        handle = POINTER(_lib.rrra_model)()
        status = _lib.lib.rrra_model_load_file(encoded, byref(handle))
        if status != _lib.RRRA_STATUS_OK:
            error = error_for(status)
            if isinstance(error, OSError):
                error.filename = os.fsdecode(text)
            raise error
        return cls(handle, os.fsdecode(text))

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview, np.ndarray]) -> "Adapter":
        """Loads and validates an adapter file held in memory (the bytes are copied by the library).

        Raises:
            InvalidModelError: the bytes break SPEC §2; the message names the tensor or key.
        """
        buffer = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        handle = POINTER(_lib.rrra_model)()
        check(_lib.lib.rrra_model_load_bytes(_ptr(buffer, c_uint8), buffer.size, byref(handle)))
        return cls(handle, f"<{buffer.size} bytes>")

    # -- what the file declares (rrra_model_info_get) --
    @property
    def dim(self) -> int:
        """Embedding dimension d."""
        return self._dim

    @property
    def hidden(self) -> int:
        """Hidden width h."""
        return self._hidden

    @property
    def parameter_count(self) -> int:
        """Number of weights and biases."""
        return self._parameter_count

    @property
    def activation(self) -> str:
        """``"relu"``, ``"gelu"``, ``"gelu_tanh"``, ``"silu"`` or ``"tanh"``."""
        return self._activation

    @property
    def similarity(self) -> str:
        """``"dot"`` or ``"cosine"``."""
        return self._similarity

    @property
    def base_transform(self) -> str:
        """``"identity"``, ``"sigmoid"`` or ``"softmax"``: the file's default base-score transform."""
        return self._base_transform

    @property
    def adapter_mu(self) -> float:
        """μ in s_A = sigmoid((sim(q, a) − μ) / τ)."""
        return self._adapter_mu

    @property
    def adapter_tau(self) -> float:
        """τ in s_A = sigmoid((sim(q, a) − μ) / τ)."""
        return self._adapter_tau

    @property
    def base_mu(self) -> float:
        """μ of the sigmoid base transform."""
        return self._base_mu

    @property
    def base_tau(self) -> float:
        """τ of the sigmoid and softmax base transforms."""
        return self._base_tau

    @property
    def lambda_rr(self) -> float:
        """λ in log s_RR = log s_B + λ · log s_A."""
        return self._lambda_rr

    @property
    def gamma_rs(self) -> float:
        """γ in log s_RS = log s_B + γ · log(1 − s_FN)."""
        return self._gamma_rs

    @property
    def encoder(self) -> str:
        """The bi-encoder the adapter was trained on (may be empty)."""
        return self._encoder

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has released the model."""
        return not self._finalizer.alive

    def info(self) -> dict:
        """Everything rrra_model_info_get reports, as a dict."""
        names = (
            "dim hidden parameter_count activation similarity base_transform adapter_mu adapter_tau "
            "base_mu base_tau lambda_rr gamma_rs encoder"
        ).split()
        return {name: getattr(self, name) for name in names}

    def session(
        self, engine: str = "auto", threads: int = 1, cpu_kernel: str = "auto", precision: str = "f32"
    ) -> "Session":
        """A new :class:`Session` over this adapter (see :class:`Session`)."""
        return Session(self, engine=engine, threads=threads, cpu_kernel=cpu_kernel, precision=precision)

    def close(self) -> None:
        """Releases the model (rrra_model_free). Idempotent; sessions already made keep working."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> "Adapter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<rrra.Adapter{state} d={self._dim} h={self._hidden} activation={self._activation} "
            f"similarity={self._similarity} from {self._source}>"
        )


# ---- Corpus --------------------------------------------------------------------------------
def _free_corpus(handle: Any, array: np.ndarray) -> None:
    # `array` is an argument only to keep the rows alive until the handle is gone.
    _lib.lib.rrra_corpus_free(handle)


class Corpus:
    """A (rows, d) embedding matrix registered once, so candidates can be passed as row ids.

    The library reads the rows in place and never copies them: a float32, float16 or bfloat16
    (ml_dtypes) array with unit column stride and a row stride that is a multiple of the element
    size (C-contiguous, or a column slice ``m[:, :d]`` of a wider matrix) is used as it is, in its
    own type; other layouts are copied once, here, in the same type, and float64 into float32.
    The Corpus keeps a reference to the array it registered, so the memory stays alive while
    registered; do not modify the rows while a call that uses them is running.
    """

    def __init__(self, matrix: npt.ArrayLike) -> None:
        """Registers `matrix` (rows, d) with rrra_corpus_new_typed."""
        array, stride = _rows("matrix", matrix)
        rows, dim = array.shape
        handle = POINTER(_lib.rrra_corpus)()
        check(
            _lib.lib.rrra_corpus_new_typed(
                _dtype_code(array.dtype), array.ctypes.data, _span(rows, dim, stride), rows, dim, stride, byref(handle)
            )
        )
        self._array = array
        self._row_stride = stride
        self._handle = handle
        self._users = 0
        self._condition = threading.Condition()
        self._finalizer = weakref.finalize(self, _free_corpus, handle, array)

    @property
    def array(self) -> np.ndarray:
        """The registered (rows, d) array (a view of the caller's memory when no copy was needed)."""
        return self._array

    @property
    def dtype(self) -> np.dtype:
        """The rows' numpy dtype: float32, float16 or bfloat16."""
        return self._array.dtype

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self._array.shape[0])

    @property
    def dim(self) -> int:
        """Row width d."""
        return int(self._array.shape[1])

    @property
    def row_stride(self) -> int:
        """Distance between rows, in elements of :attr:`dtype`."""
        return self._row_stride

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has released the handle."""
        return not self._finalizer.alive

    @contextmanager
    def _in_use(self) -> Iterator[Any]:
        with self._condition:
            if not self._finalizer.alive:
                raise RuntimeError("rrra.Corpus is closed")
            self._users += 1
        try:
            yield self._handle
        finally:
            with self._condition:
                self._users -= 1
                self._condition.notify_all()

    def close(self) -> None:
        """Releases the handle (rrra_corpus_free) once no call is using it, and the array reference."""
        with self._condition:
            self._condition.wait_for(lambda: self._users == 0)
            self._finalizer()

    def __enter__(self) -> "Corpus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<rrra.Corpus{state} rows={self.rows} d={self.dim} dtype={self.dtype} row_stride={self._row_stride}>"


# ---- results -------------------------------------------------------------------------------
class RerankResult(NamedTuple):
    """Scores of one query's k candidates (SPEC §3–§4). Fresh arrays, in input order except `order`."""

    #: (k,) float32: log s_RR = log s_B + λ · log s_A.
    log_s_rr: np.ndarray
    #: (k,) float32: adapter relevance s_A in (0, 1).
    s_a: np.ndarray
    #: (k,) float32: false-negative probability s_FN = p_FN.
    s_fn: np.ndarray
    #: (k, 4) float32: p_TP, p_FN, p_FP, p_TN.
    class_probs: np.ndarray
    #: (k,) int64: candidate positions, best first (stable for equal scores).
    order: np.ndarray


class ResampleResult(NamedTuple):
    """Resampling scores and draws for one query (SPEC §4–§5)."""

    #: (k,) float32: log s_RS = log s_B + γ · log(1 − s_FN); the sampler draws from these values.
    log_s_rs: np.ndarray
    #: (k,) float32: s_FN.
    s_fn: np.ndarray
    #: (count,) int64: drawn candidate positions, best key first.
    samples: np.ndarray
    #: Number of negatives drawn (less than requested when fewer were eligible).
    count: int


def _offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


@dataclass(frozen=True)
class RerankBatchResult:
    """Scores of a ragged batch, flat over all candidates in batch order.

    ``result[i]`` (or ``result.split()``) gives query i's :class:`RerankResult`; its candidates
    are ``offsets[i]:offsets[i + 1]`` of the flat arrays.
    """

    #: (total,) float32.
    log_s_rr: np.ndarray
    #: (total,) float32.
    s_a: np.ndarray
    #: (total,) float32.
    s_fn: np.ndarray
    #: (total, 4) float32.
    class_probs: np.ndarray
    #: (total,) int64: per query, positions 0..k−1 within its own list, best first.
    order: np.ndarray
    #: (n,) int64: candidates per query.
    candidate_counts: np.ndarray
    #: (n + 1,) int64: where each query's candidates start in the flat arrays.
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.candidate_counts)

    def __getitem__(self, i: int) -> RerankResult:
        lo, hi = self._bounds(i)
        return RerankResult(
            self.log_s_rr[lo:hi], self.s_a[lo:hi], self.s_fn[lo:hi], self.class_probs[lo:hi], self.order[lo:hi]
        )

    def __iter__(self) -> Iterator[RerankResult]:
        return (self[i] for i in range(len(self)))

    def split(self) -> List[RerankResult]:
        """One :class:`RerankResult` per query (views of the flat arrays)."""
        return list(self)

    def _bounds(self, i: int) -> Tuple[int, int]:
        i = range(len(self))[i]
        return int(self.offsets[i]), int(self.offsets[i + 1])


@dataclass(frozen=True)
class ResampleBatchResult:
    """Resampling scores and draws of a ragged batch.

    ``result[i]`` (or ``result.split()``) gives query i's :class:`ResampleResult`.
    """

    #: (total,) float32: log s_RS, flat over all candidates.
    log_s_rs: np.ndarray
    #: (total,) float32.
    s_fn: np.ndarray
    #: (n, samples_per_query) int64: drawn positions within each query's list, best key first,
    #: padded with -1 past the query's count.
    samples: np.ndarray
    #: (n,) int64: negatives drawn per query.
    counts: np.ndarray
    #: (n,) int64: candidates per query.
    candidate_counts: np.ndarray
    #: (n + 1,) int64: where each query's candidates start in the flat arrays.
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, i: int) -> ResampleResult:
        i = range(len(self))[i]
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        count = int(self.counts[i])
        return ResampleResult(self.log_s_rs[lo:hi], self.s_fn[lo:hi], self.samples[i, :count], count)

    def __iter__(self) -> Iterator[ResampleResult]:
        return (self[i] for i in range(len(self)))

    def split(self) -> List[ResampleResult]:
        """One :class:`ResampleResult` per query."""
        return list(self)

    def samples_list(self) -> List[np.ndarray]:
        """The drawn positions of each query, without padding."""
        return [self.samples[i, : int(c)] for i, c in enumerate(self.counts)]


# ---- Session -------------------------------------------------------------------------------
def _free_session(handle: Any) -> None:
    _lib.lib.rrra_session_free(handle)


class _Prepared(NamedTuple):
    batch: _lib.rrra_batch
    total: int
    counts: np.ndarray
    keep: tuple  # arrays the batch points into
    corpus: Optional[Corpus]


class Session:
    """Scratch memory and an engine over an :class:`Adapter`.

    Use a session from one thread at a time (a concurrent call raises RuntimeError); give each
    thread its own session over a shared adapter. Calls release the GIL while the library
    computes, so sessions in different threads run in parallel.

    Inputs: query and candidate embeddings may be float32, float16 or bfloat16 (ml_dtypes), each
    in its own type (the library widens them to float32 exactly, so the results are those of the
    same values as float32); they pass without a copy when C-contiguous, or, for candidate rows,
    when row-strided with unit column stride. float64 embeddings and base scores of any float
    type are converted to float32. Outputs are fresh numpy float32/int64 arrays.
    """

    def __init__(
        self, adapter: Adapter, engine: str = "auto", threads: int = 1, cpu_kernel: str = "auto", precision: str = "f32"
    ) -> None:
        """Creates a session (rrra_session_new).

        Args:
            adapter: the model to run.
            engine: ``"auto"`` (the best available), ``"reference"``, ``"folded"`` or ``"cuda"``
                (a library built with the ``cuda`` feature, on a machine with an NVIDIA GPU).
            threads: threads one call may use (the library splits a batch's queries, or one
                list's work, between them; the session starts them once and parks them between
                calls). At most 1024. Results do not depend on it.
            cpu_kernel: the folded engine's instruction set: ``"auto"`` (the best this CPU
                has), ``"portable"``, ``"avx2"`` or ``"avx512"``; for tests and benchmarks.
            precision: ``"f32"``; ``"f16"``: weights and candidates rounded to half, SPEC §6's
                reduced-precision tolerance (the folded engine on a CPU with AVX512-FP16, at twice
                the f32 rate, or the cuda engine; independent of the inputs' dtype, and a value
                beyond ±65504 is an error); ``"bf16"``: the cuda engine only.

        Raises:
            UnsupportedError: a forced engine or CPU kernel is not available here (the message
                says why).
        """
        if not isinstance(adapter, Adapter):
            raise TypeError(f"adapter: expected an rrra.Adapter, got {type(adapter).__name__}")
        options = _lib.new_struct(_lib.rrra_session_options)
        options.engine = _choice("engine", engine, _lib.ENGINES)
        options.cpu_kernel = _choice("cpu_kernel", cpu_kernel, _lib.CPU_KERNELS)
        options.precision = _choice("precision", precision, _lib.PRECISIONS)
        threads = operator.index(threads)
        # The library creates one engine per thread up front; an absurd count exhausts memory
        # (and a failed allocation aborts the process), so the binding bounds it.
        if not 1 <= threads <= _MAX_THREADS:
            raise ValueError(f"threads: must be between 1 and {_MAX_THREADS}, got {threads}")
        options.threads = threads
        handle = POINTER(_lib.rrra_session)()
        with adapter._lock:
            if adapter.closed:
                raise RuntimeError("rrra.Adapter is closed")
            check(_lib.lib.rrra_session_new(adapter._handle, byref(options), byref(handle)))
        self._handle = handle
        self._finalizer = weakref.finalize(self, _free_session, handle)
        self._lock = threading.Lock()
        self._adapter = adapter
        self._dim = adapter.dim
        self._threads = threads
        code = c_uint32()
        reason = c_char_p()
        check(_lib.lib.rrra_session_engine(handle, byref(code), byref(reason)))
        self._engine = _lib.ENGINES[code.value]
        self._engine_reason = (reason.value or b"").decode("utf-8", "replace")
        check(_lib.lib.rrra_session_cpu_kernel(handle, byref(code)))
        self._cpu_kernel = _lib.CPU_KERNELS[code.value]
        check(_lib.lib.rrra_session_precision(handle, byref(code)))
        self._precision = _lib.PRECISIONS[code.value]

    @property
    def adapter(self) -> Adapter:
        """The adapter this session runs."""
        return self._adapter

    @property
    def engine(self) -> str:
        """The engine in use: ``"reference"``, ``"folded"`` or ``"cuda"``."""
        return self._engine

    @property
    def cpu_kernel(self) -> str:
        """The folded engine's instruction set (``"portable"``, ``"avx2"`` or ``"avx512"``);
        ``"auto"`` for an engine without CPU kernels."""
        return self._cpu_kernel

    @property
    def precision(self) -> str:
        """The session's arithmetic: ``"f32"``, ``"f16"`` or ``"bf16"``."""
        return self._precision

    @property
    def threads(self) -> int:
        """Threads one call may use."""
        return self._threads

    @property
    def engine_reason(self) -> str:
        """Why the library chose this engine over the others."""
        return self._engine_reason

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has released the session."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Releases the session (rrra_session_free). Idempotent; waits for a running call."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<rrra.Session{state} engine={self._engine} threads={self._threads} d={self._dim}>"

    @contextmanager
    def _exclusive(self) -> Iterator[Any]:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                "rrra.Session is in use by another thread; give each thread its own Session over a shared Adapter"
            )
        try:
            if not self._finalizer.alive:
                raise RuntimeError("rrra.Session is closed")
            yield self._handle
        finally:
            self._lock.release()

    # -- batch assembly --
    def _prepare(
        self,
        queries: np.ndarray,
        candidates: Candidates,
        counts: np.ndarray,
        base_scores: Optional[npt.ArrayLike],
    ) -> _Prepared:
        n, dim = queries.shape
        if len(counts) != n:
            raise ValueError(f"counts: expected {n} values (one per query), got {len(counts)}")
        total = int(counts.sum(dtype=np.uint64)) if n else 0
        batch = _lib.new_struct(_lib.rrra_batch)
        batch.dim = dim
        batch.n_queries = n
        batch.queries = queries.ctypes.data
        batch.queries_len = queries.size
        batch.queries_dtype = _dtype_code(queries.dtype)
        batch.candidate_counts = _ptr(counts, c_size_t)
        keep: list = [queries, counts]
        corpus = None
        if isinstance(candidates, tuple):
            if len(candidates) != 2 or not isinstance(candidates[1], Corpus):
                raise TypeError("candidates: expected a (rows, d) array or a tuple (ids, rrra.Corpus)")
            ids = _index_array("candidate ids", candidates[0], np.uint64)
            corpus = candidates[1]
            batch.candidate_ids = _ptr(ids, c_uint64)
            batch.candidate_ids_len = ids.size
            keep.append(ids)
        elif isinstance(candidates, Corpus):
            raise TypeError("candidates: pass (ids, corpus) to score corpus rows by id")
        else:
            rows, stride = _rows("candidates", candidates)
            if rows.shape[0] != total:
                raise ValueError(
                    f"candidates: expected {total} rows (the sum of counts), got {rows.shape[0]}"
                )
            if rows.shape[1] != dim:
                raise DimensionMismatchError(
                    f"candidates: rows of {rows.shape[1]} values, but the queries have {dim}",
                    DimensionMismatchError.status,
                )
            batch.candidates = rows.ctypes.data
            batch.candidates_dtype = _dtype_code(rows.dtype)
            batch.candidates_len = _span(total, dim, stride)
            batch.candidate_stride = stride
            keep.append(rows)
        if base_scores is not None:
            base = _contiguous_f32("base_scores", base_scores, 1, "(total,)")
            batch.base_scores = _ptr(base, c_float)
            batch.base_scores_len = base.size
            keep.append(base)
        return _Prepared(batch, total, counts, tuple(keep), corpus)

    @contextmanager
    def _corpus_held(self, prepared: _Prepared) -> Iterator[None]:
        if prepared.corpus is None:
            yield
            return
        with prepared.corpus._in_use() as handle:
            prepared.batch.corpus = handle
            yield

    def _rerank(self, prepared: _Prepared, options: Optional[_lib.rrra_score_options]) -> RerankBatchResult:
        total = prepared.total
        log_s_rr = np.empty(total, np.float32)
        s_a = np.empty(total, np.float32)
        s_fn = np.empty(total, np.float32)
        class_probs = np.empty((total, 4), np.float32)
        order = np.empty(total, np.uint32)
        out = _lib.new_struct(_lib.rrra_rerank_outputs)
        out.log_s_rr, out.log_s_rr_len = _ptr(log_s_rr, c_float), total
        out.s_a, out.s_a_len = _ptr(s_a, c_float), total
        out.s_fn, out.s_fn_len = _ptr(s_fn, c_float), total
        out.class_probs, out.class_probs_len = _ptr(class_probs, c_float), 4 * total
        out.order, out.order_len = _ptr(order, c_uint32), total
        with self._exclusive() as handle, self._corpus_held(prepared):
            # The GIL is released for the duration of this call (ctypes.CDLL).
            check(
                _lib.lib.rrra_session_rerank(
                    handle, byref(prepared.batch), None if options is None else byref(options), byref(out)
                )
            )
        counts = prepared.counts.astype(np.int64)
        return RerankBatchResult(log_s_rr, s_a, s_fn, class_probs, order.astype(np.int64), counts, _offsets(counts))

    def _resample(
        self,
        prepared: _Prepared,
        options: Optional[_lib.rrra_score_options],
        samples_per_query: int,
        seed: int,
        first_query_index: int,
        positive_mask: Optional[npt.ArrayLike],
    ) -> ResampleBatchResult:
        n, total = len(prepared.counts), prepared.total
        m = _count("samples_per_query", samples_per_query)
        request = _lib.new_struct(_lib.rrra_resample_request)
        request.samples_per_query = m
        request.seed = _u64("seed", seed)
        request.first_query_index = _u64("first_query_index", first_query_index)
        mask = None
        if positive_mask is not None:
            mask = _mask_array("positive_mask", positive_mask)
            request.positive_mask = _ptr(mask, c_uint8)
            request.positive_mask_len = mask.size
        log_s_rs = np.empty(total, np.float32)
        s_fn = np.empty(total, np.float32)
        samples = np.empty((n, m), np.uint32)
        counts = np.empty(n, np.uint32)
        out = _lib.new_struct(_lib.rrra_resample_outputs)
        out.log_s_rs, out.log_s_rs_len = _ptr(log_s_rs, c_float), total
        out.s_fn, out.s_fn_len = _ptr(s_fn, c_float), total
        out.samples, out.samples_len = _ptr(samples, c_uint32), n * m
        out.sample_counts, out.sample_counts_len = _ptr(counts, c_uint32), n
        with self._exclusive() as handle, self._corpus_held(prepared):
            # The GIL is released for the duration of this call (ctypes.CDLL).
            check(
                _lib.lib.rrra_session_resample(
                    handle,
                    byref(prepared.batch),
                    None if options is None else byref(options),
                    byref(request),
                    byref(out),
                )
            )
        padded = samples.astype(np.int64)
        padded[samples == _lib.RRRA_NOT_DRAWN] = -1
        candidate_counts = prepared.counts.astype(np.int64)
        return ResampleBatchResult(
            log_s_rs, s_fn, padded, counts.astype(np.int64), candidate_counts, _offsets(candidate_counts)
        )

    def _single(self, query: npt.ArrayLike, candidates: Candidates) -> Tuple[np.ndarray, np.ndarray]:
        q = _contiguous_embeddings("query", query, 1, "(d,)").reshape(1, -1)
        if isinstance(candidates, tuple):
            k = len(_index_array("candidate ids", candidates[0], np.uint64)) if len(candidates) == 2 else 0
        else:
            k = int(np.shape(candidates)[0]) if np.ndim(candidates) >= 1 else 0
        return q, np.array([k], dtype=np.uintp)

    # -- public API --
    def rerank(
        self,
        query: npt.ArrayLike,
        candidates: Candidates,
        base_scores: Optional[npt.ArrayLike] = None,
        *,
        lambda_rr: Optional[float] = None,
        base_transform: Optional[str] = None,
        base_mu: Optional[float] = None,
        base_tau: Optional[float] = None,
    ) -> RerankResult:
        """Reranks one query's candidates (SPEC §3–§4).

        Args:
            query: (d,) embedding.
            candidates: (k, d) rows (float32, float16 or bfloat16, row-strided ones read in place),
                or ``(ids, corpus)`` with k row ids into a :class:`Corpus`. k = 0 is allowed.
            base_scores: (k,) retriever scores; None uses sim(q, c).
            lambda_rr, base_transform, base_mu, base_tau: per-call overrides of the file's settings.

        Returns:
            :class:`RerankResult` with log_s_rr, s_a, s_fn, class_probs (k, 4) and order.

        Raises:
            DimensionMismatchError: d differs from the adapter's.
            NonFiniteInputError: NaN/Inf in the inputs (the message names the position).
            InvalidArgumentError: bad lengths, ids out of range, bad override values.
        """
        q, counts = self._single(query, candidates)
        return self.rerank_batch(
            q,
            candidates,
            counts,
            base_scores,
            lambda_rr=lambda_rr,
            base_transform=base_transform,
            base_mu=base_mu,
            base_tau=base_tau,
        )[0]

    def rerank_batch(
        self,
        queries: npt.ArrayLike,
        candidates: Candidates,
        counts: npt.ArrayLike,
        base_scores: Optional[npt.ArrayLike] = None,
        *,
        lambda_rr: Optional[float] = None,
        base_transform: Optional[str] = None,
        base_mu: Optional[float] = None,
        base_tau: Optional[float] = None,
    ) -> RerankBatchResult:
        """Reranks a ragged batch: query i owns the next ``counts[i]`` candidates.

        Args:
            queries: (n, d) embeddings.
            candidates: (total, d) rows with total = sum(counts), or ``(ids, corpus)`` with total ids.
            counts: (n,) candidates per query; 0 is allowed.
            base_scores: (total,) retriever scores, or None for sim(q, c).
            lambda_rr, base_transform, base_mu, base_tau: per-call overrides of the file's settings.

        Returns:
            :class:`RerankBatchResult`: flat arrays plus ``split()`` / ``result[i]`` per query.
        """
        q = _contiguous_embeddings("queries", queries, 2, "(n, d)")
        k = _index_array("counts", counts, np.uintp)
        options = _score_options(
            lambda_rr=lambda_rr, base_transform=base_transform, base_mu=base_mu, base_tau=base_tau
        )
        return self._rerank(self._prepare(q, candidates, k, base_scores), options)

    def resample(
        self,
        query: npt.ArrayLike,
        candidates: Candidates,
        base_scores: Optional[npt.ArrayLike] = None,
        *,
        samples_per_query: int,
        seed: int = 0,
        query_index: int = 0,
        positive_mask: Optional[npt.ArrayLike] = None,
        gamma_rs: Optional[float] = None,
        base_transform: Optional[str] = None,
        base_mu: Optional[float] = None,
        base_tau: Optional[float] = None,
    ) -> ResampleResult:
        """Scores one query's candidates for resampling and draws hard negatives (SPEC §4–§5).

        Args:
            query: (d,) embedding.
            candidates: (k, d) rows or ``(ids, corpus)``.
            base_scores: (k,) retriever scores, or None for sim(q, c).
            samples_per_query: negatives to draw.
            seed, query_index: the sampler's stream (SPEC §5); the draws are a pure function of
                (seed, query_index, log s_RS, mask).
            positive_mask: (k,) booleans, True = labelled positive, never drawn.
            gamma_rs, base_transform, base_mu, base_tau: per-call overrides.

        Returns:
            :class:`ResampleResult` (log_s_rs, s_fn, samples, count).
        """
        q, counts = self._single(query, candidates)
        return self.resample_batch(
            q,
            candidates,
            counts,
            base_scores,
            samples_per_query=samples_per_query,
            seed=seed,
            first_query_index=query_index,
            positive_mask=positive_mask,
            gamma_rs=gamma_rs,
            base_transform=base_transform,
            base_mu=base_mu,
            base_tau=base_tau,
        )[0]

    def resample_batch(
        self,
        queries: npt.ArrayLike,
        candidates: Candidates,
        counts: npt.ArrayLike,
        base_scores: Optional[npt.ArrayLike] = None,
        *,
        samples_per_query: int,
        seed: int = 0,
        first_query_index: int = 0,
        positive_mask: Optional[npt.ArrayLike] = None,
        gamma_rs: Optional[float] = None,
        base_transform: Optional[str] = None,
        base_mu: Optional[float] = None,
        base_tau: Optional[float] = None,
    ) -> ResampleBatchResult:
        """Resampling scores and negative draws for a ragged batch.

        Query i of the batch uses the sampler stream of query index ``first_query_index + i``,
        so splitting a data set into batches does not change the draws.

        Args:
            queries: (n, d) embeddings.
            candidates: (total, d) rows or ``(ids, corpus)``.
            counts: (n,) candidates per query.
            base_scores: (total,) retriever scores, or None for sim(q, c).
            samples_per_query: negatives to draw per query.
            seed: the sampler's seed (0 ≤ seed < 2**64).
            first_query_index: the sampler's query index of the first query.
            positive_mask: (total,) booleans, True = labelled positive, never drawn.
            gamma_rs, base_transform, base_mu, base_tau: per-call overrides.

        Returns:
            :class:`ResampleBatchResult`: flat log_s_rs / s_fn, samples (n, samples_per_query)
            padded with -1, counts (n,) drawn per query.
        """
        q = _contiguous_embeddings("queries", queries, 2, "(n, d)")
        k = _index_array("counts", counts, np.uintp)
        options = _score_options(
            gamma_rs=gamma_rs, base_transform=base_transform, base_mu=base_mu, base_tau=base_tau
        )
        return self._resample(
            self._prepare(q, candidates, k, base_scores), options, samples_per_query, seed, first_query_index, positive_mask
        )


# ---- the sampler alone ---------------------------------------------------------------------
def sample_negatives(
    log_s_rs: npt.ArrayLike,
    n: int,
    seed: int,
    query_index: int,
    positive_mask: Optional[npt.ArrayLike] = None,
) -> np.ndarray:
    """Draws up to `n` of one query's candidates without replacement, ∝ exp(log_s_rs) (SPEC §5).

    A pure function of its arguments, bit-identical to every other rrra binding. float64 input
    is rounded to float32 first (the library samples from f32 scores).

    Args:
        log_s_rs: (k,) log resampling scores.
        n: negatives to draw.
        seed: 0 ≤ seed < 2**64.
        query_index: 0 ≤ query_index < 2**64: the query's position in the data set.
        positive_mask: (k,) booleans, True = labelled positive, never drawn.

    Returns:
        int64 array of the drawn positions, best key first; shorter than `n` when fewer than
        `n` candidates are eligible.

    Raises:
        NonFiniteInputError: a log_s_rs value is NaN or ±Inf.
        InvalidArgumentError: the mask's length differs from k.
    """
    scores = _contiguous_f32("log_s_rs", log_s_rs, 1, "(k,)")
    n = _count("n", n)
    mask = None if positive_mask is None else _mask_array("positive_mask", positive_mask)
    samples = np.empty(n, np.uint32)
    count = c_size_t()
    check(
        _lib.lib.rrra_sample_negatives(
            _ptr(scores, c_float),
            scores.size,
            _ptr(mask, c_uint8),
            0 if mask is None else mask.size,
            _u64("seed", seed),
            _u64("query_index", query_index),
            _ptr(samples, c_uint32),
            n,
            byref(count),
        )
    )
    return samples[: count.value].astype(np.int64)
