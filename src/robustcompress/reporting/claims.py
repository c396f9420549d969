"""Claims tested across seeds: a paired comparison per metric, and a verdict rule.

A claim such as "adversarial training lowers the effective rank of W_1"
(Langenberg et al. 2019, Claim 1) compares two training methods run with the same
seeds. For a metric with values ``a_s`` (baseline, e.g. natural training) and
``b_s`` (the other method) paired by seed ``s``, the differences are
``d_s = b_s − a_s`` and the comparison reports

* ``n``, the mean difference ``d̄`` and its sample standard deviation ``s_d`` (ddof = 1);
* the paired t-test: ``t = d̄ / (s_d / √n)`` with ``n − 1`` degrees of freedom and its
  two-sided p-value (Student 1908; :func:`scipy.stats.t`);
* the 95 % confidence interval of the mean difference, ``d̄ ± t_{0.975, n−1} · s_d / √n``;
* the exact two-sided sign test: ``k`` seeds with ``d_s > 0`` out of the ``N`` seeds
  without a tie (ties dropped), binomial with probability 1/2 under "no effect"
  (Dixon & Mood 1946; :func:`scipy.stats.binomtest`);
* the effect size Cohen's ``d_z = d̄ / s_d`` (Cohen 1988, the standardised mean of
  paired differences);
* per seed, whether the difference has the claimed sign.

**Which test decides.** The paired t-test's two-sided p. The sign test is reported
beside it as the check that assumes nothing about the shape of the differences, but it
cannot decide with the seed counts we can afford: its smallest two-sided p is
``2^(1−n)``, 0.25 with three seeds and 0.0625 with five, so requiring it would make every
comparison on five seeds inconclusive even before the multiplicity correction. ``d_z``
is reported, not a condition: with few seeds a significant t already implies a large
effect (``|d_z| > t_{0.975, n−1} / √n``, 1.24 at ``n = 5``).

**Multiplicity.** A claim is made of several comparisons (methods × metrics × models),
and with many of them some pass a 0.05 test by chance. Within each claim the t-test
p-values are corrected by Holm's step-down method (Holm 1979, :func:`holm`), which
controls the probability of any false rejection in the claim at :data:`ALPHA`. The
family is the claim's comparisons that have a p (comparisons whose runs are missing,
or with fewer than two seeds or zero variance, are not tested and not counted).

**The verdict rule** (:data:`VERDICT_RULE`, printed on every report). Let "the claimed
sign" be ``d_s < 0`` for a claim that the other method is *lower*, ``d_s > 0`` for
*higher*:

1. fewer than :data:`MIN_PAIRS` paired seeds, or all differences equal (zero
   variance: t, p, the interval and ``d_z`` are undefined, reported as ``None``) →
   **inconclusive**, with the reason;
2. Holm-corrected ``p <`` :data:`ALPHA` and ``d̄`` has the claimed sign → **supported**;
3. Holm-corrected ``p <`` :data:`ALPHA` and ``d̄`` has the opposite sign →
   **not supported**;
4. otherwise → **inconclusive**: "same direction as claimed in k/n seeds, not
   significant (corrected p = …)".

A unanimous sign alone no longer decides: under no effect all of three seeds agree with
probability 1/8, so a claim of 27 comparisons would be "supported" about three times by
chance (see docs/algorithms.md, Paired comparisons and verdict rule).

A claim's verdict (:func:`combine_verdicts`) is *supported* when every comparison is,
*not supported* when none is supported and at least one is not supported, else
*inconclusive*, always shown with the counts and with how many mean differences point
the claimed way (descriptive only: with one seed that is all there is).
"""

from __future__ import annotations

import dataclasses
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
"""Family-wise significance level: a Holm-corrected paired t-test p below it decides."""

MIN_PAIRS = 2
"""Fewer paired seeds than this: no comparison is possible (no variance)."""

CI_LEVEL = 0.95
"""Coverage of the t-based confidence interval of the mean difference."""

VERDICT_RULE = (
    "For each comparison, d_s = (other method − baseline) in seed s, paired by seed; "
    "the claimed sign is d_s < 0 for 'lower', d_s > 0 for 'higher'. Each comparison "
    f"reports n, the mean difference with its {CI_LEVEL:.0%} t confidence interval, the "
    "paired t-test (t, n − 1 degrees of freedom, two-sided p), the exact two-sided sign "
    "test (seeds with the claimed sign out of those without a tie, binomial p) and "
    "Cohen's d_z = mean d / sd(d). The paired t-test decides: its p is corrected by "
    "Holm's step-down method over the tested comparisons of the same claim; the sign "
    "test is shown beside it as the assumption-free check (it cannot decide with five "
    "seeds: its smallest p is 0.0625). A comparison is supported when its corrected "
    f"p < {ALPHA:g} and the mean difference has the claimed sign, not supported when "
    f"the corrected p < {ALPHA:g} and the mean difference has the opposite sign, and "
    "otherwise inconclusive ('same direction as claimed in k/n seeds, not "
    f"significant'); with fewer than {MIN_PAIRS} paired seeds or zero variance of the "
    "differences there is no test and the comparison is inconclusive. A claim is "
    "supported when all its comparisons are, not supported when none is supported and "
    "at least one is not supported, and inconclusive otherwise."
)
"""The rule in one paragraph, as shown on reports."""


@dataclass(frozen=True)
class PairedStatistics:
    """Summary of paired differences ``d_s``: the numbers behind a verdict.

    ``t``, ``p``, ``d_z`` and the interval ``ci_low``–``ci_high`` are ``None`` when
    undefined (n < 2 or zero variance). ``positive`` / ``negative`` count the seeds with
    ``d_s > 0`` / ``d_s < 0`` (ties in neither); ``sign_p`` is the exact two-sided sign
    test on them, ``None`` when every difference is a tie.
    """

    n: int
    mean: float
    std: float
    t: float | None
    p: float | None
    d_z: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    positive: int = 0
    negative: int = 0
    sign_p: float | None = None

    @property
    def df(self) -> int | None:
        """Degrees of freedom of the t-test, ``n − 1`` (``None`` when there is no test)."""
        return self.n - 1 if self.t is not None else None


def paired_statistics(differences: Sequence[float]) -> PairedStatistics:
    """Paired t-test, sign test, 95 % interval and Cohen's d_z of the differences ``d_s``.

    ``t = d̄ / (s_d/√n)`` with ``n − 1`` degrees of freedom (two-sided p);
    ``d_z = d̄ / s_d``; the interval is ``d̄ ± t_{0.975, n−1} · s_d/√n``; the sign test
    is :func:`scipy.stats.binomtest` on the positive among the non-zero differences.
    With ``n = 1`` the std is 0 and the t-based numbers are ``None``.
    """
    d = [float(v) for v in differences]
    n = len(d)
    positive = sum(v > 0 for v in d)
    negative = sum(v < 0 for v in d)
    sign_p = (
        float(stats.binomtest(positive, positive + negative, 0.5).pvalue)
        if positive + negative
        else None
    )
    if n == 0:
        return PairedStatistics(0, math.nan, math.nan, None, None, None)
    mean = math.fsum(d) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else 0.0
    untested = PairedStatistics(
        n, mean, std, None, None, None, positive=positive, negative=negative, sign_p=sign_p
    )
    # zero variance up to rounding: treat as exactly constant
    if n < 2 or std <= 1e-12 * max(1.0, abs(mean)):
        return untested
    se = std / math.sqrt(n)
    t = mean / se
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, df=n - 1)) * se
    return dataclasses.replace(
        untested,
        t=t,
        p=float(2.0 * stats.t.sf(abs(t), df=n - 1)),
        d_z=mean / std,
        ci_low=mean - half,
        ci_high=mean + half,
    )


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's (1979) step-down adjusted p-values, in the order given.

    With the ``m`` defined p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of
    ``p_(i)`` is ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``; rejecting where it is below
    α is Holm's procedure, which keeps the probability of any false rejection among the
    ``m`` at most α. ``None`` entries (untested comparisons) stay ``None`` and are not
    counted in ``m``.
    """
    for p in pvalues:
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"a p-value must lie in [0, 1] (got {p!r})")
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def decide(
    differences: Sequence[float], direction: Direction, *, corrected_p: float | None = None
) -> tuple[Verdict, str]:
    """The verdict on ``d_s = other − baseline`` for a claim that ``other`` is ``direction``.

    Applies the rule of the module docstring (:data:`VERDICT_RULE`) and returns the
    verdict with a one-line reason. ``corrected_p`` is the comparison's Holm-corrected
    p within its claim; left out, the comparison is a family of one (the t-test's p).
    """
    _check_direction(direction)
    s = paired_statistics(differences)
    return _verdict(s, direction, s.p if corrected_p is None else corrected_p)


def _verdict(
    s: PairedStatistics, direction: Direction, corrected_p: float | None
) -> tuple[Verdict, str]:
    n = s.n
    if n < MIN_PAIRS:
        return "inconclusive", f"only {n} paired seed(s); at least {MIN_PAIRS} are needed"
    if s.p is None or corrected_p is None:
        return "inconclusive", (f"all {n} differences equal {s.mean:.4g}: zero variance, no t-test")
    sign = -1.0 if direction == "lower" else 1.0
    agree = s.negative if direction == "lower" else s.positive
    p_text = f"corrected p = {corrected_p:.3g}"
    if corrected_p < ALPHA and sign * s.mean > 0:
        return "supported", f"{direction}, {p_text} < {ALPHA:g}"
    if corrected_p < ALPHA and sign * s.mean < 0:
        return "not supported", f"the opposite, {p_text} < {ALPHA:g}"
    return "inconclusive", (
        f"same direction as claimed in {agree}/{n} seeds, not significant ({p_text})"
    )


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"claim direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})"
        )


@dataclass(frozen=True)
class PairedComparison:
    """One evidence row: a metric of two methods compared seed by seed.

    ``signs`` holds, per seed, ``"+"`` where the difference has the claimed sign,
    ``"−"`` where it has the opposite sign and ``"0"`` for a tie. ``p_corrected`` is
    the t-test's p after Holm's correction over the ``family_size`` tested comparisons
    of its claim (a comparison made on its own is a family of one: ``p_corrected = p``);
    the verdict is decided on it.
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
    p_corrected: float | None = None
    family_size: int = 1

    @property
    def agree(self) -> int:
        """Seeds whose difference has the claimed sign (the sign test's ``k``)."""
        return self.signs.count("+")

    @property
    def untied(self) -> int:
        """Seeds whose difference is not zero (the sign test's ``n``)."""
        return self.signs.count("+") + self.signs.count("−")

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
            "ci_level": CI_LEVEL,
            "ci_low": s.ci_low,
            "ci_high": s.ci_high,
            "t": s.t,
            "df": s.df,
            "p": s.p,
            "p_corrected": self.p_corrected,
            "family_size": self.family_size,
            "sign_k": self.agree,
            "sign_n": self.untied,
            "sign_p": s.sign_p,
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

    The comparison is decided as a family of one; :func:`evaluate_claim` corrects the
    comparisons of a claim together (:func:`correct_within_claim`).

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
    statistics = paired_statistics(differences)
    verdict, reason = _verdict(statistics, direction, statistics.p)
    return PairedComparison(
        metric=metric,
        baseline=baseline_name,
        other=other_name,
        direction=direction,
        seeds=seeds,
        baseline_values=a,
        other_values=b,
        statistics=statistics,
        signs=signs,
        verdict=verdict,
        reason=reason,
        context=context,
        p_corrected=statistics.p,
        family_size=1 if statistics.p is not None else 0,
    )


def correct_within_claim(
    evidence: Sequence[PairedComparison],
) -> tuple[PairedComparison, ...]:
    """The comparisons of one claim with Holm-corrected p-values and verdicts decided on them."""
    adjusted = holm([e.statistics.p for e in evidence])
    m = sum(p is not None for p in adjusted)
    corrected = []
    for e, p in zip(evidence, adjusted, strict=True):
        verdict, reason = _verdict(e.statistics, e.direction, p)
        corrected.append(
            dataclasses.replace(e, p_corrected=p, family_size=m, verdict=verdict, reason=reason)
        )
    return tuple(corrected)


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
    """Run every comparison of ``spec`` on the final values, Holm-corrected within the
    claim (:func:`correct_within_claim`); comparisons whose runs are missing are listed."""
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
    evidence = list(correct_within_claim(evidence))
    verdict, summary = combine_verdicts(e.verdict for e in evidence)
    if evidence:
        agree = sum(_claimed_mean(e) for e in evidence)
        summary += f"; the mean difference has the claimed sign in {agree} of {len(evidence)}"
    return ClaimResult(spec, tuple(evidence), verdict, summary, tuple(missing))


def _claimed_mean(comparison: PairedComparison) -> bool:
    """Whether the mean difference points the way the claim says (ties do not)."""
    mean = comparison.mean_difference
    return mean < 0 if comparison.direction == "lower" else mean > 0
