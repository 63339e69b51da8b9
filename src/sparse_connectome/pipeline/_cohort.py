"""A whole study: every run of an fMRIPrep derivatives folder, on Dask, written as
BIDS derivatives, resumable.

:func:`run_cohort` discovers the runs (:mod:`._bids`), checks which are already
done (their files exist with the current key) or failed before, hands the rest
to Dask workers one run per task (:mod:`._cohort_task`, :mod:`._engine`), then
summarises the group (:mod:`._group`). Only this coordinator writes the shared
files (``dataset_description.json``, ``atlases/``, ``assets/``, ``group/``);
workers write only their own run's folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from .._utils.atomic import atomic_write_bytes
from .._utils.bunch import Bunch
from .._utils.hashing import file_sha256
from ..errors import OutputError, ParameterError
from ._atlas_inputs import resolve_atlas
from ._atlas_names import looks_like_atlas_name, parse_atlas_name
from ._bids import BoldRun, Discovery, discover_runs
from ._cohort_task import (
    CohortSpec,
    process_run,
    read_failure,
    recorded_row,
    row_of,
    run_outputs,
    stats_match,
)
from ._demo_atlas import simulated_demo_atlas
from ._derivatives import STATE_DIR, read_record
from ._group import (
    GROUP_MODELS,
    SUCCESS,
    fit_group_model,
    group_matrices,
    participants_table,
    write_group_model,
    write_group_outputs,
)
from ._selection import make_estimator
from ._staging import check_output_folder

__all__ = ["CohortResult", "EXIT_SOME_FAILED", "LEVELS", "run_cohort"]

logger = logging.getLogger(__name__)

#: Exit code of the ``cohort`` command when some runs failed (the others completed).
EXIT_SOME_FAILED = 3
LEVELS = ("participant", "group", "all")
#: The assets shared by every report, relative to OUTPUT_DIR.
PLOTLY_FILE = "assets/plotly.min.js"
MESH_FILE = "assets/brain_mesh.js"
STRATEGIES = ("simple", "scrubbing", "compcor")


@dataclass
class CohortResult:
    """What :func:`run_cohort` did.

    Attributes
    ----------
    output_dir : Path
    table : DataFrame
        One row per run (``group/participants_connectome.tsv``): status
        (``computed``, ``reused``, ``failed``, ``missing``, ``unpaired``), error,
        alpha, duality gap, convergence, edges, volumes, mean FD, seconds, peak MB.
    paths : dict of str -> Path
        The group files written (``table``, ``mean``, ``consistency``, ``report``).
    discovery : Discovery
        The runs found and the files that could not be paired.

    Examples
    --------
    >>> import pandas as pd
    >>> result = CohortResult(Path("out"), pd.DataFrame({"status": ["computed", "failed"]}))
    >>> result.n_failed, result.exit_code
    (1, 3)
    """

    output_dir: Path
    table: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)
    discovery: Discovery | None = None

    @property
    def n_failed(self) -> int:
        """Runs that did not end with results (failed, unpaired or missing)."""
        return int((~self.table["status"].isin(SUCCESS)).sum())

    @property
    def exit_code(self) -> int:
        """0 when every run has results, :data:`EXIT_SOME_FAILED` otherwise."""
        return 0 if self.n_failed == 0 else EXIT_SOME_FAILED


# --------------------------------------------------------------------------- checks


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ParameterError(f"{name}={value!r}; expected one of {', '.join(choices)}")


def _check_cohort_arguments(input_dir: Any, output_dir: Any, demo: int | None, level: str,
                            strategy: str) -> None:
    _check_choice(level, "level", LEVELS)
    _check_choice(strategy, "strategy", STRATEGIES)
    if demo is not None:
        if isinstance(demo, bool) or not isinstance(demo, int) or not 1 <= demo <= 1000:
            raise ParameterError(f"demo={demo!r}; expected a number of subjects from 1 to 1000")
        if input_dir is not None:
            raise ParameterError("an input folder and demo were both given; the demo cohort "
                                 "is its own input")
    elif input_dir is None:
        raise ParameterError("no input folder; expected an fMRIPrep derivatives folder or "
                             "demo=N (--demo N)")
    if output_dir is None:
        raise ParameterError("no output folder given")
    if input_dir is not None and Path(output_dir).resolve() == Path(input_dir).resolve():
        raise ParameterError(f"the output folder {str(output_dir)!r} is the input folder; "
                             "expected a separate folder (e.g. INPUT/derivatives/connectome)")


def _atlas_label(atlas: Any, demo: int | None, given: str | None) -> str:
    """The ``atlas-<label>`` entity: given, from the atlas's name (``schaefer400x7``,
    ``difumo1024``, ``harvardoxford``), or its file name made alphanumeric."""
    if given is not None:
        if not re.fullmatch(r"[A-Za-z0-9]+", given):
            raise ParameterError(f"atlas_label={given!r}; expected letters and digits only (a "
                                 "BIDS label)")
        return given
    name = atlas.get("name") if isinstance(atlas, dict) else atlas
    if looks_like_atlas_name(name):
        return parse_atlas_name(name).label
    if demo is not None and isinstance(atlas, dict) and "name" not in atlas:
        return "msdl"  # the demo cohort's own atlas
    name = Path(str(atlas.get("maps") if isinstance(atlas, dict) else atlas)).name
    name = re.sub(r"\.nii(\.gz)?$", "", name)
    label = re.sub(r"[^A-Za-z0-9]", "", name)
    return label or "custom"


# --------------------------------------------------------------------------- shared files


def _write_if_changed(path: Path, data: bytes) -> None:
    """Leave an identical file untouched (its mtime too); else replace it atomically."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _dataset_description(input_dir: Path) -> bytes:
    description = {
        "Name": "sparse-connectome functional connectomes",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "sparse-connectome", "Version": __version__,
                         "CodeURL": "https://github.com/sparse-connectome/sparse-connectome"}],
        "SourceDatasets": [{"URL": f"file://{input_dir.resolve()}"}],
    }
    return (json.dumps(description, indent=2) + "\n").encode()


def _export_atlas(output_dir: Path, atlas_info: Bunch, label: str) -> list[str]:
    """Copy the atlas and its labels under ``atlases/``; return the files, relative.

    A maps atlas is ``atlas-<label>_probseg.nii[.gz]`` (index = map number); a labels
    atlas is ``atlas-<label>_dseg.nii[.gz]`` (index = label value, in output order).
    Both tables hold index, name, network, x, y, z.
    """
    folder = Path("atlases") / f"atlas-{label}"
    maps = Path(str(atlas_info.maps))
    kind = "dseg" if atlas_info.get("kind") == "labels" else "probseg"
    files = []
    if maps.is_file():
        suffix = ".nii.gz" if maps.name.endswith(".gz") else ".nii"
        target = folder / f"atlas-{label}_{kind}{suffix}"
        _write_if_changed(output_dir / target, maps.read_bytes())
        files.append(str(target))
    coords = atlas_info.region_coords
    indices = atlas_info.get("indices") if kind == "dseg" else None
    table = pd.DataFrame({"index": indices or range(1, len(atlas_info.labels) + 1),
                          "name": atlas_info.labels,
                          "network": atlas_info.networks or ["n/a"] * len(atlas_info.labels),
                          "x": coords[:, 0], "y": coords[:, 1], "z": coords[:, 2]})
    target = folder / f"atlas-{label}_{kind}.tsv"
    _write_if_changed(output_dir / target,
                      table.to_csv(sep="\t", index=False, float_format="%.3f").encode())
    files.append(str(target))
    return files


def _export_assets(output_dir: Path) -> None:
    """One shared copy of plotly.js and of the brain surface for every report of the
    cohort (loaded by relative paths, offline): not 4.5 MB in each report."""
    from ..plotting.view3d import brain_mesh_js, plotly_js

    _write_if_changed(output_dir / PLOTLY_FILE, plotly_js().encode())
    _write_if_changed(output_dir / MESH_FILE, brain_mesh_js().encode())


@contextmanager
def _locked(output_dir: Path) -> Iterator[None]:
    """One cohort run at a time per output folder; stale staging of a killed run removed."""
    state = output_dir / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / "lock", "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise OutputError(f"cannot write into the output folder {str(output_dir)!r}: "
                          f"{exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"another cohort run is writing into {str(output_dir)!r}; wait "
                              "for it to end (or stop it) and run again") from None
        shutil.rmtree(state / "staging", ignore_errors=True)
        for stale in output_dir.glob("**/.*.part*"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------- runs


def _previous_row(run: BoldRun, spec: CohortSpec, output_dir: Path, retry_failed: bool,
                  level: str) -> dict | None:
    """The run's row when it need not be computed: done, or failed before."""
    outputs = run_outputs(run, spec, output_dir)
    record = read_record(outputs, spec.reports)
    if record is not None and (stats_match(record, run, spec) or level == "group"):
        return recorded_row(run, record, "reused")
    failure = read_failure(output_dir, run)
    if failure is not None and not retry_failed and stats_match(failure, run, spec):
        row = recorded_row(run, failure, "failed")
        row["error"] = failure.get("error")
        return row
    if level == "group":
        return row_of(run, status="missing", error="no results for this run; run the "
                      "participant level first")
    return None


def _lost(run: BoldRun, reason: str) -> dict:
    return row_of(run, status="failed", error=f"the task was lost: {reason}")


def _unpaired_rows(discovery: Discovery) -> list[dict]:
    rows = []
    for item in discovery.unpaired:
        found = re.search(r"sub-([A-Za-z0-9]+)", item.path.name)
        rows.append({"participant_id": f"sub-{found.group(1)}" if found else item.path.name,
                     "status": "unpaired", "error": f"{item.path.name}: {item.reason}"})
    return rows


def _import_report_modules() -> None:
    import matplotlib.pyplot  # noqa: F401

    from .. import plotting, report  # noqa: F401


def _compute_rows(runs: list[BoldRun], rows: list[dict | None], spec: CohortSpec,
                  output_dir: Path, write_shared: Any, *, engine: dict, progress: bool,
                  closing: list) -> list[dict]:
    """Compute the runs that have no row yet on Dask; the shared files are written
    only once the engine is up, so that a bad scheduler leaves nothing behind."""
    from ._engine import dask_client, map_runs

    todo = [i for i, row in enumerate(rows) if row is None]
    logger.info("%d runs: %d to compute, %d already done or failed before", len(runs),
                len(todo), len(runs) - len(todo))
    if not todo:
        with _locked(output_dir):
            write_shared()
        return [row for row in rows if row is not None]
    with dask_client(len(todo), **engine, closing=closing) as client, _locked(output_dir):
        write_shared()
        # The coordinator waits on the workers: it imports the group report's
        # plotting stack meanwhile (about a second), instead of after them.
        threading.Thread(target=_import_report_modules, daemon=True).start()
        computed = map_runs(client, process_run, [runs[i] for i in todo], spec, str(output_dir),
                            on_lost=_lost, progress=progress, description="subjects")
    for i, row in zip(todo, computed):
        rows[i] = row
    return [row for row in rows if row is not None]


def _group_model(done: list, names: list[str], atlas_info: Bunch,
                 model: str = "group-sparse") -> dict | None:
    """Fit the group sparse model on the runs' signals and write each run's precision."""
    estimator = fit_group_model(done, len(atlas_info.labels), model)
    if estimator is None:
        logger.warning("the group sparse model needs at least 2 successful runs; skipped")
        return None
    write_group_model(done, estimator, list(atlas_info.labels),
                      [o.timeseries.name for o in done])
    found = {"alpha": estimator.alpha_, "precisions": estimator.precisions_, "names": names,
             "duality_gap": estimator.duality_gap_, "converged": estimator.converged_}
    if model == "group-sparse-stars":
        return dict(found, alphas=estimator.alphas_, instability=estimator.instability_,
                    monotone_instability=estimator.monotone_instability_,
                    beta=estimator.beta)
    return dict(found, cv_alphas=estimator.cv_alphas_, cv_scores=estimator.cv_scores_)


def _group_level(output_dir: Path, table: pd.DataFrame, runs: list[BoldRun], spec: CohortSpec,
                 atlas_info: Bunch, group_model: str | None = None) -> dict[str, Path]:
    """The group table, matrices and report, from the successful runs' files."""
    from ..report import write_group_report

    by_id = {(f"sub-{r.subject}", r.session, r.task, r.run): r for r in runs}
    done, links, names = [], {}, []
    for index, row in table.iterrows():
        run = by_id.get((row["participant_id"], row["session"], row["task"], row["run"]))
        if run is None or row["status"] not in SUCCESS:
            continue
        outputs = run_outputs(run, spec, output_dir)
        done.append(outputs)
        names.append(run.prefix)
        if spec.reports:
            links[index] = os.path.relpath(outputs.report, output_dir / "group")
    matrices = group_matrices(done, len(atlas_info.labels))
    paths = write_group_outputs(output_dir / "group", table=table, matrices=matrices,
                                atlas_label=spec.atlas_label, labels=list(atlas_info.labels))
    model = _group_model(done, names, atlas_info, group_model) if group_model else None
    paths["report"] = write_group_report(
        output_dir / "group" / "report.html", table=table, labels=atlas_info.labels,
        coords=atlas_info.region_coords, networks=atlas_info.networks,
        mean_partial=matrices.mean_partial, consistency=matrices.consistency,
        parameters=spec.parameters(), edge_threshold=spec.edge_threshold,
        plotly_src=f"../{PLOTLY_FILE}", mesh_src=f"../{MESH_FILE}",
        subject_reports=links or None,
        title="sparse-connectome group report", group_model=model)
    return paths


def _estimator_params(selection: str, alphas: Any, **options: Any) -> dict:
    """The estimator's parameters (:func:`make_estimator`), checked now by building one."""
    params = dict(options, selection=selection,
                  alphas=list(alphas) if isinstance(alphas, Sequence) else alphas)
    make_estimator(**params)
    return params


def run_cohort(
    input_dir: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    *,
    demo: int | None = None,
    participant_label: Sequence[str] | None = None,
    task: str | None = None,
    space: str | None = "MNI152NLin2009cAsym",
    atlas: Any = "msdl",
    labels: str | os.PathLike | Sequence[str] | None = None,
    atlas_label: str | None = None,
    strategy: str = "simple",
    selection: str = "cv",
    alphas: Any = None,
    n_refinements: int = 4,
    cv: int | None = None,
    tol: float | None = None,
    max_iter: int = 100,
    gamma: float = 0.5,
    beta: float = 0.05,
    n_subsamples: int = 20,
    random_state: int | None = 0,
    edge_threshold: str | float = "80%",
    level: str = "all",
    reports: bool = True,
    n_workers: int | None = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    retry_failed: bool = False,
    group_model: str | None = None,
    verbose: int = 1,
) -> CohortResult:
    """Compute the sparse connectome of every run of a study, as BIDS derivatives.

    Long function: a flat sequence of named steps (check, discover, resolve the
    atlas, find what is done, compute the rest, summarise the group); splitting
    it further would only pass its dozen parameters around.

    Parameters
    ----------
    input_dir : path-like or None
        An fMRIPrep derivatives folder (``sub-*/[ses-*/]func/*_desc-preproc_bold.nii.gz``
        with their confounds and sidecars). None with ``demo``.
    output_dir : path-like
        Where the derivatives go (created). Re-running into it finishes only
        what is missing or changed.
    demo : int, optional
        Use the simulated demo cohort of this many subjects
        (:func:`~sparse_connectome.datasets.load_demo_cohort`), offline.
    participant_label : sequence of str, optional
        Subjects to process (with or without ``sub-``); all by default.
    task, space : str, optional
        Keep the runs of this task / in this template space (None: any).
    atlas : str, path-like or dict-like
        An atlas name, a maps or labels image, or a dict, as for
        :func:`~sparse_connectome.pipeline.run_connectome`. With ``demo``, a name
        other than ``msdl`` is a simulated stand-in on the demo grid (offline).
    labels : path-like or sequence of str, optional
        Region names.
    atlas_label : str, optional
        The ``atlas-<label>`` of the output names (letters and digits); by
        default from the atlas name (``msdl``, ``schaefer400x7``, ``difumo1024``,
        ``harvardoxford``), else the image's file name made alphanumeric.
    strategy : {"simple", "scrubbing", "compcor"}
        fMRIPrep denoising preset.
    selection : {"cv", "ebic", "stars"}
        How the penalty is chosen (:func:`~sparse_connectome.pipeline.make_estimator`):
        cross-validation, the extended BIC, or stability (StARS).
    alphas, n_refinements, cv, tol, max_iter, gamma, beta, n_subsamples, random_state
        The estimator's parameters (``alphas=None``, ``tol=None``: its defaults).
    edge_threshold : str or float
        Edges shown in the graphs of the reports.
    level : {"participant", "group", "all"}
        ``participant`` computes the runs; ``group`` summarises runs computed
        before; ``all`` does both.
    reports : bool
        Write a report per run (the group report is always written).
    n_workers : int, optional
        Workers of the local Dask cluster (default: one per core, at most one per run).
    scheduler, scheduler_file : optional
        Address, or scheduler file, of an existing Dask cluster to run on instead.
    retry_failed : bool
        Compute again the runs that failed before with the same inputs (by
        default they are reported as failed without retrying).
    group_model : {"group-sparse", "group-sparse-stars"}, optional
        At the group level, also fit the group sparse inverse covariance of all
        successful runs (:class:`~sparse_connectome.connectome.GroupSparseCovarianceCV`)
        and write each run's precision under it (``desc-groupsparse``).
    verbose : int
        0: silent; 1: progress bar and one line per step.

    Returns
    -------
    CohortResult

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> result = run_cohort(None, out, demo=1, reports=False, n_workers=1, verbose=0)
    >>> result.table["status"].tolist(), result.exit_code
    (['computed'], 0)
    >>> run_cohort(None, out, demo=1, reports=False, verbose=0).table["status"].tolist()
    ['reused']
    """
    _check_cohort_arguments(input_dir, output_dir, demo, level, strategy)
    if group_model is not None:
        _check_choice(group_model, "group_model", GROUP_MODELS)
    estimator_params = _estimator_params(
        selection, alphas, n_refinements=n_refinements, cv=cv, tol=tol, max_iter=max_iter,
        gamma=gamma, beta=beta, n_subsamples=n_subsamples, random_state=random_state)
    from ._engine import check_engine_options

    check_engine_options(n_workers, scheduler, scheduler_file)
    out = Path(output_dir)
    if demo is not None:
        from ..datasets import load_demo_cohort

        # An unknown name fails before the cohort is written.
        name = parse_atlas_name(atlas).name if looks_like_atlas_name(atlas) else None
        cohort = load_demo_cohort(n_subjects=demo)
        input_dir = cohort.root
        if name is not None:
            # Offline: the demo cohort's own atlas, or a simulated stand-in of the name.
            atlas = (cohort if name == "msdl"
                     else simulated_demo_atlas(name, Path(cohort.root).parent))
    discovery = discover_runs(input_dir, participant_label=participant_label, task=task,
                              space=space)
    atlas_info = resolve_atlas(atlas, labels)
    check_output_folder(out, [])
    label = _atlas_label(atlas, demo, atlas_label)
    maps_path = Path(str(atlas_info.maps))
    spec = CohortSpec(
        atlas=dict(atlas_info), atlas_label=label,
        atlas_sha256=file_sha256(maps_path) if maps_path.is_file() else hashlib.sha256(
            repr(atlas_info.maps).encode()).hexdigest(),
        node_files=[], strategy=strategy, estimator_params=estimator_params,
        edge_threshold=edge_threshold, reports=reports, plotly_file=PLOTLY_FILE,
        mesh_file=MESH_FILE)

    def write_shared() -> None:
        _write_if_changed(out / "dataset_description.json", _dataset_description(Path(input_dir)))
        spec.node_files[:] = _export_atlas(out, atlas_info, label)
        if reports or level != "participant":
            _export_assets(out)

    runs = discovery.runs
    rows = [_previous_row(r, spec, out, retry_failed, level) for r in runs]
    closing: list = []  # the local cluster stops in the background during the group level
    if level == "group":
        with _locked(out):
            write_shared()
        rows = [row for row in rows if row is not None]
    else:
        rows = _compute_rows(runs, rows, spec, out, write_shared,
                             engine={"n_workers": n_workers, "scheduler": scheduler,
                                     "scheduler_file": scheduler_file},
                             progress=verbose > 0 and sys.stderr.isatty(), closing=closing)
    table = participants_table(rows + _unpaired_rows(discovery))
    result = CohortResult(output_dir=out, table=table, discovery=discovery)
    with _locked(out):
        if level == "participant":
            result.paths = write_group_outputs(out / "group", table=table,
                                               matrices=group_matrices([], 0),
                                               atlas_label=label, labels=[])
        else:
            result.paths = _group_level(out, table, runs, spec, atlas_info, group_model)
    for thread in closing:
        thread.join()
    return result
