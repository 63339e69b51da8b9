"""connectome.py: ConnectivityMeasure and the matrix helpers against nilearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sparse_connectome.connectome import (
    ConnectivityMeasure,
    cov_to_corr,
    geometric_mean,
    precision_to_partial_correlation,
    support_recovery,
    sym_matrix_to_vec,
    vec_to_sym_matrix,
)
from sparse_connectome.covariance import EmpiricalCovariance, GraphicalLasso, LedoitWolf
from sparse_connectome.errors import InputError, ParameterError, ShapeMismatchError

nl_conn = pytest.importorskip("nilearn.connectome")

KINDS = ["covariance", "correlation", "partial correlation", "precision", "tangent"]


@pytest.fixture(scope="module")
def subjects():
    rng = np.random.default_rng(0)
    mixing = np.eye(8) + 0.3 * rng.standard_normal((8, 8))
    return [rng.standard_normal((70, 8)) @ mixing * rng.uniform(0.5, 2, 8) + 2.0
            for _ in range(4)]


def nilearn_measure(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nl_conn.ConnectivityMeasure(**kwargs)


def test_sym_matrix_to_vec_and_back_match_nilearn():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5, 5))
    a = a + a.transpose(0, 2, 1)
    for discard in (False, True):
        ours = sym_matrix_to_vec(a, discard_diagonal=discard)
        ref = nl_conn.sym_matrix_to_vec(a, discard_diagonal=discard)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-15)
    vec = sym_matrix_to_vec(a)
    np.testing.assert_allclose(vec_to_sym_matrix(vec), a, atol=1e-15)
    np.testing.assert_allclose(vec_to_sym_matrix(vec), nl_conn.vec_to_sym_matrix(vec))
    # sqrt(2) scaling: the vector norm is the Frobenius norm over sqrt(2).
    np.testing.assert_allclose(np.linalg.norm(vec[0]), np.linalg.norm(a[0]) / np.sqrt(2))
    off = sym_matrix_to_vec(a, discard_diagonal=True)
    diag = np.diagonal(a, axis1=1, axis2=2) / np.sqrt(2)
    np.testing.assert_allclose(vec_to_sym_matrix(off, diagonal=diag), a, atol=1e-15)
    np.testing.assert_allclose(vec_to_sym_matrix(off, diagonal=diag),
                               nl_conn.vec_to_sym_matrix(off, diagonal=diag))
    with pytest.raises(InputError, match="triangular"):
        vec_to_sym_matrix(np.ones(4))
    with pytest.raises(ShapeMismatchError):
        vec_to_sym_matrix(np.ones(6), diagonal=np.ones(2))
    with pytest.raises(InputError, match="square"):
        sym_matrix_to_vec(np.ones((2, 3)))


def test_partial_correlation_and_correlation_helpers():
    from nilearn.connectome.connectivity_matrices import cov_to_corr as nl_corr
    from nilearn.connectome.connectivity_matrices import prec_to_partial

    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 6))
    cov = np.cov(x.T)
    prec = np.linalg.inv(cov)
    np.testing.assert_allclose(precision_to_partial_correlation(prec), prec_to_partial(prec),
                               atol=1e-14)
    np.testing.assert_allclose(cov_to_corr(cov), nl_corr(cov), atol=1e-14)
    # Partial correlation from the regression residuals of the other regions (definition).
    others = x[:, 2:]
    beta = np.linalg.lstsq(np.c_[others, np.ones(50)], x[:, :2], rcond=None)[0]
    res = x[:, :2] - np.c_[others, np.ones(50)] @ beta
    assert precision_to_partial_correlation(prec)[0, 1] == pytest.approx(
        np.corrcoef(res.T)[0, 1], abs=1e-12)
    with pytest.raises(InputError, match="non-positive diagonal"):
        precision_to_partial_correlation(-np.eye(3))


@pytest.mark.parametrize("kind", KINDS)
def test_connectivity_measure_matches_nilearn(subjects, kind):
    for estimator in (None, EmpiricalCovariance(), LedoitWolf(store_precision=False)):
        for vectorize, discard in ((False, False), (True, False), (True, True)):
            kwargs = dict(kind=kind, vectorize=vectorize, discard_diagonal=discard)
            ours = ConnectivityMeasure(cov_estimator=estimator, **kwargs)
            ref = nilearn_measure(cov_estimator=estimator, **kwargs)
            a = ours.fit_transform(subjects)
            b = ref.fit_transform(subjects)
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
            np.testing.assert_allclose(ours.mean_, ref.mean_, atol=1e-6, rtol=0)
            if kind == "tangent":
                np.testing.assert_allclose(ours.whitening_, ref.whitening_, atol=1e-6, rtol=0)
            # transform on new subjects reuses the fitted reference
            np.testing.assert_allclose(ours.transform(subjects[:2]), ref.transform(subjects[:2]),
                                       atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["partial correlation", "precision", "tangent"])
def test_connectivity_measure_with_graphical_lasso(subjects, kind):
    estimator = GraphicalLasso(alpha=0.05, tol=1e-10)
    a = ConnectivityMeasure(cov_estimator=estimator, kind=kind).fit_transform(subjects)
    b = nilearn_measure(cov_estimator=estimator, kind=kind).fit_transform(subjects)
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_geometric_mean_properties():
    rng = np.random.default_rng(4)
    mats = []
    for _ in range(3):
        a = rng.standard_normal((5, 20))
        mats.append(a @ a.T / 20 + 0.1 * np.eye(5))
    mean = geometric_mean(mats)
    # For commuting matrices the geometric mean is exp(mean(log)).
    d = [np.diag(rng.uniform(0.5, 3, 4)) for _ in range(3)]
    log_mean = np.mean([np.log(np.diag(m)) for m in d], 0)
    np.testing.assert_allclose(geometric_mean(d), np.diag(np.exp(log_mean)))
    # Congruence invariance: mean(A M A') = A mean(M) A'.
    A = rng.standard_normal((5, 5)) + 3 * np.eye(5)
    np.testing.assert_allclose(geometric_mean([A @ m @ A.T for m in mats]), A @ mean @ A.T,
                               rtol=1e-8, atol=1e-10)
    with pytest.raises(InputError, match="positive definite"):
        geometric_mean([np.eye(3), -np.eye(3)])


def test_inverse_transform_tangent_roundtrip(subjects):
    measure = ConnectivityMeasure(kind="tangent", vectorize=True)
    vecs = measure.fit_transform(subjects)
    covs = measure.inverse_transform(vecs)
    lw = [LedoitWolf().fit(s).covariance_ for s in subjects]
    np.testing.assert_allclose(covs, lw, atol=1e-10)


def test_connectivity_measure_errors(subjects):
    with pytest.raises(ParameterError, match="kind"):
        ConnectivityMeasure(kind="coherence").fit(subjects)
    with pytest.raises(InputError, match="list of subjects"):
        ConnectivityMeasure().fit(subjects[0])
    with pytest.raises(ShapeMismatchError):
        ConnectivityMeasure().fit([subjects[0], subjects[1][:, :5]])
    bad = subjects[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ConnectivityMeasure().fit([bad])
    measure = ConnectivityMeasure().fit(subjects)
    with pytest.raises(ShapeMismatchError):
        measure.transform([subjects[0][:, :3]])
    from sparse_connectome.errors import NotFittedError

    with pytest.raises(NotFittedError):
        ConnectivityMeasure().transform(subjects)


def test_support_recovery_counts():
    true = np.eye(4)
    true[0, 1] = true[1, 0] = 0.5
    true[2, 3] = true[3, 2] = -0.3
    est = np.eye(4)
    est[0, 1] = est[1, 0] = 0.2
    est[0, 2] = est[2, 0] = 0.01
    rec = support_recovery(est, true)
    assert (rec.true_positives, rec.false_positives, rec.false_negatives) == (1, 1, 1)
    assert rec.n_true_edges == 2 and rec.n_estimated_edges == 2
    assert rec.precision == rec.recall == rec.f1 == 0.5
    assert support_recovery(est, true, tol=0.05).false_positives == 0
    perfect = support_recovery(true, true)
    assert perfect.f1 == 1.0
    with pytest.raises(ShapeMismatchError):
        support_recovery(np.eye(3), np.eye(4))
