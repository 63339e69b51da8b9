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
from ._extract import LinearExtractor, exact_dtype, pinv_gram

__all__ = ["NiftiMapsMasker"]

# The oracle (nilearn >= 0.12) resamples maps trilinearly; the seed's older nilearn
# used a cubic spline ("continuous"). Trilinear keeps maps non-negative and local.
MAPS_INTERPOLATION = "linear"

# Below this fraction of nonzeros, keep the maps sparse (e.g. 400 local maps); above
# it, a dense product is faster, if the dense weights stay small: at 1024 maps on a
# 2 mm grid they would take 1.9 GB (the sparse maps ~12 bytes per nonzero).
_DENSE_FRACTION = 0.2
_DENSE_MAX_BYTES = 256 * 2**20
# Maps read (and resampled) this many bytes at a time.
_MAPS_CHUNK_BYTES = 32 * 2**20


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


def _translate(affine: np.ndarray, voxel: np.ndarray) -> np.ndarray:
    """The affine of a sub-grid whose first voxel is ``voxel`` of ``affine``'s grid."""
    shift = np.eye(4)
    shift[:3, 3] = voxel
    return np.asarray(affine, dtype=float) @ shift


def resample_map(volume: np.ndarray, src_affine: np.ndarray, src_shape: tuple,
                 affine: np.ndarray, shape3: tuple, interpolation: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One map (a flat Fortran-order volume) on another grid: (flat indices, values).

    With trilinear or nearest interpolation a target voxel depends only on the
    source voxels around it, so only the box of the map's support (one voxel of
    zeros added around it, as a margin) is resampled, onto the target voxels it can
    reach: the same values as a resampling of the whole volume (to rounding), at the
    cost of the map's size instead of the grid's. Clipped to the map's range with
    0 in it, as the oracle clips to the image's range (the same thing for a convex
    combination of the map's values and 0, up to rounding).
    """
    src_shape = tuple(int(s) for s in src_shape)
    nonzero = np.flatnonzero(volume != 0)
    if nonzero.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    vol3 = volume.reshape(src_shape, order="F")
    if interpolation in ("linear", "nearest"):
        ijk = np.unravel_index(nonzero, src_shape, order="F")
        lo = np.maximum([int(a.min()) - 1 for a in ijk], 0)
        hi = np.minimum([int(a.max()) + 1 for a in ijk], np.asarray(src_shape) - 1)
        to_target = np.linalg.inv(np.asarray(affine, dtype=float)) @ np.asarray(
            src_affine, dtype=float)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])], dtype=float)
        reach = corners @ to_target[:3, :3].T + to_target[:3, 3]
        t_lo = np.maximum(np.floor(reach.min(axis=0)).astype(int) - 1, 0)
        t_hi = np.minimum(np.ceil(reach.max(axis=0)).astype(int) + 1,
                          np.asarray(shape3) - 1)
        if np.any(t_hi < t_lo):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        sub = vol3[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
        out_shape = tuple(int(s) for s in t_hi - t_lo + 1)
        res = resample_array(sub, _translate(src_affine, lo), _translate(affine, t_lo),
                             out_shape, interpolation)
    else:  # a spline's prefilter spreads over the whole volume: no shortcut
        t_lo, out_shape = np.zeros(3, dtype=int), shape3
        res = resample_array(vol3, src_affine, affine, shape3, interpolation)
    lo_val, hi_val = min(float(volume[nonzero].min()), 0.0), max(float(volume[nonzero].max()), 0.0)
    np.clip(res, lo_val, hi_val, out=res)
    flat = res.ravel(order="F")
    local = np.flatnonzero(flat != 0)
    # Sub-box indices, in Fortran order, stay ascending on the whole grid.
    sub_ijk = np.unravel_index(local, out_shape, order="F")
    voxels = np.ravel_multi_index(tuple(a + t for a, t in zip(sub_ijk, t_lo)), shape3,
                                  order="F")
    return voxels, flat[local].astype(np.float64)


def read_sparse_maps(maps: Any, affine: np.ndarray, shape3: tuple[int, int, int],
                     mask_vec: np.ndarray | None,
                     interpolation: str = MAPS_INTERPOLATION
                     ) -> tuple[np.ndarray, sparse.csc_matrix]:
    """The maps on a grid as a sparse (support voxels x maps) matrix, read map by map.

    Returns ``(index, support)``: the flat (Fortran-order) indices of the voxels where
    at least one map is nonzero (within ``mask_vec``), and the maps restricted to
    them, in float64 with 32-bit row indices when they fit. Only a few maps are ever
    dense in memory: the image is read ``_MAPS_CHUNK_BYTES`` at a time (each map
    resampled on its own when the grids differ), and each map is kept as its
    nonzeros: 12 bytes per nonzero, ~12 MB for 1024 DiFuMo-like maps at 2 mm.
    """
    same = np.allclose(maps.affine, affine, atol=1e-6) and tuple(maps.shape[:3]) == shape3
    n_vox = int(np.prod(shape3))
    n_maps = int(maps.shape[3])
    index_dtype = np.int32 if n_vox < 2**31 else np.int64
    voxels, values, counts = [], [], np.zeros(n_maps, dtype=np.int64)
    for start, stop, block in iter_volume_chunks(maps, dtype=exact_dtype(maps),
                                                 max_bytes=_MAPS_CHUNK_BYTES):
        if not np.isfinite(block).all():
            block = np.where(np.isfinite(block), block, 0)
        for k in range(stop - start):
            if same:
                nonzero = np.flatnonzero(block[k] != 0)  # on booleans: ~7x faster
                vals = block[k][nonzero].astype(np.float64)
            else:
                nonzero, vals = resample_map(block[k], maps.affine, maps.shape[:3], affine,
                                             shape3, interpolation)
            if mask_vec is not None:
                inside = mask_vec[nonzero]
                nonzero, vals = nonzero[inside], vals[inside]
            voxels.append(nonzero.astype(index_dtype))
            values.append(vals)
            counts[start + k] = nonzero.size
        del block
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
    rows = np.concatenate(voxels) if voxels else np.zeros(0, dtype=index_dtype)
    del voxels
    data = np.concatenate(values) if values else np.zeros(0)
    del values
    # Voxels in the support of any map, ascending; rows renumbered in place.
    inside_any = np.zeros(n_vox, dtype=bool)
    inside_any[rows] = True
    index = np.flatnonzero(inside_any)
    del inside_any
    renumber = np.zeros(n_vox, dtype=index_dtype)
    renumber[index] = np.arange(index.size, dtype=index_dtype)
    np.take(renumber, rows, out=rows)
    del renumber
    support = sparse.csc_matrix((data, rows, indptr), shape=(index.size, n_maps))
    return index, support


def build_maps_operator(maps: Any, mask: Any, affine: np.ndarray, shape: tuple,
                        maps_key: Any = None, mask_key: Any = None,
                        interpolation: str = MAPS_INTERPOLATION) -> dict:
    """Sparse maps on the target grid, their support and the Gram pseudo-inverse.

    Pure function of (maps, mask, grid): cached on disk by the masker when
    ``memory`` is set (``maps_key``/``mask_key`` key the cache). The maps are
    held as their nonzeros only (:func:`read_sparse_maps`); they become a dense
    weight matrix only when dense enough for a dense product to pay and small
    enough (``_DENSE_MAX_BYTES``) to stay far below the memory of one BOLD run.
    """
    del maps_key, mask_key
    shape3 = tuple(int(s) for s in shape[:3])
    mask_vec = mask_on_grid(mask, affine, shape3)
    index, support = read_sparse_maps(maps, affine, shape3, mask_vec, interpolation)
    gram = (support.T @ support).toarray()
    norms = np.diag(gram)
    empty = [int(i) for i in np.flatnonzero(norms <= 0)]
    post = pinv_gram(gram)
    # An empty map is exactly decoupled from the others: its signal is exactly 0.
    post[empty, :] = 0.0
    post[:, empty] = 0.0
    n_cells = support.shape[0] * support.shape[1]
    density = support.nnz / max(1, n_cells)
    if density >= _DENSE_FRACTION and n_cells * 8 <= _DENSE_MAX_BYTES:
        weights: Any = support.toarray() @ post
        post_used = None
    else:
        weights = support
        post_used = post
    return {"index": index, "weights": weights, "post": post_used, "support": support,
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
            support = op["support"]
            per_voxel = np.bincount(support.indices[support.data != 0],
                                    minlength=support.shape[0])
            overlap = per_voxel > 1
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
            # Filled map by map in float32: no float64 copy of the dense maps.
            n_vox = int(np.prod(op["shape"]))
            dense = np.zeros(op["shape"] + (self.n_elements_,), dtype=np.float32, order="F")
            flat = dense.reshape(n_vox, self.n_elements_, order="F")
            support = op["support"]
            for k in range(self.n_elements_):
                lo, hi = support.indptr[k], support.indptr[k + 1]
                flat[op["index"][support.indices[lo:hi]], k] = support.data[lo:hi]
            self._maps_img_cache = new_img_like(dense, op["affine"])
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
        data = np.zeros((int(np.prod(op["shape"])), signals.shape[0]))
        data[op["index"]] = op["support"] @ signals.T
        data = data.reshape(op["shape"] + (signals.shape[0],), order="F")
        return new_img_like(data[..., 0] if one else data, op["affine"])


class GridBox:
    """Just enough of an image for :func:`bounding_box_mm` (affine + shape)."""

    def __init__(self, affine: np.ndarray, shape: tuple) -> None:
        self.affine = np.asarray(affine, dtype=float)
        self.shape = tuple(shape)
