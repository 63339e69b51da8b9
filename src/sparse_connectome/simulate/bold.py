"""The BOLD image: region signals in the voxels, plus motion, physiology, drift and noise."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .._utils.bunch import Bunch
from ..errors import ParameterError, ShapeMismatchError
from .anatomy import voxel_mm
from .regions import make_rng

logger = logging.getLogger(__name__)


def make_motion(n_samples: int, *, n_spikes: int = 4, drift_mm: float = 0.2,
                jitter_mm: float = 0.01, spike_mm: tuple[float, float] = (0.6, 1.5),
                random_state: int | np.random.Generator | None = None) -> Bunch:
    """Head-motion parameters as fMRIPrep reports them (mm and radians).

    A slow random walk (``drift_mm`` typical excursion), small frame-to-frame
    jitter and ``n_spikes`` abrupt movements, each a displacement of
    ``spike_mm`` (mm at 50 mm from the centre) held for one volume, after which the
    head comes back near its former position.

    Returns
    -------
    Bunch
        ``params`` (n_samples, 6) in the order of :data:`MOTION_COLUMNS`,
        ``spikes`` (sorted volume indices where a movement starts).

    Examples
    --------
    >>> from sparse_connectome.simulate import make_motion
    >>> motion = make_motion(100, n_spikes=2, random_state=0)
    >>> motion.params.shape, len(motion.spikes)
    ((100, 6), 2)
    """
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ParameterError(f"n_samples must be at least 2; got {n_samples}")
    n_spikes = int(n_spikes)
    # Candidate onsets away from the run's ends and at least 6 volumes apart.
    onsets = np.arange(4, n_samples - 4, 6)
    if not 0 <= n_spikes <= onsets.size:
        raise ParameterError(f"n_spikes must lie in [0, {onsets.size}] for {n_samples} "
                             f"volumes; got {n_spikes}")
    rng = make_rng(random_state)
    to_rad = 1.0 / 50.0  # 1 mm of arc at 50 mm from the centre
    steps = rng.standard_normal((n_samples, 6))
    walk = np.cumsum(steps, axis=0)
    walk -= walk.mean(axis=0)
    walk *= drift_mm / max(walk.std(), 1e-12)
    jitter = jitter_mm * rng.standard_normal((n_samples, 6))
    params = walk + jitter
    spikes = (np.sort(rng.choice(onsets, size=n_spikes, replace=False)) if n_spikes
              else np.zeros(0, int))
    for t in spikes:
        direction = rng.standard_normal(6)
        direction /= np.abs(direction).sum()
        jump = rng.uniform(*spike_mm) * direction
        params[t] += jump
        params[t + 1:] += 0.15 * jump  # the head does not quite come back
    params[:, 3:] *= to_rad
    return Bunch(params=params, spikes=spikes.astype(int))


def framewise_displacement(params: np.ndarray, radius_mm: float = 50.0) -> np.ndarray:
    """Power's framewise displacement (mm); the first value is NaN.

    ``FD_t = sum |d trans| + radius * sum |d rot|`` with rotations in radians.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import framewise_displacement
    >>> params = np.zeros((3, 6))
    >>> params[1, 0] = 0.5   # 0.5 mm along x, then back...
    >>> params[2, 3] = 0.01  # ...and a 0.01 rad rotation: 0.5 mm at 50 mm
    >>> framewise_displacement(params)
    array([nan, 0.5, 1. ])
    """
    params = np.asarray(params, dtype=float)
    if params.ndim != 2 or params.shape[1] != 6:
        raise ShapeMismatchError(f"motion parameters must have shape (n_samples, 6); "
                                 f"got {params.shape}")
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(axis=1) + float(radius_mm) * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def cosine_drift_basis(n_samples: int, t_r: float, period_s: float = 128.0) -> np.ndarray:
    """Discrete cosine (DCT-II) high-pass basis, as fMRIPrep's ``cosineXX`` columns.

    The number of cosines is ``floor(2 * n_samples * t_r / period_s) - 1`` (the
    constant term of the basis is left out), each of unit norm.

    Returns
    -------
    ndarray of shape (n_samples, n_cosines)

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.simulate import cosine_drift_basis
    >>> basis = cosine_drift_basis(168, t_r=2.0)
    >>> basis.shape
    (168, 4)
    >>> bool(np.allclose(basis.T @ basis, np.eye(4)))
    True
    """
    n_samples = int(n_samples)
    if float(t_r) <= 0 or float(period_s) <= 0:
        raise ParameterError(f"t_r and period_s must be positive; got {t_r}, {period_s}")
    order = int(np.floor(2.0 * n_samples * float(t_r) / float(period_s)))
    t = np.arange(n_samples)
    k = np.arange(1, max(order, 1))
    return np.sqrt(2.0 / n_samples) * np.cos(np.pi / n_samples * (t[:, None] + 0.5) * k)


def _band_noise(rng: np.random.Generator, n_samples: int, t_r: float,
                centre_hz: float, width_hz: float) -> np.ndarray:
    """Unit-variance Gaussian noise whose spectrum is a bump around ``centre_hz``."""
    freqs = np.fft.rfftfreq(n_samples, d=t_r)
    gain = np.exp(-0.5 * ((freqs - centre_hz) / width_hz) ** 2)
    spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * gain
    x = np.fft.irfft(spec, n=n_samples)
    x -= x.mean()
    return x / max(x.std(), 1e-12)


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], sigma_vox: float) -> np.ndarray:
    """Zero-mean, unit-variance spatially smooth Gaussian field."""
    f = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma_vox, mode="wrap")
    return (f - f.mean()) / max(f.std(), 1e-12)


# --------------------------------------------------------------------------- #
# The image
# --------------------------------------------------------------------------- #
# Fractional standard deviation of each physiological source in each tissue
# (csf, wm, gm), with the source's spectral bump (centre, width in Hz). Cardiac and
# respiratory cycles alias into the band below the Nyquist frequency at TR = 2 s;
# the slow sources stand for breathing depth / CO2 and white-matter fluctuations.
_PHYSIO_SOURCES = (
    # name,             centre, width,  csf,    wm,     gm
    ("cardiac",          0.12,  0.03,  0.020, 0.002, 0.003),
    ("respiration",      0.20,  0.03,  0.010, 0.004, 0.004),
    ("co2",              0.02,  0.015, 0.004, 0.003, 0.004),
    ("white_matter",     0.04,  0.02,  0.002, 0.008, 0.002),
)


def simulate_bold(
    region_signals: np.ndarray,
    maps: np.ndarray,
    tissues: tuple[np.ndarray, np.ndarray, np.ndarray],
    affine: np.ndarray,
    motion: np.ndarray,
    *,
    spikes: Sequence[int] = (),
    t_r: float = 2.0,
    bold_amplitude: float = 0.01,
    noise_level: float = 0.012,
    noise_autocorrelation: float = 0.25,
    motion_residual: float = 0.3,
    drift_level: float = 0.004,
    spike_level: float = 0.02,
    physio_scale: float = 1.0,
    return_components: bool = False,
    random_state: int | np.random.Generator | None = None,
) -> Bunch:
    """Project region signals into voxels and add realistic nuisance.

    In each voxel ``v`` of the brain (where the tissue fractions sum to 1)::

        y_v(t) = S_v * (1 + a * sum_r maps_vr x_r(t) + physio_v(t) + drift_v(t)
                        + spike_v(t) + noise_v(t)) + motion_v(t)

    ``S_v`` is a T2*-like baseline (CSF > grey > white matter, a smooth bias
    field, blurred edges); ``motion_v(t) = -k grad(S)_v . d_v(t)`` is the residual
    (fraction ``k = motion_residual``) of the intensity change that displacing the
    head by ``d_v(t)`` (translation plus rotation about the brain's centre)
    causes, so that its loadings are largest where the image has edges;
    ``physio`` are band-limited sources with tissue-specific, spatially varying
    loadings; ``drift`` is a slow linear and quadratic trend shared in part by the
    whole brain; ``spike`` is a spin-history-like intensity drop at each motion
    spike and the volume after it; ``noise`` is AR(1) thermal noise.

    Parameters
    ----------
    region_signals : ndarray of shape (n_samples, n_regions)
    maps : ndarray of shape (*grid, n_regions)
    tissues : (gm, wm, csf)
        Tissue fractions on the grid (zero outside the brain), as from
        :func:`tissue_probabilities`.
    affine : ndarray of shape (4, 4)
    motion : ndarray of shape (n_samples, 6)
        Motion parameters (mm, radians), as from :func:`make_motion`.
    spikes : sequence of int
        Volumes where a motion spike starts.
    t_r : float
        Repetition time (s).
    bold_amplitude : float
        Fractional signal change of a unit region signal at a map's peak.
    noise_level : float
        Fractional standard deviation of the thermal noise.
    noise_autocorrelation : float
        Lag-one autocorrelation of the thermal noise.
    motion_residual : float
        Fraction of the first-order motion effect left after realignment.
    drift_level : float
        Typical fractional excursion of the drift over the run.
    spike_level : float
        Fractional intensity drop at a motion spike.
    physio_scale : float
        Multiplies every physiological amplitude.
    return_components : bool
        Also return each contribution separately (memory: one more copy of the
        data per contribution).
    random_state : int, numpy Generator or None

    Returns
    -------
    Bunch
        ``bold`` (*grid, n_samples) float32, zero outside the brain;
        ``baseline`` (*grid) float; ``brain`` (*grid) bool;
        ``physio_signals`` (n_samples, n_sources) and ``physio_loadings``
        (n_sources, n_voxels, fractional); ``motion_loadings`` (6, n_voxels,
        intensity per mm or radian); ``components``: None, or with
        ``return_components`` a dict of the in-brain contributions
        (n_samples, n_voxels) in intensity units (``neural``, ``physio``,
        ``drift``, ``spike``, ``noise``, ``motion``). Voxels are those of
        ``brain``, in the order of ``bold[brain]``.

    Examples
    --------
    A small spherical "brain" of 6 mm voxels with two regions:

    >>> import numpy as np
    >>> from sparse_connectome import simulate
    >>> mask = ((np.indices((16, 16, 16)) - 7.5) ** 2).sum(axis=0) < 49
    >>> affine = np.diag([6.0, 6.0, 6.0, 1.0])
    >>> affine[:3, 3] = -45
    >>> tissues = simulate.tissue_probabilities(mask, 0.5 * mask, affine)
    >>> maps = simulate.make_blob_maps([[-20, 0, 0], [20, 0, 0]], mask.shape, affine, mask)
    >>> signals = np.random.default_rng(0).standard_normal((30, 2))
    >>> motion = simulate.make_motion(30, n_spikes=1, random_state=0)
    >>> sim = simulate.simulate_bold(signals, maps, tissues, affine, motion.params,
    ...                              spikes=motion.spikes, return_components=True,
    ...                              random_state=0)
    >>> sim.bold.shape, sim.bold.dtype
    ((16, 16, 16, 30), dtype('float32'))
    >>> bool(np.all(sim.bold[~sim.brain] == 0))
    True

    The image is the baseline plus its contributions:

    >>> sorted(sim.components)
    ['drift', 'motion', 'neural', 'noise', 'physio', 'spike']
    >>> total = sim.baseline[sim.brain] + sum(sim.components.values())
    >>> bool(np.allclose(total, sim.bold[sim.brain].T, rtol=1e-5))
    True
    """
    x, maps, motion, (gm, wm, csf) = _check_bold_inputs(region_signals, maps, motion, tissues)
    grid = gm.shape
    n_samples = x.shape[0]
    rng = make_rng(random_state)
    brain = (gm + wm + csf) > 0.5
    vox_mm = float(abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    # The order of the random draws below (bias, physiology, drift, spikes, noise)
    # fixes the output for a seed: the demo data depend on it, bit for bit.
    baseline_full = _baseline_image(rng, gm, wm, csf, vox_mm)
    baseline = baseline_full[brain]
    loadings = _motion_loadings(baseline_full, brain, affine)
    motion_part = motion_residual * ((motion - motion[0]) @ loadings)

    # Everything below is a fractional change of the baseline, accumulated in place
    # in one (time x voxel) buffer to keep memory at a few copies of the data.
    parts = {} if return_components else None
    frac = bold_amplitude * (x @ maps[brain].T.astype(float))
    if parts is not None:
        parts["neural"] = baseline * frac
    physio_signals, physio_loadings = _physio_sources(
        rng, (gm[brain], wm[brain], csf[brain]), brain, vox_mm, n_samples, t_r, physio_scale)
    physio = physio_signals @ physio_loadings
    if parts is not None:
        parts["physio"] = baseline * physio
    frac += physio
    del physio
    drift = _drift(rng, brain, vox_mm, n_samples, drift_level)
    if parts is not None:
        parts["drift"] = baseline * drift
    frac += drift
    del drift
    spike = _add_spikes(frac, rng, spikes, brain, vox_mm, spike_level,
                        keep=parts is not None)
    if parts is not None:
        parts["spike"] = baseline * spike
    noise = _ar1_noise(rng, n_samples, baseline.size, noise_autocorrelation, noise_level)
    if parts is not None:
        parts["noise"] = baseline * noise
        parts["motion"] = motion_part
    frac += noise
    del noise

    frac += 1.0
    frac *= baseline
    frac += motion_part
    # Fortran order is the NIfTI on-disk order: writing needs no transposed copy.
    bold = np.zeros((*grid, n_samples), dtype=np.float32, order="F")
    bold[brain] = frac.T
    return Bunch(bold=bold, baseline=baseline_full * brain, brain=brain,
                 physio_signals=physio_signals, physio_loadings=physio_loadings,
                 motion_loadings=motion_residual * loadings, components=parts)


def _check_bold_inputs(region_signals, maps, motion, tissues):
    """The inputs of :func:`simulate_bold` as arrays, their shapes checked."""
    x = np.asarray(region_signals, dtype=float)
    maps = np.asarray(maps)
    motion = np.asarray(motion, dtype=float)
    gm, wm, csf = (np.asarray(t, dtype=float) for t in tissues)
    grid = gm.shape
    if x.ndim != 2:
        raise ShapeMismatchError(f"region_signals must be 2D (n_samples, n_regions); "
                                 f"got shape {x.shape}")
    n_samples, n_regions = x.shape
    if maps.shape != (*grid, n_regions):
        raise ShapeMismatchError(f"maps have shape {maps.shape}; expected "
                                 f"{(*grid, n_regions)} (grid of the tissues, one map "
                                 f"per region signal)")
    if motion.shape != (n_samples, 6):
        raise ShapeMismatchError(f"motion has shape {motion.shape}; expected "
                                 f"({n_samples}, 6)")
    if wm.shape != grid or csf.shape != grid:
        raise ShapeMismatchError("gm, wm and csf must share one grid")
    return x, maps, motion, (gm, wm, csf)


def _baseline_image(rng: np.random.Generator, gm: np.ndarray, wm: np.ndarray,
                    csf: np.ndarray, vox_mm: float) -> np.ndarray:
    """EPI contrast with a smooth receive-coil bias and partial-volume edges."""
    bias = 1.0 + 0.08 * _smooth_field(rng, gm.shape, 20.0 / vox_mm)
    return ndimage.gaussian_filter((650 * wm + 900 * gm + 1400 * csf) * bias, 0.6)


def _motion_loadings(baseline_full: np.ndarray, brain: np.ndarray,
                     affine: np.ndarray) -> np.ndarray:
    """Intensity change per mm of translation and radian of rotation, (6, n_voxels).

    First-order effect: -grad(S) . (t + omega x r) = -grad(S).t - omega.(r x grad(S)).
    """
    grads_vox = np.stack(np.gradient(baseline_full), axis=-1)[brain]  # per voxel step
    grad_mm = grads_vox @ np.linalg.inv(affine[:3, :3])  # chain rule: dS/dmm
    xyz = voxel_mm(brain.shape, affine)[brain]
    r = xyz - xyz.mean(axis=0)
    return np.concatenate([-grad_mm, -np.cross(r, grad_mm)], axis=1).T


def _physio_sources(rng: np.random.Generator, tissues_in_brain, brain: np.ndarray,
                    vox_mm: float, n_samples: int, t_r: float,
                    physio_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Band-limited physiological time courses and their fractional loadings."""
    t_gm, t_wm, t_csf = tissues_in_brain
    physio_signals = np.empty((n_samples, len(_PHYSIO_SOURCES)))
    physio_loadings = np.empty((len(_PHYSIO_SOURCES), int(brain.sum())))
    for k, (_, f0, width, a_csf, a_wm, a_gm) in enumerate(_PHYSIO_SOURCES):
        physio_signals[:, k] = _band_noise(rng, n_samples, t_r, f0, width)
        spatial = np.clip(1.0 + 0.5 * _smooth_field(rng, brain.shape, 8.0 / vox_mm)[brain],
                          0.1, None)
        physio_loadings[k] = physio_scale * spatial * (a_csf * t_csf + a_wm * t_wm + a_gm * t_gm)
    return physio_signals, physio_loadings


def _drift(rng: np.random.Generator, brain: np.ndarray, vox_mm: float, n_samples: int,
           drift_level: float) -> np.ndarray:
    """Slow linear and quadratic trends, shared in part by the whole brain (fractional)."""
    tt = np.linspace(-1.0, 1.0, n_samples)
    trends = np.stack([tt, 1.5 * tt**2 - 0.5], axis=1)
    drift_coef = drift_level * (rng.standard_normal((2, 1))
                                + 0.5 * np.stack([_smooth_field(rng, brain.shape,
                                                                10.0 / vox_mm)[brain]
                                                  for _ in range(2)]))
    return trends @ drift_coef


def _add_spikes(frac: np.ndarray, rng: np.random.Generator, spikes: Sequence[int],
                brain: np.ndarray, vox_mm: float, spike_level: float,
                keep: bool) -> np.ndarray | None:
    """Add spin-history intensity drops to ``frac`` in place (at a spike and the
    volume after it); with ``keep``, also return them as their own array."""
    n_samples = frac.shape[0]
    spike = np.zeros_like(frac) if keep else None
    for t in np.asarray(spikes, dtype=int):
        pattern = -spike_level * (0.5 + np.abs(_smooth_field(rng, brain.shape,
                                                             6.0 / vox_mm)[brain]))
        for lag, weight in ((0, 1.0), (1, 0.3)):
            if t + lag < n_samples:
                frac[t + lag] += weight * pattern
                if spike is not None:
                    spike[t + lag] += weight * pattern
    return spike


def _ar1_noise(rng: np.random.Generator, n_samples: int, n_voxels: int,
               autocorrelation: float, level: float) -> np.ndarray:
    """AR(1) thermal noise of standard deviation ``level``, (n_samples, n_voxels)."""
    phi = float(autocorrelation)
    noise = rng.standard_normal((n_samples, n_voxels))
    innov = np.sqrt(1.0 - phi**2)
    for t in range(1, n_samples):
        noise[t] *= innov
        noise[t] += phi * noise[t - 1]
    noise *= level
    return noise


# --------------------------------------------------------------------------- #
# Confounds, computed from the image as fMRIPrep does
# --------------------------------------------------------------------------- #
