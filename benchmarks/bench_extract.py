"""Region time-series extraction: sparse-connectome's NiftiMapsMasker against nilearn's.

Two cases, each measurement in a fresh process:

(a) the demo subject (the seed's shape: 50x59x50x168 float32 .nii.gz, 39 maps,
    15 confounds, ``standardize="zscore_sample"``); goal: >= 3x faster, <= 0.5x
    peak memory;
(b) an HCP-sized run generated here (91x109x91 at 2 mm, 1200 volumes, float32,
    uncompressed .nii under /tmp) with 39 maps and with 400 maps; goal: peak
    memory of ours <= 1.5 GB. nilearn runs on the 39-map case only if it fits
    (it loads the whole series: ~17 GB peak measured at 1200 volumes); a
    failure is reported, not fatal;
(c) the same grid as fMRIPrep writes it: 300 volumes gzipped (.nii.gz, level 6,
    about 1 GiB decompressed), 39 maps, against nilearn: a read bound by the
    decompression.

    python benchmarks/bench_extract.py [--quick] [--repeats N] [--keep] [--skip-hcp]
                                       [--skip-gz] [--force-nilearn]

Times are reported without imports (extraction only, measured inside the
process) and with them (the whole process, start to exit). Peak memory is the
maximum RSS of the measured process, read by a small parent process with
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. The machine may be shared:
timings are noisy; the best of ``--repeats`` is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
WORK = Path("/tmp/sparse_connectome_bench_extract")
HCP_SHAPE = (91, 109, 91)
HCP_AFFINE = np.array([[2.0, 0, 0, -90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])


# ----------------------------------------------------------------------------- worker


def _worker(impl: str, maps: str, func: str, confounds: str, out: str) -> None:
    """Runs in its own process: import, extract, save the signals, print timings."""
    t0 = time.perf_counter()
    if impl == "ours":
        from sparse_connectome.maskers import NiftiMapsMasker
    else:
        import warnings

        warnings.simplefilter("ignore")
        from nilearn.maskers import NiftiMapsMasker
    t1 = time.perf_counter()
    masker = NiftiMapsMasker(maps, standardize="zscore_sample", standardize_confounds=True)
    signals = masker.fit_transform(func, confounds=None if confounds == "-" else confounds)
    t2 = time.perf_counter()
    np.save(out, np.asarray(signals))
    print(json.dumps({"import_s": t1 - t0, "extract_s": t2 - t1}))


def _measure(argv: list[str]) -> None:
    """Runs the worker as a child and reports its peak RSS (RUSAGE_CHILDREN)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE), "--worker", *argv],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {"returncode": proc.returncode, "process_s": wall, "peak_mib": peak_kib / 1024}
    if proc.returncode == 0:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        result["error"] = (proc.stderr.strip().splitlines() or ["killed"])[-1][:300]
    print(json.dumps(result))


def run(impl: str, maps: Path, func: Path, confounds: Path | None, out: Path,
        timeout: float | None = None) -> dict:
    cmd = [sys.executable, str(HERE), "--measure", impl, str(maps), str(func),
           str(confounds) if confounds else "-", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"returncode": -1, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"returncode": proc.returncode, "error": proc.stderr.strip()[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- data


def make_demo() -> tuple[Path, Path, Path]:
    from sparse_connectome.datasets import load_demo

    demo = load_demo(data_dir=WORK / "demo")
    return Path(demo.maps), Path(demo.func[0]), Path(demo.confounds[0])


def _write_nifti_header(fh, shape: tuple[int, ...], affine: np.ndarray) -> None:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_qform(affine, 1)
    hdr.set_sform(affine, 1)
    hdr.set_xyzt_units("mm", "sec")
    if len(shape) == 4:
        hdr["pixdim"][4] = 0.72
    hdr["vox_offset"] = 352
    fh.write(hdr.binaryblock)
    fh.write(b"\x00" * (352 - len(hdr.binaryblock)))


def make_gzipped(n_volumes: int, demo_maps: Path) -> tuple[Path, Path, Path]:
    """The HCP-sized run of ``n_volumes`` gzipped as fMRIPrep writes it, its 39 maps and
    confounds (the uncompressed run is removed once compressed)."""
    import gzip

    func, maps39, _, confounds = make_hcp(n_volumes, demo_maps)
    packed = func.with_suffix(".nii.gz")
    if not packed.exists():
        print(f"compressing {func.name} to {packed.name}...", flush=True)
        tmp = packed.with_suffix(".part")
        with open(func, "rb") as raw, gzip.open(tmp, "wb", compresslevel=6) as out:
            shutil.copyfileobj(raw, out, 1 << 24)
        os.replace(tmp, packed)
        func.unlink()
    return packed, maps39, confounds


def make_hcp(n_volumes: int, demo_maps: Path) -> tuple[Path, Path, Path, Path]:
    """An HCP-sized float32 run written volume by volume, and 39 / 400 maps."""
    import nibabel as nib

    from sparse_connectome.image import resample_img
    from sparse_connectome.templates import load_mni152_brain_mask

    folder = WORK / f"hcp_{n_volumes}"
    folder.mkdir(parents=True, exist_ok=True)
    func = folder / "bold.nii"
    maps39 = folder / "maps39.nii.gz"
    maps400 = folder / "maps400.nii.gz"
    confounds = folder / "confounds.tsv"
    rng = np.random.default_rng(0)
    mask_img = load_mni152_brain_mask()
    mask = resample_img(mask_img, HCP_AFFINE, HCP_SHAPE, "nearest").get_fdata() > 0
    if not func.exists():
        print(f"writing {func} ({np.prod(HCP_SHAPE) * n_volumes * 4 / 2**30:.1f} GiB)...",
              flush=True)
        base = np.where(mask, 1000.0, 0.0).astype(np.float32)
        slow = rng.standard_normal((n_volumes, 8)).cumsum(axis=0) * 0.5
        patterns = rng.standard_normal((8,) + HCP_SHAPE).astype(np.float32) * mask
        tmp = func.with_suffix(".part")
        with open(tmp, "wb") as fh:
            _write_nifti_header(fh, HCP_SHAPE + (n_volumes,), HCP_AFFINE)
            for t in range(n_volumes):
                vol = base + np.tensordot(slow[t].astype(np.float32), patterns, axes=1)
                vol += rng.standard_normal(HCP_SHAPE, dtype=np.float32) * 5 * mask
                fh.write(np.asarray(vol, dtype=np.float32).tobytes(order="F"))
        os.replace(tmp, func)
    if not maps39.exists():
        maps = resample_img(demo_maps, HCP_AFFINE, HCP_SHAPE, "linear").get_fdata()
        nib.Nifti1Image(maps.astype(np.float32), HCP_AFFINE).to_filename(maps39)
    if not maps400.exists():
        # 400 local Gaussian maps (sigma 4 mm, cut at 3 sigma) centred in the brain.
        inside = np.argwhere(mask)
        centres = inside[rng.choice(len(inside), 400, replace=False)]
        data = np.zeros(HCP_SHAPE + (400,), dtype=np.float32)
        r = 6  # voxels (12 mm)
        grid = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1].reshape(3, -1).T
        weight = np.exp(-(grid ** 2).sum(axis=1) * 4.0 / (2 * 16.0))
        keep = (grid ** 2).sum(axis=1) <= r * r
        grid, weight = grid[keep], weight[keep]
        for k, c in enumerate(centres):
            pts = grid + c
            ok = np.all((pts >= 0) & (pts < np.array(HCP_SHAPE)), axis=1)
            data[pts[ok, 0], pts[ok, 1], pts[ok, 2], k] = weight[ok]
        data *= mask[..., None]
        nib.Nifti1Image(data, HCP_AFFINE).to_filename(maps400)
        del data
    if not confounds.exists():
        import pandas as pd

        table = pd.DataFrame(rng.standard_normal((n_volumes, 15)),
                             columns=[f"c{i}" for i in range(15)])
        table.to_csv(confounds, sep="\t", index=False)
    return func, maps39, maps400, confounds


# ----------------------------------------------------------------------------- report


def _best(runs: list[dict]) -> dict:
    ok = [r for r in runs if r.get("returncode") == 0]
    if not ok:
        return runs[-1]
    best = dict(min(ok, key=lambda r: r["process_s"]))
    best["extract_s"] = min(r["extract_s"] for r in ok)
    best["peak_mib"] = max(r["peak_mib"] for r in ok)
    return best


def _row(name: str, r: dict) -> str:
    if r.get("returncode") != 0:
        return f"  {name:10s} FAILED: {r.get('error', '')}"
    return (f"  {name:10s} {r['extract_s']:10.2f} {r['process_s']:12.2f} "
            f"{r['peak_mib']:11.0f}")


def compare(title: str, maps: Path, func: Path, confounds: Path | None, repeats: int,
            with_nilearn: bool, nilearn_timeout: float | None = None,
            nilearn_note: str = "") -> None:
    print(f"\n{title}")
    print(f"  {'':10s} {'extract s':>10s} {'with import':>12s} {'peak MiB':>11s}")
    results = {}
    out = {impl: WORK / f"signals_{impl}.npy" for impl in ("ours", "nilearn")}
    impls = ["ours"] + (["nilearn"] if with_nilearn else [])
    for impl in impls:
        runs = []
        for _ in range(repeats):
            runs.append(run(impl, maps, func, confounds, out[impl],
                            timeout=nilearn_timeout if impl == "nilearn" else None))
            if runs[-1].get("returncode") != 0:
                break
        results[impl] = _best(runs)
        print(_row(impl, results[impl]), flush=True)
    if not with_nilearn:
        print(f"  nilearn    skipped{': ' + nilearn_note if nilearn_note else ''}")
        return
    a, b = results["ours"], results["nilearn"]
    if a.get("returncode") == 0 and b.get("returncode") == 0:
        diff = np.abs(np.load(out["ours"]) - np.load(out["nilearn"])).max()
        print(f"  ratios nilearn/ours: extract time {b['extract_s'] / a['extract_s']:.2f}x, "
              f"with imports {b['process_s'] / a['process_s']:.2f}x; "
              f"peak memory ours/nilearn {a['peak_mib'] / b['peak_mib']:.2f}")
        print(f"  max |ours - nilearn| = {diff:.2e} (nilearn computes in float32 on float32 "
              "data; ours in float64)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one repeat; HCP case with 120 volumes and without nilearn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--skip-hcp", action="store_true")
    parser.add_argument("--skip-gz", action="store_true", help="skip case (c)")
    parser.add_argument("--force-nilearn", action="store_true",
                        help="run nilearn on the HCP-sized 39-map case even if memory looks "
                        "short (it peaked at ~17 GB here)")
    opts = parser.parse_args()
    repeats = 1 if opts.quick else opts.repeats
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        maps, func, confounds = make_demo()
        compare("(a) demo subject: 50x59x50x168 float32 .nii.gz, 39 maps, 15 confounds, "
                "zscore_sample  [goal: >= 3x faster, <= 0.5x peak memory]",
                maps, func, confounds, repeats, with_nilearn=True)
        if not opts.skip_gz:
            n_gz = 60 if opts.quick else 300
            gfunc, gmaps, gconf = make_gzipped(n_gz, maps)
            compare(f"(c) fMRIPrep-like: 91x109x91x{n_gz} float32 .nii.gz (gzip level 6), 39 "
                    "maps, 15 confounds, zscore_sample  [decompression-bound]",
                    gmaps, gfunc, gconf, repeats, with_nilearn=True)
        if opts.skip_hcp:
            return
        n_volumes = 120 if opts.quick else 1200
        hfunc, maps39, maps400, hconf = make_hcp(n_volumes, maps)
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        need = np.prod(HCP_SHAPE) * n_volumes * 4 * 4.5 / 2**30  # measured: ~17 GB at 1200
        run_nl = not opts.quick and (avail > need + 2 or opts.force_nilearn)
        note = ("--quick" if opts.quick else
                f"needs ~{need:.0f} GiB, {avail:.0f} GiB free now")
        hdr = f"91x109x91x{n_volumes} float32 .nii, 15 confounds, zscore_sample"
        compare(f"(b1) HCP-sized: {hdr}, 39 maps  [goal: ours <= 1.5 GB peak]",
                maps39, hfunc, hconf, 1, with_nilearn=run_nl, nilearn_timeout=900,
                nilearn_note=note)
        compare(f"(b2) HCP-sized: {hdr}, 400 maps  [goal: ours <= 1.5 GB peak]",
                maps400, hfunc, hconf, 1, with_nilearn=False,
                nilearn_note="would load the 400 maps (1.4 GiB) and the series (4 GiB) "
                "in memory; not run")
    finally:
        if not opts.keep:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:7])
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure(sys.argv[2:7])
    else:
        main()
