"""Ground-truth connectomes and the region signals they generate."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import InputError, ParameterError, ShapeMismatchError

logger = logging.getLogger(__name__)

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def make_rng(random_state) -> np.random.Generator:
    """A numpy Generator from a seed, or the given Generator itself (shared draws).

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate.regions import make_rng
    >>> rng = np.random.default_rng(1)
    >>> make_rng(rng) is rng
    True
    >>> make_rng(0).random() == make_rng(0).random()  # same seed, same draws
    True
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"random_state must be None, an int or a numpy Generator; "
                             f"got {random_state!r}") from exc


def _check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ParameterError(f"{name} must lie in [0, 1]; got {value}")
    return value


# --------------------------------------------------------------------------- #
# Ground truth
# --------------------------------------------------------------------------- #
def make_sparse_precision(
    n_regions: int,
    networks: Sequence | None = None,
    *,
    density_within: float = 0.8,
    density_between: float = 0.08,
    partial_corr_range: tuple[float, float] = (0.25, 0.5),
    positive_fraction: float = 0.8,
    min_eigenvalue: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """A sparse, well-conditioned precision matrix whose edges follow networks.

    Each pair of regions is an edge with probability ``density_within`` when both
    belong to the same network and ``density_between`` otherwise. An edge gets a
    partial correlation whose magnitude is uniform in ``partial_corr_range``,
    positive with probability ``positive_fraction`` (resting-state partial
    correlations are mostly positive). Should the resulting matrix have an
    eigenvalue below ``min_eigenvalue`` (in units of its unit diagonal), all
    partial correlations are shrunk by a common factor until it does not.
    Finally the matrix is rescaled so that its inverse (the covariance) has a unit
    diagonal; this leaves the partial correlations and the sparsity pattern as
    they were.

    Parameters
    ----------
    n_regions : int
        Number of regions (>= 2).
    networks : sequence of hashable, optional
        Network of each region. ``None`` puts every region in its own network, so
        that every pair uses ``density_between``.
    density_within, density_between : float
        Edge probabilities within and between networks.
    partial_corr_range : (float, float)
        Range of the magnitudes of the partial correlations, within (0, 1).
    positive_fraction : float
        Probability that an edge's partial correlation is positive.
    min_eigenvalue : float
        Lower bound on the eigenvalues of the unit-diagonal precision, in (0, 1);
        it bounds the condition number by ``(2 - min_eigenvalue) / min_eigenvalue``
        at most.
    random_state : int, numpy Generator or None

    Returns
    -------
    precision : ndarray of shape (n_regions, n_regions)
        Symmetric positive definite; ``inv(precision)`` has a unit diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import make_sparse_precision
    >>> precision = make_sparse_precision(6, networks=["a", "a", "a", "b", "b", "b"],
    ...                                   random_state=0)
    >>> precision.shape
    (6, 6)
    >>> bool(np.allclose(np.diag(np.linalg.inv(precision)), 1.0))
    True
    >>> bool(np.all(np.linalg.eigvalsh(precision) > 0))
    True
    """
    n_regions = int(n_regions)
    if n_regions < 2:
        raise ParameterError(f"n_regions must be at least 2; got {n_regions}")
    density_within = _check_probability("density_within", density_within)
    density_between = _check_probability("density_between", density_between)
    positive_fraction = _check_probability("positive_fraction", positive_fraction)
    lo, hi = (float(v) for v in partial_corr_range)
    if not 0.0 < lo <= hi < 1.0:
        raise ParameterError(f"partial_corr_range must satisfy 0 < low <= high < 1; "
                             f"got {partial_corr_range!r}")
    if not 0.0 < float(min_eigenvalue) < 1.0:
        raise ParameterError(f"min_eigenvalue must lie in (0, 1); got {min_eigenvalue}")
    if networks is None:
        labels = np.arange(n_regions)
    else:
        networks = list(networks)
        if len(networks) != n_regions:
            raise ShapeMismatchError(f"networks has {len(networks)} entries; expected "
                                     f"one per region ({n_regions})")
        labels = np.unique(np.asarray(networks, dtype=object).astype(str),
                           return_inverse=True)[1]
    rng = make_rng(random_state)

    same = labels[:, None] == labels[None, :]
    iu = np.triu_indices(n_regions, k=1)
    prob = np.where(same[iu], density_within, density_between)
    # Draw every random number for every pair, so that the draws do not depend on
    # which pairs became edges (changing a density only changes the edges).
    is_edge = rng.random(iu[0].size) < prob
    magnitude = rng.uniform(lo, hi, size=iu[0].size)
    sign = np.where(rng.random(iu[0].size) < positive_fraction, 1.0, -1.0)
    pcorr = np.zeros((n_regions, n_regions))
    pcorr[iu] = np.where(is_edge, magnitude * sign, 0.0)
    pcorr = pcorr + pcorr.T

    # precision = I - pcorr has partial correlations exactly pcorr.
    largest = np.linalg.eigvalsh(pcorr)[-1]
    if largest > 1.0 - min_eigenvalue:
        pcorr *= (1.0 - min_eigenvalue) / largest
    precision = np.eye(n_regions) - pcorr
    # Rescale to unit-variance signals: P' = D P D with D = sqrt(diag(inv(P))).
    scale = np.sqrt(np.diag(np.linalg.inv(precision)))
    precision = precision * np.outer(scale, scale)
    return (precision + precision.T) / 2.0


def partial_correlation(precision: np.ndarray) -> np.ndarray:
    """Partial correlations ``-P_ij / sqrt(P_ii P_jj)``, with a unit diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import partial_correlation
    >>> partial_correlation(np.array([[2.0, -1.0], [-1.0, 2.0]]))
    array([[1. , 0.5],
           [0.5, 1. ]])
    """
    precision = np.asarray(precision, dtype=float)
    d = np.sqrt(np.diag(precision))
    pcorr = -precision / np.outer(d, d)
    np.fill_diagonal(pcorr, 1.0)
    return pcorr


def sample_region_signals(
    precision: np.ndarray,
    n_samples: int,
    *,
    autocorrelation: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Draw region time series from ``N(0, inv(precision))``.

    Parameters
    ----------
    precision : ndarray of shape (n_regions, n_regions)
        Symmetric positive definite.
    n_samples : int
        Number of time points.
    autocorrelation : float
        Lag-one autocorrelation ``phi`` of an AR(1) applied identically to every
        region, in [0, 1). The innovations are scaled by ``sqrt(1 - phi**2)`` and
        the first sample is drawn from the stationary law, so every sample keeps
        the covariance ``inv(precision)`` exactly; only the samples' independence
        over time is lost (BOLD signals are slow). 0 gives independent samples.
    random_state : int, numpy Generator or None

    Returns
    -------
    signals : ndarray of shape (n_samples, n_regions)

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import sample_region_signals
    >>> precision = np.array([[2.0, -1.0], [-1.0, 2.0]])  # correlation 0.5
    >>> signals = sample_region_signals(precision, 5000, random_state=0)
    >>> signals.shape
    (5000, 2)
    >>> round(float(np.corrcoef(signals.T)[0, 1]), 1)
    0.5
    """
    precision = np.asarray(precision, dtype=float)
    if precision.ndim != 2 or precision.shape[0] != precision.shape[1]:
        raise ShapeMismatchError(f"precision must be a square matrix; got shape "
                                 f"{precision.shape}")
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ParameterError(f"n_samples must be positive; got {n_samples}")
    phi = float(autocorrelation)
    if not 0.0 <= phi < 1.0:
        raise ParameterError(f"autocorrelation must lie in [0, 1); got {phi}")
    try:
        chol = np.linalg.cholesky((precision + precision.T) / 2.0)
    except np.linalg.LinAlgError as exc:
        raise InputError("precision is not positive definite; expected a symmetric "
                         "positive definite matrix") from exc
    rng = make_rng(random_state)
    white = rng.standard_normal((n_samples, precision.shape[0]))
    if phi > 0:
        innov = np.sqrt(1.0 - phi**2)
        for t in range(1, n_samples):
            white[t] = phi * white[t - 1] + innov * white[t]
    # P = L L^T, x = L^{-T} z  =>  cov(x) = L^{-T} L^{-1} = P^{-1}.
    from scipy.linalg import solve_triangular

    return solve_triangular(chol.T, white.T, lower=False).T


# --------------------------------------------------------------------------- #
# Space
# --------------------------------------------------------------------------- #
