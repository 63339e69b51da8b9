"""Tests of sparse_connectome.signal.clean: nilearn oracle, identities, errors."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import signal as sp_signal

from sparse_connectome.errors import (
    ConfoundsError,
    DataWarning,
    InputError,
    ParameterError,
    ShapeMismatchError,
)
from sparse_connectome.signal import butterworth, clean, load_confounds_matrix
from sparse_connectome.signal._inputs import read_confounds_file

nilearn_signal = pytest.importorskip("nilearn.signal")

TOL = 1e-5  # brief: max abs difference to nilearn
N = 90


def _nilearn_clean(signals, **kwargs):
    # nilearn's defaults differ from ours (detrend=True, t_r=2.5): always pass them.
    kwargs.setdefault("detrend", False)
    kwargs.setdefault("t_r", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nilearn_signal.clean(signals, **kwargs)


def _ours(signals, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clean(signals, **kwargs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    t = np.arange(N)
    signals = (
        rng.standard_normal((N, 6)) * 2.0
        + 50.0
        + np.outer(t / N, rng.uniform(-3, 3, 6))  # linear drifts
        + np.outer(np.sin(2 * np.pi * 0.004 * 2.0 * t), rng.uniform(1, 3, 6))  # slow drift
    )
    confounds = np.column_stack(
        [rng.standard_normal(N), np.cumsum(rng.standard_normal(N)) * 0.1,
         3 + 0.01 * t + 0.0005 * (t - N / 2) ** 2]
    )
    return signals, confounds


def _censor(kind):
    mask = np.ones(N, dtype=bool)
    if kind == "inner":
        mask[[10, 11, 12, 40, 63]] = False
    elif kind == "start":
        mask[[0, 1, 2, 30, 31]] = False
    elif kind == "end":
        mask[[25, 26, 87, 88, 89]] = False
    else:
        return None
    return mask


FILTERS = {
    "none": {},
    "low": {"low_pass": 0.1, "t_r": 2.0},
    "high": {"high_pass": 0.01, "t_r": 2.0},
    "band": {"low_pass": 0.08, "high_pass": 0.009, "t_r": 2.0},
}


@pytest.mark.parametrize("censor", [None, "inner", "start", "end"])
@pytest.mark.parametrize("filt", list(FILTERS))
def test_clean_matches_nilearn_grid(data, filt, censor):
    signals, confounds = data
    mask = _censor(censor)
    worst = 0.0
    for detrend, standardize, use_conf, std_conf in itertools.product(
        [False, True], ["zscore_sample", "psc", None], [False, True], [True, False]
    ):
        if not use_conf and not std_conf:
            continue  # standardize_confounds is irrelevant without confounds
        kwargs = dict(
            detrend=detrend,
            standardize=standardize,
            confounds=confounds if use_conf else None,
            standardize_confounds=std_conf,
            sample_mask=mask,
            **FILTERS[filt],
        )
        ours = _ours(signals, **kwargs)
        ref = _nilearn_clean(signals, **kwargs)
        assert ours.shape == ref.shape, kwargs
        diff = float(np.max(np.abs(ours - ref)))
        assert diff <= TOL, (kwargs, diff)
        worst = max(worst, diff)
    assert worst <= TOL


@pytest.mark.parametrize("censor", ["start", "end", "inner"])
def test_extrapolate_matches_nilearn(data, censor):
    signals, confounds = data
    kwargs = dict(
        detrend=True, confounds=confounds, sample_mask=_censor(censor), extrapolate=True,
        low_pass=0.1, high_pass=0.01, t_r=2.0,
    )
    np.testing.assert_allclose(_ours(signals, **kwargs), _nilearn_clean(signals, **kwargs), atol=TOL)


def test_sample_mask_indices_equal_boolean(data):
    signals, confounds = data
    mask = _censor("inner")
    a = clean(signals, sample_mask=mask, confounds=confounds, low_pass=0.1, t_r=2.0)
    b = clean(signals, sample_mask=np.flatnonzero(mask), confounds=confounds, low_pass=0.1, t_r=2.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (mask.sum(), signals.shape[1])


def test_both_ends_censored_ignores_censored_values(data):
    """Censored volumes must not influence the result (Lindquist et al.).

    nilearn 0.14.1 departs from this when both the first and the last volume
    are censored (its output then depends on the censored values); we follow
    the documented semantics: volumes outside the first..last kept span are
    dropped before filtering (extrapolate=False) and inner gaps are filled by a
    cubic spline.
    """
    signals, confounds = data
    mask = np.ones(N, dtype=bool)
    mask[[0, 1, 50, 88, 89]] = False
    kwargs = dict(detrend=True, confounds=confounds, sample_mask=mask, low_pass=0.1, t_r=2.0)
    ours = clean(signals, **kwargs)
    spoiled = signals.copy()
    spoiled[~mask] += 1e3
    np.testing.assert_allclose(clean(spoiled, **kwargs), ours, atol=1e-9)
    # Same as cleaning the kept span with only the inner gap.
    span = slice(2, 88)
    inner = mask[span]
    np.testing.assert_allclose(
        clean(signals[span], detrend=True, confounds=confounds[span], sample_mask=inner,
              low_pass=0.1, t_r=2.0),
        ours,
        atol=1e-12,
    )


def test_confound_vanished_by_detrending_is_dropped(data):
    """A linear-trend confound is reduced to round-off by detrend=True.

    It must then be ignored, not rescaled into a random regressor. (nilearn
    0.14.1 with standardize_confounds=False rescales it and regresses out that
    round-off direction; we deliberately differ.)
    """
    signals, confounds = data
    trend = 3 + 0.01 * np.arange(N)
    for std_conf in (True, False):
        kwargs = dict(detrend=True, standardize_confounds=std_conf, standardize=None)
        with_trend = clean(signals, confounds=np.column_stack([confounds, trend]), **kwargs)
        np.testing.assert_allclose(with_trend, clean(signals, confounds=confounds, **kwargs),
                                   atol=1e-10)


def test_confound_regression_identity(data):
    """Without standardization, the result is the residual of a least-squares fit."""
    signals, confounds = data
    ours = clean(signals, confounds=confounds, standardize=None, standardize_confounds=False)
    design = confounds
    beta, *_ = np.linalg.lstsq(design, signals, rcond=None)
    np.testing.assert_allclose(ours, signals - design @ beta, atol=1e-9)
    # With standardized confounds the mean is kept, and the residual is
    # orthogonal to the centred confounds.
    kept = clean(signals, confounds=confounds, standardize=None)
    np.testing.assert_allclose(kept.mean(axis=0), signals.mean(axis=0), atol=1e-9)
    centred = confounds - confounds.mean(axis=0)
    np.testing.assert_allclose(centred.T @ (kept - kept.mean(axis=0)), 0, atol=1e-8)


def test_zscore_variants(data):
    signals, _ = data
    sample = clean(signals, standardize="zscore_sample")
    np.testing.assert_allclose(sample.std(axis=0, ddof=1), 1.0)
    np.testing.assert_allclose(sample.mean(axis=0), 0.0, atol=1e-12)
    population = clean(signals, standardize="zscore")
    np.testing.assert_allclose(population.std(axis=0), 1.0)
    np.testing.assert_allclose(population, sample * np.sqrt(N / (N - 1)))
    with pytest.warns(FutureWarning, match="zscore_sample"):
        as_true = clean(signals, standardize=True)
    np.testing.assert_array_equal(as_true, sample)
    np.testing.assert_array_equal(clean(signals, standardize=False), clean(signals, standardize=None))
    np.testing.assert_allclose(sample, _nilearn_clean(signals, standardize="zscore_sample"), atol=TOL)


def test_confounds_input_forms(data, tmp_path):
    signals, confounds = data
    ref = _nilearn_clean(signals, confounds=confounds, detrend=True)
    header = tmp_path / "conf_header.tsv"
    pd.DataFrame(confounds, columns=["a", "b", "c"]).to_csv(header, sep="\t", index=False)
    no_header = tmp_path / "conf.csv"
    np.savetxt(no_header, confounds, delimiter=",")
    spaces = tmp_path / "conf.txt"
    np.savetxt(spaces, confounds, delimiter=" ")
    forms = {
        "array": confounds,
        "dataframe": pd.DataFrame(confounds, columns=["a", "b", "c"]),
        "tsv with header": str(header),
        "csv without header": no_header,
        "space separated": str(spaces),
        "list": [confounds[:, 0], pd.DataFrame(confounds[:, 1:]), ],
        "list with path": [str(no_header)],
    }
    for name, form in forms.items():
        ours = clean(signals, confounds=form, detrend=True)
        assert np.max(np.abs(ours - ref)) <= TOL, name
    one_d = clean(signals, confounds=confounds[:, 0], detrend=True)
    np.testing.assert_allclose(
        one_d, _nilearn_clean(signals, confounds=confounds[:, 0], detrend=True), atol=TOL
    )
    # The same files given to nilearn give the same result.
    np.testing.assert_allclose(
        clean(signals, confounds=str(header)), _nilearn_clean(signals, confounds=str(header)),
        atol=TOL,
    )


def test_collinear_and_constant_confounds(data):
    signals, confounds = data
    extra = np.column_stack([confounds, 2 * confounds[:, 0] - confounds[:, 1], np.ones(N)])
    for std_conf in (True, False):
        np.testing.assert_allclose(
            clean(signals, confounds=extra, standardize_confounds=std_conf),
            _nilearn_clean(signals, confounds=extra, standardize_confounds=std_conf),
            atol=TOL,
        )


@pytest.mark.parametrize("labels", [[0, 1], [1, 0]])
def test_runs_match_nilearn(data, labels):
    signals, confounds = data
    runs = np.repeat(labels, N // 2)
    for kwargs in (
        dict(detrend=True, confounds=confounds),
        dict(detrend=True, confounds=confounds, high_pass=0.01, low_pass=0.1, t_r=2.0),
        dict(
            confounds=confounds,
            sample_mask=[np.r_[0:10, 12:45], np.r_[1:45]],
            low_pass=0.1,
            t_r=2.0,
        ),
    ):
        ours = _ours(signals, runs=runs, **kwargs)
        ref = _nilearn_clean(signals, runs=runs, **kwargs)
        assert ours.shape == ref.shape
        assert np.max(np.abs(ours - ref)) <= TOL, kwargs
    # Each run is cleaned on its own.
    runs = np.repeat([0, 1, 2], N // 3)
    whole = clean(signals, runs=runs, detrend=True)
    np.testing.assert_allclose(whole[30:60], clean(signals[30:60], detrend=True))


@pytest.mark.parametrize("high_pass", [0.01, 0.04])
def test_cosine_filter_matches_nilearn(data, high_pass):
    signals, confounds = data
    for std_conf, conf in ((True, None), (False, confounds), (True, confounds)):
        kwargs = dict(filter="cosine", high_pass=high_pass, t_r=2.0, confounds=conf,
                      standardize_confounds=std_conf, detrend=True, sample_mask=_censor("inner"))
        np.testing.assert_allclose(_ours(signals, **kwargs), _nilearn_clean(signals, **kwargs),
                                   atol=TOL)


def test_cutoff_at_or_above_nyquist_warns_and_matches(data):
    signals, _ = data
    for kwargs in ({"low_pass": 0.25}, {"low_pass": 0.4, "high_pass": 0.01}):
        with pytest.warns(UserWarning, match="Nyquist"):
            ours = clean(signals, t_r=2.0, **kwargs)
        np.testing.assert_allclose(ours, _nilearn_clean(signals, t_r=2.0, **kwargs), atol=TOL)


def test_butterworth_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    sos = sp_signal.butter(5, 0.1 / 0.25, btype="lowpass", output="sos")
    np.testing.assert_allclose(
        butterworth(x, 0.5, low_pass=0.1), sp_signal.sosfiltfilt(sos, x, axis=0), atol=1e-12
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nilearn_signal.butterworth(x.copy(), 0.5, low_pass=0.1, high_pass=0.02)
    np.testing.assert_allclose(butterworth(x, 0.5, low_pass=0.1, high_pass=0.02), ref, atol=TOL)
    # Frequencies of a pure sine below / above the cut-off.
    t = np.arange(400) * 2.0
    slow, fast = np.sin(2 * np.pi * 0.01 * t), np.sin(2 * np.pi * 0.2 * t)
    out = butterworth(np.column_stack([slow, fast]), 0.5, low_pass=0.1)
    assert np.abs(out[50:-50, 0] - slow[50:-50]).max() < 0.02
    assert np.abs(out[50:-50, 1]).max() < 0.02


def test_constant_signal_gives_zeros_and_warning(data):
    signals, confounds = data
    x = signals.copy()
    x[:, 2] = 7.25
    for kwargs in ({}, {"detrend": True}, {"confounds": confounds, "low_pass": 0.1, "t_r": 2.0}):
        with pytest.warns(DataWarning, match="constant"):
            out = clean(x, **kwargs)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[:, 2], 0.0)
        np.testing.assert_allclose(np.delete(out, 2, axis=1),
                                   _nilearn_clean(signals, **kwargs)[:, [0, 1, 3, 4, 5]], atol=TOL)
    zero = signals.copy()
    zero[:, 0] = 0.0
    with pytest.warns(DataWarning, match="zero mean"):
        out = clean(zero, standardize="psc")
    np.testing.assert_array_equal(out[:, 0], 0.0)
    with pytest.warns(DataWarning, match="single time point"):
        single = clean(signals[:1])
    np.testing.assert_array_equal(single, signals[:1])


def test_nan_confounds_error_names_columns_and_rows(data):
    signals, confounds = data
    bad = pd.DataFrame(confounds, columns=["trans_x", "csf", "framewise_displacement"])
    bad.loc[0, "framewise_displacement"] = np.nan
    bad.loc[[3, 17], "csf"] = np.inf
    with pytest.raises(ConfoundsError) as info:
        clean(signals, confounds=bad)
    message = str(info.value)
    assert "'csf' (rows 3, 17)" in message
    assert "'framewise_displacement' (rows 0)" in message
    assert "trans_x" not in message
    assert "sparse_connectome.confounds.load_confounds" in message
    # Arrays: columns are named by index; lists by position and column.
    array = confounds.copy()
    array[5, 1] = np.nan
    with pytest.raises(ConfoundsError, match=r"'1' \(rows 5\)"):
        clean(signals, confounds=array)
    with pytest.raises(ConfoundsError, match=r"confounds\[1\]:1' \(rows 5\)"):
        clean(signals, confounds=[confounds, array])


def test_shape_mismatch_error(data):
    signals, confounds = data
    with pytest.raises(ShapeMismatchError, match=r"80 rows .* 90 time points"):
        clean(signals, confounds=confounds[:80])
    with pytest.raises(ShapeMismatchError, match="90"):
        clean(signals, runs=np.zeros(80))
    with pytest.raises(ShapeMismatchError, match="length 80"):
        clean(signals, sample_mask=np.ones(80, dtype=bool))
    with pytest.raises(ShapeMismatchError, match="one per run"):
        clean(signals, runs=np.repeat([0, 1], 45), sample_mask=np.arange(10))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"standardize": "zscore_foo"}, "standardize"),
        ({"low_pass": 0.1}, "t_r"),
        ({"high_pass": 0.1, "low_pass": 0.05, "t_r": 2.0}, "high_pass"),
        ({"low_pass": -0.1, "t_r": 2.0}, "low_pass"),
        ({"high_pass": 0.0, "t_r": 2.0}, "high_pass"),
        ({"filter": "gaussian"}, "filter"),
        ({"low_pass": 0.1, "t_r": -2.0}, "t_r"),
        ({"low_pass": 0.1, "t_r": 2.0, "butterworth_order": 0}, "butterworth_order"),
        ({"filter": "cosine", "high_pass": 0.01}, "t_r"),
    ],
)
def test_parameter_errors(data, kwargs, name):
    signals, _ = data
    with pytest.raises(ParameterError, match=name):
        clean(signals, **kwargs)


def test_input_errors(data):
    signals, confounds = data
    with pytest.raises(InputError, match="outside"):
        clean(signals, sample_mask=np.array([0, 5, 200]))
    with pytest.raises(InputError, match="every volume"):
        clean(signals, sample_mask=np.zeros(N, dtype=bool))
    with pytest.raises(InputError, match="padlen|pads"):
        clean(signals[:20], low_pass=0.1, high_pass=0.01, t_r=2.0)
    with pytest.raises(InputError, match="2D"):
        clean(np.zeros((4, 3, 2)))
    with pytest.raises(InputError, match="real"):
        clean(signals.astype(complex))
    with pytest.raises(ConfoundsError, match="does not exist"):
        clean(signals, confounds="/no/such/confounds.tsv")
    with pytest.raises(ConfoundsError, match="1D or 2D"):
        clean(signals, confounds=np.zeros((N, 2, 2)))
    with pytest.warns(UserWarning, match="no filtering"):
        out = clean(signals, filter=None, low_pass=0.1, t_r=2.0)
    np.testing.assert_array_equal(out, clean(signals))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.int32, np.int64])
def test_output_dtype_follows_nilearn(data, dtype):
    signals, confounds = data
    x = signals.astype(dtype)
    ours = clean(x, confounds=confounds, low_pass=0.1, t_r=2.0)
    ref = _nilearn_clean(x, confounds=confounds, low_pass=0.1, t_r=2.0)
    assert ours.dtype == ref.dtype
    # float32 output: nilearn computes in float32, we in float64.
    tol = TOL if ours.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(ours, ref, atol=tol)


def test_ensure_finite_and_no_mutation(data):
    signals, confounds = data
    x = signals.copy()
    x[3, 1] = np.nan
    x[7, 4] = np.inf
    before = x.copy()
    ours = clean(x, ensure_finite=True, confounds=confounds, detrend=True)
    np.testing.assert_array_equal(x, before)  # input untouched
    np.testing.assert_allclose(
        ours, _nilearn_clean(x, ensure_finite=True, confounds=confounds, detrend=True), atol=TOL
    )


def test_one_dimensional_signal(data):
    signals, _ = data
    out = clean(signals[:, 0], detrend=True)
    assert out.shape == (N,)
    np.testing.assert_allclose(out, clean(signals[:, :1], detrend=True)[:, 0])


def test_load_confounds_matrix_reports_names(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("a\tb\n1\t2\n3\tn/a\n")
    with pytest.raises(ConfoundsError, match=r"'b' \(rows 1\)"):
        load_confounds_matrix(str(path), 2)
    matrix, names = load_confounds_matrix([np.zeros(2), np.ones((2, 2))], 2)
    assert matrix.shape == (2, 3)
    assert names == ["confounds[0]:0", "confounds[1]:0", "confounds[1]:1"]
    assert load_confounds_matrix(None) == (None, [])


@pytest.mark.parametrize("sep", ["\t", ",", ";", " "])
def test_confounds_file_reads_as_pandas_does(tmp_path, sep):
    # Oracle: pandas.read_csv, which the reader replaced (pandas costs 0.17 s to import).
    rng = np.random.default_rng(4)
    table = pd.DataFrame(rng.standard_normal((30, 5)) * 10.0 ** rng.integers(-8, 8, 5),
                         columns=["trans_x", "rot_y", "csf", "white_matter", "cosine00"])
    for header in (True, False):
        path = tmp_path / f"c{header}.txt"
        text = table.to_csv(sep=sep, index=False, header=header, float_format="%.17g")
        path.write_text(("\n\n" if header else "") + text + "\n")  # blank lines are skipped
        values, names = read_confounds_file(path)
        expected = pd.read_csv(path, sep=r"\s+" if sep == " " else sep,
                               header=0 if header else None).to_numpy()
        # Ours is correctly rounded; pandas < 3 parsed within an ulp by default.
        np.testing.assert_allclose(values, expected, rtol=4e-16, atol=0)
        assert names == (list(table.columns) if header else [str(j) for j in range(5)])
    # Quoted CSV fields, missing cells of several spellings, and a header of numbers' look.
    path = tmp_path / "quoted.csv"
    path.write_text('"a","b,c"\n"1.5",n/a\n2,\nNaN,3e-2\n')
    values, names = read_confounds_file(path)
    assert names == ["a", "b,c"]
    np.testing.assert_array_equal(values, [[1.5, np.nan], [2.0, np.nan], [np.nan, 0.03]])
    # A line of separators is a row of missing values, not a blank line to skip: the
    # rows stay aligned with the volumes, and the NaN is reported.
    path.write_text("a\tb\n1\t2\n\t\n3\t4\n")
    values, _ = read_confounds_file(path)
    assert values.shape == (3, 2) and np.isnan(values[1]).all()
    # One-character cells and an empty one: the missing value is not cut to "n".
    path.write_text("1\t2\n3\t\n")
    np.testing.assert_array_equal(read_confounds_file(path)[0], [[1.0, 2.0], [3.0, np.nan]])
    # A byte-order mark (spreadsheet exports) does not make the first row a header.
    path.write_bytes(b"\xef\xbb\xbf1.5,2\r\n3,4\r\n")
    values, names = read_confounds_file(path)
    np.testing.assert_array_equal(values, [[1.5, 2.0], [3.0, 4.0]])
    assert names == ["0", "1"]


def test_confounds_file_errors_name_the_line_and_columns(tmp_path):
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("a\tb\n1\t2\n3\t4\t5\n")
    with pytest.raises(ConfoundsError, match=r"ragged.tsv.*line 3 has 3 fields; expected 2"):
        read_confounds_file(ragged)
    words = tmp_path / "words.tsv"
    words.write_text("a\tb\tc\n1\tx\t2\n3\t4\tlow\n")
    with pytest.raises(ConfoundsError, match=r"non-numeric column\(s\) \['b', 'c'\]"):
        read_confounds_file(words)
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n \n")
    with pytest.raises(ConfoundsError, match="is empty"):
        read_confounds_file(empty)
    header_only = tmp_path / "header.tsv"
    header_only.write_text("a\tb\n")
    values, names = read_confounds_file(header_only)
    assert values.shape == (0, 2) and names == ["a", "b"]


def test_cleaning_does_not_import_pandas(tmp_path):
    # The seed's flow reads a TSV of confounds; pandas would add 0.17 s to it.
    path = tmp_path / "c.tsv"
    np.savetxt(path, np.random.default_rng(0).standard_normal((20, 2)), delimiter="\t",
               header="a\tb", comments="")
    code = ("import sys, numpy as np\n"
            "from sparse_connectome.signal import clean\n"
            f"clean(np.random.default_rng(1).standard_normal((20, 3)), confounds={str(path)!r})\n"
            "import sparse_connectome.maskers\n"
            "assert 'pandas' not in sys.modules, 'pandas was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
