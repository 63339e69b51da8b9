"""fMRIPrep confounds: reading the TSV files and the standard denoising strategies.

:func:`load_confounds` and :func:`load_confounds_strategy` follow the
interface and the semantics of ``nilearn.interfaces.fmriprep`` (0.14):

* the confounds file is found next to the BOLD image, named after it the
  fMRIPrep way (``<entities>_desc-confounds_timeseries.tsv``, or the older
  ``_desc-confounds_regressors.tsv``), with its JSON sidecar for CompCor;
* noise components are picked by name (``motion``, ``wm_csf``,
  ``global_signal``, ``compcor``, ``high_pass``, ``ica_aroma``), each with its
  expansion (``basic``, ``power2``, ``derivatives``, ``full``);
* ``n/a`` in the first row (derivatives have no value at t=0) is replaced by
  the value of the second row;
* non-steady-state volumes are always censored; ``scrub`` censors volumes
  whose framewise displacement or standardized DVARS exceeds its threshold,
  then every run of kept volumes shorter than ``scrub`` volumes;
* ``demean`` subtracts the mean over the kept volumes; columns are returned in
  alphabetical order.

The returned ``sample_mask`` (indices of kept volumes, or None when nothing is
censored) is meant for :func:`sparse_connectome.signal.clean` or a masker.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils.text_inputs import check_text_size
from ..errors import ConfoundsError, DataWarning, InputError, ParameterError
from ._fmriprep_rules import MOTION_BASE, censored_volumes, compcor_columns, expand

__all__ = ["read_confounds_tsv", "load_confounds", "load_confounds_strategy", "find_confounds_file"]

logger = logging.getLogger(__name__)

COMPONENTS = (
    "motion",
    "high_pass",
    "wm_csf",
    "global_signal",
    "compcor",
    "ica_aroma",
    "scrub",
    "non_steady_state",
)
EXPANSIONS = ("basic", "power2", "derivatives", "full")
COMPCOR_CHOICES = (
    "anat_combined",
    "anat_separated",
    "temporal",
    "temporal_anat_combined",
    "temporal_anat_separated",
)
# Entities that the BOLD file has and its confounds file has not.
_DROPPED_ENTITIES = ("space", "res", "den", "desc", "cohort", "hemi")

#: Preset strategies: fixed components, default parameters, and the parameters
#: a user may override (same table as nilearn's load_confounds_strategy).
PRESETS: dict[str, dict[str, Any]] = {
    "simple": {
        "strategy": ("high_pass", "motion", "wm_csf"),
        "defaults": {"motion": "full", "wm_csf": "basic", "global_signal": None, "demean": True},
        "accepted": ("motion", "wm_csf", "global_signal", "demean"),
    },
    "scrubbing": {
        "strategy": ("high_pass", "motion", "wm_csf", "scrub"),
        "defaults": {
            "motion": "full",
            "wm_csf": "full",
            "scrub": 5,
            "fd_threshold": 0.5,
            "std_dvars_threshold": 1.5,
            "global_signal": None,
            "demean": True,
        },
        "accepted": (
            "motion",
            "wm_csf",
            "scrub",
            "fd_threshold",
            "std_dvars_threshold",
            "global_signal",
            "demean",
        ),
    },
    "compcor": {
        "strategy": ("high_pass", "motion", "compcor"),
        "defaults": {
            "motion": "full",
            "n_compcor": "all",
            "compcor": "anat_combined",
            "global_signal": None,
            "demean": True,
        },
        "accepted": ("motion", "n_compcor", "compcor", "global_signal", "demean"),
    },
    "ica_aroma": {
        "strategy": ("high_pass", "wm_csf", "ica_aroma"),
        "defaults": {"wm_csf": "basic", "ica_aroma": "full", "global_signal": None, "demean": True},
        "accepted": ("wm_csf", "global_signal", "demean"),
    },
}


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------
def read_confounds_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read an fMRIPrep confounds TSV (tab-separated, header row, ``n/a`` = NaN).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    pandas.DataFrame, one column per confound, float64 where numeric.

    Raises
    ------
    ConfoundsError
        The file is missing, unreadable, empty or not a table.

    Examples
    --------
    >>> from sparse_connectome.confounds import find_confounds_file, read_confounds_tsv
    >>> from sparse_connectome.datasets import load_demo
    >>> table = read_confounds_tsv(find_confounds_file(load_demo().func[0]))
    >>> table.shape  # one row per volume
    (168, 78)
    >>> "framewise_displacement" in table.columns
    True
    >>> bool(table["framewise_displacement"].isna()[0])  # "n/a" in the file
    True
    """
    path = Path(path)
    if not path.is_file():
        raise ConfoundsError(f"confounds file {str(path)!r} does not exist or is not a file.")
    check_text_size(path, "confounds", "confounds file", ConfoundsError)
    try:
        frame = pd.read_csv(path, sep="\t", na_values=["n/a", "N/A"], keep_default_na=True)
    except pd.errors.EmptyDataError as exc:
        raise ConfoundsError(f"confounds file {str(path)!r} is empty; expected a TSV table.") from exc
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise ConfoundsError(
            f"confounds file {str(path)!r} cannot be read as a tab-separated table: {exc}"
        ) from exc
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise ConfoundsError(
            f"confounds file {str(path)!r} has {frame.shape[0]} rows and {frame.shape[1]} "
            "columns; expected a header row and one row per volume."
        )
    return frame


def _image_path(img: Any) -> Path:
    """The path that names the run (first file of a GIFTI hemisphere pair)."""
    if isinstance(img, (list, tuple)):
        if not img:
            raise InputError("img_files holds an empty list; expected paths to BOLD images.")
        img = img[0]
    if not isinstance(img, (str, os.PathLike)):
        raise InputError(
            f"img_files must be paths to fMRIPrep BOLD images; got {type(img).__name__}."
        )
    return Path(img)


def find_confounds_file(img: str | os.PathLike) -> Path:
    """Locate the confounds TSV of an fMRIPrep BOLD image (same folder).

    ``sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`` has
    ``sub-01_task-rest_desc-confounds_timeseries.tsv`` (fMRIPrep >= 20.0) or
    ``sub-01_task-rest_desc-confounds_regressors.tsv`` (older) as confounds.

    Raises
    ------
    ConfoundsError
        No such file; the message lists the names tried.

    Examples
    --------
    >>> from sparse_connectome.confounds import find_confounds_file
    >>> from sparse_connectome.datasets import load_demo
    >>> bold = load_demo().func[0]
    >>> bold.rsplit("/", 1)[-1]
    'sub-demo_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz'
    >>> find_confounds_file(bold).name
    'sub-demo_task-rest_desc-confounds_timeseries.tsv'
    """
    img = _image_path(img)
    name = img.name
    parts = name.split("_")
    if len(parts) < 2 or not parts[0].startswith("sub-"):
        raise InputError(
            f"{str(img)!r} is not a BIDS/fMRIPrep file name (expected 'sub-<label>_..._bold.nii.gz'); "
            "load_confounds finds the confounds file from the image name."
        )
    entities = [p for p in parts[:-1] if p.split("-", 1)[0] not in _DROPPED_ENTITIES]
    stem = "_".join(entities)
    tried = []
    for suffix in ("timeseries", "regressors"):
        candidate = img.parent / f"{stem}_desc-confounds_{suffix}.tsv"
        tried.append(candidate.name)
        if candidate.is_file():
            return candidate
    raise ConfoundsError(
        f"no fMRIPrep confounds file found for image {str(img)!r}: tried {tried} in folder "
        f"{str(img.parent)!r}. The confounds TSV must sit next to the BOLD image."
    )


def _read_sidecar(tsv: Path) -> dict | None:
    sidecar = tsv.with_suffix(".json")
    if not sidecar.is_file():
        return None
    check_text_size(sidecar, "json", "confounds sidecar", ConfoundsError)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfoundsError(f"confounds sidecar {str(sidecar)!r} is nested too deeply to be "
                             "read; expected a JSON object of CompCor components") from None
    except (OSError, ValueError) as exc:  # also UnicodeDecodeError, over-long integers
        raise ConfoundsError(f"confounds sidecar {str(sidecar)!r} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ConfoundsError(
            f"confounds sidecar {str(sidecar)!r} holds a {type(meta).__name__}; expected an object."
        )
    return meta


# --------------------------------------------------------------------------------------
# Column selection
# --------------------------------------------------------------------------------------
def _select_columns(
    frame: pd.DataFrame,
    tsv: Path,
    img: Path,
    strategy: tuple[str, ...],
    motion: str,
    wm_csf: str,
    global_signal: str,
    compcor: str,
    n_compcor: int | str,
    ica_aroma: str,
) -> list[str]:
    columns = list(frame.columns)
    wanted: list[str] = []
    if "high_pass" in strategy:
        wanted += [c for c in columns if c.startswith("cosine")]
    if "motion" in strategy:
        wanted += expand(MOTION_BASE, motion)
    if "wm_csf" in strategy:
        wanted += expand(("csf", "white_matter"), wm_csf)
    if "global_signal" in strategy:
        wanted += expand(("global_signal",), global_signal)
    if "compcor" in strategy:
        meta = _read_sidecar(tsv)
        if meta is None:
            raise ConfoundsError(
                f"CompCor needs the JSON sidecar {str(tsv.with_suffix('.json'))!r} of the "
                "confounds file (fMRIPrep >= 1.4), which is missing."
            )
        picked = compcor_columns(meta, compcor, n_compcor)
        if not picked:
            raise ConfoundsError(
                f"the sidecar {str(tsv.with_suffix('.json'))!r} lists no CompCor component of "
                f"type compcor={compcor!r}; expected entries such as 'a_comp_cor_00'."
            )
        wanted += picked
    if "ica_aroma" in strategy:
        if ica_aroma == "full":
            if "desc-smoothAROMAnonaggr" not in img.name:
                raise InputError(
                    f"ica_aroma='full' needs the ICA-AROMA denoised image "
                    f"('..._desc-smoothAROMAnonaggr_bold.nii.gz'); got {img.name!r}."
                )
            # The image is already denoised by AROMA: no regressor to add.
        else:
            aroma = [c for c in columns if c.startswith("aroma_motion_")]
            if not aroma:
                raise ConfoundsError(
                    f"confounds file {str(tsv)!r} has no 'aroma_motion_*' column; "
                    "ica_aroma='basic' needs fMRIPrep run with --use-aroma."
                )
            wanted += aroma
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ConfoundsError(
            f"confounds file {str(tsv)!r} lacks the column(s) {missing} needed by "
            f"strategy={strategy!r}; choose another strategy or expansion (e.g. "
            "motion='basic'), or check that the file comes from fMRIPrep."
        )
    # Unique, in the order asked for; alphabetical order is applied at the end.
    return list(dict.fromkeys(wanted))


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def _check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not valid; expected one of {list(choices)}.")


def _check_parameters(
    strategy, motion, scrub, fd_threshold, std_dvars_threshold, wm_csf, global_signal,
    compcor, n_compcor, ica_aroma,
) -> tuple[str, ...]:
    if isinstance(strategy, str) or not isinstance(strategy, (tuple, list)):
        raise ParameterError(
            f"strategy must be a tuple or list of component names; got {strategy!r} "
            f"(e.g. strategy=({strategy!r},))."
        )
    for item in strategy:
        if item == "tedana":
            raise ParameterError(
                "strategy 'tedana' is not supported by sparse_connectome; expected components "
                f"among {list(COMPONENTS)}."
            )
        _check_choice(item, "strategy", COMPONENTS)
    strategy = tuple(strategy)
    if "non_steady_state" in strategy:
        warnings.warn(
            "non-steady-state volumes are always censored; 'non_steady_state' in strategy "
            "has no further effect.",
            UserWarning,
            stacklevel=3,
        )
    if "compcor" in strategy and "high_pass" not in strategy:
        raise ParameterError(
            f"strategy={strategy!r}: 'compcor' needs 'high_pass' too (fMRIPrep computes "
            "CompCor on high-pass filtered data, so the cosine regressors must be removed)."
        )
    _check_choice(motion, "motion", EXPANSIONS)
    _check_choice(wm_csf, "wm_csf", EXPANSIONS)
    _check_choice(global_signal, "global_signal", EXPANSIONS)
    _check_choice(compcor, "compcor", COMPCOR_CHOICES)
    _check_choice(ica_aroma, "ica_aroma", ("full", "basic"))
    if n_compcor != "all" and (
        isinstance(n_compcor, bool) or not isinstance(n_compcor, numbers.Integral) or n_compcor < 1
    ):
        raise ParameterError(f"n_compcor must be 'all' or a positive integer; got {n_compcor!r}.")
    if isinstance(scrub, bool) or not isinstance(scrub, numbers.Integral) or scrub < 0:
        raise ParameterError(
            f"scrub (minimum length of a kept segment) must be an integer >= 0; got {scrub!r}."
        )
    thresholds = ((fd_threshold, "fd_threshold"), (std_dvars_threshold, "std_dvars_threshold"))
    for value, name in thresholds:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ParameterError(f"{name} must be a finite number; got {value!r}.")
    return strategy


def _load_one(
    img: Any, strategy: tuple[str, ...], options: dict
) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    img_path = _image_path(img)
    tsv = find_confounds_file(img_path)
    frame = read_confounds_tsv(tsv)
    columns = _select_columns(
        frame,
        tsv,
        img_path,
        strategy,
        options["motion"],
        options["wm_csf"],
        options["global_signal"],
        options["compcor"],
        options["n_compcor"],
        options["ica_aroma"],
    )
    censored = censored_volumes(
        frame, tsv, strategy, int(options["scrub"]), options["fd_threshold"],
        options["std_dvars_threshold"],
    )
    if censored.all():
        warnings.warn(
            f"every volume of {img_path.name!r} is a motion outlier or non-steady-state: "
            "the sample mask is empty. Relax fd_threshold/std_dvars_threshold/scrub.",
            DataWarning,
            stacklevel=3,
        )
    sample_mask = np.flatnonzero(~censored).astype(np.int64) if censored.any() else None

    if not columns:
        return None, sample_mask
    try:
        confounds = frame[columns].astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfoundsError(
            f"confounds file {str(tsv)!r}: the columns {columns} are not all numeric."
        ) from exc
    if confounds.shape[0] > 1:
        # Derivatives have no value at the first volume: fMRIPrep writes n/a,
        # which takes the value of the second volume.
        confounds.iloc[0] = confounds.iloc[0].fillna(confounds.iloc[1])
    still_nan = [c for c in confounds.columns if confounds[c].isna().any()]
    if still_nan:
        warnings.warn(
            f"confounds file {str(tsv)!r}: column(s) {still_nan} still hold n/a after filling "
            "the first volume; clean() will refuse them.",
            DataWarning,
            stacklevel=3,
        )
    if options["demean"]:
        rows = confounds if sample_mask is None else confounds.iloc[sample_mask]
        confounds = confounds - rows.mean()
    confounds = confounds[sorted(confounds.columns)]
    return confounds, sample_mask


def load_confounds(
    img_files: str | os.PathLike | Sequence[Any],
    strategy: Sequence[str] = ("motion", "high_pass", "wm_csf"),
    motion: str = "full",
    scrub: int = 5,
    fd_threshold: float = 0.5,
    std_dvars_threshold: float = 1.5,
    wm_csf: str = "basic",
    global_signal: str = "basic",
    compcor: str = "anat_combined",
    n_compcor: int | str = "all",
    ica_aroma: str = "full",
    demean: bool = True,
) -> tuple[pd.DataFrame | None | list, np.ndarray | None | list]:
    """Select fMRIPrep confounds by noise component, and the volumes to keep.

    Parameters
    ----------
    img_files : path, or list of paths
        fMRIPrep preprocessed BOLD image(s) (``..._desc-preproc_bold.nii.gz``);
        the confounds TSV (and JSON sidecar) must be in the same folder. A pair
        of GIFTI hemispheres may be given as a 2-item list.
    strategy : tuple of str, default=("motion", "high_pass", "wm_csf")
        Components among 'motion', 'high_pass' (cosine drift regressors),
        'wm_csf', 'global_signal', 'compcor' (needs 'high_pass'), 'ica_aroma',
        'scrub'. Non-steady-state volumes are always censored.
    motion, wm_csf, global_signal : {'basic', 'power2', 'derivatives', 'full'}
        Expansion of the component: the series, + squares, + derivatives,
        or all four (series, derivative, square, squared derivative).
    scrub : int, default=5
        Minimum length of a segment of kept volumes; shorter ones are censored
        too (0: censor the outliers only).
    fd_threshold : float, default=0.5
        Framewise displacement (mm) above which a volume is censored.
    std_dvars_threshold : float, default=1.5
        Standardized DVARS above which a volume is censored.
    compcor : str, default='anat_combined'
        'anat_combined', 'anat_separated' (CSF and WM components),
        'temporal', 'temporal_anat_combined', 'temporal_anat_separated'.
    n_compcor : int or 'all', default='all'
        Components kept per mask ('all': every component in the sidecar).
    ica_aroma : {'full', 'basic'}, default='full'
        'full': the image is fMRIPrep's AROMA-denoised output
        (``desc-smoothAROMAnonaggr``); no regressor is added. 'basic': the
        noise components ``aroma_motion_*`` are added as regressors.
    demean : bool, default=True
        Subtract from each confound its mean over the kept volumes.

    Returns
    -------
    confounds : DataFrame (n_volumes, n_confounds), None if ``strategy`` is
        empty; a list for a list of images.
    sample_mask : int ndarray of kept volume indices, None if nothing is
        censored; a list for a list of images.

    Raises
    ------
    ParameterError, InputError, ConfoundsError

    Examples
    --------
    >>> from sparse_connectome.confounds import load_confounds
    >>> from sparse_connectome.datasets import load_demo
    >>> bold = load_demo().func[0]
    >>> confounds, sample_mask = load_confounds(bold, strategy=("motion",), motion="basic")
    >>> sorted(confounds.columns)
    ['rot_x', 'rot_y', 'rot_z', 'trans_x', 'trans_y', 'trans_z']
    >>> sample_mask is None  # nothing censored without 'scrub'
    True
    >>> confounds, sample_mask = load_confounds(bold)  # motion (full), cosines, wm_csf
    >>> confounds.shape
    (168, 30)
    """
    strategy = _check_parameters(
        strategy, motion, scrub, fd_threshold, std_dvars_threshold, wm_csf, global_signal,
        compcor, n_compcor, ica_aroma,
    )
    if not strategy:
        warnings.warn(
            "strategy is empty: no confounds are returned (None).", UserWarning, stacklevel=2
        )
    options = dict(
        motion=motion,
        scrub=scrub,
        fd_threshold=float(fd_threshold),
        std_dvars_threshold=float(std_dvars_threshold),
        wm_csf=wm_csf,
        global_signal=global_signal,
        compcor=compcor,
        n_compcor=n_compcor,
        ica_aroma=ica_aroma,
        demean=bool(demean),
    )
    single = isinstance(img_files, (str, os.PathLike)) or (
        isinstance(img_files, (list, tuple))
        and len(img_files) == 2
        and all(isinstance(p, (str, os.PathLike)) for p in img_files)
        and all(str(p).endswith(".func.gii") for p in img_files)
    )
    if single:
        return _load_one(img_files, strategy, options)
    if not isinstance(img_files, (list, tuple)) or len(img_files) == 0:
        raise InputError(
            f"img_files must be a path or a non-empty list of paths; got {img_files!r}."
        )
    results = [_load_one(img, strategy, options) for img in img_files]
    return [r[0] for r in results], [r[1] for r in results]


def load_confounds_strategy(
    img_files: str | os.PathLike | Sequence[Any],
    denoise_strategy: str = "simple",
    **kwargs: Any,
) -> tuple[pd.DataFrame | None | list, np.ndarray | None | list]:
    """fMRIPrep confounds for a preset denoising strategy.

    Presets (parameters marked * may be overridden through ``kwargs``):

    ============ =================================== =========================================
    preset       components                          defaults
    ============ =================================== =========================================
    simple       high_pass, motion, wm_csf           motion*='full', wm_csf*='basic'
    scrubbing    high_pass, motion, wm_csf, scrub    motion*='full', wm_csf*='full', scrub*=5,
                                                     fd_threshold*=0.5, std_dvars_threshold*=1.5
    compcor      high_pass, motion, compcor          motion*='full', compcor*='anat_combined',
                                                     n_compcor*='all'
    ica_aroma    high_pass, wm_csf, ica_aroma        wm_csf*='basic', ica_aroma='full'
    ============ =================================== =========================================

    Every preset also accepts ``global_signal`` (adds the global signal with
    that expansion) and ``demean`` (default True). Other keyword arguments are
    ignored with a warning.

    Returns
    -------
    Same as :func:`load_confounds`.

    Examples
    --------
    >>> from sparse_connectome.confounds import load_confounds_strategy
    >>> from sparse_connectome.datasets import load_demo
    >>> bold = load_demo().func[0]
    >>> confounds, sample_mask = load_confounds_strategy(bold, "scrubbing")
    >>> confounds.shape  # every volume keeps a row
    (168, 36)
    >>> len(sample_mask)  # high-motion volumes (and short segments) are left out
    153
    """
    if denoise_strategy not in PRESETS:
        raise ParameterError(
            f"denoise_strategy={denoise_strategy!r} is not a preset; expected one of "
            f"{list(PRESETS)}."
        )
    preset = PRESETS[denoise_strategy]
    ignored = [k for k in kwargs if k not in preset["accepted"]]
    if ignored:
        warnings.warn(
            f"parameter(s) {ignored} are not used by the preset {denoise_strategy!r} and are "
            f"ignored; it accepts {list(preset['accepted'])}.",
            UserWarning,
            stacklevel=2,
        )
    params = dict(preset["defaults"])
    params.update({k: v for k, v in kwargs.items() if k in preset["accepted"]})
    strategy = list(preset["strategy"])
    global_signal = params.pop("global_signal", None)
    if global_signal is not None:
        strategy.append("global_signal")
        params["global_signal"] = global_signal
    return load_confounds(img_files, strategy=tuple(strategy), **params)
