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
products plus one small factorisation. Past ``min(_DIRECT_LIMIT, 2 p)`` pairs the
system is solved by conjugate gradients preconditioned by its diagonal
``Theta_kk Theta_ll + Theta_kl**2``: a product with ``K`` is
``(Theta Lambda Theta)`` on ``Z``, ``3 |Z| p`` operations without any
factorisation (measured: about 12 iterations per step at ``alpha_max / 100``,
400 regions, ``|Z| ~ 12000``, where the factorisation would cost ``|Z|**3 / 3``).
CG stops at a relative residual given by the caller: ``CG_RTOL_FAR = 1e-4``
while the duality gap is far from its target (the step is a Newton step anyway
inexact by the face it is taken on, and the outer iterations were measured the
same as at 1e-10: 4 at 400 regions, 5 at 1000, to the same gaps, with 2.5x
fewer CG iterations), ``CG_RTOL_NEAR = 1e-10`` near a tight target such as the
final fit's 1e-10 per region (an inexact step there can fail to descend at the
rounding level before the gap is reached).
The step is projected on the orthant (an entry that would change sign becomes
zero) and accepted by an Armijo rule on the true objective; the caller falls
back to a QUIC step when it is not.

When the solution is sparse the zero set is most of the pairs and the Schur
complement does not pay; the same exact step is then computed over the face's
free pairs (the diagonal and the non-zeros) by conjugate gradients on the model's
Hessian restricted to them, ``3 |F| p`` operations per iteration
(``free_face_newton_direction``). The solver uses it only near a tight target,
after a step that did not halve the gap: on ill-conditioned problems (fMRI-like
autocorrelated signals) the sweeps' directions converged only linearly and
stalled at gaps of 1e-7 against the default 1e-8 (4 of 40 such problems of
18-158 regions; none with this step, and no change on the benchmark problems).
Its CG is preconditioned by the pairs of ``Theta R Theta`` (the inverse of the
Hessian on all pairs, restricted to the face), not by the diagonal: a shared
global signal makes ``W`` ill-conditioned along a few directions that a diagonal
cannot see (measured: CG iterations 3577 -> 2039 over a CV of 100 regions with a
global signal, its CPU 1.88 -> 1.53 s; 6 % less on 40 fMRI-like problems; the
same alphas on every family).
Tried farther from the target, after three steps in a row that did not halve
the gap, it cost more than it saved (a 100-region CV took 0.15 s against 0.11 s).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._lapack import cholesky_or_empty

# numba's disk cache is keyed by this file's contents only, yet its kernels compile with
# the njit function imported above: this digest (SHA-256, first 16 hex digits) makes this
# file change with that one (checked by tests/test_architecture.py).
KERNEL_SOURCES = {"_lapack.py": "69a3ef66576b995e"}

__all__ = ["face_newton_direction", "free_face_newton_direction", "model_value",
           "projected_path_step", "support_newton_step",
           "CG_RTOL_FAR", "CG_RTOL_NEAR"]

# The Schur system is factorised (nz**3 / 3) while the zero set has at most
# min(_DIRECT_LIMIT, _DIRECT_PER_REGION * p) pairs, and solved by conjugate gradients above
# (each iteration costs 3 nz p; about 12 iterations far from the target). At 39 regions a
# factorised zero set of 200-300 pairs cost 10 sweeps: with the limit at 2 p, CVs on the
# demo cohort's subjects took 16 % less time (1.49 s -> 1.24 s for 9 subjects), the same
# alphas; no change from 150 regions up.
_DIRECT_LIMIT = 300
_DIRECT_PER_REGION = 2
CG_RTOL_FAR = 1e-4
CG_RTOL_NEAR = 1e-10
# The face step runs in single precision while its CG tolerance is above this.
_SINGLE_RTOL = 1e-6
_CG_MAX_ITER = 300
# Steps along the path to the face's minimiser (see projected_path_step).
_PATH_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)


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
    L = cholesky_or_empty(K)
    if L.shape[0] != nz:
        return np.empty((0, 0))
    lam = _cholesky_solve(L, r)
    Lam = np.zeros((p, p))
    for a in range(nz):
        Lam[zi[a], zj[a]] = lam[a]
        Lam[zj[a], zi[a]] = lam[a]
    return Lam


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _pair_product(matrix, v, pi, pj, n, M, MT, y, off_weight):
    """``y = (A V A)`` on the pairs ``(pi, pj)`` (times ``off_weight`` off the diagonal),
    ``A`` the ``matrix`` and ``V`` the symmetric matrix with entries ``v`` on the pairs,
    in ``3 n p`` operations: ``M = V A`` row by row, then one contiguous dot product
    per pair (``M`` transposed into ``MT``). Computed in the precision of ``matrix``,
    ``M`` and ``MT`` (``v`` and ``y`` are double).

    With ``A = Theta`` on the zero pairs (weight 1) it is the Schur system's ``K lam``;
    with ``A = W`` on the free pairs (weight 2: an off-diagonal coordinate counts twice)
    the face's Hessian of QUIC's model.
    """
    p = matrix.shape[0]
    M[:, :] = 0.0
    for a in range(n):
        k = pi[a]
        l = pj[a]
        x = M.dtype.type(v[a])
        if k == l:
            for c in range(p):
                M[k, c] += x * matrix[k, c]
        else:
            for c in range(p):
                M[k, c] += x * matrix[l, c]
                M[l, c] += x * matrix[k, c]
    for i in range(p):
        for c in range(p):
            MT[i, c] = M[c, i]
    for a in range(n):
        k = pi[a]
        l = pj[a]
        acc = M.dtype.type(0.0)
        for c in range(p):
            acc += matrix[k, c] * MT[l, c]
        y[a] = acc if k == l else off_weight * acc


@njit(cache=True, nogil=True)
def _pair_cg(matrix, rhs, prec, pi, pj, n, off_weight, max_iter, rtol, inverse):
    """Conjugate gradients on the system of ``_pair_product`` over the pairs ``(pi, pj)``,
    preconditioned by ``prec`` (the inverse diagonal) or, when ``inverse`` is a matrix
    (``Theta = inv(W)`` for the face's Hessian ``W (x) W``), by the pairs of ``Theta R
    Theta`` (:func:`_precondition`). Stops at a relative residual ``rtol``.
    Returns ``(x, iterations)``, ``x`` empty when CG did not converge within
    ``max_iter``."""
    full = inverse.shape[0] == matrix.shape[0]
    M = np.empty_like(matrix)
    MT = np.empty_like(matrix)
    r = rhs.copy()
    x = np.zeros(n)
    z = np.empty(n)
    half = np.empty(n)
    _precondition(r, prec, inverse, full, pi, pj, n, M, MT, half, z)
    d = z.copy()
    rz = np.dot(r, z)
    target = rtol * np.sqrt(np.dot(r, r))
    Hd = np.empty(n)
    it = 0
    while np.sqrt(np.dot(r, r)) > target:
        if it >= max_iter:
            return np.empty(0), it
        it += 1
        _pair_product(matrix, d, pi, pj, n, M, MT, Hd, off_weight)
        dHd = np.dot(d, Hd)
        if not dHd > 0.0:
            return np.empty(0), it
        step = rz / dHd
        x += step * d
        r -= step * Hd
        _precondition(r, prec, inverse, full, pi, pj, n, M, MT, half, z)
        rz_new = np.dot(r, z)
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, it


@njit(cache=True, nogil=True)
def _precondition(r, prec, inverse, full, pi, pj, n, M, MT, half, z):
    """``z = P r``: the inverse diagonal ``prec`` times ``r``, or with ``full`` the pairs of
    ``Theta R Theta`` (``Theta`` the ``inverse``), ``R`` the symmetric matrix with ``r`` on
    the pairs, off-diagonal entries halved (into the buffer ``half``).

    On all the pairs, ``W (x) W``'s inverse is exactly that (``W D W = R`` gives ``D =
    Theta R Theta``; an off-diagonal coordinate counts twice): restricted to a face it is
    a principal block of a positive definite operator, hence positive definite, and
    it captures what the diagonal cannot, the few directions along which a shared global
    signal makes ``W`` ill-conditioned (a third of the iterations on those faces,
    measured, each at twice the cost)."""
    if not full:
        for a in range(n):
            z[a] = r[a] * prec[a]
        return
    for a in range(n):
        half[a] = r[a] if pi[a] == pj[a] else 0.5 * r[a]
    _pair_product(inverse, half, pi, pj, n, M, MT, z, 1.0)


@njit(cache=True, nogil=True)
def _schur_cg(theta, A, zi, zj, nz, max_iter, rtol, theta_p):
    """``Lambda`` of ``_schur_multipliers`` by conjugate gradients (Jacobi-preconditioned),
    for zero sets too large to factorise; an empty array when it does not converge
    to ``rtol`` in ``max_iter`` iterations. The products with ``K`` use ``theta_p``
    (``theta`` or its single-precision copy). Returns ``(Lambda, iterations)``."""
    p = theta.shape[0]
    r = np.empty(nz)
    prec = np.empty(nz)
    for a in range(nz):
        k = zi[a]
        l = zj[a]
        r[a] = theta[k, l] - A[k, l]
        prec[a] = 1.0 / (theta[k, k] * theta[l, l] + theta[k, l] * theta[k, l])
    lam, it = _pair_cg(theta_p, r, prec, zi, zj, nz, 1.0, max_iter, rtol, np.empty((0, 0)))
    if lam.shape[0] != nz:
        return np.empty((0, 0)), it
    Lam = np.zeros((p, p))
    for a in range(nz):
        Lam[zi[a], zj[a]] = lam[a]
        Lam[zj[a], zi[a]] = lam[a]
    return Lam, it


@njit(cache=True, nogil=True)
def _sandwich(theta_p, X):
    """``theta @ X @ theta`` in the precision of ``theta_p`` (``theta`` or its
    single-precision copy: two SGEMMs take half the time of two DGEMMs), in double."""
    Xp = np.empty_like(theta_p)
    Xp[:, :] = X
    out = np.empty(X.shape)
    out[:, :] = theta_p @ Xp @ theta_p
    return out


@njit(cache=True, nogil=True)
def _face_system(theta, Gs, theta_p, zi, zj, nz, cg_rtol):
    """``A = Theta (Gs + Lambda) Theta`` with the multipliers ``Lambda`` of the zero
    pairs, products in the precision of ``theta_p``. Returns ``(A, cg)``, ``A``
    empty when the Schur system could not be solved."""
    p = theta.shape[0]
    A = _sandwich(theta_p, Gs)
    cg = 0
    if nz > 0:
        if nz <= min(_DIRECT_LIMIT, _DIRECT_PER_REGION * p):
            Lam = _schur_multipliers(theta, A, zi, zj, nz)
        else:
            Lam, cg = _schur_cg(theta, A, zi, zj, nz, _CG_MAX_ITER, cg_rtol, theta_p)
        if Lam.shape[0] != p:
            return np.empty((0, 0)), cg
        A += _sandwich(theta_p, Lam)
    return A, cg


@njit(cache=True, nogil=True)
def face_newton_direction(S, theta, W, alpha, D, zi, zj, limit, out, cg_rtol):
    """Exact minimiser of QUIC's model on the face of ``theta + D`` into ``out``.

    The face is the sign pattern of ``theta + D`` (``D`` is the coordinate
    descent's direction), its zero pairs staying zero; the minimiser is
    projected back on the face (an entry that would change sign becomes zero).
    While ``cg_rtol`` is above ``_SINGLE_RTOL`` (an inexact step, far from the
    target) the four p x p products and the CG's products with ``K`` run in
    single precision (relative error about 1e-7, below the CG's own tolerance;
    the direction is judged in double by the model and the line search): 1.5-2x
    faster at 1000 regions.
    Returns ``(nz, cg)``: the number of zero pairs (-1 when there are more than
    ``limit`` or the Schur system could not be solved) and the conjugate-gradient
    iterations spent (0 when the system was factorised).
    """
    p = S.shape[0]
    orth = np.empty((p, p))
    Gs = np.empty((p, p))
    nz = _face(theta, D, alpha, S, W, zi, zj, limit, orth, Gs)
    cg = 0
    if nz < 0:
        return -1, cg
    if cg_rtol > _SINGLE_RTOL:
        A, cg = _face_system(theta, Gs, theta.astype(np.float32), zi, zj, nz, cg_rtol)
    else:
        A, cg = _face_system(theta, Gs, theta, zi, zj, nz, cg_rtol)
    if A.shape[0] != p:
        return -1, cg
    for i in range(p):
        out[i, i] = -A[i, i]
        for j in range(i + 1, p):
            d = -0.5 * (A[i, j] + A[j, i])
            x = theta[i, j] + d
            if orth[i, j] == 0.0 or x * orth[i, j] < 0.0:
                d = -theta[i, j]
            out[i, j] = d
            out[j, i] = d
    return nz, cg


@njit(cache=True, nogil=True)
def _free_face(theta, D, alpha, S, W, fi, fj, orth, g, hdiag, fixed):
    """The free pairs of the face of ``theta + D`` (the diagonal and every non-zero
    pair, upper triangle) into ``fi, fj``, with the face's reduced gradient ``g`` and
    the diagonal ``hdiag`` of the model's Hessian in these coordinates; the signs
    into ``orth``; ``D = -theta`` on the zero pairs that leave the support into
    ``fixed`` (zero elsewhere). Returns ``(free pairs, leaving pairs)``."""
    p = theta.shape[0]
    nf = 0
    n_fixed = 0
    fixed[:, :] = 0.0
    for i in range(p):
        orth[i, i] = 0.0
        fi[nf] = i
        fj[nf] = i
        g[nf] = S[i, i] - W[i, i]
        hdiag[nf] = W[i, i] * W[i, i]
        nf += 1
        for j in range(i + 1, p):
            x = theta[i, j] + D[i, j]
            s = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
            orth[i, j] = s
            orth[j, i] = s
            if s != 0.0:
                fi[nf] = i
                fj[nf] = j
                # Off-diagonal coordinates count twice in <G, D> and tr(W D W D).
                g[nf] = 2.0 * (S[i, j] - W[i, j] + alpha * s)
                hdiag[nf] = 2.0 * (W[i, i] * W[j, j] + W[i, j] * W[i, j])
                nf += 1
            elif theta[i, j] != 0.0:
                fixed[i, j] = -theta[i, j]
                fixed[j, i] = -theta[i, j]
                n_fixed += 1
    return nf, n_fixed


@njit(cache=True, nogil=True)
def free_face_newton_direction(S, theta, W, alpha, D, out, cg_rtol):
    """Exact minimiser of QUIC's model on the face of ``theta + D`` into ``out``, by
    conjugate gradients over the face's free pairs: for sparse solutions, whose zero
    set is too large for the Schur complement of ``face_newton_direction``.

    The model on the face is ``<G~, D> + tr(W D W D) / 2`` over the free pairs (the
    diagonal and the non-zeros of ``theta + D``), ``G~`` the gradient with
    ``alpha * sign`` on the free pairs, and ``D = -theta`` on the face's zero pairs
    (zero, except for entries leaving the support); its minimiser solves
    ``(W D W) = -G~`` on the free pairs.
    The Hessian ``W (x) W`` restricted to the face is positive definite: CG,
    preconditioned by the face's pairs of the inverse Hessian ``Theta (x) Theta``
    (``_precondition``), each iteration two ``_pair_product``. This is what QUIC's
    coordinate descent approximates; on an ill-conditioned ``W`` the sweeps stop far
    from it (a 1 % change per sweep), the outer iterations converge only linearly
    and, near a tight target, stall. The result is the face's minimiser itself, not
    projected on its orthant (see :func:`projected_path_step`). Returns the CG
    iterations, or -1 when CG did not reach ``cg_rtol`` within ``_CG_MAX_ITER``.
    """
    p = S.shape[0]
    n_max = p * (p + 1) // 2
    fi = np.empty(n_max, np.int64)
    fj = np.empty(n_max, np.int64)
    g = np.empty(n_max)
    hdiag = np.empty(n_max)
    orth = np.empty((p, p))
    fixed = np.empty((p, p))
    nf, n_fixed = _free_face(theta, D, alpha, S, W, fi, fj, orth, g, hdiag, fixed)
    # Pairs leaving the support are fixed at D = -theta: their curvature term moves the
    # free pairs' gradient by (W D W) (twice off the diagonal).
    if n_fixed > 0:
        WFW = W @ fixed @ W
        for a in range(nf):
            i = fi[a]
            j = fj[a]
            g[a] += WFW[i, j] if i == j else 2.0 * WFW[i, j]
    v, it = _pair_cg(W, -g[:nf], 1.0 / hdiag[:nf], fi, fj, nf, 2.0, _CG_MAX_ITER, cg_rtol, theta)
    if v.shape[0] != nf:
        return -1
    out[:, :] = fixed
    for a in range(nf):
        out[fi[a], fj[a]] = v[a]
        out[fj[a], fi[a]] = v[a]
    return it


@njit(cache=True, nogil=True)
def projected_path_step(S, theta, W, alpha, D, target, scratch):
    """The best, by the model, of ``D`` and the projections of ``D + t (target - D)``
    on the orthant of ``theta + D``, ``t`` from 1 down by halves (``_PATH_STEPS``), into
    ``D``. Returns whether a projection beat ``D``.

    The projection sets to zero the entries of ``theta + D`` that would change sign.
    ``target``, the face's minimiser (:func:`free_face_newton_direction`), changes
    thousands of signs when ``W`` is ill-conditioned, and its projection alone was
    worse than the sweeps' direction (a model of +26 against -0.13 at 400 regions, 168
    volumes and a shared global signal, ``alpha_max / 21``) while a quarter of the way
    to it gave -1.07: a projected search as in Bertsekas' projected Newton method. The
    search stops at the first ``t`` whose model is worse than the best so far.
    """
    best = model_value(S, theta, W, alpha, D)
    best_t = 0.0
    for t in _PATH_STEPS:
        _project_on_path(theta, D, target, t, scratch)
        value = model_value(S, theta, W, alpha, scratch)
        if value < best:
            best = value
            best_t = t
        elif best_t > 0.0:
            break
    if best_t == 0.0:
        return False
    _project_on_path(theta, D, target, best_t, scratch)
    D[:, :] = scratch
    return True


@njit(cache=True, nogil=True)
def support_newton_step(S, theta, W, alpha, out, cg_rtol):
    """The exact Newton step with the support of ``theta`` fixed, into ``out``: the
    minimiser of QUIC's model over the diagonal and the non-zeros of ``theta``
    (:func:`free_face_newton_direction` from ``D = 0``), projected on the orthant of
    ``theta`` (an entry that would change sign becomes zero). Returns the CG
    iterations, or -1 when CG did not reach ``cg_rtol``.
    """
    p = S.shape[0]
    zero = np.zeros((p, p))
    target = np.empty((p, p))
    cg = free_face_newton_direction(S, theta, W, alpha, zero, target, cg_rtol)
    if cg >= 0:
        _project_on_path(theta, zero, target, 1.0, out)
    return cg


@njit(cache=True, nogil=True)
def _project_on_path(theta, D, target, t, out):
    """``out = D + t (target - D)``, off the diagonal set to ``-theta`` where ``theta + out``
    would have the opposite sign to ``theta + D``."""
    p = theta.shape[0]
    for i in range(p):
        for j in range(p):
            x = D[i, j] + t * (target[i, j] - D[i, j])
            if i != j:
                ref = theta[i, j] + D[i, j]
                if (theta[i, j] + x) * ref < 0.0:
                    x = -theta[i, j]
            out[i, j] = x


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
