"""The 3D view and the report at 1000 regions in headless Chromium, offline: first
render, no console error, and the edge slider redraws from the edges the page holds.

The time to first render is printed (``-s`` shows it), not asserted: the machine
is shared and software WebGL is slow. Skips where no Chromium (or no Playwright)
exists, as ``test_browser.py``.
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from _browser import BROWSER_SKIPS

pytestmark = BROWSER_SKIPS

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


@pytest.fixture(scope="module")
def large_graph():
    return _large_graph()


def _open(browser, path, selector):
    """Load a local page offline and wait for its 3D view's first render; return the page,
    the requests that tried to leave it, the errors, and the seconds from goto."""
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
    page.wait_for_selector(f"{selector}[data-render-ms]", timeout=60_000)
    return page, requests, errors, time.perf_counter() - start


def _seed_size_render_ms(browser, tmp_path) -> int:
    """First render of the seed's view (39 regions, "80%"): the other side of the ratio."""
    from sparse_connectome import plotting
    from sparse_connectome.datasets import load_demo

    data = load_demo()
    path = tmp_path / "seed_view.html"
    plotting.view_connectome(-data.true_precision, data.region_coords, edge_threshold="80%",
                             node_labels=data.labels).save_as_html(path)
    page, requests, errors, _ = _open(browser, path, "#sc-connectome-view")
    try:
        assert requests == [] and errors == []
        return int(page.get_attribute("#sc-connectome-view", "data-render-ms"))
    finally:
        page.context.close()


def test_view_at_1000_nodes_renders_without_errors(browser, large_graph, tmp_path):
    from sparse_connectome import plotting

    partial, atlas = large_graph
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
    baseline_ms = _seed_size_render_ms(browser, tmp_path)
    page, requests, errors, wall = _open(browser, path, "#sc-connectome-view")
    try:
        render_ms = int(page.get_attribute("#sc-connectome-view", "data-render-ms"))
        print(f"1000-node view: first render {render_ms} ms after navigation start "
              f"(page's clock), {wall:.2f} s wall from goto; the seed's 39-node view in "
              f"the same browser: {baseline_ms} ms (ratio {render_ms / baseline_ms:.2f})")
        gd = "document.querySelector('.sc-graph')"
        assert page.evaluate(f"{gd}.data[0].x.length") == 3 * 2000
        nodes = page.evaluate(f"{gd}.data[{gd}.data.length - 1].text")
        assert len(nodes) == N_NODES and nodes[0].startswith("<b>&lt;script&gt;")
        # The slider: 3000 edges, then a |weight| threshold, redrawn from the held edges.
        page.evaluate("(() => {const r = document.querySelector('.sc-edge-controls "
                      "input[type=range]'); r.value = 3000; "
                      "r.dispatchEvent(new Event('input'));})()")
        page.wait_for_function(f"{gd}.data[0].x.length === 9000", timeout=20_000)
        mids = page.evaluate(f"{gd}.data[1].text")
        assert len(mids) == 3000 and all(" \u2013 " in t and "weight: " in t for t in mids)
        assert "<script>" not in "".join(mids)  # labels stay escaped in redrawn hovers
        held = np.abs(view.figure["edges"]["w"])
        threshold = float(held[999])
        page.fill(".sc-edge-controls input[type=number]", f"{threshold!r}")
        page.dispatch_event(".sc-edge-controls input[type=number]", "change")
        expected = int(np.count_nonzero(held >= threshold))
        page.wait_for_function(f"{gd}.data[0].x.length === {3 * expected}", timeout=20_000)
        assert f"{expected} of {meta['n_edges_above_threshold']}" in page.text_content(
            ".sc-edge-controls output")
        page.wait_for_timeout(300)
        assert requests == [] and errors == []
    finally:
        page.context.close()


def test_report_at_1000_regions_opens_without_errors(browser, large_graph, tmp_path):
    from sparse_connectome.report import write_report

    partial, atlas = large_graph
    precision = -partial
    np.fill_diagonal(precision, 1.0)
    est = type("Est", (), {})()
    est.precision_, est.covariance_ = precision, np.linalg.inv(precision)
    ts = np.random.default_rng(0).standard_normal((100, N_NODES))
    path = write_report(tmp_path / "report.html", time_series=ts, labels=atlas.labels,
                        coords=atlas.region_coords, estimator=est, networks=atlas.networks)
    size = path.stat().st_size
    page, requests, errors, wall = _open(browser, path, "#report-connectome-3d")
    try:
        render_ms = int(page.get_attribute("#report-connectome-3d", "data-render-ms"))
        print(f"\n1000-region report: {size / 1e6:.2f} MB, 3D view's first render "
              f"{render_ms} ms after navigation start, {wall:.2f} s wall from goto")
        assert size < 10_000_000
        sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, "
                              "i.naturalWidth])")
        assert len(sizes) == 5 and all(ok and w > 100 for ok, w in sizes)
        assert page.locator(".sc-edge-controls").count() == 1
        assert requests == [] and errors == []
    finally:
        page.context.close()
