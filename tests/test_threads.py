"""The chain scheduler behind ``n_jobs``: order kept, one thread per chain at a time,
errors raised in the caller, every thread used."""

import threading
import time

import numpy as np
import pytest

from sparse_connectome._utils.threads import (
    check_n_jobs,
    effective_n_jobs,
    run_chains,
    thread_map,
)
from sparse_connectome.covariance import GraphicalLassoCV
from sparse_connectome.errors import ParameterError


class _Recorder:
    """Chains whose steps record which thread ran them and detect overlapping steps."""

    def __init__(self, n_chains: int):
        self.busy = [False] * n_chains
        self.overlaps = 0
        self.running = 0
        self.most_running = 0
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    def chain(self, k: int, n_steps: int, pause: float):
        for step in range(n_steps):
            with self.lock:
                if self.busy[k]:
                    self.overlaps += 1
                self.busy[k] = True
                self.running += 1
                self.most_running = max(self.most_running, self.running)
                self.threads.add(threading.get_ident())
            time.sleep(pause)  # releases the GIL, as the compiled solver does
            with self.lock:
                self.busy[k] = False
                self.running -= 1
            yield (k, step)


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
def test_chains_keep_their_order_and_never_run_two_steps_at_once(n_threads):
    lengths = [5, 1, 0, 7, 3]
    rec = _Recorder(len(lengths))
    chains = [rec.chain(k, n, 0.002) for k, n in enumerate(lengths)]
    out = run_chains(chains, n_threads, lengths)
    assert out == [[(k, s) for s in range(n)] for k, n in enumerate(lengths)]
    assert rec.overlaps == 0
    if n_threads == 1:
        assert rec.threads == {threading.get_ident()}
    assert 1 <= len(rec.threads) <= min(n_threads, len(lengths))


def test_two_threads_are_both_used_and_run_concurrently():
    rec = _Recorder(4)
    chains = [rec.chain(k, 4, 0.01) for k in range(4)]
    run_chains(chains, 2, [4] * 4)
    assert len(rec.threads) == 2
    assert rec.most_running == 2


def test_the_first_error_is_raised_in_the_caller():
    def failing():
        yield 1
        raise ValueError("chain 1 failed")

    def slow():
        for k in range(3):
            time.sleep(0.005)
            yield k

    with pytest.raises(ValueError, match="chain 1 failed"):
        run_chains([slow(), failing(), slow()], 2)
    with pytest.raises(ValueError, match="chain 1 failed"):
        run_chains([slow(), failing()], 1)


def test_thread_map_keeps_the_order():
    assert thread_map(lambda x: (time.sleep(0.001 * (x % 3)), x * 2)[1], range(10), 3) == \
        [2 * x for x in range(10)]
    assert thread_map(str, [], 2) == []


def test_n_jobs_rules():
    assert effective_n_jobs(None) == 1
    assert effective_n_jobs(1) == 1
    assert effective_n_jobs(-1) >= 1
    assert effective_n_jobs(-10_000) == 1
    for bad in (0, 1.5, "2", True):
        with pytest.raises(ParameterError, match="n_jobs"):
            check_n_jobs(bad)


def test_graphical_lasso_cv_results_do_not_depend_on_n_jobs():
    rng = np.random.default_rng(3)
    p = 12
    A = np.eye(p) + np.diag(np.full(p - 1, 0.4), 1) + np.diag(np.full(p - 1, 0.4), -1)
    X = rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=90)
    one = GraphicalLassoCV(n_jobs=None).fit(X)
    for n_jobs in (2, 3, -1):
        many = GraphicalLassoCV(n_jobs=n_jobs).fit(X)
        assert many.alpha_ == one.alpha_
        np.testing.assert_array_equal(many.precision_, one.precision_)
        np.testing.assert_array_equal(many.cv_results_["mean_test_score"],
                                      one.cv_results_["mean_test_score"])
        assert many.solver_stats_ == one.solver_stats_
    with pytest.raises(ParameterError, match="n_jobs"):
        GraphicalLassoCV(n_jobs=0).fit(X)
