"""Stage 7 — the whole job, from files to files.

* :mod:`._run`: :func:`run_connectome`, the single-subject job (extract,
  estimate, describe, write) and its result;
* :mod:`._atlas_inputs`: atlas and labels given by name, path or object;
* :mod:`._staging`: the output folder, written through a staging folder and
  moved in atomically.
"""

from ._atlas_inputs import read_labels_table, resolve_atlas
from ._run import OUTPUT_FILES, ConnectomeResult, check_output_dir, missing_glyphs_collapsed, run_connectome

__all__ = [
    "OUTPUT_FILES",
    "ConnectomeResult",
    "check_output_dir",
    "missing_glyphs_collapsed",
    "read_labels_table",
    "resolve_atlas",
    "run_connectome",
]
