"""A binary data set lying in a known k-dimensional subspace (Theorem 1's setting).

Langenberg et al. 2019, §3, Theorem 1: if the data lie in a ``k``-dimensional
subspace ``V ⊂ R^n`` with orthonormal basis ``v_1..v_k`` and ``Q = Σ_i v_i v_iᵀ``
is the orthogonal projection onto ``V``, then a binary linear classifier ``w``
and its projection ``Qw`` have the same accuracy, ``p_0(w) = p_0(Qw)``, and
(when ``s(Qw) ≤ s(w)``) the projection is at least as robust to ℓ∞ attacks,
``p_ε(Qw) ≤ p_ε(w)``, because the optimal attack ``η = −ε y sign(w)`` moves the
score by ``ε‖w‖_1`` and ``‖Qw‖_1 ≤ ‖w‖_1``.

:func:`make_subspace_dataset` draws such data with everything known, so the
theorem can be checked numerically. To keep pixels in ``[0, 1]`` (every model and
attack here works in that box) the subspace contains the constant image:

* ``v_1 = 1/√n`` and ``v_2..v_k`` are a random orthonormal basis of a
  ``(k−1)``-dimensional subspace orthogonal to ``v_1`` (QR of a centred Gaussian
  matrix ``V' ∈ R^{n×(k−1)}``);
* the generating normal ``w = V'u`` (``‖w‖_2 = 1``, ``w ⊥ 1``) lies in ``V``;
* each example is ``x = ½·1 + V'z`` (in ``V``, since ``½·1 = (√n/2) v_1``) with
  ``‖z‖_2 ≤ R = ½ / max_j ‖V'_{j,:}‖_2``, which keeps every pixel in ``[0, 1]``
  (Cauchy–Schwarz), and ``|wᵀx| = |uᵀz| ≥ margin``;
* the label is ``y = 1[wᵀx > 0]``, exactly balanced (one more positive if ``N``
  is odd). ``wᵀx`` is uniform on ``±[margin, R)``; the part of ``z`` orthogonal
  to ``u`` is uniform in the ``(k−2)``-ball that keeps ``‖z‖ ≤ R``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from robustcompress.data.datasets import ArrayDataset
from robustcompress.errors import ConfigError

_SPLIT_STREAMS = {"train": 1, "test": 2}


class SubspaceDataset(ArrayDataset):
    """An :class:`ArrayDataset` that also knows its subspace and generating classifier.

    ``basis`` is ``n×k`` ``float64`` with orthonormal columns (``basis[:, 0]`` the
    constant ``1/√n``), ``w`` the unit generating normal (``float64``, in the
    subspace, orthogonal to the constant image), ``margin`` the minimum ``|wᵀx|``.
    """

    basis: torch.Tensor
    w: torch.Tensor
    margin: float

    def projection(self) -> torch.Tensor:
        """``Q = Σ_i v_i v_iᵀ``, the ``n×n`` orthogonal projection onto the data subspace."""
        return self.basis @ self.basis.T

    def scores(self) -> torch.Tensor:
        """``wᵀx`` of every example (``float64``); positive exactly for label 1."""
        return self.images.reshape(len(self), -1).to(torch.float64) @ self.w


def subspace_radius(basis_rest: np.ndarray) -> float:
    """``R = ½ / max_j ‖V'_{j,:}‖_2``: every ``½·1 + V'z`` with ``‖z‖ ≤ R`` lies in ``[0,1]^n``."""
    return 0.5 / float(np.sqrt((basis_rest**2).sum(axis=1)).max())


def make_subspace_dataset(
    n: int = 784,
    k: int = 10,
    num_samples: int = 1000,
    *,
    seed: int = 0,
    margin: float = 0.1,
    split: str = "train",
    image_shape: Sequence[int] | None = None,
) -> SubspaceDataset:
    """Draw ``num_samples`` binary examples in a random ``k``-dimensional subspace of ``R^n``.

    ``seed`` fixes the subspace and ``w``; ``split`` selects an independent stream
    of examples from the same subspace (``"train"`` or ``"test"``), so a test set
    is made by the same call with ``split="test"``. ``margin`` is the minimum
    ℓ2 distance ``|wᵀx|`` to the generating hyperplane (default 0.1, about a
    twentieth of the largest possible for ``n=784, k=10``); it must be below
    :func:`subspace_radius`. ``image_shape`` (default ``(1, 1, n)``) reshapes
    each example, e.g. ``(1, 28, 28)`` for the MNIST models. Requires
    ``2 ≤ k ≤ n``. See the module docstring for the construction.
    """
    if split not in _SPLIT_STREAMS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(_SPLIT_STREAMS)}")
    if not 2 <= k <= n:
        raise ConfigError(f"synthetic-subspace needs 2 ≤ k ≤ n, got n={n}, k={k}")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be positive, got {num_samples}")
    shape = (1, 1, n) if image_shape is None else tuple(int(s) for s in image_shape)
    if len(shape) != 3 or math.prod(shape) != n:
        raise ConfigError(f"image_shape {shape} must be (C, H, W) with C·H·W = n = {n}")

    rng = np.random.default_rng([seed, 0])
    gaussian = rng.standard_normal((n, k - 1))
    gaussian -= gaussian.mean(axis=0)  # orthogonal to the constant image
    rest, r = np.linalg.qr(gaussian)
    rest *= np.sign(np.diag(r))  # a unique QR, whatever the LAPACK build
    basis = np.concatenate([np.full((n, 1), 1 / math.sqrt(n)), rest], axis=1)
    u = rng.standard_normal(k - 1)
    u /= np.linalg.norm(u)
    radius = subspace_radius(rest)
    if not 0 <= margin < radius:
        raise ConfigError(
            f"margin must lie in [0, {radius:.4g}) for n={n}, k={k} (the largest |wᵀx| "
            f"that keeps pixels in [0, 1]), got {margin}"
        )

    rng = np.random.default_rng([seed, _SPLIT_STREAMS[split]])
    signs = np.where(np.arange(num_samples) < (num_samples + 1) // 2, 1.0, -1.0)
    signs = rng.permutation(signs)
    along = margin + (radius - margin) * rng.random(num_samples)  # |uᵀz|
    z = np.outer(signs * along, u)
    if k > 2:
        d = k - 2  # dimension of the part of z orthogonal to u
        direction = rng.standard_normal((num_samples, k - 1))
        direction -= np.outer(direction @ u, u)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        room = np.sqrt(np.maximum(radius**2 - along**2, 0.0))
        z += direction * (room * rng.random(num_samples) ** (1 / d))[:, None]
    x = 0.5 + z @ rest.T
    images = torch.from_numpy(np.clip(x, 0.0, 1.0).astype(np.float32)).reshape(-1, *shape)
    labels = torch.from_numpy((signs > 0).astype(np.int64))
    dataset = SubspaceDataset(
        images, labels, name="synthetic-subspace", split=split, classes=("negative", "positive")
    )
    dataset.basis = torch.from_numpy(basis)
    dataset.w = torch.from_numpy(rest @ u)
    dataset.margin = float(margin)
    return dataset
