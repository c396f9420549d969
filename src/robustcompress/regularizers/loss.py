"""The regularized training loss of Langenberg et al. 2019, eq. (8)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.regularizers.base import Regularizer


def regularized_loss(
    model: nn.Module,
    logits: torch.Tensor,
    targets: torch.Tensor,
    regularizers: Sequence[Regularizer] = (),
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = L_CE + L_ℓ1 + L_nuclear + L_joint``, eq. (8), and each term for logging.

    ``L_CE`` is the cross-entropy of ``logits`` (N × K) against integer ``targets``
    (N), averaged over the batch; each regularizer adds ``penalty(model)``. Returns
    the differentiable total and a dict of floats with keys ``"ce"``, each
    regularizer's ``name`` (values of regularizers sharing a name are summed) and
    ``"total"``. Regularizers applied as proximal steps should not be passed here,
    or their λ is applied twice.
    """
    ce = F.cross_entropy(logits, targets)
    terms: dict[str, float] = {"ce": float(ce.detach())}
    total = ce
    for reg in regularizers:
        value = reg.penalty(model)
        total = total + value.to(ce.dtype)
        terms[reg.name] = terms.get(reg.name, 0.0) + float(value.detach())
    terms["total"] = float(total.detach())
    return total, terms
