"""Cleaning of time series: detrend, band-pass, confound regression, scrubbing,
standardization.

:func:`clean` follows the semantics and the order of operations of
``nilearn.signal.clean`` so that region signals agree with the seed example:

without ``sample_mask``, or with ``sample_mask`` and no Butterworth cut-off

1. censor the volumes not in ``sample_mask`` (signals and confounds; with
   ``filter="cosine"`` the cosine drift regressors are generated on the full
   series first and censored with the confounds),
2. detrend (signals and confounds),
3. Butterworth low-/high-/band-pass (signals and confounds),
4. regress the confounds out by orthogonal projection,
5. standardize;

with ``sample_mask`` and a Butterworth cut-off, censored volumes are first
replaced by a cubic spline through the kept ones (those before the first and
after the last kept volume are extrapolated if ``extrapolate`` else dropped),
then steps 2 and 3 run on the filled series, then the censored volumes are
removed, then steps 4 and 5 (Lindquist et al. 2019, filters orthogonal to the
confound regression).

Everything is computed in float64 and vectorised over columns.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from typing import Any, Literal

import numpy as np

from ..errors import DataWarning, InputError, ParameterError, ShapeMismatchError
from . import _filters
from ._inputs import ConfoundsLike, as_signals, load_confounds_matrix, sanitize_sample_mask

__all__ = ["clean", "butterworth", "standardize_signal", "load_confounds_matrix"]

logger = logging.getLogger(__name__)

_FILTER_CHOICES = ("butterworth", "cosine", False, None)
_EPS = np.finfo(np.float64).eps
_VANISHED_CONFOUND = 1e-11
_PSC_MEAN_REMOVED = 0.1


# --------------------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------------------
def _check_standardize(standardize: Any, name: str = "standardize") -> str | None:
    """Canonical standardize strategy: 'zscore_sample', 'zscore', 'psc' or None."""
    if standardize is True or (isinstance(standardize, np.bool_) and bool(standardize)):
        warnings.warn(
            f"{name}=True is deprecated and means 'zscore_sample' (sample standard "
            "deviation, ddof=1); pass standardize='zscore_sample' explicitly "
            "(or None for no standardization).",
            FutureWarning,
            stacklevel=3,
        )
        return "zscore_sample"
    if standardize is None or standardize is False or (
        isinstance(standardize, np.bool_) and not bool(standardize)
    ):
        return None
    if isinstance(standardize, str) and standardize in ("zscore_sample", "zscore", "psc"):
        return standardize
    raise ParameterError(
        f"{name}={standardize!r} is not a known standardization; expected one of "
        "'zscore_sample', 'zscore', 'psc', None (or the deprecated True/False)."
    )


def _check_frequency(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ParameterError(f"{name} must be a positive number of Hz or None; got {value!r}.")
    if value <= 0:
        raise ParameterError(f"{name} must be a positive frequency in Hz; got {value!r}.")
    return float(value)


def _check_t_r(t_r: Any) -> float | None:
    if t_r is None:
        return None
    valid = isinstance(t_r, numbers.Real) and not isinstance(t_r, bool)
    if not valid or not np.isfinite(t_r) or t_r <= 0:
        raise ParameterError(
            f"t_r (repetition time) must be a positive number of seconds or None; got {t_r!r}."
        )
    return float(t_r)


def _clip_to_nyquist(freq: float, name: str, nyquist: float) -> float:
    if freq >= nyquist:
        clipped = nyquist * (1 - _filters.NYQUIST_MARGIN)
        warnings.warn(
            f"{name}={freq} Hz is at or above the Nyquist frequency ({nyquist} Hz) and "
            f"cannot be handled by a digital filter; it has been lowered to {clipped} Hz.",
            UserWarning,
            stacklevel=4,
        )
        return clipped
    return freq


# --------------------------------------------------------------------------------------
# Kernels with warnings
# --------------------------------------------------------------------------------------
def standardize_signal(
    x: np.ndarray,
    standardize: str | None,
    *,
    name: str = "signals",
    inplace: bool = False,
    constant: np.ndarray | None = None,
) -> np.ndarray:
    """Standardize each column of ``x`` (time along axis 0).

    ``"zscore_sample"``: centre, divide by the sample standard deviation
    (ddof=1); ``"zscore"``: same with ddof=0; ``"psc"``: percent signal change
    relative to the column mean; None: unchanged. Constant columns (and, for
    ``"psc"``, zero-mean columns) become zeros with a :class:`DataWarning`.
    A single time point cannot be standardized: it is returned unchanged with a
    :class:`DataWarning`. ``constant`` (boolean, one per column) marks columns
    known to be constant, whose round-off must not be blown up to unit variance.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.signal import standardize_signal
    >>> x = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 12.0]])
    >>> z = standardize_signal(x, "zscore_sample")
    >>> z[:, 0].tolist()
    [-1.0, 0.0, 1.0]
    >>> standardize_signal(np.array([[99.0], [101.0]]), "psc")[:, 0].tolist()
    [-1.0, 1.0]
    """
    if standardize is None:
        return x
    if not inplace:
        x = np.array(x, dtype=np.float64, copy=True)
    if x.shape[0] < 2:
        warnings.warn(
            f"standardization of {name} with a single time point is impossible; "
            "they are returned unstandardized.",
            DataWarning,
            stacklevel=3,
        )
        return x
    if standardize in ("zscore_sample", "zscore"):
        x -= x.mean(axis=0)
        std = x.std(axis=0, ddof=1 if standardize == "zscore_sample" else 0)
        constant = std < _EPS if constant is None else (std < _EPS) | constant
        std[constant] = 1.0
        x /= std
        if constant.any():
            x[:, constant] = 0.0
            cols = np.flatnonzero(constant)
            warnings.warn(
                f"{cols.size} constant column(s) of {name} (e.g. column(s) "
                f"{cols[:8].tolist()}) cannot be z-scored; they are set to 0.",
                DataWarning,
                stacklevel=3,
            )
        return x
    # psc
    mean = x.mean(axis=0)
    invalid = np.abs(mean) < _EPS
    denom = np.where(invalid, 1.0, np.abs(mean))
    x -= mean
    x *= 100.0 / denom
    if invalid.any():
        x[:, invalid] = 0.0
        cols = np.flatnonzero(invalid)
        warnings.warn(
            f"percent signal change is meaningless for the {cols.size} column(s) of {name} "
            f"with a zero mean (e.g. column(s) {cols[:8].tolist()}); they are set to 0.",
            DataWarning,
            stacklevel=3,
        )
    return x


def butterworth(
    signals: np.ndarray,
    sampling_rate: float,
    low_pass: float | None = None,
    high_pass: float | None = None,
    order: int = 5,
    padtype: Literal["odd", "even", "constant"] | None = "odd",
    padlen: int | None = None,
) -> np.ndarray:
    """Zero-phase low-, high- or band-pass Butterworth filter of each column.

    Parameters
    ----------
    signals : ndarray (n_samples,) or (n_samples, n_features)
    sampling_rate : float
        Samples per second (1 / t_r), in Hz.
    low_pass, high_pass : float or None
        Cut-off frequencies in Hz. A cut-off at or above the Nyquist frequency
        is lowered just below it, with a warning.
    order : int, default=5
    padtype, padlen : passed to :func:`scipy.signal.sosfiltfilt`.

    Returns
    -------
    ndarray, float64, same shape as ``signals`` (a copy; unchanged if both
    cut-offs are None).

    Examples
    --------
    A low-pass at 0.1 Hz keeps a slow oscillation (0.01 Hz) and removes a
    fast one (0.2 Hz), sampled every 2 s:

    >>> import numpy as np
    >>> from sparse_connectome.signal import butterworth
    >>> t = np.arange(100) * 2.0
    >>> slow, fast = np.sin(2 * np.pi * 0.01 * t), np.sin(2 * np.pi * 0.2 * t)
    >>> y = butterworth(slow + fast, sampling_rate=0.5, low_pass=0.1)
    >>> y.shape, bool(np.corrcoef(y, slow)[0, 1] > 0.99)
    ((100,), True)
    """
    x = np.array(signals, dtype=np.float64, copy=True)
    if not isinstance(sampling_rate, numbers.Real) or not sampling_rate > 0:
        raise ParameterError(
            f"sampling_rate must be a positive number of Hz; got {sampling_rate!r}."
        )
    low_pass = _check_frequency(low_pass, "low_pass")
    high_pass = _check_frequency(high_pass, "high_pass")
    if low_pass is None and high_pass is None:
        return x
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise ParameterError(
            f"high_pass ({high_pass} Hz) must be lower than low_pass ({low_pass} Hz)."
        )
    if not isinstance(order, numbers.Integral) or order < 1:
        raise ParameterError(f"order must be a positive integer; got {order!r}.")
    return _butterworth(x, float(sampling_rate), low_pass, high_pass, int(order), padtype, padlen)


def _butterworth(x, sampling_rate, low_pass, high_pass, order=5, padtype="odd", padlen=None):
    nyquist = sampling_rate / 2.0
    if low_pass is not None:
        low_pass = _clip_to_nyquist(low_pass, "low_pass", nyquist)
    if high_pass is not None:
        high_pass = _clip_to_nyquist(high_pass, "high_pass", nyquist)
    sos = _filters.butter_sos(order, low_pass, high_pass, nyquist)
    needed = _filters.sos_padlen(sos) if padlen is None else padlen
    if padtype is not None and x.shape[0] <= needed:
        raise InputError(
            f"signals have {x.shape[0]} time points but the order-{order} Butterworth "
            f"filter pads {needed} points on each side; expected more than {needed} "
            "time points (filter shorter runs without low_pass/high_pass)."
        )
    return _filters.filtfilt_sos(x, sos, padtype=padtype, padlen=padlen)


def _prepare_confounds_for_regression(
    conf: np.ndarray, standardize_confounds: bool, raw_scale: np.ndarray
) -> np.ndarray:
    """Scale the confounds before the QR, and drop the vanished ones.

    A confound that detrending or filtering reduced to round-off (e.g. a linear
    trend after ``detrend=True``) would otherwise be rescaled to unit size and
    regress out a random direction; such columns (max abs below 1e-11 of their
    raw max abs) are set to zero, which the rank threshold of the QR drops.
    """
    vanished = np.max(np.abs(conf), axis=0) <= _VANISHED_CONFOUND * raw_scale
    if standardize_confounds:
        conf = conf - conf.mean(axis=0)
        std = conf.std(axis=0)
        std[std < _EPS] = 1.0
        conf = conf / std
    else:
        # Without standardization the constant part stays, but the range is
        # normalised so that the rank threshold of the QR is scale-free.
        scale = np.max(np.abs(conf), axis=0)
        scale[scale == 0] = 1.0
        conf = conf / scale
    conf[:, vanished] = 0.0
    return conf


# --------------------------------------------------------------------------------------
# clean
# --------------------------------------------------------------------------------------
def _clean_segment(
    x: np.ndarray,
    conf: np.ndarray | None,
    kept: np.ndarray | None,
    *,
    detrend: bool,
    standardize: str | None,
    standardize_confounds: bool,
    filter: str | None,
    low_pass: float | None,
    high_pass: float | None,
    t_r: float | None,
    extrapolate: bool,
    butterworth_kwargs: dict,
) -> np.ndarray:
    """Clean one run (float64 ``x``; ``kept`` = sorted kept indices or None)."""
    butter = filter == "butterworth" and (low_pass is not None or high_pass is not None)
    raw_scale = None if conf is None else np.max(np.abs(conf), axis=0, initial=0.0)
    # A constant input column stays constant through every step; only
    # round-off would be left for the z-score to amplify.
    source = x if kept is None else x[kept]
    constant_input = np.all(source == source[:1], axis=0)
    if filter == "cosine" and high_pass is not None:
        drift = _filters.cosine_drift(high_pass, x.shape[0], t_r)
        conf = drift if conf is None else np.hstack([conf, drift])
        drift_scale = np.max(np.abs(drift), axis=0, initial=0.0)
        raw_scale = drift_scale if raw_scale is None else np.r_[raw_scale, drift_scale]
    kept_after_filter = None
    if kept is not None and kept.size < x.shape[0]:
        if butter:
            if kept.size < 2:
                raise InputError(
                    "sample_mask keeps fewer than 2 volumes of a run; the censored volumes "
                    "cannot be interpolated before filtering."
                )
            x, kept_after_filter, window = _filters.interpolate_censored(x, kept, extrapolate)
            if conf is not None:
                conf, _, _ = _filters.interpolate_censored(conf, kept, extrapolate)
        else:
            x = x[kept]
            if conf is not None:
                conf = conf[kept]

    # psc is relative to the original mean. When the cleaning removed most of
    # it (detrending, high-pass filtering, regression on non-centred
    # confounds: the mean absolute column mean fell below a tenth of the
    # original one), the original mean is added back before standardizing.
    # This is the rule nilearn follows (measured on its outputs).
    mean_signals = x.mean(axis=0) if standardize == "psc" else None
    if detrend:
        x = _filters.linear_detrend(x, inplace=True)
        if conf is not None:
            conf = _filters.linear_detrend(conf)

    if butter:
        x = _butterworth(x, 1.0 / t_r, low_pass, high_pass, **butterworth_kwargs)
        if conf is not None:
            conf = _butterworth(conf, 1.0 / t_r, low_pass, high_pass, **butterworth_kwargs)
        if kept_after_filter is not None:
            x = x[kept_after_filter]
            if conf is not None:
                conf = conf[kept_after_filter]

    if conf is not None and conf.shape[1] > 0:
        basis = _filters.orthonormal_basis(
            _prepare_confounds_for_regression(conf, standardize_confounds, raw_scale)
        )
        if basis.shape[1]:
            x -= basis @ (basis.T @ x)

    if mean_signals is not None:
        remaining = np.abs(x.mean(axis=0)).sum()
        if remaining < _PSC_MEAN_REMOVED * np.abs(mean_signals).sum():
            x += mean_signals
    return standardize_signal(x, standardize, inplace=True, constant=constant_input)


def clean(
    signals: np.ndarray,
    *,
    runs: np.ndarray | None = None,
    detrend: bool = False,
    standardize: Literal["zscore_sample", "zscore", "psc"] | bool | None = "zscore_sample",
    sample_mask: Any = None,
    confounds: ConfoundsLike = None,
    standardize_confounds: bool = True,
    filter: Literal["butterworth", "cosine"] | bool | None = "butterworth",
    low_pass: float | None = None,
    high_pass: float | None = None,
    t_r: float | None = None,
    ensure_finite: bool = False,
    extrapolate: bool = False,
    butterworth_order: int = 5,
) -> np.ndarray:
    """Clean time series: detrend, filter, regress confounds out, standardize.

    Same semantics and order of operations as ``nilearn.signal.clean`` (see the
    module docstring for the exact order).

    Parameters
    ----------
    signals : ndarray (n_samples, n_features) or (n_samples,)
        Time series, time along axis 0. Not modified.
    runs : ndarray (n_samples,), optional
        Run label of each sample; each run is cleaned independently and the
        cleaned runs are stacked in sorted label order (as nilearn does; this
        is the input order when the labels are sorted).
    detrend : bool, default=False
        Remove the mean and linear trend (signals and confounds).
    standardize : {'zscore_sample', 'zscore', 'psc', None}, default='zscore_sample'
        'zscore_sample' z-scores with the sample standard deviation (ddof=1),
        'zscore' with ddof=0, 'psc' gives percent signal change. None (or
        False) does nothing. True means 'zscore_sample' (deprecated,
        FutureWarning). Constant columns are set to 0 with a DataWarning.
    sample_mask : array of int indices or of booleans (True = kept), optional
        Volumes kept (scrubbing). With ``runs``, a list with one mask per run
        (indices relative to the run), or one boolean mask over all samples.
    confounds : ndarray (1D/2D), DataFrame, path to a CSV/TSV file, or list of those
        Regressed out of the signals by orthogonal projection. Must be finite
        and have one row per sample.
    standardize_confounds : bool, default=True
        z-score the confounds before the regression (their constant part is
        then not regressed out).
    filter : {'butterworth', 'cosine', None}, default='butterworth'
        'butterworth': zero-phase Butterworth low/high/band-pass;
        'cosine': cosine drift regressors (high_pass only) added to the confounds.
    low_pass, high_pass : float, optional
        Cut-off frequencies in Hz. Require ``t_r``.
    t_r : float, optional
        Repetition time in seconds.
    ensure_finite : bool, default=False
        Replace NaN and Inf in the signals by 0 first.
    extrapolate : bool, default=False
        With ``sample_mask`` and Butterworth filtering, extrapolate censored
        volumes at the ends of the run instead of leaving them out of the filter.
    butterworth_order : int, default=5
        Order of the Butterworth filter.

    Returns
    -------
    ndarray (n_kept_samples, n_features)
        Cleaned signals; float32 for float32 (or small integer) input, else the
        input floating dtype. 1D input gives 1D output.

    Raises
    ------
    ParameterError, InputError, ShapeMismatchError, ConfoundsError

    Notes
    -----
    Agrees with ``nilearn.signal.clean`` (0.14) to round-off, with these
    deliberate differences:

    * defaults: ``detrend=False`` and ``t_r=None`` (nilearn: True and 2.5);
      a filter that needs ``t_r`` raises instead of assuming 2.5 s;
    * ``standardize="zscore"`` (ddof=0) is kept; True means
      ``"zscore_sample"`` with a FutureWarning; False means None silently;
    * constant columns give zeros with a :class:`DataWarning`;
    * censored volumes never influence the result; when both the first and
      the last volumes are censored with Butterworth filtering, nilearn 0.14.1
      misaligns its output and lets censored values leak in;
    * a confound that detrending/filtering reduced to round-off is dropped
      (nilearn may rescale it and regress out noise);
    * negative or zero cut-offs raise :class:`ParameterError` (nilearn
      replaces them by a tiny frequency with a warning).

    For ``"psc"``, the original mean is added back before standardizing when
    cleaning removed most of it (sum of absolute column means below a tenth
    of the original), as nilearn does.

    Examples
    --------
    Regress a nuisance signal out of three time series and z-score them:

    >>> import numpy as np
    >>> from sparse_connectome.signal import clean
    >>> rng = np.random.default_rng(0)
    >>> nuisance = rng.standard_normal((100, 1))
    >>> signals = rng.standard_normal((100, 3)) + 3 * nuisance
    >>> cleaned = clean(signals, confounds=nuisance)
    >>> cleaned.shape
    (100, 3)
    >>> bool(np.allclose(cleaned.T @ (nuisance - nuisance.mean()), 0.0))  # orthogonal to it
    True
    >>> cleaned.std(axis=0, ddof=1).round(6).tolist()
    [1.0, 1.0, 1.0]

    Scrubbing keeps only the volumes of ``sample_mask``:

    >>> clean(signals, sample_mask=np.arange(10, 100)).shape
    (90, 3)
    """
    # ---- parameters
    standardize_kind = _check_standardize(standardize)
    if filter not in _FILTER_CHOICES:
        raise ParameterError(
            f"filter={filter!r} is not a known filter; expected 'butterworth', 'cosine' or None."
        )
    filter_kind = filter if filter else None
    low_pass = _check_frequency(low_pass, "low_pass")
    high_pass = _check_frequency(high_pass, "high_pass")
    t_r = _check_t_r(t_r)
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise ParameterError(
            f"high_pass ({high_pass} Hz) must be lower than low_pass ({low_pass} Hz); "
            "a band-pass needs high_pass < low_pass."
        )
    if not isinstance(butterworth_order, numbers.Integral) or butterworth_order < 1:
        raise ParameterError(
            f"butterworth_order must be a positive integer; got {butterworth_order!r}."
        )
    if filter_kind is None and (low_pass is not None or high_pass is not None):
        warnings.warn(
            "filter=None but a cut-off frequency (low_pass/high_pass) was given: "
            "no filtering is done.",
            UserWarning,
            stacklevel=2,
        )
        low_pass = high_pass = None
    if filter_kind == "cosine" and low_pass is not None:
        warnings.warn(
            "low_pass is not implemented for filter='cosine'; it is ignored.",
            UserWarning,
            stacklevel=2,
        )
        low_pass = None
    needs_t_r = (filter_kind == "butterworth" and (low_pass or high_pass)) or (
        filter_kind == "cosine" and high_pass
    )
    if needs_t_r and t_r is None:
        raise ParameterError(
            f"t_r (repetition time, s) is required for filter={filter_kind!r} with "
            f"low_pass={low_pass}, high_pass={high_pass}; got t_r=None."
        )

    # ---- inputs
    x, out_dtype, was_1d = as_signals(signals, ensure_finite)
    n_samples = x.shape[0]
    conf, _ = load_confounds_matrix(confounds, n_samples)

    options = dict(
        detrend=bool(detrend),
        standardize=standardize_kind,
        standardize_confounds=bool(standardize_confounds),
        filter=filter_kind,
        low_pass=low_pass,
        high_pass=high_pass,
        t_r=t_r,
        extrapolate=bool(extrapolate),
        butterworth_kwargs={"order": int(butterworth_order)},
    )

    if runs is None:
        kept = None if sample_mask is None else sanitize_sample_mask(sample_mask, n_samples)
        out = _clean_segment(x, conf, kept, **options)
    else:
        out = _clean_runs(x, conf, runs, sample_mask, options)

    out = out.astype(out_dtype, copy=False)
    return out[:, 0] if was_1d else out


def _clean_runs(x, conf, runs, sample_mask, options) -> np.ndarray:
    runs = np.asarray(runs)
    if runs.ndim != 1 or runs.shape[0] != x.shape[0]:
        raise ShapeMismatchError(
            f"runs has shape {runs.shape} but the signals have {x.shape[0]} time points; "
            "expected one run label per time point."
        )
    # Runs are cleaned and stacked in sorted label order (as nilearn does): the
    # output rows follow the input rows when the run labels are sorted.
    labels = np.unique(runs)
    masks_per_run: list[Any] | None
    if sample_mask is None:
        masks_per_run = None
    elif (
        not isinstance(sample_mask, (list, tuple))
        and np.asarray(sample_mask).dtype == np.bool_
        and np.asarray(sample_mask).shape == (x.shape[0],)
    ):
        whole = np.asarray(sample_mask)
        masks_per_run = [whole[runs == label] for label in labels]
    elif isinstance(sample_mask, (list, tuple)) and len(sample_mask) == len(labels) and all(
        np.ndim(m) == 1 for m in sample_mask
    ):
        masks_per_run = list(sample_mask)
    else:
        raise ShapeMismatchError(
            f"with runs ({len(labels)} runs), sample_mask must be a list of {len(labels)} "
            "masks (one per run, indices relative to the run) or one boolean mask over all "
            "time points."
        )
    pieces = []
    for i, label in enumerate(labels):
        sel = runs == label
        n_run = int(sel.sum())
        kept = (
            None
            if masks_per_run is None
            else sanitize_sample_mask(masks_per_run[i], n_run, what=f"sample_mask[{i}]")
        )
        part_conf = None if conf is None else conf[sel]
        pieces.append(_clean_segment(x[sel], part_conf, kept, **options))
    return np.vstack(pieces)
