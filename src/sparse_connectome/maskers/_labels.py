"""NiftiLabelsMasker: one signal per label of an atlas (mean or another statistic)."""

from __future__ import annotations

import warnings
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import AtlasError, DataWarning, ParameterError, ShapeMismatchError
from ..image import bounding_box_mm, format_box, img_name, load_img, new_img_like, resample_array
from ._base import BaseMasker
from ._extract import LinearExtractor, ReductionExtractor
from ._maps import GridBox, grid_key, mask_on_grid

__all__ = ["NiftiLabelsMasker"]

_STRATEGIES = ("mean", "sum", "median", "minimum", "maximum", "standard_deviation",
               "variance")


class NiftiLabelsMasker(BaseMasker):
    """Region signals from a label atlas: a statistic of the voxels of each label.

    Parameters
    ----------
    labels_img : path-like or nibabel image
        3D image of integer labels; ``background_label`` marks no region.
    labels : list of str, optional
        Region names, one per region in increasing label order (optionally
        preceded by the background's name).
    background_label : int or float, default=0
    mask_img : path-like or nibabel image, optional
    strategy : {"mean", "sum", "median", "minimum", "maximum", "standard_deviation", "variance"}
    resampling_target : {"data", "labels", None}, default="data"
        The labels (nearest interpolation) and mask are resampled to the data,
        or the data (continuous) to the labels, or nothing.
    Other parameters as in :class:`NiftiMapsMasker`.

    Attributes
    ----------
    labels_img_, region_atlas_ : nibabel.Nifti1Image
        The labels on the grid of extraction (``region_atlas_`` masked).
    labels_ : list
        Background label then region labels, in output column order + 1.
    region_ids_ : dict
        ``{"background": background_label, 0: first label, 1: ...}``.
    region_names_ : dict
        ``{0: name of first region, ...}``.
    n_elements_ : int

    Examples
    --------
    Two regions, the left (label 1) and right (label 2) halves of the demo
    subject's brain mask:

    >>> import numpy as np
    >>> from nibabel.affines import apply_affine
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.image import get_data, load_img, new_img_like
    >>> from sparse_connectome.maskers import NiftiLabelsMasker
    >>> data = load_demo()
    >>> mask = load_img(data.mask)
    >>> x_mm = apply_affine(mask.affine, np.indices(mask.shape).reshape(3, -1).T)[:, 0]
    >>> halves = (get_data(mask) > 0) * (1 + (x_mm > 0).reshape(mask.shape))
    >>> atlas = new_img_like(halves.astype(np.int16), mask.affine)
    >>> masker = NiftiLabelsMasker(atlas, labels=["left", "right"])
    >>> masker.fit_transform(data.func[0]).shape
    (168, 2)
    >>> masker.region_names_
    {0: 'left', 1: 'right'}
    """

    def __init__(self, labels_img: Any = None, labels: Any = None, background_label: Any = 0,
                 mask_img: Any = None, smoothing_fwhm: float | None = None,
                 standardize: Any = False, standardize_confounds: bool = True,
                 detrend: bool = False, low_pass: float | None = None,
                 high_pass: float | None = None, t_r: float | None = None, dtype: Any = None,
                 resampling_target: str | None = "data", strategy: str = "mean",
                 memory: Any = None, memory_level: int = 0, verbose: int = 0) -> None:
        self.labels_img = labels_img
        self.labels = labels
        self.background_label = background_label
        self.mask_img = mask_img
        self.smoothing_fwhm = smoothing_fwhm
        self.standardize = standardize
        self.standardize_confounds = standardize_confounds
        self.detrend = detrend
        self.low_pass = low_pass
        self.high_pass = high_pass
        self.t_r = t_r
        self.dtype = dtype
        self.resampling_target = resampling_target
        self.strategy = strategy
        self.memory = memory
        self.memory_level = memory_level
        self.verbose = verbose

    def fit(self, imgs: Any = None, y: Any = None) -> NiftiLabelsMasker:
        """Load and check the labels (and mask)."""
        del y
        self._check_resampling_target(("data", "labels", None))
        if self.strategy not in _STRATEGIES:
            raise ParameterError(f"strategy={self.strategy!r}; expected one of {_STRATEGIES}")
        if self.smoothing_fwhm is not None:
            raise ParameterError("smoothing_fwhm is not supported; expected None")
        if self.labels_img is None:
            raise ParameterError("labels_img is None; expected a 3D label image")
        atlas = load_img(self.labels_img, ndim=3, name="labels_img")
        self._atlas = atlas
        self._atlas_data = np.asarray(atlas.dataobj)
        if self._atlas_data.dtype.kind == "f":
            self._atlas_data = np.where(np.isfinite(self._atlas_data), self._atlas_data,
                                        self.background_label)
        self._mask = load_img(self.mask_img, ndim=3, name="mask_img") \
            if self.mask_img is not None else None
        ids = np.unique(self._atlas_data)
        ids = ids[ids != self.background_label]
        if ids.size == 0:
            raise AtlasError(f"labels_img {img_name(self.labels_img, 'labels_img')} holds no "
                             f"label besides the background {self.background_label!r}")
        ids = [i.item() for i in ids]
        self.labels_ = [self.background_label] + ids
        self.region_ids_ = {"background": self.background_label}
        self.region_ids_.update(dict(enumerate(ids)))
        names = self._names(ids)
        self.region_names_ = dict(enumerate(names))
        self.n_elements_ = len(ids)
        self._ids = np.asarray(ids)
        self._operators: dict = {}
        first = imgs[0] if isinstance(imgs, (list, tuple)) and len(imgs) else imgs
        if self.resampling_target in ("labels", None) or first is None:
            grid = (atlas.affine, atlas.shape[:3])
        else:
            data = load_img(first, name="imgs")
            grid = (data.affine, data.shape[:3])
        self._set_fitted(self._operator(*grid, data_label=None))
        return self

    def _names(self, ids: list) -> list[str]:
        if self.labels is None:
            return [str(i) for i in ids]
        names = [str(n) for n in self.labels]
        if len(names) == len(ids) + 1:
            names = names[1:]  # the background's name first
        if len(names) != len(ids):
            raise AtlasError(f"labels: {len(names)} names for {len(ids)} regions in labels_img "
                             f"{img_name(self.labels_img, 'labels_img')}; expected one per "
                             "region (optionally preceded by the background's)")
        return names

    def _operator(self, affine: np.ndarray, shape: tuple, data_label: str | None) -> dict:
        key = grid_key(affine, shape)
        if key in self._operators:
            return self._operators[key]
        shape3 = tuple(int(s) for s in shape[:3])
        atlas = self._atlas
        lab = self._atlas_data
        if not (np.allclose(atlas.affine, affine, atol=1e-6) and atlas.shape[:3] == shape3):
            lab = resample_array(lab, atlas.affine, affine, shape3, "nearest",
                                 fill_value=self.background_label)
        flat = lab.ravel(order="F")
        mask_vec = mask_on_grid(self._mask, affine, shape3)
        keep = flat != self.background_label
        if mask_vec is not None:
            keep &= mask_vec
        index = np.flatnonzero(keep)
        region = np.searchsorted(self._ids, flat[index])
        valid = (region < self._ids.size)
        valid[valid] = self._ids[region[valid]] == flat[index][valid]
        index, region = index[valid], region[valid]
        if index.size == 0:
            where = f"image {data_label}" if data_label else "the target grid"
            raise AtlasError(
                f"labels_img {img_name(self.labels_img, 'labels_img')} (spanning "
                f"{format_box(bounding_box_mm(atlas))}) does not overlap {where} (spanning "
                f"{format_box(bounding_box_mm(GridBox(affine, shape3)))}); expected labels "
                "and image in the same space")
        counts = np.bincount(region, minlength=self._ids.size)
        missing = [self._ids[i].item() for i in np.flatnonzero(counts == 0)]
        if missing:
            warnings.warn(f"labels_img {img_name(self.labels_img, 'labels_img')}: label(s) "
                          f"{missing} have no voxel on the data grid (within the mask); their "
                          "signals are 0", DataWarning, stacklevel=4)
        if self.strategy in ("mean", "sum"):
            scale = 1.0 / np.maximum(counts, 1) if self.strategy == "mean" else \
                np.ones(counts.size)
            from scipy import sparse  # only the labels masker needs it

            weights = sparse.csc_matrix((scale[region], (np.arange(index.size), region)),
                                        shape=(index.size, self._ids.size))
            extractor: Any = LinearExtractor(index, weights)
        else:
            order = np.argsort(region, kind="stable")
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            extractor = ReductionExtractor(index[order], starts, counts, self.strategy)
        masked = np.where(keep.reshape(shape3, order="F"), lab, self.background_label)
        op = {"extractor": extractor, "affine": np.asarray(affine, dtype=float),
              "shape": shape3, "labels": lab, "region_atlas": masked, "mask": mask_vec}
        self._operators[key] = op
        return op

    def _set_fitted(self, op: dict) -> None:
        self._fit_op = op
        self.labels_img_ = new_img_like(np.asarray(op["labels"]), op["affine"])
        self.region_atlas_ = new_img_like(np.asarray(op["region_atlas"]), op["affine"])
        self.mask_img_ = None if op["mask"] is None else new_img_like(
            op["mask"].reshape(op["shape"], order="F"), op["affine"])

    def _extractor_for(self, img: Any):
        same = np.allclose(self._fit_op["affine"], img.affine, atol=1e-6) and \
            tuple(img.shape[:3]) == self._fit_op["shape"]
        if self.resampling_target == "data":
            op = self._operator(img.affine, img.shape[:3], data_label=img_name(img, "imgs"))
            if op is not self._fit_op:
                self._set_fitted(op)
            return op["extractor"], None
        if same:
            return self._fit_op["extractor"], None
        if self.resampling_target is None:
            raise ShapeMismatchError(
                f"resampling_target=None but image {img_name(img, 'imgs')} (shape "
                f"{tuple(img.shape[:3])}) and labels_img "
                f"{img_name(self.labels_img, 'labels_img')} (shape {self._fit_op['shape']}) "
                "are on different grids")
        return self._fit_op["extractor"], (self._fit_op["affine"], self._fit_op["shape"])

    def inverse_transform(self, region_signals: np.ndarray) -> nib.Nifti1Image:
        """Image whose voxels hold the signal of their region (0 in the background)."""
        from .._utils.estimator import check_is_fitted

        check_is_fitted(self, "_fit_op")
        signals = np.asarray(region_signals, dtype=np.float64)
        one = signals.ndim == 1
        signals = np.atleast_2d(signals)
        if signals.shape[1] != self.n_elements_:
            raise ShapeMismatchError(f"region_signals have shape {np.shape(region_signals)}; "
                                     f"expected (n_volumes, {self.n_elements_})")
        op = self._fit_op
        flat = np.asarray(op["region_atlas"]).ravel(order="F")
        region = np.searchsorted(self._ids, flat)
        inside = (flat != self.background_label) & (region < self._ids.size)
        out = np.zeros((flat.size, signals.shape[0]))
        out[inside] = signals[:, region[inside]].T
        out = out.reshape(op["shape"] + (signals.shape[0],), order="F")
        return new_img_like(out[..., 0] if one else out, op["affine"])
