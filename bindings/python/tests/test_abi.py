"""The ctypes declarations mirror include/rrra.h, and the installed package is what it should be.

The header is parsed here (structs, prototypes, enums, #defines) and compared with rrra._lib, so
a header change that the binding does not follow fails this test. Where a C compiler is
available, struct sizes and field offsets are also compared with what the compiler lays out.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import re
import shutil
import subprocess
from ctypes import POINTER
from pathlib import Path

import pytest

import rrra
from rrra import _lib

REPO = Path(__file__).resolve().parents[3]
HEADER = REPO / "include" / "rrra.h"

needs_header = pytest.mark.skipif(not HEADER.is_file(), reason=f"no {HEADER} (not run from a checkout)")

SCALARS = {
    "size_t": ctypes.c_size_t,
    "uint8_t": ctypes.c_uint8,
    "uint32_t": ctypes.c_uint32,
    "int32_t": ctypes.c_int32,
    "uint64_t": ctypes.c_uint64,
    "double": ctypes.c_double,
    "float": ctypes.c_float,
    "rrra_status": ctypes.c_int32,
}


def header_text() -> str:
    text = HEADER.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def ctype_of(c_type: str):
    """A C type as written in the header -> the ctypes type the binding must use."""
    t = " ".join(c_type.replace("*", " * ").split())
    t = t.replace("const ", "").replace("struct ", "")
    stars = t.count("*")
    base = t.replace("*", "").strip()
    if base == "void":
        if stars == 0:
            return None
        result, stars = ctypes.c_void_p, stars - 1
    elif base == "char":
        assert stars >= 1
        result, stars = ctypes.c_char_p, stars - 1
    elif base in SCALARS:
        result = SCALARS[base]
    else:
        result = getattr(_lib, base)  # an opaque handle or struct
    for _ in range(stars):
        result = POINTER(result)
    return result


def header_structs():
    found = {}
    for name, body, alias in re.findall(r"typedef struct (\w+) \{(.*?)\} (\w+);", header_text(), re.S):
        assert name == alias
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            m = re.match(r"(.*?[\s\*])(\w+)$", decl)
            fields.append((m.group(2), m.group(1).strip()))
        found[name] = fields
    return found


def header_functions():
    text = re.sub(r"^\s*#.*$", " ", header_text(), flags=re.M)  # no preprocessor lines
    block = text[text.index('extern "C" {') :]
    found = {}
    for ret, name, params in re.findall(r"([\w\s\*]+?)\s*\b(rrra_\w+)\(([^)]*)\);", block, re.S):
        args = []
        params = " ".join(params.split())
        if params and params != "void":
            for p in params.split(","):
                m = re.match(r"(.*?[\s\*])(\w+)$", p.strip())
                args.append(m.group(1).strip())
        found[name] = (" ".join(ret.split()), args)
    return found


@needs_header
def test_structs_match_header():
    structs = header_structs()
    assert set(structs) == {"rrra_model_info", "rrra_session_options", "rrra_batch", "rrra_score_options",
                            "rrra_rerank_outputs", "rrra_resample_request", "rrra_resample_outputs"}
    for name, fields in structs.items():
        declared = getattr(_lib, name)._fields_
        assert [f[0] for f in declared] == [f[0] for f in fields], name
        for (field, c_type), (_, ctype) in zip(fields, declared):
            assert ctype is ctype_of(c_type), f"{name}.{field}: header {c_type}, binding {ctype}"
        assert fields[0][0] == "struct_size"


@needs_header
def test_functions_match_header():
    functions = header_functions()
    declared = {name: (restype, argtypes) for name, restype, argtypes in _lib.FUNCTIONS}
    assert set(functions) == set(declared)
    for name, (ret, args) in functions.items():
        restype, argtypes = declared[name]
        assert restype is ctype_of(ret), f"{name}: returns {ret}, binding {restype}"
        assert len(argtypes) == len(args), name
        for i, (c_type, ctype) in enumerate(zip(args, argtypes)):
            assert ctype is ctype_of(c_type), f"{name} argument {i}: header {c_type}, binding {ctype}"
        # And the loaded library uses exactly these.
        assert getattr(_lib.lib, name).argtypes == argtypes


@needs_header
def test_constants_match_header():
    text = header_text()
    defines = dict(re.findall(r"#define (RRRA_\w+) (\S+)", text))
    assert defines["RRRA_VERSION_STRING"].strip('"') == _lib.HEADER_VERSION
    assert defines["RRRA_NOT_DRAWN"] == "UINT32_MAX" and _lib.RRRA_NOT_DRAWN == 2**32 - 1
    assert int(defines["RRRA_MAX_THREADS"]) == _lib.RRRA_MAX_THREADS
    for key, value in defines.items():
        if key.startswith("RRRA_OVERRIDE_"):
            assert getattr(_lib, key) == int(value), key
    enums = dict((k, int(v)) for k, v in re.findall(r"\b(RRRA_\w+) = (-?\d+)", text))
    for key, value in enums.items():
        if key.startswith(("RRRA_STATUS_", "RRRA_DTYPE_")):
            assert getattr(_lib, key) == value, key
        if key.startswith("RRRA_STATUS_"):
            assert _lib.status_name(value) == key
    for prefix, names in [("RRRA_ACTIVATION_", _lib.ACTIVATIONS), ("RRRA_SIMILARITY_", _lib.SIMILARITIES),
                          ("RRRA_BASE_TRANSFORM_", _lib.BASE_TRANSFORMS), ("RRRA_ENGINE_", _lib.ENGINES)]:
        values = {k[len(prefix):].lower(): v for k, v in enums.items() if k.startswith(prefix)}
        assert values == {name: i for i, name in enumerate(names)}, prefix


@needs_header
@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler (cc) to compare struct layouts with")
def test_struct_layout_matches_c_compiler(tmp_path):
    structs = header_structs()
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "rrra.h"', "int main(void) {"]
    for name, fields in structs.items():
        lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
        for field, _ in fields:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c99", f"-I{HEADER.parent}", str(src), "-o", str(exe)], check=True)
    out = dict(line.rsplit(" ", 1) for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                  text=True).stdout.splitlines())
    for name, fields in structs.items():
        cls = getattr(_lib, name)
        assert int(out[name]) == ctypes.sizeof(cls), name
        for field, _ in fields:
            assert int(out[f"{name}.{field}"]) == getattr(cls, field).offset, f"{name}.{field}"


def test_version():
    assert rrra.__version__ == _lib.version()
    assert rrra.__version__.split(".")[:2] == _lib.HEADER_VERSION.split(".")[:2]
    cargo = REPO / "Cargo.toml"
    if cargo.is_file():
        m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo.read_text(), re.M | re.S)
        assert m and m.group(1) == rrra.__version__


def test_installed_package_ships_the_library():
    if os.environ.get("RRRA_LIBRARY"):
        pytest.skip("RRRA_LIBRARY overrides the packaged library")
    path = Path(rrra.library_path)
    assert path.parent == Path(rrra.__file__).resolve().parent, "the library should be inside the package"
    try:
        dist = importlib.metadata.distribution("rrra")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rrra is not installed as a distribution (running from source)")
    assert dist.version == rrra.__version__
    wheel = dist.read_text("WHEEL") or ""
    tags = re.findall(r"^Tag: (\S+)", wheel, re.M)
    assert tags and all(not t.endswith("-any") for t in tags), wheel
    assert "Root-Is-Purelib: false" in wheel
    files = [str(f) for f in dist.files or []]
    assert any(f.endswith(_lib.LIBRARY_FILE) for f in files), files
