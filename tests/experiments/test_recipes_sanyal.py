"""The Sanyal et al. recipe: its plan follows the paper where the CPU allows, every final
model's measurements match recomputations, its claims on made-up measurements, and a
tiny end-to-end reproduction with all seven methods."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from robustcompress.experiments.recipes import MANIFEST_FILE, MaskingCheck, Profile, reproduce
from robustcompress.papers.sanyal import RECIPE
from robustcompress.papers.sanyal.evaluation import FinalCheck, measure_model, rank_at
from robustcompress.papers.sanyal.recipe import LrSettings, schedule
from robustcompress.papers.sanyal.report import claim_specs, lookup, tables
from robustcompress.reporting.claims import evaluate_claim
from robustcompress.reporting.loading import ReportSource

pytest.importorskip("sklearn")

TINY_CHECK = FinalCheck(
    train_size=128,
    test_size=64,
    attack_size=16,
    rho_size=8,
    rep_size=32,
    radii=(8, 64),
    steps=(3,),
    transfer_steps=(3,),
    noise=(0.5, 1.0),
    pca=(5,),
)


def test_full_plan_follows_the_paper_where_the_cpu_allows() -> None:
    from robustcompress.papers.sanyal.recipe import plan

    planned = plan(RECIPE.profile("full"), [0, 1, 2])
    assert len(planned) == 21
    assert {p.method for p in planned} == {
        "n-lr",
        "1-lr",
        "2-lr",
        "nuclear",
        "l1",
        "pruned",
        "sn",
    }
    by = {(p.method, p.seed): p for p in planned}
    natural = by[("n-lr", 0)].config
    assert natural.model.name == "resnet18"
    assert natural.model.kwargs == {"in_channels": 1, "mean": None, "std": None, "width": 8}
    opt = natural.optimizer
    assert (opt.lr, opt.momentum, opt.weight_decay, opt.batch_size) == (0.1, 0.0, 0.0, 128)
    assert opt.epochs == 12 and opt.schedule.milestones == [5, 9]  # 150/350, 250/350
    assert natural.extras == [] and natural.data.limit == 10000
    # the accuracy-collapse rule is off for every run (recipe.NO_ACCURACY_RULE)
    assert {p.config.training.divergence.min_eval_size for p in planned} == {10**9}
    two = by[("2-lr", 1)].config.extras[0]
    assert two.name == "lr_layer"
    settings = two.settings()
    assert settings["layers"] == ["layers.5", "pool"] and settings["rank"] == [50, 10]
    assert settings["start_epoch"] == 2 and settings["every"] == 10
    assert settings["exact_max"] == 1024  # the 1,568-wide stage-3 output goes to Nyström
    assert by[("1-lr", 0)].config.extras[0].settings()["layers"] == ["pool"]
    pruned = by[("pruned", 2)]
    assert pruned.starts_from is by[("n-lr", 2)]
    assert pruned.config.training.init_from == by[("n-lr", 2)].config.name
    assert pruned.config.optimizer.epochs == 3 and pruned.config.optimizer.lr == 0.01
    assert pruned.config.extras[0].settings()["rounds"] == 3
    assert by[("nuclear", 0)].config.regularizers["nuclear"].lam == 0.01
    assert by[("l1", 0)].config.regularizers["l1"].lam == 0.001
    sn = by[("sn", 0)].config.extras[0]
    assert sn.name == "spectral_normalization" and sn.settings()["target"] == 1.0
    # every run from scratch comes before the pruning runs that need them
    first_pruned = min(i for i, p in enumerate(planned) if p.method == "pruned")
    assert all(p.method != "n-lr" for p in planned[first_pruned:])


def test_paper_cifar_is_refused_in_one_line_without_a_gpu_or_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robustcompress.errors import ConfigError
    from robustcompress.papers.sanyal import recipe

    cifar = RECIPE.profile("paper-cifar")
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: ["no CUDA GPU"])
    with pytest.raises(ConfigError, match=r"needs a CUDA GPU .* this machine has no CUDA GPU"):
        recipe.plan(cifar, [0])
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: [])
    planned = recipe.plan(cifar, [0, 1, 2])
    assert len(planned) == 21
    config = next(p.config for p in planned if p.method == "2-lr")
    assert config.device == "cuda" and config.data.dataset == "cifar10"
    assert config.model.kwargs == {"in_channels": 3, "mean": None, "std": None}
    assert config.optimizer.epochs == 350 and config.optimizer.schedule.milestones == [150, 250]
    lr = config.extras[0].settings()
    assert lr["rank"] == [500, 100] and lr["start_epoch"] == 50


def test_rank_at_is_the_first_r_reaching_the_level() -> None:
    ratios = torch.tensor([0.5, 0.8, 0.9, 0.99, 1.0], dtype=torch.float64)
    assert rank_at(ratios, 0.9) == 3
    assert rank_at(ratios, 0.95) == 4
    assert rank_at(ratios, 0.1) == 1


def _tiny_model() -> torch.nn.Module:
    from robustcompress.models import create_model

    torch.manual_seed(0)
    return create_model("resnet18", width=2, in_channels=1, mean=None, std=None).eval()


def test_measurements_match_recomputations() -> None:
    from robustcompress.evaluation.representations import representations, variance_ratios

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g)
    model, source = _tiny_model(), _tiny_model()
    torch.manual_seed(1)
    for p in source.parameters():  # a different network to transfer from
        p.data.add_(0.1 * torch.randn_like(p))
    test = (x[:64], y[:64])
    out = measure_model(model, (x, y), test, TINY_CHECK, source=source, init_cushions=True)
    with torch.no_grad():
        expected = float((model(x[:64]).argmax(1) == y[:64]).float().mean())
    assert out["accuracy/test"] == pytest.approx(expected)
    ratios = variance_ratios(representations(model, "pool", x[:32]))
    assert out["variance/pool"] == pytest.approx(ratios.tolist()[:200])
    assert out["rank/pool/0.9"] == rank_at(ratios, 0.9)
    assert set(out) >= {
        "pgd/8/3",
        "pgd/64/3",
        "transfer/8/3",
        "noise/0.5",
        "noise/1",
        "hybrid/pool/all",
        "hybrid/pool/5",
        "hybrid/layers.5/5",
        "min_rho/bim",
        "min_rho/bim_ll",
        "min_rho/deepfool",
    }
    assert out["pgd/64/3"] <= out["accuracy/test"] + 1e-9 or out["accuracy/test"] == 0
    assert set(out["cushion"]) == set(out["cushion_init"])
    assert "fc" in out["cushion"] and "layers.6.conv1" in out["cushion"]
    for entry in out["cushion"].values():
        assert 0 < entry["quantiles"][0] <= entry["quantiles"][-1] <= 1
        assert sum(entry["log10_counts"]) == 32
    # a model that gets every input wrong has no minimum ρ, and says so instead of failing
    with torch.no_grad():
        wrong = (model(x).argmax(1) + 1) % 10
    broken = measure_model(model, (x, wrong), (x[:64], wrong[:64]), TINY_CHECK)
    assert broken["accuracy/test"] == 0
    assert broken["min_rho/deepfool"]["n"] == 0 and math.isnan(broken["min_rho/bim"]["rho"])


def _row(method: str, seed: int, **values: Any) -> dict[str, Any]:
    return {"model": "resnet18", "method": method, "seed": seed, **values}


def _made_up(method: str, seed: int) -> dict[str, Any]:
    """LR better than N-LR and the weight-space methods on every measure; seeds differ."""
    order = ("n-lr", "1-lr", "2-lr", "nuclear", "l1", "pruned", "sn")
    step = (seed * (3 + order.index(method))) % 7  # paired differences vary by seed
    jitter = 0.002 * step
    good = 1.0 if method in ("1-lr", "2-lr") else 0.0
    return _row(
        method,
        seed,
        **{
            "accuracy/test": 0.90 - 0.002 * good + jitter / 4,
            "rank/pool/0.9": 12 - 6 * good + step,
            "rank/pool/0.99": 40 - 20 * good + step,
            "rank/layers.5/0.9": 80 - 30 * good + step,
            "rank/layers.5/0.99": 400 - 150 * good + step,
            "pgd/8/20": 0.1 + 0.2 * good + jitter,
            "pgd/16/20": 0.01 + 0.05 * good + jitter,
            "transfer/8/20": 0.5 + 0.1 * good + jitter,
            "min_rho/bim": {"rho": 0.1 + 0.05 * good + jitter},
            "min_rho/bim_ll": {"rho": 0.2 + 0.05 * good + jitter},
            "min_rho/deepfool": {"rho": 0.05 + 0.02 * good + jitter},
            **{f"noise/{p:g}": 0.6 - 0.2 * p + 0.1 * good + jitter for p in (0.4, 0.6, 0.8, 1.0)},
            "cushion": {
                name: {"quantiles": [0, 0, 0.1 + 0.05 * good + jitter, 0, 0]}
                for name in ("fc", "layers.6.conv1", "layers.6.shortcut.0")
            },
            **{
                f"hybrid/{p}/{k}": 0.7 + 0.1 * good + jitter
                for p in ("pool", "layers.5")
                for k in (10, 5)
            },
            **{
                f"recovered/{p}/white-box": {"share": 0.05 + 0.3 * good + jitter}
                for p in ("pool", "layers.5")
            },
        },
    )


def _source(final: list[dict[str, Any]]) -> ReportSource:
    return ReportSource(
        kind="reproduction", directory=Path("."), title="t", runs=[], manifest={"final": final}
    )


def test_claims_on_made_up_measurements() -> None:
    methods = ("n-lr", "1-lr", "2-lr", "nuclear", "l1", "pruned", "sn")
    final = [_made_up(m, seed) for seed in range(8) for m in methods]
    source = _source(final)
    values = lookup(source, ["resnet18"])
    verdicts = {s.key: evaluate_claim(s, values) for s in claim_specs(source, ["resnet18"])}
    assert set(verdicts) == {
        "effective-rank",
        "clean-accuracy",
        "robust-vs-nlr",
        "robust-vs-weight-space",
        "noise",
        "cushions",
        "pca",
        "hybrid-recovers",
    }
    for key, result in verdicts.items():
        assert result.verdict == "supported", (key, result.summary)
        assert not result.missing, key
    # 2-LR is tested at both positions, 1-LR at its one; 4 weight-space baselines each
    assert len(verdicts["effective-rank"].evidence) == 2 + 4
    assert len(verdicts["robust-vs-weight-space"].evidence) == 2 * 4
    # non-inferiority: N-LR at its plain accuracy, the LR model plus one point
    acc = values[("resnet18", "n-lr", "accuracy/test.plus_tolerance")]
    assert acc[0] == pytest.approx(final[0]["accuracy/test"])
    # an LR model two points below N-LR fails the clean-accuracy claim
    for row in final:
        if row["method"] == "1-lr":
            row["accuracy/test"] -= 0.02
    values = lookup(source, ["resnet18"])
    spec = next(s for s in claim_specs(source, ["resnet18"]) if s.key == "clean-accuracy")
    assert evaluate_claim(spec, values).verdict != "supported"

    # a model at chance drops out of every claim, and the tables mark it
    broken = next(r for r in final if r["method"] == "2-lr" and r["seed"] == 7)
    broken["accuracy/test"] = 0.1
    values = lookup(source, ["resnet18"])
    assert sorted(values[("resnet18", "2-lr", "pgd/8/20")]) == list(range(7))
    summary = next(t for t in tables(source, "resnet18") if t.key.endswith("summary"))
    assert "(seed 7)" in summary.caption
    # its numbers stay out of the table's means too (PGD-20 column: the 7 working seeds)
    column = summary.columns.index("PGD-20 accuracy, 8/255")
    two = next(row for row in summary.rows if row[0].lower().startswith("2-lr"))
    working = [r["pgd/8/20"] for r in final if r["method"] == "2-lr" and r["seed"] != 7]
    assert two[column].startswith(f"{sum(working) / len(working):.3f} ±")
    assert [row[0].endswith("†") for row in summary.rows] == [m == "2-lr" for m in methods]


TINY = Profile(
    name="test",
    description="tiny: ResNet-18 width 2 on 128 Fashion-MNIST images, 2 epochs",
    seeds=2,
    settings={
        "resnet18": schedule(
            128,
            2,
            1,
            check=TINY_CHECK,
            width=2,
            lr=LrSettings(rank_pool=4, rank_stage3=6, nystrom_runs=2, exact_max=100),
        )
    },
    masking=MaskingCheck(size=8, eps=0.1),
)


@pytest.mark.slow
def test_tiny_reproduction_measures_all_seven_methods(tmp_path: Path) -> None:
    from robustcompress.reporting.report import build_report

    result = reproduce(RECIPE, TINY, runs_dir=tmp_path / "runs", log=lambda _: None)
    assert not result.errors
    manifest = json.loads((result.directory / MANIFEST_FILE).read_text())
    rows = {(r["method"], r["seed"]): r for r in manifest["final"]}
    assert {m for m, _ in rows} == {"n-lr", "1-lr", "2-lr", "nuclear", "l1", "pruned", "sn"}
    # transfer attacks come from the other seed's N-LR model
    assert rows[("1-lr", 0)]["transfer_from"] == 1 and rows[("1-lr", 1)]["transfer_from"] == 0
    assert "cushion_init" in rows[("n-lr", 0)] and "cushion_init" not in rows[("2-lr", 0)]
    text = (result.directory / rows[("2-lr", 0)]["run_dir"] / "log.txt").read_text()
    assert "layers.5 (m = 392, r = 6, nystrom)" in text and "pool (m = 16, r = 4, svd)" in text
    report = build_report(result.directory)
    assert report.exists()
