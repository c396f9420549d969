"""The Langenberg et al. 2019 recipe: its grid against the paper, profiles, and a tiny
end-to-end reproduction that is reused on a second call."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from robustcompress.errors import ConfigError
from robustcompress.experiments.config import DEFAULT_TRACKED_ATTACKS
from robustcompress.experiments.recipes import (
    MANIFEST_FILE,
    EnsembleCheck,
    MaskingCheck,
    Profile,
    get_recipe,
    list_recipes,
    reproduce,
    seed_list,
)
from robustcompress.experiments.recipes.base import planned_sweep
from robustcompress.experiments.recipes.methods import Phase, track_every
from robustcompress.experiments.sweep import _levels
from robustcompress.papers.langenberg2019 import RECIPE
from robustcompress.papers.langenberg2019.recipe import PAPER_ACCURACY, plan, schedule
from robustcompress.papers.langenberg2019.report import claim_specs
from robustcompress.reporting.loading import load_source
from robustcompress.reporting.report import make_report

FCNN_IDS = [
    "natural",
    "continued",
    "fgsm",
    "pgd",
    "l1",
    "nuclear",
    "l1-nuclear",
    "l1-nuclear-0.03",
    "joint-l1",
]
CNN_IDS = [
    "natural",
    "continued",
    "fgsm",
    "pgd",
    "l1-nuclear-0",
    "l1-nuclear-0.05",
    "l1-nuclear-0.1",
    "l1-nuclear-0.5",
]


def _by_method(runs, model, seed=0):
    return {r.method: r for r in runs if r.model == model and r.seed == seed}


def test_registry_and_errors() -> None:
    assert list_recipes() == ["guo2018", "iclr2020", "langenberg2019", "sanyal"]
    assert get_recipe("langenberg2019") is RECIPE
    with pytest.raises(
        ConfigError,
        match=r"unknown recipe 'nope' \(available: guo2018, iclr2020, langenberg2019, sanyal\)",
    ):
        get_recipe("nope")
    with pytest.raises(
        ConfigError, match=r"unknown profile 'huge' \(choose from quick, full, paper\)"
    ):
        RECIPE.profile("huge")
    with pytest.raises(ConfigError, match="--seeds must be a positive number"):
        seed_list(RECIPE.profile("quick"), 0)


def test_grid_methods_groups_and_datasets() -> None:
    runs = plan(RECIPE.profile("full"), [0])
    assert len(runs) == len(FCNN_IDS) + len(CNN_IDS)
    assert sorted(_by_method(runs, "fcnn")) == sorted(FCNN_IDS)
    assert sorted(_by_method(runs, "cnn")) == sorted(CNN_IDS)
    for r in runs:
        expected = (
            "natural"
            if r.method == "natural"
            else "control"
            if r.method == "continued"
            else "adversarial"
            if r.method in ("fgsm", "pgd")
            else "regularized"
        )
        assert r.group == expected
        assert r.dataset == {"fcnn": "mnist", "cnn": "fashion-mnist"}[r.model]
        assert r.config.data.dataset == r.dataset and r.config.model.name == r.model
    # every method with a number in Tables 1-2 is planned
    for model, table in PAPER_ACCURACY.items():
        assert set(table) <= set(_by_method(runs, model))


def test_regularizer_lambdas_per_weight_matrix_are_the_papers() -> None:
    runs = plan(RECIPE.profile("full"), [0])

    def lams(run):
        return {name: reg.lam for name, reg in run.config.regularizers.items()}

    fcnn = _by_method(runs, "fcnn")
    assert lams(fcnn["l1"]) == {"l1": {"W1": 0.01}}
    assert lams(fcnn["nuclear"]) == {"nuclear": {"W1": 0.01}}
    assert lams(fcnn["l1-nuclear"]) == {"l1": {"W1": 0.01}, "nuclear": {"W1": 0.01}}
    assert lams(fcnn["l1-nuclear-0.03"]) == {"l1": {"W1": 0.01}, "nuclear": {"W1": 0.03}}
    assert lams(fcnn["joint-l1"]) == {"joint": 3e-4, "l1": {"W1": 0.01}}
    cnn = _by_method(runs, "cnn")
    for lam in (0.0, 0.05, 0.1, 0.5):
        assert lams(cnn[f"l1-nuclear-{lam:g}"]) == {
            "l1": {"W1": 0.01, "W2": 0.01},
            "nuclear": {"W2": lam},
        }
    for run in [*fcnn.values(), *cnn.values()]:
        if run.group != "regularized":
            assert run.config.regularizers == {}
        assert run.config.proximal is False


def test_fine_tuning_starts_from_the_natural_run_of_the_same_seed() -> None:
    runs = plan(RECIPE.profile("full"), [0, 1, 2])
    assert len(runs) == 3 * (len(FCNN_IDS) + len(CNN_IDS))
    assert len({r.config.name for r in runs}) == len(runs)
    for r in runs:
        assert r.config.seed == r.seed
        if r.method == "natural":
            assert r.starts_from is None and r.config.training.init_from is None
            assert r.config.training.mode == "natural"
        else:
            natural = _by_method(runs, r.model, r.seed)["natural"]
            assert r.starts_from is natural
            assert r.config.training.init_from == natural.config.name
    fcnn = _by_method(runs, "fcnn", seed=2)
    assert fcnn["fgsm"].config.training.adversarial.attack_params() == {"eps": 0.05}
    pgd = fcnn["pgd"].config.training.adversarial
    assert (pgd.attack, pgd.eps, pgd.mix) == ("pgd", 0.05, 0.0)
    # the sweep machinery runs every natural model before any fine-tuning
    levels = _levels(planned_sweep("t", runs))
    assert [len(level) for level in levels] == [6, len(runs) - 6]
    assert {p.variant for p in levels[0]} == {"cnn-natural", "fcnn-natural"}


def test_full_profile_tracks_the_papers_quantities() -> None:
    profile = RECIPE.profile("full")
    assert profile.seeds == 3 and seed_list(profile, None) == [0, 1, 2]
    assert seed_list(profile, 2) == [0, 1]
    for r in plan(profile, [0]):
        tracking = r.config.tracking
        assert r.config.data.limit is None  # full data sets
        assert tracking.attacks == DEFAULT_TRACKED_ATTACKS
        assert tracking.structure == ["effective_rank", "effective_sparsity"]
        assert tracking.mutual_information.enabled is (r.model == "fcnn")
        if r.model == "fcnn":
            assert tracking.mutual_information.noise_variance == 0.1
        assert r.config.optimizer.momentum == 0.9
        assert r.config.optimizer.batch_size == {"fcnn": 128, "cnn": 64}[r.model]


def test_full_and_paper_profiles_run_autoattack_at_its_own_budget() -> None:
    """AutoAttack's standard version at its budget (100 steps, 5,000 queries) with its
    four stages, on every model of the full and paper profiles; the quick one a smoke test."""
    for name in ("full", "paper"):
        check = RECIPE.profile(name).ensemble
        assert check is not None and check.version == "standard"
        assert (check.steps, check.queries, check.eps, check.size) == (100, 5000, 0.05, 200)
        assert "apgd-ce+apgd-t+fab-t+square" in check.tag()
    quick = RECIPE.profile("quick").ensemble
    assert quick is not None and quick.steps < 100 and quick.queries < 5000


def test_track_every_closed_form() -> None:
    # 60000 / 128 -> 469 steps per epoch; 5 epochs, 10 points -> every ceil(234.5) steps
    assert track_every(None, "mnist", 128, Phase(5, 10)) == 235
    assert track_every(None, "fashion-mnist", 64, Phase(1, 3)) == 313  # ceil(938 / 3)
    assert track_every(1000, "mnist", 100, Phase(2, 4)) == 5
    assert track_every(None, "mnist", 128, Phase(10, 10)) == 0  # epoch ends only
    assert track_every(10, "mnist", 100, Phase(1, 50)) == 1


TINY = Profile(
    name="test",
    description="tiny: FCNN only, 96 images, one epoch, FGSM tracking",
    seeds=1,
    settings={
        "fcnn": schedule(
            96, 1, 1, 16, 1, 1, mi_eval_size=24, tracked_attacks={"fgsm": {"eps": 0.05}}
        )
    },
    masking=MaskingCheck(size=16),
    ensemble=EnsembleCheck(size=16, steps=3, queries=10, curve=(0.1,)),
)
"""A profile for tests: every FCNN method in seconds."""


def test_tiny_reproduction_writes_manifest_and_reuses_runs(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    first = reproduce(RECIPE, TINY, runs_dir=runs_dir, log=lambda _: None)
    directory = runs_dir / "reproductions" / "langenberg2019-test"
    assert first.directory == directory and not first.errors
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert manifest == first.manifest
    assert (manifest["recipe"], manifest["profile"], manifest["seeds"]) == (
        "langenberg2019",
        "test",
        [0],
    )
    assert manifest["wall_time_s"] > 0 and manifest["choices"] == list(RECIPE.choices)
    assert [r["method"] for r in manifest["runs"]] == [
        "natural",
        "pgd",
        *[m for m in FCNN_IDS[1:] if m != "pgd"],
    ]
    for row in manifest["runs"]:
        assert row["status"] == "finished" and not Path(row["run_dir"]).is_absolute()
        run_dir = (directory / row["run_dir"]).resolve()
        assert (run_dir / "summary.json").is_file()
        assert row["model"] == "fcnn" and row["dataset"] == "mnist" and row["seed"] == 0
    # the MI tracker wrote its four bounds for the five tanh layers at every tracking point
    natural = directory / manifest["runs"][0]["run_dir"]
    rows = [json.loads(line) for line in (natural / "metrics.jsonl").read_text().splitlines()]
    mi = [r for r in rows if r["metric"].startswith("mi_")]
    assert len({r["layer"] for r in mi}) == 5
    assert {r["metric"] for r in mi} == {
        "mi_input_lower",
        "mi_input_upper",
        "mi_label_lower",
        "mi_label_upper",
    }
    inputs = [r["value"] for r in mi if r["metric"].startswith("mi_input")]
    assert all(0 <= v <= math.log2(24) + 1e-9 for v in inputs)  # N = 24: the MI sample
    # masking flags for every run whose robustness is claimed
    assert {(m["method"], m["seed"]) for m in manifest["masking"]} == {
        (r["method"], 0) for r in manifest["runs"]
    }
    for m in manifest["masking"]:
        assert [f["name"] for f in m["flags"]] == [
            "degenerate_gradients",
            "iterative_weaker_than_single_step",
            "black_box_stronger_than_white_box",
            "low_fooling_at_large_eps",
            "non_monotone_curve",
            "near_chance_accuracy",
        ]
        assert all(f["checked"] for f in m["flags"])
        assert m["test_size"] == 10000 and 0 <= m["test_accuracy"] <= 1

    # the ensemble's robust accuracy of every run; ε-curves for natural and the most robust
    ensemble = {e["method"]: e for e in manifest["ensemble"]}
    assert set(ensemble) == {r["method"] for r in manifest["runs"]}
    for e in ensemble.values():
        assert e["n"] == 16 and e["stages"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
        assert sum(e["broken_by"].values()) == 16
        assert e["robust_accuracy"] == e["broken_by"]["robust"] / 16
        assert e["attack"]["steps"] == 3 and e["attack"]["queries"] == 10
    curved = {m for m, e in ensemble.items() if set(e["curve"]) == {"0.05", "0.1"}}
    groups = {r["method"]: r["group"] for r in manifest["runs"]}
    treatments = [m for m in ensemble if m != "natural" and groups[m] != "control"]
    best = max(treatments, key=lambda m: ensemble[m]["robust_accuracy"])  # one seed here
    assert len(list((directory / "ensemble").glob("*-curve-eps0.1-*.json"))) == 2
    assert curved == {"natural", best}
    assert all(set(e["curve"]) == {"0.05"} for m, e in ensemble.items() if m not in curved)
    source = load_source(directory)
    key = "fooling_ratio/autoattack"
    assert {r.method: r.final_value(key) for r in source.runs} == {
        m: e["fooling_ratio"] for m, e in ensemble.items()
    }
    assert {"claim-2-autoattack", "remark-autoattack"} <= {s.key for s in claim_specs(source)}
    page = make_report(directory)
    keys = {t.key for t in page.plan.tables}
    assert {"fcnn-ensemble", "fcnn-ensemble-curve"} <= keys
    assert "robust accuracy under the AutoAttack-style ensemble" in page.html_path.read_text()

    stamps = {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/summary.json")}
    cached = {
        p: p.stat().st_mtime_ns
        for p in [*(directory / "masking").iterdir(), *(directory / "ensemble").iterdir()]
    }
    second = reproduce(RECIPE, TINY, runs_dir=runs_dir, log=lambda _: None)
    assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/summary.json")} == stamps
    assert {p: p.stat().st_mtime_ns for p in cached} == cached
    assert second.manifest["masking"] == manifest["masking"]
    assert second.manifest["ensemble"] == manifest["ensemble"]
    assert [r["reused"] for r in manifest["runs"]] == [False] * len(FCNN_IDS)
    assert [r["reused"] for r in second.manifest["runs"]] == [True] * len(FCNN_IDS)
    assert [{**r, "reused": False} for r in second.manifest["runs"]] == manifest["runs"]
    # the wall time is the computing call's; the reusing call is appended to `calls`
    assert second.manifest["wall_time_s"] == manifest["wall_time_s"]
    assert [c["runs_computed"] for c in second.manifest["calls"]] == [len(FCNN_IDS), 0]


def test_paper_profile_uses_the_papers_recipe() -> None:
    from robustcompress.experiments.config import check_against_model

    runs = plan(RECIPE.profile("paper"), list(range(RECIPE.profile("paper").seeds)))
    assert sorted({r.seed for r in runs if r.model == "fcnn"}) == [0, 1, 2, 3, 4]
    assert sorted({r.seed for r in runs if r.model == "cnn"}) == [0, 1, 2]  # budget
    assert len(runs) == 5 * len(FCNN_IDS) + 3 * len(CNN_IDS)
    lr = {("fcnn", False): 0.001, ("fcnn", True): 0.001, ("cnn", False): 0.01, ("cnn", True): 0.001}
    for r in runs:
        c = r.config
        fine_tuning = c.training.init_from is not None
        assert c.optimizer.name == "sgd" and c.optimizer.momentum == 0.0  # plain SGD (§5)
        assert c.optimizer.lr == lr[r.model, fine_tuning]
        assert c.optimizer.batch_size == {"fcnn": 128, "cnn": 64}[r.model]
        assert c.model.init == "glorot_uniform"
        targets = [e.settings()["accuracy"] for e in c.extras if e.name == "target_accuracy"]
        assert targets == ([] if fine_tuning else [PAPER_ACCURACY[r.model]["natural"]])
        assert {"fgsm", "pgd", "gnm"} <= set(c.tracking.attacks)
        if r.model == "fcnn":  # unclipped as well: the audit's two-recipe comparison
            assert c.tracking.attacks["pgd-unclipped"] == {
                "attack": "pgd",
                "eps": 0.05,
                "steps": 20,
                "alpha": 0.005,
                "clip": False,
            }
        else:
            assert set(c.tracking.attacks) == {"fgsm", "pgd", "gnm"}
        every = {("fcnn", False): 10, ("fcnn", True): 2, ("cnn", False): 5, ("cnn", True): 1}
        assert c.tracking.every_epochs == every[r.model, fine_tuning]
        assert c.tracking.every == 0
    continued = _by_method(runs, "fcnn")["continued"].config
    pgd = _by_method(runs, "fcnn")["pgd"].config
    assert continued.training.mode == "natural" and not continued.regularizers
    assert (continued.optimizer, continued.training.init_from) == (
        pgd.optimizer,
        pgd.training.init_from,
    )  # the control has the fine-tuning budget, without the treatment
    for r in runs[:: len(runs) // 6]:
        check_against_model(r.config)
