"""Trackers: what is measured on a fixed evaluation subset while a model trains.

A tracker looks at the model at one moment (every ``N`` steps and at every epoch
end) and returns :class:`Measurement` rows; the trainer stamps them with step and
epoch and appends them to ``metrics.jsonl`` as they happen, one JSON object per
line (``{"step", "epoch", "metric", "layer"?, "value"}``), flushing each line so a
run that dies keeps its history.

The three trackers follow what Langenberg et al. 2019 plot over training (§5,
Figures 2–5):

* :class:`CleanTracker`: clean accuracy and the loss terms of eq. (8) on the
  evaluation subset (``accuracy``, ``loss/ce``, ``loss/<regularizer>``, ``loss/total``);
* :class:`FoolingRatioTracker`: the fooling ratio of one attack, i.e. the share of
  correctly classified inputs whose prediction the attack changes (§5), as
  ``fooling_ratio/<label>``; by default FGSM, PGD (T = 20, α = 0.005) and GNM
  (T = 5), all at ε = 0.05, the paper's setting;
* :class:`StructureTracker`: structure measures of every weight matrix W_i
  (effective rank, eq. 3, and effective sparsity, eq. 2, by default; any measure
  registered in :mod:`robustcompress.catalogue`), one row per matrix with
  ``layer = "W<i>"``;
* :class:`ActivationSparsityTracker`: the share of zero activations feeding the last
  linear layer (Guo et al. 2018, Table 1), as ``activation_sparsity``;
* :class:`OperatorSpectrumTracker`: the spread (std) and the top of the singular
  values of each layer's operator, a convolution's reshaped, circular (FFT) or dense;
* :class:`GeneralizationTracker`: training vs test loss and error with their gaps, and
  margin statistics on both sets (the ICLR 2020 submission on AR as regularization);
* :class:`MutualInformationTracker`: KDE bounds on I(X; T_i) and I(T_i; Y) of every
  hidden representation t_i (Figure 2, σ² = 0.1) on a fixed sample, one row per
  bound and layer (``layer = "t<i>"``).

To add a tracker, subclass :class:`Tracker` and return measurements from
:meth:`Tracker.measure`; :class:`EvaluationContext` gives it the model, the
evaluation batch, cached clean logits and hidden representations (forward hooks).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from robustcompress.attacks import Attack
from robustcompress.catalogue import ACTIVATION_SPARSITY, fooling_ratio_key, structure_measures
from robustcompress.errors import ConfigError
from robustcompress.models import capture_representations, weight_matrices
from robustcompress.regularizers import Regularizer, regularized_loss
from robustcompress.structure import layer_mutual_information


@dataclass(frozen=True)
class Measurement:
    """One value a tracker measured; ``layer`` names the weight matrix when relevant."""

    metric: str
    value: float
    layer: str | None = None


@dataclass(frozen=True)
class MetricRecord:
    """One line of ``metrics.jsonl``."""

    step: int
    epoch: int
    metric: str
    value: float
    layer: str | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "metric": self.metric}
        if self.layer is not None:
            row["layer"] = self.layer
        row["value"] = self.value if math.isfinite(self.value) else None
        return row

    @property
    def key(self) -> str:
        """``metric`` or ``metric/layer``: the name used in summaries."""
        return self.metric if self.layer is None else f"{self.metric}/{self.layer}"


@dataclass
class EvaluationContext:
    """What a tracker sees: the model (in eval mode) and the fixed evaluation batch."""

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    step: int
    epoch: int
    regularizers: Sequence[Regularizer] = ()
    _logits: torch.Tensor | None = field(default=None, repr=False)

    @property
    def logits(self) -> torch.Tensor:
        """Clean logits of the evaluation batch, computed once per context."""
        if self._logits is None:
            with torch.no_grad():
                self._logits = self.model(self.images)
        return self._logits

    def representations(self, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Hidden representations t_i of the evaluation batch (``N × d`` each).

        ``names`` are module paths (default: every activation module); see
        :func:`robustcompress.models.capture_representations`.
        """
        with capture_representations(self.model, names) as store, torch.no_grad():
            self._logits = self.model(self.images)
        return dict(store)


class Tracker(ABC):
    """Something measured on the evaluation subset during training."""

    name: str = ""

    @abstractmethod
    def measure(self, context: EvaluationContext) -> list[Measurement]:
        """Measurements of the model at this moment."""


class CleanTracker(Tracker):
    """Clean accuracy and the eq. (8) loss terms on the evaluation subset.

    The loss terms include every configured regularizer, also those applied as
    proximal steps (which are not part of the training loss), so runs with and
    without proximal steps report comparable ``loss/<name>`` values.
    """

    name = "clean"

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        logits = context.logits
        accuracy = (logits.argmax(dim=1) == context.labels).double().mean().item()
        with torch.no_grad():
            _, terms = regularized_loss(context.model, logits, context.labels, context.regularizers)
        return [Measurement("accuracy", accuracy)] + [
            Measurement(f"loss/{term}", value) for term, value in terms.items()
        ]


class FoolingRatioTracker(Tracker):
    """The fooling ratio of one attack on the evaluation subset (Langenberg §5).

    Computed with :func:`robustcompress.evaluation.fooling_ratio_of`: among the
    inputs the model classifies correctly, the fraction whose prediction changes.
    """

    def __init__(self, label: str, attack: Attack) -> None:
        self.label = label
        self.attack = attack
        self.name = fooling_ratio_key(label)

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        from robustcompress.evaluation import fooling_ratio_of

        value = fooling_ratio_of(context.model, context.images, context.labels, self.attack)
        return [Measurement(self.name, float(value))]

    def __repr__(self) -> str:
        return f"FoolingRatioTracker({self.label!r}, {self.attack!r})"


class StructureTracker(Tracker):
    """Structure measures of every weight matrix W_i (``layer = "W<i>"``).

    Convolutions are measured through the reshaped kernel W̃ (see
    :mod:`robustcompress.models.weights`).
    """

    name = "structure"

    def __init__(self, measures: Sequence[str] = ("effective_rank", "effective_sparsity")) -> None:
        known = structure_measures()
        unknown = [m for m in measures if m not in known]
        if unknown:
            raise ConfigError(
                f"unknown structure measure(s) {', '.join(unknown)}: "
                f"choose from {', '.join(known)} (or register one: "
                "robustcompress.catalogue.register_structure_measure)"
            )
        self.measures = tuple(measures)
        self._functions = {m: known[m] for m in self.measures}

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        rows = []
        for wm in weight_matrices(context.model):
            matrix = wm.matrix.detach()
            for name in self.measures:
                rows.append(Measurement(name, float(self._functions[name](matrix)), wm.name))
        return rows

    def __repr__(self) -> str:
        return f"StructureTracker({list(self.measures)})"


OPERATOR_SV_STD = "operator_sv_std"
OPERATOR_NORM = "operator_norm"


class OperatorSpectrumTracker(Tracker):
    """The standard deviation and the largest of the singular values of every weight
    layer's operator, a convolution's in the view ``operator`` (``reshaped``,
    ``circular`` or ``dense``: :mod:`robustcompress.structure.operators`), as
    ``operator_sv_std/W<i>`` and ``operator_norm/W<i>``. The convolutions' input sizes
    come from the evaluation batch's image shape."""

    name = "operator_spectra"

    def __init__(self, operator: str = "circular") -> None:
        from robustcompress.structure.operators import check_operator

        self.operator = check_operator(operator)

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        from robustcompress.structure.operators import layer_spectra

        shape = tuple(int(s) for s in context.images.shape[1:])
        rows = []
        for spectrum in layer_spectra(context.model, shape, self.operator):
            rows.append(Measurement(OPERATOR_SV_STD, spectrum.std, spectrum.name))
            rows.append(Measurement(OPERATOR_NORM, float(spectrum.sigma[0]), spectrum.name))
        return rows


def last_linear_input_sparsity(model: nn.Module, images: torch.Tensor) -> float:
    """The share of exact zeros in the input of ``model``'s last :class:`nn.Linear`
    (in module order) over ``images``: Guo et al.'s "percentage of deactivated neurons
    feeding to the last fully-connected layer" (Table 1)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(
            f"{type(model).__name__} has no linear layer: activation sparsity is measured "
            "on the input of the last one"
        )
    seen: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return float(torch.cat([a.flatten() for a in seen]).eq(0).double().mean())


class ActivationSparsityTracker(Tracker):
    """The share of zero activations feeding the last linear layer on the evaluation
    subset (Guo et al. 2018, Table 1, "Sparsity (a)"), as ``activation_sparsity``."""

    name = ACTIVATION_SPARSITY

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        return [Measurement(self.name, last_linear_input_sparsity(context.model, context.images))]


GENERALIZATION = "generalization"
MARGIN = "margin"
GENERALIZATION_TERMS = (
    "train_loss",
    "test_loss",
    "train_error",
    "test_error",
    "loss_gap",
    "error_gap",
)
MARGIN_TERMS = ("train_mean", "train_std", "test_mean", "test_std")


class GeneralizationTracker(Tracker):
    """Training and test cross-entropy and error rate with their gaps (test − training),
    as ``generalization/<term>``, and the mean and standard deviation of the margins
    ``f_y − max_{i≠y} f_i`` on both sets, as ``margin/<set>_<statistic>``
    (:mod:`robustcompress.evaluation.generalization`). The two sets are fixed at
    construction; the trainer's evaluation subset is not used."""

    name = GENERALIZATION

    def __init__(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        batch_size: int = 1000,
    ) -> None:
        self.train, self.test, self.batch_size = train, test, batch_size

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        from robustcompress.evaluation.generalization import GeneralizationGap, prediction_stats

        a = prediction_stats(context.model, *self.train, batch_size=self.batch_size)
        b = prediction_stats(context.model, *self.test, batch_size=self.batch_size)
        gap = GeneralizationGap.of(a, b)
        rows = [
            Measurement(f"{GENERALIZATION}/{k}", float(getattr(gap, k)))
            for k in GENERALIZATION_TERMS
        ]
        for part, stats in (("train", a), ("test", b)):
            rows.append(Measurement(f"{MARGIN}/{part}_mean", float(stats.margins.mean())))
            rows.append(Measurement(f"{MARGIN}/{part}_std", float(stats.margins.std())))
        return rows


MUTUAL_INFORMATION_METRICS = (
    "mi_input_lower",
    "mi_input_upper",
    "mi_label_lower",
    "mi_label_upper",
)
"""The rows a :class:`MutualInformationTracker` writes per hidden layer (in bits)."""


class MutualInformationTracker(Tracker):
    """KDE bounds on the mutual information of each hidden layer (Langenberg §5, Figure 2).

    For every hidden representation t_i (the outputs of the activation modules,
    eq. 4) it records the Kolchinsky–Tracey bracket ``I_lo ≤ I(X; T_i) ≤ I_up`` and
    the bracket on ``I(T_i; Y)`` with Gaussian noise of variance σ² added to t_i
    (:func:`robustcompress.structure.layer_mutual_information`), in bits, as rows
    ``mi_input_lower``, ``mi_input_upper``, ``mi_label_lower`` and ``mi_label_upper``
    with ``layer = "t<i>"`` (the paper's t_i: the i-th hidden activation module in
    forward order; a module given in ``layers`` that is not one keeps its path). The
    paper uses σ² = 0.1 for the FCNN.

    The estimates depend on the number N of inputs (``I_up ≤ log2 N``), so the sample
    is fixed for the whole run: ``sample = (images, labels)`` given at construction,
    or the trainer's evaluation subset when ``sample`` is ``None``.
    """

    name = "mutual_information"

    def __init__(
        self,
        sample: tuple[torch.Tensor, torch.Tensor] | None = None,
        noise_variance: float = 0.1,
        layers: Sequence[str] | None = None,
    ) -> None:
        if sample is not None and len(sample[0]) != len(sample[1]):
            raise ConfigError(
                f"mutual-information sample has {len(sample[0])} images but "
                f"{len(sample[1])} labels: give one label per image"
            )
        if not (isinstance(noise_variance, (int, float)) and noise_variance > 0):
            raise ConfigError(
                f"mutual-information noise_variance must be > 0 (got {noise_variance!r})"
            )
        self.sample = sample
        self.noise_variance = float(noise_variance)
        self.layers = None if layers is None else list(layers)

    def measure(self, context: EvaluationContext) -> list[Measurement]:
        sample = self.sample if self.sample is not None else (context.images, context.labels)
        images, labels = sample
        parameter = next(context.model.parameters(), None)
        if parameter is not None:
            images, labels = images.to(parameter.device), labels.to(parameter.device)
        records = layer_mutual_information(
            context.model,
            images,
            labels,
            layers=self.layers,
            noise_variance=self.noise_variance,
            unit="bits",
        )
        rows = []
        for record in records:
            index = record["index"]
            layer = f"t{index}" if index is not None else str(record["layer"])
            for metric in MUTUAL_INFORMATION_METRICS:
                rows.append(Measurement(metric, float(record[metric]), layer))  # type: ignore[arg-type]
        return rows

    def __repr__(self) -> str:
        n = "eval subset" if self.sample is None else len(self.sample[0])
        return f"MutualInformationTracker(n={n}, noise_variance={self.noise_variance})"


class MetricsWriter:
    """Appends :class:`MetricRecord` rows to ``metrics.jsonl``, one flushed line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, records: Iterable[MetricRecord]) -> None:
        for record in records:
            self._handle.write(json.dumps(record.to_json()) + "\n")
            self._handle.flush()

    def offset(self) -> int:
        """Current size of the file in bytes (stored in checkpoints for resuming)."""
        self._handle.flush()
        return self.path.stat().st_size

    def close(self) -> None:
        self._handle.close()


def truncate_metrics(path: str | Path, offset: int) -> None:
    """Cut ``metrics.jsonl`` back to ``offset`` bytes (drops rows newer than a checkpoint)."""
    path = Path(path)
    if path.exists() and path.stat().st_size > offset:
        with open(path, "r+b") as handle:
            handle.truncate(offset)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a ``metrics.jsonl`` (a torn last line from a killed run is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def latest_values(rows: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """``{metric or metric/layer: value}`` of the last step that was tracked."""
    rows = list(rows)
    if not rows:
        return {}
    last = max(int(r["step"]) for r in rows)
    out: dict[str, float | None] = {}
    for r in rows:
        if int(r["step"]) == last:
            key = r["metric"] if r.get("layer") is None else f"{r['metric']}/{r['layer']}"
            out[key] = r["value"]
    return out
