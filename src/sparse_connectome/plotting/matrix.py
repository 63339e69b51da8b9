"""``plot_matrix``: a connectivity matrix as an image with region labels.

At hundreds of regions, per-region labels stop being readable: with ``networks``
the rows and columns are grouped by network and the axes carry one coloured band
and one name per network; without networks, labels are thinned to every k-th
and left out once fewer than one row in :data:`MAX_LABEL_STEP` would be named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError, ShapeMismatchError
from ._style import get_cmap, network_colors

__all__ = ["plot_matrix", "reorder_indices"]

_LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
#: Labels thinned to one every k rows are left out beyond this k (a smear, not a guide).
MAX_LABEL_STEP = 10
#: Beyond this many rows the cells are drawn with antialiasing (no row vanishes when the
#: image has fewer pixels than the matrix has rows), not as nearest-neighbour blocks.
SMOOTH_FROM = 200
#: Width of the network bands (inches) and the gap between the band and the matrix.
BAND_IN, BAND_GAP_IN = 0.13, 0.03


def reorder_indices(mat: np.ndarray, reorder: Any) -> np.ndarray | None:
    """Order of the regions for display, or None to keep the input order.

    ``reorder`` is False, True (average-linkage clustering), a linkage method
    name, or a sequence of network names (regions grouped by network, networks
    in order of first appearance, stable within a network).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting.matrix import reorder_indices
    >>> reorder_indices(np.eye(4), ["b", "a", "b", "a"])  # grouped by network
    array([0, 2, 1, 3])
    >>> reorder_indices(np.eye(4), False) is None
    True
    >>> sorted(reorder_indices(np.random.default_rng(0).random((5, 5)), "ward").tolist())
    [0, 1, 2, 3, 4]
    """
    if reorder is False or reorder is None:
        return None
    # Imported only when clustering is asked for (~0.06 s).
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import pdist

    n = mat.shape[0]
    if isinstance(reorder, str) or reorder is True:
        method = "average" if reorder is True else reorder
        if method not in _LINKAGES:
            raise ParameterError(f"reorder={reorder!r}; expected False, True, a linkage method "
                                 f"among {_LINKAGES}, or one network name per region")
        if n < 3:
            return np.arange(n)
        # Regions with similar connectivity profiles end up side by side.
        distances = pdist(np.nan_to_num(mat), metric="euclidean")
        tree = hierarchy.linkage(distances, method=method, optimal_ordering=True)
        return hierarchy.leaves_list(tree)
    networks = [str(v) for v in reorder]
    if len(networks) != n:
        raise InputError(f"reorder holds {len(networks)} network names for {n} regions; "
                         "expected one per region")
    rank = {name: i for i, name in enumerate(dict.fromkeys(networks))}
    return np.argsort([rank[v] for v in networks], kind="stable")


def label_layout(n: int, axis_points: float) -> tuple[int, float]:
    """Step between shown labels and their font size, so that they never overlap.

    Examples
    --------
    >>> from sparse_connectome.plotting.matrix import label_layout
    >>> step, fontsize = label_layout(39, 400.0)  # every label, ~8.7 pt
    >>> step, round(fontsize, 1)
    (1, 8.7)
    >>> label_layout(400, 400.0)  # every 6th label
    (6, 5.5)
    """
    spacing = axis_points / max(n, 1)
    if spacing >= 5.0:
        return 1, float(min(10.0, 0.85 * spacing))
    step = int(np.ceil(6.0 / spacing))
    return step, 5.5


def plot_matrix(
    mat: Any,
    labels: Sequence[str] | None = None,
    figure: Any = None,
    axes: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: Any = "RdBu_r",
    title: str | None = None,
    colorbar: bool = True,
    reorder: Any = False,
    tri: str = "full",
    grid: bool = False,
    auto_fit: bool = True,
    networks: Sequence[str] | None = None,
):
    """Plot a square matrix (covariance, partial correlation...) with labels.

    Parameters
    ----------
    mat : array of shape (n, n)
    labels : sequence of str, optional
        One name per row. At many regions labels are thinned (every k-th shown)
        so that they stay legible, and left out when fewer than one row in 10
        would be named. With ``networks``, network bands replace them.
    figure : Figure or (width, height), optional
        Where to draw (ignored when ``axes`` is given).
    axes : matplotlib Axes, optional
    vmin, vmax : float, optional
        Colour limits; by default symmetric around 0 (``±max|mat|``).
    cmap : str or colormap
    title : str, optional
    colorbar : bool
    reorder : bool, str or sequence of str
        ``True`` or a linkage method sorts regions by hierarchical clustering; a
        sequence gives each region's network and groups regions by network.
    tri : {"full", "lower", "diag"}
        Show the whole matrix, the lower triangle without the diagonal, or the
        lower triangle with the diagonal.
    grid : bool
        Draw cell borders (or network borders when reordered by network).
    auto_fit : bool
        Make room in the figure for the labels.
    networks : sequence of str, optional
        Network of each row. Rows and columns are grouped by network (networks
        in order of first appearance, regions in their order within each; with
        ``reorder=True`` or a linkage method, clustered within each network),
        network borders are drawn, and the axes show a coloured band and the
        name of each network instead of region labels.

    Returns
    -------
    matplotlib.image.AxesImage
        The image; its axes are ``image.axes``, its colour bar (if any)
        ``image.colorbar``, the display order ``image.order``, the step between
        shown labels ``image.label_step`` (None when none are shown) and the
        network of each displayed row ``image.networks`` (None without networks).

    Notes
    -----
    The cells are one rasterised image, so that an SVG or PDF of a 1000-region
    matrix stays light; beyond 200 rows they are drawn with antialiasing, so
    that no row vanishes when the picture has fewer pixels than the matrix has
    rows (save at a resolution that gives each row a pixel to see each cell).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.plotting import plot_matrix
    >>> data = load_demo()
    >>> image = plot_matrix(data.true_partial_correlation, labels=data.labels, vmin=-1, vmax=1,
    ...                     title="Ground truth")
    >>> image.get_array().shape, image.axes.get_title(), image.colorbar is not None
    ((39, 39), 'Ground truth', True)

    Grouped by network, lower triangle only:

    >>> image = plot_matrix(data.true_partial_correlation, reorder=data.networks, tri="lower",
    ...                     grid=True)
    >>> [data.networks[i] for i in image.order[:4]]
    ['Aud', 'Aud', 'Striate', 'DMN']

    With ``networks``, network bands and names instead of region labels:

    >>> image = plot_matrix(data.true_partial_correlation, networks=data.networks)
    >>> image.label_step is None, image.networks[:2]
    (True, ['Aud', 'Aud'])
    >>> plt.close("all")
    """
    mat, labels = _check_matrix(mat, labels, tri)
    n = mat.shape[0]
    cmap = get_cmap(cmap)
    band_networks = _check_networks(networks, n)
    order = _display_order(mat, reorder, band_networks)
    networks = None
    if order is not None:
        mat = mat[np.ix_(order, order)]
        if labels is not None:
            labels = [labels[i] for i in order]
        if band_networks is not None:
            networks = [band_networks[i] for i in order]
        elif not isinstance(reorder, (str, bool)):
            networks = [str(reorder[i]) for i in order]
    if band_networks is not None:
        labels = None  # the bands name the networks
    shown = _visible_triangle(mat, tri)
    vmin, vmax = _color_limits(shown, vmin, vmax)

    fig, ax = _figure_and_axes(figure, axes, labels is not None or band_networks is not None)
    step, fontsize = _fit_labels(fig, ax, labels, n, auto_fit=auto_fit and axes is None,
                                 colorbar=colorbar, title=title,
                                 band_names=None if networks is None or band_networks is None
                                 else list(dict.fromkeys(networks)))
    if step is None:
        labels = None
    smooth = {} if n <= SMOOTH_FROM else {"interpolation_stage": "rgba"}
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest" if n <= SMOOTH_FROM else "auto",
                      aspect="equal", **smooth)
    # Vector outputs (SVG, PDF) embed the cells as one picture, not n * n rectangles.
    image.set_rasterized(True)
    _set_tick_labels(ax, labels, n, step, fontsize)
    if tri != "full":
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if band_networks is not None:
        _draw_network_bands(ax, networks)
    if grid or band_networks is not None:
        _draw_grid(ax, n, networks, tri)
    if title:
        ax.set_title(str(title), fontsize=13, pad=8)
    image.colorbar = None
    if colorbar:
        fig_w = fig.get_size_inches()[0]
        pos = ax.get_position()
        cax = fig.add_axes((pos.x1 + 0.15 / fig_w, pos.y0, 0.18 / fig_w, pos.height),
                           label="matrix_colorbar")
        image.colorbar = fig.colorbar(image, cax=cax)
        image.colorbar.ax.tick_params(labelsize=8)
    image.label_step = step if labels is not None else None
    image.order = order
    image.networks = networks if band_networks is not None else None
    return image


def _check_networks(networks: Any, n: int) -> list[str] | None:
    if networks is None:
        return None
    names = [str(v) for v in networks]
    if len(names) != n:
        raise ShapeMismatchError(f"networks holds {len(names)} names for a {n} x {n} matrix; "
                                 "expected one network per row")
    return names


def _display_order(mat: np.ndarray, reorder: Any, networks: list[str] | None):
    """The display order: ``reorder`` alone, or grouped by network and, with a
    clustering ``reorder``, clustered within each network."""
    if networks is None:
        return reorder_indices(mat, reorder)
    if reorder is not False and reorder is not None and not isinstance(reorder, (str, bool)):
        raise ParameterError("reorder gives networks and networks= is given too; expected "
                             "one of them")
    order = reorder_indices(mat, networks)
    if reorder is False or reorder is None:
        return order
    grouped = [networks[i] for i in order]
    parts, start = [], 0
    for stop in range(1, len(order) + 1):
        if stop == len(order) or grouped[stop] != grouped[start]:
            block = order[start:stop]
            inner = reorder_indices(mat[np.ix_(block, block)], reorder)
            parts.append(block[inner] if inner is not None else block)
            start = stop
    return np.concatenate(parts)


def _network_runs(networks: list[str]) -> list[tuple[str, int, int]]:
    """``(name, start, stop)`` of each run of equal consecutive network names."""
    runs, start = [], 0
    for i in range(1, len(networks) + 1):
        if i == len(networks) or networks[i] != networks[start]:
            runs.append((networks[start], start, i))
            start = i
    return runs


def _draw_network_bands(ax, networks: list[str]) -> None:
    """A coloured band per network along the left and bottom of the matrix, with its
    name beside it (one name per network, however many regions it holds)."""
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    _, mapping = network_colors(networks)
    fig_w, fig_h = ax.figure.get_size_inches()
    pos = ax.get_position()
    band_x, gap_x = BAND_IN / (pos.width * fig_w), BAND_GAP_IN / (pos.width * fig_w)
    band_y, gap_y = BAND_IN / (pos.height * fig_h), BAND_GAP_IN / (pos.height * fig_h)
    n = len(networks)
    runs = _network_runs(networks)
    side_pts = min(pos.width * fig_w, pos.height * fig_h) * 72
    smallest = min(stop - start for _, start, stop in runs) / n * side_pts
    fontsize = float(np.clip(0.9 * smallest, 4.5, 8.5))
    left = blended_transform_factory(ax.transAxes, ax.transData)
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for name, start, stop in runs:
        color = mapping[name]
        ax.add_patch(Rectangle((-gap_x - band_x, start - 0.5), band_x, stop - start,
                               transform=left, clip_on=False, facecolor=color,
                               edgecolor="white", linewidth=0.5, gid="network_band"))
        ax.add_patch(Rectangle((start - 0.5, -gap_y - band_y), stop - start, band_y,
                               transform=bottom, clip_on=False, facecolor=color,
                               edgecolor="white", linewidth=0.5, gid="network_band"))
        middle = (start + stop - 1) / 2
        ax.text(-2 * gap_x - band_x, middle, name, transform=left, ha="right", va="center",
                fontsize=fontsize, gid="network_name")
        ax.text(middle, -2 * gap_y - band_y, name, transform=bottom, ha="center", va="top",
                rotation=90, fontsize=fontsize, gid="network_name")


def _check_matrix(mat: Any, labels: Any, tri: str) -> tuple[np.ndarray, list[str] | None]:
    """The matrix as a float array and the labels as strings (or None), checked."""
    try:
        mat = np.array(mat, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"mat could not be read as a numeric matrix: {exc}") from None
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] == 0:
        raise InputError(f"mat has shape {mat.shape}; expected a non-empty square matrix")
    n = mat.shape[0]
    if labels is not None and labels is not False:
        labels = [str(v) for v in labels]
        if len(labels) != n:
            raise ShapeMismatchError(f"labels holds {len(labels)} names for a {n} x {n} "
                                     "matrix; expected one label per row")
    else:
        labels = None
    if tri not in ("full", "lower", "diag"):
        raise ParameterError(f"tri={tri!r}; expected 'full', 'lower' or 'diag'")
    return mat, labels


def _visible_triangle(mat: np.ndarray, tri: str) -> np.ndarray:
    """A copy of ``mat`` with NaN where ``tri`` hides the cells."""
    n = mat.shape[0]
    shown = mat.copy()
    if tri == "lower":
        shown[np.triu_indices(n, k=0)] = np.nan
    elif tri == "diag":
        shown[np.triu_indices(n, k=1)] = np.nan
    return shown


def _color_limits(shown: np.ndarray, vmin: float | None,
                  vmax: float | None) -> tuple[float, float]:
    """Colour limits, symmetric around 0 by default; a single given limit is
    mirrored when it allows it."""
    finite = shown[np.isfinite(shown)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    bound = bound or 1.0
    if vmin is None and vmax is None:
        vmin, vmax = -bound, bound
    elif vmin is None:
        vmin = -abs(float(vmax)) if float(vmax) > 0 else float(vmax) - bound
    elif vmax is None:
        vmax = abs(float(vmin)) if float(vmin) < 0 else float(vmin) + bound
    if not float(vmin) < float(vmax):
        raise ParameterError(f"vmin={vmin!r} must be smaller than vmax={vmax!r}")
    return vmin, vmax


def _figure_and_axes(figure: Any, axes: Any, has_labels: bool):
    """The figure and axes to draw into: the given axes, or new axes in the given
    (or a new) figure."""
    # pyplot is imported when a figure is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if axes is not None:
        return axes.figure, axes
    if isinstance(figure, Figure):
        fig = figure
    elif figure is None:
        fig = plt.figure(figsize=(7, 5) if not has_labels else (9, 7))
    elif isinstance(figure, (tuple, list)) and len(figure) == 2:
        fig = plt.figure(figsize=tuple(float(v) for v in figure))
    else:
        raise ParameterError(f"figure={figure!r}; expected a matplotlib Figure or a "
                             "(width, height) size in inches")
    return fig, fig.add_axes((0.1, 0.1, 0.75, 0.8), label="matrix")


def _fit_labels(fig, ax, labels: list[str] | None, n: int, *, auto_fit: bool,
                colorbar: bool, title: Any, band_names: list[str] | None = None
                ) -> tuple[int | None, float]:
    """Step between shown labels (None: too many to show) and their font size;
    with ``auto_fit``, also
    place the axes so that the labels (or network bands and names), the colour
    bar and the title fit."""
    fig_w, fig_h = fig.get_size_inches()
    step, fontsize = 1, 8.0
    if labels is not None:
        # The matrix is square: its side in points is bounded by the smaller extent.
        pos = ax.get_position()
        side_pts = min(pos.width * fig_w, pos.height * fig_h) * 72
        if auto_fit:
            side_pts = min(fig_w * 0.7, fig_h * 0.75) * 72
        step, fontsize = label_layout(n, side_pts)
        if step > MAX_LABEL_STEP:
            labels, step = None, None
    if auto_fit:
        longest = max((len(s) for s in labels), default=0) if labels is not None else 0
        label_in = longest * fontsize * 0.55 / 72 + 0.15 if labels is not None else 0.3
        if band_names is not None:
            label_in = (BAND_IN + 2 * BAND_GAP_IN
                        + max(len(s) for s in band_names) * 8.5 * 0.55 / 72 + 0.1)
        cbar_in = 1.0 if colorbar else 0.2
        title_in = 0.45 if title else 0.2
        left = min(label_in + 0.1, 0.45 * fig_w)
        bottom = min(label_in + 0.1, 0.45 * fig_h)
        width = fig_w - left - cbar_in
        height = fig_h - bottom - title_in
        side = max(min(width, height), 0.5)
        ax.set_position((left / fig_w, (bottom + height - side) / fig_h, side / fig_w,
                         side / fig_h))
    return step, fontsize


def _set_tick_labels(ax, labels: list[str] | None, n: int, step: int,
                     fontsize: float) -> None:
    """Every ``step``-th label on both axes, or no ticks without labels."""
    if labels is not None:
        ticks = np.arange(0, n, step)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels([labels[i] for i in ticks], rotation=90, fontsize=fontsize)
        ax.set_yticklabels([labels[i] for i in ticks], fontsize=fontsize)
        ax.tick_params(length=2 if step == 1 else 3, pad=2)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _draw_grid(ax, n: int, networks: list[str] | None, tri: str) -> None:
    """Cell borders, or network borders when the regions are grouped by network."""
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.collections import LineCollection

    if networks is not None:
        borders = [i for i in range(1, n) if networks[i] != networks[i - 1]]
        # Thin and grey at many regions, so that the borders do not hide the cells.
        color, width = ("#222222", 0.8) if n <= SMOOTH_FROM else ("#777777", 0.4)
    else:
        borders = list(range(1, n))
        color, width = "#ffffff", 0.5
    edge = n - 0.5
    segments = []
    for b in borders:
        pos = b - 0.5
        if tri == "full":
            segments += [[(-0.5, pos), (edge, pos)], [(pos, -0.5), (pos, edge)]]
        else:
            # Only across the visible lower triangle.
            stop = pos + (1.0 if tri == "diag" else 0.0)
            segments += [[(-0.5, pos), (stop, pos)], [(pos, stop), (pos, edge)]]
    ax.add_collection(LineCollection(segments, colors=color, linewidths=width,
                                     gid="matrix_grid"))
