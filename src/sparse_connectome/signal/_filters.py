"""Numerical kernels behind :func:`sparse_connectome.signal.clean`.

Pure functions, arrays in and arrays out, time along axis 0. They do not
validate their parameters: :mod:`sparse_connectome.signal` does that at the
boundary.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = [
    "butter_sos",
    "filtfilt_sos",
    "linear_detrend",
    "cosine_drift",
    "interpolate_censored",
    "orthonormal_basis",
]

# A cut-off at or above Nyquist is moved just below it: a digital Butterworth
# design is unstable exactly at wn == 1. The margin (10 float32 epsilons) is the
# one nilearn uses, so results agree with it in that corner case.
NYQUIST_MARGIN = 10 * float(np.finfo(np.float32).eps)


def butter_sos(
    order: int, low_pass: float | None, high_pass: float | None, nyquist: float
) -> np.ndarray:
    """Second-order sections of a low-, high- or band-pass Butterworth filter.

    ``low_pass``/``high_pass`` are in Hz and must already lie in (0, nyquist).
    """
    # scipy.signal takes ~0.4 s to import: load it only when filtering.
    from scipy import signal as sp_signal

    if low_pass is not None and high_pass is not None:
        return sp_signal.butter(
            order, [high_pass / nyquist, low_pass / nyquist], btype="bandpass", output="sos"
        )
    if low_pass is not None:
        return sp_signal.butter(order, low_pass / nyquist, btype="lowpass", output="sos")
    return sp_signal.butter(order, high_pass / nyquist, btype="highpass", output="sos")


def sos_padlen(sos: np.ndarray) -> int:
    """The default padding length of :func:`scipy.signal.sosfiltfilt`."""
    n_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - n_zeros)


def filtfilt_sos(
    x: np.ndarray, sos: np.ndarray, padtype: str | None = "odd", padlen: int | None = None
) -> np.ndarray:
    """Zero-phase filtering of every column of ``x`` at once (forward and backward)."""
    from scipy import signal as sp_signal

    return sp_signal.sosfiltfilt(sos, x, axis=0, padtype=padtype, padlen=padlen)


def linear_detrend(x: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Remove the mean and the least-squares linear trend of each column.

    Vectorised over columns: the trend regressor is centred time, orthogonal to
    the constant, so two rank-1 updates remove both.
    """
    if not inplace:
        x = np.array(x, dtype=np.float64, copy=True)
    n = x.shape[0]
    x -= x.mean(axis=0)
    if n > 1:
        t = np.arange(n, dtype=np.float64)
        t -= t.mean()
        t /= np.sqrt(t @ t)
        x -= np.outer(t, t @ x)
    return x


def cosine_drift(high_pass: float, n_samples: int, t_r: float) -> np.ndarray:
    """Discrete cosine basis of slow drifts below ``high_pass`` Hz (no constant).

    Columns are the DCT-II basis functions ``sqrt(2/n) cos(pi (2t+1) k / 2n)``
    for ``k = 1..order`` with ``order = floor(2 n high_pass t_r)`` (the SPM
    convention), i.e. every cosine of period longer than ``1/high_pass``.
    """
    order = min(n_samples - 1, int(np.floor(2 * n_samples * high_pass * t_r)))
    t = np.arange(n_samples, dtype=np.float64)
    k = np.arange(1, order + 1, dtype=np.float64)
    return np.sqrt(2.0 / n_samples) * np.cos(np.pi * np.outer(2 * t + 1, k) / (2 * n_samples))


def interpolate_censored(
    x: np.ndarray, kept: np.ndarray, extrapolate: bool
) -> tuple[np.ndarray, np.ndarray, slice]:
    """Replace censored volumes by a cubic spline through the kept ones.

    Parameters
    ----------
    x : ndarray (n_samples, n_features)
    kept : sorted int ndarray, indices of the kept volumes (at least 2).
    extrapolate : bool
        If False, censored volumes before the first and after the last kept
        volume are dropped instead of being extrapolated.

    Returns
    -------
    filled : ndarray, the (possibly trimmed) series with gaps filled.
    kept_local : int ndarray, the kept indices relative to ``filled``.
    window : slice of the original time axis that ``filled`` covers.
    """
    n = x.shape[0]
    window = slice(0, n) if extrapolate else slice(int(kept[0]), int(kept[-1]) + 1)
    filled = np.array(x[window], dtype=np.float64, copy=True)
    kept_local = kept - window.start
    censored = np.setdiff1d(np.arange(filled.shape[0]), kept_local, assume_unique=True)
    if censored.size:
        # Not-a-knot cubic spline on the frame index; the spline is invariant
        # to an affine change of the time axis, so t_r does not matter.
        from scipy.interpolate import CubicSpline

        spline = CubicSpline(kept_local.astype(np.float64), filled[kept_local], axis=0)
        filled[censored] = spline(censored.astype(np.float64))
    return filled, kept_local, window


def orthonormal_basis(confounds: np.ndarray, rel_tol: float = 100.0) -> np.ndarray:
    """Orthonormal basis of the column space of ``confounds``.

    Pivoted QR; directions whose pivot is below ``rel_tol`` float64 epsilons
    are dropped (confounds are scaled to unit size before, so this is a
    relative threshold that removes constant or collinear columns).
    """
    q, r, _ = linalg.qr(confounds, mode="economic", pivoting=True)
    keep = np.abs(np.diag(r)) > np.finfo(np.float64).eps * rel_tol
    return q[:, keep]
