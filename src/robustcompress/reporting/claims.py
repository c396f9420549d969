"""Claims tested across seeds: a paired comparison per metric, and a verdict rule.

A claim such as "adversarial training lowers the effective rank of W_1"
(Langenberg et al. 2019, Claim 1) compares two training methods run with the same
seeds. For a metric with values ``a_s`` (baseline, e.g. natural training) and
``b_s`` (the other method) paired by seed ``s``, the differences are
``d_s = b_s − a_s`` and the comparison reports

* the mean difference ``d̄`` and its sample standard deviation ``s_d`` (ddof = 1);
* the paired t statistic ``t = d̄ / (s_d / √n)`` with ``n − 1`` degrees of freedom
  and its two-sided p-value (Student 1908; :func:`scipy.stats.t`);
* the effect size Cohen's ``d_z = d̄ / s_d`` (Cohen 1988, the standardised mean of
  paired differences);
* per seed, whether the difference has the claimed sign.

The verdict rule (:data:`VERDICT_RULE`, printed on every report). Let "the claimed
sign" be ``d_s < 0`` for a claim that the other method is *lower*, ``d_s > 0`` for
*higher*:

1. fewer than :data:`MIN_PAIRS` paired seeds → **inconclusive**;
2. the claimed sign holds in every seed and ``n ≥`` :data:`MIN_SIGN_SEEDS` →
   **supported** (with three seeds a t-test has little power, so a unanimous sign
   counts: its one-sided sign-test probability under "no effect" is 2⁻ⁿ ≤ 0.125);
3. ``d̄`` has the claimed sign, ``p <`` :data:`ALPHA` and ``|d_z| ≥``
   :data:`MIN_EFFECT` (a "large" effect in Cohen's terms) → **supported**;
4. the opposite sign holds in every seed and ``n ≥`` :data:`MIN_SIGN_SEEDS` →
   **not supported**;
5. ``d̄`` has the opposite sign and ``p <`` :data:`ALPHA` → **not supported**;
6. anything else (mixed signs without significance, zero differences, two seeds
   without significance) → **inconclusive**.

With zero variance of the differences the t statistic, p and ``d_z`` are
undefined (reported as ``None``); only rules 2 and 4 can then decide.

A claim is made of several comparisons (methods × metrics × models); its verdict
(:func:`combine_verdicts`) is *supported* when every comparison is, *not supported*
when none is supported and at least one is not supported, else *inconclusive*,
always shown with the counts and with how many mean differences point the claimed
way (descriptive only: with one seed that is all there is).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy import stats

from robustcompress.errors import ConfigError

Verdict = Literal["supported", "not supported", "inconclusive"]
Direction = Literal["lower", "higher"]

VERDICTS: tuple[Verdict, ...] = ("supported", "not supported", "inconclusive")
DIRECTIONS: tuple[Direction, ...] = ("lower", "higher")

ALPHA = 0.05
"""Significance level of the two-sided paired t-test."""

MIN_EFFECT = 0.8
"""Smallest |Cohen's d_z| that counts as a real effect (Cohen's "large")."""

MIN_PAIRS = 2
"""Fewer paired seeds than this: no comparison is possible (no variance)."""

MIN_SIGN_SEEDS = 3
"""Seeds needed before a unanimous sign alone decides (2⁻³ = 0.125 by chance)."""

VERDICT_RULE = (
    f"For each comparison, d_s = (other method − baseline) for seed s, paired by seed; "
    f"the claimed sign is d_s < 0 for 'lower', d_s > 0 for 'higher'. "
    f"(1) Fewer than {MIN_PAIRS} paired seeds: inconclusive. "
    f"(2) The claimed sign in every seed and n ≥ {MIN_SIGN_SEEDS}: supported. "
    f"(3) Mean difference with the claimed sign, paired t-test p < {ALPHA:g} (two-sided) "
    f"and Cohen's |d_z| = |mean d| / sd(d) ≥ {MIN_EFFECT:g}: supported. "
    f"(4) The opposite sign in every seed and n ≥ {MIN_SIGN_SEEDS}: not supported. "
    f"(5) Mean difference with the opposite sign and p < {ALPHA:g}: not supported. "
    f"(6) Otherwise: inconclusive. "
    f"A claim is supported when all its comparisons are, not supported when none is "
    f"supported and at least one is not supported, and inconclusive otherwise."
)
"""The rule in one paragraph, as shown on reports."""


@dataclass(frozen=True)
class PairedStatistics:
    """Summary of paired differences ``d_s``: the numbers behind a verdict.

    ``t``, ``p`` and ``d_z`` are ``None`` when undefined (n < 2 or zero variance).
    """

    n: int
    mean: float
    std: float
    t: float | None
    p: float | None
    d_z: float | None


def paired_statistics(differences: Sequence[float]) -> PairedStatistics:
    """Mean, sample std (ddof = 1), paired t, two-sided p and Cohen's d_z of ``d_s``.

    ``t = d̄ / (s_d/√n)`` with ``n − 1`` degrees of freedom; ``d_z = d̄ / s_d``.
    With ``n = 1`` the std is 0 and the test statistics are ``None``.
    """
    d = [float(v) for v in differences]
    n = len(d)
    if n == 0:
        return PairedStatistics(0, math.nan, math.nan, None, None, None)
    mean = math.fsum(d) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else 0.0
    # zero variance up to rounding: treat as exactly constant
    if n < 2 or std <= 1e-12 * max(1.0, abs(mean)):
        return PairedStatistics(n, mean, std, None, None, None)
    t = mean / (std / math.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    return PairedStatistics(n, mean, std, t, p, mean / std)


def decide(differences: Sequence[float], direction: Direction) -> tuple[Verdict, str]:
    """The verdict on ``d_s = other − baseline`` for a claim that ``other`` is ``direction``.

    Applies the rule of the module docstring (:data:`VERDICT_RULE`) and returns the
    verdict with a one-line reason naming the rule that decided.
    """
    _check_direction(direction)
    sign = -1.0 if direction == "lower" else 1.0
    claimed = [sign * float(v) for v in differences]  # > 0 where the claim holds
    s = paired_statistics(differences)
    n = s.n
    if n < MIN_PAIRS:
        return "inconclusive", f"only {n} paired seed(s); at least {MIN_PAIRS} are needed"
    holds = sum(v > 0 for v in claimed)
    opposite = sum(v < 0 for v in claimed)
    mean_claimed = sign * s.mean
    if holds == n and n >= MIN_SIGN_SEEDS:
        return "supported", f"{direction} in all {n} seeds"
    significant = s.p is not None and s.p < ALPHA
    if significant and mean_claimed > 0 and s.d_z is not None and abs(s.d_z) >= MIN_EFFECT:
        return "supported", f"mean {direction}, p = {s.p:.3g} < {ALPHA:g}, |d_z| = {abs(s.d_z):.2f}"
    if opposite == n and n >= MIN_SIGN_SEEDS:
        return "not supported", f"the opposite in all {n} seeds"
    if significant and mean_claimed < 0:
        return "not supported", f"mean is the opposite, p = {s.p:.3g} < {ALPHA:g}"
    if significant:
        return "inconclusive", f"significant but small effect (|d_z| < {MIN_EFFECT:g})"
    p_text = "p undefined" if s.p is None else f"p = {s.p:.3g}"
    return "inconclusive", f"{direction} in {holds} of {n} seeds, {p_text}"


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"claim direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})"
        )


@dataclass(frozen=True)
class PairedComparison:
    """One evidence row: a metric of two methods compared seed by seed.

    ``signs`` holds, per seed, ``"+"`` where the difference has the claimed sign,
    ``"−"`` where it has the opposite sign and ``"0"`` for a tie.
    """

    metric: str
    baseline: str
    other: str
    direction: Direction
    seeds: tuple[int, ...]
    baseline_values: tuple[float, ...]
    other_values: tuple[float, ...]
    statistics: PairedStatistics
    signs: tuple[str, ...]
    verdict: Verdict
    reason: str
    context: str = ""

    @property
    def mean_baseline(self) -> float:
        return _mean(self.baseline_values)

    @property
    def mean_other(self) -> float:
        return _mean(self.other_values)

    @property
    def mean_difference(self) -> float:
        return self.statistics.mean

    def to_dict(self) -> dict[str, Any]:
        s = self.statistics
        return {
            "context": self.context,
            "metric": self.metric,
            "baseline": self.baseline,
            "other": self.other,
            "direction": self.direction,
            "seeds": list(self.seeds),
            "baseline_values": list(self.baseline_values),
            "other_values": list(self.other_values),
            "mean_baseline": self.mean_baseline,
            "mean_other": self.mean_other,
            "mean_difference": s.mean,
            "std_difference": s.std,
            "n": s.n,
            "t": s.t,
            "p": s.p,
            "d_z": s.d_z,
            "signs": "".join(self.signs),
            "verdict": self.verdict,
            "reason": self.reason,
        }


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def paired_comparison(
    baseline: Mapping[int, float],
    other: Mapping[int, float],
    direction: Direction,
    *,
    metric: str = "",
    baseline_name: str = "baseline",
    other_name: str = "other",
    context: str = "",
) -> PairedComparison:
    """Compare ``other`` with ``baseline`` on the seeds both have (non-finite values dropped).

    Args:
        baseline: ``{seed: value}`` of the reference method (e.g. natural training).
        other: ``{seed: value}`` of the method the claim is about.
        direction: the claim: ``"lower"`` (other < baseline) or ``"higher"``.
        metric, baseline_name, other_name, context: labels for reports.
    """
    _check_direction(direction)
    seeds = tuple(
        sorted(s for s in set(baseline) & set(other) if _finite(baseline[s]) and _finite(other[s]))
    )
    a = tuple(float(baseline[s]) for s in seeds)
    b = tuple(float(other[s]) for s in seeds)
    differences = [y - x for x, y in zip(a, b, strict=True)]
    sign = -1.0 if direction == "lower" else 1.0
    signs = tuple("+" if sign * d > 0 else "−" if sign * d < 0 else "0" for d in differences)
    verdict, reason = decide(differences, direction)
    return PairedComparison(
        metric=metric,
        baseline=baseline_name,
        other=other_name,
        direction=direction,
        seeds=seeds,
        baseline_values=a,
        other_values=b,
        statistics=paired_statistics(differences),
        signs=signs,
        verdict=verdict,
        reason=reason,
        context=context,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def combine_verdicts(verdicts: Iterable[Verdict]) -> tuple[Verdict, str]:
    """A claim's verdict from its comparisons' (see the module docstring), with counts."""
    counts = Counter(verdicts)
    total = sum(counts.values())
    if total == 0:
        return "inconclusive", "no comparison could be made (the runs it needs are missing)"
    text = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    detail = f"{text} of {total} comparison{'s' if total != 1 else ''}"
    if counts["supported"] == total:
        return "supported", detail
    if counts["supported"] == 0 and counts["not supported"] > 0:
        return "not supported", detail
    return "inconclusive", detail


@dataclass(frozen=True)
class ComparisonSpec:
    """One comparison a claim makes: ``other`` vs ``baseline`` on ``metric`` for ``model``."""

    model: str
    baseline: str
    other: str
    metric: str
    direction: Direction


@dataclass(frozen=True)
class ClaimSpec:
    """A claim from a paper and the comparisons that test it."""

    key: str
    title: str
    statement: str
    comparisons: tuple[ComparisonSpec, ...]


@dataclass(frozen=True)
class ClaimResult:
    """A tested claim: its evidence rows, the verdict and why."""

    spec: ClaimSpec
    evidence: tuple[PairedComparison, ...]
    verdict: Verdict
    summary: str
    missing: tuple[ComparisonSpec, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "title": self.spec.title,
            "statement": self.spec.statement,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": [e.to_dict() for e in self.evidence],
            "missing": [
                f"{c.model}: {c.other} vs {c.baseline} on {c.metric}" for c in self.missing
            ],
        }


ValueLookup = Mapping[tuple[str, str, str], Mapping[int, float]]
"""``{(model, method, metric): {seed: final value}}``: what claims are tested on."""


def evaluate_claim(spec: ClaimSpec, values: ValueLookup) -> ClaimResult:
    """Run every comparison of ``spec`` on the final values; missing methods are listed."""
    evidence: list[PairedComparison] = []
    missing: list[ComparisonSpec] = []
    for c in spec.comparisons:
        base = values.get((c.model, c.baseline, c.metric))
        other = values.get((c.model, c.other, c.metric))
        if not base or not other:
            missing.append(c)
            continue
        evidence.append(
            paired_comparison(
                base,
                other,
                c.direction,
                metric=c.metric,
                baseline_name=c.baseline,
                other_name=c.other,
                context=c.model,
            )
        )
    verdict, summary = combine_verdicts(e.verdict for e in evidence)
    if evidence:
        agree = sum(_claimed_mean(e) for e in evidence)
        summary += f"; the mean difference has the claimed sign in {agree} of {len(evidence)}"
    return ClaimResult(spec, tuple(evidence), verdict, summary, tuple(missing))


def _claimed_mean(comparison: PairedComparison) -> bool:
    """Whether the mean difference points the way the claim says (ties do not)."""
    mean = comparison.mean_difference
    return mean < 0 if comparison.direction == "lower" else mean > 0
