"""The optimizer section's one mapping to torch (OptimizerConfig.build): SGD and Adam."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustcompress.experiments.config import OptimizerConfig
from robustcompress.training import read_metrics


def test_adam_config_builds_torch_adam_and_matches_a_hand_computed_step() -> None:
    config = OptimizerConfig(name="adam", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = config.build([p])
    assert type(optimizer) is torch.optim.Adam
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        0.01,
        (0.8, 0.99),
        1e-6,
        0.1,
    )
    p0 = p.detach().clone()
    grads = [torch.tensor([0.3, -0.1, 2.0]), torch.tensor([-0.2, 0.4, 1.0])]
    m = torch.zeros(3)
    v = torch.zeros(3)
    expected = p0.clone()
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        optimizer.step()
        g = g + 0.1 * expected  # L2 weight decay added to the gradient
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        m_hat, v_hat = m / (1 - 0.8**t), v / (1 - 0.99**t)
        expected = expected - 0.01 * m_hat / (v_hat.sqrt() + 1e-6)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_sgd_config_builds_the_same_sgd_as_before() -> None:
    p = nn.Parameter(torch.ones(2))
    sgd = OptimizerConfig(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4).build([p])
    assert type(sgd) is torch.optim.SGD
    reference = torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert sgd.param_groups[0].keys() == reference.param_groups[0].keys()
    assert all(
        sgd.param_groups[0][k] == reference.param_groups[0][k]
        for k in sgd.param_groups[0]
        if k != "params"
    )


def test_trainer_schedules_the_lr_of_the_optimizer_it_is_given(make_trainer: Any) -> None:
    trainer = make_trainer(name="adam", lr=0.01, momentum=0.0, schedule="step", gamma=0.5)
    assert type(trainer.optimizer) is torch.optim.Adam and trainer.base_lrs == [0.01]
    trainer.fit()
    lrs = {r["step"]: r["value"] for r in read_metrics(trainer.metrics_path) if r["metric"] == "lr"}
    assert lrs == {0: 0.01, 4: 0.005, 8: 0.0025}
    assert trainer.optimizer.param_groups[0]["lr"] == 0.005  # the last step's (epoch 2)
    assert "exp_avg" in trainer.optimizer.state[trainer.optimizer.param_groups[0]["params"][0]]
