"""The cohort's engine: a Dask distributed client, local or remote, and the loop
that hands runs to it and collects their rows.

* By default a :class:`distributed.LocalCluster` sized to the machine: one
  process per worker, one thread each (the graphical lasso and BLAS are
  single-threaded per run, so runs in parallel use the cores), and a memory
  limit per worker (the machine's memory shared out; the streaming extraction
  keeps a run far below it).
* ``scheduler`` (an address such as ``tcp://10.0.0.1:8786``) or
  ``scheduler_file`` (written by ``dask scheduler --scheduler-file``, or by
  dask-jobqueue) runs the same code on an existing cluster.

A worker that dies mid-run (killed, out of memory) loses only that run's
attempt: the scheduler gives the task to another worker. Dask is imported
lazily: it costs about a second, which only the cohort command pays.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError

__all__ = ["check_engine_options", "default_n_workers", "dask_client", "map_runs"]

logger = logging.getLogger(__name__)

#: Seconds to wait for an existing scheduler before giving up with a clear error.
CONNECT_TIMEOUT_S = 10


def default_n_workers(n_tasks: int) -> int:
    """As many workers as cores this process may use, and no more than tasks.

    Examples
    --------
    >>> default_n_workers(1)
    1
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_tasks))


def check_engine_options(n_workers: int | None, scheduler: str | None,
                          scheduler_file: str | os.PathLike | None) -> None:
    if scheduler is not None and scheduler_file is not None:
        raise ParameterError("--scheduler and --scheduler-file were both given; pass one")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int)
                                  or n_workers < 1):
        raise ParameterError(f"n_workers={n_workers!r}; expected a positive integer")
    if scheduler_file is not None and not Path(scheduler_file).is_file():
        raise InputError(f"scheduler file {str(scheduler_file)!r} does not exist; expected the "
                         "JSON file written by 'dask scheduler --scheduler-file'")


def _connect(scheduler: str | None, scheduler_file: str | os.PathLike | None) -> Any:
    from distributed import Client

    where = (f"scheduler {scheduler!r}" if scheduler is not None
             else f"scheduler file {str(scheduler_file)!r}")
    try:
        if scheduler is not None:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        return Client(scheduler_file=str(scheduler_file), timeout=CONNECT_TIMEOUT_S,
                      set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError, KeyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"cannot reach the Dask {where}: {reason[:300]}; expected a running "
                         "scheduler (dask scheduler) reachable from this machine") from None


def _quiet_distributed_logs() -> None:
    """Raise distributed's loggers in this process to CRITICAL (run on workers at shutdown)."""
    names = ["distributed"] + [name for name in logging.root.manager.loggerDict
                               if name.startswith("distributed.")]
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def dask_client(n_tasks: int, *, n_workers: int | None = None, scheduler: str | None = None,
                scheduler_file: str | os.PathLike | None = None,
                closing: list[threading.Thread] | None = None) -> Iterator[Any]:
    """A connected :class:`distributed.Client`; a LocalCluster when no scheduler is given.

    With ``closing``, a local cluster is shut down in a thread appended to that
    list (join it before the process ends): its workers take a second or two to
    stop, which the caller can spend on the group level instead of waiting.
    """
    check_engine_options(n_workers, scheduler, scheduler_file)
    if scheduler is not None or scheduler_file is not None:
        client = _connect(scheduler, scheduler_file)
        try:
            yield client
        finally:
            client.close()
        return
    from distributed import Client, LocalCluster

    n = n_workers or default_n_workers(n_tasks)
    # One thread per worker and no BLAS threads: parallelism is across runs.
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           memory_limit="auto", dashboard_address=None,
                           env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    client = Client(cluster, set_as_default=False)
    logger.info("Dask LocalCluster: %d workers x 1 thread", n)

    def close() -> None:
        # Every result is in by now. A worker whose heartbeat is in flight when
        # the scheduler stops logs a traceback (a known race in distributed);
        # at this point that is noise on the user's terminal, so the worker and
        # nanny processes are quieted first. Failures were recorded per run.
        for nanny in (False, True):
            try:
                client.run(_quiet_distributed_logs, nanny=nanny)
            except Exception as exc:  # a worker already gone is fine
                logger.debug("could not quiet the workers' logs before shutdown: %s", exc)
        client.close()
        cluster.close()

    try:
        yield client
    except BaseException:
        close()
        raise
    if closing is None:
        close()
    else:
        thread = threading.Thread(target=close, name="close-local-cluster")
        thread.start()
        closing.append(thread)


def map_runs(client: Any, function: Callable, runs: Sequence[Any], *args: Any,
             on_lost: Callable[[Any, str], dict], progress: bool = False,
             description: str = "runs") -> list[dict]:
    """Run ``function(run, *args)`` for every run on the cluster; rows in the runs' order.

    A task whose workers all died (``KilledWorker``) or that cannot be run
    becomes ``on_lost(run, reason)``: the other runs go on.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = {client.submit(function, run, *args, key=f"connectome-{run.key}-{i}",
                             pure=False): i for i, run in enumerate(runs)}
    rows: list[dict | None] = [None] * len(runs)
    with client.as_current(), tqdm(total=len(runs), desc=description, unit="run",
                                   disable=not progress, file=sys.stderr) as bar:
        for future in as_completed(futures):
            i = futures[future]
            try:
                rows[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost task fails its run alone
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
                rows[i] = on_lost(runs[i], reason)
            bar.update(1)
            row = rows[i]
            if row.get("status") == "failed":
                logger.info("%s failed: %s", runs[i].key, row.get("error"))
    return [row for row in rows if row is not None]
