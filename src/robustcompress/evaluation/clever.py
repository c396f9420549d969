"""CLEVER, an attack-agnostic estimate of the minimal adversarial perturbation.

CLEVER (Weng et al. 2018, ICLR) estimates a lower bound on the size of the smallest
perturbation that changes the decision from the local Lipschitz constant of the logit
margins. Let ``c = k̂(x₀)`` and, for a target ``j ≠ c``, ``g_j(x) = f_c(x) − f_j(x)`` on
the logits. In the ball ``B_p(x₀, R)``, no perturbation smaller than
``g_j(x₀) / L_q^j`` reaches the boundary with ``j``, where
``L_q^j = max_{x ∈ B_p(x₀, R)} ‖∇g_j(x)‖_q`` and ``q`` is the dual exponent of ``p``
(ℓ2 ↔ ℓ2, ℓ∞ ↔ ℓ1). CLEVER estimates ``L_q^j`` by extreme-value theory:

1. for each of ``N_b`` batches, draw ``N_s`` points uniformly in ``B_p(x₀, R)`` and keep
   the largest ``‖∇g_j‖_q`` among them;
2. fit a reverse Weibull distribution to the ``N_b`` batch maxima by maximum likelihood;
   its location (the right end of its support) is the estimate ``L̂``;
3. the score is ``μ_j = min(g_j(x₀)/L̂, R)``, and the untargeted score ``min_{j≠c} μ_j``.

The fit is the authors' robust one (rescaled maxima, seven starting shapes, a small
penalty, the fit with the best Kolmogorov–Smirnov p-value, the largest maximum if no fit
is usable): :func:`fit_reverse_weibull`. The points are clipped to the
image box ``[0, 1]`` by default, as in the authors' code and ART (``clip=False`` samples
the ball itself). docs/algorithms.md, CLEVER, has the formulas, defaults and how this
differs from ART and the authors' code.

CLEVER is an *estimate*, not a certificate: a sampled maximum can miss a sharp region,
and gradient masking inflates it (a model with zero gradients gets the score ``R``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import scipy.stats
import torch
from torch import nn

from robustcompress.attacks import attack_mode
from robustcompress.attacks.ops import DUAL_NORM, clip_box, flat_norm, random_in_ball
from robustcompress.device import resolve_device
from robustcompress.errors import ConfigError

#: Perturbation norms CLEVER is estimated for; the gradient is measured in the dual norm.
CLEVER_NORMS = ("l2", "linf")

#: Batches ``N_b`` and points per batch ``N_s``: Weng et al. 2018 (500 × 1024, also the
#: defaults of the authors' code).
DEFAULT_BATCHES = 500
DEFAULT_SAMPLES = 1024

#: Sample points per forward/backward pass (a bound on memory, not on the result's law).
DEFAULT_CHUNK = 1024

#: Starting shapes of the multi-start Weibull fit (the authors' ``c_init`` list).
SHAPE_STARTS = (0.1, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0)

#: Weight of the penalty ``λ·c²`` on the shape added to the negative log-likelihood,
#: which keeps the simplex search from drifting to huge shapes. The authors' code uses
#: the same 0.01 but, through SciPy's parameter order ``(c, loc, scale)``, applies it to
#: the (rescaled) scale; docs/algorithms.md, CLEVER.
SHAPE_PENALTY = 0.01

#: Smallest KS p-value a fit may have to be used; below it the largest batch maximum
#: is the estimate (the authors' threshold for "ill-conditioned" samples).
MIN_PVALUE = 1e-3

#: Batch maxima whose spread is at most this share of the largest are one value up to
#: float32 rounding (e.g. a model whose gradient is constant): nothing is fitted.
CONSTANT_SPREAD = 1e-6

#: Fewest batch maxima a Weibull fit (three parameters) is tried on.
MIN_FIT_SAMPLES = 3


@dataclass(frozen=True)
class WeibullFit:
    """A reverse-Weibull fit to batch maxima ``s``: CDF ``exp(−((a − y)/b)^c)`` for ``y < a``.

    Attributes:
        location: ``a``, the estimated maximum ``L̂`` (never below ``max(s)``).
        scale: ``b`` (NaN if nothing was fitted).
        shape: ``c`` (NaN if nothing was fitted).
        ks_pvalue: Kolmogorov–Smirnov p-value of the best fit on the maxima, also when
            it was rejected for being below :data:`MIN_PVALUE` (NaN if nothing was fitted).
        start: the starting shape of the kept fit (NaN if none).
        fallback: ``None`` if the fit gives ``L̂``; ``"constant"`` if the maxima are one
            value (:data:`CONSTANT_SPREAD`), which is then ``L̂``; ``"max_sample"`` if no
            fit was usable (fewer than :data:`MIN_FIT_SAMPLES` maxima, every start failed,
            or the best p-value is below :data:`MIN_PVALUE`) and ``L̂ = max(s)``.
        max_sample: ``max(s)``, the largest gradient norm seen.
    """

    location: float
    scale: float
    shape: float
    ks_pvalue: float
    start: float
    fallback: str | None
    max_sample: float


@dataclass(frozen=True)
class CleverTarget:
    """The CLEVER estimate for one target class ``j``.

    Attributes:
        target: ``j``.
        margin: ``g_j(x₀) = f_c(x₀) − f_j(x₀)`` (≥ 0, since ``c`` is the predicted class).
        lipschitz: ``L̂``, the estimated ``max ‖∇g_j‖_q`` over the ball.
        score: ``min(g_j(x₀)/L̂, R)``; ``R`` if ``L̂ = 0`` and ``g_j(x₀) > 0``, 0 if the
            margin is 0.
        fit: the reverse-Weibull fit behind ``L̂`` (its parameters, KS p-value, fallback).
    """

    target: int
    margin: float
    lipschitz: float
    score: float
    fit: WeibullFit


@dataclass(frozen=True)
class CleverResult:
    """The CLEVER score of one input, with the estimate for every target behind it.

    Attributes:
        score: the smallest target score (the untargeted score when every ``j ≠ c`` was
            estimated, the targeted one otherwise).
        target: the class giving ``score``.
        predicted: ``c = k̂(x₀)``.
        norm: the perturbation norm, ``"l2"`` or ``"linf"``.
        radius: ``R``.
        targets: the per-target estimates, in class order.
        batches, samples, seed, clip: the settings used.
    """

    score: float
    target: int
    predicted: int
    norm: str
    radius: float
    targets: tuple[CleverTarget, ...]
    batches: int
    samples: int
    seed: int
    clip: bool

    def scores(self) -> dict[int, float]:
        """``{j: μ_j}`` for every estimated target."""
        return {t.target: t.score for t in self.targets}


# ------------------------------------------------------------------ sampling


def sample_ball(
    x0: torch.Tensor,
    n: int,
    *,
    radius: float,
    norm: str,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> torch.Tensor:
    """``n`` points drawn uniformly from ``B_p(x₀, R)``, as a batch ``n × x₀.shape``.

    ℓ2: a Gaussian direction ``z/‖z‖₂`` at radius ``R·U^{1/d}``; ℓ∞: ``x₀ + U(−R, R)^d``
    (:func:`robustcompress.attacks.ops.random_in_ball`). With ``clip`` the points are
    then clipped to ``[0, 1]``: they lie in the ball ∩ box, but are no longer uniform on
    it (points outside the box land on its faces).
    """
    like = x0.unsqueeze(0).expand(n, *x0.shape)
    points = like + random_in_ball(like, radius, norm, generator)
    return clip_box(points) if clip else points


def _margin_gradient_norms(
    model: nn.Module, points: torch.Tensor, c: int, targets: Sequence[int], dual: str
) -> torch.Tensor:
    """``‖∇g_j(x)‖_q`` per point (rows) and target (columns), in float64.

    One forward pass, then one backward pass of ``Σ_n g_j(x_n)`` per target: sample n's
    logits depend on ``x_n`` only (eval mode), so each row is that point's own gradient.
    """
    points = points.detach().requires_grad_(True)
    logits = model(points)
    columns = []
    for k, j in enumerate(targets):
        gap = logits[:, c] - logits[:, j]
        (grad,) = torch.autograd.grad(gap.sum(), points, retain_graph=k + 1 < len(targets))
        columns.append(flat_norm(grad.double(), dual))
    return torch.stack(columns, dim=1)


def _batch_maxima(
    model: nn.Module,
    x0: torch.Tensor,
    c: int,
    targets: Sequence[int],
    *,
    norm: str,
    radius: float,
    batches: int,
    samples: int,
    clip: bool,
    chunk: int,
    generator: torch.Generator,
) -> np.ndarray:
    """``s_{i,j} = max_k ‖∇g_j(x^{(i,k)})‖_q``: a ``batches × len(targets)`` array.

    Every target sees the same points. Each batch is drawn with one call, so the draws
    (and the result, up to rounding) do not depend on ``chunk``: several small batches
    share a pass, a large batch is split over several.
    """
    dual = DUAL_NORM[norm]
    per_pass = max(1, chunk // samples)
    maxima = []
    for first in range(0, batches, per_pass):
        count = min(per_pass, batches - first)
        points = torch.cat(
            [
                sample_ball(x0, samples, radius=radius, norm=norm, generator=generator, clip=clip)
                for _ in range(count)
            ]
        )
        norms = torch.cat(
            [_margin_gradient_norms(model, part, c, targets, dual) for part in points.split(chunk)]
        )
        maxima.append(norms.view(count, samples, len(targets)).amax(dim=1))
    return torch.cat(maxima).cpu().numpy()


# ------------------------------------------------------------------ Weibull fit


def _penalised_simplex(penalty: float) -> Any:
    """A ``scipy.stats`` fit optimizer: Nelder–Mead on the NLL plus ``penalty·c²``.

    ``rv_continuous.fit`` passes the parameters as ``(c, loc, scale)``; ``θ[0]`` is the
    Weibull shape.
    """

    def optimizer(func: Any, x0: Any, args: tuple[Any, ...] = (), disp: int = 0) -> Any:
        def objective(theta: np.ndarray, *data: Any) -> float:
            return float(func(theta, *data)) + penalty * float(theta[0]) ** 2

        return scipy.optimize.fmin(objective, x0, args=args, disp=disp, xtol=1e-4, ftol=1e-4)

    return optimizer


def fit_reverse_weibull(
    maxima: Any,
    *,
    starts: Sequence[float] = SHAPE_STARTS,
    shape_penalty: float = SHAPE_PENALTY,
    min_pvalue: float = MIN_PVALUE,
) -> WeibullFit:
    """Fit a reverse Weibull distribution to batch maxima ``s`` by penalised MLE.

    The right end of its support, the location ``a``, estimates the maximum of the
    distribution the maxima come from. As in the authors' code (Weng et al. 2018):

    1. rescale ``s`` to ``y = (max(s) − s)/(max(s) − min(s)) ∈ [0, 1]``, which follows a
       (min-)Weibull with location ``(max(s) − a)/range`` when ``s`` is reverse Weibull;
    2. fit ``scipy.stats.weibull_min`` to ``y`` from each starting shape in ``starts``,
       minimising the negative log-likelihood plus ``shape_penalty·c²`` by Nelder–Mead;
    3. map each fit back and keep the one with the highest KS p-value on ``s``.

    If no fit is usable (fewer than :data:`MIN_FIT_SAMPLES` maxima, every start raised
    or gave non-finite parameters, or the best p-value is below ``min_pvalue``), ``L̂ =
    max(s)`` (fallback ``"max_sample"``); maxima that are one value up to
    :data:`CONSTANT_SPREAD` give ``L̂ = max(s)`` without a fit (``"constant"``). A fitted
    location below ``max(s)``, impossible for the true maximum, is raised to ``max(s)``.
    """
    s = np.asarray(maxima, dtype=np.float64).ravel()
    if not s.size or not np.isfinite(s).all():
        raise ConfigError(f"fit_reverse_weibull: need finite maxima, got {s.size} values")
    top = float(s.max())
    spread = top - float(s.min())
    nan = math.nan
    if spread <= CONSTANT_SPREAD * abs(top):
        return WeibullFit(top, nan, nan, nan, nan, "constant", top)
    if s.size < MIN_FIT_SAMPLES:
        return WeibullFit(top, nan, nan, nan, nan, "max_sample", top)
    y = (top - s) / spread
    optimizer = _penalised_simplex(shape_penalty)
    best: tuple[float, float, float, float, float] | None = None
    for start in starts:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                shape, loc, scale = scipy.stats.weibull_min.fit(y, start, optimizer=optimizer)
            except (ValueError, RuntimeError, FloatingPointError, scipy.stats.FitError):
                continue
            # −s = (y − max(s)/range)·range follows weibull_min(shape, loc·range − max, ·)
            loc_s, scale_s = loc * spread - top, scale * spread
            if not all(math.isfinite(v) for v in (shape, loc_s, scale_s)) or scale_s <= 0:
                continue
            pvalue = scipy.stats.kstest(-s, "weibull_min", args=(shape, loc_s, scale_s)).pvalue
        if math.isfinite(pvalue) and (best is None or pvalue > best[3]):
            best = (float(-loc_s), float(scale_s), float(shape), float(pvalue), float(start))
    if best is None or best[3] < min_pvalue:
        return WeibullFit(top, nan, nan, nan if best is None else best[3], nan, "max_sample", top)
    location, scale_b, shape_c, pvalue, start = best
    return WeibullFit(max(location, top), scale_b, shape_c, pvalue, start, None, top)


# ------------------------------------------------------------------ scores


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_settings(
    name: str, norm: Any, radius: Any, batches: Any, samples: Any, seed: Any, chunk: Any
) -> None:
    if norm not in CLEVER_NORMS:
        raise ConfigError(f"{name}: norm must be one of {', '.join(CLEVER_NORMS)}, got {norm!r}")
    if (
        isinstance(radius, bool)
        or not isinstance(radius, (int, float))
        or not math.isfinite(radius)
        or radius <= 0
    ):
        raise ConfigError(f"{name}: radius must be a finite number > 0, got {radius!r}")
    for setting, value in (("batches", batches), ("samples", samples), ("chunk", chunk)):
        if not _is_int(value, 1):
            raise ConfigError(f"{name}: {setting} must be an int ≥ 1, got {value!r}")
    if not _is_int(seed, 0):
        raise ConfigError(f"{name}: seed must be an int ≥ 0, got {seed!r}")


def _check_input(name: str, model: nn.Module, x: Any, clip: bool, batched: bool) -> None:
    what = "a batch N×… of inputs" if batched else "one input, without a batch dimension"
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{name}: x must be a floating-point tensor ({what}), got {kind}")
    if x.dim() < (2 if batched else 1) or x.numel() == 0:
        raise ConfigError(f"{name}: x must be {what}, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all().item():
        raise ConfigError(f"{name}: x contains non-finite values")
    if clip and ((x < 0) | (x > 1)).any().item():
        low, high = torch.aminmax(x)
        raise ConfigError(
            f"{name}: x must lie in [0, 1] to be clipped to the image box (got range "
            f"[{low.item():.3g}, {high.item():.3g}]); put normalisation inside the model "
            "or pass clip=False"
        )
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None and x.dtype != dtype:
        raise ConfigError(
            f"{name}: x is {x.dtype} but the model's parameters are {dtype}; "
            f"convert it with x.to({dtype})"
        )


def _logits_of_one(name: str, model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
    """The logits ``f(x₀)`` as a vector of length K ≥ 2, or a one-line ConfigError."""
    try:
        with torch.no_grad():
            out = model(x0.unsqueeze(0))
    except RuntimeError as exc:
        raise ConfigError(
            f"{name}: the model does not take an input of shape {tuple(x0.shape)} "
            f"(pass one input without its batch dimension): {str(exc).splitlines()[0]}"
        ) from exc
    if out.dim() != 2 or out.shape[0] != 1 or out.shape[1] < 2:
        raise ConfigError(
            f"{name}: the model must map an input of shape {tuple(x0.shape)} to 1×K logits "
            f"with K ≥ 2, got output shape {tuple(out.shape)}"
        )
    return out[0]


def _target_score(margin: float, lipschitz: float, radius: float) -> float:
    if margin <= 0:
        return 0.0
    if lipschitz <= 0:
        return float(radius)
    return min(margin / lipschitz, float(radius))


def _clever_one(
    name: str,
    model: nn.Module,
    x0: torch.Tensor,
    *,
    norm: str,
    radius: float,
    batches: int,
    samples: int,
    target: int | None,
    seed: int,
    clip: bool,
    chunk: int,
) -> CleverResult:
    logits = _logits_of_one(name, model, x0)
    k = logits.shape[0]
    c = int(logits.argmax().item())
    if target is None:
        targets = [j for j in range(k) if j != c]
    elif not _is_int(target, 0) or target >= k:
        raise ConfigError(f"{name}: target must be a class in [0, {k}) or None, got {target!r}")
    elif target == c:
        raise ConfigError(
            f"{name}: target {target} is the predicted class of x; choose another class "
            "or None (every other class)"
        )
    else:
        targets = [target]
    generator = torch.Generator(device=x0.device)
    generator.manual_seed(seed)
    maxima = _batch_maxima(
        model,
        x0,
        c,
        targets,
        norm=norm,
        radius=radius,
        batches=batches,
        samples=samples,
        clip=clip,
        chunk=chunk,
        generator=generator,
    )
    if not np.isfinite(maxima).all():
        raise ConfigError(
            f"{name}: the gradient of f_c − f_j is not finite at some sampled points "
            "(a model with NaN/inf outputs or gradients has no CLEVER score)"
        )
    estimates = []
    for column, j in enumerate(targets):
        fit = fit_reverse_weibull(maxima[:, column])
        margin = float((logits[c] - logits[j]).item())
        score = _target_score(margin, fit.location, radius)
        estimates.append(CleverTarget(j, margin, fit.location, score, fit))
    worst = min(estimates, key=lambda t: t.score)
    return CleverResult(
        score=worst.score,
        target=worst.target,
        predicted=c,
        norm=norm,
        radius=float(radius),
        targets=tuple(estimates),
        batches=batches,
        samples=samples,
        seed=seed,
        clip=clip,
    )


def clever_score(
    model: nn.Module,
    x: torch.Tensor,
    *,
    norm: str,
    radius: float,
    batches: int = DEFAULT_BATCHES,
    samples: int = DEFAULT_SAMPLES,
    target: int | None = None,
    seed: int = 0,
    clip: bool = True,
    chunk: int = DEFAULT_CHUNK,
    device: str | torch.device | None = None,
) -> CleverResult:
    """The CLEVER score of one input ``x`` (Weng et al. 2018; see the module docstring).

    Args:
        model: maps inputs to logits; run in eval mode with frozen parameters (both
            restored afterwards).
        x: one input, *without* a batch dimension (e.g. ``1×28×28``), in the model's
            dtype; in ``[0, 1]`` when ``clip``.
        norm: the perturbation norm, ``"l2"`` (gradients in ℓ2) or ``"linf"`` (gradients
            in ℓ1).
        radius: ``R``, the radius of the sampled ball and the cap of the score. Choose it
            larger than typical attack distortions so the cap does not bind, and report it.
        batches: ``N_b``, the number of batch maxima fitted (default 500).
        samples: ``N_s``, points per batch (default 1024).
        target: a class ``j ≠ k̂(x)`` for the targeted score; ``None`` (default) for the
            untargeted score, the minimum over every ``j ≠ k̂(x)``.
        seed: seeds a generator on the device; the same seed gives the same points for
            every target, so a targeted run reproduces that target's untargeted entry.
        clip: clip the points to the image box ``[0, 1]`` (default, as ART and the
            authors' code do); ``False`` samples the whole ball.
        chunk: points per forward/backward pass (memory only; default 1024).
        device: where to run; ``None`` keeps the model's device, otherwise the model is
            moved there. ``x`` is moved to it.

    Returns:
        A :class:`CleverResult`: the score, the minimising target and, per target, the
        margin, ``L̂``, its score and the Weibull fit (parameters, KS p-value, fallback).
        The result is deterministic given the seed, the settings and the device.

    Raises:
        ConfigError: for an unknown norm, ``radius ≤ 0``, ``batches``, ``samples`` or
            ``chunk`` below 1, a negative seed, an invalid target, an input of the
            wrong shape, dtype or range, or non-finite gradients at sampled points.
    """
    (result,) = _run(
        "clever_score",
        model,
        x,
        batched=False,
        norm=norm,
        radius=radius,
        batches=batches,
        samples=samples,
        target=target,
        seed=seed,
        clip=clip,
        chunk=chunk,
        device=device,
    )
    return result


def clever_scores(
    model: nn.Module,
    x: torch.Tensor,
    *,
    norm: str,
    radius: float,
    batches: int = DEFAULT_BATCHES,
    samples: int = DEFAULT_SAMPLES,
    target: int | None = None,
    seed: int = 0,
    clip: bool = True,
    chunk: int = DEFAULT_CHUNK,
    device: str | torch.device | None = None,
) -> list[CleverResult]:
    """:func:`clever_score` of every input in the batch ``x`` (``N×…``), in order.

    Each input is scored exactly as ``clever_score(model, x[n], …)`` with the same
    ``seed``, so a score does not depend on the other inputs of the batch (a ``target``
    that is some input's predicted class raises a ConfigError). The per-input
    scores are ``[r.score for r in clever_scores(…)]``. The cost is ``N·(K−1)·N_b·N_s``
    gradients untargeted (one forward pass per point, shared by the targets).
    """
    return _run(
        "clever_scores",
        model,
        x,
        batched=True,
        norm=norm,
        radius=radius,
        batches=batches,
        samples=samples,
        target=target,
        seed=seed,
        clip=clip,
        chunk=chunk,
        device=device,
    )


def _run(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    *,
    batched: bool,
    norm: str,
    radius: float,
    batches: int,
    samples: int,
    target: int | None,
    seed: int,
    clip: bool,
    chunk: int,
    device: str | torch.device | None,
) -> list[CleverResult]:
    """Check the settings and ``x`` (a batch, or one input when not ``batched``), put
    the model on ``device`` and score each input."""
    _check_settings(name, norm, radius, batches, samples, seed, chunk)
    _check_input(name, model, x, clip, batched=batched)
    target_device = _model_device(model) if device is None else resolve_device(device)
    if device is not None:
        model.to(target_device)
    x = (x if batched else x.unsqueeze(0)).detach().to(target_device)
    with attack_mode(model), torch.enable_grad():
        return [
            _clever_one(
                name,
                model,
                x0,
                norm=norm,
                radius=radius,
                batches=batches,
                samples=samples,
                target=target,
                seed=seed,
                clip=clip,
                chunk=chunk,
            )
            for x0 in x
        ]
