"""
Computing a connectome with sparse inverse covariance
=====================================================

This example constructs a functional connectome using the sparse inverse
covariance, as the nilearn tutorial of the same name does, with only the
imports changed.

We use the MSDL atlas of functional regions in movie watching, and the
``NiftiMapsMasker`` to extract time series.

Note that the inverse covariance (or precision) contains values that can be
linked to negated partial correlations, so we negate it for display.

As the MSDL atlas comes with (x, y, z) MNI coordinates for the different
regions, we can visualize the matrix as a graph of interaction in a brain. To
avoid having too dense a graph, we represent only the 20% edges with the
highest values.

By default the example runs offline on the embedded demo subject, which mirrors
the seed's data (MSDL regions, a development-fMRI-like image and confounds).
Pass ``--online`` to download the real MSDL atlas and one subject of the
development fMRI dataset instead.
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--online", action="store_true",
                    help="use the real MSDL atlas and development fMRI subject (downloads)")
args = parser.parse_args()

# %%
# Retrieve the atlas and the data
# -------------------------------
from sparse_connectome import datasets

if args.online:
    atlas = datasets.fetch_atlas_msdl()
else:
    # The demo subject holds the atlas and the data in one object.
    atlas = datasets.load_demo()
# Loading atlas image stored in 'maps'
atlas_filename = atlas["maps"]
# Loading atlas data stored in 'labels'
labels = atlas["labels"]

# Loading the functional datasets
data = datasets.fetch_development_fmri(n_subjects=1) if args.online else atlas

# print basic information on the dataset
print(f"First subject functional nifti images (4D) are at: {data.func[0]}")

# %%
# Extract time series
# -------------------
from sparse_connectome.maskers import NiftiMapsMasker

masker = NiftiMapsMasker(
    maps_img=atlas_filename,
    standardize="zscore_sample",
    standardize_confounds="zscore_sample",
    memory="sparse_connectome_cache",
    verbose=5,
)

time_series = masker.fit_transform(data.func[0], confounds=data.confounds)

# %%
# Compute the sparse inverse covariance
# -------------------------------------
from sparse_connectome.covariance import GraphicalLassoCV

estimator = GraphicalLassoCV()
estimator.fit(time_series)

# %%
# Display the connectome matrix
# -----------------------------
from sparse_connectome import plotting

# Display the covariance

# The covariance can be found at estimator.covariance_
plotting.plot_matrix(
    estimator.covariance_,
    labels=labels,
    figure=(9, 7),
    vmax=1,
    vmin=-1,
    title="Covariance",
)

# %%
# And now display the corresponding graph
# ---------------------------------------
coords = atlas.region_coords

plotting.plot_connectome(estimator.covariance_, coords, title="Covariance",
                         edge_threshold="80%")

# %%
# Display the sparse inverse covariance
# -------------------------------------
# we negate it to get partial correlations
plotting.plot_matrix(
    -estimator.precision_,
    labels=labels,
    figure=(9, 7),
    vmax=1,
    vmin=-1,
    title="Sparse inverse covariance",
)

# %%
# And now display the corresponding graph
# ---------------------------------------
plotting.plot_connectome(
    -estimator.precision_, coords, title="Sparse inverse covariance",
    edge_threshold="80%",
)

plotting.show()

# %%
# 3D visualization in a web browser
# ---------------------------------
# An alternative to ``plotting.plot_connectome`` is to use
# ``plotting.view_connectome``, which gives a more interactive visualization
# in a web browser.

view = plotting.view_connectome(-estimator.precision_, coords)

# In a Jupyter notebook, if ``view`` is the output of a cell, it will
# be displayed below the cell
view  # noqa: B018 (a notebook cell's value is displayed)
# uncomment this to open the plot in a web browser:
# view.open_in_browser()
