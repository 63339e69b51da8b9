"""Maskers: 4D images -> region time series, streamed and cleaned.

* :class:`NiftiMapsMasker` — probabilistic maps, least-squares fit per volume;
* :class:`NiftiLabelsMasker` — a label atlas, mean (or another statistic) per region;
* :class:`NiftiSpheresMasker` — spheres around seeds in mm (coordinate atlases).

Same interface as the seed's ``nilearn.maskers``; the 4D image is read a block of
volumes at a time, so memory grows with the volumes only by the output.
"""

from ._labels import NiftiLabelsMasker
from ._maps import NiftiMapsMasker
from ._spheres import NiftiSpheresMasker

__all__ = ["NiftiLabelsMasker", "NiftiMapsMasker", "NiftiSpheresMasker"]
