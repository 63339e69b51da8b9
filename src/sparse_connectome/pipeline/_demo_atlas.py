"""Atlas names offline: simulated stand-ins on the demo data's grid.

``sparse-connectome demo --atlas schaefer-400-7`` and ``cohort --demo N --atlas
difumo-64`` need no network: an atlas name resolves to a simulated atlas of the same
size and kind (:mod:`sparse_connectome.simulate.atlases`) on the demo grid (4 mm,
grey matter of the bundled template), written once beside the demo data so that
provenance can hash it, and read back afterwards. The files are the same bytes for
the same name (gzip without time stamp). Harvard-Oxford has no networks: its
stand-in is a labels (``maxprob``) or maps (``prob``) atlas of as many regions,
without networks.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from .._utils.atomic import atomic_path, atomic_write_text
from .._utils.bunch import Bunch
from ..errors import OutputError
from ._atlas_names import AtlasName, parse_atlas_name

__all__ = ["demo_atlas_note", "simulated_demo_atlas"]

# Bump when the simulation or the files change: a folder of another version is rewritten.
_VERSION = "v1"
_SEED = 0
_GM_THRESHOLD = 0.2


def _demo_grey_matter() -> tuple[np.ndarray, np.ndarray]:
    """Grey matter (fraction > 0.2) inside the brain mask, on the demo grid."""
    from ..datasets.demo import DEMO_AFFINE, DEMO_SHAPE
    from ..simulate import resample_to_grid
    from ..templates import load_mni152_brain_mask, load_mni152_gm

    brain, gm = load_mni152_brain_mask(), load_mni152_gm()
    mask = resample_to_grid(np.asarray(brain.dataobj, dtype=float), brain.affine, DEMO_SHAPE,
                            DEMO_AFFINE) >= 0.5
    grey = resample_to_grid(np.asarray(gm.dataobj, dtype=float), gm.affine, DEMO_SHAPE,
                            DEMO_AFFINE) * mask
    return grey > _GM_THRESHOLD, np.asarray(DEMO_AFFINE, dtype=float)


def _gzip_copy(source: Path, target: Path) -> None:
    """Compress ``source`` into ``target`` with no time stamp nor file name (same bytes)."""
    with atomic_path(target) as tmp, open(source, "rb") as raw, open(tmp, "wb") as out, \
            gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=1, mtime=0) as gz:
        shutil.copyfileobj(raw, gz, length=1 << 22)


def _simulate(spec: AtlasName, image: Path) -> Bunch:
    """Simulate the atlas and write its image to ``image``; return its regions."""
    from ..simulate.atlases import simulate_labels_atlas, simulate_maps_atlas

    mask, affine = _demo_grey_matter()
    n_networks = spec.n_networks or 1
    raw = image.with_name(".part-" + image.name[:-3])  # uncompressed first: .nii
    if spec.kind == "labels":
        atlas = simulate_labels_atlas(spec.n_regions, mask=mask, affine=affine,
                                      n_networks=n_networks, random_state=_SEED)
        nib.save(atlas.maps, raw)
    else:
        atlas = simulate_maps_atlas(spec.n_regions, mask=mask, affine=affine,
                                    n_networks=n_networks, path=raw, random_state=_SEED)
    try:
        _gzip_copy(raw, image)
    finally:
        raw.unlink(missing_ok=True)
    indices = atlas.indices if spec.kind == "labels" else list(range(1, spec.n_regions + 1))
    labels, networks = atlas.labels, atlas.networks
    if spec.n_networks is None:  # Harvard-Oxford: anatomical regions, no networks
        part = "subcortical" if spec.fetch_params["atlas_name"].startswith("sub") else "cortical"
        labels = [f"Simulated {part} region {k}" for k in range(1, spec.n_regions + 1)]
        networks = None
    return Bunch(indices=indices, labels=labels, networks=networks,
                 region_coords=np.asarray(atlas.region_coords, dtype=float))


def _table(regions: Bunch) -> pd.DataFrame:
    coords = regions.region_coords
    return pd.DataFrame({"index": regions.indices, "name": regions.labels,
                         "network": regions.networks or ["n/a"] * len(regions.labels),
                         "x": coords[:, 0], "y": coords[:, 1], "z": coords[:, 2]})


def _read(folder: Path, files: dict[str, str]) -> Bunch | None:
    """The regions of a complete folder (its manifest lists the files and sizes), or None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != _VERSION or manifest.get("files") is None:
            return None
        for name in files.values():
            if (folder / name).stat().st_size != manifest["files"][name]:
                return None
        table = pd.read_csv(folder / files["table"], sep="\t", keep_default_na=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    networks = [str(v) for v in table["network"]]
    return Bunch(indices=[int(v) for v in table["index"]], labels=[str(v) for v in table["name"]],
                 networks=None if all(v == "n/a" for v in networks) else networks,
                 region_coords=table[["x", "y", "z"]].to_numpy(float))


def simulated_demo_atlas(name: str, data_dir: str | os.PathLike) -> Bunch:
    """The simulated stand-in of the atlas ``name`` on the demo grid, written once.

    Parameters
    ----------
    name : str
        An atlas name (:func:`parse_atlas_name`) other than ``msdl`` (the demo's own).
    data_dir : path-like
        The data folder that holds the demo data (the parent of the demo subject's
        or cohort's own folder, which stay untouched); the atlas goes to
        ``demo_atlases_<version>/simulated-<name>/`` in it, shared by the demo subject
        and cohorts of any seed (the demo grid is the same).

    Returns
    -------
    Bunch
        As :func:`resolve_atlas` takes it: ``maps`` (path), ``kind``, ``labels``,
        ``indices`` (labels atlases), ``networks``, ``region_coords``, ``name``,
        ``labels_file`` (a TSV: index, name, network, x, y, z) and ``description``.

    Examples
    --------
    >>> import tempfile
    >>> atlas = simulated_demo_atlas("schaefer-100-7", tempfile.mkdtemp())
    >>> atlas.kind, len(atlas.labels), atlas.labels[0]
    ('labels', 100, '7Networks_LH_Vis_1')
    """
    spec = parse_atlas_name(name)
    suffix = "dseg" if spec.kind == "labels" else "probseg"
    folder = Path(data_dir) / f"demo_atlases_{_VERSION}" / f"simulated-{spec.name}"
    files = {"image": f"atlas-{spec.label}_{suffix}.nii.gz", "table": f"atlas-{spec.label}_{suffix}.tsv"}
    regions = _read(folder, files)
    if regions is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            regions = _simulate(spec, folder / files["image"])
            atomic_write_text(folder / files["table"], _table(regions).to_csv(
                sep="\t", index=False, float_format="%.3f", lineterminator="\n"))
            sizes = {f: (folder / f).stat().st_size for f in files.values()}
            atomic_write_text(folder / "manifest.json", json.dumps(
                {"version": _VERSION, "name": spec.name, "files": sizes}, indent=2) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write the simulated atlas {spec.name!r} under "
                              f"{str(folder)!r}: {exc.strerror or exc}") from exc
        regions = _read(folder, files)  # what the files say, as a later call reads them
        if regions is None:
            raise OutputError(f"the simulated atlas written under {str(folder)!r} did not "
                              "read back; check the disk and run again")
    return Bunch(maps=str(folder / files["image"]), kind=spec.kind, labels=regions.labels,
                 indices=regions.indices if spec.kind == "labels" else None,
                 networks=regions.networks, region_coords=regions.region_coords,
                 name=spec.name, labels_file=str(folder / files["table"]),
                 description=f"simulated stand-in of {spec.name} ({spec.n_regions} "
                             f"{'parcels' if spec.kind == 'labels' else 'soft maps'}) on the "
                             "demo grid; not the real atlas")


def demo_atlas_note(atlas: Any) -> str:
    """Why the demo's ground-truth recovery is not reported with another atlas.

    Examples
    --------
    >>> demo_atlas_note("difumo-64").startswith("not computed")
    True
    """
    what = atlas if isinstance(atlas, str) else "the atlas given"
    return (f"not computed: the ground truth is a connectome of the demo's own 39 MSDL-like "
            f"regions, and {what} has other regions")

