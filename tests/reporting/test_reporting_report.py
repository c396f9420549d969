"""End to end: the report of a tiny real reproduction, generic reports, the results record.

The tiny reproduction (``conftest.py``) trains seven short runs through the experiment
runner once per session, hence ``slow``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robustcompress.papers.langenberg2019.recipe import PAPER_ACCURACY
from robustcompress.reporting import build_report, make_report, write_results_markdown
from robustcompress.reporting.claims import VERDICT_RULE
from robustcompress.reporting.tables import format_mean_std

pytestmark = pytest.mark.slow

FIGURES = [
    "figure-1",
    "figure-2",
    "figure-2-mi",
    "figure-3",
    "figure-8",
    "figure-4",
    "figure-5",
    "figure-6",
    "figure-7",
    "figure-9",
    "figure-10",
    "fcnn-accuracy",
    "cnn-accuracy",
]


def _finals(repro: Path, method: str, model: str = "fcnn") -> dict[int, dict[str, Any]]:
    """``{seed: summary final}`` of the manifest's runs of one method, read directly."""
    manifest = json.loads((repro / "manifest.json").read_text())
    out = {}
    for entry in manifest["runs"]:
        run_dir = (repro / entry["run_dir"]).resolve()
        if entry["model"] == model and entry["method"] == method and run_dir.is_dir():
            out[entry["seed"]] = json.loads((run_dir / "summary.json").read_text())["final"]
    return out


def test_page_has_every_figure_embedded_and_saved(tiny_report: Any) -> None:
    page = tiny_report.html_path.read_text(encoding="utf-8")
    assert [f.key for f in tiny_report.figures] == FIGURES
    assert page.count('<img src="data:image/png;base64,') == len(FIGURES)
    for figure in tiny_report.figures:
        assert f'<figure id="{figure.key}">' in page
        assert figure.png.stat().st_size > 1000 and figure.svg.stat().st_size > 1000
        assert figure.png.parent == tiny_report.html_path.parent / "figures"
        assert f'href="figures/{figure.key}.svg"' in page


def test_page_has_tables_claims_masking_and_choices(tiny_report: Any) -> None:
    page = tiny_report.html_path.read_text(encoding="utf-8")
    for table_id in (
        "claims-summary",
        "table-1",
        "table-2",
        "claim-1-evidence",
        "claim-2-evidence",
        "fcnn-final-robustness",
        "fcnn-final-structure",
        "masking",
        "settings",
        "runs-list",
    ):
        assert f'<table id="{table_id}">' in page, table_id
    assert html.escape(VERDICT_RULE) in page
    assert "TRIGGERED (0.2)" in page and "no masking check recorded" in page
    assert "gone-0000000000" in page  # the manifest's missing run is reported
    assert "&lt;b&gt;not&lt;/b&gt;" in page  # manifest text is escaped
    assert "<b>not</b>" not in page
    assert "wall time 2 min 03 s" in page


def test_accuracy_table_is_mean_std_of_run_summaries(
    tiny_report: Any, tiny_reproduction: Path
) -> None:
    table = next(t for t in tiny_report.plan.accuracy_tables if t.key == "table-1")
    rows = {r[0]: r for r in table.rows}
    finals = _finals(tiny_reproduction, "natural")
    expected = format_mean_std([finals[s]["accuracy"] for s in (0, 1)])
    assert rows["natural"][1:4] == ["2", expected, f"{PAPER_ACCURACY['fcnn']['natural']:.4f}"]
    assert set(rows) == {"natural", "FGSM adv. training", "λ₁,₁=0.01"}


def test_claims_compare_final_values_paired_by_seed(
    tiny_report: Any, tiny_reproduction: Path
) -> None:
    claims = {c.spec.key: c for c in tiny_report.plan.claims}
    natural = _finals(tiny_reproduction, "natural")
    fgsm = _finals(tiny_reproduction, "fgsm")
    rank = next(e for e in claims["claim-1"].evidence if e.metric == "effective_rank/W1")
    assert (rank.baseline, rank.other, rank.seeds) == ("natural", "fgsm", (0, 1))
    assert rank.baseline_values == tuple(natural[s]["effective_rank/W1"] for s in (0, 1))
    assert rank.other_values == tuple(fgsm[s]["effective_rank/W1"] for s in (0, 1))
    # two seeds: a unanimous sign is not enough and p < 0.05 needs |t| > 12.7
    assert [e.metric for e in claims["claim-2"].evidence] == [
        "fooling_ratio/fgsm",
        "fooling_ratio/pgd",
        "fooling_ratio/gnm",
    ]
    assert {e.other for e in claims["claim-2"].evidence} == {"l1"}
    # PGD failed, so the remark cannot be tested and the CNN has no adversarial runs
    assert claims["remark"].evidence == () and claims["remark"].verdict == "inconclusive"
    assert {c.model for c in claims["claim-1"].missing} == {"fcnn", "cnn"}


def test_weight_figures_share_one_colour_scale(tiny_report: Any, tiny_reproduction: Path) -> None:
    from robustcompress.models import weight_matrices
    from robustcompress.training.checkpoint import load_model

    source = tiny_report.source
    pooled = []
    for method in ("natural", "fgsm", "l1"):
        run = source.runs_of("fcnn", method)[0]
        w1 = weight_matrices(load_model(run.run_dir))[0].parameter.detach().numpy()
        pooled.append(np.abs(w1).ravel())
    limit = np.percentile(np.concatenate(pooled), 99.5)
    captions = {f.key: f.caption for f in tiny_report.figures}
    scale = f"colour scale ±{limit:.3g}"
    assert scale in captions["figure-1"] and scale in captions["figure-8"]


def test_report_json_is_strict_json(tiny_report: Any) -> None:
    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    text = (tiny_report.html_path.parent / "report.json").read_text()
    data = json.loads(text, parse_constant=reject)
    assert [c["key"] for c in data["claims"]] == ["claim-1", "claim-2", "remark"]
    assert (
        data["runs"]
        == {
            "total": 7,
            "finished": 7,
            "missing": data["runs"]["missing"],
        }
        and len(data["runs"]["missing"]) == 1
    )
    assert [f["key"] for f in data["figures"]] == FIGURES


def test_generic_reports_of_a_run_and_a_runs_root(tiny_report: Any, tmp_path: Path) -> None:
    run = tiny_report.source.runs_of("fcnn", "l1")[0]
    single = make_report(run.run_dir, out=tmp_path / "single")
    assert single.html_path == tmp_path / "single" / "report.html"
    assert [f.key for f in single.figures] == [
        "fcnn-accuracy",
        "fcnn-fooling",
        "fcnn-structure",
        "fcnn-W1",
    ]
    assert single.plan.claims == [] and "Claims" not in single.html_path.read_text()
    root = build_report(run.run_dir.parent, out=tmp_path / "root.html")
    page = root.read_text()
    assert root == tmp_path / "root.html"
    assert '<figure id="cnn-W2">' in page and '<figure id="fcnn-W2">' not in page
    assert '<figure id="fcnn-information">' in page and '<figure id="cnn-information">' not in page
    assert page.count("data:image/png;base64,") == 10


def test_run_without_checkpoint_is_reported_with_a_warning(
    fake_run: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [
        {"step": s, "epoch": s // 5, "metric": "accuracy", "value": 0.1 * s} for s in (0, 5, 10)
    ]
    run_dir = fake_run(
        tmp_path, "bare-abc", {"name": "bare", "model": {"name": "fcnn"}}, {"accuracy": 1.0}, rows
    )
    report = make_report(run_dir)
    assert [f.key for f in report.figures] == ["fcnn-accuracy"]
    assert report.warnings and "no weights drawn for bare-abc" in report.warnings[0]
    assert "no weights drawn" in report.html_path.read_text()


def test_results_markdown(tiny_reproduction: Path, tmp_path: Path) -> None:
    path = write_results_markdown(tiny_reproduction, tmp_path / "docs" / "results.md")
    text = path.read_text()
    assert text.startswith("# Results: langenberg2019\n")
    assert "- wall time: **2 min 03 s** (started 2026-01-01T00:00:00)" in text
    assert "## Where the paper is silent, we chose" in text
    assert "**Table 1: test accuracy of the FCNN on MNIST (clean data)**" in text
    assert "| method | seeds | clean accuracy (ours) | paper | ours − paper |" in text
    assert "### Claim 1: adversarial training leads to low-rank and sparse weights" in text
    assert "**Verdict: inconclusive**" in text
    assert "TRIGGERED (0.2)" in text  # the flagged masking row
    assert "## Where our numbers differ from the paper's, and why" in text
    assert "Table 1, natural: clean accuracy" in text  # tiny runs are far below 0.95
    assert "_Why: to be written._" in text
    assert "Profile 'test' trains on subsampled data" in text  # its runs have data.limit


def test_appendix_b_table_sets_the_reshaped_kernel_against_the_operator(tiny_report: Any) -> None:
    import math

    table = next(t for t in tiny_report.plan.tables if t.key == "appendix-b")
    rows = {r[0]: r for r in table.rows}
    assert set(rows) == {"W1", "W2"}  # the CNN's two convolutions
    for name, size, r_tilde, r_kron, r_operator, s_tilde, s_operator in table.rows:
        n_h, n_w = (int(v) for v in size.split("×"))
        m = math.sqrt(n_h * n_w)
        assert float(r_kron) == pytest.approx(m * float(r_tilde), abs=0.1)  # rounding
        assert float(s_operator) == pytest.approx(m * float(s_tilde), abs=0.1)
        # overlapping stride-1 patches: the operator is not W̃ ⊗ I_m
        assert float(r_operator) != pytest.approx(float(r_kron), rel=0.05), name
    assert rows["W1"][1] == "28×28"
