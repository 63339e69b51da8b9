"""NIfTI images: loading, validation, data access and chunked reading.

Everything that touches a NIfTI file goes through here, so that bad files fail
with one clear :class:`~sparse_connectome.errors.ImageError` naming the file.

* :func:`load_img` opens a 3D or 4D NIfTI-1/2 image (``.nii`` or ``.nii.gz``)
  from a path or a nibabel image, checks its dimensionality and affine, and
  returns a nibabel image whose data is **not** read yet.
* :func:`get_data` reads the whole array with the header scaling applied.
* :func:`iter_volume_chunks` reads a 4D image a block of volumes at a time, in
  one sequential pass over the file (also for ``.nii.gz``), so that a caller
  never holds the whole series in memory.
* Resampling onto another grid lives beside it, in :mod:`._resampling`.
* The sequential readers of the files (a ``.nii.gz`` with each gzip member's
  CRC-32 and length checked) are in :mod:`._streams`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, Union

import nibabel as nib
import numpy as np

from ..errors import ImageError
from ._streams import GzipStream, open_stream

__all__ = [
    "ImgLike",
    "bounding_box_mm",
    "format_box",
    "get_data",
    "img_name",
    "iter_volume_chunks",
    "load_img",
    "n_volumes",
    "new_img_like",
    "same_grid",
]

logger = logging.getLogger(__name__)

ImgLike = Union[str, os.PathLike, nib.Nifti1Image, nib.Nifti2Image]  # noqa: UP007

_NIFTI_CLASSES = (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)
# Errors that reading a damaged or truncated (compressed) file can raise.
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError)

#: Default size of one block of volumes handed out by :func:`iter_volume_chunks`.
DEFAULT_CHUNK_BYTES = 64 * 2**20
#: Most voxels in one volume of an image file (2**28: a 0.25 mm grid of the whole
#: head); a header claiming more is refused before any data is read.
MAX_VOLUME_VOXELS = 2**28
#: Most bytes a gzip file can expand to, per byte (deflate's limit is about 1032).
MAX_GZIP_RATIO = 1032


def img_name(img: Any, name: str | None = None) -> str:
    """A short description of an image for error messages: its file or ``name``.

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import img_name
    >>> img_name("sub-01_bold.nii.gz")
    "'sub-01_bold.nii.gz'"
    >>> img = nib.Nifti1Image(np.zeros((2, 2, 2)), np.eye(4))
    >>> img_name(img), img_name(img, "maps_img")
    ('<in-memory Nifti1Image>', 'maps_img')
    """
    if isinstance(img, (str, os.PathLike)):
        return repr(str(img))
    filename = None
    if isinstance(img, nib.spatialimages.SpatialImage):
        filename = img.get_filename()
    if filename:
        return repr(str(filename))
    return name or f"<in-memory {type(img).__name__}>"


def load_img(img: ImgLike, *, ndim: int | None = None, name: str | None = None) -> nib.Nifti1Image:
    """Open and validate a NIfTI image without reading its data.

    Parameters
    ----------
    img : path-like or nibabel image
        A ``.nii`` / ``.nii.gz`` file, or an image already in memory.
    ndim : {3, 4, None}
        Dimensionality required. ``ndim=4`` accepts a 4D image with a single
        volume; ``ndim=3`` accepts a 4D image with a single volume and drops
        its last axis. Extra trailing axes of length 1 beyond the fourth are
        dropped.
    name : str, optional
        What to call the image in error messages when it has no file name
        (e.g. ``"maps_img"``).

    Returns
    -------
    nibabel.Nifti1Image or nibabel.Nifti2Image
        Data still on disk (read it with :func:`get_data` or
        :func:`iter_volume_chunks`).

    Raises
    ------
    ImageError
        Missing, unreadable or non-NIfTI file; wrong dimensionality; affine not
        finite or not invertible; uncompressed file shorter than its header says.

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.image import load_img
    >>> bold = load_img(load_demo().func[0], ndim=4)
    >>> bold.shape
    (50, 59, 50, 168)
    >>> load_img(load_demo().func[0], ndim=3)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ImageError: image ... (4D); expected a 3D image (x, y, z)
    """
    label = img_name(img, name)
    if name and name not in label:
        label = f"{name} {label}"
    if isinstance(img, (str, os.PathLike)):
        path = Path(img)
        if not path.is_file():
            raise ImageError(f"image file {label} does not exist; expected a NIfTI image "
                             "(.nii or .nii.gz)")
        try:
            loaded = nib.load(str(path))
        except Exception as exc:  # nibabel raises many types on a damaged header
            raise ImageError(f"image file {label} cannot be read as NIfTI: "
                             f"{type(exc).__name__}: {exc}") from exc
        _check_file_length(loaded, label)
    elif isinstance(img, nib.spatialimages.SpatialImage):
        loaded = img
        _check_file_length(loaded, label)  # also for an image opened by nib.load
    else:
        raise ImageError(f"{name or 'image'}: expected a path to a NIfTI file or a nibabel "
                         f"image; got {type(img).__name__}")
    if not isinstance(loaded, _NIFTI_CLASSES):
        try:
            loaded = nib.Nifti1Image(loaded.dataobj, loaded.affine, None)
        except Exception as exc:
            raise ImageError(f"image {label} is a {type(loaded).__name__}, not a NIfTI "
                             f"image: {exc}") from exc

    shape = tuple(int(s) for s in loaded.shape)
    # Drop trailing singleton axes past the 4th (e.g. (x, y, z, t, 1)).
    if len(shape) > 4 and all(s == 1 for s in shape[4:]):
        loaded = _reshaped(loaded, shape[:4])
        shape = shape[:4]
    if ndim is not None:
        if ndim == 3 and len(shape) == 4 and shape[3] == 1:
            loaded = _reshaped(loaded, shape[:3])
            shape = shape[:3]
        if len(shape) != ndim:
            what = {3: "a 3D image (x, y, z)", 4: "a 4D image (x, y, z, time)"}.get(
                ndim, f"a {ndim}D image")
            raise ImageError(f"image {label} has shape {shape} ({len(shape)}D); expected {what}")
    elif len(shape) not in (3, 4):
        raise ImageError(f"image {label} has shape {shape} ({len(shape)}D); expected a 3D or "
                         "4D image")
    if any(s == 0 for s in shape):
        raise ImageError(f"image {label} has shape {shape} with an empty axis")
    dtype = np.dtype(loaded.get_data_dtype())
    if dtype.kind not in "biuf":
        raise ImageError(f"image {label} stores {dtype} values; expected real numbers "
                         "(integers or floats), not complex, RGB or other compound types")
    affine = loaded.affine
    if affine is None or not np.all(np.isfinite(affine)):
        raise ImageError(f"image {label} has a non-finite affine "
                         f"{None if affine is None else np.asarray(affine).tolist()}; expected a finite "
                         "4x4 voxel-to-mm matrix")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageError(f"image {label} has a singular affine (determinant 0): "
                         f"{affine.tolist()}; expected an invertible voxel-to-mm matrix")
    return loaded


def _reshaped(img: nib.spatialimages.SpatialImage, shape: tuple[int, ...]):
    """The same image with singleton axes dropped, data kept lazy."""
    dataobj = img.dataobj
    if nib.is_proxy(dataobj):
        dataobj = dataobj.reshape(shape)
    else:
        dataobj = np.reshape(np.asanyarray(dataobj), shape)
    out = type(img)(dataobj, img.affine, img.header.copy())
    out.header.set_data_shape(shape)
    return out


def _check_file_length(img: nib.spatialimages.SpatialImage, label: str) -> None:
    """Refuse, before any data is read, a header that the file cannot back.

    Checked on the header alone (no allocation): no negative axis, at most
    :data:`MAX_VOLUME_VOXELS` voxels per volume (one volume is what the streaming
    reader holds at least), and data that fits the file: an uncompressed file at
    least as long as its offset plus its data, a ``.nii.gz`` no more than
    :data:`MAX_GZIP_RATIO` times smaller than that (deflate cannot do better).
    """
    proxy = img.dataobj
    if not nib.is_proxy(proxy) or not isinstance(proxy.file_like, str):
        return
    # Python integers: np.prod wraps around silently past 2**63 (NIfTI-2 dims are int64).
    shape = tuple(int(s) for s in proxy.shape)
    if any(s < 0 for s in shape):
        raise ImageError(f"image file {label} has a header with a negative axis length "
                         f"{shape}; expected positive dimensions")
    n_vox = math.prod(shape[:3])
    if n_vox > MAX_VOLUME_VOXELS:
        raise ImageError(f"image file {label} has a header claiming {n_vox} voxels per volume "
                         f"(shape {shape}); refused: more than {MAX_VOLUME_VOXELS} voxels "
                         "per volume (the most this reader holds in memory at once)")
    offset = float(proxy.offset)
    if not (math.isfinite(offset) and offset >= 0):
        raise ImageError(f"image file {label} has a header with data offset {offset!r}; "
                         "expected a non-negative number of bytes")
    need = int(offset) + math.prod(shape) * np.dtype(proxy.dtype).itemsize
    have = os.path.getsize(proxy.file_like)
    if proxy.file_like.endswith(".gz"):
        if need > have * MAX_GZIP_RATIO + 2**16:
            raise ImageError(f"image file {label} has a header claiming {need} bytes (shape "
                             f"{shape} {proxy.dtype}, offset {int(offset)}); a gzip file of "
                             f"{have} bytes holds at most about {have * MAX_GZIP_RATIO} bytes")
        return  # only a full pass tells the exact length; checked while reading
    if proxy.file_like.endswith((".bz2", ".zst")):
        return
    if have < need:
        raise ImageError(f"image file {label} is truncated: {have} bytes on disk, the header "
                         f"needs {need} bytes for shape {shape} {proxy.dtype} "
                         f"at offset {int(offset)}")


def n_volumes(img: nib.spatialimages.SpatialImage) -> int:
    """Number of volumes (1 for a 3D image).

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import n_volumes
    >>> n_volumes(nib.Nifti1Image(np.zeros((2, 2, 2, 7)), np.eye(4)))
    7
    >>> n_volumes(nib.Nifti1Image(np.zeros((2, 2, 2)), np.eye(4)))
    1
    """
    return int(img.shape[3]) if len(img.shape) == 4 else 1


def get_data(img: ImgLike, dtype: Any = np.float64, *, name: str | None = None) -> np.ndarray:
    """The whole data array of an image, header scaling applied, in ``dtype``.

    Raises :class:`ImageError` naming the file if the data cannot be read (e.g. a
    truncated ``.nii.gz``).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.image import get_data
    >>> mask = get_data(load_demo().mask, dtype=bool)
    >>> mask.shape, mask.dtype
    ((50, 59, 50), dtype('bool'))
    >>> int(mask.sum())  # brain voxels
    29528
    """
    loaded = load_img(img, name=name)
    try:
        if nib.is_proxy(loaded.dataobj):
            file_like = loaded.dataobj.file_like
            if isinstance(file_like, str) and file_like.endswith(".gz"):
                # nibabel stops before the gzip trailer: a corrupted stream would go
                # unnoticed. One pass of ours to the end checks every member's CRC-32
                # and length (ImageError on a mismatch).
                with GzipStream(file_like) as stream:
                    stream.finish()
            data = loaded.get_fdata(dtype=dtype) if np.dtype(dtype).kind == "f" else \
                np.asarray(loaded.dataobj).astype(dtype)
        else:
            data = np.asarray(loaded.dataobj, dtype=dtype)
    except ImageError:
        raise  # already names the file (a gzip trailer that does not match)
    except _READ_ERRORS as exc:
        raise ImageError(f"image file {img_name(loaded, name)} cannot be read (damaged or "
                         f"truncated?): {type(exc).__name__}: {exc}") from exc
    return data


def bounding_box_mm(img: nib.spatialimages.SpatialImage, data: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corner in mm of the grid, or of the nonzero voxels of ``data``.

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import bounding_box_mm, format_box
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 2 mm voxels, origin at voxel 0
    >>> img = nib.Nifti1Image(np.zeros((10, 10, 10)), affine)
    >>> lo, hi = bounding_box_mm(img)
    >>> lo.tolist(), hi.tolist()
    ([0.0, 0.0, 0.0], [18.0, 18.0, 18.0])
    >>> data = np.zeros((10, 10, 10))
    >>> data[2:4, 5, 5] = 1
    >>> format_box(bounding_box_mm(img, data))
    '[4..6, 10..10, 10..10] mm'
    """
    shape = img.shape[:3]
    if data is None:
        lo_vox, hi_vox = np.zeros(3), np.array(shape, dtype=float) - 1
    else:
        nz = np.argwhere(data)
        if nz.size == 0:
            return np.full(3, np.nan), np.full(3, np.nan)
        lo_vox, hi_vox = nz.min(axis=0).astype(float), nz.max(axis=0).astype(float)
    corners = np.array([[a, b, c] for a in (lo_vox[0], hi_vox[0]) for b in (lo_vox[1], hi_vox[1])
                        for c in (lo_vox[2], hi_vox[2])])
    mm = nib.affines.apply_affine(img.affine, corners)
    return mm.min(axis=0), mm.max(axis=0)


def format_box(box: tuple[np.ndarray, np.ndarray]) -> str:
    """A (min, max) box in mm as text, to the mm, for messages.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.image import format_box
    >>> format_box((np.array([-90.0, -126.0, -72.0]), np.array([90.0, 90.4, 108.0])))
    '[-90..90, -126..90, -72..108] mm'
    """
    lo, hi = box
    return "[" + ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(lo, hi)) + "] mm"


def new_img_like(data: np.ndarray, affine: np.ndarray, header: Any = None) -> nib.Nifti1Image:
    """A NIfTI-1 image holding ``data`` (bool data is stored as uint8).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.image import new_img_like
    >>> img = new_img_like(np.ones((2, 3, 4), dtype=bool), np.eye(4))
    >>> img.shape, img.get_data_dtype()
    ((2, 3, 4), dtype('uint8'))
    """
    if data.dtype == bool:
        data = data.astype(np.uint8)
    hdr = None
    if header is not None:
        hdr = header.copy()
        hdr.set_data_dtype(data.dtype)
        # The array is already scaled; keep nibabel from rescaling it again.
        hdr["scl_slope"], hdr["scl_inter"] = np.nan, np.nan
    img = nib.Nifti1Image(data, affine, hdr)
    return img


def same_grid(a: Any, b: Any, atol: float = 1e-6) -> bool:
    """Whether two images share their 3D shape and affine (to ``atol`` mm).

    Examples
    --------
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from sparse_connectome.image import same_grid
    >>> a = nib.Nifti1Image(np.zeros((4, 4, 4, 10)), np.eye(4))  # 4D: only x, y, z count
    >>> same_grid(a, nib.Nifti1Image(np.zeros((4, 4, 4)), np.eye(4)))
    True
    >>> same_grid(a, nib.Nifti1Image(np.zeros((4, 4, 4)), np.diag([2.0, 2.0, 2.0, 1.0])))
    False
    """
    return tuple(a.shape[:3]) == tuple(b.shape[:3]) and np.allclose(a.affine, b.affine,
                                                                      atol=atol)


# --------------------------------------------------------------------------- chunked reading


def iter_volume_chunks(img: ImgLike, *, chunk_size: int | None = None,
                       max_bytes: int = DEFAULT_CHUNK_BYTES, dtype: Any = np.float32,
                       name: str | None = None, prefetch: bool = False
                       ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Read a 4D image a block of volumes at a time.

    Yields ``(start, stop, block)`` where ``block`` has shape
    ``(stop - start, n_voxels)``: one flattened volume per row, voxels in the
    file's (Fortran) order, i.e. ``block[k].reshape(shape3d, order="F")`` is
    volume ``start + k``. Header scaling is applied; ``dtype`` is the dtype of
    the blocks (float32 keeps memory low; the caller converts chunk by chunk).

    Files are read in one sequential pass (a ``.nii.gz`` is decompressed once,
    never re-read from its start), so the peak memory is one block, whatever the
    number of volumes.

    Parameters
    ----------
    chunk_size : int, optional
        Volumes per block. Default: as many as fit in ``max_bytes``.
    max_bytes : int
        Size budget of one block in ``dtype`` when ``chunk_size`` is None.
    prefetch : bool
        Read (and decompress) the next block in a background thread while the
        caller works on the current one; reading starts at once, before the
        first ``next()``. At most two blocks more are in memory. Call
        ``close()`` on the iterator if it may not be consumed to the end.

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> from sparse_connectome.image import iter_volume_chunks
    >>> for start, stop, block in iter_volume_chunks(load_demo().func[0], chunk_size=50):
    ...     print(start, stop, block.shape, block.dtype)
    0 50 (50, 147500) float32
    50 100 (50, 147500) float32
    100 150 (50, 147500) float32
    150 168 (18, 147500) float32
    """
    if prefetch:
        return _Prefetch(iter_volume_chunks(img, chunk_size=chunk_size, max_bytes=max_bytes,
                                            dtype=dtype, name=name))
    return _iter_chunks(img, chunk_size, max_bytes, dtype, name)


def _iter_chunks(img: ImgLike, chunk_size: int | None, max_bytes: int, dtype: Any,
                 name: str | None) -> Iterator[tuple[int, int, np.ndarray]]:
    loaded = load_img(img, ndim=4, name=name)
    label = img_name(loaded if not isinstance(img, (str, os.PathLike)) else img, name)
    shape = tuple(int(s) for s in loaded.shape)
    n_vox = shape[0] * shape[1] * shape[2]
    n_t = shape[3]
    dtype = np.dtype(dtype)
    if chunk_size is None:
        chunk_size = max(1, int(max_bytes // max(1, n_vox * dtype.itemsize)))
    chunk_size = int(min(max(1, chunk_size), n_t))
    proxy = loaded.dataobj
    if nib.is_proxy(proxy) and getattr(proxy, "order", "F") == "F" and hasattr(proxy, "offset"):
        yield from _iter_proxy(proxy, shape, chunk_size, dtype, label)
        return
    array = np.asanyarray(proxy)
    for start in range(0, n_t, chunk_size):
        stop = min(n_t, start + chunk_size)
        block = np.asarray(array[..., start:stop], dtype=dtype)
        yield start, stop, np.ascontiguousarray(block.reshape(n_vox, stop - start, order="F").T)


def _iter_proxy(proxy: Any, shape: tuple[int, ...], chunk_size: int, dtype: np.dtype,
                label: str) -> Iterator[tuple[int, int, np.ndarray]]:
    n_vox = shape[0] * shape[1] * shape[2]
    n_t = shape[3]
    raw_dtype = np.dtype(proxy.dtype)
    slope, inter = float(proxy.slope), float(proxy.inter)
    scaled = not (slope == 1.0 and inter == 0.0)
    vol_bytes = n_vox * raw_dtype.itemsize
    try:
        with open_stream(proxy.file_like) as stream:
            stream.skip(int(proxy.offset))
            for start in range(0, n_t, chunk_size):
                stop = min(n_t, start + chunk_size)
                need = (stop - start) * vol_bytes
                buf = bytearray(need)
                got = stream.readinto(memoryview(buf))
                if got < need:
                    raise ImageError(
                        f"image file {label} is truncated: volumes {start}..{stop - 1} "
                        f"need {need} bytes, only {got} could be read (shape {shape})")
                raw = np.frombuffer(buf, dtype=raw_dtype).reshape(stop - start, n_vox)
                if scaled:
                    # Scale in float64 for wide integer types, then cast.
                    # float64 too for a slope or intercept past float32's range
                    # (NIfTI-2 stores them as float64): else 0 * inf gives NaN.
                    narrow = raw_dtype.itemsize <= 2 and max(abs(slope), abs(inter)) < 3e38
                    work = np.result_type(dtype, np.float32 if narrow else np.float64)
                    block = raw.astype(work)
                    block *= slope
                    block += inter
                    block = block.astype(dtype, copy=False)
                elif raw_dtype != dtype or not raw_dtype.isnative:
                    block = raw.astype(dtype)
                else:
                    block = raw  # already the right dtype: no copy
                del raw
                if stop == n_t:
                    # Every member's CRC-32 and length are checked here, before the
                    # last block is handed out. The earlier blocks left unchecked (a
                    # stream cannot check what it has not read yet): a caller that
                    # stops early keeps data no trailer vouched for. Checking the
                    # rest would cost the whole read that stopping early saved.
                    stream.finish()
                yield start, stop, block
                # Drop this block before the next is allocated: one block alive, not two.
                del block, buf
    except ImageError:
        raise
    except _READ_ERRORS as exc:
        raise ImageError(f"image file {label} cannot be read (damaged or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc


_DONE = object()


class _Prefetch:
    """An iterator whose items are produced ahead by a background thread.

    The inflater (ISA-L) and file reads release the GIL, so decompressing the
    next block runs beside the caller's work on the current one (matrix
    products, imports).
    Errors of the producer are raised in the consumer, at the item that failed.
    """

    def __init__(self, source: Iterator[Any], depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(source,), daemon=True,
                                        name="sparse-connectome-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterator[Any]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop the producer and wait for it (it closes the file)."""
        self._finished = True
        self._stop.set()
        self._thread.join()

    def __del__(self) -> None:
        self._stop.set()
