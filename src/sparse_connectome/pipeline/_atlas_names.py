"""Atlases by name: ``msdl``, ``schaefer-400-7``, ``difumo-1024``, ``harvard-oxford``...

:func:`parse_atlas_name` turns a name into what the fetchers of
:mod:`sparse_connectome.datasets` take (and what the offline demo simulates):
the family, the number of regions, the kind (``"labels"`` or ``"maps"``) and the
``atlas-<label>`` entity of BIDS output names. :func:`fetch_named_atlas` downloads
it (cached). Unknown names fail with the list of accepted forms.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .._utils.bunch import Bunch
from ..errors import AtlasError

__all__ = ["ATLAS_NAME_FORMS", "AtlasName", "fetch_named_atlas", "looks_like_atlas_name",
           "parse_atlas_name"]

SCHAEFER_SIZES = tuple(range(100, 1001, 100))
DIFUMO_SIZES = (64, 128, 256, 512, 1024)
#: Regions of each Harvard-Oxford family (FSL's XML label files).
HARVARD_OXFORD_SIZES = {"cort": 48, "cortl": 96, "sub": 21}
HARVARD_OXFORD_DEFAULT = "cort-maxprob-thr25-2mm"

#: The accepted forms, as error messages and ``--help`` list them.
ATLAS_NAME_FORMS = (
    "'msdl'; 'schaefer-<n>-<k>' (n = 100, 200, ..., 1000; k = 7 or 17; optional '-1mm' or "
    "'-2mm', e.g. 'schaefer-400-7'); 'difumo-<d>' (d = 64, 128, 256, 512 or 1024; optional "
    "'-2mm' or '-3mm', e.g. 'difumo-1024'); 'harvard-oxford' (cort-maxprob-thr25-2mm) or "
    "'harvard-oxford-<name>' (name = cort|cortl|sub - maxprob-thr0|25|50 or prob - 1mm|2mm, "
    "e.g. 'harvard-oxford-sub-maxprob-thr25-2mm')"
)

_SCHAEFER = re.compile(r"schaefer-(\d+)-(\d+)(?:-([12])mm)?")
_DIFUMO = re.compile(r"difumo-(\d+)(?:-([23])mm)?")
_HARVARD_OXFORD = re.compile(r"harvard-oxford(?:-((cortl?|sub)-(maxprob-thr(?:0|25|50)|prob)-[12]mm))?")


@dataclass(frozen=True)
class AtlasName:
    """A parsed atlas name.

    Attributes
    ----------
    name : str
        The canonical name (lower case, e.g. ``"schaefer-400-7"``).
    family : {"msdl", "schaefer", "difumo", "harvard-oxford"}
    kind : {"labels", "maps"}
    n_regions : int
    n_networks : int or None
        Networks of the atlas (Schaefer's 7 or 17; DiFuMo's and MSDL's are named too).
    label : str
        The ``atlas-<label>`` BIDS entity (``schaefer400x7``, ``difumo1024``...).
    fetch_params : dict
        Keywords of the family's fetcher.

    Examples
    --------
    >>> spec = parse_atlas_name("schaefer-400-17")
    >>> spec.kind, spec.n_regions, spec.label
    ('labels', 400, 'schaefer400x17')
    """

    name: str
    family: str
    kind: str
    n_regions: int
    n_networks: int | None
    label: str
    fetch_params: dict = field(default_factory=dict)


def looks_like_atlas_name(atlas: Any) -> bool:
    """True for a string that is no existing path and has no file extension.

    Examples
    --------
    >>> looks_like_atlas_name("difumo-64"), looks_like_atlas_name("maps.nii.gz")
    (True, False)
    """
    return (isinstance(atlas, str) and not os.path.splitext(atlas)[1]
            and not os.path.exists(atlas) and os.sep not in atlas)


def _unknown(text: str, why: str = "") -> AtlasError:
    return AtlasError(f"atlas {text!r} is not a known atlas name nor an existing file{why}; "
                      f"expected a path to an atlas image (.nii or .nii.gz: 4D probabilistic "
                      f"maps or a 3D labels image) or one of the names {ATLAS_NAME_FORMS}")


def parse_atlas_name(text: str) -> AtlasName:
    """Parse an atlas name, or raise :class:`~sparse_connectome.errors.AtlasError`.

    Parameters
    ----------
    text : str
        ``msdl``, ``schaefer-<n>-<k>[-1mm|-2mm]``, ``difumo-<d>[-2mm|-3mm]``,
        ``harvard-oxford`` or ``harvard-oxford-<name>`` (letter case aside).

    Returns
    -------
    AtlasName

    Examples
    --------
    >>> parse_atlas_name("difumo-1024").kind
    'maps'
    >>> parse_atlas_name("harvard-oxford").fetch_params
    {'atlas_name': 'cort-maxprob-thr25-2mm'}
    >>> parse_atlas_name("schaefer-150-7")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.AtlasError: atlas 'schaefer-150-7' is not a known atlas name ...
    """
    name = text.strip().lower()
    if name == "msdl":
        return AtlasName(name, "msdl", "maps", 39, 17, "msdl")
    found = _SCHAEFER.fullmatch(name)
    if found:
        n, k = int(found.group(1)), int(found.group(2))
        if n not in SCHAEFER_SIZES or k not in (7, 17):
            raise _unknown(text, f" (Schaefer 2018 has 100 to 1000 parcels in steps of "
                           f"100, in 7 or 17 networks: not {n} parcels in {k} networks)")
        params = {"n_rois": n, "yeo_networks": k, "resolution_mm": int(found.group(3) or 2)}
        return AtlasName(name, "schaefer", "labels", n, k, f"schaefer{n}x{k}", params)
    found = _DIFUMO.fullmatch(name)
    if found:
        dim = int(found.group(1))
        if dim not in DIFUMO_SIZES:
            raise _unknown(text, f" (DiFuMo has {', '.join(map(str, DIFUMO_SIZES))} maps, "
                           f"not {dim})")
        params = {"dimension": dim, "resolution_mm": int(found.group(2) or 2)}
        return AtlasName(name, "difumo", "maps", dim, 7, f"difumo{dim}", params)
    found = _HARVARD_OXFORD.fullmatch(name)
    if found:
        atlas_name = found.group(1) or HARVARD_OXFORD_DEFAULT
        family, kind_part = re.match(r"(cortl?|sub)-(maxprob|prob)", atlas_name).groups()
        kind = "labels" if kind_part == "maxprob" else "maps"
        # The resolution is left out of the entity: the regions are the same.
        suffix = re.sub(r"[^a-z0-9]", "", re.sub(r"-[12]mm$", "", atlas_name))
        label = "harvardoxford" + ("" if atlas_name == HARVARD_OXFORD_DEFAULT else suffix)
        return AtlasName(name, "harvard-oxford", kind, HARVARD_OXFORD_SIZES[family], None,
                         label, {"atlas_name": atlas_name})
    raise _unknown(text)


def fetch_named_atlas(spec: AtlasName, data_dir: str | os.PathLike | None = None,
                      verbose: int = 0) -> Bunch:
    """Download (once, cached) the atlas that ``spec`` names, with its fetcher.

    Returns the fetcher's Bunch (``maps``, ``labels``, ``indices``, ``networks``,
    ``region_coords``, ``kind``) with ``name`` set to the canonical name.

    Examples
    --------
    >>> spec = parse_atlas_name("msdl")
    >>> spec.family  # fetch_named_atlas(spec) would download it
    'msdl'
    """
    import inspect

    from .. import datasets  # the fetchers, and their network stack, only when asked

    fetcher = {"msdl": "fetch_atlas_msdl", "schaefer": "fetch_atlas_schaefer_2018",
               "difumo": "fetch_atlas_difumo",
               "harvard-oxford": "fetch_atlas_harvard_oxford"}[spec.family]
    fetch = getattr(datasets, fetcher)
    params = dict(spec.fetch_params, data_dir=data_dir)
    if "verbose" in inspect.signature(fetch).parameters:
        params["verbose"] = verbose
    out = Bunch(fetch(**params))
    out.setdefault("kind", spec.kind)
    out.name = spec.name
    return out
