"""Where the regions and tissues are: blob maps, tissue probabilities, resampling."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError, ParameterError, ShapeMismatchError

logger = logging.getLogger(__name__)


def resample_to_grid(data: np.ndarray, affine: np.ndarray, shape: Sequence[int],
                     target_affine: np.ndarray, order: int = 1) -> np.ndarray:
    """Resample a 3D array onto another grid (voxels outside the source get 0).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import resample_to_grid
    >>> data = np.zeros((10, 10, 10))
    >>> data[4:6, 4:6, 4:6] = 1.0
    >>> coarse = resample_to_grid(data, np.eye(4), (5, 5, 5), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> coarse.shape, float(coarse[2, 2, 2]), float(coarse[0, 0, 0])
    ((5, 5, 5), 1.0, 0.0)
    """
    data = np.asarray(data, dtype=float)
    if data.ndim != 3:
        raise ShapeMismatchError(f"data must be 3D; got shape {data.shape}")
    # target voxel -> mm -> source voxel
    vox_to_vox = np.linalg.solve(np.asarray(affine, float), np.asarray(target_affine, float))
    return ndimage.affine_transform(data, vox_to_vox[:3, :3], offset=vox_to_vox[:3, 3],
                                    output_shape=tuple(int(s) for s in shape), order=order,
                                    mode="constant", cval=0.0)


def voxel_mm(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World (mm) coordinates of every voxel of a grid, shape ``(*shape, 3)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate.anatomy import voxel_mm
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> affine[:3, 3] = -10
    >>> xyz = voxel_mm((4, 4, 4), affine)
    >>> xyz.shape
    (4, 4, 4, 3)
    >>> xyz[1, 2, 3].tolist()
    [-8.0, -6.0, -4.0]
    """
    ijk = np.indices(tuple(shape), dtype=float).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).T.reshape(*shape, 3)


def make_blob_maps(coords_mm: np.ndarray, shape: Sequence[int], affine: np.ndarray,
                   mask: np.ndarray, fwhm_mm: float = 14.0,
                   floor: float = 0.02) -> np.ndarray:
    """One Gaussian blob per region, centred on its coordinate, inside a mask.

    A coordinate that falls outside the mask is moved to the nearest mask voxel,
    so that every map is non-empty.

    Parameters
    ----------
    coords_mm : ndarray of shape (n_regions, 3)
        Centres in world (mm) coordinates.
    shape : (int, int, int)
        Grid shape.
    affine : ndarray of shape (4, 4)
        Voxel-to-mm affine of the grid.
    mask : ndarray of bool, shape ``shape``
        Where the maps may be non-zero.
    fwhm_mm : float
        Full width at half maximum of the blobs.
    floor : float
        Values below this fraction of the peak are set to 0, so that maps have a
        finite support, as probabilistic atlases do.

    Returns
    -------
    maps : ndarray of shape (*shape, n_regions), float32
        Peak 1 at the centre.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import make_blob_maps
    >>> mask = np.ones((20, 20, 20), dtype=bool)
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> maps = make_blob_maps([[10.0, 10.0, 10.0], [30.0, 30.0, 30.0]], mask.shape, affine, mask)
    >>> maps.shape, maps.dtype
    ((20, 20, 20, 2), dtype('float32'))
    >>> float(maps[5, 5, 5, 0]), float(maps[5, 5, 5, 1])
    (1.0, 0.0)
    """
    coords = np.asarray(coords_mm, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ShapeMismatchError(f"coords_mm must have shape (n_regions, 3); got "
                                 f"{coords.shape}")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ShapeMismatchError(f"mask has shape {mask.shape}; expected {tuple(shape)}")
    if not mask.any():
        raise InputError("mask is empty; expected at least one voxel inside the brain")
    if float(fwhm_mm) <= 0:
        raise ParameterError(f"fwhm_mm must be positive; got {fwhm_mm}")
    sigma = float(fwhm_mm) / np.sqrt(8.0 * np.log(2.0))
    affine = np.asarray(affine, float)
    ijk_mask = np.argwhere(mask)
    in_mask_mm = ijk_mask @ affine[:3, :3].T + affine[:3, 3]
    values = np.empty((ijk_mask.shape[0], coords.shape[0]), dtype=np.float32)
    inv = np.linalg.inv(affine)
    for r, c in enumerate(coords):
        ijk = np.rint(inv[:3, :3] @ c + inv[:3, 3]).astype(int)
        inside = bool(np.all(ijk >= 0) and np.all(ijk < np.asarray(shape))
                      and mask[tuple(ijk)])
        if not inside:
            c = in_mask_mm[np.argmin(((in_mask_mm - c) ** 2).sum(axis=1))]
        blob = np.exp(-((in_mask_mm - c) ** 2).sum(axis=1) / (2.0 * sigma**2))
        blob[blob < floor] = 0.0
        values[:, r] = blob
    maps = np.zeros((*tuple(shape), coords.shape[0]), dtype=np.float32, order="F")
    maps[mask] = values
    return maps


def _ventricles(xyz: np.ndarray) -> np.ndarray:
    """Soft indicator of the lateral and third ventricles (approximate MNI shapes)."""
    out = np.zeros(xyz.shape[:3])
    # (centre mm, radii mm): bodies of the lateral ventricles and the third ventricle
    for centre, radii in (((-14, -8, 16), (5, 22, 8)), ((14, -8, 16), (5, 22, 8)),
                          ((0, -14, 2), (3, 12, 8))):
        d2 = (((xyz - np.asarray(centre, float)) / np.asarray(radii, float)) ** 2).sum(-1)
        out = np.maximum(out, np.exp(-d2**2))
    return out


def tissue_probabilities(mask: np.ndarray, gm: np.ndarray,
                         affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate grey-matter, white-matter and CSF fractions inside a brain mask.

    The non-grey part of each voxel is split between CSF (near the outer surface of
    the mask and in the ventricles) and white matter (the rest), which is where
    those tissues lie; the template bundles no CSF map.

    Returns
    -------
    gm, wm, csf : ndarrays of the mask's shape, summing to 1 inside the mask

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import tissue_probabilities
    >>> ball = (np.indices((16, 16, 16)) - 7.5) ** 2
    >>> mask = ball.sum(axis=0) < 49
    >>> affine = np.diag([6.0, 6.0, 6.0, 1.0])
    >>> affine[:3, 3] = -45
    >>> gm, wm, csf = tissue_probabilities(mask, 0.5 * mask, affine)
    >>> bool(np.allclose((gm + wm + csf)[mask], 1.0)), bool(np.any(csf[~mask]))
    (True, False)
    """
    mask = np.asarray(mask, dtype=bool)
    if np.shape(gm) != mask.shape:
        raise ShapeMismatchError(f"gm has shape {np.shape(gm)}; expected the mask's "
                                 f"{mask.shape}")
    vox_mm = float(abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    ventricles = _ventricles(voxel_mm(mask.shape, affine))
    # A blurred grey-matter template leaks into the ventricles: they hold CSF only.
    gm = np.clip(np.asarray(gm, dtype=float), 0.0, 1.0) * (1.0 - ventricles) * mask
    surface = np.exp(-((ndimage.distance_transform_edt(mask) * vox_mm / 6.0) ** 2))
    csf_share = np.clip(np.maximum(surface, ventricles), 0, 1)
    rest = (1.0 - gm) * mask
    csf = rest * csf_share
    wm = rest - csf
    return gm, wm, csf


# --------------------------------------------------------------------------- #
# Time courses of nuisance
# --------------------------------------------------------------------------- #
