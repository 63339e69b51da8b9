"""Tests of the demo cohort: layout, determinism, reuse, ground truth, confounds, errors."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome import simulate
from sparse_connectome.confounds import load_confounds_strategy
from sparse_connectome.datasets import load_demo_cohort
from sparse_connectome.datasets._msdl import msdl_facts, read_msdl_labels_csv
from sparse_connectome.errors import ParameterError

N = 3
SHAPE = (50, 59, 50)
AFFINE = np.array([[4.0, 0, 0, -96], [0, 4, 0, -132], [0, 0, 4, -78], [0, 0, 0, 1]])
SPACE = "space-MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cohort_data")


@pytest.fixture(scope="module")
def cohort(cohort_dir):
    return load_demo_cohort(n_subjects=N, data_dir=cohort_dir, random_state=0)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _offdiag_support(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(matrix.shape[0], 1)] != 0


# --------------------------------------------------------------------------- #
# Layout and names
# --------------------------------------------------------------------------- #
def test_bunch_fields(cohort, cohort_dir):
    for key in ("root", "subjects", "func", "confounds", "maps", "labels", "region_coords",
                "networks", "true_precisions", "group_precision", "t_r", "description"):
        assert key in cohort and getattr(cohort, key) is cohort[key]
    assert cohort.subjects == ["01", "02", "03"]
    assert Path(cohort.root) == Path(cohort_dir) / "demo_cohort_v1_n3_seed0"
    assert cohort.t_r == 2.0
    facts = msdl_facts()
    assert cohort.labels == facts.labels and cohort.networks == facts.networks
    np.testing.assert_array_equal(cohort.region_coords, facts.region_coords)
    assert cohort.true_precisions.shape == (N, 39, 39)
    assert cohort.group_precision.shape == (39, 39)
    assert cohort.true_region_signals.shape == (N, 168, 39)
    assert "group" in cohort.description and "random_state=0" in cohort.description
    assert all(isinstance(p, str) for p in [cohort.maps, *cohort.func, *cohort.confounds,
                                            *cohort.masks])


def test_fmriprep_layout_and_sidecars(cohort):
    root = Path(cohort.root)
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"]
    assert description["BIDSVersion"]
    for label, func, confounds, mask in zip(cohort.subjects, cohort.func, cohort.confounds,
                                            cohort.masks, strict=True):
        func_dir = root / f"sub-{label}" / "func"
        ent = f"sub-{label}_task-rest"
        assert Path(func) == func_dir / f"{ent}_{SPACE}_desc-preproc_bold.nii.gz"
        assert Path(mask) == func_dir / f"{ent}_{SPACE}_desc-brain_mask.nii.gz"
        assert Path(confounds) == func_dir / f"{ent}_desc-confounds_timeseries.tsv"
        sidecar = json.loads(Path(func.replace(".nii.gz", ".json")).read_text())
        assert sidecar["RepetitionTime"] == 2.0 and sidecar["TaskName"] == "rest"
        assert "SkullStripped" in sidecar
        conf_json = json.loads(Path(confounds).with_suffix(".json").read_text())
        assert conf_json["a_comp_cor_00"]["Method"] == "aCompCor"
        assert (root / "ground_truth" / f"sub-{label}_precision.npy").is_file()
    assert (root / "ground_truth" / "group_precision.npy").is_file()
    assert read_msdl_labels_csv(root / "atlas" / "msdl_demo_labels.csv").labels == cohort.labels
    assert Path(cohort.maps).parent == root / "atlas"


def test_images_headers_and_masks(cohort):
    maps = nib.load(cohort.maps)
    assert maps.shape == (*SHAPE, 39)
    for func, mask_path in zip(cohort.func, cohort.masks, strict=True):
        img = nib.load(func)
        assert img.shape == (*SHAPE, 168) and img.get_data_dtype() == np.float32
        np.testing.assert_array_equal(img.affine, AFFINE)
        assert img.header.get_zooms() == (4.0, 4.0, 4.0, 2.0)
        mask = np.asarray(nib.load(mask_path).dataobj).astype(bool)
        bold = np.asarray(img.dataobj)
        assert not bold[~mask].any() and (bold[mask] > 0).all()


def test_subjects_differ(cohort):
    a, b = (np.asarray(nib.load(f).dataobj[..., :5]) for f in cohort.func[:2])
    assert not np.array_equal(a, b)
    c0, c1 = (pd.read_csv(c, sep="\t", na_values="n/a") for c in cohort.confounds[:2])
    assert not np.allclose(c0["trans_x"], c1["trans_x"])


# --------------------------------------------------------------------------- #
# Determinism and reuse
# --------------------------------------------------------------------------- #
def test_same_arguments_same_bytes(cohort, tmp_path):
    again = load_demo_cohort(n_subjects=N, data_dir=tmp_path, random_state=0)
    ours, reference = _tree_bytes(Path(again.root)), _tree_bytes(Path(cohort.root))
    assert ours.keys() == reference.keys()
    for name in ours:
        assert ours[name] == reference[name], name
    # No temporary folder is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["demo_cohort_v1_n3_seed0"]


def test_second_call_reuses_the_files(cohort, cohort_dir):
    stamps = [os.stat(f).st_mtime_ns for f in cohort.func]
    start = time.perf_counter()
    again = load_demo_cohort(n_subjects=N, data_dir=cohort_dir, random_state=0)
    assert time.perf_counter() - start < 2.0
    assert again.func == cohort.func and again.root == cohort.root
    assert [os.stat(f).st_mtime_ns for f in cohort.func] == stamps
    np.testing.assert_array_equal(again.true_precisions, cohort.true_precisions)


def test_environment_variable_sets_the_data_folder(cohort, cohort_dir, monkeypatch):
    monkeypatch.setenv("SPARSE_CONNECTOME_DATA", str(cohort_dir))
    assert load_demo_cohort(n_subjects=N).func == cohort.func


def test_subjects_do_not_depend_on_the_cohort_size_and_damage_is_repaired(cohort, tmp_path):
    one = load_demo_cohort(n_subjects=1, data_dir=tmp_path, random_state=0)
    assert Path(one.root).name == "demo_cohort_v1_n1_seed0" and one.root != cohort.root
    assert one.subjects == ["01"]
    assert Path(one.func[0]).read_bytes() == Path(cohort.func[0]).read_bytes()
    np.testing.assert_array_equal(one.true_precisions[0], cohort.true_precisions[0])
    np.testing.assert_array_equal(one.group_precision, cohort.group_precision)
    # A damaged file (size differs from the manifest) is never trusted: rewritten.
    original = Path(one.confounds[0]).read_bytes()
    Path(one.confounds[0]).write_bytes(original[:100])
    repaired = load_demo_cohort(n_subjects=1, data_dir=tmp_path, random_state=0)
    assert Path(repaired.confounds[0]).read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_cohort_v1_n1_seed0"]


# --------------------------------------------------------------------------- #
# Ground truth: a shared group graph with individual deviations
# --------------------------------------------------------------------------- #
def test_precisions_are_spd_with_unit_variance(cohort):
    for prec in [cohort.group_precision, *cohort.true_precisions]:
        np.testing.assert_allclose(prec, prec.T)
        assert np.linalg.eigvalsh(prec)[0] > 0
        np.testing.assert_allclose(np.diag(np.linalg.inv(prec)), 1.0, rtol=1e-10)


def test_group_support_is_shared_with_individual_deviations(cohort):
    group = _offdiag_support(cohort.group_precision)
    group_pc = simulate.partial_correlation(cohort.group_precision)[np.triu_indices(39, 1)]
    assert 0.04 < group.mean() < 0.25
    supports = []
    for prec in cohort.true_precisions:
        sub = _offdiag_support(prec)
        supports.append(sub)
        removed, added = group & ~sub, sub & ~group
        # Most edges are shared; a few are removed and as many added.
        assert 1 <= removed.sum() == added.sum() <= 0.1 * group.sum()
        assert (group & sub).sum() >= 0.9 * group.sum()
        # Shared edges keep their sign but not their weight.
        pc = simulate.partial_correlation(prec)[np.triu_indices(39, 1)]
        shared = group & sub
        assert (np.sign(pc[shared]) == np.sign(group_pc[shared])).all()
        assert np.abs(pc[shared] - group_pc[shared]).max() > 0.03
    # Each subject's deviations are its own.
    assert not np.array_equal(supports[0], supports[1])
    assert not np.allclose(cohort.true_precisions[0], cohort.true_precisions[1])


def test_stored_truth_follows_the_documented_model(cohort):
    model = simulate.make_cohort_precisions(N, 39, cohort.networks, weight_jitter=0.3,
                                            edge_turnover=0.05, random_state=0)
    np.testing.assert_array_equal(model.group_precision, cohort.group_precision)
    np.testing.assert_array_equal(model.precisions, cohort.true_precisions)
    smaller = simulate.make_cohort_precisions(2, 39, cohort.networks, random_state=0)
    np.testing.assert_array_equal(smaller.precisions, model.precisions[:2])


@pytest.mark.parametrize("subject", range(N))
def test_region_signals_match_each_subjects_inverse_precision(cohort, subject):
    x = cohort.true_region_signals[subject]
    cov = np.linalg.inv(cohort.true_precisions[subject])
    n = x.shape[0]
    emp = x.T @ x / n
    d = np.diag(cov)
    se = np.sqrt((np.outer(d, d) + cov**2) / n)  # Gaussian, known zero mean
    z = ((emp - cov) / se)[np.triu_indices(39)]
    assert np.abs(z).max() < 5.0
    assert 0.7 < np.mean(z**2) < 1.4
    # ... and not with another subject's: the individual truth is what was sampled.
    other = np.linalg.inv(cohort.true_precisions[(subject + 1) % N])
    z_other = ((emp - other) / np.sqrt((np.outer(d, d) + other**2) / n))[np.triu_indices(39)]
    assert np.mean(z_other**2) > np.mean(z**2)


def test_region_signals_are_in_the_image(cohort):
    maps = np.asarray(nib.load(cohort.maps).dataobj)
    mask = np.asarray(nib.load(cohort.masks[0]).dataobj).astype(bool)
    bold = np.asarray(nib.load(cohort.func[0]).dataobj)[mask].astype(float)
    raw = np.linalg.lstsq(maps[mask].astype(float), bold, rcond=None)[0].T
    conf = pd.read_csv(cohort.confounds[0], sep="\t", na_values="n/a")
    cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf",
            "white_matter"] + [f"a_comp_cor_{i:02d}" for i in range(6)]
    x = np.column_stack([np.ones(168), conf[cols].to_numpy()])
    cleaned = raw - x @ np.linalg.lstsq(x, raw, rcond=None)[0]
    truth = cohort.true_region_signals[0]
    a = (cleaned - cleaned.mean(0)) / cleaned.std(0)
    b = (truth - truth.mean(0)) / truth.std(0)
    assert np.median((a * b).mean(0)) > 0.8


# --------------------------------------------------------------------------- #
# Confounds
# --------------------------------------------------------------------------- #
def test_our_confounds_loader_reads_every_subject(cohort):
    for func in cohort.func:
        confounds, sample_mask = load_confounds_strategy(func, "simple")
        assert confounds.shape[0] == 168
        assert {"trans_x", "rot_z_derivative1", "csf", "white_matter"} <= set(confounds.columns)
        assert np.isfinite(confounds.to_numpy()).all()
        assert sample_mask is None


def test_nilearn_reads_a_subjects_files_as_fmriprep_output(cohort):
    from nilearn.interfaces.fmriprep import load_confounds_strategy as nilearn_strategy

    ours, _ = load_confounds_strategy(cohort.func[1], "simple")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, sample_mask = nilearn_strategy(cohort.func[1], "simple")
        scrubbed, kept = nilearn_strategy(cohort.func[1], "scrubbing")
    assert set(theirs.columns) == set(ours.columns)
    np.testing.assert_allclose(theirs[ours.columns].to_numpy(), ours.to_numpy(), atol=1e-6)
    assert sample_mask is None
    assert kept is not None and 100 < len(kept) < 168
    assert scrubbed.shape[0] == 168


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("bad", [0, -1, 1001, 2.0, 2.5, "3", True, None])
def test_bad_n_subjects_is_refused(tmp_path, bad):
    with pytest.raises(ParameterError, match="n_subjects"):
        load_demo_cohort(n_subjects=bad, data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, None])
def test_bad_random_state_is_refused(tmp_path, bad):
    with pytest.raises(ParameterError, match="random_state"):
        load_demo_cohort(n_subjects=1, data_dir=tmp_path, random_state=bad)
    assert list(tmp_path.iterdir()) == []


def test_individual_precision_parameters_are_checked():
    group = simulate.make_sparse_precision(6, density_between=0.5, random_state=0)
    for kwargs in ({"weight_jitter": 1.0}, {"edge_turnover": -0.1},
                   {"partial_corr_range": (0.5, 0.2)}):
        with pytest.raises(ParameterError):
            simulate.make_individual_precision(group, **kwargs)
    with pytest.raises(ParameterError, match="n_subjects"):
        simulate.make_cohort_precisions(0, 6)


def test_labels_are_zero_padded_to_the_cohort_size():
    from sparse_connectome.datasets.cohort import _labels

    assert _labels(2) == ["01", "02"]
    assert _labels(100)[0] == "001" and _labels(100)[-1] == "100"
