"""GraphicalLassoCV: same folds, grid, refinement and choice of alpha as scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _signals import autocorrelated_problem
from sparse_connectome.covariance import GraphicalLassoCV, KFold, graphical_lasso_objective
from sparse_connectome.errors import ConvergenceWarning, InputError, ParameterError

sk_cov = pytest.importorskip("sklearn.covariance")
sk_ms = pytest.importorskip("sklearn.model_selection")


def sparse_problem(seed, p, n):
    rng = np.random.default_rng(seed)
    A = np.zeros((p, p))
    mask = np.triu(rng.random((p, p)) < 0.1, k=1)
    A[mask] = rng.uniform(-0.4, 0.4, mask.sum())
    A = A + A.T
    A += np.eye(p) * (max(0.0, -np.linalg.eigvalsh(A)[0]) + 0.2)
    return rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=n) + rng.normal(0, 3, p)


def sklearn_cv(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_cov.GraphicalLassoCV(**kwargs).fit(X)


def exact_cv_score(X, alpha, cv=None):
    """Mean held-out score at ``alpha`` from fold fits solved to a tight gap."""
    est = GraphicalLassoCV(alphas=[alpha], cv=cv, fold_tol=1e-8).fit(X)
    return est.cv_results_["mean_test_score"][0]


def sklearn_breakdowns(X, ref, cv=None):
    """(fold, alpha) of scikit-learn's first grid where its warm-started path breaks down.

    Rerun scikit-learn's path (max_iter=10 on the folds, as its CV does) over its
    first grid on the folds with non-finite scores, and list where the precision
    it returns is not finite or not positive definite: a failure of that solver,
    not a property of the problem.
    """
    from sklearn.covariance._graph_lasso import graphical_lasso_path

    splits = list((cv or sk_ms.KFold(5)).split(X))
    top = ref.cv_results_["alphas"][0]
    first_grid = np.logspace(np.log10(0.01 * top), np.log10(top), 4)[::-1]
    failed = []
    for k, (train, test) in enumerate(splits):
        if np.all(np.isfinite(ref.cv_results_[f"split{k}_test_score"][:-1])):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, precs, _ = graphical_lasso_path(X[train], alphas=first_grid, X_test=X[test],
                                               max_iter=10)
        for a, prec in zip(first_grid, precs):
            if not (np.all(np.isfinite(prec)) and np.linalg.eigvalsh(prec)[0] > 0):
                failed.append((k, round(float(a), 6)))
    return failed


def assert_same_choice(ours, ref, X, cv=None):
    """Same alpha_; else a near-tie (exact scores within 1e-3), or scikit-learn's path broke
    down (non-finite scores) at alphas that ours solves with a certified gap and that score
    better. Returns whether alpha_ is the same."""
    if ours.alpha_ == pytest.approx(ref.alpha_, rel=1e-12):
        return True
    a = exact_cv_score(X, ours.alpha_, cv)
    b = exact_cv_score(X, ref.alpha_, cv)
    print(f"alpha_ differs: ours {ours.alpha_:.6g} (score {a:.6f}), "
          f"scikit-learn {ref.alpha_:.6g} (score {b:.6f})")
    assert a >= b - 1e-3  # ours is at least as good, up to 1e-3
    if abs(a - b) > 1e-3:
        failed = sklearn_breakdowns(X, ref, cv)
        print(f"scikit-learn's path broke down on (fold, alpha): {failed}")
        assert failed
        assert ours.cv_converged_ and np.all(np.isfinite(ours.cv_results_["mean_test_score"][:-1]))
    return False


@pytest.mark.parametrize("n", [10, 11, 12, 13, 14, 168, 171])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_matches_sklearn(n, k):
    ours = list(KFold(k).split(np.zeros((n, 2))))
    ref = list(sk_ms.KFold(k).split(np.zeros((n, 2))))
    assert len(ours) == len(ref)
    for (a_tr, a_te), (b_tr, b_te) in zip(ours, ref):
        np.testing.assert_array_equal(a_tr, b_tr)
        np.testing.assert_array_equal(a_te, b_te)


def test_demo_subject_same_alpha_and_layout(demo):
    from test_graphical_lasso import demo_region_signals

    X = demo_region_signals(demo)
    ours = GraphicalLassoCV().fit(X)
    ref = sklearn_cv(X)
    # Same layout of cv_results_.
    assert list(ours.cv_results_) == list(ref.cv_results_)
    for key in ref.cv_results_:
        assert ours.cv_results_[key].shape == ref.cv_results_[key].shape
    assert ours.cv_results_["alphas"][0] == pytest.approx(ref.cv_results_["alphas"][0], rel=1e-12)
    # alpha = 0 scores come from the same maximum-likelihood fits.
    for k in range(5):
        assert ours.cv_results_[f"split{k}_test_score"][-1] == pytest.approx(
            ref.cv_results_[f"split{k}_test_score"][-1], rel=1e-7)
    # The first alpha (alpha_max) is scored alike (a nearly diagonal fit).
    assert ours.cv_results_["mean_test_score"][0] == pytest.approx(
        ref.cv_results_["mean_test_score"][0], abs=2e-3)
    # On this subject scikit-learn's warm-started path (max_iter=10 on the folds) breaks
    # down on fold 3 below alpha ~ 0.16 (NaN precision, score -inf), which drives its grid
    # refinement to a larger alpha; ours solves those fits with a certified gap.
    assert_same_choice(ours, ref, X)
    # The masker returns float32: scikit-learn averages in float32, ours in float64.
    np.testing.assert_allclose(ours.location_, ref.location_, atol=1e-7)
    assert ours.converged_ and ours.cv_converged_
    assert ours.duality_gap_ <= ours.tol * X.shape[1]
    assert ours.cv_duality_gaps_.shape == (len(ours.cv_results_["alphas"]), 5)
    stats = ours.solver_stats_
    print(f"\ndemo: alpha_={ours.alpha_:.5g}, factorisations {stats['n_factorizations']} "
          f"(cost {stats['factorization_cost']:.0f} p^3) vs fewest {stats['min_factorizations']}")


def test_other_problems_same_alpha():
    problems = [(1, 20, 100), (2, 30, 25), (3, 15, 40), (4, 25, 150), (5, 12, 60)]
    same = 0
    for seed, p, n in problems:
        X = sparse_problem(seed, p, n)
        ours = GraphicalLassoCV().fit(X)
        ref = sklearn_cv(X)
        same += assert_same_choice(ours, ref, X)
        # Each grid is built by the same rule from the same scores: the first grid is identical.
        np.testing.assert_allclose(ours.cv_results_["alphas"][[0, -2, -1]],
                                   ref.cv_results_["alphas"][[0, -2, -1]], rtol=1e-12)
    # A differing alpha_ must be a near-tie where ours scores at least as well, or a
    # breakdown of scikit-learn's path (checked above). Which near-ties flip depends on
    # the BLAS and NumPy versions: NumPy 2.5 on Python 3.13 flips two of these five, with
    # ours better by 1.5e-5 and 4.3e-5 in exact held-out score.
    assert same >= 3


def test_cv_argument_forms_and_n_jobs():
    X = sparse_problem(7, 12, 60)
    base = GraphicalLassoCV(cv=3).fit(X)
    splits = list(sk_ms.KFold(3).split(X))
    from_list = GraphicalLassoCV(cv=splits).fit(X)
    from_object = GraphicalLassoCV(cv=sk_ms.KFold(3)).fit(X)
    threaded = GraphicalLassoCV(cv=3, n_jobs=2).fit(X)
    for est in (from_list, from_object, threaded):
        assert est.alpha_ == base.alpha_
        np.testing.assert_allclose(est.cv_results_["mean_test_score"],
                                   base.cv_results_["mean_test_score"], rtol=1e-12)
        np.testing.assert_allclose(est.precision_, base.precision_, rtol=1e-12)
    assert [k for k in base.cv_results_ if k.startswith("split")] == [
        "split0_test_score", "split1_test_score", "split2_test_score"]
    # Shuffled folds from scikit-learn: the same alpha as scikit-learn with those folds.
    cv = sk_ms.KFold(4, shuffle=True, random_state=0)
    assert_same_choice(GraphicalLassoCV(cv=cv).fit(X), sklearn_cv(X, cv=cv), X)


def test_explicit_alphas_are_not_refined():
    X = sparse_problem(8, 10, 80)
    grid = [0.3, 0.1, 0.03]
    ours = GraphicalLassoCV(alphas=grid).fit(X)
    ref = sklearn_cv(X, alphas=grid)
    np.testing.assert_allclose(ours.cv_results_["alphas"], [0.3, 0.1, 0.03, 0.0])
    np.testing.assert_allclose(ours.cv_results_["alphas"], ref.cv_results_["alphas"])
    assert ours.alpha_ == ref.alpha_


def test_parameters_and_inputs_are_checked():
    X = sparse_problem(9, 6, 30)
    for kwargs in ({"alphas": 0}, {"alphas": [0.1, -1]}, {"n_refinements": 0}, {"cv": 1},
                   {"cv": "folds"}, {"tol": 0}, {"max_iter": 0}, {"mode": "lars"},
                   {"prune": "yes"}, {"n_jobs": 0}):
        with pytest.raises(ParameterError):
            GraphicalLassoCV(**kwargs).fit(X)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        GraphicalLassoCV().fit(bad)
    bad = X.copy()
    bad[:, 4] = 1.0
    with pytest.raises(InputError, match="column 4"):
        GraphicalLassoCV().fit(bad)


def test_non_convergence_in_cv_is_reported():
    X = sparse_problem(10, 15, 40)
    with pytest.warns(ConvergenceWarning, match="raise max_iter"):
        est = GraphicalLassoCV(max_iter=1, fold_tol=1e-10).fit(X)
    assert est.cv_converged_ is False
    assert np.nanmax(est.cv_duality_gaps_) > 1e-10 * 15


def test_whole_grid_matches_sklearn_including_repeated_alphas():
    # On this problem scikit-learn's refinement produces one alpha twice; both lists
    # (every alpha tried, decreasing, then 0) are the same.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 10))
    X[:, 1] += X[:, 0]
    X[:, 2] += 0.5 * X[:, 1]
    ours = GraphicalLassoCV().fit(X)
    ref = sklearn_cv(X)
    np.testing.assert_allclose(ours.cv_results_["alphas"], ref.cv_results_["alphas"], rtol=1e-12)
    assert len(set(ours.cv_results_["alphas"])) < len(ours.cv_results_["alphas"])
    assert ours.alpha_ == pytest.approx(ref.alpha_, rel=1e-12)
    # Scores agree to the accuracy of the fits (polished near the best, coarse elsewhere)
    # and, for the fits pruned far below the best, to their error bound sqrt(p * gap).
    diff = np.abs(ours.cv_results_["mean_test_score"] - ref.cv_results_["mean_test_score"])
    pruned = ours.cv_pruned_.any(axis=1)
    assert pruned.any() and not pruned[list(ours.cv_results_["alphas"]).index(ours.alpha_)]
    assert np.all(diff[~pruned] <= 3e-3)
    bound = np.nanmean(np.where(ours.cv_pruned_, np.sqrt(10 * ours.cv_duality_gaps_), 0.0), axis=1)
    assert np.all(diff[pruned] <= bound[pruned] + 3e-3)
    assert ours.solver_stats_["min_factorizations"] == 5 * (len(ours.cv_results_["alphas"]) - 2) + 1
    assert ours.solver_stats_["n_pruned"] == int(ours.cv_pruned_.sum())
    # Without pruning every score is within the fits' accuracy; the choice is the same.
    full = GraphicalLassoCV(prune=False).fit(X)
    assert full.alpha_ == ours.alpha_ and not full.cv_pruned_.any()
    np.testing.assert_allclose(full.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], atol=3e-3)


@pytest.mark.parametrize("n", [10, 60])
def test_pinvh_matches_scipy_and_moore_penrose(n):
    # The alpha = 0 scores use our NumPy pseudo-inverse (scipy.linalg is not imported
    # by the package); it must equal scipy's pinvh, rank-deficient case included.
    scipy_linalg = pytest.importorskip("scipy.linalg")
    from sparse_connectome.covariance._empirical import pinvh

    X = np.random.default_rng(n).standard_normal((n, 30))
    C = X.T @ X / n
    P = pinvh(C)
    ref = scipy_linalg.pinvh(C)
    assert np.abs(P - ref).max() <= 1e-10 * np.abs(ref).max()
    # Moore-Penrose identities.
    np.testing.assert_allclose(C @ P @ C, C, atol=1e-10 * np.abs(C).max())
    np.testing.assert_allclose(P @ C @ P, P, atol=1e-10 * np.abs(P).max())
    np.testing.assert_allclose(P, P.T, atol=1e-12 * np.abs(P).max())


def test_singular_training_folds_give_an_infinite_spread_not_nan():
    # n < p: the alpha = 0 fits (maximum likelihood) are singular and score -inf.
    import warnings

    X = np.random.default_rng(3).normal(size=(30, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est = GraphicalLassoCV(alphas=3, n_refinements=1).fit(X)
    std = est.cv_results_["std_test_score"]
    assert not np.isnan(std).any()
    assert np.isinf(std[-1]) and np.isneginf(est.cv_results_["mean_test_score"][-1])
    assert np.isfinite(est.alpha_) and est.alpha_ > 0


def test_refined_alphas_start_between_their_neighbours():
    # A refined grid's alpha lies between two fitted ones: its fit starts from their
    # solutions interpolated in log alpha (positive definite, closer than either end),
    # and converges to the same certified solution as a start from the larger alpha.
    from sparse_connectome.covariance._cv import _FoldPath
    from sparse_connectome.covariance._graphical_lasso import alpha_max, solve

    rng = np.random.default_rng(4)
    p = 30
    A = np.eye(p) + np.diag(np.full(p - 1, 0.4), 1) + np.diag(np.full(p - 1, 0.4), -1)
    X = rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=150)
    fold = _FoldPath(X[:120], X[120:])
    top = alpha_max(fold.S)
    hi, mid, lo = 0.3 * top, 0.2 * top, 0.1 * top
    fold.run(np.array([hi, lo]), 1e-6, 100)
    [fit] = fold.run(np.array([mid]), 1e-6, 100)
    between = fold.results[mid]
    from_hi = solve(fold.S, mid, 1e-6, 100, fold.results[hi].precision, True)
    assert fit.converged and between.duality_gap <= 1e-6 * p
    assert between.n_sweeps <= from_hi.n_sweeps
    # The interpolated start is closer to the solution than the larger alpha's.
    t = np.log(hi / mid) / np.log(hi / lo)
    start = (1 - t) * fold.results[hi].precision + t * fold.results[lo].precision
    f_mid = [graphical_lasso_objective(fold.S, th, mid) for th in (start, fold.results[hi].precision)]
    assert f_mid[0] - between.objective < 0.5 * (f_mid[1] - between.objective)
    np.testing.assert_allclose(between.precision, from_hi.precision, atol=1e-3)
    assert np.isfinite(fit.score)


@pytest.mark.parametrize("seed", range(6))
def test_a_pruned_fit_stops_only_when_its_score_cannot_compete(seed):
    # A fit pruned against a floor is below it even at its exact solution, by the error
    # bound sqrt(p * gap): checked against the fit solved to a tight gap. Oracle problems
    # with the folds' alphas far below the best (alpha_max / 20 and / 100).
    from sparse_connectome.covariance import _quic
    from sparse_connectome.covariance._cv import _FoldPath
    from sparse_connectome.covariance._graphical_lasso import STATUS_PRUNED, solve

    assert _quic.STATUS_PRUNED == STATUS_PRUNED
    p = (12, 25, 40)[seed % 3]
    X = sparse_problem(seed, p, 3 * p)
    X = X - X.mean(0)
    fold = _FoldPath(X[: 2 * p], X[2 * p:])
    upper = solve(fold.S, 0.3 * fold.top, 1e-6, 100, None, True)
    score_upper = fold.run(np.array([0.3 * fold.top]), 1e-6, 100)[0].score
    n_pruned = 0
    for fraction in (0.05, 0.01):
        alpha = fraction * fold.top
        floor = score_upper  # the fold's score at a larger alpha
        cut = (fold.S_test, floor, np.sqrt(p))
        res = solve(fold.S, alpha, 1e-6, 100, None, True, upper, fold.top, cut)
        exact = solve(fold.S, alpha, 1e-10, 200, None, True, upper, fold.top)
        exact_score = (np.sum(exact.logdet_rows) - np.sum(fold.S_test * exact.precision)
                       - p * np.log(2 * np.pi)) / 2
        if res.status == STATUS_PRUNED:
            n_pruned += 1
            assert not res.converged and res.duality_gap > 1e-6 * p
            score = (np.sum(res.logdet_rows) - np.sum(fold.S_test * res.precision)
                     - p * np.log(2 * np.pi)) / 2
            assert score + np.sqrt(p * res.duality_gap) < floor
            # The bound holds: the exact score is below the floor too, and within it.
            assert exact_score < floor
            assert abs(score - exact_score) <= np.sqrt(p * res.duality_gap)
            # The gap is honest: a true bound on the distance to the optimum.
            f = graphical_lasso_objective(fold.S, res.precision, alpha)
            f_star = graphical_lasso_objective(fold.S, exact.precision, alpha)
            assert f - f_star <= res.duality_gap * (1 + 1e-9) + 1e-12
        else:
            assert res.converged
    # Without a floor nothing is pruned.
    free = solve(fold.S, 0.01 * fold.top, 1e-6, 100, None, True, upper, fold.top)
    assert free.converged
    if seed == 0:
        assert n_pruned >= 1


def _fewer_samples_than_regions(p, n):
    """A fold of the benchmark's synthetic problem with 0.8 n < p training samples."""
    from _signals import _benchmark_problems
    from sparse_connectome.covariance._cv import _FoldPath

    X = _benchmark_problems().synthetic_problem(p, n)
    return _FoldPath(X[: int(0.8 * n)], X[int(0.8 * n):])


@pytest.mark.parametrize("p, n", [(60, 40), (100, 60)])
def test_the_anchor_gives_a_finite_true_gap_where_the_clipped_dual_point_is_singular(p, n):
    # With fewer samples than regions, a Newton step from the solution at alpha_max / 21
    # towards alpha_max / 100 leaves W = inv(Theta) whose projection into the dual box
    # is not positive definite: no gap. The anchor (the start's inverse scaled into the
    # box) is feasible and positive definite, and mixing it in gives a finite gap that
    # bounds the distance to the optimum.
    from sparse_connectome.covariance._duality_gap import factorised_gap
    from sparse_connectome.covariance._graphical_lasso import solve
    from sparse_connectome.covariance._pruning import anchor_dual_point, mixed_gap

    fold = _fewer_samples_than_regions(p, n)
    S, alpha = fold.S, fold.top / 100
    start = solve(S, fold.top / 21.5, 1e-6, 100, None, True)
    anchor = np.empty((p, p))
    assert anchor_dual_point(S, start.covariance, alpha, anchor)
    off = ~np.eye(p, dtype=bool)
    np.testing.assert_array_equal(np.diag(anchor), np.diag(S))
    assert np.all(np.abs(anchor - S)[off] <= alpha * (1 + 1e-12))
    assert np.linalg.eigvalsh(anchor)[0] > 0
    step = solve(S, alpha, 1e-6, 1, None, True, start)
    W, theta = step.covariance, step.precision
    f = graphical_lasso_objective(S, theta, alpha)
    work = np.empty((p, p))
    assert factorised_gap(S, W, alpha, f, work) == np.inf
    gap, n_fact = mixed_gap(S, W, alpha, f, anchor, work)
    assert np.isfinite(gap) and 1 <= n_fact <= 4
    f_star = solve(S, alpha, 1e-9, 500, None, True, step).objective
    assert f - f_star <= gap * (1 + 1e-9)
    # From the diagonal start diag(S_ii): (1 - r) S + r diag(S_ii), positive definite too.
    assert anchor_dual_point(S, np.diag(np.diag(S)), alpha, anchor)
    r = alpha / np.max(np.abs(S[off]))
    np.testing.assert_allclose(anchor, (1 - r) * S + r * np.diag(np.diag(S)), atol=1e-15)
    assert np.linalg.eigvalsh(anchor)[0] > 0


def test_with_fewer_samples_than_regions_a_hopeless_fit_is_pruned_at_once():
    # The held-out score at alpha_max / 100 falls far below the best after one Newton
    # step; with the anchor's gap the fit stops there (before: three steps, the first
    # ones without any gap). Its exact score is below the floor by more than the bound.
    from sparse_connectome.covariance._graphical_lasso import STATUS_PRUNED, solve

    p, n = 100, 60
    fold = _fewer_samples_than_regions(p, n)
    floor = fold.run(np.array([0.3 * fold.top]), 1e-4, 100)[0].score
    start = solve(fold.S, fold.top / 21.5, 1e-4, 100, None, True)
    alpha = fold.top / 100
    res = solve(fold.S, alpha, 1e-4, 100, None, True, start, fold.top,
                (fold.S_test, floor, np.sqrt(p)))
    assert res.status == STATUS_PRUNED and res.n_iter == 1
    exact = solve(fold.S, alpha, 1e-8, 500, None, True, start)
    score = (np.sum(res.logdet_rows) - np.sum(fold.S_test * res.precision)
             - p * np.log(2 * np.pi)) / 2
    exact_score = (np.sum(exact.logdet_rows) - np.sum(fold.S_test * exact.precision)
                   - p * np.log(2 * np.pi)) / 2
    assert exact_score + np.sqrt(p * res.duality_gap) < floor
    assert exact_score - score <= 0.1 * np.sqrt(p * res.duality_gap)


def test_pruning_keeps_the_choice_and_reports_the_pruned_fits():
    X = sparse_problem(2, 30, 90)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # pruned fits do not warn
        pruned = GraphicalLassoCV().fit(X)
    full = GraphicalLassoCV(prune=False).fit(X)
    assert pruned.alpha_ == full.alpha_
    np.testing.assert_allclose(pruned.precision_, full.precision_, atol=1e-8)
    assert pruned.cv_converged_ and full.cv_converged_
    assert pruned.cv_pruned_.shape == pruned.cv_duality_gaps_.shape
    assert pruned.cv_pruned_.any() and not full.cv_pruned_.any()
    assert not pruned.cv_pruned_[-1].any()  # alpha = 0 is not a fit
    # Only alphas below the best are pruned, and never polished ones.
    alphas = pruned.cv_results_["alphas"]
    rows = pruned.cv_pruned_.any(axis=1)
    assert np.all(alphas[rows] < pruned.alpha_)
    assert not np.any(rows & pruned.cv_polished_)
    # The pruned fits' gaps are above the fold tolerance; the others' within it.
    gaps = pruned.cv_duality_gaps_[:-1]
    assert np.all(gaps[pruned.cv_pruned_[:-1]] > 1e-4 * 30)
    assert np.all(gaps[~pruned.cv_pruned_[:-1]] <= 1e-4 * 30)
    # Less work for the same choice.
    assert pruned.solver_stats_["n_sweeps"] < full.solver_stats_["n_sweeps"]
    assert pruned.solver_stats_["n_pruned"] == int(pruned.cv_pruned_.sum())


def test_an_alpha_an_ulp_from_one_tried_is_the_same_alpha():
    # On this autocorrelated problem the third refinement lands one ulp away from an
    # alpha of the second: it is the same alpha (the same fits, not redone), so the
    # choice cannot depend on which of the two rounding twins a tie falls to.
    X = autocorrelated_problem(1010)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the final fit converges too
        ours = GraphicalLassoCV().fit(X)
    assert ours.converged_ and ours.cv_converged_
    alphas = np.sort(np.unique(ours.cv_results_["alphas"]))
    assert len(alphas) < len(ours.cv_results_["alphas"])  # an alpha listed twice
    assert np.all(np.diff(alphas) > 1e-12 * alphas[1:])
    n_unique = len(alphas) - 1  # without alpha = 0
    assert ours.solver_stats_["n_fits"] == 5 * n_unique + 1
    assert GraphicalLassoCV(prune=False).fit(X).alpha_ == ours.alpha_
