"""Resampling a 3D/4D image onto another voxel grid.

The value at each target voxel centre is interpolated in the source image at
the same point in mm: ``source_vox = inv(source_affine) @ target_affine @
target_vox``. Interpolation is a B-spline of order 3 ("continuous"), 1
("linear") or 0 ("nearest"), computed by :func:`scipy.ndimage.affine_transform`
with points outside the source grid set to ``fill_value``; the same semantics
as the seed's masker, so that region signals agree.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np

from ..errors import ParameterError
from ._io import get_data, load_img, new_img_like

__all__ = ["resample_array", "resample_img", "resample_to_img"]

_ORDERS = {"continuous": 3, "linear": 1, "nearest": 0}


def resample_array(data: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray,
                   target_shape: tuple[int, int, int], interpolation: str = "continuous",
                   fill_value: float = 0.0) -> np.ndarray:
    """Resample a 3D or 4D array (volumes along the last axis) onto a target grid.

    Returns a float64 array for "continuous"/"linear" (the source dtype for
    "nearest") of shape ``target_shape`` (+ the 4th axis).

    Examples
    --------
    Halve the resolution of a grid of 1 mm voxels (nearest neighbour keeps
    every other voxel):

    >>> import numpy as np
    >>> from sparse_connectome.image import resample_array
    >>> data = np.arange(64).reshape(4, 4, 4)
    >>> out = resample_array(data, np.eye(4), np.diag([2.0, 2.0, 2.0, 1.0]), (2, 2, 2),
    ...                      interpolation="nearest")
    >>> out.shape, out.dtype == data.dtype
    ((2, 2, 2), True)
    >>> bool(np.array_equal(out, data[::2, ::2, ::2]))
    True
    """
    from scipy import ndimage  # imported here: most extractions never resample

    if interpolation not in _ORDERS:
        raise ParameterError(f"interpolation={interpolation!r}; expected one of "
                             f"{sorted(_ORDERS)}")
    order = _ORDERS[interpolation]
    target_shape = tuple(int(s) for s in target_shape[:3])
    transform = np.linalg.inv(np.asarray(source_affine, dtype=float)) @ np.asarray(
        target_affine, dtype=float)
    matrix, offset = transform[:3, :3], transform[:3, 3]
    # A diagonal matrix is passed as a vector: scipy then takes a faster path.
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-12):
        matrix = np.diag(matrix).copy()
    if order == 0:
        out_dtype = data.dtype
        work = data
    else:
        out_dtype = np.float64
        work = np.asarray(data, dtype=np.float64)
    # Non-finite values would spread through the spline: interpolate with 0 there
    # and mark the output non-finite where the nearest source voxel was.
    bad = None
    if work.dtype.kind == "f" and not np.all(np.isfinite(work)):
        bad = ~np.isfinite(work)
        work = np.where(bad, 0.0, work)
    vols = work[..., None] if work.ndim == 3 else work
    out = np.empty(target_shape + (vols.shape[3],), dtype=out_dtype)
    for k in range(vols.shape[3]):
        out[..., k] = ndimage.affine_transform(
            vols[..., k], matrix, offset=offset, output_shape=target_shape, order=order,
            mode="constant", cval=fill_value, prefilter=order > 1)
    if bad is not None:
        bad_vols = bad[..., None] if bad.ndim == 3 else bad
        for k in range(bad_vols.shape[3]):
            hit = ndimage.affine_transform(bad_vols[..., k].astype(np.uint8), matrix,
                                           offset=offset, output_shape=target_shape, order=0,
                                           mode="constant", cval=0) > 0
            out[..., k][hit] = np.nan
    return out[..., 0] if data.ndim == 3 else out


def resample_img(img: Any, target_affine: np.ndarray, target_shape: tuple[int, ...],
                 interpolation: str = "continuous", fill_value: float = 0.0,
                 clip: bool = True) -> nib.Nifti1Image:
    """Resample an image onto the grid ``(target_affine, target_shape)``.

    Parameters
    ----------
    img : path-like or nibabel image
        3D or 4D image.
    target_affine : ndarray (4, 4)
    target_shape : tuple of 3 ints
    interpolation : {"continuous", "linear", "nearest"}
        Cubic B-spline, trilinear or nearest-neighbour interpolation.
    fill_value : float
        Value of target voxels outside the source grid.
    clip : bool
        Clip the result to the range of the source data (a cubic spline
        overshoots near edges, e.g. below 0 next to a map's support), as the
        seed's resampling does.

    Returns
    -------
    nibabel.Nifti1Image
        float64 data for "continuous"/"linear", the source dtype for "nearest".

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import resample_img
    >>> img = nib.Nifti1Image(np.ones((4, 4, 4, 3)), np.eye(4))
    >>> out = resample_img(img, np.diag([2.0, 2.0, 2.0, 1.0]), (2, 2, 2), interpolation="linear")
    >>> out.shape  # the volumes are kept
    (2, 2, 2, 3)
    >>> bool(np.allclose(out.get_fdata(), 1.0))
    True
    """

    loaded = load_img(img)
    target_affine = np.asarray(target_affine, dtype=float)
    if target_affine.shape != (4, 4) or not np.all(np.isfinite(target_affine)):
        raise ParameterError(f"target_affine must be a finite 4x4 matrix; got {target_affine!r}")
    if np.allclose(loaded.affine, target_affine, atol=1e-9) and \
            tuple(loaded.shape[:3]) == tuple(target_shape[:3]):
        return loaded
    if interpolation == "nearest":
        # Labels keep their dtype: raw values from an unscaled file, or the array
        # of an in-memory image (which carries no scaling); scaled files are read
        # as floats, since their stored integers are not the values.
        if not nib.is_proxy(loaded.dataobj):
            data = np.asarray(loaded.dataobj)
        elif float(loaded.dataobj.slope) == 1.0 and float(loaded.dataobj.inter) == 0.0:
            data = np.asarray(np.asanyarray(loaded.dataobj))
        else:
            data = get_data(loaded)
    else:
        data = get_data(loaded)
    out = resample_array(data, loaded.affine, target_affine, tuple(target_shape[:3]),
                         interpolation, fill_value)
    if clip and interpolation != "nearest" and data.size:
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanmin(data), np.nanmax(data)
        if np.isfinite(lo) and np.isfinite(hi):
            np.clip(out, lo, hi, out=out)
    return new_img_like(out, target_affine, loaded.header)


def resample_to_img(img: Any, target_img: Any, interpolation: str = "continuous",
                    fill_value: float = 0.0, clip: bool = True) -> nib.Nifti1Image:
    """Resample ``img`` onto the grid of ``target_img``.

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import resample_to_img, same_grid
    >>> labels = nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2),
    ...                          np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> target = nib.Nifti1Image(np.zeros((4, 4, 4)), np.eye(4))
    >>> out = resample_to_img(labels, target, interpolation="nearest")
    >>> same_grid(out, target), out.shape
    (True, (4, 4, 4))
    >>> np.unique(out.get_fdata()).tolist()  # no new label appears
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    """

    target = load_img(target_img)
    return resample_img(img, target.affine, tuple(target.shape[:3]), interpolation, fill_value,
                        clip)
