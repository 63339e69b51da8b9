"""--selection cv|ebic|stars through the command line, the JSON record and the report."""

from __future__ import annotations

import json

import pytest

from sparse_connectome.cli import main
from sparse_connectome.pipeline import make_estimator, selection_of


@pytest.mark.parametrize("selection, title", [("ebic", "Extended BIC"),
                                              ("stars", "Stability selection")])
def test_demo_with_a_selection(selection, title, demo, demo_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["demo", "--out", str(out), "--data-dir", str(demo_dir), "--selection",
                 selection, "--quiet"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "connectome.json").read_text())
    assert record["parameters"]["selection"] == selection
    path = record["selection_path"]
    assert path["alphas"] and record["alpha"] in path["alphas"]
    # Graph recovery: fewer false edges than the cross-validated choice keeps.
    assert record["ground_truth_recovery"]["f1"] > 0.5
    report = (out / "report.html").read_text()
    assert "penalty selection criterion" in report
    if selection == "stars":
        assert "stability: " in report and "Edge width shows" in report


def test_make_estimator_options():
    stars = make_estimator("stars", alphas=[0.3, 0.2], beta=0.1, n_subsamples=5,
                           random_state=3)
    assert (stars.alphas, stars.beta, stars.n_subsamples, stars.random_state) == (
        [0.3, 0.2], 0.1, 5, 3)
    assert selection_of(make_estimator("cv", cv=3)) == "cv"
    assert make_estimator("ebic", gamma=0.0).gamma == 0.0


def test_bad_selection_is_a_usage_error(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--selection", "aic"]) == 2
    assert "--selection" in capsys.readouterr().err
