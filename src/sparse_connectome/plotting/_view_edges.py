"""The edges of the 3D view at scale: a cap on those drawn, more held for a slider.

A browser draws a few thousand WebGL lines at once without trouble, not the
hundred thousand edges that a percentile threshold keeps at 1000 regions. The
view draws the strongest ``max_edges`` (2000 by default) and the page holds the
strongest ``max_edges_in_page`` (20 000 by default), compactly: two node indices
and a weight per edge, sorted by decreasing ``|weight|``. A slider (the number of
edges drawn) and a number input (the ``|weight|`` threshold) redraw the view from
them with ``Plotly.react``, in the page, offline.
"""

from __future__ import annotations

import html
from typing import Any, NamedTuple

import numpy as np

from ..errors import ParameterError
from ._edges import kept_edges, resolve_edge_cap, warn_edge_cap

__all__ = ["EDGE_CONTROLS_JS", "STABILITY_BINS", "VIEW_EDGE_CAP", "VIEW_EDGES_IN_PAGE",
           "ViewEdges", "check_stability", "edge_controls_html", "edges_payload",
           "held_stability_classes", "view_edges"]

#: Edges drawn at first render by default (the strongest).
VIEW_EDGE_CAP = 2000
#: Edges held in the page for the slider by default (the strongest).
VIEW_EDGES_IN_PAGE = 20000


class ViewEdges(NamedTuple):
    """The edges drawn (increasing ``|weight|``, as ``kept_edges``), those held in
    the page (decreasing ``|weight|``) and how many passed the threshold."""

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    held_rows: np.ndarray
    held_cols: np.ndarray
    held_weights: np.ndarray
    n_above: int


def view_edges(adjacency: np.ndarray, edge_threshold: Any, max_edges: Any,
               max_edges_in_page: Any) -> ViewEdges:
    """The edges the 3D view draws and holds.

    Examples
    --------
    >>> import numpy as np
    >>> from sparse_connectome.plotting._view_edges import view_edges
    >>> adjacency = np.array([[0, 1, -2], [1, 0, 3], [-2, 3, 0]])
    >>> edges = view_edges(adjacency, None, 1, 2)
    >>> edges.weights.tolist(), edges.held_weights.tolist(), edges.n_above
    ([3], [3, -2], 3)
    """
    cap = resolve_edge_cap(max_edges, VIEW_EDGE_CAP)
    in_page = resolve_edge_cap(max_edges_in_page, VIEW_EDGES_IN_PAGE, "max_edges_in_page")
    rows, cols, weights = kept_edges(adjacency, edge_threshold)
    n_above = len(weights)
    drawn = n_above if cap is None else min(cap, n_above)
    held = n_above if in_page is None else min(max(in_page, drawn), n_above)
    if drawn < n_above:
        warn_edge_cap(edge_threshold, n_above, drawn, rest=f"; the page holds the strongest "
                      f"{held} for its slider")
    start = n_above - drawn
    held_slice = slice(n_above - 1, n_above - held - 1 if held < n_above else None, -1)
    return ViewEdges(rows[start:], cols[start:], weights[start:], rows[held_slice],
                     cols[held_slice], weights[held_slice], n_above)


#: Stability classes of edges drawn with their own width: lower bounds.
STABILITY_BINS = (0.0, 0.5, 0.75, 0.9)


def check_stability(edge_stability: Any, n: int) -> np.ndarray | None:
    """``edge_stability`` as an (n, n) array of selection frequencies in [0, 1], or None."""
    if edge_stability is None:
        return None
    stability = np.asarray(edge_stability, dtype=float)
    if stability.shape != (n, n) or not np.all((stability >= 0) & (stability <= 1)):
        raise ParameterError(f"edge_stability has shape {stability.shape} or values outside "
                             f"[0, 1]; expected ({n}, {n}) selection frequencies")
    return stability


def held_stability_classes(stability: np.ndarray | None, edges: ViewEdges):
    """Stability and class of each held edge, and the classes present (one line trace
    each, so that the slider can fill any of them); three Nones without stability."""
    if stability is None:
        return None, None, None
    held = stability[edges.held_rows, edges.held_cols]
    classes = np.searchsorted(STABILITY_BINS, held, side="right") - 1
    return held, classes, sorted(set(classes.tolist()))


def edges_payload(edges: ViewEdges, safe_labels: list[str], stability: np.ndarray | None,
                  classes: np.ndarray | None, line_classes: list[int] | None) -> dict:
    """What the page's script needs to redraw: held edges, escaped labels, classes
    (the caller adds ``d``, the pixel sizes of isolated and most connected nodes,
    when nodes are sized by degree)."""
    payload = {"i": edges.held_rows.tolist(), "j": edges.held_cols.tolist(),
               "w": [float(f"{w:.5g}") for w in edges.held_weights],
               "labels": safe_labels, "n_above": int(edges.n_above),
               "n_drawn": len(edges.weights), "line_classes": line_classes or [0]}
    if stability is not None:
        payload["s"] = np.round(stability, 2).tolist()
        payload["k"] = classes.tolist()
    return payload


def edge_controls_html(div_id: str, n_drawn: int, n_held: int, n_above: int,
                       threshold: float) -> str:
    """The slider and the threshold input above a 3D view.

    Examples
    --------
    >>> from sparse_connectome.plotting._view_edges import edge_controls_html
    >>> html = edge_controls_html("v", 2000, 20000, 99000, 0.12)
    >>> 'type="range"' in html and 'max="20000"' in html and 'value="2000"' in html
    True
    """
    safe_id = html.escape(div_id, quote=True)
    return (f"<div id=\"{safe_id}-edges\" class=\"sc-edge-controls\" style=\"font-size:13px;"
            "margin:4px 12px;display:flex;gap:14px;align-items:center;flex-wrap:wrap;\">"
            f"<label>edges drawn <input type=\"range\" min=\"0\" max=\"{n_held}\" step=\"1\" "
            f"value=\"{n_drawn}\" style=\"width:260px;vertical-align:middle;\"></label>"
            "<label>|weight| &ge; <input type=\"number\" min=\"0\" step=\"any\" "
            f"value=\"{threshold:.4g}\" style=\"width:90px;\"></label>"
            f"<output>{n_drawn} of {n_above} edges above the threshold drawn (the page holds "
            f"the strongest {n_held})</output></div>")


#: The page's redraw from the held edges: ``scEdgeControls(graphDiv, payload, controls)``.
EDGE_CONTROLS_JS = (
    "function scEdgeControls(gd,fig,ctl){if(!ctl){return;}"
    "var E=fig.edges,nodes=fig.graph[fig.graph.length-1],X=nodes.x,Y=nodes.y,Z=nodes.z,"
    "L=E.labels,C=E.line_classes,nL=C.length,range=ctl.querySelector('input[type=range]'),"
    "num=ctl.querySelector('input[type=number]'),out=ctl.querySelector('output'),"
    "pending=null;"
    "function g3(v){var a=Math.abs(v);if(a!==0&&(a<1e-4||a>=1e3)){"
    "return v.toExponential(2).replace(/\\.?0+e/,'e').replace(/e([+-])(\\d)$/,'e$10$2');}"
    "return String(Number(v.toPrecision(3)));}"
    "function draw(m){var T=[],t,e;for(t=0;t<nL;t++){T.push({x:[],y:[],z:[],c:[]});}"
    "var mx=[],my=[],mz=[],mc=[],tx=[];"
    # The weakest first: the strongest are drawn last, on top (as in Python).
    "for(e=m-1;e>=0;e--){var a=E.i[e],b=E.j[e],w=E.w[e],"
    "q=T[E.k?Math.max(C.indexOf(E.k[e]),0):0];"
    "q.x.push(X[a],X[b],null);q.y.push(Y[a],Y[b],null);q.z.push(Z[a],Z[b],null);"
    "q.c.push(w,w,w);mx.push((X[a]+X[b])/2);my.push((Y[a]+Y[b])/2);mz.push((Z[a]+Z[b])/2);"
    "mc.push(w);var s=L[a]+' \\u2013 '+L[b]+'<br>weight: '+g3(w);"
    "if(E.s){s+='<br>stability: '+E.s[e].toFixed(2);}tx.push(s);}"
    "for(t=0;t<nL;t++){var d=fig.graph[t];d.x=T[t].x;d.y=T[t].y;d.z=T[t].z;"
    "d.line=Object.assign({},d.line,{color:T[t].c});}"
    "var M=fig.graph[nL];M.x=mx;M.y=my;M.z=mz;M.text=tx;"
    "M.marker=Object.assign({},M.marker,{color:mc});"
    # node_size="degree": sizes from the degrees in the m edges drawn, linear as in Python.
    "if(E.d){var D=X.map(function(){return 0;}),top=1;"
    "for(e=0;e<m;e++){D[E.i[e]]++;D[E.j[e]]++;}"
    "D.forEach(function(v){top=Math.max(top,v);});"
    "nodes.marker=Object.assign({},nodes.marker,{size:D.map(function(v){"
    "return Math.round((E.d[0]+(E.d[1]-E.d[0])*v/top)*100)/100;})});}"
    "Plotly.react(gd,fig.graph,gd.layout,fig.config);"
    "out.textContent=m+' of '+E.n_above+' edges above the threshold drawn (the page holds "
    "the strongest '+E.w.length+')';}"
    "range.addEventListener('input',function(){var m=+range.value;"
    "if(m>0){num.value=g3(Math.abs(E.w[m-1]));}"
    # Dragging fires many events: one redraw per animation frame.
    "if(pending===null){pending=requestAnimationFrame(function(){pending=null;"
    "draw(+range.value);});}});"
    "num.addEventListener('change',function(){var v=parseFloat(num.value);if(!(v>=0)){"
    "return;}var lo=0,hi=E.w.length;while(lo<hi){var mid=(lo+hi)>>1;"
    "if(Math.abs(E.w[mid])>=v){lo=mid+1;}else{hi=mid;}}range.value=lo;draw(lo);});}"
)
