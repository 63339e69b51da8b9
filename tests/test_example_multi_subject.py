"""The multi-subject example (nilearn's group sparse example, this package's API) runs offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plot_multi_subject_connectome.py"


def test_multi_subject_example_runs_offline(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", SPARSE_CONNECTOME_DATA=str(tmp_path / "data"))
    out = tmp_path / "figures"
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--n-subjects", "2", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "group model: alpha_ = " in proc.stdout and "converged: True" in proc.stdout
    assert "support F1 against the ground truth" in proc.stdout
    written = sorted(p.name for p in out.iterdir())
    for name in ("graphical_lasso_precision_connectome.png", "group_sparse_group_connectome.png",
                 "group_sparse_subject01_connectome.png", "group_sparse_subject02_precision.png"):
        assert name in written
    assert all((out / name).stat().st_size > 1000 for name in written)
