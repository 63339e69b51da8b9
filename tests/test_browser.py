"""Open the 3D view and the report in headless Chromium with the network cut off.

Checks that the WebGL scene renders (the canvas holds non-background pixels),
that nothing is logged as an error, that no request leaves the page, and that a
``<script>`` label shows as text and runs nothing. Skips only where no Chromium
executable (or no Playwright) exists.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np

from _browser import BROWSER_SKIPS

EVIL = "<script>alert(1)</script>"


pytestmark = BROWSER_SKIPS


def _graph():
    rng = np.random.default_rng(0)
    n = 12
    a = rng.normal(size=(n, n))
    a = (a + a.T) / 2
    # Node 0 sits at the centre of the scene (the centre of the brain mesh's box), so
    # that it projects to the centre of the plot, where the hover test points.
    coords = np.array([[0.0, -16.5, 4.77], [53, -6, 28], [1, -75, 11], [-46, -65, 32],
                       [0, -55, 30], [0, 51, 8], [52, -59, 29], [0, -91, 2], [-1, -28, 61],
                       [40, 21, 45], [38, 55, 1], [48, -52, 43]], float)
    labels = [EVIL] + [f"region {i}" for i in range(1, n)]
    return a, coords, labels


def _open(browser, path):
    """Load a local page offline; return (page, requests, errors, dialogs)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800}, offline=True)
    requests, errors, dialogs = [], [], []

    def route(r):
        if r.request.url.startswith(("file://", "data:")):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot canvas", timeout=30_000)
    page.wait_for_timeout(1000)  # let WebGL draw its first frames
    return page, requests, errors, dialogs


def _canvas_pixels(page) -> np.ndarray:
    from PIL import Image

    view = page.locator(".sc-connectome-3d").first
    view.scroll_into_view_if_needed()
    png = view.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def _hover_centre_node(page, top_margin):
    """Point at the scene's centre (node 0, inside the translucent brain) and return
    the hover label's text."""
    box = page.locator(".sc-graph").first.bounding_box()
    x = box["x"] + 0.44 * box["width"]
    y = box["y"] + top_margin + (box["height"] - top_margin) / 2
    for dx, dy in ((0, 0), (3, 3), (-3, -3), (6, 0), (0, 6), (-6, 0), (0, -6)):
        page.mouse.move(x + dx - 30, y + dy - 30)
        page.mouse.move(x + dx, y + dy, steps=4)
        page.wait_for_timeout(250)
        texts = page.evaluate("Array.from(document.querySelectorAll('.hovertext'))"
                              ".map(e => e.textContent)")
        if texts:
            return texts
    return []


def _check_rendered(page, out_png):
    pixels = _canvas_pixels(page)
    background = pixels[0, 0]
    changed = np.any(np.abs(pixels - background) > 12, axis=-1)
    # The translucent brain plus the graph cover a good part of the scene.
    assert changed.mean() > 0.05, f"WebGL canvas is blank ({changed.mean():.3%} drawn)"
    # Edges in bwr: saturated red or blue pixels exist.
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.any((r - g > 80) & (r - b > 80)) or np.any((b - r > 80) & (b - g > 80))
    page.screenshot(path=str(out_png))


def _check_label_is_text(page, dialogs):
    assert dialogs == []
    text = page.evaluate("document.body.textContent")
    assert EVIL in text  # shown as text (the region table)
    n_scripts = page.evaluate("document.querySelectorAll('script').length")
    assert n_scripts == 4  # PlotlyConfig, plotly.js, figure data, newPlot call
    assert page.evaluate("window.__pwned === undefined")


def test_view_renders_offline_without_errors(browser, tmp_path):
    from sparse_connectome import plotting

    adj, coords, labels = _graph()
    path = tmp_path / "view.html"
    plotting.view_connectome(adj, coords, edge_threshold="80%", node_labels=labels,
                             title=EVIL).save_as_html(path)
    page, requests, errors, dialogs = _open(browser, path)
    try:
        assert requests == []
        assert errors == []
        _check_rendered(page, tmp_path / "view.png")
        _check_label_is_text(page, dialogs)
        assert page.title() == EVIL
        # Hover over a node inside the brain shows its label, as text, and runs nothing.
        texts = _hover_centre_node(page, top_margin=50)
        assert any(t.startswith(EVIL) and "mm" in t for t in texts), texts
        assert dialogs == []
    finally:
        page.context.close()


def test_report_renders_offline_without_errors(browser, tmp_path):
    from sparse_connectome.report import write_report

    _, coords, labels = _graph()
    rng = np.random.default_rng(2)
    precision = np.eye(12) * 2 + np.diag(np.full(11, -0.6), 1) + np.diag(np.full(11, -0.6), -1)
    est = type("Est", (), {})()
    est.precision_ = precision
    est.covariance_ = np.linalg.inv(precision)
    est.alpha_ = 0.1
    est.cv_results_ = {"alphas": np.array([0.4, 0.2, 0.1, 0.05]),
                       "mean_test_score": np.array([-52.0, -50.5, -50.0, -50.3]),
                       "std_test_score": np.array([0.5, 0.4, 0.4, 0.5])}
    est.duality_gap_, est.converged_, est.n_iter_ = 1e-5, True, 12
    ts = rng.normal(size=(60, 12))
    path = write_report(tmp_path / "report.html", time_series=ts, labels=labels,
                        coords=coords, estimator=est, true_precision=precision,
                        summary={"n_volumes": 60, "t_r": 2.0})
    page, requests, errors, dialogs = _open(browser, path)
    try:
        assert requests == []
        assert errors == []
        _check_rendered(page, tmp_path / "report.png")
        _check_label_is_text(page, dialogs)
        # Every embedded figure decoded and has a size.
        sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, "
                              "i.naturalWidth])")
        assert len(sizes) == 7 and all(ok and w > 100 for ok, w in sizes)
    finally:
        page.context.close()


def test_cohort_reports_render_from_the_shared_assets(browser, tmp_path):
    """A cohort's reports load plotly.js and the brain surface from OUTPUT_DIR/assets."""
    from sparse_connectome.pipeline import run_cohort

    out = tmp_path / "out"
    result = run_cohort(None, out, demo=1, n_workers=1, verbose=0, n_refinements=1)
    assert result.exit_code == 0
    subject = next(out.glob("sub-01/func/*_report.html"))
    assert len(subject.read_text()) < 1_300_000  # no plotly.js, no mesh inline
    for path in (subject, out / "group" / "report.html"):
        page, requests, errors, dialogs = _open(browser, path)
        try:
            assert requests == [] and errors == [] and dialogs == []
            _check_rendered(page, tmp_path / f"{path.parent.name}.png")
        finally:
            page.context.close()


def test_view_slider_resizes_nodes_sized_by_degree(browser, tmp_path):
    from sparse_connectome import plotting
    from sparse_connectome.plotting._edges import degree_sizes, kept_edges, node_degrees
    from sparse_connectome.plotting.view3d import DEGREE_NODE_SIZES

    adj, coords, labels = _graph()
    view = plotting.view_connectome(adj, coords, node_labels=labels, node_size="degree",
                                    max_edges=3)
    path = tmp_path / "view.html"
    view.save_as_html(path)
    page, requests, errors, dialogs = _open(browser, path)

    def expected_px(n_drawn):
        rows, cols, _ = kept_edges(adj, None)
        degree = node_degrees(12, rows[len(rows) - n_drawn:], cols[len(cols) - n_drawn:])
        return 3.0 * degree_sizes(degree, *DEGREE_NODE_SIZES)

    gd = "document.querySelector('.sc-graph')"
    try:
        sizes = page.evaluate(f"{gd}.data[{gd}.data.length - 1].marker.size")
        np.testing.assert_allclose(sizes, expected_px(3), atol=0.011)
        # Every held edge drawn: the nodes are resized by their degree in those edges.
        page.evaluate("(() => {const r = document.querySelector('.sc-edge-controls "
                      "input[type=range]'); r.value = 20; "
                      "r.dispatchEvent(new Event('input'));})()")
        page.wait_for_function(f"{gd}.data[0].x.length === 60", timeout=20_000)
        sizes = page.evaluate(f"{gd}.data[{gd}.data.length - 1].marker.size")
        np.testing.assert_allclose(sizes, expected_px(20), atol=0.011)
        assert not np.allclose(expected_px(20), expected_px(3))
        assert requests == [] and errors == [] and dialogs == []
    finally:
        page.context.close()
