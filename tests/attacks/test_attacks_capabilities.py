"""The capability flags every attack declares, and checks that the declarations hold."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import make_attack

from robustcompress import attacks
from robustcompress.attacks import CAPABILITIES, Attack, MinimalPerturbationAttack

# iterative, single_step, randomized, minimal_perturbation, targeted, scaled_sign_step,
# score_based
EXPECTED: dict[str, tuple[bool, bool, bool, bool, bool, bool, bool]] = {
    "fgsm":          (False, True,  False, False, False, True,  False),
    "pgd":           (True,  False, True,  False, False, False, False),
    "pgd_l2":        (True,  False, True,  False, False, False, False),
    "gnm":           (True,  False, False, False, False, False, False),
    "rfgsm":         (False, True,  True,  False, False, False, False),
    "bim":           (True,  False, False, False, False, False, False),
    "bim_ll":        (True,  False, False, False, True,  False, False),
    "deepfool":      (True,  False, False, True,  False, False, False),
    "deepfool_linf": (True,  False, False, True,  False, False, False),
    "cw_l2":         (True,  False, False, True,  False, False, False),
    "noise":         (False, False, True,  False, False, False, False),
    "apgd":          (True,  False, True,  False, False, False, False),
    "apgd_l2":       (True,  False, True,  False, False, False, False),
    "apgd_t":        (True,  False, True,  False, True,  False, False),
    "apgd_t_l2":     (True,  False, True,  False, True,  False, False),
    "fab":           (True,  False, True,  True,  False, False, False),
    "fab_l2":        (True,  False, True,  True,  False, False, False),
    "fab_t":         (True,  False, True,  True,  True,  False, False),
    "fab_t_l2":      (True,  False, True,  True,  True,  False, False),
    "square":        (True,  False, True,  False, False, False, True),
    "square_l2":     (True,  False, True,  False, False, False, True),
    "autoattack":    (True,  False, True,  False, False, False, False),
}  # fmt: skip

ALL = sorted(attacks.list_attacks())


def test_the_table_covers_the_registry() -> None:
    # A new attack must be added to the table, i.e. its capabilities decided.
    assert set(EXPECTED) == set(ALL)
    assert CAPABILITIES == (
        "iterative",
        "single_step",
        "randomized",
        "minimal_perturbation",
        "targeted",
        "scaled_sign_step",
        "score_based",
    )


@pytest.mark.parametrize("name", ALL)
def test_declared_capabilities(name: str) -> None:
    cls = attacks.attack_class(name)
    expected = dict(zip(CAPABILITIES, EXPECTED[name], strict=True))
    assert cls.capabilities() == expected
    assert make_attack(name).capabilities() == expected
    for flag in CAPABILITIES:
        assert isinstance(getattr(cls, flag), bool), flag
    assert not (cls.iterative and cls.single_step)
    assert cls.minimal_perturbation == issubclass(cls, MinimalPerturbationAttack)


def test_base_class_declares_nothing() -> None:
    assert not any(Attack.capabilities().values())


@pytest.mark.parametrize("name", [n for n in ALL if EXPECTED[n][5]])
def test_scaled_sign_step_holds(name: str, tiny_model, tiny_batch) -> None:
    """``x_adv(ε) = clip(x + ε·s)`` with ``s`` read off the output at ε = 1."""
    x, y = tiny_batch
    s = (make_attack(name, eps=1.0)(tiny_model, x, y) - x).sign()
    for eps in (0.01, 0.1, 0.3):
        expected = (x + eps * s).clamp(0.0, 1.0)
        torch.testing.assert_close(make_attack(name, eps=eps)(tiny_model, x, y), expected)


#: FAB draws only the starts of its restarts (a first run starts at the input), and on
#: the tiny model a restart never beats the first run, so the output does not show the
#: draws: tests/attacks/test_fab.py checks that the starts depend on the seed.
SEED_SHOWN_ELSEWHERE = {"fab", "fab_l2", "fab_t", "fab_t_l2"}


@pytest.mark.parametrize("name", sorted(set(ALL) - SEED_SHOWN_ELSEWHERE))
def test_randomized_flag_matches_seed_dependence(name: str, tiny_model, tiny_batch) -> None:
    """Undeclared attacks ignore the seed; declared ones depend on it in some setting."""
    x, y = tiny_batch
    settings: dict[str, object] = {"random_start": True} if name in ("pgd", "pgd_l2") else {}
    if name in ("apgd_t", "autoattack"):  # sign steps of 2ε reach the same corners from
        settings = {"steps": 2}  # any start in 20 steps here; in 2 not yet
    a = make_attack(name, seed=0, **settings)(tiny_model, x, y)
    b = make_attack(name, seed=1, **settings)(tiny_model, x, y)
    assert torch.equal(a, b) != EXPECTED[name][2]
