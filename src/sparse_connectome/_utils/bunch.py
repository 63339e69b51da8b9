"""A dictionary with attribute access, as returned by the dataset loaders."""

from __future__ import annotations

from typing import Any

__all__ = ["Bunch"]


class Bunch(dict):
    """Dictionary whose keys are also attributes (``b["maps"]`` is ``b.maps``).

    The seed's code indexes the fetchers' results both ways, so both work here.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.keys()))
