"""Exact Newton steps of the graphical lasso when the solution is dense (numba kernels).

At small alpha nearly every entry of the precision is non-zero, and the
Newton direction of QUIC's quadratic model has the Hessian ``W (x) W``, whose
condition number is ``cond(W)**2``: coordinate descent then needs hundreds of
sweeps for an accurate direction, and an inaccurate one makes the outer
iterations converge only linearly (hundreds of full Newton steps measured at
``alpha_max / 100`` on the demo cohort, three with an exact direction).

Here the direction is computed exactly, in the style of orthant-based Newton
methods (Olsen, Oztoprak, Nocedal & Rennie 2012): every free entry gets the
sign of its orthant (its current sign, or ``-sign(G_ij)`` for a zero entry
whose gradient exceeds alpha), the entries of the fixed set ``Z`` (zeros with
``|G_ij| <= alpha``) stay zero, and the direction minimises the smooth
quadratic model on that face. Its Hessian restricted to the free set is
inverted through the inverse Hessian ``Theta (x) Theta`` and a Schur
complement on ``Z`` only::

    D = -Theta (Gt + Lambda) Theta,   Lambda supported on Z with D_Z = 0,

where ``Gt`` is the reduced gradient (``S - W + alpha * sign`` on the free
set). ``Lambda`` solves a symmetric positive definite system of the size of
``Z`` whose matrix is ``K[(k,l),(i,j)] = Theta_ki Theta_lj + Theta_kj Theta_li``.
When the solution is dense ``Z`` is small and a step costs four p x p
products plus one small factorisation. The step is projected on the orthant
(an entry that would change sign becomes zero) and accepted by an Armijo rule
on the true objective; the caller falls back to a QUIC step when it is not.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["face_newton_direction", "model_value"]


@njit(cache=True, nogil=True)
def _cholesky(a):
    """Lower Cholesky factor of ``a``, or an empty array when ``a`` is not positive definite."""
    try:
        return np.linalg.cholesky(a)
    except Exception:  # numba raises LinAlgError; its type cannot be matched in nopython mode
        return np.empty((0, 0))


@njit(cache=True, nogil=True)
def _cholesky(a):
    """Lower Cholesky factor of ``a``, or an empty array when ``a`` is not positive definite."""
    try:
        return np.linalg.cholesky(a)
    except Exception:  # numba raises LinAlgError; its type cannot be matched in nopython mode
        return np.empty((0, 0))


@njit(cache=True, nogil=True)
def _face(theta, D, alpha, S, W, zi, zj, limit, orth, Gs):
    """Signs of ``theta + D`` into ``orth``, its zero pairs into ``zi, zj`` (at most
    ``limit``), and the gradient of the model's smooth part plus ``alpha * sign``
    (zero on the fixed pairs) into ``Gs``. Returns the number of zero pairs, or
    -1 past ``limit``."""
    p = theta.shape[0]
    nz = 0
    for i in range(p):
        Gs[i, i] = S[i, i] - W[i, i]
        orth[i, i] = 0.0
        for j in range(i + 1, p):
            x = theta[i, j] + D[i, j]
            s = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
            if s == 0.0:
                if nz >= limit:
                    return -1
                zi[nz] = i
                zj[nz] = j
                nz += 1
            g = S[i, j] - W[i, j] + alpha * s if s != 0.0 else 0.0
            Gs[i, j] = g
            Gs[j, i] = g
            orth[i, j] = s
            orth[j, i] = s
    return nz


@njit(cache=True, nogil=True)
def _cholesky_solve(L, r):
    """``x`` with ``L L' x = r`` by two triangular substitutions."""
    n = r.shape[0]
    y = np.empty(n)
    for i in range(n):
        s = r[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x


@njit(cache=True, nogil=True)
def _schur_multipliers(theta, A, zi, zj, nz):
    """``Lambda`` (symmetric, on the zero pairs) that keeps ``theta + D`` zero there."""
    p = theta.shape[0]
    K = np.empty((nz, nz))
    r = np.empty(nz)
    for a in range(nz):
        k = zi[a]
        l = zj[a]
        r[a] = theta[k, l] - A[k, l]
        for b in range(a + 1):
            i = zi[b]
            j = zj[b]
            K[a, b] = theta[k, i] * theta[l, j] + theta[k, j] * theta[l, i]
            K[b, a] = K[a, b]
    L = _cholesky(K)
    if L.shape[0] != nz:
        return np.empty((0, 0))
    lam = _cholesky_solve(L, r)
    Lam = np.zeros((p, p))
    for a in range(nz):
        Lam[zi[a], zj[a]] = lam[a]
        Lam[zj[a], zi[a]] = lam[a]
    return Lam


@njit(cache=True, nogil=True)
def face_newton_direction(S, theta, W, alpha, D, zi, zj, limit, out):
    """Exact minimiser of QUIC's model on the face of ``theta + D`` into ``out``.

    The face is the sign pattern of ``theta + D`` (``D`` is the coordinate
    descent's direction), its zero pairs staying zero; the minimiser is
    projected back on the face (an entry that would change sign becomes zero).
    Returns the number of zero pairs, or -1 when there are more than ``limit``
    or the Schur system is not numerically positive definite.
    """
    p = S.shape[0]
    orth = np.empty((p, p))
    Gs = np.empty((p, p))
    nz = _face(theta, D, alpha, S, W, zi, zj, limit, orth, Gs)
    if nz < 0:
        return -1
    A = theta @ Gs @ theta
    if nz > 0:
        Lam = _schur_multipliers(theta, A, zi, zj, nz)
        if Lam.shape[0] != p:
            return -1
        A += theta @ Lam @ theta
    for i in range(p):
        out[i, i] = -A[i, i]
        for j in range(i + 1, p):
            d = -0.5 * (A[i, j] + A[j, i])
            x = theta[i, j] + d
            if orth[i, j] == 0.0 or x * orth[i, j] < 0.0:
                d = -theta[i, j]
            out[i, j] = d
            out[j, i] = d
    return nz


@njit(cache=True, nogil=True)
def model_value(S, theta, W, alpha, D):
    """QUIC's model ``<S - W, D> + tr(W D W D) / 2 + alpha (|theta + D|_1 - |theta|_1)``."""
    p = S.shape[0]
    WDW = W @ D @ W
    lin = 0.0
    quad = 0.0
    pen = 0.0
    for i in range(p):
        for j in range(p):
            lin += (S[i, j] - W[i, j]) * D[i, j]
            quad += WDW[i, j] * D[i, j]
            if i != j:
                pen += abs(theta[i, j] + D[i, j]) - abs(theta[i, j])
    return lin + 0.5 * quad + alpha * pen
