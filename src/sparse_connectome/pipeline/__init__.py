"""Stage 7 — the whole job, from files to files.

* :mod:`._run`: :func:`run_connectome`, the single-subject job (extract,
  estimate, describe, write) and its result;
* :mod:`._atlas_inputs`: atlas and labels given by name, path or object;
* :mod:`._atlas_names`: atlas names (``schaefer-400-7``, ``difumo-1024``...) and
  their fetchers;
* :mod:`._labels_atlas`: labels atlases (3D integer images) checked against their
  table;
* :mod:`._demo_atlas`: atlas names offline, simulated on the demo grid;
* :mod:`._staging`: the output folder, written through a staging folder and
  moved in atomically;
* :mod:`._provenance`: what went in (SHA-256 of files) and with which software;
* :mod:`._selection`: the estimator behind ``--selection cv|ebic|stars``.

A cohort (many subjects, on Dask):

* :mod:`._cohort`: :func:`run_cohort`, the BIDS-App flow (discover, skip what is
  done, compute the rest, summarise the group);
* :mod:`._bids`: discovery of the runs of an fMRIPrep derivatives folder;
* :mod:`._cohort_task`: one run, the unit of work of a Dask task;
* :mod:`._derivatives`: one run's BIDS derivatives (names, sidecars, staging);
* :mod:`._engine`: the Dask client (local cluster or existing scheduler);
* :mod:`._group`: the participants table and the group matrices.
"""

from ._atlas_inputs import read_labels_table, resolve_atlas
from ._atlas_names import (
    ATLAS_NAME_FORMS,
    AtlasName,
    fetch_named_atlas,
    looks_like_atlas_name,
    parse_atlas_name,
)
from ._bids import BoldRun, Discovery, Unpaired, discover_runs
from ._cohort import EXIT_SOME_FAILED, CohortResult, run_cohort
from ._demo_atlas import demo_atlas_note, simulated_demo_atlas
from ._run import (
    OUTPUT_FILES,
    ConnectomeResult,
    atlas_description,
    check_output_dir,
    missing_glyphs_collapsed,
    run_connectome,
)
from ._selection import SELECTIONS, make_estimator, selection_of

__all__ = [
    "ATLAS_NAME_FORMS",
    "AtlasName",
    "atlas_description",
    "demo_atlas_note",
    "fetch_named_atlas",
    "looks_like_atlas_name",
    "parse_atlas_name",
    "simulated_demo_atlas",
    "EXIT_SOME_FAILED",
    "BoldRun",
    "CohortResult",
    "Discovery",
    "Unpaired",
    "discover_runs",
    "run_cohort",
    "OUTPUT_FILES",
    "ConnectomeResult",
    "check_output_dir",
    "missing_glyphs_collapsed",
    "read_labels_table",
    "resolve_atlas",
    "run_connectome",
    "SELECTIONS",
    "make_estimator",
    "selection_of",
]
