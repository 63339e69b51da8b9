"""The seed's whole flow, run by ``bench_end_to_end.py`` in a fresh process.

Usage: python _seed_flow.py {ours,reference} MAPS FUNC CONFOUNDS COORDS_NPY OUT_DIR

``reference`` uses nilearn + scikit-learn, ``ours`` uses sparse-connectome; the
code is otherwise the same. Prints one JSON line with the wall time measured
inside the process (imports included) and the peak resident memory.
"""

import json
import resource
import sys
import time

start = time.perf_counter()
impl, maps, func, confounds, coords_path, out_dir = sys.argv[1:7]

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import numpy as np  # noqa: E402

if impl == "ours":
    from sparse_connectome import plotting
    from sparse_connectome.covariance import GraphicalLassoCV
    from sparse_connectome.maskers import NiftiMapsMasker
else:
    import warnings

    warnings.simplefilter("ignore")
    from nilearn import plotting
    from nilearn.maskers import NiftiMapsMasker
    from sklearn.covariance import GraphicalLassoCV

coords = np.load(coords_path)
masker = NiftiMapsMasker(maps_img=maps, standardize="zscore_sample",
                         standardize_confounds=True)
time_series = masker.fit_transform(func, confounds=[confounds])
estimator = GraphicalLassoCV()
estimator.fit(time_series)

import matplotlib.pyplot as plt  # noqa: E402

for name, matrix, title in (("cov", estimator.covariance_, "Covariance"),
                            ("prec", -estimator.precision_, "Sparse inverse covariance")):
    plotting.plot_matrix(matrix, figure=(9, 7), vmax=1, vmin=-1, title=title)
    plt.savefig(f"{out_dir}/{impl}_{name}_matrix.png")
    plt.close("all")
    plotting.plot_connectome(matrix, coords, title=title, edge_threshold="80%",
                             output_file=f"{out_dir}/{impl}_{name}_connectome.png")
view = plotting.view_connectome(-estimator.precision_, coords, edge_threshold="80%")
view.save_as_html(f"{out_dir}/{impl}_view.html")

elapsed = time.perf_counter() - start


def peak_rss_kib() -> float:
    """Peak resident memory of this process image.

    VmHWM (Linux) belongs to the address space created by exec, whereas
    ``ru_maxrss`` survives exec and may report the parent's peak at fork time.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


peak_kib = peak_rss_kib()
print(json.dumps({"impl": impl, "seconds": elapsed, "peak_mib": peak_kib / 1024,
                  "alpha": float(estimator.alpha_)}))
