"""Cross-validation folds: contiguous K-fold splits, and the forms ``cv`` may take."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError

__all__ = ["KFold", "check_cv"]


class KFold:
    """Contiguous K-fold splits without shuffling.

    The first ``n_samples % n_splits`` folds hold one sample more than the
    others (scikit-learn's ``KFold`` fold sizes).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import KFold
    >>> [test.tolist() for train, test in KFold(3).split(np.zeros(7))]
    [[0, 1, 2], [3, 4], [5, 6]]
    >>> next(KFold(3).split(np.zeros(7)))[0].tolist()  # the first training folds
    [3, 4, 5, 6]
    """

    def __init__(self, n_splits: int = 5):
        if isinstance(n_splits, bool) or not isinstance(n_splits, Integral) or n_splits < 2:
            raise ParameterError(f"cv must be an integer >= 2 folds, got {n_splits!r}")
        self.n_splits = int(n_splits)

    def split(self, X: Any, y: Any = None, groups: Any = None):
        n = len(X)
        if self.n_splits > n:
            raise InputError(
                f"cannot make {self.n_splits} folds from {n} samples; lower cv or give more samples"
            )
        sizes = np.full(self.n_splits, n // self.n_splits, dtype=int)
        sizes[: n % self.n_splits] += 1
        indices = np.arange(n)
        start = 0
        for size in sizes:
            test = indices[start:start + size]
            train = np.concatenate([indices[:start], indices[start + size:]])
            yield train, test
            start += size

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits


def check_cv(cv: Any, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Materialise the (train, test) index pairs of ``cv`` on ``X``.

    ``cv`` is None (5 folds), an int (that many contiguous folds), an object
    with ``split(X)``, or an iterable of (train, test) index pairs.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.covariance import check_cv
    >>> X = np.zeros((4, 3))
    >>> [(train.tolist(), test.tolist()) for train, test in check_cv(2, X)]
    [([2, 3], [0, 1]), ([0, 1], [2, 3])]
    >>> # Boolean masks become indices.
    >>> mask = np.array([True, True, False, False])
    >>> [(train.tolist(), test.tolist()) for train, test in check_cv([(mask, ~mask)], X)]
    [([0, 1], [2, 3])]
    """
    n = X.shape[0]
    if cv is None:
        cv = 5
    if isinstance(cv, (str, bytes, bool)):
        raise ParameterError(
            f"cv must be None, an int, an object with split(X) or an iterable of "
            f"(train, test) pairs, got {cv!r}"
        )
    if isinstance(cv, Integral):
        splits = list(KFold(cv).split(X))
    elif hasattr(cv, "split"):
        splits = list(cv.split(X))
    elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
        splits = list(cv)
    else:
        raise ParameterError(
            f"cv must be None, an int, an object with split(X) or an iterable of "
            f"(train, test) pairs, got {cv!r}"
        )
    out = []
    for k, pair in enumerate(splits):
        try:
            train, test = pair
        except (TypeError, ValueError):
            raise ParameterError(f"cv split {k} is not a (train, test) pair: {pair!r}") from None
        train = np.asarray(train)
        test = np.asarray(test)
        if train.dtype == bool:
            train = np.flatnonzero(train)
        if test.dtype == bool:
            test = np.flatnonzero(test)
        for name, idx in (("train", train), ("test", test)):
            if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
                raise ParameterError(f"cv split {k}: {name} indices must be a non-empty 1D "
                                     f"integer array, got {idx!r}")
            if idx.min() < -n or idx.max() >= n:
                raise ParameterError(f"cv split {k}: {name} indices out of range for "
                                     f"{n} samples")
        out.append((train, test))
    if not out:
        raise ParameterError("cv produced no (train, test) split")
    return out
