"""The 3D view at 1000 nodes in headless Chromium, offline: first render, no console
error, and the edge slider redraws from the edges the page holds.

The time to first render is printed (``-s`` shows it), not asserted: the machine
is shared and software WebGL is slow. Skips where no Chromium (or no Playwright)
exists, as ``test_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - playwright is a test dependency
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable found "
                       "(/usr/bin/chromium, or set CHROMIUM=path)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
]

# Software WebGL (SwiftShader) so that the scene renders without a GPU.
ARGS = ["--no-sandbox", "--headless=new", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-extensions"]

N_NODES = 1000


def _large_graph():
    """A Schaefer-like 1000-region atlas and a sparse partial correlation on it."""
    from sparse_connectome.simulate import make_sparse_precision
    from sparse_connectome.simulate.atlases import simulate_labels_atlas

    atlas = simulate_labels_atlas(N_NODES, n_networks=17, random_state=0)
    precision = make_sparse_precision(N_NODES, atlas.networks, density_within=0.15,
                                      density_between=0.004, random_state=0)
    scale = np.sqrt(np.diag(precision))
    return -precision / np.outer(scale, scale), atlas


def test_view_at_1000_nodes_renders_fast_without_errors(tmp_path):
    from sparse_connectome import plotting

    partial, atlas = _large_graph()
    labels = list(atlas.labels)
    labels[0] = "<script>alert(1)</script>"
    view = plotting.view_connectome(partial, atlas.region_coords, node_labels=labels,
                                    node_networks=atlas.networks, max_edges_in_page=5000)
    meta = view.figure["meta"]
    assert meta["n_edges"] == 2000 and meta["n_edges_in_page"] == 5000
    path = tmp_path / "view.html"
    view.save_as_html(path)
    print(f"\n1000-node view: {path.stat().st_size / 1e6:.2f} MB, {meta['n_edges']} edges "
          f"drawn, {meta['n_edges_in_page']} held of {meta['n_edges_above_threshold']}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 800}, offline=True)
        requests, errors = [], []

        def route(r):
            if r.request.url.startswith(("file://", "data:")):
                r.continue_()
            else:
                requests.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog {d.message}"), d.dismiss()))
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("#sc-connectome-view[data-render-ms]", timeout=60_000)
        wall = time.perf_counter() - start
        render_ms = int(page.get_attribute("#sc-connectome-view", "data-render-ms"))
        print(f"1000-node view: first render {render_ms} ms after navigation start "
              f"(page's clock), {wall:.2f} s wall from goto")
        gd = "document.querySelector('.sc-graph')"
        n_points = page.evaluate(f"{gd}.data[0].x.length")
        assert n_points == 3 * 2000
        nodes = page.evaluate(f"{gd}.data[{gd}.data.length - 1].text")
        assert len(nodes) == N_NODES and nodes[0].startswith("<b>&lt;script&gt;")
        # The slider: 3000 edges, then a |weight| threshold, redraw from the held edges.
        page.evaluate("(() => {const r = document.querySelector('.sc-edge-controls "
                      "input[type=range]'); r.value = 3000; "
                      "r.dispatchEvent(new Event('input'));})()")
        page.wait_for_function(f"{gd}.data[0].x.length === 9000", timeout=20_000)
        mids = page.evaluate(f"{gd}.data[1].text")
        assert len(mids) == 3000 and all(" \u2013 " in t and "weight: " in t for t in mids)
        held = np.abs(view.figure["edges"]["w"])
        threshold = float(held[999])
        page.fill(".sc-edge-controls input[type=number]", f"{threshold!r}")
        page.dispatch_event(".sc-edge-controls input[type=number]", "change")
        expected = int(np.count_nonzero(held >= threshold))
        page.wait_for_function(f"{gd}.data[0].x.length === {3 * expected}", timeout=20_000)
        assert "of" in page.text_content(".sc-edge-controls output")
        page.wait_for_timeout(300)
        context.close()
        browser.close()
    assert requests == []
    assert errors == []
