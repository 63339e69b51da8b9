"""The atlas argument of :func:`~sparse_connectome.pipeline.run_connectome`: an atlas
name, a 4D maps image or a 3D labels image, with region names (from a CSV/TSV in any
common encoding, or a BIDS ``_dseg.tsv``), coordinates and networks, validated so that
a bad atlas fails early with a message naming the file."""

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
from .._utils.text_inputs import check_text_size
from ..errors import AtlasError, DataWarning
from ._atlas_names import fetch_named_atlas, looks_like_atlas_name, parse_atlas_name
from ._labels_atlas import is_labels_image, labels_atlas_regions, labels_region_coords, table_indices

__all__ = ["resolve_atlas"]


def read_labels_table(path: Path) -> Bunch:
    """Read region names (and optional index, x, y, z and network columns) from a CSV/TSV.

    A BIDS ``_dseg.tsv`` (``index`` and ``name`` columns) is such a table: its
    ``index`` column, as text, is returned as ``index_values`` (checked by
    :func:`resolve_atlas` against a labels image).

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
    if "index" in table.columns:
        out.index_values = [str(v).strip() for v in table["index"]]
    return out


def _decode_text(path: Path) -> str:
    """Read a small text table, accepting UTF-8 (with or without BOM), UTF-16/32 with a
    BOM, and falling back to Windows-1252 (common in spreadsheet exports) with a warning."""
    check_text_size(path, "labels", "labels file", AtlasError)
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


def resolve_atlas(atlas: Any, labels: str | os.PathLike | Sequence[str] | None = None, *,
                  data_dir: str | os.PathLike | None = None) -> Bunch:
    """Turn the ``atlas`` argument into maps, kind, labels, coordinates and networks.

    Parameters
    ----------
    atlas : str or path-like or nibabel image or dict-like
        An atlas name (downloaded once, cached: ``msdl``, ``schaefer-<n>-<k>``,
        ``difumo-<d>``, ``harvard-oxford[-<name>]``; see :func:`parse_atlas_name`);
        a path or image: a 4D probabilistic maps image, or a 3D image of integer
        labels (0 = background); a dict-like (such as the result of a fetcher of
        :mod:`sparse_connectome.datasets`, or of
        :func:`~sparse_connectome.datasets.load_demo`) must hold ``maps`` and may
        hold ``labels``, ``indices``, ``kind``, ``region_coords``, ``networks``.
    labels : path-like or sequence of str, optional
        Region names, or a CSV/TSV holding them (``name`` column, optional
        ``index``, ``x, y, z`` and ``net name``/``network``). Overrides the atlas's
        own. For a labels image, the ``index`` column gives each name's label
        value and the order of the output columns (see :mod:`._labels_atlas` for
        the rules); without it, names follow the increasing label values.
    data_dir : path-like, optional
        Download folder of named atlases.

    Returns
    -------
    Bunch
        ``maps``, ``kind`` (``"maps"`` or ``"labels"``), ``labels``, ``indices``
        (label values in output order, labels atlases; else None),
        ``region_coords`` (n, 3), ``networks`` (or None), ``name`` (the atlas
        name, or None for files) and ``files`` (``maps`` and ``labels`` paths, or
        None).

    Examples
    --------
    >>> from sparse_connectome.datasets import load_demo
    >>> atlas = resolve_atlas(load_demo())
    >>> len(atlas.labels), atlas.region_coords.shape, atlas.kind
    (39, (39, 3), 'maps')
    """
    from ..image import img_name, load_img

    name = None
    if looks_like_atlas_name(atlas):
        spec = parse_atlas_name(atlas)
        atlas = fetch_named_atlas(spec, data_dir=data_dir)
        name = spec.name
    info = _atlas_fields(atlas)
    info.name = name or info.name
    table, source = _labels_argument(labels)
    img = load_img(info.maps, name="atlas maps")
    if info.kind is None:
        info.kind = "labels" if is_labels_image(img) else "maps"
    if info.kind not in ("labels", "maps"):
        raise AtlasError(f"atlas kind {info.kind!r}; expected 'labels' or 'maps'")
    image = img_name(info.maps, "image")
    if info.kind == "labels":
        _labels_regions(info, img, image, table, source)
    else:
        _maps_regions(info, img, image, table, source)
    _check_coords_and_networks(info)
    labels_file = info.pop("labels_file", None)
    if isinstance(labels, (str, os.PathLike)):
        labels_file = labels
    info.files = {"maps": str(info.maps) if isinstance(info.maps, (str, os.PathLike)) else None,
                  "labels": None if labels_file is None else str(labels_file)}
    return info


def _atlas_fields(atlas: Any) -> Bunch:
    """The atlas's own fields (dict-like), or a bare image or path."""
    if isinstance(atlas, dict):
        if "maps" not in atlas:
            raise AtlasError(f"atlas has keys {sorted(atlas)}; expected at least 'maps'")
        return Bunch(maps=atlas["maps"], labels=atlas.get("labels"),
                     indices=atlas.get("indices"), kind=atlas.get("kind"),
                     region_coords=atlas.get("region_coords"), networks=atlas.get("networks"),
                     name=atlas.get("name"),
                     labels_file=atlas.get("labels_file") or (atlas.get("files") or {}).get("labels"))
    if isinstance(atlas, (str, os.PathLike)) and not Path(atlas).is_file():
        raise AtlasError(f"atlas file {str(atlas)!r} does not exist; expected an atlas name "
                         "(such as 'msdl' or 'schaefer-400-7') or the path of a 4D "
                         "probabilistic maps image or a 3D labels image")
    return Bunch(maps=atlas, labels=None, indices=None, kind=None, region_coords=None,
                 networks=None, name=None, labels_file=None)


def _labels_argument(labels: Any) -> tuple[Bunch | None, str]:
    """The ``labels`` argument as a table (names, optional index/coords/networks)."""
    if labels is None:
        return None, "atlas labels"
    if isinstance(labels, (str, os.PathLike)):
        return read_labels_table(Path(labels)), f"labels file {str(labels)!r}"
    return Bunch(labels=[str(v) for v in labels]), "labels"


def _labels_regions(info: Bunch, img: Any, image: str, table: Bunch | None,
                    source: str) -> None:
    """Regions of a labels image, in the table's order; coordinates from the image."""
    if len(img.shape) != 3:
        raise AtlasError(f"atlas labels image {image} has shape {tuple(img.shape)}; expected "
                         "a 3D image of integer labels")
    names, indices = info.labels, info.indices
    if table is not None:
        names = table.labels
        indices = table_indices(table.index_values, source) if "index_values" in table \
            else None
        info.region_coords = table.get("region_coords")
        info.networks = table.get("networks")
    regions = labels_atlas_regions(img, image, indices=indices, names=names, source=source)
    if indices is not None:  # coordinates and networks follow the table's rows
        for key in ("region_coords", "networks"):
            given = info[key]
            if given is not None and len(given) == len(indices):
                info[key] = [given[k] for k in regions.rows] if key == "networks" else \
                    np.asarray(given, dtype=float)[regions.rows]
    info.labels, info.indices = regions.labels, regions.indices
    if info.region_coords is None:
        info.region_coords = labels_region_coords(img, regions.indices, image)
    counts = pd.Series(info.labels).value_counts()
    duplicates = sorted(counts.index[counts > 1])
    if duplicates:
        raise AtlasError(f"{source}: region names {duplicates[:5]} appear more than once; "
                         "expected unique names (they head the output tables)")


def _maps_regions(info: Bunch, img: Any, image: str, table: Bunch | None, source: str) -> None:
    """Names and coordinates of the maps of a 4D probabilistic atlas."""
    if table is not None:
        info.labels = table.labels
        for key in ("region_coords", "networks"):
            if key in table:
                info[key] = table[key]
    info.indices = None
    n_maps = img.shape[3] if len(img.shape) == 4 else 1
    if n_maps < 2:
        hint = ""
        if len(img.shape) == 3 and np.issubdtype(img.get_data_dtype(), np.integer):
            hint = " (integer values: this looks like a label atlas, one integer per region)"
        raise AtlasError(f"atlas maps {image} holds {n_maps} map (shape {tuple(img.shape)})"
                         f"{hint}; a connectome needs at least 2 regions: expected a 4D image "
                         "with one probabilistic map per region, or a 3D image of integer "
                         "labels")
    if info.labels is None:
        info.labels = [f"region_{i + 1:03d}" for i in range(n_maps)]
    info.labels = [str(v).strip() for v in info.labels]
    if len(info.labels) != n_maps:
        raise AtlasError(f"{source}: found {len(info.labels)} names for {n_maps} maps; "
                         "expected one name per map")
    counts = pd.Series(info.labels).value_counts()
    duplicates = sorted(counts.index[counts > 1])
    if duplicates:
        raise AtlasError(f"{source}: region names {duplicates[:5]} appear more than "
                         "once; expected unique names (they head the output tables)")
    if info.region_coords is None:
        from ..plotting import find_probabilistic_atlas_cut_coords

        try:
            info.region_coords = find_probabilistic_atlas_cut_coords(img)
        except AtlasError as exc:
            raise AtlasError(f"atlas maps {image}: {exc}") from None


def _check_coords_and_networks(info: Bunch) -> None:
    n = len(info.labels)
    what = "map" if info.kind == "maps" else "region"
    coords = np.asarray(info.region_coords, dtype=float)
    if coords.shape != (n, 3) or not np.all(np.isfinite(coords)):
        raise AtlasError(f"atlas region coordinates have shape {coords.shape}; expected "
                         f"({n}, 3) finite x, y, z in mm, one row per {what}")
    info.region_coords = coords
    if info.networks is not None:
        info.networks = [str(v).strip() for v in info.networks]
        if len(info.networks) != n:
            raise AtlasError(f"atlas networks: found {len(info.networks)} names for {n} "
                             f"{what}s; expected one per {what}")
