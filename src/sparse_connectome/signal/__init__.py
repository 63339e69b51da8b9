"""Stage 2a — cleaning of region time series.

* :mod:`._clean`: :func:`clean` (detrend, filter, confound regression,
  scrubbing, standardization, in nilearn's order) and its steps;
* :mod:`._filters`: the numerical filters (Butterworth, cosine drift,
  detrending, censored-volume interpolation), pure array functions;
* :mod:`._inputs`: validation of signals, confounds and sample masks at the
  boundary.
"""

from ._clean import butterworth, clean, standardize_signal
from ._inputs import ConfoundsLike, load_confounds_matrix

__all__ = ["ConfoundsLike", "butterworth", "clean", "load_confounds_matrix", "standardize_signal"]
