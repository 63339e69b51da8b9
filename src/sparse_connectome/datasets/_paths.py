"""Where datasets are stored on disk."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["get_data_dir", "DATA_ENV_VAR"]

DATA_ENV_VAR = "SPARSE_CONNECTOME_DATA"


def get_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The root folder for downloaded and generated data.

    Parameters
    ----------
    data_dir : path-like, optional
        Explicit folder. When omitted, ``$SPARSE_CONNECTOME_DATA`` is used where
        it is set, else ``~/.cache/sparse_connectome``.

    Returns
    -------
    pathlib.Path
        The folder (created if needed).

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sparse_connectome.datasets import get_data_dir
    >>> folder = get_data_dir(os.path.join(tempfile.mkdtemp(), "my_data"))
    >>> folder.is_dir(), folder.name
    (True, 'my_data')
    """
    if data_dir is None:
        env = os.environ.get(DATA_ENV_VAR)
        data_dir = Path(env) if env else Path.home() / ".cache" / "sparse_connectome"
    path = Path(data_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
