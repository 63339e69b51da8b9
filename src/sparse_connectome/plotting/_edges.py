"""Validation of graph inputs and the edge-threshold rule shared by the 2D and 3D views.

The threshold rule follows nilearn's ``plot_connectome`` (checked as a black box
in ``tests/test_plotting.py``):

* a number ``t`` keeps the edges with ``|w| >= t``;
* a percentile string ``"p%"`` computes ``q``, the p-th percentile (linear
  interpolation) of ``|w|`` over all off-diagonal pairs, zeros included, and
  keeps the edges with ``|w| > q`` -- so ``"80%"`` keeps the 20 % strongest;
* an edge of weight exactly 0 is never drawn.

Large graphs add a cap on the number of edges drawn (:func:`capped_edges`): with
no threshold, the strongest ``cap`` edges are drawn; with an explicit threshold,
the edges above it are drawn, and if they are more than ``cap`` only the
strongest ``cap`` are, with an :class:`EdgeCapWarning` that names the cap.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ..errors import EdgeCapWarning, InputError, ParameterError, ShapeMismatchError

__all__ = ["capped_edges", "check_adjacency", "check_node_coords", "check_node_size",
           "degree_sizes", "edge_thinning", "kept_edges", "node_degrees", "resolve_edge_cap",
           "threshold_value", "warn_edge_cap"]

#: Edge widths (and the glass brain's opacity) shrink once more edges than this are drawn.
THIN_EDGES_FROM = 150


def check_adjacency(adjacency: Any, name: str = "adjacency") -> np.ndarray:
    """Return ``adjacency`` as a finite, symmetric float array of shape (n, n).

    Examples
    --------
    >>> from sparse_connectome.plotting._edges import check_adjacency
    >>> check_adjacency([[0, 1], [1, 0]]).dtype
    dtype('float64')
    >>> check_adjacency([[0, 1], [2, 0]])
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.InputError: adjacency is not symmetric (max |A - A.T| = 1); ...
    """
    try:
        adj = np.array(adjacency, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} could not be read as a numeric matrix: {exc}") from None
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise InputError(f"{name} has shape {adj.shape}; expected a square matrix "
                         "(n_regions, n_regions)")
    if not np.all(np.isfinite(adj)):
        raise InputError(f"{name} holds {int(np.sum(~np.isfinite(adj)))} NaN or infinite "
                         "values; expected finite weights")
    scale = max(float(np.max(np.abs(adj))) if adj.size else 0.0, 1e-300)
    if not np.allclose(adj, adj.T, rtol=1e-7, atol=1e-10 * scale):
        raise InputError(f"{name} is not symmetric (max |A - A.T| = "
                         f"{float(np.max(np.abs(adj - adj.T))):.3g}); expected an undirected "
                         "connectivity matrix")
    return adj


def check_node_coords(node_coords: Any, n_nodes: int, name: str = "node_coords") -> np.ndarray:
    """Return node coordinates as a finite float array of shape (n_nodes, 3).

    Examples
    --------
    >>> from sparse_connectome.plotting._edges import check_node_coords
    >>> check_node_coords([[0, 0, 0], [10, 0, 0]], 2).shape
    (2, 3)
    >>> check_node_coords([[0, 0, 0]], 2)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ShapeMismatchError: node_coords gives 1 nodes but ...
    """
    try:
        coords = np.array(node_coords, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} could not be read as numbers: {exc}") from None
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise InputError(f"{name} has shape {coords.shape}; expected (n_nodes, 3) MNI "
                         "coordinates in mm")
    if coords.shape[0] != n_nodes:
        raise ShapeMismatchError(f"{name} gives {coords.shape[0]} nodes but the adjacency "
                                 f"matrix has {n_nodes}; expected one coordinate per region")
    if not np.all(np.isfinite(coords)):
        raise InputError(f"{name} holds NaN or infinite values; expected finite mm coordinates")
    return coords


def threshold_value(adjacency: np.ndarray, edge_threshold: Any) -> tuple[float, bool]:
    """The threshold as ``(value, strict)``; edges kept are ``|w| > value`` (strict) or
    ``|w| >= value``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import threshold_value
    >>> adjacency = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]])
    >>> threshold_value(adjacency, "50%")  # the median |weight|, exclusive
    (2.0, True)
    >>> threshold_value(adjacency, 2)  # a number is inclusive
    (2.0, False)
    """
    if edge_threshold is None:
        return 0.0, True
    if isinstance(edge_threshold, str):
        text = edge_threshold.strip()
        try:
            if not text.endswith("%"):
                raise ValueError
            percent = float(text[:-1])
        except ValueError:
            raise ParameterError(f"edge_threshold={edge_threshold!r}; expected a number or a "
                                 "percentile string such as '80%'") from None
        if not 0.0 <= percent <= 100.0:
            raise ParameterError(f"edge_threshold={edge_threshold!r}; a percentile must lie "
                                 "between 0% and 100%")
        n = adjacency.shape[0]
        weights = np.abs(adjacency[np.tril_indices(n, k=-1)])
        if weights.size == 0:
            return 0.0, True
        return float(np.percentile(weights, percent)), True
    if isinstance(edge_threshold, numbers.Real) and not isinstance(edge_threshold, bool):
        value = float(edge_threshold)
        if not np.isfinite(value) or value < 0:
            raise ParameterError(f"edge_threshold={edge_threshold!r}; expected a non-negative "
                                 "number or a percentile string such as '80%'")
        return value, False
    raise ParameterError(f"edge_threshold={edge_threshold!r} of type "
                         f"{type(edge_threshold).__name__}; expected a number or a percentile "
                         "string such as '80%'")


def kept_edges(adjacency: np.ndarray, edge_threshold: Any) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Edges that survive the threshold, as ``(rows, cols, weights)`` with ``rows < cols``,
    sorted by increasing ``|weight|`` (so that the strongest are drawn last, on top).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import kept_edges
    >>> adjacency = np.array([[0, 1, -2], [1, 0, 3], [-2, 3, 0]])
    >>> rows, cols, weights = kept_edges(adjacency, 2)
    >>> rows.tolist(), cols.tolist(), weights.tolist()
    ([0, 1], [2, 2], [-2, 3])
    """
    value, strict = threshold_value(adjacency, edge_threshold)
    rows, cols = np.triu_indices(adjacency.shape[0], k=1)
    weights = adjacency[rows, cols]
    magnitude = np.abs(weights)
    keep = (magnitude > value) if strict else (magnitude >= value)
    keep &= magnitude > 0
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    order = np.argsort(np.abs(weights), kind="stable")
    return rows[order], cols[order], weights[order]


def symmetric_limits(weights: np.ndarray, vmin: float | None, vmax: float | None,
                     symmetric: bool = True) -> tuple[float, float]:
    """Colour limits for edge weights: symmetric around 0 unless given.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import symmetric_limits
    >>> symmetric_limits(np.array([-0.5, 2.0]), None, None)
    (-2.0, 2.0)
    >>> symmetric_limits(np.array([-0.5, 2.0]), None, None, symmetric=False)
    (-0.5, 2.0)
    """
    if weights.size:
        lo, hi = float(np.min(weights)), float(np.max(weights))
    else:
        lo, hi = -1.0, 1.0
    if symmetric:
        bound = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -bound, bound
    if vmin is not None:
        lo = float(vmin)
    if vmax is not None:
        hi = float(vmax)
    if not lo < hi:
        if vmin is not None and vmax is not None:
            raise ParameterError(f"edge_vmin={vmin!r} must be smaller than edge_vmax={vmax!r}")
        lo, hi = (lo - 1.0, lo + 1.0) if lo == hi else (hi, lo)
    return lo, hi


def resolve_edge_cap(max_edges: Any, default: int, name: str = "max_edges") -> int | None:
    """The cap on edges drawn: ``"auto"`` gives ``default``, None no cap, else the number.

    Examples
    --------
    >>> from sparse_connectome.plotting._edges import resolve_edge_cap
    >>> resolve_edge_cap("auto", 1000), resolve_edge_cap(None, 1000), resolve_edge_cap(50, 1000)
    (1000, None, 50)
    """
    if max_edges is None:
        return None
    if isinstance(max_edges, str) and max_edges == "auto":
        return int(default)
    if isinstance(max_edges, numbers.Integral) and not isinstance(max_edges, bool) \
            and max_edges >= 0:
        return int(max_edges)
    raise ParameterError(f"{name}={max_edges!r}; expected 'auto', None (no cap) or a "
                         "non-negative integer")


def capped_edges(adjacency: np.ndarray, edge_threshold: Any, cap: int | None,
                 name: str = "max_edges") -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The edges to draw: :func:`kept_edges`, then at most ``cap`` of them, the strongest.

    Returns ``(rows, cols, weights, n_above)``, sorted by increasing ``|weight|``
    as :func:`kept_edges`; ``n_above`` counts the edges that passed the threshold
    before the cap. With an explicit ``edge_threshold`` (not None) that lets
    more than ``cap`` edges through, an :class:`EdgeCapWarning` names the cap;
    without a threshold the cap *is* the default rule, and nothing is said.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import capped_edges
    >>> adjacency = np.array([[0, 1, -2], [1, 0, 3], [-2, 3, 0]])
    >>> rows, cols, weights, n_above = capped_edges(adjacency, None, 2)
    >>> weights.tolist(), n_above
    ([-2, 3], 3)
    """
    rows, cols, weights = kept_edges(adjacency, edge_threshold)
    n_above = len(weights)
    if cap is not None and n_above > cap:
        warn_edge_cap(edge_threshold, n_above, cap, name)
        # Sorted by increasing |weight|: the strongest are the last ones.
        rows, cols, weights = rows[n_above - cap:], cols[n_above - cap:], weights[n_above - cap:]
    return rows, cols, weights, n_above


def warn_edge_cap(edge_threshold: Any, n_above: int, cap: int, name: str = "max_edges",
                  rest: str = "") -> None:
    """Say that an explicit threshold kept ``n_above`` edges, more than the ``cap`` drawn
    (nothing is said without a threshold: the cap is then the default rule).

    Examples
    --------
    >>> import warnings
    >>> from sparse_connectome.plotting._edges import warn_edge_cap
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_edge_cap("80%", 5000, 2000)
    >>> message = str(caught[0].message)
    >>> message.startswith("edge_threshold='80%' keeps 5000 edges; only the strongest 2000")
    True
    >>> "(max_edges=2000; pass max_edges=None to draw them all)" in message
    True
    """
    if edge_threshold is None or n_above <= cap:
        return
    warnings.warn(f"edge_threshold={edge_threshold!r} keeps {n_above} edges; only the "
                  f"strongest {cap} are drawn ({name}={cap}; pass {name}=None to draw them "
                  f"all){rest}", EdgeCapWarning, stacklevel=4)


def node_degrees(n_nodes: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Number of drawn edges at each node.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import node_degrees
    >>> node_degrees(4, np.array([0, 0, 1]), np.array([1, 2, 2])).tolist()
    [2, 2, 2, 0]
    """
    return (np.bincount(np.asarray(rows, dtype=int), minlength=n_nodes)
            + np.bincount(np.asarray(cols, dtype=int), minlength=n_nodes))


def degree_sizes(degrees: np.ndarray, smallest: float, largest: float,
                 exponent: float = 1.0) -> np.ndarray:
    """Marker sizes that grow with the node degree.

    ``smallest + (largest - smallest) * (degree / top) ** exponent``, where
    ``top`` is the largest degree (at least 1): isolated nodes get ``smallest``
    (a size that stays visible), the most connected node ``largest``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._edges import degree_sizes
    >>> degree_sizes(np.array([0, 1, 2, 4]), 1.5, 5.0).tolist()
    [1.5, 2.375, 3.25, 5.0]
    >>> degree_sizes(np.array([0, 0]), 1.5, 5.0).tolist()  # no edge drawn
    [1.5, 1.5]
    """
    degrees = np.asarray(degrees, dtype=float)
    top = max(float(degrees.max()) if degrees.size else 0.0, 1.0)
    return smallest + (largest - smallest) * (degrees / top) ** exponent


def check_node_size(node_size: Any, n_nodes: int, keywords: tuple[str, ...] = ("degree",),
                    allow_zero: bool = False) -> np.ndarray | str:
    """``node_size`` checked: one of ``keywords`` (returned as is), or one size per node.

    A single number applies to every node. Sizes must be finite and positive
    (or zero with ``allow_zero``); anything else raises a
    :class:`~sparse_connectome.errors.ParameterError` that names the value.

    Examples
    --------
    >>> from sparse_connectome.plotting._edges import check_node_size
    >>> check_node_size(2, 3).tolist(), check_node_size("degree", 3)
    ([2.0, 2.0, 2.0], 'degree')
    >>> check_node_size("degre", 3)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: node_size='degre'; expected a positive number, \
one per node, or 'degree'
    """
    expected = ("expected a " + ("non-negative" if allow_zero else "positive")
                + " number, one per node, or " + " or ".join(repr(k) for k in keywords))
    if isinstance(node_size, str):
        if node_size in keywords:
            return node_size
        raise ParameterError(f"node_size={node_size!r}; {expected}")
    try:
        sizes = np.array(node_size, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"node_size={node_size!r:.80}; {expected}") from None
    if sizes.ndim == 0:
        sizes = np.full(n_nodes, float(sizes))
    if sizes.shape != (n_nodes,):
        raise ParameterError(f"node_size holds {sizes.size} values for {n_nodes} nodes; "
                             f"{expected}")
    bad = ~np.isfinite(sizes) | ((sizes < 0) if allow_zero else (sizes <= 0))
    if np.any(bad):
        first = int(np.argmax(bad))
        where = "" if np.ndim(node_size) == 0 else f" (node {first} of {n_nodes})"
        raise ParameterError(f"node_size={float(sizes[first])!r}{where}; {expected}")
    return sizes


def edge_thinning(n_edges: int) -> float:
    """Factor on edge widths (and opacity) for ``n_edges`` drawn: 1 up to 150 edges,
    then ``sqrt(150 / n_edges)``, at least 0.3 -- many edges, thinner lines.

    Examples
    --------
    >>> from sparse_connectome.plotting._edges import edge_thinning
    >>> edge_thinning(148), round(edge_thinning(600), 3), edge_thinning(100_000)
    (1.0, 0.5, 0.3)
    """
    return float(np.clip(np.sqrt(THIN_EDGES_FROM / max(int(n_edges), 1)), 0.3, 1.0))
