"""The group sparse solver: exact Newton steps on a face, QUIC steps to change the support.

Arrays are stacked subject-first (``S[k]``, ``theta[k]`` of shape (p, p)); the
problem and its dual are in :mod:`._group_sparse`, the compiled QUIC kernels in
:mod:`._group_sparse_kernels`.

Why a second kind of step
-------------------------
At small alpha the solution is dense and the Hessian of the smooth part,
``w_k W_k (x) W_k`` for subject ``k``, has the condition number ``cond(W_k)**2``
(about 1e4 with 134 samples of 100 regions): the coordinate descent of a QUIC
step then needs a hundred sweeps for a rough direction, and rough directions
make the outer iterations converge linearly (seconds per fit at 10 x 39,
minutes at 40 x 100, measured).

The face, and its Newton system
-------------------------------
Fix the *face* of ``Theta``: the groups ``g = (i, j)`` with ``||Theta_g|| > 0``
(free), the others (``Z``) held at zero. On the face the objective is smooth
(the l2 norm is differentiable away from 0), with, in the Frobenius pairing of
symmetric matrices (both triangles counted, as the penalty counts them):

* gradient ``G_k = w_k (S_k - W_k) + alpha U_k``, ``U_k[i, j] = Theta_k[i, j] /
  ||Theta_g||`` off the diagonal (0 on it);
* Hessian ``H(D)_k = w_k W_k D_k W_k + alpha (D_g - u_g (u_g . D_g)) / ||Theta_g||``,
  the second term, for each free group, the curvature of the l2 norm across
  subjects (none along ``u_g``, the radial direction).

Unlike the single-subject l1 penalty (whose Hessian vanishes on a face, so the
exact step is ``-Theta (G + Lambda) Theta``, see
:mod:`sparse_connectome.covariance`), the group term couples the K subjects
entry by entry and has no closed-form inverse together with ``W (x) W``. The
Newton system ``P_F H(D) = -P_F G`` (``P_F`` zeroes ``Z``) is solved by
preconditioned conjugate gradients, the preconditioner being the exact inverse
of the smooth part, ``R -> P_F(Theta_k R_k Theta_k / w_k)``: it removes the
``cond(W)**2`` factor, leaving only the penalty's curvature relative to the
smooth one. Every CG iteration costs four (p, p) products per subject (BLAS,
in single precision: 17 % less CPU for the whole 40 x 100 CV, measured).
CG stops when its preconditioned residual has dropped by ``eta = min(0.1,
max(lambda, 1e-3))``, ``lambda`` the preconditioned gradient norm (an inexact
Newton forcing term; the floor is what single precision resolves).

A group that the step would turn around (``u_g . (Theta_g + D_g) <= 0``)
becomes zero instead (the group analogue of an orthant projection). The step
is accepted by the Armijo rule on the true objective (with QUIC's bound
``delta``, :func:`descent_bound`).

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

Measured (40 subjects x 100 regions, one fold of 134 samples, alphas from
``alpha_max`` down to ``alpha_max / 100``, warm-started): 0.2 to 1.4 s a fit,
3 to 6 outer iterations, where QUIC steps alone took 5 s to minutes.
"""

from __future__ import annotations

import numpy as np

from ._group_sparse_kernels import (
    descent_bound,
    dual_gap,
    face_cg,
    group_norms,
    group_objective,
    line_search,
    quic_direction,
)

__all__ = ["solve_group", "face_newton_direction"]

# Most CG iterations of one face step (the forcing term usually stops it far earlier).
_CG_MAX = 60
# A group is preconditioned on its own when its penalty curvature exceeds its smooth one this much.
_STIFF = 1.0
# A QUIC step grows the support when more groups enter it than this fraction of its size.
_ENTER_FRACTION = 0.01
# A QUIC step has settled the support when it changed at most this fraction of it.
_SETTLED = 0.01
# Coordinate-descent sweeps of a QUIC step, bounded by the relative accuracy in the kernels.
_QUIC_SWEEPS = 3
# Face steps only where the support holds at least this fraction of the pairs.
_DENSE = 0.7


def _inverses(theta: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(theta)
    return 0.5 * (inv + np.swapaxes(inv, 1, 2))


def face_newton_direction(S: np.ndarray, w: np.ndarray, theta: np.ndarray, W: np.ndarray,
                          alpha: float, x: np.ndarray, work: tuple | None = None) -> int:
    """Inexact-Newton direction on the face of ``theta`` into ``x`` (see the module notes).

    The direction (K, p, p) is projected so that no group turns around;
    ``work`` is the scratch of :func:`face_cg` (allocated when None). Returns the
    number of CG iterations.
    """
    K, p, _ = theta.shape
    if work is None:
        work = (np.empty((7, K, p, p)), np.empty((4, K, p, p), np.float32))
    return int(face_cg(S, w, theta, W, float(alpha), _STIFF, _CG_MAX, x, work[0], work[1]))


def _n_entering(S: np.ndarray, w: np.ndarray, theta: np.ndarray, W: np.ndarray,
                alpha: float) -> int:
    """Zero entries (both triangles) whose group's gradient norm exceeds alpha (entering)."""
    grad = group_norms(S - W, w)
    zero = np.einsum("kij,kij->ij", theta, theta) == 0.0
    np.fill_diagonal(zero, False)
    return int(np.count_nonzero(grad[zero] > alpha))


def _support(theta: np.ndarray) -> np.ndarray:
    return np.einsum("kij,kij->ij", theta, theta) != 0.0


def _quic_step(S, w, W, theta, alpha, f, D, U, trial):
    """A QUIC step into ``trial``: ``(status, objective, whether the support settled)``."""
    quic_direction(S, w, W, theta, alpha, _QUIC_SWEEPS, D, U)
    delta = descent_bound(S, w, W, theta, D, alpha)
    if not delta < 0.0:
        return 2, f, False
    accepted, step, f_new = line_search(S, w, theta, D, alpha, f, delta, trial)
    if not accepted:
        return 3, f, False
    before, after = _support(theta), _support(trial)
    settled = step == 1.0 and np.count_nonzero(before != after) <= _SETTLED * np.count_nonzero(after)
    return 0, f_new, settled


def _face_step(S, w, W, theta, alpha, f, D, trial, work):
    """A face step into ``trial``: ``(accepted, objective, full step)``."""
    if _n_entering(S, w, theta, W, alpha) > _ENTER_FRACTION * np.count_nonzero(_support(theta)):
        return False, f, False
    face_newton_direction(S, w, theta, W, alpha, D, work)
    delta = descent_bound(S, w, W, theta, D, alpha)
    if not delta < 0.0:
        return False, f, False
    accepted, step, f_new = line_search(S, w, theta, D, alpha, f, delta, trial)
    return accepted, f_new, accepted and step == 1.0


def _solve_block(S: np.ndarray, w: np.ndarray, theta: np.ndarray, alpha: float,
                 target_gap: float, max_iter: int) -> tuple:
    """Solve one screened block from ``theta`` (overwritten with the solution).

    QUIC steps until the support settles (a full step that changes it little:
    face steps cannot remove groups quickly), then face steps while they take
    full steps. Returns ``(W, n_iter, gap, objective, status)``.
    """
    f = group_objective(S, w, theta, alpha)
    if not np.isfinite(f):
        theta[:] = 0.0
        for k in range(S.shape[0]):
            np.fill_diagonal(theta[k], 1.0 / np.diagonal(S[k]))
        f = group_objective(S, w, theta, alpha)
    W = _inverses(theta)
    gap = dual_gap(S, w, W, alpha, f)
    D, U, trial = np.zeros_like(S), np.zeros_like(S), np.empty_like(S)
    K, p, _ = S.shape
    # Scratch of the face steps (untouched, so not paged in, until the first one).
    work = (np.empty((7, K, p, p)), np.empty((4, K, p, p), np.float32))
    status, n_iter, face = 0, 0, True
    while gap > target_gap:
        if n_iter >= max_iter:
            status = 1
            break
        n_iter += 1
        done = False
        if face:
            done, f, face = _face_step(S, w, W, theta, alpha, f, D, trial, work)
        if not done:
            status, f, face = _quic_step(S, w, W, theta, alpha, f, D, U, trial)
            if status:
                break
        theta[:] = trial
        W = _inverses(theta)
        gap = dual_gap(S, w, W, alpha, f)
    if gap <= target_gap:
        status = 0
    return W, n_iter, gap, f, status


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
        block = np.ix_(range(K), idx, idx)
        S_b = np.ascontiguousarray(S[block])
        if idx.size == 1:
            d = S_b[:, 0, 0]
            theta[:, idx[0], idx[0]] = 1.0 / d
            W[:, idx[0], idx[0]] = d
            objective += float(np.sum(w * (np.log(d) + 1.0)))
            continue
        if theta_init is not None:
            th_b = np.ascontiguousarray(theta_init[block])
        else:
            th_b = np.zeros_like(S_b)
            for k in range(K):
                np.fill_diagonal(th_b[k], 1.0 / np.diagonal(S_b[k]))
        W_b, it, g, f, st = _solve_block(S_b, w, th_b, alpha, tol * idx.size, max_iter)
        n_iter, status = max(n_iter, it), max(status, st)
        gap += g
        objective += f
        theta[block] = th_b
        W[block] = W_b
    return theta, W, n_iter, gap, objective, status, n_comp
