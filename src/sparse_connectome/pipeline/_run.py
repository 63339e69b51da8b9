"""The main job end to end: BOLD image + atlas -> sparse connectome -> files and report.

:func:`run_connectome` follows the seed's flow (extract region signals with a
maps masker, fit :class:`~sparse_connectome.covariance.GraphicalLassoCV`, derive
partial correlations, draw matrices, glass-brain graphs and the 3D view, write
the report). The command line (:mod:`sparse_connectome.cli`) is a thin layer
over it.

Outputs are staged in a hidden temporary folder beside ``output_dir`` and moved
into place only when every file is complete, so a failed or interrupted run
leaves no partial file, and a re-run into the same folder replaces the results.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils.bunch import Bunch
from ..errors import AtlasError, ConfoundsError, ConvergenceError, DataWarning, InputError, ParameterError
from ._atlas_inputs import resolve_atlas
from ._provenance import count_edges, describe_input, jsonable, software_versions, t_r_from_header
from ._selection import selection_of
from ._staging import check_output_folder, staging_dir

__all__ = [
    "run_connectome", "ConnectomeResult", "OUTPUT_FILES", "atlas_description", "check_output_dir",
    "missing_glyphs_collapsed",
]

logger = logging.getLogger(__name__)

#: Files written into ``output_dir`` by :func:`run_connectome`.
OUTPUT_FILES = (
    "timeseries.tsv",
    "covariance.tsv",
    "precision.tsv",
    "partial_correlation.tsv",
    "connectome.json",
    "covariance_matrix.png",
    "precision_matrix.png",
    "covariance_connectome.png",
    "precision_connectome.png",
    "connectome_3d.html",
    "report.html",
)

@dataclass
class ConnectomeResult:
    """What :func:`run_connectome` computed and wrote (see its Examples).

    Attributes
    ----------
    time_series : ndarray of shape (n_volumes_kept, n_regions)
        Cleaned region signals.
    labels, networks : list of str
        Region names and network names (``networks`` may be None).
    coords : ndarray of shape (n_regions, 3)
        Region centres in mm.
    estimator : GraphicalLassoCV
        The fitted estimator (``covariance_``, ``precision_``, ``alpha_``, ...).
    partial_correlation : ndarray of shape (n_regions, n_regions)
    recovery : Bunch or None
        Support recovery against a known ground truth (precision, recall, f1).
    metadata : dict
        The content of ``connectome.json``.
    paths : dict of str -> Path
        Files written, by name (empty when no ``output_dir`` was given).

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> data = load_demo()
    >>> result = run_connectome(data.func[0], data, data.confounds[0], verbose=0)
    >>> result.partial_correlation.shape, result.n_edges > 0, result.paths
    ((39, 39), True, {})
    """

    time_series: np.ndarray
    labels: list[str]
    coords: np.ndarray
    networks: list[str] | None
    estimator: Any
    partial_correlation: np.ndarray
    recovery: Bunch | None
    metadata: dict
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def covariance(self) -> np.ndarray:
        return self.estimator.covariance_

    @property
    def precision(self) -> np.ndarray:
        return self.estimator.precision_

    @property
    def alpha(self) -> float:
        return float(self.estimator.alpha_)

    @property
    def n_edges(self) -> int:
        """Number of non-zero off-diagonal entries (edges) of the sparse precision."""
        return count_edges(self.estimator.precision_)


def _func_label(func: Any) -> str:
    from ..image import img_name

    return f"func {img_name(func, 'image')}"


def _check_time_series(time_series: np.ndarray, func: Any, n_volumes: int,
                       labels: Sequence[str], estimator: Any) -> None:
    """Refuse region signals the covariance fit cannot use, naming the input."""
    n_kept, n_regions = time_series.shape
    cv = getattr(estimator, "cv", None)
    n_folds = cv if isinstance(cv, int) else getattr(cv, "n_splits", 5)
    n_folds = n_folds if isinstance(n_folds, int) else 5
    needed = max(2 * n_folds, 10)
    if n_kept < needed:
        kept = f" ({n_kept} left after scrubbing)" if n_kept != n_volumes else ""
        raise InputError(
            f"{_func_label(func)} has {n_volumes} volumes{kept}; the cross-validated "
            f"sparse inverse covariance ({n_folds} folds) needs at least {needed} volumes "
            f"(and preferably more than the {n_regions} regions)")
    if not np.all(np.isfinite(time_series)):
        raise InputError(f"region time series of {_func_label(func)} hold NaN or infinite "
                         "values; check the image and the confounds")
    spread = np.ptp(time_series, axis=0)
    scale = max(float(np.max(np.abs(time_series))), 1.0)
    constant = np.flatnonzero(spread <= 1e-10 * scale)
    if constant.size:
        names = [labels[i] for i in constant[:5]]
        more = f" and {constant.size - 5} more" if constant.size > 5 else ""
        raise InputError(
            f"{_func_label(func)}: the signal of {constant.size} region(s) {names}{more} is "
            "constant over time (no data under these maps, or signal removed by the "
            "confounds); expected varying signal in every region: drop these regions from "
            "the atlas or check the image")
    if n_kept <= n_regions:
        warnings.warn(
            f"{_func_label(func)}: {n_kept} volumes for {n_regions} regions; with fewer "
            "samples than regions the estimate rests on the sparsity penalty, and the "
            "cross-validated alpha is unreliable", DataWarning, stacklevel=4)


def check_output_dir(output_dir: Path) -> None:
    """Fail before any work when the output folder cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> check_output_dir(Path(tempfile.mkdtemp()) / "new-folder")  # may be created: no error
    """
    check_output_folder(output_dir, OUTPUT_FILES)


class _Stages:
    """Logs each stage of the job with its duration (progress on a terminal)."""

    def __init__(self, n_stages: int, verbose: int):
        self.n_stages = n_stages
        self.verbose = verbose
        self.index = 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, description: str) -> Iterator[None]:
        self.index += 1
        if self.verbose:
            logger.info("[%d/%d] %s ...", self.index, self.n_stages, description)
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = round(elapsed, 4)
        if self.verbose:
            logger.info("[%d/%d] %s done in %.2f s", self.index, self.n_stages, description,
                        elapsed)


# --------------------------------------------------------------------------- steps


def _check_t_r(t_r: Any) -> float | None:
    if t_r is None:
        return None
    try:
        value = float(t_r)
    except (TypeError, ValueError):
        raise ParameterError(f"t_r={t_r!r}; expected a positive number of seconds") from None
    if not (np.isfinite(value) and value > 0):
        raise ParameterError(f"t_r={t_r!r}; expected a positive number of seconds")
    return value


def _check_arguments(func: Any, confounds: Any, strategy: str | None, t_r: Any,
                     estimator: Any, edge_threshold: Any, memory: Any) -> tuple[Any, float | None]:
    """Refuse bad arguments before any work; the func image, unwrapped, and t_r as float."""
    from ..plotting._edges import threshold_value

    if confounds is not None and strategy is not None:
        raise ParameterError("confounds and strategy were both given; pass a confounds table "
                             "or a denoising strategy, not both")
    if strategy is not None and strategy not in ("simple", "scrubbing", "compcor"):
        raise ParameterError(f"strategy={strategy!r}; expected 'simple', 'scrubbing' or "
                             "'compcor'")
    t_r = _check_t_r(t_r)
    threshold_value(np.zeros((2, 2)), edge_threshold)  # fail now, not after the fit
    if estimator is not None and not callable(getattr(estimator, "fit", None)):
        raise ParameterError(f"estimator is a {type(estimator).__name__}; expected a covariance "
                             "estimator with a fit(X) method, such as GraphicalLassoCV()")
    if memory is not None and Path(memory).exists() and not Path(memory).is_dir():
        raise ParameterError(f"memory={str(memory)!r} is a file; expected a folder for the "
                             "on-disk cache")
    if isinstance(func, list | tuple):
        if len(func) != 1:
            raise InputError(f"func holds {len(func)} images; run_connectome takes one")
        func = func[0]
    if isinstance(func, str | os.PathLike) and not Path(func).is_file():
        what = "is a folder" if Path(func).is_dir() else "does not exist"
        raise InputError(f"func file {str(func)!r} {what}; expected a 4D NIfTI image "
                         "(.nii or .nii.gz)")
    return func, t_r


def _read_confounds(func: Any, confounds: Any, strategy: str | None
                    ) -> tuple[Any, np.ndarray | None, list[str]]:
    """The confounds to regress, the sample mask, and the confounds' column names."""
    sample_mask = None
    if strategy is not None:
        from ..confounds import load_confounds_strategy

        if not isinstance(func, str | os.PathLike):
            raise InputError("strategy needs func as a file path, to find the fMRIPrep "
                             "confounds file beside it")
        confounds, sample_mask = load_confounds_strategy(str(func), denoise_strategy=strategy)
    if isinstance(confounds, pd.DataFrame):
        return confounds, sample_mask, [str(c) for c in confounds.columns]
    if isinstance(confounds, str | os.PathLike):
        # The masker's reader (CSV/TSV, optional header): names match what is regressed.
        from ..signal._inputs import format_nonfinite, read_confounds_file

        values, names = read_confounds_file(Path(confounds))
        if not np.all(np.isfinite(values)):
            raise ConfoundsError(
                f"confounds file {str(confounds)!r} holds NaN, 'n/a' or Inf in column(s) "
                f"{format_nonfinite(values, names, max_items=4)}; expected finite "
                "numbers. A raw fMRIPrep confounds file is read with a denoising "
                "strategy instead (strategy='simple' in Python, --strategy simple on "
                "the command line), which picks the columns and fills 'n/a'")
        return confounds, sample_mask, names
    if confounds is not None:
        n_columns = np.atleast_2d(np.asarray(confounds).T).shape[0]
        return confounds, sample_mask, [f"confound_{i}" for i in range(n_columns)]
    return None, sample_mask, []


def _extract(atlas_info: Bunch, img: Any, confounds: Any, sample_mask: Any, *,
             standardize: Any, t_r: float | None, memory: Any, verbose: int) -> np.ndarray:
    """Region signals with the masker of the atlas's kind, columns in the atlas's order.

    A labels atlas uses :class:`~sparse_connectome.maskers.NiftiLabelsMasker` (mean of
    each region's voxels, labels resampled to the BOLD grid by nearest neighbour); its
    columns, in increasing label value, are put in the order of the atlas's table. A
    region left without any voxel on the BOLD grid (too small for its voxels) is an
    :class:`~sparse_connectome.errors.AtlasError` naming it: a column of zeros would
    only fail later, less clearly.
    """
    from ..maskers import NiftiLabelsMasker, NiftiMapsMasker

    options = dict(standardize=standardize, standardize_confounds=True, t_r=t_r, memory=memory,
                   memory_level=1 if memory else 0, verbose=max(verbose - 1, 0))
    if atlas_info.kind != "labels":
        masker = NiftiMapsMasker(atlas_info.maps, **options)
        return masker.fit_transform(img, confounds=confounds, sample_mask=sample_mask)
    masker = NiftiLabelsMasker(atlas_info.maps, strategy="mean", resampling_target="data",
                               **options)
    with warnings.catch_warnings():
        # Said below as an error that names the regions.
        warnings.filterwarnings("ignore", message=".*no voxel on the data grid.*",
                                category=DataWarning)
        masker.fit(img)
    _check_regions_on_grid(masker, atlas_info, img)
    signals = masker.transform(img, confounds=confounds, sample_mask=sample_mask)
    column = {value: col for col, value in masker.region_ids_.items() if col != "background"}
    return np.asarray(signals)[:, [column[v] for v in atlas_info.indices]]


def _check_regions_on_grid(masker: Any, atlas_info: Bunch, img: Any) -> None:
    from ..image import img_name

    on_grid = set(np.unique(np.asarray(masker.region_atlas_.dataobj)).tolist())
    lost = [(v, name) for v, name in zip(atlas_info.indices, atlas_info.labels)
            if v not in on_grid]
    if lost:
        shown = ", ".join(f"{name!r} (label {v})" for v, name in lost[:5])
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        zooms = "x".join(f"{z:g}" for z in img.header.get_zooms()[:3])
        raise AtlasError(
            f"atlas labels image {img_name(atlas_info.maps, 'image')}: region(s) {shown}{more} "
            f"have no voxel on the grid of {_func_label(img)} ({zooms} mm voxels) once "
            "resampled (nearest neighbour); expected every region to cover at least one "
            "voxel: use an atlas at the data's resolution or with fewer, larger regions")


def _estimate(estimator: Any, time_series: np.ndarray, func: Any,
              true_precision: np.ndarray | None) -> tuple[np.ndarray, Bunch | None]:
    """Fit the covariance estimator; partial correlations and ground-truth recovery."""
    from ..connectome import precision_to_partial_correlation, support_recovery

    # Folds with fewer volumes than regions give -inf scores at alpha = 0; the
    # inf - inf that follows in the score statistics is expected, not news.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        estimator.fit(time_series)
    if not np.all(np.isfinite(estimator.precision_)):
        raise ConvergenceError(
            f"the sparse inverse covariance of {_func_label(func)} is not finite "
            f"(alpha {getattr(estimator, 'alpha_', None)}); check the region time series")
    partial = precision_to_partial_correlation(estimator.precision_)
    recovery = (support_recovery(estimator.precision_, true_precision)
                if true_precision is not None else None)
    return partial, recovery


@dataclass(frozen=True)
class _Record:
    """What the JSON sidecar and the report say of a run."""

    inputs: dict
    parameters: dict
    summary: dict


def _record(*, func: Any, atlas_info: Bunch, labels: Any, confounds: Any, confound_names: list[str],
            strategy: str | None, t_r: float | None, standardize: Any, edge_threshold: Any,
            estimator: Any, time_series: np.ndarray, n_volumes: int,
            recovery_note: str | None = None) -> _Record:
    n_regions = time_series.shape[1]
    summary = {
        "n_volumes": n_volumes,
        "n_volumes_kept": int(time_series.shape[0]),
        "n_volumes_scrubbed": int(n_volumes - time_series.shape[0]),
        "t_r": t_r,
        "n_regions": n_regions,
        "confounds": confound_names,
        "strategy": strategy,
        "n_edges": count_edges(estimator.precision_),
        "n_possible_edges": n_regions * (n_regions - 1) // 2,
    }
    if recovery_note is not None:
        summary["ground_truth_recovery"] = recovery_note
    parameters = {
        "standardize": standardize, "standardize_confounds": True, "t_r": t_r,
        "strategy": strategy, "edge_threshold": edge_threshold,
        "selection": selection_of(estimator),
        "estimator": type(estimator).__name__,
        "estimator_params": estimator.get_params(deep=False)
        if hasattr(estimator, "get_params") else None,
    }
    described_confounds = (describe_input(confounds)
                           if not isinstance(confounds, pd.DataFrame) or strategy is None
                           else {"strategy": strategy, "columns": confound_names})
    inputs = {"func": describe_input(func)}
    if atlas_info.name is not None or atlas_info.kind == "labels":
        # Said when it is news: a plain maps file (the demo's own atlas) reads as before.
        inputs["atlas"] = {"name": atlas_info.name, "kind": atlas_info.kind}
    inputs |= {"atlas_maps": describe_input(atlas_info.maps),
              "labels": describe_input(labels) if labels is not None else None,
              "confounds": described_confounds}
    return _Record(inputs=inputs, parameters=parameters, summary=summary)


def atlas_description(atlas_info: Bunch) -> dict:
    """The atlas as provenance records it: name, kind, size and files (with SHA-256).

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.pipeline import resolve_atlas
    >>> info = atlas_description(resolve_atlas(load_demo()))
    >>> info["kind"], info["n_regions"], len(info["files"]["maps"]["sha256"])
    ('maps', 39, 64)
    """
    files = atlas_info.get("files") or {}
    return {"name": atlas_info.get("name"), "kind": atlas_info.get("kind"),
            "n_regions": len(atlas_info.labels),
            "indices": atlas_info.get("indices"),
            "files": {"maps": describe_input(files.get("maps") or atlas_info.maps),
                      "labels": describe_input(files.get("labels"))}}


def _metadata(record: _Record, atlas_info: Bunch, estimator: Any, recovery: Bunch | None,
              timings: dict[str, float]) -> dict:
    """The content of ``connectome.json``."""
    return {
        "software": software_versions(),
        "inputs": record.inputs,
        "parameters": record.parameters,
        "summary": record.summary,
        "atlas": atlas_description(atlas_info),
        "labels": atlas_info.labels,
        "networks": atlas_info.networks,
        "region_coords": atlas_info.region_coords,
        "alpha": float(estimator.alpha_) if hasattr(estimator, "alpha_") else None,
        "cv_results": getattr(estimator, "cv_results_", None),
        # Per alpha of cv_results: some fold fit stopped early, its score could not compete.
        "cv_pruned": (np.asarray(estimator.cv_pruned_).any(axis=1).tolist()
                      if hasattr(estimator, "cv_pruned_") else None),
        # EBIC and StARS: the criterion along the path of penalties.
        "selection_path": getattr(estimator, "path_results_", None),
        "duality_gap": getattr(estimator, "duality_gap_", None),
        "converged": getattr(estimator, "converged_", None),
        "n_iter": getattr(estimator, "n_iter_", None),
        "ground_truth_recovery": dict(recovery) if recovery is not None else None,
        "timings_s": timings,
    }


# --------------------------------------------------------------------------- job


def run_connectome(
    func: str | os.PathLike | Any,
    atlas: Any,
    confounds: Any = None,
    *,
    labels: str | os.PathLike | Sequence[str] | None = None,
    strategy: str | None = None,
    t_r: float | None = None,
    standardize: str | bool = "zscore_sample",
    estimator: Any = None,
    edge_threshold: str | float = "80%",
    output_dir: str | os.PathLike | None = None,
    true_precision: np.ndarray | None = None,
    recovery_note: str | None = None,
    memory: str | None = None,
    verbose: int = 1,
) -> ConnectomeResult:
    """Compute a sparse functional connectome from one BOLD image, following the seed.

    The steps: check the arguments; load the atlas and open the BOLD image (once:
    its header gives the TR and the number of volumes, and the masker streams its
    data); read the confounds; extract the region signals; fit the estimator;
    describe the run; write the outputs (when ``output_dir`` is given).

    Parameters
    ----------
    func : path-like or nibabel image
        The 4D BOLD image (e.g. fMRIPrep's ``*_desc-preproc_bold.nii.gz``).
    atlas : str, path-like, image or dict-like
        An atlas name (``"msdl"``, ``"schaefer-400-7"``, ``"difumo-1024"``,
        ``"harvard-oxford"``...), a 4D probabilistic maps image, a 3D labels image or
        a dict such as a fetcher returns; see :func:`resolve_atlas`. Maps are read
        with :class:`~sparse_connectome.maskers.NiftiMapsMasker`, labels with
        :class:`~sparse_connectome.maskers.NiftiLabelsMasker` (mean; the columns
        follow the labels table's order).
    confounds : path-like, ndarray or DataFrame, optional
        Nuisance regressors, one row per volume. Mutually exclusive with
        ``strategy``.
    labels : path-like or sequence of str, optional
        Region names, or a CSV/TSV of them (for a labels image, a BIDS
        ``_dseg.tsv`` with ``index`` and ``name`` columns); see :func:`resolve_atlas`.
    strategy : {"simple", "scrubbing", "compcor"}, optional
        Read the fMRIPrep confounds file beside ``func`` with this denoising
        preset (:func:`~sparse_connectome.confounds.load_confounds_strategy`);
        scrubbing censors high-motion volumes.
    t_r : float, optional
        Repetition time in seconds; read from the image header when omitted.
    standardize : str or bool
        Standardisation of the region signals, as in the seed (``"zscore_sample"``).
    estimator : estimator, optional
        A covariance estimator with ``fit``; defaults to ``GraphicalLassoCV()``.
    edge_threshold : str or float
        Threshold for the glass-brain graphs and the 3D view (``"80%"`` keeps the
        20 % strongest edges, as the seed does).
    output_dir : path-like, optional
        Where to write the outputs (:data:`OUTPUT_FILES`). Nothing is written when
        omitted.
    true_precision : ndarray, optional
        A known ground-truth precision (the demo's); adds support recovery figures.
    recovery_note : str, optional
        Why no ground-truth recovery is reported (e.g. the demo run with another
        atlas than its own); recorded in the summary and the report.
    memory : str, optional
        Folder for the masker's on-disk cache.
    verbose : int
        0: silent; 1: one line per stage; 2: more detail.

    Returns
    -------
    ConnectomeResult

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> data = load_demo()
    >>> result = run_connectome(data.func[0], data, data.confounds[0], verbose=0)
    >>> result.precision.shape
    (39, 39)
    >>> bool(result.estimator.converged_)
    True
    """
    from ..covariance import GraphicalLassoCV
    from ..image import load_img

    func, t_r = _check_arguments(func, confounds, strategy, t_r, estimator, edge_threshold, memory)
    out_path = Path(output_dir) if output_dir is not None else None
    if out_path is not None:
        check_output_dir(out_path)
    estimator = GraphicalLassoCV() if estimator is None else estimator
    stages = _Stages(6 if out_path is not None else 4, verbose)

    with stages("atlas", "Loading the atlas"):
        atlas_info = resolve_atlas(atlas, labels)
        # The one opening of the BOLD image: header for the TR and the number of
        # volumes here; the masker streams its data from the same object.
        img = load_img(func, ndim=4, name="func")
        t_r = t_r_from_header(img) if t_r is None else t_r
        n_volumes = int(img.shape[3])

    with stages("confounds", "Reading confounds"):
        confounds, sample_mask, confound_names = _read_confounds(func, confounds, strategy)

    with stages("extract", "Extracting region time series"):
        time_series = _extract(atlas_info, img, confounds, sample_mask, standardize=standardize,
                               t_r=t_r, memory=memory, verbose=verbose)
        _check_time_series(time_series, func, n_volumes, atlas_info.labels, estimator)

    with stages("estimate", "Fitting the sparse inverse covariance (GraphicalLassoCV)"):
        partial, recovery = _estimate(estimator, time_series, func, true_precision)

    record = _record(func=func, atlas_info=atlas_info, labels=labels, confounds=confounds,
                     confound_names=confound_names, strategy=strategy, t_r=t_r,
                     standardize=standardize, edge_threshold=edge_threshold,
                     estimator=estimator, time_series=time_series, n_volumes=n_volumes,
                     recovery_note=recovery_note)
    result = ConnectomeResult(
        time_series=time_series, labels=atlas_info.labels, coords=atlas_info.region_coords,
        networks=atlas_info.networks, estimator=estimator, partial_correlation=partial,
        recovery=recovery, metadata=_metadata(record, atlas_info, estimator, recovery,
                                              stages.timings),
    )
    if out_path is not None:
        _write_outputs(out_path, result, record, stages, edge_threshold, true_precision)
    return result


def _write_outputs(out_path: Path, result: ConnectomeResult, record: _Record, stages: _Stages,
                   edge_threshold: str | float, true_precision: np.ndarray | None) -> None:
    """Tables, figures, report and ``connectome.json``, staged then moved in at once."""
    from ..report import write_report

    with staging_dir(out_path) as stage, missing_glyphs_collapsed():
        with stages("figures", "Drawing matrices, glass-brain graphs and the 3D view"):
            _write_tables(stage, result)
            _write_figures(stage, result, edge_threshold)
        with stages("report", "Writing the report"):
            write_report(
                stage / "report.html", time_series=result.time_series, labels=result.labels,
                coords=result.coords, networks=result.networks, estimator=result.estimator,
                inputs=record.inputs, parameters=record.parameters, summary=record.summary,
                true_precision=true_precision, edge_threshold=edge_threshold,
            )
        meta = result.metadata
        meta["timings_s"] = dict(stages.timings)
        meta["outputs"] = sorted(OUTPUT_FILES)
        (stage / "connectome.json").write_text(
            json.dumps(jsonable(meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    result.paths = {name: out_path / name for name in OUTPUT_FILES}


def _write_tables(stage: Path, result: ConnectomeResult) -> None:
    labels = result.labels
    pd.DataFrame(result.time_series, columns=labels).to_csv(
        stage / "timeseries.tsv", sep="\t", index=False, float_format="%.8g")
    for name, matrix in (("covariance", result.covariance), ("precision", result.precision),
                         ("partial_correlation", result.partial_correlation)):
        frame = pd.DataFrame(matrix, index=labels, columns=labels)
        frame.to_csv(stage / f"{name}.tsv", sep="\t", index_label="region",
                     float_format="%.10g")


@contextmanager
def missing_glyphs_collapsed() -> Iterator[None]:
    """matplotlib's one warning per missing glyph (per figure) becomes one line.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     with missing_glyphs_collapsed():
    ...         warnings.warn("Glyph 26085 (\\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from font(s) X.")
    ...         warnings.warn("Glyph 26085 (\\N{CJK UNIFIED IDEOGRAPH-65E5}) missing from font(s) X.")
    >>> len(caught), "1 character(s)" in str(caught[0].message)
    (1, True)
    """
    import re

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    missing: list[str] = []
    for item in caught:
        found = re.match(r"Glyph \d+ \((.*)\) missing from", str(item.message))
        if found:
            char = found.group(1)
            if char.startswith("\\N{"):
                import unicodedata

                try:
                    char = unicodedata.lookup(char[3:-1])
                except KeyError:
                    pass
            if char not in missing:
                missing.append(char)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if missing:
        warnings.warn(f"region labels hold {len(missing)} character(s) the figure font cannot "
                      f"draw ({''.join(missing[:10])}); they show as boxes in the PNG figures "
                      "(the tables and HTML files keep them)", DataWarning, stacklevel=3)


def _write_figures(stage: Path, result: ConnectomeResult, edge_threshold: str | float) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .. import plotting
    from ..errors import EdgeCapWarning
    from ..report._scale import bands_instead_of_labels

    # Past a few hundred regions, network bands instead of unreadable region labels.
    by_network = bands_instead_of_labels(len(result.labels), result.networks)
    names = {"networks": result.networks} if by_network else {"labels": result.labels}
    with warnings.catch_warnings():
        # The caps on edges drawn are the plotting defaults at scale: the log says it.
        warnings.simplefilter("ignore", EdgeCapWarning)
        for name, matrix, title in (
            ("covariance", result.covariance, "Covariance"),
            ("precision", -result.precision, "Sparse inverse covariance"),
        ):
            fig = plt.figure(figsize=(9, 7))
            try:
                plotting.plot_matrix(matrix, figure=fig, vmax=1, vmin=-1, title=title, **names)
                fig.savefig(stage / f"{name}_matrix.png", dpi=100)
            finally:
                plt.close(fig)
            display = plotting.plot_connectome(matrix, result.coords, title=title,
                                               edge_threshold=edge_threshold)
            try:
                display.savefig(stage / f"{name}_connectome.png")
            finally:
                display.close()
            if display.n_edges < display.n_edges_above_threshold:
                logger.info("%s glass brain: the strongest %d of the %d edges above the "
                            "threshold are drawn", name, display.n_edges,
                            display.n_edges_above_threshold)
        view = plotting.view_connectome(-result.precision, result.coords,
                                        edge_threshold=edge_threshold, node_labels=result.labels,
                                        node_size="degree",
                                        title="Sparse inverse covariance (negated)")
    view.save_as_html(stage / "connectome_3d.html")
