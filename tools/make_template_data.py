"""Regenerate the bundled MNI152 template derivatives in ``src/sparse_connectome/data``.

Source: the ICBM 2009a nonlinear symmetric template (grey- and white-matter
probability maps at 1 mm), read from nilearn's package data. This is a dev-only
step: ``pip install nilearn scikit-image`` (the ``dev`` extra), then run

    python tools/make_template_data.py

Outputs (all derived, deterministic):

- ``mni152_brain_mask_2mm.nii.gz``: brain mask on the standard 2 mm MNI grid
  (91 x 109 x 91), uint8.
- ``mni152_gm_2mm.nii.gz``: grey-matter probability on the same grid, stored as
  uint8 with ``scl_slope = 1/255`` so that readers get probabilities in [0, 1].
- ``mni152_brain_mesh.npz``: a closed triangle mesh of the brain surface, in mm
  (``vertices`` float32 (n, 3), ``faces`` int32 (m, 3)), for the 3D views.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

OUT = Path(__file__).resolve().parents[1] / "src" / "sparse_connectome" / "data"
GRID_2MM_SHAPE = (91, 109, 91)
GRID_2MM_AFFINE = np.array(
    [[2.0, 0, 0, -90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]]
)


def _source(kind: str) -> nib.Nifti1Image:
    root = importlib.resources.files("nilearn.datasets") / "data"
    return nib.load(str(root / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"))


def _resample(data: np.ndarray, src_affine: np.ndarray, shape, affine, order=1):
    """Resample ``data`` onto the grid (shape, affine) by mapping each target
    voxel centre through world space into the source grid."""
    vox_to_vox = np.linalg.inv(src_affine) @ affine
    return ndimage.affine_transform(
        data, vox_to_vox[:3, :3], offset=vox_to_vox[:3, 3], output_shape=shape,
        order=order, mode="constant", cval=0.0,
    )


def main() -> None:
    from skimage import measure

    gm_img, wm_img = _source("gm"), _source("wm")
    gm = gm_img.get_fdata() / 255.0
    wm = wm_img.get_fdata() / 255.0
    tissue = np.clip(gm + wm, 0, 1)

    # Smooth a little before thresholding so that the mask has no speckle and
    # no holes in deep structures, then keep the largest component.
    tissue_s = ndimage.gaussian_filter(tissue, 1.0)
    brain_1mm = ndimage.binary_fill_holes(tissue_s > 0.25)
    labels, n = ndimage.label(brain_1mm)
    sizes = ndimage.sum(brain_1mm, labels, range(1, n + 1))
    brain_1mm = labels == (int(np.argmax(sizes)) + 1)

    mask_2mm = _resample(brain_1mm.astype(np.float32), gm_img.affine,
                         GRID_2MM_SHAPE, GRID_2MM_AFFINE) > 0.5
    mask_2mm = ndimage.binary_fill_holes(mask_2mm)
    gm_2mm = np.clip(_resample(gm, gm_img.affine, GRID_2MM_SHAPE, GRID_2MM_AFFINE), 0, 1)

    OUT.mkdir(parents=True, exist_ok=True)
    mask_img = nib.Nifti1Image(mask_2mm.astype(np.uint8), GRID_2MM_AFFINE)
    mask_img.header.set_xyzt_units("mm")
    mask_img.header.set_qform(GRID_2MM_AFFINE, code=4)
    mask_img.header.set_sform(GRID_2MM_AFFINE, code=4)
    nib.save(mask_img, OUT / "mni152_brain_mask_2mm.nii.gz")

    gm_u8 = np.round(gm_2mm * 255).astype(np.uint8)
    gm_img_out = nib.Nifti1Image(gm_u8, GRID_2MM_AFFINE)
    gm_img_out.header.set_data_dtype(np.uint8)
    gm_img_out.header.set_slope_inter(1.0 / 255.0, 0.0)
    gm_img_out.header.set_xyzt_units("mm")
    gm_img_out.header.set_qform(GRID_2MM_AFFINE, code=4)
    gm_img_out.header.set_sform(GRID_2MM_AFFINE, code=4)
    # Keep the scaling in the header: nibabel would otherwise re-derive it.
    gm_img_out.dataobj  # noqa: B018
    nib.save(gm_img_out, OUT / "mni152_gm_2mm.nii.gz")

    # Surface mesh at 3 mm: fine enough to look like a brain, small enough to
    # embed in every HTML view (~a few hundred kB).
    step = 3.0
    aff3 = np.array([[step, 0, 0, -90], [0, step, 0, -126], [0, 0, step, -72], [0, 0, 0, 1]])
    shape3 = tuple(int(np.ceil(s * 2 / step)) + 1 for s in GRID_2MM_SHAPE)
    brain3 = _resample(brain_1mm.astype(np.float32), gm_img.affine, shape3, aff3)
    brain3 = ndimage.gaussian_filter(brain3, 0.8)
    brain3 = np.pad(brain3, 1)
    verts, faces, _, _ = measure.marching_cubes(brain3, level=0.5)
    verts = verts - 1.0  # undo the padding
    verts_mm = nib.affines.apply_affine(aff3, verts)
    np.savez_compressed(
        OUT / "mni152_brain_mesh.npz",
        vertices=verts_mm.astype(np.float32),
        faces=faces.astype(np.int32),
    )
    print(f"mask: {int(mask_2mm.sum())} voxels; mesh: {len(verts)} vertices, {len(faces)} faces")
    for f in sorted(OUT.glob("mni152_*")):
        print(f"{f.name}: {f.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
