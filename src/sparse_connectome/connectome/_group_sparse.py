"""Group sparse inverse covariance: ``group_sparse_covariance()``, ``GroupSparseCovariance``.

The model of Varoquaux, Gramfort, Poline & Thirion (NIPS 2010, "Brain
covariance selection: better individual functional connectivity models using
population prior"), with nilearn's normalisation: for subjects ``k = 1..K``
with ``n_k`` samples, empirical covariances ``S_k`` (centred, divided by
``n_k``) and weights ``w_k = n_k / sum_l n_l``::

    minimise over Theta_k > 0:
      F(Theta) = sum_k w_k [tr(S_k Theta_k) - log det Theta_k]
                 + alpha * sum_{i != j} ||(Theta_1[i, j], ..., Theta_K[i, j])||_2

(both triangles are counted, as nilearn's ``group_sparse_scores`` does). All
subjects share one support; the diagonal is not penalised. The solver (a
proximal Newton method with a group proximal step, in numba, and exact Newton
steps on the support's face when it is dense) is described in :mod:`._group_newton`.

The dual, and the certificate
-----------------------------
For ``i != j`` write the penalty as a maximum over matrices ``Z_k`` with zero
diagonal and ``||(Z_1[i, j], ..., Z_K[i, j])||_2 <= alpha`` (the dual norm of
the l2 norm is the l2 norm)::

    alpha * sum_{i != j} ||Theta[i, j]|| = max_Z sum_k <Z_k, Theta_k>.

Exchanging min and max (the objective is convex in Theta, linear in Z, the Z
set is compact), for fixed symmetric ``Z`` the minimum over ``Theta_k`` of
``<w_k S_k + Z_k, Theta_k> - w_k log det Theta_k`` is attained at
``Theta_k = w_k (w_k S_k + Z_k)^-1`` when ``S_k + Z_k / w_k`` is positive
definite (``-inf`` otherwise), with value ``w_k (p + log det(S_k + Z_k / w_k))``.
So the dual problem is::

    maximise  G(Z) = sum_k w_k [log det(S_k + Z_k / w_k) + p]
    over      Z_k symmetric, diag(Z_k) = 0, ||Z[i, j]|| <= alpha (i != j),
              S_k + Z_k / w_k positive definite,

and weak duality gives ``F(Theta) - F(Theta*) <= F(Theta) - G(Z)`` for *any*
feasible ``Z``. At the optimum, the stationarity conditions read
``W_k = inv(Theta_k) = S_k + Z_k / w_k`` with ``Z_k = w_k (W_k - S_k)``
feasible (``W_k[i, i] = S_k[i, i]``, ``||Z[i, j]|| <= alpha``) and the gap is 0.
For any feasible ``Z`` (diagonal zero) the gap splits exactly: with
``V_k = S_k + Z_k / w_k`` and ``mu_k`` the eigenvalues of ``Theta_k V_k - I``::

    F(Theta) - G(Z) = sum_{i != j} (alpha ||Theta[i, j]|| - Z[i, j] . Theta[i, j])
                      + sum_k w_k sum (mu_k - log(1 + mu_k)),

a complementary slackness term (non-negative group by group) and a
second-order one (``mu - log(1 + mu) ~ mu**2 / 2``, and ``Theta_k V_k - I =
Theta_k (V_k - W_k)``). From any iterate we take ``Z_k = w_k (W_k - S_k)``,
diagonal set to zero, each off-diagonal group scaled into the ball, except
that a group of the support may take ``alpha Theta[i, j] / ||Theta[i, j]||``
instead (its value at the optimum), whichever makes the gap smaller (see
:func:`._group_sparse_kernels.dual_gap`: the projection alone leaves a
slackness term linear in the gradient's residual). Where every
``S_k + Z_k / w_k`` is positive definite (always, close enough to the optimum)
``F(Theta) - G(Z)``, plus an allowance for its rounding, is a *certified*
bound on the suboptimality, else the gap is reported as ``inf``. A fit is converged when this gap is at most
``tol * p``: ``tol`` is an accuracy of the objective per region, as in
:func:`sparse_connectome.covariance.graphical_lasso`.

KKT conditions (tested): with ``G_k = w_k (S_k - W_k)``, for every ``i != j``
``G[i, j] + alpha Theta[i, j] / ||Theta[i, j]|| = 0`` if ``Theta[i, j] != 0``,
else ``||G[i, j]|| <= alpha``; and ``W_k[i, i] = S_k[i, i]``.

Exact screening, and its proof
------------------------------
Let ``N[i, j] = ||(w_1 S_1[i, j], ..., w_K S_K[i, j])||_2`` and let ``G`` be the
graph with an edge ``(i, j)`` where ``N[i, j] > alpha``. **Claim**: the solution
is block diagonal along the connected components of ``G`` (the same blocks for
every subject), each block being the solution of the problem restricted to
its regions. *Proof*: let ``Theta_hat`` be block diagonal, made of the block
solutions. Its inverses ``W_k`` are block diagonal too, so for a pair ``(i, j)``
in two different components, ``Theta_hat[i, j] = 0`` and
``||w_k (S_k - W_k)[i, j]|| = N[i, j] <= alpha`` (no edge joins two
components): the KKT condition of that pair holds. Within a block, the KKT
conditions involve only the block of ``W_k``, which is the inverse of the block
of ``Theta_hat``, so they are the block problem's own conditions, which hold.
The KKT conditions are sufficient for this convex problem and ``F`` is
strictly convex (``-log det`` is), so ``Theta_hat`` is *the* solution. A single
region ``i`` gets ``Theta_k[i, i] = 1 / S_k[i, i]``. In particular alpha at or
above ``max N`` gives the diagonal solution (nilearn's ``compute_alpha_max``).

Note that the rule is about *components*: a single pair with ``N[i, j] <= alpha``
inside a component may still be an edge of the solution (as in the one-subject
graphical lasso), so it is not set to zero one pair at a time.

Degenerate inputs: fewer samples than regions is fine for ``alpha > 0``
(``(1 - t) S_k + t diag(S_k)`` gives a strictly feasible dual point for a small
``t > 0``, so the minimum is attained); a constant region makes the problem
unbounded and is an :class:`InputError` naming the subject and region.
"""

from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._utils.bunch import Bunch
from .._utils.estimator import BaseEstimator

# One BLAS-thread limit for every solver: it loads scipy's OpenBLAS (which the numba
# kernels call) before limiting, without which its threads spin on small products.
from ..covariance._graphical_lasso import blas_single_thread
from ..errors import ConvergenceWarning, InputError, ParameterError, ShapeMismatchError

__all__ = [
    "group_sparse_covariance",
    "GroupSparseCovariance",
    "group_sparse_objective",
    "group_sparse_alpha_max",
    "empirical_covariances",
    "check_subjects",
    "solve_group_problem",
    "blas_single_thread",
    "stack_covariances",
    "normalized_weights",
    "check_alpha",
    "check_tol_iter",
    "warn_not_converged",
]

logger = logging.getLogger(__name__)

_STATUS = {
    0: "converged",
    1: "reached max_iter",
    2: "stopped at the rounding floor (no further descent possible)",
    3: "line search failed",
}


def check_subjects(subjects: Any, name: str = "subjects") -> list[np.ndarray]:
    """Validate a list of (n_samples_k, p) arrays; return them as float64 arrays."""
    if isinstance(subjects, np.ndarray) and subjects.ndim == 2:
        subjects = [subjects]
    if isinstance(subjects, (str, bytes)) or not hasattr(subjects, "__iter__"):
        raise InputError(f"{name} must be a list of (n_samples, n_regions) arrays, "
                         f"got {type(subjects).__name__}")
    out = []
    for k, x in enumerate(subjects):
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}[{k}] is not a numeric array: {exc}") from None
        if arr.ndim != 2:
            raise InputError(f"{name}[{k}] has shape {arr.shape}; expected a 2D "
                             "(n_samples, n_regions) array")
        if arr.shape[0] < 2:
            raise InputError(f"{name}[{k}] has {arr.shape[0]} sample(s); a covariance needs "
                             "at least 2 samples per subject")
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise InputError(f"{name}[{k}] contains NaN or Inf (first at sample {bad[0]}, "
                             f"region {bad[1]}); expected finite values")
        out.append(arr)
    if not out:
        raise InputError(f"{name} is empty; expected a list of at least one subject's "
                         "(n_samples, n_regions) array")
    widths = [x.shape[1] for x in out]
    if len(set(widths)) > 1:
        odd = next(k for k, n in enumerate(widths) if n != widths[0])
        raise ShapeMismatchError(
            f"{name}[{odd}] has {widths[odd]} regions but {name}[0] has {widths[0]}; all "
            f"subjects must have the same regions (found {sorted(set(widths))})")
    if widths[0] < 1:
        raise InputError(f"{name} have no region (0 columns)")
    return out


def empirical_covariances(subjects: Any, *, standardize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centred covariances (divided by ``n_k``) of several subjects, nilearn's layout.

    Parameters
    ----------
    subjects : list of arrays of shape (n_samples_k, n_regions)
    standardize : bool
        Divide each region's signal by its standard deviation first (correlations).

    Returns
    -------
    emp_covs : array of shape (n_regions, n_regions, n_subjects)
    n_samples : float array of shape (n_subjects,)

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import empirical_covariances
    >>> rng = np.random.default_rng(0)
    >>> covs, n = empirical_covariances([rng.standard_normal((50, 3)), rng.standard_normal((30, 3))])
    >>> covs.shape, n.tolist()
    ((3, 3, 2), [50.0, 30.0])
    """
    subjects = check_subjects(subjects)
    p = subjects[0].shape[1]
    covs = np.empty((p, p, len(subjects)))
    for k, x in enumerate(subjects):
        x = x - x.mean(axis=0)
        if standardize:
            std = np.sqrt(np.mean(x * x, axis=0))
            if np.any(std == 0):
                raise InputError(f"subjects[{k}] region {int(np.flatnonzero(std == 0)[0])} is "
                                 "constant; it cannot be standardized")
            x = x / std
        c = x.T @ x / x.shape[0]
        covs[..., k] = 0.5 * (c + c.T)
    return covs, np.array([x.shape[0] for x in subjects], dtype=np.float64)


def stack_covariances(emp_covs: np.ndarray) -> np.ndarray:
    """(p, p, K) -> C-contiguous (K, p, p), checking the variances."""
    S = np.ascontiguousarray(np.moveaxis(np.asarray(emp_covs, dtype=np.float64), -1, 0))
    diag = np.diagonal(S, axis1=1, axis2=2)
    if np.any(diag <= 0):
        k, i = np.argwhere(diag <= 0)[0]
        raise InputError(
            f"subject {k} has variance {diag[k, i]!r} for region {i}: a constant region makes "
            "the group sparse problem unbounded (no solution exists); remove that region")
    return S


def normalized_weights(n_samples: Any, K: int) -> np.ndarray:
    w = np.asarray(n_samples, dtype=np.float64).ravel()
    if w.shape != (K,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ShapeMismatchError(f"n_samples must be {K} positive numbers (one per subject), "
                                 f"got {n_samples!r}")
    return w / w.sum()


def group_sparse_alpha_max(emp_covs: Any, n_samples: Any) -> float:
    """Smallest alpha at which every precision is diagonal: ``max_{i != j} ||w_k S_k[i, j]||``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import group_sparse_alpha_max
    >>> S = np.stack([[[1.0, 0.3], [0.3, 1.0]], [[1.0, 0.4], [0.4, 1.0]]], axis=-1)
    >>> round(group_sparse_alpha_max(S, [10, 10]), 6)  # ||(0.5 * 0.3, 0.5 * 0.4)||
    0.25
    """
    from ._group_sparse_kernels import group_norms

    S = stack_covariances(emp_covs)
    return float(group_norms(S, normalized_weights(n_samples, S.shape[0])).max())


def group_sparse_objective(emp_covs: Any, precisions: Any, n_samples: Any, alpha: float) -> float:
    """The objective ``F(Theta)`` minimised by :func:`group_sparse_covariance` (see the module).

    ``inf`` when a precision is not positive definite. Arrays are (p, p, K).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import group_sparse_objective
    >>> S = np.stack([np.eye(2), np.eye(2)], axis=-1)
    >>> group_sparse_objective(S, S, [1, 3], alpha=0.1)  # tr(I) - log det I
    2.0
    """
    from ._group_sparse_kernels import group_objective

    S = stack_covariances(emp_covs)
    theta = np.ascontiguousarray(np.moveaxis(np.asarray(precisions, dtype=np.float64), -1, 0))
    if theta.shape != S.shape:
        raise ShapeMismatchError(f"precisions have shape {np.shape(precisions)} but emp_covs "
                                 f"{np.shape(emp_covs)}; expected the same (p, p, K)")
    return float(group_objective(S, normalized_weights(n_samples, S.shape[0]), theta, float(alpha)))


def check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not np.isfinite(alpha) or alpha <= 0:
        raise ParameterError(f"alpha must be a finite number > 0, got {alpha!r}")
    return float(alpha)


def check_tol_iter(tol: Any, max_iter: Any, names: tuple[str, str] = ("tol", "max_iter")) -> None:
    if isinstance(tol, bool) or not isinstance(tol, Real) or not tol > 0:
        raise ParameterError(f"{names[0]} must be a number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 1:
        raise ParameterError(f"{names[1]} must be an integer >= 1, got {max_iter!r}")


def solve_group_problem(S: np.ndarray, w: np.ndarray, alpha: float, tol: float, max_iter: int,
                        init: np.ndarray | None = None, screening: bool = True) -> Bunch:
    """Stacked (K, p, p) covariances and normalised weights in, raw solver result out."""
    from ._group_newton import solve_group
    from ._group_sparse_kernels import group_norms

    K, p, _ = S.shape
    if p == 1 or alpha >= group_norms(S, w).max():
        diag = np.diagonal(S, axis1=1, axis2=2)
        theta = np.zeros_like(S)
        W = np.zeros_like(S)
        for k in range(K):
            theta[k] = np.diag(1.0 / diag[k])
            W[k] = np.diag(diag[k])
        obj = float(np.sum(w * (np.log(diag).sum(axis=1) + p)))
        return Bunch(precisions=theta, covariances=W, n_iter=0, duality_gap=0.0, objective=obj,
                     status=0, converged=True, n_components=p)
    theta, W, n_iter, gap, obj, status, n_comp = solve_group(
        S, w, float(alpha), init, float(tol), int(max_iter), bool(screening))
    return Bunch(precisions=theta, covariances=W, n_iter=int(n_iter), duality_gap=float(gap),
                 objective=float(obj), status=int(status), converged=bool(gap <= tol * p),
                 n_components=int(n_comp))


def warn_not_converged(result: Bunch, tol: float, p: int, where: str) -> None:
    warnings.warn(
        f"{where}: the group sparse solver did not converge ({_STATUS[result.status]}): duality "
        f"gap {result.duality_gap:.3g} > tol * p = {tol * p:.3g} after {result.n_iter} Newton "
        "iterations; raise max_iter or tol (the result is kept, converged_ is False)",
        ConvergenceWarning, stacklevel=3)


def set_group_solution(est: BaseEstimator, covariances: np.ndarray, precisions: np.ndarray,
                       result: Bunch) -> None:
    """Set the fitted attributes every group estimator shares, from its final fit.

    ``covariances`` (empirical) and ``precisions`` are (p, p, K); ``result`` has
    ``duality_gap``, ``converged``, ``n_iter`` and ``objective``.
    """
    est.covariances_, est.precisions_ = covariances, precisions
    est.duality_gap_, est.converged_ = result.duality_gap, result.converged
    est.n_iter_, est.objective_ = result.n_iter, result.objective
    est.n_features_in_ = covariances.shape[0]


def group_sparse_covariance(subjects: Any, alpha: float, *, tol: float = 1e-4,
                            max_iter: int = 100, precisions_init: Any = None,
                            screening: bool = True, verbose: bool = False,
                            return_info: bool = False) -> tuple:
    """Sparse precisions of several subjects sharing one support (group sparse model).

    Minimises ``sum_k w_k [tr(S_k Theta_k) - log det Theta_k] + alpha sum_{i != j}
    ||Theta[i, j]||_2`` with ``w_k = n_k / sum n`` (nilearn's objective), exactly:
    the result is certified by a duality gap (see the module notes).

    Parameters
    ----------
    subjects : list of arrays of shape (n_samples_k, n_regions)
        One array per subject; the numbers of samples may differ.
    alpha : float > 0
        Penalty on the l2 norms across subjects of the off-diagonal entries.
    tol : float
        Converged when the duality gap is at most ``tol * n_regions``.
    max_iter : int
        Maximum Newton iterations (per screened block).
    precisions_init : array of shape (n_regions, n_regions, n_subjects), optional
        Warm start (replaced by ``diag(1 / S_k[i, i])`` if not positive definite).
    screening : bool
        Split the problem into the exact blocks of the screening rule.
    verbose : bool
        Log a one-line summary at INFO level.
    return_info : bool
        Also return a Bunch with ``duality_gap``, ``converged``, ``n_iter``,
        ``objective``, ``status`` and ``n_components``.

    Returns
    -------
    emp_covs : array of shape (n_regions, n_regions, n_subjects)
        The empirical covariances (as nilearn returns them).
    precisions : array of shape (n_regions, n_regions, n_subjects)
        The solution; all subjects have the same zeros.
    info : Bunch
        Only with ``return_info=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import group_sparse_covariance
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((100, 4)) for _ in range(3)]
    >>> for x in subjects:
    ...     x[:, 1] += x[:, 0]  # regions 0 and 1 interact in every subject
    >>> covs, precisions, info = group_sparse_covariance(subjects, 0.1, return_info=True)
    >>> precisions.shape, info.converged, bool(info.duality_gap <= 1e-4 * 4)
    ((4, 4, 3), True, True)
    >>> bool(np.all(precisions[0, 1] < 0)), bool(np.all(precisions[2, 3] == 0))
    (True, True)
    """
    subjects = check_subjects(subjects)
    alpha = check_alpha(alpha)
    check_tol_iter(tol, max_iter)
    emp_covs, n_samples = empirical_covariances(subjects)
    S = stack_covariances(emp_covs)
    init = None
    if precisions_init is not None:
        init = np.moveaxis(np.asarray(precisions_init, dtype=np.float64), -1, 0)
        if init.shape != S.shape:
            raise ShapeMismatchError(f"precisions_init has shape {np.shape(precisions_init)}; "
                                     f"expected {emp_covs.shape}")
    with blas_single_thread():
        res = solve_group_problem(S, normalized_weights(n_samples, S.shape[0]), alpha, tol, max_iter,
                                  init, screening)
    p = S.shape[1]
    if not res.converged:
        warn_not_converged(res, tol, p, "group_sparse_covariance")
    if verbose:
        logger.info("group sparse covariance: alpha=%.4g, %d Newton iterations, gap %.3g, %s",
                    alpha, res.n_iter, res.duality_gap, _STATUS[res.status])
    precisions = np.moveaxis(res.precisions, 0, -1)
    info = Bunch(duality_gap=res.duality_gap, converged=res.converged, n_iter=res.n_iter,
                 objective=res.objective, status=res.status, n_components=res.n_components,
                 model_covariances=np.moveaxis(res.covariances, 0, -1))
    return (emp_covs, precisions, info) if return_info else (emp_covs, precisions)


class GroupSparseCovariance(BaseEstimator):
    """Group sparse inverse covariance at a fixed alpha (nilearn's API, exact solver).

    Parameters
    ----------
    alpha : float > 0
        Penalty (see :func:`group_sparse_covariance`).
    tol : float
        Converged when the duality gap is at most ``tol * n_regions``.
    max_iter : int
        Maximum Newton iterations.
    screening : bool
        Use the exact screening rule.
    verbose : bool

    Attributes
    ----------
    covariances_ : array (n_regions, n_regions, n_subjects), empirical covariances.
    precisions_ : array (n_regions, n_regions, n_subjects), the solution.
    duality_gap_, converged_, n_iter_, objective_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome import GroupSparseCovariance
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((80, 5)) for _ in range(4)]
    >>> est = GroupSparseCovariance(alpha=0.05).fit(subjects)
    >>> est.precisions_.shape, est.converged_
    ((5, 5, 4), True)
    """

    def __init__(self, alpha: float = 0.1, tol: float = 1e-4, max_iter: int = 100,
                 screening: bool = True, verbose: bool = False):
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.screening = screening
        self.verbose = verbose

    def fit(self, subjects: Any, y: Any = None) -> GroupSparseCovariance:
        """Fit the group model to a list of (n_samples_k, n_regions) arrays."""
        covs, precisions, info = group_sparse_covariance(
            subjects, self.alpha, tol=self.tol, max_iter=self.max_iter,
            screening=self.screening, verbose=self.verbose, return_info=True)
        set_group_solution(self, covs, precisions, info)
        return self
