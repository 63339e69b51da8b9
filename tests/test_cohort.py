"""The cohort command on a real Dask cluster: results, resumption, failures, kills.

The demo cohort (8 simulated subjects in fMRIPrep layout) is written once per
session; tests that change inputs work on copies. Runs use ``--no-reports``
where the report is not what is tested, to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparse_connectome.cli import main
from sparse_connectome.pipeline import EXIT_SOME_FAILED, run_cohort, run_connectome

STEM = "task-rest_space-MNI152NLin2009cAsym_atlas-msdl"
FAST = {"n_refinements": 2}  # a shorter CV path (as --n-refinements 2): same code, fewer fits


def _atlas_args(cohort) -> list[str]:
    """The demo's atlas on the command line (offline)."""
    return ["--atlas", str(cohort.maps), "--labels", str(cohort.labels_file),
            "--atlas-label", "msdl"]


@pytest.fixture(scope="session")
def cohort8(tmp_path_factory):
    from sparse_connectome.datasets import load_demo_cohort

    return load_demo_cohort(n_subjects=8, data_dir=tmp_path_factory.mktemp("cohort_data"))


def _copy_tree(cohort, tmp_path, subjects):
    """A copy of the demo tree with the given subjects only."""
    root = tmp_path / "input"
    root.mkdir()
    shutil.copy(Path(cohort.root) / "dataset_description.json", root)
    for sub in subjects:
        shutil.copytree(Path(cohort.root) / f"sub-{sub}", root / f"sub-{sub}")
    return root


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()
            and ".sparse_connectome" not in p.parts}


def _precision(out: Path, sub: str) -> np.ndarray:
    return pd.read_csv(out / f"sub-{sub}/func/sub-{sub}_{STEM}_stat-precision_relmat.tsv",
                       sep="\t").to_numpy()


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name or ".partial" in p.name
            or (p.parent.name == "staging" and ".sparse_connectome" in p.parts)]


def _cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "sparse_connectome", *args],
                          capture_output=True, text=True, timeout=600, **kwargs)


# --------------------------------------------------------------------------- local cluster


def test_local_cluster_results_equal_the_single_subject_job(cohort8, tmp_path):
    out = tmp_path / "out"
    result = run_cohort(cohort8.root, out, participant_label=["01", "02", "03"], n_workers=2,
                        atlas=cohort8, atlas_label="msdl", verbose=0, **FAST)
    assert result.exit_code == 0
    assert list(result.table["status"]) == ["computed"] * 3
    assert list(result.table["participant_id"]) == ["sub-01", "sub-02", "sub-03"]
    from sparse_connectome.pipeline import make_estimator

    for k, sub in enumerate(["01", "02", "03"]):
        # The cohort's estimator, built from the same options.
        alone = run_connectome(cohort8.func[k], cohort8, strategy="simple", t_r=cohort8.t_r,
                               estimator=make_estimator(**FAST), verbose=0)
        np.testing.assert_allclose(_precision(out, sub), alone.precision, rtol=0, atol=1e-10)
    # BIDS derivatives and their sidecars.
    func = out / "sub-01/func"
    for measure in ("covariance", "precision", "partialcorrelation"):
        sidecar = json.loads((func / f"sub-01_{STEM}_stat-{measure}_relmat.json").read_text())
        for field in ("RelationshipMeasure", "Weighted", "Directed", "ValidDiagonal",
                      "StorageFormat", "NodeFiles", "Sources"):
            assert field in sidecar
        ours = sidecar["SparseConnectome"]
        assert ours["converged"] is True and ours["duality_gap"] >= 0
        assert len(ours["inputs"]["bold"]["sha256"]) == 64
        assert ours["parameters"]["strategy"] == "simple"
    assert (func / f"sub-01_{STEM}_timeseries.tsv").is_file()
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"]
    assert (out / "atlases/atlas-msdl/atlas-msdl_probseg.nii.gz").is_file()
    # One shared plotly.js; the reports load it relatively and stay small.
    report = (func / f"sub-01_{STEM}_report.html").read_text()
    assert '<script src="../../assets/plotly.min.js"' in report
    assert len(report) < 2_000_000 and (out / "assets/plotly.min.js").stat().st_size > 1_000_000
    group = out / "group"
    table = pd.read_csv(group / "participants_connectome.tsv", sep="\t")
    assert len(table) == 3 and set(table["status"]) == {"computed"}
    consistency = pd.read_csv(group / "atlas-msdl_stat-consistency_relmat.tsv", sep="\t")
    assert consistency.shape == (39, 39) and consistency.to_numpy().max() <= 1
    assert (group / "report.html").is_file()
    assert _partial_files(out) == []

    # Re-run: nothing recomputed, nothing touched; the group level adds the group model.
    before = _files(out / "sub-01")
    again = run_cohort(cohort8.root, out, participant_label=["01", "02", "03"], n_workers=2,
                       atlas=cohort8, atlas_label="msdl", verbose=0, group_model="group-sparse",
                       **FAST)
    assert list(again.table["status"]) == ["reused"] * 3
    after = _files(out / "sub-01")
    assert {name: after[name] for name in before} == before
    supports = []
    for sub in ("01", "02", "03"):
        stem = f"sub-{sub}/func/sub-{sub}_{STEM}_stat-precision_desc-groupsparse_relmat"
        precision = pd.read_csv(out / f"{stem}.tsv", sep="\t").to_numpy()
        supports.append(precision != 0)
        assert json.loads((out / f"{stem}.json").read_text())["SparseConnectome"]["converged"]
    assert all(np.array_equal(supports[0], s) for s in supports)  # one shared support
    assert "Group sparse model" in (out / "group/report.html").read_text()
    # The group level alone, the penalty chosen by stability: a sparser shared support.
    run_cohort(cohort8.root, out, participant_label=["01", "02", "03"], level="group",
               atlas=cohort8, atlas_label="msdl", verbose=0, group_model="group-sparse-stars",
               **FAST)
    stem = f"sub-01/func/sub-01_{STEM}_stat-precision_desc-groupsparse_relmat"
    stars = pd.read_csv(out / f"{stem}.tsv", sep="\t").to_numpy() != 0
    assert json.loads((out / f"{stem}.json").read_text())["SparseConnectome"]["selection"] == "stars"
    assert stars.sum() < supports[0].sum()
    assert "penalty chosen by stability (StARS)" in (out / "group/report.html").read_text()


def test_a_changed_input_recomputes_only_that_run(cohort8, tmp_path):
    root = _copy_tree(cohort8, tmp_path, ["01", "02"])
    out = tmp_path / "out"
    kwargs = dict(reports=False, n_workers=1, verbose=0, atlas=cohort8, atlas_label="msdl",
                  **FAST)
    first = run_cohort(root, out, level="participant", **kwargs)
    assert "mean" not in first.paths and (out / "group/participants_connectome.tsv").is_file()
    group = run_cohort(root, out, level="group", **kwargs)  # summarises, computes nothing
    assert list(group.table["status"]) == ["reused", "reused"]
    assert group.paths["mean"].is_file() and group.paths["report"].is_file()
    untouched = _files(out / "sub-01")
    tsv = root / "sub-02/func/sub-02_task-rest_desc-confounds_timeseries.tsv"
    frame = pd.read_csv(tsv, sep="\t")
    frame["csf"] = frame["csf"] * 1.5
    frame.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    result = run_cohort(root, out, **kwargs)
    assert list(result.table["status"]) == ["reused", "computed"]
    assert _files(out / "sub-01") == untouched
    # A parameter change recomputes every run.
    result = run_cohort(root, out, **{**kwargs, "tol": 5e-5})
    assert list(result.table["status"]) == ["computed", "computed"]


# --------------------------------------------------------------------------- failures


def test_one_corrupt_subject_fails_alone(cohort8, tmp_path):
    subjects = [f"{k:02d}" for k in range(1, 9)]
    root = _copy_tree(cohort8, tmp_path, subjects)
    bold = root / "sub-05/func/sub-05_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    bold.write_bytes(bold.read_bytes()[: bold.stat().st_size // 3])  # cut mid-stream
    out = tmp_path / "out"
    done = _cli(["cohort", str(root), str(out), *_atlas_args(cohort8), "--no-reports",
                 "--n-workers", "2", "--n-refinements", "2"])
    assert done.returncode == EXIT_SOME_FAILED, done.stderr
    table = pd.read_csv(out / "group/participants_connectome.tsv", sep="\t")
    assert (table["status"] == "computed").sum() == 7
    failed = table[table["status"] == "failed"]
    assert list(failed["participant_id"]) == ["sub-05"]
    assert "sub-05" in failed["error"].iloc[0] or "bold" in failed["error"].iloc[0]
    failure_lines = [line for line in done.stderr.splitlines() if "failed:" in line]
    assert len(failure_lines) == 1 and "sub-05" in failure_lines[0]
    assert "Traceback" not in done.stderr
    assert not (out / "sub-05").exists()
    # Not retried by default; retried on demand (and still failing).
    again = run_cohort(root, out, reports=False, n_workers=1, verbose=0, atlas=cohort8,
                       atlas_label="msdl", **FAST)
    assert list(again.table["status"]).count("failed") == 1
    assert list(again.table["status"]).count("reused") == 7


@pytest.mark.parametrize("case", ["empty", "no_match", "unknown_label", "bad_scheduler"])
def test_bad_input_one_line_exit_2_nothing_written(case, cohort8, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {
        "empty": ["cohort", str(empty), str(out)],
        "no_match": ["cohort", str(cohort8.root), str(out), "--task", "nback",
                     *_atlas_args(cohort8)],
        "unknown_label": ["cohort", str(cohort8.root), str(out), "--participant-label", "99",
                          *_atlas_args(cohort8)],
        "bad_scheduler": ["cohort", str(cohort8.root), str(out), "--scheduler",
                          "tcp://127.0.0.1:1", *_atlas_args(cohort8)],
    }[case]
    done = _cli(args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparse-connectome: error:"), done.stderr
    assert not out.exists()


def test_usage_errors(capsys, tmp_path):
    assert main(["cohort", str(tmp_path)]) == 2
    assert "INPUT_DIR and OUTPUT_DIR" in capsys.readouterr().err
    assert main(["cohort", "--demo", "2", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert main(["cohort", "--demo", "2", str(tmp_path), "--scheduler", "x",
                 "--scheduler-file", "y"]) == 2


# --------------------------------------------------------------------------- kills


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _n_done(out: Path) -> int:
    return len(list(out.glob(f"sub-*/func/*_{STEM}_stat-precision_relmat.json")))


def test_sigkill_of_the_coordinator_then_rerun(cohort8, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sparse_connectome", "cohort", str(cohort8.root), str(out),
            *_atlas_args(cohort8), "--no-reports", "--n-workers", "2", "--n-refinements", "2", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait_for(lambda: _n_done(out) >= 2 or proc.poll() is not None, 300, "2 subjects")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # The orphaned workers notice their nanny is gone and stop.
    time.sleep(1)
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.killpg(proc.pid, 0)
            time.sleep(0.1)
    done_before = sorted(p.parent.parent.name for p in
                         out.glob(f"sub-*/func/*_{STEM}_stat-precision_relmat.json"))
    assert 2 <= len(done_before) < 8
    before = {sub: _files(out / sub) for sub in done_before}
    rerun = _cli(["cohort", str(cohort8.root), str(out), *_atlas_args(cohort8), "--no-reports",
                  "--n-workers", "2", "--n-refinements", "2"])
    assert rerun.returncode == 0, rerun.stderr
    table = pd.read_csv(out / "group/participants_connectome.tsv", sep="\t")
    assert len(table) == 8 and set(table["status"]) <= {"computed", "reused"}
    assert (table["status"] == "reused").sum() == len(done_before)
    for sub, files in before.items():
        assert _files(out / sub) == files  # same bytes, same mtime
    assert _partial_files(out) == []


@pytest.fixture
def external_cluster(tmp_path):
    """A scheduler and two workers started as separate processes, as on a cluster."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--scheduler-file",
                               str(scheduler_file), "--port", "0", "--no-dashboard",
                               "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        _wait_for(scheduler_file.is_file, 60, "the scheduler file")
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(scheduler_file),
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield scheduler_file, procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def test_scheduler_file_equals_local_and_survives_a_killed_worker(cohort8, tmp_path,
                                                                  external_cluster):
    scheduler_file, procs = external_cluster
    labels = ["--participant-label", "01", "--participant-label", "02",
              "--participant-label", "03", "--participant-label", "04"]
    remote, local = tmp_path / "remote", tmp_path / "local"
    run = subprocess.Popen(
        [sys.executable, "-m", "sparse_connectome", "cohort", str(cohort8.root), str(remote),
         *labels, *_atlas_args(cohort8), "--no-reports", "--n-refinements", "2",
         "--scheduler-file",
         str(scheduler_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
        def busy_worker():
            processing = client.processing()
            return next((w for w, tasks in processing.items()
                         if any(str(t).startswith("connectome-") for t in tasks)), None)

        _wait_for(lambda: busy_worker() is not None or run.poll() is not None, 120,
                  "a running task")
        victim = busy_worker()
        if victim is not None:
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=600)
    assert victim is not None, "the run ended before a worker could be killed"
    assert run.returncode == 0, stderr
    assert "4 runs" in stdout
    local_result = run_cohort(cohort8.root, local, participant_label=["01", "02", "03", "04"],
                              reports=False, n_workers=2, verbose=0, atlas=cohort8,
                              atlas_label="msdl", **FAST)
    assert local_result.exit_code == 0
    for sub in ["01", "02", "03", "04"]:
        np.testing.assert_array_equal(_precision(remote, sub), _precision(local, sub))


def test_sessions_and_runs(cohort8, tmp_path):
    """Runs in sessions get their own folders and names; reports find the shared plotly.js."""
    root = tmp_path / "input"
    src = Path(cohort8.root) / "sub-01/func"
    for ses, run in (("1", "1"), ("1", "2"), ("2", "1")):
        func = root / "sub-01" / f"ses-{ses}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        for path in src.iterdir():
            name = path.name.replace("sub-01_task-rest", f"sub-01_ses-{ses}_task-rest_run-{run}")
            shutil.copy(path, func / name)
    out = tmp_path / "out"
    result = run_cohort(root, out, n_workers=1, atlas=cohort8, atlas_label="msdl", verbose=0,
                        **FAST)
    assert result.exit_code == 0
    assert list(zip(result.table["session"], result.table["run"])) == [("1", "1"), ("1", "2"),
                                                                      ("2", "1")]
    stem = "sub-01_ses-1_task-rest_run-2_space-MNI152NLin2009cAsym_atlas-msdl"
    func = out / "sub-01/ses-1/func"
    assert (func / f"{stem}_stat-precision_relmat.tsv").is_file()
    report = (func / f"{stem}_report.html").read_text()
    assert '<script src="../../../assets/plotly.min.js"' in report
    group_report = (out / "group/report.html").read_text()
    assert f"../sub-01/ses-1/func/{stem}_report.html" in group_report


def test_demo_data_writes_a_cohort(tmp_path, capsys):
    assert main(["demo-data", "--cohort", "2", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    root = Path(out.split("root: ")[1].splitlines()[0])
    assert sorted(p.name for p in root.glob("sub-*")) == ["sub-01", "sub-02"]
    assert "subjects: 2" in out


def test_selection_is_recorded_in_the_sidecars(cohort8, tmp_path):
    out = tmp_path / "out"
    result = run_cohort(cohort8.root, out, participant_label=["01"], selection="stars",
                        n_subsamples=8, reports=False, n_workers=1, atlas=cohort8,
                        atlas_label="msdl", verbose=0)
    assert result.exit_code == 0
    sidecar = json.loads((out / f"sub-01/func/sub-01_{STEM}_stat-precision_relmat.json")
                         .read_text())["SparseConnectome"]
    assert sidecar["parameters"]["estimator"] == "GraphicalLassoStARS"
    assert sidecar["parameters"]["estimator_params"]["selection"] == "stars"
    assert sidecar["parameters"]["estimator_params"]["n_subsamples"] == 8
