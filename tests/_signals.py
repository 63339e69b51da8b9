"""Test signals shared by the solver tests."""

from __future__ import annotations

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


def global_signal_problem(seed: int, p: int, n: int) -> np.ndarray:
    """fMRI-like region signals (n x p, standardised) that share a global signal: a random
    sparse Gaussian graphical model (about five neighbours per region, mostly positive
    partial correlations), plus a common signal loading 0.2-0.8 on every region (as
    without global signal regression), sampled as AR(1) series (coefficients 0.2-0.7)
    with slow drifts. The covariance is then dominated by one direction, which makes
    ``W (x) W`` ill-conditioned. The same arguments give the same signals."""
    rng = np.random.default_rng(seed)
    A = np.zeros((p, p))
    mask = np.triu(rng.random((p, p)) < min(0.3, 5.0 / p), k=1)
    A[mask] = rng.uniform(-0.5, 0.5, mask.sum()) * np.where(rng.random(mask.sum()) < 0.8, -1, 1)
    A = A + A.T
    A += np.eye(p) * (max(0.0, -np.linalg.eigvalsh(A)[0]) + 0.3)
    Z = rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=n)
    Z += np.outer(rng.standard_normal(n), rng.uniform(0.2, 0.8, p))
    phi = rng.uniform(0.2, 0.7, p)
    X = np.empty_like(Z)
    X[0] = Z[0]
    for t in range(1, n):
        X[t] = phi * X[t - 1] + Z[t]
    time = np.arange(n) / n
    X += np.outer(np.cos(np.pi * time), rng.normal(0, 0.5, p)) + np.outer(time, rng.normal(0, 0.5, p))
    return (X - X.mean(0)) / X.std(0)
