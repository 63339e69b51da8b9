"""Test signals shared by the solver tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def autocorrelated_problem(seed: int) -> np.ndarray:
    """fMRI-like region signals (n x p, standardised): a random sparse Gaussian graphical
    model (10-159 regions, n from 0.4p to 4p) sampled as AR(1) series (coefficient up to
    0.8) with a slow linear drift. The same seed gives the same signals."""
    rng = np.random.default_rng(seed)
    p = int(rng.integers(10, 160))
    n = int(max(20, p * rng.uniform(0.4, 4)))
    density = rng.uniform(0.02, 0.3)
    A = np.zeros((p, p))
    mask = np.triu(rng.random((p, p)) < density, 1)
    A[mask] = rng.uniform(-0.5, 0.5, mask.sum())
    A = A + A.T
    A += np.eye(p) * (max(0, -np.linalg.eigvalsh(A)[0]) + rng.uniform(0.05, 0.5))
    Z = rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=n)
    phi = rng.uniform(0, 0.8)
    X = np.empty_like(Z)
    X[0] = Z[0]
    for t in range(1, n):
        X[t] = phi * X[t - 1] + np.sqrt(1 - phi**2) * Z[t]
    X += rng.uniform(0, 0.5) * np.linspace(-1, 1, n)[:, None] * rng.standard_normal(p)
    return (X - X.mean(0)) / X.std(0)



def _benchmark_problems():
    """``benchmarks/_problems.py`` (the benchmarks' problem generators), by its path."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_problems.py"
    spec = importlib.util.spec_from_file_location("_benchmark_problems", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: fMRI-like signals sharing a global signal (ill-conditioned): the benchmark's generator.
global_signal_problem = _benchmark_problems().global_signal_problem
