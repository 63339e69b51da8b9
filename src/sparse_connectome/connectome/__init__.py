"""Stage 4 — connectivity matrices from region time series.

* :mod:`._measure`: :class:`ConnectivityMeasure` (covariance, correlation,
  partial correlation, precision, tangent space) and the helpers between
  matrices and vectors, and the score of an estimated support against a known one.
"""

from ._measure import (
                       ConnectivityMeasure,
                       cov_to_corr,
                       geometric_mean,
                       precision_to_partial_correlation,
                       support_recovery,
                       sym_matrix_to_vec,
                       vec_to_sym_matrix,
)

__all__ = [
    "ConnectivityMeasure",
    "cov_to_corr",
    "geometric_mean",
    "precision_to_partial_correlation",
    "support_recovery",
    "sym_matrix_to_vec",
    "vec_to_sym_matrix",
]

# Group sparse inverse covariance (several subjects, one shared support).
from ._group_sparse import (  # noqa: E402
    GroupSparseCovariance,
    empirical_covariances,
    group_sparse_alpha_max,
    group_sparse_covariance,
    group_sparse_objective,
)
from ._group_sparse_cv import GroupSparseCovarianceCV  # noqa: E402

__all__ += [
    "GroupSparseCovariance",
    "GroupSparseCovarianceCV",
    "empirical_covariances",
    "group_sparse_alpha_max",
    "group_sparse_covariance",
    "group_sparse_objective",
]

from ._group_sparse_stars import GroupSparseCovarianceStARS, group_sparse_stars  # noqa: E402

__all__ += ["GroupSparseCovarianceStARS", "group_sparse_stars"]
