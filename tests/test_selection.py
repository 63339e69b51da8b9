"""Penalty selection for graph recovery: GraphicalLassoEBIC and GraphicalLassoStARS.

The criteria are recomputed by hand from their definitions (Foygel & Drton 2010;
Liu, Roeder & Wasserman 2010) and compared with the estimators; the choice is
checked against the rule; on the demo subject both beat cross-validation on
the true graph.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sparse_connectome._utils.estimator import clone
from sparse_connectome.covariance import (
    GraphicalLassoCV,
    GraphicalLassoEBIC,
    GraphicalLassoStARS,
    empirical_covariance,
    graphical_lasso,
    graphical_lasso_ebic,
    graphical_lasso_stars,
)
from sparse_connectome.errors import ConvergenceWarning, DataWarning, InputError, ParameterError
from sparse_connectome.simulate import make_sparse_precision, sample_region_signals


def _problem(p: int = 10, n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    precision = make_sparse_precision(p, random_state=seed)
    return sample_region_signals(precision, n, random_state=seed + 1), precision


def _ebic_by_hand(S: np.ndarray, precision: np.ndarray, n: int, gamma: float) -> float:
    p = S.shape[0]
    loglik = n / 2 * (np.linalg.slogdet(precision)[1] - np.trace(S @ precision))
    edges = sum(precision[i, j] != 0 for i in range(p) for j in range(i + 1, p))
    return -2 * loglik + edges * np.log(n) + 4 * edges * gamma * np.log(p)


# --------------------------------------------------------------------------- #
# EBIC
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_ebic_at_each_alpha_is_the_formula_of_the_fitted_precision(gamma):
    X, _ = _problem()
    n = X.shape[0]
    S = np.cov(X.T, bias=True)
    path = graphical_lasso_ebic(S, n, alphas=12, gamma=gamma, tol=1e-10).path
    for k, alpha in enumerate(path["alphas"]):
        single = graphical_lasso_ebic(S, n, alphas=[alpha], gamma=gamma)
        expected = _ebic_by_hand(S, single.precision, n, gamma)
        assert single.path["ebic"][0] == pytest.approx(expected, rel=1e-12, abs=1e-9)
        # Along the warm-started path: the same fit (cold here) up to the certified gap.
        precision = graphical_lasso(S, alpha, tol=1e-10)[1]
        assert path["n_edges"][k] == int(np.count_nonzero(np.triu(precision, 1)))
        assert path["ebic"][k] == pytest.approx(_ebic_by_hand(S, precision, n, gamma),
                                                abs=1e-6)


def test_the_estimator_chooses_the_argmin_and_keeps_its_fit():
    X, _ = _problem()
    est = GraphicalLassoEBIC(alphas=15).fit(X)
    k = int(np.argmin(est.ebic_path_))
    assert est.alpha_ == est.alphas_[k]
    assert np.all(np.diff(est.alphas_) < 0)
    S = empirical_covariance(X)
    assert est.ebic_path_[k] == pytest.approx(_ebic_by_hand(S, est.precision_, len(X), 0.5),
                                              rel=1e-12)
    assert est.path_results_["n_edges"][k] == np.count_nonzero(np.triu(est.precision_, 1))
    assert est.converged_ and est.path_converged_
    assert est.duality_gap_ <= est.tol * X.shape[1]
    np.testing.assert_allclose(est.covariance_ @ est.precision_, np.eye(10), atol=1e-8)
    np.testing.assert_allclose(est.location_, X.mean(axis=0))
    assert set(est.path_results_) == {"alphas", "ebic", "log_likelihood", "n_edges",
                                      "duality_gap", "converged"}


def test_larger_gamma_never_gives_more_edges():
    X, _ = _problem(p=15, n=200, seed=3)
    edges = [np.count_nonzero(np.triu(GraphicalLassoEBIC(gamma=g).fit(X).precision_, 1))
             for g in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert edges == sorted(edges, reverse=True)


def test_ebic_explicit_alphas_are_walked_decreasing_and_not_changed():
    X, _ = _problem()
    alphas = [0.05, 0.3, 0.1]
    est = GraphicalLassoEBIC(alphas=alphas).fit(X)
    np.testing.assert_array_equal(est.alphas_, [0.3, 0.1, 0.05])
    assert est.alphas == [0.05, 0.3, 0.1]


def test_ebic_warns_when_a_path_fit_does_not_converge():
    X, _ = _problem(p=20, n=30)
    with pytest.warns(ConvergenceWarning, match="GraphicalLassoEBIC: .* path fits"):
        est = GraphicalLassoEBIC(max_iter=1, tol=1e-12).fit(X)
    assert not est.path_converged_
    with pytest.warns(ConvergenceWarning, match="graphical_lasso_ebic") as record:
        graphical_lasso_ebic(np.cov(X.T, bias=True), len(X), max_iter=1, tol=1e-12)
    assert record[0].filename == __file__


# --------------------------------------------------------------------------- #
# StARS
# --------------------------------------------------------------------------- #
def _stars_by_hand(X: np.ndarray, subsamples: np.ndarray, alphas: np.ndarray, tol: float,
                   max_iter: int):
    """Per-alpha selection frequencies and instabilities, from each subsample's
    warm-started path fitted with the public graphical_lasso (at the estimator's
    tolerance: fits to different gaps may differ in entries at the rounding of
    the support, |S_ij - W_ij| = alpha)."""
    p = X.shape[1]
    iu = np.triu_indices(p, 1)
    thetas, D = [], []
    supports = np.zeros((len(subsamples), len(alphas), p, p), dtype=bool)
    for s, idx in enumerate(subsamples):
        S = np.cov(X[idx].T, bias=True)
        init = None
        for k, alpha in enumerate(alphas):
            init = graphical_lasso(S, alpha, init=init, tol=tol, max_iter=max_iter)[1]
            supports[s, k] = init != 0
    for k in range(len(alphas)):
        theta = supports[:, k].mean(axis=0)
        thetas.append(theta)
        D.append(np.mean(2 * theta[iu] * (1 - theta[iu])))
    return np.array(thetas), np.array(D)


def test_stars_instability_curve_and_choice_follow_the_paper():
    X, _ = _problem(p=8, n=150, seed=2)
    est = GraphicalLassoStARS(alphas=12, n_subsamples=6, beta=0.05, random_state=0).fit(X)
    assert est.subsamples_.shape == (6, 122)  # floor(10 sqrt(150))
    for row in est.subsamples_:
        assert len(np.unique(row)) == len(row)  # drawn without replacement
    thetas, D = _stars_by_hand(X, est.subsamples_, est.alphas_, est.tol, est.max_iter)
    fitted = est.path_results_["fitted"]
    np.testing.assert_allclose(est.instability_path_[fitted], D[fitted], atol=1e-12)
    d_bar = np.maximum.accumulate(D)
    np.testing.assert_allclose(est.monotone_instability_path_[fitted], d_bar[fitted])
    # The rule: the smallest alpha whose monotonised instability is <= beta.
    k = int(np.flatnonzero(d_bar <= est.beta)[-1])
    assert est.alpha_ == est.alphas_[k]
    assert 0 < k < len(est.alphas_) - 1, "the test problem should cross beta mid-path"
    # The path stops at the first alpha past beta: nothing smaller can be chosen.
    assert fitted.sum() == k + 2 and np.all(np.isnan(est.instability_path_[~fitted]))
    expected_stability = thetas[k] * (1 - np.eye(8))
    np.testing.assert_array_equal(est.edge_stability_, expected_stability)
    # The graph is the full data's fit at alpha_.
    S = empirical_covariance(X)
    np.testing.assert_allclose(est.precision_, graphical_lasso(S, est.alpha_, tol=est.tol)[1],
                               atol=1e-6)


def test_stars_default_subsample_size():
    X, _ = _problem(p=6, n=144)
    est = GraphicalLassoStARS(n_subsamples=3, random_state=0).fit(X)
    assert est.subsamples_.shape == (3, 115)  # floor(0.8 n) up to 144 samples
    X, _ = _problem(p=6, n=200)
    est = GraphicalLassoStARS(n_subsamples=3, random_state=0).fit(X)
    assert est.subsamples_.shape == (3, 141)  # floor(10 sqrt(n)) above
    est = GraphicalLassoStARS(n_subsamples=3, subsample_size=50, random_state=0).fit(X)
    assert est.subsamples_.shape == (3, 50)


def test_stars_is_deterministic_for_a_seed_and_independent_of_n_jobs():
    X, _ = _problem(p=12, n=150, seed=4)
    one = GraphicalLassoStARS(random_state=7).fit(X)
    again = GraphicalLassoStARS(random_state=7).fit(X)
    threads = GraphicalLassoStARS(random_state=7, n_jobs=2).fit(X)
    for other in (again, threads):
        np.testing.assert_array_equal(one.subsamples_, other.subsamples_)
        np.testing.assert_array_equal(one.instability_path_, other.instability_path_)
        np.testing.assert_array_equal(one.edge_stability_, other.edge_stability_)
        np.testing.assert_array_equal(one.precision_, other.precision_)
        assert one.alpha_ == other.alpha_
    other_seed = GraphicalLassoStARS(random_state=8).fit(X)
    assert not np.array_equal(one.subsamples_, other_seed.subsamples_)
    generator = GraphicalLassoStARS(random_state=np.random.default_rng(7)).fit(X)
    np.testing.assert_array_equal(one.subsamples_, generator.subsamples_)


def test_stars_function_matches_the_estimator():
    X, _ = _problem(p=8, n=100)
    est = GraphicalLassoStARS(random_state=1, n_subsamples=5).fit(X)
    result = graphical_lasso_stars(X, random_state=1, n_subsamples=5)
    assert result.alpha == est.alpha_
    np.testing.assert_array_equal(result.precision, est.precision_)
    np.testing.assert_array_equal(result.edge_stability, est.edge_stability_)


def test_stars_warns_when_even_the_largest_alpha_is_unstable():
    X, _ = _problem(p=10, n=60)
    path = GraphicalLassoStARS(alphas=20, random_state=0, beta=0.5).fit(X)
    unstable = path.alphas_[np.nanargmax(path.instability_path_)]
    assert np.nanmax(path.instability_path_) > 0.05
    with pytest.warns(DataWarning, match="largest alpha is kept") as record:
        est = GraphicalLassoStARS(alphas=[unstable, unstable / 2], random_state=0).fit(X)
    assert est.alpha_ == unstable
    assert np.isnan(est.instability_path_[1])
    # The stabilities are those of the kept alpha: some edges in some subsamples only.
    assert np.any((est.edge_stability_ > 0) & (est.edge_stability_ < 1))
    assert record[0].filename == __file__


def test_stars_warns_when_a_fit_does_not_converge():
    X, _ = _problem(p=20, n=40)
    with pytest.warns(ConvergenceWarning) as record:
        est = GraphicalLassoStARS(max_iter=1, tol=1e-12, n_subsamples=3, random_state=0).fit(X)
    messages = [str(w.message) for w in record]
    assert any("subsample paths" in m for m in messages)
    assert any("final fit" in m for m in messages)
    assert all(w.filename == __file__ for w in record)  # pointed at the caller of fit
    assert not est.path_converged_ and not est.converged_


# --------------------------------------------------------------------------- #
# Estimator conventions and errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("cls, params", [
    (GraphicalLassoEBIC, dict(alphas=7, gamma=1.0, tol=1e-5, max_iter=50, verbose=True,
                              assume_centered=True)),
    (GraphicalLassoStARS, dict(alphas=[0.1, 0.2], beta=0.1, n_subsamples=5, subsample_size=30,
                               random_state=3, n_jobs=2, tol=1e-5, max_iter=50, verbose=True,
                               assume_centered=True)),
])
def test_parameters_are_stored_unchanged_and_cloned(cls, params):
    est = cls(**params)
    assert est.get_params() == params
    copy = clone(est)
    assert copy.get_params() == params and copy is not est
    assert cls().set_params(**params).get_params() == params
    assert cls.__name__ in repr(est)
    with pytest.raises(ParameterError, match="no parameter 'alpha'"):
        est.set_params(alpha=1.0)


@pytest.mark.parametrize("params, name", [
    (dict(gamma=-1.0), "gamma"), (dict(gamma="a"), "gamma"), (dict(alphas=0), "alphas"),
    (dict(alphas=[]), "alphas"), (dict(alphas=[0.1, -1.0]), "alphas"), (dict(tol=0), "tol"),
    (dict(max_iter=0), "max_iter"),
])
def test_ebic_parameter_errors_name_the_parameter(params, name):
    X, _ = _problem(p=5, n=30)
    with pytest.raises(ParameterError, match=name):
        GraphicalLassoEBIC(**params).fit(X)


@pytest.mark.parametrize("params, name", [
    (dict(beta=0.0), "beta"), (dict(beta=0.6), "beta"), (dict(n_subsamples=1), "n_subsamples"),
    (dict(subsample_size=30), "subsample_size"), (dict(subsample_size=1), "subsample_size"),
    (dict(n_jobs=0), "n_jobs"), (dict(random_state="seed"), "random_state"),
    (dict(alphas=-2), "alphas"), (dict(tol=-1.0), "tol"), (dict(max_iter=2.5), "max_iter"),
])
def test_stars_parameter_errors_name_the_parameter(params, name):
    X, _ = _problem(p=5, n=30)
    with pytest.raises(ParameterError, match=name):
        GraphicalLassoStARS(**params).fit(X)


@pytest.mark.parametrize("cls", [GraphicalLassoEBIC, GraphicalLassoStARS])
def test_bad_samples_raise_input_error(cls):
    X, _ = _problem(p=5, n=30)
    X[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cls().fit(X)
    with pytest.raises(InputError, match="2D"):
        cls().fit(np.zeros((3, 4, 5)))
    constant = _problem(p=5, n=30)[0]
    constant[:, 1] = 1.0
    with pytest.raises(InputError, match="zero-variance"):
        cls().fit(constant)


def test_functions_check_their_inputs():
    with pytest.raises(ParameterError, match="n_samples"):
        graphical_lasso_ebic(np.eye(3), 0)
    with pytest.raises(InputError, match="square"):
        graphical_lasso_ebic(np.ones((2, 3)), 10)
    with pytest.raises(InputError, match="alpha_max = 0"):
        graphical_lasso_ebic(np.eye(3), 10)
    with pytest.raises(InputError, match="at least 3"):
        graphical_lasso_stars(np.array([[0.0, 1.0], [1.0, 0.0]]))


# --------------------------------------------------------------------------- #
# Ground truth: the demo subject
# --------------------------------------------------------------------------- #
def test_ebic_and_stars_recover_the_demo_graph_better_than_cv(demo):
    from sparse_connectome.connectome import support_recovery
    from sparse_connectome.pipeline import run_connectome

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = run_connectome(demo.func[0], demo, demo.confounds[0], verbose=0).time_series
    f1 = {name: support_recovery(est.fit(ts).precision_, demo.true_precision).f1
          for name, est in [("cv", GraphicalLassoCV()), ("ebic", GraphicalLassoEBIC()),
                            ("stars", GraphicalLassoStARS(random_state=0))]}
    assert f1["ebic"] >= f1["cv"] + 0.15, f1
    assert f1["stars"] >= f1["cv"] + 0.15, f1
