"""Extraction at full atlas size: sparse-connectome's maskers against nilearn's, side by side.

Inputs (generated once into ``--data-dir``, default under /tmp: several GB, never in
the repository), on the MNI152 2 mm grid (91 x 109 x 91) unless said otherwise:

- ``labels400`` / ``labels1000``: Schaefer-like parcellations
  (:func:`sparse_connectome.simulate.simulate_labels_atlas`);
- ``maps1024``: DiFuMo-like soft maps (:func:`~sparse_connectome.simulate.simulate_maps_atlas`,
  ~1000 grey-matter voxels each, ~1 M nonzeros in all), as ``.nii.gz`` and ``.nii``
  (3.7 GB in float32);
- ``maps1024wide``: 1024 maps at the same centres twice as wide, over the whole brain
  mask (~10 000 voxels each, ~10 M nonzeros): real DiFuMo maps are wider, with tails
  that overlap, so the sparse operator is measured for a denser case too;
- ``bold``: a 91 x 109 x 91 x 300 float32 ``.nii.gz`` (in-brain signal + noise);
- ``bold3mm``: the same on a 3 mm grid (61 x 73 x 61 x 300), so that the atlas is
  resampled to the data.

Each extraction (``fit_transform`` with default parameters) runs in a fresh process;
its peak memory is the maximum RSS (``ru_maxrss`` of the child, read by a parent
process that does nothing else), and a watchdog kills nilearn past ``--cap-gb``
(reported as ">cap"), or past ``--timeout`` (">time"). Times exclude imports; both
sides run with ``--blas-threads`` BLAS threads (1 by default: on a busy machine
multi-threaded OpenBLAS spins, 10x slower measured). Both sides run in the same invocation;
the table prints the ratios and the largest difference of the signals, relative to
their scale (nilearn computes in float32 on float32 data; ours in float64).

Measured on 2 shared cores (2026-12-02, one BLAS thread; extraction s / peak MiB):

    case              ours          nilearn          ours, before the map-by-map operator
    labels400         24.7 / 251     76.9 /  2263    12.3 / 139 (8.6 / 251 after, same run)
    labels1000        18.2 / 252     43.1 /  2264    11.4 / 140 (8.0 / 252)
    labels1000-3mm     7.1 / 150     14.2 /   818     3.8 / 145 (3.6 / 150)
    maps1024-gz       39.8 / 271    523.5 / 13876    20.5 / 281 (14.1 / 271)
    maps1024-nii      29.4 / 264    516.4 / 13876    26.4 / 235 (14.8 / 269)
    maps1024wide-gz   73.0 / 449    389.1 / 13876    25.0 / 769 (18.9 / 449)
    maps1024-3mm      19.3 / 196    150.7 / 12535    44.2 / 259 (12.6 / 197)

(the first two columns from one run, the last from another, quieter, back to back.)

    python benchmarks/bench_atlas_scale.py [--data-dir DIR] [--cases a,b] [--only-ours]
                                           [--cap-gb 14] [--timeout 900] [--blas-threads 1]
                                           [--generate-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_DIR = Path("/tmp/sparse_connectome_bench_atlas_scale")
N_VOLUMES = 300

# case name -> (masker kind, atlas file, BOLD file)
CASES = {
    "labels400": ("labels", "labels400.nii.gz", "bold.nii.gz"),
    "labels1000": ("labels", "labels1000.nii.gz", "bold.nii.gz"),
    "labels1000-3mm": ("labels", "labels1000.nii.gz", "bold3mm.nii.gz"),
    "maps1024-gz": ("maps", "maps1024.nii.gz", "bold.nii.gz"),
    "maps1024-nii": ("maps", "maps1024.nii", "bold.nii.gz"),
    "maps1024wide-gz": ("maps", "maps1024wide.nii.gz", "bold.nii.gz"),
    "maps1024-3mm": ("maps", "maps1024.nii.gz", "bold3mm.nii.gz"),
}


# ----------------------------------------------------------------------------- data


def _header(shape: tuple[int, ...], affine: np.ndarray):
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_qform(affine, 1)
    hdr.set_sform(affine, 1)
    hdr.set_xyzt_units("mm", "sec")
    if len(shape) == 4:
        hdr["pixdim"][4] = 2.0
    hdr["vox_offset"] = 352
    return hdr


def _write_volumes(path: Path, shape: tuple[int, ...], affine: np.ndarray, volumes) -> None:
    """Write a 4D float32 image volume by volume (gzip level 1), then rename."""
    import gzip

    tmp = path.with_name(path.name + ".part")
    opener = gzip.open(tmp, "wb", compresslevel=1) if path.name.endswith(".gz") else \
        open(tmp, "wb")
    with opener as fh:
        hdr = _header(shape, affine)
        fh.write(hdr.binaryblock)
        fh.write(b"\x00" * (352 - len(hdr.binaryblock)))
        for vol in volumes:
            fh.write(np.asarray(vol, dtype="<f4").tobytes(order="F"))
    os.replace(tmp, path)


def _brain_mask(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    from sparse_connectome.image import resample_img
    from sparse_connectome.templates import load_mni152_brain_mask

    return resample_img(load_mni152_brain_mask(), affine, shape, "nearest").get_fdata() > 0


def _bold(path: Path, affine: np.ndarray, shape: tuple[int, int, int], seed: int) -> None:
    """In-brain signal: baseline + 8 slow spatial patterns + white noise (float32)."""
    rng = np.random.default_rng(seed)
    mask = _brain_mask(affine, shape)
    base = np.where(mask, 1000.0, 0.0).astype(np.float32)
    slow = rng.standard_normal((N_VOLUMES, 8)).cumsum(axis=0) * 0.5
    # Smooth patterns: a few blobs per pattern, so that regions share signal.
    patterns = (rng.standard_normal((8,) + shape).astype(np.float32) * mask)
    from scipy import ndimage

    patterns = np.stack([ndimage.gaussian_filter(p, 3.0) * 20 for p in patterns])

    def volumes():
        for t in range(N_VOLUMES):
            vol = base + np.tensordot(slow[t].astype(np.float32), patterns, axes=1)
            vol += rng.standard_normal(shape, dtype=np.float32) * 5 * mask
            yield vol

    _write_volumes(path, shape + (N_VOLUMES,), affine, volumes())


def _wide_maps(path: Path, centres: np.ndarray, affine: np.ndarray,
               shape: tuple[int, int, int], sigma: float) -> None:
    """1024 Gaussian bumps over the brain mask, cut at 5 % of the peak."""
    from scipy.spatial import cKDTree

    mask = _brain_mask(affine, shape)
    ijk = np.argwhere(mask)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    flat = np.ravel_multi_index(ijk.T, shape, order="F")
    tree = cKDTree(xyz)
    radius = sigma * np.sqrt(2.0 * np.log(20.0))

    def volumes():
        vol = np.zeros(int(np.prod(shape)), dtype=np.float32)
        for c in centres:
            vol[:] = 0
            near = np.asarray(tree.query_ball_point(c, radius), dtype=np.int64)
            vol[flat[near]] = np.exp(-((xyz[near] - c) ** 2).sum(axis=1) / (2 * sigma**2))
            yield vol.reshape(shape, order="F")

    _write_volumes(path, shape + (len(centres),), affine, volumes())


def generate(data_dir: Path) -> None:
    """Write the inputs that are missing (each file appears complete or not at all)."""
    from sparse_connectome.simulate import simulate_labels_atlas, simulate_maps_atlas
    from sparse_connectome.templates import load_mni152_gm

    data_dir.mkdir(parents=True, exist_ok=True)
    gm = load_mni152_gm()
    affine2, shape2 = np.asarray(gm.affine, dtype=float), tuple(gm.shape[:3])
    affine3 = np.diag([3.0, 3.0, 3.0, 1.0])
    affine3[:3, 3] = affine2[:3, 3]
    shape3 = (61, 73, 61)

    def need(name: str) -> Path | None:
        path = data_dir / name
        if path.exists():
            return None
        print(f"writing {path} ...", flush=True)
        return path

    for n in (400, 1000):
        if path := need(f"labels{n}.nii.gz"):
            simulate_labels_atlas(n).maps.to_filename(path)
    centres_path = data_dir / "maps1024_centres.npy"
    for name in ("maps1024.nii.gz", "maps1024.nii"):
        if path := need(name):
            atlas = simulate_maps_atlas(1024, path=path)
            np.save(centres_path, atlas.region_coords)
    if path := need("maps1024wide.nii.gz"):
        # Twice the simulated width: the FWHM of simulate_maps_atlas at 1024 maps on the
        # MNI152 grey matter is ~14 mm; here ~28 mm (sigma 12 mm).
        _wide_maps(path, np.load(centres_path), affine2, shape2, sigma=12.0)
    if path := need("bold.nii.gz"):
        _bold(path, affine2, shape2, seed=0)
    if path := need("bold3mm.nii.gz"):
        _bold(path, affine3, shape3, seed=1)


# ----------------------------------------------------------------------------- worker


def _worker(impl: str, kind: str, atlas: str, bold: str, out: str) -> None:
    """Runs in its own process: import, extract, save the signals, print timings."""
    t0 = time.perf_counter()
    if impl == "ours":
        from sparse_connectome import maskers
    else:
        import warnings

        warnings.simplefilter("ignore")
        from nilearn import maskers
    t1 = time.perf_counter()
    if kind == "maps":
        masker = maskers.NiftiMapsMasker(atlas)
    else:
        masker = maskers.NiftiLabelsMasker(atlas)
    signals = masker.fit_transform(bold)
    t2 = time.perf_counter()
    np.save(out, np.asarray(signals, dtype=np.float64))
    print(json.dumps({"import_s": t1 - t0, "extract_s": t2 - t1}))


def _measure(cap_gb: float, timeout_s: float, argv: list[str]) -> None:
    """Runs the worker as a child, kills it past ``cap_gb`` of RSS or ``timeout_s``,
    reports its peak RSS."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE), "--worker", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    capped = timed_out = False
    while proc.poll() is None:
        try:
            if watched.memory_info().rss > cap_gb * 2**30:
                capped = True
            elif time.perf_counter() - start > timeout_s:
                timed_out = True
            if capped or timed_out:
                proc.kill()
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {"returncode": proc.returncode, "process_s": wall, "peak_mib": peak_kib / 1024,
              "capped": capped, "timed_out": timed_out}
    if proc.returncode == 0:
        result.update(json.loads(stdout.strip().splitlines()[-1]))
    else:
        result["error"] = ("RSS above the cap" if capped else
                           f"stopped after {timeout_s:.0f} s" if timed_out else
                           (stderr.strip().splitlines() or ["killed"])[-1][:300])
    print(json.dumps(result))


def run(impl: str, case: str, data_dir: Path, cap_gb: float, timeout_s: float,
        blas_threads: int | None) -> dict:
    kind, atlas, bold = CASES[case]
    out = data_dir / f"signals_{case}_{impl}.npy"
    cmd = [sys.executable, str(HERE), "--measure", str(cap_gb), str(timeout_s), impl, kind,
           str(data_dir / atlas), str(data_dir / bold), str(out)]
    env = dict(os.environ)
    if blas_threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if not proc.stdout.strip():
        return {"returncode": proc.returncode, "error": proc.stderr.strip()[-300:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["out"] = str(out)
    return result


# ----------------------------------------------------------------------------- report


def _cell(r: dict | None) -> str:
    if r is None:
        return f"{'-':>9s} {'-':>9s}"
    if r.get("returncode") != 0:
        what = ">cap" if r.get("capped") else ">time" if r.get("timed_out") else "failed"
        return f"{what:>9s} {r['peak_mib']:9.0f}"
    return f"{r['extract_s']:9.1f} {r['peak_mib']:9.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, among {', '.join(CASES)}")
    parser.add_argument("--only-ours", action="store_true")
    parser.add_argument("--cap-gb", type=float, default=14.0,
                        help="kill a run whose RSS passes this (nilearn on 1024 maps)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="kill a run after this many seconds (reported as >time)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads of both sides (0: the library's default); on a "
                        "busy machine multi-threaded OpenBLAS spins (10x slower measured)")
    parser.add_argument("--generate-only", action="store_true")
    opts = parser.parse_args()
    generate(opts.data_dir)
    if opts.generate_only:
        return
    cases = [c for c in opts.cases.split(",") if c]
    print(f"\n{'case':16s} {'ours s':>9s} {'ours MiB':>9s} {'nilearn s':>9s} "
          f"{'nl MiB':>9s} {'time x':>7s} {'mem x':>6s} {'max|diff|/scale':>16s}", flush=True)
    for case in cases:
        args = (case, opts.data_dir, opts.cap_gb, opts.timeout, opts.blas_threads)
        ours = run("ours", *args)
        theirs = None if opts.only_ours else run("nilearn", *args)
        ratios = f"{'':>7s} {'':>6s} {'':>16s}"
        if ours.get("returncode") == 0 and theirs and theirs.get("returncode") == 0:
            a, b = np.load(ours["out"]), np.load(theirs["out"])
            diff = np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
            ratios = (f"{theirs['extract_s'] / ours['extract_s']:6.2f}x "
                      f"{ours['peak_mib'] / theirs['peak_mib']:6.2f} {diff:16.1e}")
        elif ours.get("returncode") == 0 and theirs and theirs.get("capped"):
            ratios = f"{'':>7s} <{ours['peak_mib'] / theirs['peak_mib']:5.2f} {'':>16s}"
        print(f"{case:16s} {_cell(ours)} {_cell(theirs)} {ratios}", flush=True)
        for who, r in (("ours", ours), ("nilearn", theirs)):
            if r and r.get("returncode") != 0 and not (r.get("capped") or r.get("timed_out")):
                print(f"    {who} failed: {r.get('error')}", flush=True)
    print("\ntime x: nilearn's extraction time / ours; mem x: our peak RSS / nilearn's "
          f"('<' when nilearn was stopped at the {opts.cap_gb:g} GB cap); times exclude "
          f"imports; >time: stopped after {opts.timeout:g} s; BLAS threads: "
          f"{opts.blas_threads or 'default'}.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:7])
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:9])
    else:
        main()
