"""The group solver's face step: an inexact Newton direction on the support's face (compiled CG).

Arrays are stacked subject-first (``S[k]``, ``theta[k]`` of shape (p, p)). Why
the solver takes face steps, and how it alternates them with QUIC steps, is in
:mod:`._group_newton`; the problem and its dual are in :mod:`._group_sparse`.

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
vectorise). The products and the CG vectors are in the precision of the
scratch the solver passes: single when the gap target allows it (``tol`` above
1e-7 per region, see :mod:`._group_newton`), as the passes are memory-bound
and the direction is inexact anyway (the line search and the gap are double
precision); below that target, double precision, which tight tolerances need.

CG stops when its ``r . z`` has dropped by ``eta**2``, ``eta = min(0.1,
max(lambda, 1e-3))``, ``lambda**2`` the first ``r . z`` (an inexact Newton
forcing term), or is below ``floor`` (the solver passes ``1e-3`` of the gap
target: CG accuracy the certificate cannot see; 35 % fewer CG iterations on
the 40 x 100 CV, the same alpha), but after one iteration at least.

A group that the step would turn around (``u_g . (Theta_g + D_g) <= 0``)
becomes zero instead (the group analogue of an orthant projection).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["face_newton_direction"]

# Most CG iterations of one face step (the forcing term usually stops it far earlier).
_CG_MAX = 60
# A group is preconditioned on its own when its penalty curvature exceeds its smooth one this much.
_STIFF = 1.0
# The preconditioner is block-diagonal when at most this fraction of the face groups is not stiff.
_JACOBI = 0.25


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
    :mod:`._group_face_newton`; a group is preconditioned on its own when its
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
