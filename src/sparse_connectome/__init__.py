"""sparse-connectome: functional connectomes from fMRI with exact sparse inverse covariance.

Submodules are imported lazily so that ``import sparse_connectome`` stays fast
(numba and matplotlib are only loaded by the parts that need them).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "errors", "datasets", "simulate", "image", "signal", "confounds", "maskers",
    "covariance", "connectome", "plotting", "report", "pipeline",
}

__all__ = sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
