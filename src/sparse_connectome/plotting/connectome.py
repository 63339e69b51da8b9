"""``plot_connectome``: a graph drawn over glass-brain projections."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .._utils.atomic import atomic_path
from ..errors import OutputError, ParameterError
from ._edges import (
    capped_edges,
    check_adjacency,
    check_node_coords,
    check_node_size,
    degree_sizes,
    edge_thinning,
    node_degrees,
    resolve_edge_cap,
    symmetric_limits,
)
from ._style import get_cmap, node_colors
from .glass_brain import draw_glass_brain, panel_axes, panel_width, parse_display_mode

__all__ = ["GlassBrainDisplay", "glass_brain_edge_cap", "plot_connectome"]

#: Graphs with more nodes than this are "large": nodes sized by degree by default.
LARGE_GRAPH = 100
#: The default cap on edges drawn is ``max(EDGE_CAP_FLOOR, EDGES_PER_NODE * n_nodes)``.
EDGE_CAP_FLOOR = 1000
EDGES_PER_NODE = 1
#: Marker areas (points squared) of the least and most connected nodes when sized by
#: degree, for up to LARGE_GRAPH nodes; beyond, the largest area shrinks as
#: ``sqrt(LARGE_GRAPH / n_nodes)`` so that the nodes do not cover the brain.
DEGREE_SIZES = (2.0, 60.0)


def glass_brain_edge_cap(n_nodes: int) -> int:
    """The default cap on the edges :func:`plot_connectome` draws.

    ``max(1000, n_nodes)``: never binds below 46 nodes (at most 1035 pairs), so
    small atlases draw every edge that passes the threshold, while 1000 regions
    draw on average two edges per node.

    Examples
    --------
    >>> from sparse_connectome.plotting.connectome import glass_brain_edge_cap
    >>> glass_brain_edge_cap(39), glass_brain_edge_cap(400), glass_brain_edge_cap(2000)
    (1000, 1000, 2000)
    """
    return max(EDGE_CAP_FLOOR, EDGES_PER_NODE * int(n_nodes))


class GlassBrainDisplay:
    """What :func:`plot_connectome` drew.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    axes : dict of str -> matplotlib.axes.Axes
        One panel per view direction, in display order.
    colorbar_ax : matplotlib.axes.Axes or None
    edge_vmin, edge_vmax : float
        Limits of the edge colour scale.
    n_edges : int
        Number of edges drawn.
    n_edges_above_threshold : int
        Number of edges that passed the threshold (more than ``n_edges`` when
        the cap on edges drawn bound).
    edge_cap : int or None
        The cap on edges drawn.
    node_sizes : ndarray
        Marker area of each node (points squared).

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.plotting import plot_connectome
    >>> display = plot_connectome([[0, 1.0], [1.0, 0]], [[-30, 0, 0], [30, 0, 0]],
    ...                           display_mode="z")
    >>> display
    <GlassBrainDisplay panels='z' edges=1 edge_range=(-1, 1)>
    >>> path = os.path.join(tempfile.mkdtemp(), "graph.svg")
    >>> display.savefig(path)
    >>> os.path.getsize(path) > 0
    True
    >>> display.close()
    """

    def __init__(self, figure, axes, colorbar_ax, edge_vmin, edge_vmax, n_edges, frame_axes,
                 n_edges_above_threshold=None, edge_cap=None, node_sizes=None):
        self.figure = figure
        self.axes = axes
        self.colorbar_ax = colorbar_ax
        self.edge_vmin = edge_vmin
        self.edge_vmax = edge_vmax
        self.n_edges = n_edges
        self.frame_axes = frame_axes
        self.n_edges_above_threshold = (n_edges if n_edges_above_threshold is None
                                        else n_edges_above_threshold)
        self.edge_cap = edge_cap
        self.node_sizes = node_sizes

    def savefig(self, filename: str | os.PathLike, dpi: float | None = None, **kwargs) -> None:
        """Save the figure atomically (the format follows the file extension)."""
        try:
            with atomic_path(filename) as tmp:
                fmt = kwargs.pop("format", None) or (os.path.splitext(str(filename))[1][1:]
                                                     or "png")
                self.figure.savefig(tmp, dpi=dpi, format=fmt,
                                    facecolor=self.figure.get_facecolor(), **kwargs)
        except OSError as exc:
            raise OutputError(f"cannot write figure to {str(filename)!r}: {exc}") from None

    def close(self) -> None:
        """Close the matplotlib figure."""
        # pyplot is imported when a figure is drawn, not with the package (~0.4 s).
        import matplotlib.pyplot as plt

        plt.close(self.figure)

    def __repr__(self) -> str:
        return (f"<GlassBrainDisplay panels={''.join(self.axes)!r} edges={self.n_edges} "
                f"edge_range=({self.edge_vmin:.3g}, {self.edge_vmax:.3g})>")


def _visible_nodes(direction: str, coords: np.ndarray) -> np.ndarray:
    # Hemisphere views show only the nodes of the hemisphere facing the viewer.
    if direction == "l":
        return coords[:, 0] <= 0
    if direction == "r":
        return coords[:, 0] >= 0
    return np.ones(len(coords), dtype=bool)


def _resolve_figure(figure, axes, n_panels_width: float, extra_height: float,
                    background: str = "white"):
    # pyplot is imported when a figure is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if axes is not None:
        fig = axes.figure
        rect = axes.get_position().bounds
        # Keep the axes' patch as the background of the area we draw into.
        axes.set_xticks([])
        axes.set_yticks([])
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.set_facecolor(background)
        return fig, rect
    if isinstance(figure, Figure):
        return figure, (0.0, 0.0, 1.0, 1.0)
    if figure is None:
        height = 3.2 + extra_height
        size = (max(3.2 * n_panels_width + 0.9, 4.0), height)
    elif isinstance(figure, (tuple, list)) and len(figure) == 2:
        size = tuple(float(v) for v in figure)
    elif isinstance(figure, (int, np.integer)):
        return plt.figure(int(figure)), (0.0, 0.0, 1.0, 1.0)
    else:
        raise ParameterError(f"figure={figure!r}; expected a matplotlib Figure, a figure "
                             "number, or a (width, height) size in inches")
    return plt.figure(figsize=size), (0.0, 0.0, 1.0, 1.0)


def plot_connectome(
    adjacency: Any,
    node_coords: Any,
    node_color: Any = "auto",
    node_size: float | Sequence[float] | str = "auto",
    edge_cmap: Any = "bwr",
    edge_threshold: str | float | None = None,
    edge_vmin: float | None = None,
    edge_vmax: float | None = None,
    display_mode: str = "ortho",
    figure: Any = None,
    axes: Any = None,
    title: str | None = None,
    annotate: bool = True,
    black_bg: bool = False,
    alpha: float = 0.7,
    edge_kwargs: dict | None = None,
    node_kwargs: dict | None = None,
    colorbar: bool = True,
    output_file: str | os.PathLike | None = None,
    node_networks: Sequence[str] | None = None,
    max_edges: int | str | None = "auto",
) -> GlassBrainDisplay | None:
    """Plot a connectome as a graph over glass-brain projections.

    Parameters
    ----------
    adjacency : array of shape (n_nodes, n_nodes)
        Symmetric weight matrix; the diagonal is ignored.
    node_coords : array of shape (n_nodes, 3)
        Node positions in MNI mm.
    node_color : "auto", colour, or sequence of colours
        ``"auto"`` colours nodes by network when ``node_networks`` is given,
        else one palette colour per node.
    node_size : float, sequence of float, "degree" or "auto"
        Marker area in points squared (non-negative; 0 hides a node).
        ``"degree"`` sizes each node by its degree in the drawn graph (the
        edges that pass the threshold and the cap): area ``2 + (top - 2) *
        sqrt(degree / max_degree)`` pt², with ``top = 60 * min(1, sqrt(100 /
        n_nodes))``, so isolated nodes get 2 pt² and stay visible;
        ``"auto"`` is 50 up to 100 nodes and ``"degree"`` above.
    edge_cmap : str or matplotlib colormap
        Colour map of the edge weights.
    edge_threshold : float, str or None
        A number keeps edges with ``|w| >= edge_threshold``; a percentile string
        ``"p%"`` keeps edges whose ``|w|`` exceeds the p-th percentile of all
        off-diagonal ``|w|`` (so ``"80%"`` keeps the strongest 20 %). Edges of
        weight 0 are never drawn. None keeps every edge, up to ``max_edges``.
    edge_vmin, edge_vmax : float, optional
        Limits of the edge colour scale; by default symmetric around 0 and set
        by the largest ``|w|`` drawn.
    display_mode : str
        ``"ortho"`` (sagittal, coronal, axial) or a string of view letters among
        ``x``, ``y``, ``z``, ``l``, ``r`` (``"x"``, ``"lzr"``, ``"lyrz"``...).
        The hemisphere views ``l``/``r`` show only the nodes with ``x <= 0`` /
        ``x >= 0`` and the edges between them.
    figure : Figure, int or (width, height), optional
    axes : matplotlib Axes, optional
        Draw inside the area of these axes.
    title : str, optional
    annotate : bool
        Write L/R orientation letters.
    black_bg : bool
    alpha : float
        Opacity of the edges.
    edge_kwargs, node_kwargs : dict, optional
        Extra arguments for the edge ``LineCollection`` and the node ``scatter``.
    colorbar : bool
    output_file : path, optional
        Save the figure there (atomically), close it and return None.
    node_networks : sequence of str, optional
        Network of each node, to colour nodes by network with a legend.
    max_edges : int, "auto" or None
        Cap on the number of edges drawn: the strongest ``max_edges`` of those
        that pass the threshold. ``"auto"`` is
        :func:`glass_brain_edge_cap`, ``max(1000, n_nodes)`` (it never binds
        below 46 nodes); None draws every edge. When an explicit
        ``edge_threshold`` keeps more edges than the cap, an
        :class:`~sparse_connectome.errors.EdgeCapWarning` says so.
        Beyond 150 edges drawn, edges get thinner and more transparent
        (width and opacity scaled by ``sqrt(150 / n_edges)``, at least 0.3).

    Returns
    -------
    GlassBrainDisplay or None

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import matplotlib.pyplot as plt
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.plotting import plot_connectome
    >>> data = load_demo()
    >>> display = plot_connectome(-data.true_precision, data.region_coords,
    ...                           edge_threshold="80%", title="Ground truth")
    >>> list(display.axes)
    ['x', 'y', 'z']
    >>> display.n_edges <= 0.2 * 39 * 38 / 2  # the strongest 20 % of the pairs at most
    True
    >>> plt.close("all")

    With ``output_file``, the figure is saved and closed:

    >>> path = os.path.join(tempfile.mkdtemp(), "connectome.png")
    >>> plot_connectome(-data.true_precision, data.region_coords, display_mode="lzr",
    ...                 node_networks=data.networks, output_file=path) is None
    True
    >>> os.path.getsize(path) > 0
    True

    At 1000 regions, the strongest 1000 edges are drawn and nodes are sized by degree:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> weights = rng.normal(size=(1000, 1000))
    >>> display = plot_connectome(weights + weights.T, rng.uniform(-60, 60, (1000, 3)))
    >>> display.n_edges, display.n_edges_above_threshold, display.edge_cap
    (1000, 499500, 1000)
    >>> plt.close("all")
    """
    adj, coords, directions, cmap, sizes = _check_arguments(
        adjacency, node_coords, display_mode, edge_cmap, alpha, node_size)
    colors, mapping = node_colors(node_color, adj.shape[0], node_networks)
    cap = resolve_edge_cap(max_edges, glass_brain_edge_cap(adj.shape[0]))
    rows, cols, weights, n_above = capped_edges(adj, edge_threshold, cap)
    if sizes is None:
        sizes = _degree_sizes(node_degrees(adj.shape[0], rows, cols))
    graph = _Graph(coords, sizes, colors, rows, cols, weights)
    vmin, vmax = symmetric_limits(weights, edge_vmin, edge_vmax)
    fg = "white" if black_bg else "black"

    widths = [panel_width(d) for d in directions]
    legend_rows = 0 if mapping is None else int(np.ceil(len(mapping) / 5))
    fig, rect = _resolve_figure(figure, axes, sum(widths),
                                0.25 * legend_rows + (0.35 if title else 0.0),
                                "black" if black_bg else "white")
    if axes is None:
        fig.set_facecolor("black" if black_bg else "white")
    layout = _panel_layout(fig, rect, sum(widths), bool(title), legend_rows, colorbar)
    # Many edges drawn: thinner and more transparent, so that the strongest show through.
    thin = edge_thinning(len(weights))
    style = _EdgeStyle(cmap, _normalize(vmin, vmax), float(alpha) * thin,
                       dict(edge_kwargs or {}), dict(node_kwargs or {}), thin)
    panels = {}
    left = layout.left
    for direction, width in zip(directions, widths):
        w = layout.panel_h * width * layout.fig_h / layout.fig_w
        ax = fig.add_axes((left, layout.bottom, w, layout.panel_h),
                          label=f"glass_brain_{direction}")
        left += w
        _draw_panel(ax, direction, graph, style, black_bg=black_bg, annotate=annotate)
        panels[direction] = ax

    colorbar_ax = _add_colorbar(fig, rect, layout, style, fg) if colorbar else None
    if title:
        x0, y0, w0, h0 = rect
        fig.text(x0 + 0.01 * w0, y0 + h0 - 0.06 / layout.fig_h, str(title), color=fg,
                 fontsize=13, ha="left", va="top", gid="connectome_title")
    if mapping:
        _add_network_legend(fig, rect, mapping, fg)
    display = GlassBrainDisplay(fig, panels, colorbar_ax, vmin, vmax, len(weights),
                                axes, n_edges_above_threshold=n_above, edge_cap=cap,
                                node_sizes=np.asarray(sizes, dtype=float))
    if output_file is not None:
        try:
            display.savefig(output_file)
        finally:
            display.close()
        return None
    return display


class _Graph(NamedTuple):
    """What is drawn: node positions, sizes and colours, and the kept edges."""

    coords: np.ndarray
    sizes: np.ndarray
    colors: list
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray


class _EdgeStyle(NamedTuple):
    cmap: Any
    norm: Any
    alpha: float
    edge_kwargs: dict
    node_kwargs: dict
    width_scale: float = 1.0


class _Layout(NamedTuple):
    """Where the panels go, in figure fractions."""

    fig_w: float
    fig_h: float
    left: float
    bottom: float
    panel_h: float
    cbar_w: float


def _check_arguments(adjacency, node_coords, display_mode, edge_cmap, alpha, node_size):
    """The inputs of :func:`plot_connectome` checked: matrix, coordinates, views,
    colour map and one marker size per node."""
    adj = check_adjacency(adjacency)
    n = adj.shape[0]
    coords = check_node_coords(node_coords, n)
    directions = parse_display_mode(display_mode)
    cmap = get_cmap(edge_cmap, "edge_cmap")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ParameterError(f"alpha={alpha!r}; expected a number between 0 and 1")
    sizes = check_node_size(node_size, n, keywords=("degree", "auto"), allow_zero=True)
    if isinstance(sizes, str):
        # None: sized by degree once the edges are known.
        sizes = None if sizes == "degree" or n > LARGE_GRAPH else np.full(n, 50.0)
    return adj, coords, directions, cmap, sizes


def _degree_sizes(degrees: np.ndarray) -> np.ndarray:
    """Marker areas growing with the square root of the degree (area ~ degree would
    let a few hubs cover the brain)."""
    low, high = DEGREE_SIZES
    high = low + (high - low) * min(1.0, np.sqrt(LARGE_GRAPH / max(degrees.size, 1)))
    return degree_sizes(degrees, low, high, exponent=0.5)


def _normalize(vmin: float, vmax: float):
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib.colors as mcolors

    return mcolors.Normalize(vmin=vmin, vmax=vmax)


def _panel_layout(fig, rect, total_width: float, has_title: bool, legend_rows: int,
                  colorbar: bool) -> _Layout:
    """Equal panel heights, widths proportional to each projection's aspect ratio,
    inside ``rect`` less a title strip on top, a legend strip at the bottom and
    the colour bar on the right."""
    x0, y0, w0, h0 = rect
    fig_w, fig_h = fig.get_size_inches()
    top_pad = (0.35 / fig_h) if has_title else 0.03
    bottom_pad = (0.25 * legend_rows + 0.1) / fig_h if legend_rows else 0.03
    cbar_w = (0.75 / fig_w) * w0 if colorbar else 0.0
    avail_w = w0 - cbar_w - 0.01
    avail_h = h0 * (1 - top_pad - bottom_pad)
    panel_h = min(avail_h, avail_w / total_width * fig_w / fig_h)
    total_w = panel_h * total_width * fig_h / fig_w
    left = x0 + (avail_w - total_w) / 2
    bottom = y0 + h0 * bottom_pad + (avail_h - panel_h) / 2
    return _Layout(fig_w, fig_h, left, bottom, panel_h, cbar_w)


def _draw_panel(ax, direction: str, graph: _Graph, style: _EdgeStyle, *, black_bg: bool,
                annotate: bool) -> None:
    """One glass-brain view with the edges and nodes that face the viewer."""
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.collections import LineCollection

    coords, rows, cols, weights = graph.coords, graph.rows, graph.cols, graph.weights
    fg = "white" if black_bg else "black"
    draw_glass_brain(ax, direction, black_bg=black_bg)
    h_axis, v_axis = panel_axes(direction)
    visible = _visible_nodes(direction, coords)
    keep = visible[rows] & visible[cols]
    xy = coords[:, [h_axis, v_axis]]
    segments = np.stack([xy[rows[keep]], xy[cols[keep]]], axis=1)
    strength = np.abs(weights) / (np.max(np.abs(weights)) if weights.size else 1.0)
    lc_kwargs = {"linewidths": style.width_scale * (1.0 + 1.5 * strength[keep]),
                 "alpha": style.alpha, "zorder": 2}
    lc_kwargs.update(style.edge_kwargs)
    lines = LineCollection(segments, colors=style.cmap(style.norm(weights[keep])),
                           gid="connectome_edges", **lc_kwargs)
    lines.set_array(None)
    ax.add_collection(lines)
    sc_kwargs = {"edgecolors": fg if black_bg else "#333333",
                 "linewidths": 0.5 if len(coords) <= LARGE_GRAPH else 0.2, "zorder": 3}
    sc_kwargs.update(style.node_kwargs)
    # Draw the nodes nearest to the viewer last so that they sit on top.
    depth_axis = 3 - h_axis - v_axis
    order = np.flatnonzero(visible)
    depth = coords[order, depth_axis]
    order = order[np.argsort(-depth if direction == "l" else depth, kind="stable")]
    nodes = ax.scatter(xy[order, 0], xy[order, 1], s=graph.sizes[order],
                       c=[graph.colors[i] for i in order], gid="connectome_nodes", **sc_kwargs)
    nodes.node_indices = order
    if annotate and direction in ("y", "z"):
        ax.text(0.02, 0.02, "L", transform=ax.transAxes, color=fg, fontsize=10,
                ha="left", va="bottom")
        ax.text(0.98, 0.02, "R", transform=ax.transAxes, color=fg, fontsize=10,
                ha="right", va="bottom")


def _add_colorbar(fig, rect, layout: _Layout, style: _EdgeStyle, fg: str):
    """The edge colour bar at the right of the panels; returns its axes."""
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.cm import ScalarMappable

    x0, _, w0, _ = rect
    cb_left = x0 + w0 - layout.cbar_w + 0.15 * layout.cbar_w
    colorbar_ax = fig.add_axes((cb_left, layout.bottom + 0.1 * layout.panel_h,
                                0.18 * layout.cbar_w, 0.8 * layout.panel_h),
                               label="connectome_colorbar")
    mappable = ScalarMappable(norm=style.norm, cmap=style.cmap)
    cb = fig.colorbar(mappable, cax=colorbar_ax)
    cb.ax.tick_params(labelsize=8, colors=fg)
    cb.outline.set_edgecolor(fg)
    return colorbar_ax


def _add_network_legend(fig, rect, mapping: dict, fg: str) -> None:
    """One marker per network, in rows of five below the panels."""
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.lines import Line2D

    x0, y0, w0, h0 = rect
    handles = [Line2D([], [], marker="o", linestyle="", markersize=6, color=c,
                      markeredgecolor="#333333", label=name) for name, c in mapping.items()]
    leg = fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)),
                     fontsize=7, frameon=False, bbox_to_anchor=(x0 + w0 / 2, y0 + 0.01 * h0))
    for text in leg.get_texts():
        text.set_color(fg)
