"""Regenerate the PNGs of each plot on the demo subject under ``docs/images/``.

Usage: ``python tools/make_docs_images.py [--out docs/images]``. Uses the demo's
region signals, the package's GraphicalLassoCV and the plotting functions; the
3D view is saved as a screenshot when Chromium and Playwright are available.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np


def _region_signals(demo) -> np.ndarray:
    from sparse_connectome.maskers import NiftiMapsMasker

    masker = NiftiMapsMasker(demo.maps, standardize="zscore_sample")
    return masker.fit_transform(demo.func[0], confounds=demo.confounds[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"
                                             / "images"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from sparse_connectome import plotting
    from sparse_connectome.covariance import GraphicalLassoCV
    from sparse_connectome.datasets import load_demo

    with tempfile.TemporaryDirectory() as tmp:
        demo = load_demo(data_dir=tmp, random_state=0)
        ts = _region_signals(demo)
        estimator = GraphicalLassoCV().fit(ts)
        labels, coords, networks = demo.labels, demo.region_coords, demo.networks
        for name, matrix, title in (("covariance", estimator.covariance_, "Covariance"),
                                    ("precision", -estimator.precision_,
                                     "Sparse inverse covariance")):
            image = plotting.plot_matrix(matrix, labels=labels, figure=(9, 7), vmax=1, vmin=-1,
                                         title=title)
            image.figure.savefig(out / f"{name}_matrix.png", dpi=100)
            plt.close(image.figure)
            plotting.plot_connectome(matrix, coords, title=title, edge_threshold="80%",
                                     output_file=out / f"{name}_connectome.png")
        plotting.plot_connectome(-estimator.precision_, coords, edge_threshold="80%",
                                 display_mode="lyrz", node_networks=networks,
                                 title="Sparse inverse covariance, by network",
                                 output_file=out / "precision_connectome_lyrz.png")
        image = plotting.plot_matrix(-estimator.precision_, labels=labels, reorder=networks,
                                     grid=True, tri="lower", figure=(9, 7),
                                     title="Sparse inverse covariance, grouped by network")
        image.figure.savefig(out / "precision_matrix_by_network.png", dpi=100)
        plt.close(image.figure)
        view = plotting.view_connectome(-estimator.precision_, coords, edge_threshold="80%",
                                        node_labels=labels, node_networks=networks,
                                        title="Sparse inverse covariance")
        html_path = Path(tmp) / "view.html"
        view.save_as_html(html_path)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=chromium, headless=True,
                    args=["--no-sandbox", "--use-angle=swiftshader",
                          "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
                page = browser.new_page(viewport={"width": 1000, "height": 720})
                page.goto(html_path.as_uri())
                page.wait_for_selector(".js-plotly-plot canvas")
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / "connectome_3d.png"))
                browser.close()
        except Exception as exc:  # noqa: BLE001 - no browser here: the other images are still useful
            print(f"3D view screenshot skipped: {exc}")
    for path in sorted(out.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
