"""Facts of the MSDL atlas: region centres, names and networks.

The distributed ``msdl_rois_labels.csv`` pads some names with spaces (e.g.
``" Sup Front S"``); :func:`read_msdl_labels_csv` strips them, so the bundled copy
and a freshly downloaded file read the same.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np

from .._utils.bunch import Bunch
from .._utils.text_inputs import check_text_size
from ..errors import AtlasError

__all__ = ["read_msdl_labels_csv", "msdl_facts", "MSDL_N_REGIONS"]

MSDL_N_REGIONS = 39
_COLUMNS = ("x", "y", "z", "name", "net name")


def read_msdl_labels_csv(path: str | os.PathLike) -> Bunch:
    """Read an MSDL labels CSV (columns ``x,y,z,name,net name``).

    Parameters
    ----------
    path : path-like
        The CSV file, as distributed in ``MSDL_rois.zip`` or as bundled.

    Returns
    -------
    Bunch
        ``labels`` (list of str, stripped), ``networks`` (list of str, stripped)
        and ``region_coords`` (ndarray of shape (n_regions, 3), float, MNI mm).

    Raises
    ------
    AtlasError
        If the file cannot be read, lacks a column, has a non-numeric coordinate
        or holds no region.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets._msdl import read_msdl_labels_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("x,y,z,name,net name\\n-53.3,-49.5,1.8, L Aud ,Aud\\n")
    >>> facts = read_msdl_labels_csv(path)
    >>> facts.labels, facts.networks, facts.region_coords.tolist()
    (['L Aud'], ['Aud'], [[-53.3, -49.5, 1.8]])
    """
    path = Path(path)
    check_text_size(path, "labels", "MSDL labels file", AtlasError)
    try:
        # utf-8-sig: tolerate a byte-order mark written by spreadsheet tools.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AtlasError(f"MSDL labels file {str(path)!r} cannot be read: {exc}") from exc
    if header is None:
        raise AtlasError(f"MSDL labels file {str(path)!r} is empty; expected a header "
                         f"{','.join(_COLUMNS)!r} and one row per region")
    header = [h.strip() for h in header]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise AtlasError(f"MSDL labels file {str(path)!r} has columns {header}; "
                         f"missing {missing} (expected {list(_COLUMNS)})")
    idx = {c: header.index(c) for c in _COLUMNS}
    if not rows:
        raise AtlasError(f"MSDL labels file {str(path)!r} holds no region rows")
    coords, labels, networks = [], [], []
    for lineno, row in enumerate(rows, start=2):
        if len(row) < len(header):
            raise AtlasError(f"MSDL labels file {str(path)!r}, row {lineno}: found "
                             f"{len(row)} fields, expected {len(header)}")
        try:
            coords.append([float(row[idx[c]]) for c in ("x", "y", "z")])
        except ValueError as exc:
            raise AtlasError(f"MSDL labels file {str(path)!r}, row {lineno}: coordinate "
                             f"is not a number ({exc})") from exc
        labels.append(row[idx["name"]].strip())
        networks.append(row[idx["net name"]].strip())
    region_coords = np.asarray(coords, dtype=float)
    if not np.all(np.isfinite(region_coords)):
        raise AtlasError(f"MSDL labels file {str(path)!r} holds non-finite coordinates")
    return Bunch(labels=labels, networks=networks, region_coords=region_coords)


@functools.lru_cache(maxsize=1)
def _bundled() -> Bunch:
    from ..templates import data_path

    facts = read_msdl_labels_csv(data_path("msdl_rois_labels.csv"))
    if len(facts.labels) != MSDL_N_REGIONS:
        raise AtlasError(f"bundled MSDL labels hold {len(facts.labels)} regions, "
                         f"expected {MSDL_N_REGIONS}")
    return facts


def msdl_facts() -> Bunch:
    """The published MSDL region facts, from the bundled CSV (39 regions).

    Returns
    -------
    Bunch
        ``labels``, ``networks`` (lists of 39 str) and ``region_coords``
        (ndarray of shape (39, 3), MNI mm). A fresh copy on each call, so callers
        may modify it.

    Examples
    --------
    >>> from sparse_connectome.datasets._msdl import msdl_facts
    >>> facts = msdl_facts()
    >>> len(facts.labels), facts.region_coords.shape, facts.networks[0]
    (39, (39, 3), 'Aud')
    """
    facts = _bundled()
    return Bunch(labels=list(facts.labels), networks=list(facts.networks),
                 region_coords=facts.region_coords.copy())
