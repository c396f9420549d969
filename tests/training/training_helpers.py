"""Helpers of the training tests: a callback that interrupts a run at a given step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from robustcompress.training import Callback, Trainer


class Stop(Exception):
    """Raised by :class:`StopAt` to interrupt a run (as a kill would, after a checkpoint)."""


@dataclass
class StopAt(Callback):
    """Raise :class:`Stop` at the end of optimiser step ``step``."""

    step: int

    def on_step_end(self, trainer: Trainer, step: int, terms: Mapping[str, float]) -> None:
        if step == self.step:
            raise Stop
