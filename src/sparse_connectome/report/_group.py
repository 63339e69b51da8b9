"""The HTML report of a cohort run: ``group/report.html``.

One page over every run of the cohort: a summary, the QC table (one row per
run, linked to the run's own report), the failures, the distributions of the
chosen alpha, the number of edges, the head motion and the scrubbing, the mean
partial-correlation and edge-consistency matrices, and the mean connectome as a
glass-brain graph and an interactive 3D view. Figures are embedded PNG images;
plotly.js is loaded from a shared file (``plotly_src``) or embedded once. Every
string that comes from the input (participant labels, error messages, region
labels, parameter values) is HTML-escaped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .._utils.atomic import atomic_write_text
from ..errors import InputError, OutputError, ShapeMismatchError
from ._group_model import group_model_section
from ._html import esc, html_page, kv_table, png_img
from ._scale import (
    capped_glass_brain,
    capped_view_figure,
    edges_drawn_note,
    matrix_figure,
    matrix_row,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["build_group_report_html", "write_group_report"]

logger = logging.getLogger(__name__)

#: Statuses of a run whose connectome exists.
SUCCESS = ("computed", "reused")
#: Columns the table must hold (the cohort's ``participants_connectome.tsv``).
REQUIRED_COLUMNS = (
    "participant_id", "session", "task", "run", "status", "error", "alpha", "duality_gap",
    "converged", "n_edges", "n_volumes", "n_volumes_kept", "n_volumes_scrubbed", "mean_fd",
    "seconds", "peak_mb",
)
#: QC table: (column, header, format) in display order; formats are read by _cell.
QC_COLUMNS = (
    ("participant_id", "participant", "text"), ("session", "session", "text"),
    ("task", "task", "text"), ("run", "run", "text"), ("status", "status", "text"),
    ("alpha", "alpha", "g3"), ("duality_gap", "gap", "e2"), ("converged", "converged", "bool"),
    ("n_edges", "edges", "int"), ("n_volumes", "volumes", "int"),
    ("n_volumes_kept", "kept", "int"), ("n_volumes_scrubbed", "scrubbed", "int"),
    ("mean_fd", "mean FD (mm)", "g3"), ("seconds", "seconds", "f1"),
    ("peak_mb", "peak MB", "f0"),
)
QC_STYLE = ("<style>table.qc td, table.qc th { white-space: nowrap; } "
            "table.qc td.num { text-align: right; font-variant-numeric: tabular-nums; } "
            "div.scroll { overflow-x: auto; }</style>")
MISSING = "–"
#: Numbers are right-aligned in the QC table.
NUM_CLASS = dict.fromkeys(("int", "g3", "e2", "f1", "f0"), " class='num'")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == "" or value.strip().lower() in ("nan", "none", "n/a")
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        # pandas' NA and NaT refuse bool() and isnan(); anything else is a value.
        return str(value) in ("<NA>", "NaT")


def _number(value: Any) -> float:
    """``value`` as a float, NaN when missing or not a number."""
    if _is_missing(value) or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flag(value: Any) -> bool | None:
    """A converged flag as True / False / None (missing), from a bool, number or text."""
    if _is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        return None
    return bool(value)


def _cell(value: Any, kind: str) -> str:
    """Escaped, briefly formatted text of one QC table cell."""
    if kind == "bool":
        flag = _flag(value)
        return MISSING if flag is None else ("yes" if flag else "<span class='warn'>no</span>")
    if kind == "text":
        return MISSING if _is_missing(value) else esc(value)
    number = _number(value)
    if not math.isfinite(number):
        return MISSING if _is_missing(value) else esc(value)
    formats = {"int": "{:.0f}", "g3": "{:.3g}", "e2": "{:.2e}", "f1": "{:.1f}", "f0": "{:.0f}"}
    return esc(formats[kind].format(number))


def _status(table: pd.DataFrame) -> list[str]:
    return ["missing" if _is_missing(v) else str(v).strip().lower() for v in table["status"]]


def _row_warns(status: str, converged: Any) -> bool:
    return status not in SUCCESS or _flag(converged) is False


def _check_group_inputs(table: Any, labels: Sequence[str], coords: Any,
                        networks: Sequence[str] | None, matrices: Sequence[Any]
                        ) -> tuple[list[str], np.ndarray, list[np.ndarray | None]]:
    missing = [c for c in REQUIRED_COLUMNS if c not in getattr(table, "columns", ())]
    if missing:
        raise InputError(f"the participants table lacks the columns {missing}; expected "
                         f"{list(REQUIRED_COLUMNS)}")
    labels = [str(v) for v in labels]
    p = len(labels)
    coords = np.asarray(coords, dtype=float)
    if coords.shape != (p, 3):
        raise ShapeMismatchError(f"coords has shape {coords.shape}; expected ({p}, 3), one "
                                 "row per label")
    if networks is not None and len(networks) != p:
        raise ShapeMismatchError(f"networks holds {len(networks)} names for {p} labels; "
                                 "expected one per region")
    checked: list[np.ndarray | None] = []
    for name, matrix in zip(("mean_partial", "consistency"), matrices):
        if matrix is not None:
            matrix = np.asarray(matrix, dtype=float)
            if matrix.shape != (p, p):
                raise ShapeMismatchError(f"{name} has shape {matrix.shape}; expected ({p}, {p}) "
                                         "for the labels")
        checked.append(matrix)
    return labels, coords, checked


def _count(n: int, bad: bool) -> str:
    return f"<span class='{'warn' if bad and n else 'ok'}'>{n}</span>"


def _summary_section(statuses: list[str], n_regions: int, parameters: Mapping[str, Any]) -> str:
    counts = {s: statuses.count(s) for s in dict.fromkeys(["failed", *statuses])}
    n_ok = sum(counts.get(s, 0) for s in SUCCESS)
    rows = (f"<tr><th>runs</th><td><code>{len(statuses)}</code></td></tr>"
            f"<tr><th>succeeded</th><td><code>{n_ok}</code> "
            f"<span class='note'>({counts.get('computed', 0)} computed, "
            f"{counts.get('reused', 0)} reused)</span></td></tr>")
    # "failed" always, then any other status (missing...), each escaped.
    rows += "".join(f"<tr><th>{esc(status)}</th><td>{_count(n, True)}</td></tr>"
                    for status, n in counts.items() if status not in SUCCESS)
    rows += f"<tr><th>regions</th><td><code>{n_regions}</code></td></tr>"
    params = (kv_table(list(parameters.items())) if parameters
              else "<p class='note'>not recorded</p>")
    return ("<h2 id='summary'>Summary</h2><table class='kv'>" + rows + "</table>"
            "<h3>Parameters</h3>" + params)


def _qc_section(table: pd.DataFrame, statuses: list[str],
                subject_reports: Mapping[Any, str] | None) -> str:
    reports = dict(subject_reports or {})
    header = "".join(f"<th>{esc(name)}</th>" for _, name, _ in QC_COLUMNS)
    header += "<th>report</th>" if reports else ""
    body = []
    for index, status, (_, row) in zip(table.index, statuses, table.iterrows()):
        cells = "".join(f"<td{NUM_CLASS.get(kind, '')}>{_cell(row[column], kind)}</td>"
                        for column, _, kind in QC_COLUMNS)
        if reports:
            url = reports.get(index)
            cells += (f"<td><a href='{esc(url)}'>report</a></td>" if url
                      else f"<td>{MISSING}</td>")
        css = " class='warn'" if _row_warns(status, row["converged"]) else ""
        body.append(f"<tr{css}>{cells}</tr>")
    n_warn = sum(_row_warns(s, c) for s, c in zip(statuses, table["converged"]))
    note = (f"<p class='note'>{len(statuses)} runs; {n_warn} flagged (failed, missing or not "
            "converged) in <span class='warn'>orange</span>.</p>")
    return ("<h2 id='qc'>Quality control</h2>" + QC_STYLE + note
            + "<div class='scroll'><table class='kv qc'><thead><tr>" + header
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")


def _run_name(row: Any) -> str:
    parts = [str(row[c]) for c in ("participant_id", "session", "task", "run")
             if not _is_missing(row[c])]
    return " ".join(parts) or "(unnamed run)"


def _failures_section(table: pd.DataFrame, statuses: list[str]) -> str:
    items = []
    for status, (_, row) in zip(statuses, table.iterrows()):
        if status in SUCCESS:
            continue
        error = row["error"]
        # One line: a multi-line message (a traceback) is cut to its first line.
        reason = (str(error).strip().splitlines() or [""])[0] if not _is_missing(error) else (
            "no error recorded")
        items.append(f"<li><code>{esc(_run_name(row))}</code> <span class='warn'>"
                     f"{esc(status)}</span>: {esc(reason)}</li>")
    body = f"<ul>{''.join(items)}</ul>" if items else "<p class='ok'>none</p>"
    return "<h2 id='failures'>Failures</h2>" + body


def _finite(table: pd.DataFrame, statuses: list[str], column: str) -> np.ndarray:
    values = [_number(v) for s, v in zip(statuses, table[column]) if s in SUCCESS]
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _histogram(ax: Any, values: np.ndarray, title: str, log: bool = False) -> None:
    if log:
        values = values[values > 0]
    ax.set_title(title, fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    if values.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                color="#666")
        ax.set_yticks([])
        return
    lo, hi = float(values.min()), float(values.max())
    n_bins = int(min(20, max(5, np.sqrt(values.size) * 2)))
    if log:
        lo, hi = (lo / 1.5, hi * 1.5) if lo == hi else (lo, hi)
        bins = np.geomspace(lo, hi, n_bins + 1)
        ax.set_xscale("log")
    else:
        bins = np.linspace(lo - 0.5, hi + 0.5, n_bins + 1) if lo == hi else n_bins
    ax.hist(values, bins=bins, color="#1f77b4", edgecolor="white", linewidth=0.5)
    ax.set_ylabel("runs", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _distributions_section(table: pd.DataFrame, statuses: list[str]) -> str:
    # pyplot is imported only when a report is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt

    panels = (("alpha", "Chosen alpha (log scale)", True), ("n_edges", "Number of edges", False),
              ("mean_fd", "Mean framewise displacement (mm)", False),
              ("n_volumes_scrubbed", "Volumes scrubbed", False))
    fig, axes = plt.subplots(2, 2, figsize=(10.0, 6.4))
    for ax, (column, title, log) in zip(axes.ravel(), panels):
        _histogram(ax, _finite(table, statuses, column), title, log=log)
    fig.tight_layout()
    n_ok = sum(s in SUCCESS for s in statuses)
    return ("<h2 id='distributions'>Distributions</h2><p class='note'>over the "
            f"{n_ok} successful runs.</p>"
            + png_img(fig, "histograms of alpha, edges, mean FD and volumes scrubbed"))


def _matrix_figure(matrix: np.ndarray, labels: list[str], title: str, *, signed: bool,
                   networks: Sequence[str] | None = None) -> Any:
    shown = np.where(np.isfinite(matrix), matrix, 0.0)
    if signed:
        bound = float(np.max(np.abs(shown - np.diag(np.diag(shown))))) or 1.0
        return matrix_figure(shown, labels, networks, title, vmin=-bound, vmax=bound)
    return matrix_figure(shown, labels, networks, title, vmin=0.0, vmax=1.0, cmap="viridis")


def _no_matrices(section_id: str, heading: str) -> str:
    return (f"<h2 id='{section_id}'>{heading}</h2><p class='warn'>No run succeeded: there is "
            "no group matrix to show.</p>")


def _matrices_section(mean_partial: np.ndarray | None, consistency: np.ndarray | None,
                      labels: list[str], n_ok: int,
                      networks: Sequence[str] | None = None) -> str:
    if mean_partial is None and consistency is None:
        return _no_matrices("matrices", "Group matrices")
    figures = []
    if mean_partial is not None:
        fig = _matrix_figure(mean_partial, labels, "Mean partial correlation", signed=True,
                             networks=networks)
        figures.append(png_img(fig, "mean partial-correlation matrix"))
    if consistency is not None:
        fig = _matrix_figure(consistency, labels, "Edge consistency", signed=False,
                             networks=networks)
        figures.append(png_img(fig, "edge consistency matrix"))
    return (f"<h2 id='matrices'>Group matrices</h2><p class='note'>over the {n_ok} "
            "successful runs; consistency is the fraction of runs whose sparse precision has "
            "each edge.</p>" + matrix_row(figures, len(labels)))


def _graph_section(mean_partial: np.ndarray | None, coords: np.ndarray,
                   networks: Sequence[str] | None, edge_threshold: Any) -> str:
    if mean_partial is None:
        return _no_matrices("graph", "Mean connectome")
    shown = np.where(np.isfinite(mean_partial), mean_partial, 0.0)
    image, note = capped_glass_brain(shown, coords, networks, edge_threshold,
                                     "Mean partial correlation", "mean connectome graph")
    return (f"<h2 id='graph'>Mean connectome</h2><p class='note'>edge threshold: "
            f"{esc(edge_threshold)}.{note}</p>" + image)


def _view3d_section(mean_partial: np.ndarray, coords: np.ndarray, labels: list[str],
                    networks: Sequence[str] | None, edge_threshold: Any,
                    shared_mesh: bool = False) -> str:
    # view3d is imported only when a report is drawn (it reads the brain mesh).
    from ..plotting.view3d import figure_div

    shown = np.where(np.isfinite(mean_partial), mean_partial, 0.0)
    figure = capped_view_figure(shown, coords, edge_threshold=edge_threshold,
                                node_labels=labels, node_networks=networks,
                                colorbar_fontsize=18, node_size="degree")
    note = edges_drawn_note(figure["meta"]["n_edges"],
                            figure["meta"]["n_edges_above_threshold"])
    if note:
        note += " The slider above the view draws more or fewer."
    return ("<h2 id='view3d'>Interactive 3D view</h2><p class='note'>mean partial "
            "correlation; drag to rotate, hover a node or an edge's midpoint for labels and "
            f"weights. A node's size grows with its number of edges drawn.{note}</p>"
            + figure_div(figure, "group-connectome-3d", height="620px", shared_mesh=shared_mesh))


def build_group_report_html(
    *,
    table: pd.DataFrame,
    labels: Sequence[str],
    coords: Any,
    networks: Sequence[str] | None,
    mean_partial: Any,
    consistency: Any,
    parameters: Mapping[str, Any],
    edge_threshold: str | float = "80%",
    plotly_src: str | None = None,
    mesh_src: str | None = None,
    subject_reports: Mapping[int, str] | None = None,
    title: str = "sparse-connectome group report",
    group_model: Mapping[str, Any] | None = None,
) -> str:
    """The group report of a cohort run as one HTML string (see :func:`write_group_report`).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sparse_connectome.report import build_group_report_html
    >>> table = pd.DataFrame({
    ...     "participant_id": ["sub-01", "sub-02"], "session": [None, None],
    ...     "task": ["rest", "rest"], "run": [None, None], "status": ["computed", "failed"],
    ...     "error": [None, "InputError: no TR"], "alpha": [0.05, None],
    ...     "duality_gap": [1e-5, None], "converged": [True, None], "n_edges": [2, None],
    ...     "n_volumes": [100, None], "n_volumes_kept": [96, None],
    ...     "n_volumes_scrubbed": [4, None], "mean_fd": [0.12, None], "seconds": [1.5, 0.1],
    ...     "peak_mb": [80.0, None]})
    >>> partial = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 1.0]])
    >>> html = build_group_report_html(
    ...     table=table, labels=["A", "B", "C"], coords=[[-40, 0, 0], [40, 0, 0], [0, 40, 20]],
    ...     networks=None, mean_partial=partial, consistency=np.abs(partial) > 0,
    ...     parameters={"strategy": "simple"}, plotly_src="../plotly.min.js")
    >>> "<table" in html, "InputError: no TR" in html
    (True, True)
    """
    labels, coords, (mean_partial, consistency) = _check_group_inputs(
        table, labels, coords, networks, (mean_partial, consistency))
    statuses = _status(table)
    n_ok = sum(s in SUCCESS for s in statuses)
    sections = [
        _summary_section(statuses, len(labels), parameters),
        _qc_section(table, statuses, subject_reports),
        _failures_section(table, statuses),
        _distributions_section(table, statuses),
        _matrices_section(mean_partial, consistency, labels, n_ok, networks),
        _graph_section(mean_partial, coords, networks, edge_threshold),
    ]
    nav = [("summary", "Summary"), ("qc", "QC table"), ("failures", "Failures"),
           ("distributions", "Distributions"), ("matrices", "Matrices"),
           ("graph", "Mean connectome")]
    if mean_partial is not None:
        sections.append(_view3d_section(mean_partial, coords, labels, networks, edge_threshold,
                                        shared_mesh=mesh_src is not None))
        nav.append(("view3d", "3D view"))
    if group_model is not None:
        sections.append(group_model_section(group_model, labels, networks))
        nav.append(("groupmodel", "Group model"))
    subtitle = (f"sparse-connectome {esc(__version__)} · {len(statuses)} runs · {n_ok} "
                f"succeeded · {len(labels)} regions")
    # Without a 3D view the page needs no plotly.js at all.
    return html_page(title, subtitle, nav, sections, plotly_src=plotly_src, mesh_src=mesh_src,
                     with_plotly=mean_partial is not None)


def write_group_report(
    path: str | os.PathLike,
    *,
    table: pd.DataFrame,
    labels: Sequence[str],
    coords: Any,
    networks: Sequence[str] | None,
    mean_partial: Any,
    consistency: Any,
    parameters: Mapping[str, Any],
    edge_threshold: str | float = "80%",
    plotly_src: str | None = None,
    mesh_src: str | None = None,
    subject_reports: Mapping[int, str] | None = None,
    title: str = "sparse-connectome group report",
    group_model: Mapping[str, Any] | None = None,
) -> Path:
    """Write the HTML report of a cohort run (``group/report.html``), atomically.

    Parameters
    ----------
    path : path-like
        The HTML file to write.
    table : pandas.DataFrame
        The participants table, one row per run, with the columns
        ``participant_id, session, task, run, status, error, alpha, duality_gap,
        converged, n_edges, n_volumes, n_volumes_kept, n_volumes_scrubbed, mean_fd,
        seconds, peak_mb``; ``status`` is ``computed``, ``reused``, ``failed`` or
        ``missing``. Numbers may be NaN or None (failed runs).
    labels : sequence of str
        Region names (p of them).
    coords : array of shape (p, 3)
        Region coordinates in MNI mm.
    networks : sequence of str or None
        Network of each region (node colours).
    mean_partial : array of shape (p, p) or None
        Mean partial correlation over the successful runs; None when none succeeded.
    consistency : array of shape (p, p) or None
        Fraction of the successful runs having each edge; None when none succeeded.
    parameters : mapping
        The cohort's parameters, shown as a table.
    edge_threshold : str or float
        For the glass-brain graph and the 3D view (``"80%"`` keeps the strongest 20 %).
    plotly_src : str, optional
        URL (usually relative) of a shared copy of plotly.js; embedded when omitted.
    mesh_src : str, optional
        URL of a shared copy of the 3D view's brain surface; embedded when omitted.
    subject_reports : mapping, optional
        Table index label (the row position for a default index) -> URL (usually
        relative) of that run's report, linked from the QC table.
    title : str
    group_model : mapping, optional
        A group sparse model fitted on the cohort: adds its section (see
        ``report._group_model.group_model_section`` for the keys).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The table lacks a column.
    ShapeMismatchError
        coords, networks or a matrix does not match the labels.
    OutputError
        The file cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from sparse_connectome.report import write_group_report
    >>> columns = ["participant_id", "session", "task", "run", "status", "error", "alpha",
    ...            "duality_gap", "converged", "n_edges", "n_volumes", "n_volumes_kept",
    ...            "n_volumes_scrubbed", "mean_fd", "seconds", "peak_mb"]
    >>> table = pd.DataFrame([["sub-01", None, "rest", None, "failed", "no TR"]
    ...                       + [None] * 10], columns=columns)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_group_report(
    ...         Path(folder) / "report.html", table=table, labels=["A", "B"],
    ...         coords=[[-40, 0, 0], [40, 0, 0]], networks=None, mean_partial=None,
    ...         consistency=None, parameters={})
    ...     text = path.read_text(encoding="utf-8")
    >>> "<table" in text, "No run succeeded" in text
    (True, True)
    """
    text = build_group_report_html(
        table=table, labels=labels, coords=coords, networks=networks, mean_partial=mean_partial,
        consistency=consistency, parameters=parameters, edge_threshold=edge_threshold,
        plotly_src=plotly_src, mesh_src=mesh_src, subject_reports=subject_reports, title=title,
        group_model=group_model)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OutputError(f"cannot write the group report to {str(path)!r}: {exc}") from None
    logger.info("group report written to %s (%.1f MB)", path, len(text) / 1e6)
    return Path(path)
