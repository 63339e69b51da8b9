"""Discovery of the runs of an fMRIPrep derivatives folder (``pipeline._bids``).

Trees are built of empty files and small JSON sidecars; only the header
fallback writes real (tiny) NIfTI images.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sparse_connectome.errors import InputError
from sparse_connectome.pipeline._bids import BoldRun, Discovery, Unpaired, discover_runs

MNI = "MNI152NLin2009cAsym"


def make_run(root: Path, sub: str, task: str = "rest", *, ses: str | None = None,
             run: str | None = None, acq: str | None = None, space: str | None = MNI,
             res: str | None = None, t_r: float | None = 2.0, confounds: str | None = "timeseries",
             mask: bool = True) -> Path:
    """Write one fMRIPrep run (empty image) and return the BOLD path."""
    func = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    func.mkdir(parents=True, exist_ok=True)
    ident = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}"
    ident += (f"_acq-{acq}" if acq else "") + (f"_run-{run}" if run else "")
    version = ident + (f"_space-{space}" if space else "") + (f"_res-{res}" if res else "")
    bold = func / f"{version}_desc-preproc_bold.nii.gz"
    bold.touch()
    if t_r is not None:
        (func / f"{version}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": t_r}))
    if mask:
        (func / f"{version}_desc-brain_mask.nii.gz").touch()
    if confounds:
        (func / f"{ident}_desc-confounds_{confounds}.tsv").write_text("a\n1\n")
        (func / f"{ident}_desc-confounds_{confounds}.json").write_text("{}")
    return bold


def reasons(found: Discovery) -> dict[str, str]:
    return {u.path.name: u.reason for u in found.unpaired}


def test_sessions_runs_and_pairing(tmp_path):
    make_run(tmp_path, "02", run="10")
    make_run(tmp_path, "02", run="2", acq="x")
    make_run(tmp_path, "01", ses="b", t_r=0.8, mask=False)
    make_run(tmp_path, "01", ses="a", confounds="regressors")
    found = discover_runs(tmp_path)
    assert found.unpaired == []
    assert [r.key for r in found.runs] == [
        "sub-01_ses-a_task-rest", "sub-01_ses-b_task-rest",
        "sub-02_task-rest_acq-x_run-2", "sub-02_task-rest_run-10"]  # run 2 before run 10
    first, second, third, _ = found.runs
    assert isinstance(first, BoldRun)
    assert (first.subject, first.session, first.task, first.run, first.space) == ("01", "a", "rest",
                                                                                 None, MNI)
    assert first.confounds.name == "sub-01_ses-a_task-rest_desc-confounds_regressors.tsv"
    assert first.confounds_json.name == "sub-01_ses-a_task-rest_desc-confounds_regressors.json"
    assert first.mask.name == f"sub-01_ses-a_task-rest_space-{MNI}_desc-brain_mask.nii.gz"
    assert first.sidecar.name == f"sub-01_ses-a_task-rest_space-{MNI}_desc-preproc_bold.json"
    assert first.relative_dir == Path("sub-01/ses-a/func")
    assert (first.t_r, second.t_r, second.mask) == (2.0, 0.8, None)
    assert third.entities == (("sub", "02"), ("task", "rest"), ("acq", "x"), ("run", "2"))
    assert third.prefix == third.key == "sub-02_task-rest_acq-x_run-2"
    assert third.relative_dir == Path("sub-02/func")
    assert (tmp_path / third.relative_dir / f"{third.prefix}_desc-confounds_timeseries.tsv").is_file()


def test_filters(tmp_path):
    for sub in ("01", "02", "03"):
        make_run(tmp_path, sub, "rest")
        make_run(tmp_path, sub, "nback")
    make_run(tmp_path, "01", "rest", space="T1w")
    subjects = lambda found: sorted({r.subject for r in found.runs})  # noqa: E731
    assert subjects(discover_runs(tmp_path, participant_label=["01", "sub-03"])) == ["01", "03"]
    assert subjects(discover_runs(tmp_path, participant_label="sub-02")) == ["02"]
    assert {r.task for r in discover_runs(tmp_path, task="nback").runs} == {"nback"}
    t1w = discover_runs(tmp_path, space="T1w")
    assert [(r.key, r.space) for r in t1w.runs] == [("sub-01_task-rest", "T1w")]
    # Any space: the run found in two spaces is listed, not chosen.
    anyspace = discover_runs(tmp_path, space=None, task="rest")
    assert [r.subject for r in anyspace.runs] == ["02", "03"]
    assert len(anyspace.unpaired) == 2
    assert all("several preprocessed BOLD files for run sub-01_task-rest" in u.reason
               and f"space-{MNI}, space-T1w" in u.reason and "pass --space" in u.reason
               for u in anyspace.unpaired)


def test_space_with_resolution(tmp_path):
    make_run(tmp_path, "01", res="1")
    make_run(tmp_path, "01", res="2")
    found = discover_runs(tmp_path)
    assert found.runs == [] and len(found.unpaired) == 2
    assert "res-1" in found.unpaired[0].reason and "LABEL:res-<label>" in found.unpaired[0].reason
    chosen = discover_runs(tmp_path, space=f"{MNI}:res-2")
    assert [r.bold.name for r in chosen.runs] == [
        f"sub-01_task-rest_space-{MNI}_res-2_desc-preproc_bold.nii.gz"]
    assert chosen.runs[0].mask.name == f"sub-01_task-rest_space-{MNI}_res-2_desc-brain_mask.nii.gz"
    with pytest.raises(InputError, match="bad part"):
        discover_runs(tmp_path, space=f"{MNI}:voxels-2")


def test_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover_runs(tmp_path / "nope")
    (tmp_path / "file.txt").touch()
    with pytest.raises(InputError, match="is not a folder"):
        discover_runs(tmp_path / "file.txt")
    (tmp_path / ".sub-hidden").mkdir()
    with pytest.raises(InputError, match=r"no subject folders \(sub-\*\)"):
        discover_runs(tmp_path)
    make_run(tmp_path, "01")
    make_run(tmp_path, "02")
    with pytest.raises(InputError, match=r"participant label '99' not found in .*; found 01, 02$"):
        discover_runs(tmp_path, participant_label=["01", "99"])
    with pytest.raises(InputError, match=r"task='nback'.*found tasks: 'rest'; spaces: 'MNI"):
        discover_runs(tmp_path, task="nback")
    with pytest.raises(InputError, match=r"space='T1w'"):
        discover_runs(tmp_path, space="T1w")
    for i in range(3, 15):
        (tmp_path / f"sub-{i:02d}").mkdir()
    with pytest.raises(InputError, match=r"found 01, 02, .*, 10, \.\.\. \(14 in all\)"):
        discover_runs(tmp_path, participant_label=["99"])
    # Every error is one line.
    with pytest.raises(InputError) as info:
        discover_runs(tmp_path, task="nback")
    assert "\n" not in str(info.value)


def test_no_bold_at_all(tmp_path):
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(InputError, match="no preprocessed BOLD.*found tasks: none"):
        discover_runs(tmp_path)


def test_missing_confounds_and_tr(tmp_path):
    make_run(tmp_path, "01")
    make_run(tmp_path, "02", confounds=None)
    make_run(tmp_path, "03", t_r=None)  # no sidecar, empty image: no header to fall back on
    make_run(tmp_path, "04", t_r=-1)
    func = tmp_path / "sub-05" / "func"
    make_run(tmp_path, "05")
    next(func.glob("*_bold.json")).write_text("{not json")
    found = discover_runs(tmp_path)
    assert [r.subject for r in found.runs] == ["01"]
    why = reasons(found)
    assert why[f"sub-02_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"] == (
        "no confounds file (expected sub-02_task-rest_desc-confounds_timeseries.tsv or "
        "sub-02_task-rest_desc-confounds_regressors.tsv beside it)")
    assert why[f"sub-03_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"].startswith(
        "no repetition time: no JSON sidecar, and the image header is unreadable")
    assert "RepetitionTime -1 " in why[f"sub-04_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"]
    assert "not readable JSON" in why[f"sub-05_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"]
    assert all(isinstance(u, Unpaired) and "\n" not in u.reason for u in found.unpaired)


def write_nifti(path: Path, t_r: float, unit: str | None) -> None:
    img = nib.Nifti1Image(np.zeros((2, 2, 2, 3), dtype=np.int16), np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, t_r))
    img.header.set_xyzt_units("mm", unit)
    nib.save(img, path)


def test_tr_from_header(tmp_path):
    for sub, t_r, unit in (("01", 0.8, "sec"), ("02", 720.0, "msec"), ("03", 2.0, None)):
        bold = make_run(tmp_path, sub, t_r=None)
        write_nifti(bold, t_r, unit)
    found = discover_runs(tmp_path)
    assert [(r.subject, r.t_r, r.sidecar) for r in found.runs] == [("01", 0.8, None),
                                                                  ("02", 0.72, None)]
    assert "time unit is 'unknown'" in found.unpaired[0].reason


def test_tr_inherited_from_upper_sidecar(tmp_path):
    make_run(tmp_path, "01", t_r=None)
    make_run(tmp_path, "02", t_r=None, ses="1")
    (tmp_path / "task-rest_bold.json").write_text('{"RepetitionTime": 1.5}')
    (tmp_path / "task-other_bold.json").write_text('{"RepetitionTime": 9}')
    (tmp_path / "sub-02" / "sub-02_task-rest_bold.json").write_text('{"RepetitionTime": 3}')
    found = discover_runs(tmp_path)
    assert [(r.subject, r.t_r, r.sidecar.name) for r in found.runs] == [
        ("01", 1.5, "task-rest_bold.json"), ("02", 3.0, "sub-02_task-rest_bold.json")]


def test_symlinks_out_of_the_tree_are_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_run(root, "01")
    make_run(outside, "02")
    os.symlink(outside / "sub-02", root / "sub-02")  # a subject folder leading out
    func3 = root / "sub-03" / "func"
    func3.mkdir(parents=True)
    for f in (outside / "sub-02" / "func").iterdir():  # every file of sub-03 leads out
        os.symlink(f, func3 / f.name.replace("sub-02", "sub-03"))
    bold4 = make_run(root, "04")
    conf4 = next(bold4.parent.glob("*_timeseries.tsv"))
    conf4.unlink()
    os.symlink(outside / "sub-02" / "func" / "sub-02_task-rest_desc-confounds_timeseries.tsv", conf4)
    os.symlink(root / "sub-01", root / "sub-05")  # inside the tree: followed
    found = discover_runs(root, space=None)
    assert [r.subject for r in found.runs] == ["01"]
    why = {u.path.relative_to(root).as_posix(): u.reason for u in found.unpaired}
    assert "outside the input folder; not followed" in why["sub-02"]
    assert "outside the input folder" in why[
        f"sub-03/func/sub-03_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"]
    assert why[f"sub-04/func/sub-04_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"].startswith(
        "confounds file sub-04_task-rest_desc-confounds_timeseries.tsv is a symbolic link to")
    assert "does not start with the folder's subject 'sub-05'" in why[
        f"sub-05/func/sub-01_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"]


def test_bad_labels_are_listed_not_raised(tmp_path):
    make_run(tmp_path, "01")
    func = tmp_path / "sub-01" / "func"
    for name in ("sub-01_task-rést_space-X_desc-preproc_bold.nii.gz",
                 "sub-01_task-<script>_desc-preproc_bold.nii.gz",
                 "sub-01_run-1_task-rest_space-X_desc-preproc_bold.nii.gz",
                 "sub-01_space-X_desc-preproc_bold.nii.gz",
                 "sub-01_task-rest_task-rest_space-X_desc-preproc_bold.nii.gz"):
        (func / name).touch()
    (tmp_path / "sub-é").mkdir()
    (tmp_path / "ses-1").mkdir()  # not a subject: ignored
    found = discover_runs(tmp_path, space=None)
    assert [r.key for r in found.runs] == ["sub-01_task-rest"]
    why = reasons(found)
    assert "'task-r\\xe9st' is not a BIDS entity" in why["sub-01_task-rést_space-X_desc-preproc_bold.nii.gz"]
    assert "'task-<script>'" in why["sub-01_task-<script>_desc-preproc_bold.nii.gz"]
    assert "not in BIDS order (expected sub, task, run, space, desc)" in why[
        "sub-01_run-1_task-rest_space-X_desc-preproc_bold.nii.gz"]
    assert "no 'task' entity" in why["sub-01_space-X_desc-preproc_bold.nii.gz"]
    assert "repeats an entity" in why["sub-01_task-rest_task-rest_space-X_desc-preproc_bold.nii.gz"]
    assert why["sub-é"].startswith("folder label '\\xe9' is not BIDS")
    assert all(u.reason.isascii() for u in found.unpaired)


def test_hidden_files_ignored_and_session_mismatch(tmp_path):
    make_run(tmp_path, "01")
    make_run(tmp_path / "sub-01" / "func" / ".cache", "01")
    make_run(tmp_path, "02")
    (tmp_path / "sub-02").rename(tmp_path / ".sub-02")
    func = tmp_path / "sub-01" / "func"
    (func / f".sub-01_task-x_space-{MNI}_desc-preproc_bold.nii.gz").touch()
    ses = tmp_path / "sub-01" / "ses-2" / "func"
    ses.mkdir(parents=True)
    (ses / f"sub-01_ses-3_task-rest_space-{MNI}_desc-preproc_bold.nii.gz").touch()
    found = discover_runs(tmp_path)
    assert [r.key for r in found.runs] == ["sub-01_task-rest"]
    assert [u.reason for u in found.unpaired] == [
        "session '3' of the file name does not match folder 'ses-2'"]


def test_order_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    labels = ["10", "2", "1", "x", "03"]
    for sub in labels:
        make_run(a, sub, run="1")
        make_run(a, sub, run="12", confounds=None)
    for sub in reversed(labels):
        make_run(b, sub, run="12", confounds=None)
        make_run(b, sub, run="1")
    found_a, found_b = discover_runs(a), discover_runs(b)
    assert [r.subject for r in found_a.runs] == ["1", "2", "03", "10", "x"]
    assert [r.key for r in found_a.runs] == [r.key for r in found_b.runs]
    assert [u.path.relative_to(a) for u in found_a.unpaired] == [
        u.path.relative_to(b) for u in found_b.unpaired]
    assert discover_runs(a) == found_a


def test_thousand_subjects(tmp_path):
    for i in range(1000):
        func = tmp_path / f"sub-{i:04d}" / "func"
        func.mkdir(parents=True)
        stem = f"sub-{i:04d}_task-rest"
        (func / f"{stem}_space-{MNI}_desc-preproc_bold.nii.gz").touch()
        (func / f"{stem}_space-{MNI}_desc-preproc_bold.json").write_text('{"RepetitionTime": 2}')
        (func / f"{stem}_desc-confounds_timeseries.tsv").touch()
    start = time.perf_counter()
    found = discover_runs(tmp_path)
    seconds = time.perf_counter() - start
    print(f"discovery of 1000 subjects: {seconds:.2f} s")
    assert len(found.runs) == 1000 and found.unpaired == []
    assert seconds < 10
