"""Selection rules of fMRIPrep confounds: column names per noise component,
CompCor components from the JSON sidecar, and censoring (non-steady-state
volumes, scrubbing by framewise displacement / standardized DVARS with a
minimum segment length).

Pure functions on tables and dicts; :mod:`sparse_connectome.confounds` does the
file handling and the parameter checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfoundsError

__all__ = ["MOTION_BASE", "expand", "compcor_columns", "censored_volumes"]

MOTION_BASE = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_SUFFIXES = {
    "basic": ("",),
    "power2": ("", "_power2"),
    "derivatives": ("", "_derivative1"),
    "full": ("", "_derivative1", "_power2", "_derivative1_power2"),
}


def expand(bases: Sequence[str], expansion: str) -> list[str]:
    """Column names of a component expansion: ``trans_x`` -> ``trans_x_power2``..."""
    return [base + suffix for base in bases for suffix in _SUFFIXES[expansion]]


def _by_index(names: list[str]) -> list[str]:
    def key(name: str) -> tuple[str, int, str]:
        match = re.match(r"^(.*?)(\d+)$", name)
        return (match.group(1), int(match.group(2)), name) if match else (name, -1, name)

    return sorted(names, key=key)


def compcor_columns(meta: dict, compcor: str, n_compcor: int | str) -> list[str]:
    """CompCor components listed in the sidecar, by type, first ``n_compcor`` each."""
    def mask_of(key: str) -> str:
        info = meta.get(key)
        return str(info.get("Mask", "")) if isinstance(info, dict) else ""

    keys = [k for k in meta if isinstance(k, str)]
    groups: list[list[str]] = []
    if compcor in ("anat_combined", "temporal_anat_combined"):
        groups.append(
            [k for k in keys if k.startswith("a_comp_cor") and mask_of(k) in ("combined", "")]
        )
    if compcor in ("anat_separated", "temporal_anat_separated"):
        # fMRIPrep >= 20.2 names the mask in the prefix (c_/w_comp_cor); older
        # versions call every anatomical component a_comp_cor and give the mask
        # in the sidecar.
        groups.append(
            [k for k in keys if k.startswith("c_comp_cor")]
            + [k for k in keys if k.startswith("a_comp_cor") and mask_of(k) == "CSF"]
        )
        groups.append(
            [k for k in keys if k.startswith("w_comp_cor")]
            + [k for k in keys if k.startswith("a_comp_cor") and mask_of(k) == "WM"]
        )
    if compcor.startswith("temporal"):
        groups.append([k for k in keys if k.startswith("t_comp_cor")])
    selected: list[str] = []
    for group in groups:
        group = _by_index(group)
        selected.extend(group if n_compcor == "all" else group[: int(n_compcor)])
    return selected


def _column(frame: pd.DataFrame, name: str, tsv: Path, why: str) -> np.ndarray:
    if name not in frame.columns:
        raise ConfoundsError(
            f"confounds file {str(tsv)!r} lacks the column {name!r} needed for {why}."
        )
    return _numeric(frame, name, tsv)


def _numeric(frame: pd.DataFrame, name: str, tsv: Path) -> np.ndarray:
    try:
        return frame[name].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfoundsError(f"confounds file {str(tsv)!r}: column {name!r} is not numeric "
                             f"({exc}); expected numbers or 'n/a'.") from None


def _short_segments(outlier: np.ndarray, min_length: int) -> np.ndarray:
    """Mark every run of non-outlier volumes shorter than ``min_length``."""
    flags = np.zeros_like(outlier)
    if min_length <= 0:
        return flags
    padded = np.r_[True, outlier, True].astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == -1)  # first volume of a kept run
    stops = np.flatnonzero(edges == 1)  # one past its last volume
    for start, stop in zip(starts, stops):
        if stop - start < min_length:
            flags[start:stop] = True
    return flags


def censored_volumes(
    frame: pd.DataFrame,
    tsv: Path,
    strategy: tuple[str, ...],
    scrub: int,
    fd_threshold: float,
    std_dvars_threshold: float,
) -> np.ndarray:
    n = frame.shape[0]
    motion_outliers = np.zeros(n, dtype=bool)
    if "scrub" in strategy:
        fd = _column(frame, "framewise_displacement", tsv, "scrubbing")
        dvars = _column(frame, "std_dvars", tsv, "scrubbing")
        with np.errstate(invalid="ignore"):
            # n/a (the first volume) is never an outlier.
            motion_outliers = (fd > fd_threshold) | (dvars > std_dvars_threshold)
        # Segments are cut by motion outliers only; non-steady-state volumes
        # count as part of a segment (they are removed afterwards).
        motion_outliers |= _short_segments(motion_outliers, scrub)
    non_steady = np.zeros(n, dtype=bool)
    for name in frame.columns:
        if str(name).startswith("non_steady_state_outlier"):
            non_steady |= _numeric(frame, name, tsv) == 1
    return motion_outliers | non_steady
