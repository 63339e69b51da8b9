"""One cohort configuration of ``bench_cohort.py``, run in a fresh process.

Usage: python _cohort_seed_flow.py {ours,reference,profile} SPEC_JSON OUT_DIR REPORTS(0|1) N_WORKERS

SPEC_JSON (written by ``bench_cohort.py``) holds the cohort's ``root``,
``func``, ``maps``, ``labels``, ``region_coords`` and ``networks``.

* ``ours``: ``sparse_connectome.pipeline.run_cohort`` on a LocalCluster of
  N_WORKERS workers x 1 thread (cluster start-up and the group outputs included).
* ``reference``: the seed's flow per subject (nilearn ``NiftiMapsMasker`` with the
  fMRIPrep "simple" confounds of ``load_confounds_strategy``, scikit-learn
  ``GraphicalLassoCV``, then, with REPORTS=1, the seed's figures) run by
  ``joblib.Parallel(n_jobs=N_WORKERS)`` (loky processes) over the subjects.

* ``profile``: where one of our subjects' time goes (see ``run_profile``).

Both measure the peak memory of a worker the same way: the worker process's
RSS sampled every 20 ms by a thread during each task (ours: the ``peak_mb``
column of the group table; reference: the same sampler in the task). Besides,
a thread of this process reads the high-water mark (VmHWM) of every descendant
process every 50 ms, which catches spikes shorter than the sampling period.

Prints one JSON line: wall seconds inside the process (imports included) and
of the cohort call alone (``run_cohort``, or ``Parallel``, start-up included),
per-task seconds and peak MB, the coordinator's VmHWM and the descendants' VmHWM.
"""

import json
import os
import sys
import threading
import time

start = time.perf_counter()


def vmhwm_mib(pid="self"):
    """Peak resident memory (VmHWM) of a process image, MiB; None if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class DescendantsWatch:
    """The largest VmHWM seen for each descendant process (by pid and name)."""

    def __init__(self, period=0.05):
        import psutil

        self._me = psutil.Process()
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(period,), daemon=True)
        self._thread.start()

    def _poll(self):
        import psutil

        for child in self._me.children(recursive=True):
            hwm = vmhwm_mib(child.pid)
            if hwm is None:
                continue
            try:
                name = " ".join(child.cmdline())[-80:]
            except psutil.Error:
                name = "?"
            key = str(child.pid)
            old = self.peaks.get(key, {"mib": 0.0})
            self.peaks[key] = {"mib": max(old["mib"], hwm), "cmd": name}

    def _loop(self, period):
        while not self._stop.wait(period):
            self._poll()

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peaks


def peak_rss_during(function, *args):
    """Run ``function(*args)``; return its result and this process's peak RSS
    (MiB) meanwhile, sampled every 20 ms (as ``process_run`` of ours does)."""
    import psutil

    process = psutil.Process()
    found = {"peak": process.memory_info().rss / 2**20}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            found["peak"] = max(found["peak"], process.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = function(*args)
    finally:
        stop.set()
        thread.join()
    found["peak"] = max(found["peak"], process.memory_info().rss / 2**20)
    return result, found["peak"]


def seed_subject(bold, maps, coords, out_dir, reports):
    """The seed's flow for one subject (nilearn + scikit-learn), in a loky worker."""
    import warnings

    warnings.simplefilter("ignore")
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.maskers import NiftiMapsMasker
    from sklearn.covariance import GraphicalLassoCV

    os.makedirs(out_dir, exist_ok=True)
    confounds, sample_mask = load_confounds_strategy(bold, "simple")
    masker = NiftiMapsMasker(maps_img=maps, standardize="zscore_sample",
                             standardize_confounds=True)
    time_series = masker.fit_transform(bold, confounds=confounds, sample_mask=sample_mask)
    estimator = GraphicalLassoCV()
    estimator.fit(time_series)
    np.savetxt(f"{out_dir}/timeseries.tsv", time_series, delimiter="\t")
    np.savetxt(f"{out_dir}/covariance.tsv", estimator.covariance_, delimiter="\t")
    np.savetxt(f"{out_dir}/precision.tsv", estimator.precision_, delimiter="\t")
    if reports:
        import matplotlib.pyplot as plt
        from nilearn import plotting

        coords = np.asarray(coords)
        for name, matrix, title in (("cov", estimator.covariance_, "Covariance"),
                                    ("prec", -estimator.precision_,
                                     "Sparse inverse covariance")):
            plotting.plot_matrix(matrix, figure=(9, 7), vmax=1, vmin=-1, title=title)
            plt.savefig(f"{out_dir}/{name}_matrix.png")
            plt.close("all")
            plotting.plot_connectome(matrix, coords, title=title, edge_threshold="80%",
                                     output_file=f"{out_dir}/{name}_connectome.png")
        view = plotting.view_connectome(-estimator.precision_, coords, edge_threshold="80%")
        view.save_as_html(f"{out_dir}/view.html")
    return float(estimator.alpha_)


def reference_task(bold, maps, coords, out_dir, reports):
    task_start = time.perf_counter()
    alpha, peak = peak_rss_during(seed_subject, bold, maps, coords, out_dir, reports)
    return {"seconds": time.perf_counter() - task_start, "peak_mb": peak, "alpha": alpha,
            "pid": os.getpid()}


def run_reference(spec, out, reports, n_workers):
    from joblib import Parallel, delayed

    jobs = []
    for bold in spec["func"]:
        subject = os.path.basename(bold).split("_")[0]
        jobs.append(delayed(reference_task)(bold, spec["maps"], spec["region_coords"],
                                            os.path.join(out, subject), reports))
    rows = Parallel(n_jobs=n_workers, backend="loky")(jobs)
    return rows


def run_ours(spec, out, reports, n_workers):
    from sparse_connectome.pipeline import run_cohort

    atlas = {"maps": spec["maps"], "labels": spec["labels"],
             "region_coords": spec["region_coords"], "networks": spec.get("networks")}
    result = run_cohort(spec["root"], out, atlas=atlas, atlas_label=spec.get("atlas_label", "msdl"),
                        n_workers=n_workers, reports=reports, verbose=0,
                        **spec.get("run_kwargs", {}))
    table = result.table
    bad = table[table["status"] != "computed"]
    if len(bad):
        raise SystemExit(f"runs not computed: {bad[['participant_id', 'status', 'error']]}")
    return [{"seconds": float(s), "peak_mb": float(p), "alpha": float(a)}
            for s, p, a in zip(table["seconds"], table["peak_mb"], table["alpha"])]


PHASES = (  # (name, file suffix, function) whose cumulative time is reported
    ("hash inputs", "_utils/hashing.py", "file_sha256"),
    ("confounds", "pipeline/_run.py", "_read_confounds"),
    ("extraction", "maskers/_base.py", "fit_transform"),
    ("fit", "pipeline/_run.py", "_estimate"),
    ("report", "report/_subject.py", "write_report"),
    ("write files", "pipeline/_derivatives.py", "write_run_files"),
    ("software versions", "pipeline/_provenance.py", "software_versions"),
)


def run_profile(spec, out, reports):
    """Where one of our subjects' time goes: ``process_run`` (the cohort's task) on
    one subject after a first one (imports and first figures paid), profiled."""
    import cProfile
    import pstats
    from pathlib import Path

    from sparse_connectome.pipeline._atlas_inputs import resolve_atlas
    from sparse_connectome.pipeline._bids import discover_runs
    from sparse_connectome.pipeline._cohort import _estimator_params, _export_assets, _export_atlas
    from sparse_connectome.pipeline._cohort_task import CohortSpec, process_run

    runs = discover_runs(spec["root"]).runs
    atlas = resolve_atlas({k: spec[k] for k in ("maps", "labels", "region_coords", "networks")},
                          None)
    out = Path(out)
    cohort_spec = CohortSpec(atlas=dict(atlas), atlas_label=spec["atlas_label"],
                             atlas_sha256="profile",
                             node_files=_export_atlas(out, atlas, spec["atlas_label"]),
                             strategy="simple", estimator_params=_estimator_params("cv", None),
                             reports=reports)
    if reports:
        _export_assets(out)
    first = time.perf_counter()
    process_run(runs[0], cohort_spec, str(out))
    first = time.perf_counter() - first
    profile = cProfile.Profile()
    profile.enable()
    row = process_run(runs[1], cohort_spec, str(out))
    profile.disable()
    stats = pstats.Stats(profile).stats
    phases = {}
    for name, suffix, function in PHASES:
        for (path, _, func), (_, _, _, cumulative, _) in stats.items():
            if func == function and path.replace("\\", "/").endswith(suffix):
                phases[name] = phases.get(name, 0.0) + cumulative
    return {"first_subject_seconds": first, "seconds": row["seconds"],
            "peak_mb": row["peak_mb"], "phases": phases, "status": row["status"]}


def main():
    impl, spec_path, out, reports, n_workers = sys.argv[1:6]
    with open(spec_path) as handle:
        spec = json.load(handle)
    reports, n_workers = bool(int(reports)), int(n_workers)
    if impl == "profile":
        print(json.dumps(run_profile(spec, out, reports)))
        return
    watch = DescendantsWatch()
    run = run_ours if impl == "ours" else run_reference
    call_start = time.perf_counter()
    rows = run(spec, out, reports, n_workers)
    call_seconds = time.perf_counter() - call_start
    elapsed = time.perf_counter() - start
    descendants = watch.stop()
    print(json.dumps({"impl": impl, "reports": reports, "seconds": elapsed,
                      "call_seconds": call_seconds, "tasks": rows,
                      "coordinator_mib": vmhwm_mib(), "descendants": descendants}))


if __name__ == "__main__":
    main()
