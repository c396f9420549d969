"""Paired comparisons across seeds and the verdict rule, on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from robustcompress.errors import ConfigError
from robustcompress.reporting.claims import (
    ClaimSpec,
    ComparisonSpec,
    combine_verdicts,
    decide,
    evaluate_claim,
    paired_comparison,
    paired_statistics,
)


def test_paired_statistics_closed_form() -> None:
    # d = (1, 2, 3): mean 2, sd 1, t = 2 / (1/√3) = 2√3, d_z = 2
    s = paired_statistics([1.0, 2.0, 3.0])
    assert s.n == 3
    assert s.mean == pytest.approx(2.0)
    assert s.std == pytest.approx(1.0)
    assert s.t == pytest.approx(2 * math.sqrt(3))
    assert s.d_z == pytest.approx(2.0)
    assert s.p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), df=2))


def test_paired_statistics_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=7)
    b = a + rng.normal(0.3, 1.0, size=7)
    s = paired_statistics(list(b - a))
    reference = stats.ttest_rel(b, a)
    assert s.t == pytest.approx(reference.statistic)
    assert s.p == pytest.approx(reference.pvalue)


@pytest.mark.parametrize("differences", [[0.5], [-1.0, -1.0], [0.0, 0.0, 0.0]])
def test_undefined_test_statistics(differences: list[float]) -> None:
    s = paired_statistics(differences)
    assert (s.t, s.p, s.d_z) == (None, None, None)


def test_no_differences() -> None:
    s = paired_statistics([])
    assert s.n == 0 and math.isnan(s.mean)
    assert decide([], "lower")[0] == "inconclusive"


@pytest.mark.parametrize(
    ("differences", "direction", "verdict", "reason_part"),
    [
        # rule 1: fewer than two seeds
        ([-3.0], "lower", "inconclusive", "only 1 paired seed"),
        # a unanimous sign alone no longer decides (issue 13): p = 0.19 and 0.074 here
        ([-0.1, -0.5, -3.0], "lower", "inconclusive", "claimed in 3/3 seeds, not significant"),
        ([0.2, 0.1, 0.3], "higher", "inconclusive", "claimed in 3/3 seeds, not significant"),
        ([0.1, 0.5, 3.0], "lower", "inconclusive", "claimed in 0/3 seeds, not significant"),
        # rule 1: zero variance, so no t-test (this was "supported" by unanimity)
        ([-1.0, -1.0, -1.0], "lower", "inconclusive", "zero variance"),
        # rule 2: mixed signs but significant (a family of one: corrected p = p)
        ([-1.0, -1.1, -0.9, -1.2, -1.0, 0.05], "lower", "supported", "lower, corrected p = "),
        # rule 3: mean opposite and significant, mixed signs
        ([1.0, 1.1, 0.9, 1.2, 1.0, -0.05], "lower", "not supported", "the opposite, corrected"),
        # rule 4: mixed and not significant
        ([-1.0, 0.8, -0.2], "lower", "inconclusive", "claimed in 2/3 seeds, not significant"),
        # two seeds agreeing is not enough without significance
        ([-1.0, -2.0], "lower", "inconclusive", "claimed in 2/2 seeds, not significant"),
        # ties carry no sign
        ([0.0, 0.0, 0.0], "lower", "inconclusive", "zero variance"),
    ],
)
def test_verdict_rule_branches(
    differences: list[float], direction: str, verdict: str, reason_part: str
) -> None:
    got, reason = decide(differences, direction)  # type: ignore[arg-type]
    assert got == verdict
    assert reason_part in reason


def test_effect_size_is_reported_not_a_condition() -> None:
    """The rule is significance after correction; d_z is shown beside it (it used to
    gate: |d_z| < 0.8 was inconclusive)."""
    z = np.random.default_rng(1).normal(size=60)
    z = (z - z.mean()) / z.std(ddof=1)  # mean 0, sd 1 exactly
    differences = list(z - 0.5)  # d_z = -0.5, n = 60: p ≈ 2e-4
    s = paired_statistics(differences)
    assert s.p is not None and s.p < 0.05
    assert s.d_z == pytest.approx(-0.5)
    assert min(differences) < 0 < max(differences)
    assert decide(differences, "lower")[0] == "supported"


def test_the_corrected_p_decides() -> None:
    differences = [-1.0, -1.1, -0.9, -1.2, -1.0, 0.05]  # p ≈ 0.006 on its own
    assert decide(differences, "lower")[0] == "supported"
    verdict, reason = decide(differences, "lower", corrected_p=0.2)
    assert verdict == "inconclusive"
    assert reason == "same direction as claimed in 5/6 seeds, not significant (corrected p = 0.2)"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=0, max_size=6))
def test_direction_symmetry(differences: list[float]) -> None:
    """Claiming 'lower' on d is the same claim as 'higher' on −d."""
    assert decide(differences, "lower")[0] == decide([-d for d in differences], "higher")[0]


def test_invalid_direction() -> None:
    with pytest.raises(ConfigError, match="direction must be one of lower, higher"):
        decide([1.0, 2.0], "down")  # type: ignore[arg-type]


def test_paired_comparison_pairs_by_seed_and_drops_non_finite() -> None:
    baseline = {0: 1.0, 1: 2.0, 2: 3.0, 4: float("nan")}
    other = {1: 1.5, 2: 2.0, 3: 9.0, 4: 0.0}
    c = paired_comparison(
        baseline, other, "lower", metric="m", baseline_name="natural", other_name="pgd"
    )
    assert c.seeds == (1, 2)
    assert c.baseline_values == (2.0, 3.0)
    assert c.other_values == (1.5, 2.0)
    assert c.mean_difference == pytest.approx(-0.75)
    assert c.mean_baseline == pytest.approx(2.5) and c.mean_other == pytest.approx(1.75)
    assert c.signs == ("+", "+")
    assert c.verdict == "inconclusive"  # two seeds, not significant
    row = c.to_dict()
    assert row["signs"] == "++" and row["n"] == 2 and row["baseline"] == "natural"


def test_paired_comparison_signs_mark_opposite_and_ties() -> None:
    c = paired_comparison({0: 1.0, 1: 1.0, 2: 1.0}, {0: 0.0, 1: 2.0, 2: 1.0}, "lower")
    assert c.signs == ("+", "−", "0")


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["supported", "supported"], "supported"),
        (["not supported", "inconclusive"], "not supported"),
        (["supported", "not supported"], "inconclusive"),
        (["supported", "inconclusive"], "inconclusive"),
        ([], "inconclusive"),
    ],
)
def test_combine_verdicts(verdicts: list[str], expected: str) -> None:
    verdict, summary = combine_verdicts(verdicts)  # type: ignore[arg-type]
    assert verdict == expected
    if verdicts:
        assert f"of {len(verdicts)} comparison" in summary


def test_evaluate_claim_lists_missing_comparisons() -> None:
    spec = ClaimSpec(
        "c",
        "title",
        "statement",
        (
            ComparisonSpec("fcnn", "natural", "pgd", "effective_rank/W1", "lower"),
            ComparisonSpec("fcnn", "natural", "fgsm", "effective_rank/W1", "lower"),
        ),
    )
    values = {
        ("fcnn", "natural", "effective_rank/W1"): {0: 5.0, 1: 5.5, 2: 6.0},
        ("fcnn", "pgd", "effective_rank/W1"): {0: 3.0, 1: 3.1, 2: 4.0},
    }
    result = evaluate_claim(spec, values)
    assert [e.other for e in result.evidence] == ["pgd"]
    assert [c.other for c in result.missing] == ["fgsm"]
    assert result.verdict == "supported"
    assert result.summary == (
        "1 supported of 1 comparison; the mean difference has the claimed sign in 1 of 1"
    )
    assert result.to_dict()["missing"] == ["fcnn: fgsm vs natural on effective_rank/W1"]
