"""HTML building blocks shared by the reports: style, escaping, tables, figures, page.

Every string that reaches a page goes through :func:`esc` (or
:func:`render_value`, which escapes), so that labels, file names and parameter
values from the input cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.hashing import file_sha256

__all__ = ["CSS", "DPI", "esc", "html_page", "kv_table", "plotly_script_tag", "png_img", "render_value"]

#: Resolution of the PNG figures embedded in the reports.
DPI = 100

CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 12px 0 4px; }
h2 { font-size: 19px; margin: 30px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table.kv { border-collapse: collapse; font-size: 13px; margin: 4px 0 10px; }
table.kv th, table.kv td { text-align: left; vertical-align: top; padding: 3px 10px;
  border-bottom: 1px solid #eee; }
table.kv th { color: #555; font-weight: 600; white-space: nowrap; }
code, .mono { font-family: Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
img.figure { max-width: 100%; height: auto; display: block; margin: 6px 0; }
.row { display: flex; flex-wrap: wrap; gap: 12px; }
.row > figure { flex: 1 1 440px; margin: 0; }
figcaption { font-size: 12px; color: #555; }
.note { font-size: 12px; color: #666; }
.ok { color: #1a7f37; } .warn { color: #b35900; }
nav a { margin-right: 12px; font-size: 13px; }
"""


def esc(value: Any) -> str:
    """``value`` as text, HTML-escaped (quotes included).

    Examples
    --------
    >>> esc("<script>")
    '&lt;script&gt;'
    """
    return html.escape(str(value), quote=True)




def render_value(value: Any) -> str:
    """Escaped HTML for a (possibly nested) input or parameter value."""
    if isinstance(value, Mapping) and {"path", "sha256"} <= set(value):
        # A file already described (and hashed) by the caller.
        size = f", {esc(value['bytes'])} bytes" if "bytes" in value else ""
        return (f"<code>{esc(value['path'])}</code><br><span class='note'>SHA-256 "
                f"<code>{esc(value['sha256'])}</code>{size}</span>")
    if isinstance(value, Mapping):
        if not value:
            return "<span class='note'>(empty)</span>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>"
                       for k, v in value.items())
        return f"<table class='kv'>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if not value:
            return "<span class='note'>(none)</span>"
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return "<code>" + ", ".join(esc(v) for v in value) + "</code>"
        return "<br>".join(render_value(v) for v in value)
    if isinstance(value, np.ndarray):
        return f"<code>array of shape {esc(value.shape)}</code>"
    if value is None:
        return "<span class='note'>none</span>"
    if isinstance(value, (str, os.PathLike)) and len(str(value)) < 4096:
        path = Path(value)
        try:
            is_file = path.is_file()
        except OSError:
            is_file = False
        if is_file:
            return (f"<code>{esc(path.resolve())}</code><br><span class='note'>SHA-256 "
                    f"<code>{file_sha256(path)}</code>, {path.stat().st_size} bytes</span>")
    if isinstance(value, float):
        return f"<code>{value:.6g}</code>"
    return f"<code>{esc(value)}</code>"


def kv_table(items: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of names and (escaped) values.

    Examples
    --------
    >>> kv_table([("alpha", 0.5)])
    "<table class='kv'><tr><th>alpha</th><td><code>0.5</code></td></tr></table>"
    """
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>" for k, v in items)
    return f"<table class='kv'>{rows}</table>"


def png_img(fig: Any, alt: str) -> str:
    """A matplotlib figure as an inline base64 PNG ``<img>``; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img class='figure' alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


def plotly_script_tag(plotly_src: str | None = None) -> str:
    """The ``<script>`` element that loads plotly.js: inline, or from a relative file.

    Parameters
    ----------
    plotly_src : str, optional
        A URL (usually relative, e.g. ``"../../assets/plotly.min.js"``) of a shared
        copy of plotly.js. When omitted, plotly.js is embedded in the page.

    Examples
    --------
    >>> plotly_script_tag("../assets/plotly.min.js")
    '<script src="../assets/plotly.min.js" charset="utf-8"></script>'
    >>> len(plotly_script_tag()) > 1_000_000  # the whole library, inline
    True
    """
    if plotly_src is not None:
        return f'<script src="{esc(plotly_src)}" charset="utf-8"></script>'
    from ..plotting.view3d import plotly_js

    return f"<script>{plotly_js()}</script>"


def html_page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str],
              plotly_src: str | None = None, with_plotly: bool = True,
              mesh_src: str | None = None) -> str:
    """A whole report page: head (style, plotly.js), title, navigation and sections.

    Examples
    --------
    >>> page = html_page("T <1>", "sub", [("a", "A")], ["<p>x</p>"], with_plotly=False)
    >>> "<title>T &lt;1&gt;</title>" in page and "href='#a'" in page
    True
    """
    plotly = ("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
              + plotly_script_tag(plotly_src) + "\n") if with_plotly else ""
    if with_plotly and mesh_src is not None:  # the brain surface, shared by many pages
        plotly += f'<script src="{esc(mesh_src)}" charset="utf-8"></script>\n'
    links = "".join(f"<a href='#{esc(a)}'>{esc(b)}</a>" for a, b in nav)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n{plotly}</head>\n<body>\n<main>\n"
        f"<h1>{esc(title)}</h1>\n<p class='note'>{subtitle}</p>\n<nav>{links}</nav>\n"
        + "\n".join(sections) + "\n</main>\n</body>\n</html>\n")
