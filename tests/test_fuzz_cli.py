"""Property-based tests of the command line: generated arguments for ``run`` and ``cohort``.

Each option is left out, given a valid value, or given a hostile one (missing,
damaged or non-NIfTI files, folders, NUL bytes, ``<script>``, ``..``, numbers
out of range, unknown options). The property, through
:func:`sparse_connectome.cli.main`: the exit code is 0 or 2 (3 for a cohort
whose runs partly failed), stderr never holds a traceback, and ``--out`` holds
either the complete results or nothing (no file, no hidden staging folder).

``cohort`` is fuzzed up to the Dask step (``--level`` is drawn among ``group``
and invalid values): its computing path, with a cluster, is tested by
``tests/test_cohort.py``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from _fuzz import fuzz_settings
from sparse_connectome.cli import main
from sparse_connectome.pipeline import OUTPUT_FILES

_COUNTER = itertools.count()
HOSTILE = ["", " ", "-", "--", "<script>alert(1)</script>", "..", "../..", "nope.nii.gz",
           "a\x00b", "\u00e9\u202e", "--help-me", "-1", "nan", "inf", "1e999"]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """A tiny valid subject (6x6x6 voxels, 40 volumes, 3 regions) and broken files."""
    root = tmp_path_factory.mktemp("fuzz_cli")
    rng = np.random.default_rng(0)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -12.0
    regions = rng.normal(size=(40, 3))
    maps = np.zeros((6, 6, 6, 3), dtype=np.float32)
    for k in range(3):
        maps[2 * k:2 * k + 2, 1:5, 1:5, k] = 1.0
    bold = 100 + np.einsum("xyzk,tk->xyzt", maps, regions) + rng.normal(size=(6, 6, 6, 40))
    paths = {"func": root / "bold.nii.gz", "maps": root / "maps.nii.gz",
             "confounds": root / "confounds.tsv", "labels": root / "labels.csv"}
    img = nib.Nifti1Image(bold.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    nib.save(img, paths["func"])
    nib.save(nib.Nifti1Image(maps, affine), paths["maps"])
    pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"]).to_csv(
        paths["confounds"], sep="\t", index=False)
    pd.DataFrame({"name": ["left", "middle", "right"]}).to_csv(paths["labels"], index=False)
    raw = paths["func"].read_bytes()
    (root / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    (root / "text.nii.gz").write_text("not an image")
    (root / "folder.nii.gz").mkdir()
    (root / "binary.csv").write_bytes(bytes(range(256)))
    (root / "short.tsv").write_text("a\tb\n1\t2\n")
    (root / "a_file").write_text("x")
    return root, paths


def _choice(valid: list[str]):
    return st.sampled_from(valid + HOSTILE)


@st.composite
def run_args(draw, root: Path, paths: dict[str, Path]) -> list[str]:
    files = [str(root / n) for n in ("cut.nii.gz", "text.nii.gz", "folder.nii.gz", "binary.csv",
                                     "short.tsv", "a_file")]
    options = {
        "--func": _choice([str(paths["func"])] * 4 + files),
        "--atlas": _choice([str(paths["maps"])] * 4 + files + ["harvard"]),
        "--labels": _choice([str(paths["labels"])] + files),
        "--confounds": _choice([str(paths["confounds"])] + files),
        "--strategy": _choice(["simple"]),
        "--t-r": _choice(["2", "0", "0.5"]),
        "--edge-threshold": _choice(["80%", "0.1", "150%", "0"]),
        "--alphas": _choice(["2", "0.1,0.05", "1", "0.1,,"]),
        "--n-refinements": _choice(["1", "0"]),
        "--cv": _choice(["2", "1", "100"]),
        "--max-iter": _choice(["10", "0"]),
        "--bogus": _choice(["1"]),
    }
    args = ["run", "--alphas", "2", "--n-refinements", "1", "--cv", "2", "--max-iter", "10", "-q"]
    chosen = ["--func", "--atlas"] + draw(st.lists(st.sampled_from(sorted(options)), max_size=3))
    for name in chosen:  # repeated options: the last one wins
        args += [name, draw(options[name])]
    return args


def _call(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args)
    return code, err.getvalue()


def _leftovers(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def _check(code: int, stderr: str, out: Path, allowed: tuple[int, ...]) -> None:
    assert code in allowed, stderr
    assert "Traceback" not in stderr, stderr
    if code != 0:
        assert len(stderr.strip().splitlines()) >= 1
    assert _leftovers(out) == [], _leftovers(out)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_cli_out")


def _out(kind: str, root: Path, outputs: Path) -> Path:
    return {"fresh": outputs / f"out{next(_COUNTER)}", "file": root / "a_file",
            "under_file": root / "a_file" / "out"}[kind]


@fuzz_settings(15)
@given(st.data())
def test_run_exits_0_or_2_and_leaves_nothing_partial(subject, outputs, data):
    root, paths = subject
    args = data.draw(run_args(root, paths))
    out = _out(data.draw(st.sampled_from(["fresh", "fresh", "fresh", "file", "under_file"])),
               root, outputs)
    code, stderr = _call(args + ["--out", str(out)])
    event(f"exit {code}")
    _check(code, stderr, out, (0, 2))
    if code == 0:
        assert all((out / name).is_file() for name in OUTPUT_FILES)
    elif out.parent == outputs:
        assert not out.exists()


@pytest.fixture(scope="module")
def trees(subject):
    """Input folders for ``cohort``: a valid one, a hostile one, an empty one."""
    root, paths = subject
    bold = "task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold"
    for name, label in (("valid", "01"), ("hostile", "01")):
        func = root / name / f"sub-{label}" / "func"
        func.mkdir(parents=True)
        (func / f"sub-{label}_{bold}.nii.gz").write_bytes(paths["func"].read_bytes())
        (func / f"sub-{label}_task-rest_desc-confounds_timeseries.tsv").write_text("a\n1\n")
        (func / f"sub-{label}_{bold}.json").write_text('{"RepetitionTime": 2.0}')
    hostile = root / "hostile"
    for label in ("<script>alert(1)<", "\u00fc1", "x y"):
        (hostile / f"sub-{label}" / "func").mkdir(parents=True)
    (hostile / "sub-02").symlink_to(root)  # leaves the tree
    (hostile / "sub-03" / "func").mkdir(parents=True)
    (hostile / "sub-03" / "func" / f"sub-03_{bold}.nii.gz").write_bytes(b"")
    (hostile / "sub-03" / "func" / f"sub-03_{bold}.json").write_text("[" * 100_000)
    (hostile / "sub-03" / "func" / "sub-03_task-rest_desc-confounds_timeseries.tsv").touch()
    (root / "empty").mkdir()
    return {name: root / name for name in ("valid", "hostile", "empty")}


@st.composite
def cohort_args(draw, root: Path, paths: dict[str, Path], trees: dict[str, Path]) -> list[str]:
    files = [str(root / n) for n in ("cut.nii.gz", "text.nii.gz", "binary.csv", "a_file")]
    options = {
        "--demo": _choice(["0", "1001"]),
        "--participant-label": _choice(["01", "sub-01", "<script>alert(1)<"]),
        "--task": _choice(["rest", "<i>"]),
        "--space": _choice(["any", "MNI152NLin2009cAsym", "MNI152NLin2009cAsym:res-2", "a:b-c"]),
        "--atlas": _choice([str(paths["maps"])] * 3 + files),
        "--labels": _choice([str(paths["labels"])] + files),
        "--atlas-label": _choice(["maps", "a_b", "../x"]),
        "--strategy": _choice(["simple", "compcor"]),
        "--edge-threshold": _choice(["80%", "0.5"]),
        "--level": _choice(["group"]),  # the participant level needs a Dask cluster
        "--n-workers": _choice(["1", "0"]),
        "--scheduler-file": _choice(files),
        "--alphas": _choice(["2", "1"]),
        "--bogus": _choice(["1"]),
    }
    inputs = [str(t) for t in trees.values()]
    folders = draw(st.sampled_from([[t] for t in inputs]) | st.lists(
        st.sampled_from(inputs + files + HOSTILE), max_size=2))
    args = ["cohort", "--level", "group", "--atlas", str(paths["maps"]), "-q"]
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=2, unique=True)):
        args += [name, draw(options[name])]  # few options: some cases reach the group level
    for flag in ("--no-reports", "--retry-failed"):
        if draw(st.booleans()):
            args.append(flag)
    return args + folders


def _partial_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.rglob("*") if ".part" in p.name or p.name.startswith(".tmp")]


@fuzz_settings(30)
@given(st.data())
def test_cohort_exits_0_2_or_3_and_leaves_nothing_partial(subject, trees, outputs, data):
    root, paths = subject
    args = data.draw(cohort_args(root, paths, trees))
    out = _out(data.draw(st.sampled_from(["fresh", "fresh", "file", "under_file"])), root,
               outputs)
    code, stderr = _call(args + [str(out)])
    event(f"exit {code}")
    _check(code, stderr, out, (0, 2, 3))
    assert _partial_files(out) == []
    if code == 2 and out.parent == outputs:
        assert not out.exists() or not any(out.rglob("*.tsv")), sorted(out.rglob("*"))


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("where", ["--func", "--out", "folder", "--scheduler-file"])
def test_nul_byte_in_an_argument(subject, outputs, where):
    # Was: exit 1, "unexpected error: ValueError: embedded null byte".
    root, paths = subject
    if where in ("folder", "--scheduler-file"):
        args = ["cohort", "a\x00b" if where == "folder" else str(root / "valid"),
                str(outputs / "nul")]
        args += ["--scheduler-file", "a\x00b"] if where == "--scheduler-file" else []
    else:
        args = ["run", "--func", str(paths["func"]), "--atlas", str(paths["maps"]),
                "--out", str(outputs / "nul")]
        args[args.index(where) + 1] = "a\x00b"
    code, stderr = _call(args)
    assert code == 2 and "NUL byte" in stderr, stderr
    assert not (outputs / "nul").exists()
