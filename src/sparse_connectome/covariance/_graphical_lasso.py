"""The graphical lasso: ``graphical_lasso()`` and the ``GraphicalLasso`` estimator.

Problem (scikit-learn's, the diagonal is not penalised)::

    minimise over Theta > 0:  -log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|

Solver: QUIC (second-order, coordinate descent on the free set) after exact
covariance-thresholding screening; see :mod:`._quic`.

Convergence is certified by the duality gap, computed at a *feasible* dual
point, so ``gap >= f(Theta) - f(Theta*)`` always. The run is converged when::

    duality_gap <= tol * p

``p`` is the number of regions. At the optimum ``tr(S Theta) + alpha ||Theta||_1,off = p``
(the gap is the deviation from this identity when ``inv(Theta)`` is dual
feasible), and the gap does not change when the data are rescaled (with
alpha), so ``tol`` reads as "objective accuracy per region", whatever the units
of the signals. The default ``tol=1e-10`` at ``p=39`` certifies the objective to
4e-9, about 1e-10 of its value on standardised signals: at least as good as
scikit-learn's at its defaults (whose own tolerance, 1e-4 on its gap, leaves
relative errors up to 1e-5 measured). A second-order method pays little for it: the
last Newton steps converge quadratically (measured on the demo subject at the CV's
alpha: 14 Newton iterations instead of 7 from a cold start, 2x the time of
``tol=1e-4``; ``GraphicalLassoCV``, whose fold fits keep their own ``fold_tol``,
takes 1-2 % longer).

Degenerate inputs
-----------------
* Fewer samples than regions (``S`` singular): fine for ``alpha > 0``. With
  a positive diagonal, ``(1 - t) S + t diag(S)`` is a strictly feasible dual
  point for small ``t > 0``, so the minimum exists and is attained.
* A constant region (``S_ii = 0``): no minimum exists (``Theta_ii`` can grow
  without bound while the objective decreases), so :class:`InputError` names
  the region.
* NaN/Inf, a non-symmetric or a non-PSD ``emp_cov``: :class:`InputError` with
  the measured asymmetry or smallest eigenvalue.
* ``alpha <= 0``: :class:`ParameterError` (alpha = 0 is the unpenalised MLE,
  which does not exist when ``S`` is singular; use ``EmpiricalCovariance``).
* ``alpha >= alpha_max = max_{i != j} |S_ij|``: the solution is exactly
  ``diag(1 / S_ii)``; it is returned as such with ``n_iter = 0`` and gap 0.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from ..errors import ConvergenceWarning, InputError, ParameterError
from ._empirical import EmpiricalCovariance, check_positive, check_samples, empirical_covariance

__all__ = ["graphical_lasso", "GraphicalLasso", "alpha_max", "graphical_lasso_objective"]

logger = logging.getLogger(__name__)

# The solver's status for a fit stopped because its held-out score could not compete
# (``_quic.STATUS_PRUNED``; this module does not import the compiled solver at import).
STATUS_PRUNED = 4
_STATUS_TEXT = {
    0: "converged",
    1: "reached max_iter",
    2: "stopped at the rounding floor (no further descent possible)",
    3: "line search failed",
    4: "stopped early: its held-out score could not compete",
}


def alpha_max(emp_cov: Any) -> float:
    """Largest off-diagonal ``|S_ij|``: from this alpha on, the solution is diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import alpha_max, graphical_lasso
    >>> S = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, -0.3], [0.1, -0.3, 1.0]])
    >>> alpha_max(S)
    0.5
    >>> precision = graphical_lasso(S, alpha_max(S))[1]
    >>> bool(np.all(precision == np.diag(np.diag(precision))))
    True
    """
    S = np.asarray(emp_cov, dtype=np.float64)
    if S.shape[0] < 2:
        return 0.0
    off = np.abs(S - np.diag(np.diag(S)))
    return float(off.max())


def graphical_lasso_objective(emp_cov: Any, precision: Any, alpha: float) -> float:
    """``-log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|`` (inf if not PD).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import graphical_lasso_objective
    >>> S = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> graphical_lasso_objective(S, np.eye(2), alpha=0.1)  # -log det I + tr(S)
    2.0
    >>> graphical_lasso_objective(S, np.diag([1.0, -1.0]), alpha=0.1)  # not positive definite
    inf
    """
    S = np.asarray(emp_cov, dtype=np.float64)
    P = np.asarray(precision, dtype=np.float64)
    sign, logdet = np.linalg.slogdet(P)
    if not sign > 0:
        return np.inf
    off = np.abs(P).sum() - np.abs(np.diag(P)).sum()
    return float(-logdet + np.sum(S * P) + alpha * off)


def check_emp_cov(emp_cov: Any, name: str = "emp_cov") -> np.ndarray:
    try:
        S = np.array(emp_cov, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric matrix, could not convert it: {exc}") from None
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise InputError(f"{name} must be a square (p, p) matrix, found shape {S.shape}")
    if not np.all(np.isfinite(S)):
        bad = np.argwhere(~np.isfinite(S))[0]
        raise InputError(
            f"{name} contains NaN or Inf (first at [{bad[0]}, {bad[1]}]); expected finite values"
        )
    scale = max(float(np.max(np.abs(S))), np.finfo(float).tiny)
    asym = float(np.max(np.abs(S - S.T)))
    if asym > 1e-8 * scale:
        raise InputError(
            f"{name} is not symmetric: max |S - S.T| = {asym:.3g} (relative {asym / scale:.3g}); "
            "expected a symmetric covariance matrix"
        )
    S = 0.5 * (S + S.T)
    diag = np.diag(S)
    if np.any(diag <= 0):
        bad = int(np.flatnonzero(diag <= 0)[0])
        raise InputError(
            f"{name} has variance {diag[bad]!r} for column {bad}: a constant (zero-variance) "
            "region makes the graphical lasso unbounded (no solution exists). Remove that "
            "region or check its time series."
        )
    # Cheap PSD check by a slightly shifted Cholesky; the eigenvalues only for the message.
    shift = 1e-10 * float(diag.max())
    try:
        np.linalg.cholesky(S + shift * np.eye(S.shape[0]))
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(S)[0])
        raise InputError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {smallest:.3g} "
            f"(largest variance {diag.max():.3g}); expected a covariance matrix"
        ) from None
    return S


def _check_alpha(alpha: Any) -> float:
    return check_positive(alpha, "alpha")


def check_max_iter(max_iter: Any) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ParameterError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    return int(max_iter)


_CONTROLLER = None


def blas_single_thread():
    """Context limiting BLAS to one thread while the solver runs.

    The solver factorises many small matrices; multi-threaded OpenBLAS on those
    is slower, and pathologically so (100x) when the cores are busy. Uses
    threadpoolctl when it is installed (it is optional), else does nothing.
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its own threading
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        # The compiled kernels call the BLAS and LAPACK of scipy (numba binds
        # scipy.linalg.cython_blas), an OpenBLAS apart from numpy's: it must be loaded
        # before the controller lists the libraries to limit, or its threads spin on
        # every small product (measured 10-100x slower fits on a busy machine).
        import scipy.linalg.cython_blas  # noqa: F401
        import scipy.linalg.cython_lapack  # noqa: F401

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_COMPILE_CHECKED = False


def _note_first_compile(kernel: Any) -> None:
    """Say (once per process, at INFO) when the solver is about to be compiled: the first
    fit after installation takes about a minute more, which would otherwise look like
    a hang. Reads numba's cache index; any surprise there says nothing."""
    global _COMPILE_CHECKED
    if _COMPILE_CHECKED:
        return
    _COMPILE_CHECKED = True
    try:
        cached = bool(kernel._cache._cache_file._load_index())
    except Exception:  # numba internals changed: no message rather than a wrong one
        return
    if not cached:
        logger.info("compiling the graphical lasso solver (numba): once after installation, "
                    "about a minute; later runs load it from the cache")


def solve(S: np.ndarray, alpha: float, tol: float, max_iter: int,
          init: np.ndarray | None, screening: bool, warm: Bunch | None = None,
          top: float | None = None, prune: tuple[np.ndarray, float, float] | None = None
          ) -> Bunch:
    """Validated inputs in, raw solver result out (no warning).

    ``warm``: a result of this function on the same ``S``, at this alpha or a
    larger one, with screening (then block diagonal on this alpha's blocks): the
    solve starts from it, its inverse and its log-determinant, without a
    factorisation. It replaces ``init``. ``top``: ``alpha_max(S)`` when the caller
    has it (a fold's path solves the same ``S`` many times). ``prune``: ``(S_test,
    floor, spread)``: stop early (``status`` 4, not converged) once the held-out
    score under ``S_test`` cannot reach ``floor`` (see ``_pruning.prunable``).
    """
    from ._quic import solve_screened

    _note_first_compile(solve_screened)
    p = S.shape[0]
    if p == 1 or alpha >= (alpha_max(S) if top is None else top):
        precision = np.diag(1.0 / np.diag(S))
        return Bunch(covariance=np.diag(np.diag(S)), precision=precision, n_iter=0,
                     duality_gap=0.0, objective=float(np.sum(np.log(np.diag(S))) + p),
                     status=0, converged=True, n_components=p,
                     n_factorizations=0, factorization_cost=0.0, n_sweeps=0, n_cg=0,
                     logdet_rows=-np.log(np.diag(S)))
    use_w = warm is not None and screening
    if warm is not None:
        init = warm.precision
    use_init = init is not None
    theta0 = init if use_init else np.zeros((1, 1))
    w0 = warm.covariance if use_w else np.zeros((1, 1))
    logdet0 = warm.logdet_rows if use_w else np.zeros(1)
    S_test, floor, spread = prune if prune is not None else (np.zeros((1, 1)), -np.inf, 0.0)
    theta, W, n_iter, gap, obj, status, n_comp, counts, logdet_rows = solve_screened(
        S, float(alpha), theta0, use_init, float(tol), int(max_iter), bool(screening), w0,
        logdet0, use_w, S_test, float(floor), float(spread))
    return Bunch(covariance=W, precision=theta, n_iter=int(n_iter), duality_gap=float(gap),
                 objective=float(obj), status=int(status), converged=bool(gap <= tol * p),
                 n_components=int(n_comp), n_factorizations=int(counts[0]),
                 factorization_cost=float(counts[1]), n_sweeps=int(counts[2]),
                 n_cg=int(counts[3]), logdet_rows=logdet_rows)


def warn_not_converged(result: Bunch, tol: float, p: int, max_iter: int, where: str,
                       stacklevel: int = 3) -> None:
    warnings.warn(
        f"{where}: the graphical lasso did not converge ({_STATUS_TEXT[result.status]}): "
        f"duality gap {result.duality_gap:.3g} > tol * p = {tol * p:.3g} after "
        f"{result.n_iter} Newton iterations. Raise max_iter (now {max_iter}) or tol "
        f"(now {tol}); the result is recorded with converged_=False.",
        ConvergenceWarning, stacklevel=stacklevel,
    )


def graphical_lasso(emp_cov: Any, alpha: float, *, tol: float = 1e-10, max_iter: int = 100,
                    init: Any = None, screening: bool = True, verbose: bool = False,
                    return_info: bool = False) -> tuple:
    """Sparse inverse covariance by the graphical lasso (exact, certified by the duality gap).

    Minimises ``-log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|``.

    Parameters
    ----------
    emp_cov : array of shape (p, p)
        Empirical covariance (symmetric, positive semi-definite, positive diagonal).
    alpha : float > 0
        Penalty on the off-diagonal entries of the precision.
    tol : float
        Converged when the duality gap is at most ``tol * p`` (see the module notes).
    max_iter : int
        Maximum number of Newton (QUIC) iterations per connected block.
    init : array of shape (p, p), optional
        Warm start for the *precision* (e.g. the solution at a larger alpha). A
        start that is not positive definite is replaced by ``diag(1 / S_ii)``.
    screening : bool
        Split the problem into the connected components of ``|S_ij| > alpha``
        (exact; solves the same problem faster).
    verbose : bool
        Log a one-line summary at INFO level.
    return_info : bool
        Also return a Bunch with ``objective``, ``converged``, ``status``,
        ``n_components``, ``n_factorizations``, ``factorization_cost`` (sum of
        block sizes cubed, in units of p**3), ``n_sweeps`` (coordinate-descent
        sweeps) and ``n_cg`` (conjugate-gradient iterations of the face steps).

    Returns
    -------
    covariance : array (p, p)
        ``inv(precision)``.
    precision : array (p, p)
        The minimiser.
    n_iter : int
        Newton iterations (largest over the blocks; 0 when the solution is diagonal).
    duality_gap : float
        Certified bound on ``f(precision) - min f`` (sum over blocks).
    info : Bunch
        Only with ``return_info=True``.

    Warns
    -----
    ConvergenceWarning
        When the gap is above ``tol * p`` on return.

    Examples
    --------
    Five regions, of which only the first two interact:

    >>> import numpy as np
    >>> from sparse_connectome.covariance import graphical_lasso
    >>> X = np.random.default_rng(0).standard_normal((200, 5))
    >>> X[:, 1] += X[:, 0]
    >>> S = np.cov(X.T, bias=True)
    >>> covariance, precision, n_iter, gap = graphical_lasso(S, alpha=0.2)
    >>> np.argwhere(np.triu(precision, k=1)).tolist()  # the only edge found
    [[0, 1]]
    >>> bool(gap <= 1e-10 * 5)  # certified: f(precision) - min f <= tol * p
    True
    >>> bool(np.allclose(covariance @ precision, np.eye(5)))
    True
    """
    S = check_emp_cov(emp_cov)
    alpha = _check_alpha(alpha)
    tol = check_positive(tol, "tol")
    max_iter = check_max_iter(max_iter)
    p = S.shape[0]
    theta0 = None
    if init is not None:
        theta0 = np.array(init, dtype=np.float64, order="C", copy=True)
        if theta0.shape != S.shape or not np.all(np.isfinite(theta0)):
            raise InputError(
                f"init must be a finite ({p}, {p}) precision matrix, found shape {theta0.shape}"
            )
        theta0 = 0.5 * (theta0 + theta0.T)
    with blas_single_thread():
        result = solve(S, alpha, tol, max_iter, theta0, screening)
    if verbose:
        logger.info("graphical_lasso alpha=%.4g: %d iterations, gap %.3g, %d blocks, objective %.8g",
                    alpha, result.n_iter, result.duality_gap, result.n_components, result.objective)
    if not result.converged:
        warn_not_converged(result, tol, p, max_iter, "graphical_lasso")
    out = (result.covariance, result.precision, result.n_iter, result.duality_gap)
    if return_info:
        info = Bunch({k: result[k] for k in ("objective", "converged", "status", "n_components",
                                             "n_factorizations", "factorization_cost",
                                             "n_sweeps", "n_cg")})
        return out + (info,)
    return out


class GraphicalLasso(EmpiricalCovariance):
    """Sparse inverse covariance estimation with an l1 penalty (graphical lasso).

    Parameters
    ----------
    alpha : float > 0
        Off-diagonal l1 penalty.
    mode : {"quic"}
        Solver; only QUIC with exact screening is implemented.
    tol : float
        Converged when the duality gap is at most ``tol * n_features``.
    max_iter : int
        Maximum Newton iterations.
    verbose : bool
    assume_centered : bool
        Do not remove the mean of the data.
    screening : bool
        Exact block decomposition (see :func:`graphical_lasso`).

    Attributes
    ----------
    location_, covariance_, precision_, n_iter_, duality_gap_, converged_,
    objective_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import GraphicalLasso
    >>> X = np.random.default_rng(0).standard_normal((200, 5))
    >>> X[:, 1] += X[:, 0]
    >>> est = GraphicalLasso(alpha=0.2).fit(X)
    >>> est.precision_.shape, est.converged_
    ((5, 5), True)
    >>> np.argwhere(np.triu(est.precision_, k=1)).tolist()
    [[0, 1]]
    """

    def __init__(self, alpha: float = 0.01, *, mode: str = "quic", tol: float = 1e-10,
                 max_iter: int = 100, verbose: bool = False, assume_centered: bool = False,
                 screening: bool = True):
        self.alpha = alpha
        self.mode = mode
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.assume_centered = assume_centered
        self.screening = screening

    def fit(self, X: Any, y: Any = None) -> GraphicalLasso:
        """Fit on ``X`` of shape (n_samples, n_features)."""
        check_mode(self.mode)
        arr = check_samples(X, min_samples=2)
        self.location_ = np.zeros(arr.shape[1]) if self.assume_centered else arr.mean(axis=0)
        S = empirical_covariance(arr - self.location_, assume_centered=True)
        cov, prec, n_iter, gap, info = graphical_lasso(
            S, self.alpha, tol=self.tol, max_iter=self.max_iter, screening=self.screening,
            verbose=self.verbose, return_info=True)
        self.covariance_, self.precision_ = cov, prec
        self.n_iter_, self.duality_gap_ = n_iter, gap
        self.converged_, self.objective_ = info.converged, info.objective
        self.n_features_in_ = arr.shape[1]
        return self



def check_mode(mode: Any) -> None:
    if mode != "quic":
        raise ParameterError(
            f"mode must be 'quic' (the only solver implemented: QUIC with exact screening), "
            f"got {mode!r}"
        )
