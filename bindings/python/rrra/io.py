"""Adapter files (SPEC §2) with numpy alone: a hand-written safetensors writer and reader.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (padded with
spaces to a multiple of 8), then the tensors' bytes, little-endian, row-major. The JSON maps each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the start
of the data) and ``__metadata__`` to a map of strings.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Tuple, Union

import numpy as np
import numpy.typing as npt

__all__ = ["TENSOR_NAMES", "adapter_bytes", "save_adapter", "read_safetensors", "write_safetensors"]

#: Tensor names of an adapter file, the state_dict() names of the reference module.
TENSOR_NAMES = (
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "classifier.weight",
    "classifier.bias",
)

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64"}
_READ_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}

PathLike = Union[str, "os.PathLike[str]"]


def _as_le_float(name: str, value: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array, got dtype {arr.dtype}")
    # SPEC §2 allows F32, F16 and BF16: float16 stays F16, everything else becomes F32.
    return np.ascontiguousarray(arr, dtype="<f2" if arr.dtype.itemsize == 2 else "<f4")


def write_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serializes `tensors` (little-endian float arrays) and string `metadata` as safetensors bytes.

    Tensors are laid out in the mapping's order; the JSON header is padded with spaces to a
    multiple of 8 bytes, as the reference implementation does.
    """
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        little = arr.dtype.newbyteorder("<")
        dtype = _DTYPES.get(little)
        if dtype is None:
            raise TypeError(f"{name}: cannot store dtype {arr.dtype} (F32, F16 or F64)")
        data = np.ascontiguousarray(arr, dtype=little).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _check_shapes(tensors: Mapping[str, np.ndarray]) -> Tuple[int, int]:
    fc2 = tensors["fc2.weight"]
    if fc2.ndim != 2:
        raise ValueError(f"fc2_weight: expected shape (d, h), got {fc2.shape}")
    d, h = fc2.shape
    want = {
        "fc1.weight": (h, 3 * d),
        "fc1.bias": (h,),
        "fc2.weight": (d, h),
        "fc2.bias": (d,),
        "classifier.weight": (4, h),
        "classifier.bias": (4,),
    }
    for name, shape in want.items():
        if tensors[name].shape != shape:
            raise ValueError(
                f"{name.replace('.', '_')}: expected shape {shape} (d = {d}, h = {h} from fc2_weight), "
                f"got {tensors[name].shape}"
            )
    return d, h


def adapter_bytes(
    fc1_weight: npt.ArrayLike,
    fc1_bias: npt.ArrayLike,
    fc2_weight: npt.ArrayLike,
    fc2_bias: npt.ArrayLike,
    classifier_weight: npt.ArrayLike,
    classifier_bias: npt.ArrayLike,
    **metadata: object,
) -> bytes:
    """An adapter file's bytes (see :func:`save_adapter`); load them with ``rrra.Adapter.from_bytes``."""
    values = (fc1_weight, fc1_bias, fc2_weight, fc2_bias, classifier_weight, classifier_bias)
    tensors = {
        name: _as_le_float(name.replace(".", "_"), value) for name, value in zip(TENSOR_NAMES, values)
    }
    _check_shapes(tensors)
    for key in ("format", "format_version"):
        if key in metadata:
            raise ValueError(f"metadata '{key}' is written by save_adapter itself")
    meta = {"format": "rrra-adapter", "format_version": "1"}
    for key, value in metadata.items():
        meta[key] = repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)
    return write_safetensors(tensors, meta)


def save_adapter(
    path: PathLike,
    fc1_weight: npt.ArrayLike,
    fc1_bias: npt.ArrayLike,
    fc2_weight: npt.ArrayLike,
    fc2_bias: npt.ArrayLike,
    classifier_weight: npt.ArrayLike,
    classifier_bias: npt.ArrayLike,
    **metadata: object,
) -> None:
    """Writes an adapter file (SPEC §2) with numpy alone.

    Args:
        path: where to write the ``.safetensors`` file.
        fc1_weight: (h, 3d), input columns ordered [q − c | q ⊙ c | q + c].
        fc1_bias: (h,).
        fc2_weight: (d, h).
        fc2_bias: (d,).
        classifier_weight: (4, h), class order TP, FN, FP, TN.
        classifier_bias: (4,).
        **metadata: SPEC §2 keys (activation, similarity, adapter_mu, adapter_tau, base_transform,
            base_mu, base_tau, lambda_rr, gamma_rs, encoder) and free-form ``x-...`` keys (pass
            those as ``**{"x-note": "..."}``). Values are written as strings; ``format`` and
            ``format_version`` are added.

    float16 arrays are stored as F16, every other float array as F32. The library validates the
    metadata when the file is loaded.
    """
    data = adapter_bytes(
        fc1_weight, fc1_bias, fc2_weight, fc2_bias, classifier_weight, classifier_bias, **metadata
    )
    with open(path, "wb") as f:
        f.write(data)


def read_safetensors(source: Union[PathLike, bytes, bytearray, memoryview]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Reads a safetensors file (a path or its bytes) into float arrays and its metadata.

    F32, F16 and F64 tensors keep their dtype; BF16 is widened to float32. A malformed file
    raises ValueError. (This is a convenience for inspection and tests; the library's own loader
    is the one that validates adapter files.)
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        with open(source, "rb") as f:
            data = f.read()
    if len(data) < 8:
        raise ValueError("safetensors: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"safetensors: header claims {n} bytes, the file has {len(data) - 8} after the length")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    body = memoryview(data)[8 + n :]
    metadata = {str(k): str(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    tensors = {}
    for name, spec in header.items():
        begin, end = spec["data_offsets"]
        if not 0 <= begin <= end <= len(body):
            raise ValueError(f"safetensors: tensor '{name}' lies outside the file")
        shape = tuple(spec["shape"])
        raw = body[begin:end]
        if spec["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif spec["dtype"] in _READ_DTYPES:
            arr = np.frombuffer(raw, dtype=_READ_DTYPES[spec["dtype"]]).copy()
        else:
            raise ValueError(f"safetensors: tensor '{name}' has unsupported dtype {spec['dtype']}")
        tensors[name] = arr.reshape(shape)
    return tensors, metadata
