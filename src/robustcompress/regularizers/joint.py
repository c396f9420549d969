"""Joint ℓ1 regularization of the end-to-end linear map (Langenberg et al. 2019, eq. (7))."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import WeightMatrix, weight_matrices
from robustcompress.regularizers.base import Regularizer, check_strength, zero_penalty
from robustcompress.regularizers.l1 import l1_norm
from robustcompress.regularizers.registry import register_regularizer


def end_to_end_product(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """``W_m ⋯ W_2 W_1`` for matrices given in forward order W_1, …, W_m (out × in each).

    This is the map x ↦ W_m ⋯ W_1 x a network computes when activations and biases
    are dropped. The product is evaluated in the cheapest association order
    (:func:`torch.linalg.multi_dot`).
    """
    if not matrices:
        raise ModelError("end_to_end_product needs at least one matrix")
    ordered = list(reversed(matrices))
    return ordered[0] if len(ordered) == 1 else torch.linalg.multi_dot(ordered)


def linear_chain(model: nn.Module, where: str = "joint regularization") -> list[WeightMatrix]:
    """The weight matrices of a network of chained linear layers, or a :class:`ModelError`.

    "Chained" means ``in_features`` of W_{i+1} equals ``out_features`` of W_i, so
    W_m ⋯ W_1 is defined. Layers are assumed to be applied one after another in
    registration order, as in every built-in model; skip connections between linear
    layers cannot be detected from shapes alone.
    """
    matrices = weight_matrices(model)
    if not matrices:
        raise ModelError(f"{where}: the model has no weight matrices")
    convs = [f"{wm.name} ({wm.module_name})" for wm in matrices if wm.kind != "linear"]
    if convs:
        raise ModelError(
            f"{where} is defined only for networks of linear layers, but the model has "
            f"convolution(s) {', '.join(convs)}: use l1 or nuclear regularization instead"
        )
    for prev, nxt in pairwise(matrices):
        if nxt.shape[1] != prev.shape[0]:
            raise ModelError(
                f"{where}: {nxt.name} ({nxt.module_name}) takes {nxt.shape[1]} inputs but "
                f"{prev.name} ({prev.module_name}) gives {prev.shape[0]} outputs, so the "
                "layers do not form a chain W_m ⋯ W_1"
            )
    return matrices


@register_regularizer
class Joint(Regularizer):
    """``L_joint = λ_joint ‖W_m ⋯ W_1‖₁``, the ℓ1 norm of the end-to-end product, eq. (7).

    For a linear network the ℓ∞ robustness is governed by the ℓ1 norm of the product
    of its weight matrices (Langenberg et al. §3, after Guo et al. 2018), so this
    penalises that quantity directly; for a nonlinear network it is a surrogate that
    is sensible when the linearisation is adequate. ‖·‖₁ is the entrywise ℓ1 norm,
    as in eq. (5) (for one output the product is the vector w of §3 and this
    is its ‖w‖₁). It needs no SVD, so it is cheaper than the nuclear penalty.

    **Order.** The paper writes ``W^1 ⋯ W^m`` for matrices acting on row vectors
    (x ↦ x W^1 ⋯ W^m). With PyTorch's out × in weights the same map is
    ``x ↦ W_m ⋯ W_1 x``, and that is the product used here. Both are transposes of
    each other and the entrywise ℓ1 norm is transpose-invariant, so the value equals
    the paper's. Biases do not enter.

    **Scope.** Defined only for networks whose weight matrices are all linear and
    chain (fcnn, lenet300100). The paper's Appendix B mentions using reshaped kernels
    W̃ in eq. (7) as well, but products of reshaped kernels are not the network's
    linear map (and their shapes do not chain), so convolutional models raise a
    :class:`ModelError` from :meth:`check` and :meth:`penalty`.

    **No proximal step.** The prox of ``λ‖W_m ⋯ W_1‖₁`` jointly in W_1, …, W_m has no
    closed form (the penalty is not even convex in the factors), so :meth:`prox`
    raises and ``has_prox`` is False: use Joint as a loss term.

    Args:
        lam: λ_joint ≥ 0, one strength for the whole product. No default; the paper
            does not report its value.
    """

    name = "joint"
    paper = "Langenberg et al. 2019, eq. (7)"
    has_prox = False
    lam: float

    def __init__(self, lam: float) -> None:
        if isinstance(lam, Mapping):
            raise ConfigError(
                "joint: λ must be one number for the whole product W_m ⋯ W_1, "
                f"not a per-matrix mapping ({lam!r})"
            )
        self.lam = check_strength(lam, "joint: λ")

    def check(self, model: nn.Module) -> None:
        linear_chain(model)

    def lambdas(self, model: nn.Module) -> dict[str, float]:
        """Every matrix of the chain mapped to λ_joint (all enter through one product)."""
        return {wm.name: self.lam for wm in linear_chain(model)}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``λ_joint ‖W_m ⋯ W_1‖₁``; a constant 0 (no graph) when λ_joint = 0."""
        matrices = linear_chain(model)
        if self.lam == 0:
            return zero_penalty(model)
        return self.lam * l1_norm(end_to_end_product([wm.matrix for wm in matrices]))

    def prox(self, model: nn.Module, lr: float) -> None:
        raise ConfigError(
            "joint regularization has no closed-form proximal operator: add it to the "
            "loss (regularized_loss) instead of applying it as a proximal step"
        )
