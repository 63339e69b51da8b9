"""Discovery of the preprocessed BOLD runs of an fMRIPrep derivatives folder.

:func:`discover_runs` finds every ``*_desc-preproc_bold.nii[.gz]`` under
``sub-*/func/`` and ``sub-*/ses-*/func/``, pairs it with its confounds table,
brain mask, JSON sidecar and repetition time, and returns the runs it could
pair and, apart, the files it could not, each with a one-line reason. Nothing
is guessed: a run with no confounds, no usable repetition time, an ambiguous
choice of space, a label that is not BIDS, or a file reached through a
symbolic link leading out of the input folder is listed, never used.

Why not pybids
--------------
pybids (``bids.BIDSLayout``) is the field's library for this, and was measured
against this scanner on synthetic fMRIPrep trees of tiny files (per subject:
2 runs x 2 spaces of BOLD, sidecar and mask, confounds TSV and JSON, 5 anat
files; 21 files per subject), pybids 0.22.0, Python 3.11, 2 cores, one
process each, time by the clock, memory as the process's peak resident set:

* pybids ``BIDSLayout(root, validate=False, is_derivative=True)``: import 0.5 s,
  indexing 11.2 s, 170 MB for 200 subjects; indexing 64.7 s, 644 MB for 1000;
* the same with ``indexer=BIDSLayoutIndexer(validate=False, index_metadata=False)``
  (no sidecars read, so no TR): 5.9 s, 99 MB for 200; 21.6 s, 294 MB for 1000;
* :func:`discover_runs`, all of it, TR read from 400 / 2000 sidecars included:
  0.15 s for 200 subjects, 0.8-0.9 s for 1000, 95 MB in both cases, which is the
  whole package imported (1.1 s); discovery itself allocates at most 4 MB and
  22 MB (by :mod:`tracemalloc`).

Indexing grows faster than linearly and a thousand subjects take a minute and
more than half a gigabyte before the first task is scheduled, on every run and
resume of ``cohort``. What discovery needs from BIDS is small and stable: the
entity grammar (``key-label`` joined by ``_``, alphanumeric labels, entities
in the order of the specification), fMRIPrep's naming of the confounds and the
mask, and the inheritance principle for the ``RepetitionTime`` of sidecars.
All three are written here in a few dozen lines, together with the rules this
tool wants on top (no symbolic link followed out of the folder, non-BIDS labels
listed with a reason, every unpaired file listed).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._utils.text_inputs import check_text_size
from ..errors import InputError

__all__ = ["ENTITY_ORDER", "BoldRun", "Discovery", "Unpaired", "discover_runs"]

#: Order of the entities in a file name: the BIDS specification's entity
#: table, with TemplateFlow's ``cohort`` after ``space`` as fMRIPrep writes it.
ENTITY_ORDER = ("sub", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc",
                "stain", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part", "proc",
                "hemi", "space", "cohort", "split", "recording", "chunk", "atlas", "seg", "res",
                "den", "label", "desc")
_RANK = {key: rank for rank, key in enumerate(ENTITY_ORDER)}
#: Entities that tell apart versions of one run (resampling, description), not runs:
#: fMRIPrep names the confounds of a run without them.
_NON_IDENTIFYING = frozenset({"space", "res", "den", "desc", "cohort", "hemi"})
#: Entities a ``space`` selection may carry after the space label, as in fMRIPrep's
#: ``--output-spaces MNI152NLin2009cAsym:res-2``.
_SPACE_MODIFIERS = ("res", "den", "cohort")
_LABEL = re.compile(r"[A-Za-z0-9]+")
_PART = re.compile(r"([A-Za-z0-9]+)-([A-Za-z0-9]+)")
_BOLD_ENDINGS = ("_desc-preproc_bold.nii.gz", "_desc-preproc_bold.nii")
_TIME_UNITS = {"sec": 1.0, "msec": 1e3, "usec": 1e6}  # divisors to seconds


@dataclass(frozen=True)
class BoldRun:
    """One preprocessed BOLD run with everything needed to process it.

    Attributes
    ----------
    subject, session, task, run, space : str or None
        Labels from the file name, without their ``key-`` (``"01"``, not ``"sub-01"``).
    entities : tuple of (str, str)
        The entities that identify the run, in the order of the file name (BIDS
        order), without ``space``, ``res``, ``den``, ``desc``, ``cohort``, ``hemi``.
    bold, mask, confounds, confounds_json, sidecar : Path or None
        The image, its ``desc-brain_mask`` (None if absent), the confounds TSV
        (``desc-confounds_timeseries`` or the older ``desc-confounds_regressors``)
        and its JSON (None if absent), and the most specific BOLD JSON sidecar
        that applies (None if none).
    t_r : float
        Repetition time in seconds: ``RepetitionTime`` of the sidecars (with BIDS
        inheritance), else the NIfTI header's fourth zoom in its declared time unit.

    Examples
    --------
    >>> from pathlib import Path
    >>> run = BoldRun("01", "1", "rest", "2", "MNI152NLin2009cAsym",
    ...               (("sub", "01"), ("ses", "1"), ("task", "rest"), ("run", "2")),
    ...               Path("bold.nii.gz"), None, Path("confounds.tsv"), None, None, 2.0)
    >>> run.prefix, str(run.relative_dir)
    ('sub-01_ses-1_task-rest_run-2', 'sub-01/ses-1/func')
    """

    subject: str
    session: str | None
    task: str
    run: str | None
    space: str | None
    entities: tuple[tuple[str, str], ...]
    bold: Path
    mask: Path | None
    confounds: Path
    confounds_json: Path | None
    sidecar: Path | None
    t_r: float

    @property
    def prefix(self) -> str:
        """The identifying entities joined, e.g. ``"sub-01_ses-1_task-rest_run-2"``."""
        return "_".join(f"{key}-{value}" for key, value in self.entities)

    @property
    def relative_dir(self) -> Path:
        """Folder of the run relative to the root: ``sub-01/ses-1/func`` or ``sub-01/func``."""
        if self.session is None:
            return Path(f"sub-{self.subject}", "func")
        return Path(f"sub-{self.subject}", f"ses-{self.session}", "func")

    @property
    def key(self) -> str:
        """Unique name of the run within a discovery (the same as :attr:`prefix`)."""
        return self.prefix


@dataclass(frozen=True)
class Unpaired:
    """A file (or folder) that could not be made into a run, and why (one line).

    Examples
    --------
    >>> from pathlib import Path
    >>> Unpaired(Path("sub-01_task-rest_bold.nii.gz"), "no confounds file").reason
    'no confounds file'
    """

    path: Path
    reason: str


@dataclass
class Discovery:
    """Result of :func:`discover_runs`: the runs, and what could not be paired.

    Examples
    --------
    >>> Discovery().runs, Discovery().unpaired
    ([], [])
    """

    runs: list[BoldRun] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)


class _Unpairable(Exception):
    """Internal: the reason a candidate BOLD file cannot become a run."""


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str  # a str: building a Path for each of tens of thousands of files costs seconds
    is_dir: bool
    is_file: bool
    unsafe: str | None  # why the entry must not be followed (a link out of the root)


@dataclass(frozen=True, slots=True)
class _Sidecar:
    depth: int  # 0 root, 1 subject, 2 session, 3 func: deeper applies over shallower
    name: str
    entry: _Entry
    entities: tuple[tuple[str, str], ...]


@dataclass
class _Candidate:
    path: Path
    loose: dict[str, str]  # entities read leniently, for filtering and the inventory
    subject: str
    session: str | None
    listing: dict[str, _Entry]  # the func folder
    sidecars: list[_Sidecar]  # *_bold.json of its folder and the folders above
    entities: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None


def _unsafe_reason(path: Path, root: Path) -> str | None:
    """Why a symbolic link must not be followed, or None when it stays inside ``root``."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken or looping symbolic link"
    if target == root or target.is_relative_to(root):
        return None
    return f"symbolic link to {ascii(str(target))}, outside the input folder; not followed"


def _list_dir(folder: Path, root: Path, unpaired: list[Unpaired]) -> dict[str, _Entry]:
    """Entries of a folder (hidden ones left out), links out of ``root`` marked unsafe."""
    entries: dict[str, _Entry] = {}
    try:
        with os.scandir(folder) as scan:
            for item in scan:
                if item.name.startswith("."):
                    continue
                unsafe = _unsafe_reason(Path(item.path), root) if item.is_symlink() else None
                safe = unsafe is None
                entries[item.name] = _Entry(item.path, safe and item.is_dir(),
                                            safe and item.is_file(), unsafe)
    except OSError as exc:
        unpaired.append(Unpaired(folder, f"folder unreadable ({type(exc).__name__}: {exc.strerror})"))
    return entries


def _parse_name(name: str) -> tuple[list[tuple[str, str]], str, str]:
    """Entities, suffix and extension of a BIDS file name; raises _Unpairable if not BIDS."""
    stem, _, extension = name.partition(".")
    *parts, suffix = stem.split("_")
    entities = []
    for part in parts:
        match = _PART.fullmatch(part)
        if match is None:
            raise _Unpairable(f"file name part {ascii(part)} is not a BIDS entity 'key-label' "
                              "with an alphanumeric key and label")
        entities.append((match[1], match[2]))
    keys = [key for key, _ in entities]
    if len(set(keys)) != len(keys):
        raise _Unpairable(f"file name repeats an entity ({', '.join(keys)})")
    ranks = [_RANK[key] for key in keys if key in _RANK]
    if ranks != sorted(ranks):
        expected = ", ".join(sorted((k for k in keys if k in _RANK), key=_RANK.__getitem__))
        raise _Unpairable(f"file name entities {', '.join(keys)} are not in BIDS order "
                          f"(expected {expected})")
    return entities, suffix, "." + extension if extension else ""


def _loose_entities(name: str) -> dict[str, str]:
    return dict(part.split("-", 1) for part in name.split(".")[0].split("_") if "-" in part)


def _enterable(entry: _Entry, unpaired: list[Unpaired]) -> bool:
    """Whether a folder may be entered; a link out of the root is listed instead."""
    if entry.unsafe is not None:
        unpaired.append(Unpaired(Path(entry.path), entry.unsafe))
        return False
    return entry.is_dir


def _folder_label(entry_name: str, key: str, entry: _Entry,
                  unpaired: list[Unpaired]) -> str | None:
    """The label of a ``key-label`` folder that may be entered, or None (listed if unusable)."""
    if not entry_name.startswith(f"{key}-") or not _enterable(entry, unpaired):
        return None
    label = entry_name[len(key) + 1:]
    if _LABEL.fullmatch(label) is None:
        unpaired.append(Unpaired(Path(entry.path), f"folder label {ascii(label)} is not BIDS "
                                             "(letters and digits only); not searched"))
        return None
    return label


def _sidecars(listing: dict[str, _Entry], depth: int) -> list[_Sidecar]:
    """The BOLD JSON sidecars of a folder at ``depth`` (0 = root); non-BIDS names apply to nothing."""
    found = []
    for name, entry in listing.items():
        if name.endswith("_bold.json") and (entry.is_file or entry.unsafe):
            try:
                found.append(_Sidecar(depth, name, entry, tuple(_parse_name(name)[0])))
            except _Unpairable:
                continue
    return found


def _func_candidates(func: _Entry, subject: str, session: str | None,
                     inherited: list[_Sidecar], root: Path,
                     unpaired: list[Unpaired]) -> list[_Candidate]:
    """The preprocessed BOLD files of one ``func`` folder, their names checked."""
    listing = _list_dir(Path(func.path), root, unpaired)
    sidecars = inherited + _sidecars(listing, 3)
    found = []
    for name, entry in sorted(listing.items()):
        if not name.endswith(_BOLD_ENDINGS) or entry.is_dir:
            continue
        cand = _Candidate(Path(entry.path), _loose_entities(name), subject, session, listing,
                          sidecars)
        found.append(cand)
        if entry.unsafe is not None:
            cand.problem = entry.unsafe
            continue
        try:
            cand.entities = _parse_name(name)[0]
        except _Unpairable as exc:
            cand.problem = str(exc)
            continue
        labels = dict(cand.entities)
        if list(labels)[0] != "sub" or labels["sub"] != subject:
            cand.problem = f"file name does not start with the folder's subject 'sub-{subject}'"
        elif labels.get("ses") != session:
            where = "no session folder" if session is None else f"folder 'ses-{session}'"
            cand.problem = f"session {labels.get('ses')!r} of the file name does not match {where}"
        elif "task" not in labels:
            cand.problem = "file name has no 'task' entity; expected 'sub-<label>_task-<label>_...'"
    return found


def _subject_candidates(subject: str, entry: _Entry, root_jsons: list[_Sidecar],
                        root: Path, unpaired: list[Unpaired]) -> list[_Candidate]:
    """Candidates of one subject folder: ``func/`` and each ``ses-*/func/``."""
    listing = _list_dir(Path(entry.path), root, unpaired)
    inherited = root_jsons + _sidecars(listing, 1)
    found = []
    if "func" in listing and _enterable(listing["func"], unpaired):
        found += _func_candidates(listing["func"], subject, None, inherited, root, unpaired)
    for name, ses_entry in sorted(listing.items()):
        session = _folder_label(name, "ses", ses_entry, unpaired)
        if session is None:
            continue
        ses_listing = _list_dir(Path(ses_entry.path), root, unpaired)
        func = ses_listing.get("func")
        if func is not None and _enterable(func, unpaired):
            found += _func_candidates(func, subject, session, inherited + _sidecars(ses_listing, 2),
                                      root, unpaired)
    return found


def _check_root(root: str | os.PathLike) -> Path:
    path = Path(root)
    if not path.exists():
        raise InputError(f"input folder {str(path)!r} does not exist; expected an fMRIPrep "
                         "derivatives folder holding sub-*/ folders")
    if not path.is_dir():
        raise InputError(f"input folder {str(path)!r} is not a folder; expected an fMRIPrep "
                         "derivatives folder holding sub-*/ folders")
    return path


def _select_subjects(subjects: dict[str, _Entry], participant_label: Sequence[str] | None,
                     root: Path) -> list[str]:
    """The subject labels to scan, in order; unknown labels are an error."""
    if not subjects:
        raise InputError(f"no subject folders (sub-*) in {str(root)!r}; expected an fMRIPrep "
                         "derivatives folder with sub-<label>/func/ or sub-<label>/ses-<label>/func/")
    if not participant_label:
        return sorted(subjects, key=_natural)
    if isinstance(participant_label, str | os.PathLike):
        participant_label = [participant_label]
    wanted = list(dict.fromkeys(str(label).removeprefix("sub-") for label in participant_label))
    unknown = [label for label in wanted if label not in subjects]
    if unknown:
        found = sorted(subjects, key=_natural)
        shown = ", ".join(found[:10]) + (f", ... ({len(found)} in all)" if len(found) > 10 else "")
        what = "label " if len(unknown) == 1 else "labels "
        raise InputError(f"participant {what}{', '.join(ascii(u) for u in unknown)} not found in "
                         f"{str(root)!r}; found {shown}")
    return sorted(wanted, key=_natural)


def _space_filter(space: str | None) -> dict[str, str]:
    """``"MNI152NLin2009cAsym:res-2"`` -> ``{"space": ..., "res": "2"}``; None -> no filter."""
    if space is None:
        return {}
    label, *modifiers = str(space).removeprefix("space-").split(":")
    selection = {"space": label}
    for modifier in modifiers:
        key, _, value = modifier.partition("-")
        selection[key] = value
    bad = [f"{k}-{v}" for k, v in selection.items()
           if _LABEL.fullmatch(v) is None or (k != "space" and k not in _SPACE_MODIFIERS)]
    if bad:
        raise InputError(f"space {ascii(space)} is not a space label optionally followed by "
                         f"':res-<label>', ':den-<label>' or ':cohort-<label>' (bad part: {bad[0]!r})")
    return selection


def _no_match(root: Path, candidates: list[_Candidate], filters: dict[str, object]) -> InputError:
    shown = ", ".join(f"{key}={value!r}" for key, value in filters.items() if value)
    tasks = sorted({c.loose["task"] for c in candidates if "task" in c.loose})
    spaces = sorted({c.loose.get("space", "(none)") for c in candidates})
    inventory = (f"found tasks: {', '.join(map(ascii, tasks)) or 'none'}; "
                 f"spaces: {', '.join(map(ascii, spaces)) or 'none'}")
    return InputError(f"no preprocessed BOLD (*_desc-preproc_bold.nii[.gz]) in {str(root)!r} "
                      f"matching {shown or 'any filter'}; {inventory}")


def _natural(label: str | None) -> tuple[int, int, str]:
    """Sort key putting None first and numbers in numeric order (run-2 before run-10)."""
    if label is None:
        return (0, 0, "")
    return (1, int(label), label) if label.isdigit() else (2, 0, label)


def discover_runs(root: str | os.PathLike, *, participant_label: Sequence[str] | None = None,
                  task: str | None = None,
                  space: str | None = "MNI152NLin2009cAsym") -> Discovery:
    """Find and pair the preprocessed BOLD runs of an fMRIPrep derivatives folder.

    Parameters
    ----------
    root : str or path-like
        The derivatives folder, holding ``sub-<label>/func/`` or
        ``sub-<label>/ses-<label>/func/`` folders.
    participant_label : sequence of str, optional
        Subjects to keep, with or without ``sub-``. None or empty: all.
    task : str, optional
        Task label to keep (``"rest"``). None: all tasks.
    space : str or None, default "MNI152NLin2009cAsym"
        Space label to keep, optionally with fMRIPrep's modifiers
        (``"MNI152NLin2009cAsym:res-2"``). None: any space; a run found in
        several spaces (or resolutions) is then listed in ``unpaired`` with the
        reason "several ...; pass --space", and none of its versions is chosen.

    Returns
    -------
    Discovery
        ``runs``: the paired runs, sorted by subject, session, task, run (labels
        of digits in numeric order), then name; ``unpaired``: the files and
        folders that could not be paired, sorted by path, each with its reason.
        A run is unpaired when it has no confounds table, no usable repetition
        time (sidecar ``RepetitionTime``, else the header in seconds or
        milliseconds), a file name that is not BIDS (reason escaped with
        :func:`ascii`), a name disagreeing with its folders, several matching
        versions, or a file (BOLD, confounds, mask, sidecar) that is a
        symbolic link leading out of ``root`` (never followed). Hidden files
        and folders are ignored. No image data is read; a header only when no
        sidecar gives the repetition time.

    Raises
    ------
    InputError
        ``root`` is missing or not a folder, holds no ``sub-*`` folder, a
        participant label is not there, or no BOLD file matches the filters
        (the message lists the tasks and spaces found).

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> func = root / "sub-01" / "func"
    >>> func.mkdir(parents=True)
    >>> bold = "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold"
    >>> (func / f"{bold}.nii.gz").touch()
    >>> _ = (func / f"{bold}.json").write_text('{"RepetitionTime": 2.0}')
    >>> (func / "sub-01_task-rest_desc-confounds_timeseries.tsv").touch()
    >>> found = discover_runs(root)
    >>> [(run.key, run.t_r, run.confounds.name) for run in found.runs]
    [('sub-01_task-rest', 2.0, 'sub-01_task-rest_desc-confounds_timeseries.tsv')]
    >>> found.runs[0].relative_dir.as_posix(), found.unpaired
    ('sub-01/func', [])
    >>> shutil.rmtree(root)
    """
    given = _check_root(root)
    resolved = given.resolve()
    unpaired: list[Unpaired] = []
    top = _list_dir(given, resolved, unpaired)
    if unpaired:
        raise InputError(f"input folder {str(given)!r} cannot be read: {unpaired[0].reason}")
    subjects = {label: top[name] for name in top
                if (label := _folder_label(name, "sub", top[name], unpaired)) is not None}
    selected = _select_subjects(subjects, participant_label, given)
    root_jsons = _sidecars(top, 0)
    candidates = [cand for label in selected
                  for cand in _subject_candidates(label, subjects[label], root_jsons, resolved, unpaired)]
    selection = _space_filter(space) | ({"task": task} if task is not None else {})
    matching = [c for c in candidates if all(c.loose.get(k) == v for k, v in selection.items())]
    if not matching:
        raise _no_match(given, candidates, {"participant_label": participant_label,
                                            "task": task, "space": space})
    runs = []
    for cand in _without_ambiguous(matching, unpaired, space):
        try:
            runs.append(_pair(cand, resolved))
        except _Unpairable as exc:
            unpaired.append(Unpaired(cand.path, str(exc)))
    runs.sort(key=lambda r: (_natural(r.subject), _natural(r.session), r.task, _natural(r.run),
                             r.prefix, str(r.bold)))
    unpaired.sort(key=lambda u: str(u.path))
    return Discovery(runs, unpaired)


def _identifying(entities: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((key, value) for key, value in entities if key not in _NON_IDENTIFYING)


def _without_ambiguous(candidates: list[_Candidate], unpaired: list[Unpaired],
                       space: str | None) -> list[_Candidate]:
    """Candidates with a BIDS name and alone for their run; the others go to ``unpaired``."""
    groups: dict[tuple, list[_Candidate]] = {}
    for cand in candidates:
        if cand.problem is not None:
            unpaired.append(Unpaired(cand.path, cand.problem))
        else:
            groups.setdefault(_identifying(cand.entities), []).append(cand)
    kept = []
    for ident, group in groups.items():
        if len(group) == 1:
            kept += group
            continue
        versions = ", ".join(
            "_".join(f"{k}-{v}" for k, v in c.entities if k in _NON_IDENTIFYING and k != "desc")
            or "(no space)" for c in group)
        advice = "pass --space" if space is None else "pass --space LABEL:res-<label>"
        prefix = "_".join(f"{k}-{v}" for k, v in ident)
        unpaired += [Unpaired(c.path, f"several preprocessed BOLD files for run {prefix} "
                                      f"({versions}); {advice} to choose one") for c in group]
    return kept


def _sibling(listing: dict[str, _Entry], name: str, what: str) -> Path | None:
    """A file of the folder by name; None if absent; raises _Unpairable if it leads out."""
    entry = listing.get(name)
    if entry is None:
        return None
    if entry.unsafe is not None:
        raise _Unpairable(f"{what} {name} is a {entry.unsafe}")
    return Path(entry.path) if entry.is_file else None


def _pair(cand: _Candidate, root: Path) -> BoldRun:
    """Match a checked candidate with its confounds, mask, sidecar and repetition time."""
    name = cand.path.name
    ident = _identifying(cand.entities)
    prefix = "_".join(f"{k}-{v}" for k, v in ident)
    confounds = None
    for kind in ("timeseries", "regressors"):
        confounds = _sibling(cand.listing, f"{prefix}_desc-confounds_{kind}.tsv", "confounds file")
        if confounds is not None:
            break
    if confounds is None:
        raise _Unpairable(f"no confounds file (expected {prefix}_desc-confounds_timeseries.tsv "
                          f"or {prefix}_desc-confounds_regressors.tsv beside it)")
    confounds_json = _sibling(cand.listing, confounds.name[:-4] + ".json", "confounds sidecar")
    stem = name[: name.rindex("_desc-preproc_bold")]
    mask = (_sibling(cand.listing, f"{stem}_desc-brain_mask.nii.gz", "brain mask")
            or _sibling(cand.listing, f"{stem}_desc-brain_mask.nii", "brain mask"))
    sidecar, t_r = _repetition_time(cand)
    labels = dict(cand.entities)
    return BoldRun(subject=labels["sub"], session=labels.get("ses"), task=labels["task"],
                   run=labels.get("run"), space=labels.get("space"), entities=ident,
                   bold=cand.path, mask=mask, confounds=confounds,
                   confounds_json=confounds_json, sidecar=sidecar, t_r=t_r)


def _applicable_sidecars(cand: _Candidate) -> list[Path]:
    """BOLD JSON sidecars that apply to the candidate, least specific first (BIDS inheritance)."""
    labels = dict(cand.entities)
    found = []
    for sidecar in cand.sidecars:
        if all(labels.get(key) == value for key, value in sidecar.entities):
            if sidecar.entry.unsafe is not None:
                raise _Unpairable(f"sidecar {sidecar.name} is a {sidecar.entry.unsafe}")
            found.append((sidecar.depth, len(sidecar.entities), sidecar.name, sidecar.entry.path))
    return [Path(path) for *_, path in sorted(found)]


def _read_json(path: Path) -> dict:
    try:
        check_text_size(path, "json", "sidecar")
    except InputError as exc:  # the run is left out, with the reason
        raise _Unpairable(str(exc)) from None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise _Unpairable(f"sidecar {path.name} is nested too deeply to be read") from None
    except (OSError, ValueError) as exc:  # also UnicodeDecodeError, over-long integers
        raise _Unpairable(f"sidecar {path.name} is not readable JSON ({type(exc).__name__})") from exc
    if not isinstance(meta, dict):
        raise _Unpairable(f"sidecar {path.name} holds a {type(meta).__name__}, not an object")
    return meta


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer past ~1e308
        return None
    return value if math.isfinite(value) and value > 0 else None


def _repetition_time(cand: _Candidate) -> tuple[Path | None, float]:
    """(most specific sidecar, repetition time in s): sidecars first, then the header."""
    sidecars = _applicable_sidecars(cand)
    meta: dict = {}
    for path in sidecars:
        meta.update(_read_json(path))
    sidecar = sidecars[-1] if sidecars else None
    if "RepetitionTime" in meta:
        t_r = _seconds(meta["RepetitionTime"])
        if t_r is None:
            raise _Unpairable(f"RepetitionTime {meta['RepetitionTime']!r} of the sidecar is not a "
                              "positive number of seconds")
        return sidecar, t_r
    t_r, why = _header_t_r(cand.path)
    if t_r is None:
        where = f"not in sidecar {sidecar.name}" if sidecar else "no JSON sidecar"
        raise _Unpairable(f"no repetition time: {where}, and {why}")
    return sidecar, t_r


def _header_t_r(bold: Path) -> tuple[float | None, str]:
    """Repetition time from the NIfTI header (header only), or None and why not."""
    # Imported here: only runs whose sidecars lack RepetitionTime need a header.
    import nibabel
    import numpy as np

    try:
        header = nibabel.load(bold).header
        zooms = header.get_zooms()
        unit = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "unknown"
    except Exception as exc:  # any unreadable header (empty, truncated, not NIfTI) leaves it unpaired
        return None, f"the image header is unreadable ({type(exc).__name__})"
    if len(zooms) < 4:
        return None, f"the image header has {len(zooms)} dimensions, not 4"
    if unit not in _TIME_UNITS:
        return None, f"the image header's time unit is {unit!r}, not seconds or milliseconds"
    # float32 zooms: their shortest decimal form is the value written (0.8, not 0.800000011920929).
    t_r = _seconds(float(str(np.float32(zooms[3]))) / _TIME_UNITS[unit])
    if t_r is None:
        return None, f"the image header's time zoom {float(zooms[3])!r} is not positive"
    return t_r, ""
