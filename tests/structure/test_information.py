"""Tests for the KDE mutual-information bounds (Kolchinsky & Tracey 2017; docs/algorithms.md, KDE
mutual-information bounds)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcompress.errors import ConfigError
from robustcompress.models import create_model, hidden_layer_names
from robustcompress.structure.information import (
    LabelMIEstimates,
    MIBounds,
    layer_mutual_information,
    mixture_entropy_bounds,
    mutual_information_input,
    mutual_information_label,
)

SIGMA2 = 0.1


def _mean_log_mass(H: torch.Tensor, c: float) -> torch.Tensor:
    """Reference: (1/N) Σ_i [logsumexp_j(−‖h_i − h_j‖²/c) − ln N], full N × N matrix."""
    H = H.double()
    D = torch.cdist(H, H).square()
    return (torch.logsumexp(-D / c, dim=1) - math.log(H.shape[0])).mean()


def _reference_input(H: torch.Tensor, s2: float = SIGMA2) -> tuple[float, float]:
    """(lower, upper) I(X;T) in nats from the unchunked reference."""
    return -float(_mean_log_mass(H, 8 * s2)), -float(_mean_log_mass(H, 2 * s2))


def _reference_label(H: torch.Tensor, y: torch.Tensor, s2: float = SIGMA2) -> dict[str, float]:
    """ibsgd estimates and bracket of I(T;Y) in nats, class by class with full matrices."""
    n = H.shape[0]
    cond = {"kl": 0.0, "bd": 0.0}
    for label in y.unique():
        member = H[y == label]
        p = member.shape[0] / n
        cond["kl"] += p * float(_mean_log_mass(member, 2 * s2))
        cond["bd"] += p * float(_mean_log_mass(member, 8 * s2))
    all_kl, all_bd = float(_mean_log_mass(H, 2 * s2)), float(_mean_log_mass(H, 8 * s2))
    # Ĥ_D(T) − Σ p_y Ĥ_D'(T|y) = −m_all,D + Σ p_y m_y,D' (the d-constants cancel).
    return {
        "kl_estimate": cond["kl"] - all_kl,
        "bd_estimate": cond["bd"] - all_bd,
        "lower": cond["kl"] - all_bd,
        "upper": cond["bd"] - all_kl,
    }


def _entropy_of_labels(y: torch.Tensor) -> float:
    p = torch.unique(y, return_counts=True)[1].double() / y.numel()
    return float(-(p * p.log()).sum())


# --- agreement with an unchunked reference -----------------------------------------------------


def test_input_bounds_match_unchunked_reference() -> None:
    torch.manual_seed(0)
    H = 0.4 * torch.randn(120, 6)
    bounds = mutual_information_input(H, unit="nats")
    lower, upper = _reference_input(H)
    assert bounds.lower == pytest.approx(lower, abs=1e-10)
    assert bounds.upper == pytest.approx(upper, abs=1e-10)
    assert bounds.unit == "nats"
    assert 0.5 < lower < upper < math.log(120) - 0.5  # an informative, non-saturated case


def test_label_estimates_match_class_by_class_reference() -> None:
    torch.manual_seed(1)
    y = torch.randint(0, 4, (150,))
    H = 0.3 * torch.randn(150, 5) + 0.4 * torch.nn.functional.one_hot(y, 5).double()
    got = mutual_information_label(H, y, unit="nats")
    for key, value in _reference_label(H, y).items():
        assert getattr(got, key) == pytest.approx(value, abs=1e-10), key
    assert got.bracket == MIBounds(got.lower, got.upper, "nats")


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunked_equals_unchunked(chunk_size: int) -> None:
    torch.manual_seed(2)
    H = 0.5 * torch.randn(97, 4)
    y = torch.randint(0, 3, (97,))
    whole_in = mutual_information_input(H, chunk_size=97)
    whole_lab = mutual_information_label(H, y, chunk_size=97)
    part_in = mutual_information_input(H, chunk_size=chunk_size)
    part_lab = mutual_information_label(H, y, chunk_size=chunk_size)
    for a, b in [(whole_in, part_in), (whole_lab, part_lab)]:
        for field in dataclasses.fields(a):
            if field.name != "unit":
                assert getattr(b, field.name) == pytest.approx(getattr(a, field.name), abs=1e-10), (
                    field.name
                )


def test_mixture_entropy_upper_matches_ibsgd_form() -> None:
    """ibsgd ``kde.entropy_estimator_kl``: d/2 − mean(lse(−D/2σ²) − ln N − (d/2) ln(2πσ²))."""
    torch.manual_seed(3)
    H = 0.5 * torch.randn(50, 3).double()
    n, d = H.shape
    D = torch.cdist(H, H).square()
    lse = (
        torch.logsumexp(-D / (2 * SIGMA2), dim=1)
        - math.log(n)
        - d / 2 * math.log(2 * math.pi * SIGMA2)
    )
    ibsgd_kl = d / 2 - float(lse.mean())
    got = mixture_entropy_bounds(H, SIGMA2, unit="nats")
    assert got.upper == pytest.approx(ibsgd_kl, abs=1e-10)


# --- the entropy bounds bracket a Monte-Carlo entropy -----------------------------------------


def test_entropy_bounds_bracket_monte_carlo_entropy() -> None:
    """Ĥ_BD ≤ H_MC(T) ≤ Ĥ_KL for p(t) = (1/N) Σ N(t; h_i, σ²I) (Kolchinsky & Tracey 2017)."""
    gen = torch.Generator().manual_seed(4)
    centers = 0.4 * torch.randn(8, 2, generator=gen, dtype=torch.float64)
    n, d = centers.shape
    samples = 200_000
    which = torch.randint(0, n, (samples,), generator=gen)
    t = centers[which] + math.sqrt(SIGMA2) * torch.randn(
        samples, d, generator=gen, dtype=torch.float64
    )
    sq = torch.cdist(t, centers).square()
    log_p = (
        torch.logsumexp(-sq / (2 * SIGMA2), dim=1)
        - math.log(n)
        - d / 2 * math.log(2 * math.pi * SIGMA2)
    )
    h_mc = float(-log_p.mean())
    stderr = float(log_p.std()) / math.sqrt(samples)
    bounds = mixture_entropy_bounds(centers, SIGMA2, unit="nats")
    # The bracket must be wide compared with the Monte-Carlo error for this to test anything.
    assert bounds.upper - bounds.lower > 50 * stderr
    assert bounds.lower <= h_mc + 4 * stderr
    assert h_mc <= bounds.upper + 4 * stderr


def test_entropy_of_a_single_gaussian_is_exact() -> None:
    """One component: both bounds equal H(N(h, σ²I_d)) = (d/2) ln(2πeσ²)."""
    H = torch.tensor([[0.3, -1.0, 2.0]])
    expected = 1.5 * math.log(2 * math.pi * math.e * 0.25)
    got = mixture_entropy_bounds(H, 0.25, unit="nats")
    assert got.lower == pytest.approx(expected, abs=1e-12)
    assert got.upper == pytest.approx(expected, abs=1e-12)


# --- closed forms ------------------------------------------------------------------------------


def test_identical_activations_carry_no_information() -> None:
    H = torch.full((40, 7), 3.25)
    y = torch.arange(40) % 4
    bounds = mutual_information_input(H)
    assert bounds.lower == pytest.approx(0.0, abs=1e-12)
    assert bounds.upper == pytest.approx(0.0, abs=1e-12)
    label = mutual_information_label(H, y)
    for value in (label.kl_estimate, label.bd_estimate, label.lower, label.upper):
        assert value == pytest.approx(0.0, abs=1e-12)


def test_well_separated_points_reach_log_n() -> None:
    """Every point its own far-away location: I(X;T) = ln N for both bounds."""
    n = 30
    H = 100.0 * torch.eye(n)
    bounds = mutual_information_input(H, unit="nats")
    assert bounds.lower == pytest.approx(math.log(n), abs=1e-12)
    assert bounds.upper == pytest.approx(math.log(n), abs=1e-12)


@pytest.mark.parametrize("counts", [(25, 25, 25, 25), (10, 30, 60)])
def test_separated_class_clusters_give_label_entropy(counts: tuple[int, ...]) -> None:
    """K far-apart clusters of identical points: every I(T;Y) quantity equals H(Y)."""
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    H = 50.0 * torch.nn.functional.one_hot(y).double()
    h_y = _entropy_of_labels(y)
    got = mutual_information_label(H, y, unit="nats")
    for value in (got.kl_estimate, got.bd_estimate, got.lower, got.upper):
        assert value == pytest.approx(h_y, abs=1e-12)
    # I(X;T) of such a layer is the entropy of the cluster index, i.e. H(Y) as well.
    inp = mutual_information_input(H, unit="nats")
    assert inp.lower == pytest.approx(h_y, abs=1e-12)
    assert inp.upper == pytest.approx(h_y, abs=1e-12)


def test_spread_class_clusters_approach_log_k() -> None:
    """Many points per class, spread ≪ σ, classes ≫ σ apart: I(T;Y) → ln K, inside the bracket."""
    torch.manual_seed(5)
    k, per_class = 5, 40
    y = torch.arange(k).repeat_interleave(per_class)
    offsets = 20.0 * torch.nn.functional.one_hot(y).double()
    log_k = math.log(k)
    widths = []
    for spread in (0.03, 0.003):
        got = mutual_information_label(
            offsets + spread * torch.randn(k * per_class, k), y, unit="nats"
        )
        # True I(T;Y) equals ln K up to e^{-400}: the rigorous bracket must contain it.
        assert got.lower <= log_k <= got.upper
        for value in (got.kl_estimate, got.bd_estimate):
            assert value == pytest.approx(log_k, abs=1e-12)
        widths.append(got.upper - got.lower)
    assert widths[1] < 0.05 * widths[0]
    assert widths[1] < 1e-3


def test_single_sample_has_zero_information() -> None:
    H = torch.tensor([[1.0, 2.0]])
    assert mutual_information_input(H) == MIBounds(0.0, 0.0, "bits")
    label = mutual_information_label(H, torch.tensor([3]))
    assert (label.lower, label.upper) == (0.0, 0.0)


def test_bits_are_nats_over_log_two() -> None:
    torch.manual_seed(6)
    H = 0.3 * torch.randn(60, 3)
    y = torch.randint(0, 3, (60,))
    for fn, args in [
        (mutual_information_input, (H,)),
        (mutual_information_label, (H, y)),
        (mixture_entropy_bounds, (H,)),
    ]:
        bits, nats = fn(*args, unit="bits"), fn(*args, unit="nats")
        assert bits.unit == "bits"
        for field in dataclasses.fields(bits):
            if field.name != "unit":
                assert getattr(bits, field.name) == pytest.approx(
                    getattr(nats, field.name) / math.log(2), rel=1e-12
                )


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 6),
    scale=st.floats(1e-3, 10.0),
    classes=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_bound_orderings(n: int, d: int, scale: float, classes: int, seed: int) -> None:
    """0 ≤ I_lo ≤ I_up ≤ ln N; lower ≤ kl, bd ≤ upper; kl, bd ≤ H(Y)."""
    gen = torch.Generator().manual_seed(seed)
    H = scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    tol = 1e-12
    inp = mutual_information_input(H, unit="nats", chunk_size=16)
    assert -tol <= inp.lower <= inp.upper + tol
    assert inp.upper <= math.log(n) + tol
    lab = mutual_information_label(H, y, unit="nats", chunk_size=16)
    for estimate in (lab.kl_estimate, lab.bd_estimate):
        assert lab.lower - tol <= estimate <= lab.upper + tol
        assert estimate <= _entropy_of_labels(y) + tol
    ent = mixture_entropy_bounds(H, unit="nats")
    assert ent.lower <= ent.upper + tol


def test_information_grows_with_activation_scale() -> None:
    """D_ij scales as c², so both bounds are nondecreasing in c (the scale confound)."""
    torch.manual_seed(7)
    H = torch.randn(80, 4)
    values = [mutual_information_input(c * H) for c in (0.01, 0.1, 0.3, 1.0, 3.0)]
    for smaller, larger in itertools.pairwise(values):
        assert smaller.lower <= larger.lower
        assert smaller.upper <= larger.upper
    assert values[0].upper < 0.01 and values[-1].lower > 0.99 * math.log2(80)


def test_invariant_to_row_order_and_label_names() -> None:
    torch.manual_seed(8)
    H = 0.3 * torch.randn(50, 3)
    y = torch.randint(0, 3, (50,))
    perm = torch.randperm(50)
    base = mutual_information_label(H, y)
    shuffled = mutual_information_label(H[perm], y[perm])
    renamed = mutual_information_label(H, 7 * y - 100)
    for other in (shuffled, renamed):
        for field in ("kl_estimate", "bd_estimate", "lower", "upper"):
            assert getattr(other, field) == pytest.approx(getattr(base, field), abs=1e-10)


def test_results_are_frozen() -> None:
    bounds = mutual_information_input(torch.zeros(3, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        bounds.lower = 1.0  # type: ignore[misc]
    assert isinstance(
        mutual_information_label(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)),
        LabelMIEstimates,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    torch.manual_seed(9)
    H = torch.randn(70, 5)
    y = torch.randint(0, 3, (70,))
    cpu = mutual_information_label(H, y)
    gpu = mutual_information_label(H.cuda(), y.cuda())
    assert gpu.upper == pytest.approx(cpu.upper, abs=1e-10)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"H": torch.zeros(5)}, "N × d"),
        ({"H": torch.zeros(0, 3)}, "empty"),
        ({"H": torch.tensor([[0.0, float("nan")]])}, "NaN"),
        ({"H": [[0.0]]}, "torch.Tensor"),
        ({"noise_variance": 0.0}, "> 0"),
        ({"noise_variance": float("inf")}, "> 0"),
        ({"unit": "bans"}, "unit"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    args = {"H": torch.zeros(4, 2), **kwargs}
    with pytest.raises(ConfigError, match=match):
        mutual_information_input(**args)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.zeros(3, dtype=torch.long), "one class per sample"),
        (torch.zeros(4, 1, dtype=torch.long), "one class per sample"),
        (torch.zeros(4), "integer"),
        ([0, 1, 0, 1], "torch.Tensor"),
    ],
)
def test_invalid_labels_raise_config_error(labels: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mutual_information_label(torch.zeros(4, 2), labels)  # type: ignore[arg-type]


# --- per-layer helper --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fcnn_sample() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(10)
    model = create_model("fcnn")
    x = torch.rand(90, 1, 28, 28)
    y = torch.randint(0, 10, (90,))
    return model, x, y


def test_layer_helper_one_record_per_fcnn_hidden_layer(fcnn_sample) -> None:
    model, x, y = fcnn_sample
    model.train()
    records = layer_mutual_information(model, x, y, batch_size=32)
    assert model.training  # mode restored
    names = hidden_layer_names(model)
    assert len(records) == 5
    assert [r["layer"] for r in records] == names
    assert [r["index"] for r in records] == [1, 2, 3, 4, 5]
    for r in records:
        assert (r["dim"], r["n"], r["noise_variance"], r["unit"]) == (20, 90, SIGMA2, "bits")
        assert 0.0 <= r["mi_input_lower"] <= r["mi_input_upper"] <= math.log2(90) + 1e-12
        assert r["mi_label_lower"] <= r["mi_label_kl"] <= r["mi_label_upper"]
        assert r["mi_label_lower"] <= r["mi_label_bd"] <= r["mi_label_upper"]
        assert r["mean_activation_norm"] > 0.0


def test_layer_helper_matches_direct_estimates(fcnn_sample) -> None:
    model, x, y = fcnn_sample
    layer = hidden_layer_names(model)[2]
    (record,) = layer_mutual_information(model, x, y, layers=[layer], unit="nats", batch_size=7)
    with torch.no_grad():
        hidden = model[: int(layer) + 1](x)
    inp = mutual_information_input(hidden, unit="nats")
    lab = mutual_information_label(hidden, y, unit="nats")
    assert record["index"] == 3
    # Batched vs whole float32 forward passes differ in the last bits of h.
    assert record["mi_input_lower"] == pytest.approx(inp.lower, abs=1e-6)
    assert record["mi_input_upper"] == pytest.approx(inp.upper, abs=1e-6)
    assert record["mi_label_kl"] == pytest.approx(lab.kl_estimate, abs=1e-6)
    assert record["mi_label_upper"] == pytest.approx(lab.upper, abs=1e-6)
    assert record["mean_activation_norm"] == pytest.approx(
        float(hidden.norm(dim=1).mean()), rel=1e-6
    )


def test_layer_helper_rejects_mismatched_labels(fcnn_sample) -> None:
    model, x, y = fcnn_sample
    with pytest.raises(ConfigError, match="one class per sample"):
        layer_mutual_information(model, x, y[:-1])
