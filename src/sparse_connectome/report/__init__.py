"""Stage 6 — the self-contained HTML report of a run.

* :mod:`._subject`: the report of one connectome run (:func:`build_report_html`,
  :func:`write_report`);
* :mod:`._html`: the building blocks every report shares (style, escaping,
  tables, embedded figures, the page and how it loads plotly.js).
"""

from ._group import build_group_report_html, write_group_report
from ._html import plotly_script_tag
from ._subject import build_report_html, write_report

__all__ = ["build_group_report_html", "build_report_html", "plotly_script_tag",
           "write_group_report", "write_report"]
