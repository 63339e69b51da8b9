"""Connectivity matrices from region time series.

:class:`ConnectivityMeasure` turns a list of subjects' time series into
covariance, correlation, partial correlation, precision or tangent-space
matrices (nilearn's API). The helpers convert a precision matrix into partial
correlations, flatten symmetric matrices into vectors and back (with nilearn's
conventions), and score an estimated support against a known one.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ._base import BaseEstimator, check_is_fitted, clone
from ._bunch import Bunch
from .errors import InputError, ParameterError, ShapeMismatchError

__all__ = [
    "ConnectivityMeasure",
    "precision_to_partial_correlation",
    "cov_to_corr",
    "sym_matrix_to_vec",
    "vec_to_sym_matrix",
    "support_recovery",
]

_SQRT2 = np.sqrt(2.0)


def _check_square(matrix: Any, name: str) -> np.ndarray:
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"{name} must be a square 2D matrix, found shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or Inf values; expected finite numbers")
    return arr


# ---------------------------------------------------------------------------
# Matrix helpers
# ---------------------------------------------------------------------------
def precision_to_partial_correlation(precision: Any) -> np.ndarray:
    """Partial correlations from a precision (inverse covariance) matrix.

    ``P_ij = -Theta_ij / sqrt(Theta_ii Theta_jj)`` off the diagonal and 1 on
    it: the correlation of regions ``i`` and ``j`` given all the others.

    Parameters
    ----------
    precision : array of shape (n_regions, n_regions)
        Symmetric positive definite precision matrix.

    Returns
    -------
    partial_correlation : array of shape (n_regions, n_regions)
    """
    prec = _check_square(precision, "precision")
    diag = np.diag(prec)
    if np.any(diag <= 0):
        bad = int(np.flatnonzero(diag <= 0)[0])
        raise InputError(
            f"precision has a non-positive diagonal entry at index {bad} "
            f"({diag[bad]!r}); a precision matrix has a positive diagonal"
        )
    scale = 1.0 / np.sqrt(diag)
    partial = -prec * scale[:, None] * scale[None, :]
    np.fill_diagonal(partial, 1.0)
    return partial


def cov_to_corr(covariance: Any) -> np.ndarray:
    """Correlation matrix from a covariance matrix (unit diagonal)."""
    cov = _check_square(covariance, "covariance")
    diag = np.diag(cov)
    if np.any(diag <= 0):
        bad = int(np.flatnonzero(diag <= 0)[0])
        raise InputError(
            f"covariance has a non-positive variance at index {bad} ({diag[bad]!r}); "
            "a correlation needs positive variances (is a region's signal constant?)"
        )
    scale = 1.0 / np.sqrt(diag)
    corr = cov * scale[:, None] * scale[None, :]
    np.fill_diagonal(corr, 1.0)
    return corr


def sym_matrix_to_vec(symmetric: Any, discard_diagonal: bool = False) -> np.ndarray:
    """Flatten the lower triangle of symmetric matrices (nilearn's convention).

    The lower triangle is read row by row (``(0,0), (1,0), (1,1), (2,0), ...``).
    Diagonal terms are divided by ``sqrt(2)`` so that the Euclidean norm of the
    vector is the Frobenius norm of the matrix divided by ``sqrt(2)``: each
    off-diagonal pair is counted once and the diagonal with weight 1/2.

    Parameters
    ----------
    symmetric : array of shape (..., n, n)
        Symmetric matrices (the upper triangle is not read).
    discard_diagonal : bool
        Leave the diagonal out (strict lower triangle).

    Returns
    -------
    vec : array of shape (..., n (n + 1) / 2) or (..., n (n - 1) / 2)
    """
    sym = np.asarray(symmetric, dtype=np.float64)
    if sym.ndim < 2 or sym.shape[-1] != sym.shape[-2]:
        raise InputError(
            f"symmetric must be an array of square matrices (..., n, n), found shape {sym.shape}"
        )
    n = sym.shape[-1]
    if discard_diagonal:
        rows, cols = np.tril_indices(n, k=-1)
        return sym[..., rows, cols]
    rows, cols = np.tril_indices(n)
    vec = sym[..., rows, cols].copy()
    vec[..., rows == cols] /= _SQRT2
    return vec


def vec_to_sym_matrix(vec: Any, diagonal: Any = None) -> np.ndarray:
    """Inverse of :func:`sym_matrix_to_vec`.

    Parameters
    ----------
    vec : array of shape (..., n (n + 1) / 2), or (..., n (n - 1) / 2) with ``diagonal``
        Lower triangles read row by row, diagonal terms divided by ``sqrt(2)``.
    diagonal : array of shape (..., n), optional
        Diagonal terms as stored by :func:`sym_matrix_to_vec` (divided by
        ``sqrt(2)``); when given, ``vec`` holds the strict lower triangle only.

    Returns
    -------
    symmetric : array of shape (..., n, n)
    """
    v = np.asarray(vec, dtype=np.float64)
    if v.ndim < 1:
        raise InputError("vec must have at least one dimension, found a scalar")
    m = v.shape[-1]
    if diagonal is not None:
        diag = np.asarray(diagonal, dtype=np.float64)
        n = diag.shape[-1] if diag.ndim else 0
        if diag.shape[:-1] != v.shape[:-1] or n * (n - 1) // 2 != m:
            raise ShapeMismatchError(
                f"diagonal of shape {diag.shape} is incompatible with vec of shape {v.shape}; "
                "expected diagonal (..., n) with vec (..., n (n - 1) / 2)"
            )
        out = np.zeros(v.shape[:-1] + (n, n))
        rows, cols = np.tril_indices(n, k=-1)
        out[..., rows, cols] = v
        out[..., cols, rows] = v
        idx = np.arange(n)
        out[..., idx, idx] = diag * _SQRT2
        return out
    # Solve n (n + 1) / 2 = m for an integer n.
    n = int(round((np.sqrt(8 * m + 1) - 1) / 2))
    if n * (n + 1) // 2 != m:
        raise InputError(
            f"vec of shape {v.shape} cannot be a symmetric matrix: its last dimension "
            f"{m} is not a triangular number n (n + 1) / 2"
        )
    out = np.zeros(v.shape[:-1] + (n, n))
    rows, cols = np.tril_indices(n)
    out[..., rows, cols] = v
    out[..., cols, rows] = v
    idx = np.arange(n)
    out[..., idx, idx] *= _SQRT2
    return out


def support_recovery(estimated_precision: Any, true_precision: Any, *,
                     tol: float = 0.0) -> Bunch:
    """Compare the off-diagonal supports (edges) of two precision matrices.

    An edge ``(i, j)``, ``i < j``, is present where ``|Theta_ij| > tol``.

    Parameters
    ----------
    estimated_precision, true_precision : arrays of shape (n_regions, n_regions)
    tol : float
        Entries with absolute value at most ``tol`` count as zero.

    Returns
    -------
    Bunch with ``precision`` (fraction of estimated edges that are true),
    ``recall`` (fraction of true edges found), ``f1``, ``true_positives``,
    ``false_positives``, ``false_negatives``, ``n_true_edges`` and
    ``n_estimated_edges``. A ratio whose denominator is 0 is 1.0 when the
    numerator is also 0 (nothing to find, nothing wrongly found), else 0.0.
    """
    est = _check_square(estimated_precision, "estimated_precision")
    true = _check_square(true_precision, "true_precision")
    if est.shape != true.shape:
        raise ShapeMismatchError(
            f"estimated_precision has shape {est.shape} but true_precision has shape "
            f"{true.shape}; they must describe the same regions"
        )
    if tol < 0:
        raise ParameterError(f"tol must be >= 0, got {tol!r}")
    rows, cols = np.triu_indices(est.shape[0], k=1)
    est_edges = np.abs(est[rows, cols]) > tol
    true_edges = np.abs(true[rows, cols]) > tol
    tp = int(np.sum(est_edges & true_edges))
    fp = int(np.sum(est_edges & ~true_edges))
    fn = int(np.sum(~est_edges & true_edges))
    n_est = tp + fp
    n_true = tp + fn
    precision = tp / n_est if n_est else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = (2 * precision * recall / (precision + recall)) if (precision + recall) > 0 else 0.0
    return Bunch(precision=float(precision), recall=float(recall), f1=float(f1),
                 true_positives=tp, false_positives=fp, false_negatives=fn,
                 n_true_edges=n_true, n_estimated_edges=n_est)
