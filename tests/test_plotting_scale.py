"""Pictures at 400 and 1000 regions: network bands, caps on edges drawn, nodes sized by
degree, the 3D view's slider data, and reports that stay under 10 MB."""

from __future__ import annotations

import io
import json
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from sparse_connectome import plotting
from sparse_connectome.errors import EdgeCapWarning, ParameterError, ShapeMismatchError
from sparse_connectome.plotting._edges import kept_edges, node_degrees


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _example(n_regions, n_networks, seed=0):
    from sparse_connectome.simulate import make_sparse_precision
    from sparse_connectome.simulate.atlases import simulate_labels_atlas

    atlas = simulate_labels_atlas(n_regions, n_networks=n_networks, random_state=seed)
    precision = make_sparse_precision(n_regions, atlas.networks, density_within=0.15,
                                      density_between=0.004, random_state=seed)
    scale = np.sqrt(np.diag(precision))
    partial = -precision / np.outer(scale, scale)
    np.fill_diagonal(partial, 1.0)
    return atlas, precision, partial


@pytest.fixture(scope="module")
def schaefer400():
    return _example(400, 7)


@pytest.fixture(scope="module")
def schaefer1000():
    return _example(1000, 17)


def _gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


# ----------------------------------------------------------------------------- plot_matrix

def test_matrix_network_bands_replace_region_labels(schaefer400):
    atlas, _, partial = schaefer400
    networks = list(atlas.networks)
    image = plotting.plot_matrix(partial, labels=atlas.labels, networks=networks)
    ax = image.axes
    names = list(dict.fromkeys(networks))
    # Grouped by network, stable within each network.
    order = image.order
    assert [networks[i] for i in order] == sorted(networks, key=names.index)
    for name in names:
        members = [i for i in order if networks[i] == name]
        assert members == sorted(members)
    np.testing.assert_array_equal(image.get_array(), partial[np.ix_(order, order)])
    # One band per network on each axis, one name per network on each axis, no region label.
    assert len(_gid(ax.patches, "network_band")) == 2 * len(names)
    texts = [t.get_text() for t in _gid(ax.texts, "network_name")]
    assert sorted(texts) == sorted(names * 2)
    assert ax.get_xticklabels() == [] or all(t.get_text() == "" for t in ax.get_xticklabels())
    assert image.label_step is None and image.networks == [networks[i] for i in order]
    # Bands take the network colours, in order along the axis, and span their rows.
    bands = _gid(ax.patches, "network_band")[::2]
    assert [b.get_height() for b in bands] == [networks.count(n) for n in names]
    # Network borders are drawn, and the cells are one raster image (light SVG).
    assert _gid(ax.collections, "matrix_grid")
    assert image.get_rasterized()


def test_matrix_without_networks_drops_unreadable_labels(schaefer1000):
    atlas, _, partial = schaefer1000
    image = plotting.plot_matrix(partial, labels=atlas.labels)
    assert image.label_step is None
    assert list(image.axes.get_xticks()) == [] and list(image.axes.get_yticks()) == []
    # 400 regions still name every k-th row (k <= 10): see test_plotting.py.
    svg = io.BytesIO()
    image.figure.savefig(svg, format="svg")
    text = svg.getvalue().decode()
    assert text.count("<image") == 2 and len(text) < 3_000_000  # the cells, the colour bar


def test_matrix_networks_checks_and_clustering_within_networks(schaefer400):
    atlas, _, partial = schaefer400
    networks = list(atlas.networks)
    with pytest.raises(ShapeMismatchError, match="networks"):
        plotting.plot_matrix(partial, networks=networks[:3])
    with pytest.raises(ParameterError, match="networks"):
        plotting.plot_matrix(partial, networks=networks, reorder=networks)
    image = plotting.plot_matrix(partial, networks=networks, reorder=True)
    grouped = [networks[i] for i in image.order]
    # Clustered within each network: still one block per network.
    assert sum(a != b for a, b in zip(grouped, grouped[1:])) == len(set(networks)) - 1
    assert sorted(image.order) == list(range(400))


# ------------------------------------------------------------------------- plot_connectome

def _edges(display, panel="z"):
    (lc,) = _gid(display.axes[panel].collections, "connectome_edges")
    return lc


def _nodes(display, panel="z"):
    (sc,) = _gid(display.axes[panel].collections, "connectome_nodes")
    return sc


def test_glass_brain_default_cap_and_degree_sizes(schaefer1000):
    atlas, _, partial = schaefer1000
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdgeCapWarning)  # no threshold given: no warning
        display = plotting.plot_connectome(partial, atlas.region_coords, display_mode="z")
    rows, cols, weights = kept_edges(partial, None)
    assert display.edge_cap == 1000 and display.n_edges == 1000
    assert display.n_edges_above_threshold == len(weights) > 1000
    # The strongest 1000 are drawn: every edge drawn is at least as strong as any left out.
    assert len(_edges(display).get_segments()) == 1000
    assert np.abs(weights[-1000:]).min() >= np.abs(weights[:-1000]).max()
    # Nodes sized by degree (drawn edges), growing with it; unconnected nodes smallest.
    degree = node_degrees(1000, rows[-1000:], cols[-1000:])
    sizes = display.node_sizes
    assert np.all(np.diff(sizes[np.argsort(degree, kind="stable")]) >= -1e-12)
    assert sizes[degree == 0].max() == pytest.approx(2.0) if np.any(degree == 0) else True
    assert sizes.max() < 60 * np.sqrt(100 / 1000) + 2.01
    nodes = _nodes(display)
    np.testing.assert_allclose(nodes.get_sizes(), sizes[nodes.node_indices])
    # Thinner, more transparent edges at scale.
    lc = _edges(display)
    thin = np.sqrt(150 / 1000)  # plot_connectome's documented rule
    assert lc.get_alpha() == pytest.approx(0.7 * thin)
    assert max(lc.get_linewidths()) == pytest.approx(thin * 2.5)
    display.close()


def test_glass_brain_explicit_threshold_is_honoured_then_capped(schaefer400):
    atlas, _, partial = schaefer400
    coords = atlas.region_coords
    # A threshold that keeps fewer edges than the cap: exactly those, no warning.
    magnitudes = np.sort(np.abs(partial[np.triu_indices(400, 1)]))[::-1]
    threshold = float(magnitudes[300])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdgeCapWarning)
        display = plotting.plot_connectome(partial, coords, edge_threshold=threshold,
                                           display_mode="x")
    assert display.n_edges == len(kept_edges(partial, threshold)[2]) == 301
    display.close()
    # "80%" of the pairs keeps ~16 000 edges: 2032 non-zero ones, the cap draws 1000.
    with pytest.warns(EdgeCapWarning, match=r"strongest 1000 .*max_edges=1000"):
        display = plotting.plot_connectome(partial, coords, edge_threshold="80%",
                                           display_mode="x")
    assert display.n_edges == 1000 and display.n_edges_above_threshold == 2032
    display.close()
    display = plotting.plot_connectome(partial, coords, edge_threshold="80%",
                                       display_mode="x", max_edges=None)
    assert display.n_edges == 2032 and display.edge_cap is None
    display.close()
    with pytest.raises(ParameterError, match="max_edges"):
        plotting.plot_connectome(partial, coords, max_edges=-1)
    with pytest.raises(ParameterError, match="node_size"):
        plotting.plot_connectome(partial, coords, node_size="big")


def test_glass_brain_at_39_regions_is_unchanged():
    from sparse_connectome.datasets import load_demo

    data = load_demo()
    matrix = -data.true_precision
    display = plotting.plot_connectome(matrix, data.region_coords, edge_threshold="80%")
    rows, cols, weights = kept_edges(matrix, "80%")
    assert display.n_edges == len(weights) < 1000 and display.edge_cap == 1000
    lc = _edges(display, "x")
    assert lc.get_alpha() == pytest.approx(0.7)
    strength = np.abs(weights) / np.abs(weights).max()
    visible = (data.region_coords[rows, 0] > -1e9)  # all panels show all nodes in "x"
    np.testing.assert_allclose(np.sort(lc.get_linewidths()),
                               np.sort(1.0 + 1.5 * strength[visible]))
    assert set(_nodes(display, "x").get_sizes()) == {50.0}
    display.close()


# -------------------------------------------------------------------------------- 3D view

def _payload(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="sc-connectome-view-data">(.*?)'
                      r"</script>", page, re.DOTALL)
    return json.loads(match.group(1))


def test_view_caps_edges_and_holds_more_for_the_slider(schaefer1000):
    atlas, _, partial = schaefer1000
    labels = list(atlas.labels)
    view = plotting.view_connectome(partial, atlas.region_coords, node_labels=labels,
                                    max_edges_in_page=5000)
    meta = view.figure["meta"]
    rows, cols, weights = kept_edges(partial, None)
    assert meta["n_edges"] == 2000 and meta["n_edges_in_page"] == 5000
    assert meta["n_edges_above_threshold"] == len(weights)
    page = view.get_standalone()
    payload = _payload(page)
    lines, mids, nodes = payload["graph"]
    assert len(lines["x"]) == 3 * 2000 and len(mids["text"]) == 2000
    held = payload["edges"]
    assert len(held["w"]) == 5000
    magnitude = np.abs(held["w"])
    assert np.all(np.diff(magnitude) <= 0)  # strongest first
    # The held edges are the strongest 5000, and those drawn are the first 2000 of them.
    np.testing.assert_allclose(magnitude, np.abs(weights[::-1][:5000]), rtol=1e-4)
    assert list(zip(held["i"][:2000], held["j"][:2000]))[::-1] == list(
        zip(rows[-2000:].tolist(), cols[-2000:].tolist()))
    assert held["labels"][5] == labels[5] and len(nodes["text"]) == 1000
    # The slider and the threshold input, bounded by the edges held.
    assert 'type="range" min="0" max="5000" step="1" value="2000"' in page
    assert 'type="number"' in page and "scEdgeControls" in page
    # The colour scale covers every edge the slider can reach.
    assert mids["marker"]["cmax"] == pytest.approx(np.abs(weights).max())
    with pytest.warns(EdgeCapWarning, match="max_edges=2000"):
        plotting.view_connectome(partial, atlas.region_coords, edge_threshold="80%")


def test_small_view_has_no_slider_and_draws_every_kept_edge():
    from sparse_connectome.datasets import load_demo

    data = load_demo()
    view = plotting.view_connectome(-data.true_precision, data.region_coords,
                                    edge_threshold="80%")
    weights = kept_edges(-data.true_precision, "80%")[2]
    assert view.figure["meta"]["n_edges"] == view.figure["meta"]["n_edges_in_page"] == len(
        weights)
    assert view.figure["data"][1]["marker"]["color"] == [float(w) for w in weights]
    assert "sc-edge-controls" not in view.get_standalone()


# ------------------------------------------------------------------------------- reports

class _Fitted:
    """The attributes of a fitted estimator that the report reads."""

    def __init__(self, precision):
        self.precision_ = precision
        self.covariance_ = np.linalg.inv(precision)
        self.alpha_ = 0.1
        self.cv_results_ = {"alphas": np.array([0.4, 0.2, 0.1, 0.05]),
                            "mean_test_score": np.array([-52.0, -50.5, -50.0, -50.3]),
                            "std_test_score": np.array([0.5, 0.4, 0.4, 0.5])}
        self.duality_gap_, self.converged_, self.n_iter_ = 1e-5, True, 12


def _images(page):
    return re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_subject_report_at_1000_regions_is_under_10_mb(schaefer1000):
    from sparse_connectome.report import build_report_html

    atlas, precision, _ = schaefer1000
    rng = np.random.default_rng(0)
    ts = rng.standard_normal((120, 1000))
    page = build_report_html(time_series=ts, labels=atlas.labels, coords=atlas.region_coords,
                             estimator=_Fitted(precision), networks=atlas.networks,
                             true_precision=precision, summary={"t_r": 2.0})
    print(f"\n1000-region subject report: {len(page) / 1e6:.2f} MB")
    assert len(page.encode()) < 10_000_000
    assert len(_images(page)) == 7
    # The notes say what the caps drew; the 3D view holds its slider.
    assert "the strongest 1000 of the" in page and "The strongest 2000 of the" in page
    assert 'class="sc-edge-controls"' in page
    assert page.count("plotly.js v") == 1


def test_group_report_at_400_regions(schaefer400):
    import pandas as pd

    from sparse_connectome.report import build_group_report_html

    atlas, _, partial = schaefer400
    k = 3
    table = pd.DataFrame({
        "participant_id": [f"sub-{i}" for i in range(k)], "session": [None] * k,
        "task": ["rest"] * k, "run": [None] * k, "status": ["computed"] * k,
        "error": [None] * k, "alpha": [0.1] * k, "duality_gap": [1e-5] * k,
        "converged": [True] * k, "n_edges": [2032] * k, "n_volumes": [200] * k,
        "n_volumes_kept": [200] * k, "n_volumes_scrubbed": [0] * k, "mean_fd": [0.1] * k,
        "seconds": [5.0] * k, "peak_mb": [300.0] * k})
    page = build_group_report_html(table=table, labels=atlas.labels,
                                   coords=atlas.region_coords, networks=atlas.networks,
                                   mean_partial=partial, consistency=np.abs(partial) > 0,
                                   parameters={}, plotly_src="plotly.min.js")
    print(f"\n400-region group report (plotly.js shared): {len(page) / 1e6:.2f} MB")
    assert len(page) < 4_000_000
    # The glass brain draws 1000 of the 2032 edges, the 3D view 2000 and holds them all.
    assert "the strongest 1000 of the 2032 edges" in page
    assert "The strongest 2000 of the 2032 edges" in page
    assert 'type="range" min="0" max="2032" step="1" value="2000"' in page
