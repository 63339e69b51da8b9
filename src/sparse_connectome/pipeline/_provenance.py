"""Provenance of a run: what went in (files with SHA-256), with which software.

Pure helpers shared by the single-subject job and the cohort: JSON-able
descriptions of inputs, the versions of the package and its dependencies, and
the conversion of NumPy values for ``json``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._utils.hashing import file_sha256

__all__ = ["DEPENDENCIES", "count_edges", "describe_input", "jsonable", "software_versions",
           "t_r_from_header"]

#: Runtime dependencies whose versions every sidecar records.
DEPENDENCIES = ("numpy", "scipy", "nibabel", "pandas", "matplotlib", "numba", "plotly", "joblib")


def describe_input(value: Any) -> Any:
    """A JSON-able description of an input: path, SHA-256 and size for files.

    Examples
    --------
    >>> describe_input(None) is None
    True
    >>> import numpy as np
    >>> describe_input(np.zeros((2, 3)))["array_shape"]
    [2, 3]
    """
    if isinstance(value, str | os.PathLike) and Path(value).is_file():
        path = Path(value).resolve()
        return {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
    if isinstance(value, list | tuple):
        return [describe_input(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array_shape": list(value.shape), "sha256": hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, pd.DataFrame):
        return {"dataframe_columns": [str(c) for c in value.columns], "rows": len(value)}
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return repr(value)


def software_versions() -> dict[str, str]:
    """Versions of Python, of this package and of its runtime dependencies.

    Examples
    --------
    >>> sorted(software_versions())[:3]
    ['joblib', 'matplotlib', 'nibabel']
    """
    # Reading package metadata costs tens of ms; a cohort's tasks ask once per run.
    return dict(_software_versions())


@functools.lru_cache(maxsize=1)
def _software_versions() -> dict[str, str]:
    versions = {"sparse_connectome": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            versions[name] = "not installed"
    return versions


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays, paths and non-finite floats made JSON-safe.

    Non-finite floats become ``None`` (JSON has no NaN).

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.arange(2), "b": np.float64("nan"), "c": np.bool_(True)})
    {'a': [0, 1], 'b': None, 'c': True}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def t_r_from_header(img: Any) -> float | None:
    """Repetition time in seconds from a 4D image's header, or None when it holds none.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> img = nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4))
    >>> img.header.set_zooms((1, 1, 1, 2500)); img.header.set_xyzt_units("mm", "msec")
    >>> t_r_from_header(img)
    2.5
    """
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    t_r = float(zooms[3])
    _, time_unit = img.header.get_xyzt_units()
    if time_unit == "msec":
        t_r /= 1000.0
    elif time_unit == "usec":
        t_r /= 1e6
    return t_r


def count_edges(precision: np.ndarray) -> int:
    """Number of non-zero off-diagonal entries (edges) of a symmetric matrix.

    Examples
    --------
    >>> import numpy as np
    >>> count_edges(np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    1
    """
    upper = np.triu_indices_from(precision, k=1)
    return int(np.count_nonzero(precision[upper]))
