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

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from . import __version__
from ._bunch import Bunch
from .errors import AtlasError, InputError, OutputError, ParameterError

__all__ = ["run_connectome", "ConnectomeResult", "resolve_atlas", "OUTPUT_FILES"]

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

_DEPENDENCIES = ("numpy", "scipy", "nibabel", "pandas", "matplotlib", "numba", "plotly", "joblib")


@dataclass
class ConnectomeResult:
    """What :func:`run_connectome` computed and wrote.

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
        return _count_edges(self.estimator.precision_)


def _count_edges(precision: np.ndarray) -> int:
    upper = np.triu_indices_from(precision, k=1)
    return int(np.count_nonzero(precision[upper]))


# --------------------------------------------------------------------------- atlas


def _read_labels_table(path: Path) -> Bunch:
    """Read region names (and optional x, y, z and network columns) from a CSV/TSV."""
    if not path.is_file():
        raise AtlasError(f"labels file {str(path)!r} does not exist; expected a CSV or TSV "
                         "with a 'name' (or 'label') column")
    try:
        table = pd.read_csv(path, sep=None, engine="python")
    except Exception as exc:  # pandas raises many different classes here
        raise AtlasError(f"labels file {str(path)!r} could not be read as CSV/TSV: {exc}") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    name_col = next((c for c in ("name", "label", "labels", "region") if c in table.columns), None)
    if name_col is None:
        raise AtlasError(
            f"labels file {str(path)!r} has columns {list(table.columns)}; expected a 'name' "
            "(or 'label') column, optionally with x, y, z and 'net name' (or 'network')"
        )
    out = Bunch(labels=[str(v).strip() for v in table[name_col]])
    if {"x", "y", "z"} <= set(table.columns):
        out.region_coords = table[["x", "y", "z"]].to_numpy(dtype=float)
    net_col = next((c for c in ("net name", "network", "networks") if c in table.columns), None)
    if net_col is not None:
        out.networks = [str(v).strip() for v in table[net_col]]
    return out


def resolve_atlas(atlas: Any, labels: str | os.PathLike | Sequence[str] | None = None) -> Bunch:
    """Turn the ``atlas`` argument into maps, labels, coordinates and networks.

    Parameters
    ----------
    atlas : {"msdl"} or path-like or nibabel image or dict-like
        ``"msdl"`` fetches the MSDL atlas (online, cached); a path or image is a
        4D probabilistic maps image; a dict-like (such as the result of
        :func:`~sparse_connectome.datasets.fetch_atlas_msdl` or
        :func:`~sparse_connectome.datasets.load_demo`) must hold ``maps`` and may
        hold ``labels``, ``region_coords`` and ``networks``.
    labels : path-like or sequence of str, optional
        Region names, or a CSV/TSV holding them (``name`` column, optional
        ``x, y, z`` and ``net name``). Overrides the atlas's own.

    Returns
    -------
    Bunch
        ``maps``, ``labels``, ``region_coords`` (n, 3) and ``networks`` (or None).
    """
    if isinstance(atlas, str) and not os.path.splitext(atlas)[1] and not os.path.exists(atlas):
        if atlas.lower() != "msdl":
            raise AtlasError(
                f"atlas {atlas!r} is not a known atlas name nor an existing file; expected "
                "'msdl' or the path of a 4D probabilistic maps image (.nii or .nii.gz)"
            )
        from .datasets import fetch_atlas_msdl

        atlas = fetch_atlas_msdl()
    if isinstance(atlas, dict):
        if "maps" not in atlas:
            raise AtlasError(f"atlas has keys {sorted(atlas)}; expected at least 'maps'")
        info = Bunch(maps=atlas["maps"], labels=atlas.get("labels"),
                     region_coords=atlas.get("region_coords"), networks=atlas.get("networks"))
    else:
        if isinstance(atlas, (str, os.PathLike)) and not Path(atlas).is_file():
            raise AtlasError(f"atlas file {str(atlas)!r} does not exist; expected 'msdl' or "
                             "the path of a 4D probabilistic maps image")
        info = Bunch(maps=atlas, labels=None, region_coords=None, networks=None)

    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            table = _read_labels_table(Path(labels))
            info.labels = table.labels
            if "region_coords" in table:
                info.region_coords = table.region_coords
            if "networks" in table:
                info.networks = table.networks
        else:
            info.labels = [str(v) for v in labels]

    from .image import load_img

    maps_img = load_img(info.maps, ndim=4)
    n_maps = maps_img.shape[3]
    if info.labels is None:
        info.labels = [f"region_{i + 1:03d}" for i in range(n_maps)]
    info.labels = [str(v).strip() for v in info.labels]
    if len(info.labels) != n_maps:
        raise AtlasError(f"atlas labels: found {len(info.labels)} names for {n_maps} maps; "
                         "expected one name per map")
    if info.region_coords is None:
        from .plotting import find_probabilistic_atlas_cut_coords

        info.region_coords = find_probabilistic_atlas_cut_coords(maps_img)
    info.region_coords = np.asarray(info.region_coords, dtype=float).reshape(n_maps, 3)
    if info.networks is not None:
        info.networks = [str(v).strip() for v in info.networks]
        if len(info.networks) != n_maps:
            raise AtlasError(f"atlas networks: found {len(info.networks)} names for {n_maps} "
                             "maps; expected one per map")
    return info


# --------------------------------------------------------------------------- helpers


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe_input(value: Any) -> Any:
    """A JSON-able description of an input: path + SHA-256 for files."""
    if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
        path = Path(value).resolve()
        return {"path": str(path), "sha256": _sha256(path), "bytes": path.stat().st_size}
    if isinstance(value, (list, tuple)):
        return [_describe_input(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array_shape": list(value.shape), "sha256": hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, pd.DataFrame):
        return {"dataframe_columns": [str(c) for c in value.columns], "rows": len(value)}
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return repr(value)


def _versions() -> dict[str, str]:
    versions = {"sparse_connectome": __version__, "python": platform.python_version()}
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            versions[name] = "not installed"
    return versions


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _t_r_from_header(func: Any) -> float | None:
    from .image import load_img

    img = load_img(func[0] if isinstance(func, (list, tuple)) else func, ndim=4)
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    t_r = float(zooms[3])
    _, time_unit = img.header.get_xyzt_units()
    if time_unit == "msec":
        t_r /= 1000.0
    elif time_unit == "usec":
        t_r /= 1e6
    return t_r


def _check_output_dir(output_dir: Path) -> None:
    """Fail before any work when the output folder cannot be written."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"output folder {str(output_dir)!r} exists and is not a folder")
    ancestor = output_dir if output_dir.exists() else output_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"output folder {str(output_dir)!r} cannot be created: "
                          f"{str(ancestor)!r} is a file, not a folder")
    # Try for real: permission bits say nothing for root or on read-only mounts.
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise OutputError(f"output folder {str(output_dir)!r} cannot be written: "
                          f"{exc.strerror or exc} in {str(ancestor)!r}") from None


@contextmanager
def _staging(output_dir: Path) -> Iterator[Path]:
    """A hidden folder beside ``output_dir`` whose files move into it on success."""
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=parent))
    try:
        yield stage
        output_dir.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.iterdir()):
            os.replace(item, output_dir / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
    memory: str | None = None,
    verbose: int = 1,
) -> ConnectomeResult:
    """Compute a sparse functional connectome from one BOLD image, following the seed.

    Parameters
    ----------
    func : path-like or nibabel image
        The 4D BOLD image (e.g. fMRIPrep's ``*_desc-preproc_bold.nii.gz``).
    atlas : {"msdl"}, path-like, image or dict-like
        The probabilistic atlas; see :func:`resolve_atlas`.
    confounds : path-like, ndarray or DataFrame, optional
        Nuisance regressors, one row per volume. Mutually exclusive with
        ``strategy``.
    labels : path-like or sequence of str, optional
        Region names (or a CSV/TSV of them); see :func:`resolve_atlas`.
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
    memory : str, optional
        Folder for the masker's on-disk cache.
    verbose : int
        0: silent; 1: one line per stage; 2: more detail.

    Returns
    -------
    ConnectomeResult
    """
    from .covariance import GraphicalLassoCV
    from .connectome import precision_to_partial_correlation, support_recovery
    from .maskers import NiftiMapsMasker

    if confounds is not None and strategy is not None:
        raise ParameterError("confounds and strategy were both given; pass a confounds table "
                             "or a denoising strategy, not both")
    if strategy is not None and strategy not in ("simple", "scrubbing", "compcor"):
        raise ParameterError(f"strategy={strategy!r}; expected 'simple', 'scrubbing' or "
                             "'compcor'")
    if t_r is not None and not (np.isfinite(t_r) and t_r > 0):
        raise ParameterError(f"t_r={t_r!r}; expected a positive number of seconds")
    out_path = Path(output_dir) if output_dir is not None else None
    if out_path is not None:
        _check_output_dir(out_path)
    if isinstance(func, (list, tuple)):
        if len(func) != 1:
            raise InputError(f"func holds {len(func)} images; run_connectome takes one")
        func = func[0]
    if isinstance(func, (str, os.PathLike)) and not Path(func).is_file():
        raise InputError(f"func file {str(func)!r} does not exist; expected a 4D NIfTI image")

    stages = _Stages(6 if out_path is not None else 4, verbose)
    sample_mask = None
    confound_names: list[str] = []

    with stages("atlas", "Loading the atlas"):
        atlas_info = resolve_atlas(atlas, labels)
        header_t_r = _t_r_from_header(func)
        if t_r is None:
            t_r = header_t_r

    with stages("confounds", "Reading confounds"):
        if strategy is not None:
            from .confounds import load_confounds_strategy

            if not isinstance(func, (str, os.PathLike)):
                raise InputError("strategy needs func as a file path, to find the fMRIPrep "
                                 "confounds file beside it")
            confounds, sample_mask = load_confounds_strategy(str(func), denoise_strategy=strategy)
        if isinstance(confounds, pd.DataFrame):
            confound_names = [str(c) for c in confounds.columns]
        elif isinstance(confounds, (str, os.PathLike)):
            from .confounds import read_confounds_tsv

            confound_names = [str(c) for c in read_confounds_tsv(confounds).columns]
        elif confounds is not None:
            confound_names = [f"confound_{i}" for i in range(np.atleast_2d(
                np.asarray(confounds).T).shape[0])]

    with stages("extract", "Extracting region time series"):
        masker = NiftiMapsMasker(atlas_info.maps, standardize=standardize,
                                 standardize_confounds=True, t_r=t_r, memory=memory,
                                 memory_level=1 if memory else 0, verbose=max(verbose - 1, 0))
        time_series = masker.fit_transform(func, confounds=confounds, sample_mask=sample_mask)
        from .image import load_img

        n_volumes = int(load_img(func, ndim=4).shape[3])

    with stages("estimate", "Fitting the sparse inverse covariance (GraphicalLassoCV)"):
        estimator = GraphicalLassoCV() if estimator is None else estimator
        estimator.fit(time_series)
        partial = precision_to_partial_correlation(estimator.precision_)
        recovery = (support_recovery(estimator.precision_, true_precision)
                    if true_precision is not None else None)

    n_regions = time_series.shape[1]
    summary = {
        "n_volumes": n_volumes,
        "n_volumes_kept": int(time_series.shape[0]),
        "n_volumes_scrubbed": int(n_volumes - time_series.shape[0]),
        "t_r": t_r,
        "n_regions": n_regions,
        "confounds": confound_names,
        "strategy": strategy,
        "n_edges": _count_edges(estimator.precision_),
        "n_possible_edges": n_regions * (n_regions - 1) // 2,
    }
    parameters = {
        "standardize": standardize, "standardize_confounds": True, "t_r": t_r,
        "strategy": strategy, "edge_threshold": edge_threshold,
        "estimator": type(estimator).__name__,
        "estimator_params": estimator.get_params(deep=False)
        if hasattr(estimator, "get_params") else None,
    }
    inputs = {"func": _describe_input(func),
              "atlas_maps": _describe_input(atlas_info.maps),
              "labels": _describe_input(labels) if labels is not None else None,
              "confounds": _describe_input(confounds) if not isinstance(
                  confounds, pd.DataFrame) or strategy is None else
              {"strategy": strategy, "columns": confound_names}}
    meta = {
        "software": _versions(),
        "inputs": inputs,
        "parameters": parameters,
        "summary": summary,
        "labels": atlas_info.labels,
        "networks": atlas_info.networks,
        "region_coords": atlas_info.region_coords,
        "alpha": float(estimator.alpha_) if hasattr(estimator, "alpha_") else None,
        "cv_results": getattr(estimator, "cv_results_", None),
        "duality_gap": getattr(estimator, "duality_gap_", None),
        "converged": getattr(estimator, "converged_", None),
        "n_iter": getattr(estimator, "n_iter_", None),
        "ground_truth_recovery": dict(recovery) if recovery is not None else None,
        "timings_s": stages.timings,
    }
    result = ConnectomeResult(
        time_series=time_series, labels=atlas_info.labels, coords=atlas_info.region_coords,
        networks=atlas_info.networks, estimator=estimator, partial_correlation=partial,
        recovery=recovery, metadata=meta,
    )
    if out_path is None:
        return result

    with _staging(out_path) as stage:
        with stages("figures", "Drawing matrices, glass-brain graphs and the 3D view"):
            _write_tables(stage, result)
            _write_figures(stage, result, edge_threshold)
        with stages("report", "Writing the report"):
            from .report import write_report

            write_report(
                stage / "report.html", time_series=time_series, labels=result.labels,
                coords=result.coords, networks=result.networks, estimator=estimator,
                inputs=inputs, parameters=parameters, summary=summary,
                true_precision=true_precision, edge_threshold=edge_threshold,
            )
        meta["timings_s"] = dict(stages.timings)
        meta["outputs"] = sorted(OUTPUT_FILES)
        (stage / "connectome.json").write_text(
            json.dumps(_jsonable(meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    result.paths = {name: out_path / name for name in OUTPUT_FILES}
    return result


def _write_tables(stage: Path, result: ConnectomeResult) -> None:
    labels = result.labels
    pd.DataFrame(result.time_series, columns=labels).to_csv(
        stage / "timeseries.tsv", sep="\t", index=False, float_format="%.8g")
    for name, matrix in (("covariance", result.covariance), ("precision", result.precision),
                         ("partial_correlation", result.partial_correlation)):
        frame = pd.DataFrame(matrix, index=labels, columns=labels)
        frame.to_csv(stage / f"{name}.tsv", sep="\t", index_label="region",
                     float_format="%.10g")


def _write_figures(stage: Path, result: ConnectomeResult, edge_threshold: str | float) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import plotting

    for name, matrix, title in (
        ("covariance", result.covariance, "Covariance"),
        ("precision", -result.precision, "Sparse inverse covariance"),
    ):
        fig = plt.figure(figsize=(9, 7))
        try:
            plotting.plot_matrix(matrix, labels=result.labels, figure=fig, vmax=1, vmin=-1,
                                 title=title)
            fig.savefig(stage / f"{name}_matrix.png", dpi=100)
        finally:
            plt.close(fig)
        plotting.plot_connectome(matrix, result.coords, title=title,
                                 edge_threshold=edge_threshold,
                                 output_file=stage / f"{name}_connectome.png")
    view = plotting.view_connectome(-result.precision, result.coords,
                                    edge_threshold=edge_threshold, node_labels=result.labels,
                                    title="Sparse inverse covariance (negated)")
    view.save_as_html(stage / "connectome_3d.html")
