"""The self-contained HTML report of one connectome run.

One file that opens offline: matplotlib figures are embedded as base64 PNG
images, the interactive 3D view inline, plotly.js once. Every string that comes
from the input (labels, file names, parameter values) is HTML-escaped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._utils.atomic import atomic_write_text
from ..errors import InputError, OutputError, ShapeMismatchError
from ._html import esc, html_page, kv_table, png_img
from ._scale import (
    LARGE_MATRIX,
    bands_instead_of_labels,
    capped_glass_brain,
    capped_view_figure,
    edges_drawn_note,
    matrix_figure,
    matrix_row,
)

__all__ = ["build_report_html", "write_report"]

logger = logging.getLogger(__name__)


#: A carpet of more regions shows rows that each average this many at most (the picture
#: has about that many pixel rows: averaging is what the eye would get, in a lighter PNG).
CARPET_ROWS = 300


def _carpet_figure(time_series: np.ndarray, labels: Sequence[str], t_r: float | None):
    import matplotlib.pyplot as plt

    from ..plotting.matrix import MAX_LABEL_STEP, label_layout

    n_t, n_r = time_series.shape
    z = _zscore(time_series)
    group = int(np.ceil(n_r / CARPET_ROWS))
    if group > 1:
        starts = np.arange(0, n_r, group)
        z = _zscore(np.add.reduceat(z, starts, axis=1) / np.diff(np.append(starts, n_r)))
    height = min(max(3.0, 0.09 * n_r + 1.2), 9.0 if group == 1 else 5.5)
    fig = plt.figure(figsize=(10.5, height))
    longest = max((len(s) for s in labels), default=0)
    left = min(0.3, (longest * 6.0 * 0.55 / 72 + 0.3) / 10.5)
    ax = fig.add_axes((left, 0.14, 0.86 - left, 0.78))
    extent_x = (0, n_t * t_r) if t_r else (0, n_t)
    image = ax.imshow(z.T, aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3,
                      interpolation="nearest", extent=(extent_x[0], extent_x[1], n_r - 0.5,
                                                       -0.5))
    step, fontsize = label_layout(n_r, ax.get_position().height * height * 72)
    if step <= MAX_LABEL_STEP and group == 1:
        ticks = np.arange(0, n_r, step)
        ax.set_yticks(ticks)
        ax.set_yticklabels([str(labels[i]) for i in ticks], fontsize=min(fontsize, 7))
    else:  # one label every dozen rows names nothing: region numbers instead
        ax.set_ylabel("region" if group == 1 else f"regions (each row: the mean of {group})",
                      fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("time (s)" if t_r else "volume", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Region signals (z-scored)", fontsize=11, loc="left")
    cax = fig.add_axes((0.88, 0.14, 0.012, 0.78))
    cb = fig.colorbar(image, cax=cax)
    cb.ax.tick_params(labelsize=7)
    return fig


def _zscore(signals: np.ndarray) -> np.ndarray:
    std = signals.std(axis=0)
    return (signals - signals.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _cv_figure(estimator) -> Any:
    import matplotlib.pyplot as plt

    cv = getattr(estimator, "cv_results_", None)
    if not cv or "alphas" not in cv or "mean_test_score" not in cv:
        return None
    alphas = np.asarray(cv["alphas"], dtype=float)
    mean = np.asarray(cv["mean_test_score"], dtype=float)
    std = np.asarray(cv.get("std_test_score", np.zeros_like(mean)), dtype=float)
    keep = (alphas > 0) & np.isfinite(mean)
    if not keep.any():
        return None
    order = np.argsort(alphas[keep])
    a, m, s = alphas[keep][order], mean[keep][order], std[keep][order]
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    split_keys = sorted((k for k in cv if k.startswith("split") and k.endswith("_test_score")),
                        key=lambda k: int(k[5:-11]) if k[5:-11].isdigit() else 0)
    for i, key in enumerate(split_keys):
        scores = np.asarray(cv[key], dtype=float)[keep][order]
        ax.plot(a, scores, color="#9aa5b1", linewidth=0.8, alpha=0.8,
                label="folds" if i == 0 else None)
    ax.fill_between(a, m - s, m + s, color="#1f77b4", alpha=0.15, linewidth=0)
    ax.plot(a, m, color="#1f77b4", marker="o", markersize=3.5, linewidth=1.6,
            label="mean test score")
    pruned = getattr(estimator, "cv_pruned_", None)
    if pruned is not None and np.shape(pruned)[0] == alphas.size:
        # Fits stopped early (their scores could not compete): the iterate's score.
        stopped = np.asarray(pruned, dtype=bool).any(axis=1)[keep][order]
        if stopped.any():
            ax.plot(a[stopped], m[stopped], linestyle="none", marker="o", markersize=7,
                    markerfacecolor="white", markeredgecolor="#1f77b4",
                    label="fits stopped early: could not compete")
    alpha_ = getattr(estimator, "alpha_", None)
    if alpha_ is not None and float(alpha_) > 0:
        ax.axvline(float(alpha_), color="#d62728", linestyle="--", linewidth=1.2,
                   label=f"chosen alpha = {float(alpha_):.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (L1 penalty)")
    ax.set_ylabel("held-out log-likelihood")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Cross-validation", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def _criterion_figure(estimator) -> Any:
    """The criterion along the path of penalties of EBIC or StARS, with the choice."""
    import matplotlib.pyplot as plt

    path = getattr(estimator, "path_results_", None)
    if not path or "alphas" not in path:
        return None
    alphas = np.asarray(path["alphas"], dtype=float)
    if "ebic" in path:
        curves = [("extended BIC", np.asarray(path["ebic"], dtype=float), "#1f77b4")]
        ylabel, title, limit = "EBIC (lower is better)", "Extended BIC", None
    elif "instability" in path:
        curves = [("instability", np.asarray(path["instability"], dtype=float), "#9aa5b1"),
                  ("monotonised", np.asarray(path["monotone_instability"], dtype=float),
                   "#1f77b4")]
        ylabel, title = "edge instability", "Stability selection (StARS)"
        limit = float(getattr(estimator, "beta", np.nan))
    else:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for name, values, color in curves:
        keep = (alphas > 0) & np.isfinite(values)
        ax.plot(alphas[keep], values[keep], color=color, marker="o", markersize=3,
                linewidth=1.4, label=name)
    if limit is not None and np.isfinite(limit):
        ax.axhline(limit, color="#555", linestyle=":", linewidth=1, label=f"beta = {limit:g}")
    alpha_ = getattr(estimator, "alpha_", None)
    if alpha_ is not None and float(alpha_) > 0:
        ax.axvline(float(alpha_), color="#d62728", linestyle="--", linewidth=1.2,
                   label=f"chosen alpha = {float(alpha_):.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (L1 penalty)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def _matrix_figure(matrix, labels, title, networks=None):
    bound = float(np.max(np.abs(matrix - np.diag(np.diag(matrix))))) or 1.0
    return matrix_figure(matrix, labels, networks, title, vmin=-bound, vmax=bound)


def _support_figure(estimated: np.ndarray, true: np.ndarray, labels, networks=None):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..plotting.matrix import label_layout

    n = estimated.shape[0]
    est = np.abs(estimated) > 0
    tru = np.abs(true) > 0
    code = np.zeros((n, n))
    code[est & tru] = 1  # true positive
    code[est & ~tru] = 2  # false positive
    code[~est & tru] = 3  # false negative
    np.fill_diagonal(code, np.nan)
    if n > LARGE_MATRIX or bands_instead_of_labels(n, networks):
        return _large_support_figure(code, labels, networks)
    fig = plt.figure(figsize=(7.8, 6.2))
    ax = fig.add_axes((0.17, 0.2, 0.56, 0.7))
    cmap = ListedColormap(["#ffffff", "#2b8a3e", "#f08c00", "#7048e8"])
    ax.imshow(np.ma.masked_invalid(code), cmap=cmap, vmin=-0.5, vmax=3.5,
              interpolation="nearest")
    step, fontsize = label_layout(n, 0.7 * 6.2 * 72)
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([str(labels[i]) for i in ticks], rotation=90, fontsize=min(fontsize, 7))
    ax.set_yticklabels([str(labels[i]) for i in ticks], fontsize=min(fontsize, 7))
    ax.set_title("Estimated vs true support", fontsize=11, loc="left")
    ax.legend(handles=[Patch(color="#2b8a3e", label="true positive"),
                       Patch(color="#f08c00", label="false positive"),
                       Patch(color="#7048e8", label="false negative")],
              loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return fig


_SUPPORT_COLORS = ("#ffffff", "#2b8a3e", "#f08c00", "#7048e8")
_SUPPORT_NAMES = ("true positive", "false positive", "false negative")


def _large_support_figure(code: np.ndarray, labels, networks):
    """The support comparison at many regions: network bands (or no labels), larger."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig = matrix_figure(code, labels, networks, "Estimated vs true support",
                        cmap=ListedColormap(list(_SUPPORT_COLORS)), vmin=-0.5, vmax=3.5,
                        colorbar=False)
    fig.axes[0].legend(handles=[Patch(color=c, label=name) for c, name in
                                zip(_SUPPORT_COLORS[1:], _SUPPORT_NAMES)],
                       loc="upper right", fontsize=9, frameon=False)
    return fig


def _summary_rows(summary: Mapping[str, Any] | None, n_volumes_ts: int,
                  n_regions: int) -> list[tuple[str, Any]]:
    summary = dict(summary or {})
    names = {
        "n_volumes": "volumes", "n_volumes_kept": "volumes kept",
        "n_volumes_scrubbed": "volumes scrubbed", "t_r": "TR (s)", "n_regions": "regions",
        "confounds": "confounds used", "strategy": "denoising strategy",
    }
    rows: list[tuple[str, Any]] = []
    summary.setdefault("n_volumes_kept", n_volumes_ts)
    summary.setdefault("n_regions", n_regions)
    for key, name in names.items():
        if key in summary:
            rows.append((name, summary.pop(key)))
    skip = {"n_edges", "n_possible_edges"}
    rows.extend((k, v) for k, v in summary.items() if k not in skip)
    return rows


def _check_report_inputs(time_series: Any, labels: Sequence[str], estimator: Any
                         ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    ts = np.asarray(time_series, dtype=float)
    if ts.ndim != 2:
        raise InputError(f"time_series has shape {ts.shape}; expected (n_volumes, n_regions)")
    labels = [str(v) for v in labels]
    n_regions = ts.shape[1]
    if len(labels) != n_regions:
        raise ShapeMismatchError(f"labels holds {len(labels)} names for {n_regions} regions "
                                 "in time_series; expected one per region")
    covariance = np.asarray(estimator.covariance_, dtype=float)
    precision = np.asarray(estimator.precision_, dtype=float)
    if covariance.shape != (n_regions, n_regions) or precision.shape != covariance.shape:
        raise ShapeMismatchError(f"estimator matrices have shape {covariance.shape}; expected "
                                 f"({n_regions}, {n_regions}) to match time_series")
    return ts, labels, covariance, precision


def _inputs_section(inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> str:
    not_recorded = "<p class='note'>not recorded</p>"
    return ("<h2 id='inputs'>Inputs and parameters</h2>"
            + "<h3>Inputs</h3>" + (kv_table(list(inputs.items())) if inputs else not_recorded)
            + "<h3>Parameters</h3>"
            + (kv_table(list(parameters.items())) if parameters else not_recorded))


def _data_section(ts: np.ndarray, labels: list[str], summary: Mapping[str, Any] | None) -> str:
    t_r = (summary or {}).get("t_r")
    return ("<h2 id='data'>Data</h2>"
            + kv_table(_summary_rows(summary, ts.shape[0], ts.shape[1]))
            + png_img(_carpet_figure(ts, labels, t_r), "carpet plot of region signals"))


def _model_section(estimator: Any, precision: np.ndarray) -> str:
    """Model selection, convergence and sparsity."""
    parts = ["<h2 id='model'>Sparse inverse covariance</h2>"]
    cv_fig = _cv_figure(estimator)
    if cv_fig is not None:
        parts.append(png_img(cv_fig, "cross-validation curve"))
    criterion_fig = _criterion_figure(estimator)
    if criterion_fig is not None:
        parts.append(png_img(criterion_fig, "penalty selection criterion"))
    n_regions = precision.shape[0]
    iu = np.triu_indices(n_regions, k=1)
    n_edges = int(np.count_nonzero(precision[iu]))
    n_possible = len(iu[0])
    converged = getattr(estimator, "converged_", None)
    conv_html = ("<span class='note'>not recorded</span>" if converged is None else
                 ("<span class='ok'>yes</span>" if converged else
                  "<span class='warn'>no (stopped at the iteration limit)</span>"))
    gap = getattr(estimator, "duality_gap_", None)
    rows = [("chosen alpha", getattr(estimator, "alpha_", None)),
            ("duality gap", float(gap) if gap is not None else None),
            ("iterations", getattr(estimator, "n_iter_", None))]
    table = kv_table(rows).replace(
        "</table>", f"<tr><th>converged</th><td>{conv_html}</td></tr>"
        f"<tr><th>edges kept</th><td><code>{n_edges} of {n_possible} "
        f"({100.0 * n_edges / max(n_possible, 1):.1f} %)</code></td></tr></table>")
    parts.append("<h3>Convergence and sparsity</h3>" + table)
    return "".join(parts)


def _matrices_section(covariance: np.ndarray, precision: np.ndarray, labels: list[str],
                      networks: Sequence[str] | None = None) -> str:
    figures = [png_img(_matrix_figure(covariance, labels, "Covariance", networks),
                       "covariance matrix"),
               png_img(_matrix_figure(-precision, labels, "Sparse inverse covariance (negated)",
                                      networks), "negated precision matrix")]
    return "<h2 id='matrices'>Matrices</h2>" + matrix_row(figures, len(labels))


def _graphs_section(covariance: np.ndarray, precision: np.ndarray, coords: np.ndarray,
                    networks: Sequence[str] | None, edge_threshold: Any) -> str:
    images, notes = [], []
    for matrix, name in ((covariance, "Covariance"),
                         (-precision, "Sparse inverse covariance (negated)")):
        image, note = capped_glass_brain(matrix, coords, networks, edge_threshold, name,
                                         f"{name} glass-brain graph")
        images.append(image)
        notes.append(note)
    return (f"<h2 id='graphs'>Connectome graphs</h2><p class='note'>edge threshold: "
            f"{esc(edge_threshold)}.{''.join(notes)}</p>" + "".join(images))


def _view3d_section(precision: np.ndarray, coords: np.ndarray, labels: list[str],
                    networks: Sequence[str] | None, edge_threshold: Any,
                    shared_mesh: bool = False, edge_stability: Any = None) -> str:
    from ..plotting.view3d import figure_div

    figure = capped_view_figure(-precision, coords, edge_threshold=edge_threshold,
                                node_labels=labels, node_networks=networks,
                                colorbar_fontsize=18, edge_stability=edge_stability,
                                node_size="degree")
    stability_note = (" Edge width shows each edge's stability (its selection frequency "
                      "over StARS's subsamples)." if edge_stability is not None else "")
    meta = figure["meta"]
    cap_note = edges_drawn_note(meta["n_edges"], meta["n_edges_above_threshold"])
    if cap_note:
        stability_note += cap_note + " The slider above the view draws more or fewer."
    return ("<h2 id='view3d'>Interactive 3D view</h2><p class='note'>negated "
            "precision; drag to rotate, hover a node or an edge's midpoint for "
            "labels and weights. A node's size grows with its number of edges drawn."
            f"{stability_note}</p>"
            + figure_div(figure, "report-connectome-3d", height="620px",
                         shared_mesh=shared_mesh))


def _truth_section(precision: np.ndarray, true_precision: Any, labels: list[str],
                   networks: Sequence[str] | None = None) -> str:
    from ..connectome import support_recovery

    true = np.asarray(true_precision, dtype=float)
    if true.shape != precision.shape:
        raise ShapeMismatchError(f"true_precision has shape {true.shape}; expected "
                                 f"{precision.shape}")
    rec = support_recovery(precision, true)
    return ("<h2 id='truth'>Recovery of the true connectome</h2>"
            + kv_table([
                ("precision", f"{rec.precision:.3f}"), ("recall", f"{rec.recall:.3f}"),
                ("F1", f"{rec.f1:.3f}"), ("true edges", rec.n_true_edges),
                ("estimated edges", rec.n_estimated_edges),
                ("true positives", rec.true_positives),
                ("false positives", rec.false_positives),
                ("false negatives", rec.false_negatives)])
            + png_img(_support_figure(precision, true, labels, networks),
                      "estimated against true support"))


def build_report_html(
    *,
    time_series: Any,
    labels: Sequence[str],
    coords: Any,
    estimator: Any,
    networks: Sequence[str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    true_precision: Any = None,
    edge_threshold: str | float | None = "80%",
    title: str = "sparse-connectome report",
    plotly_src: str | None = None,
    mesh_src: str | None = None,
) -> str:
    """The report as one HTML string (see :func:`write_report`).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import GraphicalLassoCV
    >>> ts = np.random.default_rng(0).standard_normal((60, 4))
    >>> html = build_report_html(time_series=ts, labels=list("ABCD"),
    ...                          coords=[[-40, 0, 0], [40, 0, 0], [0, 40, 0], [0, -40, 0]],
    ...                          estimator=GraphicalLassoCV(cv=3).fit(ts),
    ...                          plotly_src="plotly.min.js")
    >>> html.startswith("<!DOCTYPE html>"), '<script src="plotly.min.js"' in html
    (True, True)
    """
    ts, labels, covariance, precision = _check_report_inputs(time_series, labels, estimator)
    coords = np.asarray(coords, dtype=float)
    sections = [
        _inputs_section(inputs, parameters),
        _data_section(ts, labels, summary),
        _model_section(estimator, precision),
        _matrices_section(covariance, precision, labels, networks),
        _graphs_section(covariance, precision, coords, networks, edge_threshold),
        _view3d_section(precision, coords, labels, networks, edge_threshold,
                        shared_mesh=mesh_src is not None,
                        edge_stability=getattr(estimator, "edge_stability_", None)),
    ]
    nav = [("inputs", "Inputs"), ("data", "Data"), ("model", "Model"), ("matrices", "Matrices"),
           ("graphs", "Graphs"), ("view3d", "3D view")]
    if true_precision is not None:
        sections.append(_truth_section(precision, true_precision, labels, networks))
        nav.append(("truth", "Ground truth"))
    subtitle = (f"sparse-connectome {esc(__version__)} · {ts.shape[1]} regions · "
                f"{ts.shape[0]} volumes")
    return html_page(title, subtitle, nav, sections, plotly_src=plotly_src, mesh_src=mesh_src)


def write_report(
    path: str | os.PathLike,
    *,
    time_series: Any,
    labels: Sequence[str],
    coords: Any,
    estimator: Any,
    networks: Sequence[str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    true_precision: Any = None,
    edge_threshold: str | float | None = "80%",
    title: str = "sparse-connectome report",
    plotly_src: str | None = None,
    mesh_src: str | None = None,
) -> Path:
    """Write a self-contained HTML report of a connectome run.

    Parameters
    ----------
    path : path-like
        The HTML file to write (atomically).
    time_series : array of shape (n_volumes, n_regions)
        The cleaned region signals.
    labels : sequence of str
        Region names.
    coords : array of shape (n_regions, 3)
        Region coordinates in MNI mm.
    estimator : fitted GraphicalLassoCV (or alike)
        Needs ``covariance_`` and ``precision_``; ``alpha_``, ``cv_results_``,
        ``duality_gap_``, ``converged_`` and ``n_iter_`` are shown when present.
    networks : sequence of str, optional
        Network of each region: node colours, and, once region labels would be
        thinned (past about 40 regions), matrices grouped by network with
        network bands.
    inputs : dict, optional
        Name -> path or description; existing files are listed with SHA-256.
    parameters : dict, optional
    summary : dict, optional
        ``n_volumes``, ``t_r``, ``n_regions``, ``confounds`` (column names),
        ``n_volumes_scrubbed``...
    true_precision : array, optional
        Ground truth: adds the support comparison with precision, recall, F1.
    edge_threshold : float or str
        For the glass-brain graphs and the 3D view.
    title : str
    plotly_src : str, optional
        URL (usually relative) of a shared copy of plotly.js, as a cohort's
        reports use; plotly.js is embedded in the page when omitted.
    mesh_src : str, optional
        URL of a shared copy of the 3D view's brain surface
        (:func:`~sparse_connectome.plotting.view3d.brain_mesh_js`); embedded when omitted.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.pipeline import run_connectome
    >>> data = load_demo()
    >>> result = run_connectome(data.func[0], data, data.confounds[0], verbose=0)
    >>> path = write_report(Path(tempfile.mkdtemp()) / "report.html",
    ...                     time_series=result.time_series, labels=result.labels,
    ...                     coords=result.coords, estimator=result.estimator,
    ...                     true_precision=data.true_precision)
    >>> path.stat().st_size > 1_000_000  # figures and plotly.js inline: it opens offline
    True
    """
    text = build_report_html(
        time_series=time_series, labels=labels, coords=coords, estimator=estimator,
        networks=networks, inputs=inputs, parameters=parameters, summary=summary,
        true_precision=true_precision, edge_threshold=edge_threshold, title=title,
        plotly_src=plotly_src, mesh_src=mesh_src)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {str(path)!r}: {exc}") from None
    logger.info("report written to %s (%.1f MB)", path, len(text) / 1e6)
    return Path(path)
