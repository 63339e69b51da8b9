"""Independent chains of dependent steps, run on a few threads.

A cross-validation path is a chain: the fits of one fold go from the largest
alpha to the smallest, each warm-started from the one before, while different
folds are independent. The compiled solver releases the GIL, so folds run in
threads that share the warm starts with the caller's memory.

The scheduler here is a list scheduler at the granularity of a single step: a
free thread takes, among the chains that no thread is advancing, the one with
the most steps left. Handing whole chains to threads (joblib's unit of work)
leaves one thread alone with the last of five folds on two cores; stepping the
chains keeps both busy until the last steps. It also waits on a condition
variable rather than polling (joblib's thread backend sleeps 10 ms between
checks, which measured as much as the fits themselves at 100 regions).

Which thread runs a step never changes the results: each chain is advanced by
one thread at a time, in order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from numbers import Integral
from typing import Any, TypeVar

from ..errors import ParameterError

__all__ = ["check_n_jobs", "effective_n_jobs", "run_chains", "thread_map"]

T = TypeVar("T")
R = TypeVar("R")


def check_n_jobs(n_jobs: Any) -> int | None:
    """Validate an ``n_jobs`` parameter: None or a non-zero integer.

    Examples
    --------
    >>> from sparse_connectome._utils.threads import check_n_jobs
    >>> check_n_jobs(None), check_n_jobs(2), check_n_jobs(-1)
    (None, 2, -1)
    >>> check_n_jobs(0)
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ParameterError: n_jobs must be None or a non-zero integer (-1: all cores), got 0
    """
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs == 0:
        raise ParameterError(f"n_jobs must be None or a non-zero integer (-1: all cores), "
                             f"got {n_jobs!r}")
    return int(n_jobs)


def effective_n_jobs(n_jobs: Any) -> int:
    """The number of threads ``n_jobs`` asks for: None is 1, -1 all cores, -2 all but one.

    Examples
    --------
    >>> import os
    >>> from sparse_connectome._utils.threads import effective_n_jobs
    >>> effective_n_jobs(None), effective_n_jobs(3)
    (1, 3)
    >>> effective_n_jobs(-1) == (os.cpu_count() or 1)
    True
    """
    n_jobs = check_n_jobs(n_jobs)
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


class _Board:
    """The shared state of a ``run_chains`` call, guarded by one condition variable."""

    def __init__(self, chains: Sequence[Iterator[Any]], lengths: Sequence[int]):
        self.chains = chains
        self.left = list(lengths)
        self.results: list[list[Any]] = [[] for _ in chains]
        self.ready = set(range(len(chains)))
        self.unfinished = len(chains)
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def take(self) -> int | None:
        """The chain to advance next, or None when every chain is done (or one failed)."""
        with self.cond:
            while not self.ready and self.unfinished and self.error is None:
                self.cond.wait()
            if self.error is not None or not self.ready:
                return None
            # Most steps left first (the chain that would otherwise finish last);
            # ties to the first chain.
            k = max(self.ready, key=lambda i: (self.left[i], -i))
            self.ready.discard(k)
            return k

    def work(self) -> None:
        """Advance chains one step at a time until none is left."""
        while (k := self.take()) is not None:
            try:
                item = next(self.chains[k])
            except StopIteration:
                with self.cond:
                    self.unfinished -= 1
                    self.cond.notify_all()
                continue
            except BaseException as exc:  # re-raised in the caller's thread
                with self.cond:
                    if self.error is None:
                        self.error = exc
                    self.cond.notify_all()
                return
            with self.cond:
                self.results[k].append(item)
                self.left[k] -= 1
                self.ready.add(k)
                self.cond.notify_all()


def run_chains(chains: Sequence[Iterator[T]], n_threads: int,
               lengths: Sequence[int] | None = None) -> list[list[T]]:
    """Exhaust independent iterators on up to ``n_threads`` threads; their items, in order.

    Each iterator is advanced by one thread at a time, so its steps run in order
    and may depend on each other; different iterators run concurrently. A free
    thread advances the available chain with the most steps left (``lengths``,
    the expected number of items of each chain; equal when not given). The
    calling thread is one of the threads. The first exception raised by a chain
    stops the scheduling and is raised here once the running steps end.

    Parameters
    ----------
    chains : sequence of iterators
    n_threads : int
        Threads to use (1: in order, in this thread).
    lengths : sequence of int, optional

    Returns
    -------
    list of lists
        The items of each chain, in the chains' order.

    Examples
    --------
    >>> from sparse_connectome._utils.threads import run_chains
    >>> chains = [iter(range(k, k + 3)) for k in (0, 10, 20)]
    >>> run_chains(chains, n_threads=2)
    [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
    """
    chains = list(chains)
    if n_threads <= 1 or len(chains) <= 1:
        return [list(chain) for chain in chains]
    board = _Board(chains, lengths if lengths is not None else [0] * len(chains))
    helpers = [threading.Thread(target=board.work, daemon=True)
               for _ in range(min(n_threads, len(chains)) - 1)]
    for thread in helpers:
        thread.start()
    try:
        board.work()
    finally:
        for thread in helpers:
            thread.join()
    if board.error is not None:
        raise board.error
    return board.results


def thread_map(function: Callable[[T], R], items: Iterable[T], n_threads: int) -> list[R]:
    """``[function(item) for item in items]`` on up to ``n_threads`` threads.

    Examples
    --------
    >>> from sparse_connectome._utils.threads import thread_map
    >>> thread_map(lambda x: x * x, range(5), n_threads=2)
    [0, 1, 4, 9, 16]
    """
    items = list(items)
    chains = [_one_call(function, item) for item in items]
    return [out[0] for out in run_chains(chains, n_threads, [1] * len(items))]


def _one_call(function: Callable[[T], R], item: T) -> Iterator[R]:
    yield function(item)
