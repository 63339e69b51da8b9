"""Validation of graph inputs and the edge-threshold rule shared by the 2D and 3D views.

The threshold rule follows nilearn's ``plot_connectome`` (checked as a black box
in ``tests/test_plotting.py``):

* a number ``t`` keeps the edges with ``|w| >= t``;
* a percentile string ``"p%"`` computes ``q``, the p-th percentile (linear
  interpolation) of ``|w|`` over all off-diagonal pairs, zeros included, and
  keeps the edges with ``|w| > q`` -- so ``"80%"`` keeps the 20 % strongest;
* an edge of weight exactly 0 is never drawn.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError, ShapeMismatchError

__all__ = ["check_adjacency", "check_node_coords", "kept_edges", "threshold_value"]


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
