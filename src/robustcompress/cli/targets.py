"""The ``MODEL_OR_CHECKPOINT`` argument shared by ``structure`` and ``attack``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robustcompress.errors import ModelError
from robustcompress.models import create_model, list_models, model_spec


@dataclass(frozen=True)
class Target:
    """A model named on the command line.

    Attributes:
        model: the model, in eval mode, on the requested device.
        name: its registry name, when known.
        description: one line saying what it is (untrained model or checkpoint path).
        trained: ``False`` for a bare registry name (random initialisation).
        config: the run configuration stored in the checkpoint (empty for a bare name).
    """

    model: nn.Module
    name: str | None
    description: str
    trained: bool
    config: dict

    @property
    def default_dataset(self) -> str | None:
        """The data set of the checkpoint's run, else the model's registry default."""
        data = self.config.get("data") if isinstance(self.config, dict) else None
        dataset = data.get("dataset") if isinstance(data, dict) else None
        return dataset or (model_spec(self.name).default_dataset if self.name else None)


def load_target(target: str, seed: int = 0, device: torch.device | str = "cpu") -> Target:
    """Resolve a registered model name (untrained, seeded) or a checkpoint/run path."""
    if target in list_models():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model(target).to(device).eval()
        description = f"{target} (UNTRAINED, random initialisation with seed {seed})"
        return Target(model, target, description, False, {})
    if not Path(target).exists():
        raise ModelError(
            f"{target!r} is neither a registered model ({', '.join(list_models())}) "
            "nor an existing run directory or checkpoint path"
        )
    from robustcompress.training.checkpoint import load_model, read_checkpoint

    model = load_model(target, device=device)
    name = getattr(model, "registry_name", None)
    stored = read_checkpoint(target).meta.get("config") or {}
    config = stored.get("config") if isinstance(stored.get("config"), dict) else stored
    description = f"checkpoint {target}" + (f" ({name})" if name else "")
    return Target(model, name, description, True, config if isinstance(config, dict) else {})
