"""Exception and warning classes of sparse-connectome.

Every error raised on bad input is one of these classes, and its message names
the input (a file or a parameter), what was found and what was expected. The
command line turns any :class:`SparseConnectomeError` into a single line on
stderr and exit code 2.
"""

from __future__ import annotations

__all__ = [
    "SparseConnectomeError",
    "InputError",
    "ImageError",
    "ShapeMismatchError",
    "ConfoundsError",
    "AtlasError",
    "ParameterError",
    "ConvergenceError",
    "DownloadError",
    "OutputError",
    "NotFittedError",
    "ConvergenceWarning",
    "DataWarning",
    "EdgeCapWarning",
]


class SparseConnectomeError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(SparseConnectomeError, ValueError):
    """An input (array, file, table) is not what the function needs.

    Subclasses :class:`ValueError` so that code written against NumPy or
    scikit-learn conventions (``except ValueError``) keeps working.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.errors import InputError
    >>> from sparse_connectome.plotting import plot_matrix
    >>> try:
    ...     plot_matrix(np.zeros((2, 3)))
    ... except ValueError as exc:  # InputError is a ValueError
    ...     print(type(exc).__name__, "-", exc)
    InputError - mat has shape (2, 3); expected a non-empty square matrix
    """


class ImageError(InputError):
    """A NIfTI image is unreadable, truncated, of the wrong dimensionality, or has
    a bad affine or header."""


class ShapeMismatchError(InputError):
    """Two inputs that must agree in shape, grid or length do not."""


class ConfoundsError(InputError):
    """A confounds table or array is malformed: missing columns, NaN, wrong length."""


class AtlasError(InputError):
    """An atlas is unknown, empty, or does not overlap the data."""


class ParameterError(SparseConnectomeError, ValueError):
    """A parameter has a value outside of what the function accepts."""


class ConvergenceError(SparseConnectomeError, RuntimeError):
    """A solver could not reach a usable result at all."""


class DownloadError(SparseConnectomeError, OSError):
    """A download failed (offline, HTTP error, corrupted or malicious file)."""


class OutputError(SparseConnectomeError, OSError):
    """An output folder or file cannot be written."""


class NotFittedError(SparseConnectomeError, AttributeError):
    """An estimator was used before ``fit``."""


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance; the result is recorded as
    not converged."""


class DataWarning(UserWarning):
    """The input is usable but suspicious (e.g. a constant signal)."""


class EdgeCapWarning(UserWarning):
    """More edges passed an explicit threshold than a plot draws: only the
    strongest are drawn (the message names the cap and how to lift it)."""
