"""Measures of learned representations (Sanyal et al., §3): their effective rank, how far
they move under a perturbation, and the layer cushion. (Table 4's random pixel noise is
the ``noise`` attack, :class:`robustcompress.attacks.noise.GaussianPixelNoise`.)

``representations(model, module, images)``
    the output of one named module for every image, flattened to an n×m matrix
    (eval mode, in batches, on the model's device; returned on the CPU).
``variance_ratios(matrix)``
    Σ_{i≤r} σ_i² / Σ_i σ_i² for every r, the σ_i the singular values of the matrix
    (the paper's "variance ratio", Figure 2; no centering). The σ_i² are the eigenvalues
    of the smaller Gram matrix, AᵀA (m×m) accumulated over row chunks when m ≤ n, or AAᵀ
    (n×n) built block by block otherwise, so a 10,000-row matrix of wide rows fits.
``perturbation_ratios(model, module, x, x_adv)``
    per example ρ_in = ‖x_adv − x‖₂ / ‖x‖₂ and ρ_rep = ‖φ(x_adv) − φ(x)‖₂ / ‖φ(x)‖₂ at the
    module's output (Figure 4b; ρ as in Table 3).
``layer_cushions(model, module, images)``
    μ(x) = ‖A φ‖ / (‖A‖_F ‖φ‖) per example for the module's input φ (Arora et al. 2018,
    Definition 4; the paper's Figure 4c). A is the layer's linear map without bias: W for
    a linear layer, the convolution on the input it receives (its Frobenius norm exact:
    every kernel tap counted at each output position where it meets the input).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from robustcompress.errors import ConfigError, ModelError

BATCH = 500


def _module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        choices = ", ".join(n for n in modules if n)
        raise ConfigError(f"no module {name!r} in the model; choose from {choices}")
    return modules[name]


def _capture(
    model: nn.Module,
    name: str,
    images: torch.Tensor,
    batch_size: int,
    keep: Callable[[tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``keep(inputs, output)`` of module ``name`` for every image, concatenated (CPU)."""
    module = _module(model, name)
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen.append(keep(inputs, output).detach().cpu())

    handle = module.register_forward_hook(hook)
    training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size].to(device))
    finally:
        handle.remove()
        model.train(training)
    return torch.cat(seen) if seen else torch.empty(0)


def representations(
    model: nn.Module, module: str, images: torch.Tensor, batch_size: int = BATCH
) -> torch.Tensor:
    """The n×m matrix of module ``module``'s outputs on ``images`` (module docstring)."""
    return _capture(model, module, images, batch_size, lambda _i, out: out.flatten(1))


def variance_ratios(matrix: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """The variance ratio for r = 1 … min(n, m) (module docstring), float64."""
    if matrix.dim() != 2 or matrix.numel() == 0:
        raise ConfigError(f"variance ratios need a non-empty n×m matrix, got {tuple(matrix.shape)}")
    n, m = matrix.shape
    if m <= n:
        gram = torch.zeros(m, m, dtype=torch.float64)
        for start in range(0, n, chunk):
            block = matrix[start : start + chunk].to(torch.float64)
            gram += block.T @ block
    else:
        gram = torch.zeros(n, n, dtype=torch.float64)
        for i in range(0, n, chunk):
            rows = matrix[i : i + chunk].to(torch.float64)
            for j in range(0, n, chunk):
                gram[i : i + chunk, j : j + chunk] = (
                    rows @ matrix[j : j + chunk].to(torch.float64).T
                )
    power = torch.linalg.eigvalsh(gram).flip(0).clamp(min=0.0)
    total = power.sum()
    if total <= 0:
        raise ConfigError("variance ratios of an all-zero matrix are undefined")
    return torch.cumsum(power, 0) / total


def perturbation_ratios(
    model: nn.Module,
    module: str,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    batch_size: int = BATCH,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ρ_in, ρ_rep)`` per example (module docstring)."""
    if x.shape != x_adv.shape:
        raise ConfigError(f"x and x_adv differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    clean = representations(model, module, x, batch_size)
    adv = representations(model, module, x_adv, batch_size)
    rho_in = (x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    rho_rep = (adv - clean).norm(dim=1) / clean.norm(dim=1)
    return rho_in.cpu(), rho_rep


def operator_frobenius_norm(module: nn.Module, input_size: tuple[int, int] | None = None) -> float:
    """‖A‖_F of a layer's linear map: ‖W‖_F for a linear layer; for a convolution on an
    ``input_size`` grid, √(Σ K[o, i, u, v]² · c(u, v)) with c(u, v) the number of output
    positions at which tap (u, v) meets the input (not the padding)."""
    if isinstance(module, nn.Linear):
        return float(torch.linalg.matrix_norm(module.weight.detach().double()))
    if not isinstance(module, nn.Conv2d):
        raise ModelError(f"expected an nn.Linear or nn.Conv2d, got {type(module).__name__}")
    if input_size is None:
        raise ModelError("a convolution's Frobenius norm needs its input size (n_h, n_w)")
    if module.padding_mode != "zeros":
        raise ModelError(f"padding mode {module.padding_mode!r}: only zero padding is supported")
    kh, kw = module.kernel_size
    taps = torch.eye(kh * kw, dtype=torch.float64).reshape(kh * kw, 1, kh, kw)
    ones = torch.ones(1, 1, *input_size, dtype=torch.float64)
    counts = F.conv2d(ones, taps, None, module.stride, module.padding, module.dilation)
    per_tap = counts.sum(dim=(0, 2, 3)).reshape(kh, kw)
    kernel = module.weight.detach().double()
    return float(((kernel**2) * per_tap).sum().sqrt())


def layer_cushions(
    model: nn.Module, module: str, images: torch.Tensor, batch_size: int = BATCH
) -> torch.Tensor:
    """μ(x) of layer ``module`` (a ``Linear`` or ``Conv2d``) for every image (module
    docstring)."""
    from robustcompress.structure.operators import layer_map

    layer = _module(model, module)
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        raise ConfigError(
            f"layer cushions need a Linear or Conv2d layer; {module!r} is a {type(layer).__name__}"
        )
    apply = layer_map(layer)
    sizes: list[tuple[int, int]] = []

    def keep(inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> torch.Tensor:
        phi = inputs[0]
        if isinstance(layer, nn.Conv2d) and not sizes:
            sizes.append((int(phi.shape[-2]), int(phi.shape[-1])))
        image = apply(phi).flatten(1).norm(dim=1)
        return torch.stack([image, phi.flatten(1).norm(dim=1)], dim=1)

    norms = _capture(model, module, images, batch_size, keep).double()
    frobenius = operator_frobenius_norm(layer, sizes[0] if sizes else None)
    return (norms[:, 0] / (frobenius * norms[:, 1])).float()


__all__ = [
    "layer_cushions",
    "operator_frobenius_norm",
    "perturbation_ratios",
    "representations",
    "variance_ratios",
]
