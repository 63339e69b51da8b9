"""Pictures of a connectome: matrices, glass-brain graphs and an interactive 3D view.

nilearn-compatible names, so that the seed example runs with a changed import:
:func:`plot_matrix`, :func:`plot_connectome`, :func:`view_connectome`,
:func:`find_probabilistic_atlas_cut_coords`, :func:`find_parcellation_cut_coords`.
"""

from __future__ import annotations

from ._coords import find_parcellation_cut_coords, find_probabilistic_atlas_cut_coords
from .connectome import GlassBrainDisplay, plot_connectome
from .matrix import plot_matrix
from .view3d import ConnectomeView, view_connectome

__all__ = [
    "ConnectomeView",
    "GlassBrainDisplay",
    "find_parcellation_cut_coords",
    "find_probabilistic_atlas_cut_coords",
    "plot_connectome",
    "plot_matrix",
    "show",
    "view_connectome",
]


def show() -> None:
    """Show the open matplotlib figures (``matplotlib.pyplot.show``).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sparse_connectome import plotting
    >>> image = plotting.plot_matrix(np.eye(3))
    >>> plotting.show()  # doctest: +SKIP
    >>> plt.close("all")
    """
    # pyplot is imported when a figure is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt

    plt.show()
