"""Exact screening of the graphical lasso: the solution's diagonal blocks, known in advance.

The connected components of the graph ``|S_ij| > alpha`` are the diagonal
blocks of the solution (Witten, Friedman & Simon 2011; Mazumder & Hastie
2012): each block is solved on its own, and a region alone is ``1 / S_ii``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["components", "warm_inverse_usable"]


@njit(cache=True, nogil=True)
def components(S, alpha):
    """Labels of the connected components of the graph ``|S_ij| > alpha``."""
    p = S.shape[0]
    parent = np.arange(p)
    for i in range(p):
        for j in range(i + 1, p):
            if abs(S[i, j]) > alpha:
                ri = i
                while parent[ri] != ri:
                    ri = parent[ri]
                rj = j
                while parent[rj] != rj:
                    rj = parent[rj]
                if ri != rj:
                    if ri < rj:
                        parent[rj] = ri
                    else:
                        parent[ri] = rj
                # Path compression keeps the trees shallow.
                k = i
                while parent[k] != k:
                    nxt = parent[k]
                    parent[k] = min(ri, rj)
                    k = nxt
                k = j
                while parent[k] != k:
                    nxt = parent[k]
                    parent[k] = min(ri, rj)
                    k = nxt
    labels = np.empty(p, np.int64)
    for i in range(p):
        r = i
        while parent[r] != r:
            r = parent[r]
        labels[i] = r
    return labels


@njit(cache=True, nogil=True)
def warm_inverse_usable(theta_init, labels):
    """Whether ``theta_init`` is block diagonal on these components (so that the
    blocks of its inverse are the inverses of its blocks)."""
    p = theta_init.shape[0]
    for i in range(p):
        for j in range(i + 1, p):
            if labels[i] != labels[j] and theta_init[i, j] != 0.0:
                return False
    return True
