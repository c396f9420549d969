"""The attack registry, settings validation and input checks."""

from __future__ import annotations

import pytest
import torch

from robustcompress import attacks
from robustcompress.attacks import FixedEpsilonAttack, MinimalPerturbationAttack
from robustcompress.errors import AttackError


def test_unknown_attack_lists_the_known_ones() -> None:
    with pytest.raises(AttackError, match=r"unknown attack 'fsgm'.*fgsm"):
        attacks.get("fsgm")


def test_unknown_setting_lists_the_allowed_ones() -> None:
    with pytest.raises(AttackError, match=r"no setting\(s\) epsilon.*eps"):
        attacks.get("fgsm", epsilon=0.1)


@pytest.mark.parametrize(
    "name", [n for n, s in attacks.list_attacks().items() if "eps" in s and s["eps"] is not None]
)
def test_negative_eps_is_rejected(name) -> None:
    with pytest.raises(AttackError, match="eps"):
        attacks.get(name, eps=-0.1)


def test_settings_are_keyword_only_and_repr_shows_them() -> None:
    with pytest.raises(TypeError):
        attacks.FGSM(0.1)  # type: ignore[misc]
    assert repr(attacks.get("fgsm", eps=0.1)) == "FGSM(seed=None, eps=0.1, clip=True)"


def test_list_attacks_gives_defaults_without_aliases() -> None:
    listed = attacks.list_attacks()
    assert "linf_pgd" not in listed
    assert listed["pgd"]["eps"] == 0.05 and listed["pgd"]["steps"] == 20
    assert listed["pgd"]["alpha"] == 0.005
    assert listed["gnm"]["steps"] == 5


def test_replace_revalidates() -> None:
    attack = attacks.get("pgd")
    assert attack.replace(eps=0.1).eps == 0.1
    with pytest.raises(AttackError, match="eps"):
        attack.replace(eps=-1.0)


def test_families() -> None:
    for name in ["fgsm", "pgd", "pgd_l2", "gnm", "rfgsm", "bim", "bim_ll"]:
        assert issubclass(attacks.attack_class(name), FixedEpsilonAttack)
    for name in ["deepfool", "deepfool_linf", "cw_l2"]:
        assert issubclass(attacks.attack_class(name), MinimalPerturbationAttack)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.full((2, 3), 1.5), torch.zeros(2, dtype=torch.long), r"\[0, 1\]"),
        (torch.rand(2, 3), torch.zeros(2), "int64"),
        (torch.rand(2, 3), torch.zeros(3, dtype=torch.long), "length 2"),
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), "floating"),
    ],
)
def test_invalid_inputs(x, y, message) -> None:
    model = torch.nn.Linear(3, 2)
    with pytest.raises(AttackError, match=message):
        attacks.get("fgsm")(model, x, y)


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(AttackError, match="seed"):
        attacks.get("noise", seed=-1)
