"""An AutoAttack-style ensemble: diverse attacks in sequence, the worst case per input.

Croce & Hein (2020) showed that single attacks overstate robustness, most of all for
models whose gradients are uninformative; their AutoAttack runs complementary attacks
one after the other, each on the inputs every earlier one failed to break, and counts
an input robust only if all fail. :func:`run_ensemble` does exactly that for any list
of attacks and records which attack broke each input; the registered ``autoattack``
attack wraps it with the named versions of :data:`VERSIONS`.

Versions, ℓ∞ (``norm='linf'``):

* ``standard``: APGD-CE (100 steps), APGD-T (targeted DLR, 9 targets, 100 steps each),
  FAB-T (9 targets, 100 steps each) and Square (5,000 queries): AutoAttack's standard
  sequence;
* ``rand``: APGD-CE and APGD-DLR, AutoAttack's cheaper version (its expectation over
  transformations is left out: the project's models are deterministic);
* ``custom``: the registered attacks named in ``attacks`` (comma-separated, in order,
  e.g. ``attacks="apgd,square"``), each a fixed-budget attack in the ensemble's norm.

ℓ2 (``norm='l2'``): the same sequence with the ℓ2 attacks.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustcompress.attacks._utils import require_choice, require_int
from robustcompress.attacks.base import (
    Attack,
    FixedEpsilonAttack,
    attack_class,
    attack_mode,
    get,
    register_attack,
)
from robustcompress.attacks.ops import NORMS, predict
from robustcompress.errors import AttackError

#: Each version's stages: ``(label, attack name, settings)``; ``{norm}`` picks the ℓ2 name.
VERSIONS: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {
    "standard": (
        ("apgd-ce", "apgd", {"loss": "ce"}),
        ("apgd-t", "apgd_t", {"loss": "dlr", "target_classes": 9}),
        ("fab-t", "fab_t", {"target_classes": 9}),
        ("square", "square", {"queries": 5000}),
    ),
    "rand": (
        ("apgd-ce", "apgd", {"loss": "ce"}),
        ("apgd-dlr", "apgd", {"loss": "dlr"}),
    ),
}

#: The ℓ2 attack of each ℓ∞ stage.
L2_NAMES = {"apgd": "apgd_l2", "apgd_t": "apgd_t_l2", "fab_t": "fab_t_l2", "square": "square_l2"}

#: The version whose stages are the ``attacks`` setting's list.
CUSTOM = "custom"

#: ``broken_by`` of an input the model misclassifies before any attack.
CLEAN = "clean"


@dataclass(frozen=True)
class EnsembleResult:
    """What :func:`run_ensemble` found.

    ``x_adv``: per input, the first stage's adversarial example that broke it, else the
    input itself. ``broken_by``: per input, :data:`CLEAN` if misclassified without attack,
    the label of the stage that broke it, or ``None`` if it stayed robust.
    """

    x_adv: torch.Tensor
    broken_by: tuple[str | None, ...]
    stages: tuple[str, ...]

    @property
    def robust(self) -> torch.Tensor:
        """Per input, whether every stage failed (and the clean input was correct)."""
        return torch.tensor([b is None for b in self.broken_by], dtype=torch.bool)

    @property
    def robust_accuracy(self) -> float:
        """The share of inputs still classified correctly after every stage."""
        n = len(self.broken_by)
        return sum(b is None for b in self.broken_by) / n if n else float("nan")

    @property
    def fooling_ratio(self) -> float | None:
        """The share of the correctly classified inputs some stage broke (None if none
        was correct): the fooling ratio of the ensemble."""
        correct = sum(b != CLEAN for b in self.broken_by)
        return sum(b not in (CLEAN, None) for b in self.broken_by) / correct if correct else None

    @property
    def clean_accuracy(self) -> float:
        n = len(self.broken_by)
        return sum(b != CLEAN for b in self.broken_by) / n if n else float("nan")

    def counts(self) -> dict[str, int]:
        """Inputs broken by each stage (in order), misclassified clean, and still robust."""
        tally = Counter(self.broken_by)
        out = {CLEAN: tally[CLEAN]}
        out.update({stage: tally[stage] for stage in self.stages})
        out["robust"] = tally[None]
        return out


def run_ensemble(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    stages: Sequence[tuple[str, Attack]],
) -> EnsembleResult:
    """Run ``stages`` (``(label, attack)``) in order, each on the inputs no earlier stage
    broke (and the model classified correctly); return the worst case per input. The
    model is in eval mode throughout (:func:`attack_mode`), whatever mode it came in."""
    x, y = x.detach(), y.detach()
    with attack_mode(model):
        robust = predict(model, x) == y
        broken: list[str | None] = [None if r else CLEAN for r in robust.tolist()]
        out = x.clone()
        for label, attack in stages:
            rows = robust.nonzero().squeeze(1)
            if not rows.numel():
                break
            x_adv = attack(model, x[rows], y[rows])
            now = predict(model, x_adv) != y[rows]
            out[rows[now]] = x_adv[now]
            robust[rows[now]] = False
            for i in rows[now].tolist():
                broken[i] = label
    return EnsembleResult(out, tuple(broken), tuple(label for label, _ in stages))


@register_attack
@dataclass(repr=True, kw_only=True)
class AutoAttack(FixedEpsilonAttack):
    """The AutoAttack-style ensemble (:data:`VERSIONS`) as one attack: the output is, per
    input, the adversarial example of the first stage that broke it, else the input.

    ``version``: ``standard``, ``rand`` or ``custom`` (see the module docstring);
    ``norm``: ``linf`` or ``l2``; ``steps`` and ``queries`` override the APGD and FAB
    stages' iterations and Square's queries (AutoAttack's: 100 and 5,000); in a custom
    list, every stage that has a ``steps`` or ``queries`` setting gets them. ``attacks``:
    the custom version's comma-separated attack names (only with ``version='custom'``).
    :meth:`evaluate` also returns which stage broke each input.
    """

    name = "autoattack"
    paper = "Croce & Hein 2020 (AutoAttack)"
    iterative = True
    randomized = True

    eps: float = 0.05
    norm: str = "linf"  # type: ignore[misc]  # a setting here, a class constant elsewhere
    version: str = "standard"
    steps: int = 100
    queries: int = 5000
    attacks: str = ""

    def validate(self) -> None:
        super().validate()
        require_choice(self.name, "norm", self.norm, NORMS)
        require_choice(self.name, "version", self.version, (*VERSIONS, CUSTOM))
        require_int(self.name, "steps", self.steps, minimum=1)
        require_int(self.name, "queries", self.queries, minimum=1)
        if not isinstance(self.attacks, str):
            raise AttackError(
                f"{self.name}: attacks must be comma-separated attack names, e.g. "
                f"'apgd,square', got {self.attacks!r}"
            )
        if self.version == CUSTOM:
            self._custom_stages()  # unknown names, wrong norms, repeats fail here
        elif self.attacks:
            raise AttackError(
                f"{self.name}: attacks={self.attacks!r} is read only with version='custom' "
                f"(got version={self.version!r}); set version='custom' or drop attacks"
            )

    def _custom_stages(self) -> list[tuple[str, Attack]]:
        names = [n.strip() for n in self.attacks.split(",") if n.strip()]
        if not names:
            raise AttackError(
                f"{self.name}: version 'custom' needs attacks=NAME,NAME,... (registered "
                "attack names, in the order to run them), e.g. attacks='apgd,square'"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise AttackError(
                f"{self.name}: {', '.join(repeated)} listed twice in attacks; a stage "
                "reruns nothing the first one missed, list each attack once"
            )
        out = []
        for name in names:
            cls = attack_class(name)
            if cls is AutoAttack or not issubclass(cls, FixedEpsilonAttack):
                raise AttackError(
                    f"{self.name}: {name!r} cannot be a stage: stages are fixed-budget "
                    "attacks (e.g. fgsm, pgd, apgd, apgd_t, fab_t, square)"
                )
            fields = {f.name for f in dataclasses.fields(cls)}
            budget = {k: getattr(self, k) for k in ("steps", "queries") if k in fields}
            seed = {"seed": self.seed} if "seed" in fields else {}
            attack = get(name, **budget, **seed, eps=self.eps)
            if attack.norm != self.norm:
                raise AttackError(
                    f"{self.name}: {name!r} is an {attack.norm} attack but the ensemble's "
                    f"norm is {self.norm}; list {self.norm} attacks or set norm={attack.norm}"
                )
            out.append((name, attack.replace(chunk_size=self.chunk_size)))
        return out

    def stages(self) -> list[tuple[str, Attack]]:
        """The version's attacks with this ensemble's ε, norm, seed and budgets."""
        if self.version == CUSTOM:
            return self._custom_stages()
        out = []
        for label, attack_name, settings in VERSIONS[self.version]:
            name = attack_name if self.norm == "linf" else L2_NAMES[attack_name]
            budget = {"queries": self.queries} if attack_name == "square" else {}
            budget = budget or {"steps": self.steps}
            attack = get(name, **{**settings, **budget}, eps=self.eps, seed=self.seed)
            out.append((label, attack.replace(chunk_size=self.chunk_size)))
        return out

    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> EnsembleResult:
        """Run the ensemble (after every attack's input checks) and say which stage broke
        each input (:class:`EnsembleResult`)."""
        self.check_inputs(model, x, y)
        return run_ensemble(model, x, y, self.stages())

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return run_ensemble(model, x, y, self.stages()).x_adv
