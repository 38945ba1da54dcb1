"""Build script of the `rrra` Python package.

The package is pure Python (ctypes) plus one native file, the rrra shared library built from the
Rust crate two directories up. `build_py` runs

    cargo build --release --lib --manifest-path <crate>/Cargo.toml

and copies `<target dir>/release/librrra.so` into the package; `bdist_wheel` tags the wheel for
this platform (`py3-none-<platform>`: the library has no Python ABI, but it is native code).

Environment:
    RRRA_CRATE_DIR          the crate to build (default: ../.. from this file)
    RRRA_PREBUILT_LIBRARY   ship this shared library instead of running cargo
    CARGO                   the cargo executable (default: `cargo` on PATH)
    CARGO_TARGET_DIR        honoured, as cargo itself does (asked from `cargo metadata`)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

if sys.platform == "darwin":
    LIBRARY_FILE = "librrra.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "rrra.dll"
else:
    LIBRARY_FILE = "librrra.so"


def crate_dir() -> Path:
    """The Rust crate whose library the package ships."""
    root = Path(os.environ.get("RRRA_CRATE_DIR") or HERE.parent.parent).resolve()
    if not (root / "Cargo.toml").is_file():
        raise SystemExit(
            f"rrra: no Cargo.toml in {root}. Build the package from a checkout of the rrra repository "
            "(pip install ./bindings/python), or set RRRA_CRATE_DIR to the crate, or "
            "RRRA_PREBUILT_LIBRARY to an already built librrra."
        )
    return root


def crate_version() -> str:
    """`version` of the crate's [package] table: the package and the library share it."""
    pkg_info = HERE / "PKG-INFO"  # building from an sdist, which remembers its version
    if pkg_info.is_file() and not (HERE.parent.parent / "Cargo.toml").is_file():
        found = re.search(r"^Version:\s*(\S+)", pkg_info.read_text(encoding="utf-8"), re.M)
        if found:
            return found.group(1)
    text = (crate_dir() / "Cargo.toml").read_text(encoding="utf-8")
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.S | re.M)
    found = package and re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), re.M)
    if not found:
        raise SystemExit("rrra: cannot find [package] version in Cargo.toml")
    return found.group(1)


def cargo() -> str:
    exe = os.environ.get("CARGO") or shutil.which("cargo")
    if not exe:
        raise SystemExit(
            "rrra: cargo was not found on PATH. Install Rust (https://rustup.rs), set CARGO, "
            "or set RRRA_PREBUILT_LIBRARY to an already built librrra."
        )
    return exe


def build_library() -> Path:
    """Builds the release shared library and returns its path."""
    prebuilt = os.environ.get("RRRA_PREBUILT_LIBRARY")
    if prebuilt:
        path = Path(prebuilt).resolve()
        if not path.is_file():
            raise SystemExit(f"rrra: RRRA_PREBUILT_LIBRARY={prebuilt} is not a file")
        return path
    root = crate_dir()
    manifest = str(root / "Cargo.toml")
    command = [cargo(), "build", "--release", "--lib", "--manifest-path", manifest]
    print("rrra: " + " ".join(command), flush=True)
    subprocess.run(command, cwd=root, check=True)
    # The target directory as cargo sees it: CARGO_TARGET_DIR, .cargo/config.toml or <crate>/target.
    metadata = subprocess.run(
        [cargo(), "metadata", "--format-version", "1", "--no-deps", "--manifest-path", manifest],
        cwd=root,
        check=True,
        stdout=subprocess.PIPE,
    )
    target = Path(json.loads(metadata.stdout)["target_directory"])
    built = target / "release" / LIBRARY_FILE
    if not built.is_file():
        raise SystemExit(f"rrra: cargo finished but {built} does not exist")
    return built


class BuildPyWithLibrary(build_py):
    """build_py, plus the Rust library copied into the package."""

    def run(self) -> None:
        # setuptools builds in place (bindings/python/build/): drop files of earlier builds so a
        # removed or renamed module is not shipped.
        if not self.dry_run:
            shutil.rmtree(Path(self.build_lib) / "rrra", ignore_errors=True)
        super().run()
        if self.dry_run:
            return
        source = build_library()
        destination = Path(self.build_lib) / "rrra" / LIBRARY_FILE
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        os.chmod(destination, 0o755)
        print(f"rrra: copied {source} -> {destination}", flush=True)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return list(super().get_outputs(include_bytecode)) + [str(Path(self.build_lib) / "rrra" / LIBRARY_FILE)]


class BinaryDistribution(Distribution):
    """The package carries a native library: install it as platform-specific (platlib)."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """Tags the wheel py3-none-<platform>: it carries native code but no Python extension module."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    version=crate_version(),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
)
