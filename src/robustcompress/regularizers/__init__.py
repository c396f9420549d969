"""Sparsity- and low-rank-promoting regularizers (Langenberg et al. 2019, §4, eqs. (5)–(8)).

* :class:`L1` — ``Σ_i λ_{1,i}‖W_i‖₁`` (eq. 5), prox = soft-thresholding;
* :class:`Nuclear` — ``Σ_i λ_{*,i}‖W_i‖_*`` (eq. 6), prox = singular-value thresholding;
* :class:`Joint` — ``λ‖W_m ⋯ W_1‖₁`` (eq. 7), linear chains only, no prox;
* :func:`regularized_loss` — cross-entropy plus the penalties (eq. 8).
"""

from robustcompress.regularizers.base import LambdaSpec, PerMatrixRegularizer, Regularizer
from robustcompress.regularizers.joint import Joint, end_to_end_product, linear_chain
from robustcompress.regularizers.l1 import L1, l1_norm
from robustcompress.regularizers.loss import regularized_loss
from robustcompress.regularizers.nuclear import Nuclear, nuclear_norm
from robustcompress.regularizers.prox import (
    singular_value_threshold,
    soft_threshold,
    thin_svd,
)
from robustcompress.regularizers.registry import (
    REGULARIZERS,
    build_regularizer,
    list_regularizers,
    register_regularizer,
)

__all__ = [
    "L1",
    "REGULARIZERS",
    "Joint",
    "LambdaSpec",
    "Nuclear",
    "PerMatrixRegularizer",
    "Regularizer",
    "build_regularizer",
    "end_to_end_product",
    "l1_norm",
    "linear_chain",
    "list_regularizers",
    "nuclear_norm",
    "register_regularizer",
    "regularized_loss",
    "singular_value_threshold",
    "soft_threshold",
    "thin_svd",
]
