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
duality gap (computed at a feasible dual point, see :func:`_dual_gap`).

All kernels release the GIL (``nogil=True``) and are cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["solve_group", "group_objective", "group_norms", "STATUS_TEXT"]

# Armijo sufficient decrease and halvings (QUIC's choice).
_SIGMA = 1e-3
_MAX_HALVINGS = 40
# The coordinate descent stops once a sweep moves D by less than this fraction of it.
_INNER_RTOL = 1e-2
# Sweeps are bounded by the relative accuracy above, not by a small budget: with the
# ill-conditioned Hessians of small alphas a rough direction costs many more Newton steps.
_MAX_SWEEPS = 100
# The gap's factorisations are skipped while the Newton decrement exceeds this many targets.
_GAP_SKIP = 10.0

STATUS_TEXT = {
    0: "converged",
    1: "reached max_iter",
    2: "stopped at the rounding floor (no further descent possible)",
    3: "line search failed",
}


@njit(cache=True, nogil=True)
def _cholesky(a):
    """Lower Cholesky factor, or an empty array when ``a`` is not positive definite."""
    try:
        return np.linalg.cholesky(a)
    except Exception:  # numba's LinAlgError cannot be matched by type in nopython mode
        return np.empty((0, 0))


@njit(cache=True, nogil=True)
def _logdet(L):
    s = 0.0
    for i in range(L.shape[0]):
        s += np.log(L[i, i])
    return 2.0 * s


@njit(cache=True, nogil=True)
def group_norms(A, w):
    """``N[i, j] = ||(w_k A_k[i, j])_k||_2`` for a stack ``A`` of shape (K, p, p)."""
    K, p, _ = A.shape
    N = np.zeros((p, p))
    for i in range(p):
        for j in range(i + 1, p):
            s = 0.0
            for k in range(K):
                v = w[k] * A[k, i, j]
                s += v * v
            N[i, j] = np.sqrt(s)
            N[j, i] = N[i, j]
    return N


@njit(cache=True, nogil=True)
def _penalty(theta, alpha):
    """``alpha * sum_{i != j} ||Theta[:, i, j]||`` (both triangles, as nilearn counts)."""
    K, p, _ = theta.shape
    total = 0.0
    for i in range(p):
        for j in range(i + 1, p):
            s = 0.0
            for k in range(K):
                s += theta[k, i, j] * theta[k, i, j]
            total += np.sqrt(s)
    return 2.0 * alpha * total


@njit(cache=True, nogil=True)
def group_objective(S, w, theta, alpha):
    """The objective ``F(Theta)`` (``inf`` when a ``Theta_k`` is not positive definite)."""
    K, p, _ = S.shape
    f = 0.0
    for k in range(K):
        L = _cholesky(theta[k])
        if L.shape[0] != p:
            return np.inf
        trace = 0.0
        for i in range(p):
            for j in range(p):
                trace += S[k, i, j] * theta[k, i, j]
        f += w[k] * (trace - _logdet(L))
    return f + _penalty(theta, alpha)


@njit(cache=True, nogil=True)
def _dual_gap(S, w, W, alpha, f, work):
    """``F(Theta)`` minus the dual objective at the feasible projection of ``W``.

    The dual point is ``Z_k = w_k (W_k - S_k)`` with its diagonal set to zero and
    every off-diagonal group scaled into the ball of radius alpha; its dual
    objective is ``sum_k w_k (log det (S_k + Z_k / w_k) + p)``. Returns ``inf``
    when one of those matrices is not positive definite (far from the optimum).
    """
    K, p, _ = S.shape
    dual = 0.0
    for i in range(p):
        for j in range(i + 1, p):
            s = 0.0
            for k in range(K):
                v = w[k] * (W[k, i, j] - S[k, i, j])
                s += v * v
            r = np.sqrt(s)
            scale = 1.0 if r <= alpha else alpha / r
            for k in range(K):
                work[k, i, j] = S[k, i, j] + scale * (W[k, i, j] - S[k, i, j])
                work[k, j, i] = work[k, i, j]
    for k in range(K):
        for i in range(p):
            work[k, i, i] = S[k, i, i]
        L = _cholesky(work[k])
        if L.shape[0] != p:
            return np.inf
        dual += w[k] * (_logdet(L) + p)
    gap = f - dual
    return gap if gap > 0.0 else 0.0


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


@njit(cache=True, nogil=True)
def _descent_bound(S, w, W, theta, D, alpha):
    """QUIC's Armijo ``delta``: gradient . D plus the change of the penalty at a full step."""
    K, p, _ = S.shape
    delta = 0.0
    for k in range(K):
        s = 0.0
        for i in range(p):
            for j in range(p):
                s += (S[k, i, j] - W[k, i, j]) * D[k, i, j]
        delta += w[k] * s
    return delta + _penalty(theta + D, alpha) - _penalty(theta, alpha)


@njit(cache=True, nogil=True)
def _line_search(S, w, theta, D, alpha, f, delta, trial):
    """Armijo line search along ``D`` (halving); ``trial`` receives the accepted point."""
    step = 1.0
    f_new = f
    for _ in range(_MAX_HALVINGS):
        trial[:] = theta + step * D
        f_new = group_objective(S, w, trial, alpha)
        if f_new <= f + _SIGMA * step * delta:
            return True, step, f_new
        step *= 0.5
    return False, step, f_new


@njit(cache=True, nogil=True)
def _inverses(theta, W):
    for k in range(theta.shape[0]):
        inv = np.linalg.inv(theta[k])
        W[k] = 0.5 * (inv + inv.T)


@njit(cache=True, nogil=True)
def _solve_block(S, w, theta, W, alpha, target_gap, max_iter):
    """Group QUIC on one connected block; ``theta`` is the start on entry, the solution on exit.

    Returns ``(n_iter, gap, objective, status)``.
    """
    K, p, _ = S.shape
    work = np.empty((K, p, p))
    f = group_objective(S, w, theta, alpha)
    if not np.isfinite(f):
        theta[:] = 0.0
        for k in range(K):
            for i in range(p):
                theta[k, i, i] = 1.0 / S[k, i, i]
        f = group_objective(S, w, theta, alpha)
    _inverses(theta, W)
    gap = _dual_gap(S, w, W, alpha, f, work)
    n_max = p * (p + 1) // 2
    free_i = np.empty(n_max, np.int64)
    free_j = np.empty(n_max, np.int64)
    D = np.zeros((K, p, p))
    U = np.zeros((K, p, p))
    trial = np.empty((K, p, p))
    status = 0
    n_iter = 0
    while gap > target_gap:
        if n_iter >= max_iter:
            status = 1
            break
        n_iter += 1
        n_free = _free_set(S, w, theta, W, alpha, free_i, free_j)
        D[:] = 0.0
        U[:] = 0.0
        _newton_direction(S, w, W, theta, alpha, free_i, free_j, n_free,
                          _MAX_SWEEPS, _INNER_RTOL, D, U)
        delta = _descent_bound(S, w, W, theta, D, alpha)
        if not delta < 0.0:
            status = 2
            break
        accepted, step, f_new = _line_search(S, w, theta, D, alpha, f, delta, trial)
        if not accepted:
            status = 3
            break
        theta[:] = trial
        f = f_new
        _inverses(theta, W)
        # Far from the optimum (full step, large Newton decrement) the gap cannot be
        # near the target: skip its K factorisations; it is always computed before
        # stopping, so the stopping rule and the reported gap are unchanged.
        if n_iter < max_iter and step == 1.0 and -delta > _GAP_SKIP * target_gap:
            gap = np.inf
            continue
        gap = _dual_gap(S, w, W, alpha, f, work)
    if gap == np.inf and n_iter > 0:
        gap = _dual_gap(S, w, W, alpha, f, work)
    if gap <= target_gap:
        status = 0
    return n_iter, gap, f, status


@njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _components(S, w, alpha):
    """Labels of the connected components of the graph ``||(w_k S_k[i, j])_k|| > alpha``."""
    p = S.shape[1]
    N = group_norms(S, w)
    parent = np.arange(p)
    for i in range(p):
        for j in range(i + 1, p):
            if N[i, j] > alpha:
                ri = _find(parent, i)
                rj = _find(parent, j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    labels = np.empty(p, np.int64)
    for i in range(p):
        labels[i] = _find(parent, i)
    return labels


@njit(cache=True, nogil=True)
def _take(A, idx):
    K = A.shape[0]
    q = idx.shape[0]
    out = np.empty((K, q, q))
    for k in range(K):
        for a in range(q):
            for b in range(q):
                out[k, a, b] = A[k, idx[a], idx[b]]
    return out


@njit(cache=True, nogil=True)
def _put(A, idx, block):
    for k in range(A.shape[0]):
        for a in range(idx.shape[0]):
            for b in range(idx.shape[0]):
                A[k, idx[a], idx[b]] = block[k, a, b]


@njit(cache=True, nogil=True)
def solve_group(S, w, alpha, theta_init, use_init, tol, max_iter, screen):
    """Solve the group problem block by block.

    Parameters
    ----------
    S : (K, p, p) float64, each ``S[k]`` symmetric PSD with a positive diagonal.
    w : (K,) positive weights summing to 1.
    alpha : float > 0.
    theta_init : (K, p, p) warm start (read only where ``use_init``).
    use_init : bool.
    tol : float; a block of q regions stops when its duality gap is <= tol * q.
    max_iter : int, Newton iterations per block.
    screen : bool; when False the whole problem is one block.

    Returns
    -------
    theta, W (K, p, p), n_iter (max over blocks), gap (sum over blocks),
    objective, status (worst over blocks), n_components.
    """
    K, p, _ = S.shape
    theta = np.zeros((K, p, p))
    W = np.zeros((K, p, p))
    labels = _components(S, w, alpha) if screen else np.zeros(p, np.int64)
    order = np.argsort(labels, kind="mergesort")
    n_iter, status, n_components = 0, 0, 0
    gap, objective = 0.0, 0.0
    start = 0
    while start < p:
        stop = start + 1
        while stop < p and labels[order[stop]] == labels[order[start]]:
            stop += 1
        n_components += 1
        idx = np.sort(order[start:stop])
        if stop - start == 1:
            i = idx[0]
            for k in range(K):
                theta[k, i, i] = 1.0 / S[k, i, i]
                W[k, i, i] = S[k, i, i]
                objective += w[k] * (np.log(S[k, i, i]) + 1.0)
        else:
            S_b = _take(S, idx)
            if use_init:
                th_b = _take(theta_init, idx)
            else:
                th_b = np.zeros_like(S_b)
                for k in range(K):
                    for a in range(idx.shape[0]):
                        th_b[k, a, a] = 1.0 / S_b[k, a, a]
            W_b = np.empty_like(S_b)
            it, g, f, st = _solve_block(S_b, w, th_b, W_b, alpha, tol * (stop - start), max_iter)
            n_iter = max(n_iter, it)
            status = max(status, st)
            gap += g
            objective += f
            _put(theta, idx, th_b)
            _put(W, idx, W_b)
        start = stop
    return theta, W, n_iter, gap, objective, status, n_components
