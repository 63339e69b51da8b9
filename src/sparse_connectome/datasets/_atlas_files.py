"""Readers and checks of downloaded atlas files: label tables, images, region coordinates.

Everything here reads data that came from the network, so nothing is trusted:
label tables are parsed strictly (the Harvard-Oxford XML with DOCTYPE and entity
declarations refused), and an image is checked against its labels (region
values, number of maps) before it is used. Region coordinates are computed once
from the image and cached beside it, keyed by the image's SHA-256.
"""

from __future__ import annotations

import logging
import math
import os
import xml.parsers.expat
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .._utils.atomic import atomic_write_text
from .._utils.hashing import file_sha256
from .._utils.text_inputs import check_text_size
from ..errors import AtlasError, SparseConnectomeError

__all__ = [
    "AtlasLabels",
    "atlas_region_coords",
    "check_maps_image",
    "read_difumo_labels",
    "read_fsl_xml_labels",
    "read_schaefer_labels",
]

logger = logging.getLogger(__name__)

#: What reading a broken (e.g. truncated) compressed image raises, besides our errors.
_READ_ERRORS = (SparseConnectomeError, OSError, EOFError, ValueError, zlib.error)


@dataclass(frozen=True)
class AtlasLabels:
    """Regions of an atlas as its label file lists them, in index order.

    Examples
    --------
    >>> from sparse_connectome.datasets._atlas_files import AtlasLabels
    >>> AtlasLabels(labels=["A", "B"], indices=[1, 2], networks=None).labels
    ['A', 'B']
    """

    labels: list[str]
    indices: list[int] | None
    networks: list[str] | None


def _read_text(path: Path, what: str) -> str:
    check_text_size(path, "labels", what, AtlasError)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"{what} {str(path)!r} cannot be read as UTF-8 text: {exc}") from exc


def read_schaefer_labels(path: str | os.PathLike, n_rois: int) -> AtlasLabels:
    """Read a Schaefer 2018 ``*_order.txt`` labels file.

    Lines are tab-separated, without header: index, name (e.g.
    ``7Networks_LH_Vis_1``), R, G, B, 0. The network is the third ``_`` field
    of the name.

    Parameters
    ----------
    path : path-like
        The labels file.
    n_rois : int
        The number of parcels the file must list, numbered 1 to ``n_rois``.

    Returns
    -------
    AtlasLabels
        Names, indices (image values) and networks, by increasing index.

    Raises
    ------
    AtlasError
        If a line is malformed or the indices are not 1 to ``n_rois``.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets._atlas_files import read_schaefer_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.txt")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("2\\t7Networks_RH_Vis_1\\t1\\t2\\t3\\t0\\n"
    ...                  "1\\t7Networks_LH_Default_1\\t1\\t2\\t3\\t0\\n")
    >>> found = read_schaefer_labels(path, n_rois=2)
    >>> found.labels, found.indices, found.networks
    (['7Networks_LH_Default_1', '7Networks_RH_Vis_1'], [1, 2], ['Default', 'Vis'])
    """
    path = Path(path)
    rows: dict[int, str] = {}
    for number, line in enumerate(_read_text(path, "Schaefer labels file").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        try:
            index = int(fields[0])
        except ValueError:
            index = None
        if index is None or len(fields) < 2 or len(fields[1].split("_")) < 3:
            raise AtlasError(f"Schaefer labels file {str(path)!r} line {number} is {line!r}; "
                             "expected tab-separated index, name like "
                             "'7Networks_LH_Vis_1', R, G, B, 0")
        if index in rows:
            raise AtlasError(f"Schaefer labels file {str(path)!r} lists index {index} twice; "
                             "expected each parcel once")
        rows[index] = fields[1]
    if sorted(rows) != list(range(1, n_rois + 1)):
        raise AtlasError(f"Schaefer labels file {str(path)!r} lists {len(rows)} parcels "
                         f"(indices {_span(rows)}); expected {n_rois} parcels numbered "
                         f"1 to {n_rois}")
    indices = sorted(rows)
    names = [rows[i] for i in indices]
    return AtlasLabels(labels=names, indices=indices,
                       networks=[name.split("_")[2] for name in names])


def _span(values) -> str:
    values = sorted(values)
    return f"{values[0]} to {values[-1]}" if values else "none"


def read_difumo_labels(path: str | os.PathLike, dimension: int) -> AtlasLabels:
    """Read a DiFuMo ``labels_{dim}_dictionary.csv``.

    Rows are ordered by ``Component`` (map ``k`` of the 4D image is the
    ``k``-th component); names come from ``Difumo_names`` and networks from
    ``Yeo_networks7`` where the table has it, else ``Yeo_networks17``, else
    there are none. Column names are matched without regard to case.

    Parameters
    ----------
    path : path-like
        The CSV file.
    dimension : int
        The number of components the table must list.

    Returns
    -------
    AtlasLabels
        Names and networks (``indices`` is None: the atlas is made of maps).

    Raises
    ------
    AtlasError
        If the table cannot be read, lacks a column, repeats a component or
        does not list ``dimension`` components.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets._atlas_files import read_difumo_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "labels_2_dictionary.csv")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("Component,Difumo_names,Yeo_networks7,Yeo_networks17\\n"
    ...                  "2,Cuneus,VisCent,VisPeri\\n1,Insula,SalVentAttn,SalVentAttnA\\n")
    >>> found = read_difumo_labels(path, dimension=2)
    >>> found.labels, found.networks
    (['Insula', 'Cuneus'], ['SalVentAttn', 'VisCent'])
    """
    path = Path(path)
    check_text_size(path, "labels", "DiFuMo labels file", AtlasError)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise AtlasError(f"DiFuMo labels file {str(path)!r} cannot be read as CSV: "
                         f"{exc}") from exc
    columns = {c.strip().lower(): c for c in table.columns}
    missing = [c for c in ("Component", "Difumo_names") if c.lower() not in columns]
    if missing:
        raise AtlasError(f"DiFuMo labels file {str(path)!r} has columns "
                         f"{list(table.columns)}; expected at least Component and "
                         "Difumo_names")
    try:
        components = [int(v) for v in table[columns["component"]]]
    except ValueError as exc:
        raise AtlasError(f"DiFuMo labels file {str(path)!r} has a non-integer Component "
                         f"({exc}); expected component numbers") from exc
    if len(set(components)) != len(components) or len(components) != dimension:
        raise AtlasError(f"DiFuMo labels file {str(path)!r} lists {len(components)} rows "
                         f"({len(set(components))} distinct components); expected "
                         f"{dimension} distinct components")
    order = np.argsort(components, kind="stable")
    names = table[columns["difumo_names"]].str.strip().to_numpy()[order].tolist()
    networks = None
    for column in ("yeo_networks7", "yeo_networks17"):
        if column in columns:
            networks = table[columns[column]].str.strip().to_numpy()[order].tolist()
            break
    return AtlasLabels(labels=names, indices=None, networks=networks)


def read_fsl_xml_labels(path: str | os.PathLike) -> AtlasLabels:
    """Read an FSL atlas XML file (``<label index="i">name</label>``), safely.

    The file is parsed with expat, refusing any DOCTYPE or entity declaration
    (nothing a label file needs, and the door to entity-expansion attacks).

    Parameters
    ----------
    path : path-like
        The XML file, e.g. ``HarvardOxford-Cortical.xml``.

    Returns
    -------
    AtlasLabels
        Names by increasing ``index``, with ``indices`` the XML indices
        (the image value is ``index + 1`` in FSL's maxprob images). No networks.

    Raises
    ------
    AtlasError
        If the file is not well-formed XML, declares a DOCTYPE or an entity,
        has a label without an integer ``index``, repeats an index, or has no
        label.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets._atlas_files import read_fsl_xml_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "atlas.xml")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write('<atlas><data><label index="1" x="1" y="2" z="3">Insula'
    ...                  '</label><label index="0">Frontal Pole</label></data></atlas>')
    >>> found = read_fsl_xml_labels(path)
    >>> found.labels, found.indices
    (['Frontal Pole', 'Insula'], [0, 1])
    """
    path = Path(path)
    found: dict[int, str] = {}
    current: list | None = None  # [index, text parts] while inside a <label>

    def refuse(*_args) -> None:
        raise AtlasError(f"Atlas labels file {str(path)!r} declares a DOCTYPE or an entity; "
                         "refused (a label file needs neither)")

    def start(name: str, attrs: dict) -> None:
        nonlocal current
        if name != "label":
            return
        try:
            current = [int(attrs.get("index", "")), []]
        except ValueError:
            raise AtlasError(f"Atlas labels file {str(path)!r} has a <label> with index "
                             f"{attrs.get('index')!r}; expected an integer") from None

    def end(name: str) -> None:
        nonlocal current
        if name == "label" and current is not None:
            index, parts = current
            if index in found:
                raise AtlasError(f"Atlas labels file {str(path)!r} lists index {index} "
                                 "twice; expected each region once")
            found[index] = "".join(parts).strip()
            current = None

    def text(data: str) -> None:
        if current is not None:
            current[1].append(data)

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    check_text_size(path, "labels", "Atlas labels file", AtlasError)
    try:
        parser.Parse(path.read_bytes(), True)
    except (xml.parsers.expat.ExpatError, OSError) as exc:
        raise AtlasError(f"Atlas labels file {str(path)!r} is not readable XML: {exc}") from exc
    if not found:
        raise AtlasError(f"Atlas labels file {str(path)!r} holds no <label>; expected one "
                         "per region")
    indices = sorted(found)
    return AtlasLabels(labels=[found[i] for i in indices], indices=indices, networks=None)


def check_maps_image(path: str | os.PathLike, n_labels: int, atlas: str) -> None:
    """Check (from the header) that ``path`` is a 4D image of ``n_labels`` maps.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.datasets._atlas_files import check_maps_image
    >>> path = os.path.join(tempfile.mkdtemp(), "maps.nii.gz")
    >>> nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), path)
    >>> check_maps_image(path, 3, "DiFuMo")
    >>> check_maps_image(path, 4, "DiFuMo")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.AtlasError: DiFuMo maps ... hold 3 maps ...; expected 4 ...
    """
    shape = _header_shape(Path(path), atlas)
    if len(shape) != 4 or shape[3] != n_labels:
        n_maps = shape[3] if len(shape) == 4 else "no"
        raise AtlasError(f"{atlas} maps {str(path)!r} hold {n_maps} maps (shape {shape}); "
                         f"expected {n_labels} maps in a 4D image, one per label")


def _header_shape(path: Path, atlas: str) -> tuple[int, ...]:
    try:
        return tuple(nib.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a bad file
        raise AtlasError(f"{atlas} image {str(path)!r} cannot be read as NIfTI: {exc}") from exc


# ----------------------------------------------------------------- region coordinates

def atlas_region_coords(image: str | os.PathLike, kind: str, atlas: str,
                        indices: list[int] | None = None,
                        n_maps: int | None = None) -> tuple[np.ndarray, list[int] | None]:
    """Region coordinates (MNI mm) of an atlas image, computed once and cached.

    The cache is a small TSV beside the image (``.<image name>.region_coords.tsv``)
    keyed by the image's SHA-256; the image is hashed again only when its size
    or modification time changed. Computing the coordinates also checks the
    image against its labels, so a cache hit means the check was passed by
    this very image.

    Parameters
    ----------
    image : path-like
        The atlas image.
    kind : {"labels", "maps"}
        A 3D integer parcellation, or a 4D image of probabilistic maps.
    atlas : str
        The atlas' name, for messages.
    indices : list of int, for ``kind="labels"``
        The image value of each labelled region. Every non-zero image value
        must be one of them; regions without any voxel are dropped (with a
        warning in the log).
    n_maps : int, for ``kind="maps"``
        The number of maps the image must hold.

    Returns
    -------
    coords : ndarray of shape (n_regions, 3)
    kept : list of int or None
        For ``kind="labels"``, the indices of the regions present in the image,
        in the order of ``indices`` (the rows of ``coords``); None for maps.

    Raises
    ------
    AtlasError
        If the image cannot be read, has the wrong dimensionality, a value
        without a label, or a map without a positive value.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.datasets._atlas_files import atlas_region_coords
    >>> data = np.zeros((6, 6, 6), dtype=np.int16)
    >>> data[:2, :2, :2], data[4:, 4:, 4:] = 3, 7
    >>> path = os.path.join(tempfile.mkdtemp(), "parcels.nii.gz")
    >>> nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    >>> coords, kept = atlas_region_coords(path, "labels", "demo", indices=[7, 3])
    >>> coords, kept
    (array([[9., 9., 9.],
           [1., 1., 1.]]), [7, 3])
    """
    image = Path(image)
    cache = image.with_name(f".{image.name}.region_coords.tsv")
    stat = image.stat()
    stamp = {"size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}
    found = _read_coords_cache(cache)
    if found is not None and {k: found[0].get(k) for k in stamp} == stamp:
        sha256 = found[0].get("sha256", "")
    else:
        sha256 = file_sha256(image)
    key = {"sha256": sha256, "kind": kind, **stamp}
    if found is None or found[0].get("sha256") != sha256 or found[0].get("kind") != kind:
        logger.info("Computing the region coordinates of %s (once; cached in %s)", image, cache)
        values, coords = _compute_coords(image, kind, atlas, n_maps)
        _write_coords_cache(cache, key, values, coords)
    else:
        values, coords = found[1], found[2]
        if found[0] != key:  # same content, touched: record the new stamp, hash no more
            _write_coords_cache(cache, key, values, coords)
        if kind == "maps" and len(values) != n_maps:
            raise AtlasError(f"{atlas} maps {str(image)!r} hold {len(values)} maps; expected "
                             f"{n_maps} maps, one per label")
    if kind == "maps":
        return coords, None
    return _match_labels(image, atlas, values, coords, indices)


def _compute_coords(image: Path, kind: str, atlas: str,
                    n_maps: int | None) -> tuple[list[int], np.ndarray]:
    # plotting is the right owner of the coordinate rule; imported here to keep
    # `import sparse_connectome.datasets` light.
    from ..plotting import find_parcellation_cut_coords, find_probabilistic_atlas_cut_coords

    try:
        if kind == "maps":
            check_maps_image(image, n_maps, atlas)
            # keep_file_open: the maps are read one after the other, and a gzip
            # file reopened for each would be decompressed from its start every time.
            img = nib.load(str(image), keep_file_open=True)
            coords = find_probabilistic_atlas_cut_coords(img)
            return list(range(len(coords))), coords
        shape = _header_shape(image, atlas)
        if len(shape) != 3:
            raise AtlasError(f"{atlas} labels image {str(image)!r} has shape {shape}; "
                             "expected a 3D image of integer labels")
        coords, values = find_parcellation_cut_coords(str(image), return_label_names=True)
        return [int(v) for v in values], np.asarray(coords, dtype=np.float64)
    except AtlasError:
        raise
    except _READ_ERRORS as exc:
        raise AtlasError(f"{atlas} image {str(image)!r} is not a usable atlas: {exc}") from exc


def _match_labels(image: Path, atlas: str, values: list[int], coords: np.ndarray,
                  indices: list[int]) -> tuple[np.ndarray, list[int]]:
    """Coordinates in the order of ``indices``; every image value must have a label."""
    unnamed = sorted(set(values) - set(indices))
    if unnamed:
        raise AtlasError(f"{atlas} labels image {str(image)!r} holds {len(values)} region "
                         f"values, {len(unnamed)} of them without a label (e.g. "
                         f"{unnamed[:5]}); expected one label per region value")
    row = {v: i for i, v in enumerate(values)}
    absent = [i for i in indices if i not in row]
    if absent:
        logger.warning("%s labels image %s has no voxel for %d labelled regions (values %s); "
                       "they are left out", atlas, image, len(absent), absent[:10])
    kept = [i for i in indices if i in row]
    return coords[[row[i] for i in kept]].reshape(len(kept), 3), kept


def _read_coords_cache(cache: Path) -> tuple[dict, list[int], np.ndarray] | None:
    """(key, region values, coords) from a cache file; None when absent or unreadable."""
    try:
        lines = cache.read_text(encoding="utf-8").splitlines()
        key = dict(item.split("=", 1) for item in lines[0].lstrip("# ").split())
        rows = [line.split("\t") for line in lines[2:] if line]
        values = [int(r[0]) for r in rows]
        coords = np.array([[float(v) for v in r[1:4]] for r in rows], dtype=np.float64)
    except (OSError, ValueError, IndexError):
        return None
    if coords.shape != (len(values), 3) or not all(math.isfinite(v) for v in coords.flat):
        return None
    return key, values, coords


def _write_coords_cache(cache: Path, key: dict, values: list[int], coords: np.ndarray) -> None:
    header = "# " + " ".join(f"{k}={v}" for k, v in key.items())
    # repr() of a float reads back bit for bit: a cache hit gives the same numbers.
    rows = [f"{v}\t" + "\t".join(repr(float(c)) for c in xyz) for v, xyz in zip(values, coords)]
    try:
        atomic_write_text(cache, "\n".join([header, "region\tx\ty\tz", *rows]) + "\n")
    except OSError as exc:  # a read-only data folder: the coordinates are still right
        logger.warning("Cannot cache region coordinates in %s: %s", cache, exc)
