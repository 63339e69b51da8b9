"""The benchmarks' synthetic problems: a sparse precision with about four
neighbours per region (at most 10 % density), and n Gaussian samples of it,
standardised. The same (p, n) gives the same data (seeded by p)."""

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
