"""The real fetchers, tested over HTTP against a local server on 127.0.0.1.

The server (``_fetch_server.FixtureServer``) serves fixture files built here: a
small MSDL-like ``MSDL_rois.zip`` (4D NIfTI + labels CSV with padded names) and
an OSF-like tree (participants table, fMRIPrep confounds and BOLD images of two
participants, at the OSF key paths of the bundled key table).
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from _fetch_server import FixtureServer
from sparse_connectome.datasets import fetchers
from sparse_connectome.datasets._download import download_file, extract_zip_safely
from sparse_connectome.errors import ConfoundsError, DownloadError, ParameterError

pytestmark = pytest.mark.timeout(60)

MSDL_CSV = (
    "x,y,z,name,net name\n"
    "-53.28,-8.88,32.36,L Aud,Aud\n"
    "1.18,-74.54,10.79,Striate,Striate\n"
    "-0.2,-34.3,-1.2, Sup Front S,    Language\n"
)
MSDL_LABELS = ["L Aud", "Striate", "Sup Front S"]
MSDL_NETWORKS = ["Aud", "Striate", "Language"]
MSDL_COORDS = [[-53.28, -8.88, 32.36], [1.18, -74.54, 10.79], [-0.2, -34.3, -1.2]]

KEYS = pd.read_csv(Path(fetchers.__file__).parents[1] / "data" / "development_fmri_osf_keys.csv",
                   dtype=str).set_index("participant_id")
ADULT, CHILD = "sub-pixar123", "sub-pixar001"
CONFOUND_COLUMNS = ["global_signal", "csf", "white_matter", "std_dvars", "dvars",
                    "framewise_displacement", "t_comp_cor_00", "a_comp_cor_00",
                    "a_comp_cor_01", "a_comp_cor_02", "a_comp_cor_03", "a_comp_cor_04",
                    "a_comp_cor_05", "a_comp_cor_06", "cosine00", "trans_x", "trans_y",
                    "trans_z", "rot_x", "rot_y", "rot_z"]


def _nifti_bytes(shape, seed, gz=False) -> bytes:
    data = np.random.default_rng(seed).random(shape, dtype=np.float32)
    img = nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    raw = img.to_bytes()
    if gz:
        import gzip
        return gzip.compress(raw, mtime=0)
    return raw


def _zip_bytes(entries, symlinks=()) -> bytes:
    """A zip archive: entries (name, bytes), symlinks (name, target)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2015, 1, 1, 0, 0, 0)), data)
        for name, target in symlinks:
            info = zipfile.ZipInfo(name, date_time=(2015, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _confounds_tsv(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.standard_normal((6, len(CONFOUND_COLUMNS))).round(6),
                         columns=CONFOUND_COLUMNS)
    table.loc[0, ["framewise_displacement", "std_dvars", "dvars"]] = np.nan
    return table.to_csv(sep="\t", index=False, na_rep="n/a").encode()


MSDL_NII = _nifti_bytes((5, 6, 4, 3), seed=0)
MSDL_ZIP = _zip_bytes([("MSDL_rois/msdl_rois.nii", MSDL_NII),
                       ("MSDL_rois/msdl_rois_labels.csv", MSDL_CSV.encode())])
PARTICIPANTS = pd.DataFrame({
    "participant_id": [CHILD, ADULT], "Age": [4.5, 24.0], "AgeGroup": ["4yo", "Adult"],
    "Child_Adult": ["child", "adult"], "Gender": ["F", "M"], "Handedness": ["R", "R"],
}).to_csv(sep="\t", index=False).encode()
OSF_FILES = {
    pid: (_confounds_tsv(i), _nifti_bytes((4, 5, 4, 6), seed=10 + i, gz=True))
    for i, pid in enumerate((ADULT, CHILD))
}


def _bold_path(pid):
    return f"/download/{KEYS.loc[pid, 'key_b']}/"


def _confounds_path(pid):
    return f"/download/{KEYS.loc[pid, 'key_r']}/"


@pytest.fixture()
def server():
    srv = FixtureServer()
    srv.files["/MSDL_rois.zip"] = MSDL_ZIP
    srv.files["/yr3av/download"] = PARTICIPANTS
    for pid, (confounds, bold) in OSF_FILES.items():
        srv.files[_confounds_path(pid)] = confounds
        srv.files[_bold_path(pid)] = bold
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    # Never go through a proxy to reach 127.0.0.1, and start every test with no
    # pinned hashes.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(fetchers, "KNOWN_HASHES", {})


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files left in a folder."""
    return sorted(p.name for p in folder.rglob("*")
                  if p.name.startswith((".extract-", "tmp")) or p.name.endswith(".part"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- MSDL

def test_msdl_fetch_returns_seed_fields(server, tmp_path):
    atlas = fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=server.url("/MSDL_rois.zip"),
                                      verbose=0)
    maps = Path(atlas.maps)
    assert isinstance(atlas.maps, str)
    assert maps == tmp_path / "msdl_atlas" / "MSDL_rois" / "msdl_rois.nii"
    assert maps.read_bytes() == MSDL_NII
    assert atlas.labels == MSDL_LABELS          # padding stripped
    assert atlas.networks == MSDL_NETWORKS
    assert atlas.region_coords == MSDL_COORDS
    assert all(type(v) is float for row in atlas.region_coords for v in row)
    assert atlas["labels"] is atlas.labels     # key and attribute access
    assert isinstance(atlas.description, str) and "MSDL" in atlas.description
    # The archive is not kept once extracted, nor any temporary file.
    assert not (tmp_path / "msdl_atlas" / "MSDL_rois.zip").exists()
    assert _leftovers(tmp_path) == []


def test_msdl_matches_nilearn_on_same_archive(server, tmp_path):
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    ours = fetchers.fetch_atlas_msdl(data_dir=tmp_path / "ours",
                                     url=server.url("/MSDL_rois.zip"), verbose=0)
    # nilearn (0.14) ignores its url parameter: give it the same archive's
    # content, extracted by the standard library, where it looks for it.
    with zipfile.ZipFile(io.BytesIO(MSDL_ZIP)) as zf:
        zf.extractall(tmp_path / "ref" / "msdl_atlas")
    ref = nilearn_datasets.fetch_atlas_msdl(data_dir=tmp_path / "ref", verbose=0)
    assert ours.labels == list(ref.labels)
    assert ours.networks == list(ref.networks)
    assert type(ours.region_coords) is type(ref.region_coords)
    np.testing.assert_array_equal(np.asarray(ours.region_coords), np.asarray(ref.region_coords))
    assert Path(ours.maps).read_bytes() == Path(ref.maps).read_bytes()
    assert Path(ours.maps).relative_to(tmp_path / "ours") == \
        Path(ref.maps).relative_to(tmp_path / "ref")


def test_msdl_second_call_uses_cache(server, tmp_path):
    url = server.url("/MSDL_rois.zip")
    first = fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert server.count() == 1
    second = fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert server.count() == 1  # no network I/O at all
    assert second == first


def test_msdl_data_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_CONNECTOME_DATA", str(tmp_path / "env"))
    atlas = fetchers.fetch_atlas_msdl(url=server.url("/MSDL_rois.zip"), verbose=0)
    assert Path(atlas.maps).is_relative_to(tmp_path / "env")


def test_msdl_interrupted_then_resumed_with_range(server, tmp_path):
    url = server.url("/MSDL_rois.zip")
    cut = len(MSDL_ZIP) // 3
    server.cut_after["/MSDL_rois.zip"] = cut
    with pytest.raises(DownloadError, match="interrupted") as info:
        fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert url in str(info.value)
    folder = tmp_path / "msdl_atlas"
    # Nothing a later call could trust: no archive, no extracted atlas.
    assert not (folder / "MSDL_rois.zip").exists()
    assert not (folder / "MSDL_rois").exists()
    part = folder / ".MSDL_rois.zip.part"
    assert part.stat().st_size == cut

    atlas = fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert server.ranges("/MSDL_rois.zip") == [None, f"bytes={cut}-"]
    assert [s for p, _, s in server.log] == [200, 206]
    assert Path(atlas.maps).read_bytes() == MSDL_NII
    assert atlas.labels == MSDL_LABELS
    assert _leftovers(tmp_path) == []


def test_resume_falls_back_to_full_download_when_range_ignored(server, tmp_path):
    path = _bold_path(ADULT)
    target = tmp_path / "bold.nii.gz"
    server.cut_after[path] = 100
    with pytest.raises(DownloadError, match="interrupted"):
        download_file(server.url(path), target, verbose=0)
    server.ignore_range = True
    download_file(server.url(path), target, verbose=0)
    assert server.ranges(path) == [None, "bytes=100-"]
    assert [s for _, _, s in server.log] == [200, 200]
    assert target.read_bytes() == OSF_FILES[ADULT][1]
    assert _leftovers(tmp_path) == []


def test_resume_false_restarts_from_zero(server, tmp_path):
    path = _bold_path(ADULT)
    target = tmp_path / "bold.nii.gz"
    server.cut_after[path] = 100
    with pytest.raises(DownloadError):
        download_file(server.url(path), target, verbose=0)
    download_file(server.url(path), target, resume=False, verbose=0)
    assert server.ranges(path) == [None, None]
    assert target.read_bytes() == OSF_FILES[ADULT][1]


def test_complete_partial_file_is_finished_without_body(server, tmp_path):
    # A process that died after the last byte but before the rename leaves a
    # complete .part; the server answers 416 to the range beyond its end.
    path = _bold_path(ADULT)
    target = tmp_path / "bold.nii.gz"
    (tmp_path / ".bold.nii.gz.part").write_bytes(OSF_FILES[ADULT][1])
    download_file(server.url(path), target, verbose=0)
    assert [s for _, _, s in server.log] == [416]
    assert target.read_bytes() == OSF_FILES[ADULT][1]


def test_stale_partial_file_longer_than_remote_is_replaced(server, tmp_path):
    path = _bold_path(ADULT)
    target = tmp_path / "bold.nii.gz"
    (tmp_path / ".bold.nii.gz.part").write_bytes(b"\0" * (len(OSF_FILES[ADULT][1]) + 10))
    download_file(server.url(path), target, verbose=0)
    assert [s for _, _, s in server.log] == [416, 200]
    assert target.read_bytes() == OSF_FILES[ADULT][1]
    assert _leftovers(tmp_path) == []


def test_corrupted_download_is_refused_and_not_kept(server, tmp_path):
    url = server.url("/MSDL_rois.zip")
    fetchers.KNOWN_HASHES["MSDL_rois.zip"] = "sha256:" + hashlib.sha256(MSDL_ZIP).hexdigest()
    good = MSDL_ZIP
    server.files["/MSDL_rois.zip"] = good[:-40] + bytes(40)  # same size, wrong bytes
    with pytest.raises(DownloadError, match="corrupted") as info:
        fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert url in str(info.value) and "SHA-256" in str(info.value)
    folder = tmp_path / "msdl_atlas"
    assert sorted(p.name for p in folder.iterdir()) == []  # nothing trusted, nothing partial
    # Once the server is fixed, the fetch works and downloads the whole file again.
    server.files["/MSDL_rois.zip"] = good
    atlas = fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert server.ranges("/MSDL_rois.zip") == [None, None]
    assert atlas.labels == MSDL_LABELS


def test_wrong_size_is_refused(server, tmp_path):
    path = _bold_path(CHILD)
    target = tmp_path / "bold.nii.gz"
    with pytest.raises(DownloadError, match="expected 7"):
        download_file(server.url(path), target, known_size=7, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_corrupted_cached_file_is_downloaded_again(server, tmp_path):
    fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path, base_url=server.url(),
                                    verbose=0)
    bold_path = _bold_path(ADULT)
    assert server.count(bold_path) == 1
    data = fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                           base_url=server.url(), verbose=0)
    assert server.count(bold_path) == 1
    bold = Path(data.func[0])
    raw = bytearray(bold.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one flipped byte
    bold.write_bytes(bytes(raw))
    data = fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                           base_url=server.url(), verbose=0)
    assert server.count(bold_path) == 2
    assert Path(data.func[0]).read_bytes() == OSF_FILES[ADULT][1]


def test_truncated_cached_file_is_downloaded_again(server, tmp_path):
    target = tmp_path / "p.tsv"
    download_file(server.url("/yr3av/download"), target, verbose=0)
    target.write_bytes(target.read_bytes()[:10])
    download_file(server.url("/yr3av/download"), target, verbose=0)
    assert server.count() == 2
    assert target.read_bytes() == PARTICIPANTS


def test_cached_file_checked_against_known_hash(server, tmp_path):
    # A file put there by hand (no download record) is trusted only if it
    # matches the known hash.
    target = tmp_path / "p.tsv"
    target.write_bytes(b"participant_id\nforged\n")
    known = "sha256:" + hashlib.sha256(PARTICIPANTS).hexdigest()
    download_file(server.url("/yr3av/download"), target, known_hash=known, verbose=0)
    assert target.read_bytes() == PARTICIPANTS
    assert server.count() == 1


def test_corrupted_archive_refused(server, tmp_path):
    server.files["/MSDL_rois.zip"] = b"PK\x03\x04 this is not a zip file" * 10
    with pytest.raises(DownloadError, match="MSDL_rois.zip"):
        fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=server.url("/MSDL_rois.zip"),
                                  verbose=0)
    assert list((tmp_path / "msdl_atlas").iterdir()) == []


def test_archive_without_atlas_files(server, tmp_path):
    server.files["/MSDL_rois.zip"] = _zip_bytes([("README", b"hello")])
    with pytest.raises(DownloadError, match="msdl_rois.nii"):
        fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=server.url("/MSDL_rois.zip"),
                                  verbose=0)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_malicious_archive_refused_and_nothing_written(server, tmp_path, kind):
    root = tmp_path / "data"
    outside = tmp_path / "evil.txt"
    good = [("MSDL_rois/msdl_rois.nii", MSDL_NII),
            ("MSDL_rois/msdl_rois_labels.csv", MSDL_CSV.encode())]
    if kind == "dotdot":
        bad_name = "../../evil.txt"  # from <data>/msdl_atlas up to tmp_path
        archive = _zip_bytes(good + [(bad_name, b"pwned")])
    elif kind == "absolute":
        bad_name = str(outside)
        archive = _zip_bytes(good + [(bad_name, b"pwned")])
    else:
        bad_name = "MSDL_rois/link"
        archive = _zip_bytes(good, symlinks=[(bad_name, "../../../evil.txt")])
    server.files["/MSDL_rois.zip"] = archive
    with pytest.raises(DownloadError) as info:
        fetchers.fetch_atlas_msdl(data_dir=root, url=server.url("/MSDL_rois.zip"), verbose=0)
    message = str(info.value)
    assert "MSDL_rois.zip" in message and repr(bad_name) in message
    assert "nothing was extracted" in message
    assert not outside.exists()
    # Nothing extracted, and the refused archive is not kept for a later call.
    assert list((root / "msdl_atlas").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_safe_archive_with_inner_symlink(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes([("d/file.txt", b"x")], symlinks=[("d/link", "file.txt")]))
    created = extract_zip_safely(archive, tmp_path / "out")
    assert created == [tmp_path / "out" / "d"]
    assert os.readlink(tmp_path / "out" / "d" / "link") == "file.txt"
    assert (tmp_path / "out" / "d" / "link").read_bytes() == b"x"


# ----------------------------------------------------------------- offline and errors

@pytest.mark.parametrize("which", ["msdl", "development"])
def test_offline_error_names_url_and_load_demo(tmp_path, which):
    base = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(DownloadError) as info:
        if which == "msdl":
            fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=f"{base}/MSDL_rois.zip", verbose=0)
        else:
            fetchers.fetch_development_fmri(data_dir=tmp_path, base_url=base, verbose=0)
    message = str(info.value)
    expected_url = f"{base}/MSDL_rois.zip" if which == "msdl" else f"{base}/yr3av/download"
    assert expected_url in message
    assert "sparse_connectome.datasets.load_demo()" in message
    assert _leftovers(tmp_path) == []


def test_http_error_names_url_and_status(server, tmp_path):
    url = server.url("/nowhere.zip")
    with pytest.raises(DownloadError, match="404") as info:
        fetchers.fetch_atlas_msdl(data_dir=tmp_path, url=url, verbose=0)
    assert url in str(info.value)


def test_default_urls_are_the_published_ones():
    assert fetchers.MSDL_URL == "https://team.inria.fr/parietal/files/2015/01/MSDL_rois.zip"
    assert fetchers.OSF_BASE_URL == "https://osf.io"


# ---------------------------------------------------------------- development fMRI

def test_development_fetch_returns_seed_fields(server, tmp_path):
    data = fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                           base_url=server.url(), verbose=0)
    folder = tmp_path / "development_fmri"
    assert data.t_r == 2.0
    assert data.func == [str(folder / f"{ADULT}_task-pixar_space-MNI152NLin2009cAsym"
                                      "_desc-preproc_bold.nii.gz")]
    assert Path(data.func[0]).read_bytes() == OSF_FILES[ADULT][1]
    assert data.confounds == [str(folder / f"{ADULT}_task-pixar_desc-reducedConfounds"
                                           "_regressors.tsv")]
    assert isinstance(data.phenotypic, pd.DataFrame)
    assert list(data.phenotypic.participant_id) == [ADULT]
    assert {"Age", "AgeGroup", "Child_Adult", "Gender", "Handedness"} <= set(
        data.phenotypic.columns)
    assert isinstance(data.description, str)
    # Participants not selected are not downloaded.
    assert server.count(_bold_path(CHILD)) == 0
    assert _leftovers(tmp_path) == []


def test_development_reduced_confounds(server, tmp_path):
    data = fetchers.fetch_development_fmri(n_subjects=2, data_dir=tmp_path,
                                           base_url=server.url(), verbose=0)
    assert list(data.phenotypic.participant_id) == [ADULT, CHILD]
    for pid, path in zip((ADULT, CHILD), data.confounds):
        reduced = pd.read_csv(path, sep="\t")
        full = pd.read_csv(io.BytesIO(OSF_FILES[pid][0]), sep="\t")
        assert list(reduced.columns) == list(fetchers.REDUCED_CONFOUNDS)
        assert len(fetchers.REDUCED_CONFOUNDS) == 15
        pd.testing.assert_frame_equal(reduced, full[list(fetchers.REDUCED_CONFOUNDS)])
        # fMRIPrep's missing-value marker is kept as it is.
        assert Path(path).read_text().splitlines()[1].split("\t")[6] == "n/a"
        # The original file stays beside the reduced one.
        original = Path(path).with_name(f"{pid}_task-pixar_desc-confounds_regressors.tsv")
        assert original.read_bytes() == OSF_FILES[pid][0]


def test_development_full_confounds(server, tmp_path):
    data = fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                           base_url=server.url(), reduce_confounds=False,
                                           verbose=0)
    assert Path(data.confounds[0]).name == f"{ADULT}_task-pixar_desc-confounds_regressors.tsv"
    assert Path(data.confounds[0]).read_bytes() == OSF_FILES[ADULT][0]


def test_development_second_call_uses_cache(server, tmp_path):
    kwargs = dict(n_subjects=2, data_dir=tmp_path, base_url=server.url(), verbose=0)
    first = fetchers.fetch_development_fmri(**kwargs)
    n_requests = server.count()
    assert n_requests == 5  # table + 2 x (confounds, bold)
    second = fetchers.fetch_development_fmri(**kwargs)
    assert server.count() == n_requests
    assert second.func == first.func and second.confounds == first.confounds
    pd.testing.assert_frame_equal(second.phenotypic, first.phenotypic)


def test_development_interrupted_bold_resumes(server, tmp_path):
    path = _bold_path(ADULT)
    cut = len(OSF_FILES[ADULT][1]) // 2
    server.cut_after[path] = cut
    kwargs = dict(n_subjects=1, data_dir=tmp_path, base_url=server.url(), verbose=0)
    with pytest.raises(DownloadError, match="interrupted"):
        fetchers.fetch_development_fmri(**kwargs)
    data = fetchers.fetch_development_fmri(**kwargs)
    assert server.ranges(path) == [None, f"bytes={cut}-"]
    assert Path(data.func[0]).read_bytes() == OSF_FILES[ADULT][1]


def test_development_missing_confound_column(server, tmp_path):
    table = pd.read_csv(io.BytesIO(OSF_FILES[ADULT][0]), sep="\t").drop(columns="csf")
    server.files[_confounds_path(ADULT)] = table.to_csv(sep="\t", index=False).encode()
    with pytest.raises(ConfoundsError, match="csf"):
        fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                        base_url=server.url(), verbose=0)


def test_development_bad_participants_table(server, tmp_path):
    server.files["/yr3av/download"] = b"<html>maintenance</html>\n"
    with pytest.raises(DownloadError, match="participant_id"):
        fetchers.fetch_development_fmri(n_subjects=1, data_dir=tmp_path,
                                        base_url=server.url(), verbose=0)
    # Not kept: the next call downloads the table again.
    assert not (tmp_path / "development_fmri" / "participants.tsv").exists()


@pytest.mark.parametrize("n_subjects", [0, -1, 156, 1.5, "2", True])
def test_development_bad_n_subjects(tmp_path, n_subjects):
    with pytest.raises(ParameterError, match="n_subjects"):
        fetchers.fetch_development_fmri(n_subjects=n_subjects, data_dir=tmp_path, verbose=0)


def _full_table(adult_mask) -> pd.DataFrame:
    ids = list(KEYS.index)
    return pd.DataFrame({
        "participant_id": ids,
        "Age": [25.0 if a else 6.0 for a in adult_mask],
        "AgeGroup": ["Adult" if a else "6yo" for a in adult_mask],
        "Child_Adult": ["adult" if a else "child" for a in adult_mask],
        "Gender": "F", "Handedness": "R",
    })


def test_selection_balances_adults_and_children():
    table = _full_table([int(p[-3:]) >= 123 for p in KEYS.index])
    assert list(fetchers._select_participants(table, 1).participant_id) == ["sub-pixar123"]
    for n in (1, 2, 8, 20, 60, 154):
        chosen = fetchers._select_participants(table, n)
        assert len(chosen) == n
        n_adults = int((chosen.Child_Adult == "adult").sum())
        assert n_adults == max(1, round(n * 33 / 155))
    assert len(fetchers._select_participants(table, None)) == 155


@pytest.mark.parametrize("layout", ["published", "shuffled"])
def test_selection_matches_nilearn(tmp_path, layout):
    """nilearn, run as a black box on placeholder files (no network), picks the
    same participants in the same order for every n_subjects tried."""
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    ids = list(KEYS.index)
    adult = np.array([int(p[-3:]) >= 123 for p in ids])
    if layout == "shuffled":
        adult = np.random.default_rng(1).permutation(adult)
    table = _full_table(adult)
    folder = tmp_path / "development_fmri"
    folder.mkdir()
    table.to_csv(folder / "participants.tsv", sep="\t", index=False)
    for pid in ids:
        (folder / f"{pid}_task-pixar_desc-confounds_regressors.tsv").write_text("a\n1\n")
        (folder / f"{pid}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
         ).write_text("x")
    for n in (1, 2, 3, 7, 8, 17, 20, 33, 60, 100, 154, None):
        ref = nilearn_datasets.fetch_development_fmri(
            n_subjects=n, data_dir=tmp_path, reduce_confounds=False, verbose=0)
        ours = fetchers._select_participants(table, n)
        ref_ids = [Path(f).name.split("_")[0] for f in ref.func]
        assert list(ours.participant_id) == ref_ids, n
        assert list(ref.phenotypic.participant_id) == ref_ids


# ------------------------------------------------------------------------- progress

def test_progress_bar_shown_unless_quiet(server, tmp_path, capfd):
    fetchers.fetch_atlas_msdl(data_dir=tmp_path / "a", url=server.url("/MSDL_rois.zip"),
                              verbose=0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    fetchers.fetch_atlas_msdl(data_dir=tmp_path / "b", url=server.url("/MSDL_rois.zip"),
                              verbose=1)
    out, err = capfd.readouterr()
    assert "MSDL_rois.zip" in err


def test_reduced_confounds_match_nilearn(tmp_path):
    """Same 15 columns, same order, same values as nilearn's reduced file (nilearn
    writes missing values as 'nan', we keep fMRIPrep's 'n/a')."""
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    ids = list(KEYS.index)
    folder = tmp_path / "development_fmri"
    folder.mkdir()
    _full_table([int(p[-3:]) >= 123 for p in ids]).to_csv(
        folder / "participants.tsv", sep="\t", index=False)
    source = folder / f"{ADULT}_task-pixar_desc-confounds_regressors.tsv"
    source.write_bytes(OSF_FILES[ADULT][0])
    (folder / f"{ADULT}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
     ).write_text("x")
    ref = nilearn_datasets.fetch_development_fmri(n_subjects=1, data_dir=tmp_path, verbose=0)
    ref_table = pd.read_csv(ref.confounds[0], sep="\t")
    ours = fetchers._reduce_confounds(source, tmp_path / "ours.tsv")
    our_table = pd.read_csv(ours, sep="\t")
    assert list(our_table.columns) == list(ref_table.columns)
    np.testing.assert_allclose(our_table.to_numpy(), ref_table.to_numpy(), rtol=0, atol=0)


def test_downloader_check_only_reports_availability(server, tmp_path):
    # pooch asks downloaders whether a URL is available (check_only=True).
    from sparse_connectome.datasets._download import ResumableHTTPDownloader

    downloader = ResumableHTTPDownloader(tmp_path / "x.part", progressbar=False)
    assert downloader(server.url("/MSDL_rois.zip"), None, check_only=True) is True
    assert downloader(server.url("/missing.zip"), None, check_only=True) is False
    assert not (tmp_path / "x.part").exists()
    # Nothing listens on this port: not available, and no exception.
    assert downloader("http://127.0.0.1:9/none.zip", None, check_only=True) is False
