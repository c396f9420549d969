"""evaluate(progress=...): the events it sends, and that it changes no result."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from robustcompress import attacks
from robustcompress.evaluation import evaluate
from robustcompress.evaluation.robustness import EvaluationProgress


def _same(a: object, b: object) -> None:
    """Equal, field by field, arrays exactly (an attack's wall-clock ``seconds`` aside)."""
    assert type(a) is type(b)
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.name != "seconds":
                _same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)  # type: ignore[arg-type]
    elif isinstance(a, dict):
        assert a.keys() == b.keys()  # type: ignore[attr-defined]
        for key in a:
            _same(a[key], b[key])  # type: ignore[index]
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)  # type: ignore[call-overload]
    else:
        assert a == b


def _run(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], progress=None):  # type: ignore[no-untyped-def]
    chosen = {
        "pgd": attacks.get("pgd", steps=3, alpha=0.02, random_start=True, seed=3),
        "fgsm": attacks.get("fgsm"),
        "deepfool": attacks.get("deepfool", max_iter=5),
    }
    return evaluate(model, batch, chosen, eps=[0.02, 0.1], batch_size=16, progress=progress)


def test_results_are_identical_with_and_without_a_progress_callback(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    events: list[EvaluationProgress] = []
    without = _run(small_model, small_batch)
    with_progress = _run(small_model, small_batch, events.append)
    assert events
    assert with_progress.references and with_progress.masking  # compared too
    _same(without, with_progress)


def test_events_name_the_attack_and_eps_and_count_inputs(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    events: list[EvaluationProgress] = []
    _run(small_model, small_batch, events.append)
    n = len(small_batch[1])  # 40 inputs in batches of 16, 16, 8
    running = events[:-1]
    assert {(e.attack, e.eps) for e in running} >= {
        ("pgd", 0.02),
        ("pgd", 0.1),
        ("fgsm", 0.02),
        ("fgsm", 0.1),
        ("deepfool", None),  # run once, unbounded
        ("reference_fgsm", 1.0),
    }
    assert sorted({e.inputs_done for e in running}) == [0, 16, 32]
    assert all(e.inputs_total == n for e in events)
    work = [e.work_done for e in events]
    assert work == sorted(work) and work[0] == 0.0
    assert all(e.inputs_done <= e.work_done < e.inputs_done + 16 for e in running)
    assert events[-1] == EvaluationProgress(None, None, n, n, float(n))


def test_a_loader_without_a_length_still_reports(
    small_model: nn.Module, small_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = small_batch
    events: list[EvaluationProgress] = []
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    evaluate(small_model, batches, "fgsm", eps=0.05, check_masking=False, progress=events.append)
    assert [e.inputs_done for e in events] == [0, 10, 20, 30, 40]
    assert all(e.inputs_total is None for e in events)
