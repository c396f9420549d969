"""KDE bounds on the mutual information of a noisy hidden layer (Kolchinsky & Tracey 2017).

Langenberg et al. 2019 (§4, Figure 2) track I(x; t_i) for the FCNN's hidden
representations t_1 … t_{m−1} of the Markov chain (x, y) → t_1 → … → t_{m−1} → ŷ
(their eq. 4) with "the KDE method … with a noise variance of σ² = 0.1", which gives
a lower and an upper bound rather than a single number. This module implements that
method; the notes are in ``docs/algorithms.md`` (KDE mutual-information bounds).

Model. A deterministic layer has infinite I(X; T) for continuous X, so noise is
added: for activations h_1 … h_N ∈ R^d of N fixed inputs (X uniform over them),

    T = h(X) + Z,   Z ~ N(0, σ² I_d),   p(t) = (1/N) Σ_i N(t; h_i, σ² I_d),

a Gaussian mixture. With D_ij = ‖h_i − h_j‖² the pairwise-distance estimator of the
mixture entropy (Kolchinsky & Tracey, *Entropy* 2017, eq. 10) is

    Ĥ_D(T) = (d/2) ln(2πeσ²) − (1/N) Σ_i ln[(1/N) Σ_j exp(−D(p_i ‖ p_j))].

* D = KL divergence = D_ij / (2σ²) gives an upper bound, Ĥ_KL ≥ H(T);
* D = Bhattacharyya distance = D_ij / (8σ²) (Chernoff α = ½, optimal for equal
  covariances) gives a lower bound, Ĥ_BD ≤ H(T).

Since H(T | X) = (d/2) ln(2πeσ²) exactly, the constant cancels in I(X; T):

    I_up(X; T) = −(1/N) Σ_i ln[(1/N) Σ_j exp(−D_ij / (2σ²))]
    I_lo(X; T) = −(1/N) Σ_i ln[(1/N) Σ_j exp(−D_ij / (8σ²))]
    0 ≤ I_lo ≤ I_up ≤ ln N.

For I(T; Y) the same estimator is applied to each class-conditional mixture
{h_i : y_i = y}; see :func:`mutual_information_label` for the two kinds of answer.

Units: natural logarithms give nats; bits = nats / ln 2 (Saxe et al. 2018 and the
ibsgd reference code plot bits, so bits is the default).

Numerics. Float64 on the input's device. D is computed as ‖a‖² + ‖b‖² − 2⟨a, b⟩,
clamped at ≥ 0, for one chunk of rows at a time against all N columns, so memory is
O(chunk_size · N) and the N × N matrix is never formed. Each log-sum is a log-sum-exp
whose maximum is known in advance: the self-term j = i has D_ii = 0 (set exactly) and
every other exponent −D_ij/c is ≤ 0, so the shift is 0, the sum is ≥ 1 and its log is
never −∞ — the reason the self-term is kept.

Caveats (docs/algorithms.md, KDE mutual-information bounds). The bounds depend on the activation
scale relative to σ: I_up
saturates at ln N once the spread of the activations is ≫ σ (wide ReLU layers), and
shrinking or growing the weights moves the estimates without any change of the
function's information content. Compare runs only at fixed N and σ², and log the
mean activation norm ‖h‖ alongside (:func:`layer_mutual_information` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from robustcompress.errors import ConfigError
from robustcompress.models import capture_representations, hidden_layer_names

Unit = Literal["bits", "nats"]

DEFAULT_NOISE_VARIANCE = 0.1
"""σ² of the additive Gaussian noise: Langenberg et al. 2019 §4 and ibsgd's ``noise_variance``."""

DEFAULT_CHUNK_SIZE = 512
"""Rows per distance block: a 512 × 10,000 float64 block is ≈ 41 MB, a few are alive at once."""

DEFAULT_BATCH_SIZE = 500
"""Inputs per forward pass in :func:`layer_mutual_information`."""

_UNITS = ("bits", "nats")


@dataclass(frozen=True)
class MIBounds:
    """A bracket ``lower ≤ quantity ≤ upper`` on an information quantity, in ``unit``.

    Used for I(X; T) (:func:`mutual_information_input`) and for the differential
    entropy H(T) of the noisy layer (:func:`mixture_entropy_bounds`).
    """

    lower: float
    upper: float
    unit: Unit


@dataclass(frozen=True)
class LabelMIEstimates:
    """Estimates of I(T; Y) from class-conditional KDE entropies, in ``unit``.

    ``kl_estimate`` = Ĥ_KL(T) − Σ_y p_y Ĥ_KL(T|y) and ``bd_estimate`` = Ĥ_BD(T) −
    Σ_y p_y Ĥ_BD(T|y) are what the ibsgd code reports (as "upper" and "lower"); each
    is a difference of two bounds and therefore NOT a bound itself. ``lower`` and
    ``upper`` are the rigorous bracket ``lower ≤ I(T; Y) ≤ upper`` (see
    :func:`mutual_information_label`); always ``lower ≤ kl_estimate, bd_estimate ≤ upper``.
    """

    kl_estimate: float
    bd_estimate: float
    lower: float
    upper: float
    unit: Unit

    @property
    def bracket(self) -> MIBounds:
        """The rigorous bracket as :class:`MIBounds`."""
        return MIBounds(self.lower, self.upper, self.unit)


@dataclass(frozen=True)
class _MeanLogMasses:
    """Row means of m_i = ln[(1/N_i) Σ_{j ∈ S(i)} exp(−D_ij / c)], in nats.

    ``all_*``: S(i) = all samples, N_i = N. ``class_*``: S(i) = samples of i's class,
    N_i = |S_{y_i}|, so ``class_*`` = Σ_y p_y · (mean over class y). ``kl`` uses
    c = 2σ², ``bd`` uses c = 8σ².
    """

    all_kl: float
    all_bd: float
    class_kl: float
    class_bd: float


def mixture_entropy_bounds(
    H: torch.Tensor,
    noise_variance: float = DEFAULT_NOISE_VARIANCE,
    unit: Unit = "bits",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> MIBounds:
    """Bounds Ĥ_BD ≤ H(T) ≤ Ĥ_KL on the entropy of T = h(X) + N(0, σ² I).

    H(T) is the differential entropy of p(t) = (1/N) Σ_i N(t; h_i, σ² I_d), with the
    rows of ``H`` (N × d) as the h_i:

        Ĥ_D = (d/2) ln(2πeσ²) − (1/N) Σ_i ln[(1/N) Σ_j exp(−D(p_i‖p_j))],

    D = D_ij/(8σ²) (Bhattacharyya) for ``lower``, D_ij/(2σ²) (KL) for ``upper``
    (Kolchinsky & Tracey 2017, eq. 10 and Corollaries 2–3). Unlike the mutual
    information, this depends on d and can be negative (small σ²).
    """
    H = _activations(H)
    sigma2 = _noise_variance(noise_variance)
    masses = _mean_log_masses(H, None, sigma2, _chunk_size(chunk_size))
    conditional = 0.5 * H.shape[1] * math.log(2 * math.pi * math.e * sigma2)
    return MIBounds(
        lower=_in_unit(conditional - masses.all_bd, unit),
        upper=_in_unit(conditional - masses.all_kl, unit),
        unit=_unit(unit),
    )


def mutual_information_input(
    H: torch.Tensor,
    noise_variance: float = DEFAULT_NOISE_VARIANCE,
    unit: Unit = "bits",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> MIBounds:
    """KDE bounds on I(X; T) for T = h(X) + N(0, σ² I), X uniform over the N inputs.

    ``H`` holds the activations h(x_i) as rows (N × d). With D_ij = ‖h_i − h_j‖²:

        upper = −(1/N) Σ_i ln[(1/N) Σ_j exp(−D_ij / (2σ²))]    (KL, ≥ I)
        lower = −(1/N) Σ_i ln[(1/N) Σ_j exp(−D_ij / (8σ²))]    (Bhattacharyya, ≤ I)

    Kolchinsky & Tracey 2017 with H(T|X) = (d/2) ln(2πeσ²) subtracted; the estimator
    Langenberg et al. 2019 use for Figure 2 (σ² = 0.1, the default). Always
    0 ≤ lower ≤ upper ≤ ln N: 0 when all activations coincide, ln N when every pair is
    ≫ σ apart.
    """
    H = _activations(H)
    masses = _mean_log_masses(H, None, _noise_variance(noise_variance), _chunk_size(chunk_size))
    return _input_bounds(masses, unit)


def mutual_information_label(
    H: torch.Tensor,
    labels: torch.Tensor,
    noise_variance: float = DEFAULT_NOISE_VARIANCE,
    unit: Unit = "bits",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> LabelMIEstimates:
    """KDE estimates and a rigorous bracket for I(T; Y) = H(T) − Σ_y p_y H(T | Y=y).

    ``labels`` are the true classes y_i of the rows of ``H`` (as in ibsgd);
    p_y = |S_y| / N and Ĥ(T|y) is the mixture estimator on {h_i : i ∈ S_y}.

    * ``kl_estimate`` = Ĥ_KL(T) − Σ p_y Ĥ_KL(T|y), ``bd_estimate`` = Ĥ_BD(T) − Σ p_y
      Ĥ_BD(T|y): ibsgd's "upper" / "lower" (Saxe et al. 2018). Differences of two
      upper (two lower) bounds, so they are estimates, not bounds.
    * ``lower`` = Ĥ_BD(T) − Σ p_y Ĥ_KL(T|y) ≤ I(T; Y) ≤ Ĥ_KL(T) − Σ p_y Ĥ_BD(T|y) =
      ``upper``: a lower bound on H(T) minus an upper bound on H(T|Y) and vice versa
      (docs/algorithms.md, KDE mutual-information bounds, ours). The d-dependent constants cancel
      in all four.

    Both estimates are ≤ H(Y) = −Σ p_y ln p_y. The bracket is reported as computed;
    max(0, lower) and min(upper, H(Y), upper bound on I(X; T)) are also valid
    (I(T; Y) ≤ I(T; X) by data processing, as Y is a function of the sample index).
    """
    H = _activations(H)
    classes = _labels(labels, H.shape[0], H.device)
    m = _mean_log_masses(H, classes, _noise_variance(noise_variance), _chunk_size(chunk_size))
    return _label_estimates(m, unit)


def layer_mutual_information(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: Sequence[str] | None = None,
    noise_variance: float = DEFAULT_NOISE_VARIANCE,
    unit: Unit = "bits",
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[dict[str, object]]:
    """I(X; T_i) bounds and I(T_i; Y) estimates for each hidden representation t_i.

    Runs ``model`` in eval mode under ``torch.no_grad`` on the fixed sample ``x``
    (N inputs, fed in batches of ``batch_size`` on the model's device; its training
    mode is restored afterwards), records the outputs of ``layers`` (module paths;
    default :func:`~robustcompress.models.hidden_layer_names`, i.e. t_1 … t_{m−1}
    of Langenberg et al. 2019 eq. 4) and measures each with one pass over the pairwise
    distances. Keep ``x`` (and so N) and ``noise_variance`` fixed across everything
    you compare. One record per layer, with keys

    ``layer`` (module path), ``index`` (i of t_i among the hidden layers, None for a
    module that is not one), ``dim`` (d), ``n`` (N), ``noise_variance``, ``unit``,
    ``mi_input_lower`` / ``mi_input_upper`` (I(X;T) bracket), ``mi_label_kl`` /
    ``mi_label_bd`` (ibsgd estimates), ``mi_label_lower`` / ``mi_label_upper`` (I(T;Y)
    bracket), ``mean_activation_norm`` (mean_i ‖h_i‖₂, the scale confound).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise ConfigError("x must be a non-empty tensor of inputs with the sample axis first")
    n = x.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    sigma2 = _noise_variance(noise_variance)
    unit = _unit(unit)
    chunk = _chunk_size(chunk_size)
    classes = _labels(y, n, x.device)
    hidden = hidden_layer_names(model)
    names = list(layers) if layers is not None else hidden
    if not names:
        raise ConfigError(
            f"{type(model).__name__} has no hidden activation modules: pass layers=[module paths]"
        )
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else x.device

    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_representations(model, names) as store:
            for start in range(0, n, batch_size):
                model(x[start : start + batch_size].to(device))
                for name in names:
                    outputs[name].append(store[name])
    finally:
        model.train(was_training)

    records: list[dict[str, object]] = []
    for name in names:
        H = _activations(torch.cat(outputs[name]), what=f"activations of layer {name!r}")
        m = _mean_log_masses(H, classes.to(H.device), sigma2, chunk)
        inp, label = _input_bounds(m, unit), _label_estimates(m, unit)
        records.append(
            {
                "layer": name,
                "index": hidden.index(name) + 1 if name in hidden else None,
                "dim": H.shape[1],
                "n": n,
                "noise_variance": sigma2,
                "unit": unit,
                "mi_input_lower": inp.lower,
                "mi_input_upper": inp.upper,
                "mi_label_kl": label.kl_estimate,
                "mi_label_bd": label.bd_estimate,
                "mi_label_lower": label.lower,
                "mi_label_upper": label.upper,
                "mean_activation_norm": float(H.norm(dim=1).mean()),
            }
        )
    return records


def _mean_log_masses(
    H: torch.Tensor, classes: torch.Tensor | None, sigma2: float, chunk_size: int
) -> _MeanLogMasses:
    """One chunked pass over D_ij = ‖h_i − h_j‖² giving the four log-mass means.

    Per row chunk: D (clamped ≥ 0, self-distance set to 0), K_BD = exp(−D/(8σ²)) and
    K_KL = exp(−D/(2σ²)) = K_BD⁴, then row sums per class as ``K @ one_hot``
    (chunk × n_classes). Every sum includes its self-term e⁰ = 1, so the logs are ≥ 0
    and this equals log-sum-exp with the (known) maximum exponent 0 subtracted.
    """
    n = H.shape[0]
    if classes is None:
        classes = torch.zeros(n, dtype=torch.long, device=H.device)
    one_hot = nn.functional.one_hot(classes).to(H.dtype)  # N × K
    class_sizes = one_hot.sum(0)  # K
    log_n = math.log(n)
    log_class_size = class_sizes.log()[classes]  # N
    sq_norms = (H * H).sum(1)
    totals = torch.zeros(4, dtype=H.dtype, device=H.device)
    for start in range(0, n, chunk_size):
        rows = slice(start, min(start + chunk_size, n))
        D = torch.addmm(sq_norms[None, :], H[rows], H.T, alpha=-2.0)  # ‖h_j‖² − 2⟨h_i, h_j⟩
        D.add_(sq_norms[rows, None]).clamp_(min=0.0)
        local = torch.arange(D.shape[0], device=H.device)
        D[local, local + start] = 0.0
        k_bd = D.mul_(-1.0 / (8.0 * sigma2)).exp_()
        k_kl = k_bd.square().square_()
        own = classes[rows, None]
        for offset, kernel in ((0, k_kl), (1, k_bd)):
            per_class = kernel @ one_hot  # chunk × K
            all_sum = per_class.sum(1)
            class_sum = per_class.gather(1, own).squeeze(1)
            totals[offset] += (all_sum.log() - log_n).sum()
            totals[2 + offset] += (class_sum.log() - log_class_size[rows]).sum()
    means = (totals / n).tolist()
    return _MeanLogMasses(all_kl=means[0], all_bd=means[1], class_kl=means[2], class_bd=means[3])


def _input_bounds(m: _MeanLogMasses, unit: Unit) -> MIBounds:
    """I(X;T) bracket from log masses: I_lo = −m_all,BD, I_up = −m_all,KL."""
    return MIBounds(
        lower=_in_unit(-m.all_bd, unit), upper=_in_unit(-m.all_kl, unit), unit=_unit(unit)
    )


def _label_estimates(m: _MeanLogMasses, unit: Unit) -> LabelMIEstimates:
    """I(T;Y) estimates from log masses: Ĥ_D(T) − Σ p_y Ĥ_D'(T|y) = −m_all,D + m_class,D'."""
    return LabelMIEstimates(
        kl_estimate=_in_unit(m.class_kl - m.all_kl, unit),
        bd_estimate=_in_unit(m.class_bd - m.all_bd, unit),
        lower=_in_unit(m.class_kl - m.all_bd, unit),
        upper=_in_unit(m.class_bd - m.all_kl, unit),
        unit=_unit(unit),
    )


def _activations(H: torch.Tensor, what: str = "H") -> torch.Tensor:
    """Validated float64 copy of an N × d activation matrix on its own device.

    MPS has no float64, so MPS tensors are measured on the CPU.
    """
    if not isinstance(H, torch.Tensor):
        raise ConfigError(f"{what} must be a torch.Tensor of activations, got {type(H).__name__}")
    if H.dim() != 2:
        raise ConfigError(
            f"{what} must be N × d (one row per input), got shape {tuple(H.shape)}: "
            "flatten feature maps with H.flatten(1)"
        )
    if H.shape[0] == 0 or H.shape[1] == 0:
        raise ConfigError(f"{what} is empty (shape {tuple(H.shape)}): need ≥ 1 sample and feature")
    device = torch.device("cpu") if H.device.type == "mps" else H.device
    out = H.detach().to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(out).all()):
        raise ConfigError(
            f"{what} has NaN or infinite entries: the model diverged; measure a finite checkpoint"
        )
    return out


def _labels(labels: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """Class indices 0 … K−1 (one per sample) from arbitrary integer labels of length ``n``."""
    if not isinstance(labels, torch.Tensor):
        raise ConfigError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ConfigError(
            f"labels must be a 1-D tensor with one class per sample ({n}), "
            f"got shape {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ConfigError(f"labels must be integer class indices, got dtype {labels.dtype}")
    return torch.unique(labels.to(device), return_inverse=True)[1]


def _noise_variance(noise_variance: float) -> float:
    """σ² as a float, required finite and > 0."""
    try:
        value = float(noise_variance)
    except (TypeError, ValueError):
        raise ConfigError(
            f"noise_variance must be a positive number, got {noise_variance!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"noise_variance must be finite and > 0, got {noise_variance!r} "
            f"(the paper uses {DEFAULT_NOISE_VARIANCE})"
        )
    return value


def _chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _unit(unit: str) -> Unit:
    if unit not in _UNITS:
        raise ConfigError(f"unit must be 'bits' or 'nats', got {unit!r}")
    return unit  # type: ignore[return-value]


def _in_unit(nats: float, unit: str) -> float:
    """Convert a value in nats to ``unit`` (bits = nats / ln 2)."""
    return nats / math.log(2) if _unit(unit) == "bits" else nats
