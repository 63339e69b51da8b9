"""Synthetic fMRI subjects with a known sparse connectome (the ground truth).

The generative model, from the ground truth to the voxels:

1. a sparse precision matrix whose edges follow a network partition
   (:func:`make_sparse_precision`), scaled so that the region signals have unit
   variance;
2. region time series drawn from the Gaussian it defines
   (:func:`sample_region_signals`);
3. one smooth blob per region, centred on a coordinate and kept inside a brain
   mask (:func:`make_blob_maps`), through which the region signals are projected
   into the voxels as a fractional signal change of a few tenths of a percent to
   about one percent;
4. nuisance that really contaminates the voxels (:func:`simulate_bold`): head
   motion acting through the intensity gradient of the image (so its loadings vary
   in space and are largest at tissue edges), a few motion spikes with spin-history
   like intensity drops, physiological sources concentrated in CSF and white
   matter, slow scanner drift and autocorrelated thermal noise;
5. the confounds an fMRIPrep run would report, computed from that image
   (:func:`compute_confounds`): motion parameters and their expansions, mean
   CSF / white-matter / global signals, aCompCor and tCompCor components, cosine
   drift regressors, framewise displacement and DVARS.

Everything is arrays in and arrays out: writing files is the job of
:mod:`sparse_connectome.datasets.demo`. Every random choice is drawn from a single
``numpy.random.default_rng(random_state)``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from ._bunch import Bunch
from .errors import InputError, ParameterError, ShapeMismatchError

__all__ = [
    "make_sparse_precision",
    "partial_correlation",
    "sample_region_signals",
    "resample_to_grid",
    "make_blob_maps",
    "tissue_probabilities",
    "make_motion",
    "framewise_displacement",
    "cosine_drift_basis",
    "simulate_bold",
    "compute_confounds",
    "simulate_subject",
    "MOTION_COLUMNS",
]

logger = logging.getLogger(__name__)

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")



def _rng(random_state) -> np.random.Generator:
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
    rng = _rng(random_state)

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
    """Partial correlations ``-P_ij / sqrt(P_ii P_jj)``, with a unit diagonal."""
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
    rng = _rng(random_state)
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
def resample_to_grid(data: np.ndarray, affine: np.ndarray, shape: Sequence[int],
                     target_affine: np.ndarray, order: int = 1) -> np.ndarray:
    """Resample a 3D array onto another grid (voxels outside the source get 0)."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 3:
        raise ShapeMismatchError(f"data must be 3D; got shape {data.shape}")
    # target voxel -> mm -> source voxel
    vox_to_vox = np.linalg.solve(np.asarray(affine, float), np.asarray(target_affine, float))
    return ndimage.affine_transform(data, vox_to_vox[:3, :3], offset=vox_to_vox[:3, 3],
                                    output_shape=tuple(int(s) for s in shape), order=order,
                                    mode="constant", cval=0.0)


def _voxel_mm(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    ijk = np.indices(tuple(shape), dtype=float).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).T.reshape(*shape, 3)


def make_blob_maps(coords_mm: np.ndarray, shape: Sequence[int], affine: np.ndarray,
                   mask: np.ndarray, fwhm_mm: float = 14.0,
                   floor: float = 0.02) -> np.ndarray:
    """One Gaussian blob per region, centred on its coordinate, inside a mask.

    A coordinate that falls outside the mask is moved to the nearest mask voxel,
    so that every map is non-empty.

    Parameters
    ----------
    coords_mm : ndarray of shape (n_regions, 3)
        Centres in world (mm) coordinates.
    shape : (int, int, int)
        Grid shape.
    affine : ndarray of shape (4, 4)
        Voxel-to-mm affine of the grid.
    mask : ndarray of bool, shape ``shape``
        Where the maps may be non-zero.
    fwhm_mm : float
        Full width at half maximum of the blobs.
    floor : float
        Values below this fraction of the peak are set to 0, so that maps have a
        finite support, as probabilistic atlases do.

    Returns
    -------
    maps : ndarray of shape (*shape, n_regions), float32
        Peak 1 at the centre.
    """
    coords = np.asarray(coords_mm, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ShapeMismatchError(f"coords_mm must have shape (n_regions, 3); got "
                                 f"{coords.shape}")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ShapeMismatchError(f"mask has shape {mask.shape}; expected {tuple(shape)}")
    if not mask.any():
        raise InputError("mask is empty; expected at least one voxel inside the brain")
    if float(fwhm_mm) <= 0:
        raise ParameterError(f"fwhm_mm must be positive; got {fwhm_mm}")
    sigma = float(fwhm_mm) / np.sqrt(8.0 * np.log(2.0))
    affine = np.asarray(affine, float)
    ijk_mask = np.argwhere(mask)
    in_mask_mm = ijk_mask @ affine[:3, :3].T + affine[:3, 3]
    values = np.empty((ijk_mask.shape[0], coords.shape[0]), dtype=np.float32)
    inv = np.linalg.inv(affine)
    for r, c in enumerate(coords):
        ijk = np.rint(inv[:3, :3] @ c + inv[:3, 3]).astype(int)
        inside = bool(np.all(ijk >= 0) and np.all(ijk < np.asarray(shape))
                      and mask[tuple(ijk)])
        if not inside:
            c = in_mask_mm[np.argmin(((in_mask_mm - c) ** 2).sum(axis=1))]
        blob = np.exp(-((in_mask_mm - c) ** 2).sum(axis=1) / (2.0 * sigma**2))
        blob[blob < floor] = 0.0
        values[:, r] = blob
    maps = np.zeros((*tuple(shape), coords.shape[0]), dtype=np.float32, order="F")
    maps[mask] = values
    return maps


def _ventricles(xyz: np.ndarray) -> np.ndarray:
    """Soft indicator of the lateral and third ventricles (approximate MNI shapes)."""
    out = np.zeros(xyz.shape[:3])
    # (centre mm, radii mm): bodies of the lateral ventricles and the third ventricle
    for centre, radii in (((-14, -8, 16), (5, 22, 8)), ((14, -8, 16), (5, 22, 8)),
                          ((0, -14, 2), (3, 12, 8))):
        d2 = (((xyz - np.asarray(centre, float)) / np.asarray(radii, float)) ** 2).sum(-1)
        out = np.maximum(out, np.exp(-d2**2))
    return out


def tissue_probabilities(mask: np.ndarray, gm: np.ndarray,
                         affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate grey-matter, white-matter and CSF fractions inside a brain mask.

    The non-grey part of each voxel is split between CSF (near the outer surface of
    the mask and in the ventricles) and white matter (the rest), which is where
    those tissues lie; the template bundles no CSF map.

    Returns
    -------
    gm, wm, csf : ndarrays of the mask's shape, summing to 1 inside the mask
    """
    mask = np.asarray(mask, dtype=bool)
    if np.shape(gm) != mask.shape:
        raise ShapeMismatchError(f"gm has shape {np.shape(gm)}; expected the mask's "
                                 f"{mask.shape}")
    vox_mm = float(abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    ventricles = _ventricles(_voxel_mm(mask.shape, affine))
    # A blurred grey-matter template leaks into the ventricles: they hold CSF only.
    gm = np.clip(np.asarray(gm, dtype=float), 0.0, 1.0) * (1.0 - ventricles) * mask
    surface = np.exp(-((ndimage.distance_transform_edt(mask) * vox_mm / 6.0) ** 2))
    csf_share = np.clip(np.maximum(surface, ventricles), 0, 1)
    rest = (1.0 - gm) * mask
    csf = rest * csf_share
    wm = rest - csf
    return gm, wm, csf


# --------------------------------------------------------------------------- #
# Time courses of nuisance
# --------------------------------------------------------------------------- #
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
    rng = _rng(random_state)
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
    """
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
    rng = _rng(random_state)
    brain = (gm + wm + csf) > 0.5
    vox_mm = float(abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))

    # Baseline: EPI contrast with a smooth receive-coil bias and partial-volume edges.
    bias = 1.0 + 0.08 * _smooth_field(rng, grid, 20.0 / vox_mm)
    baseline_full = ndimage.gaussian_filter((650 * wm + 900 * gm + 1400 * csf) * bias,
                                            0.6)
    baseline = baseline_full[brain]

    # First-order motion effect: -grad(S) . (t + omega x r) = -grad(S).t - omega.(r x grad(S))
    grads_vox = np.stack(np.gradient(baseline_full), axis=-1)[brain]  # per voxel step
    grad_mm = grads_vox @ np.linalg.inv(affine[:3, :3])  # chain rule: dS/dmm
    xyz = _voxel_mm(grid, affine)[brain]
    r = xyz - xyz.mean(axis=0)
    loadings = np.concatenate([-grad_mm, -np.cross(r, grad_mm)], axis=1).T  # (6, V)
    motion_part = motion_residual * ((motion - motion[0]) @ loadings)

    # Everything below is a fractional change of the baseline, accumulated in place
    # in one (time x voxel) buffer to keep memory at a few copies of the data.
    parts = {} if return_components else None
    frac = bold_amplitude * (x @ maps[brain].T.astype(float))
    if parts is not None:
        parts["neural"] = baseline * frac

    t_gm, t_wm, t_csf = gm[brain], wm[brain], csf[brain]
    physio_signals = np.empty((n_samples, len(_PHYSIO_SOURCES)))
    physio_loadings = np.empty((len(_PHYSIO_SOURCES), baseline.size))
    for k, (_, f0, width, a_csf, a_wm, a_gm) in enumerate(_PHYSIO_SOURCES):
        physio_signals[:, k] = _band_noise(rng, n_samples, t_r, f0, width)
        spatial = np.clip(1.0 + 0.5 * _smooth_field(rng, grid, 8.0 / vox_mm)[brain], 0.1, None)
        physio_loadings[k] = physio_scale * spatial * (a_csf * t_csf + a_wm * t_wm + a_gm * t_gm)
    physio = physio_signals @ physio_loadings
    if parts is not None:
        parts["physio"] = baseline * physio
    frac += physio
    del physio

    tt = np.linspace(-1.0, 1.0, n_samples)
    trends = np.stack([tt, 1.5 * tt**2 - 0.5], axis=1)
    drift_coef = drift_level * (rng.standard_normal((2, 1))
                                + 0.5 * np.stack([_smooth_field(rng, grid, 10.0 / vox_mm)[brain]
                                                  for _ in range(2)]))
    drift = trends @ drift_coef
    if parts is not None:
        parts["drift"] = baseline * drift
    frac += drift
    del drift

    spike = np.zeros((n_samples, baseline.size)) if parts is not None else None
    for t in np.asarray(spikes, dtype=int):
        pattern = -spike_level * (0.5 + np.abs(_smooth_field(rng, grid, 6.0 / vox_mm)[brain]))
        for lag, weight in ((0, 1.0), (1, 0.3)):
            if t + lag < n_samples:
                frac[t + lag] += weight * pattern
                if spike is not None:
                    spike[t + lag] += weight * pattern
    if parts is not None:
        parts["spike"] = baseline * spike

    phi = float(noise_autocorrelation)
    noise = rng.standard_normal((n_samples, baseline.size))
    innov = np.sqrt(1.0 - phi**2)
    for t in range(1, n_samples):
        noise[t] *= innov
        noise[t] += phi * noise[t - 1]
    noise *= noise_level
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


# --------------------------------------------------------------------------- #
# Confounds, computed from the image as fMRIPrep does
# --------------------------------------------------------------------------- #
def _highpass(data: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """Residuals of ``data`` after projecting out a constant and the cosine basis."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(data.shape[0]), drift]))
    return data - q @ (q.T @ data)


def _compcor(data: np.ndarray, drift: np.ndarray, n_components: int):
    """Principal components of high-passed, variance-normalised voxel time series."""
    resid = _highpass(data, drift)
    std = resid.std(axis=0)
    resid = resid[:, std > 0] / std[std > 0]
    # The left singular vectors are the eigenvectors of the small (time x time)
    # Gram matrix: far cheaper than an SVD of the (time x voxels) array.
    evals, evecs = np.linalg.eigh(resid @ resid.T)
    order = np.argsort(evals)[::-1]
    evals, u = np.clip(evals[order], 0.0, None), evecs[:, order]
    # A fixed sign convention, so that the output does not depend on the LAPACK build.
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    u = u * np.where(signs == 0, 1.0, signs)
    var = evals / np.sum(evals)
    k = min(int(n_components), u.shape[1])
    return u[:, :k], np.sqrt(evals[:k]), var[:k], np.cumsum(var)[:k]


def _dvars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and its standardised form (Nichols 2017), after scaling to median 1000."""
    scaled = data * (1000.0 / np.median(data.mean(axis=0)))
    diff = np.diff(scaled, axis=0)
    dvars = np.sqrt(np.mean(diff**2, axis=1))
    q75, q25 = np.percentile(scaled, [75, 25], axis=0)
    robust_sd = (q75 - q25) / 1.349
    centred = scaled - scaled.mean(axis=0)
    denom = np.sum(centred**2, axis=0)
    ar1 = np.where(denom > 0, np.sum(centred[1:] * centred[:-1], axis=0)
                   / np.where(denom > 0, denom, 1.0), 0.0)
    expected = np.sqrt(np.mean(2.0 * (1.0 - ar1) * robust_sd**2))
    nan = np.array([np.nan])
    return np.concatenate([nan, dvars]), np.concatenate([nan, dvars / expected])


def _expand(name: str, x: np.ndarray, order: Sequence[str]) -> dict[str, np.ndarray]:
    d = np.concatenate([[np.nan], np.diff(x)])
    terms = {"": x, "_derivative1": d, "_power2": x**2, "_derivative1_power2": d**2}
    return {name + suffix: terms[suffix] for suffix in order}


def compute_confounds(
    bold: np.ndarray,
    tissues: tuple[np.ndarray, np.ndarray, np.ndarray],
    motion: np.ndarray,
    t_r: float,
    *,
    n_compcor: int = 8,
    n_tissue_compcor: int = 5,
    n_tcompcor: int = 6,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
) -> tuple[pd.DataFrame, dict]:
    """The confounds table and its sidecar, computed from a 4D image like fMRIPrep.

    Parameters
    ----------
    bold : ndarray of shape (*grid, n_samples)
    tissues : (gm, wm, csf)
        Tissue fractions on the grid. CSF and white-matter masks keep the voxels
        mostly made of that tissue; the brain mask is where the fractions sum to 1.
    motion : ndarray of shape (n_samples, 6)
    t_r : float
    n_compcor, n_tissue_compcor, n_tcompcor : int
        Number of combined (``a_comp_cor``), per-tissue (``c_comp_cor``,
        ``w_comp_cor``) and temporal (``t_comp_cor``) components.
    fd_threshold, dvars_threshold : float
        Thresholds of the ``motion_outlierXX`` spike regressors (fMRIPrep's defaults).

    Returns
    -------
    confounds : pandas.DataFrame
        fMRIPrep column names, NaN where fMRIPrep writes ``n/a``.
    sidecar : dict
        The JSON sidecar's content: one entry per CompCor component.
    """
    bold = np.asarray(bold)
    gm, wm, csf = (np.asarray(t, dtype=float) for t in tissues)
    if bold.ndim != 4 or bold.shape[:3] != gm.shape:
        raise ShapeMismatchError(f"bold has shape {bold.shape}; expected (*{gm.shape}, "
                                 f"n_samples)")
    n_samples = bold.shape[3]
    motion = np.asarray(motion, dtype=float)
    if motion.shape != (n_samples, 6):
        raise ShapeMismatchError(f"motion has shape {motion.shape}; expected "
                                 f"({n_samples}, 6)")
    brain = (gm + wm + csf) > 0.5
    csf_mask = brain & (csf > 0.5)
    wm_mask = brain & (wm > 0.8)
    for name, m in (("CSF", csf_mask), ("white-matter", wm_mask)):
        if m.sum() < 10:
            raise InputError(f"the {name} mask holds {int(m.sum())} voxels; expected at "
                             f"least 10 to compute its confounds")
    data = bold[brain].T.astype(float)  # (T, V)
    in_csf, in_wm = csf_mask[brain], wm_mask[brain]
    drift = cosine_drift_basis(n_samples, t_r)

    cols: dict[str, np.ndarray] = {}
    order_signal = ("", "_derivative1", "_derivative1_power2", "_power2")
    cols.update(_expand("global_signal", data.mean(axis=1), order_signal))
    cols.update(_expand("csf", data[:, in_csf].mean(axis=1), order_signal))
    cols.update(_expand("white_matter", data[:, in_wm].mean(axis=1), order_signal))
    cols["csf_wm"] = data[:, in_csf | in_wm].mean(axis=1)
    dvars, std_dvars = _dvars(data)
    cols["std_dvars"] = std_dvars
    cols["dvars"] = dvars
    fd = framewise_displacement(motion)
    cols["framewise_displacement"] = fd

    sidecar: dict[str, dict] = {}

    def add_compcor(prefix, method, mask_name, voxels, n):
        comps, sv, var, cum = _compcor(data[:, voxels], drift, n)
        for i in range(comps.shape[1]):
            key = f"{prefix}_{i:02d}"
            cols[key] = comps[:, i]
            entry = {"CumulativeVarianceExplained": float(cum[i]), "Method": method,
                     "Retained": True, "SingularValue": float(sv[i]),
                     "VarianceExplained": float(var[i])}
            if mask_name is not None:
                entry["Mask"] = mask_name
            sidecar[key] = dict(sorted(entry.items()))

    # tCompCor: the 2 % of brain voxels with the highest temporal variance.
    tvar = _highpass(data, drift).std(axis=0)
    n_top = max(int(round(0.02 * tvar.size)), n_tcompcor + 1)
    top = np.zeros(tvar.size, dtype=bool)
    top[np.argsort(tvar, kind="stable")[-n_top:]] = True
    add_compcor("t_comp_cor", "tCompCor", None, top, n_tcompcor)
    add_compcor("c_comp_cor", "aCompCor", "CSF", in_csf, n_tissue_compcor)
    add_compcor("w_comp_cor", "aCompCor", "WM", in_wm, n_tissue_compcor)
    add_compcor("a_comp_cor", "aCompCor", "combined", in_csf | in_wm, n_compcor)
    for i in range(drift.shape[1]):
        cols[f"cosine{i:02d}"] = drift[:, i]
    order_motion = ("", "_derivative1", "_derivative1_power2", "_power2")
    for j, name in enumerate(MOTION_COLUMNS):
        cols.update(_expand(name, motion[:, j], order_motion))
    outliers = np.flatnonzero((np.nan_to_num(fd) > fd_threshold)
                              | (np.nan_to_num(std_dvars) > dvars_threshold))
    for i, t in enumerate(outliers):
        spike = np.zeros(n_samples)
        spike[t] = 1.0
        cols[f"motion_outlier{i:02d}"] = spike
    return pd.DataFrame(cols), sidecar


# --------------------------------------------------------------------------- #
# A whole subject
# --------------------------------------------------------------------------- #
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
    """
    rng = _rng(random_state)
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
