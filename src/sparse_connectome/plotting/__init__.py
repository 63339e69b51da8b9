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
    """Show the open matplotlib figures (``matplotlib.pyplot.show``)."""
    import matplotlib.pyplot as plt

    plt.show()
