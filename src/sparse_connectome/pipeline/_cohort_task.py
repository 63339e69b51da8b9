"""The unit of work of a cohort: one BOLD run, start to finish, on a Dask worker.

:func:`process_run` is pure in what it computes and idempotent in what it
writes: it calls the single-subject job (:func:`~sparse_connectome.pipeline.run_connectome`)
with the cohort's parameters, writes the run's BIDS derivatives through a
staging folder, and returns one row of the participants table. A bad input
fails that run alone: the error becomes the row's one-line reason.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._utils.atomic import atomic_write_text
from .._utils.hashing import file_sha256
from .._utils.text_inputs import check_text_size
from ..errors import SparseConnectomeError
from ._bids import BoldRun
from ._derivatives import STATE_DIR, RunOutputs, read_record, staged_run_outputs, write_run_files
from ._provenance import count_edges, jsonable, software_versions
from ._selection import SELECTIONS, make_estimator

__all__ = ["CohortSpec", "TABLE_COLUMNS", "input_stats", "process_run", "read_failure",
           "recorded_row", "row_of", "run_outputs", "stats_match"]

#: Columns of ``group/participants_connectome.tsv``, in order.
TABLE_COLUMNS = (
    "participant_id", "session", "task", "run", "status", "error", "warnings", "alpha",
    "duality_gap",
    "converged", "n_edges", "n_volumes", "n_volumes_kept", "n_volumes_scrubbed", "mean_fd",
    "seconds", "peak_mb",
)


@dataclass(frozen=True)
class CohortSpec:
    """What every run of a cohort shares: atlas, parameters, output options.

    Attributes
    ----------
    atlas : dict
        ``maps`` (path), ``labels``, ``region_coords``, ``networks``.
    atlas_label : str
        The ``atlas-<label>`` entity of the output names.
    atlas_sha256 : str
        SHA-256 of the maps image (part of every run's key).
    node_files : list of str
        The atlas files under ``OUTPUT_DIR/atlases``, relative to ``OUTPUT_DIR``.
    strategy : str
        fMRIPrep denoising preset.
    estimator_params : dict
        Keywords of :func:`~sparse_connectome.pipeline.make_estimator` (the penalty
        selection and its parameters).
    edge_threshold : str or float
    reports : bool
        Write a report per run.
    plotly_file, mesh_file : str
        The shared plotly.js and brain surface, relative to ``OUTPUT_DIR``.
    standardize : str
    """

    atlas: dict
    atlas_label: str
    atlas_sha256: str
    node_files: list[str]
    strategy: str
    estimator_params: dict = field(default_factory=dict)
    edge_threshold: str | float = "80%"
    reports: bool = True
    plotly_file: str = "assets/plotly.min.js"
    mesh_file: str = "assets/brain_mesh.js"
    standardize: str = "zscore_sample"

    def parameters(self) -> dict:
        """The parameters that change results, as recorded in every sidecar."""
        return {"atlas": self.atlas_label, "atlas_sha256": self.atlas_sha256,
                "labels": list(self.atlas["labels"]), "strategy": self.strategy,
                "standardize": self.standardize,
                "estimator": SELECTIONS[self.estimator_params.get("selection", "cv")],
                "estimator_params": dict(self.estimator_params),
                "edge_threshold": self.edge_threshold, "reports": self.reports}

    def parameters_sha256(self) -> str:
        text = json.dumps(jsonable(self.parameters()), sort_keys=True)
        return hashlib.sha256(f"{text}|{__version__}".encode()).hexdigest()


def run_outputs(run: BoldRun, spec: CohortSpec, output_dir: str | Path) -> RunOutputs:
    space = f"_space-{run.space}" if run.space else ""
    return RunOutputs(Path(output_dir), run.relative_dir,
                      f"{run.prefix}{space}_atlas-{spec.atlas_label}")


def _run_inputs(run: BoldRun) -> dict[str, Path]:
    inputs = {"bold": run.bold, "confounds": run.confounds}
    if run.confounds_json is not None:
        inputs["confounds_json"] = run.confounds_json
    if run.sidecar is not None:
        inputs["bold_json"] = run.sidecar
    return inputs


def input_stats(run: BoldRun) -> dict[str, dict]:
    """Path, size and modification time of each input (the cheap half of the key)."""
    stats = {}
    for name, path in _run_inputs(run).items():
        st = path.stat()
        stats[name] = {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return stats


def stats_match(recorded: dict | None, run: BoldRun, spec: CohortSpec) -> bool:
    """True when a record was made from these very files (same paths, sizes and
    modification times) with these parameters: the run need not be looked at again."""
    if not recorded or recorded.get("parameters_sha256") != spec.parameters_sha256():
        return False
    try:
        current = input_stats(run)
    except OSError:
        return False
    old = recorded.get("inputs", {})
    return set(old) == set(current) and all(
        {k: old[name].get(k) for k in ("path", "bytes", "mtime_ns")} == current[name]
        for name in current)


def _key(inputs_sha256: dict[str, str], spec: CohortSpec) -> str:
    text = json.dumps({"inputs": inputs_sha256, "parameters": spec.parameters_sha256()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _peak_memory() -> Iterator[dict]:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""
    import psutil

    process = psutil.Process()
    found = {"peak_mb": process.memory_info().rss / 2**20}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            found["peak_mb"] = max(found["peak_mb"], process.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found["peak_mb"] = max(found["peak_mb"], process.memory_info().rss / 2**20)


def _mean_fd(run: BoldRun) -> float | None:
    import pandas as pd

    try:
        check_text_size(run.confounds, "confounds", "confounds file")  # InputError: None
        column = pd.read_csv(run.confounds, sep="\t", usecols=["framewise_displacement"],
                             na_values=["n/a"])["framewise_displacement"]
    except (ValueError, OSError):
        return None
    value = float(np.nanmean(column.to_numpy(dtype=float))) if column.notna().any() else None
    return value


def _base_row(run: BoldRun) -> dict:
    return {"participant_id": f"sub-{run.subject}", "session": run.session, "task": run.task,
            "run": run.run}


def recorded_row(run: BoldRun, record: dict, status: str) -> dict:
    """A table row from a run's recorded provenance (done or failed earlier)."""
    row = _base_row(run)
    row.update({k: record.get("row", {}).get(k) for k in TABLE_COLUMNS if k not in row})
    row["status"] = status
    return row


def _failure_path(output_dir: Path, run: BoldRun) -> Path:
    return output_dir / STATE_DIR / "failures" / f"{run.key}.json"


def read_failure(output_dir: str | Path, run: BoldRun) -> dict | None:
    try:
        return json.loads(_failure_path(Path(output_dir), run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _warning_lines(caught: list) -> list[str]:
    return list(dict.fromkeys(" ".join(f"{w.category.__name__}: {w.message}".split())
                              for w in caught))


def _compute(run: BoldRun, spec: CohortSpec, outputs: RunOutputs, record: dict,
             caught: list) -> dict:
    """The single-subject job, then the run's files; returns the row's numbers."""
    from ..report import write_report
    from ._run import missing_glyphs_collapsed, run_connectome

    estimator = make_estimator(**spec.estimator_params)
    result = run_connectome(run.bold, spec.atlas, strategy=spec.strategy, t_r=run.t_r,
                            standardize=spec.standardize, estimator=estimator, verbose=0)
    summary = result.metadata["summary"]
    numbers = {
        "alpha": result.alpha, "duality_gap": getattr(estimator, "duality_gap_", None),
        "converged": getattr(estimator, "converged_", None),
        "n_edges": count_edges(result.precision), "n_volumes": summary["n_volumes"],
        "n_volumes_kept": summary["n_volumes_kept"],
        "n_volumes_scrubbed": summary["n_volumes_scrubbed"], "mean_fd": _mean_fd(run),
    }
    record.update({"alpha": result.alpha, "duality_gap": numbers["duality_gap"],
                   "converged": numbers["converged"], "n_iter": getattr(estimator, "n_iter_", None),
                   "cv_results": getattr(estimator, "cv_results_", None), "summary": summary,
                   "warnings": _warning_lines(caught)})
    sources = [f"bids::{Path(p).name}" for p in _run_inputs(run).values()]
    depth = len(run.relative_dir.parts)
    with staged_run_outputs(outputs, spec.reports) as stage:
        if spec.reports:
            with missing_glyphs_collapsed():
                write_report(stage / outputs.report.name, time_series=result.time_series,
                             labels=result.labels, coords=result.coords, networks=result.networks,
                             estimator=estimator, inputs=record["inputs"],
                             parameters=spec.parameters(), summary=summary,
                             edge_threshold=spec.edge_threshold,
                             title=f"sparse-connectome: {run.prefix}",
                             plotly_src="../" * depth + spec.plotly_file,
                             mesh_src="../" * depth + spec.mesh_file)
        record["row"] = numbers
        write_run_files(stage, outputs, time_series=result.time_series,
                        matrices={"covariance": result.covariance, "precision": result.precision,
                                  "partialcorrelation": result.partial_correlation},
                        labels=result.labels, t_r=summary["t_r"],
                        node_files=["../" * depth + f for f in spec.node_files],
                        sources=sources, record=record)
    return numbers


def process_run(run: BoldRun, spec: CohortSpec, output_dir: str) -> dict:
    """Compute one run's connectome and write its derivatives; return its table row.

    Idempotent: when the run's files exist with the current key (same input
    contents, parameters and version), nothing is computed or written and the
    recorded row is returned with status ``"reused"``. Errors from bad input
    are caught and returned as status ``"failed"`` with a one-line reason, and
    recorded so that a re-run skips the run unless asked to retry it.
    """
    output_dir_path = Path(output_dir)
    outputs = run_outputs(run, spec, output_dir_path)
    start = time.perf_counter()
    row = _base_row(run)
    with _peak_memory() as memory, warnings.catch_warnings(record=True) as caught:
        # Warnings of a run belong to its row and sidecars, not to a worker's stderr.
        warnings.simplefilter("always")
        try:
            stats = input_stats(run)
            hashes = {name: file_sha256(path) for name, path in _run_inputs(run).items()}
            key = _key(hashes, spec)
            previous = read_record(outputs, spec.reports)
            if previous is not None and previous.get("key") == key:
                return recorded_row(run, previous, "reused")
            inputs = {name: dict(stats[name], sha256=hashes[name]) for name in stats}
            record = {"key": key, "parameters_sha256": spec.parameters_sha256(),
                      "inputs": inputs, "parameters": spec.parameters(),
                      # Said, not keyed: the atlas_sha256 of the parameters keys it.
                      "atlas": {"name": spec.atlas.get("name"), "kind": spec.atlas.get("kind"),
                                "label": spec.atlas_label, "files": list(spec.node_files)},
                      "software": software_versions(), "t_r": run.t_r}
            row.update(_compute(run, spec, outputs, record, caught))
            row.update(status="computed", error=None)
            _failure_path(output_dir_path, run).unlink(missing_ok=True)
        except (SparseConnectomeError, OSError) as exc:
            row.update(status="failed", error=" ".join(f"{type(exc).__name__}: {exc}".split()))
        except Exception as exc:  # noqa: BLE001 - one run's bug must not stop the cohort
            row.update(status="failed",
                       error=" ".join(f"unexpected {type(exc).__name__}: {exc}".split()))
    messages = _warning_lines(caught)
    row["warnings"] = " | ".join(messages) if messages else None
    row["seconds"] = round(time.perf_counter() - start, 3)
    row["peak_mb"] = round(memory["peak_mb"], 1)
    if row["status"] == "failed":
        _record_failure(output_dir_path, run, spec, row)
    return row


def _record_failure(output_dir: Path, run: BoldRun, spec: CohortSpec, row: dict) -> None:
    try:
        stats = input_stats(run)
    except OSError:
        stats = {}
    record = {"parameters_sha256": spec.parameters_sha256(), "inputs": stats, "row": row,
              "error": row["error"]}
    path = _failure_path(output_dir, run)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(jsonable(record), indent=2) + "\n")
    except OSError:  # the row still reports the failure
        pass


def row_of(run: BoldRun, **values: Any) -> dict:
    """A table row for a run that never reached a worker (e.g. its worker died)."""
    row = _base_row(run)
    row.update(values)
    return row

