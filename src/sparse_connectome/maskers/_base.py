"""What the maskers share: cleaning parameters, list inputs, on-disk caching.

A masker turns one 4D image (or a list of them) into region signals
``(n_volumes, n_regions)``: a streamed extraction (:mod:`._extract`) followed by
:func:`sparse_connectome.signal.clean` with the masker's cleaning parameters.
With ``memory`` set, the extraction + cleaning of each image is cached on disk
by :class:`joblib.Memory`, keyed by the image file (path, size, modification
time) or the hash of an in-memory array, the extractor and the parameters.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from .._utils.estimator import BaseEstimator, check_is_fitted
from ..errors import ConfoundsError, ParameterError, ShapeMismatchError
from ..image import img_name, load_img, n_volumes
from ._extract import extract_signals

if TYPE_CHECKING:  # joblib is imported only when caching is asked for
    import joblib

__all__ = ["BaseMasker"]

logger = logging.getLogger("sparse_connectome.maskers")

def file_key(value: Any) -> Any:
    """A cheap, content-sensitive cache key for a file path or an in-memory object."""
    import joblib

    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_file():
            st = path.stat()
            return ("file", str(path.resolve()), st.st_size, st.st_mtime_ns)
        return ("path", str(value))
    if isinstance(value, nib.spatialimages.SpatialImage):
        fname = value.get_filename()
        if fname and nib.is_proxy(value.dataobj):
            return ("img", file_key(fname), tuple(value.shape),
                    joblib.hash(np.asarray(value.affine)))
        return ("img", joblib.hash(np.asanyarray(value.dataobj)),
                joblib.hash(np.asarray(value.affine)), tuple(value.shape))
    if isinstance(value, (list, tuple)):
        return tuple(file_key(v) for v in value)
    if value is None:
        return None
    return ("obj", joblib.hash(value))


def _extract_and_clean(img: Any, extractor: Callable, resample_to: Any, confounds: Any,
                       sample_mask: Any, clean_kwargs: dict, img_key: Any, confounds_key: Any,
                       label: str) -> np.ndarray:
    """Pure function of its keys: region signals of one image, cleaned."""
    del img_key, confounds_key  # only there to key the cache

    def import_clean() -> None:
        # Importing the cleaning code (scipy.signal) takes a while: do it while
        # the first blocks of the image are being read.
        from .. import signal  # noqa: F401

    signals = extract_signals(img, extractor, resample_to=resample_to, name=label,
                              while_reading=import_clean)
    from ..signal import clean

    return clean(signals, confounds=confounds, sample_mask=sample_mask, **clean_kwargs)


class BaseMasker(BaseEstimator):
    """Common machinery of the maskers (not a public class)."""

    # ------------------------------------------------------------------ parameters
    def _clean_kwargs(self) -> dict:
        standardize = self.standardize
        return {
            "detrend": bool(self.detrend),
            "standardize": standardize,
            "standardize_confounds": self.standardize_confounds,
            "low_pass": self.low_pass,
            "high_pass": self.high_pass,
            "t_r": self.t_r,
        }

    def _memory(self) -> joblib.Memory | None:
        memory = self.memory
        level = self.memory_level
        if memory is None:
            return None
        import joblib

        if isinstance(memory, (str, os.PathLike)):
            memory = joblib.Memory(location=str(memory), verbose=0)
        elif not isinstance(memory, joblib.Memory):
            raise ParameterError(f"memory={self.memory!r}; expected None, a folder path or a "
                                 "joblib.Memory")
        if memory.location is None:
            return None
        if not level:
            warnings.warn("memory_level is 0 but a memory was given; caching at level 1",
                          UserWarning, stacklevel=4)
            level = 1
        return memory if level >= 1 else None

    def _log(self, msg: str, *args: Any) -> None:
        if self.verbose:
            logger.info("[%s] " + msg, type(self).__name__, *args)
        else:
            logger.debug("[%s] " + msg, type(self).__name__, *args)

    # ------------------------------------------------------------------ API
    def fit_transform(self, imgs: Any, y: Any = None, confounds: Any = None,
                      sample_mask: Any = None) -> np.ndarray | list[np.ndarray]:
        """Fit on ``imgs`` and return their region signals (see :meth:`transform`)."""
        del y
        return self.fit(imgs).transform(imgs, confounds=confounds, sample_mask=sample_mask)

    def transform(self, imgs: Any, confounds: Any = None,
                  sample_mask: Any = None) -> np.ndarray | list[np.ndarray]:
        """Region signals of one 4D image, or of each image of a list.

        Parameters
        ----------
        imgs : path-like or nibabel image, or list of them
            4D images (a 3D image is one volume).
        confounds : array, DataFrame, path, or list of them, optional
            Confounds regressed out of the signals (one per image for a list).
        sample_mask : array or list of arrays, optional
            Volumes to keep (indices or booleans), one per image for a list.

        Returns
        -------
        ndarray (n_volumes, n_regions), or a list of them for a list of images.
        """
        check_is_fitted(self, "n_elements_")
        if isinstance(imgs, (list, tuple)):
            n = len(imgs)
            confounds_list = self._per_image(confounds, n, "confounds")
            masks = self._per_image(sample_mask, n, "sample_mask")
            return [self._transform_single(img, c, m)
                    for img, c, m in zip(imgs, confounds_list, masks)]
        return self._transform_single(imgs, confounds, sample_mask)

    @staticmethod
    def _per_image(value: Any, n: int, name: str) -> list:
        if value is None:
            return [None] * n
        if isinstance(value, (list, tuple)) and not (
                len(value) and np.isscalar(value[0]) and not isinstance(value[0], str)):
            if len(value) != n:
                raise ShapeMismatchError(f"{name}: a list of {len(value)} items for {n} "
                                         f"images; expected one per image")
            return list(value)
        if n == 1:
            return [value]
        raise ShapeMismatchError(f"{name}: one value for {n} images; expected a list of {n} "
                                 "(one per image)")

    def _transform_single(self, img: Any, confounds: Any, sample_mask: Any) -> np.ndarray:
        label = img_name(img, "imgs")
        loaded = load_img(img, name="imgs")
        self._check_confounds_length(confounds, n_volumes(loaded), label)
        extractor, resample_to = self._extractor_for(loaded)
        self._log("extracting %d regions from %s", self.n_elements_, label)
        memory = self._memory()
        if memory is not None:
            func = memory.cache(_extract_and_clean, ignore=["img", "label"])
            signals = func(loaded, extractor, resample_to, confounds, sample_mask,
                           self._clean_kwargs(), file_key(img), file_key(confounds), label)
        else:
            signals = _extract_and_clean(loaded, extractor, resample_to, confounds, sample_mask,
                                         self._clean_kwargs(), None, None, label)
        if self.dtype is not None:
            # "auto" is the seed's spelling of float32 for continuous data.
            signals = signals.astype(np.float32 if self.dtype == "auto" else self.dtype)
        return signals

    @staticmethod
    def _check_confounds_length(confounds: Any, n_t: int, label: str) -> None:
        """Fail before the extraction, naming the image, on confounds that do not fit.

        :func:`~sparse_connectome.signal.load_confounds_matrix` reads and checks
        them (unreadable file, NaN with their columns and rows, row count).
        """
        if confounds is None:
            return
        from ..signal._inputs import load_confounds_matrix

        try:
            load_confounds_matrix(confounds, n_t)
        except (ShapeMismatchError, ConfoundsError) as exc:
            what = repr(str(confounds)) if isinstance(confounds, (str, os.PathLike)) else \
                type(confounds).__name__
            raise type(exc)(f"confounds {what} for image {label} ({n_t} volumes): "
                            f"{exc}") from exc

    def _extractor_for(self, img: Any):  # pragma: no cover - every masker defines it
        raise TypeError(f"{type(self).__name__} must define _extractor_for(img)")

    def _check_resampling_target(self, allowed: tuple) -> None:
        if self.resampling_target not in allowed:
            raise ParameterError(f"resampling_target={self.resampling_target!r}; expected one "
                                 f"of {list(allowed)}")
