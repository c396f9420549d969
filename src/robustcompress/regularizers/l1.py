"""ℓ1 regularization of the weight matrices (Langenberg et al. 2019, eq. (5))."""

from __future__ import annotations

import torch

from robustcompress.regularizers.base import PerMatrixRegularizer
from robustcompress.regularizers.prox import soft_threshold
from robustcompress.regularizers.registry import register_regularizer


def l1_norm(W: torch.Tensor) -> torch.Tensor:
    """Entrywise ℓ1 norm ``‖W‖₁ = Σ_{jk} |W_{jk}|`` (any shape), differentiable.

    Its gradient is ``sign(W)``; at an exact zero PyTorch uses ``sign(0) = 0``, the
    minimum-norm subgradient, so entries already at 0 are not pushed away.
    """
    return W.abs().sum()


@register_regularizer
class L1(PerMatrixRegularizer):
    """``L_ℓ1 = Σ_i λ_{1,i} ‖W_i‖₁``, the sparsity-promoting penalty of eq. (5).

    Args:
        lam: λ_{1,i} ≥ 0. A float applies the same λ to every weight matrix; a mapping
            ``{"W1": 0.01}`` (keys: name, module path or 1-based index) regularizes only
            the matrices it names. No default: the paper tunes it per matrix, e.g.
            λ_{1,1} = 0.01 on the FCNN's input layer W_1 (Table 1) and λ_{1,1} = λ_{1,2}
            = 0.01 on the CNN's two convolutions (Table 2).

    Convolutions contribute the ℓ1 norm of their kernel (identical for W̃).
    :meth:`prox` soft-thresholds every entry by lr·λ_{1,i}, giving exact zeros.
    """

    name = "l1"
    paper = "Langenberg et al. 2019, eq. (5)"

    @staticmethod
    def norm(W: torch.Tensor) -> torch.Tensor:
        return l1_norm(W)

    @staticmethod
    def prox_matrix(W: torch.Tensor, tau: float) -> torch.Tensor:
        return soft_threshold(W, tau)
