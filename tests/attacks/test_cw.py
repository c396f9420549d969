"""Carlini–Wagner ℓ2: the binary search over c and the affine optimum."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import affine_min_distance

from robustcompress import attacks
from robustcompress.attacks import cw
from robustcompress.attacks.cw import (
    ADAM_BETAS,
    ADAM_EPS,
    adam_step,
    from_tanh_space,
    next_constants,
    objective_gradient,
    to_tanh_space,
)
from robustcompress.attacks.ops import flat_norm, margin
from robustcompress.errors import AttackError


def test_within_25_percent_of_the_affine_optimum(affine_problem) -> None:
    model, x, weight = affine_problem(num_classes=4, n=12)
    with torch.no_grad():
        logits = model(x)
    k = logits.argmax(dim=1)
    x_adv = attacks.get("cw_l2", steps=200)(model, x, k)
    with torch.no_grad():
        assert (model(x_adv).argmax(dim=1) != k).all()
    found = (x_adv - x).flatten(1).norm(dim=1)
    ratio = found / affine_min_distance(weight, logits, "l2")
    assert ratio.min() >= 1.0 - 1e-6
    assert ratio.max() <= 1.25


def test_binary_search_schedule() -> None:
    c = torch.tensor([1e-3, 1e-3, 4.0])
    lower = torch.tensor([0.0, 0.0, 2.0])
    upper = torch.tensor([1e10, 1e10, 8.0])
    success = torch.tensor([True, False, False])
    c, lower, upper = next_constants(c, lower, upper, success)
    # success: upper = c, bisect; failure with no upper bound: ×10; failure: bisect up
    torch.testing.assert_close(c, torch.tensor([5e-4, 1e-2, 6.0]))
    torch.testing.assert_close(lower, torch.tensor([0.0, 1e-3, 4.0]))
    torch.testing.assert_close(upper, torch.tensor([1e-3, 1e10, 8.0]))


def test_tanh_change_of_variables_round_trips() -> None:
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    back = from_tanh_space(to_tanh_space(x))
    torch.testing.assert_close(back, x, rtol=0, atol=1e-6)


def test_unfooled_samples_are_returned_unchanged(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    # one short run with a tiny c cannot fool anything
    x_adv = attacks.get("cw_l2", steps=5, search_steps=1)(tiny_model, x, y)
    assert torch.equal(x_adv, x)


def test_confidence_enforces_a_logit_gap(affine_problem) -> None:
    model, x, _ = affine_problem(num_classes=3, n=6)
    with torch.no_grad():
        k = model(x).argmax(dim=1)
    x_adv = attacks.get("cw_l2", steps=100, search_steps=5, confidence=0.5)(model, x, k)
    with torch.no_grad():
        logits = model(x_adv)
    others = logits.scatter(1, k[:, None], float("-inf")).amax(dim=1)
    assert (others - logits.gather(1, k[:, None]).squeeze(1) > 0.5).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"search_steps": 0}, "search_steps"),
        ({"confidence": -1}, "confidence"),
        ({"abort_early": "yes"}, "abort_early"),
    ],
)
def test_invalid_settings(settings, message) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("cw_l2", **settings)


def _squared_distance(a, b):
    return flat_norm(a - b, "l2") ** 2


def _full_objective(model, w, x, y, c, confidence):
    """The C&W objective through autograd end to end (the reference for the fast path)."""
    x_new = (torch.tanh(w) + 1) / 2
    gap = margin(model(x_new), y)
    return _squared_distance(x_new, x) + c * (-gap).clamp_min(-confidence)


@pytest.mark.parametrize("confidence", [0.0, 0.1])
def test_objective_gradient_equals_autograd_through_the_whole_objective(
    tiny_model, tiny_batch, confidence
) -> None:
    model = tiny_model.double()
    x, y = tiny_batch
    x = x.double()
    g = torch.Generator().manual_seed(0)
    w = to_tanh_space(x) + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    c = torch.logspace(-2, 1, len(x), dtype=torch.float64)
    with torch.no_grad():
        predicted = model(from_tanh_space(w)).argmax(dim=1)
    # half the labels are the prediction at w (hinge active), half another class (g > κ)
    y = torch.where(torch.arange(len(x)) < len(x) // 2, predicted, (predicted + 1) % 10)
    x_new, l2_squared, gap, loss, grad = objective_gradient(model, w, x, y, c, confidence)
    assert (gap <= confidence).any() and (gap > confidence).any()
    w_var = w.clone().requires_grad_(True)
    reference = _full_objective(model, w_var, x, y, c, confidence)
    (expected,) = torch.autograd.grad(reference.sum(), w_var)
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_new, from_tanh_space(w))
    torch.testing.assert_close(l2_squared, _squared_distance(x_new, x))
    assert not grad.requires_grad and not x_new.requires_grad


def test_objective_gradient_is_zero_on_the_hinge_part_once_the_margin_is_reached(
    tiny_model, tiny_batch
) -> None:
    """Where g > κ only the distance term pulls: ∂L/∂w = 2δ·2x'(1 − x')."""
    model = tiny_model.double()
    x, _ = tiny_batch
    x = x.double()
    w = to_tanh_space(x) + 0.1
    with torch.no_grad():
        wrong = (model(from_tanh_space(w)).argmax(dim=1) + 1) % 10
    # label every input with a class it is not predicted as: every margin is positive
    x_new, _, gap, _, grad = objective_gradient(model, w, x, wrong, torch.ones(len(x)).double(), 0)
    assert (gap > 0).all()
    torch.testing.assert_close(grad, 2 * (x_new - x) * 2 * x_new * (1 - x_new))


@pytest.mark.parametrize("use_fused", [True, False])
def test_adam_step_matches_the_adam_paper(use_fused, monkeypatch) -> None:
    monkeypatch.setattr(cw, "USE_FUSED_ADAM", use_fused)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    ref_w, ref_m, ref_v = w.clone(), m.clone(), v.clone()
    step = torch.zeros((), dtype=torch.float32)
    beta1, beta2 = ADAM_BETAS
    for t in range(1, 4):
        grad = torch.randn(w.shape, generator=g, dtype=torch.float64)
        adam_step(w, grad, m, v, step, 0.01)
        ref_m = beta1 * ref_m + (1 - beta1) * grad
        ref_v = beta2 * ref_v + (1 - beta2) * grad**2
        m_hat, v_hat = ref_m / (1 - beta1**t), ref_v / (1 - beta2**t)
        ref_w = ref_w - 0.01 * m_hat / (v_hat.sqrt() + ADAM_EPS)
    torch.testing.assert_close(w, ref_w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m, ref_m)
    torch.testing.assert_close(v, ref_v)
    assert step.item() == 3


# --- fused Adam where the running torch has the kernel, the plain Adam elsewhere


def _without_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make ``cw`` see a torch without a fused Adam kernel (as torch 2.1 on CPU): a fused
    call raises as the missing kernel does. Returns the ``fused`` flag of every call."""
    real_adam = cw.adam
    calls: list[bool] = []

    def adam(*args, fused=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(bool(fused))
        if fused:
            raise NotImplementedError("Could not run 'aten::_fused_adam_' with this backend")
        return real_adam(*args, fused=fused, **kwargs)

    monkeypatch.setattr(cw, "adam", adam)
    monkeypatch.setattr(cw, "_FUSED_ADAM_SUPPORT", {})
    return calls


def test_fused_support_is_probed_once_per_device_and_dtype(monkeypatch) -> None:
    calls = _without_fused_kernel(monkeypatch)
    cpu = torch.device("cpu")
    assert not cw.fused_adam_supported(cpu, torch.float32)
    assert not cw.fused_adam_supported(cpu, torch.float32)
    assert calls == [True]  # one probe, remembered
    w, grad = torch.ones(3), torch.full((3,), 0.5)
    m, v, step = torch.zeros(3), torch.zeros(3), torch.zeros(())
    cw.adam_step(w, grad, m, v, step, 0.1)
    assert calls == [True, False] and step.item() == 1
    torch.testing.assert_close(w, torch.full((3,), 0.9))  # first Adam step: −lr·sign(g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plain_adam_fallback_gives_the_fused_result(dtype, tiny_model, tiny_batch, monkeypatch):
    """C&W with the fallback (forced by the switch, and on a torch without the fused
    kernel) equals C&W with the fused kernel up to float rounding. (On a torch without
    a fused CPU kernel the first run takes the plain path too.)"""
    model = tiny_model.to(dtype)
    x, y = tiny_batch
    x = x.to(dtype)
    attack = attacks.get(
        "cw_l2", steps=50, search_steps=3, initial_const=1.0, learning_rate=0.05, chunk_size=None
    )
    fused = attack(model, x, y)
    monkeypatch.setattr(cw, "USE_FUSED_ADAM", False)
    forced = attack(model, x, y)
    monkeypatch.setattr(cw, "USE_FUSED_ADAM", True)
    calls = _without_fused_kernel(monkeypatch)
    missing = attack(model, x, y)
    assert calls[0] and len(calls) > 1 and not any(calls[1:])  # probe, then plain steps
    tol = {"rtol": 0, "atol": 1e-5 if dtype == torch.float32 else 1e-10}
    torch.testing.assert_close(forced, fused, **tol)
    torch.testing.assert_close(missing, forced, rtol=0, atol=0)
    assert (fused != x).flatten(1).any(dim=1).all()  # every input moved: not vacuous
