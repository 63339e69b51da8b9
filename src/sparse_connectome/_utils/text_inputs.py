"""Size caps on the text files the package reads, checked before they are read.

Tables and sidecars are read whole into memory (pandas, ``json``): a wrong path
to a multi-GB file would fill the memory before anything could say so. Each kind
of text input has a cap far above what a real file of that kind holds, so that
no real input is ever refused, and the message says what was found:

* ``"confounds"`` (confounds tables, TSV/CSV): 512 MiB. A long fMRIPrep run is
  2 000 volumes (one hour at TR 2 s; 7 200 at TR 0.5 s) by 100 to 1 500 columns,
  most values under 20 bytes: 30-200 MB at most. The cap holds 10 000 volumes x
  2 000 columns x 25 bytes a value (500 MB).
* ``"json"`` (BIDS and fMRIPrep JSON sidecars): 64 MiB. A BOLD sidecar is a few
  KB (its slice timing included); fMRIPrep's confounds sidecar describes each
  CompCor component in about 500 bytes, so a few MB for thousands of them.
* ``"labels"`` (atlas label tables: CSV/TSV, lookup text files, FSL's XML; with
  region coordinates and networks): 64 MiB, 100 000 regions at 640 bytes a row,
  where the largest atlases have a few thousand regions.
* ``"participants"`` (a dataset's ``participants.tsv``): 256 MiB, a million
  participants at 256 bytes a row.
"""

from __future__ import annotations

import os

from ..errors import InputError

__all__ = ["TEXT_SIZE_CAPS", "check_text_size"]

_MIB = 2**20

#: Largest size in bytes of each kind of text input (the module docstring says why).
TEXT_SIZE_CAPS = {
    "confounds": 512 * _MIB,
    "json": 64 * _MIB,
    "labels": 64 * _MIB,
    "participants": 256 * _MIB,
}

_KIND_NAMES = {"confounds": "a confounds table", "json": "a JSON sidecar",
               "labels": "an atlas label table", "participants": "a participants table"}


def _size_text(n_bytes: int) -> str:
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / _MIB:.1f} MiB" if n_bytes >= _MIB else f"{n_bytes} bytes"


def check_text_size(path: str | os.PathLike, kind: str, what: str,
                    error: type[InputError] = InputError) -> None:
    """Refuse a text input larger than the cap of its ``kind``, before it is read.

    ``what`` names the input in the message (e.g. ``"confounds file"``); ``error``
    is the :class:`~sparse_connectome.errors.InputError` subclass to raise. A file
    that cannot be examined (missing, no permission) passes: the reader that
    follows says what is wrong with it.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome._utils import text_inputs
    >>> path = os.path.join(tempfile.mkdtemp(), "confounds.tsv")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("a\\tb\\n" + "1\\t2\\n" * 1000)
    >>> text_inputs.check_text_size(path, "confounds", "confounds file")  # 4 KB: fine
    >>> from unittest import mock
    >>> with mock.patch.dict(text_inputs.TEXT_SIZE_CAPS, confounds=1000):  # a smaller cap
    ...     text_inputs.check_text_size(path, "confounds", "confounds file")
    Traceback (most recent call last):
    ...
    sparse_connectome.errors.InputError: confounds file '...confounds.tsv' is 4004 bytes; \
expected at most 1000 bytes for a confounds table. Is it the right file?
    """
    cap = TEXT_SIZE_CAPS[kind]
    try:
        size = os.stat(path).st_size
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return
    if size > cap:
        exact = "" if size < _MIB else f" ({size} bytes)"
        raise error(f"{what} {str(path)!r} is {_size_text(size)}{exact}; expected at most "
                    f"{_size_text(cap)} for {_KIND_NAMES[kind]}. Is it the right file?")
