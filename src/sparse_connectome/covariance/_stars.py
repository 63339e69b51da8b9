"""Penalty selection for graph recovery by stability: StARS.

StARS (Liu, Roeder & Wasserman, NIPS 2010)
    ``N = n_subsamples`` subsamples of size ``b`` are drawn without replacement;
    each is fitted along the same warm-started path. At each alpha, ``theta_ij``
    is the fraction of subsamples selecting edge ``(i, j)``, its instability
    ``xi_ij = 2 theta_ij (1 - theta_ij)``, and the total instability ``D`` is
    the mean of ``xi_ij`` over the ``p (p - 1) / 2`` pairs. Monotonised from the
    sparse end, ``D_bar(alpha) = max over alpha' >= alpha of D(alpha')``; the
    chosen penalty is the smallest alpha with ``D_bar(alpha) <= beta``, and the
    graph is the full data's fit at that alpha.

    Subsample size: ``b = floor(10 sqrt(n))``, the paper's choice, when that is
    below ``n`` with room to spare (``n > 144``); for fewer samples the paper's
    rule would take (nearly) all of them and the subsamples would not vary, so
    ``b = floor(0.8 n)``, the rule of R's ``huge`` package (``stars.subsample.ratio``).

    The default grid starts at the largest ``alpha_max`` of the full data and of
    the subsamples, where every subsample's graph is empty (``D = 0``), and ends
    at the full data's ``alpha_max / 100``.

    Since ``D_bar`` only grows as alpha decreases, the path stops at the first
    alpha whose instability exceeds ``beta``: no smaller alpha can be chosen,
    and the dense fits below it (the costly ones) are never made. Their
    instabilities are reported as NaN.

    Subsamples are drawn from ``numpy.random.default_rng(random_state)`` before
    any fit; every subsample's path is deterministic and the selection counts are
    integers, so the result does not depend on ``n_jobs``.

The subsample paths use the graphical lasso solver as the EBIC path does (see
:mod:`._ebic`): warm-started, each fit certified by its duality gap.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from .._utils.threads import check_n_jobs, effective_n_jobs, thread_map
from ..errors import DataWarning, InputError, ParameterError
from ._ebic import (
    DEFAULT_N_ALPHAS,
    alpha_grid,
    centred_covariance,
    check_alphas,
    check_fraction,
    check_int,
    count_edges,
    set_solution,
    warn_path,
)
from ._empirical import EmpiricalCovariance, check_positive, check_samples, empirical_covariance
from ._graphical_lasso import (
    alpha_max,
    blas_single_thread,
    check_emp_cov,
    check_max_iter,
    solve,
    warn_not_converged,
)

__all__ = ["graphical_lasso_stars", "GraphicalLassoStARS"]

logger = logging.getLogger(__name__)



# --------------------------------------------------------------------------- #
# StARS
# --------------------------------------------------------------------------- #
def default_subsample_size(n_samples: int) -> int:
    """StARS subsample size: ``floor(10 sqrt(n))`` for ``n > 144``, else ``floor(0.8 n)``.

    The first is Liu, Roeder & Wasserman's choice; below 145 samples it would
    keep (nearly) every sample, so R's ``huge`` rule (80 %) takes over.

    Examples
    --------
    >>> from sparse_connectome.covariance._stars import default_subsample_size
    >>> default_subsample_size(168), default_subsample_size(100), default_subsample_size(1000)
    (129, 80, 316)
    """
    if n_samples > 144:
        return int(np.floor(10.0 * np.sqrt(n_samples)))
    return int(np.floor(0.8 * n_samples))


def _draw_subsamples(n: int, size: Any, n_subsamples: int, random_state: Any) -> np.ndarray:
    """(n_subsamples, b) sorted indices, each row drawn without replacement."""
    if size is None:
        b = default_subsample_size(n)
        if b < 2:
            raise InputError(f"X has {n} samples; StARS needs at least 3 to draw subsamples")
    else:
        b = check_int(size, "subsample_size", 2)
        if b >= n:
            raise ParameterError(f"subsample_size must be below the number of samples "
                                 f"({n}), got {size!r}")
    rng = stars_rng(random_state)
    return np.array([np.sort(rng.choice(n, size=b, replace=False)) for _ in range(n_subsamples)])


def stars_rng(random_state: Any) -> np.random.Generator:
    """The generator of the subsample draws, ``numpy.random.default_rng(random_state)``.

    Examples
    --------
    >>> from sparse_connectome.covariance._stars import stars_rng
    >>> int(stars_rng(0).integers(10)) == int(stars_rng(0).integers(10))
    True
    """
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise ParameterError(f"random_state must be None, an int or a numpy Generator, "
                             f"got {random_state!r}") from None


class _SubsamplePath:
    """One subsample's warm-started path: its covariance and its last solution."""

    def __init__(self, X_sub: np.ndarray, assume_centered: bool, index: int):
        S = empirical_covariance(X_sub, assume_centered=assume_centered)
        self.S = check_emp_cov(S, f"the covariance of StARS subsample {index}")
        self.init: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return self.S.shape[0]

    def step(self, alpha: float, tol: float, max_iter: int) -> tuple[np.ndarray, float, bool]:
        """Fit at ``alpha`` from the previous solution: (support, gap, converged)."""
        res = solve(self.S, alpha, tol, max_iter, self.init, True)
        self.init = res.precision
        return res.precision != 0, res.duality_gap, res.converged


def instability(counts: np.ndarray, n_subsamples: int) -> float:
    """StARS total instability: mean of ``2 theta (1 - theta)`` over the pairs ``i < j``.

    ``counts[i, j]`` is the number of subsamples that selected edge ``(i, j)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance._stars import instability
    >>> counts = np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]])  # out of 2 subsamples
    >>> instability(counts, 2)  # pairs: theta 1, 0.5, 0 -> xi 0, 0.5, 0
    0.16666666666666666
    """
    theta = counts[np.triu_indices(counts.shape[0], k=1)] / n_subsamples
    return float(np.mean(2.0 * theta * (1.0 - theta)))


def stars_path(paths: list, alphas: np.ndarray, beta: float, tol: float, max_iter: int,
               n_jobs: int | None = None) -> Bunch:
    """Walk down the alphas, all subsamples in step, until the instability exceeds beta.

    ``paths`` are warm-started subsample paths: objects with ``n_features`` and
    ``step(alpha, tol, max_iter) -> (support, duality gap, converged)`` (a single
    subject's graphical lasso here, the group sparse model in
    :mod:`sparse_connectome.connectome`). Returns the index of the chosen alpha, the
    selection frequencies there, the instability (raw and monotone), mean edge counts,
    and every fit's duality gap and convergence.

    Examples
    --------
    >>> import numpy as np
    >>> class Fixed:  # a path that selects edge (0, 1) below alpha 0.5
    ...     n_features = 3
    ...     def step(self, alpha, tol, max_iter):
    ...         support = np.zeros((3, 3), dtype=bool)
    ...         support[0, 1] = support[1, 0] = alpha < 0.5
    ...         return support, 0.0, True
    >>> walk = stars_path([Fixed(), Fixed()], np.array([0.9, 0.4, 0.1]), 0.05, 1e-4, 10)
    >>> int(walk.index), float(walk.frequencies[0, 1]), walk.instability.tolist()
    (2, 1.0, [0.0, 0.0, 0.0])
    """
    n_sub, p, K = len(paths), paths[0].n_features, len(alphas)
    D = np.full(K, np.nan)
    gaps = np.full((K, n_sub), np.nan)
    conv = np.ones((K, n_sub), dtype=bool)
    mean_edges = np.full(K, np.nan)
    chosen, chosen_counts = None, np.zeros((p, p), dtype=np.int64)
    n_threads = effective_n_jobs(n_jobs)
    for k, alpha in enumerate(alphas):
        fits = thread_map(lambda path, a=float(alpha): path.step(a, tol, max_iter), paths,
                          n_threads)
        counts = np.sum([support for support, _, _ in fits], axis=0, dtype=np.int64)
        np.fill_diagonal(counts, 0)
        gaps[k] = [gap for _, gap, _ in fits]
        conv[k] = [ok for _, _, ok in fits]
        D[k] = instability(counts, n_sub)
        mean_edges[k] = np.sum(np.triu(counts, k=1)) / n_sub
        if k == 0:
            # Kept, with a warning, when even the largest alpha is too unstable.
            chosen_counts = counts
        if np.nanmax(D[:k + 1]) > beta:
            break
        chosen, chosen_counts = k, counts
    monotone = np.fmax.accumulate(D)
    monotone[np.isnan(D)] = np.nan
    return Bunch(index=chosen, frequencies=chosen_counts / n_sub, instability=D,
                 monotone_instability=monotone, meancount_edges=mean_edges, duality_gaps=gaps,
                 converged=conv)


def chosen_index(walk: Bunch, alphas: np.ndarray, beta: float, where: str, stacklevel: int) -> int:
    """The index of the chosen alpha in a :func:`stars_path` walk.

    When even the largest alpha is too unstable it is kept, with a DataWarning
    (``stacklevel`` counted from the caller).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome._utils.bunch import Bunch
    >>> from sparse_connectome.covariance._stars import chosen_index
    >>> chosen_index(Bunch(index=1, instability=np.array([0.0, 0.01])), np.array([0.5, 0.2]),
    ...              0.05, "StARS", 2)
    1
    """
    if walk.index is not None:
        return walk.index
    warnings.warn(
        f"{where}: the instability at the largest alpha ({alphas[0]:.4g}) is already "
        f"{walk.instability[0]:.3g} > beta = {beta}; the largest alpha is kept. "
        "Give larger alphas, or raise beta.", DataWarning, stacklevel=stacklevel + 1)
    return 0


def _run_stars(arr: np.ndarray, grid: int | np.ndarray, params: Bunch) -> Bunch:
    """StARS on validated samples: the path, the choice and the full data's fit."""
    location, S = centred_covariance(arr, params.assume_centered)
    subsamples = _draw_subsamples(arr.shape[0], params.subsample_size, params.n_subsamples,
                                  params.random_state)
    centred = arr - location
    paths = [_SubsamplePath(centred[idx], params.assume_centered, i)
             for i, idx in enumerate(subsamples)]
    # The path starts where every subsample's graph is empty (D = 0).
    alphas = alpha_grid(grid, S, top=max(alpha_max(path.S) for path in paths))
    with blas_single_thread():
        walk = stars_path(paths, alphas, params.beta, params.tol, params.max_iter,
                           params.n_jobs)
        alpha = float(alphas[chosen_index(walk, alphas, params.beta, "StARS", stacklevel=3)])
        final = solve(S, alpha, params.tol, params.max_iter, None, True)
    fitted = ~np.isnan(walk.instability)
    path = {"alphas": alphas.copy(), "instability": walk.instability,
            "monotone_instability": walk.monotone_instability,
            "meancount_edges": walk.meancount_edges, "fitted": fitted,
            "max_duality_gap": np.nanmax(walk.duality_gaps, axis=1, initial=-np.inf,
                                         where=fitted[:, None]),
            "converged": np.all(walk.converged, axis=1)}
    return Bunch(alpha=alpha, location=location, covariance=final.covariance,
                 precision=final.precision, n_iter=final.n_iter,
                 duality_gap=final.duality_gap, converged=final.converged,
                 objective=final.objective, status=final.status, edge_stability=walk.frequencies,
                 subsamples=subsamples, path=path, path_duality_gaps=walk.duality_gaps[fitted],
                 path_converged=walk.converged[fitted])


def _stars_params(beta: Any, n_subsamples: Any, subsample_size: Any, random_state: Any,
                  n_jobs: Any, tol: Any, max_iter: Any, assume_centered: bool) -> Bunch:
    """Checked StARS parameters (``subsample_size`` is checked against the data later)."""
    return Bunch(beta=check_fraction(beta, "beta", 0.0, 0.5, True),
                 n_subsamples=check_int(n_subsamples, "n_subsamples", 2),
                 subsample_size=subsample_size, random_state=random_state,
                 n_jobs=check_n_jobs(n_jobs), tol=check_positive(tol, "tol"),
                 max_iter=check_max_iter(max_iter), assume_centered=bool(assume_centered))


def _warn_stars(result: Bunch, params: Bunch, p: int, where: str, stacklevel: int) -> None:
    fitted = result.path["fitted"]
    warn_path(result.path_duality_gaps, result.path_converged, result.path["alphas"][fitted],
               params.tol, p, params.max_iter, f"{where} (subsample paths)", stacklevel + 1)
    if not result.converged:
        warn_not_converged(result, params.tol, p, params.max_iter, f"{where} final fit",
                           stacklevel=stacklevel + 1)


def graphical_lasso_stars(X: Any, *, alphas: Any = DEFAULT_N_ALPHAS, beta: float = 0.05,
                          n_subsamples: int = 20, subsample_size: int | None = None,
                          random_state: Any = None, n_jobs: int | None = None,
                          tol: float = 1e-4, max_iter: int = 100,
                          assume_centered: bool = False) -> Bunch:
    """Graphical lasso with the penalty chosen by stability (StARS).

    Parameters
    ----------
    X : array of shape (n_samples, p)
        Samples (time points) of the regions.
    alphas : int or array-like of float
        Number of alphas log-spaced from the largest alpha_max of the data and
        of the subsamples down to the data's alpha_max / 100, or the alphas
        themselves (walked in decreasing order).
    beta : float in (0, 0.5]
        Largest accepted total instability (0.05 in the paper).
    n_subsamples : int
        Number of subsamples ``N`` (20 in the paper).
    subsample_size : int or None
        Samples per subsample ``b``; None: ``floor(10 sqrt(n))`` when
        ``n > 144``, else ``floor(0.8 n)`` (see the module notes).
    random_state : None, int or numpy Generator
        Seed of the subsample draws: the same seed gives the same result.
    n_jobs : int or None
        Subsamples fitted in parallel threads; the result does not depend on it.
    tol : float
        Duality-gap tolerance of every fit, relative to ``p``.
    max_iter : int
        Maximum Newton iterations per fit.
    assume_centered : bool
        Do not remove the mean (of the data, nor of the subsamples).

    Returns
    -------
    Bunch
        ``alpha``, ``location``, and the full data's fit at ``alpha``:
        ``covariance``, ``precision``, ``n_iter``, ``duality_gap``, ``converged``,
        ``objective``; ``edge_stability`` (p, p), the fraction of subsamples
        selecting each edge at ``alpha`` (0 on the diagonal); ``subsamples``
        (N, b), the indices of each subsample; ``path``, a dict of arrays aligned
        with ``path["alphas"]`` (decreasing): ``instability`` (``D``, NaN below
        the first alpha where it exceeds ``beta``: not fitted), ``monotone_instability``
        (``D_bar``), ``meancount_edges`` (per subsample), ``fitted``,
        ``max_duality_gap``, ``converged``; ``path_duality_gaps`` and
        ``path_converged`` (fitted alphas, N) of every subsample fit.

    Warns
    -----
    ConvergenceWarning
        When a fit misses its tolerance.
    DataWarning
        When even the largest alpha is too unstable (it is kept).

    Examples
    --------
    Six regions interacting in three pairs:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import graphical_lasso_stars
    >>> precision = np.eye(6)
    >>> for (i, j), c in zip([(0, 1), (2, 3), (4, 5)], [0.5, 0.4, 0.3]):
    ...     precision[i, j] = precision[j, i] = -c
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal(np.zeros(6), np.linalg.inv(precision), size=200)
    >>> result = graphical_lasso_stars(X, random_state=0)
    >>> np.argwhere(np.triu(result.precision, k=1)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    >>> result.subsamples.shape  # 20 subsamples of floor(10 sqrt(200)) samples
    (20, 141)
    >>> bool(np.nanmax(result.path["monotone_instability"][result.path["alphas"] >= result.alpha])
    ...      <= 0.05)
    True
    """
    params = _stars_params(beta, n_subsamples, subsample_size, random_state, n_jobs, tol,
                           max_iter, assume_centered)
    grid = check_alphas(alphas)
    arr = check_samples(X, min_samples=2)
    result = _run_stars(arr, grid, params)
    _warn_stars(result, params, arr.shape[1], "graphical_lasso_stars", stacklevel=3)
    return result


class GraphicalLassoStARS(EmpiricalCovariance):
    """Sparse inverse covariance with the penalty chosen by stability (StARS).

    The least penalty whose edge instability over subsamples stays below
    ``beta`` (Liu, Roeder & Wasserman, 2010); see :func:`graphical_lasso_stars`
    and the module notes. Made for recovering the graph, and says how stable
    each edge is (``edge_stability_``).

    Parameters
    ----------
    alphas : int or array-like of float
        Number of alphas log-spaced from the largest alpha_max of the data and
        of the subsamples down to the data's alpha_max / 100, or the alphas
        themselves.
    beta : float in (0, 0.5]
        Largest accepted total instability.
    n_subsamples : int
        Number of subsamples.
    subsample_size : int or None
        Samples per subsample; None: ``floor(10 sqrt(n))`` for ``n > 144``,
        else ``floor(0.8 n)``.
    random_state : None, int or numpy Generator
        Seed of the subsample draws.
    n_jobs : int or None
        Subsamples fitted in parallel threads (same result for any value).
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
        As :class:`GraphicalLassoCV`; the fit is the full data's at ``alpha_``.
    alphas_ : array
        The path, decreasing.
    instability_path_ : array
        Total instability ``D`` at each of ``alphas_`` (NaN where not fitted:
        below the first alpha whose instability exceeds ``beta``).
    monotone_instability_path_ : array
        ``D_bar``, the running maximum of ``D`` from the largest alpha.
    edge_stability_ : array (p, p)
        Fraction of subsamples that select each edge at ``alpha_`` (0 on the
        diagonal).
    subsamples_ : array (n_subsamples, subsample_size)
        Indices of the samples of each subsample.
    path_results_ : dict
        ``alphas``, ``instability``, ``monotone_instability``, ``meancount_edges``,
        ``fitted``, ``max_duality_gap``, ``converged`` along the path.
    path_converged_ : bool
        Every subsample fit reached its tolerance.

    Examples
    --------
    Six regions interacting in three pairs:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import GraphicalLassoStARS
    >>> precision = np.eye(6)
    >>> for (i, j), c in zip([(0, 1), (2, 3), (4, 5)], [0.5, 0.4, 0.3]):
    ...     precision[i, j] = precision[j, i] = -c
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal(np.zeros(6), np.linalg.inv(precision), size=200)
    >>> est = GraphicalLassoStARS(random_state=0).fit(X)
    >>> np.argwhere(np.triu(est.precision_, k=1)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    >>> float(est.edge_stability_[0, 1])  # selected in every subsample
    1.0
    >>> bool(np.nanmax(est.instability_path_) > est.beta)  # the path stops past beta
    True
    """

    def __init__(self, *, alphas: Any = DEFAULT_N_ALPHAS, beta: float = 0.05,
                 n_subsamples: int = 20, subsample_size: int | None = None,
                 random_state: Any = None, n_jobs: int | None = None, tol: float = 1e-4,
                 max_iter: int = 100, verbose: bool = False, assume_centered: bool = False):
        self.alphas = alphas
        self.beta = beta
        self.n_subsamples = n_subsamples
        self.subsample_size = subsample_size
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.assume_centered = assume_centered

    def fit(self, X: Any, y: Any = None) -> GraphicalLassoStARS:
        """Choose alpha by StARS on ``X`` (n_samples, n_features), then fit all of ``X``."""
        params = _stars_params(self.beta, self.n_subsamples, self.subsample_size,
                               self.random_state, self.n_jobs, self.tol, self.max_iter,
                               self.assume_centered)
        grid = check_alphas(self.alphas)
        arr = check_samples(X, min_samples=2)
        result = _run_stars(arr, grid, params)
        self.alpha_, self.location_ = result.alpha, result.location
        path = result.path
        self.alphas_, self.path_results_ = path["alphas"], path
        self.instability_path_ = path["instability"]
        self.monotone_instability_path_ = path["monotone_instability"]
        self.edge_stability_, self.subsamples_ = result.edge_stability, result.subsamples
        self.path_converged_ = bool(np.all(result.path_converged))
        set_solution(self, result, arr.shape[1])
        _warn_stars(result, params, arr.shape[1], "GraphicalLassoStARS", stacklevel=3)
        if self.verbose:
            logger.info("GraphicalLassoStARS: alpha %.4g, %d edges, instability %.3g",
                        self.alpha_, count_edges(self.precision_),
                        self.instability_path_[np.flatnonzero(self.alphas_ == self.alpha_)[0]])
        return self
