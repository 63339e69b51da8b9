"""Penalty selection for graph recovery by the extended BIC; the path helpers shared
with StARS (:mod:`._stars`).

Cross-validated likelihood (:class:`GraphicalLassoCV`) picks the penalty that
predicts held-out data best, which keeps many false edges. The extended BIC
(here) and StARS (:mod:`._stars`) are made for recovering the graph.

EBIC (Foygel & Drton, NIPS 2010)
    Along a warm-started path of decreasing alphas, each fit certified by its
    duality gap, the penalty minimising::

        EBIC_gamma(alpha) = -2 l_n(Theta_alpha) + |E| log n + 4 gamma |E| log p

    with ``l_n(Theta) = n/2 (log det Theta - tr(S Theta))`` the Gaussian
    log-likelihood of the ``n`` samples up to a constant, ``S`` the (centred,
    maximum-likelihood) empirical covariance, ``Theta_alpha`` the graphical
    lasso estimate and ``|E|`` its number of edges (non-zero entries above the
    diagonal). ``gamma = 0`` is the ordinary BIC; ``gamma = 0.5`` is the
    authors' recommendation. Ties go to the larger alpha (the sparser graph).

Both criteria use the graphical lasso solver of :func:`graphical_lasso` (QUIC
with exact screening), warm-started from the solution at the previous, larger
alpha; every fit is certified by its duality gap (``gap <= tol * p``), and a fit
that misses it is reported with a :class:`ConvergenceWarning`.
"""

from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from ..errors import ConvergenceWarning, InputError, ParameterError
from ._empirical import EmpiricalCovariance, check_positive, check_samples, empirical_covariance
from ._graphical_lasso import alpha_max, blas_single_thread, check_emp_cov, check_max_iter, solve

__all__ = ["graphical_lasso_ebic", "GraphicalLassoEBIC"]

logger = logging.getLogger(__name__)

#: Number of log-spaced alphas, from alpha_max down to alpha_max / 100, by default.
DEFAULT_N_ALPHAS = 40


# --------------------------------------------------------------------------- #
# Parameters
# --------------------------------------------------------------------------- #
def check_int(value: Any, name: str, low: int) -> int:
    """``value`` as an int >= ``low``, else :class:`ParameterError` naming it."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_alphas(alphas: Any) -> int | np.ndarray:
    """An int (grid size) or the given alphas, unique and decreasing."""
    if isinstance(alphas, Integral) and not isinstance(alphas, bool):
        if alphas < 1:
            raise ParameterError(f"alphas must be >= 1 when an int, got {alphas!r}")
        return int(alphas)
    try:
        grid = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ParameterError(f"alphas must be an int or a list of floats, got {alphas!r}") from None
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ParameterError(f"alphas must be finite and > 0, got {alphas!r}")
    return np.unique(grid)[::-1].copy()


def check_fraction(value: Any, name: str, low: float, high: float, low_open: bool) -> float:
    """``value`` as a float in ``(low, high]`` (``[low, high]`` unless ``low_open``)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ParameterError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}")
    return value


def alpha_grid(alphas: int | np.ndarray, emp_cov: np.ndarray, top: float = 0.0) -> np.ndarray:
    """Decreasing alphas: the given ones, or ``alphas`` log-spaced from alpha_max (or
    ``top`` if larger) down to alpha_max / 100."""
    if not isinstance(alphas, int):
        return alphas
    largest = alpha_max(emp_cov)
    if largest <= 0:
        raise InputError("X has no off-diagonal covariance (alpha_max = 0): all regions "
                         "are uncorrelated or there is a single region")
    return np.logspace(np.log10(max(largest, top)), np.log10(0.01 * largest), alphas)


def centred_covariance(arr: np.ndarray, assume_centered: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(location, emp_cov)`` of the samples, the covariance checked."""
    location = np.zeros(arr.shape[1]) if assume_centered else arr.mean(axis=0)
    emp_cov = empirical_covariance(arr - location, assume_centered=True)
    return location, check_emp_cov(emp_cov, "the empirical covariance of X")


def count_edges(precision: np.ndarray) -> int:
    """Non-zero entries above the diagonal."""
    return int(np.count_nonzero(np.triu(precision, k=1)))


def warn_path(gaps: np.ndarray, converged: np.ndarray, alphas: np.ndarray, tol: float,
              p: int, max_iter: int, where: str, stacklevel: int) -> None:
    """One ConvergenceWarning for the fits of a path that missed ``tol * p``."""
    if np.all(converged):
        return
    worst = np.unravel_index(np.nanargmax(np.where(converged, -np.inf, gaps)), gaps.shape)
    warnings.warn(
        f"{where}: {int(np.sum(~converged))} of {converged.size} path fits did not reach "
        f"their tolerance tol * p = {tol * p:.3g} (worst: gap {gaps[worst]:.3g} at alpha "
        f"{alphas[worst[0]]:.4g}); raise max_iter (now {max_iter}) or tol. Their supports "
        "and criterion values are approximate.", ConvergenceWarning, stacklevel=stacklevel)


def set_solution(est: EmpiricalCovariance, result: Bunch, p: int) -> None:
    """Set the fitted attributes shared with ``GraphicalLassoCV`` from a fit's Bunch."""
    est.covariance_, est.precision_ = result.covariance, result.precision
    est.n_iter_, est.duality_gap_ = result.n_iter, result.duality_gap
    est.converged_, est.objective_ = result.converged, result.objective
    est.n_features_in_ = p


# --------------------------------------------------------------------------- #
# EBIC
# --------------------------------------------------------------------------- #
def _ebic_path(S: np.ndarray, n_samples: int, alphas: np.ndarray, gamma: float, tol: float,
               max_iter: int) -> Bunch:
    """Fit the warm-started path and evaluate EBIC at each alpha (no warning)."""
    p = S.shape[0]
    rows = []
    best = None
    init = None
    for alpha in alphas:
        res = solve(S, float(alpha), tol, max_iter, init, True)
        init = res.precision
        sign, logdet = np.linalg.slogdet(res.precision)
        loglik = 0.5 * n_samples * (logdet - np.sum(S * res.precision)) if sign > 0 else -np.inf
        edges = count_edges(res.precision)
        ebic = -2.0 * loglik + edges * np.log(n_samples) + 4.0 * gamma * edges * np.log(p)
        rows.append((loglik, edges, ebic, res.duality_gap, res.converged))
        if best is None or ebic < best[0]:  # strict: ties keep the larger alpha
            best = (ebic, float(alpha), res)
    loglik, edges, ebic, gaps, conv = (np.array(col) for col in zip(*rows))
    path = {"alphas": alphas.copy(), "ebic": ebic.astype(float), "log_likelihood": loglik,
            "n_edges": edges.astype(int), "duality_gap": gaps, "converged": conv.astype(bool)}
    res = best[2]
    return Bunch(alpha=best[1], covariance=res.covariance, precision=res.precision,
                 n_iter=res.n_iter, duality_gap=res.duality_gap, converged=res.converged,
                 objective=res.objective, path=path)


def graphical_lasso_ebic(emp_cov: Any, n_samples: int, *, alphas: Any = DEFAULT_N_ALPHAS,
                         gamma: float = 0.5, tol: float = 1e-4, max_iter: int = 100) -> Bunch:
    """Graphical lasso with the penalty minimising the extended BIC along a path.

    Parameters
    ----------
    emp_cov : array of shape (p, p)
        Empirical covariance (maximum likelihood, divided by ``n_samples``).
    n_samples : int
        Number of samples ``emp_cov`` was computed from (the ``n`` of EBIC).
    alphas : int or array-like of float
        Number of alphas log-spaced from ``alpha_max(emp_cov)`` down to
        ``alpha_max / 100``, or the alphas themselves (fitted in decreasing order).
    gamma : float >= 0
        EBIC parameter: 0 is the BIC, 0.5 (default) the authors' recommendation,
        larger values give sparser graphs.
    tol : float
        Duality-gap tolerance of every fit, relative to ``p``.
    max_iter : int
        Maximum Newton iterations per fit.

    Returns
    -------
    Bunch
        ``alpha`` (the chosen penalty), ``covariance``, ``precision``, ``n_iter``,
        ``duality_gap``, ``converged``, ``objective`` of the fit at ``alpha``, and
        ``path``: a dict of arrays aligned with ``path["alphas"]`` (decreasing):
        ``ebic``, ``log_likelihood`` (``l_n``), ``n_edges``, ``duality_gap``,
        ``converged``.

    Warns
    -----
    ConvergenceWarning
        When a fit of the path misses its tolerance.

    Examples
    --------
    Six regions interacting in three pairs:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import empirical_covariance, graphical_lasso_ebic
    >>> precision = np.eye(6)
    >>> for (i, j), c in zip([(0, 1), (2, 3), (4, 5)], [0.5, 0.4, 0.3]):
    ...     precision[i, j] = precision[j, i] = -c
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal(np.zeros(6), np.linalg.inv(precision), size=200)
    >>> result = graphical_lasso_ebic(empirical_covariance(X), n_samples=200)
    >>> np.argwhere(np.triu(result.precision, k=1)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    >>> k = int(np.argmin(result.path["ebic"]))
    >>> bool(result.path["alphas"][k] == result.alpha), int(result.path["n_edges"][k])
    (True, 3)
    """
    S = check_emp_cov(emp_cov)
    n = check_int(n_samples, "n_samples", 1)
    grid = check_alphas(alphas)
    gamma = check_fraction(gamma, "gamma", 0.0, np.inf, False)
    tol = check_positive(tol, "tol")
    max_iter = check_max_iter(max_iter)
    with blas_single_thread():
        result = _ebic_path(S, n, alpha_grid(grid, S), gamma, tol, max_iter)
    warn_path(result.path["duality_gap"][:, None], result.path["converged"][:, None],
               result.path["alphas"], tol, S.shape[0], max_iter, "graphical_lasso_ebic",
               stacklevel=3)
    return result


class GraphicalLassoEBIC(EmpiricalCovariance):
    """Sparse inverse covariance with the penalty chosen by the extended BIC.

    The penalty minimises ``EBIC_gamma = -2 l_n + |E| log n + 4 gamma |E| log p``
    (Foygel & Drton, 2010) along a warm-started path; see
    :func:`graphical_lasso_ebic`. Made for recovering the graph (which edges
    exist) rather than for predicting held-out data like
    :class:`GraphicalLassoCV`.

    Parameters
    ----------
    alphas : int or array-like of float
        Number of alphas log-spaced from alpha_max down to alpha_max / 100, or
        the alphas themselves.
    gamma : float >= 0
        0 is the BIC; 0.5 (default) the authors' recommendation.
    tol : float
        Duality-gap tolerance of every fit, relative to the number of regions.
    max_iter : int
        Maximum Newton iterations per fit.
    verbose : bool
        Log the chosen alpha at INFO level.
    assume_centered : bool
        Do not remove the mean.

    Attributes
    ----------
    location_, covariance_, precision_, alpha_, n_iter_, duality_gap_,
    converged_, objective_, n_features_in_
        As :class:`GraphicalLassoCV`; the fit at ``alpha_`` is the path's.
    alphas_ : array
        The path, decreasing.
    ebic_path_ : array
        EBIC at each of ``alphas_``.
    path_results_ : dict
        ``alphas``, ``ebic``, ``log_likelihood``, ``n_edges``, ``duality_gap``
        and ``converged`` of every fit of the path.
    path_converged_ : bool
        Every fit of the path reached its tolerance.

    Examples
    --------
    Six regions interacting in three pairs:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import GraphicalLassoEBIC
    >>> precision = np.eye(6)
    >>> for (i, j), c in zip([(0, 1), (2, 3), (4, 5)], [0.5, 0.4, 0.3]):
    ...     precision[i, j] = precision[j, i] = -c
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal(np.zeros(6), np.linalg.inv(precision), size=200)
    >>> est = GraphicalLassoEBIC().fit(X)
    >>> np.argwhere(np.triu(est.precision_, k=1)).tolist()  # the three pairs, nothing else
    [[0, 1], [2, 3], [4, 5]]
    >>> est.converged_, bool(est.alpha_ == est.alphas_[np.argmin(est.ebic_path_)])
    (True, True)
    """

    def __init__(self, *, alphas: Any = DEFAULT_N_ALPHAS, gamma: float = 0.5, tol: float = 1e-4,
                 max_iter: int = 100, verbose: bool = False, assume_centered: bool = False):
        self.alphas = alphas
        self.gamma = gamma
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.assume_centered = assume_centered

    def fit(self, X: Any, y: Any = None) -> GraphicalLassoEBIC:
        """Choose alpha by EBIC on ``X`` (n_samples, n_features)."""
        grid = check_alphas(self.alphas)
        gamma = check_fraction(self.gamma, "gamma", 0.0, np.inf, False)
        tol = check_positive(self.tol, "tol")
        max_iter = check_max_iter(self.max_iter)
        arr = check_samples(X, min_samples=2)
        self.location_, S = centred_covariance(arr, self.assume_centered)
        with blas_single_thread():
            result = _ebic_path(S, arr.shape[0], alpha_grid(grid, S), gamma, tol, max_iter)
        path = result.path
        self.alpha_ = result.alpha
        self.alphas_, self.ebic_path_, self.path_results_ = path["alphas"], path["ebic"], path
        self.path_converged_ = bool(np.all(path["converged"]))
        set_solution(self, result, S.shape[0])
        warn_path(path["duality_gap"][:, None], path["converged"][:, None], path["alphas"],
                   tol, S.shape[0], max_iter, "GraphicalLassoEBIC", stacklevel=3)
        if self.verbose:
            logger.info("GraphicalLassoEBIC: alpha %.4g, %d edges, EBIC %.6g", self.alpha_,
                        count_edges(self.precision_), np.min(self.ebic_path_))
        return self
