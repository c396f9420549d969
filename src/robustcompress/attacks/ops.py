"""Public tensor operations of the attacks: norms, projections, box clipping, gradients.

Every attack in :mod:`robustcompress.attacks` is built from these, and code outside the
package (evaluation, training, a plug-in attack) may use them as well; they are part of
the public API. :class:`ThreatModel` bundles the three that define an attacker's budget,
a norm, a radius ε and the image box, behind one frozen object.

Conventions: a model maps images in ``[0, 1]`` of shape ``N×C×H×W`` (or any ``N×…``) to
logits ``N×K``; every norm is taken per sample over all non-batch dimensions; "clip"
means clip to the image box, ``[0, 1]`` unless a box is given. ``norm`` strings are
``"linf"``, ``"l2"`` (and ``"l1"`` where a dual norm is needed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustcompress.errors import AttackError

#: Norms an attack budget (and so a :class:`ThreatModel`) can be measured in.
NORMS = ("linf", "l2")

#: The image box every attack keeps its output in.
BOX = (0.0, 1.0)

#: The dual norm of each supported attack norm: ‖·‖_q with 1/p + 1/q = 1.
DUAL_NORM = {"linf": "l1", "l2": "l2", "l1": "linf"}

#: Losses an attack can ascend; each grows as the sample becomes more adversarial.
LOSSES = ("ce", "margin", "dlr")

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
    (Balda et al. 2018, §2). For ℓ∞ this is ``sign(g)``; for ℓ2 it is ``g/‖g‖₂``. A zero gradient
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
    (the projections of PGD, Madry et al. 2018, §2.1).
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        scale = (eps / flat_norm(delta, "l2").clamp_min(TINY)).clamp(max=1.0)
        return delta * per_sample(scale, delta)
    raise AttackError(f"project: unsupported norm {norm!r}; choose linf or l2")


def clip_box(x: torch.Tensor, box: tuple[float, float] = BOX) -> torch.Tensor:
    """Clip every coordinate to the image box ``[low, high]`` (default ``[0, 1]``)."""
    return x.clamp(box[0], box[1])


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


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The difference-of-logits-ratio loss per sample (Croce & Hein 2020, eq. 5), to ascend:

    ``DLR = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)``, with ``z_π1 ≥ z_π2 ≥ …`` the sorted
    logits. It is the C&W margin divided by a scale of the logits, so it does not change
    when the logits are multiplied by a constant (a rescaled model is attacked alike);
    positive iff the sample is misclassified. Needs at least 3 classes.
    """
    _need_classes(logits, 3, "the DLR loss")
    top = logits.topk(3, dim=1).values
    return margin(logits, y) / (top[:, 0] - top[:, 2] + TINY)


def targeted_dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The targeted DLR loss per sample (Croce & Hein 2020, eq. 6), to ascend:

    ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)`` for target class ``t``: it grows as the
    target's logit overtakes the true one. Needs at least 4 classes.
    """
    _need_classes(logits, 4, "the targeted DLR loss")
    top = logits.topk(4, dim=1).values
    gap = logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
    return gap / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + TINY)


def _need_classes(logits: torch.Tensor, k: int, what: str) -> None:
    if logits.shape[1] < k:
        raise AttackError(
            f"{what} needs a model with at least {k} classes, got {logits.shape[1]}; "
            "use the cross-entropy loss (loss='ce') instead"
        )


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The per-sample attack loss, to ascend: cross-entropy ``J``, the C&W margin or DLR."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        return margin(logits, y)
    if loss == "dlr":
        return dlr(logits, y)
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


def ranked_targets(logits: torch.Tensor, y: torch.Tensor, count: int) -> list[torch.Tensor]:
    """Targets of a multi-target attack (APGD-T, FAB-T): for ``t < count``, per input
    the class other than the label with the ``t``-th highest logit (at most ``K − 1``)."""
    ranked = logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    return [ranked[:, t] for t in range(min(count, logits.shape[1] - 1))]


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's decision ``k̂(x) = argmax_j f_j(x)`` without building a graph."""
    with torch.no_grad():
        return model(x).argmax(dim=1)


def _finite_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ThreatModel:
    """An attacker's budget: perturbations with ``‖x_adv − x‖_norm ≤ eps`` inside ``box``.

    The feasible set of a fixed-budget attack is ``B_ε(x) ∩ [low, high]^d`` (Madry et
    al. 2018, §2.1, for ℓ∞ and ℓ2 balls; the box keeps images valid, Carlini & Wagner
    2017, §V). The methods are the norm-dependent steps of an attack, so attack code
    needs no ``if norm == ...`` chain:

    * :meth:`norm_of` ``‖δ‖_p`` per sample;
    * :meth:`project_delta` the Euclidean projection of ``δ`` onto the ε-ball;
    * :meth:`project` ``clip_box(x + Π_ε(x_adv − x))``, PGD's projection step
      (for ℓ∞ this is the exact projection onto ball ∩ box; for ℓ2 it is the usual
      ball-then-box composition, which stays feasible but is not the exact projection);
    * :meth:`clip_box` clip to the box;
    * :meth:`steepest_ascent` the dual-norm maximiser ``u_p(g)``, the best unit step
      for a linearised loss;
    * :meth:`random_start` a uniform draw from the ball, clipped to the box.

    :meth:`project`, :meth:`project_` and :meth:`random_start` take ``clip=False`` to
    leave the box out (the ball only), for attacks run with ``clip=False``: their
    outputs may then leave the image box (docs/algorithms.md, Conventions).

    ``eps`` may be 0 (the identity) or ``inf`` (box only). Invalid settings raise
    :class:`AttackError`.
    """

    norm: str
    eps: float
    box: tuple[float, float] = BOX

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise AttackError(
                f"threat model: norm must be one of {', '.join(NORMS)}, got {self.norm!r}"
            )
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise AttackError(f"threat model: eps must be a number ≥ 0, got {eps!r}")
        box = tuple(self.box) if isinstance(self.box, (tuple, list)) else ()
        if len(box) != 2 or not all(_finite_real(b) for b in box) or not box[0] < box[1]:
            raise AttackError(
                f"threat model: box must be a pair (low, high) with low < high, got {self.box!r}"
            )
        object.__setattr__(self, "box", (float(box[0]), float(box[1])))

    def replace(self, **changes: object) -> ThreatModel:
        """A copy with some fields changed (e.g. ``threat.replace(eps=0.1)``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def norm_of(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample ``‖δ_n‖_p`` in this threat model's norm."""
        return flat_norm(delta, self.norm)

    def clip_box(self, x: torch.Tensor) -> torch.Tensor:
        """Clip every coordinate to the box."""
        return clip_box(x, self.box)

    def project_delta(self, delta: torch.Tensor) -> torch.Tensor:
        """The Euclidean projection of each ``δ_n`` onto the ball ``‖δ‖_p ≤ ε``."""
        return project(delta, self.eps, self.norm)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """``clip_box(x + Π_ε(x_adv − x))``: back into the ε-ball around ``x``, then the box.

        ``clip=False`` leaves the box out: ``x + Π_ε(x_adv − x)`` (the ball only).
        """
        inside = x + self.project_delta(x_adv - x)
        return self.clip_box(inside) if clip else inside

    def project_(self, x_adv: torch.Tensor, x: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """:meth:`project` written into ``x_adv`` (same values); returns ``x_adv``.

        The ℓ∞ case runs as four in-place operations: on small models the fresh
        image-batch tensors of the out-of-place form cost as much as a gradient.
        """
        if self.norm == "linf":
            x_adv.sub_(x).clamp_(-self.eps, self.eps)
            x_adv.add_(x)
            return x_adv.clamp_(self.box[0], self.box[1]) if clip else x_adv
        return x_adv.copy_(self.project(x_adv, x, clip))

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
        """Per sample, whether ``x_adv`` is in the box and ``‖x_adv − x‖_p ≤ ε + tol``."""
        flat = x_adv.flatten(1) if x_adv.dim() > 1 else x_adv[:, None]
        in_box = ((flat >= self.box[0] - tol) & (flat <= self.box[1] + tol)).all(dim=1)
        return in_box & (self.norm_of(x_adv - x) <= self.eps + tol)

    def steepest_ascent(self, grad: torch.Tensor) -> torch.Tensor:
        """The best unit step ``u_p(g) = argmax_{‖u‖_p ≤ 1} ⟨g, u⟩`` for a linearised loss.

        :func:`dual_maximizer`: ``sign(g)`` for ℓ∞, ``g/‖g‖₂`` for ℓ2.
        """
        return dual_maximizer(grad, self.norm)

    def random_start(
        self, x: torch.Tensor, generator: torch.Generator | None = None, clip: bool = True
    ) -> torch.Tensor:
        """``clip_box(x + δ)`` with ``δ`` uniform in the ε-ball (:func:`random_in_ball`);
        ``x + δ`` with ``clip=False``."""
        start = x + random_in_ball(x, self.eps, self.norm, generator)
        return self.clip_box(start) if clip else start
