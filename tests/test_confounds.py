"""Tests of sparse_connectome.confounds against nilearn.interfaces.fmriprep.

The fMRIPrep-style derivatives are generated here (TSV + JSON sidecar + a tiny
BOLD image named the fMRIPrep way), with realistic columns: motion with
derivatives and squares, wm/csf/global signals, CompCor components described in
the sidecar, cosine drift regressors, non-steady-state outliers, framewise
displacement and standardized DVARS with ``n/a`` in the first row.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome.confounds import (
    find_confounds_file,
    load_confounds,
    load_confounds_strategy,
    read_confounds_tsv,
)
from sparse_connectome.errors import ConfoundsError, InputError, ParameterError
from sparse_connectome.signal import clean

fmriprep = pytest.importorskip("nilearn.interfaces.fmriprep")

TOL = 1e-5
STEM = "sub-07_ses-a_task-rest_run-2"
BOLD = f"{STEM}_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"


def _family(columns: dict, base: str, series: np.ndarray) -> None:
    derivative = np.r_[np.nan, np.diff(series)]
    columns[base] = series
    columns[f"{base}_derivative1"] = derivative
    columns[f"{base}_power2"] = series**2
    columns[f"{base}_derivative1_power2"] = derivative**2


def write_fmriprep_run(
    folder: Path,
    *,
    n: int = 80,
    seed: int = 0,
    n_non_steady: int = 2,
    spikes=(12, 13, 31, 50, 51, 52, 53, 60, 62, 77),
    dvars_spikes=(20, 21, 70),
    suffix: str = "timeseries",
    old_compcor: bool = False,
    aroma: bool = False,
) -> Path:
    """Write fMRIPrep-like confounds for one run; return the BOLD image path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, np.ndarray] = {}
    for base, level in (("global_signal", 600.0), ("csf", 900.0), ("white_matter", 700.0),
                        ("csf_wm", 800.0)):
        _family(columns, base, level + np.cumsum(rng.standard_normal(n)))
    fd = np.abs(rng.normal(0.12, 0.05, n))
    fd[list(spikes)] = rng.uniform(0.6, 1.5, len(spikes))
    fd[0] = np.nan
    std_dvars = np.abs(rng.normal(1.0, 0.12, n))
    std_dvars[list(dvars_spikes)] = rng.uniform(1.7, 2.5, len(dvars_spikes))
    std_dvars[0] = np.nan
    columns["std_dvars"] = std_dvars
    columns["dvars"] = std_dvars * 25.0
    columns["framewise_displacement"] = fd
    columns["rmsd"] = np.r_[np.nan, fd[1:] * 0.4]
    sidecar: dict[str, dict] = {}

    def components(prefix: str, count: int, mask: str, method: str, start: int = 0) -> None:
        variance = np.sort(rng.uniform(0.01, 0.15, count))[::-1]
        for i in range(count):
            name = f"{prefix}_{start + i:02d}"
            columns[name] = rng.standard_normal(n) * 0.05
            sidecar[name] = {
                "CumulativeVarianceExplained": float(np.cumsum(variance)[i]),
                "Mask": mask,
                "Method": method,
                "Retained": bool(i < count - 1),
                "SingularValue": float(20 * variance[i]),
                "VarianceExplained": float(variance[i]),
            }

    components("t_comp_cor", 5, "combined", "tCompCor")
    if old_compcor:  # fMRIPrep 1.4-20.1: all anatomical components are a_comp_cor
        components("a_comp_cor", 6, "combined", "aCompCor")
        components("a_comp_cor", 4, "CSF", "aCompCor", start=6)
        components("a_comp_cor", 5, "WM", "aCompCor", start=10)
    else:
        components("c_comp_cor", 4, "CSF", "aCompCor")
        components("w_comp_cor", 5, "WM", "aCompCor")
        components("a_comp_cor", 6, "combined", "aCompCor")
    for i in range(4):
        sidecar[f"dropped_{i}"] = {"Mask": "combined", "Method": "aCompCor", "Retained": False,
                                   "VarianceExplained": 0.001}
    t = np.arange(n)
    for k in range(5):
        columns[f"cosine{k:02d}"] = np.sqrt(2 / n) * np.cos(np.pi * (2 * t + 1) * (k + 1) / (2 * n))
    for k in range(n_non_steady):
        columns[f"non_steady_state_outlier{k:02d}"] = (t == k).astype(float)
    for axis in "xyz":
        _family(columns, f"trans_{axis}", np.cumsum(rng.standard_normal(n)) * 0.03)
        _family(columns, f"rot_{axis}", np.cumsum(rng.standard_normal(n)) * 0.0006)
    for i, spike in enumerate(spikes):
        columns[f"motion_outlier{i:02d}"] = (t == spike).astype(float)
    if aroma:
        for i in range(4):
            columns[f"aroma_motion_{i:02d}"] = rng.standard_normal(n)
    table = pd.DataFrame(columns)
    tsv = folder / f"{STEM}_desc-confounds_{suffix}.tsv"
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    tsv.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    bold = folder / BOLD
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, n), np.float32), np.eye(4)), bold)
    if aroma:
        aroma_bold = folder / f"{STEM}_space-MNI152NLin6Asym_desc-smoothAROMAnonaggr_bold.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, n), np.float32), np.eye(4)), aroma_bold)
    return bold


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fmriprep")


@pytest.fixture(scope="module")
def bold(run_dir):
    return write_fmriprep_run(run_dir / "new", aroma=True)


@pytest.fixture(scope="module")
def bold_old(run_dir):
    return write_fmriprep_run(run_dir / "old", seed=3, old_compcor=True, suffix="regressors")


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def assert_same(ours, reference):
    """Same columns (same order), values within TOL, same sample_mask."""
    (conf, mask), (ref_conf, ref_mask) = ours, reference
    if ref_conf is None:
        assert conf is None
    else:
        assert list(conf.columns) == list(ref_conf.columns)
        assert conf.shape == ref_conf.shape
        np.testing.assert_array_equal(conf.isna().to_numpy(), ref_conf.isna().to_numpy())
        diff = np.nanmax(np.abs(conf.to_numpy() - ref_conf.to_numpy())) if conf.size else 0.0
        assert diff <= TOL
    if ref_mask is None:
        assert mask is None
    else:
        assert mask is not None and mask.dtype.kind == "i"
        np.testing.assert_array_equal(mask, ref_mask)


CASES = [
    {},
    {"demean": False},
    *[{"strategy": ("motion",), "motion": m} for m in ("basic", "power2", "derivatives", "full")],
    *[{"strategy": ("wm_csf", "high_pass"), "wm_csf": m} for m in ("basic", "power2", "full")],
    *[{"strategy": ("global_signal",), "global_signal": m} for m in ("basic", "derivatives", "full")],
    *[
        {"strategy": ("high_pass", "compcor", "motion"), "compcor": c, "n_compcor": k}
        for c in ("anat_combined", "anat_separated", "temporal", "temporal_anat_combined",
                  "temporal_anat_separated")
        for k in ("all", 2, 20)
    ],
    *[
        {"strategy": ("motion", "scrub", "wm_csf"), "motion": "basic", "scrub": s,
         "fd_threshold": fd, "std_dvars_threshold": dv}
        for s in (0, 3, 5, 12)
        for fd, dv in ((0.5, 1.5), (0.2, 3.0), (0.9, 1.2))
    ],
    {"strategy": ("ica_aroma", "high_pass"), "ica_aroma": "basic"},
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda kw: json.dumps(kw, sort_keys=True))
def test_load_confounds_matches_nilearn(bold, bold_old, kwargs):
    for image in (bold, bold_old):
        if "ica_aroma" in kwargs.get("strategy", ()) and image == bold_old:
            # No aroma_motion_* columns in that file: both refuse.
            with pytest.raises(ValueError):
                _quiet(fmriprep.load_confounds, str(image), **kwargs)
            with pytest.raises(ConfoundsError, match="aroma_motion"):
                load_confounds(str(image), **kwargs)
            continue
        assert_same(load_confounds(str(image), **kwargs),
                    _quiet(fmriprep.load_confounds, str(image), **kwargs))


PRESETS = [
    ("simple", {}),
    ("simple", {"global_signal": "full", "motion": "basic", "demean": False}),
    ("scrubbing", {}),
    ("scrubbing", {"scrub": 0, "fd_threshold": 0.3, "wm_csf": "basic"}),
    ("compcor", {}),
    ("compcor", {"compcor": "anat_separated", "n_compcor": 2, "global_signal": "basic"}),
    ("compcor", {"compcor": "temporal_anat_combined", "motion": "derivatives"}),
]


@pytest.mark.parametrize("preset, kwargs", PRESETS)
def test_load_confounds_strategy_matches_nilearn(bold, bold_old, preset, kwargs):
    for image in (bold, bold_old):
        assert_same(load_confounds_strategy(str(image), preset, **kwargs),
                    _quiet(fmriprep.load_confounds_strategy, str(image), preset, **kwargs))


def test_ica_aroma_preset_matches_nilearn(bold):
    aroma = next(bold.parent.glob("*smoothAROMAnonaggr_bold.nii.gz"))
    assert_same(load_confounds_strategy(str(aroma), "ica_aroma"),
                _quiet(fmriprep.load_confounds_strategy, str(aroma), "ica_aroma"))
    with pytest.raises(InputError, match="smoothAROMAnonaggr"):
        load_confounds_strategy(str(bold), "ica_aroma")


def test_list_of_images(bold, bold_old):
    confounds, masks = load_confounds([bold, str(bold_old)], strategy=("motion", "scrub"))
    ref_confounds, ref_masks = _quiet(fmriprep.load_confounds, [str(bold), str(bold_old)],
                                      strategy=("motion", "scrub"))
    assert isinstance(confounds, list) and len(confounds) == 2
    for i in range(2):
        assert_same((confounds[i], masks[i]), (ref_confounds[i], ref_masks[i]))


def test_scrubbing_rules(tmp_path):
    """Ground truth: thresholds are strict, short segments are removed, and
    non-steady-state volumes count as part of the segment they start."""
    bold = write_fmriprep_run(tmp_path, n=40, n_non_steady=2, spikes=(5, 20), dvars_spikes=(33,))
    tsv = find_confounds_file(bold)
    table = read_confounds_tsv(tsv)
    table.loc[9, "framewise_displacement"] = 0.5  # equal to the threshold: kept
    table.loc[11, "std_dvars"] = 1.5
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    _, mask = load_confounds(bold, strategy=("scrub",), scrub=0)
    np.testing.assert_array_equal(mask, np.setdiff1d(np.arange(40), [0, 1, 5, 20, 33]))
    # Segment 0..4 has 5 volumes (two of them non-steady-state): kept with
    # scrub=5, removed with scrub=6; 34..39 has 6 volumes.
    _, mask = load_confounds(bold, strategy=("scrub",), scrub=5)
    np.testing.assert_array_equal(mask, np.setdiff1d(np.arange(40), [0, 1, 5, 20, 33]))
    _, mask = load_confounds(bold, strategy=("scrub",), scrub=7)
    expected = np.setdiff1d(np.arange(40), np.r_[0:6, 20, 33:40])
    np.testing.assert_array_equal(mask, expected)
    assert_same(load_confounds(bold, strategy=("scrub", "motion"), scrub=7),
                _quiet(fmriprep.load_confounds, str(bold), strategy=("scrub", "motion"), scrub=7))


def test_no_censoring_gives_none(tmp_path):
    bold = write_fmriprep_run(tmp_path, n_non_steady=0)
    confounds, mask = load_confounds(bold)
    assert mask is None
    # demean over all volumes; the first row of derivatives takes the second's value.
    raw = read_confounds_tsv(find_confounds_file(bold))
    filled = raw["trans_x_derivative1"].copy()
    filled.iloc[0] = filled.iloc[1]
    np.testing.assert_allclose(confounds["trans_x_derivative1"], filled - filled.mean())
    np.testing.assert_allclose(confounds.mean().to_numpy(), 0, atol=1e-10)


def test_read_confounds_tsv(bold, tmp_path):
    table = read_confounds_tsv(find_confounds_file(bold))
    assert np.isnan(table.loc[0, "framewise_displacement"])
    assert table["trans_x"].dtype == np.float64
    with pytest.raises(ConfoundsError, match="does not exist"):
        read_confounds_tsv(tmp_path / "missing.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(ConfoundsError, match="empty"):
        read_confounds_tsv(empty)


def test_find_confounds_file(bold, bold_old, tmp_path):
    assert find_confounds_file(bold).name == f"{STEM}_desc-confounds_timeseries.tsv"
    assert find_confounds_file(bold_old).name == f"{STEM}_desc-confounds_regressors.tsv"
    lonely = tmp_path / "sub-01_task-x_space-T1w_desc-preproc_bold.nii.gz"
    with pytest.raises(ConfoundsError, match="sub-01_task-x_desc-confounds_timeseries.tsv"):
        find_confounds_file(lonely)
    with pytest.raises(InputError, match="BIDS"):
        find_confounds_file(tmp_path / "bold.nii.gz")


def test_missing_columns_name_file_and_columns(tmp_path):
    bold = write_fmriprep_run(tmp_path)
    tsv = find_confounds_file(bold)
    read_confounds_tsv(tsv).drop(columns=["trans_y", "rot_z_derivative1", "std_dvars"]).to_csv(
        tsv, sep="\t", index=False, na_rep="n/a"
    )
    with pytest.raises(ConfoundsError) as info:
        load_confounds(bold, strategy=("motion",), motion="full")
    assert "['trans_y', 'rot_z_derivative1']" in str(info.value)
    assert tsv.name in str(info.value)
    with pytest.raises(ConfoundsError, match="std_dvars"):
        load_confounds(bold, strategy=("scrub",))
    tsv.with_suffix(".json").unlink()
    with pytest.raises(ConfoundsError, match="sidecar"):
        load_confounds(bold, strategy=("high_pass", "compcor"))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"strategy": "motion"}, "strategy"),
        ({"strategy": ("motion", "wiggle")}, "strategy"),
        ({"strategy": ("compcor",)}, "high_pass"),
        ({"motion": "most"}, "motion"),
        ({"wm_csf": 2}, "wm_csf"),
        ({"strategy": ("high_pass", "compcor"), "n_compcor": 0}, "n_compcor"),
        ({"strategy": ("scrub",), "scrub": -1}, "scrub"),
        ({"strategy": ("scrub",), "fd_threshold": "high"}, "fd_threshold"),
        ({"strategy": ("motion", "tedana")}, "tedana"),
    ],
)
def test_parameter_errors(bold, kwargs, name):
    with pytest.raises(ParameterError, match=name):
        load_confounds(bold, **kwargs)


def test_strategy_warnings(bold):
    with pytest.warns(UserWarning, match="not used by the preset"):
        confounds, _ = load_confounds_strategy(bold, "simple", scrub=3)
    assert "framewise_displacement" not in confounds.columns
    with pytest.raises(ParameterError, match="denoise_strategy"):
        load_confounds_strategy(bold, "aggressive")
    with pytest.warns(UserWarning, match="empty"):
        confounds, mask = load_confounds(bold, strategy=())
    assert confounds is None and mask is not None
    with pytest.warns(UserWarning, match="always"):
        load_confounds(bold, strategy=("motion", "non_steady_state"))


def test_raw_fmriprep_file_in_clean_points_to_load_confounds(bold):
    tsv = find_confounds_file(bold)
    signals = np.random.default_rng(0).standard_normal((80, 3))
    with pytest.raises(ConfoundsError) as info:
        clean(signals, confounds=str(tsv))
    message = str(info.value)
    assert "'global_signal_derivative1' (rows 0)" in message
    assert "columns in all" in message  # many columns: the first ones are named
    assert "load_confounds" in message
    # The loaded confounds work, and give nilearn's cleaned signals.
    # scrub=0 keeps the last volumes: with both ends censored nilearn 0.14.1's
    # clean() misaligns its output (see test_signal.py), so avoid that here.
    confounds, mask = load_confounds_strategy(bold, "scrubbing", scrub=0)
    assert mask[0] == 2 and mask[-1] == 79
    ours = clean(signals, confounds=confounds, sample_mask=mask, detrend=True,
                 low_pass=0.1, high_pass=0.01, t_r=2.0)
    from nilearn.signal import clean as nilearn_clean

    reference = _quiet(nilearn_clean, signals, confounds=confounds, sample_mask=mask,
                       detrend=True, low_pass=0.1, high_pass=0.01, t_r=2.0)
    np.testing.assert_allclose(ours, reference, atol=TOL)


def test_demo_confounds_match_nilearn(request):
    """On the demo subject's full fMRIPrep-style confounds (when available)."""
    try:
        demo = request.getfixturevalue("demo")
        image = demo.func[0]
    except (ImportError, AttributeError) as exc:  # demo not built yet
        pytest.skip(f"demo subject unavailable: {exc}")
    assert find_confounds_file(image) == Path(demo.confounds_full[0])
    for preset, kwargs in (("simple", {}), ("scrubbing", {}), ("compcor", {}),
                           ("compcor", {"compcor": "temporal_anat_separated", "n_compcor": 3})):
        assert_same(load_confounds_strategy(image, preset, **kwargs),
                    _quiet(fmriprep.load_confounds_strategy, str(image), preset, **kwargs))
