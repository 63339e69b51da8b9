"""Tests of the embedded demo subject: layout, headers, ground truth, confounds, cache."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome.datasets import demo as demo_module
from sparse_connectome.datasets._msdl import msdl_facts, read_msdl_labels_csv
from sparse_connectome.errors import AtlasError, ParameterError

SHAPE = (50, 59, 50)
AFFINE = np.array([[4.0, 0, 0, -96], [0, 4, 0, -132], [0, 0, 4, -78], [0, 0, 0, 1]])
REDUCED = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
           "framewise_displacement"] + [f"a_comp_cor_{i:02d}" for i in range(6)] + [
           "csf", "white_matter"]
FUNC = "sub-demo_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"


def _read_tsv(path):
    return pd.read_csv(path, sep="\t", na_values="n/a", keep_default_na=False)


@pytest.fixture(scope="module")
def bold(demo):
    return np.asarray(nib.load(demo.func[0]).dataobj)


@pytest.fixture(scope="module")
def full_confounds(demo):
    return _read_tsv(demo.confounds_full[0])


# --------------------------------------------------------------------------- #
# MSDL facts
# --------------------------------------------------------------------------- #
def test_msdl_facts_are_the_39_published_regions():
    facts = msdl_facts()
    assert len(facts.labels) == len(facts.networks) == 39
    assert facts.region_coords.shape == (39, 3)
    assert facts.labels[0] == "L Aud" and facts.networks[-1] == "Ant IPS"
    assert facts.labels.index("Cereb") == 32
    assert all(s == s.strip() and s for s in facts.labels + facts.networks)
    # Inside the MNI bounding box.
    assert np.all(np.abs(facts.region_coords) < 110)


def test_msdl_reader_strips_distributed_padding(tmp_path):
    path = tmp_path / "msdl_rois_labels.csv"
    path.write_text("x,y,z,name,net name\n-53.28,-8.88,32.36, Sup Front S,    Language\n"
                    "1,2,3,R Aud,Aud\n")
    facts = read_msdl_labels_csv(path)
    assert facts.labels == ["Sup Front S", "R Aud"]
    assert facts.networks == ["Language", "Aud"]
    np.testing.assert_array_equal(facts.region_coords, [[-53.28, -8.88, 32.36], [1, 2, 3]])


@pytest.mark.parametrize("text", ["", "x,y,name\n1,2,a\n", "x,y,z,name,net name\n",
                                  "x,y,z,name,net name\n1,two,3,a,b\n"])
def test_msdl_reader_rejects_malformed_files(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AtlasError, match="bad.csv"):
        read_msdl_labels_csv(path)
    with pytest.raises(AtlasError):
        read_msdl_labels_csv(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- #
# Layout, shapes and headers
# --------------------------------------------------------------------------- #
def test_bunch_fields_and_layout(demo, demo_dir):
    for key in ("maps", "labels", "networks", "region_coords", "func", "confounds",
                "confounds_full", "mask", "t_r", "true_precision", "description"):
        assert key in demo and getattr(demo, key) is demo[key]
    assert demo.t_r == 2.0
    facts = msdl_facts()
    assert demo.labels == facts.labels and demo.networks == facts.networks
    np.testing.assert_array_equal(demo.region_coords, facts.region_coords)
    folder = Path(demo_dir) / "demo_v1_seed0"
    func_dir = folder / "sub-demo" / "func"
    assert Path(demo.func[0]) == func_dir / FUNC
    assert Path(demo.mask) == func_dir / FUNC.replace("desc-preproc_bold", "desc-brain_mask")
    confounds_name = "sub-demo_task-rest_desc-confounds_timeseries.tsv"
    assert Path(demo.confounds_full[0]) == func_dir / confounds_name
    assert Path(demo.confounds_full[0]).with_suffix(".json").is_file()
    assert Path(demo.confounds[0]).parent == func_dir
    assert all(isinstance(p, str) for p in [demo.maps, demo.mask, *demo.func, *demo.confounds])
    # The labels file beside the maps reads back as the atlas facts.
    assert read_msdl_labels_csv(demo.labels_file).labels == demo.labels


def test_bold_header_and_shape(demo, bold):
    img = nib.load(demo.func[0])
    assert img.shape == (*SHAPE, 168)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(img.affine, AFFINE)
    assert img.header.get_zooms() == (4.0, 4.0, 4.0, 2.0)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert bold.dtype == np.float32


def test_bold_is_zero_outside_the_brain_with_realistic_values(demo, bold):
    mask_img = nib.load(demo.mask)
    mask = np.asarray(mask_img.dataobj)
    np.testing.assert_array_equal(mask_img.affine, AFFINE)
    assert mask.shape == SHAPE and set(np.unique(mask)) == {0, 1}
    mask = mask.astype(bool)
    assert 20000 < mask.sum() < 40000  # a 4 mm brain
    assert not bold[~mask].any()
    inside = bold[mask].astype(float)
    assert (inside > 0).all()
    mean = inside.mean(axis=1)
    assert 300 < np.median(mean) < 2000
    tsnr = mean / inside.std(axis=1)
    assert 30 < np.median(tsnr) < 150


def test_maps_are_smooth_blobs_at_the_msdl_coordinates(demo):
    img = nib.load(demo.maps)
    maps = np.asarray(img.dataobj)
    assert maps.shape == (*SHAPE, 39) and maps.dtype == np.float32
    np.testing.assert_array_equal(img.affine, AFFINE)
    mask = np.asarray(nib.load(demo.mask).dataobj).astype(bool)
    assert not maps[~mask].any()
    assert ((maps >= 0) & (maps <= 1)).all()
    inv = np.linalg.inv(AFFINE)
    for r, coord in enumerate(demo.region_coords):
        assert maps[..., r].max() > 0.8  # the centre may fall between voxels
        peak = np.array(np.unravel_index(np.argmax(maps[..., r]), SHAPE))
        ijk = inv[:3, :3] @ coord + inv[:3, 3]
        # The peak is at the coordinate unless it had to move into the brain.
        assert np.linalg.norm(peak - ijk) < 2.5, demo.labels[r]


# --------------------------------------------------------------------------- #
# Ground truth
# --------------------------------------------------------------------------- #
def test_true_precision_is_sparse_spd_and_follows_networks(demo):
    prec = demo.true_precision
    assert prec.shape == (39, 39)
    np.testing.assert_allclose(prec, prec.T)
    assert np.linalg.eigvalsh(prec)[0] > 0
    iu = np.triu_indices(39, 1)
    edges = prec[iu] != 0
    assert 0.04 < edges.mean() < 0.25  # sparse, but not empty
    nets = np.asarray(demo.networks)
    same = (nets[:, None] == nets[None, :])[iu]
    assert edges[same].mean() > 3 * edges[~same].mean()
    pc = demo.true_partial_correlation[iu][edges]
    assert 0.1 < np.abs(pc).min() and np.abs(pc).max() <= 0.5


def test_region_signals_match_inverse_precision_within_sampling_error(demo):
    x = demo.true_region_signals
    assert x.shape == (168, 39)
    cov = np.linalg.inv(demo.true_precision)
    n = x.shape[0]
    emp = x.T @ x / n
    d = np.diag(cov)
    se = np.sqrt((np.outer(d, d) + cov**2) / n)  # Gaussian, known zero mean
    z = ((emp - cov) / se)[np.triu_indices(39)]
    assert np.abs(z).max() < 5.0
    assert 0.7 < np.mean(z**2) < 1.4


def _extract(bold, maps, mask):
    """Least-squares region signals, as a maps masker computes them."""
    m = maps[mask].astype(float)
    return np.linalg.lstsq(m, bold[mask].astype(float), rcond=None)[0].T


def _residualise(y, x):
    x = np.column_stack([np.ones(len(x)), x])
    return y - x @ np.linalg.lstsq(x, y, rcond=None)[0]


def _corr_columns(a, b):
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return (a * b).mean(0)


def test_ground_truth_is_in_the_image_and_confounds_matter(demo, bold):
    maps = np.asarray(nib.load(demo.maps).dataobj)
    mask = np.asarray(nib.load(demo.mask).dataobj).astype(bool)
    raw = _extract(bold, maps, mask)
    reduced = _read_tsv(demo.confounds[0]).to_numpy()
    cleaned = _residualise(raw, reduced)
    truth = demo.true_region_signals
    r_raw = np.median(_corr_columns(raw, truth))
    r_clean = np.median(_corr_columns(cleaned, truth))
    assert r_clean > 0.8
    assert r_clean > r_raw + 0.2  # the nuisance is real and the confounds remove it


# --------------------------------------------------------------------------- #
# Confounds
# --------------------------------------------------------------------------- #
def test_reduced_confounds_are_the_seed_columns_and_finite(demo, full_confounds):
    red = _read_tsv(demo.confounds[0])
    assert list(red.columns) == REDUCED
    assert red.shape == (168, 15)
    assert np.isfinite(red.to_numpy()).all()
    assert red["framewise_displacement"].iloc[0] == 0.0
    pd.testing.assert_frame_equal(red.iloc[1:], full_confounds[REDUCED].iloc[1:])


def test_full_confounds_columns_and_na_placement(demo, full_confounds):
    conf = full_confounds
    assert conf.shape[0] == 168
    needed = {"global_signal", "csf", "white_matter", "framewise_displacement",
              "std_dvars", "dvars"}
    for base in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                 "csf", "white_matter", "global_signal"):
        needed |= {base, f"{base}_derivative1", f"{base}_power2",
                   f"{base}_derivative1_power2"}
    assert needed <= set(conf.columns)
    assert sum(c.startswith("a_comp_cor_") for c in conf.columns) >= 6
    assert sum(c.startswith("t_comp_cor_") for c in conf.columns) >= 1
    assert [c for c in conf.columns if c.startswith("cosine")] == [
        "cosine00", "cosine01", "cosine02", "cosine03"]
    na_first = {c for c in conf.columns if np.isnan(conf[c].iloc[0])}
    assert na_first == {c for c in conf.columns if "derivative1" in c} | {
        "framewise_displacement", "dvars", "std_dvars"}
    assert np.isfinite(conf.iloc[1:].to_numpy()).all()
    text = Path(demo.confounds_full[0]).read_text().splitlines()
    assert "n/a" in text[1].split("\t") and "n/a" not in "\t".join(text[2:])
    sidecar = json.loads(Path(demo.confounds_full[0]).with_suffix(".json").read_text())
    for i in range(6):
        entry = sidecar[f"a_comp_cor_{i:02d}"]
        assert entry["Method"] == "aCompCor" and entry["Mask"] == "combined"
        assert 0 < entry["VarianceExplained"] <= entry["CumulativeVarianceExplained"] <= 1


def test_motion_spikes_flag_a_handful_of_volumes(demo, full_confounds):
    fd = full_confounds["framewise_displacement"].to_numpy()
    assert (fd[demo.motion_spikes] > 0.5).all()
    flagged = (np.nan_to_num(fd) > 0.5) | (np.nan_to_num(full_confounds["std_dvars"]) > 1.5)
    assert 3 <= flagged.sum() <= 20


def test_nilearn_reads_the_full_confounds_as_fmriprep_output(demo, full_confounds):
    from nilearn.interfaces.fmriprep import load_confounds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conf, sample_mask = load_confounds(demo.func[0], strategy=("motion", "wm_csf", "scrub"),
                                           motion="basic", wm_csf="basic", scrub=5,
                                           fd_threshold=0.5, std_dvars_threshold=1.5)
    assert set(conf.columns) == set(REDUCED[:6]) | {"csf", "white_matter"}
    # nilearn demeans (over the kept volumes); up to that constant, the values are ours.
    for col in conf.columns:
        diff = conf[col].to_numpy() - full_confounds[col].to_numpy()
        np.testing.assert_allclose(diff, diff[0], atol=1e-6 * np.abs(full_confounds[col]).max())
    assert sample_mask is not None
    dropped = np.setdiff1d(np.arange(168), sample_mask)
    assert set(demo.motion_spikes) <= set(dropped)
    assert 140 <= len(sample_mask) < 168


def test_confounds_really_contaminate_the_voxels(demo, bold, full_confounds):
    mask = np.asarray(nib.load(demo.mask).dataobj).astype(bool)
    y = bold[mask].T.astype(float)
    # Keep voxels where the image is steep (motion acts through the gradient).
    y = y[:, np.argsort(y.std(axis=0))[-3000:]]
    rng = np.random.default_rng(0)

    def r2(x):
        res = _residualise(y, x)
        yc = y - y.mean(0)
        return np.mean(1 - (res**2).sum(0) / (yc**2).sum(0))

    for cols in (["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"],
                 ["csf", "white_matter"]):
        x = full_confounds[cols].to_numpy()
        real, shuffled = r2(x), r2(x[rng.permutation(168)])
        assert real > 0.1 and real > 3 * shuffled, cols


def test_graphical_lasso_recovers_the_truth(demo):
    """Oracle pipeline (nilearn masker + scikit-learn GraphicalLassoCV) as in the seed."""
    from nilearn.maskers import NiftiMapsMasker
    from sklearn.covariance import GraphicalLassoCV

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = NiftiMapsMasker(demo.maps, standardize="zscore_sample",
                             standardize_confounds=True).fit_transform(
            demo.func[0], confounds=demo.confounds[0])
        est = GraphicalLassoCV().fit(ts).precision_
    iu = np.triu_indices(39, 1)
    true, found = demo.true_precision[iu] != 0, np.abs(est[iu]) > 1e-8
    f1 = 2 * (true & found).sum() / (true.sum() + found.sum())
    assert f1 > 0.5


# --------------------------------------------------------------------------- #
# Cache, determinism, atomicity
# --------------------------------------------------------------------------- #
def test_second_call_reuses_the_files(demo, demo_dir):
    stamp = os.stat(demo.func[0]).st_mtime_ns
    again = demo_module.load_demo(data_dir=demo_dir, random_state=0)
    assert again.func == demo.func and again.maps == demo.maps
    assert os.stat(demo.func[0]).st_mtime_ns == stamp
    np.testing.assert_array_equal(again.true_precision, demo.true_precision)


def test_environment_variable_sets_the_data_folder(demo, demo_dir, monkeypatch):
    monkeypatch.setenv("SPARSE_CONNECTOME_DATA", str(demo_dir))
    assert demo_module.load_demo().func == demo.func


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_partial_folders_are_never_trusted(demo, demo_dir, tmp_path):
    # A leftover temporary folder and a half-written final folder (no manifest).
    leftover = tmp_path / ".demo_v1_seed0.part-abc123"
    (leftover / "sub-demo" / "func").mkdir(parents=True)
    (leftover / "sub-demo" / "func" / FUNC).write_bytes(b"junk")
    half = tmp_path / "demo_v1_seed0" / "sub-demo" / "func"
    half.mkdir(parents=True)
    (half / FUNC).write_bytes(b"truncated")
    fresh = demo_module.load_demo(data_dir=tmp_path, random_state=0)
    assert Path(fresh.func[0]).read_bytes() != b"truncated"
    ours, reference = _tree_bytes(tmp_path / "demo_v1_seed0"), _tree_bytes(
        Path(demo_dir) / "demo_v1_seed0")
    assert ours.keys() == reference.keys()
    for name in ours:
        assert ours[name] == reference[name], name
    # Nothing else was left behind in the data folder except the old leftover.
    assert sorted(p.name for p in tmp_path.iterdir()) == [leftover.name, "demo_v1_seed0"]


def test_bad_seed_is_refused(tmp_path):
    for bad in (-1, 1.5, "0", True, None):
        with pytest.raises(ParameterError):
            demo_module.load_demo(data_dir=tmp_path, random_state=bad)
