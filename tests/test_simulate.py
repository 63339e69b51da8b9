"""Tests of the simulator's kernels against theory, identities and oracles."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from scipy import ndimage

from sparse_connectome import simulate
from sparse_connectome.errors import InputError, ParameterError, ShapeMismatchError

NETWORKS = ["a"] * 5 + ["b"] * 4 + ["c"] * 6 + ["d"] * 3 + ["e"] * 2  # 20 regions


# --------------------------------------------------------------------------- #
# Ground truth
# --------------------------------------------------------------------------- #
def test_precision_is_spd_with_unit_variance_and_partial_correlations_in_range():
    prec = simulate.make_sparse_precision(20, NETWORKS, random_state=0)
    np.testing.assert_array_equal(prec, prec.T)
    assert np.linalg.eigvalsh(prec)[0] > 0
    # Scaled so that the signals have unit variance.
    np.testing.assert_allclose(np.diag(np.linalg.inv(prec)), 1.0, rtol=1e-10)
    pc = simulate.partial_correlation(prec)
    off = pc[np.triu_indices(20, 1)]
    edges = off[off != 0]
    assert edges.size > 0
    assert np.abs(edges).max() <= 0.5 + 1e-12
    # Shrinking for positive definiteness is bounded: edges stay well above noise.
    assert np.abs(edges).min() > 0.1
    assert np.linalg.cond(prec) < 100


def test_precision_min_eigenvalue_bounds_condition():
    # A dense, strong graph must be shrunk to keep the requested smallest eigenvalue.
    prec = simulate.make_sparse_precision(15, None, density_between=1.0,
                                          partial_corr_range=(0.4, 0.45),
                                          positive_fraction=1.0, min_eigenvalue=0.2,
                                          random_state=1)
    unit = np.eye(15) - simulate.partial_correlation(prec) + np.eye(15)  # I - R
    assert np.linalg.eigvalsh(unit)[0] == pytest.approx(0.2, abs=1e-9)


def test_precision_is_deterministic_and_seed_dependent():
    a = simulate.make_sparse_precision(20, NETWORKS, random_state=3)
    b = simulate.make_sparse_precision(20, NETWORKS, random_state=3)
    c = simulate.make_sparse_precision(20, NETWORKS, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a != 0, c != 0)


def test_sparsity_follows_networks():
    labels = np.asarray(NETWORKS)
    same = (labels[:, None] == labels[None, :])[np.triu_indices(20, 1)]
    within, between = [], []
    for seed in range(30):
        prec = simulate.make_sparse_precision(20, NETWORKS, density_within=0.8,
                                              density_between=0.08, random_state=seed)
        edge = prec[np.triu_indices(20, 1)] != 0
        within.append(edge[same].mean())
        between.append(edge[~same].mean())
    # Observed densities match the requested ones (binomial standard errors:
    # 30 x 32 within pairs, 30 x 158 between pairs).
    assert np.mean(within) == pytest.approx(0.8, abs=4 * np.sqrt(0.8 * 0.2 / 960))
    assert np.mean(between) == pytest.approx(0.08, abs=4 * np.sqrt(0.08 * 0.92 / 4740))


def test_without_networks_every_pair_uses_between_density():
    prec = simulate.make_sparse_precision(30, None, density_within=1.0,
                                          density_between=0.0, random_state=0)
    np.testing.assert_array_equal(prec, np.diag(np.diag(prec)))


@pytest.mark.parametrize("kwargs, error", [
    (dict(n_regions=1), ParameterError),
    (dict(n_regions=5, density_within=1.5), ParameterError),
    (dict(n_regions=5, partial_corr_range=(0.5, 0.2)), ParameterError),
    (dict(n_regions=5, min_eigenvalue=0.0), ParameterError),
    (dict(n_regions=5, networks=["a", "b"]), ShapeMismatchError),
    (dict(n_regions=5, random_state="seed"), ParameterError),
])
def test_precision_rejects_bad_parameters(kwargs, error):
    with pytest.raises(error):
        simulate.make_sparse_precision(**kwargs)


def _covariance_z_scores(signals, cov, inflation=1.0):
    """(S - Sigma) / se, with se^2 = (S_ii S_jj + S_ij^2) / n for Gaussian samples."""
    n = signals.shape[0]
    emp = signals.T @ signals / n  # the mean is known to be zero
    d = np.diag(cov)
    se = np.sqrt(inflation * (np.outer(d, d) + cov**2) / n)
    iu = np.triu_indices(cov.shape[0])
    return ((emp - cov) / se)[iu]


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_signal_covariance_matches_inverse_precision(phi):
    prec = simulate.make_sparse_precision(20, NETWORKS, random_state=5)
    cov = np.linalg.inv(prec)
    x = simulate.sample_region_signals(prec, 20000, autocorrelation=phi, random_state=6)
    # For AR(1) series sharing phi, the variance of a lag-0 cross-product mean is
    # inflated by (1 + phi^2) / (1 - phi^2) (Bartlett).
    z = _covariance_z_scores(x, cov, inflation=(1 + phi**2) / (1 - phi**2))
    assert np.abs(z).max() < 5.0
    assert 0.7 < np.mean(z**2) < 1.4
    # The test can fail: a wrong covariance (e.g. the identity) is far off.
    assert np.abs(_covariance_z_scores(x, np.eye(20))).max() > 20
    if phi:
        lag1 = np.mean(x[1:] * x[:-1]) / np.mean(x * x)
        assert lag1 == pytest.approx(phi, abs=0.02)


def test_signals_reject_non_spd_precision():
    with pytest.raises(InputError):
        simulate.sample_region_signals(-np.eye(3), 10, random_state=0)
    with pytest.raises(ParameterError):
        simulate.sample_region_signals(np.eye(3), 10, autocorrelation=1.0)


# --------------------------------------------------------------------------- #
# Space
# --------------------------------------------------------------------------- #
AFFINE = np.array([[4.0, 0, 0, -40], [0, 4.0, 0, -48], [0, 0, 4.0, -40], [0, 0, 0, 1]])
SHAPE = (21, 25, 21)


def _small_brain():
    xyz = simulate.anatomy.voxel_mm(SHAPE, AFFINE)
    r = np.sqrt(((xyz / np.array([34.0, 42.0, 32.0])) ** 2).sum(-1))
    mask = r < 1.0
    gm = np.clip(1.4 * r - 0.25, 0, 1) * mask  # grey matter towards the surface
    return mask, gm


def test_resample_to_grid_identity_and_half_shift():
    data = np.random.default_rng(0).random((6, 7, 8))
    same = simulate.resample_to_grid(data, np.eye(4), data.shape, np.eye(4), order=1)
    np.testing.assert_allclose(same, data, atol=1e-12)
    shifted = np.eye(4)
    shifted[0, 3] = 0.5  # target voxel i sits at source x = i + 0.5
    out = simulate.resample_to_grid(data, np.eye(4), (5, 7, 8), shifted, order=1)
    np.testing.assert_allclose(out, (data[:-1] + data[1:]) / 2, atol=1e-12)


def test_blob_maps_peak_width_and_mask():
    mask, _ = _small_brain()
    coords = np.array([[0.0, 0, 0], [12, -8, 4], [200, 0, 0]])  # the last is outside
    maps = simulate.make_blob_maps(coords, SHAPE, AFFINE, mask, fwhm_mm=16.0)
    assert maps.shape == (*SHAPE, 3) and maps.dtype == np.float32
    assert not maps[~mask].any()
    assert all(maps[..., r].max() > 0.99 for r in range(3))
    inv = np.linalg.inv(AFFINE)
    for r in range(2):
        ijk = np.rint(inv[:3, :3] @ coords[r] + inv[:3, 3]).astype(int)
        assert maps[tuple(ijk) + (r,)] == pytest.approx(1.0)
        # Half maximum at half the FWHM (8 mm = 2 voxels along x).
        assert maps[ijk[0] + 2, ijk[1], ijk[2], r] == pytest.approx(0.5, abs=1e-6)
    # The outside coordinate snaps to the nearest mask voxel (on the +x surface).
    peak = np.unravel_index(np.argmax(maps[..., 2]), SHAPE)
    peak_mm = AFFINE[:3, :3] @ np.array(peak) + AFFINE[:3, 3]
    in_mm = simulate.anatomy.voxel_mm(SHAPE, AFFINE)[mask]
    assert np.linalg.norm(peak_mm - coords[2]) == pytest.approx(
        np.min(np.linalg.norm(in_mm - coords[2], axis=1)))


def test_blob_maps_reject_bad_input():
    mask, _ = _small_brain()
    with pytest.raises(ShapeMismatchError):
        simulate.make_blob_maps(np.zeros((2, 2)), SHAPE, AFFINE, mask)
    with pytest.raises(InputError):
        simulate.make_blob_maps(np.zeros((1, 3)), SHAPE, AFFINE, np.zeros(SHAPE, bool))


def test_tissue_fractions_sum_to_one_in_the_brain():
    mask, gm = _small_brain()
    g, w, c = simulate.tissue_probabilities(mask, gm, AFFINE)
    np.testing.assert_allclose((g + w + c)[mask], 1.0, atol=1e-12)
    assert not (g + w + c)[~mask].any()
    assert (w >= -1e-12).all() and (c >= -1e-12).all()
    # With uniform grey matter, CSF lies at the surface and white matter deep
    # (away from the ventricles).
    g, w, c = simulate.tissue_probabilities(mask, 0.5 * mask, AFFINE)
    depth = ndimage.distance_transform_edt(mask)
    ventricles = simulate.anatomy._ventricles(simulate.anatomy.voxel_mm(SHAPE, AFFINE))
    surface, deep = mask & (depth <= 1), mask & (depth >= 3) & (ventricles < 0.01)
    assert c[surface].mean() > 0.3 > c[deep].max()
    assert w[deep].min() > 0.45
    assert c[mask & (ventricles > 0.9)].min() > 0.8


# --------------------------------------------------------------------------- #
# Nuisance time courses
# --------------------------------------------------------------------------- #
def test_framewise_displacement_by_hand():
    params = np.zeros((3, 6))
    params[1] = [0.1, -0.2, 0.0, 0.001, 0.0, -0.002]
    params[2] = params[1]
    fd = simulate.framewise_displacement(params)
    assert np.isnan(fd[0])
    assert fd[1] == pytest.approx(0.3 + 50 * 0.003)
    assert fd[2] == 0.0


def test_motion_spikes_stand_out():
    motion = simulate.make_motion(168, n_spikes=4, random_state=0)
    fd = simulate.framewise_displacement(motion.params)
    assert motion.params.shape == (168, 6) and len(motion.spikes) == 4
    assert (fd[motion.spikes] > 0.5).all()
    quiet = np.setdiff1d(np.arange(1, 168), np.r_[motion.spikes, motion.spikes + 1])
    assert np.median(fd[quiet]) < 0.3
    assert (fd[quiet] > 0.5).sum() <= 3


def test_motion_rejects_too_many_spikes():
    with pytest.raises(ParameterError, match="n_spikes"):
        simulate.make_motion(40, n_spikes=10)
    assert simulate.make_motion(40, n_spikes=0, random_state=0).spikes.size == 0


def test_cosine_basis_is_dct_ii():
    basis = simulate.cosine_drift_basis(168, 2.0)
    assert basis.shape == (168, 4)  # floor(2 * 168 * 2 / 128) - 1
    dct = scipy.fft.dct(np.eye(168), type=2, norm="ortho", axis=0)  # rows: DCT-II basis
    np.testing.assert_allclose(basis, dct[1:5].T, atol=1e-12)


# --------------------------------------------------------------------------- #
# Image and confounds on a small brain
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def small_subject():
    mask, gm = _small_brain()
    coords = np.array([[-16.0, 0, 8], [16, 0, 8], [0, -24, 0], [0, 24, 0], [0, 0, -16]])
    return simulate.simulate_subject(coords, mask, gm, AFFINE, networks=list("aabbc"),
                                     n_samples=120, fwhm_mm=16.0,
                                     bold_kwargs={"return_components": True},
                                     random_state=11)


def test_components_add_up_to_the_image(small_subject):
    sim = small_subject.simulation
    total = sim.baseline[sim.brain][:, None] + sum(sim.components.values()).T
    np.testing.assert_allclose(small_subject.bold[sim.brain], total, rtol=1e-6)
    assert not small_subject.bold[~sim.brain].any()


def test_same_seed_same_subject():
    mask, gm = _small_brain()
    coords = np.array([[-16.0, 0, 8], [16, 0, 8]])
    a = simulate.simulate_subject(coords, mask, gm, AFFINE, n_samples=40, random_state=2)
    b = simulate.simulate_subject(coords, mask, gm, AFFINE, n_samples=40, random_state=2)
    np.testing.assert_array_equal(a.bold, b.bold)
    assert a.confounds.equals(b.confounds)


def _r2(y, x):
    x = np.column_stack([np.ones(len(x)), x])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    yc = y - y.mean(axis=0)
    return 1 - (resid**2).sum(axis=0) / (yc**2).sum(axis=0)


def test_motion_really_contaminates_voxels(small_subject):
    sim = small_subject.simulation
    y = small_subject.bold[sim.brain].T.astype(float) - sim.components["neural"]
    # Voxels where motion matters most (steep image gradient).
    strong = np.argsort(np.abs(sim.motion_loadings).sum(axis=0))[-200:]
    motion = small_subject.motion
    real = _r2(y[:, strong], motion).mean()
    shuffled = _r2(y[:, strong], motion[np.random.default_rng(0).permutation(120)]).mean()
    assert real > 0.2
    assert real > 3 * shuffled


def test_confound_identities(small_subject):
    conf = small_subject.confounds
    bold = small_subject.bold.astype(float)
    gm, wm, csf = small_subject.tissues
    brain = small_subject.mask
    np.testing.assert_allclose(conf["global_signal"], bold[brain].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(conf["csf"], bold[brain & (csf > 0.5)].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(conf["white_matter"], bold[brain & (wm > 0.8)].mean(axis=0),
                               rtol=1e-6)
    np.testing.assert_allclose(conf["trans_x_derivative1"][1:], np.diff(conf["trans_x"]))
    np.testing.assert_allclose(conf["rot_z_power2"], conf["rot_z"] ** 2)
    # CompCor columns: orthonormal and orthogonal to the constant and the cosines.
    acc = conf.filter(like="a_comp_cor_").to_numpy()
    cos = conf.filter(like="cosine").to_numpy()
    np.testing.assert_allclose(acc.T @ acc, np.eye(acc.shape[1]), atol=1e-8)
    np.testing.assert_allclose(acc.sum(axis=0), 0, atol=1e-8)
    np.testing.assert_allclose(cos.T @ acc, 0, atol=1e-8)


def test_compcor_matches_svd_oracle(small_subject):
    conf = small_subject.confounds
    _, wm, csf = small_subject.tissues
    brain = small_subject.mask
    data = small_subject.bold[brain & ((csf > 0.5) | (wm > 0.8))].T.astype(float)
    design = np.column_stack([np.ones(120), simulate.cosine_drift_basis(120, 2.0)])
    resid = data - design @ np.linalg.lstsq(design, data, rcond=None)[0]
    resid /= resid.std(axis=0)
    u, s, _ = np.linalg.svd(resid, full_matrices=False)
    acc = conf.filter(like="a_comp_cor_").to_numpy()
    # Same components up to sign.
    np.testing.assert_allclose(np.abs(np.sum(acc * u[:, :acc.shape[1]], axis=0)), 1.0,
                               atol=1e-6)


def test_std_dvars_is_one_for_white_noise():
    data = 1000 + 10 * np.random.default_rng(0).standard_normal((300, 5000))
    dvars, std = simulate.confounds._dvars(data)
    assert np.isnan(dvars[0]) and np.isnan(std[0])
    assert np.median(std[1:]) == pytest.approx(1.0, abs=0.03)
    # DVARS of white noise with sd 10 (scaled to median 1000): sqrt(2) * 10.
    assert np.median(dvars[1:]) == pytest.approx(np.sqrt(2) * 10, rel=0.03)


def test_nan_only_where_fmriprep_writes_na(small_subject):
    conf = small_subject.confounds
    first_row_nan = {c for c in conf.columns if np.isnan(conf[c].iloc[0])}
    expected = {c for c in conf.columns if "derivative1" in c} | {
        "framewise_displacement", "dvars", "std_dvars"}
    assert first_row_nan == expected
    assert np.isfinite(conf.iloc[1:].to_numpy()).all()
