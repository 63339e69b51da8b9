"""Plotting speed and memory: sparse-connectome vs nilearn, side by side.

Each case runs in a fresh Python process per library (so that peak memory,
``ru_maxrss``, is that case's alone); times are the median of 3 runs after one
warm-up call, and the first (cold) call is shown apart. The machine may be
shared: timings are noisy.

Usage: ``python benchmarks/bench_plotting.py``
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CASES = {
    "plot_matrix 39": ("matrix", 39),
    "plot_matrix 400": ("matrix", 400),
    "plot_connectome 39 80%": ("connectome", 39),
    "plot_connectome 400 99%": ("connectome", 400),
    "view_connectome 39 80%": ("view", 39),
}

CHILD = textwrap.dedent("""
    import json, resource, statistics, sys, tempfile, time, warnings, os
    warnings.simplefilter("ignore")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    lib, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if lib == "ours":
        from sparse_connectome import plotting
    else:
        from nilearn import plotting
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)); a = (a + a.T) / 2
    coords = rng.uniform(-60, 60, size=(n, 3))
    labels = [f"region {i}" for i in range(n)]
    tmp = tempfile.mkdtemp()
    def run():
        if kind == "matrix":
            plotting.plot_matrix(a, labels=labels, figure=(9, 7), vmin=-1, vmax=1)
            plt.gcf().savefig(os.path.join(tmp, "m.png"), dpi=100)
        elif kind == "connectome":
            plotting.plot_connectome(a, coords, edge_threshold="80%" if n < 100 else "99%",
                                     output_file=os.path.join(tmp, "c.png"))
        else:
            view = plotting.view_connectome(a, coords, edge_threshold="80%")
            view.save_as_html(os.path.join(tmp, "v.html"))
        plt.close("all")
    t0 = time.perf_counter(); run(); cold = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    size = 0
    for name in os.listdir(tmp):
        size += os.path.getsize(os.path.join(tmp, name))
    print(json.dumps({"cold": cold, "warm": statistics.median(times),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "bytes": size}))
""")


def measure(lib: str, kind: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, lib, kind, str(n)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    header = (f"{'case':<26} {'ours s':>8} {'nilearn s':>10} {'ratio':>6} | {'cold ours':>9} "
              f"{'cold nl':>8} | {'MB ours':>8} {'MB nl':>7} {'ratio':>6} | {'file ours':>10} "
              f"{'file nl':>10}")
    print(header)
    print("-" * len(header))
    for name, (kind, n) in CASES.items():
        ours, ref = measure("ours", kind, n), measure("nilearn", kind, n)
        print(f"{name:<26} {ours['warm']:8.3f} {ref['warm']:10.3f} "
              f"{ours['warm'] / ref['warm']:6.2f} | {ours['cold']:9.3f} {ref['cold']:8.3f} | "
              f"{ours['maxrss_mb']:8.0f} {ref['maxrss_mb']:7.0f} "
              f"{ours['maxrss_mb'] / ref['maxrss_mb']:6.2f} | {ours['bytes'] / 1e6:9.2f}M "
              f"{ref['bytes'] / 1e6:9.2f}M")
    print("ratio = ours / nilearn (below 1: ours is faster or smaller)")


if __name__ == "__main__":
    main()
