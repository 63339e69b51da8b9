"""The seed's whole flow on the demo subject: sparse-connectome against nilearn +
scikit-learn, side by side, each run in a fresh process (imports and figures
included). Prints wall time and peak memory of both and their ratios.

    python benchmarks/bench_end_to_end.py [--repeats 3]

Needs the test extras (nilearn, scikit-learn). The best of ``--repeats`` runs
is kept for time (the machine is noisy); peak memory is the maximum RSS of the
process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run_once(impl: str, args: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / "_seed_flow.py"), impl, *args],
                          capture_output=True, text=True, check=True)
    outer = time.perf_counter() - start
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = outer
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()

    from sparse_connectome.datasets import load_demo

    with tempfile.TemporaryDirectory() as tmp:
        demo = load_demo(data_dir=Path(tmp) / "data")
        coords = Path(tmp) / "coords.npy"
        np.save(coords, np.asarray(demo.region_coords))
        args = [str(demo.maps), str(demo.func[0]), str(demo.confounds[0]), str(coords), tmp]
        # One warm-up of ours so that numba's on-disk cache is filled, as it is
        # for any user after the first run.
        run_once("ours", args)
        results = {"ours": [], "reference": []}
        for _ in range(opts.repeats):
            for impl in ("reference", "ours"):
                results[impl].append(run_once(impl, args))

    best = {impl: min(runs, key=lambda r: r["process_seconds"]) for impl, runs in results.items()}
    peak = {impl: max(r["peak_mib"] for r in runs) for impl, runs in results.items()}
    print(f"{'':12s}{'wall s':>10s}{'peak MiB':>12s}{'alpha':>10s}")
    for impl in ("reference", "ours"):
        print(f"{impl:12s}{best[impl]['process_seconds']:10.2f}{peak[impl]:12.0f}"
              f"{best[impl]['alpha']:10.4f}")
    speedup = best["reference"]["process_seconds"] / best["ours"]["process_seconds"]
    mem_ratio = peak["ours"] / peak["reference"]
    print(f"speed-up (reference / ours wall time): {speedup:.2f}x   (goal >= 3x)")
    print(f"peak memory ratio (ours / reference): {mem_ratio:.2f}   (goal <= 0.5)")


if __name__ == "__main__":
    main()
