"""Safetensors + JSON checkpoints (robustcompress.training.checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustcompress.errors import CheckpointError
from robustcompress.models import create_model
from robustcompress.training.checkpoint import (
    checkpoint_name,
    find_checkpoint,
    is_epoch_end,
    list_checkpoints,
    load_model,
    load_weights,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    read_checkpoint,
    write_checkpoint,
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("fcnn", hidden=(8, 8))


def _save(directory: Path, model: torch.nn.Module, step: int, epoch: int | None = None) -> Path:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {
        "model": {"name": model.registry_name, "kwargs": model.model_kwargs},
        "step": step,
        "epoch": epoch or 1,
    }
    return write_checkpoint(directory / checkpoint_name(step, epoch), tensors, meta)


def test_names_sort_by_step_and_mark_epoch_ends(tmp_path: Path) -> None:
    model = _model()
    _save(tmp_path, model, 12, epoch=1)
    _save(tmp_path, model, 3)
    _save(tmp_path, model, 100)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == [
        "ckpt-00000003.safetensors",
        "ckpt-00000012-e001.safetensors",
        "ckpt-00000100.safetensors",
    ]
    assert is_epoch_end(tmp_path / names[1]) and not is_epoch_end(tmp_path / names[0])
    assert find_checkpoint(tmp_path) == tmp_path / names[-1]


def test_roundtrip_and_no_temporary_left(tmp_path: Path) -> None:
    model = _model()
    path = _save(tmp_path / "checkpoints", model, 5, epoch=1)
    # the checkpoint and the SHA-256 recorded beside it, no temporary file
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256"]
    checkpoint = read_checkpoint(path)
    assert checkpoint.step == 5 and checkpoint.epoch == 1
    for key, value in model.state_dict().items():
        assert torch.equal(checkpoint.model_state()[key], value)


@pytest.mark.parametrize("where", ["run_dir", "checkpoints_dir", "file"])
def test_load_model_from_run_dir_checkpoints_dir_or_file(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = _model(seed=1)
    path = _save(tmp_path / "checkpoints", trained, 7, epoch=1)
    target = {"run_dir": tmp_path, "checkpoints_dir": path.parent, "file": path}[where]

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must never be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    model = load_model(target)
    assert not model.training
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), trained.eval()(x))


def test_load_weights_rejects_another_architecture(tmp_path: Path) -> None:
    path = _save(tmp_path, _model(), 1)
    other = create_model("fcnn", hidden=(8,))
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_weights(other, path)


def test_missing_and_corrupt_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        find_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        find_checkpoint(tmp_path)
    bad = tmp_path / checkpoint_name(1)
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="is corrupt: it cannot be read"):
        read_checkpoint(bad)


def test_optimizer_momentum_roundtrip_continues_identically(tmp_path: Path) -> None:
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step(model, opt)
    tensors, scalars = optimizer_to_checkpoint(opt)
    assert any(k.endswith("momentum_buffer") for k in tensors)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    path = write_checkpoint(tmp_path / checkpoint_name(1), tensors, {"optimizer": scalars})

    clone = _model(seed=99)
    clone_opt = torch.optim.SGD(clone.parameters(), lr=0.5, momentum=0.0)
    checkpoint = load_weights(clone, path)
    optimizer_from_checkpoint(clone_opt, checkpoint, torch.device("cpu"))
    assert clone_opt.param_groups[0]["momentum"] == 0.9
    step(model, opt)
    step(clone, clone_opt)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
