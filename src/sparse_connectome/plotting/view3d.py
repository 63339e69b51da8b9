"""``view_connectome``: an interactive 3D view of a connectome in one offline HTML file.

The page embeds plotly.js (no CDN, no MathJax, no web fonts), a translucent mesh
of the bundled MNI152 brain surface, the nodes (hover: region label and
coordinates) and the edges coloured by weight (hover: the two labels and the
weight). Every string from the input is HTML-escaped, and the JSON embedded in
``<script>`` has ``<``, ``>`` and ``&`` written as ``\\u003c`` etc., so that no
label can close the script element or inject markup.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
import threading
import time
import webbrowser
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._utils.atomic import atomic_write_text
from ..errors import OutputError, ParameterError
from ._edges import (
    check_adjacency,
    check_node_coords,
    check_node_size,
    degree_sizes,
    edge_thinning,
    node_degrees,
    symmetric_limits,
)
from ._style import get_cmap, node_colors
from ._view_edges import (
    EDGE_CONTROLS_JS,
    STABILITY_BINS,
    check_stability,
    edge_controls_html,
    edges_payload,
    held_stability_classes,
    view_edges,
)

__all__ = ["ConnectomeView", "plotly_js", "safe_json", "view_connectome"]


def safe_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element.

    Examples
    --------
    >>> import json
    >>> from sparse_connectome.plotting.view3d import safe_json
    >>> text = safe_json({"label": "</script><b>"})
    >>> "<" in text, json.loads(text)
    (False, {'label': '</script><b>'})
    """
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def plotly_js() -> str:
    """The plotly.js library bundled with the plotly package (no network).

    Examples
    --------
    >>> from sparse_connectome.plotting.view3d import plotly_js
    >>> js = plotly_js()
    >>> "plotly.js v" in js[:100], len(js) > 1_000_000
    (True, True)
    """
    # plotly is needed for the 3D view only (~0.06 s to import).
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


#: The global through which a shared ``brain_mesh.js`` hands the surface to the views.
MESH_GLOBAL = "SparseConnectomeBrainMesh"
_MESH_ARRAYS = ("x", "y", "z", "i", "j", "k")


def brain_mesh_js() -> str:
    """The brain surface of the 3D views as a script, for a copy shared by many pages.

    A page that loads it (``<script src="brain_mesh.js">``) can draw its views
    with ``figure_div(..., shared_mesh=True)``, which then leaves the 0.7 MB of
    vertices out of the page: a cohort's reports carry one copy in all.

    Examples
    --------
    >>> js = brain_mesh_js()
    >>> js.startswith("window.SparseConnectomeBrainMesh="), len(js) > 100_000
    (True, True)
    """
    mesh = _mesh_trace()
    return f"window.{MESH_GLOBAL}={safe_json({k: mesh[k] for k in _MESH_ARRAYS})};\n"


#: ``node_size="degree"``: the size (about 3 px per unit, as ``node_size``) of an
#: isolated node and of the most connected one; sizes in between grow linearly with
#: the degree. 1.5 (4.5 px) keeps isolated nodes visible; 5 (15 px) keeps hubs from
#: hiding their neighbours.
DEGREE_NODE_SIZES = (1.5, 5.0)
#: Pixels per unit of ``node_size`` (plotly's marker size is a diameter in pixels).
_PX_PER_SIZE = 3.0


def _colorscale(cmap, n: int = 21) -> list:
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib.colors as mcolors

    return [[i / (n - 1), mcolors.to_hex(cmap(i / (n - 1)))] for i in range(n)]


def _mesh_trace() -> dict:
    from .. import templates

    vertices, faces = templates.load_brain_mesh()
    v = np.round(np.asarray(vertices, dtype=float), 1)
    f = np.asarray(faces, dtype=int)
    return {
        "type": "mesh3d", "x": v[:, 0].tolist(), "y": v[:, 1].tolist(), "z": v[:, 2].tolist(),
        "i": f[:, 0].tolist(), "j": f[:, 1].tolist(), "k": f[:, 2].tolist(),
        "color": "#c8c8c8", "opacity": 0.12, "hoverinfo": "skip", "name": "brain",
        "flatshading": False, "showscale": False,
        "lighting": {"ambient": 0.6, "diffuse": 0.6, "specular": 0.1, "roughness": 0.9},
    }


def _css_color(color: Any) -> str:
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib.colors as mcolors

    r, g, b, a = mcolors.to_rgba(color)
    if a >= 1.0:
        return mcolors.to_hex((r, g, b))
    return f"rgba({round(r * 255)},{round(g * 255)},{round(b * 255)},{a:.3g})"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def connectome_figure(adjacency: Any, node_coords: Any, *, edge_threshold=None,
                      edge_cmap="bwr", symmetric_cmap: bool = True, linewidth: float = 6.0,
                      node_color="auto", node_size: float | Sequence[float] | str = 3.0,
                      colorbar: bool = True, colorbar_height: float = 0.5,
                      colorbar_fontsize: int = 25, title: str | None = None,
                      title_fontsize: int = 25, node_labels: Sequence[str] | None = None,
                      node_networks: Sequence[str] | None = None,
                      edge_vmin: float | None = None, edge_vmax: float | None = None,
                      edge_stability: Any = None, max_edges: int | str | None = "auto",
                      max_edges_in_page: int | str | None = "auto") -> dict:
    """The plotly figure (as a plain dict) drawn by :func:`view_connectome`.

    ``edge_stability`` (n_nodes x n_nodes, values in [0, 1], e.g. StARS's
    selection frequencies) draws each edge with a width that grows with its
    stability, and shows the stability on hover. ``max_edges`` and
    ``max_edges_in_page`` are the caps of :func:`view_connectome`; the held
    edges are in ``figure["edges"]``. ``node_size`` is as in
    :func:`view_connectome` (``"degree"`` included).

    Examples
    --------
    >>> from sparse_connectome.plotting.view3d import connectome_figure
    >>> figure = connectome_figure([[0, 0.5], [0.5, 0]], [[-30, 0, 0], [30, 0, 0]],
    ...                            node_labels=["left", "right"])
    >>> [trace["name"] for trace in figure["data"]]
    ['edges', 'edge weights', 'nodes']
    >>> figure["meta"]["n_edges"], figure["meta"]["edge_range"]
    (1, [-0.5, 0.5])
    """
    adj = check_adjacency(adjacency)
    n = adj.shape[0]
    coords = check_node_coords(node_coords, n)
    labels = _node_labels(node_labels, n)
    # plotly renders a small HTML subset in hover text: escaping shows labels verbatim.
    safe_labels = [html.escape(v, quote=True) for v in labels]
    cmap = get_cmap(edge_cmap, "edge_cmap")
    if float(linewidth) <= 0:
        raise ParameterError(f"linewidth={linewidth!r}; expected a positive number")
    sizes = check_node_size(node_size, n)
    colors, _ = node_colors(node_color, n, node_networks)
    edges = view_edges(adj, edge_threshold, max_edges, max_edges_in_page)
    rows, cols, weights = edges.rows, edges.cols, edges.weights
    by_degree = isinstance(sizes, str)
    if by_degree:
        sizes = degree_sizes(node_degrees(n, rows, cols), *DEGREE_NODE_SIZES)
    # The colour scale covers every edge the slider can reach.
    vmin, vmax = symmetric_limits(edges.held_weights, edge_vmin, edge_vmax,
                                  symmetric=symmetric_cmap)
    color_scale = {"colorscale": _colorscale(cmap), "cmin": vmin, "cmax": vmax}

    mesh = _mesh_trace()
    bar = None
    if colorbar:
        bar = {"len": float(colorbar_height), "thickness": 15, "x": 0.9, "xanchor": "left",
               "tickfont": {"size": int(colorbar_fontsize) * 0.55},
               "title": {"text": "weight", "font": {"size": int(colorbar_fontsize) * 0.6}}}
    stability = check_stability(edge_stability, n)
    held_stability, held_classes, line_classes = held_stability_classes(stability, edges)
    # Many edges: thinner lines (the glass brain's rule), so that they do not merge.
    traces = _edge_traces(coords, (rows, cols, weights), safe_labels, color_scale,
                          float(linewidth) * edge_thinning(len(weights)), bar,
                          None if stability is None else stability[rows, cols], line_classes)
    traces.append(_node_trace(coords, safe_labels, sizes, [_css_color(c) for c in colors]))
    layout = _scene_layout(mesh, coords, top_margin=50 if title else 10)
    if title:
        layout["title"] = {"text": html.escape(str(title), quote=True), "x": 0.02,
                           "font": {"size": int(title_fontsize)}}
    payload = edges_payload(edges, safe_labels, held_stability, held_classes, line_classes)
    if by_degree:
        # The slider's redraw resizes the nodes by their degree in the edges it draws.
        payload["d"] = [v * _PX_PER_SIZE for v in DEGREE_NODE_SIZES]
    return {"brain": [mesh], "data": traces, "layout": layout, "edges": payload,
            "meta": {"labels": labels, "n_edges": len(weights),
                     "n_edges_above_threshold": edges.n_above,
                     "n_edges_in_page": len(edges.held_weights), "edge_range": [vmin, vmax]}}


def _node_labels(node_labels: Sequence[str] | None, n: int) -> list[str]:
    """One label per node, ``node 1``... by default."""
    if node_labels is None:
        return [f"node {i + 1}" for i in range(n)]
    labels = [str(v) for v in node_labels]
    if len(labels) != n:
        raise ParameterError(f"node_labels holds {len(labels)} names for {n} nodes; "
                             "expected one label per node")
    return labels


#: Beyond this many edges, colour values are written with 4 significant digits (a lighter
#: page; the 21-step colour scale cannot show the difference).
_ROUND_FROM = 500


def _colour_values(weights) -> list[float]:
    if len(weights) <= _ROUND_FROM:
        return [float(w) for w in weights]
    return [float(f"{w:.4g}") for w in weights]


def _line_trace(coords: np.ndarray, rows, cols, weights, color_scale: dict, width: float,
                name: str) -> dict:
    ex, ey, ez, ec = [], [], [], []
    for r, c, w in zip(rows, cols, _colour_values(weights)):
        for axis, out in ((0, ex), (1, ey), (2, ez)):
            out.extend([round(float(coords[r, axis]), 2), round(float(coords[c, axis]), 2),
                        None])
        ec.extend([float(w), float(w), float(w)])
    return {
        "type": "scatter3d", "mode": "lines", "x": ex, "y": ey, "z": ez, "name": name,
        "hoverinfo": "skip", "showlegend": False, "connectgaps": False,
        "line": {"color": ec, **color_scale, "width": width, "showscale": False},
    }


def _edge_traces(coords: np.ndarray, edges: tuple, safe_labels: list[str],
                 color_scale: dict, linewidth: float, colorbar: dict | None,
                 stability: np.ndarray | None = None,
                 line_classes: list[int] | None = None) -> list[dict]:
    """The edges as lines, and their midpoints as markers that carry the hover
    text and the colour bar (when ``colorbar`` gives its settings). With
    ``stability`` (one value per edge), one line trace per stability class in
    ``line_classes`` (those of the edges the page holds), wider for more
    stable edges."""
    rows, cols, weights = (np.asarray(v) for v in edges)
    if stability is None or not line_classes:
        line_traces = [_line_trace(coords, rows, cols, weights, color_scale, linewidth,
                                   "edges")]
    else:
        classes = np.searchsorted(STABILITY_BINS, stability, side="right") - 1
        line_traces = [
            _line_trace(coords, rows[classes == k], cols[classes == k], weights[classes == k],
                        color_scale, linewidth * (0.25 + 0.75 * (k + 1) / len(STABILITY_BINS)),
                        f"edges (stability >= {STABILITY_BINS[k]:g})")
            for k in line_classes]
    mids = (coords[rows] + coords[cols]) / 2 if len(rows) else np.zeros((0, 3))
    edge_text = [f"{safe_labels[r]} \u2013 {safe_labels[c]}<br>weight: {_fmt(w)}"
                 for r, c, w in zip(rows, cols, weights)]
    if stability is not None:
        edge_text = [f"{t}<br>stability: {s:.2f}" for t, s in zip(edge_text, stability)]
    marker = {"size": max(2.0, linewidth * 0.6), "color": _colour_values(weights),
              **color_scale, "opacity": 0.9, "showscale": colorbar is not None}
    if colorbar is not None:
        marker["colorbar"] = colorbar
    midpoints = {
        "type": "scatter3d", "mode": "markers", "name": "edge weights",
        "x": mids[:, 0].round(2).tolist(), "y": mids[:, 1].round(2).tolist(),
        "z": mids[:, 2].round(2).tolist(), "text": edge_text, "hoverinfo": "text",
        "showlegend": False, "marker": marker,
    }
    return line_traces + [midpoints]


def _node_trace(coords: np.ndarray, safe_labels: list[str], sizes: np.ndarray,
                colors: list[str]) -> dict:
    """The nodes, with their label and coordinates on hover."""
    node_text = [f"<b>{label}</b><br>({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm"
                 for label, c in zip(safe_labels, coords)]
    return {
        "type": "scatter3d", "mode": "markers", "name": "nodes",
        "x": coords[:, 0].round(2).tolist(), "y": coords[:, 1].round(2).tolist(),
        "z": coords[:, 2].round(2).tolist(), "text": node_text, "hoverinfo": "text",
        "showlegend": False,
        "marker": {"size": (sizes * _PX_PER_SIZE).round(2).tolist(), "color": list(colors),
                   "opacity": 1.0, "line": {"color": "#333333", "width": 1}},
    }


def _scene_layout(mesh: dict, coords: np.ndarray, top_margin: int) -> dict:
    """The page layout and the 3D scene, framing the brain and the nodes."""
    # Both scenes (brain below, graph above) need the same projection: fixed
    # axis ranges and aspect ratio instead of plotly's data-driven autorange.
    points = np.concatenate([np.column_stack([mesh["x"], mesh["y"], mesh["z"]]), coords])
    low, high = points.min(axis=0) - 5.0, points.max(axis=0) + 5.0
    span = high - low
    axes = {}
    for name, lo, hi in zip("xyz", low, high):
        axes[f"{name}axis"] = {"visible": False, "showgrid": False, "zeroline": False,
                               "showticklabels": False, "title": {"text": ""},
                               "range": [round(float(lo), 1), round(float(hi), 1)],
                               "autorange": False}
    aspect = {name: round(float(v / span.max()), 4) for name, v in zip("xyz", span)}
    return {
        "margin": {"l": 0, "r": 0, "t": top_margin, "b": 0},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "hovermode": "closest", "showlegend": False,
        "modebar": {"bgcolor": "rgba(255,255,255,0.8)", "color": "#9a9a9a",
                    "activecolor": "#333333"},
        "font": {"family": "Helvetica, Arial, sans-serif"},
        "scene": {**axes, "aspectmode": "manual", "aspectratio": aspect,
                  "domain": {"x": [0.0, 0.88], "y": [0.0, 1.0]}, "bgcolor": "#ffffff",
                  "camera": {"eye": {"x": -1.3, "y": 0.3, "z": 0.38},
                             "up": {"x": 0, "y": 0, "z": 1}}},
    }


def _region_table(labels: Sequence[str], coords: np.ndarray) -> str:
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(str(lab))}</td>"
        f"<td>{c[0]:.1f}</td><td>{c[1]:.1f}</td><td>{c[2]:.1f}</td></tr>"
        for i, (lab, c) in enumerate(zip(labels, coords)))
    return ("<details class='sc-regions'><summary>Regions ("
            f"{len(labels)})</summary><table><thead><tr><th>#</th><th>label</th><th>x</th>"
            f"<th>y</th><th>z</th></tr></thead><tbody>{rows}</tbody></table></details>")


def figure_div(figure: dict, div_id: str, height: str = "600px",
               shared_mesh: bool = False) -> str:
    """The HTML of one 3D view, for a page that already loaded plotly.js.

    The brain surface and the graph are drawn in two stacked plotly scenes that
    share their camera: in one scene, the translucent surface would hide the
    nodes inside the brain from the mouse (WebGL picking keeps the nearest
    surface), so no node label would show on hover.

    With ``shared_mesh``, the surface's vertices are not embedded: the page must
    load :func:`brain_mesh_js` (as a file shared by many pages) before this view.

    When the page holds more edges than are drawn (a capped view), a slider and
    a ``|weight|`` input above the view redraw it with more or fewer edges. Once
    both scenes are drawn, the view's element gets ``data-render-ms``: the time
    from the start of the page's load to the first render, in ms.

    Examples
    --------
    >>> from sparse_connectome.plotting.view3d import connectome_figure, figure_div
    >>> figure = connectome_figure([[0, 0.5], [0.5, 0]], [[-30, 0, 0], [30, 0, 0]])
    >>> div = figure_div(figure, "my-view", height="400px")
    >>> div.startswith('<div id="my-view"'), "Plotly.newPlot" in div, "Regions (2)" in div
    (True, True, True)
    """
    config = {"responsive": True, "displaylogo": False, "typesetMath": False,
              "modeBarButtonsToRemove": ["sendDataToCloud", "resetCameraLastSave3d"],
              "toImageButtonOptions": {"format": "png", "filename": "connectome_3d"}}
    labels = figure["meta"]["labels"]
    nodes = figure["data"][-1]
    coords = np.column_stack([nodes["x"], nodes["y"], nodes["z"]])
    brain_layout = dict(figure["layout"])
    brain_layout.pop("title", None)
    graph_layout = dict(figure["layout"])
    graph_layout["paper_bgcolor"] = "rgba(0,0,0,0)"
    graph_layout["plot_bgcolor"] = "rgba(0,0,0,0)"
    graph_layout["scene"] = dict(graph_layout["scene"], bgcolor="rgba(0,0,0,0)")
    brain = figure["brain"]
    if shared_mesh:
        brain = [{k: v for k, v in brain[0].items() if k not in _MESH_ARRAYS}] + brain[1:]
    payload = {"brain": brain, "shared_mesh": shared_mesh, "brain_layout": brain_layout,
               "graph": figure["data"], "graph_layout": graph_layout, "config": config,
               "edges": figure.get("edges")}
    safe_id = html.escape(div_id, quote=True)
    meta, edges = figure["meta"], figure.get("edges")
    controls = ""
    if edges is not None and len(edges["w"]) > meta["n_edges"]:
        n_drawn = meta["n_edges"]
        controls = edge_controls_html(div_id, n_drawn, len(edges["w"]),
                                      meta.get("n_edges_above_threshold", len(edges["w"])),
                                      abs(edges["w"][n_drawn - 1]) if n_drawn else 0.0)
    script = (
        f"(function(){{var box=document.getElementById({safe_json(div_id)});"
        f"var fig=JSON.parse(document.getElementById({safe_json(div_id + '-data')})"
        ".textContent);"
        "var under=box.querySelector('.sc-brain'),over=box.querySelector('.sc-graph');"
        f"if(fig.shared_mesh){{Object.assign(fig.brain[0],window.{MESH_GLOBAL});}}"
        "var brainConfig={displayModeBar:false,responsive:true,typesetMath:false,"
        "scrollZoom:false,showTips:false};"
        f"{EDGE_CONTROLS_JS}"
        "var first=Plotly.newPlot(under,fig.brain,fig.brain_layout,brainConfig);"
        "Promise.all([first,Plotly.newPlot(over,fig.graph,fig.graph_layout,fig.config)])"
        ".then(function(){box.dataset.renderMs=Math.round(performance.now());"
        "function sync(e){if(e&&e['scene.camera']){"
        "Plotly.relayout(under,{'scene.camera':e['scene.camera']});}}"
        "over.on('plotly_relayouting',sync);over.on('plotly_relayout',sync);"
        f"scEdgeControls(over,fig,document.getElementById({safe_json(div_id + '-edges')}));}});"
        "})();")
    return (controls + f"<div id=\"{safe_id}\" class=\"sc-connectome-3d\" style=\"position:relative;"
            f"width:100%;height:{height};\">"
            "<div class=\"sc-brain\" style=\"position:absolute;inset:0;"
            "pointer-events:none;\"></div>"
            "<style>.sc-brain, .sc-brain * {pointer-events: none !important;}</style>"
            "<div class=\"sc-graph\" style=\"position:absolute;inset:0;\"></div></div>\n"
            f"<script type=\"application/json\" id=\"{safe_id}-data\">{safe_json(payload)}"
            f"</script>\n<script>{script}</script>\n" + _region_table(labels, coords))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: Helvetica, Arial, sans-serif; background: #fff; }}
.sc-regions {{ margin: 4px 12px; font-size: 13px; color: #333; }}
.sc-regions table {{ border-collapse: collapse; }}
.sc-regions td, .sc-regions th {{ padding: 1px 8px; text-align: left; }}
</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script>{plotly}</script>
</head>
<body>
{body}
</body>
</html>
"""


class ConnectomeView:
    """An interactive 3D connectome view: a self-contained HTML document.

    Attributes
    ----------
    html : str
        The standalone page.
    figure : dict
        The plotly figure (data and layout).
    width, height : int
        Size of the iframe shown in notebooks.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.plotting import view_connectome
    >>> view = view_connectome([[0, 0.5], [0.5, 0]], [[-30, 0, 0], [30, 0, 0]])
    >>> view
    <ConnectomeView nodes=2 edges=1>
    >>> view.get_standalone().startswith("<!DOCTYPE html>")
    True
    >>> view.resize(800, 500).get_iframe().startswith('<iframe srcdoc="')
    True
    >>> path = os.path.join(tempfile.mkdtemp(), "view.html")
    >>> view.save_as_html(path)
    >>> os.path.getsize(path) > 1_000_000  # plotly.js is embedded: it works offline
    True
    >>> view.open_in_browser()  # doctest: +SKIP
    """

    def __init__(self, figure: dict, title: str | None = None, width: int = 600,
                 height: int = 400):
        self.figure = figure
        self.title = title
        self.width = width
        self.height = height
        self._html: str | None = None

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = _PAGE.format(
                title=html.escape(self.title or "connectome 3D view"),
                plotly=plotly_js().replace("</script", "<\\/script"),
                body=figure_div(self.figure, "sc-connectome-view", height="calc(100vh - 40px)"))
        return self._html

    def get_standalone(self) -> str:
        """The whole HTML page as a string."""
        return self.html

    def resize(self, width: int, height: int) -> ConnectomeView:
        """Set the size of the notebook iframe."""
        self.width, self.height = int(width), int(height)
        return self

    def get_iframe(self, width: int | None = None, height: int | None = None) -> str:
        """An ``<iframe>`` whose ``srcdoc`` holds the page (for notebooks)."""
        width = self.width if width is None else width
        height = self.height if height is None else height
        return (f"<iframe srcdoc=\"{html.escape(self.html, quote=True)}\" width=\"{width}\" "
                f"height=\"{height}\" frameborder=\"0\" sandbox=\"allow-scripts\"></iframe>")

    def _repr_html_(self) -> str:
        return self.get_iframe()

    def save_as_html(self, file_name: str | os.PathLike) -> None:
        """Write the page to ``file_name`` (atomically)."""
        try:
            atomic_write_text(file_name, self.html)
        except OSError as exc:
            raise OutputError(f"cannot write the 3D view to {str(file_name)!r}: {exc}") from None

    def open_in_browser(self, file_name: str | os.PathLike | None = None,
                        temp_file_lifetime: float | None = 30) -> None:
        """Save the page and open it in the default web browser.

        Without ``file_name`` the page goes to a temporary file that is removed
        ``temp_file_lifetime`` seconds later (None keeps it).
        """
        if file_name is None:
            fd, name = tempfile.mkstemp(prefix="sparse_connectome_view_", suffix=".html")
            os.close(fd)
            self.save_as_html(name)
            if temp_file_lifetime is not None:
                def _remove(path=name, delay=float(temp_file_lifetime)):
                    time.sleep(delay)
                    try:
                        os.remove(path)
                    except OSError:
                        pass

                threading.Thread(target=_remove, daemon=True).start()
        else:
            name = str(file_name)
            self.save_as_html(name)
        webbrowser.open("file://" + os.path.abspath(name))

    def __repr__(self) -> str:
        meta = self.figure.get("meta", {})
        return (f"<ConnectomeView nodes={len(meta.get('labels', []))} "
                f"edges={meta.get('n_edges')}>")


def view_connectome(
    adjacency: Any,
    node_coords: Any,
    edge_threshold: str | float | None = None,
    edge_cmap: Any = "bwr",
    symmetric_cmap: bool = True,
    linewidth: float = 6.0,
    node_color: Any = "auto",
    node_size: float | Sequence[float] | str = 3.0,
    colorbar: bool = True,
    colorbar_height: float = 0.5,
    colorbar_fontsize: int = 25,
    title: str | None = None,
    title_fontsize: int = 25,
    node_labels: Sequence[str] | None = None,
    node_networks: Sequence[str] | None = None,
    max_edges: int | str | None = "auto",
    max_edges_in_page: int | str | None = "auto",
) -> ConnectomeView:
    """Interactive 3D view of a connectome, as one offline HTML page.

    Parameters
    ----------
    adjacency : array of shape (n_nodes, n_nodes)
        Symmetric weights.
    node_coords : array of shape (n_nodes, 3)
        MNI mm.
    edge_threshold : float, str or None
        As in :func:`plot_connectome` (``"80%"`` keeps the strongest 20 %).
    edge_cmap : str or colormap
    symmetric_cmap : bool
        Centre the colour scale on 0.
    linewidth : float
        Edge width in pixels; beyond 150 edges drawn, scaled by
        ``sqrt(150 / n_edges)`` (at least 0.3) so that the lines stay apart.
    node_color : "auto", colour or sequence of colours
    node_size : float, sequence of float or "degree"
        Marker size, about 3 pixels per unit (positive). ``"degree"`` sizes each
        node by its degree in the drawn graph (the edges that pass
        ``edge_threshold`` and ``max_edges``): ``1.5 + 3.5 * degree /
        max_degree``, linear from 1.5 (4.5 px; isolated nodes, still visible)
        to 5 (15 px; the most connected node). When the slider redraws the
        view, the sizes follow the edges it draws.
    colorbar, colorbar_height, colorbar_fontsize : colour-bar options
    title, title_fontsize : optional title
    node_labels : sequence of str, optional
        Shown on hover over a node and over an edge's midpoint.
    node_networks : sequence of str, optional
        Colour the nodes by network (with ``node_color="auto"``).
    max_edges : int, "auto" or None
        Cap on the edges drawn at first render: the strongest ``max_edges`` of
        those that pass the threshold (``"auto"``: 2000, enough for a browser to
        draw 1000 nodes in about a second; None: no cap). An explicit
        ``edge_threshold`` that keeps more raises an
        :class:`~sparse_connectome.errors.EdgeCapWarning`.
    max_edges_in_page : int, "auto" or None
        The page holds the strongest ``max_edges_in_page`` edges above the
        threshold (``"auto"``: 20 000, about 0.4 MB; None: all of them), sorted
        by strength. When they are more than those drawn, a slider (edges
        drawn) and a ``|weight|`` input above the view redraw it from them.

    Returns
    -------
    ConnectomeView
        ``save_as_html(path)``, ``open_in_browser()``, ``get_standalone()`` and
        ``_repr_html_()`` (shown inline by Jupyter).

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.plotting import view_connectome
    >>> data = load_demo()
    >>> view = view_connectome(-data.true_precision, data.region_coords, edge_threshold="80%",
    ...                        node_labels=data.labels, title="Ground truth")
    >>> view.figure["meta"]["labels"] == data.labels
    True
    >>> "<title>Ground truth</title>" in view.get_standalone()
    True

    At 1000 regions, 2000 edges are drawn and the page holds 20 000 for its slider:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> weights = rng.normal(size=(1000, 1000))
    >>> view = view_connectome(weights + weights.T, rng.uniform(-60, 60, (1000, 3)))
    >>> view.figure["meta"]["n_edges"], view.figure["meta"]["n_edges_in_page"]
    (2000, 20000)
    >>> 'type="range"' in view.get_standalone()
    True
    """
    figure = connectome_figure(
        adjacency, node_coords, edge_threshold=edge_threshold, edge_cmap=edge_cmap,
        symmetric_cmap=symmetric_cmap, linewidth=linewidth, node_color=node_color,
        node_size=node_size, colorbar=colorbar, colorbar_height=colorbar_height,
        colorbar_fontsize=colorbar_fontsize, title=title, title_fontsize=title_fontsize,
        node_labels=node_labels, node_networks=node_networks, max_edges=max_edges,
        max_edges_in_page=max_edges_in_page)
    return ConnectomeView(figure, title=title)
