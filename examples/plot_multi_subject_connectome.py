"""
Group Sparse inverse covariance for multi-subject connectome
============================================================

This example shows how to estimate a connectome on a group of subjects using
the group sparse inverse covariance estimate, as nilearn's example of the same
name does, with this package's API.

The group model (Varoquaux et al., NIPS 2010) estimates one precision per
subject, all sharing the same zeros. Here it is solved exactly: every fit
carries a duality gap, a certificate of optimality.

By default the example runs offline on the simulated demo cohort (MSDL-like
regions, fMRIPrep-style images and confounds, with a known ground truth).
Pass ``--online`` to download the real MSDL atlas and subjects of the
development fMRI dataset instead. The figures are written to ``--out``.
"""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--online", action="store_true",
                    help="use the real MSDL atlas and development fMRI subjects (downloads)")
parser.add_argument("--n-subjects", type=int, default=4, help="number of subjects (default 4)")
parser.add_argument("--out", default="multi_subject_connectome",
                    help="folder for the figures (created)")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # figures are written to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sparse_connectome import plotting  # noqa: E402


def plot_matrices(cov, prec, title, labels, name):
    """Plot covariance and precision matrices, for a given processing."""
    prec = prec.copy()  # avoid side effects

    # Put zeros on the diagonal, for graph clarity.
    size = prec.shape[0]
    prec[list(range(size)), list(range(size))] = 0
    span = max(abs(prec.min()), abs(prec.max()))

    # Display covariance matrix
    figure = plt.figure(figsize=(9, 7))
    plotting.plot_matrix(cov, figure=figure, labels=labels, vmin=-1, vmax=1,
                         title=f"{title} / covariance")
    figure.savefig(out / f"{name}_covariance.png")
    plt.close(figure)
    # Display precision matrix
    figure = plt.figure(figsize=(9, 7))
    plotting.plot_matrix(prec, figure=figure, labels=labels, vmin=-span, vmax=span,
                         title=f"{title} / precision")
    figure.savefig(out / f"{name}_precision.png")
    plt.close(figure)


# %%
# Fetching datasets
# -----------------
from sparse_connectome import datasets  # noqa: E402

if args.online:
    msdl_atlas_dataset = datasets.fetch_atlas_msdl()
    rest_dataset = datasets.fetch_development_fmri(n_subjects=args.n_subjects)
    confound_filenames = rest_dataset.confounds
    sample_masks = [None] * len(rest_dataset.func)
else:
    from sparse_connectome.confounds import load_confounds_strategy

    # The demo cohort holds the atlas and the data in one object.
    msdl_atlas_dataset = rest_dataset = datasets.load_demo_cohort(n_subjects=args.n_subjects)
    confound_filenames, sample_masks = [], []
    for func in rest_dataset.func:
        confounds, sample_mask = load_confounds_strategy(func, "simple")
        confound_filenames.append(confounds)
        sample_masks.append(sample_mask)

# print basic information on the dataset
print(f"first subject functional nifti image (4D) is at: {rest_dataset.func[0]}")

# %%
# Region signals extraction
# -------------------------
from sparse_connectome.maskers import NiftiMapsMasker  # noqa: E402

masker = NiftiMapsMasker(
    maps_img=msdl_atlas_dataset.maps,
    standardize="zscore_sample",
    standardize_confounds=True,
    verbose=1,
).fit()

subject_time_series = []
for func_filename, confounds, sample_mask in zip(rest_dataset.func, confound_filenames,
                                                  sample_masks, strict=True):
    print(f"Processing file {func_filename}")
    region_ts = masker.transform(func_filename, confounds=confounds, sample_mask=sample_mask)
    subject_time_series.append(region_ts)

# %%
# Computing group-sparse precision matrices
# -----------------------------------------
from sparse_connectome.connectome import GroupSparseCovarianceCV  # noqa: E402

gsc = GroupSparseCovarianceCV(verbose=1)
gsc.fit(subject_time_series)
print(f"group model: alpha_ = {gsc.alpha_:.4g}, duality gap {gsc.duality_gap_:.2e}, "
      f"converged: {gsc.converged_}")

from sparse_connectome.covariance import GraphicalLassoCV  # noqa: E402

gl = GraphicalLassoCV(verbose=True)
gl.fit(np.concatenate(subject_time_series))
print(f"concatenated signals: alpha_ = {gl.alpha_:.4g}, duality gap {gl.duality_gap_:.2e}")

# %%
# Displaying results
# ------------------
atlas_img = msdl_atlas_dataset.maps
atlas_region_coords = plotting.find_probabilistic_atlas_cut_coords(atlas_img)
labels = list(msdl_atlas_dataset.labels)

plotting.plot_connectome(
    gl.covariance_, atlas_region_coords, edge_threshold="90%", title="Covariance",
    display_mode="lzr", output_file=out / "graphical_lasso_covariance_connectome.png",
)
plotting.plot_connectome(
    -gl.precision_, atlas_region_coords, edge_threshold="90%",
    title="Sparse inverse covariance (GraphicalLasso)", display_mode="lzr",
    edge_vmax=0.5, edge_vmin=-0.5,
    output_file=out / "graphical_lasso_precision_connectome.png",
)
plot_matrices(gl.covariance_, gl.precision_, "GraphicalLasso", labels, "graphical_lasso")

# Each subject's connectome from the group model: one support, individual weights.
for k in range(len(subject_time_series)):
    title = f"GroupSparseCovariance, subject {k + 1}"
    plotting.plot_connectome(
        -gsc.precisions_[..., k], atlas_region_coords, edge_threshold="90%", title=title,
        display_mode="lzr", edge_vmax=0.5, edge_vmin=-0.5,
        output_file=out / f"group_sparse_subject{k + 1:02d}_connectome.png",
    )
    plot_matrices(gsc.covariances_[..., k], gsc.precisions_[..., k], title, labels,
                  f"group_sparse_subject{k + 1:02d}")

# The group's connectome: the mean of the subjects' precisions (same support).
plotting.plot_connectome(
    -gsc.precisions_.mean(axis=-1), atlas_region_coords, edge_threshold="90%",
    title="GroupSparseCovariance, group mean", display_mode="lzr",
    edge_vmax=0.5, edge_vmin=-0.5, output_file=out / "group_sparse_group_connectome.png",
)

if not args.online:
    from sparse_connectome.connectome import support_recovery

    f1 = [support_recovery(gsc.precisions_[..., k], truth).f1
          for k, truth in enumerate(rest_dataset.true_precisions)]
    print(f"support F1 against the ground truth (group model): mean {np.mean(f1):.3f}")

print(f"figures written to {out}")
