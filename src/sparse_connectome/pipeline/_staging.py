"""Output folder handling of :func:`~sparse_connectome.pipeline.run_connectome`.

Results are staged in a hidden folder beside the output folder and moved in only
when complete, with SIGINT/SIGTERM held during the move, so that a failed or
interrupted run leaves no partial file and a re-run replaces results cleanly
(other files in the folder are kept)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError


def check_output_folder(output_dir: Path, output_files: Sequence[str]) -> None:
    """Fail before any work when the output folder cannot be written."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"output folder {str(output_dir)!r} exists and is not a folder")
    if output_dir.is_dir():
        blocked = [name for name in output_files
                   if (output_dir / name).exists() and not (output_dir / name).is_file()]
        if blocked:
            raise OutputError(f"output folder {str(output_dir)!r} holds {blocked[0]!r} as a "
                              "folder (or other non-file); expected a file of that name or "
                              "none, as the results are written there")
    ancestor = output_dir if output_dir.exists() else output_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"output folder {str(output_dir)!r} cannot be created: "
                          f"{str(ancestor)!r} is a file, not a folder")
    # Try for real: permission bits say nothing for root or on read-only mounts.
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise OutputError(f"output folder {str(output_dir)!r} cannot be written: "
                          f"{exc.strerror or exc} in {str(ancestor)!r}") from None


@contextmanager
def staging_dir(output_dir: Path) -> Iterator[Path]:
    """A hidden folder beside ``output_dir`` whose files move into it on success."""
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    # The name is chosen before the folder exists and the folder is made inside the
    # try: a signal at any moment leaves either no folder or one that finally removes
    # (tempfile.mkdtemp could be interrupted between creating the folder and returning).
    stage = parent / f".{output_dir.name}.partial-{secrets.token_hex(6)}"
    try:
        while True:
            try:
                os.mkdir(stage, 0o700)
                break
            except FileExistsError:
                stage = parent / f".{output_dir.name}.partial-{secrets.token_hex(6)}"
        yield stage
        with _signals_deferred():
            if not output_dir.exists():
                # A new folder: one atomic rename puts every file in place at once.
                os.rename(stage, output_dir)
                os.chmod(output_dir, 0o777 & ~_umask())
            else:
                for item in sorted(stage.iterdir()):
                    os.replace(item, output_dir / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while results move into place, so that an interruption
    cannot leave a mix of old and new files (delivered right after)."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not POSIX, or not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
