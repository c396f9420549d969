"""The ICLR 2020 AR-sweep recipe: a tiny end-to-end reproduction on Fashion-MNIST whose
measurements a recomputation matches, and its claims on made-up measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustcompress.experiments.recipes import MANIFEST_FILE, MaskingCheck, Profile, reproduce
from robustcompress.papers.iclr2020 import RECIPE
from robustcompress.papers.iclr2020.evaluation import FinalCheck
from robustcompress.papers.iclr2020.recipe import SN_TARGET, schedule, strength_eps
from robustcompress.papers.iclr2020.report import _lookup, claim_specs, sweep_table
from robustcompress.reporting.claims import evaluate_claim
from robustcompress.reporting.loading import ReportSource

TINY = Profile(
    name="test",
    description="tiny: the CNN on 256 Fashion-MNIST images, strengths 0 and 8, 2 epochs",
    seeds=1,
    settings={
        "cnn": schedule(
            256,
            2,
            64,
            scale=3.0,
            strengths=(8,),
            check=FinalCheck(train_size=256, test_size=128, attack_size=32, scale=3.0),
        )
    },
    masking=MaskingCheck(size=16, eps=0.1),
)


def test_strength_scale() -> None:
    assert strength_eps(8, 1.0) == 8 / 255
    assert strength_eps(16, 3.0) == pytest.approx(48 / 255)


@pytest.mark.slow
def test_tiny_sweep_measures_every_final_model(tmp_path: Path) -> None:
    result = reproduce(RECIPE, TINY, runs_dir=tmp_path / "runs", log=lambda _: None)
    assert not result.errors
    manifest = json.loads((result.directory / MANIFEST_FILE).read_text())
    rows = {r["method"]: r for r in manifest["final"]}
    assert set(rows) == {"ar-0", "ar-8", "sn"}
    trained = rows["ar-8"]
    assert trained["strength"] == 8.0
    assert trained["loss_gap"] == pytest.approx(trained["test_loss"] - trained["train_loss"])
    assert sum(trained["margin/test"]["counts"]) == 128
    assert set(trained) >= {"pgd/8", "sv_std/reshaped/W1", "sv_std/circular/W1"}
    # the natural model has no training strength: only the evaluation adversary
    assert "pgd/8" in rows["ar-0"] and not any(k.startswith("pgd/0") for k in rows["ar-0"])
    # the sn model's layers have operator norms at most SN_TARGET (up to the convergence
    # of its 50 power iterations per epoch); the natural model's exceed it somewhere
    norms = {m: operator_norms(result.directory / rows[m]["run_dir"]) for m in ("sn", "ar-0")}
    assert max(norms["sn"]) <= SN_TARGET * (1 + 1e-2)
    assert max(norms["ar-0"]) > SN_TARGET


def operator_norms(run_dir: Path) -> list[float]:
    """Power-iteration norms (300 iterations) of every layer's real operator."""
    import torch
    from torch import nn

    from robustcompress.structure.operators import power_iteration
    from robustcompress.structure.report import conv_input_sizes
    from robustcompress.training import load_model

    model = load_model(run_dir)
    sizes = conv_input_sizes(model, (1, 28, 28))
    out = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            generator = torch.Generator().manual_seed(0)
            sigma, _ = power_iteration(module, sizes.get(name), 300, generator=generator)
            out.append(sigma)
    return out


def _row(method: str, seed: int, **values: Any) -> dict[str, Any]:
    return {"model": "cnn", "method": method, "seed": seed, **values}


def test_claims_on_made_up_measurements() -> None:
    final = []
    for seed in range(5):
        for method, k in (("ar-0", 0), ("ar-8", 8)):
            noise = 0.001 * ((seed * 7 + k) % 5)
            final.append(
                _row(
                    method,
                    seed,
                    strength=float(k),
                    train_loss=0.01 + 0.01 * k + noise,
                    test_loss=0.5 - 0.005 * k + noise,
                    loss_gap=0.49 - 0.015 * k + noise,
                    train_error=0.0 + noise,
                    test_error=0.1 + 0.002 * k + noise,
                    error_gap=0.1 + 0.002 * k + noise,
                    **{
                        "margin/train": {"std": 5.0 - 0.1 * k + noise},
                        "margin/test": {"std": 5.0 - 0.1 * k + noise},
                        # reshaped: all three layers fall in seeds 0-2, two in 3-4;
                        # circular: one falls in seeds 0-2, none in 3-4
                        "sv_std/reshaped/W1": 1.0 - 0.01 * k,
                        "sv_std/reshaped/W2": 1.0 - 0.01 * k,
                        "sv_std/reshaped/W3": 1.0 + (0.01 if seed > 2 else -0.01) * k,
                        "sv_std/circular/W1": 1.0 + 0.01 * k,
                        "sv_std/circular/W2": 1.0 + 0.01 * k,
                        "sv_std/circular/W3": 1.0 + (0.01 if seed > 2 else -0.01) * k,
                    },
                )
            )
    source = ReportSource(
        kind="reproduction", directory=Path("."), title="t", runs=[], manifest={"final": final}
    )
    lookup = _lookup(source, ["cnn"])
    verdicts = {s.key: evaluate_claim(s, lookup) for s in claim_specs(source, ["cnn"])}
    for key in ("train-loss", "ge-gap", "test-error", "test-loss", "margins"):
        assert verdicts[key].verdict == "supported", key
    spectra = {e.metric: e for e in verdicts["singular-values"].evidence}
    # shares of falling layers: reshaped (1, 1, 1, 2/3, 2/3) > 1/2; circular (1/3 × 3, 0, 0)
    assert spectra["sv_std_fell/reshaped"].mean_other == pytest.approx((3 + 4 / 3) / 5)
    assert spectra["sv_std_fell/reshaped"].verdict == "supported"
    assert spectra["sv_std_fell/circular"].mean_other == pytest.approx(0.2)
    assert spectra["sv_std_fell/circular"].verdict == "not supported"
    assert verdicts["singular-values"].verdict == "inconclusive"  # one view each way

    # a model at chance (a broken run) drops out of every claim, and the table marks it
    broken = next(r for r in final if r["method"] == "ar-8" and r["seed"] == 4)
    broken.update(test_error=0.85, train_loss=2.3, loss_gap=0.0)
    lookup = _lookup(source, ["cnn"])
    assert sorted(lookup[("cnn", "ar-8", "train_loss")]) == [0, 1, 2, 3]
    assert sorted(lookup[("cnn", "ar-0", "train_loss")]) == [0, 1, 2, 3, 4]
    table = sweep_table(source, "cnn")
    assert table is not None and "(seed 4)" in table.caption
    assert [row[0].endswith("†") for row in table.rows] == [False, True]


def test_full_plan_follows_the_paper_where_the_cpu_allows() -> None:
    from robustcompress.papers.iclr2020.recipe import plan

    full = RECIPE.profile("full")
    planned = plan(full, [0, 1, 2])
    methods = {(p.model, p.method) for p in planned}
    assert methods == {
        *(("cnn", m) for m in ("ar-0", "ar-4", "ar-8", "ar-16", "sn")),
        *(("resnet20", m) for m in ("ar-0", "ar-4", "ar-8", "ar-16")),
    }
    assert len(planned) == 27
    by = {(p.model, p.method, p.seed): p.config for p in planned}
    strong = by[("resnet20", "ar-16", 0)]
    adv = strong.training.adversarial
    assert adv is not None and adv.eps == pytest.approx(0.2) and adv.random_start
    assert adv.steps == 10 and adv.alpha == pytest.approx(0.025)
    assert strong.optimizer.batch_size == 128 and strong.optimizer.lr == 0.05
    assert strong.optimizer.momentum == 0.9 and strong.optimizer.weight_decay == 0.0
    assert strong.optimizer.schedule.milestones == [4, 6]
    assert strong.model.kwargs == {"width": 8} and strong.data.limit == 4000
    assert strong.tracking.generalization.enabled
    # the PGD-trained runs come first: they are the longest
    assert planned[0].method == "ar-16"


def test_paper_cifar_is_refused_in_one_line_without_a_gpu_or_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robustcompress.errors import ConfigError
    from robustcompress.papers.iclr2020 import recipe

    cifar = RECIPE.profile("paper-cifar")
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: ["no CUDA GPU"])
    with pytest.raises(ConfigError, match=r"needs a CUDA GPU .* this machine has no CUDA GPU"):
        recipe.plan(cifar, [0])
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: [])
    planned = recipe.plan(cifar, [0, 1, 2])
    assert len(planned) == 15 and {p.model for p in planned} == {"resnet56"}
    config = planned[0].config
    assert config.device == "cuda" and config.model.kwargs == {"norm": "none"}
    assert config.optimizer.batch_size == 256 and config.optimizer.epochs == 200
    assert config.optimizer.schedule.milestones == [100, 150]
    assert config.training.adversarial is not None
    assert config.training.adversarial.eps == pytest.approx(16 / 255)
