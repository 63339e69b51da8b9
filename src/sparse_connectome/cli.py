"""The ``sparse-connectome`` command.

Exit codes: 0 when all is well; 2 for bad input or usage, with one line on
stderr naming the problem; 1 for anything unexpected (``--verbose`` shows the
traceback).
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .errors import ParameterError, SparseConnectomeError

PROG = "sparse-connectome"
logger = logging.getLogger("sparse_connectome")


def _setup_logging(quiet: bool, verbose: int) -> int:
    """Configure the package's logger; return the verbosity passed to the job.

    Stage progress goes to stderr when it is a terminal (or with ``--verbose``),
    so that scripts and pipes get only the summary, or one line on error.
    """
    show_progress = not quiet and (verbose > 0 or sys.stderr.isatty())
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level if show_progress else logging.WARNING)
    logger.propagate = False
    # nibabel logs its header checks ("sizeof_hdr should be 348") on stderr; our named
    # error already says what is wrong with the file, in one line.
    logging.getLogger("nibabel").setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
    return 0 if not show_progress else 1 + verbose


def parse_edge_threshold(value: str) -> str | float:
    """``"80%"`` stays a percentile string; ``"0.1"`` becomes a number."""
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?%", text):
        if not 0 <= float(text[:-1]) <= 100:
            raise ParameterError(f"--edge-threshold {value!r}: a percentile must be within "
                                 "0% and 100%")
        return text
    try:
        number = float(text)
    except ValueError:
        raise ParameterError(f"--edge-threshold {value!r}: expected a percentile such as '80%' "
                             "or a non-negative number") from None
    if not (number >= 0 and number != float("inf")):
        raise ParameterError(f"--edge-threshold {value!r}: expected a finite non-negative "
                             "number or a percentile such as '80%'")
    return number


def _positive_seconds(ctx, param, value):
    """Click callback: ``--t-r`` must be a finite positive number of seconds."""
    if value is not None and not (0 < value < float("inf")):
        raise ParameterError(f"--t-r {value:g}: expected a positive number of seconds "
                             "(e.g. 2.0)")
    return value


def _common_options(func):
    func = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and "
                        "the final summary.")(func)
    func = click.option("-v", "--verbose", count=True, help="More detail (repeat for more); "
                        "shows tracebacks of unexpected errors.")(func)
    return func


def parse_alphas(value: str | None) -> int | list[float] | None:
    """``"4"`` is a grid size; ``"0.1,0.05"`` a list of penalties; None: the default."""
    if value is None:
        return None
    text = value.strip()
    try:
        if "," not in text:
            number = int(text)
            if number < 2:
                raise ValueError
            return number
        alphas = [float(v) for v in text.split(",") if v.strip()]
        if not alphas or not all(0 < a < float("inf") for a in alphas):
            raise ValueError
        return alphas
    except ValueError:
        raise ParameterError(f"--alphas {value!r}: expected a grid size (an integer >= 2) or a "
                             "comma-separated list of positive penalties") from None


def _estimator_options(func):
    """GraphicalLassoCV's options, shared by run, demo and cohort."""
    options = [
        click.option("--selection", type=click.Choice(["cv", "ebic", "stars"]), default="cv",
                     show_default=True,
                     help="How the penalty is chosen: cross-validated likelihood (the seed's), "
                          "the extended BIC, or stability (StARS; best for graph recovery)."),
        click.option("--alphas", default=None,
                     help="Penalty grid: a number of alphas, or a comma-separated list "
                          "[default: 4 for cv (then refined), 40 for ebic and stars]."),
        click.option("--n-refinements", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Refinements of the alpha grid around the best."),
        click.option("--cv", "cv", type=click.IntRange(min=2), default=None,
                     help="Cross-validation folds [default: 5]."),
        click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Duality-gap tolerance of the final fit (relative, per region) "
                          "[default: the estimator's: 1e-10 for cv, whose folds use 1e-4; "
                          "1e-4 for the ebic and stars paths]."),
        click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True,
                     help="Newton iterations per fit."),
        click.option("--gamma", type=click.FloatRange(min=0), default=0.5, show_default=True,
                     help="EBIC's extra penalty on the number of edges (ebic)."),
        click.option("--beta", type=click.FloatRange(min=0, max=0.5, min_open=True),
                     default=0.05, show_default=True,
                     help="Largest edge instability accepted (stars)."),
        click.option("--n-subsamples", type=click.IntRange(min=2), default=20,
                     show_default=True, help="Subsamples drawn (stars)."),
        click.option("--random-state", type=click.IntRange(min=0), default=0,
                     show_default=True, help="Seed of the subsamples (stars)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _estimator(options: dict, n_jobs: int | None = None):
    """The covariance estimator that ``_estimator_options`` describe."""
    from .pipeline import make_estimator

    return make_estimator(**estimator_params(options), n_jobs=n_jobs)


def estimator_params(options: dict) -> dict:
    """The estimator's options, taken out of a command's keyword arguments (popped)."""
    names = ("selection", "alphas", "n_refinements", "cv", "tol", "max_iter", "gamma", "beta",
             "n_subsamples", "random_state")
    params = {name: options.pop(name) for name in names}
    params["alphas"] = parse_alphas(params["alphas"])
    return params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Functional connectomes from fMRI with an exact sparse inverse covariance.

    \b
    Examples:
      sparse-connectome demo --out demo-out
      sparse-connectome run --func sub-01_bold.nii.gz --atlas msdl --strategy simple --out out
      sparse-connectome run --func sub-01_bold.nii.gz --atlas schaefer-400-7 --strategy simple --out out
      sparse-connectome fetch msdl
    """


def _print_summary(result, out: Path) -> None:
    summary = result.metadata["summary"]
    click.echo(f"regions: {summary['n_regions']}")
    scrubbed = summary["n_volumes_scrubbed"]
    click.echo(f"volumes: {summary['n_volumes']}" + (f" ({scrubbed} scrubbed)" if scrubbed else ""))
    gap = result.metadata.get("duality_gap")
    gap_text = f", duality gap {gap:.2e}" if gap is not None else ""
    click.echo(f"chosen alpha: {result.alpha:.4g}{gap_text}")
    click.echo(f"edges kept: {result.n_edges} of {summary['n_possible_edges']}")
    if result.recovery is not None:
        rec = result.recovery
        click.echo(f"ground-truth recovery: F1 {rec['f1']:.3f} (precision {rec['precision']:.3f},"
                   f" recall {rec['recall']:.3f})")
    click.echo(f"report: {(out / 'report.html').resolve()}")


@cli.command()
@click.option("--out", "out", type=click.Path(file_okay=False), default="demo-out",
              show_default=True, help="Output folder.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the demo subject is written (default: $SPARSE_CONNECTOME_DATA or "
                   "~/.cache/sparse_connectome).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the simulated demo subject.")
@click.option("--atlas", default=None,
              help="An atlas name, simulated offline on the demo grid with the same size and "
                   "kind (schaefer-400-7, difumo-64, harvard-oxford, ...), or an atlas image "
                   "[default: the demo's own 39 MSDL-like maps].")
@click.option("--labels", type=str, default=None,
              help="CSV/TSV of region names for an atlas image (BIDS _dseg.tsv for labels).")
@click.option("--n-jobs", "n_jobs", type=int, default=-1, show_default=True,
              help="Threads fitting the cross-validation folds (or StARS subsamples) at once; "
                   "-1: all cores. Same results for any value.")
@_estimator_options
@_common_options
def demo(out: str, data_dir: str | None, seed: int, atlas: str | None, labels: str | None,
         n_jobs: int, quiet: bool, verbose: int, **options) -> None:
    """Run the main job on the embedded demo subject (offline).

    The demo subject mirrors the seed's data (39 MSDL regions, a 168-volume BOLD
    image at 4 mm with fMRIPrep-style confounds) and has a known ground-truth
    connectome, so the summary reports how well it was recovered. With another
    atlas (--atlas), the ground truth does not apply and is not reported.

    \b
    Examples:
      sparse-connectome demo
      sparse-connectome demo --out results/demo --quiet
      sparse-connectome demo --atlas schaefer-100-7 --out demo-schaefer
    """
    level = _setup_logging(quiet, verbose)
    from .datasets import load_demo
    from .pipeline import (
        check_output_dir,
        demo_atlas_note,
        looks_like_atlas_name,
        parse_atlas_name,
        run_connectome,
        simulated_demo_atlas,
    )

    own = atlas is None or (looks_like_atlas_name(atlas) and parse_atlas_name(atlas).name == "msdl")
    check_output_dir(Path(out))  # before the demo subject is generated
    data = load_demo(data_dir=data_dir, random_state=seed)
    chosen = data if own else (simulated_demo_atlas(atlas, Path(data.data_dir).parent)
                               if looks_like_atlas_name(atlas) else atlas)
    estimator = _estimator(options, n_jobs)
    result = run_connectome(data.func[0], chosen, data.confounds[0], labels=labels, t_r=data.t_r,
                            estimator=estimator,
                            true_precision=data.true_precision if own else None,
                            recovery_note=None if own else demo_atlas_note(atlas),
                            output_dir=out, verbose=level)
    _print_summary(result, Path(out))


@cli.command()
@click.option("--func", required=True, type=str, help="4D BOLD image (.nii or .nii.gz).")
@click.option("--confounds", type=str, default=None,
              help="Confounds TSV, one row per volume (used as is).")
@click.option("--atlas", required=True, type=str,
              help="An atlas name, downloaded once: msdl, schaefer-<n>-<k> (n = 100..1000, k = 7 "
                   "or 17), difumo-<d> (64..1024), harvard-oxford[-<name>]; or a 4D "
                   "probabilistic maps image, or a 3D labels image.")
@click.option("--labels", type=str, default=None,
              help="CSV/TSV of region names ('name' column; optional x,y,z and 'net name'); for "
                   "a labels image, a BIDS _dseg.tsv ('index' and 'name' columns).")
@click.option("--strategy", type=click.Choice(["simple", "scrubbing", "compcor"]), default=None,
              help="fMRIPrep denoising preset; reads the confounds file beside --func.")
@click.option("--t-r", "t_r", type=float, default=None, callback=_positive_seconds,
              help="Repetition time in seconds (default: from the image header).")
@click.option("--edge-threshold", default="80%", show_default=True,
              help="Edges shown in the graphs: a percentile ('80%' keeps the strongest 20%) "
                   "or an absolute value.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder.")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None,
              help="Folder for an on-disk cache of the extraction.")
@click.option("--n-jobs", "n_jobs", type=int, default=-1, show_default=True,
              help="Threads fitting the cross-validation folds (or StARS subsamples) at once; "
                   "-1: all cores. Same results for any value.")
@_estimator_options
@_common_options
def run(func: str, confounds: str | None, atlas: str, labels: str | None, strategy: str | None,
        t_r: float | None, edge_threshold: str, out: str, cache: str | None, n_jobs: int,
        quiet: bool, verbose: int, **options) -> None:
    """Compute a sparse connectome from one BOLD image and an atlas.

    \b
    Examples:
      sparse-connectome run --func sub-01_task-rest_desc-preproc_bold.nii.gz \\
          --atlas msdl --strategy simple --out results/sub-01
      sparse-connectome run --func bold.nii.gz --confounds confounds.tsv \\
          --atlas maps.nii.gz --labels labels.csv --t-r 2 --out results
      sparse-connectome run --func bold.nii.gz --strategy simple \\
          --atlas schaefer-400-7 --out results/schaefer
      sparse-connectome run --func bold.nii.gz --strategy simple \\
          --atlas atlas_dseg.nii.gz --labels atlas_dseg.tsv --out results/custom
    """
    level = _setup_logging(quiet, verbose)
    threshold = parse_edge_threshold(edge_threshold)
    from .pipeline import run_connectome

    estimator = _estimator(options, n_jobs)
    result = run_connectome(func, atlas, confounds, labels=labels, strategy=strategy, t_r=t_r,
                            estimator=estimator, edge_threshold=threshold, output_dir=out, memory=cache,
                            verbose=level)
    _print_summary(result, Path(out))


@cli.command()
@click.argument("dataset")
@click.option("--n-subjects", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of participants (development-fmri only).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Download folder (default: $SPARSE_CONNECTOME_DATA or "
                   "~/.cache/sparse_connectome).")
@_common_options
def fetch(dataset: str, n_subjects: int, data_dir: str | None, quiet: bool, verbose: int) -> None:
    """Download a real dataset or atlas (needs internet; cached and verified).

    DATASET is development-fmri or an atlas name, as --atlas takes it: msdl,
    schaefer-<n>-<k>[-1mm|-2mm], difumo-<d>[-2mm|-3mm], harvard-oxford or
    harvard-oxford-<name>.

    \b
    Examples:
      sparse-connectome fetch msdl
      sparse-connectome fetch schaefer-400-7
      sparse-connectome fetch difumo-1024 --data-dir data
      sparse-connectome fetch development-fmri --n-subjects 2 --data-dir data
    """
    level = _setup_logging(quiet, verbose)
    from . import datasets

    if dataset.strip().lower() == "development-fmri":
        data = datasets.fetch_development_fmri(n_subjects=n_subjects, data_dir=data_dir,
                                               verbose=level)
        for bold, conf in zip(data.func, data.confounds):
            click.echo(f"func: {bold}")
            click.echo(f"confounds: {conf}")
        return
    from .pipeline import fetch_named_atlas, parse_atlas_name

    try:
        spec = parse_atlas_name(dataset)
    except SparseConnectomeError as exc:
        raise ParameterError(f"DATASET {dataset!r}: expected 'development-fmri' or an atlas "
                             f"name; {exc}") from None
    atlas = fetch_named_atlas(spec, data_dir=data_dir, verbose=level)
    click.echo(f"maps: {atlas.maps}")
    click.echo(f"kind: {atlas.get('kind', spec.kind)}")
    click.echo(f"regions: {len(atlas.labels)}")


@cli.command(context_settings={"max_content_width": 100})
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False),
                metavar="[INPUT_DIR] OUTPUT_DIR")
@click.option("--demo", "demo", type=click.IntRange(min=1, max=1000), default=None,
              help="Use the simulated demo cohort of N subjects (offline) as input.")
@click.option("--participant-label", multiple=True,
              help="Subject to process (repeatable; with or without 'sub-'). Default: all.")
@click.option("--task", default=None, help="Keep the runs of this task only.")
@click.option("--space", default="MNI152NLin2009cAsym", show_default=True,
              help="Template space of the BOLD runs ('any' for whichever is there).")
@click.option("--atlas", default="msdl", show_default=True,
              help="An atlas name (msdl, schaefer-<n>-<k>, difumo-<d>, harvard-oxford...; "
                   "simulated offline with --demo), a 4D probabilistic maps image or a 3D "
                   "labels image.")
@click.option("--labels", type=str, default=None,
              help="CSV/TSV of region names (a BIDS _dseg.tsv for a labels image).")
@click.option("--atlas-label", default=None,
              help="The atlas-<label> of the output names [default: from --atlas].")
@click.option("--strategy", type=click.Choice(["simple", "scrubbing", "compcor"]),
              default="simple", show_default=True, help="fMRIPrep denoising preset.")
@click.option("--edge-threshold", default="80%", show_default=True,
              help="Edges shown in the reports' graphs.")
@click.option("--level", type=click.Choice(["participant", "group", "all"]), default="all",
              show_default=True, help="Compute the runs, summarise the group, or both.")
@click.option("--reports/--no-reports", default=True, show_default=True,
              help="Write a report per run (the group report is always written).")
@click.option("--n-workers", type=click.IntRange(min=1), default=None,
              help="Workers of the local Dask cluster [default: one per core].")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler.")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), default=None,
              help="Scheduler file of an existing Dask cluster.")
@click.option("--retry-failed", is_flag=True, help="Compute again the runs that failed before.")
@click.option("--group-model", type=click.Choice(["group-sparse", "group-sparse-stars"]),
              default=None,
              help="Also fit a group model at the group level: 'group-sparse' estimates all "
                   "subjects at once with one shared support (desc-groupsparse outputs), its "
                   "penalty by cross-validation as nilearn does; 'group-sparse-stars' chooses "
                   "it by stability, for reading the shared graph.")
@_estimator_options
@_common_options
def cohort(folders: tuple[str, ...], demo: int | None, participant_label: tuple[str, ...],
           task: str | None, space: str, atlas: str, labels: str | None,
           atlas_label: str | None, strategy: str,
           edge_threshold: str, level: str, reports: bool, n_workers: int | None,
           scheduler: str | None, scheduler_file: str | None, retry_failed: bool,
           group_model: str | None, quiet: bool, verbose: int, **options) -> int:
    """Connectomes of every run of a study: cohort INPUT_DIR OUTPUT_DIR.

    INPUT_DIR is an fMRIPrep derivatives folder; OUTPUT_DIR receives BIDS
    derivatives (per run: time series, covariance, precision and partial
    correlation with JSON sidecars, a report; group/: the participants table,
    mean and consistency matrices, the group report). Runs go to Dask workers;
    a re-run finishes only what is missing or changed.

    Exit codes: 0 when every run succeeded; 3 when some failed (each named in
    group/participants_connectome.tsv and on stderr); 2 for bad usage or input.

    \b
    Examples:
      sparse-connectome cohort /data/derivatives/fmriprep /data/derivatives/connectome
      sparse-connectome cohort --demo 8 out-cohort
      sparse-connectome cohort --demo 4 --atlas schaefer-100-7 out-schaefer
      sparse-connectome cohort in out --participant-label 01 --participant-label 02
      sparse-connectome cohort in out --scheduler-file ~/scheduler.json
    """
    level_ = _setup_logging(quiet, verbose)
    if demo is None and len(folders) != 2:
        raise ParameterError(f"expected INPUT_DIR and OUTPUT_DIR, got {len(folders)} "
                             "folder(s) (or --demo N OUTPUT_DIR)")
    if demo is not None and len(folders) != 1:
        raise ParameterError(f"with --demo, expected OUTPUT_DIR alone, got {len(folders)} "
                             "folder(s)")
    input_dir, output_dir = (None, folders[0]) if demo is not None else folders
    from .pipeline import run_cohort

    result = run_cohort(
        input_dir, output_dir, demo=demo, participant_label=list(participant_label) or None,
        task=task, space=None if space == "any" else space, atlas=atlas, labels=labels,
        atlas_label=atlas_label,
        strategy=strategy, **estimator_params(options),
        edge_threshold=parse_edge_threshold(edge_threshold),
        level=level, reports=reports, n_workers=n_workers, scheduler=scheduler,
        scheduler_file=scheduler_file, retry_failed=retry_failed, group_model=group_model,
        verbose=level_)
    _print_cohort_summary(result)
    return result.exit_code


def _print_cohort_summary(result) -> None:
    counts = result.table["status"].value_counts()
    parts = ", ".join(f"{int(counts[s])} {s}" for s in
                      ("computed", "reused", "failed", "unpaired", "missing") if s in counts)
    click.echo(f"{len(result.table)} runs: {parts}")
    for _, row in result.table[~result.table["status"].isin(("computed", "reused"))].iterrows():
        where = " ".join(str(v) for v in (row["participant_id"], row["session"], row["task"],
                                          row["run"]) if v is not None and v == v)
        click.echo(f"{PROG}: failed: {where}: {row['error']}", err=True)
    for name in ("table", "report"):
        if name in result.paths:
            click.echo(f"{name}: {result.paths[name]}")


@cli.command("demo-data")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write it (default: $SPARSE_CONNECTOME_DATA or "
                   "~/.cache/sparse_connectome).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--cohort", "n_cohort", type=click.IntRange(min=1, max=1000), default=None,
              help="Write a demo cohort of N subjects (fMRIPrep layout) instead.")
@_common_options
def demo_data(data_dir: str | None, seed: int, n_cohort: int | None, quiet: bool,
              verbose: int) -> None:
    """Write the embedded demo subject (or cohort) and print where its files are.

    \b
    Examples:
      sparse-connectome demo-data
      sparse-connectome demo-data --data-dir /tmp/demo
      sparse-connectome demo-data --cohort 8
    """
    _setup_logging(quiet, verbose)
    if n_cohort is not None:
        from .datasets import load_demo_cohort

        cohort = load_demo_cohort(n_subjects=n_cohort, data_dir=data_dir, random_state=seed)
        click.echo(f"root: {cohort.root}")
        click.echo(f"subjects: {len(cohort.subjects)}")
        click.echo(f"maps: {cohort.maps}")
        return
    from .datasets import load_demo

    data = load_demo(data_dir=data_dir, random_state=seed)
    click.echo(f"func: {data.func[0]}")
    click.echo(f"confounds: {data.confounds[0]}")
    click.echo(f"maps: {data.maps}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command and turn errors into exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    nul = next((a for a in args if isinstance(a, str) and "\x00" in a), None)
    if nul is not None:  # no path may hold one: os.stat would raise ValueError
        click.echo(f"{PROG}: error: argument {nul!r} holds a NUL byte; expected a value "
                   "without one", err=True)
        return 2
    verbose = any(a in ("-v", "--verbose") or re.fullmatch(r"-v+", a) for a in args)
    quiet = any(a in ("-q", "--quiet") for a in args)
    previous_term = _install_sigterm()
    caught: list[warnings.WarningMessage] = []
    try:
        # Warnings are held back: on success each is shown as one line; on failure
        # the error line alone is printed (all of them with --verbose).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            # Not cli.main(): it would print a blank line on Ctrl-C before re-raising.
            with cli.make_context(PROG, args) as ctx:
                code = cli.invoke(ctx)
        if not quiet or verbose:
            _print_warnings(caught)
        if isinstance(code, int) and code:
            return code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except _Terminated:
        click.echo(f"{PROG}: terminated", err=True)
        return 143
    except click.exceptions.Abort:
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except click.ClickException as exc:  # usage errors: unknown option, missing value, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare command: show the help
            ctx = getattr(exc, "ctx", None)
            click.echo(ctx.get_help() if ctx is not None else cli.get_help(
                click.Context(cli, info_name=PROG)))
            return 0
        click.echo(f"{PROG}: error: {exc.format_message()} (see '{PROG} --help')", err=True)
        return 2
    except SparseConnectomeError as exc:
        if verbose:
            _print_warnings(caught)
        message = " ".join(str(exc).split())
        click.echo(f"{PROG}: error: {message}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if verbose:
            _print_warnings(caught)
            traceback.print_exc()
        message = " ".join(str(exc).split())
        click.echo(f"{PROG}: unexpected error: {type(exc).__name__}: {message} "
                   "(run with --verbose for the traceback)", err=True)
        return 1
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return 0


class _Terminated(BaseException):
    """SIGTERM, raised as an exception so that staged outputs are cleaned up."""


def _raise_terminated(signum, frame):  # pragma: no cover - exercised in a subprocess
    raise _Terminated()


def _install_sigterm():
    """Turn SIGTERM into an exception (main thread only); return the old handler."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_IGN,):
            return None
        signal.signal(signal.SIGTERM, _raise_terminated)
        return previous if previous is not None else signal.SIG_DFL
    except ValueError:  # not in the main thread (e.g. an embedding application)
        return None


def _print_warnings(caught) -> None:
    """Show each distinct warning as one line on stderr."""
    seen = set()
    for item in caught:
        message = " ".join(str(item.message).split())
        key = (item.category, message)
        if key in seen:
            continue
        seen.add(key)
        click.echo(f"{PROG}: warning: {item.category.__name__}: {message}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
