"""The group sparse solver: exact Newton steps on a face, QUIC steps to change the support.

Arrays are stacked subject-first (``S[k]``, ``theta[k]`` of shape (p, p)); the
problem and its dual are in :mod:`._group_sparse`, the compiled QUIC kernels in
:mod:`._group_sparse_kernels`, the face step (its Newton system and
preconditioned CG) in :mod:`._group_face_newton`.

Why a second kind of step
-------------------------
At small alpha the solution is dense and the Hessian of the smooth part,
``w_k W_k (x) W_k`` for subject ``k``, has the condition number ``cond(W_k)**2``
(about 1e4 with 134 samples of 100 regions): the coordinate descent of a QUIC
step then needs a hundred sweeps for a rough direction, and rough directions
make the outer iterations converge linearly (seconds per fit at 10 x 39,
minutes at 40 x 100, measured).

The face step
-------------
On the *face* of ``Theta`` (the groups ``g = (i, j)`` with ``||Theta_g|| > 0``
free, the others held at zero) the objective is smooth. The face step solves
its Newton system inexactly, by preconditioned conjugate gradients
(:func:`face_newton_direction`, described in :mod:`._group_face_newton`): in
single precision when the gap target allows it (``tol`` above 1e-7 per region),
CG stopped at ``1e-3`` of the gap target at the latest. A group that the step
would turn around becomes zero instead. The step is accepted by the Armijo rule
on the true objective (with QUIC's bound ``delta``, :func:`descent_bound`).

The outer loop
--------------
A face step cannot remove many groups quickly (a group leaves only when a step
would turn it around), and a QUIC step removes or adds any number at once but
needs many sweeps for an accurate direction when the Hessian is ill
conditioned. So each block starts with QUIC steps (a few sweeps each) until
one takes a full step and changes the support by at most 1 %; face steps
follow while they take full steps and at most 1 % of the support would enter
(the entering groups move along their steepest direction only, with the
inverse of their radial curvature as preconditioner); otherwise the next step
is a QUIC step. Either way the duality gap at a feasible dual point
(:func:`dual_gap`) is the stopping rule, so the certificate is the same.

A full QUIC step that did not halve the gap has *stalled*: the next face step is
tried while at most 5 % of the support would enter. Subjects sharing a global
signal (fMRI without global signal regression) make ``W_k (x) W_k`` ill-conditioned
in one direction: the sweeps then grow the direction by about ``1 / sweep`` (still
2.4 % after 60), the QUIC steps' rough directions leave 1 to 2 % of the groups
hovering at the support's edge, which refused every face step, and the full QUIC
steps converged linearly (8 subjects x 80 to 120 regions, 150 to 200 volumes each,
alpha 0.1 to 0.3 of ``alpha_max``: up to 74 iterations, and no convergence in 100; now
8 to 22). Well-conditioned cohorts take the same steps as before (their QUIC steps
halve the gap).

Tight tolerances: the gap's dual point
--------------------------------------
Below the default ``tol`` (1e-4 per region) the certificate, not the steps,
was the limit. At the projection of ``w_k (W_k - S_k)`` into the dual's balls,
the gap's complementary slackness term (``||Theta_g|| (alpha - Z_g . u_g)`` for
a group of the support, see :mod:`._group_sparse`) is *linear* in the face's
gradient residual, while CG's stopping rule (``r . z`` below 1e-3 of the
target) aims at a gap *quadratic* in it. Traced at tol 1e-8: the face steps
took full steps with one CG iteration each, the objective moved by 1e-12 a
step, and the gap, 99 % slackness (the second-order term 1e-11), oscillated
between 4e-7 and 6e-6 (10 x 39 simulated), 3e-6 and 3e-5 (8 x 80 sharing a
global signal) around targets of 4e-7 and 8e-7; single precision (not used
there), the line search and the step switching were not the cause. The dual
point now gives a group of the support ``alpha u_g`` (its value at the
optimum) where the gap's split says that is smaller (:func:`dual_gap`): its
slackness is then zero and its residual enters the quadratic term. Measured on
simulated cohorts (10 x 39, 8 x 60, 20 x 100) and global-signal ones (8 x 80,
8 x 120), alpha 0.1 to 0.5 of ``alpha_max``: tol 1e-8 took 5 to 22 iterations
(was 7 to 78, and 7 of the 20 fits did not converge in 100), tol 1e-10 5 to 23
(was 9 to 26, and 14 did not converge): at most 5 and 6 more than at the
default tol. At the default tol the fits stop up to 4 iterations earlier (two
took one more): 10 to 20 % less CPU time a fit, and ``GroupSparseCovarianceCV``
20 to 25 % faster. The choice costs one more pass over the stacks (0.3 ms a gap at
20 x 100, where the factorisations take 1 ms).

Measured (40 subjects x 100 regions, one fold of 134 samples, the 78 fits of
``GroupSparseCovarianceCV``, alphas from ``alpha_max`` down to ``alpha_max /
100``, warm-started, one thread): 0.06 to 0.75 s a fit, 3 to 10 outer
iterations, 8.6 CG iterations a face step on average; QUIC steps alone took
5 s to minutes. Every (K, p, p) array of a block's solve is allocated once
(:class:`_Work`): fresh arrays of that size cost page faults at every use
(2 ms each at 40 x 100, 10 % of the CV's time).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._group_face_newton import face_newton_direction
from ._group_sparse_kernels import (
    descent_bound,
    dual_gap,
    factor_objective,
    group_norms,
    inverses_from_factors,
    line_search,
    quic_direction,
)

# numba's disk cache of a kernel is keyed by the contents of its own file only: this
# digest of the kernels imported above (SHA-256, first 16 hex digits) makes this file
# change with them; tests/test_architecture.py checks that it is current.
KERNEL_SOURCES = {"_group_face_newton.py": "064745d75154b60b", "_group_sparse_kernels.py": "31d528e6f919e47d"}

__all__ = ["solve_group"]

# The directions are computed in single precision when the gap target is above this (per region).
_SINGLE_LIMIT = 1e-7
# CG stops once its r . z is below this fraction of the target gap.
_FORCING_FLOOR = 1e-3
# A QUIC step grows the support when more groups enter it than this fraction of its size.
_ENTER_FRACTION = 0.01
# A QUIC step has settled the support when it changed at most this fraction of it.
_SETTLED = 0.01
# Coordinate-descent sweeps of a QUIC step, bounded by the relative accuracy in the kernels.
_QUIC_SWEEPS = 3
# A full QUIC step that leaves more than this share of the gap has stalled (see the module notes):
# the next face step is tried while at most this fraction of the support would enter.
_STALLED_GAP = 0.5
_STALLED_ENTER_FRACTION = 0.05


@njit(cache=True, nogil=True)
def _entering_and_support(S, w, theta, W, alpha):
    """Zero entries (both triangles) whose group's gradient norm exceeds alpha, and the support's size.

    The support counts the diagonal (never zero).
    """
    K, p, _ = S.shape
    n_enter = 0
    n_support = p
    for i in range(p):
        for j in range(p):
            if i == j:
                continue
            nt = 0.0
            ng = 0.0
            for k in range(K):
                nt += theta[k, i, j] * theta[k, i, j]
                g = w[k] * (S[k, i, j] - W[k, i, j])
                ng += g * g
            if nt != 0.0:
                n_support += 1
            elif ng > alpha * alpha:
                n_enter += 1
    return n_enter, n_support


def _support(theta: np.ndarray) -> np.ndarray:
    return np.einsum("kij,kij->ij", theta, theta) != 0.0


class _Work:
    """The scratch of one block's solve: fresh arrays of this size cost page faults at every use."""

    def __init__(self, K: int, p: int, single: bool):
        self.D, self.trial = np.zeros((K, p, p)), np.empty((K, p, p))
        # The Cholesky factors of the last point the line search evaluated (the accepted one).
        self.L, self.W = np.zeros((K, p, p)), np.empty((K, p, p))
        self.gap = np.empty((4, p, p))
        # The face steps' (and the QUIC steps' products) and the QUIC steps'.
        self.face = np.empty((12, K, p, p), np.float32 if single else np.float64)
        self.quic = np.empty((6, K, p, p))


def _quic_step(S, w, theta, alpha, f, work):
    """A QUIC step into ``work.trial``: ``(status, objective, whether the support settled, full step)``.

    The direction is computed in single precision, again in double precision
    when that one does not descend (see :func:`quic_direction`).
    """
    K, p, _ = S.shape
    for buffers in (work.face, work.quic[4:]):
        Wt, Ut = buffers[0].reshape(p, K, p), buffers[1].reshape(p, K, p)
        quic_direction(S, w, work.W, theta, alpha, _QUIC_SWEEPS, work.D, work.quic, Wt, Ut)
        delta = descent_bound(S, w, work.W, theta, work.D, alpha)
        if delta < 0.0:
            break
    if not delta < 0.0:
        return 2, f, False, False
    accepted, step, f_new = line_search(S, w, theta, work.D, alpha, f, delta, work.trial, work.L)
    if not accepted:
        return 3, f, False, False
    before, after = _support(theta), _support(work.trial)
    settled = step == 1.0 and np.count_nonzero(before != after) <= _SETTLED * np.count_nonzero(after)
    return 0, f_new, settled, step == 1.0


def _face_step(S, w, theta, alpha, f, work, target_gap, stalled=False):
    """A face step into ``work.trial``: ``(accepted, objective, full step)``.

    Refused when more than ``_ENTER_FRACTION`` of the support would enter it, or
    ``_STALLED_ENTER_FRACTION`` after a QUIC step that ``stalled``.
    """
    n_enter, n_support = _entering_and_support(S, w, theta, work.W, alpha)
    if n_enter > (_STALLED_ENTER_FRACTION if stalled else _ENTER_FRACTION) * n_support:
        return False, f, False
    face_newton_direction(S, w, theta, work.W, alpha, work.D, work.face, _FORCING_FLOOR * target_gap)
    delta = descent_bound(S, w, work.W, theta, work.D, alpha)
    if not delta < 0.0:
        return False, f, False
    accepted, step, f_new = line_search(S, w, theta, work.D, alpha, f, delta, work.trial, work.L)
    return accepted, f_new, accepted and step == 1.0


def _solve_block(S: np.ndarray, w: np.ndarray, theta: np.ndarray, alpha: float,
                 target_gap: float, max_iter: int) -> tuple:
    """Solve one screened block from ``theta`` (overwritten with the solution).

    QUIC steps until the support settles (a full step that changes it little:
    face steps cannot remove groups quickly) or they stall (a full step that did
    not halve the gap), then face steps while they take full steps. Returns
    ``(W, n_iter, gap, objective, status)``.
    """
    K, p, _ = S.shape
    work = _Work(K, p, single=target_gap > _SINGLE_LIMIT * p)
    f = factor_objective(S, w, theta, alpha, work.L)
    if not np.isfinite(f):
        theta[:] = 0.0
        for k in range(K):
            np.fill_diagonal(theta[k], 1.0 / np.diagonal(S[k]))
        f = factor_objective(S, w, theta, alpha, work.L)
    inverses_from_factors(theta, work.L, work.W)
    gap = dual_gap(S, w, work.W, theta, alpha, f, work.gap)
    status, n_iter, face, stalled = 0, 0, True, False
    while gap > target_gap:
        if n_iter >= max_iter:
            status = 1
            break
        n_iter += 1
        done, full = False, False
        if face or stalled:
            done, f, face = _face_step(S, w, theta, alpha, f, work, target_gap, stalled)
        if not done:
            status, f, face, full = _quic_step(S, w, theta, alpha, f, work)
            if status:
                break
        theta[:] = work.trial
        inverses_from_factors(theta, work.L, work.W)
        previous, gap = gap, dual_gap(S, w, work.W, theta, alpha, f, work.gap)
        # A full QUIC step that left more than half the gap: stalled (an infinite gap says nothing).
        stalled = full and _STALLED_GAP * previous < gap < np.inf
    if gap <= target_gap:
        status = 0
    return work.W, n_iter, gap, f, status


def _components(S: np.ndarray, w: np.ndarray, alpha: float) -> tuple[int, np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(csr_matrix(group_norms(S, w) > alpha), directed=False)


def solve_group(S: np.ndarray, w: np.ndarray, alpha: float, theta_init: np.ndarray | None,
                tol: float, max_iter: int, screen: bool) -> tuple:
    """Solve the group problem block by block (the blocks of the exact screening rule).

    Parameters
    ----------
    S : (K, p, p) float64, each ``S[k]`` symmetric PSD with a positive diagonal.
    w : (K,) positive weights summing to 1.
    alpha : float > 0.
    theta_init : (K, p, p) warm start, or None.
    tol : float; a block of q regions stops when its duality gap is <= tol * q.
    max_iter : int, outer iterations per block.
    screen : bool; when False the whole problem is one block.

    Returns
    -------
    theta, W (K, p, p), n_iter (max over blocks), gap (sum over blocks),
    objective, status (worst over blocks), n_components.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.connectome._group_newton import solve_group
    >>> S = np.stack([[[1.0, 0.5], [0.5, 1.0]]] * 2)
    >>> theta, W, n_iter, gap, f, status, n_comp = solve_group(S, np.array([0.5, 0.5]), 0.1,
    ...                                                        None, 1e-8, 50, True)
    >>> status, bool(gap <= 2e-8), bool(theta[0, 0, 1] < 0)
    (0, True, True)
    """
    K, p, _ = S.shape
    n_comp, labels = _components(S, w, alpha) if screen else (1, np.zeros(p, np.int64))
    theta = np.zeros((K, p, p))
    W = np.zeros((K, p, p))
    n_iter, status, gap, objective = 0, 0, 0.0, 0.0
    for label in range(n_comp):
        idx = np.flatnonzero(labels == label)
        if idx.size == 1:
            d = S[:, idx[0], idx[0]]
            theta[:, idx[0], idx[0]] = 1.0 / d
            W[:, idx[0], idx[0]] = d
            objective += float(np.sum(w * (np.log(d) + 1.0)))
            continue
        # Whole-array copies where the block is every region (fancy indexing costs ms at 40 x 100).
        whole = idx.size == p
        S_b = np.ascontiguousarray(S if whole else S[:, idx][:, :, idx])
        if theta_init is not None:
            th_b = np.array(theta_init if whole else theta_init[:, idx][:, :, idx], order="C")
        else:
            th_b = np.zeros_like(S_b)
            for k in range(K):
                np.fill_diagonal(th_b[k], 1.0 / np.diagonal(S_b[k]))
        W_b, it, g, f, st = _solve_block(S_b, w, th_b, alpha, tol * idx.size, max_iter)
        n_iter, status = max(n_iter, it), max(status, st)
        gap += g
        objective += f
        if whole:
            theta, W = th_b, W_b
        else:
            block = np.ix_(range(K), idx, idx)
            theta[block] = th_b
            W[block] = W_b
    return theta, W, n_iter, gap, objective, status, n_comp
