"""Input handling of :func:`sparse_connectome.signal.clean`: signals, confounds
(arrays, DataFrames, CSV/TSV files, lists of those) and sample masks.

Everything here validates at the boundary and raises the package's errors
(:class:`ConfoundsError`, :class:`ShapeMismatchError`, :class:`InputError`).
"""

from __future__ import annotations

import csv
import io
import numbers
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .._utils.text_inputs import check_text_size
from ..errors import ConfoundsError, InputError, ShapeMismatchError

__all__ = ["ConfoundsLike", "as_signals", "load_confounds_matrix", "sanitize_sample_mask"]

if TYPE_CHECKING:
    import pandas as pd

ConfoundsLike = Union[np.ndarray, "pd.DataFrame", str, os.PathLike, Sequence[Any], None]  # noqa: UP007 (a runtime alias)

def _output_dtype(dtype: np.dtype) -> np.dtype:
    """Dtype of the cleaned signals, as nilearn chooses it.

    Floating input keeps its dtype; integers and booleans of 4 bytes or fewer
    become float32, wider integers float64.
    """
    if np.issubdtype(dtype, np.floating):
        return dtype
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    return np.dtype(np.float64)


def as_signals(signals: Any, ensure_finite: bool) -> tuple[np.ndarray, np.dtype, bool]:
    arr = signals.to_numpy() if _pandas_type(signals, "DataFrame") else np.asarray(signals)
    if np.iscomplexobj(arr):
        raise InputError(f"signals must be real-valued; got dtype {arr.dtype}.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"signals must be a numeric array (n_samples, n_features); got dtype {arr.dtype}."
            ) from exc
    was_1d = arr.ndim == 1
    if was_1d:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(
            f"signals must be a 2D array (n_samples, n_features); got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise InputError("signals have no sample (0 rows); expected at least one time point.")
    out_dtype = _output_dtype(arr.dtype)
    x = np.array(arr, dtype=np.float64, copy=True)
    if ensure_finite:
        x[~np.isfinite(x)] = 0.0
    return x, out_dtype, was_1d


#: Cells read as missing (NaN), compared in lower case after stripping: BIDS's
#: "n/a" and the other usual spellings of a missing value.
_MISSING_CELLS = ("", "n/a", "na", "nan", "null", "none", "#n/a", "<na>")


def _pandas_type(obj: Any, name: str) -> bool:
    """Whether ``obj`` is a ``pandas.<name>``, without importing pandas.

    pandas takes ~0.17 s to import. An object can only be a DataFrame if the
    caller's process has already imported pandas, so other inputs never pay it.
    """
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, getattr(pd, name))


def _sniff_separator(first: str) -> str | None:
    """The field separator of a table from its first line; None for runs of blanks."""
    for sep in ("\t", ",", ";"):
        if sep in first:
            return sep
    return None


def _table_rows(text: str, sep: str | None) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a text table, each with its line number (from 1).

    Only blank lines are skipped: a line of separators is a row of missing values (it
    still counts as a time point, so the rows stay aligned with the volumes).
    """
    if sep is None:
        rows = [(k, line.split()) for k, line in enumerate(text.splitlines(), start=1)]
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)  # quoted fields
        rows = [(reader.line_num, row) for row in reader]
    return [(k, row) for k, row in rows if len(row) > 1 or (row and row[0].strip())]


def _is_number_cell(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip().lower() in _MISSING_CELLS
    return True


def read_confounds_file(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a CSV/TSV/space-separated confounds file with an optional header row.

    The separator is the first of tab, comma and semicolon found in the first
    non-blank line (runs of blanks otherwise). That line is a header if one of
    its cells is neither a number nor missing. Missing cells ("n/a", "NaN",
    empty, ...) read as NaN, which :func:`load_confounds_matrix` then reports.
    """
    label = f"confounds file {str(path)!r}"
    if not path.is_file():
        raise ConfoundsError(f"{label} does not exist or is not a file.")
    check_text_size(path, "confounds", "confounds file", ConfoundsError)
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) would otherwise stick to the
        # first cell and turn a table of numbers into one with a header.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
        first = next((line for line in text.splitlines() if line.strip()), "")
        rows = _table_rows(text, _sniff_separator(first)) if first else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfoundsError(f"{label} cannot be read: {exc}") from exc
    if not rows:
        raise ConfoundsError(f"{label} is empty; expected a table of numbers.")
    width = len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise ConfoundsError(f"{label} cannot be parsed: line {line} has {len(row)} fields; "
                                 f"expected {width}, as in its first row.")
    has_header = not all(_is_number_cell(cell) for cell in rows[0][1])
    names = ([cell.strip().strip('"') for cell in rows[0][1]] if has_header
             else [str(j) for j in range(width)])
    body = [row for _, row in rows[1:]] if has_header else [row for _, row in rows]
    if not body:
        return np.empty((0, width)), names
    cells = np.array(body, dtype=str)
    # np.where widens the strings: assigning "nan" in place would be cut to the width of
    # the longest cell ("n" in a table of one-character cells).
    cells = np.where(np.isin(np.char.lower(np.char.strip(cells)), _MISSING_CELLS), "nan", cells)
    try:
        return cells.astype(np.float64), names
    except ValueError:
        bad = [names[j] for j in range(width)
               if not all(_is_number_cell(cell) for cell in cells[:, j])]
        raise ConfoundsError(f"{label} has non-numeric column(s) {bad}; "
                             "expected numbers only.") from None


def _frame_values(frame: Any, what: str) -> np.ndarray:
    """The table as float64, or a ConfoundsError naming its non-numeric columns."""
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        from pandas.api.types import is_numeric_dtype

        bad = [str(c) for c in frame.columns if not is_numeric_dtype(frame[c])]
        raise ConfoundsError(
            f"{what} has non-numeric column(s) {bad}; expected numbers only."
        ) from exc


def _one_confounds(item: Any, label: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(item, (str, os.PathLike)):
        values, names = read_confounds_file(Path(item))
        return values, [f"{label}{n}" for n in names]
    if _pandas_type(item, "Series"):
        item = item.to_frame()
    if _pandas_type(item, "DataFrame"):
        values = _frame_values(item, "confounds DataFrame")
        return values, [f"{label}{c}" for c in item.columns]
    arr = np.asarray(item)
    if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfoundsError(
                f"confounds must be numeric (array, DataFrame or file path); got dtype {arr.dtype}."
            ) from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfoundsError(
            f"confounds must be 1D or 2D (n_samples[, n_confounds]); got shape {arr.shape}."
        )
    return np.asarray(arr, dtype=np.float64), [f"{label}{i}" for i in range(arr.shape[1])]


def format_nonfinite(values: np.ndarray, names: list[str], max_items: int = 8) -> str:
    bad = ~np.isfinite(values)
    parts = []
    cols = np.flatnonzero(bad.any(axis=0))
    for j in cols[:max_items]:
        rows = np.flatnonzero(bad[:, j])
        shown = ", ".join(str(r) for r in rows[:max_items])
        more = f", ... ({rows.size} rows)" if rows.size > max_items else ""
        parts.append(f"{names[j]!r} (rows {shown}{more})")
    if cols.size > max_items:
        parts.append(f"... ({cols.size} columns in all)")
    return "; ".join(parts)


def load_confounds_matrix(
    confounds: ConfoundsLike, n_samples: int | None = None
) -> tuple[np.ndarray | None, list[str]]:
    """Turn any accepted confounds input into a finite float64 matrix.

    Parameters
    ----------
    confounds : ndarray (1D or 2D), DataFrame, path to a CSV/TSV file (header
        row optional), or a list of those (stacked column-wise); or None.
    n_samples : int, optional
        Expected number of rows (the signal length).

    Returns
    -------
    matrix : ndarray (n_samples, n_confounds) or None
    names : list of str, one label per column (used in error messages).

    Raises
    ------
    ConfoundsError
        Unreadable file, non-numeric values, NaN or Inf (the message names the
        columns and rows).
    ShapeMismatchError
        The row count differs from ``n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sparse_connectome.signal import load_confounds_matrix
    >>> matrix, names = load_confounds_matrix(pd.DataFrame({"a": [1, 2, 3], "b": [0, 1, 0]}))
    >>> matrix.dtype, matrix.shape, names
    (dtype('float64'), (3, 2), ['a', 'b'])
    >>> # A list is stacked column-wise; a flat list of numbers is one confound.
    >>> matrix, names = load_confounds_matrix([np.ones((3, 2)), [1.0, 2.0, 3.0]], n_samples=3)
    >>> matrix.shape
    (3, 3)
    >>> load_confounds_matrix(None)
    (None, [])
    """
    if confounds is None:
        return None, []
    if isinstance(confounds, (list, tuple)):
        if len(confounds) == 0:
            return None, []
        # A flat list of numbers is one confound, not a list of confounds.
        if all(isinstance(c, numbers.Number) for c in confounds):
            items = [(np.asarray(confounds, dtype=np.float64), "")]
        else:
            items = [(c, f"confounds[{i}]:") for i, c in enumerate(confounds)]
    else:
        items = [(confounds, "")]
    blocks, names, sources = [], [], []
    for item, label in items:
        values, item_names = _one_confounds(item, label)
        # Name the file in messages: "confounds (file '...')".
        source = f"file {str(item)!r}" if isinstance(item, (str, os.PathLike)) else ""
        sources.append(source)
        if n_samples is not None and values.shape[0] != n_samples:
            where = ", ".join(w for w in (label.rstrip(":"), source) if w)
            where = f" ({where})" if where else ""
            raise ShapeMismatchError(
                f"confounds{where} have {values.shape[0]} rows but the signals have "
                f"{n_samples} time points; expected one row per time point."
            )
        blocks.append(values)
        names.extend(item_names)
    lengths = {b.shape[0] for b in blocks}
    if len(lengths) > 1:
        raise ShapeMismatchError(
            f"the confounds in the list have different row counts {sorted(lengths)}; "
            "expected one row per time point in each."
        )
    matrix = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    if not np.all(np.isfinite(matrix)):
        bad = [src for src, block in zip(sources, blocks) if src and not np.isfinite(block).all()]
        where = f" ({', '.join(bad)})" if bad else ""
        raise ConfoundsError(
            f"confounds{where} contain NaN or Inf values in column(s) "
            f"{format_nonfinite(matrix, names)}. Regression needs finite confounds. "
            "Raw fMRIPrep confounds files hold 'n/a' in the first row of derivative and "
            "framewise-displacement columns: read them with "
            "sparse_connectome.confounds.load_confounds (or load_confounds_strategy), "
            "which selects the columns and fills these values."
        )
    return matrix, names


def sanitize_sample_mask(sample_mask: Any, n_samples: int, what: str = "sample_mask") -> np.ndarray:
    """Sorted unique int indices of the kept volumes."""
    mask = np.asarray(sample_mask)
    if mask.ndim != 1:
        mask = mask.ravel() if mask.size == max(mask.shape, default=0) else mask
    if mask.ndim != 1:
        raise InputError(f"{what} must be 1D (indices or booleans); got shape {mask.shape}.")
    if mask.dtype == np.bool_:
        if mask.size != n_samples:
            raise ShapeMismatchError(
                f"{what} is a boolean mask of length {mask.size} but the signals have "
                f"{n_samples} time points; expected the same length."
            )
        kept = np.flatnonzero(mask)
    else:
        if mask.size and not np.issubdtype(mask.dtype, np.integer):
            if np.issubdtype(mask.dtype, np.floating) and np.all(mask == np.round(mask)):
                mask = mask.astype(np.int64)
            else:
                raise InputError(
                    f"{what} must hold integer indices or booleans; got dtype {mask.dtype}."
                )
        kept = np.unique(mask.astype(np.int64))
        if kept.size and (kept[0] < 0 or kept[-1] >= n_samples):
            bad = kept[(kept < 0) | (kept >= n_samples)]
            raise InputError(
                f"{what} holds index(es) {bad[:8].tolist()} outside of [0, {n_samples - 1}]; "
                f"the signals have {n_samples} time points."
            )
    if kept.size == 0:
        raise InputError(f"{what} removes every volume; expected at least one kept volume.")
    return kept
