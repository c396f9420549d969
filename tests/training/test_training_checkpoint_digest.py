"""Checkpoint digests: recorded at write time, verified on reading; a resumed run falls
back past corrupt checkpoints to the newest good one (robustcompress.training.checkpoint)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import Stop, StopAt

from robustcompress.models import create_model
from robustcompress.training import Trainer, read_checkpoint
from robustcompress.training.checkpoint import (
    CorruptCheckpointError,
    checkpoint_name,
    digest_path,
    list_checkpoints,
    newest_good_checkpoint,
    write_checkpoint,
)
from robustcompress.training.trackers import read_metrics


def _save(directory: Path, step: int, epoch: int | None = None) -> Path:
    torch.manual_seed(step)
    model = create_model("fcnn", hidden=(8,))
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"model": {"name": "fcnn", "kwargs": {"hidden": [8]}}, "step": step, "epoch": 1}
    return write_checkpoint(directory / checkpoint_name(step, epoch), tensors, meta)


def flip_bytes(path: Path, where: int = -16, count: int = 4) -> None:
    """Invert ``count`` bytes of ``path`` at offset ``where`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    start = where % len(data)
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_sha256_is_written_beside_the_checkpoint(tmp_path: Path) -> None:
    path = _save(tmp_path, 4, epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".sha256"]
    digest, name = digest_path(path).read_text().split()
    assert name == path.name and digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_flipped_tensor_bytes_are_caught_although_the_file_still_loads(tmp_path: Path) -> None:
    path = _save(tmp_path, 4, epoch=1)
    flip_bytes(path)  # the last bytes are tensor data: safetensors cannot tell
    assert load_file(str(path))
    with pytest.raises(CorruptCheckpointError, match=r"is corrupt: its SHA-256 is .*recorded"):
        read_checkpoint(path)


def test_a_checkpoint_without_digest_is_accepted_if_it_loads(tmp_path: Path) -> None:
    path = _save(tmp_path, 4, epoch=1)
    digest_path(path).unlink()  # as written before digests were recorded
    assert read_checkpoint(path).step == 4
    flip_bytes(path, where=3)  # the header's length: it no longer parses
    with pytest.raises(CorruptCheckpointError, match="cannot be read"):
        read_checkpoint(path)


def test_newest_good_checkpoint_sets_the_corrupt_ones_aside(tmp_path: Path) -> None:
    good = _save(tmp_path, 4, epoch=1)
    bad_epoch = _save(tmp_path, 8, epoch=2)
    bad_mid = _save(tmp_path, 10)
    flip_bytes(bad_epoch)
    digest_path(bad_mid).unlink()
    flip_bytes(bad_mid, where=3)
    seen: list[tuple[str, str]] = []
    checkpoint = newest_good_checkpoint(tmp_path, on_corrupt=lambda p, r: seen.append((p.name, r)))
    assert checkpoint is not None and checkpoint.path == good
    assert [name for name, _ in seen] == [bad_mid.name, bad_epoch.name]
    assert list_checkpoints(tmp_path) == [good]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [good.name, good.name + ".sha256", bad_mid.name + ".corrupt", bad_epoch.name + ".corrupt"]
    )
    flip_bytes(good)
    assert newest_good_checkpoint(tmp_path, set_aside=False) is None
    assert list_checkpoints(tmp_path) == [good]  # left in place


def test_resume_falls_back_past_a_corrupt_checkpoint_to_the_same_result(
    make_trainer: Any, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {"epochs": 3, "track_every": 1, "checkpoint_every": 3}
    reference: Trainer = make_trainer(run_dir=tmp_path / "reference", **kw)
    reference.fit()
    assert sorted(p.name for p in reference.checkpoint_dir.iterdir()) == [
        f"ckpt-{s:08d}-e{e:03d}.safetensors{x}"
        for s, e in ((4, 1), (8, 2), (12, 3))
        for x in ("", ".sha256")
    ]  # the mid-epoch checkpoints went with their digests

    killed: Trainer = make_trainer(run_dir=tmp_path / "resumed", callbacks=[StopAt(10)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    names = [p.name for p in list_checkpoints(killed.checkpoint_dir)]
    assert names == [
        "ckpt-00000004-e001.safetensors",
        "ckpt-00000008-e002.safetensors",
        "ckpt-00000009.safetensors",
    ]
    for name in names[1:]:
        flip_bytes(killed.checkpoint_dir / name)

    resumed: Trainer = make_trainer(run_dir=tmp_path / "resumed", **kw)
    result = resumed.fit()
    assert result.resumed_from_step == 4
    log = (tmp_path / "resumed" / "log.txt").read_text()
    assert "ckpt-00000009.safetensors is corrupt: its SHA-256" in log
    assert "set aside as ckpt-00000008-e002.safetensors.corrupt" in log
    assert "falling back to the newest good checkpoint, ckpt-00000004-e001.safetensors" in log
    # metrics.jsonl was cut back to the epoch-1 checkpoint: the rows equal an uninterrupted run's
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [p.name for p in list_checkpoints(resumed.checkpoint_dir)] == [
        "ckpt-00000004-e001.safetensors",
        "ckpt-00000008-e002.safetensors",
        "ckpt-00000012-e003.safetensors",
    ]
    assert read_checkpoint(resumed.checkpoint_dir / names[1]).step == 8  # written again, good


def test_resume_with_every_checkpoint_corrupt_starts_again(
    make_trainer: Any, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {"epochs": 2, "track_every": 1}
    reference: Trainer = make_trainer(run_dir=tmp_path / "reference", **kw)
    reference.fit()
    killed: Trainer = make_trainer(run_dir=tmp_path / "resumed", callbacks=[StopAt(6)], **kw)
    with pytest.raises(Stop):
        killed.fit()
    (only,) = list_checkpoints(killed.checkpoint_dir)
    flip_bytes(only)
    resumed: Trainer = make_trainer(run_dir=tmp_path / "resumed", **kw)
    assert resumed.fit().resumed_from_step is None
    assert (
        "no good checkpoint left: training again from step 0"
        in (tmp_path / "resumed" / "log.txt").read_text()
    )
    assert read_metrics(resumed.metrics_path) == read_metrics(reference.metrics_path)
