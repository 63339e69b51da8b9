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
same fold, including across refinement rounds. Every fold fit is first solved
to ``gap <= tol * p``; the fits of the alphas whose mean score could be the
best (the best one, and every alpha within a margin of it: ``sqrt(tol * p)``,
the size of a coarse score's error, or three times the largest score change
seen when polishing, plus 1e-3, if larger) are then
polished, warm-started, to ``tol / 100``, because a held-out score's error
grows like the square root of the gap. Scores far below the best keep their
coarse value (``cv_polished_`` says which).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from numbers import Integral
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, InputError, ParameterError
from ._empirical import (
    EmpiricalCovariance,
    check_positive,
    check_samples,
    empirical_covariance,
    log_likelihood,
)
from ._graphical_lasso import (
    alpha_max,
    blas_single_thread,
    check_max_iter,
    check_mode,
    solve,
    warn_not_converged,
)

__all__ = ["GraphicalLassoCV", "KFold", "check_cv"]

logger = logging.getLogger(__name__)

_FOLD_TOL_FACTOR = 1e-2


class KFold:
    """Contiguous K-fold splits without shuffling.

    The first ``n_samples % n_splits`` folds hold one sample more than the
    others (scikit-learn's ``KFold`` fold sizes).
    """

    def __init__(self, n_splits: int = 5):
        if isinstance(n_splits, bool) or not isinstance(n_splits, Integral) or n_splits < 2:
            raise ParameterError(f"cv must be an integer >= 2 folds, got {n_splits!r}")
        self.n_splits = int(n_splits)

    def split(self, X: Any, y: Any = None, groups: Any = None):
        n = len(X)
        if self.n_splits > n:
            raise InputError(
                f"cannot make {self.n_splits} folds from {n} samples; lower cv or give more samples"
            )
        sizes = np.full(self.n_splits, n // self.n_splits, dtype=int)
        sizes[: n % self.n_splits] += 1
        indices = np.arange(n)
        start = 0
        for size in sizes:
            test = indices[start:start + size]
            train = np.concatenate([indices[:start], indices[start + size:]])
            yield train, test
            start += size

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits


def check_cv(cv: Any, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Materialise the (train, test) index pairs of ``cv`` on ``X``.

    ``cv`` is None (5 folds), an int (that many contiguous folds), an object
    with ``split(X)``, or an iterable of (train, test) index pairs.
    """
    n = X.shape[0]
    if cv is None:
        cv = 5
    if isinstance(cv, (str, bytes, bool)):
        raise ParameterError(
            f"cv must be None, an int, an object with split(X) or an iterable of "
            f"(train, test) pairs, got {cv!r}"
        )
    if isinstance(cv, Integral):
        splits = list(KFold(cv).split(X))
    elif hasattr(cv, "split"):
        splits = list(cv.split(X))
    elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
        splits = list(cv)
    else:
        raise ParameterError(
            f"cv must be None, an int, an object with split(X) or an iterable of "
            f"(train, test) pairs, got {cv!r}"
        )
    out = []
    for k, pair in enumerate(splits):
        try:
            train, test = pair
        except (TypeError, ValueError):
            raise ParameterError(f"cv split {k} is not a (train, test) pair: {pair!r}") from None
        train = np.asarray(train)
        test = np.asarray(test)
        if train.dtype == bool:
            train = np.flatnonzero(train)
        if test.dtype == bool:
            test = np.flatnonzero(test)
        for name, idx in (("train", train), ("test", test)):
            if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
                raise ParameterError(f"cv split {k}: {name} indices must be a non-empty 1D "
                                     f"integer array, got {idx!r}")
            if idx.min() < -n or idx.max() >= n:
                raise ParameterError(f"cv split {k}: {name} indices out of range for "
                                     f"{n} samples")
        out.append((train, test))
    if not out:
        raise ParameterError("cv produced no (train, test) split")
    return out


class _FoldPath:
    """The solutions of one fold along every alpha tried, for warm starts."""

    def __init__(self, X_train: np.ndarray, X_test: np.ndarray):
        self.S = empirical_covariance(X_train)
        self.S_test = empirical_covariance(X_test)
        self.diag_ok = bool(np.all(np.diag(self.S) > 0))
        self.solutions: dict[float, np.ndarray] = {}

    def run(self, alphas: np.ndarray, tol: float, max_iter: int,
            polish: bool = False) -> list[tuple]:
        """Fit each alpha (decreasing), warm-started from the closest larger alpha;
        with ``polish``, from this alpha's own previous (coarser) solution."""
        out = []
        for alpha in sorted(alphas, reverse=True):
            if not self.diag_ok:
                # A region constant on the training folds: no fit exists there.
                out.append((alpha, -np.inf, np.nan, False, 0, 0.0))
                continue
            if polish and alpha in self.solutions:
                init = self.solutions[alpha]
            else:
                larger = [a for a in self.solutions if a > alpha]
                init = self.solutions[min(larger)] if larger else None
            res = solve(self.S, float(alpha), tol, max_iter, init, True)
            self.solutions[alpha] = res.precision
            score = log_likelihood(self.S_test, res.precision)
            if not np.isfinite(score):
                score = -np.inf
            out.append((alpha, score, res.duality_gap, res.converged, res.n_factorizations,
                        res.factorization_cost))
        return out


def _best_index(alphas: list[float], mean_scores: list[float]) -> tuple[int, int]:
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
    return best_index, last_finite


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
        Duality-gap tolerance, relative to the number of regions (see
        :func:`graphical_lasso`), of the final fit and of every fold fit; the
        fold fits of the alphas that compete for the best score are polished
        to ``tol / 100`` (their held-out scores choose alpha, and a score's
        error grows like the square root of the gap).
    max_iter : int
        Maximum Newton iterations per fit.
    mode : {"quic"}
    n_jobs : int or None
        Folds solved in parallel threads (the compiled solver releases the GIL).
    verbose : bool
    assume_centered : bool
        Do not remove the mean for the final fit (as scikit-learn, the folds are
        always centred).

    Attributes
    ----------
    location_, covariance_, precision_, alpha_, cv_results_, n_iter_,
    duality_gap_, converged_, objective_, n_features_in_,
    cv_duality_gaps_ : array (n_alphas + 1, n_folds), the gap of every fold fit,
        aligned with ``cv_results_["alphas"]`` (NaN for alpha = 0),
    cv_converged_ : bool, every fold fit converged,
    cv_polished_ : bool array aligned with ``cv_results_["alphas"]``: the fold
        fits of that alpha were polished to ``tol / 100``,
    solver_stats_ : dict, factorisations performed (``n_factorizations``, and
        ``factorization_cost`` in units of p**3) against the fewest a CV over
        the same grid needs (``min_factorizations``: one per fold fit and one
        for the final fit).
    """

    def __init__(self, *, alphas: Any = 4, n_refinements: int = 4, cv: Any = None,
                 tol: float = 1e-4, max_iter: int = 100, mode: str = "quic",
                 n_jobs: int | None = None, verbose: bool = False,
                 assume_centered: bool = False):
        self.alphas = alphas
        self.n_refinements = n_refinements
        self.cv = cv
        self.tol = tol
        self.max_iter = max_iter
        self.mode = mode
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.assume_centered = assume_centered

    def _check_params(self) -> tuple[int | None, np.ndarray | None, int]:
        check_mode(self.mode)
        check_positive(self.tol, "tol")
        check_max_iter(self.max_iter)
        if isinstance(self.n_refinements, bool) or not isinstance(self.n_refinements, Integral) \
                or self.n_refinements < 1:
            raise ParameterError(f"n_refinements must be an integer >= 1, got {self.n_refinements!r}")
        if isinstance(self.alphas, Integral) and not isinstance(self.alphas, bool):
            if self.alphas < 1:
                raise ParameterError(f"alphas must be >= 1 when an int, got {self.alphas!r}")
            return int(self.alphas), None, int(self.n_refinements)
        try:
            grid = np.asarray(self.alphas, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ParameterError(f"alphas must be an int or a list of floats, got {self.alphas!r}") from None
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ParameterError(f"alphas must be finite and > 0, got {self.alphas!r}")
        return None, grid, 1

    def fit(self, X: Any, y: Any = None) -> GraphicalLassoCV:
        """Choose alpha by cross-validation on ``X`` (n_samples, n_features), then refit."""
        with blas_single_thread():
            return self._fit(X)

    def _fit(self, X: Any) -> GraphicalLassoCV:
        n_alphas, grid, n_refinements = self._check_params()
        arr = check_samples(X, min_samples=2)
        p = arr.shape[1]
        self.location_ = np.zeros(p) if self.assume_centered else arr.mean(axis=0)
        emp_cov = empirical_covariance(arr - self.location_, assume_centered=True)
        # Validates the full covariance (constant regions, etc.) with a clear message.
        from ._graphical_lasso import check_emp_cov
        check_emp_cov(emp_cov, "the empirical covariance of X")
        splits = check_cv(self.cv, arr)
        folds = [_FoldPath(arr[train], arr[test]) for train, test in splits]
        tol, max_iter = float(self.tol), int(self.max_iter)
        # A held-out score's error grows like the square root of the fit's duality gap:
        # the fits whose scores compete for the best are polished 100 times tighter
        # (QUIC converges fast near the optimum: a few Newton steps), not below the
        # rounding floor.
        fold_tol = max(tol * _FOLD_TOL_FACTOR, 1e-10)

        if grid is None:
            top = alpha_max(emp_cov)
            if top <= 0:
                raise InputError("X has no off-diagonal covariance (alpha_max = 0): all regions "
                                 "are uncorrelated or there is a single region")
            alphas = np.logspace(np.log10(0.01 * top), np.log10(top), n_alphas)[::-1]
        else:
            alphas = grid
        n_folds = len(folds)
        # Every alpha tried, in the order tried (a value produced twice by the
        # refinement is listed twice, as scikit-learn does), and per alpha the fold
        # results (score, gap, converged, n_factorisations, cost) and whether they
        # were polished to fold_tol.
        tried: list[float] = []
        results: dict[float, list[tuple]] = {}
        polished: dict[float, bool] = {}
        counts = [0, 0.0]

        def store(round_results, fine):
            for k, fold_result in enumerate(round_results):
                for alpha, score, gap, conv, n_f, cost in fold_result:
                    results.setdefault(alpha, [None] * n_folds)[k] = (score, gap, conv)
                    counts[0] += n_f
                    counts[1] += cost
                    polished[alpha] = fine

        def mean_scores(ordered):
            return [float(np.mean([results[a][k][0] for k in range(n_folds)])) for a in ordered]

        best_index = 0
        for round_ in range(n_refinements):
            new = [float(a) for a in alphas if float(a) not in results]
            tried.extend(float(a) for a in alphas)
            # Coarse fits (gap <= tol * p) everywhere first, then polish to fold_tol
            # the alphas whose score could be the best: a score far below the best
            # does not need its last digits to leave the choice unchanged.
            store(self._run_folds(folds, np.array(new), tol, max_iter), False)
            # A coarse score can be off by about sqrt(gap) (gap <= tol * p); the margin
            # grows further if polishing moves scores more than that.
            margin = float(np.sqrt(tol * p))
            while True:
                ordered = sorted(tried, reverse=True)
                means = mean_scores(ordered)
                best_index, last_finite = _best_index(ordered, means)
                top = means[best_index]
                todo = sorted({a for a, m in zip(ordered, means) if not polished[a]
                               and (a == ordered[best_index] or m >= top - margin)},
                              reverse=True)
                if not todo:
                    break
                before = mean_scores(todo)
                store(self._run_folds(folds, np.array(todo), fold_tol, max_iter, True), True)
                after = mean_scores(todo)
                shift = max(abs(x - y) for x, y in zip(before, after) if np.isfinite(x - y)) \
                    if any(np.isfinite(x - y) for x, y in zip(before, after)) else 0.0
                # Scores of coarse fits move by about this much when polished.
                margin = max(margin, 3.0 * shift + 1e-3)
            if self.verbose:
                logger.info("GraphicalLassoCV round %d/%d: best alpha %.4g (score %.6g)",
                            round_ + 1, n_refinements, ordered[best_index], means[best_index])
            if grid is None:
                last = len(ordered) - 1
                if best_index == 0:
                    hi, lo = ordered[0], ordered[1] if last >= 1 else 0.01 * ordered[0]
                elif best_index == last_finite and best_index != last:
                    hi, lo = ordered[best_index], ordered[best_index + 1]
                elif best_index == last:
                    hi, lo = ordered[best_index], 0.01 * ordered[best_index]
                else:
                    hi, lo = ordered[best_index - 1], ordered[best_index + 1]
                alphas = np.logspace(np.log10(hi), np.log10(lo), n_alphas + 2)[1:-1]

        ordered = sorted(tried, reverse=True)
        scores = np.array([[results[a][k][0] for k in range(n_folds)] for a in ordered])
        gaps = np.array([[results[a][k][1] for k in range(n_folds)] for a in ordered])
        converged = np.array([[results[a][k][2] for k in range(n_folds)] for a in ordered])
        n_fact, cost = int(counts[0]), float(counts[1])
        self.cv_polished_ = np.array([polished[a] for a in ordered] + [True])
        # alpha = 0: the maximum-likelihood covariance of the training folds.
        zero_scores = []
        for train, test in splits:
            mle = EmpiricalCovariance().fit(arr[train])
            zero_scores.append(mle.score(arr[test]))
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
        self.cv_converged_ = bool(np.all(converged))
        if not self.cv_converged_:
            worst = np.nanargmax(np.where(converged, -np.inf, gaps / p))
            a_idx, k_idx = np.unravel_index(worst, gaps.shape)
            warnings.warn(
                f"GraphicalLassoCV: {int(np.sum(~converged))} of {converged.size} fold fits did "
                f"not reach their tolerance (tol * p = {tol * p:.3g}, polished fits {fold_tol * p:.3g}) "
                f"(worst: gap {gaps[a_idx, k_idx]:.3g} at alpha "
                f"{ordered[a_idx]:.4g}, fold {k_idx}); raise max_iter (now {max_iter}) or tol. "
                "See cv_duality_gaps_.", ConvergenceWarning, stacklevel=2)

        self.alpha_ = float(ordered[best_index])
        final = solve(check_emp_cov(emp_cov), self.alpha_, tol, max_iter, None, True)
        if not final.converged:
            warn_not_converged(final, tol, p, max_iter, "GraphicalLassoCV final fit")
        self.covariance_, self.precision_ = final.covariance, final.precision
        self.n_iter_ = final.n_iter
        self.duality_gap_ = final.duality_gap
        self.converged_ = final.converged
        self.objective_ = final.objective
        self.n_features_in_ = p
        self.solver_stats_ = {
            "n_factorizations": n_fact + final.n_factorizations,
            "factorization_cost": cost + final.factorization_cost,
            "n_fits": len(results) * n_folds + 1,
            "min_factorizations": len(results) * n_folds + 1,
        }
        return self

    def _run_folds(self, folds: list[_FoldPath], alphas: np.ndarray, tol: float,
                   max_iter: int, polish: bool = False) -> list[list[tuple]]:
        n_jobs = self.n_jobs
        if n_jobs is None or n_jobs == 1 or len(folds) == 1:
            return [fold.run(alphas, tol, max_iter, polish) for fold in folds]
        from joblib import Parallel, delayed

        return Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(fold.run)(alphas, tol, max_iter, polish) for fold in folds)

