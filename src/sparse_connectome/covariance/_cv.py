"""``GraphicalLassoCV``: the penalty chosen by K-fold cross-validated likelihood.

The rules follow scikit-learn's ``GraphicalLassoCV`` (learnt from its
documentation and by comparing outputs), so that on the same data and folds the
same ``alpha_`` is chosen:

* Grid: ``alphas`` log-spaced values from ``alpha_max`` (largest off-diagonal
  ``|S_ij|`` of the full data's covariance) down to ``alpha_max / 100``.
* Score of an alpha on a fold: the Gaussian log-likelihood of the held-out
  fold's covariance (centred on its own mean) under the precision fitted on the
  training folds (centred on theirs); a non-finite score counts as ``-inf``.
* Selection: the largest mean score, ties going to the smaller alpha; a mean
  score above ``0.1 / eps`` is treated as NaN (a degenerate fit).
* Refinement (``n_refinements`` rounds in all): the next grid holds ``alphas``
  values log-spaced strictly between the neighbours of the best alpha; at the
  top of the grid between the two largest alphas; at the bottom between the
  best and ``best / 100``; when the best is the last finite score but not the
  last alpha, between it and the next one. A user-given list of alphas is not
  refined.
* ``cv_results_`` lists every alpha tried (decreasing) followed by ``alpha = 0``,
  whose scores are those of the maximum-likelihood covariance fitted on the
  training folds (its pseudo-inverse as precision, the test fold centred with
  the training mean).

What differs: each fit is solved to a certified duality gap (QUIC with exact
screening), warm-started from the solution at the closest larger alpha on the
same fold, including across refinement rounds. The fold fits only rank the
alphas: every fold fit is first solved to ``gap <= fold_tol * p``; the fits of
the alphas whose mean score could be the best (the best one, and every alpha
within a margin of it: ``sqrt(fold_tol * p)``,
the size of a coarse score's error, or three times the largest score change
seen when polishing, plus 1e-3, if larger) are then
polished, warm-started, to ``fold_tol / 100``, because a held-out score's error
grows like the square root of the gap. Scores far below the best keep their
coarse value (``cv_polished_`` says which). A coarse fit whose score falls
below the fold's best at a larger alpha by more than its error bound
(``sqrt(p * gap)``, several times the largest error measured) stops there
(``prune``; ``cv_pruned_`` says which): at 1000 regions the fits of the
smallest alphas, far below the best, were most of the CV's work; an alpha
whose mean score is within that bound of the best is polished all the same.
The final fit, the estimate
returned, is solved to ``gap <= tol * p`` (by default ``1e-10 * p``: its
objective is then at least as good as scikit-learn's at its defaults).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

from .._utils.bunch import Bunch
from .._utils.threads import check_n_jobs, effective_n_jobs, run_chains, thread_map
from ..errors import ConvergenceWarning, InputError, ParameterError
from ._empirical import (
    EmpiricalCovariance,
    check_positive,
    check_samples,
    empirical_covariance,
    held_out_mle_score,
)
from ._graphical_lasso import (
    STATUS_PRUNED,
    alpha_max,
    blas_single_thread,
    check_emp_cov,
    check_max_iter,
    check_mode,
    solve,
    warn_not_converged,
)
from ._splits import check_cv

__all__ = ["GraphicalLassoCV"]

logger = logging.getLogger(__name__)

_FOLD_TOL_FACTOR = 1e-2
# Warm starts with the inverse kept per fold: the last fits (the next alpha of a path, the
# polish of the best alphas of the round just fitted).
_KEEP_INVERSES = 4
# Refined alphas start from their neighbours' interpolated solutions up to this many
# regions (measured: a third fewer sweeps at 39, 15-25 % less time at 100-200; at 1000
# the interpolated start, denser than the solution and without a known inverse, cost
# 18 % more sweeps and 48 % more factorisations than the larger alpha's solution).
_INTERPOLATE_MAX_P = 300
# A coarse fit whose held-out score is below this fold's best at a larger alpha stops once
# the score's error, taken as _PRUNE_SPREAD * sqrt(p * gap), cannot close the distance
# (measured errors: at most 0.37 sqrt(p * gap) at 100 regions, 0.25 at 1000).
_PRUNE_SPREAD = 1.0
# Two alphas this close are one (a refined grid's log-spaced point can fall an ulp away
# from an alpha of an earlier grid; scikit-learn fits it again).
_SAME_ALPHA_RTOL = 1e-12


class FoldFit(NamedTuple):
    """The fit of one fold at one alpha: its held-out score and its solver record."""

    alpha: float
    #: Gaussian log-likelihood of the held-out fold (``-inf`` when not finite).
    score: float
    duality_gap: float
    converged: bool
    n_factorizations: int
    factorization_cost: float
    #: Coordinate-descent sweeps and conjugate-gradient iterations (the other work).
    n_sweeps: int = 0
    n_cg: int = 0
    #: Stopped before its tolerance: its score could not compete (see ``GraphicalLassoCV``).
    pruned: bool = False


class _FoldPath:
    """The solutions of one fold along every alpha tried, for warm starts."""

    def __init__(self, X_train: np.ndarray, X_test: np.ndarray):
        self.S = empirical_covariance(X_train)
        self.S_test = empirical_covariance(X_test)
        self.diag_ok = bool(np.all(np.diag(self.S) > 0))
        self.top = alpha_max(self.S) if self.diag_ok else np.inf
        #: The solver's results per alpha: the precision, and for the most recent fits
        #: (``_KEEP_INVERSES``) its inverse and log-determinant, for warm starts that
        #: need no factorisation. Older inverses are dropped: at 1000 regions each one
        #: is 8 MB per alpha and fold.
        self.results: dict[float, Bunch] = {}
        self._with_inverse: list[float] = []
        #: Held-out scores of the fits that reached their tolerance (not pruned).
        self.scores: dict[float, float] = {}

    def run(self, alphas: np.ndarray, tol: float, max_iter: int,
            polish: bool = False, prune: bool = False) -> list[FoldFit]:
        """The fits of :meth:`steps`, as a list."""
        return list(self.steps(alphas, tol, max_iter, polish, prune))

    def steps(self, alphas: np.ndarray, tol: float, max_iter: int,
              polish: bool = False, prune: bool = False) -> Iterator[FoldFit]:
        """Fit each alpha (decreasing), warm-started from the closest larger alpha, or,
        between two fitted alphas (the refined grids) and up to ``_INTERPOLATE_MAX_P``
        regions, from their solutions interpolated in log alpha; with ``polish``, from
        this alpha's own previous (coarser) solution. One fit per step, so that a
        scheduler can interleave the folds. With ``prune`` (coarse fits), a fit stops
        early once its score cannot reach this fold's best score at a larger alpha
        (``_PRUNE_SPREAD * sqrt(p * gap)`` bounds its error)."""
        p = self.S.shape[0]
        for alpha in sorted(alphas, reverse=True):
            if not self.diag_ok:
                # A region constant on the training folds: no fit exists there.
                yield FoldFit(alpha, -np.inf, np.nan, False, 0, 0.0)
                continue
            floor = max((v for a, v in self.scores.items() if a > alpha), default=-np.inf)
            cut = (self.S_test, floor, _PRUNE_SPREAD * np.sqrt(p)) \
                if prune and not polish and floor > -np.inf else None
            if polish and alpha in self.results:
                res = self._solve_from(alpha, self.results[alpha], tol, max_iter)
            else:
                larger = [a for a in self.results if a > alpha]
                smaller = [a for a in self.results if a < alpha]
                if larger and smaller and p <= _INTERPOLATE_MAX_P:
                    res = self._solve_between(alpha, min(larger), max(smaller), tol, max_iter,
                                              cut)
                else:
                    warm = self.results[min(larger)] if larger else None
                    res = self._solve_from(alpha, warm, tol, max_iter, cut)
            self._store(alpha, res)
            # The held-out Gaussian log-likelihood, with the solver's log-determinant (the
            # solution is positive definite: it was factorised); the function the solver
            # prunes with (compiled: imported once the solver is loaded).
            from ._pruning import held_out_score

            score = float(held_out_score(self.S_test, res.precision,
                                         float(np.sum(res.logdet_rows))))
            if not np.isfinite(score):
                score = -np.inf
            pruned = res.status == STATUS_PRUNED
            if pruned:
                self.scores.pop(alpha, None)
            else:
                self.scores[alpha] = score
            yield FoldFit(alpha, score, res.duality_gap, res.converged, res.n_factorizations,
                          res.factorization_cost, res.n_sweeps, res.n_cg, pruned)

    def _solve_from(self, alpha: float, warm: Bunch | None, tol: float, max_iter: int,
                    cut: tuple | None = None) -> Bunch:
        """Solve warm-started from a previous fit, with its inverse while it is kept."""
        if warm is not None and warm.covariance is None:
            return solve(self.S, float(alpha), tol, max_iter, warm.precision, True, top=self.top,
                         prune=cut)
        return solve(self.S, float(alpha), tol, max_iter, None, True, warm, self.top, cut)

    def _solve_between(self, alpha: float, hi: float, lo: float, tol: float,
                       max_iter: int, cut: tuple | None = None) -> Bunch:
        """Solve from the solutions at ``hi > alpha > lo`` interpolated in log alpha.

        The path of solutions is smooth between changes of support, so the
        interpolation lands much closer than either end (at 39 regions the CV does
        a third fewer sweeps); a convex combination of positive definite matrices
        is positive definite. Its inverse is not known: the start factorises it.
        """
        t = (np.log(hi) - np.log(alpha)) / (np.log(hi) - np.log(lo))
        init = (1.0 - t) * self.results[hi].precision + t * self.results[lo].precision
        return solve(self.S, float(alpha), tol, max_iter, init, True, top=self.top, prune=cut)

    def _store(self, alpha: float, res: Bunch) -> None:
        self.results[alpha] = res
        if alpha in self._with_inverse:
            self._with_inverse.remove(alpha)
        self._with_inverse.append(alpha)
        if len(self._with_inverse) > _KEEP_INVERSES:
            old = self.results[self._with_inverse.pop(0)]
            old.covariance = old.logdet_rows = None


class _Best(NamedTuple):
    """Where the best mean score is in a decreasing list of alphas."""

    index: int
    #: Index of the last finite mean score.
    last_finite: int


def _best_index(alphas: list[float], mean_scores: list[float]) -> _Best:
    best_score = -np.inf
    best_index = 0
    last_finite = 0
    huge = 0.1 / np.finfo(np.float64).eps
    for index, score in enumerate(mean_scores):
        if score >= huge:
            score = np.nan
        if np.isfinite(score):
            last_finite = index
        if score >= best_score:
            best_score = score
            best_index = index
    return _Best(best_index, last_finite)


def _refined_grid(ordered: list[float], best: _Best, n_alphas: int) -> np.ndarray:
    """The next grid: ``n_alphas`` values log-spaced strictly around the best alpha."""
    last = len(ordered) - 1
    if best.index == 0:
        hi, lo = ordered[0], ordered[1] if last >= 1 else 0.01 * ordered[0]
    elif best.index == best.last_finite and best.index != last:
        hi, lo = ordered[best.index], ordered[best.index + 1]
    elif best.index == last:
        hi, lo = ordered[best.index], 0.01 * ordered[best.index]
    else:
        hi, lo = ordered[best.index - 1], ordered[best.index + 1]
    return np.logspace(np.log10(hi), np.log10(lo), n_alphas + 2)[1:-1]


def _fold_tol(tol: float) -> float:
    """Tolerance of the polished fold fits.

    A held-out score's error grows like the square root of the fit's duality gap:
    the fits whose scores compete for the best are polished 100 times tighter
    (QUIC converges fast near the optimum: a few Newton steps), not below the
    rounding floor.
    """
    return max(tol * _FOLD_TOL_FACTOR, 1e-10)


class _AlphaGrid(NamedTuple):
    """The checked ``alphas`` and ``n_refinements`` parameters."""

    #: Number of alphas per grid, or None for a user-given grid.
    n_alphas: int | None
    #: The user-given grid, or None.
    given: np.ndarray | None
    n_refinements: int


class _Round(NamedTuple):
    """The state of the search after one round: every alpha tried, decreasing."""

    ordered: list[float]
    means: list[float]
    best: _Best


@dataclass
class _Search:
    """Every alpha tried, in the order tried (a value produced twice by the
    refinement is listed twice, as scikit-learn does), and per alpha the fold
    fits and whether they were polished to the fold tolerance."""

    n_folds: int
    tried: list[float] = field(default_factory=list)
    results: dict[float, list[FoldFit]] = field(default_factory=dict)
    polished: dict[float, bool] = field(default_factory=dict)
    n_factorizations: int = 0
    factorization_cost: float = 0.0
    n_sweeps: int = 0
    n_cg: int = 0
    #: ``sqrt(p)``: the pruned fits' scores are within ``_PRUNE_SPREAD * sqrt(p * gap)``.
    spread: float = 0.0

    def store(self, round_results: list[list[FoldFit]], fine: bool) -> None:
        for k, fold_fits in enumerate(round_results):
            for fit in fold_fits:
                self.results.setdefault(fit.alpha, [None] * self.n_folds)[k] = fit
                self.n_factorizations += fit.n_factorizations
                self.factorization_cost += fit.factorization_cost
                self.n_sweeps += fit.n_sweeps
                self.n_cg += fit.n_cg
                self.polished[fit.alpha] = fine

    def known(self, alpha: float) -> float:
        """``alpha``, or the tried alpha it equals up to rounding (a refined grid can land
        within an ulp of an earlier alpha: its fits are the same, and are not redone)."""
        for tried in self.results:
            if abs(tried - alpha) <= _SAME_ALPHA_RTOL * tried:
                return tried
        return alpha

    def mean_scores(self, alphas: list[float]) -> list[float]:
        return [float(np.mean([self.results[a][k].score for k in range(self.n_folds)]))
                for a in alphas]

    def uncertainty(self, alpha: float) -> float:
        """How far the mean score of ``alpha`` may be below its solution's: the pruned
        fold fits' error bounds (averaged over the folds), 0 when none was pruned."""
        fits = self.results[alpha]
        return float(np.mean([_PRUNE_SPREAD * self.spread * np.sqrt(fit.duality_gap)
                              if fit.pruned else 0.0 for fit in fits]))

    def table(self, alphas: list[float], name: str) -> np.ndarray:
        """(alphas, folds) array of one field of the fold fits."""
        return np.array([[getattr(self.results[a][k], name) for k in range(self.n_folds)]
                         for a in alphas])


class GraphicalLassoCV(EmpiricalCovariance):
    """Sparse inverse covariance with the penalty chosen by cross-validation.

    Parameters
    ----------
    alphas : int or array-like of float
        Number of alphas on each grid (refined ``n_refinements`` times), or an
        explicit list of alphas (then not refined).
    n_refinements : int
        Number of grids (the first one included).
    cv : None, int, object with ``split(X)``, or iterable of (train, test)
        Folds; None means 5 contiguous folds without shuffling.
    tol : float
        Duality-gap tolerance of the final fit (the estimate returned),
        relative to the number of regions (see :func:`graphical_lasso`).
    fold_tol : float
        Duality-gap tolerance, relative to the number of regions, of the fold
        fits, which only rank the alphas; those of the alphas that compete for
        the best score are polished to ``fold_tol / 100`` (their held-out
        scores choose alpha, and a score's error grows like the square root
        of the gap).
    max_iter : int
        Maximum Newton iterations per fit.
    mode : {"quic"}
    n_jobs : int or None
        Threads for the folds (None: 1; -1: all cores). The compiled solver
        releases the GIL; the folds' fits are interleaved one at a time, and the
        results do not depend on ``n_jobs``.
    verbose : bool
    assume_centered : bool
        Do not remove the mean for the final fit (as scikit-learn, the folds are
        always centred).
    prune : bool
        Stop a fold fit early once its held-out score cannot compete: below the
        fold's best score at a larger alpha by more than its error bound,
        ``sqrt(p * gap)`` (measured errors were at most 0.37 of it). Its score
        in ``cv_results_`` is then the iterate's (``cv_pruned_`` says which);
        were its mean score within reach of the best, it would be polished like
        any other. At 1000 regions the fits at the small alphas, far below the
        best, are most of the work. False: every fold fit reaches ``fold_tol``.

    Attributes
    ----------
    location_, covariance_, precision_, alpha_, cv_results_, n_iter_,
    duality_gap_, converged_, objective_, n_features_in_,
    cv_duality_gaps_ : array (n_alphas + 1, n_folds), the gap of every fold fit,
        aligned with ``cv_results_["alphas"]`` (NaN for alpha = 0),
    cv_converged_ : bool, every fold fit converged (or was pruned),
    cv_polished_ : bool array aligned with ``cv_results_["alphas"]``: the fold
        fits of that alpha were polished to ``fold_tol / 100``,
    cv_pruned_ : bool array (n_alphas + 1, n_folds) aligned with
        ``cv_duality_gaps_``: fold fits stopped early (``prune``) because their
        scores could not compete,
    solver_stats_ : dict, factorisations performed (``n_factorizations``, and
        ``factorization_cost`` in units of p**3) against the fewest a CV over
        the same grid needs (``min_factorizations``: one per fold fit and one
        for the final fit), and the other work: coordinate-descent sweeps
        (``n_sweeps``) and conjugate-gradient iterations (``n_cg``) of the
        Newton directions.

    Examples
    --------
    Five regions, of which only the first two interact:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import GraphicalLassoCV, alpha_max
    >>> X = np.random.default_rng(0).standard_normal((200, 5))
    >>> X[:, 1] += X[:, 0]
    >>> est = GraphicalLassoCV().fit(X)
    >>> est.converged_, est.cv_converged_
    (True, True)
    >>> bool(0 < est.alpha_ < alpha_max(np.cov(X.T, bias=True)))
    True
    >>> bool(est.precision_[0, 1] < 0)  # the interaction is found
    True
    >>> len(est.cv_results_["alphas"])  # 4 grids of 4 alphas, then alpha = 0
    17
    """

    def __init__(self, *, alphas: Any = 4, n_refinements: int = 4, cv: Any = None,
                 tol: float = 1e-10, fold_tol: float = 1e-4, max_iter: int = 100,
                 mode: str = "quic", n_jobs: int | None = None, verbose: bool = False,
                 assume_centered: bool = False, prune: bool = True):
        self.alphas = alphas
        self.n_refinements = n_refinements
        self.cv = cv
        self.tol = tol
        self.fold_tol = fold_tol
        self.max_iter = max_iter
        self.mode = mode
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.assume_centered = assume_centered
        self.prune = prune

    def _check_params(self) -> _AlphaGrid:
        check_mode(self.mode)
        check_positive(self.tol, "tol")
        check_positive(self.fold_tol, "fold_tol")
        check_max_iter(self.max_iter)
        check_n_jobs(self.n_jobs)
        if not isinstance(self.prune, (bool, np.bool_)):
            raise ParameterError(f"prune must be True or False, got {self.prune!r}")
        if isinstance(self.n_refinements, bool) or not isinstance(self.n_refinements, Integral) \
                or self.n_refinements < 1:
            raise ParameterError(f"n_refinements must be an integer >= 1, got {self.n_refinements!r}")
        if isinstance(self.alphas, Integral) and not isinstance(self.alphas, bool):
            if self.alphas < 1:
                raise ParameterError(f"alphas must be >= 1 when an int, got {self.alphas!r}")
            return _AlphaGrid(int(self.alphas), None, int(self.n_refinements))
        try:
            grid = np.asarray(self.alphas, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ParameterError(f"alphas must be an int or a list of floats, got {self.alphas!r}") from None
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ParameterError(f"alphas must be finite and > 0, got {self.alphas!r}")
        return _AlphaGrid(None, grid, 1)

    def fit(self, X: Any, y: Any = None) -> GraphicalLassoCV:
        """Choose alpha by cross-validation on ``X`` (n_samples, n_features), then refit."""
        with blas_single_thread():
            return self._fit(X)

    def _fit(self, X: Any) -> GraphicalLassoCV:
        grid = self._check_params()
        arr = check_samples(X, min_samples=2)
        emp_cov = self._centred_covariance(arr)
        splits = check_cv(self.cv, arr)
        n_threads = effective_n_jobs(self.n_jobs)
        folds = thread_map(lambda split: _FoldPath(arr[split[0]], arr[split[1]]), splits,
                           n_threads)
        search = _Search(len(folds), spread=float(np.sqrt(arr.shape[1])))
        self.alpha_ = self._choose_alpha(folds, search, grid, emp_cov)
        self._describe_cv(search, arr, splits, folds)
        self._final_fit(emp_cov, search, folds)
        return self

    def _centred_covariance(self, arr: np.ndarray) -> np.ndarray:
        """Set ``location_`` and return the checked covariance of the full data."""
        self.location_ = np.zeros(arr.shape[1]) if self.assume_centered else arr.mean(axis=0)
        emp_cov = empirical_covariance(arr - self.location_, assume_centered=True)
        # Validates the full covariance (constant regions, etc.) with a clear message.
        check_emp_cov(emp_cov, "the empirical covariance of X")
        return emp_cov

    def _choose_alpha(self, folds: list[_FoldPath], search: _Search, grid: _AlphaGrid,
                      emp_cov: np.ndarray) -> float:
        """Fit every grid on every fold, refining around the best; the best alpha."""
        if grid.given is None:
            top = alpha_max(emp_cov)
            if top <= 0:
                raise InputError("X has no off-diagonal covariance (alpha_max = 0): all regions "
                                 "are uncorrelated or there is a single region")
            alphas = np.logspace(np.log10(0.01 * top), np.log10(top), grid.n_alphas)[::-1]
        else:
            alphas = grid.given
        for round_ in range(grid.n_refinements):
            state = self._fit_round(folds, search, alphas, emp_cov.shape[0])
            if self.verbose:
                logger.info("GraphicalLassoCV round %d/%d: best alpha %.4g (score %.6g)",
                            round_ + 1, grid.n_refinements, state.ordered[state.best.index],
                            state.means[state.best.index])
            if grid.given is None:
                alphas = _refined_grid(state.ordered, state.best, grid.n_alphas)
        return float(state.ordered[state.best.index])

    def _fit_round(self, folds: list[_FoldPath], search: _Search, alphas: np.ndarray,
                   p: int) -> _Round:
        """Coarse fits (gap <= fold_tol * p) of the new alphas on every fold, then polish to
        the fold tolerance the alphas whose score could be the best: a score far below
        the best does not need its last digits to leave the choice unchanged."""
        tol, max_iter = float(self.fold_tol), int(self.max_iter)
        alphas = [search.known(float(a)) for a in alphas]
        new = [a for a in alphas if a not in search.results]
        search.tried.extend(alphas)
        search.store(self._run_folds(folds, np.array(new), tol, max_iter, prune=self.prune),
                     False)
        # A coarse score can be off by about sqrt(gap) (gap <= fold_tol * p); the margin
        # grows further if polishing moves scores more than that.
        margin = float(np.sqrt(tol * p))
        while True:
            ordered = sorted(search.tried, reverse=True)
            means = search.mean_scores(ordered)
            best = _best_index(ordered, means)
            top = means[best.index]
            # A pruned fit's score may be below its solution's by its error bound.
            todo = sorted({a for a, m in zip(ordered, means) if not search.polished[a]
                           and (a == ordered[best.index]
                                or m + search.uncertainty(a) >= top - margin)},
                          reverse=True)
            if not todo:
                return _Round(ordered, means, best)
            before = search.mean_scores(todo)
            search.store(self._run_folds(folds, np.array(todo), _fold_tol(tol), max_iter, True),
                         True)
            after = search.mean_scores(todo)
            shift = max(abs(x - y) for x, y in zip(before, after) if np.isfinite(x - y)) \
                if any(np.isfinite(x - y) for x, y in zip(before, after)) else 0.0
            # Scores of coarse fits move by about this much when polishing.
            margin = max(margin, 3.0 * shift + 1e-3)

    def _describe_cv(self, search: _Search, arr: np.ndarray,
                     splits: list[tuple[np.ndarray, np.ndarray]],
                     folds: list[_FoldPath]) -> None:
        """Set ``cv_results_``, ``cv_duality_gaps_``, ``cv_converged_``, ``cv_polished_``."""
        n_folds = search.n_folds
        ordered = sorted(search.tried, reverse=True)
        scores = search.table(ordered, "score")
        gaps = search.table(ordered, "duality_gap")
        converged = search.table(ordered, "converged")
        pruned = search.table(ordered, "pruned").astype(bool)
        self.cv_polished_ = np.array([search.polished[a] for a in ordered] + [True])
        # alpha = 0: the maximum-likelihood covariance of the training folds.
        # (One eigenvalue pass and one solve per fold, on the threads too.)
        zero_scores = thread_map(
            lambda k: held_out_mle_score(arr[splits[k][0]], arr[splits[k][1]], folds[k].S),
            range(len(splits)), effective_n_jobs(self.n_jobs))
        all_scores = np.vstack([scores, np.array(zero_scores)[None, :]])
        self.cv_results_ = {"alphas": np.array(ordered + [0.0])}
        for k in range(n_folds):
            self.cv_results_[f"split{k}_test_score"] = all_scores[:, k]
        self.cv_results_["mean_test_score"] = all_scores.mean(axis=1)
        # A singular training fold scores -inf at alpha = 0; its spread is then
        # unbounded: report inf rather than the NaN of inf - inf.
        with np.errstate(invalid="ignore"):
            spread = all_scores.std(axis=1)
        spread[~np.isfinite(all_scores).all(axis=1)] = np.inf
        self.cv_results_["std_test_score"] = spread
        self.cv_duality_gaps_ = np.vstack([gaps, np.full((1, n_folds), np.nan)])
        self.cv_pruned_ = np.vstack([pruned, np.zeros((1, n_folds), dtype=bool)])
        # A pruned fit stopped on purpose: its score could not compete.
        reached = converged.astype(bool) | pruned
        self.cv_converged_ = bool(np.all(reached))
        if not self.cv_converged_:
            self._warn_folds_not_converged(ordered, gaps, reached, arr.shape[1])

    def _warn_folds_not_converged(self, ordered: list[float], gaps: np.ndarray,
                                  converged: np.ndarray, p: int) -> None:
        tol = float(self.fold_tol)
        worst = np.nanargmax(np.where(converged, -np.inf, gaps / p))
        a_idx, k_idx = np.unravel_index(worst, gaps.shape)
        warnings.warn(
            f"GraphicalLassoCV: {int(np.sum(~converged))} of {converged.size} fold fits did "
            f"not reach their tolerance (fold_tol * p = {tol * p:.3g}, polished fits "
            f"{_fold_tol(tol) * p:.3g}) (worst: gap {gaps[a_idx, k_idx]:.3g} at alpha "
            f"{ordered[a_idx]:.4g}, fold {k_idx}); raise max_iter (now {int(self.max_iter)}) "
            "or fold_tol. See cv_duality_gaps_.", ConvergenceWarning,
            stacklevel=5)  # the caller of fit (< _describe_cv < _fit < fit)

    def _final_fit(self, emp_cov: np.ndarray, search: _Search, folds: list[_FoldPath]) -> None:
        """Fit the full data at ``alpha_``; set the solution and ``solver_stats_``."""
        tol, max_iter, p = float(self.tol), int(self.max_iter), emp_cov.shape[0]
        # Warm start: the mean of the folds' solutions at alpha_ (positive definite, as a
        # mean of positive definite matrices), close to the full data's solution.
        starts = [fold.results[self.alpha_].precision for fold in folds
                  if self.alpha_ in fold.results]
        init = np.mean(starts, axis=0) if len(starts) == len(folds) else None
        final = solve(check_emp_cov(emp_cov), self.alpha_, tol, max_iter, init, True)
        if not final.converged:
            # stacklevel: the caller of fit (warn_not_converged < _final_fit < _fit < fit).
            warn_not_converged(final, tol, p, max_iter, "GraphicalLassoCV final fit",
                               stacklevel=5)
        self.covariance_, self.precision_ = final.covariance, final.precision
        self.n_iter_ = final.n_iter
        self.duality_gap_ = final.duality_gap
        self.converged_ = final.converged
        self.objective_ = final.objective
        self.n_features_in_ = p
        n_fits = len(search.results) * search.n_folds + 1
        self.solver_stats_ = {
            "n_factorizations": int(search.n_factorizations) + final.n_factorizations,
            "factorization_cost": float(search.factorization_cost) + final.factorization_cost,
            "n_sweeps": int(search.n_sweeps) + final.n_sweeps,
            "n_cg": int(search.n_cg) + final.n_cg,
            "n_pruned": int(sum(fit.pruned for fits in search.results.values() for fit in fits)),
            "n_fits": n_fits,
            "min_factorizations": n_fits,
        }

    def _run_folds(self, folds: list[_FoldPath], alphas: np.ndarray, tol: float,
                   max_iter: int, polish: bool = False,
                   prune: bool = False) -> list[list[FoldFit]]:
        """Every fold's fits of ``alphas``; with ``n_jobs``, the folds interleaved on threads
        one fit at a time (the same fits as in order: each fold's path stays in order)."""
        chains = [fold.steps(alphas, tol, max_iter, polish, prune) for fold in folds]
        return run_chains(chains, effective_n_jobs(self.n_jobs), [len(alphas)] * len(folds))
