"""Estimator conventions shared by maskers and covariance estimators.

Follows scikit-learn's contract without importing scikit-learn: ``__init__``
stores its parameters unchanged, ``get_params``/``set_params`` read and write
them by name, learned attributes end with an underscore.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from ..errors import NotFittedError, ParameterError

__all__ = ["BaseEstimator", "clone", "check_is_fitted"]


class BaseEstimator:
    """Parameter handling in scikit-learn's style."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        signature = inspect.signature(init)
        names = []
        for name, param in signature.parameters.items():
            if name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"{cls.__name__}.__init__ must list its parameters explicitly, "
                    f"found *{name}"
                )
            names.append(name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, by name.

        Parameters
        ----------
        deep : bool
            Also return the parameters of nested estimators, as ``name__param``.
        """
        params = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for sub_name, sub_value in value.get_params(deep=True).items():
                    params[f"{name}__{sub_name}"] = sub_value
            params[name] = value
        return params

    def set_params(self, **params: Any) -> BaseEstimator:
        """Set parameters by name (``name__param`` reaches nested estimators)."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ParameterError(
                    f"{type(self).__name__} has no parameter {name!r}; "
                    f"expected one of {valid}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        shown = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays and other objects without a plain ==
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def clone(estimator: BaseEstimator) -> BaseEstimator:
    """A new, unfitted estimator with the same parameters."""
    params = {k: copy.deepcopy(v) for k, v in estimator.get_params(deep=False).items()}
    return type(estimator)(**params)


def check_is_fitted(estimator: Any, attribute: str) -> None:
    """Raise a clear error when ``estimator`` has not been fitted yet."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet: "
            f"call 'fit' before using it (missing attribute {attribute!r})."
        )
