"""Covariance and sparse inverse covariance estimation.

* :func:`graphical_lasso`, :class:`GraphicalLasso`, :class:`GraphicalLassoCV`:
  the graphical lasso solved exactly (QUIC with exact screening, certified by
  the duality gap), with scikit-learn's API.
* :func:`empirical_covariance`, :class:`EmpiricalCovariance`,
  :func:`ledoit_wolf`, :class:`LedoitWolf`, :func:`log_likelihood`.
"""

from ._cv import GraphicalLassoCV, KFold, check_cv
from ._empirical import (
                         EmpiricalCovariance,
                         LedoitWolf,
                         empirical_covariance,
                         ledoit_wolf,
                         ledoit_wolf_shrinkage,
                         log_likelihood,
)
from ._graphical_lasso import GraphicalLasso, alpha_max, graphical_lasso, graphical_lasso_objective

__all__ = [
    "graphical_lasso",
    "GraphicalLasso",
    "GraphicalLassoCV",
    "empirical_covariance",
    "EmpiricalCovariance",
    "ledoit_wolf",
    "ledoit_wolf_shrinkage",
    "LedoitWolf",
    "log_likelihood",
    "alpha_max",
    "graphical_lasso_objective",
    "KFold",
    "check_cv",
]
