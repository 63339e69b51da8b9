"""Compiled kernels of the group sparse inverse covariance (group QUIC, exact screening).

Arrays are stacked subject-first here, ``S[k]`` being subject ``k``'s (p, p)
empirical covariance (C-contiguous), ``w[k] > 0`` its weight (``sum w = 1``).
The problem (see :mod:`._group_sparse` for its derivation, its dual and the
screening rule)::

    minimise  F(Theta) = sum_k w_k [tr(S_k Theta_k) - log det Theta_k]
                         + alpha * sum_{i != j} ||(Theta_1[i, j], ..., Theta_K[i, j])||_2

Solver: a proximal Newton method in the manner of QUIC (Hsieh et al., JMLR
2014), generalised to the group penalty. At each outer iteration the smooth
part is replaced by its second-order model around ``Theta`` (``W_k = inv(Theta_k)``)::

    sum_k w_k [tr((S_k - W_k) D_k) + tr(W_k D_k W_k D_k) / 2]

which couples the K subjects only through the penalty. Coordinate descent on
the direction ``D`` runs over the *free set* (groups with a non-zero in
``Theta`` or whose gradient group norm exceeds alpha, plus the diagonal). One
coordinate is a group ``(i, j)``: its K entries move together, and since the
Hessian of the model restricted to the group is diagonal across subjects
(``a_k = w_k (W_k[i,j]^2 + W_k[i,i] W_k[j,j])``) the update is the proximal
operator of a *diagonally weighted* l2 norm::

    x = argmin_x  sum_k a_k / 2 (x_k - z_k)^2 + alpha ||x||_2

    x = 0                               if ||a * z|| <= alpha
    x_k = g a_k z_k / (1 + g a_k)       else, g > 0 the root of
          sum_k (a_k z_k)^2 / (1 + g a_k)^2 = alpha^2

(from the optimality condition ``a_k (x_k - z_k) + alpha x_k / ||x|| = 0`` with
``g = ||x|| / alpha``). The scalar root is found by a safeguarded Newton
iteration on ``1 / sqrt(sum ...) - 1 / alpha`` (linear in ``g`` when the
``a_k`` are equal, so usually 2 to 4 steps) inside the bracket
``[(||a z|| / alpha - 1) / max a, (||a z|| / alpha - 1) / min a]``.
``U_k = D_k W_k`` is kept up to date, so the quadratic term costs O(p) per
subject and coordinate. An Armijo line search (every ``Theta_k + t D_k`` must
be positive definite: Cholesky) gives the step; the outer loop stops on the
duality gap (computed at a feasible dual point, see :func:`dual_gap`).

The coordinate descent and the conjugate gradients of the face Newton step
(:func:`face_cg`, described in :mod:`._group_newton`) are compiled (numba,
``nogil=True``, cached on disk): the objective, the gap and the line search are
a few batched LAPACK factorisations and elementwise operations, as fast in
NumPy, and keeping them out of numba keeps the first compilation short.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["group_objective", "group_norms", "dual_gap", "quic_direction", "descent_bound",
           "line_search", "face_cg", "STATUS_TEXT"]

# Armijo sufficient decrease and halvings (QUIC's choice).
_SIGMA = 1e-3
_MAX_HALVINGS = 40
# The coordinate descent stops once a sweep moves D by less than this fraction of it.
_INNER_RTOL = 1e-2

STATUS_TEXT = {
    0: "converged",
    1: "reached max_iter",
    2: "stopped at the rounding floor (no further descent possible)",
    3: "line search failed",
}


def _logdets(A):
    """``log det`` of each matrix of a stack, or None when one is not positive definite."""
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return None
    return 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)


def group_norms(A, w):
    """``N[i, j] = ||(w_k A_k[i, j])_k||_2`` off the diagonal (0 on it), ``A`` of shape (K, p, p)."""
    B = A * np.asarray(w)[:, None, None]
    N = np.sqrt(np.einsum("kij,kij->ij", B, B))
    np.fill_diagonal(N, 0.0)
    return N


def _penalty(theta, alpha):
    """``alpha * sum_{i != j} ||Theta[:, i, j]||`` (both triangles, as nilearn counts)."""
    N = np.sqrt(np.einsum("kij,kij->ij", theta, theta))
    return alpha * float(N.sum() - np.trace(N))


def group_objective(S, w, theta, alpha):
    """The objective ``F(Theta)`` (``inf`` when a ``Theta_k`` is not positive definite)."""
    logdets = _logdets(theta)
    if logdets is None:
        return np.inf
    traces = np.einsum("kij,kij->k", S, theta)
    return float(np.dot(w, traces - logdets)) + _penalty(theta, alpha)


def dual_gap(S, w, W, alpha, f):
    """``F(Theta)`` minus the dual objective at the feasible projection of ``W``.

    The dual point is ``Z_k = w_k (W_k - S_k)`` with its diagonal set to zero and
    every off-diagonal group scaled into the ball of radius alpha; its dual
    objective is ``sum_k w_k (log det (S_k + Z_k / w_k) + p)``. Returns ``inf``
    when one of those matrices is not positive definite (far from the optimum).
    """
    p = S.shape[1]
    diff = W - S
    norms = group_norms(diff, w)
    scale = np.ones_like(norms)
    outside = norms > alpha
    scale[outside] = alpha / norms[outside]
    np.fill_diagonal(scale, 0.0)
    logdets = _logdets(S + scale * diff)
    if logdets is None:
        return np.inf
    return max(f - float(np.dot(w, logdets + p)), 0.0)


@njit(cache=True, nogil=True)
def _group_prox(a, v, alpha, x):
    """``x = argmin sum_k a_k/2 (x_k - v_k/a_k)^2 + alpha ||x||`` (see the module notes)."""
    K = a.shape[0]
    nv2 = 0.0
    a_min = np.inf
    a_max = 0.0
    for k in range(K):
        nv2 += v[k] * v[k]
        a_min = min(a_min, a[k])
        a_max = max(a_max, a[k])
    nv = np.sqrt(nv2)
    if nv <= alpha:
        x[:] = 0.0
        return
    lo = (nv / alpha - 1.0) / a_max
    hi = (nv / alpha - 1.0) / a_min
    g = lo
    for _ in range(60):
        F = 0.0
        dF = 0.0
        for k in range(K):
            t = 1.0 / (1.0 + g * a[k])
            q = v[k] * v[k] * t * t
            F += q
            dF += a[k] * q * t
        root = np.sqrt(F)
        phi = 1.0 / root - 1.0 / alpha
        if phi < 0.0:
            lo = g
        else:
            hi = g
        # phi' = (sum a_k v_k^2 t_k^3) / F^(3/2) > 0
        g_new = g - phi * F * root / dF
        if not (lo <= g_new <= hi):
            g_new = 0.5 * (lo + hi)
        if abs(g_new - g) <= 1e-13 * g_new:
            g = g_new
            break
        g = g_new
    for k in range(K):
        x[k] = g * v[k] / (1.0 + g * a[k])


@njit(cache=True, nogil=True)
def _free_set(S, w, theta, W, alpha, free_i, free_j):
    """Groups of QUIC's free set (upper triangle, by column, diagonal included)."""
    K, p, _ = S.shape
    n_free = 0
    alpha2 = alpha * alpha
    for j in range(p):
        for i in range(j + 1):
            keep = i == j
            if not keep:
                s = 0.0
                for k in range(K):
                    if theta[k, i, j] != 0.0:
                        keep = True
                    v = w[k] * (S[k, i, j] - W[k, i, j])
                    s += v * v
                keep = keep or s > alpha2
            if keep:
                free_i[n_free] = i
                free_j[n_free] = j
                n_free += 1
    return n_free


@njit(cache=True, nogil=True)
def _move(D, U, W, ucol, k, i, j, mu):
    """``D_k += mu (e_i e_j' + e_j e_i')`` (or ``mu e_i e_i'``), keeping ``U_k = D_k W_k``."""
    p = W.shape[1]
    if i == j:
        D[k, i, i] += mu
        for m in range(p):
            U[k, i, m] += mu * W[k, i, m]
        ucol[k, i] += mu * W[k, i, i]
        return
    D[k, i, j] += mu
    D[k, j, i] += mu
    for m in range(p):
        U[k, i, m] += mu * W[k, j, m]
        U[k, j, m] += mu * W[k, i, m]
    ucol[k, i] += mu * W[k, j, j]
    ucol[k, j] += mu * W[k, i, j]


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _wdw(W, ucol, k, i):
    """``(W_k D_k W_k)[i, j] = W_k[i, :] . U_k[:, j]`` from the contiguous column copy."""
    s = 0.0
    for m in range(W.shape[1]):
        s += W[k, i, m] * ucol[k, m]
    return s


@njit(cache=True, nogil=True)
def _sweep(S, w, W, theta, alpha, free_i, free_j, n_free, D, U, ucol, a, v, x):
    """One coordinate-descent sweep over the free groups; returns ``sum |change|``."""
    K = S.shape[0]
    p = S.shape[1]
    change = 0.0
    current = -1
    for t in range(n_free):
        i = free_i[t]
        j = free_j[t]
        if j != current:
            current = j
            for k in range(K):
                for m in range(p):
                    ucol[k, m] = U[k, m, j]
        if i == j:
            for k in range(K):
                mu = -(S[k, i, i] - W[k, i, i] + _wdw(W, ucol, k, i)) / (W[k, i, i] * W[k, i, i])
                if mu != 0.0:
                    change += abs(mu)
                    _move(D, U, W, ucol, k, i, i, mu)
            continue
        for k in range(K):
            a[k] = w[k] * (W[k, i, j] * W[k, i, j] + W[k, i, i] * W[k, j, j])
            b = w[k] * (S[k, i, j] - W[k, i, j] + _wdw(W, ucol, k, i))
            v[k] = a[k] * (theta[k, i, j] + D[k, i, j]) - b
        _group_prox(a, v, alpha, x)
        for k in range(K):
            mu = x[k] - theta[k, i, j] - D[k, i, j]
            if mu != 0.0:
                change += abs(mu)
                _move(D, U, W, ucol, k, i, j, mu)
    return change


@njit(cache=True, nogil=True)
def _newton_direction(S, w, W, theta, alpha, free_i, free_j, n_free, max_sweeps, rtol, D, U):
    """Coordinate descent on the second-order model over the free set (into ``D``)."""
    K, p, _ = S.shape
    ucol = np.empty((K, p))
    a = np.empty(K)
    v = np.empty(K)
    x = np.empty(K)
    n_sweeps = 0
    for _ in range(max_sweeps):
        n_sweeps += 1
        change = _sweep(S, w, W, theta, alpha, free_i, free_j, n_free, D, U, ucol, a, v, x)
        size = 0.0
        for t in range(n_free):
            for k in range(K):
                size += abs(D[k, free_i[t], free_j[t]])
        if change <= rtol * size:
            break
    return n_sweeps


def descent_bound(S, w, W, theta, D, alpha):
    """QUIC's Armijo ``delta``: gradient . D plus the change of the penalty at a full step."""
    smooth = float(np.dot(w, np.einsum("kij,kij->k", S - W, D)))
    return smooth + _penalty(theta + D, alpha) - _penalty(theta, alpha)


def line_search(S, w, theta, D, alpha, f, delta, trial):
    """Armijo line search along ``D`` (halving); ``trial`` receives the accepted point."""
    step = 1.0
    f_new = f
    for _ in range(_MAX_HALVINGS):
        np.add(theta, step * D, out=trial)
        f_new = group_objective(S, w, trial, alpha)
        if f_new <= f + _SIGMA * step * delta:
            return True, step, f_new
        step *= 0.5
    return False, step, f_new


@njit(cache=True, nogil=True)
def quic_direction(S, w, W, theta, alpha, max_sweeps, D, U):
    """QUIC's direction: coordinate descent on the second-order model over the free set.

    ``D`` and ``U`` are overwritten (``U_k = D_k W_k``). Returns the number of
    free groups (diagonal included) that are zero in ``theta`` but have a
    gradient group norm above alpha (groups entering the support).
    """
    K, p, _ = S.shape
    n_max = p * (p + 1) // 2
    free_i = np.empty(n_max, np.int64)
    free_j = np.empty(n_max, np.int64)
    n_free = _free_set(S, w, theta, W, alpha, free_i, free_j)
    D[:] = 0.0
    U[:] = 0.0
    _newton_direction(S, w, W, theta, alpha, free_i, free_j, n_free, max_sweeps, _INNER_RTOL, D, U)
    return n_free


# Rows of the per-group coefficients of the face CG (``coef[row, i, j]``, see _face_setup).
_ON_FACE, _CURV, _ENTERING, _SMOOTH, _STIFF_FACTOR, _INV_RADIAL = range(6)
# Rows of the setup's scratch.
_NT, _NG, _A_MEAN, _UT, _UG, _RG, _RU, _STIFF_MARK = range(8)


@njit(cache=True, nogil=True)
def _classify_groups(w, theta, S, W, alpha, stiff, coef, g):
    """First pass of _face_setup: the groups' kinds from their norms (into ``coef`` and ``g``)."""
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


@njit(cache=True, nogil=True)
def _face_setup(S, w, theta, W, alpha, stiff, U, inv_d, du, coef, r):
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
    _classify_groups(w, theta, S, W, alpha, stiff, coef, g)
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
def _cg_step(x, r, d, hd, step, coef, r32):
    """``x += step d``, ``r -= step hd``, and ``r32`` = ``r`` on the smooth groups, in single precision."""
    K, p, _ = x.shape
    n = p * p
    x, r, d, hd, r32 = x.reshape(K, n), r.reshape(K, n), d.reshape(K, n), hd.reshape(K, n), r32.reshape(K, n)
    smooth = coef.reshape(-1, n)[_SMOOTH]
    for k in range(K):
        for t in range(n):
            x[k, t] += step * d[k, t]
            v = r[k, t] - step * hd[k, t]
            r[k, t] = v
            r32[k, t] = np.float32(smooth[t] * v)


@njit(cache=True, nogil=True, fastmath=True)
def _cg_direction(z, d, beta, d32):
    """``d = z + beta d`` and its single-precision copy ``d32``."""
    K, p, _ = z.shape
    n = p * p
    z, d, d32 = z.reshape(K, n), d.reshape(K, n), d32.reshape(K, n)
    for k in range(K):
        for t in range(n):
            v = z[k, t] + beta * d[k, t]
            d[k, t] = v
            d32[k, t] = np.float32(v)


@njit(cache=True, nogil=True)
def _sandwich(A32, B32, tmp, out):
    """``out_k = A_k B_k A_k`` in single precision (BLAS)."""
    for k in range(A32.shape[0]):
        np.dot(A32[k], B32[k], tmp)
        np.dot(tmp, A32[k], out[k])


@njit(cache=True, nogil=True)
def _unturn(theta, U, coef, x):
    """Symmetrise ``x``; a face or entering group that ``x`` would turn around becomes zero."""
    K, p, _ = x.shape
    for i in range(p):
        for j in range(i + 1, p):
            s = 0.0
            for k in range(K):
                x[k, i, j] = 0.5 * (x[k, i, j] + x[k, j, i])
                s += U[k, i, j] * (theta[k, i, j] + x[k, i, j])
            moving = coef[_ON_FACE, i, j] + coef[_ENTERING, i, j] > 0.0
            for k in range(K):
                if moving and s <= 0.0:
                    x[k, i, j] = -theta[k, i, j]
                x[k, j, i] = x[k, i, j]


@njit(cache=True, nogil=True)
def face_cg(S, w, theta, W, alpha, stiff, cg_max, x, work, work32):
    """The face Newton direction into ``x`` by preconditioned CG; returns the number of CG iterations.

    The system, its preconditioner and the forcing term are described in
    :mod:`._group_newton`; a group is preconditioned on its own when its
    penalty curvature exceeds ``stiff`` times its mean smooth curvature. The
    products by ``W_k`` and ``Theta_k`` run in single precision, the rest in
    double precision. ``work`` (7, K, p, p) and ``work32`` (4, K, p, p, single
    precision) are scratch, reused from call to call: fresh arrays of that size
    cost page faults (measured 2 ms a (40, 100, 100) array).
    """
    K, p, _ = S.shape
    U, inv_d, du, r, z, hd, d = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    W32, theta32, in32, T = work32[0], work32[1], work32[2], work32[3]
    coef = np.empty((6, p, p))
    _face_setup(S, w, theta, W, alpha, stiff, U, inv_d, du, coef, r)
    _to_single(W, W32)
    _to_single(theta, theta32)
    tmp = np.empty((p, p), np.float32)
    s1, s2 = np.empty(p * p), np.empty(p * p)
    x[:] = 0.0
    d[:] = 0.0
    _cg_step(x, r, d, d, 0.0, coef, in32)
    _sandwich(theta32, in32, tmp, T)
    rz = _precondition_finish(T, r, w, U, inv_d, du, coef, z, s1, s2)
    # The first r . z is the squared Newton decrement of the smooth part: the forcing term.
    target = min(1e-2, max(rz, 1e-6)) * rz
    _cg_direction(z, d, 0.0, in32)
    n_cg = 0
    while n_cg < cg_max and rz > target:
        n_cg += 1
        _sandwich(W32, in32, tmp, T)
        curvature = _hess_finish(T, d, w, U, coef, hd, s1, s2)
        if not curvature > 0.0:
            break
        step = rz / curvature
        _cg_step(x, r, d, hd, step, coef, in32)
        _sandwich(theta32, in32, tmp, T)
        rz_new = _precondition_finish(T, r, w, U, inv_d, du, coef, z, s1, s2)
        _cg_direction(z, d, rz_new / rz, in32)
        rz = rz_new
    _unturn(theta, U, coef, x)
    return n_cg


@njit(cache=True, nogil=True)
def _to_single(A, out):
    n = A.size
    A, out = A.reshape(n), out.reshape(n)
    for t in range(n):
        out[t] = np.float32(A[t])
