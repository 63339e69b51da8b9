"""Shared fixtures.

``demo`` is the embedded demo subject, written once per test session into a
temporary data folder (generation takes a few seconds).
"""

from __future__ import annotations

import warnings

import matplotlib
import pytest

matplotlib.use("Agg")


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
