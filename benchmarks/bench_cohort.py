"""A cohort end to end: ``run_cohort`` on Dask against the seed's flow
(nilearn + scikit-learn) run by ``joblib.Parallel``, side by side on this
machine, plus the scheduler's overhead per subject (issue 10, "Measured by").

    python benchmarks/bench_cohort.py                 # 12 demo subjects, 200 tiny ones
    python benchmarks/bench_cohort.py --quick         # smoke test: 4 subjects, 40 tiny
    python benchmarks/bench_cohort.py --n-subjects 12 --overhead-subjects 200 \
        [--n-workers 2] [--repeats 1] [--skip-reference]

Needs the test extras (nilearn, scikit-learn, joblib) for the reference.

What runs, each configuration in a fresh process (``_cohort_seed_flow.py``) so
that imports count and memory is isolated, each into a fresh output folder:

* ours: ``pipeline.run_cohort(root, out, atlas=<the demo atlas>, n_workers=2,
  reports=False|True, verbose=0)``: a LocalCluster of 2 workers x 1 thread
  (its start-up included), per-subject BIDS derivatives, the group outputs.
* reference: per subject, nilearn ``NiftiMapsMasker(maps, standardize="zscore_sample",
  standardize_confounds=True)`` with the confounds of
  ``load_confounds_strategy(bold, "simple")`` (the same denoising as ours),
  scikit-learn ``GraphicalLassoCV().fit``, the matrices saved as TSV and, with
  figures, the seed's figures (``plot_matrix`` x2, ``plot_connectome`` x2,
  ``view_connectome`` saved as HTML), all by ``joblib.Parallel(n_jobs=2)``.

Throughput is subjects per minute over the wall time of the whole process
(imports, cluster or pool start-up, every subject). Peak memory per worker is
the largest, over subjects, of the worker's RSS sampled every 20 ms during the
subject's task (ours records it in the group table, ``peak_mb``; the reference
task samples itself the same way); the high-water mark (VmHWM) of the worker
processes over their whole life is printed beside it as a check. numba's
on-disk cache is filled by a warm-up run of ours on 2 subjects first, as it is
for any user after the first run.

Then one of our subjects is profiled alone (extraction, fit, report, files).
The scheduler's overhead comes from a cohort of tiny images (6x6x6x40, 5 maps)
written here in fMRIPrep layout, so that the tasks are short and the engine's
cost shows: overhead per subject = (wall time of the run_cohort call, cluster
start-up and group outputs included, - sum of the tasks' seconds / n_workers) / n_subjects. The start-up
and shut-down of a bare LocalCluster is measured apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FLOW = HERE / "_cohort_seed_flow.py"

GOAL_SPEED = 3.0
GOAL_MEMORY = 0.5


# --------------------------------------------------------------------------- running


def run_flow(impl: str, spec: dict, out: Path, reports: bool, n_workers: int,
             workdir: Path) -> dict:
    """One configuration in a fresh process; its JSON line plus the outer wall time."""
    spec_path = workdir / f"spec_{impl}_{int(reports)}_{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps(spec))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(FLOW), impl, str(spec_path), str(out),
                           str(int(reports)), str(n_workers)],
                          capture_output=True, text=True)
    outer = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"{impl} (figures {'on' if reports else 'off'}) failed with exit "
                         f"code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = outer
    result["task_peak_mb"] = max(t["peak_mb"] for t in result["tasks"])
    result["task_seconds"] = [t["seconds"] for t in result["tasks"]]
    return result


def worker_hwm(result: dict, impl: str) -> float:
    """Largest whole-life VmHWM among the worker processes (not nannies or trackers)."""
    peaks = []
    for item in result["descendants"].values():
        cmd = item["cmd"]
        if impl == "ours":
            # LocalCluster workers are spawned multiprocessing children of the nannies.
            is_worker = "multiprocessing" in cmd and "resource_tracker" not in cmd
        else:
            is_worker = "loky" in cmd and "resource_tracker" not in cmd
        if is_worker:
            peaks.append(item["mib"])
    return max(peaks) if peaks else float("nan")


def demo_spec(cohort, run_kwargs: dict | None = None) -> dict:
    return {"root": str(cohort.root), "func": [str(f) for f in cohort.func],
            "maps": str(cohort.maps), "labels": list(cohort.labels),
            "region_coords": np.asarray(cohort.region_coords).tolist(),
            "networks": list(cohort.networks) if cohort.get("networks") else None,
            "atlas_label": "msdl", "run_kwargs": run_kwargs or {}}


# --------------------------------------------------------------------------- tiny cohort


MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def write_tiny_cohort(root: Path, n_subjects: int, shape=(6, 6, 6), n_volumes: int = 40,
                      n_maps: int = 5, seed: int = 0) -> dict:
    """An fMRIPrep-like tree of tiny runs and a 5-map atlas on the same grid."""
    import nibabel as nib
    import pandas as pd

    rng = np.random.default_rng(seed)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -12.0
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.0"}]}))
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    centres = rng.uniform(1, np.array(shape) - 2, size=(n_maps, 3))
    maps = np.stack([np.exp(-np.sum((grid - c) ** 2, axis=-1) / 4.0) for c in centres],
                    axis=-1).astype(np.float32)
    atlas_dir = root.parent / "tiny_atlas"
    atlas_dir.mkdir()
    maps_path = atlas_dir / "tiny_maps.nii.gz"
    nib.save(nib.Nifti1Image(maps, affine), maps_path)
    coords = (affine[:3, :3] @ centres.T).T + affine[:3, 3]
    width = len(str(n_subjects))
    for k in range(1, n_subjects + 1):
        sub = f"sub-{k:0{max(width, 3)}d}"
        func = root / sub / "func"
        func.mkdir(parents=True)
        signals = rng.standard_normal((n_volumes, n_maps)) @ rng.standard_normal(
            (n_maps, n_maps))
        data = np.tensordot(maps, signals.T, axes=(3, 0)) + 0.5 * rng.standard_normal(
            shape + (n_volumes,))
        data = (100.0 + data).astype(np.float32)
        prefix = f"{sub}_task-rest"
        bold = func / f"{prefix}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
        image = nib.Nifti1Image(data, affine)
        image.header.set_zooms((4.0, 4.0, 4.0, 2.0))
        nib.save(image, bold)
        (func / f"{prefix}_space-MNI152NLin2009cAsym_desc-preproc_bold.json").write_text(
            json.dumps({"RepetitionTime": 2.0, "TaskName": "rest", "SkullStripped": True}))
        table = {}
        motion = np.cumsum(0.01 * rng.standard_normal((n_volumes, 6)), axis=0)
        for i, name in enumerate(MOTION):
            derivative = np.r_[np.nan, np.diff(motion[:, i])]
            table[name] = motion[:, i]
            table[f"{name}_derivative1"] = derivative
            table[f"{name}_power2"] = motion[:, i] ** 2
            table[f"{name}_derivative1_power2"] = derivative ** 2
        for name in ("white_matter", "csf"):
            table[name] = 100 + rng.standard_normal(n_volumes)
        t = np.arange(n_volumes)
        for j in range(3):
            table[f"cosine{j:02d}"] = np.sqrt(2 / n_volumes) * np.cos(
                np.pi * (j + 1) * (t + 0.5) / n_volumes)
        table["framewise_displacement"] = np.r_[np.nan, np.abs(
            np.diff(motion, axis=0)).sum(axis=1)]
        pd.DataFrame(table).to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                                   index=False, na_rep="n/a", float_format="%.6f")
    return {"root": str(root), "func": [], "maps": str(maps_path),
            "labels": [f"region{i + 1}" for i in range(n_maps)],
            "region_coords": coords.tolist(), "networks": None, "atlas_label": "tiny",
            "run_kwargs": {}}


CLUSTER_CODE = """
import time
start = time.perf_counter()
from distributed import Client, LocalCluster
imported = time.perf_counter()
cluster = LocalCluster(n_workers={n}, threads_per_worker=1, processes=True,
                       memory_limit="auto", dashboard_address=None)
client = Client(cluster, set_as_default=False)
client.wait_for_workers({n})
up = time.perf_counter()
client.close(); cluster.close()
down = time.perf_counter()
print(imported - start, up - imported, down - up)
"""


def bare_cluster_seconds(n_workers: int) -> tuple[float, float, float]:
    proc = subprocess.run([sys.executable, "-c", CLUSTER_CODE.format(n=n_workers)],
                          capture_output=True, text=True, check=True)
    imported, up, down = (float(x) for x in proc.stdout.split()[-3:])
    return imported, up, down


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=12)
    parser.add_argument("--overhead-subjects", type=int, default=200)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each configuration; the fastest is kept")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 4 subjects and 40 tiny ones")
    opts = parser.parse_args()
    if opts.quick:
        opts.n_subjects, opts.overhead_subjects = 4, 40
    n, workers = opts.n_subjects, opts.n_workers
    load_start = os.getloadavg()

    from sparse_connectome.datasets import load_demo_cohort

    impls = ("ours",) if opts.skip_reference else ("reference", "ours")
    results: dict[tuple[str, bool], dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cohort = load_demo_cohort(n_subjects=n, data_dir=tmp / "data")
        spec = demo_spec(cohort)
        # Warm-up: fill numba's on-disk cache (figures on, so the report's code too).
        warm = dict(spec, run_kwargs={"participant_label": list(cohort.subjects[:2])})
        run_flow("ours", warm, tmp / "warmup", True, workers, tmp)
        count = 0
        for _ in range(opts.repeats):
            for reports in (False, True):
                for impl in impls:
                    count += 1
                    got = run_flow(impl, spec, tmp / f"out{count}", reports, workers, tmp)
                    old = results.get((impl, reports))
                    if old is None or got["process_seconds"] < old["process_seconds"]:
                        got["task_peak_mb"] = max(got["task_peak_mb"],
                                                  old["task_peak_mb"] if old else 0)
                        results[(impl, reports)] = got
                    else:
                        old["task_peak_mb"] = max(old["task_peak_mb"], got["task_peak_mb"])

        profiles = {}
        for reports in (False, True):
            spec_path = tmp / f"spec_profile_{int(reports)}.json"
            spec_path.write_text(json.dumps(spec))
            proc = subprocess.run([sys.executable, str(FLOW), "profile", str(spec_path),
                                   str(tmp / f"profile{int(reports)}"), str(int(reports)), "1"],
                                  capture_output=True, text=True, check=True)
            profiles[reports] = json.loads(proc.stdout.strip().splitlines()[-1])
        tiny = write_tiny_cohort(tmp / "tiny" / "derivatives", opts.overhead_subjects)
        overhead = run_flow("ours", tiny, tmp / "tiny_out", False, workers, tmp)
        cluster = bare_cluster_seconds(workers)

    print(f"load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(at start {' '.join(f'{x:.1f}' for x in load_start)}); other processes share the cores")
    print(f"Cohort of {n} demo subjects (50x59x50x168, 39 maps), {workers} workers x 1 thread, "
          f"on {len(os.sched_getaffinity(0))} cores")
    header = (f"{'':24s}{'wall s':>8s}{'subj/min':>10s}{'task s':>8s}"
              f"{'worker peak MiB':>17s}{'worker VmHWM':>14s}{'coordinator MiB':>17s}")
    print(header)
    for reports in (False, True):
        for impl in impls:
            r = results[(impl, reports)]
            name = f"{impl}, figures {'on' if reports else 'off'}"
            print(f"{name:24s}{r['process_seconds']:8.2f}{60 * n / r['process_seconds']:10.1f}"
                  f"{np.mean(r['task_seconds']):8.2f}{r['task_peak_mb']:17.0f}"
                  f"{worker_hwm(r, impl):14.0f}{r['coordinator_mib']:17.0f}")
    if not opts.skip_reference:
        print("ratios ours / reference:")
        for reports in (False, True):
            ours, ref = results[("ours", reports)], results[("reference", reports)]
            speed = ref["process_seconds"] / ours["process_seconds"]
            memory = ours["task_peak_mb"] / ref["task_peak_mb"]
            hwm = worker_hwm(ours, "ours") / worker_hwm(ref, "reference")
            label = f"figures {'on' if reports else 'off'}"
            print(f"  {label:12s} throughput {speed:5.2f}x (goal >= {GOAL_SPEED:g}x"
                  f"{', met' if speed >= GOAL_SPEED else ', MISSED'})   "
                  f"peak memory per worker {memory:4.2f}x (goal <= {GOAL_MEMORY:g}x"
                  f"{', met' if memory <= GOAL_MEMORY else ', MISSED'}; VmHWM {hwm:4.2f}x)")
        alphas = {impl: [t["alpha"] for t in results[(impl, False)]["tasks"]] for impl in impls}
        print(f"  alpha chosen, median over subjects: ours {np.median(alphas['ours']):.4f}, "
              f"reference {np.median(alphas['reference']):.4f}")

    print("Where one of our subjects' time goes (process_run, one worker alone, the "
          "worker warm; cProfile):")
    for reports in (False, True):
        p = profiles[reports]
        phases = ", ".join(f"{k} {v:.2f}" for k, v in p["phases"].items())
        print(f"  figures {'on ' if reports else 'off'}: {p['seconds']:.2f} s = {phases} "
              f"(first subject of a fresh worker {p['first_subject_seconds']:.2f} s; "
              f"peak {p['peak_mb']:.0f} MiB)")

    m = opts.overhead_subjects
    wall = overhead["call_seconds"]
    tasks = overhead["task_seconds"]
    per_subject = (wall - sum(tasks) / workers) / m
    imported, up, down = cluster
    print(f"Scheduler overhead: {m} tiny subjects (6x6x6x40, 5 maps), {workers} workers, "
          "figures off")
    print(f"  run_cohort call {wall:.2f} s (process {overhead['process_seconds']:.2f} s; "
          f"{60 * m / wall:.0f} subjects/min); pure task "
          f"{np.mean(tasks) * 1000:.1f} ms per subject (median {np.median(tasks) * 1000:.1f}, "
          f"sum {sum(tasks):.2f} s)")
    print(f"  overhead per subject: {per_subject * 1000:.1f} ms "
          f"(= ({wall:.2f} s - {sum(tasks):.2f} s / {workers}) / {m}); of the total, a bare "
          f"LocalCluster costs {imported:.2f} s import + {up:.2f} s start + {down:.2f} s stop, "
          f"leaving {(wall - sum(tasks) / workers - imported - up - down) / m * 1000:.1f} ms "
          "per subject")


if __name__ == "__main__":
    main()
