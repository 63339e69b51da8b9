"""The simulated Schaefer-like and DiFuMo-like atlases: sizes, order, names, files."""

import nibabel as nib
import numpy as np
import pytest

from sparse_connectome.errors import ParameterError
from sparse_connectome.simulate import simulate_labels_atlas, simulate_maps_atlas


def _grid():
    mask = np.zeros((30, 36, 30), dtype=bool)
    mask[3:27, 3:33, 3:27] = True
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-45, -54, -45]
    return mask, affine


def test_labels_atlas_tiles_the_mask_in_schaefer_order():
    mask, affine = _grid()
    atlas = simulate_labels_atlas(100, mask=mask, affine=affine, n_networks=7, random_state=3)
    data = np.asarray(atlas.maps.dataobj)
    assert atlas.kind == "labels" and data.dtype == np.int16
    assert np.array_equal(data > 0, mask)
    assert np.array_equal(np.unique(data[mask]), np.arange(1, 101))
    assert atlas.indices == list(range(1, 101))
    # left hemisphere first (x < 0), networks in Yeo's order within each hemisphere
    xyz = atlas.region_coords
    assert np.all(xyz[:50, 0] < 0) and np.all(xyz[50:, 0] > 0)
    assert all(name.startswith("7Networks_LH_") for name in atlas.labels[:50])
    assert all(name.split("_")[2] == net for name, net in zip(atlas.labels, atlas.networks))
    order = [("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default").index(n)
             for n in atlas.networks[:50]]
    assert order == sorted(order)
    # centres of mass of the parcels
    ijk = np.argwhere(data == 7)
    expected = (ijk @ affine[:3, :3].T + affine[:3, 3]).mean(axis=0)
    np.testing.assert_allclose(atlas.region_coords[6], expected)
    assert len(set(atlas.labels)) == 100


def test_labels_atlas_is_deterministic_per_seed():
    mask, affine = _grid()
    a = simulate_labels_atlas(20, mask=mask, affine=affine, random_state=1)
    b = simulate_labels_atlas(20, mask=mask, affine=affine, random_state=1)
    c = simulate_labels_atlas(20, mask=mask, affine=affine, random_state=2)
    assert np.array_equal(a.maps.dataobj, b.maps.dataobj)
    assert not np.array_equal(a.maps.dataobj, c.maps.dataobj)


def test_maps_atlas_written_map_by_map_equals_in_memory(tmp_path):
    mask, affine = _grid()
    memory = simulate_maps_atlas(40, mask=mask, affine=affine, n_networks=17, random_state=0)
    for name in ("maps.nii", "maps.nii.gz"):
        written = simulate_maps_atlas(40, mask=mask, affine=affine, n_networks=17,
                                      random_state=0, path=tmp_path / name)
        img = nib.load(written.maps)
        assert img.shape == (30, 36, 30, 40) and img.get_data_dtype() == np.float32
        np.testing.assert_array_equal(img.get_fdata(), memory.maps.get_fdata())
        np.testing.assert_allclose(img.affine, affine)
    data = memory.maps.get_fdata()
    assert memory.kind == "maps" and memory.indices is None
    assert data.min() == 0.0 and np.all(data[~mask] == 0)
    support = (data > 0).sum(axis=(0, 1, 2))
    assert support.min() > 0 and support.max() < mask.sum() / 4  # finite, local support
    assert ((data > 0).sum(axis=-1) > 1).any()  # neighbours overlap
    peaks = data.reshape(-1, 40).argmax(axis=0)
    peak_mm = np.column_stack(np.unravel_index(peaks, mask.shape)) @ affine[:3, :3].T + affine[:3, 3]
    assert np.abs(peak_mm - memory.region_coords).max() <= 3.0 * np.sqrt(3) / 2 + 1e-9
    assert set(memory.networks) <= {"VisCent", "VisPeri", "SomMotA", "SomMotB", "DorsAttnA",
                                    "DorsAttnB", "SalVentAttnA", "SalVentAttnB", "LimbicB",
                                    "LimbicA", "ContA", "ContB", "ContC", "DefaultA",
                                    "DefaultB", "DefaultC", "TempPar"}


@pytest.mark.parametrize("kwargs, match", [
    ({"n_regions": 1}, "n_regions"),
    ({"n_regions": 10, "n_networks": 0}, "n_networks"),
    ({"n_regions": 10, "mask": np.ones((4, 4, 4), bool)}, "mask and affine"),
    ({"n_regions": 5000, "mask": np.ones((4, 4, 4), bool), "affine": np.eye(4)}, "voxels"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        simulate_labels_atlas(**kwargs)


def test_maps_path_must_be_nifti(tmp_path):
    mask, affine = _grid()
    with pytest.raises(ParameterError, match="path"):
        simulate_maps_atlas(4, mask=mask, affine=affine, path=tmp_path / "maps.npy")
