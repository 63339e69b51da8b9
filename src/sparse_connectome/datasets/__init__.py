"""Datasets: the embedded demo subject and the real fetchers.

- :func:`load_demo` writes (once) and returns a synthetic subject that mirrors the
  seed's data (MSDL-like maps, a development-fMRI-like BOLD image with fMRIPrep
  confounds) with a known ground-truth connectome. It needs no network.
- :func:`fetch_atlas_msdl` and :func:`fetch_development_fmri` download the real
  data, for users who are online.
- :func:`fetch_atlas_schaefer_2018`, :func:`fetch_atlas_difumo` and
  :func:`fetch_atlas_harvard_oxford` download more atlases, on the same path.
"""

from ._paths import get_data_dir
from .demo import load_demo
from .fetchers import fetch_atlas_msdl, fetch_development_fmri

__all__ = ["load_demo", "fetch_atlas_msdl", "fetch_development_fmri", "get_data_dir"]

from .cohort import load_demo_cohort  # noqa: E402

__all__ += ["load_demo_cohort"]

from ._atlas_fetchers import (  # noqa: E402
    fetch_atlas_difumo,
    fetch_atlas_harvard_oxford,
    fetch_atlas_schaefer_2018,
)

__all__ += ["fetch_atlas_schaefer_2018", "fetch_atlas_difumo", "fetch_atlas_harvard_oxford"]
