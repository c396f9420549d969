"""Checkpoints: safetensors for tensors, JSON for everything else; never pickle.

One checkpoint is one ``.safetensors`` file. Its tensors are

* ``model.<name>``: the model's ``state_dict`` (parameters and buffers);
* ``optim.<i>.<key>``: tensor entries of the optimiser state of parameter ``i``
  (SGD momentum buffers);
* ``rng.torch_cpu`` / ``rng.torch_cuda.<d>``: global torch generator states;
* ``mask.<W>``: pruning masks, when the trainer has any;
* ``callback.<key>.<n>``: tensors of the state of callback ``<key>`` (training
  extras, see :class:`~robustcompress.training.trainer.Callback`);

and its safetensors header metadata holds one JSON document under the key
``"robustcompress"``: format version, the model's registry name and keyword
arguments, the run configuration, epoch and step, the optimiser's scalar state
(param groups, non-tensor entries), NumPy and Python RNG states, the trainer's
own counters and, under ``"callbacks"``, each stateful callback's state with its
tensors replaced by ``{"__tensor__": n}`` (:func:`state_to_checkpoint`). Files
are written to a temporary name and moved into place with :func:`os.replace`, so a
run killed while saving leaves the previous checkpoint intact. Loading uses
:func:`safetensors.torch.load_file` and :func:`safetensors.safe_open` only; there
is no ``torch.load`` anywhere.

File names are ``ckpt-<step:08d>.safetensors`` for checkpoints taken within an
epoch and ``ckpt-<step:08d>-e<epoch:03d>.safetensors`` for the ones at epoch ends;
the latest checkpoint is the one with the largest step.

Beside each checkpoint, ``<name>.sha256`` records the SHA-256 of its bytes at write
time (one line in ``sha256sum`` format, so ``sha256sum -c`` checks it too); it is
written before the checkpoint is moved into place. :func:`read_checkpoint` verifies a
checkpoint against it and rejects a file whose bytes changed (a disk error, a copy cut
short), even when the damaged file would still load. Checkpoints written before
digests were recorded have no ``.sha256`` file; they are accepted if they load.
:func:`newest_good_checkpoint` is what a resumed run starts from: the newest
checkpoint that verifies and loads, the corrupt newer ones set aside as
``<name>.corrupt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from torch import nn

from robustcompress.errors import CheckpointError

FORMAT = "robustcompress-checkpoint/1"
METADATA_KEY = "robustcompress"
SUFFIX = ".safetensors"
DIGEST_SUFFIX = ".sha256"
"""Suffix of the file beside a checkpoint that records its SHA-256."""
CORRUPT_SUFFIX = ".corrupt"
"""Suffix a corrupt checkpoint is renamed to by :func:`newest_good_checkpoint`."""
_NAME = re.compile(r"^ckpt-(\d{8})(?:-e(\d{3,}))?\.safetensors$")


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's bytes are damaged: they do not match their recorded SHA-256, or
    the file cannot be parsed. (A readable file of another format is not corrupt.)"""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its file, all tensors, and the JSON metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose name starts with ``prefix + "."``, with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model ``state_dict`` stored in this checkpoint."""
        return self.group("model")


def checkpoint_name(step: int, epoch_end: int | None = None) -> str:
    """``ckpt-<step>.safetensors``, or ``ckpt-<step>-e<epoch>.safetensors`` at an epoch end."""
    tail = f"-e{epoch_end:03d}" if epoch_end is not None else ""
    return f"ckpt-{step:08d}{tail}{SUFFIX}"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory`` sorted by step (oldest first); [] if none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def is_epoch_end(path: str | Path) -> bool:
    """Whether ``path`` names an epoch-end checkpoint."""
    m = _NAME.match(Path(path).name)
    return bool(m and m.group(2) is not None)


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file ``path`` designates: the file itself, or the latest one
    in a checkpoints directory or in the ``checkpoints/`` folder of a run directory.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: give a run directory, its checkpoints/ folder, "
            "or a .safetensors checkpoint file"
        )
    for directory in (path / "checkpoints", path):
        files = list_checkpoints(directory)
        if files:
            return files[-1]
    raise CheckpointError(
        f"no checkpoint files (ckpt-*.safetensors) in {path} or {path / 'checkpoints'}: "
        "the run has not finished an epoch yet, or this is not a run directory"
    )


def write_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON ``meta`` to ``path`` atomically (tmp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    document = json.dumps({"format": FORMAT, **meta}, allow_nan=True)
    data = save_tensors(payload, metadata={METADATA_KEY: document})
    digest = digest_path(path)
    digest_tmp = digest.with_name(f".{digest.name}.tmp")
    digest_tmp.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n", encoding="ascii")
    os.replace(digest_tmp, digest)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def digest_path(path: str | Path) -> Path:
    """The file ``<checkpoint>.sha256`` that records the checkpoint's SHA-256."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def remove_checkpoint(path: str | Path) -> None:
    """Delete a checkpoint file and its ``.sha256`` file (either may be missing)."""
    Path(path).unlink(missing_ok=True)
    digest_path(path).unlink(missing_ok=True)


def verify_checkpoint(path: str | Path) -> str | None:
    """What is wrong with the bytes of checkpoint ``path``, or ``None`` if they match the
    SHA-256 recorded when it was written (or if no digest was recorded: older files)."""
    path = Path(path)
    record = digest_path(path)
    try:
        text = record.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"its digest file {record.name} cannot be read ({exc})"
    expected = text.split()[0].lower() if text.split() else ""
    if len(expected) != 64:
        return f"its digest file {record.name} holds no SHA-256"
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    except OSError as exc:
        return f"it cannot be read ({exc})"
    if sha.hexdigest() != expected:
        return (
            f"its SHA-256 is {sha.hexdigest()[:12]}…, {record.name} recorded "
            f"{expected[:12]}… when it was written"
        )
    return None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load the checkpoint ``path`` designates (see :func:`find_checkpoint`)."""
    file = find_checkpoint(path)
    problem = verify_checkpoint(file)
    if problem is not None:
        raise CorruptCheckpointError(f"checkpoint {file} is corrupt: {problem}")
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {file} is corrupt: it cannot be read ({exc})"
        ) from exc
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{file} is a safetensors file without robustcompress metadata; "
            "it was not written by robustcompress.training"
        )
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CorruptCheckpointError(
            f"checkpoint {file} is corrupt: its metadata is not valid JSON ({exc})"
        ) from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{file}: unsupported checkpoint format {meta.get('format')!r} (expected {FORMAT!r})"
        )
    return Checkpoint(file, tensors, meta)


def newest_good_checkpoint(
    directory: str | Path,
    *,
    set_aside: bool = True,
    on_corrupt: Callable[[Path, str], None] | None = None,
) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that verifies and loads (``None`` if none does).

    Each newer, corrupt one (:class:`CorruptCheckpointError`) is reported with
    ``on_corrupt(path, reason)`` and, with ``set_aside``, renamed ``<name>.corrupt``
    (its ``.sha256`` file deleted), so it is neither resumed from nor counted again.
    Other errors (an unknown format) are raised.
    """
    for file in reversed(list_checkpoints(directory)):
        try:
            return read_checkpoint(file)
        except CorruptCheckpointError as exc:
            if set_aside:
                os.replace(file, file.with_name(file.name + CORRUPT_SUFFIX))
                digest_path(file).unlink(missing_ok=True)
            if on_corrupt is not None:
                on_corrupt(file, str(exc))
    return None


def optimizer_to_checkpoint(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optim.<i>.<key>``) and JSON scalars."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_checkpoint(
    optimizer: torch.optim.Optimizer, checkpoint: Checkpoint, device: torch.device
) -> None:
    """Restore an optimiser saved with :func:`optimizer_to_checkpoint`."""
    saved = checkpoint.meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    for name, tensor in checkpoint.group("optim").items():
        index, _, key = name.partition(".")
        state.setdefault(int(index), {})[key] = tensor.to(device)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{checkpoint.path}: optimiser state does not fit this model ({exc})"
        ) from exc


TENSOR_REF = "__tensor__"


def state_to_checkpoint(prefix: str, state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into tensors ``<prefix>.<n>`` and a JSON document.

    ``state`` is built of dicts with string keys, lists/tuples (stored as lists),
    tensors and JSON scalars (None, bool, int, float, str); each tensor is replaced
    in the document by ``{"__tensor__": n}``. :func:`state_from_checkpoint` inverts it.
    """
    tensors: dict[str, torch.Tensor] = {}

    def pack(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"{prefix}.{len(tensors)}"
            tensors[name] = value
            return {TENSOR_REF: len(tensors) - 1}
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise CheckpointError(f"{where}: state keys must be strings, got {bad[0]!r}")
            return {k: pack(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [pack(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise CheckpointError(
            f"{where}: cannot checkpoint a {type(value).__name__} (use tensors, numbers, "
            "strings, lists and dicts with string keys)"
        )

    return tensors, pack(state, prefix)


def state_from_checkpoint(document: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """The state :func:`state_to_checkpoint` split into ``document`` and ``tensors`` (CPU)."""

    def unpack(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {TENSOR_REF}:
                return tensors[f"{prefix}.{value[TENSOR_REF]}"]
            return {k: unpack(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unpack(v) for v in value]
        return value

    return unpack(document)


def load_weights(model: nn.Module, path: str | Path) -> Checkpoint:
    """Load the model weights of a checkpoint into ``model`` (strict); returns the checkpoint."""
    checkpoint = read_checkpoint(path)
    apply_weights(model, checkpoint)
    return checkpoint


def apply_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Copy the checkpoint's ``model.*`` tensors into ``model`` (strict, on its device)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    state = {k: v.to(device) for k, v in checkpoint.model_state().items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in lines[:3])
        raise CheckpointError(
            f"{checkpoint.path} does not fit the model: {detail}; "
            "use the same model name and kwargs as the run that wrote it"
        ) from exc


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model stored in a checkpoint, in eval mode.

    ``path`` is a run directory, its ``checkpoints/`` folder (the latest checkpoint
    is used) or a checkpoint file. The model is rebuilt with
    :func:`robustcompress.models.create_model` from the registry name and keyword
    arguments stored in the checkpoint, then its weights are loaded.
    """
    from robustcompress.models import create_model

    checkpoint = read_checkpoint(path)
    spec = checkpoint.meta.get("model") or {}
    if "name" not in spec:
        raise CheckpointError(f"{checkpoint.path}: metadata names no model (key 'model.name')")
    model = create_model(spec["name"], **spec.get("kwargs", {}))
    apply_weights(model, checkpoint)
    model.to(device)
    model.eval()
    return model
