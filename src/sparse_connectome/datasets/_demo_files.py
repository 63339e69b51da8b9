"""What the demo subject and the demo cohort share: the grid, the template on it,
and writers whose bytes depend on the data only (so that the same seed gives the
same files)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import simulate
from .._utils.atomic import atomic_path
from ..errors import ParameterError
from ..templates import load_mni152_brain_mask, load_mni152_gm

__all__ = ["DEMO_AFFINE", "DEMO_N_VOLUMES", "DEMO_SHAPE", "DEMO_T_R", "check_seed", "demo_grid",
           "npy_bytes", "tsv", "write_nifti"]

DEMO_SHAPE = (50, 59, 50)
DEMO_AFFINE = np.array([[4.0, 0, 0, -96], [0, 4.0, 0, -132], [0, 0, 4.0, -78], [0, 0, 0, 1]])
DEMO_T_R = 2.0
DEMO_N_VOLUMES = 168


def check_seed(random_state, what: str = "demo folder") -> int:
    """``random_state`` as a non-negative int, or a ParameterError (it names a folder)."""
    if isinstance(random_state, bool | np.bool_) or not isinstance(
            random_state, int | np.integer) or int(random_state) < 0:
        raise ParameterError(f"random_state must be a non-negative int (it names the "
                             f"{what}); got {random_state!r}")
    return int(random_state)


def write_nifti(target: Path, data: np.ndarray, zooms: tuple[float, ...]) -> None:
    """Write a gzipped NIfTI-1 on the demo grid whose bytes depend on the data only.

    The gzip header's time stamp is 0 and it holds no file name, so that the same
    data give the same bytes; the data are streamed through the compressor rather
    than copied whole into memory.
    """
    img = nib.Nifti1Image(data, DEMO_AFFINE)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    hdr.set_zooms(zooms)
    hdr.set_xyzt_units("mm", "sec")
    # Code 4 = MNI152 space, as fMRIPrep's standard-space outputs declare.
    img.set_sform(DEMO_AFFINE, code=4)
    img.set_qform(DEMO_AFFINE, code=4)
    with atomic_path(target) as tmp, open(tmp, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz:
        img.file_map["image"] = nib.FileHolder(fileobj=gz)
        img.to_file_map()


def npy_bytes(array: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an array (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def tsv(frame: pd.DataFrame) -> str:
    """A table as fMRIPrep writes it: tabs, ``n/a`` for missing values, LF line ends."""
    return frame.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n")


def demo_grid() -> tuple[np.ndarray, np.ndarray]:
    """Brain mask and grey-matter fraction of the bundled template on the demo grid."""
    mask_img, gm_img = load_mni152_brain_mask(), load_mni152_gm()
    mask = simulate.resample_to_grid(np.asarray(mask_img.dataobj, dtype=float),
                                     mask_img.affine, DEMO_SHAPE, DEMO_AFFINE) >= 0.5
    gm = simulate.resample_to_grid(np.asarray(gm_img.dataobj, dtype=float), gm_img.affine,
                                   DEMO_SHAPE, DEMO_AFFINE) * mask
    return mask, gm
