"""How the pipeline chooses the penalty: the estimator behind ``--selection``.

* ``cv``: :class:`~sparse_connectome.covariance.GraphicalLassoCV`, the seed's
  cross-validated likelihood (the best prediction of held-out data);
* ``ebic``: :class:`~sparse_connectome.covariance.GraphicalLassoEBIC`, the
  extended BIC (Foygel & Drton 2010);
* ``stars``: :class:`~sparse_connectome.covariance.GraphicalLassoStARS`, edge
  stability under subsampling (Liu, Roeder & Wasserman 2010), the best at
  recovering the true graph on our ground truth (``benchmarks/bench_selection.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError

__all__ = ["SELECTIONS", "make_estimator", "selection_of"]

#: ``--selection`` value -> estimator class name in :mod:`sparse_connectome.covariance`.
SELECTIONS = {"cv": "GraphicalLassoCV", "ebic": "GraphicalLassoEBIC",
              "stars": "GraphicalLassoStARS"}


def make_estimator(selection: str = "cv", *, alphas: Any = None, n_refinements: int = 4,
                   cv: Any = None, tol: float | None = None, max_iter: int = 100, gamma: float = 0.5,
                   beta: float = 0.05, n_subsamples: int = 20, random_state: int | None = 0,
                   n_jobs: int | None = None) -> Any:
    """The estimator of a penalty selection, with the options that apply to it.

    ``alphas=None`` keeps the estimator's own default grid (4 values then
    refined for ``cv``, 40 for ``ebic`` and ``stars``), ``tol=None`` its own
    tolerance (``cv``: a final fit exact to a duality gap of 1e-10 per region).
    ``n_jobs`` threads fit the folds (``cv``) or subsamples (``stars``) at once,
    with the same results. Options of the other selections are ignored.

    Examples
    --------
    >>> make_estimator("stars", n_subsamples=10).n_subsamples
    10
    >>> type(make_estimator()).__name__, make_estimator().tol
    ('GraphicalLassoCV', 1e-10)
    """
    from .. import covariance

    if selection not in SELECTIONS:
        raise ParameterError(f"selection={selection!r}; expected one of {', '.join(SELECTIONS)}")
    grid = {} if alphas is None else {"alphas": alphas}
    common = dict(grid, max_iter=max_iter)
    if tol is not None:
        common["tol"] = tol
    if selection == "cv":
        return covariance.GraphicalLassoCV(n_refinements=n_refinements, cv=cv, n_jobs=n_jobs,
                                           **common)
    if selection == "ebic":
        return covariance.GraphicalLassoEBIC(gamma=gamma, **common)
    return covariance.GraphicalLassoStARS(beta=beta, n_subsamples=n_subsamples,
                                          random_state=random_state, n_jobs=n_jobs, **common)


def selection_of(estimator: Any) -> str | None:
    """The ``--selection`` name of an estimator, or None for another estimator.

    Examples
    --------
    >>> selection_of(make_estimator("ebic"))
    'ebic'
    """
    names = {name: key for key, name in SELECTIONS.items()}
    return names.get(type(estimator).__name__)
