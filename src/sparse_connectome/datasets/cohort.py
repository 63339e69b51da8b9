"""The demo cohort: several synthetic subjects as an fMRIPrep derivatives tree.

:func:`load_demo_cohort` writes (once) and returns a small study laid out as
fMRIPrep writes it, each subject built like the demo subject of
:mod:`sparse_connectome.datasets.demo` (MSDL-like maps on the 4 mm grid, 168
volumes at TR 2 s, the full confounds table) from its own ground-truth
connectome: a group graph shared by all, with individual deviations
(:mod:`sparse_connectome.simulate.cohort`). It needs no network.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .. import simulate
from .._utils.atomic import atomic_write_bytes, atomic_write_text
from .._utils.bunch import Bunch
from ..errors import OutputError, ParameterError
from ..simulate.cohort import cohort_rng, make_individual_precision, simulate_cohort_subject
from ._demo_files import (
    DEMO_AFFINE,
    DEMO_N_VOLUMES,
    DEMO_SHAPE,
    DEMO_T_R,
    check_seed,
    demo_grid,
    npy_bytes,
    write_nifti,
)
from ._msdl import msdl_facts
from ._paths import get_data_dir

__all__ = ["load_demo_cohort", "MAX_COHORT_SUBJECTS"]

logger = logging.getLogger(__name__)

# Bump when the generative model or the layout changes: old folders stay valid
# for their own version and are never mistaken for the new one.
_VERSION = "v1"
_MANIFEST = "cohort_manifest.json"
#: The largest cohort :func:`load_demo_cohort` writes (each subject is ~19 MB).
MAX_COHORT_SUBJECTS = 1000
_SPACE = "space-MNI152NLin2009cAsym"
_WEIGHT_JITTER = 0.3
_EDGE_TURNOVER = 0.05
_SPIKES = (1, 6)  # motion spikes per subject, inclusive range

_DESCRIPTION = """\
sparse-connectome demo cohort (simulated, {n} subjects, random_state={seed})

A synthetic study laid out as fMRIPrep derivatives: per subject one resting-state
run (MNI152NLin2009cAsym, 4 mm, 50 x 59 x 50, 168 volumes, TR = 2 s), its brain
mask and the full confounds table with its JSON sidecar. Nothing here was measured.

Atlas: the 39 MSDL-like maps of the demo subject (one Gaussian blob, FWHM 14 mm,
per MSDL region), shared by all subjects, under ``atlas/``.

Ground truth (``ground_truth/``): a group precision (``group_precision.npy``)
drawn like the demo subject's (edges for 80 % of the pairs within an MSDL network
and 8 % between networks, partial correlations of 0.25 to 0.5 in magnitude,
mostly positive). Each subject's precision (``sub-XX_precision.npy``) deviates
from it: every group edge keeps its sign with an individual weight, the group
partial correlation times (1 + 0.3 u), u uniform in [-1, 1]; 5 % of the group
edges (at least one) are removed and as many new edges are added (magnitudes
0.25 to 0.5, positive with probability 0.8); the result is kept positive
definite (common shrinkage only if its smallest eigenvalue would fall below
0.05) and scaled to unit-variance region signals. Region signals
(``sub-XX_region_signals.npy``) are drawn from each subject's Gaussian.

BOLD and confounds: as for the demo subject (motion through the image gradient,
physiological noise in CSF and white matter, drift, AR(1) noise; confounds
computed from the image as fMRIPrep does), with 1 to 6 motion spikes per subject.
Subject k depends on (random_state, k) only: the first subjects of a larger
cohort with the same seed are the same.
"""


def _check_n_subjects(n_subjects) -> int:
    if isinstance(n_subjects, (bool, np.bool_)) or not isinstance(n_subjects,
                                                                  (int, np.integer)):
        raise ParameterError(f"n_subjects must be an int from 1 to {MAX_COHORT_SUBJECTS}; "
                             f"got {n_subjects!r}")
    if not 1 <= int(n_subjects) <= MAX_COHORT_SUBJECTS:
        raise ParameterError(f"n_subjects must lie from 1 to {MAX_COHORT_SUBJECTS}; got "
                             f"{int(n_subjects)}")
    return int(n_subjects)


def _labels(n_subjects: int) -> list[str]:
    width = max(2, len(str(n_subjects)))
    return [f"{k:0{width}d}" for k in range(1, n_subjects + 1)]


def _subject_files(label: str) -> dict[str, str]:
    ent = f"sub-{label}_task-rest"
    func = f"sub-{label}/func"
    return {
        "func": f"{func}/{ent}_{_SPACE}_desc-preproc_bold.nii.gz",
        "func_json": f"{func}/{ent}_{_SPACE}_desc-preproc_bold.json",
        "mask": f"{func}/{ent}_{_SPACE}_desc-brain_mask.nii.gz",
        "mask_json": f"{func}/{ent}_{_SPACE}_desc-brain_mask.json",
        "confounds": f"{func}/{ent}_desc-confounds_timeseries.tsv",
        "confounds_json": f"{func}/{ent}_desc-confounds_timeseries.json",
        "precision": f"ground_truth/sub-{label}_precision.npy",
        "region_signals": f"ground_truth/sub-{label}_region_signals.npy",
    }


_COMMON_FILES = {
    "maps": "atlas/msdl_demo_maps.nii.gz",
    "labels_file": "atlas/msdl_demo_labels.csv",
    "group_precision": "ground_truth/group_precision.npy",
    "dataset_description": "dataset_description.json",
}


def _all_files(labels: list[str]) -> list[str]:
    return list(_COMMON_FILES.values()) + [rel for label in labels
                                           for rel in _subject_files(label).values()]


# --------------------------------------------------------------------------- #
# Writing, deterministically
# --------------------------------------------------------------------------- #
def _write_npy(target: Path, array: np.ndarray) -> None:
    atomic_write_bytes(target, npy_bytes(array))


def _write_json(target: Path, obj: dict) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _write_common(folder: Path, facts: Bunch, maps: np.ndarray, group: np.ndarray,
                  n_subjects: int, seed: int) -> None:
    """The atlas, the group ground truth and the dataset description."""
    write_nifti(folder / _COMMON_FILES["maps"], maps, (4.0, 4.0, 4.0, 1.0))
    table = pd.DataFrame({"x": facts.region_coords[:, 0], "y": facts.region_coords[:, 1],
                          "z": facts.region_coords[:, 2], "name": facts.labels,
                          "net name": facts.networks})
    atomic_write_text(folder / _COMMON_FILES["labels_file"],
                      table.to_csv(index=False, lineterminator="\n"))
    _write_npy(folder / _COMMON_FILES["group_precision"], group)
    _write_json(folder / _COMMON_FILES["dataset_description"], {
        "Name": f"sparse-connectome demo cohort ({_VERSION}, {n_subjects} subjects, "
                f"random_state={seed})",
        "BIDSVersion": "1.4.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "sparse_connectome.simulate",
                         "Description": "synthetic fMRIPrep-like derivatives with known "
                                        "sparse connectomes (a group graph plus "
                                        "individual deviations)"}],
    })


def _simulate_subject(group: np.ndarray, maps: np.ndarray,
                      tissues: tuple[np.ndarray, np.ndarray, np.ndarray], seed: int,
                      index: int) -> tuple[Bunch, np.ndarray]:
    """Subject ``index`` (1-based), from its own random stream: (simulation, precision)."""
    rng = cohort_rng(seed, index)
    individual = make_individual_precision(group, weight_jitter=_WEIGHT_JITTER,
                                           edge_turnover=_EDGE_TURNOVER, random_state=rng)
    n_spikes = int(rng.integers(_SPIKES[0], _SPIKES[1] + 1))
    sub = simulate_cohort_subject(individual.precision, maps, tissues, DEMO_AFFINE,
                                  n_samples=DEMO_N_VOLUMES, t_r=DEMO_T_R, n_spikes=n_spikes,
                                  random_state=rng)
    return sub, individual.precision


def _write_subject(folder: Path, label: str, sub: Bunch, precision: np.ndarray) -> None:
    f = {key: folder / rel for key, rel in _subject_files(label).items()}
    f["func"].parent.mkdir(parents=True, exist_ok=True)
    write_nifti(f["func"], sub.bold, (4.0, 4.0, 4.0, DEMO_T_R))
    _write_json(f["func_json"], {"RepetitionTime": DEMO_T_R, "TaskName": "rest",
                                 "SkullStripped": True})
    write_nifti(f["mask"], sub.mask.astype(np.uint8), (4.0, 4.0, 4.0))
    _write_json(f["mask_json"], {"Type": "Brain"})
    atomic_write_text(f["confounds"], sub.confounds.to_csv(
        sep="\t", index=False, na_rep="n/a", lineterminator="\n"))
    _write_json(f["confounds_json"], sub.sidecar)
    _write_npy(f["precision"], precision)
    _write_npy(f["region_signals"], sub.region_signals)


def _generate(folder: Path, n_subjects: int, seed: int) -> None:
    """Simulate the cohort and write every file under ``folder``, the manifest last.

    Subject ``k``'s files are compressed and written by one background thread
    while subject ``k + 1`` is simulated (zlib and numpy release the GIL): on two
    cores this hides most of the gzip time. At most one subject waits to be
    written, which bounds memory; the bytes do not depend on the overlap.
    """
    facts = msdl_facts()
    mask, gm = demo_grid()
    maps = simulate.make_blob_maps(facts.region_coords, DEMO_SHAPE, DEMO_AFFINE, mask)
    tissues = simulate.tissue_probabilities(mask, gm, DEMO_AFFINE)
    group = simulate.make_sparse_precision(len(facts.labels), facts.networks,
                                           random_state=cohort_rng(seed, 0))
    (folder / "atlas").mkdir(parents=True, exist_ok=True)
    (folder / "ground_truth").mkdir(parents=True, exist_ok=True)
    _write_common(folder, facts, maps, group, n_subjects, seed)
    labels = _labels(n_subjects)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-cohort-writer") as pool:
        pending = None
        for index, label in enumerate(labels, start=1):
            sub, precision = _simulate_subject(group, maps, tissues, seed, index)
            if pending is not None:
                pending.result()  # re-raises a failed write here
            pending = pool.submit(_write_subject, folder, label, sub, precision)
            logger.info("demo cohort: subject %s simulated (%d/%d, %.1f s)", label, index,
                        n_subjects, time.perf_counter() - start)
        pending.result()
    manifest = {"version": _VERSION, "n_subjects": n_subjects, "random_state": seed,
                "subjects": labels,
                "files": {rel: (folder / rel).stat().st_size for rel in _all_files(labels)}}
    _write_json(folder / _MANIFEST, manifest)


def _read_manifest(folder: Path, n_subjects: int, seed: int) -> dict | None:
    """The manifest of a complete cohort folder, or None if anything is off."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if (manifest.get("version") != _VERSION or manifest.get("n_subjects") != n_subjects
                or manifest.get("random_state") != seed
                or set(files) != set(_all_files(_labels(n_subjects)))):
            return None
        for rel, size in files.items():
            if (folder / rel).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def _ensure_folder(root: Path, n_subjects: int, seed: int) -> Path:
    """The verified cohort folder, written into a temporary folder and renamed if needed."""
    folder = root / f"demo_cohort_{_VERSION}_n{n_subjects}_seed{seed}"
    if _read_manifest(folder, n_subjects, seed) is not None:
        return folder
    logger.info("Writing the demo cohort (%d subjects, random_state=%d) to %s", n_subjects,
                seed, folder)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.part-", dir=root))
    except OSError as exc:
        raise OutputError(f"cannot write the demo cohort under data_dir {str(root)!r}: "
                          f"{exc}") from exc
    try:
        _generate(tmp, n_subjects, seed)
        if folder.exists():
            # Written meanwhile by a concurrent call (keep it), or incomplete or
            # damaged (move it out of the way).
            if _read_manifest(folder, n_subjects, seed) is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return folder
            broken = Path(tempfile.mkdtemp(prefix=f".{folder.name}.broken-", dir=root))
            os.replace(folder, broken / "old")
            shutil.rmtree(broken, ignore_errors=True)
        os.rename(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _read_manifest(folder, n_subjects, seed) is not None:  # lost a race: fine
            return folder
        raise OutputError(f"cannot write the demo cohort to {str(folder)!r}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if _read_manifest(folder, n_subjects, seed) is None:
        raise OutputError(f"the demo cohort written to {str(folder)!r} did not verify")
    return folder


# --------------------------------------------------------------------------- #
# Public
# --------------------------------------------------------------------------- #
def load_demo_cohort(n_subjects: int = 8, data_dir: str | os.PathLike | None = None,
                     random_state: int = 0) -> Bunch:
    """Load the demo cohort, writing it first if needed (no network).

    A small study as fMRIPrep derivatives: ``n_subjects`` resting-state runs
    built like the demo subject (:func:`load_demo`), each from its own
    ground-truth sparse precision. The subjects share a group graph and deviate
    from it individually, which is what a group sparse model (Varoquaux et al.
    2010) is meant to recover:

    - every edge of the group graph keeps its sign in every subject, with an
      individual weight: the group partial correlation times ``1 + 0.3 u``,
      ``u`` uniform in [-1, 1];
    - 5 % of the group edges (at least one) are removed from each subject, and
      as many edges outside the group graph are added (partial correlations of
      0.25 to 0.5 in magnitude, positive with probability 0.8);
    - each precision is positive definite (its partial correlations shrunk by a
      common factor only if needed) and scaled to unit-variance region signals.

    Motion differs between subjects (1 to 6 motion spikes each), as do the
    physiological noise and the thermal noise. Subject ``k`` depends on
    ``(random_state, k)`` only. The layout::

        dataset_description.json
        atlas/msdl_demo_maps.nii.gz, atlas/msdl_demo_labels.csv
        ground_truth/group_precision.npy, sub-XX_precision.npy,
            sub-XX_region_signals.npy
        sub-XX/func/sub-XX_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz
            (+ .json with RepetitionTime, TaskName, SkullStripped)
        sub-XX/func/sub-XX_task-rest_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz
        sub-XX/func/sub-XX_task-rest_desc-confounds_timeseries.tsv (+ .json)

    Parameters
    ----------
    n_subjects : int
        Number of subjects, 1 to 1000. Labels are ``01``, ``02``, ... (three
        digits from 100 subjects on).
    data_dir : path-like, optional
        Root data folder; by default ``$SPARSE_CONNECTOME_DATA`` or
        ``~/.cache/sparse_connectome``. The cohort lives in
        ``<data_dir>/demo_cohort_v1_n<n_subjects>_seed<random_state>/``.
    random_state : int
        Seed of the simulation. The same arguments give the same files, bit for
        bit; a second call reads the files already written (checked against a
        manifest) instead of writing them again.

    Returns
    -------
    Bunch
        root : str
            The cohort's folder (the derivatives dataset).
        subjects : list of str
            Subject labels without ``sub-``.
        func, masks, confounds : list of str
            Per subject: the BOLD run (50 x 59 x 50 x 168 float32, TR 2 s), its
            brain mask and its full fMRIPrep-style confounds TSV (``n/a`` where
            fMRIPrep writes it; the ``.json`` sidecar is beside it).
        maps : str
            4D NIfTI of the 39 probabilistic maps.
        labels, networks : list of str
            MSDL region and network names.
        region_coords : ndarray of shape (39, 3)
            Region centres, MNI mm.
        labels_file : str
            The atlas labels as CSV (``x,y,z,name,net name``).
        true_precisions : ndarray of shape (n_subjects, 39, 39)
            Each subject's ground-truth precision.
        group_precision : ndarray of shape (39, 39)
            The group precision the subjects deviate from.
        true_region_signals : ndarray of shape (n_subjects, 168, 39)
            The region signals projected into each image.
        t_r : float
            2.0.
        description : str
            How the data were made.

    Raises
    ------
    ParameterError
        If ``n_subjects`` is not an int from 1 to 1000, or ``random_state`` is
        not a non-negative int.
    OutputError
        If the data folder cannot be written.

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo_cohort
    >>> cohort = load_demo_cohort(n_subjects=2)  # written once into the data folder
    >>> cohort.subjects
    ['01', '02']
    >>> cohort.true_precisions.shape, cohort.t_r
    ((2, 39, 39), 2.0)
    >>> cohort.func[0].endswith("sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    True
    """
    n_subjects = _check_n_subjects(n_subjects)
    seed = check_seed(random_state, "demo cohort folder")
    try:
        root = get_data_dir(data_dir)
    except OSError as exc:
        raise OutputError(f"cannot create data_dir {str(data_dir)!r}: {exc}") from exc
    folder = _ensure_folder(root, n_subjects, seed)
    labels = _labels(n_subjects)
    files = [{key: str(folder / rel) for key, rel in _subject_files(label).items()}
             for label in labels]
    facts = msdl_facts()

    def stack(key: str) -> np.ndarray:
        return np.stack([np.load(f[key], allow_pickle=False) for f in files])

    return Bunch(
        root=str(folder),
        subjects=labels,
        func=[f["func"] for f in files],
        masks=[f["mask"] for f in files],
        confounds=[f["confounds"] for f in files],
        maps=str(folder / _COMMON_FILES["maps"]),
        labels=facts.labels,
        networks=facts.networks,
        region_coords=facts.region_coords,
        labels_file=str(folder / _COMMON_FILES["labels_file"]),
        true_precisions=stack("precision"),
        group_precision=np.load(folder / _COMMON_FILES["group_precision"], allow_pickle=False),
        true_region_signals=stack("region_signals"),
        t_r=DEMO_T_R,
        description=_DESCRIPTION.format(n=n_subjects, seed=seed),
    )
