"""The synthetic subspace data set of Theorem 1 (Langenberg et al. 2019, §3)."""

from __future__ import annotations

import math

import pytest
import torch

from robustcompress.data import load_dataset, make_subspace_dataset
from robustcompress.data.synthetic import subspace_radius
from robustcompress.errors import ConfigError


@pytest.fixture(scope="module")
def data():
    return make_subspace_dataset(n=100, k=5, num_samples=501, seed=3, margin=0.2)


def test_basis_is_orthonormal_and_contains_the_constant_image(data) -> None:
    basis = data.basis
    assert basis.shape == (100, 5) and basis.dtype == torch.float64
    torch.testing.assert_close(basis.T @ basis, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(basis[:, 0], torch.full((100,), 0.1, dtype=torch.float64))


def test_examples_lie_in_the_subspace(data) -> None:
    x = data.images.reshape(len(data), -1).to(torch.float64)
    residual = x - x @ data.projection()  # rows of (I − Q)x
    assert residual.norm(dim=1).max() < 1e-5 * x.norm(dim=1).min()
    # a random image does not: the test can fail
    noise = torch.rand(100, dtype=torch.float64)
    assert (noise - data.projection() @ noise).norm() > 0.1


def test_images_labels_and_margin(data) -> None:
    assert data.images.shape == (501, 1, 1, 100) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.labels.dtype == torch.int64 and data.class_counts().tolist() == [250, 251]
    scores = data.scores()
    assert torch.equal(data.labels, (scores > 0).long())
    assert scores.abs().min() >= 0.2 - 1e-5


def test_w_is_a_unit_normal_inside_the_subspace(data) -> None:
    w = data.w
    torch.testing.assert_close(w.norm(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(data.projection() @ w, w)
    assert abs(w.sum().item()) < 1e-10  # orthogonal to the constant image


def test_theorem_1_accuracy_is_unchanged_by_projection(data) -> None:
    # any w' and its projection Qw' give the same scores on data in V: p_0(w') = p_0(Qw')
    generator = torch.Generator().manual_seed(0)
    w_prime = data.w + torch.randn(100, generator=generator, dtype=torch.float64)
    x = data.images.reshape(len(data), -1).to(torch.float64)
    # (up to the float32 rounding of the stored images)
    torch.testing.assert_close(x @ w_prime, x @ (data.projection() @ w_prime), atol=1e-5, rtol=0)


def test_seeds_and_splits(data) -> None:
    same = make_subspace_dataset(n=100, k=5, num_samples=501, seed=3, margin=0.2)
    assert torch.equal(same.images, data.images) and torch.equal(same.basis, data.basis)
    test = make_subspace_dataset(n=100, k=5, num_samples=501, seed=3, margin=0.2, split="test")
    assert torch.equal(test.basis, data.basis) and torch.equal(test.w, data.w)
    assert not torch.equal(test.images, data.images)
    other = make_subspace_dataset(n=100, k=5, num_samples=501, seed=4, margin=0.2)
    assert not torch.equal(other.basis, data.basis)


def test_radius_keeps_pixels_in_the_box() -> None:
    # a single basis vector e_1 (rows norms 1, 0, ...): R = 1/2
    rest = torch.zeros(4, 1, dtype=torch.float64)
    rest[0, 0] = 1.0
    assert subspace_radius(rest.numpy()) == 0.5


def test_image_shape_and_load_dataset() -> None:
    data = load_dataset(
        "synthetic-subspace",
        "test",
        seed=1,
        limit=40,
        n=784,
        k=10,
        num_samples=200,
        image_shape=(1, 28, 28),
    )
    assert data.images.shape == (40, 1, 28, 28) and data.class_counts().tolist() == [20, 20]
    assert data.basis.shape == (784, 10) and data.split == "test"


def test_k_equal_two_is_a_line_through_the_constant_image() -> None:
    # k = 2: every example is ½·1 + s·w with |s| = |wᵀx| in [margin, R)
    data = make_subspace_dataset(n=16, k=2, num_samples=10, seed=0, margin=0.05)
    assert data.class_counts().tolist() == [5, 5]
    x = data.images.reshape(10, 16).to(torch.float64)
    scores = data.scores()
    torch.testing.assert_close(x, 0.5 + scores[:, None] * data.w[None, :], atol=1e-6, rtol=0)
    radius = subspace_radius(data.basis[:, 1:].numpy())
    assert scores.abs().min() >= 0.05 - 1e-6 and scores.abs().max() < radius


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 1}, "needs 2 ≤ k ≤ n"),
        ({"k": 20, "n": 10}, "needs 2 ≤ k ≤ n"),
        ({"margin": 100.0}, r"margin must lie in \[0, "),
        ({"margin": -0.1}, r"margin must lie in \[0, "),
        ({"num_samples": 0}, "num_samples must be positive"),
        ({"image_shape": (1, 27, 28)}, "image_shape"),
        ({"split": "val"}, "unknown split 'val'"),
    ],
)
def test_invalid_settings(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_subspace_dataset(**kwargs)


def test_default_margin_is_well_inside_the_radius() -> None:
    data = make_subspace_dataset(num_samples=10)
    radius = subspace_radius(data.basis[:, 1:].numpy())
    assert 0.1 < radius / 20 < 1 and math.isclose(data.margin, 0.1)
