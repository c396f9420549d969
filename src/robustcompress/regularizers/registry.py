"""Regularizers by name, so configs can say ``{"name": "nuclear", "lam": {"W2": 0.05}}``."""

from __future__ import annotations

import inspect
from typing import Any

from robustcompress.errors import ConfigError
from robustcompress.regularizers.base import Regularizer

REGULARIZERS: dict[str, type[Regularizer]] = {}
"""Registered regularizer classes keyed by their ``name`` (``"l1"``, ``"nuclear"``, ``"joint"``)."""


def register_regularizer(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator adding ``cls`` to :data:`REGULARIZERS` under ``cls.name``."""
    if not cls.name:
        raise ConfigError(f"regularizer class {cls.__name__} needs a non-empty 'name'")
    if cls.name in REGULARIZERS:
        raise ConfigError(f"regularizer {cls.name!r} is registered twice")
    REGULARIZERS[cls.name] = cls
    return cls


def list_regularizers() -> list[str]:
    """Names of every registered regularizer, sorted."""
    return sorted(REGULARIZERS)


def build_regularizer(name: str, **params: Any) -> Regularizer:
    """Construct the regularizer registered as ``name`` with keyword ``params``.

    Example: ``build_regularizer("l1", lam={"W1": 0.01})`` (the FCNN setting of
    Langenberg et al. 2019, Table 1). Unknown names and unknown or missing parameters
    are a :class:`ConfigError` listing the valid choices.
    """
    try:
        cls = REGULARIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown regularizer {name!r}: choose one of {', '.join(list_regularizers())}"
        ) from None
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError:
        allowed = ", ".join(signature.parameters) or "none"
        given = ", ".join(sorted(params)) or "none"
        raise ConfigError(
            f"regularizer {name!r} takes parameter(s) {allowed}, got {given}"
        ) from None
    return cls(**params)
