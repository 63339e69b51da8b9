"""The group sparse model with the penalty chosen by stability (StARS).

:class:`GroupSparseCovarianceCV` picks alpha by the held-out likelihood, which
keeps many weak edges: good for prediction, poor for the graph. StARS (Liu,
Roeder & Wasserman, NIPS 2010; the single-subject version is
:mod:`sparse_connectome.covariance._stars`) picks the least penalty whose graph
is stable under subsampling:

* ``N = n_subsamples`` group subsamples are drawn: in each, every subject keeps
  the same fraction of its time points, drawn without replacement. The
  fraction is ``b / n_min`` where ``n_min`` is the fewest time points of a
  subject and ``b`` is ``subsample_size`` or the StARS rule
  ``default_subsample_size(n_min)`` (``floor(10 sqrt(n))`` for ``n > 144``,
  else ``floor(0.8 n)``); subject ``k`` keeps ``floor(fraction * n_k)``.
* Each subsample is fitted along the same decreasing alpha path, warm-started
  from its previous alpha, each fit certified by its duality gap
  (``tol * p``). The group edge ``(i, j)`` is selected when its norm across
  subjects, ``||(Theta_1[i, j], ..., Theta_K[i, j])||``, is nonzero (all
  subjects share the support).
* At each alpha, ``theta_ij`` is the fraction of subsamples selecting
  ``(i, j)``, and the total instability ``D`` the mean of
  ``2 theta_ij (1 - theta_ij)`` over the pairs; ``D_bar``, its running maximum
  from the largest alpha; the chosen alpha is the smallest with
  ``D_bar <= beta``, and the model is the fit of all the data at that alpha.

The default grid runs from the largest group ``alpha_max`` of the full data and
of the subsamples (every subsample's graph is empty there: ``D = 0``) down to
the full data's ``alpha_max / 100``. As in the single-subject version, the path
stops at the first alpha whose instability exceeds ``beta`` (no smaller alpha
can be chosen, and the dense fits, the costly ones, are never made); the
instabilities below it are NaN.

All subsamples are drawn from ``numpy.random.default_rng(random_state)``
before any fit, subsample by subsample and subject by subject: the same seed
gives the same result.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from .._utils.estimator import BaseEstimator
from ..covariance._ebic import DEFAULT_N_ALPHAS, check_alphas, check_fraction, check_int
from ..covariance._stars import chosen_index, default_subsample_size, stars_path, stars_rng
from ..errors import ConvergenceWarning, InputError, ParameterError
from ._group_sparse import (
    blas_single_thread,
    check_subjects,
    check_tol_iter,
    empirical_covariances,
    group_sparse_alpha_max,
    normalized_weights,
    set_group_solution,
    solve_group_problem,
    stack_covariances,
    warn_not_converged,
)

__all__ = ["group_sparse_stars", "GroupSparseCovarianceStARS"]

logger = logging.getLogger(__name__)


def _subsample_sizes(n_samples: np.ndarray, size: Any) -> np.ndarray:
    """Samples kept per subject: the same fraction of every subject's time points."""
    n_min = int(n_samples.min())
    if size is None:
        b = default_subsample_size(n_min)
    else:
        b = check_int(size, "subsample_size", 2)
        if b >= n_min:
            raise ParameterError(f"subsample_size must be below the fewest samples of a "
                                 f"subject ({n_min}), got {size!r}")
    # Integer arithmetic: the subject with n_min samples keeps exactly b.
    sizes = (b * n_samples.astype(np.int64)) // n_min
    if np.any(sizes < 2) or np.any(sizes >= n_samples):
        k = int(np.flatnonzero((sizes < 2) | (sizes >= n_samples))[0])
        raise InputError(f"subjects[{k}] has {int(n_samples[k])} samples: its StARS "
                         f"subsamples would keep {int(sizes[k])}; expected at least 2 and fewer "
                         "than all (give subjects at least 3 samples)")
    return sizes


def draw_group_subsamples(n_samples: np.ndarray, sizes: np.ndarray, n_subsamples: int,
                          random_state: Any) -> list[np.ndarray]:
    """Per subject, an (n_subsamples, size_k) array of sorted sample indices.

    Drawn subsample by subsample, subject by subject, without replacement.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome._group_sparse_stars import draw_group_subsamples
    >>> idx = draw_group_subsamples(np.array([10, 20]), np.array([5, 10]), 3, 0)
    >>> [a.shape for a in idx]
    [(3, 5), (3, 10)]
    """
    rng = stars_rng(random_state)
    draws = [[np.sort(rng.choice(int(n), size=int(b), replace=False))
              for n, b in zip(n_samples, sizes, strict=True)] for _ in range(n_subsamples)]
    return [np.array([d[k] for d in draws]) for k in range(len(sizes))]


class _GroupPath:
    """One group subsample's warm-started path: its covariances, weights, last solution."""

    def __init__(self, subjects: list[np.ndarray], indices: list[np.ndarray]):
        covs, n = empirical_covariances([x[idx] for x, idx in zip(subjects, indices, strict=True)])
        self.S = stack_covariances(covs)
        self.w = normalized_weights(n, len(subjects))
        self.init: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return self.S.shape[1]

    def alpha_max(self) -> float:
        return float(group_sparse_alpha_max(np.moveaxis(self.S, 0, -1), self.w))

    def step(self, alpha: float, tol: float, max_iter: int) -> tuple[np.ndarray, float, bool]:
        """Fit at ``alpha`` from the previous solution: (group support, gap, converged)."""
        res = solve_group_problem(self.S, self.w, alpha, tol, max_iter, self.init)
        self.init = res.precisions
        support = np.any(res.precisions != 0, axis=0)
        np.fill_diagonal(support, False)
        return support, res.duality_gap, res.converged


def _grid(alphas: int | np.ndarray, S: np.ndarray, w: np.ndarray,
          paths: list[_GroupPath]) -> np.ndarray:
    if not isinstance(alphas, int):
        return alphas
    largest = group_sparse_alpha_max(np.moveaxis(S, 0, -1), w)
    if largest <= 0:
        raise InputError("subjects have no off-diagonal covariance (group alpha_max = 0): "
                         "all regions are uncorrelated or there is a single region")
    top = max(largest, max(path.alpha_max() for path in paths))
    return np.logspace(np.log10(top), np.log10(0.01 * largest), alphas)


def _warn(result: Bunch, tol: float, p: int, max_iter: int, where: str) -> None:
    missed = ~result.path_converged
    if np.any(missed):
        warnings.warn(
            f"{where}: {int(missed.sum())} subsample fit(s) did not reach tol * p = "
            f"{tol * p:.3g} within max_iter = {max_iter} (largest gap "
            f"{float(np.max(result.path_duality_gaps[missed])):.3g}); raise max_iter",
            ConvergenceWarning, stacklevel=3)
    if not result.converged:
        warn_not_converged(result, tol, p, f"{where} (final fit)")


def _stars_params(alphas: Any, beta: Any, n_subsamples: Any, tol: Any, max_iter: Any) -> Bunch:
    check_tol_iter(tol, max_iter)
    return Bunch(grid=check_alphas(alphas), beta=check_fraction(beta, "beta", 0.0, 0.5, True),
                 n_subsamples=check_int(n_subsamples, "n_subsamples", 2), tol=float(tol),
                 max_iter=int(max_iter))


def group_sparse_stars(subjects: Any, *, alphas: Any = DEFAULT_N_ALPHAS, beta: float = 0.05,
                       n_subsamples: int = 20, subsample_size: int | None = None,
                       tol: float = 1e-4, max_iter: int = 100, random_state: Any = 0) -> Bunch:
    """Group sparse inverse covariance with the penalty chosen by stability (StARS).

    Parameters
    ----------
    subjects : list of arrays of shape (n_samples_k, n_regions)
        One array per subject (as :func:`group_sparse_covariance`).
    alphas : int or array-like of float
        Number of alphas log-spaced from the largest group alpha_max of the
        data and of the subsamples down to the data's alpha_max / 100, or the
        alphas themselves (walked in decreasing order).
    beta : float in (0, 0.5]
        Largest accepted total instability (0.05 in the paper).
    n_subsamples : int >= 2
        Number of group subsamples (20 in the paper).
    subsample_size : int or None
        Samples kept from the subject with the fewest; the others keep the same
        fraction. None: ``floor(10 sqrt(n))`` for ``n > 144``, else ``floor(0.8 n)``.
    tol : float
        Duality-gap tolerance (per region) of every fit.
    max_iter : int
        Maximum Newton iterations per fit.
    random_state : None, int or numpy Generator
        Seed of the subsample draws.

    Returns
    -------
    Bunch
        ``alpha``; the fit of all data at ``alpha``: ``covariances`` (empirical)
        and ``precisions`` (p, p, K), ``duality_gap``, ``converged``, ``n_iter``,
        ``objective``, ``status``; ``edge_stability`` (p, p), the fraction of
        subsamples selecting each group edge at ``alpha``; ``subsamples``, per
        subject an (N, b_k) array of sample indices; ``alphas`` (decreasing) and,
        aligned with them, ``instability`` (NaN where not fitted),
        ``monotone_instability``, ``meancount_edges``; ``path_duality_gaps`` and
        ``path_converged`` (fitted alphas, N).

    Warns
    -----
    ConvergenceWarning
        When a fit misses its tolerance.
    DataWarning
        When even the largest alpha is too unstable (it is kept).

    Examples
    --------
    Three subjects whose regions 0-1 and 2-3 interact, among ten:

    >>> import numpy as np
    >>> from sparse_connectome.connectome import group_sparse_stars
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((100, 10)) for _ in range(3)]
    >>> for x in subjects:
    ...     x[:, 1] += x[:, 0]
    ...     x[:, 3] += x[:, 2]
    >>> result = group_sparse_stars(subjects, n_subsamples=10, random_state=0)
    >>> bool(np.all(result.precisions[0, 1] != 0) and np.all(result.precisions[2, 3] != 0))
    True
    >>> float(result.edge_stability[0, 1]), float(result.edge_stability[2, 3]), result.converged
    (1.0, 1.0, True)
    >>> chosen = result.alphas >= result.alpha  # the path down to the chosen alpha
    >>> bool(np.max(result.monotone_instability[chosen]) <= 0.05)
    True
    """
    params = _stars_params(alphas, beta, n_subsamples, tol, max_iter)
    subjects = check_subjects(subjects)
    emp_covs, n_samples = empirical_covariances(subjects)
    S = stack_covariances(emp_covs)
    w = normalized_weights(n_samples, S.shape[0])
    sizes = _subsample_sizes(n_samples, subsample_size)
    subsamples = draw_group_subsamples(n_samples, sizes, params.n_subsamples, random_state)
    paths = [_GroupPath(subjects, [idx[i] for idx in subsamples])
             for i in range(params.n_subsamples)]
    grid = _grid(params.grid, S, w, paths)
    with blas_single_thread():
        walk = stars_path(paths, grid, params.beta, params.tol, params.max_iter)
        alpha = float(grid[chosen_index(walk, grid, params.beta, "group StARS", stacklevel=2)])
        final = solve_group_problem(S, w, alpha, params.tol, params.max_iter)
    fitted = ~np.isnan(walk.instability)
    result = Bunch(alpha=alpha, covariances=emp_covs, precisions=np.moveaxis(final.precisions, 0, -1),
                   duality_gap=final.duality_gap, converged=final.converged, n_iter=final.n_iter,
                   objective=final.objective, status=final.status,
                   edge_stability=walk.frequencies, subsamples=subsamples, alphas=grid.copy(),
                   instability=walk.instability, monotone_instability=walk.monotone_instability,
                   meancount_edges=walk.meancount_edges,
                   path_duality_gaps=walk.duality_gaps[fitted],
                   path_converged=walk.converged[fitted])
    _warn(result, params.tol, S.shape[1], params.max_iter, "group_sparse_stars")
    return result


class GroupSparseCovarianceStARS(BaseEstimator):
    """Group sparse inverse covariance with alpha chosen by stability (StARS).

    The least penalty whose group-edge instability over subsamples stays below
    ``beta``; see :func:`group_sparse_stars` and the module notes. Made for
    recovering the shared graph, where :class:`GroupSparseCovarianceCV` keeps
    many weak edges; says how stable each edge is (``edge_stability_``).

    Parameters
    ----------
    alphas : int or array-like of float
        Number of alphas on the path, or the alphas themselves.
    beta : float in (0, 0.5]
        Largest accepted total instability.
    n_subsamples : int >= 2
        Number of group subsamples.
    subsample_size : int or None
        Samples kept from the subject with the fewest (the others keep the same
        fraction); None: the StARS rule.
    tol : float
        Duality-gap tolerance (per region) of every fit.
    max_iter : int
        Maximum Newton iterations per fit.
    random_state : None, int or numpy Generator
        Seed of the subsample draws.
    verbose : bool
        Log the chosen alpha at INFO level.

    Attributes
    ----------
    covariances_ : array (n_regions, n_regions, n_subjects), empirical covariances.
    precisions_ : array (n_regions, n_regions, n_subjects), the fit of all data at ``alpha_``.
    alpha_ : float, the chosen alpha.
    alphas_ : array, the path (decreasing).
    instability_ : array, total instability at each of ``alphas_`` (NaN where not fitted).
    monotone_instability_ : array, its running maximum from the largest alpha.
    edge_stability_ : array (n_regions, n_regions), fraction of subsamples whose
        shared support holds each edge at ``alpha_`` (0 on the diagonal).
    subsamples_ : list of arrays (n_subsamples, b_k), the sample indices per subject.
    path_converged_ : bool, every subsample fit reached its tolerance.
    duality_gap_, converged_, n_iter_, objective_, n_features_in_ : of the final fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import GroupSparseCovarianceStARS
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((100, 10)) for _ in range(3)]
    >>> for x in subjects:
    ...     x[:, 1] += x[:, 0]
    >>> est = GroupSparseCovarianceStARS(n_subsamples=10).fit(subjects)
    >>> est.precisions_.shape, est.converged_
    ((10, 10, 3), True)
    >>> bool(np.all(est.precisions_[0, 1] != 0)), float(est.edge_stability_[0, 1])
    (True, 1.0)
    """

    def __init__(self, *, alphas: Any = DEFAULT_N_ALPHAS, beta: float = 0.05,
                 n_subsamples: int = 20, subsample_size: int | None = None, tol: float = 1e-4,
                 max_iter: int = 100, random_state: Any = 0, verbose: bool = False):
        self.alphas = alphas
        self.beta = beta
        self.n_subsamples = n_subsamples
        self.subsample_size = subsample_size
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, subjects: Any, y: Any = None) -> GroupSparseCovarianceStARS:
        """Choose alpha by StARS on a list of (n_samples_k, n_regions) arrays, then fit all."""
        r = group_sparse_stars(subjects, alphas=self.alphas, beta=self.beta,
                               n_subsamples=self.n_subsamples,
                               subsample_size=self.subsample_size, tol=self.tol,
                               max_iter=self.max_iter, random_state=self.random_state)
        set_group_solution(self, r.covariances, r.precisions, r)
        self.alpha_, self.alphas_, self.instability_ = r.alpha, r.alphas, r.instability
        self.monotone_instability_ = r.monotone_instability
        self.edge_stability_, self.subsamples_ = r.edge_stability, r.subsamples
        self.path_converged_ = bool(np.all(r.path_converged))
        if self.verbose:
            edges = int(np.count_nonzero(np.triu(self.precisions_[..., 0], k=1)))
            logger.info("GroupSparseCovarianceStARS: alpha %.4g, %d shared edges", self.alpha_,
                        edges)
        return self
