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

from .anatomy import make_blob_maps, resample_to_grid, tissue_probabilities
from .bold import cosine_drift_basis, framewise_displacement, make_motion, simulate_bold
from .confounds import compute_confounds
from .regions import MOTION_COLUMNS, make_sparse_precision, partial_correlation, sample_region_signals
from .subject import simulate_subject

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

from .cohort import (  # noqa: E402
    cohort_rng,
    make_cohort_precisions,
    make_individual_precision,
    simulate_cohort_subject,
)

__all__ += ["cohort_rng", "make_individual_precision", "make_cohort_precisions",
            "simulate_cohort_subject"]

from .atlases import YEO7_NETWORKS, YEO17_NETWORKS, simulate_labels_atlas, simulate_maps_atlas  # noqa: E402

__all__ += ["simulate_labels_atlas", "simulate_maps_atlas", "YEO7_NETWORKS", "YEO17_NETWORKS"]
