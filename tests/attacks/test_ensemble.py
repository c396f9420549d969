"""The AutoAttack-style ensemble: stages in order on the still-robust inputs, worst case."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.attacks import Attack, run_ensemble
from robustcompress.attacks.ensemble import CLEAN
from robustcompress.errors import AttackError


@dataclass(kw_only=True)
class _Scripted(Attack):
    """Moves chosen inputs (by their first pixel's value) to a point the model misclassifies."""

    name = "scripted"
    breaks: tuple[float, ...] = ()

    def run(self, model, x, y, generator):  # type: ignore[override]
        self.seen = x[:, 0, 0, 0].tolist()
        out = x.clone()
        hit = torch.tensor([round(v, 3) in self.breaks for v in self.seen], dtype=torch.bool)
        out[hit, 0, 0, 1] = 1.0  # the toy model reads pixel (0, 1) as "wrong"
        return out


class _Toy(nn.Module):
    """Class 0 unless pixel (0, 1) is 1 (then class 1); the label's input id is pixel (0, 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wrong = x[:, 0, 0, 1]
        return torch.stack([1 - wrong, wrong, torch.zeros_like(wrong)], dim=1)


def test_stages_see_only_the_still_robust_inputs() -> None:
    ids = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    x = torch.zeros(5, 1, 2, 2)
    x[:, 0, 0, 0] = ids
    x[4, 0, 0, 1] = 1.0  # misclassified before any attack
    y = torch.zeros(5, dtype=torch.long)
    first = _Scripted(breaks=(0.1, 0.3))
    second = _Scripted(breaks=(0.2,))
    result = run_ensemble(_Toy(), x, y, [("first", first), ("second", second)])
    assert first.seen == pytest.approx([0.1, 0.2, 0.3, 0.4])  # not the misclassified one
    assert second.seen == pytest.approx([0.2, 0.4])
    assert result.broken_by == ("first", "second", "first", None, CLEAN)
    assert result.counts() == {CLEAN: 1, "first": 2, "second": 1, "robust": 1}
    assert result.robust_accuracy == 0.2 and result.clean_accuracy == 0.8
    assert result.fooling_ratio == 0.75  # 3 of the 4 correctly classified inputs
    assert result.robust.tolist() == [False, False, False, True, False]
    assert torch.equal(result.x_adv[3], x[3]) and result.x_adv[0, 0, 0, 1] == 1.0


def test_versions_and_norms_pick_their_stages() -> None:
    standard = attacks.get("autoattack", eps=0.1, seed=3, steps=7, queries=9).stages()
    assert [label for label, _ in standard] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [a.name for _, a in standard] == ["apgd", "apgd_t", "fab_t", "square"]
    assert all(a.eps == 0.1 and a.seed == 3 for _, a in standard)
    assert standard[0][1].steps == 7 and standard[1][1].target_classes == 9
    assert standard[2][1].steps == 7 and standard[2][1].target_classes == 9
    assert standard[3][1].queries == 9
    l2 = attacks.get("autoattack", norm="l2", eps=1.0).stages()
    assert [a.name for _, a in l2] == ["apgd_l2", "apgd_t_l2", "fab_t_l2", "square_l2"]
    rand = attacks.get("autoattack", version="rand").stages()
    assert [(label, a.loss) for label, a in rand] == [("apgd-ce", "ce"), ("apgd-dlr", "dlr")]


def test_worst_case_of_its_stages(trained_fcnn, mnist_batch) -> None:
    x, y = mnist_batch
    x, y = x[:100], y[:100]
    ensemble = attacks.get("autoattack", eps=0.05, seed=0, steps=20, queries=200)
    result = ensemble.evaluate(trained_fcnn, x, y)
    with torch.no_grad():
        adv_correct = trained_fcnn(result.x_adv).argmax(1) == y
    assert torch.equal(adv_correct, result.robust)  # x_adv shows what broke each input
    for _, stage in ensemble.stages():
        with torch.no_grad():
            alone = (trained_fcnn(stage(trained_fcnn, x, y)).argmax(1) == y).float().mean()
        assert result.robust_accuracy <= alone.item()
    assert torch.equal(ensemble(trained_fcnn, x, y), result.x_adv)  # seeded: reproducible
    assert (result.x_adv - x).abs().max() <= 0.05 + 1e-6


def test_custom_version_runs_the_listed_attacks_in_order() -> None:
    custom = attacks.get(
        "autoattack",
        version="custom",
        attacks="fgsm, apgd,square",
        eps=0.1,
        seed=4,
        steps=6,
        queries=30,
    )
    stages = custom.stages()
    assert [label for label, _ in stages] == ["fgsm", "apgd", "square"]
    fgsm, apgd, square = (a for _, a in stages)
    assert fgsm.eps == apgd.eps == square.eps == 0.1
    assert apgd.steps == 6 and apgd.seed == 4 and square.queries == 30 and square.seed == 4
    l2 = attacks.get("autoattack", version="custom", attacks="apgd_l2,square_l2", norm="l2")
    assert [a.name for _, a in l2.stages()] == ["apgd_l2", "square_l2"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"version": "custom"}, "needs attacks=NAME"),
        ({"attacks": "apgd"}, "only with version='custom'"),
        ({"version": "custom", "attacks": "apgd,nope"}, "unknown attack 'nope'"),
        ({"version": "custom", "attacks": "apgd,apgd"}, "apgd listed twice"),
        ({"version": "custom", "attacks": "apgd_l2"}, "'apgd_l2' is an l2 attack"),
        ({"version": "custom", "attacks": "deepfool"}, "'deepfool' cannot be a stage"),
        ({"version": "custom", "attacks": "autoattack"}, "'autoattack' cannot be a stage"),
        ({"version": "custom", "attacks": ["apgd"]}, "comma-separated attack names"),
        ({"version": "strong"}, "version"),
    ],
)
def test_bad_stage_lists_fail_with_the_fix(settings: dict, message: str) -> None:
    with pytest.raises(AttackError, match=message):
        attacks.get("autoattack", **settings)


def test_evaluation_records_which_stage_broke_each_input(trained_fcnn, mnist_batch) -> None:
    from robustcompress.evaluation import evaluate

    x, y = mnist_batch
    x, y = x[:60], y[:60]
    ensemble = attacks.get(
        "autoattack", version="custom", attacks="fgsm,apgd,square", seed=0, steps=10, queries=50
    )
    record = evaluate(
        trained_fcnn,
        (x, y),
        {"aa": ensemble},
        eps=[0.0, 0.05, 0.3],
        batch_size=25,
        check_masking=False,
    )
    rows = record.summary("aa")
    zero, mid, large = (row["broken_by"] for row in rows)
    correct = rows[0]["n_correct"]
    assert zero == {CLEAN: 60 - correct, "fgsm": 0, "apgd": 0, "square": 0, "robust": correct}
    for row, counts in zip(rows, (zero, mid, large), strict=True):
        assert sum(counts.values()) == 60 and counts[CLEAN] == 60 - correct
        assert counts["fgsm"] + counts["apgd"] + counts["square"] == row["n_fooled"]
    assert mid["apgd"] > 0 and mid["robust"] > large["robust"]  # the later stages do work
    # the same as the ensemble run batch by batch on its own (seeded, so reproducible)
    alone = [
        b
        for i in range(0, 60, 25)
        for b in ensemble.replace(eps=0.05)
        .evaluate(trained_fcnn, x[i : i + 25], y[i : i + 25])
        .broken_by
    ]
    assert record.attacks["aa"].broken_by[1] == alone
    assert record.to_dict()["attacks"]["aa"]["per_sample"]["broken_by"][1] == alone
    # other attacks carry no stage breakdown
    plain = evaluate(trained_fcnn, (x, y), "fgsm", eps=0.05, check_masking=False)
    assert plain.attacks["fgsm"].broken_by is None and "broken_by" not in plain.summary("fgsm")[0]
