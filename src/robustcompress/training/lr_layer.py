"""The low-rank (LR) virtual layer of Sanyal et al. (*Robustness via deep low-rank
representations*, §2, Algorithms 1-2, Appendix B), as the training extra ``lr_layer``.

At each chosen module the layer reads the output a (flattened per example to m values)
and, without changing it, adds to the training loss

    λ₁ · L_c + λ₂ · L_n,   L_c = (1/B) Σ_i ‖Wᵀ(a_i + b) − (a_i + b)‖²,
                           L_n = (1/B) Σ_i |1 − ‖a_i‖|

over the B examples of the batch. W = (W_s + W_sᵀ)/2 is the symmetric parametrisation
of Appendix B.1 and b a bias; W_s and b are trainable tensors the layer owns, trained by
the run's optimiser with the model, with its learning rate, schedule, momentum and weight
decay (Algorithm 2, line 12, takes a plain gradient step on W with the learning rate).
L_c pulls the representations towards the affine rank-r subspace W keeps; L_n stops them
from shrinking to zero, the trivial minimiser of L_c.

Every ``every`` steps (the paper: 10) W_s ← Π_r(W): the nearest SPSD matrix of rank ≤ r
(:mod:`robustcompress.structure.nystrom`), by an exact eigendecomposition when
m ≤ ``exact_max`` and by ensembled Nyström (``nystrom_runs`` runs of ``nystrom_columns``
uniformly sampled columns, default 2r, the paper's l = 2r) above it, or as ``projection``
forces. W_s then stays SPSD (Lemma 1). The layer starts after ``start_epoch`` epochs of
ordinary training (the paper pre-trains for 50); at its first step W_s is set to the
orthogonal projector onto the top-r right singular subspace of that batch's a + b, so
L_c starts small instead of at an arbitrary rank-r subspace (the paper does not say how
W starts). Only training forward passes (model in train mode, autograd on) are used; an
adversarial step with a clean mix contributes both passes.

State (checkpointed, so ``resume`` is exact): W_s and b (restored in place: the optimiser
holds them), whether the layer has started, its step counter, the Nyström generator's
state and how many projections each method ran. The run's log names the method used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.training.extras import SettingError, register_extra
from robustcompress.training.trainer import Callback, Trainer


def reconstruction_loss(
    activations: torch.Tensor, w_s: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """L_c of a batch: (1/B) Σ_i ‖Wᵀ(a_i + b) − (a_i + b)‖², W = (W_s + W_sᵀ)/2."""
    x = activations.flatten(1) + bias
    w = (w_s + w_s.T) / 2
    return ((x @ w - x) ** 2).sum() / x.shape[0]


def norm_loss(activations: torch.Tensor) -> torch.Tensor:
    """L_n of a batch: (1/B) Σ_i |1 − ‖a_i‖|."""
    return (1.0 - activations.flatten(1).norm(dim=1)).abs().mean()


@register_extra("lr_layer")
@dataclass
class LowRankLayer(Callback):
    """The LR virtual layer (module docstring) after each module in ``layers``.

    ``layers``: module paths whose outputs are penalised (one position: "1-LR", two:
    "2-LR"); ``rank``: the target rank r, one for all or one per layer; ``lam_c`` /
    ``lam_n``: λ₁ and λ₂, likewise; ``every``: steps between projections; ``start_epoch``:
    epochs of training before the layer starts (0: from the first step); ``projection``:
    ``auto``, ``svd`` or ``nystrom``; ``exact_max``: the largest m projected exactly under
    ``auto``; ``nystrom_runs`` / ``nystrom_columns``: t and l; ``seed``: of the column
    sampling; ``input_shape``: one input's shape, to size the layers (default: the
    registered model's).
    """

    layers: list[str]
    rank: int | list[int]
    lam_c: float | list[float] = 0.01
    lam_n: float | list[float] = 0.01
    every: int = 10
    start_epoch: int = 0
    projection: Literal["auto", "svd", "nystrom"] = "auto"
    exact_max: int = 2048
    nystrom_runs: int = 5
    nystrom_columns: int | None = None
    seed: int = 0
    input_shape: list[int] | None = None
    w_s: dict[str, nn.Parameter] = field(default_factory=dict, init=False, repr=False)
    bias: dict[str, nn.Parameter] = field(default_factory=dict, init=False, repr=False)
    started: bool = field(default=False, init=False)
    steps: int = field(default=0, init=False)
    counts: dict[str, int] = field(default_factory=dict, init=False)
    _ranks: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lams: dict[str, tuple[float, float]] = field(default_factory=dict, init=False, repr=False)
    _outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict, init=False, repr=False)
    _handles: list[Any] = field(default_factory=list, init=False, repr=False)
    _generator: torch.Generator = field(default_factory=torch.Generator, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise SettingError("layers", "name at least one module whose output to constrain")
        ranks = self._per_layer("rank", self.rank)
        if any(r < 1 for r in ranks):
            raise SettingError("rank", f"every rank must be ≥ 1 (got {ranks})")
        lams = {key: self._per_layer(key, getattr(self, key)) for key in ("lam_c", "lam_n")}
        for key, values in lams.items():
            if not all(v >= 0 for v in values):
                raise SettingError(key, f"must be ≥ 0 (got {getattr(self, key)})")
        for key in ("every", "exact_max", "nystrom_runs"):
            if getattr(self, key) < 1:
                raise SettingError(key, f"must be ≥ 1 (got {getattr(self, key)})")
        if self.start_epoch < 0:
            raise SettingError("start_epoch", f"must be ≥ 0 (got {self.start_epoch})")
        self._ranks = dict(zip(self.layers, ranks, strict=True))
        self._lams = {name: (c, n) for name, c, n in zip(self.layers, *lams.values(), strict=True)}
        self._generator.manual_seed(self.seed)

    def _per_layer(self, key: str, value: Any) -> list[Any]:
        """``value`` for each of ``layers``: one for all, or a list of one per layer."""
        values = value if isinstance(value, list) else [value] * len(self.layers)
        if len(values) != len(self.layers):
            raise SettingError(
                key, f"give one value or one per layer ({len(self.layers)}), got {len(values)}"
            )
        return values

    # ------------------------------------------------------------------ setup

    def setup(self, model: nn.Module) -> None:
        from robustcompress.evaluation.representations import representations
        from robustcompress.structure.report import _resolve_input_shape

        modules = dict(model.named_modules())
        missing = [n for n in self.layers if n not in modules]
        if missing:
            raise SettingError(
                "layers",
                f"no module(s) {', '.join(missing)} in the model; choose from "
                f"{', '.join(n for n in modules if n)}",
            )
        shape = _resolve_input_shape(model, self.input_shape)
        param = next(model.parameters())
        zero = torch.zeros(1, *shape, dtype=param.dtype)
        sizes = {n: representations(model, n, zero).shape[1] for n in self.layers}
        for name in self.layers:
            m = sizes[name]
            if self._ranks[name] > m:
                raise SettingError(
                    "rank", f"{self._ranks[name]} exceeds the {m} values of {name}'s output"
                )
            if name not in self.w_s:
                self.w_s[name] = nn.Parameter(torch.eye(m, dtype=param.dtype, device=param.device))
                self.bias[name] = nn.Parameter(
                    torch.zeros(m, dtype=param.dtype, device=param.device)
                )
        self._model = model
        for handle in self._handles:
            handle.remove()
        self._handles = [modules[n].register_forward_hook(self._keeper(n)) for n in self.layers]

    def _keeper(self, name: str) -> Any:
        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if self._model.training and torch.is_grad_enabled():
                self._outputs.setdefault(name, []).append(output)

        return keep

    def parameters(self) -> list[nn.Parameter]:
        return [p for name in self.layers for p in (self.w_s[name], self.bias[name])]

    def method(self, name: str) -> str:
        """The projection run for layer ``name``: ``svd`` or ``nystrom``."""
        if self.projection != "auto":
            return self.projection
        return "svd" if self.w_s[name].shape[0] <= self.exact_max else "nystrom"

    # ------------------------------------------------------------------ training

    def on_train_start(self, trainer: Trainer) -> None:
        methods = ", ".join(
            f"{n} (m = {self.w_s[n].shape[0]}, r = {self._ranks[n]}, {self.method(n)})"
            for n in self.layers
        )
        trainer.reporter.message(f"lr_layer: {methods}; starts at epoch {self.start_epoch + 1}")

    def loss_term(self, trainer: Trainer) -> torch.Tensor | None:
        outputs, self._outputs = self._outputs, {}
        if trainer.position.epoch <= self.start_epoch or not outputs:
            return None
        if not self.started:
            for name, batches in outputs.items():
                self._initialise(name, batches[0])
            self.started = True
        terms = [
            self._lams[name][0] * reconstruction_loss(a, self.w_s[name], self.bias[name])
            + self._lams[name][1] * norm_loss(a)
            for name, batches in outputs.items()
            for a in batches
        ]
        return torch.stack(terms).sum()

    def _initialise(self, name: str, activations: torch.Tensor) -> None:
        """W_s ← the projector onto the top-r right singular subspace of a + b."""
        with torch.no_grad():
            x = activations.detach().flatten(1).to(torch.float64) + self.bias[name].double()
            _, _, vh = torch.linalg.svd(x, full_matrices=False)
            basis = vh[: self._ranks[name]].T
            self.w_s[name].copy_((basis @ basis.T).to(self.w_s[name].dtype))

    def after_optimizer_step(self, trainer: Trainer, step: int) -> None:
        if not self.started:
            return
        self.steps += 1
        if self.steps % self.every == 0:
            self.project()

    def project(self) -> None:
        """W_s ← Π_r((W_s + W_sᵀ)/2) for every layer."""
        from robustcompress.structure.nystrom import rank_projection

        for name in self.layers:
            method = self.method(name)
            result = rank_projection(
                self.w_s[name].detach(),
                self._ranks[name],
                method,
                columns=self.nystrom_columns,
                runs=self.nystrom_runs,
                generator=self._generator,
            )
            with torch.no_grad():
                self.w_s[name].copy_(result.matrix)
            self.counts[method] = self.counts.get(method, 0) + 1
            if result.smoothing:
                self.counts["smoothing"] = self.counts.get("smoothing", 0) + result.smoothing

    def on_train_end(self, trainer: Trainer, result: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        ran = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        trainer.reporter.message(f"lr_layer: projections run: {ran or 'none'}")

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "w_s": {k: v.detach().clone() for k, v in self.w_s.items()},
            "bias": {k: v.detach().clone() for k, v in self.bias.items()},
            "started": self.started,
            "steps": self.steps,
            "counts": dict(self.counts),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["w_s"]) != set(self.layers):
            raise ConfigError(
                f"lr_layer: the checkpoint has layers {sorted(state['w_s'])}, this run "
                f"constrains {sorted(self.layers)}"
            )
        with torch.no_grad():
            for name in self.layers:
                self.w_s[name].copy_(state["w_s"][name])
                self.bias[name].copy_(state["bias"][name])
        self.started = bool(state["started"])
        self.steps = int(state["steps"])
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self._generator.set_state(state["generator"].to(torch.uint8))


__all__ = ["LowRankLayer", "norm_loss", "reconstruction_loss"]
