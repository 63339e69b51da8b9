"""The benchmarks' synthetic problems. The same arguments give the same data.

* ``synthetic_problem``: a sparse precision with about four neighbours per region
  (at most 10 % density), and n Gaussian samples of it, standardised (seeded by p);
  well conditioned.
* ``global_signal_problem``: fMRI-like signals sharing a global signal (also the
  tests' ill-conditioned family, see ``tests/_signals.py``).
"""

from __future__ import annotations

import numpy as np


def synthetic_problem(p: int, n: int) -> np.ndarray:
    """``n`` standardised samples (n x p) of a random sparse Gaussian graphical model."""
    rng = np.random.default_rng(p)
    A = np.zeros((p, p))
    mask = np.triu(rng.random((p, p)) < min(0.1, 4.0 / p), k=1)
    A[mask] = rng.uniform(-0.4, 0.4, mask.sum())
    A = A + A.T
    A += np.eye(p) * (max(0.0, -np.linalg.eigvalsh(A)[0]) + 0.2)
    X = rng.multivariate_normal(np.zeros(p), np.linalg.inv(A), size=n)
    return (X - X.mean(0)) / X.std(0)


def global_signal_problem(seed: int, p: int, n: int) -> np.ndarray:
    """fMRI-like region signals (n x p, standardised) that share a global signal: a random
    sparse Gaussian graphical model (about five neighbours per region, mostly positive
    partial correlations), plus a common signal loading 0.2-0.8 on every region (as
    without global signal regression), sampled as AR(1) series (coefficients 0.2-0.7)
    with slow drifts. The covariance is then dominated by one direction, which makes
    ``W (x) W`` ill-conditioned."""
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
