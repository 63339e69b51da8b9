"""Fetchers of more atlases: Schaefer 2018, DiFuMo and Harvard-Oxford.

They share the download path of :func:`~sparse_connectome.datasets.fetch_atlas_msdl`
(:mod:`._download`: cached, resumable, verified, atomic; archives extracted by
:mod:`._archives`, refusing unsafe entries, and forgotten once extracted or refused)
and return a :class:`~sparse_connectome._utils.bunch.Bunch` with the same keys for
every atlas: ``maps``, ``labels``, ``indices``, ``networks``, ``region_coords``,
``kind``, ``atlas_type``, ``template`` and ``description``.

What is downloaded is checked before it is returned (labels against the image);
a check that fails removes the downloaded files, so that the next call downloads
them again. Where the data come from is in ``data/SOURCES.md`` of the package.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .._utils.bunch import Bunch
from ..errors import AtlasError, DownloadError, ParameterError
from . import fetchers
from ._archives import extract_tar_safely, extract_zip_safely
from ._atlas_files import (
    atlas_region_coords,
    read_difumo_labels,
    read_fsl_xml_labels,
    read_schaefer_labels,
)
from ._download import download_file, forget_download
from ._paths import get_data_dir

__all__ = [
    "fetch_atlas_schaefer_2018",
    "fetch_atlas_difumo",
    "fetch_atlas_harvard_oxford",
    "SCHAEFER_BASE_URL",
    "DIFUMO_URL",
    "DIFUMO_OSF_KEYS",
    "HARVARD_OXFORD_URL",
    "HARVARD_OXFORD_NAMES",
]

#: The folder of the Schaefer 2018 parcellations in MNI space (CBIG repository, v0.14.3).
SCHAEFER_BASE_URL = (
    "https://raw.githubusercontent.com/ThomasYeoLab/CBIG/"
    "v0.14.3-Update_Yeo2011_Schaefer2018_labelname/stable_projects/brain_parcellation/"
    "Schaefer2018_LocalGlobal/Parcellations/MNI/"
)
#: The DiFuMo archive of one dimension on OSF; ``{key}`` from :data:`DIFUMO_OSF_KEYS`.
DIFUMO_URL = "https://osf.io/{key}/download"
#: OSF key of the DiFuMo archive, by number of components.
DIFUMO_OSF_KEYS = {64: "pqu9r", 128: "wjvd5", 256: "3vrct", 512: "9b76y", 1024: "34792"}
#: The Harvard-Oxford atlases as distributed with FSL (one tarball, all of them).
HARVARD_OXFORD_URL = "https://www.nitrc.org/frs/download.php/9902/HarvardOxford.tgz"
#: Names of the Harvard-Oxford atlases: cortical (``cort``), lateralised cortical
#: (``cortl``) and subcortical (``sub``); maximum-probability parcellations
#: thresholded at 0, 25 or 50 % (``maxprob-thr*``) or 4D probability maps (``prob``).
HARVARD_OXFORD_NAMES = tuple(
    f"{part}-{kind}-{res}"
    for part in ("cort", "cortl", "sub")
    for kind in ("maxprob-thr0", "maxprob-thr25", "maxprob-thr50", "prob")
    for res in ("1mm", "2mm")
)

_SCHAEFER_N_ROIS = tuple(range(100, 1001, 100))
_HO_LABEL_FILES = {"cort": "HarvardOxford-Cortical.xml",
                   "cortl": "HarvardOxford-Cortical-Lateralized.xml",
                   "sub": "HarvardOxford-Subcortical.xml"}

_SCHAEFER_DESCRIPTION = """\
Schaefer 2018 parcellation: {n_rois} cortical parcels from a gradient-weighted
Markov random field model of resting-state fMRI (1489 participants), each
assigned to one of the {yeo_networks} Yeo 2011 networks; in FSL's MNI152 space
at {resolution_mm} mm.

Keys: maps (3D NIfTI, integer labels 1..{n_rois}, 0 = background), labels
(e.g. '7Networks_LH_Vis_1'), indices (image values), networks (the third '_'
field of a label), region_coords (MNI mm), kind ('labels').

Reference: Schaefer, Kong, Gordon, Laumann, Zuo, Holmes, Eickhoff, Yeo.
Local-Global Parcellation of the Human Cerebral Cortex from Intrinsic
Functional Connectivity MRI. Cerebral Cortex 28(9), 3095-3114 (2018).
Source: https://github.com/ThomasYeoLab/CBIG (Schaefer2018_LocalGlobal).
"""

_DIFUMO_DESCRIPTION = """\
DiFuMo (Dictionaries of Functional Modes): {dimension} soft, overlapping
functional modes learned from 2192 task and resting-state fMRI sessions of 27
studies, at {resolution_mm} mm in MNI space.

Keys: maps (4D NIfTI, one map per mode), labels (Difumo_names), networks
(Yeo_networks7, else Yeo_networks17, of the dictionary), region_coords (MNI mm),
kind ('maps'); indices is None.

Reference: Dadi, Varoquaux, Machlouzarides-Shalit, Gorgolewski, Wassermann,
Thirion, Mensch. Fine-grain atlases of functional modes for fMRI analysis.
NeuroImage 221, 117126 (2020).
Source: https://osf.io/pqu9r/ (and the other dimensions' OSF pages).
"""

_HO_DESCRIPTION = """\
Harvard-Oxford {part} atlas ({atlas_name}), as distributed with FSL: {what}.

Keys: maps (NIfTI), labels (names from the FSL XML file, background excluded),
indices ({indices}), region_coords (MNI mm), kind ('{kind}'); networks is None.

References: Makris et al., Schizophrenia Research 83, 155-171 (2006);
Frazier et al., American Journal of Psychiatry 162, 1256-1265 (2005);
Desikan et al., NeuroImage 31, 968-980 (2006); Goldstein et al.,
Biological Psychiatry 61, 935-945 (2007).
Source: FSL (https://fsl.fmrib.ox.ac.uk), tarball from NITRC.
"""


#: FSL's MNI152 template (the space of all three atlases), by its TemplateFlow name.
_TEMPLATE = "MNI152NLin6Asym"


# --------------------------------------------------------------------------- shared

def _check_choice(name: str, value, allowed: tuple):
    """``value`` if it is one of ``allowed`` (integers given as such, or as whole floats)."""
    candidate = value
    if isinstance(allowed[0], int):
        if isinstance(value, float) and value.is_integer():
            candidate = int(value)
        if isinstance(candidate, bool) or not isinstance(candidate, numbers.Integral):
            candidate = None
        else:
            candidate = int(candidate)
    elif not isinstance(value, str):
        candidate = None
    if candidate not in allowed:
        shown = ", ".join(repr(a) if isinstance(a, str) else str(a) for a in allowed)
        raise ParameterError(f"{name}={value!r} is not valid; expected one of {shown}")
    return candidate


def _known_hash(name: str) -> str | None:
    # One registry of pinned hashes for every fetcher, read at call time so
    # that a mirror's hashes can be added (or patched in tests) there.
    return fetchers.KNOWN_HASHES.get(name)


def _fetch_archive(url: str, archive: Path, dest: Path, expected: list[Path],
                   extract: Callable[[Path, Path], object], verbose: int) -> None:
    """Download and extract ``archive`` unless every ``expected`` file is there."""
    if all(p.is_file() for p in expected):
        return
    path = download_file(url, archive, known_hash=_known_hash(archive.name), verbose=verbose)
    try:
        extract(path, dest)
    finally:
        # Extracted (or refused): the archive is not needed any more, and a
        # refused one must not be picked up by a later call.
        forget_download(path)
    missing = [p.relative_to(dest).as_posix() for p in expected if not p.is_file()]
    if missing:
        raise DownloadError(f"Archive {archive.name} from {url} lacks {missing}; expected "
                            f"{[p.relative_to(dest).as_posix() for p in expected]}")


@contextlib.contextmanager
def _discard_on_error(discard: Callable[[], None]) -> Iterator[None]:
    """On an AtlasError, remove what was downloaded so that the next call gets it again."""
    try:
        yield
    except AtlasError as exc:
        discard()
        raise AtlasError(f"{exc}. The downloaded files were removed; call again to download "
                         "them") from exc


def _atlas_bunch(maps: Path, labels: list[str], indices: list[int] | None,
                 networks: list[str] | None, coords: np.ndarray, kind: str,
                 template: str, description: str) -> Bunch:
    return Bunch(
        maps=str(maps),
        labels=list(labels),
        indices=None if indices is None else [int(i) for i in indices],
        networks=None if networks is None else list(networks),
        region_coords=np.asarray(coords, dtype=np.float64).reshape(len(labels), 3),
        kind=kind,
        atlas_type="deterministic" if kind == "labels" else "probabilistic",
        template=template,
        description=description,
    )


# ---------------------------------------------------------------------- Schaefer 2018

def fetch_atlas_schaefer_2018(n_rois: int = 400, yeo_networks: int = 7,
                              resolution_mm: int = 2,
                              data_dir: str | os.PathLike | None = None,
                              base_url: str | None = None, verbose: int = 1) -> Bunch:
    """Download (once) and load the Schaefer 2018 cortical parcellation.

    Parameters
    ----------
    n_rois : {100, 200, ..., 1000}, default=400
        Number of parcels.
    yeo_networks : {7, 17}, default=7
        The Yeo 2011 networks the parcels are grouped (and named) by.
    resolution_mm : {1, 2}, default=2
        Voxel size of the image.
    data_dir : path-like, optional
        Root data folder; files go to ``<data_dir>/schaefer_2018``. Defaults to
        ``$SPARSE_CONNECTOME_DATA`` or ``~/.cache/sparse_connectome``.
    base_url : str, optional
        Folder URL of a mirror; defaults to :data:`SCHAEFER_BASE_URL`.
    verbose : int, default=1
        0 shows nothing; 1 shows download progress.

    Returns
    -------
    Bunch
        - ``maps``: str, path of the 3D image
          ``Schaefer2018_{n}Parcels_{k}Networks_order_FSLMNI152_{r}mm.nii.gz``;
        - ``labels``: list of ``n_rois`` str, e.g. ``"7Networks_LH_Vis_1"``;
        - ``indices``: list of int, the image value of each label (1 to ``n_rois``);
        - ``networks``: list of str, the network of each label (e.g. ``"Vis"``);
        - ``region_coords``: ndarray (n_rois, 3), MNI mm, computed from the image;
        - ``kind`` (``"labels"``), ``atlas_type`` (``"deterministic"``),
          ``template`` and ``description``.

    Raises
    ------
    ParameterError
        If a parameter is not one of its allowed values.
    DownloadError
        If a file cannot be downloaded (call again to resume an interrupted one).
    AtlasError
        If the labels file is malformed or does not match the image; the files
        are then removed, so that the next call downloads them again.

    Notes
    -----
    No checksums are published: the SHA-256 of each file is recorded at download
    time and every later call checks the cached files against it.

    Examples
    --------
    The download needs the internet (about 1 MB, once):

    >>> from sparse_connectome.datasets import fetch_atlas_schaefer_2018
    >>> atlas = fetch_atlas_schaefer_2018(n_rois=100)  # doctest: +SKIP
    >>> atlas.labels[0], atlas.networks[0], atlas.indices[0]  # doctest: +SKIP
    ('7Networks_LH_Vis_1', 'Vis', 1)

    Parameters are checked before anything is downloaded:

    >>> fetch_atlas_schaefer_2018(n_rois=150)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: n_rois=150 is not valid; expected one of 100, ...
    """
    n_rois = _check_choice("n_rois", n_rois, _SCHAEFER_N_ROIS)
    yeo_networks = _check_choice("yeo_networks", yeo_networks, (7, 17))
    resolution_mm = _check_choice("resolution_mm", resolution_mm, (1, 2))
    base = (SCHAEFER_BASE_URL if base_url is None else base_url).rstrip("/")
    stem = f"Schaefer2018_{n_rois}Parcels_{yeo_networks}Networks_order"
    folder = get_data_dir(data_dir) / "schaefer_2018"
    image = folder / f"{stem}_FSLMNI152_{resolution_mm}mm.nii.gz"
    table = folder / f"{stem}.txt"
    for path in (image, table):
        download_file(f"{base}/{path.name}", path, known_hash=_known_hash(path.name),
                      verbose=verbose)

    def discard() -> None:
        for path in (image, table):
            forget_download(path)
        image.with_name(f".{image.name}.region_coords.tsv").unlink(missing_ok=True)

    with _discard_on_error(discard):
        facts = read_schaefer_labels(table, n_rois)
        coords, kept = atlas_region_coords(image, "labels", "Schaefer 2018",
                                           indices=facts.indices)
        if kept != facts.indices:
            absent = sorted(set(facts.indices) - set(kept))
            raise AtlasError(f"Schaefer 2018 image {str(image)!r} has no voxel for labels "
                             f"{absent[:10]}; expected all {n_rois} parcels")
    description = _SCHAEFER_DESCRIPTION.format(n_rois=n_rois, yeo_networks=yeo_networks,
                                               resolution_mm=resolution_mm)
    return _atlas_bunch(image, facts.labels, facts.indices, facts.networks, coords,
                        "labels", _TEMPLATE, description)


# --------------------------------------------------------------------------- DiFuMo

def fetch_atlas_difumo(dimension: int = 64, resolution_mm: int = 2,
                       data_dir: str | os.PathLike | None = None, url: str | None = None,
                       verbose: int = 1) -> Bunch:
    """Download (once) and load a DiFuMo atlas of probabilistic functional modes.

    Parameters
    ----------
    dimension : {64, 128, 256, 512, 1024}, default=64
        Number of modes (maps).
    resolution_mm : {2, 3}, default=2
        Voxel size of the maps.
    data_dir : path-like, optional
        Root data folder; files go to ``<data_dir>/difumo_atlases/<dimension>``.
    url : str, optional
        URL of the dimension's zip archive (a mirror); defaults to
        :data:`DIFUMO_URL` with the key of :data:`DIFUMO_OSF_KEYS`.
    verbose : int, default=1
        0 shows nothing; 1 shows download progress.

    Returns
    -------
    Bunch
        - ``maps``: str, path of the 4D image ``<dimension>/<r>mm/maps.nii.gz``;
        - ``labels``: list of ``dimension`` str (``Difumo_names``, by component);
        - ``indices``: None (an atlas of maps: map ``k`` is region ``k``);
        - ``networks``: list of str, the ``Yeo_networks7`` column of the
          dictionary (``Yeo_networks17`` where it lacks it; None if it has neither);
        - ``region_coords``: ndarray (dimension, 3), MNI mm, computed from the maps
          (once: then cached beside the image);
        - ``kind`` (``"maps"``), ``atlas_type`` (``"probabilistic"``),
          ``template`` and ``description``.

    Raises
    ------
    ParameterError
        If a parameter is not one of its allowed values.
    DownloadError
        If the archive cannot be downloaded, is corrupted or unsafe, or lacks
        the atlas files (a refused archive is not kept).
    AtlasError
        If the labels table is malformed or does not match the maps; the
        extracted files are then removed, so that the next call downloads again.

    Examples
    --------
    The download needs the internet (from about 30 MB for 64 modes, once):

    >>> from sparse_connectome.datasets import fetch_atlas_difumo
    >>> atlas = fetch_atlas_difumo(dimension=64)  # doctest: +SKIP
    >>> len(atlas.labels), atlas.kind, atlas.region_coords.shape  # doctest: +SKIP
    (64, 'maps', (64, 3))

    Parameters are checked before anything is downloaded:

    >>> fetch_atlas_difumo(dimension=100)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: dimension=100 is not valid; expected one of 64, ...
    """
    dimension = _check_choice("dimension", dimension, tuple(DIFUMO_OSF_KEYS))
    resolution_mm = _check_choice("resolution_mm", resolution_mm, (2, 3))
    url = DIFUMO_URL.format(key=DIFUMO_OSF_KEYS[dimension]) if url is None else url
    folder = get_data_dir(data_dir) / "difumo_atlases"
    maps = folder / str(dimension) / f"{resolution_mm}mm" / "maps.nii.gz"
    table = folder / str(dimension) / f"labels_{dimension}_dictionary.csv"
    _fetch_archive(url, folder / f"DiFuMo_{dimension}.zip", folder, [maps, table],
                   extract_zip_safely, verbose)
    with _discard_on_error(lambda: shutil.rmtree(folder / str(dimension), ignore_errors=True)):
        facts = read_difumo_labels(table, dimension)
        coords, _ = atlas_region_coords(maps, "maps", f"DiFuMo {dimension}", n_maps=dimension)
    description = _DIFUMO_DESCRIPTION.format(dimension=dimension, resolution_mm=resolution_mm)
    return _atlas_bunch(maps, facts.labels, None, facts.networks, coords, "maps",
                        _TEMPLATE, description)


# ------------------------------------------------------------------- Harvard-Oxford

def fetch_atlas_harvard_oxford(atlas_name: str = "cort-maxprob-thr25-2mm",
                               data_dir: str | os.PathLike | None = None,
                               url: str | None = None, verbose: int = 1) -> Bunch:
    """Download (once) and load a Harvard-Oxford atlas, as distributed with FSL.

    Parameters
    ----------
    atlas_name : str, default="cort-maxprob-thr25-2mm"
        ``{part}-{kind}-{res}`` (:data:`HARVARD_OXFORD_NAMES`): part ``cort``
        (cortical), ``cortl`` (cortical, left and right separate) or ``sub``
        (subcortical); kind ``maxprob-thr0``, ``maxprob-thr25``,
        ``maxprob-thr50`` (3D parcellations: each voxel labelled with its most
        probable region where that probability reaches the threshold, %) or
        ``prob`` (4D probability maps); res ``1mm`` or ``2mm``.
    data_dir : path-like, optional
        Root data folder; files go to ``<data_dir>/fsl/data/atlases``.
    url : str, optional
        URL of ``HarvardOxford.tgz`` (a mirror); defaults to
        :data:`HARVARD_OXFORD_URL`.
    verbose : int, default=1
        0 shows nothing; 1 shows download progress.

    Returns
    -------
    Bunch
        - ``maps``: str, path of ``HarvardOxford/HarvardOxford-<atlas_name>.nii.gz``;
        - ``labels``: list of str, region names by XML index, background excluded;
        - ``indices``: for ``maxprob`` atlases, list of int, the image value of
          each label (XML index + 1; 0 is background); None for ``prob`` atlases
          (map ``k`` is XML index ``k``);
        - ``networks``: None;
        - ``region_coords``: ndarray (n_regions, 3), MNI mm, computed from the image;
        - ``kind`` (``"labels"`` or ``"maps"``), ``atlas_type``, ``template``
          and ``description``.

    Raises
    ------
    ParameterError
        If ``atlas_name`` is not a known name.
    DownloadError
        If the tarball cannot be downloaded, is truncated, corrupted or unsafe,
        or lacks the atlas files (a refused tarball is not kept).
    AtlasError
        If the XML labels are malformed or unsafe (DOCTYPE, entities), or do not
        match the image; the extracted files are then removed.

    Notes
    -----
    A ``maxprob`` image value without a label is an error. A label with no
    voxel in a ``maxprob`` image (a small region can fall below a high
    threshold) is left out of ``labels``, ``indices`` and ``region_coords``,
    with a warning in the log, so that the three stay aligned with the image.

    Examples
    --------
    The download needs the internet (about 25 MB, once, for every name):

    >>> from sparse_connectome.datasets import fetch_atlas_harvard_oxford
    >>> atlas = fetch_atlas_harvard_oxford("sub-maxprob-thr25-2mm")  # doctest: +SKIP
    >>> atlas.labels[0], atlas.indices[0]  # doctest: +SKIP
    ('Left Cerebral White Matter', 1)

    Names are checked before anything is downloaded:

    >>> fetch_atlas_harvard_oxford("cort-maxprob-thr30-2mm")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: atlas_name='cort-maxprob-thr30-2mm' is not valid; ...
    """
    atlas_name = _check_choice("atlas_name", atlas_name, HARVARD_OXFORD_NAMES)
    part = atlas_name.split("-", 1)[0]
    folder = get_data_dir(data_dir) / "fsl"
    image = folder / "data" / "atlases" / "HarvardOxford" / f"HarvardOxford-{atlas_name}.nii.gz"
    xml_file = folder / "data" / "atlases" / _HO_LABEL_FILES[part]
    url = HARVARD_OXFORD_URL if url is None else url
    _fetch_archive(url, folder / "HarvardOxford.tgz", folder, [image, xml_file],
                   extract_tar_safely, verbose)
    kind = "maps" if "-prob-" in atlas_name else "labels"
    name = f"Harvard-Oxford {atlas_name}"
    with _discard_on_error(lambda: shutil.rmtree(folder / "data", ignore_errors=True)):
        facts = read_fsl_xml_labels(xml_file)
        if kind == "maps":
            if facts.indices != list(range(len(facts.indices))):
                raise AtlasError(f"{name} labels {str(xml_file)!r} have indices "
                                 f"{facts.indices[:5]}...; expected 0 to n-1, one per map")
            coords, _ = atlas_region_coords(image, "maps", name, n_maps=len(facts.labels))
            labels, indices = facts.labels, None
        else:
            by_value = {i + 1: label for i, label in zip(facts.indices, facts.labels)}
            coords, indices = atlas_region_coords(image, "labels", name,
                                                  indices=list(by_value))
            labels = [by_value[v] for v in indices]
    what = ("4D probability maps, one per region" if kind == "maps" else
            "a 3D parcellation, each voxel labelled with its most probable region")
    description = _HO_DESCRIPTION.format(
        part={"cort": "cortical", "cortl": "lateralised cortical",
              "sub": "subcortical"}[part],
        atlas_name=atlas_name, what=what, kind=kind,
        indices="None: map k is region k" if kind == "maps" else "image values, XML index + 1")
    return _atlas_bunch(image, labels, indices, None, coords, kind, _TEMPLATE,
                        description)
