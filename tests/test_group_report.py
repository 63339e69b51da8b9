"""The group report of a cohort: sections, QC table, failures, escaping, all-failed
and single-run cohorts, the shared plotly.js and the page size."""

from __future__ import annotations

import base64
import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from sparse_connectome.errors import InputError, OutputError, ShapeMismatchError
from sparse_connectome.report import build_group_report_html, write_group_report

EVIL = "<script>alert(1)</script>"
QUOTED = "Left & right \"insula\" 'ant'"
COLUMNS = ["participant_id", "session", "task", "run", "status", "error", "alpha",
           "duality_gap", "converged", "n_edges", "n_volumes", "n_volumes_kept",
           "n_volumes_scrubbed", "mean_fd", "seconds", "peak_mb"]
SECTIONS = ("summary", "qc", "failures", "distributions", "matrices", "graph", "view3d")
PLOTLY_SRC = "../plotly.min.js"


def _row(i: int, rng: np.random.Generator, **changes) -> dict:
    row = {"participant_id": f"sub-{i + 1:02d}", "session": None, "task": "rest", "run": None,
           "status": "computed", "error": None, "alpha": float(10 ** rng.uniform(-2.5, -1)),
           "duality_gap": float(rng.uniform(1e-6, 1e-4)), "converged": True,
           "n_edges": int(rng.integers(40, 200)), "n_volumes": 120,
           "n_volumes_kept": 120 - (s := int(rng.integers(0, 10))), "n_volumes_scrubbed": s,
           "mean_fd": float(rng.uniform(0.05, 0.4)), "seconds": float(rng.uniform(1, 9)),
           "peak_mb": float(rng.uniform(100, 300))}
    failed = dict.fromkeys(COLUMNS[6:], math.nan) | {"converged": None}
    if changes.get("status") == "failed":
        row.update(failed)
    row.update(changes)
    return row


def _cohort(n_runs: int = 20, n_regions: int = 39, seed: int = 0) -> dict:
    """A synthetic cohort: one evil participant, two failures, one non-converged run."""
    rng = np.random.default_rng(seed)
    rows = [_row(i, rng) for i in range(n_runs)]
    rows[1] = _row(1, rng, participant_id=EVIL, session="ses-<b>1</b>")
    rows[2] = _row(2, rng, status="failed",
                   error=f"InputError: bad confounds {EVIL}\nTraceback line two")
    rows[3] = _row(3, rng, status="failed", error=None)
    rows[4] = _row(4, rng, converged=False, status="reused")
    rows[5] = _row(5, rng, mean_fd=math.nan)  # a NaN in a successful run
    table = pd.DataFrame(rows, columns=COLUMNS)
    labels = [EVIL, QUOTED] + [f"region {i}" for i in range(2, n_regions)]
    coords = rng.uniform(-60, 60, size=(n_regions, 3))
    a = rng.normal(0, 0.2, size=(n_regions, n_regions))
    mean_partial = np.triu(a, 1) * (rng.random((n_regions, n_regions)) < 0.3)
    mean_partial = mean_partial + mean_partial.T + np.eye(n_regions)
    consistency = np.abs(mean_partial) > 0
    consistency = np.where(consistency, rng.uniform(0.2, 1.0, consistency.shape), 0.0)
    consistency = np.triu(consistency, 1) + np.triu(consistency, 1).T + np.eye(n_regions)
    return {"table": table, "labels": labels, "coords": coords,
            "networks": ["<i>net A</i>"] * (n_regions // 2)
            + ["net B"] * (n_regions - n_regions // 2),
            "mean_partial": mean_partial, "consistency": consistency,
            "parameters": {"strategy": "scrubbing", "atlas": f"msdl {EVIL}", "n_jobs": 1}}


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


@pytest.fixture(scope="module")
def page(cohort):
    reports = {i: f"../sub-{i + 1:02d}/func/report.html" for i in range(len(cohort["table"]))}
    reports[1] = f"../{EVIL}/report.html"
    del reports[3]  # a failed run without report
    return build_group_report_html(**cohort, plotly_src=PLOTLY_SRC, subject_reports=reports)


def _body(page: str) -> str:
    return page.split("</head>", 1)[1]


def _qc_rows(page: str) -> list[str]:
    tbody = re.search(r"<table class='kv qc'>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    return re.findall(r"<tr[^>]*>.*?</tr>", tbody, re.S)


def _images(page: str) -> list[str]:
    return re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_sections_table_and_links(page, cohort):
    body = _body(page)
    for section in SECTIONS:
        assert f"id='{section}'" in body and f"href='#{section}'" in body
    # Summary: totals and the parameters.
    assert "<th>runs</th><td><code>20</code>" in body
    assert "<th>succeeded</th><td><code>18</code>" in body
    assert "(17 computed, 1 reused)" in body and "scrubbing" in body
    assert "<th>failed</th><td><span class='warn'>2</span>" in body
    # QC table: one row per run, in order; failed and non-converged rows flagged.
    rows = _qc_rows(page)
    assert len(rows) == 20
    assert "sub-01" in rows[0] and "sub-20" in rows[19]
    assert [i for i, r in enumerate(rows) if r.startswith("<tr class='warn'>")] == [2, 3, 4]
    assert "<span class='warn'>no</span>" in rows[4]
    # Links: every run with a report, relative, escaped; the failed run without one.
    assert "<a href='../sub-01/func/report.html'>report</a>" in rows[0]
    assert "href='../&lt;script&gt;alert(1)&lt;/script&gt;/report.html'" in rows[1]
    assert "<a href" not in rows[3] and body.count(">report</a>") == 19
    # Numbers are brief; a NaN or a missing value shows as a dash.
    alpha = cohort["table"]["alpha"][0]
    assert f">{alpha:.3g}<" in rows[0] and f"{alpha!r}" not in rows[0]
    assert rows[3].count("<td class='num'>–</td>") == 9  # every number of a failed run
    assert ">–<" in rows[5]  # the NaN mean FD
    # Failures: the two failed runs, each with one line.
    failures = body.split("id='failures'", 1)[1].split("<h2", 1)[0]
    assert failures.count("<li>") == 2
    assert "InputError: bad confounds" in failures and "Traceback line two" not in failures
    assert "no error recorded" in failures
    # Figures: distributions, two matrices, glass brain -> 4 PNGs that decode.
    images = _images(page)
    assert len(images) == 4
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="group-connectome-3d"' in body


def test_every_input_string_is_escaped(page):
    body = _body(page)
    assert EVIL not in page
    assert "<b>1</b>" not in body and "<i>net A</i>" not in body
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<td>{escaped}</td>" in body  # the participant label
    assert f"bad confounds {escaped}" in body  # the error
    assert f"msdl {escaped}" in body  # a parameter
    assert "ses-&lt;b&gt;1&lt;/b&gt;" in body
    # The region label with & and quotes, in the 3D view's region list.
    assert "Left &amp; right &quot;insula&quot; &#x27;ant&#x27;" in body
    assert QUOTED not in body
    # Only the 3D view's two scripts in the body; none of them from the input.
    assert body.count("<script") == 2


def test_shared_plotly_and_page_size(page):
    head = page.split("</head>", 1)[0]
    assert f'<script src="{PLOTLY_SRC}" charset="utf-8"></script>' in head
    assert "plotly.js v" not in page  # not embedded
    size = len(page.encode("utf-8"))
    view3d = len(page.split("id='view3d'", 1)[1].encode("utf-8"))
    print(f"group report, 20 runs x 39 regions: {size / 1e6:.3f} MB, of which the 3D view "
          f"{view3d / 1e6:.3f} MB")
    # The 3D view is ~0.75 MB whatever the cohort (the brain mesh of plotting.view3d, ~0.7 MB
    # of JSON); the rest (tables, four PNG figures) stays well under 1 MB.
    assert size - view3d < 700_000
    assert size < 1_500_000  # plotly.js inline alone would be > 3 MB


def test_all_runs_failed(tmp_path):
    rng = np.random.default_rng(3)
    table = pd.DataFrame([_row(i, rng, status="failed", error=f"error {i} {EVIL}")
                          for i in range(3)]
                         + [_row(3, rng, status="missing", error=None)], columns=COLUMNS)
    path = write_group_report(
        tmp_path / "report.html", table=table, labels=["A", "B"],
        coords=[[-40, 0, 0], [40, 0, 0]], networks=None, mean_partial=None, consistency=None,
        parameters={}, plotly_src=PLOTLY_SRC)
    page = path.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert page.count("No run succeeded") == 2  # matrices and graph
    assert "<script" not in page  # no 3D view, no plotly.js
    assert "id='view3d'" not in page and EVIL not in page
    assert "<th>succeeded</th><td><code>0</code>" in page
    assert "<th>failed</th><td><span class='warn'>3</span>" in page
    assert "<th>missing</th><td><span class='warn'>1</span>" in page
    assert len(_qc_rows(page)) == 4
    assert page.split("id='failures'", 1)[1].count("<li>") == 4
    assert len(_images(page)) == 1  # the distributions figure, its panels empty


def test_single_run_without_failures():
    rng = np.random.default_rng(4)
    table = pd.DataFrame([_row(0, rng, converged="True")], columns=COLUMNS)
    partial = np.array([[1.0, 0.4, 0.0], [0.4, 1.0, -0.3], [0.0, -0.3, 1.0]])
    page = build_group_report_html(
        table=table, labels=["A", "B", "C"], coords=[[-40, 0, 0], [40, 0, 0], [0, 30, 20]],
        networks=["n1", "n1", "n2"], mean_partial=partial, consistency=np.abs(partial) > 0,
        parameters={"alpha": 0.1}, plotly_src=PLOTLY_SRC, edge_threshold=0.1)
    failures = page.split("id='failures'", 1)[1].split("<h2", 1)[0]
    assert "<p class='ok'>none</p>" in failures
    rows = _qc_rows(page)
    assert len(rows) == 1 and "class='warn'" not in rows[0] and ">yes<" in rows[0]
    assert ">report</a>" not in page and "<th>report</th>" not in page
    assert len(_images(page)) == 4


def test_bad_inputs_and_unwritable_path(tmp_path):
    args = _cohort(n_runs=6, n_regions=4)
    with pytest.raises(InputError, match="alpha"):
        build_group_report_html(**dict(args, table=args["table"].drop(columns="alpha")))
    with pytest.raises(ShapeMismatchError, match="coords"):
        build_group_report_html(**dict(args, coords=args["coords"][:3]))
    with pytest.raises(ShapeMismatchError, match="consistency"):
        build_group_report_html(**dict(args, consistency=np.eye(3)))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="group report"):
        write_group_report(blocker / "report.html", **args, plotly_src=PLOTLY_SRC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
