"""Stage 1 — NIfTI image I/O and resampling.

Everything that touches a NIfTI file goes through here, so that bad files fail
with one clear :class:`~sparse_connectome.errors.ImageError` naming the file:

* :mod:`._io`: loading and validation (:func:`load_img`), data access
  (:func:`get_data`), and the chunked, sequential reader of 4D series
  (:func:`iter_volume_chunks`) behind the streaming extraction;
* :mod:`._resampling`: moving an image or an array onto another grid
  (:func:`resample_img`, :func:`resample_to_img`, :func:`resample_array`).
"""

from ._io import (
                  DEFAULT_CHUNK_BYTES,
                  ImgLike,
                  bounding_box_mm,
                  format_box,
                  get_data,
                  img_name,
                  iter_volume_chunks,
                  load_img,
                  n_volumes,
                  new_img_like,
                  same_grid,
)
from ._resampling import resample_array, resample_img, resample_to_img

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ImgLike",
    "bounding_box_mm",
    "format_box",
    "get_data",
    "img_name",
    "iter_volume_chunks",
    "load_img",
    "n_volumes",
    "new_img_like",
    "resample_array",
    "resample_img",
    "resample_to_img",
    "same_grid",
]
