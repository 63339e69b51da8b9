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
