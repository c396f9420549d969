"""The regularizer interface and the shared per-weight-matrix machinery.

A regularizer is a small object holding its strengths λ. It is used in two ways
during training (Langenberg et al. 2019, §4):

* **as a loss term**: ``penalty(model)`` returns a differentiable scalar that is
  added to the cross-entropy (eq. (8), see :func:`regularized_loss`), and the
  optimiser follows its (sub)gradient; or
* **as a proximal post-step**: leave it out of the loss and call
  ``prox(model, lr)`` right after ``optimizer.step()``. For plain SGD this is the
  proximal-gradient method and gives exact zeros / exact rank drops; with momentum
  or Adam it is the usual heuristic. Do not do both for the same regularizer, or λ
  is applied twice.

λ is given per weight matrix W_i (see :func:`robustcompress.models.weight_matrices`)
as one float for all of them, or as a mapping whose keys are names (``"W1"``),
module paths (``"features.0"``) or 1-based indices; matrices not named get λ = 0.
Only weights are regularized, never biases.

To add a regularizer, copy ``l1.py``: subclass :class:`PerMatrixRegularizer` (a sum
Σ_i λ_i R(W_i) over matrices) or :class:`Regularizer`, give it a ``name`` and
decorate it with :func:`~robustcompress.regularizers.registry.register_regularizer`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from numbers import Real
from typing import ClassVar, TypeAlias

import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.models import WeightMatrix, resolve_weight_matrix, weight_matrices

LambdaSpec: TypeAlias = float | Mapping[str | int, float]
"""λ as one strength for every weight matrix, or per matrix by name, path or index."""


def check_strength(value: object, where: str) -> float:
    """``value`` as a float λ ≥ 0, or a :class:`ConfigError` that names ``where``.

    The paper's hyper-parameters live in R_+ (λ_1 ∈ R^m_+ under eq. (5), λ_* under
    eq. (6)); a negative λ would reward large norms, so it is rejected.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{where} must be a number ≥ 0, got {value!r}")
    lam = float(value)
    if not math.isfinite(lam) or lam < 0:
        raise ConfigError(f"{where} is {lam}: regularization strengths must be finite and ≥ 0")
    return lam


def check_learning_rate(lr: object, where: str) -> float:
    """The proximal step size η as a float ≥ 0, or a :class:`ConfigError`."""
    if isinstance(lr, bool) or not isinstance(lr, Real) or not math.isfinite(lr) or lr < 0:
        raise ConfigError(f"{where}: learning rate must be a finite number ≥ 0, got {lr!r}")
    return float(lr)


def zero_penalty(model: nn.Module) -> torch.Tensor:
    """A constant scalar 0 on the model's device and dtype (nothing is regularized)."""
    p = next(model.parameters(), None)
    if p is None:
        return torch.zeros(())
    return torch.zeros((), device=p.device, dtype=p.dtype)


class Regularizer(ABC):
    """Base class: one penalty term of eq. (8) with its strengths λ in ``lam``.

    Subclasses set ``name`` (the key used in configs and in the loss dict), ``paper``
    (where the penalty comes from) and ``has_prox`` (whether :meth:`prox` has a
    closed form; a training loop can test it instead of catching the error).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    has_prox: ClassVar[bool] = True
    lam: float | dict[str | int, float]

    @abstractmethod
    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The differentiable scalar penalty for ``model``'s current weights."""

    @abstractmethod
    def lambdas(self, model: nn.Module) -> dict[str, float]:
        """λ resolved per weight-matrix name (``"W1"`` …), 0 for unregularized ones."""

    @abstractmethod
    def check(self, model: nn.Module) -> None:
        """Validate names and applicability for ``model`` without computing anything.

        Raises :class:`ModelError` / :class:`ConfigError`; a config validator calls it
        before training starts.
        """

    @abstractmethod
    def prox(self, model: nn.Module, lr: float) -> None:
        """Apply the proximal operator of ``lr·penalty`` to the weights, in place."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lam={self.lam!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.lam == self.lam

    __hash__ = None  # type: ignore[assignment]


class PerMatrixRegularizer(Regularizer):
    """A penalty ``Σ_i λ_i R(W_i)`` summed over the model's weight matrices.

    Subclasses supply the matrix norm :meth:`norm` and its proximal operator
    :meth:`prox_matrix`; λ resolution, validation, skipping λ = 0 and the in-place
    prox update are shared here. Convolutions enter through the reshaped kernel
    W̃ = c_out × (c_in·k_h·k_w) (Langenberg et al. 2019, Appendix B).
    """

    def __init__(self, lam: LambdaSpec) -> None:
        if isinstance(lam, Mapping):
            strengths: dict[str | int, float] = {}
            for key, value in lam.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise ConfigError(
                        f"{self.name}: weight-matrix key {key!r} must be a name like 'W1', "
                        "a module path, or a 1-based index"
                    )
                strengths[key] = check_strength(value, f"{self.name}: λ for weight matrix {key!r}")
            self.lam = strengths
        else:
            self.lam = check_strength(lam, f"{self.name}: λ")

    @staticmethod
    @abstractmethod
    def norm(W: torch.Tensor) -> torch.Tensor:
        """R(W) for one 2-D matrix, differentiable."""

    @staticmethod
    @abstractmethod
    def prox_matrix(W: torch.Tensor, tau: float) -> torch.Tensor:
        """``prox_{τR}(W)`` for one 2-D matrix (a new tensor of the same shape)."""

    def resolve(self, model: nn.Module) -> list[tuple[WeightMatrix, float]]:
        """Every weight matrix of ``model`` paired with its λ (0 when not named)."""
        matrices = weight_matrices(model)
        if not isinstance(self.lam, dict):
            return [(wm, self.lam) for wm in matrices]
        strengths: dict[str, float] = {}
        given_as: dict[str, str | int] = {}
        for key, value in self.lam.items():
            wm = resolve_weight_matrix(matrices, key, what=f"weight matrix in {self.name} λ")
            if wm.name in strengths:
                raise ConfigError(
                    f"{self.name}: weight matrix {wm.name} is given twice in λ "
                    f"(as {given_as[wm.name]!r} and {key!r}); keep one entry"
                )
            strengths[wm.name] = value
            given_as[wm.name] = key
        return [(wm, strengths.get(wm.name, 0.0)) for wm in matrices]

    def lambdas(self, model: nn.Module) -> dict[str, float]:
        return {wm.name: lam for wm, lam in self.resolve(model)}

    def check(self, model: nn.Module) -> None:
        self.resolve(model)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``Σ_i λ_i R(W_i)``; matrices with λ_i = 0 are skipped (no cost, no gradient).

        When every λ_i is 0 the result is a constant 0 that carries no graph, so
        adding it to the loss leaves every gradient unchanged.
        """
        terms = [lam * self.norm(wm.matrix) for wm, lam in self.resolve(model) if lam > 0]
        if not terms:
            return zero_penalty(model)
        return torch.stack(terms).sum()

    def prox(self, model: nn.Module, lr: float) -> None:
        """``W_i ← prox_{lr·λ_i R}(W_i)`` for every matrix with λ_i > 0, in place.

        Convolution kernels are thresholded as W̃ and reshaped back to
        c_out × c_in × k_h × k_w.
        """
        lr = check_learning_rate(lr, f"{self.name}.prox")
        with torch.no_grad():
            for wm, lam in self.resolve(model):
                if lam > 0 and lr > 0:
                    new = self.prox_matrix(wm.matrix, lr * lam)
                    wm.parameter.copy_(new.reshape(wm.parameter.shape))
