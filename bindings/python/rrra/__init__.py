"""rrra: the RRRA retriever adapter (arXiv 2508.11670) for Python, over the library's C ABI.

Rerank a retriever's candidates with a small learned adapter, and resample hard negatives for
training while suppressing false negatives::

    import numpy as np, rrra

    with rrra.Adapter.load("adapter.safetensors") as adapter, rrra.Session(adapter) as session:
        result = session.rerank(query, candidates)          # query (d,), candidates (k, d)
        best_first = result.order

Submodules: :mod:`rrra.io` (write/read adapter files with numpy), :mod:`rrra.mining` (hard-negative
mining for sentence-transformers-style data) and :mod:`rrra.torch` (the reference PyTorch module,
losses and export; imported only on request, needs torch).

Embeddings may be float32, float16 or bfloat16 (ml_dtypes); the library reads each in place, in its
own type, and widens it to float32 exactly. float64 is converted to float32. Calls release the
GIL; use one :class:`Session` per thread over a shared :class:`Adapter`.
"""

from . import _lib
from ._core import (
    Adapter,
    Corpus,
    RerankBatchResult,
    RerankResult,
    ResampleBatchResult,
    ResampleResult,
    Session,
    sample_negatives,
)
from ._errors import (
    DimensionMismatchError,
    InternalError,
    InvalidArgumentError,
    InvalidModelError,
    IoError,
    NonFiniteInputError,
    NullPointerError,
    NumericError,
    RrraError,
    UnsupportedError,
)

#: The library's version (rrra_version()); checked at import against the header this binding mirrors.
__version__: str = _lib.check_version()

#: Path of the shared library in use (RRRA_LIBRARY overrides the packaged one).
library_path: str = str(_lib.library_path)

#: Activation names, in rrra_activation order.
ACTIVATIONS = _lib.ACTIVATIONS
#: Similarity names, in rrra_similarity order.
SIMILARITIES = _lib.SIMILARITIES
#: Base-transform names, in rrra_base_transform order.
BASE_TRANSFORMS = _lib.BASE_TRANSFORMS
#: Engine names accepted by Session (rrra_engine order).
ENGINES = _lib.ENGINES

__all__ = [
    "Adapter",
    "Corpus",
    "Session",
    "RerankResult",
    "RerankBatchResult",
    "ResampleResult",
    "ResampleBatchResult",
    "sample_negatives",
    "RrraError",
    "NullPointerError",
    "InvalidArgumentError",
    "DimensionMismatchError",
    "NonFiniteInputError",
    "InvalidModelError",
    "IoError",
    "NumericError",
    "UnsupportedError",
    "InternalError",
    "ACTIVATIONS",
    "SIMILARITIES",
    "BASE_TRANSFORMS",
    "ENGINES",
    "library_path",
    "__version__",
]
