"""Representative MNI coordinates of atlas regions (one point per region).

A region's point is the centre of mass of its largest connected component,
moved to the nearest voxel of that component when the centre falls outside it
(a curved region's centroid can lie in another structure). For probabilistic
maps the component is taken among the voxels with the highest values and the
centre is weighted by the map.
"""

from __future__ import annotations

import os
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import AtlasError, ImageError, ParameterError

__all__ = ["find_parcellation_cut_coords", "find_probabilistic_atlas_cut_coords"]


def _load(img: Any, name: str) -> nib.spatialimages.SpatialImage:
    if isinstance(img, (str, os.PathLike)):
        try:
            return nib.load(str(img))
        except FileNotFoundError:
            raise ImageError(f"{name} file {str(img)!r} does not exist") from None
        except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a bad file
            raise ImageError(f"{name} file {str(img)!r} is not a readable NIfTI image: "
                             f"{exc}") from None
    if hasattr(img, "affine") and hasattr(img, "dataobj"):
        return img
    raise ImageError(f"{name} is a {type(img).__name__}; expected a NIfTI image or its path")


def _region_point(weights: np.ndarray, region: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates of the weighted centre of the largest component of ``region``."""
    from scipy import ndimage  # ~0.1 s to import: only when coordinates are computed

    labelled, n_comp = ndimage.label(region)
    if n_comp > 1:
        sizes = ndimage.sum_labels(weights, labelled, index=np.arange(1, n_comp + 1))
        region = labelled == (int(np.argmax(sizes)) + 1)
    idx = np.argwhere(region)
    w = weights[region]
    centre = (idx * w[:, None]).sum(axis=0) / w.sum() if w.sum() > 0 else idx.mean(axis=0)
    voxel = np.round(centre).astype(int)
    if not region[tuple(voxel)]:
        centre = idx[np.argmin(((idx - centre) ** 2).sum(axis=1))].astype(float)
    return nib.affines.apply_affine(affine, centre)


def find_probabilistic_atlas_cut_coords(maps_img: Any, percentile: float = 90.0) -> np.ndarray:
    """One MNI coordinate per map of a probabilistic (4D) atlas.

    Parameters
    ----------
    maps_img : 4D NIfTI image or path
    percentile : float
        The region of each map is the set of voxels whose value is at or above
        this percentile of the map's positive values.

    Returns
    -------
    ndarray of shape (n_maps, 3)

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.plotting import find_probabilistic_atlas_cut_coords
    >>> data = load_demo()
    >>> coords = find_probabilistic_atlas_cut_coords(data.maps)
    >>> coords.shape
    (39, 3)

    The demo maps are blobs centred on the atlas coordinates (4 mm voxels):

    >>> bool(np.abs(coords - data.region_coords).max() < 4.0)
    True
    """
    if not 0.0 <= percentile < 100.0:
        raise ParameterError(f"percentile={percentile!r}; expected a value in [0, 100)")
    img = _load(maps_img, "maps_img")
    if len(img.shape) == 3:
        shape4 = img.shape + (1,)
    elif len(img.shape) == 4:
        shape4 = img.shape
    else:
        raise ImageError(f"maps_img has shape {img.shape}; expected a 4D image of maps")
    coords = np.empty((shape4[3], 3))
    for k in range(shape4[3]):
        data = np.asarray(img.dataobj[..., k] if len(img.shape) == 4 else img.dataobj,
                          dtype=np.float64)
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        positive = data[data > 0]
        if positive.size == 0:
            raise AtlasError(f"maps_img map {k} has no positive value; expected each map to "
                             "mark a region")
        cut = np.percentile(positive, percentile)
        region = data >= cut
        coords[k] = _region_point(np.where(region, data, 0.0), region, img.affine)
    return coords


def find_parcellation_cut_coords(labels_img: Any, background_label: int = 0,
                                 return_label_names: bool = False,
                                 label_hemisphere: str = "left"):
    """One MNI coordinate per label of a deterministic (3D) parcellation.

    Parameters
    ----------
    labels_img : 3D NIfTI image or path
        Integer labels; ``background_label`` marks voxels outside every region.
    background_label : int
    return_label_names : bool
        Also return the label values, in the order of the coordinates.
    label_hemisphere : {"left", "right"}
        A label present in both hemispheres (a bilateral region) is placed in
        this hemisphere.

    Returns
    -------
    coords : ndarray of shape (n_labels, 3)
    labels : list of int, when ``return_label_names``

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.plotting import find_parcellation_cut_coords
    >>> labels = np.zeros((10, 10, 10), dtype=np.int16)
    >>> labels[1:4, 1:4, 1:4] = 1
    >>> labels[6:9, 6:9, 6:9] = 2
    >>> img = nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> coords, names = find_parcellation_cut_coords(img, return_label_names=True)
    >>> coords
    array([[ 4.,  4.,  4.],
           [14., 14., 14.]])
    >>> names
    [1, 2]
    """
    if label_hemisphere not in ("left", "right"):
        raise ParameterError(f"label_hemisphere={label_hemisphere!r}; expected 'left' or "
                             "'right'")
    img = _load(labels_img, "labels_img")
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageError(f"labels_img has shape {data.shape}; expected a 3D label image")
    if np.issubdtype(data.dtype, np.floating) and (
            not np.all(np.isfinite(data)) or np.any(data != np.round(data))):
            raise ImageError("labels_img holds non-integer values; expected integer labels")
    data = data.astype(np.int64)
    values = [int(v) for v in np.unique(data) if v != background_label]
    if not values:
        raise AtlasError("labels_img holds only the background label; expected regions")
    # World x of every voxel along the first axis is enough to split hemispheres
    # when the affine has no rotation; use the full affine to be safe.
    ii, jj, kk = np.indices(data.shape, sparse=False)
    x_world = (img.affine[0, 0] * ii + img.affine[0, 1] * jj + img.affine[0, 2] * kk
               + img.affine[0, 3])
    coords = np.empty((len(values), 3))
    for n, value in enumerate(values):
        region = data == value
        left, right = region & (x_world < 0), region & (x_world >= 0)
        if left.any() and right.any():
            region = left if label_hemisphere == "left" else right
        coords[n] = _region_point(region.astype(float), region, img.affine)
    if return_label_names:
        return coords, values
    return coords
