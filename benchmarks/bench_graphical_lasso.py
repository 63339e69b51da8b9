"""GraphicalLassoCV: sparse-connectome against scikit-learn, side by side.

Each fit runs in a fresh subprocess (imports and, for ours, loading or
compiling the numba kernels are part of the first fit), both estimators at
their defaults: the same CV (5 contiguous folds, 4 alphas, 4 refinements,
max_iter=100); scikit-learn's tol=1e-4 on its gap; ours ranks the alphas with
fold fits to a gap of 1e-4 * p (polished to 1e-6 * p near the best) and
certifies its final fit to 1e-10 * p. Printed per problem size:

* wall time of the first fit in a fresh process (``first``), of a second fit
  in the same process (``warm``: no import, no compile; the best of three fits
  up to 100 regions, on both sides), of the import, and
  the ratios scikit-learn / ours (``+imp``: import + first fit; ``first``;
  ``warm``), then the CPU time (process time) of our first and warm fits and the
  warm ratio in CPU time (``cpu``; robust to other jobs on a shared machine);
* peak resident memory of each process (VmHWM, MB);
* whether each converged (scikit-learn: a ConvergenceWarning was raised or
  not; ours: the certified duality gap of every fit), the chosen alphas, and
  the objective difference at scikit-learn's chosen alpha
  ``f(scikit-learn's precision) - f(ours)`` (positive: ours is better);
* the number of factorisations our CV performs against the fewest a CV over
  the same grid needs (one per fold fit plus the final fit), their cost in
  units of p**3, and the other work: coordinate-descent sweeps and
  conjugate-gradient iterations of the Newton directions.

Usage::

    python benchmarks/bench_graphical_lasso.py [--sizes 39 100 200 400 1000 400x168 1000x300]
           [--sklearn-max-p 200] [--compile] [--demo] [--n-jobs 2]
           [--sklearn-blas-threads 1] [--first-fit-parts]

``--n-jobs`` runs our folds in that many threads (the kernels release the GIL).
``--sklearn-blas-threads`` sets scikit-learn's BLAS threads: at its default (all
cores) its OpenBLAS threads can spin on small products, so that one thread is
its fastest setting on a 2-core machine; report both.

``--global-signal 100x300 150x290`` adds fMRI-like problems whose regions share a
global signal (no global signal regression): ill-conditioned, where coordinate
descent stalls (see ``_quic``); scikit-learn's defaults often do not converge there.

``--first-fit-parts`` times the stages of our first fit in a fresh process, each
on its own: the package import, numba's import, scipy.linalg's, the solver's modules,
loading the cached kernels, then the CV fit itself (the floor a JIT sets on a
first fit).

``--compile`` also measures the one-time numba compilation (fresh cache dir).
The machine may be shared: timings are noisy, repeat to confirm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

SIZES = {39: 168, 100: 300, 200: 600, 400: 800, 1000: 1200}

CHILD = textwrap.dedent(r"""
    import json, resource, sys, time, warnings
    t0 = time.perf_counter()
    import numpy as np
    which, p, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    n_jobs = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    if which == "ours":
        from sparse_connectome.covariance import GraphicalLassoCV
    else:
        from sklearn.covariance import GraphicalLassoCV
    t_import = time.perf_counter() - t0

    if len(sys.argv) > 5 and sys.argv[5]:  # given data (the demo subject's region signals)
        X = np.load(sys.argv[5])
    else:
        sys.path.insert(0, sys.argv[7])
        from _problems import synthetic_problem
        X = synthetic_problem(p, n)

    def peak_mb():
        # VmHWM is reset by exec, unlike ru_maxrss, which a forked child inherits
        # from its parent.
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def fit():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t, c = time.perf_counter(), time.process_time()
            est = (GraphicalLassoCV(n_jobs=n_jobs) if n_jobs > 1 else GraphicalLassoCV()).fit(X)
            dt, dc = time.perf_counter() - t, time.process_time() - c
        warned = any("Convergence" in type(w.message).__name__
                     or "converge" in str(w.message) for w in caught)
        return est, dt, warned, dc

    est, t_first, warned, c_first = fit()
    # A second fit only where it takes seconds (not at 1000 regions, not on short runs).
    twice = p <= 400 and n >= p
    est2, t_warm, _, c_warm = fit() if twice else (est, float("nan"), None, float("nan"))
    # Small problems take tens of milliseconds (ours) and are at the mercy of the
    # machine's noise: the best of three warm fits, on both sides.
    for _ in range(2 if twice and p <= 100 else 0):
        _, t_more, _, c_more = fit()
        t_warm, c_warm = min(t_warm, t_more), min(c_warm, c_more)
    res = {"t_import": t_import, "t_first": t_first, "t_warm": t_warm,
           "c_first": c_first, "c_warm": c_warm,
           "t_total": time.perf_counter() - t0, "warned": warned,
           "alpha": float(est.alpha_),
           "maxrss_mb": peak_mb()}
    if which == "ours":
        res.update(converged=bool(est.converged_ and est.cv_converged_),
                   gap=float(est.duality_gap_), stats=est.solver_stats_)
    np.save(out + ".prec.npy", est.precision_)
    np.save(out + ".X.npy", X)
    with open(out, "w") as f:
        json.dump(res, f)
""")


# Where a first fit's time goes in a fresh process (ours, the seed's size): each stage
# timed on its own, in the order the first fit meets them.
FIRST_FIT_PARTS = textwrap.dedent(r"""
    import json, sys, time
    stages = {}
    t = time.perf_counter()
    import numpy as np
    from sparse_connectome.covariance import GraphicalLassoCV
    stages["import sparse_connectome.covariance"] = time.perf_counter() - t
    sys.path.insert(0, sys.argv[2])
    from _problems import synthetic_problem
    X = synthetic_problem(39, 168)
    t = time.perf_counter()
    import numba  # noqa: F401
    stages["import numba"] = time.perf_counter() - t
    t = time.perf_counter()
    import scipy.linalg  # noqa: F401  (numba's and our LAPACK bindings)
    stages["import scipy.linalg"] = time.perf_counter() - t
    t = time.perf_counter()
    from sparse_connectome.covariance import _quic  # noqa: F401
    stages["import the solver's modules"] = time.perf_counter() - t
    t = time.perf_counter()
    from sparse_connectome.covariance import graphical_lasso
    S = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    graphical_lasso(S, 0.1)  # loads the kernels from numba's cache (no compilation)
    stages["load the cached kernels (numba's registries, LLVM objects)"] = time.perf_counter() - t
    t = time.perf_counter()
    GraphicalLassoCV(n_jobs=int(sys.argv[3])).fit(X)
    stages["the first CV fit, everything loaded"] = time.perf_counter() - t
    with open(sys.argv[1], "w") as f:
        json.dump(stages, f)
""")


def first_fit_parts(n_jobs: int) -> dict[str, float]:
    """The stages of ``FIRST_FIT_PARTS`` (seconds), in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "parts.json")
        subprocess.run([sys.executable, "-c", FIRST_FIT_PARTS, out,
                        os.path.dirname(os.path.abspath(__file__)), str(n_jobs)],
                       check=True, capture_output=True, text=True)
        with open(out) as f:
            return json.load(f)


def run_child(which: str, p: int, n: int, env: dict | None = None,
              data: str | None = None, n_jobs: int = 1, cap: float | None = None) -> dict | None:
    """The child's results, or None when it ran past ``cap`` seconds (then stopped)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "res.json")
        cmd = [sys.executable, "-c", CHILD, which, str(p), str(n), out, data or "", str(n_jobs),
               os.path.dirname(os.path.abspath(__file__))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=cap)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0:
            raise RuntimeError(f"{which} p={p} failed:\n{proc.stderr[-3000:]}")
        with open(out) as f:
            res = json.load(f)
        res["precision"] = np.load(out + ".prec.npy")
        res["X"] = np.load(out + ".X.npy")
    return res


def objective_gap(X: np.ndarray, alpha: float, precision: np.ndarray) -> float:
    """f(precision) - f(our exact solution) at alpha (positive: precision is worse)."""
    from sparse_connectome.covariance import empirical_covariance, graphical_lasso, graphical_lasso_objective

    S = empirical_covariance(X)
    _, ours, _, _ = graphical_lasso(S, alpha, tol=1e-10, max_iter=500)
    return graphical_lasso_objective(S, precision, alpha) - graphical_lasso_objective(S, ours, alpha)


def _size(text: str) -> tuple[int, int]:
    """``"400"`` -> (400, 800) (the default volumes), ``"400x168"`` -> (400, 168)."""
    p, _, n = text.partition("x")
    return int(p), int(n) if n else SIZES.get(int(p), int(1.2 * int(p)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["39", "100", "200", "400", "1000"],
                        help="problem sizes: P (regions, with the default number of volumes) or "
                             "PxN, e.g. 400x168 (Schaefer-400 with a short run: fewer volumes "
                             "than regions, fitted once)")
    parser.add_argument("--sklearn-max-p", type=int, default=200)
    parser.add_argument("--sklearn-cap", type=float, default=None,
                        help="above --sklearn-max-p, run scikit-learn anyway, stopped after this "
                             "many seconds (printed as '> cap')")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="threads for our folds (scikit-learn stays at its default)")
    parser.add_argument("--sklearn-blas-threads", type=int, default=None,
                        help="BLAS threads of scikit-learn's process (default: its own default, "
                             "all cores). On a 2-core machine its OpenBLAS threads can spin on the "
                             "small products: 1 is then its fastest setting, the fairer baseline")
    parser.add_argument("--compile", action="store_true",
                        help="also time a first fit with an empty numba cache")
    parser.add_argument("--first-fit-parts", action="store_true",
                        help="also time, in a fresh process, the stages of our first fit at 39 "
                             "regions: imports, loading the cached kernels, the fit itself")
    parser.add_argument("--global-signal", nargs="*", default=[], metavar="PxN",
                        help="also run on fMRI-like signals that share a global signal (no "
                             "global signal regression; ill-conditioned), e.g. 100x300 150x290")
    parser.add_argument("--demo", action="store_true",
                        help="also run on the demo subject's region signals (seed pipeline: "
                             "load_demo + nilearn's NiftiMapsMasker)")
    args = parser.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    print("GraphicalLassoCV, 5 folds x 4 alphas x 4 refinements; fresh process per run; "
          "times in s (machine may be shared: noisy)\n")
    if args.compile:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            r = run_child("ours", 39, SIZES[39], env)
            print(f"numba compile (empty cache): first fit {r['t_first']:.2f} s, "
                  f"import {r['t_import']:.2f} s, second fit {r['t_warm']:.3f} s\n")
    if args.first_fit_parts:
        parts = first_fit_parts(args.n_jobs)
        print("Our first fit at 39 x 168 in a fresh process, stage by stage (s):")
        for stage, seconds in parts.items():
            print(f"  {seconds:7.3f}  {stage}")
        print(f"  {sum(parts.values()):7.3f}  in all\n")
    header = (f"{'p':>5} {'n':>5} | {'ours first':>10} {'warm':>7} {'import':>6} {'MB':>5} | "
              f"{'sklearn':>8} {'warm':>7} {'import':>6} {'MB':>5} | {'ratio +imp':>10} {'first':>6} "
              f"{'warm':>6} | cpu first/warm {'ratio':>5} | conv ours/sk | alpha ours / sk | dobj@sk "
              f"| fact (min)")
    jobs = [_size(text) + (None, None) for text in args.sizes]
    sk_env = None
    if args.sklearn_blas_threads:
        sk_env = dict(os.environ, **{name: str(args.sklearn_blas_threads) for name in (
            "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        print(f"scikit-learn with {args.sklearn_blas_threads} BLAS thread(s)\n")
    tmpdir = tempfile.mkdtemp()
    if args.demo:
        from nilearn.maskers import NiftiMapsMasker

        from sparse_connectome.datasets import load_demo

        demo = load_demo(data_dir=os.path.join(tmpdir, "demo"))
        ts = NiftiMapsMasker(demo.maps, standardize="zscore_sample").fit_transform(
            demo.func[0], confounds=demo.confounds[0])
        np.save(os.path.join(tmpdir, "demo.npy"), ts)
        jobs.insert(0, (ts.shape[1], ts.shape[0], os.path.join(tmpdir, "demo.npy"),
                        "demo subject (seed pipeline):"))
    for text in args.global_signal:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _problems import global_signal_problem

        p, n = _size(text)
        path = os.path.join(tmpdir, f"global_{p}x{n}.npy")
        np.save(path, global_signal_problem(p, p, n))
        jobs.append((p, n, path, "fMRI-like signals sharing a global signal (no GSR):"))
    print(header)
    print("-" * len(header))
    for p, n, data, label in jobs:
        ours = run_child("ours", p, n, data=data, n_jobs=args.n_jobs)
        stats = ours["stats"]
        fact = (f"{stats['n_factorizations']} ({stats['min_factorizations']}), "
                f"cost {stats['factorization_cost']:.0f} p^3, {stats['n_sweeps']} sweeps, "
                f"{stats['n_cg']} cg")
        if label:
            print(label)
        if p <= args.sklearn_max_p:
            sk = run_child("sklearn", p, n, env=sk_env, data=data)
            dobj = objective_gap(sk["X"], sk["alpha"], sk["precision"])
            print(f"{p:>5} {n:>5} | {ours['t_first']:>10.3f} {ours['t_warm']:>7.3f} "
                  f"{ours['t_import']:>6.2f} {ours['maxrss_mb']:>5.0f} | {sk['t_first']:>8.2f} "
                  f"{sk['t_warm']:>7.2f} {sk['t_import']:>6.2f} {sk['maxrss_mb']:>5.0f} | "
                  f"{(sk['t_first'] + sk['t_import']) / (ours['t_first'] + ours['t_import']):>9.1f}x "
                  f"{sk['t_first'] / ours['t_first']:>5.1f}x {sk['t_warm'] / ours['t_warm']:>5.1f}x | "
                  f"{ours['c_first']:>6.3f} {ours['c_warm']:>6.3f} "
                  f"{sk['c_warm'] / ours['c_warm']:>5.1f}x | "
                  f"{'yes' if ours['converged'] else 'NO':>4}/"
                  f"{'no (warned)' if sk['warned'] else 'yes':<11} | "
                  f"{ours['alpha']:.4g} / {sk['alpha']:.4g} | {dobj:+.2e} | {fact}")
        else:
            sk = (run_child("sklearn", p, n, env=sk_env, data=data, cap=args.sklearn_cap)
                  if args.sklearn_cap else None)
            capped = f"> {args.sklearn_cap:.0f}" if args.sklearn_cap and sk is None else "skipped"
            if sk is not None:
                capped = f"{sk['t_first']:.1f}"
            print(f"{p:>5} {n:>5} | {ours['t_first']:>10.3f} {ours['t_warm']:>7.3f} "
                  f"{ours['t_import']:>6.2f} {ours['maxrss_mb']:>5.0f} | {capped:>8} "
                  f"{'':>7} {'':>6} {'':>5} | {'':>10} {'':>6} {'':>6} | "
                  f"{ours['c_first']:>6.3f} {ours['c_warm']:>6.3f} {'':>5} | "
                  f"{'yes' if ours['converged'] else 'NO':>4}/{'-':<11} | {ours['alpha']:.4g} / - | "
                  f"{'':>8} | {fact}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
