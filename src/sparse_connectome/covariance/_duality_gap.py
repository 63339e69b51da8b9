"""Certified duality gaps of the graphical lasso, mostly without a factorisation.

The dual of ``min -log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|`` is::

    maximise  log det V + p   over  V = S + U,  U_ii = 0,  |U_ij| <= alpha (i != j)

and from ``W = inv(Theta)`` a feasible ``V`` is obtained by clipping ``W - S`` into
the box. ``factorised_gap`` evaluates ``f - log det V - p`` with a Cholesky
factorisation of ``V``: as costly as a Newton iteration's own factorisation,
and the difference of two numbers of size ``|f|`` (its rounding, about
``1e-13 |f|``, can exceed a tight target). ``gap_bounds`` brackets the same gap
in O(p**2) from the gap's exact split into a complementary-slackness sum and a
second-order term (see its docstring); ``certified_gap`` factorises only when
the bracket straddles the target, so the stopping decision is the factorised
gap's own.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._lapack import cholesky_or_empty

# numba caches a kernel by its own file's contents only: the digest of the njit module
# compiled in with it makes this file change with it (see _quic.py; checked by
# tests/test_architecture.py).
KERNEL_SOURCES = {"_lapack.py": "69a3ef66576b995e"}

__all__ = ["factorised_gap", "gap_bounds", "certified_gap", "gap_workspace", "logdet_from_cholesky"]


@njit(cache=True, nogil=True)
def logdet_from_cholesky(L):
    """``log det (L L')`` from a lower Cholesky factor."""
    s = 0.0
    for i in range(L.shape[0]):
        s += np.log(L[i, i])
    return 2.0 * s


@njit(cache=True, nogil=True)
def factorised_gap(S, W, alpha, f, work):
    """Gap between ``f`` and the dual objective at the projection of ``W``, by a
    factorisation of the projected point.

    Returns ``inf`` when the projected point is not positive definite (far from
    the optimum), since the dual objective is then ``-inf``.
    """
    p = S.shape[0]
    for i in range(p):
        work[i, i] = S[i, i]
        for j in range(i + 1, p):
            u = W[i, j] - S[i, j]
            if u > alpha:
                u = alpha
            elif u < -alpha:
                u = -alpha
            work[i, j] = S[i, j] + u
            work[j, i] = work[i, j]
    L = cholesky_or_empty(work)
    if L.shape[0] != p:
        return np.inf
    gap = f - (logdet_from_cholesky(L) + p)
    return gap if gap > 0.0 else 0.0


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _slack_and_clipped(S, theta, W, alpha, rows, cols, vals, d):
    """One pass over the upper triangle: the complementary slackness
    ``sum_{i != j} alpha |Theta_ij| - U_ij Theta_ij`` (``U = clip(W - S)``), the
    diagonal part ``q_diag = tr((Theta D)^2)`` (``D = diag(S_ii - W_ii)``, into
    ``d``), the squared norm of the clipped part of ``E`` and its entries
    ``E_ij = U_ij - (W_ij - S_ij)``, ``i < j``, into ``rows, cols, vals`` up to their
    capacity. Returns ``(slack, q_diag, off_sq, n)`` (``n`` may exceed the
    capacity: then only the count is exact)."""
    p = S.shape[0]
    cap = rows.shape[0]
    for i in range(p):
        d[i] = S[i, i] - W[i, i]
    slack = 0.0
    q_diag = 0.0
    off_sq = 0.0
    n = 0
    for i in range(p):
        row = 0.5 * theta[i, i] * theta[i, i] * d[i]
        for j in range(i + 1, p):
            t = theta[i, j]
            r = W[i, j] - S[i, j]
            row += t * t * d[j]
            if r > alpha:
                e = alpha - r
            elif r < -alpha:
                e = -alpha - r
            else:
                e = 0.0
            # U_ij = r + e; alpha |t| - U_ij t >= 0 term by term.
            slack += alpha * abs(t) - (r + e) * t
            if e != 0.0:
                off_sq += e * e
                if n < cap:
                    rows[n] = i
                    cols[n] = j
                    vals[n] = e
                n += 1
        q_diag += 2.0 * row * d[i]
    return 2.0 * slack, q_diag, 2.0 * off_sq, n


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _clipped_quadratic(theta, d, rows, cols, vals, n):
    """``2 tr(Theta D Theta F) + tr((Theta F)^2)`` for ``F`` the symmetric clipped part
    (entries ``(a, b)`` and ``(b, a)`` of value ``e`` per listed pair): O(n p + n**2)."""
    p = theta.shape[0]
    cross = 0.0
    for t in range(n):
        a = rows[t]
        b = cols[t]
        tdt = 0.0
        for m in range(p):
            tdt += theta[a, m] * d[m] * theta[m, b]
        cross += 2.0 * vals[t] * tdt
    quad = 0.0
    for t in range(n):
        a = rows[t]
        b = cols[t]
        for s in range(n):
            c = rows[s]
            e = cols[s]
            # The ordered entries (a,b),(b,a) against (c,e),(e,c): sum F_xy Theta_yz F_zw Theta_wx.
            quad += vals[t] * vals[s] * (theta[b, c] * theta[e, a] + theta[b, e] * theta[c, a]
                                         + theta[a, c] * theta[e, b] + theta[a, e] * theta[c, b])
    return 2.0 * cross + quad


@njit(cache=True, nogil=True)
def gap_bounds(S, theta, W, alpha, rows, cols, vals, buf):
    """Lower and upper bounds on the duality gap at the projection of ``W``,
    without a factorisation.

    For any feasible dual point ``V = S + U`` the gap splits exactly as::

        f(Theta) - log det V - p = sum_{i != j} (alpha |Theta_ij| - U_ij Theta_ij)
                                   + sum_k (mu_k - log(1 + mu_k))

    with ``mu_k`` the eigenvalues of ``Theta V - I``. The first sum (the
    complementary slackness, non-negative term by term) is computed exactly.
    With ``V = W + E`` and ``W = inv(Theta)``, ``Theta V - I = Theta E``, whose
    squared Frobenius norm ``q = tr((Theta E)^2)`` bounds every ``|mu_k|`` by
    ``rho = sqrt(q)``; on ``[-rho, rho]`` (``rho < 1``),
    ``mu**2 / (2 (1 + rho)**2) <= mu - log(1 + mu) <= mu**2 / (2 (1 - rho)**2)``
    (Taylor with the remainder's second derivative ``1 / (1 + xi)**2``).
    ``E`` is the diagonal ``S_ii - W_ii`` plus the few entries the projection
    clipped: ``q`` costs O(p**2 + n p + n**2) for ``n`` clipped pairs. When
    ``n`` exceeds the capacity of ``rows`` (far from the optimum), ``rho`` is
    bounded by ``sqrt(q_diag) + ||Theta||_inf ||E_off||_F`` instead (triangle
    inequality, ``||Theta||_2 <= ||Theta||_inf``) and the lower bound is the
    slack alone.

    Returns ``(lower, upper)``; ``upper`` is ``inf`` when ``rho >= 1``.
    Compared with the factorised gap, the upper bound is larger by a term of
    order ``rho**3``, and it does not subtract two large numbers (``f`` and
    ``log det V``): it stays accurate below the objective's rounding.
    """
    p = S.shape[0]
    slack, q_diag, off_sq, n = _slack_and_clipped(S, theta, W, alpha, rows, cols, vals, buf)
    if q_diag < 0.0:
        q_diag = 0.0
    exact = n <= rows.shape[0]
    if exact:
        q = q_diag + _clipped_quadratic(theta, buf, rows, cols, vals, n)
        if q < 0.0:
            q = 0.0
        rho = np.sqrt(q)
    else:
        # ||Theta^(1/2) F Theta^(1/2)||_F <= ||Theta||_2 ||F||_F, ||Theta||_2 <= ||Theta||_inf.
        norm_inf = 0.0
        for i in range(p):
            row = 0.0
            for j in range(p):
                row += abs(theta[i, j])
            if row > norm_inf:
                norm_inf = row
        rho = np.sqrt(q_diag) + norm_inf * np.sqrt(off_sq)
        q = rho * rho
    if rho >= 1.0:
        return slack, np.inf
    upper = slack + q / (2.0 * (1.0 - rho) ** 2)
    lower = slack + (q / (2.0 * (1.0 + rho) ** 2) if exact else 0.0)
    return lower, upper


@njit(cache=True, nogil=True)
def certified_gap(S, theta, W, alpha, f, target, work, gap_ws):
    """Duality gap at the projection of ``W``, factorised only when the bounds of
    ``gap_bounds`` cannot tell whether it is below ``target``.

    Returns ``(gap, factorised)``: an upper bound on the gap (exact when
    factorised; ``inf`` when unknown, far from the optimum). The decision
    ``gap <= target`` is the one the factorised gap would give.
    """
    rows, cols, vals, buf = gap_ws
    lower, upper = gap_bounds(S, theta, W, alpha, rows, cols, vals, buf)
    if upper <= target or lower > target:
        return upper, False
    exact = factorised_gap(S, W, alpha, f, work)
    return (exact if exact < upper else upper), True


@njit(cache=True, nogil=True)
def gap_workspace(p):
    """Scratch of ``gap_bounds``: up to ``p // 2`` clipped pairs are handled exactly
    (then the quadratic term costs at most as much as the pass over the matrix)."""
    n = max(p // 2, 4)
    return np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n), np.empty(p)
