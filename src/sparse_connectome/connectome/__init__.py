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
