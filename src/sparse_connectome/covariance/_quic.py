"""Compiled kernels of the graphical lasso solver (QUIC with exact screening).

The problem, for an empirical covariance ``S`` (p x p) and ``alpha > 0``::

    minimise  f(Theta) = -log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|

is solved by QUIC (Hsieh, Sustik, Dhillon & Ravikumar, JMLR 2014): at each
outer iteration a Newton direction of the smooth part is computed by coordinate
descent over the *free set* (the non-zeros of Theta and the entries whose
gradient exceeds alpha), then an Armijo line search along it keeps Theta
positive definite (checked by a Cholesky factorisation, which also gives
``log det``; ``W = inv(Theta)`` follows from that factor, by LAPACK's
``dpotri``, see ``_lapack``). The coordinate descent sweeps stop
once a sweep changes the direction by less than 1% of its size, within a budget
growing with the outer iteration (QUIC uses ``1 + k / 3`` sweeps; an accurate
direction late on keeps the outer convergence fast).

When the solution is dense (small alpha), coordinate descent converges slowly
on the model, whose Hessian ``W (x) W`` is ill-conditioned, and the inexact
direction makes the outer iterations converge only linearly (200 full Newton
steps measured at ``alpha_max / 100`` on a demo cohort subject; no convergence
in 1000 on a nearly singular problem). There the model is also minimised
exactly on the face (sign pattern) of the coordinate-descent direction, by a
Schur complement on its zero set (see ``_dense_newton``: factorised when small,
by conjugate gradients otherwise), and the better direction by the model's
value is taken: Newton's fast local convergence comes back (5 to 15
iterations). The face step is tried while the zero set has at most
``max(_DENSE_MIN, _DENSE_FRACTION * p**2)`` pairs, or no more than the free set
when the regions are strongly connected (``_VIF_WIDE_FACE``), and backs off
exponentially after it loses. While it wins, two sweeps guess the face and two more sweeps,
started from the face step, let entries leave or join it (the model only
decreases); when the face outgrows the limit, full sweeps come back (staying at
two had the demo subject's final fit converge only linearly: 100 iterations
without reaching ``1e-10 * p``, 14 with full sweeps).

The exact minimiser on a sparse face is tried too (by conjugate gradients,
``free_face_newton_direction``) after a step that did not halve the gap, near a tight
target (the sweeps' directions had stalled at 1e-7 against 1e-8 on an ill-conditioned
``W``), or wherever the sweeps stall: after ``_STALLED_STEPS`` steps in a row that did
not halve the gap, ``_STALLED_SWEEPS`` sweeps or more whose last one still moved the
direction by more than ``_STALLED_MOVE`` of its size (backing off exponentially after
it loses: on the benchmark's 400 x 168 it won on the model without saving iterations). A global signal
shared by the regions (fMRI without global signal regression) makes ``W (x) W``
ill-conditioned in one direction: the sweeps still moved by 2-8 % after 40 and the
outer iterations converged linearly (45-83 iterations at 80 regions; no convergence
in 100 at 146-159 regions, whose CVs took 30-50 s). With the exact step: 12-15
iterations, and CVs 5x faster on such signals.

Near the optimum the objective's decrease (quadratic in the error) falls below
its rounding while the duality gap (linear in it) is still above a tight
target such as ``1e-10 * p``: Armijo's test cannot accept any step and the
solver stalled (gaps of 3e-9 measured on 30 regions). A full step whose
predicted decrease is below the rounding of ``f`` (``ROUNDING * (|f| + p)``) is
then accepted when ``f`` does not measurably increase; the gap is computed
after it as after every step, so the certificate is unchanged. A fit that still
stops there above its target is finished by exact Newton steps on its support,
each kept only if it lowers the certified gap (see ``_endgame``).

Before solving, the exact covariance-thresholding rule (Witten, Friedman &
Simon 2011; Mazumder & Hastie 2012) splits the problem: the connected
components of the graph ``|S_ij| > alpha`` are the diagonal blocks of the
solution, so each block is solved on its own and a single region gets
``Theta_ii = 1 / S_ii``.

Convergence is certified by the duality gap. The dual problem is::

    maximise  log det W + p   over  W = S + U,  U_ii = 0,  |U_ij| <= alpha (i != j)

From ``W = inv(Theta)`` a feasible dual point is obtained by clipping
``W - S`` into the box (and resetting the diagonal to ``S_ii``); the gap
``f(Theta) - log det W_feasible - p`` is then a true upper bound on
``f(Theta) - f(Theta*)``. A block of size ``q`` is converged when its gap is at
most ``tol * q``; the gaps of the blocks add up, so the whole problem is
converged when its gap is at most ``tol * p``.

Factorising the dual point would cost as much as a Newton iteration's own
factorisation; the gap is instead bracketed in O(p**2) from its exact split
into a complementary-slackness sum and a second-order term (``_duality_gap``),
and factorised only when the bracket straddles the target: the stopping
decision is unchanged and most iterations pay no extra factorisation. A warm
start from a solution of the same data (the previous alpha of a fold's path,
or a polished fold fit) comes with its inverse and log-determinant, so it
starts without any factorisation.

A whole solve runs in compiled code without returning to Python (numba's
LAPACK binding for the Cholesky factorisation, ours for the inverse from it); all kernels
release the GIL (``nogil=True``) and are cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._coordinate_descent import coordinate_descent, padded_width
from ._dense_newton import (
    CG_RTOL_FAR,
    CG_RTOL_NEAR,
    face_newton_direction,
    free_face_newton_direction,
    model_value,
    projected_path_step,
)
from ._duality_gap import certified_gap, factorised_gap, gap_workspace, logdet_from_cholesky
from ._endgame import ROUNDING, certified_support_steps, count_factorization, smooth_and_penalty
from ._lapack import cholesky_inverse, cholesky_or_empty
from ._pruning import anchor_dual_point, prunable
from ._screening import components, warm_inverse_usable

# numba keys a kernel's disk cache by its own file only, yet these kernels compile with the
# njit functions imported above (a stale cache would run old code, after upgrades too): the
# digests of those files (SHA-256, 16 hex digits; checked by tests/test_architecture.py).
KERNEL_SOURCES = {"_coordinate_descent.py": "a0b2104fecc0096b",
                  "_dense_newton.py": "199bad831968292e", "_duality_gap.py": "66c7b9beb6b57bb6",
                  "_endgame.py": "d0246bb8de2fa586", "_lapack.py": "69a3ef66576b995e",
                  "_pruning.py": "2e8833b3c4b0177e", "_screening.py": "6775fb6f25048f67"}

__all__ = ["solve_screened", "objective", "STATUS_PRUNED"]

# Armijo parameters (QUIC's choice: sufficient decrease sigma, halving steps).
_SIGMA = 1e-3
_MAX_HALVINGS = 40
# The face step's CG is solved exactly once the gap is within _NEAR targets, when the
# target is at most _TIGHT per region (the final fit's 1e-10, not the folds' 1e-4 or 1e-6).
_NEAR = 1e3
_TIGHT = 1e-8

# Exact orthant Newton steps (see _dense_newton) while the fixed set has at most
# max(_DENSE_MIN, _DENSE_FRACTION * p**2) entries (past that: sweeps, see _quic_step).
_DENSE_MIN = 300
_DENSE_FRACTION = 0.125
# When the median region's variance inflation exceeds this (strongly connected regions:
# fMRI-like signals, 1.5-2.1 at the chosen alpha on the demo cohort against 1.1-1.2 on the
# benchmark's i.i.d. problems), the face step is also tried while the zero set is no larger
# than the free set: there the sweeps' directions are poor and the exact face step wins
# (CVs of the demo cohort's 9 subjects 1.25 s -> 0.69 s, of 100 fMRI-like problems of
# 10-160 regions 43.1 s -> 34.6 s; the benchmark's problems unchanged, 400 x 168 6 % slower).
_VIF_WIDE_FACE = 1.4
_FACE_SWEEPS = 2
# Coordinate descent has stalled (see above) when this many sweeps or more still moved the
# direction by more than this share of its size.
_STALLED_SWEEPS = 9
_STALLED_STEPS = 2
_STALLED_MOVE = 0.02
# The stalled sweeps' exact step (far from a loose target: the CV's fold fits) solves its
# face by CG to this relative residual: the projected path (see _dense_newton) only needs
# the minimiser's direction, and at 1e-4 its 150-270 CG iterations of two p x p products
# each cost more than the step saved (global-signal family 12.7 -> 11.3 s with the final
# fits' CG kept at 1e-4, 400 x 168 with a global signal 81 -> 59 s CPU; same alphas).
_STALLED_CG_RTOL = 1e-2

# Solver status codes.
STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_NO_DESCENT = 2  # the Newton direction can no longer decrease f (rounding floor)
STATUS_LINE_SEARCH = 3
STATUS_PRUNED = 4  # stopped: its held-out score cannot compete (see _pruning)


@njit(cache=True, nogil=True)
def _inverse(a):
    """Symmetric inverse of a positive definite matrix (symmetrised against rounding)."""
    inv = np.linalg.inv(a)
    return 0.5 * (inv + inv.T)


@njit(cache=True, nogil=True)
def _set_inverse(theta, L, W):
    """``W = inv(theta)`` from its Cholesky factor ``L`` (LU on ``theta`` if LAPACK refuses)."""
    if not cholesky_inverse(L, W):
        W[:, :] = _inverse(theta)


@njit(cache=True, nogil=True)
def _n_sweeps(k):
    """Coordinate-descent sweeps for the Newton direction at outer iteration ``k``."""
    return min(1 + 2 * k, 40)


@njit(cache=True, nogil=True)
def _start(S, theta, W, alpha, counts, known, logdet):
    """Objective and log-determinant at the starting point; ``W = inv(theta)``.

    With ``known``, ``W`` already holds ``inv(theta)`` and ``logdet`` its
    log-determinant (a warm start from a solution of the same data): no
    factorisation. Otherwise ``theta`` is factorised (and replaced by the
    diagonal start ``1 / S_ii`` if it is not positive definite) and ``W``
    computed from the factor. Returns ``(f, logdet)``.
    """
    p = S.shape[0]
    if not known:
        fp3 = float(p) ** 3
        count_factorization(counts, fp3)
        L = cholesky_or_empty(theta)
        if L.shape[0] != p:
            theta[:, :] = 0.0
            for i in range(p):
                theta[i, i] = 1.0 / S[i, i]
            count_factorization(counts, fp3)
            L = cholesky_or_empty(theta)
        logdet = logdet_from_cholesky(L)
        _set_inverse(theta, L, W)
        count_factorization(counts, fp3)
    trace, pen = smooth_and_penalty(S, theta, alpha)
    return -logdet + trace + pen, logdet


@njit(cache=True, nogil=True)
def _free_set(S, theta, W, alpha, free_i, free_j):
    """Fill ``free_i, free_j`` with QUIC's free set (upper triangle); return its size."""
    p = S.shape[0]
    n_free = 0
    # Column-major order: consecutive coordinates (i, j) share j, so the strided
    # column U[:, j] read by the coordinate descent stays in cache.
    for j in range(p):
        for i in range(j + 1):
            if i == j or theta[i, j] != 0.0 or abs(S[i, j] - W[i, j]) > alpha:
                free_i[n_free] = i
                free_j[n_free] = j
                n_free += 1
    return n_free


@njit(cache=True, nogil=True)
def _descent_bound(S, W, theta, D, alpha):
    """Directional derivative bound ``delta`` of QUIC's Armijo rule along ``D``."""
    p = S.shape[0]
    delta = 0.0
    for i in range(p):
        delta += (S[i, i] - W[i, i]) * D[i, i]
        for j in range(i + 1, p):
            delta += 2.0 * (S[i, j] - W[i, j]) * D[i, j]
            delta += 2.0 * alpha * (abs(theta[i, j] + D[i, j]) - abs(theta[i, j]))
    return delta


@njit(cache=True, nogil=True)
def _line_search(S, theta, D, alpha, f, delta, trial, counts):
    """Armijo line search from ``theta`` along ``D`` (halving steps).

    ``trial`` receives the accepted point. Returns ``(accepted, step, f_new, L)``, ``L``
    the accepted point's Cholesky factor (empty when none was accepted).
    """
    p = S.shape[0]
    fp3 = float(p) ** 3
    step = 1.0
    f_new = f
    for _ in range(_MAX_HALVINGS):
        for i in range(p):
            for j in range(p):
                trial[i, j] = theta[i, j] + step * D[i, j]
        count_factorization(counts, fp3)
        L = cholesky_or_empty(trial)
        if L.shape[0] == p:
            logdet = logdet_from_cholesky(L)
            trace, pen = smooth_and_penalty(S, trial, alpha)
            f_new = -logdet + trace + pen
            if f_new <= f + _SIGMA * step * delta:
                return True, step, f_new, L
            # Near the optimum the decrease (quadratic in the error) falls below the
            # rounding of f while the gap (linear in it) is still above its target:
            # a full step predicted to decrease f by less than its rounding is taken
            # when f does not measurably increase. The gap, computed after every
            # accepted step, stays the judge.
            noise = ROUNDING * (abs(f) + p)
            if step == 1.0 and -delta <= noise and f_new <= f + noise:
                return True, step, f_new, L
        step *= 0.5
    return False, step, f_new, np.empty((0, 0))


@njit(cache=True, nogil=True)
def _quic_step(S, theta, W, alpha, f, n_iter, ws, counts, cg_rtol, double, exact_face,
               slow_run, stalled_rtol):
    """One QUIC iteration (coordinate-descent direction, Armijo search) into ``ws.trial``.

    When the direction's sign pattern has few zeros, the model is also minimised
    exactly on that face (see ``_dense_newton``), and the better of the two
    directions (by the model's value) is taken.

    The sweeps run in single precision, in double with ``double`` (see
    ``_coordinate_descent``). With ``exact_face``, a sparse face's exact minimiser is
    tried too (``free_face_newton_direction``); also when the sweeps stall after
    ``slow_run`` (the steps in a row that did not halve the gap) reached
    ``_STALLED_STEPS``, its CG then solved to ``stalled_rtol``. ``ws``'s ``misses``
    holds the back-offs: ``[0]`` face steps lost in a row, ``[1]`` iterations left
    without one, ``[2]`` whether the last one won, ``[3]``, ``[4]`` the same two counts
    for the stalled sweeps' exact step.

    Returns ``(status, step, delta, f_new, L)``; status is 0 when a step was accepted,
    ``L`` the Cholesky factor of the accepted point.
    """
    D, U32, trial, u32, free_i, free_j, D_face, misses, W32, U64, u64, zero_i, zero_j = ws
    p = S.shape[0]
    if not double:
        for i in range(p):
            for j in range(p):
                W32[i, j] = W[i, j]
    n_free = _free_set(S, theta, W, alpha, free_i, free_j)
    D[:, :] = 0.0
    # While the exact face step wins, the sweeps only need to find the face.
    sweeps = _FACE_SWEEPS if misses[2] == 1 else _n_sweeps(n_iter)
    if double:
        done, moved = coordinate_descent(S, W, W, theta, alpha, free_i, free_j, n_free, sweeps,
                                         D, U64, u64, False)
    else:
        done, moved = coordinate_descent(S, W, W32, theta, alpha, free_i, free_j, n_free, sweeps,
                                         D, U32, u32, False)
    counts[2] += done
    # Many sweeps still moving the direction by a few per cent after a step that did not
    # halve the gap: coordinate descent has stalled on an ill-conditioned W (see above).
    # After m such exact steps that lost (or whose CG failed) in a row, the next 2**m
    # stalls do without.
    stalled = (slow_run >= _STALLED_STEPS and done >= _STALLED_SWEEPS and moved > _STALLED_MOVE
               and not exact_face)
    if stalled and misses[4] > 0:
        misses[4] -= 1
        stalled = False
    limit = _dense_limit(p)
    if _median_vif(theta, W) > _VIF_WIDE_FACE:
        limit = max(limit, n_free - p)
    # The face's Schur system pays only when the face is right: after m refinements
    # that lost in a row, the next 2**m iterations do without (backoff).
    if misses[1] > 0:
        misses[1] -= 1
    else:
        nz, cg = face_newton_direction(S, theta, W, alpha, D, zero_i, zero_j, limit, D_face,
                                       cg_rtol)
        counts[3] += cg
        if nz > 0 and cg == 0:
            count_factorization(counts, float(nz) ** 3 / 3.0)
        if nz >= 0:
            if model_value(S, theta, W, alpha, D_face) < model_value(S, theta, W, alpha, D):
                D[:, :] = D_face
                # The face was guessed by a few sweeps: sweeps from the exact face step
                # let entries leave or join it (the model only decreases).
                if double:
                    counts[2] += coordinate_descent(S, W, W, theta, alpha, free_i, free_j,
                                                    n_free, _FACE_SWEEPS, D, U64, u64, True)[0]
                else:
                    counts[2] += coordinate_descent(S, W, W32, theta, alpha, free_i, free_j,
                                                    n_free, _FACE_SWEEPS, D, U32, u32, True)[0]
                misses[0] = 0
                misses[2] = 1
            else:
                misses[0] += 1
                misses[2] = 0
                misses[1] = 2 ** misses[0]
        else:
            # The face grew past the limit: full sweeps again (two would only guess it).
            misses[2] = 0
            if exact_face or stalled:
                # The sweeps' 1 % direction on a sparse face: the exact one by CG too.
                _sparse_face_step(S, theta, W, alpha, D, D_face, trial,
                                  stalled_rtol if stalled else cg_rtol, counts, misses, stalled)
    delta = _descent_bound(S, W, theta, D, alpha)
    # On an ill-conditioned problem (n < p) the predicted decrease of a last Newton step
    # can fall below the rounding of its own sum while the gap is still above a tight
    # target (measured: 5e-9 against 4e-9, with NumPy 2.5): its sign is then rounding. The
    # step is still tried, and taken only if f does not measurably increase (see
    # _line_search); the gap after it stays the judge.
    if not (delta < 0.0 or (delta <= ROUNDING * (abs(f) + p) and _nonzero(D))):
        return STATUS_NO_DESCENT, 0.0, delta, f, np.empty((0, 0))
    accepted, step, f_new, L = _line_search(S, theta, D, alpha, f, delta, trial, counts)
    if not accepted:
        return STATUS_LINE_SEARCH, step, delta, f, L
    return 0, step, delta, f_new, L


@njit(cache=True, nogil=True)
def _sparse_face_step(S, theta, W, alpha, D, D_face, scratch, cg_rtol, counts, misses,
                      stalled):
    """Into ``D``, the best by the model on the path from ``D`` to the exact minimiser on
    its face (``free_face_newton_direction``, ``projected_path_step``), if better; for
    ``stalled`` sweeps, the back-off counts of ``_quic_step`` are kept in ``misses``."""
    cg = free_face_newton_direction(S, theta, W, alpha, D, D_face, cg_rtol)
    won = False
    if cg >= 0:
        counts[3] += cg
        won = projected_path_step(S, theta, W, alpha, D, D_face, scratch)
    if stalled:
        misses[3] = 0 if won else misses[3] + 1
        misses[4] = 0 if won else 2 ** misses[3]


@njit(cache=True, nogil=True)
def _nonzero(D):
    """Whether the direction ``D`` moves at all."""
    for value in D.ravel():
        if value != 0.0:
            return True
    return False


@njit(cache=True, nogil=True)
def _median_vif(theta, W):
    """Median over regions of ``Theta_ii W_ii = 1 / (1 - R_i**2)``, the variance inflation
    of region ``i`` in the model (``R_i**2``: the share of its variance the others explain)."""
    p = theta.shape[0]
    vif = np.empty(p)
    for i in range(p):
        vif[i] = theta[i, i] * W[i, i]
    return np.median(vif)


@njit(cache=True, nogil=True)
def _dense_limit(p):
    """Largest zero set for which the exact face step is tried (its Schur system is
    solved by CG past ``min(300, 2 p)`` pairs, see ``_dense_newton``)."""
    return max(_DENSE_MIN, int(_DENSE_FRACTION * p * p))


@njit(cache=True, nogil=True)
def _quic_block(S, theta, W, alpha, target_gap, max_iter, counts, known, logdet, S_test,
                floor, spread):
    """QUIC on one connected block, with exact orthant Newton steps when it is dense.

    ``theta`` holds a positive definite starting point on entry (replaced by
    the diagonal start if it is not) and the solution on exit; ``W`` receives
    ``inv(theta)`` (with ``known``, it holds it on entry, and ``logdet`` is
    ``log det theta``: see ``_start``). ``counts[0]`` accumulates Cholesky
    factorisations, ``counts[1]`` their cost in units of q**3, ``counts[2]`` the
    coordinate-descent sweeps and ``counts[3]`` the conjugate-gradient iterations
    of the face steps. With a finite ``floor`` (the block is the whole problem), the
    solve stops early, with ``STATUS_PRUNED``, once the held-out score under
    ``S_test`` cannot reach ``floor`` (see ``_pruning.prunable``).

    Returns ``(n_iter, gap, objective, status, logdet)``.
    """
    p = S.shape[0]
    work = np.empty((p, p))
    gap_ws = gap_workspace(p)
    fp3 = float(p) ** 3
    pruning = floor > -np.inf
    f, logdet = _start(S, theta, W, alpha, counts, known, logdet)
    # The start's inverse (a solution at a larger alpha) gives a positive definite dual
    # point, the anchor of the pruning's gap far from the optimum (see _pruning).
    anchor = np.empty((p, p) if pruning else (1, 1))
    has_anchor = pruning and anchor_dual_point(S, W, alpha, anchor)
    gap, factorised = certified_gap(S, theta, W, alpha, f, target_gap, work, gap_ws)
    if factorised:
        count_factorization(counts, fp3)
    n_max = p * (p + 1) // 2
    # The sweeps' single-precision rows padded with zeros (see padded_width).
    width = padded_width(p)
    ws = (np.zeros((p, p)), np.zeros((p, width), np.float32), np.empty((p, p)),
          np.zeros(width, np.float32), np.empty(n_max, np.int64), np.empty(n_max, np.int64),
          np.empty((p, p)), np.zeros(5, np.int64), np.zeros((p, width), np.float32),
          np.empty((p, p)), np.empty(p), np.empty(n_max, np.int64), np.empty(n_max, np.int64))
    status = STATUS_CONVERGED
    n_iter = 0
    # Steps taken at the rounding floor of their predicted decrease that did not halve the
    # gap: after three, no further progress is possible.
    stalls = 0
    # The last step did not halve the gap (see _dense_newton on when the exact step pays).
    slow_run = 0
    # The stalled sweeps' exact step solves its face loosely only for a loose target (fold
    # fits): at a tight one the looser directions stopped more fits at the rounding floor
    # (3 of 48 against 1 of 48, fewer volumes than regions with a global signal).
    stalled_rtol = _STALLED_CG_RTOL if target_gap > _TIGHT * p else CG_RTOL_FAR
    while gap > target_gap:
        if n_iter >= max_iter:
            status = STATUS_MAX_ITER
            break
        n_iter += 1
        # Inexact face steps and single-precision sweeps, except near a tight target (see
        # _dense_newton, _coordinate_descent): there an inexact step can fail to descend at
        # the rounding level.
        near = target_gap <= _TIGHT * p and gap <= _NEAR * target_gap
        cg_rtol = CG_RTOL_NEAR if near else CG_RTOL_FAR
        status, step, delta, f_new, L = _quic_step(S, theta, W, alpha, f, n_iter, ws, counts,
                                                   cg_rtol, near, near and slow_run > 0, slow_run,
                                                   stalled_rtol)
        if status != 0:
            break
        theta[:, :] = ws[2]
        f = f_new
        logdet = logdet_from_cholesky(L)
        _set_inverse(theta, L, W)
        count_factorization(counts, fp3)
        previous = gap
        gap, factorised = certified_gap(S, theta, W, alpha, f, target_gap, work, gap_ws)
        if factorised:
            count_factorization(counts, fp3)
        slow_run = 0 if gap < 0.5 * previous else slow_run + 1
        if not delta < -ROUNDING * (abs(f) + p) and not gap < 0.5 * previous:
            stalls += 1
            if stalls >= 3:
                status = STATUS_NO_DESCENT
                break
        if gap > target_gap and pruning:
            pruned, gap, n_fact, has_anchor = prunable(S, theta, W, alpha, f, logdet, gap,
                                                       S_test, floor, spread, work, anchor,
                                                       has_anchor)
            for _ in range(n_fact):
                count_factorization(counts, fp3)
            factorised = factorised or n_fact > 0
            if pruned:
                return n_iter, gap, f, STATUS_PRUNED, logdet
    if (status == STATUS_NO_DESCENT or status == STATUS_LINE_SEARCH) and gap > target_gap:
        # Stopped at the rounding floor above the target: exact steps on the support,
        # judged by the gap (see _endgame).
        f, gap, new_logdet, new_factorised, steps = certified_support_steps(
            S, theta, W, alpha, f, gap, target_gap, work, gap_ws, counts)
        if steps > 0:
            n_iter += steps
            logdet = new_logdet
            factorised = new_factorised
    if gap > target_gap and not factorised:
        # Stopping unconverged: report the factorised gap when it is the smaller bound.
        count_factorization(counts, fp3)
        exact = factorised_gap(S, W, alpha, f, work)
        if exact < gap:
            gap = exact
    if gap <= target_gap:
        status = STATUS_CONVERGED
    return n_iter, gap, f, status, logdet


@njit(cache=True, nogil=True)
def solve_screened(S, alpha, theta_init, use_init, tol, max_iter, screen, w_init,
                   logdet_init, use_w, S_test, floor, spread):
    """Solve the graphical lasso, block by block.

    Long function: the block loop gathers, solves and scatters each block in place.

    Parameters
    ----------
    S : (p, p) float64, C-contiguous, symmetric PSD with a positive diagonal.
    alpha : float > 0.
    theta_init : (p, p) float64 warm start (read only where ``use_init``).
    use_init : bool.
    tol : float; a block of size q stops when its duality gap is <= tol * q.
    max_iter : int, Newton iterations per block.
    screen : bool; when False the whole matrix is one block.
    w_init : (p, p) float64, ``inv(theta_init)`` (read only where ``use_w``).
    logdet_init : (p,) float64, ``log det theta_init`` split over the regions as
        returned in ``logdet_rows`` (read only where ``use_w``).
    use_w : bool; the warm start is a solution of this solver on the same ``S``
        at this or a larger alpha (so block diagonal on this alpha's blocks):
        no factorisation is needed to start.
    S_test : (p, p) float64, a held-out covariance (read only where ``floor`` is finite).
    floor : float; when finite and the problem is a single block, stop early
        (status 4) once the held-out score under ``S_test`` cannot reach it
        (``spread`` times the root of the gap bounds the score's error).

    Returns
    -------
    theta, W, n_iter (max over blocks), gap (sum over blocks), objective,
    status (worst over blocks), n_components, counts (factorisations, their cost / p**3,
    coordinate-descent sweeps, conjugate-gradient iterations), logdet_rows (each block's
    ``log det`` stored at its first region, zero elsewhere: the sum over any union of
    blocks is that union's ``log det``).
    """
    p = S.shape[0]
    theta = np.zeros((p, p))
    W = np.zeros((p, p))
    logdet_rows = np.zeros(p)
    counts = np.zeros(4)
    if screen:
        labels = components(S, alpha)
    else:
        labels = np.zeros(p, np.int64)
    known = use_init and use_w and warm_inverse_usable(theta_init, labels)
    order = np.argsort(labels, kind="mergesort")
    n_iter = 0
    gap = 0.0
    objective = 0.0
    status = 0
    n_components = 0
    start = 0
    while start < p:
        stop = start + 1
        while stop < p and labels[order[stop]] == labels[order[start]]:
            stop += 1
        q = stop - start
        n_components += 1
        if q == 1:
            i = order[start]
            theta[i, i] = 1.0 / S[i, i]
            W[i, i] = S[i, i]
            objective += np.log(S[i, i]) + 1.0
            logdet_rows[i] = -np.log(S[i, i])
        else:
            idx = order[start:stop].copy()
            idx.sort()
            S_b = np.empty((q, q))
            th_b = np.zeros((q, q))
            W_b = np.empty((q, q))
            logdet_b = 0.0
            for a in range(q):
                for b in range(q):
                    S_b[a, b] = S[idx[a], idx[b]]
            if use_init:
                for a in range(q):
                    for b in range(q):
                        th_b[a, b] = theta_init[idx[a], idx[b]]
            else:
                for a in range(q):
                    th_b[a, a] = 1.0 / S_b[a, a]
            if known:
                for a in range(q):
                    logdet_b += logdet_init[idx[a]]
                    for b in range(q):
                        W_b[a, b] = w_init[idx[a], idx[b]]
            sub_counts = np.zeros(4)
            # Pruning needs the whole problem's score: a single block only.
            it, g, f, st, logdet_b = _quic_block(S_b, th_b, W_b, alpha, tol * q, max_iter,
                                                 sub_counts, known, logdet_b, S_test,
                                                 floor if q == p else -np.inf, spread)
            counts[0] += sub_counts[0]
            counts[1] += sub_counts[1] / float(p) ** 3
            counts[2] += sub_counts[2]
            counts[3] += sub_counts[3]
            if it > n_iter:
                n_iter = it
            gap += g
            objective += f
            logdet_rows[idx[0]] = logdet_b
            if st > status:
                status = st
            for a in range(q):
                for b in range(q):
                    theta[idx[a], idx[b]] = th_b[a, b]
                    W[idx[a], idx[b]] = W_b[a, b]
        start = stop
    return theta, W, n_iter, gap, objective, status, n_components, counts, logdet_rows


@njit(cache=True, nogil=True)
def objective(S, theta, alpha):
    """``-log det Theta + tr(S Theta) + alpha * sum_{i != j} |Theta_ij|`` (inf if not PD)."""
    L = cholesky_or_empty(theta)
    if L.shape[0] != theta.shape[0]:
        return np.inf
    trace, pen = smooth_and_penalty(S, theta, alpha)
    return -logdet_from_cholesky(L) + trace + pen
