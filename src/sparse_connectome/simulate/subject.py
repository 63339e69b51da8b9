"""A whole synthetic subject in one call."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .._utils.bunch import Bunch
from .anatomy import make_blob_maps, tissue_probabilities
from .bold import make_motion, simulate_bold
from .confounds import compute_confounds
from .regions import make_rng, make_sparse_precision, sample_region_signals

logger = logging.getLogger(__name__)


def simulate_subject(
    coords_mm: np.ndarray,
    mask: np.ndarray,
    gm: np.ndarray,
    affine: np.ndarray,
    *,
    networks: Sequence | None = None,
    n_samples: int = 168,
    t_r: float = 2.0,
    fwhm_mm: float = 14.0,
    density_within: float = 0.8,
    density_between: float = 0.08,
    partial_corr_range: tuple[float, float] = (0.25, 0.5),
    signal_autocorrelation: float = 0.0,
    n_spikes: int = 4,
    bold_kwargs: dict | None = None,
    random_state: int | np.random.Generator | None = None,
) -> Bunch:
    """Simulate one subject: ground truth, maps, BOLD image and confounds.

    Parameters
    ----------
    coords_mm : ndarray of shape (n_regions, 3)
        Region centres (mm).
    mask : ndarray of bool
        Brain mask on the target grid.
    gm : ndarray
        Grey-matter fraction on the same grid.
    affine : ndarray of shape (4, 4)
        The grid's affine.
    networks : sequence, optional
        Network of each region; edges are denser within networks.
    n_samples, t_r : int, float
        Length of the run (volumes) and repetition time (s).
    fwhm_mm : float
        Width of the region blobs.
    density_within, density_between, partial_corr_range
        Passed to :func:`make_sparse_precision`.
    signal_autocorrelation : float
        Passed to :func:`sample_region_signals`.
    n_spikes : int
        Motion spikes (:func:`make_motion`).
    bold_kwargs : dict, optional
        Amplitudes passed to :func:`simulate_bold`.
    random_state : int, numpy Generator or None

    Returns
    -------
    Bunch
        ``precision``, ``region_signals``, ``maps`` (float32), ``mask`` (bool),
        ``bold`` (float32), ``confounds`` (DataFrame), ``sidecar`` (dict),
        ``motion``, ``spikes``, ``tissues`` and ``simulation`` (the output of
        :func:`simulate_bold`).

    Examples
    --------
    Three regions on the bundled MNI152 template, at 6 mm:

    >>> import numpy as np
    >>> from sparse_connectome import simulate, templates
    >>> affine = np.diag([6.0, 6.0, 6.0, 1.0])
    >>> affine[:3, 3] = (-90, -126, -72)
    >>> shape = (31, 37, 31)
    >>> mask_img, gm_img = templates.load_mni152_brain_mask(), templates.load_mni152_gm()
    >>> mask = simulate.resample_to_grid(np.asarray(mask_img.dataobj, dtype=float),
    ...                                  mask_img.affine, shape, affine) >= 0.5
    >>> gm = simulate.resample_to_grid(gm_img.get_fdata(), gm_img.affine, shape, affine) * mask
    >>> subject = simulate.simulate_subject([[-40, -20, 50], [40, -20, 50], [0, -60, 30]],
    ...                                     mask, gm, affine, n_samples=40, n_spikes=1,
    ...                                     random_state=0)
    >>> subject.bold.shape, subject.precision.shape
    ((31, 37, 31, 40), (3, 3))
    >>> subject.confounds.shape[0], "framewise_displacement" in subject.confounds
    (40, True)
    """
    rng = make_rng(random_state)
    coords = np.asarray(coords_mm, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    affine = np.asarray(affine, dtype=float)
    precision = make_sparse_precision(coords.shape[0], networks,
                                      density_within=density_within,
                                      density_between=density_between,
                                      partial_corr_range=partial_corr_range,
                                      random_state=rng)
    signals = sample_region_signals(precision, n_samples,
                                    autocorrelation=signal_autocorrelation, random_state=rng)
    maps = make_blob_maps(coords, mask.shape, affine, mask, fwhm_mm=fwhm_mm)
    tissues = tissue_probabilities(mask, gm, affine)
    motion = make_motion(n_samples, n_spikes=n_spikes, random_state=rng)
    sim = simulate_bold(signals, maps, tissues, affine, motion.params, spikes=motion.spikes,
                        t_r=t_r, random_state=rng, **(bold_kwargs or {}))
    confounds, sidecar = compute_confounds(sim.bold, tissues, motion.params, t_r)
    return Bunch(precision=precision, region_signals=signals, maps=maps, mask=sim.brain,
                 bold=sim.bold, confounds=confounds, sidecar=sidecar, motion=motion.params,
                 spikes=motion.spikes, tissues=tissues, simulation=sim)
