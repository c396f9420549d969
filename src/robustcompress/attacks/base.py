"""The attack interface shared by every attack.

An attack is a small dataclass of settings (so ``repr`` shows them) that is called
as ``attack(model, x, y) -> x_adv``. :meth:`Attack.__call__` does the bookkeeping
every attack needs, so the attack files contain only the method itself:

* inputs are validated (``x`` in ``[0, 1]``, ``y`` int64 of matching length);
* the model is put in ``eval()`` mode and its previous mode restored afterwards;
* parameter ``requires_grad`` flags are switched off during the attack and restored,
  so no gradient is ever accumulated into ``.grad`` of a model parameter;
* gradients are enabled even when the caller is inside ``torch.no_grad()``;
* randomness comes from a :class:`torch.Generator` seeded by ``seed`` (when given)
  on the inputs' device, so random starts are reproducible.

Settings are keyword-only (``get("pgd", eps=0.1)`` or ``LinfPGD(eps=0.1)``); an attack
may declare ``aliases`` (e.g. ``linf_pgd`` for ``pgd``) that :func:`get` also accepts.

Two families, following Foolbox 3: :class:`FixedEpsilonAttack` (perturbation
budget ``eps`` in the attack's ``norm``) and :class:`MinimalPerturbationAttack`
(searches the smallest perturbation that changes the decision).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from robustcompress.errors import AttackError

NORMS = ("linf", "l2")


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration of an attack; restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@dataclass(repr=True, kw_only=True)
class Attack:
    """Base class: settings as dataclass fields, the method in :meth:`run`."""

    name: ClassVar[str] = ""
    norm: ClassVar[str | None] = None
    paper: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`AttackError` for invalid settings (override and call super)."""
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise AttackError(
                f"{self.name}: seed must be a non-negative int or None, got {self.seed!r}"
            )

    def settings(self) -> dict[str, Any]:
        """The attack's settings as a plain dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Attack:
        """A copy with some settings changed (e.g. ``attack.replace(eps=0.1)``)."""
        return dataclasses.replace(self, **changes)

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A generator on ``device`` seeded with ``seed``, or ``None`` (global RNG)."""
        if self.seed is None:
            return None
        g = torch.Generator(device=device)
        g.manual_seed(self.seed)
        return g

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.name, x, y)
        with attack_mode(model), torch.enable_grad():
            x_adv = self.run(model, x.detach(), y.detach(), self.generator(x.device))
        return x_adv.detach()

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The method itself; the model is already in eval mode with frozen parameters."""
        raise NotImplementedError


@dataclass(repr=True, kw_only=True)
class FixedEpsilonAttack(Attack):
    """An attack with a perturbation budget ``eps`` in its ``norm``."""

    eps: float = 0.05

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            raise AttackError(f"{self.name}: eps must be a number ≥ 0, got {self.eps!r}")


@dataclass(repr=True, kw_only=True)
class MinimalPerturbationAttack(Attack):
    """An attack that searches the smallest perturbation changing the decision."""


def _check_inputs(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise AttackError(f"{name}: inputs must be floating point in [0, 1], got dtype {x.dtype}")
    if y.dtype != torch.long or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise AttackError(
            f"{name}: labels must be an int64 vector of length {x.shape[0]}, "
            f"got dtype {y.dtype} and shape {tuple(y.shape)}"
        )
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise AttackError(
            f"{name}: inputs must lie in [0, 1] (got range [{x.min().item():.3g}, "
            f"{x.max().item():.3g}]); put normalisation inside the model"
        )


_REGISTRY: dict[str, type[Attack]] = {}
_ALIASES: dict[str, str] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator adding an attack to the registry under ``cls.name`` and its aliases."""
    for key in (cls.name, *cls.aliases):
        if not key or key in _REGISTRY or key in _ALIASES:
            raise AttackError(f"attack class {cls.__name__} needs a unique name, got {key!r}")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def _lookup(name: str) -> type[Attack]:
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except KeyError:
        known = sorted([*_REGISTRY, *_ALIASES])
        raise AttackError(f"unknown attack {name!r}: choose one of {', '.join(known)}") from None


def get(name: str, **params: Any) -> Attack:
    """Build the registered attack ``name`` (or an alias of it) with settings ``params``.

    Unknown names or settings raise :class:`AttackError` listing the allowed ones.
    """
    cls = _lookup(name)
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise AttackError(
            f"attack {name!r} has no setting(s) {', '.join(unknown)}: "
            f"allowed are {', '.join(sorted(allowed))}"
        )
    return cls(**params)


def list_attacks() -> dict[str, dict[str, Any]]:
    """Every registered attack (canonical names, no aliases) with its default settings."""
    return {n: dataclasses.asdict(cls()) for n, cls in sorted(_REGISTRY.items())}


def attack_class(name: str) -> type[Attack]:
    """The class registered under ``name`` (or an alias of it)."""
    return _lookup(name)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
