"""Regenerate the pictures of large connectomes in docs/images/.

    .venv/bin/python docs/make_scale_images.py [--out docs/images]

For 400 regions (7 networks) and 1000 regions (17 networks) of a Schaefer-like
simulated parcellation: the partial correlation of a sparse precision matrix
whose edges follow the networks, drawn as a matrix grouped by network (network
bands) and as a glass-brain graph with the default cap on edges drawn and nodes
sized by degree. Deterministic: the atlas and the matrix take fixed seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from sparse_connectome import plotting
from sparse_connectome.simulate import make_sparse_precision
from sparse_connectome.simulate.atlases import simulate_labels_atlas

SIZES = ((400, 7), (1000, 17))


def scale_example(n_regions: int, n_networks: int, seed: int = 0):
    """Atlas (labels, networks, coordinates) and the partial correlation of a sparse
    precision matrix following its networks."""
    atlas = simulate_labels_atlas(n_regions, n_networks=n_networks, random_state=seed)
    precision = make_sparse_precision(n_regions, atlas.networks, density_within=0.15,
                                      density_between=0.004, random_state=seed)
    scale = np.sqrt(np.diag(precision))
    partial = -precision / np.outer(scale, scale)
    np.fill_diagonal(partial, 1.0)
    return atlas, partial


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n_regions, n_networks in SIZES:
        atlas, partial = scale_example(n_regions, n_networks)
        fig = plt.figure(figsize=(9, 8))
        plotting.plot_matrix(partial, labels=atlas.labels, networks=atlas.networks, figure=fig,
                             tri="lower",
                             title=f"Partial correlation, {n_regions} regions")
        # At least one pixel per row, so that no edge is averaged away.
        fig.savefig(out / f"matrix_{n_regions}.png", dpi=150)
        plt.close(fig)
        display = plotting.plot_connectome(
            partial, atlas.region_coords, node_networks=atlas.networks,
            title=f"{n_regions} regions: the strongest {display_cap(n_regions)} edges")
        display.savefig(out / f"connectome_{n_regions}.png", dpi=120)
        print(f"{n_regions} regions: {display.n_edges} of {display.n_edges_above_threshold} "
              "edges drawn")
        display.close()


def display_cap(n_regions: int) -> int:
    from sparse_connectome.plotting.connectome import glass_brain_edge_cap

    return glass_brain_edge_cap(n_regions)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images")
    main(parser.parse_args().out)
