"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Each architecture lives in its own file and registers a factory with
:func:`register_model`. Every registered model maps images in ``[0, 1]`` of shape
``N×C×H×W`` to logits ``N×K``; any input normalisation lives inside the model, so
attacks always work in pixel space.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from robustcompress.errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about an architecture."""

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]
    num_classes: int
    default_dataset: str
    paper: str
    summary: str

    def defaults(self) -> dict[str, Any]:
        """The factory's keyword defaults (its configurable settings)."""
        sig = inspect.signature(self.factory)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    default_dataset: str,
    paper: str,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator adding a model factory to the registry."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is registered twice")
        doc = (inspect.getdoc(factory) or "").strip().splitlines()
        _REGISTRY[name] = ModelSpec(
            name=name,
            factory=factory,
            input_shape=input_shape,
            num_classes=num_classes,
            default_dataset=default_dataset,
            paper=paper,
            summary=doc[0] if doc else "",
        )
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}: choose one of {', '.join(list_models())}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword overrides of its defaults.

    Unknown keyword arguments are a :class:`ModelError` naming the allowed ones.
    """
    spec = model_spec(name)
    allowed = spec.defaults()
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ModelError(
            f"model {name!r} has no option(s) {', '.join(unknown)}: "
            f"allowed are {', '.join(sorted(allowed)) or 'none'}"
        )
    model = spec.factory(**kwargs)
    model.registry_name = name  # type: ignore[assignment]
    model.model_kwargs = dict(kwargs)  # type: ignore[assignment]
    return model
