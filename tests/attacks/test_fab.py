"""FAB and FAB-T (Croce & Hein 2020): the box-constrained projection, closed forms on
affine models, the fixed-budget mode, restarts and chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_helpers import affine_min_distance, affine_problem
from scipy.optimize import linprog

from robustcompress import attacks
from robustcompress.attacks.fab import box_hyperplane_step
from robustcompress.attacks.ops import flat_norm
from robustcompress.errors import AttackError

FAB = [("fab", "linf"), ("fab_l2", "l2"), ("fab_t", "linf"), ("fab_t_l2", "l2")]
DUAL = {"linf": "l1", "l2": "l2"}


def _reachable(t: np.ndarray, w: np.ndarray, b: float) -> bool:
    """Whether some point of the box lies on ``⟨w, z⟩ = b`` (its range over the box)."""
    low = np.minimum(w * 0, w).sum()  # min over z ∈ [0, 1]^d of ⟨w, z⟩
    high = np.maximum(w * 0, w).sum()
    return bool(low - 1e-12 <= b <= high + 1e-12)


def _reference_step(t: np.ndarray, w: np.ndarray, b: float, norm: str) -> np.ndarray:
    """The smallest step onto ``⟨w, t + δ⟩ = b`` within the box by a general solver: a
    linear program for ℓ∞ (variables δ and s, minimise s with −s ≤ δ_i ≤ s); for ℓ2 the
    point its KKT conditions single out, found by bisection on the multiplier."""
    d = t.size
    bounds = list(zip(-t, 1 - t, strict=True))
    if norm == "linf":
        eye, ones = np.eye(d), np.ones((d, 1))
        result = linprog(
            np.r_[np.zeros(d), 1.0],
            A_ub=np.block([[eye, -ones], [-eye, -ones]]),
            b_ub=np.zeros(2 * d),
            A_eq=np.r_[w, 0.0][None],
            b_eq=[b - w @ t],
            bounds=[*bounds, (0, None)],
        )
        assert result.status == 0, result.message
        return result.x[:d]

    # ℓ2: a strictly convex quadratic program, so the KKT conditions certify the optimum:
    # δ_i = clip(−μ·w_i, −t_i, 1 − t_i) for one μ (any sign) and the constraint holds.
    # μ solves the monotone 1-d equation ⟨w, clip(−μw)⟩ = b − ⟨w, t⟩, by bisection.
    def reached(mu: float) -> float:
        return float(w @ np.clip(-mu * w, -t, 1 - t))

    target, low, high = b - w @ t, -1e6, 1e6
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if reached(mid) > target else (low, mid)
    return np.clip(-low * w, -t, 1 - t)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_matches_a_general_solver(norm: str) -> None:
    """200 random problems in 6 dimensions, some with zero weights, some out of reach:
    the closed form lands on the hyperplane with the reference's norm (to 1e-9); out of
    reach, it is the box corner closest to the hyperplane."""
    g = torch.Generator().manual_seed(0)
    solved = unreachable = 0
    for trial in range(200):
        t = torch.rand(1, 6, generator=g, dtype=torch.float64)
        w = torch.randn(1, 6, generator=g, dtype=torch.float64)
        if trial % 5 == 0:
            w[0, :2] = 0
        b = (w * torch.rand(1, 6, generator=g, dtype=torch.float64)).sum(dim=1)
        if trial % 4 == 0:
            b = b * 6  # often beyond the box's reach
        delta = box_hyperplane_step(t, w, b, norm)[0].numpy()
        tn, wn, bn = t[0].numpy(), w[0].numpy(), float(b)
        assert np.all(tn + delta >= -1e-12) and np.all(tn + delta <= 1 + 1e-12)
        assert np.all(delta[wn == 0] == 0)
        if not _reachable(tn, wn, bn):
            corner = np.where(wn * np.sign(wn @ tn - bn) > 0, 0.0, 1.0)
            corner = np.where(wn == 0, tn, corner)
            np.testing.assert_allclose(tn + delta, corner, atol=1e-12)
            unreachable += 1
            continue
        reference = _reference_step(tn, wn, bn, norm)
        size = np.inf if norm == "linf" else 2
        expected = np.linalg.norm(reference, size)
        assert np.linalg.norm(delta, size) == pytest.approx(expected, abs=1e-9)
        assert wn @ (tn + delta) == pytest.approx(bn, abs=1e-12)
        if norm == "l2":  # the ℓ2 optimum is unique
            np.testing.assert_allclose(delta, reference, atol=1e-9)
        solved += 1
    assert solved >= 100 and unreachable >= 10


def test_projection_of_a_point_on_the_hyperplane_is_zero() -> None:
    t = torch.full((2, 4), 0.5, dtype=torch.float64)
    w = torch.tensor([[1.0, -2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    b = (w * t).sum(dim=1)
    for norm in ("linf", "l2"):
        assert torch.equal(box_hyperplane_step(t, w, b, norm), torch.zeros_like(t))


@pytest.mark.parametrize(("name", "norm"), FAB)
def test_finds_the_exact_minimal_perturbation_of_an_affine_model(name: str, norm: str) -> None:
    """On an affine model with the box inactive, the linearisation is exact: FAB's closest
    adversarial lies within 1 % beyond the exact distance to the decision boundary, for
    every input (20 steps), never closer (impossible)."""
    model, x, weight = affine_problem(num_classes=5, n=64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(dim=1)
    every_target = {"target_classes": 4} if attacks.attack_class(name).targeted else {}
    x_adv = attacks.get(name, steps=20, **every_target)(model, x, y)
    with torch.no_grad():
        assert (model(x_adv).argmax(dim=1) != y).all()
    ratio = flat_norm(x_adv - x, norm) / affine_min_distance(weight, logits, DUAL[norm])
    assert ratio.min() >= 1 - 1e-9 and ratio.max() <= 1.01


@pytest.mark.parametrize(("name", "norm"), FAB)
def test_with_eps_it_breaks_exactly_the_inputs_within_the_budget(name: str, norm: str) -> None:
    model, x, weight = affine_problem(num_classes=5, n=64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(dim=1)
    distance = affine_min_distance(weight, logits, DUAL[norm])
    eps = float(distance.median())
    every_target = {"target_classes": 4} if attacks.attack_class(name).targeted else {}
    x_adv = attacks.get(name, steps=20, eps=eps, **every_target)(model, x, y)
    with torch.no_grad():
        fooled = model(x_adv).argmax(dim=1) != y
    assert flat_norm(x_adv - x, norm).max() <= eps * (1 + 1e-9)
    assert fooled[distance < 0.99 * eps].all()
    assert not fooled[distance > eps * (1 + 1e-9)].any()


def test_one_target_is_never_closer_than_the_nearest_boundary() -> None:
    """FAB-T with one target (the highest other logit) is no closer than the untargeted
    FAB, and on some inputs farther: its boundary is not always the nearest."""
    model, x, _ = affine_problem(num_classes=5, n=64)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    near = flat_norm(attacks.get("fab", steps=20)(model, x, y) - x, "linf")
    aimed = flat_norm(attacks.get("fab_t", steps=20, target_classes=1)(model, x, y) - x, "linf")
    assert (aimed >= near * (1 - 1e-9)).all() and (aimed > near * 1.05).any()


def test_misclassified_inputs_come_back_unchanged() -> None:
    model, x, _ = affine_problem(num_classes=5, n=16)
    with torch.no_grad():
        y = (model(x).argmax(dim=1) + 1) % 5  # every label wrong
    for name, _ in FAB:
        assert torch.equal(attacks.get(name, steps=5)(model, x, y), x)


def test_restarts_only_get_closer_and_are_seeded() -> None:
    """Random restarts start at half the best distance so far; the result is the closest
    over all runs, so never farther than one run, and repeatable with a seed."""
    model, x, _ = affine_problem(num_classes=5, n=32)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    one = flat_norm(attacks.get("fab", steps=3)(model, x, y) - x, "linf")
    attack = attacks.get("fab", steps=3, restarts=3, seed=1)
    three = attack(model, x, y)
    assert (flat_norm(three - x, "linf") <= one + 1e-12).all()
    assert torch.equal(three, attack(model, x, y))
    assert not attack.chunkable() and attacks.get("fab").chunkable()


def test_restarts_draw_their_starts_from_the_seed(monkeypatch) -> None:
    """A first run starts at the input; a restart at a random point at half the best
    distance so far, drawn from the attack's seed."""
    from robustcompress.attacks import fab

    model, x, _ = affine_problem(num_classes=5, n=8)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    starts: list[torch.Tensor] = []
    real_run = fab.fab_run

    def spy(model, x, y, start, **settings):
        starts.append(start - x)
        return real_run(model, x, y, start, **settings)

    monkeypatch.setattr(fab, "fab_run", spy)
    best = attacks.get("fab", steps=20)(model, x, y)
    for seed in (0, 0, 1):
        attacks.get("fab", steps=20, restarts=2, seed=seed)(model, x, y)
    first, seeded, again, other = starts[0], starts[2], starts[4], starts[6]
    assert torch.equal(first, torch.zeros_like(first)) and torch.equal(starts[1], first)
    torch.testing.assert_close(flat_norm(seeded, "linf"), flat_norm(best - x, "linf") / 2)
    assert torch.equal(seeded, again) and not torch.equal(seeded, other)


def test_chunks_change_nothing(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = attacks.get("fab_t", steps=10, target_classes=3, eps=0.2)
    whole = attack.replace(chunk_size=None)(tiny_model, x, y)
    with torch.no_grad():
        assert (tiny_model(whole).argmax(dim=1) != y).sum() >= 2  # not a trivial equality
    torch.testing.assert_close(attack.replace(chunk_size=3)(tiny_model, x, y), whole)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha_max": 1.5}, "alpha_max and beta must lie in"),
        ({"beta": -0.1}, "beta"),
        ({"eta": 0}, "eta"),
        ({"target_classes": 0}, "target_classes"),
    ],
)
def test_bad_settings_are_refused(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("fab_t", **settings)
