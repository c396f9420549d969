"""The regularizer registry, and a contract test over every registered regularizer × model."""

from __future__ import annotations

import pytest
import torch

from robustcompress.errors import ConfigError, ModelError
from robustcompress.models import create_model, weight_matrices
from robustcompress.regularizers import (
    L1,
    REGULARIZERS,
    Joint,
    Nuclear,
    Regularizer,
    build_regularizer,
    list_regularizers,
)

# small variants keep the contract test fast (resnet18's full-width SVDs take seconds)
MODELS = {
    "fcnn": {},
    "cnn": {"channels": 8, "hidden": 16},
    "lenet300100": {},
    "lenet5": {},
    "resnet18": {"width": 4},
}


def test_registry_has_the_papers_regularizers() -> None:
    assert list_regularizers() == ["joint", "l1", "nuclear"]
    assert dict(REGULARIZERS) == {"l1": L1, "nuclear": Nuclear, "joint": Joint}


def test_build_regularizer() -> None:
    assert build_regularizer("l1", lam={"W1": 0.01}) == L1({"W1": 0.01})
    assert build_regularizer("nuclear", lam=0.1) == Nuclear(0.1)
    assert build_regularizer("joint", lam=0.2) == Joint(0.2)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown regularizer 'l2': choose one of joint, l1"):
        build_regularizer("l2", lam=0.1)


def test_bad_parameters_name_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"takes parameter\(s\) lam, got lamda"):
        build_regularizer("l1", lamda=0.1)
    with pytest.raises(ConfigError, match="got none"):
        build_regularizer("nuclear")


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("reg_name", sorted(REGULARIZERS))
def test_regularizer_contract(reg_name: str, model_name: str) -> None:
    """Each regularizer either rejects a model in ``check`` or behaves on it."""
    torch.manual_seed(0)
    model = create_model(model_name, **MODELS[model_name])
    reg: Regularizer = build_regularizer(reg_name, lam=0.01)
    names = [m.name for m in weight_matrices(model)]
    try:
        reg.check(model)
    except ModelError:
        assert reg_name == "joint" and any(m.kind == "conv" for m in weight_matrices(model))
        return
    assert list(reg.lambdas(model)) == names
    penalty = reg.penalty(model)
    assert penalty.dim() == 0 and torch.isfinite(penalty) and penalty.item() > 0
    penalty.backward()
    for m in weight_matrices(model):
        assert m.parameter.grad is not None and torch.isfinite(m.parameter.grad).all()
        assert m.parameter.grad.abs().sum() > 0, f"{reg_name}: {m.name} got a zero gradient"
    assert eval(repr(reg), {"L1": L1, "Nuclear": Nuclear, "Joint": Joint}) == reg
    if reg.has_prox:
        reg.prox(model, lr=0.01)
        assert reg.penalty(model).item() < penalty.item()
