"""The Guo et al. 2018 recipe: its grid against the paper, the measurements of every kept
model (r2 on an affine model with known margins), the report's claims on made-up
measurements, and a tiny end-to-end reproduction that is reused on a second call."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustcompress.experiments.recipes import MANIFEST_FILE, MaskingCheck, Profile, reproduce
from robustcompress.models import create_model
from robustcompress.papers.guo2018 import RECIPE
from robustcompress.papers.guo2018.evaluation import SnapshotCheck, _r2, weight_sparsity
from robustcompress.papers.guo2018.recipe import (
    ACTIVATION_LAYER,
    CAFFE_LR,
    FRACTION,
    RETRAIN_LIMIT,
    caffe_lr,
    plan,
    schedule,
)
from robustcompress.papers.guo2018.report import accuracy_range, claim_specs, round_name
from robustcompress.reporting.claims import evaluate_claim
from robustcompress.reporting.loading import ReportSource, load_source
from robustcompress.reporting.report import make_report


def test_full_grid_follows_the_paper() -> None:
    full = RECIPE.profile("full")
    planned = plan(full, list(range(full.seeds)))
    by = {(p.model, p.method, p.seed): p for p in planned}
    seeds = {m: len({p.seed for p in planned if p.model == m}) for m in full.settings}
    assert seeds == {
        "logistic_regression": 5,
        "softmax_regression": 5,
        "lenet300100": 5,
        "lenet5": 3,
    }
    for model in full.settings:
        dense = by[model, "dense", 0].config
        pruned = by[model, "pruned", 0]
        control = by[model, "continued", 0]
        assert dense.training.init_from is None and dense.data.limit is None
        assert pruned.starts_from is not None and pruned.starts_from.method == "dense"
        [extra] = pruned.config.extras
        assert extra.name == "progressive_pruning"
        assert extra.settings() == {
            "rounds": 16,
            "fraction": FRACTION,
            "epochs_per_round": 1,
        }
        assert pruned.config.optimizer.epochs == control.config.optimizer.epochs == 16
        assert pruned.config.data.limit == control.config.data.limit == RETRAIN_LIMIT
        assert [e.name for e in control.config.extras] == ["snapshots"]
        # the control differs from the pruning run only in the extra
        assert pruned.config.optimizer == control.config.optimizer
    # the LeNets: Caffe's solver; retraining at the reference's final learning rate
    lenet5 = by["lenet5", "dense", 0].config.optimizer
    assert (lenet5.lr, lenet5.momentum, lenet5.weight_decay, lenet5.batch_size) == (
        CAFFE_LR,
        0.9,
        5e-4,
        64,
    )
    assert (lenet5.schedule.name, lenet5.schedule.gamma, lenet5.schedule.power) == (
        "inv",
        1e-4,
        0.75,
    )
    retrain = by["lenet5", "pruned", 0].config.optimizer
    assert retrain.schedule.name == "none"
    assert retrain.lr == pytest.approx(caffe_lr(lenet5.epochs * 938))
    assert by["lenet300100", "dense", 0].config.optimizer.epochs * 938 == pytest.approx(
        50_000, abs=938
    )
    assert [e.name for e in by["logistic_regression", "dense", 0].config.extras] == []
    assert by["logistic_regression", "dense", 0].config.data.dataset == "mnist-1v7"


def test_weight_sparsity_counts_zeros_of_weights_only() -> None:
    model = create_model("lenet300100")
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.zero_()
                layer.bias.fill_(1.0)
    assert weight_sparsity(model) == 1.0
    with torch.no_grad():
        model[2].weight[0, :392] = 1.0  # half a row of the first layer
    total = 784 * 300 + 300 * 100 + 100 * 10
    assert weight_sparsity(model) == pytest.approx(1 - 392 / total)


@pytest.mark.parametrize("name", sorted(ACTIVATION_LAYER))
def test_activation_l1_penalises_the_relu_that_table_1_measures(name: str) -> None:
    """The penalised module is a ReLU, and its output is exactly the input of the last
    linear layer, whose zeros Table 1's sparsity (a) counts."""
    model = create_model(name)
    layer = dict(model.named_modules())[ACTIVATION_LAYER[name]]
    assert isinstance(layer, nn.ReLU)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: dict[str, torch.Tensor] = {}
    layer.register_forward_hook(lambda _m, _a, out: seen.__setitem__("relu", out))
    last.register_forward_pre_hook(lambda _m, args: seen.__setitem__("last", args[0]))
    model(torch.rand(3, 1, 28, 28))
    assert torch.equal(seen["relu"], seen["last"])


def test_caffe_lenet5_has_one_nonlinearity_after_the_first_linear_layer() -> None:
    """Caffe's LeNet-5 (the pruning papers' network): no ReLU after the convolutions."""
    kinds = [type(m).__name__ for m in create_model("lenet5")]
    assert kinds == [
        "Identity",
        "Conv2d",
        "MaxPool2d",
        "Conv2d",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]
    full = RECIPE.profile("full")
    configs = {(p.model, p.method): p.config for p in plan(full, [0])}
    assert {configs[m, "dense"].model.init for m in ("lenet5", "lenet300100")} == {"caffe_xavier"}
    assert configs["logistic_regression", "dense"].model.init == "torch_default"


class Affine(nn.Module):
    """z = wᵀx + b as the two logits (0, z), like ``logistic_regression``."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_r2_is_the_papers_eq5_on_an_affine_model_with_known_margins() -> None:
    from robustcompress import attacks

    torch.manual_seed(0)
    w = torch.randn(784, dtype=torch.float64) * 0.1
    model = Affine(w, 0.0)
    x = torch.full((5, 1, 28, 28), 0.5, dtype=torch.float64)
    # move each input along w to a chosen margin z_n = wᵀx_n (every step stays in the box)
    margins = torch.tensor([0.3, -0.2, 0.5, -0.4, 0.1], dtype=torch.float64)
    base = x.flatten(1) @ w
    x = x + ((margins - base)[:, None] * w / w.dot(w)).reshape(5, 1, 28, 28)
    assert bool(((x >= 0) & (x <= 1)).all())
    y = torch.tensor([1, 0, 1, 1, 0])  # the fourth is misclassified (z < 0, label 1)
    pred = model(x).argmax(dim=1)
    assert pred.tolist() == [1, 0, 1, 0, 1]
    # DeepFool on an affine model: one step to the boundary, (|z| + 1e-4)/‖w‖, times 1.02
    result = _r2(attacks.get("deepfool"), model, x, y, pred)
    distance = (margins.abs() + 1e-4) / w.norm() * 1.02
    correct = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    assert result["r2"] == pytest.approx(float((correct * distance).mean()), rel=1e-6)
    assert result["r2_correct"] == pytest.approx(float(distance[:3].mean()), rel=1e-6)
    assert (result["failed"], result["correct"]) == (0, 3)


def test_r2_leaves_out_inputs_the_attack_failed_on() -> None:
    w = torch.ones(784, dtype=torch.float64) / 784
    model = Affine(w, -0.5)
    x = torch.stack([torch.full((1, 28, 28), v, dtype=torch.float64) for v in (0.2, 0.8)])
    y = torch.tensor([0, 1])
    pred = model(x).argmax(dim=1)

    def unchanged(_model: nn.Module, inputs: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return inputs.clone()

    result = _r2(unchanged, model, x, y, pred)
    assert result["failed"] == 2 and math.isnan(result["r2"]) and math.isnan(result["r2_correct"])


# ------------------------------------------------------------------ report claims


def _source(rows: list[dict[str, Any]], runs: list[Any] | None = None) -> ReportSource:
    return ReportSource(
        kind="reproduction",
        directory=Path("."),
        title="t",
        runs=runs or [],
        manifest={"snapshots": rows},
    )


def _linear_rows(rise: float, accuracy_drop_at: int) -> list[dict[str, Any]]:
    rows = []
    for seed in range(5):
        for r in range(17):
            noise = 0.001 * ((seed * 7 + r * 3) % 5 - 2)
            rows.append(
                {
                    "model": "softmax_regression",
                    "method": "pruned",
                    "seed": seed,
                    "point": round_name(r),
                    "accuracy": 0.92 - (0.05 if r >= accuracy_drop_at else 0.0),
                    "r_inf/fgsm": 0.4 + rise * r + noise,
                    "r_inf/rfgsm": 0.5 + rise * r + noise,
                    "r2/deepfool": 1.0 - 0.01 * r + noise,
                    "r2/cw": 1.1 + noise,
                }
            )
    return rows


def test_accuracy_range_ends_before_the_first_round_that_loses_a_point() -> None:
    source = _source(_linear_rows(0.01, accuracy_drop_at=6))
    from robustcompress.papers.guo2018.report import snapshot_rows

    rows = snapshot_rows(source, "softmax_regression", "pruned")
    assert accuracy_range(rows) == 5


def test_linear_claims_on_made_up_measurements() -> None:
    source = _source(_linear_rows(0.01, accuracy_drop_at=6))
    from robustcompress.papers.guo2018.report import _lookup

    lookup = _lookup(source)
    specs = {s.key: s for s in claim_specs(source, lookup)}
    rinf = specs["linear-rinf"]
    # rounds 1, 2, 4 are within the accuracy range (R = 5); round 8 is not
    assert sorted({c.other for c in rinf.comparisons}) == ["round-01", "round-02", "round-04"]
    result = evaluate_claim(rinf, lookup)
    assert result.verdict == "supported"
    r2 = evaluate_claim(specs["linear-r2"], lookup)
    verdicts = {(e.metric, e.other): e.verdict for e in r2.evidence}
    assert verdicts["r2/deepfool", "round-04"] == "supported"  # falls
    assert verdicts["r2/cw", "round-04"] == "inconclusive"  # level
    # r∞ that does not move: nothing is supported
    flat = _source(_linear_rows(0.0, accuracy_drop_at=17))
    flat_lookup = _lookup(flat)
    flat_specs = {s.key: s for s in claim_specs(flat, flat_lookup)}
    assert evaluate_claim(flat_specs["linear-rinf"], flat_lookup).verdict != "supported"


def test_rise_against_the_control_compares_equal_retraining() -> None:
    """Round r is compared with the control after r epochs (same retraining, no
    pruning): a rise that the retraining alone also gives is not the pruning's."""
    from robustcompress.papers.guo2018.report import _lookup, epoch_name

    def control(shift: float) -> list[dict[str, Any]]:
        return [
            {
                "model": "softmax_regression",
                "method": "continued",
                "seed": seed,
                "point": epoch_name(epoch),
                "accuracy": 0.92,
                "r_inf/fgsm": 0.4 + shift + 0.001 * seed,
                "r_inf/rfgsm": 0.5 + shift + 0.001 * seed,
            }
            for seed in range(5)
            for epoch in (4, 16)
        ]

    for shift, verdict in ((0.0, "supported"), (0.04, "inconclusive"), (0.1, "not supported")):
        source = _source(_linear_rows(0.01, accuracy_drop_at=6) + control(shift))
        lookup = _lookup(source)
        spec = {s.key: s for s in claim_specs(source, lookup)}["rise-vs-control"]
        # round 4 only: round 16 is past the accuracy range, r2 is not claimed to rise
        assert [(c.baseline, c.other, c.metric) for c in spec.comparisons] == [
            ("epoch-004", "round-04", "r_inf/fgsm"),
            ("epoch-004", "round-04", "r_inf/rfgsm"),
        ]
        assert evaluate_claim(spec, lookup).verdict == verdict


# ------------------------------------------------------------------ end to end

TINY_CHECK = SnapshotCheck(
    linf_size=64,
    l2_size=16,
    cw_size=8,
    cw_steps=5,
    cw_search_steps=1,
    clever_size=2,
    clever_rounds=(0, 1, 2),
    clever_batches=2,
    clever_samples=8,
    control_epochs=(1, 2),
)

TINY = Profile(
    name="test",
    description="tiny: the binary linear model and LeNet-300-100, 2 rounds",
    seeds=1,
    settings={
        "logistic_regression": schedule(256, 1, 2, 64, evaluation=TINY_CHECK, retrain_limit=128),
        "lenet300100": schedule(
            256,
            1,
            2,
            64,
            activation=(1e-4,),
            activation_epochs=1,
            evaluation=TINY_CHECK,
            retrain_limit=128,
        ),
    },
    masking=MaskingCheck(size=16, eps=0.1),
)


@pytest.mark.slow
def test_tiny_reproduction_measures_every_kept_model_and_reuses_them(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    lines: list[str] = []
    first = reproduce(RECIPE, TINY, runs_dir=runs_dir, log=lines.append)
    assert not first.errors
    manifest = json.loads((first.directory / MANIFEST_FILE).read_text())
    rows = manifest["snapshots"]
    points = {(r["model"], r["method"], r["point"]) for r in rows}
    for model in ("logistic_regression", "lenet300100"):
        for r in range(3):
            assert (model, "pruned", f"round-{r:02d}") in points
        assert {(model, "continued", "epoch-001"), (model, "continued", "epoch-002")} <= points
    assert ("lenet300100", "act-l1-0.0001", "final") in points
    pruned = {
        r["point"]: r for r in rows if r["method"] == "pruned" and r["model"] == "lenet300100"
    }
    for r in range(3):
        assert pruned[f"round-{r:02d}"]["weight_sparsity"] == pytest.approx(
            1 - (2 / 3) ** r, abs=0.002
        )
        assert pruned[f"round-{r:02d}"]["n"] == 64 and "clever/l2" in pruned[f"round-{r:02d}"]
    control = [r for r in rows if r["method"] == "continued"]
    assert all(r["weight_sparsity"] == 0 for r in control)
    for row in rows:
        assert 0 <= row["r_inf/fgsm"] <= 1 and 0 <= row["r_inf/rfgsm"] <= 1
        assert row["n/deepfool"] == 16 and row["n/cw"] == 8
    # round 0 is the dense reference: its accuracy is the dense run's own
    from robustcompress.data import load_dataset
    from robustcompress.training import load_model

    dense = next(
        r for r in manifest["runs"] if r["model"] == "lenet300100" and r["method"] == "dense"
    )
    model = load_model(first.directory / dense["run_dir"])
    test = load_dataset("mnist", "test", limit=64, seed=0)
    with torch.no_grad():
        accuracy = float((model(test.images).argmax(1) == test.labels).double().mean())
    assert pruned["round-00"]["accuracy"] == pytest.approx(accuracy)
    # a second call measures nothing again
    lines.clear()
    second = reproduce(RECIPE, TINY, runs_dir=runs_dir, log=lines.append)
    assert second.manifest["snapshots"] == rows
    assert not any("measuring" in line for line in lines)
    # the report: a sparsity figure per model, the curve tables, Table 1 and claims
    report = make_report(first.directory)
    keys = {f.key for f in report.figures}
    assert {"logistic_regression-sparsity", "lenet300100-sparsity"} <= keys
    tables = {t.key for t in report.plan.tables}
    assert {"lenet300100-curve", "lenet300100-clever", "lenet300100-table-1"} <= tables
    assert {c.spec.key for c in report.plan.claims} >= {"activation", "clever"}
    assert load_source(first.directory).manifest["snapshots"] == rows


def test_paper_cifar_is_refused_in_one_line_without_a_gpu_or_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robustcompress.errors import ConfigError
    from robustcompress.papers.guo2018 import recipe

    cifar = RECIPE.profile("paper-cifar")
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: ["no CUDA GPU"])
    with pytest.raises(ConfigError, match=r"needs a CUDA GPU .* this machine has no CUDA GPU"):
        plan(cifar, [0])
    monkeypatch.setattr(recipe, "paper_cifar_missing", lambda: [])
    planned = plan(cifar, list(range(cifar.seeds)))
    assert {p.model for p in planned} == {"vgg_like", "resnet32"} and len(planned) == 60
    pruned = {p.model: p.config for p in planned if p.method == "pruned" and p.seed == 0}
    # the first and last layers stay dense (§4.2)
    assert pruned["resnet32"].extras[0].settings()["weights"] == list(range(2, 34))
    assert pruned["vgg_like"].extras[0].settings()["weights"] == list(range(2, 14))
    assert all(p.config.device == "cuda" for p in planned)


def test_paper_cifar_names_what_this_machine_lacks() -> None:
    from robustcompress.experiments.recipes import paper_cifar_missing

    missing = paper_cifar_missing()
    assert ("no CUDA GPU" in missing) == (not torch.cuda.is_available())
