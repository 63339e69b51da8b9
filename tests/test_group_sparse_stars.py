"""Group StARS: the penalty of the group sparse model chosen by stability.

Checked against identities (the final fit is ``group_sparse_covariance`` at
``alpha_``; the edge stabilities are those of cold fits of the recorded
subsamples), the selection rule read off the recorded path, and a known shared
support (F1 at least the cross-validated model's).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sparse_connectome.connectome import (
    GroupSparseCovarianceCV,
    GroupSparseCovarianceStARS,
    group_sparse_covariance,
    group_sparse_stars,
    support_recovery,
)
from sparse_connectome.errors import DataWarning, InputError, ParameterError
from sparse_connectome.simulate import make_sparse_precision, sample_region_signals


def _problem(seed: int, n: int = 200, K: int = 4, p: int = 15):
    precision = make_sparse_precision(p, random_state=seed)
    subjects = [sample_region_signals(precision, n, random_state=100 * seed + k)
                for k in range(K)]
    return precision, subjects


@pytest.fixture(scope="module")
def fitted():
    precision, subjects = _problem(1)
    return precision, subjects, GroupSparseCovarianceStARS(random_state=0).fit(subjects)


def test_same_seed_same_result_other_seed_other_subsamples(fitted):
    _, subjects, est = fitted
    again = group_sparse_stars(subjects, random_state=0)
    assert again.alpha == est.alpha_
    np.testing.assert_array_equal(again.precisions, est.precisions_)
    np.testing.assert_array_equal(again.edge_stability, est.edge_stability_)
    np.testing.assert_array_equal(again.instability, est.instability_)
    other = group_sparse_stars(subjects, random_state=1)
    assert not np.array_equal(other.subsamples[0], est.subsamples_[0])


def test_subsamples_same_fraction_without_replacement():
    rng = np.random.default_rng(0)
    subjects = [rng.standard_normal((n, 6)) for n in (100, 150, 200)]
    result = group_sparse_stars(subjects, n_subsamples=4, alphas=3, random_state=0)
    # StARS rule on the fewest samples (100 -> 80), the same 80 % for the others.
    assert [idx.shape for idx in result.subsamples] == [(4, 80), (4, 120), (4, 160)]
    for idx, x in zip(result.subsamples, subjects, strict=True):
        for row in idx:
            assert np.unique(row).size == row.size and row.max() < x.shape[0]


def test_monotone_instability_and_selection_rule(fitted):
    _, _, est = fitted
    fitted_ = ~np.isnan(est.instability_)
    D, D_bar = est.instability_[fitted_], est.monotone_instability_[fitted_]
    assert np.all(np.diff(est.alphas_) < 0)
    assert np.all(np.diff(D_bar) >= 0)
    np.testing.assert_array_equal(D_bar, np.maximum.accumulate(D))
    assert D[0] == 0.0  # the grid starts where every subsample's graph is empty
    ok = est.alphas_[fitted_][D_bar <= est.beta]
    assert est.alpha_ == ok.min()
    # The path stopped at the first alpha past beta, right below alpha_.
    last = np.flatnonzero(fitted_)[-1]
    assert est.monotone_instability_[last] > est.beta
    assert est.alphas_[last] < est.alpha_ == est.alphas_[last - 1]
    assert np.all(np.isnan(est.instability_[last + 1:]))


def test_final_fit_is_group_sparse_covariance_and_certified(fitted):
    _, subjects, est = fitted
    covs, precisions, info = group_sparse_covariance(subjects, est.alpha_, tol=est.tol,
                                                     max_iter=est.max_iter, return_info=True)
    np.testing.assert_allclose(est.precisions_, precisions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.covariances_, covs, rtol=0, atol=1e-12)
    p = covs.shape[0]
    assert est.converged_ and est.duality_gap_ <= est.tol * p
    assert abs(est.duality_gap_ - info.duality_gap) <= 1e-10
    assert est.path_converged_


def test_edge_stability_matches_cold_fits_of_the_subsamples(fitted):
    _, subjects, est = fitted
    n_sub = est.subsamples_[0].shape[0]
    counts = np.zeros_like(est.edge_stability_)
    for i in range(n_sub):
        sub = [x[idx[i]] for x, idx in zip(subjects, est.subsamples_, strict=True)]
        _, precisions = group_sparse_covariance(sub, est.alpha_, tol=1e-8)
        counts += np.any(precisions != 0, axis=-1)
    np.fill_diagonal(counts, 0)
    # Warm and cold fits agree up to the tolerance: an edge at the threshold may flip once.
    assert np.max(np.abs(counts - np.rint(est.edge_stability_ * n_sub))) <= 1
    assert np.mean(counts == np.rint(est.edge_stability_ * n_sub)) >= 0.95
    assert np.all(np.diag(est.edge_stability_) == 0)
    assert np.array_equal(est.edge_stability_, est.edge_stability_.T)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_support_f1_at_least_the_cv_model(seed):
    precision, subjects = _problem(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stars = GroupSparseCovarianceStARS(random_state=seed).fit(subjects)
        cv = GroupSparseCovarianceCV().fit(subjects)
    f1_stars = support_recovery(stars.precisions_[..., 0], precision).f1
    f1_cv = support_recovery(cv.precisions_[..., 0], precision).f1
    assert f1_stars >= f1_cv
    assert f1_stars >= 0.8  # measured 0.875, 0.9, 0.909 on these seeds


def test_too_unstable_at_the_largest_alpha_warns_and_keeps_it(fitted):
    _, subjects, est = fitted
    # The alphas below the path's first one past beta: unstable from the start.
    unstable = est.alphas_[np.flatnonzero(~np.isnan(est.instability_))[-1]:][:2]
    with pytest.warns(DataWarning, match="largest alpha is kept"):
        result = group_sparse_stars(subjects, alphas=unstable, random_state=0)
    assert result.alpha == unstable[0]
    assert result.instability[0] > est.beta and np.isnan(result.instability[1])


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 0.0}, "beta"), ({"beta": 0.6}, "beta"), ({"beta": "x"}, "beta"),
    ({"n_subsamples": 1}, "n_subsamples"), ({"n_subsamples": 2.5}, "n_subsamples"),
    ({"n_subsamples": True}, "n_subsamples"), ({"subsample_size": 60}, "subsample_size"),
    ({"subsample_size": 1}, "subsample_size"), ({"random_state": "seed"}, "random_state"),
    ({"alphas": [-1.0]}, "alphas"), ({"tol": 0}, "tol"), ({"max_iter": 0}, "max_iter"),
])
def test_bad_parameters_are_named(kwargs, match):
    rng = np.random.default_rng(0)
    subjects = [rng.standard_normal((60, 4)) for _ in range(2)]
    with pytest.raises(ParameterError, match=match):
        group_sparse_stars(subjects, **kwargs)
    with pytest.raises(ParameterError, match=match):
        GroupSparseCovarianceStARS(**kwargs).fit(subjects)


def test_bad_subjects_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=r"subjects\[1\]"):
        group_sparse_stars([rng.standard_normal((30, 4)), rng.standard_normal((30, 5))])
    with pytest.raises(InputError, match=r"subjects\[0\] has 2 samples"):
        group_sparse_stars([rng.standard_normal((2, 4)), rng.standard_normal((30, 4))])
    bad = rng.standard_normal((30, 4))
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        group_sparse_stars([bad])
