"""Stage 2b — fMRIPrep confounds: reading the TSV files and the denoising strategies.

* :mod:`._strategies`: :func:`load_confounds` and :func:`load_confounds_strategy`
  (nilearn's ``interfaces.fmriprep`` interface), :func:`read_confounds_tsv`,
  :func:`find_confounds_file`;
* :mod:`._fmriprep_rules`: fMRIPrep's naming rules (expansions, CompCor
  selection) and the scrubbing rule, pure functions of tables.
"""

from ._strategies import (
                          COMPONENTS,
                          PRESETS,
                          find_confounds_file,
                          load_confounds,
                          load_confounds_strategy,
                          read_confounds_tsv,
)

__all__ = [
    "COMPONENTS",
    "PRESETS",
    "find_confounds_file",
    "load_confounds",
    "load_confounds_strategy",
    "read_confounds_tsv",
]
