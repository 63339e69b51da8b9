"""Fetchers of the seed's real data: the MSDL atlas and the development fMRI dataset.

Both return what the seed's fetchers return (a :class:`~sparse_connectome._utils.bunch.Bunch`
with the same keys), so that switching imports is enough. Downloads go through
:mod:`._download`: cached, resumable, verified and atomic. Every URL can be
overridden (the ``url``/``base_url`` parameters or the module constants below),
for mirrors and for tests against a local server.

Where the data come from is in ``../shared/reference/README.md`` of the project and
in ``data/SOURCES.md`` of the package.
"""

from __future__ import annotations

import logging
import numbers
import os
from pathlib import Path

import nibabel as nib
import pandas as pd

from .._utils.atomic import atomic_path
from .._utils.bunch import Bunch
from .._utils.text_inputs import check_text_size
from ..errors import AtlasError, ConfoundsError, DownloadError, ParameterError
from ..templates import data_path
from ._download import download_file, extract_zip_safely, forget_download
from ._msdl import read_msdl_labels_csv
from ._paths import get_data_dir

__all__ = [
    "fetch_atlas_msdl",
    "fetch_development_fmri",
    "MSDL_URL",
    "OSF_BASE_URL",
    "KNOWN_HASHES",
    "REDUCED_CONFOUNDS",
]

logger = logging.getLogger(__name__)

#: The MSDL atlas archive as distributed by its authors.
MSDL_URL = "https://team.inria.fr/parietal/files/2015/01/MSDL_rois.zip"
#: The Open Science Framework, where the development fMRI dataset is stored.
#: Files are at ``{OSF_BASE_URL}/download/{key}/``, the participants table at
#: ``{OSF_BASE_URL}/yr3av/download``.
OSF_BASE_URL = "https://osf.io"
_PARTICIPANTS_KEY = "yr3av"

#: SHA-256 of files whose content is known, by file name (``"sha256:<hex>"``).
#: The published archives come without hashes, so this starts empty: downloads
#: are then checked against the size announced by the server, and the hash seen
#: at download time guards the cached copy. Add entries to pin a mirror's files.
KNOWN_HASHES: dict[str, str] = {}

#: The 15 fMRIPrep confound columns kept by ``reduce_confounds=True`` (the seed's).
REDUCED_CONFOUNDS = (
    "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
    "framewise_displacement",
    "a_comp_cor_00", "a_comp_cor_01", "a_comp_cor_02", "a_comp_cor_03",
    "a_comp_cor_04", "a_comp_cor_05",
    "csf", "white_matter",
)

_DEV_TR = 2.0
_BOLD_NAME = "{pid}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
_CONFOUNDS_NAME = "{pid}_task-pixar_desc-confounds_regressors.tsv"
_REDUCED_NAME = "{pid}_task-pixar_desc-reducedConfounds_regressors.tsv"

_MSDL_DESCRIPTION = """\
MSDL atlas: 39 probabilistic regions of resting-state and movie-watching fMRI,
learned by multi-subject dictionary learning, grouped in 17 networks.

Keys: maps (4D NIfTI, one probabilistic map per region), labels, networks,
region_coords (MNI mm, region centres).

References: Varoquaux, Gramfort, Pedregosa, Michel, Thirion. Multi-subject
dictionary learning to segment an atlas of brain spontaneous activity. IPMI 2011.
Varoquaux & Craddock. Learning and comparing functional connectomes across
subjects. NeuroImage 2013.
Source: https://team.inria.fr/parietal/18-2/spatial_patterns/spatial-patterns-in-resting-state/
"""

_DEV_DESCRIPTION = """\
Development fMRI dataset: 155 participants (122 children aged 3-12, 33 adults)
watching a Pixar short film (Partly Cloudy). fMRIPrep-preprocessed, in
MNI152NLin2009cAsym space, downsampled to 4 mm, 168 volumes, TR = 2 s.

Keys: func (4D BOLD images), confounds (fMRIPrep confounds TSVs; with
reduce_confounds=True the seed's 15 columns), phenotypic (participants table
rows of the selected participants), t_r.

Reference: Richardson, Lisandrelli, Riobueno-Naylor, Saxe. Development of the
social brain from age three to twelve years. Nature Communications 9, 1027 (2018).
Data: https://osf.io/5hju4/ (raw: OpenNeuro ds000228). Non-commercial research use.
"""


# ------------------------------------------------------------------------- MSDL atlas

def fetch_atlas_msdl(data_dir: str | os.PathLike | None = None, url: str | None = None,
                     resume: bool = True, verbose: int = 1) -> Bunch:
    """Download (once) and load the MSDL probabilistic atlas.

    Parameters
    ----------
    data_dir : path-like, optional
        Root data folder; the atlas goes to ``<data_dir>/msdl_atlas``. Defaults
        to ``$SPARSE_CONNECTOME_DATA`` or ``~/.cache/sparse_connectome``.
    url : str, optional
        URL of ``MSDL_rois.zip`` (a mirror); defaults to :data:`MSDL_URL`.
    resume : bool, default=True
        Continue an interrupted download instead of starting again.
    verbose : int, default=1
        0 shows nothing; 1 shows download progress.

    Returns
    -------
    Bunch
        - ``maps``: str, path of the 4D NIfTI ``MSDL_rois/msdl_rois.nii``;
        - ``labels``: list of 39 str (padding stripped);
        - ``networks``: list of 39 str;
        - ``region_coords``: list of 39 ``[x, y, z]`` lists of float, MNI mm;
        - ``atlas_type`` (``"probabilistic"``), ``template`` and ``description``.

    Raises
    ------
    DownloadError
        If the archive cannot be downloaded, is corrupted, is unsafe or lacks
        the atlas files.
    AtlasError
        If the labels file is malformed or does not match the number of maps.

    Examples
    --------
    The download needs the internet (about 1 MB, once):

    >>> from sparse_connectome.datasets import fetch_atlas_msdl
    >>> atlas = fetch_atlas_msdl()  # doctest: +SKIP
    >>> len(atlas.labels), atlas.atlas_type  # doctest: +SKIP
    (39, 'probabilistic')
    """
    dataset_dir = get_data_dir(data_dir) / "msdl_atlas"
    folder = dataset_dir / "MSDL_rois"
    maps = folder / "msdl_rois.nii"
    labels_csv = folder / "msdl_rois_labels.csv"
    if not (maps.is_file() and labels_csv.is_file()):
        url = MSDL_URL if url is None else url
        archive = download_file(url, dataset_dir / "MSDL_rois.zip",
                                known_hash=KNOWN_HASHES.get("MSDL_rois.zip"),
                                resume=resume, verbose=verbose)
        try:
            extract_zip_safely(archive, dataset_dir)
        finally:
            # Extracted (or refused): either way the archive is not needed any
            # more, and a refused one must not be picked up by a later call.
            forget_download(archive)
        missing = [p.relative_to(dataset_dir).as_posix() for p in (maps, labels_csv)
                   if not p.is_file()]
        if missing:
            raise DownloadError(f"Archive MSDL_rois.zip from {url} lacks {missing}; "
                                "expected MSDL_rois/msdl_rois.nii and "
                                "MSDL_rois/msdl_rois_labels.csv")
    facts = read_msdl_labels_csv(labels_csv)
    _check_n_maps(maps, len(facts.labels))
    return Bunch(
        maps=str(maps),
        labels=list(facts.labels),
        networks=list(facts.networks),
        region_coords=[[float(v) for v in row] for row in facts.region_coords],
        atlas_type="probabilistic",
        template="MNI",
        description=_MSDL_DESCRIPTION,
    )


def _check_n_maps(maps: Path, n_labels: int) -> None:
    # Reads the header only: cheap, and catches a labels file that does not
    # belong to the maps before it misleads every plot.
    try:
        shape = nib.load(str(maps)).shape
    except Exception as exc:  # nibabel raises many types on a bad file
        raise AtlasError(f"MSDL maps {str(maps)!r} cannot be read as NIfTI: {exc}") from exc
    n_maps = shape[3] if len(shape) == 4 else 1
    if n_maps != n_labels:
        raise AtlasError(f"MSDL maps {str(maps)!r} hold {n_maps} maps (shape {shape}) but "
                         f"the labels file lists {n_labels} regions; expected equal counts")


# ------------------------------------------------------------------ development fMRI

def fetch_development_fmri(n_subjects: int | None = 1,
                           data_dir: str | os.PathLike | None = None,
                           reduce_confounds: bool = True, resume: bool = True,
                           verbose: int = 1, base_url: str | None = None) -> Bunch:
    """Download (once) and load participants of the development fMRI dataset.

    Parameters
    ----------
    n_subjects : int or None, default=1
        How many participants, between 1 and 155; None for all. The selection
        mirrors nilearn's (see Notes), so ``n_subjects=1`` gives ``sub-pixar123``,
        as in the seed.
    data_dir : path-like, optional
        Root data folder; files go to ``<data_dir>/development_fmri``.
    reduce_confounds : bool, default=True
        Return, for each participant, a TSV holding only the seed's 15 confound
        columns (:data:`REDUCED_CONFOUNDS`), written once beside the fMRIPrep
        file as ``<participant>_task-pixar_desc-reducedConfounds_regressors.tsv``.
        Missing values stay ``n/a``. False returns the fMRIPrep files.
    resume : bool, default=True
        Continue interrupted downloads instead of starting again.
    verbose : int, default=1
        0 shows nothing; 1 shows download progress.
    base_url : str, optional
        Root of an OSF mirror: files are fetched from ``{base_url}/download/{key}/``
        and the participants table from ``{base_url}/yr3av/download``. Defaults
        to :data:`OSF_BASE_URL`.

    Returns
    -------
    Bunch
        - ``func``: list of str, paths of the 4D BOLD images;
        - ``confounds``: list of str, paths of the confounds TSVs;
        - ``phenotypic``: pandas.DataFrame, the participants table rows of the
          selected participants, in the order of ``func``;
        - ``t_r``: 2.0;
        - ``description``: str.

    Raises
    ------
    ParameterError
        If ``n_subjects`` is not None or an integer between 1 and 155.
    DownloadError
        If a file cannot be downloaded or the participants table is malformed.
    ConfoundsError
        If a confounds file lacks one of the 15 reduced columns.

    Notes
    -----
    Selection (observed from nilearn's ``fetch_development_fmri`` with
    ``age_group="both"``, run as a black box): adults and children keep their
    proportion in the participants table, with at least one adult:
    ``n_adults = max(1, round(n_subjects * 33 / 155))`` and the rest children.
    Within each group the first participants in table order are taken. The
    chosen rows are then ordered by ``Child_Adult`` (adults first) with pandas'
    default sort, as nilearn does, so ``func[i]`` is the same participant as in
    nilearn for every ``n_subjects``. nilearn replaces an out-of-range
    ``n_subjects`` by 155 with a warning; here it is an error.

    Examples
    --------
    The download needs the internet (about 30 MB per participant, once):

    >>> from sparse_connectome.datasets import fetch_development_fmri
    >>> data = fetch_development_fmri(n_subjects=1)  # doctest: +SKIP
    >>> data.phenotypic["participant_id"].tolist(), data.t_r  # doctest: +SKIP
    (['sub-pixar123'], 2.0)

    A bad ``n_subjects`` is refused before anything is downloaded:

    >>> import tempfile
    >>> fetch_development_fmri(n_subjects=0, data_dir=tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: n_subjects...
    """
    base = (OSF_BASE_URL if base_url is None else base_url).rstrip("/")
    dataset_dir = get_data_dir(data_dir) / "development_fmri"
    keys = _osf_keys()
    n_subjects = _check_n_subjects(n_subjects, len(keys))

    table_url = f"{base}/{_PARTICIPANTS_KEY}/download"
    table_path = download_file(table_url, dataset_dir / "participants.tsv",
                               known_hash=KNOWN_HASHES.get("participants.tsv"),
                               resume=resume, verbose=verbose)
    table = _read_participants(table_path, table_url, set(keys))
    selected = _select_participants(table, n_subjects)

    func, confounds = [], []
    for pid in selected["participant_id"]:
        key_r, key_b = keys[pid]
        names = (_CONFOUNDS_NAME.format(pid=pid), _BOLD_NAME.format(pid=pid))
        paths = [
            download_file(f"{base}/download/{key}/", dataset_dir / name,
                          known_hash=KNOWN_HASHES.get(name), resume=resume, verbose=verbose)
            for key, name in zip((key_r, key_b), names)
        ]
        regressors, bold = paths
        if reduce_confounds:
            regressors = _reduce_confounds(regressors, dataset_dir / _REDUCED_NAME.format(pid=pid))
        func.append(str(bold))
        confounds.append(str(regressors))
    return Bunch(func=func, confounds=confounds, phenotypic=selected, t_r=_DEV_TR,
                 description=_DEV_DESCRIPTION)


def _osf_keys() -> dict[str, tuple[str, str]]:
    """participant_id -> (confounds key, bold key), from the bundled CSV."""
    table = pd.read_csv(data_path("development_fmri_osf_keys.csv"), dtype=str)
    return {row.participant_id: (row.key_r, row.key_b) for row in table.itertuples()}


def _check_n_subjects(n_subjects, n_max: int) -> int | None:
    if n_subjects is None:
        return None
    value = n_subjects
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not 1 <= value <= n_max:
        raise ParameterError(f"n_subjects={n_subjects!r} is not valid; expected None "
                             f"(all participants) or an integer from 1 to {n_max}")
    return int(value)


def _read_participants(path: Path, url: str, known_ids: set[str]) -> pd.DataFrame:
    try:
        check_text_size(path, "participants", "participants table")  # a ValueError
        table = pd.read_csv(path, sep="\t")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        forget_download(path)
        raise DownloadError(f"Participants table {path} (from {url}) cannot be read as "
                            f"TSV ({exc}); it was removed, call again to download it") from exc
    required = {"participant_id", "Child_Adult"}
    if not required <= set(table.columns):
        forget_download(path)
        raise DownloadError(f"Participants table {path} (from {url}) has columns "
                            f"{list(table.columns)}; expected at least {sorted(required)}. "
                            "It was removed; call again to download it")
    # Only participants whose files are known can be fetched.
    return table[table["participant_id"].isin(known_ids)]


def _select_participants(table: pd.DataFrame, n_subjects: int | None) -> pd.DataFrame:
    """Rows of the participants to fetch, in the order nilearn returns them."""
    group = table["Child_Adult"].astype(str).str.strip().str.lower()
    adults = table.index[group == "adult"]
    children = table.index[group != "adult"]
    if n_subjects is None or n_subjects >= len(table):
        chosen = table.index
    else:
        n_adults = max(1, round(n_subjects * len(adults) / len(table)))
        n_adults = min(n_adults, len(adults), n_subjects)
        n_children = min(n_subjects - n_adults, len(children))
        n_adults = min(n_subjects - n_children, len(adults))
        picked = set(adults[:n_adults]) | set(children[:n_children])
        chosen = [i for i in table.index if i in picked]
    # pandas' default (quicksort) order is kept on purpose: it is what nilearn
    # returns, so participants are listed in the same order as in the seed.
    return table.loc[chosen].sort_values("Child_Adult")


def _reduce_confounds(source: Path, target: Path) -> Path:
    """Write (once) the 15 reduced columns of an fMRIPrep confounds file."""
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    check_text_size(source, "confounds", "Confounds file", ConfoundsError)
    try:
        table = pd.read_csv(source, sep="\t", na_values=["n/a"])
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConfoundsError(f"Confounds file {source} cannot be read as TSV: {exc}") from exc
    missing = [c for c in REDUCED_CONFOUNDS if c not in table.columns]
    if missing:
        raise ConfoundsError(f"Confounds file {source} lacks the columns {missing}; "
                             f"expected the fMRIPrep columns {list(REDUCED_CONFOUNDS)}")
    with atomic_path(target) as tmp:
        table.loc[:, list(REDUCED_CONFOUNDS)].to_csv(tmp, sep="\t", index=False, na_rep="n/a")
    return target
