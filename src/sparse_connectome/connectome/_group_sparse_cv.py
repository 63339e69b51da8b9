"""``GroupSparseCovarianceCV``: the group sparse model with alpha chosen by cross-validation.

The search is nilearn's, step for step, so that both choose the same alpha
when both solve the problems exactly:

* folds: each subject's samples are split on their own (``cv``: None means 5
  contiguous folds, an int that many, or an object with ``split``); fold ``f``
  takes the ``f``-th split of every subject;
* each fold's training and test signals are standardised (unit variance per
  region), the model is fit on the training covariances (weights from the
  training sample sizes) and scored by the weighted Gaussian log-likelihood of
  the test covariances, ``sum_k w_k [log det Theta_k - tr(S_test_k Theta_k)]``;
* the first grid has ``alphas`` values, log-spaced from ``alpha_max / 100`` to
  ``alpha_max`` (the group screening bound on the full data); each refinement
  puts ``alphas`` new values between the neighbours of the best mean score
  (ties go to the smaller alpha; scores above ``0.1 / eps`` are ignored);
* the final model is fit on the (not standardised) covariances of all samples.

Unlike nilearn there is no early stopping: every fold fit is solved to its
duality-gap tolerance ``tol_cv`` (per region), warm-started along the path,
and the folds run in threads (the compiled kernels, BLAS and LAPACK release
the GIL).
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

from .._utils.estimator import BaseEstimator
from ..covariance import check_cv
from ..errors import ConvergenceWarning, ParameterError
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

__all__ = ["GroupSparseCovarianceCV"]

logger = logging.getLogger(__name__)


class _Fold(NamedTuple):
    train: np.ndarray  # (K, p, p) standardised training covariances
    weights: np.ndarray  # normalised training sample sizes
    test: np.ndarray  # (K, p, p) standardised test covariances


class _PathPoint(NamedTuple):
    alpha: float
    scores: np.ndarray  # per fold
    gaps: np.ndarray  # per fold
    precisions: list | None  # per fold (kept only where a later grid starts from it)


def _make_folds(subjects: list[np.ndarray], cv: Any) -> list[_Fold]:
    splits = [check_cv(cv, x) for x in subjects]
    folds = []
    for pairs in zip(*splits, strict=False):
        train = [x[tr] for x, (tr, _) in zip(subjects, pairs, strict=True)]
        test = [x[te] for x, (_, te) in zip(subjects, pairs, strict=True)]
        S_train, n_train = empirical_covariances(train, standardize=True)
        S_test, _ = empirical_covariances(test, standardize=True)
        folds.append(_Fold(stack_covariances(S_train), normalized_weights(n_train, len(train)),
                           stack_covariances(S_test)))
    return folds


def _score(fold: _Fold, theta: np.ndarray) -> float:
    """Weighted test log-likelihood (nilearn's ``group_sparse_scores(...)[0]``)."""
    total = 0.0
    for k in range(theta.shape[0]):
        sign, logdet = np.linalg.slogdet(theta[k])
        if sign <= 0:
            return -np.inf
        total += fold.weights[k] * (logdet - np.sum(fold.test[k] * theta[k]))
    return float(total)


def _fold_path(fold: _Fold, alphas: np.ndarray, tol: float, max_iter: int,
               init: np.ndarray | None) -> list[tuple[float, float, np.ndarray]]:
    """(score, gap, precisions) along decreasing alphas, each fit warm-started."""
    out = []
    with blas_single_thread():
        for alpha in alphas:
            res = solve_group_problem(fold.train, fold.weights, float(alpha), tol, max_iter, init)
            init = res.precisions
            out.append((_score(fold, init), res.duality_gap, init))
    return out


def _best_index(path: list[_PathPoint]) -> tuple[int, int]:
    """nilearn's choice: the best mean score, ties to the smaller alpha; and the last finite."""
    best, best_score, last_finite = 0, -np.inf, 0
    for index, point in enumerate(path):
        score = float(np.mean(point.scores))
        if score >= 0.1 / np.finfo(np.float64).eps:
            score = np.nan
        if np.isfinite(score):
            last_finite = index
        if score >= best_score:
            best_score, best = score, index
    return best, last_finite


def _refine(path: list[_PathPoint], n_alphas: int) -> tuple[np.ndarray, int]:
    """The next grid (decreasing, ends excluded) and the path index it starts from."""
    best, last_finite = _best_index(path)
    if best == 0:
        hi, lo, start = path[0].alpha, path[1].alpha, 0
    elif best == last_finite and best != len(path) - 1:
        hi, lo, start = path[best].alpha, path[best + 1].alpha, best
    elif best == len(path) - 1:
        hi, lo, start = path[best].alpha, 0.01 * path[best].alpha, best
    else:
        hi, lo, start = path[best - 1].alpha, path[best + 1].alpha, best - 1
    return np.logspace(np.log10(hi), np.log10(lo), n_alphas + 2)[1:-1], start


class GroupSparseCovarianceCV(BaseEstimator):
    """Group sparse inverse covariance with alpha chosen by cross-validation (nilearn's API).

    Parameters
    ----------
    alphas : int or list of float
        Number of alphas per grid (the grid is refined ``n_refinements`` times),
        or an explicit list (then not refined).
    n_refinements : int
        Number of grids, the first one included.
    cv : None, int or object with ``split(X)``
        Folds of each subject's samples; None means 5 contiguous folds.
    tol_cv : float
        Duality-gap tolerance (per region) of the fold fits.
    max_iter_cv : int
        Maximum Newton iterations of a fold fit.
    tol : float
        Duality-gap tolerance (per region) of the final fit.
    max_iter : int
        Maximum Newton iterations of the final fit.
    n_jobs : int or None
        Folds solved in parallel threads (None or 1: serial; -1: all cores).
    verbose : int
        Log each grid at INFO level when > 0.

    Attributes
    ----------
    covariances_ : array (n_regions, n_regions, n_subjects), empirical covariances.
    precisions_ : array (n_regions, n_regions, n_subjects), the final fit.
    alpha_ : float, the chosen alpha.
    cv_alphas_ : list of float, every alpha tried, decreasing.
    cv_scores_ : array (n_alphas, n_folds), held-out scores aligned with ``cv_alphas_``.
    cv_duality_gaps_ : array (n_alphas, n_folds), the certificate of each fold fit.
    cv_converged_ : bool, every fold fit converged.
    duality_gap_, converged_, n_iter_, objective_, n_features_in_ : of the final fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import GroupSparseCovarianceCV
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((60, 5)) for _ in range(3)]
    >>> for x in subjects:
    ...     x[:, 1] += x[:, 0]
    >>> est = GroupSparseCovarianceCV(alphas=3, n_refinements=2).fit(subjects)
    >>> len(est.cv_alphas_), est.cv_scores_.shape, est.converged_
    (6, (6, 5), True)
    >>> bool(np.all(est.precisions_[0, 1] < 0))
    True
    """

    def __init__(self, alphas: Any = 4, n_refinements: int = 4, cv: Any = None,
                 tol_cv: float = 1e-4, max_iter_cv: int = 100, tol: float = 1e-4,
                 max_iter: int = 100, n_jobs: int | None = 1, verbose: int = 0):
        self.alphas = alphas
        self.n_refinements = n_refinements
        self.cv = cv
        self.tol_cv = tol_cv
        self.max_iter_cv = max_iter_cv
        self.tol = tol
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _first_grid(self, emp_covs: np.ndarray, n_samples: np.ndarray) -> tuple[np.ndarray, int]:
        check_tol_iter(self.tol_cv, self.max_iter_cv, ("tol_cv", "max_iter_cv"))
        check_tol_iter(self.tol, self.max_iter)
        if isinstance(self.alphas, Integral) and not isinstance(self.alphas, bool):
            if self.alphas < 2:
                raise ParameterError(f"alphas must be >= 2 when an int, got {self.alphas!r}")
            r = self.n_refinements
            if isinstance(r, bool) or not isinstance(r, Integral) or r < 1:
                raise ParameterError(f"n_refinements must be an integer >= 1, got {r!r}")
            hi = group_sparse_alpha_max(emp_covs, n_samples)
            return np.logspace(np.log10(1e-2 * hi), np.log10(hi), self.alphas)[::-1], int(r)
        try:
            grid = np.asarray(self.alphas, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ParameterError(f"alphas must be an int or a list of floats, got {self.alphas!r}") from None
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ParameterError(f"alphas must be finite and > 0, got {self.alphas!r}")
        return grid, 1

    def _run_grid(self, folds: list[_Fold], alphas: np.ndarray,
                  inits: list | None) -> list[_PathPoint]:
        inits = inits if inits is not None else [None] * len(folds)
        jobs = self.n_jobs if self.n_jobs not in (None, 0) else 1
        jobs = (os.cpu_count() or 1) if jobs < 0 else int(jobs)
        jobs = min(jobs, len(folds))
        args = [(fold, alphas, self.tol_cv, self.max_iter_cv, init)
                for fold, init in zip(folds, inits, strict=True)]
        if jobs > 1:
            with ThreadPoolExecutor(jobs) as pool:
                runs = list(pool.map(lambda a: _fold_path(*a), args))
        else:
            runs = [_fold_path(*a) for a in args]
        return [_PathPoint(float(alpha), np.array([run[i][0] for run in runs]),
                           np.array([run[i][1] for run in runs]), [run[i][2] for run in runs])
                for i, alpha in enumerate(alphas)]

    def fit(self, subjects: Any, y: Any = None) -> GroupSparseCovarianceCV:
        """Choose alpha by cross-validation on a list of (n_samples_k, n_regions) arrays, then refit."""
        subjects = check_subjects(subjects)
        emp_covs, n_samples = empirical_covariances(subjects)
        alphas, n_grids = self._first_grid(emp_covs, n_samples)
        folds = _make_folds(subjects, self.cv)
        path: list[_PathPoint] = []
        inits = None
        for round_ in range(n_grids):
            path = sorted(path + self._run_grid(folds, alphas, inits), key=lambda q: -q.alpha)
            if round_ == n_grids - 1:
                break
            alphas, start = _refine(path, len(alphas))
            inits = path[start].precisions
            # Only the next grid's warm start is kept: memory stays a few fits per fold.
            path = [q._replace(precisions=None) for q in path]
            if self.verbose:
                logger.info("GroupSparseCovarianceCV: grid %d of %d done, best alpha so far %.4g",
                            round_ + 1, n_grids, path[_best_index(path)[0]].alpha)
        self._record_path(path)
        self._final_fit(emp_covs, n_samples)
        return self

    def _record_path(self, path: list[_PathPoint]) -> None:
        self.alpha_ = path[_best_index(path)[0]].alpha
        self.cv_alphas_ = [q.alpha for q in path]
        self.cv_scores_ = np.array([q.scores for q in path])
        self.cv_duality_gaps_ = np.array([q.gaps for q in path])

    def _final_fit(self, emp_covs: np.ndarray, n_samples: np.ndarray) -> None:
        S = stack_covariances(emp_covs)
        p = S.shape[1]
        self.cv_converged_ = bool(np.all(self.cv_duality_gaps_ <= self.tol_cv * p))
        if not self.cv_converged_:
            warnings.warn(
                f"GroupSparseCovarianceCV: {int(np.sum(self.cv_duality_gaps_ > self.tol_cv * p))} "
                f"fold fit(s) did not reach tol_cv * p = {self.tol_cv * p:.3g}; raise max_iter_cv",
                ConvergenceWarning, stacklevel=3)
        with blas_single_thread():
            res = solve_group_problem(S, normalized_weights(n_samples, S.shape[0]), self.alpha_,
                                      self.tol, self.max_iter)
        if not res.converged:
            warn_not_converged(res, self.tol, p, "GroupSparseCovarianceCV (final fit)")
        set_group_solution(self, emp_covs, np.moveaxis(res.precisions, 0, -1), res)
