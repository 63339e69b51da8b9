"""The confounds an fMRIPrep run would report, computed from a simulated image."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, ShapeMismatchError
from .bold import cosine_drift_basis, framewise_displacement
from .regions import MOTION_COLUMNS

logger = logging.getLogger(__name__)


def _highpass(data: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """Residuals of ``data`` after projecting out a constant and the cosine basis."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(data.shape[0]), drift]))
    return data - q @ (q.T @ data)


def _compcor(data: np.ndarray, drift: np.ndarray, n_components: int):
    """Principal components of high-passed, variance-normalised voxel time series."""
    resid = _highpass(data, drift)
    std = resid.std(axis=0)
    resid = resid[:, std > 0] / std[std > 0]
    # The left singular vectors are the eigenvectors of the small (time x time)
    # Gram matrix: far cheaper than an SVD of the (time x voxels) array.
    evals, evecs = np.linalg.eigh(resid @ resid.T)
    order = np.argsort(evals)[::-1]
    evals, u = np.clip(evals[order], 0.0, None), evecs[:, order]
    # A fixed sign convention, so that the output does not depend on the LAPACK build.
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    u = u * np.where(signs == 0, 1.0, signs)
    var = evals / np.sum(evals)
    k = min(int(n_components), u.shape[1])
    return u[:, :k], np.sqrt(evals[:k]), var[:k], np.cumsum(var)[:k]


def _dvars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and its standardised form (Nichols 2017), after scaling to median 1000."""
    scaled = data * (1000.0 / np.median(data.mean(axis=0)))
    diff = np.diff(scaled, axis=0)
    dvars = np.sqrt(np.mean(diff**2, axis=1))
    q75, q25 = np.percentile(scaled, [75, 25], axis=0)
    robust_sd = (q75 - q25) / 1.349
    centred = scaled - scaled.mean(axis=0)
    denom = np.sum(centred**2, axis=0)
    ar1 = np.where(denom > 0, np.sum(centred[1:] * centred[:-1], axis=0)
                   / np.where(denom > 0, denom, 1.0), 0.0)
    expected = np.sqrt(np.mean(2.0 * (1.0 - ar1) * robust_sd**2))
    nan = np.array([np.nan])
    return np.concatenate([nan, dvars]), np.concatenate([nan, dvars / expected])


def _expand(name: str, x: np.ndarray, order: Sequence[str]) -> dict[str, np.ndarray]:
    d = np.concatenate([[np.nan], np.diff(x)])
    terms = {"": x, "_derivative1": d, "_power2": x**2, "_derivative1_power2": d**2}
    return {name + suffix: terms[suffix] for suffix in order}


def compute_confounds(
    bold: np.ndarray,
    tissues: tuple[np.ndarray, np.ndarray, np.ndarray],
    motion: np.ndarray,
    t_r: float,
    *,
    n_compcor: int = 8,
    n_tissue_compcor: int = 5,
    n_tcompcor: int = 6,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
) -> tuple[pd.DataFrame, dict]:
    """The confounds table and its sidecar, computed from a 4D image like fMRIPrep.

    Parameters
    ----------
    bold : ndarray of shape (*grid, n_samples)
    tissues : (gm, wm, csf)
        Tissue fractions on the grid. CSF and white-matter masks keep the voxels
        mostly made of that tissue; the brain mask is where the fractions sum to 1.
    motion : ndarray of shape (n_samples, 6)
    t_r : float
    n_compcor, n_tissue_compcor, n_tcompcor : int
        Number of combined (``a_comp_cor``), per-tissue (``c_comp_cor``,
        ``w_comp_cor``) and temporal (``t_comp_cor``) components.
    fd_threshold, dvars_threshold : float
        Thresholds of the ``motion_outlierXX`` spike regressors (fMRIPrep's defaults).

    Returns
    -------
    confounds : pandas.DataFrame
        fMRIPrep column names, NaN where fMRIPrep writes ``n/a``.
    sidecar : dict
        The JSON sidecar's content: one entry per CompCor component.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome import simulate
    >>> mask = ((np.indices((16, 16, 16)) - 7.5) ** 2).sum(axis=0) < 49
    >>> affine = np.diag([6.0, 6.0, 6.0, 1.0])
    >>> affine[:3, 3] = -45
    >>> tissues = simulate.tissue_probabilities(mask, 0.1 * mask, affine)
    >>> maps = simulate.make_blob_maps([[-20, 0, 0], [20, 0, 0]], mask.shape, affine, mask)
    >>> signals = np.random.default_rng(0).standard_normal((30, 2))
    >>> motion = simulate.make_motion(30, n_spikes=1, random_state=0)
    >>> sim = simulate.simulate_bold(signals, maps, tissues, affine, motion.params,
    ...                              spikes=motion.spikes, random_state=0)
    >>> confounds, sidecar = simulate.compute_confounds(sim.bold, tissues, motion.params, t_r=2.0)
    >>> confounds.shape[0]
    30
    >>> bool(np.allclose(confounds["trans_x"], motion.params[:, 0]))
    True
    >>> sidecar["a_comp_cor_00"]["Method"], sidecar["a_comp_cor_00"]["Mask"]
    ('aCompCor', 'combined')
    """
    bold = np.asarray(bold)
    gm, wm, csf = (np.asarray(t, dtype=float) for t in tissues)
    if bold.ndim != 4 or bold.shape[:3] != gm.shape:
        raise ShapeMismatchError(f"bold has shape {bold.shape}; expected (*{gm.shape}, "
                                 f"n_samples)")
    n_samples = bold.shape[3]
    motion = np.asarray(motion, dtype=float)
    if motion.shape != (n_samples, 6):
        raise ShapeMismatchError(f"motion has shape {motion.shape}; expected "
                                 f"({n_samples}, 6)")
    brain = (gm + wm + csf) > 0.5
    csf_mask = brain & (csf > 0.5)
    wm_mask = brain & (wm > 0.8)
    for name, m in (("CSF", csf_mask), ("white-matter", wm_mask)):
        if m.sum() < 10:
            raise InputError(f"the {name} mask holds {int(m.sum())} voxels; expected at "
                             f"least 10 to compute its confounds")
    data = bold[brain].T.astype(float)  # (T, V)
    in_csf, in_wm = csf_mask[brain], wm_mask[brain]
    drift = cosine_drift_basis(n_samples, t_r)

    cols: dict[str, np.ndarray] = {}
    order_signal = ("", "_derivative1", "_derivative1_power2", "_power2")
    cols.update(_expand("global_signal", data.mean(axis=1), order_signal))
    cols.update(_expand("csf", data[:, in_csf].mean(axis=1), order_signal))
    cols.update(_expand("white_matter", data[:, in_wm].mean(axis=1), order_signal))
    cols["csf_wm"] = data[:, in_csf | in_wm].mean(axis=1)
    dvars, std_dvars = _dvars(data)
    cols["std_dvars"] = std_dvars
    cols["dvars"] = dvars
    fd = framewise_displacement(motion)
    cols["framewise_displacement"] = fd

    sidecar: dict[str, dict] = {}

    def add_compcor(prefix, method, mask_name, voxels, n):
        comps, sv, var, cum = _compcor(data[:, voxels], drift, n)
        for i in range(comps.shape[1]):
            key = f"{prefix}_{i:02d}"
            cols[key] = comps[:, i]
            entry = {"CumulativeVarianceExplained": float(cum[i]), "Method": method,
                     "Retained": True, "SingularValue": float(sv[i]),
                     "VarianceExplained": float(var[i])}
            if mask_name is not None:
                entry["Mask"] = mask_name
            sidecar[key] = dict(sorted(entry.items()))

    # tCompCor: the 2 % of brain voxels with the highest temporal variance.
    tvar = _highpass(data, drift).std(axis=0)
    n_top = max(int(round(0.02 * tvar.size)), n_tcompcor + 1)
    top = np.zeros(tvar.size, dtype=bool)
    top[np.argsort(tvar, kind="stable")[-n_top:]] = True
    add_compcor("t_comp_cor", "tCompCor", None, top, n_tcompcor)
    add_compcor("c_comp_cor", "aCompCor", "CSF", in_csf, n_tissue_compcor)
    add_compcor("w_comp_cor", "aCompCor", "WM", in_wm, n_tissue_compcor)
    add_compcor("a_comp_cor", "aCompCor", "combined", in_csf | in_wm, n_compcor)
    for i in range(drift.shape[1]):
        cols[f"cosine{i:02d}"] = drift[:, i]
    order_motion = ("", "_derivative1", "_derivative1_power2", "_power2")
    for j, name in enumerate(MOTION_COLUMNS):
        cols.update(_expand(name, motion[:, j], order_motion))
    outliers = np.flatnonzero((np.nan_to_num(fd) > fd_threshold)
                              | (np.nan_to_num(std_dvars) > dvars_threshold))
    for i, t in enumerate(outliers):
        spike = np.zeros(n_samples)
        spike[t] = 1.0
        cols[f"motion_outlier{i:02d}"] = spike
    return pd.DataFrame(cols), sidecar


# --------------------------------------------------------------------------- #
# A whole subject
# --------------------------------------------------------------------------- #
