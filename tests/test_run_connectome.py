"""run_connectome's contract beyond the CLI: the BOLD image is opened once."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib

from sparse_connectome.pipeline import run_connectome


def test_the_bold_image_is_opened_once(demo, monkeypatch):
    opened = []
    real_load = nib.load

    def counting_load(filename, *args, **kwargs):
        opened.append(Path(filename).name)
        return real_load(filename, *args, **kwargs)

    monkeypatch.setattr(nib, "load", counting_load)
    run_connectome(demo.func[0], demo, demo.confounds[0], verbose=0)
    assert opened.count(Path(demo.func[0]).name) == 1, opened
