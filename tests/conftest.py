"""Shared fixtures.

``demo`` is the embedded demo subject, written once per test session into a
temporary data folder (generation takes a few seconds).
"""

from __future__ import annotations

import os
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the README's command): one worker per core this process may use, at
    most 8; each worker loads the compiled kernels and the oracles (up to ~1 GB)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo_data")


@pytest.fixture(scope="session")
def demo(demo_dir):
    from sparse_connectome.datasets import load_demo

    return load_demo(data_dir=demo_dir, random_state=0)


@pytest.fixture(autouse=True)
def _no_stray_nilearn_warnings():
    # nilearn emits deprecation chatter that is noise for our oracle tests.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="nilearn")
        warnings.filterwarnings("ignore", category=FutureWarning, module="nilearn")
        yield


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the browser tests skip, saying why, where it is missing)."""
    from _browser import launch_browser

    yield from launch_browser()
