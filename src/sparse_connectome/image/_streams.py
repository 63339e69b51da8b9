"""Sequential readers of image files, for the chunked reads of :mod:`._io`.

* :class:`PlainStream` reads an uncompressed file (or anything nibabel opens).
* :class:`GzipStream` decompresses a ``.nii.gz`` in large pieces with ISA-L, and
  checks each gzip member's trailer itself: the CRC-32 and the length of what
  the member decompressed to (RFC 1952), so that a damaged file fails with an
  :class:`~sparse_connectome.errors.ImageError` that names the file and both
  values, instead of zlib's bare "incorrect data check".

Both offer ``skip(n)``, ``readinto(view)`` and ``finish()`` (read to the end of
the file and check what is left to check), and are context managers.
"""

from __future__ import annotations

import zlib
from typing import Any, Self

from isal import isal_zlib
from nibabel.openers import ImageOpener

from ..errors import ImageError

__all__ = ["GzipStream", "PlainStream", "open_stream"]


class PlainStream:
    """Sequential reader of an uncompressed (or nibabel-openable) file."""

    def __init__(self, fobj: Any) -> None:
        self._fobj = fobj

    def skip(self, n: int) -> None:
        self._fobj.seek(n)

    def readinto(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            n = self._fobj.readinto(view[got:])
            if not n:
                break
            got += n
        return got

    def finish(self) -> None:
        """Nothing to check past the data of an uncompressed file."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fobj.close_if_mine()  # never close a file object the caller passed


class GzipStream:
    """Sequential reader of a gzip file, decompressing large pieces with ISA-L.

    Faster than :mod:`gzip`: no 8 KiB buffering, one decompress call per MiB,
    and Intel's ISA-L inflater (``isal.isal_zlib``, zlib's API), which inflates
    a BOLD series 2.2x faster than zlib here and also releases the GIL.
    Each member is inflated raw (no zlib gzip wrapper) and, once its last byte
    is read, its trailer is checked against what it decompressed to: the CRC-32
    (``isal_zlib.crc32``, piece by piece, as the data goes by) and the length modulo
    2**32 (ISIZE). A mismatch raises an :class:`ImageError` naming the file, the
    values found and those the trailer expects.

    What a read that stops early has checked: every member it read to the end,
    nothing of the member it stopped in (its CRC covers all of its data) nor of
    any later one. Only a read to the end of the file, e.g. with :meth:`finish`,
    checks every byte; the readers of :mod:`._io` always read to the end.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> from sparse_connectome.image._streams import GzipStream
    >>> path = os.path.join(tempfile.mkdtemp(), "x.gz")
    >>> packed = bytearray(gzip.compress(b"0123456789"))
    >>> packed[-8] ^= 1  # the CRC-32 of the trailer
    >>> with open(path, "wb") as f:
    ...     _ = f.write(packed)
    >>> with GzipStream(path) as stream:
    ...     stream.finish()
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.ImageError: image file '...x.gz' is corrupted: gzip member 1 \
decompresses to 10 bytes with CRC-32 0xa684c7c6; its trailer expects 10 bytes (modulo 2**32) \
with CRC-32 0xa684c7c7
    """

    _PIECE = 1 << 20

    def __init__(self, path: str) -> None:
        self._path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self._input = b""  # compressed bytes read, not yet handed to an inflater
        self._dec: Any = None  # the current member's raw inflater; None between members
        self._crc = self._size = self._members = 0  # CRC-32 and length of its output
        self._eof = False

    def _need(self, n: int, what: str = "header") -> None:
        """At least ``n`` compressed bytes at hand, or EOFError if the file ends first."""
        while len(self._input) < n:
            chunk = self._file.read(max(self._PIECE, n - len(self._input)))
            if not chunk:
                raise EOFError(f"compressed file ended inside a gzip {what}")
            self._input += chunk

    def _start_member(self) -> bool:
        """Consume the next member's header (RFC 1952); False at the end of the file."""
        self._input = self._input.lstrip(b"\x00")  # zero padding between members is allowed
        while not self._input:
            chunk = self._file.read(self._PIECE)
            if not chunk:
                return False
            self._input = chunk.lstrip(b"\x00")
        self._need(10)
        if self._input[:3] != b"\x1f\x8b\x08":
            raise zlib.error(f"gzip member {self._members + 1} does not start with a gzip "
                             "header (deflate)")
        flags, pos = self._input[3], 10
        if flags & 4:  # FEXTRA: its length, then the field
            self._need(pos + 2)
            pos += 2 + int.from_bytes(self._input[pos:pos + 2], "little")
        for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                while (end := self._input.find(b"\x00", pos)) < 0:
                    self._need(len(self._input) + 1)
                pos = end + 1
        pos += 2 if flags & 2 else 0  # FHCRC
        self._need(pos)
        self._input = self._input[pos:]
        self._dec = isal_zlib.decompressobj(wbits=-15)
        self._crc = self._size = 0
        self._members += 1
        return True

    def _end_member(self) -> None:
        """Check the trailer of the member just inflated against its output."""
        self._input = self._dec.unused_data + self._input
        self._dec = None
        self._need(8, "trailer")
        crc, size = (int.from_bytes(self._input[k:k + 4], "little") for k in (0, 4))
        self._input = self._input[8:]
        if (crc, size) != (self._crc, self._size & 0xFFFFFFFF):
            raise ImageError(
                f"image file {self._path!r} is corrupted: gzip member {self._members} "
                f"decompresses to {self._size} bytes with CRC-32 {self._crc:#010x}; its "
                f"trailer expects {size} bytes (modulo 2**32) with CRC-32 {crc:#010x}")

    def _inflate(self, data: bytes, max_length: int) -> bytes:
        """Inflate with the current member's inflater.

        A damaged stream raises :class:`zlib.error`, as zlib would, so that the
        callers catch one class whichever inflater runs.
        """
        try:
            return self._dec.decompress(data, max_length)
        except isal_zlib.error as exc:
            raise zlib.error(str(exc)) from exc

    def _fill(self, want: int) -> bytes:
        """Up to ``want`` decompressed bytes (fewer only at the end of the file)."""
        parts, have = [], 0
        while have < want and not self._eof:
            if self._dec is None and not self._start_member():
                self._eof = True
                break
            if self._dec.unconsumed_tail:
                data = self._inflate(self._dec.unconsumed_tail, want - have)
            else:
                if not self._input:
                    self._input = self._file.read(self._PIECE)
                if not self._input:
                    # A whole member ends with its 8 trailer bytes: none left, truncated.
                    raise EOFError("compressed file ended before the end-of-stream marker "
                                   "was reached")
                data = self._inflate(self._input, want - have)
                self._input = b""
            self._crc = isal_zlib.crc32(data, self._crc)
            self._size += len(data)
            if self._dec.eof:
                self._end_member()
            parts.append(data)
            have += len(data)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n > 0:
            got = len(self._fill(min(n, self._PIECE * 4)))
            if not got:
                break
            n -= got

    def readinto(self, view: memoryview) -> int:
        got = 0
        total = len(view)
        while got < total:
            data = self._fill(min(total - got, self._PIECE * 16))
            if not data:
                break
            view[got:got + len(data)] = data
            got += len(data)
        return got

    def finish(self) -> None:
        """Read to the end of the file, checking each member's CRC-32 and length."""
        while self._fill(self._PIECE):
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def open_stream(file_like: Any) -> GzipStream | PlainStream:
    """The sequential reader of an image file: :class:`GzipStream` for a ``.gz`` path."""
    if isinstance(file_like, str) and file_like.endswith(".gz"):
        return GzipStream(file_like)
    return PlainStream(ImageOpener(file_like, "rb"))
