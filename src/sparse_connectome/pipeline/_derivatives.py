"""One run's outputs as BIDS derivatives (BEP017 style): names, writing, and the
record that tells a finished run from one to redo.

For a run ``sub-01_ses-1_task-rest_run-1`` in space ``MNI152NLin2009cAsym`` and
atlas ``msdl`` the files are, in ``OUTPUT_DIR/sub-01/ses-1/func/``::

    <prefix>_space-<s>_atlas-msdl_timeseries.tsv            (+ .json)
    <prefix>_space-<s>_atlas-msdl_stat-covariance_relmat.tsv (+ .json)
    <prefix>_space-<s>_atlas-msdl_stat-precision_relmat.tsv  (+ .json)
    <prefix>_space-<s>_atlas-msdl_stat-partialcorrelation_relmat.tsv (+ .json)
    <prefix>_space-<s>_atlas-msdl_report.html                (when reports are on)

Every sidecar carries the run's key (the SHA-256 of its inputs' contents, the
parameters and the package version). A run is *done* when all its files exist
and the key in its sidecars is the current one. Files are written in a staging
folder, then renamed into place one by one with the sidecars last: each file is
whole at every moment, and a run killed during the moves has sidecars with an
old key or none, so it is redone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OutputError
from ._provenance import jsonable

__all__ = ["MEASURES", "RunOutputs", "read_record", "staged_run_outputs", "STATE_DIR"]

#: The relationship matrices written per run: entity value -> (attribute, BEP017 description).
MEASURES: dict[str, tuple[str, str]] = {
    "covariance": ("covariance", "Covariance (sample covariance of the cleaned, standardized "
                                 "region signals, as estimated with the sparse precision)"),
    "precision": ("precision", "Precision (sparse inverse covariance, graphical lasso with "
                               "a cross-validated penalty)"),
    "partialcorrelation": ("partial_correlation", "Partial correlation (from the sparse "
                                                  "precision)"),
}

#: Hidden folder of OUTPUT_DIR with the run lock, the staging area and failure records.
STATE_DIR = ".sparse_connectome"


@dataclass(frozen=True)
class RunOutputs:
    """The paths of one run's outputs under ``output_dir``."""

    output_dir: Path
    relative_dir: Path
    stem: str  # "<prefix>_space-<s>_atlas-<a>"

    @property
    def folder(self) -> Path:
        return self.output_dir / self.relative_dir

    @property
    def timeseries(self) -> Path:
        return self.folder / f"{self.stem}_timeseries.tsv"

    def relmat(self, measure: str) -> Path:
        return self.folder / f"{self.stem}_stat-{measure}_relmat.tsv"

    @property
    def report(self) -> Path:
        return self.folder / f"{self.stem}_report.html"

    def files(self, with_report: bool) -> list[Path]:
        """Every file of the run, data first, sidecars last (the order of the moves)."""
        data = [self.timeseries] + [self.relmat(m) for m in MEASURES]
        if with_report:
            data.append(self.report)
        return data + [sidecar(p) for p in [self.timeseries] + [self.relmat(m) for m in MEASURES]]


def sidecar(path: Path) -> Path:
    """The JSON sidecar of a TSV file."""
    return path.with_suffix(".json")


def read_record(outputs: RunOutputs, with_report: bool) -> dict | None:
    """The recorded provenance of a finished run, or None when a file is missing.

    The record is the ``SparseConnectome`` object of the precision sidecar;
    every sidecar must carry the same key.
    """
    files = outputs.files(with_report)
    if not all(p.is_file() for p in files):
        return None
    keys = set()
    record = None
    for path in files:
        if path.suffix != ".json":
            continue
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("SparseConnectome", {})
        except (OSError, ValueError, AttributeError):
            return None
        keys.add(ours.get("key"))
        if path == sidecar(outputs.relmat("precision")):
            record = ours
    if len(keys) != 1 or None in keys:
        return None
    return record


def _write_matrix(path: Path, matrix: np.ndarray, labels: list[str]) -> None:
    pd.DataFrame(matrix, columns=labels).to_csv(path, sep="\t", index=False, float_format="%.17g")


def _relmat_sidecar(measure: str, node_files: list[str], sources: list[str],
                    ours: Mapping[str, Any]) -> dict:
    return {
        "RelationshipMeasure": MEASURES[measure][1],
        "Weighted": True,
        "Directed": False,
        "ValidDiagonal": measure != "partialcorrelation",
        "StorageFormat": "Full",
        "NodeFiles": node_files,
        "Sources": sources,
        "SparseConnectome": dict(ours),
    }


def write_run_files(stage: Path, outputs: RunOutputs, *, time_series: np.ndarray,
                    matrices: Mapping[str, np.ndarray], labels: list[str], t_r: float | None,
                    node_files: list[str], sources: list[str], record: Mapping[str, Any]) -> None:
    """Write the tables and sidecars of one run into ``stage`` (flat, final names)."""
    ours = jsonable(dict(record))
    pd.DataFrame(time_series, columns=labels).to_csv(
        stage / outputs.timeseries.name, sep="\t", index=False, float_format="%.10g")
    ts_sidecar = {"SamplingFrequency": (1.0 / t_r) if t_r else None, "Columns": labels,
                  "NodeFiles": node_files, "Sources": sources, "SparseConnectome": ours}
    (stage / sidecar(outputs.timeseries).name).write_text(
        json.dumps(jsonable(ts_sidecar), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    for measure in MEASURES:
        path = outputs.relmat(measure)
        _write_matrix(stage / path.name, matrices[measure], labels)
        (stage / sidecar(path).name).write_text(
            json.dumps(_relmat_sidecar(measure, node_files, sources, ours), indent=2,
                       allow_nan=False) + "\n", encoding="utf-8")


@contextmanager
def staged_run_outputs(outputs: RunOutputs, with_report: bool) -> Iterator[Path]:
    """A fresh staging folder; on success its files move into the run's folder.

    The staging folder lives in ``OUTPUT_DIR/.sparse_connectome/staging`` (same
    file system, so each move is an atomic rename). Sidecars move last: they
    carry the key that marks the run done.
    """
    staging_root = outputs.output_dir / STATE_DIR / "staging"
    try:
        staging_root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{outputs.stem}-", dir=staging_root))
    except OSError as exc:
        raise OutputError(f"cannot create a staging folder in {str(staging_root)!r}: "
                          f"{exc.strerror or exc}") from None
    try:
        yield stage
        outputs.folder.mkdir(parents=True, exist_ok=True)
        # Sidecars of an older result go first, so that no moment shows the new
        # data files beside an old, matching-looking record.
        for path in outputs.files(with_report):
            if path.suffix == ".json" and path.exists():
                path.unlink()
        for path in outputs.files(with_report):
            os.replace(stage / path.name, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
