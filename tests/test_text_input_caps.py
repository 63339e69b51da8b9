"""Size caps on text inputs (``_utils/text_inputs.py``): a file just over its kind's cap is
refused before it is read, at every place the package reads a text input; one at the cap
reads as before. The caps are monkeypatched small: no test writes a large file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparse_connectome._utils import text_inputs
from sparse_connectome.errors import AtlasError, ConfoundsError, DownloadError, InputError


def _cap_just_below(monkeypatch, kind: str, path: Path) -> int:
    """Make ``path`` one byte over the cap of ``kind``; return its size."""
    size = path.stat().st_size
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, kind, size - 1)
    return size


def _assert_names_file_size_cap(exc: BaseException, path: Path, size: int) -> None:
    message = str(exc)
    assert repr(str(path)) in message, message
    assert f"is {size} bytes; expected at most {size - 1} bytes for" in message, message


def test_caps_are_generous_and_documented():
    caps = text_inputs.TEXT_SIZE_CAPS
    assert caps == {"confounds": 512 * 2**20, "json": 64 * 2**20, "labels": 64 * 2**20,
                    "participants": 256 * 2**20}
    # The confounds cap holds 10 000 volumes x 2 000 columns of 25-byte values.
    assert caps["confounds"] >= 10_000 * 2_000 * 25
    for kind in caps:
        assert f'``"{kind}"``' in text_inputs.__doc__


def test_big_file_message_gives_mib_and_bytes(tmp_path, monkeypatch):
    path = tmp_path / "huge.tsv"
    with open(path, "wb") as fh:  # a sparse file: 3 MiB on paper, nothing on disk
        fh.truncate(3 * 2**20)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "confounds", 2**20)
    with pytest.raises(InputError, match=r"'.*huge\.tsv' is 3\.0 MiB \(3145728 bytes\); "
                       r"expected at most 1\.0 MiB for a confounds table\. Is it the right"):
        text_inputs.check_text_size(path, "confounds", "confounds file")
    text_inputs.check_text_size(tmp_path / "missing.tsv", "confounds", "x")  # the reader says


# ---------------------------------------------------------------------------- confounds

def test_signal_confounds_file_over_the_cap(tmp_path, monkeypatch):
    from sparse_connectome.signal import clean

    rng = np.random.default_rng(0)
    signals = rng.normal(size=(40, 3))
    path = tmp_path / "confounds.tsv"
    path.write_text("a\tb\n" + "".join(f"{x:.4f}\t{y:.4f}\n" for x, y in rng.normal(size=(40, 2))))
    expected = clean(signals, confounds=str(path), filter=False)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "confounds", path.stat().st_size)
    np.testing.assert_array_equal(clean(signals, confounds=str(path), filter=False), expected)
    size = _cap_just_below(monkeypatch, "confounds", path)
    with pytest.raises(ConfoundsError) as caught:
        clean(signals, confounds=str(path), filter=False)
    _assert_names_file_size_cap(caught.value, path, size)


def _demo_confounds(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the demo's BOLD name, confounds TSV and its JSON sidecar."""
    from sparse_connectome.confounds import find_confounds_file
    from sparse_connectome.datasets import load_demo

    bold = Path(load_demo().func[0])
    tsv = find_confounds_file(bold)
    shutil.copy(tsv, tmp_path / tsv.name)
    shutil.copy(tsv.with_suffix(".json"), tmp_path / tsv.with_suffix(".json").name)
    (tmp_path / bold.name).touch()
    return tmp_path / bold.name, tmp_path / tsv.name, tmp_path / tsv.with_suffix(".json").name


def test_fmriprep_confounds_and_sidecar_over_the_cap(tmp_path, monkeypatch):
    from sparse_connectome.confounds import load_confounds, read_confounds_tsv

    bold, tsv, sidecar = _demo_confounds(tmp_path)
    table = read_confounds_tsv(tsv)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "confounds", tsv.stat().st_size)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "json", sidecar.stat().st_size)
    assert read_confounds_tsv(tsv).equals(table)
    frame, _ = load_confounds(str(bold), strategy=("high_pass", "compcor"))
    assert frame.shape[0] == 168
    size = _cap_just_below(monkeypatch, "json", sidecar)
    with pytest.raises(ConfoundsError) as caught:
        load_confounds(str(bold), strategy=("high_pass", "compcor"))
    _assert_names_file_size_cap(caught.value, sidecar, size)
    size = _cap_just_below(monkeypatch, "confounds", tsv)
    with pytest.raises(ConfoundsError) as caught:
        read_confounds_tsv(tsv)
    _assert_names_file_size_cap(caught.value, tsv, size)


def test_mean_fd_of_a_confounds_file_over_the_cap_is_unknown(tmp_path, monkeypatch):
    from sparse_connectome.pipeline._cohort_task import _mean_fd

    _, tsv, _ = _demo_confounds(tmp_path)
    run = type("Run", (), {"confounds": tsv})()
    assert _mean_fd(run) > 0
    _cap_just_below(monkeypatch, "confounds", tsv)
    assert _mean_fd(run) is None  # as for any unreadable confounds file


def test_downloaded_confounds_over_the_cap_are_not_reduced(tmp_path, monkeypatch):
    from sparse_connectome.datasets.fetchers import _reduce_confounds

    _, tsv, _ = _demo_confounds(tmp_path)
    size = _cap_just_below(monkeypatch, "confounds", tsv)
    with pytest.raises(ConfoundsError) as caught:
        _reduce_confounds(tsv, tmp_path / "reduced.tsv")
    _assert_names_file_size_cap(caught.value, tsv, size)
    assert not (tmp_path / "reduced.tsv").exists()


# ------------------------------------------------------------------ atlas label tables

def test_labels_table_with_coordinates_over_the_cap(tmp_path, monkeypatch):
    from sparse_connectome.pipeline._atlas_inputs import read_labels_table

    path = tmp_path / "labels.csv"
    path.write_text("name,x,y,z\nleft,-40,0,0\nright,40,0,0\n")
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "labels", path.stat().st_size)
    assert read_labels_table(path).labels == ["left", "right"]
    size = _cap_just_below(monkeypatch, "labels", path)
    with pytest.raises(AtlasError) as caught:
        read_labels_table(path)
    _assert_names_file_size_cap(caught.value, path, size)


@pytest.mark.parametrize("reader, text", [
    ("schaefer", "1\t7Networks_LH_Vis_1\t1\t2\t3\t0\n"),
    ("difumo", "Component,Difumo_names,Yeo_networks7,Yeo_networks17\n1,Insula,Sal,SalA\n"),
    ("fsl_xml", '<atlas><data><label index="0">Frontal Pole</label></data></atlas>'),
    ("msdl", "x,y,z,name,net name\n-53.3,-49.5,1.8,L Aud,Aud\n"),
])
def test_downloaded_atlas_labels_over_the_cap(tmp_path, monkeypatch, reader, text):
    from sparse_connectome.datasets import _atlas_files, _msdl

    read = {"schaefer": lambda p: _atlas_files.read_schaefer_labels(p, n_rois=1),
            "difumo": lambda p: _atlas_files.read_difumo_labels(p, dimension=1),
            "fsl_xml": _atlas_files.read_fsl_xml_labels,
            "msdl": _msdl.read_msdl_labels_csv}[reader]
    path = tmp_path / "labels.txt"
    path.write_text(text)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "labels", path.stat().st_size)
    assert len(read(path).labels) == 1
    size = _cap_just_below(monkeypatch, "labels", path)
    with pytest.raises(AtlasError) as caught:
        read(path)
    _assert_names_file_size_cap(caught.value, path, size)


# ------------------------------------------------------- BIDS sidecars, participants.tsv

def test_bids_sidecar_over_the_cap_leaves_the_run_out_with_the_reason(tmp_path, monkeypatch):
    from sparse_connectome.pipeline._bids import discover_runs

    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold"
    (func / f"{stem}.nii.gz").touch()
    sidecar = func / f"{stem}.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    (func / "sub-01_task-rest_desc-confounds_timeseries.tsv").write_text("a\n1\n")
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "json", sidecar.stat().st_size)
    assert [run.t_r for run in discover_runs(tmp_path).runs] == [2.0]
    size = _cap_just_below(monkeypatch, "json", sidecar)
    found = discover_runs(tmp_path)
    assert found.runs == [] and len(found.unpaired) == 1
    reason = found.unpaired[0].reason
    assert f"is {size} bytes; expected at most {size - 1} bytes for a JSON sidecar" in reason


def test_participants_table_over_the_cap_is_a_bad_download(tmp_path, monkeypatch):
    from sparse_connectome.datasets import fetchers

    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tChild_Adult\nsub-1\tadult\nsub-2\tchild\n")
    forgotten = []
    monkeypatch.setattr(fetchers, "forget_download", forgotten.append)
    monkeypatch.setitem(text_inputs.TEXT_SIZE_CAPS, "participants", path.stat().st_size)
    assert len(fetchers._read_participants(path, "https://example.org", {"sub-1"})) == 1
    size = _cap_just_below(monkeypatch, "participants", path)
    with pytest.raises(DownloadError) as caught:
        fetchers._read_participants(path, "https://example.org", {"sub-1"})
    assert f"participants table {str(path)!r} is {size} bytes" in str(caught.value)
    assert forgotten == [path]
