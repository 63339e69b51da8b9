"""Node colours and colour-map helpers shared by the plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError

__all__ = ["get_cmap", "network_colors", "node_colors"]

# Colour-blind-friendly qualitative palette (Okabe-Ito) extended with tab20.
_QUALITATIVE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                "#F0E442", "#000000"]


def get_cmap(cmap: Any, name: str = "cmap"):
    """A matplotlib colormap from a name or a colormap object.

    Examples
    --------
    >>> from sparse_connectome.plotting._style import get_cmap
    >>> get_cmap("bwr").name
    'bwr'
    >>> get_cmap("no_such_map")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: cmap='no_such_map' is not a known matplotlib colormap
    """
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib

    if not isinstance(cmap, str):
        if hasattr(cmap, "N") and callable(cmap):
            return cmap
        raise ParameterError(f"{name}={cmap!r}; expected a matplotlib colormap or its name")
    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise ParameterError(f"{name}={cmap!r} is not a known matplotlib colormap") from None


def network_colors(networks: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """One colour per network (in order of first appearance) and each node's colour.

    Examples
    --------
    >>> from sparse_connectome.plotting._style import network_colors
    >>> colors, mapping = network_colors(["DMN", "Aud", "DMN"])
    >>> colors[0] == colors[2] != colors[1], list(mapping)
    (True, ['DMN', 'Aud'])
    """
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib

    names = list(dict.fromkeys(str(n) for n in networks))
    if len(names) <= len(_QUALITATIVE):
        palette = _QUALITATIVE
    else:
        tab = matplotlib.colormaps["tab20"]
        palette = [matplotlib.colors.to_hex(tab(i % 20)) for i in range(len(names))]
    mapping = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    return [mapping[str(n)] for n in networks], mapping


def node_colors(node_color: Any, n_nodes: int, node_networks: Sequence[str] | None = None
                ) -> tuple[list, dict[str, str] | None]:
    """Resolve ``node_color`` into one matplotlib colour per node.

    ``"auto"`` colours nodes by network when ``node_networks`` is given, else
    cycles through a qualitative palette. A single colour applies to every node;
    a sequence gives one colour per node.

    Examples
    --------
    >>> from sparse_connectome.plotting._style import node_colors
    >>> node_colors("red", 2)
    (['#ff0000ff', '#ff0000ff'], None)
    >>> colors, mapping = node_colors("auto", 3, node_networks=["a", "b", "a"])
    >>> sorted(mapping)
    ['a', 'b']
    """
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    import matplotlib.colors as mcolors

    if node_networks is not None:
        node_networks = [str(n) for n in node_networks]
        if len(node_networks) != n_nodes:
            raise InputError(f"node_networks holds {len(node_networks)} names for {n_nodes} "
                             "nodes; expected one network per node")
    if isinstance(node_color, str) and node_color == "auto":
        if node_networks is not None:
            colors, mapping = network_colors(node_networks)
            return colors, mapping
        import matplotlib

        tab = matplotlib.colormaps["tab20" if n_nodes > len(_QUALITATIVE) else "tab10"]
        return [mcolors.to_hex(tab(i % tab.N)) for i in range(n_nodes)], None
    if isinstance(node_color, str) or (np.ndim(node_color) == 1 and len(node_color) in (3, 4)
                                       and all(isinstance(v, (int, float, np.floating))
                                               for v in node_color)
                                       and n_nodes not in (3, 4)):
        if not mcolors.is_color_like(node_color):
            raise ParameterError(f"node_color={node_color!r} is not a colour")
        return [mcolors.to_hex(node_color, keep_alpha=True)] * n_nodes, None
    colors = list(node_color)
    if len(colors) != n_nodes:
        raise InputError(f"node_color gives {len(colors)} colours for {n_nodes} nodes; "
                         "expected 'auto', one colour, or one colour per node")
    bad = [c for c in colors if not mcolors.is_color_like(c)]
    if bad:
        raise ParameterError(f"node_color holds values that are not colours: {bad[:3]!r}")
    return [mcolors.to_hex(c, keep_alpha=True) for c in colors], None
