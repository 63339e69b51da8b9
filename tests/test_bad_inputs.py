"""Adversarial inputs to ``sparse-connectome run`` / ``demo`` and :func:`run_connectome`.

Every bad input must give exit code 2 and exactly one line on stderr that names
the input and says what was found and what was expected; no traceback, and no
file left behind (neither in ``--out`` nor in a hidden ``.partial-`` folder
beside it). Most cases run in-process through :func:`sparse_connectome.cli.main`
for speed; the signal tests run real subprocesses.
"""

from __future__ import annotations

import gzip
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome.cli import main
from sparse_connectome.errors import AtlasError, DataWarning, ParameterError
from sparse_connectome.pipeline import OUTPUT_FILES, resolve_atlas, run_connectome

PREFIX = "sparse-connectome: error: "


# --------------------------------------------------------------------------- inputs


def _patch_sform(src: Path, dst: Path, rows: list[list[float]]) -> None:
    """Write a copy of a .nii.gz whose sform rows are ``rows`` (qform disabled)."""
    raw = bytearray(gzip.decompress(src.read_bytes()))
    struct.pack_into("<h", raw, 252, 0)  # qform_code
    struct.pack_into("<h", raw, 254, 1)  # sform_code
    for offset, row in zip((280, 296, 312), rows):
        struct.pack_into("<4f", raw, offset, *row)
    dst.write_bytes(gzip.compress(bytes(raw), compresslevel=1))


@pytest.fixture(scope="module")
def bad(demo, tmp_path_factory):
    """A folder of broken inputs derived from the demo subject."""
    root = tmp_path_factory.mktemp("bad_inputs")
    func = Path(demo.func[0])
    img = nib.load(func)
    data = np.asarray(img.dataobj, dtype=np.float32)
    affine, header = img.affine, img.header
    maps = nib.load(demo.maps)
    maps_data = np.asarray(maps.dataobj, dtype=np.float32)
    paths = {}

    def save(name, array, aff=affine, hdr=header):
        paths[name] = root / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, aff, hdr), paths[name])

    save("bold5", data[..., :5])
    save("bold3d", data[..., 0])
    save("bold5d", np.stack([data[..., :3]] * 2, axis=-1))
    save("const", np.full(data.shape[:3] + (12,), 100.0, dtype=np.float32))
    _patch_sform(paths["bold5"], root / "zero_affine.nii.gz", [[0] * 4] * 3)
    _patch_sform(paths["bold5"], root / "nan_affine.nii.gz",
                 [[np.nan, 0, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0]])
    far = maps.affine.copy()
    far[:3, 3] += 1000.0
    save("maps_far", maps_data, far, None)
    save("maps3d", maps_data[..., 0], maps.affine, None)
    # A labels atlas with a single region (3D integer images are labels atlases now).
    save("labelatlas", (maps_data[..., 0] > 0).astype(np.int16), maps.affine, None)
    emptied = maps_data.copy()
    emptied[..., 3] = 0
    save("maps_emptied", emptied, maps.affine, None)

    (root / "empty.nii.gz").write_bytes(b"")
    (root / "text.nii.gz").write_text("not an image\n" * 50)
    raw = func.read_bytes()
    (root / "truncated.nii.gz").write_bytes(raw[: len(raw) // 3])
    (root / "folder.nii.gz").mkdir()

    labels = pd.DataFrame({"x": demo.region_coords[:, 0], "y": demo.region_coords[:, 1],
                           "z": demo.region_coords[:, 2], "name": demo.labels,
                           "net name": demo.networks})
    labels.iloc[:10].to_csv(root / "labels_short.csv", index=False)
    labels.drop(columns="name").to_csv(root / "labels_noname.csv", index=False)
    blank = labels.copy()
    blank.loc[0, "name"] = ""
    blank.to_csv(root / "labels_blank.csv", index=False)
    dup = labels.copy()
    dup.loc[1, "name"] = dup.loc[0, "name"]
    dup.to_csv(root / "labels_dup.csv", index=False)
    badx = labels.astype({"x": str})
    badx.loc[0, "x"] = "abc"
    badx.to_csv(root / "labels_badx.csv", index=False)
    (root / "labels_binary.csv").write_bytes(bytes(range(256)) * 4)
    (root / "labels_empty.csv").write_bytes(b"")
    weird = labels.copy()
    weird.loc[0, "name"] = "<script>alert(1)</script>"
    weird.loc[1, "name"] = "Zürich & 'x'"
    weird.to_csv(root / "labels_latin1.csv", index=False, encoding="latin-1")
    weird.to_csv(root / "labels_utf16.csv", index=False, encoding="utf-16")

    conf = pd.read_csv(demo.confounds[0], sep="\t")
    conf.iloc[:100].to_csv(root / "conf_short.tsv", sep="\t", index=False)
    nan = conf.copy()
    nan.iloc[3, 1] = np.nan
    nan.to_csv(root / "conf_na.tsv", sep="\t", index=False, na_rep="n/a")
    text = conf.copy()
    text["kind"] = "a"
    text.to_csv(root / "conf_text.tsv", sep="\t", index=False)
    conf.iloc[:0].to_csv(root / "conf_header.tsv", sep="\t", index=False)
    (root / "conf_empty.tsv").write_bytes(b"")

    alone = root / "alone"
    alone.mkdir()
    os.symlink(func, alone / "sub-01_task-rest_desc-preproc_bold.nii.gz")
    (root / "a_file").write_text("x")
    return root


def _cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _leftovers(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*")) + ([out] if out.exists() else [])


# (name, argv after the fixed part, words the message must hold)
CASES = [
    ("missing func", ["--func", "{bad}/nope.nii.gz"], ["nope.nii.gz", "does not exist"]),
    ("func is a folder", ["--func", "{bad}/folder.nii.gz"], ["folder.nii.gz", "is a folder"]),
    ("empty func", ["--func", "{bad}/empty.nii.gz"], ["empty.nii.gz", "NIfTI"]),
    ("not a NIfTI", ["--func", "{bad}/text.nii.gz"], ["text.nii.gz", "NIfTI"]),
    ("truncated", ["--func", "{bad}/truncated.nii.gz"], ["truncated.nii.gz", "truncated"]),
    ("3D func", ["--func", "{bad}/bold3d.nii.gz"], ["bold3d.nii.gz", "3D", "4D"]),
    ("5D func", ["--func", "{bad}/bold5d.nii.gz"], ["bold5d.nii.gz", "5D", "4D"]),
    ("zero affine", ["--func", "{bad}/zero_affine.nii.gz"], ["zero_affine", "singular affine"]),
    ("NaN affine", ["--func", "{bad}/nan_affine.nii.gz"], ["nan_affine", "non-finite affine"]),
    ("maps elsewhere", ["--atlas", "{bad}/maps_far.nii.gz"], ["maps_far", "does not overlap"]),
    ("3D maps", ["--atlas", "{bad}/maps3d.nii.gz"], ["maps3d", "1 map", "at least 2"]),
    ("label atlas", ["--atlas", "{bad}/labelatlas.nii.gz"], ["labelatlas", "label atlas"]),
    ("empty map", ["--atlas", "{bad}/maps_emptied.nii.gz"], ["maps_emptied", "map 3",
                                                             "no positive value"]),
    ("unknown atlas", ["--atlas", "harvard"], ["'harvard'", "msdl"]),
    ("labels count", ["--labels", "{bad}/labels_short.csv"], ["labels_short", "10 names", "39"]),
    ("labels no name", ["--labels", "{bad}/labels_noname.csv"], ["labels_noname", "'name'"]),
    ("labels blank", ["--labels", "{bad}/labels_blank.csv"], ["labels_blank", "line(s) [2]"]),
    ("labels dup", ["--labels", "{bad}/labels_dup.csv"], ["labels_dup", "more than once"]),
    ("labels bad x", ["--labels", "{bad}/labels_badx.csv"], ["labels_badx", "'abc'", "finite"]),
    ("labels binary", ["--labels", "{bad}/labels_binary.csv"], ["labels_binary", "binary"]),
    ("labels empty", ["--labels", "{bad}/labels_empty.csv"], ["labels_empty", "empty"]),
    ("labels missing", ["--labels", "{bad}/nope.csv"], ["nope.csv", "does not exist"]),
    ("confounds rows", ["--confounds", "{bad}/conf_short.tsv"], ["conf_short", "100 rows", "168"]),
    ("confounds n/a", ["--confounds", "{bad}/conf_na.tsv"], ["conf_na", "n/a", "--strategy"]),
    ("confounds text", ["--confounds", "{bad}/conf_text.tsv"], ["conf_text", "non-numeric",
                                                                 "'kind'"]),
    ("confounds header", ["--confounds", "{bad}/conf_header.tsv"], ["conf_header", "0 rows"]),
    ("confounds empty", ["--confounds", "{bad}/conf_empty.tsv"], ["conf_empty", "empty"]),
    ("confounds missing", ["--confounds", "{bad}/nope.tsv"], ["nope.tsv", "does not exist"]),
    ("strategy, no TSV", ["--func", "{bad}/alone/sub-01_task-rest_desc-preproc_bold.nii.gz",
                          "--strategy", "simple"], ["confounds", "sub-01_task-rest_desc-conf"]),
    ("strategy and confounds", ["--strategy", "simple", "--confounds", "{conf}"], ["both"]),
    ("t_r 0", ["--t-r", "0"], ["--t-r", "positive"]),
    ("t_r -1", ["--t-r", "-1"], ["--t-r", "positive"]),
    ("t_r abc", ["--t-r", "abc"], ["--t-r", "'abc'"]),
    ("t_r nan", ["--t-r", "nan"], ["--t-r", "positive"]),
    ("edge 150%", ["--edge-threshold", "150%"], ["--edge-threshold", "150%", "100%"]),
    ("edge -5", ["--edge-threshold", "-5"], ["--edge-threshold", "non-negative"]),
    ("edge abc", ["--edge-threshold", "abc"], ["--edge-threshold", "'abc'"]),
    ("edge inf", ["--edge-threshold", "inf"], ["--edge-threshold", "finite"]),
    ("too few volumes", ["--func", "{bad}/bold5.nii.gz"], ["bold5.nii.gz", "5 volumes",
                                                           "at least 10"]),
    ("constant image", ["--func", "{bad}/const.nii.gz"], ["const.nii.gz", "constant"]),
]


@pytest.mark.parametrize("name, extra, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2(name, extra, words, bad, demo, tmp_path, capsys):
    out = tmp_path / "out"
    fill = {"bad": str(bad), "conf": str(demo.confounds[0])}
    extra = [e.format(**fill) for e in extra]
    argv = ["run", "--func", str(demo.func[0]), "--atlas", str(demo.maps), "--out", str(out)]
    # Later options win in click: the case's own --func/--atlas replace the defaults.
    code, stdout, stderr = _cli(capsys, *argv, *extra)
    lines = stderr.splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(PREFIX)
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert _leftovers(out) == []


@pytest.mark.parametrize("where", ["file", "under a file", "proc", "blocked name"])
def test_unwritable_output(where, bad, demo, tmp_path, capsys):
    if where == "file":
        out = bad / "a_file"
    elif where == "under a file":
        out = bad / "a_file" / "sub"
    elif where == "proc":
        out = Path("/proc/sparse-connectome-test")
    else:
        out = tmp_path / "out"
        (out / "report.html").mkdir(parents=True)
    code, _, stderr = _cli(capsys, "run", "--func", str(demo.func[0]), "--atlas",
                           str(demo.maps), "--out", str(out))
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert "--out" in stderr or str(out) in stderr
    if where == "blocked name":
        assert sorted(p.name for p in out.iterdir()) == ["report.html"]
        assert (out / "report.html").is_dir()
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def test_demo_unwritable_output_fails_first(capsys, tmp_path):
    code, _, stderr = _cli(capsys, "demo", "--out", "/proc/sparse-connectome-test",
                           "--data-dir", str(tmp_path / "data"))
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert "/proc/sparse-connectome-test" in stderr
    assert not (tmp_path / "data").exists()  # failed before generating the demo subject


# --------------------------------------------------------------------------- python API


def test_labels_in_other_encodings(bad, demo):
    with pytest.warns(DataWarning, match="Windows-1252"):
        latin1 = resolve_atlas(demo.maps, bad / "labels_latin1.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a UTF-16 file with its BOM is read silently
        utf16 = resolve_atlas(demo.maps, bad / "labels_utf16.csv")
    for info in (latin1, utf16):
        assert info.labels[0] == "<script>alert(1)</script>"
        assert info.labels[1] == "Zürich & 'x'"
        np.testing.assert_allclose(info.region_coords, demo.region_coords, atol=1e-2)


def test_api_errors(bad, demo, tmp_path):
    func, maps = demo.func[0], demo.maps
    with pytest.raises(AtlasError, match="1 map"):
        resolve_atlas(bad / "maps3d.nii.gz")
    with pytest.raises(ParameterError, match="fit"):
        run_connectome(func, maps, estimator=object(), verbose=0)
    with pytest.raises(ParameterError, match="memory"):
        run_connectome(func, maps, memory=str(bad / "a_file"), verbose=0)
    with pytest.raises(ParameterError, match="edge_threshold"):
        run_connectome(func, maps, edge_threshold="abc", verbose=0)
    with pytest.raises(ParameterError, match="t_r"):
        run_connectome(func, maps, t_r="abc", verbose=0)
    with pytest.raises(AtlasError, match="found 2 names"):
        run_connectome(func, maps, labels=["a", "b"], verbose=0)


# --------------------------------------------------------------------------- full runs


def test_rerun_scrubbing_escaped_labels_and_warnings(bad, demo, tmp_path, capsys):
    """One real run covering: --strategy scrubbing on the demo, hostile label text
    (escaped in both HTML files), a re-run into a folder holding an old run and an
    unrelated file, and warnings printed as one line each."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "timeseries.tsv").write_text("stale\n")
    code, stdout, stderr = _cli(capsys, "run", "--func", str(demo.func[0]), "--atlas",
                                str(demo.maps), "--labels", str(bad / "labels_latin1.csv"),
                                "--strategy", "scrubbing", "--out", str(out))
    assert code == 0, stderr
    assert "scrubbed" in stdout
    for line in stderr.splitlines():  # the Windows-1252 labels file warns, in one line
        assert line.startswith("sparse-connectome: warning: "), line
    assert "Windows-1252" in stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, "notes.txt"])
    header = (out / "timeseries.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("<script>alert(1)</script>\t")
    for page in ("report.html", "connectome_3d.html"):
        html = (out / page).read_text(encoding="utf-8")
        assert "<script>alert(1)" not in html, page
        assert "alert(1)" in html, page
    assert not list(tmp_path.glob(".out.partial-*"))


def _command() -> list[str]:
    script = Path(sys.executable).with_name("sparse-connectome")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sparse_connectome"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_nothing(signum, demo, tmp_path):
    out = tmp_path / "out"
    argv = [*_command(), "run", "--func", str(demo.func[0]), "--atlas", str(demo.maps),
            "--confounds", str(demo.confounds[0]), "--out", str(out)]
    # A background job may inherit SIGINT ignored; give the child the default.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    # Interrupt while outputs are being staged: the worst moment for partial files.
    while time.monotonic() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".out.partial-*")):
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal arrived: complete, not partial
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    else:
        assert proc.returncode in (130, 143, -signum), stderr
        assert "Traceback" not in stderr
        assert not out.exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_subprocess_bad_input_one_line(bad, demo, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([*_command(), "run", "--func", str(bad / "truncated.nii.gz"),
                           "--atlas", str(demo.maps), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(PREFIX), proc.stderr
    assert "truncated.nii.gz" in proc.stderr
    assert _leftovers(out) == []


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize("exc, code, word", [(RuntimeError("boom"), 1, "unexpected error"),
                                             (KeyboardInterrupt(), 130, "interrupted")])
def test_unexpected_failures_one_line(exc, code, word, demo, tmp_path, capsys, monkeypatch):
    import sparse_connectome.pipeline as pipeline

    def explode(*args, **kwargs):
        raise exc

    monkeypatch.setattr(pipeline, "run_connectome", explode)
    argv = ["run", "--func", str(demo.func[0]), "--atlas", str(demo.maps), "--out",
            str(tmp_path / "out")]
    got, _, stderr = _cli(capsys, *argv)
    assert got == code
    assert len(stderr.splitlines()) == 1 and word in stderr, stderr
    if code == 1:
        assert "RuntimeError: boom" in stderr and "--verbose" in stderr
        got, _, stderr = _cli(capsys, *argv, "--verbose")
        assert got == 1 and "Traceback" in stderr


def test_bare_command_shows_help(capsys):
    code, stdout, stderr = _cli(capsys)
    assert code == 0 and stderr == ""
    assert "Usage: sparse-connectome" in stdout and "run" in stdout


def test_missing_glyph_warnings_collapse_to_one():
    import io

    import matplotlib.pyplot as plt

    from sparse_connectome.pipeline import missing_glyphs_collapsed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with missing_glyphs_collapsed():
            fig = plt.figure()
            fig.text(0.5, 0.5, "日本語 région")
            fig.savefig(io.BytesIO(), format="png")
            plt.close(fig)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert issubclass(caught[0].category, DataWarning) and "日本語" in messages[0]
