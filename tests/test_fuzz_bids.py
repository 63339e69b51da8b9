"""Property-based tests of the BIDS discovery of the cohort command.

Strategies build small fMRIPrep derivatives trees with hostile parts: subject,
session and task labels in unicode, with spaces, dots or ``<script>``; sidecars
that are not objects, not JSON, nested past the recursion limit, or whose
``RepetitionTime`` is a string, negative, NaN, infinite or a 400-digit integer;
symbolic links that leave the tree (a subject folder, a ``func`` folder, the
BOLD file, its confounds or its sidecar), broken or looping links, links that
stay inside. The properties, through :func:`discover_runs`:

* it returns, or raises an :class:`InputError` naming the input folder;
* every file of every run is inside the input folder once links are resolved,
  every run has a BIDS label and a finite positive repetition time;
* nothing outside the input folder is opened or listed (checked with an audit
  hook on ``open`` and ``os.scandir``/``os.listdir``).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import fuzz_settings
from sparse_connectome.errors import InputError, SparseConnectomeError
from sparse_connectome.pipeline import discover_runs

SPACE = "MNI152NLin2009cAsym"
_COUNTER = itertools.count()
_WATCH: dict[str, object] = {"prefix": None, "seen": []}


def _audit(event: str, args: tuple) -> None:
    prefix = _WATCH["prefix"]
    if prefix is None or event not in ("open", "os.scandir", "os.listdir"):
        return
    target = args[0] if args else None
    if isinstance(target, bytes):
        target = os.fsdecode(target)
    if isinstance(target, (str, os.PathLike)) and \
            (os.path.realpath(target) + os.sep).startswith(prefix):
        _WATCH["seen"].append((event, str(target)))


sys.addaudithook(_audit)  # cannot be removed: inert unless a test sets _WATCH["prefix"]

LABELS = st.sampled_from(["01", "02", "10", "abc", "A1", "\u00fc1", "<script>", "a b", "x.y",
                          "..", "1\u0301"]) | st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
    max_size=5)
SIDECARS = st.sampled_from([
    None, '{"RepetitionTime": 2.0}', '{"RepetitionTime": "2"}', '{"RepetitionTime": -1}',
    '{"RepetitionTime": NaN}', '{"RepetitionTime": 1e999}', '{"RepetitionTime": 0}',
    '{"RepetitionTime": ' + "9" * 400 + "}", '{"RepetitionTime": ' + "9" * 5000 + "}",
    '{"RepetitionTime": true}', '{"RepetitionTime": [2]}', "[2.0]", '"x"', "null", "{",
    "[" * 100_000, "\udcff", '{"RepetitionTime": 2.0, "<script>": "<script>"}',
])
LINKS = st.sampled_from([None, None, "subject", "func", "bold", "confounds", "sidecar",
                         "root_sidecar", "broken", "loop", "inside"])


@st.composite
def subjects(draw):
    return {
        "label": draw(LABELS),
        "session": draw(st.sampled_from([None, None, "1", "pre", "<b>", "\u00e9"])),
        "task": draw(st.sampled_from(["rest", "rest", "nback", "<i>", "a_b"])),
        "run": draw(st.sampled_from([None, "1", "2", "x y"])),
        "sidecar": draw(SIDECARS),
        "link": draw(LINKS),
    }


def _write_run(folder: Path, sub: dict) -> dict[str, Path]:
    func = folder / f"sub-{sub['label']}"
    if sub["session"] is not None:
        func = func / f"ses-{sub['session']}"
    func = func / "func"
    func.mkdir(parents=True, exist_ok=True)
    ident = f"sub-{sub['label']}" + (f"_ses-{sub['session']}" if sub["session"] else "") + \
        f"_task-{sub['task']}" + (f"_run-{sub['run']}" if sub["run"] else "")
    files = {"bold": func / f"{ident}_space-{SPACE}_desc-preproc_bold.nii.gz",
             "confounds": func / f"{ident}_desc-confounds_timeseries.tsv",
             "sidecar": func / f"{ident}_space-{SPACE}_desc-preproc_bold.json"}
    files["bold"].write_bytes(b"")
    files["confounds"].write_text("trans_x\n0\n")
    if sub["sidecar"] is not None:
        files["sidecar"].write_bytes(sub["sidecar"].encode("utf-8", "surrogateescape"))
    return files


def _link(root: Path, outside: Path, sub: dict, files: dict[str, Path]) -> None:
    """Replace a part of the subject's tree with a symbolic link, as drawn."""
    kind = sub["link"]
    subject_dir = root / f"sub-{sub['label']}"
    if kind == "subject":
        os.rename(subject_dir, root / f".moved{next(_COUNTER)}")
        os.symlink(outside / "sub-out", subject_dir)
    elif kind == "func":
        func = files["bold"].parent
        os.rename(func, func.parent / f".moved{next(_COUNTER)}")
        os.symlink(outside / "sub-out" / "func", func)
    elif kind in ("bold", "confounds", "sidecar"):
        files[kind].unlink(missing_ok=True)
        os.symlink(outside / "secret.json", files[kind])
    elif kind == "root_sidecar":
        os.symlink(outside / "secret.json", root / f"task-{sub['task']}_bold.json")
    elif kind == "broken":
        files["confounds"].unlink()
        os.symlink(root / "nowhere", files["confounds"])
    elif kind == "loop":
        files["bold"].unlink()
        os.symlink(files["bold"], files["bold"])
    elif kind == "inside":
        os.symlink(files["confounds"], root / f"task-{sub['task']}_bold.json")


def _tree(base: Path, subs: list[dict]) -> tuple[Path, Path]:
    case = base / f"case{next(_COUNTER)}"
    root, outside = case / "derivatives", case / "outside"
    (outside / "sub-out" / "func").mkdir(parents=True)
    (outside / "secret.json").write_text('{"RepetitionTime": 2.0}')
    for name in ("sub-out_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
                 "sub-out_task-rest_desc-confounds_timeseries.tsv"):
        (outside / "sub-out" / "func" / name).write_text("secret")
    root.mkdir()
    for sub in subs:
        try:
            files = _write_run(root, sub)
            _link(root, outside, sub, files)
        except (OSError, ValueError):  # a name the file system refuses: not a test of ours
            continue
    return root, outside


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_bids")


@fuzz_settings(80)
@given(subs=st.lists(subjects(), min_size=1, max_size=4),
       space=st.sampled_from([SPACE, None, f"{SPACE}:res-2", "../x", "<b>", "a:b-c"]),
       participant=st.sampled_from([None, ["01"], ["<script>"], ["../outside"], ["sub-02"]]),
       task=st.sampled_from([None, "rest", "<i>"]))
def test_discovery_stays_in_the_tree(base, subs, space, participant, task):
    root, outside = _tree(base, subs)
    _WATCH["prefix"], _WATCH["seen"] = os.path.realpath(outside) + os.sep, []
    try:
        found = discover_runs(root, participant_label=participant, task=task, space=space)
    except Exception as exc:  # noqa: BLE001 - the property inspects any exception
        assert isinstance(exc, SparseConnectomeError), f"{type(exc).__name__}: {exc}"
        assert isinstance(exc, InputError), str(exc)
        assert str(root) in str(exc) or str(exc).startswith("space "), str(exc)  # the input
        found = None
    finally:
        seen, _WATCH["prefix"] = _WATCH["seen"], None
    assert seen == [], f"read outside the input folder: {seen}"
    if found is None:
        return
    real_root = os.path.realpath(root) + os.sep
    for run in found.runs:
        for path in (run.bold, run.mask, run.confounds, run.confounds_json, run.sidecar):
            if path is not None:
                assert os.path.realpath(path).startswith(real_root), path
        assert run.subject.isascii() and run.subject.isalnum()
        assert 0 < run.t_r < float("inf")
    for item in found.unpaired:
        assert item.reason and "\n" not in item.reason


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("sidecar", [
    '{"RepetitionTime": ' + "9" * 400 + "}",  # was OverflowError (int too large for a float)
    '{"RepetitionTime": ' + "9" * 5000 + "}",  # was ValueError (int max str digits)
    "[" * 100_000,  # was RecursionError
])
def test_hostile_sidecar_leaves_the_run_unpaired(base, sidecar):
    root, _ = _tree(base, [{"label": "01", "session": None, "task": "rest", "run": None,
                            "sidecar": sidecar, "link": None}])
    found = discover_runs(root)
    assert found.runs == []
    assert [u.path.name for u in found.unpaired] == [
        f"sub-01_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"]
    assert "sidecar" in found.unpaired[0].reason or "RepetitionTime" in found.unpaired[0].reason


def test_symlinked_subject_out_of_tree_is_listed_not_read(base):
    sub = {"label": "01", "session": None, "task": "rest", "run": None,
           "sidecar": '{"RepetitionTime": 2.0}', "link": "subject"}
    root, outside = _tree(base, [sub, dict(sub, label="02", link=None)])
    _WATCH["prefix"], _WATCH["seen"] = os.path.realpath(outside) + os.sep, []
    try:
        found = discover_runs(root)
    finally:
        seen, _WATCH["prefix"] = _WATCH["seen"], None
    assert seen == []
    assert [r.subject for r in found.runs] == ["02"]
    assert any("outside the input folder" in u.reason for u in found.unpaired)


def test_strategy_and_hook_sanity(base):
    # A valid tree gives one run per subject; the audit hook sees reads outside.
    subs = [{"label": label, "session": None, "task": "rest", "run": None,
             "sidecar": json.dumps({"RepetitionTime": 2.5}), "link": None} for label in ("1", "2")]
    root, outside = _tree(base, subs)
    found = discover_runs(root)
    assert [(r.subject, r.t_r) for r in found.runs] == [("1", 2.5), ("2", 2.5)]
    _WATCH["prefix"], _WATCH["seen"] = os.path.realpath(outside) + os.sep, []
    try:  # and the audit hook sees a read outside
        (outside / "secret.json").read_text()
        sorted(os.scandir(outside), key=str)
    finally:
        seen, _WATCH["prefix"] = _WATCH["seen"], None
    assert [event for event, _ in seen] == ["open", "os.scandir"]
