"""Atlases of today's sizes, simulated: Schaefer-like parcellations and DiFuMo-like soft maps.

Real atlases are downloads (:mod:`sparse_connectome.datasets`); these stand in for them
offline, in tests, benchmarks and ``sparse-connectome demo --atlas schaefer-400-7``, with
the same sizes, kinds, naming and network structure:

- :func:`simulate_labels_atlas`: ``n_regions`` parcels tiling a grey-matter mask, half
  per hemisphere, each parcel a cell of a centroidal Voronoi tessellation (Lloyd's
  algorithm on the voxel coordinates), grouped into Yeo-like networks laid out the same
  way in both hemispheres, ordered and named as Schaefer 2018 orders and names them
  (``7Networks_LH_Vis_1``, left hemisphere first, by network);
- :func:`simulate_maps_atlas`: ``n_maps`` non-negative soft maps, one smooth bump per
  cell centre with a finite support, overlapping their neighbours as DiFuMo's do. At
  1024 maps on the 2 mm grid the dense image is 3.7 GB in float32, so it can be written
  to a file map by map, never held whole.

The images are on the MNI152 2 mm grid of the bundled template by default (the grid of
Schaefer's and DiFuMo's 2 mm files: 91 x 109 x 91), or on any grid given by a mask and
its affine.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.spatial import cKDTree

from .._utils.atomic import atomic_path
from .._utils.bunch import Bunch
from ..errors import ParameterError, ShapeMismatchError
from .regions import make_rng

__all__ = ["simulate_labels_atlas", "simulate_maps_atlas", "YEO7_NETWORKS", "YEO17_NETWORKS"]

#: Short network names as Schaefer 2018 writes them in its 7- and 17-network label files.
YEO7_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
YEO17_NETWORKS = ("VisCent", "VisPeri", "SomMotA", "SomMotB", "DorsAttnA", "DorsAttnB",
                  "SalVentAttnA", "SalVentAttnB", "LimbicB", "LimbicA", "ContA", "ContB",
                  "ContC", "DefaultA", "DefaultB", "DefaultC", "TempPar")

_LLOYD_ITERATIONS = 6
_MAP_FLOOR = 0.05  # a soft map is 0 below this fraction of its peak: finite support


def _network_names(n_networks: int) -> tuple[str, ...]:
    if n_networks == 7:
        return YEO7_NETWORKS
    if n_networks == 17:
        return YEO17_NETWORKS
    return tuple(f"Net{k + 1:02d}" for k in range(n_networks))


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _grid(mask, affine) -> tuple[np.ndarray, np.ndarray]:
    """The mask and affine given, or the grey matter of the bundled MNI152 2 mm template."""
    if mask is None and affine is None:
        from ..templates import load_mni152_gm

        gm = load_mni152_gm()
        return np.asarray(gm.dataobj) > 0.2, np.asarray(gm.affine, dtype=float)
    if mask is None or affine is None:
        raise ParameterError("mask and affine go together: give both (the grid of the atlas) "
                             "or neither (the MNI152 2 mm template's grey matter)")
    mask = np.asarray(mask, dtype=bool)
    affine = np.asarray(affine, dtype=float)
    if mask.ndim != 3:
        raise ShapeMismatchError(f"mask must be 3D; got shape {mask.shape}")
    if affine.shape != (4, 4):
        raise ShapeMismatchError(f"affine must have shape (4, 4); got {affine.shape}")
    return mask, affine


def _lloyd_cells(points: np.ndarray, n_cells: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A centroidal Voronoi tessellation of ``points``: (cell of each point, centres).

    Lloyd's algorithm from centres drawn among the points: assign each point to its
    nearest centre, move each centre to its cell's mean, repeat. A cell left empty keeps
    its centre (it cannot happen at the first step: the centres are distinct points).
    """
    start = rng.choice(points.shape[0], size=n_cells, replace=False)
    centres = points[np.sort(start)].copy()
    for _ in range(_LLOYD_ITERATIONS):
        cells = cKDTree(centres).query(points)[1]
        counts = np.bincount(cells, minlength=n_cells)
        sums = np.stack([np.bincount(cells, weights=points[:, d], minlength=n_cells)
                         for d in range(3)], axis=1)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    cells = cKDTree(centres).query(points)[1]
    return cells, centres


def _layout(n_regions: int, mask: np.ndarray, affine: np.ndarray, n_networks: int,
            rng: np.random.Generator) -> Bunch:
    """Cells of both hemispheres, their networks, and the Schaefer order of the regions."""
    ijk = np.argwhere(mask)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    left = xyz[:, 0] < 0
    n_left = n_regions // 2
    hemispheres = (("LH", left, n_left), ("RH", ~left, n_regions - n_left))
    for hemi, side, count in hemispheres:
        if int(side.sum()) < count:
            raise ParameterError(f"n_regions={n_regions}: the {hemi} part of the mask holds "
                                 f"{int(side.sum())} voxels; expected at least one per region")
    cell = np.empty(xyz.shape[0], dtype=np.int64)
    centres, hemi_of = [], []
    for hemi, side, count in hemispheres:
        cells, hemi_centres = _lloyd_cells(xyz[side], count, rng)
        cell[side] = cells + len(centres)
        centres.extend(hemi_centres)
        hemi_of.extend([hemi] * count)
    centres = np.asarray(centres)
    # Networks: one tessellation of the mirrored centres, so that a network sits at the
    # same place in both hemispheres, as Yeo's networks do.
    mirrored = np.column_stack([np.abs(centres[:, 0]), centres[:, 1:]])
    n_networks = min(n_networks, n_regions)
    network_of = _lloyd_cells(mirrored, n_networks, rng)[0]
    # Network 0 the most posterior, as visual comes first in Yeo's order.
    posterior_first = np.argsort(np.argsort(
        [mirrored[network_of == k, 1].mean() for k in range(n_networks)]))
    network_of = posterior_first[network_of]
    order = np.lexsort((centres[:, 1], network_of, np.asarray(hemi_of) == "RH"))
    return Bunch(xyz=xyz, ijk=ijk, cell=cell, centres=centres, hemi=np.asarray(hemi_of),
                 network=network_of, order=order)


def _names(layout: Bunch, n_networks: int, prefix: str) -> tuple[list[str], list[str]]:
    network_names = _network_names(n_networks)
    labels, networks, counter = [], [], {}
    for region in layout.order:
        net = network_names[layout.network[region]]
        key = (layout.hemi[region], net)
        counter[key] = counter.get(key, 0) + 1
        labels.append(f"{prefix}_{layout.hemi[region]}_{net}_{counter[key]}")
        networks.append(net)
    return labels, networks


def simulate_labels_atlas(n_regions: int, *, mask: np.ndarray | None = None,
                          affine: np.ndarray | None = None, n_networks: int = 7,
                          random_state: int | np.random.Generator | None = 0) -> Bunch:
    """A Schaefer-like parcellation of ``n_regions`` parcels grouped in networks.

    Parameters
    ----------
    n_regions : int
        Number of parcels (at least 2), half in each hemisphere (x < 0 is left).
    mask : ndarray of bool, optional
        Where the parcels lie, on the grid of ``affine``. By default the grey matter of
        the bundled MNI152 template on its 2 mm grid (91 x 109 x 91).
    affine : ndarray of shape (4, 4), optional
        The grid's voxel-to-mm affine; given with ``mask``.
    n_networks : int
        Networks (7 and 17 take Yeo's short names; other counts are ``Net01``...).
    random_state : int or numpy Generator
        Seed of the tessellation.

    Returns
    -------
    Bunch
        ``maps`` (3D int16 NIfTI image, 0 = background, parcel ``k`` has value
        ``indices[k]``), ``labels`` (``"7Networks_LH_Vis_1"``...), ``indices`` (1..n),
        ``networks``, ``region_coords`` (parcel centres of mass, mm), ``kind``
        (``"labels"``).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import simulate_labels_atlas
    >>> mask = np.zeros((20, 24, 20), dtype=bool)
    >>> mask[2:18, 2:22, 2:18] = True
    >>> affine = np.diag([4.0, 4.0, 4.0, 1.0])
    >>> affine[:3, 3] = [-40, -48, -40]
    >>> atlas = simulate_labels_atlas(10, mask=mask, affine=affine, random_state=0)
    >>> atlas.kind, atlas.maps.shape, len(atlas.labels), atlas.labels[0].split("_")[:2]
    ('labels', (20, 24, 20), 10, ['7Networks', 'LH'])
    >>> sorted(np.unique(np.asarray(atlas.maps.dataobj)).tolist()) == list(range(11))
    True
    """
    n_regions = _check_count(n_regions, "n_regions", 2)
    n_networks = _check_count(n_networks, "n_networks", 1)
    mask, affine = _grid(mask, affine)
    layout = _layout(n_regions, mask, affine, n_networks, make_rng(random_state))
    # Parcel value = its rank in Schaefer's order, plus 1 (0 is the background).
    value_of_cell = np.empty(n_regions, dtype=np.int16)
    value_of_cell[layout.order] = np.arange(1, n_regions + 1, dtype=np.int16)
    data = np.zeros(mask.shape, dtype=np.int16)
    data[tuple(layout.ijk.T)] = value_of_cell[layout.cell]
    counts = np.bincount(layout.cell, minlength=n_regions)
    centre_of_mass = np.stack([np.bincount(layout.cell, weights=layout.xyz[:, d],
                                           minlength=n_regions) for d in range(3)], axis=1)
    centre_of_mass /= counts[:, None]
    labels, networks = _names(layout, n_networks, f"{n_networks}Networks")
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    return Bunch(maps=img, labels=labels, indices=list(range(1, n_regions + 1)),
                 networks=networks, region_coords=centre_of_mass[layout.order], kind="labels")


def _soft_map(xyz: np.ndarray, centre: np.ndarray, sigma: float, radius: float,
              tree: cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """The points (rows of ``xyz``) and values of one bump, peak 1, 0 beyond ``radius``."""
    near = np.asarray(tree.query_ball_point(centre, radius), dtype=np.int64)
    near.sort()
    values = np.exp(-((xyz[near] - centre) ** 2).sum(axis=1) / (2.0 * sigma**2))
    return near, values.astype(np.float32)


def _write_maps(path: Path, maps_of, n_maps: int, mask: np.ndarray, affine: np.ndarray) -> None:
    """Write a 4D float32 NIfTI map by map (each map is contiguous on disk), atomically.

    ``maps_of(k)`` gives the voxel indices (m, 3) and the values of map ``k``.
    """
    header = nib.Nifti1Header()
    header.set_data_shape((*mask.shape, n_maps))
    header.set_data_dtype(np.float32)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=4)
    header.set_xyzt_units("mm", "sec")
    header.set_data_offset(352)
    with atomic_path(path) as tmp:
        opener = gzip.open(tmp, "wb", compresslevel=1) if path.name.endswith(".gz") else open(tmp, "wb")
        with opener as out:
            out.write(header.binaryblock)
            out.write(b"\x00" * (352 - len(header.binaryblock)))  # no extensions
            volume = np.zeros(mask.size, dtype="<f4")
            for k in range(n_maps):
                volume[:] = 0.0
                voxels, values = maps_of(k)
                volume[np.ravel_multi_index(voxels.T, mask.shape, order="F")] = values
                out.write(volume.tobytes())


def simulate_maps_atlas(n_maps: int, *, mask: np.ndarray | None = None,
                        affine: np.ndarray | None = None, n_networks: int = 7,
                        path: str | os.PathLike | None = None,
                        random_state: int | np.random.Generator | None = 0) -> Bunch:
    """A DiFuMo-like probabilistic atlas: ``n_maps`` overlapping soft maps in networks.

    Each map is a Gaussian bump at the centre of a cell of the same tessellation as
    :func:`simulate_labels_atlas`, as wide as the cells (full width at half maximum the
    diameter of a sphere of a cell's volume), cut to 0 below 5 % of its peak.

    Parameters
    ----------
    n_maps : int
        Number of maps (at least 2).
    mask, affine : optional
        The grid, as for :func:`simulate_labels_atlas` (default MNI152 2 mm grey matter).
    n_networks : int
        Networks of the maps (Yeo's names for 7 and 17).
    path : path-like, optional
        Write the 4D float32 image there (``.nii`` or ``.nii.gz``), one map at a time,
        and return the path as ``maps``: at 1024 maps on the 2 mm grid the image is
        3.7 GB, which this never holds. Without it ``maps`` is an in-memory image.
    random_state : int or numpy Generator
        Seed of the tessellation.

    Returns
    -------
    Bunch
        ``maps`` (4D image or its path), ``labels`` (``"Component 1"``...),
        ``indices`` (None), ``networks``, ``region_coords`` (bump centres, mm),
        ``kind`` (``"maps"``).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import simulate_maps_atlas
    >>> mask = np.zeros((20, 24, 20), dtype=bool)
    >>> mask[2:18, 2:22, 2:18] = True
    >>> affine = np.diag([4.0, 4.0, 4.0, 1.0])
    >>> affine[:3, 3] = [-40, -48, -40]
    >>> atlas = simulate_maps_atlas(12, mask=mask, affine=affine, random_state=0)
    >>> atlas.kind, atlas.maps.shape, atlas.networks[0]
    ('maps', (20, 24, 20, 12), 'Vis')
    >>> data = atlas.maps.get_fdata()
    >>> bool(data.min() >= 0), bool(np.isclose(data.max(), 1.0, atol=0.05))
    (True, True)
    """
    n_maps = _check_count(n_maps, "n_maps", 2)
    n_networks = _check_count(n_networks, "n_networks", 1)
    mask, affine = _grid(mask, affine)
    layout = _layout(n_maps, mask, affine, n_networks, make_rng(random_state))
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    cell_volume = layout.xyz.shape[0] * voxel_volume / n_maps
    fwhm = 2.0 * (3.0 * cell_volume / (4.0 * np.pi)) ** (1.0 / 3.0)
    sigma = fwhm / np.sqrt(8.0 * np.log(2.0))
    radius = sigma * np.sqrt(2.0 * np.log(1.0 / _MAP_FLOOR))
    tree = cKDTree(layout.xyz)
    centres = layout.centres[layout.order]

    def maps_of(k: int) -> tuple[np.ndarray, np.ndarray]:
        near, values = _soft_map(layout.xyz, centres[k], sigma, radius, tree)
        return layout.ijk[near], values

    labels = [f"Component {k + 1}" for k in range(n_maps)]
    networks = _names(layout, n_networks, "c")[1]
    if path is not None:
        path = Path(path)
        if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
            raise ParameterError(f"path={str(path)!r}; expected a .nii or .nii.gz file name")
        _write_maps(path, maps_of, n_maps, mask, affine)
        maps = str(path)
    else:
        data = np.zeros((*mask.shape, n_maps), dtype=np.float32, order="F")
        for k in range(n_maps):
            voxels, values = maps_of(k)
            data[(*voxels.T, k)] = values
        maps = nib.Nifti1Image(data, affine)
        maps.header.set_xyzt_units("mm", "sec")
    return Bunch(maps=maps, labels=labels, indices=None, networks=networks,
                 region_coords=centres, kind="maps")
