"""The offline interactive 3D view: content, escaping, self-containedness."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from sparse_connectome import plotting
from sparse_connectome.errors import ParameterError, ShapeMismatchError
from sparse_connectome.plotting._edges import kept_edges
from sparse_connectome.plotting.view3d import safe_json

EVIL = "<script>alert(1)</script>"


def _graph(n=10, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 2.0)
    coords = rng.uniform(-60, 60, size=(n, 3))
    return a, coords


def _figure_from_html(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="sc-connectome-view-data">(.*?)'
                      r"</script>", page, re.DOTALL)
    payload = json.loads(match.group(1))
    return {"data": payload["brain"] + payload["graph"], "layout": payload["graph_layout"],
            "brain_layout": payload["brain_layout"]}


def test_view_content_edges_nodes_mesh_colourbar():
    adj, coords = _graph()
    labels = [f"region {i}" for i in range(10)]
    view = plotting.view_connectome(adj, coords, edge_threshold="80%", node_labels=labels,
                                    title="Graph")
    fig = _figure_from_html(view.get_standalone())
    mesh, lines, mids, nodes = fig["data"]
    assert mesh["type"] == "mesh3d" and 0 < mesh["opacity"] < 0.5
    assert len(mesh["i"]) > 10000
    rows, cols, weights = kept_edges(adj, "80%")
    assert len(lines["x"]) == 3 * len(weights)  # two ends and a gap per edge
    assert lines["x"][2::3] == [None] * len(weights)
    assert len(mids["text"]) == len(weights)
    bound = np.abs(weights).max()
    assert mids["marker"]["cmin"] == pytest.approx(-bound)
    assert mids["marker"]["cmax"] == pytest.approx(bound)
    assert mids["marker"]["showscale"] is True
    assert mids["text"][-1].startswith(f"{labels[rows[-1]]} \u2013 {labels[cols[-1]]}")
    assert f"weight: {weights[-1]:.3g}" in mids["text"][-1]
    assert len(nodes["x"]) == 10
    np.testing.assert_allclose(nodes["x"], coords[:, 0], atol=0.01)
    assert all(f"<b>{lab}</b>" in t for lab, t in zip(labels, nodes["text"]))
    # Brain and graph scenes are stacked: they must project identically.
    for key in ("xaxis", "yaxis", "zaxis", "aspectratio", "domain", "camera"):
        assert fig["layout"]["scene"][key] == fig["brain_layout"]["scene"][key]
    assert fig["layout"]["scene"]["aspectmode"] == "manual"
    assert fig["layout"]["scene"]["bgcolor"] == "rgba(0,0,0,0)"
    for axis, column in zip("xyz", coords.T):
        lo, hi = fig["layout"]["scene"][f"{axis}axis"]["range"]
        assert lo < column.min() and column.max() < hi


def test_view_is_offline_and_self_contained(tmp_path):
    adj, coords = _graph()
    view = plotting.view_connectome(adj, coords)
    page = view.get_standalone()
    # plotly.js is embedded, once; no script or stylesheet is loaded from elsewhere.
    assert page.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert "cdn.plot.ly" not in page.split("</script>", 2)[-1]
    out = tmp_path / "view.html"
    view.save_as_html(out)
    assert out.read_text(encoding="utf-8") == page
    iframe = view._repr_html_()
    assert iframe.startswith("<iframe srcdoc=") and html.unescape(
        iframe.split('srcdoc="', 1)[1].split('" width=')[0]) == page


def test_view_escapes_labels_and_title():
    adj, coords = _graph()
    labels = [EVIL] + [f"r{i}" for i in range(9)]
    page = plotting.view_connectome(adj, coords, node_labels=labels, title=EVIL,
                                    edge_threshold=0.0).get_standalone()
    body = page.split("</head>", 1)[1]
    # The only <script> elements are ours: the label never appears as markup.
    assert EVIL not in page
    assert body.count("<script") == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # the region table, as text
    fig = _figure_from_html(page)
    assert fig["data"][3]["text"][0].startswith("<b>&lt;script&gt;")
    assert fig["layout"]["title"]["text"] == html.escape(EVIL)


def test_safe_json_cannot_close_a_script():
    text = safe_json({"a": "</script><script>x()</script>&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><script>x()</script>&\u2028"}


def test_view_parameters_and_errors():
    adj, coords = _graph()
    view = plotting.view_connectome(adj, coords, edge_threshold=0.3, linewidth=3,
                                    node_size=[2.0] * 10, node_color="red", colorbar=False)
    fig = view.figure
    lines, mids, nodes = fig["data"]  # the brain mesh is apart, in fig["brain"]
    assert lines["line"]["width"] == 3
    assert mids["marker"]["showscale"] is False
    assert set(nodes["marker"]["color"]) == {"#ff0000"}
    assert fig["brain"][0]["type"] == "mesh3d"
    assert fig["meta"]["n_edges"] == len(kept_edges(adj, 0.3)[2])
    with pytest.raises(ParameterError):
        plotting.view_connectome(adj, coords, node_labels=["a"])
    with pytest.raises(ShapeMismatchError):
        plotting.view_connectome(adj, coords[:3])
    with pytest.raises(ParameterError):
        plotting.view_connectome(adj, coords, edge_threshold="x%")


def test_open_in_browser_writes_the_page(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url))
    adj, coords = _graph()
    target = tmp_path / "v.html"
    plotting.view_connectome(adj, coords).open_in_browser(file_name=target)
    assert opened == ["file://" + str(target)]
    assert target.stat().st_size > 1_000_000


def test_edge_stability_sets_widths_and_hover():
    import numpy as np

    from sparse_connectome.errors import ParameterError
    from sparse_connectome.plotting.view3d import connectome_figure

    adjacency = np.array([[0, 0.5, 0.2], [0.5, 0, -0.3], [0.2, -0.3, 0]])
    stability = np.array([[0, 0.95, 0.4], [0.95, 0, 0.8], [0.4, 0.8, 0]])
    coords = [[-30, 0, 0], [30, 0, 0], [0, 30, 0]]
    figure = connectome_figure(adjacency, coords, edge_stability=stability)
    lines = [t for t in figure["data"] if t["mode"] == "lines"]
    widths = [t["line"]["width"] for t in lines]
    assert len(lines) == 3 and widths == sorted(widths)  # more stable, wider
    assert any("stability: 0.95" in text for text in figure["data"][-2]["text"])
    plain = connectome_figure(adjacency, coords)
    assert [t["name"] for t in plain["data"]] == ["edges", "edge weights", "nodes"]
    with pytest.raises(ParameterError, match="edge_stability"):
        connectome_figure(adjacency, coords, edge_stability=stability * 2)


# ------------------------------------------------------------------ nodes sized by degree

def _star_and_chain():
    """Node 0 links to 1..4 (weights 0.9..0.6), 5-6 weakly (0.2); node 7 isolated."""
    adj = np.zeros((8, 8))
    for k, w in zip(range(1, 5), (0.9, 0.8, 0.7, 0.6)):
        adj[0, k] = adj[k, 0] = w
    adj[5, 6] = adj[6, 5] = 0.2
    coords = np.column_stack([np.linspace(-60, 60, 8), np.zeros(8), np.zeros(8)])
    return adj, coords


def _node_sizes(figure):
    return np.asarray(figure["data"][-1]["marker"]["size"])


def test_view_node_size_degree_grows_with_the_drawn_degree():
    from sparse_connectome.plotting.view3d import DEGREE_NODE_SIZES, connectome_figure

    adj, coords = _star_and_chain()
    low, high = (3.0 * v for v in DEGREE_NODE_SIZES)  # 3 px per unit
    figure = connectome_figure(adj, coords, node_size="degree")
    sizes = _node_sizes(figure)
    degree = np.array([4, 1, 1, 1, 1, 1, 1, 0])
    # Linear in the degree, from the isolated node (smallest, still visible) to the hub.
    np.testing.assert_allclose(sizes, low + (high - low) * degree / 4, atol=0.01)
    assert sizes[7] == pytest.approx(low) and low >= 4 and sizes[0] == pytest.approx(high)
    order = np.argsort(degree, kind="stable")
    assert np.all(np.diff(sizes[order]) >= 0)
    # A threshold that drops the weak 5-6 edge and two spokes changes the degrees.
    figure = connectome_figure(adj, coords, node_size="degree", edge_threshold=0.75)
    sizes = _node_sizes(figure)
    np.testing.assert_allclose(sizes, low + (high - low) * np.array([2, 1, 1, 0, 0, 0, 0, 0])
                               / 2, atol=0.01)
    assert sizes[5] == sizes[6] == sizes[7] == pytest.approx(low)
    # So does the cap on edges drawn: the strongest two, both at the hub.
    figure = connectome_figure(adj, coords, node_size="degree", max_edges=2)
    np.testing.assert_allclose(_node_sizes(figure)[[0, 1, 2, 3]], [high, low + (high - low) / 2,
                                                                   low + (high - low) / 2, low])
    # The slider's redraw learns the mapping only when nodes are sized by degree.
    assert figure["edges"]["d"] == [low, high]
    assert "d" not in connectome_figure(adj, coords, max_edges=2)["edges"]


def test_view_node_size_without_edges_and_fixed_sizes_are_unchanged():
    from sparse_connectome.plotting.view3d import DEGREE_NODE_SIZES, connectome_figure

    adj, coords = _star_and_chain()
    empty = connectome_figure(np.zeros((8, 8)), coords, node_size="degree")
    assert set(_node_sizes(empty)) == {3.0 * DEGREE_NODE_SIZES[0]}
    assert set(_node_sizes(connectome_figure(adj, coords))) == {9.0}  # the default, 3
    fixed = connectome_figure(adj, coords, node_size=np.arange(1, 9))
    np.testing.assert_allclose(_node_sizes(fixed), 3.0 * np.arange(1, 9))


@pytest.mark.parametrize("bad, said", [
    ("degre", "node_size='degre'"), (-1.0, "node_size=-1.0"), (0, "node_size=0.0"),
    (float("nan"), "node_size=nan"), ([1.0] * 7 + [-2.0], "node_size=-2.0 (node 7 of 8)"),
    ([1.0, 2.0], "node_size holds 2 values for 8 nodes"), (["a"] * 8, "node_size=['a'"),
])
def test_view_bad_node_size_raises_a_parameter_error(bad, said):
    adj, coords = _star_and_chain()
    with pytest.raises(ParameterError) as caught:
        plotting.view_connectome(adj, coords, node_size=bad)
    message = str(caught.value)
    assert said in message and "expected a positive number, one per node, or 'degree'" in message


def test_glass_brain_node_size_degree_and_bad_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adj, coords = _star_and_chain()
    display = plotting.plot_connectome(adj, coords, node_size="degree", display_mode="z")
    sizes = display.node_sizes
    # Area 2 + 58 * sqrt(degree / max_degree) pt^2 (8 nodes: no shrink).
    np.testing.assert_allclose(sizes, 2 + 58 * np.sqrt(np.array([4, 1, 1, 1, 1, 1, 1, 0]) / 4))
    display.close()
    display = plotting.plot_connectome(adj, coords, node_size="degree", display_mode="z",
                                       edge_threshold=0.75)
    np.testing.assert_allclose(display.node_sizes[[0, 1, 3, 5]], [60, 2 + 58 * np.sqrt(0.5), 2, 2])
    display.close()
    display = plotting.plot_connectome(adj, coords, node_size=0, display_mode="z")
    assert set(display.node_sizes) == {0.0}  # an area of 0 hides the nodes: allowed
    display.close()
    for bad, said in (("degre", "node_size='degre'"), (-5, "node_size=-5.0")):
        with pytest.raises(ParameterError, match="node_size") as caught:
            plotting.plot_connectome(adj, coords, node_size=bad)
        assert said in str(caught.value)
        assert "non-negative number, one per node, or 'degree' or 'auto'" in str(caught.value)
    plt.close("all")
