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
"""

from __future__ import annotations

import json
import os
import re
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
_NAME = re.compile(r"^ckpt-(\d{8})(?:-e(\d{3,}))?\.safetensors$")


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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load the checkpoint ``path`` designates (see :func:`find_checkpoint`)."""
    file = find_checkpoint(path)
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {file}: {exc}; delete it to fall back to an earlier one"
        ) from exc
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{file} is a safetensors file without robustcompress metadata; "
            "it was not written by robustcompress.training"
        )
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}: metadata is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{file}: unsupported checkpoint format {meta.get('format')!r} (expected {FORMAT!r})"
        )
    return Checkpoint(file, tensors, meta)


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
