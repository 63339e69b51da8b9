"""Strings from input files reach the HTML reports escaped.

Region names, networks, participant, session, task and run labels, error
messages, input paths and parameters all come from files a user did not write
(labels CSVs, BIDS names, sidecars, exception messages quoting them). Each
report is built twice, once with plain strings and once with hostile ones
(``<script>``, ``</script>`` breaking out of JSON, attributes with ``onerror``,
quotes, ``javascript:`` URLs, unicode controls): the two pages must have the
same elements with the same attributes, so that no input ever adds markup, and
no raw ``<script`` may appear outside the page's own script elements.
"""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from sparse_connectome.covariance import GraphicalLassoCV
from sparse_connectome.report import build_group_report_html, build_report_html

HOSTILE = [
    "<script>alert('PWNED')</script>",
    "</script><script>alert('PWNED')</script>",
    '"><img src=x onerror=alert("PWNED")>',
    "' onmouseover='alert(1)",
    "javascript:alert('PWNED')",
    "<!--PWNED-->",
    "]]><svg onload=alert(1)>",
    "\u202e<b>PWNED</b>",
]
PLAIN = [f"region{i}" for i in range(len(HOSTILE))]
N = len(HOSTILE)


class _Tags(HTMLParser):
    """The elements of a page (name and attribute names), and text outside scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.script_depth = 0
        self.outside: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        if tag == "script":
            self.script_depth += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self.script_depth -= 1

    def handle_comment(self, data):
        self.tags.append(("<!--", ()))


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def _script_free(page: str) -> str:
    """The page with the contents of its own script elements removed."""
    out, rest = [], page
    while True:
        start = rest.find("<script")
        if start < 0:
            return "".join(out) + rest
        end = rest.find("</script>", start)
        out.append(rest[:start])
        rest = rest[end + len("</script>"):]


def _check(plain_page: str, hostile_page: str) -> None:
    assert _parse(hostile_page).tags == _parse(plain_page).tags
    outside = _script_free(hostile_page)
    assert "<script" not in outside.lower()
    for raw in ("<img src=x", "<svg onload", "<b>PWNED", "<!--PWNED"):
        assert raw not in outside, raw
    assert "PWNED" in hostile_page  # the strings are there, escaped


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    ts = rng.standard_normal((60, N))
    return ts, GraphicalLassoCV(cv=3, alphas=2, n_refinements=1).fit(ts)


def _coords() -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, N, endpoint=False)
    return np.c_[50 * np.cos(angles), 50 * np.sin(angles), np.zeros(N)]


def test_subject_report_escapes_input_strings(fitted):
    ts, estimator = fitted

    def page(strings: list[str]) -> str:
        return build_report_html(
            time_series=ts, labels=strings, coords=_coords(), estimator=estimator,
            networks=[s[:12] for s in strings],
            inputs={"func": strings[0] + ".nii.gz", "labels": strings[2]},
            parameters={"strategy": strings[1], "atlas": strings[3]},
            summary={"n_volumes": 60, "t_r": 2.0, "confounds": strings[:3]},
            plotly_src="plotly.min.js")

    _check(page(PLAIN), page(HOSTILE))


def _table(strings: list[str]) -> pd.DataFrame:
    n = len(strings)
    status = ["computed", "failed", "unpaired", "reused"] * (n // 4) + ["computed"] * (n % 4)
    ok = [s in ("computed", "reused") for s in status]
    return pd.DataFrame({
        "participant_id": [f"sub-{s}" for s in strings], "session": strings,
        "task": strings[::-1], "run": strings, "status": status,
        "error": [None if k else f"InputError: file {s!r} is bad" for s, k in zip(strings, ok)],
        "alpha": [0.05 if k else None for k in ok],
        "duality_gap": [1e-5 if k else None for k in ok],
        "converged": [True if k else None for k in ok], "n_edges": [3 if k else None for k in ok],
        "n_volumes": [100 if k else None for k in ok],
        "n_volumes_kept": [96 if k else None for k in ok],
        "n_volumes_scrubbed": [4 if k else None for k in ok],
        "mean_fd": [0.1 if k else None for k in ok], "seconds": [1.0] * n,
        "peak_mb": [80.0 if k else None for k in ok]})


def test_group_report_escapes_input_strings(fitted):
    _, estimator = fitted
    partial = -np.asarray(estimator.precision_)
    np.fill_diagonal(partial, 1.0)

    def page(strings: list[str]) -> str:
        return build_group_report_html(
            table=_table(strings), labels=strings, coords=_coords(),
            networks=[s[:12] for s in strings], mean_partial=partial,
            consistency=np.abs(partial) > 0.01, parameters={"atlas": strings[0]},
            subject_reports={0: f"sub-{strings[0]}/report.html"},
            plotly_src="../assets/plotly.min.js")

    _check(page(PLAIN), page(HOSTILE))
