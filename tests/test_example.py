"""The seed example, written with this package's API, runs offline on the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plot_inverse_covariance_connectome.py"


def test_seed_example_runs_offline(demo_dir, demo, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", SPARSE_CONNECTOME_DATA=str(demo_dir))
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "First subject functional nifti images (4D) are at:" in proc.stdout
    assert "desc-preproc_bold.nii.gz" in proc.stdout
