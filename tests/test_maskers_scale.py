"""Maskers at today's atlas sizes against nilearn (oracle): 400 parcels, 1024 soft maps.

The atlases come from :mod:`sparse_connectome.simulate.atlases`, on a coarse 8 mm grid
of the MNI152 brain so that the file runs in seconds (the full 2 mm sizes are measured
by ``benchmarks/bench_atlas_scale.py``). nilearn gets the BOLD in float64, where both
implementations are exact least squares / means, and the signals must agree to 1e-8
relative to their scale, on the atlas's grid and after resampling to a data grid with
another voxel size and origin.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparse_connectome.errors import DataWarning
from sparse_connectome.image import resample_img
from sparse_connectome.maskers import NiftiLabelsMasker, NiftiMapsMasker
from sparse_connectome.simulate import simulate_labels_atlas, simulate_maps_atlas
from sparse_connectome.templates import load_mni152_brain_mask

nl_maskers = pytest.importorskip("nilearn.maskers")

TOL = 1e-8


def _grid(voxel_mm: float, shift_mm: float = 0.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = np.array([-90.0, -126.0, -72.0]) + shift_mm
    shape = tuple(int(np.ceil(extent / voxel_mm)) + 1 for extent in (180.0, 216.0, 180.0))
    return affine, shape


@pytest.fixture(scope="module")
def brain8():
    affine, shape = _grid(8.0)
    mask = resample_img(load_mni152_brain_mask(), affine, shape, "nearest").get_fdata() > 0
    return mask, affine


def _bold(mask: np.ndarray, affine: np.ndarray, n_volumes: int, seed: int) -> nib.Nifti1Image:
    """float64 BOLD: smooth shared fluctuations plus noise, inside the brain."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    patterns = np.stack([ndimage.gaussian_filter(rng.standard_normal(mask.shape), 1.5) * mask
                         for _ in range(5)], axis=-1)
    series = rng.standard_normal((n_volumes, 5)).cumsum(axis=0)
    data = 100.0 * mask[..., None] + patterns @ series.T * 10.0
    data += rng.standard_normal(mask.shape + (n_volumes,)) * mask[..., None]
    return nib.Nifti1Image(data, affine)


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module")
def bold8(brain8):
    return _bold(*brain8, n_volumes=20, seed=0)


@pytest.fixture(scope="module")
def bold9(brain8):
    """Another grid (9 mm, shifted origin): the atlas is resampled to it."""
    affine, shape = _grid(9.0, shift_mm=1.3)
    mask = resample_img(load_mni152_brain_mask(), affine, shape, "nearest").get_fdata() > 0
    return _bold(mask, affine, n_volumes=20, seed=1)


@pytest.fixture(scope="module")
def labels400(brain8):
    return simulate_labels_atlas(400, mask=brain8[0], affine=brain8[1], random_state=0)


@pytest.fixture(scope="module")
def maps1024(brain8):
    """1024 maps, handed over in float64 (nilearn resamples float32 maps in float32)."""
    atlas = simulate_maps_atlas(1024, mask=brain8[0], affine=brain8[1], random_state=0)
    atlas.maps = nib.Nifti1Image(atlas.maps.get_fdata(), atlas.maps.affine)
    return atlas


@pytest.mark.parametrize("bold_name", ["bold8", "bold9"])
def test_labels_400_match_nilearn(labels400, bold_name, request):
    bold = request.getfixturevalue(bold_name)
    ours = NiftiLabelsMasker(labels400.maps, labels=labels400.labels)
    if bold_name == "bold9":
        with pytest.warns(DataWarning, match="no voxel on the data grid"):
            signals = ours.fit_transform(bold)
    else:
        signals = ours.fit_transform(bold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = nl_maskers.NiftiLabelsMasker(labels400.maps).fit_transform(bold)
    assert signals.shape == (20, 400)
    assert ours.region_names_[0] == labels400.labels[0]
    # On the coarser 9 mm grid a few small parcels lose all their voxels: nilearn
    # drops their columns, ours keeps them as zeros (with the DataWarning above).
    kept = [k for k, value in ours.region_ids_.items() if k != "background"
            and np.any(np.asarray(ours.labels_img_.dataobj) == value)]
    assert theirs.shape[1] == len(kept)
    assert _relative_error(signals[:, kept], theirs) <= TOL


@pytest.mark.parametrize("bold_name", ["bold8", "bold9"])
def test_maps_1024_match_nilearn(maps1024, brain8, bold_name, request):
    bold = request.getfixturevalue(bold_name)
    # The brain mask keeps nilearn's dense least squares small (it solves on every
    # voxel of the grid otherwise), one BLAS thread keeps it from spinning on a busy
    # machine (10x slower measured).
    mask = nib.Nifti1Image(brain8[0].astype(np.uint8), brain8[1])
    ours = NiftiMapsMasker(maps1024.maps, mask_img=mask)
    signals = ours.fit_transform(bold)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        theirs = nl_maskers.NiftiMapsMasker(maps1024.maps, mask_img=mask).fit_transform(bold)
    assert signals.shape == theirs.shape == (20, 1024)
    assert _relative_error(signals, theirs) <= TOL


def test_maps_are_read_map_by_map(brain8, tmp_path, monkeypatch):
    """Reading 1024 maps from a file holds a few maps at a time, never the whole image."""
    import importlib
    import tracemalloc

    path = tmp_path / "maps.nii"
    simulate_maps_atlas(1024, mask=brain8[0], affine=brain8[1], path=path, random_state=0)
    image_bytes = 1024 * brain8[0].size * 4
    maps_module = importlib.import_module("sparse_connectome.maskers._maps")
    monkeypatch.setattr(maps_module, "_MAPS_CHUNK_BYTES", 2 * 2**20)
    maps = nib.load(path)
    tracemalloc.start()
    try:
        index, support = maps_module.read_sparse_maps(maps, maps.affine, maps.shape[:3], None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert support.shape == (index.size, 1024)
    assert support.indices.dtype == np.int32
    # A 2 MB chunk, the nonzeros (12 bytes each) and their concatenation.
    assert peak < 2 * 2**20 + 3 * 12 * support.nnz + 2 * 2**20, (peak, image_bytes)
    assert peak < 0.25 * image_bytes


def test_dense_and_sparse_weights_agree(brain8, bold8, monkeypatch):
    """Dense weights are used only when small; both paths give the same signals."""
    import importlib

    maps = simulate_maps_atlas(64, mask=brain8[0], affine=brain8[1], random_state=0).maps
    maps_module = importlib.import_module("sparse_connectome.maskers._maps")
    default = NiftiMapsMasker(maps).fit_transform(bold8)
    monkeypatch.setattr(maps_module, "_DENSE_FRACTION", 0.0)
    monkeypatch.setattr(maps_module, "_DENSE_MAX_BYTES", 0)
    sparse_path = NiftiMapsMasker(maps).fit_transform(bold8)
    monkeypatch.setattr(maps_module, "_DENSE_MAX_BYTES", 2**40)
    dense = NiftiMapsMasker(maps).fit_transform(bold8)
    assert _relative_error(sparse_path, dense) <= 1e-10
    assert _relative_error(default, dense) <= 1e-10
