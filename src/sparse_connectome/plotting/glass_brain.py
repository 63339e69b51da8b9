"""Glass-brain outlines and panels, derived from the bundled MNI152 template.

A glass brain is the projection of the brain onto one plane, drawn as its
silhouette (the contour of the maximum projection of the brain mask) plus a few
faint contours of the mean grey-matter projection that give the gyri's shape.
Outlines are computed once per view direction from the 2 mm template (about
10 ms each) and cached.

View directions (nilearn's names): ``"x"`` sagittal seen from the right
(anterior to the right), ``"l"`` and ``"r"`` sagittal views of the left and
right hemisphere (anterior to the left for ``"l"``), ``"y"`` coronal and
``"z"`` axial (both in the neurological convention: left on the left).
"""

from __future__ import annotations

import functools

import contourpy
import numpy as np

from .. import templates
from ..errors import ParameterError

__all__ = [
    "DIRECTIONS",
    "draw_glass_brain",
    "glass_brain_outlines",
    "panel_axes",
    "parse_display_mode",
]

DIRECTIONS = ("x", "y", "z", "l", "r")

#: (axis projected away, horizontal world axis, vertical world axis) per direction.
_GEOMETRY = {
    "x": (0, 1, 2),
    "l": (0, 1, 2),
    "r": (0, 1, 2),
    "y": (1, 0, 2),
    "z": (2, 0, 1),
}

_NAMED_MODES = {"ortho": "xyz", "tiled": "xyz"}


def parse_display_mode(display_mode: str) -> tuple[str, ...]:
    """Split a display mode (``"ortho"``, ``"x"``, ``"lzr"``, ``"lyrz"``...) into
    its view directions.

    Examples
    --------
    >>> from sparse_connectome.plotting.glass_brain import parse_display_mode
    >>> parse_display_mode("ortho")
    ('x', 'y', 'z')
    >>> parse_display_mode("lzr")
    ('l', 'z', 'r')
    >>> parse_display_mode("xx")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: display_mode='xx'; expected ...
    """
    if not isinstance(display_mode, str) or not display_mode:
        raise ParameterError(f"display_mode={display_mode!r}; expected 'ortho' or a string "
                             "of view letters among x, y, z, l, r (e.g. 'lzr', 'lyrz')")
    letters = _NAMED_MODES.get(display_mode, display_mode)
    if any(c not in DIRECTIONS for c in letters) or len(set(letters)) != len(letters):
        raise ParameterError(f"display_mode={display_mode!r}; expected 'ortho' or a string "
                             "of distinct view letters among x, y, z, l, r (e.g. 'lzr', "
                             "'lyrz')")
    return tuple(letters)


def _contours(image: np.ndarray, level: float, affine: np.ndarray, h_axis: int,
              v_axis: int) -> list[np.ndarray]:
    # contourpy wants z[row, col] with rows along the vertical axis; a border of
    # zeros closes the contours of a brain that touches the edge of the grid.
    padded = np.pad(np.asarray(image, dtype=float).T, 1)
    gen = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    lines = []
    for line in gen.lines(level):
        line = line - 1.0
        if len(line) < 8:  # specks of a few voxels only add noise
            continue
        h = affine[h_axis, h_axis] * line[:, 0] + affine[h_axis, 3]
        v = affine[v_axis, v_axis] * line[:, 1] + affine[v_axis, 3]
        lines.append(np.column_stack([h, v]))
    return lines


@functools.cache
def glass_brain_outlines(direction: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Outlines of the glass brain seen from ``direction``, in mm.

    Returns
    -------
    silhouette : tuple of arrays of shape (n_points, 2)
        Closed contours of the brain's projection (horizontal, vertical mm).
    folds : tuple of arrays of shape (n_points, 2)
        Faint inner contours of the grey-matter projection.

    Examples
    --------
    >>> from sparse_connectome.plotting.glass_brain import glass_brain_outlines
    >>> silhouette, folds = glass_brain_outlines("z")
    >>> len(silhouette) >= 1, silhouette[0].shape[1], len(folds) > 0
    (True, 2, True)
    """
    if direction not in _GEOMETRY:
        raise ParameterError(f"direction={direction!r}; expected one of {DIRECTIONS}")
    axis, h_axis, v_axis = _GEOMETRY[direction]
    mask_img = templates.load_mni152_brain_mask()
    affine = mask_img.affine
    mask = np.asarray(mask_img.dataobj) > 0
    gm = templates.load_mni152_gm().get_fdata(dtype=np.float32) * mask
    if direction in ("l", "r"):
        # Only the hemisphere facing the viewer, split at x = 0 mm.
        x_mm = affine[0, 0] * np.arange(mask.shape[0]) + affine[0, 3]
        keep = (x_mm <= 0) if direction == "l" else (x_mm >= 0)
        mask = mask & keep[:, None, None]
        gm = gm * keep[:, None, None]
    # A light blur turns the 2 mm voxel staircase into a smooth outline.
    projection = _gaussian_blur(mask.max(axis=axis).astype(float), 1.0)
    silhouette = _contours(projection, 0.5, affine, h_axis, v_axis)
    # Mean projection of grey matter, normalised: its level sets trace the folds.
    depth = np.maximum(mask.sum(axis=axis), 1)
    gm_proj = gm.sum(axis=axis) / depth
    gm_proj = _gaussian_blur(gm_proj, 1.2)
    gm_proj = gm_proj / max(float(gm_proj.max()), 1e-12)
    folds = []
    for level in (0.5,):
        folds.extend(_contours(gm_proj, level, affine, h_axis, v_axis))
    return tuple(silhouette), tuple(folds)


def _gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian blur with mirrored edges (the semantics of
    ``scipy.ndimage.gaussian_filter``'s default "reflect" mode).

    Written with NumPy because importing scipy.ndimage costs ~0.1 s, more than
    every glass-brain plot of a run takes.
    """
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    out = np.asarray(image, dtype=float)
    for axis in range(out.ndim):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(k, k + n), axis=axis)
                  for k, w in enumerate(weights))
    return out


def _bounds(direction: str) -> tuple[float, float, float, float]:
    silhouette, _ = glass_brain_outlines(direction)
    pts = np.concatenate(silhouette)
    (h0, v0), (h1, v1) = pts.min(axis=0), pts.max(axis=0)
    return float(h0), float(h1), float(v0), float(v1)


def panel_axes(direction: str) -> tuple[int, int]:
    """World axes (0 = x, 1 = y, 2 = z) shown horizontally and vertically.

    Examples
    --------
    >>> from sparse_connectome.plotting.glass_brain import panel_axes
    >>> panel_axes("y")  # coronal: x across, z up
    (0, 2)
    >>> panel_axes("z")  # axial: x across, y up
    (0, 1)
    """
    _, h_axis, v_axis = _GEOMETRY[direction]
    return h_axis, v_axis


def draw_glass_brain(ax, direction: str, black_bg: bool = False, margin: float = 4.0) -> None:
    """Draw the glass brain seen from ``direction`` into matplotlib axes ``ax``.

    The silhouette is a ``LineCollection`` with gid ``"glass_brain_outline"``, the
    inner folds one with gid ``"glass_brain_folds"``; the axes limits frame the
    brain with equal aspect.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sparse_connectome.plotting.glass_brain import draw_glass_brain
    >>> fig, ax = plt.subplots()
    >>> draw_glass_brain(ax, "z")
    >>> sorted(c.get_gid() for c in ax.collections)
    ['glass_brain_fill', 'glass_brain_folds', 'glass_brain_outline']
    >>> plt.close("all")
    """
    # matplotlib is imported when a figure is drawn, not with the package (~0.25 s).
    from matplotlib.collections import LineCollection, PolyCollection

    silhouette, folds = glass_brain_outlines(direction)
    edge = "#d9d9d9" if black_bg else "#4d4d4d"
    fill = "#2a2a2a" if black_bg else "#f4f4f4"
    fold = "#7a7a7a" if black_bg else "#b3b3b3"
    ax.add_collection(PolyCollection(list(silhouette), facecolors=fill, edgecolors="none",
                                     zorder=0, gid="glass_brain_fill"))
    ax.add_collection(LineCollection(list(folds), colors=fold, linewidths=0.5, zorder=1,
                                     gid="glass_brain_folds"))
    ax.add_collection(LineCollection(list(silhouette), colors=edge, linewidths=1.0, zorder=1,
                                     gid="glass_brain_outline"))
    h0, h1, v0, v1 = _bounds(direction)
    if direction == "l":
        ax.set_xlim(h1 + margin, h0 - margin)  # seen from the left: anterior to the left
    else:
        ax.set_xlim(h0 - margin, h1 + margin)
    ax.set_ylim(v0 - margin, v1 + margin)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_facecolor("black" if black_bg else "white")


def panel_width(direction: str) -> float:
    """Width of a panel relative to its height, for laying out several panels.

    Examples
    --------
    >>> from sparse_connectome.plotting.glass_brain import panel_width
    >>> panel_width("x") > 1.0 > panel_width("y")  # a head is longer than it is wide
    True
    """
    h0, h1, v0, v1 = _bounds(direction)
    return (h1 - h0) / (v1 - v0)
