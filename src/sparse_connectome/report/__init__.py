"""Stage 6 — the self-contained HTML report of a run.

* :mod:`._subject`: the report of one connectome run (:func:`build_report_html`,
  :func:`write_report`).
"""

from ._subject import build_report_html, write_report

__all__ = ["build_report_html", "write_report"]
