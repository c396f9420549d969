"""The metric catalogue: every quantity a run records, by key, with how to show it.

Trackers write rows named by these keys to ``metrics.jsonl``; tables, figures and
claims read the same keys and take their labels, symbols, units and the meaning of
"better" from here. A stored key is ``<metric>`` or ``<metric>/<qualifier>``, where
the qualifier is

* a weight matrix (``effective_rank/W1``) or a hidden layer (``mi_input_lower/t2``)
  for a metric measured ``per = "layer"``;
* a tracked attack's label (``fooling_ratio/pgd``) for ``per = "attack"``: the label
  is the key of ``tracking.attacks`` in the run's config, whose settings (attack
  name, ε, steps, step size, norm) are part of the metric's identity. Two entries of
  the same attack at two ε values are two metrics, and a report reads their settings
  from each run's stored config (:func:`attack_settings`), never from a constant;
* a loss term (``loss/ce``, ``loss/nuclear``) for ``per = "term"``.

A new structure measure reaches the trackers (``tracking.structure``), the config
check and every report by registering it once::

    from robustcompress.catalogue import register_structure_measure

    register_structure_measure(
        "row_sparsity", my_function, label="row sparsity", symbol="ρ", group="structure"
    )

and a new per-example or per-model metric by :func:`register_metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from robustcompress.errors import ConfigError

Better = Literal["higher", "lower"]
Per = Literal["layer", "attack", "term"]

FOOLING_RATIO = "fooling_ratio"
ACCURACY = "accuracy"
LOSS = "loss"
ACTIVATION_SPARSITY = "activation_sparsity"


@dataclass(frozen=True)
class MetricSpec:
    """One kind of recorded quantity.

    ``better`` says which way is better for the model's *quality* (``"higher"`` for
    accuracy, ``"lower"`` for a fooling ratio); ``None`` for descriptive quantities
    (structure, information) that a claim may want either way. ``compute`` is the
    function of a weight matrix for structure measures (``None`` otherwise).
    """

    key: str
    label: str
    symbol: str
    group: str
    unit: str = ""
    better: Better | None = None
    per: Per | None = None
    description: str = ""
    source: str = ""
    compute: Callable[[torch.Tensor], float] | None = field(default=None, compare=False)

    def column(self, qualifier: str | None = None) -> str:
        """A short column name: ``r(W1)``, ``FR pgd``, ``clean accuracy``."""
        if qualifier is None:
            return self.label
        if self.per == "layer":
            return f"{self.symbol}({qualifier})"
        if self.per == "term":
            return f"{self.key}/{qualifier}"
        return f"{self.symbol} {qualifier}"


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the catalogue (a second spec under one key is an error)."""
    if "/" in spec.key or not spec.key:
        raise ConfigError(f"metric key {spec.key!r} must be non-empty and contain no '/'")
    if spec.key in _REGISTRY and not replace and _REGISTRY[spec.key] != spec:
        raise ConfigError(f"metric {spec.key!r} is already registered; pass replace=True")
    _REGISTRY[spec.key] = spec
    return spec


def unregister_metric(key: str) -> None:
    """Remove ``key`` from the catalogue (for tests that register temporary metrics)."""
    _REGISTRY.pop(key, None)


def register_structure_measure(
    key: str,
    compute: Callable[[torch.Tensor], float],
    *,
    label: str,
    symbol: str,
    group: str = "structure",
    unit: str = "",
    description: str = "",
    source: str = "",
    replace: bool = False,
) -> MetricSpec:
    """Register a measure of one weight matrix (a 2-D tensor; convolutions reshaped).

    It can then be tracked (``tracking.structure: [<key>]``), is accepted by the config
    check, and appears in every report's structure table and figure.
    """
    spec = MetricSpec(
        key,
        label,
        symbol,
        group,
        unit=unit,
        per="layer",
        description=description,
        source=source,
        compute=compute,
    )
    return register_metric(spec, replace=replace)


def metric_spec(key: str) -> MetricSpec | None:
    """The spec of a stored key (``fooling_ratio/pgd`` → ``fooling_ratio``), or None."""
    return _REGISTRY.get(split_key(key)[0])


def list_metrics(group: str | None = None) -> list[MetricSpec]:
    """Registered specs in registration order, optionally of one group."""
    return [s for s in _REGISTRY.values() if group is None or s.group == group]


def structure_measures() -> dict[str, Callable[[torch.Tensor], float]]:
    """``{key: function}`` of every registered per-matrix measure."""
    return {s.key: s.compute for s in _REGISTRY.values() if s.compute is not None}


def split_key(key: str) -> tuple[str, str | None]:
    """``"effective_rank/W1"`` → ``("effective_rank", "W1")``; ``"accuracy"`` → ``(…, None)``."""
    name, sep, qualifier = key.partition("/")
    return name, (qualifier if sep else None)


def metric_key(metric: str, qualifier: str | None = None) -> str:
    """The stored key of ``metric`` for one layer, attack label or loss term."""
    return metric if qualifier is None else f"{metric}/{qualifier}"


def fooling_ratio_key(label: str) -> str:
    """``fooling_ratio/<label>``: the key of a tracked attack's fooling ratio."""
    return metric_key(FOOLING_RATIO, label)


def is_group(key: str, *groups: str) -> bool:
    """Whether the stored ``key`` belongs to one of ``groups`` (unknown keys: no)."""
    spec = metric_spec(key)
    return spec is not None and spec.group in groups


def headline(key: str) -> bool:
    """Keys shown in run tables and summaries: accuracy and robustness metrics."""
    return is_group(key, "accuracy", "robustness")


def column_label(key: str) -> str:
    """A short column name for a stored key (the key itself when unregistered)."""
    spec = metric_spec(key)
    if spec is None:
        return key
    return spec.column(split_key(key)[1])


def attack_settings(config: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The resolved settings behind ``fooling_ratio/<label>`` in a stored run config.

    ``{"attack": name, "norm": ..., "eps": ..., ...}``: the entry of
    ``tracking.attacks`` (its ``attack`` key, default ``label``) with the attack's
    defaults filled in; ``{}`` when the run did not track ``label``.
    """
    entry = ((config.get("tracking") or {}).get("attacks") or {}).get(label)
    if entry is None:
        return {}
    params = dict(entry)
    name = str(params.pop("attack", label))
    try:
        from robustcompress import attacks

        attack = attacks.get(name, **params)
    except Exception:  # an attack this install no longer knows: show what was stored
        return {"attack": name, **params}
    return {"attack": attack.name, "norm": attack.norm, **attack.settings()}


def attack_text(settings: Mapping[str, Any]) -> str:
    """``"PGD ℓ∞ ε = 0.05, T = 20, α = 0.005"`` from :func:`attack_settings`."""
    if not settings:
        return ""
    norms = {"linf": "ℓ∞", "l2": "ℓ2", "l1": "ℓ1"}
    parts = [str(settings.get("attack", "?")).upper()]
    if settings.get("norm"):
        parts.append(norms.get(str(settings["norm"]), str(settings["norm"])))
    values = []
    for key, symbol in (("eps", "ε"), ("steps", "T"), ("alpha", "α")):
        if settings.get(key) is not None:
            values.append(f"{symbol} = {settings[key]:g}")
    if settings.get("restarts") not in (None, 0, 1):
        values.append(f"{settings['restarts']} restarts")
    if settings.get("random_start"):
        values.append("random start")
    if settings.get("clip") is False:
        values.append("unclipped")
    return " ".join(parts) + (" " + ", ".join(values) if values else "")


def _builtin() -> None:
    from robustcompress.structure import (
        effective_rank,
        effective_sparsity,
        exact_sparsity,
        numerical_rank,
        singular_value_std,
        spectral_norm,
        stable_rank,
    )

    register_metric(
        MetricSpec(
            ACCURACY,
            "clean accuracy",
            "acc",
            "accuracy",
            better="higher",
            description="share of the evaluation inputs classified correctly",
        )
    )
    register_metric(
        MetricSpec(
            FOOLING_RATIO,
            "fooling ratio",
            "FR",
            "robustness",
            better="lower",
            per="attack",
            description="share of the correctly classified inputs whose prediction the "
            "attack changes",
            source="Langenberg et al. 2019, §5",
        )
    )
    register_metric(
        MetricSpec(
            LOSS,
            "loss",
            "L",
            "loss",
            better="lower",
            per="term",
            description="cross-entropy, each regularizer's term and their sum (eq. 8)",
            source="Langenberg et al. 2019, eq. 8",
        )
    )
    register_metric(
        MetricSpec(
            ACTIVATION_SPARSITY,
            "activation sparsity",
            "zeros(a)",
            "structure",
            description="share of zero activations feeding the last linear layer on the "
            "evaluation inputs",
            source="Guo et al. 2018, Table 1 (“Sparsity (a)”)",
        )
    )
    iclr = "ICLR 2020 submission on AR as regularization"
    register_metric(
        MetricSpec(
            "generalization",
            "generalization",
            "GE",
            "generalization",
            per="term",
            description="training and test cross-entropy (train_loss, test_loss) and error "
            "rate (train_error, test_error) on whole sets, and the gaps test − training "
            "(loss_gap, error_gap)",
            source=f"{iclr}, Figure 3",
        )
    )
    register_metric(
        MetricSpec(
            "margin",
            "margin f_y − max_{i≠y} f_i",
            "margin",
            "generalization",
            per="term",
            description="mean and standard deviation of the logit margins on the training "
            "and test sets (train_mean, train_std, test_mean, test_std)",
            source=f"{iclr}, Definition 3, Figure 4",
        )
    )
    for key, label, symbol in (
        ("operator_sv_std", "std of the operator's singular values", "std σ(op)"),
        ("operator_norm", "operator norm (largest singular value)", "‖op‖₂"),
    ):
        register_metric(
            MetricSpec(
                key,
                label,
                symbol,
                "structure",
                per="layer",
                description="of each layer's linear operator, a convolution's in the run's "
                "tracking.operator_spectra.operator view",
                source=f"{iclr}, Figures 1a, 5c-d; Sedghi et al. 2019",
            )
        )
    langenberg = "Langenberg et al. 2019"
    for key, fn, label, symbol, source in (
        (
            "effective_rank",
            effective_rank,
            "effective rank r(W)",
            "r",
            f"{langenberg}, eq. 3",
        ),
        (
            "effective_sparsity",
            effective_sparsity,
            "effective sparsity s(W)",
            "s",
            f"{langenberg}, eq. 2",
        ),
        ("stable_rank", stable_rank, "stable rank ‖W‖_F²/‖W‖₂²", "srank", ""),
        ("spectral_norm", spectral_norm, "spectral norm ‖W‖₂", "‖W‖₂", ""),
        ("numerical_rank", numerical_rank, "numerical rank", "rank", ""),
        ("exact_sparsity", exact_sparsity, "share of zero entries", "zeros", ""),
        ("singular_value_std", singular_value_std, "std of singular values", "std σ", ""),
    ):
        register_structure_measure(key, fn, label=label, symbol=symbol, source=source)
    for key, label, symbol in (
        ("mi_input_lower", "I(X; T) lower bound", "I(X;T)↓"),
        ("mi_input_upper", "I(X; T) upper bound", "I(X;T)↑"),
        ("mi_label_lower", "I(T; Y) lower bound", "I(T;Y)↓"),
        ("mi_label_upper", "I(T; Y) upper bound", "I(T;Y)↑"),
    ):
        register_metric(
            MetricSpec(
                key,
                label,
                symbol,
                "information",
                unit="bits",
                per="layer",
                source="Kolchinsky & Tracey 2017; Langenberg et al. 2019, Figure 2",
            )
        )


_builtin()
