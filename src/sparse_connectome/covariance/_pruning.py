"""Pruning of cross-validation fits that cannot compete (numba kernels).

A coarse fold fit of ``GraphicalLassoCV`` only has to rank its alpha. Once the
held-out score of its iterate, plus a bound on that score's error, is below the
fold's best score at a larger alpha, no further Newton step can make this alpha
the best, and the solver stops it (``_quic.STATUS_PRUNED``). The error of the
score is bounded through the duality gap (see :func:`prunable`); the CV keeps
the bound with the pruned fit, so that an alpha whose bound reaches the best is
still polished. See ``docs/solver.md`` for the measurements.

The gap needs a feasible dual point that is positive definite. Far from the
optimum, ``W = inv(Theta)`` clipped into the dual box is not, and the gap was
unknown: with fewer volumes than regions, the fits at ``alpha_max / 100`` ran
10 Newton iterations (130 ms each at 400 regions) before any gap existed,
although their held-out scores had fallen far below the best after one. The
*anchor* (:func:`anchor_dual_point`) is a dual point known to be positive
definite: the warm start's inverse, a solution at a larger alpha, with its
off-diagonal difference to ``S`` scaled into this alpha's box. Mixing it with
the clipped point (the box is convex) gives a positive definite feasible point,
hence a finite gap, a true upper bound, at every iterate (:func:`mixed_gap`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._duality_gap import factorised_gap, logdet_from_cholesky
from ._lapack import cholesky_or_empty

# numba keys a kernel's disk cache by its own file only: the digest of the file whose njit
# function these kernels compile with (checked by tests/test_architecture.py).
KERNEL_SOURCES = {"_duality_gap.py": "66c7b9beb6b57bb6", "_lapack.py": "69a3ef66576b995e"}

__all__ = ["anchor_dual_point", "held_out_score", "mixed_gap", "prunable"]

# Weights of the clipped point tried, from the clipped point itself to the anchor alone.
_MIX_WEIGHTS = (0.5, 0.25, 0.125, 0.0)


@njit(cache=True, nogil=True)
def held_out_score(S_test, theta, logdet):
    """Gaussian log-likelihood of a held-out covariance ``S_test`` under ``theta``
    (per sample): ``(log det theta - tr(S_test theta) - p log(2 pi)) / 2``."""
    p = S_test.shape[0]
    trace = 0.0
    for i in range(p):
        for j in range(p):
            trace += S_test[i, j] * theta[i, j]
    return 0.5 * (logdet - trace - p * np.log(2.0 * np.pi))


@njit(cache=True, nogil=True)
def anchor_dual_point(S, W, alpha, out):
    """A feasible dual point at ``alpha`` from the inverse ``W`` of a warm start, into ``out``.

    ``out = S + r * offdiag(W - S)`` with ``r = alpha / max |W_ij - S_ij|`` (at most 1):
    in the box, and equal to ``(1 - r) S + r W'`` with ``W'`` the matrix ``W`` with the
    diagonal of ``S``. A solution at a larger alpha has ``W_ii = S_ii`` (the diagonal is
    not penalised), so ``W' = W`` is positive definite, and so is ``out`` (``S`` is
    positive semi-definite); so is the diagonal start ``W = diag(S_ii)``. Another start
    (an interpolated one) may give an indefinite ``out``: :func:`mixed_gap` then finds no
    gap. Returns False when ``W - S`` is zero off the diagonal (nothing to scale).
    """
    p = S.shape[0]
    top = 0.0
    for i in range(p):
        for j in range(i + 1, p):
            d = abs(W[i, j] - S[i, j])
            if d > top:
                top = d
    if top == 0.0:
        return False
    r = min(1.0, alpha / top)
    for i in range(p):
        out[i, i] = S[i, i]
        for j in range(i + 1, p):
            out[i, j] = S[i, j] + r * (W[i, j] - S[i, j])
            out[j, i] = out[i, j]
    return True


@njit(cache=True, nogil=True)
def mixed_gap(S, W, alpha, f, anchor, work):
    """Duality gap at ``(1 - s) anchor + s clip(W)`` for the largest ``s`` in ``_MIX_WEIGHTS``
    whose point is positive definite (``clip(W)``: ``W`` projected into the box). Both are
    feasible, so is their mix; with ``s = 0`` it is the anchor, positive definite (see
    :func:`anchor_dual_point`). Returns ``(gap, factorisations)``; ``gap`` is ``inf`` only
    if even the anchor failed to factorise (rounding)."""
    p = S.shape[0]
    n_fact = 0
    for s in _MIX_WEIGHTS:
        for i in range(p):
            work[i, i] = S[i, i]
            for j in range(i + 1, p):
                u = W[i, j] - S[i, j]
                if u > alpha:
                    u = alpha
                elif u < -alpha:
                    u = -alpha
                work[i, j] = (1.0 - s) * anchor[i, j] + s * (S[i, j] + u)
                work[j, i] = work[i, j]
        n_fact += 1
        L = cholesky_or_empty(work)
        if L.shape[0] == p:
            gap = f - (logdet_from_cholesky(L) + p)
            return (gap if gap > 0.0 else 0.0), n_fact
    return np.inf, n_fact


@njit(cache=True, nogil=True)
def prunable(S, theta, W, alpha, f, logdet, gap, S_test, floor, spread, work, anchor,
             has_anchor):
    """Whether the held-out score of this alpha's solution cannot reach ``floor``.

    The score of the iterate differs from the solution's by an error that shrinks
    like the square root of the duality gap (the distance to the solution does,
    by strong convexity, and the score is smooth): it is taken to be at most
    ``spread * sqrt(gap)``. Measured, the error was at most 3.7 sqrt(gap) at
    100 regions and 7.9 sqrt(gap) at 1000; the caller's ``spread`` is
    ``sqrt(p)``, 2.7 to 4 times that. The gap is the certified upper bound
    (factorised when its bracket has no upper end, far from the optimum; only
    for an iterate whose score is below ``floor``; at the mix of the clipped point
    with the ``anchor`` when the clipped point is not positive definite, see
    :func:`mixed_gap`). Returns ``(pruned, gap, factorisations, has_anchor)``, the last
    False once the anchor did not factorise (a start that was not a solution: its
    diagonal differs from ``S``'s), so that it is not tried again.
    """
    score = held_out_score(S_test, theta, logdet)
    if not score < floor:
        return False, gap, 0, has_anchor
    n_fact = 0
    if gap == np.inf:
        # Far from the optimum the bracket has no upper end: factorise to decide.
        exact = factorised_gap(S, W, alpha, f, work)
        n_fact = 1
        if exact == np.inf and has_anchor:
            exact, more = mixed_gap(S, W, alpha, f, anchor, work)
            n_fact += more
            has_anchor = exact < np.inf
        if exact < gap:
            gap = exact
    return score + spread * np.sqrt(gap) < floor, gap, n_fact, has_anchor
