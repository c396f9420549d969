"""Streaming robustness evaluation: many attacks and many ε in one pass over the data.

:func:`evaluate` runs attacks on a model batch by batch and returns an
:class:`EvaluationRecord` with per-sample arrays (clean prediction, adversarial
prediction and perturbation norms for every attack and ε) and per-ε summaries
(fooling ratio, adversarial accuracy, mean/median perturbation norms, relative sizes),
plus the gradient-masking flags of :mod:`robustcompress.evaluation.masking`.

Work that does not depend on ε is done once per batch: the clean logits, the
input-gradient check, and, for an attack declaring ``scaled_sign_step`` (FGSM), its
sign pattern (``x_adv(ε) = clip(x + ε·s)`` for every ε from one backward pass). A
minimal-perturbation attack (DeepFool, C&W) is run once; its curve ``FR(ε)`` counts the
inputs it fools with ``‖r‖_p ≤ ε``.

How an attack is run and checked follows only from its public seams: the capability
flags of :class:`~robustcompress.attacks.Attack` (``minimal_perturbation``,
``scaled_sign_step``, and for the masking checks ``iterative``, ``single_step``,
``targeted``) and the operations of :mod:`robustcompress.attacks.ops`; no attack class
or name is special-cased here.

:func:`fooling_ratio_of` is the one-batch helper used by the training trackers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcompress import attacks as attack_registry
from robustcompress.attacks import Attack, AutoAttack, FixedEpsilonAttack, attack_mode
from robustcompress.attacks.ensemble import CLEAN
from robustcompress.attacks.ops import clip_box, predict
from robustcompress.device import resolve_device
from robustcompress.errors import ConfigError, DataError
from robustcompress.evaluation import masking as checks
from robustcompress.evaluation.masking import MaskingFlag
from robustcompress.evaluation.metrics import (
    REPORTED_NORMS,
    adversarial_accuracy,
    correctly_classified,
    expected_correct_distance,
    fooling_ratio,
    input_norms,
    mean_relative_perturbation,
    perturbation_norms,
    smallest_fooling_eps,
    successful,
    within_budget,
)

#: Default number of inputs per batch when ``data`` is a whole data set.
DEFAULT_BATCH_SIZE = 500

#: Budget of the reference PGD run when nothing else fixes one: Langenberg et al. 2019, §5.
DEFAULT_REFERENCE_EPS = 0.05

FIXED = "fixed_epsilon"
MINIMAL = "minimal"
OTHER = "other"

AttackSpec = Attack | str
AttacksArg = AttackSpec | Sequence[AttackSpec] | Mapping[str, AttackSpec]


@dataclass(frozen=True)
class EvaluationProgress:
    """Where :func:`evaluate` is, passed to its ``progress`` callback before each attack
    run on a batch (one per attack and ε actually run, reference runs included) and once
    at the end (``attack`` is ``None`` then).

    ``work_done`` counts finished attack runs in inputs: each run on a batch adds its
    share of the batch, weighted by its rough cost in gradient evaluations
    (:func:`_run_cost`), so it reaches ``inputs_done`` at each batch's end (a bar's
    position; rates are in images per second through every attack).
    """

    attack: str | None
    eps: float | None
    inputs_done: int
    inputs_total: int | None
    work_done: float


ProgressCallback = Callable[[EvaluationProgress], None]


# --------------------------------------------------------------------------- records


@dataclass
class AttackCurve:
    """One attack's results on every input, one row per budget ε.

    Attributes:
        label: the name this attack has in the record (its registry name by default).
        attack: the registry name of the attack.
        kind: ``"fixed_epsilon"`` (one run per ε), ``"minimal"`` (one unbounded run,
            rows restrict it to ``‖r‖_p ≤ ε``) or ``"other"`` (e.g. random noise; one row).
        norm: the attack's norm (``"linf"``, ``"l2"``) or ``None``.
        settings: the attack's settings (``eps`` is the row's, not this one).
        eps: the budget of each row; ``None`` is an unbounded (or budget-free) row.
        pred_adv: ``len(eps) × N`` predicted classes on the adversarial inputs.
        delta_l2: ``len(eps) × N`` per-sample ``‖x_adv − x‖₂`` (0 where no perturbation).
        delta_linf: ``len(eps) × N`` per-sample ``‖x_adv − x‖∞``.
        seconds: wall-clock time spent in this attack (all batches, all ε).
        capabilities: the attack's declared capability flags
            (:meth:`~robustcompress.attacks.Attack.capabilities`), which the masking
            checks read.
        broken_by: for an ensemble (:class:`~robustcompress.attacks.AutoAttack`),
            ``len(eps) × N``: per input, the stage that broke it, ``"clean"`` if the
            model misclassified it unattacked, ``None`` if it stayed robust; ``None``
            for other attacks.
        stages: the ensemble's stage labels in order (empty for other attacks).
    """

    label: str
    attack: str
    kind: str
    norm: str | None
    settings: dict[str, Any]
    eps: list[float | None]
    pred_adv: np.ndarray
    delta_l2: np.ndarray
    delta_linf: np.ndarray
    seconds: float = 0.0
    capabilities: dict[str, bool] = field(default_factory=dict)
    broken_by: list[list[str | None]] | None = None
    stages: tuple[str, ...] = ()

    def stage_counts(self, row: int) -> dict[str, int] | None:
        """For an ensemble, the inputs of row ``row`` misclassified unattacked
        (``clean``), broken by each stage in order, and still ``robust``; else ``None``."""
        if self.broken_by is None:
            return None
        found = self.broken_by[row]
        counts = {CLEAN: found.count(CLEAN)}
        counts.update({stage: found.count(stage) for stage in self.stages})
        counts["robust"] = found.count(None)
        return counts

    def delta(self, norm: str) -> np.ndarray:
        """The per-sample perturbation norms ``len(eps) × N`` in ``norm`` (l2 or linf)."""
        if norm not in REPORTED_NORMS:
            raise ConfigError(f"unknown norm {norm!r}: choose one of {', '.join(REPORTED_NORMS)}")
        return self.delta_l2 if norm == "l2" else self.delta_linf

    def row_index(self, eps: float | None) -> int:
        """The row of budget ``eps`` (``None`` for the unbounded row)."""
        for i, e in enumerate(self.eps):
            if e == eps or (e is not None and eps is not None and math.isclose(e, eps)):
                return i
        shown = ", ".join("unbounded" if e is None else f"{e:g}" for e in self.eps)
        raise ConfigError(f"{self.label}: no row for ε={eps!r}; rows are {shown}")


@dataclass
class EvaluationRecord:
    """Everything :func:`evaluate` measured: per-sample arrays, summaries and masking flags.

    Attributes:
        labels: true classes ``y`` (length N).
        pred_clean: clean predictions ``k̂(x)`` (length N).
        x_l2, x_linf: per-sample ``‖x‖₂`` and ``‖x‖∞`` (denominators of relative sizes).
        degenerate_gradient: per-sample flag "input gradient zero or non-finite".
        attacks: one :class:`AttackCurve` per requested attack, by label.
        masking: the gradient-masking flags (see :mod:`robustcompress.evaluation.masking`).
        references: the reference runs behind the masking flags (FGSM over the ε
            grid and ε = 1, and PGD when no iterative attack was requested).
        device: the device the evaluation ran on.
    """

    labels: np.ndarray
    pred_clean: np.ndarray
    x_l2: np.ndarray
    x_linf: np.ndarray
    degenerate_gradient: np.ndarray
    attacks: dict[str, AttackCurve]
    masking: list[MaskingFlag] = field(default_factory=list)
    references: dict[str, AttackCurve] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def n(self) -> int:
        """Number of evaluated inputs."""
        return int(self.labels.shape[0])

    @property
    def clean_accuracy(self) -> float:
        """Accuracy on the clean inputs, over all of them."""
        return adversarial_accuracy(self.pred_clean, self.labels)

    @property
    def masking_suspected(self) -> bool:
        """Whether any masking flag triggered."""
        return any(flag.triggered for flag in self.masking)

    def fooling_ratio(self, label: str, eps: float | None = None) -> float:
        """Fooling ratio of attack ``label`` at budget ``eps`` (its only row if ``None``)."""
        curve = self._curve(label)
        row = curve.row_index(eps) if eps is not None or len(curve.eps) > 1 else 0
        return fooling_ratio(self.pred_clean, curve.pred_adv[row], self.labels)

    def adversarial_accuracy(self, label: str, eps: float | None = None) -> float:
        """Adversarial accuracy (over all inputs) of attack ``label`` at budget ``eps``."""
        curve = self._curve(label)
        row = curve.row_index(eps) if eps is not None or len(curve.eps) > 1 else 0
        return adversarial_accuracy(curve.pred_adv[row], self.labels)

    def summary(self, label: str) -> list[dict[str, Any]]:
        """Per-ε summary rows of attack ``label`` (see :meth:`summary_row`)."""
        curve = self._curve(label)
        return [self.summary_row(curve, i) for i in range(len(curve.eps))]

    def summary_row(self, curve: AttackCurve, row: int) -> dict[str, Any]:
        """Summary of one row of ``curve``.

        ``fooling_ratio`` is over the correctly classified inputs, ``adversarial_accuracy``
        over all inputs; norms and relative sizes (``‖δ‖_p/‖x‖_p``; DeepFool's ρ, Guo
        et al.'s r_p) are over the successful attacks (correct and fooled), NaN if none.
        """
        pred_adv = curve.pred_adv[row]
        hit = successful(self.pred_clean, pred_adv, self.labels)
        out: dict[str, Any] = {
            "attack": curve.label,
            "eps": curve.eps[row],
            "fooling_ratio": fooling_ratio(self.pred_clean, pred_adv, self.labels),
            "adversarial_accuracy": adversarial_accuracy(pred_adv, self.labels),
            "n_correct": int(correctly_classified(self.pred_clean, self.labels).sum()),
            "n_fooled": int(hit.sum()),
        }
        counts = curve.stage_counts(row)
        if counts is not None:
            out["broken_by"] = counts
        for norm, x_norm in (("l2", self.x_l2), ("linf", self.x_linf)):
            d = curve.delta(norm)[row]
            out[f"{norm}_mean"] = float(d[hit].mean()) if hit.any() else math.nan
            out[f"{norm}_median"] = float(np.median(d[hit])) if hit.any() else math.nan
            out[f"{norm}_relative"] = mean_relative_perturbation(d, x_norm, hit)
        return out

    def attack_summary(self, label: str) -> dict[str, Any]:
        """Per-attack numbers that are not per ε.

        ``relative_minimal_eps`` (fixed-budget attacks): ``mean ε_min/‖x‖_p`` over the
        inputs fooled at some ε, with ``ε_min`` the smallest fooling ε on the grid
        (Guo et al.'s r∞ for FGS, to grid resolution). ``expected_correct_distance``
        (minimal attacks): ``E[1(y=ŷ)·‖r‖_p]`` over all inputs, Guo et al.'s eq. (5) r₂.
        """
        curve = self._curve(label)
        out: dict[str, Any] = {
            "attack": curve.attack,
            "kind": curve.kind,
            "norm": curve.norm,
            "settings": curve.settings,
            "seconds": curve.seconds,
        }
        if curve.kind == FIXED and curve.norm in REPORTED_NORMS:
            eps_min = self.smallest_fooling_eps(label)
            x_norm = self.x_l2 if curve.norm == "l2" else self.x_linf
            mask = correctly_classified(self.pred_clean, self.labels) & np.isfinite(eps_min)
            out["relative_minimal_eps"] = mean_relative_perturbation(eps_min, x_norm, mask)
        if curve.kind == MINIMAL and curve.norm in REPORTED_NORMS:
            row = curve.row_index(None)
            hit = successful(self.pred_clean, curve.pred_adv[row], self.labels)
            d = np.where(hit, curve.delta(curve.norm)[row], 0.0)
            out["expected_correct_distance"] = expected_correct_distance(
                d, self.pred_clean, self.labels
            )
        return out

    def smallest_fooling_eps(self, label: str) -> np.ndarray:
        """Per input, the smallest ε of the curve at which ``label`` fools it (inf if none)."""
        curve = self._curve(label)
        rows = [i for i, e in enumerate(curve.eps) if e is not None]
        hits = np.stack([curve.pred_adv[i] != self.pred_clean for i in rows]) if rows else None
        if hits is None:
            return np.full(self.n, np.inf)
        return smallest_fooling_eps([curve.eps[i] for i in rows], hits)

    def table(self) -> list[dict[str, Any]]:
        """Every summary row of every attack, in one list (for printing)."""
        return [row for label in self.attacks for row in self.summary(label)]

    def to_dict(self, per_sample: bool = True) -> dict[str, Any]:
        """A JSON-able dict (NumPy arrays as lists; non-finite floats are left to the writer).

        With ``per_sample=False`` only summaries and flags are included.
        """
        attacks: dict[str, Any] = {}
        for label, curve in self.attacks.items():
            entry = self.attack_summary(label)
            entry["eps"] = list(curve.eps)
            entry["summary"] = self.summary(label)
            if per_sample:
                entry["per_sample"] = {
                    "pred_adv": curve.pred_adv.tolist(),
                    "delta_l2": curve.delta_l2.tolist(),
                    "delta_linf": curve.delta_linf.tolist(),
                }
                if curve.broken_by is not None:
                    entry["per_sample"]["broken_by"] = curve.broken_by
            attacks[label] = entry
        out: dict[str, Any] = {
            "n": self.n,
            "device": self.device,
            "clean_accuracy": self.clean_accuracy,
            "attacks": attacks,
            "masking": [flag.to_dict() for flag in self.masking],
            "masking_suspected": self.masking_suspected,
        }
        if per_sample:
            out["per_sample"] = {
                "labels": self.labels.tolist(),
                "pred_clean": self.pred_clean.tolist(),
                "x_l2": self.x_l2.tolist(),
                "x_linf": self.x_linf.tolist(),
                "degenerate_gradient": self.degenerate_gradient.tolist(),
            }
        return out

    def _curve(self, label: str) -> AttackCurve:
        try:
            return self.attacks[label]
        except KeyError:
            raise ConfigError(
                f"no attack {label!r} in this record: it has {', '.join(self.attacks) or 'none'}"
            ) from None


# ------------------------------------------------------------------------ planning


@dataclass
class _Plan:
    """How to run one attack on each batch, and where its per-sample results accumulate.

    A fixed-budget attack (or one without a budget) is run once per row; a
    minimal-perturbation attack is run once, unbounded, and its budget rows are derived
    in :meth:`curve` with :func:`~robustcompress.evaluation.metrics.within_budget`.
    """

    label: str
    attack: Attack
    kind: str
    eps: list[float | None]
    pred: list[list[torch.Tensor]] = field(default_factory=list)
    l2: list[list[torch.Tensor]] = field(default_factory=list)
    linf: list[list[torch.Tensor]] = field(default_factory=list)
    broken: list[list[str | None]] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.pred = [[] for _ in self.runs]
        self.l2 = [[] for _ in self.runs]
        self.linf = [[] for _ in self.runs]
        self.broken = [[] for _ in self.runs]

    @property
    def runs(self) -> list[float | None]:
        """The budgets the attack is actually run at (``None``: its own or unbounded)."""
        return [None] if self.kind == MINIMAL else self.eps

    def run_batch(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        sign_steps: dict[Any, torch.Tensor],
        before_run: Callable[[str, float | None], None] | None = None,
    ) -> None:
        start = time.perf_counter()
        for i, eps in enumerate(self.runs):
            if before_run is not None:
                before_run(self.label, eps)
            x_adv = self._attack(model, x, y, eps, sign_steps, self.broken[i])
            self.pred[i].append(predict(model, x_adv).cpu())
            self.l2[i].append(perturbation_norms(x, x_adv, "l2").cpu())
            self.linf[i].append(perturbation_norms(x, x_adv, "linf").cpu())
        self.seconds += time.perf_counter() - start

    def _attack(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float | None,
        sign_steps: dict[Any, torch.Tensor],
        broken: list[str | None],
    ) -> torch.Tensor:
        """The adversarial inputs at ``eps``; an ensemble also appends to ``broken``
        which of its stages broke each input."""
        if isinstance(self.attack, AutoAttack):
            if eps == 0:  # the identity: only the unattacked mistakes are "broken"
                wrong = (predict(model, x) != y).tolist()
                broken.extend(CLEAN if w else None for w in wrong)
                return x
            ensemble = self.attack if eps is None else self.attack.replace(eps=eps)
            assert isinstance(ensemble, AutoAttack)
            result = ensemble.evaluate(model, x, y)
            broken.extend(result.broken_by)
            return result.x_adv
        if eps is None:
            return self.attack(model, x, y)
        if eps == 0:
            return x  # a fixed-budget attack at ε = 0 is the identity
        if self.attack.scaled_sign_step:
            # x_adv(ε) = clip(x + ε·s) with s independent of ε: one run serves every ε.
            return clip_box(x + eps * _sign_step(self.attack, model, x, y, sign_steps))
        return self.attack.replace(eps=eps)(model, x, y)

    def curve(self, pred_clean: np.ndarray) -> AttackCurve:
        pred, l2, linf = (
            np.stack([torch.cat(r).numpy() for r in rows]).astype(dtype)
            for rows, dtype in ((self.pred, np.int64), (self.l2, float), (self.linf, float))
        )
        settings = self.attack.settings()
        if self.kind == FIXED:
            settings.pop("eps", None)
        if self.kind == MINIMAL:
            own = l2[0] if self.attack.norm == "l2" else linf[0]
            budgets = [np.inf if e is None else e for e in self.eps]
            inside = np.stack([own <= b for b in budgets])
            pred = np.stack([within_budget(pred_clean, pred[0], own, b) for b in budgets])
            l2, linf = np.where(inside, l2[0], 0.0), np.where(inside, linf[0], 0.0)
        return AttackCurve(
            label=self.label,
            attack=self.attack.name,
            kind=self.kind,
            norm=self.attack.norm,
            settings=settings,
            eps=list(self.eps),
            pred_adv=pred,
            delta_l2=l2,
            delta_linf=linf,
            seconds=self.seconds,
            capabilities=self.attack.capabilities(),
            broken_by=self.broken if isinstance(self.attack, AutoAttack) else None,
            stages=(
                tuple(label for label, _ in self.attack.stages())
                if isinstance(self.attack, AutoAttack)
                else ()
            ),
        )


def _sign_step(
    attack: Attack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cache: dict[Any, torch.Tensor],
) -> torch.Tensor:
    """The sign pattern ``s`` of a ``scaled_sign_step`` attack for this batch, computed
    once per attack class and settings (for FGSM ``s = sign(∇_x J)``).

    Read off the attack's own output at ε = 1: ``sign(clip(x + s) − x)`` equals ``s``
    wherever the sign matters, and is 0 only where ``x + ε·s`` is clipped back to ``x``
    for every ε ≥ 0. So ``clip(x + ε·sign(...))`` reproduces the attack exactly.
    """
    settings = sorted((k, repr(v)) for k, v in attack.settings().items() if k != "eps")
    key = (type(attack), *settings)
    if key not in cache:
        cache[key] = (attack.replace(eps=1.0)(model, x, y) - x).sign()
    return cache[key]


def _kind(attack: Attack) -> str:
    if attack.minimal_perturbation:
        return MINIMAL
    if isinstance(attack, FixedEpsilonAttack):  # the interface with a budget ``eps``
        return FIXED
    return OTHER


def _as_attack(spec: AttackSpec) -> Attack:
    if isinstance(spec, Attack):
        return spec
    if isinstance(spec, str):
        return attack_registry.get(spec)
    raise ConfigError(
        f"attacks must be attack names or Attack objects, got {type(spec).__name__}: "
        "e.g. evaluate(model, data, ['fgsm', get('pgd', steps=40)])"
    )


def _labelled(attacks: AttacksArg) -> dict[str, Attack]:
    if isinstance(attacks, (str, Attack)) or not isinstance(attacks, Iterable):
        attacks = [attacks]  # type: ignore[list-item]  # a non-attack fails in _as_attack
    if isinstance(attacks, Mapping):
        return {str(label): _as_attack(spec) for label, spec in attacks.items()}
    out: dict[str, Attack] = {}
    for spec in attacks:
        attack = _as_attack(spec)
        if attack.name in out:
            raise ConfigError(
                f"attack {attack.name!r} is given twice: pass a mapping "
                "{label: attack} to evaluate two settings of one attack"
            )
        out[attack.name] = attack
    if not out:
        raise ConfigError("no attacks given: pass at least one attack name or Attack object")
    return out


def _eps_grid(eps: float | Sequence[float] | None) -> list[float] | None:
    if eps is None:
        return None
    values = [eps] if isinstance(eps, (int, float)) else list(eps)
    for e in values:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e < 0:
            raise ConfigError(f"every ε must be a finite number ≥ 0, got {e!r} in eps={eps!r}")
    if not values:
        raise ConfigError("eps is an empty list: give at least one budget or None")
    return sorted({float(e) for e in values})


def _rows(attack: Attack, kind: str, grid: list[float] | None) -> list[float | None]:
    if kind == FIXED:
        return list(grid) if grid is not None else [float(attack.eps)]  # type: ignore[attr-defined]
    if kind == MINIMAL:
        return [None, *(grid or [])]
    return [None]


def _masking_plans(plans: list[_Plan], inputs: int | None = None) -> list[_Plan]:
    """Reference runs for the masking checks: FGSM (ε grid ∪ {1}) and, if needed, PGD
    and Square.

    The reference PGD runs only when no requested attack counts as iterative
    (:func:`~robustcompress.evaluation.masking.compared_as_iterative`), the reference
    Square (:data:`~robustcompress.evaluation.masking.REFERENCE_SQUARE_QUERIES` queries,
    seed 0) only when no requested attack is score-based, at the largest ε of the
    iterative attacks below the very large one, and only on evaluations of at most
    :data:`~robustcompress.evaluation.masking.REFERENCE_SQUARE_MAX_INPUTS` inputs (its
    cost grows with the robust inputs times the queries; larger evaluations leave the
    black-box check unchecked unless a score-based attack is requested).
    """
    iterative = [
        p
        for p in plans
        if p.kind == FIXED and checks.compared_as_iterative(p.attack.capabilities(), p.attack.norm)
    ]
    linf_eps = {
        e
        for p in plans
        if p.kind == FIXED and p.attack.norm == "linf"
        for e in p.eps
        if e is not None and e > 0
    }
    refs: list[_Plan] = []
    if not iterative:
        ref_eps = max(linf_eps - {checks.LARGE_EPS}, default=DEFAULT_REFERENCE_EPS)
        steps = checks.REFERENCE_PGD_STEPS
        pgd = attack_registry.get("pgd", eps=ref_eps, steps=steps, alpha=2.5 * ref_eps / steps)
        refs.append(_Plan("reference_pgd", pgd, FIXED, [ref_eps]))
        iterative_eps = {ref_eps}
    else:
        iterative_eps = {e for p in iterative for e in p.eps if e is not None}
    fgsm_eps = sorted(iterative_eps | {checks.LARGE_EPS})
    refs.append(_Plan("reference_fgsm", attack_registry.get("fgsm"), FIXED, list(fgsm_eps)))
    black_box = any(
        p.kind == FIXED and checks.compared_as_black_box(p.attack.capabilities(), p.attack.norm)
        for p in plans
    )
    square_eps = max(iterative_eps - {checks.LARGE_EPS}, default=None)
    small = inputs is not None and inputs <= checks.REFERENCE_SQUARE_MAX_INPUTS
    if not black_box and square_eps is not None and small:
        queries = checks.REFERENCE_SQUARE_QUERIES
        square = attack_registry.get("square", eps=square_eps, queries=queries, seed=0)
        refs.append(_Plan("reference_square", square, FIXED, [square_eps]))
    return refs


# --------------------------------------------------------------------------- data


def iterate_batches(
    data: Any, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches from a loader, an ``ArrayDataset`` or a pair of tensors.

    * an object with ``.images`` and ``.labels`` (``robustcompress.data.ArrayDataset``)
      or a tuple ``(images, labels)`` of tensors is cut into batches of ``batch_size``;
    * anything else is iterated and must yield ``(x, y)`` batches (a ``DataLoader``).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        images, labels = data
    else:
        yield from _loader_batches(data)
        return
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"data has {images.shape[0]} images but {labels.shape[0]} labels: they must match"
        )
    for start in range(0, images.shape[0], batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def _loader_batches(data: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    try:
        batches = iter(data)
    except TypeError:
        raise ConfigError(
            f"data must be a DataLoader / iterable of (x, y) batches, an ArrayDataset or an "
            f"(images, labels) pair of tensors, got {type(data).__name__}"
        ) from None
    for batch in batches:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise DataError(
                f"each batch must be an (x, y) pair, got {type(batch).__name__}: "
                "wrap the data set in a DataLoader"
            )
        x, y = batch[0], batch[1]
        if not torch.is_tensor(y) or y.dim() != 1:
            raise DataError(
                "data yields single samples, not batches (labels are not a vector): "
                "wrap it in a DataLoader or pass an ArrayDataset with batch_size"
            )
        yield x, y


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class _Notifier:
    """Turns the evaluation loop's position into :class:`EvaluationProgress` events."""

    def __init__(self, callback: ProgressCallback, data: Any, plans: Sequence[_Plan]) -> None:
        self.callback = callback
        self.total = _input_count(data)
        self.costs = {p.label: _run_cost(p.attack) for p in plans}
        self.cost_per_batch = sum(len(p.runs) * self.costs[p.label] for p in plans) or 1
        self.inputs_done = 0
        self.work_done = 0.0
        self._pending = 0  # inputs of the batch being attacked

    def _close_batch(self) -> None:
        self.inputs_done += self._pending
        self.work_done = float(self.inputs_done)
        self._pending = 0

    def batch(self, size: int) -> Callable[[str, float | None], None]:
        """The ``before_run`` hook for a batch of ``size`` inputs (the previous is done)."""
        self._close_batch()
        self._pending = size

        def before_run(label: str, eps: float | None) -> None:
            self.callback(
                EvaluationProgress(label, eps, self.inputs_done, self.total, self.work_done)
            )
            self.work_done += size * self.costs[label] / self.cost_per_batch

        return before_run

    def finished(self) -> None:
        self._close_batch()
        self.callback(
            EvaluationProgress(None, None, self.inputs_done, self.total, float(self.inputs_done))
        )


def _run_cost(attack: Attack) -> int:
    """Gradient evaluations of one run, roughly: the product of the attack's ``steps``,
    ``max_iter``, ``restarts`` and ``search_steps`` settings that it has (at least 1).
    Used only to place a progress bar."""
    cost = 1
    for key, value in attack.settings().items():
        if key in ("steps", "max_iter", "restarts", "search_steps") and isinstance(value, int):
            cost *= max(1, value)
    return cost


def _input_count(data: Any) -> int | None:
    """How many inputs ``data`` holds, when that is known without iterating it."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        return len(data.labels)
    if isinstance(data, tuple) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        return int(data[1].shape[0])
    dataset = getattr(data, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None  # a DataLoader
    except TypeError:
        return None


# ------------------------------------------------------------------------- evaluate


def evaluate(
    model: nn.Module,
    data: Any,
    attacks: AttacksArg,
    *,
    eps: float | Sequence[float] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    check_masking: bool = True,
    progress: ProgressCallback | None = None,
) -> EvaluationRecord:
    """Attack ``model`` on ``data`` with every attack in ``attacks``, at every budget in ``eps``.

    Args:
        model: maps images in [0, 1] to logits; evaluated in eval mode (its mode and
            parameter flags are restored afterwards).
        data: a ``DataLoader`` (or any iterable of ``(x, y)`` batches), an ``ArrayDataset``
            or an ``(images, labels)`` pair; batches are streamed and moved to the device
            one at a time.
        attacks: an attack name or :class:`~robustcompress.attacks.Attack`, a list of
            them, or a mapping ``{label: attack}`` (to compare two settings of one attack).
        eps: one budget or several (a robustness curve, sorted). Fixed-budget attacks are run at
            each; minimal-perturbation attacks are run once and their rows count only
            perturbations with ``‖r‖_p ≤ ε`` (plus an unbounded row); attacks without a
            budget (random noise: its adversarial accuracy is the accuracy under noise)
            get one row. ``None`` uses each attack's own ``eps``. One grid serves all
            attacks, so mix ℓ∞ and ℓ2 attacks in separate calls.
        device: where to run; ``None`` keeps the model's device, otherwise the model is
            moved there (``"auto"`` picks CUDA when available).
        batch_size: batch size when ``data`` is a whole data set (default 500).
        check_masking: compute the gradient-masking flags (default on). This adds one
            backward pass per batch, FGSM at the iterative attacks' ε and at ε = 1 (shared
            with a requested FGSM), and a 10-step reference PGD when no iterative ℓ∞
            attack (by its declared capabilities) is requested.
        progress: called with an :class:`EvaluationProgress` before each attack run on a
            batch and once at the end (e.g.
            :class:`robustcompress.training.progress.EvaluationDisplay`). It only
            observes: the record is the same with or without it.

    Returns:
        An :class:`EvaluationRecord`.
    """
    grid = _eps_grid(eps)
    labelled = _labelled(attacks)
    plans = [
        _Plan(label, attack, kind, _rows(attack, kind, grid))
        for label, attack in labelled.items()
        for kind in [_kind(attack)]
    ]
    references = _masking_plans(plans, _input_count(data)) if check_masking else []
    if device is None:
        target = _model_device(model)
    else:
        target = resolve_device(device)
        model.to(target)

    labels, preds, l2s, linfs, degenerate = [], [], [], [], []
    notify = None if progress is None else _Notifier(progress, data, (*plans, *references))
    with attack_mode(model):
        for x, y in iterate_batches(data, batch_size):
            x = x.to(target)
            y = y.to(target, dtype=torch.long)
            pred_clean = predict(model, x)
            sign_steps: dict[Any, torch.Tensor] = {}
            before_run = None if notify is None else notify.batch(len(y))
            for plan in (*plans, *references):
                plan.run_batch(model, x, y, sign_steps, before_run)
            if check_masking:
                degenerate.append(checks.degenerate_input_gradients(model, x, y).cpu())
            labels.append(y.cpu())
            preds.append(pred_clean.cpu())
            l2s.append(input_norms(x, "l2").cpu())
            linfs.append(input_norms(x, "linf").cpu())
    if not labels:
        raise DataError("data yielded no batches: nothing to evaluate")
    if notify is not None:
        notify.finished()

    n = sum(len(t) for t in labels)
    clean = torch.cat(preds).numpy()
    record = EvaluationRecord(
        labels=torch.cat(labels).numpy(),
        pred_clean=clean,
        x_l2=torch.cat(l2s).numpy(),
        x_linf=torch.cat(linfs).numpy(),
        degenerate_gradient=torch.cat(degenerate).numpy() if degenerate else np.zeros(n, bool),
        attacks={p.label: p.curve(clean) for p in plans},
        references={p.label: p.curve(clean) for p in references},
        device=str(target),
    )
    if check_masking:
        record.masking = masking_flags(record)
    return record


def _fooling_by_eps(record: EvaluationRecord, curve: AttackCurve) -> dict[float, float]:
    return {
        e: fooling_ratio(record.pred_clean, curve.pred_adv[i], record.labels)
        for i, e in enumerate(curve.eps)
        if e is not None
    }


def _best_by_eps(curves: Iterable[dict[float, float]]) -> dict[float, float]:
    """Per ε, the highest finite fooling ratio among ``curves`` (NaN if none is finite)."""
    best: dict[float, float] = {}
    for curve in curves:
        for eps, fr in curve.items():
            if eps not in best or not math.isfinite(best[eps]) or fr > best[eps]:
                best[eps] = fr
    return best


def masking_flags(record: EvaluationRecord) -> list[MaskingFlag]:
    """The gradient-masking flags of ``record`` (needs its reference runs), and the
    near-chance guard: a model at chance accuracy is not judged robust."""
    if "reference_fgsm" not in record.references:
        raise ConfigError(
            "this record has no reference runs for the masking checks: "
            "evaluate with check_masking=True"
        )
    every = {**record.attacks, **record.references}
    fgsm = _fooling_by_eps(record, record.references["reference_fgsm"])

    def fooling_where(compared: Callable[[Mapping[str, bool], str | None], bool]) -> dict:
        """``{label: {ε: FR}}`` of the fixed-budget curves ``compared`` selects."""
        return {
            label: _fooling_by_eps(record, curve)
            for label, curve in every.items()
            if curve.kind == FIXED and compared(curve.capabilities, curve.norm)
        }

    iterative = fooling_where(checks.compared_as_iterative)
    single_step = _best_by_eps(fooling_where(checks.compared_as_single_step).values())
    black_box = fooling_where(checks.compared_as_black_box)
    white_box = _best_by_eps(fooling_where(checks.compared_as_white_box).values())
    curves = {
        label: (
            [e for e in curve.eps if e is not None],
            [
                adversarial_accuracy(curve.pred_adv[i], record.labels)
                for i, e in enumerate(curve.eps)
                if e is not None
            ],
        )
        for label, curve in record.attacks.items()
        if curve.kind == FIXED
    }
    labels = np.asarray(record.labels)
    n_correct = int(correctly_classified(record.pred_clean, record.labels).sum())
    num_classes = int(labels.max()) + 1 if labels.size else 2
    return [
        checks.check_gradients(record.degenerate_gradient),
        checks.check_iterative_vs_single_step(single_step, iterative),
        checks.check_black_box_vs_white_box(black_box, white_box),
        checks.check_large_eps(fgsm.get(checks.LARGE_EPS)),
        checks.check_monotone(curves),
        checks.check_clean_accuracy(n_correct, int(labels.size), num_classes),
    ]


def fooling_ratio_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack) -> float:
    """Fooling ratio of ``attack`` on one batch ``(x, y)`` already on the model's device.

    ``FR = |{n : k̂(x_n) = y_n, k̂(x_adv,n) ≠ k̂(x_n)}| / |{n : k̂(x_n) = y_n}|``
    (Langenberg et al. 2019, §5); NaN if no input is classified correctly. Predictions
    are taken in eval mode; the model's mode and parameter flags are restored, so the
    training trackers can call this between optimiser steps.
    """
    with attack_mode(model):
        pred_clean = predict(model, x)
        pred_adv = predict(model, attack(model, x, y))
    return fooling_ratio(pred_clean, pred_adv, y)
