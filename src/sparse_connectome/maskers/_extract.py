"""Streamed extraction kernels: 4D image -> region signals, a block of volumes at a time.

A region extractor is a linear operator on each volume (maps least squares,
label means, sphere means) or a per-region reduction (label median, min, ...).
Both are applied to blocks of volumes as they are read from disk
(:func:`sparse_connectome.image.iter_volume_chunks`), so the peak memory is one
block plus the output, whatever the number of volumes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from ..errors import DataWarning
from ..image import img_name, iter_volume_chunks, load_img, resample_array

__all__ = ["LinearExtractor", "ReductionExtractor", "exact_dtype", "extract_signals",
           "pinv_gram"]

# Bounds of one block of raw (float32) volumes: small enough that a block, its
# float64 copy and the weights stay far below the whole series, large enough
# that each block amortises one pass over the weights.
MIN_CHUNK_BYTES = 16 * 2**20
MAX_CHUNK_BYTES = 64 * 2**20
MIN_VOLUMES = 16

logger = logging.getLogger(__name__)


def exact_dtype(img: Any) -> type:
    """float32 when it holds an image's values exactly, else float64.

    Blocks are read in float32 when that loses nothing (unscaled float32 data, or
    small unscaled integers): half the memory of float64, for the same numbers.
    Anything else (float64 data, header scaling applied in float64 as the oracle
    does, wide integers) is read in float64, so that results stay exact.
    """
    import nibabel as nib

    proxy = img.dataobj
    if nib.is_proxy(proxy):
        if float(proxy.slope) != 1.0 or float(proxy.inter) != 0.0:
            return np.float64
        stored = np.dtype(proxy.dtype)
    else:
        stored = np.asanyarray(proxy).dtype
    small = (stored.kind == "f" and stored.itemsize <= 4) or (
        stored.kind in "biu" and stored.itemsize <= 2)
    return np.float32 if small else np.float64


def one_blas_thread():
    """Context limiting numpy's BLAS to one thread (for 1024 x 1024 products).

    On a machine whose cores are busy, multi-threaded OpenBLAS spins: the
    eigendecomposition of a 1024 x 1024 Gram matrix took 5-12 s with 2 threads
    against 0.4 s with one (measured on 2 shared cores).
    """
    from threadpoolctl import threadpool_limits  # a few ms: only when needed

    return threadpool_limits(limits=1, user_api="blas")


def pinv_gram(gram: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a symmetric positive semi-definite Gram matrix ``MᵀM``.

    ``pinv(MᵀM) Mᵀ y`` is the minimum-norm least-squares solution of ``M x = y``
    (what ``lstsq`` returns), also when maps are collinear or empty. Eigenvalues
    below ``n * eps * max`` are treated as zero.
    """
    gram = (gram + gram.T) / 2.0
    with one_blas_thread():
        vals, vecs = np.linalg.eigh(gram)
    top = vals.max() if vals.size else 0.0
    if top <= 0:
        return np.zeros_like(gram)
    keep = vals > top * gram.shape[0] * np.finfo(np.float64).eps
    inv = np.zeros_like(vals)
    inv[keep] = 1.0 / vals[keep]
    with one_blas_thread():
        return (vecs * inv) @ vecs.T


@dataclass
class LinearExtractor:
    """signals = Y[:, index] @ weights (@ post): Y one flattened volume per row.

    ``weights`` is dense (n_index, n_regions) or a scipy sparse matrix;
    ``post`` an optional (n_regions, n_regions) matrix applied after (e.g. the
    pseudo-inverse of the maps' Gram matrix).
    """

    index: np.ndarray
    weights: Any
    post: np.ndarray | None = None

    @property
    def n_regions(self) -> int:
        return int(self.weights.shape[1] if self.post is None else self.post.shape[1])

    @property
    def chunk_bytes(self) -> int:
        """Raw block size that amortises reading ``weights`` once per block."""
        w = self.weights
        nbytes = (w.data.nbytes + w.indices.nbytes) if sparse.issparse(w) else w.nbytes
        return int(np.clip(nbytes // 2, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        sel = block[:, self.index] if self.index is not None else block
        sel = np.asarray(sel, dtype=np.float64)
        if sparse.issparse(self.weights):
            out = np.asarray((self.weights.T @ sel.T).T)
        else:
            out = sel @ self.weights
        if self.post is not None:
            with one_blas_thread():
                out = out @ self.post
        return out


@dataclass
class ReductionExtractor:
    """Per-region reduction of the voxels of each region (median, min, max, std...).

    ``index`` lists the voxels grouped by region; region ``r`` holds
    ``index[starts[r]:starts[r] + counts[r]]`` (a region with no voxel gives 0).
    """

    index: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    strategy: str

    @property
    def n_regions(self) -> int:
        return int(self.starts.size)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        sel = np.asarray(block[:, self.index], dtype=np.float64)
        out = np.zeros((block.shape[0], self.n_regions))
        op = _REDUCTIONS[self.strategy]
        for r, (s, c) in enumerate(zip(self.starts, self.counts)):
            if c:
                out[:, r] = op(sel[:, s:s + c], axis=1)
        return out


# Plain functions (not lambdas): extractors are hashed by joblib for caching.
_REDUCTIONS = {
    "median": np.median,
    "minimum": np.min,
    "maximum": np.max,
    "standard_deviation": np.std,
    "variance": np.var,
    "mean": np.mean,
    "sum": np.sum,
}


def extract_signals(img: Any, extractor: Callable[[np.ndarray], np.ndarray], *,
                    resample_to: tuple[np.ndarray, tuple[int, int, int]] | None = None,
                    chunk_bytes: int | None = None, name: str = "imgs",
                    while_reading: Callable[[], Any] | None = None) -> np.ndarray:
    """Apply ``extractor`` to every block of volumes of a 3D/4D image.

    Parameters
    ----------
    img : path-like or nibabel image
    extractor : callable (n_block, n_voxels) -> (n_block, n_regions)
    resample_to : (affine, shape), optional
        Resample each volume onto this grid (continuous interpolation) before
        extraction; done block by block, so streaming is kept.
    chunk_bytes : int, optional
        Budget of one block of raw volumes (float32).
    while_reading : callable, optional
        Work to do while the first blocks are read in the background (e.g.
        imports the caller needs afterwards).

    Returns
    -------
    ndarray (n_volumes, n_regions), float64
    """
    loaded = load_img(img, name=name)
    if len(loaded.shape) == 3:
        # A 3D image is a single volume (as in the seed's masker).
        loaded = as_4d(loaded)
    label = img_name(img if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__")
                     else loaded, name)
    n_t = int(loaded.shape[3])
    if chunk_bytes is None:
        chunk_bytes = getattr(extractor, "chunk_bytes", MIN_CHUNK_BYTES)
        # Large volumes (2 mm and finer): at least ~16 volumes a block, within the
        # maximum, or each block pays the fixed costs of a pass for 2 volumes.
        vol_bytes = 4 * int(np.prod(loaded.shape[:3]))
        chunk_bytes = max(chunk_bytes, min(MAX_CHUNK_BYTES, MIN_VOLUMES * vol_bytes))
    kwargs = {"max_bytes": chunk_bytes}
    out = None
    warned = False
    # Resampling works on float64 volumes; keep those blocks small.
    if resample_to is not None:
        kwargs["max_bytes"] = MIN_CHUNK_BYTES
    # With prefetching up to three blocks are alive at once (read ahead, queued,
    # in use): halve them to keep the same memory bound.
    kwargs["max_bytes"] //= 2
    chunks = iter_volume_chunks(loaded, dtype=exact_dtype(loaded), name=label, prefetch=True,
                                **kwargs)
    try:
        if while_reading is not None:
            while_reading()
        for start, stop, block in chunks:
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                if not warned:
                    warnings.warn(f"image {label} holds NaN or infinite values; they are "
                                  "treated as 0 when extracting region signals", DataWarning,
                                  stacklevel=4)
                    warned = True
                block = np.where(np.isfinite(block), block, block.dtype.type(0))
            if resample_to is not None:
                block = _resample_block(block, loaded.shape[:3], loaded.affine, *resample_to)
            signals = extractor(block)
            del block
            if out is None:
                out = np.empty((n_t, signals.shape[1]), dtype=np.float64)
            out[start:stop] = signals
    finally:
        chunks.close()
    logger.debug("extracted %s regions from %d volumes of %s", out.shape[1], n_t, label)
    return out


def _resample_block(block: np.ndarray, shape3d: tuple[int, ...], affine: np.ndarray,
                    target_affine: np.ndarray, target_shape: tuple[int, int, int]
                    ) -> np.ndarray:
    vols = block.T.reshape(tuple(shape3d) + (block.shape[0],), order="F")
    res = resample_array(vols, affine, target_affine, target_shape, "continuous")
    # The seed's resampling clips to the range of the source data.
    lo, hi = float(vols.min()), float(vols.max())
    np.clip(res, lo, hi, out=res)
    n_vox = int(np.prod(target_shape))
    return np.ascontiguousarray(res.reshape(n_vox, block.shape[0], order="F").T)


def as_4d(img: Any) -> Any:
    import nibabel as nib

    shape = tuple(img.shape) + (1,)
    dataobj = img.dataobj.reshape(shape) if nib.is_proxy(img.dataobj) else \
        np.asanyarray(img.dataobj).reshape(shape)
    out = type(img)(dataobj, img.affine, img.header.copy())
    if img.get_filename():
        out.set_filename(img.get_filename())
    return out
