"""NiftiSpheresMasker: the mean signal in a sphere around each seed (coordinates in mm).

A voxel belongs to a seed's sphere when its centre is at most ``radius`` mm
from the seed, and the voxel nearest to the seed (rounded voxel coordinates)
always belongs to it; both only within the mask when one is given. This is the
seed's masker's inclusion rule, checked against it in the tests.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
from scipy import sparse

from ..errors import AtlasError, ParameterError
from ..image import img_name, load_img
from ._base import BaseMasker
from ._extract import LinearExtractor
from ._maps import grid_key, mask_on_grid

__all__ = ["NiftiSpheresMasker", "sphere_voxels"]


def sphere_voxels(seeds: np.ndarray, radius: float | None, affine: np.ndarray,
                  shape: tuple[int, int, int], mask: np.ndarray | None = None
                  ) -> list[np.ndarray]:
    """Flat (Fortran-order) voxel indices of each seed's sphere on a grid."""
    inv = np.linalg.inv(affine)
    shape = tuple(int(s) for s in shape)
    # Half-width of the voxel box around a seed that holds the whole sphere.
    step = np.linalg.svd(affine[:3, :3], compute_uv=False).min()
    half = int(np.ceil((radius or 0.0) / step)) + 1
    out = []
    for seed in seeds:
        vox = inv[:3, :3] @ seed + inv[:3, 3]
        nearest = np.round(vox).astype(int)
        lo = np.maximum(np.floor(vox).astype(int) - half, 0)
        hi = np.minimum(np.ceil(vox).astype(int) + half, np.array(shape) - 1)
        chosen: list[np.ndarray] = []
        if radius is not None and np.all(lo <= hi):
            grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)],
                                        indexing="ij"), -1).reshape(-1, 3)
            mm = grid @ affine[:3, :3].T + affine[:3, 3]
            dist = np.sqrt(((mm - seed) ** 2).sum(axis=1))
            chosen.append(grid[dist <= radius])
        if np.all(nearest >= 0) and np.all(nearest < np.array(shape)):
            chosen.append(nearest[None, :])
        if chosen:
            ijk = np.unique(np.concatenate(chosen), axis=0)
            flat = np.ravel_multi_index(ijk.T, shape, order="F")
            if mask is not None:
                flat = flat[mask[flat]]
        else:
            flat = np.zeros(0, dtype=int)
        out.append(np.sort(flat))
    return out


class NiftiSpheresMasker(BaseMasker):
    """Mean signal in spheres around seeds given in mm (e.g. a coordinate atlas).

    Parameters
    ----------
    seeds : array-like (n_seeds, 3)
        Sphere centres in mm (world coordinates of the images).
    radius : float, optional
        Sphere radius in mm; None keeps the single voxel nearest to each seed.
    mask_img : path-like or nibabel image, optional
        Voxels outside the mask belong to no sphere.
    allow_overlap : bool, default=False
        If False, spheres sharing a voxel raise :class:`AtlasError`.
    Other parameters as in :class:`NiftiMapsMasker`.

    Attributes
    ----------
    seeds_ : ndarray (n_seeds, 3)
    n_elements_ : int

    Examples
    --------
    Spheres of 8 mm around the centres of three regions of the demo atlas:

    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.maskers import NiftiSpheresMasker
    >>> data = load_demo()
    >>> masker = NiftiSpheresMasker(data.region_coords[:3], radius=8.0)
    >>> masker.fit_transform(data.func[0]).shape
    (168, 3)
    >>> masker.seeds_.shape
    (3, 3)
    """

    def __init__(self, seeds: Any = None, radius: float | None = None, mask_img: Any = None,
                 allow_overlap: bool = False, smoothing_fwhm: float | None = None,
                 standardize: Any = False, standardize_confounds: bool = True,
                 detrend: bool = False, low_pass: float | None = None,
                 high_pass: float | None = None, t_r: float | None = None, dtype: Any = None,
                 memory: Any = None, memory_level: int = 0, verbose: int = 0) -> None:
        self.seeds = seeds
        self.radius = radius
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
        self.memory = memory
        self.memory_level = memory_level
        self.verbose = verbose

    def fit(self, imgs: Any = None, y: Any = None) -> NiftiSpheresMasker:
        """Check the seeds, radius and mask."""
        del y
        if self.smoothing_fwhm is not None:
            raise ParameterError("smoothing_fwhm is not supported; expected None")
        try:
            seeds = np.asarray(self.seeds, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"seeds must be (n_seeds, 3) coordinates in mm; got "
                                 f"{self.seeds!r}") from exc
        if seeds.ndim == 1 and seeds.size == 3:
            seeds = seeds[None, :]
        if seeds.ndim != 2 or seeds.shape[1] != 3 or seeds.shape[0] == 0 or \
                not np.all(np.isfinite(seeds)):
            raise ParameterError(f"seeds must be a finite (n_seeds, 3) array in mm; got shape "
                                 f"{seeds.shape}")
        if self.radius is not None and not (np.isfinite(self.radius) and self.radius >= 0):
            raise ParameterError(f"radius={self.radius!r}; expected a non-negative number of "
                                 "mm or None")
        self.seeds_ = seeds
        self.n_elements_ = seeds.shape[0]
        self._mask = load_img(self.mask_img, ndim=3, name="mask_img") \
            if self.mask_img is not None else None
        self._operators: dict = {}
        first = imgs[0] if isinstance(imgs, (list, tuple)) and len(imgs) else imgs
        if first is not None:
            data = load_img(first, name="imgs")
            self._operator(data.affine, data.shape[:3], img_name(first, "imgs"))
        elif self._mask is not None:
            self._operator(self._mask.affine, self._mask.shape[:3], None)
        return self

    def _operator(self, affine: np.ndarray, shape: tuple, data_label: str | None) -> Any:
        key = grid_key(affine, shape)
        if key in self._operators:
            return self._operators[key]
        shape3 = tuple(int(s) for s in shape[:3])
        mask_vec = mask_on_grid(self._mask, affine, shape3)
        spheres = sphere_voxels(self.seeds_, self.radius, np.asarray(affine, dtype=float),
                                shape3, mask_vec)
        empty = [i for i, s in enumerate(spheres) if s.size == 0]
        if empty:
            where = f"image {data_label}" if data_label else "the grid"
            within = (f" within mask_img {img_name(self.mask_img, 'mask_img')}"
                      if self._mask is not None else "")
            raise AtlasError(f"seeds: sphere(s) {empty} (seeds {self.seeds_[empty].tolist()} "
                             f"mm) hold no voxel of {where}{within}; expected seeds inside "
                             "the image")
        if not self.allow_overlap:
            allv = np.concatenate(spheres)
            if np.unique(allv).size < allv.size:
                raise AtlasError(f"seeds: spheres of radius {self.radius} mm overlap and "
                                 "allow_overlap=False; use a smaller radius or "
                                 "allow_overlap=True")
        index = np.unique(np.concatenate(spheres))
        rows = np.concatenate([np.searchsorted(index, s) for s in spheres])
        cols = np.concatenate([np.full(s.size, i) for i, s in enumerate(spheres)])
        vals = np.concatenate([np.full(s.size, 1.0 / s.size) for s in spheres])
        weights = sparse.csc_matrix((vals, (rows, cols)), shape=(index.size, len(spheres)))
        op = {"extractor": LinearExtractor(index, weights), "spheres": spheres,
              "affine": np.asarray(affine, dtype=float), "shape": shape3}
        self._operators[key] = op
        self._fit_op = op
        return op

    def _extractor_for(self, img: Any):
        op = self._operator(img.affine, img.shape[:3], img_name(img, "imgs"))
        return op["extractor"], None

    def inverse_transform(self, region_signals: np.ndarray) -> nib.Nifti1Image:
        """Image whose sphere voxels hold their sphere's signal (the mean where spheres
        overlap); needs a transform (or a fit with an image or mask) first."""
        from .._utils.estimator import check_is_fitted
        from ..errors import ShapeMismatchError
        from ..image import new_img_like

        check_is_fitted(self, "_fit_op")
        signals = np.asarray(region_signals, dtype=np.float64)
        one = signals.ndim == 1
        signals = np.atleast_2d(signals)
        if signals.shape[1] != self.n_elements_:
            raise ShapeMismatchError(f"region_signals have shape {np.shape(region_signals)}; "
                                     f"expected (n_volumes, {self.n_elements_})")
        op = self._fit_op
        n_vox = int(np.prod(op["shape"]))
        total = np.zeros((n_vox, signals.shape[0]))
        count = np.zeros(n_vox)
        for i, s in enumerate(op["spheres"]):
            total[s] += signals[:, i]
            count[s] += 1
        total[count > 0] /= count[count > 0, None]
        out = total.reshape(op["shape"] + (signals.shape[0],), order="F")
        return new_img_like(out[..., 0] if one else out, op["affine"])
