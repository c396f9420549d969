"""The ``MODEL_OR_CHECKPOINT`` argument shared by ``structure`` and ``attack``.

A checkpoint's run records the data set it was trained on (``data.dataset`` of the
configuration stored in every checkpoint); the images of that data set fix the input
shape ``C×H×W`` the model was trained for. A bare registry name is an untrained model
whose input shape is the registry's. :meth:`Target.choose_dataset` and
:meth:`Target.check_images` turn a wrong pairing of model and data into one-line errors
instead of a meaningless fooling ratio or a torch shape error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robustcompress.errors import ConfigError, ModelError
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

    @property
    def trained_dataset(self) -> str | None:
        """The data set the checkpoint's run trained on (None for an untrained model or a
        checkpoint that does not record it), in the catalog's spelling."""
        if not self.trained:
            return None
        data = self.config.get("data") if isinstance(self.config, dict) else None
        dataset = data.get("dataset") if isinstance(data, dict) else None
        return _canonical(dataset) if isinstance(dataset, str) and dataset else None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The image shape ``C×H×W`` the model takes: that of its training data set for a
        checkpoint, the registry's for an untrained model; None when unknown."""
        if self.trained:
            trained = self.trained_dataset
            return image_shape(trained) if trained else None
        return tuple(model_spec(self.name).input_shape) if self.name else None

    def choose_dataset(self, requested: str | None, *, allow_mismatch: bool = False) -> str:
        """The data set to attack on: ``requested`` or, by default, :attr:`default_dataset`.

        A checkpoint trained on another data set than ``requested`` is refused with a
        one-line :class:`ConfigError` unless ``allow_mismatch``: its fooling ratio on
        foreign images says nothing about the model.
        """
        if not requested:
            if self.default_dataset is None:
                raise ConfigError(f"{self.description} names no data set: pass --data")
            return str(self.default_dataset)
        trained = self.trained_dataset
        if trained is not None and not allow_mismatch and _canonical(requested) != trained:
            raise ConfigError(
                f"{self.description} was trained on {trained}, not {requested}: its fooling "
                f"ratio on other data means nothing; drop --data, or pass "
                f"--allow-data-mismatch to attack it on {requested} anyway"
            )
        return requested

    def check_images(self, shape: tuple[int, ...], dataset: str) -> None:
        """Refuse images of ``dataset`` whose shape ``C×H×W`` is not the model's input
        shape (:attr:`input_shape`), whatever ``--allow-data-mismatch`` says: a one-line
        :class:`ModelError`. When the input shape is unknown, one image is passed through
        the model and a failure is reported the same way."""
        expected = self.input_shape
        if expected is not None and tuple(shape) != tuple(expected):
            raise ModelError(
                f"{self.description} takes {_dims(expected)} images but {dataset} images are "
                f"{_dims(shape)}: attack it on a data set of its input shape"
            )
        if expected is None:
            parameter = next(self.model.parameters(), None)
            like = parameter if parameter is not None else torch.zeros(())
            probe = torch.zeros(1, *shape, dtype=like.dtype, device=like.device)
            try:
                with torch.no_grad():
                    self.model(probe)
            except RuntimeError as exc:
                reason = (str(exc).strip().splitlines() or ["shape mismatch"])[0]
                raise ModelError(
                    f"{self.description} cannot take {dataset} images of shape "
                    f"{_dims(shape)} ({reason})"
                ) from None


def image_shape(dataset: str) -> tuple[int, ...]:
    """``C×H×W`` of the images of ``dataset``: the catalog's for a data set read from
    files (nothing is loaded), the generated images' for a generated one."""
    from robustcompress.data import KNOWN_DATASETS, load_dataset

    key = _canonical(dataset)
    if key in KNOWN_DATASETS:
        return tuple(KNOWN_DATASETS[key].image_shape)
    return tuple(load_dataset(key, "test").image_shape)


def _canonical(dataset: str) -> str:
    from robustcompress.data.locate import canonical_name

    return canonical_name(dataset)


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


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
