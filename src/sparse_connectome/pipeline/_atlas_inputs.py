"""The atlas argument of :func:`~sparse_connectome.pipeline.run_connectome`: maps,
region names (from a CSV/TSV in any common encoding), coordinates and networks,
validated so that a bad atlas fails early with a message naming the file."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils.bunch import Bunch
from ..errors import AtlasError, DataWarning

__all__ = ["resolve_atlas"]


def read_labels_table(path: Path) -> Bunch:
    """Read region names (and optional x, y, z and network columns) from a CSV/TSV.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = path.write_text("name,x,y,z\\nleft,-40,0,0\\nright,40,0,0\\n")
    >>> table = read_labels_table(path)
    >>> table.labels, table.region_coords.shape
    (['left', 'right'], (2, 3))
    """
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise AtlasError(f"labels file {str(path)!r} {what}; expected a CSV or TSV "
                         "with a 'name' (or 'label') column")
    text = _decode_text(path)
    if not text.strip():
        raise AtlasError(f"labels file {str(path)!r} is empty; expected a CSV or TSV with a "
                         "header row holding a 'name' (or 'label') column")
    first = text.lstrip().splitlines()[0]
    sep = "\t" if "\t" in first else ";" if ";" in first and "," not in first else ","
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except Exception as exc:  # pandas raises many different classes here
        raise AtlasError(f"labels file {str(path)!r} could not be read as CSV/TSV: "
                         f"{' '.join(str(exc).split())}") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    repeated = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if repeated:  # else table["name"] is a frame, and its column names become the labels
        raise AtlasError(f"labels file {str(path)!r} repeats the column(s) {repeated} "
                         "(letter case and spaces aside); expected each column once")
    name_col = next((c for c in ("name", "label", "labels", "region") if c in table.columns), None)
    if name_col is None:
        raise AtlasError(
            f"labels file {str(path)!r} has columns {list(table.columns)}; expected a 'name' "
            "(or 'label') column, optionally with x, y, z and 'net name' (or 'network')"
        )
    names = [str(v).strip() for v in table[name_col]]
    blank = [i + 2 for i, v in enumerate(names) if v.lower() in ("", "nan", "n/a", "none")]
    if blank:
        raise AtlasError(f"labels file {str(path)!r} has an empty {name_col!r} on line(s) "
                         f"{blank[:10]}; expected a name for every region")
    out = Bunch(labels=names, source=str(path))
    if {"x", "y", "z"} <= set(table.columns):
        coords = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.all(np.isfinite(coords), axis=1))
        if bad.size:
            row = int(bad[0])
            raise AtlasError(
                f"labels file {str(path)!r}: line {row + 2} has x, y, z = "
                f"{table[['x', 'y', 'z']].iloc[row].tolist()}; expected finite numbers (mm)")
        out.region_coords = coords
    net_col = next((c for c in ("net name", "network", "networks") if c in table.columns), None)
    if net_col is not None:
        out.networks = [str(v).strip() for v in table[net_col]]
    return out


def _decode_text(path: Path) -> str:
    """Read a small text table, accepting UTF-8 (with or without BOM), UTF-16/32 with a
    BOM, and falling back to Windows-1252 (common in spreadsheet exports) with a warning."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AtlasError(f"labels file {str(path)!r} cannot be read: {exc.strerror or exc}") \
            from None
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                       (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                       (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(codec)
            except UnicodeDecodeError:
                break
    if b"\x00" in raw:
        raise AtlasError(f"labels file {str(path)!r} holds binary data (NUL bytes); expected "
                         "a text CSV or TSV")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise AtlasError(f"labels file {str(path)!r} is not UTF-8 text (byte "
                             f"{raw[exc.start]:#04x} at offset {exc.start}); expected a UTF-8 "
                             "CSV or TSV") from None
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            raise AtlasError(f"labels file {str(path)!r} holds binary data; expected a "
                             "UTF-8 CSV or TSV") from None
        warnings.warn(f"labels file {str(path)!r} is not UTF-8; read it as Windows-1252 "
                      "(save it as UTF-8 to silence this)", DataWarning, stacklevel=3)
        return text


def resolve_atlas(atlas: Any, labels: str | os.PathLike | Sequence[str] | None = None) -> Bunch:
    """Turn the ``atlas`` argument into maps, labels, coordinates and networks.

    Parameters
    ----------
    atlas : {"msdl"} or path-like or nibabel image or dict-like
        ``"msdl"`` fetches the MSDL atlas (online, cached); a path or image is a
        4D probabilistic maps image; a dict-like (such as the result of
        :func:`~sparse_connectome.datasets.fetch_atlas_msdl` or
        :func:`~sparse_connectome.datasets.load_demo`) must hold ``maps`` and may
        hold ``labels``, ``region_coords`` and ``networks``.
    labels : path-like or sequence of str, optional
        Region names, or a CSV/TSV holding them (``name`` column, optional
        ``x, y, z`` and ``net name``). Overrides the atlas's own.

    Returns
    -------
    Bunch
        ``maps``, ``labels``, ``region_coords`` (n, 3) and ``networks`` (or None).

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> atlas = resolve_atlas(load_demo())
    >>> len(atlas.labels), atlas.region_coords.shape
    (39, (39, 3))
    """
    if isinstance(atlas, str) and not os.path.splitext(atlas)[1] and not os.path.exists(atlas):
        if atlas.lower() != "msdl":
            raise AtlasError(
                f"atlas {atlas!r} is not a known atlas name nor an existing file; expected "
                "'msdl' or the path of a 4D probabilistic maps image (.nii or .nii.gz)"
            )
        from ..datasets import fetch_atlas_msdl

        atlas = fetch_atlas_msdl()
    if isinstance(atlas, dict):
        if "maps" not in atlas:
            raise AtlasError(f"atlas has keys {sorted(atlas)}; expected at least 'maps'")
        info = Bunch(maps=atlas["maps"], labels=atlas.get("labels"),
                     region_coords=atlas.get("region_coords"), networks=atlas.get("networks"))
    else:
        if isinstance(atlas, (str, os.PathLike)) and not Path(atlas).is_file():
            raise AtlasError(f"atlas file {str(atlas)!r} does not exist; expected 'msdl' or "
                             "the path of a 4D probabilistic maps image")
        info = Bunch(maps=atlas, labels=None, region_coords=None, networks=None)

    labels_source = "atlas labels"
    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            table = read_labels_table(Path(labels))
            labels_source = f"labels file {str(labels)!r}"
            info.labels = table.labels
            if "region_coords" in table:
                info.region_coords = table.region_coords
            if "networks" in table:
                info.networks = table.networks
        else:
            info.labels = [str(v) for v in labels]

    from ..image import load_img

    maps_img = load_img(info.maps, name="atlas maps")
    n_maps = maps_img.shape[3] if maps_img.ndim == 4 else 1
    if n_maps < 2:
        from ..image import img_name

        hint = ""
        if maps_img.ndim == 3 and np.issubdtype(maps_img.get_data_dtype(), np.integer):
            hint = (" (integer values: this looks like a label atlas, one integer per "
                    "region; run takes probabilistic maps)")
        raise AtlasError(f"atlas maps {img_name(info.maps, 'image')} holds {n_maps} map "
                         f"(shape {tuple(maps_img.shape)}){hint}; a connectome needs at least "
                         "2 regions: expected a 4D image with one probabilistic map per region")
    if info.labels is None:
        info.labels = [f"region_{i + 1:03d}" for i in range(n_maps)]
    info.labels = [str(v).strip() for v in info.labels]
    if len(info.labels) != n_maps:
        raise AtlasError(f"{labels_source}: found {len(info.labels)} names for {n_maps} maps; "
                         "expected one name per map")
    counts = pd.Series(info.labels).value_counts()
    duplicates = sorted(counts.index[counts > 1])
    if duplicates:
        raise AtlasError(f"{labels_source}: region names {duplicates[:5]} appear more than "
                         "once; expected unique names (they head the output tables)")
    if info.region_coords is None:
        from ..plotting import find_probabilistic_atlas_cut_coords

        try:
            info.region_coords = find_probabilistic_atlas_cut_coords(maps_img)
        except AtlasError as exc:
            from ..image import img_name

            raise AtlasError(f"atlas maps {img_name(info.maps, 'image')}: {exc}") from None
    coords = np.asarray(info.region_coords, dtype=float)
    if coords.shape != (n_maps, 3) or not np.all(np.isfinite(coords)):
        raise AtlasError(f"atlas region coordinates have shape {coords.shape}; expected "
                         f"({n_maps}, 3) finite x, y, z in mm, one row per map")
    info.region_coords = coords
    if info.networks is not None:
        info.networks = [str(v).strip() for v in info.networks]
        if len(info.networks) != n_maps:
            raise AtlasError(f"atlas networks: found {len(info.networks)} names for {n_maps} "
                             "maps; expected one per map")
    return info
