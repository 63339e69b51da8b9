"""The HTML report: content, escaping, self-containedness and atomic writing."""

from __future__ import annotations

import base64
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from sparse_connectome.report import build_report_html, write_report

EVIL = "<script>alert(1)</script>"


class FakeGraphicalLassoCV:
    """The attributes of a fitted GraphicalLassoCV that the report reads."""

    def __init__(self, precision, covariance):
        self.precision_ = precision
        self.covariance_ = covariance
        self.alpha_ = 0.1
        alphas = np.array([0.5, 0.25, 0.1, 0.05, 0.02, 0.0])
        rng = np.random.default_rng(0)
        base = -50 - (alphas - 0.1) ** 2 * 10
        self.cv_results_ = {"alphas": alphas}
        for k in range(3):
            self.cv_results_[f"split{k}_test_score"] = base + rng.normal(0, 0.3, len(alphas))
        scores = np.array([self.cv_results_[f"split{k}_test_score"] for k in range(3)])
        self.cv_results_["mean_test_score"] = scores.mean(0)
        self.cv_results_["std_test_score"] = scores.std(0)
        self.duality_gap_ = 3.2e-5
        self.converged_ = True
        self.n_iter_ = 17


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(1)
    n = 12
    precision = np.eye(n) * 2
    for i in range(n - 1):
        precision[i, i + 1] = precision[i + 1, i] = -0.6
    covariance = np.linalg.inv(precision)
    ts = rng.multivariate_normal(np.zeros(n), covariance, size=80)
    estimated = precision.copy()
    estimated[0, 5] = estimated[5, 0] = -0.2  # one false positive
    estimated[3, 4] = estimated[4, 3] = 0.0  # one false negative
    labels = [EVIL] + [f"region {i}" for i in range(1, n)]
    coords = rng.uniform(-60, 60, size=(n, 3))
    networks = ["net A"] * 6 + ["<b>net B</b>"] * 6
    return {"time_series": ts, "labels": labels, "coords": coords,
            "estimator": FakeGraphicalLassoCV(estimated, covariance), "networks": networks,
            "true_precision": precision}


def _images(page):
    return re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_report_content_and_escaping(run, tmp_path):
    func = tmp_path / "sub-01<x>_bold.nii.gz"
    func.write_bytes(b"not really an image")
    page = build_report_html(
        **run, inputs={"func": str(func), "atlas": "msdl"},
        parameters={"standardize": "zscore_sample", "edge_threshold": "80%"},
        summary={"n_volumes": 84, "n_volumes_scrubbed": 4, "t_r": 2.0, "n_regions": 12,
                 "confounds": ["trans_x", "<i>rot_z</i>"]})
    body = page.split("</head>", 1)[1]
    # Escaping: no input string appears as markup anywhere outside plotly.js.
    assert EVIL not in page and "<b>net B</b>" not in body and "<i>rot_z</i>" not in body
    assert "&lt;i&gt;rot_z&lt;/i&gt;" in body
    assert "sub-01&lt;x&gt;_bold.nii.gz" in body
    assert body.count("<script") == 2  # the 3D view's data and its call to Plotly
    # Inputs with SHA-256 of the file, parameters, the data summary.
    import hashlib

    assert hashlib.sha256(func.read_bytes()).hexdigest() in body
    assert "zscore_sample" in body and "volumes scrubbed" in body and "84" in body
    # Convergence and sparsity.
    assert "3.2e-05" in body and "17" in body
    n_edges = int(np.count_nonzero(np.triu(run["estimator"].precision_, 1)))
    assert f"{n_edges} of 66" in body
    # Ground truth: 11 true edges, 11 estimated (one FP, one FN): precision = recall = 10/11.
    assert "Recovery of the true connectome" in body
    assert body.count("0.909") >= 2
    # Figures: carpet, CV, 2 matrices, 2 graphs, support -> 7 PNGs that decode.
    images = _images(page)
    assert len(images) == 7
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # The 3D view is inline and plotly.js embedded once.
    assert page.count("plotly.js v") == 1
    assert 'id="report-connectome-3d"' in body


def test_report_without_ground_truth_or_cv(run, tmp_path):
    est = run["estimator"]
    bare = type("Bare", (), {"precision_": est.precision_, "covariance_": est.covariance_})()
    args = dict(run, estimator=bare, true_precision=None)
    page = build_report_html(**args)
    assert "Recovery of the true connectome" not in page
    assert len(_images(page)) == 5  # no CV curve, no support figure
    assert "not recorded" in page


def test_write_report_is_atomic(run, tmp_path):
    out = write_report(tmp_path / "report.html", **run)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    bad = dict(run, labels=run["labels"][:3])
    from sparse_connectome.errors import ShapeMismatchError

    with pytest.raises(ShapeMismatchError):
        write_report(tmp_path / "other.html", **bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_cv_figure_marks_the_fits_stopped_early():
    from sparse_connectome.report._subject import _cv_figure

    est = FakeGraphicalLassoCV(np.eye(3), np.eye(3))
    labels = [text.get_text() for text in _cv_figure(est).axes[0].get_legend().get_texts()]
    assert not any("stopped early" in label for label in labels)
    est.cv_pruned_ = np.zeros((6, 3), dtype=bool)
    est.cv_pruned_[4, 1] = True  # alpha = 0.02, one fold
    ax = _cv_figure(est).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "fits stopped early: could not compete" in labels
    hollow = [line for line in ax.get_lines() if line.get_label().startswith("fits stopped")]
    np.testing.assert_allclose(hollow[0].get_xdata(), [0.02])
