"""Schaefer 2018, DiFuMo and Harvard-Oxford fetchers, over HTTP against a local server.

The fixtures mimic each atlas' published layout (file names, archive structure,
label files) on a small grid (20 x 24 x 20 voxels of 2 mm): regions are 2-voxel
cubes on a lattice, each within one hemisphere, so that the coordinate of
region k is known exactly (the centre of its cube).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import sparse_connectome.plotting as plotting
from _fetch_server import FixtureServer
from sparse_connectome import datasets
from sparse_connectome.datasets import fetchers
from sparse_connectome.datasets._archives import extract_tar_safely
from sparse_connectome.datasets._atlas_files import read_difumo_labels
from sparse_connectome.errors import AtlasError, DownloadError, ParameterError

pytestmark = pytest.mark.timeout(60)

SHAPE = (20, 24, 20)
# x = 2 i - 19: voxels i <= 9 are left (x < 0), i >= 10 right.
AFFINE = np.array([[2.0, 0, 0, -19], [0, 2.0, 0, -23], [0, 0, 2.0, -17], [0, 0, 0, 1]])


def _corners(n: int) -> list[tuple[int, int, int]]:
    """Lower corners of n 2-voxel cubes, a voxel apart, none straddling x = 0."""
    xs = (0, 3, 6, 10, 13, 16)
    out = [(x, y, z) for z in range(0, 19, 3) for y in range(0, 23, 3) for x in xs]
    assert len(out) >= n
    return out[:n]


def _centres(n: int) -> np.ndarray:
    """World coordinates of the cube centres: the exact expected region_coords."""
    vox = np.array(_corners(n), dtype=float) + 0.5
    return nib.affines.apply_affine(AFFINE, vox)


def _gz_nifti(data: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm")
    return gzip.compress(img.to_bytes(), mtime=0)


def _labels_nii(values: list[int]) -> bytes:
    data = np.zeros(SHAPE, dtype=np.int16)
    for value, (x, y, z) in zip(values, _corners(len(values))):
        data[x:x + 2, y:y + 2, z:z + 2] = value
    return _gz_nifti(data)


def _maps_nii(n: int) -> bytes:
    data = np.zeros(SHAPE + (n,), dtype=np.float32)
    for k, (x, y, z) in enumerate(_corners(n)):
        data[x:x + 2, y:y + 2, z:z + 2, k] = 0.5 + 0.001 * k
    return _gz_nifti(data)


def _zip_bytes(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
                linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_300_000_000
    return info, data


def _tgz_bytes(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


# ------------------------------------------------------------------- Schaefer fixture

SCHAEFER_NETS = ["Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default"]
SCHAEFER_STEM = "Schaefer2018_100Parcels_7Networks_order"
SCHAEFER_IMG = f"/schaefer/{SCHAEFER_STEM}_FSLMNI152_2mm.nii.gz"
SCHAEFER_TXT = f"/schaefer/{SCHAEFER_STEM}.txt"


def _schaefer_names(n: int = 100) -> list[str]:
    names = []
    for k, (x, _, _) in enumerate(_corners(n)):
        hemi = "LH" if x < 10 else "RH"
        names.append(f"7Networks_{hemi}_{SCHAEFER_NETS[k % 7]}_{k // 7 + 1}")
    return names


def _schaefer_txt(names: list[str]) -> bytes:
    lines = [f"{k}\t{name}\t{k % 255}\t{(3 * k) % 255}\t{(7 * k) % 255}\t0"
             for k, name in enumerate(names, 1)]
    return ("\n".join(lines) + "\n").encode()


SCHAEFER_NII = _labels_nii(list(range(1, 101)))
SCHAEFER_LABELS = _schaefer_txt(_schaefer_names())

# --------------------------------------------------------------------- DiFuMo fixture

DIFUMO_PATH = "/pqu9r/download"


def _difumo_csv(n: int = 64, with_yeo7: bool = True) -> bytes:
    table = pd.DataFrame({
        "Component": np.arange(1, n + 1),
        "Difumo_names": [f"Mode {k}" for k in range(1, n + 1)],
        "Yeo_networks7": [f"Net7_{k % 7}" for k in range(1, n + 1)],
        "Yeo_networks17": [f"Net17_{k % 17}" for k in range(1, n + 1)],
        "GM": np.linspace(0, 1, n).round(3), "WM": 0.1, "CSF": 0.0,
    })
    if not with_yeo7:
        table = table.drop(columns="Yeo_networks7")
    # Rows shuffled: the order is the components', not the file's.
    return table.sample(frac=1.0, random_state=0).to_csv(index=False).encode()


DIFUMO_MAPS = _maps_nii(64)
DIFUMO_ZIP = _zip_bytes([
    ("64/2mm/maps.nii.gz", DIFUMO_MAPS),
    ("64/3mm/maps.nii.gz", DIFUMO_MAPS),
    ("64/labels_64_dictionary.csv", _difumo_csv()),
])

# ------------------------------------------------------------- Harvard-Oxford fixture

HO_CORT = ["Frontal Pole", "Insular Cortex", "Superior Frontal Gyrus",
           "Middle Frontal Gyrus", "Inferior Frontal Gyrus, pars triangularis",
           "Precentral Gyrus", "Temporal Pole", "Heschl's Gyrus (includes H1 and H2)",
           "Cingulate Gyrus, anterior division", "Occipital Pole"]
HO_SUB = ["Left Cerebral White Matter", "Left Cerebral Cortex", "Left Lateral Ventricle",
          "Left Thalamus", "Left Caudate", "Right Cerebral White Matter",
          "Right Cerebral Cortex", "Right Lateral Ventricle", "Right Thalamus",
          "Right Caudate"]


def _fsl_xml(title: str, names: list[str], doctype: str = "") -> bytes:
    labels = "\n".join(f'    <label index="{i}" x="{40 + i}" y="60" z="30">{name}</label>'
                       for i, name in enumerate(names))
    text = (f'<?xml version="1.0" encoding="ISO-8859-1"?>\n{doctype}'
            f'<atlas version="1.0">\n  <header>\n    <name>{title}</name>\n'
            "    <type>Probabalistic</type>\n  </header>\n"
            f"  <data>\n{labels}\n  </data>\n</atlas>\n")
    return text.encode("iso-8859-1")


def _ho_members(cort_nii: bytes | None = None, cort_xml: bytes | None = None) -> list:
    ho = "data/atlases/HarvardOxford"
    return [
        _tar_member("data", kind=tarfile.DIRTYPE),
        _tar_member("data/atlases", kind=tarfile.DIRTYPE),
        _tar_member(ho, kind=tarfile.DIRTYPE),
        _tar_member(f"{ho}/HarvardOxford-cort-maxprob-thr25-2mm.nii.gz",
                    _labels_nii(list(range(1, 11))) if cort_nii is None else cort_nii),
        _tar_member(f"{ho}/HarvardOxford-sub-maxprob-thr25-2mm.nii.gz",
                    _labels_nii(list(range(1, 11)))),
        _tar_member(f"{ho}/HarvardOxford-cort-prob-2mm.nii.gz", _maps_nii(10)),
        _tar_member("data/atlases/HarvardOxford-Cortical.xml",
                    _fsl_xml("Harvard-Oxford Cortical Structural Atlas", HO_CORT)
                    if cort_xml is None else cort_xml),
        _tar_member("data/atlases/HarvardOxford-Subcortical.xml",
                    _fsl_xml("Harvard-Oxford Subcortical Structural Atlas", HO_SUB)),
    ]


HO_PATH = "/frs/download.php/9902/HarvardOxford.tgz"
HO_TGZ = _tgz_bytes(_ho_members())


@pytest.fixture()
def server():
    srv = FixtureServer()
    srv.files[SCHAEFER_IMG] = SCHAEFER_NII
    srv.files[SCHAEFER_TXT] = SCHAEFER_LABELS
    srv.files[DIFUMO_PATH] = DIFUMO_ZIP
    srv.files[HO_PATH] = HO_TGZ
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(fetchers, "KNOWN_HASHES", {})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")
                  if p.name.startswith((".extract-", "tmp")) or p.name.endswith(".part"))


def _schaefer(server, tmp_path, **kwargs):
    return datasets.fetch_atlas_schaefer_2018(n_rois=100, data_dir=tmp_path,
                                              base_url=server.url("/schaefer/"), verbose=0,
                                              **kwargs)


def _difumo(server, tmp_path, **kwargs):
    return datasets.fetch_atlas_difumo(dimension=64, data_dir=tmp_path,
                                       url=server.url(DIFUMO_PATH), verbose=0, **kwargs)


def _ho(server, tmp_path, name="cort-maxprob-thr25-2mm"):
    return datasets.fetch_atlas_harvard_oxford(name, data_dir=tmp_path,
                                               url=server.url(HO_PATH), verbose=0)


# --------------------------------------------------------------------------- Schaefer

def test_schaefer_returns_labels_indices_networks_coords(server, tmp_path):
    atlas = _schaefer(server, tmp_path)
    names = _schaefer_names()
    assert Path(atlas.maps) == tmp_path / "schaefer_2018" / f"{SCHAEFER_STEM}_FSLMNI152_2mm.nii.gz"
    assert Path(atlas.maps).read_bytes() == SCHAEFER_NII
    assert atlas.labels == names
    assert atlas.indices == list(range(1, 101))
    assert atlas.networks == [SCHAEFER_NETS[k % 7] for k in range(100)]
    assert atlas.networks[:3] == [n.split("_")[2] for n in names[:3]]
    np.testing.assert_allclose(atlas.region_coords, _centres(100), atol=1e-9)
    assert atlas.kind == "labels" and atlas.atlas_type == "deterministic"
    assert "Schaefer" in atlas.description and atlas["labels"] is atlas.labels
    assert _leftovers(tmp_path) == []


def test_schaefer_records_sha256_and_second_call_makes_no_request(server, tmp_path):
    first = _schaefer(server, tmp_path)
    assert server.count() == 2
    folder = tmp_path / "schaefer_2018"
    meta = json.loads((folder / f".{Path(SCHAEFER_IMG).name}.download.json").read_text())
    assert meta["sha256"] == hashlib.sha256(SCHAEFER_NII).hexdigest()
    second = _schaefer(server, tmp_path)
    assert server.count() == 2
    assert second.labels == first.labels
    np.testing.assert_array_equal(second.region_coords, first.region_coords)
    # A cached file that no longer matches the recorded SHA-256 is fetched again.
    image = Path(first.maps)
    raw = bytearray(image.read_bytes())
    raw[-5] ^= 0xFF
    image.write_bytes(bytes(raw))
    _schaefer(server, tmp_path)
    assert server.count(SCHAEFER_IMG) == 2 and image.read_bytes() == SCHAEFER_NII


def test_schaefer_interrupted_download_resumes(server, tmp_path):
    cut = len(SCHAEFER_NII) // 2
    server.cut_after[SCHAEFER_IMG] = cut
    with pytest.raises(DownloadError, match="interrupted"):
        _schaefer(server, tmp_path)
    atlas = _schaefer(server, tmp_path)
    assert server.ranges(SCHAEFER_IMG) == [None, f"bytes={cut}-"]
    assert Path(atlas.maps).read_bytes() == SCHAEFER_NII
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("broken", ["missing_label", "extra_image_value", "bad_line"])
def test_schaefer_labels_not_matching_image_refused_and_forgotten(server, tmp_path, broken):
    names = _schaefer_names()
    if broken == "missing_label":
        server.files[SCHAEFER_TXT] = _schaefer_txt(names[:99])
        match = "lists 99 parcels"
    elif broken == "extra_image_value":
        server.files[SCHAEFER_IMG] = _labels_nii(list(range(1, 101)) + [101])
        match = "without a label"
    else:
        server.files[SCHAEFER_TXT] = SCHAEFER_LABELS + b"101 no tabs here\n"
        match = "line 101"
    with pytest.raises(AtlasError, match=match) as info:
        _schaefer(server, tmp_path)
    assert "removed" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "schaefer_2018").iterdir()) == []
    # Fixed on the server: the next call downloads both files again.
    server.files[SCHAEFER_TXT], server.files[SCHAEFER_IMG] = SCHAEFER_LABELS, SCHAEFER_NII
    atlas = _schaefer(server, tmp_path)
    assert server.count(SCHAEFER_IMG) == 2 and atlas.labels == names


def test_schaefer_image_of_wrong_dimensionality_refused(server, tmp_path):
    server.files[SCHAEFER_IMG] = _maps_nii(2)
    with pytest.raises(AtlasError, match="expected a 3D image"):
        _schaefer(server, tmp_path)


def test_schaefer_matches_nilearn_on_same_files(server, tmp_path):
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    ours = _schaefer(server, tmp_path)
    ref = nilearn_datasets.fetch_atlas_schaefer_2018(n_rois=100, resolution_mm=2,
                                                     data_dir=tmp_path, verbose=0)
    ref_labels = [lab.decode() if isinstance(lab, bytes) else str(lab) for lab in ref.labels]
    assert ref_labels[-100:] == ours.labels  # nilearn may prepend "Background"
    assert Path(ref.maps) == Path(ours.maps)


# ----------------------------------------------------------------------------- DiFuMo

def test_difumo_returns_maps_labels_networks_coords(server, tmp_path):
    atlas = _difumo(server, tmp_path)
    assert Path(atlas.maps) == tmp_path / "difumo_atlases" / "64" / "2mm" / "maps.nii.gz"
    assert atlas.labels == [f"Mode {k}" for k in range(1, 65)]
    assert atlas.networks == [f"Net7_{k % 7}" for k in range(1, 65)]
    assert atlas.indices is None
    assert atlas.kind == "maps" and atlas.atlas_type == "probabilistic"
    assert atlas.region_coords.shape == (64, 3)
    np.testing.assert_allclose(atlas.region_coords, _centres(64), atol=1e-9)
    assert not (tmp_path / "difumo_atlases" / "DiFuMo_64.zip").exists()
    assert _leftovers(tmp_path) == []
    # The other resolution came in the same archive: no request.
    other = _difumo(server, tmp_path, resolution_mm=3)
    assert server.count() == 1
    assert Path(other.maps).parent.name == "3mm"


def test_difumo_networks17_when_dictionary_lacks_yeo7(tmp_path):
    path = tmp_path / "labels_64_dictionary.csv"
    path.write_bytes(_difumo_csv(with_yeo7=False))
    assert read_difumo_labels(path, 64).networks == [f"Net17_{k % 17}" for k in range(1, 65)]


def test_difumo_coords_cached_by_sha256(server, tmp_path, monkeypatch):
    atlas = _difumo(server, tmp_path)
    maps = Path(atlas.maps)
    cache = maps.with_name(".maps.nii.gz.region_coords.tsv")
    assert f"sha256={hashlib.sha256(DIFUMO_MAPS).hexdigest()}" in cache.read_text()

    def fail(*args, **kwargs):
        raise AssertionError("coordinates computed again")

    original = plotting.find_probabilistic_atlas_cut_coords
    monkeypatch.setattr(plotting, "find_probabilistic_atlas_cut_coords", fail)
    again = _difumo(server, tmp_path)
    assert server.count() == 1
    np.testing.assert_array_equal(again.region_coords, atlas.region_coords)
    maps.write_bytes(DIFUMO_MAPS)  # same bytes, new modification time: hashed again
    _difumo(server, tmp_path)      # same SHA-256: still no computation
    assert f"mtime_ns={maps.stat().st_mtime_ns}" in cache.read_text()  # new stamp kept
    # Another image under the same name (content changed): computed again.
    monkeypatch.setattr(plotting, "find_probabilistic_atlas_cut_coords", original)
    shifted = np.roll(np.asarray(nib.load(maps).dataobj), 1, axis=3)
    nib.save(nib.Nifti1Image(shifted, AFFINE), maps)
    moved = _difumo(server, tmp_path)
    np.testing.assert_allclose(moved.region_coords, np.roll(_centres(64), 1, axis=0))


def test_difumo_interrupted_download_resumes(server, tmp_path):
    cut = len(DIFUMO_ZIP) // 3
    server.cut_after[DIFUMO_PATH] = cut
    with pytest.raises(DownloadError, match="interrupted"):
        _difumo(server, tmp_path)
    assert not (tmp_path / "difumo_atlases" / "64").exists()
    atlas = _difumo(server, tmp_path)
    assert server.ranges(DIFUMO_PATH) == [None, f"bytes={cut}-"]
    assert len(atlas.labels) == 64


@pytest.mark.parametrize("bad", ["not_zip", "truncated", "crc"])
def test_difumo_corrupt_archive_refused_and_not_cached(server, tmp_path, bad):
    if bad == "not_zip":
        body = b"PK\x03\x04 nothing else" * 20
    elif bad == "truncated":
        body = DIFUMO_ZIP[: len(DIFUMO_ZIP) // 2]
    else:
        body = bytearray(DIFUMO_ZIP)
        body[200] ^= 0xFF  # inside the first member's compressed data
        body = bytes(body)
    server.files[DIFUMO_PATH] = body
    with pytest.raises(DownloadError, match="DiFuMo_64.zip"):
        _difumo(server, tmp_path)
    assert sorted(p.name for p in (tmp_path / "difumo_atlases").iterdir()) == []
    server.files[DIFUMO_PATH] = DIFUMO_ZIP
    assert len(_difumo(server, tmp_path).labels) == 64
    assert server.ranges(DIFUMO_PATH) == [None, None]


def test_difumo_archive_without_maps(server, tmp_path):
    server.files[DIFUMO_PATH] = _zip_bytes([("64/labels_64_dictionary.csv", _difumo_csv())])
    with pytest.raises(DownloadError, match="64/2mm/maps.nii.gz"):
        _difumo(server, tmp_path)


@pytest.mark.parametrize("broken", ["fewer_maps", "fewer_rows", "empty_map", "bad_image"])
def test_difumo_labels_not_matching_maps_refused_and_forgotten(server, tmp_path, broken):
    maps, csv = DIFUMO_MAPS, _difumo_csv()
    if broken == "fewer_maps":
        maps, match = _maps_nii(63), "hold 63 maps"
    elif broken == "fewer_rows":
        csv, match = _difumo_csv(63), "lists 63 rows"
    elif broken == "empty_map":
        data = np.asarray(_load_bytes(DIFUMO_MAPS).dataobj).copy()
        data[..., 5] = 0
        maps, match = _gz_nifti(data), "no positive value"
    else:
        maps, match = DIFUMO_MAPS[: len(DIFUMO_MAPS) // 2], "DiFuMo 64"
    server.files[DIFUMO_PATH] = _zip_bytes([("64/2mm/maps.nii.gz", maps),
                                            ("64/labels_64_dictionary.csv", csv)])
    with pytest.raises(AtlasError, match=match) as info:
        _difumo(server, tmp_path)
    assert "removed" in str(info.value)
    assert not (tmp_path / "difumo_atlases" / "64").exists()
    server.files[DIFUMO_PATH] = DIFUMO_ZIP
    assert len(_difumo(server, tmp_path).labels) == 64
    assert server.count(DIFUMO_PATH) == 2


def _load_bytes(gz: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(gz))


# --------------------------------------------------------------------- Harvard-Oxford

def test_harvard_oxford_maxprob_labels_are_index_plus_one(server, tmp_path):
    atlas = _ho(server, tmp_path)
    root = tmp_path / "fsl" / "data" / "atlases"
    assert Path(atlas.maps) == root / "HarvardOxford" / "HarvardOxford-cort-maxprob-thr25-2mm.nii.gz"
    assert atlas.labels == HO_CORT
    assert atlas.indices == list(range(1, 11))
    assert atlas.networks is None and atlas.kind == "labels"
    np.testing.assert_allclose(atlas.region_coords, _centres(10), atol=1e-9)
    assert not (tmp_path / "fsl" / "HarvardOxford.tgz").exists()
    assert _leftovers(tmp_path) == []
    # Every atlas of the tarball is there now: no more requests.
    sub = _ho(server, tmp_path, "sub-maxprob-thr25-2mm")
    prob = _ho(server, tmp_path, "cort-prob-2mm")
    again = _ho(server, tmp_path)
    assert server.count() == 1
    assert sub.labels == HO_SUB and sub.indices == list(range(1, 11))
    assert prob.kind == "maps" and prob.indices is None and prob.labels == HO_CORT
    np.testing.assert_allclose(prob.region_coords, _centres(10), atol=1e-9)
    assert again.labels == atlas.labels


def test_harvard_oxford_matches_nilearn_labels(server, tmp_path):
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    ours = _ho(server, tmp_path)
    ref = nilearn_datasets.fetch_atlas_harvard_oxford("cort-maxprob-thr25-2mm",
                                                      data_dir=tmp_path, verbose=0)
    assert list(ref.labels) == ["Background"] + ours.labels


def test_harvard_oxford_interrupted_download_resumes(server, tmp_path):
    cut = len(HO_TGZ) // 2
    server.cut_after[HO_PATH] = cut
    with pytest.raises(DownloadError, match="interrupted"):
        _ho(server, tmp_path)
    atlas = _ho(server, tmp_path)
    assert server.ranges(HO_PATH) == [None, f"bytes={cut}-"]
    assert atlas.labels == HO_CORT


@pytest.mark.parametrize("bad", ["truncated", "garbage"])
def test_harvard_oxford_bad_tarball_refused_and_not_cached(server, tmp_path, bad):
    server.files[HO_PATH] = HO_TGZ[: len(HO_TGZ) * 2 // 3] if bad == "truncated" else \
        b"\x1f\x8b not really gzip" * 50
    with pytest.raises(DownloadError, match="HarvardOxford.tgz"):
        _ho(server, tmp_path)
    assert sorted(p.name for p in (tmp_path / "fsl").iterdir()) == []
    server.files[HO_PATH] = HO_TGZ
    assert _ho(server, tmp_path).labels == HO_CORT
    assert server.count(HO_PATH) == 2


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink_out", "hardlink_out",
                                  "symlink_absolute", "device"])
def test_harvard_oxford_unsafe_tar_members_refused(server, tmp_path, kind):
    root = tmp_path / "data_root"
    members = _ho_members()
    bad = {
        "dotdot": _tar_member("data/../../../evil.txt", b"pwned"),
        "absolute": _tar_member(str(tmp_path / "evil.txt"), b"pwned"),
        "symlink_out": _tar_member("data/link", kind=tarfile.SYMTYPE,
                                   linkname="../../../evil.txt"),
        "hardlink_out": _tar_member("data/hard", kind=tarfile.LNKTYPE,
                                    linkname="../evil.txt"),
        "symlink_absolute": _tar_member("data/link", kind=tarfile.SYMTYPE,
                                        linkname="/etc/passwd"),
        "device": _tar_member("data/dev", kind=tarfile.CHRTYPE),
    }[kind]
    server.files[HO_PATH] = _tgz_bytes(members + [bad])
    with pytest.raises(DownloadError, match="unsafe member") as info:
        datasets.fetch_atlas_harvard_oxford(data_dir=root, url=server.url(HO_PATH), verbose=0)
    assert repr(bad[0].name) in str(info.value)
    assert "nothing was extracted" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data_root"]
    assert list((root / "fsl").iterdir()) == []


def test_tar_with_inner_links_extracts(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tgz_bytes([
        _tar_member("d/file.txt", b"x"),
        _tar_member("d/link", kind=tarfile.SYMTYPE, linkname="file.txt"),
        _tar_member("d/hard", kind=tarfile.LNKTYPE, linkname="d/file.txt"),
    ]))
    created = extract_tar_safely(archive, tmp_path / "out")
    assert created == [tmp_path / "out" / "d"]
    assert (tmp_path / "out" / "d" / "link").read_bytes() == b"x"
    assert (tmp_path / "out" / "d" / "hard").read_bytes() == b"x"


@pytest.mark.parametrize("xml_kind", ["doctype", "entity", "not_xml", "bad_index"])
def test_harvard_oxford_unsafe_or_bad_xml_refused(server, tmp_path, xml_kind):
    if xml_kind == "doctype":
        xml = _fsl_xml("t", HO_CORT, doctype='<!DOCTYPE atlas SYSTEM "file:///etc/passwd">\n')
        match = "DOCTYPE"
    elif xml_kind == "entity":
        xml = _fsl_xml("t", HO_CORT, doctype='<!DOCTYPE atlas [<!ENTITY a "aaaa">]>\n')
        match = "DOCTYPE or an entity"
    elif xml_kind == "not_xml":
        xml, match = b"<atlas><data><label index='0'>x</data>", "not readable XML"
    else:
        xml, match = _fsl_xml("t", HO_CORT).replace(b'index="3"', b'index="three"'), "'three'"
    server.files[HO_PATH] = _tgz_bytes(_ho_members(cort_xml=xml))
    with pytest.raises(AtlasError, match=match) as info:
        _ho(server, tmp_path)
    assert "HarvardOxford-Cortical.xml" in str(info.value) and "removed" in str(info.value)
    assert not (tmp_path / "fsl" / "data").exists()


def test_harvard_oxford_image_value_without_label_refused(server, tmp_path):
    server.files[HO_PATH] = _tgz_bytes(_ho_members(cort_nii=_labels_nii(list(range(1, 12)))))
    with pytest.raises(AtlasError, match=r"without a label \(e.g. \[11\]\)"):
        _ho(server, tmp_path)
    assert not (tmp_path / "fsl" / "data").exists()


def test_harvard_oxford_label_without_voxel_is_left_out(server, tmp_path, caplog):
    # e.g. a small region below a high threshold: values 1..10 but 4 missing
    values = [1, 2, 3, 5, 6, 7, 8, 9, 10]
    server.files[HO_PATH] = _tgz_bytes(_ho_members(cort_nii=_labels_nii(values)))
    with caplog.at_level(logging.WARNING):
        atlas = _ho(server, tmp_path)
    assert atlas.indices == values
    assert atlas.labels == [HO_CORT[v - 1] for v in values]
    np.testing.assert_allclose(atlas.region_coords, _centres(9), atol=1e-9)
    assert "no voxel" in caplog.text


def test_harvard_oxford_prob_map_count_mismatch_refused(server, tmp_path):
    members = [m for m in _ho_members() if "cort-prob" not in m[0].name]
    members.append(_tar_member("data/atlases/HarvardOxford/HarvardOxford-cort-prob-2mm.nii.gz",
                               _maps_nii(9)))
    server.files[HO_PATH] = _tgz_bytes(members)
    with pytest.raises(AtlasError, match="hold 9 maps"):
        _ho(server, tmp_path, "cort-prob-2mm")


# ------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("call, name, allowed", [
    (lambda d: datasets.fetch_atlas_schaefer_2018(n_rois=150, data_dir=d), "n_rois=150",
     "100, 200, 300"),
    (lambda d: datasets.fetch_atlas_schaefer_2018(n_rois=True, data_dir=d), "n_rois=True",
     "1000"),
    (lambda d: datasets.fetch_atlas_schaefer_2018(yeo_networks=8, data_dir=d),
     "yeo_networks=8", "7, 17"),
    (lambda d: datasets.fetch_atlas_schaefer_2018(resolution_mm=3, data_dir=d),
     "resolution_mm=3", "1, 2"),
    (lambda d: datasets.fetch_atlas_difumo(dimension=100, data_dir=d), "dimension=100",
     "64, 128, 256, 512, 1024"),
    (lambda d: datasets.fetch_atlas_difumo(resolution_mm=1, data_dir=d), "resolution_mm=1",
     "2, 3"),
    (lambda d: datasets.fetch_atlas_harvard_oxford("cort-maxprob-thr30-2mm", data_dir=d),
     "atlas_name='cort-maxprob-thr30-2mm'", "'sub-prob-2mm'"),
    (lambda d: datasets.fetch_atlas_harvard_oxford(3, data_dir=d), "atlas_name=3",
     "'cortl-maxprob-thr0-1mm'"),
])
def test_parameter_errors_name_parameter_and_allowed_values(tmp_path, call, name, allowed):
    with pytest.raises(ParameterError) as info:
        call(tmp_path)  # no URL is reachable: refused before any download
    assert name in str(info.value) and allowed in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_whole_float_parameters_accepted(server, tmp_path):
    atlas = datasets.fetch_atlas_schaefer_2018(n_rois=100.0, yeo_networks=7.0,
                                               resolution_mm=2.0, data_dir=tmp_path,
                                               base_url=server.url("/schaefer"), verbose=0)
    assert Path(atlas.maps).name.endswith("_2mm.nii.gz") and len(atlas.labels) == 100


def test_default_urls_are_the_published_ones():
    from sparse_connectome.datasets import _atlas_fetchers as mod

    assert mod.SCHAEFER_BASE_URL.startswith(
        "https://raw.githubusercontent.com/ThomasYeoLab/CBIG/v0.14.3-Update_Yeo2011_"
        "Schaefer2018_labelname/stable_projects/brain_parcellation/")
    assert mod.DIFUMO_URL.format(key=mod.DIFUMO_OSF_KEYS[1024]) == "https://osf.io/34792/download"
    assert mod.HARVARD_OXFORD_URL == "https://www.nitrc.org/frs/download.php/9902/HarvardOxford.tgz"
    assert len(mod.HARVARD_OXFORD_NAMES) == 24
