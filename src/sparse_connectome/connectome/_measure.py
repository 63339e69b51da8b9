"""Connectivity matrices from region time series.

:class:`ConnectivityMeasure` turns a list of subjects' time series into
covariance, correlation, partial correlation, precision or tangent-space
matrices (nilearn's API). The helpers convert a precision matrix into partial
correlations, flatten symmetric matrices into vectors and back (with nilearn's
conventions), and score an estimated support against a known one.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from .._utils.estimator import BaseEstimator, check_is_fitted, clone
from ..errors import ConvergenceWarning, InputError, ParameterError, ShapeMismatchError

__all__ = [
    "ConnectivityMeasure",
    "geometric_mean",
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

    Examples
    --------
    A chain 0 - 1 - 2: regions 0 and 2 are independent given region 1.

    >>> import numpy as np
    >>> from sparse_connectome.connectome import precision_to_partial_correlation
    >>> precision = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
    >>> pc = precision_to_partial_correlation(precision)
    >>> float(pc[0, 1]), bool(pc[0, 2] == 0), np.diag(pc).tolist()
    (0.5, True, [1.0, 1.0, 1.0])
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
    """Correlation matrix from a covariance matrix (unit diagonal).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import cov_to_corr
    >>> corr = cov_to_corr(np.array([[4.0, 2.0], [2.0, 9.0]]))  # 2 / (2 * 3)
    >>> corr.round(4).tolist()
    [[1.0, 0.3333], [0.3333, 1.0]]
    """
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import sym_matrix_to_vec
    >>> m = np.array([[1.0, 2.0, 4.0], [2.0, 3.0, 5.0], [4.0, 5.0, 6.0]])
    >>> sym_matrix_to_vec(m, discard_diagonal=True).tolist()
    [2.0, 4.0, 5.0]
    >>> v = sym_matrix_to_vec(m)  # (0,0), (1,0), (1,1), (2,0), (2,1), (2,2)
    >>> v.round(4).tolist()
    [0.7071, 2.0, 2.1213, 4.0, 5.0, 4.2426]
    >>> bool(np.isclose(np.linalg.norm(v), np.linalg.norm(m) / np.sqrt(2)))
    True
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

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import sym_matrix_to_vec, vec_to_sym_matrix
    >>> vec_to_sym_matrix(np.array([2.0, 4.0, 5.0]), diagonal=np.zeros(3)).tolist()
    [[0.0, 2.0, 4.0], [2.0, 0.0, 5.0], [4.0, 5.0, 0.0]]
    >>> stack = np.random.default_rng(0).standard_normal((2, 4, 4))
    >>> stack = stack + stack.transpose(0, 2, 1)
    >>> bool(np.allclose(vec_to_sym_matrix(sym_matrix_to_vec(stack)), stack))
    True
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

    Examples
    --------
    The true graph is the chain 0 - 1 - 2; the estimate finds one of its two
    edges and a false one:

    >>> import numpy as np
    >>> from sparse_connectome.connectome import support_recovery
    >>> true = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
    >>> estimated = np.array([[2.0, -0.5, 0.1], [-0.5, 2.0, 0.0], [0.1, 0.0, 2.0]])
    >>> score = support_recovery(estimated, true)
    >>> score.true_positives, score.false_positives, score.false_negatives
    (1, 1, 1)
    >>> score.precision, score.recall, score.f1
    (0.5, 0.5, 0.5)
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


# ---------------------------------------------------------------------------
# Symmetric positive definite matrix functions (by eigen-decomposition)
# ---------------------------------------------------------------------------
def _spd_function(matrix: np.ndarray, func) -> np.ndarray:
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * func(vals)) @ vecs.T


def _check_spd(matrix: np.ndarray, name: str) -> None:
    vals = np.linalg.eigvalsh(matrix)
    if vals[0] <= 0:
        raise InputError(
            f"{name} is not positive definite (smallest eigenvalue {vals[0]:.3g}); the tangent "
            "space needs positive definite covariances (use a shrinkage estimator such as "
            "LedoitWolf)"
        )


def geometric_mean(matrices: list[np.ndarray], *, init: np.ndarray | None = None,
                   max_iter: int = 10, tol: float = 1e-7) -> np.ndarray:
    """Riemannian (affine-invariant) geometric mean of SPD matrices.

    Gradient descent on the manifold (Fletcher & Joshi 2004): with the current
    mean ``M``, the gradient is ``G = mean_s logm(M^-1/2 C_s M^-1/2)`` and the
    update ``M <- M^1/2 expm(step G) M^1/2``; the step is halved whenever the
    gradient norm grows. Starts from the arithmetic mean. Stops when the
    Frobenius norm of the gradient is below ``tol`` or after ``max_iter``
    iterations, the norm being the Frobenius norm divided by the number of
    entries (nilearn's defaults and criterion, so that ``ConnectivityMeasure``
    agrees with it; lower ``tol`` and raise ``max_iter`` for a tighter mean).

    Examples
    --------
    The geometric mean of ``diag(1, 4)`` and ``diag(4, 1)`` is ``2 I`` (the
    arithmetic mean would be ``2.5 I``):

    >>> import numpy as np
    >>> from sparse_connectome.connectome import geometric_mean
    >>> mean = geometric_mean([np.diag([1.0, 4.0]), np.diag([4.0, 1.0])])
    >>> bool(np.allclose(mean, 2 * np.eye(2)))
    True
    """
    mats = [np.asarray(m, dtype=np.float64) for m in matrices]
    for k, m in enumerate(mats):
        _check_spd(m, f"matrix {k}")
    mean = np.mean(mats, axis=0) if init is None else np.asarray(init, dtype=np.float64)
    step = 1.0
    norm_old = np.inf
    for _ in range(max_iter):
        vals, vecs = np.linalg.eigh(mean)
        sqrt_mean = (vecs * np.sqrt(vals)) @ vecs.T
        inv_sqrt = (vecs / np.sqrt(vals)) @ vecs.T
        grad = np.mean([_spd_function(inv_sqrt @ m @ inv_sqrt, np.log) for m in mats], axis=0)
        grad = 0.5 * (grad + grad.T)
        mean = sqrt_mean @ _spd_function(step * grad, np.exp) @ sqrt_mean
        mean = 0.5 * (mean + mean.T)
        # Convergence on the Frobenius norm per entry (nilearn's criterion).
        norm = float(np.linalg.norm(grad)) / grad.size
        if norm < tol:
            break
        if norm > norm_old:
            step *= 0.5
        norm_old = norm
    else:
        warnings.warn(
            f"geometric_mean: gradient norm {norm:.3g} still above tol={tol:g} after "
            f"max_iter={max_iter} iterations; the mean is approximate (raise max_iter).",
            ConvergenceWarning, stacklevel=2)
    return mean


_KINDS = ("covariance", "correlation", "partial correlation", "precision", "tangent")


class ConnectivityMeasure(BaseEstimator):
    """Connectivity matrices of several subjects (nilearn's API).

    Parameters
    ----------
    cov_estimator : estimator with ``fit(X)`` and ``covariance_``, optional
        Default: :class:`~sparse_connectome.covariance.LedoitWolf` (shrunk
        covariance, ``store_precision=False``), as nilearn.
    kind : {"covariance", "correlation", "partial correlation", "precision", "tangent"}
    vectorize : bool
        Return the lower triangles as vectors (see :func:`sym_matrix_to_vec`).
    discard_diagonal : bool
        With ``vectorize``, leave the diagonal out.
    standardize : bool
        For ``kind="correlation"`` only (as nilearn): z-score each time series
        before estimating the covariance.

    Attributes
    ----------
    cov_estimator_ : the estimator used (a clone of ``cov_estimator``)
    mean_ : array (n_regions, n_regions): the mean of the subjects' matrices,
        or for ``"tangent"`` their geometric (Riemannian) mean covariance
    whitening_ : array or None: ``mean_^(-1/2)`` for ``"tangent"``
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import ConnectivityMeasure
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((50, 4)) for _ in range(3)]  # 3 subjects, 4 regions
    >>> correlations = ConnectivityMeasure(kind="correlation").fit_transform(subjects)
    >>> correlations.shape, bool(np.allclose(np.diagonal(correlations, axis1=1, axis2=2), 1))
    ((3, 4, 4), True)
    >>> measure = ConnectivityMeasure(kind="tangent", vectorize=True)
    >>> measure.fit_transform(subjects).shape  # 4 * 5 / 2 values per subject
    (3, 10)
    >>> measure.mean_.shape
    (4, 4)
    """

    def __init__(self, cov_estimator: Any = None, kind: str = "covariance",
                 vectorize: bool = False, discard_diagonal: bool = False,
                 standardize: bool = True):
        self.cov_estimator = cov_estimator
        self.kind = kind
        self.vectorize = vectorize
        self.discard_diagonal = discard_diagonal
        self.standardize = standardize

    def _check_input(self, X: Any) -> list[np.ndarray]:
        if isinstance(X, np.ndarray) and X.ndim == 2:
            raise InputError(
                "X must be a list of subjects' time series (each n_samples x n_regions); "
                f"got a single 2D array of shape {X.shape}: wrap it in a list"
            )
        if not hasattr(X, "__iter__"):
            raise InputError(f"X must be a list of 2D arrays, got {type(X).__name__}")
        subjects = []
        for k, x in enumerate(X):
            arr = np.asarray(x, dtype=np.float64)
            if arr.ndim != 2:
                raise InputError(f"subject {k}: time series must be 2D (n_samples, n_regions), "
                                 f"found shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise InputError(f"subject {k}: time series contain NaN or Inf")
            subjects.append(arr)
        if not subjects:
            raise InputError("X is empty: expected at least one subject's time series")
        n_features = {s.shape[1] for s in subjects}
        if len(n_features) > 1:
            raise ShapeMismatchError(f"subjects have different numbers of regions: {sorted(n_features)}")
        return subjects

    def _covariances(self, subjects: list[np.ndarray]) -> list[np.ndarray]:
        covs = []
        for subject in subjects:
            x = subject
            if self.kind == "correlation" and self.standardize:
                std = x.std(axis=0)
                std[std == 0] = 1.0
                x = (x - x.mean(axis=0)) / std
            estimator = clone(self.cov_estimator_)
            estimator.fit(x)
            covs.append(np.asarray(estimator.covariance_, dtype=np.float64))
        return covs

    def _matrices(self, covs: list[np.ndarray]) -> np.ndarray:
        kind = self.kind
        if kind == "covariance":
            out = covs
        elif kind == "correlation":
            out = [cov_to_corr(c) for c in covs]
        elif kind == "precision":
            out = [_inverse_spd(c, k) for k, c in enumerate(covs)]
        elif kind == "partial correlation":
            out = [precision_to_partial_correlation(_inverse_spd(c, k)) for k, c in enumerate(covs)]
        else:  # tangent
            out = [_spd_function(self.whitening_ @ c @ self.whitening_, np.log) for c in covs]
        return np.array(out)

    def fit(self, X: Any, y: Any = None) -> ConnectivityMeasure:
        """Fit the covariance estimator (and the tangent reference) on subjects ``X``."""
        self._fit_transform(X, do_transform=False)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the connectivity matrices of ``X``."""
        return self._fit_transform(X, do_transform=True)

    def _fit_transform(self, X: Any, do_transform: bool):
        if self.kind not in _KINDS:
            raise ParameterError(f"kind must be one of {list(_KINDS)}, got {self.kind!r}")
        subjects = self._check_input(X)
        if self.cov_estimator is None:
            from ..covariance import LedoitWolf

            self.cov_estimator_ = LedoitWolf(store_precision=False)
        else:
            self.cov_estimator_ = clone(self.cov_estimator)
        self.n_features_in_ = subjects[0].shape[1]
        covs = self._covariances(subjects)
        if self.kind == "tangent":
            self.mean_ = geometric_mean(covs, max_iter=30)
            self.whitening_ = _spd_function(self.mean_, lambda v: 1.0 / np.sqrt(v))
            matrices = self._matrices(covs)
        else:
            self.whitening_ = None
            matrices = self._matrices(covs)
            self.mean_ = matrices.mean(axis=0)
        if do_transform:
            return self._output(matrices)
        return None

    def transform(self, X: Any) -> np.ndarray:
        """Connectivity matrices of subjects ``X`` (the tangent space of the fitted mean)."""
        check_is_fitted(self, "mean_")
        subjects = self._check_input(X)
        if subjects[0].shape[1] != self.n_features_in_:
            raise ShapeMismatchError(
                f"X has {subjects[0].shape[1]} regions; the measure was fitted on "
                f"{self.n_features_in_}"
            )
        return self._output(self._matrices(self._covariances(subjects)))

    def _output(self, matrices: np.ndarray) -> np.ndarray:
        if self.vectorize:
            return sym_matrix_to_vec(matrices, discard_diagonal=self.discard_diagonal)
        return matrices

    def inverse_transform(self, connectivities: Any, diagonal: Any = None) -> np.ndarray:
        """Matrices back from vectors (and, for ``"tangent"``, back to covariances)."""
        check_is_fitted(self, "mean_")
        conn = np.asarray(connectivities, dtype=np.float64)
        if self.vectorize:
            if self.discard_diagonal and diagonal is None and self.kind in (
                    "correlation", "partial correlation"):
                n = self.n_features_in_
                diagonal = np.ones(conn.shape[:-1] + (n,)) / _SQRT2
            conn = vec_to_sym_matrix(conn, diagonal=diagonal)
        if self.kind == "tangent":
            sqrt_mean = _spd_function(self.mean_, np.sqrt)
            conn = np.array([sqrt_mean @ _spd_function(c, np.exp) @ sqrt_mean for c in conn])
        return conn


def _inverse_spd(cov: np.ndarray, k: int) -> np.ndarray:
    try:
        return np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        raise InputError(
            f"subject {k}: the covariance is singular and has no inverse; use a shrinkage "
            "estimator (LedoitWolf) or a sparse one (GraphicalLassoCV)"
        ) from None
