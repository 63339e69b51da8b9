"""Property-based tests of the NIfTI readers: valid files, then mutated ones.

Strategies write a small, valid NIfTI-1 or NIfTI-2 image (``.nii`` or ``.nii.gz``)
and then damage it: one header field set to a hostile value, the file cut short,
bytes overwritten, the gzip stream cut or corrupted mid-block. The property, for
every file, through :func:`load_img`, :func:`get_data`, :func:`iter_volume_chunks`
and a masker's chunked reader: either a correct result (the streamed blocks agree
with the whole array, the shape is the header's), or an error of
:mod:`sparse_connectome.errors` whose message names the file.

A longer, random run: ``SPARSE_CONNECTOME_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_image.py``.
"""

from __future__ import annotations

import gzip
import itertools
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import fuzz_settings
from sparse_connectome.errors import ImageError, SparseConnectomeError
from sparse_connectome.image import get_data, iter_volume_chunks, load_img
from sparse_connectome.maskers import NiftiMapsMasker

FAST = fuzz_settings(60)
SHAPE = (4, 4, 4, 10)
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_image")


def _valid_bytes(version: int, dtype: str, shape: tuple[int, ...], slope: float) -> bytes:
    """A valid uncompressed NIfTI image as bytes (header, extension-free, data)."""
    data = (np.arange(int(np.prod(shape))).reshape(shape) % 11).astype(dtype)
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_slope_inter(slope, 0.5 if slope != 1.0 else 0.0)
    return img.to_bytes()


@st.composite
def valid_images(draw):
    version = draw(st.sampled_from([1, 2]))
    dtype = draw(st.sampled_from(["uint8", "int16", "float32", "float64"]))
    shape = draw(st.sampled_from([SHAPE, (3, 4, 2, 7), (4, 4, 4), (2, 3, 4, 1)]))
    slope = draw(st.sampled_from([1.0, 2.0]))
    return version, _valid_bytes(version, dtype, shape, slope)


def _field_value(draw, dtype: np.dtype):
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        special = [0, -1, 1, 7, 8, 9, 16, 64, 347, 348, 352, 540, 544, info.max, info.min,
                   2**15 - 1, 10**6]
        return draw(st.sampled_from([v for v in special if info.min <= v <= info.max])
                    | st.integers(int(info.min), int(info.max)))
    if dtype.kind == "f":
        return draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, -352.0, 1e9, 1e30,
                                     2.0**62, 1e-30])
                    | st.floats(width=8 * dtype.itemsize))
    return draw(st.binary(min_size=0, max_size=dtype.itemsize))


@st.composite
def header_mutation(draw, version: int, raw: bytes) -> bytes:
    """Set one header field (or one element of an array field) to a drawn value."""
    header_cls = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    template = header_cls.template_dtype
    size = template.itemsize
    hdr = np.frombuffer(bytearray(raw[:size]), dtype=template).copy()
    name = draw(st.sampled_from(sorted(template.names)))
    field = template.fields[name][0]
    base = field.base if field.subdtype else field
    value = _field_value(draw, base)
    if field.subdtype:
        hdr[name][0][draw(st.integers(0, field.shape[0] - 1))] = value
    else:
        hdr[name] = value
    return hdr.tobytes() + raw[size:]


@st.composite
def mutated_images(draw):
    """(file suffix, file bytes, whether the file is known to be intact)."""
    version, raw = draw(valid_images())
    kind = draw(st.sampled_from(["none", "field", "field", "field", "truncate", "bytes",
                                 "gz_truncate", "gz_corrupt", "gz_trailing"]))
    if kind == "field":
        raw = draw(header_mutation(version, raw))
    elif kind == "truncate":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif kind == "bytes":
        pos = draw(st.integers(0, len(raw) - 1))
        junk = draw(st.binary(min_size=1, max_size=16))
        raw = raw[:pos] + junk + raw[pos + len(junk):]
    gz = kind.startswith("gz") or draw(st.booleans())
    if not gz:
        return ".nii", raw, kind == "none"
    packed = gzip.compress(raw, compresslevel=1)
    if kind == "gz_truncate":
        packed = packed[:draw(st.integers(0, len(packed) - 1))]
    elif kind == "gz_corrupt":
        pos = draw(st.integers(10, len(packed) - 1))  # past the gzip header: mid-block
        packed = packed[:pos] + bytes([packed[pos] ^ draw(st.integers(1, 255))]) + packed[pos + 1:]
    elif kind == "gz_trailing":
        packed += draw(st.binary(min_size=1, max_size=64))
    return ".nii.gz", packed, kind == "none"


def _write(folder: Path, suffix: str, content: bytes) -> Path:
    path = folder / f"img{next(_COUNTER)}{suffix}"
    path.write_bytes(content)
    return path


def _named_error(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, SparseConnectomeError), f"{type(exc).__name__}: {exc}"
    assert path.name in str(exc), str(exc)


def _read_all(path: Path):
    """load_img, get_data and the streamed blocks of one file, or the named error."""
    img = load_img(path)
    whole = get_data(path)
    assert whole.shape == img.shape
    if img.ndim == 4:
        blocks = list(iter_volume_chunks(path, chunk_size=3))
        assert [b[0] for b in blocks] == list(range(0, img.shape[3], 3))
        streamed = np.concatenate([b[2] for b in blocks])
        expected = whole.reshape(-1, img.shape[3], order="F").T
        np.testing.assert_allclose(streamed, expected.astype(np.float32), rtol=1e-6,
                                   equal_nan=True)
    return whole


@FAST
@given(case=mutated_images())
def test_nifti_readers_answer_or_name_the_file(folder, case):
    suffix, content, intact = case
    path = _write(folder, suffix, content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            whole = _read_all(path)
        except Exception as exc:  # noqa: BLE001 - the property inspects any exception
            assert not intact, f"a valid image was refused: {exc}"
            _named_error(exc, path)
        else:
            assert np.isfinite(whole).all() or not intact
    path.unlink()


@pytest.fixture(scope="module")
def maps_path(folder):
    maps = np.zeros(SHAPE[:3] + (2,), dtype=np.float32)
    maps[:2, ..., 0] = 1.0
    maps[2:, ..., 1] = 1.0
    path = folder / "maps.nii.gz"
    nib.save(nib.Nifti1Image(maps, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


@FAST
@given(case=mutated_images())
def test_masker_reads_mutated_images_or_names_them(folder, maps_path, case):
    suffix, content, intact = case
    path = _write(folder, suffix, content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            signals = NiftiMapsMasker(maps_path).fit_transform(path)
        except Exception as exc:  # noqa: BLE001 - the property inspects any exception
            assert not intact or nib.load(path).shape[:3] != SHAPE[:3], str(exc)
            assert isinstance(exc, SparseConnectomeError), f"{type(exc).__name__}: {exc}"
            assert path.name in str(exc) or "imgs" in str(exc), str(exc)
        else:
            assert signals.shape[1] == 2
    path.unlink()


# --------------------------------------------------------------------------- regressions


def _lying(folder: Path, dims: tuple[int, ...], version: int = 1, gz: bool = True) -> Path:
    raw = bytearray(_valid_bytes(version, "float32", SHAPE, 1.0))
    cls = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = np.frombuffer(raw[:cls.template_dtype.itemsize], dtype=cls.template_dtype).copy()
    hdr["dim"][0][: len(dims) + 1] = (len(dims), *dims)
    raw[: hdr.nbytes] = hdr.tobytes()
    path = folder / f"lying{next(_COUNTER)}.nii{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


@pytest.mark.parametrize("version, dims, gz", [
    (1, (10_000, 10_000, 10_000, 10), True),  # 10**12 voxels per volume
    (1, (32767, 32767, 1, 1000), True),  # a plausible volume, 4 TB in all
    (1, (100, 100, 100, 10), True),  # 40 MB claimed by a 3 kB gzip file
    (2, (2**21, 2**21, 2**21, 8), False),  # 2**66 voxels: wrapped around in int64
    (2, (2**21, 2**21, 2**21, 8), True),
    (1, (32767, 32767, 32767, 10), False),
])
def test_lying_header_refused_before_allocation(folder, version, dims, gz):
    path = _lying(folder, dims, version, gz)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for read in (load_img, get_data, lambda p: next(iter_volume_chunks(p))):
            with pytest.raises(ImageError, match=path.name) as info:
                read(path)
            assert any(str(n) in str(info.value) for n in dims), str(info.value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 200 * 2**20


def test_volume_limit_is_in_the_message(folder):
    path = _lying(folder, (2**10, 2**10, 2**9, 1), gz=True)
    with pytest.raises(ImageError, match=str(2**28)):  # MAX_VOLUME_VOXELS of image/_io.py
        load_img(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("field, value, words", [
    ("dim", (4, -4, 4, 4, 10, 1, 1, 1), "negative axis"),  # was OverflowError from mmap
    ("datatype", 128, "RGB"),  # RGB24: was TypeError / DTypePromotionError
    ("datatype", 2304, "RGB"),  # RGBA32
    ("datatype", 32, "complex"),  # complex64: imaginary part silently dropped
    ("vox_offset", 1e9, "offset"),
])
def test_header_regressions(folder, gz, field, value, words):
    raw = bytearray(_valid_bytes(1, "float32", SHAPE, 1.0))
    hdr = np.frombuffer(raw[:348], dtype=nib.Nifti1Header.template_dtype).copy()
    hdr[field] = value
    if field == "datatype":
        hdr["bitpix"] = {128: 24, 2304: 32, 32: 64}[value]
    raw[:348] = hdr.tobytes()
    path = folder / f"regression{next(_COUNTER)}.nii{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    with pytest.raises(ImageError, match=path.name) as info:
        get_data(path)
    assert words in str(info.value) or (words == "offset" and "truncated" in str(info.value))


def test_gzip_corrupted_mid_block(folder):
    raw = _valid_bytes(1, "float32", (8, 8, 8, 40), 1.0)
    packed = bytearray(zlib.compress(raw, 1)[2:-4])  # a raw deflate stream
    packed[len(packed) // 2] ^= 0xFF
    path = folder / "midblock.nii.gz"
    header = gzip.compress(b"")[:10]
    path.write_bytes(header + bytes(packed) + zlib.crc32(raw).to_bytes(4, "little")
                     + len(raw).to_bytes(4, "little"))
    with pytest.raises(ImageError, match=path.name):
        list(iter_volume_chunks(path, chunk_size=4))


def test_float64_slope_past_float32_range(folder):
    # Was: NaN for the zeros of an int16 NIfTI-2 image with scl_slope 1e300 (0 * inf in
    # float32), where get_data gives 0.
    raw = bytearray(_valid_bytes(2, "int16", SHAPE, 1.0))
    hdr = np.frombuffer(raw[:540], dtype=nib.Nifti2Header.template_dtype).copy()
    hdr["scl_slope"] = 1e300
    raw[:540] = hdr.tobytes()
    path = folder / "slope.nii"
    path.write_bytes(bytes(raw))
    with np.errstate(over="ignore"):  # 10 * 1e300 is inf in float32, as expected
        blocks = np.concatenate([b for _, _, b in iter_volume_chunks(path, chunk_size=4)])
        expected = get_data(path).reshape(-1, SHAPE[3], order="F").T.astype(np.float32)
    assert not np.isnan(blocks).any()
    np.testing.assert_array_equal(blocks, expected)
