"""image.py: loading, validation, chunked reading and resampling (oracle: nilearn)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from sparse_connectome.errors import ImageError, ParameterError
from sparse_connectome.image import (
    get_data,
    iter_volume_chunks,
    load_img,
    resample_img,
    resample_to_img,
)

AFFINE = np.array([[4.0, 0, 0, -96], [0, 4.0, 0, -132], [0, 0, 4.0, -78], [0, 0, 0, 1]])


def _img4d(shape=(7, 8, 9, 11), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return nib.Nifti1Image(rng.normal(100, 5, shape).astype(dtype), AFFINE)


def test_load_paths_and_images(tmp_path):
    img = _img4d()
    for suffix in (".nii", ".nii.gz"):
        path = tmp_path / f"bold{suffix}"
        img.to_filename(path)
        loaded = load_img(path, ndim=4)
        assert loaded.shape == img.shape
        np.testing.assert_array_equal(get_data(loaded), img.get_fdata())
    assert load_img(img, ndim=4) is img
    nib.Nifti2Image(img.get_fdata(), AFFINE).to_filename(tmp_path / "n2.nii")
    assert load_img(tmp_path / "n2.nii", ndim=4).shape == img.shape


def test_dimensionality(tmp_path):
    vol = nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), AFFINE)
    path = tmp_path / "vol3d.nii.gz"
    vol.to_filename(path)
    with pytest.raises(ImageError, match=r"vol3d\.nii\.gz.*\(4, 5, 6\).*4D"):
        load_img(path, ndim=4)
    with pytest.raises(ImageError, match="4D"):
        next(iter_volume_chunks(path))
    one = nib.Nifti1Image(np.zeros((4, 5, 6, 1), np.float32), AFFINE)
    assert load_img(one, ndim=4).shape == (4, 5, 6, 1)  # one volume is fine
    assert load_img(one, ndim=3).shape == (4, 5, 6)  # and is a 3D image where 3D is needed
    with pytest.raises(ImageError, match="3D"):
        load_img(_img4d(), ndim=3, name="mask_img")


def test_bad_affines_and_files(tmp_path):
    data = np.zeros((3, 3, 3), np.float32)
    singular = AFFINE.copy()
    singular[2, 2] = 0
    img = nib.Nifti1Image(data, AFFINE)
    img._affine = singular  # nibabel refuses it in the constructor; files can still hold it
    with pytest.raises(ImageError, match="singular"):
        load_img(img)
    img._affine = np.full((4, 4), np.nan)
    with pytest.raises(ImageError, match="non-finite"):
        load_img(img)
    with pytest.raises(ImageError, match="does not exist"):
        load_img(tmp_path / "missing.nii.gz")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(ImageError, match="garbage"):
        load_img(garbage)
    with pytest.raises(ImageError):
        load_img(42)


def test_truncated_files(tmp_path):
    img = _img4d((10, 10, 10, 20))
    gz = tmp_path / "trunc.nii.gz"
    img.to_filename(gz)
    raw = gz.read_bytes()
    gz.write_bytes(raw[: len(raw) // 2])
    loaded = load_img(gz, ndim=4)  # the header is intact
    with pytest.raises(ImageError, match="trunc.nii.gz"):
        for _ in iter_volume_chunks(loaded, chunk_size=3):
            pass
    with pytest.raises(ImageError, match="trunc.nii.gz"):
        get_data(gz)
    plain = tmp_path / "trunc.nii"
    img.to_filename(plain)
    plain.write_bytes(plain.read_bytes()[:-1000])
    with pytest.raises(ImageError, match=r"trunc\.nii.*truncated"):
        load_img(plain)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", None])
@pytest.mark.parametrize("chunk", [1, 4, 11, None])
def test_chunks_match_whole_array(tmp_path, suffix, chunk):
    img = _img4d()
    if suffix is not None:
        img.to_filename(tmp_path / f"f{suffix}")
        img = tmp_path / f"f{suffix}"
    whole = get_data(img)
    seen = 0
    for start, stop, block in iter_volume_chunks(img, chunk_size=chunk, dtype=np.float64):
        assert start == seen and block.shape == (stop - start, 7 * 8 * 9)
        for k in range(stop - start):
            np.testing.assert_array_equal(block[k].reshape(7, 8, 9, order="F"),
                                          whole[..., start + k])
        seen = stop
    assert seen == 11


def test_scaling_and_byte_order(tmp_path):
    rng = np.random.default_rng(1)
    ints = rng.integers(-300, 300, (5, 6, 7, 4)).astype(np.int16)
    img = nib.Nifti1Image(ints, AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "scaled.nii.gz"
    img.to_filename(path)
    expected = ints * 0.5 + 10.0
    np.testing.assert_allclose(get_data(path), expected)
    blocks = [b for _, _, b in iter_volume_chunks(path, chunk_size=3, dtype=np.float64)]
    got = np.concatenate(blocks).T.reshape(5, 6, 7, 4, order="F")
    np.testing.assert_allclose(got, expected)
    big = nib.Nifti1Image(rng.normal(size=(5, 6, 7, 4)).astype(">f4"), AFFINE)
    big.to_filename(tmp_path / "big.nii")
    blocks = [b for _, _, b in iter_volume_chunks(tmp_path / "big.nii")]
    np.testing.assert_array_equal(np.concatenate(blocks).T.reshape(5, 6, 7, 4, order="F"),
                                  big.get_fdata().astype(np.float32))


def _maps_like(seed=0):
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random((20, 24, 18, 3)), (2, 2, 2, 0))
    data[data < np.quantile(data, 0.6)] = 0
    return data.astype(np.float32)


@pytest.mark.parametrize("interpolation", ["continuous", "linear", "nearest"])
@pytest.mark.parametrize("rotate", [False, True])
def test_resample_matches_nilearn(interpolation, rotate):
    from nilearn.image import resample_img as nl_resample

    source_affine = np.array([[5.0, 0, 0, -40], [0, 5, 0, -50], [0, 0, 5, -30], [0, 0, 0, 1]])
    if rotate:
        c, s = np.cos(0.2), np.sin(0.2)
        source_affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ \
            source_affine[:3, :3]
    src = nib.Nifti1Image(_maps_like(), source_affine)
    target_affine = np.array([[4.0, 0, 0, -38], [0, 4, 0, -47], [0, 0, 4, -29], [0, 0, 0, 1]])
    ours = resample_img(src, target_affine, (25, 30, 22), interpolation).get_fdata()
    ref = nl_resample(src, target_affine=target_affine, target_shape=(25, 30, 22),
                      interpolation=interpolation, force_resample=True,
                      copy_header=True).get_fdata()
    # nilearn returns float32 (the source dtype); ours is float64.
    assert np.abs(ours - ref).max() <= 1e-6
    assert np.abs(ref).max() > 0.1


def test_resample_to_img_and_identity():
    src = nib.Nifti1Image(_maps_like(), AFFINE)
    assert resample_to_img(src, src) is src
    with pytest.raises(ParameterError, match="interpolation"):
        resample_img(src, AFFINE * 2, (3, 3, 3), "cubic")


def test_gzip_multi_member_and_corruption(tmp_path):
    """Our sequential gzip reader handles concatenated members and detects damage."""
    import gzip

    img = _img4d((6, 7, 8, 9))
    plain = tmp_path / "plain.nii"
    img.to_filename(plain)
    raw = plain.read_bytes()
    multi = tmp_path / "multi.nii.gz"
    cut = len(raw) // 3
    multi.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))
    blocks = [b for _, _, b in iter_volume_chunks(multi, chunk_size=2, dtype=np.float64)]
    np.testing.assert_array_equal(np.concatenate(blocks).T.reshape(6, 7, 8, 9, order="F"),
                                  img.get_fdata())
    damaged = tmp_path / "damaged.nii.gz"
    packed = bytearray(gzip.compress(raw))
    packed[-6] ^= 0xFF  # the CRC-32 trailer
    damaged.write_bytes(bytes(packed))
    with pytest.raises(ImageError, match="damaged.nii.gz"):
        for _ in iter_volume_chunks(damaged):
            pass


def test_prefetch_same_blocks_errors_and_close(tmp_path):
    img = _img4d((6, 7, 8, 25))
    path = tmp_path / "pre.nii.gz"
    img.to_filename(path)
    plain = [b for _, _, b in iter_volume_chunks(path, chunk_size=4)]
    ahead = iter_volume_chunks(path, chunk_size=4, prefetch=True)
    for a, b in zip(plain, (b for _, _, b in ahead)):
        np.testing.assert_array_equal(a, b)
    # Stopping early stops the reader thread.
    early = iter_volume_chunks(path, chunk_size=1, prefetch=True)
    next(early)
    early.close()
    assert not early._thread.is_alive()
    # The reader's errors reach the consumer.
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="pre.nii.gz"):
        for _ in iter_volume_chunks(path, chunk_size=4, prefetch=True):
            pass


def test_nearest_resampling_keeps_the_dtype_of_an_in_memory_image():
    import nibabel as nib
    import numpy as np

    from sparse_connectome.image import resample_img

    labels = np.zeros((4, 4, 4), np.int16)
    labels[2:, :, :] = 7
    out = resample_img(nib.Nifti1Image(labels, np.eye(4)), np.diag([2.0, 2.0, 2.0, 1.0]),
                       (2, 2, 2), interpolation="nearest")
    assert out.get_data_dtype() == np.int16 and set(np.unique(out.dataobj)) == {0, 7}


# ------------------------------------------------------------- gzip trailers (CRC-32, ISIZE)

def _gzip_member(payload: bytes, level: int = 6, header: bytes | None = None) -> bytes:
    """One gzip member: ``header`` (default: the plain 10 bytes), raw deflate, trailer."""
    import zlib

    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = packer.compress(payload) + packer.flush()
    head = header if header is not None else b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return head + body + (zlib.crc32(payload).to_bytes(4, "little")
                          + (len(payload) & 0xFFFFFFFF).to_bytes(4, "little"))


def _crc32(data: bytes) -> int:
    import zlib

    return zlib.crc32(data)


def _fancy_header() -> bytes:
    """A header with every optional field: FEXTRA, FNAME, FCOMMENT and FHCRC."""
    import zlib

    extra = b"SC" + (5).to_bytes(2, "little") + b"extra"
    head = (b"\x1f\x8b\x08" + bytes([4 | 8 | 16 | 2]) + b"\x00" * 4 + b"\x00\xff"
            + len(extra).to_bytes(2, "little") + extra + b"bold.nii\x00" + b"a comment\x00")
    return head + (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little")


def _flip_that_still_inflates(payload: bytes) -> bytes:
    """A member whose deflate data has one flipped byte, yet inflates to as many bytes
    (other bytes): only the CRC-32 of the trailer can tell."""
    import zlib

    member = bytearray(_gzip_member(payload))
    for pos in range(len(member) // 2, len(member) - 8):
        member[pos] ^= 0x10
        try:
            out = zlib.decompress(bytes(member[10:-8]), -15)
        except zlib.error:
            out = b""
        if len(out) == len(payload) and out != payload:
            return bytes(member)
        member[pos] ^= 0x10
    raise AssertionError("no flip found")  # pragma: no cover - deterministic input


def _write_labels_masker_inputs(tmp_path, bold_bytes: bytes):
    """A 4D .nii.gz from ``bold_bytes`` and a labels image on its grid."""
    bold = tmp_path / "bold.nii.gz"
    bold.write_bytes(bold_bytes)
    labels = np.zeros((6, 7, 8), np.int16)
    labels[:3], labels[3:] = 1, 2
    labels_path = tmp_path / "labels.nii.gz"
    nib.Nifti1Image(labels, AFFINE).to_filename(labels_path)
    return bold, labels_path


def test_gzip_crc_mismatch_from_a_flip_that_still_inflates_fails_extraction(tmp_path):
    from sparse_connectome.maskers import NiftiLabelsMasker

    img = _img4d((6, 7, 8, 30))
    plain = tmp_path / "plain.nii"
    img.to_filename(plain)
    raw = plain.read_bytes()
    # Intact, through the same reader: the same signals as the uncompressed file.
    bold, labels = _write_labels_masker_inputs(tmp_path, _gzip_member(raw))
    masker = NiftiLabelsMasker(str(labels))
    np.testing.assert_array_equal(masker.fit_transform(str(bold)),
                                  NiftiLabelsMasker(str(labels)).fit_transform(str(plain)))
    # One flipped byte that zlib inflates without complaint: the CRC-32 check refuses it.
    bold, _ = _write_labels_masker_inputs(tmp_path, _flip_that_still_inflates(raw))
    with pytest.raises(ImageError, match=r"bold\.nii\.gz' is corrupted: gzip member 1 "
                       rf"decompresses to {len(raw)} bytes with CRC-32 0x[0-9a-f]{{8}}; its "
                       rf"trailer expects {len(raw)} bytes .* with CRC-32 "
                       f"{_crc32(raw):#010x}"):
        masker.fit_transform(str(bold))
    with pytest.raises(ImageError, match="is corrupted: gzip member 1"):
        get_data(bold)  # the full read checks the trailer too, and says so unwrapped


@pytest.mark.parametrize("field, offset", [("CRC-32", -8), ("length", -4)])
def test_gzip_trailer_altered_raises_naming_found_and_expected(tmp_path, field, offset):
    img = _img4d((6, 7, 8, 9))
    plain = tmp_path / "plain.nii"
    img.to_filename(plain)
    raw = plain.read_bytes()
    packed = bytearray(_gzip_member(raw))
    packed[offset] ^= 0x01
    path = tmp_path / "trailer.nii.gz"
    path.write_bytes(bytes(packed))
    expected_size = len(raw) ^ (1 if field == "length" else 0)
    expected_crc = _crc32(raw) ^ (1 if field == "CRC-32" else 0)
    with pytest.raises(ImageError) as caught:
        for _ in iter_volume_chunks(path, chunk_size=4, prefetch=True):
            pass
    message = str(caught.value)
    assert "trailer.nii.gz" in message and "is corrupted" in message
    assert f"decompresses to {len(raw)} bytes with CRC-32 {_crc32(raw):#010x}" in message
    assert f"trailer expects {expected_size} bytes (modulo 2**32) with CRC-32 " \
           f"{expected_crc:#010x}" in message


@pytest.mark.parametrize("piece", [7, 1 << 20])
def test_gzip_intact_files_read_identically(tmp_path, monkeypatch, piece):
    """Optional header fields, several members, zero padding: read as nibabel reads them,
    also when every header and trailer is split across reads (7-byte pieces)."""
    from sparse_connectome.image._streams import GzipStream

    monkeypatch.setattr(GzipStream, "_PIECE", piece)
    img = _img4d((6, 7, 8, 9))
    plain = tmp_path / "plain.nii"
    img.to_filename(plain)
    raw = plain.read_bytes()
    cut = len(raw) // 3
    path = tmp_path / "fancy.nii.gz"
    path.write_bytes(_gzip_member(raw[:cut], 1, _fancy_header()) + b"\x00" * 5
                     + _gzip_member(raw[cut:2 * cut], 0) + _gzip_member(raw[2 * cut:], 9)
                     + b"\x00" * 3)
    blocks = [b for _, _, b in iter_volume_chunks(path, chunk_size=2, dtype=np.float64)]
    np.testing.assert_array_equal(np.concatenate(blocks).T.reshape(6, 7, 8, 9, order="F"),
                                  img.get_fdata())
    np.testing.assert_array_equal(get_data(path), img.get_fdata())
    # Garbage after the last member is not a gzip member: refused, the file named.
    path.write_bytes(path.read_bytes() + b"garbage, not a member")
    with pytest.raises(ImageError, match=r"fancy\.nii\.gz.*does not start with a gzip header"):
        get_data(path)
