"""Cached, resumable, verified and atomic downloads.

The download layer stands on :func:`pooch.retrieve`, which streams into a
temporary file beside the target, checks the hash and only then moves the file
into place. Pooch's own HTTP downloader restarts from zero after an interrupted
transfer, so :class:`ResumableHTTPDownloader` (a pooch downloader) keeps the
bytes received so far in a hidden ``.<name>.part`` file and asks the server for
the rest with an HTTP ``Range`` request on the next call.

What a later call trusts
------------------------
Only a file under its final name, written by a transfer that completed and was
verified. Beside it, a hidden ``.<name>.download.json`` records the URL, size and
SHA-256 seen at download time; on a cache hit the file is checked against it
(and against the known hash, where there is one) and downloaded again when it
no longer matches. A ``.part`` file is never used as data: it is only a
starting point for resuming, and the result is verified before it is trusted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pooch
import requests
import urllib3
from tqdm.auto import tqdm

from .._utils.atomic import atomic_write_text
from ..errors import DownloadError
from ._archives import extract_zip_safely  # noqa: F401 - kept importable from here

__all__ = [
    "ResumableHTTPDownloader",
    "download_file",
    "extract_zip_safely",
    "forget_download",
    "offline_hint",
]

logger = logging.getLogger(__name__)

#: (connect, read) timeouts in seconds for every HTTP request.
TIMEOUT = (15.0, 60.0)
#: Bytes read from the socket between two writes to the partial file.
CHUNK_SIZE = 1 << 16

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def offline_hint(url: str, reason: object) -> str:
    """The message of the error raised when a server cannot be reached.

    Examples
    --------
    >>> from sparse_connectome.datasets._download import offline_hint
    >>> print(offline_hint("https://example.org/a.zip", "timed out"))
    Cannot download https://example.org/a.zip: the server could not be reached (timed out). ...
    """
    return (f"Cannot download {url}: the server could not be reached ({reason}). "
            "You may be offline. The embedded demo subject needs no network: use "
            "sparse_connectome.datasets.load_demo().")


def _part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def _meta_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.download.json")


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def _parse_known_hash(known_hash: str | None) -> str | None:
    """Lower-case hex SHA-256 from ``"sha256:<hex>"`` or ``"<hex>"``; None if unknown."""
    if known_hash is None:
        return None
    alg, _, value = known_hash.partition(":")
    if not value:
        alg, value = "sha256", alg
    if alg.lower() != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise DownloadError(f"known_hash={known_hash!r} is not a SHA-256 hash; expected "
                            "'sha256:' followed by 64 hexadecimal digits")
    return value.lower()


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch logs every download at INFO, and when no hash is known it prints the
    # file's hash as advice to the data provider; our own progress bar and log
    # messages say what the user needs.
    pooch_logger = pooch.get_logger()
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        pooch_logger.setLevel(level)


class ResumableHTTPDownloader:
    """A pooch downloader that resumes interrupted transfers with HTTP ``Range``.

    Parameters
    ----------
    part_file : path-like
        Where the bytes received so far are kept between calls.
    resume : bool, default=True
        Continue from ``part_file`` when it exists; otherwise start afresh.
    progressbar : bool, default=True
        Show a tqdm progress bar on stderr.
    known_size : int, optional
        The expected size in bytes, checked once the transfer ends.
    timeout : tuple of float
        (connect, read) timeouts in seconds.

    Notes
    -----
    Called by pooch as ``downloader(url, output_file, pooch_obj)``. The transfer
    goes to ``part_file``; only when it is complete (the size announced by the
    server, and ``known_size`` where given, are reached) is it renamed onto
    ``output_file``, pooch's temporary file, which pooch then hash-checks and
    moves to the final name. A server that ignores ``Range`` (answers 200) gets
    a full download; a ``Content-Range`` that does not start where the partial
    file ends is not trusted either and the transfer restarts from zero.
    """

    def __init__(self, part_file: str | os.PathLike, resume: bool = True,
                 progressbar: bool = True, known_size: int | None = None,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
        self.part_file = Path(part_file)
        self.resume = resume
        self.progressbar = progressbar
        self.known_size = known_size
        self.timeout = timeout
        #: Label of the progress bar (the file name).
        self.desc = ""
        #: Byte offset of the last request (0 for a full download); for tests and logs.
        self.resumed_from = 0

    def __call__(self, url: str, output_file, pooch_obj=None, check_only: bool = False):
        if check_only:
            # pooch's availability check: does the server have the file? A GET
            # whose body is never read (some servers refuse HEAD).
            try:
                with requests.get(url, stream=True, timeout=self.timeout,
                                  headers={"Accept-Encoding": "identity"}) as response:
                    return response.status_code < 400
            except requests.RequestException:
                return False
        part = self.part_file
        if not self.resume:
            part.unlink(missing_ok=True)
        with requests.Session() as session:
            offset = part.stat().st_size if part.exists() else 0
            complete = self._transfer(session, url, part, offset)
            if not complete:
                # Range not usable (e.g. the partial file is larger than the
                # remote file): start again from an empty file, once.
                part.unlink(missing_ok=True)
                self._transfer(session, url, part, 0)
        size = part.stat().st_size
        if self.known_size is not None and size != self.known_size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"Download of {url} gave {size} bytes, expected "
                                f"{self.known_size}; the file was discarded")
        os.replace(part, output_file)

    def _transfer(self, session: requests.Session, url: str, part: Path, offset: int) -> bool:
        """Fetch ``url`` into ``part`` from ``offset``. False: restart from zero."""
        # identity: byte ranges and sizes must refer to the file itself, not to
        # a compressed transfer of it.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadError(offline_hint(url, _short_reason(exc))) from exc
        except requests.RequestException as exc:
            raise DownloadError(f"Cannot download {url}: {exc}") from exc
        with response:
            if offset and response.status_code == 416:
                # Range beyond the end: the partial file is either already the
                # whole file (a crash between transfer and rename) or stale.
                match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
                return bool(match) and int(match.group(1)) == offset
            if response.status_code >= 400:
                raise DownloadError(f"Cannot download {url}: the server answered HTTP "
                                    f"{response.status_code} {response.reason}")
            if offset and response.status_code == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    logger.info("Server sent an unexpected range for %s; restarting", url)
                    return False
                total = None if match.group(3) == "*" else int(match.group(3))
                mode = "ab"
                logger.info("Resuming download of %s at byte %d", url, offset)
            else:
                if offset:
                    logger.info("Server ignored the Range request for %s; "
                                "downloading the whole file", url)
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            self.resumed_from = offset
            received = offset
            with open(part, mode) as fh, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=self.desc or url,
                disable=not self.progressbar, leave=False,
            ) as bar:
                try:
                    for chunk in _body_chunks(response):
                        fh.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except _READ_ERRORS as exc:
                    fh.flush()
                    expected = "an unknown number of" if total is None else total
                    raise DownloadError(
                        f"Download of {url} was interrupted after {received} of {expected} "
                        f"bytes ({_short_reason(exc)}). Call the fetcher again to resume "
                        "the transfer.") from exc
        if total is not None and received > total:
            part.unlink(missing_ok=True)
            raise DownloadError(f"Download of {url} gave {received} bytes where the server "
                                f"announced {total}; the file was discarded")
        if total is not None and received < total:
            # The server closed the connection early without an error from the
            # HTTP stack; keep the partial file so that a later call resumes.
            raise DownloadError(f"Download of {url} was interrupted after {received} of "
                                f"{total} bytes. Call the fetcher again to resume the transfer.")
        return True


_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException, OSError)


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The raw body, chunk by chunk, as it arrives.

    ``read1`` hands over every byte received before a connection breaks, so
    the partial file holds all of them; ``iter_content`` would drop the chunk
    being filled (older urllib3 lacks ``read1``: fall back to it).
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2
        yield from response.iter_content(chunk_size=CHUNK_SIZE)
        return
    while True:
        chunk = read1(CHUNK_SIZE, decode_content=False)
        if not chunk:
            return
        yield chunk


def _short_reason(exc: BaseException) -> str:
    # requests nests the root cause several levels deep; the innermost is the
    # one a user can act on (e.g. "Connection refused").
    root = exc
    while root.__context__ is not None and root.__context__ is not root:
        root = root.__context__
    text = str(root) or type(root).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _read_meta(target: Path) -> dict | None:
    try:
        return json.loads(_meta_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cached_is_valid(target: Path, sha256: str | None) -> bool:
    """Whether ``target`` may be used without downloading it again."""
    if not target.is_file():
        return False
    meta = _read_meta(target)
    if meta is None and sha256 is None:
        # Placed there by the user (or by a process that died between the final
        # rename and writing the metadata): nothing to check it against.
        return True
    size = target.stat().st_size
    if meta is not None and meta.get("size") not in (None, size):
        return False
    digest = _sha256(target)
    if sha256 is not None and digest != sha256:
        return False
    return meta is None or meta.get("sha256") in (None, digest)


def download_file(url: str, target: str | os.PathLike, *, known_hash: str | None = None,
                  known_size: int | None = None, resume: bool = True,
                  verbose: int = 1) -> Path:
    """Download ``url`` to ``target`` unless a verified copy is already there.

    Parameters
    ----------
    url : str
        The file's URL.
    target : path-like
        The final file name. Its folder is created if needed.
    known_hash : str, optional
        ``"sha256:<hex>"`` (or bare hex). Checked after the download and on each
        cache hit.
    known_size : int, optional
        The expected size in bytes.
    resume : bool, default=True
        Continue an interrupted transfer from the partial file left by an
        earlier call.
    verbose : int, default=1
        0 shows nothing; 1 or more shows a progress bar.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    DownloadError
        When the server cannot be reached (the message names the URL and points
        to :func:`~sparse_connectome.datasets.load_demo`), answers an HTTP error,
        the transfer is interrupted (call again to resume), or the file does not
        match its known hash or size (nothing is left under ``target``).
    """
    target = Path(target)
    sha256 = _parse_known_hash(known_hash)
    if _cached_is_valid(target, sha256):
        if _read_meta(target) is None:
            _write_meta(target, url)
        logger.debug("Using cached %s", target)
        return target
    if target.exists():
        logger.warning("Cached file %s does not match what was downloaded (size or "
                       "SHA-256 changed); downloading it again", target)
        target.unlink()
    _meta_path(target).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    downloader = ResumableHTTPDownloader(_part_path(target), resume=resume,
                                         progressbar=verbose > 0, known_size=known_size)
    downloader.desc = target.name
    logger.info("Downloading %s to %s", url, target)
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash=None if sha256 is None else f"sha256:{sha256}",
                           fname=target.name, path=target.parent, downloader=downloader)
    except ValueError as exc:
        # pooch found a hash mismatch and deleted its temporary file; the bytes
        # are gone, so nothing corrupted can be picked up later.
        raise DownloadError(f"File {target.name} downloaded from {url} is corrupted: its "
                            f"SHA-256 does not match the known hash sha256:{sha256}. The "
                            "file was discarded; try again, or check the URL.") from exc
    except requests.RequestException as exc:  # pragma: no cover - converted above
        raise DownloadError(f"Cannot download {url}: {exc}") from exc
    _write_meta(target, url)
    return target


def _write_meta(target: Path, url: str) -> None:
    meta = {"url": url, "size": target.stat().st_size, "sha256": _sha256(target)}
    atomic_write_text(_meta_path(target), json.dumps(meta, indent=1) + "\n")


def forget_download(target: str | os.PathLike) -> None:
    """Remove a downloaded file, its metadata and any partial transfer.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets._download import forget_download
    >>> path = os.path.join(tempfile.mkdtemp(), "file.bin")
    >>> open(path, "wb").close()
    >>> forget_download(path)
    >>> os.path.exists(path)
    False
    """
    target = Path(target)
    for path in (target, _meta_path(target), _part_path(target)):
        path.unlink(missing_ok=True)
