"""The attack interface shared by every attack.

An attack is a small dataclass of settings (so ``repr`` shows them) that is called
as ``attack(model, x, y) -> x_adv``. :meth:`Attack.__call__` does the bookkeeping
every attack needs, so the attack files contain only the method itself:

* inputs are validated, each failure a one-line :class:`AttackError`: ``x`` finite, in
  ``[0, 1]`` and of the model parameters' dtype (it is never cast: a silent cast would
  change the attack's precision; the message names the fix ``x.to(dtype)``), ``y`` an
  int64 vector of matching length with every label a class of the model, in ``[0, K)``
  for a model with ``K`` logits (:func:`output_width`);
* settings are validated when the attack is built (:meth:`Attack.validate`); every
  ``iterative`` attack takes at least one step (:data:`ITERATION_SETTINGS` ≥ 1);
* the model is put in ``eval()`` mode and its previous mode restored afterwards;
* parameter ``requires_grad`` flags are switched off during the attack and restored,
  so no gradient is ever accumulated into ``.grad`` of a model parameter;
* gradients are enabled even when the caller is inside ``torch.no_grad()``;
* randomness comes from a :class:`torch.Generator` seeded by ``seed`` (when given)
  on the inputs' device, so random starts are reproducible;
* attacks whose result for an input depends on that input only
  (``independent_inputs``: FGSM, ℓ∞ PGD, BIM, ℓ∞ GNM, C&W) run the batch in internal
  chunks of ``chunk_size`` inputs (:func:`auto_chunk_size` by default). On CPU a chunk
  whose activations fit in the cache runs a gradient step about twice as fast as one
  batch of 500 CNN inputs, because memory traffic, not arithmetic, bounds the step.
  A matrix product may round differently (≈ 1e-7) for another number of rows. A sign
  step sees that only in a gradient component within rounding of zero, so the sign
  attacks' output does not change in practice (none in the tests, on the MLP, CNN and
  peer models). C&W's continuous Adam steps carry it into the output (≈ 1e-7 in
  float32); its search is judged by its strength, not matched pixel for pixel, so it
  is chunked as well. DeepFool and ℓ2 PGD, which are compared with peers' continuous
  steps, and attacks with random draws run the whole batch at once.

Settings are keyword-only (``get("pgd", eps=0.1)`` or ``LinfPGD(eps=0.1)``); an attack
may declare ``aliases`` (e.g. ``linf_pgd`` for ``pgd``) that :func:`get` also accepts.

Two families, following Foolbox 3: :class:`FixedEpsilonAttack` (perturbation
budget ``eps`` in the attack's ``norm``) and :class:`MinimalPerturbationAttack`
(searches the smallest perturbation that changes the decision).

Every attack class also declares what kind of method it is in capability flags
(:data:`CAPABILITIES`: ``iterative``, ``single_step``, ``randomized``,
``minimal_perturbation``, ``targeted``, ``scaled_sign_step``, ``score_based``; all
``False`` here).
Code outside the package, evaluation and its gradient-masking checks in particular,
reads these flags and never tests attack classes or names, so an attack added later,
inside or outside this package, is evaluated and checked correctly once it declares
them. The tensor operations attacks are built from are public in
:mod:`robustcompress.attacks.ops`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from robustcompress.attacks.ops import NORMS as NORMS  # defined with the norm operations
from robustcompress.errors import AttackError

#: The capability flags every attack class declares (class attributes of :class:`Attack`,
#: all ``False`` unless the class says otherwise); :meth:`Attack.capabilities` reads them.
CAPABILITIES = (
    "iterative",
    "single_step",
    "randomized",
    "minimal_perturbation",
    "targeted",
    "scaled_sign_step",
    "score_based",
)

#: Settings that count an iterative attack's steps. :meth:`Attack.validate` requires each
#: one an attack of ``iterative = True`` has to be an int ≥ 1 (``None`` is left to the
#: attack, e.g. BIM's schedule): zero steps would return ``x`` unchanged and report a
#: fooling ratio of 0 for an attack that never ran.
ITERATION_SETTINGS = ("steps", "max_iter", "queries")

#: Activation memory one internal chunk may take on CPU in :func:`auto_chunk_size`
#: (bytes), about the last-level cache of a desktop CPU. Measured with PGD on the
#: paper's CNN (≈ 230 kB of activations per input; 2 threads, 32 MiB L3): chunks of
#: 32 to 250 inputs all ran at ≈ 1,050 images/s against 570 for one batch of 500,
#: while the FCNN (≈ 4 kB per input) is fastest unchunked (per-step overhead dominates).
CHUNK_MEMORY_BUDGET = 32 * 2**20
#: Batches up to this size are never split (no probe pass is spent on them).
MIN_CHUNK = 32


#: What one probe pass of a model on one input measured (:func:`_probe`), remembered per
#: model, input shape, dtype, device and parameter shapes (attacks are called many times
#: on one model, e.g. every step of adversarial training; a replaced layer is probed again).
_PROBES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[int, int | None]]] = (
    weakref.WeakKeyDictionary()
)


def _probe(model: nn.Module, x: torch.Tensor) -> tuple[int, int | None]:
    """``(activation bytes per input, output width K)`` from one forward pass of ``x[:1]``
    without gradients, the first time a model sees inputs like ``x``; remembered after.

    The bytes are those of the outputs of all leaf modules (at least the input's own),
    a proxy for the memory a forward/backward pass touches per input; ``K`` is ``None``
    when the output is not ``N×K``. Call it in eval mode (:func:`attack_mode`), so that
    no normalisation statistics are updated.
    """
    params = tuple(tuple(p.shape) for p in model.parameters())
    key = (tuple(x.shape[1:]), x.dtype, x.device, params)
    known = _PROBES.setdefault(model, {})
    if key not in known:
        total = 0

        def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
            nonlocal total
            if isinstance(output, torch.Tensor):
                total += output.numel() * output.element_size()

        leaves = [m for m in model.modules() if next(m.children(), None) is None]
        handles = [m.register_forward_hook(count) for m in leaves]
        try:
            with torch.no_grad():
                out = model(x[:1])
        finally:
            for handle in handles:
                handle.remove()
        width = int(out.shape[1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None
        known[key] = (max(total, x[:1].numel() * x.element_size()), width)
    return known[key]


def activation_bytes_per_input(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the outputs of all leaf modules for one input: a proxy for the memory
    a forward/backward pass touches per input (:func:`_probe`: one pass on ``x[:1]`` the
    first time a model sees inputs like ``x``)."""
    return _probe(model, x)[0]


def auto_chunk_size(model: nn.Module, x: torch.Tensor) -> int:
    """The internal chunk size for ``chunk_size='auto'``: the whole batch on GPUs (which
    want large batches), on CPU as many inputs as fit :data:`CHUNK_MEMORY_BUDGET` of
    activations (:func:`activation_bytes_per_input`), at least :data:`MIN_CHUNK`."""
    n = x.shape[0]
    if x.device.type != "cpu" or n <= MIN_CHUNK:
        return max(n, 1)
    per_input = activation_bytes_per_input(model, x)
    return max(MIN_CHUNK, CHUNK_MEMORY_BUDGET // per_input)


def output_width(model: nn.Module, x: torch.Tensor) -> int | None:
    """The number of logits ``K`` the model gives an input like ``x[0]`` (None if its
    output is not ``N×K``), from the same remembered probe pass as
    :func:`activation_bytes_per_input` (:func:`_probe`)."""
    return _probe(model, x)[1]


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


class _Capabilities:
    """Descriptor behind :attr:`Attack.capabilities`: callable on the class and on instances."""

    def __get__(self, obj: object, owner: type) -> Callable[[], dict[str, bool]]:
        source = owner if obj is None else obj
        return lambda: {flag: bool(getattr(source, flag)) for flag in CAPABILITIES}


@dataclass(repr=True, kw_only=True)
class Attack:
    """Base class: settings as dataclass fields, the method in :meth:`run`."""

    name: ClassVar[str] = ""
    norm: ClassVar[str | None] = None
    paper: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    #: True if each input's result depends on that input only (no random draws, no
    #: batch-wide decisions), so the batch may run in chunks. With sign steps the output
    #: is then unchanged up to a gradient component within rounding of zero flipping its
    #: sign; with C&W's continuous steps it moves by rounding (≈ 1e-7 in float32, 1e-9
    #: in float64). Both are checked in ``tests/attacks/test_attacks_chunking.py``.
    independent_inputs: ClassVar[bool] = False

    # Capabilities (:data:`CAPABILITIES`): what kind of method this is. Evaluation and the
    # gradient-masking checks read these flags, never class names or types, so a new
    # attack is treated right by declaring them. A subclass that changes the method must
    # re-declare the ones that no longer hold (they are inherited).

    #: Takes several gradient or linearisation steps (PGD, BIM, GNM, DeepFool, C&W). The
    #: masking check compares every iterative, untargeted ℓ∞ fixed-budget attack with FGSM.
    iterative: ClassVar[bool] = False
    #: Takes exactly one gradient step (FGSM, R+FGSM): a baseline of the masking check.
    single_step: ClassVar[bool] = False
    #: Draws random numbers, at least for some settings (R+FGSM, noise, PGD with a random
    #: start): its output then depends on ``seed``.
    randomized: ClassVar[bool] = False
    #: Searches the smallest perturbation changing the decision instead of spending a
    #: budget (DeepFool, C&W); set by :class:`MinimalPerturbationAttack`.
    minimal_perturbation: ClassVar[bool] = False
    #: Steers toward one chosen wrong class (BIM's least-likely variant) instead of any
    #: wrong class, so it need not fool as often as an untargeted attack.
    targeted: ClassVar[bool] = False
    #: The output at budget ε is ``clip_box(x + ε·s)`` for one sign pattern
    #: ``s ∈ {−1, 0, 1}^d`` that does not depend on ε (FGSM). Evaluation then runs the
    #: attack once per batch, at ε = 1, and derives every ε of a curve from it.
    scaled_sign_step: ClassVar[bool] = False
    #: Uses the model's scores only, never a gradient (Square): a black-box attack. The
    #: masking check flags a model a black-box attack breaks more often than every
    #: gradient attack, and such an attack is not held to the iterative-vs-FGSM rule.
    score_based: ClassVar[bool] = False

    seed: int | None = None
    #: Inputs per internal chunk: ``'auto'`` (:func:`auto_chunk_size`), an int, or None
    #: for the whole batch at once. Only speed depends on it; ignored when
    #: :meth:`chunkable` is false.
    chunk_size: int | str | None = field(default="auto", repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`AttackError` for invalid settings (override and call super)."""
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise AttackError(
                f"{self.name}: seed must be a non-negative int or None, got {self.seed!r}"
            )
        size = self.chunk_size
        valid = size is None or size == "auto"
        valid |= isinstance(size, int) and not isinstance(size, bool) and size >= 1
        if not valid:
            raise AttackError(
                f"{self.name}: chunk_size must be 'auto', an int ≥ 1 or None (whole batch), "
                f"got {size!r}"
            )
        if self.iterative:
            for setting in ITERATION_SETTINGS:
                value = getattr(self, setting, None)
                if value is not None and not (
                    isinstance(value, int) and not isinstance(value, bool) and value >= 1
                ):
                    raise AttackError(
                        f"{self.name}: {setting} must be an int ≥ 1 (an iterative attack "
                        f"takes at least one step), got {value!r}"
                    )

    #: ``capabilities()``: the capability flags (:data:`CAPABILITIES`) as a dict, read
    #: from the class (``attack_class("fgsm").capabilities()``) or from an instance, which
    #: may switch a flag off for its settings (FGSM with ``clip=False`` is no
    #: ``scaled_sign_step``).
    capabilities: ClassVar[_Capabilities] = _Capabilities()

    def chunkable(self) -> bool:
        """Whether splitting the batch leaves the result unchanged (see ``independent_inputs``)."""
        return self.independent_inputs

    def settings(self) -> dict[str, Any]:
        """The settings that determine the result, as a plain dict.

        Fields declared with ``compare=False`` (``chunk_size``, which only changes the
        speed) are left out, so reports and caches keyed on settings do not depend on them.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}

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

    def check_inputs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """The checks every call makes (see the module docstring): finite ``x`` in [0, 1]
        of the model's dtype, int64 labels of matching length, each a class of the model."""
        _check_inputs(self.name, x, y)
        _check_dtype(self.name, model, x)
        with attack_mode(model):
            _check_label_range(self.name, model, x.detach(), y.detach())

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_inputs(model, x, y)
        x, y = x.detach(), y.detach()
        with attack_mode(model), torch.enable_grad():
            size = self._resolved_chunk_size(model, x)
            generator = self.generator(x.device)
            if size >= x.shape[0]:
                x_adv = self.run(model, x, y, generator)
            else:
                starts = range(0, x.shape[0], size)
                chunks = [
                    self.run(model, x[i : i + size], y[i : i + size], generator) for i in starts
                ]
                x_adv = torch.cat(chunks)
        return x_adv.detach()

    def _resolved_chunk_size(self, model: nn.Module, x: torch.Tensor) -> int:
        n = x.shape[0]
        if not self.chunkable() or self.chunk_size is None:
            return n
        if self.chunk_size == "auto":
            return auto_chunk_size(model, x)
        return int(self.chunk_size)

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

    minimal_perturbation = True


def _check_inputs(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise AttackError(f"{name}: inputs must be floating point in [0, 1], got dtype {x.dtype}")
    if y.dtype != torch.long or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise AttackError(
            f"{name}: labels must be an int64 vector of length {x.shape[0]}, "
            f"got dtype {y.dtype} and shape {tuple(y.shape)}"
        )
    if not x.numel():
        return
    low, high = torch.aminmax(x)
    if not torch.isfinite(low + high).item():  # aminmax propagates NaN; ±inf are extremes
        counts = {
            "NaN": torch.isnan(x).sum().item(),
            "+inf": torch.isposinf(x).sum().item(),
            "-inf": torch.isneginf(x).sum().item(),
        }
        found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        raise AttackError(
            f"{name}: inputs contain {found} (of {x.numel()} values); attacks need "
            "finite pixels in [0, 1]"
        )
    if ((low < 0) | (high > 1)).item():
        raise AttackError(
            f"{name}: inputs must lie in [0, 1] (got range [{low.item():.3g}, "
            f"{high.item():.3g}]); put normalisation inside the model"
        )


def _check_dtype(name: str, model: nn.Module, x: torch.Tensor) -> None:
    """Inputs in the dtype of the model's (first floating-point) parameters, not cast."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None and x.dtype != dtype:
        raise AttackError(
            f"{name}: inputs are {x.dtype} but the model's parameters are {dtype}; "
            f"convert the inputs with x.to({dtype}) (or the model with model.to({x.dtype}))"
        )


def _check_label_range(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Every label a class of the model: in ``[0, K)`` for ``K`` logits (:func:`output_width`)."""
    if not y.numel():
        return
    low, high = torch.aminmax(y)
    width = output_width(model, x)
    if low.item() < 0 or (width is not None and high.item() >= width):
        bad = int(low.item()) if low.item() < 0 else int(high.item())
        allowed = f"in [0, {width}) for its {width} logits" if width is not None else "≥ 0"
        raise AttackError(
            f"{name}: label {bad} is not a class of the model: labels must be {allowed}"
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
    return {n: cls().settings() for n, cls in sorted(_REGISTRY.items())}


def attack_class(name: str) -> type[Attack]:
    """The class registered under ``name`` (or an alias of it)."""
    return _lookup(name)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
