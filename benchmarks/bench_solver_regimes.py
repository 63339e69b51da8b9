"""Which solver for which regime: the measurements behind ``docs/solver.md``.

The issue asked to study what the literature does for the graphical lasso at
scale and to choose per regime, measured. On the benchmark's synthetic problems
(``_problems.py``, as in ``bench_graphical_lasso.py``) this prints, on the full
data, at each alpha of the cross-validation's first grid (alpha_max down to
alpha_max / 100) and at the alpha the CV chooses:

* the solution's density (off-diagonal non-zeros over p(p-1)) and what the exact
  screening of Witten et al. / Mazumder & Hastie makes of the problem: the
  number of connected blocks of ``|S_ij| > alpha`` and the largest one;
* our solve to the CV's fold tolerance (gap <= 1e-4 * p) started cold (diagonal)
  and warm (from the previous alpha's solution, as a fold path does): time,
  Newton iterations, factorisations, coordinate-descent sweeps, CG iterations;
* SQUIC's premise (a sparse Cholesky factor of Theta): the factor's fill with a
  fill-reducing ordering (SuperLU in symmetric mode, minimum degree on A + A',
  no pivoting: the structure of the Cholesky factor), as a fraction of a dense
  triangle, and its time against LAPACK's dense Cholesky; then the inverse W
  (which QUIC's sweeps read) from the sparse factor against ``dpotri``;
* BigQUIC's premise (W too large to store, its columns recomputed by conjugate
  gradients on Theta when a block needs them): the memory of a dense W, and the
  CG iterations one column of W takes to 1e-8 (BigQUIC recomputes columns at every
  block sweep);
* the CV at one and at two threads (the folds' fits interleaved).

Usage::

    python benchmarks/bench_solver_regimes.py [--sizes 100 400 1000] [--no-cv]

Timings are the best of five (three for a CV) where they are below a second. The machine may be
shared: noisy.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from _problems import synthetic_problem

from sparse_connectome.covariance import (
    GraphicalLassoCV,
    alpha_max,
    empirical_covariance,
    graphical_lasso,
)

SIZES = {39: 168, 100: 300, 200: 600, 400: 800, 1000: 1200}


def best_time(function, repeats: int = 5) -> tuple[float, object]:
    """The fastest of ``repeats`` calls (one call when it takes over a second), and its result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best, result


def screening_blocks(S: np.ndarray, alpha: float) -> tuple[int, int]:
    """Number of connected components of ``|S_ij| > alpha`` and the largest one's size."""
    graph = scipy.sparse.csr_matrix(np.abs(S) > alpha)
    n_blocks, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    return n_blocks, int(np.bincount(labels).max())


def sparse_cholesky_figures(theta: np.ndarray) -> dict:
    """Fill and time of a sparse factorisation of ``theta`` against the dense one."""
    p = theta.shape[0]
    sparse = scipy.sparse.csc_matrix(np.where(theta != 0.0, theta, 0.0))
    options = {"SymmetricMode": True}

    def factor():
        return scipy.sparse.linalg.splu(sparse, permc_spec="MMD_AT_PLUS_A",
                                        diag_pivot_thresh=0.0, options=options)

    t_sparse, lu = best_time(factor)
    t_dense, chol = best_time(lambda: scipy.linalg.cholesky(theta, lower=True))
    t_inv_sparse, _ = best_time(lambda: lu.solve(np.eye(p)))
    t_inv_dense, _ = best_time(lambda: scipy.linalg.lapack.dpotri(chol, lower=1))
    return {"fill": lu.L.nnz / (p * (p + 1) / 2), "t_sparse": t_sparse, "t_dense": t_dense,
            "t_inv_sparse": t_inv_sparse, "t_inv_dense": t_inv_dense}


def cg_column_iterations(theta: np.ndarray) -> int:
    """CG iterations for one column of ``W = inv(theta)`` to a relative residual of 1e-8."""
    sparse = scipy.sparse.csr_matrix(np.where(theta != 0.0, theta, 0.0))
    rhs = np.zeros(theta.shape[0])
    rhs[0] = 1.0
    count = [0]

    def callback(_):
        count[0] += 1

    scipy.sparse.linalg.cg(sparse, rhs, rtol=1e-8, maxiter=10 * theta.shape[0], callback=callback)
    return count[0]


def solve_figures(S: np.ndarray, alpha: float, init: np.ndarray | None) -> tuple[float, dict]:
    """Time and solver record of one solve to the CV's fold tolerance."""
    def run():
        return graphical_lasso(S, alpha, tol=1e-4, max_iter=100, init=init, return_info=True)

    seconds, (_, precision, n_iter, _, info) = best_time(run)
    return seconds, {"precision": precision, "n_iter": n_iter, **info}


def study_size(p: int, n: int, run_cv: bool) -> None:
    X = synthetic_problem(p, n)
    S = empirical_covariance(X)
    top = alpha_max(S)
    grid = list(np.logspace(np.log10(top), np.log10(0.01 * top), 4)[1:])
    chosen = None
    if run_cv:
        t_cv1, cv1 = best_time(lambda: GraphicalLassoCV(n_jobs=1).fit(X), repeats=3)
        t_cv2, _ = best_time(lambda: GraphicalLassoCV(n_jobs=2).fit(X), repeats=3)
        chosen = float(cv1.alpha_)
    print(f"\np = {p}, n = {n}: alpha_max = {top:.4g}; dense W = {8 * p * p / 2**20:.1f} MiB")
    if run_cv:
        print(f"  CV: {t_cv1:.2f} s on 1 thread, {t_cv2:.2f} s on 2 threads "
              f"({t_cv1 / t_cv2:.2f}x); alpha_ = {chosen:.4g}")
    header = (f"  {'alpha':>9} {'density':>7} {'blocks':>6} {'largest':>7} | "
              f"{'cold s':>7} {'it':>3} {'fact':>4} {'sweeps':>6} {'cg':>4} | "
              f"{'warm s':>7} {'it':>3} {'fact':>4} {'sweeps':>6} {'cg':>4} | "
              f"{'fill':>5} {'chol sp/dense ms':>16} {'W sp/dense ms':>15} | {'cg/col':>6}")
    print(header)
    previous = None
    for alpha in sorted(grid + ([chosen] if chosen else []), reverse=True):
        n_blocks, largest = screening_blocks(S, alpha)
        t_cold, cold = solve_figures(S, alpha, None)
        t_warm, warm = solve_figures(S, alpha, previous)
        previous = warm["precision"]
        theta = cold["precision"]
        off = theta[~np.eye(p, dtype=bool)]
        density = float(np.mean(off != 0.0))
        chol = sparse_cholesky_figures(theta)
        cg_iters = cg_column_iterations(theta)
        mark = " (CV)" if chosen is not None and alpha == chosen else ""
        print(f"  {alpha:>9.4g} {density:>7.3f} {n_blocks:>6d} {largest:>7d} | "
              f"{t_cold:>7.3f} {cold['n_iter']:>3d} {cold['n_factorizations']:>4d} "
              f"{cold['n_sweeps']:>6d} {cold['n_cg']:>4d} | "
              f"{t_warm:>7.3f} {warm['n_iter']:>3d} {warm['n_factorizations']:>4d} "
              f"{warm['n_sweeps']:>6d} {warm['n_cg']:>4d} | "
              f"{chol['fill']:>5.2f} {1e3 * chol['t_sparse']:>7.1f}/{1e3 * chol['t_dense']:<8.1f} "
              f"{1e3 * chol['t_inv_sparse']:>7.1f}/{1e3 * chol['t_inv_dense']:<7.1f} | "
              f"{cg_iters:>6d}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 400, 1000])
    parser.add_argument("--no-cv", action="store_true", help="skip the CV timings")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    # Load the compiled kernels before timing.
    graphical_lasso(empirical_covariance(synthetic_problem(20, 60)), 0.1)
    for p in args.sizes:
        study_size(p, SIZES.get(p, int(1.2 * p)), not args.no_cv)


if __name__ == "__main__":
    main()
