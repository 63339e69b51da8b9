"""NiftiMapsMasker: region signals as the least-squares fit of probabilistic maps.

For each volume ``y`` (voxels in the mask), the region signals ``x`` minimise
``||M x - y||²`` where ``M`` (voxels x maps) holds the maps. The maps are read
once, map by map, into a sparse matrix restricted to their support; the
pseudo-inverse of the Gram matrix ``MᵀM`` is computed once, and each block of
volumes read from disk costs one matrix product: ``X = Y M pinv(MᵀM)``.
"""

from __future__ import annotations

import warnings
from typing import Any

import nibabel as nib
import numpy as np
from scipy import sparse

from .._utils.estimator import check_is_fitted
from ..errors import AtlasError, DataWarning, ParameterError, ShapeMismatchError
from ..image import (
    bounding_box_mm,
    format_box,
    img_name,
    iter_volume_chunks,
    load_img,
    new_img_like,
    resample_array,
)
from ._base import BaseMasker, file_key
from ._extract import LinearExtractor, pinv_gram

__all__ = ["NiftiMapsMasker"]

# The oracle (nilearn >= 0.12) resamples maps trilinearly; the seed's older nilearn
# used a cubic spline ("continuous"). Trilinear keeps maps non-negative and local.
MAPS_INTERPOLATION = "linear"

# Below this fraction of nonzeros, keep the maps sparse (e.g. 400 local maps).
_DENSE_FRACTION = 0.2


def grid_key(affine: np.ndarray, shape: tuple) -> tuple:
    return (tuple(np.round(np.asarray(affine, dtype=float).ravel(), 6)),
            tuple(int(s) for s in shape[:3]))


def mask_on_grid(mask: Any, affine: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Boolean mask (flattened in Fortran order) on the grid, nearest interpolation."""
    if mask is None:
        return None
    data = np.asarray(mask.dataobj)
    if not (np.allclose(mask.affine, affine, atol=1e-6) and mask.shape[:3] == tuple(shape[:3])):
        data = resample_array(data, mask.affine, affine, tuple(shape[:3]), "nearest")
    return (np.asarray(data) != 0).ravel(order="F")


def build_maps_operator(maps: Any, mask: Any, affine: np.ndarray, shape: tuple,
                        maps_key: Any = None, mask_key: Any = None,
                        interpolation: str = MAPS_INTERPOLATION) -> dict:
    """Sparse maps on the target grid, their support and the Gram pseudo-inverse.

    Pure function of (maps, mask, grid): cached on disk by the masker when
    ``memory`` is set (``maps_key``/``mask_key`` key the cache).
    """
    del maps_key, mask_key
    shape3 = tuple(int(s) for s in shape[:3])
    same = np.allclose(maps.affine, affine, atol=1e-6) and tuple(maps.shape[:3]) == shape3
    n_vox = int(np.prod(shape3))
    lo = hi = None
    if not same:
        # The seed's resampling clips to the range of the whole maps array.
        lo, hi = np.inf, -np.inf
        for _, _, block in iter_volume_chunks(maps, dtype=np.float32):
            lo, hi = min(lo, float(np.nanmin(block))), max(hi, float(np.nanmax(block)))
    rows, cols, vals = [], [], []
    src_shape = tuple(maps.shape[:3])
    # Maps are read (and resampled) a few at a time and kept as sparse columns.
    read_dtype = np.float32 if same else np.float64
    for start, stop, block in iter_volume_chunks(maps, dtype=read_dtype, max_bytes=32 * 2**20):
        if not np.isfinite(block).all():
            block = np.where(np.isfinite(block), block, 0)
        if not same:
            vols = block.T.reshape(src_shape + (stop - start,), order="F")
            res = resample_array(vols, maps.affine, affine, shape3, interpolation)
            np.clip(res, lo, hi, out=res)
            block = res.reshape(n_vox, stop - start, order="F").T
        flat = np.flatnonzero(block)
        k, v = np.divmod(flat, block.shape[1])
        rows.append(v)
        cols.append(k + start)
        vals.append(block.ravel()[flat].astype(np.float64))
        del block
    n_maps = int(maps.shape[3])
    full = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                     np.concatenate(cols))),
                             shape=(n_vox, n_maps))
    mask_vec = mask_on_grid(mask, affine, shape3)
    if mask_vec is not None:
        full = sparse.diags(mask_vec.astype(np.float64)) @ full
        full.eliminate_zeros()
    full = full.tocsr()
    index = np.flatnonzero(np.diff(full.indptr) > 0)
    sub = full[index]
    gram = (sub.T @ sub).toarray()
    norms = np.diag(gram)
    empty = [int(i) for i in np.flatnonzero(norms <= 0)]
    post = pinv_gram(gram)
    # An empty map is exactly decoupled from the others: its signal is exactly 0.
    post[empty, :] = 0.0
    post[:, empty] = 0.0
    density = sub.nnz / max(1, sub.shape[0] * sub.shape[1])
    if density >= _DENSE_FRACTION:
        weights: Any = sub.toarray() @ post
        post_used = None
    else:
        weights = sub.tocsc()
        post_used = post
    return {"index": index, "weights": weights, "post": post_used, "maps": full,
            "empty": empty, "mask": mask_vec, "affine": np.asarray(affine, dtype=float),
            "shape": shape3}


class NiftiMapsMasker(BaseMasker):
    """Region signals from probabilistic (overlapping) maps, by least squares.

    Same interface and numbers as the seed's ``nilearn.maskers.NiftiMapsMasker``,
    computed in float64 while streaming the 4D image a block of volumes at a time.

    Parameters
    ----------
    maps_img : path-like or nibabel image
        4D image, one map per volume (a 3D image is one map).
    mask_img : path-like or nibabel image, optional
        3D mask; voxels outside it are not used.
    allow_overlap : bool, default=True
        If False, maps that overlap raise :class:`AtlasError`.
    standardize : {'zscore_sample', 'zscore', 'psc', False, None}, default=False
    standardize_confounds : bool, default=True
    detrend : bool, default=False
    low_pass, high_pass : float, optional
        Butterworth cut-offs in Hz (need ``t_r``).
    t_r : float, optional
        Repetition time in seconds.
    dtype : dtype, optional
        dtype of the returned signals (default float64).
    resampling_target : {"data", "maps", "mask", None}, default="data"
        Grid on which maps, mask and data meet: the data's (maps and mask are
        resampled, trilinear / nearest), the maps' or the mask's (the data is
        resampled, block by block), or None (all must already share a grid).
    memory : str, path or joblib.Memory, optional
        Folder of an on-disk cache: a repeated extraction is read back.
    memory_level : int, default=0
        Caching happens at level 1 and above (a given ``memory`` with level 0
        is used at level 1, with a warning).
    verbose : int, default=0
        Log progress at INFO level when > 0.

    Attributes
    ----------
    maps_img_ : nibabel.Nifti1Image
        The maps on the grid where signals were last extracted (resampled with
        trilinear interpolation, as the oracle nilearn >= 0.12 does).
    mask_img_ : nibabel.Nifti1Image or None
    n_elements_ : int
        Number of maps (regions).

    Examples
    --------
    The seed's flow on the demo subject: 39 probabilistic maps, confounds
    regressed out, signals z-scored.

    >>> import numpy as np
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.maskers import NiftiMapsMasker
    >>> data = load_demo()
    >>> masker = NiftiMapsMasker(maps_img=data.maps, standardize="zscore_sample")
    >>> time_series = masker.fit_transform(data.func[0], confounds=data.confounds[0])
    >>> time_series.shape  # (volumes, regions)
    (168, 39)
    >>> masker.n_elements_
    39
    >>> bool(np.allclose(time_series.std(axis=0, ddof=1), 1.0))
    True
    """

    def __init__(self, maps_img: Any = None, mask_img: Any = None, allow_overlap: bool = True,
                 smoothing_fwhm: float | None = None, standardize: Any = False,
                 standardize_confounds: bool = True, detrend: bool = False,
                 low_pass: float | None = None, high_pass: float | None = None,
                 t_r: float | None = None, dtype: Any = None,
                 resampling_target: str | None = "data", memory: Any = None,
                 memory_level: int = 0, verbose: int = 0) -> None:
        self.maps_img = maps_img
        self.mask_img = mask_img
        self.allow_overlap = allow_overlap
        self.smoothing_fwhm = smoothing_fwhm
        self.standardize = standardize
        self.standardize_confounds = standardize_confounds
        self.detrend = detrend
        self.low_pass = low_pass
        self.high_pass = high_pass
        self.t_r = t_r
        self.dtype = dtype
        self.resampling_target = resampling_target
        self.memory = memory
        self.memory_level = memory_level
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, imgs: Any = None, y: Any = None) -> NiftiMapsMasker:
        """Load and check the maps (and mask); prepare them on the target grid."""
        del y
        self._check_resampling_target(("data", "maps", "mask", None))
        if self.smoothing_fwhm is not None:
            raise ParameterError("smoothing_fwhm is not supported by this masker; expected "
                                 "None")
        if self.maps_img is None:
            raise ParameterError("maps_img is None; expected a 4D probabilistic maps image")
        maps = load_img(self.maps_img, name="maps_img")
        if len(maps.shape) == 3:
            from ._extract import as_4d

            maps = as_4d(maps)
        mask = load_img(self.mask_img, ndim=3, name="mask_img") if self.mask_img is not None \
            else None
        if self.resampling_target == "mask" and mask is None:
            raise ParameterError("resampling_target='mask' needs a mask_img")
        self._maps = maps
        self._mask = mask
        self._operators: dict = {}
        self.n_elements_ = int(maps.shape[3])
        first = imgs[0] if isinstance(imgs, (list, tuple)) and len(imgs) else imgs
        if self.resampling_target == "maps" or self.resampling_target is None:
            grid = (maps.affine, maps.shape[:3])
        elif self.resampling_target == "mask":
            grid = (mask.affine, mask.shape[:3])
        elif first is not None:
            data = load_img(first, name="imgs")
            grid = (data.affine, data.shape[:3])
        elif mask is not None:
            grid = (mask.affine, mask.shape[:3])
        else:
            grid = (maps.affine, maps.shape[:3])
        if self.resampling_target is None and mask is not None and not (
                np.allclose(mask.affine, maps.affine, atol=1e-6)
                and mask.shape[:3] == maps.shape[:3]):
            raise ShapeMismatchError(
                f"resampling_target=None but mask_img {img_name(self.mask_img, 'mask_img')} "
                f"(shape {mask.shape[:3]}) and maps_img {img_name(self.maps_img, 'maps_img')} "
                f"(shape {maps.shape[:3]}) are on different grids")
        op = self._operator(grid[0], grid[1], data_label=img_name(first, "imgs")
                            if first is not None else None)
        self._set_fitted_images(op)
        if not self.allow_overlap:
            overlap = np.asarray((op["maps"] != 0).sum(axis=1)).ravel() > 1
            if overlap.any():
                raise AtlasError(f"maps_img {img_name(self.maps_img, 'maps_img')}: "
                                 f"{int(overlap.sum())} voxels belong to several maps and "
                                 "allow_overlap=False")
        return self

    def _set_fitted_images(self, op: dict) -> None:
        self._fit_op = op
        self.mask_img_ = None if op["mask"] is None else new_img_like(
            op["mask"].reshape(op["shape"], order="F"), op["affine"])
        self._maps_img_cache = None

    @property
    def maps_img_(self) -> nib.Nifti1Image:
        """The maps on the grid where the masker last worked (built on demand)."""
        check_is_fitted(self, "_fit_op")
        if self._maps_img_cache is None:
            op = self._fit_op
            dense = op["maps"].toarray().reshape(op["shape"] + (self.n_elements_,), order="F")
            self._maps_img_cache = new_img_like(dense.astype(np.float32), op["affine"])
        return self._maps_img_cache

    def _operator(self, affine: np.ndarray, shape: tuple, data_label: str | None) -> dict:
        key = grid_key(affine, shape)
        if key in self._operators:
            return self._operators[key]
        args = (self._maps, self._mask, np.asarray(affine, dtype=float),
                tuple(int(s) for s in shape[:3]))
        memory = self._memory()
        if memory is not None:
            op = memory.cache(build_maps_operator, ignore=["maps", "mask"])(
                *args, file_key(self.maps_img), file_key(self.mask_img))
        else:
            op = build_maps_operator(*args)
        self._log("maps ready on grid %s: %d voxels in their support", op["shape"],
                  op["index"].size)
        if op["index"].size == 0:
            maps_box = format_box(bounding_box_mm(self._maps))
            where = f"image {data_label}" if data_label else "the target grid"
            box = format_box(bounding_box_mm(GridBox(affine, shape)))
            mask_note = (f" within mask_img {img_name(self.mask_img, 'mask_img')}"
                         if self._mask is not None else "")
            raise AtlasError(
                f"maps_img {img_name(self.maps_img, 'maps_img')} (spanning {maps_box}) does "
                f"not overlap {where} (spanning {box}){mask_note}: no voxel of any map "
                "is left; expected maps and image in the same space")
        if op["empty"]:
            warnings.warn(f"maps_img {img_name(self.maps_img, 'maps_img')}: map(s) "
                          f"{op['empty']} (0-based) are empty on the data grid (within the "
                          "mask); their signals are 0", DataWarning, stacklevel=4)
        self._operators[key] = op
        return op

    # ------------------------------------------------------------------ transform
    def _extractor_for(self, img: Any):
        target = self.resampling_target
        data_grid = (img.affine, tuple(img.shape[:3]))
        if target == "data":
            op = self._operator(*data_grid, data_label=img_name(img, "imgs"))
            resample_to = None
        else:
            op = self._fit_op
            same = np.allclose(op["affine"], img.affine, atol=1e-6) and \
                tuple(img.shape[:3]) == op["shape"]
            if same:
                resample_to = None
            elif target is None:
                raise ShapeMismatchError(
                    f"resampling_target=None but image {img_name(img, 'imgs')} (shape "
                    f"{tuple(img.shape[:3])}) and maps_img "
                    f"{img_name(self.maps_img, 'maps_img')} (shape {op['shape']}) are on "
                    "different grids; expected the same grid or resampling_target='data'")
            else:
                resample_to = (op["affine"], op["shape"])
        if op is not self._fit_op:
            self._set_fitted_images(op)
        return LinearExtractor(op["index"], op["weights"], op["post"]), resample_to

    def inverse_transform(self, region_signals: np.ndarray) -> nib.Nifti1Image:
        """Image of the maps weighted by region signals: ``M @ signals.T``.

        ``region_signals`` of shape (n_volumes, n_maps) gives a 4D image;
        shape (n_maps,) gives a 3D image.
        """
        check_is_fitted(self, "_fit_op")
        signals = np.asarray(region_signals, dtype=np.float64)
        one = signals.ndim == 1
        signals = np.atleast_2d(signals)
        if signals.ndim != 2 or signals.shape[1] != self.n_elements_:
            raise ShapeMismatchError(f"region_signals have shape {np.shape(region_signals)}; "
                                     f"expected (n_volumes, {self.n_elements_})")
        op = self._fit_op
        data = np.asarray(op["maps"] @ signals.T)
        data = data.reshape(op["shape"] + (signals.shape[0],), order="F")
        return new_img_like(data[..., 0] if one else data, op["affine"])


class GridBox:
    """Just enough of an image for :func:`bounding_box_mm` (affine + shape)."""

    def __init__(self, affine: np.ndarray, shape: tuple) -> None:
        self.affine = np.asarray(affine, dtype=float)
        self.shape = tuple(shape)
