"""Choosing the penalty for graph recovery: cross-validation, EBIC and StARS on ground truth.

For each problem with a known graph, every method fits the region signals and
its support (non-zero entries above the diagonal) is compared with the true
graph (``support_recovery``: precision, recall, F1). Printed per setting and
method: mean and standard deviation over seeds of precision, recall and F1, the
mean number of edges, the mean fit time and the mean of the per-problem time
ratio to ``GraphicalLassoCV`` (goals: EBIC <= 1x, StARS with 20 subsamples <= 4x),
and how many fits raised a ConvergenceWarning.

Problems:

* the demo subject (``load_demo(random_state=seed)``: 39 MSDL regions, 168
  volumes of simulated BOLD with motion, physiology and drift, cleaned by
  ``run_connectome``), one per seed;
* simulated region signals at p = 39, 100, 200 regions and n = p, 2p, 5p, 10p
  independent samples (``make_sparse_precision``: networks of 8 regions, edge
  probability 0.4 within a network and 1.5 / p between networks, partial
  correlations of 0.15 to 0.5 in magnitude, as in the demo: about 4 edges per
  region; ``sample_region_signals``).

Methods: ``GraphicalLassoCV()`` (defaults), ``GraphicalLassoEBIC(gamma=0, 0.5,
1)``, ``GraphicalLassoStARS(n_subsamples=20, beta=0.05, random_state=seed)``.
Every fit runs in this process after a warm-up fit (numba compilation is not
timed), one thread per BLAS call (the estimators' own setting), ``n_jobs=None``.

Usage::

    python benchmarks/bench_selection.py [--quick] [--seeds N] [--sizes 39 100 200]
           [--ratios 1 2 5 10] [--no-demo] [--no-sim]

``--quick``: 3 seeds, p in (39, 100), demo on 3 seeds. The machine may be
shared: timings are noisy, repeat to confirm.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections import defaultdict

import numpy as np

from sparse_connectome.connectome import support_recovery
from sparse_connectome.covariance import (
    GraphicalLassoCV,
    GraphicalLassoEBIC,
    GraphicalLassoStARS,
)
from sparse_connectome.errors import ConvergenceWarning

METHODS = ["CV", "EBIC g=0", "EBIC g=0.5", "EBIC g=1", "StARS"]


def make_estimators(seed: int) -> dict:
    return {
        "CV": GraphicalLassoCV(),
        "EBIC g=0": GraphicalLassoEBIC(gamma=0.0),
        "EBIC g=0.5": GraphicalLassoEBIC(gamma=0.5),
        "EBIC g=1": GraphicalLassoEBIC(gamma=1.0),
        "StARS": GraphicalLassoStARS(n_subsamples=20, beta=0.05, random_state=seed),
    }


def score_problem(X: np.ndarray, truth: np.ndarray, seed: int) -> dict:
    """Fit every method on X; precision, recall, F1, edges, time, warnings."""
    out = {}
    for name, est in make_estimators(seed).items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(X)
            elapsed = time.perf_counter() - start
        rec = support_recovery(est.precision_, truth)
        out[name] = dict(precision=rec.precision, recall=rec.recall, f1=rec.f1,
                         edges=rec.n_estimated_edges, time=elapsed,
                         warned=any(issubclass(w.category, ConvergenceWarning) for w in caught))
    for name in out:
        out[name]["ratio"] = out[name]["time"] / out["CV"]["time"]
    return out


def summarise(title: str, results: list[dict], n_true: float) -> None:
    print(f"\n{title}  ({len(results)} problems, {n_true:.0f} true edges on average)")
    print(f"  {'method':<11} {'precision':>13} {'recall':>13} {'F1':>13} {'edges':>7} "
          f"{'time s':>8} {'x CV':>6} {'warn':>5}")
    for name in METHODS:
        rows = defaultdict(list)
        for res in results:
            for key, value in res[name].items():
                rows[key].append(value)

        def ms(key: str, rows=rows) -> str:
            values = np.asarray(rows[key], dtype=float)
            return f"{values.mean():.3f}+-{values.std():.3f}"

        print(f"  {name:<11} {ms('precision'):>13} {ms('recall'):>13} {ms('f1'):>13} "
              f"{np.mean(rows['edges']):>7.1f} {np.mean(rows['time']):>8.3f} "
              f"{np.mean(rows['ratio']):>6.2f} {int(np.sum(rows['warned'])):>5}")


def demo_problems(seeds: list[int]):
    from sparse_connectome.datasets import load_demo
    from sparse_connectome.pipeline import run_connectome

    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            data = load_demo(random_state=seed, data_dir=f"{tmp}/{seed}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ts = run_connectome(data.func[0], data, data.confounds[0], verbose=0).time_series
            yield seed, ts, data.true_precision


def simulated_problem(p: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sparse_connectome.simulate import make_sparse_precision, sample_region_signals

    networks = [i // 8 for i in range(p)]
    truth = make_sparse_precision(p, networks, density_within=0.4, density_between=1.5 / p,
                                  partial_corr_range=(0.15, 0.5), random_state=seed)
    return sample_region_signals(truth, n, random_state=10_000 + seed), truth


def n_true_edges(truth: np.ndarray) -> int:
    return int(np.count_nonzero(np.triu(truth, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10, quick 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--ratios", type=float, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--no-sim", action="store_true")
    args = parser.parse_args()
    seeds = list(range(args.seeds if args.seeds else (3 if args.quick else 10)))
    sizes = args.sizes or ([39, 100] if args.quick else [39, 100, 200])

    # Warm-up: numba compilation is not timed.
    X, truth = simulated_problem(12, 60, 0)
    score_problem(X, truth, 0)

    if not args.no_demo:
        results, trues = [], []
        for seed, ts, truth in demo_problems(seeds):
            results.append(score_problem(ts, truth, seed))
            trues.append(n_true_edges(truth))
            f1 = {m: round(results[-1][m]["f1"], 3) for m in METHODS}
            print(f"  demo seed {seed}: F1 {f1}", flush=True)
        summarise(f"Demo subject, seeds {seeds[0]}-{seeds[-1]} (n = 168, p = 39)", results,
                  np.mean(trues))
    if not args.no_sim:
        for p in sizes:
            for ratio in args.ratios:
                n = int(round(ratio * p))
                results, trues = [], []
                for seed in seeds:
                    X, truth = simulated_problem(p, n, seed)
                    results.append(score_problem(X, truth, seed))
                    trues.append(n_true_edges(truth))
                summarise(f"Simulated p = {p}, n = {n} (n/p = {ratio:g})", results,
                          np.mean(trues))


if __name__ == "__main__":
    main()
