"""graphical_lasso / GraphicalLasso: oracle (scikit-learn), identities (duality gap, KKT),
screening, warm starts, degenerate inputs, ground truth on the demo subject."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _signals import autocorrelated_problem, global_signal_problem
from sparse_connectome.connectome import support_recovery
from sparse_connectome.covariance import (
    EmpiricalCovariance,
    GraphicalLasso,
    LedoitWolf,
    alpha_max,
    empirical_covariance,
    graphical_lasso,
    graphical_lasso_objective,
    ledoit_wolf,
    log_likelihood,
)
from sparse_connectome.covariance._empirical import held_out_mle_score
from sparse_connectome.errors import ConvergenceWarning, InputError, ParameterError

sk_cov = pytest.importorskip("sklearn.covariance")


def sparse_precision(p, rng, density=0.1, strength=0.4):
    """A random sparse SPD precision matrix with unit-ish diagonal."""
    A = np.zeros((p, p))
    mask = np.triu(rng.random((p, p)) < density, k=1)
    A[mask] = rng.uniform(-strength, strength, mask.sum())
    A = A + A.T
    A += np.eye(p) * (max(0.0, -np.linalg.eigvalsh(A)[0]) + 0.2)
    return A


def sample(precision, n, rng):
    cov = np.linalg.inv(precision)
    return rng.multivariate_normal(np.zeros(len(cov)), cov, size=n)


def make_problem(kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "sparse":
        p, n = 30, 120
        X = sample(sparse_precision(p, rng), n, rng)
    elif kind == "n<p":
        p, n = 40, 25
        X = sample(sparse_precision(p, rng), n, rng)
    elif kind == "nearly singular":
        p, n = 25, 200
        X = rng.standard_normal((n, p))
        X[:, 1] = X[:, 0] + 1e-3 * rng.standard_normal(n)  # two almost identical regions
        X[:, 2] = X[:, 3] - X[:, 4] + 1e-3 * rng.standard_normal(n)
    elif kind == "dense":
        p, n = 20, 60
        X = rng.standard_normal((n, p)) @ (np.eye(p) + 0.5 * rng.standard_normal((p, p)))
    elif kind == "scaled":
        p, n = 15, 80
        X = sample(sparse_precision(p, rng, density=0.3), n, rng) * rng.uniform(0.01, 100, p)
    else:
        raise ValueError(kind)
    return empirical_covariance(X)


PROBLEMS = [(kind, seed) for kind in ("sparse", "n<p", "nearly singular", "dense", "scaled")
            for seed in (0, 1)]


def independent_gap(S, precision, alpha):
    """Duality gap recomputed with numpy from the returned precision only."""
    W = np.linalg.inv(precision)
    U = np.clip(W - S, -alpha, alpha)
    np.fill_diagonal(U, 0.0)
    sign, logdet = np.linalg.slogdet(S + U)
    assert sign > 0
    return graphical_lasso_objective(S, precision, alpha) - (logdet + len(S))


def sklearn_solution(S, alpha):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, prec = sk_cov.graphical_lasso(S, alpha, tol=1e-8, max_iter=500)
        except FloatingPointError:
            return None
    if not np.all(np.isfinite(prec)):
        return None
    return prec


@pytest.mark.parametrize("kind,seed", PROBLEMS)
@pytest.mark.parametrize("fraction", [0.3, 0.08])
def test_objective_not_worse_than_sklearn(kind, seed, fraction):
    S = make_problem(kind, seed)
    alpha = fraction * alpha_max(S)
    cov, prec, n_iter, gap = graphical_lasso(S, alpha, tol=1e-10)
    ours = graphical_lasso_objective(S, prec, alpha)
    ref_prec = sklearn_solution(S, alpha)
    if ref_prec is None:  # scikit-learn failed (ill-conditioned); ours must still be certified
        assert gap <= 1e-10 * len(S) * 10
        return
    ref = graphical_lasso_objective(S, ref_prec, alpha)
    assert ours <= ref + 1e-8 * abs(ref), (ours, ref)
    np.testing.assert_allclose(cov @ prec, np.eye(len(S)), atol=1e-8)


@pytest.mark.parametrize("kind,seed", PROBLEMS)
def test_objective_at_defaults_not_worse_than_sklearn_at_defaults(kind, seed):
    # "Exact" holds at the defaults: with default parameters on both sides, our objective
    # is at most scikit-learn's + 1e-9 relative (its default tol leaves up to 1e-5).
    S = make_problem(kind, seed)
    p = len(S)
    for fraction in (0.3, 0.08, 0.02):
        alpha = fraction * alpha_max(S)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)  # ours must converge
            _, prec, _, gap = graphical_lasso(S, alpha)
        assert gap <= 1e-10 * p
        assert independent_gap(S, prec, alpha) <= 1e-10 * p + 1e-12 * p
        ours = graphical_lasso_objective(S, prec, alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ref_prec = sk_cov.graphical_lasso(S, alpha)[1]
            except FloatingPointError:
                continue  # scikit-learn failed: nothing to compare with
        ref = graphical_lasso_objective(S, ref_prec, alpha)
        if np.isfinite(ref):
            assert ours <= ref + 1e-9 * abs(ref), (fraction, ours, ref)


def test_objective_demo_subject(demo_time_series):
    S = empirical_covariance(demo_time_series)
    for fraction in (0.5, 0.2, 0.05):
        alpha = fraction * alpha_max(S)
        _, prec, _, _ = graphical_lasso(S, alpha, tol=1e-10)
        ours = graphical_lasso_objective(S, prec, alpha)
        ref = graphical_lasso_objective(S, sklearn_solution(S, alpha), alpha)
        assert ours <= ref + 1e-8 * abs(ref)


@pytest.mark.parametrize("kind", ["dense", "nearly singular"])
def test_dense_regime_converges_in_few_newton_iterations(kind):
    # At small alpha the solution is dense and the coordinate-descent direction alone is
    # inexact (its Hessian W x W is ill-conditioned): hundreds of linearly converging
    # Newton iterations were measured (no convergence in 1000 on the nearly singular
    # problem). The exact step on the direction's face restores Newton's fast convergence.
    S = make_problem(kind, 0)
    alpha = 0.01 * alpha_max(S)
    _, prec, n_iter, gap = graphical_lasso(S, alpha, tol=1e-8, max_iter=100)
    assert n_iter <= 40 and 0 <= gap <= 1e-8 * len(S)
    assert independent_gap(S, prec, alpha) <= 1e-8 * len(S) + 1e-9
    ref = sklearn_solution(S, alpha)
    if ref is not None:
        ours = graphical_lasso_objective(S, prec, alpha)
        assert ours <= graphical_lasso_objective(S, ref, alpha) + 1e-8 * abs(ours)


@pytest.mark.parametrize("max_iter", [1, 2, 3, 5])
def test_reported_gap_is_the_true_gap_when_stopped_early(max_iter):
    # The solver decides convergence from a bracket of the gap and factorises the dual
    # point only when needed; whatever the stopping point, the reported gap must be the
    # true gap of the returned precision (to the bracket's accuracy).
    S = make_problem("dense", 0)
    alpha = 0.02 * alpha_max(S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, prec, n_iter, gap = graphical_lasso(S, alpha, tol=1e-12, max_iter=max_iter,
                                               screening=False)
    assert n_iter == max_iter
    W = np.linalg.inv(prec)
    U = np.clip(W - S, -alpha, alpha)
    np.fill_diagonal(U, 0.0)
    if np.linalg.eigvalsh(S + U)[0] <= 0:
        # Far from the optimum the projected dual point may not be feasible: gap = inf.
        assert gap == np.inf
    else:
        true = independent_gap(S, prec, alpha)
        assert abs(gap - true) <= 1e-8 * max(1.0, abs(true))


@pytest.mark.parametrize("kind,seed", PROBLEMS[::2])
def test_gap_certified_on_return(kind, seed):
    S = make_problem(kind, seed)
    p = len(S)
    for tol in (1e-4, 1e-7):
        alpha = 0.1 * alpha_max(S)
        _, prec, _, gap = graphical_lasso(S, alpha, tol=tol)
        assert 0 <= gap <= tol * p
        # Recomputed independently from the returned precision: same certificate.
        assert independent_gap(S, prec, alpha) <= tol * p + 1e-9


@pytest.mark.parametrize("kind,seed", PROBLEMS[::2])
def test_kkt_conditions(kind, seed):
    S = make_problem(kind, seed)
    alpha = 0.1 * alpha_max(S)
    W, prec, _, _ = graphical_lasso(S, alpha, tol=1e-12, max_iter=200)
    W = np.linalg.inv(prec)
    off = ~np.eye(len(S), dtype=bool)
    zero = (prec == 0) & off
    nonzero = (prec != 0) & off
    scale = np.abs(S).max()
    assert np.all(np.abs((S - W)[zero]) <= alpha + 1e-6 * scale)
    np.testing.assert_allclose((W - S)[nonzero], alpha * np.sign(prec[nonzero]), atol=1e-6 * scale)
    np.testing.assert_allclose(np.diag(W), np.diag(S), atol=1e-6 * scale)
    assert zero.sum() > 0 and nonzero.sum() > 0  # both conditions were exercised


def test_screening_gives_the_same_solution():
    rng = np.random.default_rng(3)
    p = 30
    # Three independent groups: the thresholded covariance splits into blocks.
    blocks = [sparse_precision(10, rng, density=0.5) for _ in range(3)]
    prec_true = np.zeros((p, p))
    for k, b in enumerate(blocks):
        prec_true[10 * k:10 * k + 10, 10 * k:10 * k + 10] = b
    S = empirical_covariance(sample(prec_true, 2000, rng))
    for fraction in (0.6, 0.3, 0.1, 0.02):
        alpha = fraction * alpha_max(S)
        _, a, _, _, info_a = graphical_lasso(S, alpha, tol=1e-10, screening=True, return_info=True)
        _, b, _, _, info_b = graphical_lasso(S, alpha, tol=1e-10, screening=False, return_info=True)
        assert info_b.n_components == 1
        # Same objective to the certified accuracy; the minimiser itself is only
        # determined to about sqrt(gap).
        assert abs(info_a.objective - info_b.objective) <= 1e-9 * abs(info_b.objective)
        assert graphical_lasso_objective(S, a, alpha) == pytest.approx(info_a.objective, rel=1e-12)
        np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(b).max())
    # At 0.3 alpha_max the blocks are found.
    _, _, _, _, info = graphical_lasso(S, 0.3 * alpha_max(S), return_info=True)
    assert info.n_components >= 3


def test_alpha_at_or_above_alpha_max_is_exactly_diagonal():
    S = make_problem("sparse", 0)
    for alpha in (alpha_max(S), 2 * alpha_max(S)):
        cov, prec, n_iter, gap = graphical_lasso(S, alpha)
        np.testing.assert_array_equal(prec, np.diag(1.0 / np.diag(S)))
        np.testing.assert_array_equal(cov, np.diag(np.diag(S)))
        assert n_iter == 0 and gap == 0.0


def test_warm_start_same_solution_fewer_iterations():
    S = make_problem("sparse", 1)
    a1, a2 = 0.2 * alpha_max(S), 0.15 * alpha_max(S)
    _, p1, _, _ = graphical_lasso(S, a1, tol=1e-10)
    _, cold, it_cold, _ = graphical_lasso(S, a2, tol=1e-10)
    _, warm, it_warm, _ = graphical_lasso(S, a2, tol=1e-10, init=p1)
    np.testing.assert_allclose(warm, cold, atol=1e-7)
    assert it_warm <= it_cold
    # A start that is not positive definite falls back to the diagonal start.
    _, bad, _, _ = graphical_lasso(S, a2, tol=1e-10, init=-np.eye(len(S)))
    np.testing.assert_allclose(bad, cold, atol=1e-7)


def test_non_convergence_warns_and_is_recorded():
    S = make_problem("dense", 0)
    alpha = 0.05 * alpha_max(S)
    with pytest.warns(ConvergenceWarning, match="duality gap .* Raise max_iter"):
        _, _, n_iter, gap = graphical_lasso(S, alpha, tol=1e-12, max_iter=1)
    assert n_iter == 1 and gap > 1e-12 * len(S)
    mixing = np.random.default_rng(1).standard_normal((20, 20))
    X = np.random.default_rng(0).standard_normal((60, 20)) @ mixing
    with pytest.warns(ConvergenceWarning):
        est = GraphicalLasso(alpha=0.05 * alpha_max(empirical_covariance(X)), tol=1e-12,
                             max_iter=1).fit(X)
    assert est.converged_ is False and est.duality_gap_ > 0


def test_fewer_samples_than_regions_has_a_solution():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 30))
    S = empirical_covariance(X)
    assert np.linalg.matrix_rank(S) < 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, prec, _, gap = graphical_lasso(S, 0.2 * alpha_max(S), tol=1e-8)
    assert np.all(np.linalg.eigvalsh(prec) > 0) and gap <= 30e-8


def test_degenerate_inputs():
    S = make_problem("sparse", 0)
    bad = S.copy()
    bad[0, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        graphical_lasso(bad, 0.1)
    bad = S.copy()
    bad[0, 1] += 0.1
    with pytest.raises(InputError, match="not symmetric.*0.1"):
        graphical_lasso(bad, 0.1)
    bad = S - 2 * np.linalg.eigvalsh(S)[-1] * np.outer(np.eye(len(S))[0], np.eye(len(S))[0]) * 0
    bad = S.copy()
    bad[0, 1] = bad[1, 0] = 3 * np.sqrt(S[0, 0] * S[1, 1])
    with pytest.raises(InputError, match="not positive semi-definite.*smallest eigenvalue"):
        graphical_lasso(bad, 0.1)
    for alpha in (0, -1.0, np.nan, "a"):
        with pytest.raises(ParameterError, match="alpha"):
            graphical_lasso(S, alpha)
    with pytest.raises(InputError, match="square"):
        graphical_lasso(np.ones((3, 4)), 0.1)
    # A constant region: no solution exists, the error names the column.
    X = np.random.default_rng(0).standard_normal((50, 5))
    X[:, 3] = 7.0
    with pytest.raises(InputError, match="column 3"):
        GraphicalLasso(alpha=0.1).fit(X)
    X[0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or Inf"):
        GraphicalLasso(alpha=0.1).fit(X)
    with pytest.raises(ParameterError, match="mode"):
        GraphicalLasso(mode="cd").fit(np.random.default_rng(0).standard_normal((20, 3)))


def test_estimator_matches_function_and_sklearn_attributes():
    rng = np.random.default_rng(5)
    X = sample(sparse_precision(12, rng), 100, rng) + 5.0
    est = GraphicalLasso(alpha=0.05, tol=1e-10).fit(X)
    cov, prec, n_iter, gap = graphical_lasso(empirical_covariance(X), 0.05, tol=1e-10)
    np.testing.assert_allclose(est.precision_, prec)
    np.testing.assert_allclose(est.location_, X.mean(axis=0))
    assert est.converged_ and est.n_iter_ == n_iter and est.duality_gap_ == gap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sk_cov.GraphicalLasso(alpha=0.05, tol=1e-10, max_iter=1000).fit(X)
    S = empirical_covariance(X)
    ours = graphical_lasso_objective(S, est.precision_, 0.05)
    assert ours <= graphical_lasso_objective(S, ref.precision_, 0.05) + 1e-8 * abs(ours)
    np.testing.assert_allclose(est.precision_, ref.precision_, atol=1e-3)
    assert est.score(X) == pytest.approx(ref.score(X), abs=1e-3)
    assert GraphicalLasso(assume_centered=True).fit(X - X.mean(0)).location_.tolist() == [0.0] * 12


def test_empirical_ledoit_wolf_log_likelihood_vs_sklearn():
    rng = np.random.default_rng(0)
    for n, p in ((50, 10), (8, 20)):
        X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + 1.0
        np.testing.assert_allclose(empirical_covariance(X), sk_cov.empirical_covariance(X))
        ours, s = ledoit_wolf(X)
        ref, s_ref = sk_cov.ledoit_wolf(X)
        np.testing.assert_allclose(ours, ref, atol=1e-12)
        assert s == pytest.approx(s_ref, abs=1e-12)
        lw = LedoitWolf().fit(X)
        lw_ref = sk_cov.LedoitWolf().fit(X)
        np.testing.assert_allclose(lw.covariance_, lw_ref.covariance_, atol=1e-12)
        assert lw.shrinkage_ == pytest.approx(lw_ref.shrinkage_)
        assert lw.score(X[:5]) == pytest.approx(lw_ref.score(X[:5]))
        ec = EmpiricalCovariance().fit(X[: n // 2])
        ec_ref = sk_cov.EmpiricalCovariance().fit(X[: n // 2])
        assert ec.score(X[n // 2:]) == pytest.approx(ec_ref.score(X[n // 2:]))
        # The CV's score at alpha = 0: the same value, -inf when n // 2 < p (singular).
        fast = held_out_mle_score(X[: n // 2], X[n // 2:])
        assert fast == pytest.approx(ec.score(X[n // 2:]), rel=1e-12)
        given = held_out_mle_score(X[: n // 2], X[n // 2:], empirical_covariance(X[: n // 2]))
        assert given == pytest.approx(fast, rel=1e-12)
        assert np.isfinite(fast) == (n // 2 > p)
        prec = np.linalg.inv(ours)
        assert log_likelihood(empirical_covariance(X), prec) == pytest.approx(
            sk_cov.log_likelihood(sk_cov.empirical_covariance(X), prec))


def test_ground_truth_support_recovery_on_demo(demo_time_series, demo):
    from sparse_connectome.covariance import GraphicalLassoCV

    est = GraphicalLassoCV().fit(demo_time_series)
    rec = support_recovery(est.precision_, demo.true_precision)
    print(f"\ndemo support recovery: F1={rec.f1:.3f} precision={rec.precision:.3f} "
          f"recall={rec.recall:.3f} ({rec.n_estimated_edges} estimated, {rec.n_true_edges} true)")
    assert est.converged_
    # Cross-validation keeps almost every true edge and adds weaker ones: far better
    # than a random support of the same size (whose precision is the edge density).
    density = rec.n_true_edges / (39 * 38 / 2)
    assert rec.recall >= 0.9
    assert rec.precision > 2 * density
    assert rec.f1 > 0.3


@pytest.fixture(scope="module")
def demo_time_series(demo):
    return demo_region_signals(demo)


def demo_region_signals(demo):
    """The seed's extraction with nilearn's masker (cached on the session's demo Bunch)."""
    if "_test_time_series" not in demo:
        from nilearn.maskers import NiftiMapsMasker

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            demo["_test_time_series"] = NiftiMapsMasker(
                demo.maps, standardize="zscore_sample").fit_transform(
                demo.func[0], confounds=demo.confounds[0])
    return demo["_test_time_series"]


def test_cholesky_inverse_matches_the_inverse_and_refuses_a_singular_factor():
    # The solver's W = inv(Theta) comes from the line search's Cholesky factor (LAPACK
    # dpotri, bound for numba): it must equal the inverse, and say when it cannot.
    from sparse_connectome.covariance._lapack import cholesky_inverse

    rng = np.random.default_rng(3)
    for p in (1, 2, 7, 60):
        X = rng.standard_normal((3 * p, p))
        A = X.T @ X / p + np.eye(p) * 0.1
        out = np.empty_like(A)
        L = np.linalg.cholesky(A)
        assert cholesky_inverse(L, out)
        np.testing.assert_allclose(out, np.linalg.inv(A), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(out, out.T)
        np.testing.assert_array_equal(L, np.linalg.cholesky(A))  # the factor is untouched
    L = np.linalg.cholesky(np.eye(4) * 2.0)
    L[2, 2] = 0.0
    assert not cholesky_inverse(L, np.empty((4, 4)))


def _gap_by_eigenvalues(S, precision, alpha):
    """The gap at the projected dual point, from eigenvalues (no Cholesky, no slogdet)."""
    W = np.linalg.inv(precision)
    U = np.clip(W - S, -alpha, alpha)
    np.fill_diagonal(U, 0.0)
    eig_v = np.linalg.eigvalsh(S + U)
    if eig_v[0] <= 0:
        return np.inf
    return (-np.sum(np.log(np.linalg.eigvalsh(precision))) + np.sum(S * precision)
            + alpha * (np.abs(precision).sum() - np.abs(np.diag(precision)).sum())
            - np.sum(np.log(eig_v)) - len(S))


@pytest.mark.parametrize("kind,seed", PROBLEMS)
def test_gap_bounds_bracket_the_gap(kind, seed):
    # The solver decides convergence from an O(p^2) bracket of the duality gap and
    # factorises the dual point only when the bracket straddles the target: the bracket
    # must hold (identity: slackness + second-order term), on both of its branches
    # (few clipped entries: exact second-order term; many: a norm bound), and be tight
    # near the optimum (the upper bound exceeds the gap by O(rho^3)).
    from sparse_connectome.covariance._duality_gap import gap_bounds, gap_workspace

    S = make_problem(kind, seed)
    p = len(S)
    alpha = 0.1 * alpha_max(S)
    _, opt, _, _ = graphical_lasso(S, alpha, tol=1e-10)
    rng = np.random.default_rng(seed)
    checked = 0
    for scale in (0.0, 1e-6, 1e-4, 1e-3, 1e-2, 5e-2):
        noise = rng.standard_normal((p, p))
        precision = opt + scale * np.abs(opt).max() * (noise + noise.T) / 2
        if np.linalg.eigvalsh(precision)[0] <= 0:
            continue
        W = np.linalg.inv(precision)
        W = (W + W.T) / 2
        true = _gap_by_eigenvalues(S, precision, alpha)
        for capacity in (max(p // 2, 4), 0):  # exact second-order term; norm bound
            ws = gap_workspace(p) if capacity else (np.empty(0, np.int64), np.empty(0, np.int64),
                                                    np.empty(0), np.empty(p))
            lower, upper = gap_bounds(S, precision, W, alpha, *ws)
            slack = 1e-9 * (1.0 + abs(true)) if np.isfinite(true) else 0.0
            assert lower <= true + slack
            assert true <= upper + slack
            if scale == 0.0 and capacity:
                # At the solution: the bracket is as tight as the factorised gap is accurate.
                assert upper - lower <= 1e-12 + 1e-6 * upper
            checked += np.isfinite(upper)
    assert checked >= 4


def test_warm_start_with_inverse_needs_no_factorisation_to_start():
    # A fold's path hands each fit the previous solution with its inverse and
    # log-determinant: same solution as a plain warm start, two factorisations fewer,
    # and the log-determinant it reports is the precision's.
    from sparse_connectome.covariance._graphical_lasso import solve

    S = make_problem("sparse", 1)
    a1, a2 = 0.3 * alpha_max(S), 0.1 * alpha_max(S)
    first = solve(S, a1, 1e-8, 100, None, True)
    assert first.n_components > 1  # block diagonal: the warm inverse is used block by block
    plain = solve(S, a2, 1e-8, 100, first.precision, True)
    warm = solve(S, a2, 1e-8, 100, None, True, warm=first)
    assert warm.converged and plain.converged
    np.testing.assert_allclose(warm.precision, plain.precision, atol=1e-6)
    assert warm.n_factorizations <= plain.n_factorizations - 2
    for res in (first, plain, warm):
        sign, logdet = np.linalg.slogdet(res.precision)
        assert sign > 0 and np.sum(res.logdet_rows) == pytest.approx(logdet, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(res.covariance, np.linalg.inv(res.precision), rtol=1e-8,
                                   atol=1e-10)
    # The same alpha again (a polish): no factorisation at all when already converged.
    again = solve(S, a2, 1e-8, 100, None, True, warm=warm)
    assert again.n_iter == 0 and again.n_factorizations == 0
    np.testing.assert_array_equal(again.precision, warm.precision)
    # A warm start that is not block diagonal on this alpha's blocks (solved without
    # screening, at a smaller alpha) is factorised as a plain warm start.
    other = solve(S, 0.05 * alpha_max(S), 1e-8, 100, None, False)
    mixed = solve(S, a1, 1e-8, 100, None, True, warm=other)
    np.testing.assert_allclose(mixed.precision, first.precision, atol=1e-6)


def test_first_compile_is_announced_once(monkeypatch, caplog):
    # The first fit after installation compiles the solver (about a minute): the user is
    # told once, at INFO, and only when numba's cache has nothing for it.
    import logging
    from types import SimpleNamespace

    from sparse_connectome.covariance import _graphical_lasso as gl

    def kernel(index):
        def load():
            if isinstance(index, Exception):
                raise index
            return index
        return SimpleNamespace(_cache=SimpleNamespace(_cache_file=SimpleNamespace(_load_index=load)))

    caplog.set_level(logging.INFO, logger="sparse_connectome")
    for index, expected in (({}, 1), ({"sig": "entry"}, 0), (AttributeError("numba changed"), 0)):
        caplog.clear()
        monkeypatch.setattr(gl, "_COMPILE_CHECKED", False)
        gl._note_first_compile(kernel(index))
        gl._note_first_compile(kernel(index))  # once per process
        assert sum("compiling the graphical lasso solver" in r.getMessage()
                   for r in caplog.records) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_free_face_direction_is_the_exact_minimiser_on_the_face(seed):
    # Against a dense oracle: the model <G~, D> + tr(W D W D) / 2 over symmetric D on the
    # free pairs (the diagonal and the non-zeros of theta + D0) is a quadratic whose
    # Hessian, in those coordinates, is built here entry by entry.
    from sparse_connectome.covariance._dense_newton import free_face_newton_direction

    rng = np.random.default_rng(seed)
    p, alpha = 7, 0.1
    X = rng.standard_normal((40, p))
    S = np.cov(X.T, bias=True)
    theta = np.linalg.inv(S + 0.5 * np.eye(p))
    theta[np.abs(theta) < 0.03] = 0.0
    theta = 0.5 * (theta + theta.T) + 2.0 * np.eye(p)  # positive definite, sparse
    W = np.linalg.inv(theta)
    D0 = np.zeros((p, p))
    D0[0, 1] = D0[1, 0] = 0.3  # one pair joins the face
    k, l = np.argwhere(np.triu(theta, 1))[-1]
    D0[k, l] = D0[l, k] = -theta[k, l]  # and one leaves it: there D = -theta
    out = np.empty((p, p))
    cg = free_face_newton_direction(S, theta, W, alpha, D0, out, 1e-12)
    assert cg > 0
    sign = np.sign(theta + D0)
    pairs = [(i, i) for i in range(p)] + [(i, j) for i in range(p) for j in range(i + 1, p)
                                          if sign[i, j] != 0]

    def unit(i, j):
        E = np.zeros((p, p))
        E[i, j] = E[j, i] = 1.0
        return E

    fixed = np.where((sign == 0) & (theta != 0), -theta, 0.0)
    H = np.array([[np.sum(unit(*a) * (W @ unit(*b) @ W)) for b in pairs] for a in pairs])
    G = S - W + alpha * sign * (1 - np.eye(p)) + W @ fixed @ W
    g = np.array([np.sum(unit(*a) * G) for a in pairs])
    x = np.linalg.solve(H, -g)
    exact = fixed.copy()
    for (i, j), v in zip(pairs, x):
        exact[i, j] = exact[j, i] = v
    # The minimiser itself, not projected on the orthant (projected_path_step does that).
    np.testing.assert_allclose(out, exact, atol=1e-9)
    assert np.all((theta + out)[sign == 0] == 0.0)  # the face's zero pairs are zero


def _model(S, theta, W, alpha, D):
    off = ~np.eye(S.shape[0], dtype=bool)
    return (np.sum((S - W) * D) + 0.5 * np.sum((W @ D @ W) * D)
            + alpha * (np.abs(theta + D)[off].sum() - np.abs(theta)[off].sum()))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_projected_path_step_is_the_best_of_its_candidates_on_the_orthant(seed):
    # Against a dense oracle: the candidates D and P(D + t (target - D)), P setting to zero
    # the entries of theta + D that would change sign; the step is the best by the model.
    from sparse_connectome.covariance._dense_newton import model_value, projected_path_step

    rng = np.random.default_rng(seed)
    p, alpha = 9, 0.05
    S = np.cov(rng.standard_normal((60, p)).T, bias=True)
    theta = np.linalg.inv(S + 0.3 * np.eye(p))
    theta[np.abs(theta) < 0.2] = 0.0
    theta = 0.5 * (theta + theta.T) + np.eye(p)
    W = np.linalg.inv(theta)
    D = 0.05 * rng.standard_normal((p, p))
    D = 0.5 * (D + D.T)
    target = rng.standard_normal((p, p))  # far: many entries change sign on the way
    target = 0.5 * (target + target.T)
    ref = np.sign(theta + D)

    def projected(t):
        x = D + t * (target - D)
        flips = (np.sign(theta + x) * ref < 0) & ~np.eye(p, dtype=bool)
        x[flips] = -theta[flips]
        return x

    values = [_model(S, theta, W, alpha, D)]
    t = 1.0
    while t >= 0.0625:
        values.append(_model(S, theta, W, alpha, projected(t)))
        t /= 2
    out = D.copy()
    won = projected_path_step(S, theta, W, alpha, out, target, np.empty((p, p)))
    assert model_value(S, theta, W, alpha, out) == pytest.approx(
        _model(S, theta, W, alpha, out), rel=1e-12, abs=1e-12)
    got = _model(S, theta, W, alpha, out)
    assert got <= values[0] + 1e-12
    assert won == (got < values[0])
    # The search stops at the first t worse than the best so far: it returns the best of
    # the candidates up to there, never worse than the first improvement.
    assert any(got == pytest.approx(v, rel=1e-12, abs=1e-12) for v in values)
    # Never out of the orthant of theta + D.
    assert not np.any(((np.sign(theta + out) * ref) < 0) & ~np.eye(p, dtype=bool))


def test_an_ill_conditioned_sparse_problem_converges_at_the_default_tolerance():
    # Autocorrelated, drifting signals (fMRI-like): the sweeps' directions converge only
    # linearly and used to stall at a gap of 3.8e-7 against the default 1.1e-8 ("no
    # further descent"); near the target the exact step on the face takes over.
    X = autocorrelated_problem(1010)
    p = X.shape[1]
    S = empirical_covariance(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _, precision, _, gap, info = graphical_lasso(S, 0.10935734243013365, return_info=True)
    assert info.converged and gap <= 1e-10 * p
    assert info.n_cg > 0  # the exact face step was used
    np.testing.assert_allclose(graphical_lasso_objective(S, precision, 0.10935734243013365),
                               info.objective, rtol=1e-14)


@pytest.mark.parametrize("seed", [0, 3, 13])
def test_a_shared_global_signal_converges_in_few_newton_iterations(seed):
    # A global signal shared by every region (no global signal regression) makes
    # W (x) W ill-conditioned: the sweeps' directions still moved by 2-8 % after 40
    # sweeps and the outer iterations converged linearly (45-83 Newton iterations here;
    # 100 without convergence on 146-159 regions). When the sweeps stall, the exact step
    # on their face is tried too.
    X = global_signal_problem(seed, 80, 200)
    S = empirical_covariance(X)
    alpha = 0.1 * alpha_max(S)
    _, precision, n_iter, gap, info = graphical_lasso(S, alpha, return_info=True)
    assert info.converged and 0 <= gap <= 1e-10 * 80
    assert n_iter <= 25 and info.n_cg > 0
    assert independent_gap(S, precision, alpha) <= 1e-10 * 80 + 1e-9
    ref = sklearn_solution(S, alpha)
    if ref is not None:
        ours = graphical_lasso_objective(S, precision, alpha)
        assert ours <= graphical_lasso_objective(S, ref, alpha) + 1e-9 * abs(ours)


@pytest.mark.parametrize("seed, p, n", [(25, 150, 52), (111, 146, 62)])
def test_a_fit_stopped_at_the_rounding_floor_is_finished_on_its_support(seed, p, n):
    # A shared global signal and fewer volumes than regions, at alpha_max / 21: these fits
    # stopped at the rounding floor of f (no measurable decrease) with gaps of 9.0e-6 and
    # 1.9e-8 against the default target, 1.5e-8 (2 of 150 random such problems), though
    # their support was final. Exact Newton steps on the support, each judged by the
    # certified gap, finish them (see _endgame).
    X = global_signal_problem(seed, p, n)
    S = empirical_covariance(X)
    alpha = alpha_max(S) / 21
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _, precision, _, gap, info = graphical_lasso(S, alpha, return_info=True)
    assert info.converged and 0 <= gap <= 1e-10 * p
    assert independent_gap(S, precision, alpha) <= 1e-10 * p + 1e-9
    np.testing.assert_allclose(graphical_lasso_objective(S, precision, alpha), info.objective,
                               rtol=1e-12)


def test_certified_support_steps_keep_the_iterate_consistent_and_only_lower_the_gap():
    from sparse_connectome.covariance._duality_gap import gap_workspace
    from sparse_connectome.covariance._endgame import certified_support_steps

    rng = np.random.default_rng(11)
    p = 30
    S = empirical_covariance(sample(sparse_precision(p, rng), 90, rng))
    alpha = 0.2 * alpha_max(S)
    _, solution, _, _ = graphical_lasso(S, alpha, tol=1e-12)
    # The solution with its non-zeros moved by 1e-5 (relative): the support is right, the
    # values are not.
    noise = np.triu(rng.normal(0.0, 1e-5, (p, p)) * (solution != 0))
    theta = solution * (1.0 + noise + noise.T)
    W = np.linalg.inv(theta)
    f = graphical_lasso_objective(S, theta, alpha)
    gap = independent_gap(S, theta, alpha)
    counts = np.zeros(4)
    f_new, gap_new, logdet, _, steps = certified_support_steps(
        S, theta, W, alpha, f, gap, 1e-10 * p, np.empty((p, p)), gap_workspace(p), counts)
    assert steps >= 1 and counts[0] >= 2 * steps and counts[3] > 0
    assert gap_new < gap and gap_new <= 1e-10 * p
    # The iterate, its inverse, objective, log-determinant and gap agree.
    np.testing.assert_allclose(W @ theta, np.eye(p), atol=1e-10)
    assert f_new == pytest.approx(graphical_lasso_objective(S, theta, alpha), rel=1e-13)
    assert logdet == pytest.approx(np.linalg.slogdet(theta)[1], rel=1e-12)
    assert independent_gap(S, theta, alpha) <= gap_new + 1e-10
    assert np.array_equal(theta != 0, solution != 0)


def test_median_variance_inflation_is_one_over_one_minus_r_squared():
    # The solver widens its exact face step on strongly connected problems, judged by
    # Theta_ii W_ii = 1 / (1 - R_i^2): check that identity on a model of known R^2.
    from sparse_connectome.covariance._quic import _VIF_WIDE_FACE, _median_vif

    r = 0.6
    W = np.array([[1.0, r, 0.0], [r, 1.0, 0.0], [0.0, 0.0, 2.0]])
    theta = np.linalg.inv(W)
    # Regions 0 and 1 explain r^2 of each other's variance; region 2 is alone.
    assert _median_vif(theta, W) == pytest.approx(1.0 / (1.0 - r * r), rel=1e-12)
    assert _median_vif(np.eye(4), np.eye(4)) == 1.0
    # Independent regions stay below the threshold at the chosen alpha; regions that
    # share a strong common signal (as fMRI networks do) are past it.
    from sparse_connectome.covariance import GraphicalLassoCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 20))
    est = GraphicalLassoCV().fit(X)
    assert _median_vif(est.precision_, est.covariance_) < _VIF_WIDE_FACE
    est = GraphicalLassoCV().fit(X + 1.5 * rng.standard_normal((200, 1)))
    assert _median_vif(est.precision_, est.covariance_) > _VIF_WIDE_FACE
