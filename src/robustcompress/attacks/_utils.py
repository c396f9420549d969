"""Pure helpers shared by the attacks: norms, the dual-norm maximiser, projections, gradients.

Conventions (``/work/shared/specs/algorithms.md`` §0): a model maps images in ``[0, 1]`` of
shape ``N×C×H×W`` (or any ``N×…``) to logits ``N×K``; every norm here is taken per sample
over all non-batch dimensions; "clip" means clip to the box ``[0, 1]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.errors import AttackError

#: The dual norm of each supported attack norm: ‖·‖_q with 1/p + 1/q = 1.
DUAL_NORM = {"linf": "l1", "l2": "l2", "l1": "linf"}

#: Losses an attack can ascend; both grow as the sample becomes more adversarial.
LOSSES = ("ce", "margin")

#: Guard for divisions by a norm that can be zero (flat regions of the model).
TINY = 1e-12


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a length-N vector so it broadcasts against the batch ``like`` (N×…)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def flat_norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``‖t_n‖_p`` over all non-batch dimensions, for ``norm`` in linf/l2/l1."""
    flat = t.flatten(1) if t.dim() > 1 else t[:, None]
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise AttackError(f"unknown norm {norm!r}: choose one of linf, l2, l1")


def gradient_sign(grad: torch.Tensor) -> torch.Tensor:
    """``sign(grad)``, written into ``grad`` itself when it is a contiguous buffer.

    Meant for a gradient just returned by :func:`loss_gradient` (nothing else holds it).
    On CPU a fresh image-batch tensor costs page faults that, on small models, take
    longer than the sign itself; a non-contiguous gradient (e.g. an expanded one, whose
    elements share memory) gets a new tensor.
    """
    return grad.sign_() if grad.is_contiguous() else grad.sign()


def dual_maximizer(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The dual-norm maximiser ``u_p(g) = argmax_{‖u‖_p ≤ 1} ⟨g, u⟩``, per sample.

    ``u_p(g) = sign(g) ⊙ |g|^{q−1} / ‖g‖_q^{q−1}`` with value ``⟨g, u_p(g)⟩ = ‖g‖_q``
    (spec §0). For ℓ∞ this is ``sign(g)``; for ℓ2 it is ``g/‖g‖₂``. A zero gradient
    gives ``u = 0`` (no direction to move in), never NaN.
    """
    if norm == "linf":
        return g.sign()
    if norm == "l2":
        return g / per_sample(flat_norm(g, "l2").clamp_min(TINY), g)
    raise AttackError(f"dual_maximizer: unsupported norm {norm!r}; choose linf or l2")


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Euclidean projection of each perturbation ``δ_n`` onto the ball ``‖δ‖_p ≤ ε``.

    ℓ∞ clamps every coordinate to ``[−ε, ε]``; ℓ2 rescales ``δ ← δ·min(1, ε/‖δ‖₂)``
    (spec §4e).
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        scale = (eps / flat_norm(delta, "l2").clamp_min(TINY)).clamp(max=1.0)
        return delta * per_sample(scale, delta)
    raise AttackError(f"project: unsupported norm {norm!r}; choose linf or l2")


def clip_box(x: torch.Tensor) -> torch.Tensor:
    """Clip to the image box ``[0, 1]``."""
    return x.clamp(0.0, 1.0)


def random_in_ball(
    like: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None
) -> torch.Tensor:
    """A perturbation drawn uniformly from the ε-ball of ``norm``, one per sample.

    ℓ∞: ``U(−ε, ε)`` per coordinate (Madry et al. 2018). ℓ2: a Gaussian direction
    scaled to radius ``ε·U^{1/d}``, which is uniform in volume in d dimensions.
    """
    if norm == "linf":
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * u - 1) * eps
    if norm == "l2":
        direction = torch.randn(
            like.shape, generator=generator, device=like.device, dtype=like.dtype
        )
        direction = dual_maximizer(direction, "l2")
        d = like[0].numel()
        radius = torch.rand(
            like.shape[0], generator=generator, device=like.device, dtype=like.dtype
        )
        return direction * per_sample(eps * radius ** (1.0 / max(d, 1)), like)
    raise AttackError(f"random_in_ball: unsupported norm {norm!r}; choose linf or l2")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin ``max_{j≠y} z_j − z_y`` per sample (> 0 iff misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The per-sample attack loss: cross-entropy ``J`` or the C&W margin (both to ascend)."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        return margin(logits, y)
    raise AttackError(f"unknown loss {loss!r}: choose one of {', '.join(LOSSES)}")


def loss_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``∇_x`` of the summed per-sample loss, and the per-sample loss values.

    The loss is *summed* over the batch (not averaged), so each sample's gradient is its
    own ``∇_x J(x_n, y_n)`` and does not depend on the batch size.
    """
    x = x.detach().requires_grad_(True)
    values = per_sample_loss(model(x), y, loss)
    (grad,) = torch.autograd.grad(values.sum(), x)
    return grad, values.detach()


def logit_gradients(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at ``x`` and the input gradients of selected logits (rows of the Jacobian).

    ``classes`` is ``N×C`` (class indices per sample; ``None`` means all K classes);
    returns the full logits ``N×K`` and ``grads`` of shape ``N×C×…`` with
    ``grads[n, c] = ∇_x f_{classes[n, c]}(x_n)``. Uses one forward and C backward passes of
    ``Σ_n f_{classes[n, c]}(x_n)``, exact because sample n's logits depend on ``x_n`` only
    (eval mode: no batch statistics).
    """
    x = x.detach().requires_grad_(True)
    logits = model(x)
    if classes is None:
        classes = torch.arange(logits.shape[1], device=x.device).expand(x.shape[0], -1)
    picked = logits.gather(1, classes)
    grads = []
    for c in range(classes.shape[1]):
        (g,) = torch.autograd.grad(picked[:, c].sum(), x, retain_graph=c + 1 < classes.shape[1])
        grads.append(g)
    if not grads:
        return logits.detach(), x.new_zeros((x.shape[0], 0, *x.shape[1:]))
    return logits.detach(), torch.stack(grads, dim=1)


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's decision ``k̂(x) = argmax_j f_j(x)`` without building a graph."""
    with torch.no_grad():
        return model(x).argmax(dim=1)


# --- validation helpers (each raises AttackError naming the attack and setting) ---


def require_number(
    attack: str,
    setting: str,
    value: Any,
    *,
    minimum: float = 0.0,
    strict: bool = False,
    allow_none: bool = False,
) -> None:
    """Check ``value`` is a finite real ≥ ``minimum`` (> if ``strict``), or None if allowed."""
    if value is None and allow_none:
        return
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
    )
    if not ok:
        bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
        extra = " or None" if allow_none else ""
        raise AttackError(f"{attack}: {setting} must be a number {bound}{extra}, got {value!r}")


def require_int(
    attack: str, setting: str, value: Any, *, minimum: int = 0, allow_none: bool = False
) -> None:
    """Check ``value`` is an int ≥ ``minimum`` (or None if allowed)."""
    if value is None and allow_none:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        extra = " or None" if allow_none else ""
        raise AttackError(f"{attack}: {setting} must be an int ≥ {minimum}{extra}, got {value!r}")


def require_choice(attack: str, setting: str, value: Any, choices: tuple[str, ...]) -> None:
    """Check ``value`` is one of ``choices``."""
    if value not in choices:
        raise AttackError(f"{attack}: {setting} must be one of {', '.join(choices)}, got {value!r}")


def require_bool(attack: str, setting: str, value: Any) -> None:
    """Check ``value`` is a bool."""
    if not isinstance(value, bool):
        raise AttackError(f"{attack}: {setting} must be true or false, got {value!r}")
