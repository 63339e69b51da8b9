"""Covariance and sparse inverse covariance estimation.

* :func:`graphical_lasso`, :class:`GraphicalLasso`, :class:`GraphicalLassoCV`:
  the graphical lasso solved exactly (QUIC with exact screening, certified by
  the duality gap), with scikit-learn's API.
* :func:`empirical_covariance`, :class:`EmpiricalCovariance`,
  :func:`ledoit_wolf`, :class:`LedoitWolf`, :func:`log_likelihood`.
* :class:`GraphicalLassoEBIC`, :class:`GraphicalLassoStARS` (and their functions):
  the penalty chosen for graph recovery, by the extended BIC or by stability (StARS).
"""

from ._cv import GraphicalLassoCV
from ._ebic import GraphicalLassoEBIC, graphical_lasso_ebic
from ._empirical import (
                         EmpiricalCovariance,
                         LedoitWolf,
                         empirical_covariance,
                         ledoit_wolf,
                         ledoit_wolf_shrinkage,
                         log_likelihood,
)
from ._graphical_lasso import GraphicalLasso, alpha_max, graphical_lasso, graphical_lasso_objective
from ._splits import KFold, check_cv
from ._stars import GraphicalLassoStARS, graphical_lasso_stars

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
    "graphical_lasso_ebic",
    "GraphicalLassoEBIC",
    "graphical_lasso_stars",
    "GraphicalLassoStARS",
]
