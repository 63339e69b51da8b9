"""The rounding floor of the graphical lasso: exact support steps judged by the gap (numba kernels).

Near the optimum the objective's decrease is quadratic in the error of ``Theta``,
but the duality gap is linear in it: the dual point ``W = inv(Theta)`` clipped into
the box moves with ``Theta`` at first order (see ``_duality_gap``). With a tight
target (the default ``1e-10 * p``) the decrease can fall below the rounding of
``f`` (``ROUNDING * (|f| + p)``) while the gap is still far above the target. Then
Armijo's rule sees only rounding, and so does the model's value that chooses
between QUIC's directions, and the iterations stop at the rounding floor.

Measured on 50 random problems with a shared global signal, n from 0.35 p to 0.8 p
and alpha_max / 10 or / 21 (80-220 regions): one stopped there with a gap of 9.0e-6
against a target of 1.5e-8. Yet its ``Theta`` was well conditioned (condition
number 411), its ``W`` exact to 4e-15, and its support final. The exact step on the
face stalled too, because its CG tolerance near the target (1e-10) was not reached
in 300 iterations.

At that point the support is known, and one exact Newton step on it finishes the
job. The step is taken over the diagonal and the non-zeros of ``Theta``, with CG
solved to a relative residual of ``_CG_RTOL``. From that problem's stopping point
it gave:

* CG to 1e-6: 214 iterations, gap 3.3e-11;
* CG to 1e-8: 279 iterations, gap 2.9e-11.

Each step is judged by the measure that can still see it: the certified gap,
which is computed without subtracting large numbers. A step is taken when the trial
point is positive definite, its objective is not measurably above the current one,
and its gap is smaller.

The module also holds what these steps share with the QUIC iterations (``_quic``):
the objective's smooth and penalty parts, the rounding constant and the factorisation
count.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._dense_newton import support_newton_step
from ._duality_gap import certified_gap, logdet_from_cholesky
from ._lapack import cholesky_inverse, cholesky_or_empty

# numba keys a kernel's disk cache by its own file only: the digests of the njit modules
# these kernels compile with (checked by tests/test_architecture.py).
KERNEL_SOURCES = {"_dense_newton.py": "199bad831968292e", "_duality_gap.py": "66c7b9beb6b57bb6",
                  "_lapack.py": "69a3ef66576b995e"}

__all__ = ["ROUNDING", "certified_support_steps", "count_factorization", "smooth_and_penalty"]

# Relative rounding of the objective (p**2 products): below it Armijo cannot tell a decrease.
ROUNDING = 1e-13
# CG accuracy of the support step (1e-10 was not reached in 300 iterations on the case above).
_CG_RTOL = 1e-6
_MAX_STEPS = 3


@njit(cache=True, nogil=True)
def count_factorization(counts, fp3):
    """One more Cholesky factorisation (or inverse) of cost ``fp3`` in ``counts``."""
    counts[0] += 1
    counts[1] += fp3


@njit(cache=True, nogil=True)
def smooth_and_penalty(S, theta, alpha):
    """``tr(S Theta)`` and ``alpha * sum_{i != j} |Theta_ij|``."""
    p = S.shape[0]
    trace = 0.0
    off = 0.0
    for i in range(p):
        trace += S[i, i] * theta[i, i]
        for j in range(i + 1, p):
            trace += 2.0 * S[i, j] * theta[i, j]
            off += 2.0 * abs(theta[i, j])
    return trace, alpha * off


@njit(cache=True, nogil=True)
def certified_support_steps(S, theta, W, alpha, f, gap, target_gap, work, gap_ws, counts):
    """Exact Newton steps on the support of ``theta`` while each lowers the certified gap,
    up to ``_MAX_STEPS`` or until the gap reaches ``target_gap``.

    ``theta`` and ``W = inv(theta)`` are updated in place; ``counts`` as in ``_quic``
    (factorisations, their cost in p**3, sweeps, CG iterations). Returns
    ``(f, gap, logdet, factorised, steps)``: ``logdet`` is NaN when no step was taken,
    ``factorised`` whether the last gap came from a factorisation.
    """
    p = S.shape[0]
    fp3 = float(p) ** 3
    D = np.empty((p, p))
    trial = np.empty((p, p))
    W_trial = np.empty((p, p))
    logdet = np.nan
    factorised = False
    steps = 0
    while steps < _MAX_STEPS and gap > target_gap:
        cg = support_newton_step(S, theta, W, alpha, D, _CG_RTOL)
        if cg < 0:
            break
        counts[3] += cg
        trial[:, :] = theta + D
        count_factorization(counts, fp3)
        L = cholesky_or_empty(trial)
        if L.shape[0] != p:
            break
        trial_logdet = logdet_from_cholesky(L)
        trace, pen = smooth_and_penalty(S, trial, alpha)
        f_trial = -trial_logdet + trace + pen
        if f_trial > f + ROUNDING * (abs(f) + p) or not cholesky_inverse(L, W_trial):
            break
        # The inverse counts as a factorisation, as in _quic.
        count_factorization(counts, fp3)
        trial_gap, trial_factorised = certified_gap(S, trial, W_trial, alpha, f_trial, target_gap,
                                                    work, gap_ws)
        if trial_factorised:
            count_factorization(counts, fp3)
        if not trial_gap < gap:
            break
        theta[:, :] = trial
        W[:, :] = W_trial
        f, gap, logdet, factorised = f_trial, trial_gap, trial_logdet, trial_factorised
        steps += 1
    return f, gap, logdet, factorised, steps
