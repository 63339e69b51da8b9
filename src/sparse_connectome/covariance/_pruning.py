"""Pruning of cross-validation fits that cannot compete (numba kernels).

A coarse fold fit of ``GraphicalLassoCV`` only has to rank its alpha. Once the
held-out score of its iterate, plus a bound on that score's error, is below the
fold's best score at a larger alpha, no further Newton step can make this alpha
the best, and the solver stops it (``_quic.STATUS_PRUNED``). The error of the
score is bounded through the duality gap (see :func:`prunable`); the CV keeps
the bound with the pruned fit, so that an alpha whose bound reaches the best is
still polished. See ``docs/solver.md`` for the measurements.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._duality_gap import factorised_gap

# numba keys a kernel's disk cache by its own file only: the digest of the file whose njit
# function these kernels compile with (checked by tests/test_architecture.py).
KERNEL_SOURCES = {"_duality_gap.py": "66c7b9beb6b57bb6"}

__all__ = ["held_out_score", "prunable"]


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
def prunable(S, theta, W, alpha, f, logdet, gap, S_test, floor, spread, work):
    """Whether the held-out score of this alpha's solution cannot reach ``floor``.

    The score of the iterate differs from the solution's by an error that shrinks
    like the square root of the duality gap (the distance to the solution does,
    by strong convexity, and the score is smooth): it is taken to be at most
    ``spread * sqrt(gap)``. Measured, the error was at most 3.7 sqrt(gap) at
    100 regions and 7.9 sqrt(gap) at 1000; the caller's ``spread`` is
    ``sqrt(p)``, 2.7 to 4 times that. The gap is the certified upper bound
    (factorised when its bracket has no upper end, far from the optimum; only
    for an iterate whose score is below ``floor``). Returns ``(pruned, gap, factorised)``.
    """
    score = held_out_score(S_test, theta, logdet)
    if not score < floor:
        return False, gap, False
    factorised = gap == np.inf
    if factorised:
        # Far from the optimum the bracket has no upper end: factorise to decide.
        exact = factorised_gap(S, W, alpha, f, work)
        if exact < gap:
            gap = exact
    return score + spread * np.sqrt(gap) < floor, gap, factorised
