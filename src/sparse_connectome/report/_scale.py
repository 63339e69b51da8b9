"""Report figures that stay legible and light from 39 to 1000 regions.

Matrices: region labels while they fit unthinned; beyond, rows grouped by
network with network bands (when networks are known); past 200 regions, larger
figures of the lower triangle, shown one per row. Graphs: the glass brain and
the 3D view draw their capped number of edges (the plotting defaults), and the
page says how many of the edges above the threshold are drawn instead of
warning on the console.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._html import esc, png_img

__all__ = ["LARGE_MATRIX", "bands_instead_of_labels", "capped_glass_brain",
           "capped_view_figure", "edges_drawn_note", "matrix_figure", "matrix_row"]

#: Matrices with more rows than this get a larger figure, one per row of the page.
LARGE_MATRIX = 200
#: The side (points) of a matrix in the report's default 7 x 6 inch figure.
_SIDE_PTS = 4.5 * 72


def bands_instead_of_labels(n: int, networks: Sequence[str] | None) -> bool:
    """Network bands replace region labels once the labels would be thinned.

    Examples
    --------
    >>> bands_instead_of_labels(39, ["a"] * 39), bands_instead_of_labels(400, ["a"] * 400)
    (False, True)
    >>> bands_instead_of_labels(400, None)
    False
    """
    # plotting.matrix is light (numpy only until a figure is drawn).
    from ..plotting.matrix import label_layout

    return networks is not None and label_layout(n, _SIDE_PTS)[0] > 1


def matrix_figure(matrix: np.ndarray, labels: Sequence[str], networks: Sequence[str] | None,
                  title: str, **kwargs: Any) -> Any:
    """A matrix figure: labels, or network bands at many regions (``kwargs`` go to
    ``plot_matrix``: vmin, vmax, cmap...).

    Examples
    --------
    >>> import numpy as np
    >>> fig = matrix_figure(np.eye(3), ["a", "b", "c"], None, "identity", vmin=-1, vmax=1)
    >>> fig.get_size_inches().tolist()
    [7.0, 6.0]
    """
    # pyplot and the plotting package are imported only when a report is drawn.
    import matplotlib.pyplot as plt

    from ..plotting import plot_matrix

    n = matrix.shape[0]
    # Large: about 1 pixel per 1.3 rows at 1000 regions; the lower triangle only (the
    # matrices are symmetric), which halves the PNG of a dense matrix (~1 MB -> 0.5 MB).
    fig = plt.figure(figsize=(7.0, 6.0) if n <= LARGE_MATRIX else (9.0, 8.0))
    if n > LARGE_MATRIX:
        kwargs.setdefault("tri", "diag")
    if bands_instead_of_labels(n, networks):
        plot_matrix(matrix, networks=networks, figure=fig, title=title, **kwargs)
    else:
        plot_matrix(matrix, labels=labels, figure=fig, title=title, **kwargs)
    return fig


def matrix_row(figures: Sequence[str], n: int) -> str:
    """Matrix ``<figure>`` elements side by side, or one per row when large."""
    inner = "".join(f"<figure>{f}</figure>" for f in figures)
    return f"<div class='row'>{inner}</div>" if n <= LARGE_MATRIX else inner


def edges_drawn_note(n_drawn: int, n_above: int, what: str = "") -> str:
    """A sentence for the page when a cap bound, else an empty string.

    Examples
    --------
    >>> edges_drawn_note(1000, 99900, "glass brain")
    ' glass brain: the strongest 1000 of the 99900 edges above the threshold are drawn.'
    >>> edges_drawn_note(2000, 6444)
    ' The strongest 2000 of the 6444 edges above the threshold are drawn.'
    >>> edges_drawn_note(10, 10)
    ''
    """
    if n_drawn >= n_above:
        return ""
    lead = f"{esc(what)}: the" if what else "The"
    return f" {lead} strongest {n_drawn} of the {n_above} edges above the threshold are drawn."


def capped_glass_brain(matrix: np.ndarray, coords: np.ndarray,
                       networks: Sequence[str] | None, edge_threshold: Any,
                       title: str, alt: str) -> tuple[str, str]:
    """The glass-brain graph as an ``<img>`` and the note on the cap on edges drawn."""
    from ..errors import EdgeCapWarning
    from ..plotting import plot_connectome

    with warnings.catch_warnings():
        # The page says it (edges_drawn_note): no console warning for a report.
        warnings.simplefilter("ignore", EdgeCapWarning)
        display = plot_connectome(matrix, coords, edge_threshold=edge_threshold, title=title,
                                  node_networks=networks)
    note = edges_drawn_note(display.n_edges, display.n_edges_above_threshold, title)
    return png_img(display.figure, alt), note


def capped_view_figure(matrix: np.ndarray, coords: np.ndarray, **kwargs: Any) -> dict:
    """``connectome_figure`` with its caps, without the console warning."""
    from ..errors import EdgeCapWarning
    from ..plotting.view3d import connectome_figure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeCapWarning)
        return connectome_figure(matrix, coords, **kwargs)
