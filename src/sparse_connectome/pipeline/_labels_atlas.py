"""Labels atlases (3D integer images): their regions, checked against their table.

A labels atlas gives each region an integer value in a 3D image (0 is the
background). Its table (a BIDS ``_dseg.tsv`` or a CSV with ``index`` and ``name``
columns) names the regions and fixes their order, which is the order of the output
columns. The rules, each broken one an :class:`~sparse_connectome.errors.AtlasError`
naming the table or the image:

- ``index`` values are integers (``5`` or ``5.0``), at least 1, each once; a row
  with index 0 names the background and is skipped;
- names are unique;
- every index of the table is a value of the image, and every value of the image
  (besides 0) is an index of the table: a region is never silently dropped nor
  added;
- without an ``index`` column (or with names given as a list), the names go to
  the image's values in increasing order, and their number must match;
- without names, regions are named ``region_<value>``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .._utils.bunch import Bunch
from ..errors import AtlasError

__all__ = ["image_label_values", "is_labels_image", "labels_atlas_regions", "labels_region_coords",
           "table_indices"]

_INTEGER = re.compile(r"[+-]?\d+(\.0*)?")


def _values_of(data: np.ndarray) -> np.ndarray | None:
    """The distinct values of an integer-valued array, or None if some are not integers."""
    if data.dtype.kind in "iub":
        return np.unique(data)
    if data.dtype.kind != "f" or not np.all(np.isfinite(data)):
        return None
    values = np.unique(data)
    return values if np.all(values == np.round(values)) else None


def is_labels_image(img: Any) -> bool:
    """True when ``img`` is 3D and holds integers only (a labels atlas, not one map).

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> is_labels_image(nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4)))
    True
    >>> is_labels_image(nib.Nifti1Image(np.full((2, 2, 2), 0.5, dtype=np.float32), np.eye(4)))
    False
    """
    if len(img.shape) != 3:
        return False
    return _values_of(np.asarray(img.dataobj)) is not None


def image_label_values(img: Any, name: str) -> list[int]:
    """The region values of a 3D labels image (0 excluded), increasing.

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> data = np.zeros((3, 3, 3), dtype=np.int16)
    >>> data[0], data[2] = 9, 2
    >>> image_label_values(nib.Nifti1Image(data, np.eye(4)), "atlas")
    [2, 9]
    """
    values = _values_of(np.asarray(img.dataobj))
    if values is None:
        raise AtlasError(f"atlas labels image {name} holds non-integer or non-finite values; "
                         "expected a 3D image of integer region labels (0 = background)")
    return [int(v) for v in values if v != 0]


def table_indices(values: list[str], source: str) -> list[int]:
    """The ``index`` column of a labels table as integers, or a named AtlasError.

    Examples
    --------
    >>> table_indices(["1", "5", "9.0"], "labels.tsv")
    [1, 5, 9]
    """
    out = []
    for row, text in enumerate(values):
        if not _INTEGER.fullmatch(str(text).strip()):
            raise AtlasError(f"{source}: 'index' on line {row + 2} is {text!r}; expected an "
                             "integer label value of the atlas image")
        out.append(int(float(text)))
    negative = [v for v in out if v < 0]
    if negative:
        raise AtlasError(f"{source}: index values {negative[:5]} are negative; expected "
                         "positive label values (0 is the background)")
    counts = pd.Series(out).value_counts()
    repeated = sorted(int(v) for v in counts.index[counts > 1])
    if repeated:
        raise AtlasError(f"{source}: index values {repeated[:5]} appear more than once; "
                         "expected each region's label value once")
    return out


def _match_table(values: list[int], indices: list[int], names: list[str], source: str,
                 image: str) -> None:
    """Every table index in the image and every image value in the table."""
    present = set(values)
    absent = [(i, n) for i, n in zip(indices, names) if i not in present]
    if absent:
        shown = ", ".join(f"{i} ({n!r})" for i, n in absent[:5])
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise AtlasError(f"{source}: index {shown}{more} not found in the atlas image "
                         f"{image}; expected every region of the table in the image (remove "
                         "the row, or check that table and image belong together)")
    listed = set(indices)
    unnamed = [v for v in values if v not in listed]
    if unnamed:
        more = f" and {len(unnamed) - 10} more" if len(unnamed) > 10 else ""
        raise AtlasError(f"atlas image {image} holds label value(s) {unnamed[:10]}{more} that "
                         f"{source} does not list; expected one table row per region (add the "
                         "rows, or set those voxels to 0 in the image)")


def labels_atlas_regions(img: Any, image: str, *, indices: list[int] | None = None,
                         names: list[str] | None = None, source: str = "atlas labels") -> Bunch:
    """The regions of a labels atlas, in output order: values and names, checked.

    Parameters
    ----------
    img : nibabel image
        The 3D labels image.
    image : str
        How messages name the image.
    indices : list of int, optional
        The label value of each region, in output order (the table's ``index``).
    names : list of str, optional
        Region names, in the order of ``indices`` (or of the increasing image values
        when ``indices`` is None).
    source : str
        How messages name the table.

    Returns
    -------
    Bunch
        ``indices`` and ``labels``, in output order, and ``rows``: the positions of
        the regions in the given ``indices`` (a background row, index 0, is skipped).

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> data = np.zeros((4, 4, 4), dtype=np.int16)
    >>> data[0], data[1], data[3] = 1, 5, 9
    >>> img = nib.Nifti1Image(data, np.eye(4))
    >>> labels_atlas_regions(img, "atlas", indices=[9, 1, 5], names=["c", "a", "b"]).labels
    ['c', 'a', 'b']
    >>> labels_atlas_regions(img, "atlas").labels
    ['region_1', 'region_5', 'region_9']
    """
    values = image_label_values(img, image)
    rows = None
    if indices is not None:
        indices = [int(v) for v in indices]
        names = [f"region_{v}" for v in indices] if names is None else list(names)
        if len(names) != len(indices):
            raise AtlasError(f"{source}: {len(names)} names for {len(indices)} index values; "
                             "expected one name per region")
        rows = [k for k, v in enumerate(indices) if v != 0]  # a background row is skipped
        indices, names = [indices[k] for k in rows], [names[k] for k in rows]
        _match_table(values, indices, names, source, image)
    elif names is not None:
        names = list(names)
        if len(names) != len(values):
            raise AtlasError(f"{source}: found {len(names)} names for the {len(values)} labels "
                             f"of the atlas image {image}; expected one name per label, in "
                             "increasing label order (or an 'index' column giving each "
                             "name's label value)")
        indices = values
    else:
        indices, names = values, [f"region_{v}" for v in values]
    if len(indices) < 2:
        raise AtlasError(f"atlas labels image {image} holds {len(indices)} region (label values "
                         f"{indices}); a connectome needs at least 2: expected a label atlas "
                         "with at least 2 integer labels besides the background 0")
    return Bunch(indices=indices, labels=[str(n).strip() for n in names],
                 rows=rows if rows is not None else list(range(len(indices))))


def labels_region_coords(img: Any, indices: list[int], image: str) -> np.ndarray:
    """One centre per region of a labels image, in the order of ``indices`` (mm)."""
    from ..plotting import find_parcellation_cut_coords

    try:
        coords, values = find_parcellation_cut_coords(img, return_label_names=True)
    except AtlasError as exc:
        raise AtlasError(f"atlas labels image {image}: {exc}") from None
    row = {int(v): k for k, v in enumerate(values)}
    return np.asarray(coords, dtype=float)[[row[v] for v in indices]]

