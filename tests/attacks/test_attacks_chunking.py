"""Internal chunking (``chunk_size``) changes only the speed, and C&W skips stopped inputs."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import RANDOM, make_attack
from torch import nn

from robustcompress import attacks
from robustcompress.attacks.base import (
    CHUNK_MEMORY_BUDGET,
    MIN_CHUNK,
    activation_bytes_per_input,
    auto_chunk_size,
)
from robustcompress.errors import AttackError

#: Per-input attacks with sign steps: chunking leaves even float32 results bit-identical.
CHUNKED = ["fgsm", "pgd", "bim", "bim_ll", "gnm"]
#: Continuous steps (float rounding differs with the number of rows) or random draws.
UNCHUNKED = ["pgd_l2", "deepfool", "deepfool_linf", "rfgsm", "noise"]


def _run_sizes(attack: attacks.Attack, model: nn.Module, x, y) -> list[int]:
    """The batch sizes ``attack.run`` is called with for one ``attack(model, x, y)``."""
    sizes: list[int] = []
    run = attack.run

    def spy(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, g) -> torch.Tensor:
        sizes.append(len(xs))
        return run(model, xs, ys, g)

    attack.run = spy  # type: ignore[method-assign]
    attack(model, x, y)
    return sizes


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10)
    ).eval()


@pytest.mark.parametrize("name", CHUNKED)
def test_chunked_equals_unchunked_exactly(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = make_attack(name)
    assert attack.chunkable()
    whole = attack.replace(chunk_size=None)(tiny_model, x, y)
    assert torch.equal(whole, attack.replace(chunk_size=3)(tiny_model, x, y))


@pytest.mark.parametrize("name", UNCHUNKED)
def test_continuous_step_attacks_run_the_whole_batch(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = make_attack(name, seed=0, chunk_size=3)
    assert not attack.chunkable()
    sizes = _run_sizes(attack, tiny_model, x, y)
    assert sizes == [len(x)]


@pytest.mark.parametrize("name", CHUNKED)
def test_chunked_sign_attacks_are_exact_in_float32_on_a_conv_model(name) -> None:
    model = _small_cnn()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(40, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (40,), generator=g)
    attack = make_attack(name)
    whole = attack.replace(chunk_size=None)(model, x, y)
    assert torch.equal(whole, attack.replace(chunk_size=7)(model, x, y))


CW_SETTINGS = {"steps": 60, "search_steps": 3, "learning_rate": 0.05, "initial_const": 0.1}


def test_chunked_cw_equals_one_batch_in_float64(tiny_model, tiny_batch) -> None:
    model = tiny_model.double()
    x, y = tiny_batch
    x = x.double()
    attack = make_attack("cw_l2", **CW_SETTINGS)
    assert attack.chunkable()
    assert _run_sizes(attack.replace(chunk_size=3), model, x, y) == [3, 3, 2]
    whole = attack.replace(chunk_size=None)(model, x, y)
    assert not torch.equal(whole, x)  # the search fooled something
    torch.testing.assert_close(attack.replace(chunk_size=3)(model, x, y), whole, rtol=0, atol=1e-9)


def test_chunked_cw_in_float32_differs_at_most_by_rounding_on_a_conv_model() -> None:
    model = _small_cnn()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(40, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    attack = make_attack("cw_l2", **CW_SETTINGS)
    whole = attack.replace(chunk_size=None)(model, x, y)
    chunked = attack.replace(chunk_size=7)(model, x, y)
    with torch.no_grad():
        fooled_whole = model(whole).argmax(dim=1) != y
        fooled_chunked = model(chunked).argmax(dim=1) != y
    assert fooled_whole.sum() >= 10
    assert torch.equal(fooled_whole, fooled_chunked)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_the_batch_is_split_into_chunks_of_chunk_size(tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    assert _run_sizes(attacks.get("fgsm", chunk_size=3), tiny_model, x, y) == [3, 3, 2]
    assert _run_sizes(attacks.get("fgsm", chunk_size=None), tiny_model, x, y) == [8]


#: APGD draws its random starts for the whole batch and then chunks itself
#: (tests/attacks/test_apgd.py checks that only the speed changes).
SELF_CHUNKED = {"apgd", "apgd_l2", "apgd_t", "apgd_t_l2", "autoattack"}


@pytest.mark.parametrize("name", sorted(RANDOM - SELF_CHUNKED))
def test_attacks_with_random_draws_are_never_chunked(name, tiny_model, tiny_batch) -> None:
    x, y = tiny_batch
    attack = make_attack(name, seed=0)
    assert not attack.chunkable()
    assert torch.equal(
        attack.replace(chunk_size=None)(tiny_model, x, y),
        attack.replace(chunk_size=3)(tiny_model, x, y),
    )


def test_pgd_with_random_start_and_l2_gnm_are_not_chunked() -> None:
    assert not attacks.get("pgd", random_start=True).chunkable()
    assert not attacks.get("gnm", norm="l2").chunkable()


def test_activation_bytes_count_every_leaf_output() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh())
    x = torch.rand(5, 1, 8, 8)
    assert activation_bytes_per_input(model, x) == (64 + 10 + 10) * 4
    assert not model._forward_hooks and not model[1]._forward_hooks  # hooks removed


def test_auto_chunk_size_fills_the_memory_budget() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh())
    assert auto_chunk_size(model, torch.rand(MIN_CHUNK, 1, 8, 8)) == MIN_CHUNK  # small: whole
    big = torch.rand(MIN_CHUNK + 1, 1, 8, 8)
    assert auto_chunk_size(model, big) == CHUNK_MEMORY_BUDGET // (84 * 4)
    huge = nn.Sequential(nn.Flatten(), nn.Linear(64, CHUNK_MEMORY_BUDGET // 4))
    assert auto_chunk_size(huge, big) == MIN_CHUNK  # never below the floor


@pytest.mark.parametrize("value", [0, -1, True, "fast", 2.5])
def test_invalid_chunk_size_is_rejected(value) -> None:
    with pytest.raises(AttackError, match="chunk_size"):
        attacks.get("pgd", chunk_size=value)


def test_chunk_size_is_not_part_of_repr_or_equality() -> None:
    assert attacks.get("fgsm", chunk_size=4) == attacks.get("fgsm")
    assert "chunk_size" not in repr(attacks.get("fgsm", chunk_size=4))


def test_cw_computes_only_running_inputs(tiny_model, tiny_batch) -> None:
    """With early abort, stopped inputs leave the forward passes (fewer rows than n·steps)."""
    x, y = tiny_batch
    rows: list[int] = []
    handle = tiny_model.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    try:
        settings = {"steps": 50, "search_steps": 2, "learning_rate": 0.05}
        with_abort = make_attack("cw_l2", **settings, chunk_size=None)(tiny_model, x, y)
        aborted_rows = sum(rows)
        rows.clear()
        without = make_attack("cw_l2", **settings, abort_early=False)(tiny_model, x, y)
    finally:
        handle.remove()
    assert sum(rows) == len(x) * 50 * 2
    assert 0 < aborted_rows < sum(rows)
    assert with_abort.shape == without.shape == x.shape


def test_chunk_size_is_left_out_of_the_settings() -> None:
    assert attacks.get("fgsm", chunk_size=4).settings() == {"seed": None, "eps": 0.05, "clip": True}
    assert "chunk_size" not in attacks.list_attacks()["pgd"]


def test_activation_bytes_are_measured_once_per_model_and_shape() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    calls: list[int] = []
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    first = activation_bytes_per_input(model, torch.rand(5, 1, 8, 8))
    assert activation_bytes_per_input(model, torch.rand(9, 1, 8, 8)) == first
    assert calls == [1]  # one probe pass on one input, then remembered
    activation_bytes_per_input(model, torch.rand(5, 64))  # another input shape: measured
    assert calls == [1, 1]
