"""Atlases by name, labels atlases with their tables, and the masker chosen by kind.

- names: parsed (good and bad), fetched through the ``datasets`` fetchers (here
  monkeypatched: no network), simulated offline for ``demo`` and ``cohort --demo``;
- labels tables (BIDS ``_dseg.tsv`` or CSV): gaps in the label values, the table's
  order kept, and every broken rule a named AtlasError;
- a labels atlas end to end on the demo subject: the time series are those of a direct
  NiftiLabelsMasker extraction (ours exactly, nilearn's to 1e-6), reordered to the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sparse_connectome.cli import main
from sparse_connectome.errors import AtlasError
from sparse_connectome.pipeline import (
    parse_atlas_name,
    resolve_atlas,
    run_connectome,
    simulated_demo_atlas,
)

FAST = ["--alphas", "0.2,0.4", "--cv", "3"]  # a short fixed grid: same code, fewer fits


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fast_estimator():
    from sparse_connectome.covariance import GraphicalLassoCV

    return GraphicalLassoCV(alphas=[0.2, 0.4], cv=3)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, family, kind, n, label", [
    ("msdl", "msdl", "maps", 39, "msdl"),
    ("schaefer-100-7", "schaefer", "labels", 100, "schaefer100x7"),
    ("Schaefer-1000-17-1mm", "schaefer", "labels", 1000, "schaefer1000x17"),
    ("difumo-64", "difumo", "maps", 64, "difumo64"),
    ("difumo-1024-3mm", "difumo", "maps", 1024, "difumo1024"),
    ("harvard-oxford", "harvard-oxford", "labels", 48, "harvardoxford"),
    ("harvard-oxford-sub-maxprob-thr25-2mm", "harvard-oxford", "labels", 21,
     "harvardoxfordsubmaxprobthr25"),
    ("harvard-oxford-cort-prob-2mm", "harvard-oxford", "maps", 48, "harvardoxfordcortprob"),
])
def test_good_names(name, family, kind, n, label):
    spec = parse_atlas_name(name)
    assert (spec.family, spec.kind, spec.n_regions, spec.label) == (family, kind, n, label)


def test_name_parameters():
    assert parse_atlas_name("schaefer-400-17-1mm").fetch_params == {
        "n_rois": 400, "yeo_networks": 17, "resolution_mm": 1}
    assert parse_atlas_name("difumo-256").fetch_params == {"dimension": 256, "resolution_mm": 2}
    assert parse_atlas_name("harvard-oxford-cortl-maxprob-thr50-1mm").fetch_params == {
        "atlas_name": "cortl-maxprob-thr50-1mm"}


@pytest.mark.parametrize("name", ["schaefer-150-7", "schaefer-100-8", "schaefer-100-7-3mm",
                                  "difumo-100", "difumo-64-1mm", "harvard-oxford-foo",
                                  "harvard-oxford-cort-maxprob-thr30-2mm", "aal", "schaefer"])
def test_bad_names(name):
    with pytest.raises(AtlasError) as caught:
        parse_atlas_name(name)
    message = str(caught.value)
    assert repr(name) in message and "schaefer-<n>-<k>" in message and "difumo-<d>" in message


# --------------------------------------------------------------------------- labels tables


@pytest.fixture(scope="module")
def gapped(tmp_path_factory) -> Path:
    """A 3D labels image with values 1, 2, 5, 9 (gaps), 2 mm voxels."""
    data = np.zeros((8, 8, 8), dtype=np.int16)
    data[:4, :4] = 1
    data[4:, :4] = 2
    data[:4, 4:] = 5
    data[4:, 4:, :4] = 9
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -8
    path = tmp_path_factory.mktemp("labels") / "atlas_dseg.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _table(folder: Path, rows, name="atlas_dseg.tsv", sep="\t", columns=("index", "name")) -> Path:
    path = folder / name
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep=sep, index=False)
    return path


@pytest.mark.parametrize("name, sep", [("atlas_dseg.tsv", "\t"), ("atlas.csv", ",")])
def test_table_order_and_gaps(gapped, tmp_path, name, sep):
    table = _table(tmp_path, [(9, "nine"), (1, "one"), (5, "five"), (2, "two")], name, sep)
    info = resolve_atlas(str(gapped), labels=table)
    assert info.kind == "labels"
    assert info.indices == [9, 1, 5, 2]
    assert info.labels == ["nine", "one", "five", "two"]
    assert info.region_coords.shape == (4, 3)
    # Region 9 lies at x > 0, region 1 at x < 0: the coordinates follow the table's rows.
    assert info.region_coords[0, 0] > 0 > info.region_coords[1, 0]
    assert info.files["labels"] == str(table)


def test_background_row_network_and_coords(gapped, tmp_path):
    path = tmp_path / "atlas_dseg.tsv"
    path.write_text("index\tname\tnetwork\tx\ty\tz\n0\tBackground\tn/a\t0\t0\t0\n"
                    "2\tb\tVis\t1\t2\t3\n1\ta\tVis\t4\t5\t6\n9\td\tDMN\t7\t8\t9\n5\tc\tDMN\t1\t1\t1\n")
    info = resolve_atlas(str(gapped), labels=path)
    assert info.indices == [2, 1, 9, 5] and info.labels == ["b", "a", "d", "c"]
    assert info.networks == ["Vis", "Vis", "DMN", "DMN"]
    np.testing.assert_array_equal(info.region_coords[0], [1, 2, 3])


def test_no_table_and_names_only(gapped, tmp_path):
    info = resolve_atlas(str(gapped))
    assert info.kind == "labels" and info.labels == ["region_1", "region_2", "region_5", "region_9"]
    names_only = _table(tmp_path, [("a",), ("b",), ("c",), ("d",)], "names.csv", ",", ("name",))
    assert resolve_atlas(str(gapped), labels=names_only).indices == [1, 2, 5, 9]
    assert resolve_atlas(str(gapped), labels=["w", "x", "y", "z"]).labels == ["w", "x", "y", "z"]


def test_float_stored_integer_labels_and_4d_maps(gapped, tmp_path):
    img = nib.load(gapped)
    as_float = tmp_path / "float_labels.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine), as_float)
    assert resolve_atlas(str(as_float)).kind == "labels"
    maps = np.stack([np.asarray(img.dataobj) == v for v in (1, 2, 5)], axis=-1).astype(np.float32)
    path = tmp_path / "maps.nii.gz"
    nib.save(nib.Nifti1Image(maps * 0.7, img.affine), path)
    info = resolve_atlas(str(path))
    assert info.kind == "maps" and info.indices is None and len(info.labels) == 3


@pytest.mark.parametrize("rows, words", [
    ([(1, "a"), (2, "b"), (5, "c"), (9, "d"), (7, "e")], ["index 7 ('e')", "not found in the atlas image"]),
    ([(1, "a"), (2, "b"), (5, "c")], ["label value(s) [9]", "does not list"]),
    ([(1, "a"), (2, "b"), (5, "c"), (5, "d")], ["index values [5]", "more than once"]),
    ([(1, "a"), (2, "b"), (5, "c"), (9, "a")], ["region names ['a']", "more than once"]),
    ([(1, "a"), (2, "b"), (5.5, "c"), (9, "d")], ["'index' on line 4", "'5.5'", "integer"]),
    ([(1, "a"), ("two", "b"), (5, "c"), (9, "d")], ["'index' on line 3", "'two'"]),
    ([(1, "a"), (-2, "b"), (5, "c"), (9, "d")], ["[-2]", "negative"]),
])
def test_table_errors(gapped, tmp_path, rows, words):
    table = _table(tmp_path, rows)
    with pytest.raises(AtlasError) as caught:
        resolve_atlas(str(gapped), labels=table)
    message = str(caught.value)
    assert "atlas_dseg" in message, message
    for word in words:
        assert word in message, message


def test_names_count_and_single_region(gapped, tmp_path):
    short = _table(tmp_path, [("a",), ("b",)], "names.csv", ",", ("name",))
    with pytest.raises(AtlasError, match=r"found 2 names for the 4 labels"):
        resolve_atlas(str(gapped), labels=short)
    one = tmp_path / "one.nii.gz"
    img = nib.load(gapped)
    nib.save(nib.Nifti1Image((np.asarray(img.dataobj) == 1).astype(np.int16), img.affine), one)
    with pytest.raises(AtlasError, match=r"one.nii.gz.*1 region.*at least 2"):
        resolve_atlas(str(one))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def demo_labels(demo, tmp_path_factory):
    """A simulated 100-parcel labels atlas on the demo grid, its table shuffled."""
    from sparse_connectome.simulate.atlases import simulate_labels_atlas

    mask_img = nib.load(demo.mask)
    atlas = simulate_labels_atlas(100, mask=np.asarray(mask_img.dataobj) > 0,
                                  affine=mask_img.affine, random_state=1)
    folder = tmp_path_factory.mktemp("demo_labels")
    image = folder / "sim_dseg.nii.gz"
    nib.save(atlas.maps, image)
    order = np.random.default_rng(0).permutation(100)
    table = folder / "sim_dseg.tsv"
    pd.DataFrame({"index": np.asarray(atlas.indices)[order],
                  "name": np.asarray(atlas.labels)[order]}).to_csv(table, sep="\t", index=False)
    return image, table, [atlas.indices[k] for k in order], [atlas.labels[k] for k in order]


def test_labels_atlas_end_to_end(demo, demo_labels):
    from nilearn.maskers import NiftiLabelsMasker as NilearnLabelsMasker

    from sparse_connectome.maskers import NiftiLabelsMasker

    image, table, indices, names = demo_labels
    result = run_connectome(demo.func[0], str(image), demo.confounds[0], labels=table,
                            estimator=_fast_estimator(), verbose=0)
    assert result.labels == names and result.time_series.shape == (168, 100)
    masker = NiftiLabelsMasker(str(image), standardize="zscore_sample", t_r=demo.t_r)
    direct = masker.fit_transform(demo.func[0], confounds=demo.confounds[0])
    column = {v: k for k, v in masker.region_ids_.items() if k != "background"}
    np.testing.assert_array_equal(result.time_series, direct[:, [column[v] for v in indices]])
    # The oracle on the raw region means (nilearn computes in float32): same regions, same order.
    ours = NiftiLabelsMasker(str(image)).fit_transform(demo.func[0])
    oracle = NilearnLabelsMasker(str(image), standardize=None)
    expected = oracle.fit_transform(demo.func[0])
    ids = [int(v) for k, v in oracle.region_ids_.items() if k != "background"]
    np.testing.assert_allclose(ours[:, [column[v] for v in indices]],
                               expected[:, [ids.index(v) for v in indices]], rtol=1e-5)
    meta = result.metadata
    assert meta["atlas"]["kind"] == "labels" and meta["atlas"]["indices"] == indices
    assert meta["atlas"]["files"]["maps"]["sha256"] and meta["atlas"]["files"]["labels"]["sha256"]
    assert meta["inputs"]["atlas"] == {"name": None, "kind": "labels"}


def test_region_lost_on_the_bold_grid(demo, tmp_path):
    # A 2 mm atlas whose region 3 is one voxel that no 4 mm voxel centre falls in.
    mask = nib.load(demo.mask)
    affine = mask.affine.copy()
    affine[:3, :3] /= 2
    data = np.zeros((100, 118, 100), dtype=np.int16)
    data[30:50, 40:80, 40:60] = 1
    data[50:70, 40:80, 40:60] = 2
    data[51, 81, 41] = 3
    path = tmp_path / "fine_dseg.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    with pytest.raises(AtlasError, match=r"region\(s\) 'region_3' \(label 3\) have no voxel"):
        run_connectome(demo.func[0], str(path), demo.confounds[0], verbose=0)


# --------------------------------------------------------------------------- offline names


def test_simulated_demo_atlas_is_cached_and_deterministic(tmp_path):
    first = simulated_demo_atlas("schaefer-100-7", tmp_path / "a")
    again = simulated_demo_atlas("schaefer-100-7", tmp_path / "a")
    other = simulated_demo_atlas("schaefer-100-7", tmp_path / "b")
    assert Path(first.maps).read_bytes() == Path(other.maps).read_bytes()
    assert first.labels == again.labels and first.indices == list(range(1, 101))
    np.testing.assert_array_equal(first.region_coords, again.region_coords)
    ho = simulated_demo_atlas("harvard-oxford", tmp_path / "a")
    assert ho.kind == "labels" and len(ho.labels) == 48 and ho.networks is None


@pytest.mark.parametrize("name, n", [("schaefer-100-7", 100), ("difumo-64", 64)])
def test_demo_with_an_atlas_name(capsys, demo_dir, tmp_path, name, n):
    out = tmp_path / "out"
    code, stdout, stderr = _cli(capsys, "demo", "--atlas", name, "--out", out, "--data-dir",
                                demo_dir, "--quiet", *FAST)
    assert code == 0, stderr
    assert f"regions: {n}" in stdout and "ground-truth recovery" not in stdout
    assert pd.read_csv(out / "timeseries.tsv", sep="\t").shape[1] == n
    meta = json.loads((out / "connectome.json").read_text())
    assert meta["atlas"]["name"] == name
    assert meta["ground_truth_recovery"] is None
    assert meta["summary"]["ground_truth_recovery"].startswith("not computed")
    assert "not computed" in (out / "report.html").read_text()


@pytest.mark.parametrize("argv, words", [
    (["demo", "--atlas", "schaefer-150-7"], ["'schaefer-150-7'", "schaefer-<n>-<k>"]),
    (["run", "--func", "{func}", "--atlas", "difumo-100"], ["'difumo-100'", "difumo-<d>"]),
    (["run", "--func", "{func}", "--atlas", "{image}", "--labels", "{bad}"],
     ["bad_dseg.tsv", "label value(s) [9]"]),
])
def test_cli_errors_are_one_line(capsys, demo, demo_dir, gapped, tmp_path, argv, words):
    bad = _table(tmp_path, [(1, "a"), (2, "b"), (5, "c")], "bad_dseg.tsv")
    out = tmp_path / "out"
    argv = [a.format(func=demo.func[0], image=gapped, bad=bad) for a in argv]
    extra = ["--data-dir", str(demo_dir)] if argv[0] == "demo" else []
    code, _, stderr = _cli(capsys, *argv, *extra, "--out", out)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()


def test_cohort_demo_with_an_unknown_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_CONNECTOME_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    code, _, stderr = _cli(capsys, "cohort", "--demo", "2", out, "--atlas", "schaefer-100")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "'schaefer-100'" in stderr
    assert not out.exists() and not (tmp_path / "data").exists()


@pytest.mark.slow  # ~40 s: writes a 2-subject demo cohort (~13 s) and runs it on a Dask cluster
def test_cohort_demo_with_a_labels_atlas(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_CONNECTOME_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    code, stdout, stderr = _cli(capsys, "cohort", "--demo", "2", out, "--atlas", "schaefer-100-7",
                                "--no-reports", "--n-workers", "1", "--quiet", *FAST)
    assert code == 0, stderr
    folder = out / "atlases" / "atlas-schaefer100x7"
    assert (folder / "atlas-schaefer100x7_dseg.nii.gz").is_file()
    table = pd.read_csv(folder / "atlas-schaefer100x7_dseg.tsv", sep="\t")
    assert list(table.columns) == ["index", "name", "network", "x", "y", "z"]
    assert table["index"].tolist() == list(range(1, 101))
    series = sorted(out.glob("sub-*/func/*_atlas-schaefer100x7_timeseries.tsv"))
    assert len(series) == 2
    assert list(pd.read_csv(series[0], sep="\t").columns) == table["name"].tolist()
    sidecar = next(out.glob("sub-*/func/*_atlas-schaefer100x7_stat-precision_relmat.json"))
    record = json.loads(sidecar.read_text())["SparseConnectome"]
    assert record["atlas"]["name"] == "schaefer-100-7" and record["atlas"]["kind"] == "labels"


# --------------------------------------------------------------------------- online, mocked


@pytest.fixture()
def fake_fetchers(monkeypatch, tmp_path):
    """The datasets fetchers replaced by simulated atlases on the demo grid (no network)."""
    from sparse_connectome import datasets

    calls = []

    def schaefer(n_rois=400, yeo_networks=7, resolution_mm=2, data_dir=None, **kwargs):
        calls.append(("schaefer", n_rois, yeo_networks, resolution_mm))
        atlas = simulated_demo_atlas(f"schaefer-{n_rois}-{yeo_networks}", tmp_path / "fetched")
        return {k: atlas[k] for k in ("maps", "labels", "indices", "networks", "region_coords",
                                      "kind")}

    def difumo(dimension=64, resolution_mm=2, data_dir=None, **kwargs):
        calls.append(("difumo", dimension, resolution_mm))
        atlas = simulated_demo_atlas(f"difumo-{dimension}", tmp_path / "fetched")
        return {k: atlas[k] for k in ("maps", "labels", "indices", "networks", "region_coords",
                                      "kind")}

    def harvard_oxford(atlas_name="cort-maxprob-thr25-2mm", data_dir=None, **kwargs):
        calls.append(("harvard-oxford", atlas_name))
        atlas = simulated_demo_atlas("harvard-oxford", tmp_path / "fetched")
        return {k: atlas[k] for k in ("maps", "labels", "indices", "networks", "region_coords",
                                      "kind")}

    monkeypatch.setattr(datasets, "fetch_atlas_schaefer_2018", schaefer, raising=False)
    monkeypatch.setattr(datasets, "fetch_atlas_difumo", difumo, raising=False)
    monkeypatch.setattr(datasets, "fetch_atlas_harvard_oxford", harvard_oxford, raising=False)
    return calls


def test_named_atlases_online(fake_fetchers, demo, capsys, tmp_path):
    info = resolve_atlas("schaefer-100-17-1mm")
    assert info.name == "schaefer-100-17-1mm" and info.kind == "labels" and len(info.labels) == 100
    assert resolve_atlas("harvard-oxford").kind == "labels"
    assert fake_fetchers == [("schaefer", 100, 17, 1), ("harvard-oxford", "cort-maxprob-thr25-2mm")]
    result = run_connectome(demo.func[0], "difumo-64", demo.confounds[0],
                            estimator=_fast_estimator(), verbose=0)
    assert result.time_series.shape == (168, 64) and result.metadata["atlas"]["kind"] == "maps"
    assert result.metadata["atlas"]["name"] == "difumo-64"
    code, stdout, stderr = _cli(capsys, "fetch", "difumo-64-3mm", "--data-dir", tmp_path)
    assert code == 0, stderr
    assert "kind: maps" in stdout and "regions: 64" in stdout
    assert fake_fetchers[-1] == ("difumo", 64, 3)
    code, _, stderr = _cli(capsys, "fetch", "yeo-7")
    assert code == 2 and "'yeo-7'" in stderr and "development-fmri" in stderr
