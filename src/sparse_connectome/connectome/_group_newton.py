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
preconditioned conjugate gradients (compiled, :func:`_face_cg`). The
preconditioner is, per group:

* where the smooth part dominates, its exact inverse,
  ``R -> P_F(Theta_k R_k Theta_k / w_k)``: it removes the ``cond(W)**2`` factor;
* where the penalty's curvature ``c = alpha / ||Theta_g||`` exceeds the group's
  mean smooth curvature (*stiff* groups), the exact inverse of the group's own
  (K, K) block ``diag(a) + c (I - u u')``, ``a_k = w_k (W_k[i, i] W_k[j, j] +
  W_k[i, j]**2)`` (Sherman-Morrison, its denominator summed without
  cancellation: a group may be tiny);
* when at most a quarter of the face groups are not stiff, every face group
  gets its own block and the diagonal the smooth part's inverse restricted to
  it (``(Theta_k o Theta_k) r_k / w_k``): no product by ``Theta``. At the CV's
  alphas on 40 x 100, 8 to 10 % of the face groups are not stiff, and the
  block-diagonal preconditioner takes as many CG iterations as the mixed one
  (measured), each 1.2x cheaper; at small alpha (dense, none stiff) it would
  take ten times as many, so the mixed one stays there.

Every CG iteration costs two (p, p) products per subject (``W_k D_k W_k``; two
more, ``Theta_k R_k Theta_k``, with the mixed preconditioner), BLAS, and a few
fused passes over the stacks (whole matrices as flat vectors: contiguous loops
vectorise). The products and, when the gap target allows it (``tol`` above
1e-7 per region), the CG vectors are single precision: the passes are
memory-bound, and the direction is inexact anyway (the line search and the
gap are double precision); below that target, double precision, which tight
tolerances need.

CG stops when its ``r . z`` has dropped by ``eta**2``, ``eta = min(0.1,
max(lambda, 1e-3))``, ``lambda**2`` the first ``r . z`` (an inexact Newton
forcing term), or is below ``1e-3`` of the gap target (CG accuracy the
certificate cannot see; 35 % fewer CG iterations on the 40 x 100 CV, the same
alpha), but after one iteration at least.

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
KERNEL_SOURCES = {"_group_sparse_kernels.py": "feeca5e9d6807e30"}

__all__ = ["solve_group", "face_newton_direction"]

# Most CG iterations of one face step (the forcing term usually stops it far earlier).
_CG_MAX = 60
# A group is preconditioned on its own when its penalty curvature exceeds its smooth one this much.
_STIFF = 1.0
# The preconditioner is block-diagonal when at most this fraction of the face groups is not stiff.
_JACOBI = 0.25
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


# Rows of the per-group coefficients of the face CG (``coef[row, i, j]``, see _face_setup).
_ON_FACE, _CURV, _ENTERING, _SMOOTH, _STIFF_FACTOR, _INV_RADIAL = range(6)
# Rows of the setup's scratch.
_NT, _NG, _A_MEAN, _UT, _UG, _RG, _RU, _STIFF_MARK = range(8)


@njit(cache=True, nogil=True)
def _classify_groups(w, theta, S, W, alpha, stiff, jacobi, coef, g):
    """First pass of _face_setup: the groups' kinds from their norms (into ``coef`` and ``g``).

    Returns whether the preconditioner is block-diagonal (see _face_setup).
    """
    K, p, _ = theta.shape
    n = p * p
    th, S_, W_, c = theta.reshape(K, n), S.reshape(K, n), W.reshape(K, n), coef.reshape(-1, n)
    c[:] = 0.0
    g[:] = 0.0
    for k in range(K):
        for i in range(p):
            for j in range(p):
                t = i * p + j
                grad = w[k] * (S_[k, t] - W_[k, t])
                g[_NT, t] += th[k, t] * th[k, t]
                g[_NG, t] += grad * grad
                g[_A_MEAN, t] += w[k] * (W[k, i, i] * W[k, j, j] + W_[k, t] * W_[k, t]) / K
    for i in range(p):
        for j in range(p):
            t = i * p + j
            nt, ng = np.sqrt(g[_NT, t]), np.sqrt(g[_NG, t])
            if i == j:
                c[_ON_FACE, t], c[_SMOOTH, t], g[_RG, t] = 1.0, 1.0, -1.0
            elif nt > 0.0:
                c[_ON_FACE, t], c[_CURV, t] = 1.0, alpha / nt
                g[_UT, t], g[_RG, t], g[_RU, t] = 1.0 / nt, -1.0, -alpha
                if alpha / nt > stiff * g[_A_MEAN, t]:
                    g[_STIFF_MARK, t] = 1.0
                else:
                    c[_SMOOTH, t] = 1.0
            elif ng > alpha:
                # An entering group moves along its steepest direction only.
                c[_ENTERING, t] = 1.0
                g[_UG, t], g[_RU, t] = -1.0 / ng, ng - alpha
    n_face, n_smooth = 0.0, 0.0
    for t in range(n):
        n_face += g[_STIFF_MARK, t] + c[_SMOOTH, t]
        n_smooth += c[_SMOOTH, t]
    n_smooth -= p
    n_face -= p
    if not n_smooth <= jacobi * n_face:
        return False
    # Few smooth groups: every face group gets its own block; the diagonal keeps the smooth part's.
    for i in range(p):
        for j in range(p):
            t = i * p + j
            if i != j and c[_SMOOTH, t] > 0.0:
                c[_SMOOTH, t] = 0.0
                g[_STIFF_MARK, t] = 1.0
    return True


@njit(cache=True, nogil=True)
def _face_setup(S, w, theta, W, alpha, stiff, jacobi, U, inv_d, du, coef, r):
    """The face data and the initial residual ``r = P_F(-G)`` (whole matrices, symmetric).

    ``U`` holds ``u_g`` (face and entering groups); ``inv_d``, ``du`` and
    ``coef[_STIFF_FACTOR]`` the Sherman-Morrison inverse of a stiff group's own
    (K, K) block ``diag(a) + c (I - u u')``; ``coef[_INV_RADIAL]`` the inverse
    radial curvature of an entering group; ``coef[_SMOOTH]`` masks the groups
    preconditioned by the smooth part's inverse (the diagonal and the face
    groups that are not stiff).
    """
    K, p, _ = S.shape
    n = p * p
    g = np.empty((8, n))
    block_diagonal = _classify_groups(w, theta, S, W, alpha, stiff, jacobi, coef, g)
    th, S_, W_, c = theta.reshape(K, n), S.reshape(K, n), W.reshape(K, n), coef.reshape(-1, n)
    U_, r_, inv_d_, du_ = U.reshape(K, n), r.reshape(K, n), inv_d.reshape(K, n), du.reshape(K, n)
    # Accumulators of the second pass: the Sherman-Morrison denominators of the stiff groups, the
    # radial curvature of the entering ones.
    g[_NT] = 0.0
    g[_NG] = 0.0
    for k in range(K):
        for i in range(p):
            for j in range(p):
                t = i * p + j
                grad = w[k] * (S_[k, t] - W_[k, t])
                u = g[_UT, t] * th[k, t] + g[_UG, t] * grad
                a = w[k] * (W[k, i, i] * W[k, j, j] + W_[k, t] * W_[k, t])
                U_[k, t] = u
                r_[k, t] = g[_RG, t] * grad + g[_RU, t] * u
                inv_d_[k, t] = g[_STIFF_MARK, t] / (a + c[_CURV, t])
                du_[k, t] = inv_d_[k, t] * u
                # 1 - c u . (D^-1 u), without its cancellation (sum u_k^2 = 1): the group may be tiny.
                g[_NT, t] += u * du_[k, t] * a
                g[_NG, t] += a * u * u
    for t in range(n):
        if g[_STIFF_MARK, t] > 0.0:
            c[_STIFF_FACTOR, t] = c[_CURV, t] / g[_NT, t]
        if c[_ENTERING, t] > 0.0:
            c[_INV_RADIAL, t] = 1.0 / g[_NG, t]
    return block_diagonal


# The CG kernels below run over each subject's (p, p) matrix as one flat vector
# (both triangles): contiguous loops vectorise, which loops over one triangle did
# not (4x slower, measured).

@njit(cache=True, nogil=True, fastmath=True)
def _hess_finish(T, d, w, U, coef, out, s1, s2):
    """``out = P_F(w_k T_k + curv (d - u (u . d)))`` from ``T_k = W_k d_k W_k``; returns ``<d, out>``."""
    K, p, _ = d.shape
    n = p * p
    T, d, U, out = T.reshape(K, n), d.reshape(K, n), U.reshape(K, n), out.reshape(K, n)
    coef = coef.reshape(-1, n)
    s1[:] = 0.0
    s2[:] = 0.0
    for k in range(K):
        for t in range(n):
            s1[t] += U[k, t] * d[k, t]
            s2[t] += U[k, t] * w[k] * T[k, t]
    for t in range(n):
        # Face groups lose the radial part of the penalty term; entering groups keep only theirs.
        s1[t] = coef[_CURV, t] * s1[t] - coef[_ENTERING, t] * s2[t]
    total = 0.0
    for k in range(K):
        for t in range(n):
            v = coef[_ON_FACE, t] * w[k] * T[k, t] + coef[_CURV, t] * d[k, t] - U[k, t] * s1[t]
            out[k, t] = v
            total += d[k, t] * v
    return total


@njit(cache=True, nogil=True, fastmath=True)
def _precondition_finish(T, r, w, U, inv_d, du, coef, z, s1, s2):
    """``z`` = the preconditioner applied to ``r``; returns ``<r, z>``.

    ``T_k = Theta_k r_k Theta_k``, ``r`` restricted to the smooth groups, is given.
    """
    K, p, _ = r.shape
    n = p * p
    T, r, U, z = T.reshape(K, n), r.reshape(K, n), U.reshape(K, n), z.reshape(K, n)
    inv_d, du, coef = inv_d.reshape(K, n), du.reshape(K, n), coef.reshape(-1, n)
    s1[:] = 0.0
    s2[:] = 0.0
    for k in range(K):
        for t in range(n):
            s1[t] += du[k, t] * r[k, t]
            s2[t] += U[k, t] * r[k, t]
    for t in range(n):
        s1[t] *= coef[_STIFF_FACTOR, t]
        s2[t] *= coef[_INV_RADIAL, t]
    total = 0.0
    for k in range(K):
        inv_w = 1.0 / w[k]
        for t in range(n):
            v = coef[_SMOOTH, t] * inv_w * T[k, t] + inv_d[k, t] * r[k, t]
            v += du[k, t] * s1[t] + U[k, t] * s2[t]
            z[k, t] = v
            total += r[k, t] * v
    return total


@njit(cache=True, nogil=True, fastmath=True)
def _cg_step(x, r, d, hd, step, coef, r_smooth):
    """``x += step d``, ``r -= step hd``, and ``r_smooth`` = ``r`` on the smooth groups."""
    K, p, _ = x.shape
    n = p * p
    x, r, d, hd = x.reshape(K, n), r.reshape(K, n), d.reshape(K, n), hd.reshape(K, n)
    r_smooth = r_smooth.reshape(K, n)
    smooth = coef.reshape(-1, n)[_SMOOTH]
    for k in range(K):
        for t in range(n):
            x[k, t] += step * d[k, t]
            v = r[k, t] - step * hd[k, t]
            r[k, t] = v
            r_smooth[k, t] = smooth[t] * v


@njit(cache=True, nogil=True, fastmath=True)
def _cg_direction(z, d, beta):
    """``d = z + beta d``."""
    K, p, _ = z.shape
    n = p * p
    z, d = z.reshape(K, n), d.reshape(K, n)
    for k in range(K):
        for t in range(n):
            d[k, t] = z[k, t] + beta * d[k, t]


@njit(cache=True, nogil=True)
def _sandwich(A, B, tmp, out):
    """``out_k = A_k B_k A_k`` (BLAS)."""
    for k in range(A.shape[0]):
        np.dot(A[k], B[k], tmp)
        np.dot(tmp, A[k], out[k])


@njit(cache=True, nogil=True)
def _unturn(theta, U, coef, x, out):
    """``out`` = ``x`` symmetrised; a face or entering group that it would turn around becomes zero."""
    K, p, _ = x.shape
    for i in range(p):
        out[:, i, i] = x[:, i, i]
        for j in range(i + 1, p):
            s = 0.0
            for k in range(K):
                out[k, i, j] = 0.5 * (np.float64(x[k, i, j]) + x[k, j, i])
                s += U[k, i, j] * (theta[k, i, j] + out[k, i, j])
            moving = coef[_ON_FACE, i, j] + coef[_ENTERING, i, j] > 0.0
            for k in range(K):
                if moving and s <= 0.0:
                    out[k, i, j] = -theta[k, i, j]
                out[k, j, i] = out[k, i, j]


@njit(cache=True, nogil=True)
def _diagonal_smooth(theta, r, T):
    """``T_k[i, i] = (Theta_k diag(r_k) Theta_k)[i, i]``: the smooth part's inverse on the diagonal alone."""
    K, p, _ = theta.shape
    for k in range(K):
        for i in range(p):
            s = 0.0
            for m in range(p):
                s += theta[k, i, m] * theta[k, i, m] * r[k, m, m]
            T[k, i, i] = s


@njit(cache=True, nogil=True)
def _precondition(theta, theta_w, w, U, inv_d, du, coef, r, z, r_smooth, T, tmp, s1, s2, block_diagonal):
    """``z`` = the preconditioner applied to ``r``; returns ``<r, z>``.

    ``r_smooth`` holds ``r`` on the smooth groups, ``T`` receives its products.
    """
    if block_diagonal:
        _diagonal_smooth(theta, r, T)
    else:
        _sandwich(theta_w, r_smooth, tmp, T)
    return _precondition_finish(T, r, w, U, inv_d, du, coef, z, s1, s2)


@njit(cache=True, nogil=True)
def _face_cg(S, w, theta, W, alpha, stiff, jacobi, floor, cg_max, out, work):
    """The face Newton direction into ``out`` by preconditioned CG; returns the number of CG iterations.

    The system, its preconditioner and the forcing term are described in
    :mod:`._group_newton`; a group is preconditioned on its own when its
    penalty curvature exceeds ``stiff`` times its mean smooth curvature, every
    face group when at most ``jacobi`` of them are not. ``work`` (12, K, p, p) is
    scratch, reused from call to call (fresh arrays of that size cost page
    faults: measured 2 ms a (40, 100, 100) array); the CG vectors and the
    products by ``W_k`` and ``Theta_k`` are in its precision (single: the
    passes over them are memory-bound, half the bytes), the inner products
    and the per-group coefficients in double precision.
    """
    K, p, _ = S.shape
    U, inv_d, du, r, z, hd, d, x = work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7]
    W_w, theta_w, r_smooth, T = work[8], work[9], work[10], work[11]
    coef = np.empty((6, p, p))
    block_diagonal = _face_setup(S, w, theta, W, alpha, stiff, jacobi, U, inv_d, du, coef, r)
    _copy_into(W, W_w)
    # The preconditioner's products: on the diagonal alone when block-diagonal (in the
    # otherwise unused copy of Theta, zero off the diagonal), else Theta's.
    if block_diagonal:
        Tp = theta_w
        Tp[:] = 0.0
    else:
        _copy_into(theta, theta_w)
        Tp = T
    tmp = np.empty_like(T[0])
    s1, s2 = np.empty(p * p), np.empty(p * p)
    x[:] = 0.0
    d[:] = 0.0
    _cg_step(x, r, d, d, 0.0, coef, r_smooth)
    rz = _precondition(theta, theta_w, w, U, inv_d, du, coef, r, z, r_smooth, Tp, tmp, s1, s2, block_diagonal)
    # The first r . z is the squared Newton decrement of the smooth part: the forcing term.
    target = max(min(1e-2, max(rz, 1e-6)) * rz, floor)
    _cg_direction(z, d, 0.0)
    n_cg = 0
    # At least one iteration: a direction, however small the residual.
    while n_cg < cg_max and (rz > target or n_cg == 0):
        n_cg += 1
        _sandwich(W_w, d, tmp, T)
        curvature = _hess_finish(T, d, w, U, coef, hd, s1, s2)
        if not curvature > 0.0:
            break
        step = rz / curvature
        _cg_step(x, r, d, hd, step, coef, r_smooth)
        rz_new = _precondition(theta, theta_w, w, U, inv_d, du, coef, r, z, r_smooth, Tp, tmp, s1, s2,
                               block_diagonal)
        _cg_direction(z, d, rz_new / rz)
        rz = rz_new
    _unturn(theta, U, coef, x, out)
    return n_cg


@njit(cache=True, nogil=True)
def _copy_into(A, out):
    """``out[...] = A``, cast to the precision of ``out``."""
    n = A.size
    A, out = A.reshape(n), out.reshape(n)
    for t in range(n):
        out[t] = A[t]


def face_newton_direction(S: np.ndarray, w: np.ndarray, theta: np.ndarray, W: np.ndarray,
                          alpha: float, x: np.ndarray, work: tuple | None = None, floor: float = 0.0) -> int:
    """Inexact-Newton direction on the face of ``theta`` into ``x`` (see the module notes).

    The direction (K, p, p) is projected so that no group turns around;
    ``work`` is the scratch of :func:`_face_cg` (allocated when None). Returns the
    number of CG iterations.
    """
    K, p, _ = theta.shape
    if work is None:
        work = np.empty((12, K, p, p), np.float32)
    return int(_face_cg(S, w, theta, W, float(alpha), _STIFF, _JACOBI, floor, _CG_MAX, x, work))


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
        self.gap = np.empty((p, p))
        # The face steps' (and the QUIC steps' products) and the QUIC steps'.
        self.face = np.empty((12, K, p, p), np.float32 if single else np.float64)
        self.quic = np.empty((6, K, p, p))


def _quic_step(S, w, theta, alpha, f, work):
    """A QUIC step into ``work.trial``: ``(status, objective, whether the support settled)``.

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
        return 2, f, False
    accepted, step, f_new = line_search(S, w, theta, work.D, alpha, f, delta, work.trial, work.L)
    if not accepted:
        return 3, f, False
    before, after = _support(theta), _support(work.trial)
    settled = step == 1.0 and np.count_nonzero(before != after) <= _SETTLED * np.count_nonzero(after)
    return 0, f_new, settled


def _face_step(S, w, theta, alpha, f, work, target_gap):
    """A face step into ``work.trial``: ``(accepted, objective, full step)``."""
    n_enter, n_support = _entering_and_support(S, w, theta, work.W, alpha)
    if n_enter > _ENTER_FRACTION * n_support:
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
    face steps cannot remove groups quickly), then face steps while they take
    full steps. Returns ``(W, n_iter, gap, objective, status)``.
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
    gap = dual_gap(S, w, work.W, alpha, f, work.gap)
    status, n_iter, face = 0, 0, True
    while gap > target_gap:
        if n_iter >= max_iter:
            status = 1
            break
        n_iter += 1
        done = False
        if face:
            done, f, face = _face_step(S, w, theta, alpha, f, work, target_gap)
        if not done:
            status, f, face = _quic_step(S, w, theta, alpha, f, work)
            if status:
                break
        theta[:] = work.trial
        inverses_from_factors(theta, work.L, work.W)
        gap = dual_gap(S, w, work.W, alpha, f, work.gap)
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
