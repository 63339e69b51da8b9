"""Safe extraction of downloaded archives (zip and tar).

What comes from the network may be malicious: every entry is checked before
anything is written (no absolute path, no ``..``, no link pointing outside of
the destination, no special file), the archive is extracted into a temporary
folder inside the destination, and the top-level entries are then renamed into
place, so a refused or broken archive leaves the destination as it was.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from ..errors import DownloadError

__all__ = ["extract_tar_safely", "extract_zip_safely"]


def _unsafe_reason(name: str, link_target: str | None) -> str | None:
    """Why a zip entry may not be extracted, or None when it is safe."""
    path = name.replace("\\", "/")
    if "\x00" in path:
        return "a NUL byte in the name"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "an absolute path"
    if ".." in path.split("/"):
        return "a '..' component"
    if link_target is not None:
        link = link_target.replace("\\", "/")
        if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
            return f"a symbolic link to the absolute path {link_target!r}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        if resolved == ".." or resolved.startswith("../"):
            return f"a symbolic link to {link_target!r}, outside of the folder"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def extract_zip_safely(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a zip archive into ``dest``, refusing unsafe entries.

    Every entry is checked before anything is written: an absolute path, a
    ``..`` component or a symbolic link that points outside of ``dest`` makes
    the whole archive refused. The archive is extracted into a temporary folder
    inside ``dest`` and each top-level entry is then renamed into place, so a
    failure leaves ``dest`` as it was.

    Parameters
    ----------
    archive : path-like
        The zip file.
    dest : path-like
        The folder to extract into (created if needed).

    Returns
    -------
    list of pathlib.Path
        The top-level files and folders created in ``dest``.

    Raises
    ------
    DownloadError
        If the archive is not a readable zip file, fails its CRC check, or holds
        an unsafe entry (the message names the archive and the entry).

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import zipfile
    >>> from sparse_connectome.datasets._archives import extract_zip_safely
    >>> folder = tempfile.mkdtemp()
    >>> archive = os.path.join(folder, "good.zip")
    >>> with zipfile.ZipFile(archive, "w") as zf:
    ...     zf.writestr("atlas/labels.csv", "x,y,z")
    >>> [p.name for p in extract_zip_safely(archive, os.path.join(folder, "out"))]
    ['atlas']

    An entry that would land outside of the folder refuses the whole archive:

    >>> with zipfile.ZipFile(archive, "w") as zf:
    ...     zf.writestr("../evil.txt", "")
    >>> extract_zip_safely(archive, os.path.join(folder, "out"))
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.DownloadError: Archive ... holds the unsafe entry '../evil.txt' ...
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"Archive {archive} is not a readable zip file ({exc}); "
                            "it may be corrupted") from exc
    with zf:
        infos = zf.infolist()
        links: dict[str, str] = {}
        for info in infos:
            link = None
            if _is_symlink(info):
                link = zf.read(info).decode("utf-8", errors="replace")
                links[info.filename] = link
            reason = _unsafe_reason(info.filename, link)
            if reason is not None:
                raise DownloadError(f"Archive {archive} holds the unsafe entry "
                                    f"{info.filename!r} ({reason}); nothing was extracted")
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise DownloadError(f"Archive {archive} cannot be read ({exc})") from exc
        if bad is not None:
            raise DownloadError(f"Archive {archive} is corrupted: entry {bad!r} fails its "
                                "CRC check; nothing was extracted")
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            for info in infos:
                name = info.filename.replace("\\", "/")
                if info.filename in links:
                    out = tmp / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(links[info.filename], out)
                else:
                    zf.extract(info, tmp)
            created = _move_into(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return created


def _move_into(tmp: Path, dest: Path) -> list[Path]:
    """Rename each top-level entry of ``tmp`` onto ``dest``, replacing what is there."""
    created = []
    for item in sorted(tmp.iterdir()):
        final = dest / item.name
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(item, final)
        created.append(final)
    return created


def _tar_unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why a tar member may not be extracted, or None when it is safe."""
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "a device, FIFO or other special file"
    reason = _unsafe_reason(member.name, member.linkname if member.issym() else None)
    if reason is None and member.islnk():
        # A hard link names another member, relative to the archive's root.
        inner = _unsafe_reason(member.linkname, None)
        if inner is not None:
            reason = f"a hard link to {member.linkname!r} ({inner})"
    return reason


_TAR_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def extract_tar_safely(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a tar archive (plain, gzip, bzip2 or xz) into ``dest``, refusing unsafe members.

    Every member is checked before anything is written: an absolute path, a
    ``..`` component, a link that points outside of ``dest`` or a special file
    (device, FIFO) makes the whole archive refused. Extraction then goes through
    Python's ``"data"`` filter as a second guard (it also drops permission bits
    such as setuid) into a temporary folder inside ``dest``, and each top-level
    entry is renamed into place, so a failure leaves ``dest`` as it was.

    Parameters
    ----------
    archive : path-like
        The tar file (``.tar``, ``.tgz``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``).
    dest : path-like
        The folder to extract into (created if needed).

    Returns
    -------
    list of pathlib.Path
        The top-level files and folders created in ``dest``.

    Raises
    ------
    DownloadError
        If the archive is not a readable tar file, is truncated or corrupted, or
        holds an unsafe member (the message names the archive and the member).

    Examples
    --------
    >>> import io
    >>> import os
    >>> import tarfile
    >>> import tempfile
    >>> from sparse_connectome.datasets._archives import extract_tar_safely
    >>> folder = tempfile.mkdtemp()
    >>> archive = os.path.join(folder, "good.tgz")
    >>> def add(tf, name, data=b"x"):
    ...     info = tarfile.TarInfo(name)
    ...     info.size = len(data)
    ...     tf.addfile(info, io.BytesIO(data))
    >>> with tarfile.open(archive, "w:gz") as tf:
    ...     add(tf, "data/atlases/labels.xml")
    >>> [p.name for p in extract_tar_safely(archive, os.path.join(folder, "out"))]
    ['data']

    A member that would land outside of the folder refuses the whole archive:

    >>> with tarfile.open(archive, "w:gz") as tf:
    ...     add(tf, "../evil.txt")
    >>> extract_tar_safely(archive, os.path.join(folder, "out"))
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.DownloadError: Archive ... holds the unsafe member '../evil.txt' ...
    """
    archive, dest = Path(archive), Path(dest)
    try:
        tf = tarfile.open(archive, "r:*")
    except _TAR_READ_ERRORS as exc:
        raise DownloadError(f"Archive {archive} is not a readable tar file ({exc}); "
                            "it may be corrupted") from exc
    with tf:
        try:
            # Reads every header, hence the whole (compressed) stream: a
            # truncated archive is found here, before anything is written.
            members = tf.getmembers()
        except _TAR_READ_ERRORS as exc:
            raise DownloadError(f"Archive {archive} is truncated or corrupted ({exc}); "
                                "nothing was extracted") from exc
        for member in members:
            reason = _tar_unsafe_reason(member)
            if reason is not None:
                raise DownloadError(f"Archive {archive} holds the unsafe member "
                                    f"{member.name!r} ({reason}); nothing was extracted")
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            try:
                # The "data" filter came with Python 3.11.4; before it, the checks
                # above are the guard.
                guard = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(tmp, members=members, **guard)
            except _TAR_READ_ERRORS as exc:
                raise DownloadError(f"Archive {archive} cannot be extracted ({exc}); "
                                    "nothing was extracted") from exc
            created = _move_into(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return created
