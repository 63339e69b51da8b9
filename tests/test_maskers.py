"""Maskers against nilearn (oracle), streaming memory, caching, bad input.

nilearn computes its least squares in the dtype of the image: on the demo's
float32 BOLD its own result is off by ~5e-4 after z-scoring. The oracle
comparisons therefore hand nilearn the same data as float64, where both
implementations are exact, and must agree to 1e-5 (1e-4 after resampling).
"""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome.errors import (
    AtlasError,
    ConfoundsError,
    DataWarning,
    ImageError,
    ShapeMismatchError,
)
from sparse_connectome.maskers import (
    NiftiLabelsMasker,
    NiftiMapsMasker,
    NiftiSpheresMasker,
)

nl_maskers = pytest.importorskip("nilearn.maskers")


@pytest.fixture(scope="module")
def func64(demo):
    img = nib.load(demo.func[0])
    return nib.Nifti1Image(img.get_fdata(), img.affine)


@pytest.fixture(scope="module")
def labels_img(demo):
    maps = nib.load(demo.maps)
    data = maps.get_fdata()
    lab = (np.argmax(data, axis=3) + 1) * (data.max(axis=3) > 0.05)
    return nib.Nifti1Image(lab.astype(np.int16), maps.affine)


def _coarse(img, zoom=5.0, shift=(1.5, -2.0, 0.7)):
    """The same content resampled to a coarser grid with another origin."""
    from sparse_connectome.image import resample_img

    affine = np.diag([zoom, zoom, zoom, 1.0])
    affine[:3, 3] = img.affine[:3, 3] + np.asarray(shift)
    shape = tuple(int(np.ceil(s * 4 / zoom)) for s in img.shape[:3])
    out = resample_img(img, affine, shape, "linear")
    return nib.Nifti1Image(out.get_fdata().astype(np.float32), affine)


def test_maps_oracle_demo(demo, func64):
    kw = {"standardize": "zscore_sample", "standardize_confounds": True}
    ours = NiftiMapsMasker(demo.maps, **kw).fit_transform(demo.func[0],
                                                          confounds=demo.confounds[0])
    ref = nl_maskers.NiftiMapsMasker(demo.maps, **kw).fit_transform(
        func64, confounds=demo.confounds[0])
    assert ours.shape == (168, 39)
    assert np.abs(ours - ref).max() <= 1e-5
    # nilearn on the float32 file itself: its float32 arithmetic costs ~1e-3.
    ref32 = nl_maskers.NiftiMapsMasker(demo.maps, **kw).fit_transform(
        demo.func[0], confounds=demo.confounds[0])
    assert np.abs(ours - ref32).max() <= 5e-3


def test_maps_oracle_resampled_mask_detrend(demo, func64):
    coarse = _coarse(nib.load(demo.maps))
    kw = {"standardize": "zscore_sample", "detrend": True, "mask_img": demo.mask}
    conf = pd.read_csv(demo.confounds[0], sep="\t")
    ours = NiftiMapsMasker(coarse, **kw).fit_transform(demo.func[0], confounds=conf)
    ref = nl_maskers.NiftiMapsMasker(coarse, **kw).fit_transform(func64, confounds=conf)
    assert np.abs(ours - ref).max() <= 1e-4


def test_maps_oracle_filters_and_sample_mask(demo, func64):
    keep = np.setdiff1d(np.arange(168), [0, 1, 40, 41, 42, 100])
    kw = {"standardize": "zscore_sample", "detrend": True, "low_pass": 0.1,
          "high_pass": 0.01, "t_r": 2.0, "dtype": "float64"}
    ours = NiftiMapsMasker(demo.maps, **kw).fit_transform(
        demo.func[0], confounds=demo.confounds[0], sample_mask=keep)
    ref = nl_maskers.NiftiMapsMasker(demo.maps, **kw).fit_transform(
        func64, confounds=demo.confounds[0], sample_mask=keep)
    assert ours.shape == (keep.size, 39)
    assert np.abs(ours - ref).max() <= 1e-5


def test_maps_resampling_target_maps(demo, func64):
    coarse = _coarse(nib.load(demo.maps), zoom=6.0)
    kw = {"standardize": "zscore_sample", "resampling_target": "maps"}
    # The data is resampled volume by volume (spline): 60 volumes keep it quick.
    head32 = nib.Nifti1Image(np.asarray(nib.load(demo.func[0]).dataobj)[..., :60],
                             func64.affine)
    head64 = nib.Nifti1Image(np.asarray(func64.dataobj)[..., :60], func64.affine)
    ours = NiftiMapsMasker(coarse, **kw).fit_transform(head32)
    ref = nl_maskers.NiftiMapsMasker(coarse, **kw).fit_transform(head64)
    assert ours.shape == (60, 39)
    assert np.abs(ours - ref).max() <= 1e-4


def test_maps_inverse_transform(demo):
    masker = NiftiMapsMasker(demo.maps).fit()
    signals = np.random.default_rng(0).normal(size=(3, 39))
    img = masker.inverse_transform(signals)
    ref = nl_maskers.NiftiMapsMasker(demo.maps).fit().inverse_transform(signals)
    assert img.shape == (50, 59, 50, 3)
    assert np.abs(img.get_fdata() - ref.get_fdata()).max() <= 1e-5
    # transform(inverse_transform(x)) == x: least squares recovers exact combinations.
    back = masker.transform(img)
    np.testing.assert_allclose(back, signals, atol=1e-8)


def test_labels_oracle(demo, func64, labels_img):
    names = [f"r{i}" for i in range(39)]
    kw = {"standardize": "zscore_sample", "background_label": 0}
    masker = NiftiLabelsMasker(labels_img, labels=names, **kw)
    ours = masker.fit_transform(demo.func[0], confounds=demo.confounds[0])
    nl = nl_maskers.NiftiLabelsMasker(labels_img, **kw)
    ref = nl.fit_transform(func64, confounds=demo.confounds[0])
    assert np.abs(ours - ref).max() <= 1e-5
    assert masker.n_elements_ == 39 and masker.region_names_[0] == "r0"
    assert masker.labels_ == list(nl.labels_)
    assert masker.region_ids_ == nl.region_ids_
    back = masker.inverse_transform(ours)
    ref_back = nl.inverse_transform(ref)
    assert np.abs(back.get_fdata() - ref_back.get_fdata()).max() <= 1e-5


@pytest.mark.parametrize("strategy", ["median", "maximum", "standard_deviation"])
def test_labels_strategies_resampled(demo, func64, labels_img, strategy):
    coarse_labels = nib.Nifti1Image(np.asarray(labels_img.dataobj)[::2, ::2, ::2],
                                    labels_img.affine @ np.diag([2.0, 2, 2, 1]))
    ours = NiftiLabelsMasker(coarse_labels, strategy=strategy,
                             mask_img=demo.mask).fit_transform(demo.func[0])
    ref = nl_maskers.NiftiLabelsMasker(coarse_labels, strategy=strategy,
                                       mask_img=demo.mask).fit_transform(func64)
    assert np.abs(ours - ref).max() <= 1e-5


def test_spheres_oracle(demo, func64):
    seeds = demo.region_coords[:12]
    for radius, mask in [(None, None), (6.0, None), (8.0, demo.mask)]:
        kw = {"seeds": seeds, "radius": radius, "mask_img": mask,
              "standardize": "zscore_sample", "allow_overlap": True}
        ours = NiftiSpheresMasker(**kw).fit_transform(demo.func[0],
                                                      confounds=demo.confounds[0])
        ref = nl_maskers.NiftiSpheresMasker(**kw).fit_transform(
            func64, confounds=demo.confounds[0])
        assert np.abs(ours - ref).max() <= 1e-5, radius
    # inverse_transform (nilearn needs the mask for it).
    kw = {"seeds": seeds[:4], "radius": 8.0, "mask_img": demo.mask}
    ours = NiftiSpheresMasker(**kw).fit(demo.func[0])
    ref = nl_maskers.NiftiSpheresMasker(**kw).fit(func64)
    signals = np.random.default_rng(0).normal(size=(2, 4))
    back = ours.inverse_transform(signals).get_fdata()
    ref_back = ref.inverse_transform(signals).get_fdata()
    assert back.shape == ref_back.shape
    assert np.abs(back - ref_back).max() <= 1e-5


def test_spheres_inclusion_rule():
    """Voxels at exactly ``radius`` mm are in; the nearest voxel is always in."""
    from sparse_connectome.maskers._spheres import sphere_voxels

    affine = np.diag([4.0, 4, 4, 1])
    affine[:3, 3] = -20
    n = [s.size for s in sphere_voxels(np.zeros((1, 3)), 4.0, affine, (11, 11, 11))]
    assert n == [7]
    assert sphere_voxels(np.zeros((1, 3)), 3.99, affine, (11, 11, 11))[0].size == 1
    assert sphere_voxels(np.array([[1.5, 0, 0]]), 1.0, affine, (11, 11, 11))[0].size == 1
    with pytest.raises(AtlasError, match="overlap"):
        NiftiSpheresMasker([(0, 0, 0), (4, 0, 0)], radius=5).fit(
            nib.Nifti1Image(np.zeros((11, 11, 11, 2)), affine))
    with pytest.raises(AtlasError, match=r"\[0\]"):
        NiftiSpheresMasker([(100, 0, 0)], radius=2).fit(
            nib.Nifti1Image(np.zeros((11, 11, 11, 2)), affine))


def test_list_inputs(demo):
    masker = NiftiMapsMasker(demo.maps, standardize="zscore_sample")
    one = masker.fit_transform(demo.func[0], confounds=demo.confounds[0])
    many = masker.fit_transform([demo.func[0], demo.func[0]],
                                confounds=[demo.confounds[0], None])
    assert isinstance(many, list) and len(many) == 2
    np.testing.assert_array_equal(many[0], one)
    assert not np.allclose(many[1], one)
    with pytest.raises(ShapeMismatchError, match="confounds"):
        masker.transform([demo.func[0], demo.func[0]], confounds=[demo.confounds[0]])


def test_memory_cache(demo, labels_img, tmp_path, monkeypatch):
    from sparse_connectome.maskers import _base

    masker = NiftiMapsMasker(demo.maps, standardize="zscore_sample", memory=str(tmp_path),
                             memory_level=1)
    first = masker.fit_transform(demo.func[0], confounds=demo.confounds[0])
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(1)
        raise AssertionError("extraction ran again despite the cache")

    monkeypatch.setattr(_base, "extract_signals", forbidden)
    again = NiftiMapsMasker(demo.maps, standardize="zscore_sample", memory=str(tmp_path),
                            memory_level=1).fit_transform(demo.func[0],
                                                          confounds=demo.confounds[0])
    np.testing.assert_array_equal(first, again)
    assert not calls
    # Labels with a non-linear strategy are cached too.
    monkeypatch.undo()
    labels = NiftiLabelsMasker(labels_img, strategy="median", memory=str(tmp_path),
                               memory_level=1)
    first_labels = labels.fit_transform(demo.func[0])
    monkeypatch.setattr(_base, "extract_signals", forbidden)
    np.testing.assert_array_equal(labels.fit_transform(demo.func[0]), first_labels)
    # Other parameters are another computation.
    with pytest.raises(AssertionError, match="cache"):
        NiftiMapsMasker(demo.maps, standardize="zscore", memory=str(tmp_path),
                        memory_level=1).fit_transform(demo.func[0])


def test_streaming_peak_memory(tmp_path):
    """Peak memory of an extraction stays far below the float64 series."""
    rng = np.random.default_rng(0)
    shape = (40, 48, 40)
    n_t = 400
    path = tmp_path / "big.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape + (n_t,))
    hdr.set_data_dtype(np.float32)
    img = nib.Nifti1Image(np.zeros((1, 1, 1, 1), np.float32), np.diag([3.0, 3, 3, 1]), hdr)
    # Write volume by volume: the test itself must not hold the series either.
    with open(path, "wb") as fh:
        hdr = img.header.copy()
        hdr.set_data_shape(shape + (n_t,))
        hdr["vox_offset"] = 352
        fh.write(hdr.binaryblock)
        fh.write(b"\x00" * (352 - len(hdr.binaryblock)))
        fh.writelines(rng.normal(100, 1, shape).astype(np.float32).tobytes(order="F")
                      for _ in range(n_t))
    maps = rng.random(shape + (10,)).astype(np.float32)
    maps[maps < 0.7] = 0
    maps_img = nib.Nifti1Image(maps, np.diag([3.0, 3, 3, 1]))
    masker = NiftiMapsMasker(maps_img).fit()
    full_float64 = np.prod(shape) * n_t * 8
    tracemalloc.start()
    try:
        signals = masker.transform(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert signals.shape == (n_t, 10)
    assert peak < full_float64 / 3, (peak, full_float64)


def test_bad_inputs(demo, tmp_path):
    maps = nib.load(demo.maps)
    far = nib.Nifti1Image(np.asarray(maps.dataobj), maps.affine @ np.eye(4) +
                          np.array([[0, 0, 0, 1000.0]] * 3 + [[0, 0, 0, 0]]))
    far_path = tmp_path / "far_maps.nii.gz"
    far.to_filename(far_path)
    with pytest.raises(AtlasError, match=r"far_maps.*mm.*preproc_bold"):
        NiftiMapsMasker(far_path).fit_transform(demo.func[0])
    # Confounds with the wrong number of rows.
    with pytest.raises(ShapeMismatchError, match="rows"):
        NiftiMapsMasker(demo.maps).fit_transform(demo.func[0], confounds=np.zeros((10, 2)))
    short = tmp_path / "short_confounds.tsv"
    pd.read_csv(demo.confounds[0], sep="\t").iloc[:50].to_csv(short, sep="\t", index=False)
    with pytest.raises(ShapeMismatchError, match=r"short_confounds\.tsv.*preproc_bold.*168"):
        NiftiMapsMasker(demo.maps).fit_transform(demo.func[0], confounds=str(short))
    # NaN in confounds (a raw fMRIPrep file): the file, the columns and rows are named.
    with pytest.raises(ConfoundsError, match=r"confounds_timeseries\.tsv.*framewise"):
        NiftiMapsMasker(demo.maps).fit_transform(demo.func[0],
                                                 confounds=demo.confounds_full[0])
    # An empty map: nilearn goes on, we warn naming the map.
    data = np.asarray(maps.dataobj).copy()
    data[..., 3] = 0
    with pytest.warns(DataWarning, match=r"\[3\]"):
        out = NiftiMapsMasker(nib.Nifti1Image(data, maps.affine)).fit_transform(demo.func[0])
    assert np.all(out[:, 3] == 0)
    # A truncated .nii.gz.
    bad = tmp_path / "broken_bold.nii.gz"
    raw = Path(demo.func[0]).read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ImageError, match="broken_bold"):
        NiftiMapsMasker(demo.maps).fit_transform(bad)
    # A 3D maps-image where 4D data is needed by the pipeline's loader.
    from sparse_connectome.image import load_img

    with pytest.raises(ImageError, match=r"3D.*4D|4D"):
        load_img(demo.mask, ndim=4)
    with pytest.raises(ImageError, match="mask"):
        NiftiMapsMasker(demo.maps, mask_img=demo.func[0]).fit()


def test_nan_in_image_warns(demo):
    img = nib.load(demo.func[0])
    data = img.get_fdata(dtype=np.float32)
    data[25, 30, 25, 3] = np.nan
    with pytest.warns(DataWarning, match="NaN"):
        out = NiftiMapsMasker(demo.maps).fit_transform(nib.Nifti1Image(data, img.affine))
    assert np.all(np.isfinite(out))


def test_get_set_params():
    masker = NiftiMapsMasker("maps.nii.gz", standardize="zscore_sample")
    assert masker.get_params()["standardize"] == "zscore_sample"
    masker.set_params(detrend=True)
    assert masker.detrend is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repr(masker)
