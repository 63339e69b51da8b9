"""A cohort of synthetic subjects: one group graph, individual connectomes.

The model is the one a group sparse estimator (Varoquaux et al., NeurIPS 2010)
assumes: the subjects share most of the support of their precision matrices,
and differ in the weights of the edges, plus a few individual edges.

- :func:`make_individual_precision` perturbs a group precision into one
  subject's (arrays in, arrays out);
- :func:`make_cohort_precisions` draws the group precision and every subject's;
- :func:`simulate_cohort_subject` simulates one subject's region signals, BOLD
  image and confounds on maps and tissues shared by the whole cohort (computed
  once, which is what makes a cohort cheap).

Every random stream is derived from one seed with :func:`cohort_rng`: the group
stream and subject ``k``'s stream depend on ``(seed, k)`` only, so that subject
``k`` is the same whatever the size of the cohort.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .._utils.bunch import Bunch
from ..errors import ParameterError, ShapeMismatchError
from .bold import make_motion, simulate_bold
from .confounds import compute_confounds
from .regions import make_sparse_precision, partial_correlation, sample_region_signals

__all__ = [
    "cohort_rng",
    "make_individual_precision",
    "make_cohort_precisions",
    "simulate_cohort_subject",
]

logger = logging.getLogger(__name__)


def cohort_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of member ``index`` of a cohort (0: the group, k >= 1: subject k).

    Streams come from :class:`numpy.random.SeedSequence` spawn keys, so they are
    statistically independent and each depends on ``(seed, index)`` only.

    Examples
    --------
    >>> a = cohort_rng(0, 1).standard_normal()
    >>> bool(a == cohort_rng(0, 1).standard_normal())
    True
    >>> bool(a == cohort_rng(0, 2).standard_normal())
    False
    """
    if int(seed) < 0 or int(index) < 0:
        raise ParameterError(f"seed and index must be non-negative; got {seed}, {index}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def _unit_variance(pcorr: np.ndarray, min_eigenvalue: float) -> np.ndarray:
    """Precision with partial correlations ``pcorr`` (shrunk if needed) and unit variances.

    As :func:`make_sparse_precision` does: if ``I - pcorr`` has an eigenvalue below
    ``min_eigenvalue``, every partial correlation is shrunk by one common factor;
    then ``P = D (I - pcorr) D`` with ``D`` chosen so that ``inv(P)`` has a unit
    diagonal (which changes neither the partial correlations nor the support).
    """
    largest = np.linalg.eigvalsh(pcorr)[-1]
    if largest > 1.0 - min_eigenvalue:
        pcorr = pcorr * ((1.0 - min_eigenvalue) / largest)
    precision = np.eye(pcorr.shape[0]) - pcorr
    scale = np.sqrt(np.diag(np.linalg.inv(precision)))
    precision = precision * np.outer(scale, scale)
    return (precision + precision.T) / 2.0


def make_individual_precision(
    group_precision: np.ndarray,
    *,
    weight_jitter: float = 0.3,
    edge_turnover: float = 0.05,
    partial_corr_range: tuple[float, float] = (0.25, 0.5),
    positive_fraction: float = 0.8,
    min_eigenvalue: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> Bunch:
    """One subject's precision: the group graph with individual weights and edges.

    With ``rho`` the group's partial correlations and ``E`` its edges:

    1. every group edge keeps its sign and gets an individual weight
       ``rho_ij * (1 + weight_jitter * u_ij)``, ``u_ij`` uniform in [-1, 1];
    2. ``m = max(1, round(edge_turnover * |E|))`` group edges, drawn at random,
       are removed, and ``m`` pairs outside ``E`` become edges, with a magnitude
       uniform in ``partial_corr_range``, positive with probability
       ``positive_fraction``;
    3. the result is made positive definite and scaled to unit variances as
       :func:`make_sparse_precision` does (partial correlations shrunk by a
       common factor only if the smallest eigenvalue of ``I - rho`` would fall
       below ``min_eigenvalue``).

    Parameters
    ----------
    group_precision : ndarray of shape (n_regions, n_regions)
        Symmetric positive definite; its non-zero off-diagonal entries are the
        group graph.
    weight_jitter : float
        Relative spread of the individual weights, in [0, 1).
    edge_turnover : float
        Fraction of the group edges removed (and as many new edges added), in
        [0, 1].
    partial_corr_range, positive_fraction, min_eigenvalue
        As in :func:`make_sparse_precision`, for the added edges and the bound
        on the conditioning.
    random_state : int, numpy Generator or None

    Returns
    -------
    Bunch
        ``precision`` (n_regions, n_regions), symmetric positive definite, its
        inverse with a unit diagonal; ``removed`` and ``added`` (m, 2) int
        arrays of the pairs ``(i, j)``, ``i < j``, that left or joined the group
        graph.

    Examples
    --------
    >>> group = make_sparse_precision(10, density_between=0.3, random_state=0)
    >>> sub = make_individual_precision(group, random_state=1)
    >>> bool(np.all(np.linalg.eigvalsh(sub.precision) > 0))
    True
    >>> len(sub.removed) == len(sub.added) >= 1
    True
    """
    group = np.asarray(group_precision, dtype=float)
    if group.ndim != 2 or group.shape[0] != group.shape[1] or group.shape[0] < 2:
        raise ShapeMismatchError(f"group_precision must be a square matrix of at least "
                                 f"2 regions; got shape {group.shape}")
    if not 0.0 <= float(weight_jitter) < 1.0:
        raise ParameterError(f"weight_jitter must lie in [0, 1); got {weight_jitter}")
    if not 0.0 <= float(edge_turnover) <= 1.0:
        raise ParameterError(f"edge_turnover must lie in [0, 1]; got {edge_turnover}")
    lo, hi = (float(v) for v in partial_corr_range)
    if not 0.0 < lo <= hi < 1.0:
        raise ParameterError(f"partial_corr_range must satisfy 0 < low <= high < 1; "
                             f"got {partial_corr_range!r}")
    rng = np.random.default_rng(random_state)
    n = group.shape[0]
    iu = np.triu_indices(n, k=1)
    rho = partial_correlation(group)[iu]
    edges = np.flatnonzero(group[iu] != 0)
    others = np.flatnonzero(group[iu] == 0)
    # Draw every number for every pair, so the draws do not depend on the graph.
    u = rng.uniform(-1.0, 1.0, size=rho.size)
    magnitude = rng.uniform(lo, hi, size=rho.size)
    sign = np.where(rng.random(rho.size) < positive_fraction, 1.0, -1.0)
    m = min(max(1, int(round(float(edge_turnover) * edges.size))), edges.size, others.size)
    if edge_turnover == 0 or edges.size == 0:
        m = 0
    removed = np.sort(rng.choice(edges, size=m, replace=False)) if m else edges[:0]
    added = np.sort(rng.choice(others, size=m, replace=False)) if m else others[:0]
    new = np.zeros(rho.size)
    new[edges] = rho[edges] * (1.0 + float(weight_jitter) * u[edges])
    new[removed] = 0.0
    new[added] = magnitude[added] * sign[added]
    pcorr = np.zeros((n, n))
    pcorr[iu] = new
    pcorr = pcorr + pcorr.T
    pairs = np.column_stack(iu)
    return Bunch(precision=_unit_variance(pcorr, float(min_eigenvalue)),
                 removed=pairs[removed], added=pairs[added])


def make_cohort_precisions(
    n_subjects: int,
    n_regions: int,
    networks: Sequence | None = None,
    *,
    weight_jitter: float = 0.3,
    edge_turnover: float = 0.05,
    random_state: int = 0,
    **group_kwargs,
) -> Bunch:
    """The group precision and every subject's, from one seed.

    The group precision is :func:`make_sparse_precision` drawn from stream 0 of
    :func:`cohort_rng`; subject ``k`` (1-based) perturbs it with
    :func:`make_individual_precision` drawn from stream ``k``. That stream is
    also the one :func:`simulate_cohort_subject` goes on with, so a whole subject
    is a function of ``(random_state, k)``.

    Parameters
    ----------
    n_subjects, n_regions : int
    networks : sequence, optional
        Network of each region (edges are denser within networks).
    weight_jitter, edge_turnover : float
        Passed to :func:`make_individual_precision`.
    random_state : int
        The cohort's seed.
    **group_kwargs
        Passed to :func:`make_sparse_precision` (densities, ranges).

    Returns
    -------
    Bunch
        ``group_precision`` (p, p), ``precisions`` (n_subjects, p, p),
        ``removed`` and ``added`` (lists of (m, 2) pair arrays, one per subject).

    Examples
    --------
    >>> c = make_cohort_precisions(3, 12, density_between=0.2, random_state=0)
    >>> c.precisions.shape
    (3, 12, 12)
    """
    n_subjects = int(n_subjects)
    if n_subjects < 1:
        raise ParameterError(f"n_subjects must be at least 1; got {n_subjects}")
    group = make_sparse_precision(n_regions, networks, random_state=cohort_rng(random_state, 0),
                                  **group_kwargs)
    subs = [make_individual_precision(group, weight_jitter=weight_jitter,
                                      edge_turnover=edge_turnover,
                                      random_state=cohort_rng(random_state, k))
            for k in range(1, n_subjects + 1)]
    return Bunch(group_precision=group, precisions=np.stack([s.precision for s in subs]),
                 removed=[s.removed for s in subs], added=[s.added for s in subs])


def simulate_cohort_subject(
    precision: np.ndarray,
    maps: np.ndarray,
    tissues: tuple[np.ndarray, np.ndarray, np.ndarray],
    affine: np.ndarray,
    *,
    n_samples: int = 168,
    t_r: float = 2.0,
    n_spikes: int = 4,
    bold_kwargs: dict | None = None,
    random_state: int | np.random.Generator | None = None,
) -> Bunch:
    """One subject of a cohort on shared maps and tissues.

    As :func:`simulate_subject` but for a given precision, with maps and tissue
    fractions computed once for the whole cohort rather than per subject.

    Parameters
    ----------
    precision : ndarray of shape (n_regions, n_regions)
        The subject's true precision.
    maps : ndarray of shape (*grid, n_regions)
        From :func:`make_blob_maps`.
    tissues : (gm, wm, csf)
        From :func:`tissue_probabilities`.
    affine : ndarray of shape (4, 4)
    n_samples, t_r : int, float
        Volumes and repetition time (s).
    n_spikes : int
        Motion spikes.
    bold_kwargs : dict, optional
        Passed to :func:`simulate_bold`.
    random_state : int, numpy Generator or None

    Returns
    -------
    Bunch
        ``region_signals``, ``bold`` (float32), ``mask`` (bool), ``confounds``
        (DataFrame), ``sidecar`` (dict), ``motion``, ``spikes``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome import simulate, templates
    >>> affine = np.diag([6.0, 6.0, 6.0, 1.0])
    >>> affine[:3, 3] = (-90, -126, -72)
    >>> shape = (31, 37, 31)
    >>> mask_img, gm_img = templates.load_mni152_brain_mask(), templates.load_mni152_gm()
    >>> mask = simulate.resample_to_grid(np.asarray(mask_img.dataobj, dtype=float),
    ...                                  mask_img.affine, shape, affine) >= 0.5
    >>> gm = simulate.resample_to_grid(gm_img.get_fdata(), gm_img.affine, shape, affine) * mask
    >>> coords = np.array([[-40.0, -20, 50], [40, -20, 50], [0, -60, 30]])
    >>> maps = simulate.make_blob_maps(coords, shape, affine, mask)
    >>> tissues = simulate.tissue_probabilities(mask, gm, affine)
    >>> sub = simulate_cohort_subject(np.eye(3), maps, tissues, affine, n_samples=40,
    ...                               random_state=0)
    >>> sub.bold.shape, sub.region_signals.shape
    ((31, 37, 31, 40), (40, 3))
    """
    rng = np.random.default_rng(random_state)
    signals = sample_region_signals(precision, n_samples, random_state=rng)
    motion = make_motion(n_samples, n_spikes=n_spikes, random_state=rng)
    sim = simulate_bold(signals, maps, tissues, affine, motion.params, spikes=motion.spikes,
                        t_r=t_r, random_state=rng, **(bold_kwargs or {}))
    confounds, sidecar = compute_confounds(sim.bold, tissues, motion.params, t_r)
    return Bunch(region_signals=signals, bold=sim.bold, mask=sim.brain, confounds=confounds,
                 sidecar=sidecar, motion=motion.params, spikes=motion.spikes)
