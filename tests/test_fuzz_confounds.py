"""Property-based tests of the confounds readers: fMRIPrep TSVs and their JSON sidecars.

Strategies write a valid fMRIPrep confounds table (with ``n/a`` in the first
row of derivatives, as fMRIPrep writes it) and its CompCor sidecar, then damage
them: encodings and byte-order marks, Windows or old Mac line ends, cells set to
``n/a``/``NaN``/empty/text/overflowing numbers, duplicate or missing header
names, no header, truncations, binary junk; sidecars that are not objects, not
JSON, nested past Python's recursion limit, or hold integers longer than Python
converts. The property, through :func:`read_confounds_tsv`,
:func:`load_confounds`, :func:`load_confounds_strategy` and
:func:`load_confounds_matrix`: a result of the right size, or an error of
:mod:`sparse_connectome.errors` whose message names the file.
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import fuzz_settings
from sparse_connectome.confounds import (
    load_confounds,
    load_confounds_strategy,
    read_confounds_tsv,
)
from sparse_connectome.errors import ConfoundsError, SparseConnectomeError
from sparse_connectome.signal import load_confounds_matrix

STEM = "sub-01_task-rest"
BOLD = f"{STEM}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
TSV = f"{STEM}_desc-confounds_timeseries.tsv"
BASES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter",
         "global_signal")
HOSTILE_CELLS = ("n/a", "N/A", "NaN", "nan", "", " ", "abc", "1e999", "-inf", "0x1F", "1,5",
                 "<script>alert(1)</script>", "\u00e9", "None", "TRUE", '"1"')
_COUNTER = itertools.count()


def _columns() -> list[str]:
    cols = []
    for base in BASES:
        cols += [base, f"{base}_derivative1", f"{base}_power2", f"{base}_derivative1_power2"]
    return cols + ["framewise_displacement", "std_dvars", "cosine00", "cosine01",
                   "a_comp_cor_00", "a_comp_cor_01", "t_comp_cor_00", "non_steady_state_outlier00"]


def _sidecar() -> dict:
    return {"a_comp_cor_00": {"Mask": "combined", "Method": "aCompCor"},
            "a_comp_cor_01": {"Mask": "combined", "Method": "aCompCor"},
            "t_comp_cor_00": {"Method": "tCompCor"}}


@st.composite
def valid_tables(draw) -> list[list[str]]:
    """Header row and data rows (cells as text) of a valid confounds table."""
    n = draw(st.integers(6, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    cols = _columns()
    values = rng.normal(size=(n, len(cols))).round(4)
    frame = pd.DataFrame(values, columns=cols)
    frame["framewise_displacement"] = np.abs(frame["framewise_displacement"]) / 4
    frame["std_dvars"] = 1 + np.abs(frame["std_dvars"]) / 4
    frame["non_steady_state_outlier00"] = (np.arange(n) == 0).astype(float)
    cells = [[f"{v:g}" for v in row] for row in frame.to_numpy()]
    for j, name in enumerate(cols):  # fMRIPrep's n/a at t=0
        if "derivative1" in name or name in ("framewise_displacement", "std_dvars"):
            cells[0][j] = "n/a"
    return [cols] + cells


@st.composite
def mutated_tables(draw) -> tuple[bytes, bool]:
    """(bytes of the TSV, whether it is intact)."""
    rows = [list(r) for r in draw(valid_tables())]
    kinds = draw(st.lists(st.sampled_from(["cells", "dup_header", "drop_header_cell",
                                           "no_header", "extra_cell", "drop_row_cell",
                                           "truncate", "junk"]), max_size=3))
    for kind in kinds:
        if kind == "cells":
            for _ in range(draw(st.integers(1, 6))):
                i, j = draw(st.integers(1, len(rows) - 1)), draw(st.integers(0, len(rows[0]) - 1))
                rows[i][j] = draw(st.sampled_from(HOSTILE_CELLS) | st.text(max_size=6))
        elif kind == "dup_header":
            j, k = draw(st.integers(0, len(rows[0]) - 1)), draw(st.integers(0, len(rows[0]) - 1))
            rows[0][j] = rows[0][k]
        elif kind == "drop_header_cell" and len(rows[0]) > 1:
            rows[0].pop(draw(st.integers(0, len(rows[0]) - 1)))
        elif kind == "no_header":
            rows = rows[1:] or rows
        elif kind == "extra_cell":
            rows[draw(st.integers(0, len(rows) - 1))].append("1")
        elif kind == "drop_row_cell":
            rows[draw(st.integers(0, len(rows) - 1))].pop()
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"])) if kinds or draw(st.booleans()) else "\n"
    text = eol.join("\t".join(r) for r in rows) + eol
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    raw = text.encode(encoding, errors="replace")
    if "truncate" in kinds:
        raw = raw[:draw(st.integers(0, len(raw)))]
    if "junk" in kinds:
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.binary(min_size=1, max_size=32)) + raw[pos:]
    intact = not kinds and eol != "\r" and encoding in ("utf-8", "utf-8-sig")
    return raw, intact


SIDECARS = st.sampled_from([
    "[1, 2]", '"text"', "null", "3", "[" * 100_000, '{"a_comp_cor_00": ' + "1" * 5000 + "}",
    '{"a_comp_cor_00": {"Mask": [1]}}', '{"a_comp_cor_00": 5, "a_comp_cor_01": null}',
    '{"a_comp_cor_00": {"Mask": {"x": 1}}}', '{"a": 1', "\ufeff{}", "{}", "",
    '{"a_comp_cor_00": {"Mask": "combined"}, "a_comp_cor_00": NaN}',
]) | st.just(json.dumps(_sidecar())) | st.text(max_size=40)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_confounds")


def _run_folder(folder: Path, table: bytes, sidecar: bytes | None) -> Path:
    run = folder / f"run{next(_COUNTER)}"
    run.mkdir()
    (run / BOLD).touch()
    (run / TSV).write_bytes(table)
    if sidecar is not None:
        (run / TSV.replace(".tsv", ".json")).write_bytes(sidecar)
    return run


def _check(call, intact: bool, n_rows: int | None = None):
    """Call; a package error must name the confounds file or its sidecar."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the property inspects any exception
            assert isinstance(exc, SparseConnectomeError), f"{type(exc).__name__}: {exc}"
            assert not intact, f"an intact table was refused: {exc}"
            assert STEM in str(exc), str(exc)  # the TSV, its sidecar or the BOLD file
            return None


PRESET = st.sampled_from(["simple", "scrubbing", "compcor", "ica_aroma"])


@fuzz_settings(80)
@given(table=mutated_tables(), sidecar=SIDECARS | st.none(), preset=PRESET,
       encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_confounds_readers_answer_or_name_the_file(folder, table, sidecar, preset, encoding):
    raw, intact = table
    side = None if sidecar is None else sidecar.encode(encoding, errors="replace")
    run = _run_folder(folder, raw, side)
    frame = _check(lambda: read_confounds_tsv(run / TSV), intact)
    if frame is not None:
        assert frame.shape[0] >= 1 and frame.shape[1] >= 1
    sidecar_ok = sidecar == json.dumps(_sidecar()) and encoding != "utf-16"
    result = _check(lambda: load_confounds_strategy(str(run / BOLD), preset),
                    intact and (preset != "compcor" or sidecar_ok) and preset != "ica_aroma")
    if result is not None:
        confounds, sample_mask = result
        if confounds is not None:
            assert confounds.shape[0] == frame.shape[0]
        if sample_mask is not None:
            assert np.all((sample_mask >= 0) & (sample_mask < frame.shape[0]))
    matrix = _check(lambda: load_confounds_matrix(str(run / TSV)), False)
    if matrix is not None:
        assert np.isfinite(matrix[0]).all()


@fuzz_settings(40)
@given(table=mutated_tables(), scrub=st.integers(0, 6),
       fd=st.floats(0, 2), strategy=st.lists(st.sampled_from(
           ["motion", "high_pass", "wm_csf", "global_signal", "scrub"]), unique=True))
def test_load_confounds_components(folder, table, scrub, fd, strategy):
    raw, intact = table
    run = _run_folder(folder, raw, None)
    result = _check(lambda: load_confounds(str(run / BOLD), strategy=strategy, scrub=scrub,
                                           fd_threshold=fd, motion="basic"), intact)
    if result is not None and result[1] is not None:
        assert result[1].dtype.kind == "i"


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("column", ["framewise_displacement", "std_dvars",
                                    "non_steady_state_outlier00"])
def test_text_in_scrubbing_columns(folder, column):
    cols = _columns()
    frame = pd.DataFrame(np.zeros((8, len(cols))), columns=cols)
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = "abc"
    run = _run_folder(folder, frame.to_csv(sep="\t", index=False).encode(), None)
    with pytest.raises(ConfoundsError, match=TSV) as info:
        load_confounds_strategy(str(run / BOLD), "scrubbing")
    assert column in str(info.value)


@pytest.mark.parametrize("sidecar, words", [
    ("[" * 100_000, "nested"),  # was RecursionError
    ('{"a_comp_cor_00": ' + "1" * 5000 + "}", "digits"),  # was ValueError (int max str digits)
])
def test_hostile_sidecars(folder, sidecar, words):
    frame = pd.DataFrame(np.zeros((8, len(_columns()))), columns=_columns())
    run = _run_folder(folder, frame.to_csv(sep="\t", index=False).encode(), sidecar.encode())
    with pytest.raises(ConfoundsError, match=TSV.replace(".tsv", ".json")) as info:
        load_confounds_strategy(str(run / BOLD), "compcor")
    assert words in str(info.value)
