"""Streaming evaluation: closed-form curves, reuse across ε, batching, records, errors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustcompress import attacks
from robustcompress.cli.output import to_jsonable
from robustcompress.data import ArrayDataset, make_loader
from robustcompress.errors import AttackError, ConfigError, DataError
from robustcompress.evaluation import evaluate, fooling_ratio, fooling_ratio_of
from robustcompress.evaluation.metrics import perturbation_norms

Batch = tuple[torch.Tensor, torch.Tensor]


def _fgsm_critical_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact smallest ε at which FGSM fools an affine classifier (inf if never, no clipping).

    Along ``x + ε·s`` with ``s = sign(∇_x J) = sign(Aᵀ(p − e_y))`` the margins to class j
    are ``m_j + ε·(a_y − a_j)·s``; the decision flips at the first zero crossing.
    """
    weight = model[1].weight.detach()
    logits = model(x).detach()
    p = logits.softmax(dim=1)
    s = ((p - nn.functional.one_hot(y, 5).double()) @ weight).sign()  # n×d
    margins = logits.gather(1, y[:, None]) - logits  # n×K, m_j
    slopes = ((weight[y][:, None, :] - weight[None, :, :]) * s[:, None, :]).sum(dim=2)
    crossing = torch.where(slopes < 0, margins / -slopes, torch.full_like(margins, math.inf))
    return crossing.scatter(1, y[:, None], math.inf).amin(dim=1)


def test_fgsm_curve_on_affine_model_matches_closed_form(affine: tuple[nn.Module, ...]) -> None:
    model, x, y = affine
    grid = np.linspace(0.0, 0.1, 101)
    record = evaluate(model, (x, y), "fgsm", eps=grid, batch_size=16)
    exact = _fgsm_critical_eps(model, x, y).numpy()
    found = record.smallest_fooling_eps("fgsm")
    inside = exact < 0.1 - 1e-9
    assert inside.sum() >= 10  # the grid covers a good share of crossings
    # The grid answer is the first grid point at or after the exact crossing.
    assert np.all(found[inside] >= exact[inside] - 1e-9)
    assert np.all(found[inside] <= exact[inside] + 0.001 + 1e-9)
    assert np.all(np.isinf(found[exact > 0.1 + 1e-9]))


def test_fgsm_curve_is_monotone_on_affine_model(affine: tuple[nn.Module, ...]) -> None:
    model, x, y = affine
    eps = [0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1]
    record = evaluate(model, (x, y), "fgsm", eps=eps)
    rows = record.summary("fgsm")
    fr = [r["fooling_ratio"] for r in rows]
    acc = [r["adversarial_accuracy"] for r in rows]
    assert fr[0] == 0.0 and acc[0] == 1.0
    assert fr[-1] > 0.5
    assert all(a <= b for a, b in itertools.pairwise(fr))
    assert all(a >= b for a, b in itertools.pairwise(acc))
    # Once fooled, fooled at every larger ε (the margin is concave along the ray).
    fooled = record.attacks["fgsm"].pred_adv != record.pred_clean
    assert np.all(fooled[:-1] <= fooled[1:])
    flags = {f.name: f for f in record.masking}
    assert not flags["non_monotone_curve"].triggered


def test_fgsm_reuse_equals_running_the_attack_at_each_eps(
    small_model: nn.Module, small_batch: Batch
) -> None:
    x, y = small_batch
    eps = [0.0, 0.03, 0.1, 0.5]
    record = evaluate(small_model, (x, y), "fgsm", eps=eps, batch_size=16)
    curve = record.attacks["fgsm"]
    for i, e in enumerate(eps):
        x_adv = attacks.get("fgsm", eps=e)(small_model, x, y)
        with torch.no_grad():
            pred = small_model(x_adv).argmax(dim=1)
        assert np.array_equal(curve.pred_adv[i], pred.numpy())
        assert np.array_equal(curve.delta_linf[i], perturbation_norms(x, x_adv, "linf").numpy())
        assert np.array_equal(curve.delta_l2[i], perturbation_norms(x, x_adv, "l2").numpy())


def test_streaming_equals_one_batch(small_model: nn.Module, small_batch: Batch) -> None:
    x, y = small_batch
    todo = ["fgsm", attacks.get("pgd", steps=5, alpha=0.02)]
    whole = evaluate(small_model, (x, y), todo, eps=[0.05, 0.1], batch_size=len(x))
    dataset = ArrayDataset(x, y, name="toy", split="test", classes=[str(i) for i in range(10)])
    loaders = [
        (x, y),
        dataset,
        make_loader(dataset, 7, shuffle=False),
        DataLoader(TensorDataset(x, y), batch_size=9),
    ]
    for data in loaders:
        streamed = evaluate(small_model, data, todo, eps=[0.05, 0.1], batch_size=6)
        assert np.array_equal(streamed.labels, whole.labels)
        assert np.array_equal(streamed.pred_clean, whole.pred_clean)
        for label in ("fgsm", "pgd"):
            a, b = streamed.attacks[label], whole.attacks[label]
            assert np.array_equal(a.pred_adv, b.pred_adv)
            np.testing.assert_allclose(a.delta_l2, b.delta_l2, rtol=1e-6, atol=1e-7)
            assert (
                streamed.summary(label)[1]["fooling_ratio"]
                == whole.summary(label)[1]["fooling_ratio"]
            )
        assert [f.value for f in streamed.masking] == [f.value for f in whole.masking]


def test_summary_rows_by_hand(small_model: nn.Module, small_batch: Batch) -> None:
    x, y = small_batch
    record = evaluate(small_model, (x, y), "pgd", eps=0.1)
    row = record.summary("pgd")[0]
    curve = record.attacks["pgd"]
    correct = record.pred_clean == record.labels
    hit = correct & (curve.pred_adv[0] != record.pred_clean)
    assert row["eps"] == 0.1
    assert row["n_correct"] == correct.sum() == 30  # every fourth label was shifted
    assert row["n_fooled"] == hit.sum()
    assert row["fooling_ratio"] == pytest.approx(hit.sum() / correct.sum())
    assert row["adversarial_accuracy"] == pytest.approx(np.mean(curve.pred_adv[0] == y.numpy()))
    assert row["linf_median"] == pytest.approx(0.1, abs=1e-6)  # PGD ends on the ε-box
    assert row["l2_mean"] == pytest.approx(curve.delta_l2[0][hit].mean())
    assert row["linf_relative"] == pytest.approx(
        np.mean(curve.delta_linf[0][hit] / record.x_linf[hit])
    )
    assert record.fooling_ratio("pgd") == row["fooling_ratio"]
    assert record.adversarial_accuracy("pgd", 0.1) == row["adversarial_accuracy"]


def test_default_eps_is_each_attacks_own(small_model: nn.Module, small_batch: Batch) -> None:
    record = evaluate(small_model, small_batch, [attacks.get("fgsm", eps=0.07), "pgd"])
    assert record.attacks["fgsm"].eps == [0.07]
    assert record.attacks["pgd"].eps == [0.05]
    assert "eps" not in record.attacks["pgd"].settings


def test_minimal_attack_rows_restrict_the_budget(
    small_model: nn.Module, small_batch: Batch
) -> None:
    deepfool = attacks.get("deepfool", max_iter=20)
    eps = [0.1, 0.3, 1.0]
    record = evaluate(small_model, small_batch, deepfool, eps=eps, check_masking=False)
    curve = record.attacks["deepfool"]
    assert curve.kind == "minimal" and curve.eps == [None, *eps]
    fr = [record.fooling_ratio("deepfool", e) for e in curve.eps]
    assert fr[0] > 0.9  # unbounded DeepFool fools (almost) everything
    assert fr[1] <= fr[2] <= fr[3] <= fr[0]
    for i, e in enumerate(eps, start=1):
        assert np.all(curve.delta_l2[i] <= e)
        kept = curve.delta_l2[0] <= e
        assert np.array_equal(curve.pred_adv[i][kept], curve.pred_adv[0][kept])
        assert np.array_equal(curve.pred_adv[i][~kept], record.pred_clean[~kept])
    summary = record.attack_summary("deepfool")
    hit = (record.pred_clean == record.labels) & (curve.pred_adv[0] != record.pred_clean)
    expected = np.where(hit, curve.delta_l2[0], 0.0).mean()
    assert summary["expected_correct_distance"] == pytest.approx(expected)


def test_noise_has_one_budget_free_row(small_model: nn.Module, small_batch: Batch) -> None:
    noise = attacks.get("noise", variance=0.01, seed=3)
    first = evaluate(small_model, small_batch, noise, eps=[0.1, 0.2])
    second = evaluate(small_model, small_batch, noise)
    assert first.attacks["noise"].eps == [None]
    assert np.array_equal(first.attacks["noise"].pred_adv, second.attacks["noise"].pred_adv)
    assert 0.0 <= first.adversarial_accuracy("noise") <= 1.0


def test_two_settings_of_one_attack_need_labels(small_model: nn.Module, small_batch: Batch) -> None:
    with pytest.raises(ConfigError, match="given twice"):
        evaluate(small_model, small_batch, ["pgd", attacks.get("pgd", steps=3)])
    record = evaluate(
        small_model,
        small_batch,
        {"pgd3": attacks.get("pgd", steps=3), "pgd10": attacks.get("pgd", steps=10)},
        eps=0.1,
    )
    assert set(record.attacks) == {"pgd3", "pgd10"}
    assert record.fooling_ratio("pgd10") >= record.fooling_ratio("pgd3") - 0.05


def test_record_to_dict_is_json(small_model: nn.Module, small_batch: Batch) -> None:
    record = evaluate(small_model, small_batch, ["fgsm", "deepfool"], eps=[0.0, 0.1])
    full = json.loads(json.dumps(to_jsonable(record.to_dict())))
    assert full["n"] == 40
    assert len(full["per_sample"]["labels"]) == 40
    assert len(full["attacks"]["fgsm"]["per_sample"]["pred_adv"]) == 2
    assert full["attacks"]["fgsm"]["summary"][0]["fooling_ratio"] == 0.0
    assert {f["name"] for f in full["masking"]} == {
        "degenerate_gradients",
        "iterative_weaker_than_single_step",
        "black_box_stronger_than_white_box",
        "low_fooling_at_large_eps",
        "non_monotone_curve",
        "near_chance_accuracy",
    }
    brief = record.to_dict(per_sample=False)
    assert "per_sample" not in brief and "per_sample" not in brief["attacks"]["fgsm"]


def test_fooling_ratio_of_restores_the_model(small_model: nn.Module, small_batch: Batch) -> None:
    x, y = small_batch
    small_model.train()
    pgd = attacks.get("pgd", eps=0.1)
    value = fooling_ratio_of(small_model, x, y, pgd)
    assert small_model.training
    assert all(p.requires_grad for p in small_model.parameters())
    assert all(p.grad is None for p in small_model.parameters())
    record = evaluate(small_model, (x, y), pgd, check_masking=False)
    assert value == record.fooling_ratio("pgd")
    with torch.no_grad():
        small_model.eval()
        clean = small_model(x).argmax(dim=1)
        adv = small_model(pgd(small_model, x, y)).argmax(dim=1)
    assert value == fooling_ratio(clean, adv, y)


def test_model_mode_is_restored_after_evaluate(small_model: nn.Module, small_batch: Batch) -> None:
    small_model.train()
    evaluate(small_model, small_batch, "fgsm", device="cpu")
    assert small_model.training


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attacks": "nope"}, AttackError, "unknown attack"),
        ({"attacks": 3}, ConfigError, "attack names or Attack objects"),
        ({"attacks": []}, ConfigError, "no attacks"),
        ({"eps": -0.1}, ConfigError, "ε must be"),
        ({"eps": [0.1, math.nan]}, ConfigError, "ε must be"),
        ({"eps": []}, ConfigError, "empty"),
        ({"batch_size": 0}, ConfigError, "batch_size"),
        ({"data": []}, DataError, "no batches"),
        (
            {"data": TensorDataset(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))},
            DataError,
            "single samples",
        ),
        ({"data": 5}, ConfigError, "DataLoader"),
    ],
)
def test_errors(
    small_model: nn.Module, small_batch: Batch, kwargs: dict, error: type, match: str
) -> None:
    call = {"data": small_batch, "attacks": "fgsm", **kwargs}
    data, todo = call.pop("data"), call.pop("attacks")
    with pytest.raises(error, match=match):
        evaluate(small_model, data, todo, **call)


def test_unknown_label_in_record(small_model: nn.Module, small_batch: Batch) -> None:
    record = evaluate(small_model, small_batch, "fgsm", check_masking=False)
    with pytest.raises(ConfigError, match="no attack 'pgd'"):
        record.fooling_ratio("pgd")
    with pytest.raises(ConfigError, match="no row"):
        record.fooling_ratio("fgsm", 0.3)


def test_masking_flags_need_reference_runs(small_model: nn.Module, small_batch: Batch) -> None:
    from robustcompress.evaluation import masking_flags

    record = evaluate(small_model, small_batch, "fgsm", check_masking=False)
    assert record.masking == [] and record.references == {}
    with pytest.raises(ConfigError, match="check_masking=True"):
        masking_flags(record)
